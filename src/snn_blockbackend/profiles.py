"""Neuron profiles: the small description of a neuron that the one block engine runs.

A profile says, for one framework's neuron, with that framework's exact floating-point operation order:

* ``charge(p, s, x)``: one sub-threshold step from state ``s`` with input ``x``, assuming no spike at this step.
  Returns the charged state and the spike *margin* (membrane minus threshold; a spike iff margin > 0, or >= 0
  for ``strict=False``).
* ``reset(p, prev, charged, spike)``: the state after the spike test, given the surrogate spike (value 0 or 1).
* ``held``: the state variables frozen during the absolute refractory period (R steps after a spike the input
  is ignored for them and they keep their post-spike value; other variables, e.g. adaptation, keep evolving).
* ``silent_reset_is_identity``: True when ``reset`` with a silent spike is the identity in value *and*
  gradient (detached resets, no spike-driven adaptation). The engine then skips the reset on silent steps.
* ``linear_decay(p)``: for profiles whose charge is bitwise ``v * decay + x`` with one held variable and a
  detached reset, the decay; this enables the engine's fast block path. ``reentry`` describes the first
  step after a spike (a delayed reset), ``pending_reset`` whether an initial state owes one.

Parameters ``p`` are a dict of tensors broadcastable against the input of one time step.
All per-step functions are pure and elementwise; they are the single place where neuron math lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from . import surrogate as sg

State = dict[str, torch.Tensor]
Params = dict[str, torch.Tensor]


class NeuronProfile:
    name: str = "abstract"
    state_names: tuple[str, ...] = ("v",)
    held: frozenset[str] = frozenset({"v"})
    strict: bool = True
    silent_reset_is_identity: bool = False
    # parameter names the profile reads, with defaults (None: required)
    param_defaults: dict[str, float | None] = {}
    # parameters that must be > 0 / lie in (0, 1]
    positive_params: tuple[str, ...] = ()
    unit_interval_params: tuple[str, ...] = ()
    default_surrogate = staticmethod(sg.atan)

    def __init__(self, surrogate=None):
        self.surrogate = sg.get(surrogate, self.default_surrogate())

    # -- per-step math -------------------------------------------------------------------------
    def spike(self, margin: torch.Tensor) -> torch.Tensor:
        if isinstance(self.surrogate, sg.Surrogate):
            return self.surrogate(margin, self.strict)
        return self.surrogate(margin)

    def prepare(self, p: Params) -> Params:
        """Derived parameters computed once per call (e.g. clamps); must equal the native per-step values."""
        return p

    def initial_state(self, p: Params, x0: torch.Tensor) -> State:
        return {name: torch.zeros_like(x0) for name in self.state_names}

    def charge(self, p: Params, s: State, x: torch.Tensor) -> tuple[State, torch.Tensor]:
        raise NotImplementedError

    def reset(self, p: Params, prev: State, charged: State, spike: torch.Tensor) -> State:
        raise NotImplementedError

    def emit(self, p: Params, spike: torch.Tensor) -> torch.Tensor:
        """The output spike (graded spikes scale it)."""
        return spike

    def membrane(self, s: State) -> torch.Tensor:
        return s["v"]

    # -- fast block path (optional) ---------------------------------------------------------------
    def linear_decay(self, p: Params) -> torch.Tensor | None:
        return None

    def reentry(self, p: Params) -> tuple[torch.Tensor | float, torch.Tensor | float]:
        """(decay, subtrahend) of the first step after a spike: v <- (v*decay + x) - subtrahend."""
        return self.linear_decay(p), 0.0

    def pending_reset(self, p: Params, s: State) -> torch.Tensor | None:
        """Bool mask of neurons whose given initial state still owes a delayed reset (None: never)."""
        return None

    def threshold(self, p: Params) -> torch.Tensor:
        """Fixed threshold for the fast path's margin ``v - threshold``."""
        raise NotImplementedError

    def describe(self) -> str:
        return self.name


