"""The Triton provider, for CUDA tensors: kernels generated from every profile (``kernels.emit_triton``), in
float32, float64, float16, bfloat16 and mixed dtypes; and the hand-written families (``triton_lif``: the LIF fast
path for the paper's LIF and snnTorch ``Leaky``, the paper's adaptive LIF), which it prefers for those profiles in
float32/float64 until a GPU has measured the two against each other (``make gpu-check``).

Registered only when triton imports. ``backend="auto"`` does not pick it (its priority is below the torch
provider's) until it has been measured on a GPU; select it with ``backend="triton"``. Under
``TRITON_INTERPRET=1`` the same kernels run on CPU tensors in Triton's interpreter, which is how the test suite
checks them bit for bit against the reference on machines without a GPU (slowly: it is for testing only).
"""

from __future__ import annotations

import types
import typing

import torch

from .. import kernels, ops
from .. import surrogate as sg
from ..kernels import cache as kernel_cache
from ..plugins import hookimpl
from . import generated
from .torch_provider import describes_itself, finish_fast, initial_state, prepare_fast

try:
    import triton

    from ..kernels import emit_triton
    from . import triton_lif
except ImportError:  # triton missing (it ships for Linux only): the provider is simply not offered
    triton = triton_lif = None


def _block_width(device: torch.device) -> int:
    # one neuron per GPU thread (4 warps); the interpreter runs each program in NumPy, so wider is faster there
    return 1024 if device.type == "cpu" else 128


def _bits(t: torch.Tensor) -> torch.Tensor:
    """A tensor as a kernel reads or fills it: half precision as its int16 bit patterns (``triton_math``)."""
    return t.view(torch.int16) if t.dtype in (torch.float16, torch.bfloat16) else t


def _flat(t: torch.Tensor, shape, N: int) -> torch.Tensor:
    return _bits(t.detach().expand(shape).contiguous().reshape(N))


def _row_or_rows(grad: torch.Tensor | None, T: int, N: int, like: torch.Tensor) -> tuple[torch.Tensor, int]:
    """An output's incoming gradient and its row stride: one row (stride 0) where it is the same at every step
    (None: zeros in ``like``'s dtype, the output's; the expanded scalar of a ``.sum()``), else [T, N] rows
    (stride N)."""
    if grad is None:
        return _bits(torch.zeros(N, dtype=like.dtype, device=like.device)), 0
    if all(stride == 0 for stride in grad.stride()):
        return _bits(grad.reshape(-1)[:1].expand(N).contiguous()), 0
    return _bits(grad.detach().contiguous().reshape(T, N)), N


Tensor = torch.Tensor
Optional = typing.Optional


def _constants(sg_name: str, sg_args, device) -> torch.Tensor:
    return triton_lif.surrogate_constants(types.SimpleNamespace(kind=sg_name, args=tuple(sg_args)), device)


def _final_grad(grad: Tensor | None, N: int, like: Tensor) -> Tensor:
    """The incoming gradient of a final state (an operator output of N elements), or zeros."""
    return grad.detach().reshape(N).contiguous() if grad is not None else torch.zeros(N, dtype=like.dtype, device=like.device)


