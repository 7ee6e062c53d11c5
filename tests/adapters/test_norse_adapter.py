"""The Norse adapter against the installed Norse (1.0.x or 1.1.x).

Every equivalence test builds the native Norse neuron and ours from the *same* Norse parameter tuple and
checks, with ``refractory_steps=0``:

* spikes: ``torch.equal``; every state variable after every step (cells) or the final state (modules):
  ``torch.equal`` (bitwise; the brief's bar is 1e-6, the adapter meets it exactly);
* gradients of a random linear loss over spikes and states with respect to the input and every parameter
  (native: the tensors in Norse's tuple; ours: the module's registered parameters):
  ``assert_close(rtol=1e-5, atol=1e-7 + 2e-6 * G)`` with G the largest native gradient magnitude, for the
  reason given in tests/test_native_equivalence.py (autograd sums a few terms in another order; with
  non-detached resets the BPTT gradients grow large and an element that is a small difference of large
  terms differs by a few ulp of those terms).

With ``refractory_steps > 0`` the cells (stepped, with the countdown in the returned state) and the modules
are compared with the engine's sequential reference (``backend="reference"``) for the same profile.
Version-specific behaviour (LIF input timing, SuperSpike alpha, LIFBox reset_method, NIR, the norse_op
import workaround) is tested for whichever Norse version is installed.
"""

from __future__ import annotations

import copy
import importlib
import importlib.metadata
import os
import subprocess
import sys
import textwrap
import warnings

import pytest
import torch

from snn_blockbackend.functional import use_backend
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn

try:
    importlib.metadata.version("norse")
except importlib.metadata.PackageNotFoundError:
    pytest.skip("Norse is not installed; the Norse adapter is not tested", allow_module_level=True)

from snn_blockbackend import block_neuron  # noqa: E402
from snn_blockbackend.adapters import norse as nb  # noqa: E402  (imports Norse, with the norse_op workaround)

with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    import norse.torch as nt  # noqa: E402
    from norse.torch.functional import threshold as norse_threshold  # noqa: E402

V11 = nb.PROFILE_VERSION == "1.1"
DTYPES = (torch.float32, torch.float64)
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("NORSE_ADAPTER_EXAMPLES", "12")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)
KINDS = ("box_value", "box_subtract", "lif", "lsnn", "refrac") if V11 else ("box_value", "lif", "lsnn", "refrac")
# (mean, std) of the input per unit threshold: roughly 5-30 % spiking neuron-steps
INPUT_SCALE = {
    "box_value": (2.0, 2.5), "box_subtract": (2.0, 2.5), "lif": (0.6, 0.6), "lsnn": (2.0, 1.5), "refrac": (1.0, 0.8),
}
STATE_FIELDS = {
    "box_value": ("v",),
    "box_subtract": ("v",),
    "lif": ("v", "i"),
    "lsnn": ("v", "i", "b"),
    "refrac": ("v", "i", "rho"),
}


# =============================================================================================
# helpers
# =============================================================================================
def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _leaf(value, dtype, neurons=None, seed=0, spread=0.0):
    if neurons is None or spread == 0.0:
        return torch.tensor(value, dtype=dtype, requires_grad=True)
    noise = torch.rand(neurons, generator=_generator(seed), dtype=torch.float64) * 2 - 1
    return (value * (1 + spread * noise)).to(dtype).requires_grad_()


def _norse_params(kind, dtype, neurons, seed, tau_mem_inv=100.0, tau_syn_inv=200.0, v_leak=0.0, v_reset=0.0,
                  v_th=1.0, spread=0.0, tau_adapt_inv=1.0 / 20, beta=1.8, rho_reset=3.0, method="super", alpha=100.0):
    """A Norse parameter tuple whose tensors are leaves requiring grad (Norse's way of learning them)."""
    tm = _leaf(tau_mem_inv, dtype, neurons, seed, spread)
    ts = _leaf(tau_syn_inv, dtype, neurons, seed + 1, spread)
    vl, vth, vr = _leaf(v_leak, dtype), _leaf(v_th, dtype), _leaf(v_reset, dtype)
    if kind.startswith("box"):
        extra = {}
        if V11:
            from norse.torch.functional.reset import reset_subtract, reset_value

            extra["reset_method"] = reset_subtract if kind == "box_subtract" else reset_value
        return nt.LIFBoxParameters(tau_mem_inv=tm, v_leak=vl, v_th=vth, v_reset=vr, method=method, alpha=alpha, **extra)
    if kind == "lif":
        return nt.LIFParameters(
            tau_syn_inv=ts, tau_mem_inv=tm, v_leak=vl, v_th=vth, v_reset=vr, method=method, alpha=alpha
        )
    if kind == "lsnn":
        ta = _leaf(tau_adapt_inv, dtype, neurons, seed + 2, spread)
        return nt.LSNNParameters(
            tau_syn_inv=ts, tau_mem_inv=tm, tau_adapt_inv=ta, v_leak=vl, v_th=vth, v_reset=vr, beta=_leaf(beta, dtype),
            method=method, alpha=alpha,
        )
    # LIFRefracCell hands p.lif to the LIF step unchanged; Norse 1.0's TorchScript step needs a tensor alpha
    lif = nt.LIFParameters(
        tau_syn_inv=ts, tau_mem_inv=tm, v_leak=vl, v_th=vth, v_reset=vr, method=method, alpha=torch.as_tensor(alpha)
    )
    return nt.LIFRefracParameters(lif=lif, rho_reset=_leaf(rho_reset, dtype))


def _native_leaves(kind, p):
    """Norse's parameter tensors by the name our module registers them under."""
    if kind == "refrac":
        return {**{n: getattr(p.lif, n) for n in nb.BlockLIFRefracCell._lif_fields}, "rho_reset": p.rho_reset}
    fields = {"lif": nb.BlockLIFCell, "lsnn": nb.BlockLSNNCell}.get(kind, nb.BlockLIFBoxCell)._tensor_fields
    if kind == "box_subtract":
        fields = tuple(f for f in fields if f != "v_reset")  # reset_subtract ignores v_reset
    return {name: getattr(p, name) for name in fields}


def _cells(kind, p, **ours_kwargs):
    native = {
        "lif": nt.LIFCell, "lsnn": nt.LSNNCell, "refrac": nt.LIFRefracCell,
    }.get(kind, nt.LIFBoxCell)(p)
    ours = {
        "lif": nb.BlockLIFCell, "lsnn": nb.BlockLSNNCell, "refrac": nb.BlockLIFRefracCell,
    }.get(kind, nb.BlockLIFBoxCell)(p, **ours_kwargs)
    return native, ours


