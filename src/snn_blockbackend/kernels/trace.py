"""One time step of a neuron as data: the profile's own ``charge``/``spike``/``reset``/``emit`` traced into a
short list of scalar operations, in the order the reference evaluates them.

The profile is the only description of a neuron. Tracing runs its per-step methods on symbolic values
(``Sym``) instead of tensors: every arithmetic operation, comparison-free select, ``detach`` and surrogate
spike it performs is recorded as one ``Node`` (SSA form, identical operations merged). The engine's refractory
bookkeeping (a refractory neuron cannot spike; held variables keep their value, the others keep charging) is
added around the traced step exactly as ``providers.reference`` applies it. The code generators
(``emit_numba``, ``emit_triton``) turn a ``Step`` into kernels: the forward is the node list evaluated
operation for operation as PyTorch's CPU kernels evaluate them (bitwise the reference): each node has
PyTorch's result dtype of its operation (``promoted``), half precision is computed in float32 and rounded
after every operation (``codegen.forward_statements`` has the operand rules); the backward is its adjoint,
derived node by node (``ADJOINTS``) and accumulated in float64.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field

import torch

# node kinds: leaves, then operations (args are node indices)
LEAVES = ("x", "state", "param", "const", "live")
BINARY = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
UNARY = ("neg", "relu", "detach", "cast")
# "step": Heaviside of its argument (``strict``: > 0, else >= 0) with the surrogate's derivative;
# "select": args (a, b, c): a if c != 0 else b, where c is the "live" leaf (1 unless refractory)
OPS = (*BINARY, *UNARY, "step", "select")

FLOATS = ("float16", "bfloat16", "float32", "float64")
HALF = ("float16", "bfloat16")
NUMBER = "number"  # the dtype of a Python-number constant (PyTorch's wrapped number: lowest promotion priority)


def dtype_name(dtype: torch.dtype) -> str:
    name = str(dtype).replace("torch.", "")
    if name not in FLOATS:
        raise TraceError(f"a {name} operand: the kernels compute in {', '.join(FLOATS)}")
    return name


def compute_dtype(dtype: str) -> str:
    """The dtype an operation producing ``dtype`` computes in: PyTorch's CPU kernels compute half precision in
    float32 and round the result (its ``opmath`` type)."""
    return "float32" if dtype in HALF else dtype


def converts_exactly(source: str, target: str) -> bool:
    """Whether every ``source`` value is a ``target`` value (half precision into float32/float64, float32 into
    float64)."""
    order = {"float16": 1, "bfloat16": 1, "float32": 2, "float64": 3}
    return source == target or order[source] < order[target]


class TraceError(TypeError):
    """The profile did something the kernel generator cannot express."""


@dataclass(frozen=True)
class Operands:
    """What a traced step depends on besides the profile: the dtype of the input, of each state variable and of
    each parameter, and which parameters are 0-dim tensors (PyTorch's type promotion ranks a 0-dim tensor below a
    shaped one: a 0-dim float32 parameter keeps bfloat16 input in bfloat16). Names not listed have the input's
    dtype and a shape. ``Operands.of`` builds it from the tensors of a call; one dtype throughout is
    ``Operands(dtype)`` whatever the shapes (promotion then changes nothing)."""

    x: str
    state: tuple[tuple[str, str], ...] = ()
    params: tuple[tuple[str, str, bool], ...] = ()  # (name, dtype, 0-dim)

    @classmethod
    def of(cls, x: torch.Tensor, state: dict, params: dict) -> "Operands":
        """From a call's input, state and (prepared) parameters. ``TraceError`` where no traced step describes
        the call: a dtype the kernels lack, or mixed dtypes with a state not of the neuron shape (PyTorch promotes
        by shape, so its first step would differ from the others)."""
        dtype = dtype_name(x.dtype)
        floating = {name: t for name, t in state.items() if t.is_floating_point()}
        if all(t.dtype == x.dtype for t in (*floating.values(), *params.values())):
            return cls(dtype)
        for name, t in floating.items():
            if t.shape != x.shape[1:]:
                raise TraceError(f"state {name!r} of shape {tuple(t.shape)}, not the neuron shape, with mixed dtypes")
        return cls(
            dtype, tuple(sorted((name, dtype_name(t.dtype)) for name, t in floating.items())),
            tuple(sorted((name, dtype_name(t.dtype), t.dim() == 0) for name, t in params.items())),
        )  # fmt: skip

    @property
    def uniform(self) -> str | None:
        """The one dtype of every operand, or None when they are mixed."""
        if all(d == self.x for _, d in self.state) and all(d == self.x for _, d, _ in self.params):
            return self.x
        return None

    def describe(self) -> str:
        if self.uniform:
            return self.x
        parts = [f"x {self.x}", *(f"{name} {d}" for name, d in self.state),
                 *(f"{name} {d}{' 0-dim' if zerodim else ''}" for name, d, zerodim in self.params)]  # fmt: skip
        return ", ".join(parts)

    def state_dtype(self, name: str) -> str:
        return dict(self.state).get(name, self.x)

    def param(self, name: str) -> tuple[str, bool]:
        for known, d, zerodim in self.params:
            if known == name:
                return d, zerodim
        return self.x, False


@dataclass(frozen=True)
class Node:
    kind: str
    args: tuple[int, ...] = ()
    name: str = ""  # leaf name (state variable, parameter)
    value: float = 0.0  # constants
    dtype: str = NUMBER  # the value's dtype (FLOATS); NUMBER for constants, "bool" for the live leaf
    zerodim: bool = False  # a 0-dim tensor (a parameter, or operations of 0-dim tensors only)
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

    def leaf(self, kind: str, name: str = "") -> Node | None:
        for n in self.nodes:
            if n.kind == kind and n.name == name:
                return n
        return None

    def dtype_of(self, array: str) -> str:
        """The dtype of an array a kernel reads or writes: "x", "spikes", "membranes", "state:<name>" (initial,
        final and saved rows), "param:<name>"."""
        if array == "spikes":
            return self.nodes[self.emitted].dtype
        if array == "membranes":
            return self.nodes[self.membrane].dtype
        kind, _, name = array.partition(":")
        return self.leaf(kind, name).dtype

    def torch_dtype(self, array: str) -> torch.dtype:
        """``dtype_of(array)`` as a torch dtype (what an operator allocates the array in)."""
        return getattr(torch, self.dtype_of(array))


def _describe(n: Node) -> str:
    args = ", ".join(f"n{a}" for a in n.args)
    if n.kind == "const":
        return f"const {n.value!r}"
    if n.kind == "live":
        return "live"
    if n.kind in ("state", "param", "x"):
        text = f"{n.kind} {n.name}".rstrip()
    elif n.kind == "step":
        text = f"step{'>' if n.strict else '>='}({args})"
    elif n.kind == "cast":
        text = f"cast({args})"
    else:
        text = f"{n.kind}({args})"
    return f"{text} : {n.dtype}{' 0-dim' if n.zerodim else ''}"


class _Graph:
    def __init__(self, operands: Operands):
        self.operands = operands
        self.nodes: list[Node] = []
        self.index: dict[Node, int] = {}
        self.params: list[str] = []

    def add(self, node: Node) -> "Sym":
        if node not in self.index:  # identical operations on identical operands are one node
            self.index[node] = len(self.nodes)
            self.nodes.append(node)
        return Sym(self, self.index[node])


def promoted(nodes: list[Node]) -> tuple[str, bool]:
    """PyTorch's result dtype (``torch.result_type``) of an operation on ``nodes`` and whether it is 0-dim: the
    promoted dtype of the shaped operands if any, else of the 0-dim ones (Python numbers rank lowest)."""
    shaped = [n.dtype for n in nodes if n.dtype != NUMBER and not n.zerodim]
    zerodim = [n.dtype for n in nodes if n.dtype != NUMBER and n.zerodim]
    ranked = shaped or zerodim
    if not ranked:
        raise TraceError("an operation of Python numbers only")
    result = ranked[0]
    for other in ranked[1:]:
        result = str(torch.promote_types(getattr(torch, result), getattr(torch, other))).replace("torch.", "")
    return result, not shaped


class Sym:
    """A traced scalar value. Supports what the profiles use: + - * / with numbers and other values, unary -,
    ``detach()``, ``.to(dtype)``, ``torch.relu`` and the surrogate spike (``heaviside``), each with PyTorch's
    dtype promotion. Attributes may be set on it (some profiles pass information between their methods that
    way)."""

    def __init__(self, graph: _Graph, index: int):
        self._graph, self._index = graph, index

    @property
    def node(self) -> Node:
        return self._graph.nodes[self._index]

    @property
    def dtype(self):
        return getattr(torch, self.node.dtype)

    def dim(self) -> int:
        return 0 if self.node.zerodim else 1  # a traced value is one neuron's value of a 0-dim or a shaped tensor

    def _operand(self, other) -> "Sym":
        if isinstance(other, Sym):
            return other
        if isinstance(other, (int, float)) and not isinstance(other, bool):
            return self._graph.add(Node("const", value=float(other)))
        raise TraceError(f"cannot trace an operation with {type(other).__name__} {other!r}")

    def _binary(self, kind, a, b):
        dtype, zerodim = promoted([a.node, b.node])
        return self._graph.add(Node(kind, (a._index, b._index), dtype=dtype, zerodim=zerodim))

    # PyTorch's reflected operators with a Python number: ``n + t`` and ``n * t`` are ``t + n`` and ``t * n``
    # (the number second: PyTorch reads a second scalar of a half-precision product at float32 precision),
    # ``n - t`` is ``sub(n, t)``, ``n / t`` is ``reciprocal(t) * n`` (torch/_tensor.py ``__rdiv__``)
    def __add__(self, other):
        return self._binary("add", self, self._operand(other))

    def __radd__(self, other):
        return self._binary("add", self, self._operand(other))

    def __sub__(self, other):
        return self._binary("sub", self, self._operand(other))

    def __rsub__(self, other):
        return self._binary("sub", self._operand(other), self)

    def __mul__(self, other):
        return self._binary("mul", self, self._operand(other))

    def __rmul__(self, other):
        return self._binary("mul", self, self._operand(other))

    def __truediv__(self, other):
        return self._binary("div", self, self._operand(other))

    def __rtruediv__(self, other):
        reciprocal = self._binary("div", self._operand(1.0), self)
        if isinstance(other, Sym) or float(other) != 1.0:
            return reciprocal._binary("mul", reciprocal, reciprocal._operand(other))
        return reciprocal

    def _unary(self, kind):
        return self._graph.add(Node(kind, (self._index,), dtype=self.node.dtype, zerodim=self.node.zerodim))

    def __neg__(self):
        return self._unary("neg")

    def detach(self):
        return self._unary("detach")

    def to(self, dtype):
        target = dtype_name(dtype)
        if target == self.node.dtype:
            return self
        return self._graph.add(Node("cast", (self._index,), dtype=target, zerodim=self.node.zerodim))

    def heaviside(self, strict: bool) -> "Sym":
        """The surrogate spike of this margin (``surrogate.Surrogate`` calls it for a traced margin)."""
        return self._graph.add(Node("step", (self._index,), dtype=self.node.dtype, zerodim=self.node.zerodim,
                                    strict=bool(strict)))  # fmt: skip

    def select(self, if_live: "Sym", if_refractory) -> "Sym":
        """``if_live`` where this (the live leaf) is 1, else ``if_refractory`` (``torch.where``: the result
        has the promoted dtype of the two and the neuron shape)."""
        b = if_live._operand(if_refractory)
        if b._index == if_live._index and not if_live.node.zerodim:
            return if_live
        dtype, _ = promoted([if_live.node, b.node])
        return self._graph.add(Node("select", (if_live._index, b._index, self._index), dtype=dtype))

    @classmethod
    def __torch_function__(cls, func, types, args=(), kwargs=None):
        if func is torch.relu and len(args) == 1 and not kwargs:
            return args[0]._unary("relu")
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
        dtype, zerodim = self._graph.operands.param(name)
        value = self._graph.add(Node("param", name=name, dtype=dtype, zerodim=zerodim))
        self[name] = value
        return value


def trace(profile, operands: Operands = Operands("float32")) -> Step:
    """Trace one time step of ``profile`` (its per-step methods, with the engine's refractory rule around them,
    as ``providers.reference.run_reference`` composes them) for operands of these dtypes. Each operation gets
    PyTorch's result dtype; a profile may compute part of a step in another dtype than the input (SpikingJelly
    0.0.0.0.14's ``1 - 1/tau`` in float64)."""
    try:
        return _trace(profile, operands)
    except TraceError:
        raise
    except (TypeError, AttributeError, KeyError) as error:  # an operation Sym does not model
        raise TraceError(f"{type(error).__name__}: {error}") from error


def _trace(profile, operands: Operands) -> Step:
    g = _Graph(operands)
    p = _Params(g)
    prev = {name: g.add(Node("state", name=name, dtype=operands.state_dtype(name))) for name in profile.state_names}
    x = g.add(Node("x", dtype=operands.x))
    live = g.add(Node("live", dtype="bool"))
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
        if not isinstance(value, Sym) or value.node.kind == "const":
            raise TraceError(f"{profile.describe()}: a step output is not a traced value ({value!r})")
    for name, value in new_state.items():
        if value.node.dtype != prev[name].node.dtype:
            raise TraceError(
                f"state {name!r} turns from {prev[name].node.dtype} into {value.node.dtype} in a step (mixed dtypes "
                "promote it): a kernel keeps each state variable in one dtype"
            )
    return Step(
        f"{profile.describe()}, {operands.describe()}", g.nodes, tuple(profile.state_names), tuple(g.params),
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
    "cast": ("{g}",),
    "step": ("sgd",),
    "select": ("live", "refractory", None),
}
