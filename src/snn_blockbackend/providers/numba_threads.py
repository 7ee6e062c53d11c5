"""How our numba kernels use threads, chosen so that they leave the user's process as they found it.

The generated kernels are serial numba functions over one chunk of neurons that release the GIL (``nogil``);
``run_chunks`` runs a kernel's chunks on at most ``torch.get_num_threads()`` threads (the budget the user gave
PyTorch), the caller's thread plus a small pool of Python threads. numba's own parallel threading layer is never
started: its default (OpenMP) shared libgomp's settings with PyTorch (after our first kernel
``torch.get_num_threads()`` silently went from the user's 1 back to the core count, and numba's idle workers
slowed every later torch op 2-50x); its ``workqueue`` layer aborts the process when two Python threads launch at
once; and compiling numba's ``parallel=True`` kernels took three times as long as the serial ones.
"""

from __future__ import annotations

import os
import threading
from concurrent.futures import ThreadPoolExecutor

import torch

_pool: ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def _workers() -> ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = ThreadPoolExecutor(max_workers=max(1, (os.cpu_count() or 1) - 1), thread_name_prefix="snn-kernel")
        return _pool


def threads() -> int:
    """How many threads a launch may use: PyTorch's intra-op budget."""
    return max(1, torch.get_num_threads())


def run_chunks(kernel, n_neurons: int, width: int, *args) -> None:
    """``kernel(lo, width, *args)`` for each chunk of ``width`` neurons, on at most ``threads()`` threads: the
    chunks are dealt round-robin into that many groups, the caller's thread runs the first group."""
    chunks = [(lo, min(n_neurons, lo + width) - lo) for lo in range(0, n_neurons, width)]
    groups = [chunks[k :: threads()] for k in range(min(threads(), len(chunks)))]

    def run(group):
        for lo, w in group:
            kernel(lo, w, *args)

    if len(groups) <= 1:
        for group in groups:
            run(group)
        return
    futures = [_workers().submit(run, group) for group in groups[1:]]
    run(groups[0])
    for future in futures:
        future.result()  # re-raises a kernel's exception here
