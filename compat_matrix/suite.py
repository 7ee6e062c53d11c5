"""The equivalence suite, run inside one environment (one framework version): every cell of the matrix
(``matrix.cells_for``) is checked and summarised as a dict.

For a cell, the *expected* run is the framework's own neuron (R = 0) or, with R > 0 or for a neuron the
framework lacks (ALIF: the adapters' documented equations, i.e. the engine's ``paper`` profile with the
framework's default surrogate), the engine's sequential ground truth (``backend="reference"``, one call over
the whole sequence) with the suite's own mapping of the native constructor arguments. *Ours* is either

* ``engine``: ``functional.block_neuron`` with the profile that matches the native class (as in
  tests/test_native_equivalence.py), ``backend="auto"``; or
* ``adapter``: our framework class of ``snn_blockbackend.adapters.<framework>`` with the native
  constructor arguments plus ``refractory_steps``.

``mode``: ``step`` calls ours once per time step, threading the state (engine: ``state=``; adapters: their
own state passing); ``sequence`` makes one call per sequence. Both sides get the same seeded input; the
checks are: spike mismatches (count; must be 0), membrane max |diff| (<= 1e-6, issue 3's acceptance)
and the gradients of a random linear loss over spikes and membranes with respect to the input and every
learnable parameter: ``max |ours - expected| / max(|expected|, 0.2 * G)`` with G the largest expected
gradient magnitude (the problem's gradient scale; tests/test_native_equivalence.py explains why an absolute
term is needed), <= 1e-5 (float32; snnTorch float64 too: its spikes are float32 even for float64 input)
or 1e-7 (float64; Norse 1.0.0's TorchScript LIFCell step differs by ~6e-9 in float64).

Half precision (float16, bfloat16): both sides run in that dtype (native module ``.to(dtype)``, input in
dtype; where the native class's arithmetic is promoted by PyTorch, e.g. snnTorch's float32 spike function in
Leaky's reset term, the engine runs in the promoted dtype as the native class does; Norse's parameters stay
float32, as Module.to leaves its parameter NamedTuples, and the engine path gets Norse's own initial state,
whose float32 or 0-dim tensors promote its first steps as in Norse). Spikes and membranes
must be bit-identical (membrane tolerance 0): half-precision cells run on the torch provider, which computes in
the same dtype with the same operations and, like native autograd, rounds every gradient operation to it (the
numba kernels, ``auto``'s choice on CPU, accumulate gradients in float64 and are proven against the reference in
tests/test_engine_exactness.py). Gradients: the same
relative error as above, <= u * T with u the dtype's unit roundoff as the issue states it (float16 2^-11,
bfloat16 2^-8) and T = 30 the steps BPTT accumulates over: two correct implementations may round each
step's sum in a different order, and those errors add up at most linearly in T (float16 1.46e-2, bfloat16
0.117; measured maxima are in RESULTS.md). A native class that cannot run in half on CPU (a kernel "not
implemented for 'Half'") makes the cell "unsupported" with PyTorch's message.

``compiled``: our adapter class in sequence mode under ``torch.compile(fullgraph=True, backend=COMPILE_BACKEND)``
(a fresh ``torch._dynamo.reset()`` per cell), against the eager native class / reference with the checks
above. Cells at R = 0 also record ``native_fullgraph``: whether the framework's own class runs under
``torch.compile(fullgraph=True, backend="eager")`` (information, not a pass criterion).

``python -m compat_matrix.suite --json out.json [--subset]`` runs all cells of the framework installed in
this environment.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import importlib.metadata
import json
import math
import platform
import sys
import time
import traceback
import warnings
from dataclasses import dataclass
from typing import Callable

SHAPE = (30, 2, 11)  # [T, B, N]
# the acceptance of issue 3 (membrane equal to 1e-6); RESULTS.md shows the measured maximum (mostly 0)
MEMBRANE_TOLERANCE = {"float32": 1e-6, "float64": 1e-6, "float16": 0.0, "bfloat16": 0.0}
# half precision: membranes bit-identical; gradients to u * T (see the module docstring)
HALF_EPSILON = {"float16": 2.0**-11, "bfloat16": 2.0**-8}
GRADIENT_TOLERANCE = {
    "float32": 1e-5, "float64": 1e-7, **{dtype: eps * SHAPE[0] for dtype, eps in HALF_EPSILON.items()}
}
GRADIENT_FLOOR = 0.2  # relative errors are taken against max(|expected|, GRADIENT_FLOOR * G)
# the compiled column's backend: "aot_eager" traces forward and backward through AOTAutograd, so our
# operators' fake (meta) kernels and autograd formulas are exercised as under inductor, without needing a C
# compiler (plain "eager" would only check Dynamo's capture)
COMPILE_BACKEND = "aot_eager"

ADAPTER_MODULES = {
    "snntorch": "snn_blockbackend.adapters.snntorch",
    "spikingjelly": "snn_blockbackend.adapters.spikingjelly",
    "norse": "snn_blockbackend.adapters.norse",
}
DISTRIBUTIONS = {"snntorch": "snntorch", "spikingjelly": "spikingjelly", "norse": "norse"}


class Unsupported(Exception):
    """The cell cannot run in this environment; the message is the exact reason."""


class AdapterUnavailable(Exception):
    """Our adapter module (or the class the cell needs) cannot be imported."""


# ---------------------------------------------------------------------------------------------
# framework imports (with the documented Norse 1.0 workaround)
# ---------------------------------------------------------------------------------------------
@dataclass
class Framework:
    name: str
    version: str
    module: object  # the imported framework (norse.torch for Norse)
    workaround: str = ""  # a documented workaround that had to be applied to import it


def import_framework(name: str) -> Framework:
    """Import the framework; raise ``Unsupported`` with the exact reason when it cannot run on this torch."""
    import torch  # noqa: F401  (Norse's compiled op needs torch's libraries loaded first)

    try:
        version = importlib.metadata.version(DISTRIBUTIONS[name])
    except importlib.metadata.PackageNotFoundError as error:
        raise Unsupported(f"{name} is not installed ({error})") from None
    workaround = ""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        if name == "snntorch":
            import snntorch as module
        elif name == "spikingjelly":
            from spikingjelly.activation_based import neuron as module  # noqa: F401
        else:
            try:
                import norse.torch as module
            except ImportError as error:
                # frameworks.md 0.7: Norse 1.0's norse_op.so, compiled against another torch, fails with an
                # undefined symbol; Norse catches ModuleNotFoundError, which sys.modules[...] = None raises
                if "norse_op" not in str(error):
                    raise Unsupported(f"import norse.torch failed: {type(error).__name__}: {error}") from None
                for loaded in [m for m in sys.modules if m == "norse" or m.startswith("norse.")]:
                    del sys.modules[loaded]
                sys.modules["norse_op"] = None
                workaround = (
                    f"norse_op disabled (sys.modules['norse_op'] = None, frameworks.md 0.7) after: "
                    f"{type(error).__name__}: {error}"
                )
                try:
                    import norse.torch as module
                except ImportError as again:
                    raise Unsupported(
                        f"import norse.torch failed even with norse_op disabled: {type(again).__name__}: {again}"
                    ) from None
    return Framework(name, version, module, workaround)


_ADAPTERS: dict[str, object] = {}


def adapter_module(framework: str):
    if framework not in _ADAPTERS:
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                _ADAPTERS[framework] = importlib.import_module(ADAPTER_MODULES[framework])
        except Exception as error:  # an adapter that fails to import for any reason is "not available"
            _ADAPTERS[framework] = error
    module = _ADAPTERS[framework]
    if isinstance(module, Exception):
        raise AdapterUnavailable(f"{type(module).__name__}: {module}")
    return module


def adapter_class(framework: str, name: str):
    module = adapter_module(framework)
    cls = getattr(module, name, None)
    if cls is None:
        raise AdapterUnavailable(f"{ADAPTER_MODULES[framework]} has no {name}")
    return cls


# ---------------------------------------------------------------------------------------------
# runs and their comparison
# ---------------------------------------------------------------------------------------------
@dataclass
class Run:
    spikes: object  # [T, ...]
    membrane: object  # [T, ...], or [1, ...] (final membrane only) when final_only
    leaves: list  # gradient leaves: the input, then the learnable parameters in a fixed order
    final_only: bool = False


def _torch():
    import torch

    return torch


def _identity(module):
    return module


def _compiled(fn, mode):
    """``fn`` itself, or, for the compiled column, ``fn`` under ``torch.compile(fullgraph=True)`` (a graph
    break raises instead of silently running part of it eagerly)."""
    if mode != "compiled":
        return fn
    torch = _torch()
    torch._dynamo.reset()  # each cell compiles afresh: no recompilation limit across cells, no reused graph
    return torch.compile(fn, fullgraph=True, backend=COMPILE_BACKEND)


def _generator(seed):
    return _torch().Generator().manual_seed(seed)


def make_input(shape, dtype, seed, mean, std, kick=0.0):
    torch = _torch()
    x = torch.randn(shape, generator=_generator(seed), dtype=torch.float64) * std + mean
    x.view(shape[0], -1)[0, 0] += kick
    return x.to(dtype).requires_grad_()


def _loss(run: Run, seed: int):
    torch = _torch()
    g = _generator(10_000 + seed)
    w_spikes = torch.randn(run.spikes.shape, generator=g, dtype=torch.float64)
    w_membrane = torch.randn(SHAPE, generator=g, dtype=torch.float64)[-run.membrane.shape[0]:]
    return (run.spikes.double() * w_spikes).sum() + (run.membrane.double() * w_membrane).sum()


def _grads(run: Run, seed: int):
    torch = _torch()
    # retain_graph: the expected and our run may share a parameter node (e.g. sigmoid(w))
    grads = torch.autograd.grad(_loss(run, seed), run.leaves, allow_unused=True, retain_graph=True)
    return [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(run.leaves, grads)]


def compare(expected: Run, ours: Run, seed: int, dtype: str, framework: str) -> dict:
    """Metrics of ``ours`` against ``expected`` and whether they pass."""
    if ours.final_only and not expected.final_only:
        expected = Run(expected.spikes, expected.membrane[-1:], expected.leaves, True)
    if tuple(ours.spikes.shape) != tuple(expected.spikes.shape):
        raise AssertionError(f"spike shapes differ: {tuple(ours.spikes.shape)} vs {tuple(expected.spikes.shape)}")
    if tuple(ours.membrane.shape) != tuple(expected.membrane.shape):
        raise AssertionError(
            f"membrane shapes differ: {tuple(ours.membrane.shape)} vs {tuple(expected.membrane.shape)}"
        )
    if len(ours.leaves) != len(expected.leaves):
        raise AssertionError(f"{len(ours.leaves)} gradient leaves vs {len(expected.leaves)} expected")
    spike_count = int((expected.spikes.detach() != 0).sum())
    mismatches = int((ours.spikes.detach().double() != expected.spikes.detach().double()).sum())
    membrane_diff = float((ours.membrane.detach().double() - expected.membrane.detach().double()).abs().max())
    expected_grads = _grads(expected, seed)
    our_grads = _grads(ours, seed)
    scale = max((float(g.abs().max()) if g.numel() else 0.0) for g in expected_grads)
    grad_error = 0.0
    for ours_g, expected_g in zip(our_grads, expected_grads):
        if tuple(ours_g.shape) != tuple(expected_g.shape):
            raise AssertionError(f"gradient shapes differ: {tuple(ours_g.shape)} vs {tuple(expected_g.shape)}")
        if not ours_g.numel():
            continue
        a, b = ours_g.double(), expected_g.double()
        floor = max(GRADIENT_FLOOR * scale, 1e-300)
        error = float(((a - b).abs() / b.abs().clamp_min(floor)).max())
        grad_error = max(grad_error, error if math.isfinite(error) else math.inf)
    # snnTorch's spikes are float32 even for float64 input
    gradient_tolerance = GRADIENT_TOLERANCE["float32" if framework == "snntorch" and dtype == "float64" else dtype]
    failures = []
    if spike_count == 0:
        failures.append("the expected run never spiked (vacuous check)")
    if mismatches:
        failures.append(f"{mismatches} spike mismatches")
    if not membrane_diff <= MEMBRANE_TOLERANCE[dtype]:
        failures.append(f"membrane max |diff| {membrane_diff:.3g} > {MEMBRANE_TOLERANCE[dtype]:g}")
    if not grad_error <= gradient_tolerance:
        failures.append(f"gradient relative error {grad_error:.3g} > {gradient_tolerance:g}")
    return {
        "status": "fail" if failures else "pass",
        "reason": "; ".join(failures),
        "spikes": spike_count,
        "spike_mismatches": mismatches,
        "membrane_max_abs_diff": _significant(membrane_diff),
        "grad_max_rel_error": _significant(grad_error),
        "grad_scale": _significant(scale),
    }


def _significant(value: float) -> float:
    """Four significant digits: enough to report, and results.json stays small."""
    return float(f"{value:.4g}")


# ---------------------------------------------------------------------------------------------
# the engine path (shared by all frameworks)
# ---------------------------------------------------------------------------------------------
def run_engine(
    x, profile, params, leaves, refractory_steps, mode, backend="auto", initial_state=None, compute_dtype=None
) -> Run:
    """``block_neuron`` over the whole sequence, or one call per step threading ``state``; ``compute_dtype``:
    the dtype the native class's arithmetic ends up in when PyTorch's type promotion widens the input's."""
    torch = _torch()
    from snn_blockbackend import block_neuron

    state = initial_state() if initial_state is not None else None
    if compute_dtype is not None:
        x = x.to(compute_dtype)
        params = {k: v.to(compute_dtype) if torch.is_tensor(v) else v for k, v in params.items()}
    if mode == "sequence":
        result = block_neuron(x, profile, params, refractory_steps, state=state, backend=backend)
        return Run(result.spikes, result.membrane, leaves)
    spikes, membranes = [], []
    for t in range(x.shape[0]):
        result = block_neuron(x[t : t + 1], profile, params, refractory_steps, state=state, backend=backend)
        spikes.append(result.spikes[0])
        # the membrane as a step-by-step user reads it, and as the native runs record it: from the state passed on
        # (the same values as result.membrane[0]; taking that [1, ...] output instead adds a second autograd path
        # into each step's v, created before the next step's operations, so half-precision backward sums the
        # three gradient contributions to v in another order than the native run, a few ulps per step)
        membranes.append(profile.membrane(result.state))
        state = result.state
    return Run(torch.stack(spikes), torch.stack(membranes), leaves)


