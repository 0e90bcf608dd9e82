"""Owning a run folder: one writer at a time, no silent clobbering, no leftovers of interrupted saves."""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

from scoreflow.errors import RunBusyError, RunExistsError

LOCK_NAME = ".lock"


class RunLock:
    """An exclusive ``flock`` on ``run/.lock`` for as long as a process writes the run.

    The kernel drops the lock when the process dies (even by ``kill -9``), so a crashed run never
    blocks the next one; a second live writer is refused with the holder's pid.
    """

    def __init__(self, run_dir: str | Path) -> None:
        self.path = Path(run_dir) / LOCK_NAME
        self._fd: int | None = None

    def acquire(self) -> RunLock:
        import fcntl

        self.path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            holder = os.read(fd, 32).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise RunBusyError(f"{self.path.parent} is being written by another process (pid {holder}); "
                               "wait for it to finish or choose another --out") from None
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None

    def __enter__(self) -> RunLock:
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def existing_step(run_dir: str | Path) -> int | None:
    """The step of the run's latest checkpoint, or ``None`` when the folder holds no run."""
    latest = Path(run_dir) / "checkpoints" / "latest"
    if not latest.is_file():
        return None
    name = latest.read_text().strip()
    try:
        return int(name.removeprefix("step_").split(".")[0])
    except ValueError:
        return -1


def refuse_existing_run(run_dir: str | Path, *, resume: bool, overwrite: bool) -> None:
    """Raise :class:`RunExistsError` if ``run_dir`` holds a run and neither ``resume`` nor ``overwrite`` is set."""
    step = existing_step(run_dir)
    if step is not None and not resume and not overwrite:
        raise RunExistsError(f"{run_dir} already holds a run (latest checkpoint: step {step}); pass --resume to "
                             "continue it or --overwrite to replace it")


#: Files a run writes beside ``checkpoints/`` that belong to its model (an overwrite removes them too).
RUN_ARTEFACTS = ("loss.png", "tuned-schedules.json")


def prepare_run_folder(run_dir: str | Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse to start a new run over an existing one unless asked; remove what an overwrite replaces and
    the temporary folders of saves that were interrupted. Call while holding :class:`RunLock`.

    Only what scoreflow wrote is ever removed: checkpoint folders recognised by their ``meta.json`` (and in them
    only the files a checkpoint holds), ``checkpoints/latest`` and the run's own artefacts (``loss.png``, the
    old model's ``tuned-schedules.json``); any other file stays where it is."""
    from scoreflow.training.checkpoint import checkpoint_step, remove_checkpoint

    run_dir = Path(run_dir)
    refuse_existing_run(run_dir, resume=resume, overwrite=overwrite)
    checkpoints = run_dir / "checkpoints"
    if overwrite and not resume and checkpoints.is_dir():
        for entry in checkpoints.iterdir():
            if entry.name.startswith("step_") and checkpoint_step(entry) is not None:
                remove_checkpoint(entry)
        latest = checkpoints / "latest"
        if latest.is_file() and not latest.is_symlink():
            latest.unlink()
        for name in RUN_ARTEFACTS:
            artefact = run_dir / name
            if artefact.is_file() and not artefact.is_symlink():
                artefact.unlink()
    if checkpoints.is_dir():
        for leftover in checkpoints.iterdir():
            if re.fullmatch(r"\.step_\d+\..+", leftover.name) and leftover.is_dir() and not leftover.is_symlink():
                shutil.rmtree(leftover, ignore_errors=True)  # mkdtemp's names: an interrupted save of ours
            elif leftover.name.startswith(".latest.") and leftover.is_file():
                leftover.unlink(missing_ok=True)
