"""Compiled CPU kernels (numba) for the current-based LIF (Norse ``LIFCell``, profile ``norse_lif``) and its
adaptive-threshold variant (Norse ``LSNNCell``, profile ``norse_lsnn``).

Per time step and neuron, exactly as the sequential reference runs the profile (rates evaluated first,
as Norse does: ``rate_m = dt*tau_mem_inv``, ``rate_s = -dt*tau_syn_inv``)::

    j  = i + x                             # version 1.1; version 1.0: j = i (the input joins after the update)
    v' = v + rate_m*((v_leak - v) + j)
    i' = j + rate_s*j                      # version 1.0: (j + rate_s*j) + x
    b' = b + rate_a*(v_th - b)             # adaptive only (LSNN; rate_a = dt*tau_adapt_inv)
    spike = v' - theta > 0                 # theta = b' (adaptive) or v_th; no spike while refractory
    v  = (1 - spike)*v' + spike*v_reset    # not detached; held (unchanged) while refractory
    i  = i'                                # keeps integrating while refractory
    b  = b' + spike*jump                   # adaptive only (Norse's LSNN ``beta``), not detached
    refractory countdown = R after a spike, else max(countdown - 1, 0)

Arithmetic is in the input's dtype, operation for operation (no fast-math, so no fused multiply-add): spikes,
membranes and currents are bitwise equal to the reference. The forward stores the current after each step
(and threshold, if adaptive) and one flag byte per step and neuron; the backward recomputes the charge and margin from the stored states
and runs BPTT in float64 (the surrogate in the input dtype, as autograd evaluates it in the reference), with
branch-free 0/1 factors.
"""

from __future__ import annotations

import numba
import numpy as np

from .numba_neurons import REFRACTORY, SPIKED, _surrogate_row


@numba.njit(parallel=True, cache=True)
def current_lif_forward(x, v0, i0, b0, countdown0, rate_m, rate_s, rate_a, v_leak, v_th, v_reset, jump, input_after, adaptive, R, chunk, S, M, I, B, F, v_out, i_out, b_out, countdown_out):
    """Without ``adaptive`` the threshold arrays (b0, rate_a, jump, B, b_out) are not read or written."""
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
        thr = b0[lo:hi].copy() if adaptive else vt.copy()
        scratch = np.empty_like(thr)  # B's row without adaptation (not aliasing thr)
        ra, jp = (rate_a[lo:hi].copy(), jump[lo:hi].copy()) if adaptive else (vt, vt)
        for t in range(T):
            x_row, S_row, M_row, I_row, F_row = x[t, lo:hi], S[t, lo:hi], M[t, lo:hi], I[t, lo:hi], F[t, lo:hi]
            B_row = B[t, lo:hi] if adaptive else scratch
            for i in range(width):
                # every value first, then selects only (a branch on a random spike pattern would mispredict)
                v_i, x_i, count, b_i = v[i], x_row[i], countdown[i], thr[i]
                j = cur[i] if input_after else cur[i] + x_i
                charged_v = v_i + rm[i] * ((vl[i] - v_i) + j)
                charged_i = j + rs[i] * j
                charged_i = charged_i + x_i if input_after else charged_i
                charged_b = b_i + ra[i] * (vt[i] - b_i)
                theta = charged_b if adaptive else b_i  # b_i = v_th without adaptation
                live = count <= 0
                fired = live & (charged_v - theta > 0)
                spike = one if fired else zero
                after = (one - spike) * charged_v + spike * vr[i]
                u = after if live else v_i
                b_new = charged_b + spike * jp[i]
                b_new = b_new if adaptive else b_i
                S_row[i] = spike
                M_row[i] = u
                I_row[i] = charged_i
                B_row[i] = b_new
                F_row[i] = np.uint8(live) + np.uint8(fired)  # REFRACTORY, LIVE or SPIKED
                countdown[i] = R if fired else max(count - 1, 0)
                v[i] = u
                cur[i] = charged_i
                thr[i] = b_new
        for i in range(width):
            v_out[lo + i] = v[i]
            i_out[lo + i] = cur[i]
            b_out[lo + i] = thr[i]
            countdown_out[lo + i] = countdown[i]


