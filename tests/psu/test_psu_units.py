"""Parallel spiking units (PSU / IPSU / RPSU / PPSU): equations, providers, streaming, gradients, bad input.

Expected values are never hard-coded: each check compares against an independent computation in the test
(a sequential LIF loop, SpikingJelly 2.x's own neurons, the obvious-loops reference provider, the exact
recurrence, finite differences, or autograd of the surrogate's smooth primal).

Spike comparisons between two computations that round differently allow a mismatch only where the membrane
is within ``tie`` of the threshold, and assert that such near-ties are rare (so no test passes vacuously).
"""

from __future__ import annotations

import math
import tomllib
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import snn_blockbackend
from snn_blockbackend import plugins
from snn_blockbackend.psu import IPSU, PPSU, PSU, RPSU, functional as F
from snn_blockbackend.psu.surrogate import atan_primal, atan_spike

PROPERTY = settings(max_examples=15, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
LEARNED = ("ipsu", "rpsu", "ppsu")
ROOT = Path(__file__).resolve().parents[2]


def _input(shape, seed, dtype=torch.float64, mean=0.4, std=1.0):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) * std + mean).to(dtype)


def _learned(T, seed, dtype=torch.float64):
    g = torch.Generator().manual_seed(10_000 + seed)
    weight = torch.randn(T, T, generator=g, dtype=torch.float64) * math.sqrt(2 / T)
    bias = torch.randn(T, generator=g, dtype=torch.float64) * 0.1
    return weight.to(dtype), bias.to(dtype)


def _args(kind, T, seed, dtype=torch.float64):
    return () if kind == "psu" else _learned(T, seed, dtype)


def _lif_loop(x, gain, decay, threshold=None, reset="none"):
    """Sequential LIF v <- decay v + gain x; returns pre-reset membranes and spikes (1[v > threshold])."""
    v = torch.zeros_like(x[0])
    membranes, spikes = [], []
    for xt in x.unbind(0):
        v = decay * v + gain * xt
        membranes.append(v)
        s = (v > threshold).to(x.dtype) if threshold is not None else torch.zeros_like(v)
        spikes.append(s)
        if reset == "subtract":
            v = v - threshold * s
        elif reset == "zero":
            v = v * (1 - s)
    return torch.stack(membranes), torch.stack(spikes)


