"""The compiled kernels for SpikingJelly LIF and Norse LIFBox (``providers.numba_neurons``) against the
sequential reference: spikes, membranes and final state bitwise, BPTT gradients (input, every parameter,
the initial membrane) to float tolerance, over every profile option, random scalar / per-neuron parameters,
refractory periods 0..50, T not divisible by R+1, float32 and float64, with and without an initial state."""

from __future__ import annotations

import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_blockbackend import block_neuron, make_profile, plugins
from snn_blockbackend import surrogate as sg
from snn_blockbackend.functional import select_provider

pytest.importorskip("numba", reason="the numba provider needs numba")
pytestmark = pytest.mark.skipif("numba" not in plugins.providers(), reason="the numba provider is not registered")

CPU = torch.device("cpu")


def _uniform(gen, low, high, shape, dtype):
    return (low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)).to(dtype)


@st.composite
def spikingjelly_cases(draw):
    parametric = draw(st.booleans())
    options = {
        "decay_input": draw(st.booleans()),
        "v_reset": draw(st.one_of(st.none(), st.just(0.0), st.floats(-0.5, 0.5, width=32))),
        "detach_reset": draw(st.booleans()),
        "parametric": parametric,
        "version": draw(st.sampled_from(["2", "0.0.0.0.14"])),
        "surrogate": draw(
            st.sampled_from([sg.sigmoid(4.0), sg.sigmoid(2.5), sg.atan(2.0), sg.superspike(1.0)])
        ),
    }
    ranges = {"v_threshold": (0.5, 1.5)}
    ranges.update({"decay": (0.1, 0.9)} if parametric else {"tau": (1.2, 4.0)})
    return make_profile("spikingjelly_lif", **options), ranges, 1.0, 0.8, 0.5


@st.composite
def norse_cases(draw):
    version = draw(st.sampled_from(["1.0", "1.1"]))
    options = {
        "reset_method": draw(st.sampled_from(["value", "subtract"])),
        "version": version,
        "surrogate": draw(st.sampled_from([None, sg.superspike(100.0), sg.atan(2.0), sg.sigmoid(4.0)])),
    }
    ranges = {
        "tau_mem_inv": (50.0, 200.0),
        "v_leak": (-0.2, 0.2),
        "v_th": (0.5, 1.5),
        "v_reset": (-0.2, 0.2),
        "dt": (0.0005, 0.002),
    }
    return make_profile("norse_lif_box", **options), ranges, 300.0, 200.0, 0.5


@st.composite
def problems(draw, cases):
    profile, ranges, scale, offset, state_scale = draw(cases)
    R = draw(st.integers(0, 50))
    L = R + 1
    T = draw(st.integers(0, 3)) * L + draw(st.integers(1, max(L - 1, 1)))  # T not divisible by L (if L > 1)
    neuron_shape = (draw(st.integers(1, 3)), *draw(st.lists(st.integers(1, 6), min_size=1, max_size=2)))
    dtype = draw(st.sampled_from([torch.float32, torch.float64]))
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    x = (torch.randn((T, *neuron_shape), generator=gen, dtype=torch.float64) * scale + offset).to(dtype)
    params = {}
    for name, (low, high) in ranges.items():
        per_neuron = draw(st.booleans())
        params[name] = _uniform(gen, low, high, neuron_shape[1:] if per_neuron else (), dtype)
    state = None
    if draw(st.booleans()):
        state = {
            "v": (torch.randn(neuron_shape, generator=gen, dtype=torch.float64) * state_scale).to(dtype),
            "refractory": torch.randint(0, R + 1, neuron_shape, generator=gen),
        }
    # which outputs the loss reads (at least one): spikes, membrane, final membrane
    terms = draw(st.sampled_from([(1, 1, 1), (1, 1, 0), (1, 0, 0), (0, 1, 0), (0, 0, 1), (1, 0, 1)]))
    return profile, params, R, x, state, terms