@dataclass
class Case:
    """One configured neuron: how to run it natively, through the engine and through our adapter."""

    x: object
    # the framework's class at R = 0 (None: the framework has none); its argument wraps the native module
    # (identity, or torch.compile to record whether the native class compiles fullgraph)
    native: Callable[..., Run] | None
    profile: object  # the engine profile (matches the native class)
    params: dict  # engine parameters; learnable ones are the native leaves
    leaves: list  # [x, learnable parameters...] in the order of the adapter's leaves
    adapter: Callable[[str, int, str], Run]  # (mode, refractory_steps, provider) -> Run; mode may be "compiled"
    # the framework's initial state where it differs from the profile's default (None: the default)
    initial_state: Callable[[], dict] | None = None
    compute_dtype: object = None  # see run_engine (None: the input's dtype)

    def engine(self, refractory_steps, mode, backend="auto") -> Run:
        return run_engine(
            self.x, self.profile, self.params, self.leaves, refractory_steps, mode, backend, self.initial_state,
            self.compute_dtype,
        )


# an op PyTorch's CPU build lacks for a dtype ("addcmul_cpu_out" not implemented for 'Half')
_MISSING_KERNEL = "not implemented for"


def expected_run(case: Case, cell) -> Run:
    if cell.refractory_steps == 0 and case.native is not None:
        try:
            return case.native()
        except (RuntimeError, NotImplementedError) as error:
            if cell.dtype in HALF_EPSILON and _MISSING_KERNEL in str(error):
                raise Unsupported(f"the native {cell.neuron} cannot run in {cell.dtype} on CPU: {error}") from None
            raise
    return case.engine(cell.refractory_steps, "sequence", "reference")