# ---------------------------------------------------------------------------------------------
# Taylor, King & Harper (2023) ALIF / LIF
# ---------------------------------------------------------------------------------------------
class PaperALIF(NeuronProfile):
    """V = beta*V*(1-S) + I, theta = threshold + b*a, a = p*a + S, spike iff V > theta.

    The reset to zero is detached (as in the paper's code); the adaptation update is not.
    The returned membrane is post-reset (0 at the spike step and during the refractory period).
    """

    name = "paper"
    state_names = ("v", "a")
    held = frozenset({"v"})
    param_defaults = {"beta": None, "threshold": 1.0, "adaptation_decay": 0.9, "adaptation_strength": 1.0}
    positive_params = ("threshold",)
    unit_interval_params = ("beta",)
    default_surrogate = staticmethod(sg.multi_gaussian)

    def charge(self, p, s, x):
        v = p["beta"] * s["v"] + x
        theta = p["threshold"] + p["adaptation_strength"] * s["a"]
        return {"v": v, "a": p["adaptation_decay"] * s["a"]}, v - theta

    def reset(self, p, prev, charged, spike):
        return {"v": charged["v"] * (1 - spike.detach()), "a": charged["a"] + spike}


class PaperLIF(NeuronProfile):
    """The paper's neuron without adaptation: V = beta*V*(1-S) + I, spike iff V > threshold."""

    name = "paper_lif"
    param_defaults = {"beta": None, "threshold": 1.0}
    positive_params = ("threshold",)
    unit_interval_params = ("beta",)
    silent_reset_is_identity = True
    default_surrogate = staticmethod(sg.multi_gaussian)

    def charge(self, p, s, x):
        v = p["beta"] * s["v"] + x
        return {"v": v}, v - p["threshold"]

    def reset(self, p, prev, charged, spike):
        return {"v": charged["v"] * (1 - spike.detach())}

    def linear_decay(self, p):
        return p["beta"]

    def threshold(self, p):
        return p["threshold"]


# ---------------------------------------------------------------------------------------------
# snnTorch Leaky (0.9.4 / 1.0.x; the neuron code is identical)
# ---------------------------------------------------------------------------------------------
_SNNTORCH_RESETS = ("subtract", "zero", "none")


class SnnTorchLeaky(NeuronProfile):
    """snnTorch ``Leaky``: U = clamp(beta)*U + X - R*theta (R = H(U_prev - theta), detached).

    ``reset_delay=True`` (snnTorch's default) defers the reset to the next step and returns the pre-reset
    membrane; ``reset_delay=False`` applies ``U -= (S - R)*theta`` (or ``*U``) at once, with gradient.
    """

    name = "snntorch_leaky"
    param_defaults = {"beta": None, "threshold": 1.0, "graded_spikes_factor": 1.0}
    unit_interval_params = ()  # snnTorch clamps beta to [0, 1] itself
    default_surrogate = staticmethod(sg.atan)

    def __init__(self, surrogate=None, reset_mechanism: str = "subtract", reset_delay: bool = True):
        super().__init__(surrogate)
        if reset_mechanism not in _SNNTORCH_RESETS:
            raise ValueError(f"reset_mechanism must be one of {_SNNTORCH_RESETS}, not {reset_mechanism!r}")
        self.reset_mechanism = reset_mechanism
        self.reset_delay = bool(reset_delay)
        self.silent_reset_is_identity = self.reset_delay

    def describe(self):
        return f"{self.name}(reset={self.reset_mechanism}, delay={self.reset_delay})"

    def prepare(self, p):
        return {**p, "beta": p["beta"].clamp(0, 1)}

    def _pending(self, p, v):
        # snnTorch's mem_reset: the spike function of (U - theta), detached
        return self.spike(v - p["threshold"]).detach()

    def charge(self, p, s, x):
        v = s["v"]
        pending = self._pending(p, v)
        if self.reset_mechanism == "subtract":
            v = p["beta"] * v + x - pending * p["threshold"]
        elif self.reset_mechanism == "zero":
            v = p["beta"] * ((1 - pending) * v) + x
        else:
            v = p["beta"] * v + x
        return {"v": v}, v - p["threshold"]

    def reset(self, p, prev, charged, spike):
        if self.reset_delay or self.reset_mechanism == "none":
            return charged
        v = charged["v"]
        do_reset = spike * p["graded_spikes_factor"] / p["graded_spikes_factor"] - self._pending(p, prev["v"])
        if self.reset_mechanism == "subtract":
            return {"v": v - do_reset * p["threshold"]}
        return {"v": v - do_reset * v}

    def emit(self, p, spike):
        return spike * p["graded_spikes_factor"]

    def linear_decay(self, p):
        return p["beta"] if self.reset_delay else None

    def reentry(self, p):
        if self.reset_mechanism == "subtract":
            return p["beta"], p["threshold"]
        if self.reset_mechanism == "zero":
            return torch.zeros_like(p["beta"]), 0.0
        return p["beta"], 0.0

    def pending_reset(self, p, s):
        if self.reset_mechanism == "none":
            return None
        return s["v"] - p["threshold"] > 0

    def threshold(self, p):
        return p["threshold"]


