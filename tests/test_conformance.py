"""Every registered component, built-in or from an installed plugin, passes the conformance kit."""

from __future__ import annotations

import pytest

import scoreflow as sf
from scoreflow import testing

HOST = sf.PluginHost(autoload=True, strict=True)

# "none" predictor/corrector are identities; "torchsde" has its own tests per method (tests/test_flow.py).
SKIP_PREDICTORS = {"none"}


@pytest.mark.parametrize("name", HOST.available("sde"))
def test_sde_conforms(name):
    testing.check_sde(HOST.create("sde", name))


def _compatible(kind: str, skip: set[str]) -> list[tuple[str, str]]:
    """(component, sde) pairs whose declared requirements the SDE meets."""
    sdes = [n for n in HOST.available("sde") if n != "ve_tutorial"]  # ve_tutorial: same family as ve
    pairs = []
    for name in HOST.available(kind):
        if name in skip:
            continue
        requires = HOST.create(kind, name).requires
        pairs += [(name, s) for s in sdes if requires <= HOST.create("sde", s).capabilities]
    return pairs


@pytest.mark.parametrize(("name", "sde_name"), _compatible("predictor", SKIP_PREDICTORS))
def test_predictor_conforms(name, sde_name):
    testing.check_predictor(HOST.create("predictor", name), HOST.create("sde", sde_name))


@pytest.mark.parametrize(("name", "sde_name"), _compatible("trajectory_solver", {"torchsde"}))
def test_trajectory_solver_conforms(name, sde_name):
    testing.check_predictor(HOST.create("trajectory_solver", name), HOST.create("sde", sde_name))


@pytest.mark.parametrize(("name", "sde_name"), _compatible("corrector", {"none"}))
def test_corrector_conforms(name, sde_name):
    testing.check_corrector(HOST.create("corrector", name), HOST.create("sde", sde_name))


@pytest.mark.parametrize("name", HOST.available("ode_solver"))
def test_ode_solver_conforms(name):
    testing.check_ode_solver(HOST.create("ode_solver", name))