# ---------------------------------------------------------------------------------------------
# snnTorch
# ---------------------------------------------------------------------------------------------
def _dtype(cell):
    return getattr(_torch(), cell.dtype)


def _snntorch_case(cell, fw: Framework) -> Case:
    torch = _torch()
    from snn_blockbackend import make_profile

    snn = fw.module
    dtype = _dtype(cell)
    cfg = cell.config()
    learn = cfg["learn"]
    n = SHAPE[-1]
    if cell.neuron == "ALIF":
        kwargs = dict(beta=0.9, threshold=1.0, adaptation_decay=0.9, adaptation_strength=0.5)
        x = make_input(SHAPE, dtype, cell.seed, 0.3, 0.6)

        def build(provider):
            cls = adapter_class("snntorch", "BlockALIF")
            return cls(
                **kwargs, learn_beta=learn, learn_threshold=learn, learn_adaptation=learn,
                refractory_steps=cell.refractory_steps, backend=provider,
            ).to(dtype)

        # BlockALIF's documented equations are the engine's paper profile with snnTorch's default surrogate
        # snnTorch stores Python floats as float32 tensors (torch.as_tensor); .to(float64) widens those
        params = {k: torch.tensor(v, dtype=torch.float32).to(dtype).requires_grad_(learn) for k, v in kwargs.items()}
        engine_leaves = [x] + ([params[k] for k in kwargs] if learn else [])

        def adapter(mode, r, provider):
            lif = build(provider)
            return _snntorch_adapter_run(lif, x, mode, [x] + ([getattr(lif, k) for k in kwargs] if learn else []))

        return Case(x, None, make_profile("paper", surrogate="atan"), params, engine_leaves, adapter)

    # Leaky: scalar defaults, or per-neuron beta/threshold when the parameters are learnable
    g = _generator(cell.seed)
    beta = (torch.rand(n, generator=g) * 0.5 + 0.45) if learn else 0.87
    threshold = (torch.rand(n, generator=g) * 0.6 + 0.8) if learn else 1.0
    kwargs = dict(
        beta=beta, threshold=threshold, graded_spikes_factor=cfg["graded"],
        reset_mechanism=cfg["reset_mechanism"], reset_delay=cfg["reset_delay"], learn_beta=learn,
        learn_threshold=learn,
    )
    mean = 0.0 if cfg["reset_mechanism"] == "none" else 0.25
    x = make_input(SHAPE, dtype, cell.seed, mean, 0.6)
    native = snn.Leaky(**kwargs).to(dtype)
    leaves = [x] + ([native.beta, native.threshold] if learn else [])
    profile = make_profile("snntorch_leaky", reset_mechanism=cfg["reset_mechanism"], reset_delay=cfg["reset_delay"])
    params = {
        "beta": native.beta, "threshold": native.threshold, "graded_spikes_factor": native.graded_spikes_factor
    }

    def run_native(wrap=_identity):
        return _snntorch_adapter_run(wrap(native), x, "step", leaves)

    def adapter(mode, r, provider):
        cls = adapter_class("snntorch", "BlockLeaky")
        lif = cls(**kwargs, refractory_steps=r, backend=provider).to(dtype)
        return _snntorch_adapter_run(lif, x, mode, [x] + ([lif.beta, lif.threshold] if learn else []))

    # snnTorch's spike functions return float32 (even for half input): the reset term promotes the membrane
    # from the first step on, so Leaky with a reset runs half-precision input in float32
    compute_dtype = None if cfg["reset_mechanism"] == "none" else torch.promote_types(dtype, torch.float32)
    return Case(x, run_native, profile, params, leaves, adapter, compute_dtype=compute_dtype)


