"""The numba provider: compiled CPU kernels for the LIF fast path (see ``numba_lif``), for the
one-variable neurons that describe themselves with ``kernel_spec`` (SpikingJelly LIF, Norse LIFBox; see
``numba_neurons``), for the paper's adaptive LIF (``alif_spec``; see ``numba_alif``) and for the
current-based LIF and LSNN of Norse (``current_lif_spec``; see ``numba_current_lif``).

Registered only when numba imports. It supports CPU tensors, those profiles and the built-in surrogates;
``backend="auto"`` prefers it there and falls back to the torch provider otherwise.
"""

from __future__ import annotations

import typing

import numpy as np
import torch

from .. import kernels, ops
from .. import surrogate as sg
from ..kernels import cache as kernel_cache
from ..kernels import codegen
from ..plugins import hookimpl
from . import generated
from .torch_provider import describes_itself, finish_fast, initial_state, prepare_fast

try:
    from ..kernels import emit_numba
    from . import numba_alif, numba_current_lif, numba_lif, numba_neurons
    from .numba_threads import on_torch_threads
except ImportError as error:  # numba missing: the provider is simply not offered
    numba_alif = numba_current_lif = numba_lif = numba_neurons = emit_numba = None
    _IMPORT_ERROR = error

    def on_torch_threads(launch):
        return launch


def _flat(t: torch.Tensor, shape) -> np.ndarray:
    return t.detach().expand(shape).contiguous().reshape(-1).numpy()


def _optional(t: torch.Tensor | None, shape, N: int, dtype) -> np.ndarray:
    """A per-neuron array of ``t``, or zeros (an unused output's gradient, or a placeholder the kernel does not read)."""
    return _flat(t, shape) if t is not None else np.zeros(N, dtype)


def _final(grad: torch.Tensor | None, N: int, dtype) -> np.ndarray:
    """The incoming gradient of a final state (an operator output of N elements), or zeros."""
    return grad.detach().reshape(N).contiguous().numpy() if grad is not None else np.zeros(N, dtype)


def _uniform_or_rows(grad: torch.Tensor | None, T: int, N: int, dtype) -> tuple[np.ndarray, bool]:
    """An output's incoming gradient for ``lif_backward``: (one contiguous row, True) where it is the same at
    every step (None: zeros; the expanded scalar of a ``.sum()``), else ([T, N] contiguous, False).
    Contiguous rows let the kernel's inner loop vectorize."""
    if grad is None:
        return np.zeros((1, N), dtype), True
    if all(stride == 0 for stride in grad.stride()):
        return np.full((1, N), grad.reshape(-1)[0].item(), dtype), True
    return grad.detach().contiguous().reshape(T, N).numpy(), False


Tensor = torch.Tensor
Optional = typing.Optional


def _rows(t: Tensor) -> Tensor:
    """[T, ...] -> [T, N] contiguous (no copy when it already is)."""
    return t.detach().contiguous().reshape(t.shape[0], -1)


def _empty(shape, dtype, like: Tensor) -> Tensor:
    return torch.empty(shape, dtype=dtype, device=like.device)


