"""Suite 6: end to end on images — train the tutorial U-Net on digits for a fixed budget, then
test bits/dim and the classifier-feature Frechet distance of each sampler's samples at its NFE.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import torch

import scoreflow as sf
from scoreflow.data.sources import DEFAULT_DATA_DIR, digits
from scoreflow.cli.digits_demo import demo_config
from scoreflow.evaluation import image_quality
from scoreflow.training import Trainer, load_trained

SAMPLERS = {
    "euler (500)": dict(predictor="euler", num_steps=500),
    "euler+langevin (250 levels)": dict(predictor="euler", corrector="langevin", num_steps=250, snr=0.16),
    "reverse_diffusion+langevin (250 levels)": dict(predictor="reverse_diffusion", corrector="langevin",
                                                    num_steps=250, snr=0.16),
    "dpmpp_2m (40)": dict(predictor="dpmpp_2m", num_steps=40),
    "edm_heun (20)": dict(predictor="edm_heun", num_steps=20),
}


def run_suite(steps: int, n_samples: int, n_bpd: int, host: sf.PluginHost, scale: float = 1.0) -> dict[str, Any]:
    """Train on digits for ``steps`` steps; bits/dim on ``n_bpd`` test images; FD per sampler."""
    with tempfile.TemporaryDirectory() as tmp:
        start = time.perf_counter()
        Trainer(demo_config(steps), Path(tmp), host=host, progress=False).run()
        train_s = time.perf_counter() - start
        model, sde, _ = load_trained(tmp, host=host)
    train, test = digits("train"), digits("test")
    ll = sf.log_likelihood(model, sde, test.x[:n_bpd], dequantize=test.levels,
                           method=sf.ODELikelihood(rtol=1e-4, atol=1e-4, host=host),
                           generator=torch.Generator().manual_seed(0))
    rows = []
    for name, kwargs in SAMPLERS.items():
        if kwargs["predictor"] not in host.available("predictor"):
            rows.append({"sampler": name, "error": "plugin not installed"})
            continue
        kwargs = {**kwargs, "num_steps": max(1, int(kwargs["num_steps"] * scale))}
        start = time.perf_counter()
        res = sf.Sampler(host=host, **kwargs).sample(model, sde, (n_samples, 1, 8, 8),
                                                     generator=torch.Generator().manual_seed(1))
        seconds = time.perf_counter() - start
        q = image_quality(res.samples, train, test, DEFAULT_DATA_DIR / "classifiers")
        rows.append({"sampler": name, "nfe": res.nfe, "seconds": round(seconds, 2),
                     "frechet_distance": q["frechet_distance"], "class_histogram": q["class_histogram"]})
    reference = image_quality(train.x[:n_samples], train, test, DEFAULT_DATA_DIR / "classifiers")
    return {"train_steps": steps, "train_seconds": round(train_s, 1), "test_bpd": float(ll.bpd.mean()),
            "test_bpd_std_error": float(ll.bpd.std() / len(ll.bpd) ** 0.5), "bpd_images": n_bpd,
            "quantization_levels": test.levels,
            "samplers": rows, "reference_frechet_distance": reference["frechet_distance"]}
