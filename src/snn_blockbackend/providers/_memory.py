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

Cheapest of all is memory that is already mapped. A training loop asks for buffers of the same sizes at every
step, and each is freed (its tensors die) before the next step asks again; glibc hands such large blocks back to
the kernel at once (``munmap``), so every step would pay the first touch afresh. ``empty`` therefore keeps the
large CPU buffers it hands out and gives one out again, for a request of the same size, once no tensor uses it
any more (nothing but the cache references it): the way PyTorch's CUDA caching allocator keeps device memory.
Idle buffers are kept up to ``SNN_BLOCKBACKEND_HOST_CACHE_MB`` (default 2048; 0: keep none), the least recently
used ones are released first; ``empty_cache()`` releases them all.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import itertools
import os
import sys
import threading

import numpy as np
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


_DEFAULT_CACHE_MB = 2048
_cached: list[np.ndarray] = []  # uint8 buffers handed out by ``empty``, least recently used first
_cache_lock = threading.Lock()


def _cache_limit_bytes() -> int:
    """Bytes of idle buffers the cache may keep (``SNN_BLOCKBACKEND_HOST_CACHE_MB``, read at each call)."""
    value = os.environ.get("SNN_BLOCKBACKEND_HOST_CACHE_MB", str(_DEFAULT_CACHE_MB))
    try:
        megabytes = float(value)
    except ValueError:
        raise ValueError(f"SNN_BLOCKBACKEND_HOST_CACHE_MB must be a number of MiB (0: no cache), got {value!r}") from None
    return max(0, int(megabytes * (1 << 20)))


def _references(index: int) -> int:
    return sys.getrefcount(_cached[index])


def _baseline_references() -> int:
    """What ``_references`` reports for a buffer nothing but the cache holds (2 on CPython up to 3.13: the list
    and getrefcount's argument), measured rather than assumed, since interpreters differ in how they count."""
    _cached.append(np.empty(1, dtype=np.uint8))
    try:
        return _references(len(_cached) - 1)
    finally:
        _cached.pop()


_IDLE_REFERENCES = _baseline_references()


def _idle(index: int) -> bool:
    # a buffer nothing else references; a tensor made from it (torch.from_numpy), its views and a NumPy view of
    # it each hold one more reference
    return _references(index) <= _IDLE_REFERENCES


def _release_idle(keep_bytes: int) -> None:
    """Drops idle buffers, least recently used first, until at most ``keep_bytes`` of them remain."""
    idle = sum(_cached[i].nbytes for i in range(len(_cached)) if _idle(i))
    i = 0
    while idle > keep_bytes and i < len(_cached):
        if _idle(i):
            idle -= _cached.pop(i).nbytes
        else:
            i += 1


def _host_bytes(nbytes: int, limit: int) -> np.ndarray:
    """An idle cached buffer of ``nbytes`` bytes (the most recently used), else a fresh one (huge pages advised);
    either is the cache's most recently used afterwards. A buffer is a NumPy array over a PyTorch allocation: a
    NumPy array's reference count says whether anything still uses it."""
    with _cache_lock:
        for i in range(len(_cached) - 1, -1, -1):
            if _cached[i].nbytes == nbytes and _idle(i):
                buffer = _cached.pop(i)
                break
        else:
            buffer = advise_huge_pages(torch.empty(nbytes, dtype=torch.uint8)).numpy()
        _cached.append(buffer)
        _release_idle(limit)
        return buffer


def empty_cache() -> None:
    """Releases the idle CPU buffers ``empty`` keeps for reuse (buffers in use are untouched)."""
    with _cache_lock:
        _release_idle(0)


def cached_bytes() -> tuple[int, int]:
    """(bytes of cached buffers in use, bytes of idle ones)."""
    with _cache_lock:
        idle = [_idle(i) for i in range(len(_cached))]
        sizes = [b.nbytes for b in _cached]
    return sum(s for s, i in zip(sizes, idle) if not i), sum(s for s, i in zip(sizes, idle) if i)


def empty(shape, dtype: torch.dtype, device: torch.device) -> torch.Tensor:
    """``torch.empty`` for large buffers of our operators: on CPU, a reused buffer of the same size where one is
    idle, else fresh memory backed by huge pages (Linux)."""
    shape = torch.Size(shape)
    nbytes = shape.numel() * dtype.itemsize
    if device.type != "cpu" or nbytes < _MIN_BYTES:
        return torch.empty(shape, dtype=dtype, device=device)
    limit = _cache_limit_bytes()
    if limit == 0:
        return advise_huge_pages(torch.empty(shape, dtype=dtype, device=device))
    return torch.from_numpy(_host_bytes(nbytes, limit)).view(dtype).view(shape)


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
