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

CHUNK = 256  # neurons per task: long enough rows for the inner loop, many tasks for the threads

# surrogate kinds understood by the kernels (see surrogate.Surrogate.kind / args)
SURROGATE_KINDS = {"heaviside": 0, "atan": 1, "fast_sigmoid": 2, "sigmoid": 3, "multi_gaussian": 4, "boxcar": 5}


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


# Selections are written as conditional expressions on values computed unconditionally, so the inner loops
# compile to branch-free selects (three times faster than branching on random spike patterns).


@numba.njit(parallel=True, cache=True)
def lif_forward(x, v0, decay, thr, graded, entry0, L, strict, reentry_zero, reentry_subtract, post_zero, S, U, M, block_spike, v_out, entry_out, spike_out):
    T, N = x.shape
    n_chunks = (N + CHUNK - 1) // CHUNK
    for c in numba.prange(n_chunks):
        lo = c * CHUNK
        hi = min(N, lo + CHUNK)
        width = hi - lo
        v = v0[lo:hi].copy()
        entry = entry0[lo:hi].copy()
        j0 = np.full(width, L, np.int64)
        zero = decay[lo] - decay[lo]  # +0 in the input's dtype
        for t in range(T):
            k = t % L
            if k == 0 and t > 0:
                for i in range(width):
                    block_spike[t // L - 1, lo + i] = j0[i]
                    entry[i] = j0[i] if j0[i] < L else -1
                    j0[i] = L
            for i in range(width):
                n = lo + i
                held = (k < entry[i]) | (j0[i] < k)  # refractory: no input, no leak, no spike
                reentering = k == entry[i]
                d = zero if (reentry_zero and reentering) else decay[n]  # delayed reset to zero: v*0 + x
                u = v[i] * d + x[t, n]
                if reentry_subtract:  # delayed subtract: (v*decay + x) - threshold
                    subtracted = u - thr[n]
                    u = subtracted if reentering else u
                u = v[i] if held else u
                fired = (not held) & ((u > thr[n]) if strict else (u >= thr[n]))
                j0[i] = k if fired else j0[i]
                U[t, n] = u
                S[t, n] = graded[n] if fired else zero
                if post_zero:  # otherwise the reported membrane is U itself
                    u = zero if fired else u
                    M[t, n] = u
                v[i] = u
        for i in range(width):
            block_spike[(T - 1) // L, lo + i] = j0[i]
            v_out[lo + i] = v[i]
            entry_out[lo + i] = entry[i]
            spike_out[lo + i] = j0[i]


@numba.njit(parallel=True, cache=True)
def lif_backward(g_spikes, has_g_spikes, g_membrane, has_g_membrane, g_final_v, block_spike, entry0, L, U, M, v0, decay, thr, graded, reentry_zero, reentry_subtract, post_zero, sg_kind, sg_args, gx, g_v0, g_decay, g_thr, g_graded):
    T, N = U.shape
    n_chunks = (N + CHUNK - 1) // CHUNK
    for c in numba.prange(n_chunks):
        lo = c * CHUNK
        hi = min(N, lo + CHUNK)
        a = g_final_v[lo:hi].astype(np.float64)  # dL/dv after the current step
        for t in range(T - 1, -1, -1):
            b, k = t // L, t % L
            for i in range(hi - lo):
                n = lo + i
                if has_g_membrane:
                    a[i] += g_membrane[t, n]
                # the forward's masks, rebuilt from the spike positions of this block and the previous one
                j0 = block_spike[b, n]
                before = block_spike[b - 1, n] if b > 0 else L
                entry = entry0[n] if b == 0 else (before if before < L else -1)
                live = not ((k < entry) | (j0 < k))
                fired = k == j0
                reentering = k == entry
                g_u = 0.0 if (post_zero and fired) else a[i]
                if has_g_spikes:
                    g_margin = g_spikes[t, n] * graded[n] * surrogate_derivative(sg_kind, sg_args, U[t, n] - thr[n])
                    g_margin = g_margin if live else 0.0
                    g_u += g_margin
                    g_thr[n] -= g_margin
                    g_graded[n] += g_spikes[t, n] if fired else 0.0
                g_u = g_u if live else 0.0  # held steps ignore their input
                gx[t, n] = g_u
                if reentry_subtract:
                    g_thr[n] -= g_u if reentering else 0.0
                through = 0.0 if (reentry_zero and reentering) else g_u
                g_decay[n] += through * (M[t - 1, n] if t > 0 else v0[n])
                a[i] = through * decay[n] if live else a[i]  # held: v passes through unchanged
        for i in range(hi - lo):
            g_v0[lo + i] = a[i]
