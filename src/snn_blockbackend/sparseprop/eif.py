"""EIF phase curve: accurate quadrature of the time to spike and a piecewise Chebyshev PTC.

Dynamics (units of tau): ``V' = F(V) = -V + dT exp(V/dT) + I``, reset ``V_r``, spike at
V = +inf. Time to spike ``T_s(V) = int_V^inf dv / F(v)``; phase ``phi = 1 - omega T_s(V)``
with ``omega = 1 / T_s(V_r)``; PTC ``g(phi) = 1 - omega T_s(V(phi) + J)``.

Near phi -> 1 the PTC has a weak (u log u, u = 1 - phi) singularity, so one global Chebyshev
fit converges only algebraically. The table therefore splits the domain:

* body ``[phi_lo, 0.9]``: uniform panels in phi;
* tail ``u in [1e-10, 0.1]``: uniform panels in ``s = log u`` fitting ``log((1-g)/u)``,
  which is smooth in s (the singular terms become ``exp(s) * s``);
* ``u < 1e-10``: the asymptote ``1 - g = exp(-J/dT) u`` (error far below 1e-12).

Phases below ``phi_lo = phi(V = -20)`` are clamped to it (such strongly hyperpolarised
states are not reached in the reference networks).
"""

from __future__ import annotations

import math

import numpy as np

from .phasecurves import EIF_HEADER

_GL_X, _GL_W = np.polynomial.legendre.leggauss(20)
BODY_SPLIT = 0.9
V_TABLE_LOW = -20.0


class EIFQuadrature:
    """Time to spike T_s(V) by composite 20-point Gauss-Legendre (panels of 0.005) + inverse."""

    def __init__(self, drive: float, delta_t: float, v_reset: float, v_low: float = -32.0,
                 panel: float = 0.005):
        self.drive = float(drive)
        self.delta_t = float(delta_t)
        self.v_reset = float(v_reset)
        # above v_top the integrand is exp(-v/dT)/dT up to a relative 1e-15 correction
        self.v_top = 40.0 * self.delta_t + max(0.0, self.drive) + 1.0
        n_panels = int(math.ceil((self.v_top - v_low) / panel))
        self.v_grid = self.v_top - panel * np.arange(n_panels, -1, -1, dtype=np.float64)
        self.panel = panel
        a, b = self.v_grid[:-1], self.v_grid[1:]
        per_panel = self._gl(a, b)
        # accumulate from the top down so that small times to spike keep relative precision
        cum = np.concatenate([[0.0], np.cumsum(per_panel[::-1])])[::-1]
        self.t_grid = cum + self._tail(self.v_top)
        self.omega = 1.0 / float(self.time_to_spike(np.array([self.v_reset]))[0])

    def rhs(self, v):
        return -v + self.delta_t * np.exp(v / self.delta_t) + self.drive

    def _gl(self, a, b):
        half = 0.5 * (b - a)
        mid = 0.5 * (b + a)
        nodes = mid[:, None] + half[:, None] * _GL_X[None, :]
        return half * ((1.0 / self.rhs(nodes)) @ _GL_W)

    def _tail(self, v):
        return np.exp(-np.asarray(v, dtype=np.float64) / self.delta_t)

    def time_to_spike(self, v) -> np.ndarray:
        """T_s(V) in units of tau (vectorised)."""
        v = np.atleast_1d(np.asarray(v, dtype=np.float64))
        if (v < self.v_grid[0]).any():
            raise ValueError(f"voltage below the quadrature range {self.v_grid[0]}")
        out = np.empty_like(v)
        high = v >= self.v_top
        out[high] = self._tail(v[high])
        low = ~high
        m = np.minimum(((v[low] - self.v_grid[0]) / self.panel).astype(np.int64), len(self.v_grid) - 2)
        upper = self.v_grid[m + 1]
        out[low] = self._gl(v[low], upper) + self.t_grid[m + 1]
        return out

    def phase(self, v) -> np.ndarray:
        return 1.0 - self.omega * self.time_to_spike(v)

    def voltage(self, phi) -> np.ndarray:
        """Inverse of :meth:`phase` by Newton's method on T_s (dT_s/dV = -1/F)."""
        phi = np.atleast_1d(np.asarray(phi, dtype=np.float64))
        if (phi >= 1.0).any():
            raise ValueError("phase must be < 1 (phase 1 is V = +inf)")
        target = (1.0 - phi) / self.omega
        guess = np.interp(-target, -self.t_grid, self.v_grid)
        small = target < self.t_grid[-1]
        guess[small] = -self.delta_t * np.log(target[small])
        v = guess
        for _ in range(8):
            v = v + (self.time_to_spike(v) - target) * self.rhs(v)
        return v

    def ptc_exact(self, phi, jump: float) -> np.ndarray:
        """g(phi) = phase(V(phi) + J), from the quadrature (slow; used to build and test tables)."""
        phi = np.atleast_1d(np.asarray(phi, dtype=np.float64))
        out = np.ones_like(phi)
        below = phi < 1.0
        out[below] = self.phase(self.voltage(phi[below]) + jump)
        return out


def _cheb_nodes(n: int) -> np.ndarray:
    return np.cos(math.pi * (np.arange(n) + 0.5) / n)


def _cheb_coefficients(values: np.ndarray) -> np.ndarray:
    n = values.shape[-1]
    j = np.arange(n)
    basis = np.cos(math.pi * np.outer(j, np.arange(n) + 0.5) / n)
    coefs = (2.0 / n) * values @ basis.T
    coefs[..., 0] *= 0.5
    return coefs


def build_eif_table(quad: EIFQuadrature, jump: float, degree: int = 31, body_panels: int = 24,
                    tail_width: float = 1.0, u_min: float = 1e-10) -> np.ndarray:
    """Flat table for :func:`.phasecurves.eif_ptc_table` (layout documented there)."""
    if not math.isfinite(jump):
        raise ValueError("EIF coupling must be finite")
    n_coef = degree + 1
    x = _cheb_nodes(n_coef)
    phi_lo = float(quad.phase(np.array([V_TABLE_LOW]))[0])
    body_width = (BODY_SPLIT - phi_lo) / body_panels
    starts = phi_lo + body_width * np.arange(body_panels)
    body_phi = starts[:, None] + 0.5 * body_width * (x[None, :] + 1.0)
    body = _cheb_coefficients(quad.ptc_exact(body_phi.ravel(), jump).reshape(body_phi.shape))

    s_hi = math.log(1.0 - BODY_SPLIT)
    n_tail = int(math.ceil((s_hi - math.log(u_min)) / tail_width))
    s_lo = s_hi - n_tail * tail_width
    lows = s_hi - tail_width * (np.arange(n_tail) + 1.0)
    s_nodes = lows[:, None] + 0.5 * tail_width * (x[None, :] + 1.0)
    u = np.exp(s_nodes.ravel())
    g = quad.ptc_exact(1.0 - u, jump)
    # 1 - g from T_s directly keeps relative precision for tiny u
    v = quad.voltage(1.0 - u)
    one_minus_g = quad.omega * quad.time_to_spike(v + jump)
    one_minus_u = quad.omega * quad.time_to_spike(v)
    del g
    tail = _cheb_coefficients(np.log(one_minus_g / one_minus_u).reshape(s_nodes.shape))

    header = np.array([phi_lo, BODY_SPLIT, body_panels, body_width, s_hi, s_lo, n_tail, tail_width,
                       n_coef, math.exp(-jump / quad.delta_t)])
    assert header.shape[0] == EIF_HEADER
    return np.concatenate([header, body.ravel(), tail.ravel()])
