"""Pretrained models (sha256-verified, by name, from plugins) and importing the notebook's ckpt.pth."""

from __future__ import annotations

import json
import pickle
import shutil
from pathlib import Path

import pytest
import torch

import scoreflow as sf
from benchmarks.tutorial_notebook import ScoreNet, SeedScoreNet
from scoreflow.cli import main
from scoreflow.pretrained import PretrainedModel, export_pretrained, file_sha256
from scoreflow.pretrained.tutorial_import import import_tutorial_checkpoint, tutorial_key
from scoreflow.training import TrainConfig, Trainer, load_trained

TINY = dict(dataset="digits", model_options={"channels": [8, 16, 16, 16], "embed_dim": 16}, batch_size=16,
            log_every=2)


def _notebook_checkpoint(path: Path, *, data_parallel: bool = False, variant: str = "seed") -> ScoreNet:
    torch.manual_seed(3)
    net = SeedScoreNet() if variant == "seed" else ScoreNet()
    state = net.state_dict()
    if data_parallel:  # the notebook wraps its model in DataParallel, which prefixes 'module.'
        state = {f"module.{k}": v for k, v in state.items()}
    torch.save(state, path)
    return net


@pytest.mark.parametrize("variant", ["seed", "colab"])
@pytest.mark.parametrize("data_parallel", [False, True])
def test_imported_notebook_weights_give_the_notebooks_scores(tmp_path, data_parallel, variant):
    notebook = _notebook_checkpoint(tmp_path / "ckpt.pth", data_parallel=data_parallel, variant=variant)
    import_tutorial_checkpoint(tmp_path / "ckpt.pth", tmp_path / "run")
    model, sde, config = load_trained(tmp_path / "run", ema=False)
    if variant == "seed":  # told apart by the weights: no dense layer after the Fourier features
        assert config.sde == "ve" and config.sde_options == {"sigma_min": 0.01, "sigma_max": 22.0}
        assert config.eps == 1e-3 and config.model_options["embed_dense"] is False
    else:
        assert config.sde == "ve_tutorial" and config.sde_options == {"sigma": 25.0} and config.eps == 1e-5
    x = torch.rand(3, 1, 28, 28)
    t = torch.tensor([0.01, 0.3, 0.9])
    with torch.no_grad():  # the seed notebook's sqrt(sigma^2 - sigma_min^2) cancels in float32 (~1e-4 relative)
        torch.testing.assert_close(model(x, t), notebook(x, t), rtol=1e-3 if variant == "seed" else 1e-5,
                                   atol=1e-4)


def test_every_notebook_key_maps_to_a_unet_key():
    net = sf.UNet(sf.VESDE.tutorial(), image_size=28)
    assert {tutorial_key(k) for k in ScoreNet().state_dict()} == set(net.state_dict())
    seed = sf.UNet(sf.VESDE(sigma_min=0.01, sigma_max=22.0), image_size=28, embed_dense=False)
    assert {tutorial_key(k) for k in SeedScoreNet().state_dict()} == set(seed.state_dict())
    assert tutorial_key("module.embed.W") == "embed.0.W"
    assert tutorial_key("module.tgnorm3.weight") == "gnorm.5.weight"
    assert tutorial_key("dense7.dense.bias") == "dense.6.bias"


class _Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


@pytest.mark.parametrize("content, match", [
    ("module", "not a plain PyTorch state_dict"),
    ("evil", "not a plain PyTorch state_dict"),
    ("list", "expected a state_dict"),
    ("nested", "entries .* are not"),
    ("garbage", "not a plain PyTorch state_dict"),
    ("other_net", "not the tutorial's ScoreNet"),
])
def test_import_refuses_anything_but_a_notebook_state_dict(tmp_path, monkeypatch, content, match):
    monkeypatch.chdir(tmp_path)
    path = tmp_path / "ckpt.pth"
    if content == "module":
        torch.save(torch.nn.Linear(2, 2), path)  # a pickled model object, not a state_dict
    elif content == "evil":
        path.write_bytes(pickle.dumps({"conv1.weight": _Evil()}))
    elif content == "list":
        torch.save([torch.zeros(1)], path)
    elif content == "nested":
        torch.save({"model": {"w": torch.zeros(1)}, "epoch": 3}, path)
    elif content == "garbage":
        path.write_bytes(b"\x80\x04not really a pickle")
    else:
        torch.save({"weight": torch.zeros(3)}, path)
    with pytest.raises(sf.CheckpointError, match=match):
        import_tutorial_checkpoint(path, tmp_path / "run")
    assert not (tmp_path / "PWNED").exists() and not (tmp_path / "run").exists()


