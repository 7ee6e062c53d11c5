"""``snn-blockbackend bench``: our block neuron against the native framework neurons, side by side in one run.

Every speed claim of the project comes from this script. For each case it times the framework's own neuron
(a per-step Python loop over ``x.unbind(0)``, as a user writes it; indexing ``x[t]`` would make the backward
pass quadratic in T) and ``block_neuron`` on every installed provider, on the same input in the same run:

* forward under ``torch.no_grad()``, and forward + backward (``x.requires_grad_()``, ``spikes.sum().backward()``)
  timed separately; median of ``--reps`` runs after one warm-up run;
* "spike mismatch": at R = 0 the number of spike entries that differ from the native neuron (expected 0); at
  R > 0 (the native neurons have no refractory period) the number that differ from our sequential reference
  on the first 64 time steps (expected 0);
* the sequential ``reference`` provider is timed only on those first 64 steps (native timed on the same slice);
* each time also as a multiple of its traffic floor: the bytes a neuron must move at the least
  (``timing.FLOOR_ARRAYS``) over the streaming bandwidth measured at the start of the same run
  (``timing.stream_bandwidth``);
* a sweep of the speed-up over the refractory period R for the headline case (snnTorch ``Leaky``), plotted to
  ``<out>/speedup_vs_refractory.png``;
* whole training steps, native neurons vs ours, with 1 and 2 threads (``training_bench``), and the parallel
  spiking units (``psu.bench``). All numbers go to ``<out>/bench.json``.

``--quick`` (under a minute on 2 cores) runs smaller shapes, one timed run each, the numba and torch
providers only and a 16-step reference check.
"""

from __future__ import annotations

import argparse
import datetime
import importlib.metadata
import json
import os
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import __version__, plugins
from .functional import block_neuron
from .machine import cpu_model
from .native_loops import norse_cell, norse_lif_box, snntorch_leaky, spikingjelly_lif
from .profiles import make_profile
from .timing import (
    BANDWIDTH_SHAPE, FLOOR_ARRAYS, Runner, ratio, settled_heap, stream_bandwidth, time_forward, time_forward_backward,
    traffic_floor_ms,
)  # fmt: skip

FULL_SHAPE = (1000, 32, 512)  # T, B, N
QUICK_SHAPE = (100, 8, 128)
HEADLINE_R = (0, 9)
SWEEP_R = (0, 1, 2, 4, 9, 19, 39)
SWEEP_R_QUICK = (0, 4, 9)
CHECK_STEPS = 64  # time steps the sequential reference checks (and is timed on)
CHECK_STEPS_QUICK = 16
QUICK_PROVIDERS = ("numba", "torch")  # --quick without --providers: the compiled path and the generic fallback
NOISE_NOTE = "Note: timings on a shared 2-core machine vary by about ±25% from run to run."



# ---------------------------------------------------------------------------------------------
# baselines without a framework, and ours (the framework neurons: ``native_loops``)
# ---------------------------------------------------------------------------------------------
def plain_loop(profile_name: str, params: dict) -> Runner:
    """A neuron no framework ships (the paper's ALIF) as a user writes it: a plain PyTorch per-step loop.
    That loop is the engine's sequential reference, run without a refractory period like the native neurons."""
    profile = make_profile(profile_name)

    def run(x):
        return block_neuron(x, profile, params, 0, backend="reference").spikes

    return run


def ours(case: "Case", provider: str, refractory_steps: int) -> Runner:
    profile = case.profile()

    def run(x):
        return block_neuron(x, profile, case.params, refractory_steps, backend=provider).spikes

    return run


# ---------------------------------------------------------------------------------------------
# cases
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Case:
    name: str
    framework: str  # distribution of the native baseline
    native_label: str
    native: Callable[[], Runner]
    profile: Callable
    params: dict
    input_scale: float = 1.0


