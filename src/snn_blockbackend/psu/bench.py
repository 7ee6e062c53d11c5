"""Benchmark rows for the parallel spiking units: PSU / IPSU / RPSU (torch GEMM provider) vs native LIFs.

For each [T, B, N] the same input is fed to our units and to the native LIF of every installed framework,
all in one run, so every ratio compares numbers measured side by side:

* snnTorch ``Leaky(beta=0.5, threshold=0.5)`` in a per-step loop over ``x.unbind(0)`` (input scaled by 1/2,
  so that it is the tau = 2 LIF ``v <- v/2 + x/2`` the PSU approximates; snnTorch's reset is its delayed one);
* SpikingJelly ``LIFNode(tau=2, v_threshold=0.5, v_reset=None, step_mode='m')`` (soft reset);
* Norse ``LIFBoxCell`` (tau_mem_inv = 500 at dt = 1 ms, i.e. decay 1/2; v_th = 0.5; subtract reset) in a loop
  over ``x.unbind(0)``: Norse's ``LIF`` *module* indexes ``x[t]`` and has a quadratic backward on CPU.

Times: median of ``reps`` runs after one warm-up; forward under ``no_grad``; forward+backward with
``x.requires_grad_()`` and ``spikes.sum().backward()`` (our units also compute their parameter gradients).
"Rate" is the mean firing rate of the forward output. A ratio is native time / unit time (> 1: unit faster).

Run alone: ``python -m snn_blockbackend.psu.bench [--quick] [--reps N] [--json PATH]``.
"""

from __future__ import annotations

import argparse
import json
import platform
from typing import Callable

import torch

from .. import native_loops as native
from ..machine import cpu_model
from ..timing import ratio, settled_heap, time_forward, time_forward_backward

SHAPES = ((4, 64, 4096), (32, 32, 2048), (256, 16, 512))  # T, B, N
QUICK_SHAPES = ((4, 8, 512), (32, 4, 256), (256, 2, 64))
TAU, THRESHOLD = 2.0, 0.5
UNITS = ("PSU", "IPSU", "RPSU")
NATIVES = ("snntorch", "spikingjelly", "norse")
NATIVE_LABELS = {
    "snntorch": "snnTorch Leaky",
    "spikingjelly": "SJ LIFNode m",
    "norse": "Norse LIFBoxCell",
}

Runner = Callable[[torch.Tensor], torch.Tensor]


def _time(run: Runner, x: torch.Tensor, reps: int):
    """(forward ms, forward+backward ms, mean firing rate), timed as the main bench times everything."""
    fwd_ms, spikes = time_forward(run, x, reps)
    return fwd_ms, time_forward_backward(run, x, reps), float(spikes.float().mean())


# ---------------------------------------------------------------------------------------------
# runners (native builders import their framework; ImportError: not installed)
# ---------------------------------------------------------------------------------------------
def _unit(name: str, T: int) -> Runner:
    from . import modules

    module = modules.PSU(backend="torch") if name == "PSU" else getattr(modules, name)(T, backend="torch")
    return module


def _snntorch() -> Runner:
    return native.snntorch_leaky(beta=1 - 1 / TAU, threshold=THRESHOLD)


def _spikingjelly() -> Runner:
    return native.spikingjelly_lif(tau=TAU, v_threshold=THRESHOLD, v_reset=None)


def _norse() -> Runner:
    return native.norse_lif_box(tau_mem_inv=1e3 / TAU, v_th=THRESHOLD, subtract_reset=True)


_NATIVE_BUILDERS = {"snntorch": _snntorch, "spikingjelly": _spikingjelly, "norse": _norse}
# snnTorch's Leaky adds the input undecayed: scale it by 1/tau to get the same LIF as the others
_NATIVE_INPUT_SCALE = {"snntorch": 1 / TAU, "spikingjelly": 1.0, "norse": 1.0}


def make_input(shape, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator) + 0.4



