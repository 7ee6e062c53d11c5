"""The numba provider: compiled CPU kernels generated from each neuron profile (``kernels.emit_numba``), for
every profile whose per-step methods trace (``kernels.trace``) and every built-in surrogate.

Registered only when numba imports. It supports CPU tensors in float16, bfloat16, float32 and float64, mixed
dtypes included (each operation in PyTorch's result dtype); ``backend="auto"`` prefers it there and falls back to
the torch provider otherwise (custom surrogates, profiles that do not trace).
"""

from __future__ import annotations

import typing

import numpy as np
import torch

from .. import kernels, ops
from .. import surrogate as sg
from ..kernels import cache as kernel_cache
from ..kernels import codegen
from ..kernels.trace import compute_dtype
from ..plugins import hookimpl
from . import _memory, generated

from .numba_threads import launch, threads

try:
    import numba  # noqa: F401  (emit_numba itself imports only the generator; the provider needs numba)

    from ..kernels import emit_numba
except ImportError:  # numba missing: the provider is simply not offered
    emit_numba = None


Tensor = torch.Tensor
Optional = typing.Optional

# neurons per parallel task: one wide chunk per thread (long contiguous rows stream through the caches and the
# prefetcher better than many narrow ones), at least 256 and at most WIDEST (the backward keeps a dozen float64
# values per neuron of its chunk, which should stay in the L2 cache)
FORWARD_WIDEST, BACKWARD_WIDEST = 8192, 2048


