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
* a sweep of the speed-up over the refractory period R for the headline case (snnTorch ``Leaky``), plotted to
  ``<out>/speedup_vs_refractory.png``; all numbers go to ``<out>/bench.json``.
"""

from __future__ import annotations

import argparse
import datetime
import gc
import importlib.metadata
import json
import logging
import os
import platform
import statistics
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from . import __version__, plugins
from .functional import block_neuron
from .machine import cpu_model
from .profiles import make_profile

FULL_SHAPE = (1000, 32, 512)  # T, B, N
QUICK_SHAPE = (200, 8, 128)
HEADLINE_R = (0, 9)
SWEEP_R = (0, 1, 2, 4, 9, 19, 39)
SWEEP_R_QUICK = (0, 4, 9)
CHECK_STEPS = 64  # time steps the sequential reference checks (and is timed on)
NOISE_NOTE = "Note: timings on a shared 2-core machine vary by about ±25% from run to run."

Runner = Callable[[torch.Tensor], torch.Tensor]  # input [T, ...] -> spikes [T, ...]


# ---------------------------------------------------------------------------------------------
# timing
# ---------------------------------------------------------------------------------------------
def _synchronizer(device: torch.device) -> Callable[[], None]:
    """Waits for the device's queued work (CUDA runs asynchronously; a timer must not stop before it ends)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def median_ms(fn: Callable, reps: int, setup: Callable | None = None, sync: Callable[[], None] = lambda: None):
    """Median wall time of ``fn()`` in ms over ``reps`` runs after one untimed warm-up; and the last result.
    Python's garbage is collected before each run (untimed), so no run pays for an earlier one's; ``sync``
    waits for the device before the clock starts and before it stops."""
    times, result = [], None
    for i in range(reps + 1):
        if setup is not None:
            setup()
        gc.collect()
        sync()
        start = time.perf_counter()
        result = fn()
        sync()
        elapsed = time.perf_counter() - start
        if i > 0:
            times.append(elapsed)
    return statistics.median(times) * 1e3, result


def time_forward(run: Runner, x: torch.Tensor, reps: int):
    """Forward under ``no_grad``: (median ms, spikes)."""

    def forward():
        with torch.no_grad():
            return run(x)

    return median_ms(forward, reps, sync=_synchronizer(x.device))


def time_forward_backward(run: Runner, x: torch.Tensor, reps: int) -> float:
    """Forward with ``x.requires_grad_()`` plus ``spikes.sum().backward()``: median ms."""
    leaf = x.detach().clone().requires_grad_()

    def clear():
        leaf.grad = None

    def step():
        run(leaf).sum().backward()

    return median_ms(step, reps, setup=clear, sync=_synchronizer(x.device))[0]


# ---------------------------------------------------------------------------------------------
# native neurons (each builder imports its framework; ImportError: not installed)
# ---------------------------------------------------------------------------------------------
def snntorch_leaky(reset_mechanism: str = "subtract", beta: float = 0.9, threshold: float = 1.0) -> Runner:
    """snnTorch ``Leaky`` in the per-step loop of snnTorch's tutorials."""
    import snntorch as snn

    lif = snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset_mechanism)

    def run(x):
        mem = lif.reset_mem()
        spikes = []
        for xt in x.unbind(0):
            spk, mem = lif(xt, mem)
            spikes.append(spk)
        return torch.stack(spikes)

    return run


def spikingjelly_lif(**node_options) -> Runner:
    """SpikingJelly 2.x ``LIFNode(step_mode='m', **node_options)`` (the multi-step torch backend)."""
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # SpikingJelly's import probes Triton
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based import neuron

    node = neuron.LIFNode(step_mode="m", **node_options)

    def run(x):
        node.reset()
        return node(x)

    return run


