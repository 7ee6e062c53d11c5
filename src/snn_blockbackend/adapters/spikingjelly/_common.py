"""Pieces shared by the SpikingJelly 0.0.0.0.14 and 2.x adapters: surrogate mapping, profile/parameter
mapping, argument checks, the engine call and the module swap (``convert`` / ``unconvert``).

Nothing here computes neuron dynamics: the profiles (``spikingjelly_lif``, ``paper``) and
``functional.block_neuron`` do.
"""

from __future__ import annotations

import functools
import inspect
import math
from typing import Callable

import torch
from torch import nn

from ... import surrogate as sg
from ...functional import BlockResult, block_neuron, check_refractory_steps, prepare_kernels
from ...profiles import make_profile

PROVIDER_DEFAULT = "auto"


def stock_default(cls, name: str = "surrogate_function"):
    """The default of a stock class's constructor argument. Each stock class has its own default Sigmoid()
    instance, shared by all its nodes: ours use the same object."""
    return inspect.signature(cls).parameters[name].default


class BlockMemories:
    """What every Block node adds to its stock class, in both SpikingJelly versions: the refractory period,
    the engine provider and the extra memories (adaptation ``a``, the refractory countdown)."""

    parametric = False
    adaptive = False

    def _init_block(self, refractory_steps, check_finite) -> None:
        self.block_provider = PROVIDER_DEFAULT  # the engine provider: "auto", "torch", "numba", "reference"
        if not isinstance(check_finite, bool):
            raise TypeError(f"check_finite must be a bool, not {check_finite!r}")
        self.check_finite = check_finite  # the engine's NaN/Inf input check (functional.block_neuron)
        if self.adaptive:
            self.register_memory("a", 0.0)
        self.refractory_steps = refractory_steps
        self._prepare_kernels()

    def _engine_profile(self, training: bool):
        """The engine profile this node runs in training (or eval) mode; each version's mixin says which."""
        raise NotImplementedError

    def _profile(self, x: torch.Tensor):
        """The engine profile and parameters for input ``x``."""
        profile = self._engine_profile(self.training)
        if self.adaptive:
            return profile, alif_params(self)
        return profile, lif_params(self, x, profile.version, self.parametric)

    def _prepare_kernels(self) -> None:
        for training in (True, False):
            prepare_kernels(self._engine_profile(training))

    def __setstate__(self, state):
        super().__setstate__(state)
        self._prepare_kernels()

    @property
    def refractory_steps(self) -> int:
        return self._refractory_steps

    @refractory_steps.setter
    def refractory_steps(self, value) -> None:
        # The countdown memory exists only with a refractory period, so that with R = 0 ``named_memories``
        # (and ``functional_forward``'s state tuple) is the stock node's.
        value = check_refractory_steps(value)
        self.__dict__["_refractory_steps"] = value
        if value > 0 and "refractory" not in self._memories:
            self.register_memory("refractory", 0)  # steps still refractory (a countdown; 0: live)
        elif value == 0 and "refractory" in self._memories:
            del self._memories["refractory"], self._memories_rv["refractory"]

    def _countdown(self):
        """The stored countdown memory (None when there is no refractory period)."""
        return self._memories.get("refractory")


