"""SparseProp scaling benchmark: microseconds per network spike vs N, against the O(N) algorithm.

LIF, K=100, J0=1, balanced drive for a 1 Hz target rate (I = tau*sqrt(K)*J0*nu = 0.1),
tau = 10 ms, on-the-fly connectivity (O(N) memory) and, up to N=1e6, stored CSR too.
Each size: a warm-up run brings the network to its stationary state, then SparseProp and the
conventional O(N)-per-spike algorithm are timed from that same state, side by side (the O(N)
one for fewer spikes at large N; the per-spike cost is what is compared). The first O(N)
spikes are also checked against SparseProp's (same ids, times within 1e-9 s).

    python benchmarks/sparseprop_bench.py            # N = 1e4, 1e5, 1e6, 1e7 (~4 minutes)
    python benchmarks/sparseprop_bench.py --quick    # N = 1e4, 1e5 (~20 s)

Writes bench/sparseprop_bench.json and bench/sparseprop_scaling.png.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

import snn_blockbackend.sparseprop as sp
from snn_blockbackend.machine import cpu_model

K = 100
TAU = 0.01
J0 = 1.0
RATE_HZ = 1.0
AUTHOR_CSV = Path("/work/shared/reference/sparseprop_author_benchmark.csv")


def peak_rss_bytes() -> int:
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return -1


def read_author_csv(path: Path) -> dict:
    if not path.exists():
        return {}
    table: dict = {}
    with open(path) as fh:
        for row in csv.DictReader(fh):
            table.setdefault(row["algorithm"], []).append(
                (float(row["N"]), float(row["cpu_time_per_spike_s"]) * 1e6))
    return table


def warm_up_jit(model) -> None:
    """Compile/load every kernel once so that no timing includes JIT work."""
    for stored in (False, True):
        net = sp.fixed_outdegree_network(500, 20, seed=0, stored=stored)
        for method in ("sparseprop", "reference"):
            sp.simulate(model, net, n_spikes=200, seed=0, method=method)


def reference_spike_budget(n: int, seconds: float) -> int:
    """Spikes for the O(N) run: ~`seconds` of work at ~1.5 ns per neuron per spike."""
    return int(max(20, min(20_000, seconds / (1.5e-9 * n))))


def bench_size(model, n: int, n_measure: int, n_warm: int, ref_seconds: float, with_csr: bool) -> dict:
    row: dict = {"N": n, "K": K}
    t0 = time.perf_counter()
    online = sp.fixed_outdegree_network(n, K, seed=0, stored=False)
    warm = sp.simulate(model, online, n_spikes=n_warm, seed=0)
    state = warm.final_phases
    row["warmup_spikes"] = warm.n_spikes
    fast = sp.simulate(model, online, n_spikes=n_measure, initial_phases=state)
    row["sparseprop_online_us"] = fast.us_per_spike
    row["sparseprop_spikes"] = fast.n_spikes
    row["rate_hz"] = fast.rate_hz
    if with_csr:
        stored = online.stored()
        csr = sp.simulate(model, stored, n_spikes=n_measure, initial_phases=state)
        row["sparseprop_csr_us"] = csr.us_per_spike
        assert np.array_equal(csr.neuron_ids, fast.neuron_ids)
        del stored
    n_ref = min(reference_spike_budget(n, ref_seconds), n_measure)
    ref = sp.simulate(model, online, n_spikes=n_ref, initial_phases=state, method="reference")
    row["reference_us"] = ref.us_per_spike
    row["reference_spikes"] = ref.n_spikes
    row["speedup"] = ref.us_per_spike / fast.us_per_spike
    row["reference_ids_match"] = bool(np.array_equal(ref.neuron_ids, fast.neuron_ids[:n_ref]))
    row["reference_max_dt_s"] = float(np.max(np.abs(ref.spike_times - fast.spike_times[:n_ref])))
    row["memory_estimate_bytes"] = sp.estimate_memory_bytes(n, K, stored=False)
    row["peak_rss_bytes"] = peak_rss_bytes()
    row["wall_s"] = time.perf_counter() - t0
    return row


def plot(rows: list, author: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.5, 4.5))
    ns = [r["N"] for r in rows]
    ax.loglog(ns, [r["sparseprop_online_us"] for r in rows], "o-", color="C0",
              label="SparseProp (this, numba, on-the-fly)")
    csr = [(r["N"], r["sparseprop_csr_us"]) for r in rows if "sparseprop_csr_us" in r]
    if csr:
        ax.loglog(*zip(*csr), "s--", color="C0", alpha=0.6, label="SparseProp (this, stored CSR)")
    ax.loglog(ns, [r["reference_us"] for r in rows], "o-", color="C3", label="conventional O(N) (this, numba)")
    if "sparseprop" in author:
        ax.loglog(*zip(*author["sparseprop"]), "^:", color="C0", alpha=0.5, label="SparseProp (author, Julia)")
    if "conventional" in author:
        ax.loglog(*zip(*author["conventional"]), "^:", color="C3", alpha=0.5, label="conventional (author)")
    ax.set_xlabel("network size N")
    ax.set_ylabel("CPU time per network spike (µs)")
    ax.set_title(f"LIF, K={K}, 1 Hz target; 1 thread")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=130)
    plt.close(fig)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="small run: N = 1e4, 1e5, fewer spikes")
    parser.add_argument("--sizes", type=float, nargs="*", help="network sizes (override)")
    parser.add_argument("--spikes", type=int, default=None, help="measured SparseProp spikes per size")
    parser.add_argument("--ref-seconds", type=float, default=None, help="time budget of each O(N) run")
    parser.add_argument("--out-dir", default="bench")
    parser.add_argument("--author-csv", default=str(AUTHOR_CSV))
    args = parser.parse_args(argv)
    sizes = [int(s) for s in (args.sizes or ([1e4, 1e5] if args.quick else [1e4, 1e5, 1e6, 1e7]))]
    n_measure = args.spikes or (50_000 if args.quick else 300_000)
    ref_seconds = args.ref_seconds or (0.5 if args.quick else 3.0)
    model = sp.LIF(drive=sp.balanced_drive(K, J0, RATE_HZ, TAU), tau=TAU)
    out_dir = Path(args.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    warm_up_jit(model)
    rows = []
    print(f"{'N':>10} {'ours us/spike':>14} {'CSR us/spike':>13} {'O(N) us/spike':>14} {'speedup':>9} "
          f"{'O(N) spikes':>11} {'match':>6} {'rate Hz':>8} {'est MB':>8}")
    for n in sizes:
        n_warm = int(min(max(n // 5, 50_000), 1_000_000)) if not args.quick else 20_000
        row = bench_size(model, n, n_measure, n_warm, ref_seconds, with_csr=n <= 1_000_000)
        rows.append(row)
        csr = f"{row['sparseprop_csr_us']:13.2f}" if "sparseprop_csr_us" in row else f"{'-':>13}"
        print(f"{n:>10.0e} {row['sparseprop_online_us']:14.2f} {csr} {row['reference_us']:14.1f} "
              f"{row['speedup']:9.1f} {row['reference_spikes']:11d} {str(row['reference_ids_match']):>6} "
              f"{row['rate_hz']:8.3f} {row['memory_estimate_bytes'] / 1e6:8.0f}", flush=True)
    growth = rows[-1]["sparseprop_online_us"] / rows[0]["sparseprop_online_us"]
    author = read_author_csv(Path(args.author_csv))
    import numba

    report = {
        "setup": {"model": "LIF", "K": K, "tau_s": TAU, "J0": J0, "target_rate_hz": RATE_HZ,
                  "drive": model.drive, "measured_spikes": n_measure, "threads": 1,
                  "cpu": cpu_model(), "cores": os.cpu_count(), "python": sys.version.split()[0],
                  "numba": numba.__version__, "quick": args.quick,
                  "command": "python benchmarks/sparseprop_bench.py" + (" --quick" if args.quick else "")},
        "rows": rows,
        "growth_first_to_last": growth,
        "author_us_per_spike": author,
    }
    json_path = out_dir / ("sparseprop_bench_quick.json" if args.quick else "sparseprop_bench.json")
    png_path = out_dir / ("sparseprop_scaling_quick.png" if args.quick else "sparseprop_scaling.png")
    json_path.write_text(json.dumps(report, indent=2))
    plot(rows, author, png_path)
    print(f"growth of per-spike cost N={sizes[0]:.0e} -> {sizes[-1]:.0e}: {growth:.2f}x")
    print(f"peak RSS {peak_rss_bytes() / 2**30:.2f} GiB; wrote {json_path} and {png_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
