"""numba source for a traced step (``trace.Step``): a forward and a BPTT backward over [T, N] rows.

Layout (as the hand-written kernels had it): neurons are cut into chunks run in parallel (``numba.prange``);
within a chunk the time loop is outside and a branch-free loop over the chunk's neurons inside, so rows are
read and written contiguously and the neuron loop can vectorize. No fast-math: every operation is rounded as
written (no contraction into fused multiply-adds), which keeps the forward bitwise equal to the reference.

The forward stores, per step, the spike output, the membrane, every other state variable and one byte saying
whether the neuron was live (not refractory); the backward reloads the previous state, recomputes the step's
nodes bitwise, and runs the adjoint statements in float64.
"""

from __future__ import annotations

import torch

from .codegen import Dialect, adjoint_statements, forward_statements, surrogate_derivative
from .trace import Step

_DTYPES = {torch.float32: "np.float32", torch.float64: "np.float64"}

DIALECT = Dialect(
    select=lambda c, a, b: f"({a} if {c} else {b})",
    to_wide=lambda v: f"np.float64({v})",
    to_storage=lambda v: f"DT({v})",
    const=lambda value, wide: repr(float(value)) if wide else f"DT({float(value)!r})",
    abs="abs",
    exp="math.exp",
)


def saved_state(step: Step) -> tuple[str, ...]:
    """State variables the forward stores per step besides the membrane (which is one of them, or not)."""
    return tuple(name for name in step.state if step.new_state[name] != step.membrane)


def _indent(lines, depth):
    return [" " * (4 * depth) + line for line in lines]


def source(step: Step, dtype: torch.dtype, surrogate_kind: str) -> str:
    """The module text: ``forward(...)`` and ``backward(...)`` (argument order: see ``forward_args`` /
    ``backward_args`` in the provider)."""
    states, params, saved = step.state, step.params, saved_state(step)
    membrane_var = next((name for name in states if step.new_state[name] == step.membrane), None)

    def leaf_forward(node):
        return {"x": "xr[n]", "live": "live", "state": f"st_{node.name}[i]", "param": f"p_{node.name}[n]"}[node.kind]

    def leaf_backward(node):
        return {"x": "xr[n]", "live": "live", "state": f"pv_{node.name}[n]", "param": f"p_{node.name}[n]"}[node.kind]

    body_fwd = forward_statements(step, DIALECT, dtype, leaf_forward)
    zero = DIALECT.const(0.0, False)
    fwd = [
        f"def forward(x, countdown0, R, chunk, {', '.join(f's0_{s}' for s in states)}, "
        f"{''.join(f'p_{p}, ' for p in params)}S, M, F, countdown_out, {', '.join(f'f_{s}' for s in states)}"
        f"{''.join(f', sv_{s}' for s in saved)}):",
        "    T, N = x.shape",
        "    for c in numba.prange((N + chunk - 1) // chunk):",
        "        lo = c * chunk",
        "        width = min(N, lo + chunk) - lo",
        *(f"        st_{s} = s0_{s}[lo:lo + width].copy()" for s in states),
        "        cd = countdown0[lo:lo + width].copy()",
        "        for t in range(T):",
        "            xr = x[t]",
        "            for i in range(width):",
        "                n = lo + i",
        "                count = cd[i]",
        "                live = count <= 0",
        *_indent(body_fwd, 4),
        f"                cd[i] = R if n{step.spike} != {zero} else max(count - 1, 0)",
        *(f"                st_{s}[i] = n{step.new_state[s]}" for s in states),
        f"                S[t, n] = n{step.emitted}",
        f"                M[t, n] = n{step.membrane}",
        *(f"                sv_{s}[t, n] = n{step.new_state[s]}" for s in saved),
        "                F[t, n] = np.uint8(live)",
        "        for i in range(width):",
        *(f"            f_{s}[lo + i] = st_{s}[i]" for s in states),
        "            countdown_out[lo + i] = cd[i]",
    ]
    seeds: dict[int, list[str]] = {}
    for s in states:
        seeds.setdefault(step.new_state[s], []).append(f"ga_{s}")
    seeds.setdefault(step.membrane, []).append("np.float64(gMr[n])")
    seeds.setdefault(step.emitted, []).append("np.float64(gSr[n])")
    adjoint, leaves = adjoint_statements(step, DIALECT, seeds, surrogate_derivative(surrogate_kind, DIALECT))
    by_leaf = {}
    for k, g in leaves.items():
        node = step.nodes[k]
        by_leaf[(node.kind, node.name)] = g
    prev_rows = []
    for s in states:
        stored = "M" if s == membrane_var else f"sv_{s}"
        prev_rows.append(f"            pv_{s} = {stored}[t - 1] if t > 0 else s0_{s}")
    bwd = [
        f"def backward(gS, gS_uniform, gM, gM_uniform, x, F, chunk, sgc, M, {', '.join(f's0_{s}' for s in states)}, "
        f"{''.join(f'sv_{s}, ' for s in saved)}{''.join(f'p_{p}, ' for p in params)}"
        f"{', '.join(f'gf_{s}' for s in states)}, gx, {', '.join(f'g0_{s}' for s in states)}"
        f"{''.join(f', gp_{p}' for p in params)}):",
        "    T, N = x.shape",
        "    c0, c1, c2, c3, c4 = sgc[0], sgc[1], sgc[2], sgc[3], sgc[4]",
        "    for c in numba.prange((N + chunk - 1) // chunk):",
        "        lo = c * chunk",
        "        width = min(N, lo + chunk) - lo",
        *(f"        a_{s} = gf_{s}[lo:lo + width].astype(np.float64)" for s in states),
        *(f"        acc_{p} = np.zeros(width)" for p in params),
        "        for t in range(T - 1, -1, -1):",
        "            xr, Fr = x[t], F[t]",
        "            gSr = gS[0 if gS_uniform else t]",
        "            gMr = gM[0 if gM_uniform else t]",
        *prev_rows,
        "            for i in range(width):",
        "                n = lo + i",
        "                live = Fr[n] != 0",
        *(f"                ga_{s} = a_{s}[i]" for s in states),
        *_indent(body_backward_forward := forward_statements(step, DIALECT, dtype, leaf_backward), 4),
        *_indent(adjoint, 4),
        f"                gx[t, n] = DT({by_leaf.get(('x', ''), '0.0')})",
        *(f"                a_{s}[i] = {by_leaf.get(('state', s), '0.0')}" for s in states),
        *(f"                acc_{p}[i] += {by_leaf[('param', p)]}" for p in params if ("param", p) in by_leaf),
        "        for i in range(width):",
        *(f"            g0_{s}[lo + i] = a_{s}[i]" for s in states),
        *(f"            gp_{p}[lo + i] = acc_{p}[i]" for p in params),
    ]
    del body_backward_forward
    header = [
        f'"""Generated by snn_blockbackend.kernels.emit_numba for {step.profile}, {dtype}, surrogate '
        f'{surrogate_kind}. Do not edit: regenerated from the profile."""',
        "import math",
        "",
        "import numba",
        "import numpy as np",
        "",
        f"DT = {_DTYPES[dtype]}",
        "",
        *("# " + line for line in step.listing().splitlines()),
        "",
        "",
    ]
    jit = "@numba.njit(parallel=True, cache=True, error_model='numpy')"
    return "\n".join([*header, jit, *fwd, "", "", jit, *bwd, ""])
