"""Training presets and epoch-based training: the tutorial's MNIST recipe, per-epoch losses, resume."""

from __future__ import annotations

import pytest
import torch

from scoreflow.cli import main
from scoreflow.training import TrainConfig, Trainer, load_checkpoint
from scoreflow.training.presets import UnknownPresetError, available_presets, load_preset

TINY = dict(dataset="digits", model_options={"channels": [8, 16, 16, 16], "embed_dim": 16}, batch_size=256,
            log_every=2)


def test_mnist_tutorial_preset_is_the_seed_tutorials_recipe():
    assert "mnist-tutorial" in available_presets()
    config = TrainConfig.from_dict(load_preset("mnist-tutorial").train)
    assert (config.dataset, config.model, config.sde) == ("mnist", "unet", "ve")
    assert config.sde_options == {"sigma_min": 0.01, "sigma_max": 22.0}
    assert config.model_options == {"channels": [32, 64, 128, 256], "embed_dim": 256, "fourier_scale": 8.0,
                                    "embed_dense": False}
    assert (config.batch_size, config.lr, config.optimizer, config.epochs, config.eps) == (32, 1e-4, "adam", 50, 1e-3)
    assert config.grad_clip is None and config.weighting == "sigma2" and not config.dequantize
    assert config.weight_decay == 0 and config.warmup == 0


def test_mnist_tutorial_preset_builds_the_seed_notebooks_network_and_loss():
    """Same weights -> the same scores as the transcribed seed notebook, and the same loss for the same draws."""
    from benchmarks.tutorial_notebook import SeedScoreNet, loss_func
    from scoreflow.data.base import TensorData
    from scoreflow.pretrained.tutorial_import import tutorial_key
    from scoreflow.training.losses import dsm_loss
    from scoreflow.training.trainer import build_components

    config = TrainConfig.from_dict(load_preset("mnist-tutorial").train)
    sde, model = build_components(config, TensorData(torch.zeros(1, 1, 28, 28), None, "image"))
    torch.manual_seed(0)
    notebook = SeedScoreNet()
    model.load_state_dict({tutorial_key(k): v for k, v in notebook.state_dict().items()})
    x, t = torch.rand(4, 1, 28, 28), torch.tensor([1e-3, 0.05, 0.4, 1.0])
    with torch.no_grad():  # the notebook's sqrt(sigma^2 - sigma_min^2) cancels in float32 at small t (~1e-4)
        torch.testing.assert_close(model(x, t), notebook(x, t), rtol=1e-3, atol=1e-3)
    torch.manual_seed(1)
    expected = loss_func(notebook, x)
    torch.manual_seed(1)
    t = torch.rand(4) * (1.0 - 1e-3) + 1e-3
    z = torch.randn_like(x)
    torch.testing.assert_close(dsm_loss(model, sde, x, t, z).mean(), expected, rtol=1e-5, atol=1e-3)


def test_mnist_sigma25_preset_is_songs_colab_recipe():
    config = TrainConfig.from_dict(load_preset("mnist-sigma25").train)
    assert (config.sde, config.sde_options, config.eps) == ("ve_tutorial", {"sigma": 25.0}, 1e-5)
    assert config.model_options == {"channels": [32, 64, 128, 256], "embed_dim": 256}


def test_mnist_likelihood_preset_changes_only_the_documented_fields():
    """The better recipe is Song's Colab run with dequantization, likelihood weighting with importance-sampled
    time, and 30 of the 50 epochs; everything else (network, SDE, optimizer, batch, lr, eps, EMA) is the same."""
    tutorial, better = load_preset("mnist-sigma25").train, load_preset("mnist-likelihood").train
    changed = {k for k in tutorial.keys() | better.keys() if tutorial.get(k) != better.get(k)}
    assert changed == {"dequantize", "weighting", "importance_sampling", "epochs"}
    config = TrainConfig.from_dict(better)
    assert config.dequantize and config.weighting == "likelihood" and config.importance_sampling
    assert config.epochs == 30 and config.ema_decay == 0.999


