"""The neuron profiles against the native framework neurons (snnTorch, SpikingJelly, Norse).

Every test runs the framework's own class, then ``block_neuron`` with the matching profile on each backend
("reference" and "torch"), and checks:

* spikes: ``torch.equal`` (bitwise);
* membrane: ``torch.equal`` (bitwise), against what the native class reports per step;
* gradients of a random linear loss over spikes and membranes with respect to the input and to every
  learnable parameter: ``assert_close(rtol=1e-5, atol=1e-7 + 2e-6 * G)``, G = the largest native gradient
  magnitude over all compared leaves (the gradient scale of the problem).

The backward formulas are the native ones, but autograd sums the contributions to a tensor in an order
that depends on the shape of the graph, and where ours differs (``torch.where`` and the ``rho`` counter of
``norse_lif_refrac``, the torch provider's hand-written fast-path backward for snnTorch's delayed reset)
the float32 sums round differently. With non-detached resets the BPTT gradients grow to 1e2-1e6 over 37
steps, and an element that is a small difference of large terms (a scalar parameter's gradient sums
T*B*N of them) then differs by a few ulp *of the large terms*, hence the absolute term scaled by G; rtol
alone would fail on such elements. Measured over this file and 150 random examples per random test:
bitwise for SpikingJelly (float32), Norse LIFBox/LIF/LSNN (float32 and float64) and snnTorch on the
reference backend (float32); otherwise at most 5e-7*G in float32 and 3e-15*G in float64, except snnTorch
float64 (2e-7*G): its spikes are float32 even for float64 input, so its gradients through the spikes
carry float32 rounding.

Refractory periods are 0 except for Norse's ``LIFRefracCell``. Inputs are scaled so that roughly 5-30 % of
neuron-steps spike; every test also asserts that the native run produced spikes, so none passes vacuously.
"""

from __future__ import annotations

import importlib.metadata
import os
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_blockbackend import block_neuron, make_profile

BACKENDS = ("reference", "torch")
DTYPES = (torch.float32, torch.float64)
SHAPE = (37, 3, 17)  # [T, B, N]
RATE = (0.05, 0.30)  # fraction of spiking neuron-steps the fixed-size cases are scaled to
# a deeper random search: NATIVE_EQUIVALENCE_EXAMPLES=200 pytest tests/test_native_equivalence.py
HYPOTHESIS = settings(
    max_examples=int(os.environ.get("NATIVE_EQUIVALENCE_EXAMPLES", "6")),
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow],
)


def _version(dist: str) -> tuple[int, ...]:
    parts = []
    for piece in importlib.metadata.version(dist).split(".")[:3]:
        digits = "".join(ch for ch in piece if ch.isdigit())
        parts.append(int(digits or 0))
    return tuple(parts)


def _generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _input(shape, dtype, seed, mean, std, kick=0.0):
    """Random input current; ``kick`` is added to the first neuron's first step (so that short random
    sequences still spike)."""
    x = torch.randn(shape, generator=_generator(seed), dtype=torch.float64) * std + mean
    x.view(shape[0], -1)[0, 0] += kick
    return x.to(dtype).requires_grad_()


def _loss_weights(shape, dtype, seed):
    g = _generator(10_000 + seed)
    return (
        torch.randn(shape, generator=g, dtype=torch.float64).to(dtype),
        torch.randn(shape, generator=g, dtype=torch.float64).to(dtype),
    )


def _loss(spikes, membrane, weights):
    w_spikes, w_membrane = weights
    return (spikes.to(w_spikes.dtype) * w_spikes).sum() + (membrane * w_membrane).sum()


def _grads(loss, leaves):
    # a leaf the loss does not depend on (e.g. tau_syn_inv when T=1) gets a zero gradient on both sides
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, grads)]