ALIF_PARAMS = {"beta": 0.9, "adaptation_decay": 0.95, "adaptation_strength": 0.5}
HEADLINE = Case(
    "snntorch_leaky", "snntorch", "snntorch.Leaky(beta=0.9) loop",
    snntorch_leaky, lambda: make_profile("snntorch_leaky"), {"beta": 0.9},
)  # fmt: skip
CASES = (
    HEADLINE,
    Case(
        "spikingjelly_lif", "spikingjelly", "LIFNode(tau=2, step_mode='m', detach_reset=True)",
        lambda: spikingjelly_lif(tau=2.0, detach_reset=True), lambda: make_profile("spikingjelly_lif", detach_reset=True),
        {"tau": 2.0, "v_threshold": 1.0},
    ),
    Case(
        "norse_lif_box", "norse", "LIFBoxCell loop (input x300)",
        norse_lif_box, lambda: make_profile("norse_lif_box"), {}, input_scale=300.0,
    ),
    Case(
        "norse_lif", "norse", "LIFCell loop (input x300)",
        lambda: norse_cell("LIFCell"), lambda: make_profile("norse_lif"), {}, input_scale=300.0,
    ),
    Case(
        "norse_lsnn", "norse", "LSNNCell loop (input x300)",
        lambda: norse_cell("LSNNCell"), lambda: make_profile("norse_lsnn"), {}, input_scale=300.0,
    ),
    Case(
        "paper_lif", "snntorch", "snntorch.Leaky(beta=0.9, reset_mechanism='zero') loop",
        lambda: snntorch_leaky("zero"), lambda: make_profile("paper_lif"), {"beta": 0.9},
    ),
    Case(
        "paper_alif", "torch", "plain PyTorch per-step ALIF loop (BlockALIF's equations)",
        lambda: plain_loop("paper", ALIF_PARAMS), lambda: make_profile("paper"), ALIF_PARAMS,
    ),
)  # fmt: skip


def make_input(shape, seed: int = 0) -> torch.Tensor:
    generator = torch.Generator().manual_seed(seed)
    return torch.randn(shape, generator=generator) * 0.5 + 0.3


def not_installed(framework: str) -> str:
    adapter = plugins.adapters().get(framework)
    return adapter.status() if adapter is not None else "not installed"


def mismatch(a: torch.Tensor, b: torch.Tensor) -> int:
    return int((a != b).sum())


# ---------------------------------------------------------------------------------------------
# the run: a plan of small steps (for the progress bar) that fill ``Results``
# ---------------------------------------------------------------------------------------------
class Results:
    def __init__(self, bandwidth_gbs: float | None = None):
        self.bandwidth_gbs = bandwidth_gbs  # streaming bandwidth for the traffic floors (None: not measured)
        self.native = {}  # (case, T) -> {"fwd_ms", "fwd_bwd_ms", "spikes", floor multiples} or {"note"}
        self.reference = {}  # (case, R) -> spikes of the sequential reference on the checked slice
        self.rows = []
        self.sweep = []
        self.training = []  # training_bench rows

    def floor_multiples(self, x: torch.Tensor, fwd_ms, fwd_bwd_ms) -> dict:
        """Times as multiples of their traffic floor (``timing.FLOOR_ARRAYS``); None where not measured."""
        multiples = {}
        for kind, ms in (("fwd", fwd_ms), ("fwd_bwd", fwd_bwd_ms)):
            floor = traffic_floor_ms(x, kind, self.bandwidth_gbs)
            multiples[f"{kind}_floor_x"] = None if floor is None or ms is None else ms / floor
        return multiples


def _measure_native(results, case, x, reps, key):
    try:
        run = case.native()
    except ImportError:
        results.native[key] = {"note": f"{case.framework} {not_installed(case.framework)}"}
        return
    try:
        fwd_ms, spikes = time_forward(run, x, reps)
        fwd_bwd_ms = time_forward_backward(run, x, reps)
        results.native[key] = {"fwd_ms": fwd_ms, "fwd_bwd_ms": fwd_bwd_ms, "spikes": spikes,
                               **results.floor_multiples(x, fwd_ms, fwd_bwd_ms)}  # fmt: skip
    except Exception as error:  # an installed but incompatible framework: report it, time ours anyway
        results.native[key] = {"note": f"native {case.framework} failed: {type(error).__name__}: {error}"}