def _run(profile, params, R, x, state, terms, backend):
    x = x.clone().requires_grad_()
    params = {k: v.clone().requires_grad_() for k, v in params.items()}
    leaves = {"x": x, **params}
    if state is not None:
        state = {k: v.clone() for k, v in state.items()}
        for name in ("v", "a", "i", "b"):  # membrane, the paper ALIF's adaptation, Norse's current and threshold
            if name in state:
                leaves[f"{name}0"] = state[name].requires_grad_()
    result = block_neuron(x, profile, params, R, backend=backend, state=state)
    gen = torch.Generator().manual_seed(7)
    w_spikes, w_membrane = (torch.randn(x.shape, generator=gen, dtype=torch.float64).to(x.dtype) for _ in range(2))
    use_spikes, use_membrane, use_final = terms
    loss = (
        use_spikes * (result.spikes * w_spikes).sum()
        + use_membrane * (result.membrane * w_membrane).sum()
        + use_final * (result.state["v"] * w_membrane[0]).sum()
    )
    if "a" in result.state:
        loss = loss + use_final * (result.state["a"] * w_spikes[0]).sum()
    grads = torch.autograd.grad(loss, list(leaves.values()), allow_unused=True)
    return result, {name: g for name, g in zip(leaves, grads)}


def _float64_reference_grads(problem):
    """The reference's gradients computed in float64 from the same (upcast) problem, or None where float64
    arithmetic takes a different spike path (then they are not the same function's gradients)."""
    profile, params, R, x, state, terms = problem
    up = {k: v.double() for k, v in params.items()}
    state64 = None if state is None else {k: v.double() if v.is_floating_point() else v for k, v in state.items()}
    ref64, grads64 = _run(profile, up, R, x.double(), state64, terms, "reference")
    ref32 = block_neuron(x, profile, params, R, backend="reference", state=state)
    if not torch.equal(ref64.spikes, ref32.spikes.double()):
        return None
    return grads64


def _check(problem):
    profile, params, R, x, state, terms = problem
    ref, ref_grads = _run(profile, params, R, x, state, terms, "reference")
    got, got_grads = _run(profile, params, R, x, state, terms, "numba")
    assert torch.equal(got.spikes, ref.spikes)
    assert torch.equal(got.membrane, ref.membrane)
    assert got.state.keys() == ref.state.keys()
    for key in ref.state:
        assert torch.equal(got.state[key], ref.state[key]), key
    rtol = 1e-5 if x.dtype == torch.float32 else 1e-9
    # The kernel accumulates in float64, autograd in the input dtype. A parameter's gradient sums T*N
    # per-step terms and can be a small difference of large ones (Norse's dt: terms ~ g*tau_mem_inv*x;
    # the subtract reset, whose dS term autograd forms as (v' - v_th)*a - v'*a), so in float32 the
    # reference itself carries rounding of a few ulp of those terms (and so does the kernel, whose per-step
    # terms come from float32 membranes and surrogates). The tolerance is therefore rtol of the problem's
    # largest gradient G (float32; float64: of the per-step gradients) plus, in float32, a few times that
    # rounding as measured on the reference: its distance from the same gradients computed in float64. The input
    # and initial-membrane gradients (one term per element) are held to their own scale.
    all_scale = max(float(g.abs().max()) for g in ref_grads.values() if g is not None and g.numel())
    step_scale = max(float(ref_grads[k].abs().max()) for k in ("x", "v0", "a0", "i0", "b0") if ref_grads.get(k) is not None)
    grads64 = _float64_reference_grads(problem) if x.dtype == torch.float32 else None
    for name, g_ref in ref_grads.items():
        g_got = got_grads[name]
        if g_ref is None:  # the loss does not reach this leaf in the reference
            assert g_got is None or not g_got.any(), name
            continue
        assert g_got is not None, name
        own = float(g_ref.abs().max())
        if name in ("x", "v0", "a0", "i0", "b0"):
            scale = own
        else:
            scale = max(own, all_scale if x.dtype == torch.float32 else step_scale)
        allowed = rtol * max(scale, 1e-12) + rtol * g_ref.abs()
        if grads64 is not None and name not in ("x", "v0", "a0", "i0", "b0"):
            allowed = allowed + 4 * (grads64[name] - g_ref.double()).abs().to(g_ref.dtype)
        error = (g_got - g_ref).abs()
        assert bool((error <= allowed).all()), (
            f"{name}: gradient error {float(error.max()):.3g} exceeds the allowed "
            f"{float(allowed.flatten()[int(error.argmax())]):.3g} (reference {g_ref.flatten()[:4].tolist()}, "
            f"got {g_got.flatten()[:4].tolist()})"
        )


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(spikingjelly_cases()))
def test_spikingjelly_lif_kernel_equals_reference(problem):
    _check(problem)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(norse_cases()))
