"""Class-conditional score networks and training with labels and label dropout (classifier-free guidance)."""

from __future__ import annotations

import pytest
import torch

import scoreflow as sf
from scoreflow.models.embedding import NO_CLASS
from scoreflow.sampling.free_guidance import ClassifierFreeGuidance
from scoreflow.training import TrainConfig, Trainer, load_trained
from scoreflow.training.trainer import build_components

SDE = sf.VESDE(sigma_min=0.01, sigma_max=10.0)

def _resunet(**kw):
    return sf.ResUNet(channels=8, channel_mult=(1, 2), image_size=8, embed_dim=16, **kw)


# (the unconditional source, its class-conditional twin, sample shape)
NETWORKS = [
    (lambda: sf.MLP(SDE, dim=2, hidden=32), lambda: sf.MLP(SDE, dim=2, hidden=32, num_classes=10), (6, 2)),
    (lambda: sf.UNet(SDE, channels=(8, 8, 8, 8), embed_dim=16, image_size=8),
     lambda: sf.UNet(SDE, channels=(8, 8, 8, 8), embed_dim=16, image_size=8, num_classes=10), (6, 1, 8, 8)),
    (_resunet, lambda: _resunet(num_classes=10), (6, 1, 8, 8)),
    # fine-tuning into adaptive_norm: the class rows are random but reach only the zero-initialised projections
    (_resunet, lambda: _resunet(num_classes=10, adaptive_norm=True), (6, 1, 8, 8)),
]


@pytest.mark.parametrize(("make_plain", "make_conditional", "shape"), NETWORKS)
def test_a_conditional_network_built_from_an_unconditional_one_is_its_twin_until_trained(
        make_plain, make_conditional, shape):
    torch.manual_seed(0)
    plain = make_plain()
    with torch.no_grad():  # trained-looking weights (the ResUNet's residual branches and output start at zero)
        for p in plain.parameters():
            p.add_(torch.randn_like(p) * 0.1)
    conditional = make_conditional()
    missing, unexpected = conditional.load_state_dict(plain.state_dict(), strict=False)
    assert not unexpected and all(k.startswith("class_embed.") or ".modulation." in k for k in missing)
    assert conditional.num_classes == 10 and plain.num_classes is None
    x, t = torch.randn(shape), torch.rand(shape[0]) * 0.9 + 0.05
    labels = torch.tensor([0, 3, 9, NO_CLASS, 5, 1])
    with torch.no_grad():
        expected = plain(x, t)
        assert torch.equal(conditional(x, t), expected)  # no labels: the "no class" row
        assert torch.equal(conditional(x, t, torch.full((6,), NO_CLASS)), expected)
        assert torch.allclose(conditional(x, t, labels), expected)  # the class enters through zeros
        for p in conditional.parameters():
            p.add_(torch.randn_like(p) * 0.1)
        out = conditional(x, t, labels)
    assert not torch.allclose(out, conditional(x, t))
    with pytest.raises(ValueError, match=r"class 10 is not a class of this network \(allowed: 0\.\.9"):
        conditional(x, t, torch.tensor([0, 1, 2, 3, 4, 10]))
    with pytest.raises(ValueError, match="this network is unconditional"):
        plain(x, t, labels)
    with pytest.raises(ValueError, match="1-D integer tensor"):
        conditional(x, t, labels.float())


def test_adaptive_norm_lets_the_class_through_where_an_added_embedding_is_normalised_away():
    """8 channels: GroupNorm's groups hold one channel each, so an embedding added before it is a per-channel
    constant it removes; the scale and shift after the norm keep it."""
    x, t, labels = torch.randn(2, 1, 8, 8), torch.tensor([0.3, 0.6]), torch.tensor([0, 2])
    for adaptive, changes in ((False, False), (True, True)):
        torch.manual_seed(0)
        net = sf.ResUNet(channels=8, channel_mult=(1,), image_size=8, embed_dim=16, num_classes=3,
                         adaptive_norm=adaptive)
        with torch.no_grad():  # trained-looking weights (the residual branches start at zero)
            for p in net.parameters():
                p.add_(torch.randn_like(p) * 0.3)
            assert (float((net(x, t, labels) - net(x, t)).abs().max()) > 1e-3) == changes  # not rounding
    with pytest.raises(ValueError, match="adaptive_norm must be true or false"):
        sf.ResUNet(adaptive_norm=1)


def test_edm_preconditioning_passes_labels_and_declares_the_classes():
    # 64 channels: GroupNorm's 32 groups of two keep part of what the embedding adds (one channel per group, as
    # with 8 channels, would normalise a per-channel constant away)
    net = sf.ResUNet(channels=64, channel_mult=(1,), image_size=8, embed_dim=16, num_classes=3)
    wrapped = sf.EDMPreconditioner(net, SDE)
    assert wrapped.num_classes == 3
    with torch.no_grad():  # trained-looking weights (the residual branches and output layer start at zero)
        for p in net.parameters():
            p.add_(torch.randn_like(p) * 0.3)
    x, t = torch.randn(2, 1, 8, 8), torch.tensor([0.3, 0.6])
    with torch.no_grad():
        assert not torch.allclose(wrapped(x, t, torch.tensor([0, 2])), wrapped(x, t))
    score = sf.make_score_fn(sf.EDMPreconditioner(sf.ResUNet(channels=8, channel_mult=(1,), image_size=8,
                                                             embed_dim=16), SDE), SDE)
    with pytest.raises(ValueError, match="is unconditional"):
        score(x, t, class_labels=torch.tensor([0, 1]))


