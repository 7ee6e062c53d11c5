"""SparseProp against the conventional O(N) event-driven algorithm on identical networks."""

import numpy as np
import pytest

import snn_blockbackend.sparseprop as sp

TAU = 0.01


def _lif(k):
    return sp.LIF(drive=sp.balanced_drive(k, 1.0, 1.0, TAU), tau=TAU)


def _assert_same_spikes(a, b, atol_s):
    assert a.n_spikes == b.n_spikes > 0
    np.testing.assert_array_equal(a.neuron_ids, b.neuron_ids)
    assert np.max(np.abs(a.spike_times - b.spike_times)) <= atol_s


def test_lif_matches_reference_10k_spikes():
    net = sp.fixed_outdegree_network(2000, 100, seed=1)
    model = _lif(100)
    fast = sp.simulate(model, net, n_spikes=10_000, seed=3)
    ref = sp.simulate(model, net, n_spikes=10_000, seed=3, method="reference")
    _assert_same_spikes(fast, ref, 1e-9)


@pytest.mark.slow
def test_lif_matches_reference_100k_spikes_large_network():
    net = sp.fixed_outdegree_network(100_000, 100, seed=1, stored=False)
    model = _lif(100)
    fast = sp.simulate(model, net, n_spikes=100_000, seed=1)
    ref = sp.simulate(model, net, n_spikes=100_000, seed=1, method="reference")
    _assert_same_spikes(fast, ref, 1e-9)


def test_qif_matches_reference_over_short_window():
    # QIF networks are chaotic: rounding differences grow exponentially (here ~1e-15 s at
    # 1000 spikes, ~1e-8 s at 3000), so compare a window well inside the predictable range
    net = sp.fixed_outdegree_network(2000, 50, seed=2)
    model = sp.QIF(drive=sp.balanced_drive(50, 1.0, 1.0, TAU), tau=TAU)
    fast = sp.simulate(model, net, n_spikes=1500, seed=4)
    ref = sp.simulate(model, net, n_spikes=1500, seed=4, method="reference")
    _assert_same_spikes(fast, ref, 1e-9)


def test_eif_matches_reference_with_same_table():
    net = sp.fixed_outdegree_network(1000, 50, seed=5)
    model = sp.EIF(drive=sp.balanced_drive(50, 1.0, 1.0, TAU), tau=TAU)
    # EIF networks are chaotic too (1e-13 s at 300 spikes, 2e-9 s at 800): short window
    fast = sp.simulate(model, net, n_spikes=500, seed=6)
    ref = sp.simulate(model, net, n_spikes=500, seed=6, method="reference")
    _assert_same_spikes(fast, ref, 1e-9)


def test_eif_table_simulation_matches_quadrature_event_loop():
    # an independent, slow event loop that evaluates the exact PTC by quadrature at every input
    n, k, n_spikes = 40, 4, 150
    net = sp.fixed_outdegree_network(n, k, seed=7)
    model = sp.EIF(drive=0.1, tau=TAU)
    quad = model._quadrature()
    fast = sp.simulate(model, net, n_spikes=n_spikes, seed=8)
    phases = fast.initial_phases.copy()
    total, times, ids = 0.0, [], []
    for _ in range(n_spikes):
        j = int(np.argmax(phases))
        step = 1.0 - phases[j]
        phases += step
        total += step
        targets = net.targets(j)
        phases[targets] = quad.ptc_exact(phases[targets], net.weight)
        phases[j] = 0.0
        times.append(total * TAU / quad.omega)
        ids.append(j)
    np.testing.assert_array_equal(fast.neuron_ids, ids)
    # table error < 1e-9 in phase -> spike-time error of the same order (phase/omega*tau)
    assert np.max(np.abs(fast.spike_times - np.array(times))) < 1e-9


def test_online_connectivity_equals_stored_csr():
    model = _lif(30)
    stored = sp.fixed_outdegree_network(3000, 30, seed=9)
    online = sp.fixed_outdegree_network(3000, 30, seed=9, stored=False)
    a = sp.simulate(model, stored, n_spikes=5000, seed=1)
    b = sp.simulate(model, online, n_spikes=5000, seed=1)
    _assert_same_spikes(a, b, 0.0)


def test_timebased_equals_phase_based_for_homogeneous_drive():
    net = sp.fixed_outdegree_network(1500, 40, seed=10)
    for model in (_lif(40), sp.QIF(drive=0.2, tau=TAU)):
        a = sp.simulate(model, net, n_spikes=3000, seed=2)
        b = sp.simulate(model, net, n_spikes=3000, seed=2, method="timebased")
        _assert_same_spikes(a, b, 1e-9)


def test_renormalisation_does_not_change_spikes():
    net = sp.fixed_outdegree_network(500, 20, seed=11)
    model = _lif(20)
    often = sp.simulate(model, net, n_spikes=20_000, seed=3, renorm_every=7)
    never = sp.simulate(model, net, n_spikes=20_000, seed=3, renorm_every=10**12)
    _assert_same_spikes(often, never, 1e-10)


