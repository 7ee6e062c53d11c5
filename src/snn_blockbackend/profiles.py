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
* ``fast_lif(p)``: for profiles whose charge is bitwise ``v * decay + x`` with one held variable and a
  detached reset, the description the torch provider's fast path needs (see ``providers.torch_lif``);
  ``pending_reset`` says whether a given initial state still owes a delayed reset.

Parameters ``p`` are a dict of tensors broadcastable against the input of one time step.
All per-step functions are pure and elementwise; they are the single place where neuron math lives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, NamedTuple

import torch

from . import surrogate as sg

State = dict[str, torch.Tensor]
Params = dict[str, torch.Tensor]


class FastLIF(NamedTuple):
    decay: torch.Tensor  # per-neuron or scalar decay (beta)
    threshold: torch.Tensor
    graded: torch.Tensor | None  # output spike factor (None: 1)
    reentry_zero: bool  # first live step after a spike: v*0 + x (delayed reset to zero)
    reentry_subtract: bool  # first live step after a spike: (v*decay + x) - threshold (delayed subtract)
    post_zero: bool  # the membrane is 0 from the spike step on (immediate, detached reset to zero)
    strict: bool  # spike iff v > threshold (else >=)


class AdaptiveLIFSpec(NamedTuple):
    """The paper's adaptive LIF for the compiled kernels (``providers.numba_alif``); tensors carry their
    autograd history."""

    beta: torch.Tensor
    threshold: torch.Tensor
    adaptation_decay: torch.Tensor
    adaptation_strength: torch.Tensor


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
        # the default is made only when needed: under torch.compile the adapters pass their cached surrogate
        self.surrogate = sg.get(surrogate, self.default_surrogate)

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

    # -- fast path (optional) -----------------------------------------------------------------
    @property
    def fast_lif_capable(self) -> bool:
        """Whether ``fast_lif`` returns a description (without needing parameter values)."""
        return type(self).fast_lif is not NeuronProfile.fast_lif

    def fast_lif(self, p: Params):
        """A ``FastLIF`` when this profile is a one-variable LIF with a bitwise-linear
        charge ``v*decay + x`` and a detached reset; None otherwise."""
        return None

    def pending_reset(self, p: Params, s: State) -> torch.Tensor | None:
        """Bool mask of neurons whose given initial state still owes a delayed reset (None: never)."""
        return None

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
    supports_block_gradient = True  # grad="blocks" (the paper's approximate gradient) applies
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

    def alif_spec(self, p: Params) -> AdaptiveLIFSpec:
        """This neuron for the compiled kernels (the same operations as ``charge`` and ``reset``)."""
        return AdaptiveLIFSpec(p["beta"], p["threshold"], p["adaptation_decay"], p["adaptation_strength"])


class PaperLIF(NeuronProfile):
    """The paper's neuron without adaptation: V = beta*V*(1-S) + I, spike iff V > threshold."""

    name = "paper_lif"
    supports_block_gradient = True  # grad="blocks" (the paper's approximate gradient) applies
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

    def fast_lif(self, p):
        return FastLIF(p["beta"], p["threshold"], None, False, False, post_zero=True, strict=True)


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
        # snnTorch: do_reset = spk / graded - reset with spk = the *returned* (graded) spike tensor, so its
        # gradient sums the output and reset paths before the ``* graded`` backward: share that node with emit
        do_reset = self.emit(p, spike) / p["graded_spikes_factor"] - self._pending(p, prev["v"])
        if self.reset_mechanism == "subtract":
            return {"v": v - do_reset * p["threshold"]}
        return {"v": v - do_reset * v}

    def emit(self, p, spike):
        graded = getattr(spike, "_snntorch_graded", None)  # set when reset() already scaled this spike
        if graded is None:
            graded = spike * p["graded_spikes_factor"]
            spike._snntorch_graded = graded
        return graded

    @property
    def fast_lif_capable(self):
        return self.reset_delay

    def fast_lif(self, p):
        if not self.reset_delay:
            return None
        return FastLIF(
            p["beta"],
            p["threshold"],
            p["graded_spikes_factor"],
            reentry_zero=self.reset_mechanism == "zero",
            reentry_subtract=self.reset_mechanism == "subtract",
            post_zero=False,
            strict=True,
        )

    def pending_reset(self, p, s):
        if self.reset_mechanism == "none":
            return None
        return s["v"] - p["threshold"] > 0