def _snntorch_adapter_run(lif, x, mode, leaves) -> Run:
    torch = _torch()
    if mode != "step":
        spk, mem = _compiled(lif.forward_sequence, mode)(x)
        return Run(spk, mem, leaves)
    mem = lif.reset_mem()
    spikes, membranes = [], []
    for xt in x.unbind(0):
        spk, mem = lif(xt, mem)
        spikes.append(spk)
        membranes.append(mem)
    return Run(torch.stack(spikes), torch.stack(membranes), leaves)


# ---------------------------------------------------------------------------------------------
# SpikingJelly
# ---------------------------------------------------------------------------------------------
def _spikingjelly_api(fw: Framework) -> str:
    from packaging.version import Version

    return "0.0.0.0.14" if Version(fw.version) < Version("2") else "2"


def _spikingjelly_run(node, x, mode, leaves, legacy_block=False) -> Run:
    torch = _torch()
    if mode != "step":
        spikes = _compiled(node, mode)(x)
        return Run(spikes, node.v_seq, leaves)
    spikes, membranes = [], []
    for xt in x.unbind(0):
        spikes.append(node(xt))
        membranes.append(node.v)
    return Run(torch.stack(spikes), torch.stack(membranes), leaves)


def _spikingjelly_case(cell, fw: Framework) -> Case:
    torch = _torch()
    from snn_blockbackend import make_profile

    neuron = fw.module
    api = _spikingjelly_api(fw)
    dtype = _dtype(cell)
    cfg = cell.config()
    tau = cfg["tau"]
    # the native class runs eagerly; the compiled column compares with its eager multi-step run
    native_mode = "step" if cell.mode == "step" else "sequence"
    if cell.neuron == "ALIFNode":
        kwargs = dict(tau=tau, tau_adapt=10.0, adaptation_strength=0.5, v_threshold=1.0)
        x = make_input(SHAPE, dtype, cell.seed, 0.4, 0.7)
        params = {
            "beta": torch.tensor(1.0 - 1.0 / tau, dtype=dtype),
            "threshold": torch.tensor(1.0, dtype=dtype),
            "adaptation_decay": torch.tensor(1.0 - 1.0 / 10.0, dtype=dtype),
            "adaptation_strength": torch.tensor(0.5, dtype=dtype),
        }

        def adapter(mode, r, provider):
            cls = adapter_class("spikingjelly", "BlockALIFNode")
            node = cls(**kwargs, step_mode="s" if mode == "step" else "m", store_v_seq=True, refractory_steps=r)
            if api == "0.0.0.0.14" and mode != "step":
                node.backend = "block"
            node.block_provider = provider
            return _spikingjelly_run(node, x, mode, [x])

        # BlockALIFNode's documented equations are the engine's paper profile with SpikingJelly's default
        # surrogate (Sigmoid, alpha=4) and 1 - 1/tau rounded from double
        return Case(x, None, make_profile("paper", surrogate="sigmoid"), params, [x], adapter)

    parametric = cell.neuron == "ParametricLIFNode"
    v_reset, decay_input = cfg["v_reset"], cfg["decay_input"]
    common = dict(
        decay_input=decay_input, v_threshold=1.0, v_reset=v_reset, detach_reset=cfg["detach_reset"],
        store_v_seq=True,
    )
    scale = (1.0 if decay_input else 1.0 / tau) * (0.65 if v_reset is None else 0.85)
    x = make_input(SHAPE, dtype, cell.seed, scale, 1.2 * scale)

    def stock(cls_name, mode):
        cls = getattr(neuron, cls_name)
        sm = "s" if mode == "step" else "m"
        node = cls(init_tau=tau, step_mode=sm, **common) if parametric else cls(tau=tau, step_mode=sm, **common)
        return node.to(dtype)

    native = stock("ParametricLIFNode" if parametric else "LIFNode", native_mode)
    leaves = [x] + ([native.w] if parametric else [])
    profile = make_profile(
        "spikingjelly_lif", decay_input=decay_input, v_reset=v_reset, detach_reset=cfg["detach_reset"],
        parametric=parametric, version=api,
    )
    params = {"v_threshold": 1.0}
    params.update({"decay": native.w.sigmoid()} if parametric else {"tau": tau})

    def adapter(mode, r, provider):
        cls = adapter_class("spikingjelly", "BlockParametricLIFNode" if parametric else "BlockLIFNode")
        sm = "s" if mode == "step" else "m"
        node = cls(init_tau=tau, step_mode=sm, refractory_steps=r, **common) if parametric else cls(
            tau=tau, step_mode=sm, refractory_steps=r, **common
        )
        node = node.to(dtype)
        if api == "0.0.0.0.14" and sm == "m":
            node.backend = "block"
        node.block_provider = provider
        return _spikingjelly_run(node, x, mode, [x] + ([node.w] if parametric else []))

    def run_native(wrap=_identity):
        return _spikingjelly_run(wrap(native), x, native_mode, leaves)

    return Case(x, run_native, profile, params, leaves, adapter)


