"""Ctrl-C and SIGTERM in commands without their own handling: one line, exit 130/143, no traceback."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from scoreflow.cli import main


def _default_sigint() -> None:
    """In the child: SIGINT back to its default, as in a user's terminal. A test run started in the background
    (`pytest &`) inherits SIGINT ignored, and Python then never installs its KeyboardInterrupt handler."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    out = tmp_path_factory.mktemp("signals") / "run"
    assert main(["train", "--dataset", "ring", "--model", "mlp", "--model-options", '{"hidden": 16, "depth": 2}',
                 "--steps", "2", "--out", str(out), "--no-progress"]) == 0
    return out


@pytest.mark.parametrize(("signum", "code", "name"), [(signal.SIGINT, 130, "SIGINT"), (signal.SIGTERM, 143, "SIGTERM")])
def test_a_signal_during_likelihood_stops_it_in_one_line(run, tmp_path, signum, code, name):
    out = tmp_path / "l.json"
    argv = [sys.executable, "-m", "scoreflow", "likelihood", "--checkpoint", str(run), "--estimator", "exact",
            "--rtol", "1e-9", "--atol", "1e-9", "--batch-size", "1", "--out", str(out)]
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, "OMP_NUM_THREADS": "1"}, preexec_fn=_default_sigint)
    seen = ""
    deadline = time.monotonic() + 60
    while "likelihood" not in seen and time.monotonic() < deadline:  # the progress bar: the command is running
        seen += proc.stderr.read(1)
    proc.send_signal(signum)
    err = seen + proc.stderr.read()
    assert proc.wait(timeout=60) == code, err
    assert "Traceback" not in err and f"scoreflow: likelihood stopped by {name}; its results were not written" in err
    assert not out.exists()
