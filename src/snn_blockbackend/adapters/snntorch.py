"""snnTorch adapter: ``BlockLeaky`` (a drop-in ``snn.Leaky``), ``BlockALIF``, ``convert``/``unconvert``.

* ``BlockLeaky`` subclasses ``snn.Leaky`` with the same constructor plus ``refractory_steps``, ``sequence``
  and ``backend``. Called one step at a time with ``refractory_steps=0`` it *is* ``Leaky`` (snnTorch's own
  forward runs). Given a whole time-first sequence [T, ...] (``forward_sequence(x)``, or ``forward(x)``
  when built with ``sequence=True``) it runs the block engine with the ``snntorch_leaky`` profile, which
  reproduces ``Leaky``'s arithmetic. With ``refractory_steps > 0`` every call runs the engine (a single step
  is a sequence of length 1), so steps and sequences share one refractory countdown.
* ``BlockALIF``: the adaptive-threshold neuron snnTorch lacks (the engine's ``paper`` profile), with
  ``Leaky``'s constructor style, state handling and return conventions.
* ``convert(model)`` swaps every ``snn.Leaky`` of a model for a ``BlockLeaky`` (sharing its parameter and
  buffer tensors, so an optimizer built before the swap keeps working); ``unconvert(model)`` swaps back.

State beyond ``mem`` (the refractory countdown, BlockALIF's adaptation) lives in non-persistent buffers
that are tied to the membrane tensor this neuron last produced: they continue while the ``mem`` passed in
(or kept in ``self.mem``) is that tensor or a detached alias of it (same storage), and restart from zero
for any other membrane (``reset_mem()``, ``snntorch.utils.reset`` / ``Leaky.reset_hidden``, a tensor of
your own). When ``mem`` was detached (``detach_hidden``, ``mem.detach()``), the extra state is detached too.
This is how ``snntorch.utils.reset(net)``, which only knows ``Leaky.reset_hidden()``, resets all our state.
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import nn

from .. import surrogate as sg
from ..functional import block_neuron, check_refractory_steps, prepare_kernels
from ..ops import has_data
from ..profiles import make_profile
from . import psu_exports
from .registry import SNNTORCH

SNNTORCH.require()

import snntorch as snn  # noqa: E402  (after the version check, so an unsupported snnTorch fails clearly)
from snntorch import surrogate as snn_surrogate  # noqa: E402
from snntorch._neurons.neurons import SpikingNeuron  # noqa: E402

__all__ = ["BlockALIF", "BlockLeaky", "convert", "engine_surrogate", "reset", "unconvert"]

_RESET_NAMES = tuple(SpikingNeuron.reset_dict)  # index = reset_mechanism_val: subtract, zero, none


# ---------------------------------------------------------------------------------------------
# surrogate mapping
# ---------------------------------------------------------------------------------------------
def _closure_value(fn, name):
    return fn.__closure__[fn.__code__.co_freevars.index(name)].cell_contents


# snnTorch's surrogate factories return closures, which pickle cannot store: a pickled neuron records the
# factory and its argument instead and calls the factory again when it is loaded
_SNNTORCH_FACTORIES = {
    "atan.<locals>.inner": ("atan", "alpha"),
    "fast_sigmoid.<locals>.inner": ("fast_sigmoid", "slope"),
}


def _snntorch_factory_call(spike_grad) -> tuple | None:
    """``(factory name, argument)`` when ``spike_grad`` is a closure made by snnTorch's atan / fast_sigmoid."""
    if getattr(spike_grad, "__module__", None) != snn_surrogate.__name__:
        return None
    if not getattr(spike_grad, "__closure__", None):
        return None
    known = _SNNTORCH_FACTORIES.get(getattr(spike_grad, "__qualname__", ""))
    if known is None:
        return None
    factory, argument = known
    return factory, _closure_value(spike_grad, argument)


