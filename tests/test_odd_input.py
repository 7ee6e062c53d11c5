"""Odd input (issue 15): each case is a clear exception naming the problem, or the correct output."""

from __future__ import annotations

import threading

import pytest
import torch

from snn_blockbackend import block_neuron, set_backend, use_backend
from snn_blockbackend.functional import get_backend


# ---------------------------------------------------------------------------------------------
# use_backend is context-local
# ---------------------------------------------------------------------------------------------
def test_use_backend_in_two_threads_does_not_leak():
    set_backend(None)
    before = get_backend()
    step = threading.Barrier(2, timeout=30)
    seen = {}
    errors = []

    def first():
        try:
            with use_backend("reference"):
                step.wait()  # 1: both are inside their own use_backend
                step.wait()  # 2: the second thread has entered after us
                seen["first inside"] = get_backend()
            step.wait()  # 3: we left first (the old global version restored our 'previous' for everyone)
            step.wait()  # 4
            seen["first after"] = get_backend()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    def second():
        try:
            step.wait()  # 1
            with use_backend("torch"):
                step.wait()  # 2
                step.wait()  # 3: the first thread has left its block
                seen["second inside"] = get_backend()
            step.wait()  # 4
            seen["second after"] = get_backend()
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert seen == {
        "first inside": "reference",
        "second inside": "torch",
        "first after": before,
        "second after": before,
    }
    assert get_backend() == before


def test_use_backend_nests_over_set_backend():
    try:
        set_backend("torch")
        with use_backend("reference"):
            assert get_backend() == "reference"
            with use_backend("numba"):
                assert get_backend() == "numba"
            assert get_backend() == "reference"
        assert get_backend() == "torch"
        with pytest.raises(ValueError, match="unknown backend 'nope'"):
            with use_backend("nope"):
                pass
    finally:
        set_backend(None)


# ---------------------------------------------------------------------------------------------
# every provider on odd sizes: T = 0 and refractory periods far beyond T
# ---------------------------------------------------------------------------------------------
from snn_blockbackend import plugins  # noqa: E402
from snn_blockbackend.functional import MAX_REFRACTORY_STEPS, check_params  # noqa: E402
from snn_blockbackend.profiles import make_profile  # noqa: E402
from snn_blockbackend.providers.reference import run_reference  # noqa: E402

PROVIDERS = ("reference", "torch", "numba", "triton")
# the paper's LIF (every fast path), its ALIF (numba's and Triton's ALIF kernels), Norse's LIF (torch's generic path)
PROFILES = ("paper_lif", "paper", "norse_lif", "snntorch_leaky")


def _params(profile):
    return {name: 0.9 for name, default in profile.param_defaults.items() if default is None}


def _provider_or_skip(name, profile, grad="exact"):
    reason = plugins.providers()[name].supports(profile, torch.device("cpu"), grad)
    if reason is not None:
        pytest.skip(f"provider {name} does not run {profile.name} here: {reason}")


def _initial_state(profile, params, shape, countdown):
    template = torch.zeros(shape, dtype=torch.float64)
    state = profile.initial_state(profile.prepare(check_params(profile, params, template[None])), template)
    return {**state, "refractory": torch.zeros(shape, dtype=torch.long) if countdown is None else countdown}


