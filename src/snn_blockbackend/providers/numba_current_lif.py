"""Compiled CPU kernels (numba) for the current-based LIF (Norse ``LIFCell``, profile ``norse_lif``).

Per time step and neuron, exactly as the sequential reference runs the profile (rates evaluated first,
as Norse does: ``rate_m = dt*tau_mem_inv``, ``rate_s = -dt*tau_syn_inv``)::

    j  = i + x                             # version 1.1; version 1.0: j = i (the input joins after the update)
    v' = v + rate_m*((v_leak - v) + j)
    i' = j + rate_s*j                      # version 1.0: (j + rate_s*j) + x
    spike = v' - v_th > 0                  # no spike while refractory
    v  = (1 - spike)*v' + spike*v_reset    # not detached; held (unchanged) while refractory
    i  = i'                                # keeps integrating while refractory
    refractory countdown = R after a spike, else max(countdown - 1, 0)

Arithmetic is in the input's dtype, operation for operation (no fast-math, so no fused multiply-add): spikes,
membranes and currents are bitwise equal to the reference. The forward stores the current after each step
and one flag byte per step and neuron; the backward recomputes the charge and margin from the stored states
and runs BPTT in float64 (the surrogate in the input dtype, as autograd evaluates it in the reference), with
branch-free 0/1 factors.
"""

from __future__ import annotations

import numba
import numpy as np

from .numba_neurons import REFRACTORY, SPIKED, _surrogate_row


@numba.njit(parallel=True, cache=True)
def current_lif_forward(x, v0, i0, countdown0, rate_m, rate_s, v_leak, v_th, v_reset, input_after, R, chunk, S, M, I, F, v_out, i_out, countdown_out):
    T, N = x.shape
    n_chunks = (N + chunk - 1) // chunk
    for c in numba.prange(n_chunks):
        lo = c * chunk
        hi = min(N, lo + chunk)
        width = hi - lo
        v, cur, countdown = v0[lo:hi].copy(), i0[lo:hi].copy(), countdown0[lo:hi].copy()
        rm, rs, vl, vt, vr = rate_m[lo:hi].copy(), rate_s[lo:hi].copy(), v_leak[lo:hi].copy(), v_th[lo:hi].copy(), v_reset[lo:hi].copy()
        zero = vt[0] - vt[0]  # +0 in the input's dtype
        one = zero + np.float32(1)
        for t in range(T):
            x_row, S_row, M_row, I_row, F_row = x[t, lo:hi], S[t, lo:hi], M[t, lo:hi], I[t, lo:hi], F[t, lo:hi]
            for i in range(width):
                # every value first, then selects only (a branch on a random spike pattern would mispredict)
                v_i, x_i, count = v[i], x_row[i], countdown[i]
                j = cur[i] if input_after else cur[i] + x_i
                charged_v = v_i + rm[i] * ((vl[i] - v_i) + j)
                charged_i = j + rs[i] * j
                charged_i = charged_i + x_i if input_after else charged_i
                live = count <= 0
                fired = live & (charged_v - vt[i] > 0)
                spike = one if fired else zero
                after = (one - spike) * charged_v + spike * vr[i]
                u = after if live else v_i
                S_row[i] = spike
                M_row[i] = u
                I_row[i] = charged_i
                F_row[i] = np.uint8(live) + np.uint8(fired)  # REFRACTORY, LIVE or SPIKED
                countdown[i] = R if fired else max(count - 1, 0)
                v[i] = u
                cur[i] = charged_i
        for i in range(width):
            v_out[lo + i] = v[i]
            i_out[lo + i] = cur[i]
            countdown_out[lo + i] = countdown[i]


