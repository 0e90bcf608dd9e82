"""Bad input, case by case: every CLI command and the public API name the bad value and change nothing.

For the command line each case asserts exit status 2, no traceback, a last line ``scoreflow...: error: ...``
that contains the expected words (the bad value and, where there is a list, what is allowed), and that no
file anywhere under the test's folder appeared, changed or vanished (an output folder the command was
given may exist afterwards, empty). For the API each case asserts the documented exception type and its
message.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

import scoreflow as sf
from scoreflow.cli import main
from scoreflow.training import TrainConfig
from tests.test_cli import TINY_TOML


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory) -> Path:
    """A trained 8-step run on the ring, outside every test's watched folder."""
    root = tmp_path_factory.mktemp("tiny")
    config = root / "tiny.toml"
    config.write_text(TINY_TOML)
    run = root / "run"
    assert main(["train", "--config", str(config), "--out", str(run), "--no-progress", "--seed", "3"]) == 0
    return run


def run_cli_expecting_error(argv: list[str], words: str, capsys) -> None:
    """Run the CLI on ``argv``: exit status 2, no traceback, a last line ``scoreflow...: error: ...`` holding
    ``words``."""
    try:
        code = main(argv)
    except SystemExit as exc:  # argparse's own errors
        code = exc.code
    err = capsys.readouterr().err
    assert code == 2, f"exit status {code}, stderr: {err[-500:]}"
    assert "Traceback" not in err, err
    last = err.strip().splitlines()[-1]
    assert last.startswith("scoreflow") and "error:" in last, err
    assert words in err, f"{words!r} not in {err!r}"


def _snapshot(folder: Path) -> dict[str, tuple[int, float]]:
    return {str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime)
            for p in folder.rglob("*") if p.is_file()}


def _prepare(tmp_path: Path, run: Path) -> dict[str, str]:
    """Files a case can point at: a blocker file, broken configs and checkpoints, an existing run."""
    (tmp_path / "blocker").write_text("a file, not a folder")
    (tmp_path / "bad.toml").write_text("[train\nsteps = ")
    for name, body in {"steps_str": 'steps = "100"', "lr_str": 'lr = "fast"', "bs_float": "batch_size = 1.5",
                       "steps_bool": "steps = true", "tf_range": "test_fraction = 2.0", "lr_inf": "lr = inf",
                       "unknown_key": "stepz = 3", "eps_range": "eps = 2.0", "ema_range": "ema_decay = 1.5",
                       "clip_word": 'grad_clip = "fast"'}.items():
        (tmp_path / f"{name}.toml").write_text(f"[train]\ndataset = \"ring\"\n{body}\n")
    ckpt = run / "checkpoints" / "latest"
    latest = run / "checkpoints" / ckpt.read_text().strip()
    for name, edit in {"corrupt_meta": lambda m: "{not json", "bad_shape": lambda m: {**m, "data_shape": [2**62]},
                       "bad_sde": lambda m: {**m, "config": {**m["config"], "sde": "nope"}}}.items():
        folder = tmp_path / "ckpts" / name
        folder.mkdir(parents=True)
        for f in latest.iterdir():
            (folder / f.name).write_bytes(f.read_bytes())
        meta = json.loads((folder / "meta.json").read_text())
        new = edit(meta)
        (folder / "meta.json").write_text(new if isinstance(new, str) else json.dumps(new))
    (tmp_path / "ckpts" / "empty").mkdir()
    (tmp_path / "notes.txt").write_text("plain text, not a checkpoint")
    return {"tmp": str(tmp_path), "run": str(run)}


TRAIN = ["train", "--out", "{tmp}/out", "--dataset", "ring", "--model", "mlp", "--steps", "2", "--no-progress"]
SAMPLE = ["sample", "--checkpoint", "{run}", "--out", "{tmp}/out", "--no-progress", "--num-samples", "2",
          "--num-steps", "2"]
LIKELIHOOD = ["likelihood", "--checkpoint", "{run}", "--max-samples", "2", "--no-progress"]
EVALUATE = ["evaluate", "--checkpoint", "{run}", "--no-progress", "--num-samples", "4", "--num-steps", "2"]
CONFIG = ["train", "--out", "{tmp}/out", "--model", "mlp", "--no-progress", "--config"]
TUNE = ["tune-schedule", "--checkpoint", "{run}", "--out", "{tmp}/out/t.json", "--no-progress", "--trajectories", "2"]

