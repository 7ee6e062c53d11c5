"""Kernels generated from the neuron profiles: one description (the profile's per-step methods, traced by
``trace``), every target (``emit_numba``, ``emit_triton``), compiled modules cached on disk (``cache``).

``step_of(profile, dtype)`` traces a profile once per configuration and dtype; operators receive the step's ``key`` (a string)
and find the step again with ``registered(key)``.
"""

from __future__ import annotations

import torch

from .trace import Step, TraceError, trace

_STEPS: dict[str, Step] = {}
_BY_PROFILE: dict[tuple, Step] = {}


def step_of(profile, dtype=torch.float32) -> Step:
    """The traced step of ``profile`` for ``dtype`` storage (cached per profile class, configuration and dtype)."""
    ident = (type(profile), profile.describe(), dtype)
    step = _BY_PROFILE.get(ident)
    if step is None:
        step = trace(profile, dtype)
        _BY_PROFILE[ident] = step
        _STEPS[step.key] = step
    return step


def traceable(profile) -> str | None:
    """Why ``profile`` cannot be generated into kernels, or None when it can."""
    try:
        for dtype in (torch.float32, torch.float64):
            step_of(profile, dtype)
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


def module_name(target: str, step: Step, dtype, surrogate_kind: str) -> str:
    return f"{target}_{step.key}_{str(dtype).replace('torch.', '')}_{surrogate_kind}"


__all__ = ["Step", "TraceError", "module_name", "registered", "step_of", "traceable"]