def test_unknown_preset_names_the_known_ones():
    with pytest.raises(UnknownPresetError, match="'mnist-tutorail'.*Available: mnist, mnist-cfg, mnist-density, mnist-likelihood, mnist-sigma25, mnist-tutorial"):
        load_preset("mnist-tutorail")


def test_epochs_draw_each_sample_once_per_epoch(tmp_path):
    trainer = Trainer(TrainConfig(epochs=1, **TINY), tmp_path, progress=False)
    seen = []
    for step in range(trainer.steps_per_epoch):
        trainer.step = step
        seen.append(trainer._epoch_order(0)[step * 256:(step + 1) * 256])
    seen = torch.cat(seen)
    assert len(seen) == trainer.steps_per_epoch * 256 == len(trainer.data) // 256 * 256
    assert len(set(seen.tolist())) == len(seen)  # without replacement
    assert not torch.equal(trainer._epoch_order(0), trainer._epoch_order(1))  # a fresh shuffle each epoch


def test_epoch_losses_are_the_mean_of_their_steps_and_resume_exactly(tmp_path, capsys):
    one = Trainer(TrainConfig(epochs=3, **TINY), tmp_path / "one", progress=False)
    result = one.run()
    per_epoch = one.steps_per_epoch
    assert result.step == 3 * per_epoch and [e for e, _ in result.epoch_losses] == [0, 1, 2]
    printed = [line for line in capsys.readouterr().out.splitlines() if line.startswith("epoch:")]
    assert printed == [f"epoch: {e}, average loss: {loss}" for e, loss in result.epoch_losses]
    # stop in the middle of epoch 1 (checkpoint_every is not a multiple of the epoch), then resume
    mid = per_epoch + 2
    first = Trainer(TrainConfig(epochs=3, steps=mid, checkpoint_every=mid, **TINY), tmp_path / "two", progress=False)
    first.total_steps = mid
    first.run()
    second = Trainer(TrainConfig(epochs=3, **TINY), tmp_path / "two", progress=False)
    resumed = second.run(resume=True)
    assert resumed.epoch_losses == result.epoch_losses
    for k, v in one.model.state_dict().items():
        assert torch.equal(v, second.model.state_dict()[k]), k


def test_epoch_with_no_full_batch_is_refused(tmp_path):
    with pytest.raises(ValueError, match="batch_size 5000 exceeds the 1438 training samples"):
        Trainer(TrainConfig(epochs=1, **{**TINY, "batch_size": 5000}), tmp_path, progress=False)


@pytest.mark.parametrize("epochs", [0, -1, 1.5, True, "3"])
def test_bad_epochs_are_refused(epochs):
    with pytest.raises(ValueError, match="epochs must be a positive integer"):
        TrainConfig(epochs=epochs)


def test_keep_last_prunes_old_checkpoints(tmp_path):
    Trainer(TrainConfig(steps=6, checkpoint_every=1, keep_last=2, **TINY), tmp_path, progress=False).run()
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert names == ["step_0000005", "step_0000006"]
    assert load_checkpoint(tmp_path).meta["step"] == 6


def test_resaving_a_step_never_leaves_latest_without_a_folder(tmp_path, monkeypatch):
    trainer = Trainer(TrainConfig(steps=2, **TINY), tmp_path, progress=False)
    trainer.run()
    import os

    import scoreflow.training.checkpoint as checkpoint

    seen = []
    real_replace = os.replace

    def watching_replace(src, dst):  # at every rename, `latest` must name a complete checkpoint
        seen.append(load_checkpoint(tmp_path).meta["step"])
        return real_replace(src, dst)

    monkeypatch.setattr(checkpoint.os, "replace", watching_replace)
    trainer.save()  # a re-save of step 2, as resuming a finished run does
    monkeypatch.undo()
    assert seen and all(step == 2 for step in seen)
    names = sorted(p.name for p in (tmp_path / "checkpoints").iterdir() if p.is_dir())
    assert names == ["step_0000002.1"]
    assert load_checkpoint(tmp_path).path.name == "step_0000002.1"


