"""The Triton provider: the LIF fast path (the paper's LIF, snnTorch ``Leaky`` with its delayed reset) and the
paper's adaptive LIF (``BlockALIF``) as Triton kernels (``triton_lif``) for CUDA tensors.

Registered only when triton imports. ``backend="auto"`` does not pick it (its priority is below the torch
provider's) until it has been measured on a GPU; select it with ``backend="triton"``. Under
``TRITON_INTERPRET=1`` the same kernels run on CPU tensors in Triton's interpreter, which is how the test suite
checks them bit for bit against the reference on machines without a GPU (slowly: it is for testing only).
"""

from __future__ import annotations

import torch

from .. import surrogate as sg
from ..ops import kernel_dtype_refusal
from ..plugins import hookimpl
from .torch_provider import describes_itself, finish_fast, initial_state, prepare_fast

try:
    import triton

    from . import triton_lif
except ImportError:  # triton missing (it ships for Linux only): the provider is simply not offered
    triton = triton_lif = None


def _block_width(device: torch.device) -> int:
    # one neuron per GPU thread (4 warps); the interpreter runs each program in NumPy, so wider is faster there
    return 1024 if device.type == "cpu" else 128


def _flat(t: torch.Tensor, shape, N: int) -> torch.Tensor:
    return t.detach().expand(shape).contiguous().reshape(N)


def _row_or_rows(grad: torch.Tensor | None, T: int, N: int, like: torch.Tensor) -> tuple[torch.Tensor, int]:
    """An output's incoming gradient and its row stride: one row (stride 0) where it is the same at every step
    (None: zeros; the expanded scalar of a ``.sum()``), else [T, N] rows (stride N)."""
    if grad is None:
        return torch.zeros(N, dtype=like.dtype, device=like.device), 0
    if all(stride == 0 for stride in grad.stride()):
        return grad.reshape(-1)[:1].expand(N).contiguous(), 0
    return grad.detach().contiguous().reshape(T, N), N


def _param_grad(values: torch.Tensor, param: torch.Tensor | None, shape) -> torch.Tensor | None:
    """A kernel's per-neuron gradient (float64) as the gradient of ``param``, which broadcasts to ``shape``."""
    if param is None or not param.requires_grad:
        return None
    return values.to(param.dtype).view(shape).sum_to_size(param.shape)


