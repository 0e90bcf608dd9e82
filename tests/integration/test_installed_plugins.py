"""The real plugins/ packages, installed as a user would (pip install -e plugins/...)."""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys

import pytest
import torch

import scoreflow as sf

try:
    VP_VERSION = importlib.metadata.version("scoreflow-vp")
except importlib.metadata.PackageNotFoundError:
    VP_VERSION = None

needs_vp = pytest.mark.skipif(VP_VERSION is None, reason="scoreflow-vp is not installed (pip install -e plugins/scoreflow-vp)")


@needs_vp
def test_vp_is_discovered_through_its_entry_point():
    host = sf.PluginHost(autoload=True, strict=True)
    entry = host.sdes.get("vp")
    assert entry.provider == "vp" and entry.qualified_name == "vp:vp"
    row = next(r for r in host.plugins() if r.name == "vp")
    assert (row.distribution, row.version) == ("scoreflow-vp", VP_VERSION)
    assert row.components == {"sde": ("vp", "subvp"), "predictor": ("ancestral",)}
    blocked = sf.PluginHost(autoload=True, blocked=["vp"], strict=True)
    assert "vp" not in blocked.available("sde")


@needs_vp
def test_vp_samples_the_mixture_with_the_core_sampler(oracle, oracle_logp):
    from scoreflow.testing import assert_mixture_close

    sde = sf.create("sde", "vp")
    res = sf.Sampler(predictor="reverse_diffusion", corrector="langevin", num_steps=500).sample(
        oracle.score_model(sde), sde, (4000, 2), generator=torch.Generator().manual_seed(0))
    assert_mixture_close(oracle, res.samples, reference_logp=oracle_logp, label="vp reverse_diffusion+langevin")


@needs_vp
def test_cli_lists_plugins_as_json():
    out = subprocess.run([sys.executable, "-m", "scoreflow", "plugins", "--json"], check=True,
                         capture_output=True, text=True, timeout=120)
    rows = {r["name"]: r for r in json.loads(out.stdout)}
    assert rows["scoreflow"]["components"]["predictor"] == ["euler", "reverse_diffusion", "none"]
    assert rows["scoreflow"]["components"]["trajectory_solver"] == ["torchsde"]
    assert rows["vp"]["version"] == VP_VERSION
    assert rows["vp"]["components"] == {"sde": ["vp", "subvp"], "predictor": ["ancestral"]}
    if "fast" in rows:
        assert rows["fast"]["components"]["predictor"] == [
            "ddim", "edm_heun", "dpm_solver_2", "dpm_solver_3", "dpmpp_2m", "dpmpp_2m_sde", "dpmpp_3m", "ipndm", "deis",
            "unipc"]
        assert rows["fast"]["components"]["trajectory_solver"] == ["gotta_go_fast"]
        assert rows["fast"]["components"]["corrector"] == ["ald"]
    if "diffusers" in rows:
        assert rows["diffusers"]["components"] == {"pretrained": ["diffusers"]}
