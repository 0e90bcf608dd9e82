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
from scoreflow.training.run_folder import RunLock, existing_step

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
    assert after.path == before.path and after.meta["config"]["seed"] == 1
    assert main(["train", "--out", str(tmp_path), "--steps", "3", *TINY_ARGS]) == 2
    assert "already holds a run" in capsys.readouterr().err


def test_overwrite_replaces_the_run(tmp_path):
    Trainer(TrainConfig(steps=4, seed=1, **TINY), tmp_path, progress=False).run()
    Trainer(TrainConfig(steps=2, seed=2, **TINY), tmp_path, progress=False).run(overwrite=True)
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.meta["step"] == 2 and ckpt.meta["config"]["seed"] == 2
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_0000002"]


def test_overwrite_deletes_only_what_scoreflow_wrote(tmp_path):
    """--overwrite on a folder that holds no run, or over a run, never removes a file scoreflow did not write;
    it does remove the old model's artefacts (loss.png, tuned-schedules.json)."""
    mine = tmp_path / "checkpoints" / "notes.txt"
    mine.parent.mkdir(parents=True)
    mine.write_text("my notes")
    (tmp_path / "checkpoints" / "step_old").mkdir()
    (tmp_path / "checkpoints" / "step_old" / "model.safetensors").write_bytes(b"not scoreflow's")
    Trainer(TrainConfig(steps=2, seed=1, **TINY), tmp_path, progress=False).run(overwrite=True)
    (tmp_path / "tuned-schedules.json").write_text("{}")
    inside = tmp_path / "checkpoints" / "step_0000002" / "readme.txt"
    inside.write_text("kept")
    Trainer(TrainConfig(steps=3, seed=2, **TINY), tmp_path, progress=False).run(overwrite=True)
    assert mine.read_text() == "my notes" and inside.read_text() == "kept"
    assert (tmp_path / "checkpoints" / "step_old" / "model.safetensors").read_bytes() == b"not scoreflow's"
    assert sorted(p.name for p in inside.parent.iterdir()) == ["readme.txt"]  # the checkpoint's own files went
    assert not (tmp_path / "tuned-schedules.json").exists() and load_checkpoint(tmp_path).meta["step"] == 3


def test_keep_last_orders_checkpoints_by_their_recorded_step_not_by_name(tmp_path):
    """Past step 9,999,999 the folder name grows a digit: 'step_10000000' sorts before 'step_9999999' by name."""
    import torch

    from scoreflow.training.checkpoint import save_checkpoint

    net = torch.nn.Linear(2, 2)
    for step in (9_999_998, 9_999_999, 10_000_000, 10_000_001):
        save_checkpoint(tmp_path, step, model=net, ema=None, optimizer=None, rng={}, meta={}, keep_last=2)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir())
    assert names == ["latest", "step_10000000", "step_10000001"]
    assert load_checkpoint(tmp_path).meta["step"] == 10_000_001


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
    assert not stale.exists() and load_checkpoint(tmp_path).meta["step"] == 4


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
    step = load_checkpoint(tmp_path).meta["step"]
    assert 0 < step < 100_000
    assert f"{signal.Signals(signum).name} at step {step}: saved a checkpoint" in err and "--resume" in err
    # the saved state resumes
    Trainer(TrainConfig(steps=step + 2, **TINY), tmp_path, progress=False).run(resume=True)
    assert load_checkpoint(tmp_path).meta["step"] == step + 2


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


def test_resume_and_overwrite_together_are_refused_and_resume_never_goes_backwards(tmp_path, capsys):
    Trainer(TrainConfig(steps=4, **TINY), tmp_path, progress=False).run()
    with pytest.raises(ValueError, match="--resume and --overwrite contradict"):
        Trainer(TrainConfig(steps=6, **TINY), tmp_path, progress=False).run(resume=True, overwrite=True)
    assert main(["train", "--out", str(tmp_path), "--steps", "2", "--resume", *TINY_ARGS]) == 2
    assert "already at step 4; ask for at least 4" in capsys.readouterr().err
    assert load_checkpoint(tmp_path).meta["step"] == 4