def _reference_spikes(results, case, x_check, R):
    if (case.name, R) not in results.reference:
        with torch.no_grad():
            results.reference[case.name, R] = ours(case, "reference", R)(x_check)
    return results.reference[case.name, R]


def _measure_ours(results, case, provider, R, x, x_check, reps):
    native = results.native.get((case.name, x.shape[0]), {})
    row = {
        "case": case.name, "provider": provider, "R": R, "T": x.shape[0],
        "fwd_ms": None, "fwd_bwd_ms": None,
        "native_fwd_ms": native.get("fwd_ms"), "native_fwd_bwd_ms": native.get("fwd_bwd_ms"),
        "speedup_fwd": None, "speedup_fwd_bwd": None, "fwd_floor_x": None, "fwd_bwd_floor_x": None,
        "spike_mismatch": None, "mismatch_vs": None, "note": native.get("note"),
    }  # fmt: skip
    results.rows.append(row)
    try:
        run = ours(case, provider, R)
        row["fwd_ms"], spikes = time_forward(run, x, reps)
        row["fwd_bwd_ms"] = time_forward_backward(run, x, reps)
        if R == 0 and "spikes" in native:
            row["spike_mismatch"], row["mismatch_vs"] = mismatch(spikes, native["spikes"]), "native"
        elif provider != "reference":
            with torch.no_grad():
                checked = run(x_check)
            reference = _reference_spikes(results, case, x_check, R)
            row["spike_mismatch"], row["mismatch_vs"] = mismatch(checked, reference), "reference"
    except Exception as error:  # report and go on: one broken provider must not lose the whole run
        row["note"] = f"error: {type(error).__name__}: {error}"
    row["speedup_fwd"] = ratio(row["native_fwd_ms"], row["fwd_ms"])
    row["speedup_fwd_bwd"] = ratio(row["native_fwd_bwd_ms"], row["fwd_bwd_ms"])
    row.update(results.floor_multiples(x, row["fwd_ms"], row["fwd_bwd_ms"]))


def _refused(results, case, provider, reason):
    results.rows.append({"case": case.name, "provider": provider, "note": f"refused: {reason}"})


def _measure_sweep_point(results, provider, R, x, reps):
    native = results.native.get((HEADLINE.name, x.shape[0]), {})
    done = [
        r for r in results.rows
        if (r["case"], r["provider"], r.get("R"), r.get("T")) == (HEADLINE.name, provider, R, x.shape[0])
    ]  # fmt: skip
    point = {"provider": provider, "R": R, "fwd_bwd_ms": None, "native_fwd_bwd_ms": native.get("fwd_bwd_ms")}
    if done and done[0].get("fwd_bwd_ms") is not None:
        point["fwd_bwd_ms"] = done[0]["fwd_bwd_ms"]
    else:
        try:
            point["fwd_bwd_ms"] = time_forward_backward(ours(HEADLINE, provider, R), x, reps)
        except Exception as error:
            point["note"] = f"error: {type(error).__name__}: {error}"
    point["speedup_fwd_bwd"] = ratio(point["native_fwd_bwd_ms"], point["fwd_bwd_ms"])
    results.sweep.append(point)


def max_mismatch(rows) -> dict:
    """The largest spike mismatch against each kind of ground truth ("native", "reference")."""
    worst = {}
    for r in rows:
        if r.get("mismatch_vs"):
            worst[r["mismatch_vs"]] = max(worst.get(r["mismatch_vs"], 0), r["spike_mismatch"])
    return worst


