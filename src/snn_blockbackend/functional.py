"""Pure functions over tensors: validate the request, pick a provider, run the neuron engine."""

from __future__ import annotations

import contextlib
import contextvars
import os
from typing import NamedTuple

import torch

from . import kernels, plugins
from .ops import NONFINITE_INPUT, has_data
from .profiles import NeuronProfile, make_profile
from .providers import install_hint

ENV_BACKEND = "SNN_BLOCKBACKEND_BACKEND"
MAX_REFRACTORY_STEPS = 2**63 - 1  # the refractory countdown is an int64 tensor
GRAD_MODES = ("exact", "blocks")
_process_backend: str | None = None
# use_backend's override: per thread and per asyncio task (a new thread starts without one), so two threads
# nesting use_backend never see, or restore, each other's choice
_context_backend: contextvars.ContextVar[str | None] = contextvars.ContextVar("snn_blockbackend_backend", default=None)
_provider_cache: dict | None = None


class BlockResult(NamedTuple):
    spikes: torch.Tensor  # [T, ...], same dtype as the input
    membrane: torch.Tensor  # [T, ...], the profile's reported membrane after each step
    state: dict  # final state: the profile's variables plus "refractory" (steps still owed)


# ---------------------------------------------------------------------------------------------
# backend selection
# ---------------------------------------------------------------------------------------------
def set_backend(name: str | None) -> None:
    """Process-wide default provider ("auto", a provider name, or None to clear)."""
    global _process_backend
    if name is not None and name != "auto":
        _known_provider(name)
    _process_backend = name


@torch.compiler.assume_constant_result
def _use_backend_choice() -> str | None:
    # Dynamo cannot trace ContextVar.get: under torch.compile the choice in force when the graph is traced is
    # taken as a constant of that graph (as the provider choice itself is)
    return _context_backend.get()


def get_backend() -> str:
    """The backend "auto" resolves to first: the innermost ``use_backend`` of this thread / task, else the
    process-wide setting (``set_backend``), else $SNN_BLOCKBACKEND_BACKEND, else "auto". Under
    ``torch.compile`` it is read when the graph is traced."""
    return _use_backend_choice() or _process_backend or os.environ.get(ENV_BACKEND) or "auto"


@contextlib.contextmanager
def use_backend(name: str):
    """Select the provider for the calls made inside the ``with`` block by this thread (or asyncio task) only.

    Context-local (``contextvars``): other threads keep their own choice, and nesting restores the outer one.
    ``set_backend`` is the process-wide default underneath.
    """
    if name is not None and name != "auto":
        _known_provider(name)
    token = _context_backend.set(name)
    try:
        yield
    finally:
        _context_backend.reset(token)


def _providers() -> dict:
    """The registered providers by name: read from the plugin manager on every eager call (a plugin may be added
    at run time); while ``torch.compile``/``torch.export`` trace, the last eager answer (pluggy's hook calls
    are not traceable; this module takes one when it is imported)."""
    global _provider_cache
    if not torch.compiler.is_compiling() or _provider_cache is None:
        _provider_cache = plugins.providers()
    return _provider_cache


def _known_provider(name: str):
    available = _providers()
    if name not in available:
        hint = install_hint(name)
        if hint is not None:
            raise ValueError(
                f"backend {name!r} is not installed (its package failed to import); install it with: {hint}; "
                f"available providers: {sorted(available)}"
            )
        raise ValueError(f"unknown backend {name!r}; available providers: {sorted(available)}")
    return available[name]


def _refusal(provider, profile, device, grad, operands):
    reason = provider.supports(profile, device, grad)
    if reason is None and operands is not None and hasattr(provider, "supports_operands"):
        reason = provider.supports_operands(profile, operands)
    return reason


