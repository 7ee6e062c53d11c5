"""The numba provider: compiled CPU kernels for the LIF fast path (see ``numba_lif``), for the
one-variable neurons that describe themselves with ``kernel_spec`` (SpikingJelly LIF, Norse LIFBox; see
``numba_neurons``), for the paper's adaptive LIF (``alif_spec``; see ``numba_alif``) and for the
current-based LIF and LSNN of Norse (``current_lif_spec``; see ``numba_current_lif``).

Registered only when numba imports. It supports CPU tensors, those profiles and the built-in surrogates;
``backend="auto"`` prefers it there and falls back to the torch provider otherwise.
"""

from __future__ import annotations

import numpy as np
import torch

from .. import surrogate as sg
from ..plugins import hookimpl
from .torch_provider import describes_itself, finish_fast, initial_state, prepare_fast

try:
    from . import numba_alif, numba_current_lif, numba_lif, numba_neurons
    from .numba_threads import on_torch_threads
except ImportError as error:  # numba missing: the provider is simply not offered
    numba_alif = numba_current_lif = numba_lif = numba_neurons = None
    _IMPORT_ERROR = error

    def on_torch_threads(launch):
        return launch


def _flat(t: torch.Tensor, shape) -> np.ndarray:
    return t.detach().expand(shape).contiguous().reshape(-1).numpy()


def _optional(t: torch.Tensor | None, shape, N: int, dtype) -> np.ndarray:
    """A per-neuron array of ``t``, or zeros (an unused output's gradient, or a placeholder the kernel does not read)."""
    return _flat(t, shape) if t is not None else np.zeros(N, dtype)


def _uniform_or_rows(grad: torch.Tensor | None, T: int, N: int, dtype) -> tuple[np.ndarray, bool]:
    """An output's incoming gradient for ``lif_backward``: (one contiguous row, True) where it is the same at
    every step (None: zeros; the expanded scalar of a ``.sum()``), else ([T, N] contiguous, False).
    Contiguous rows let the kernel's inner loop vectorize."""
    if grad is None:
        return np.zeros((1, N), dtype), True
    if all(stride == 0 for stride in grad.stride()):
        return np.full((1, N), grad.reshape(-1)[0].item(), dtype), True
    return grad.detach().contiguous().reshape(T, N).numpy(), False


def _param_grad(values: np.ndarray, param: torch.Tensor | None, shape) -> torch.Tensor | None:
    """A kernel's per-neuron gradient (float64) as the gradient of ``param``, which broadcasts to ``shape``."""
    if param is None or not param.requires_grad:
        return None
    return torch.from_numpy(values).to(param.dtype).view(shape).sum_to_size(param.shape)