def select_providers(requested: str | None) -> dict:
    """The installed providers (highest priority first), optionally restricted to a comma-separated list."""
    available = dict(sorted(plugins.providers().items(), key=lambda item: -item[1].priority))
    if not requested:
        return available
    names = [name.strip() for name in requested.split(",") if name.strip()]
    unknown = [name for name in names if name not in available]
    if unknown:
        raise SystemExit(f"bench: unknown or unavailable provider(s) {unknown}; installed: {sorted(available)}")
    return {name: available[name] for name in names}


def build_plan(results, providers, x, reps, sweep_r, check_steps=CHECK_STEPS):
    """A list of (description, thunk); the thunks run in order and fill ``results``."""
    plan = []
    T = x.shape[0]
    check = min(check_steps, T)
    for case in CASES:
        xc = x * case.input_scale
        xs = xc[:check]
        plan.append((f"{case.name}: native", lambda c=case, xc=xc: _measure_native(results, c, xc, reps, (c.name, T))))
        if "reference" in providers and check != T:
            plan.append(
                (f"{case.name}: native T={check}",
                 lambda c=case, xs=xs: _measure_native(results, c, xs, reps, (c.name, check)))
            )  # fmt: skip
        for name, provider in providers.items():
            reason = provider.supports(case.profile(), x.device, "exact")
            if reason is not None:
                plan.append((f"{case.name}: {name}", lambda c=case, n=name, r=reason: _refused(results, c, n, r)))
                continue
            xi = xs if name == "reference" else xc
            for R in HEADLINE_R:
                plan.append(
                    (f"{case.name}: {name} R={R}",
                     lambda c=case, n=name, R=R, xi=xi, xs=xs: _measure_ours(results, c, n, R, xi, xs, reps))
                )  # fmt: skip
    for name, provider in providers.items():
        if name == "reference" or provider.supports(HEADLINE.profile(), x.device, "exact") is not None:
            continue
        for R in sweep_r:
            plan.append((f"sweep: {name} R={R}", lambda n=name, R=R: _measure_sweep_point(results, n, R, x, reps)))
    return plan


def run_plan(plan, console) -> None:
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("[bold]bench"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
               TextColumn("{task.description}"))  # fmt: skip
    with Progress(*columns, console=console) as progress:
        task = progress.add_task("", total=len(plan))
        for description, step in plan:
            progress.update(task, description=description)
            step()
            progress.advance(task)


# ---------------------------------------------------------------------------------------------
# output: machine info, JSON, tables, plot
# ---------------------------------------------------------------------------------------------
def machine_info(device: torch.device = torch.device("cpu")) -> dict:
    frameworks = {}
    for name in ("snntorch", "spikingjelly", "norse", "numba", "triton"):
        try:
            frameworks[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            frameworks[name] = None
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "snn_blockbackend": __version__,
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "platform": platform.platform(),
        "frameworks": frameworks,
        "device": str(device),
        "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
    }


def write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    tmp.replace(path)


def _ms(value):
    return "-" if value is None else f"{value:.1f}"


def _x(value):
    return "-" if value is None else f"{value:.2f}x"


def _mult(value):
    return "-" if value is None else f"{value:.1f}"


# the main table's columns: header, justification (rich's Table, at most ~100 columns wide)
MAIN_COLUMNS = (("case", "left"), ("provider", "left"), ("R", "right"), ("fwd ms", "right"), ("f+b ms", "right"),
                ("x fwd", "right"), ("x f+b", "right"), ("fwd/fl", "right"), ("f+b/fl", "right"),
                ("mism.", "right"))  # fmt: skip


