"""Multi-process (torchrun, gloo, CPU) training, sampling and likelihood equal single-process runs."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
import torch

from scoreflow.training import load_checkpoint

TRAIN = ["--dataset", "ring", "--dataset-options", '{"n": 512}', "--model", "mlp", "--batch-size", "16",
         "--log-every", "1", "--no-progress", "--lr", "1e-3"]


def _env() -> dict[str, str]:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "GLOO_SOCKET_IFNAME": "lo"}
    env.pop("WORLD_SIZE", None)
    return env


def _single(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "scoreflow", *args], check=True, env=_env(), timeout=300,
                   capture_output=True, text=True)


def _torchrun(*args: str) -> None:
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
           "-m", "scoreflow", *args]
    proc = subprocess.run(cmd, env=_env(), timeout=300, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _weights(run) -> dict[str, torch.Tensor]:
    return load_checkpoint(run).model


@pytest.mark.slow
def test_two_process_training_and_resume_equal_single_process(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    _single("train", "--out", str(single), "--steps", "6", *TRAIN)
    _torchrun("train", "--out", str(multi), "--steps", "3", *TRAIN)
    _torchrun("train", "--out", str(multi), "--steps", "6", "--resume", *TRAIN)
    a, b = _weights(single), _weights(multi)
    assert load_checkpoint(multi).meta["step"] == 6
    # The all-reduce sums gradients in another order than one process does, so they differ by float32
    # rounding (~1e-7 relative). Adam divides by sqrt(v): where a gradient is near zero that rounding can
    # change an update by up to lr (1e-3) per step. So: every element within lr / 10 over the 6 steps, and
    # all but a few in a thousand within 1e-6; a rank training on the wrong slice moves most elements by ~lr.
    diffs = torch.cat([(a[k] - b[k]).abs().flatten() for k in a])
    assert float(diffs.max()) < 1e-4, float(diffs.max())
    assert float((diffs > 1e-6).float().mean()) < 0.005
    losses_single = [v for _, v in load_checkpoint(single).meta["losses"]]
    losses_multi = [v for _, v in load_checkpoint(multi).meta["losses"]]
    assert losses_single == pytest.approx(losses_multi, rel=1e-5)

    # sampling and likelihood shard blocks across ranks and gather: identical to one process
    sample = ["sample", "--checkpoint", str(single), "--num-samples", "10", "--batch-size", "4",
              "--num-steps", "20", "--no-progress"]
    _single(*sample, "--out", str(tmp_path / "s1"))
    _torchrun(*sample, "--out", str(tmp_path / "s2"))
    from safetensors.torch import load_file

    s1 = load_file(str(tmp_path / "s1" / "samples.safetensors"))["samples"]
    s2 = load_file(str(tmp_path / "s2" / "samples.safetensors"))["samples"]
    assert s1.shape == (10, 2) and torch.equal(s1, s2)

    like = ["likelihood", "--checkpoint", str(single), "--max-samples", "10", "--batch-size", "4",
            "--rtol", "1e-3", "--atol", "1e-3", "--no-progress"]
    _single(*like, "--out", str(tmp_path / "l1.json"))
    _torchrun(*like, "--out", str(tmp_path / "l2.json"))
    l1, l2 = (json.loads((tmp_path / f).read_text()) for f in ("l1.json", "l2.json"))
    assert l1["n"] == l2["n"] == 10 and l1["mean_bpd"] == pytest.approx(l2["mean_bpd"], rel=1e-6)

    # tune-schedule shares the warm-up draws between the ranks (each solves the teacher for its half), sums the
    # trial errors across them, and rank 0 alone writes the run's file
    tune = ["tune-schedule", "--checkpoint", str(single), "--nfe", "5", "--trajectories", "16", "--sweeps", "1",
            "--fine-steps", "16", "--no-progress"]
    _single(*tune, "--out", str(tmp_path / "t1.json"))
    _torchrun(*tune)
    t1, t2 = (json.loads(f.read_text()) for f in (tmp_path / "t1.json", single / "tuned-schedules.json"))
    assert (t1["processes"], t2["processes"]) == (1, 2) and t1["trajectories"] == t2["trajectories"] == 16
    g1, g2 = t1["grids"]["ipndm"]["4"], t2["grids"]["ipndm"]["4"]
    assert g2["karras_error"] == pytest.approx(g1["karras_error"], rel=1e-3)  # the mean over all 16 draws
    assert g2["error"] <= g2["karras_error"] and not list(single.glob("*.tmp"))


@pytest.mark.slow
def test_sigint_to_torchrun_stops_every_rank_after_one_step_and_saves_it(tmp_path):
    """Ctrl-C on the launcher: it forwards SIGINT to the workers, the ranks agree after the current step,
    rank 0 saves it, every worker exits 130 with one line saying how to resume, and resume continues."""
    import signal
    import time

    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2", "-m", "scoreflow",
           "train", "--out", str(run), "--steps", "1000000", "--checkpoint-every", "100000", *TRAIN]
    proc = subprocess.Popen(cmd, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.time() + 120
    while not (run / ".lock").exists() and time.time() < deadline:
        time.sleep(0.2)  # rank 0 takes the run's lock as training starts
    time.sleep(3)
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert err.count("saved a checkpoint; continue with the same command and --resume") == 1, err[-3000:]
    step = load_checkpoint(run).meta["step"]
    assert 0 < step < 1_000_000
    _torchrun("train", "--out", str(run), "--steps", str(step + 2), "--resume", *TRAIN)
    assert load_checkpoint(run).meta["step"] == step + 2


@pytest.mark.slow
def test_two_processes_on_a_streamed_folder_train_as_one(tmp_path):
    """Each rank streams its own disjoint share of every batch from disk: together they train as one process
    reading the whole batch (a rank reading the other's share, or the whole batch, moves the weights by ~lr)."""
    import numpy as np
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for i in range(40):
        Image.fromarray(rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)).save(images / f"{i:03d}.png")
    train = ["--dataset", "folder", "--data-dir", str(images), "--dataset-options", '{"stream": true}', "--model",
             "resunet", "--model-options", '{"channels": 8, "channel_mult": [1, 2], "num_res_blocks": 1, '
             '"attention": false}', "--batch-size", "8", "--steps", "4", "--log-every", "1", "--no-progress",
             "--lr", "1e-3"]
    single, multi = tmp_path / "single", tmp_path / "multi"
    _single("train", "--out", str(single), *train)
    _torchrun("train", "--out", str(multi), *train)
    a, b = _weights(single), _weights(multi)
    diffs = torch.cat([(a[k] - b[k]).abs().flatten() for k in a if a[k].is_floating_point()])
    # as in the ring test above: all-reduce rounding can move an Adam update where a gradient is near zero, so a
    # few elements differ by up to lr; a wrong shard moves most of them
    print(f"max {float(diffs.max()):.2e}, share above 1e-6 {float((diffs > 1e-6).float().mean()):.4f}")
    assert float(diffs.max()) < 1e-3 and float((diffs > 1e-6).float().mean()) < 0.01
    losses_single = [v for _, v in load_checkpoint(single).meta["losses"]]
    losses_multi = [v for _, v in load_checkpoint(multi).meta["losses"]]
    assert losses_single == pytest.approx(losses_multi, rel=1e-4)
