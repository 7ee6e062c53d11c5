"""Bad input gives a clear ValueError/TypeError before any work is done."""

import math

import numpy as np
import pytest

import snn_blockbackend.sparseprop as sp


@pytest.mark.parametrize("n, k, match", [(10, 10, "smaller than n"), (10, 15, "smaller than n"),
                                         (10, 0, "k"), (10, -3, "k"), (1, 1, "n")])
def test_degree_and_size(n, k, match):
    with pytest.raises(ValueError, match=match):
        sp.fixed_outdegree_network(n, k)


def test_non_integer_sizes():
    with pytest.raises(TypeError):
        sp.fixed_outdegree_network(10.5, 2)
    with pytest.raises(TypeError):
        sp.fixed_outdegree_network("100", 2)


@pytest.mark.parametrize("cls", [sp.LIF, sp.QIF, sp.EIF])
@pytest.mark.parametrize("tau", [0.0, -0.01, math.nan, math.inf])
def test_bad_time_constant(cls, tau):
    with pytest.raises(ValueError, match="tau"):
        cls(drive=0.1, tau=tau)


@pytest.mark.parametrize("cls", [sp.LIF, sp.QIF])
@pytest.mark.parametrize("drive", [0.0, -0.5, math.nan])
def test_bad_drive(cls, drive):
    with pytest.raises(ValueError, match="drive"):
        cls(drive=drive)


def test_bad_drive_arrays_and_types():
    with pytest.raises(ValueError, match="NaN"):
        sp.LIF(drive=np.array([0.1, np.nan]))
    with pytest.raises(ValueError, match="drive"):
        sp.QIF(drive=np.array([0.1, -0.1]))
    with pytest.raises(TypeError):
        sp.LIF(drive="0.1")
    with pytest.raises(ValueError, match="delta_t"):
        sp.EIF(drive=-0.2, delta_t=0.1)  # below -delta_t: no repetitive firing
    with pytest.raises(ValueError, match="delta_t"):
        sp.EIF(delta_t=math.nan)


@pytest.mark.parametrize("kwargs, match", [
    (dict(k=0), "k"), (dict(rate_hz=0.0), "rate_hz"), (dict(rate_hz=-1.0), "rate_hz"),
    (dict(tau=-1.0), "tau"), (dict(j0=math.nan), "NaN")])
def test_balanced_drive_rejects(kwargs, match):
    args = dict(k=100, j0=1.0, rate_hz=1.0, tau=0.01) | kwargs
    with pytest.raises(ValueError, match=match):
        sp.balanced_drive(**args)


def test_bad_weights():
    with pytest.raises(ValueError, match="finite"):
        sp.fixed_outdegree_network(10, 2, weight=math.nan)
    with pytest.raises(TypeError):
        sp.fixed_outdegree_network(10, 2, weight="strong")


def test_excitatory_couplings_are_handled_by_threshold_clamp():
    # LIF phase formula breaks down for excitation (log of a non-positive number); we clamp
    net = sp.fixed_outdegree_network(100, 10, weight=0.5, seed=1)
    res = sp.simulate(sp.LIF(drive=0.1), net, n_spikes=500, seed=1)
    assert np.all(np.isfinite(res.spike_times))
    assert np.all(np.diff(res.spike_times) >= 0)  # time never runs backwards
    assert np.any(np.diff(res.spike_times) == 0)  # clamped neurons fire at once


def test_simulate_argument_checks():
    net = sp.fixed_outdegree_network(50, 5, seed=1)
    model = sp.LIF(drive=0.2)
    with pytest.raises(ValueError, match="t_stop"):
        sp.simulate(model, net)
    with pytest.raises(ValueError, match="t_stop"):
        sp.simulate(model, net, t_stop=-1.0)
    with pytest.raises(ValueError, match="t_stop"):
        sp.simulate(model, net, t_stop=math.nan)
    with pytest.raises(ValueError, match="n_spikes"):
        sp.simulate(model, net, n_spikes=0)
    with pytest.raises(ValueError, match="method"):
        sp.simulate(model, net, n_spikes=5, method="fast")
    with pytest.raises(ValueError, match="initial_phases"):
        sp.simulate(model, net, n_spikes=5, initial_phases=np.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        sp.simulate(model, net, n_spikes=5, initial_phases=np.full(50, np.nan))
    with pytest.raises(ValueError, match="heterogeneous"):
        sp.simulate(sp.LIF(drive=np.full(50, 0.2)), net, n_spikes=5, method="sparseprop")
    with pytest.raises(ValueError, match="length"):
        sp.simulate(sp.LIF(drive=np.full(49, 0.2)), net, n_spikes=5)
    with pytest.raises(TypeError):
        sp.simulate("lif", net, n_spikes=5)
    with pytest.raises(ValueError, match="targets"):
        sp.simulate(model, net, n_spikes=5, external=sp.ExternalInput([0.1], [99], [0.1]))
    with pytest.raises(ValueError, match="uniform coupling"):
        import scipy.sparse as sparse
        w = sparse.random(20, 20, density=0.2, random_state=1, format="csr") * -0.1
        w.setdiag(0)
        w.eliminate_zeros()
        sp.simulate(sp.EIF(), sp.from_sparse_matrix(w), n_spikes=5)


def test_external_input_and_binning_checks():
    with pytest.raises(ValueError, match="NaN"):
        sp.ExternalInput([np.nan], [0], [0.1])
    with pytest.raises(ValueError, match="rate_hz"):
        sp.poisson_input(10, rate_hz=0.0, t_stop=1.0, weight=0.1)
    with pytest.raises(ValueError, match="rate_hz"):
        sp.poisson_input(10, rate_hz=math.nan, t_stop=1.0, weight=0.1)
    res = sp.simulate(sp.LIF(drive=0.2), sp.fixed_outdegree_network(20, 2, seed=1), n_spikes=20)
    with pytest.raises(ValueError, match="dt"):
        res.bin_spikes(0.0)


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown model"):
        sp.make_model("hh")
