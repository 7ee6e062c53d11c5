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


# ---------------------------------------------------------------------------------------------
# reuse of large CPU buffers (``empty``'s cache)
# ---------------------------------------------------------------------------------------------
LARGE = (1 << 22,)  # 16 MiB of float32: above the size the cache keeps


@pytest.fixture
def fresh_cache(monkeypatch):
    monkeypatch.delenv("SNN_BLOCKBACKEND_HOST_CACHE_MB", raising=False)
    _memory.empty_cache()
    yield
    _memory.empty_cache()


def test_a_dropped_buffer_is_reused_for_the_same_size(fresh_cache):
    first = _memory.empty(LARGE, torch.float32, torch.device("cpu"))
    address = first.data_ptr()
    del first
    again = _memory.empty((1 << 11, 1 << 11), torch.float32, torch.device("cpu"))  # same bytes, another shape
    assert again.data_ptr() == address and again.shape == (2048, 2048)
    other_dtype = _memory.empty((1 << 21,), torch.float64, torch.device("cpu"))  # same bytes, other dtype
    assert other_dtype.data_ptr() != address and other_dtype.dtype == torch.float64


def test_a_buffer_is_not_reused_while_any_tensor_or_array_uses_it(fresh_cache):
    cpu = torch.device("cpu")
    first = _memory.empty(LARGE, torch.float32, cpu)
    first.fill_(7.0)
    holders = [first[10:20].view(2, 5), first.numpy(), first.view(torch.int32)]  # views keep the memory in use
    del first
    for holder in holders:
        taken = [_memory.empty(LARGE, torch.float32, cpu) for _ in range(2)]
        taken[0].fill_(-1.0)
        taken[1].fill_(-1.0)
        assert float(torch.as_tensor(holders[0]).float().sum()) == 70.0  # untouched by the new buffers
        del taken
    saved = torch.ones(3, requires_grad=True)
    graph_holder = _memory.empty(LARGE, torch.float32, cpu).fill_(2.0)
    y = (saved.sum() * graph_holder).sum()  # autograd saves graph_holder for the backward
    address = graph_holder.data_ptr()
    del graph_holder
    assert _memory.empty(LARGE, torch.float32, cpu).data_ptr() != address
    y.backward()
    assert float(saved.grad[0]) == 2.0 * LARGE[0]


def test_idle_buffers_are_kept_up_to_the_limit_and_released_on_request(fresh_cache, monkeypatch):
    cpu = torch.device("cpu")
    nbytes = LARGE[0] * 4
    monkeypatch.setenv("SNN_BLOCKBACKEND_HOST_CACHE_MB", str(2 * nbytes / (1 << 20)))  # room for two idle ones
    held = [_memory.empty(LARGE, torch.float32, cpu) for _ in range(3)]
    assert _memory.cached_bytes() == (3 * nbytes, 0)
    del held
    _memory.empty((16,), torch.float32, cpu)  # small: not cached, no release either
    assert _memory.cached_bytes() == (0, 3 * nbytes)
    # the limit is applied when a buffer is handed out (a tensor's death is not seen): another size, a fresh
    # buffer, and the least recently used idle one goes
    kept = _memory.empty((LARGE[0] * 2,), torch.float32, cpu)
    assert _memory.cached_bytes() == (2 * nbytes, 2 * nbytes)
    del kept
    _memory.empty_cache()
    assert _memory.cached_bytes() == (0, 0)
    monkeypatch.setenv("SNN_BLOCKBACKEND_HOST_CACHE_MB", "0")
    t = _memory.empty(LARGE, torch.float32, cpu)
    assert _memory.cached_bytes() == (0, 0) and t.numel() == LARGE[0]
    monkeypatch.setenv("SNN_BLOCKBACKEND_HOST_CACHE_MB", "lots")
    with pytest.raises(ValueError, match="SNN_BLOCKBACKEND_HOST_CACHE_MB"):
        _memory.empty(LARGE, torch.float32, cpu)


def test_empty_cache_is_public():
    import snn_blockbackend

    assert snn_blockbackend.empty_cache is _memory.empty_cache


@pytest.mark.parametrize("backend", ["torch", "numba"])
def test_providers_reusing_buffers_equal_the_reference(backend, fresh_cache):
    # [64, 32768] float32 = 8 MiB per output: above the cache's threshold, so the second and third calls reuse
    # the buffers the earlier ones dropped, while an earlier result that is still held keeps its own
    from snn_blockbackend import block_neuron, plugins

    if backend not in plugins.providers():
        pytest.skip(f"the {backend} provider is not installed (pip extra 'numba')")
    generator = torch.Generator().manual_seed(3)
    inputs = [torch.rand((64, 32768), generator=generator) * 0.8 + 0.2 for _ in range(3)]
    params = {"beta": torch.rand(32768, generator=generator) * 0.5 + 0.5, "threshold": 1.0}

    def run(x, name):
        x = x.clone().requires_grad_()
        result = block_neuron(x, "snntorch_leaky", params, 2, backend=name)
        (result.spikes.sum() + result.membrane.square().sum()).backward()
        return result.spikes, result.membrane, x.grad

    expected = [run(x, "reference") for x in inputs]
    held = run(inputs[0], backend)
    footprint = []  # bytes the cache holds (in use + idle) after each call
    for x, want in zip(inputs[1:] + inputs[:1], expected[1:] + expected[:1]):
        got = run(x, backend)
        footprint.append(sum(_memory.cached_bytes()))
        assert torch.equal(got[0], want[0]) and torch.equal(got[1], want[1])
        torch.testing.assert_close(got[2], want[2], rtol=1e-5, atol=1e-5 * float(want[2].abs().max()))
        del got
    assert footprint[0] > 0 and footprint[1] == footprint[0]  # the third call allocated nothing new
    assert torch.equal(held[0], expected[0][0]) and torch.equal(held[1], expected[0][1])
    torch.testing.assert_close(held[2], expected[0][2], rtol=1e-5, atol=1e-5 * float(expected[0][2].abs().max()))
