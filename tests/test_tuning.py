"""Tuned time schedules: the dynamic program, the stored grids, and the command line."""

from __future__ import annotations

import itertools
import json
import math

import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import scoreflow as sf
from scoreflow.cli import main
from scoreflow.sampling.tuning import TunedGrid, TunedScheduleError, TuningResult, best_path, euler_costs


@settings(max_examples=40, deadline=None)
@given(st.integers(3, 7), st.integers(1, 4), st.integers(0, 2**31 - 1))
def test_best_path_is_the_cheapest_of_all_paths(k, steps, seed):
    """The dynamic program against brute force over every increasing path with ``steps`` jumps."""
    steps = min(steps, k - 1)
    g = torch.Generator().manual_seed(seed)
    cost = torch.rand(k, k, generator=g, dtype=torch.float64).triu(1)
    cost[torch.tril(torch.ones(k, k, dtype=torch.bool))] = math.inf
    path, total = best_path(cost, steps)
    brute = min(sum(float(cost[a, b]) for a, b in zip((0, *mid), (*mid, k - 1)))
                for mid in itertools.combinations(range(1, k - 1), steps - 1))
    assert path[0] == 0 and path[-1] == k - 1 and len(path) == steps + 1 and path == sorted(set(path))
    assert math.isclose(total, brute, rel_tol=1e-12)


def test_euler_costs_vanish_on_straight_lines():
    """States moving on straight lines in the noise level are followed exactly by one Euler step."""
    levels = torch.tensor([5.0, 2.0, 1.0, 0.1], dtype=torch.float64)
    direction = torch.randn(6, 3, generator=torch.Generator().manual_seed(0))
    states = torch.stack([levels[i].float() * direction for i in range(4)])
    slopes = direction.expand(4, 6, 3)
    cost = euler_costs(states, slopes, levels)
    assert float(cost.triu(1).nan_to_num(posinf=0).abs().max()) < 1e-6
    assert math.isinf(float(cost[2, 1])) and math.isinf(float(cost[1, 1]))


def _result(sde, times, predictor="ipndm"):
    grid = TunedGrid(torch.tensor(times, dtype=torch.float64), 0.1, 0.2, "karras", 7)
    return TuningResult(predictor, {len(times) - 1: grid}, 10, {"sde": repr(sde), "eps": times[-1]})


def test_stored_grids_are_found_by_predictor_and_steps(tmp_path, ve):
    _result(ve, [1.0, 0.3, 0.01]).save(tmp_path)
    _result(ve, [1.0, 0.5, 0.1, 0.01]).save(tmp_path)          # merged: another step count
    _result(ve, [1.0, 0.2, 0.01], "dpmpp_2m").save(tmp_path)   # and another predictor
    sampler = sf.Sampler(predictor="euler", num_steps=3, eps=0.01, schedule="tuned",
                         schedule_options={"path": str(tmp_path), "predictor": "ipndm"})
    assert sampler.grid(ve).tolist() == [1.0, 0.5, 0.1, 0.01]
    with pytest.raises(TunedScheduleError, match="no grid of 5 steps tuned for ipndm. Available: 2, 3"):
        sf.Sampler(num_steps=5, eps=0.01, schedule="tuned",
                   schedule_options={"path": str(tmp_path), "predictor": "ipndm"}).grid(ve)
    with pytest.raises(TunedScheduleError, match="Tuned: dpmpp_2m, ipndm"):
        sf.create("schedule", "tuned", path=str(tmp_path))  # two predictors: which one must be said
    with pytest.raises(TunedScheduleError, match="end at eps=0.01, not 0.001"):
        sf.Sampler(num_steps=2, eps=1e-3, schedule="tuned",
                   schedule_options={"path": str(tmp_path), "predictor": "dpmpp_2m"}).grid(ve)
    with pytest.raises(TunedScheduleError, match="were tuned for VESDE"):
        sf.Sampler(num_steps=2, eps=0.01, schedule="tuned",
                   schedule_options={"path": str(tmp_path), "predictor": "dpmpp_2m"}).grid(sf.VESDE(sigma_max=20.0))


@pytest.mark.parametrize("content", ["", "[1, 2]", '{"format": 1, "grids": {"a": 3}}', '{"format": 9, "grids": {}}'])
def test_bad_tuned_files_are_refused_clearly(tmp_path, content):
    path = tmp_path / "t.json"
    path.write_text(content)
    with pytest.raises(TunedScheduleError, match="t.json"):
        sf.create("schedule", "tuned", path=str(path))
    with pytest.raises(TunedScheduleError, match="run `scoreflow tune-schedule` first"):
        sf.create("schedule", "tuned", path=str(tmp_path / "missing.json"))


def test_tune_schedule_on_a_vp_flow_beats_its_starting_grids(oracle):
    """The teacher's dopri5 starts where the VP rate is near zero; its first-step probe once left [eps, T]."""
    vp = sf.PluginHost(autoload=True, strict=True).create("sde", "vp")
    result = sf.tune_schedule(oracle.score_model(vp), vp, (64, 2), 5, predictor="ipndm",
                              search=sf.GridSearch(eps=1e-3), generator=torch.Generator().manual_seed(0))
    grid = result.grids[5]
    assert float(grid.times[0]) == pytest.approx(vp.T) and float(grid.times[-1]) == pytest.approx(1e-3)
    assert math.isfinite(grid.error) and grid.error <= grid.karras_error


def test_tune_schedule_refuses_a_stochastic_predictor(ve, oracle):
    with pytest.raises(ValueError, match="deterministic"):
        sf.tune_schedule(oracle.score_model(ve), ve, (8, 2), 4, predictor="euler")


