"""One time step of a neuron as data: the profile's own ``charge``/``spike``/``reset``/``emit`` traced into a
short list of scalar operations, in the order the reference evaluates them.

The profile is the only description of a neuron. Tracing runs its per-step methods on symbolic values
(``Sym``) instead of tensors: every arithmetic operation, comparison-free select, ``detach`` and surrogate
spike it performs is recorded as one ``Node`` (SSA form, identical operations merged). The engine's refractory
bookkeeping (a refractory neuron cannot spike; held variables keep their value, the others keep charging) is
added around the traced step exactly as ``providers.reference`` applies it. The code generators
(``emit_numba``, ``emit_triton``) turn a ``Step`` into kernels: the forward is the node list evaluated in
the storage dtype, operation for operation (bitwise the reference); the backward is its adjoint, derived
node by node (``ADJOINTS``) and accumulated in float64.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

# node kinds: leaves, then operations (args are node indices)
LEAVES = ("x", "state", "param", "const", "live")
BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
UNARY = ("neg", "relu", "detach", "cast64", "cast")
# "step": Heaviside of its argument (``strict``: > 0, else >= 0) with the surrogate's derivative;
# "select": args (a, b, c): a if c != 0 else b, where c is the "live" leaf (1 unless refractory)
OPS = (*BINARY, *UNARY, "step", "select")


class TraceError(TypeError):
    """The profile did something the kernel generator cannot express."""


@dataclass(frozen=True)
class Node:
    kind: str
    args: tuple[int, ...] = ()
    name: str = ""  # leaf name (state variable, parameter)
    value: float = 0.0  # constants
    wide: bool = False  # computed in float64 (constants and casts in a double-precision sub-expression)
    strict: bool = True  # "step" nodes


@dataclass
class Step:
    """One traced time step. ``nodes`` are in evaluation order; the outputs name node indices."""

    profile: str
    nodes: list[Node]
    state: tuple[str, ...]  # state variables (leaves "state" carry the previous step's values)
    params: tuple[str, ...]  # per-neuron parameters, in the order the kernels take them
    new_state: dict[str, int]  # the state after this step (refractory selects included)
    spike: int  # the masked spike (0 on refractory steps); nonzero means "fired"
    emitted: int  # the output spike (graded spikes scale it)
    membrane: int  # the returned membrane
    key: str = field(init=False)

    def __post_init__(self):
        self.key = hashlib.sha1(self.listing().encode()).hexdigest()[:16]

    def listing(self) -> str:
        """A readable, canonical listing of the step (also what the kernel cache is keyed on)."""
        lines = [f"# {self.profile}", f"state {', '.join(self.state)}", f"params {', '.join(self.params)}"]
        for k, n in enumerate(self.nodes):
            lines.append(f"n{k} = {_describe(n)}")
        outputs = {**{f"new {s}": i for s, i in self.new_state.items()}, "spike": self.spike,
                   "emitted": self.emitted, "membrane": self.membrane}  # fmt: skip
        lines += [f"{name} -> n{i}" for name, i in outputs.items()]
        return "\n".join(lines)

    @property
    def saved(self) -> tuple[str, ...]:
        """State variables a forward kernel stores per step besides the membrane (which is one of them, or not)."""
        return tuple(name for name in self.state if self.new_state[name] != self.membrane)


def _describe(n: Node) -> str:
    args = ", ".join(f"n{a}" for a in n.args)
    if n.kind == "const":
        return f"const {n.value!r}{' (float64)' if n.wide else ''}"
    if n.kind in ("state", "param"):
        return f"{n.kind} {n.name}"
    if n.kind == "step":
        return f"step{'>' if n.strict else '>='}({args})"
    return f"{n.kind}({args})"


class _Graph:
    def __init__(self, dtype: torch.dtype):
        self.dtype = dtype  # the storage dtype (float32 or float64)
        self.nodes: list[Node] = []
        self.index: dict[Node, int] = {}
        self.params: list[str] = []

    def add(self, node: Node) -> "Sym":
        if node not in self.index:  # identical operations on identical operands are one node
            self.index[node] = len(self.nodes)
            self.nodes.append(node)
        return Sym(self, self.index[node])


class _Wide:
    """The dtype a traced ``.to(torch.float64)`` asks for."""


class Sym:
    """A traced scalar value. Supports what the profiles use: + - * / with numbers and other values, unary -,
    ``detach()``, ``.to(dtype)``, ``torch.relu`` and the surrogate spike (``heaviside``). Attributes may be
    set on it (some profiles pass information between their methods that way)."""

    def __init__(self, graph: _Graph, index: int):
        self._graph, self._index = graph, index

    @property
    def node(self) -> Node:
        return self._graph.nodes[self._index]

    @property
    def dtype(self):
        return torch.float64 if self.node.wide else self._graph.dtype

    def dim(self) -> int:
        return 0  # a traced value is one neuron's scalar

    def _operand(self, other) -> "Sym":
        if isinstance(other, Sym):
            return other
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            # a Python scalar operand is rounded to the other operand's dtype (PyTorch's rule for scalars)
            return self._graph.add(Node("const", value=float(other), wide=self.node.wide))
        raise TraceError(f"cannot trace an operation with {type(other).__name__} {other!r}")

    def _binary(self, kind, other, reflected=False):
        other = self._operand(other)
        a, b = (other, self) if reflected else (self, other)
        if a.node.wide != b.node.wide:
            raise TraceError("mixed float64/storage-dtype arithmetic: cast explicitly with .to()")
        return self._graph.add(Node(kind, (a._index, b._index), wide=a.node.wide))

    def __add__(self, other):
        return self._binary("add", other)

    def __radd__(self, other):
        return self._binary("add", other, True)

    def __sub__(self, other):
        return self._binary("sub", other)

    def __rsub__(self, other):
        return self._binary("sub", other, True)

    def __mul__(self, other):
        return self._binary("mul", other)

    def __rmul__(self, other):
        return self._binary("mul", other, True)

    def __truediv__(self, other):
        return self._binary("div", other)

    def __rtruediv__(self, other):
        return self._binary("div", other, True)

    def __neg__(self):
        return self._graph.add(Node("neg", (self._index,), wide=self.node.wide))

    def detach(self):
        return self._graph.add(Node("detach", (self._index,), wide=self.node.wide))

    def to(self, dtype):
        # "wide": computed in float64 while the storage dtype is narrower; for float64 storage nothing is wide
        wide = dtype == torch.float64 and self._graph.dtype != torch.float64
        if dtype not in (torch.float64, self._graph.dtype):
            raise TraceError(f"a cast to {dtype} in a {self._graph.dtype} kernel")
        if wide == self.node.wide:
            return self
        return self._graph.add(Node("cast64" if wide else "cast", (self._index,), wide=wide))

    def heaviside(self, strict: bool) -> "Sym":
        """The surrogate spike of this margin (``surrogate.Surrogate`` calls it for a traced margin)."""
        if self.node.wide:
            raise TraceError("a spike of a float64 value")
        return self._graph.add(Node("step", (self._index,), strict=bool(strict)))

    def select(self, if_live: "Sym", if_refractory) -> "Sym":
        """``if_live`` where this (the live leaf) is 1, else ``if_refractory``."""
        b = if_live._operand(if_refractory)
        if b._index == if_live._index:
            return if_live
        return self._graph.add(Node("select", (if_live._index, b._index, self._index)))

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.relu and len(args) == 1 and not kwargs:
            (a,) = args
            return a._graph.add(Node("relu", (a._index,), wide=a.node.wide))
        raise TraceError(f"{getattr(func, '__name__', func)} is not traceable into a kernel")

    def __bool__(self):
        raise TraceError("a data-dependent branch cannot be traced into a kernel")

    def _compare(self, other):
        raise TraceError("a comparison of traced values (a data-dependent branch?) cannot be traced into a kernel")

    __lt__ = __le__ = __gt__ = __ge__ = _compare


class _Params(dict):
    """Parameters as traced leaves, recording the order in which the profile reads them."""

    def __init__(self, graph: _Graph):
        super().__init__()
        self._graph = graph

    def __missing__(self, name):
        self._graph.params.append(name)
        value = self._graph.add(Node("param", name=name))
        self[name] = value
        return value


def trace(profile, dtype: torch.dtype = torch.float32) -> Step:
    """Trace one time step of ``profile`` (its per-step methods, with the engine's refractory rule around them,
    as ``providers.reference.run_reference`` composes them), for ``dtype`` storage (a profile may compute part
    of a step in float64, e.g. SpikingJelly 0.0.0.0.14's ``1 - 1/tau``, which is wide only in a float32 kernel)."""
    try:
        return _trace(profile, dtype)
    except TraceError:
        raise
    except (TypeError, AttributeError, KeyError) as error:  # an operation Sym does not model
        raise TraceError(f"{type(error).__name__}: {error}") from error


def _trace(profile, dtype) -> Step:
    g = _Graph(dtype)
    p = _Params(g)
    prev = {name: g.add(Node("state", name=name)) for name in profile.state_names}
    x = g.add(Node("x"))
    live = g.add(Node("live"))
    charged, margin = profile.charge(p, prev, x)
    spike = live.select(profile.spike(margin), 0.0)
    after = profile.reset(p, prev, charged, spike)
    new_state = {
        name: live.select(after[name], prev[name] if name in profile.held else charged[name])
        for name in profile.state_names
    }
    emitted = profile.emit(p, spike)
    membrane = profile.membrane(new_state)
    for value in (*new_state.values(), spike, emitted, membrane):
        if not isinstance(value, Sym):
            raise TraceError(f"{profile.describe()}: a step output is not a traced value ({value!r})")
    return Step(
        f"{profile.describe()}, {str(dtype).replace('torch.', '')}", g.nodes, tuple(profile.state_names), tuple(g.params),
        {name: s._index for name, s in new_state.items()}, spike._index, emitted._index, membrane._index,
    )  # fmt: skip


def reached(step: Step, roots, stop=frozenset()) -> set[int]:
    """The nodes ``roots`` (node indices) depend on, themselves included, not looking past the nodes in ``stop``."""
    out, stack = set(), list(roots)
    while stack:
        k = stack.pop()
        if k not in out:
            out.add(k)
            if k not in stop:
                stack.extend(step.nodes[k].args)
    return out


def outputs(step: Step) -> list[int]:
    return [*step.new_state.values(), step.spike, step.emitted, step.membrane]


def used(step: Step) -> list[bool]:
    """Which nodes the outputs depend on (the generators emit only those)."""
    keep = reached(step, outputs(step))
    return [k in keep for k in range(len(step.nodes))]


# The adjoint of each operation: for node ``out = op(a, b[, c])`` with adjoint ``{g}`` (float64), the
# contribution to each argument's adjoint, over the float64 values {A}, {B} of the arguments and the select's
# condition {C}. None: no gradient (detach; the select's condition). "sgd" is the surrogate's derivative at
# {A}; "{g} if {C} else 0" is a select (never a 0*inf product).
ADJOINTS = {
    "add": ("{g}", "{g}"),
    "sub": ("{g}", "-{g}"),
    "mul": ("{g} * {B}", "{g} * {A}"),
    "div": ("{g} / {B}", "-{g} * {A} / ({B} * {B})"),
    "neg": ("-{g}",),
    "relu": ("relu",),
    "detach": (None,),
    "cast64": ("{g}",),
    "cast": ("{g}",),
    "step": ("sgd",),
    "select": ("live", "refractory", None),
}
