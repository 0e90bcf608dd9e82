"""Every registered component, built-in or from an installed plugin, passes the conformance kit."""

from __future__ import annotations

import pytest

import scoreflow as sf
from scoreflow import testing

HOST = sf.PluginHost(autoload=True, strict=True)

# Components that integrate a whole trajectory or do nothing are checked elsewhere:
# "none" predictor/corrector are identities; "torchsde" has its own tests per method.
SKIP_PREDICTORS = {"none", "torchsde"}


@pytest.mark.parametrize("name", HOST.available("sde"))
def test_sde_conforms(name):
    testing.check_sde(HOST.create("sde", name))


@pytest.mark.parametrize("name", [n for n in HOST.available("predictor") if n not in SKIP_PREDICTORS])
@pytest.mark.parametrize("sde_name", [n for n in HOST.available("sde") if n != "ve_tutorial"])  # same family as ve
def test_predictor_conforms(name, sde_name):
    testing.check_predictor(HOST.create("predictor", name), HOST.create("sde", sde_name))


@pytest.mark.parametrize("name", [n for n in HOST.available("corrector") if n != "none"])
def test_corrector_conforms(name):
    testing.check_corrector(HOST.create("corrector", name))


@pytest.mark.parametrize("name", HOST.available("ode_solver"))
def test_ode_solver_conforms(name):
    testing.check_ode_solver(HOST.create("ode_solver", name))
