"""`scoreflow train-classifier`, `scoreflow inpaint` and `scoreflow sample --class` end to end on tiny runs."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file

from scoreflow.cli import main

TINY_ARGS = ["--dataset", "digits", "--model-options", '{"channels": [8, 16, 16, 16], "embed_dim": 16}',
             "--batch-size", "16", "--steps", "4", "--no-progress"]


@pytest.fixture(scope="module")
def digits_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "digits"
    assert main(["train", "--out", str(run), *TINY_ARGS]) == 0
    clf = run.parent / "clf"
    assert main(["train-classifier", "--checkpoint", str(run), "--out", str(clf), "--epochs", "1",
                 "--model-options", '{"channels": [8, 8, 8], "embed_dim": 16}', "--no-progress"]) == 0
    return run, clf


def test_train_classifier_writes_weights_and_accuracy_per_noise_level(digits_run, capsys):
    _, clf = digits_run
    meta = json.loads((clf / "classifier.json").read_text())
    assert meta["classifier"] == "conv" and meta["options"]["n_classes"] == 10 and meta["dataset"] == "digits"
    assert set(meta["test_accuracy_by_noise_level"]) == {"0", "0.1", "0.5", "1", "2", "5"}
    assert all(0 <= a <= 1 for a in meta["test_accuracy_by_noise_level"].values())
    # a second run into the same folder is refused, with --overwrite it replaces it
    run, _ = digits_run
    assert main(["train-classifier", "--checkpoint", str(run), "--out", str(clf), "--epochs", "1"]) == 2
    assert "already holds a classifier" in capsys.readouterr().err


def test_sample_with_class_guidance(digits_run, tmp_path):
    run, clf = digits_run
    out = tmp_path / "s"
    assert main(["sample", "--checkpoint", str(run), "--class", "3", "--classifier", str(clf), "--guidance-scale",
                 "2", "--num-samples", "4", "--num-steps", "5", "--out", str(out), "--no-progress"]) == 0
    samples = load_file(str(out / "samples.safetensors"))["samples"]
    assert samples.shape == (4, 1, 8, 8) and torch.isfinite(samples).all()


@pytest.mark.parametrize(("argv", "match"), [
    (["--class", "3"], "--class needs --classifier"),
    (["--classifier", "CLF"], "--classifier given without --class"),
    (["--class", "12", "--classifier", "CLF"], r"--class 12 is not a class .* \(allowed: 0..9\)"),
    (["--class", "3", "--classifier", "CLF", "--ode-solver", "rk4"], "cannot apply to --ode-solver rk4"),
    (["--class", "3", "--classifier", "/nonexistent/clf"], "no classifier at"),
    (["--resample", "2", "--ode-solver", "rk4"], "--resample apply to predictor-corrector sampling"),
])
def test_bad_guidance_options_are_named(digits_run, tmp_path, capsys, argv, match):
    import re

    run, clf = digits_run
    argv = [str(clf) if a == "CLF" else a for a in argv]
    assert main(["sample", "--checkpoint", str(run), "--num-samples", "2", "--num-steps", "2",
                 "--out", str(tmp_path / "x"), *argv]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


@pytest.mark.parametrize(("mask", "extra"), [("bottom-half", []), ("left-half", []), ("random:0.5", []),
                                            ("bottom-half", ["--resample", "2", "--resample-jump", "2"])])
def test_inpaint_test_images(digits_run, tmp_path, mask, extra):
    run, _ = digits_run
    out = tmp_path / "inp"
    assert main(["inpaint", "--checkpoint", str(run), "--images", "test", "--count", "5", "--mask", mask,
                 "--num-steps", "5", "--batch-size", "3", "--out", str(out), "--no-progress", *extra]) == 0
    saved = load_file(str(out / "inpaint.safetensors"))
    assert saved["inpainted"].shape == saved["images"].shape == (5, 1, 8, 8) and saved["labels"].shape == (5,)
    known = saved["mask"].expand_as(saved["images"])
    assert torch.equal(saved["inpainted"][known], saved["images"][known]) and (out / "inpaint.png").stat().st_size


def test_inpaint_png_images_and_mask(digits_run, tmp_path):
    from PIL import Image

    run, _ = digits_run
    img = tmp_path / "digit.png"
    Image.fromarray((torch.rand(8, 8) * 255).byte().numpy(), "L").save(img)
    mask = torch.zeros(8, 8, dtype=torch.uint8)
    mask[:, :3] = 255
    Image.fromarray(mask.numpy(), "L").save(tmp_path / "mask.png")
    assert main(["inpaint", "--checkpoint", str(run), "--images", str(img), str(img), "--mask",
                 str(tmp_path / "mask.png"), "--num-steps", "3", "--out", str(tmp_path / "o"), "--no-progress"]) == 0
    saved = load_file(str(tmp_path / "o" / "inpaint.safetensors"))
    assert saved["inpainted"].shape == (2, 1, 8, 8) and int(saved["mask"].sum()) == 24


@pytest.mark.parametrize(("argv", "match"), [
    (["--images", "test", "--mask", "diagonal"], "unknown mask 'diagonal'"),
    (["--images", "test", "--mask", "random:2"], "0 < P < 1"),
    (["--images", "missing.png", "--mask", "bottom-half"], "not a readable image"),
    (["--images", "test", "--start", "100000", "--mask", "bottom-half"], "--start 100000 is outside"),
    (["--images", "test", "--mask", "bottom-half", "--predictor", "bogus"], "bogus"),
])
def test_bad_inpaint_options_are_named(digits_run, tmp_path, capsys, argv, match):
    import re

    run, _ = digits_run
    assert main(["inpaint", "--checkpoint", str(run), "--num-steps", "2", "--out", str(tmp_path / "x"), *argv]) == 2
    assert re.search(match, capsys.readouterr().err)


@pytest.mark.parametrize(("argv", "match"), [(["--resample", "-1"], "non-negative integer, got '-1'"),
                                             (["--resample-jump", "0"], "positive integer, got '0'")])
def test_bad_resampling_options_are_usage_errors(tmp_path, capsys, argv, match):
    with pytest.raises(SystemExit) as stop:
        main(["inpaint", "--checkpoint", "x", "--images", "test", "--mask", "bottom-half", *argv])
    assert stop.value.code == 2 and match in capsys.readouterr().err


def test_img2img_keeps_the_images_at_low_noise(digits_run, tmp_path):
    """From noise level 0.05 the output stays near each input; from the SDE's top level it does not."""
    run, _ = digits_run
    out = tmp_path / "low"
    assert main(["img2img", "--checkpoint", str(run), "--images", "test", "--count", "6", "--noise-level", "0.05",
                 "--num-steps", "5", "--corrector", "none", "--batch-size", "4", "--out", str(out),
                 "--no-progress"]) == 0
    saved = load_file(str(out / "img2img.safetensors"))
    assert saved["img2img"].shape == saved["images"].shape == (6, 1, 8, 8) and saved["labels"].shape == (6,)
    assert (out / "img2img.png").stat().st_size
    near = float((saved["img2img"] - saved["images"]).abs().mean())
    assert main(["img2img", "--checkpoint", str(run), "--images", "test", "--count", "6", "--start-time", "1",
                 "--num-steps", "5", "--corrector", "none", "--out", str(tmp_path / "top"), "--no-progress"]) == 0
    far = float((load_file(str(tmp_path / "top" / "img2img.safetensors"))["img2img"] - saved["images"]).abs().mean())
    assert near < 0.1 < far


