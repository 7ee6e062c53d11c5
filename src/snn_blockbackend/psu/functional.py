"""Parallel spiking units as pure functions: validate, pick a provider, run.

Units (Li et al., arXiv 2402.00449, re-derived from the released code; see docs/psu.md):

    PSU : H = A X;  V = H + theta R sigmoid(H)                 (fixed A, R; R scaled by theta)
    IPSU: V = (W o M) X + b + R X                               (learned causal W, bias b; R not scaled)
    RPSU: V = A X + R sigmoid((W o M) X + b)
    PPSU: P = (W o M) X + b;  V = P + R sigmoid(P)
    S = Heaviside(V - theta) (strict >), backward through a surrogate (default: ATan with learnable slope)

with M = tril(ones(T, T)) (diagonal included) and, for a per-step ``gain`` and ``decay``,
A[t,s] = gain decay^(t-s) (s <= t), R[t,s] = -decay^(t-s) (s < t). Two leaks:

* ``leak="released"`` (default): gain = decay = 1/tau, the released ``generate_matrix``. It equals a LIF
  ``v <- (1-1/tau) v + x/tau`` only at tau = 2.
* ``leak="lif"``: gain = 1/tau, decay = 1 - 1/tau, i.e. A[t,s] = (1/tau)(1-1/tau)^(t-s): the membrane of that
  LIF for every tau > 1. Identical to "released" at tau = 2.

Backend precedence (the same as ``block_neuron``): the per-call ``backend`` > the process setting of
``snn_blockbackend.set_backend`` > ``$SNN_BLOCKBACKEND_BACKEND`` > "auto" (highest-priority provider). A process
or environment setting that names a provider without a PSU implementation (e.g. "numba") is a preference for
the neuron engine and falls back to "auto" here; a per-call name that is not a PSU provider is an error.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import torch

from .. import functional as _engine
from .. import plugins
from ..providers.psu_reference import learned_step as _learned_step_kernel
from ..providers.psu_reference import psu_step as _psu_step_kernel
from ..providers.psu_torch import leak_matrices as _leak_matrices
from .surrogate import atan_spike

UNITS = ("psu", "ipsu", "rpsu", "ppsu")
LEARNED_UNITS = ("ipsu", "rpsu", "ppsu")
LEAKS = ("released", "lif")
DEFAULT_TAU = 2.0
DEFAULT_THRESHOLD = 0.5
DEFAULT_ALPHA = 2.0
SpikeFn = Callable[[torch.Tensor], torch.Tensor]


class PSUState(NamedTuple):
    """Streaming state of a PSU neuron: ``h`` = H[t] (reset-free membrane), ``k`` = reset accumulator
    sum_{s<=t} decay^(t-s) sigmoid(H[s]). Zeros are the start of a sequence."""

    h: torch.Tensor
    k: torch.Tensor


class LearnedState(NamedTuple):
    """Streaming state of IPSU / RPSU / PPSU: the inputs so far (one tensor per step, at most T), the fixed-leak
    membrane ``h`` (RPSU) and the reset accumulator ``k``."""

    history: tuple
    h: torch.Tensor
    k: torch.Tensor


class PSUResult(NamedTuple):
    spikes: torch.Tensor  # same shape and dtype as the input
    membrane: torch.Tensor  # V (pre-threshold membrane)
    state: PSUState | None  # PSU only: the state after the last step (pass it on to continue the sequence)


# ---------------------------------------------------------------------------------------------
# leak
# ---------------------------------------------------------------------------------------------
def leak_coefficients(tau, leak: str = "released") -> tuple[float, float]:
    """``(gain, decay)`` per step for ``tau`` under ``leak`` ("released" or "lif")."""
    if leak not in LEAKS:
        raise ValueError(f"leak must be one of {LEAKS}, not {leak!r}")
    if isinstance(tau, torch.Tensor) and tau.dim() == 0 and tau.is_floating_point():
        tau = float(tau)
    if isinstance(tau, bool) or not isinstance(tau, (int, float)):
        raise TypeError(f"tau must be a number, not {type(tau).__name__}")
    tau = float(tau)
    if not math.isfinite(tau):
        raise ValueError(f"tau must be finite, got {tau}")
    if leak == "released":
        if tau <= 0:
            raise ValueError(f"tau must be > 0, got {tau}")
        return 1.0 / tau, 1.0 / tau
    if tau <= 1:
        raise ValueError(
            f"leak='lif' needs tau > 1 (its per-step decay 1 - 1/tau must lie in (0, 1)), got tau={tau}"
        )
    return 1.0 / tau, 1.0 - 1.0 / tau


def leak_matrices(T: int, tau=DEFAULT_TAU, leak: str = "released", dtype=torch.float32, device=None):
    """The fixed leak and reset matrices ``(A, R)`` of shape [T, T]."""
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"T must be a positive int, got {T!r}")
    gain, decay = leak_coefficients(tau, leak)
    return _leak_matrices(T, gain, decay, dtype=dtype, device=device)


# ---------------------------------------------------------------------------------------------
# providers
# ---------------------------------------------------------------------------------------------
def psu_providers() -> dict:
    found = {}
    for group in plugins.plugin_manager().hook.snn_blockbackend_psu_providers():
        for provider in group:
            found[provider.name] = provider
    return found


def select_psu_provider(backend: str, kind: str, device: torch.device):
    if not isinstance(backend, str):
        raise TypeError(f"backend must be a string, not {type(backend).__name__}")
    available = psu_providers()
    if backend != "auto":
        if backend not in available:
            raise ValueError(f"unknown PSU backend {backend!r}; available PSU providers: {sorted(available)}")
        provider = available[backend]
        reason = provider.supports(kind, device)
        if reason is not None:
            raise ValueError(f"backend {backend!r} cannot run {kind}: {reason}")
        return provider
    preferred = _engine.get_backend()
    if preferred in available and available[preferred].supports(kind, device) is None:
        return available[preferred]
    reasons = []
    for provider in sorted(available.values(), key=lambda prov: -prov.priority):
        reason = provider.supports(kind, device)
        if reason is None:
            return provider
        reasons.append(f"{provider.name}: {reason}")
    raise ValueError(f"no PSU provider supports {kind}: " + "; ".join(reasons))


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
def _scalar(name, value, like: torch.Tensor) -> torch.Tensor:
    """A float or 0-dim floating tensor on ``like``'s device and dtype (tensors keep their autograd graph)."""
    if isinstance(value, torch.Tensor):
        if value.dim() != 0 or not value.is_floating_point():
            raise TypeError(f"{name} must be a float or a 0-dim floating tensor, got {value.dtype} {tuple(value.shape)}")
        if value.device != like.device:
            raise ValueError(f"{name} is on {value.device} but the input is on {like.device}")
        tensor = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        tensor = torch.tensor(float(value), dtype=like.dtype, device=like.device)
    else:
        raise TypeError(f"{name} must be a float or a 0-dim tensor, not {type(value).__name__}")
    if not bool(torch.isfinite(tensor.detach())):
        raise ValueError(f"{name} must be finite, got {tensor.item()}")
    return tensor


