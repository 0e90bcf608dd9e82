"""Bad input, second suite: the commands and options added since the first (tests/test_bad_inputs.py).

Image-to-image, encoding, interpolation, inpainting, calibration, classifier training, classifier-free and
classifier guidance, truncated sampling, resampling, presets, fine-tuning, run ownership, plugin controls. Each
CLI case asserts what the first suite does: exit status 2, no traceback, a last line ``scoreflow...: error: ...``
naming the bad value, and no file under the test's folder (or in the runs it reads) created, changed or deleted.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from scoreflow.cli import main
from tests.test_bad_inputs import _prepare, _snapshot, run_cli_expecting_error, tiny_run  # noqa: F401 (a fixture)

TINY_IMAGES = ["--dataset", "digits", "--model-options", '{"channels": [8, 16, 16, 16], "embed_dim": 16}',
               "--batch-size", "16", "--steps", "2", "--no-progress"]


@pytest.fixture(scope="module")
def image_runs(tmp_path_factory) -> dict[str, Path]:
    """A tiny unconditional and a tiny class-conditional digits run, outside every test's watched folder."""
    root = tmp_path_factory.mktemp("images")
    runs = {"img": root / "img", "cond": root / "cond"}
    assert main(["train", "--out", str(runs["img"]), *TINY_IMAGES]) == 0
    assert main(["train", "--out", str(runs["cond"]), *TINY_IMAGES, "--class-dropout", "0.2"]) == 0
    (root / "wide.png").write_bytes(_png(12, 8))
    (root / "digit.png").write_bytes(_png(8, 8))
    runs["wide_png"], runs["png"] = root / "wide.png", root / "digit.png"
    return runs


def _png(width: int, height: int) -> bytes:
    import io

    from PIL import Image

    buffer = io.BytesIO()
    Image.new("L", (width, height), 128).save(buffer, format="PNG")
    return buffer.getvalue()


OUT = ["--out", "{tmp}/out"]
IMAGES = ["--images", "test", "--count", "2"]
I2I_BARE = ["img2img", "--checkpoint", "{img}", *IMAGES, *OUT, "--num-steps", "2", "--no-progress"]
I2I = [*I2I_BARE, "--noise-level", "0.5"]
ENC = ["encode", "--checkpoint", "{img}", *IMAGES, *OUT]
INTERP = ["interpolate", "--checkpoint", "{img}", "--images", "test", *OUT]
INPAINT_BARE = ["inpaint", "--checkpoint", "{img}", *IMAGES, *OUT, "--num-steps", "2", "--no-progress"]
INPAINT = [*INPAINT_BARE, "--mask", "bottom-half"]
CAL = ["calibrate", "--checkpoint", "{img}", "--num-images", "4", *OUT]
TC = ["train-classifier", "--checkpoint", "{img}", "--out", "{tmp}/clf", "--epochs", "1", "--no-progress"]
S_IMG = ["sample", "--checkpoint", "{img}", *OUT, "--num-samples", "2", "--num-steps", "2", "--no-progress"]
S_COND = ["sample", "--checkpoint", "{cond}", *OUT, "--num-samples", "2", "--num-steps", "2", "--no-progress"]
T_IMG = ["train", "--out", "{tmp}/out", *TINY_IMAGES]
S_RING = ["sample", "--checkpoint", "{run}", *OUT, "--num-samples", "2", "--num-steps", "2", "--no-progress"]
EVAL = ["evaluate", "--checkpoint", "{img}", "--num-samples", "4", "--num-steps", "2", "--no-progress"]
LIK = ["likelihood", "--checkpoint", "{img}", "--max-samples", "2", "--no-progress"]