def engine_surrogate(spike_grad, surrogate_disable: bool = False):
    """The engine surrogate for a snnTorch ``spike_grad``.

    snnTorch's ``atan(alpha)`` (its default) and ``fast_sigmoid(slope)`` become the engine's named
    surrogates with bitwise-identical backward formulas (so the fast torch/numba kernels can run);
    ``surrogate_disable=True`` becomes ``heaviside`` (no gradient). Any other callable (snnTorch's
    ``sigmoid``, ``triangular``, ``custom_surrogate(...)``, your own ``margin -> spike`` function) is used
    as it is: the engine then calls it per step (torch provider), so its gradient is exactly the native one.
    """
    if surrogate_disable:
        return sg.heaviside()
    if spike_grad is None:
        return sg.atan(2.0)
    if isinstance(spike_grad, sg.Surrogate):
        return spike_grad
    factory_call = _snntorch_factory_call(spike_grad)
    if factory_call is not None:
        factory, argument = factory_call
        if factory == "atan":
            return sg.atan(float(argument))
        # snnTorch: grad / (slope*|x| + 1.0)**2, which is the engine's superspike(slope) backward
        return sg.superspike(float(argument))
    if not callable(spike_grad):
        raise TypeError(f"spike_grad must be callable, not {type(spike_grad).__name__}")
    return spike_grad


def _engine_surrogate_of(neuron):
    """``engine_surrogate`` of a neuron's ``spike_grad``, remembered on the neuron: Dynamo cannot inspect a
    function's closure, so under ``torch.compile`` the answer of an eager call (or of construction) is used."""
    key = (neuron.spike_grad, neuron.surrogate_disable)
    cached = neuron.__dict__.get("_engine_surrogate_cache")
    if cached is None or cached[0] is not key[0] or cached[1] != key[1]:
        cached = (*key, engine_surrogate(*key))
        neuron.__dict__["_engine_surrogate_cache"] = cached
    return cached[2]


# ---------------------------------------------------------------------------------------------
# state beyond ``mem``
# ---------------------------------------------------------------------------------------------
class _PickledSnnTorchSurrogate(NamedTuple):
    """A snnTorch surrogate closure as pickled: its factory's name and argument."""

    factory: str
    argument: float