def test_import_compares_shapes_before_building_a_network_as_wide_as_a_crafted_file_says(tmp_path):
    """A 100 kB file whose four conv kernels claim 2,048 output channels each is refused from the shapes of a
    network built on the meta device, before a U-Net that wide (hundreds of millions of parameters) is allocated."""
    import resource

    _notebook_checkpoint(tmp_path / "ckpt.pth", variant="seed")
    state = torch.load(tmp_path / "ckpt.pth", weights_only=True)
    for i in range(1, 5):
        state[f"conv{i}.weight"] = torch.zeros(2048, 1, 1, 1)
    torch.save(state, tmp_path / "wide.pth")
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    with pytest.raises(sf.CheckpointError, match="parameter shapes differ from the U-Net's"):
        import_tutorial_checkpoint(tmp_path / "wide.pth", tmp_path / "run")
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    assert grown_mb < 200, grown_mb  # the 2,048-wide U-Net needs gigabytes
    assert not (tmp_path / "run").exists()


def test_import_checkpoint_cli(tmp_path, capsys):
    _notebook_checkpoint(tmp_path / "ckpt.pth")
    assert main(["import-checkpoint", str(tmp_path / "ckpt.pth"), "--out", str(tmp_path / "run")]) == 0
    assert "scoreflow sample --checkpoint" in capsys.readouterr().out
    assert main(["import-checkpoint", str(tmp_path / "ckpt.pth"), "--out", str(tmp_path / "run")]) == 2
    assert "already holds a run" in capsys.readouterr().err
    (tmp_path / "bad.pth").write_bytes(b"junk")
    assert main(["import-checkpoint", str(tmp_path / "bad.pth"), "--out", str(tmp_path / "run2")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scoreflow: error:") and "bad.pth" in err and "Traceback" not in err


@pytest.fixture
def exported(tmp_path) -> tuple[Path, dict[str, str], Trainer]:
    trainer = Trainer(TrainConfig(steps=2, **TINY), tmp_path / "run", progress=False)
    trainer.run()
    digests = export_pretrained(tmp_path / "run", tmp_path / "tiny")
    return tmp_path / "tiny", digests, trainer


def test_export_keeps_weights_and_drops_machine_state(exported):
    folder, digests, trainer = exported
    assert set(digests) == {"meta.json", "model.safetensors", "ema.safetensors"}
    meta = json.loads((folder / "meta.json").read_text())
    assert meta["config"]["data_dir"] is None and meta["optimizer"] is None
    model, _, _ = load_trained(PretrainedModel("tiny", folder, digests).verify(), ema=False)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)


def test_a_plugin_ships_a_pretrained_model_loaded_by_name(exported, host):
    folder, digests, trainer = exported

    class Shipper:
        @sf.hookimpl
        def scoreflow_register_pretrained(self, registry):
            registry.add("tiny-digits", lambda: PretrainedModel("tiny-digits", folder, digests))

    host.register(Shipper(), name="shipper")
    assert "tiny-digits" in host.pretrained and "tiny_digits" in host.available("pretrained")
    model, sde, config = sf.load_pretrained("tiny-digits", host=host)
    assert config.dataset == "digits" and isinstance(sde, sf.VESDE)
    x, t = torch.rand(2, 1, 8, 8), torch.full((2,), 0.4)
    torch.testing.assert_close(model(x, t), trainer.ema.module(x, t))


@pytest.mark.parametrize("damage, match", [
    ("flip", "has sha256 .* expected"),
    ("remove", "missing"),
    ("extra", "unexpected file"),
])
def test_a_damaged_pretrained_folder_is_refused(exported, damage, match):
    folder, digests, _ = exported
    if damage == "flip":
        data = bytearray((folder / "model.safetensors").read_bytes())
        data[-1] ^= 1
        (folder / "model.safetensors").write_bytes(bytes(data))
    elif damage == "remove":
        (folder / "ema.safetensors").unlink()
    else:
        shutil.copyfile(folder / "model.safetensors", folder / "extra.safetensors")
    with pytest.raises(sf.CheckpointError, match=match):
        PretrainedModel("tiny", folder, digests).verify()


def test_unknown_pretrained_name_lists_the_installed_ones(tmp_path, capsys):
    code = main(["sample", "--checkpoint", "no-such-model", "--out", str(tmp_path / "s")])
    assert code == 2
    err = capsys.readouterr().err
    assert "no run folder, checkpoint or pretrained model called 'no-such-model'" in err
    assert not (tmp_path / "s").exists()


def test_registered_sha256_matches_the_shipped_files():
    from scoreflow.pretrained import SHIPPED_SHA256

    for name, digests in SHIPPED_SHA256.items():
        folder = Path(str(__import__("importlib").resources.files("scoreflow.pretrained") / name))
        assert {f: file_sha256(folder / f) for f in digests} == digests, name


MNIST_DIR = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
needs_mnist = pytest.mark.skipif(not (MNIST_DIR / "t10k-images-idx3-ubyte.gz").is_file(),
                                 reason="MNIST IDX files not in ../shared/data/mnist")


@pytest.mark.parametrize("name, sde_name", [("mnist-tutorial", "ve"), ("mnist-sigma25", "ve_tutorial")])
def test_shipped_mnist_models_load_by_name_and_score_finitely(name, sde_name):
    model, sde, config = sf.load_pretrained(name)
    assert config.sde == sde_name and config.epochs == 50 and config.data_dir is None
    x = torch.rand(2, 1, 28, 28)
    with torch.no_grad():
        s = model(x, torch.tensor([0.1, 0.9]))
    assert s.shape == x.shape and torch.isfinite(s).all()


def test_demo_samples_the_shipped_model_three_ways(tmp_path, capsys):
    code = main(["demo", "--out", str(tmp_path), "--num-samples", "2", "--num-steps", "3", "--bpd-images", "0",
                 "--no-progress"])
    assert code == 0
    report = (tmp_path / "report.md").read_text()
    for name in ("Euler-Maruyama", "predictor-corrector", "probability-flow ODE"):
        assert f"| {name} |" in report
    for picture in ("samples.png", "samples-euler-maruyama.png", "samples-predictor-corrector.png",
                    "samples-ode.png"):
        assert (tmp_path / picture).stat().st_size > 1000, picture


@needs_mnist
def test_demo_measures_test_bits_per_dim(tmp_path):
    from scoreflow.cli.mnist_demo import run_mnist_demo

    report = run_mnist_demo(tmp_path, data_dir=MNIST_DIR, num_samples=1, num_steps=2, bpd_images=2,
                            tolerance=1e-3, progress=False)
    assert report["bpd"]["n"] == 2 and 0 < report["bpd"]["mean"] < 8


@needs_mnist
def test_reproduction_report_runs_end_to_end_in_quick_mode(tmp_path):
    from benchmarks import mnist_report

    mnist_report.main(["--data-dir", str(MNIST_DIR), "--quick", "--n-bpd", "2", "--n-quality", "8",
                       "--out", str(tmp_path), "--results", str(tmp_path / "r.json")])
    page = (tmp_path / "mnist.md").read_text()
    assert "| 14 | 82.96 |" in page and "## Test bits/dim" in page and "uniform noise" in page
    results = json.loads((tmp_path / "r.json").read_text())
    assert len(results["epoch_losses"]) == 50
    assert set(results["raw"]["samplers"]) == set(results["ema"]["samplers"])
    assert (tmp_path / "images" / "epoch-losses.png").is_file()


def test_shipped_noise_classifier_loads_after_its_sha256_check(tmp_path, monkeypatch):
    from scoreflow import pretrained

    model, meta = sf.load_classifier(pretrained.shipped_classifier("mnist"))
    assert model.n_classes == 10 and meta["dataset"] == "mnist" and meta["test_accuracy_by_noise_level"]["0"] > 0.95
    with pytest.raises(sf.CheckpointError, match="no classifier folder or shipped noise-conditional classifier "
                                                   r"called 'cifar'\. Shipped: mnist"):
        pretrained.shipped_classifier("cifar")
    # a changed file is refused
    package = tmp_path / "pkg"
    shutil.copytree(Path(pretrained.__file__).parent / pretrained.NOISE_CLASSIFIERS, package / pretrained.NOISE_CLASSIFIERS)
    (package / pretrained.NOISE_CLASSIFIERS / "mnist" / "classifier.json").write_text("{}")
    monkeypatch.setattr(pretrained.resources, "files", lambda name: package)
    with pytest.raises(sf.CheckpointError, match="does not match its sha256"):
        pretrained.shipped_classifier("mnist")


@needs_mnist
def test_conditional_mnist_benchmark_runs_in_quick_mode(capsys):
    from benchmarks import mnist_conditional

    mnist_conditional.main(["--data-dir", str(MNIST_DIR), "--quick"])
    page = capsys.readouterr().out
    assert "## Inpainting the bottom half of test digits" in page and "inpaint_smc" in page
    assert "| scale 4 |" in page and "| unconditional |" in page


def test_shipped_class_conditional_model_is_guided_without_a_classifier():
    from scoreflow.cli.guidance import DEFAULT_FREE_GUIDANCE_SCALE

    model, sde, config = sf.load_pretrained("mnist-cfg")
    assert model.num_classes == 10 and config.class_dropout == 0.1 and config.init_from == "pretrained:mnist"
    plain, _, _ = sf.load_pretrained("mnist")
    x, t = torch.rand(3, 1, 28, 28), torch.tensor([0.2, 0.5, 0.8])
    with torch.no_grad():
        free = model(x, t)  # "no class": the unconditional score, learned beside the conditional ones
        assert free.shape == x.shape and torch.isfinite(free).all()
        assert not torch.allclose(model(x, t, torch.tensor([1, 2, 3])), free)
    result = sf.Sampler(predictor="edm_heun", num_steps=3, condition=sf.ClassifierFreeGuidance(
        torch.tensor([0, 7]), scale=DEFAULT_FREE_GUIDANCE_SCALE)).sample(model, sde, (2, 1, 28, 28))
    assert result.nfe == 2 * 6 and torch.isfinite(result.samples).all()
    assert plain.num_classes is None


@needs_mnist
def test_free_guidance_benchmark_runs_in_quick_mode(capsys, tmp_path):
    from benchmarks import mnist_free_guidance

    mnist_free_guidance.main(["--data-dir", str(MNIST_DIR), "--quick", "--out", str(tmp_path / "fg.json")])
    page = capsys.readouterr().out
    assert "classifier-free `w = 2`" in page and "classifier guidance scale 4" in page
    assert "unconditional, same network evaluations" in page