def _spike_fn(alpha, surrogate, like) -> SpikeFn:
    if surrogate is not None:
        if alpha is not None:
            raise ValueError("pass either alpha (slope of the built-in ATan surrogate) or surrogate, not both")
        if not callable(surrogate):
            raise TypeError(f"surrogate must be callable (margin -> spikes), not {type(surrogate).__name__}")
        return surrogate
    slope = _scalar("alpha", DEFAULT_ALPHA if alpha is None else alpha, like)
    return lambda margin: atan_spike(margin, slope)


def _check_learned(kind, weight, bias, x, check_finite=True):
    T = x.shape[0]
    for name, value, shape in (("weight", weight, (T, T)), ("bias", bias, (T,))):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"{kind.upper()} needs a {name} tensor, not {type(value).__name__}")
        if not value.is_floating_point():
            raise TypeError(f"{name} must be floating point, got {value.dtype}")
        if value.dim() != len(shape) or any(n != value.shape[0] for n in value.shape):
            expected = "(T, T)" if name == "weight" else "(T,)"
            raise ValueError(f"{name} must have shape {expected}, got {tuple(value.shape)}")
        if value.shape != shape:
            raise ValueError(
                f"this {kind.upper()} was built for T={value.shape[0]} time steps, but the input sequence has "
                f"length {T} (input shape {tuple(x.shape)}); {kind.upper()} learns one T x T matrix and only "
                f"runs sequences of exactly that length"
            )
        if value.device != x.device:
            raise ValueError(f"{name} is on {value.device} but the input is on {x.device}")
        if value.dtype != x.dtype:
            raise TypeError(
                f"{name} has dtype {value.dtype} but the input has {x.dtype}; use the same dtype "
                "(for a module: module.to(dtype))"
            )
        if check_finite and not _engine.all_finite(value):
            raise ValueError(f"{kind.upper()} {name} contains NaN or Inf (pass check_finite=False to skip this check)")


