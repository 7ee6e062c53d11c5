"""How our numba kernels use threads, chosen so that they leave the user's process as they found it.

The generated kernels are serial numba functions over one chunk of neurons. ``launch`` runs a kernel's chunks on
at most ``torch.get_num_threads()`` threads (the budget the user gave PyTorch):

* on PyTorch's own OpenMP threads where PyTorch runs on an OpenMP runtime we can find in the process (Linux):
  ``GOMP_parallel`` of that runtime calls the module's ``*_launch`` C callback on each thread of the team, and
  the threads take chunks from a shared counter. These are the threads that just ran the previous torch operator;
  after each parallel region they keep spinning for milliseconds (libgomp's default), so threads of our own
  would share the cores with them (a neuron call after a Linear layer ran ~30-70% slower);
* else on the caller's thread plus a small pool of Python threads (the kernels release the GIL).
  ``SNN_BLOCKBACKEND_THREADS=python`` selects this everywhere (read at each launch).

numba's own parallel threading layer is never started: its default (OpenMP) shared libgomp's settings with
PyTorch (after our first kernel ``torch.get_num_threads()`` silently went from the user's 1 back to the core
count, and numba's idle workers slowed every later torch op 2-50x); its ``workqueue`` layer aborts the process
when two Python threads launch at once; and compiling numba's ``parallel=True`` kernels took three times as long
as the serial ones.
"""

from __future__ import annotations

import ctypes
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import torch

ENV_THREADS = "SNN_BLOCKBACKEND_THREADS"
_OPENMP_RUNTIMES = ("libgomp", "libomp", "libiomp5")  # each exports GOMP_parallel (LLVM's and Intel's for GCC code)
_UNSET = object()
_openmp_parallel = _UNSET

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


def openmp_runtime() -> str | None:
    """The path of the OpenMP runtime (PyTorch's) that ``launch`` runs on now, or None: Python threads."""
    parallel = _parallel()
    return None if parallel is None else parallel.path


def _parallel():
    return None if os.environ.get(ENV_THREADS) == "python" else _openmp()


def _openmp():
    """``GOMP_parallel`` of PyTorch's OpenMP runtime (a ctypes function with ``.path``), or None; found once."""
    global _openmp_parallel
    if _openmp_parallel is _UNSET:
        _openmp_parallel = _find_openmp()
    return _openmp_parallel


def _find_openmp():
    if "parallel backend: OpenMP" not in torch.__config__.parallel_info():
        return None
    try:
        mapped = {line.split()[-1] for line in Path("/proc/self/maps").read_text().splitlines() if "/" in line}
    except OSError:  # no /proc (macOS, Windows): the Python threads
        return None
    # the copy PyTorch ships (torch/lib) first: another runtime in the process would be another pool of threads
    torch_dir = str(Path(torch.__file__).parent)
    runtimes = (path for path in mapped if Path(path).name.startswith(_OPENMP_RUNTIMES))
    for path in sorted(runtimes, key=lambda path: (not path.startswith(torch_dir), path)):
        try:
            parallel = ctypes.CDLL(path).GOMP_parallel
        except (OSError, AttributeError):
            continue
        parallel.argtypes = [ctypes.c_void_p, ctypes.c_void_p, ctypes.c_uint, ctypes.c_uint]
        parallel.restype = None
        parallel.path = path
        return parallel
    return None


def _callback(module, function: str) -> int:
    """The address of ``module.{function}_launch`` compiled into a C callback ``void(int64 *words)`` (once per
    module, numba's on-disk cache after the first process)."""
    compiled = module.__dict__.get(f"_{function}_callback")
    if compiled is None:
        import numba

        signature = numba.types.void(numba.types.CPointer(numba.types.int64))
        compiled = numba.cfunc(signature, cache=True, error_model="numpy")(getattr(module, f"{function}_launch"))
        setattr(module, f"_{function}_callback", compiled)
    return compiled.address


def _word(value) -> int:
    if isinstance(value, np.ndarray):
        if not value.flags.c_contiguous:
            raise ValueError("a kernel argument array must be C-contiguous")
        return value.ctypes.data
    return int(value)  # integers and flags


def launch(module, function: str, T: int, N: int, width: int, *args) -> None:
    """Run ``module.{function}_chunk(lo, width, *args)`` over all chunks of ``width`` of the ``N`` neurons
    (``args``: integers and C-contiguous arrays, [T, N] rows among them) on at most ``threads()`` threads."""
    parallel = _parallel()
    if parallel is None:
        run_chunks(getattr(module, f"{function}_chunk"), N, width, *args)
        return
    callback = _callback(module, function)
    next_chunk = np.zeros(1, dtype=np.int64)
    words = np.array([T, N, width, next_chunk.ctypes.data, *(_word(a) for a in args)], dtype=np.int64)
    # ctypes releases the GIL for the call; args, words and next_chunk stay referenced until it returns
    team = max(1, min(threads(), -(-N // width)))
    parallel(callback, words.ctypes.data, team, 0)