CLI_CASES = [
    # train: numbers
    (TRAIN + ["--steps", "0"], "0"), (TRAIN + ["--steps", "-1"], "-1"), (TRAIN + ["--steps", "abc"], "abc"),
    (TRAIN + ["--steps", "1.5"], "1.5"), (TRAIN + ["--batch-size", "0"], "0"), (TRAIN + ["--batch-size", "x"], "x"),
    (TRAIN + ["--lr", "inf"], "inf"), (TRAIN + ["--lr", "nan"], "nan"), (TRAIN + ["--lr", "-1"], "-1"),
    (TRAIN + ["--lr", "fast"], "fast"), (TRAIN + ["--lr", "0"], "lr"), (TRAIN + ["--eps", "2"], "2"),
    (TRAIN + ["--eps", "0"], "eps"), (TRAIN + ["--eps", "-1"], "-1"), (TRAIN + ["--eps", "nan"], "nan"),
    (TRAIN + ["--grad-clip", "abc"], "abc"), (TRAIN + ["--grad-clip", "-1"], "-1"),
    (TRAIN + ["--ema-decay", "1.5"], "1.5"), (TRAIN + ["--ema-decay", "-0.1"], "-0.1"),
    (TRAIN + ["--epochs", "0"], "0"), (TRAIN + ["--seed", "abc"], "abc"),
    (TRAIN + ["--checkpoint-every", "-1"], "-1"), (TRAIN + ["--keep-last", "-2"], "-2"),
    # train: names and options
    (TRAIN + ["--weighting", "l1"], "Unknown weighting 'l1'. Available: edm, likelihood, sigma2"),
    (TRAIN + ["--dataset", "mnistt"], "Unknown dataset 'mnistt'"), (TRAIN + ["--model", "nope"], "'nope'"),
    (TRAIN + ["--sde", "nope"], "Unknown sde 'nope'"), (TRAIN + ["--optimizer", "sgdd"], "sgdd"),
    (TRAIN + ["--model-options", "[1]"], "expected a JSON object"),
    (TRAIN + ["--model-options", "{bad"], "{bad"),
    (TRAIN + ["--model-options", '{"hidden": -3}'], "hidden"),
    (TRAIN + ["--model-options", '{"bogus": 1}'], "bogus"),
    (TRAIN + ["--sde-options", '{"sigma_min": -1}'], "sigma_min"),
    (TRAIN + ["--sde-options", '{"sigma_min": 5, "sigma_max": 1}'], "sigma_max"),
    (TRAIN + ["--dataset-options", '{"n": 0}'], "n"),
    (TRAIN + ["--preset", "nope"], "Unknown preset 'nope'. Available: mnist, mnist-cfg, mnist-density, mnist-likelihood, mnist-sigma25, mnist-tutorial"),
    (TRAIN + ["--preset", ""], "Unknown preset ''. Available: mnist,"),
    (["train", "--out", "", "--dataset", "ring", "--model", "mlp", "--steps", "2", "--no-progress"],
     "--out must name a run folder"),
    (TRAIN + ["--device", "bogus"], "Unknown device 'bogus'"), (TRAIN + ["--device", "cuda:7"], "cuda:7"),
    # train: configs and folders
    (CONFIG + ["{tmp}/missing.toml"], "missing.toml"), (CONFIG + ["{tmp}/bad.toml"], "bad.toml"),
    (CONFIG + ["{tmp}/steps_str.toml"], "steps"), (CONFIG + ["{tmp}/lr_str.toml"], "fast"),
    (CONFIG + ["{tmp}/bs_float.toml"], "1.5"), (CONFIG + ["{tmp}/steps_bool.toml"], "True"),
    (CONFIG + ["{tmp}/tf_range.toml"], "test_fraction"),
    (CONFIG + ["{tmp}/lr_inf.toml"], "inf"), (CONFIG + ["{tmp}/unknown_key.toml"], "stepz"),
    (CONFIG + ["{tmp}/eps_range.toml"], "eps"), (CONFIG + ["{tmp}/ema_range.toml"], "1.5"),
    (CONFIG + ["{tmp}/clip_word.toml"], "fast"),
    (["train", "--out", "{run}", "--dataset", "ring", "--model", "mlp", "--steps", "2"], "--resume"),
    (["train", "--out", "{tmp}/blocker/sub", "--dataset", "ring", "--model", "mlp", "--steps", "2"], "blocker"),
    (["train", "--dataset", "ring"], "--out"),
    # sample
    (SAMPLE + ["--num-steps", "0"], "0"), (SAMPLE + ["--num-steps", "-3"], "-3"), (SAMPLE + ["--num-steps", "x"], "x"),
    (SAMPLE + ["--num-samples", "0"], "0"), (SAMPLE + ["--batch-size", "0"], "0"), (SAMPLE + ["--eps", "2"], "2"),
    (SAMPLE + ["--eps", "0"], "eps"), (SAMPLE + ["--eps", "nan"], "nan"), (SAMPLE + ["--snr", "0"], "snr"),
    (SAMPLE + ["--snr", "-1"], "-1"), (SAMPLE + ["--n-steps", "-1"], "-1"),
    (SAMPLE + ["--predictor", "eulr"], "Unknown predictor 'eulr'"),
    (SAMPLE + ["--corrector", "lang"], "Unknown corrector 'lang'"),
    (SAMPLE + ["--schedule", "nope"], "Unknown schedule 'nope'"),
    (SAMPLE + ["--schedule-options", "[1]"], "expected a JSON object"),
    (SAMPLE + ["--schedule", "karras", "--schedule-options", '{"rho": -1}'], "rho"),
    (SAMPLE + ["--schedule", "karras", "--schedule-options", '{"bogus": 1}'], "bogus"),
    (SAMPLE + ["--schedule-options", '{"rho": 3}'], "schedule_options"),
    (SAMPLE + ["--predictor-options", '{"bogus": 1}'], "bogus"),
    (SAMPLE + ["--predictor", "ipndm", "--predictor-options", '{"max_order": 9}'], "max_order"),
    (SAMPLE + ["--ode-solver", "rk45"], "Unknown ode_solver 'rk45'"),
    (SAMPLE + ["--ode-solver", "dopri5", "--rtol", "0"], "rtol"),
    (SAMPLE + ["--ode-solver", "dopri5", "--atol", "-1"], "atol"),
    (SAMPLE + ["--ode-solver", "dopri5", "--schedule", "karras"], "--schedule"),
    (SAMPLE + ["--schedule", "tuned"], "tune-schedule"),
    (SAMPLE + ["--device", "bogus"], "Unknown device 'bogus'"),
    (["sample", "--checkpoint", "{run}", "--out", "{tmp}/blocker/sub", "--num-steps", "2"], "blocker"),
    (["sample", "--checkpoint", "{tmp}/missing", "--out", "{tmp}/out"], "missing"),
    (["sample", "--checkpoint", "{tmp}/notes.txt", "--out", "{tmp}/out"], "notes.txt"),
    (["sample", "--checkpoint", "{tmp}/ckpts/empty", "--out", "{tmp}/out"], "empty"),
    (["sample", "--checkpoint", "{tmp}/ckpts/corrupt_meta", "--out", "{tmp}/out"], "meta.json"),
    (["sample", "--checkpoint", "{tmp}/ckpts/bad_shape", "--out", "{tmp}/out"], "data_shape"),
    (["sample", "--checkpoint", "{tmp}/ckpts/bad_sde", "--out", "{tmp}/out"], "nope"),
    (["sample", "--checkpoint", "no-such-model", "--out", "{tmp}/out"], "Pretrained models: mnist"),
    # likelihood
    (LIKELIHOOD + ["--max-samples", "0"], "0"), (LIKELIHOOD + ["--batch-size", "0"], "0"),
    (LIKELIHOOD + ["--estimator", "hutch"], "hutch"), (LIKELIHOOD + ["--n-probes", "0"], "0"),
    (LIKELIHOOD + ["--solver", "rk45"], "Unknown ode_solver 'rk45'"), (LIKELIHOOD + ["--rtol", "0"], "rtol"),
    (LIKELIHOOD + ["--atol", "-1"], "atol"), (LIKELIHOOD + ["--eps", "2"], "eps"),
    (LIKELIHOOD + ["--eps", "0"], "eps"), (LIKELIHOOD + ["--split", "val"], "val"),
    (LIKELIHOOD + ["--solver", "rk4", "--num-steps", "0"], "0"),
    (LIKELIHOOD + ["--time-variable", "sigma"], "sigma"), (LIKELIHOOD + ["--logp-atol", "-1"], "-1"),
    (LIKELIHOOD + ["--device", "bogus"], "bogus"),
    (["likelihood", "--checkpoint", "{tmp}/missing"], "missing"),
    (["likelihood", "--checkpoint", "{tmp}/ckpts/corrupt_meta"], "meta.json"),
    (LIKELIHOOD + ["--out", "{tmp}/blocker/x.json"], "blocker"),
    # evaluate
    (EVALUATE + ["--num-steps", "0"], "0"), (EVALUATE + ["--num-samples", "0"], "0"),
    (EVALUATE + ["--predictor", "eulr"], "eulr"), (EVALUATE + ["--corrector", "lang"], "lang"),
    (EVALUATE + ["--eps", "2"], "2"), (EVALUATE + ["--schedule", "nope"], "nope"),
    (EVALUATE + ["--device", "bogus"], "bogus"),
    (["evaluate", "--checkpoint", "{tmp}/missing"], "missing"),
    # tune-schedule
    (TUNE + ["--nfe", "0"], "0"), (TUNE + ["--nfe", "x"], "x"), (TUNE + ["--nfe", "1"], "1 evaluations"),
    (TUNE + ["--nfe", "5", "--predictor", "euler"], "deterministic"),
    (TUNE + ["--nfe", "5", "--predictor", "nope"], "Unknown predictor 'nope'"),
    (TUNE + ["--nfe", "5", "--trajectories", "0"], "0"), (TUNE + ["--nfe", "5", "--fine-steps", "0"], "0"),
    (TUNE + ["--nfe", "5", "--sweeps", "0"], "0"), (TUNE + ["--nfe", "5", "--eps", "2"], "eps"),
    (TUNE + ["--nfe", "500"], "fine_steps"),
    (["tune-schedule", "--checkpoint", "{run}", "--nfe", "5", "--out", "{tmp}/blocker/t.json"], "blocker"),
    (["tune-schedule", "--checkpoint", "{tmp}/missing", "--nfe", "5"], "missing"),
    (["tune-schedule", "--checkpoint", "mnist-tutorial", "--nfe", "5"], "--out"),
    (["tune-schedule", "--checkpoint", "{run}"], "--nfe"),
    # import-checkpoint
    (["import-checkpoint", "{tmp}/missing.pth", "--out", "{tmp}/out"], "missing.pth"),
    (["import-checkpoint", "{tmp}/notes.txt", "--out", "{tmp}/out"], "notes.txt"),
    (["import-checkpoint", "{tmp}/ckpts", "--out", "{tmp}/out"], "ckpts"),
    (["import-checkpoint", "{tmp}/notes.txt"], "--out"),
    # the rest
    (["list", "predictors"], "invalid choice: 'predictors'"), (["list"], "kind"),
    (["demo", "--num-samples", "0"], "0"), (["demo", "--num-steps", "0"], "0"),
    (["demo", "--num-steps", "x"], "x"), (["demo", "--out", "{tmp}/blocker/d"], "blocker"),
    (["digits-demo", "--steps", "0"], "0"), (["oracle-demo", "--num-steps", "-3"], "-3"),
    (["oracle-demo", "--num-samples", "0"], "0"), (["plugin", "new", "Bad Name!", "--out", "{tmp}/out"], "Bad Name!"),
    (["plugin", "new", "ok", "--out", "{tmp}/blocker/p"], "blocker"), (["bogus-command"], "bogus-command"),
    (["--no-such-flag", "list", "sde"], "--no-such-flag"),
]


