"""SparseProp: exact event-driven simulation of large sparse spiking networks.

Implements Engelken (NeurIPS 2023), "SparseProp": pulse-coupled LIF/QIF/EIF neurons in a
co-moving phase frame with an indexed binary max-heap, O(K log N) per network spike,
plus a time-based variant for heterogeneous drives, the conventional O(N) reference
algorithm, and an O(K)-per-spike backward pass for gradients of spike times.

Quick start::

    from snn_blockbackend import sparseprop as sp
    model = sp.LIF(drive=sp.balanced_drive(k=100, rate_hz=1.0, tau=0.01), tau=0.01)
    net = sp.fixed_outdegree_network(100_000, 100, seed=0, stored=False)
    res = sp.simulate(model, net, t_stop=1.0, seed=0)
    res.spike_times, res.neuron_ids, res.rate_hz, res.cv
    spikes = res.bin_spikes(dt=1e-3)          # torch sparse [T, N], time first

Requires numba (the ``[sparseprop]`` extra); scipy only for :func:`from_sparse_matrix`
with scipy input and :meth:`Network.to_scipy`.
"""

from .connectivity import (Network, NetworkTooLargeError, available_memory_bytes, default_weight,
                           estimate_memory_bytes, fixed_outdegree_network, from_sparse_matrix)
from .gradients import Gradients, loss_gradients, spike_time_gradient
from .heap import IndexedMaxHeap
from .inputs import ExternalInput, poisson_input
from .models import EIF, LIF, QIF, balanced_drive, make_model
from .result import SimulationResult, bin_spike_events, isi_cv, isi_cv_per_neuron
from .simulate import METHODS, simulate

__all__ = [
    "LIF", "QIF", "EIF", "make_model", "balanced_drive",
    "Network", "fixed_outdegree_network", "from_sparse_matrix", "default_weight",
    "estimate_memory_bytes", "available_memory_bytes", "NetworkTooLargeError",
    "ExternalInput", "poisson_input",
    "simulate", "METHODS", "SimulationResult", "bin_spike_events", "isi_cv", "isi_cv_per_neuron",
    "Gradients", "loss_gradients", "spike_time_gradient",
    "IndexedMaxHeap",
]