# ---------------------------------------------------------------------------------------------
# the LIF fast path
# ---------------------------------------------------------------------------------------------
@ops.custom_op("triton_lif_forward")
def triton_lif_forward(
    x: Tensor, v0: Tensor, decay: Tensor, threshold: Tensor, graded: Optional[Tensor], entry0: Tensor,
    block_len: int, strict: bool, reentry_zero: bool, reentry_subtract: bool, post_zero: bool,
    sg_name: str, sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Spikes, U, M (empty unless ``post_zero``), block spike positions, final v, last entry and spike position
    ([N] int32), and entry0 as the kernels read it; ``sg_*`` are for the backward."""
    shape, T = x.shape[1:], x.shape[0]
    N = shape.numel()
    xs = x.detach().contiguous().reshape(T, N)
    S, U = torch.empty_like(xs), torch.empty_like(xs)
    M = torch.empty_like(xs) if post_zero else xs.new_empty((0, N))
    block_spike = torch.empty(((T - 1) // block_len + 1, N), dtype=torch.int32, device=x.device)
    v_out = torch.empty(N, dtype=x.dtype, device=x.device)
    entry_out, spike_out = (torch.empty(N, dtype=torch.int32, device=x.device) for _ in range(2))
    graded_flat = _flat(graded, shape, N) if graded is not None else torch.ones(N, dtype=x.dtype, device=x.device)
    entry0_flat = entry0.detach().reshape(-1).to(torch.int32, copy=True)  # an output: never the input itself
    width = _block_width(x.device)
    triton_lif.lif_forward[(triton.cdiv(max(N, 1), width),)](
        xs, _flat(v0, shape, N), _flat(decay, shape, N), _flat(threshold, shape, N), graded_flat, entry0_flat,
        S, U, M if post_zero else U, block_spike, v_out, entry_out, spike_out,
        T, N, block_len,
        STRICT=strict, REENTRY_ZERO=reentry_zero, REENTRY_SUBTRACT=reentry_subtract,
        POST_ZERO=post_zero, BLOCK=width, num_warps=4, enable_fp_fusion=False,
    )  # fmt: skip
    return S, U, M, block_spike, v_out, entry_out, spike_out, entry0_flat


@triton_lif_forward.register_fake
def _(x, v0, decay, threshold, graded, entry0, block_len, strict, reentry_zero, reentry_subtract, post_zero, *sg):
    T, N = x.shape[0], x[0].numel()
    ints = [x.new_empty(n, dtype=torch.int32) for n in (N, N, N)]
    return (x.new_empty((T, N)), x.new_empty((T, N)), x.new_empty((T if post_zero else 0, N)),
            x.new_empty(((T - 1) // block_len + 1, N), dtype=torch.int32), x.new_empty(N), *ints)  # fmt: skip


@ops.custom_op("triton_lif_backward")
def triton_lif_backward(
    g_spikes: Optional[Tensor], g_membrane: Optional[Tensor], g_final_v: Optional[Tensor], block_spike: Tensor,
    entry0: Tensor, U: Tensor, M: Tensor, v0: Tensor, decay: Tensor, threshold: Tensor, graded: Optional[Tensor],
    block_len: int, strict: bool, reentry_zero: bool, reentry_subtract: bool, post_zero: bool,
    sg_name: str, sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor]:
    """dL/dx ([T, N]) and the per-neuron float64 gradients of v0, decay, threshold, graded."""
    shape = v0.shape
    (T, N), device = U.shape, U.device
    gs, gs_stride = _row_or_rows(g_spikes, T, N, U)
    gm, gm_stride = _row_or_rows(g_membrane, T, N, U)
    graded_flat = _flat(graded, shape, N) if graded is not None else torch.ones(N, dtype=U.dtype, device=device)
    gx = torch.empty_like(U)
    g_v0, g_decay, g_thr, g_graded = (torch.empty(N, dtype=torch.float64, device=device) for _ in range(4))
    width = _block_width(device)
    triton_lif.lif_backward[(triton.cdiv(max(N, 1), width),)](
        gs, gs_stride, gm, gm_stride, _final_grad(g_final_v, N, U), block_spike, entry0, U, M if post_zero else U,
        _flat(v0, shape, N), _flat(decay, shape, N), _flat(threshold, shape, N), graded_flat,
        _constants(sg_name, sg_args, device),
        gx, g_v0, g_decay, g_thr, g_graded,
        T, N, block_len,
        HAS_G_SPIKES=g_spikes is not None, STRICT=strict, REENTRY_ZERO=reentry_zero,
        REENTRY_SUBTRACT=reentry_subtract, POST_ZERO=post_zero, SG_KIND=sg_kind,
        BLOCK=width, num_warps=4, enable_fp_fusion=False,
    )  # fmt: skip
    return gx, g_v0, g_decay, g_thr, g_graded


@triton_lif_backward.register_fake
def _(g_spikes, g_membrane, g_final_v, block_spike, entry0, U, M, v0, *rest):
    N = v0.numel()
    return (U.new_empty(U.shape), *(U.new_empty(N, dtype=torch.float64) for _ in range(4)))


def _triton_lif_setup(ctx, inputs, output):
    x, v0, decay, threshold, graded, _entry0, block_len, *config = inputs
    ctx.config = (block_len, *config)
    ctx.x_shape = x.shape
    S, U, M, block_spike, *_, entry0_flat = output
    ctx.save_for_backward(v0, decay, threshold, graded, U, M, block_spike, entry0_flat)
    ctx.set_materialize_grads(False)


def _triton_lif_grad(ctx, g_spikes, g_U, g_M, *_unused):
    v0, decay, threshold, graded, U, M, block_spike, entry0 = ctx.saved_tensors
    g_final_v = _unused[1]
    post_zero = ctx.config[4]
    gx, g_v0, g_decay, g_thr, g_graded = torch.ops.snn_blockbackend.triton_lif_backward(
        g_spikes, g_M if post_zero else g_U, g_final_v, block_spike, entry0, U, M, v0, decay, threshold, graded,
        *ctx.config,
    )
    need, shape = ctx.needs_input_grad, v0.shape
    return (
        gx.view(ctx.x_shape) if need[0] else None,
        ops.per_neuron_grad(g_v0, v0, shape) if need[1] else None,
        ops.per_neuron_grad(g_decay, decay, shape) if need[2] else None,
        ops.per_neuron_grad(g_thr, threshold, shape) if need[3] else None,
        ops.per_neuron_grad(g_graded, graded, shape) if need[4] else None,
        *(None,) * 9,
    )


# ---------------------------------------------------------------------------------------------
# the paper's adaptive LIF
# ---------------------------------------------------------------------------------------------
@ops.custom_op("triton_alif_forward")
def triton_alif_forward(
    x: Tensor, v0: Tensor, a0: Tensor, beta: Tensor, threshold: Tensor, adaptation_decay: Tensor,
    adaptation_strength: Tensor, countdown0: Tensor, refractory_steps: int,
    sg_name: str, sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """Spikes, membranes, final v, a, countdown ([N] int32), and A, flags (for the backward)."""
    shape, T = x.shape[1:], x.shape[0]
    N = shape.numel()
    xs = x.detach().contiguous().reshape(T, N)
    S, M, A = (torch.empty_like(xs) for _ in range(3))
    flags = torch.empty((T, N), dtype=torch.int8, device=x.device)
    v_out, a_out = (torch.empty(N, dtype=x.dtype, device=x.device) for _ in range(2))
    countdown_out = torch.empty(N, dtype=torch.int32, device=x.device)
    params = beta, threshold, adaptation_decay, adaptation_strength
    width = _block_width(x.device)
    triton_lif.alif_forward[(triton.cdiv(max(N, 1), width),)](
        xs, _flat(v0, shape, N), _flat(a0, shape, N), _flat(countdown0, shape, N).to(torch.int32),
        *(_flat(param, shape, N) for param in params),
        S, M, A, flags, v_out, a_out, countdown_out, T, N, refractory_steps,
        BLOCK=width, num_warps=4, enable_fp_fusion=False,
    )  # fmt: skip
    return S, M, v_out, a_out, countdown_out, A, flags


@triton_alif_forward.register_fake
def _(x, *rest):
    T, N = x.shape[0], x[0].numel()
    return (x.new_empty((T, N)), x.new_empty((T, N)), x.new_empty(N), x.new_empty(N),
            x.new_empty(N, dtype=torch.int32), x.new_empty((T, N)), x.new_empty((T, N), dtype=torch.int8))  # fmt: skip


@ops.custom_op("triton_alif_backward")
def triton_alif_backward(
    g_spikes: Optional[Tensor], g_membrane: Optional[Tensor], g_final_v: Optional[Tensor],
    g_final_a: Optional[Tensor], x: Tensor, M: Tensor, A: Tensor, flags: Tensor, v0: Tensor, a0: Tensor,
    beta: Tensor, threshold: Tensor, adaptation_decay: Tensor, adaptation_strength: Tensor,
    sg_name: str, sg_kind: int, sg_args: list[float],
) -> tuple[Tensor, Tensor, Tensor, Tensor, Tensor, Tensor, Tensor]:
    """dL/dx ([T, N]) and the per-neuron float64 gradients of v0, a0 and the four parameters."""
    shape, T, device = v0.shape, x.shape[0], x.device
    N = shape.numel()
    xs = x.detach().contiguous().reshape(T, N)
    gs, gs_stride = _row_or_rows(g_spikes, T, N, xs)
    gm, gm_stride = _row_or_rows(g_membrane, T, N, xs)
    params = beta, threshold, adaptation_decay, adaptation_strength
    gx = torch.empty_like(xs)
    g_v0, g_a0, *g_params = (torch.empty(N, dtype=torch.float64, device=device) for _ in range(6))
    width = _block_width(device)
    triton_lif.alif_backward[(triton.cdiv(max(N, 1), width),)](
        gs, gs_stride, gm, gm_stride, _final_grad(g_final_v, N, xs), _final_grad(g_final_a, N, xs), xs, M, A,
        _flat(v0, shape, N), _flat(a0, shape, N), flags, *(_flat(param, shape, N) for param in params),
        _constants(sg_name, sg_args, device), gx, g_v0, g_a0, *g_params, T, N,
        SG_KIND=sg_kind, BLOCK=width, num_warps=4, enable_fp_fusion=False,
    )  # fmt: skip
    return gx, g_v0, g_a0, *g_params


@triton_alif_backward.register_fake
def _(g_spikes, g_membrane, g_final_v, g_final_a, x, M, A, flags, v0, *rest):
    N = v0.numel()
    return (M.new_empty(M.shape), *(M.new_empty(N, dtype=torch.float64) for _ in range(6)))


def _triton_alif_setup(ctx, inputs, output):
    x, v0, a0, *params, _countdown0, _R, sg_name, sg_kind, sg_args = inputs
    ctx.config = (sg_name, sg_kind, sg_args)
    ctx.save_for_backward(x, v0, a0, *params, output[1], output[5], output[6])
    ctx.set_materialize_grads(False)


def _triton_alif_grad(ctx, g_spikes, g_membrane, g_final_v, g_final_a, *_unused):
    x, v0, a0, *params, M, A, flags = ctx.saved_tensors
    gx, g_v0, g_a0, *g_params = torch.ops.snn_blockbackend.triton_alif_backward(
        g_spikes, g_membrane, g_final_v, g_final_a, x, M, A, flags, v0, a0, *params, *ctx.config
    )
    need, shape = ctx.needs_input_grad, v0.shape
    return (
        gx.view(x.shape) if need[0] else None,
        ops.per_neuron_grad(g_v0, v0, shape) if need[1] else None,
        ops.per_neuron_grad(g_a0, a0, shape) if need[2] else None,
        *(ops.per_neuron_grad(g, param, shape) if need[3 + k] else None for k, (g, param) in enumerate(zip(g_params, params))),
        *(None,) * 5,
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------
# kernels generated from the profile (kernels.emit_triton)
# ---------------------------------------------------------------------------------------------
def _reads(device: torch.device) -> str:
    """Whose elementwise kernels the generated ones reproduce on ``device`` (``codegen.Dialect.reads``): the
    reference runs on the same device, CPU tensors only in the interpreter."""
    return "cuda" if device.type == "cuda" else "cpu"


def _generated_module(step, sg_kind: str, device: torch.device):
    reads = _reads(device)
    name = kernels.module_name("triton", step, sg_kind, reads)
    return kernel_cache.load(name, lambda: emit_triton.source(step, sg_kind, reads))


@ops.custom_op("triton_generated_forward")
def triton_generated_forward(
    x: Tensor, state0: list[Tensor], params: list[Tensor], countdown0: Tensor, refractory_steps: int, kernel: str,
    sg_kind: str, sg_args: list[float],
) -> list[Tensor]:
    """The traced step ``kernel`` over [T, ...] input (outputs: see ``providers.generated``; each in the dtype of
    what it holds, ``Step.torch_dtype``)."""
    step = kernels.registered(kernel)
    shape, T = x.shape[1:], x.shape[0]
    N = shape.numel()
    xs = x.detach().contiguous().reshape(T, N)
    rows = lambda what: xs.new_empty((T, N), dtype=step.torch_dtype(what))  # noqa: E731
    S, M = rows("spikes"), rows("membranes")
    F = xs.new_empty((T, N), dtype=torch.uint8)
    countdown_out = torch.empty(N, dtype=torch.int64, device=x.device)
    finals = [xs.new_empty(N, dtype=step.torch_dtype(f"state:{s}")) for s in step.state]
    saved = [rows(f"state:{s}") for s in step.saved]
    module = _generated_module(step, sg_kind, x.device)
    width = _block_width(x.device)
    module.forward[(triton.cdiv(max(N, 1), width),)](
        _bits(xs), countdown0.expand(shape).contiguous().reshape(N), *(_flat(s, shape, N) for s in state0),
        *(_flat(p, shape, N) for p in params), _bits(S), _bits(M), F, countdown_out, *map(_bits, finals),
        *map(_bits, saved), T, N, refractory_steps, BLOCK=width, num_warps=4, enable_fp_fusion=False,
    )  # fmt: skip
    return [S, M, F, countdown_out, *finals, *saved]


@ops.custom_op("triton_generated_backward")
def triton_generated_backward(
    g_spikes: Optional[Tensor], g_membrane: Optional[Tensor], g_finals: list[Tensor], x: Tensor, M: Tensor,
    F: Tensor, state0: list[Tensor], saved: list[Tensor], params: list[Tensor], kernel: str, sg_kind: str,
    sg_args: list[float],
) -> list[Tensor]:
    """dL/dx ([T, N]) and the per-neuron float64 gradients of each initial state variable and each parameter."""
    step = kernels.registered(kernel)
    (T, N), device = M.shape, M.device
    shape = state0[0].shape
    gs, gs_stride = _row_or_rows(g_spikes, T, N, M.new_empty(0, dtype=step.torch_dtype("spikes")))
    gm, gm_stride = _row_or_rows(g_membrane, T, N, M)
    gx = torch.empty((T, N), dtype=x.dtype, device=device)
    g_state = [torch.empty(N, dtype=torch.float64, device=device) for _ in step.state]
    g_params = [torch.empty(N, dtype=torch.float64, device=device) for _ in step.params]
    constants = _constants(sg_kind, sg_args, device)
    module = _generated_module(step, sg_kind, device)
    width = _block_width(device)
    module.backward[(triton.cdiv(max(N, 1), width),)](
        gs, gs_stride, gm, gm_stride, _bits(x.detach().contiguous().reshape(T, N)), F, constants, _bits(M),
        *(_flat(s, shape, N) for s in state0), *map(_bits, saved), *(_flat(p, shape, N) for p in params),
        *(_bits(g.reshape(N).contiguous()) for g in g_finals), _bits(gx), *g_state, *g_params,
        T, N, BLOCK=width, num_warps=4, enable_fp_fusion=False,
    )  # fmt: skip
    return [gx, *g_state, *g_params]


def _register_autograd():
    for forward, backward, setup, grad in (
        (triton_lif_forward, triton_lif_backward, _triton_lif_setup, _triton_lif_grad),
        (triton_alif_forward, triton_alif_backward, _triton_alif_setup, _triton_alif_grad),
    ):
        forward.register_autograd(grad, setup_context=setup)
        ops.no_double_backward(backward, "triton")
        ops.count_flops(forward, ops.FORWARD_FLOPS_PER_ELEMENT_STEP)
        ops.count_flops(backward, ops.BACKWARD_FLOPS_PER_ELEMENT_STEP)


if triton_lif is not None:
    _register_autograd()
    generated.register(triton_generated_forward, triton_generated_backward, "triton")


class TritonProvider:
    name = "triton"
    priority = 5  # below the torch provider: "auto" never picks it until it has been measured on a GPU
    prepare = staticmethod(generated.prepare)

    def supports(self, profile, device, grad):
        if device.type == "cpu" and not triton_lif.interpreted():
            return "Triton kernels run on CUDA tensors (on CPU tensors only under TRITON_INTERPRET=1, for testing)"
        if device.type not in ("cpu", "cuda"):
            return f"Triton kernels run on CUDA tensors, not on {device.type}"
        if grad != "exact":
            return "the Triton kernels compute exact BPTT gradients only"
        return sg.kernel_refusal(profile.surrogate) or kernels.traceable(profile)

    @staticmethod
    def hand_written(profile) -> bool:
        """Whether the hand-written LIF/ALIF kernels (``triton_lif``) serve ``profile`` (preferred until measured
        against the generated ones on a GPU; see ``generated.generated_only``)."""
        return profile.fast_lif_capable or describes_itself(profile, "alif_spec")

    def supports_operands(self, profile, operands):
        """Every dtype and mix the generated kernels trace (half precision computed in float32 and rounded after
        every operation, by PyTorch's CPU rules: on a GPU, ``make gpu-check`` compares them with PyTorch's CUDA
        kernels); the hand-written families take float32/float64 of one dtype (``run`` routes the rest)."""
        if isinstance(operands, str):
            return operands
        return kernels.traceable(profile, operands)

    def _hand_written_for(self, profile, p, x, state) -> bool:
        if generated.generated_only() or not self.hand_written(profile):
            return False
        s, _ = initial_state(profile, p, x, state)
        return kernels.Operands.of(x, s, p).uniform in ("float32", "float64")

    def run(self, profile, params, x, refractory_steps, state=None, grad="exact"):
        p = profile.prepare(params)
        if not self._hand_written_for(profile, p, x, state):
            forward = torch.ops.snn_blockbackend.triton_generated_forward
            return generated.run(forward, profile, p, x, refractory_steps, state)
        if describes_itself(profile, "alif_spec"):
            s, countdown = initial_state(profile, p, x, state)
            shape = x.shape[1:]
            surrogate = profile.surrogate
            spikes, membrane, v, a, countdown, _, _ = torch.ops.snn_blockbackend.triton_alif_forward(
                x, s["v"].expand(shape), s["a"].expand(shape), *profile.alif_spec(p), countdown, refractory_steps,
                surrogate.kind, surrogate.kernel_code, surrogate.kernel_args,
            )
            final = {"v": v.view(shape), "a": a.view(shape), "refractory": countdown.to(torch.int64).view(shape)}
            return spikes.view(x.shape), membrane.view(x.shape), final
        L = refractory_steps + 1
        cfg, v0, entry = prepare_fast(profile, p, x, state, L)
        surrogate, shape = profile.surrogate, x.shape[1:]
        S, U, M, _, v, last_entry, last_spike, _ = torch.ops.snn_blockbackend.triton_lif_forward(
            x, v0, cfg.decay, cfg.threshold, cfg.graded, entry, L, cfg.strict, cfg.reentry_zero,
            cfg.reentry_subtract, cfg.post_zero, surrogate.kind, surrogate.kernel_code, surrogate.kernel_args,
        )  # fmt: skip
        spikes, membrane = S.view(x.shape), (M if cfg.post_zero else U).view(x.shape)
        last_entry, last_spike = last_entry.to(torch.int64).view(shape), last_spike.to(torch.int64).view(shape)
        return spikes, membrane, finish_fast(refractory_steps, x.shape[0], v.view(shape), last_entry, last_spike)


@hookimpl
def snn_blockbackend_providers():
    return [TritonProvider()] if triton_lif is not None else []