def norse_lif_box(tau_mem_inv: float | None = None, v_th: float | None = None, subtract_reset: bool = False) -> Runner:
    """Norse ``LIFBoxCell`` (defaults: Norse's ``LIFBoxParameters()``) in a per-step loop over ``x.unbind(0)``
    (Norse's time-first ``LIF`` module indexes ``x[t]``, whose backward is quadratic in T on CPU)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import norse.torch as norse_torch
        from norse.torch.functional.reset import reset_subtract

    options = {}
    if tau_mem_inv is not None:
        options["tau_mem_inv"] = torch.tensor(tau_mem_inv)
    if v_th is not None:
        options["v_th"] = torch.tensor(v_th)
    if subtract_reset:
        options["reset_method"] = reset_subtract
    return _norse_loop(norse_torch.LIFBoxCell(norse_torch.LIFBoxParameters(**options)))


def norse_cell(name: str) -> Runner:
    """A Norse cell (``LIFCell``, ``LSNNCell``; default parameters) in a per-step loop over ``x.unbind(0)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import norse.torch as norse_torch

    return _norse_loop(getattr(norse_torch, name)())


def _norse_loop(cell) -> Runner:
    def run(x):
        state, spikes = None, []
        for xt in x.unbind(0):
            z, state = cell(xt, state)
            spikes.append(z)
        return torch.stack(spikes)

    return run


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


def ratio(native_ms, our_ms):
    """native time / our time (> 1: ours is faster); None when either is missing."""
    if native_ms is None or our_ms is None or our_ms <= 0:
        return None
    return native_ms / our_ms


# ---------------------------------------------------------------------------------------------
# the run: a plan of small steps (for the progress bar) that fill ``Results``
# ---------------------------------------------------------------------------------------------
class Results:
    def __init__(self):
        self.native = {}  # (case, T) -> {"fwd_ms", "fwd_bwd_ms", "spikes"} or {"note"}
        self.reference = {}  # (case, R) -> spikes of the sequential reference on the checked slice
        self.rows = []
        self.sweep = []


def _measure_native(results, case, x, reps, key):
    try:
        run = case.native()
    except ImportError:
        results.native[key] = {"note": f"{case.framework} {not_installed(case.framework)}"}
        return
    try:
        fwd_ms, spikes = time_forward(run, x, reps)
        results.native[key] = {"fwd_ms": fwd_ms, "fwd_bwd_ms": time_forward_backward(run, x, reps), "spikes": spikes}
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
        "speedup_fwd": None, "speedup_fwd_bwd": None,
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


def build_plan(results, providers, x, reps, sweep_r):
    """A list of (description, thunk); the thunks run in order and fill ``results``."""
    plan = []
    T = x.shape[0]
    check = min(CHECK_STEPS, T)
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