def request_operands(profile: NeuronProfile, p: dict, x: torch.Tensor, state: dict | None) -> kernels.Operands | str:
    """The dtypes of a call's operands as the kernel generators trace them (``kernels.Operands``: input, state,
    prepared parameters, which of those are 0-dim), or why no generated kernel describes the call. With mixed
    dtypes the prepared parameters and the profile's initial state are made on the meta device (shapes and
    dtypes only)."""
    try:
        if all(t.dtype == x.dtype for t in p.values()) and (
            state is None or all(t.dtype == x.dtype for t in state.values() if t.is_floating_point())
        ) and (x.dtype in (torch.float32, torch.float64) or not torch.compiler.is_compiling()):
            return kernels.Operands(kernels.dtype_name(x.dtype))
        if torch.compiler.is_compiling():
            # the layers trace their float32/float64 steps when built; tracing another under Dynamo would break
            # the graph (fullgraph=True fails), so compiled half precision and mixed dtypes keep the torch provider
            return "under torch.compile the generated kernels take float32 or float64 operands of one dtype"
        prepared = profile.prepare({name: torch.empty(t.shape, dtype=t.dtype, device="meta") for name, t in p.items()})
        if state is None:
            state = profile.initial_state(prepared, torch.empty(x.shape[1:], dtype=x.dtype, device="meta"))
        return kernels.Operands.of(x, {name: t for name, t in state.items() if name != "refractory"}, prepared)
    except kernels.TraceError as error:
        return str(error)


def select_provider(backend: str, profile: NeuronProfile, device: torch.device, grad: str, operands=None):
    """Resolve ``backend`` (per call) > process-wide setting > $SNN_BLOCKBACKEND_BACKEND > auto.

    ``operands``: ``request_operands`` of the call (a provider with ``supports_operands`` may refuse some, e.g.
    half precision or mixed dtypes). The meta device selects as the CPU does: the chosen provider's operators
    have fake (meta) implementations that give the output shapes and dtypes.
    """
    if device.type == "meta":
        device = torch.device("cpu")
    if backend == "auto":
        backend = get_backend()
    if backend != "auto":
        provider = _known_provider(backend)
        reason = _refusal(provider, profile, device, grad, operands)
        if reason is not None:
            raise ValueError(f"backend {backend!r} cannot run this request: {reason}")
        return provider
    candidates = sorted(_providers().values(), key=lambda prov: -prov.priority)
    reasons = []
    for provider in candidates:
        reason = _refusal(provider, profile, device, grad, operands)
        if reason is None:
            return provider
        reasons.append(f"{provider.name}: {reason}")
    raise ValueError("no provider supports this request: " + "; ".join(reasons))


def prepare_kernels(profile: NeuronProfile) -> None:
    """Do now what each provider needs once per neuron configuration (the kernel generators trace the profile),
    so that a module compiled before any eager call runs in one graph. Modules call it when they are built or
    loaded; without it a first call under ``torch.compile`` still runs correctly, with a graph break."""
    for provider in _providers().values():
        prepare = getattr(provider, "prepare", None)
        if prepare is not None:
            prepare(profile)


# ---------------------------------------------------------------------------------------------
# validation
# ---------------------------------------------------------------------------------------------
def check_refractory_steps(refractory_steps) -> int:
    if isinstance(refractory_steps, bool) or not isinstance(refractory_steps, int):
        if isinstance(refractory_steps, torch.Tensor) and refractory_steps.dim() == 0 and not refractory_steps.is_floating_point():
            refractory_steps = int(refractory_steps)
        else:
            raise TypeError(f"refractory_steps must be a non-negative int, not {refractory_steps!r}")
    if refractory_steps < 0:
        raise ValueError(f"refractory_steps must be >= 0, got {refractory_steps}")
    if refractory_steps > MAX_REFRACTORY_STEPS:
        raise ValueError(
            f"refractory_steps={refractory_steps} does not fit the int64 refractory countdown (at most 2**63 - 1); "
            "any R >= T already means at most one spike per neuron in a sequence of T steps"
        )
    return refractory_steps


def check_input(x: torch.Tensor, check_finite: bool = True) -> None:
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"input must be a torch.Tensor, not {type(x).__name__}")
    if not x.is_floating_point():
        raise TypeError(f"input must be a floating-point tensor, got dtype {x.dtype}; convert it with x.float()")
    if x.dim() < 2:
        raise ValueError(
            f"input must be time-first with at least one neuron dimension, [T, ...]; got shape {tuple(x.shape)}"
        )
    if check_finite:
        check_input_finite(x)


def check_input_finite(x: torch.Tensor) -> None:
    if not all_finite(x):
        raise ValueError(NONFINITE_INPUT)


