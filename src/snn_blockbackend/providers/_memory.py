"""Large CPU buffers backed by transparent huge pages.

The torch provider fills several [T, ...] buffers (membrane, spikes, input gradient) step by step. Fresh
memory costs one page fault per 4 KiB page on first touch: about 20 ms per 64 MiB on a 2-core VM, as much
as the neuron steps that fill the buffer. With 2 MiB pages the same first touch costs about 3 ms. NumPy
(and so the numba provider) asks the kernel for huge pages on large allocations by default
(``madvise(MADV_HUGEPAGE)`` on Linux); PyTorch does so only when ``THP_MEM_ALLOC_ENABLE=1`` is set before
it starts. ``empty`` gives our large CPU buffers the same advice. It changes no value, only how the
kernel backs the memory; where the advice is not available (other systems, THP disabled) it is a no-op.
Opt out with ``SNN_BLOCKBACKEND_HUGEPAGES=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os
import sys

import torch

_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14  # Linux
_MIN_BYTES = 4 * _HUGE_PAGE  # smaller buffers gain little (NumPy's threshold is 4 MiB)


@functools.lru_cache(maxsize=1)
def _madvise():
    if not sys.platform.startswith("linux") or os.environ.get("SNN_BLOCKBACKEND_HUGEPAGES", "1") == "0":
        return None
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        madvise = libc.madvise
    except (OSError, AttributeError):
        return None
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


def advise_huge_pages(t: torch.Tensor) -> torch.Tensor:
    """Advises huge pages for the untouched memory of a freshly allocated CPU tensor; returns it."""
    nbytes = t.numel() * t.element_size()
    if t.device.type != "cpu" or nbytes < _MIN_BYTES:
        return t
    madvise = _madvise()
    if madvise is None:
        return t
    start = t.data_ptr()
    first = -(-start // _HUGE_PAGE) * _HUGE_PAGE  # whole huge pages inside the buffer only
    last = (start + nbytes) // _HUGE_PAGE * _HUGE_PAGE
    if last > first:
        madvise(first, last - first, _MADV_HUGEPAGE)  # advice only: a failure changes nothing
    return t


def empty(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.empty`` for large step-by-step buffers (huge pages on Linux CPUs)."""
    return advise_huge_pages(torch.empty(shape, dtype=dtype, device=device))