class _LinkedStateMixin:
    """Extra per-neuron state (non-persistent buffers) that follows the identity of ``self.mem``."""

    _extra_state_names: tuple[str, ...] = ("refractory",)

    def _init_linked_state(self):
        for name in self._extra_state_names:
            dtype = torch.long if name == "refractory" else torch.float32
            self.register_buffer(name, torch.zeros(0, dtype=dtype), persistent=False)
        self._linked_mem = None  # detached aliases of the last membrane this neuron produced (see _link)
        self._linked_mem_had_graph = False
        # the stored extra state is zero (known without reading it): continuing needs no link check, which reads
        # data pointers (a graph break under torch.compile); true for snnTorch's Leaky (R = 0)
        self._extra_state_zero = True

    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("_engine_surrogate_cache", None)  # holds the closure too; __setstate__ works it out again
        factory_call = _snntorch_factory_call(state.get("spike_grad"))
        if factory_call is not None:
            state["spike_grad"] = _PickledSnnTorchSurrogate(*factory_call)
        return state

    def __setstate__(self, state):
        if isinstance(state.get("spike_grad"), _PickledSnnTorchSurrogate):
            factory, argument = state["spike_grad"]
            state = {**state, "spike_grad": getattr(snn_surrogate, factory)(argument)}
        super().__setstate__(state)
        self.__dict__.setdefault("_extra_state_zero", False)  # pickled before it existed: check the link
        self._prepare_for_compile()

    def _prepare_for_compile(self):
        """What a first call under ``torch.compile`` cannot do itself (Dynamo would break the graph): map the
        surrogate (its closure) and trace the engine profile (``functional.prepare_kernels``)."""
        _engine_surrogate_of(self)
        try:
            profile = self._engine_profile()
        except (NotImplementedError, ValueError):
            return  # a configuration the engine refuses: the first call raises it
        prepare_kernels(profile)

    def _store(self, result, continued: bool) -> torch.Tensor:
        """Keep the engine's final state (``continued``: the run started from the stored extra state, see
        ``_extra_state``); returns the new ``self.mem``."""
        # the last step's membrane equals the final state "v" for the profiles used here (T = 0: the given state);
        # self.mem comes from the state output, so that its gradient (which torch.compile materializes, zeros when
        # unused) enters the backward as [N] values, not as a [T, N] membrane gradient
        last = result.membrane[-1] if result.membrane.shape[0] else result.state["v"]
        # a copy, not the view: snnTorch's detach_hidden() detaches self.mem in place, which views refuse
        self.mem = result.state["v"].clone()
        self.refractory = result.state["refractory"]
        # with R = 0 a countdown that starts at zero stays zero
        self._extra_state_zero = self._extra_state_names == ("refractory",) and self.refractory_steps == 0 and (
            not continued or self._extra_state_zero
        )
        self._link(self.mem, last)
        return self.mem

    def _link(self, mem: torch.Tensor, *aliases: torch.Tensor):
        # what a caller may pass back as ``mem`` to continue: self.mem, or the last step of a returned sequence
        self._linked_mem = tuple(t.detach() for t in (mem, *aliases))
        self._linked_mem_had_graph = mem.requires_grad

    def _is_linked(self, mem) -> bool:
        if self._linked_mem is None or not isinstance(mem, torch.Tensor) or mem.numel() == 0:
            return False
        return any(
            mem.shape == link.shape
            and mem.dtype == link.dtype
            and mem.device == link.device
            and mem.data_ptr() == link.data_ptr()
            for link in self._linked_mem
        )

    def _extra_state(self, mem: torch.Tensor, like: torch.Tensor) -> tuple[dict, bool]:
        """The extra state continuing from ``mem``, or zeros (shaped like ``like``) for a new membrane (or when the
        stored state is zero); and whether it is the stored state."""
        if self._extra_state_zero or not self._is_linked(mem):
            zeros = {
                name: torch.zeros_like(like, dtype=torch.long if name == "refractory" else like.dtype)
                for name in self._extra_state_names
            }
            return zeros, False
        detached = self._linked_mem_had_graph and not mem.requires_grad
        state = {}
        for name in self._extra_state_names:
            value = getattr(self, name)
            if name != "refractory":
                value = value.detach() if detached else value
                value = value.to(like.dtype)
            state[name] = value
        return state, True

    def _apply(self, fn, *args, **kwargs):
        # .to()/.double() replace self.mem; keep the extra state tied to the converted membrane
        before = self.mem
        linked = self._is_linked(before)
        result = super()._apply(fn, *args, **kwargs)
        if not linked:
            self._linked_mem = None
        elif self.mem is not before:
            self._link(self.mem)
        return result

    def reset_mem(self):
        """Zero the membrane (like ``Leaky.reset_mem``) and all extra state; returns the membrane."""
        mem = super().reset_mem()
        for name in self._extra_state_names:
            setattr(self, name, torch.zeros_like(getattr(self, name)))
        self._linked_mem = None
        self._extra_state_zero = True
        return mem


def _neuron_dtype(x: torch.Tensor, *tensors) -> torch.dtype:
    """The dtype snnTorch's arithmetic ends up in: 0-dim parameters do not promote the input (PyTorch's
    type promotion), per-neuron tensors (and a given membrane) do."""
    dtype = x.dtype
    for tensor in tensors:
        if tensor is not None and tensor.dim() > 0:
            dtype = torch.promote_types(dtype, tensor.dtype)
    return dtype


def _check_bool(name, value) -> bool:
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be a bool, not {value!r}")
    return value