# ---------------------------------------------------------------------------------------------
# Norse
# ---------------------------------------------------------------------------------------------
NORSE_PARAMS = {  # tau_mem_inv, tau_syn_inv, v_leak, v_reset, v_th, spread (per-neuron relative spread)
    "default": (100.0, 200.0, 0.0, 0.0, 1.0, 0.0),
    "leak_reset": (100.0, 200.0, 0.1, -0.3, 1.0, 0.0),
    "per_neuron": (150.0, 300.0, -0.05, 0.2, 0.8, 0.3),
}
NORSE_INPUT = {  # (mean, std) of the input per unit threshold: ~5-30 % spiking neuron-steps
    "LIFBoxCell": (2.0, 2.5),
    "LIFCell": (0.6, 0.6),
    "LSNNCell": (2.0, 1.5),
    "LIFRefracCell": (1.0, 0.8),
}
NORSE_ADAPTERS = {  # neuron -> (cell class, time-first module class or None)
    "LIFBoxCell": ("BlockLIFBoxCell", "BlockLIFBox"),
    "LIFCell": ("BlockLIFCell", "BlockLIF"),
    "LSNNCell": ("BlockLSNNCell", "BlockLSNN"),
    "LIFRefracCell": ("BlockLIFRefracCell", None),
}