def results_table(rows, title, full_T):
    """The main table; notes (refusals, errors, missing frameworks) become numbered footnotes."""
    from rich.table import Table

    table = Table(title=title)
    for column in ("case", "provider", "R", "fwd ms", "fwd+bwd ms", "native fwd ms", "native fwd+bwd ms",
                   "speedup fwd", "speedup fwd+bwd", "spike mismatch"):  # fmt: skip
        table.add_column(column, justify="left" if column in ("case", "provider") else "right")
    notes: list[str] = []
    for r in rows:
        case = r["case"] if r.get("T") in (None, full_T) else f"{r['case']} (T={r['T']})"
        spike_mismatch = f"{r['spike_mismatch']} vs {r['mismatch_vs']}" if r.get("mismatch_vs") else "-"
        if r.get("note"):
            if r["note"] not in notes:
                notes.append(r["note"])
            color = "red" if r["note"].startswith("error") else "yellow"
            spike_mismatch += f" [{color}]\\[{notes.index(r['note']) + 1}][/{color}]"
        table.add_row(
            case, r["provider"], str(r.get("R", "-")), _ms(r.get("fwd_ms")), _ms(r.get("fwd_bwd_ms")),
            _ms(r.get("native_fwd_ms")), _ms(r.get("native_fwd_bwd_ms")), _x(r.get("speedup_fwd")),
            _x(r.get("speedup_fwd_bwd")), spike_mismatch,
        )  # fmt: skip
    if notes:
        table.caption = "\n".join(f"[{i}] {note}" for i, note in enumerate(notes, 1))
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
                        help=f"small run: x={list(QUICK_SHAPE)}, 1 rep, R sweep {list(SWEEP_R_QUICK)}")
    parser.add_argument("--out", default=None,
                        help="output folder for bench.json and the plot (default: bench/, or bench/<device type>/)")
    parser.add_argument("--device", default="cpu",
                        help="device of the input, e.g. cuda (default: cpu); every neuron runs there")
    parser.add_argument("--reps", type=int, default=None, help="timed runs per measurement (default 3; --quick: 1)")
    parser.add_argument("--providers", default=None,
                        help="comma-separated providers to time (default: all installed, e.g. torch,numba)")
    parser.add_argument("--no-psu", action="store_true",
                        help="skip the parallel-spiking-unit rows (PSU/IPSU/RPSU vs native LIFs)")
    parser.add_argument("--seed", type=int, default=0, help=argparse.SUPPRESS)
    for dim in ("T", "B", "N"):  # shape override, for tests
        parser.add_argument(f"--{dim}", type=int, default=None, help=argparse.SUPPRESS)
    return parser  # fmt: skip


def main(args=None) -> int:
    if args is None or isinstance(args, (list, tuple)):
        args = add_arguments(argparse.ArgumentParser(prog="snn-blockbackend bench")).parse_args(args)
    from rich.console import Console

    console = Console()
    if not console.is_terminal:  # a log or a pipe: do not squeeze the tables into 80 columns
        console = Console(width=max(console.width, 180))
    shape = list(QUICK_SHAPE if args.quick else FULL_SHAPE)
    for i, dim in enumerate(("T", "B", "N")):
        if getattr(args, dim) is not None:
            shape[i] = getattr(args, dim)
    reps = args.reps if args.reps is not None else (1 if args.quick else 3)
    if reps < 1 or min(shape) < 1:
        raise SystemExit("bench: --reps and the shape must be >= 1")
    sweep_r = SWEEP_R_QUICK if args.quick else SWEEP_R
    providers = select_providers(args.providers)
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
    results = Results()
    x = make_input(tuple(shape), args.seed).to(device)
    run_plan(build_plan(results, providers, x, reps, sweep_r), Console(stderr=True))

    title = f"block_neuron vs native neurons, x={shape} fp32 (reference provider: first {min(CHECK_STEPS, shape[0])} steps)"
    console.print(results_table(results.rows, title, shape[0]))
    worst = max_mismatch(results.rows)
    console.print(
        "max spike mismatch: " + (", ".join(f"{n} vs {what}" for what, n in worst.items()) or "nothing checked")
        + " (vs native at R=0; vs the sequential reference on the first "
        f"{min(CHECK_STEPS, shape[0])} steps at R>0; expected 0)"
    )
    console.print(sweep_table(results.sweep, "speed-up vs refractory period R (snnTorch Leaky profile, fwd+bwd)"))
    plotted = plot_sweep(results.sweep, out / "speedup_vs_refractory.png", shape)
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
                   "check_steps": min(CHECK_STEPS, shape[0]), "note": NOISE_NOTE},
        "cases": {c.name: {"framework": c.framework, "native": c.native_label, "profile": c.profile().describe(),
                           "params": c.params, "input_scale": c.input_scale} for c in CASES},
        "native": native,
        "max_spike_mismatch": worst,
        "rows": results.rows,
        "sweep": results.sweep,
        "psu": psu,
    }  # fmt: skip
    write_json(out / "bench.json", payload)
    console.print(f"wrote {out / 'bench.json'}" + (f" and {out / 'speedup_vs_refractory.png'}" if plotted else
                                                    " (matplotlib missing: pip install 'snn-blockbackend[bench]')"))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