def _check_time_first(x, who):
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{who} expects a torch.Tensor, not {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(
            f"{who} expects time-first input [T, ...] with at least one neuron dimension; got shape {tuple(x.shape)}"
        )


# ---------------------------------------------------------------------------------------------
# BlockLeaky
# ---------------------------------------------------------------------------------------------
class BlockLeaky(_LinkedStateMixin, snn.Leaky):
    """``snn.Leaky`` with a block-engine sequence mode and an optional absolute refractory period.

    Same constructor as ``snn.Leaky`` (same defaults, same buffers and parameters, same ``state_dict``
    keys) plus, keyword-only:

    * ``refractory_steps`` (int >= 0): after a spike the neuron ignores its input for R steps (its membrane
      is held, it cannot spike). R = 0 is exactly ``Leaky``.
    * ``sequence`` (bool): when True, ``forward(x)`` takes a whole time-first sequence [T, ...] and returns
      the spikes (and membranes) of all T steps, computed by the block engine (see ``forward_sequence``).
    * ``backend``: the engine provider ("auto", "torch", "numba", "reference").
    * ``check_finite`` (default True): the engine's NaN/Inf input check (see ``block_neuron``).

    Single steps (``sequence=False``): with R = 0 snnTorch's own ``Leaky.forward`` runs; with R > 0 the
    engine runs the step, honouring the refractory countdown (buffer ``refractory``, the engine's
    ``state["refractory"]``). ``inhibition`` and ``state_quant`` work in native single steps only.
    """

    def __init__(
        self,
        beta,
        threshold=1.0,
        spike_grad=None,
        surrogate_disable=False,
        init_hidden=False,
        inhibition=False,
        learn_beta=False,
        learn_threshold=False,
        reset_mechanism="subtract",
        state_quant=False,
        output=False,
        graded_spikes_factor=1.0,
        learn_graded_spikes_factor=False,
        reset_delay=True,
        *,
        refractory_steps: int = 0,
        sequence: bool = False,
        backend: str = "auto",
        check_finite: bool = True,
    ):
        refractory_steps = check_refractory_steps(refractory_steps)
        if refractory_steps > 0 and (inhibition or state_quant):
            feature = "inhibition" if inhibition else "state_quant"
            raise NotImplementedError(
                f"BlockLeaky supports {feature} only through snnTorch's own single-step forward "
                "(refractory_steps=0, sequence=False); the block engine has no such feature"
            )
        super().__init__(
            beta,
            threshold,
            spike_grad,
            surrogate_disable,
            init_hidden,
            inhibition,
            learn_beta,
            learn_threshold,
            reset_mechanism,
            state_quant,
            output,
            graded_spikes_factor,
            learn_graded_spikes_factor,
            reset_delay,
        )
        self.refractory_steps = refractory_steps
        self.sequence = bool(sequence)
        self.backend = backend
        self.check_finite = _check_bool("check_finite", check_finite)
        self._init_linked_state()
        self._prepare_for_compile()

    def extra_repr(self) -> str:
        return (
            f"reset_mechanism={self.reset_mechanism!r}, reset_delay={self.reset_delay}, "
            f"refractory_steps={self.refractory_steps}, sequence={self.sequence}, backend={self.backend!r}"
        )

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, input_, mem=None):
        """One step like ``Leaky.forward`` or, with ``sequence=True``, a whole sequence (``forward_sequence``)."""
        if self.sequence:
            return self.forward_sequence(input_, mem)
        if self.refractory_steps == 0:
            return super().forward(input_, mem)
        if not isinstance(input_, torch.Tensor) or input_.dim() == 0:
            raise ValueError("BlockLeaky with refractory_steps > 0 needs a tensor input with at least one dimension")
        spk, _ = self._run_engine(input_.unsqueeze(0), mem)
        return self._returns(spk[0], self.mem)

    def forward_sequence(self, x, mem=None):
        """Run a whole time-first sequence ``x`` [T, ...] through the block engine.

        ``mem`` (shape ``x.shape[1:]``, only with ``init_hidden=False``) is the initial membrane, as for
        ``Leaky.forward``; without it the neuron continues from ``self.mem`` (zeros when its shape does not
        match). Returns what ``forward`` returns for one step, over all steps: ``(spk, mem)`` of shape
        [T, ...] (``init_hidden=False`` or ``output=True``) or ``spk`` (``init_hidden=True``). Afterwards
        ``self.mem`` holds the last membrane, so calls chain like single steps do.
        """
        _check_time_first(x, "forward_sequence")
        spk, mem_seq = self._run_engine(x, mem)
        return self._returns(spk, mem_seq)

    def _returns(self, spk, mem):
        if self.output or not self.init_hidden:
            return spk, mem
        return spk

    def _engine_profile(self):
        if self.inhibition or self.state_quant:
            feature = "inhibition" if self.inhibition else "state_quant"
            raise NotImplementedError(
                f"{feature} is supported by snnTorch's own single-step forward only (refractory_steps=0, "
                "sequence=False), not by the block engine"
            )
        # Leaky picks its charge (state_function) at construction; reset_mechanism_val (e.g. loaded from a
        # checkpoint) drives only the immediate reset. The engine runs one consistent mechanism.
        charge = {
            snn.Leaky._base_sub: "subtract",
            snn.Leaky._base_zero: "zero",
            snn.Leaky._base_int: "none",
        }.get(getattr(self.state_function, "__func__", None))
        if charge is None:
            raise NotImplementedError("BlockLeaky's state_function was replaced; the block engine cannot run it")
        # a check that reads a buffer's value: eager only (has_data), so torch.compile traces no Python int()
        if not self.reset_delay and has_data(self.reset_mechanism_val):
            immediate = _RESET_NAMES[int(self.reset_mechanism_val)]
        else:
            immediate = charge
        if immediate != charge:
            raise ValueError(
                f"this neuron charges with reset {charge!r} (chosen at construction) but reset_mechanism_val says "
                f"{immediate!r} (e.g. a loaded checkpoint); snnTorch would mix both. Build the neuron with "
                f"reset_mechanism={immediate!r} before loading"
            )
        return make_profile(
            "snntorch_leaky",
            surrogate=_engine_surrogate_of(self),
            reset_mechanism=charge,
            reset_delay=bool(self.reset_delay),
        )

    def _run_engine(self, x, mem):
        if mem is not None and self.init_hidden:
            raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
        profile = self._engine_profile()
        incoming = self.mem if mem is None else mem
        if incoming.shape != x.shape[1:]:
            incoming = x.new_zeros(x.shape[1:])  # Leaky: a membrane of another shape restarts at zero
        dtype = _neuron_dtype(x, self.beta, self.threshold, incoming)
        if profile.reset_mechanism != "none":
            # the reset term is the spike function's output (float32 for snnTorch's surrogates): it promotes
            # the membrane from the first step on, so half-precision input runs in float32 as in snnTorch
            dtype = torch.promote_types(dtype, self._spike_dtype(x, dtype, graded=False))
        params = {
            "beta": self.beta.to(dtype),
            "threshold": self.threshold.to(dtype),
            "graded_spikes_factor": self.graded_spikes_factor.to(dtype),
        }
        extra, continued = self._extra_state(incoming, x.new_zeros(x.shape[1:]))
        state = {"v": incoming.to(dtype), "refractory": extra["refractory"]}
        result = block_neuron(
            x.to(dtype), profile, params, self.refractory_steps, state=state, backend=self.backend,
            check_finite=self.check_finite,
        )
        self._store(result, continued)
        return result.spikes.to(self._spike_dtype(x, dtype)), result.membrane

    def _spike_dtype(self, x, dtype, graded=True):
        # snnTorch's spikes have the dtype its spike function returns (float32 for all of snnTorch's own
        # surrogates, even for float64 input), promoted by graded_spikes_factor
        if torch.compiler.is_compiling():  # Dynamo cannot trace the probe; snnTorch's own surrogates give float32
            probe_dtype = torch.float32
        else:
            with torch.no_grad():
                probe_dtype = self.spike_grad(torch.zeros(1, dtype=dtype, device=x.device)).dtype
        if not graded or self.graded_spikes_factor.dim() == 0:  # a 0-dim factor does not promote (same category)
            return probe_dtype
        return torch.promote_types(probe_dtype, self.graded_spikes_factor.dtype)