class _NumbaLIF(torch.autograd.Function):
    @staticmethod
    @on_torch_threads
    def forward(ctx, x, v0, decay, threshold, graded, entry0, block_len, cfg, sg_kind, sg_args):
        ctx.set_materialize_grads(False)  # an unused output's gradient comes as None, not [T, ...] zeros
        shape = x.shape[1:]
        T, N = x.shape[0], v0.numel()
        xs = x.detach().contiguous().reshape(T, N).numpy()
        out = {name: np.empty((T, N), dtype=xs.dtype) for name in ("S", "U")}
        M = np.empty((T, N) if cfg.post_zero else (0, N), dtype=xs.dtype)  # the membrane is U unless post_zero
        n_blocks = (T - 1) // block_len + 1
        block_spike = np.empty((n_blocks, N), dtype=np.int8 if block_len <= 127 else np.int32)
        entry0_np = entry0.reshape(-1).contiguous().numpy()
        v_out = np.empty(N, dtype=xs.dtype)
        entry_out = np.empty(N, dtype=np.int64)
        spike_out = np.empty(N, dtype=np.int64)
        graded_np = _flat(graded, shape) if graded is not None else np.ones(N, dtype=xs.dtype)
        numba_lif.lif_forward(
            xs, _flat(v0, shape), _flat(decay, shape), _flat(threshold, shape), graded_np,
            entry0_np, block_len, cfg.strict, cfg.reentry_zero,
            cfg.reentry_subtract, cfg.post_zero, numba_neurons.chunk_width(N, numba_neurons.FORWARD_WIDEST),
            out["S"], out["U"], M, block_spike, v_out, entry_out, spike_out,
        )  # fmt: skip
        S, U = torch.from_numpy(out["S"]).view(x.shape), torch.from_numpy(out["U"]).view(x.shape)
        M_t = torch.from_numpy(M).view(x.shape) if cfg.post_zero else U
        ctx.cfg, ctx.sg = cfg, (sg_kind, sg_args)
        ctx.block_len = block_len
        ctx.save_for_backward(v0, decay, threshold, graded, U, M_t, torch.from_numpy(block_spike), entry0)
        last_entry = torch.from_numpy(entry_out).view(shape)
        last_spike = torch.from_numpy(spike_out).view(shape)
        ctx.mark_non_differentiable(last_entry, last_spike)
        return S, M_t, torch.from_numpy(v_out).view(shape), last_entry, last_spike

    @staticmethod
    @on_torch_threads
    def backward(ctx, g_spikes, g_membrane, g_final_v, _g_entry, _g_spike):
        v0, decay, threshold, graded, U, M, block_spike, entry0 = ctx.saved_tensors
        cfg = ctx.cfg
        shape, T, N = v0.shape, U.shape[0], v0.numel()
        dtype = U.numpy().dtype

        gx = np.empty((T, N), dtype=dtype)
        g_v0, g_decay, g_thr, g_graded = (np.empty(N, dtype=np.float64) for _ in range(4))
        numba_lif.lif_backward(
            *_uniform_or_rows(g_spikes, T, N, dtype), g_spikes is not None, *_uniform_or_rows(g_membrane, T, N, dtype),
            _optional(g_final_v, shape, N, dtype),
            block_spike.numpy(), entry0.reshape(-1).contiguous().numpy(), ctx.block_len,
            U.reshape(T, N).numpy(), M.reshape(T, N).numpy(), _flat(v0, shape),
            _flat(decay, shape), _flat(threshold, shape),
            _flat(graded, shape) if graded is not None else np.ones(N, dtype),
            cfg.strict, cfg.reentry_zero, cfg.reentry_subtract, cfg.post_zero, ctx.sg[0], ctx.sg[1],
            numba_neurons.chunk_width(N, numba_neurons.BACKWARD_WIDEST), gx, g_v0, g_decay, g_thr, g_graded,
        )  # fmt: skip

        need = ctx.needs_input_grad
        return (
            torch.from_numpy(gx).view(U.shape) if need[0] else None,
            torch.from_numpy(g_v0).to(v0.dtype).view(shape) if need[1] else None,
            _param_grad(g_decay, decay, shape) if need[2] else None,
            _param_grad(g_thr, threshold, shape) if need[3] else None,
            _param_grad(g_graded, graded, shape) if need[4] else None,
            None,
            None,
            None,
            None,
            None,
        )


