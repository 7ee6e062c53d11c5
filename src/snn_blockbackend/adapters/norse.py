"""Norse adapter: block-engine neurons with Norse's classes, parameter tuples and ``(output, state)`` returns.

* Cells (one time step, input [batch, ...]): ``BlockLIFBoxCell``, ``BlockLIFCell``, ``BlockLSNNCell``,
  ``BlockLIFRefracCell``. Time-first modules (input [T, batch, ...], the whole sequence in one engine call):
  ``BlockLIF``, ``BlockLSNN`` and ``BlockLIFBox`` (Norse has no LIFBox time module; ours is the fast way to
  run a ``LIFBoxCell`` over a sequence). Each subclasses the Norse class of the same name (``LIFCell``,
  ``LIF``, ...), so ``isinstance`` checks, ``SequentialState`` and ``norse.torch.to_nir`` treat it as the
  native neuron.
* Constructor: Norse's parameter tuple ``p`` and ``dt``, plus ``refractory_steps`` (default 0),
  ``backend`` and ``check_finite`` (see ``functional.block_neuron``). The modules also take Norse's
  ``record_states``.
* Parameters are registered on the module, unlike Norse's tuples: a field of ``p`` that is an
  ``nn.Parameter`` is registered as it is (an optimizer holding it keeps working), another tensor that
  requires grad becomes a new ``nn.Parameter`` (a copy), everything else a non-persistent buffer (a copy).
  They follow ``.to()``; ``module.p`` is the equivalent Norse tuple built from them; assigning
  ``module.p = ...`` loads a new tuple. The ``state_dict`` is Norse's (no key for ``p``) plus the learnable
  fields, so checkpoints load strictly both ways (see ``_load_from_state_dict`` and docs/norse.md).
* Exactness (``refractory_steps=0``): every cell and module reproduces the installed Norse version bit for
  bit in the forward pass (spikes and every state variable), and its gradients to float rounding. The
  version matters: Norse 1.0's ``LIFCell``/``LIF``/``LIFRefracCell`` add the input to the synaptic current
  *after* the voltage update (the input reaches ``v`` one step later), Norse 1.1 before it; Norse 1.0's
  SuperSpike surrogate uses ``alpha``, Norse 1.1's ignores it (slope 1). ``PROFILE_VERSION`` says which
  applies. Dtypes as in Norse: ``dt * rate`` is evaluated in the parameters' dtype (a float32 product for
  Norse's defaults, also on float64 input); half-precision input keeps float32 parameters float32, and outside
  float32 input with float32 parameters the engine starts from Norse's own initial state (full float32, or a
  0-dim clone of ``v_leak``); a given state keeps its dtype. The engine's operations then promote as Norse's
  do, step by step (e.g. float16 input becomes float32 arithmetic where Norse's does). Other parameter dtype
  mixes are cast to the input's dtype.
* State: with ``refractory_steps=0`` the returned states are Norse's own NamedTuples
  (``LIFBoxFeedForwardState``, ``LIFFeedForwardState``, ``LSNNFeedForwardState``,
  ``LIFRefracFeedForwardState``). With ``refractory_steps=R > 0`` they are ``BlockLIFBoxState``,
  ``BlockLIFState`` and ``BlockLSNNState``: Norse's fields plus ``refractory``, the number of refractory
  steps each neuron still owes (an int64 tensor), so a cell called step by step keeps the refractory period
  across calls. Any state with the right field names is accepted as input (a missing ``refractory`` means
  no neuron is refractory). During the R steps after a spike ``v`` is held and no spike is emitted;
  ``i`` keeps integrating and LSNN's threshold ``b`` keeps relaxing.
* Surrogates: Norse's ``method="super"`` maps to the engine's ``superspike`` (alpha for Norse 1.0,
  slope 1 for 1.1), ``"heaviside"`` to ``heaviside``; ``"triangle"``, ``"tanh"``, ``"circ"`` and
  ``"heavi_erfc"`` call Norse's own ``threshold`` function per step (exact by construction). The adjoint
  method (``method="adjoint"`` / ``LSNNCell(adjoint=True)``) has no block counterpart and is refused.
* Norse 1.0.x built from source against another torch fails to import (its C++ op ``norse_op`` has
  undefined symbols; frameworks.md 0.7). Importing this adapter then retries with ``norse_op`` disabled
  (``sys.modules['norse_op'] = None``, which Norse 1.0 handles): only Norse's recurrent
  ``lif_step_integral`` becomes unavailable. ``NORSE_OP_DISABLED`` tells whether this happened; nothing is
  changed when Norse imports normally.

The neuron math lives in the engine's Norse profiles (``profiles.NorseLIFBox``, ``NorseLIF``, ``NorseLSNN``,
``NorseLIFRefrac``); this module only maps Norse's conventions onto them.
"""

from __future__ import annotations

import functools
import sys
import warnings
from typing import NamedTuple

import torch
from packaging.version import Version
from torch import nn

from .. import surrogate as sg
from ..functional import BlockResult, block_neuron, check_refractory_steps, prepare_kernels
from ..profiles import make_profile
from . import psu_exports
from .registry import NORSE

