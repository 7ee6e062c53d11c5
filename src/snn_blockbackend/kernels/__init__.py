"""Kernels generated from the neuron profiles: one description (the profile's per-step methods, traced by
``trace``), every target (``emit_numba``, ``emit_triton``), compiled modules cached on disk (``cache``).

``step_of(profile, operands)`` traces a profile once per configuration and operand dtypes (``Operands``, or
one dtype for all); operators receive the step's ``key`` (a string) and find the step again with
``registered(key)``.
"""

from __future__ import annotations

import torch

from .trace import Operands, Step, TraceError, dtype_name, trace

_STEPS: dict[str, Step] = {}
_BY_PROFILE: dict[tuple, Step] = {}


def _operands(operands) -> Operands:
    return operands if isinstance(operands, Operands) else Operands(dtype_name(operands))


def step_of(profile, operands: Operands | torch.dtype = torch.float32) -> Step:
    """The traced step of ``profile`` for ``operands`` (an ``Operands``, or a dtype of every operand; cached per
    profile class, configuration and operands)."""
    operands = _operands(operands)
    ident = (type(profile), profile.describe(), operands)
    step = _BY_PROFILE.get(ident)
    if step is None:
        step = trace(profile, operands)
        _BY_PROFILE[ident] = step
        _STEPS[step.key] = step
    return step


def traceable(profile, operands: Operands | torch.dtype | None = None) -> str | None:
    """Why ``profile`` cannot be generated into kernels (for ``operands``; by default float32 and float64), or
    None when it can."""
    try:
        for each in (torch.float32, torch.float64) if operands is None else (operands,):
            step_of(profile, each)
    except TraceError as error:
        return f"{profile.describe()} is not expressible as a generated kernel: {error}"
    return None


def registered(key: str) -> Step:
    try:
        return _STEPS[key]
    except KeyError:
        raise RuntimeError(
            f"no traced neuron step with key {key!r} in this process (a kernel operator is called with the key "
            "of a profile traced by a provider; call the layer once eagerly first)"
        ) from None


def module_name(target: str, step: Step, surrogate_kind: str, reads: str = "cpu") -> str:
    """The cache name of a generated module (``reads``: whose kernels' operand reads it reproduces, see
    ``codegen.Dialect.reads``)."""
    return f"{target}_{step.key}_{surrogate_kind}" + ("" if reads == "cpu" else f"_{reads}")


__all__ = ["Operands", "Step", "TraceError", "module_name", "registered", "step_of", "traceable"]