def all_finite(t: torch.Tensor) -> bool:
    """Whether ``t`` holds no NaN/Inf (the engine's and the PSU's value checks)."""
    # A sum is finite unless some element is NaN/Inf (or the sum overflows): one cheap pass, no temporary;
    # only a non-finite sum pays for the elementwise check. Skipped (True) under tracing and on meta tensors.
    if not has_data(t):
        return True
    t = t.detach()
    return bool(torch.isfinite(t.sum())) or bool(torch.isfinite(t).all())


def _broadcasts_to(shape, target) -> bool:
    """Whether a tensor of ``shape`` broadcasts to exactly ``target`` (plain Python: this runs on every call,
    once per parameter, and ``torch.broadcast_shapes`` costs ~0.3 ms)."""
    if len(shape) > len(target):
        return False
    return all(size in (1, full) for size, full in zip(reversed(shape), reversed(target)))


def python_float_dtype(input_dtype: torch.dtype) -> torch.dtype:
    """The dtype of the 0-dim tensor a Python-float parameter becomes: the input's, float32 for half precision.

    The frameworks store Python-float parameters as float32 tensors (``torch.as_tensor(0.001)``), and in
    half precision the difference shows where two parameters meet (Norse's ``dt * tau_mem_inv``: a float32
    product, where a float16 ``dt`` would be 0.0010004). Where a 0-dim parameter meets a half-precision
    tensor the result stays half precision, with PyTorch's rounding of that operation.
    """
    return torch.promote_types(input_dtype, torch.float32)


def _as_param(name, value, x, neuron_shape):
    if isinstance(value, torch.Tensor):
        if not value.is_floating_point():
            raise TypeError(f"parameter {name!r} must be floating point, got dtype {value.dtype}")
        if value.device != x.device:
            raise ValueError(f"parameter {name!r} is on {value.device} but the input is on {x.device}")
        if not _broadcasts_to(value.shape, neuron_shape):
            raise ValueError(
                f"parameter {name!r} of shape {tuple(value.shape)} does not broadcast to the neuron shape "
                f"{tuple(neuron_shape)} (input shape is [T, *neuron_shape])"
            )
        tensor = value
    elif isinstance(value, (int, float)) and not isinstance(value, bool):
        tensor = torch.tensor(float(value), dtype=python_float_dtype(x.dtype), device=x.device)
    else:
        raise TypeError(f"parameter {name!r} must be a float or a tensor, not {type(value).__name__}")
    if not all_finite(tensor):
        raise ValueError(f"parameter {name!r} contains NaN or Inf")
    return tensor


def check_params(profile: NeuronProfile, params: dict, x: torch.Tensor) -> dict:
    params = dict(params or {})
    unknown = set(params) - set(profile.param_defaults)
    if unknown:
        raise ValueError(
            f"unknown parameter(s) {sorted(unknown)} for profile {profile.name!r}; "
            f"it takes {sorted(profile.param_defaults)}"
        )
    out = {}
    neuron_shape = x.shape[1:]
    for name, default in profile.param_defaults.items():
        value = params.get(name, default)
        if value is None:
            raise ValueError(f"profile {profile.name!r} needs parameter {name!r}")
        out[name] = _as_param(name, value, x, neuron_shape)
    if not has_data(x, *out.values()):  # range checks read values: eager only
        return out
    for name in profile.unit_interval_params:
        t = out[name].detach()
        if not bool(((t > 0) & (t <= 1)).all()):
            raise ValueError(f"{name} must lie in (0, 1], got values in [{t.min().item()}, {t.max().item()}]")
    for name in profile.positive_params:
        t = out[name].detach()
        if not bool((t > 0).all()):
            raise ValueError(f"{name} must be > 0 for the block algorithm, got min {t.min().item()}")
    return out