# ---------------------------------------------------------------------------------------------
# surrogate functions
# ---------------------------------------------------------------------------------------------
def _numeric(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _has_trainable_parameters(module) -> bool:
    return isinstance(module, nn.Module) and any(p.requires_grad for p in module.parameters())


def _autograd_surrogate(function: Callable) -> sg.Surrogate:
    """A SpikingJelly surrogate without an engine equivalent, kept exact: the forward is the profile's
    Heaviside (SpikingJelly's surrogates are ``(x >= 0)`` in spiking mode) and the backward is whatever the
    SpikingJelly function's own autograd gives for the same margin and incoming gradient."""

    def backward(grad_spike: torch.Tensor, margin: torch.Tensor) -> torch.Tensor:
        with torch.enable_grad():
            m = margin.detach().requires_grad_()
            (grad_margin,) = torch.autograd.grad(function(m), m, grad_spike)
        return grad_margin

    def derivative(margin: torch.Tensor) -> torch.Tensor:
        return backward(torch.ones_like(margin), margin)

    return sg.Surrogate(f"spikingjelly.{type(function).__name__}", derivative, backward)


def engine_surrogate(surrogate_module, surrogate_base_classes: tuple[type, ...], named: dict[str, type]):
    """Map a SpikingJelly ``surrogate_function`` to what the engine's profiles take.

    * ``Sigmoid(alpha)`` / ``ATan(alpha)`` (numeric alpha): ``surrogate.sigmoid(alpha)`` / ``surrogate.atan(alpha)``,
      the same backward formulas; ``SuperSpike(alpha=1)`` (2.x): ``surrogate.superspike(1.0)``.
    * any other SpikingJelly surrogate (spiking mode, no trainable parameters): its own autograd backward,
      wrapped (see ``_autograd_surrogate``), so gradients stay exactly SpikingJelly's.
    * anything else callable (a user's function, or a surrogate with trainable parameters): called as is on
      the spike margin ``v - v_threshold``, exactly as SpikingJelly's neurons call it.
    """
    function = surrogate_module
    if isinstance(function, surrogate_base_classes):
        if not getattr(function, "spiking", True):
            raise ValueError(
                f"surrogate_function {type(function).__name__} is in non-spiking mode (spiking=False); a spiking "
                "neuron needs spiking=True (call surrogate_function.set_spiking_mode(True))"
            )
        if not _has_trainable_parameters(function):
            alpha = getattr(function, "alpha", None)
            # the class itself: torch.export wraps submodules in proxy subclasses (torch.fx's _AttrProxy)
            kind = next(c for c in type(function).__mro__ if not any("AttrProxy" in b.__name__ for b in c.__mro__))
            if kind is named.get("Sigmoid") and _numeric(alpha):
                return sg.sigmoid(float(alpha))
            if kind is named.get("ATan") and _numeric(alpha):
                return sg.atan(float(alpha))
            if kind is named.get("SuperSpike") and _numeric(alpha) and float(alpha) == 1.0:
                return sg.superspike(1.0)  # SpikingJelly: alpha*g/(|x|+1)^2; ours: g/(1*|x|+1)^2 (equal at alpha=1)
            return _autograd_surrogate(function)
    if not callable(function):
        raise TypeError(f"surrogate_function must be callable, not {type(function).__name__}")
    return function


# ---------------------------------------------------------------------------------------------
# argument checks (SpikingJelly asserts; we raise clear errors for the same rules)
# ---------------------------------------------------------------------------------------------
def check_float(name: str, value, minimum: float | None = None, strict_minimum: bool = True) -> float:
    if not isinstance(value, float):
        raise TypeError(f"{name} must be a Python float (e.g. {name}=2.0), not {value!r}")
    if not math.isfinite(value):
        raise ValueError(f"{name} must be finite, got {value}")
    if minimum is not None and (value <= minimum if strict_minimum else value < minimum):
        raise ValueError(f"{name} must be {'>' if strict_minimum else '>='} {minimum}, got {value}")
    return value


def check_alif_arguments(tau, tau_adapt, adaptation_strength, v_threshold) -> None:
    """The BlockALIFNode arguments (both versions): LIF's rules with v_reset 0, tau_adapt > 1,
    adaptation_strength >= 0 and a positive threshold (the block algorithm needs one)."""
    check_lif_arguments(tau, v_threshold, 0.0, True)
    check_float("tau_adapt", tau_adapt, 1.0)
    check_float("adaptation_strength", adaptation_strength, 0.0, strict_minimum=False)
    if v_threshold <= 0:
        raise ValueError(f"v_threshold must be > 0, got {v_threshold}")


def check_lif_arguments(tau, v_threshold, v_reset, detach_reset, tau_name="tau") -> None:
    check_float(tau_name, tau, 1.0)
    check_float("v_threshold", v_threshold)
    if v_reset is not None:
        check_float("v_reset", v_reset)
    if not isinstance(detach_reset, bool):
        raise TypeError(f"detach_reset must be a bool, not {detach_reset!r}")


# ---------------------------------------------------------------------------------------------
# profiles and parameters
# ---------------------------------------------------------------------------------------------
@functools.lru_cache(maxsize=256)
def legacy_tau(tau: float, dtype: torch.dtype) -> float:
    """The ``tau`` to hand the ``spikingjelly_lif`` profile (version "0.0.0.0.14", ``decay_input=False``, v_reset
    None or 0) so that its coefficient equals SpikingJelly 0.0.0.0.14's.

    SpikingJelly evaluates ``1 - 1/tau`` in double from the Python float (TorchScript) and the tensor product
    rounds it to the input dtype. The profile receives ``tau`` as a tensor in the input dtype and computes
    ``1 - 1/double(tau_tensor)``; for float32 and a tau that float32 cannot represent the two can differ by one
    ulp. Among the float32 neighbours of tau we pick one whose coefficient is SpikingJelly's (found for ~94 % of
    random taus in (1, 10]); otherwise the nearest, and the membrane may then differ by ~1e-7.
    """
    if dtype == torch.float64:
        return tau
    target = torch.tensor(1.0 - 1.0 / tau, dtype=torch.float64).to(dtype)
    center = torch.tensor(tau, dtype=dtype)
    up = torch.tensor(math.inf, dtype=dtype)
    down = torch.tensor(-math.inf, dtype=dtype)
    best, best_error = center, math.inf
    candidates = [center]
    above = below = center
    for _ in range(64):
        above, below = torch.nextafter(above, up), torch.nextafter(below, down)
        candidates += [above, below]
    for candidate in candidates:
        if float(candidate) <= 1.0:
            continue
        coefficient = (1.0 - 1.0 / candidate.to(torch.float64)).to(dtype)
        if torch.equal(coefficient, target):
            return float(candidate)
        error = abs(float(coefficient) - float(target))
        if error < best_error:
            best, best_error = candidate, error
    return float(best)


def lif_profile(node, version: str, parametric: bool, surrogate_function):
    """The ``spikingjelly_lif`` profile of a (Parametric)LIFNode-like ``node``."""
    return make_profile(
        "spikingjelly_lif",
        surrogate=surrogate_function,
        decay_input=node.decay_input,
        v_reset=node.v_reset,
        detach_reset=node.detach_reset,
        parametric=parametric,
        version=version,
    )


def lif_params(node, x: torch.Tensor, version: str, parametric: bool) -> dict:
    """The ``spikingjelly_lif`` parameters of ``node`` for input ``x`` (its ``lif_profile`` for ``version``)."""
    params = {"v_threshold": node.v_threshold}
    if parametric:
        # 1/tau = sigmoid(w), computed from the parameter so the gradient reaches w; SpikingJelly's
        # w.sigmoid() is in w's dtype and type promotion casts it to the input's
        params["decay"] = node.w.sigmoid().to(x.dtype)
    else:
        legacy_coefficient = (
            version == "0.0.0.0.14" and not node.decay_input and (node.v_reset is None or node.v_reset == 0.0)
        )
        params["tau"] = legacy_tau(node.tau, x.dtype) if legacy_coefficient else node.tau
    return params


def alif_profile(surrogate_function):
    """The engine's ``paper`` profile, which ``BlockALIFNode`` runs."""
    return make_profile("paper", surrogate=surrogate_function)


def alif_params(node) -> dict:
    """The engine's ``paper`` profile parameters for ``BlockALIFNode`` (see its docstring for the equations)."""
    return {
        # 1 - 1/tau in double, rounded to the input dtype by the engine: SpikingJelly 0.0.0.0.14's
        # decay_input=False coefficient for the same tau
        "beta": 1.0 - 1.0 / node.tau,
        "threshold": node.v_threshold,
        "adaptation_decay": 1.0 - 1.0 / node.tau_adapt,
        "adaptation_strength": node.adaptation_strength,
    }


def run_engine(node, x_seq: torch.Tensor, profile, params, state: dict) -> BlockResult:
    return block_neuron(
        x_seq, profile, params, node.refractory_steps, state=state, backend=node.block_provider,
        check_finite=node.check_finite,
    )


def check_single_step_input(x) -> None:
    if isinstance(x, torch.Tensor) and x.dim() == 0:
        raise ValueError("single-step input must have at least one neuron dimension, [N, *]; got a 0-dim tensor")


def check_multi_step_input(x_seq) -> None:
    if isinstance(x_seq, torch.Tensor) and x_seq.dim() < 2:
        raise ValueError(
            f"multi-step input must be time-first, [T, N, *]; got shape {tuple(x_seq.shape)} "
            "(for one step at a time use step_mode='s')"
        )
    if isinstance(x_seq, torch.Tensor) and x_seq.shape[0] == 0:
        raise ValueError("input has no time steps (T = 0)")


def initial_refractory(value, like: torch.Tensor) -> torch.Tensor:
    """The countdown memory as a long tensor shaped like one time step (0 = not refractory)."""
    if isinstance(value, torch.Tensor) and value.shape == like.shape:
        return value.to(device=like.device, dtype=torch.long)
    return torch.zeros(like.shape, dtype=torch.long, device=like.device)


# ---------------------------------------------------------------------------------------------
# module swap
# ---------------------------------------------------------------------------------------------
LIF_ARGUMENTS = ("decay_input", "v_threshold", "v_reset", "surrogate_function", "detach_reset", "step_mode")


def _copy_runtime_state(source, target, memory_names) -> None:
    target.train(source.training)
    for name in memory_names:
        if name in source._memories and name in target._memories:
            target._memories[name] = source._memories[name]
            target._memories_rv[name] = source._memories_rv[name]
    if hasattr(source, "_neuron_precision"):
        target._neuron_precision = source._neuron_precision


def swap_modules(net: nn.Module, make_replacement: Callable[[nn.Module], nn.Module | None]) -> nn.Module:
    """Replace every submodule for which ``make_replacement`` returns a module (nested too; a module shared
    by several parents stays shared). All replacements are made before anything is swapped, so an error
    leaves ``net`` untouched. Returns ``net`` or, when ``net`` itself is replaced, its replacement."""
    replaced: dict[int, nn.Module] = {}
    for module in net.modules():  # each module once, however often it is reachable
        new = make_replacement(module)
        if new is not None:
            replaced[id(module)] = new
    if id(net) in replaced:
        return replaced[id(net)]
    for parent in list(net.modules()):
        # _modules, not named_children(): that skips a child already seen under another name
        for name, child in list(parent._modules.items()):
            if child is not None and id(child) in replaced:
                parent._modules[name] = replaced[id(child)]
    return net


def stock_to_block(stock_lif, stock_plif, block_lif, block_plif, extra_arguments: tuple[str, ...], refractory_steps):
    """The ``make_replacement`` for ``convert``: stock (Parametric)LIFNode -> ours, same arguments and state.

    ParametricLIFNode's ``w`` is moved over as the same ``nn.Parameter`` object, so an optimizer built on the
    original model keeps training the converted one. A Block node already there (converted before, or
    built as one, ``BlockALIFNode`` included) is kept and gets ``refractory_steps``: after
    ``convert(net, refractory_steps=R)`` every neuron of ours has R."""
    refractory_steps = check_refractory_steps(refractory_steps)

    def make(module):
        if isinstance(module, BlockMemories):
            module.refractory_steps = refractory_steps
            return None
        kind = type(module)  # exact classes only: a user subclass may have changed the dynamics
        if kind is not stock_lif and kind is not stock_plif:
            return None
        arguments = {name: getattr(module, name) for name in LIF_ARGUMENTS + extra_arguments}
        arguments["store_v_seq"] = module.store_v_seq
        if kind is stock_lif:
            new = block_lif(tau=module.tau, refractory_steps=refractory_steps, **arguments)
        else:
            new = block_plif(init_tau=2.0, refractory_steps=refractory_steps, **arguments)
            new.w = module.w
        _copy_runtime_state(module, new, ("v", "v_seq"))
        return new

    return make


def block_to_stock(stock_lif, stock_plif, block_lif, block_plif, extra_arguments: tuple[str, ...]):
    """The ``make_replacement`` for ``unconvert``: ours -> the stock class (refused for a refractory period,
    which the stock classes cannot express)."""

    def make(module):
        kind = type(module)
        if kind is not block_lif and kind is not block_plif:
            return None
        if module.refractory_steps > 0:
            raise ValueError(
                f"cannot unconvert a {kind.__name__} with refractory_steps={module.refractory_steps}: the stock "
                "SpikingJelly neuron has no refractory period (set refractory_steps=0 first to drop it)"
            )
        arguments = {name: getattr(module, name) for name in LIF_ARGUMENTS + extra_arguments}
        arguments["store_v_seq"] = module.store_v_seq
        if kind is block_lif:
            new = stock_lif(tau=module.tau, **arguments)
        else:
            new = stock_plif(init_tau=2.0, **arguments)
            new.w = module.w
        _copy_runtime_state(module, new, ("v", "v_seq"))
        return new

    return make