def _fields(kind, state):
    if kind == "refrac":
        return {"v": state.lif.v, "i": state.lif.i, "rho": state.rho}
    return {name: getattr(state, name) for name in STATE_FIELDS[kind]}


def _run_cell(kind, cell, x):
    """Step a cell through ``x``: stacked spikes and the stacked state fields after every step."""
    spikes, states, state = [], [], None
    for xt in x.unbind(0):
        z, state = cell(xt, state)
        spikes.append(z)
        states.append({k: v.expand_as(xt) for k, v in _fields(kind, state).items()})
    return torch.stack(spikes), {k: torch.stack([s[k] for s in states]) for k in states[0]}


def _input(shape, dtype, seed, kind, v_th=1.0, kick=0.0):
    mean, std = INPUT_SCALE[kind]
    x = torch.randn(shape, generator=_generator(seed), dtype=torch.float64) * std * v_th + mean * v_th
    x.view(shape[0], -1)[0, 0] += kick * v_th
    return x.to(dtype).requires_grad_()


def _loss(spikes, states, seed):
    g = _generator(10_000 + seed)
    loss = (spikes * torch.randn(spikes.shape, generator=g, dtype=torch.float64).to(spikes.dtype)).sum()
    for name in sorted(states):
        value = states[name]
        loss = loss + (value * torch.randn(value.shape, generator=g, dtype=torch.float64).to(value.dtype)).sum()
    return loss


def _grads(loss, leaves):
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, grads)]


def _assert_same(native, ours, native_leaves, our_leaves, seed, require_spikes=True):
    """native/ours: (spikes, {state name: tensor}); leaves: lists in the same order. States are compared
    bitwise (dtype included)."""
    (native_spikes, native_states), (our_spikes, our_states) = native, ours
    if require_spikes:
        assert bool((native_spikes != 0).any()), "the native neuron never spiked: the input scale is wrong"
    assert our_spikes.dtype == native_spikes.dtype
    assert torch.equal(our_spikes, native_spikes), "spikes differ"
    assert set(our_states) == set(native_states)
    for name in native_states:
        assert our_states[name].dtype == native_states[name].dtype, name
        if not torch.equal(our_states[name], native_states[name]):
            diff = (our_states[name] - native_states[name]).abs().max().item()
            raise AssertionError(f"state {name!r} differs: max |diff| = {diff:.3g}")
    if not native_leaves:
        return
    native_grads = _grads(_loss(native_spikes, native_states, seed), native_leaves)
    our_grads = _grads(_loss(our_spikes, our_states, seed), our_leaves)
    scale = max(g.abs().max().item() for g in native_grads)
    for leaf, ours_g, native_g in zip(native_leaves, our_grads, native_grads):
        torch.testing.assert_close(
            ours_g, native_g, rtol=1e-5, atol=1e-7 + 2e-6 * scale,
            msg=lambda m, s=tuple(leaf.shape): f"gradient of a {s} leaf: {m}",
        )


def _check_cells(kind, dtype, seed, shape, kick=0.0, **param_kwargs):
    p = _norse_params(kind, dtype, shape[-1:], seed, **param_kwargs)
    native_cell, our_cell = _cells(kind, p)
    x = _input(shape, dtype, seed, kind, param_kwargs.get("v_th", 1.0), kick)
    native = _run_cell(kind, native_cell, x)
    ours = _run_cell(kind, our_cell, x)
    leaves = _native_leaves(kind, p)
    _assert_same(native, ours, [x, *leaves.values()], [x, *(getattr(our_cell, n) for n in leaves)], seed)


def _native_sequence(kind, p, x):
    """Norse's time module where it has one (LIF, LSNN); LIFBox has none: loop its cell over x.unbind(0)."""
    if kind == "lif":
        spikes, state = nt.LIF(p)(x)
    elif kind == "lsnn":
        spikes, state = nt.LSNN(p)(x)
    else:
        cell = nt.LIFBoxCell(p)
        state, spikes = None, []
        for xt in x.unbind(0):
            z, state = cell(xt, state)
            spikes.append(z)
        spikes = torch.stack(spikes)
    return spikes, {k: v.expand_as(x[0]) for k, v in _fields(kind, state).items()}


def _our_module(kind, p, **kwargs):
    return {"lif": nb.BlockLIF, "lsnn": nb.BlockLSNN}.get(kind, nb.BlockLIFBox)(p, **kwargs)


def _check_sequence(kind, dtype, seed, shape, kick=0.0, **param_kwargs):
    p = _norse_params(kind, dtype, shape[-1:], seed, **param_kwargs)
    x = _input(shape, dtype, seed, kind, param_kwargs.get("v_th", 1.0), kick)
    native = _native_sequence(kind, p, x)
    module = _our_module(kind, p)
    spikes, state = module(x)
    ours = (spikes, _fields(kind, state))
    leaves = _native_leaves(kind, p)
    _assert_same(native, ours, [x, *leaves.values()], [x, *(getattr(module, n) for n in leaves)], seed)


# =============================================================================================
# refractory_steps = 0: equivalence with the native neurons
# =============================================================================================
CASES = (  # tau_mem_inv, tau_syn_inv, v_leak, v_reset, v_th, spread
    (100.0, 200.0, 0.0, 0.0, 1.0, 0.0),  # Norse defaults
    (100.0, 200.0, 0.1, -0.3, 1.0, 0.0),  # v_leak / v_reset != 0 expose the operation order
    (150.0, 300.0, -0.05, 0.2, 0.8, 0.3),  # per-neuron time constants
)


def _case_kwargs(case):
    tau_mem_inv, tau_syn_inv, v_leak, v_reset, v_th, spread = case
    return dict(
        tau_mem_inv=tau_mem_inv, tau_syn_inv=tau_syn_inv, v_leak=v_leak, v_reset=v_reset, v_th=v_th, spread=spread
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", KINDS)
def test_cells_match_native(kind, dtype):
    for seed, case in enumerate(CASES):
        _check_cells(kind, dtype, seed, (29, 3, 11), **_case_kwargs(case))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "refrac"])
def test_sequence_modules_match_native(kind, dtype):
    for seed, case in enumerate(CASES):
        _check_sequence(kind, dtype, seed, (29, 3, 11), **_case_kwargs(case))


