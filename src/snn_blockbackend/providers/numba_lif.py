"""Compiled CPU kernels (numba) for the leaky integrate-and-fire fast path.

The same algorithm as ``torch_lif`` (blocks of L = R+1 positions, a neuron held before its re-entry position
and after its first spike in the block), compiled: one pass over the input forward, one pass backward,
neurons split into chunks across threads. Arithmetic is the reference's, operation for operation, in the
input's dtype (no fast-math, so no fused multiply-add), which keeps spikes and membranes bitwise equal.

The forward records each block's spike position per neuron (L: none); the backward rebuilds the masks
(refractory, spiked, re-entering) from it.
"""

from __future__ import annotations

import math

import numba
import numpy as np

# surrogate kinds are passed as ``surrogate.KERNEL_CODES`` (``Surrogate.kernel_code``, ``kernel_args``)


@numba.njit(cache=True, inline="always")
def _normal(x, mu, sd):
    return math.exp(-((x - mu) ** 2) / (2 * sd * sd)) / (sd * math.sqrt(2 * math.pi))


@numba.njit(cache=True)
def surrogate_derivative(kind, args, m):
    """dS/dmargin at margin m (float64 arithmetic; used only for gradients)."""
    if kind == 1:  # atan(alpha)
        a = args[0]
        return a / 2 / (1 + (math.pi / 2 * a * m) ** 2)
    if kind == 2:  # fast sigmoid / superspike (slope)
        return 1.0 / (args[0] * abs(m) + 1.0) ** 2
    if kind == 3:  # sigmoid(alpha)
        s = 1.0 / (1.0 + math.exp(-args[0] * m))
        return (1.0 - s) * s * args[0]
    if kind == 4:  # multi-Gaussian
        sigma, h, s, gamma = args[0], args[1], args[2], args[3]
        return gamma * (
            (1 + h) * _normal(m, 0.0, sigma) - h * _normal(m, sigma, s * sigma) - h * _normal(m, -sigma, s * sigma)
        )
    if kind == 5:  # boxcar(width)
        half = args[0] / 2
        return 1.0 if (m > -half and m <= half) else 0.0
    return 0.0


@numba.njit(cache=True, inline="always")
def _exp_f64_row(z, scale_bits, out):
    """out[i] = exp(z[i]) (out may be z), within one ulp of math.exp for z >= -708, in loops that vectorize
    (numba has no vector libm; a scalar exp call per element, three per step, made the multi-Gaussian
    surrogate most of the paper neurons' backward). exp(z) = 2^n * e^r, n = round(z / ln 2), r = z - n*ln 2
    (ln 2 split in two, Cody-Waite), |r| <= ln(2)/2, e^r by its degree-13 Taylor polynomial (relative error
    < 1e-17); 2^n written into the float64 exponent bits. z < -708 gives 0 (exp(-708) ~ 3e-308); z <= 0 only
    (the surrogate's exponents)."""
    width = z.shape[0]
    for i in range(width):
        zi = max(z[i], -708.0)
        n = math.floor(zi * 1.4426950408889634 + 0.5)
        r = (zi - n * 0.693147180369123816490) - n * 1.90821492927058770002e-10
        p = 1.0 + r * (1.0 + r * (1 / 2 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r * (1 / 5040 + r * (
            1 / 40320 + r * (1 / 362880 + r * (1 / 3628800 + r * (1 / 39916800 + r * (1 / 479001600 + r / 6227020800))))))))))))
        scale_bits[i] = (np.int64(n) + np.int64(1023)) << np.int64(52)
        out[i] = p if z[i] >= -708.0 else 0.0
    scale = scale_bits.view(np.float64)
    for i in range(width):
        out[i] = out[i] * scale[i]