def _norse_leaf(value, dtype, neurons, seed, spread):
    torch = _torch()
    if spread == 0.0:
        return torch.tensor(value, dtype=dtype, requires_grad=True)
    noise = torch.rand(neurons, generator=_generator(seed), dtype=torch.float64) * 2 - 1
    return (value * (1 + spread * noise)).to(dtype).requires_grad_()


def _norse_state_v(state):
    return state.lif.v if hasattr(state, "lif") else state.v


def _norse_state_dict(state) -> dict:
    """A Norse state NamedTuple as the engine's state dict (LIFRefrac's nested ``lif`` state flattened)."""
    if hasattr(state, "lif"):
        return {"v": state.lif.v, "i": state.lif.i, "rho": state.rho}
    return dict(state._asdict())


def _norse_cell_run(cell_module, x, leaves) -> Run:
    torch = _torch()
    spikes, membranes, state = [], [], None
    for xt in x.unbind(0):
        z, state = cell_module(xt, state)
        v = _norse_state_v(state)
        spikes.append(z)
        membranes.append(v if v.shape == xt.shape else v.expand_as(xt))
    return Run(torch.stack(spikes), torch.stack(membranes), leaves)


def _norse_case(cell, fw: Framework) -> Case:
    from packaging.version import Version

    torch = _torch()
    from snn_blockbackend import make_profile

    nt = fw.module
    version = "1.0" if Version(fw.version) < Version("1.1") else "1.1"
    dtype = _dtype(cell)
    cfg = cell.config()
    tau_mem_inv, tau_syn_inv, v_leak, v_reset, v_th, spread = NORSE_PARAMS[cfg["params"]]
    neurons = SHAPE[-1:]
    seed = cell.seed
    x_dtype = dtype
    if dtype in (torch.float16, torch.bfloat16):
        # Norse's parameters are a NamedTuple of tensors (float32 by default), which Module.to(dtype) leaves
        # alone: half precision is half input with float32 parameters
        dtype = torch.float32
    tensors = {
        "tau_mem_inv": _norse_leaf(tau_mem_inv, dtype, neurons, seed, spread),
        "v_leak": _norse_leaf(v_leak, dtype, neurons, seed, 0.0),
        "v_th": _norse_leaf(v_th, dtype, neurons, seed, 0.0),
        "v_reset": _norse_leaf(v_reset, dtype, neurons, seed, 0.0),
    }
    mean, std = NORSE_INPUT[cell.neuron]
    x = make_input(SHAPE, x_dtype, seed, mean * v_th, std * v_th)
    if cell.neuron == "LIFBoxCell":
        reset_method = cfg["reset_method"]
        if reset_method == "subtract":
            from norse.torch.functional import reset as norse_reset

            make_p = lambda t: nt.LIFBoxParameters(**t, reset_method=norse_reset.reset_subtract)  # noqa: E731
        else:
            make_p = lambda t: nt.LIFBoxParameters(**t)  # noqa: E731
        native_cls = nt.LIFBoxCell
        profile = make_profile("norse_lif_box", reset_method=reset_method, version=version)
        fields = ["tau_mem_inv", "v_th", "v_leak"] + ([] if reset_method == "subtract" else ["v_reset"])
    elif cell.neuron == "LIFCell":
        tensors["tau_syn_inv"] = _norse_leaf(tau_syn_inv, dtype, neurons, seed + 1, spread)
        make_p = lambda t: nt.LIFParameters(**t)  # noqa: E731
        native_cls = nt.LIFCell
        profile = make_profile("norse_lif", version=version)
        fields = ["tau_mem_inv", "v_th", "v_leak", "v_reset", "tau_syn_inv"]
    elif cell.neuron == "LSNNCell":
        tensors["tau_syn_inv"] = _norse_leaf(tau_syn_inv, dtype, neurons, seed + 1, spread)
        tensors["tau_adapt_inv"] = _norse_leaf(1.0 / 20, dtype, neurons, seed + 2, spread)
        tensors["beta"] = _norse_leaf(1.8, dtype, neurons, seed, 0.0)
        make_p = lambda t: nt.LSNNParameters(**t)  # noqa: E731
        native_cls = nt.LSNNCell
        profile = make_profile("norse_lsnn", version=version)
        fields = ["tau_mem_inv", "v_th", "v_leak", "v_reset", "tau_syn_inv", "tau_adapt_inv", "beta"]
    else:  # LIFRefracCell: the profile's own refractory counter rho (refractory_steps must stay 0)
        if cell.refractory_steps:
            raise Unsupported(
                "LIFRefracCell has its own refractory counter (rho_reset); refractory_steps > 0 would add a second "
                "one (the engine's norse_lif with refractory_steps=R covers that: see the LIFCell rows)"
            )
        tensors["tau_syn_inv"] = _norse_leaf(tau_syn_inv, dtype, neurons, seed + 1, spread)
        tensors["rho_reset"] = _norse_leaf(float(cfg["rho_reset"]), dtype, neurons, seed, 0.0)

        def make_p(t):
            lif = nt.LIFParameters(**{k: v for k, v in t.items() if k != "rho_reset"})
            return nt.LIFRefracParameters(lif=lif, rho_reset=t["rho_reset"])

        native_cls = nt.LIFRefracCell
        profile = make_profile("norse_lif_refrac", version=version)
        fields = ["tau_mem_inv", "v_th", "v_leak", "v_reset", "tau_syn_inv", "rho_reset"]
    leaves = [x] + [tensors[f] for f in fields]
    native = native_cls(make_p(tensors))

    def adapter(mode, r, provider):
        cell_name, module_name = NORSE_ADAPTERS[cell.neuron]
        if mode != "step" and module_name is None:
            raise Unsupported(f"snn_blockbackend.adapters.norse has no time-first module for {cell.neuron}")
        cls = adapter_class("norse", cell_name if mode == "step" else module_name)
        extra = {} if cell.neuron == "LIFRefracCell" else {"refractory_steps": r}
        module = cls(make_p(tensors), backend=provider, **extra)
        our_leaves = [x] + [getattr(module, f) for f in fields]
        if mode == "step":
            return _norse_cell_run(module, x, our_leaves)
        z, state = _compiled(module, mode)(x)
        v = _norse_state_v(state)
        return Run(z, v.expand_as(x[0]).unsqueeze(0), our_leaves, final_only=True)

    initial_state = None
    if x_dtype != torch.float32:
        # Norse's own initial state, as its class builds it: its dtypes and shapes decide how the first steps
        # promote (Norse 1.0's LIFBoxCell/LIFCell: full float32 v (and i) whatever the input's dtype; 1.1's
        # LIFBoxCell/LIFCell: v a clone of v_leak, 0-dim float32; LSNNCell: b the 0-dim v_th). The engine
        # takes it as given (a 0-dim state keeps its shape when the dtypes are mixed)

        def initial_state():
            with torch.no_grad():
                native_state = native.initial_state(x[0])
            return {name: value.detach() for name, value in _norse_state_dict(native_state).items()}

    def run_native(wrap=_identity):
        return _norse_cell_run(wrap(native), x, leaves)

    # dt: the profiles' default, Norse's Python float 0.001 (for half-precision input the engine makes it a
    # float32 tensor, as Norse's dt * tau_mem_inv is a float32 product)
    return Case(x, run_native, profile, tensors, leaves, adapter, initial_state)


