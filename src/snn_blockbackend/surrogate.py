"""Surrogate spike functions: a Heaviside forward with a smooth stand-in derivative.

Each surrogate reproduces the backward formula of the framework it is named after, so that gradients
through our neurons match the native ones to float tolerance. The forward comparison (``>`` or ``>=``)
belongs to the neuron profile, not to the surrogate, and is passed in as ``strict``.
"""

from __future__ import annotations

import functools
import inspect
import math
from dataclasses import dataclass, field, replace
from typing import Callable

import torch

DerivativeFn = Callable[[torch.Tensor], torch.Tensor]


class _HeavisideWithSurrogate(torch.autograd.Function):
    @staticmethod
    def forward(ctx, margin, derivative, strict, backward=None):
        ctx.save_for_backward(margin)
        ctx.derivative = derivative
        ctx.backward_fn = backward
        spike = margin > 0 if strict else margin >= 0
        return spike.to(margin.dtype)

    @staticmethod
    def backward(ctx, grad_spike):
        (margin,) = ctx.saved_tensors
        if ctx.backward_fn is not None:
            return ctx.backward_fn(grad_spike, margin), None, None, None
        if ctx.derivative is None:
            return None, None, None, None
        return grad_spike * ctx.derivative(margin), None, None, None


# the surrogate kinds the compiled kernels evaluate themselves
KERNEL_CODES = {"heaviside": 0, "atan": 1, "fast_sigmoid": 2, "sigmoid": 3, "multi_gaussian": 4, "boxcar": 5}


def from_kernel_args(kind: str, args) -> "Surrogate":
    """The named surrogate of ``kind`` (a ``KERNEL_CODES`` key) with ``kernel_args`` (padded) ``args``: how an
    operator's backward, which receives only ints, floats and strings, gets the surrogate back. (SuperSpike has
    kind "fast_sigmoid": its derivative is the same formula.)"""
    if kind == "multi_gaussian":
        return multi_gaussian(*args[:4])
    if kind == "heaviside":
        return heaviside()
    return _BY_NAME[kind](args[0])


def kernel_refusal(surrogate) -> str | None:
    """Why a compiled kernel (numba, Triton) cannot evaluate ``surrogate``, or None when it can."""
    if isinstance(surrogate, Surrogate) and surrogate.kernel_code is not None:
        return None
    return "a custom surrogate callable can only run in the torch provider"


@dataclass(frozen=True)
class Surrogate:
    """A named surrogate: ``derivative(margin)`` is dS/dmargin used in backward (None: no gradient).

    ``backward(grad_spike, margin)``, when given, computes the margin gradient itself (in the native
    framework's operation order, e.g. a division instead of ``grad * derivative``); ``derivative`` still
    describes the same function for code that needs it on its own.
    """

    name: str
    derivative: DerivativeFn | None
    backward: Callable[[torch.Tensor, torch.Tensor], torch.Tensor] | None = None
    # a compiled kernel recognises the surrogate by kind and numeric args (``kernel_code``, ``kernel_args``)
    kind: str = ""
    args: tuple = ()
    # (factory, its arguments) for surrogates made by this module's factories: their derivatives are closures,
    # which pickle cannot store, so a pickled surrogate is rebuilt by calling the factory again
    rebuild: tuple | None = field(default=None, compare=False, repr=False)

    def __reduce__(self):
        if self.rebuild is not None:
            factory, args = self.rebuild
            return factory, args
        return super().__reduce__()

    @property
    def kernel_code(self) -> int | None:
        """The kind's code in the compiled kernels (numba, Triton), or None where they have none."""
        return KERNEL_CODES.get(self.kind)

    @property
    def kernel_args(self) -> tuple:
        """The numeric args as four floats (the kernels' fixed-size argument)."""
        return tuple(float(a) for a in self.args) + (0.0,) * (4 - len(self.args))

    def __call__(self, margin: torch.Tensor, strict: bool = True) -> torch.Tensor:
        if not isinstance(margin, torch.Tensor):  # a margin traced by the kernel generator (kernels.trace.Sym)
            return margin.heaviside(strict)
        return _HeavisideWithSurrogate.apply(margin, self.derivative, strict, self.backward)


def _picklable(factory):
    """Record on each surrogate ``factory`` makes how to make it again (see ``Surrogate.rebuild``)."""
    signature = inspect.signature(factory)

    @functools.wraps(factory)
    def make(*args, **kwargs):
        if torch.compiler.is_compiling():  # Dynamo cannot trace the recording; a traced call is never pickled
            return factory(*args, **kwargs)
        bound = signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return replace(factory(*args, **kwargs), rebuild=(make, bound.args))

    return make