def test_cli_preset_with_flag_overrides(tmp_path, capsys):
    code = main(["train", "--preset", "mnist-tutorial", "--dataset", "digits", "--model-options",
                 '{"channels": [8, 16, 16, 16], "embed_dim": 16}', "--batch-size", "512", "--epochs", "1",
                 "--out", str(tmp_path), "--no-progress"])
    assert code == 0
    out = capsys.readouterr().out
    assert "epoch: 0, average loss: " in out
    config = load_checkpoint(tmp_path).meta["config"]
    assert config["sde"] == "ve" and config["lr"] == 1e-4 and config["batch_size"] == 512
    assert config["grad_clip"] is None and config["epochs"] == 1


def test_cli_lists_presets_and_refuses_unknown_ones(tmp_path, capsys):
    assert main(["presets", "-v"]) == 0
    out = capsys.readouterr().out
    assert "mnist-tutorial" in out and "batch_size = 32" in out
    assert main(["train", "--preset", "nope", "--out", str(tmp_path)]) == 2
    assert "Unknown preset 'nope'. Available: mnist, mnist-cfg, mnist-density, mnist-likelihood, mnist-sigma25, mnist-tutorial" in capsys.readouterr().err


@pytest.mark.skipif(not __import__("pathlib").Path(__file__).resolve().parents[2].joinpath(
    "shared/data/mnist/train-images-idx3-ubyte.gz").is_file(), reason="MNIST IDX files not in ../shared/data/mnist")
def test_mnist_tutorial_preset_reads_the_mnist_files_offline(tmp_path):
    from pathlib import Path

    data_dir = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"
    values = {**load_preset("mnist-tutorial").train, "data_dir": str(data_dir)}
    trainer = Trainer(TrainConfig.from_dict(values), tmp_path, progress=False)
    assert trainer.steps_per_epoch == 1875 and trainer.total_steps == 50 * 1875
    assert trainer.data.x.shape == (60000, 1, 28, 28)
    first = trainer.train_step()
    losses = [trainer.train_step() for _ in range(20)]
    assert first > 784 and min(losses) < first  # ||s std + z||^2 over 784 pixels, above 784 at initialisation


def test_an_explicit_steps_flag_beats_the_presets_epochs(tmp_path, monkeypatch):
    """`train --preset mnist-tutorial --steps 3` trains 3 steps, not the preset's 50 epochs."""
    from scoreflow.cli.parser import parse_command

    seen = {}

    class Stop(Exception):
        pass

    def fake_trainer(config, out, **kwargs):
        seen["config"] = config
        raise Stop

    monkeypatch.setattr("scoreflow.training.Trainer", fake_trainer)
    run, options, _ = parse_command(["train", "--preset", "mnist-tutorial", "--steps", "3", "--out",
                                     str(tmp_path / "run")])
    with pytest.raises(Stop):
        run(options)
    assert seen["config"].steps == 3 and seen["config"].epochs is None
    run, options, _ = parse_command(["train", "--preset", "mnist-tutorial", "--out", str(tmp_path / "run")])
    with pytest.raises(Stop):
        run(options)
    assert seen["config"].epochs == 50


def test_mnist_density_preset_fine_tunes_the_mnist_model_under_the_likelihood_weighting():
    """Only the loss, learning rate, warm-up, length and seed differ from `mnist`; the weights it starts from fit."""
    from scoreflow.data.base import TensorData
    from scoreflow.training.trainer import build_components, initial_weights

    base, tuned = load_preset("mnist").train, load_preset("mnist-density").train
    changed = {k for k in set(base) | set(tuned) if base.get(k) != tuned.get(k)}
    assert changed == {"init_from", "weighting", "importance_sampling", "p_mean", "p_std", "lr", "warmup", "steps",
                       "seed"}
    config = TrainConfig.from_dict(tuned)
    assert (config.init_from, config.weighting, config.importance_sampling) == ("pretrained:mnist", "likelihood", True)
    _, model = build_components(config, TensorData(torch.zeros(1, 1, 28, 28), None, "image"))
    weights, _ = initial_weights(config.init_from)
    model.load_state_dict(weights)  # strict: the same network