@numba.njit(parallel=True, cache=True)
def current_lif_backward(g_spikes, spikes_uniform, g_membrane, membrane_uniform, g_final_v, g_final_i, g_final_b, x, M, I, B, v0, i0, b0, F, rate_m, rate_s, rate_a, v_leak, v_th, v_reset, jump, input_after, adaptive, sg_kind, sg_args, sg_consts, chunk, gx, g_v0, g_i0, g_b0, g_rate_m, g_rate_s, g_rate_a, g_v_leak, g_v_th, g_v_reset, g_jump):
    """BPTT of ``current_lif_forward`` in float64. An output gradient that is the same at every step comes in
    as one row with its ``*_uniform`` flag (see ``numba_lif.lif_backward``)."""
    T, N = x.shape
    n_chunks = (N + chunk - 1) // chunk
    after_input = 1.0 if input_after else 0.0
    adapt = 1.0 if adaptive else 0.0
    for c in numba.prange(n_chunks):
        lo = c * chunk
        hi = min(N, lo + chunk)
        width = hi - lo
        rm, rs, vl, vt = rate_m[lo:hi].copy(), rate_s[lo:hi].copy(), v_leak[lo:hi].copy(), v_th[lo:hi].copy()
        rm64, rs64, vl64, vr64 = rm.astype(np.float64), rs.astype(np.float64), vl.astype(np.float64), v_reset[lo:hi].astype(np.float64)
        vt64 = vt.astype(np.float64)
        ra = rate_a[lo:hi].copy() if adaptive else vt
        ra64, jp64 = ra.astype(np.float64), (jump[lo:hi] if adaptive else vt).astype(np.float64)
        av = g_final_v[lo:hi].astype(np.float64)  # dL/dv after the current step
        ai = g_final_i[lo:hi].astype(np.float64)  # dL/di after the current step
        ab = g_final_b[lo:hi].astype(np.float64)  # dL/db after the current step (adaptive)
        charged, margin = np.empty(width, dtype=x.dtype), np.empty(width, dtype=x.dtype)
        sgd = np.empty(width)
        grm, grs, gvl, gvt, gvr = np.zeros(width), np.zeros(width), np.zeros(width), np.zeros(width), np.zeros(width)
        gra, gjp = np.zeros(width), np.zeros(width)
        gh_row, gmargin_row, gb_row = np.empty(width), np.empty(width), np.empty(width)
        av_spike, ab_spike, ai_prev = np.empty(width), np.empty(width), np.empty(width)
        for t in range(T - 1, -1, -1):
            v_row = M[t - 1, lo:hi] if t > 0 else v0[lo:hi]
            i_row = I[t - 1, lo:hi] if t > 0 else i0[lo:hi]
            b_row = (B[t - 1, lo:hi] if t > 0 else b0[lo:hi]) if adaptive else vt
            x_row, F_row, gx_row = x[t, lo:hi], F[t, lo:hi], gx[t, lo:hi]
            gs_row = g_spikes[0 if spikes_uniform else t, lo:hi]
            gm_row = g_membrane[0 if membrane_uniform else t, lo:hi]
            for i in range(width):  # the forward's charged membrane and margin, bitwise in the input dtype
                j = i_row[i] if input_after else i_row[i] + x_row[i]
                charged[i] = v_row[i] + rm[i] * ((vl[i] - v_row[i]) + j)
                theta = b_row[i] + ra[i] * (vt[i] - b_row[i]) if adaptive else vt[i]
                margin[i] = charged[i] - theta
            _surrogate_row(sg_kind, sg_args, sg_consts, margin, sgd)
            # the state update first, in one loop over few arrays (so it vectorizes); the per-neuron parameter
            # gradients after it, each in a short loop of its own over this step's scratch rows
            for i in range(width):
                flag = F_row[i]
                live = np.float64(flag != REFRACTORY)
                spike = np.float64(flag == SPIKED) * live
                a_v = av[i] + np.float64(gm_row[i])
                a_b = ab[i] * adapt
                g_margin = (np.float64(gs_row[i]) + a_v * (vr64[i] - np.float64(charged[i])) + a_b * jp64[i]) * sgd[i] * live
                g_h = (a_v * (1.0 - spike) + g_margin) * live
                g_b = a_b - g_margin * adapt
                ab[i] = g_b * (1.0 - ra64[i])
                av[i] = g_h * (1.0 - rm64[i]) + a_v * (1.0 - live)  # refractory: v passes through unchanged
                gh_row[i], gmargin_row[i], gb_row[i], av_spike[i], ab_spike[i] = g_h, g_margin, g_b, a_v * spike, a_b * spike
            for i in range(width):
                # v' = v + rate_m*((v_leak - v) + j), i' = j + rate_s*j (+ x after, version 1.0)
                a_i = ai[i]
                g_j = gh_row[i] * rm64[i] + a_i * (1.0 + rs64[i])
                gx_row[i] = after_input * a_i + (1.0 - after_input) * g_j
                ai_prev[i] = a_i
                ai[i] = g_j
            for i in range(width):  # v = (1 - z)*v' + z*v_reset and b = b' + z*jump, the spike not detached
                gvr[i] += av_spike[i]
                gjp[i] += ab_spike[i]
            for i in range(width):  # theta: v_th, or b' = b + rate_a*(v_th - b) (refractory: b = b', no margin)
                gvt[i] += -gmargin_row[i] * (1.0 - adapt) + gb_row[i] * ra64[i]
            if adaptive:
                for i in range(width):
                    gra[i] += gb_row[i] * (vt64[i] - np.float64(b_row[i]))
            for i in range(width):
                j = np.float64(i_row[i]) + (1.0 - after_input) * np.float64(x_row[i])
                grm[i] += gh_row[i] * ((vl64[i] - np.float64(v_row[i])) + j)
                grs[i] += ai_prev[i] * j
            for i in range(width):
                gvl[i] += gh_row[i] * rm64[i]
        for i in range(width):
            g_v0[lo + i] = av[i]
            g_i0[lo + i] = ai[i]
            g_b0[lo + i] = ab[i]
            g_rate_m[lo + i] = grm[i]
            g_rate_s[lo + i] = grs[i]
            g_rate_a[lo + i] = gra[i]
            g_v_leak[lo + i] = gvl[i]
            g_v_th[lo + i] = gvt[i]
            g_v_reset[lo + i] = gvr[i]
            g_jump[lo + i] = gjp[i]