def _reference(profile, params, x, refractory_steps, state):
    return run_reference(profile, check_params(profile, params, x), x, refractory_steps, state)


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("profile_name", PROFILES)
def test_no_time_steps_returns_empty_outputs_and_the_state(provider, profile_name):
    profile = make_profile(profile_name)
    _provider_or_skip(provider, profile)
    params = _params(profile)
    x = torch.zeros(0, 2, 3, dtype=torch.float64, requires_grad=True)
    result = block_neuron(x, profile, params, 3, backend=provider)
    assert result.spikes.shape == result.membrane.shape == (0, 2, 3)
    expected = _initial_state(profile, params, (2, 3), None)
    assert set(result.state) == set(expected)
    for name, value in result.state.items():
        assert torch.equal(value, expected[name].expand(2, 3)), name
    result.spikes.sum().backward()  # an empty sum still has a graph back to x
    assert x.grad.shape == x.shape
    given = _initial_state(profile, params, (2, 3), torch.tensor([[0, 1, 2], [3, 0, 1]]))
    given["v"] = torch.full((2, 3), 0.25, dtype=torch.float64)
    kept = block_neuron(x.detach(), profile, params, 3, state=given, backend=provider).state
    for name in given:
        assert torch.equal(kept[name], given[name])


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("profile_name", PROFILES)
def test_refractory_period_beyond_the_sequence_equals_the_reference(provider, profile_name):
    profile = make_profile(profile_name)
    _provider_or_skip(provider, profile)
    params = _params(profile)
    T = 12 if provider == "triton" else 40  # Triton's interpreter is slow per step
    x = torch.rand(T, 4, 3, generator=torch.Generator().manual_seed(3), dtype=torch.float64) * 1.5
    x[0, 0] = 5.0  # a spike on the very first step
    steps = [T - 1, T, T + 1, 2**24] + ([] if provider == "triton" else [2**24 + 1, 2**31 + 5, 2**53 + 1])
    steps += [MAX_REFRACTORY_STEPS]
    for R in steps:
        # initial countdowns: none, a few steps, just below/at/over T, and R itself
        countdown = torch.tensor([[0, 0, 3], [T - 1, T, T + 1], [R, R // 2, 1], [0, 2, T + 7]]).clamp(max=R)
        for state in (None, _initial_state(profile, params, (4, 3), countdown)):
            ref = _reference(profile, params, x, R, state)
            got = block_neuron(x, profile, params, R, state=state, backend=provider)
            assert torch.equal(got.spikes, ref[0]), (R, state is None)
            assert torch.equal(got.membrane, ref[1]), (R, state is None)
            assert set(got.state) == set(ref[2])
            for name in ref[2]:
                assert torch.equal(got.state[name], ref[2][name]), (R, name)


def test_refractory_period_beyond_int64_is_refused():
    x = torch.ones(4, 2)
    for R in (2**63, 2**64 + 3, 10**30):
        with pytest.raises(ValueError, match="does not fit the int64 refractory countdown"):
            block_neuron(x, "paper_lif", {"beta": 0.9}, R)
    assert block_neuron(x, "paper_lif", {"beta": 0.9}, MAX_REFRACTORY_STEPS).state["refractory"].dtype == torch.long


# ---------------------------------------------------------------------------------------------
# NaN / Inf in states and PSU weights
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_initial_state_is_refused(bad):
    x = torch.ones(4, 2)
    state = {"v": torch.tensor([0.0, bad])}
    with pytest.raises(ValueError, match=r"state 'v' contains NaN or Inf"):
        block_neuron(x, "paper_lif", {"beta": 0.9}, state=state)
    with pytest.raises(ValueError, match=r"state 'a' contains NaN or Inf"):
        block_neuron(x, "paper", {"beta": 0.9}, state={"v": torch.zeros(2), "a": torch.tensor([bad, 0.0])})
    # opting out runs it (what a NaN state then does is the user's business, as for NaN input)
    assert block_neuron(x, "paper_lif", {"beta": 0.9}, state=state, check_finite=False).spikes.shape == x.shape


@pytest.mark.parametrize("unit", ["ipsu", "rpsu", "ppsu"])
@pytest.mark.parametrize("which", ["weight", "bias"])
def test_non_finite_psu_weights_are_refused(unit, which):
    from snn_blockbackend.psu import functional as psu_f

    T = 5
    x = torch.rand(T, 3)
    weight, bias = torch.rand(T, T), torch.rand(T)
    (weight if which == "weight" else bias)[-1] = float("nan")
    with pytest.raises(ValueError, match=rf"{unit.upper()} {which} contains NaN or Inf"):
        psu_f.parallel_unit(unit, x, weight, bias)
    with pytest.raises(ValueError, match=rf"{unit.upper()} {which} contains NaN or Inf"):
        psu_f.unit_step(unit, x[0], weight, bias)
    assert psu_f.parallel_unit(unit, x, weight, bias, check_finite=False).spikes.shape == x.shape


def test_non_finite_psu_state_and_no_steps_are_refused():
    from snn_blockbackend.psu import functional as psu_f

    x = torch.rand(4, 3)
    state = psu_f.PSUState(torch.tensor([0.0, float("nan"), 0.0]), torch.zeros(3))
    with pytest.raises(ValueError, match=r"state 'h' contains NaN or Inf"):
        psu_f.psu(x, state=state)
    with pytest.raises(ValueError, match=r"state 'h' contains NaN or Inf"):
        psu_f.psu_step(x[0], state)
    with pytest.raises(ValueError, match=r"no time steps \(T = 0"):
        psu_f.psu(torch.zeros(0, 3))
