"""Triton kernels for the leaky integrate-and-fire fast path and the paper's adaptive LIF (GPU; CPU tensors
under ``TRITON_INTERPRET=1``).

The algorithm of ``numba_lif`` (blocks of L = R+1 positions, a neuron held before its re-entry position and
after its first spike in the block), one program per group of neurons, each looping over the time steps:
one pass over the input forward, one pass backward. Arithmetic is the reference's, operation for
operation, in the input's dtype; the launches pass ``enable_fp_fusion=False`` so the compiler never fuses
``v*decay + x`` into a multiply-add (the reference rounds the product first). The backward accumulates in
float64, with the surrogate constants computed on the host in float64 (a literal in a kernel is float32).

The LIF forward records each block's spike position per neuron (L: none); the backward rebuilds the masks
(refractory, spiked, re-entering) from it. The ALIF forward (``numba_alif``'s algorithm) stores one flag byte
per step and neuron (refractory / live / spiked) and the adaptation.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from ..kernels import codegen

try:  # the interpreter runs kernels on CPU tensors (TRITON_INTERPRET=1, read when a kernel is defined)
    from triton.runtime.interpreter import InterpretedFunction
except ImportError:  # pragma: no cover - older layouts
    InterpretedFunction = ()


@triton.jit
def lif_forward(
    x_ptr, v0_ptr, decay_ptr, thr_ptr, graded_ptr, entry0_ptr,
    S_ptr, U_ptr, M_ptr, block_spike_ptr, v_out_ptr, entry_out_ptr, spike_out_ptr,
    T, N, L,
    STRICT: tl.constexpr, REENTRY_ZERO: tl.constexpr, REENTRY_SUBTRACT: tl.constexpr, POST_ZERO: tl.constexpr,
    BLOCK: tl.constexpr,
):  # fmt: skip
    """M (the post-reset membrane) is written only with ``POST_ZERO``; otherwise the membrane is U."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    entry = tl.load(entry0_ptr + offs, mask=mask, other=-1)
    dec = tl.load(decay_ptr + offs, mask=mask, other=0.0)
    th = tl.load(thr_ptr + offs, mask=mask, other=1.0)
    gr = tl.load(graded_ptr + offs, mask=mask, other=0.0)
    zero = tl.zeros_like(v)
    j0 = tl.full([BLOCK], L, tl.int32)  # this block's spike position so far (L: none)
    N64 = tl.cast(N, tl.int64)  # row offsets in 64 bits (T*N may exceed 2^31)
    for t in range(0, T):
        k = t % L
        # at a block's last step each neuron sets up the next block: re-entry at its spike position (-1: none)
        block_end = (k == L - 1) & (t < T - 1)
        row = t * N64 + offs
        x = tl.load(x_ptr + row, mask=mask, other=0.0)
        held = (k < entry) | (j0 < k)  # refractory: no input, no leak, no spike
        # the delayed reset is owed where the previous state crossed the threshold: after a spike that is
        # the held spike value
        if STRICT:
            reentering = (k == entry) & (v > th)
        else:
            reentering = (k == entry) & (v >= th)
        d = dec
        if REENTRY_ZERO:
            d = tl.where(reentering, zero, dec)  # delayed reset to zero: v*0 + x
        u = v * d + x
        if REENTRY_SUBTRACT:
            u = tl.where(reentering, u - th, u)  # (v*decay + x) - threshold
        u = tl.where(held, v, u)
        if STRICT:
            fired = (u > th) & (held == 0)
        else:
            fired = (u >= th) & (held == 0)
        j = tl.where(fired, k, j0)
        if (k == L - 1) | (t == T - 1):  # the block's spike position, once per block
            tl.store(block_spike_ptr + (t // L) * N64 + offs, j, mask=mask)
        j0 = tl.where(block_end, L, j)
        entry = tl.where(block_end, tl.where(j < L, j, -1), entry)
        tl.store(U_ptr + row, u, mask=mask)
        tl.store(S_ptr + row, tl.where(fired, gr, zero), mask=mask)
        if POST_ZERO:
            u = tl.where(fired, zero, u)
            tl.store(M_ptr + row, u, mask=mask)
        v = u
    tl.store(v_out_ptr + offs, v, mask=mask)
    tl.store(entry_out_ptr + offs, entry, mask=mask)
    tl.store(spike_out_ptr + offs, j0, mask=mask)


@triton.jit
def _surrogate_derivative(m, c_ptr, KIND: tl.constexpr):
    """dS/dmargin at float64 margins ``m``; ``c_ptr``: the kind's float64 constants (``surrogate_constants``)."""
    if KIND == 1:  # atan: c0 = pi/2*alpha, c1 = alpha/2
        z = tl.load(c_ptr) * m
        out = tl.load(c_ptr + 1) / (1.0 + z * z)
    elif KIND == 2:  # fast sigmoid: c0 = slope
        d = tl.load(c_ptr) * tl.abs(m) + 1.0
        out = 1.0 / (d * d)
    elif KIND == 3:  # sigmoid: c0 = alpha
        alpha = tl.load(c_ptr)
        s = 1.0 / (1.0 + tl.exp(-alpha * m))
        out = (1.0 - s) * s * alpha
    elif KIND == 4:  # multi-Gaussian: c = sigma, 1/(2 sigma^2), 1/(2 wide^2), gamma(1+h)/(sigma sqrt(2 pi)), gamma h/(wide sqrt(2 pi))
        sigma = tl.load(c_ptr)
        side = tl.exp(-(m - sigma) * (m - sigma) * tl.load(c_ptr + 2)) + tl.exp(-(m + sigma) * (m + sigma) * tl.load(c_ptr + 2))
        out = tl.load(c_ptr + 3) * tl.exp(-m * m * tl.load(c_ptr + 1)) - tl.load(c_ptr + 4) * side
    elif KIND == 5:  # boxcar: c0 = width/2
        half = tl.load(c_ptr)
        out = tl.where((m > -half) & (m <= half), 1.0, 0.0).to(tl.float64)
    else:  # heaviside: no gradient
        out = m * 0.0
    return out


@triton.jit
def lif_backward(
    gs_ptr, gs_stride, gm_ptr, gm_stride, g_final_v_ptr, block_spike_ptr, entry0_ptr, U_ptr, M_ptr, v0_ptr,
    decay_ptr, thr_ptr, graded_ptr, sg_ptr,
    gx_ptr, g_v0_ptr, g_decay_ptr, g_thr_ptr, g_graded_ptr,
    T, N, L,
    HAS_G_SPIKES: tl.constexpr, STRICT: tl.constexpr, REENTRY_ZERO: tl.constexpr, REENTRY_SUBTRACT: tl.constexpr,
    POST_ZERO: tl.constexpr, SG_KIND: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """BPTT of ``lif_forward`` in float64. An output gradient that is the same at every step (an unused
    output: zeros; the gradient of a ``.sum()``) comes in as one row with row stride 0."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    a = tl.load(g_final_v_ptr + offs, mask=mask, other=0.0).to(tl.float64)  # dL/dv after the current step
    dec = tl.load(decay_ptr + offs, mask=mask, other=0.0).to(tl.float64)
    gr = tl.load(graded_ptr + offs, mask=mask, other=0.0).to(tl.float64)
    th = tl.load(thr_ptr + offs, mask=mask, other=1.0)
    e0 = tl.load(entry0_ptr + offs, mask=mask, other=-1)
    v0 = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    g_decay = tl.zeros([BLOCK], tl.float64)
    g_thr = tl.zeros([BLOCK], tl.float64)
    g_graded = tl.zeros([BLOCK], tl.float64)
    N64 = tl.cast(N, tl.int64)  # row offsets in 64 bits (T*N may exceed 2^31)
    for step in range(0, T):
        t = T - 1 - step
        b = t // L
        k = t % L
        row = t * N64 + offs
        # the block's live window: entry (the previous block's spike position; -1: none) ..spike
        spike = tl.load(block_spike_ptr + b * N64 + offs, mask=mask, other=L)
        before = tl.load(block_spike_ptr + tl.maximum(b - 1, 0) * N64 + offs, mask=mask, other=L)
        entry = tl.where(b > 0, tl.where(before < L, before, -1), e0)
        live = ((k >= entry) & (k <= spike)).to(tl.float64)
        fired = (k == spike).to(tl.float64)
        v_prev = tl.load(M_ptr + tl.maximum(t - 1, 0) * N64 + offs, mask=mask, other=0.0)
        v_prev = tl.where(t > 0, v_prev, v0)
        if STRICT:
            reentering = ((k == entry) & (v_prev > th)).to(tl.float64)
        else:
            reentering = ((k == entry) & (v_prev >= th)).to(tl.float64)
        a_t = a + tl.load(gm_ptr + t * tl.cast(gm_stride, tl.int64) + offs, mask=mask, other=0.0).to(tl.float64)
        if POST_ZERO:
            g_u = a_t * (1.0 - fired)
        else:
            g_u = a_t
        if HAS_G_SPIKES:
            g_spike = tl.load(gs_ptr + t * tl.cast(gs_stride, tl.int64) + offs, mask=mask, other=0.0).to(tl.float64)
            U = tl.load(U_ptr + row, mask=mask, other=0.0)
            g_margin = g_spike * gr * _surrogate_derivative((U - th).to(tl.float64), sg_ptr, SG_KIND) * live
            g_u = (g_u + g_margin) * live  # held steps ignore their input
            g_thr -= g_margin
            g_graded += g_spike * fired
        else:
            g_u = g_u * live
        tl.store(gx_ptr + row, g_u.to(gx_ptr.dtype.element_ty), mask=mask)
        if REENTRY_SUBTRACT:
            g_thr -= reentering * g_u
        through = g_u
        if REENTRY_ZERO:
            through = g_u * (1.0 - reentering)
        g_decay += through * v_prev.to(tl.float64)
        a = through * dec * live + a_t * (1.0 - live)  # held: v passes through unchanged
    tl.store(g_v0_ptr + offs, a, mask=mask)
    tl.store(g_decay_ptr + offs, g_decay, mask=mask)
    tl.store(g_thr_ptr + offs, g_thr, mask=mask)
    tl.store(g_graded_ptr + offs, g_graded, mask=mask)


def interpreted() -> bool:
    """Whether the kernels run in Triton's interpreter (CPU tensors) rather than compiled for a GPU."""
    return isinstance(lif_forward, InterpretedFunction) if InterpretedFunction else False


def surrogate_constants(surrogate, device) -> torch.Tensor:
    """The float64 constants ``_surrogate_derivative`` reads for ``surrogate`` (the generated kernels' table,
    ``kernels.codegen.surrogate_constants``)."""
    return torch.tensor(codegen.surrogate_constants(surrogate.kind, surrogate.args), dtype=torch.float64, device=device)


@triton.jit
def alif_forward(
    x_ptr, v0_ptr, a0_ptr, countdown0_ptr, beta_ptr, thr_ptr, decay_a_ptr, strength_ptr,
    S_ptr, M_ptr, A_ptr, F_ptr, v_out_ptr, a_out_ptr, countdown_out_ptr,
    T, N, R, BLOCK: tl.constexpr,
):  # fmt: skip
    """The paper's adaptive LIF (``numba_alif.alif_forward``), per step and neuron::

        h = beta*v + x;  theta = threshold + strength*a;  a' = decay_a*a
        spike = h - theta > 0 (not while refractory);  v = h*(1 - spike) (held while refractory);  a = a' + spike
    """
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    v = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    a = tl.load(a0_ptr + offs, mask=mask, other=0.0)
    countdown = tl.load(countdown0_ptr + offs, mask=mask, other=0)
    beta = tl.load(beta_ptr + offs, mask=mask, other=0.0)
    thr = tl.load(thr_ptr + offs, mask=mask, other=1.0)
    decay_a = tl.load(decay_a_ptr + offs, mask=mask, other=0.0)
    strength = tl.load(strength_ptr + offs, mask=mask, other=0.0)
    zero = tl.zeros_like(v)
    one = zero + 1.0
    N64 = tl.cast(N, tl.int64)
    for t in range(0, T):
        row = t * N64 + offs
        x = tl.load(x_ptr + row, mask=mask, other=0.0)
        h = beta * v + x
        theta = thr + strength * a
        charged_a = decay_a * a
        live = countdown <= 0
        fired = live & (h - theta > 0)
        spike = tl.where(fired, one, zero)
        u = tl.where(live, h * (one - spike), v)
        a = charged_a + spike  # refractory: the charged adaptation (+ 0)
        tl.store(S_ptr + row, spike, mask=mask)
        tl.store(M_ptr + row, u, mask=mask)
        tl.store(A_ptr + row, a, mask=mask)
        tl.store(F_ptr + row, live.to(tl.int8) + fired.to(tl.int8), mask=mask)  # 0 refractory, 1 live, 2 spiked
        countdown = tl.where(fired, R, tl.maximum(countdown - 1, 0))
        v = u
    tl.store(v_out_ptr + offs, v, mask=mask)
    tl.store(a_out_ptr + offs, a, mask=mask)
    tl.store(countdown_out_ptr + offs, countdown, mask=mask)


@triton.jit
def alif_backward(
    gs_ptr, gs_stride, gm_ptr, gm_stride, g_final_v_ptr, g_final_a_ptr, x_ptr, M_ptr, A_ptr, v0_ptr, a0_ptr, F_ptr,
    beta_ptr, thr_ptr, decay_a_ptr, strength_ptr, sg_ptr,
    gx_ptr, g_v0_ptr, g_a0_ptr, g_beta_ptr, g_thr_ptr, g_decay_a_ptr, g_strength_ptr,
    T, N, SG_KIND: tl.constexpr, BLOCK: tl.constexpr,
):  # fmt: skip
    """BPTT of ``alif_forward`` in float64 (``numba_alif.alif_backward``); the margin is recomputed bitwise in
    the input dtype from the stored states."""
    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < N
    beta = tl.load(beta_ptr + offs, mask=mask, other=0.0)
    thr = tl.load(thr_ptr + offs, mask=mask, other=1.0)
    decay_a = tl.load(decay_a_ptr + offs, mask=mask, other=0.0)
    strength = tl.load(strength_ptr + offs, mask=mask, other=0.0)
    v0 = tl.load(v0_ptr + offs, mask=mask, other=0.0)
    a0 = tl.load(a0_ptr + offs, mask=mask, other=0.0)
    av = tl.load(g_final_v_ptr + offs, mask=mask, other=0.0).to(tl.float64)  # dL/dv after the current step
    aa = tl.load(g_final_a_ptr + offs, mask=mask, other=0.0).to(tl.float64)  # dL/da after the current step
    g_beta = tl.zeros([BLOCK], tl.float64)
    g_thr = tl.zeros([BLOCK], tl.float64)
    g_decay_a = tl.zeros([BLOCK], tl.float64)
    g_strength = tl.zeros([BLOCK], tl.float64)
    N64 = tl.cast(N, tl.int64)
    for step in range(0, T):
        t = T - 1 - step
        row = t * N64 + offs
        before = tl.maximum(t - 1, 0) * N64 + offs
        v_prev = tl.where(t > 0, tl.load(M_ptr + before, mask=mask, other=0.0), v0)
        a_prev = tl.where(t > 0, tl.load(A_ptr + before, mask=mask, other=0.0), a0)
        x = tl.load(x_ptr + row, mask=mask, other=0.0)
        flag = tl.load(F_ptr + row, mask=mask, other=0)
        live = (flag != 0).to(tl.float64)
        spike = (flag == 2).to(tl.float64)
        margin = (beta * v_prev + x) - (thr + strength * a_prev)
        sgd = _surrogate_derivative(margin.to(tl.float64), sg_ptr, SG_KIND)
        a_v = av + tl.load(gm_ptr + t * tl.cast(gm_stride, tl.int64) + offs, mask=mask, other=0.0).to(tl.float64)
        g_out = tl.load(gs_ptr + t * tl.cast(gs_stride, tl.int64) + offs, mask=mask, other=0.0).to(tl.float64)
        g_margin = (g_out + aa) * sgd * live  # the emitted spike and a' + spike
        g_h = (a_v * (1.0 - spike) + g_margin) * live  # the reset's spike factor is detached
        tl.store(gx_ptr + row, g_h.to(gx_ptr.dtype.element_ty), mask=mask)
        v_prev64 = v_prev.to(tl.float64)
        a_prev64 = a_prev.to(tl.float64)
        g_beta += g_h * v_prev64
        g_thr -= g_margin
        g_strength -= g_margin * a_prev64
        g_decay_a += aa * a_prev64
        av = g_h * beta.to(tl.float64) + a_v * (1.0 - live)  # refractory: v passes through unchanged
        aa = aa * decay_a.to(tl.float64) - g_margin * strength.to(tl.float64)
    tl.store(g_v0_ptr + offs, av, mask=mask)
    tl.store(g_a0_ptr + offs, aa, mask=mask)
    tl.store(g_beta_ptr + offs, g_beta, mask=mask)
    tl.store(g_thr_ptr + offs, g_thr, mask=mask)
    tl.store(g_decay_a_ptr + offs, g_decay_a, mask=mask)
    tl.store(g_strength_ptr + offs, g_strength, mask=mask)
