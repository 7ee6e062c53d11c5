"""Huge-page advice for the torch provider's large buffers (``providers/_memory.py``)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import torch

from snn_blockbackend.providers import _memory

THP = Path("/sys/kernel/mm/transparent_hugepage/enabled")


def _thp_mode():
    if not sys.platform.startswith("linux") or not THP.exists():
        return None
    text = THP.read_text()
    return text[text.index("[") + 1 : text.index("]")]


def _smaps_kib(address: int, field: str = "AnonHugePages") -> int:
    """A field (KiB) of the mapping that holds ``address`` in /proc/self/smaps."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(part, 16) for part in head.split("-"))
            inside = start <= address < end
        elif inside and head == f"{field}:":
            return int(line.split()[1])
    raise AssertionError("no mapping holds the buffer")


def test_empty_is_an_ordinary_tensor():
    t = _memory.empty((300, 64, 128), torch.float32, torch.device("cpu"))
    assert t.shape == (300, 64, 128) and t.dtype == torch.float32 and t.is_contiguous()
    t.fill_(1.5)
    assert float(t.sum()) == 1.5 * t.numel()
    small = _memory.empty((3,), torch.float64, torch.device("cpu"))
    assert small.shape == (3,) and small.dtype == torch.float64


@pytest.mark.skipif(_thp_mode() not in ("always", "madvise"), reason="transparent huge pages are not enabled here")
def test_large_buffers_are_backed_by_huge_pages():
    # 64 MiB: the allocator maps it freshly, so the advice applies before the first touch
    t = _memory.empty((16 << 20,), torch.float32, torch.device("cpu"))
    t.fill_(0)
    middle = t.data_ptr() + t.numel() * t.element_size() // 2  # the advice splits the mapping at 2 MiB
    assert _smaps_kib(middle) > 0


def test_opt_out_leaves_the_buffer_alone(monkeypatch):
    calls = []
    monkeypatch.setattr(_memory, "_madvise", lambda: lambda *args: calls.append(args) or 0)
    monkeypatch.setenv("SNN_BLOCKBACKEND_HUGEPAGES", "0")
    t = _memory.empty((16 << 20,), torch.float32, torch.device("cpu"))
    assert t.numel() == 16 << 20 and calls == []
    monkeypatch.setenv("SNN_BLOCKBACKEND_HUGEPAGES", "1")
    _memory.empty((16 << 20,), torch.float32, torch.device("cpu"))
    assert [advice for *_, advice in calls] == [_memory._MADV_HUGEPAGE]


def test_populate_chunks_cover_whole_pages_in_the_order_of_use():
    class Fake:  # a tensor's address and size, nothing else
        def __init__(self, address):
            self.address = address

        def data_ptr(self):
            return self.address

        def numel(self):
            return 24 << 20

        def element_size(self):
            return 1

    fake = [Fake(3 * _memory._HUGE_PAGE + 5), Fake(100 * _memory._HUGE_PAGE)]
    chunks = _memory._populate_chunks(fake, reverse=False)
    per = _memory._POPULATE_CHUNK
    # interleaved: first chunk of each buffer, then the second ones, ...; only whole huge pages
    assert chunks[0] == (4 * _memory._HUGE_PAGE, per) and chunks[1] == (100 * _memory._HUGE_PAGE, per)
    assert sum(length for _, length in chunks) == (11 + 12) * _memory._HUGE_PAGE
    backwards = _memory._populate_chunks(fake[1:], reverse=True)
    assert backwards[0][0] > backwards[-1][0] and backwards[-1][0] == 100 * _memory._HUGE_PAGE


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="MADV_POPULATE_WRITE is a Linux call")
def test_populate_maps_the_pages_and_changes_no_value(monkeypatch):
    monkeypatch.setattr(_memory, "_spare_cpu", lambda: True)  # also on a 1-CPU runner
    t = torch.empty((16 << 20,), dtype=torch.float32)  # fresh 64 MiB mapping, untouched
    middle = t.data_ptr() + t.numel() * t.element_size() // 2
    before = _smaps_kib(middle, "Rss")
    helper = _memory.populate_in_background(t)
    t[: 1 << 20].fill_(2.5)  # the loop writes while the helper maps the pages
    assert helper is not None
    helper.join()
    if _smaps_kib(middle, "Rss") == before:
        pytest.skip("this kernel does not support MADV_POPULATE_WRITE (Linux < 5.14): the helper maps nothing")
    assert _smaps_kib(middle, "Rss") >= before + (32 << 10)  # at least half of the buffer is now mapped
    assert bool((t[: 1 << 20] == 2.5).all())  # the concurrent writes stand


def test_populate_opt_out_and_small_or_non_cpu_buffers(monkeypatch):
    monkeypatch.setattr(_memory, "_spare_cpu", lambda: True)
    big = torch.empty((4 << 20,), dtype=torch.float32)
    assert _memory.populate_in_background(torch.empty(16)) is None  # too small to matter
    monkeypatch.setenv("SNN_BLOCKBACKEND_PREFAULT", "0")
    assert _memory.populate_in_background(big) is None
    monkeypatch.setenv("SNN_BLOCKBACKEND_PREFAULT", "1")
    monkeypatch.setattr(_memory, "_spare_cpu", lambda: False)  # one CPU: the helper would compete with the loop
    assert _memory.populate_in_background(big) is None