class _NumbaNeuron(torch.autograd.Function):
    """One-variable neurons of ``numba_neurons``; ``spec`` is the profile's ``NeuronKernelSpec`` less its
    tensors, which come in as the differentiable arguments."""

    @staticmethod
    @on_torch_threads
    def forward(ctx, x, v0, coefficient, v_leak, threshold, reset_value, countdown0, refractory_steps, spec, sg_name, sg_kind, sg_args):
        ctx.set_materialize_grads(False)  # an unused output's gradient comes as None, not [T, ...] zeros
        shape = x.shape[1:]
        T, N = x.shape[0], v0.numel()
        xs = x.detach().contiguous().reshape(T, N).numpy()
        dtype = xs.dtype
        S, M = np.empty((T, N), dtype=dtype), np.empty((T, N), dtype=dtype)
        flags = np.empty((T, N), dtype=np.uint8)
        v_out, countdown_out = np.empty(N, dtype=dtype), np.empty(N, dtype=np.int64)
        mode = numba_neurons.CHARGE_KINDS[spec.charge]
        offset = np.array([spec.charge_offset], dtype=dtype)
        arrays = _NumbaNeuron._arrays(shape, N, dtype, coefficient, v_leak, threshold, reset_value)
        numba_neurons.neuron_forward(
            xs, _flat(v0, shape), countdown0.expand(shape).contiguous().reshape(-1).numpy(), mode,
            arrays[0], offset, arrays[1], arrays[2], spec.strict, spec.soft_reset, arrays[3],
            refractory_steps, numba_neurons.chunk_width(N, numba_neurons.FORWARD_WIDEST), S, M, flags, v_out, countdown_out,
        )  # fmt: skip
        ctx.spec, ctx.sg, ctx.mode, ctx.sg_name = spec, (sg_kind, sg_args), mode, sg_name
        M_t = torch.from_numpy(M).view(x.shape)
        ctx.save_for_backward(x, v0, coefficient, v_leak, threshold, reset_value, M_t, torch.from_numpy(flags))
        countdown = torch.from_numpy(countdown_out).view(shape)
        ctx.mark_non_differentiable(countdown)
        return torch.from_numpy(S).view(x.shape), M_t, torch.from_numpy(v_out).view(shape), countdown

    @staticmethod
    def _arrays(shape, N, dtype, coefficient, v_leak, threshold, reset_value):
        zeros = np.zeros(N, dtype=dtype)
        return (
            _flat(coefficient, shape),
            _flat(v_leak, shape) if v_leak is not None else zeros,
            _flat(threshold, shape),
            _flat(reset_value, shape) if reset_value is not None else zeros,
        )

    @staticmethod
    @on_torch_threads
    def backward(ctx, g_spikes, g_membrane, g_final_v, _g_countdown):
        x, v0, coefficient, v_leak, threshold, reset_value, M, flags = ctx.saved_tensors
        spec = ctx.spec
        shape, T, N = v0.shape, x.shape[0], v0.numel()
        dtype = M.numpy().dtype

        arrays = _NumbaNeuron._arrays(shape, N, dtype, coefficient, v_leak, threshold, reset_value)
        gx = np.empty((T, N), dtype=dtype)
        g_v0 = np.empty(N, dtype=np.float64)
        g_coef, g_leak, g_thr, g_reset = (np.empty(N, dtype=np.float64) for _ in range(4))
        numba_neurons.neuron_backward(
            *_uniform_or_rows(g_spikes, T, N, dtype), *_uniform_or_rows(g_membrane, T, N, dtype),
            _optional(g_final_v, shape, N, dtype),
            x.detach().contiguous().reshape(T, N).numpy(), M.reshape(T, N).numpy(), _flat(v0, shape),
            flags.numpy(), ctx.mode, arrays[0], np.array([spec.charge_offset], dtype=dtype), arrays[1],
            arrays[2], spec.soft_reset, arrays[3], spec.detach_reset, ctx.sg[0], ctx.sg[1],
            numba_neurons.surrogate_constants(ctx.sg_name, ctx.sg[1], dtype), numba_neurons.chunk_width(N, numba_neurons.BACKWARD_WIDEST), gx, g_v0, g_coef, g_leak, g_thr, g_reset,
        )  # fmt: skip

        need = ctx.needs_input_grad
        return (
            torch.from_numpy(gx).view(x.shape) if need[0] else None,
            torch.from_numpy(g_v0).to(v0.dtype).view(shape) if need[1] else None,
            _param_grad(g_coef, coefficient, shape) if need[2] else None,
            _param_grad(g_leak, v_leak, shape) if need[3] else None,
            _param_grad(g_thr, threshold, shape) if need[4] else None,
            _param_grad(g_reset, reset_value, shape) if need[5] else None,
            *(None,) * 6,  # countdown0, refractory_steps, spec, sg_name, sg_kind, sg_args
        )


class _NumbaALIF(torch.autograd.Function):
    """The paper's adaptive LIF (``numba_alif``): spikes, membranes, final v, a and refractory countdown."""

    @staticmethod
    @on_torch_threads
    def forward(ctx, x, v0, a0, beta, threshold, adaptation_decay, adaptation_strength, countdown0, refractory_steps, sg_kind, sg_args):
        ctx.set_materialize_grads(False)  # an unused output's gradient comes as None, not [T, ...] zeros
        shape = x.shape[1:]
        T, N = x.shape[0], v0.numel()
        xs = x.detach().contiguous().reshape(T, N).numpy()
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
        ctx.sg = (sg_kind, sg_args)
        M_t = torch.from_numpy(M).view(x.shape)
        ctx.save_for_backward(x, v0, a0, *params, M_t, torch.from_numpy(A), torch.from_numpy(flags))
        countdown = torch.from_numpy(countdown_out).view(shape)
        ctx.mark_non_differentiable(countdown)
        return torch.from_numpy(S).view(x.shape), M_t, torch.from_numpy(v_out).view(shape), torch.from_numpy(a_out).view(shape), countdown

    @staticmethod
    @on_torch_threads
    def backward(ctx, g_spikes, g_membrane, g_final_v, g_final_a, _g_countdown):
        x, v0, a0, beta, threshold, adaptation_decay, adaptation_strength, M, A, flags = ctx.saved_tensors
        shape, T, N = v0.shape, x.shape[0], v0.numel()
        dtype = M.numpy().dtype
        params = beta, threshold, adaptation_decay, adaptation_strength

        gx = np.empty((T, N), dtype=dtype)
        g_v0, g_a0, *g_params = (np.empty(N, dtype=np.float64) for _ in range(6))
        numba_alif.alif_backward(
            *_uniform_or_rows(g_spikes, T, N, dtype), *_uniform_or_rows(g_membrane, T, N, dtype),
            _optional(g_final_v, shape, N, dtype), _optional(g_final_a, shape, N, dtype),
            x.detach().contiguous().reshape(T, N).numpy(),
            M.reshape(T, N).numpy(), A.numpy(), _flat(v0, shape), _flat(a0, shape), flags.numpy(),
            *(_flat(param, shape) for param in params), ctx.sg[0], ctx.sg[1],
            numba_neurons.chunk_width(N, numba_neurons.BACKWARD_WIDEST), gx, g_v0, g_a0, *g_params,
        )  # fmt: skip

        need = ctx.needs_input_grad
        return (
            torch.from_numpy(gx).view(x.shape) if need[0] else None,
            torch.from_numpy(g_v0).to(v0.dtype).view(shape) if need[1] else None,
            torch.from_numpy(g_a0).to(a0.dtype).view(shape) if need[2] else None,
            *(_param_grad(g, param, shape) if need[3 + k] else None for k, (g, param) in enumerate(zip(g_params, params))),
            *(None,) * 4,  # countdown0, refractory_steps, sg_kind, sg_args
        )