@numba.njit(parallel=True, cache=True)
def current_lif_backward(g_spikes, spikes_uniform, g_membrane, membrane_uniform, g_final_v, g_final_i, x, M, I, v0, i0, F, rate_m, rate_s, v_leak, v_th, v_reset, input_after, sg_kind, sg_args, sg_consts, chunk, gx, g_v0, g_i0, g_rate_m, g_rate_s, g_v_leak, g_v_th, g_v_reset):
    """BPTT of ``current_lif_forward`` in float64. An output gradient that is the same at every step comes in
    as one row with its ``*_uniform`` flag (see ``numba_lif.lif_backward``)."""
    T, N = x.shape
    n_chunks = (N + chunk - 1) // chunk
    after_input = 1.0 if input_after else 0.0
    for c in numba.prange(n_chunks):
        lo = c * chunk
        hi = min(N, lo + chunk)
        width = hi - lo
        rm, rs, vl, vt = rate_m[lo:hi].copy(), rate_s[lo:hi].copy(), v_leak[lo:hi].copy(), v_th[lo:hi].copy()
        rm64, rs64, vl64, vr64 = rm.astype(np.float64), rs.astype(np.float64), vl.astype(np.float64), v_reset[lo:hi].astype(np.float64)
        av = g_final_v[lo:hi].astype(np.float64)  # dL/dv after the current step
        ai = g_final_i[lo:hi].astype(np.float64)  # dL/di after the current step
        charged, margin = np.empty(width, dtype=x.dtype), np.empty(width, dtype=x.dtype)
        sgd = np.empty(width)
        grm, grs, gvl, gvt, gvr = np.zeros(width), np.zeros(width), np.zeros(width), np.zeros(width), np.zeros(width)
        for t in range(T - 1, -1, -1):
            v_row = M[t - 1, lo:hi] if t > 0 else v0[lo:hi]
            i_row = I[t - 1, lo:hi] if t > 0 else i0[lo:hi]
            x_row, F_row, gx_row = x[t, lo:hi], F[t, lo:hi], gx[t, lo:hi]
            gs_row = g_spikes[0 if spikes_uniform else t, lo:hi]
            gm_row = g_membrane[0 if membrane_uniform else t, lo:hi]
            for i in range(width):  # the forward's charged membrane and margin, bitwise in the input dtype
                j = i_row[i] if input_after else i_row[i] + x_row[i]
                charged[i] = v_row[i] + rm[i] * ((vl[i] - v_row[i]) + j)
                margin[i] = charged[i] - vt[i]
            _surrogate_row(sg_kind, sg_args, sg_consts, margin, sgd)
            for i in range(width):
                flag = F_row[i]
                live = np.float64(flag != REFRACTORY)
                spike = np.float64(flag == SPIKED)
                v_prev, h = np.float64(v_row[i]), np.float64(charged[i])
                j = np.float64(i_row[i]) + (1.0 - after_input) * np.float64(x_row[i])
                a_v = av[i] + np.float64(gm_row[i])
                a_i = ai[i]
                # v = (1 - z)*v' + z*v_reset, the spike not detached
                g_margin = (np.float64(gs_row[i]) + a_v * (vr64[i] - h)) * sgd[i] * live
                g_h = (a_v * (1.0 - spike) + g_margin) * live
                gvt[i] -= g_margin
                gvr[i] += a_v * spike * live
                # v' = v + rate_m*((v_leak - v) + j), i' = j + rate_s*j (+ x after, version 1.0)
                g_j = g_h * rm64[i] + a_i * (1.0 + rs64[i])
                grm[i] += g_h * ((vl64[i] - v_prev) + j)
                grs[i] += a_i * j
                gvl[i] += g_h * rm64[i]
                gx_row[i] = after_input * a_i + (1.0 - after_input) * g_j
                av[i] = g_h * (1.0 - rm64[i]) + a_v * (1.0 - live)  # refractory: v passes through unchanged
                ai[i] = g_j
        for i in range(width):
            g_v0[lo + i] = av[i]
            g_i0[lo + i] = ai[i]
            g_rate_m[lo + i] = grm[i]
            g_rate_s[lo + i] = grs[i]
            g_v_leak[lo + i] = gvl[i]
            g_v_th[lo + i] = gvt[i]
            g_v_reset[lo + i] = gvr[i]
