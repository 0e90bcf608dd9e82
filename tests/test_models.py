"""Score networks: shapes for every supported image size, errors, and the U-Net trains."""

from __future__ import annotations

import pytest
import torch

import scoreflow as sf


@pytest.mark.parametrize(("size", "channels_in", "padding"),
                         [(28, 1, "auto"), (28, 1, "same"), (8, 1, "auto"), (32, 3, "auto"), (20, 2, "valid")])
def test_unet_shapes(size, channels_in, padding, ve):
    net = sf.create("score_net", "unet", sde=ve, image_size=size, in_channels=channels_in, padding=padding,
                    channels=(8, 16, 32, 32), embed_dim=32)
    x = torch.randn(3, channels_in, size, size)
    out = net(x, torch.rand(3) * 0.9 + 0.1)
    assert out.shape == x.shape and torch.isfinite(out).all()


def test_unet_default_is_the_tutorial_architecture(ve):
    net = sf.create("score_net", "unet", sde=ve)
    # trainable parameters of the tutorial layout (its Fourier W is fixed: a buffer here)
    assert sum(p.numel() for p in net.parameters()) == 1_115_297
    assert [m.kernel_size for m in (net.conv1, net.conv2)] == [(3, 3), (3, 3)] and net.conv1.padding == (0, 0)
    assert net.embed[0].W.std() == pytest.approx(30, rel=0.2) and not net.embed[0].W.requires_grad


def test_unet_without_the_embedding_dense_layer_is_the_seed_tutorials(ve):
    net = sf.create("score_net", "unet", sde=ve, fourier_scale=8.0, embed_dense=False)
    # the seed notebook's network: 256 * 256 + 256 fewer trainable parameters than Song's Colab
    assert sum(p.numel() for p in net.parameters()) == 1_115_297 - 256 * 256 - 256 and len(net.embed) == 1
    assert net.embed[0].W.std() == pytest.approx(8, rel=0.2)
    x = torch.randn(2, 1, 28, 28)
    assert net(x, torch.tensor([1e-3, 1.0])).shape == x.shape
    with pytest.raises(ValueError, match="embed_dense must be true or false, got 'no'"):
        sf.create("score_net", "unet", sde=ve, embed_dense="no")


def test_unet_divides_by_marginal_std(ve):
    net = sf.UNet(ve, image_size=8, channels=(8, 16, 16, 16), embed_dim=16)
    x = torch.randn(2, 1, 8, 8)
    t = torch.tensor([0.2, 0.7])
    out = net(x, t)

    class DoubledStd:
        def marginal_prob(self, x0, t):
            mean, std = ve.marginal_prob(x0, t)
            return mean, 2 * std

    net.sde = DoubledStd()
    torch.testing.assert_close(net(x, t), out / 2)


def test_bad_model_configuration(ve):
    with pytest.raises(ValueError, match="channels must be 4 positive integers"):
        sf.UNet(ve, channels=(1, 2))
    with pytest.raises(ValueError, match="padding must be 'auto', 'valid' or 'same', got 'full'"):
        sf.UNet(ve, padding="full")
    with pytest.raises(ValueError, match=r"UNet expects \(B, 1, 28, 28\), got \(2, 1, 8, 8\)"):
        sf.UNet(ve)(torch.zeros(2, 1, 8, 8), torch.rand(2))
    with pytest.raises(ValueError, match=r"MLP expects \(B, 2\)"):
        sf.MLP(ve)(torch.zeros(2, 3), torch.rand(2))


def _tiny_images(n: int) -> torch.Tensor:
    """Seeded 8x8 images in [0, 1]: bars and crosses at random offsets."""
    g = torch.Generator().manual_seed(0)
    images = torch.zeros(n, 1, 8, 8)
    for i in range(n):
        r, c = (int(v) for v in torch.randint(1, 7, (2,), generator=g))
        images[i, 0, r, 1:7] = 1.0
        if i % 2 == 0:
            images[i, 0, 1:7, c] = 1.0
    return images


def _dsm_loss(net, sde, x, generator):
    t = torch.rand(x.shape[0], generator=generator) * (1 - 1e-5) + 1e-5
    xt, z, std = sde.perturb(x, t, generator=generator)
    return ((net(xt, t) * std.reshape(-1, *[1] * (x.dim() - 1)) + z) ** 2).reshape(len(x), -1).sum(1).mean()


@pytest.mark.parametrize("kind", ["unet", "mlp"])
def test_denoising_loss_falls(kind):
    torch.manual_seed(0)
    sde = sf.VESDE.tutorial()
    if kind == "unet":
        x = _tiny_images(64)
        net = sf.create("score_net", "unet", sde=sde, image_size=8, channels=(16, 32, 32, 32), embed_dim=32)
    else:
        x, _ = sf.GaussianMixture.ring().sample(256, generator=torch.Generator().manual_seed(0))
        net = sf.create("score_net", "mlp", sde=sde)
    opt = torch.optim.Adam(net.parameters(), lr=3e-3)
    eval_gen = lambda: torch.Generator().manual_seed(123)  # noqa: E731
    with torch.no_grad():
        before = float(_dsm_loss(net, sde, x, eval_gen()))
    g = torch.Generator().manual_seed(1)
    for _ in range(150):
        opt.zero_grad()
        _dsm_loss(net, sde, x, g).backward()
        opt.step()
    with torch.no_grad():
        after = float(_dsm_loss(net, sde, x, eval_gen()))
    assert after < 0.6 * before, f"loss {before:.2f} -> {after:.2f}"