class _NumbaCurrentLIF(torch.autograd.Function):
    """The current-based LIF and its adaptive-threshold variant (``numba_current_lif``): spikes, membranes,
    final v, i, b (the threshold; v_th without adaptation) and countdown."""

    @staticmethod
    @on_torch_threads
    def forward(ctx, x, v0, i0, b0, rate_m, rate_s, rate_a, v_leak, v_th, v_reset, jump, countdown0, refractory_steps, input_after, sg_name, sg_kind, sg_args):
        ctx.set_materialize_grads(False)  # an unused output's gradient comes as None, not [T, ...] zeros
        shape = x.shape[1:]
        T, N = x.shape[0], v0.numel()
        xs = x.detach().contiguous().reshape(T, N).numpy()
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
        ctx.sg, ctx.input_after, ctx.adaptive = (sg_name, sg_kind, sg_args), input_after, adaptive
        M_t = torch.from_numpy(M).view(x.shape)
        ctx.save_for_backward(x, v0, i0, b0, *params, M_t, torch.from_numpy(I), torch.from_numpy(B), torch.from_numpy(flags))
        countdown = torch.from_numpy(countdown_out).view(shape)
        ctx.mark_non_differentiable(countdown)
        outputs = torch.from_numpy(v_out).view(shape), torch.from_numpy(i_out).view(shape), torch.from_numpy(b_out).view(shape)
        return torch.from_numpy(S).view(x.shape), M_t, *outputs, countdown

    @staticmethod
    @on_torch_threads
    def backward(ctx, g_spikes, g_membrane, g_final_v, g_final_i, g_final_b, _g_countdown):
        x, v0, i0, b0, *params, M, I, B, flags = ctx.saved_tensors
        shape, T, N = v0.shape, x.shape[0], v0.numel()
        dtype = M.numpy().dtype
        sg_name, sg_kind, sg_args = ctx.sg

        gx = np.empty((T, N), dtype=dtype)
        g_v0, g_i0, g_b0, *g_params = (np.empty(N, dtype=np.float64) for _ in range(10))
        numba_current_lif.current_lif_backward(
            *_uniform_or_rows(g_spikes, T, N, dtype), *_uniform_or_rows(g_membrane, T, N, dtype),
            _optional(g_final_v, shape, N, dtype), _optional(g_final_i, shape, N, dtype),
            _optional(g_final_b, shape, N, dtype), x.detach().contiguous().reshape(T, N).numpy(),
            M.reshape(T, N).numpy(), I.numpy(), B.numpy(), _flat(v0, shape), _flat(i0, shape),
            _optional(b0, shape, N, dtype), flags.numpy(), *(_optional(param, shape, N, dtype) for param in params),
            ctx.input_after, ctx.adaptive, sg_kind, sg_args, numba_neurons.surrogate_constants(sg_name, sg_args, dtype),
            numba_neurons.chunk_width(N, numba_neurons.BACKWARD_WIDEST), gx, g_v0, g_i0, g_b0, *g_params,
        )  # fmt: skip

        need = ctx.needs_input_grad
        return (
            torch.from_numpy(gx).view(x.shape) if need[0] else None,
            torch.from_numpy(g_v0).to(v0.dtype).view(shape) if need[1] else None,
            torch.from_numpy(g_i0).to(i0.dtype).view(shape) if need[2] else None,
            torch.from_numpy(g_b0).to(b0.dtype).view(shape) if need[3] else None,
            *(_param_grad(g, param, shape) if need[4 + k] else None for k, (g, param) in enumerate(zip(g_params, params))),
            *(None,) * 6,  # countdown0, refractory_steps, input_after, sg_name, sg_kind, sg_args
        )


