"""Parallel spiking units (PSU, IPSU, RPSU, PPSU) as dense GEMMs over time, in plain PyTorch ops.

Input is flattened to X of shape [T, N] (time-major, every other dimension in N). The fixed matrices are
built from a per-step ``gain`` and ``decay`` (see ``snn_blockbackend.psu.functional.leak_coefficients``):

    A[t,s] = gain * decay^(t-s)  (s <= t)          leak / integration
    R[t,s] = -decay^(t-s)        (s <  t)          reset accumulation (diagonal 0)

Each unit is a GEMM for the membrane plus (PSU, RPSU, PPSU) one for the sigmoid reset estimate:

    PSU : H = A X;            V = H + theta * R sigmoid(H)
    IPSU: V = (tril(W) + R) X + b                         (one addmm)
    RPSU: V = A X + R sigmoid(tril(W) X + b)
    PPSU: P = tril(W) X + b;  V = P + R sigmoid(P)

A and R are exponential Toeplitz matrices, so for T > 2 * CHUNK their products are computed chunk-wise
(``_toeplitz``): one batched GEMM over chunks of CHUNK steps, joined by the exact carry
``in[c+1] = end[c] + decay^CHUNK in[c]`` (itself one small [C, C] GEMM). Same values, O(T * CHUNK * N) work.
The learned T x T matrix W is not Toeplitz and is always one full GEMM.

and spikes S = spike_fn(V - theta). Gradients come from autograd through these operations.
"""

from __future__ import annotations

import functools

import torch

from ..plugins import hookimpl


# Time-chunk length for the fixed (Toeplitz) matrices: longer sequences are cut into chunks of this length,
# each chunk is one small GEMM (all chunks in one batched matmul) and the chunks are joined through PSU's
# exact two-variable carry, so the cost is O(T * CHUNK * N) instead of O(T^2 * N). 0 disables chunking.
CHUNK = 16


@functools.lru_cache(maxsize=64)
def _cached_matrices(T: int, gain: float, decay: float, dtype: torch.dtype, device: torch.device):
    t = torch.arange(T, device=device, dtype=torch.float64)
    lag = t[:, None] - t[None, :]
    zero = torch.zeros((), dtype=torch.float64, device=device)
    # powers in float64, then one rounding to the target dtype (decay=0 is not allowed, so 0^0 never occurs)
    decay_pow = torch.where(lag >= 0, decay ** lag.clamp(min=0), zero)
    leak = (gain * decay_pow).to(dtype)  # A
    accumulate = torch.where(lag >= 1, decay_pow, zero).to(dtype)  # -R: sum_{s<t} decay^(t-s)
    carry = (decay ** (t + 1)).to(dtype)  # decay^(t+1): how a carried-in value reaches step t
    return leak, accumulate, carry


def leak_matrices(T: int, gain: float, decay: float, dtype=torch.float32, device=None):
    """The fixed matrices ``(A, R)`` of shape [T, T] (fresh copies; safe to modify)."""
    leak, accumulate, _ = _cached_matrices(int(T), float(gain), float(decay), dtype, torch.device(device or "cpu"))
    return leak.clone(), -accumulate


@functools.lru_cache(maxsize=64)
def _chunk_carry(C: int, decay_per_chunk: float, dtype: torch.dtype, device: torch.device):
    c = torch.arange(C, device=device, dtype=torch.float64)
    lag = c[:, None] - c[None, :] - 1
    join = torch.where(lag >= 0, decay_per_chunk ** lag.clamp(min=0), torch.zeros((), dtype=torch.float64, device=device))
    return join.to(dtype), (decay_per_chunk**c).to(dtype)


def _toeplitz(x, gain, decay, strict, init):
    """y[t] = sum_{s<=t} gain decay^(t-s) x[s]            (strict=False: the leak A x)
    or   y[t] = sum_{s<t}  decay^(t-s) x[s]                 (strict=True: the reset accumulation -R x)
    plus decay^(t+1) * init (a value carried in from before step 0).

    Returns ``(y, end)``: ``end`` is the value carried out of the last step (y[-1], plus x[-1] if strict).
    """
    T, N = x.shape
    L = CHUNK
    if L <= 0 or T <= 2 * L or not 0 < decay <= 1:
        leak, accumulate, carry = _cached_matrices(T, float(gain), float(decay), x.dtype, x.device)
        y = (accumulate if strict else leak) @ x
        if init is not None:
            y = y + carry[:, None] * init
        return y, (y[-1] + x[-1] if strict else y[-1])
    C = -(-T // L)
    padded = torch.nn.functional.pad(x, (0, 0, 0, C * L - T)) if C * L != T else x
    chunks = padded.reshape(C, L, N)
    leak, accumulate, carry = _cached_matrices(L, float(gain), float(decay), x.dtype, x.device)
    local = torch.matmul(accumulate if strict else leak, chunks)  # every chunk from a zero start: [C, L, N]
    ends = local[:, -1] + chunks[:, -1] if strict else local[:, -1]
    # value carried into chunk c: sum_{c'<c} decay^(L(c-1-c')) ends[c'] + decay^(cL) init
    join, start = _chunk_carry(C, float(decay) ** L, x.dtype, x.device)
    carried = join @ ends
    if init is not None:
        carried = carried + start[:, None] * init
    y = (local + carry[None, :, None] * carried[:, None, :]).reshape(C * L, N)[:T]
    return y, (y[-1] + x[-1] if strict else y[-1])


def run_psu_gemm(kind, x, *, gain, decay, threshold, weight, bias, spike_fn, state):
    """Membrane and spikes of one unit over X [T, N]; returns (spikes, membrane, final_state or None)."""
    final = None
    if kind == "psu":
        h, h_end = _toeplitz(x, gain, decay, False, None if state is None else state[0])
        estimate = torch.sigmoid(h)
        accumulated, k_end = _toeplitz(estimate, gain, decay, True, None if state is None else state[1])
        membrane = h - threshold * accumulated
        final = (h_end, k_end)  # H[T-1] and the reset accumulator including sigmoid(H[T-1])
    elif kind == "ipsu":
        _, accumulate, _ = _cached_matrices(x.shape[0], float(gain), float(decay), x.dtype, x.device)
        membrane = torch.addmm(bias[:, None], torch.tril(weight) - accumulate, x)  # (W o M + R) X + b
    elif kind == "rpsu":
        estimate = torch.sigmoid(torch.addmm(bias[:, None], torch.tril(weight), x))
        membrane = _toeplitz(x, gain, decay, False, None)[0] - _toeplitz(estimate, gain, decay, True, None)[0]
    elif kind == "ppsu":
        pre = torch.addmm(bias[:, None], torch.tril(weight), x)
        membrane = pre - _toeplitz(torch.sigmoid(pre), gain, decay, True, None)[0]
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