def results_table(rows, title, full_T, native=None, bandwidth_gbs=None):
    """The main table: per case a ``native`` row (the framework's neuron) and one row per provider and R.
    "x": native ms / our ms; "/fl": time / traffic floor; notes (refusals, errors, missing frameworks) become
    numbered footnotes."""
    from rich import box
    from rich.table import Table

    native = native or {}
    floor = (f"/fl = time / traffic floor ({FLOOR_ARRAYS['fwd']} resp. {FLOOR_ARRAYS['fwd_bwd']} arrays of x's size "
             f"at {bandwidth_gbs:.1f} GB/s)" if bandwidth_gbs else "/fl: bandwidth not measured")  # fmt: skip
    table = Table(title=title, box=box.SIMPLE_HEAD, padding=(0, 1), pad_edge=False)
    for column, justify in MAIN_COLUMNS:
        table.add_column(column, justify=justify, no_wrap=True)
    notes: list[str] = []

    def footnote(note):
        if note not in notes:
            notes.append(note)
        color = "red" if note.startswith("error") else "yellow"
        return f" [{color}]\\[{notes.index(note) + 1}][/{color}]"

    shown = set()
    for r in rows:
        T = r.get("T")
        case = r["case"] if T in (None, full_T) else f"{r['case']} T={T}"
        entry = native.get((r["case"], T))
        if entry is not None and (r["case"], T) not in shown:
            shown.add((r["case"], T))
            label = "native" + (footnote(entry["note"]) if entry.get("note") else "")
            table.add_row(case, label, "-", _ms(entry.get("fwd_ms")), _ms(entry.get("fwd_bwd_ms")), "", "",
                          _mult(entry.get("fwd_floor_x")), _mult(entry.get("fwd_bwd_floor_x")), "")  # fmt: skip
        spike_mismatch = f"{r['spike_mismatch']} {r['mismatch_vs'][:3]}" if r.get("mismatch_vs") else "-"
        if r.get("note") and not (entry is not None and r["note"] == entry.get("note")):
            spike_mismatch += footnote(r["note"])
        table.add_row(
            case, r["provider"], str(r.get("R", "-")), _ms(r.get("fwd_ms")), _ms(r.get("fwd_bwd_ms")),
            _x(r.get("speedup_fwd")), _x(r.get("speedup_fwd_bwd")), _mult(r.get("fwd_floor_x")),
            _mult(r.get("fwd_bwd_floor_x")), spike_mismatch,
        )  # fmt: skip
    caption = ["x = native ms / our ms (> 1: ours faster); " + floor,
               "mism. = spikes differing from native (nat) or from the sequential reference (ref)"]  # fmt: skip
    caption += [f"[{i}] {note}" for i, note in enumerate(notes, 1)]
    table.caption = "\n".join(caption)
    table.caption_justify = "left"
    return table


def sweep_table(points, title):
    from rich.table import Table

    table = Table(title=title)
    for column in ("provider", "R", "fwd+bwd ms", "native fwd+bwd ms", "speedup fwd+bwd"):
        table.add_column(column, justify="left" if column == "provider" else "right")
    for p in points:
        table.add_row(p["provider"], str(p["R"]), _ms(p["fwd_bwd_ms"]), _ms(p["native_fwd_bwd_ms"]),
                      _x(p["speedup_fwd_bwd"]) + (f" ({p['note']})" if p.get("note") else ""))  # fmt: skip
    return table