@pytest.mark.parametrize(("argv", "words"), CLI_CASES, ids=[" ".join(c[0][:1] + c[0][-2:]) for c in CLI_CASES])
def test_cli_names_the_bad_value_and_writes_nothing(argv, words, tiny_run, tmp_path, capsys, monkeypatch):
    paths = _prepare(tmp_path, tiny_run)
    monkeypatch.chdir(tmp_path)
    before, run_before = _snapshot(tmp_path), _snapshot(tiny_run)
    argv = [a.replace("{tmp}", paths["tmp"]).replace("{run}", paths["run"]) for a in argv]
    run_cli_expecting_error(argv, words.replace("{tmp}", paths["tmp"]).replace("{run}", paths["run"]), capsys)
    after = _snapshot(tmp_path)
    assert after == before, f"files changed: {sorted(set(after.items()) ^ set(before.items()))}"
    assert _snapshot(tiny_run) == run_before
    out = tmp_path / "out"
    assert not out.exists() or not any(p.is_file() for p in out.rglob("*"))


def _ve() -> sf.VESDE:
    return sf.VESDE(sigma_min=0.01, sigma_max=50.0)


def _score(x, t):
    return -x


def _sample(**kwargs):
    options = {k: kwargs.pop(k) for k in ("shape", "init", "model") if k in kwargs}
    shape = options.get("shape", (2, 2))
    return sf.Sampler(num_steps=2, **kwargs).sample(options.get("model", _score), _ve(), shape,
                                                    **({"init": options["init"]} if "init" in options else {}))