def test_import_checkpoint_overwrite_takes_the_run_lock_and_replaces_the_old_run(tmp_path):
    import torch

    from benchmarks.tutorial_notebook import SeedScoreNet
    from scoreflow.errors import CheckpointError
    from scoreflow.pretrained.tutorial_import import import_tutorial_checkpoint

    torch.manual_seed(0)
    state = SeedScoreNet().state_dict()
    torch.save(state, tmp_path / "ckpt.pth")
    run = tmp_path / "run"
    Trainer(TrainConfig(steps=2, **TINY), run, progress=False).run()
    (run / "tuned-schedules.json").write_text("{}")
    with RunLock(run), pytest.raises(RunBusyError):
        import_tutorial_checkpoint(tmp_path / "ckpt.pth", run, overwrite=True)
    assert load_checkpoint(run).meta["step"] == 2  # untouched while another writer held it
    import_tutorial_checkpoint(tmp_path / "ckpt.pth", run, overwrite=True)
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "step_0000000"]
    assert not (run / "tuned-schedules.json").exists()
    for bad, words in ((state["embed.W"].to(torch.int32), "dtype torch.int32"),
                       (state["embed.W"].to(torch.complex64), "dtype torch.complex64"),
                       (torch.full_like(state["embed.W"], float("nan")), "NaN or infinite")):
        torch.save({**state, "embed.W": bad}, tmp_path / "bad.pth")
        with pytest.raises(CheckpointError, match=words):
            import_tutorial_checkpoint(tmp_path / "bad.pth", tmp_path / "other")
        assert not (tmp_path / "other").exists()


@pytest.mark.parametrize("value, expected", [("1", True), ("yes", True), ("off", False), ("", False)])
def test_boolean_environment_variables_are_strict(monkeypatch, value, expected):
    from scoreflow.plugins import _env_flag

    monkeypatch.setenv("SCOREFLOW_STRICT_PLUGINS", value)
    assert _env_flag("SCOREFLOW_STRICT_PLUGINS") is expected
    monkeypatch.setenv("SCOREFLOW_STRICT_PLUGINS", "enabled")
    with pytest.raises(ValueError, match="SCOREFLOW_STRICT_PLUGINS='enabled' is not a boolean; allowed: 1, true"):
        _env_flag("SCOREFLOW_STRICT_PLUGINS")


def test_kill_9_during_import_checkpoint_overwrite_leaves_a_run_that_loads(tmp_path):
    """import-checkpoint --overwrite killed at random moments: whatever the folder holds loads (the old run, or
    the import; between --overwrite's removal of the old run and the import's save it holds none, as asked),
    never a half-written checkpoint, and the next import completes."""
    import random
    import subprocess
    import sys
    import time

    import torch

    from benchmarks.tutorial_notebook import SeedScoreNet
    from scoreflow.training import load_trained

    torch.manual_seed(0)
    torch.save(SeedScoreNet().state_dict(), tmp_path / "ckpt.pth")
    run = tmp_path / "run"
    Trainer(TrainConfig(steps=2, **TINY), run, progress=False).run()
    argv = [sys.executable, "-m", "scoreflow", "import-checkpoint", str(tmp_path / "ckpt.pth"), "--out", str(run),
            "--overwrite"]
    rng = random.Random(1)
    for _ in range(3):
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(0.5, 3.0))
        proc.kill()
        proc.wait()
        step = existing_step(run)
        assert step in (None, 0, 2)
        if step is not None:
            assert load_checkpoint(run).meta["step"] == step
            load_trained(run, ema=step == 2)
    assert subprocess.run(argv, capture_output=True).returncode == 0
    assert load_checkpoint(run).meta["step"] == 0
