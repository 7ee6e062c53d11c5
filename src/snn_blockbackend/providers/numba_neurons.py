"""Compiled CPU kernels (numba) for one-variable neurons with a non-linear charge or a non-detached reset.

They serve the profiles that describe themselves with ``kernel_spec(p)`` (``profiles.NeuronKernelSpec``):
SpikingJelly ``LIFNode`` / ``ParametricLIFNode`` and Norse ``LIFBoxCell``. Per time step and neuron::

    h = charge(v, x)                      # one of the CHARGE_* forms below, the profile's exact operations
    spike = h - threshold >= 0            # (> 0 for a strict profile)
    v = reset_value if spike else h       # hard reset: S*Vr + (1-S)*h
    v = h - threshold if spike else h     # soft reset: h - S*threshold
    refractory (countdown > 0): v is held, no spike; countdown = R after a spike, else max(countdown-1, 0)

exactly as the sequential reference runs it (``providers.reference``). Arithmetic is in the input's dtype,
operation for operation as in the profile's ``charge`` (no fast-math, so no fused multiply-add): spikes and
membranes are bitwise equal to the reference (up to the sign of zero, which the selects above drop where the
profile adds a ``0*x`` term). The forward stores one byte per step and neuron (refractory / live / spiked);
the backward recomputes the charge from the stored membranes and runs BPTT of the reference, including the
surrogate gradient through a non-detached reset, in float64.

Neurons are split into chunks run in parallel (``numba.prange``, see ``chunk_width``); within a chunk each
time step runs a few loops over the chunk's neurons (the charge form and the surrogate chosen outside the
loop, so the loops are branch-free and contiguous).
"""

from __future__ import annotations

import math

import numba
import numpy as np

from .numba_lif import surrogate_derivative

# charge forms (c: the per-neuron coefficient, o: the reset offset Vr in SpikingJelly's (v - Vr), l: leak)
CHARGE_TAU_DECAY_INPUT = 0  # v + (x - (v - o)) / c          SpikingJelly LIFNode, decay_input=True
CHARGE_TAU = 1  # (v - (v - o) / c) + x                      SpikingJelly LIFNode, decay_input=False
CHARGE_DECAY_DECAY_INPUT = 2  # v + (x - (v - o)) * c        SpikingJelly ParametricLIFNode, decay_input=True
CHARGE_DECAY = 3  # (v - (v - o) * c) + x                    SpikingJelly ParametricLIFNode, decay_input=False
CHARGE_LINEAR = 4  # v * c + x                               SpikingJelly 0.0.0.0.14 forms with Vr = 0
CHARGE_LEAKY_RATE = 5  # v + c * ((x + l) - v)               Norse LIFBoxCell (c = dt * tau_mem_inv)
CHARGE_KINDS = {
    "tau_decay_input": CHARGE_TAU_DECAY_INPUT,
    "tau": CHARGE_TAU,
    "decay_decay_input": CHARGE_DECAY_DECAY_INPUT,
    "decay": CHARGE_DECAY,
    "linear": CHARGE_LINEAR,
    "leaky_rate": CHARGE_LEAKY_RATE,
}



