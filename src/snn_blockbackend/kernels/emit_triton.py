"""Triton source for a traced step (``trace.Step``): a forward and a BPTT backward over [T, N] rows.

One program per block of ``BLOCK`` neurons, the time loop inside, state and parameters in registers. Launch
with ``enable_fp_fusion=False``: every operation rounded as written (no fused multiply-add), so the forward is
bitwise the reference on the same device. The layout of the stored arrays is ``emit_numba``'s (spikes,
membranes, the other state variables and one live byte per step).
"""

from __future__ import annotations

import re
from dataclasses import replace

from .codegen import (
    Dialect, adjoint_statements, array_dtypes, forward_statements, load, store, surrogate_derivative, surrogate_dtype,
)
from .trace import Step, compute_dtype

# per dtype: the PTX type of its arrays (half precision as int16 bit patterns, as the provider passes them) and
# what a masked lane of a parameter reads (1.0: no division by zero in lanes that are never stored)
_PTX_TYPES = {"float16": "i16", "bfloat16": "i16", "float32": "fp32", "float64": "fp64"}
_ONE = {"float16": "0x3C00", "bfloat16": "0x3F80", "float32": "1.0", "float64": "1.0"}


DIALECT = Dialect(
    select=lambda c, a, b: f"tl.where({c}, {a}, {b})",
    convert=lambda value, compute: f"{value}.to(tl.{compute})",
    # typed constants: a bare Python float would be a float32 literal in Triton
    literal=lambda value, compute: f"tl.full([BLOCK], {float(value)!r}, tl.{compute})",
    abs="tl.abs",
    exp_storage="tl.exp",
    # IEEE division in float32 (``/`` compiles to the approximate ``div.full.f32``); float64's ``/`` is ``div.rn.f64``
    divide=lambda a, b, compute: f"tl.math.div_rn({a}, {b})" if compute == "float32" else f"{a} / {b}",
)


# PTX instructions that round differently from PyTorch's elementwise kernels: fused multiply-adds (one rounding
# for two operations) and the approximate division, reciprocal, square root and exponentials
_INEXACT_PTX = re.compile(r"\b(?:fma\.rn|div\.full|div\.approx|rcp\.approx|sqrt\.approx|ex2\.approx|lg2\.approx)\.[a-z0-9.]+")


def inexact_instructions(ptx: str) -> list[str]:
    """The instructions in ``ptx`` (a forward's) that would make its values differ from the reference's: it must
    have none (the tests compile every forward for sm_80 and sm_90 and check)."""
    return sorted(set(_INEXACT_PTX.findall(ptx)))


def _indent(lines, depth):
    return [" " * (4 * depth) + line for line in lines]


def forward_args(step: Step) -> list[str]:
    return ["x_ptr", "countdown0_ptr", *(f"s0_{s}_ptr" for s in step.state), *(f"p_{p}_ptr" for p in step.params),
            "S_ptr", "M_ptr", "F_ptr", "countdown_out_ptr", *(f"f_{s}_ptr" for s in step.state),
            *(f"sv_{s}_ptr" for s in step.saved), "T", "N", "R", "BLOCK"]  # fmt: skip


def backward_args(step: Step) -> list[str]:
    return ["gS_ptr", "gS_stride", "gM_ptr", "gM_stride", "x_ptr", "F_ptr", "sgc_ptr", "M_ptr",
            *(f"s0_{s}_ptr" for s in step.state), *(f"sv_{s}_ptr" for s in step.saved),
            *(f"p_{p}_ptr" for p in step.params), *(f"gf_{s}_ptr" for s in step.state), "gx_ptr",
            *(f"g0_{s}_ptr" for s in step.state), *(f"gp_{p}_ptr" for p in step.params), "T", "N", "BLOCK"]  # fmt: skip


def signature(step: Step, function: str) -> dict[str, str]:
    """Argument types of a generated function for ``triton.compile`` (the PTX checks)."""
    names = forward_args(step) if function.startswith("forward") else backward_args(step)
    dt = array_dtypes(step)
    prefixes = {"x_": "x", "gx_": "x", "S_": "S", "gS_": "S", "M_": "M", "gM_": "M"}

    def kind(name):
        if name == "BLOCK":
            return "constexpr"
        if not name.endswith("_ptr"):
            return "i32"
        if name == "F_ptr":
            return "*u8"
        if name in ("countdown0_ptr", "countdown_out_ptr"):
            return "*i64"
        if name == "sgc_ptr" or name.startswith(("g0_", "gp_")):
            return "*fp64"
        head, _, rest = name.removesuffix("_ptr").partition("_")
        key = prefixes.get(head + "_") or (f"p_{rest}" if head == "p" else f"s_{rest}")
        return "*" + _PTX_TYPES[dt[key]]

    return {name: kind(name) for name in names}


