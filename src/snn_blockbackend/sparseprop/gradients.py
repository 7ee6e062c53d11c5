"""Event-based gradients of spike times (and of losses on them), sparse backward pass.

With the spike order held fixed, each spike s (spiker j, targets i) acts on the co-moving
keys y as: Phi_s = phi_th - y_j, ``y_i' = g(y_i + Phi_s) - Phi_s`` for targets, ``y_j' =
phi_r - Phi_s`` for the spiker, identity elsewhere; ``t_s = Phi_s * tau / omega``. The
vector-Jacobian product therefore touches only the 2K+1 non-zero entries per spike (no heap):

    ybar_j <- ybar_j + sum_i (1 - g'_i) ybar_i - tbar_s * tau / omega
    ybar_i <- g'_i ybar_i
    cbar   += ybar_i * dg/dc,   omegabar += ybar_i * dg/domega - tbar_s * t_s / omega

Parameters: the synaptic voltage jumps J (c = J * coupling_factor(I)) and the drive I (which
sets omega and the coupling factor). Initial phases are held fixed when I changes.
Supported: LIF and QIF, method ``"sparseprop"`` with ``record_tape=True``, no external input,
inputs that never push a neuron over threshold (the clamp is not differentiable).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from numba import njit

from .connectivity import hash_table_size
from .kernels import _fill_targets
from .phasecurves import EIF_ID, LIF_ID, ptc_derivatives
from .result import SimulationResult


@dataclass
class Gradients:
    """dL/d(parameters). ``weights``: per synapse (stored CSR order) or a scalar for a uniform
    weight; ``drive``: scalar; ``initial_phases``: per neuron."""

    weights: np.ndarray | float
    drive: float
    initial_phases: np.ndarray


@njit(cache=True)
def _backward(ids, phase_at_spike, dl_dt, tape, model_id, omega, tau, c_factor, n,
              online, indptr, indices, weights, uniform_w, weight, k, seed_key, dweights):
    ybar = np.zeros(n)
    buf = np.empty(max(k, 1), dtype=np.int64)
    table = np.full(hash_table_size(k) if online else 1, -1, dtype=np.int64)
    # tape offsets: cumulative target counts in spike order
    n_spikes = ids.shape[0]
    offsets = np.empty(n_spikes + 1, dtype=np.int64)
    offsets[0] = 0
    for s in range(n_spikes):
        j = ids[s]
        count = k if online else indptr[j + 1] - indptr[j]
        offsets[s + 1] = offsets[s] + count
    omega_bar = 0.0
    factor_bar = 0.0
    thr_arg = np.exp(-1.0 / omega)
    for s in range(n_spikes - 1, -1, -1):
        j = ids[s]
        count, start = _fill_targets(j, n, online, indptr, indices, k, seed_key, buf, table)
        acc = ybar[j]
        base = offsets[s]
        for c in range(count):
            i = buf[c]
            w = weight if uniform_w else weights[start + c]
            cval = w * c_factor
            phi = tape[base + c]
            if model_id == LIF_ID and np.exp(-phi / omega) + cval <= thr_arg:
                return 1, 0.0, 0.0, ybar  # threshold clamp: not differentiable
            gp, gc, gw = ptc_derivatives(model_id, phi, cval, omega)
            a = ybar[i]
            acc += (1.0 - gp) * a
            ybar[i] = gp * a
            cbar = a * gc
            if uniform_w:
                dweights[0] += cbar * c_factor
            else:
                dweights[start + c] += cbar * c_factor
            factor_bar += cbar * w
            omega_bar += a * gw
        t_s = phase_at_spike[s] * tau / omega
        acc -= dl_dt[s] * tau / omega
        omega_bar -= dl_dt[s] * t_s / omega
        ybar[j] = acc
    return 0, omega_bar, factor_bar, ybar


def loss_gradients(result: SimulationResult, dloss_dtimes) -> Gradients:
    """Gradients of a loss L(spike times) given dL/dt_s for every recorded spike."""
    if result.tape is None or result.method != "sparseprop":
        raise ValueError("gradients need simulate(..., method='sparseprop', record_tape=True, n_spikes=...)")
    model = result.extras["model"]
    network = result.extras["network"]
    if model.model_id == EIF_ID:
        raise ValueError("gradients are implemented for LIF and QIF only")
    if result.extras.get("external"):
        raise ValueError("gradients with external input are not supported")
    dl_dt = np.ascontiguousarray(dloss_dtimes, dtype=np.float64)
    if dl_dt.shape != result.spike_times.shape:
        raise ValueError(f"dloss_dtimes must have shape {result.spike_times.shape}, got {dl_dt.shape}")
    if not np.isfinite(dl_dt).all():
        raise ValueError("dloss_dtimes contains NaN or infinite values")
    omega = float(model.omega)
    c_factor = float(model.coupling_factor)
    conn = network.kernel_args()
    dweights = np.zeros(1 if network.uniform_weight else network.n_synapses)
    phase_at_spike = result.spike_times * omega / model.tau
    status, omega_bar, factor_bar, ybar = _backward(result.neuron_ids, phase_at_spike, dl_dt, result.tape,
                                            model.model_id, omega, model.tau, c_factor,
                                            result.n_neurons, *conn, dweights)
    if status != 0:
        raise ValueError("an input pushed a neuron over threshold (excitatory clamp); "
                         "the spike map is not differentiable there")
    drive = float(model.drive)
    d_drive = omega_bar * model.domega_ddrive(drive) + factor_bar * model.dfactor_ddrive(drive)
    d_weights = float(dweights[0]) if network.uniform_weight else dweights
    return Gradients(d_weights, float(d_drive), ybar.copy())


def spike_time_gradient(result: SimulationResult, spike_index: int) -> Gradients:
    """Gradient of one spike time t_s with respect to weights, drive and initial phases."""
    if not -result.n_spikes <= spike_index < result.n_spikes:
        raise IndexError(f"spike_index {spike_index} out of range for {result.n_spikes} spikes")
    onehot = np.zeros(result.n_spikes)
    onehot[spike_index] = 1.0
    return loss_gradients(result, onehot)