def assert_same_spikes(a, b, membrane, threshold, tie):
    """Spikes equal wherever |membrane - threshold| > tie; near-ties at most 1 % of entries."""
    near = (membrane - threshold).abs() <= tie
    assert int(near.sum()) <= max(1, near.numel() // 100), "too many near-threshold entries for a spike test"
    assert torch.equal(a[~near], b[~near])


def _sj():
    pytest.importorskip("spikingjelly", reason="SpikingJelly is not installed (pip install 'snn-blockbackend[spikingjelly]')")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based import neuron
    return neuron


# ---------------------------------------------------------------------------------------------
# matrices and the reset-free path
# ---------------------------------------------------------------------------------------------
@PROPERTY
@given(T=st.integers(1, 40), tau=st.floats(1.05, 20.0), leak=st.sampled_from(F.LEAKS))
def test_matrices_follow_their_definition(T, tau, leak):
    A, R = F.leak_matrices(T, tau, leak, dtype=torch.float64)
    gain, decay = F.leak_coefficients(tau, leak)
    for t in range(T):
        for s in range(T):
            assert A[t, s].item() == pytest.approx(gain * decay ** (t - s) if s <= t else 0.0, rel=1e-12, abs=0)
            assert R[t, s].item() == pytest.approx(-(decay ** (t - s)) if s < t else 0.0, rel=1e-12, abs=0)


def test_both_leaks_coincide_at_tau_2_and_differ_elsewhere():
    assert torch.equal(F.leak_matrices(9, 2.0, "released")[0], F.leak_matrices(9, 2.0, "lif")[0])
    assert torch.equal(F.leak_matrices(9, 2.0, "released")[1], F.leak_matrices(9, 2.0, "lif")[1])
    assert not torch.allclose(F.leak_matrices(9, 3.0, "released")[0], F.leak_matrices(9, 3.0, "lif")[0])


@PROPERTY
@given(T=st.integers(1, 48), n=st.integers(1, 6), seed=st.integers(0, 2**16))
def test_AX_is_the_reset_free_lif_at_tau_2(T, n, seed):
    x = _input((T, 2, n), seed)
    A, _ = F.leak_matrices(T, 2.0, "released", dtype=x.dtype)
    h = (A @ x.reshape(T, -1)).reshape(x.shape)
    loop, _ = _lif_loop(x, 0.5, 0.5)
    torch.testing.assert_close(h, loop, rtol=1e-12, atol=1e-12)


@PROPERTY
@given(T=st.integers(1, 48), tau=st.floats(1.05, 30.0), seed=st.integers(0, 2**16))
def test_generalised_leak_is_the_reset_free_lif_for_any_tau(T, tau, seed):
    x = _input((T, 5), seed)
    A, _ = F.leak_matrices(T, tau, "lif", dtype=x.dtype)
    loop, _ = _lif_loop(x, 1 / tau, 1 - 1 / tau)
    torch.testing.assert_close(A @ x, loop, rtol=1e-11, atol=1e-11)


def test_released_leak_is_not_the_lif_at_tau_3():
    """The documented caveat: the released A uses 1/tau as decay, the LIF decays by 1 - 1/tau."""
    x = _input((16, 50), 3)
    A, _ = F.leak_matrices(16, 3.0, "released", dtype=x.dtype)
    loop, _ = _lif_loop(x, 1 / 3, 2 / 3)
    assert (A @ x - loop).abs().max() > 0.1


@pytest.mark.parametrize("tau, leak", [(2.0, "released"), (2.0, "lif"), (3.0, "lif"), (7.5, "lif")])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_AX_matches_spikingjelly_no_reset_membrane(tau, leak, dtype):
    neuron = _sj()
    T = 24
    x = _input((T, 4, 33), 7, dtype)
    # a huge finite threshold: v_threshold=inf makes SpikingJelly's soft reset compute inf * 0 = NaN
    node = neuron.LIFNode(
        tau=tau, decay_input=True, v_reset=None, v_threshold=1e9, step_mode="m", store_v_seq=True
    ).to(dtype)
    with torch.no_grad():
        node(x)
    A, _ = F.leak_matrices(T, tau, leak, dtype=dtype)
    h = (A @ x.reshape(T, -1)).reshape(x.shape)
    tol = 1e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(h, node.v_seq, rtol=tol, atol=tol)


# ---------------------------------------------------------------------------------------------
# soft-reset identity V = A X + theta R S of a true LIF
# ---------------------------------------------------------------------------------------------
@PROPERTY
@given(T=st.integers(2, 40), tau=st.floats(1.2, 10.0), theta=st.floats(0.2, 1.5), seed=st.integers(0, 2**16))
def test_soft_reset_identity_of_a_true_lif(T, tau, theta, seed):
    x = _input((T, 40), seed, mean=0.8)
    gain, decay = F.leak_coefficients(tau, "lif")
    membrane, spikes = _lif_loop(x, gain, decay, theta, reset="subtract")
    A, R = F.leak_matrices(T, tau, "lif", dtype=x.dtype)
    torch.testing.assert_close(A @ x + theta * (R @ spikes), membrane, rtol=1e-11, atol=1e-11)


def test_soft_reset_identity_against_spikingjelly_and_fails_for_hard_reset():
    neuron = _sj()
    T, theta = 32, 0.5
    x = _input((T, 8, 64), 11)
    node = neuron.LIFNode(tau=2.0, v_reset=None, v_threshold=theta, step_mode="m", store_v_seq=True).double()
    with torch.no_grad():
        spikes = node(x)
    assert 0.05 < spikes.mean() < 0.6
    pre_reset = node.v_seq + theta * spikes  # SpikingJelly stores the membrane after the soft reset
    A, R = F.leak_matrices(T, 2.0, dtype=x.dtype)
    flat = x.reshape(T, -1)
    torch.testing.assert_close(A @ flat + theta * (R @ spikes.reshape(T, -1)), pre_reset.reshape(T, -1))
    # negative control: a hard reset is not of this form
    membrane, hard_spikes = _lif_loop(flat, 0.5, 0.5, theta, reset="zero")
    assert (A @ flat + theta * (R @ hard_spikes) - membrane).abs().max() > 0.1


# ---------------------------------------------------------------------------------------------
# providers: reference loops == GEMM
# ---------------------------------------------------------------------------------------------
@PROPERTY
@given(
    kind=st.sampled_from(F.UNITS),
    T=st.integers(1, 20),
    n=st.integers(1, 7),
    leak=st.sampled_from(F.LEAKS),
    tau=st.sampled_from([1.5, 2.0, 3.0]),
    theta=st.floats(0.1, 1.0),
    seed=st.integers(0, 2**16),
)
def test_reference_and_torch_providers_agree(kind, T, n, leak, tau, theta, seed):
    x = _input((T, 3, n), seed).requires_grad_()
    args = _args(kind, T, seed)
    args = tuple(a.clone().requires_grad_() for a in args)
    loss_weight = _input((T, 3, n), seed + 1)
    results = {}
    for backend in ("reference", "torch"):
        r = F.parallel_unit(kind, x, *args, tau=tau, threshold=theta, leak=leak, backend=backend)
        leaves = (x, *args)
        grads = torch.autograd.grad((r.spikes * loss_weight).sum() + (r.membrane * loss_weight).sum(), leaves)
        results[backend] = (r, grads)
    (ref, ref_grads), (fast, fast_grads) = results["reference"], results["torch"]
    torch.testing.assert_close(fast.membrane, ref.membrane, rtol=1e-12, atol=1e-12)
    assert_same_spikes(fast.spikes, ref.spikes, ref.membrane.detach(), theta, 1e-10)
    if torch.equal(fast.spikes, ref.spikes):
        for a, b in zip(fast_grads, ref_grads):
            torch.testing.assert_close(a, b, rtol=1e-10, atol=1e-10)


@PROPERTY
@given(
    kind=st.sampled_from(F.UNITS),
    T=st.integers(1, 40),
    chunk=st.integers(1, 6),
    tau=st.sampled_from([1.5, 2.0, 5.0]),
    leak=st.sampled_from(F.LEAKS),
    seed=st.integers(0, 2**16),
    with_state=st.booleans(),
)
def test_chunked_toeplitz_products_equal_the_reference(kind, T, chunk, tau, leak, seed, with_state):
    """The GEMM provider cuts long sequences into chunks joined by the exact carry (psu_torch.CHUNK)."""
    from snn_blockbackend.providers import psu_torch

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(psu_torch, "CHUNK", chunk)
        _check_chunked(kind, T, tau, leak, seed, with_state)


def _check_chunked(kind, T, tau, leak, seed, with_state):
    x = _input((T, 2, 5), seed).requires_grad_()
    args = tuple(a.requires_grad_() for a in _args(kind, T, seed))
    state = None
    if kind == "psu" and with_state:
        state = F.PSUState(_input((2, 5), seed + 3), torch.sigmoid(_input((2, 5), seed + 4)) * 2)
    results = [F.parallel_unit(kind, x, *args, tau=tau, leak=leak, state=state, backend=b) for b in ("reference", "torch")]
    (ref, fast) = results
    torch.testing.assert_close(fast.membrane, ref.membrane, rtol=1e-12, atol=1e-12)
    if kind == "psu":
        torch.testing.assert_close(fast.state.h, ref.state.h, rtol=1e-12, atol=1e-12)
        torch.testing.assert_close(fast.state.k, ref.state.k, rtol=1e-12, atol=1e-12)
    leaves = (x, *args)
    # allow_unused: at T = 1 RPSU's membrane does not depend on W (its reset sum over s < 0 is empty)
    grads = [torch.autograd.grad(r.membrane.sum(), leaves, allow_unused=True) for r in results]
    for leaf, a, b in zip(leaves, *grads):
        zero = torch.zeros_like(leaf)
        torch.testing.assert_close(zero if a is None else a, zero if b is None else b, rtol=1e-11, atol=1e-11)


# ---------------------------------------------------------------------------------------------
# PSU streaming: parallel == serial, chunked == whole
# ---------------------------------------------------------------------------------------------
@PROPERTY
@given(
    T=st.integers(1, 64),
    leak=st.sampled_from(F.LEAKS),
    tau=st.sampled_from([1.3, 2.0, 4.0]),
    theta=st.floats(0.1, 1.0),
    seed=st.integers(0, 2**16),
    dtype=st.sampled_from([torch.float32, torch.float64]),
)
def test_psu_parallel_equals_serial_recurrence(T, leak, tau, theta, seed, dtype):
    x = _input((T, 4, 25), seed, dtype)
    parallel = F.psu(x, tau=tau, threshold=theta, leak=leak)
    state, spikes, membranes = None, [], []
    for xt in x.unbind(0):
        out = F.psu_step(xt, state, tau=tau, threshold=theta, leak=leak)
        state = out.state
        spikes.append(out.spikes)
        membranes.append(out.membrane)
    tol = 2e-6 if dtype == torch.float32 else 1e-12
    torch.testing.assert_close(torch.stack(membranes), parallel.membrane, rtol=tol, atol=tol)
    assert_same_spikes(torch.stack(spikes), parallel.spikes, parallel.membrane, theta, tol)
    torch.testing.assert_close(state.h, parallel.state.h, rtol=tol, atol=tol)
    torch.testing.assert_close(state.k, parallel.state.k, rtol=tol, atol=tol)


def test_psu_serial_form_gives_identical_spikes_on_a_large_random_input():
    x = _input((32, 64, 256), 5, torch.float64)
    module = PSU()
    parallel = module.run(x.float())
    state, spikes = None, []
    for xt in x.float().unbind(0):
        out = module.step(xt, state)
        state = out.state
        spikes.append(out.spikes)
    spikes = torch.stack(spikes)
    assert 0.05 < parallel.spikes.mean() < 0.5
    # float32: the GEMM and the recurrence round differently, so only near-threshold entries may differ
    assert_same_spikes(spikes, parallel.spikes, parallel.membrane.detach(), 0.5, 1e-5)


@PROPERTY
@given(
    kind=st.sampled_from(LEARNED),
    T=st.integers(1, 24),
    leak=st.sampled_from(F.LEAKS),
    tau=st.sampled_from([1.5, 2.0, 3.0]),
    seed=st.integers(0, 2**16),
)
def test_learned_units_parallel_equals_step_by_step(kind, T, leak, tau, seed):
    x = _input((T, 3, 7), seed)
    weight, bias = _learned(T, seed)
    parallel = F.parallel_unit(kind, x, weight, bias, tau=tau, leak=leak)
    state, spikes, membranes = None, [], []
    for xt in x.unbind(0):
        out = F.unit_step(kind, xt, weight, bias, state, tau=tau, leak=leak)
        state = out.state
        spikes.append(out.spikes)
        membranes.append(out.membrane)
    torch.testing.assert_close(torch.stack(membranes), parallel.membrane, rtol=1e-12, atol=1e-12)
    assert_same_spikes(torch.stack(spikes), parallel.spikes, parallel.membrane, F.DEFAULT_THRESHOLD, 1e-10)
    with pytest.raises(ValueError, match=f"built for T={T} time steps and has already run {T}"):
        F.unit_step(kind, x[0], weight, bias, state)


def test_learned_module_step_matches_forward():
    module = RPSU(9).double()
    x = _input((9, 4, 5), 1)
    state, spikes = None, []
    for xt in x.unbind(0):
        out = module.step(xt, state)
        state = out.state
        spikes.append(out.spikes)
    assert_same_spikes(torch.stack(spikes), module(x), module.run(x).membrane.detach(), 0.5, 1e-10)


@PROPERTY
@given(T=st.integers(2, 40), cut=st.integers(1, 39), leak=st.sampled_from(F.LEAKS), seed=st.integers(0, 2**16),
       backend=st.sampled_from(["reference", "torch"]))  # fmt: skip
def test_psu_in_chunks_with_state_equals_one_call(T, cut, leak, seed, backend):
    cut = min(cut, T - 1)
    x = _input((T, 3, 6), seed)
    whole = F.psu(x, leak=leak, tau=3.0, backend=backend)
    first = F.psu(x[:cut], leak=leak, tau=3.0, backend=backend)
    second = F.psu(x[cut:], leak=leak, tau=3.0, state=first.state, backend=backend)
    torch.testing.assert_close(torch.cat([first.membrane, second.membrane]), whole.membrane, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(second.state.h, whole.state.h, rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(second.state.k, whole.state.k, rtol=1e-12, atol=1e-12)


# ---------------------------------------------------------------------------------------------
# relations between the units, and SpikingJelly's MaskedPSN
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("leak, tau", [("released", 2.0), ("released", 3.0), ("lif", 4.0)])
def test_special_case_reductions(leak, tau):
    T = 12
    x = _input((T, 5, 7), 2)
    A, R = F.leak_matrices(T, tau, leak, dtype=x.dtype)
    zero = torch.zeros(T, dtype=x.dtype)
    options = dict(tau=tau, leak=leak, threshold=1.0)
    psu = F.psu(x, **options)
    # RPSU and PPSU with the learned matrix set to A reduce to PSU at threshold 1 (their R is not theta-scaled)
    torch.testing.assert_close(F.rpsu(x, A, zero, **options).membrane, psu.membrane)
    torch.testing.assert_close(F.ppsu(x, A, zero, **options).membrane, psu.membrane)
    # IPSU with W = A - R is the reset-free membrane A X
    reset_free = F.ipsu(x, A - R, zero, **options).membrane
    torch.testing.assert_close(reset_free, (A @ x.reshape(T, -1)).reshape(x.shape))


@PROPERTY
@given(T=st.integers(1, 30), theta=st.floats(0.05, 2.0), seed=st.integers(0, 2**16), leak=st.sampled_from(F.LEAKS))
def test_psu_membrane_below_reset_free_and_rate_monotone_in_threshold(T, theta, seed, leak):
    x = _input((T, 200), seed)
    low = F.psu(x, threshold=theta, leak=leak, tau=2.5)
    high = F.psu(x, threshold=theta * 1.5, leak=leak, tau=2.5)
    A, _ = F.leak_matrices(T, 2.5, leak, dtype=x.dtype)
    assert bool((low.membrane <= A @ x + 1e-12).all())
    assert high.spikes.sum() <= low.spikes.sum()


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("T", [4, 10, 32])
def test_ipsu_equals_spikingjelly_masked_psn(T, dtype):
    neuron = _sj()
    theta = 0.5
    module = IPSU(T, threshold=theta).to(dtype)
    with torch.no_grad():
        module.bias.normal_(0.0, 0.2)
    x = _input((T, 16, 40), T, dtype)
    ours = module.run(x)
    masked = neuron.MaskedPSN(k=T, T=T, lambda_init=1.0, step_mode="m").to(dtype)
    _, R = F.leak_matrices(T, 2.0, dtype=dtype)
    with torch.no_grad():
        masked.weight.copy_(torch.tril(module.weight) + R)
        masked.bias.copy_((module.bias - theta)[:, None])
        theirs = masked(x)
    assert 0.05 < theirs.mean() < 0.95
    tie = 1e-5 if dtype == torch.float32 else 1e-12
    assert_same_spikes(ours.spikes, theirs, ours.membrane.detach(), theta, tie)


# ---------------------------------------------------------------------------------------------
# gradients
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("kind", F.UNITS)
@pytest.mark.parametrize("backend", ["reference", "torch"])
def test_membrane_gradients_match_finite_differences(kind, backend):
    T = 6
    x = _input((T, 2, 3), 1).requires_grad_()
    args = tuple(a.requires_grad_() for a in _args(kind, T, 1))

    def membrane(x, *args):
        return F.parallel_unit(kind, x, *args, tau=2.0, threshold=0.7, backend=backend).membrane

    assert torch.autograd.gradcheck(membrane, (x, *args))


def test_psu_input_jacobian_is_the_analytic_formula():
    T, theta = 9, 0.6
    x = _input((T, 1), 4)
    A, R = F.leak_matrices(T, 2.0, dtype=x.dtype)
    jac = torch.autograd.functional.jacobian(lambda x: F.psu(x, threshold=theta).membrane, x).reshape(T, T)
    sig = torch.sigmoid(A @ x)
    torch.testing.assert_close(jac, A + theta * R @ torch.diag((sig * (1 - sig)).flatten()) @ A)


@pytest.mark.parametrize("kind", F.UNITS)
def test_spike_gradients_are_the_atan_surrogate_with_a_learnable_slope(kind):
    """Backward through the spikes equals autograd of the smooth primal atan(pi/2 alpha m)/pi + 1/2."""
    T = 8
    x = _input((T, 3, 5), 8)
    args = _args(kind, T, 8)
    loss_weight = _input((T, 3, 5), 9)
    grads = []
    for spike in (atan_spike, atan_primal):
        xx = x.clone().requires_grad_()
        alpha = torch.tensor(2.0, dtype=x.dtype, requires_grad=True)
        leaves = (xx, alpha, *(a.clone().requires_grad_() for a in args))
        out = F.parallel_unit(kind, xx, *leaves[2:], surrogate=lambda m: spike(m, alpha)).spikes
        grads.append(torch.autograd.grad((out * loss_weight).sum(), leaves))
    for ours, primal in zip(*grads):
        assert primal.abs().sum() > 0
        torch.testing.assert_close(ours, primal, rtol=1e-12, atol=1e-12)


def test_module_alpha_learns_and_upper_triangle_gets_no_gradient():
    T = 7
    for cls in (IPSU, RPSU, PPSU):
        module = cls(T).double()
        with torch.no_grad():
            module.weight.add_(torch.triu(torch.full((T, T), 5.0), 1))  # junk above the diagonal: masked out
        x = _input((T, 4, 9), 3)
        module(x).sum().backward()
        assert torch.equal(torch.triu(module.weight.grad, 1), torch.zeros(T, T, dtype=torch.float64))
        assert module.weight.grad.abs().sum() > 0 and module.bias.grad.abs().sum() > 0
        assert module.alpha.grad is not None and module.alpha.grad != 0
        reference = F.parallel_unit(cls.kind, x, torch.tril(module.weight.detach()), module.bias.detach())
        assert torch.equal(module(x), reference.spikes)


# ---------------------------------------------------------------------------------------------
# causality
# ---------------------------------------------------------------------------------------------
@PROPERTY
@given(kind=st.sampled_from(F.UNITS), T=st.integers(2, 24), t0=st.integers(1, 23), seed=st.integers(0, 2**16),
       backend=st.sampled_from(["reference", "torch"]))  # fmt: skip
def test_output_before_t0_ignores_input_from_t0_on(kind, T, t0, seed, backend):
    t0 = min(t0, T - 1)
    x = _input((T, 3, 11), seed)
    changed = x.clone()
    changed[t0:] += _input((T - t0, 3, 11), seed + 7, std=5.0)
    args = _args(kind, T, seed)
    a = F.parallel_unit(kind, x, *args, backend=backend)
    b = F.parallel_unit(kind, changed, *args, backend=backend)
    assert torch.equal(a.membrane[:t0], b.membrane[:t0]) and torch.equal(a.spikes[:t0], b.spikes[:t0])
    assert not torch.equal(a.membrane[t0:], b.membrane[t0:])


# ---------------------------------------------------------------------------------------------
# modules, backend selection, plugins
# ---------------------------------------------------------------------------------------------
def test_learned_modules_parameters_and_init():
    module = RPSU(32)
    assert module.weight.shape == (32, 32) and torch.equal(module.bias, torch.zeros(32))
    # kaiming_normal_(fan_out, relu): std sqrt(2/T)
    assert module.weight.std().item() == pytest.approx(math.sqrt(2 / 32), rel=0.15)
    stored = sum(p.numel() for p in module.parameters())
    assert stored == 32 * 32 + 32 + 1
    assert sum(p.numel() for p in PSU().parameters()) == 1
    assert sum(p.numel() for p in PSU(learn_alpha=False).parameters()) == 0


def test_modules_accept_any_time_first_shape_and_float64():
    x = _input((5, 2, 3, 4, 4), 0)
    for module in (PSU(), IPSU(5), RPSU(5), PPSU(5)):
        module = module.double() if module.alpha is not None else module
        out = module(x)
        assert out.shape == x.shape and out.dtype == x.dtype
        assert set(out.unique().tolist()) <= {0.0, 1.0}
    assert PSU()(x).dtype == torch.float64  # float32 alpha is cast for a float64 input


class _Spy:
    def __init__(self, monkeypatch, provider_name):
        self.calls = 0
        provider = F.psu_providers()[provider_name]
        original = type(provider).run

        def run(this, *args, **kwargs):
            self.calls += 1
            return original(this, *args, **kwargs)

        monkeypatch.setattr(type(provider), "run", run)


def test_backend_precedence(monkeypatch):
    x = _input((4, 3), 0)
    reference, fast = _Spy(monkeypatch, "reference"), _Spy(monkeypatch, "torch")
    monkeypatch.delenv("SNN_BLOCKBACKEND_BACKEND", raising=False)
    F.psu(x)
    assert (reference.calls, fast.calls) == (0, 1), "auto picks the GEMM provider"
    monkeypatch.setenv("SNN_BLOCKBACKEND_BACKEND", "reference")
    F.psu(x)
    assert reference.calls == 1, "the environment variable is honoured"
    with snn_blockbackend.use_backend("torch"):
        F.psu(x)
        assert fast.calls == 2, "the process setting beats the environment"
        F.psu(x, backend="reference")
        assert reference.calls == 2, "the per-call backend beats the process setting"
    monkeypatch.delenv("SNN_BLOCKBACKEND_BACKEND")
    if "numba" in plugins.providers():
        with snn_blockbackend.use_backend("numba"):  # no PSU implementation: falls back to auto
            F.psu(x)
            assert fast.calls == 3
    with pytest.raises(ValueError, match="unknown PSU backend 'numba'"):
        F.psu(x, backend="numba")


def test_psu_providers_are_registered_plugins_and_declared_entry_points():
    assert {"reference", "torch"} <= set(F.psu_providers())
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["entry-points"]["snn_blockbackend"]
    manager = plugins.plugin_manager()
    for name in ("psu-reference", "psu-torch"):
        module = manager.get_plugin(name)
        assert module is not None and module.__name__ == declared[name]
    # the PSU providers are not neuron-engine providers (they implement a different hook)
    assert all(type(p).__module__.split(".")[-1] not in ("psu_reference", "psu_torch") for p in plugins.providers().values())


# ---------------------------------------------------------------------------------------------
# bad input
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("cls", [IPSU, RPSU, PPSU])
def test_sequence_length_must_match_the_learned_T(cls):
    module = cls(8)
    with pytest.raises(ValueError, match=r"built for T=8 time steps, but the input sequence has length 6"):
        module(torch.randn(6, 2, 3))


def test_bad_input_errors():
    x = torch.randn(5, 3)
    with pytest.raises(ValueError, match=r"leak='lif' needs tau > 1"):
        F.psu(x, tau=1.0, leak="lif")
    with pytest.raises(ValueError, match=r"leak='lif' needs tau > 1"):
        PSU(tau=0.7, leak="lif")
    with pytest.raises(ValueError, match="tau must be > 0"):
        F.psu(x, tau=0.0)
    with pytest.raises(ValueError, match="leak must be one of"):
        F.psu(x, leak="exact")
    with pytest.raises(TypeError, match="floating-point"):
        F.psu(torch.ones(5, 3, dtype=torch.int64))
    with pytest.raises(TypeError, match="floating-point"):
        IPSU(5)(torch.ones(5, 3, dtype=torch.int32))
    with pytest.raises(TypeError, match="floating-point"):
        F.psu_step(torch.ones(3, dtype=torch.int64))
    with pytest.raises(ValueError, match="time-first"):
        F.psu(torch.randn(5))
    with pytest.raises(ValueError, match="NaN or Inf"):
        F.psu(torch.tensor([[float("nan")]]))
    with pytest.raises(TypeError, match="dtype torch.float32 but the input has torch.float64"):
        IPSU(5)(x.double())
    with pytest.raises(ValueError, match="either alpha"):
        F.psu(x, alpha=2.0, surrogate=torch.sigmoid)
    with pytest.raises(ValueError, match="no streaming state"):
        F.ipsu(x, *_learned(5, 0, torch.float32), state=F.initial_state(x[0]))
    with pytest.raises(ValueError, match="expected"):
        F.psu(x, state=F.PSUState(torch.zeros(4), torch.zeros(4)))
    with pytest.raises(ValueError, match="positive int"):
        IPSU(0)
    with pytest.raises(TypeError, match="threshold"):
        F.psu(x, threshold="high")
    with pytest.raises(ValueError, match=r"weight must have shape \(T, T\)"):
        F.ipsu(x, torch.randn(5, 4), torch.zeros(5))
    with pytest.raises(ValueError, match=r"bias must have shape \(T,\)"):
        F.rpsu(x, torch.randn(5, 5), torch.zeros(5, 1))
    with pytest.raises(ValueError, match="PSU streams with psu_step"):
        F.unit_step("psu", x[0], torch.randn(5, 5), torch.zeros(5))
    with pytest.raises(ValueError, match="no learned weight"):
        F.parallel_unit("psu", x, torch.randn(5, 5), torch.zeros(5))
    with pytest.raises(ValueError, match="unknown PSU backend"):
        F.psu(x, backend="cuda-magic")


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("kind", F.UNITS)
def test_half_precision_runs_and_stays_close_to_float64(kind, dtype):
    T = 40  # > 2 chunks of the GEMM provider
    x = _input((T, 4, 16), 6)
    args = _args(kind, T, 6)
    exact = F.parallel_unit(kind, x, *args).membrane
    low = F.parallel_unit(kind, x.to(dtype), *(a.to(dtype) for a in args))
    assert low.spikes.dtype == dtype and low.membrane.dtype == dtype
    scale = exact.abs().max()
    torch.testing.assert_close(low.membrane.double(), exact, rtol=0, atol=0.05 * float(scale))