def chunk_width(n_neurons: int, widest: int) -> int:
    """Neurons per parallel task: one wide chunk per thread (long contiguous rows stream through the caches
    and the prefetcher better than many narrow ones), at least 256 and at most ``widest`` neurons (the
    backward keeps a dozen float64 values per neuron of its chunk, which should stay in the L2 cache)."""
    per_thread = -(-n_neurons // max(numba.get_num_threads(), 1))
    return int(min(max(per_thread, 256), widest))


FORWARD_WIDEST, BACKWARD_WIDEST = 8192, 2048


# per-step flags stored by the forward for the backward
REFRACTORY, LIVE, SPIKED = 0, 1, 2


@numba.njit(cache=True, inline="always")
def _charge_row(mode, v, x, coef, o, leak, lo, h):
    """h[i] = the charged membrane of neuron lo+i, in the input dtype; one loop per form (vectorizable)."""
    width = h.shape[0]
    if mode == 0:
        for i in range(width):
            h[i] = v[i] + (x[lo + i] - (v[i] - o)) / coef[lo + i]
    elif mode == 1:
        for i in range(width):
            h[i] = (v[i] - (v[i] - o) / coef[lo + i]) + x[lo + i]
    elif mode == 2:
        for i in range(width):
            h[i] = v[i] + (x[lo + i] - (v[i] - o)) * coef[lo + i]
    elif mode == 3:
        for i in range(width):
            h[i] = (v[i] - (v[i] - o) * coef[lo + i]) + x[lo + i]
    elif mode == 4:
        for i in range(width):
            h[i] = v[i] * coef[lo + i] + x[lo + i]
    else:
        for i in range(width):
            h[i] = v[i] + coef[lo + i] * ((x[lo + i] + leak[lo + i]) - v[i])


def surrogate_constants(kind: str, args: tuple, dtype) -> np.ndarray:
    """The constants ``_surrogate_row`` needs, rounded to the input dtype as torch rounds a Python scalar
    operand: sigmoid ``[alpha, 1]``, atan ``[pi/2*alpha, alpha/2, 1]``, fast_sigmoid ``[slope, 1]``."""
    alpha = float(args[0]) if args else 0.0
    if kind == "atan":
        return np.array([math.pi / 2 * alpha, alpha / 2, 1.0], dtype=dtype)
    return np.array([alpha, 0.0, 1.0], dtype=dtype)


@numba.njit(cache=True, inline="always")
def _exp_f32_row(z, scale_bits, poly, out):
    """out[i] = exp(z[i]) for a float32 row (out may be z), within about one ulp of expf, in loops that
    vectorize: numba has no vector libm, and a scalar expf call per element (~5 ns) was most of a sigmoid
    surrogate's backward. exp(z) = 2^n * e^r, n = round(z / ln 2), |r| <= ln(2)/2, e^r by its degree-7 Taylor
    polynomial in float64 (relative error < 1e-8); 2^n written into the float32 exponent bits, n clamped to
    [-127, 127]: below, 0 (expf gives a subnormal there); above, the polynomial grows and the float32 cast
    overflows to inf where expf does (a few ulp off in the last half octave before it). Finite z only."""
    width = z.shape[0]
    for i in range(width):
        zi = np.float64(z[i])
        n = min(max(math.floor(zi * 1.4426950408889634 + 0.5), -127.0), 127.0)
        r = zi - n * 0.6931471805599453
        poly[i] = 1.0 + r * (1.0 + r * (0.5 + r * (1 / 6 + r * (1 / 24 + r * (1 / 120 + r * (1 / 720 + r / 5040))))))
        scale_bits[i] = (np.int32(n) + np.int32(127)) << np.int32(23)
    scale = scale_bits.view(np.float32)
    for i in range(width):
        out[i] = np.float32(poly[i] * np.float64(scale[i]))


@numba.njit(cache=True, inline="always")
def _surrogate_row(kind, args, consts, margin, out):
    """out[i] = dS/dmargin. Sigmoid, atan and fast sigmoid / SuperSpike are evaluated in the input dtype
    with the surrogate module's formulas (as autograd through the reference does: in float32 a sigmoid
    tail rounds to exactly 0 there, so must it here); the other kinds through numba_lif, in float64."""
    width = out.shape[0]
    k0, k1, one = consts[0], consts[1], consts[2]
    if kind == 3 and margin.itemsize == 4:  # sigmoid(alpha) in float32, exp vectorized (_exp_f32_row)
        e = np.empty(width, np.float32)
        for i in range(width):
            e[i] = -(k0 * margin[i])
        _exp_f32_row(e, np.empty(width, np.int32), np.empty(width), e)
        for i in range(width):
            sig = one / (one + e[i])
            out[i] = (one - sig) * sig * k0
    elif kind == 3:  # sigmoid(alpha): s = sigmoid(alpha*m); (1 - s)*s*alpha
        for i in range(width):
            sig = one / (one + math.exp(-(k0 * margin[i])))
            out[i] = (one - sig) * sig * k0
    elif kind == 1:  # atan(alpha): alpha/2 / (1 + (pi/2*alpha*m)^2)
        for i in range(width):
            z = k0 * margin[i]
            out[i] = k1 / (one + z * z)
    elif kind == 2:  # fast sigmoid / superspike: 1 / (slope*|m| + 1)^2
        for i in range(width):
            d = k0 * abs(margin[i]) + one
            out[i] = one / (d * d)
    else:
        for i in range(width):
            out[i] = surrogate_derivative(kind, args, np.float64(margin[i]))


@numba.njit(parallel=True, cache=True)
def neuron_forward(x, v0, countdown0, mode, coef, offset, leak, thr, strict, soft_reset, reset_value, R, chunk, S, M, F, v_out, countdown_out):
    T, N = x.shape
    n_chunks = (N + chunk - 1) // chunk
    for c in numba.prange(n_chunks):
        lo = c * chunk
        hi = min(N, lo + chunk)
        width = hi - lo
        v = v0[lo:hi].copy()
        h = np.empty_like(v)
        countdown = countdown0[lo:hi].copy()
        o = offset[0]
        zero = o - o  # +0 in the input's dtype
        one = zero + np.float32(1)
        for t in range(T):
            x_row, S_row, M_row, F_row = x[t], S[t, lo:hi], M[t, lo:hi], F[t, lo:hi]
            _charge_row(mode, v, x_row, coef, o, leak, lo, h)
            for i in range(width):
                # every load first, then selects only: the loop vectorizes into blends (a branch on a
                # random spike pattern would mispredict)
                n = lo + i
                h_i, v_i, threshold, target, count = h[i], v[i], thr[n], reset_value[n], countdown[i]
                margin = h_i - threshold
                live = count <= 0
                above = (margin > 0) if strict else (margin >= 0)
                fired = live & above
                # soft: h - threshold; hard: the reference's S*Vr + (1 - S)*h at S = 1, i.e. Vr + 0*h
                # (Vr, or NaN where h overflowed to inf, as in the reference)
                after = margin if soft_reset else target + zero * h_i
                after = after if fired else h_i
                u = after if live else v_i
                S_row[i] = one if fired else zero
                M_row[i] = u
                F_row[i] = np.uint8(live) + np.uint8(fired)  # REFRACTORY, LIVE or SPIKED
                countdown[i] = R if fired else max(count - 1, 0)
                v[i] = u
        for i in range(width):
            v_out[lo + i] = v[i]
            countdown_out[lo + i] = countdown[i]


@numba.njit(parallel=True, cache=True)
def neuron_backward(g_spikes, spikes_uniform, g_membrane, membrane_uniform, g_final_v, x, M, v0, F, mode, coef, offset, leak, thr, soft_reset, reset_value, detach_reset, sg_kind, sg_args, sg_consts, chunk, gx, g_v0, g_coef, g_leak, g_thr, g_reset_value):
    T, N = x.shape
    n_chunks = (N + chunk - 1) // chunk
    # the reset's switches as 0/1 factors
    soft, attached = 1.0 if soft_reset else 0.0, 0.0 if detach_reset else 1.0
    hard = 1.0 - soft
    for c in numba.prange(n_chunks):
        lo = c * chunk
        hi = min(N, lo + chunk)
        width = hi - lo
        o = offset[0]
        o64 = np.float64(o)
        # per neuron, float64: dh/dx, dh/dv, and dh/dc = kcx*x + kcv*v + kc0 (kl = dh/dleak) of the charge form
        thr64 = thr[lo:hi].astype(np.float64)
        rv64 = reset_value[lo:hi].astype(np.float64)
        cf = coef[lo:hi].astype(np.float64)
        kdx, kdv = np.ones(width), np.empty(width)
        kcx, kcv, kc0, kl = np.zeros(width), np.zeros(width), np.zeros(width), np.zeros(width)
        for i in range(width):
            inv2 = 1.0 / (cf[i] * cf[i])
            if mode == 0:  # v + (x - (v - o))/c
                kdx[i], kdv[i] = 1.0 / cf[i], 1.0 - 1.0 / cf[i]
                kcx[i], kcv[i], kc0[i] = -inv2, inv2, -o64 * inv2
            elif mode == 1:  # (v - (v - o)/c) + x
                kdv[i] = 1.0 - 1.0 / cf[i]
                kcv[i], kc0[i] = inv2, -o64 * inv2
            elif mode == 2:  # v + (x - (v - o))*c
                kdx[i], kdv[i] = cf[i], 1.0 - cf[i]
                kcx[i], kcv[i], kc0[i] = 1.0, -1.0, o64
            elif mode == 3:  # (v - (v - o)*c) + x
                kdv[i] = 1.0 - cf[i]
                kcv[i], kc0[i] = -1.0, o64
            elif mode == 4:  # v*c + x
                kdv[i] = cf[i]
                kcv[i] = 1.0
            else:  # v + c*((x + l) - v)
                kdx[i], kdv[i] = cf[i], 1.0 - cf[i]
                kcx[i], kcv[i], kc0[i], kl[i] = 1.0, -1.0, np.float64(leak[lo + i]), cf[i]
        a = g_final_v[lo:hi].astype(np.float64)  # dL/dv after the current step
        h = np.empty(width, dtype=x.dtype)
        margin = np.empty(width, dtype=x.dtype)
        sgd = np.empty(width, dtype=np.float64)
        gc, gl, gt, gr = np.zeros(width), np.zeros(width), np.zeros(width), np.zeros(width)
        thr_c = thr[lo:hi]
        for t in range(T - 1, -1, -1):
            v_row = M[t - 1, lo:hi] if t > 0 else v0[lo:hi]
            x_row, F_row, gx_row = x[t, lo:hi], F[t, lo:hi], gx[t, lo:hi]
            # the forward's charge and margin, recomputed bitwise in the input dtype
            _charge_row(mode, v_row, x[t], coef, o, leak, lo, h)
            for i in range(width):
                margin[i] = h[i] - thr_c[i]
            _surrogate_row(sg_kind, sg_args, sg_consts, margin, sgd)
            gs_row = g_spikes[0 if spikes_uniform else t, lo:hi]
            gm_row = g_membrane[0 if membrane_uniform else t, lo:hi]
            for i in range(width):
                # masks as 0/1 factors, selections as products (exact for finite values): no branches
                flag, a_prev, g_out, g_mem = F_row[i], a[i], np.float64(gs_row[i]), np.float64(gm_row[i])
                h_i, x_i, v_i = np.float64(h[i]), np.float64(x_row[i]), np.float64(v_row[i])
                a_i = a_prev + g_mem
                live = np.float64(flag != REFRACTORY)
                s = np.float64(flag == SPIKED)
                # reset: dv'/dh and dv'/dS (hard: S*Vr + (1-S)*h; soft: h - S*thr)
                d_h = 1.0 - hard * s
                d_s = soft * -thr64[i] + hard * (rv64[i] - h_i)
                a_s = a_i * s * live
                gt[i] -= soft * a_s
                gr[i] += hard * a_s
                g_s = g_out + attached * a_i * d_s
                g_margin = g_s * sgd[i] * live
                gt[i] -= g_margin
                g_h = (a_i * d_h + g_margin) * live
                gx_row[i] = g_h * kdx[i]
                a[i] = g_h * kdv[i] + a_i * (1.0 - live)  # refractory: v passes through unchanged
                gc[i] += g_h * (kcx[i] * x_i + kcv[i] * v_i + kc0[i])
                gl[i] += g_h * kl[i]
        for i in range(width):
            g_v0[lo + i] = a[i]
            g_coef[lo + i] = gc[i]
            g_leak[lo + i] = gl[i]
            g_thr[lo + i] = gt[i]
            g_reset_value[lo + i] = gr[i]
