"""What the numba and Triton generators share: node expressions, adjoint statements, surrogate derivatives.

A target supplies a small ``Dialect`` (how to write a select, a cast, abs/exp, a typed constant); everything
else -- the order of operations, the adjoint of each node, the surrogate formulas -- is written once here.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

from .trace import ADJOINTS, BINARY, Node, Step, used


@dataclass(frozen=True)
class Dialect:
    select: Callable[[str, str, str], str]  # (condition, if true, if false) -> expression
    to_wide: Callable[[str], str]  # a storage-dtype value as float64
    to_storage: Callable[[str], str]  # a float64 value rounded to the storage dtype
    const: Callable[[float, bool], str]  # a constant (already rounded) in the storage dtype or float64 (wide)
    abs: str  # function names
    exp_storage: str  # in the storage dtype


def rounded(value: float, dtype: torch.dtype) -> float:
    """``value`` rounded to ``dtype`` as PyTorch rounds a Python scalar operand (exact as a Python float)."""
    return float(torch.tensor(value, dtype=torch.float64).to(dtype))


OPS_OF_VALUES = (*BINARY, "neg", "relu", "detach", "cast64", "cast")  # operations of their arguments alone


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


def forward_statements(
    step: Step, d: Dialect, dtype: torch.dtype, leaf: Callable[[Node], str], given: dict[int, str] | None = None,
    only: set[int] | None = None,
) -> list[str]:
    """``n<k> = ...`` for every used node, in evaluation order, in the storage dtype (float64 where wide).
    ``leaf(node)`` writes the expression of a leaf (x, state, param, live); ``given`` maps nodes to expressions
    computed elsewhere (hoisted values); ``only`` restricts the statements to those nodes."""
    keep = used(step)
    given = given or {}
    zero, one = d.const(0.0, False), d.const(1.0, False)
    lines = []
    for k, n in enumerate(step.nodes):
        if not keep[k] or (only is not None and k not in only):
            continue
        a = [f"n{i}" for i in n.args]
        if k in given:
            expr = given[k]
        elif n.kind == "const":
            expr = d.const(n.value if n.wide else rounded(n.value, dtype), n.wide)
        elif n.kind in ("x", "state", "param", "live"):
            expr = leaf(n)
        elif n.kind in BINARY:
            expr = f"{a[0]} {BINARY[n.kind]} {a[1]}"
        elif n.kind == "neg":
            expr = f"-{a[0]}"
        elif n.kind == "detach":
            expr = a[0]
        elif n.kind == "relu":
            expr = d.select(f"{a[0]} < {d.const(0.0, n.wide)}", d.const(0.0, n.wide), a[0])
        elif n.kind == "cast64":
            expr = d.to_wide(a[0])
        elif n.kind == "cast":
            expr = d.to_storage(a[0])
        elif n.kind == "step":
            expr = d.select(f"{a[0]} {'>' if n.strict else '>='} {zero}", one, zero)
        elif n.kind == "select":
            expr = d.select(a[2], a[0], a[1])
        else:  # pragma: no cover - trace.OPS lists every kind
            raise AssertionError(n.kind)
        lines.append(f"n{k} = {expr}")
    return lines


def adjoint_statements(step: Step, d: Dialect, seeds: dict[int, list[str]], surrogate: str) -> tuple[list[str], dict[int, str]]:
    """Reverse-mode statements for one step: ``g<k>`` (float64) is dL/d n<k>. ``seeds``: incoming adjoints of
    output nodes (expressions). Returns the statements and, per leaf node that receives gradient, the name of
    its adjoint. ``surrogate``: the derivative's expression in ``m`` (see ``surrogate_derivative``)."""
    keep = used(step)
    wide = {k: (f"n{k}" if n.wide else d.to_wide(f"n{k}")) for k, n in enumerate(step.nodes) if keep[k]}
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
        for name, arg in zip("ABC", n.args):
            values[name] = wide[arg] if name != "C" else f"n{arg}"
        values["As"] = f"n{n.args[0]}" if n.args else None  # the first argument in its own precision
        for arg, rule in zip(n.args, ADJOINTS[n.kind]):
            if rule is None or step.nodes[arg].kind in ("const", "live"):
                continue
            expr = _instantiate(rule, f"g{k}", values, d, surrogate)
            contributions.setdefault(arg, []).append(f"({expr})")
    return lines, leaves


def _instantiate(rule: str, g: str, values: dict, d: Dialect, surrogate: str) -> str:
    zero = d.const(0.0, True)
    if rule == "live":
        return d.select(values["C"], g, zero)
    if rule == "refractory":
        return d.select(values["C"], zero, g)
    if rule == "relu":
        return d.select(f"{values['A']} > {zero}", g, zero)
    if rule == "sgd":
        return f"{g} * {surrogate.format(m=values['A'], ms=values['As'])}" if surrogate else zero
    return rule.format(g=g, **{k: v for k, v in values.items() if k != "As"})


def surrogate_derivative(kind: str, d: Dialect) -> str:
    """dS/dm as a format string in ``{m}`` (the margin as float64), ``{ms}`` (the margin in the storage dtype) and
    the constants ``c0``..``c4`` (``surrogate_constants``); "" for no gradient (heaviside). The sigmoid is
    evaluated in the storage dtype, operation by operation as PyTorch's CPU kernel evaluates it in the reference
    (``1 / (1 + exp(-z))``, each step rounded): in float32 ``1 - sigmoid`` loses most of its digits in the tails,
    and the gradients must match that reference, not a more exact value."""
    A = d.abs
    if kind == "atan":  # c0 = pi/2*alpha, c1 = alpha/2
        return "(c1 / (1.0 + (c0 * {m}) * (c0 * {m})))"
    if kind in ("fast_sigmoid", "superspike"):  # c0 = slope
        return f"(1.0 / ((c0 * {A}({{m}}) + 1.0) * (c0 * {A}({{m}}) + 1.0)))"
    if kind == "sigmoid":  # c0 = alpha; in the storage dtype, as PyTorch's CPU sigmoid: 1 / (1 + exp(-alpha*m))
        # the exponential in the storage dtype too (vector lanes); PyTorch's float32 exp is not correctly rounded
        # either, and an ulp of exp(-z) moves the rounded sigmoid by at most an ulp
        alpha, one = d.to_storage("c0"), d.const(1.0, False)
        sig = f"({one} / ({one} + {d.exp_storage}(-({alpha} * {{ms}}))))"
        return d.to_wide(f"(({one} - {sig}) * {sig} * {alpha})")
    if kind == "multi_gaussian":  # c0 = sigma, c1 = 1/(2 sigma^2), c2 = 1/(2 wide^2), c3, c4 the two heights
        # in the storage dtype, as autograd evaluates it in the reference: three exponentials per element were
        # most of a float32 backward in float64, and float32 ones run on twice the vector lanes
        c0, c1, c2, c3, c4 = (d.to_storage(f"c{k}") for k in range(5))
        SE = d.exp_storage
        return d.to_wide(f"({c3} * {SE}(-({{ms}} * {{ms}}) * {c1}) - {c4} * ({SE}(-(({{ms}} - {c0}) * ({{ms}} - {c0}))"
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