# ---------------------------------------------------------------------------------------------
# the LIF fast path (numba_lif)
# ---------------------------------------------------------------------------------------------
@ops.custom_op("numba_lif_forward")
@on_torch_threads  # one launch at a time, on torch.get_num_threads() threads
def numba_lif_forward(
    x: Tensor, v0: Tensor, decay: Tensor, threshold: Tensor, graded: Optional[Tensor], entry0: Tensor,
    block_len: int, strict: bool, reentry_zero: bool, reentry_subtract: bool, post_zero: bool,
    sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Spikes, charged membranes U, post-reset membranes M (empty unless ``post_zero``), each block's spike
    position, final v, last block's entry and spike position. ``sg_kind``/``sg_args`` are for the backward."""
    shape = x.shape[1:]
    T, N = x.shape[0], shape.numel()
    xs = _rows(x).numpy()
    S, U = np.empty((T, N), dtype=xs.dtype), np.empty((T, N), dtype=xs.dtype)
    M = np.empty((T, N) if post_zero else (0, N), dtype=xs.dtype)
    block_spike = np.empty(((T - 1) // block_len + 1, N), dtype=np.int8 if block_len <= 127 else np.int32)
    v_out = np.empty(N, dtype=xs.dtype)
    entry_out, spike_out = np.empty(N, dtype=np.int64), np.empty(N, dtype=np.int64)
    graded_np = _flat(graded, shape) if graded is not None else np.ones(N, dtype=xs.dtype)
    numba_lif.lif_forward(
        xs, _flat(v0, shape), _flat(decay, shape), _flat(threshold, shape), graded_np,
        entry0.detach().reshape(-1).contiguous().numpy(), block_len, strict, reentry_zero, reentry_subtract, post_zero,
        numba_neurons.chunk_width(N, numba_neurons.FORWARD_WIDEST), S, U, M, block_spike, v_out, entry_out, spike_out,
    )  # fmt: skip
    outs = (S, U, M, block_spike, v_out, entry_out, spike_out)
    return tuple(torch.from_numpy(a) for a in outs)


@numba_lif_forward.register_fake
def _(x, v0, decay, threshold, graded, entry0, block_len, strict, reentry_zero, reentry_subtract, post_zero, sg_kind, sg_args):
    T, N = x.shape[0], x[0].numel()
    rows = x.new_empty((T, N))
    block_dtype = torch.int8 if block_len <= 127 else torch.int32
    return (
        rows, x.new_empty((T, N)), x.new_empty((T if post_zero else 0, N)),
        _empty(((T - 1) // block_len + 1, N), block_dtype, x), x.new_empty(N),
        _empty(N, torch.int64, x), _empty(N, torch.int64, x),
    )  # fmt: skip


@ops.custom_op("numba_lif_backward")
@on_torch_threads  # one launch at a time, on torch.get_num_threads() threads
def numba_lif_backward(
    g_spikes: Optional[Tensor], g_membrane: Optional[Tensor], g_final_v: Optional[Tensor], block_spike: Tensor,
    entry0: Tensor, U: Tensor, M: Tensor, v0: Tensor, decay: Tensor, threshold: Tensor, graded: Optional[Tensor],
    block_len: int, strict: bool, reentry_zero: bool, reentry_subtract: bool, post_zero: bool,
    sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """dL/dx ([T, N], the input dtype) and the per-neuron float64 gradients of v0, decay, threshold, graded."""
    shape = v0.shape
    T, N = U.shape[0], v0.numel()
    dtype = U.detach().numpy().dtype
    gx = np.empty((T, N), dtype=dtype)
    g_v0, g_decay, g_thr, g_graded = (np.empty(N, dtype=np.float64) for _ in range(4))
    numba_lif.lif_backward(
        *_uniform_or_rows(g_spikes, T, N, dtype), g_spikes is not None, *_uniform_or_rows(g_membrane, T, N, dtype),
        _final(g_final_v, N, dtype), block_spike.detach().numpy(), entry0.detach().reshape(-1).contiguous().numpy(),
        block_len, U.detach().numpy(), (M if post_zero else U).detach().numpy(), _flat(v0, shape), _flat(decay, shape),
        _flat(threshold, shape), _flat(graded, shape) if graded is not None else np.ones(N, dtype),
        strict, reentry_zero, reentry_subtract, post_zero, sg_kind, tuple(sg_args),
        numba_neurons.chunk_width(N, numba_neurons.BACKWARD_WIDEST), gx, g_v0, g_decay, g_thr, g_graded,
    )  # fmt: skip
    return tuple(torch.from_numpy(a) for a in (gx, g_v0, g_decay, g_thr, g_graded))


@numba_lif_backward.register_fake
def _(g_spikes, g_membrane, g_final_v, block_spike, entry0, U, M, v0, *rest):
    N = v0.numel()
    return (U.new_empty(U.shape), *(_empty(N, torch.float64, U) for _ in range(4)))


def _numba_lif_setup(ctx, inputs, output):
    x, v0, decay, threshold, graded, entry0, block_len, *flags, sg_kind, sg_args = inputs
    S, U, M, block_spike = output[:4]
    ctx.config = (block_len, *flags, sg_kind, sg_args)
    ctx.x_shape = x.shape
    ctx.save_for_backward(v0, decay, threshold, graded, U, M, block_spike, entry0)
    ctx.set_materialize_grads(False)  # unused outputs get None, not [T, ...] zeros


def _numba_lif_grad(ctx, g_spikes, g_U, g_M, _g_block, g_final_v, _g_entry, _g_spike):
    v0, decay, threshold, graded, U, M, block_spike, entry0 = ctx.saved_tensors
    post_zero = ctx.config[4]
    g_membrane = g_M if post_zero else g_U
    gx, g_v0, g_decay, g_thr, g_graded = torch.ops.snn_blockbackend.numba_lif_backward(
        g_spikes, g_membrane, g_final_v, block_spike, entry0, U, M, v0, decay, threshold, graded, *ctx.config
    )
    need, shape = ctx.needs_input_grad, v0.shape
    return (
        gx.view(ctx.x_shape) if need[0] else None,
        g_v0.to(v0.dtype).view(shape) if need[1] else None,
        ops.per_neuron_grad(g_decay, decay, shape) if need[2] else None,
        ops.per_neuron_grad(g_thr, threshold, shape) if need[3] else None,
        ops.per_neuron_grad(g_graded, graded, shape) if need[4] else None,
        *(None,) * 8,
    )


# ---------------------------------------------------------------------------------------------
# one-variable neurons (numba_neurons)
# ---------------------------------------------------------------------------------------------
@ops.custom_op("numba_neuron_forward")
@on_torch_threads  # one launch at a time, on torch.get_num_threads() threads
def numba_neuron_forward(
    x: Tensor, v0: Tensor, coefficient: Tensor, v_leak: Optional[Tensor], threshold: Tensor,
    reset_value: Optional[Tensor], countdown0: Tensor, refractory_steps: int, charge: str, charge_offset: float,
    strict: bool, soft_reset: bool, detach_reset: bool, sg_name: str, sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Spikes, membranes, final v, countdown and per-step flags (for the backward)."""
    shape = x.shape[1:]
    T, N = x.shape[0], shape.numel()
    xs = _rows(x).numpy()
    dtype = xs.dtype
    S, M = np.empty((T, N), dtype=dtype), np.empty((T, N), dtype=dtype)
    flags = np.empty((T, N), dtype=np.uint8)
    v_out, countdown_out = np.empty(N, dtype=dtype), np.empty(N, dtype=np.int64)
    arrays = _neuron_arrays(shape, N, dtype, coefficient, v_leak, threshold, reset_value)
    numba_neurons.neuron_forward(
        xs, _flat(v0, shape), countdown0.expand(shape).contiguous().reshape(-1).numpy(),
        numba_neurons.CHARGE_KINDS[charge], arrays[0], np.array([charge_offset], dtype=dtype), arrays[1], arrays[2],
        strict, soft_reset, arrays[3], refractory_steps, numba_neurons.chunk_width(N, numba_neurons.FORWARD_WIDEST),
        S, M, flags, v_out, countdown_out,
    )  # fmt: skip
    return tuple(torch.from_numpy(a) for a in (S, M, v_out, countdown_out, flags))


@numba_neuron_forward.register_fake
def _(x, v0, *rest):
    T, N = x.shape[0], x[0].numel()
    return (x.new_empty((T, N)), x.new_empty((T, N)), x.new_empty(N), _empty(N, torch.int64, x),
            _empty((T, N), torch.uint8, x))  # fmt: skip


def _neuron_arrays(shape, N, dtype, coefficient, v_leak, threshold, reset_value):
    return (
        _flat(coefficient, shape),
        _optional(v_leak, shape, N, dtype),
        _flat(threshold, shape),
        _optional(reset_value, shape, N, dtype),
    )


@ops.custom_op("numba_neuron_backward")
@on_torch_threads  # one launch at a time, on torch.get_num_threads() threads
def numba_neuron_backward(
    g_spikes: Optional[Tensor], g_membrane: Optional[Tensor], g_final_v: Optional[Tensor], x: Tensor, M: Tensor,
    flags: Tensor, v0: Tensor, coefficient: Tensor, v_leak: Optional[Tensor], threshold: Tensor,
    reset_value: Optional[Tensor], charge: str, charge_offset: float, soft_reset: bool, detach_reset: bool,
    sg_name: str, sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """dL/dx ([T, N]) and the per-neuron float64 gradients of v0, coefficient, v_leak, threshold, reset_value."""
    shape, T, N = v0.shape, x.shape[0], v0.numel()
    dtype = M.detach().numpy().dtype
    arrays = _neuron_arrays(shape, N, dtype, coefficient, v_leak, threshold, reset_value)
    gx = np.empty((T, N), dtype=dtype)
    g_v0, g_coef, g_leak, g_thr, g_reset = (np.empty(N, dtype=np.float64) for _ in range(5))
    numba_neurons.neuron_backward(
        *_uniform_or_rows(g_spikes, T, N, dtype), *_uniform_or_rows(g_membrane, T, N, dtype),
        _final(g_final_v, N, dtype), _rows(x).numpy(), M.detach().numpy(), _flat(v0, shape), flags.detach().numpy(),
        numba_neurons.CHARGE_KINDS[charge], arrays[0], np.array([charge_offset], dtype=dtype), arrays[1], arrays[2],
        soft_reset, arrays[3], detach_reset, sg_kind, tuple(sg_args),
        numba_neurons.surrogate_constants(sg_name, tuple(sg_args), dtype),
        numba_neurons.chunk_width(N, numba_neurons.BACKWARD_WIDEST), gx, g_v0, g_coef, g_leak, g_thr, g_reset,
    )  # fmt: skip
    return tuple(torch.from_numpy(a) for a in (gx, g_v0, g_coef, g_leak, g_thr, g_reset))


@numba_neuron_backward.register_fake
def _(g_spikes, g_membrane, g_final_v, x, M, flags, v0, *rest):
    N = v0.numel()
    return (M.new_empty(M.shape), *(_empty(N, torch.float64, M) for _ in range(5)))


def _numba_neuron_setup(ctx, inputs, output):
    x, v0, coefficient, v_leak, threshold, reset_value, _countdown0, _R, charge, offset, _strict, *rest = inputs
    ctx.config = (charge, offset, *rest)
    ctx.save_for_backward(x, v0, coefficient, v_leak, threshold, reset_value, output[1], output[4])
    ctx.set_materialize_grads(False)


def _numba_neuron_grad(ctx, g_spikes, g_membrane, g_final_v, _g_countdown, _g_flags):
    x, v0, coefficient, v_leak, threshold, reset_value, M, flags = ctx.saved_tensors
    grads = torch.ops.snn_blockbackend.numba_neuron_backward(
        g_spikes, g_membrane, g_final_v, x, M, flags, v0, coefficient, v_leak, threshold, reset_value, *ctx.config
    )
    gx, g_v0, *g_params = grads
    need, shape = ctx.needs_input_grad, v0.shape
    params = coefficient, v_leak, threshold, reset_value
    return (
        gx.view(x.shape) if need[0] else None,
        g_v0.to(v0.dtype).view(shape) if need[1] else None,
        *(ops.per_neuron_grad(g, param, shape) if need[2 + k] else None for k, (g, param) in enumerate(zip(g_params, params))),
        *(None,) * 10,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# the paper's adaptive LIF (numba_alif)
# ---------------------------------------------------------------------------------------------
@ops.custom_op("numba_alif_forward")
@on_torch_threads  # one launch at a time, on torch.get_num_threads() threads
def numba_alif_forward(
    x: Tensor, v0: Tensor, a0: Tensor, beta: Tensor, threshold: Tensor, adaptation_decay: Tensor,
    adaptation_strength: Tensor, countdown0: Tensor, refractory_steps: int, sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Spikes, membranes, final v, final a, countdown, adaptation A [T, N] and flags (for the backward)."""
    shape = x.shape[1:]
    T, N = x.shape[0], shape.numel()
    xs = _rows(x).numpy()
    dtype = xs.dtype
    S, M, A = (np.empty((T, N), dtype=dtype) for _ in range(3))
    flags = np.empty((T, N), dtype=np.uint8)
    v_out, a_out, countdown_out = np.empty(N, dtype=dtype), np.empty(N, dtype=dtype), np.empty(N, dtype=np.int64)
    params = beta, threshold, adaptation_decay, adaptation_strength
    numba_alif.alif_forward(
        xs, _flat(v0, shape), _flat(a0, shape), countdown0.expand(shape).contiguous().reshape(-1).numpy(),
        *(_flat(param, shape) for param in params), refractory_steps,
        numba_neurons.chunk_width(N, numba_neurons.FORWARD_WIDEST), S, M, A, flags, v_out, a_out, countdown_out,
    )  # fmt: skip
    return tuple(torch.from_numpy(a) for a in (S, M, v_out, a_out, countdown_out, A, flags))


@numba_alif_forward.register_fake
def _(x, *rest):
    T, N = x.shape[0], x[0].numel()
    return (x.new_empty((T, N)), x.new_empty((T, N)), x.new_empty(N), x.new_empty(N), _empty(N, torch.int64, x),
            x.new_empty((T, N)), _empty((T, N), torch.uint8, x))  # fmt: skip


@ops.custom_op("numba_alif_backward")
@on_torch_threads  # one launch at a time, on torch.get_num_threads() threads
def numba_alif_backward(
    g_spikes: Optional[Tensor], g_membrane: Optional[Tensor], g_final_v: Optional[Tensor],
    g_final_a: Optional[Tensor], x: Tensor, M: Tensor, A: Tensor, flags: Tensor, v0: Tensor, a0: Tensor,
    beta: Tensor, threshold: Tensor, adaptation_decay: Tensor, adaptation_strength: Tensor,
    sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """dL/dx ([T, N]) and the per-neuron float64 gradients of v0, a0 and the four parameters."""
    shape, T, N = v0.shape, x.shape[0], v0.numel()
    dtype = M.detach().numpy().dtype
    params = beta, threshold, adaptation_decay, adaptation_strength
    gx = np.empty((T, N), dtype=dtype)
    g_v0, g_a0, *g_params = (np.empty(N, dtype=np.float64) for _ in range(6))
    numba_alif.alif_backward(
        *_uniform_or_rows(g_spikes, T, N, dtype), *_uniform_or_rows(g_membrane, T, N, dtype),
        _final(g_final_v, N, dtype), _final(g_final_a, N, dtype), _rows(x).numpy(),
        M.detach().numpy(), A.detach().numpy(), _flat(v0, shape), _flat(a0, shape), flags.detach().numpy(),
        *(_flat(param, shape) for param in params), sg_kind, tuple(sg_args),
        numba_neurons.chunk_width(N, numba_neurons.BACKWARD_WIDEST), gx, g_v0, g_a0, *g_params,
    )  # fmt: skip
    return tuple(torch.from_numpy(a) for a in (gx, g_v0, g_a0, *g_params))


@numba_alif_backward.register_fake
def _(g_spikes, g_membrane, g_final_v, g_final_a, x, M, A, flags, v0, *rest):
    N = v0.numel()
    return (M.new_empty(M.shape), *(_empty(N, torch.float64, M) for _ in range(6)))


def _numba_alif_setup(ctx, inputs, output):
    x, v0, a0, *params, _countdown0, _R, sg_kind, sg_args = inputs
    ctx.config = (sg_kind, sg_args)
    ctx.save_for_backward(x, v0, a0, *params, output[1], output[5], output[6])
    ctx.set_materialize_grads(False)


def _numba_alif_grad(ctx, g_spikes, g_membrane, g_final_v, g_final_a, _g_countdown, _g_A, _g_flags):
    x, v0, a0, *params, M, A, flags = ctx.saved_tensors
    gx, g_v0, g_a0, *g_params = torch.ops.snn_blockbackend.numba_alif_backward(
        g_spikes, g_membrane, g_final_v, g_final_a, x, M, A, flags, v0, a0, *params, *ctx.config
    )
    need, shape = ctx.needs_input_grad, v0.shape
    return (
        gx.view(x.shape) if need[0] else None,
        g_v0.to(v0.dtype).view(shape) if need[1] else None,
        g_a0.to(a0.dtype).view(shape) if need[2] else None,
        *(ops.per_neuron_grad(g, param, shape) if need[3 + k] else None for k, (g, param) in enumerate(zip(g_params, params))),
        *(None,) * 4,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# the current-based LIF and LSNN (numba_current_lif)
# ---------------------------------------------------------------------------------------------
_CURRENT_PARAMS = ("rate_m", "rate_s", "rate_a", "v_leak", "v_th", "v_reset", "jump")


@ops.custom_op("numba_current_lif_forward")
@on_torch_threads  # one launch at a time, on torch.get_num_threads() threads
def numba_current_lif_forward(
    x: Tensor, v0: Tensor, i0: Tensor, b0: Optional[Tensor], rate_m: Tensor, rate_s: Tensor,
    rate_a: Optional[Tensor], v_leak: Tensor, v_th: Tensor, v_reset: Tensor, jump: Optional[Tensor],
    countdown0: Tensor, refractory_steps: int, input_after: bool, sg_name: str, sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Spikes, membranes, final v, i, b (the threshold), countdown, and I, B, flags (for the backward)."""
    shape = x.shape[1:]
    T, N = x.shape[0], shape.numel()
    xs = _rows(x).numpy()
    dtype = xs.dtype
    adaptive = b0 is not None
    S, M, I = (np.empty((T, N), dtype=dtype) for _ in range(3))
    B = np.empty((T, N) if adaptive else (1, N), dtype=dtype)
    flags = np.empty((T, N), dtype=np.uint8)
    v_out, i_out, b_out = (np.empty(N, dtype=dtype) for _ in range(3))
    countdown_out = np.empty(N, dtype=np.int64)
    params = rate_m, rate_s, rate_a, v_leak, v_th, v_reset, jump
    numba_current_lif.current_lif_forward(
        xs, _flat(v0, shape), _flat(i0, shape), _optional(b0, shape, N, dtype),
        countdown0.expand(shape).contiguous().reshape(-1).numpy(),
        *(_optional(param, shape, N, dtype) for param in params), input_after, adaptive, refractory_steps,
        numba_neurons.chunk_width(N, numba_neurons.FORWARD_WIDEST), S, M, I, B, flags, v_out, i_out, b_out,
        countdown_out,
    )  # fmt: skip
    return tuple(torch.from_numpy(a) for a in (S, M, v_out, i_out, b_out, countdown_out, I, B, flags))


@numba_current_lif_forward.register_fake
def _(x, v0, i0, b0, *rest):
    T, N = x.shape[0], x[0].numel()
    rows = (T if b0 is not None else 1, N)
    return (x.new_empty((T, N)), x.new_empty((T, N)), x.new_empty(N), x.new_empty(N), x.new_empty(N),
            _empty(N, torch.int64, x), x.new_empty((T, N)), x.new_empty(rows), _empty((T, N), torch.uint8, x))  # fmt: skip


@ops.custom_op("numba_current_lif_backward")
@on_torch_threads  # one launch at a time, on torch.get_num_threads() threads
def numba_current_lif_backward(
    g_spikes: Optional[Tensor], g_membrane: Optional[Tensor], g_final_v: Optional[Tensor],
    g_final_i: Optional[Tensor], g_final_b: Optional[Tensor], x: Tensor, M: Tensor, I: Tensor, B: Tensor,
    flags: Tensor, v0: Tensor, i0: Tensor, b0: Optional[Tensor], rate_m: Tensor, rate_s: Tensor,
    rate_a: Optional[Tensor], v_leak: Tensor, v_th: Tensor, v_reset: Tensor, jump: Optional[Tensor],
    input_after: bool, sg_name: str, sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """dL/dx ([T, N]) and the per-neuron float64 gradients of v0, i0, b0 and the seven parameters."""
    shape, T, N = v0.shape, x.shape[0], v0.numel()
    dtype = M.detach().numpy().dtype
    params = rate_m, rate_s, rate_a, v_leak, v_th, v_reset, jump
    gx = np.empty((T, N), dtype=dtype)
    g_v0, g_i0, g_b0, *g_params = (np.empty(N, dtype=np.float64) for _ in range(10))
    numba_current_lif.current_lif_backward(
        *_uniform_or_rows(g_spikes, T, N, dtype), *_uniform_or_rows(g_membrane, T, N, dtype),
        _final(g_final_v, N, dtype), _final(g_final_i, N, dtype),
        _final(g_final_b, N, dtype), _rows(x).numpy(), M.detach().numpy(), I.detach().numpy(), B.detach().numpy(),
        _flat(v0, shape), _flat(i0, shape), _optional(b0, shape, N, dtype), flags.detach().numpy(),
        *(_optional(param, shape, N, dtype) for param in params), input_after, b0 is not None, sg_kind, tuple(sg_args),
        numba_neurons.surrogate_constants(sg_name, tuple(sg_args), dtype),
        numba_neurons.chunk_width(N, numba_neurons.BACKWARD_WIDEST), gx, g_v0, g_i0, g_b0, *g_params,
    )  # fmt: skip
    return tuple(torch.from_numpy(a) for a in (gx, g_v0, g_i0, g_b0, *g_params))


@numba_current_lif_backward.register_fake
def _(g_spikes, g_membrane, g_final_v, g_final_i, g_final_b, x, M, I, B, flags, v0, *rest):
    N = v0.numel()
    return (M.new_empty(M.shape), *(_empty(N, torch.float64, M) for _ in range(10)))


def _numba_current_lif_setup(ctx, inputs, output):
    x, v0, i0, b0, *params = inputs[:11]
    ctx.config = (inputs[13], *inputs[14:])  # input_after, sg_name, sg_kind, sg_args
    ctx.save_for_backward(x, v0, i0, b0, *params, output[1], output[6], output[7], output[8])
    ctx.set_materialize_grads(False)


def _numba_current_lif_grad(ctx, g_spikes, g_membrane, g_final_v, g_final_i, g_final_b, _g_countdown, *_g_saved):
    x, v0, i0, b0, *params, M, I, B, flags = ctx.saved_tensors
    gx, g_v0, g_i0, g_b0, *g_params = torch.ops.snn_blockbackend.numba_current_lif_backward(
        g_spikes, g_membrane, g_final_v, g_final_i, g_final_b, x, M, I, B, flags, v0, i0, b0, *params, *ctx.config
    )
    need, shape = ctx.needs_input_grad, v0.shape
    return (
        gx.view(x.shape) if need[0] else None,
        g_v0.to(v0.dtype).view(shape) if need[1] else None,
        g_i0.to(i0.dtype).view(shape) if need[2] else None,
        g_b0.to(b0.dtype).view(shape) if need[3] and b0 is not None else None,
        *(ops.per_neuron_grad(g, param, shape) if need[4 + k] else None for k, (g, param) in enumerate(zip(g_params, params))),
        *(None,) * 6,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# kernels generated from the profile (kernels.emit_numba)
# ---------------------------------------------------------------------------------------------
def _generated_module(step, dtype: torch.dtype, sg_kind: str):
    name = kernels.module_name("numba", step, dtype, sg_kind)
    return kernel_cache.load(name, lambda: emit_numba.source(step, dtype, sg_kind))


if emit_numba is not None:
    emit_numba.configure_llvm()


@ops.custom_op("numba_generated_forward")
@on_torch_threads  # one launch at a time, on torch.get_num_threads() threads
def numba_generated_forward(
    x: Tensor, state0: list[Tensor], params: list[Tensor], countdown0: Tensor, refractory_steps: int, kernel: str,
    sg_kind: str, sg_args: list[float],
) -> list[Tensor]:
    """The traced step ``kernel`` over [T, ...] input: spikes, membranes, live flags ([T, N] uint8), final countdown,
    the final value of each state variable, and each saved state variable's rows (for the backward)."""
    step = kernels.registered(kernel)
    shape = x.shape[1:]
    T, N = x.shape[0], shape.numel()
    xs = _rows(x).numpy()
    dtype = xs.dtype
    S, M = np.empty((T, N), dtype=dtype), np.empty((T, N), dtype=dtype)
    F = np.empty((T, N), dtype=np.uint8)
    countdown_out = np.empty(N, dtype=np.int64)
    finals = [np.empty(N, dtype=dtype) for _ in step.state]
    saved = [np.empty((T, N), dtype=dtype) for _ in emit_numba.saved_state(step)]
    plain = refractory_steps == 0
    if plain:
        F = np.empty((0, N), dtype=np.uint8)
    module = _generated_module(step, x.dtype, sg_kind)
    (module.forward_plain if plain else module.forward)(
        xs, countdown0.expand(shape).contiguous().reshape(-1).numpy(), refractory_steps,
        numba_neurons.chunk_width(N, numba_neurons.FORWARD_WIDEST), *(_flat(s, shape) for s in state0),
        *(_flat(p, shape) for p in params), S, M, F, countdown_out, *finals, *saved,
    )  # fmt: skip
    return [torch.from_numpy(a) for a in (S, M, F, countdown_out, *finals, *saved)]


@ops.custom_op("numba_generated_backward")
@on_torch_threads  # one launch at a time, on torch.get_num_threads() threads
def numba_generated_backward(
    g_spikes: Optional[Tensor], g_membrane: Optional[Tensor], g_finals: list[Tensor], x: Tensor, M: Tensor,
    F: Tensor, state0: list[Tensor], saved: list[Tensor], params: list[Tensor], kernel: str, sg_kind: str,
    sg_args: list[float],
) -> list[Tensor]:
    """dL/dx ([T, N]) and the per-neuron float64 gradients of each initial state variable and each parameter."""
    step = kernels.registered(kernel)
    T, N = M.shape
    shape = state0[0].shape
    dtype = M.detach().numpy().dtype
    gx = np.empty((T, N), dtype=dtype)
    g_state = [np.empty(N, dtype=np.float64) for _ in step.state]
    g_params = [np.empty(N, dtype=np.float64) for _ in step.params]
    constants = np.array(codegen.surrogate_constants(sg_kind, sg_args), dtype=np.float64)
    module = _generated_module(step, M.dtype, sg_kind)
    (module.backward_plain if F.shape[0] == 0 else module.backward)(
        *_uniform_or_rows(g_spikes, T, N, dtype), *_uniform_or_rows(g_membrane, T, N, dtype), _rows(x).numpy(),
        F.detach().numpy(), numba_neurons.chunk_width(N, numba_neurons.BACKWARD_WIDEST), constants,
        M.detach().numpy(), *(_flat(s, shape) for s in state0), *(a.detach().numpy() for a in saved),
        *(_flat(p, shape) for p in params), *(_final(g, N, dtype) for g in g_finals), gx, *g_state, *g_params,
    )  # fmt: skip
    return [torch.from_numpy(a) for a in (gx, *g_state, *g_params)]


def _register_autograd():
    for forward, backward, setup, grad in (
        (numba_lif_forward, numba_lif_backward, _numba_lif_setup, _numba_lif_grad),
        (numba_neuron_forward, numba_neuron_backward, _numba_neuron_setup, _numba_neuron_grad),
        (numba_alif_forward, numba_alif_backward, _numba_alif_setup, _numba_alif_grad),
        (numba_current_lif_forward, numba_current_lif_backward, _numba_current_lif_setup, _numba_current_lif_grad),
    ):
        forward.register_autograd(grad, setup_context=setup)
        ops.no_double_backward(backward, "numba")
        ops.count_flops(forward, ops.FORWARD_FLOPS_PER_ELEMENT_STEP)
        ops.count_flops(backward, ops.BACKWARD_FLOPS_PER_ELEMENT_STEP)


_register_autograd()
generated.register(numba_generated_forward, numba_generated_backward, "numba")


class NumbaLIFProvider:
    name = "numba"
    priority = 20

    def supports(self, profile, device, grad):
        if device.type != "cpu":
            return "numba kernels run on CPU tensors only"
        if grad != "exact":
            return "the numba kernels compute exact BPTT gradients only"
        return sg.kernel_refusal(profile.surrogate) or kernels.traceable(profile)

    @staticmethod
    def hand_written(profile) -> bool:
        """Whether a hand-written kernel family serves ``profile`` (preferred while it is faster; see
        ``generated.generated_only``)."""
        specs = ("kernel_spec", "alif_spec", "current_lif_spec")
        return profile.fast_lif_capable or any(describes_itself(profile, spec) for spec in specs)

    def supports_dtypes(self, dtypes):
        return ops.kernel_dtype_refusal("numba", dtypes)

    def run(self, profile, params, x, refractory_steps, state=None, grad="exact"):
        p = profile.prepare(params)
        if generated.generated_only() or not self.hand_written(profile):
            forward = torch.ops.snn_blockbackend.numba_generated_forward
            return generated.run(forward, profile, p, x, refractory_steps, state)
        if describes_itself(profile, "alif_spec"):
            return self._run_alif(profile, p, x, refractory_steps, state)
        if describes_itself(profile, "current_lif_spec"):
            return self._run_current_lif(profile, p, x, refractory_steps, state)
        if not profile.fast_lif_capable:
            return self._run_neuron(profile, p, x, refractory_steps, state)
        L = refractory_steps + 1
        cfg, v0, entry = prepare_fast(profile, p, x, state, L)
        surrogate = profile.surrogate
        S, U, M, _, v, last_entry, last_spike = torch.ops.snn_blockbackend.numba_lif_forward(
            x, v0, cfg.decay, cfg.threshold, cfg.graded, entry, L, cfg.strict, cfg.reentry_zero,
            cfg.reentry_subtract, cfg.post_zero, surrogate.kernel_code, surrogate.kernel_args,
        )  # fmt: skip
        shape = x.shape[1:]
        spikes, membrane = S.view(x.shape), (M if cfg.post_zero else U).view(x.shape)
        v, last_entry, last_spike = v.view(shape), last_entry.view(shape), last_spike.view(shape)
        return spikes, membrane, finish_fast(refractory_steps, x.shape[0], v, last_entry, last_spike)

    @staticmethod
    def _run_alif(profile, p, x, refractory_steps, state):
        s, countdown = initial_state(profile, p, x, state)
        surrogate, shape = profile.surrogate, x.shape[1:]
        spikes, membrane, v, a, countdown, _, _ = torch.ops.snn_blockbackend.numba_alif_forward(
            x, s["v"].expand(shape), s["a"].expand(shape), *profile.alif_spec(p), countdown, refractory_steps,
            surrogate.kernel_code, surrogate.kernel_args,
        )  # fmt: skip
        final = {"v": v.view(shape), "a": a.view(shape), "refractory": countdown.view(shape)}
        return spikes.view(x.shape), membrane.view(x.shape), final

    @staticmethod
    def _run_current_lif(profile, p, x, refractory_steps, state):
        s, countdown = initial_state(profile, p, x, state)
        surrogate, shape = profile.surrogate, x.shape[1:]
        spec = profile.current_lif_spec(p)
        b0 = s["b"].expand(shape) if "b" in s else None  # the adaptive threshold (LSNN)
        spikes, membrane, v, i, b, countdown, *_ = torch.ops.snn_blockbackend.numba_current_lif_forward(
            x, s["v"].expand(shape), s["i"].expand(shape), b0, spec.rate_m, spec.rate_s, spec.rate_a, spec.v_leak,
            spec.v_th, spec.v_reset, spec.jump, countdown, refractory_steps, spec.input_after,
            surrogate.kind, surrogate.kernel_code, surrogate.kernel_args,
        )  # fmt: skip
        final = {"v": v.view(shape), "i": i.view(shape)}
        if b0 is not None:
            final["b"] = b.view(shape)
        return spikes.view(x.shape), membrane.view(x.shape), {**final, "refractory": countdown.view(shape)}

    @staticmethod
    def _run_neuron(profile, p, x, refractory_steps, state):
        s, countdown = initial_state(profile, p, x, state)
        spec = profile.kernel_spec(p)
        tensors = spec.coefficient, spec.v_leak, spec.threshold, spec.reset_value
        surrogate = profile.surrogate
        shape = x.shape[1:]
        spikes, membrane, v, countdown, _ = torch.ops.snn_blockbackend.numba_neuron_forward(
            x, s["v"].expand(shape), *tensors, countdown, refractory_steps, spec.charge, float(spec.charge_offset),
            spec.strict, spec.soft_reset, spec.detach_reset, surrogate.kind, surrogate.kernel_code,
            surrogate.kernel_args,
        )  # fmt: skip
        return spikes.view(x.shape), membrane.view(x.shape), {"v": v.view(shape), "refractory": countdown.view(shape)}


@hookimpl
def snn_blockbackend_providers():
    return [NumbaLIFProvider()] if numba_lif is not None else []