@_picklable
def atan(alpha: float = 2.0) -> Surrogate:
    """snnTorch ``surrogate.atan`` (its default): alpha/2 / (1 + (pi/2*alpha*x)^2)."""
    return Surrogate(
        f"atan({alpha})", lambda x: alpha / 2 / (1 + (math.pi / 2 * alpha * x) ** 2), kind="atan", args=(alpha,)
    )


@_picklable
def fast_sigmoid(slope: float = 25.0) -> Surrogate:
    """snnTorch ``surrogate.fast_sigmoid``: 1 / (slope*|x| + 1)^2."""
    return Surrogate(
        f"fast_sigmoid({slope})", lambda x: 1.0 / (slope * x.abs() + 1.0) ** 2, kind="fast_sigmoid", args=(slope,)
    )


@_picklable
def sigmoid(alpha: float = 4.0) -> Surrogate:
    """SpikingJelly ``surrogate.Sigmoid`` (its default): alpha*sig(alpha x)*(1-sig(alpha x))."""

    def derivative(x):
        s = torch.sigmoid(alpha * x)
        return (1.0 - s) * s * alpha

    return Surrogate(f"sigmoid({alpha})", derivative, kind="sigmoid", args=(alpha,))


@_picklable
def superspike(alpha: float = 100.0) -> Surrogate:
    """Norse SuperSpike: 1 / (alpha*|x| + 1)^2.

    Backward as Norse computes it, ``grad / (alpha*|x| + 1.0).pow(2)`` (Norse 1.0.0 with its default
    alpha=100). Norse 1.1.0's ``SuperSpike.backward`` ignores alpha: ``grad / (|x| + 1.0).pow(2)``, which is
    ``superspike(1.0)`` bitwise (``1.0*|x|`` is exact); the Norse profiles default to that for version 1.1.
    """

    def backward(grad, x):
        return grad / (alpha * x.abs() + 1.0).pow(2)

    return Surrogate(
        f"superspike({alpha})",
        lambda x: 1.0 / (alpha * x.abs() + 1.0) ** 2,
        backward,
        kind="fast_sigmoid",
        args=(alpha,),
    )


@_picklable
def multi_gaussian(sigma: float = 0.5, h: float = 0.15, s: float = 6.0, gamma: float = 0.5) -> Surrogate:
    """The multi-Gaussian surrogate of Yin et al. (2021) used by all Blocks paper experiments."""

    def normal(x, mu, sd):
        return torch.exp(-((x - mu) ** 2) / (2 * sd**2)) / (sd * math.sqrt(2 * math.pi))

    def derivative(x):
        return gamma * (
            (1 + h) * normal(x, 0.0, sigma) - h * normal(x, sigma, s * sigma) - h * normal(x, -sigma, s * sigma)
        )

    return Surrogate("multi_gaussian", derivative, kind="multi_gaussian", args=(sigma, h, s, gamma))


@_picklable
def boxcar(width: float = 1.0) -> Surrogate:
    """Gradient 1 on (-width/2, width/2], 0 elsewhere."""
    half = width / 2
    return Surrogate(
        f"boxcar({width})", lambda x: ((x > -half) & (x <= half)).to(x.dtype), kind="boxcar", args=(width,)
    )


@_picklable
def heaviside() -> Surrogate:
    """No surrogate: spikes carry no gradient."""
    return Surrogate("heaviside", None, kind="heaviside")


_BY_NAME = {
    "atan": atan,
    "fast_sigmoid": fast_sigmoid,
    "sigmoid": sigmoid,
    "superspike": superspike,
    "multi_gaussian": multi_gaussian,
    "boxcar": boxcar,
    "heaviside": heaviside,
}


def get(spec: str | Surrogate | Callable | None, default: Callable[[], Surrogate]) -> Callable:
    """Resolve a surrogate given by name, object, plain callable ``margin -> spike`` or None (``default()``)."""
    if spec is None:
        return default()
    if isinstance(spec, str):
        if spec not in _BY_NAME:
            raise ValueError(f"unknown surrogate {spec!r}; choose one of {sorted(_BY_NAME)}")
        return _BY_NAME[spec]()
    if callable(spec):
        return spec
    raise TypeError(f"surrogate must be a name, a Surrogate or a callable, not {type(spec).__name__}")
