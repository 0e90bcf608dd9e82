"""The command line end to end on tiny configs, and clear errors for bad options."""

from __future__ import annotations

import json
import math

import pytest
import torch

from scoreflow import get_host
from scoreflow.cli import build_parser, main

TINY_TOML = """
[train]
dataset = "ring"
dataset_options = { n = 256 }
model = "mlp"
model_options = { hidden = 32, depth = 2 }
steps = 8
batch_size = 32
lr = 1e-3
log_every = 2
"""


def test_list_kind(capsys):
    assert main(["list", "predictor"]) == 0
    out = capsys.readouterr().out
    assert "scoreflow:euler (aliases: euler_maruyama, em)" in out and "torchsde" not in out
    assert main(["list", "trajectory_solver"]) == 0
    assert "scoreflow:torchsde" in capsys.readouterr().out


def test_plugins_text(capsys):
    assert main(["plugins"]) == 0
    out = capsys.readouterr().out
    assert "predictor: euler, reverse_diffusion, none\n" in out and "trajectory_solver: torchsde" in out and "dataset: digits" in out


def test_train_help_documents_every_option(capsys):
    from scoreflow.training import TrainConfig

    with pytest.raises(SystemExit):
        main(["train", "--help"])
    out = capsys.readouterr().out
    import attrs

    for field in attrs.fields(TrainConfig):
        assert "--" + field.name.replace("_", "-") in out


def test_train_sample_likelihood_evaluate_end_to_end(tmp_path, capsys):
    config = tmp_path / "tiny.toml"
    config.write_text(TINY_TOML)
    run = tmp_path / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--no-progress", "--seed", "3"]) == 0
    assert (run / "loss.png").exists() and (run / "checkpoints" / "latest").exists()
    assert main(["sample", "--checkpoint", str(run), "--num-samples", "10", "--batch-size", "4",
                 "--num-steps", "20", "--out", str(tmp_path / "s"), "--no-progress"]) == 0
    assert (tmp_path / "s" / "samples.png").exists() and (tmp_path / "s" / "samples.safetensors").exists()
    assert main(["sample", "--checkpoint", str(run), "--ode-solver", "rk4", "--num-samples", "4",
                 "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["sample", "--checkpoint", str(run), "--ode-solver", "rk4", "--solver-options", '{"num_steps": 3}',
                 "--num-samples", "4", "--out", str(tmp_path / "o3"), "--no-progress"]) == 0
    assert "(NFE 12)" in capsys.readouterr().out  # 3 RK4 steps of 4 evaluations: the option reached the solver
    assert main(["likelihood", "--checkpoint", str(run), "--max-samples", "8", "--rtol", "1e-3", "--atol", "1e-3",
                 "--out", str(tmp_path / "l.json"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "l.json").read_text())
    assert summary["n"] == 8 and summary["dequantized"] is False and summary["mean_bpd"] == summary["mean_bpd"]
    from scoreflow.training import load_checkpoint

    assert summary["eps"] == load_checkpoint(run).meta["config"]["eps"]  # from the run's training eps
    assert main(["likelihood", "--checkpoint", str(run), "--max-samples", "2", "--rtol", "1e-3", "--atol", "1e-3",
                 "--eps", "0.01", "--out", str(tmp_path / "l2.json"), "--no-progress"]) == 0
    assert json.loads((tmp_path / "l2.json").read_text())["eps"] == 0.01
    assert main(["likelihood", "--checkpoint", str(run), "--max-samples", "2", "--method", "exponential",
                 "--num-steps", "4", "--out", str(tmp_path / "l3.json"), "--no-progress"]) == 0
    fast = json.loads((tmp_path / "l3.json").read_text())
    assert fast["method"] == "exponential" and fast["nfe_per_batch"] == {"min": 13, "max": 13}
    capsys.readouterr()
    assert main(["likelihood", "--checkpoint", str(run), "--max-samples", "2", "--method", "exponential",
                 "--solver", "rk4", "--out", str(tmp_path / "l4.json"), "--no-progress"]) == 2
    assert "--solver applies to --method ode; --method exponential integrates with its own" in capsys.readouterr().err
    assert main(["evaluate", "--checkpoint", str(run), "--num-samples", "64", "--num-steps", "20",
                 "--out", str(tmp_path / "e.json"), "--no-progress"]) == 0
    quality = json.loads((tmp_path / "e.json").read_text())
    assert quality["n_samples"] == 64 and quality["sliced_wasserstein"] > 0
    capsys.readouterr()
    # a component the checkpoint's SDE cannot serve is refused before sampling starts, naming what is missing
    assert main(["sample", "--checkpoint", str(run), "--predictor", "reverse_diffusion", "--num-steps", "5",
                 "--predictor-options", '{"bogus": 1}', "--out", str(tmp_path / "x")]) == 2
    assert "bogus" in capsys.readouterr().err
    if "ancestral" in get_host().available("predictor"):  # scoreflow-vp installed: needs VP's discrete chain
        assert main(["sample", "--checkpoint", str(run), "--predictor", "ancestral", "--num-steps", "5",
                     "--out", str(tmp_path / "x")]) == 2
        err = capsys.readouterr().err
        assert "requires SDE capabilities ['discrete_betas']" in err and "sampling" not in err, err
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("argv", "message"), [
    (["list", "predictors"], "invalid choice: 'predictors'"),
    (["oracle-demo", "--num-steps", "-3"], "expected a positive integer, got '-3'"),
    (["train", "--out", "x", "--model-options", "[1]"], "expected a JSON object"),
    (["train", "--out", "x", "--grad-clip", "abc"], "expected a number or 'none'"),
    (["sample"], "the following arguments are required: --checkpoint"),
])
def test_bad_arguments_are_named(argv, message, capsys):
    with pytest.raises(SystemExit):
        main(argv)
    assert message in capsys.readouterr().err


