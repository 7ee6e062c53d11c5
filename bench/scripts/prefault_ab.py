"""A/B of the torch provider's background page mapping (``SNN_BLOCKBACKEND_PREFAULT``), in one process.

Alternates prefault off/on (and the snnTorch ``Leaky`` loop as the common baseline) several times at the bench's
headline size and prints medians and ratios. Usage: ``python bench/scripts/prefault_ab.py [R,...] [reps]``.
"""

from __future__ import annotations

import gc
import os
import statistics
import sys
import time

from snn_blockbackend import bench, block_neuron, make_profile


def forward_backward_ms(run, x) -> float:
    leaf = x.clone().requires_grad_()
    gc.collect()
    start = time.perf_counter()
    run(leaf).sum().backward()
    return 1e3 * (time.perf_counter() - start)


def main() -> None:
    refractory = [int(r) for r in sys.argv[1].split(",")] if len(sys.argv) > 1 else [0, 9]
    reps = int(sys.argv[2]) if len(sys.argv) > 2 else 7
    x = bench.make_input((1000, 32, 512))
    profile = make_profile("snntorch_leaky")
    runs = {"snnTorch Leaky loop": bench.snntorch_leaky()}
    for R in refractory:
        for flag in ("0", "1"):
            def ours(v, R=R, flag=flag):
                os.environ["SNN_BLOCKBACKEND_PREFAULT"] = flag
                return block_neuron(v, profile, {"beta": 0.9}, R, backend="torch").spikes

            runs[f"torch R={R} prefault={flag}"] = ours
    times = {name: [] for name in runs}
    for _ in range(reps + 1):  # the first round warms up
        for name, run in runs.items():
            times[name].append(forward_backward_ms(run, x))
    native = statistics.median(times["snnTorch Leaky loop"][1:])
    for name, values in times.items():
        median = statistics.median(values[1:])
        print(f"{name:28s} fwd+bwd median {median:8.1f} ms   speed-up vs Leaky loop {native / median:5.2f}x")


if __name__ == "__main__":
    main()