def _likelihood(x=None, **kwargs):
    kwargs.setdefault("method", sf.ODELikelihood(solver="rk4"))
    return sf.log_likelihood(_score, _ve(), torch.zeros(2, 2) if x is None else x, **kwargs)


API_CASES = [
    (lambda: sf.Sampler(num_steps=0), ValueError, "num_steps"),
    (lambda: sf.Sampler(num_steps=1.5), ValueError, "got 1.5"),
    (lambda: sf.Sampler(num_steps=True), ValueError, "got True"),
    (lambda: sf.Sampler(snr=0), ValueError, "snr"),
    (lambda: sf.Sampler(snr=-1), ValueError, "snr"),
    (lambda: sf.Sampler(eps=-1), ValueError, "eps must be a positive number below the SDE's end time T, got -1"),
    (lambda: _sample(eps=2), ValueError, "eps must lie in (0, T=1.0), got 2"),
    (lambda: sf.Sampler(eps=0), ValueError, "eps"),
    (lambda: sf.Sampler(predictor="nope"), sf.UnknownComponentError, "Unknown predictor 'nope'"),
    (lambda: sf.Sampler(corrector="nope"), sf.UnknownComponentError, "Unknown corrector 'nope'"),
    (lambda: sf.Sampler(schedule="nope"), sf.UnknownComponentError, "Unknown schedule 'nope'"),
    (lambda: sf.Sampler(predictor=3), TypeError, "int"),
    (lambda: sf.Sampler(corrector=3.5), TypeError, "float"),
    (lambda: sf.Sampler(times=[1.0, 2.0]), ValueError, "decrease"),
    (lambda: sf.Sampler(times=[0.5, 0.5]), ValueError, "decrease"),
    (lambda: sf.Sampler(times=[[1.0]]), ValueError, "1-D"),
    (lambda: sf.Sampler(times="x"), TypeError, "str"),
    (lambda: sf.Sampler(times=[1.0, 0.0]), ValueError, "positive"),
    (lambda: sf.Sampler(times=[1.0, float("nan")]), ValueError, "finite"),
    (lambda: sf.Sampler(schedule_options={"rho": 3}), sf.DroppedOptionsError, "schedule_options"),
    (lambda: sf.Sampler(predictor=sf.EulerMaruyama(), predictor_options={"a": 1}), sf.DroppedOptionsError, "a"),
    (lambda: sf.Sampler(corrector=sf.Langevin(), snr=0.3), sf.DroppedOptionsError, "snr"),
    (lambda: sf.Sampler(schedule="karras", schedule_options={"rho": -1}), ValueError, "rho"),
    (lambda: sf.Sampler(predictor="euler", predictor_options={"bogus": 1}), sf.UnknownOptionError, "bogus"),
    (lambda: sf.Sampler(times=[1.0, 0.5], schedule="karras"), sf.DroppedOptionsError, "times"),
    (lambda: sf.Sampler(predictor="torchsde", corrector="langevin"), sf.IncompatibleComponentsError, "corrector"),
    (lambda: sf.Sampler(predictor="torchsde", schedule="karras"), sf.DroppedOptionsError, "schedule"),
    (lambda: _sample(shape=(0, 2)), ValueError, "shape"),
    (lambda: _sample(shape=(2,)), ValueError, "shape"),
    (lambda: _sample(shape=("a", 2)), ValueError, "shape"),
    (lambda: _sample(shape=(2.5, 2)), ValueError, "shape"),
    (lambda: _sample(model=lambda x, t: x[:, :1]), ValueError, "shape"),
    (lambda: _sample(model=lambda x, t: x * float("nan")), sf.NonFiniteError, "non-finite"),
    (lambda: _sample(init=torch.zeros(3, 2)), ValueError, "init has shape (3, 2)"),
    (lambda: _sample(init=torch.zeros(2, 2, dtype=torch.long)), TypeError, "floating-point"),
    (lambda: _sample(init=torch.full((2, 2), float("inf"))), ValueError, "init"),
    (lambda: _sample(times=[1.5, 0.1]), ValueError, "T = 1"),
    (lambda: _sample(start_time=1.5), ValueError, "(eps, T] = (0.001, 1], got 1.5"),
    (lambda: _likelihood(estimator="hutch"), ValueError, "Unknown estimator 'hutch'"),
    (lambda: _likelihood(estimator=sf.DivergenceEstimator(n_probes=0)), ValueError, "n_probes"),
    (lambda: _likelihood(estimator=sf.DivergenceEstimator(n_probes=1.5)), ValueError, "n_probes"),
    (lambda: _likelihood(estimator=sf.DivergenceEstimator("exact", n_probes=4)), sf.DroppedOptionsError, "n_probes"),
    (lambda: _likelihood(method=sf.ODELikelihood(solver="rk4", eps=2.0)), ValueError, "eps"),
    (lambda: _likelihood(method=sf.ExponentialLikelihood(eps=-1.0)), ValueError, "eps"),
    (lambda: _likelihood(method="adams"), ValueError, "Unknown method 'adams'"),
    (lambda: _likelihood(method=sf.create("ode_solver", "rk4")), TypeError, "ODELikelihood"),
    (lambda: _likelihood(x=torch.zeros(3)), ValueError, "(batch, ...)"),
    (lambda: _likelihood(x=torch.full((2, 2), float("nan"))), ValueError, "non-finite"),
    (lambda: _likelihood(x=torch.full((2, 2), 2.0), dequantize=True), ValueError, "[0, 1]"),
    (lambda: sf.ODELikelihood(time_variable="sigma"), ValueError, "Unknown time_variable 'sigma'"),
    (lambda: sf.ODELikelihood(solver=sf.create("ode_solver", "rk4"), logp_atol=1e-3), sf.DroppedOptionsError,
     "logp_atol"),
    (lambda: sf.ODELikelihood(solver=sf.create("ode_solver", "rk4"), rtol=1e-3), sf.DroppedOptionsError, "rtol"),
    (lambda: sf.ODELikelihood(solver="rk45"), sf.UnknownComponentError, "rk45"),
    (lambda: sf.ODELikelihood(rtol=0.0), ValueError, "rtol"),
    (lambda: sf.ODELikelihood(atol=-1.0), ValueError, "atol"),
    (lambda: sf.ODELikelihood(rtol=True), ValueError, "rtol"),
    (lambda: sf.ExponentialLikelihood(num_steps=0), ValueError, "num_steps"),
    (lambda: sf.ProbabilityFlowSampler(solver="rk45"), sf.UnknownComponentError, "rk45"),
    (lambda: sf.ode_sample(_score, _ve(), (2, 2), sampler=sf.ProbabilityFlowSampler(eps=2.0)), ValueError, "eps"),
    (lambda: sf.ProbabilityFlowSampler(solver=sf.create("ode_solver", "rk4"), rtol=1e-3), sf.DroppedOptionsError,
     "rtol"),
    (lambda: sf.ProbabilityFlowSampler(solver_options={"bogus": 1}), sf.UnknownOptionError, "bogus"),
    (lambda: sf.create("sde", "ve", sigma_min=-1.0), ValueError, "sigma_min"),
    (lambda: sf.create("sde", "ve", sigma_min=5.0, sigma_max=1.0), ValueError, "sigma_max"),
    (lambda: sf.create("sde", "nope"), sf.UnknownComponentError, "Unknown sde 'nope'"),
    (lambda: sf.create("predictor", "euler", bogus=1), sf.UnknownOptionError, "bogus"),
    (lambda: sf.create("kind-that-does-not-exist", "x"), sf.UnknownComponentError, "kind-that-does-not-exist"),
    (lambda: sf.create("corrector", "langevin", snr=-1.0), ValueError, "snr"),
    (lambda: sf.create("corrector", "langevin", n_steps=-1), ValueError, "n_steps"),
    (lambda: sf.create("schedule", "tuned", path="/nonexistent/t.json"), ValueError, "t.json"),
    (lambda: sf.create("predictor", "ipndm", max_order=0), ValueError, "max_order"),
    (lambda: sf.create("predictor", "unipc", order=7), ValueError, "order"),
    (lambda: sf.load_pretrained("nope"), sf.UnknownComponentError, "nope"),
    (lambda: sf.tune_schedule(_score, _ve(), (2, 2), 4, predictor="euler"), ValueError, "deterministic"),
    (lambda: sf.tune_schedule(_score, _ve(), (2, 2), 0, predictor="ipndm"), ValueError, "num_steps"),
    (lambda: sf.tune_schedule(_score, _ve(), (2, 2), 9, predictor="ipndm", search=sf.GridSearch(fine_steps=4)),
     ValueError, "fine_steps"),
    (lambda: sf.GridSearch(fine_steps=0), ValueError, "fine_steps"),
    (lambda: sf.GridSearch(sweeps=True), ValueError, "sweeps"),
    (lambda: sf.GridSearch(rtol=-1.0), ValueError, "rtol"),
    (lambda: sf.tune_schedule(_score, _ve(), (2, 2), 2, predictor="ipndm", search={"sweeps": 1}), TypeError, "GridSearch"),
    (lambda: sf.tune_schedule(_score, _ve(), (2, 2), 2, predictor="nope"), sf.UnknownComponentError, "nope"),
]
for _field, _value, _words in [("steps", "100", "steps"), ("steps", True, "steps"), ("steps", 0, "steps"),
                               ("lr", "fast", "fast"), ("lr", float("inf"), "inf"), ("lr", -1.0, "lr"),
                               ("batch_size", 1.5, "batch_size"), ("batch_size", 0, "batch_size"),
                               ("eps", 2.0, "eps"), ("eps", 0.0, "eps"), ("test_fraction", 2.0, "test_fraction"),
                               ("weighting", "l1", "l1"), ("grad_clip", "fast", "fast"),
                               ("ema_decay", 1.5, "ema_decay"), ("epochs", 0, "epochs"), ("seed", "x", "seed"),
                               ("dequantize", "yes", "dequantize"), ("model_options", [1], "model_options"),
                               ("stepz", 3, "stepz")]:
    API_CASES.append((lambda f=_field, v=_value: TrainConfig.from_dict({"dataset": "ring", f: v}),
                      (ValueError, TypeError), _words))