# ---------------------------------------------------------------------------------------------
# SpikingJelly LIFNode / ParametricLIFNode
# ---------------------------------------------------------------------------------------------
class SpikingJellyLIF(NeuronProfile):
    """SpikingJelly ``LIFNode``: charge, fire (``>=``), hard reset to ``v_reset`` or soft reset.

    ``tau`` is the membrane time constant. ``parametric=True`` follows ``ParametricLIFNode``, which
    multiplies by ``decay = sigmoid(w)`` (parameter ``decay``) instead of dividing by tau.
    ``version`` selects the ``decay_input=False`` arithmetic: "2" (V - (V - Vr)/tau + X) or
    "0.0.0.0.14" (V*(1 - 1/tau) + X when v_reset is None or 0).
    """

    name = "spikingjelly_lif"
    strict = False
    param_defaults = {"tau": 2.0, "v_threshold": 1.0}
    default_surrogate = staticmethod(sg.sigmoid)

    def __init__(
        self,
        surrogate=None,
        decay_input: bool = True,
        v_reset: float | None = 0.0,
        detach_reset: bool = False,
        parametric: bool = False,
        version: str = "2",
    ):
        super().__init__(surrogate)
        self.decay_input = bool(decay_input)
        self.v_reset = None if v_reset is None else float(v_reset)
        self.detach_reset = bool(detach_reset)
        self.parametric = bool(parametric)
        self.version = version
        self.silent_reset_is_identity = self.detach_reset
        if parametric:
            self.param_defaults = {"decay": 0.5, "v_threshold": 1.0}
        else:
            self.positive_params = ("tau",)

    def describe(self):
        return (
            f"{self.name}(decay_input={self.decay_input}, v_reset={self.v_reset}, "
            f"detach_reset={self.detach_reset}, parametric={self.parametric}, version={self.version})"
        )

    def initial_state(self, p, x0):
        return {"v": torch.full_like(x0, 0.0 if self.v_reset is None else self.v_reset)}

    def charge(self, p, s, x):
        v = s["v"]
        vr = 0.0 if self.v_reset is None else self.v_reset
        if self.parametric:
            d = p["decay"]
            if self.decay_input:
                h = v + (x - (v - vr)) * d if vr != 0.0 else v + (x - v) * d
            else:
                h = v - (v - vr) * d + x if vr != 0.0 else v * (1.0 - d) + x
        elif self.decay_input:
            h = v + (x - (v - vr)) / p["tau"]
        elif self.version == "2" or vr != 0.0:
            h = v - (v - vr) / p["tau"] + x
        else:
            h = v * (1.0 - 1.0 / p["tau"]) + x
        return {"v": h}, h - p["v_threshold"]

    def reset(self, p, prev, charged, spike):
        s = spike.detach() if self.detach_reset else spike
        h = charged["v"]
        if self.v_reset is None:
            return {"v": h - s * p["v_threshold"]}
        return {"v": s * self.v_reset + (1.0 - s) * h}


# ---------------------------------------------------------------------------------------------
# Norse (1.0.x / 1.1.x)
# ---------------------------------------------------------------------------------------------
class NorseLIFBox(NeuronProfile):
    """Norse ``LIFBoxCell``: v' = v + dt*tau_mem_inv*((v_leak - v) + x); spike iff v' > v_th; reset to
    ``v_reset`` (or subtract ``v_th`` with ``reset_method='subtract'``, Norse 1.1). Reset not detached."""

    name = "norse_lif_box"
    param_defaults = {"tau_mem_inv": 100.0, "v_leak": 0.0, "v_th": 1.0, "v_reset": 0.0, "dt": 0.001}
    default_surrogate = staticmethod(lambda: sg.superspike(1.0))

    def __init__(self, surrogate=None, reset_method: str = "value"):
        super().__init__(surrogate)
        if reset_method not in ("value", "subtract"):
            raise ValueError("reset_method must be 'value' or 'subtract'")
        self.reset_method = reset_method

    def initial_state(self, p, x0):
        return {"v": torch.zeros_like(x0) + p["v_leak"]}

    def charge(self, p, s, x):
        v = s["v"]
        dv = p["dt"] * p["tau_mem_inv"] * ((p["v_leak"] - v) + x)
        v = v + dv
        return {"v": v}, v - p["v_th"]

    def reset(self, p, prev, charged, spike):
        v = charged["v"]
        if self.reset_method == "subtract":
            return {"v": (1 - spike) * v + spike * (v - p["v_th"])}
        return {"v": (1 - spike) * v + spike * p["v_reset"]}