def test_cli_tunes_and_samples_on_the_tuned_grid(tmp_path, capsys):
    from tests.test_cli import TINY_TOML

    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--no-progress", "--seed", "3"]) == 0
    assert main(["tune-schedule", "--checkpoint", str(run), "--nfe", "5", "--trajectories", "8", "--sweeps", "2",
                 "--fine-steps", "16"]) == 0
    out = capsys.readouterr().out
    assert "ipndm, 4 steps: end-point error" in out and "--schedule tuned --num-steps 4" in out
    stored = json.loads((run / "tuned-schedules.json").read_text())
    assert list(stored["grids"]) == ["ipndm"] and list(stored["grids"]["ipndm"]) == ["4"]
    assert main(["sample", "--checkpoint", str(run), "--predictor", "ipndm", "--corrector", "none", "--schedule",
                 "tuned", "--num-steps", "4", "--num-samples", "4", "--out", str(tmp_path / "s"),
                 "--no-progress"]) == 0
    assert "NFE 5" in capsys.readouterr().out
    assert main(["tune-schedule", "--checkpoint", "mnist-tutorial", "--nfe", "5"]) == 2
    assert "give --out FILE.json" in capsys.readouterr().err


def test_tune_schedule_is_refused_while_another_process_writes_the_run(tmp_path, capsys):
    """A live trainer (holding the run lock) on the run folder: tune-schedule stops before its search. (flock
    locks belong to open files, so a lock held here conflicts with the command's as another process's would.)"""
    from scoreflow.training.run_folder import RunLock
    from tests.test_cli import TINY_TOML

    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--no-progress"]) == 0
    with RunLock(run):
        assert main(["tune-schedule", "--checkpoint", str(run), "--nfe", "5", "--trajectories", "4"]) == 2
    assert "is being written by another process" in capsys.readouterr().err
    assert not (run / "tuned-schedules.json").exists()


def test_kill_9_during_tune_schedule_leaves_the_old_grids_or_the_new(tmp_path):
    """tuned-schedules.json is replaced atomically: a tune-schedule killed at any moment leaves the file a reader
    accepts, with the grids it held or the new ones."""
    import random
    import subprocess
    import sys
    import time

    from scoreflow.sampling.tuning import _read
    from tests.test_cli import TINY_TOML

    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--no-progress"]) == 0
    argv = [sys.executable, "-m", "scoreflow", "tune-schedule", "--checkpoint", str(run), "--trajectories", "8",
            "--sweeps", "2", "--fine-steps", "16", "--no-progress"]
    assert subprocess.run([*argv, "--nfe", "5"], capture_output=True).returncode == 0
    rng = random.Random(0)
    for nfe in ("7", "9"):
        proc = subprocess.Popen([*argv, "--nfe", nfe], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(rng.uniform(1.0, 3.0))
        proc.kill()
        proc.wait()
        grids = _read(run / "tuned-schedules.json")["grids"]["ipndm"]
        assert "4" in grids  # the earlier grid survives whether or not this run got to write


def test_tuning_shared_by_two_ranks_matches_one_process(ve, oracle, monkeypatch):
    """Under a process group each rank solves the teacher and runs every trial on its share of the warm-up draws
    and the errors are summed across ranks: two simulated ranks (threads exchanging their sums) take the same
    decisions, and their errors are the one-process errors up to the teacher's tolerance (dopri5's step control
    sees a different batch)."""
    import threading

    from scoreflow.sampling import tuning

    args = dict(predictor="ipndm", search=sf.GridSearch(eps=1e-3, fine_steps=16, sweeps=1, rtol=1e-6, atol=1e-6))
    single = sf.tune_schedule(oracle.score_model(ve), ve, (8, 2), [3, 4], generator=torch.Generator().manual_seed(0),
                              **args)
    local, barrier, board = threading.local(), threading.Barrier(2), {}
    teacher_sizes: list[int] = []
    teacher = tuning.teacher_trajectories

    def total(values, op="sum"):
        board[local.rank] = values.double()
        barrier.wait()
        both = torch.stack([board[0], board[1]])
        barrier.wait()  # both have read before the next exchange writes
        return both.max(0).values if op == "max" else both.sum(0)

    def counting_teacher(score, sde, x_start, times, **kw):
        teacher_sizes.append(len(x_start))
        return teacher(score, sde, x_start, times, **kw)

    monkeypatch.setattr(tuning, "world", lambda: (local.rank, 2))
    monkeypatch.setattr(tuning, "reduce_over_ranks", total)
    monkeypatch.setattr(tuning, "teacher_trajectories", counting_teacher)
    results = {}

    def rank(r: int) -> None:
        local.rank = r
        results[r] = sf.tune_schedule(oracle.score_model(ve), ve, (8, 2), [3, 4],
                                      generator=torch.Generator().manual_seed(0), **args)

    threads = [threading.Thread(target=rank, args=(r,)) for r in (0, 1)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert sorted(teacher_sizes) == [4, 4]  # each rank solved half the draws
    assert results[0].info["processes"] == 2 and results[0].info["trajectories"] == 8
    for n in (3, 4):
        a, b, one = results[0].grids[n], results[1].grids[n], single.grids[n]
        assert torch.equal(a.times, b.times) and a.error == b.error  # the same decisions on every rank
        assert a.karras_error == pytest.approx(one.karras_error, rel=1e-3)
        assert a.error == pytest.approx(one.error, rel=0.05) and a.error <= a.karras_error