def test_heterogeneous_drive_timebased_matches_numpy_reference():
    n, k = 60, 6
    net = sp.fixed_outdegree_network(n, k, weight=-0.2, seed=12)
    drive = 0.3 * (1.0 + 0.4 * np.sin(2.0 * np.arange(1, n + 1) / n))
    for model in (sp.LIF(drive=drive, tau=TAU), sp.QIF(drive=drive, tau=TAU)):
        res = sp.simulate(model, net, n_spikes=400, seed=13)
        assert res.method == "timebased"
        # plain O(N) reference with one phase velocity per neuron, written out in numpy
        omega = np.asarray(model.omega)
        factor = np.asarray(model.coupling_factor)
        phases = res.initial_phases.copy()
        th, rs = model.threshold, model.reset
        now, times, ids = 0.0, [], []
        for _ in range(400):
            wait = (th - phases) / omega
            j = int(np.argmin(wait))
            phases += wait[j] * omega
            now += wait[j]
            for i in net.targets(j):
                c = net.weight * factor[i]
                if isinstance(model, sp.LIF):
                    phases[i] = -omega[i] * np.log(np.exp(-phases[i] / omega[i]) + c)
                else:
                    phases[i] = 2 * np.arctan(np.tan(phases[i] / 2) + c)
            phases[j] = rs
            times.append(now * TAU)
            ids.append(j)
        np.testing.assert_array_equal(res.neuron_ids, ids)
        assert np.max(np.abs(res.spike_times - np.array(times))) < 1e-9


def test_external_poisson_input_matches_reference():
    net = sp.fixed_outdegree_network(400, 20, seed=14)
    model = _lif(20)
    for weight in (-0.1, 0.3):  # inhibitory and excitatory (threshold clamp) external input
        ext = sp.poisson_input(400, rate_hz=20.0, t_stop=0.2, weight=weight, seed=15)
        a = sp.simulate(model, net, t_stop=0.2, seed=1, external=ext)
        b = sp.simulate(model, net, t_stop=0.2, seed=1, external=ext, method="reference")
        c = sp.simulate(model, net, t_stop=0.2, seed=1, external=ext, method="timebased")
        assert a.n_spikes == b.n_spikes == c.n_spikes > 0
        # clamped neurons spike at the same instant; compare as time-sorted sequences
        np.testing.assert_allclose(np.sort(a.spike_times), np.sort(b.spike_times), rtol=0, atol=1e-9)
        np.testing.assert_allclose(np.sort(c.spike_times), np.sort(b.spike_times), rtol=0, atol=1e-9)
        assert sorted(a.neuron_ids.tolist()) == sorted(b.neuron_ids.tolist())


def test_mixed_excitatory_inhibitory_matrix_matches_reference():
    import scipy.sparse as sparse

    rng = np.random.default_rng(16)
    n = 300
    dense = np.where(rng.random((n, n)) < 0.05, rng.choice([0.05, -0.2], size=(n, n)), 0.0)
    np.fill_diagonal(dense, 0.0)
    net = sp.from_sparse_matrix(sparse.csr_matrix(dense))
    model = sp.LIF(drive=0.3, tau=TAU)
    a = sp.simulate(model, net, n_spikes=4000, seed=2)
    b = sp.simulate(model, net, n_spikes=4000, seed=2, method="reference")
    # Excitatory inputs that cross threshold make the target spike at the same instant
    # (threshold clamp). The order of simultaneous spikes is a tie that the two algorithms
    # may break differently, and as inputs do not commute across a clamp the runs may then
    # part. So: the runs agree exactly up to their first difference, and that difference
    # happens inside a group of simultaneous spikes.
    differ = np.flatnonzero(a.neuron_ids != b.neuron_ids)
    first = int(differ[0]) if differ.size else a.n_spikes
    assert np.any(np.diff(b.spike_times[:first + 1]) < 1e-12), "the excitatory clamp should occur"
    np.testing.assert_allclose(a.spike_times[:first + 1], b.spike_times[:first + 1], rtol=0, atol=1e-9)
    if differ.size:
        assert first > 0 and b.spike_times[first] - b.spike_times[first - 1] < 1e-12
    # and the runs stay statistically alike (no time reversal, similar rates)
    assert np.all(np.diff(a.spike_times) >= 0)
    assert abs(a.spike_times[-1] / b.spike_times[-1] - 1.0) < 0.1


def test_same_seed_same_spikes_different_seed_different():
    model = _lif(20)
    a = sp.simulate(model, sp.fixed_outdegree_network(500, 20, seed=1), n_spikes=2000, seed=5)
    b = sp.simulate(model, sp.fixed_outdegree_network(500, 20, seed=1), n_spikes=2000, seed=5)
    c = sp.simulate(model, sp.fixed_outdegree_network(500, 20, seed=2), n_spikes=2000, seed=5)
    np.testing.assert_array_equal(a.neuron_ids, b.neuron_ids)
    np.testing.assert_array_equal(a.spike_times, b.spike_times)
    assert not np.array_equal(a.neuron_ids, c.neuron_ids)


def test_t_stop_and_chunking_consistent():
    net = sp.fixed_outdegree_network(500, 20, seed=1)
    model = _lif(20)
    whole = sp.simulate(model, net, t_stop=0.3, seed=1)
    chunked = sp.simulate(model, net, t_stop=0.3, seed=1, chunk=97)
    _assert_same_spikes(whole, chunked, 0.0)
    assert whole.spike_times[-1] <= 0.3 and whole.t_stop == 0.3
