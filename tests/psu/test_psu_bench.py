"""The PSU benchmark rows: structure, and ratios computed from the native rows of the same run."""

from __future__ import annotations

import pytest
from rich.console import Console

from snn_blockbackend.psu import bench


def test_psu_rows_structure_and_ratios():
    rows = bench.psu_rows(1, shapes=((3, 2, 8),))
    units = [r for r in rows if r["kind"] == "unit"]
    natives = {r["framework"]: r for r in rows if r["kind"] == "native"}
    assert [r["neuron"] for r in units] == list(bench.UNITS)
    assert set(natives) == set(bench.NATIVES)
    for row in units:
        assert row["fwd_ms"] > 0 and row["fwd_bwd_ms"] > 0 and 0 <= row["rate"] <= 1
        for framework, native in natives.items():
            if native["status"] == "ok":
                assert row["fwd_speedup"][framework] == pytest.approx(native["fwd_ms"] / row["fwd_ms"])
                assert row["fwd_bwd_speedup"][framework] == pytest.approx(native["fwd_bwd_ms"] / row["fwd_bwd_ms"])
            else:
                assert row["fwd_speedup"][framework] is None
    console = Console(width=160, record=True)
    console.print(bench.psu_table(rows))
    text = console.export_text()
    assert "RPSU" in text and "3x2x8" in text


def test_psu_rows_rejects_bad_reps():
    with pytest.raises(ValueError, match="reps"):
        bench.psu_rows(0)