# ---------------------------------------------------------------------------------------------
# BlockALIF
# ---------------------------------------------------------------------------------------------
class BlockALIF(_LinkedStateMixin, snn.Leaky):
    """Adaptive-threshold LIF in snnTorch's conventions (the engine's ``paper`` profile).

    Per step t, with U the membrane, a the adaptation, beta clamped to [0, 1] (as snnTorch does):

        U_t     = beta * U_{t-1} + X_t
        theta_t = threshold + adaptation_strength * a_{t-1}
        S_t     = H(U_t - theta_t)                  (strict ``>``, surrogate gradient ``spike_grad``)
        a_t     = adaptation_decay * a_{t-1} + S_t
        U_t    <- U_t * (1 - S_t)                   (reset to zero at once, detached)

    The returned membrane is the post-reset U_t. With ``refractory_steps=R`` the membrane is held at 0 and
    no spike can occur for R steps after a spike, while a keeps decaying. It subclasses ``snn.Leaky`` so
    ``snntorch.utils.reset`` and the ``init_hidden``/``output`` conventions apply: ``forward(x, mem)``
    returns ``(spk, mem)`` (or ``spk`` with ``init_hidden=True``); the adaptation ``a`` lives in the
    buffer ``adaptation`` and follows ``mem`` (see the module docstring). ``sequence=True`` (or
    ``forward_sequence``) takes a whole time-first sequence. beta must stay in (0, 1] (after the clamp) and
    threshold > 0; the engine raises otherwise. There are no graded spikes (``graded_spikes_factor`` must stay
    1) and no ``reset_mechanism``/``reset_delay`` choice. Not exported to NIR correctly (snnTorch would write
    a plain ``nir.LIF``).
    """

    _extra_state_names = ("adaptation", "refractory")

    def __init__(
        self,
        beta,
        threshold=1.0,
        adaptation_decay=0.9,
        adaptation_strength=1.0,
        spike_grad=None,
        surrogate_disable=False,
        init_hidden=False,
        learn_beta=False,
        learn_threshold=False,
        learn_adaptation=False,
        output=False,
        *,
        refractory_steps: int = 0,
        sequence: bool = False,
        backend: str = "auto",
        check_finite: bool = True,
    ):
        refractory_steps = check_refractory_steps(refractory_steps)
        super().__init__(
            beta,
            threshold,
            spike_grad,
            surrogate_disable,
            init_hidden,
            inhibition=False,
            learn_beta=learn_beta,
            learn_threshold=learn_threshold,
            reset_mechanism="zero",
            output=output,
            reset_delay=False,
        )
        for name, value in (("adaptation_decay", adaptation_decay), ("adaptation_strength", adaptation_strength)):
            tensor = value if isinstance(value, torch.Tensor) else torch.as_tensor(value)
            if learn_adaptation:
                setattr(self, name, nn.Parameter(tensor))
            else:
                self.register_buffer(name, tensor)
        self.refractory_steps = refractory_steps
        self.sequence = bool(sequence)
        self.backend = backend
        self.check_finite = _check_bool("check_finite", check_finite)
        self._init_linked_state()
        self._prepare_for_compile()

    def extra_repr(self) -> str:
        return f"refractory_steps={self.refractory_steps}, sequence={self.sequence}, backend={self.backend!r}"

    def forward(self, input_, mem=None):
        """One step (``sequence=False``) or a whole time-first sequence (``sequence=True``)."""
        if self.sequence:
            return self.forward_sequence(input_, mem)
        if not isinstance(input_, torch.Tensor) or input_.dim() == 0:
            raise ValueError("BlockALIF needs a tensor input with at least one dimension")
        spk, _ = self._run_engine(input_.unsqueeze(0), mem)
        return self._returns(spk[0], self.mem)

    def forward_sequence(self, x, mem=None):
        """Whole time-first sequence [T, ...]; returns like ``forward`` over all steps (see BlockLeaky)."""
        _check_time_first(x, "forward_sequence")
        return self._returns(*self._run_engine(x, mem))

    def _returns(self, spk, mem):
        if self.output or not self.init_hidden:
            return spk, mem
        return spk

    def _engine_profile(self):
        return make_profile("paper", surrogate=_engine_surrogate_of(self))

    def _run_engine(self, x, mem):
        if mem is not None and self.init_hidden:
            raise TypeError("`mem` should not be passed as an argument while `init_hidden=True`")
        if has_data(self.graded_spikes_factor) and bool((self.graded_spikes_factor != 1).any()):  # eager only
            raise ValueError(
                "BlockALIF has no graded spikes: graded_spikes_factor (a buffer kept for snnTorch compatibility, "
                "e.g. loaded from a checkpoint) must be 1"
            )
        incoming = self.mem if mem is None else mem
        if incoming.shape != x.shape[1:]:
            incoming = x.new_zeros(x.shape[1:])
        tensors = (self.beta, self.threshold, self.adaptation_decay, self.adaptation_strength)
        dtype = _neuron_dtype(x, *tensors, incoming)
        profile = self._engine_profile()
        params = {
            "beta": self.beta.clamp(0, 1).to(dtype),
            "threshold": self.threshold.to(dtype),
            "adaptation_decay": self.adaptation_decay.to(dtype),
            "adaptation_strength": self.adaptation_strength.to(dtype),
        }
        like = x.new_zeros(x.shape[1:], dtype=dtype)
        extra, continued = self._extra_state(incoming, like)
        state = {"v": incoming.to(dtype), "a": extra["adaptation"], "refractory": extra["refractory"]}
        result = block_neuron(
            x.to(dtype), profile, params, self.refractory_steps, state=state, backend=self.backend,
            check_finite=self.check_finite,
        )
        self.adaptation = result.state["a"]
        self._store(result, continued)
        return result.spikes, result.membrane