def test_norse_lif_box_kernel_equals_reference(problem):
    _check(problem)


@pytest.mark.slow
@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(problem=problems(st.one_of(spikingjelly_cases(), norse_cases())))
def test_kernels_equal_reference_deep(problem):
    _check(problem)


@pytest.mark.parametrize("name", ["spikingjelly_lif", "norse_lif_box", "paper", "paper_lif", "snntorch_leaky"])
def test_auto_picks_the_kernels(name):
    assert select_provider("auto", make_profile(name), CPU, "exact").name == "numba"


@pytest.mark.parametrize("name", ["spikingjelly_lif", "norse_lif_box"])
def test_other_surrogates_fall_back_to_torch(name):
    """A plain callable, or a Surrogate the kernels do not know (e.g. a wrapped SpikingJelly surrogate),
    is declined with a reason; "auto" then runs the torch provider, and its result is the reference's."""
    wrapped = sg.Surrogate("custom", lambda m: torch.ones_like(m), lambda g, m: g * 0.5)
    for surrogate in (wrapped, lambda m: (m >= 0).to(m.dtype)):
        profile = make_profile(name, surrogate=surrogate)
        reason = plugins.providers()["numba"].supports(profile, CPU, "exact")
        assert reason is not None and "surrogate" in reason
        assert select_provider("auto", profile, CPU, "exact").name == "torch"
    profile = make_profile(name, surrogate=wrapped)
    x = torch.randn(20, 2, 5, generator=torch.Generator().manual_seed(0), dtype=torch.float64) * 300 + 200
    x = x if name == "norse_lif_box" else x / 300
    assert torch.equal(block_neuron(x, profile, {}, 2).spikes, block_neuron(x, profile, {}, 2, backend="reference").spikes)


def _spikingjelly_neuron():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        neuron = pytest.importorskip("spikingjelly.activation_based.neuron", reason="SpikingJelly is not installed")
    return neuron


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_spikingjelly_lifnode_default_matches_kernel(dtype):
    """The native LIFNode (defaults: decay_input, v_reset=0, detach_reset=False) against the kernel directly."""
    neuron = _spikingjelly_neuron()
    gen = torch.Generator().manual_seed(1)
    x = (torch.randn(40, 3, 17, generator=gen, dtype=torch.float64) * 0.8 + 0.9).to(dtype).requires_grad_()
    w = torch.randn(x.shape, generator=gen, dtype=torch.float64).to(dtype)
    node = neuron.LIFNode(step_mode="m", store_v_seq=True).to(dtype)
    native_spikes = node(x)
    native_membrane = torch.stack(node.v_seq) if isinstance(node.v_seq, list) else node.v_seq
    (native_grad,) = torch.autograd.grad((native_spikes * w).sum(), x)
    ours = block_neuron(x, make_profile("spikingjelly_lif"), {"tau": 2.0}, backend="numba")
    (our_grad,) = torch.autograd.grad((ours.spikes * w).sum(), x)
    assert bool(native_spikes.any())
    assert torch.equal(ours.spikes, native_spikes)
    assert torch.equal(ours.membrane, native_membrane)
    scale = float(native_grad.abs().max())
    rtol = 1e-5 if dtype == torch.float32 else 1e-9
    torch.testing.assert_close(our_grad, native_grad, rtol=rtol, atol=rtol * scale)


