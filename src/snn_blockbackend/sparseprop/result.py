"""Simulation result: spike times/ids, summary statistics, binning into torch tensors."""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np


def isi_cv(spike_times: np.ndarray, neuron_ids: np.ndarray) -> float:
    """Mean over neurons (with >= 2 inter-spike intervals) of std(ISI) / mean(ISI)."""
    if spike_times.size < 3:
        return float("nan")
    order = np.lexsort((spike_times, neuron_ids))
    ids = neuron_ids[order]
    times = spike_times[order]
    same = ids[1:] == ids[:-1]
    isi = np.diff(times)[same]
    owner = ids[1:][same]
    if isi.size == 0:
        return float("nan")
    counts = np.bincount(owner)
    sums = np.bincount(owner, weights=isi)
    sq = np.bincount(owner, weights=isi * isi)
    ok = counts >= 2
    if not ok.any():
        return float("nan")
    mean = sums[ok] / counts[ok]
    var = np.maximum(sq[ok] / counts[ok] - mean * mean, 0.0)
    return float(np.mean(np.sqrt(var) / mean))


def bin_spike_events(spike_times: np.ndarray, neuron_ids: np.ndarray, n_neurons: int, dt: float,
                     t_stop: float, sparse: bool = True, dtype=None):
    """Time-first spike tensor [T, N] with T = ceil(t_stop / dt); entry = spike count in bin."""
    import torch

    if isinstance(dt, bool) or not isinstance(dt, (int, float)) or math.isnan(dt) or dt <= 0 \
            or not math.isfinite(dt):
        raise ValueError(f"dt must be positive and finite, got {dt!r}")
    dtype = torch.float32 if dtype is None else dtype
    n_bins = max(1, int(math.ceil(t_stop / dt - 1e-12)))
    bins = np.minimum((spike_times / dt).astype(np.int64), n_bins - 1)
    keep = spike_times <= t_stop
    idx = torch.from_numpy(np.stack([bins[keep], neuron_ids[keep].astype(np.int64)]))
    values = torch.ones(idx.shape[1], dtype=dtype)
    tensor = torch.sparse_coo_tensor(idx, values, (n_bins, n_neurons), check_invariants=False).coalesce()
    return tensor if sparse else tensor.to_dense()


@dataclass
class SimulationResult:
    """Spikes of one run. ``spike_times`` in seconds (float64), ``neuron_ids`` int32."""

    spike_times: np.ndarray
    neuron_ids: np.ndarray
    n_neurons: int
    t_stop: float
    method: str
    wall_time_s: float
    initial_phases: np.ndarray = field(repr=False)
    final_phases: np.ndarray | None = field(default=None, repr=False)
    tape: np.ndarray | None = field(default=None, repr=False)
    extras: dict = field(default_factory=dict, repr=False)
    compile_time_s: float = 0.0  # numba compiling (or loading) the loops before the run; not in wall_time_s

    @property
    def n_spikes(self) -> int:
        return int(self.spike_times.shape[0])

    @property
    def rate_hz(self) -> float:
        """Mean firing rate over the simulated window."""
        return self.n_spikes / (self.n_neurons * self.t_stop) if self.t_stop > 0 else float("nan")

    @property
    def cv(self) -> float:
        return isi_cv(self.spike_times, self.neuron_ids)

    @property
    def us_per_spike(self) -> float:
        """Wall-clock microseconds per network spike (compilation excluded: see ``compile_time_s``)."""
        return 1e6 * self.wall_time_s / self.n_spikes if self.n_spikes else float("nan")

    def bin_spikes(self, dt: float, t_stop: float | None = None, sparse: bool = True, dtype=None):
        """Spikes as a time-first torch tensor [T, N] at resolution ``dt`` seconds.

        Sparse COO by default (``.to_dense()`` to feed snnTorch/SpikingJelly/Norse layers).
        """
        return bin_spike_events(self.spike_times, self.neuron_ids, self.n_neurons, dt,
                                self.t_stop if t_stop is None else t_stop, sparse, dtype)

    def summary(self) -> dict:
        return {"spikes": self.n_spikes, "rate_hz": self.rate_hz, "cv": self.cv,
                "us_per_spike": self.us_per_spike, "compile_s": self.compile_time_s}