@HYPOTHESIS
@given(
    t=st.integers(2, 30),  # LSNN's (and Norse 1.0 LIF's) input reaches v one step late
    neurons=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    kind=st.sampled_from(KINDS),
    sequence=st.booleans(),
    tau_mem_inv=st.floats(50.0, 400.0),
    tau_syn_inv=st.floats(100.0, 600.0),
    v_leak=st.floats(-0.2, 0.2),
    v_reset=st.floats(-0.5, 0.5),
    v_th=st.floats(0.5, 2.0),
    spread=st.sampled_from([0.0, 0.3]),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_random_configurations_match_native(
    t, neurons, kind, sequence, tau_mem_inv, tau_syn_inv, v_leak, v_reset, v_th, spread, dtype, seed
):
    kwargs = _case_kwargs((tau_mem_inv, tau_syn_inv, v_leak, v_reset, v_th, spread))
    if sequence and kind != "refrac":
        _check_sequence(kind, dtype, seed, (t, *neurons), kick=60.0, **kwargs)
    else:
        _check_cells(kind, dtype, seed, (t, *neurons), kick=60.0, **kwargs)


@pytest.mark.parametrize("method", ["heaviside", "triangle", "tanh", "circ", "heavi_erfc", "super"])
@pytest.mark.parametrize("kind", ["box_value", "lif", "lsnn"])
def test_surrogate_methods_match_native(kind, method):
    """Norse's threshold methods: 'super' and 'heaviside' map to engine surrogates, the others call Norse's
    own threshold function; gradients must match the native ones in every case."""
    _check_cells(kind, torch.float32, 5, (23, 2, 7), method=method, alpha=0.7 if method != "super" else 100.0)


HALF_PARAMS = {  # Norse's float32 parameters with half-precision input, as the compatibility matrix uses them
    "leak_reset": {"v_leak": 0.1, "v_reset": -0.3},
    "per_neuron": {"tau_mem_inv": 150.0, "tau_syn_inv": 300.0, "v_leak": -0.05, "v_reset": 0.2, "v_th": 0.8,
                   "spread": 0.3},
}


@pytest.mark.parametrize("dtype", (torch.float16, torch.bfloat16))
@pytest.mark.parametrize("params", sorted(HALF_PARAMS))
@pytest.mark.parametrize("kind", KINDS)
# the adapters' dtype handling on the torch provider in the default run; on "auto" (the numba kernels, one
# compiled module per kind, parameters, dtype and the dtypes each step meets: minutes of compiling) in make test-slow
@pytest.mark.parametrize("backend", ("torch", pytest.param("auto", marks=pytest.mark.slow)))
def test_half_precision_input_with_float32_parameters(kind, params, dtype, backend):
    """Half-precision input, Norse's float32 parameters (Module.to leaves its parameter tuple alone): Norse's
    initial states (full float32, a 0-dim float32 clone of v_leak, or the input's dtype) and per-neuron float32
    parameters promote its arithmetic step by step, and its returned state carries the promoted dtype into the
    next step. Ours follows PyTorch's promotion alike: spikes and every state, values and dtypes, bit for bit,
    stepping a cell and running the time module."""
    with use_backend(backend):
        _half_precision_input_with_float32_parameters(kind, params, dtype)


def _half_precision_input_with_float32_parameters(kind, params, dtype):
    kwargs = HALF_PARAMS[params]
    p = _norse_params(kind, torch.float32, (11,), 5, **kwargs)
    x = _input((30, 2, 11), dtype, 5, kind, kwargs.get("v_th", 1.0)).detach()
    native_cell, our_cell = _cells(kind, p)
    native = _run_cell(kind, native_cell, x)
    _assert_same(native, _run_cell(kind, our_cell, x), [], [], 5)
    if kind != "refrac":
        spikes, state = _our_module(kind, p)(x)
        native = _native_sequence(kind, p, x)
        assert spikes.dtype == native[0].dtype and torch.equal(spikes, native[0])
        for name, value in _fields(kind, state).items():
            assert value.dtype == native[1][name].dtype and torch.equal(value.expand_as(x[0]), native[1][name]), name


NATIVE_OF_OURS = {  # our class -> (Norse class whose initial_state ours reproduces, whether it takes [T, ...])
    nb.BlockLIFBoxCell: (nt.LIFBoxCell, False), nb.BlockLIFBox: (nt.LIFBoxCell, False),  # BlockLIFBox loops the cell
    nb.BlockLIFCell: (nt.LIFCell, False), nb.BlockLIF: (nt.LIF, True), nb.BlockLSNNCell: (nt.LSNNCell, False),
    nb.BlockLSNN: (nt.LSNN, True), nb.BlockLIFRefracCell: (nt.LIFRefracCell, False),
}


@pytest.mark.parametrize("dtype", (torch.float32, torch.float64, torch.float16, torch.bfloat16))
@pytest.mark.parametrize("ours", list(NATIVE_OF_OURS), ids=lambda cls: cls.__name__)
def test_initial_state_is_norses_own(ours, dtype):
    """The initial state the adapters start from outside float32 (``_initial_fields``) is, field by field, the
    one the installed Norse class builds: dtype, shape and value (built without Norse's ``v.requires_grad =
    True``, which torch.compile cannot trace)."""
    native_cls, time_first = NATIVE_OF_OURS[ours]
    kind = {nt.LIFBoxCell: "box_value", nt.LSNNCell: "lsnn", nt.LSNN: "lsnn", nt.LIFRefracCell: "refrac"}.get(
        native_cls, "lif"
    )
    p = _norse_params(kind, torch.float32, (4,), 0, v_leak=0.1, v_th=0.7)
    x = torch.randn(3, 2, 4).to(dtype)
    native_state = _fields(kind, native_cls(p).initial_state(x if time_first else x[0]))
    state = ours(p)._norse_initial_state(x)
    assert set(state) == set(native_state)
    for name, value in state.items():
        expected = native_state[name]
        assert value.dtype == expected.dtype and value.shape == expected.shape, name
        assert torch.equal(value, expected.detach()) and not value.requires_grad, name


@pytest.mark.parametrize("dtype", (torch.float64, torch.bfloat16))
def test_compiles_fullgraph_outside_float32(dtype):
    """Starting from Norse's initial state outside float32 keeps the module traceable (fullgraph)."""
    p = _norse_params("lsnn", torch.float32, (3,), 1, v_leak=0.1)
    x = _input((6, 2, 3), dtype, 1, "lsnn")
    module = nb.BlockLSNN(p)
    torch._dynamo.reset()
    try:
        spikes, state = torch.compile(module, fullgraph=True, backend="aot_eager")(x)
    finally:
        torch._dynamo.reset()
    eager_spikes, eager_state = module(x)
    assert torch.equal(spikes, eager_spikes) and torch.equal(state.v, eager_state.v)


def test_a_wider_state_promotes_as_in_norse():
    """A float64 state with float32 input: Norse's step promotes to float64, and so does ours (bit for bit)."""
    p = _norse_params("lif", torch.float32, (3,), 0, v_leak=0.1)
    x = _input((4, 2, 3), torch.float32, 0, "lif").detach()
    state = nt.LIFFeedForwardState(v=torch.full((2, 3), 0.3, dtype=torch.float64), i=torch.zeros(2, 3))
    native_cell, our_cell = _cells("lif", p)
    (z_native, s_native), (z_ours, s_ours) = native_cell(x[0], state), our_cell(x[0], state)
    assert z_ours.dtype == z_native.dtype == torch.float64 and torch.equal(z_ours, z_native)
    assert s_ours.v.dtype == torch.float64 and torch.equal(s_ours.v, s_native.v) and torch.equal(s_ours.i, s_native.i)


@pytest.mark.parametrize("kind", ["lif", "lsnn", "box_value"])
def test_float32_parameters_on_float64_input(kind):
    """Norse's default parameters are float32; on float64 input Norse computes dt*rate as a float32 product.
    The adapter reproduces that bit for bit (parameters not converted with .double())."""
    p = {"lif": nt.LIFParameters(), "box_value": nt.LIFBoxParameters()}.get(kind) or nt.LSNNParameters(
        tau_adapt_inv=torch.as_tensor(1.0 / 20)
    )
    native_cell, our_cell = _cells(kind, p)
    assert our_cell.tau_mem_inv.dtype == torch.float32
    x = _input((31, 2, 9), torch.float64, 3, kind)
    native, ours = _run_cell(kind, native_cell, x), _run_cell(kind, our_cell, x)
    _assert_same(native, ours, [x], [x], 3)
    if kind != "box_value":
        module_native = _native_sequence(kind, p, x)
        spikes, state = _our_module(kind, p)(x)
        _assert_same(module_native, (spikes, _fields(kind, state)), [x], [x], 3)


@pytest.mark.parametrize("kind", KINDS)
def test_initial_state_dtype_conventions(kind):
    """Some Norse initial states are float32 whatever the input (Norse 1.0 LIFCell/LIFBoxCell, the LIF time
    module in both versions): on float64 input v starts at v_leak rounded to float32 and its first step
    evaluates ``v_leak - v`` in float32 (a 0-dim float64 v_leak does not promote a float32 tensor). Ours starts
    from Norse's own initial state and promotes alike. Sub-threshold input (no reset erases the start):
    bitwise-equal states."""
    p = _norse_params(kind, torch.float64, (4,), 0, v_leak=0.1, v_reset=-0.3)
    x = torch.full((5, 2, 4), 0.05, dtype=torch.float64)
    native_cell, our_cell = _cells(kind, p)
    native, ours = _run_cell(kind, native_cell, x), _run_cell(kind, our_cell, x)
    assert not bool(native[0].any())
    _assert_same(native, ours, [], [], 0, require_spikes=False)
    if kind != "refrac":
        native = _native_sequence(kind, p, x)
        spikes, state = _our_module(kind, p)(x)
        _assert_same(native, (spikes, _fields(kind, state)), [], [], 0, require_spikes=False)


@pytest.mark.parametrize("kind", ["lif", "lsnn"])
def test_record_states_matches_native(kind):
    p = _norse_params(kind, torch.float32, (6,), 2)
    x = _input((17, 2, 6), torch.float32, 2, kind)
    native_spikes, native_states = {"lif": nt.LIF, "lsnn": nt.LSNN}[kind](p, record_states=True)(x)
    spikes, states = _our_module(kind, p, record_states=True)(x)
    # (Norse 1.0's TorchScript LIF step returns its own copy of the NamedTuple class: compare by name)
    assert type(states).__name__ == type(native_states).__name__ and states._fields == native_states._fields
    native = (native_spikes, {k: v.expand_as(x) for k, v in _fields(kind, native_states).items()})
    _assert_same(native, (spikes, _fields(kind, states)), [x], [x], 2)


def test_continuing_a_sequence_with_the_returned_state():
    """Two calls with the state passed on equal one call on the concatenation, also when the first half
    came from the native module (our modules accept Norse's states)."""
    p = _norse_params("lif", torch.float64, (5,), 4)
    x = _input((24, 3, 5), torch.float64, 4, "lif")
    ours = nb.BlockLIF(p)
    whole, whole_state = ours(x)
    first, state = nt.LIF(p)(x[:10])
    second, final = ours(x[10:], state)
    assert torch.equal(torch.cat([first, second]), whole)
    assert torch.equal(final.v, whole_state.v) and torch.equal(final.i, whole_state.i)


def test_sequence_backward_has_no_per_step_select():
    """The whole-sequence modules read the input without x[t] indexing (Norse's SNN loop creates one
    SelectBackward per step, whose backward is quadratic in T)."""
    x = torch.randn(40, 2, 3, requires_grad=True)
    spikes, _ = nb.BlockLIF()(x)
    seen, stack, selects = set(), [spikes.grad_fn], 0
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        selects += type(node).__name__.startswith("SelectBackward")
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    assert selects == 0
    native_spikes, _ = nt.LIF()(x)  # the control: Norse's own module does index per step
    seen, stack, native_selects = set(), [native_spikes.grad_fn], 0
    while stack:
        node = stack.pop()
        if node is None or node in seen:
            continue
        seen.add(node)
        native_selects += type(node).__name__.startswith("SelectBackward")
        stack.extend(next_fn for next_fn, _ in node.next_functions)
    assert native_selects >= x.shape[0] - 1  # (Norse 1.0: the last input step reaches no spike)


# =============================================================================================
# version-specific behaviour (tested for the installed Norse)
# =============================================================================================
def test_profile_version_follows_the_installed_norse():
    installed = tuple(int(part) for part in nb.NORSE_VERSION.split(".")[:2])
    assert nb.PROFILE_VERSION == ("1.0" if installed < (1, 1) else "1.1")
    assert nb.BlockLIFCell().profile.version == nb.PROFILE_VERSION


def test_lif_input_timing_of_the_installed_version():
    """Norse 1.0's LIF adds the input to i after the voltage update (v responds one step late); 1.1 first."""
    x = torch.zeros(4, 1, 1)
    x[0] = 1.0  # below threshold: no reset
    native_v = _run_cell("lif", nt.LIFCell(), x)[1]["v"]
    our_v = _run_cell("lif", nb.BlockLIFCell(), x)[1]["v"]
    assert torch.equal(our_v, native_v)
    assert bool(native_v[1:].ne(0).all())
    assert bool(native_v[0].eq(0).all()) == (not V11)
    spikes, state = nb.BlockLIF()(x)
    assert torch.equal(state.v, native_v[-1])


def test_superspike_alpha_of_the_installed_version():
    """Norse 1.0's SuperSpike slope is alpha; Norse 1.1 ignores alpha. Ours follows the installed one."""
    grads = {}
    for alpha in (100.0, 2.0):
        x = torch.tensor([[1.3, 0.9, 1.02]], requires_grad=True)  # margins around the threshold
        p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(1000.0), alpha=alpha)  # dt*tau = 1: v' = x
        native_z, _ = nt.LIFBoxCell(p)(x[0])
        (native_g,) = torch.autograd.grad(native_z.sum(), x)
        our_z, _ = nb.BlockLIFBoxCell(p)(x[0])
        (our_g,) = torch.autograd.grad(our_z.sum(), x)
        assert torch.equal(our_z, native_z)
        torch.testing.assert_close(our_g, native_g, rtol=1e-6, atol=0)
        grads[alpha] = native_g
    assert (not torch.equal(grads[100.0], grads[2.0])) == (not V11)