@pytest.mark.parametrize(("call", "error", "words"), API_CASES, ids=[f"api-{i}" for i in range(len(API_CASES))])
def test_api_names_the_bad_value(call, error, words):
    with pytest.raises(error) as info:
        call()
    assert words in str(info.value), str(info.value)


def test_the_suite_is_as_large_as_promised():
    assert len(CLI_CASES) + len(API_CASES) >= 150


@pytest.mark.parametrize(("argv", "words"), [
    (["sample", "--checkpoint", "mnist", "--num-samples", str(10**12), "--batch-size", "1"],
     "more than the limit of 8 GiB (SCOREFLOW_MAX_REQUEST_BYTES)"),
    (["sample", "--checkpoint", "mnist", "--num-steps", str(10**12)], "more than the limit of 10,000,000"),
    (["sample", "--checkpoint", "mnist", "--num-steps", "1000", "--resample", str(10**11)],
     "more than the limit of 10,000,000"),
    (["tune-schedule", "--checkpoint", "mnist", "--nfe", "5", "--trajectories", str(10**12), "--out", "OUT/t.json"],
     "warm-up draws"),
    (["tune-schedule", "--checkpoint", "mnist", "--nfe", "5", "--fine-steps", str(10**6), "--out", "OUT/t.json"],
     "at 1000001 fine steps would need"),
    (["likelihood", "--checkpoint", "mnist", "--n-probes", str(10**9), "--max-samples", "2", "--out", "OUT/l.json"],
     "probe(s) for a batch"),
])
def test_oversized_requests_are_refused_before_allocating(tmp_path, capsys, argv, words):
    import resource
    import time

    argv = [a.replace("OUT", str(tmp_path)) for a in argv]
    if argv[0] == "sample":
        argv += ["--out", str(tmp_path / "s"), "--no-progress"]
    start = time.perf_counter()
    code = main(argv)
    err = capsys.readouterr().err
    assert code == 2 and words in err and "Traceback" not in err, err
    assert time.perf_counter() - start < 30  # refused from the request's size, not after trying
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss < 4 * 2**20  # KiB: well under 4 GiB
    assert not (tmp_path / "s" / "samples.safetensors").exists()