@pytest.mark.parametrize(("argv", "message"), [
    (["train", "--out", "{tmp}/r", "--weighting", "l1"], "Unknown weighting 'l1'. Available: edm, likelihood, sigma2"),
    (["train", "--out", "{tmp}/r", "--dataset", "mnistt"], "Unknown dataset 'mnistt'"),
    (["sample", "--checkpoint", "{tmp}/nothing"], "no scoreflow checkpoint at"),
])
def test_bad_values_give_clear_errors(argv, message, tmp_path, capsys):
    assert main([a.replace("{tmp}", str(tmp_path)) for a in argv]) == 2
    assert message in capsys.readouterr().err


def test_oracle_demo_writes_picture_and_report(tmp_path, capsys):
    assert main(["oracle-demo", "--out", str(tmp_path), "--num-samples", "300", "--num-steps", "100"]) == 0
    report = (tmp_path / "report.md").read_text()
    assert (tmp_path / "samples.png").stat().st_size > 10_000
    for name in ("euler", "euler + langevin", "torchsde (srk)", "probability-flow ODE (dopri5)"):
        assert f"| {name} |" in report


def test_demo_parser_defaults():
    args = build_parser().parse_args(["digits-demo"])
    assert args.out == "scoreflow-digits-demo" and args.steps is None
    args = build_parser().parse_args(["demo"])
    assert args.out == "scoreflow-demo" and args.num_steps is None and args.model == "mnist" and args.bpd_images == 200


def test_bench_alias_hands_its_options_to_the_benchmarks(capsys):
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--help"])
    assert exc.value.code == 0 and "usage: python -m benchmarks" in capsys.readouterr().out
    with pytest.raises(SystemExit) as exc:
        main(["bench", "--suites", "nope"])
    assert exc.value.code == 2 and "unknown suite(s) ['nope']" in capsys.readouterr().err


def test_bench_outside_the_checkout_runs_it_in_a_child_process_and_leaves_the_import_path(monkeypatch, capfd):
    import importlib.util
    import sys

    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "benchmarks" else real(name, *a))
    before = list(sys.path)
    assert main(["bench", "--suites", "nope"]) == 2
    assert sys.path == before and "unknown suite(s) ['nope']" in capfd.readouterr().err


