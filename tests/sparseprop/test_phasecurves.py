"""Phase transition curves: voltage-space checks, inverse properties, EIF table accuracy."""

import math

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from snn_blockbackend.sparseprop import EIF, LIF, QIF
from snn_blockbackend.sparseprop.phasecurves import EIF_ID, LIF_ID, QIF_ID, ptc_numpy


def test_lif_ptc_equals_voltage_jump():
    model = LIF(drive=0.1, tau=0.01)
    phi = np.linspace(0.0, 0.999, 200)
    jump = -0.1
    expected = model.phase(model.voltage(phi) + jump)  # jump applied in voltage space
    got = ptc_numpy(LIF_ID, phi, jump * model.coupling_factor, model.omega)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-13)


def test_lif_free_period_matches_ode():
    # tau V' = -V + 1 + I from V=0 reaches V=1 after tau*ln(1+1/I)
    model = LIF(drive=0.25, tau=0.02)
    assert math.isclose(model.period, 0.02 * math.log(1 + 1 / 0.25), rel_tol=1e-14)
    # and the phase map sends V=1 to phase 1
    assert math.isclose(float(model.phase(1.0)), 1.0, rel_tol=1e-13)


def test_qif_ptc_equals_voltage_jump():
    model = QIF(drive=0.3, tau=0.01)
    theta = np.linspace(-3.1, 3.1, 200)
    jump = -0.2
    expected = model.phase(model.voltage(theta) + jump)
    got = ptc_numpy(QIF_ID, theta, jump * model.coupling_factor, model.omega)
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-12)


def test_excitatory_lif_input_is_clamped_to_threshold():
    model = LIF(drive=0.1)
    c_exc = 0.5 * model.coupling_factor  # J = +0.5 pushes a neuron near threshold over it
    out = ptc_numpy(LIF_ID, np.array([0.99, 0.0]), c_exc, model.omega)
    assert out[0] == 1.0
    assert 0.0 < out[1] < 1.0


@settings(max_examples=200, deadline=None)
@given(phi=st.floats(min_value=-2.0, max_value=0.999), jump=st.floats(min_value=1e-4, max_value=0.5),
       drive=st.floats(min_value=0.01, max_value=3.0))
def test_lif_inhibit_then_excite_returns_phase(phi, jump, drive):
    model = LIF(drive=drive)
    omega = model.omega
    down = ptc_numpy(LIF_ID, np.array([phi]), -jump * model.coupling_factor, omega)
    back = ptc_numpy(LIF_ID, down, jump * model.coupling_factor, omega)
    assert down[0] < phi
    assert abs(back[0] - phi) <= 1e-9 * max(1.0, abs(phi))


@settings(max_examples=200, deadline=None)
@given(theta=st.floats(min_value=-3.0, max_value=3.0), c=st.floats(min_value=-2.0, max_value=2.0))
def test_qif_ptc_inverse_and_monotone(theta, c):
    forward = ptc_numpy(QIF_ID, np.array([theta, theta + 1e-3]), c, 1.0)
    back = ptc_numpy(QIF_ID, forward[:1], -c, 1.0)
    assert abs(back[0] - theta) <= 1e-9
    assert forward[1] > forward[0]  # the PTC is strictly increasing


@pytest.fixture(scope="module")
def eif():
    return EIF(drive=0.1, tau=0.01, delta_t=0.1)


def test_eif_time_to_spike_against_scipy_quad(eif):
    from scipy.integrate import quad

    q = eif._quadrature()
    rhs = lambda v: -v + 0.1 * math.exp(v / 0.1) + 0.1  # noqa: E731
    for v in (-8.0, -1.0, 0.0, 0.7, 1.5):
        # beyond v=6 the remaining time is < exp(-60): negligible
        independent, _ = quad(lambda x: 1.0 / rhs(x), v, 6.0, epsabs=1e-15, epsrel=1e-13, limit=400)
        assert math.isclose(q.time_to_spike(v)[0], independent, rel_tol=1e-11, abs_tol=1e-15)


@settings(max_examples=100, deadline=None)
@given(phi=st.floats(min_value=-0.7, max_value=1 - 1e-12))
def test_eif_voltage_phase_inverse(eif, phi):
    q = eif._quadrature()
    assert abs(q.phase(q.voltage(phi))[0] - phi) <= 1e-12


def test_eif_chebyshev_table_within_1e9_of_quadrature(eif):
    q = eif._quadrature()
    jump = -0.1
    table = eif.table(jump)
    rng = np.random.default_rng(0)
    phi_lo = table[0]
    phi = np.concatenate([rng.uniform(phi_lo, 1.0, 3000), 1.0 - 10.0 ** rng.uniform(-15, -1, 3000),
                          [phi_lo, 0.9, 0.9 + 1e-12, 1 - 1e-10]])
    exact = q.ptc_exact(phi, jump)
    approx = ptc_numpy(EIF_ID, phi, 0.0, q.omega, table)
    assert np.max(np.abs(exact - approx)) < 1e-9


def test_eif_period_and_reference_spot_values(eif):
    # the free period follows from the quadrature; check it against a direct time-stepped ODE solve
    from scipy.integrate import solve_ivp

    rhs = lambda t, v: -v + 0.1 * np.exp(v / 0.1) + 0.1  # noqa: E731
    hit = lambda t, v: v[0] - 3.0  # noqa: E731
    hit.terminal = True
    sol = solve_ivp(rhs, (0, 10), [-1.0], events=hit, rtol=1e-12, atol=1e-14, method="DOP853")
    q = eif._quadrature()
    # time from V=3 to +inf is ~exp(-30): the event time is the period to ~1e-12
    assert math.isclose(sol.t_events[0][0], 1.0 / q.omega, rel_tol=1e-8)
    assert math.isclose(q.phase(-1.0)[0], 0.0, abs_tol=1e-14)