def source(step: Step, surrogate_kind: str, reads: str = "cpu") -> str:
    """The module text for a step: every array in the dtype of what it holds (``Step.dtype_of``; half precision
    as int16 bit patterns, computed in float32 and rounded after every operation; ``float64`` nodes of a float32
    step, SpikingJelly 0.0.0.0.14's ``1 - 1/tau``, in float64). ``reads``: whose kernels' reading of wider
    operands to reproduce, "cpu" (the interpreter, on CPU tensors) or "cuda" (``codegen._operand``)."""
    d = replace(DIALECT, reads=reads)
    states, params, saved = step.state, step.params, step.saved
    dt = array_dtypes(step)

    def leaf(node):
        return {"x": "xr", "live": "live", "state": f"st_{node.name}", "param": f"p_{node.name}"}[node.kind]

    def loaded(key, pointer, other="0"):
        return load(dt[key], f"tl.load({pointer}, mask=mask, other={other})")

    body = forward_statements(step, d, leaf)
    zero = d.literal(0.0, compute_dtype(step.nodes[step.spike].dtype))
    head = [
        "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
        "    mask = offs < N",
        "    N64 = tl.cast(N, tl.int64)  # row offsets in 64 bits (T*N may exceed 2^31)",
        *(f"    p_{p} = {loaded(f'p_{p}', f'p_{p}_ptr + offs', _ONE[dt[f'p_{p}']])}" for p in params),
    ]

    def forward() -> list[str]:
        return [
            f"def forward({', '.join(forward_args(step)[:-1])}, BLOCK: tl.constexpr):",
            *head,
            *(f"    st_{s} = {loaded(f's_{s}', f's0_{s}_ptr + offs')}" for s in states),
            "    cd = tl.load(countdown0_ptr + offs, mask=mask, other=0).to(tl.int32)",
            "    for t in range(T):",
            "        row = t * N64 + offs",
            f"        xr = {loaded('x', 'x_ptr + row')}",
            "        live = cd <= 0",
            *_indent(body, 2),
            f"        cd = tl.where(n{step.spike} != {zero}, R, tl.maximum(cd - 1, 0))",
            *(f"        st_{s} = n{step.new_state[s]}" for s in states),
            f"        tl.store(S_ptr + row, {store(dt['S'], f'n{step.emitted}')}, mask=mask)",
            f"        tl.store(M_ptr + row, {store(dt['M'], f'n{step.membrane}')}, mask=mask)",
            *(f"        tl.store(sv_{s}_ptr + row, {store(dt[f's_{s}'], f'n{step.new_state[s]}')}, mask=mask)" for s in saved),
            "        tl.store(F_ptr + row, live.to(tl.uint8), mask=mask)",
            *(f"    tl.store(f_{s}_ptr + offs, {store(dt[f's_{s}'], f'st_{s}')}, mask=mask)" for s in states),
            "    tl.store(countdown_out_ptr + offs, cd.to(tl.int64), mask=mask)",
        ]

    seeds: dict[int, list[str]] = {}
    for s in states:
        seeds.setdefault(step.new_state[s], []).append(f"a_{s}")
    seeds.setdefault(step.membrane, []).append("gMr.to(tl.float64)")
    seeds.setdefault(step.emitted, []).append("gSr.to(tl.float64)")
    adjoint, leaves = adjoint_statements(step, d, seeds, surrogate_derivative(surrogate_kind, d, surrogate_dtype(step)))
    by_leaf = {(step.nodes[k].kind, step.nodes[k].name): g for k, g in leaves.items()}
    zero64 = d.literal(0.0, "float64")

    def backward() -> list[str]:
        prev = []
        for s in states:
            stored = f"sv_{s}_ptr" if s in saved else "M_ptr"  # M holds the state's values in its dtype
            prev += [f"        st_{s} = {loaded(f's_{s}', f'{stored} + prev_row')}",
                     f"        st_{s} = tl.where(t > 0, st_{s}, s0_{s})"]  # fmt: skip
        gx = store(dt["x"], d.from_wide(dt["x"], by_leaf.get(("x", ""), zero64)))
        return [
            f"def backward({', '.join(backward_args(step)[:-1])}, BLOCK: tl.constexpr):",
            *head,
            *(f"    c{k} = tl.load(sgc_ptr + {k})" for k in range(5)),
            *(f"    s0_{s} = {loaded(f's_{s}', f's0_{s}_ptr + offs')}" for s in states),
            *(f"    a_{s} = {loaded(f's_{s}', f'gf_{s}_ptr + offs')}.to(tl.float64)" for s in states),
            *(f"    acc_{p} = {zero64}" for p in params),
            "    for k in range(T):",
            "        t = T - 1 - k",
            "        row = t * N64 + offs",
            f"        xr = {loaded('x', 'x_ptr + row')}",
            f"        gSr = {loaded('S', 'gS_ptr + t * gS_stride + offs')}",
            f"        gMr = {loaded('M', 'gM_ptr + t * gM_stride + offs')}",
            "        live = tl.load(F_ptr + row, mask=mask, other=0) != 0",
            "        prev_row = tl.maximum(t - 1, 0) * N64 + offs  # step 0 reads row 0, replaced by s0 below",
            *prev,
            *_indent(body, 2),
            *_indent(adjoint, 2),
            f"        tl.store(gx_ptr + row, {gx}, mask=mask)",
            *(f"        a_{s} = {by_leaf.get(('state', s), zero64)}" for s in states),
            *(f"        acc_{p} += {by_leaf[('param', p)]}" for p in params if ("param", p) in by_leaf),
            *(f"    tl.store(g0_{s}_ptr + offs, a_{s}, mask=mask)" for s in states),
            *(f"    tl.store(gp_{p}_ptr + offs, acc_{p}, mask=mask)" for p in params),
        ]

    header = [
        f'"""Generated by snn_blockbackend.kernels.emit_triton for {step.profile}, surrogate {surrogate_kind}, '
        f'operands read as PyTorch on {reads} reads them. Do not edit: regenerated from the profile."""',
        "import triton",
        "import triton.language as tl",
        "",
        "from snn_blockbackend.kernels.triton_math import bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16",
        "from snn_blockbackend.kernels.triton_math import round_bf16, round_f16",
        "",
        *("# " + line for line in step.listing().splitlines()),
        "",
        "",
    ]
    parts = [header]
    for function in (forward(), backward()):
        parts += [["@triton.jit"], function, ["", ""]]
    return "\n".join(line for part in parts for line in part)