class _TritonLIF(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v0, decay, threshold, graded, entry0, block_len, cfg, surrogate):
        shape, T = x.shape[1:], x.shape[0]
        N = shape.numel()
        xs = x.detach().contiguous().reshape(T, N)
        S, U = torch.empty_like(xs), torch.empty_like(xs)
        M = torch.empty_like(xs) if cfg.post_zero else U  # the membrane is U unless post_zero
        block_spike = torch.empty(((T - 1) // block_len + 1, N), dtype=torch.int32, device=x.device)
        v_out = torch.empty(N, dtype=x.dtype, device=x.device)
        entry_out, spike_out = (torch.empty(N, dtype=torch.int32, device=x.device) for _ in range(2))
        graded_flat = _flat(graded, shape, N) if graded is not None else torch.ones(N, dtype=x.dtype, device=x.device)
        entry0_flat = entry0.reshape(-1).to(torch.int32).contiguous()
        per_neuron = _flat(v0, shape, N), _flat(decay, shape, N), _flat(threshold, shape, N), graded_flat
        width = _block_width(x.device)
        triton_lif.lif_forward[(triton.cdiv(max(N, 1), width),)](
            xs, *per_neuron, entry0_flat,
            S, U, M, block_spike, v_out, entry_out, spike_out,
            T, N, block_len,
            STRICT=cfg.strict, REENTRY_ZERO=cfg.reentry_zero, REENTRY_SUBTRACT=cfg.reentry_subtract,
            POST_ZERO=cfg.post_zero, BLOCK=width, num_warps=4, enable_fp_fusion=False,
        )  # fmt: skip
        ctx.cfg, ctx.surrogate, ctx.block_len, ctx.shape = cfg, surrogate, block_len, shape
        # the parameters for their gradients' shapes, their flat copies for the kernel
        ctx.save_for_backward(v0, decay, threshold, graded, *per_neuron, U, M, block_spike, entry0_flat)
        last_entry = entry_out.to(torch.int64).view(shape)
        last_spike = spike_out.to(torch.int64).view(shape)
        ctx.mark_non_differentiable(last_entry, last_spike)
        ctx.set_materialize_grads(False)  # unused outputs get None, not [T, ...] zeros
        return S.view(x.shape), M.view(x.shape), v_out.view(shape), last_entry, last_spike

    @staticmethod
    def backward(ctx, g_spikes, g_membrane, g_final_v, _g_entry, _g_spike):
        v0, decay, threshold, graded, v0_flat, decay_flat, thr_flat, graded_flat, U, M, block_spike, entry0 = (
            ctx.saved_tensors
        )
        cfg, surrogate, shape = ctx.cfg, ctx.surrogate, ctx.shape
        (T, N), device = U.shape, U.device
        gs, gs_stride = _row_or_rows(g_spikes, T, N, U)
        gm, gm_stride = _row_or_rows(g_membrane, T, N, U)
        g_final = _flat(g_final_v, shape, N) if g_final_v is not None else torch.zeros(N, dtype=U.dtype, device=device)
        gx = torch.empty_like(U)
        g_v0, g_decay, g_thr, g_graded = (torch.empty(N, dtype=torch.float64, device=device) for _ in range(4))
        width = _block_width(device)
        triton_lif.lif_backward[(triton.cdiv(max(N, 1), width),)](
            gs, gs_stride, gm, gm_stride, g_final, block_spike, entry0, U, M,
            v0_flat, decay_flat, thr_flat, graded_flat,
            triton_lif.surrogate_constants(surrogate, device),
            gx, g_v0, g_decay, g_thr, g_graded,
            T, N, ctx.block_len,
            HAS_G_SPIKES=g_spikes is not None, STRICT=cfg.strict, REENTRY_ZERO=cfg.reentry_zero,
            REENTRY_SUBTRACT=cfg.reentry_subtract, POST_ZERO=cfg.post_zero, SG_KIND=surrogate.kernel_code,
            BLOCK=width, num_warps=4, enable_fp_fusion=False,
        )  # fmt: skip
        need = ctx.needs_input_grad
        return (
            gx.view(T, *shape) if need[0] else None,
            _param_grad(g_v0, v0, shape) if need[1] else None,
            _param_grad(g_decay, decay, shape) if need[2] else None,
            _param_grad(g_thr, threshold, shape) if need[3] else None,
            _param_grad(g_graded, graded, shape) if need[4] else None,
            None,
            None,
            None,
            None,
        )


class _TritonALIF(torch.autograd.Function):
    """The paper's adaptive LIF: spikes, membranes, final v, a and refractory countdown."""

    @staticmethod
    def forward(ctx, x, v0, a0, beta, threshold, adaptation_decay, adaptation_strength, countdown0, refractory_steps, surrogate):
        shape, T = x.shape[1:], x.shape[0]
        N = shape.numel()
        xs = x.detach().contiguous().reshape(T, N)
        S, M, A = (torch.empty_like(xs) for _ in range(3))
        flags = torch.empty((T, N), dtype=torch.int8, device=x.device)
        v_out, a_out = (torch.empty(N, dtype=x.dtype, device=x.device) for _ in range(2))
        countdown_out = torch.empty(N, dtype=torch.int32, device=x.device)
        params = beta, threshold, adaptation_decay, adaptation_strength
        states = _flat(v0, shape, N), _flat(a0, shape, N)
        params_flat = tuple(_flat(param, shape, N) for param in params)
        width = _block_width(x.device)
        triton_lif.alif_forward[(triton.cdiv(max(N, 1), width),)](
            xs, *states, _flat(countdown0, shape, N).to(torch.int32), *params_flat,
            S, M, A, flags, v_out, a_out, countdown_out, T, N, refractory_steps,
            BLOCK=width, num_warps=4, enable_fp_fusion=False,
        )  # fmt: skip
        ctx.surrogate, ctx.shape = surrogate, shape
        # the parameters for their gradients' shapes, their flat copies for the kernel
        ctx.save_for_backward(xs, v0, a0, *params, *states, *params_flat, M, A, flags)
        countdown = countdown_out.to(torch.int64).view(shape)
        ctx.mark_non_differentiable(countdown)
        ctx.set_materialize_grads(False)
        return S.view(x.shape), M.view(x.shape), v_out.view(shape), a_out.view(shape), countdown

    @staticmethod
    def backward(ctx, g_spikes, g_membrane, g_final_v, g_final_a, _g_countdown):
        xs, v0, a0, *rest = ctx.saved_tensors
        params, states, params_flat, (M, A, flags) = rest[:4], rest[4:6], rest[6:10], rest[10:]
        shape, (T, N), device = ctx.shape, xs.shape, xs.device
        gs, gs_stride = _row_or_rows(g_spikes, T, N, xs)
        gm, gm_stride = _row_or_rows(g_membrane, T, N, xs)
        finals = (_flat(g, shape, N) if g is not None else torch.zeros(N, dtype=xs.dtype, device=device)
                  for g in (g_final_v, g_final_a))  # fmt: skip
        gx = torch.empty_like(xs)
        g_v0, g_a0, *g_params = (torch.empty(N, dtype=torch.float64, device=device) for _ in range(6))
        width = _block_width(device)
        triton_lif.alif_backward[(triton.cdiv(max(N, 1), width),)](
            gs, gs_stride, gm, gm_stride, *finals, xs, M, A, *states, flags,
            *params_flat, triton_lif.surrogate_constants(ctx.surrogate, device),
            gx, g_v0, g_a0, *g_params, T, N,
            SG_KIND=ctx.surrogate.kernel_code, BLOCK=width, num_warps=4, enable_fp_fusion=False,
        )  # fmt: skip
        need = ctx.needs_input_grad
        return (
            gx.view(T, *shape) if need[0] else None,
            _param_grad(g_v0, v0, shape) if need[1] else None,
            _param_grad(g_a0, a0, shape) if need[2] else None,
            *(_param_grad(g, param, shape) if need[3 + k] else None for k, (g, param) in enumerate(zip(g_params, params))),
            None,
            None,
            None,
        )


class TritonProvider:
    name = "triton"
    priority = 5  # below the torch provider: "auto" never picks it until it has been measured on a GPU

    def supports(self, profile, device, grad):
        if device.type == "cpu" and not triton_lif.interpreted():
            return "Triton kernels run on CUDA tensors (on CPU tensors only under TRITON_INTERPRET=1, for testing)"
        if device.type not in ("cpu", "cuda"):
            return f"Triton kernels run on CUDA tensors, not on {device.type}"
        if grad != "exact":
            return "the Triton kernels compute exact BPTT gradients only"
        if not profile.fast_lif_capable and not describes_itself(profile, "alif_spec"):
            return (
                f"no Triton kernel for {profile.describe()} (only the paper's LIF and ALIF and snnTorch Leaky with "
                "a delayed reset; the torch provider runs the others)"
            )
        return sg.kernel_refusal(profile.surrogate)

    def supports_dtypes(self, dtypes):
        return kernel_dtype_refusal("Triton", dtypes)

    def run(self, profile, params, x, refractory_steps, state=None, grad="exact"):
        p = profile.prepare(params)
        if describes_itself(profile, "alif_spec"):
            s, countdown = initial_state(profile, p, x, state)
            shape = x.shape[1:]
            spikes, membrane, v, a, countdown = _TritonALIF.apply(
                x, s["v"].expand(shape), s["a"].expand(shape), *profile.alif_spec(p), countdown, refractory_steps,
                profile.surrogate,
            )
            return spikes, membrane, {"v": v, "a": a, "refractory": countdown}
        L = refractory_steps + 1
        cfg, v0, entry = prepare_fast(profile, p, x, state, L)
        spikes, membrane, v, last_entry, last_spike = _TritonLIF.apply(
            x, v0, cfg.decay, cfg.threshold, cfg.graded, entry, L, cfg, profile.surrogate
        )
        return spikes, membrane, finish_fast(refractory_steps, x.shape[0], v, last_entry, last_spike)


@hookimpl
def snn_blockbackend_providers():
    return [TritonProvider()] if triton_lif is not None else []
