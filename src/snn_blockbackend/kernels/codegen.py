"""What the numba and Triton generators share: node expressions, adjoint statements, surrogate derivatives.

A target supplies a small ``Dialect`` (how to write a select, a cast, abs/exp, a typed constant); everything
else -- the order of operations, the adjoint of each node, the surrogate formulas -- is written once here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from typing import Callable

import torch

from .trace import ADJOINTS, BINARY, FLOATS, HALF, Node, Step, TraceError, compute_dtype, converts_exactly, used


# half precision in the generated code: values in float32 variables, arrays of int16 bit patterns, converted and
# rounded by helpers of these names (``numba_math`` and ``triton_math`` define the same ones)
_HALF_NAME = {"float16": "f16", "bfloat16": "bf16"}


def load(dtype: str, expression: str) -> str:
    """An array element of ``dtype`` as a value of its compute dtype."""
    return f"{_HALF_NAME[dtype]}_to_f32({expression})" if dtype in HALF else expression


def store(dtype: str, expression: str) -> str:
    """A value of ``dtype`` (in its compute dtype) as an array element."""
    return f"f32_to_{_HALF_NAME[dtype]}({expression})" if dtype in HALF else expression


@dataclass(frozen=True)
class Dialect:
    select: Callable[[str, str, str], str]  # (condition, if true, if false) -> expression
    convert: Callable[[str, str], str]  # (expression, "float32" or "float64") -> the value converted to that type
    literal: Callable[[float, str], str]  # (value, "float32" or "float64") -> a typed constant (value exact in it)
    abs: str  # function names
    exp_storage: str  # the exponential in the surrogate's compute dtype
    # (float32 expression, "float16"/"bfloat16") -> that value rounded, in float32
    round_half: Callable[[str, str], str] = lambda value, dtype: f"round_{_HALF_NAME[dtype]}({value})"
    # (numerator, denominator, compute dtype) -> the correctly rounded quotient (Triton's ``/`` in float32 is an
    # approximate division on NVIDIA GPUs, ``div.full.f32``; PyTorch divides with IEEE rounding)
    divide: Callable[[str, str, str], str] = lambda a, b, compute: f"{a} / {b}"
    # whose elementwise kernels the generated code reproduces: "cpu" (the numba kernels, Triton's interpreter) or
    # "cuda" (Triton on a GPU); they read operands of a wider dtype differently in half precision (``_operand``)
    reads: str = "cpu"

    def wide(self, expression: str) -> str:
        return self.convert(expression, "float64")

    def from_wide(self, dtype: str, expression: str) -> str:
        """A float64 value (a gradient) rounded to ``dtype`` (through float32, as PyTorch converts), in its
        compute dtype."""
        if dtype == "float64":
            return expression
        value = self.convert(expression, "float32")
        return self.round_half(value, dtype) if dtype in HALF else value


def array_dtypes(step: Step) -> dict[str, str]:
    """The dtype of each array a generated kernel reads or fills, by the emitters' names: x, S (spikes),
    M (membranes), s_<state variable>, p_<parameter>."""
    return {"x": step.dtype_of("x"), "S": step.dtype_of("spikes"), "M": step.dtype_of("membranes"),
            **{f"s_{s}": step.dtype_of(f"state:{s}") for s in step.state},
            **{f"p_{p}": step.dtype_of(f"param:{p}") for p in step.params}}  # fmt: skip


def rounded(value: float, dtype: str) -> float:
    """``value`` rounded to ``dtype`` as PyTorch rounds a Python scalar operand (exact as a Python float)."""
    return float(torch.tensor(value, dtype=torch.float64).to(getattr(torch, dtype)))


OPS_OF_VALUES = (*BINARY, "neg", "relu", "detach", "cast")  # operations of their arguments alone


def invariant(step: Step) -> list[bool]:
    """Operations whose value depends on parameters (and constants) only: the same at every step."""
    out = []
    for n in step.nodes:
        if n.kind in ("param", "const"):
            out.append(True)
        else:
            out.append(n.kind in OPS_OF_VALUES and all(out[a] for a in n.args))
    return out


def hoisted(step: Step) -> list[int]:
    """The used operations worth computing once before the time loop (invariant, not a bare leaf or constant)."""
    keep, inv = used(step), invariant(step)
    return [k for k, n in enumerate(step.nodes) if keep[k] and inv[k] and n.kind not in ("param", "const")]


def _narrowed(d: Dialect, expression: str, source: str, target: str) -> str:
    """A ``source`` value (in its compute dtype) rounded to ``target``, as PyTorch converts: float64 to half
    precision through float32 (c10's ``Half``/``BFloat16`` are built from a float)."""
    if target in HALF:
        if source == "float64":
            expression = d.convert(expression, "float32")
        return d.round_half(expression, target)
    return d.convert(expression, target)


def _operand(step: Step, d: Dialect, node: Node, position: int) -> str:
    """Argument ``position`` of ``node`` as PyTorch's kernel on ``d.reads`` reads it, in the node's compute
    dtype: a narrower operand converted exactly; a wider one (a 0-dim tensor or a Python number, which
    PyTorch's type promotion ranks below the result's operand) rounded to the result dtype, except where
    PyTorch reads it at float32 precision in a half-precision operation:

    - on CPU, the second operand of a product or quotient (its reduced-float scalar path);
    - on CUDA, a Python number in any position of ``+ - * /`` (a CPU scalar, read in the operation's float32
      "opmath"; only CPU operations first convert their inputs to the result dtype), while a 0-dim parameter
      (a CUDA tensor) is converted to the result dtype as it is loaded. CUDA divides by a Python number as a
      product with its float32 reciprocal; no profile does, and the generator refuses it unless the reciprocal
      is exact (a power of two), where the two agree.
    """
    arg = node.args[position]
    a = step.nodes[arg]
    target, compute = node.dtype, compute_dtype(node.dtype)
    if d.reads == "cuda":
        scalar_read = target in HALF and a.kind == "const" and node.kind in BINARY
        if a.kind == "const" and node.kind == "div" and position == 1 and math.frexp(a.value)[0] not in (0.5, -0.5):
            raise TraceError(f"a division by the Python number {a.value!r}, which PyTorch computes on CUDA as a "
                             "product with its reciprocal")
    else:
        scalar_read = target in HALF and node.kind in ("mul", "div") and position == 1
    if a.kind == "const":
        return d.literal(rounded(a.value, "float32" if scalar_read else target), compute)
    if a.dtype == target:
        return f"n{arg}"
    if converts_exactly(a.dtype, target):
        return d.convert(f"n{arg}", compute)
    if scalar_read:
        return d.convert(f"n{arg}", "float32")
    return _narrowed(d, f"n{arg}", a.dtype, target)


# a dialect writing a constant operand as its plain value (``_operand`` on a constant gives the value it reads)
_VALUE = Dialect(select=None, convert=None, literal=lambda value, compute: repr(value), round_half=None, abs="",
                 exp_storage="")  # fmt: skip


def forward_statements(
    step: Step, d: Dialect, leaf: Callable[[Node], str], given: dict[int, str] | None = None,
    only: set[int] | None = None,
) -> list[str]:
    """``n<k> = ...`` for every used node, in evaluation order, each in its compute dtype (float64 for float64
    nodes, else float32: a half-precision node holds its value, rounded after the operation, in float32).
    ``leaf(node)`` writes the expression of a leaf (x, state, param, live) in its compute dtype; ``given`` maps
    nodes to expressions computed elsewhere (hoisted values); ``only`` restricts the statements to those nodes.
    Constants are written into the operations that read them (each reads it at its own precision)."""
    keep = used(step)
    given = given or {}
    lines = []
    for k, n in enumerate(step.nodes):
        if not keep[k] or n.kind == "const" or (only is not None and k not in only):
            continue
        compute = compute_dtype(n.dtype) if n.dtype in FLOATS else None
        if k in given:
            expr = given[k]
        elif n.kind in ("x", "state", "param", "live"):
            expr = leaf(n)
        elif n.kind == "div":
            expr = d.divide(_operand(step, d, n, 0), _operand(step, d, n, 1), compute)
            if n.dtype in HALF:
                expr = d.round_half(expr, n.dtype)
        elif n.kind in BINARY:
            expr = f"{_operand(step, d, n, 0)} {BINARY[n.kind]} {_operand(step, d, n, 1)}"
            if n.dtype in HALF:
                expr = d.round_half(expr, n.dtype)
        elif n.kind == "neg":
            expr = f"-n{n.args[0]}"
        elif n.kind == "detach":
            expr = f"n{n.args[0]}"
        elif n.kind == "relu":
            zero = d.literal(0.0, compute)
            expr = d.select(f"n{n.args[0]} < {zero}", zero, f"n{n.args[0]}")
        elif n.kind == "cast":
            source = step.nodes[n.args[0]].dtype
            if converts_exactly(source, n.dtype):
                expr = d.convert(f"n{n.args[0]}", compute)
            else:
                expr = _narrowed(d, f"n{n.args[0]}", source, n.dtype)
        elif n.kind == "step":
            zero, one = d.literal(0.0, compute), d.literal(1.0, compute)
            expr = d.select(f"n{n.args[0]} {'>' if n.strict else '>='} {zero}", one, zero)
        elif n.kind == "select":
            expr = d.select(f"n{n.args[2]}", _operand(step, d, n, 0), _operand(step, d, n, 1))
        else:  # pragma: no cover - trace.OPS lists every kind
            raise AssertionError(n.kind)
        lines.append(f"n{k} = {expr}")
    return lines


def surrogate_dtype(step: Step) -> str:
    """The dtype of the margins the step's spikes are taken of (the surrogate derivatives are evaluated in its
    compute dtype)."""
    dtypes = {step.nodes[n.args[0]].dtype for n in step.nodes if n.kind == "step"}
    if len(dtypes) > 1:
        raise TraceError(f"spikes of margins in several dtypes ({', '.join(sorted(dtypes))})")
    return dtypes.pop() if dtypes else "float32"


def adjoint_statements(step: Step, d: Dialect, seeds: dict[int, list[str]], surrogate: str) -> tuple[list[str], dict[int, str]]:
    """Reverse-mode statements for one step: ``g<k>`` (float64) is dL/d n<k>. ``seeds``: incoming adjoints of
    output nodes (expressions). Returns the statements and, per leaf node that receives gradient, the name of
    its adjoint. ``surrogate``: the derivative's expression in ``m`` (see ``surrogate_derivative``)."""
    keep = used(step)
    wide = {k: (f"n{k}" if n.dtype == "float64" else d.wide(f"n{k}")) for k, n in enumerate(step.nodes)
            if keep[k] and n.kind != "const"}
    contributions: dict[int, list[str]] = {k: list(v) for k, v in seeds.items()}
    lines = []
    leaves = {}
    for k in range(len(step.nodes) - 1, -1, -1):
        n = step.nodes[k]
        if not keep[k] or k not in contributions:
            continue
        total = " + ".join(contributions[k])
        lines.append(f"g{k} = {total}")
        if n.kind in ("x", "state", "param"):
            leaves[k] = f"g{k}"
            continue
        if n.kind in ("const", "live"):
            continue
        values = {"A": None, "B": None, "C": None}
        for position, (name, arg) in enumerate(zip("ABC", n.args)):
            if name == "C":
                values[name] = f"n{arg}"
            elif step.nodes[arg].kind == "const":  # the constant as the operation read it
                values[name] = d.literal(float(_operand(step, replace(_VALUE, reads=d.reads), n, position)), "float64")
            else:
                values[name] = wide[arg]
        values["As"] = f"n{n.args[0]}" if n.args else None  # the first argument in its compute dtype
        for arg, rule in zip(n.args, ADJOINTS[n.kind]):
            if rule is None or step.nodes[arg].kind in ("const", "live"):
                continue
            expr = _instantiate(rule, f"g{k}", values, d, surrogate)
            contributions.setdefault(arg, []).append(f"({expr})")
    return lines, leaves


def _instantiate(rule: str, g: str, values: dict, d: Dialect, surrogate: str) -> str:
    zero = d.literal(0.0, "float64")
    if rule == "live":
        return d.select(values["C"], g, zero)
    if rule == "refractory":
        return d.select(values["C"], zero, g)
    if rule == "relu":
        return d.select(f"{values['A']} > {zero}", g, zero)
    if rule == "sgd":
        return f"{g} * {surrogate.format(m=values['A'], ms=values['As'])}" if surrogate else zero
    return rule.format(g=g, **{k: v for k, v in values.items() if k != "As"})


def surrogate_derivative(kind: str, d: Dialect, dtype: str) -> str:
    """dS/dm as a format string in ``{m}`` (the margin as float64), ``{ms}`` (the margin in its compute dtype;
    ``dtype`` is the margin's, ``surrogate_dtype``) and the constants ``c0``..``c4`` (``surrogate_constants``); ""
    for no gradient (heaviside). The sigmoid is evaluated in the margin's dtype, operation by operation as
    PyTorch's CPU kernel evaluates it in the reference (``1 / (1 + exp(-z))``, each step rounded; in half
    precision the product, the sigmoid and ``1 - sigmoid`` rounded to it): ``1 - sigmoid`` loses most of its
    digits in the tails, and the gradients must match that reference, not a more exact value."""
    A = d.abs
    compute = compute_dtype(dtype)

    def rounded_to_margin(expression):
        return d.round_half(expression, dtype) if dtype in HALF else expression

    if kind == "atan":  # c0 = pi/2*alpha, c1 = alpha/2
        return "(c1 / (1.0 + (c0 * {m}) * (c0 * {m})))"
    if kind in ("fast_sigmoid", "superspike"):  # c0 = slope
        return f"(1.0 / ((c0 * {A}({{m}}) + 1.0) * (c0 * {A}({{m}}) + 1.0)))"
    if kind == "sigmoid":  # c0 = alpha; in the storage dtype, as PyTorch's CPU sigmoid: 1 / (1 + exp(-alpha*m))
        # the exponential in the storage dtype too (vector lanes); PyTorch's float32 exp is not correctly rounded
        # either, and an ulp of exp(-z) moves the rounded sigmoid by at most an ulp
        alpha, one = d.convert("c0", compute), d.literal(1.0, compute)
        z = rounded_to_margin(f"({alpha} * {{ms}})")
        sig = rounded_to_margin(f"({d.divide(one, f'({one} + {d.exp_storage}(-{z}))', compute)})")
        return d.wide(f"({rounded_to_margin(f'({one} - {sig})')} * {sig} * {alpha})")
    if kind == "multi_gaussian":  # c0 = sigma, c1 = 1/(2 sigma^2), c2 = 1/(2 wide^2), c3, c4 the two heights
        # in the storage dtype, as autograd evaluates it in the reference: three exponentials per element were
        # most of a float32 backward in float64, and float32 ones run on twice the vector lanes
        c0, c1, c2, c3, c4 = (d.convert(f"c{k}", compute) for k in range(5))
        SE = d.exp_storage
        return d.wide(f"({c3} * {SE}(-({{ms}} * {{ms}}) * {c1}) - {c4} * ({SE}(-(({{ms}} - {c0}) * ({{ms}} - {c0}))"
                         f" * {c2}) + {SE}(-(({{ms}} + {c0}) * ({{ms}} + {c0})) * {c2})))")  # fmt: skip
    if kind == "boxcar":  # c0 = width/2
        return d.select("(({m} > -c0) & ({m} <= c0))", "1.0", "0.0")
    if kind == "heaviside":
        return ""
    raise ValueError(f"no kernel formula for surrogate kind {kind!r}")


def surrogate_constants(kind: str, args) -> list[float]:
    """The five float64 constants ``surrogate_derivative`` reads (computed once, in float64)."""
    if kind == "atan":
        values = [math.pi / 2 * args[0], args[0] / 2]
    elif kind in ("fast_sigmoid", "sigmoid"):
        values = [args[0]]
    elif kind == "multi_gaussian":
        sigma, h, s, gamma = args[:4]
        wide, root = s * sigma, math.sqrt(2 * math.pi)
        values = [sigma, 1 / (2 * sigma * sigma), 1 / (2 * wide * wide), gamma * (1 + h) / (sigma * root),
                  gamma * h / (wide * root)]  # fmt: skip
    elif kind == "boxcar":
        values = [args[0] / 2]
    else:
        values = []
    return [float(v) for v in values] + [0.0] * (5 - len(values))