def test_lif_box_reset_method_of_the_installed_version():
    """LIFBoxParameters.reset_method exists in Norse 1.1 only; ours maps it and rebuilds it in ``.p``."""
    if V11:
        from norse.torch.functional.reset import reset_subtract

        cell = nb.BlockLIFBoxCell(nt.LIFBoxParameters(reset_method=reset_subtract))
        assert cell.profile.reset_method == "subtract" and cell.p.reset_method is reset_subtract
        with pytest.raises(ValueError, match="custom reset function"):
            nb.BlockLIFBoxCell(nt.LIFBoxParameters(reset_method=lambda z, v, r, th: v))
    else:
        assert "reset_method" not in nt.LIFBoxParameters._fields
        cell = nb.BlockLIFBoxCell()
        assert cell.profile.reset_method == "value" and "reset_method" not in cell.p._fields


def test_nir_export_matches_native():
    """Norse 1.1's to_nir maps LIFCell -> CubaLIF and LIFBoxCell -> LIF by isinstance; ours subclass them."""
    if not hasattr(nt, "to_nir"):
        pytest.skip(f"Norse {nb.NORSE_VERSION} has no NIR export (norse.torch.to_nir appeared in 1.1)")
    pytest.importorskip("nir", reason="nir is not installed: NIR export cannot be compared")
    pytest.importorskip("nirtorch", reason="nirtorch is not installed: NIR export cannot be compared")
    lif_p = nt.LIFParameters(tau_mem_inv=torch.tensor(150.0), v_th=torch.tensor(0.8), v_leak=torch.tensor(0.1))
    box_p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(120.0), v_th=torch.tensor(0.9))
    torch.manual_seed(0)
    native = nt.SequentialState(nn.Linear(3, 4), nt.LIFCell(lif_p), nn.Linear(4, 2), nt.LIFBoxCell(box_p))
    ours = copy.deepcopy(native)
    ours[1], ours[3] = nb.BlockLIFCell(lif_p), nb.BlockLIFBoxCell(box_p)
    sample = torch.randn(5, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        native_graph, our_graph = nt.to_nir(native, sample), nt.to_nir(ours, sample)
    assert set(native_graph.nodes) == set(our_graph.nodes)
    assert sorted(native_graph.edges) == sorted(our_graph.edges)
    kinds = {type(node).__name__ for node in native_graph.nodes.values()}
    assert {"CubaLIF", "LIF"} <= kinds
    for name, node in native_graph.nodes.items():
        other = our_graph.nodes[name]
        assert type(other) is type(node)
        for key, value in vars(node).items():
            if isinstance(value, (torch.Tensor,)) or hasattr(value, "shape"):
                assert torch.equal(torch.as_tensor(getattr(other, key)), torch.as_tensor(value)), (name, key)


NORSE_OP_PROBE = textwrap.dedent(
    """
    import json, pathlib, sys, tempfile, warnings
    # a norse_op that exists but cannot be loaded, like a norse_op.so built against another torch
    broken = pathlib.Path(tempfile.mkdtemp())
    (broken / "norse_op.py").write_text(
        "raise ImportError('norse_op.so: undefined symbol: _ZN3c1017RegisterOperatorsD1Ev', name='norse_op')"
    )
    sys.path.insert(0, str(broken))
    import torch
    result = {}
    try:
        import norse.torch
        result["plain_import"] = "ok"
    except ImportError as error:
        result["plain_import"] = repr(error)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        from snn_blockbackend.adapters import norse as nb
    result["disabled"] = nb.NORSE_OP_DISABLED
    result["norse_op_module"] = repr(sys.modules.get("norse_op", "absent"))
    result["warned"] = any("norse_op" in str(w.message) for w in caught)
    z, state = nb.BlockLIFCell()(torch.full((2, 3), 20.0))
    result["runs"] = z.shape == (2, 3)
    print(json.dumps(result))
    """
)


def test_norse_op_workaround_only_when_needed():
    """A norse_op that fails to load breaks ``import norse`` in Norse 1.0 (which imports it), and the adapter
    still imports, with norse_op disabled and a warning. Norse 1.1 never imports norse_op: nothing changes."""
    import json

    proc = subprocess.run([sys.executable, "-c", NORSE_OP_PROBE], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["runs"]
    if V11:
        assert result["plain_import"] == "ok"
        assert result == {**result, "disabled": False, "warned": False, "norse_op_module": "'absent'"}
    else:
        assert "undefined symbol" in result["plain_import"]
        assert result["disabled"] and result["warned"] and result["norse_op_module"] == "None"
    # in this process Norse imported normally: the workaround is applied only when needed
    assert nb.NORSE_OP_DISABLED == (sys.modules.get("norse_op", "absent") is None)


# =============================================================================================
# adapter registry: clear errors
# =============================================================================================
def _import_adapter_with_version(monkeypatch, version):
    real_version = importlib.metadata.version

    def fake_version(dist):
        if dist == "norse":
            if version is None:
                raise importlib.metadata.PackageNotFoundError(dist)
            return version
        return real_version(dist)

    monkeypatch.setattr(importlib.metadata, "version", fake_version)
    monkeypatch.delitem(sys.modules, "snn_blockbackend.adapters.norse", raising=False)
    return importlib.import_module("snn_blockbackend.adapters.norse")


def test_missing_norse_names_the_pip_extra(monkeypatch):
    with pytest.raises(ImportError, match=r"pip install 'snn-blockbackend\[norse\]'"):
        _import_adapter_with_version(monkeypatch, None)


def test_unsupported_norse_names_the_supported_range(monkeypatch):
    with pytest.raises(ImportError, match=r"norse 0\.9\.1 is not supported.*>=1\.0,<1\.2"):
        _import_adapter_with_version(monkeypatch, "0.9.1")
    with pytest.raises(ImportError, match=r"norse 1\.2\.0 is not supported.*>=1\.0,<1\.2"):
        _import_adapter_with_version(monkeypatch, "1.2.0")


# =============================================================================================
# refractory_steps > 0: the engine's sequential reference
# =============================================================================================
def _reference(module, x, refractory_steps):
    # the same initial state as the module (Norse's float32 initial v where that applies)
    state = module._engine_state(None, x)
    return block_neuron(x, module.profile, module._engine_params(x), refractory_steps, state=state, backend="reference")


def _check_refractory(kind, refractory_steps, dtype, seed, shape, split, kick=30.0, **param_kwargs):
    """Module (one call, and two calls with the state passed on at ``split``) and cell (stepped) with
    ``refractory_steps`` against the engine's sequential reference: forward bitwise, gradients to rounding."""
    p = _norse_params(kind, dtype, shape[-1:], seed, **param_kwargs)
    x = _input(shape, dtype, seed, kind, param_kwargs.get("v_th", 1.0), kick=kick)
    module = _our_module(kind, p, refractory_steps=refractory_steps)
    ref = _reference(module, x, refractory_steps)
    assert bool(ref.spikes.any())
    spikes, state = module(x)
    assert type(state).__name__.startswith("Block") and state.refractory.dtype == torch.long
    first, mid = module(x[:split])
    second, final = module(x[split:], mid)
    # built from module.p, whose tensors are the module's nn.Parameters: the cell adopts them (shared leaves)
    _, cell = _cells(kind, module.p, refractory_steps=refractory_steps)
    ref_for_cells = _reference(cell, x, refractory_steps)
    cell_spikes, cell_states = _run_cell(kind, cell, x)
    for got_spikes, got_state in ((spikes, state), (torch.cat([first, second]), final)):
        assert torch.equal(got_spikes, ref.spikes)
        for name in STATE_FIELDS[kind]:
            assert torch.equal(getattr(got_state, name), ref.state[name]), name
        assert torch.equal(got_state.refractory, ref.state["refractory"])
    assert torch.equal(cell_spikes, ref_for_cells.spikes)
    assert torch.equal(cell_states["v"], ref_for_cells.membrane)
    # gradients: the engine's reference BPTT
    leaves = [x, *(getattr(module, n) for n in _native_leaves(kind, p))]
    ref_states = {n: ref.state[n] for n in STATE_FIELDS[kind]}
    _assert_same((ref.spikes, ref_states), (spikes, _fields(kind, state)), leaves, leaves, seed)
    ref_cells = (ref_for_cells.spikes, {"v": ref_for_cells.membrane})
    _assert_same(ref_cells, (cell_spikes, {"v": cell_states["v"]}), leaves, leaves, seed + 1)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", [k for k in KINDS if k != "refrac"])
@pytest.mark.parametrize("refractory_steps", (1, 3))
def test_refractory_cells_and_modules_match_reference(kind, refractory_steps, dtype):
    _check_refractory(kind, refractory_steps, dtype, 11, (33, 2, 7), 13, spread=0.3, v_leak=0.1, v_reset=-0.2)


@HYPOTHESIS
@given(
    t=st.integers(2, 30),
    neurons=st.lists(st.integers(1, 4), min_size=1, max_size=2),
    kind=st.sampled_from([k for k in KINDS if k != "refrac"]),
    refractory_steps=st.integers(1, 6),
    split=st.integers(1, 29),
    v_leak=st.floats(-0.2, 0.2),
    v_reset=st.floats(-0.5, 0.5),
    v_th=st.floats(0.5, 2.0),
    spread=st.sampled_from([0.0, 0.3]),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_refractory_random_configurations_match_reference(
    t, neurons, kind, refractory_steps, split, v_leak, v_reset, v_th, spread, dtype, seed
):
    _check_refractory(
        kind, refractory_steps, dtype, seed, (t, *neurons), min(split, t - 1), kick=60.0,
        v_leak=v_leak, v_reset=v_reset, v_th=v_th, spread=spread,
    )


@pytest.mark.parametrize("rho_reset", (1, 4))
def test_lif_refractory_steps_is_the_forward_of_lif_refrac_cell(rho_reset):
    """BlockLIFCell(refractory_steps=R) holds v and blocks spikes for R steps: the forward pass of Norse's
    LIFRefracCell with rho_reset=R (norse_lif profile docstring)."""
    p = _norse_params("refrac", torch.float32, (6,), 8, rho_reset=float(rho_reset), v_leak=0.1, v_reset=-0.3)
    x = _input((40, 2, 6), torch.float32, 8, "refrac")
    native_spikes, native_states = _run_cell("refrac", nt.LIFRefracCell(p), x)
    cell = nb.BlockLIFCell(p.lif, refractory_steps=rho_reset)
    spikes, states = _run_cell("lif", cell, x)
    assert bool(native_spikes.any())
    assert torch.equal(spikes, native_spikes)
    assert torch.equal(states["v"], native_states["v"]) and torch.equal(states["i"], native_states["i"])


# =============================================================================================
# SequentialState and a Norse-style training loop
# =============================================================================================
def test_sequential_state_with_cells_and_modules():
    torch.manual_seed(1)
    lif_p = nt.LIFParameters(v_th=torch.tensor(0.5))
    lsnn_p = nt.LSNNParameters(tau_adapt_inv=torch.tensor(1.0 / 20))
    native = nt.SequentialState(nn.Linear(5, 8), nt.LIFCell(lif_p), nn.Linear(8, 6), nt.LSNNCell(lsnn_p))
    ours = copy.deepcopy(native)
    ours[1], ours[3] = nb.BlockLIFCell(lif_p), nb.BlockLSNNCell(lsnn_p)
    x = torch.randn(30, 4, 5) * 3 + 2
    native_out, ours_out, native_state, our_state = [], [], None, None
    for xt in x.unbind(0):
        out, native_state = native(xt, native_state)
        native_out.append(out)
        out, our_state = ours(xt, our_state)
        ours_out.append(out)
    native_out, ours_out = torch.stack(native_out), torch.stack(ours_out)
    assert bool(native_out.any()) and torch.equal(ours_out, native_out)
    assert torch.equal(our_state[1].v, native_state[1].v) and torch.equal(our_state[3].b, native_state[3].b)
    # time-first modules inside SequentialState (one call per sequence)
    native_seq = nt.SequentialState(native[0], nt.LIF(lif_p), native[2], nt.LSNN(lsnn_p))
    ours_seq = nt.SequentialState(native[0], nb.BlockLIF(lif_p), native[2], nb.BlockLSNN(lsnn_p))
    out_native, state_native = native_seq(x)
    out_ours, state_ours = ours_seq(x)
    assert torch.equal(out_ours, out_native) and torch.equal(out_native, native_out)
    assert torch.equal(state_ours[3].b, state_native[3].b)


def _train(model, extra_params, x, labels, steps=6):
    optimizer = torch.optim.Adam(list(model.parameters()) + extra_params, lr=2e-2)
    losses = []
    for _ in range(steps):
        optimizer.zero_grad()
        out, _ = model(x)
        loss = nn.functional.cross_entropy(out.mean(0), labels)  # Norse tutorials: decode over time
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


@pytest.mark.parametrize("learn_tau", (False, True), ids=("fixed-tau", "learnable-tau"))
def test_training_loop_gives_the_same_losses(learn_tau):
    """Linear -> LIF -> Linear readout, a few Adam steps (Norse tutorial style). With a learnable
    tau_mem_inv, Norse needs it passed to the optimizer by hand; ours is in model.parameters()."""
    torch.manual_seed(0)
    x = torch.rand(25, 16, 10)
    labels = torch.randint(0, 3, (16,))
    tau = nn.Parameter(torch.full((20,), 100.0)) if learn_tau else torch.tensor(100.0)
    native_p = nt.LIFParameters(tau_mem_inv=tau, v_th=torch.tensor(0.3))
    native = nt.SequentialState(nn.Linear(10, 20), nt.LIF(native_p), nn.Linear(20, 3))
    our_p = native_p._replace(tau_mem_inv=nn.Parameter(tau.detach().clone()) if learn_tau else tau)
    ours = nt.SequentialState(copy.deepcopy(native[0]), nb.BlockLIF(our_p), copy.deepcopy(native[2]))
    assert len(list(ours.parameters())) == len(list(native.parameters())) + learn_tau
    native_losses = _train(native, [tau] if learn_tau else [], x, labels)
    our_losses = _train(ours, [], x, labels)
    assert native_losses[-1] < native_losses[0]
    torch.testing.assert_close(our_losses, native_losses, rtol=1e-6, atol=0)
    if learn_tau:
        torch.testing.assert_close(ours[1].tau_mem_inv.detach(), tau.detach(), rtol=1e-5, atol=0)


# =============================================================================================
# parameters as module state
# =============================================================================================
def test_parameters_are_registered_and_follow_to():
    learnable = nn.Parameter(torch.tensor(150.0))
    p = nt.LIFParameters(tau_mem_inv=learnable, v_th=torch.tensor(0.7, requires_grad=True), v_leak=torch.tensor(0.1))
    cell = nb.BlockLIFCell(p)
    named = dict(cell.named_parameters())
    assert named["tau_mem_inv"] is learnable  # an nn.Parameter is adopted: an optimizer holding it works
    assert isinstance(named["v_th"], nn.Parameter) and named["v_th"] is not p.v_th  # requires_grad -> copy
    assert set(dict(cell.named_buffers())) == {"tau_syn_inv", "v_leak", "v_reset"}
    # Norse's state_dict layout (p is configuration, no keys) plus the learnable fields Norse cannot register
    assert set(cell.state_dict()) == {"tau_mem_inv", "v_th"}
    assert cell.p.tau_mem_inv is learnable and isinstance(cell.p, nt.LIFParameters)
    cell.double()
    assert all(t.dtype == torch.float64 for t in [*cell.parameters(), *cell.buffers()])
    assert cell.p.v_leak.dtype == torch.float64
    x = torch.full((2, 3), 50.0, dtype=torch.float64)
    z, state = cell(x)
    z2, _ = cell(x, state)  # (Norse 1.0: the input reaches v one step late)
    assert z2.dtype == torch.float64 and bool(z2.any())
    # Norse 1.0's LIFCell starts from a float32 state whatever the parameters: its first step is float32
    native_z, native_state = nt.LIFCell(cell.p)(x)
    assert z.dtype == native_z.dtype and torch.equal(z, native_z) and torch.equal(state.v, native_state.v)
    # a state_dict round trip between modules (including from a cell to the time-first module)
    other = nb.BlockLIF()
    other.load_state_dict(nb.BlockLIFCell(p).state_dict())
    assert torch.equal(other.v_th, p.v_th.detach()) and torch.equal(other.tau_mem_inv, learnable.detach())
    # assigning p reloads the tensors
    other.p = nt.LIFParameters(v_th=torch.tensor(2.0))
    assert float(other.v_th) == 2.0 and not list(other.parameters())


@pytest.mark.parametrize(
    "module",
    [
        nb.BlockLIFBoxCell, nb.BlockLIFCell, nb.BlockLSNNCell, nb.BlockLIFRefracCell,
        nb.BlockLIF, nb.BlockLSNN, nb.BlockLIFBox,
    ],
)
def test_every_module_exposes_its_norse_tuple(module):
    m = module()
    assert isinstance(m, nn.Module) and "state" in __import__("inspect").signature(m.forward).parameters
    p = m.p
    rebuilt = module(p)
    tensors = dict(m.named_buffers())
    for name, tensor in tensors.items():
        assert torch.equal(dict(rebuilt.named_buffers())[name], tensor)
    assert len(tensors) >= 4
    assert repr(m).startswith(module.__name__)


def test_whole_model_torch_save_round_trip(tmp_path):
    """torch.save(model) works for Norse models; it must for ours too (the engine surrogates are closures,
    so the profile is rebuilt on load)."""
    torch.manual_seed(3)
    model = nt.SequentialState(
        nn.Linear(4, 6), nb.BlockLIF(nt.LIFParameters(method="triangle", alpha=0.5), refractory_steps=2),
        nn.Linear(6, 5), nb.BlockLSNN(nt.LSNNParameters(tau_adapt_inv=torch.tensor(0.05))),
    )
    with torch.no_grad():
        model[2].weight.mul_(30)  # enough drive for the LSNN layer to spike
    torch.save(model, tmp_path / "model.pt")
    loaded = torch.load(tmp_path / "model.pt", weights_only=False)
    assert loaded[1].profile.describe() == model[1].profile.describe()
    x = torch.rand(20, 3, 4) * 40
    (out, state), (out_loaded, state_loaded) = model(x), loaded(x)
    assert bool(out.any()) and bool(state[1].refractory.any())
    assert torch.equal(out_loaded, out)
    assert torch.equal(state_loaded[1].refractory, state[1].refractory)


def test_native_isinstance():
    assert isinstance(nb.BlockLIFCell(), nt.LIFCell) and isinstance(nb.BlockLIF(), nt.LIF)
    assert isinstance(nb.BlockLIFBoxCell(), nt.LIFBoxCell) and isinstance(nb.BlockLSNNCell(), nt.LSNNCell)
    assert isinstance(nb.BlockLSNN(), nt.LSNN) and isinstance(nb.BlockLIFRefracCell(), nt.LIFRefracCell)


# =============================================================================================
# bad input
# =============================================================================================
def test_bad_input_raises_clear_errors():
    cell, module = nb.BlockLIFCell(), nb.BlockLIF()
    with pytest.raises(TypeError, match="torch.Tensor"):
        cell([1.0, 2.0])
    with pytest.raises(ValueError, match=r"\[batch, \.\.\.\]"):
        cell(torch.tensor(1.0))
    with pytest.raises(ValueError, match="time-first"):
        module(torch.ones(5))
    with pytest.raises(TypeError, match="sparse"):
        cell(torch.ones(2, 3).to_sparse())
    with pytest.raises(TypeError, match="floating-point input"):  # as Norse's LSNNCell (LIFCell takes it)
        nb.BlockLSNNCell()(torch.ones(2, 3, dtype=torch.int64))
    with pytest.raises(ValueError, match="NaN or Inf"):
        module(torch.full((3, 2), float("nan")))
    with pytest.raises(TypeError, match="expects a state with fields"):
        cell(torch.ones(2, 3), nt.LIFBoxFeedForwardState(v=torch.zeros(2, 3)))
    with pytest.raises(ValueError, match="does not fit"):
        cell(torch.ones(2, 3), nt.LIFFeedForwardState(v=torch.zeros(4, 3), i=torch.zeros(4, 3)))
    with pytest.raises(TypeError, match="integer tensor"):
        cell(torch.ones(2, 3), nb.BlockLIFState(torch.zeros(2, 3), torch.zeros(2, 3), torch.zeros(2, 3)))
    with pytest.raises(TypeError, match="LIFRefracFeedForwardState"):
        nb.BlockLIFRefracCell()(torch.ones(2, 3), nt.LIFFeedForwardState(torch.zeros(2, 3), torch.zeros(2, 3)))


def test_bad_construction_raises_clear_errors():
    with pytest.raises(TypeError, match="takes a norse LIFParameters, not LIFBoxParameters"):
        nb.BlockLIFCell(nt.LIFBoxParameters())
    with pytest.raises(TypeError, match="must be a float or a floating-point tensor"):
        nb.BlockLIFCell(nt.LIFParameters(v_th="one"))
    with pytest.raises(ValueError, match="adjoint"):
        nb.BlockLIFCell(nt.LIFParameters(method="adjoint"))
    with pytest.raises(ValueError, match="adjoint"):
        nb.BlockLSNN(adjoint=True)
    with pytest.raises(ValueError, match="unknown Norse threshold method 'nope'"):
        nb.BlockLIFBoxCell(nt.LIFBoxParameters(method="nope"))
    with pytest.raises(ValueError, match="refractory_steps must be >= 0"):
        nb.BlockLIFCell(refractory_steps=-1)
    with pytest.raises(TypeError, match="refractory_steps must be a non-negative int"):
        nb.BlockLIF(refractory_steps=1.5)
    with pytest.raises(ValueError, match="dt must be a positive float"):
        nb.BlockLIFCell(dt=0.0)
    with pytest.raises(ValueError, match="unknown backend 'no-such-backend'"):
        nb.BlockLIF(backend="no-such-backend")(torch.ones(3, 2))


def test_assigning_a_bad_tuple_changes_nothing():
    cell = nb.BlockLIFCell(nt.LIFParameters(v_th=torch.tensor(0.5)))
    before = {name: tensor.clone() for name, tensor in cell.named_buffers()}
    with pytest.raises(ValueError, match="adjoint"):
        cell.p = nt.LIFParameters(v_th=torch.tensor(2.0), method="adjoint")
    with pytest.raises(TypeError, match="'v_reset' must be a float"):
        cell.p = nt.LIFParameters(v_th=torch.tensor(2.0), v_reset="zero")
    assert cell.method == "super"
    assert all(torch.equal(dict(cell.named_buffers())[name], tensor) for name, tensor in before.items())


def test_surrogate_mapping():
    assert nb.engine_surrogate("super", 100.0, "1.0").name == "superspike(100.0)"
    assert nb.engine_surrogate("super", 100.0, "1.1").name == "superspike(1.0)"
    assert nb.engine_surrogate("super", 0.3, "1.0").args == (float(torch.tensor(0.3)),)  # Norse's float32 alpha
    assert nb.engine_surrogate("heaviside", 1.0).derivative is None
    fn = nb.engine_surrogate("triangle", 0.3)
    margin = torch.tensor([-0.5, 0.0, 0.5], requires_grad=True)
    native = norse_threshold.threshold(margin, "triangle", 0.3)
    assert torch.equal(fn(margin), native)


# =============================================================================================
# convert / unconvert
# =============================================================================================
def test_convert_and_unconvert_an_existing_model():
    torch.manual_seed(4)
    tau = nn.Parameter(torch.full((6,), 120.0))  # learnable in Norse's way: an nn.Parameter in the tuple
    shared = nt.LIFBoxCell(nt.LIFBoxParameters(v_th=torch.tensor(0.4)))
    native = nt.SequentialState(
        nn.Linear(3, 6), nt.LIF(nt.LIFParameters(tau_mem_inv=tau, v_th=torch.tensor(0.2))),
        nn.Sequential(nn.Linear(6, 6), nn.Identity()), nt.LSNN(nt.LSNNParameters(tau_adapt_inv=torch.tensor(0.05))),
    )
    x = torch.rand(15, 2, 3) * 5
    expected, _ = native(x)
    cells = nn.ModuleList([shared, nn.Sequential(shared)])  # one cell used twice
    copied = copy.deepcopy(native)
    copied_tau = copied[1].p.tau_mem_inv
    model = nb.convert(copied)
    assert [type(m) for m in model] == [nn.Linear, nb.BlockLIF, nn.Sequential, nb.BlockLSNN]
    assert model[1].tau_mem_inv is copied_tau  # an nn.Parameter in Norse's tuple is adopted, not copied
    assert dict(model.named_parameters())["1.tau_mem_inv"] is copied_tau
    out, _ = model(x)
    assert bool(expected.any()) and torch.equal(out, expected)
    converted_cells = nb.convert(cells)
    assert type(converted_cells[0]) is nb.BlockLIFBoxCell and converted_cells[1][0] is converted_cells[0]
    assert type(nb.convert(nt.LIFCell(), refractory_steps=2)) is nb.BlockLIFCell
    assert nb.convert(nt.LIFCell(), refractory_steps=2).refractory_steps == 2
    back = nb.unconvert(model)
    assert [type(m) for m in back] == [nn.Linear, nt.LIF, nn.Sequential, nt.LSNN]
    assert torch.equal(back(x)[0], expected)
    with pytest.raises(ValueError, match="refractory_steps=3; Norse has none"):
        nb.unconvert(nb.BlockLIF(refractory_steps=3))
    with pytest.raises(ValueError, match="no Norse counterpart"):
        nb.unconvert(nt.SequentialState(nb.BlockLIFBox()))
