"""The folder dataset read from disk per batch (stream=true): the same images as in memory, the same training as
the in-memory epoch order, exact resume with worker processes, disjoint shards per rank, named errors."""

from __future__ import annotations

import multiprocessing
from pathlib import Path

import numpy as np
import pytest
import torch

import scoreflow as sf
from scoreflow.data.streamed import ImageFiles, StepBatches
from scoreflow.training import TrainConfig, Trainer


def _folder(root: Path, n: int = 40, size: int = 8) -> Path:
    from PIL import Image

    root.mkdir()
    rng = np.random.default_rng(0)
    for i in range(n):
        Image.fromarray(rng.integers(0, 256, (size, size, 3), dtype=np.uint8)).save(root / f"{i:03d}.png")
    return root


TINY = dict(dataset="folder", model="resunet", batch_size=4, dequantize=True, seed=3, log_every=1,
            model_options={"channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention": False})


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_streamed_split_holds_the_in_memory_images_labels_and_shape(tmp_path):
    root = tmp_path / "images"
    root.mkdir()
    from PIL import Image

    for cls in ("a", "b"):
        (root / cls).mkdir()
        for i in range(6):
            Image.new("RGB", (10, 12), color=(i * 40, 0, 255 if cls == "b" else 0)).save(root / cls / f"{i}.png")
    for split in ("train", "test"):
        options = dict(split=split, data_dir=root, test_fraction=0.25, resize=8, crop=8, flip=True)
        memory = sf.create("dataset", "folder", **options)
        streamed = sf.create("dataset", "folder", stream=True, workers=1, **options)
        assert isinstance(streamed, ImageFiles) and streamed.sample_shape == memory.sample_shape == (3, 8, 8)
        assert torch.equal(streamed.load().x, memory.x) and torch.equal(streamed.labels, memory.labels)
        assert streamed.hflip and streamed.levels == memory.levels == 256


def test_streamed_training_equals_the_in_memory_epoch_order_and_resumes_exactly_with_workers(tmp_path):
    """The batch of step k is a pure function of (seed, k): training from disk with two worker processes gives the
    in-memory run's weights bit for bit (epoch order), and stopping after 3 steps and resuming gives them too."""
    root = _folder(tmp_path / "images")
    memory = sf.create("dataset", "folder", data_dir=root)
    streamed = sf.create("dataset", "folder", data_dir=root, stream=True, workers=2)
    reference = Trainer(TrainConfig(epochs=1, **TINY), tmp_path / "memory", data=memory, progress=False)
    reference.run()
    steps = reference.step  # one epoch: 36 training images / 4
    one = Trainer(TrainConfig(steps=steps, epochs=None, **TINY), tmp_path / "one", data=streamed, progress=False)
    one.run()
    # the workers stop when run() returns (left to the garbage collector, their shutdown stalled a later
    # computation for up to a minute)
    assert one._stream is None and not multiprocessing.active_children()
    first = Trainer(TrainConfig(steps=3, epochs=None, **TINY), tmp_path / "two", data=streamed, progress=False)
    first.run()
    second = Trainer(TrainConfig(steps=steps, epochs=None, **TINY), tmp_path / "two", data=streamed, progress=False)
    second.run(resume=True)
    a, b, c = _weights(reference), _weights(one), _weights(second)
    assert all(torch.equal(a[k], b[k]) and torch.equal(b[k], c[k]) for k in a)
    assert [loss for _, loss in one.losses] == [loss for _, loss in second.losses]


def test_each_rank_reads_a_disjoint_share_of_every_batch():
    batches = [StepBatches(40, 8, seed=1, start=5, rank=r, world=2) for r in (0, 1)]
    single = StepBatches(40, 8, seed=1, start=5)
    for step in range(5, 15):  # across the epoch boundary (5 steps per epoch)
        shares = [set(b.indices(step).tolist()) for b in batches]
        assert not shares[0] & shares[1]
        assert shares[0] | shares[1] == set(single.indices(step).tolist())
    first = next(iter(batches[0]))
    assert first == batches[0].indices(5).tolist()
    epoch = [i for step in range(5) for i in single.indices(step).tolist()]
    assert sorted(epoch) == list(range(40))  # an epoch visits every image once


def test_bad_streaming_options_and_files_are_named(tmp_path):
    root = _folder(tmp_path / "images", n=6)
    with pytest.raises(ValueError, match="workers must be a number of processes >= 0, got -1"):
        sf.create("dataset", "folder", data_dir=root, stream=True, workers=-1)
    with pytest.raises(ValueError, match="workers=2 reads a streamed folder"):
        sf.create("dataset", "folder", data_dir=root, workers=2)
    with pytest.raises(ValueError, match="stream must be true or false, got 'yes'"):
        sf.create("dataset", "folder", data_dir=root, stream="yes")
    from PIL import Image

    Image.new("RGB", (9, 9)).save(root / "999.png")  # last in the sorted list; a different size
    data = sf.create("dataset", "folder", data_dir=root, stream=True, test_fraction=0.0)
    odd = data.files.index(root / "999.png")
    if odd:  # the shape comes from the split's first file
        with pytest.raises(ValueError, match=r"999.png: size \(9, 9\) differs from \(8, 8\)"):
            data[odd]
    else:
        with pytest.raises(ValueError, match=r"\.png: size \(8, 8\) differs from \(9, 9\)"):
            data[1]
    with pytest.raises(ValueError, match="batch_size 16 exceeds the 7 training images"):
        StepBatches(len(data), 16, seed=0)


def test_ctrl_c_with_workers_saves_and_the_resumed_run_equals_an_uninterrupted_one(tmp_path):
    import json
    import os
    import signal
    import subprocess
    import sys
    import time

    import attrs

    from scoreflow.training import load_checkpoint

    root = _folder(tmp_path / "images")
    run = tmp_path / "run"
    options = json.dumps({"channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, "attention": False})
    proc = subprocess.Popen(
        [sys.executable, "-m", "scoreflow", "train", "--dataset", "folder", "--data-dir", str(root), "--dataset-options",
         '{"stream": true, "workers": 2}', "--model", "resunet", "--model-options", options, "--batch-size", "4",
         "--steps", "100000", "--dequantize", "--out", str(run), "--no-progress"],
        env={**os.environ, "OMP_NUM_THREADS": "1"}, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 120
    while not (run / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(3)  # some steps into the loop, the workers reading
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 130 and "Traceback" not in err, err[-2000:]
    saved = load_checkpoint(run).meta
    step = saved["step"]
    assert 0 < step < 100_000 and f"SIGINT at step {step}: saved a checkpoint" in err
    config = attrs.evolve(TrainConfig.from_dict(saved["config"]), steps=step + 3)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # as the interrupted process (OMP_NUM_THREADS=1): bitwise equality needs one thread count
    try:
        resumed = Trainer(config, run, progress=False)
        resumed.run(resume=True)
        straight = Trainer(config, tmp_path / "straight", progress=False)
        straight.run()
    finally:
        torch.set_num_threads(threads)
    a, b = _weights(resumed), _weights(straight)
    assert all(torch.equal(a[k], b[k]) for k in a)
    from scoreflow.cli import main  # the measuring commands read the streamed split into memory

    assert main(["likelihood", "--checkpoint", str(run), "--data-dir", str(root), "--max-samples", "2", "--method",
                 "exponential", "--num-steps", "2", "--no-progress"]) == 0
