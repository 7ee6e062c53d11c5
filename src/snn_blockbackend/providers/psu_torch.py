"""Parallel spiking units (PSU, IPSU, RPSU, PPSU) as dense GEMMs over time, in plain PyTorch ops.

Input is flattened to X of shape [T, N] (time-major, every other dimension in N). The fixed matrices are
built from a per-step ``gain`` and ``decay`` (see ``snn_blockbackend.psu.functional.leak_coefficients``):

    A[t,s] = gain * decay^(t-s)  (s <= t)          leak / integration
    R[t,s] = -decay^(t-s)        (s <  t)          reset accumulation (diagonal 0)

Each unit is one GEMM for the membrane plus (PSU, RPSU, PPSU) one GEMM for the sigmoid reset estimate:

    PSU : H = A X;            V = H + theta * R sigmoid(H)
    IPSU: V = (tril(W) + R) X + b                         (one addmm)
    RPSU: V = A X + R sigmoid(tril(W) X + b)              (A and tril(W) stacked into one GEMM)
    PPSU: P = tril(W) X + b;  V = P + R sigmoid(P)

and spikes S = spike_fn(V - theta). Gradients come from autograd through these operations.
"""

from __future__ import annotations

import functools

import torch

from ..plugins import hookimpl


@functools.lru_cache(maxsize=64)
def _cached_matrices(T: int, gain: float, decay: float, dtype: torch.dtype, device: torch.device):
    t = torch.arange(T, device=device, dtype=torch.float64)
    lag = t[:, None] - t[None, :]
    # powers in float64, then one rounding to the target dtype (decay=0 is not allowed, so 0^0 never occurs)
    decay_pow = torch.where(lag >= 0, decay ** lag.clamp(min=0), torch.zeros((), dtype=torch.float64, device=device))
    leak = (gain * decay_pow).to(dtype)
    reset = torch.where(lag >= 1, -decay_pow, torch.zeros((), dtype=torch.float64, device=device)).to(dtype)
    # decay^(t+1): how an initial state (h, k) reaches step t
    carry = (decay ** (t + 1)).to(dtype)
    return leak, reset, carry


def leak_matrices(T: int, gain: float, decay: float, dtype=torch.float32, device=None):
    """The fixed matrices ``(A, R)`` of shape [T, T] (fresh copies; safe to modify)."""
    leak, reset, _ = _cached_matrices(int(T), float(gain), float(decay), dtype, torch.device(device or "cpu"))
    return leak.clone(), reset.clone()


def run_psu_gemm(kind, x, *, gain, decay, threshold, weight, bias, spike_fn, state):
    """Membrane and spikes of one unit over X [T, N]; returns (spikes, membrane, final_state or None)."""
    T = x.shape[0]
    leak, reset, carry = _cached_matrices(T, float(gain), float(decay), x.dtype, x.device)
    final = None
    if kind == "psu":
        h = leak @ x
        if state is not None:
            h = h + carry[:, None] * state[0]
        estimate = torch.sigmoid(h)
        reset_sum = reset @ estimate  # -sum_{s<t} decay^(t-s) sigmoid(H[s])
        if state is not None:
            reset_sum = reset_sum - carry[:, None] * state[1]
        membrane = h + threshold * reset_sum
        # streaming state after the last step: H[T-1] and the reset accumulator including sigmoid(H[T-1])
        final = (h[-1], estimate[-1] - reset_sum[-1])
    elif kind == "ipsu":
        membrane = torch.addmm(bias[:, None], torch.tril(weight) + reset, x)
    elif kind == "rpsu":
        stacked = torch.cat((leak, torch.tril(weight))) @ x
        estimate = torch.sigmoid(stacked[T:] + bias[:, None])
        membrane = stacked[:T] + reset @ estimate
    elif kind == "ppsu":
        pre = torch.addmm(bias[:, None], torch.tril(weight), x)
        membrane = pre + reset @ torch.sigmoid(pre)
    else:
        raise ValueError(f"unknown unit {kind!r}")
    spikes = spike_fn(membrane - threshold)
    return spikes, membrane, final


class TorchPSUProvider:
    name = "torch"
    priority = 10

    def supports(self, kind, device):
        return None

    def run(self, kind, x, **kwargs):
        return run_psu_gemm(kind, x, **kwargs)


@hookimpl
def snn_blockbackend_psu_providers():
    return [TorchPSUProvider()]
