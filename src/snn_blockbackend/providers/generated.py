"""What the numba and Triton providers share for kernels generated from a profile (``kernels``): the operators'
fake implementations, autograd wiring and the call from a provider's ``run``. Each provider supplies only the
two launches (forward and backward) as ``torch.library`` operators with these schemas::

    <backend>_generated_forward(x, state0: list, params: list, countdown0, refractory_steps, kernel, sg_kind,
                                sg_args) -> [spikes, membranes, live flags, countdown, *final state, *saved rows]
    <backend>_generated_backward(g_spikes?, g_membrane?, g_finals: list, x, M, F, state0: list, saved: list,
                                 params: list, kernel, sg_kind, sg_args) -> [dL/dx, *dL/dstate0, *dL/dparams]

``kernel`` is the traced step's key (``kernels.registered``); the live flags are [T, N] uint8 (1: not refractory).
The numba forward operator takes one more argument, ``check_finite`` (its kernel checks the input as it reads it).
"""

from __future__ import annotations

import os

import torch

from .. import kernels, ops
from .torch_provider import initial_state


def generated_only() -> bool:
    """``SNN_BLOCKBACKEND_GENERATED_KERNELS=1``: run every profile on the generated kernels, also those that still
    have a hand-written kernel family (which the providers prefer while it is faster): for the tests, the GPU check
    and benchmarks comparing the two. Read at each call."""
    return os.environ.get("SNN_BLOCKBACKEND_GENERATED_KERNELS") == "1"


def _fake_forward(x, state0, params, countdown0, refractory_steps, kernel, sg_kind, sg_args, *checks):
    step = kernels.registered(kernel)
    T, N = x.shape[0], x[0].numel()
    dtype = step.torch_dtype
    return [
        x.new_empty((T, N), dtype=dtype("spikes")), x.new_empty((T, N), dtype=dtype("membranes")),
        x.new_empty((T, N), dtype=torch.uint8), x.new_empty(N, dtype=torch.int64),
        *(x.new_empty(N, dtype=dtype(f"state:{s}")) for s in step.state),
        *(x.new_empty((T, N), dtype=dtype(f"state:{s}")) for s in step.saved),
    ]  # fmt: skip


def _fake_backward(g_spikes, g_membrane, g_finals, x, M, F, state0, saved, params, kernel, sg_kind, sg_args):
    N = M.shape[1]
    return [x.new_empty(M.shape), *(M.new_empty(N, dtype=torch.float64) for _ in (*state0, *params))]


def _setup(ctx, inputs, output):
    x, state0, params, _countdown0, _R, kernel, sg_kind, sg_args = inputs[:8]
    n_state = len(state0)
    ctx.n_inputs = len(inputs)
    ctx.config = (kernel, sg_kind, sg_args)
    ctx.counts = (n_state, len(params), len(output) - 4 - n_state)
    ctx.save_for_backward(x, output[1], output[2], *state0, *output[4 + n_state :], *params)
    ctx.set_materialize_grads(False)  # unused outputs get None, not [T, N] zeros


def _grad_through(backward_op):
    def grad(ctx, grads):
        n_state, n_params, n_saved = ctx.counts
        x, M, F, *rest = ctx.saved_tensors
        state0, saved, params = rest[:n_state], rest[n_state : n_state + n_saved], rest[n_state + n_saved :]
        N = M.shape[1]
        g_finals = [g if g is not None else s.new_zeros(N) for g, s in zip(grads[4 : 4 + n_state], state0)]
        gx, *g_rest = backward_op(grads[0], grads[1], g_finals, x, M, F, state0, saved, params, *ctx.config)
        shape = state0[0].shape
        g_state = [g.to(s.dtype).view(shape) for g, s in zip(g_rest[:n_state], state0)]
        g_params = [ops.per_neuron_grad(g, p, shape) for g, p in zip(g_rest[n_state:], params)]
        return gx.view(x.shape) if ctx.needs_input_grad[0] else None, g_state, g_params, *(None,) * (ctx.n_inputs - 3)

    return grad


def register(forward, backward, backend: str) -> None:
    """Fake implementations, autograd and FLOP formulas for a provider's two generated-kernel operators."""
    forward.register_fake(_fake_forward)
    backward.register_fake(_fake_backward)
    forward.register_autograd(_grad_through(backward), setup_context=_setup)
    ops.no_double_backward(backward, backend)
    ops.count_flops(forward, ops.FORWARD_FLOPS_PER_ELEMENT_STEP)
    ops.count_flops(backward, ops.BACKWARD_FLOPS_PER_ELEMENT_STEP)


def prepare(profile) -> None:
    """Trace ``profile``'s step now (``kernels.traceable``), so that a first call under ``torch.compile`` finds it
    traced: Dynamo cannot trace the tracer (a graph break per neuron), and the operators' fake implementations
    look the step up by key."""
    kernels.traceable(profile)


def run(forward, profile, p, x, refractory_steps, state, *checks):
    """A provider's ``run`` through its generated-kernel ``forward`` operator (``p``: prepared parameters;
    ``checks``: the arguments only some providers' operators take, the numba one's ``check_finite``)."""
    s, countdown = initial_state(profile, p, x, state)
    step = kernels.step_of(profile, kernels.Operands.of(x, s, p))
    surrogate, shape = profile.surrogate, x.shape[1:]
    S, M, _, countdown, *rest = forward(
        x, [s[name].expand(shape) for name in step.state], [p[name] for name in step.params], countdown,
        refractory_steps, step.key, surrogate.kind, list(surrogate.kernel_args), *checks,
    )  # fmt: skip
    final = {name: value.view(shape) for name, value in zip(step.state, rest)}
    return S.view(x.shape), M.view(x.shape), {**final, "refractory": countdown.view(shape)}