# ---------------------------------------------------------------------------------------------
# rows
# ---------------------------------------------------------------------------------------------
def psu_rows(reps: int = 5, quick: bool = False, shapes=None, log: Callable[[str], None] | None = None) -> list[dict]:
    """Measure PSU/IPSU/RPSU (torch provider) and each installed framework's native LIF per shape.

    Runs with the current ``torch.get_num_threads()`` (recorded in each row). On a loaded machine a 2-thread
    GEMM can stall waiting for its second thread (tens of ms for a 4 x 4 by 4 x 4096 product): compare with
    ``torch.set_num_threads(1)`` when the cores are shared.

    One dict per (shape, neuron): ``T, B, N, neuron, kind`` ("unit" or "native"), ``fwd_ms``,
    ``fwd_bwd_ms``, ``rate``, ``status``; unit rows also ``fwd_speedup`` and ``fwd_bwd_speedup``:
    {framework: native ms / unit ms} from the native rows of the same shape in the same run.
    """
    if isinstance(reps, bool) or not isinstance(reps, int) or reps < 1:
        raise ValueError(f"reps must be a positive int, got {reps!r}")
    rows = []
    for T, B, N in shapes or (QUICK_SHAPES if quick else SHAPES):
        x = make_input((T, B, N))
        natives = {}
        for framework in NATIVES:
            row = dict(T=T, B=B, N=N, neuron=NATIVE_LABELS[framework], kind="native", framework=framework,
                       fwd_ms=None, fwd_bwd_ms=None, rate=None, status="ok", threads=torch.get_num_threads())  # fmt: skip
            try:
                run = _NATIVE_BUILDERS[framework]()
            except ImportError as error:
                row["status"] = f"not installed ({error})"
            else:
                if log:
                    log(f"[{T},{B},{N}] {row['neuron']}")
                row["fwd_ms"], row["fwd_bwd_ms"], row["rate"] = _time(run, x * _NATIVE_INPUT_SCALE[framework], reps)
            natives[framework] = row
        for name in UNITS:
            if log:
                log(f"[{T},{B},{N}] {name}")
            fwd_ms, fwd_bwd_ms, rate = _time(_unit(name, T), x, reps)
            rows.append(dict(
                T=T, B=B, N=N, neuron=name, kind="unit", framework=None, fwd_ms=fwd_ms, fwd_bwd_ms=fwd_bwd_ms,
                rate=rate, status="ok", threads=torch.get_num_threads(),
                fwd_speedup={fw: ratio(r["fwd_ms"], fwd_ms) for fw, r in natives.items()},
                fwd_bwd_speedup={fw: ratio(r["fwd_bwd_ms"], fwd_bwd_ms) for fw, r in natives.items()},
            ))  # fmt: skip
        rows.extend(natives.values())
    return rows


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def _ratios(mapping):
    return " / ".join(_fmt(mapping.get(fw), ".1f") for fw in NATIVES)


def psu_table(rows: list[dict], title: str = "Parallel spiking units vs native LIF (tau=2, threshold 0.5)"):
    """A rich Table of ``psu_rows`` output."""
    from rich.table import Table

    table = Table(title=title, caption="x = native ms / unit ms (> 1: unit faster), per native: snnTorch / SpikingJelly / Norse")
    for header in ("T x B x N", "neuron", "fwd ms", "f+b ms", "rate", "fwd x", "f+b x"):
        table.add_column(header, justify="left" if header == "neuron" else "right", no_wrap=True)
    for row in rows:
        shape = f"{row['T']}x{row['B']}x{row['N']}"
        if row["status"] != "ok":
            table.add_row(shape, row["neuron"], row["status"], "", "", "", "")
            continue
        unit = row["kind"] == "unit"
        table.add_row(
            shape, row["neuron"], _fmt(row["fwd_ms"], ".2f"), _fmt(row["fwd_bwd_ms"], ".2f"), _fmt(row["rate"], ".3f"),
            _ratios(row["fwd_speedup"]) if unit else "", _ratios(row["fwd_bwd_speedup"]) if unit else "",
        )  # fmt: skip
    return table


def machine() -> dict:
    info = dict(python=platform.python_version(), torch=torch.__version__, threads=torch.get_num_threads())
    info["cpu"] = cpu_model()
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snn_blockbackend.psu.bench", description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="small shapes (a smoke run)")
    parser.add_argument("--reps", type=int, default=5, help="timed repetitions per measurement (median)")
    parser.add_argument("--json", default=None, help="also write the rows to this JSON file")
    parser.add_argument("--threads", type=int, default=None, help="torch.set_num_threads for the run")
    args = parser.parse_args(argv)
    from rich.console import Console

    if args.threads is not None:
        torch.set_num_threads(args.threads)
    console = Console(width=max(Console().width, 110))
    with settled_heap():
        rows = psu_rows(args.reps, args.quick, log=lambda msg: console.log(msg))
    console.print(psu_table(rows))
    payload = {"machine": machine(), "reps": args.reps, "quick": args.quick, "rows": rows}
    text = json.dumps(payload, indent=2)
    print(text)
    if args.json:
        with open(args.json, "w") as handle:
            handle.write(text + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
