"""The benchmark machinery: timing helpers (``timing``) and the training-step rows (``training_bench``).
No timing assertions: only that the numbers exist, are consistent with each other and restore what they change."""

import gc

import pytest
import torch

from snn_blockbackend import timing, training_bench


def test_traffic_floor_counts_the_documented_arrays():
    x = torch.zeros(10, 4, 8)
    nbytes = x.numel() * 4
    assert timing.traffic_bytes(x, "fwd") == 3 * nbytes and timing.traffic_bytes(x, "fwd_bwd") == 6 * nbytes
    assert timing.traffic_floor_ms(x, "fwd", 2.0) == pytest.approx(3 * nbytes / 2e9 * 1e3)
    assert timing.traffic_floor_ms(x, "fwd", None) is None


def test_stream_bandwidth_is_positive_and_finite():
    bandwidth = timing.stream_bandwidth((16, 4, 32), reps=2)
    assert 0 < bandwidth < float("inf")


def test_torch_threads_restores_the_count_even_after_an_error():
    before = torch.get_num_threads()
    with pytest.raises(RuntimeError, match="inside"):
        with timing.torch_threads(1):
            assert torch.get_num_threads() == 1
            raise RuntimeError("inside")
    assert torch.get_num_threads() == before


def test_settled_heap_unfreezes_when_the_outermost_block_ends():
    with timing.settled_heap():
        assert gc.get_freeze_count() > 0
        with timing.settled_heap():
            pass
        assert gc.get_freeze_count() > 0  # an inner block leaves the outer one's freeze in place
    assert gc.get_freeze_count() == 0


def test_median_ms_returns_the_last_result_after_a_warm_up():
    calls = []
    ms, result = timing.median_ms(lambda: calls.append(1) or len(calls), reps=3)
    assert ms >= 0 and result == 4 and len(calls) == 4


@pytest.mark.parametrize("framework", training_bench.FRAMEWORKS)
def test_training_step_row_native_vs_ours(framework):
    """A tiny training step per framework: both nets train from the same weights, their first losses are equal
    (the forward passes are bit-exact), the row has both times and the thread count is restored."""
    before = torch.get_num_threads()
    row = training_bench.measure(framework, (5, 2, 12, 8, 3), threads=1, reps=1)
    assert torch.get_num_threads() == before
    if row["note"] and "not installed" in row["note"]:
        pytest.skip(f"{framework} is not installed: {row['note']}")
    assert row["note"] is None, row["note"]
    assert row["native_ms"] > 0 and row["our_ms"] > 0 and row["speedup"] == pytest.approx(row["native_ms"] / row["our_ms"])
    assert row["loss_equal"] is True and 0 <= row["rate"] <= 1


@pytest.mark.parametrize("framework", training_bench.FRAMEWORKS)
def test_training_step_row_in_bfloat16(framework):
    """The bfloat16 row: both nets in bfloat16 train from the same weights; the forward passes are bit-exact in
    that dtype too, so the first losses are equal."""
    row = training_bench.measure(framework, (5, 2, 12, 8, 3), threads=1, reps=1, variant="bfloat16")
    if row["note"] and "not installed" in row["note"]:
        pytest.skip(f"{framework} is not installed: {row['note']}")
    assert row["note"] is None, row["note"]
    assert row["variant"] == "bfloat16" and row["loss_equal"] is True and row["our_ms"] > 0


def test_training_plan_variants():
    """float32 at every shape and thread count; bfloat16 and compiled at the last shape, one thread; --quick
    leaves out the compiled rows."""
    full = [name for name, _ in training_bench.training_plan([], 1, quick=False)]
    quick = [name for name, _ in training_bench.training_plan([], 1, quick=True)]
    assert sum(name.endswith("compiled") for name in full) == len(training_bench.FRAMEWORKS)
    assert sum(name.endswith("bfloat16") for name in quick) == len(training_bench.FRAMEWORKS)
    assert not any(name.endswith("compiled") for name in quick)
    with pytest.raises(ValueError, match="variant"):
        training_bench.measure("snntorch", (4, 2, 6, 5, 3), threads=1, reps=1, variant="float8")


def test_training_table_fits_100_columns():
    from rich.console import Console

    rows = [training_bench.measure("snntorch", (4, 2, 6, 5, 3), threads=1, reps=1)]
    rows.append(dict(rows[0], framework="norse", note="norse not installed (No module named 'norse')"))
    console = Console(width=200, record=True)
    console.print(training_bench.training_table(rows))
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 100
    assert "snntorch" in text and "not installed" in text
