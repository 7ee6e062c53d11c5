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


def _anon_huge_kib(address: int) -> int:
    """AnonHugePages of the mapping that holds ``address`` (from /proc/self/smaps)."""
    inside = False
    for line in Path("/proc/self/smaps").read_text().splitlines():
        head = line.split()[0]
        if "-" in head and not head.endswith(":"):
            start, end = (int(part, 16) for part in head.split("-"))
            inside = start <= address < end
        elif inside and head == "AnonHugePages:":
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
    assert _anon_huge_kib(middle) > 0


def test_opt_out_leaves_the_buffer_alone(monkeypatch):
    monkeypatch.setenv("SNN_BLOCKBACKEND_HUGEPAGES", "0")
    _memory._madvise.cache_clear()
    try:
        assert _memory._madvise() is None
        t = _memory.empty((16 << 20,), torch.float32, torch.device("cpu"))
        assert t.numel() == 16 << 20
    finally:
        monkeypatch.undo()
        _memory._madvise.cache_clear()
