"""Run folders are owned: no silent clobbering, one writer at a time, signals save a checkpoint."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from scoreflow.cli import main
from scoreflow.errors import RunBusyError, RunExistsError
from scoreflow.training import TrainConfig, Trainer, load_checkpoint
from scoreflow.training.run_folder import RunLock

TINY = dict(dataset="digits", model_options={"channels": [8, 16, 16, 16], "embed_dim": 16}, batch_size=16,
            log_every=2)
TINY_ARGS = ["--dataset", "digits", "--model-options", '{"channels": [8, 16, 16, 16], "embed_dim": 16}',
             "--batch-size", "16", "--no-progress"]


def test_a_new_run_over_an_existing_one_is_refused(tmp_path, capsys):
    Trainer(TrainConfig(steps=2, seed=1, **TINY), tmp_path, progress=False).run()
    before = load_checkpoint(tmp_path)
    with pytest.raises(RunExistsError, match="already holds a run .*step 2.*--resume.*--overwrite"):
        Trainer(TrainConfig(steps=3, seed=2, **TINY), tmp_path, progress=False).run()
    after = load_checkpoint(tmp_path)
    assert after["path"] == before["path"] and after["meta"]["config"]["seed"] == 1
    assert main(["train", "--out", str(tmp_path), "--steps", "3", *TINY_ARGS]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_overwrite_replaces_the_run(tmp_path):
    Trainer(TrainConfig(steps=4, seed=1, **TINY), tmp_path, progress=False).run()
    Trainer(TrainConfig(steps=2, seed=2, **TINY), tmp_path, progress=False).run(overwrite=True)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt["meta"]["step"] == 2 and ckpt["meta"]["config"]["seed"] == 2
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_0000002"]


def test_a_second_writer_is_refused_while_the_first_holds_the_run(tmp_path):
    with RunLock(tmp_path):
        with pytest.raises(RunBusyError, match=f"being written by another process \\(pid {os.getpid()}\\)"):
            Trainer(TrainConfig(steps=2, **TINY), tmp_path, progress=False).run()
    Trainer(TrainConfig(steps=2, **TINY), tmp_path, progress=False).run()  # free again once released


def test_temporary_folders_of_interrupted_saves_are_cleaned_on_the_next_start(tmp_path):
    Trainer(TrainConfig(steps=2, **TINY), tmp_path, progress=False).run()
    stale = tmp_path / "checkpoints" / ".step_0000004.abc123"
    stale.mkdir()
    (stale / "model.safetensors").write_bytes(b"half written")
    Trainer(TrainConfig(steps=4, **TINY), tmp_path, progress=False).run(resume=True)
    assert not stale.exists() and load_checkpoint(tmp_path)["meta"]["step"] == 4


def _default_sigint() -> None:
    """In the child: SIGINT back to its default. A shell that starts a job in the background (`cmd &`) sets
    SIGINT to ignored, and Python then never installs its KeyboardInterrupt handler; a user's terminal does not."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _start_training(out, steps: int = 100_000) -> subprocess.Popen:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([sys.executable, "-m", "scoreflow", "train", "--out", str(out), "--steps", str(steps),
                             *TINY_ARGS], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_saves_the_current_step_and_exits_with_the_shell_code(tmp_path, signum, code):
    proc = _start_training(tmp_path)
    deadline = time.monotonic() + 120
    while not (tmp_path / ".lock").exists() and time.monotonic() < deadline:
        time.sleep(0.1)
    time.sleep(1.5)  # some steps into the loop
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err
    step = load_checkpoint(tmp_path)["meta"]["step"]
    assert 0 < step < 100_000
    assert f"{signal.Signals(signum).name} at step {step}: saved a checkpoint" in err and "--resume" in err
    # the saved state resumes
    Trainer(TrainConfig(steps=step + 2, **TINY), tmp_path, progress=False).run(resume=True)
    assert load_checkpoint(tmp_path)["meta"]["step"] == step + 2


@pytest.mark.parametrize("signum, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_a_signal_during_sampling_writes_the_finished_blocks_and_says_so(tmp_path, signum, code):
    from safetensors.torch import load_file

    run = tmp_path / "run"
    Trainer(TrainConfig(steps=1, **TINY), run, progress=False).run()
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "scoreflow", "sample", "--checkpoint", str(run), "--num-samples",
                             "100000", "--batch-size", "8", "--num-steps", "50", "--out", str(tmp_path / "s"),
                             "--no-progress"], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=_default_sigint)
    deadline = time.monotonic() + 120
    while not (tmp_path / "s").exists() and time.monotonic() < deadline:  # --out is created just before sampling
        time.sleep(0.1)
    time.sleep(3)
    proc.send_signal(signum)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == code, err[-2000:]
    assert "Traceback" not in err and f"{signal.Signals(signum).name} after " in err
    written = tmp_path / "s" / "samples.safetensors"
    if "nothing written" in err:
        assert not written.exists()
    else:
        n = len(load_file(str(written))["samples"])
        assert n > 0 and n % 8 == 0 and f"wrote the {n} finished" in err