@numba.njit(cache=True, inline="always")
def surrogate_row(kind, args, U_row, thr, live, out):
    """out[i] = surrogate_derivative(kind, args, U_row[i] - thr[i]), one branch-free loop per common kind.
    The multi-Gaussian (three exponentials, not vectorized) is evaluated at live steps only (``live[i]`` 1;
    0 elsewhere, where the callers multiply it by 0 anyway)."""
    width = out.shape[0]
    if kind == 1:  # atan(alpha)
        k0, k1 = math.pi / 2 * args[0], args[0] / 2
        for i in range(width):
            z = k0 * np.float64(U_row[i] - thr[i])
            out[i] = k1 / (1.0 + z * z)
    elif kind == 2:  # fast sigmoid / superspike (slope)
        for i in range(width):
            d = args[0] * abs(np.float64(U_row[i] - thr[i])) + 1.0
            out[i] = 1.0 / (d * d)
    elif kind == 3:  # sigmoid(alpha)
        for i in range(width):
            sig = 1.0 / (1.0 + math.exp(-args[0] * np.float64(U_row[i] - thr[i])))
            out[i] = (1.0 - sig) * sig * args[0]
    elif kind == 4:  # multi-Gaussian: gamma*((1+h)*N(m; 0, sigma) - h*N(m; sigma, s*sigma) - h*N(m; -sigma, s*sigma))
        sigma, h, gamma = args[0], args[1], args[3]
        wide = args[2] * sigma
        k0, k1 = 1.0 / (2 * sigma * sigma), 1.0 / (2 * wide * wide)
        c0 = gamma * (1 + h) / (sigma * math.sqrt(2 * math.pi))
        c1 = gamma * h / (wide * math.sqrt(2 * math.pi))
        # the three exponentials of every step (refractory ones too: vectorized that is cheaper than a branch)
        centre, left, right = np.empty(width), np.empty(width), np.empty(width)
        for i in range(width):
            m = np.float64(U_row[i] - thr[i])
            centre[i], left[i], right[i] = -m * m * k0, -((m - sigma) ** 2) * k1, -((m + sigma) ** 2) * k1
        bits = np.empty(width, np.int64)
        _exp_f64_row(centre, bits, centre)
        _exp_f64_row(left, bits, left)
        _exp_f64_row(right, bits, right)
        for i in range(width):  # a refractory step's surrogate is never used: 0 there
            out[i] = (c0 * centre[i] - c1 * (left[i] + right[i])) if live[i] != 0.0 else 0.0
    else:
        for i in range(width):
            out[i] = surrogate_derivative(kind, args, np.float64(U_row[i] - thr[i]))


# Selections are written as conditional expressions on values computed unconditionally (every load first,
# then selects only), so the inner loops compile to branch-free, vectorizable selects (a branch on a random
# spike pattern would mispredict). Each time step works on row views of one chunk of neurons; a chunk is as
# wide as ``numba_neurons.chunk_width`` makes it (one per thread, long contiguous rows).


