"""Timing helpers shared by the benchmarks (``bench``, ``training_bench``, ``psu.bench``).

* ``median_ms`` / ``time_forward`` / ``time_forward_backward``: median wall time after one untimed warm-up,
  garbage collected before each run, the device synchronised around the clock;
* ``stream_bandwidth``: the machine's streaming bandwidth, measured as a warm copy of one large array;
* ``traffic_floor_ms``: the least time an op that must move a given number of bytes can take at that
  bandwidth (see ``FLOOR_ARRAYS`` for what a neuron's forward and forward+backward must move);
* ``torch_threads``: run a block with ``torch.set_num_threads(n)`` and restore the previous count.
"""

from __future__ import annotations

import contextlib
import gc
import statistics
import time
from typing import Callable

import torch

Runner = Callable[[torch.Tensor], torch.Tensor]  # input [T, ...] -> spikes [T, ...]

# The traffic floor of a neuron over x = [T, ...]: the number of [T, ...] arrays (of x's dtype) it must read
# or write at the least, whatever the algorithm. Forward: read x, write the spikes and the membrane (kept
# for the backward and returned). Forward + backward: the forward's three, then read the saved membrane and
# the incoming spike gradient, write the input gradient. Per-neuron vectors, a second state variable (ALIF's
# adaptation, a synaptic current) and any per-step flags are not counted, so for those neurons the multiple
# is an upper bound on the distance from their own floor; a uniform incoming gradient (``.sum()``) need not be
# read, so a fwd+bwd multiple could in principle go down to 5/6.
FLOOR_ARRAYS = {"fwd": 3, "fwd_bwd": 6}


def synchronizer(device: torch.device) -> Callable[[], None]:
    """Waits for the device's queued work (CUDA runs asynchronously; a timer must not stop before it ends)."""
    if device.type == "cuda":
        return lambda: torch.cuda.synchronize(device)
    return lambda: None


def median_ms(fn: Callable, reps: int, setup: Callable | None = None, sync: Callable[[], None] = lambda: None):
    """Median wall time of ``fn()`` in ms over ``reps`` runs after one untimed warm-up; and the last result.
    Python's garbage is collected before each run (untimed), so no run pays for an earlier one's; ``sync``
    waits for the device before the clock starts and before it stops (see ``settled_heap`` for the cost of
    the collections)."""
    with settled_heap():
        return _median_ms(fn, reps, setup, sync)


def _median_ms(fn, reps, setup, sync):
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

    return median_ms(forward, reps, sync=synchronizer(x.device))


def time_forward_backward(run: Runner, x: torch.Tensor, reps: int) -> float:
    """Forward with ``x.requires_grad_()`` plus ``spikes.sum().backward()``: median ms."""
    leaf = x.detach().clone().requires_grad_()

    def clear():
        leaf.grad = None

    def step():
        run(leaf).sum().backward()

    return median_ms(step, reps, setup=clear, sync=synchronizer(x.device))[0]


def ratio(native_ms, our_ms):
    """native time / our time (> 1: ours is faster); None when either is missing."""
    if native_ms is None or our_ms is None or our_ms <= 0:
        return None
    return native_ms / our_ms


BANDWIDTH_SHAPE = (1000, 32, 512)  # 64 MiB of float32: far beyond any cache, so the copy streams from memory


def stream_bandwidth(shape=BANDWIDTH_SHAPE, dtype=torch.float32, device=torch.device("cpu"), reps: int = 5) -> float:
    """Streaming bandwidth in GB/s (1e9 bytes/s): bytes read plus bytes written by a warm ``dst.copy_(src)`` of
    one array of ``shape``, best of ``reps`` (both buffers touched before the clock starts, so no page fault is
    timed). Run with the thread count the measured ops use. The benchmarks measure it at ``BANDWIDTH_SHAPE``
    whatever their own shape: the floor is a memory floor, so for a small shape whose arrays stay in the
    caches a multiple below 1 is possible (and a tiny copy would time thread wake-ups, not bandwidth)."""
    src = torch.ones(shape, dtype=dtype, device=device)
    dst = torch.zeros_like(src)
    sync = synchronizer(device)
    best = float("inf")
    for _ in range(reps + 1):
        sync()
        start = time.perf_counter()
        dst.copy_(src)
        sync()
        best = min(best, time.perf_counter() - start)
    return 2 * src.numel() * src.element_size() / best / 1e9


def traffic_bytes(x: torch.Tensor, kind: str) -> int:
    """Bytes a neuron over ``x`` must move at the least for ``kind`` "fwd" or "fwd_bwd" (``FLOOR_ARRAYS``)."""
    return FLOOR_ARRAYS[kind] * x.numel() * x.element_size()


def traffic_floor_ms(x: torch.Tensor, kind: str, bandwidth_gbs: float | None) -> float | None:
    """The traffic floor in ms: ``traffic_bytes / bandwidth``; None without a bandwidth."""
    if not bandwidth_gbs:
        return None
    return traffic_bytes(x, kind) / (bandwidth_gbs * 1e9) * 1e3


_settled_depth = 0


@contextlib.contextmanager
def settled_heap():
    """Collects the garbage and freezes the objects alive now out of the cyclic collector's view
    (``gc.freeze``; reference counting still frees them), so later collections scan only what was created
    since: a full collection of a process with torch and three frameworks loaded takes ~0.3 s, more than
    many of the runs it precedes. Nested uses freeze again (cheaply); the outermost unfreezes on exit, so
    the interpreter's shutdown sees a normal heap. Wrap a whole benchmark run in it."""
    global _settled_depth
    gc.collect()
    gc.freeze()
    _settled_depth += 1
    try:
        yield
    finally:
        _settled_depth -= 1
        if _settled_depth == 0:
            gc.unfreeze()


@contextlib.contextmanager
def torch_threads(n: int | None):
    """``torch.set_num_threads(n)`` for the block (None: unchanged); the previous count is restored after."""
    before = torch.get_num_threads()
    if n is not None:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)
