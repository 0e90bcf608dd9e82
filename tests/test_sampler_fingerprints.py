"""Every sampler shape draws the same samples as the stored ones, on fixed seeds.

The stored values (tests/data/sampler-fingerprints.json) pin what each registered predictor x corrector x
schedule, each whole-trajectory solver, probability-flow sampling and each resampling condition draws from the
exact score of the 2-D ring oracle, in float64, on a few steps. A refactoring of the sampling code must leave
them as they are: they were written from the code before the sampler was split into its shapes, and they are
compared to 1e-10 (relative) so that a different CPU's last-bit rounding passes and any change of the algorithm
(at least 1e-6 on these steps) fails. A combination that cannot run stores the error class it raises.

Rewrite the file only when a change of the samples is intended: ``python tests/test_sampler_fingerprints.py``.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
import torch

import scoreflow as sf
from scoreflow.testing import ring_oracle

STORED = Path(__file__).parent / "data" / "sampler-fingerprints.json"
SCHEDULES = ("karras", "log_sigma", "uniform_sigma", "uniform_t")  # "tuned" reads a file: tests/test_tuning.py
SHAPE = (3, 2)
STEPS = 6


def _sdes() -> dict[str, sf.SDE]:
    return {"ve": sf.create("sde", "ve"), "vp": sf.create("sde", "vp")}


def _draw(sampler, sde) -> dict:
    try:
        result = sampler.sample(ring_oracle().score_model(sde), sde, SHAPE, dtype=torch.float64,
                                generator=torch.Generator().manual_seed(11))
    except Exception as exc:  # noqa: BLE001 - the stored contract includes which combinations refuse
        return {"error": type(exc).__name__}
    return {"samples": result.samples.tolist(), "nfe": result.nfe}


def _cases():
    """``(key, build)`` for every case; ``build()`` returns something with ``sample(model, sde, shape, ...)``."""
    host = sf.get_host()
    for name in sorted(host.registry("predictor").names()):
        for corrector in sorted(host.registry("corrector").names()):
            for schedule in SCHEDULES:
                yield (f"pc/{name}/{corrector}/{schedule}",
                       lambda n=name, c=corrector, s=schedule: sf.Sampler(predictor=n, corrector=c, schedule=s,
                                                                          num_steps=STEPS))
    for name in sorted(host.registry("trajectory_solver").names()):
        yield f"trajectory/{name}", lambda n=name: sf.Sampler(predictor=n, num_steps=STEPS)
    for solver in ("dopri5", "euler", "rk4"):
        yield (f"flow/{solver}",
               lambda s=solver: sf.ProbabilityFlowSampler(
                   solver=s, **({} if s == "dopri5" else {"solver_options": {"num_steps": STEPS}})))
    known, mask = torch.tensor([[4.0, 0.0]]).expand(*SHAPE), torch.tensor([True, False])
    for condition in ("inpaint", "inpaint_smc"):
        for predictor in ("euler", "dpmpp_2m", "reverse_diffusion"):
            for resample in (0, 1):
                yield (f"condition/{condition}/{predictor}/resample{resample}",
                       lambda c=condition, p=predictor, r=resample: sf.Sampler(
                           predictor=p, corrector="langevin", num_steps=STEPS, condition=c, resample=r,
                           condition_options={"known": known, "mask": mask}))


def compute() -> dict[str, dict]:
    """The fingerprint of every case on both SDEs (construction errors included)."""
    out = {}
    for key, build in _cases():
        for sde_name, sde in _sdes().items():
            try:
                sampler = build()
            except Exception as exc:  # noqa: BLE001
                out[f"{key}/{sde_name}"] = {"error": type(exc).__name__}
                continue
            out[f"{key}/{sde_name}"] = _draw(sampler, sde)
    return out


@pytest.fixture(scope="module")
def stored() -> dict[str, dict]:
    return json.loads(STORED.read_text())


@pytest.fixture(scope="module")
def current() -> dict[str, dict]:
    return compute()


def test_every_case_is_stored_and_no_stored_case_is_lost(stored, current):
    assert sorted(current) == sorted(stored)


@pytest.mark.parametrize("family", ["pc", "trajectory", "flow", "condition"])
def test_samples_equal_the_stored_ones(stored, current, family):
    keys = [k for k in stored if k.startswith(family + "/")]
    assert keys, f"no stored {family} cases"
    drawn = sum("samples" in stored[k] for k in keys)
    assert drawn >= len(keys) // 3, f"most {family} cases refuse: the fixture is not exercising them"
    for key in keys:
        want, got = stored[key], current[key]
        if "error" in want:
            assert got.get("error") == want["error"], key
            continue
        assert "samples" in got, f"{key}: {got}"
        assert got["nfe"] == want["nfe"], key
        torch.testing.assert_close(torch.tensor(got["samples"], dtype=torch.float64),
                                   torch.tensor(want["samples"], dtype=torch.float64), rtol=1e-10, atol=1e-10,
                                   msg=lambda m, k=key: f"{k}: {m}")


if __name__ == "__main__":
    STORED.parent.mkdir(exist_ok=True)
    STORED.write_text(json.dumps(compute(), indent=0, sort_keys=True) + "\n")
    print(f"wrote {STORED}", file=sys.stderr)
