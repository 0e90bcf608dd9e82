"""Registry rules: normalisation, aliases, qualified names, clashes and error listings."""

from __future__ import annotations

import string

import pytest
from hypothesis import given
from hypothesis import strategies as st

import scoreflow as sf
from scoreflow.registry import BUILTIN_PROVIDER, Registry, normalize_name

names = st.text(alphabet=string.ascii_lowercase + string.digits + "_", min_size=1, max_size=12).filter(
    lambda s: s[0].isalpha()
)


def factory() -> str:
    """A factory for tests."""
    return "made"


@given(st.text(max_size=20))
def test_normalisation_is_idempotent(name):
    assert normalize_name(normalize_name(name)) == normalize_name(name)


@given(names, st.lists(names, max_size=3, unique=True))
def test_alias_resolves_to_the_same_entry(name, aliases):
    reg = Registry("predictor")
    aliases = [a for a in aliases if a != name]
    entry = reg.add(name, factory, aliases=aliases)
    for alias in aliases:
        assert reg.get(alias) is entry
        assert reg.get(alias.upper().replace("_", "-")) is entry
    assert reg.get(f"  {name.upper()} ") is entry
    assert reg.get(f"{BUILTIN_PROVIDER}:{name}") is entry
    assert reg.names() == [name]


@given(st.lists(names, min_size=1, max_size=6, unique=True), names)
def test_unknown_name_lists_every_name(registered, query):
    reg = Registry("corrector")
    for n in registered:
        reg.add(n, factory)
    if query in registered:
        return
    with pytest.raises(sf.UnknownComponentError) as info:
        reg.get(query)
    message = str(info.value)
    assert repr(query) in message
    for n in registered:
        assert n in message
    assert isinstance(info.value, KeyError)


def test_unknown_name_suggests_closest(host):
    with pytest.raises(sf.UnknownComponentError, match=r"Did you mean 'euler'\?") as info:
        host.predictors.get("eulr")
    assert "euler (aliases: em, euler_maruyama)" in str(info.value)
    assert "reverse_diffusion" in str(info.value)


def test_malformed_names_and_factories_rejected():
    reg = Registry("sde")
    with pytest.raises(sf.RegistryError, match="invalid sde name '9lives'"):
        reg.add("9lives", factory)
    with pytest.raises(sf.RegistryError, match="factory must be callable"):
        reg.add("fine", 42)


def test_plugin_cannot_silently_take_a_builtin_name():
    reg = Registry("predictor")
    reg.add("euler", factory)
    reg.current_provider = "thirdparty"
    with pytest.raises(sf.DuplicateComponentError, match="'thirdparty'.*'scoreflow'"):
        reg.add("euler", factory)
    with pytest.raises(sf.DuplicateComponentError):
        reg.add("other", factory, aliases=("euler",))
    with pytest.warns(sf.ScoreflowPluginWarning, match="replaces predictor scoreflow:euler"):
        entry = reg.add("euler", factory, replace=True)
    assert reg.get("euler") is entry and entry.provider == "thirdparty"


def test_two_plugins_one_name_is_ambiguous_not_last_wins():
    reg = Registry("predictor")
    reg.current_provider = "alpha"
    a = reg.add("heun", factory)
    reg.current_provider = "beta"
    b = reg.add("heun", factory)
    with pytest.raises(sf.AmbiguousComponentError, match="alpha:heun, beta:heun"):
        reg.get("heun")
    assert reg.get("alpha:heun") is a and reg.get("beta:heun") is b
    assert "alpha:heun" in reg.describe_names() and "beta:heun" in reg.describe_names()


def test_same_provider_twice_is_an_error():
    reg = Registry("sde")
    reg.current_provider = "p"
    reg.add("x", factory)
    with pytest.raises(sf.DuplicateComponentError):
        reg.add("x", factory)


def test_resolve_passes_instances_and_checks_types(host):
    em = sf.EulerMaruyama()
    assert host.predictors.resolve(em) is em
    with pytest.raises(TypeError, match="expected a predictor name or a Predictor instance"):
        host.predictors.resolve(3.5)
    solver = sf.TorchsdeSolver()
    with pytest.raises(TypeError, match="Predictor instance, got TorchsdeSolver"):
        host.predictors.resolve(solver)  # its own kind now
    assert host.trajectory_solvers.resolve(solver) is solver
    with pytest.raises(sf.DroppedOptionsError, match=r"options \['snr'\] cannot apply to the predictor instance "
                                                     "EulerMaruyama"):
        host.predictors.resolve(em, snr=0.1)  # an instance carries its own options: never dropped silently


def test_whole_trajectory_solvers_are_their_own_kind(host):
    assert "torchsde" in host.available("trajectory_solver") and "torchsde" not in host.available("predictor")
    assert isinstance(sf.Sampler(predictor="torchsde", host=host).predictor_obj, sf.TorchsdeSolver)
    assert isinstance(sf.Sampler(predictor=sf.TorchsdeSolver()).predictor_obj, sf.TorchsdeSolver)
    with pytest.raises(TypeError, match="Predictor or TrajectorySolver instance, got float"):
        sf.Sampler(predictor=3.5)
    with pytest.raises(sf.UnknownComponentError, match=r"Unknown predictor 'torchsd'.*trajectory_solver\): .*torchsde"):
        sf.Sampler(predictor="torchsd", host=host)


def test_entry_summary_is_first_docstring_line():
    reg = Registry("x")
    assert reg.add("made", factory).summary == "A factory for tests."


def test_remove_provider_forgets_its_entries():
    reg = Registry("x")
    reg.current_provider = "p"
    reg.add("a", factory, aliases=("b",))
    reg.remove_provider("p")
    assert reg.names() == [] and "b" not in reg


def test_unknown_option_is_named_with_the_allowed_ones():
    with pytest.raises(sf.UnknownOptionError, match=r"corrector 'langevin' does not take option\(s\) 'snrr'. "
                                                     r"Allowed: n_steps, snr."):
        sf.create("corrector", "langevin", snrr=0.1)
    assert issubclass(sf.UnknownOptionError, TypeError) and issubclass(sf.UnknownOptionError, sf.ScoreflowError)


@pytest.mark.parametrize("build, message", [
    (lambda: sf.Sampler(num_steps="3"), "num_steps must be a positive integer, got '3'"),
    (lambda: sf.Sampler(num_steps=True), "num_steps must be a positive integer, got True"),
    (lambda: sf.create("ode_solver", "dopri5", method="x"), "Unknown method 'x'. Available: dopri5, dopri8"),
    (lambda: sf.create("trajectory_solver", "torchsde", method="x"), "Unknown method 'x'. Available: euler, milstein"),
])
def test_validation_errors_read_as_one_sentence(build, message):
    with pytest.raises((ValueError, TypeError)) as info:
        build()
    assert str(info.value).startswith(message) and "Attribute(" not in str(info.value)
