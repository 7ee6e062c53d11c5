"""The engine's kernels as PyTorch operators (``torch.library``), namespace ``snn_blockbackend``.

Each provider entry that does real work (a numba kernel family, a Triton kernel family, the torch provider's LIF
fast path) is one forward operator and one backward operator, ``torch.ops.snn_blockbackend.<name>``, with a fake
(meta) implementation giving output shapes and dtypes from the inputs alone, an autograd formula calling the
backward operator, and a FLOP formula for ``torch.utils.flop_counter.FlopCounterMode``. Dispatch, autograd, fake
tensors, the meta device, ``torch.compile`` and ``torch.export`` therefore see one operator per neuron-layer call.

Provider choice stays in Python before the operator call (the operator is the leaf). Non-tensor configuration
(profile flags, the surrogate's kind and arguments) travels in the schema as ints, floats, bools and strings.

Second-order gradients: the backward operators have no derivative of their own; differentiating one (a
backward run with ``create_graph=True`` followed by another backward through its result) raises a
``NotImplementedError`` naming the backend. The reference provider and the torch provider's generic path are
plain autograd and support it.

This module imports nothing of the package, so every provider can import it.
"""

from __future__ import annotations

import math
from typing import Callable

import torch

NAMESPACE = "snn_blockbackend"

# The flop counts registered for the operators: a few floating-point operations per element and time step
# (charge: multiply and add; spike test; reset and refractory bookkeeping), and about twice that backward.
FORWARD_FLOPS_PER_ELEMENT_STEP = 4
BACKWARD_FLOPS_PER_ELEMENT_STEP = 8


def has_data(*tensors) -> bool:
    """Whether the values of ``tensors`` can be read (``.item()``, ``bool(...)``).

    False while ``torch.compile`` / ``torch.export`` trace (``torch.compiler.is_compiling()``) and for fake or
    meta tensors. Checks that read values -- the input's finiteness (``check_finite``), parameter ranges (beta in
    (0, 1], thresholds > 0), the refractory countdown's range -- run only when this is True: under tracing and on
    the meta device they are skipped, and the traced graph carries no data-dependent branch.
    """
    if torch.compiler.is_compiling():
        return False
    for t in tensors:
        if isinstance(t, torch.Tensor) and (t.is_meta or _is_fake(t)):
            return False
    return True


def _is_fake(t: torch.Tensor) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(t, FakeTensor) or torch._C._functorch.is_functorch_wrapped_tensor(t)


NONFINITE_INPUT = "input contains NaN or Inf (pass check_finite=False to skip this check)"


def custom_op(name: str) -> Callable:
    """``torch.library.custom_op`` in our namespace, for an operator that mutates none of its inputs."""
    return torch.library.custom_op(f"{NAMESPACE}::{name}", mutates_args=())


def count_flops(op, per_element_step: int) -> None:
    """Register a FLOP formula for ``op``: ``per_element_step`` flops per element of its first argument
    ([T, ...] for the forward operators; the incoming gradient's shape for the backward ones)."""
    from torch.utils.flop_counter import register_flop_formula

    def flops(first_shape, *args, out_shape=None, **kwargs) -> int:
        return per_element_step * math.prod(first_shape)

    register_flop_formula(op._opoverload.overloadpacket)(flops)


def no_double_backward(op, backend: str) -> None:
    """Give the backward operator ``op`` an autograd formula that refuses clearly (second-order gradients)."""

    def backward(ctx, *grads):
        raise NotImplementedError(
            f"double backward (a gradient of a gradient, create_graph=True) is not supported by backend "
            f"{backend!r}; use backend='reference' (or the torch provider's generic path) for higher-order gradients"
        )

    torch.library.register_autograd(op, backward)


def per_neuron_grad(values: torch.Tensor, param: torch.Tensor | None, shape) -> torch.Tensor | None:
    """A kernel's per-neuron gradient (float64, [N]) as the gradient of ``param``, which broadcasts to ``shape``."""
    if param is None:
        return None
    return values.to(param.dtype).view(shape).sum_to_size(param.shape)
