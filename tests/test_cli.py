"""The ``snn-blockbackend`` command line: ``info``, a tiny ``bench`` run and the ``sparseprop`` wiring."""

from __future__ import annotations

import importlib.util
import json
import sys

import pytest
import torch

from snn_blockbackend import cli


def _sparseprop_importable() -> bool:
    try:
        import snn_blockbackend.sparseprop.cli  # noqa: F401
    except ImportError:
        return False
    return True


def test_info_json_lists_providers_and_frameworks(capsys):
    assert cli.main(["info", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    providers = {p["name"]: p["priority"] for p in info["providers"]}
    assert {"reference", "torch"} <= set(providers)
    assert providers["torch"] > providers["reference"]
    assert {f["framework"] for f in info["frameworks"]} >= {"snntorch", "spikingjelly", "norse"}
    for framework in info["frameworks"]:
        if framework["installed_version"] is None:
            assert f"snn-blockbackend[{framework['extra']}]" in framework["status"]
    assert "snntorch_leaky" in {p["name"] for p in info["profiles"]}
    assert all(p["summary"] for p in info["profiles"])
    assert info["torch"]["version"] and "SNN_BLOCKBACKEND_BACKEND" in info["env"]


def test_info_tables_and_env(capsys, monkeypatch):
    monkeypatch.setenv("SNN_BLOCKBACKEND_BACKEND", "torch")
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    assert "reference" in out and "snntorch" in out and "SNN_BLOCKBACKEND_BACKEND=torch" in out


def test_info_says_whose_threads_run_the_kernels(capsys, monkeypatch):
    from snn_blockbackend.providers import numba_threads

    monkeypatch.setenv(numba_threads.ENV_THREADS, "python")
    assert cli.main(["info", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["torch"]["kernel_threads"] == "Python threads"
    monkeypatch.delenv(numba_threads.ENV_THREADS)
    assert cli.main(["info", "--json"]) == 0
    runtime = numba_threads.openmp_runtime()
    expected = "Python threads" if runtime is None else f"PyTorch's OpenMP threads ({runtime})"
    assert json.loads(capsys.readouterr().out)["torch"]["kernel_threads"] == expected


def test_no_command_prints_help(capsys):
    assert cli.main([]) == 1
    assert "bench" in capsys.readouterr().out


def test_bench_tiny_run_writes_json_and_plot(tmp_path, capsys):
    out = tmp_path / "bench"
    args = ["bench", "--quick", "--out", str(out), "--reps", "1", "--T", "24", "--B", "2", "--N", "8",
            "--providers", "torch,reference", "--training-shape", "6,2,12,8,3"]  # fmt: skip
    assert cli.main(args) == 0
    printed = capsys.readouterr().out
    assert "x f+b" in printed and "f+b/fl" in printed and "±25%" in printed and "streaming bandwidth" in printed
    assert "training step" in printed
    assert max(len(line) for line in printed.splitlines()) <= 100  # the tables fit a 100-column terminal
    assert (out / "speedup_vs_refractory.png").stat().st_size > 1000
    result = json.loads((out / "bench.json").read_text())
    assert result["config"]["shape"] == [24, 2, 8]
    assert result["machine"]["torch"] and result["machine"]["threads"] >= 1
    rows = [r for r in result["rows"] if r["case"] == "snntorch_leaky" and r.get("fwd_ms") is not None]
    assert {(r["provider"], r["R"]) for r in rows} == {(p, R) for p in ("torch", "reference") for R in (0, 9)}
    assert not [r for r in result["rows"] if (r.get("note") or "").startswith("error")]
    assert {p["R"] for p in result["sweep"] if p["provider"] == "torch"} == {0, 4, 9}
    assert set(result["max_spike_mismatch"].values()) == {0}
    # every timed row has its time as a multiple of the traffic floor measured in the same run
    assert result["bandwidth"]["gbs"] > 0 and result["bandwidth"]["floor_arrays"] == {"fwd": 3, "fwd_bwd": 6}
    for r in rows:
        floor = result["bandwidth"]["floor_ms"]["fwd"] * (r["T"] / 24)  # the reference rows run on a slice
        assert r["fwd_floor_x"] == pytest.approx(r["fwd_ms"] / floor) and r["fwd_bwd_floor_x"] > 0
    # the training-step rows: one per installed framework and thread count, native and ours from one run
    training = result["training"]
    assert {(r["framework"], r["threads"]) for r in training} == {
        (f, n) for f in ("snntorch", "spikingjelly", "norse") for n in (1, 2)
    }
    for r in training:
        assert (r["T"], r["B"], r["sizes"]) == (6, 2, [12, 8, 3])
        if r["note"] is None:  # the framework is installed: both nets trained, their first losses equal
            assert r["native_ms"] > 0 and r["our_ms"] > 0 and r["speedup"] == pytest.approx(r["native_ms"] / r["our_ms"])
            assert r["loss_equal"] is True
        else:
            assert "not installed" in r["note"], r["note"]
    # the parallel-spiking-unit rows ran too (quick shapes), each unit against every installed native LIF
    units = [r for r in result["psu"] if r["kind"] == "unit"]
    assert {r["neuron"] for r in units} == {"PSU", "IPSU", "RPSU"} and all(r["fwd_ms"] > 0 for r in units)
    # R > 0: checked against the sequential reference (every case whose provider ran)
    for r in result["rows"]:
        if r.get("R", 0) > 0 and r["provider"] != "reference" and r.get("fwd_ms") is not None:
            assert (r["mismatch_vs"], r["spike_mismatch"]) == ("reference", 0), r
    if importlib.util.find_spec("snntorch") is None:
        pytest.skip("snnTorch is not installed: no native baseline for the R=0 spike check")
    headline = [r for r in rows if r["R"] == 0]
    assert headline and all((r["mismatch_vs"], r["spike_mismatch"]) == ("native", 0) for r in headline)
    assert all(r["speedup_fwd"] is not None for r in headline)


def test_bench_device_option_and_default_folder(tmp_path, monkeypatch, capsys):
    """``--device`` moves every neuron there; a non-CPU run writes to bench/<device type>/ by default (the
    committed CPU results stay), and skips the CPU-only PSU rows. Run here on the CPU device itself."""
    monkeypatch.chdir(tmp_path)
    args = ["bench", "--quick", "--reps", "1", "--T", "12", "--B", "1", "--N", "4", "--providers", "torch",
            "--device", "cpu", "--no-psu", "--no-training"]  # fmt: skip
    assert cli.main(args) == 0
    result = json.loads((tmp_path / "bench" / "bench.json").read_text())
    assert result["config"]["device"] == "cpu" and result["machine"]["device"] == "cpu"
    assert [r for r in result["rows"] if r["provider"] == "torch" and r.get("fwd_ms") is not None]
    printed = capsys.readouterr().out
    assert "parallel spiking units: not run" in printed and "training-step rows: not run" in printed


def test_bench_refuses_an_unusable_device(tmp_path):
    with pytest.raises(SystemExit, match="device 'nonsense' is not usable"):
        cli.main(["bench", "--quick", "--out", str(tmp_path), "--device", "nonsense"])
    if not torch.cuda.is_available():
        with pytest.raises(SystemExit, match="device 'cuda' is not usable"):
            cli.main(["bench", "--quick", "--out", str(tmp_path), "--device", "cuda"])


def test_bench_rejects_unknown_provider(tmp_path):
    with pytest.raises(SystemExit, match="unknown or unavailable provider"):
        cli.main(["bench", "--quick", "--out", str(tmp_path), "--providers", "nope"])


def test_sparseprop_without_its_module_explains_the_extra(monkeypatch, capsys):
    # a None entry in sys.modules makes ``import`` raise ImportError, as when the module or numba is missing
    monkeypatch.setitem(sys.modules, "snn_blockbackend.sparseprop", None)
    assert cli.main(["sparseprop", "--neurons", "10"]) == 2
    err = capsys.readouterr().err
    assert "pip install 'snn-blockbackend[sparseprop]'" in err


@pytest.mark.skipif(not _sparseprop_importable(), reason="snn_blockbackend.sparseprop (numba) is not importable")
def test_sparseprop_help(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["sparseprop", "--help"])
    assert exit_info.value.code == 0
    assert "--neurons" in capsys.readouterr().out


def test_sparseprop_missing_reports_clearly_when_absent(capsys):
    if _sparseprop_importable():
        pytest.skip("the sparseprop module is installed (see test_sparseprop_help)")
    assert cli.main(["sparseprop"]) == 2
    assert "snn-blockbackend[sparseprop]" in capsys.readouterr().err