def _compare(native, leaves, run_ours, weights, backends=BACKENDS, check_grads=True, spike_rate=None):
    """``native``: (spikes, membrane) from the framework; ``run_ours(backend)`` -> BlockResult."""
    native_spikes, native_membrane = native
    assert native_spikes.shape == native_membrane.shape
    assert bool((native_spikes != 0).any()), "the native neuron never spiked: the input scale is wrong"
    if spike_rate is not None:  # the fixed-size cases are scaled to the 5-30 % regime
        rate = (native_spikes != 0).double().mean().item()
        assert spike_rate[0] <= rate <= spike_rate[1], f"native spike rate {rate:.3f} outside {spike_rate}"
    native_grads = None
    if check_grads:
        native_grads = _grads(_loss(native_spikes, native_membrane, weights), leaves)
        scale = max(g.abs().max().item() for g in native_grads)  # G: the gradient scale of the problem
    for backend in backends:
        ours = run_ours(backend)
        # snnTorch's spikes are float32 even for float64 input; values are compared exactly either way
        assert torch.equal(ours.spikes, native_spikes.to(ours.spikes.dtype)), f"spikes differ ({backend})"
        assert ours.membrane.dtype == native_membrane.dtype
        if not torch.equal(ours.membrane, native_membrane):
            diff = (ours.membrane - native_membrane).abs().max().item()
            raise AssertionError(f"membrane differs ({backend}): max |diff| = {diff:.3g}")
        if check_grads:
            our_grads = _grads(_loss(ours.spikes, ours.membrane, weights), leaves)
            for leaf, ours_g, native_g in zip(leaves, our_grads, native_grads):
                native_g = native_g.to(ours_g.dtype)
                torch.testing.assert_close(
                    ours_g, native_g, rtol=1e-5, atol=1e-7 + 2e-6 * scale,
                    msg=lambda m, b=backend, s=tuple(leaf.shape): f"gradient of a {s} leaf ({b}): {m}",
                )


# =============================================================================================
# snnTorch Leaky
# =============================================================================================
def _snntorch():
    return pytest.importorskip("snntorch", reason="snnTorch is not installed; its native comparison is skipped")


def _run_leaky(lif, x):
    mem = lif.reset_mem()
    spikes, membranes = [], []
    for xt in x.unbind(0):
        spk, mem = lif(xt, mem)
        spikes.append(spk)
        membranes.append(mem)
    return torch.stack(spikes), torch.stack(membranes)


