"""The command line: listing, demo and bad options."""

from __future__ import annotations

import pytest

from scoreflow.cli import main


def test_list_kind(capsys):
    assert main(["list", "predictor"]) == 0
    out = capsys.readouterr().out
    assert "scoreflow:euler (aliases: euler_maruyama, em)" in out and "scoreflow:torchsde" in out


def test_plugins_text(capsys):
    assert main(["plugins"]) == 0
    assert "predictor: euler, reverse_diffusion, none, torchsde" in capsys.readouterr().out


def test_bad_options_are_named(capsys):
    with pytest.raises(SystemExit):
        main(["list", "predictors"])
    assert "invalid choice: 'predictors'" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        main(["demo", "--num-steps", "-3"])
    assert "expected a positive integer, got '-3'" in capsys.readouterr().err


def test_demo_writes_picture_and_report(tmp_path, capsys):
    assert main(["demo", "--out", str(tmp_path), "--num-samples", "300", "--num-steps", "100"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert (tmp_path / "samples.png").stat().st_size > 10_000
    for name in ("euler", "euler + langevin", "torchsde (srk)", "probability-flow ODE (dopri5)"):
        assert f"| {name} |" in report
    assert "weight_tv" in capsys.readouterr().out