def check_state(
    profile: NeuronProfile, state: dict | None, x: torch.Tensor, refractory_steps: int = 0, check_finite: bool = True
):
    if state is None:
        return None
    missing = set(profile.state_names) - set(state)
    if missing:
        raise ValueError(f"state is missing {sorted(missing)} for profile {profile.name!r}")
    for name, value in state.items():
        if not isinstance(value, torch.Tensor):
            raise TypeError(f"state {name!r} must be a tensor")
        if value.device != x.device:
            raise ValueError(f"state {name!r} is on {value.device} but the input is on {x.device}")
        if name != "refractory" and not value.is_floating_point():
            raise TypeError(f"state {name!r} must be floating point, got dtype {value.dtype}")
        if not _broadcasts_to(value.shape, x.shape[1:]):
            raise ValueError(
                f"state {name!r} has shape {tuple(value.shape)}, which does not broadcast to the neuron shape "
                f"{tuple(x.shape[1:])}"
            )
        if check_finite and name != "refractory" and not all_finite(value):
            raise ValueError(f"state {name!r} contains NaN or Inf (pass check_finite=False to skip this check)")
    countdown = state.get("refractory")
    if countdown is not None:
        if countdown.is_floating_point() or countdown.dtype == torch.bool:
            raise TypeError(f"state 'refractory' (steps still owed) must be an integer tensor, got {countdown.dtype}")
        if countdown.numel() and has_data(countdown) and not bool(((countdown >= 0) & (countdown <= refractory_steps)).all()):
            raise ValueError(
                f"state 'refractory' must lie in [0, refractory_steps={refractory_steps}], got values in "
                f"[{int(countdown.min())}, {int(countdown.max())}]"
            )
    return state


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------
def block_neuron(
    x: torch.Tensor,
    profile: NeuronProfile | str = "paper",
    params: dict | None = None,
    refractory_steps: int = 0,
    *,
    state: dict | None = None,
    grad: str = "exact",
    backend: str = "auto",
    check_finite: bool = True,
) -> BlockResult:
    """Run a spiking neuron layer over time-first input current ``x`` of shape [T, ...].

    ``profile``: a ``NeuronProfile`` or a profile name; ``params``: the profile's parameters (floats or
    tensors broadcastable to ``x.shape[1:]``); ``refractory_steps`` R >= 0 (R = 0: the plain neuron);
    ``grad``: "exact" (BPTT of the sequential reference) or "blocks" (the paper's approximate block
    gradient); ``backend``: "auto" or a provider name.

    Dtypes: any floating dtype, half precision (float16, bfloat16) included. Parameters and state may have
    other dtypes than the input; they are not cast, and the neuron's operations promote as PyTorch's do for
    the native neuron (a 0-dim float32 parameter keeps bfloat16 input in bfloat16, a per-neuron one promotes
    it to float32). A Python-float parameter is a 0-dim tensor of the input's dtype, float32 for half-precision
    input (``python_float_dtype``). A state may also be given in a shape that broadcasts to the neuron shape
    (Norse's 0-dim initial ``v``); with mixed dtypes it keeps that shape, which PyTorch's promotion depends on.
    The generated kernels (numba, Triton) compute such requests as PyTorch's CPU kernels compute them (each
    operation in its result dtype, half precision in float32 rounded after every operation).
    Value checks (``check_finite``, parameter ranges) run eagerly
    only: under ``torch.compile``/``torch.export`` tracing and on the meta device they are skipped.
    """
    if isinstance(profile, str):
        profile = make_profile(profile)
    if not isinstance(profile, NeuronProfile):
        raise TypeError(f"profile must be a NeuronProfile or a name, not {type(profile).__name__}")
    if grad not in GRAD_MODES:
        raise ValueError(f"grad must be one of {GRAD_MODES}, not {grad!r}")
    refractory_steps = check_refractory_steps(refractory_steps)
    check_input(x, check_finite=False)  # the finiteness check follows once the provider is known
    p = check_params(profile, params, x)
    state = check_state(profile, state, x, refractory_steps, check_finite)
    provider = select_provider(backend, profile, x.device, grad, request_operands(profile, p, x, state))
    # A provider that checks the input as its kernel reads it saves a pass over x (and, right before its kernel,
    # a parallel torch operator whose OpenMP workers keep spinning and take the kernel's cores for milliseconds).
    checks = {}
    if check_finite and getattr(provider, "checks_input_finite", False) and has_data(x):
        checks = {"check_finite": True}
    elif check_finite:
        check_input_finite(x)
    if state is not None:
        one_dtype = all(t.dtype == x.dtype for t in (*p.values(), *state.values()) if t.is_floating_point())
        state = _shaped_state(state, x.shape[1:], one_dtype=one_dtype)
    if x.shape[0] == 0:
        return _no_steps(profile, p, x, state)
    run_steps, run_state = _refractory_for_run(refractory_steps, x.shape[0], state)
    device_type = x.device.type
    if device_type in ("cpu", "cuda") and torch.is_autocast_enabled(device_type):
        # The neuron's elementwise operations are not autocast operations: they run in their operands' dtypes,
        # as the native neurons' do under autocast. Only the engine's own bookkeeping (stacking the steps)
        # would be touched by autocast, so it is switched off around the engine.
        with torch.autocast(device_type, enabled=False):
            spikes, membrane, final = provider.run(profile, p, x, run_steps, state=run_state, grad=grad, **checks)
    else:
        spikes, membrane, final = provider.run(profile, p, x, run_steps, state=run_state, grad=grad, **checks)
    if run_steps != refractory_steps:
        final = {**final, "refractory": _exact_countdown(refractory_steps, x.shape[0], final["refractory"], state)}
    return BlockResult(spikes, membrane, _owned(final))