# ---------------------------------------------------------------------------------------------
# convert / unconvert / reset
# ---------------------------------------------------------------------------------------------
def _charge_mechanism(neuron) -> str:
    return {
        snn.Leaky._base_sub: "subtract",
        snn.Leaky._base_zero: "zero",
        snn.Leaky._base_int: "none",
    }[neuron.state_function.__func__]


def _swap(source, target_cls, **extra):
    """A ``target_cls`` neuron with ``source``'s configuration, sharing its parameter and buffer tensors."""
    target = target_cls(
        source.beta.detach(),
        source.threshold.detach(),
        spike_grad=None,
        surrogate_disable=False,
        init_hidden=source.init_hidden,
        inhibition=source.inhibition,
        learn_beta=isinstance(source.beta, nn.Parameter),
        learn_threshold=isinstance(source.threshold, nn.Parameter),
        reset_mechanism=_charge_mechanism(source),
        state_quant=source.state_quant,
        output=source.output,
        graded_spikes_factor=source.graded_spikes_factor.detach(),
        learn_graded_spikes_factor=isinstance(source.graded_spikes_factor, nn.Parameter),
        reset_delay=source.reset_delay,
        **extra,
    )
    target.spike_grad = source.spike_grad  # the very callable (surrogate_disable's bypass included)
    target.surrogate_disable = source.surrogate_disable
    for name, parameter in source._parameters.items():
        setattr(target, name, parameter)
    for name, buffer in source._buffers.items():
        if name in target._buffers:
            target._buffers[name] = buffer
    target.train(source.training)
    if isinstance(target, _LinkedStateMixin):
        target._prepare_for_compile()  # for the surrogate and buffers just set
    return target