def _check_leaky(
    dtype, seed, shape, beta, threshold, graded, reset_mechanism, reset_delay, learn, mean, std,
    kick=0.0, spike_rate=None,
):
    snn = _snntorch()
    lif = snn.Leaky(
        beta=beta,
        threshold=threshold,
        graded_spikes_factor=graded,
        reset_mechanism=reset_mechanism,
        reset_delay=reset_delay,
        learn_beta=learn,
        learn_threshold=learn,
    ).to(dtype)
    x = _input(shape, dtype, seed, mean, std, kick)
    leaves = [x] + ([lif.beta, lif.threshold] if learn else [])
    profile = make_profile("snntorch_leaky", reset_mechanism=reset_mechanism, reset_delay=reset_delay)
    params = {"beta": lif.beta, "threshold": lif.threshold, "graded_spikes_factor": lif.graded_spikes_factor}
    _compare(
        _run_leaky(lif, x),
        leaves,
        lambda backend: block_neuron(x, profile, params, backend=backend),
        _loss_weights(shape, dtype, seed),
        spike_rate=spike_rate,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reset_delay", (True, False), ids=("delay", "immediate"))
@pytest.mark.parametrize("reset_mechanism", ("subtract", "zero", "none"))
def test_snntorch_leaky_matches_native(reset_mechanism, reset_delay, dtype):
    n = SHAPE[-1]
    g = _generator(7)
    vector_beta = torch.rand(n, generator=g) * 0.5 + 0.45
    vector_threshold = torch.rand(n, generator=g) * 0.6 + 0.8
    mean = 0.0 if reset_mechanism == "none" else 0.25
    for seed, beta, threshold, graded, learn in (
        (0, 0.87, 1.0, 1.0, False),  # snnTorch defaults apart from beta
        (1, vector_beta, vector_threshold, 0.7, True),  # per-neuron beta/threshold, graded spikes, learnable
        (2, 0.95, 1.3, 1.5, True),
    ):
        _check_leaky(
            dtype, seed, SHAPE, beta, threshold, graded, reset_mechanism, reset_delay, learn, mean, 0.6, spike_rate=RATE
        )


@HYPOTHESIS
@given(
    t=st.integers(1, 40),
    neurons=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    beta=st.floats(-0.2, 1.2),  # clamped to [0, 1] by snnTorch on every call
    threshold=st.floats(0.3, 2.0),
    graded=st.sampled_from([1.0, 0.5, 2.0]),
    reset_mechanism=st.sampled_from(["subtract", "zero", "none"]),
    reset_delay=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_snntorch_leaky_random(t, neurons, beta, threshold, graded, reset_mechanism, reset_delay, dtype, seed):
    shape = (t, *neurons)
    beta_vector = torch.full(neurons[-1:], beta) + torch.linspace(0.0, 0.1, neurons[-1])
    # input around the threshold so that spikes happen even for short sequences
    _check_leaky(
        dtype, seed, shape, beta_vector, threshold, graded, reset_mechanism, reset_delay, True,
        threshold * 0.6, threshold, kick=3 * threshold,
    )


@pytest.mark.parametrize("reset_mechanism", ("subtract", "zero"))
def test_snntorch_immediate_reset_quirk_and_ties(reset_mechanism):
    """reset_delay=False keeps a membrane above threshold 'stuck'; v == threshold does not spike (>)."""
    x = torch.tensor([[3.5], [0.0], [0.0], [1.0], [0.5], [0.5]]).requires_grad_()
    snn = _snntorch()
    lif = snn.Leaky(beta=1.0, threshold=1.0, reset_mechanism=reset_mechanism, reset_delay=False)
    native = _run_leaky(lif, x)
    profile = make_profile("snntorch_leaky", reset_mechanism=reset_mechanism, reset_delay=False)
    params = {"beta": lif.beta, "threshold": lif.threshold, "graded_spikes_factor": lif.graded_spikes_factor}
    _compare(native, [x], lambda b: block_neuron(x, profile, params, backend=b), _loss_weights(x.shape, x.dtype, 0))
    # a tie under the delayed reset: beta=0.5, mem stays exactly at the threshold and never spikes
    lif = snn.Leaky(beta=0.5, threshold=1.0, reset_mechanism=reset_mechanism)
    tie = torch.tensor([[1.0], [0.5], [0.5], [3.0]]).requires_grad_()
    native = _run_leaky(lif, tie)
    assert bool((native[1][:3] == 1.0).all())  # exact ties happened natively
    profile = make_profile("snntorch_leaky", reset_mechanism=reset_mechanism)
    params = {"beta": lif.beta, "threshold": lif.threshold, "graded_spikes_factor": lif.graded_spikes_factor}
    run = lambda b: block_neuron(tie, profile, params, backend=b)  # noqa: E731
    _compare(native, [tie], run, _loss_weights(tie.shape, tie.dtype, 1))


# =============================================================================================
# SpikingJelly LIFNode / ParametricLIFNode
# =============================================================================================
def _spikingjelly_neuron():
    pytest.importorskip("spikingjelly", reason="SpikingJelly is not installed; its native comparison is skipped")
    if _version("spikingjelly")[0] < 2:
        pytest.skip("the profile's SpikingJelly 0.0.0.0.14 branch is not verified here (needs SpikingJelly 2.x)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based import neuron
    return neuron


def _check_spikingjelly(
    dtype, seed, shape, tau, decay_input, v_threshold, v_reset, detach_reset, parametric, kick=0.0, spike_rate=None
):
    neuron = _spikingjelly_neuron()
    common = dict(
        decay_input=decay_input, v_threshold=v_threshold, v_reset=v_reset, detach_reset=detach_reset,
        step_mode="m", store_v_seq=True,
    )
    if parametric:
        node = neuron.ParametricLIFNode(init_tau=tau, **common).to(dtype)
    else:
        node = neuron.LIFNode(tau=tau, **common)
    # steady state v = x (decay_input) or tau*x; the soft reset keeps v higher, so it gets less drive
    scale = (1.0 if decay_input else 1.0 / tau) * (0.65 if v_reset is None else 0.85)
    first_step_gain = 1.0 / tau if decay_input else 1.0  # h = x/tau or x in the first step
    x = _input(shape, dtype, seed, v_threshold * scale, 1.2 * v_threshold * scale, kick * v_threshold / first_step_gain)
    spikes = node(x)
    native = (spikes, node.v_seq)
    leaves = [x] + ([node.w] if parametric else [])
    profile = make_profile(
        "spikingjelly_lif", decay_input=decay_input, v_reset=v_reset, detach_reset=detach_reset,
        parametric=parametric, version="2",
    )

    def ours(backend):
        # ParametricLIFNode's decay is sigmoid(w); computing it from the native w lets the gradient reach w
        params = {"v_threshold": v_threshold}
        params.update({"decay": node.w.sigmoid()} if parametric else {"tau": tau})
        return block_neuron(x, profile, params, backend=backend)

    _compare(native, leaves, ours, _loss_weights(shape, dtype, seed), spike_rate=spike_rate)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("parametric", (False, True), ids=("LIFNode", "ParametricLIFNode"))
@pytest.mark.parametrize("detach_reset", (False, True), ids=("reset-grad", "detach-reset"))
@pytest.mark.parametrize("v_reset", (0.0, None, -0.2), ids=("hard0", "soft", "hard-0.2"))
@pytest.mark.parametrize("decay_input", (True, False), ids=("decay-input", "no-decay-input"))
def test_spikingjelly_lif_matches_native(decay_input, v_reset, detach_reset, parametric, dtype):
    for seed, tau in enumerate((2.0, 3.0, 1.7)):
        _check_spikingjelly(
            dtype, seed, SHAPE, tau, decay_input, 1.0, v_reset, detach_reset, parametric, spike_rate=RATE
        )


@HYPOTHESIS
@given(
    t=st.integers(1, 40),
    neurons=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    tau=st.floats(1.05, 8.0),
    v_threshold=st.floats(0.3, 2.0),
    v_reset=st.sampled_from([0.0, None, -0.2, 0.1]),
    decay_input=st.booleans(),
    detach_reset=st.booleans(),
    parametric=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_spikingjelly_lif_random(
    t, neurons, tau, v_threshold, v_reset, decay_input, detach_reset, parametric, dtype, seed
):
    shape = (t, *neurons)
    _check_spikingjelly(dtype, seed, shape, tau, decay_input, v_threshold, v_reset, detach_reset, parametric, kick=3.0)


def test_spikingjelly_ties_fire():
    """v == v_threshold spikes in SpikingJelly (>=): tau=2, x=2 charges 0 -> exactly 1.0 every step."""
    neuron = _spikingjelly_neuron()
    node = neuron.LIFNode(tau=2.0, step_mode="m", store_v_seq=True)
    x = torch.full((5, 1, 4), 2.0).requires_grad_()
    native = (node(x), node.v_seq)
    assert bool((native[0] == 1).all())
    profile = make_profile("spikingjelly_lif")
    run = lambda b: block_neuron(x, profile, {"tau": 2.0}, backend=b)  # noqa: E731
    _compare(native, [x], run, _loss_weights(x.shape, x.dtype, 0))


# =============================================================================================
# Norse 1.1: LIFBoxCell, LIFCell, LSNNCell, LIFRefracCell
# =============================================================================================
def _norse():
    pytest.importorskip("norse", reason="Norse is not installed; its native comparison is skipped")
    if _version("norse") < (1, 1):
        pytest.skip("the profiles' Norse 1.0 branches are not verified by this suite (needs Norse 1.1)")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import norse.torch as norse_torch
        from norse.torch.functional import reset as norse_reset
    return norse_torch, norse_reset


def _run_cell(cell, x):
    spikes, membranes, state = [], [], None
    for xt in x.unbind(0):
        z, state = cell(xt, state)
        v = state.lif.v if hasattr(state, "lif") else state.v
        spikes.append(z)
        membranes.append(v if v.shape == xt.shape else v.expand_as(xt))
    return torch.stack(spikes), torch.stack(membranes)


def _leaf(value, dtype, neurons=None, seed=0, spread=0.0):
    """A learnable Norse parameter: scalar, or per-neuron with a relative spread."""
    if neurons is None or spread == 0.0:
        return torch.tensor(value, dtype=dtype, requires_grad=True)
    noise = torch.rand(neurons, generator=_generator(seed), dtype=torch.float64) * 2 - 1
    return (value * (1 + spread * noise)).to(dtype).requires_grad_()


NORSE_INPUT = {  # (mean, std) of the input current per unit threshold: ~5-30 % spiking neuron-steps
    "box_value": (2.0, 2.5),
    "box_subtract": (2.0, 2.5),
    "lif": (0.6, 0.6),
    "lsnn": (2.0, 1.5),
    "refrac": (1.0, 0.8),
}


def _check_norse(
    kind, dtype, seed, shape, tau_mem_inv, tau_syn_inv, v_leak, v_reset, v_th, spread, refractory=0, kick=0.0,
    spike_rate=None,
):
    nt, norse_reset = _norse()
    neurons = shape[-1:]
    tm = _leaf(tau_mem_inv, dtype, neurons, seed, spread)
    ts = _leaf(tau_syn_inv, dtype, neurons, seed + 1, spread)
    vth = _leaf(v_th, dtype)
    vl = _leaf(v_leak, dtype)
    vr = _leaf(v_reset, dtype)
    mean, std = NORSE_INPUT[kind]
    x = _input(shape, dtype, seed, mean * v_th, std * v_th, kick * v_th)
    ours_params = {"tau_mem_inv": tm, "v_leak": vl, "v_th": vth, "v_reset": vr}
    leaves = [x, tm, vth, vl] + ([] if kind == "box_subtract" else [vr])  # reset_subtract ignores v_reset
    refractory_steps = 0
    if kind.startswith("box"):
        method = norse_reset.reset_subtract if kind == "box_subtract" else norse_reset.reset_value
        p = nt.LIFBoxParameters(tau_mem_inv=tm, v_leak=vl, v_th=vth, v_reset=vr, reset_method=method)
        cell = nt.LIFBoxCell(p)
        profile = make_profile("norse_lif_box", reset_method=kind.split("_")[1])
    elif kind == "lif":
        cell = nt.LIFCell(nt.LIFParameters(tau_syn_inv=ts, tau_mem_inv=tm, v_leak=vl, v_th=vth, v_reset=vr))
        profile = make_profile("norse_lif", version="1.1")
        ours_params["tau_syn_inv"] = ts
        leaves.append(ts)
    elif kind == "lsnn":
        ta = _leaf(1.0 / 20, dtype, neurons, seed + 2, spread)  # Norse's 1/800 barely acts within 37 steps
        beta = _leaf(1.8, dtype)
        p = nt.LSNNParameters(
            tau_syn_inv=ts, tau_mem_inv=tm, tau_adapt_inv=ta, v_leak=vl, v_th=vth, v_reset=vr, beta=beta
        )
        cell = nt.LSNNCell(p)
        profile = make_profile("norse_lsnn")
        ours_params.update(tau_syn_inv=ts, tau_adapt_inv=ta, beta=beta)
        leaves += [ts, ta, beta]
    else:  # LIFRefracCell(rho_reset=|refractory|): refractory <= 0 runs norse_lif_refrac (refractory_steps=0),
        # refractory > 0 runs norse_lif with refractory_steps=refractory
        rho_reset = abs(refractory)
        rho = torch.tensor(float(rho_reset), dtype=dtype, requires_grad=True)
        lif_p = nt.LIFParameters(tau_syn_inv=ts, tau_mem_inv=tm, v_leak=vl, v_th=vth, v_reset=vr)
        cell = nt.LIFRefracCell(nt.LIFRefracParameters(lif=lif_p, rho_reset=rho))
        ours_params["tau_syn_inv"] = ts
        leaves.append(ts)
        if refractory <= 0:
            profile = make_profile("norse_lif_refrac")
            ours_params["rho_reset"] = rho
            leaves.append(rho)
        else:
            profile = make_profile("norse_lif")
            refractory_steps = refractory
    native = _run_cell(cell, x)
    # norse_lif with refractory_steps=R reproduces LIFRefracCell's forward pass only (see NorseLIFRefrac)
    check_grads = not (kind == "refrac" and refractory_steps > 0)
    _compare(
        native,
        leaves,
        lambda backend: block_neuron(x, profile, ours_params, refractory_steps, backend=backend),
        _loss_weights(shape, dtype, seed),
        check_grads=check_grads,
        spike_rate=spike_rate,
    )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("kind", ("box_value", "box_subtract", "lif", "lsnn"))
def test_norse_cells_match_native(kind, dtype):
    for seed, (tau_mem_inv, tau_syn_inv, v_leak, v_reset, v_th, spread) in enumerate(
        (
            (100.0, 200.0, 0.0, 0.0, 1.0, 0.0),  # Norse defaults
            (100.0, 200.0, 0.1, -0.3, 1.0, 0.0),  # v_leak / v_reset != 0 expose the operation order
            (150.0, 300.0, -0.05, 0.2, 0.8, 0.3),  # per-neuron time constants
        )
    ):
        _check_norse(kind, dtype, seed, SHAPE, tau_mem_inv, tau_syn_inv, v_leak, v_reset, v_th, spread, spike_rate=RATE)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rho_reset", (0, 1, 3, 6))
def test_norse_lif_refrac_profile_matches_native(rho_reset, dtype):
    """norse_lif_refrac (refractory_steps=0, own counter rho): forward and gradient of LIFRefracCell."""
    for seed in range(2):
        _check_norse(
            "refrac", dtype, seed, SHAPE, 100.0, 200.0, 0.1, -0.3, 1.0, 0.2 * seed, refractory=-rho_reset,
            spike_rate=RATE,
        )


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("rho_reset", (1, 2, 5))
def test_norse_lif_with_refractory_steps_is_lif_refrac_forward(rho_reset, dtype):
    """norse_lif with refractory_steps=R: v held at its post-reset value, i integrating, no spikes for R
    steps, i.e. LIFRefracCell(rho_reset=R) bit for bit (its gradient also flows through rho; not compared)."""
    for seed in range(2):
        _check_norse(
            "refrac", dtype, seed, SHAPE, 100.0, 200.0, 0.1, -0.3, 1.0, 0.2 * seed, refractory=rho_reset,
            spike_rate=RATE,
        )


@HYPOTHESIS
@given(
    t=st.integers(2, 40),  # LSNN's input reaches v one step late
    neurons=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    kind=st.sampled_from(["box_value", "box_subtract", "lif", "lsnn", "refrac"]),
    tau_mem_inv=st.floats(50.0, 400.0),
    tau_syn_inv=st.floats(100.0, 600.0),
    v_leak=st.floats(-0.2, 0.2),
    v_reset=st.floats(-0.5, 0.5),
    v_th=st.floats(0.5, 2.0),
    spread=st.sampled_from([0.0, 0.3]),
    refractory=st.integers(-4, 4),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_norse_random(
    t, neurons, kind, tau_mem_inv, tau_syn_inv, v_leak, v_reset, v_th, spread, refractory, dtype, seed
):
    shape = (t, *neurons)
    _check_norse(
        kind, dtype, seed, shape, tau_mem_inv, tau_syn_inv, v_leak, v_reset, v_th, spread, refractory, kick=60.0
    )


@pytest.mark.parametrize("kind", ("lif", "lsnn"))
def test_norse_float32_parameters_on_float64_input(kind):
    """Norse's default parameters are float32 tensors: on float64 input ``dt * tau_mem_inv`` is a float32
    product. Passing those float32 products as the rates with dt=1 reproduces it bitwise."""
    nt, _ = _norse()
    x = _input(SHAPE, torch.float64, 3, *NORSE_INPUT[kind])
    if kind == "lif":
        p = nt.LIFParameters()
        cell = nt.LIFCell(p)
        rates = {"tau_mem_inv": p.tau_mem_inv, "tau_syn_inv": p.tau_syn_inv}
    else:
        p = nt.LSNNParameters(tau_adapt_inv=torch.as_tensor(1.0 / 20))  # adaptation that acts within 37 steps
        cell = nt.LSNNCell(p)
        rates = {"tau_mem_inv": p.tau_mem_inv, "tau_syn_inv": p.tau_syn_inv, "tau_adapt_inv": p.tau_adapt_inv}
    assert p.tau_mem_inv.dtype == torch.float32
    params = {name: (0.001 * rate).double() for name, rate in rates.items()}  # Norse's float32 dt*rate
    params.update(dt=1.0, v_leak=p.v_leak.double(), v_th=p.v_th.double(), v_reset=p.v_reset.double())
    if kind == "lsnn":
        params["beta"] = p.beta.double()
    profile = make_profile("norse_lif" if kind == "lif" else "norse_lsnn")
    run = lambda b: block_neuron(x, profile, params, backend=b)  # noqa: E731
    _compare(_run_cell(cell, x), [x], run, _loss_weights(SHAPE, torch.float64, 3))


def test_norse_ties_do_not_fire():
    """v' == v_th does not spike in Norse (>): dt=1, tau_mem_inv=1 makes v' = x exactly."""
    nt, _ = _norse()
    x = torch.tensor([[[1.0, 1.0, 2.0]], [[1.0, 0.5, 1.0]], [[3.0, 1.0, 1.0]]]).requires_grad_()
    p = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(1.0), v_th=torch.tensor(1.0))
    native = _run_cell(nt.LIFBoxCell(p, dt=1.0), x)
    assert bool((native[0][x.detach() == 1.0] == 0).all())
    profile = make_profile("norse_lif_box")
    params = {"tau_mem_inv": 1.0, "dt": 1.0, "v_th": 1.0}
    _compare(native, [x], lambda b: block_neuron(x, profile, params, backend=b), _loss_weights(x.shape, x.dtype, 0))