def _check_state(state, x, check_finite=True) -> tuple[torch.Tensor, torch.Tensor] | None:
    if state is None:
        return None
    if not (isinstance(state, tuple) and len(state) == 2):
        raise TypeError("state must be a PSUState(h, k) (or a pair of tensors)")
    out = []
    for name, value in zip(("h", "k"), state):
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state {name!r} must be a tensor, not {type(value).__name__}")
        if value.shape != x.shape[1:]:
            raise ValueError(f"state {name!r} has shape {tuple(value.shape)}, expected {tuple(x.shape[1:])}")
        if value.dtype != x.dtype or value.device != x.device:
            raise TypeError(f"state {name!r} must have the input's dtype and device ({x.dtype}, {x.device})")
        if check_finite and not _engine.all_finite(value):
            raise ValueError(f"state {name!r} contains NaN or Inf (pass check_finite=False to skip this check)")
        out.append(value.reshape(-1))
    return tuple(out)


# ---------------------------------------------------------------------------------------------
# entry points
# ---------------------------------------------------------------------------------------------
def parallel_unit(
    kind: str,
    x: torch.Tensor,
    weight: torch.Tensor | None = None,
    bias: torch.Tensor | None = None,
    *,
    tau=DEFAULT_TAU,
    threshold=DEFAULT_THRESHOLD,
    leak: str = "released",
    alpha=None,
    surrogate: SpikeFn | None = None,
    state: PSUState | None = None,
    backend: str = "auto",
    check_finite: bool = True,
) -> PSUResult:
    """Run unit ``kind`` ("psu", "ipsu", "rpsu", "ppsu") over time-first input current ``x`` [T, ...].

    ``weight`` [T, T] and ``bias`` [T] are the learned parameters of IPSU/RPSU/PPSU (entries above the
    diagonal are ignored: the causal mask); ``alpha`` the slope of the ATan surrogate (float or 0-dim
    tensor, default 2) or ``surrogate`` any callable margin -> spikes; ``state`` (PSU only) continues a
    sequence from a previous call's ``result.state``.
    """
    if kind not in UNITS:
        raise ValueError(f"unit must be one of {UNITS}, not {kind!r}")
    _engine.check_input(x, check_finite)
    if x.shape[0] == 0:
        raise ValueError(f"input has no time steps (T = 0, input shape {tuple(x.shape)}); {kind.upper()} needs T >= 1")
    gain, decay = leak_coefficients(tau, leak)
    theta = _scalar("threshold", threshold, x)
    spike_fn = _spike_fn(alpha, surrogate, x)
    if kind in LEARNED_UNITS:
        _check_learned(kind, weight, bias, x, check_finite)
        if state is not None:
            raise ValueError(f"{kind.upper()} has no streaming state (it runs whole sequences of length T)")
    elif weight is not None or bias is not None:
        raise ValueError("PSU has no learned weight or bias (its matrices are fixed)")
    flat_state = _check_state(state, x, check_finite)
    provider = select_psu_provider(backend, kind, x.device)
    flat = x.reshape(x.shape[0], -1)
    spikes, membrane, final = provider.run(
        kind, flat, gain=gain, decay=decay, threshold=theta, weight=weight, bias=bias, spike_fn=spike_fn,
        state=flat_state,
    )  # fmt: skip
    if final is not None:
        final = PSUState(final[0].reshape(x.shape[1:]), final[1].reshape(x.shape[1:]))
    return PSUResult(spikes.reshape(x.shape), membrane.reshape(x.shape), final)


def psu(x, *, tau=DEFAULT_TAU, threshold=DEFAULT_THRESHOLD, leak="released", alpha=None, surrogate=None,
        state=None, backend="auto", check_finite=True) -> PSUResult:  # fmt: skip
    """Parallel Spiking Unit over ``x`` [T, ...]; see ``parallel_unit``."""
    return parallel_unit("psu", x, tau=tau, threshold=threshold, leak=leak, alpha=alpha, surrogate=surrogate,
                         state=state, backend=backend, check_finite=check_finite)  # fmt: skip