def plot_sweep(points, path: Path, shape) -> bool:
    """Speed-up (or, without the native baseline, time) over R, one line per provider. False: no matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return False
    have_native = any(p["speedup_fwd_bwd"] is not None for p in points)
    key = "speedup_fwd_bwd" if have_native else "fwd_bwd_ms"
    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for provider in dict.fromkeys(p["provider"] for p in points):
        mine = [p for p in points if p["provider"] == provider and p[key] is not None]
        ax.plot([p["R"] for p in mine], [p[key] for p in mine], "o-", label=provider)
    if have_native:
        ax.axhline(1.0, color="gray", linestyle="--", linewidth=1, label="native snnTorch loop")
        ax.set_ylabel("speed-up vs native snnTorch Leaky loop (fwd+bwd)")
    else:
        ax.set_ylabel("fwd+bwd time (ms); snnTorch not installed")
    ax.set_xlabel("refractory period R (time steps)")
    T, B, N = shape
    ax.set_title(f"snnTorch Leaky(beta=0.9) profile, x=[{T}, {B}, {N}] fp32, {torch.get_num_threads()} threads")
    ax.grid(True, alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return True


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------
def add_arguments(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--quick", action="store_true",
                        help=f"small run (under a minute on 2 cores): x={list(QUICK_SHAPE)}, 1 rep, providers "
                             f"{', '.join(QUICK_PROVIDERS)}, R sweep {list(SWEEP_R_QUICK)}, small training and "
                             "PSU shapes")
    parser.add_argument("--out", default=None,
                        help="output folder for bench.json and the plot (default: bench/, or bench/<device type>/)")
    parser.add_argument("--device", default="cpu",
                        help="device of the input, e.g. cuda (default: cpu); every neuron runs there")
    parser.add_argument("--reps", type=int, default=None, help="timed runs per measurement (default 3; --quick: 1)")
    parser.add_argument("--providers", default=None,
                        help="comma-separated providers to time (default: all installed, e.g. torch,numba)")
    parser.add_argument("--no-psu", action="store_true",
                        help="skip the parallel-spiking-unit rows (PSU/IPSU/RPSU vs native LIFs)")
    parser.add_argument("--no-training", action="store_true",
                        help="skip the training-step rows (Linear-neuron-Linear-neuron net, native vs ours)")
    parser.add_argument("--training-shape", default=None, help=argparse.SUPPRESS)  # T,B,in,hidden,out (tests)
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    for dim in ("T", "B", "N"):  # shape override, for tests
        parser.add_argument(f"--{dim}", type=int, default=None, help=argparse.SUPPRESS)
    return parser  # fmt: skip


def _training_shapes(text: str | None):
    if text is None:
        return None
    try:
        shape = tuple(int(v) for v in text.split(","))
    except ValueError:
        shape = ()
    if len(shape) != 5 or min(shape) < 1:
        raise SystemExit(f"bench: --training-shape wants five positive ints T,B,in,hidden,out, got {text!r}")
    return (shape,)


def main(args=None) -> int:
    if args is None or isinstance(args, (list, tuple)):
        args = add_arguments(argparse.ArgumentParser(prog="snn-blockbackend bench")).parse_args(args)
    with settled_heap():  # cheap garbage collections before each timed run
        return _run(args)


def _run(args) -> int:
    from rich.console import Console

    from . import training_bench

    console = Console()
    if not console.is_terminal:  # a log or a pipe: the tables are made to fit 100 columns
        console = Console(width=max(console.width, 100))
    shape = list(QUICK_SHAPE if args.quick else FULL_SHAPE)
    for i, dim in enumerate(("T", "B", "N")):
        if getattr(args, dim) is not None:
            shape[i] = getattr(args, dim)
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    if reps < 1 or min(shape) < 1:
        raise SystemExit("bench: --reps and the shape must be >= 1")
    sweep_r = SWEEP_R_QUICK if args.quick else SWEEP_R
    check_steps = min(CHECK_STEPS_QUICK if args.quick else CHECK_STEPS, shape[0])
    training_shapes = _training_shapes(args.training_shape)
    requested = args.providers
    if requested is None and args.quick:
        requested = ",".join(name for name in QUICK_PROVIDERS if name in plugins.providers())
    providers = select_providers(requested)
    try:
        device = torch.device(args.device)
        torch.empty(0, device=device)
    except (RuntimeError, AssertionError) as error:
        raise SystemExit(f"bench: device {args.device!r} is not usable here: {error}") from None
    out = Path(args.out if args.out is not None else ("bench" if device.type == "cpu" else f"bench/{device.type}"))
    out.mkdir(parents=True, exist_ok=True)

    machine = machine_info(device)
    console.print(
        f"snn-blockbackend {__version__} bench: x={shape} float32 on {machine['gpu'] or device}, reps={reps} "
        f"(median after 1 warm-up), torch {machine['torch']}, {machine['threads']} threads, {machine['cpu']}"
    )
    console.print(NOISE_NOTE)
    x = make_input(tuple(shape), args.seed).to(device)
    results = Results(stream_bandwidth(device=device))
    console.print(
        f"streaming bandwidth: {results.bandwidth_gbs:.1f} GB/s (warm copy of a {list(BANDWIDTH_SHAPE)} float32 "
        "array, best of 5); "
        f"traffic floor of a neuron: fwd {traffic_floor_ms(x, 'fwd', results.bandwidth_gbs):.2f} ms, "
        f"fwd+bwd {traffic_floor_ms(x, 'fwd_bwd', results.bandwidth_gbs):.2f} ms"
    )
    plan = build_plan(results, providers, x, reps, sweep_r, check_steps)
    train = not args.no_training and device.type == "cpu"
    if train:
        plan += training_bench.training_plan(results.training, reps, bool(args.quick), training_shapes)
    run_plan(plan, Console(stderr=True))

    title = f"block_neuron vs native neurons, x={shape} fp32"
    console.print(results_table(results.rows, title, shape[0], results.native, results.bandwidth_gbs))
    worst = max_mismatch(results.rows)
    console.print(
        "max spike mismatch: " + (", ".join(f"{n} vs {what}" for what, n in worst.items()) or "nothing checked")
        + f" (vs native at R=0; vs the sequential reference on the first {check_steps} steps at R>0; expected 0)"
    )
    console.print(sweep_table(results.sweep, "speed-up vs refractory period R (snnTorch Leaky profile, fwd+bwd)"))
    plotted = plot_sweep(results.sweep, out / "speedup_vs_refractory.png", shape)
    if train:
        console.print(training_bench.training_table(results.training))
    else:
        console.print("training-step rows: not run" + ("" if args.no_training else " (they are benchmarked on CPU only)"))
    psu = []
    if args.no_psu or device.type != "cpu":
        console.print("parallel spiking units: not run" + (" (they are benchmarked on CPU only)" if not args.no_psu else ""))
    else:
        from .psu.bench import psu_rows, psu_table

        with Console(stderr=True).status("parallel spiking units vs native LIFs ...") as status:
            psu = psu_rows(reps, bool(args.quick), log=lambda message: status.update(f"PSU bench: {message}"))
        console.print(psu_table(psu))
    native = {
        f"{case}@T={T}": {k: v for k, v in entry.items() if k != "spikes"} for (case, T), entry in results.native.items()
    }
    payload = {
        "machine": machine,
        "config": {"shape": shape, "dtype": "float32", "device": str(device), "reps": reps, "quick": bool(args.quick),
                   "seed": args.seed,
                   "providers": list(providers), "refractory": list(HEADLINE_R), "sweep_refractory": list(sweep_r),
                   "check_steps": check_steps, "note": NOISE_NOTE},
        "bandwidth": {"gbs": results.bandwidth_gbs, "floor_arrays": dict(FLOOR_ARRAYS),
                      "floor_ms": {kind: traffic_floor_ms(x, kind, results.bandwidth_gbs) for kind in FLOOR_ARRAYS},
                      "definition": f"bandwidth: bytes read + written by a warm copy of a {list(BANDWIDTH_SHAPE)} "
                                    "float32 array, best of 5; "
                                    "floor: floor_arrays x-sized arrays / bandwidth (see snn_blockbackend.timing); "
                                    "rows' *_floor_x: time / floor"},
        "cases": {c.name: {"framework": c.framework, "native": c.native_label, "profile": c.profile().describe(),
                           "params": c.params, "input_scale": c.input_scale} for c in CASES},
        "native": native,
        "max_spike_mismatch": worst,
        "rows": results.rows,
        "sweep": results.sweep,
        "training": results.training,
        "psu": psu,
    }  # fmt: skip
    write_json(out / "bench.json", payload)
    console.print(f"wrote {out / 'bench.json'}" + (f" and {out / 'speedup_vs_refractory.png'}" if plotted else
                                                    " (matplotlib missing: pip install 'snn-blockbackend[bench]')"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