def test_unknown_options_of_other_commands_are_still_refused(capsys):
    with pytest.raises(SystemExit):
        main(["list", "predictor", "--bogus"])
    assert "unrecognized arguments: --bogus" in capsys.readouterr().err


@pytest.mark.parametrize("command", ["train", "sample", "likelihood"])
@pytest.mark.parametrize("device, match", [("bogus", "Unknown device 'bogus'. Allowed: cpu, cuda"),
                                           ("cuda:7", "device 'cuda:7' requested, but")])
def test_bad_devices_are_named_before_any_work(tmp_path, capsys, command, device, match):
    import torch

    if device.startswith("cuda") and torch.cuda.device_count() > 7:
        pytest.skip("this machine has 8 GPUs")
    argv = {"train": ["train", "--out", str(tmp_path / "r"), "--steps", "1"],
            "sample": ["sample", "--checkpoint", "mnist-tutorial", "--out", str(tmp_path / "s")],
            "likelihood": ["likelihood", "--checkpoint", "mnist-tutorial"]}[command]
    assert main([*argv, "--device", device]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scoreflow: error:") and match in err and "Traceback" not in err
    assert not any(tmp_path.iterdir())


def test_sample_refuses_an_unwritable_out_before_sampling(tmp_path, capsys):
    blocker = tmp_path / "file"
    blocker.write_text("not a folder")
    assert main(["sample", "--checkpoint", "mnist-tutorial", "--out", str(blocker / "sub"), "--num-steps", "2",
                 "--num-samples", "1", "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "cannot write to output folder" in err and "Traceback" not in err
    assert blocker.read_text() == "not a folder"


@pytest.mark.parametrize("argv, match", [
    (["--ode-solver", "rk45"], "Unknown ode_solver 'rk45'"),
    (["--ode-solver", "dopri5", "--eps", "2"], "eps must lie in (0, T=1.0), got 2.0"),
    (["--eps", "2"], "eps must lie in (0, T=1.0), got 2.0"),
    (["--predictor", "eulr"], "Unknown predictor 'eulr'"),
    (["--solver-options", '{"num_steps": 3}'], "--solver-options applies to --ode-solver sampling"),
    (["--ode-solver", "rk4", "--solver-options", '{"num_steps": 0}'], "num_steps"),
    (["--ode-solver", "rk4", "--solver-options", '{"stepz": 3}'], "stepz"),
])
def test_sample_refuses_bad_sampler_options_before_writing(tmp_path, capsys, argv, match):
    assert main(["sample", "--checkpoint", "mnist-tutorial", "--out", str(tmp_path / "s"), "--no-progress",
                 *argv]) == 2
    err = capsys.readouterr().err
    assert match in err and "Traceback" not in err
    assert not (tmp_path / "s").exists()


def test_likelihood_dequantizes_over_the_datasets_own_levels(tmp_path, capsys):
    run = tmp_path / "run"
    assert main(["train", "--dataset", "digits", "--dequantize", "--steps", "2", "--batch-size", "8",
                 "--model-options", '{"channels": [8, 16, 16, 16], "embed_dim": 16}', "--out", str(run),
                 "--no-progress"]) == 0
    assert main(["likelihood", "--checkpoint", str(run), "--max-samples", "4", "--method", "exponential",
                 "--num-steps", "2", "--out", str(tmp_path / "l.json"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "l.json").read_text())
    assert summary["dequantized"] is True and summary["quantization_levels"] == 17


def test_dequantize_on_continuous_data_is_refused(tmp_path, capsys):
    code = main(["train", "--dataset", "ring", "--model", "mlp", "--dequantize", "--steps", "1",
                 "--out", str(tmp_path / "run"), "--no-progress"])
    assert code == 2 and "dataset 'ring' is continuous" in capsys.readouterr().err


def _folder_run(tmp_path):
    """A folder of six grey 8x8 images and a one-step run trained on it: ``(images, run)``."""
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    for i in range(6):
        Image.new("L", (8, 8), color=i * 40).save(images / f"{i}.png")
    run = tmp_path / "run"
    assert main(["train", "--dataset", "folder", "--data-dir", str(images), "--steps", "1", "--batch-size", "2",
                 "--model-options", '{"channels": [8, 16, 16, 16], "embed_dim": 16}', "--out", str(run),
                 "--no-progress"]) == 0
    return images, run


def test_a_missing_data_folder_names_the_one_the_run_was_trained_on(tmp_path, capsys):
    images, run = _folder_run(tmp_path)
    capsys.readouterr()
    code = main(["likelihood", "--checkpoint", str(run), "--max-samples", "1", "--out", str(tmp_path / "l.json"),
                 "--no-progress"])
    err = capsys.readouterr().err
    assert code == 2 and f"the run was trained with --data-dir {str(images)!r}" in err and "Traceback" not in err


def test_evaluate_on_an_unlabelled_folder_reports_quality_beside_real_and_noise_references(tmp_path, capsys):
    """No labels: Frechet distance and KID in the autoencoder's features, each beside real held-out images' and
    noise's, the memorisation share, and held-out bits/dim beside training images' and noise's."""
    from PIL import Image

    images = tmp_path / "images"
    images.mkdir()
    g = torch.Generator().manual_seed(0)
    for i in range(20):
        pixels = (torch.rand(8, 8, generator=g) * 255).to(torch.uint8).numpy()
        Image.fromarray(pixels, mode="L").save(images / f"{i}.png")
    run = tmp_path / "run"
    assert main(["train", "--dataset", "folder", "--data-dir", str(images), "--steps", "1", "--batch-size", "2",
                 "--model-options", '{"channels": [8, 16, 16, 16], "embed_dim": 16}', "--out", str(run),
                 "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run), "--data-dir", str(images), "--num-samples", "6",
                 "--num-steps", "2", "--bpd-images", "2", "--out", str(tmp_path / "e.json"), "--no-progress"]) == 0
    summary = json.loads((tmp_path / "e.json").read_text())
    assert summary["features"] == "autoencoder" and summary["n_samples"] == 6
    for figures in (summary, summary["references"]["real_images"], summary["references"]["uniform_noise"]):
        assert math.isfinite(figures["frechet_distance"]) and math.isfinite(figures["kid"])
    assert 0 <= summary["memorisation"]["share_closer_than_held_out"] <= 1
    bpd = summary["bits_per_dim"]
    assert bpd["quantization_levels"] == 256 and bpd["held_out"]["n"] == bpd["uniform_noise"]["n"] == 2
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(run), "--data-dir", str(images), "--features", "classifier",
                 "--num-samples", "2", "--num-steps", "2", "--out", str(tmp_path / "e2"), "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert "need a labelled dataset" in err and "--features autoencoder" in err


def test_flags_that_override_a_preset_or_config_say_so(tmp_path, capsys):
    """Precedence is flag > config file > preset > defaults, and each override is one line on stderr."""
    import argparse

    from scoreflow.cli.training_commands import TrainOptions, precedence_notes

    config = tmp_path / "c.toml"
    config.write_text("[train]\ndataset = 'two_moons'\nmodel = 'mlp'\nbatch_size = 8\nlr = 0.01\n")
    assert main(["train", "--config", str(config), "--steps", "1", "--lr", "0.001", "--out", str(tmp_path / "run"),
                 "--no-progress"]) == 0
    err = capsys.readouterr().err
    assert f"--lr overrides config {config}'s lr = 0.01 (now 0.001)" in err
    assert "--batch-size" not in err  # the config's value stands, nothing overrode it
    from scoreflow.training import load_checkpoint

    saved = load_checkpoint(tmp_path / "run").meta["config"]
    assert saved["lr"] == 0.001 and saved["batch_size"] == 8 and saved["steps"] == 1
    options = TrainOptions(out="run", preset="mnist-tutorial")
    notes = precedence_notes(options, {"epochs": 50, "lr": 1e-3}, {"steps": 3, "epochs": None, "lr": 1e-3})
    assert notes == ["--steps overrides preset mnist-tutorial's epochs = 50 (now None)"]