# ---------------------------------------------------------------------------------------------
# SpikingJelly LIFNode / ParametricLIFNode
# ---------------------------------------------------------------------------------------------
_SPIKINGJELLY_VERSIONS = ("2", "0.0.0.0.14")


class SpikingJellyLIF(NeuronProfile):
    """SpikingJelly ``LIFNode``: charge, fire (``>=``), hard reset to ``v_reset`` or soft reset.

    ``tau`` is the membrane time constant. ``parametric=True`` follows ``ParametricLIFNode``, which
    multiplies by ``decay = sigmoid(w)`` (parameter ``decay``; pass ``node.w.sigmoid()`` so the gradient
    reaches ``w``) instead of dividing by tau. The returned membrane is post-reset (SpikingJelly's
    ``v_seq``); the initial state is ``v_reset`` (hard reset) or 0 (soft reset).

    ``version`` selects the charge arithmetic (``Vr`` = v_reset, 0 for the soft reset):

    * "2" (SpikingJelly 2.0, ``_ops/lif/reference.py`` and ``_ops/plif/reference.py``), for every v_reset:
      ``V + (X - (V - Vr))/tau`` and ``V - (V - Vr)/tau + X`` (``decay_input=False``); parametric:
      ``V + (X - (V - Vr))*decay`` and ``V - (V - Vr)*decay + X``.
    * "0.0.0.0.14" (its train-mode torch backend): the same except when v_reset is None or 0, where it uses
      ``V + (X - V)/tau`` (bitwise the same as above) and, for ``decay_input=False``,
      ``V*(1 - 1/tau) + X`` with ``1 - 1/tau`` computed in double precision from the Python float tau
      (TorchScript), a scalar operand of the product (float32 precision for half-precision V); parametric:
      ``V + (X - V)*decay`` and
      ``V*(1 - decay) + X``.

    Resets (both versions): hard ``S*Vr + (1 - S)*H``, soft ``H - S*V_th``; ``S`` detached with
    ``detach_reset``.
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
        if version not in _SPIKINGJELLY_VERSIONS:
            raise ValueError(f"version must be one of {_SPIKINGJELLY_VERSIONS}, not {version!r}")
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
        legacy_reset0 = self.version == "0.0.0.0.14" and vr == 0.0
        if self.parametric:
            d = p["decay"]
            if self.decay_input:
                h = v + (x - v) * d if legacy_reset0 else v + (x - (v - vr)) * d
            else:
                h = v * (1.0 - d) + x if legacy_reset0 else v - (v - vr) * d + x
        elif self.decay_input:
            h = v + (x - v) / p["tau"] if legacy_reset0 else v + (x - (v - vr)) / p["tau"]
        elif legacy_reset0:
            # TorchScript evaluates (1. - 1. / tau) in double and multiplies v by that Python scalar: PyTorch reads
            # a scalar second operand at the product's compute precision (float32 for half-precision v), not
            # rounded to v's dtype. A 0-dim tensor in that precision is read alike (and keeps v's dtype).
            coefficient = 1.0 - 1.0 / p["tau"].to(torch.float64)
            compute = torch.promote_types(v.dtype, torch.float32) if coefficient.dim() == 0 else v.dtype
            h = v * coefficient.to(compute) + x
        else:
            h = v - (v - vr) / p["tau"] + x
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
_NORSE_VERSIONS = ("1.0", "1.1")


def _norse_default_surrogate(version: str):
    # Norse's default method="super": 1.0 uses SuperSpike with alpha=100; 1.1 ignores alpha (slope 1)
    return sg.superspike(100.0 if version == "1.0" else 1.0)


class _NorseProfile(NeuronProfile):
    """Shared by the Norse profiles: spikes are ``x > 0`` (strict), resets are not detached, the initial
    state is built from *detached* parameters (Norse's ``initial_state`` clones/detaches ``v_leak`` and
    ``v_th``), and ``version`` picks the default surrogate slope.

    Norse multiplies ``dt * tau_*_inv`` first, as a tensor op in the parameters' dtype. Its default
    parameters are float32 tensors, so on float64 input that product is a float32 value; to reproduce such a
    run pass ``dt=1.0`` and the float32 products (e.g. ``(0.001 * p.tau_mem_inv).double()``) as the rates.

    The profiles' default initial state has the input's dtype and the neuron shape. Norse's classes build
    theirs differently (full float32 whatever the input in some classes and versions, a 0-dim clone of
    ``v_leak`` in others), which matters when the dtypes are mixed (half-precision input with float32
    parameters): to reproduce such a run, pass the class's ``initial_state(x[0])`` as ``state`` (the adapters
    in ``adapters.norse`` do).
    """

    default_surrogate = staticmethod(lambda: sg.superspike(1.0))

    def __init__(self, surrogate=None, version: str = "1.1"):
        if version not in _NORSE_VERSIONS:
            raise ValueError(f"version must be one of {_NORSE_VERSIONS}, not {version!r}")
        super().__init__(surrogate if surrogate is not None else _norse_default_surrogate(version))
        self.version = version


class NorseLIFBox(_NorseProfile):
    """Norse ``LIFBoxCell``: ``v' = v + dt*tau_mem_inv*((x + v_leak) - v)`` (that operation order, with
    ``dt*tau_mem_inv`` evaluated first); spike iff ``v' > v_th``; ``reset_method='value'``:
    ``(1 - z)*v' + z*v_reset``, ``'subtract'`` (Norse 1.1 ``reset_subtract``): ``(1 - z)*v' + z*(v' - v_th)``.
    Reset not detached; initial ``v = v_leak`` (detached)."""

    name = "norse_lif_box"
    param_defaults = {"tau_mem_inv": 100.0, "v_leak": 0.0, "v_th": 1.0, "v_reset": 0.0, "dt": 0.001}

    def __init__(self, surrogate=None, reset_method: str = "value", version: str = "1.1"):
        super().__init__(surrogate, version)
        if reset_method not in ("value", "subtract"):
            raise ValueError("reset_method must be 'value' or 'subtract'")
        self.reset_method = reset_method

    def describe(self):
        return f"{self.name}(reset_method={self.reset_method}, version={self.version})"

    def initial_state(self, p, x0):
        # Norse: v = clone(v_leak) (detached; Norse keeps v_leak's 0-dim shape, same values and gradients)
        return {"v": torch.zeros_like(x0) + p["v_leak"].detach()}

    def charge(self, p, s, x):
        v = s["v"]
        dv = p["dt"] * p["tau_mem_inv"] * (x + p["v_leak"] - v)
        v = v + dv
        return {"v": v}, v - p["v_th"]

    def reset(self, p, prev, charged, spike):
        v = charged["v"]
        if self.reset_method == "subtract":
            return {"v": (1 - spike) * v + spike * (v - p["v_th"])}
        return {"v": (1 - spike) * v + spike * p["v_reset"]}

class NorseLIF(_NorseProfile):
    """Norse current-based ``LIFCell`` (``lif_feed_forward_step``). Version "1.1":
    ``i += x; v' = v + dt*tau_mem_inv*((v_leak - v) + i); i += -dt*tau_syn_inv*i``; version "1.0"
    (TorchScript ``_lif_feed_forward_step_jit``) adds ``x`` to ``i`` after the update instead, so the input
    reaches ``v`` one step later. Spike iff ``v' > v_th``; ``v = (1 - z)*v' + z*v_reset`` (not detached).

    With ``refractory_steps=R`` the engine holds ``v`` at its post-reset value, lets ``i`` keep integrating
    and blocks spikes for R steps: the forward pass of Norse's ``LIFRefracCell`` with ``rho_reset=R``
    (bitwise). Norse's *gradient* also flows through its refractory counter (see ``NorseLIFRefrac``)."""

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

    def describe(self):
        return f"{self.name}(version={self.version})"

    def initial_state(self, p, x0):
        # LIFCell: v = clone(v_leak) (detached), i = zeros
        return {"v": torch.zeros_like(x0) + p["v_leak"].detach(), "i": torch.zeros_like(x0)}

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

class NorseLIFRefrac(NorseLIF):
    """Norse ``LIFRefracCell`` (``lif_refrac_feed_forward_step``) including its gradient; run it with
    ``refractory_steps=0``: the refractory period is the profile's own counter ``rho`` (parameter
    ``rho_reset``, Norse's ``LIFRefracParameters.rho_reset``).

    Per step: the LIF step gives ``v_lif, i, z``; ``m = threshold(rho)`` (the spike surrogate applied to the
    counter, so ``m`` carries a surrogate gradient); ``v = (1 - m)*v_lif + m*v_prev``; ``z = (1 - m)*z``;
    ``rho = (1 - z)*relu(rho - m) + z*rho_reset``. The forward pass equals ``norse_lif`` with
    ``refractory_steps=rho_reset``; the gradient differs from it by the paths through ``m`` and ``rho``.
    Do not combine with ``refractory_steps > 0`` (that would add the engine's refractory period on top).
    """

    name = "norse_lif_refrac"
    state_names = ("v", "i", "rho")
    held = frozenset()
    param_defaults = {**NorseLIF.param_defaults, "rho_reset": 5.0}

    def initial_state(self, p, x0):
        # LIFRefracCell: v = full(input shape, v_leak) (detached), i = rho = zeros
        zeros = torch.zeros_like(x0)
        return {"v": zeros + p["v_leak"].detach(), "i": zeros, "rho": zeros}

    def charge(self, p, s, x):
        charged, margin = super().charge(p, s, x)
        mask = NeuronProfile.spike(self, s["rho"])
        # The engine hands ``margin`` to ``spike`` and ``charged`` to ``reset``; the refractory mask rides
        # along on both so the emitted spike can be masked while the LIF reset uses the unmasked spike.
        margin._norse_refractory_mask = mask
        return {**charged, "rho": s["rho"], "_margin": margin, "_mask": mask}, margin

    def spike(self, margin):
        z = super().spike(margin)
        mask = getattr(margin, "_norse_refractory_mask", None)
        if mask is None:
            return z
        margin._norse_lif_spike = z
        return (1 - mask) * z

    def reset(self, p, prev, charged, spike):
        margin, mask = charged["_margin"], charged["_mask"]
        z_lif = getattr(margin, "_norse_lif_spike", None)
        if z_lif is None:
            z_lif = NeuronProfile.spike(self, margin)
        v_lif = (1 - z_lif) * charged["v"] + z_lif * p["v_reset"]
        v = (1 - mask) * v_lif + mask * prev["v"]
        rho = (1 - spike) * torch.relu(prev["rho"] - mask) + spike * p["rho_reset"]
        return {"v": v, "i": charged["i"], "rho": rho}


class NorseLSNN(_NorseProfile):
    """Norse ``LSNNCell`` (adaptive threshold b, ``lsnn_feed_forward_step``): v, i and b decay, spike iff
    ``v' > b'``, ``v = (1 - z)*v' + z*v_reset``, ``b = b' + z*beta``, and the input enters ``i`` after the
    update (one-step delay, both Norse versions). Initial ``v = v_leak``, ``b = v_th`` (detached)."""

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

    def describe(self):
        return f"{self.name}(version={self.version})"

    def initial_state(self, p, x0):
        # LSNNCell: v = full(input shape, v_leak), i = zeros, b = v_th.detach()
        return {
            "v": torch.zeros_like(x0) + p["v_leak"].detach(),
            "i": torch.zeros_like(x0),
            "b": torch.zeros_like(x0) + p["v_th"].detach(),
        }

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
    for cls in (PaperALIF, PaperLIF, SnnTorchLeaky, SpikingJellyLIF, NorseLIFBox, NorseLIF, NorseLIFRefrac, NorseLSNN)
}


def make_profile(name: str, **options) -> NeuronProfile:
    """Build a profile by name (see ``PROFILES``), e.g. ``make_profile("snntorch_leaky", reset_delay=False)``."""
    if name not in PROFILES:
        raise ValueError(f"unknown neuron profile {name!r}; known profiles: {sorted(PROFILES)}")
    return PROFILES[name](**options)