def ipsu(x, weight, bias, **options) -> PSUResult:
    """Input-aware PSU: V = (W o M) X + b + R X."""
    return parallel_unit("ipsu", x, weight, bias, **options)


def rpsu(x, weight, bias, **options) -> PSUResult:
    """Reset-aware PSU: V = A X + R sigmoid((W o M) X + b)."""
    return parallel_unit("rpsu", x, weight, bias, **options)


def ppsu(x, weight, bias, **options) -> PSUResult:
    """The released code's PPSU: P = (W o M) X + b; V = P + R sigmoid(P)."""
    return parallel_unit("ppsu", x, weight, bias, **options)


def initial_state(like: torch.Tensor) -> PSUState:
    """A fresh PSU state (zeros) for one time step shaped like ``like`` (the neuron shape)."""
    return PSUState(torch.zeros_like(like), torch.zeros_like(like))


def psu_step(x_t: torch.Tensor, state: PSUState | None = None, *, tau=DEFAULT_TAU, threshold=DEFAULT_THRESHOLD,
             leak="released", alpha=None, surrogate=None, check_finite=True) -> PSUResult:  # fmt: skip
    """One step of PSU's exact recurrence (streaming inference); ``x_t`` is one time step [...].

    Running ``psu_step`` over x[0], x[1], ... from ``state=None`` gives the spikes of ``psu(x)``.
    """
    if not isinstance(x_t, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, not {type(x_t).__name__}")
    _engine.check_input(x_t.unsqueeze(0).unsqueeze(-1), check_finite)
    gain, decay = leak_coefficients(tau, leak)
    theta = _scalar("threshold", threshold, x_t)
    spike_fn = _spike_fn(alpha, surrogate, x_t)
    if state is None:
        state = initial_state(x_t)
    else:
        _check_state(state, x_t.unsqueeze(0), check_finite)
    spike, membrane, (h, k) = _psu_step_kernel(
        x_t, tuple(state), gain=gain, decay=decay, threshold=theta, spike_fn=spike_fn
    )
    return PSUResult(spike, membrane, PSUState(h, k))


def unit_step(kind: str, x_t: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor,
              state: LearnedState | None = None, *, tau=DEFAULT_TAU, threshold=DEFAULT_THRESHOLD, leak="released",
              alpha=None, surrogate=None, check_finite=True) -> PSUResult:  # fmt: skip
    """One step of IPSU / RPSU / PPSU ("ipsu", "rpsu", "ppsu") for streaming inference, from their input history
    (O(t) memory and work per step; at most T steps). Running it over x[0], x[1], ... from ``state=None``
    gives the spikes of ``parallel_unit(kind, x, weight, bias)``."""
    if kind not in LEARNED_UNITS:
        raise ValueError(f"unit must be one of {LEARNED_UNITS} (PSU streams with psu_step), not {kind!r}")
    if not isinstance(x_t, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, not {type(x_t).__name__}")
    _engine.check_input(x_t.unsqueeze(0).unsqueeze(-1), check_finite)
    gain, decay = leak_coefficients(tau, leak)
    theta = _scalar("threshold", threshold, x_t)
    spike_fn = _spike_fn(alpha, surrogate, x_t)
    T = weight.shape[0] if isinstance(weight, torch.Tensor) and weight.dim() > 0 else None
    if state is None:
        state = LearnedState((), torch.zeros_like(x_t), torch.zeros_like(x_t))
    elif not isinstance(state, LearnedState):
        raise TypeError("state must be the LearnedState returned by the previous step")
    if T is not None and len(state.history) >= T:
        raise ValueError(
            f"this {kind.upper()} was built for T={T} time steps and has already run {len(state.history)}; "
            "start a new sequence with state=None"
        )
    # validate W and b against a sequence of length T (their own length)
    _check_learned(kind, weight, bias, x_t.unsqueeze(0).expand(T or 1, *x_t.shape), check_finite)
    spike, membrane, (history, h, k) = _learned_step_kernel(
        kind, x_t, (state.history, state.h, state.k), gain=gain, decay=decay, threshold=theta,
        weight=weight, bias=bias, spike_fn=spike_fn,
    )  # fmt: skip
    return PSUResult(spike, membrane, LearnedState(history, h, k))
