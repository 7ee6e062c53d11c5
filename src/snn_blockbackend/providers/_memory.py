"""Large CPU buffers backed by transparent huge pages.

The torch provider fills several [T, ...] buffers (membrane, spikes, input gradient) step by step. Fresh
memory costs one page fault per 4 KiB page on first touch: about 20 ms per 64 MiB on a 2-core VM, as much
as the neuron steps that fill the buffer. With 2 MiB pages the same first touch costs about 3 ms. NumPy
(and so the numba provider) asks the kernel for huge pages on large allocations by default
(``madvise(MADV_HUGEPAGE)`` on Linux); PyTorch does so only when ``THP_MEM_ALLOC_ENABLE=1`` is set before
it starts. ``empty`` gives our large CPU buffers the same advice. It changes no value, only how the
kernel backs the memory; where the advice is not available (other systems, THP disabled) it is a no-op.
Opt out with ``SNN_BLOCKBACKEND_HUGEPAGES=0``.

Even with huge pages the kernel zeroes every fresh page on first touch (about 10 ms per 64 MiB here), on
the thread that touches it: the step loop. ``populate_in_background`` asks the kernel to map the pages
ahead of the loop from a helper thread (``madvise(MADV_POPULATE_WRITE)``, Linux 5.14+), so the zeroing
runs on another core while the loop runs on one intra-op thread. The call writes no value (it cannot race
with the loop's writes; a page the loop reaches first is simply skipped) and the helper holds the tensors
until it is done. Opt out with ``SNN_BLOCKBACKEND_PREFAULT=0``.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import os
import sys
import threading

import torch

_HUGE_PAGE = 2 << 20
_MADV_HUGEPAGE = 14  # Linux
_MIN_BYTES = 4 * _HUGE_PAGE  # smaller buffers gain little (NumPy's threshold is 4 MiB)
_MADV_POPULATE_WRITE = 23  # Linux 5.14+
_POPULATE_CHUNK = 4 * _HUGE_PAGE  # per madvise call: the helper stays ahead of a loop that starts at once


@functools.lru_cache(maxsize=1)
def _madvise():
    """libc's ``madvise`` on Linux, else None."""
    if not sys.platform.startswith("linux"):
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
    if madvise is None or os.environ.get("SNN_BLOCKBACKEND_HUGEPAGES", "1") == "0":
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


def _populate_chunks(tensors, reverse):
    """(address, length) of the whole pages of each tensor, in chunks, interleaved in the order of use."""
    per_tensor = []
    for t in tensors:
        start = t.data_ptr()
        first = -(-start // _HUGE_PAGE) * _HUGE_PAGE
        last = (start + t.numel() * t.element_size()) // _HUGE_PAGE * _HUGE_PAGE
        chunks = [(a, min(_POPULATE_CHUNK, last - a)) for a in range(first, last, _POPULATE_CHUNK)]
        per_tensor.append(chunks[::-1] if reverse else chunks)
    return [chunk for group in itertools.zip_longest(*per_tensor) for chunk in group if chunk is not None]


def _populate(madvise, chunks, tensors):
    del tensors  # held (by the caller's argument tuple) until the last chunk is mapped
    for address, length in chunks:
        if madvise(address, length, _MADV_POPULATE_WRITE) != 0:
            return  # unsupported kernel or no memory: the loop's own first touch maps the pages


def _spare_cpu() -> bool:
    try:
        return len(os.sched_getaffinity(0)) > 1
    except AttributeError:
        return (os.cpu_count() or 1) > 1


def populate_in_background(*tensors: torch.Tensor, reverse: bool = False) -> threading.Thread | None:
    """Maps the pages of fresh large CPU buffers from a helper thread, ahead of a loop that fills them.

    ``reverse``: the loop fills the buffers from their ends (a backward pass). Values are untouched; a buffer
    given twice (one tensor serving as two) is mapped once. Returns the helper thread (None where nothing is
    done); nobody needs to wait for it.
    """
    large = (t for t in tensors if t.device.type == "cpu" and t.numel() * t.element_size() >= _MIN_BYTES)
    tensors = tuple({t.data_ptr(): t for t in large}.values())
    if not tensors or os.environ.get("SNN_BLOCKBACKEND_PREFAULT", "1") == "0" or not _spare_cpu():
        return None
    madvise = _madvise()
    if madvise is None:
        return None
    helper = threading.Thread(
        target=_populate, args=(madvise, _populate_chunks(tensors, reverse), tensors), daemon=True, name="snn-prefault"
    )
    helper.start()
    return helper