class NumbaLIFProvider:
    name = "numba"
    priority = 20

    def supports(self, profile, device, grad):
        if device.type != "cpu":
            return "numba kernels run on CPU tensors only"
        if grad != "exact":
            return "the numba kernels compute exact BPTT gradients only"
        compiled = (describes_itself(profile, spec) for spec in ("kernel_spec", "alif_spec", "current_lif_spec"))
        if not profile.fast_lif_capable and not any(compiled):
            return (
                f"no compiled kernel for {profile.describe()} (only the paper's LIF and ALIF, snnTorch Leaky "
                "with a delayed reset, SpikingJelly LIF, Norse LIFBox, LIF and LSNN)"
            )
        return sg.kernel_refusal(profile.surrogate)

    def run(self, profile, params, x, refractory_steps, state=None, grad="exact"):
        p = profile.prepare(params)
        if describes_itself(profile, "alif_spec"):
            return self._run_alif(profile, p, x, refractory_steps, state)
        if describes_itself(profile, "current_lif_spec"):
            return self._run_current_lif(profile, p, x, refractory_steps, state)
        if not profile.fast_lif_capable:
            return self._run_neuron(profile, p, x, refractory_steps, state)
        L = refractory_steps + 1
        cfg, v0, entry = prepare_fast(profile, p, x, state, L)
        surrogate = profile.surrogate
        spikes, membrane, v, last_entry, last_spike = _NumbaLIF.apply(
            x, v0, cfg.decay, cfg.threshold, cfg.graded, entry, L, cfg,
            surrogate.kernel_code, surrogate.kernel_args,
        )  # fmt: skip
        return spikes, membrane, finish_fast(refractory_steps, x.shape[0], v, last_entry, last_spike)

    @staticmethod
    def _run_alif(profile, p, x, refractory_steps, state):
        s, countdown = initial_state(profile, p, x, state)
        surrogate, shape = profile.surrogate, x.shape[1:]
        spikes, membrane, v, a, countdown = _NumbaALIF.apply(
            x, s["v"].expand(shape), s["a"].expand(shape), *profile.alif_spec(p), countdown, refractory_steps,
            surrogate.kernel_code, surrogate.kernel_args,
        )  # fmt: skip
        return spikes, membrane, {"v": v, "a": a, "refractory": countdown}

    @staticmethod
    def _run_current_lif(profile, p, x, refractory_steps, state):
        s, countdown = initial_state(profile, p, x, state)
        surrogate, shape = profile.surrogate, x.shape[1:]
        spec = profile.current_lif_spec(p)
        b0 = s["b"].expand(shape) if "b" in s else None  # the adaptive threshold (LSNN)
        spikes, membrane, v, i, b, countdown = _NumbaCurrentLIF.apply(
            x, s["v"].expand(shape), s["i"].expand(shape), b0, spec.rate_m, spec.rate_s, spec.rate_a, spec.v_leak,
            spec.v_th, spec.v_reset, spec.jump, countdown, refractory_steps, spec.input_after,
            surrogate.kind, surrogate.kernel_code, surrogate.kernel_args,
        )  # fmt: skip
        final = {"v": v, "i": i, "b": b} if b0 is not None else {"v": v, "i": i}
        return spikes, membrane, {**final, "refractory": countdown}

    @staticmethod
    def _run_neuron(profile, p, x, refractory_steps, state):
        s, countdown = initial_state(profile, p, x, state)
        spec = profile.kernel_spec(p)
        tensors = spec.coefficient, spec.v_leak, spec.threshold, spec.reset_value
        constants = spec._replace(coefficient=None, v_leak=None, threshold=None, reset_value=None)
        surrogate = profile.surrogate
        spikes, membrane, v, countdown = _NumbaNeuron.apply(
            x, s["v"].expand(x.shape[1:]), *tensors, countdown, refractory_steps, constants,
            surrogate.kind, surrogate.kernel_code, surrogate.kernel_args,
        )  # fmt: skip
        return spikes, membrane, {"v": v, "refractory": countdown}


@hookimpl
def snn_blockbackend_providers():
    return [NumbaLIFProvider()] if numba_lif is not None else []
