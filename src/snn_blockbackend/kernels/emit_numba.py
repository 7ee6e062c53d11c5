"""numba source for a traced step (``trace.Step``): a forward and a BPTT backward over [T, N] rows.

Layout: each generated function (``forward_chunk``, ``backward_chunk``) handles one chunk of neurons, ``lo`` to
``lo + width``; ``providers.numba_threads.launch`` runs the chunks in parallel, on PyTorch's OpenMP threads
through the module's ``forward_launch``/``backward_launch`` (C callbacks that take every argument from one block
of int64 words: addresses and integers, in the chunk function's order after three words T, N, width and the
address of a chunk counter), or on Python threads. Within a chunk the time loop is
outside and a branch-free loop over the chunk's neurons inside, so rows are read and written contiguously and the neuron loop can vectorize. No fast-math: every operation is rounded as
written (no contraction into fused multiply-adds), which keeps the forward bitwise equal to the reference.

The forward stores, per step, the spike output, the membrane, every other state variable and one byte saying
whether the neuron was live (not refractory); the backward reloads the previous state, recomputes the step's
nodes bitwise, and runs the adjoint statements in float64.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import torch

from .codegen import (
    Dialect, adjoint_statements, array_dtypes, forward_statements, hoisted, load, store, surrogate_derivative,
    surrogate_dtype,
)
from .trace import Step, compute_dtype, outputs, reached

# per dtype: the element type of its arrays (half precision as its int16 bit patterns, as torch's
# ``view(torch.int16)`` gives them; the values are computed in float32, rounded after every operation)
_POINTER = {"float16": "int16", "bfloat16": "int16", "float32": "float32", "float64": "float64"}


def _np(compute: str) -> str:
    return f"np.{compute}"


DIALECT = Dialect(
    select=lambda c, a, b: f"({a} if {c} else {b})",
    convert=lambda value, compute: f"{_np(compute)}({value})",
    literal=lambda value, compute: f"{_np(compute)}({float(value)!r})",
    abs="abs",
    # the module binds it to numba_math.exp32 (float32) or exp (float64): inlined, they vectorize (math.exp is a
    # call per element)
    exp_storage="sexp",
)


# LLVM's loop vectorizer gives up on a loop that touches more than a few arrays it cannot prove distinct
# (runtime alias checks above a threshold); a generated backward touches a dozen or more. Raise the threshold
# (an LLVM option of this process, read when numba compiles; it only lets more loops vectorize).
LLVM_OPTIONS = ("-vectorize-memory-check-threshold=4096", "-runtime-memory-check-threshold=4096")


def configure_llvm() -> None:
    import llvmlite.binding

    for option in LLVM_OPTIONS:
        llvmlite.binding.set_option("snn_blockbackend", option)


def _math_version() -> str:
    """A digest of ``numba_math``'s and ``numba_pointers``' source: written into each module, so that numba's
    cache (which keys on the module file and does not see the functions it inlines from elsewhere) recompiles when
    they change."""
    from . import numba_math, numba_pointers

    digest = hashlib.sha256()
    for module in (numba_math, numba_pointers):
        digest.update(Path(module.__file__).read_bytes())
    return digest.hexdigest()[:16]


# how a launch function reads each argument of a chunk function from its word: a value, or the address of an
# array of the argument's element type (a ``_POINTER`` name or "uint8", "int64") and shape ("rows": [T, N];
# "grad_rows": [1, N] if the next word, the argument's uniform flag, is nonzero, else [T, N]; "vec": [N];
# "consts": the five surrogate constants)
_SHAPES = {"rows": "(T, N)", "vec": "(N,)", "consts": "(5,)"}


def _launch(function: str, arguments: list[tuple[str, str, str]]) -> list[str]:
    """``{function}_launch(words)``, which runs ``{function}_chunk`` on chunks of ``width`` neurons until none is
    left (the chunk counter is shared: each calling thread takes the next one). Plain Python in the module:
    ``numba_threads`` compiles it into a C callback (a numba ``cfunc``) when it is first launched, so importing
    a module compiles nothing."""
    lines = [
        f"def {function}_launch(words):",
        "    T, N, width = words[0], words[1], words[2]",
        "    next_chunk = int64_at(words[3])",
    ]
    for k, (name, kind, element) in enumerate(arguments, start=4):
        if kind == "int":
            lines.append(f"    {name} = words[{k}]")
        elif kind == "flag":
            lines.append(f"    {name} = words[{k}] != 0")
        elif kind == "grad_rows":
            lines.append(f"    {name} = numba.carray({element}_at(words[{k}]), (1 if words[{k + 1}] != 0 else T, N))")
        else:
            lines.append(f"    {name} = numba.carray({element}_at(words[{k}]), {_SHAPES[kind]})")
    return [
        *lines,
        "    while True:",
        "        lo = fetch_add(next_chunk, 1) * width",
        "        if lo >= N:",
        "            break",
        f"        {function}_chunk(lo, min(width, N - lo), {', '.join(name for name, _, _ in arguments)})",
    ]


def _indent(lines, depth):
    return [" " * (4 * depth) + line for line in lines]


def source(step: Step, surrogate_kind: str) -> str:
    """The module text: ``forward_chunk(lo, width, ...)`` and ``backward_chunk(lo, width, ...)`` (argument order:
    their signatures; the numba provider passes the arrays in that order). Every array has the dtype of what it
    holds (``Step.dtype_of``), half precision as int16 bit patterns."""
    states, params, saved = step.state, step.params, step.saved
    dt = array_dtypes(step)

    def leaf_forward(node):
        return {"x": "xi", "live": "live", "state": f"st_{node.name}[i]", "param": f"pc_{node.name}[i]"}[node.kind]

    def leaf_backward(node):
        if node.kind == "state":
            return load(dt[f"s_{node.name}"], f"pv_{node.name}[i]")
        return {"x": "xi", "live": "live", "param": f"pc_{node.name}[i]"}[node.kind]

    def vector_loads(names, prefix, target, source):
        """Chunk-local copies of per-neuron arrays in their compute dtype: fresh arrays LLVM knows alias
        nothing, so the neuron loop vectorizes cheaply."""
        lines = [f"    {target}_{n} = np.empty(width, dtype={_np(compute_dtype(dt[f'{prefix}_{n}']))})" for n in names]
        if names:
            lines += ["    for i in range(width):",
                      *(f"        {target}_{n}[i] = {load(dt[f'{prefix}_{n}'], f'{source}_{n}[lo + i]')}" for n in names)]  # fmt: skip
        return lines

    # operations on parameters only (Norse's dt*tau_mem_inv, ...): computed once per chunk, read per step
    lifted = hoisted(step)
    needed = reached(step, lifted)
    in_loop = reached(step, outputs(step), stop=set(lifted))  # not the leaves only the hoisted operations read
    body_fwd = forward_statements(step, DIALECT, leaf_forward, given={k: f"hc_{k}[i]" for k in lifted}, only=in_loop)
    lift = [
        *(f"    hc_{k} = np.empty(width, dtype={_np(compute_dtype(step.nodes[k].dtype))})" for k in lifted),
        "    for i in range(width):",
        *_indent(forward_statements(step, DIALECT, leaf_forward, only=needed), 2),
        *(f"        hc_{k}[i] = n{k}" for k in lifted),
    ] if lifted else []
    zero = DIALECT.literal(0.0, compute_dtype(step.nodes[step.spike].dtype))

    def typed(key):
        return _POINTER[dt[key]]

    forward_arguments = [
        ("x", "rows", typed("x")), ("countdown0", "vec", "int64"), ("R", "int", ""),
        *((f"s0_{s}", "vec", typed(f"s_{s}")) for s in states),
        *((f"p_{p}", "vec", typed(f"p_{p}")) for p in params), ("S", "rows", typed("S")),
        ("M", "rows", typed("M")), ("F", "rows", "uint8"), ("countdown_out", "vec", "int64"),
        *((f"f_{s}", "vec", typed(f"s_{s}")) for s in states),
        *((f"sv_{s}", "rows", typed(f"s_{s}")) for s in saved),
        ("x_check", "vec", _POINTER[compute_dtype(dt["x"])]),
    ]  # fmt: skip

    def forward() -> list[str]:
        return [
            f"def forward_chunk(lo, width, {', '.join(name for name, _, _ in forward_arguments)}):",
            "    T, N = x.shape",
            "    R32, one32, zero32 = np.int32(R), np.int32(1), np.int32(0)",
            *vector_loads(states, "s", "st", "s0"),
            "    cd = countdown0[lo:lo + width].astype(np.int32)",
            *vector_loads(params, "p", "pc", "p"),
            "    hi = lo + width",
            # x - x is 0 for a finite x and NaN for NaN/Inf: summed per neuron, it is the caller's finiteness check
            # of the input, made while the input streams through anyway (a separate pass would read it again)
            f"    chk = np.zeros(width, dtype={_np(compute_dtype(dt['x']))})",
            *lift,
            "    for t in range(T):",
            "        xr, Sr, Mr = x[t, lo:hi], S[t, lo:hi], M[t, lo:hi]",
            *(f"        svr_{s} = sv_{s}[t, lo:hi]" for s in saved),
            "        Fr = F[t, lo:hi]",
            "        for i in range(width):",
            f"            xi = {load(dt['x'], 'xr[i]')}",
            "            chk[i] += xi - xi",
            "            count = cd[i]",
            "            live = count <= zero32",
            *_indent(body_fwd, 3),
            # integer arithmetic, no select: a select on the spike here kept the loop from vectorizing (3x slower)
            "            down = count - np.int32(count > zero32)",
            f"            fired = np.int32(n{step.spike} != {zero})",
            "            cd[i] = fired * R32 + (one32 - fired) * down",
            *(f"            st_{s}[i] = n{step.new_state[s]}" for s in states),
            f"            Sr[i] = {store(dt['S'], f'n{step.emitted}')}",
            f"            Mr[i] = {store(dt['M'], f'n{step.membrane}')}",
            *(f"            svr_{s}[i] = {store(dt[f's_{s}'], f'n{step.new_state[s]}')}" for s in saved),
            "            Fr[i] = np.uint8(live)",
            "    for i in range(width):",
            *(f"        f_{s}[lo + i] = {store(dt[f's_{s}'], f'st_{s}[i]')}" for s in states),
            "        countdown_out[lo + i] = cd[i]",
            "        x_check[lo + i] = chk[i]",
        ]

    seeds: dict[int, list[str]] = {}
    for s in states:
        seeds.setdefault(step.new_state[s], []).append(f"ga_{s}")
    seeds.setdefault(step.membrane, []).append(f"np.float64({load(dt['M'], 'gMr[i]')})")
    seeds.setdefault(step.emitted, []).append(f"np.float64({load(dt['S'], 'gSr[i]')})")
    surrogate = surrogate_derivative(surrogate_kind, DIALECT, surrogate_dtype(step))
    adjoint, leaves = adjoint_statements(step, DIALECT, seeds, surrogate)
    by_leaf = {}
    for k, g in leaves.items():
        node = step.nodes[k]
        by_leaf[(node.kind, node.name)] = g
    prev_rows = []
    for s in states:
        stored = f"sv_{s}" if s in saved else "M"
        prev_rows.append(f"        pv_{s} = {stored}[t - 1, lo:hi] if t > 0 else s0_{s}[lo:hi]")
    body_bwd = forward_statements(step, DIALECT, leaf_backward)

    backward_arguments = [
        ("gS", "grad_rows", typed("S")), ("gS_uniform", "flag", ""), ("gM", "grad_rows", typed("M")),
        ("gM_uniform", "flag", ""), ("x", "rows", typed("x")), ("F", "rows", "uint8"),
        ("sgc", "consts", "float64"), ("M", "rows", typed("M")),
        *((f"s0_{s}", "vec", typed(f"s_{s}")) for s in states),
        *((f"sv_{s}", "rows", typed(f"s_{s}")) for s in saved),
        *((f"p_{p}", "vec", typed(f"p_{p}")) for p in params),
        *((f"gf_{s}", "vec", typed(f"s_{s}")) for s in states), ("gx", "rows", typed("x")),
        *((f"g0_{s}", "vec", "float64") for s in states), *((f"gp_{p}", "vec", "float64") for p in params),
    ]  # fmt: skip

    def backward() -> list[str]:
        return [
            f"def backward_chunk(lo, width, {', '.join(name for name, _, _ in backward_arguments)}):",
            "    T, N = x.shape",
            "    c0, c1, c2, c3, c4 = sgc[0], sgc[1], sgc[2], sgc[3], sgc[4]",
            *(f"    a_{s} = np.empty(width)" for s in states),
            *(f"    acc_{p} = np.zeros(width)" for p in params),
            "    for i in range(width):",
            *(f"        a_{s}[i] = np.float64({load(dt[f's_{s}'], f'gf_{s}[lo + i]')})" for s in states),
            *vector_loads(params, "p", "pc", "p"),
            "    hi = lo + width",
            "    for t in range(T - 1, -1, -1):",
            "        xr, gxr = x[t, lo:hi], gx[t, lo:hi]",
            "        Fr = F[t, lo:hi]",
            "        gSr = gS[0 if gS_uniform else t, lo:hi]",
            "        gMr = gM[0 if gM_uniform else t, lo:hi]",
            *prev_rows,
            "        for i in range(width):",
            "            live = Fr[i] != 0",
            f"            xi = {load(dt['x'], 'xr[i]')}",
            *(f"            ga_{s} = a_{s}[i]" for s in states),
            *_indent(body_bwd, 3),
            *_indent(adjoint, 3),
            f"            gxr[i] = {store(dt['x'], DIALECT.from_wide(dt['x'], by_leaf.get(('x', ''), '0.0')))}",
            *(f"            a_{s}[i] = {by_leaf.get(('state', s), '0.0')}" for s in states),
            *(f"            acc_{p}[i] += {by_leaf[('param', p)]}" for p in params if ("param", p) in by_leaf),
            "    for i in range(width):",
            *(f"        g0_{s}[lo + i] = a_{s}[i]" for s in states),
            *(f"        gp_{p}[lo + i] = acc_{p}[i]" for p in params),
        ]

    exp = "exp32" if compute_dtype(surrogate_dtype(step)) == "float32" else "exp"
    header = [
        f'"""Generated by snn_blockbackend.kernels.emit_numba for {step.profile}, surrogate '
        f'{surrogate_kind}. Do not edit: regenerated from the profile."""',
        "import numba",
        "import numpy as np",
        "",
        f"from snn_blockbackend.kernels.numba_math import {exp} as sexp",
        "from snn_blockbackend.kernels.numba_math import bf16_to_f32, f16_to_f32, f32_to_bf16, f32_to_f16",
        "from snn_blockbackend.kernels.numba_math import round_bf16, round_f16",
        "from snn_blockbackend.kernels.numba_pointers import fetch_add, float32_at, float64_at, int16_at, int64_at",
        "from snn_blockbackend.kernels.numba_pointers import uint8_at",
        "",
        f"# compiled with the LLVM options {', '.join(LLVM_OPTIONS)} (emit_numba.configure_llvm)",
        f"# numba_math {_math_version()}",
        "",
        *("# " + line for line in step.listing().splitlines()),
        "",
        "",
    ]
    parts = [header]
    for function in (forward(), backward()):
        parts += [["@numba.njit(cache=True, nogil=True, error_model='numpy')"], function, ["", ""]]
    for function, arguments in (("forward", forward_arguments), ("backward", backward_arguments)):
        parts += [_launch(function, arguments), ["", ""]]
    return "\n".join(line for part in parts for line in part)
