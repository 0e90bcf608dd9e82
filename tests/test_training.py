"""Training: loss, resume equivalence, checkpoints (safe format, atomic, hostile files), config errors."""

from __future__ import annotations

import json
import pickle

import pytest
import torch

import scoreflow as sf
from scoreflow.training import (CheckpointError, ImportanceTimeSampler, TrainConfig, Trainer, load_checkpoint,
                                load_trained)

TINY = dict(dataset="digits", model_options={"channels": [8, 16, 16, 16], "embed_dim": 16}, batch_size=16,
            log_every=2)


def _weights(trainer: Trainer) -> dict[str, torch.Tensor]:
    return {k: v.clone() for k, v in trainer.model.state_dict().items()}


def test_resume_equals_one_run(tmp_path):
    one = Trainer(TrainConfig(steps=8, **TINY), tmp_path / "one", progress=False)
    one.run()
    first = Trainer(TrainConfig(steps=4, **TINY), tmp_path / "two", progress=False)
    first.run()
    second = Trainer(TrainConfig(steps=8, **TINY), tmp_path / "two", progress=False)
    result = second.run(resume=True)
    assert result.step == 8
    a, b = _weights(one), _weights(second)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    ema_a, ema_b = one.ema.state_dict(), second.ema.state_dict()
    assert all(torch.equal(ema_a[k], ema_b[k]) for k in ema_a)
    assert one.losses == second.losses


def test_checkpoint_round_trip_and_files(tmp_path):
    trainer = Trainer(TrainConfig(steps=3, **TINY), tmp_path, progress=False)
    trainer.run()
    assert (tmp_path / "loss.png").stat().st_size > 1000
    ckpt = load_checkpoint(tmp_path)
    assert ckpt.meta["step"] == 3 and ckpt.meta["config"]["batch_size"] == 16
    assert set(ckpt.meta["versions"]) >= {"scoreflow", "torch"}
    model, sde, config = load_trained(tmp_path, ema=False)
    for k, v in trainer.model.state_dict().items():
        assert torch.equal(model.state_dict()[k], v)
    ema_model, _, _ = load_trained(tmp_path)
    assert isinstance(sde, sf.VESDE) and config == trainer.config
    x = torch.rand(2, 1, 8, 8)
    t = torch.full((2,), 0.5)
    torch.testing.assert_close(ema_model(x, t), trainer.ema.module(x, t))


class _Evil:
    def __reduce__(self):
        return (exec, ("import pathlib; pathlib.Path('PWNED').write_text('x')",))