@pytest.mark.parametrize("command", [
    ["tune-schedule", "--checkpoint", "mnist", "--nfe", "5", "--out", "OUT/t.json"],
    ["inpaint", "--checkpoint", "mnist", "--images", "test", "--mask", "bottom-half", "--out", "OUT/i"],
    ["train-classifier", "--checkpoint", "mnist", "--out", "OUT/c"],
])
@pytest.mark.parametrize("device", ["bogus", "cuda:7"])
def test_every_command_checks_the_device_first(tmp_path, capsys, command, device):
    code = main([a.replace("OUT", str(tmp_path)) for a in command] + ["--device", device])
    err = capsys.readouterr().err
    assert code == 2 and device.split(":")[0] in err and "Traceback" not in err, err
    assert not any(tmp_path.iterdir())


def test_likelihood_checks_its_output_before_the_work(tmp_path, capsys):
    blocked = tmp_path / "file"
    blocked.write_text("")
    code = main(["likelihood", "--checkpoint", "mnist", "--max-samples", "1", "--out", str(blocked / "l.json")])
    assert code == 2 and "cannot write to output folder" in capsys.readouterr().err


def test_second_pass_crafted_sizes_and_states_are_named(tmp_path, capsys):
    """A toy dataset asking for 10^12 points is refused before allocating; noise levels whose squares leave float32
    are refused; a crafted random-number state stops --resume with the checkpoint named."""
    import torch
    from safetensors.torch import load_file, save_file

    from scoreflow.cli import main
    from scoreflow.sde.ve import VESDE

    with pytest.raises(ValueError, match="n=1,000,000,000,000 would need .* GiB, more than the limit"):
        sf.create("dataset", "two_moons", n=10**12)
    with pytest.raises(ValueError, match=r"sigma_max must lie in \[1e-10, 1e\+08\].*got 1e\+300"):
        VESDE(sigma_max=1e300)
    with pytest.raises(ValueError, match="sigma_min must lie in"):
        VESDE(sigma_min=1e-30)
    run = tmp_path / "run"
    args = ["train", "--dataset", "two_moons", "--model", "mlp", "--batch-size", "8", "--out", str(run),
            "--no-progress"]
    assert main([*args, "--steps", "2"]) == 0
    rng = run / "checkpoints" / "step_0000002" / "rng.safetensors"
    state = load_file(str(rng))
    state["generator"] = torch.zeros(7, dtype=torch.uint8)
    save_file(state, str(rng))
    capsys.readouterr()
    assert main([*args, "--steps", "4", "--resume"]) == 2
    err = capsys.readouterr().err
    assert "random-number state in" in err and "step_0000002" in err and "Traceback" not in err


def test_tune_schedule_never_reads_a_device_or_an_oversized_file_as_its_out(tmp_path, capsys):
    """--out /dev/zero was read as an existing tuned-schedule file (7 GB, then MemoryError); now it, and a file over
    the size limit, are refused before the tuning starts."""
    from scoreflow.cli import main
    from scoreflow.sampling.tuning import MAX_TUNED_FILE_BYTES, schedule_file

    run = tmp_path / "run"
    assert main(["train", "--dataset", "two_moons", "--model", "mlp", "--steps", "1", "--batch-size", "8", "--out",
                 str(run), "--no-progress"]) == 0
    capsys.readouterr()
    assert main(["tune-schedule", "--checkpoint", str(run), "--nfe", "5", "--out", "/dev/zero",
                 "--no-progress"]) == 2
    assert "/dev/zero is not a regular file" in capsys.readouterr().err
    big = tmp_path / "big.json"
    with open(big, "wb") as f:
        f.truncate(MAX_TUNED_FILE_BYTES + 1)
    with pytest.raises(ValueError, match="more than a tuned-schedule file's limit"):
        schedule_file(big)

