"""The diffusers MNIST model shipped with the plugin: checksummed, loadable offline as diffusers:ddpm-mnist."""

from __future__ import annotations

import shutil

import pytest
import torch

import scoreflow as sf

pytest.importorskip("diffusers")
from scoreflow_diffusers import loading  # noqa: E402


def test_the_shipped_model_loads_by_name_and_samples_digits_shaped_images():
    assert "ddpm-mnist" in loading.shipped_models()
    model, sde, info = sf.load_pretrained("diffusers:ddpm-mnist")
    assert info.source == "diffusers:ddpm-mnist" and info.data_shape == (1, 32, 32)
    assert model.data_range == (-1.0, 1.0) and sde.N == 1000
    x = sf.Sampler(predictor="ddim", corrector="none", num_steps=3).sample(
        model, sde, (2, 1, 32, 32), generator=torch.Generator().manual_seed(0)).samples
    assert x.shape == (2, 1, 32, 32) and bool(torch.isfinite(x).all())


def test_a_tampered_shipped_file_is_refused(tmp_path, monkeypatch):
    copy = tmp_path / "models"
    shutil.copytree(loading.SHIPPED_FOLDER, copy)
    weights = copy / "ddpm-mnist" / "unet" / "diffusion_pytorch_model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-1] ^= 1
    weights.write_bytes(bytes(data))
    monkeypatch.setattr(loading, "SHIPPED_FOLDER", copy)
    with pytest.raises(ValueError, match="does not match the manifest"):
        loading.shipped_model_folder("ddpm-mnist")
    with pytest.raises(ValueError, match="no shipped diffusers model 'nope'; shipped: ddpm-mnist"):
        loading.shipped_model_folder("nope")
