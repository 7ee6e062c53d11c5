"""Print the README's measured-speed tables (markdown) from a bench JSON written by `make bench`.

    .venv/bin/python bench/scripts/readme_tables.py [bench/bench.json]

The README quotes one run; this renders that run's numbers so they are copied, not retyped.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

NAMES = {
    "snntorch_leaky": "snnTorch `Leaky` loop",
    "spikingjelly_lif": "SpikingJelly `LIFNode(step_mode='m')`",
    "norse_lif_box": "Norse `LIFBoxCell` loop",
    "norse_lif": "Norse `LIFCell` loop",
    "norse_lsnn": "Norse `LSNNCell` loop",
    "paper_lif": "paper LIF (vs `Leaky(reset_mechanism='zero')`)",
    "paper_alif": "paper ALIF, `BlockALIF` (vs a PyTorch loop)",
}


def kernel_table(run: dict) -> str:
    lines = [
        "| neuron (native baseline) | R | native fwd / fwd+bwd ms | ours fwd / fwd+bwd ms | speed-up fwd / fwd+bwd | floor multiple fwd / fwd+bwd |",
        "|---|---|---|---|---|---|",
    ]
    for row in run["rows"]:
        if row.get("provider") != "numba" or row.get("fwd_ms") is None or row.get("T") != run["config"]["shape"][0]:
            continue
        lines.append(
            f"| {NAMES.get(row['case'], row['case'])} | {row['R']} | {row['native_fwd_ms']:.0f} / {row['native_fwd_bwd_ms']:.0f} "
            f"| {row['fwd_ms']:.1f} / {row['fwd_bwd_ms']:.1f} | {row['speedup_fwd']:.1f}x / {row['speedup_fwd_bwd']:.1f}x "
            f"| {row['fwd_floor_x']:.1f} / {row['fwd_bwd_floor_x']:.1f} |"
        )
    return "\n".join(lines)


def training_table(run: dict) -> str:
    lines = [
        "| framework | T, B, sizes | threads | mode | native ms | ours ms | speed-up | first losses equal |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for row in run["training"]:
        if row["note"]:
            continue
        sizes = "-".join(map(str, row["sizes"]))
        lines.append(
            f"| {row['framework']} | {row['T']}, {row['B']}, {sizes} | {row['threads']} | {row.get('variant', 'float32')} "
            f"| {row['native_ms']:.0f} | {row['our_ms']:.0f} | {row['speedup']:.2f}x | {'yes' if row['loss_equal'] else 'NO'} |"
        )
    return "\n".join(lines)


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    run = json.loads(Path(argv[0] if argv else "bench/bench.json").read_text())
    machine, bandwidth = run["machine"], run["bandwidth"]
    print(f"Run of {machine['date']}: {machine['cpu']} ({machine['cpu_count']} cores), torch {machine['torch']}, "
          f"{machine['threads']} threads; streaming bandwidth {bandwidth['gbs']:.1f} GB/s "
          f"(floor: fwd {bandwidth['floor_ms']['fwd']:.1f} ms, fwd+bwd {bandwidth['floor_ms']['fwd_bwd']:.1f} ms)\n")
    print(kernel_table(run) + "\n")
    print(training_table(run))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
