"""Sparse backward pass against central finite differences (spike order held fixed)."""

import numpy as np
import pytest

import snn_blockbackend.sparseprop as sp

TAU = 0.01


def _run(model_cls, weight, drive, phases, n_spikes, tape=False, network=None):
    net = network if network is not None else sp.fixed_outdegree_network(60, 6, weight=weight, seed=2)
    return sp.simulate(model_cls(drive=drive, tau=TAU), net, n_spikes=n_spikes,
                       initial_phases=phases, record_tape=tape)


@pytest.mark.parametrize("model_cls, n_spikes", [(sp.LIF, 400), (sp.QIF, 120)])
def test_loss_gradient_matches_finite_differences(model_cls, n_spikes):
    weight, drive = -0.3, 0.3
    phases = model_cls(drive=drive).initial_phases(60, 3)
    loss_weights = np.random.default_rng(1).uniform(0.5, 1.5, n_spikes)
    base = _run(model_cls, weight, drive, phases, n_spikes, tape=True)
    grads = sp.loss_gradients(base, loss_weights)

    def loss(result):
        np.testing.assert_array_equal(result.neuron_ids, base.neuron_ids)  # same event order
        return float(loss_weights @ result.spike_times)

    eps = 1e-6
    fd_weight = (loss(_run(model_cls, weight + eps, drive, phases, n_spikes))
                 - loss(_run(model_cls, weight - eps, drive, phases, n_spikes))) / (2 * eps)
    fd_drive = (loss(_run(model_cls, weight, drive + eps, phases, n_spikes))
                - loss(_run(model_cls, weight, drive - eps, phases, n_spikes))) / (2 * eps)
    bump = np.zeros(60)
    bump[5] = eps
    fd_phase = (loss(_run(model_cls, weight, drive, phases + bump, n_spikes))
                - loss(_run(model_cls, weight, drive, phases - bump, n_spikes))) / (2 * eps)
    assert grads.weights == pytest.approx(fd_weight, rel=1e-6, abs=1e-7)
    assert grads.drive == pytest.approx(fd_drive, rel=1e-6, abs=1e-7)
    assert grads.initial_phases[5] == pytest.approx(fd_phase, rel=1e-5, abs=1e-7)
    assert abs(grads.weights) > 1e-3  # the check is not vacuous


def test_per_synapse_gradient_and_single_spike_time():
    import scipy.sparse as sparse

    rng = np.random.default_rng(4)
    n = 40
    dense = np.where(rng.random((n, n)) < 0.15, -rng.uniform(0.05, 0.3, (n, n)), 0.0)
    np.fill_diagonal(dense, 0.0)
    phases = sp.LIF(drive=0.3).initial_phases(n, 5)
    net = sp.from_sparse_matrix(sparse.csr_matrix(dense))
    base = _run(sp.LIF, None, 0.3, phases, 200, tape=True, network=net)
    target_spike = 150
    grads = sp.spike_time_gradient(base, target_spike)
    assert grads.weights.shape == (net.n_synapses,)
    # check the three synapses with the largest influence by finite differences
    for syn in np.argsort(-np.abs(grads.weights))[:3]:
        eps = 1e-7
        plus, minus = net.weights.copy(), net.weights.copy()
        plus[syn] += eps
        minus[syn] -= eps
        t = []
        for w in (plus, minus):
            perturbed = sp.Network(n, net.k, 0.0, 0, False, net.indptr, net.indices, w)
            res = _run(sp.LIF, None, 0.3, phases, 200, network=perturbed)
            np.testing.assert_array_equal(res.neuron_ids, base.neuron_ids)
            t.append(res.spike_times[target_spike])
        fd = (t[0] - t[1]) / (2 * eps)
        assert grads.weights[syn] == pytest.approx(fd, rel=1e-5, abs=1e-9)
        assert grads.weights[syn] != 0.0


def test_gradients_refuse_unsupported_runs():
    net = sp.fixed_outdegree_network(50, 5, seed=1)
    res = sp.simulate(sp.LIF(drive=0.3), net, n_spikes=50)
    with pytest.raises(ValueError, match="record_tape"):
        sp.loss_gradients(res, np.ones(res.n_spikes))
    taped = sp.simulate(sp.LIF(drive=0.3), net, n_spikes=50, record_tape=True)
    with pytest.raises(ValueError, match="shape"):
        sp.loss_gradients(taped, np.ones(3))
    with pytest.raises(ValueError, match="NaN"):
        sp.loss_gradients(taped, np.full(taped.n_spikes, np.nan))
    excit = sp.fixed_outdegree_network(50, 10, weight=0.6, seed=1)
    clamped = sp.simulate(sp.LIF(drive=0.3), excit, n_spikes=200, record_tape=True)
    with pytest.raises(ValueError, match="not differentiable"):
        sp.loss_gradients(clamped, np.ones(clamped.n_spikes))