CASES = [
    # img2img
    (I2I_BARE + ["--noise-level", "0"], "--noise-level"), (I2I_BARE + ["--noise-level", "-1"], "-1"),
    (I2I_BARE + ["--noise-level", "nan"], "nan"), (I2I_BARE + ["--noise-level", "inf"], "inf"),
    (I2I_BARE + ["--noise-level", "abc"], "abc"), (I2I_BARE + ["--noise-level", "1e9"], "1000000000.0"),
    (I2I_BARE + ["--start-time", "0"], "start_time"), (I2I_BARE + ["--start-time", "2"], "2"),
    (I2I_BARE + ["--start-time", "-0.5"], "-0.5"), (I2I_BARE + ["--start-time", "nan"], "nan"),
    (I2I_BARE, "exactly one of --noise-level"), (I2I + ["--start-time", "0.5"], "exactly one of --noise-level"),
    (I2I + ["--count", "0"], "0"), (I2I + ["--count", "-2"], "-2"), (I2I + ["--count", "x"], "x"),
    (I2I + ["--start", "-1"], "-1"), (I2I + ["--start", "100000"], "100000"),
    (I2I + ["--images", "val"], "val"), (I2I + ["--images", "{tmp}/missing.png"], "missing.png"),
    (I2I + ["--images", "{tmp}/notes.txt"], "notes.txt"), (I2I + ["--images", "{wide_png}"], "12x8"),
    (I2I + ["--num-steps", "0"], "0"), (I2I + ["--predictor", "eulr"], "eulr"),
    (I2I + ["--corrector", "lang"], "lang"), (I2I + ["--schedule", "nope"], "nope"),
    (I2I + ["--resample", "-1"], "-1"), (I2I + ["--resample-jump", "0"], "0"),
    (I2I + ["--batch-size", "0"], "0"), (I2I + ["--device", "bogus"], "bogus"),
    (I2I + ["--dataset", "ring"], "ring"), (I2I + ["--dataset", "nope"], "nope"),
    (["img2img", "--checkpoint", "{run}", *IMAGES, *OUT, "--noise-level", "0.5"], "image models"),
    (["img2img", "--checkpoint", "{img}", *IMAGES, "--out", "{tmp}/blocker/x", "--noise-level", "0.5"], "blocker"),
    (["img2img", "--checkpoint", "{tmp}/missing", *IMAGES, *OUT, "--noise-level", "0.5"], "missing"),
    # encode
    (ENC + ["--solver", "rk45"], "rk45"), (ENC + ["--rtol", "0"], "rtol"), (ENC + ["--rtol", "-1"], "-1"),
    (ENC + ["--atol", "nan"], "nan"), (ENC + ["--eps", "0"], "eps"), (ENC + ["--eps", "2"], "2"),
    (ENC + ["--eps", "nan"], "nan"), (ENC + ["--count", "0"], "0"), (ENC + ["--batch-size", "0"], "0"),
    (ENC + ["--device", "cuda:7"], "cuda:7"), (ENC + ["--images", "{tmp}/missing.png"], "missing.png"),
    (ENC + ["--images", "{wide_png}"], "12x8"), (ENC + ["--start", "-5"], "-5"),
    (["encode", "--checkpoint", "{run}", *IMAGES, *OUT], "image models"),
    (["encode", "--checkpoint", "{img}", *IMAGES, "--out", "{tmp}/blocker/x"], "blocker"),
    (["encode", "--checkpoint", "{tmp}/ckpts/corrupt_meta", *IMAGES, *OUT], "meta.json"),
    # interpolate
    (INTERP + ["--frames", "0"], "0"), (INTERP + ["--frames", "1"], "frames"), (INTERP + ["--frames", "-3"], "-3"),
    (INTERP + ["--frames", "x"], "x"), (INTERP + ["--frames", "100000"], "100000"),
    (INTERP + ["--solver", "nope"], "nope"), (INTERP + ["--rtol", "0"], "rtol"), (INTERP + ["--eps", "5"], "5"),
    (["interpolate", "--checkpoint", "{img}", "--images", "{png}", *OUT], "two images"),
    (["interpolate", "--checkpoint", "{img}", "--images", "test", "--start", "9999", *OUT], "9999"),
    (["interpolate", "--checkpoint", "{img}", "--images", "{png}", "{png}", "{png}", *OUT], "two images"),
    (["interpolate", "--checkpoint", "{img}", "--images", "{png}", "{wide_png}", *OUT], "12x8"),
    (["interpolate", "--checkpoint", "{run}", "--images", "test", *OUT], "image models"),
    (INTERP + ["--device", "bogus"], "bogus"),
    # inpaint
    (INPAINT_BARE + ["--mask", "diagonal"], "diagonal"),
    (INPAINT_BARE + ["--mask", "random:0"], "random:0"),
    (INPAINT_BARE + ["--mask", "random:1.5"], "random:1.5"),
    (INPAINT_BARE + ["--mask", "random:x"], "random:x"),
    (INPAINT_BARE + ["--mask", "{tmp}/missing.png"], "missing.png"),
    (INPAINT_BARE + ["--mask", "{wide_png}"], "12x8"),
    (INPAINT + ["--count", "0"], "0"), (INPAINT + ["--num-steps", "-1"], "-1"),
    (INPAINT + ["--predictor", "nope"], "nope"), (INPAINT + ["--resample", "x"], "x"),
    (INPAINT + ["--resample", "2", "--resample-jump", "-1"], "-1"), (INPAINT + ["--snr", "-1"], "-1"),
    (INPAINT + ["--device", "cuda:7"], "cuda:7"), (INPAINT + ["--images", "{tmp}/notes.txt"], "notes.txt"),
    (INPAINT + ["--start", "99999"], "99999"),
    (["inpaint", "--checkpoint", "{run}", *IMAGES, "--mask", "bottom-half", *OUT], "image models"),
    (["inpaint", "--checkpoint", "{img}", *IMAGES, "--mask", "bottom-half", "--out", "{tmp}/blocker/x"], "blocker"),
    # calibrate
    (CAL + ["--num-images", "0"], "0"), (CAL + ["--num-images", "-4"], "-4"), (CAL + ["--margin", "-1"], "-1"),
    (CAL + ["--margin", "nan"], "nan"), (CAL + ["--noise-levels", "0"], "0"), (CAL + ["--noise-levels", "-1"], "-1"),
    (CAL + ["--noise-levels", "x"], "x"), (CAL + ["--dataset", "nope"], "nope"), (CAL + ["--device", "bogus"], "bogus"),
    (["calibrate", "--checkpoint", "{img}", "--out", "{tmp}/blocker/x"], "blocker"),
    (["calibrate", "--checkpoint", "{tmp}/missing"], "missing"),
    # train-classifier
    (TC + ["--epochs", "0"], "0"), (TC + ["--epochs", "x"], "x"), (TC + ["--batch-size", "0"], "0"),
    (TC + ["--lr", "0"], "lr"), (TC + ["--lr", "-1"], "-1"), (TC + ["--lr", "nan"], "nan"),
    (TC + ["--eps", "0"], "eps"), (TC + ["--eps", "2"], "2"), (TC + ["--model", "resnet"], "resnet"),
    (TC + ["--model-options", "[1]"], "expected a JSON object"), (TC + ["--model-options", '{"bogus": 1}'], "bogus"),
    (TC + ["--device", "bogus"], "bogus"),
    (["train-classifier", "--checkpoint", "{tmp}/missing", "--out", "{tmp}/clf"], "missing"),
    (["train-classifier", "--checkpoint", "{img}", "--out", "{tmp}/blocker/c"], "blocker"),
    (["train-classifier", "--checkpoint", "{run}", "--out", "{tmp}/clf", "--dataset", "x"], "--dataset"),
    # guidance on an unconditional checkpoint
    (S_IMG + ["--class", "3"], "--class needs --classifier"), (S_IMG + ["--guidance-scale", "2"], "without --class"),
    (S_IMG + ["--classifier", "mnist"], "--classifier given without --class"),
    (S_IMG + ["--class", "3", "--classifier", "{tmp}/missing"], "missing"),
    (S_IMG + ["--class", "-1", "--classifier", "mnist"], "-1"),
    (S_IMG + ["--class", "x"], "x"),
    (S_IMG + ["--class", "3", "--classifier", "mnist", "--guidance-scale", "-1"], "-1"),
    (S_IMG + ["--class", "3", "--classifier", "mnist", "--guidance-scale", "nan"], "nan"),
    # classifier-free guidance on a class-conditional checkpoint
    (S_COND + ["--class", "10"], "--class 10"), (S_COND + ["--class", "-1"], "-1"),
    (S_COND + ["--class", "3", "--classifier", "mnist"], "needs no --classifier"),
    (S_COND + ["--class", "3", "--guidance-scale", "-1.5"], "-1.5"),
    (S_COND + ["--class", "3", "--guidance-scale", "inf"], "inf"),
    (S_COND + ["--class", "3", "--guidance-scale", "abc"], "abc"),
    (S_COND + ["--guidance-scale", "2"], "without --class"),
    (S_COND + ["--class", "3", "--ode-solver", "rk45"], "rk45"),
    (S_COND + ["--class", "3", "--num-steps", "0"], "0"),
    # truncated sampling and resampling
    (S_IMG + ["--start-time", "0"], "start_time"), (S_IMG + ["--start-time", "1.5"], "1.5"),
    (S_IMG + ["--start-time", "nan"], "nan"), (S_IMG + ["--start-time", "0.5", "--ode-solver", "rk4"], "--start-time"),
    (S_IMG + ["--start-time", "0.5", "--eps", "0.6"], "0.6"),
    (S_IMG + ["--resample", "-2"], "-2"), (S_IMG + ["--resample", "1.5"], "1.5"),
    (S_IMG + ["--resample", "2", "--resample-jump", "0"], "0"),
    (S_IMG + ["--resample-jump", "5"], "--resample-jump"),
    (S_IMG + ["--ode-denoise"], "--ode-denoise"),
    (S_IMG + ["--solver-options", '{"num_steps": 3}'], "--solver-options"),
    (S_IMG + ["--ode-solver", "rk4", "--solver-options", '{"num_steps": 0}'], "num_steps"),
    (S_IMG + ["--ode-solver", "rk4", "--solver-options", "[3]"], "expected a JSON object"),
    (S_RING + ["--start-time", "0.5", "--schedule", "nope"], "nope"),
    # train: labels, fine-tuning, presets, ownership
    (T_IMG + ["--class-dropout", "1"], "class_dropout"), (T_IMG + ["--class-dropout", "-0.1"], "-0.1"),
    (T_IMG + ["--class-dropout", "x"], "x"), (T_IMG + ["--class-dropout", "nan"], "nan"),
    (T_IMG + ["--class-dropout", "inf"], "inf"),
    (["train", "--out", "{tmp}/out", "--dataset", "checkerboard", "--model", "mlp", "--steps", "2",
      "--class-dropout", "0.1"], "has no labels"),
    (T_IMG + ["--model-options", '{"num_classes": 10}'], "class_dropout"),
    (T_IMG + ["--class-dropout", "0.1", "--model-options", '{"num_classes": 3}'], "num_classes"),
    (T_IMG + ["--init-from", "{tmp}/missing"], "missing"), (T_IMG + ["--init-from", ""], "init_from"),
    (T_IMG + ["--init-from", "pretrained:nope"], "nope"), (T_IMG + ["--init-from", "{run}"], "do not fit"),
    (T_IMG + ["--preset", "mnist", "--model", "nope"], "nope"),
    (T_IMG + ["--keep-last", "x"], "x"), (T_IMG + ["--checkpoint-every", "x"], "x"),
    (T_IMG + ["--warmup", "-1"], "-1"), (T_IMG + ["--weight-decay", "-1"], "-1"),
    (T_IMG + ["--p-std", "0"], "p_std"), (T_IMG + ["--sigma-data", "-1"], "-1"),
    (T_IMG + ["--preconditioning", "karras"], "karras"), (T_IMG + ["--weighting-options", "[1]"], "JSON object"),
    (T_IMG + ["--weighting-options", '{"x": 1}'], "weighting_options"),
    (T_IMG + ["--amp", "--device", "bogus"], "bogus"),
    (["train", "--out", "{run}", "--resume", "--overwrite", "--dataset", "ring", "--model", "mlp"], "--resume"),
    (["train", "--out", "{tmp}/empty-run", "--resume", "--dataset", "ring", "--model", "mlp", "--steps", "2"],
     "holds no run to resume"),
    (["train", "--out", "{run}", "--resume", "--steps", "1"], "cannot resume"),
    # evaluate and likelihood options added since
    (EVAL + ["--features", "nope"], "nope"), (EVAL + ["--bpd-images", "-1"], "-1"),
    (EVAL + ["--dataset", "ring"], "ring"), (EVAL + ["--out", "{tmp}/blocker/e.json"], "blocker"),
    (LIK + ["--method", "euler"], "euler"), (LIK + ["--method", "exponential", "--num-steps", "0"], "0"),
    (LIK + ["--method", "exponential", "--solver", "dopri5"], "--solver"),
    (LIK + ["--method", "exponential", "--time-variable", "t"], "--time-variable"),
    (LIK + ["--method", "exponential", "--logp-atol", "1e-3"], "--logp-atol"),
    (LIK + ["--rtol", "0"], "rtol"), (LIK + ["--solver", "rk45"], "rk45"), (LIK + ["--eps", "-1"], "eps"),
    (LIK + ["--estimator", "exact", "--n-probes", "4"], "n_probes"),
    (LIK + ["--dataset", "ring"], "ring"), (LIK + ["--method", "exponential", "--rtol", "1e-3"], "--rtol"),
    # plugin and pretrained controls
    (["sample", "--checkpoint", "diffusers:{tmp}/missing", *OUT], "missing"),
    (["sample", "--checkpoint", "nosuchsource:x", *OUT], "nosuchsource"),
    (["list", "conditions"], "invalid choice: 'conditions'"),
    (["presets", "--bogus"], "--bogus"),
]