def test_pickle_checkpoints_are_refused(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    evil = tmp_path / "model.pt"
    evil.write_bytes(pickle.dumps(_Evil()))
    disguised = tmp_path / "weights.data"
    disguised.write_bytes(pickle.dumps(_Evil()))
    for path in (evil, disguised):
        with pytest.raises(CheckpointError, match="refusing to load .* pickle file"):
            load_checkpoint(path)
    assert not (tmp_path / "PWNED").exists()


def test_corrupt_and_foreign_checkpoints(tmp_path):
    Trainer(TrainConfig(steps=2, **TINY), tmp_path, progress=False).run()
    folder = load_checkpoint(tmp_path).path
    (folder / "model.safetensors").write_bytes(b"\x00" * 64)
    with pytest.raises(CheckpointError, match="corrupt safetensors"):
        load_checkpoint(tmp_path)
    meta = json.loads((folder / "meta.json").read_text())
    (folder / "meta.json").write_text(json.dumps({**meta, "format": "other"}))
    with pytest.raises(CheckpointError, match="not a scoreflow checkpoint"):
        load_checkpoint(folder)
    (tmp_path / "checkpoints" / "latest").write_text("../../etc\n")
    with pytest.raises(CheckpointError, match="invalid checkpoint name"):
        load_checkpoint(tmp_path)
    with pytest.raises(CheckpointError, match="no scoreflow checkpoint"):
        load_checkpoint(tmp_path / "nowhere")


def test_interrupted_write_keeps_latest(tmp_path, monkeypatch):
    trainer = Trainer(TrainConfig(steps=2, **TINY), tmp_path, progress=False)
    trainer.run()
    good = load_checkpoint(tmp_path).path
    import safetensors.torch

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("power cut")

    monkeypatch.setattr(safetensors.torch, "save_file", crash)
    trainer.step = 5
    with pytest.raises(KeyboardInterrupt):
        trainer.save()
    assert load_checkpoint(tmp_path).path == good
    assert [p.name for p in (tmp_path / "checkpoints").iterdir() if p.name.startswith(".")] == []


def test_resume_with_a_different_config_is_refused(tmp_path):
    Trainer(TrainConfig(steps=2, **TINY), tmp_path, progress=False).run()
    other = Trainer(TrainConfig(steps=4, **{**TINY, "lr": 1e-2}), tmp_path, progress=False)
    with pytest.raises(CheckpointError, match=r"differs from the checkpoint's in \['lr'\]"):
        other.run(resume=True)


@pytest.mark.parametrize(("values", "match"), [
    (dict(steps=0), "steps must be positive"),
    (dict(weighting="l2"), "Unknown weighting 'l2'. Available: edm, likelihood, sigma2"),
    (dict(optimizer="sgd"), "Unknown optimizer 'sgd'. Available: adam, adamw"),
    (dict(ema_decay=1.0), "ema_decay must lie in"),
    (dict(batchsize=3), "Unknown training option\\(s\\) 'batchsize'. Allowed: .*batch_size"),
])
def test_bad_config_values(values, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(values)


def test_unknown_dataset_and_model_names(tmp_path):
    with pytest.raises(sf.UnknownComponentError, match="Unknown dataset 'digit'.*Did you mean 'digits'"):
        Trainer(TrainConfig(dataset="digit"), tmp_path)
    with pytest.raises(sf.UnknownComponentError, match="Unknown score_net 'unett'"):
        Trainer(TrainConfig(model="unett"), tmp_path)


def test_toml_config(tmp_path):
    path = tmp_path / "run.toml"
    path.write_text('[train]\ndataset = "ring"\nmodel = "mlp"\nsteps = 5\nbatch_size = 8\n')
    cfg = TrainConfig.from_toml(path, lr=1e-3)
    assert (cfg.dataset, cfg.model, cfg.steps, cfg.lr) == ("ring", "mlp", 5, 1e-3)
    path.write_text("steps = [")
    with pytest.raises(ValueError, match="cannot read TOML config"):
        TrainConfig.from_toml(path)


def test_likelihood_weighting_trains_with_importance_sampling(tmp_path):
    cfg = TrainConfig(dataset="ring", model="mlp", weighting="likelihood", steps=60, batch_size=64, lr=3e-3,
                      log_every=10)
    result = Trainer(cfg, tmp_path, progress=False).run()
    assert result.losses[-1][1] < result.losses[0][1]


def test_importance_sampler_matches_its_density():
    sde = sf.VESDE()
    sampler = ImportanceTimeSampler(sde, 1e-5)
    t = sampler.sample(200_000, torch.Generator().manual_seed(0))
    assert float(t.min()) >= 1e-5 and float(t.max()) <= 1.0
    # CDF of density ~ g^2/std^2 for VE: F(t) = [ln(e^{2Lt}-1) - ln(e^{2L eps}-1)] / Z
    L = sde.log_ratio
    f = lambda s: torch.log(torch.expm1(torch.tensor(2 * L * s, dtype=torch.float64)))  # noqa: E731
    for q in (0.05, 0.3, 0.9):
        expected = float((f(q) - f(1e-5)) / (f(1.0) - f(1e-5)))
        assert abs(float((t <= q).double().mean()) - expected) < 0.005


def test_mixed_precision_and_adamw_train(tmp_path):
    cfg = TrainConfig(dataset="ring", model="mlp", steps=20, batch_size=32, lr=3e-3, amp=True, optimizer="adamw",
                      weight_decay=1e-4, warmup=5, log_every=5)
    result = Trainer(cfg, tmp_path, progress=False).run()
    assert result.step == 20 and all(v == v for _, v in result.losses)


@pytest.mark.parametrize(("values", "match"), [
    (dict(steps="100"), r"steps must be an integer, got '100' \(str\)"),
    (dict(steps=True), r"steps must be an integer, got True \(bool\)"),
    (dict(batch_size=1.5), r"batch_size must be an integer, got 1.5"),
    (dict(lr="fast"), r"lr must be a finite number, got 'fast'"),
    (dict(lr=float("inf")), r"lr must be a finite number, got inf"),
    (dict(grad_clip="off"), r"grad_clip must be a finite number or 'none', got 'off'"),
    (dict(eps=2.0), r"eps \(the smallest training time\) must lie in \(0, 1\), got 2.0"),
    (dict(amp="yes"), r"amp must be true or false, got 'yes'"),
    (dict(model_options=[1]), r"model_options must be a table"),
    (dict(dataset=3), r"dataset must be a string, got 3"),
    (dict(data_dir=5), r"data_dir must be a path string"),
    (dict(seed=None), r"seed must be an integer, got None"),
])
def test_config_values_of_the_wrong_type_are_named(values, match):
    with pytest.raises(ValueError, match=match):
        TrainConfig.from_dict(values)


def test_toml_with_wrong_types_is_a_clear_cli_error(tmp_path, capsys):
    from scoreflow.cli import main

    (tmp_path / "run.toml").write_text('steps = "100"\nlr = "fast"\n')
    assert main(["train", "--config", str(tmp_path / "run.toml"), "--out", str(tmp_path / "r")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scoreflow: error: training option") and "Traceback" not in err
    assert not (tmp_path / "r").exists()


def test_grad_clip_none_in_toml_disables_clipping(tmp_path):
    (tmp_path / "run.toml").write_text('grad_clip = "none"\nlr = 1\n')
    config = TrainConfig.from_toml(tmp_path / "run.toml")
    assert config.grad_clip is None and config.lr == 1.0 and isinstance(config.lr, float)


@pytest.mark.parametrize("grad_clip, hint", [(None, "or clip gradients"), (1.0, "gradient clipping at 1 is already on")])
def test_divergence_stops_training_with_the_step_and_a_fitting_hint(tmp_path, grad_clip, hint):
    config = TrainConfig(steps=50, lr=1e4, grad_clip=grad_clip, **TINY)
    with pytest.raises(sf.ScoreflowError, match=f"training diverged at step \\d+: .*; lower --lr.*{hint}"):
        Trainer(config, tmp_path, progress=False).run()


def test_trainer_from_instances_needs_no_plugin_host_and_trains_as_from_names(tmp_path, monkeypatch):
    from scoreflow import plugins
    from scoreflow.training.trainer import build_components

    config = TrainConfig(steps=2, **TINY)
    named = Trainer(config, tmp_path / "named", progress=False)
    data, sde = named.data, named.sde
    _, model = build_components(config, data, sde=sde)  # what the names build, from the config's seed

    def no_host(*args, **kwargs):
        raise AssertionError("get_host() called although data, sde and model were given")

    monkeypatch.setattr(plugins, "get_host", no_host)
    given = Trainer(config, tmp_path / "given", data=data, sde=sde, model=model, progress=False)
    given.run()
    named.run()
    a, b = _weights(named), _weights(given)
    assert all(torch.equal(a[k], b[k]) for k in a)
    with pytest.raises(TypeError, match="expected a score_net name or a ScoreNet instance, got Linear"):
        Trainer(config, tmp_path / "bad", data=data, sde=sde, model=torch.nn.Linear(2, 2), progress=False)


def test_ema_update_is_the_ramped_average_and_follows_integer_buffers():
    """The in-place (foreach) EMA equals ``d * ema + (1 - d) * current`` with ``d = min(decay, (1+n)/(10+n))``;
    integer buffers (BatchNorm's counter) are copied, not averaged."""
    from torch.optim.swa_utils import AveragedModel

    from scoreflow.training.trainer import ema_with_warmup

    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(3, 4), torch.nn.BatchNorm1d(4))
    ema = AveragedModel(model, multi_avg_fn=ema_with_warmup(0.9), use_buffers=True)
    expected: dict[str, torch.Tensor] = {}
    for step in range(5):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(1.0)
        model(torch.randn(8, 3))
        ema.update_parameters(model)
        current = {k: v.detach().clone() for k, v in model.state_dict().items()}
        d = min(0.9, (1 + step) / (10 + step))
        expected = current if step == 0 else {
            k: expected[k] * d + v * (1 - d) if v.is_floating_point() else v for k, v in current.items()}
    got = {k.removeprefix("module."): v for k, v in ema.state_dict().items() if k.startswith("module.")}
    for k, v in expected.items():
        torch.testing.assert_close(got[k], v)
    assert int(got["1.num_batches_tracked"]) == 5


@pytest.mark.parametrize("name", ["adam", "adamw"])
def test_the_optimizer_is_fused_on_cpu_and_steps_as_the_per_tensor_one(name):
    """``make_optimizer`` picks torch's fused step on CPU; its update equals the default loop's up to rounding."""
    from scoreflow.training.trainer import make_optimizer

    config = TrainConfig(dataset="ring", model="mlp", optimizer=name, lr=1e-2, weight_decay=0.1)
    torch.manual_seed(0)
    fused_net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    loop_net = torch.nn.Sequential(torch.nn.Linear(3, 8), torch.nn.Tanh(), torch.nn.Linear(8, 2))
    loop_net.load_state_dict(fused_net.state_dict())
    fused = make_optimizer(config, fused_net.parameters())
    loop = (torch.optim.AdamW if name == "adamw" else torch.optim.Adam)(loop_net.parameters(), lr=1e-2,
                                                                        weight_decay=0.1, foreach=False)
    assert fused.defaults["fused"] is True
    start = [p.detach().clone() for p in fused_net.parameters()]
    x = torch.randn(16, 3)
    for _ in range(5):
        for net, opt in ((fused_net, fused), (loop_net, loop)):
            opt.zero_grad()
            net(x).square().sum().backward()
            opt.step()
    for a, b, s in zip(fused_net.parameters(), loop_net.parameters(), start, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)
        assert float((a.detach() - s).abs().max()) > 1e-3  # five steps of lr 1e-2 really moved every tensor


def test_init_from_starts_from_the_source_ema_weights_with_a_fresh_optimizer(tmp_path):
    source = Trainer(TrainConfig(steps=3, **TINY), tmp_path / "source", progress=False)
    source.run()
    tuned = Trainer(TrainConfig(steps=2, init_from=str(tmp_path / "source"), **{**TINY, "lr": 1e-9}),
                    tmp_path / "tuned", progress=False)
    tuned.initialise_from(tuned.config.init_from)
    source_ema = {k.removeprefix("module."): v for k, v in source.ema.state_dict().items() if k.startswith("module.")}
    for k, v in tuned.model.state_dict().items():
        assert torch.equal(v, source_ema[k]), k  # the EMA weights, not the raw ones
    result = tuned.run()
    assert result.step == 2 and tuned.optimizer.state_dict()["state"]  # Adam started afresh and has stepped
    for k, v in tuned.model.state_dict().items():  # lr 1e-9: two steps barely move the start
        assert torch.allclose(v, source_ema[k], atol=1e-6), k
    assert load_checkpoint(tmp_path / "tuned").meta["config"]["init_from"] == str(tmp_path / "source")


def test_init_from_refuses_a_network_of_another_shape(tmp_path):
    Trainer(TrainConfig(steps=1, **TINY), tmp_path / "source", progress=False).run()
    wider = {**TINY, "model_options": {"channels": [8, 16, 16, 32], "embed_dim": 16}}
    config = TrainConfig(steps=1, init_from=str(tmp_path / "source"), **wider)
    with pytest.raises(CheckpointError, match="do not fit this run's network"):
        Trainer(config, tmp_path / "tuned", progress=False).run()


def test_init_from_rejects_an_empty_name():
    with pytest.raises(ValueError, match="init_from must name a checkpoint"):
        TrainConfig(init_from=" ")


def test_init_from_a_shipped_model_gives_its_verified_ema_weights():
    from scoreflow.training.trainer import initial_weights

    weights, where = initial_weights("pretrained:mnist-tutorial")
    model, _, _ = sf.load_pretrained("mnist-tutorial")
    assert where.name == "mnist-tutorial"
    assert all(torch.equal(v, weights[k]) for k, v in model.state_dict().items())
    with pytest.raises(sf.UnknownComponentError, match="Unknown pretrained 'mnist-tutorail'"):
        initial_weights("pretrained:mnist-tutorail")


def test_a_full_disk_during_a_save_is_one_error_and_latest_keeps_the_previous_checkpoint(tmp_path, monkeypatch):
    """ENOSPC shows up as safetensors' SafetensorError (a traceback before); it is a CheckpointError naming the
    step and the folder, the half-written folder is removed, and 'latest' still loads the previous step."""
    import safetensors.torch
    from safetensors import SafetensorError

    trainer = Trainer(TrainConfig(steps=2, **TINY), tmp_path, progress=False)
    trainer.run()
    real = safetensors.torch.save_file

    def full_disk(tensors, filename, metadata=None):
        if filename.endswith("ema.safetensors"):
            raise SafetensorError("Error while serializing: IoError(Os { code: 28, kind: StorageFull })")
        return real(tensors, filename, metadata)

    monkeypatch.setattr(safetensors.torch, "save_file", full_disk)
    trainer.step = 3
    with pytest.raises(CheckpointError, match=r"could not write the checkpoint of step 3 .*StorageFull.*previous"):
        trainer.save()
    monkeypatch.undo()
    assert load_checkpoint(tmp_path).meta["step"] == 2
    assert sorted(p.name for p in (tmp_path / "checkpoints").iterdir()) == ["latest", "step_0000002"]