def _shaped_state(state: dict, neuron_shape, one_dtype: bool) -> dict:
    """A given state that only broadcasts to the neuron shape (Norse's 0-dim initial ``v = v_leak``), expanded
    where that changes nothing: always in a request of one dtype, and the integer countdown. With mixed dtypes a
    floating state keeps its shape, because PyTorch promotes by it: a 0-dim float32 ``v`` meeting float16 input
    gives float16, a full float32 one float32. The torch provider's per-step operations then promote as the
    native neuron's do (its first step turns every state full-shape)."""
    if all(value.shape == neuron_shape for value in state.values()):
        return state
    return {
        name: value.expand(neuron_shape) if one_dtype or not value.is_floating_point() else value
        for name, value in state.items()
    }


def _owned(final: dict) -> dict:
    """The final state as tensors of their own, not views of the [T, ...] outputs: the frameworks detach stored
    states in place (truncated BPTT: snnTorch ``detach_hidden``, SpikingJelly ``detach_net``, Norse
    ``state.v.detach_()``), which views refuse. Under torch.compile (``Tensor._is_view`` cannot be traced) each is
    copied: one [N, ...] copy per state variable."""
    copy_all = torch.compiler.is_compiling()
    return {name: value.clone() if copy_all or value._is_view() else value for name, value in final.items()}


def _no_steps(profile: NeuronProfile, p: dict, x: torch.Tensor, state: dict | None) -> BlockResult:
    """T = 0: empty outputs and the state unchanged (the given one, else the initial one), as a loop of no steps."""
    final = dict(state) if state is not None else profile.initial_state(profile.prepare(p), x.new_zeros(x.shape[1:]))
    if "refractory" not in final:
        final["refractory"] = torch.zeros(x.shape[1:], dtype=torch.long, device=x.device)
    return BlockResult(x * 0, x * 0, final)  # x is empty; the products keep its autograd link


def _refractory_for_run(refractory_steps: int, T: int, state: dict | None) -> tuple[int, dict | None]:
    """The R (and initial countdown) the provider runs with: any R >= T means "at most one spike, then silent
    to the end", so R > T runs as R = T with countdowns capped at T. The same spikes, membranes and gradients,
    and block arithmetic stays small (no float or int32 precision loss in a provider for huge R)."""
    if refractory_steps <= T:
        return refractory_steps, state
    if state is not None and "refractory" in state:
        state = {**state, "refractory": state["refractory"].clamp(max=T)}
    return T, state


def _exact_countdown(refractory_steps: int, T: int, run_countdown: torch.Tensor, state: dict | None) -> torch.Tensor:
    """The final countdown for the true R from one computed with R = T (``_refractory_for_run``): a neuron that
    spiked at step j owes R - (T-1-j) >= 1 (the run reports T - (T-1-j) >= 1); one that did not owes its initial
    countdown less T (the run reports 0)."""
    initial = state.get("refractory") if state is not None else None
    carried = (initial.to(torch.long) - T).clamp(min=0) if initial is not None else torch.zeros_like(run_countdown)
    return torch.where(run_countdown > 0, run_countdown + (refractory_steps - T), carried)


_providers()  # so that a first call under torch.compile finds them (fullgraph)
