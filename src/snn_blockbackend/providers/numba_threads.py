"""How our numba kernels use threads, chosen so that they leave the user's process as they found it.

numba's default threading layer on Linux is OpenMP. Its pool shares libgomp's settings with PyTorch's intra-op
pool: after our first kernel, ``torch.get_num_threads()`` silently went from the user's 1 back to the core count,
and numba's idle workers competed with every later torch op (a training step that mixed our kernels with
Linear layers ran 2-50x slower per op). The ``workqueue`` layer has neither effect. It is not thread-safe (two
Python threads launching kernels at once abort the process), so launches are serialised by a lock; each
launch uses at most ``torch.get_num_threads()`` threads, the budget the user gave PyTorch.

The layer is chosen before numba starts its pool, unless the user chose one (``NUMBA_THREADING_LAYER``) or
their own code already started numba's pool; either way ``torch.get_num_threads()`` is restored after each
launch.
"""

from __future__ import annotations

import functools
import os
import threading

import numba
import torch

DEFAULT_LAYER = "workqueue"
_launch_lock = threading.Lock()


def _choose_threading_layer() -> None:
    if os.environ.get("NUMBA_THREADING_LAYER"):
        return  # the user's choice
    try:
        numba.threading_layer()
    except ValueError:  # no parallel kernel has run in this process yet: the layer is still ours to pick
        numba.config.THREADING_LAYER = DEFAULT_LAYER


_choose_threading_layer()


def on_torch_threads(launch):
    """Decorate a function that launches numba kernels: one launch at a time, on at most
    ``torch.get_num_threads()`` threads, with PyTorch's thread count as it was before."""

    @functools.wraps(launch)
    def wrapper(*args, **kwargs):
        torch_threads = torch.get_num_threads()
        with _launch_lock:
            previous = numba.get_num_threads()
            numba.set_num_threads(max(1, min(torch_threads, numba.config.NUMBA_NUM_THREADS)))
            try:
                return launch(*args, **kwargs)
            finally:
                numba.set_num_threads(previous)
                if torch.get_num_threads() != torch_threads:
                    torch.set_num_threads(torch_threads)

    return wrapper