def _ring_config(**overrides) -> TrainConfig:
    options = dict(dataset="ring", model="mlp", model_options={"hidden": 64}, sde="ve",
                   sde_options={"sigma_min": 0.01, "sigma_max": 10.0}, steps=1500, batch_size=128, lr=2e-3,
                   ema_decay=0.99, class_dropout=0.2, seed=0)
    return TrainConfig(**{**options, **overrides})


def test_training_with_labels_learns_the_classes_and_label_dropout_the_whole(tmp_path):
    Trainer(_ring_config(), tmp_path, progress=False).run()
    model, sde, cfg = load_trained(tmp_path)
    assert cfg.model_options["num_classes"] == 8 and model.num_classes == 8
    gm = sf.GaussianMixture.ring()
    g = torch.Generator().manual_seed(0)
    wanted = torch.arange(8).repeat(40)
    x = sf.Sampler(num_steps=300, condition=ClassifierFreeGuidance(wanted, scale=0.0)).sample(
        model, sde, (320, 2), generator=g).samples
    assert float((gm.assign(x) == wanted).double().mean()) > 0.9  # the conditional model: each asked mode
    x = sf.Sampler(num_steps=300, condition=ClassifierFreeGuidance(0, scale=-1.0)).sample(
        model, sde, (800, 2), generator=g).samples
    counts = torch.bincount(gm.assign(x), minlength=8)
    assert int(counts.min()) > 50  # the unconditional model ("no class"): every mode, none dominating


def test_label_dropout_draws_no_class_at_its_rate_and_resume_stays_exact(tmp_path):
    trainer = Trainer(_ring_config(steps=4, batch_size=2000, class_dropout=0.3), tmp_path / "a", progress=False)
    _, _, _, labels = trainer._batch()
    dropped = float((labels == NO_CLASS).double().mean())
    assert 0.26 < dropped < 0.34
    assert set(labels[labels != NO_CLASS].tolist()) == set(range(8))
    full = Trainer(_ring_config(steps=6, batch_size=16), tmp_path / "full", progress=False)
    full.run()
    part = Trainer(_ring_config(steps=3, batch_size=16), tmp_path / "part", progress=False)
    part.run()
    resumed = Trainer(_ring_config(steps=6, batch_size=16), tmp_path / "part", progress=False)
    resumed.run(resume=True)
    for a, b in zip(full.model.state_dict().values(), resumed.model.state_dict().values()):
        assert torch.equal(a, b)


def test_a_conditional_run_can_start_from_an_unconditional_one(tmp_path):
    Trainer(_ring_config(class_dropout=None, steps=20), tmp_path / "plain", progress=False).run()
    trainer = Trainer(_ring_config(steps=1, init_from=str(tmp_path / "plain")), tmp_path / "cond", progress=False)
    trainer.initialise_from(str(tmp_path / "plain"))
    plain, _, _ = load_trained(tmp_path / "plain")
    x, t = torch.randn(5, 2), torch.rand(5) * 0.9 + 0.05
    with torch.no_grad():
        assert torch.equal(trainer.ema.module(x, t, torch.tensor([0, 1, 2, 3, NO_CLASS])), plain(x, t))


@pytest.mark.parametrize(("overrides", "message"), [
    ({"class_dropout": 1.0}, r"class_dropout must be a rate in \[0, 1\)"),
    ({"class_dropout": -0.1}, r"class_dropout must be a rate in \[0, 1\)"),
    ({"class_dropout": True}, r"class_dropout must be a rate in \[0, 1\)"),
    ({"class_dropout": None, "model_options": {"num_classes": 8}}, "set class_dropout"),
])
def test_bad_class_options_are_refused(overrides, message):
    with pytest.raises(ValueError, match=message):
        _ring_config(**overrides)


def test_class_options_need_labels_that_fit(tmp_path):
    with pytest.raises(ValueError, match="dataset 'checkerboard' has no labels"):
        Trainer(_ring_config(dataset="checkerboard"), tmp_path / "a", progress=False)
    with pytest.raises(ValueError, match=r"num_classes must be an integer >= 8 \(the dataset's labels run 0\.\.7\)"):
        Trainer(_ring_config(model_options={"num_classes": 4}), tmp_path / "b", progress=False)
    assert TrainConfig.from_dict({"class_dropout": "none"}).class_dropout is None


def test_two_moons_are_labelled_by_moon():
    data = sf.create("dataset", "two_moons", split="train")
    assert data.labels is not None and set(data.labels.tolist()) == {0, 1}
    _, model = build_components(_ring_config(dataset="two_moons", model_options={"num_classes": 2}), data)
    assert model.num_classes == 2