NORSE_VERSION: str = NORSE.require()
# the engine profiles' Norse semantics for the installed version (LIF input timing, SuperSpike slope)
PROFILE_VERSION: str = "1.0" if Version(NORSE_VERSION) < Version("1.1") else "1.1"
NORSE_OP_DISABLED: bool = False  # True when the norse_op workaround below was needed


def _is_broken_norse_op(error: ImportError) -> bool:
    """A norse_op extension that exists but cannot be loaded (not a missing one, which Norse handles)."""
    if isinstance(error, ModuleNotFoundError):
        return False
    return error.name == "norse_op" or "norse_op" in str(error)


def _import_norse():
    """``import norse.torch``, working around a broken ``norse_op`` extension of Norse 1.0.x.

    Norse 1.0 does ``try: import norse_op / except ModuleNotFoundError``; a ``norse_op.so`` compiled against
    another torch raises a plain ImportError (undefined symbol) instead, so Norse does not import at all.
    ``sys.modules['norse_op'] = None`` makes that import raise ModuleNotFoundError, which Norse handles.
    """
    global NORSE_OP_DISABLED
    # torch is already imported (module top): norse_op links against torch's libraries, which must be loaded
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script in Norse (torch 2.13)
            import norse.torch as norse_torch
    except ImportError as error:
        if not _is_broken_norse_op(error):
            raise
        # drop the partly imported Norse modules so that the retry executes them again
        for name in [name for name in sys.modules if name == "norse" or name.startswith("norse.")]:
            del sys.modules[name]
        sys.modules["norse_op"] = None
        NORSE_OP_DISABLED = True
        warnings.warn(
            f"norse {NORSE_VERSION}'s C++ extension norse_op cannot be loaded with torch {torch.__version__} "
            f"({error}); snn_blockbackend imported Norse without it (only norse's lif_step_integral is "
            "affected). Rebuild Norse with --no-build-isolation against this torch to remove this warning.",
            RuntimeWarning,
            stacklevel=3,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            import norse.torch as norse_torch
    return norse_torch


norse_torch = _import_norse()

from norse.torch.functional.lif import LIFFeedForwardState, LIFParameters  # noqa: E402
from norse.torch.functional.lif_box import LIFBoxFeedForwardState, LIFBoxParameters  # noqa: E402
from norse.torch.functional.lif_refrac import LIFRefracFeedForwardState, LIFRefracParameters  # noqa: E402
from norse.torch.functional.lsnn import LSNNFeedForwardState, LSNNParameters  # noqa: E402
from norse.torch.functional.lsnn import lsnn_feed_forward_step as _lsnn_feed_forward_step  # noqa: E402
from norse.torch.functional.threshold import threshold as _norse_threshold  # noqa: E402
from norse.torch.module.lif import LIF, LIFCell  # noqa: E402
from norse.torch.module.lif_box import LIFBoxCell  # noqa: E402
from norse.torch.module.lif_refrac import LIFRefracCell  # noqa: E402
from norse.torch.module.lsnn import LSNN, LSNNCell  # noqa: E402
from norse.torch.module.snn import _merge_states  # noqa: E402

try:  # Norse 1.1: LIFBoxParameters.reset_method
    from norse.torch.functional.reset import reset_subtract, reset_value
except ImportError:  # Norse 1.0: LIFBox always resets to v_reset
    reset_subtract = reset_value = None

__all__ = [
    "BlockLIF",
    "BlockLIFBox",
    "BlockLIFBoxCell",
    "BlockLIFBoxState",
    "BlockLIFCell",
    "BlockLIFRefracCell",
    "BlockLIFState",
    "BlockLSNN",
    "BlockLSNNCell",
    "BlockLSNNState",
    "NORSE_OP_DISABLED",
    "NORSE_VERSION",
    "PROFILE_VERSION",
    "convert",
    "engine_surrogate",
    "unconvert",
]


# ---------------------------------------------------------------------------------------------
# states with a refractory countdown (refractory_steps > 0)
# ---------------------------------------------------------------------------------------------
class BlockLIFBoxState(NamedTuple):
    """``LIFBoxFeedForwardState`` plus ``refractory``: refractory steps still owed (int64)."""

    v: torch.Tensor
    refractory: torch.Tensor


class BlockLIFState(NamedTuple):
    """``LIFFeedForwardState`` plus ``refractory``: refractory steps still owed (int64)."""

    v: torch.Tensor
    i: torch.Tensor
    refractory: torch.Tensor


class BlockLSNNState(NamedTuple):
    """``LSNNFeedForwardState`` plus ``refractory``: refractory steps still owed (int64)."""

    v: torch.Tensor
    i: torch.Tensor
    b: torch.Tensor
    refractory: torch.Tensor


# ---------------------------------------------------------------------------------------------
# surrogate mapping
# ---------------------------------------------------------------------------------------------
_NORSE_THRESHOLD_METHODS = ("triangle", "tanh", "circ", "heavi_erfc")


class _NorseThreshold:
    """Norse's own ``threshold(margin, method, alpha)`` as the engine's spike function (forward ``margin > 0``)."""

    def __init__(self, method: str, alpha):
        self.method = method
        self.alpha = alpha

    def __call__(self, margin: torch.Tensor) -> torch.Tensor:
        return _norse_threshold(margin, self.method, self.alpha)

    def __repr__(self) -> str:
        return f"norse.threshold(method={self.method!r}, alpha={self.alpha})"


def engine_surrogate(method: str, alpha, version: str = PROFILE_VERSION):
    """The engine's spike function for Norse's ``method``/``alpha`` under Norse ``version`` semantics.

    ``"super"``: SuperSpike ``grad / (alpha*|x| + 1)^2``; Norse 1.0 passes ``torch.as_tensor(alpha)``
    (float32 for a Python float), Norse 1.1's backward ignores alpha (slope 1).
    """
    if method == "super":
        if version == "1.0":
            return sg.superspike(float(torch.as_tensor(alpha)))
        return sg.superspike(1.0)
    if method == "heaviside":
        return sg.heaviside()
    if method in _NORSE_THRESHOLD_METHODS:
        return _NorseThreshold(method, alpha)
    if method == "adjoint":
        raise ValueError(
            "method='adjoint' (Norse's adjoint-method gradients) has no block-engine counterpart; "
            "use method='super' or another surrogate method"
        )
    raise ValueError(
        f"unknown Norse threshold method {method!r}; supported: "
        f"{('super', 'heaviside') + _NORSE_THRESHOLD_METHODS}"
    )


# ---------------------------------------------------------------------------------------------
# shared machinery
# ---------------------------------------------------------------------------------------------
class _BlockNorseNeuron:
    """Mixed into a Norse ``SNNCell``/``SNN`` subclass (listed first, so its methods win).

    Subclasses set:
    ``_params_type`` (Norse tuple type), ``_tensor_fields`` (its tensor fields), ``_rate_fields`` (those
    multiplied by ``dt``), ``_profile_name``, ``_state_fields``, ``_norse_state`` (R = 0 output type),
    ``_block_state`` (R > 0 output type, None when R must be 0), ``_time_first``.
    """

    _params_type: type
    _tensor_fields: tuple[str, ...]
    _rate_fields: tuple[str, ...] = ("tau_syn_inv", "tau_mem_inv", "tau_adapt_inv")
    _profile_name: str
    _state_fields: tuple[str, ...]
    _norse_state: type
    _block_state: type | None
    _time_first: bool = False
    # Norse's LIFBoxCell, LIFCell and LIF take bool/integer input; LSNN and LIFRefrac fail on it (their initial
    # state has the input's dtype), and so do ours, with the engine's clear message
    _accepts_integer_input: bool = False
    # Norse's initial state per field, as its class builds it (norse/torch/module/*.py, ``initial_state``): kind
    # "input" = torch.full over the neuron shape in the input's dtype, "float32" = the same in float32, "clone" =
    # a clone of the parameter (its dtype and shape); the value is that parameter (None: zeros)
    _initial_fields: dict[str, tuple[str, str | None]]
    _convert_alpha: bool = False  # LIFCell/LIF store torch.as_tensor(alpha); the others keep it as given

    def _setup(self, p, dt, refractory_steps, backend, check_finite, record_states=None):
        nn.Module.__init__(self)  # the Norse base __init__ is not run: it would store p as a plain tuple
        if self._block_state is None and refractory_steps != 0:
            raise ValueError(
                f"{type(self).__name__} has its own refractory counter (rho_reset); refractory_steps must be 0"
            )
        self.refractory_steps = check_refractory_steps(refractory_steps)
        if isinstance(dt, bool) or not isinstance(dt, (int, float)) or not dt > 0:
            raise ValueError(f"dt must be a positive float, not {dt!r}")
        self.dt = float(dt)
        self.backend = backend
        self.check_finite = check_finite
        if record_states is not None:
            self.record_states = bool(record_states)
        # Norse's SNNCell/SNN attributes, for code that inspects them
        self.activation = None
        self.activation_sparse = None
        self.state_fallback = self.initial_state
        self.p = p

    # -- parameters -------------------------------------------------------------------------------
    def _tuple_fields(self, p) -> dict:
        """The tensor fields of a Norse tuple by name (the names they are registered under)."""
        return {name: getattr(p, name) for name in self._tensor_fields}

    def _check_tuple(self, p):
        if not isinstance(p, self._params_type):
            raise TypeError(
                f"{type(self).__name__} takes a norse {self._params_type.__name__}, not {type(p).__name__}"
            )

    @staticmethod
    def _as_tensor(name, value):
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = torch.as_tensor(value)  # as Norse does (float32 for a Python float)
        if not isinstance(value, torch.Tensor) or value.dtype == torch.bool or value.is_complex():
            raise TypeError(f"Norse parameter {name!r} must be a float or a floating-point tensor, not {value!r}")
        if not value.is_floating_point():
            # an integer parameter (LIFParameters(tau_syn_inv=torch.as_tensor(42)), v_reset=0): Norse's first
            # use of it (dt * rate, or arithmetic with its float32 state) promotes it to the default float dtype
            value = value.to(torch.get_default_dtype())
        return value

    def _register(self, name, value):
        self._parameters.pop(name, None)
        self._buffers.pop(name, None)
        self._non_persistent_buffers_set.discard(name)
        if isinstance(value, nn.Parameter):
            self.register_parameter(name, value)
        elif value.requires_grad:
            self.register_parameter(name, nn.Parameter(value.detach().clone()))
        else:
            # Norse keeps p as constructor configuration, outside its state_dict: so do we for the fixed fields,
            # so that checkpoints load strictly both ways (see _load_from_state_dict)
            self.register_buffer(name, value.detach().clone(), persistent=False)

    def _load_from_state_dict(self, state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys,
                              error_msgs):  # fmt: skip
        """Checkpoints in Norse's layout load strictly: a native module's state_dict has no key for ``p``, so a
        missing learnable field keeps its constructor value (as loading into the native class does). A fixed
        field found in the checkpoint (one saved before the fields became non-persistent) is loaded too."""
        for name in self._tensor_fields:
            key = prefix + name
            if name in self._buffers and key in state_dict:
                value, buffer = state_dict[key], self._buffers[name]
                if not isinstance(value, torch.Tensor) or value.shape != buffer.shape:
                    error_msgs.append(
                        f"size mismatch for {key}: copying a param with shape {getattr(value, 'shape', value)} "
                        f"from checkpoint, the shape in current model is {buffer.shape}."
                    )
                    continue
                with torch.no_grad():
                    buffer.copy_(value)
        missing_before = len(missing_keys)
        super()._load_from_state_dict(
            state_dict, prefix, local_metadata, strict, missing_keys, unexpected_keys, error_msgs
        )
        ours = {prefix + name for name in self._tensor_fields}
        missing_keys[missing_before:] = [key for key in missing_keys[missing_before:] if key not in ours]
        unexpected_keys[:] = [key for key in unexpected_keys if key not in ours]

    def _load(self, p):
        # validate everything before changing anything (``module.p = ...`` on a working module)
        self._check_tuple(p)
        tensors = {name: self._as_tensor(name, value) for name, value in self._tuple_fields(p).items()}
        method, alpha = self._method_alpha(p)
        alpha = torch.as_tensor(alpha) if self._convert_alpha else alpha
        engine_surrogate(method, alpha)  # raises for unsupported methods
        self._configure(p)
        self.method, self.alpha = method, alpha
        for name, value in tensors.items():
            self._register(name, value)
        self._set_profile()

    def _set_profile(self):
        self.profile = make_profile(self._profile_name, **self._profile_options())
        prepare_kernels(self.profile)

    def _method_alpha(self, p):
        return p.method, p.alpha

    def _configure(self, p):
        """Subclass hook: read non-tensor options (e.g. LIFBox's reset_method) from ``p``."""

    def _profile_options(self) -> dict:
        return {"surrogate": engine_surrogate(self.method, self.alpha), "version": PROFILE_VERSION}

    # the engine's surrogates are closures, which pickle cannot store: torch.save(model) stores the module
    # without its profile, and loading rebuilds it from method/alpha (as torch.save works for Norse's own)
    def __getstate__(self):
        state = self.__dict__.copy()
        state.pop("profile", None)
        return state

    def __setstate__(self, state):
        nn.Module.__setstate__(self, state)
        self._set_profile()

    @property
    def p(self):
        """The equivalent Norse parameter tuple, built from this module's parameters and buffers."""
        return self._make_tuple({name: getattr(self, name) for name in self._tensor_fields})

    @p.setter
    def p(self, value):
        self._load(value)

    def _make_tuple(self, tensors):
        return self._params_type(**tensors, method=self.method, alpha=self.alpha)

    def _engine_params(self, x: torch.Tensor) -> dict:
        # Norse evaluates ``dt * rate`` first, a Python float times the parameter tensor (in the parameter's
        # dtype: float32 for its defaults); the engine gets those very products as rates with dt = 1 (exact:
        # 1.0 * r == r in any dtype). Half-precision input: the parameters keep their (wider) dtype, as in
        # Norse, and promote per operation. Other dtype mixes are cast to the input's dtype.
        narrower = torch.promote_types(x.dtype, torch.float32) != x.dtype
        params = {}
        for name in self._tensor_fields:
            value = getattr(self, name)
            if name in self._rate_fields:
                value = self.dt * value
            params[name] = value if narrower or value.dtype == x.dtype else value.to(x.dtype)
        params["dt"] = 1.0
        return params

    # -- state --------------------------------------------------------------------------------------
    def _state_values(self, state) -> dict:
        """Norse state -> {engine name: tensor} (subclasses with nested states override)."""
        values = {}
        for name in self._state_fields:
            if not hasattr(state, name):
                raise TypeError(
                    f"{type(self).__name__} expects a state with fields {self._state_fields} "
                    f"(e.g. {self._norse_state.__name__}), got {type(state).__name__}"
                )
            values[name] = getattr(state, name)
        return values

    def _norse_initial_state(self, x: torch.Tensor) -> dict:
        """Norse's own initial state for the engine input ``x`` ([T, ...]), built as its class's ``initial_state``
        builds it (``_initial_fields``), without its ``v.requires_grad = True`` (which torch.compile cannot trace)."""
        state = {}
        for name, (kind, source) in self._initial_fields.items():
            value = getattr(self, source).detach() if source is not None else None
            if kind == "clone":
                state[name] = value.clone()
                continue
            dtype = x.dtype if kind == "input" else torch.float32
            zeros = torch.zeros(x.shape[1:], dtype=dtype, device=x.device)
            state[name] = zeros if value is None else zeros + value.to(dtype)  # torch.full(shape, value, dtype)
        return state

    def _initial_state(self, x: torch.Tensor) -> dict | None:
        """The engine's initial state. Norse's ``initial_state`` marks ``v`` as requiring grad, so a native
        neuron's output has a graph even for input that has none (``z.sum().backward()`` works); ours does too.
        Only where nothing else gives the output a graph: a grad-requiring state costs the engine a backward
        pass for a leaf nobody reads.

        Outside float32 input with float32 parameters, Norse's own initial state as it builds it: its dtypes
        and shapes decide how its first steps promote (LIFCell 1.0 and the LIF module: full float32 ``v`` and
        ``i`` whatever the input's dtype; LIFBoxCell 1.1 and LIFCell 1.1: ``v`` a clone of ``v_leak``, 0-dim
        float32 for Norse's defaults; LSNNCell: ``b`` the 0-dim ``v_th``), and the engine keeps them."""
        tensors = [getattr(self, name) for name in self._tensor_fields]
        needs_graph = torch.is_grad_enabled() and not (x.requires_grad or any(t.requires_grad for t in tensors))
        if x.dtype != torch.float32 or any(t.dtype != x.dtype for t in tensors):
            initial = self._norse_initial_state(x)
        elif needs_graph:
            initial = self.profile.initial_state(self._engine_params(x), x[0])
        else:
            return None  # the engine builds the same state itself
        initial["v"] = initial["v"].detach().requires_grad_(needs_graph)
        return initial

    def _engine_state(self, state, x: torch.Tensor) -> dict | None:
        if state is None:
            return self._initial_state(x)
        shape = x.shape[1:]
        out = {}
        for name, value in self._state_values(state).items():
            value = torch.as_tensor(value, device=x.device)
            if not value.is_floating_point():
                value = value.to(x.dtype)
            # a floating state keeps its dtype and shape: the engine's operations promote as Norse's do (a
            # float32 state makes half-precision input compute in float32 from there on, as in Norse)
            out[name] = self._broadcast(name, value, shape)
        countdown = getattr(state, "refractory", None)
        if countdown is not None:
            countdown = torch.as_tensor(countdown, device=x.device)
            if countdown.is_floating_point() or countdown.dtype == torch.bool:
                raise TypeError(f"state 'refractory' must be an integer tensor, got {countdown.dtype}")
            out["refractory"] = self._broadcast("refractory", countdown.long(), shape)
        return out

    def _broadcast(self, name, value, shape):
        """``value`` checked to broadcast to the neuron shape (the engine expands it where that changes nothing)."""
        try:
            fits = torch.broadcast_shapes(value.shape, shape) == shape
        except RuntimeError:
            fits = False
        if not fits:
            raise ValueError(
                f"state {name!r} of shape {tuple(value.shape)} does not fit the input's neuron shape {tuple(shape)}"
            )
        return value

    def _output_state(self, final: dict):
        if self.refractory_steps > 0:
            fields = {name: final[name] for name in self._state_fields}
            return self._block_state(**fields, refractory=final["refractory"])
        return self._norse_state(**{name: final[name] for name in self._state_fields})

    # -- running ------------------------------------------------------------------------------------
    def _check_input(self, x, state=None) -> torch.Tensor:
        """``x`` checked (and, where Norse accepts bool/integer input, converted to the float dtype it computes in)."""
        if not isinstance(x, torch.Tensor):
            raise TypeError(f"input must be a torch.Tensor, not {type(x).__name__}")
        if x.is_sparse:
            raise TypeError("sparse input is not supported by the block engine; pass input.to_dense()")
        need = 2 if self._time_first else 1
        if x.dim() < need:
            what = "time-first [T, ...] with at least one neuron dimension" if self._time_first else "[batch, ...]"
            raise ValueError(f"{type(self).__name__} takes input of shape {what}; got shape {tuple(x.shape)}")
        if x.is_floating_point():
            return x
        if x.is_complex() or not self._accepts_integer_input:
            raise TypeError(
                f"{type(self).__name__} takes floating-point input (Norse's "
                f"{getattr(_NATIVE_OF.get(type(self)), '__name__', 'neuron')} fails on other input too); got dtype "
                f"{x.dtype}, convert it with x.float()"
            )
        # Norse's LIFBoxCell/LIFCell/LIF add a bool/integer input to their float state (x + v_leak, i + x): the
        # arithmetic runs in the parameters' (and a given state's) float dtype
        dtype = functools.reduce(torch.promote_types, (getattr(self, name).dtype for name in self._tensor_fields))
        if state is not None:
            for value in self._state_values(state).values():
                if isinstance(value, torch.Tensor) and value.is_floating_point():
                    dtype = torch.promote_types(dtype, value.dtype)
        return x.to(dtype)

    def _run(self, x: torch.Tensor, state) -> BlockResult:
        return block_neuron(
            x,
            self.profile,
            self._engine_params(x),
            self.refractory_steps,
            state=self._engine_state(state, x),
            backend=self.backend,
            check_finite=self.check_finite,
        )

    def _step(self, input_tensor, state):
        result = self._run(input_tensor.unsqueeze(0), state)
        return result.spikes[0], self._output_state(result.state)

    def forward(self, input_tensor: torch.Tensor, state=None):
        """Cells: one step ``[batch, ...] -> (spikes, state)``; modules: ``[T, batch, ...] -> (spikes[T], state)``."""
        input_tensor = self._check_input(input_tensor, state)
        if not self._time_first:
            return self._step(input_tensor, state)
        if getattr(self, "record_states", False):
            # per-step states are requested: step through the sequence (unbind, no quadratic x[t] backward)
            outputs, states = [], []
            for xt in input_tensor.unbind(0):
                z, state = self._step(xt, state)
                outputs.append(z)
                states.append(state)
            return torch.stack(outputs), _merge_states(states)
        result = self._run(input_tensor, state)
        return result.spikes, self._output_state(result.state)

    def extra_repr(self) -> str:
        return (
            f"p={self.p}, dt={self.dt}, refractory_steps={self.refractory_steps}, backend={self.backend!r}, "
            f"norse_semantics={PROFILE_VERSION!r}"
        )


# ---------------------------------------------------------------------------------------------
# LIFBox
# ---------------------------------------------------------------------------------------------
class _LIFBoxMixin(_BlockNorseNeuron):
    _params_type = LIFBoxParameters
    _tensor_fields = ("tau_mem_inv", "v_leak", "v_th", "v_reset")
    _profile_name = "norse_lif_box"
    _state_fields = ("v",)
    _norse_state = LIFBoxFeedForwardState
    _block_state = BlockLIFBoxState
    # LIFBoxCell 1.0: v = full(shape, v_leak, dtype=float32); 1.1: v = clone(v_leak). BlockLIFBox loops the cell.
    _initial_fields = {"v": ("float32" if PROFILE_VERSION == "1.0" else "clone", "v_leak")}
    _accepts_integer_input = True
    reset_method = "value"

    def _configure(self, p):
        method = getattr(p, "reset_method", None)  # Norse 1.1 only
        if method is None or method is reset_value:
            self.reset_method = "value"
        elif method is reset_subtract:
            self.reset_method = "subtract"
        else:
            raise ValueError(
                "LIFBoxParameters.reset_method must be norse's reset_value or reset_subtract; "
                f"a custom reset function ({method!r}) has no block-engine counterpart"
            )

    def _profile_options(self):
        return {**super()._profile_options(), "reset_method": self.reset_method}

    def _make_tuple(self, tensors):
        if reset_value is None:  # Norse 1.0
            return super()._make_tuple(tensors)
        reset = reset_subtract if self.reset_method == "subtract" else reset_value
        return self._params_type(**tensors, method=self.method, alpha=self.alpha, reset_method=reset)


class BlockLIFBoxCell(_LIFBoxMixin, LIFBoxCell):
    """Norse ``LIFBoxCell`` on the block engine (profile ``norse_lif_box``), plus ``refractory_steps``.

    ``v' = v + dt*tau_mem_inv*((x + v_leak) - v)``, spike iff ``v' > v_th``, reset to ``v_reset`` (or, Norse
    1.1 ``reset_method=reset_subtract``, subtract ``v_th``). Exports to NIR as ``nir.LIF`` like ``LIFBoxCell``.
    """

    def __init__(
        self,
        p: LIFBoxParameters = LIFBoxParameters(),
        dt: float = 0.001,
        refractory_steps: int = 0,
        backend: str = "auto",
        check_finite: bool = True,
    ):
        self._setup(p, dt, refractory_steps, backend, check_finite)


class BlockLIFBox(_LIFBoxMixin, nn.Module):
    """``BlockLIFBoxCell`` over a whole time-first sequence [T, batch, ...] in one engine call (Norse has no
    LIFBox time module; this equals looping ``LIFBoxCell`` over ``x.unbind(0)``)."""

    _time_first = True

    def __init__(
        self,
        p: LIFBoxParameters = LIFBoxParameters(),
        dt: float = 0.001,
        refractory_steps: int = 0,
        record_states: bool = False,
        backend: str = "auto",
        check_finite: bool = True,
    ):
        self._setup(p, dt, refractory_steps, backend, check_finite, record_states)

    def initial_state(self, input_tensor):
        return None  # the engine starts from v = v_leak



# ---------------------------------------------------------------------------------------------
# LIF (current-based)
# ---------------------------------------------------------------------------------------------
class _LIFMixin(_BlockNorseNeuron):
    _params_type = LIFParameters
    _tensor_fields = ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset")
    _profile_name = "norse_lif"
    _state_fields = ("v", "i")
    _norse_state = LIFFeedForwardState
    _block_state = BlockLIFState
    # LIFCell 1.0: v = full(..., v_leak, dtype=float32); 1.1: v = clone(v_leak); i: float32 zeros in both
    _initial_fields = {"v": ("float32" if PROFILE_VERSION == "1.0" else "clone", "v_leak"), "i": ("float32", None)}
    _accepts_integer_input = True
    _convert_alpha = True


class BlockLIFCell(_LIFMixin, LIFCell):
    """Norse ``LIFCell`` (current-based LIF) on the block engine (profile ``norse_lif``), plus
    ``refractory_steps``. The input timing follows the installed Norse (see ``PROFILE_VERSION``). Exports to
    NIR as ``nir.CubaLIF`` like ``LIFCell`` (the refractory period has no NIR counterpart)."""

    def __init__(
        self,
        p: LIFParameters = LIFParameters(),
        dt: float = 0.001,
        refractory_steps: int = 0,
        backend: str = "auto",
        check_finite: bool = True,
    ):
        self._setup(p, dt, refractory_steps, backend, check_finite)


class BlockLIF(_LIFMixin, LIF):
    """Norse ``LIF`` (time-first ``LIFCell``): the whole sequence in one engine call, so the backward pass
    does not pay for Norse's per-step ``input[ts]`` indexing (quadratic in T)."""

    _time_first = True
    _initial_fields = {"v": ("float32", "v_leak"), "i": ("float32", None)}  # LIF (1.0 and 1.1): full float32

    def __init__(
        self,
        p: LIFParameters = LIFParameters(),
        dt: float = 0.001,
        refractory_steps: int = 0,
        record_states: bool = False,
        backend: str = "auto",
        check_finite: bool = True,
    ):
        self._setup(p, dt, refractory_steps, backend, check_finite, record_states)


# ---------------------------------------------------------------------------------------------
# LSNN (adaptive threshold)
# ---------------------------------------------------------------------------------------------
class _LSNNMixin(_BlockNorseNeuron):
    _params_type = LSNNParameters
    _tensor_fields = ("tau_syn_inv", "tau_mem_inv", "tau_adapt_inv", "v_leak", "v_th", "v_reset", "beta")
    _profile_name = "norse_lsnn"
    _state_fields = ("v", "i", "b")
    _norse_state = LSNNFeedForwardState
    _block_state = BlockLSNNState
    # LSNNCell (1.0 and 1.1): v, i in the input's dtype, b = v_th.detach() (the parameter itself, 0-dim)
    _initial_fields = {"v": ("input", "v_leak"), "i": ("input", None), "b": ("clone", "v_th")}

    def _setup_lsnn(self, p, dt, refractory_steps, backend, check_finite, adjoint, record_states=None):
        if adjoint:
            raise ValueError("adjoint=True (Norse's adjoint-method gradients) has no block-engine counterpart")
        self._setup(p, dt, refractory_steps, backend, check_finite, record_states)


class BlockLSNNCell(_LSNNMixin, LSNNCell):
    """Norse ``LSNNCell`` (adaptive threshold ``b``; the input reaches ``i`` after the update, in both Norse
    versions) on the block engine (profile ``norse_lsnn``), plus ``refractory_steps``."""

    def __init__(
        self,
        p: LSNNParameters = LSNNParameters(),
        adjoint: bool = False,
        dt: float = 0.001,
        refractory_steps: int = 0,
        backend: str = "auto",
        check_finite: bool = True,
    ):
        self._setup_lsnn(p, dt, refractory_steps, backend, check_finite, adjoint)


class BlockLSNN(_LSNNMixin, LSNN):
    """Norse ``LSNN`` (time-first ``LSNNCell``): the whole sequence in one engine call."""

    _time_first = True
    _initial_fields = {"v": ("input", "v_leak"), "i": ("input", None), "b": ("input", "v_th")}  # LSNN: all full

    def __init__(
        self,
        p: LSNNParameters = LSNNParameters(),
        adjoint: bool = False,
        dt: float = 0.001,
        refractory_steps: int = 0,
        record_states: bool = False,
        backend: str = "auto",
        check_finite: bool = True,
    ):
        self._setup_lsnn(p, dt, refractory_steps, backend, check_finite, adjoint, record_states)


# ---------------------------------------------------------------------------------------------
# LIFRefrac (Norse's own refractory counter rho, including its gradient)
# ---------------------------------------------------------------------------------------------
class BlockLIFRefracCell(_BlockNorseNeuron, LIFRefracCell):
    """Norse ``LIFRefracCell`` on the block engine (profile ``norse_lif_refrac``): forward and gradient of
    Norse's refractory counter ``rho`` (parameter ``rho_reset``). ``refractory_steps`` does not apply (it
    must stay 0); for a refractory period without ``rho``'s surrogate gradient use
    ``BlockLIFCell(refractory_steps=R)``, whose forward pass equals this cell's with ``rho_reset=R``."""

    _params_type = LIFRefracParameters
    _tensor_fields = ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset", "rho_reset")
    _lif_fields = ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset")
    _profile_name = "norse_lif_refrac"
    _state_fields = ("v", "i", "rho")
    _initial_fields = {"v": ("input", "v_leak"), "i": ("input", None), "rho": ("input", None)}
    _norse_state = LIFRefracFeedForwardState
    _block_state = None

    def __init__(
        self,
        p: LIFRefracParameters = LIFRefracParameters(),
        dt: float = 0.001,
        backend: str = "auto",
        check_finite: bool = True,
    ):
        self._setup(p, dt, 0, backend, check_finite)

    def _check_tuple(self, p):
        super()._check_tuple(p)
        if not isinstance(p.lif, LIFParameters):
            raise TypeError(f"LIFRefracParameters.lif must be a norse LIFParameters, not {type(p.lif).__name__}")

    def _tuple_fields(self, p):
        return {**{name: getattr(p.lif, name) for name in self._lif_fields}, "rho_reset": p.rho_reset}

    def _method_alpha(self, p):
        return p.lif.method, p.lif.alpha

    def _make_tuple(self, tensors):
        lif = LIFParameters(**{name: tensors[name] for name in self._lif_fields}, method=self.method, alpha=self.alpha)
        return LIFRefracParameters(lif=lif, rho_reset=tensors["rho_reset"])

    def _state_values(self, state):
        if not (hasattr(state, "lif") and hasattr(state, "rho")):
            raise TypeError(f"BlockLIFRefracCell expects a LIFRefracFeedForwardState, got {type(state).__name__}")
        return {"v": state.lif.v, "i": state.lif.i, "rho": state.rho}

    def _output_state(self, final):
        return LIFRefracFeedForwardState(LIFFeedForwardState(v=final["v"], i=final["i"]), rho=final["rho"])


# ---------------------------------------------------------------------------------------------
# swapping the neurons of an existing model
# ---------------------------------------------------------------------------------------------
_BLOCK_OF = {
    LIFBoxCell: BlockLIFBoxCell,
    LIFCell: BlockLIFCell,
    LIF: BlockLIF,
    LSNNCell: BlockLSNNCell,
    LSNN: BlockLSNN,
    LIFRefracCell: BlockLIFRefracCell,
}
_NATIVE_OF = {block: native for native, block in _BLOCK_OF.items()}


def _swap(model: nn.Module, make) -> nn.Module:
    done: dict[int, nn.Module] = {}  # a module used at several places is replaced by one new module

    def replace(module):
        if id(module) not in done:
            done[id(module)] = make(module)
        return done[id(module)]

    top = replace(model)
    if top is not None:
        return top
    for parent in list(model.modules()):
        for name, child in list(parent.named_children()):
            replacement = replace(child)
            if replacement is not None:
                setattr(parent, name, replacement)
    return model


def convert(model: nn.Module, refractory_steps: int = 0, backend: str = "auto") -> nn.Module:
    """Replace every Norse ``LIFBoxCell``, ``LIFCell``, ``LIF``, ``LSNNCell``, ``LSNN`` and ``LIFRefracCell``
    in ``model`` (nested too; exact types, so subclasses are left alone) by its block counterpart, in place;
    returns the model (or the replacement when ``model`` itself is such a neuron).

    The new modules take the old ones' ``p``, ``dt`` (and ``record_states``); as for any construction, a
    tensor of ``p`` that is an ``nn.Parameter`` is adopted, another one that requires grad is copied into a
    new ``nn.Parameter``: build the optimizer after converting. ``refractory_steps`` applies to all but
    ``LIFRefracCell`` (which keeps its own counter).

    A block neuron already in ``model`` (converted before, or built as one) is kept and gets this call's
    ``refractory_steps`` and ``backend``, so ``convert(model, refractory_steps=R)`` always leaves every neuron
    with R (``BlockLIFBox``, which has no Norse counterpart, included).
    """
    refractory_steps = check_refractory_steps(refractory_steps)

    def make(module):
        if isinstance(module, _BlockNorseNeuron):
            if module._block_state is not None:  # not BlockLIFRefracCell (its own counter, R stays 0)
                module.refractory_steps = refractory_steps
            module.backend = backend
            return None
        block = _BLOCK_OF.get(type(module))
        if block is None:
            return None
        kwargs = {"dt": module.dt, "backend": backend}
        if block is not BlockLIFRefracCell:
            kwargs["refractory_steps"] = refractory_steps
        if block._time_first:
            kwargs["record_states"] = module.record_states
        if block in (BlockLSNNCell, BlockLSNN):
            kwargs["adjoint"] = module.activation is not _lsnn_feed_forward_step
        return block(module.p, **kwargs)

    return _swap(model, make)


def unconvert(model: nn.Module) -> nn.Module:
    """The inverse of ``convert``: every block neuron with a Norse counterpart becomes that Norse class again,
    built from its ``p`` (whose tensors are the block module's parameters and buffers). Raises ValueError for
    ``refractory_steps > 0`` and for ``BlockLIFBox`` (Norse has neither)."""

    def make(module):
        if isinstance(module, BlockLIFBox):
            raise ValueError("BlockLIFBox has no Norse counterpart (Norse has no LIFBox time module)")
        native = _NATIVE_OF.get(type(module))
        if native is None:
            return None
        if module.refractory_steps > 0:
            raise ValueError(f"{type(module).__name__} has refractory_steps={module.refractory_steps}; Norse has none")
        kwargs = {"dt": module.dt}
        if module._time_first:
            kwargs["record_states"] = module.record_states
        return native(module.p, **kwargs)

    return _swap(model, make)


# PSU / IPSU / RPSU / PPSU as Norse (output, state) modules (adapters.psu_norse), imported on first use
__getattr__ = psu_exports(__name__, "snn_blockbackend.adapters.psu_norse")