def test_norse_lif_box_cell_matches_kernel():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        norse_torch = pytest.importorskip("norse.torch", reason="Norse is not installed")
    gen = torch.Generator().manual_seed(2)
    x = (torch.randn(40, 3, 17, generator=gen) * 300 + 100).requires_grad_()
    w = torch.randn(x.shape, generator=gen)
    cell, state, spikes, membranes = norse_torch.LIFBoxCell(), None, [], []
    for xt in x.unbind(0):
        z, state = cell(xt, state)
        spikes.append(z)
        membranes.append(state.v)
    native_spikes, native_membrane = torch.stack(spikes), torch.stack(membranes)
    (native_grad,) = torch.autograd.grad((native_spikes * w).sum() + (native_membrane * w).sum(), x)
    ours = block_neuron(x, make_profile("norse_lif_box"), {}, backend="numba")
    (our_grad,) = torch.autograd.grad((ours.spikes * w).sum() + (ours.membrane * w).sum(), x)
    assert bool(native_spikes.any())
    assert torch.equal(ours.spikes, native_spikes)
    assert torch.equal(ours.membrane, native_membrane)
    torch.testing.assert_close(our_grad, native_grad, rtol=1e-5, atol=1e-5 * float(native_grad.abs().max()))


@pytest.mark.parametrize("name", ["spikingjelly_lif", "norse_lif_box", "snntorch_leaky", "paper_lif", "paper", "norse_lif", "norse_lsnn"])
def test_several_chunks_with_a_short_last_one(name):
    """Enough neurons for several parallel chunks (the last one shorter), per-neuron parameters and an
    initial state mid-refractory: still the reference's spikes, membranes, state and gradients."""
    gen = torch.Generator().manual_seed(5)
    neuron_shape = (3, 1201)
    if name == "spikingjelly_lif":
        profile, scale, offset = make_profile("spikingjelly_lif", v_reset=-0.1), 1.0, 0.8
        params = {"tau": _uniform(gen, 1.2, 4.0, (1201,), torch.float32), "v_threshold": torch.tensor(1.0)}
    elif name == "norse_lif_box":
        profile, scale, offset = make_profile("norse_lif_box", reset_method="subtract"), 300.0, 200.0
        params = {"tau_mem_inv": _uniform(gen, 50.0, 200.0, (1201,), torch.float32)}
    elif name in ("norse_lif", "norse_lsnn"):  # numba_current_lif
        profile, scale, offset = make_profile(name), 300.0, 200.0
        params = {"tau_mem_inv": _uniform(gen, 50.0, 200.0, (1201,), torch.float32), "tau_syn_inv": torch.tensor(150.0)}
        if name == "norse_lsnn":
            params["tau_adapt_inv"] = _uniform(gen, 1.0, 20.0, (1201,), torch.float32)
    else:  # the LIF fast path's kernels (numba_lif) and the paper's ALIF (numba_alif)
        profile, scale, offset = make_profile(name), 1.0, 0.3
        params = {"beta": _uniform(gen, 0.5, 0.99, (1201,), torch.float32), "threshold": torch.tensor(1.0)}
        if name == "paper":
            params["adaptation_decay"] = _uniform(gen, 0.5, 0.99, (1201,), torch.float32)
            params["adaptation_strength"] = torch.tensor(0.3)
    x = (torch.randn((23, *neuron_shape), generator=gen, dtype=torch.float64) * scale + offset).float()
    state = {"v": torch.randn(neuron_shape, generator=gen) * 0.5, "refractory": torch.randint(0, 4, neuron_shape, generator=gen)}
    if name == "paper":
        state["a"] = torch.rand(neuron_shape, generator=gen)
    if name in ("norse_lif", "norse_lsnn"):
        state["i"] = torch.randn(neuron_shape, generator=gen) * 100
    if name == "norse_lsnn":
        state["b"] = 1 + torch.rand(neuron_shape, generator=gen)
    _check((profile, params, 3, x, state, (1, 1, 1)))