def chunk_width(n_neurons: int, widest: int) -> int:
    per_thread = -(-n_neurons // threads())
    return int(min(max(per_thread, 256), widest))


def _array(t: Tensor) -> np.ndarray:
    """A contiguous CPU tensor as the array a kernel reads or fills (half precision as its int16 bit patterns)."""
    t = t.detach()
    return (t.view(torch.int16) if t.dtype in (torch.float16, torch.bfloat16) else t).numpy()


def _flat(t: Tensor, shape) -> np.ndarray:
    return _array(t.detach().expand(shape).contiguous().reshape(-1))


def _uniform_or_rows(grad: Tensor | None, T: int, N: int, dtype: torch.dtype) -> tuple[np.ndarray, bool]:
    """The incoming gradient of a [T, N] output of ``dtype``: (one contiguous row, True) where it is the same at
    every step (None: zeros; the expanded scalar of a ``.sum()``), else ([T, N] contiguous, False)."""
    if grad is None:
        return _array(torch.zeros((1, N), dtype=dtype)), True
    if all(stride == 0 for stride in grad.stride()):
        return _array(grad.reshape(-1)[:1].expand(1, N).contiguous()), True
    return _array(grad.detach().contiguous().reshape(T, N)), False


def _rows_buffer(T: int, N: int, dtype: torch.dtype) -> Tensor:
    """A [T, N] output buffer (``_memory.empty``: reused once its tensors are gone)."""
    return _memory.empty((T, N), dtype, torch.device("cpu"))


def _rows(t: Tensor) -> Tensor:
    """[T, ...] -> [T, N] contiguous (no copy when it already is)."""
    return t.detach().contiguous().reshape(t.shape[0], -1)


# ---------------------------------------------------------------------------------------------
# kernels generated from the profile (kernels.emit_numba)
# ---------------------------------------------------------------------------------------------
def _generated_module(step, sg_kind: str):
    name = kernels.module_name("numba", step, sg_kind)
    return kernel_cache.load(name, lambda: emit_numba.source(step, sg_kind))


if emit_numba is not None:
    emit_numba.configure_llvm()


@ops.custom_op("numba_generated_forward")
def numba_generated_forward(
    x: Tensor, state0: list[Tensor], params: list[Tensor], countdown0: Tensor, refractory_steps: int, kernel: str,
    sg_kind: str, sg_args: list[float], check_finite: bool,
) -> list[Tensor]:
    """The traced step ``kernel`` over [T, ...] input: spikes, membranes, live flags ([T, N] uint8), final countdown,
    the final value of each state variable, and each saved state variable's rows (for the backward).
    ``check_finite``: raise ``ValueError`` if ``x`` holds NaN or Inf (the kernel checks it as it reads it)."""
    step = kernels.registered(kernel)
    shape = x.shape[1:]
    T, N = x.shape[0], shape.numel()
    S, M = _rows_buffer(T, N, step.torch_dtype("spikes")), _rows_buffer(T, N, step.torch_dtype("membranes"))
    saved = [_rows_buffer(T, N, step.torch_dtype(f"state:{s}")) for s in step.saved]
    F = _rows_buffer(T, N, torch.uint8)
    countdown_out = torch.empty(N, dtype=torch.int64)
    x_check = np.empty(N, dtype=compute_dtype(step.dtype_of("x")))  # the kernel sums x - x in x's compute dtype
    finals = [torch.empty(N, dtype=step.torch_dtype(f"state:{s}")) for s in step.state]
    module = _generated_module(step, sg_kind)
    width = chunk_width(N, FORWARD_WIDEST)
    launch(
        module, "forward", T, N, width, _array(_rows(x)), _flat(countdown0, shape), refractory_steps,
        *(_flat(s, shape) for s in state0), *(_flat(p, shape) for p in params),
        *(_array(t) for t in (S, M, F, countdown_out, *finals, *saved)), x_check,
    )  # fmt: skip
    if check_finite and np.isnan(x_check).any():
        raise ValueError(ops.NONFINITE_INPUT)
    return [S, M, F, countdown_out, *finals, *saved]


@ops.custom_op("numba_generated_backward")
def numba_generated_backward(
    g_spikes: Optional[Tensor], g_membrane: Optional[Tensor], g_finals: list[Tensor], x: Tensor, M: Tensor,
    F: Tensor, state0: list[Tensor], saved: list[Tensor], params: list[Tensor], kernel: str, sg_kind: str,
    sg_args: list[float],
) -> list[Tensor]:
    """dL/dx ([T, N]) and the per-neuron float64 gradients of each initial state variable and each parameter."""
    step = kernels.registered(kernel)
    T, N = M.shape
    shape = state0[0].shape
    gx = _rows_buffer(T, N, x.dtype)
    g_state = [np.empty(N, dtype=np.float64) for _ in step.state]
    g_params = [np.empty(N, dtype=np.float64) for _ in step.params]
    constants = np.array(codegen.surrogate_constants(sg_kind, sg_args), dtype=np.float64)
    module = _generated_module(step, sg_kind)
    width = chunk_width(N, BACKWARD_WIDEST)
    launch(
        module, "backward", T, N, width, *_uniform_or_rows(g_spikes, T, N, step.torch_dtype("spikes")),
        *_uniform_or_rows(g_membrane, T, N, M.dtype),
        _array(_rows(x)), _array(F), constants, _array(M), *(_flat(s, shape) for s in state0),
        *(_array(a) for a in saved), *(_flat(p, shape) for p in params),
        *(_array(g.reshape(N).contiguous()) for g in g_finals), _array(gx), *g_state, *g_params,
    )  # fmt: skip
    return [gx, *(torch.from_numpy(a) for a in (*g_state, *g_params))]


if emit_numba is not None:
    generated.register(numba_generated_forward, numba_generated_backward, "numba")


class NumbaProvider:
    name = "numba"
    priority = 20
    checks_input_finite = True  # run(check_finite=True): the forward kernel checks x as it reads it
    prepare = staticmethod(generated.prepare)

    def supports(self, profile, device, grad):
        if device.type != "cpu":
            return "numba kernels run on CPU tensors only"
        if grad != "exact":
            return "the numba kernels compute exact BPTT gradients only"
        return sg.kernel_refusal(profile.surrogate) or kernels.traceable(profile)

    def supports_operands(self, profile, operands):
        if isinstance(operands, str):
            return operands
        return kernels.traceable(profile, operands)

    def run(self, profile, params, x, refractory_steps, state=None, grad="exact", check_finite=False):
        forward = torch.ops.snn_blockbackend.numba_generated_forward
        return generated.run(forward, profile, profile.prepare(params), x, refractory_steps, state, check_finite)


@hookimpl
def snn_blockbackend_providers():
    return [NumbaProvider()] if emit_numba is not None else []
