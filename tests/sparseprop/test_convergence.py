"""A fine time-stepped simulation approaches the event-driven spike times as dt -> 0."""

import numpy as np

import snn_blockbackend.sparseprop as sp

TAU = 0.01


def _time_stepped_lif(model, net, v0, dt, t_stop):
    """Forward-Euler LIF in voltage space; spikes detected at the end of a step, inputs
    delivered at once. Its spike-time error is O(dt)."""
    drive = model.drive
    targets = [net.targets(j) for j in range(net.n_neurons)]
    v = v0.copy()
    times, ids = [], []
    for step in range(int(round(t_stop / dt))):
        v += dt / TAU * (-v + 1.0 + drive)
        fired = np.flatnonzero(v >= 1.0)
        for j in fired:
            times.append((step + 1) * dt)
            ids.append(j)
            v[j] = 0.0
        for j in fired:
            v[targets[j]] += net.weight
    return np.array(times), np.array(ids)


def test_time_stepped_lif_converges_to_event_driven():
    n, k, t_stop = 30, 4, 0.05
    model = sp.LIF(drive=0.3, tau=TAU)
    net = sp.fixed_outdegree_network(n, k, weight=-0.15, seed=3)
    exact = sp.simulate(model, net, t_stop=t_stop, seed=4)
    v0 = model.voltage(exact.initial_phases)
    n_compare = 40
    assert exact.n_spikes >= n_compare
    errors = []
    for dt in (1e-5, 1e-6, 1e-7):
        times, ids = _time_stepped_lif(model, net, v0, dt, t_stop)
        assert np.array_equal(ids[:n_compare], exact.neuron_ids[:n_compare])
        errors.append(np.max(np.abs(times[:n_compare] - exact.spike_times[:n_compare])))
    # first-order convergence: each 10x smaller dt shrinks the error by well over 3x
    assert errors[0] > 3 * errors[1] > 9 * errors[2]
    assert errors[2] < 5e-6