@numba.njit(parallel=True, cache=True)
def lif_forward(x, v0, decay, thr, graded, entry0, L, strict, reentry_zero, reentry_subtract, post_zero, chunk, S, U, M, block_spike, v_out, entry_out, spike_out):
    """M (the post-reset membrane) is written only with ``post_zero``; otherwise the membrane is U."""
    T, N = x.shape
    n_chunks = (N + chunk - 1) // chunk
    for c in numba.prange(n_chunks):
        lo = c * chunk
        hi = min(N, lo + chunk)
        width = hi - lo
        v = v0[lo:hi].copy()
        entry = entry0[lo:hi].copy()
        j0 = np.full(width, L, np.int64)
        dec, th, gr = decay[lo:hi].copy(), thr[lo:hi].copy(), graded[lo:hi].copy()
        scratch = np.empty(width, v.dtype)  # M's row when M is not kept (no aliasing with U)
        zero = decay[lo] - decay[lo]  # +0 in the input's dtype
        for t in range(T):
            k = t % L
            # at a block's last step each neuron records its spike position (L: none) and sets up the next
            # block: re-entry at that position (-1: none), no spike yet (in the step loop: no separate pass)
            block_end = (k == L - 1) & (t < T - 1)
            x_row, U_row, S_row, spike_row = x[t, lo:hi], U[t, lo:hi], S[t, lo:hi], block_spike[t // L, lo:hi]
            M_row = M[t, lo:hi] if post_zero else scratch
            for i in range(width):
                e, j, v_i, x_i, d_i, t_i, g_i = entry[i], j0[i], v[i], x_row[i], dec[i], th[i], gr[i]
                held = (k < e) | (j < k)  # refractory: no input, no leak, no spike
                # the delayed reset is owed where the previous state crossed the threshold: after a spike
                # that is the held spike value; an initial state mid-refractory may not owe one
                reentering = (k == e) & ((v_i > t_i) if strict else (v_i >= t_i))
                d = zero if (reentry_zero and reentering) else d_i  # delayed reset to zero: v*0 + x
                u = v_i * d + x_i
                subtracted = u - t_i  # delayed subtract: (v*decay + x) - threshold
                u = subtracted if (reentry_subtract and reentering) else u
                u = v_i if held else u
                fired = (not held) & ((u > t_i) if strict else (u >= t_i))
                j = k if fired else j
                spike_row[i] = j
                j0[i] = L if block_end else j
                entry[i] = (j if j < L else -1) if block_end else e
                U_row[i] = u
                S_row[i] = g_i if fired else zero
                u = zero if (post_zero and fired) else u  # otherwise the reported membrane is U itself
                M_row[i] = u
                v[i] = u
        for i in range(width):
            v_out[lo + i] = v[i]
            entry_out[lo + i] = entry[i]
            spike_out[lo + i] = j0[i]


@numba.njit(parallel=True, cache=True)
def lif_backward(g_spikes, spikes_uniform, has_g_spikes, g_membrane, membrane_uniform, g_final_v, block_spike, entry0, L, U, M, v0, decay, thr, graded, strict, reentry_zero, reentry_subtract, post_zero, sg_kind, sg_args, chunk, gx, g_v0, g_decay, g_thr, g_graded):
    """BPTT of ``lif_forward``, float64 accumulation. An output gradient that is the same at every step (an
    unused output: zeros; the gradient of a ``.sum()``: ones) comes in as one row with its ``*_uniform``
    flag. Masks are float 0/1 values and selections are products (``p*m + q*(1 - m)``, exact for finite
    values), so the inner loop has no branches and vectorizes."""
    T, N = U.shape
    n_chunks = (N + chunk - 1) // chunk
    # the profile's switches as 0/1 factors
    st, rz = 1.0 if strict else 0.0, 1.0 if reentry_zero else 0.0
    rs, pz = 1.0 if reentry_subtract else 0.0, 1.0 if post_zero else 0.0
    for c in numba.prange(n_chunks):
        lo = c * chunk
        hi = min(N, lo + chunk)
        width = hi - lo
        a = g_final_v[lo:hi].astype(np.float64)  # dL/dv after the current step
        dec, gr = decay[lo:hi].astype(np.float64), graded[lo:hi].astype(np.float64)
        th, e0 = thr[lo:hi].copy(), entry0[lo:hi].copy()
        gd, gt, gg, sgd = np.zeros(width), np.zeros(width), np.zeros(width), np.zeros(width)
        entry, spike = np.empty(width), np.empty(width)  # the current block's live window: entry..spike
        live_row = np.empty(width)
        e0f, Lf = e0.astype(np.float64), np.float64(L)
        for t in range(T - 1, -1, -1):
            b, k = t // L, t % L
            if t == T - 1 or k == L - 1:  # a new block (going backwards): rebuild its window once
                spike_row = block_spike[b, lo:hi]
                for i in range(width):
                    spike[i] = np.float64(spike_row[i])
                if b > 0:  # re-entry at the previous block's spike position (-1: none)
                    before_row = block_spike[b - 1, lo:hi]
                    for i in range(width):
                        before = np.float64(before_row[i])
                        entry[i] = before if before < Lf else -1.0
                else:
                    entry[:] = e0f
            U_row, gx_row = U[t, lo:hi], gx[t, lo:hi]
            gs_row = g_spikes[0 if spikes_uniform else t, lo:hi]
            gm_row = g_membrane[0 if membrane_uniform else t, lo:hi]
            v_row = M[t - 1, lo:hi] if t > 0 else v0[lo:hi]
            kf = np.float64(k)
            for i in range(width):
                live_row[i] = np.float64((kf >= entry[i]) & (kf <= spike[i]))
            if has_g_spikes:
                surrogate_row(sg_kind, sg_args, U_row, th, live_row, sgd)
            for i in range(width):
                live = live_row[i]
                fired = np.float64(kf == spike[i])
                v_prev = np.float64(v_row[i])
                crossed = st * np.float64(v_prev > th[i]) + (1.0 - st) * np.float64(v_prev >= th[i])
                reentering = np.float64(kf == entry[i]) * crossed  # see the forward
                a_i = a[i] + np.float64(gm_row[i])
                g_spike = np.float64(gs_row[i])
                g_margin = g_spike * gr[i] * sgd[i] * live
                g_u = (a_i * (1.0 - pz * fired) + g_margin) * live  # held steps ignore their input
                gx_row[i] = g_u
                gt[i] -= g_margin + rs * reentering * g_u
                gg[i] += g_spike * fired
                through = g_u * (1.0 - rz * reentering)
                gd[i] += through * v_prev
                a[i] = through * dec[i] * live + a_i * (1.0 - live)  # held: v passes through unchanged
        for i in range(width):
            g_v0[lo + i] = a[i]
            g_decay[lo + i] = gd[i]
            g_thr[lo + i] = gt[i]
            g_graded[lo + i] = gg[i]