def _files(folder: Path) -> dict[str, tuple[int, float]]:
    return {k: v for k, v in _snapshot(folder).items() if Path(k).name != ".lock"}


def _fill(text: str, paths: dict[str, str]) -> str:
    for key, value in paths.items():
        text = text.replace("{" + key + "}", value)
    return text


@pytest.mark.parametrize(("argv", "words"), CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CASES])
def test_newer_options_name_the_bad_value_and_write_nothing(argv, words, tiny_run, image_runs, tmp_path, capsys,
                                                            monkeypatch):
    paths = {**_prepare(tmp_path, tiny_run), **{k: str(v) for k, v in image_runs.items()}}
    (tmp_path / "empty-run").mkdir()
    monkeypatch.chdir(tmp_path)
    watched = [tmp_path, tiny_run, image_runs["img"], image_runs["cond"]]  # a run's .lock is bookkeeping: not compared
    before = [_files(folder) for folder in watched]
    run_cli_expecting_error([_fill(a, paths) for a in argv], _fill(words, paths), capsys)
    after = [_files(folder) for folder in watched]
    assert after[1:] == before[1:], "a run that was only read changed"
    out = tmp_path / "out"
    created = {k for k in set(after[0]) - set(before[0]) if not (out.exists() and k.startswith("out/"))}
    assert not created and all(after[0].get(k) == v for k, v in before[0].items()), (created, argv)
    assert not out.exists() or not any(out.rglob("*")), f"{out} is not empty"


def test_the_second_suite_is_as_large_as_promised():
    assert len(CASES) >= 150