CASES = {"snntorch": _snntorch_case, "spikingjelly": _spikingjelly_case, "norse": _norse_case}


# ---------------------------------------------------------------------------------------------
# running cells
# ---------------------------------------------------------------------------------------------
def run_cell(cell, fw: Framework) -> dict:
    started = time.perf_counter()
    record = cell.to_json()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            case = CASES[cell.framework](cell, fw)
            expected = expected_run(case, cell)
            # half precision on the torch provider, which computes gradients as the native autograd does (every
            # gradient operation rounded to the half dtype): the numba kernels accumulate them in float64, and
            # native half autograd's own accumulated rounding exceeds the u*T bound below (a Norse LSNNCell
            # bfloat16 cell: 0.317 against 0.117). The numba kernels' half precision is proven against the
            # reference in tests/test_engine_exactness.py.
            from snn_blockbackend.functional import use_backend

            backend = use_backend("torch") if cell.dtype in HALF_EPSILON else contextlib.nullcontext()
        with warnings.catch_warnings(), backend:
            warnings.simplefilter("ignore")
            if cell.path == "engine":
                if cell.mode == "compiled":
                    raise ValueError("the compiled column runs our adapter classes only")
                ours = case.engine(cell.refractory_steps, cell.mode)
            else:
                ours = case.adapter(cell.mode, cell.refractory_steps, "auto")
            record.update(compare(expected, ours, cell.seed, cell.dtype, cell.framework))
            if cell.mode == "compiled" and cell.refractory_steps == 0 and case.native is not None:
                record["native_fullgraph"] = native_fullgraph(case)
    except Unsupported as error:
        record.update(status="unsupported", reason=str(error))
    except AdapterUnavailable as error:
        record.update(status="adapter not available", reason=str(error))
    except Exception as error:  # a crash is a failing cell, with the exception as the reason
        tb = traceback.extract_tb(error.__traceback__)[-1]
        record.update(
            status="fail",
            reason=f"{type(error).__name__}: {error} (at {tb.filename.rsplit('/', 1)[-1]}:{tb.lineno})",
        )
    record["seconds"] = round(time.perf_counter() - started, 4)
    return record