def test_guided_and_repeated_img2img_keeps_the_kept_pixels(digits_run, tmp_path):
    """--mask bottom-half redraws the bottom half and holds the top at the given images' values (guided SDEdit);
    --repeats K runs K passes, each from the last one's result, so two passes differ from one with the same seed."""
    run, _ = digits_run
    common = ["img2img", "--checkpoint", str(run), "--images", "test", "--count", "4", "--start-time", "1",
              "--num-steps", "4", "--corrector", "none", "--mask", "bottom-half", "--no-progress"]
    assert main([*common, "--out", str(tmp_path / "one")]) == 0
    assert main([*common, "--repeats", "2", "--out", str(tmp_path / "two")]) == 0
    one, two = (load_file(str(tmp_path / name / "img2img.safetensors")) for name in ("one", "two"))
    top = slice(0, 4)  # the top half of the 8x8 digits
    assert torch.allclose(one["img2img"][..., top, :], one["images"][..., top, :], atol=1e-5)
    assert torch.allclose(two["img2img"][..., top, :], two["images"][..., top, :], atol=1e-5)
    assert not torch.allclose(one["img2img"], two["img2img"])


@pytest.mark.parametrize(("argv", "match"), [
    (["--noise-level", "0.5", "--mask", "bogus-half"], "bogus-half"),
    (["--noise-level", "0.5", "--repeats", "1000"], r"--repeats must lie in \[1, 100\]"),
    ([], "exactly one of --noise-level"),
    (["--noise-level", "0.5", "--start-time", "0.5"], "exactly one of --noise-level"),
    (["--noise-level", "1e9"], r"--noise-level 1000000000.0 is outside this SDE's noise levels"),
    (["--start-time", "1.5"], r"start_time must lie in \(eps, T\]"),
    (["--noise-level", "nan"], "outside"),
])
def test_bad_img2img_options_are_named(digits_run, tmp_path, capsys, argv, match):
    import re

    run, _ = digits_run
    assert main(["img2img", "--checkpoint", str(run), "--images", "test", "--count", "2", "--num-steps", "2",
                 "--out", str(tmp_path / "x"), *argv]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


def test_start_time_is_refused_with_an_ode_solver(digits_run, tmp_path, capsys):
    run, _ = digits_run
    assert main(["sample", "--checkpoint", str(run), "--num-samples", "2", "--ode-solver", "rk4", "--start-time",
                 "0.5", "--out", str(tmp_path / "x")]) == 2
    assert "--start-time applies to predictor-corrector sampling" in capsys.readouterr().err


def test_encode_and_interpolate_commands(digits_run, tmp_path, capsys):
    run, _ = digits_run
    out = tmp_path / "enc"
    assert main(["encode", "--checkpoint", str(run), "--images", "test", "--count", "5", "--batch-size", "3",
                 "--rtol", "1e-4", "--atol", "1e-4", "--out", str(out)]) == 0
    saved = load_file(str(out / "latents.safetensors"))
    assert saved["latents"].shape == saved["images"].shape == (5, 1, 8, 8) and saved["labels"].shape == (5,)
    # the round trip's accuracy is tested on exact scores (tests/test_encoding.py); this 4-step model's ODE is not
    # smooth, so only that the command reports what it stored
    stated = float(capsys.readouterr().out.split("differs by ")[1].split(" per pixel")[0])
    assert stated == pytest.approx(float(saved["reconstruction_error"].mean()), rel=1e-2)
    assert main(["interpolate", "--checkpoint", str(run), "--images", "test", "--start", "3", "--frames", "5",
                 "--rtol", "1e-4", "--atol", "1e-4", "--out", str(tmp_path / "int")]) == 0
    frames = load_file(str(tmp_path / "int" / "interpolation.safetensors"))
    assert frames["frames"].shape == (5, 1, 8, 8) and (tmp_path / "int" / "interpolation.png").stat().st_size
    assert torch.isfinite(frames["frames"]).all()


@pytest.mark.parametrize(("command", "argv", "match"), [
    ("encode", ["--solver", "bogus"], "bogus"),
    ("encode", ["--eps", "2"], "eps"),
    ("interpolate", ["--frames", "1"], "--frames must lie in [2, 256]"),
    ("interpolate", ["--count", "1"], "needs two images (two PNG files, or a split's --start and the next), got 1"),
])
def test_bad_encode_options_are_named(digits_run, tmp_path, capsys, command, argv, match):
    run, _ = digits_run
    assert main([command, "--checkpoint", str(run), "--images", "test", "--out", str(tmp_path / "x"), *argv]) == 2
    assert match in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


@pytest.fixture(scope="module")
def conditional_run(tmp_path_factory):
    run = tmp_path_factory.mktemp("runs") / "digits-cfg"
    assert main(["train", "--out", str(run), *TINY_ARGS, "--class-dropout", "0.2"]) == 0
    return run


def test_train_with_class_dropout_and_sample_a_class_with_free_guidance(conditional_run, tmp_path, capsys):
    from scoreflow.training import load_trained

    model, _, cfg = load_trained(conditional_run)
    assert cfg.class_dropout == 0.2 and model.num_classes == 10
    for extra in ([], ["--guidance-scale", "0"], ["--ode-solver", "rk4", "--solver-options", '{"num_steps": 3}']):
        out = tmp_path / f"s{len(extra)}"
        assert main(["sample", "--checkpoint", str(conditional_run), "--class", "7", *extra, "--num-samples", "3",
                     "--num-steps", "4", "--out", str(out), "--no-progress"]) == 0, capsys.readouterr().err
        samples = load_file(str(out / "samples.safetensors"))["samples"]
        assert samples.shape == (3, 1, 8, 8) and torch.isfinite(samples).all()


@pytest.mark.parametrize(("argv", "match"), [
    (["--class", "10"], r"--class 10 is not a class of this checkpoint \(allowed: 0..9\)"),
    (["--class", "3", "--classifier", "CLF"], "class-conditional: --class uses classifier-free guidance, which "
                                              "needs no --classifier"),
    (["--guidance-scale", "2"], "--guidance-scale given without --class"),
    (["--class", "3", "--guidance-scale", "-2"], r"--guidance-scale must be a finite number >= -1"),
    (["--class", "3", "--guidance-scale", "nan"], r"--guidance-scale must be a finite number >= -1"),
])
def test_bad_free_guidance_options_are_named(conditional_run, digits_run, tmp_path, capsys, argv, match):
    import re

    _, clf = digits_run
    argv = [str(clf) if a == "CLF" else a for a in argv]
    assert main(["sample", "--checkpoint", str(conditional_run), "--num-samples", "2", "--num-steps", "2",
                 "--out", str(tmp_path / "x"), *argv]) == 2
    assert re.search(match, capsys.readouterr().err)
    assert not (tmp_path / "x").exists()


def test_class_on_an_unconditional_checkpoint_says_which_guidance_it_supports(digits_run, tmp_path, capsys):
    run, _ = digits_run
    assert main(["sample", "--checkpoint", str(run), "--class", "3", "--num-samples", "2", "--out",
                 str(tmp_path / "x")]) == 2
    err = capsys.readouterr().err
    assert "this checkpoint is unconditional" in err and "--class-dropout" in err


def test_class_dropout_on_unlabelled_data_is_a_usage_error(tmp_path, capsys):
    assert main(["train", "--out", str(tmp_path / "r"), "--dataset", "checkerboard", "--model", "mlp",
                 "--class-dropout", "0.1", "--steps", "2", "--no-progress"]) == 2
    assert "dataset 'checkerboard' has no labels" in capsys.readouterr().err
