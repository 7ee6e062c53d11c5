"""Compiled CPU kernels (numba) for the paper's adaptive LIF (``profiles.PaperALIF``, ``BlockALIF``).

Per time step and neuron, exactly as the sequential reference runs the profile::

    h     = beta*v + x                     # charged membrane
    theta = threshold + strength*a         # adaptive threshold, from the adaptation before the step
    a'    = decay_a*a                      # charged adaptation
    spike = h - theta > 0                  # no spike while refractory
    v     = h*(1 - spike)                  # detached reset to zero; held (unchanged) while refractory
    a     = a' + spike                     # not detached: the surrogate gradient flows through a
    refractory countdown = R after a spike, else max(countdown - 1, 0)

Arithmetic is in the input's dtype, operation for operation (no fast-math, so no fused multiply-add): spikes,
membranes and adaptation are bitwise equal to the reference. The forward stores the post-step adaptation and
one flag byte per step and neuron (refractory / live / spiked); the backward recomputes charge and margin from
the stored states and runs BPTT in float64 with branch-free 0/1 factors (see ``numba_lif.lif_backward``).
"""

from __future__ import annotations

import numba
import numpy as np

from .numba_lif import surrogate_row
from .numba_neurons import REFRACTORY, SPIKED


@numba.njit(parallel=True, cache=True)
def alif_forward(x, v0, a0, countdown0, beta, thr, decay_a, strength, R, chunk, S, M, A, F, v_out, a_out, countdown_out):
    T, N = x.shape
    n_chunks = (N + chunk - 1) // chunk
    for c in numba.prange(n_chunks):
        lo = c * chunk
        hi = min(N, lo + chunk)
        width = hi - lo
        v, a, countdown = v0[lo:hi].copy(), a0[lo:hi].copy(), countdown0[lo:hi].copy()
        be, th, da, st = beta[lo:hi].copy(), thr[lo:hi].copy(), decay_a[lo:hi].copy(), strength[lo:hi].copy()
        zero = th[0] - th[0]  # +0 in the input's dtype
        one = zero + np.float32(1)
        for t in range(T):
            x_row, S_row, M_row, A_row, F_row = x[t, lo:hi], S[t, lo:hi], M[t, lo:hi], A[t, lo:hi], F[t, lo:hi]
            for i in range(width):
                # every value first, then selects only (a branch on a random spike pattern would mispredict)
                v_i, a_i, count = v[i], a[i], countdown[i]
                h = be[i] * v_i + x_row[i]
                theta = th[i] + st[i] * a_i
                charged_a = da[i] * a_i
                live = count <= 0
                fired = live & (h - theta > 0)
                spike = one if fired else zero
                after = h * (one - spike)
                u = after if live else v_i
                a_new = charged_a + spike  # refractory: the charged adaptation (+ 0)
                S_row[i] = spike
                M_row[i] = u
                A_row[i] = a_new
                F_row[i] = np.uint8(live) + np.uint8(fired)  # REFRACTORY, LIVE or SPIKED
                countdown[i] = R if fired else max(count - 1, 0)
                v[i] = u
                a[i] = a_new
        for i in range(width):
            v_out[lo + i] = v[i]
            a_out[lo + i] = a[i]
            countdown_out[lo + i] = countdown[i]


@numba.njit(parallel=True, cache=True)
def alif_backward(g_spikes, spikes_uniform, g_membrane, membrane_uniform, g_final_v, g_final_a, x, M, A, v0, a0, F, beta, thr, decay_a, strength, sg_kind, sg_args, chunk, gx, g_v0, g_a0, g_beta, g_thr, g_decay_a, g_strength):
    """BPTT of ``alif_forward`` in float64. An output gradient that is the same at every step comes in as
    one row with its ``*_uniform`` flag (see ``numba_lif.lif_backward``)."""
    T, N = x.shape
    n_chunks = (N + chunk - 1) // chunk
    for c in numba.prange(n_chunks):
        lo = c * chunk
        hi = min(N, lo + chunk)
        width = hi - lo
        be, th, da, st = beta[lo:hi].copy(), thr[lo:hi].copy(), decay_a[lo:hi].copy(), strength[lo:hi].copy()
        be64, da64, st64 = be.astype(np.float64), da.astype(np.float64), st.astype(np.float64)
        av = g_final_v[lo:hi].astype(np.float64)  # dL/dv after the current step
        aa = g_final_a[lo:hi].astype(np.float64)  # dL/da after the current step
        margin, no_offset = np.empty(width, dtype=x.dtype), np.zeros(width, dtype=x.dtype)
        sgd, live_row = np.empty(width), np.empty(width)
        gb, gt, gd, gs = np.zeros(width), np.zeros(width), np.zeros(width), np.zeros(width)
        for t in range(T - 1, -1, -1):
            v_row = M[t - 1, lo:hi] if t > 0 else v0[lo:hi]
            a_row = A[t - 1, lo:hi] if t > 0 else a0[lo:hi]
            x_row, F_row, gx_row = x[t, lo:hi], F[t, lo:hi], gx[t, lo:hi]
            gs_row = g_spikes[0 if spikes_uniform else t, lo:hi]
            gm_row = g_membrane[0 if membrane_uniform else t, lo:hi]
            for i in range(width):  # the forward's margin, recomputed bitwise in the input dtype
                margin[i] = (be[i] * v_row[i] + x_row[i]) - (th[i] + st[i] * a_row[i])
                live_row[i] = np.float64(F_row[i] != REFRACTORY)
            surrogate_row(sg_kind, sg_args, margin, no_offset, live_row, sgd)
            for i in range(width):
                flag = F_row[i]
                live = live_row[i]
                spike = np.float64(flag == SPIKED)
                a_v = av[i] + np.float64(gm_row[i])
                a_a = aa[i]
                g_margin = (np.float64(gs_row[i]) + a_a) * sgd[i] * live  # emitted spike and a' + spike
                g_h = (a_v * (1.0 - spike) + g_margin) * live  # the reset's spike factor is detached
                gx_row[i] = g_h
                v_prev, a_prev = np.float64(v_row[i]), np.float64(a_row[i])
                gb[i] += g_h * v_prev
                gt[i] -= g_margin
                gs[i] -= g_margin * a_prev
                gd[i] += a_a * a_prev
                av[i] = g_h * be64[i] + a_v * (1.0 - live)  # refractory: v passes through unchanged
                aa[i] = a_a * da64[i] - g_margin * st64[i]
        for i in range(width):
            g_v0[lo + i] = av[i]
            g_a0[lo + i] = aa[i]
            g_beta[lo + i] = gb[i]
            g_thr[lo + i] = gt[i]
            g_decay_a[lo + i] = gd[i]
            g_strength[lo + i] = gs[i]

