"""Triton source for a traced step (``trace.Step``): a forward and a BPTT backward over [T, N] rows.

One program per block of ``BLOCK`` neurons, the time loop inside, state and parameters in registers. Launch
with ``enable_fp_fusion=False``: every operation rounded as written (no fused multiply-add), so the forward is
bitwise the reference on the same device. The layout of the stored arrays is ``emit_numba``'s (spikes,
membranes, the other state variables and one live byte per step).
"""

from __future__ import annotations

import re

import torch

from .codegen import Dialect, adjoint_statements, forward_statements, surrogate_derivative, surrogate_dtype
from .trace import Step, TraceError

_DTYPES = {torch.float32: "tl.float32", torch.float64: "tl.float64", torch.float16: "tl.float16",
           torch.bfloat16: "tl.bfloat16"}  # fmt: skip
_PTX_TYPES = {torch.float32: "fp32", torch.float64: "fp64"}


def _no_half(value, dtype):
    raise TraceError("the Triton kernels compute in float32 or float64 (no half-precision rounding)")


DIALECT = Dialect(
    select=lambda c, a, b: f"tl.where({c}, {a}, {b})",
    convert=lambda value, compute: f"{value}.to(tl.{compute})",
    # typed constants: a bare Python float would be a float32 literal in Triton
    literal=lambda value, compute: f"tl.full([BLOCK], {float(value)!r}, tl.{compute})",
    round_half=_no_half,
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


def signature(step: Step, dtype: torch.dtype, function: str) -> dict[str, str]:
    """Argument types of a generated function for ``triton.compile`` (the PTX checks)."""
    names = forward_args(step) if function.startswith("forward") else backward_args(step)
    storage = _PTX_TYPES[dtype]

    def kind(name):
        if name == "BLOCK":
            return "constexpr"
        if not name.endswith("_ptr"):
            return "i32"
        if name == "F_ptr":
            return "*u8"
        if name in ("countdown0_ptr", "countdown_out_ptr"):
            return "*i64"
        if name == "sgc_ptr" or name.startswith(("gf_", "g0_", "gp_")):
            return "*fp64" if not name.startswith("gf_") else "*" + storage
        return "*" + storage

    return {name: kind(name) for name in names}


def source(step: Step, dtype: torch.dtype, surrogate_kind: str) -> str:
    """The module text for a step of one dtype, ``dtype`` (float32 or float64; ``float64`` nodes of a float32
    step, SpikingJelly 0.0.0.0.14's ``1 - 1/tau``, compute in float64)."""
    d = DIALECT
    storage = _DTYPES[dtype]
    states, params, saved = step.state, step.params, step.saved

    def leaf(node):
        return {"x": "xr", "live": "live", "state": f"st_{node.name}", "param": f"p_{node.name}"}[node.kind]

    body = forward_statements(step, d, leaf)
    zero = d.literal(0.0, str(dtype).replace("torch.", ""))
    # lanes past N read 1.0 (no division by zero in lanes that are never stored)
    load_params = [f"    p_{p} = tl.load(p_{p}_ptr + offs, mask=mask, other=1.0)" for p in params]
    head = [
        "    offs = tl.program_id(0) * BLOCK + tl.arange(0, BLOCK)",
        "    mask = offs < N",
        "    N64 = tl.cast(N, tl.int64)  # row offsets in 64 bits (T*N may exceed 2^31)",
        *load_params,
    ]

    def forward() -> list[str]:
        return [
            f"def forward({', '.join(forward_args(step)[:-1])}, BLOCK: tl.constexpr):",
            *head,
            *(f"    st_{s} = tl.load(s0_{s}_ptr + offs, mask=mask, other=0.0)" for s in states),
            "    cd = tl.load(countdown0_ptr + offs, mask=mask, other=0).to(tl.int32)",
            "    for t in range(T):",
            "        row = t * N64 + offs",
            "        xr = tl.load(x_ptr + row, mask=mask, other=0.0)",
            "        live = cd <= 0",
            *_indent(body, 2),
            f"        cd = tl.where(n{step.spike} != {zero}, R, tl.maximum(cd - 1, 0))",
            *(f"        st_{s} = n{step.new_state[s]}" for s in states),
            f"        tl.store(S_ptr + row, n{step.emitted}, mask=mask)",
            f"        tl.store(M_ptr + row, n{step.membrane}, mask=mask)",
            *(f"        tl.store(sv_{s}_ptr + row, n{step.new_state[s]}, mask=mask)" for s in saved),
            "        tl.store(F_ptr + row, live.to(tl.uint8), mask=mask)",
            *(f"    tl.store(f_{s}_ptr + offs, st_{s}, mask=mask)" for s in states),
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
            stored = f"sv_{s}_ptr" if s in saved else "M_ptr"
            prev += [f"        st_{s} = tl.load({stored} + prev_row, mask=mask, other=0.0)",
                     f"        st_{s} = tl.where(t > 0, st_{s}, s0_{s})"]  # fmt: skip
        return [
            f"def backward({', '.join(backward_args(step)[:-1])}, BLOCK: tl.constexpr):",
            *head,
            *(f"    c{k} = tl.load(sgc_ptr + {k})" for k in range(5)),
            *(f"    s0_{s} = tl.load(s0_{s}_ptr + offs, mask=mask, other=0.0)" for s in states),
            *(f"    a_{s} = tl.load(gf_{s}_ptr + offs, mask=mask, other=0.0).to(tl.float64)" for s in states),
            *(f"    acc_{p} = {zero64}" for p in params),
            "    for k in range(T):",
            "        t = T - 1 - k",
            "        row = t * N64 + offs",
            "        xr = tl.load(x_ptr + row, mask=mask, other=0.0)",
            "        gSr = tl.load(gS_ptr + t * gS_stride + offs, mask=mask, other=0.0)",
            "        gMr = tl.load(gM_ptr + t * gM_stride + offs, mask=mask, other=0.0)",
            "        live = tl.load(F_ptr + row, mask=mask, other=0) != 0",
            "        prev_row = tl.maximum(t - 1, 0) * N64 + offs  # step 0 reads row 0, replaced by s0 below",
            *prev,
            *_indent(body, 2),
            *_indent(adjoint, 2),
            f"        tl.store(gx_ptr + row, ({by_leaf.get(('x', ''), zero64)}).to({storage}), mask=mask)",
            *(f"        a_{s} = {by_leaf.get(('state', s), zero64)}" for s in states),
            *(f"        acc_{p} += {by_leaf[('param', p)]}" for p in params if ("param", p) in by_leaf),
            *(f"    tl.store(g0_{s}_ptr + offs, a_{s}, mask=mask)" for s in states),
            *(f"    tl.store(gp_{p}_ptr + offs, acc_{p}, mask=mask)" for p in params),
        ]

    header = [
        f'"""Generated by snn_blockbackend.kernels.emit_triton for {step.profile}, {dtype}, surrogate '
        f'{surrogate_kind}. Do not edit: regenerated from the profile."""',
        "import triton",
        "import triton.language as tl",
        "",
        *("# " + line for line in step.listing().splitlines()),
        "",
        "",
    ]
    parts = [header]
    for function in (forward(), backward()):
        parts += [["@triton.jit"], function, ["", ""]]
    return "\n".join(line for part in parts for line in part)