def _replace_modules(model: nn.Module, wanted, make):
    """Replace every submodule for which ``wanted(m)`` (nested, in containers, attributes, shared ones once)."""
    made: dict[int, nn.Module] = {}

    def replacement(module):
        if id(module) not in made:
            made[id(module)] = make(module)
        return made[id(module)]

    if wanted(model):
        return replacement(model)
    for parent in list(model.modules()):
        for name, child in list(parent._modules.items()):
            if child is not None and wanted(child):
                parent._modules[name] = replacement(child)
    return model


def convert(model: nn.Module, refractory_steps: int = 0, *, sequence: bool | None = None, backend: str = "auto"):
    """Replace every ``snn.Leaky`` (exactly that class, not subclasses) in ``model`` by a ``BlockLeaky``.

    The new neurons share the old ones' parameter and buffer tensors (``beta``, ``threshold``,
    ``graded_spikes_factor``, ``reset_mechanism_val``, ``mem``) and copy their configuration
    (``spike_grad``, ``init_hidden``, ``output``, ``reset_delay``, ...), so results are unchanged at
    ``refractory_steps=0`` and an optimizer over ``model.parameters()`` stays valid. Modules are replaced
    in place inside their parents; the (possibly new) model is returned, since ``model`` itself may be a
    ``Leaky``. Hooks registered on the old neurons are not carried over.

    A ``BlockLeaky`` / ``BlockALIF`` already in ``model`` (converted before, or built as one) is kept and gets
    this call's ``refractory_steps`` and ``backend`` (and ``sequence`` when given; ``None``, the default,
    means False for new neurons and unchanged for existing ones), so after ``convert(model,
    refractory_steps=R)`` every neuron of ours has R.
    """
    refractory_steps = check_refractory_steps(refractory_steps)
    ours = [m for m in model.modules() if isinstance(m, _LinkedStateMixin)]
    if refractory_steps > 0:  # check everything before changing anything
        for module in ours:
            if module.inhibition or module.state_quant:
                feature = "inhibition" if module.inhibition else "state_quant"
                raise NotImplementedError(
                    f"cannot set refractory_steps={refractory_steps} on {module!r}: it uses {feature}, which only "
                    "snnTorch's own single-step forward supports (refractory_steps=0)"
                )
    for module in ours:
        module.refractory_steps = refractory_steps
        module.backend = backend
        if sequence is not None:
            module.sequence = bool(sequence)
    return _replace_modules(
        model,
        lambda m: type(m) is snn.Leaky,
        lambda m: _swap(m, BlockLeaky, refractory_steps=refractory_steps, sequence=bool(sequence), backend=backend),
    )