def native_fullgraph(case: Case) -> str:
    """Whether the framework's own class runs under ``torch.compile(fullgraph=True)`` (backend "eager": only
    Dynamo's capture is in question): "yes", or "no: " and the first line of the error."""
    torch = _torch()
    torch._dynamo.reset()
    try:
        case.native(lambda module: torch.compile(module, fullgraph=True, backend="eager"))
    except Exception as error:  # any failure to capture or run is the answer, not a failing cell
        return f"no: {type(error).__name__}: {str(error).strip().splitlines()[0] if str(error).strip() else ''}"[:300]
    finally:
        torch._dynamo.reset()
    return "yes"


def run_suite(framework: str, subset: bool = False, cells=None) -> dict:
    """Every cell of the installed version of ``framework``: a dict with the environment and the cells."""
    import torch

    from compat_matrix.matrix import cells_for

    started = time.perf_counter()
    torch.set_num_threads(1)
    environment = {
        "framework": framework,
        "python": platform.python_version(),
        "torch": torch.__version__,
    }
    try:
        fw = import_framework(framework)
    except Unsupported as error:
        version = None
        try:
            version = importlib.metadata.version(DISTRIBUTIONS[framework])
        except importlib.metadata.PackageNotFoundError:
            pass
        return {**environment, "version": version, "status": "unsupported", "reason": str(error), "cells": []}
    environment.update(version=fw.version, workaround=fw.workaround)
    try:
        adapter_module(framework)
        environment["adapter"] = "available"
    except AdapterUnavailable as error:
        environment["adapter"] = f"not available: {error}"
    if cells is None:
        cells = cells_for(framework, fw.version, subset=subset)
    results = [run_cell(cell, fw) for cell in cells]
    environment.update(status="ran", reason="", cells=results, seconds=round(time.perf_counter() - started, 2))
    return environment


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m compat_matrix.suite", description=__doc__.split("\n\n")[0])
    parser.add_argument("--framework", required=True, choices=sorted(CASES))
    parser.add_argument("--json", required=True, help="where to write the results")
    parser.add_argument("--subset", action="store_true", help="the small CI selection of cells")
    args = parser.parse_args(argv)
    result = run_suite(args.framework, subset=args.subset)
    with open(args.json, "w") as handle:
        json.dump(result, handle, indent=1)
    counts = {}
    for c in result["cells"]:
        counts[c["status"]] = counts.get(c["status"], 0) + 1
    print(f"{args.framework} {result.get('version')}: {result['status']} {counts}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
