"""External input as event lists: (time, target neuron, voltage jump), sorted by time."""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class ExternalInput:
    """External delta-synapse input events. ``times`` in seconds, sorted ascending."""

    times: np.ndarray
    targets: np.ndarray
    weights: np.ndarray

    def __post_init__(self):
        times = np.ascontiguousarray(self.times, dtype=np.float64)
        targets = np.ascontiguousarray(self.targets, dtype=np.int64)
        weights = np.broadcast_to(np.asarray(self.weights, dtype=np.float64), times.shape).copy()
        if times.ndim != 1 or targets.shape != times.shape:
            raise ValueError("times and targets must be 1-D arrays of equal length")
        if not (np.isfinite(times).all() and np.isfinite(weights).all()):
            raise ValueError("external input times and weights must be finite (no NaN)")
        if times.size and (times < 0).any():
            raise ValueError("external input times must be >= 0")
        if times.size > 1 and (np.diff(times) < 0).any():
            order = np.argsort(times, kind="stable")
            times, targets, weights = times[order], targets[order], weights[order]
        object.__setattr__(self, "times", times)
        object.__setattr__(self, "targets", targets)
        object.__setattr__(self, "weights", weights)

    def __len__(self) -> int:
        return self.times.shape[0]

    def check_targets(self, n_neurons: int) -> None:
        if self.targets.size and (self.targets.min() < 0 or self.targets.max() >= n_neurons):
            raise ValueError(f"external input targets must lie in [0, {n_neurons})")


def poisson_input(n_neurons: int, rate_hz: float, t_stop: float, weight: float,
                  seed: int = 0) -> ExternalInput:
    """Independent Poisson trains of ``rate_hz`` into every neuron until ``t_stop`` seconds."""
    for name, value in (("rate_hz", rate_hz), ("t_stop", t_stop)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) or math.isnan(value) \
                or value <= 0 or not math.isfinite(value):
            raise ValueError(f"{name} must be positive and finite, got {value!r}")
    if isinstance(weight, bool) or not isinstance(weight, (int, float)) or not math.isfinite(weight):
        raise ValueError(f"weight must be finite, got {weight!r}")
    if isinstance(n_neurons, bool) or not isinstance(n_neurons, (int, np.integer)) or n_neurons < 1:
        raise ValueError(f"n_neurons must be a positive integer, got {n_neurons!r}")
    rng = np.random.default_rng(seed)
    count = rng.poisson(n_neurons * rate_hz * t_stop)
    times = np.sort(rng.uniform(0.0, t_stop, count))
    targets = rng.integers(0, n_neurons, count)
    return ExternalInput(times, targets, np.full(count, float(weight)))
