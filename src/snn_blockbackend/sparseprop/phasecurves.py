"""Phase transition curves (PTCs) of the supported neuron models, compiled with numba.

A neuron's phase rises linearly between inputs; an input spike maps phase ``phi`` to
``g(phi; c)``. ``c`` is the model's coupling parameter (the voltage jump times a
model-dependent factor, see :mod:`.models`). All functions work on float64 scalars so that
they can be inlined into the compiled event loops.

Model ids used throughout the compiled code:

* ``LIF_ID``: leaky integrate-and-fire, threshold 1, reset 0,
  ``g(phi) = -omega * log(exp(-phi/omega) + c)`` with ``c = -J / (1 + I)``.
* ``QIF_ID``: quadratic integrate-and-fire (theta neuron), threshold pi, reset -pi,
  ``g(theta) = 2 * atan(tan(theta/2) + c)`` with ``c = J / sqrt(I)``.
* ``EIF_ID``: exponential integrate-and-fire, threshold 1, reset 0, PTC from a piecewise
  Chebyshev table for one fixed voltage jump (see :mod:`.eif`); ``c`` is unused.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit

LIF_ID = 0
QIF_ID = 1
EIF_ID = 2

# ---------------------------------------------------------------------------------------
# EIF table layout (a flat float64 array so it passes through numba unchanged):
#   [0] phi_lo      [1] phi_split   [2] n_body   [3] body_width
#   [4] s_hi        [5] s_lo        [6] n_tail   [7] tail_width
#   [8] degree+1    [9] asymptotic factor exp(-J/Delta_T)
#   [10:] coefficients: n_body panels then n_tail panels, (degree+1) each
# Body panels are uniform in phi on [phi_lo, phi_split]; tail panels are uniform in
# s = log(1 - phi) on [s_lo, s_hi] and store log((1 - g) / (1 - phi)).
EIF_HEADER = 10


@njit(cache=True, inline="always")
def _clenshaw(coefs, start, n, x):
    """Evaluate sum_k coefs[start+k] T_k(x) for x in [-1, 1]."""
    b1 = 0.0
    b2 = 0.0
    for k in range(n - 1, 0, -1):
        b0 = 2.0 * x * b1 - b2 + coefs[start + k]
        b2 = b1
        b1 = b0
    return x * b1 - b2 + coefs[start]


@njit(cache=True)
def eif_ptc_table(phi, tab):
    """EIF phase transition for the jump the table was built for."""
    if phi >= 1.0:
        return 1.0
    n_coef = int(tab[8])
    phi_split = tab[1]
    if phi <= phi_split:
        phi_lo = tab[0]
        if phi < phi_lo:
            phi = phi_lo  # below the tabulated voltage range: clamp (documented in eif.py)
        width = tab[3]
        n_body = int(tab[2])
        p = int((phi - phi_lo) / width)
        if p >= n_body:
            p = n_body - 1
        a = phi_lo + p * width
        x = 2.0 * (phi - a) / width - 1.0
        return _clenshaw(tab, EIF_HEADER + p * n_coef, n_coef, x)
    u = 1.0 - phi
    s = math.log(u)
    s_lo = tab[5]
    if s < s_lo:
        # Deep in the exponential run-away: 1 - g is proportional to 1 - phi.
        return 1.0 - tab[9] * u
    s_hi = tab[4]
    width = tab[7]
    n_tail = int(tab[6])
    n_body = int(tab[2])
    p = int((s_hi - s) / width)
    if p >= n_tail:
        p = n_tail - 1
    if p < 0:
        p = 0
    a = s_hi - (p + 1) * width
    x = 2.0 * (s - a) / width - 1.0
    log_ratio = _clenshaw(tab, EIF_HEADER + (n_body + p) * n_coef, n_coef, x)
    return 1.0 - u * math.exp(log_ratio)


@njit(cache=True, inline="always")
def ptc(model_id, phi, c, omega, tab):
    """Phase after one input; excitatory inputs that reach threshold are clamped to it."""
    if model_id == LIF_ID:
        arg = math.exp(-phi / omega) + c
        thr_arg = math.exp(-1.0 / omega)
        if arg <= thr_arg:
            return 1.0  # the input pushes the voltage over threshold: spike now
        return -omega * math.log(arg)
    elif model_id == QIF_ID:
        return 2.0 * math.atan(math.tan(0.5 * phi) + c)
    else:
        return eif_ptc_table(phi, tab)


@njit(cache=True, inline="always")
def ptc_derivatives(model_id, phi, c, omega):
    """Return (dg/dphi, dg/dc, dg/domega) for LIF and QIF (used by the backward pass)."""
    if model_id == LIF_ID:
        e = math.exp(-phi / omega)
        arg = e + c
        dphi = e / arg
        dc = -omega / arg
        domega = -math.log(arg) - (phi / omega) * e / arg
        return dphi, dc, domega
    else:
        h = math.tan(0.5 * phi)
        q = h + c
        denom = 1.0 + q * q
        sec2 = 1.0 + h * h
        return sec2 / denom, 2.0 / denom, 0.0


def ptc_numpy(model_id: int, phi, c, omega: float, tab=None) -> np.ndarray:
    """Vectorised PTC for tests and plotting (same formulas as :func:`ptc`)."""
    phi = np.asarray(phi, dtype=np.float64)
    tab = np.zeros(EIF_HEADER + 1) if tab is None else tab
    out = np.empty_like(phi)
    flat_in = phi.ravel()
    flat_out = out.ravel()
    c_arr = np.broadcast_to(np.asarray(c, dtype=np.float64), phi.shape).ravel()
    _ptc_loop(model_id, flat_in, c_arr, float(omega), tab, flat_out)
    return out


@njit(cache=True)
def _ptc_loop(model_id, phis, cs, omega, tab, out):
    for n in range(phis.shape[0]):
        out[n] = ptc(model_id, phis[n], cs[n], omega, tab)