def unconvert(model: nn.Module):
    """The inverse of ``convert``: every ``BlockLeaky`` becomes an ``snn.Leaky`` (sharing tensors).

    Raises ValueError for a ``BlockLeaky`` with ``refractory_steps > 0`` or ``sequence=True`` (``Leaky``
    has neither). ``BlockALIF`` has no native counterpart and is left as it is.
    """
    for module in model.modules():
        if isinstance(module, BlockLeaky) and (module.refractory_steps > 0 or module.sequence):
            raise ValueError(
                "cannot unconvert a BlockLeaky with refractory_steps > 0 or sequence=True: snn.Leaky has no "
                f"refractory period and no sequence mode (found {module!r})"
            )
    return _replace_modules(model, lambda m: isinstance(m, BlockLeaky), lambda m: _swap(m, snn.Leaky))


def reset(net: nn.Module) -> None:
    """Zero (and detach) the state of every ``snn.Leaky`` in ``net``, nested ones included (snnTorch's
    ``utils.reset`` looks only at top-level children), with our extra state (refractory, adaptation)."""
    for module in net.modules():
        if isinstance(module, snn.Leaky):
            module.reset_mem()


# PSU / IPSU / RPSU / PPSU as snnTorch-style sequence modules (adapters.psu_snntorch), imported on first use
__getattr__ = psu_exports(__name__, "snn_blockbackend.adapters.psu_snntorch")