class NorseLIF(NeuronProfile):
    """Norse current-based ``LIFCell``. Version "1.1" adds the input to the synaptic current before the
    voltage update; "1.0" after it (the input reaches v one step later). During the refractory period v is
    held and i keeps integrating, as in Norse's ``LIFRefracCell`` (so R here equals its ``rho_reset``)."""

    name = "norse_lif"
    state_names = ("v", "i")
    param_defaults = {
        "tau_syn_inv": 200.0,
        "tau_mem_inv": 100.0,
        "v_leak": 0.0,
        "v_th": 1.0,
        "v_reset": 0.0,
        "dt": 0.001,
    }
    default_surrogate = staticmethod(lambda: sg.superspike(1.0))

    def __init__(self, surrogate=None, version: str = "1.1"):
        super().__init__(surrogate)
        if version not in ("1.0", "1.1"):
            raise ValueError("version must be '1.0' or '1.1'")
        self.version = version

    def initial_state(self, p, x0):
        return {"v": torch.zeros_like(x0) + p["v_leak"], "i": torch.zeros_like(x0)}

    def charge(self, p, s, x):
        v, i = s["v"], s["i"]
        if self.version == "1.1":
            i = i + x
        dv = p["dt"] * p["tau_mem_inv"] * ((p["v_leak"] - v) + i)
        v = v + dv
        di = -p["dt"] * p["tau_syn_inv"] * i
        i = i + di
        if self.version == "1.0":
            i = i + x
        return {"v": v, "i": i}, v - p["v_th"]

    def reset(self, p, prev, charged, spike):
        return {"v": (1 - spike) * charged["v"] + spike * p["v_reset"], "i": charged["i"]}


class NorseLSNN(NeuronProfile):
    """Norse ``LSNNCell`` (adaptive threshold b): the input enters i after the update (one-step delay)."""

    name = "norse_lsnn"
    state_names = ("v", "i", "b")
    param_defaults = {
        "tau_syn_inv": 200.0,
        "tau_mem_inv": 100.0,
        "tau_adapt_inv": 1.0 / 800,
        "v_leak": 0.0,
        "v_th": 1.0,
        "v_reset": 0.0,
        "beta": 1.8,
        "dt": 0.001,
    }
    default_surrogate = staticmethod(lambda: sg.superspike(1.0))

    def initial_state(self, p, x0):
        return {"v": torch.zeros_like(x0) + p["v_leak"], "i": torch.zeros_like(x0), "b": torch.zeros_like(x0) + p["v_th"]}

    def charge(self, p, s, x):
        v, i, b = s["v"], s["i"], s["b"]
        dv = p["dt"] * p["tau_mem_inv"] * ((p["v_leak"] - v) + i)
        v = v + dv
        di = -p["dt"] * p["tau_syn_inv"] * i
        i = i + di
        db = p["dt"] * p["tau_adapt_inv"] * (p["v_th"] - b)
        b = b + db
        return {"v": v, "i": i + x, "b": b}, v - b

    def reset(self, p, prev, charged, spike):
        return {
            "v": (1 - spike) * charged["v"] + spike * p["v_reset"],
            "i": charged["i"],
            "b": charged["b"] + spike * p["beta"],
        }


@dataclass(frozen=True)
class ProfileInfo:
    name: str
    factory: type
    summary: str


PROFILES: dict[str, type[NeuronProfile]] = {
    cls.name: cls
    for cls in (PaperALIF, PaperLIF, SnnTorchLeaky, SpikingJellyLIF, NorseLIFBox, NorseLIF, NorseLSNN)
}


def make_profile(name: str, **options) -> NeuronProfile:
    """Build a profile by name (see ``PROFILES``), e.g. ``make_profile("snntorch_leaky", reset_delay=False)``."""
    if name not in PROFILES:
        raise ValueError(f"unknown neuron profile {name!r}; known profiles: {sorted(PROFILES)}")
    return PROFILES[name](**options)
