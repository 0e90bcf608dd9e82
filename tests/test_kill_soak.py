"""``kill -9`` at random moments, and two writers on one run folder, as real processes.

A tiny run checkpoints every few steps (so kills land inside saves too), is killed 15 times at seeded random
moments and restarted with ``--resume`` each time, including after it has finished, when resuming re-saves
its last step. After every kill the run's ``latest`` must name a complete, loadable checkpoint; in the end
the run's weights must equal those of a run never interrupted, bit for bit.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch

from scoreflow.training import load_checkpoint

CONFIG = """
[train]
dataset = "ring"
dataset_options = { n = 512 }
model = "mlp"
model_options = { hidden = 32, depth = 2 }
steps = 240
batch_size = 32
lr = 1e-3
log_every = 40
checkpoint_every = 4
keep_last = 2
seed = 5
"""


def _train(config: Path, out: Path, resume: bool) -> subprocess.Popen:
    argv = [sys.executable, "-m", "scoreflow", "train", "--config", str(config), "--out", str(out), "--no-progress"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    return subprocess.Popen([*argv, *(["--resume"] if resume else [])], stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True, env=env)


def _weights(run: Path) -> dict[str, torch.Tensor]:
    return load_checkpoint(run).model


@pytest.mark.slow
def test_fifteen_kills_lose_nothing_and_resume_is_exact(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG)
    clean = tmp_path / "clean"
    assert _train(config, clean, resume=False).wait() == 0
    run = tmp_path / "killed"
    rng = random.Random(11)
    kills = 0
    while kills < 15:
        started = (run / "checkpoints" / "latest").is_file()
        proc = _train(config, run, resume=started)
        time.sleep(rng.uniform(0.5, 3.0))  # python and torch start in about 1.5 s, then it saves every 4 steps
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
            kills += 1
        else:
            assert proc.returncode == 0, proc.stderr.read()  # it finished; the next start re-saves its last step
        if (run / "checkpoints" / "latest").is_file():
            ckpt = load_checkpoint(run)  # latest always names a complete checkpoint
            assert ckpt.meta["step"] > 0
    assert _train(config, run, resume=(run / "checkpoints" / "latest").is_file()).wait() == 0
    final, reference = _weights(run), _weights(clean)
    assert final.keys() == reference.keys()
    assert all(torch.equal(final[k], reference[k]) for k in final), "resume after kills is not exact"
    left = [p.name for p in (run / "checkpoints").iterdir() if p.name.startswith(".")]
    assert not left, f"temporary files left behind: {left}"


def test_two_concurrent_writers_one_is_refused_and_the_run_is_whole(tmp_path):
    config = tmp_path / "tiny.toml"
    config.write_text(CONFIG.replace("steps = 240", "steps = 60"))
    run = tmp_path / "run"
    first, second = _train(config, run, resume=False), _train(config, run, resume=False)
    codes = sorted([first.wait(), second.wait()])
    errors = first.stderr.read() + second.stderr.read()
    assert codes == [0, 2], (codes, errors)
    assert "is being written by another process" in errors or "already holds a run" in errors, errors
    assert load_checkpoint(run).meta["step"] == 60
