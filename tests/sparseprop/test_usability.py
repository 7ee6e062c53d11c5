"""Issue 15: the sparseprop CLI writes files only where asked, times the run without compilation, and user
connectivity with invalid or duplicate indices is validated (never handed to compiled code) or summed."""

from __future__ import annotations

import argparse
import importlib
import math

import numpy as np
import pytest
import scipy.sparse as sps
import torch

import snn_blockbackend.sparseprop as sp
from snn_blockbackend.sparseprop import cli

simulate_module = importlib.import_module("snn_blockbackend.sparseprop.simulate")  # the name `simulate` is the function


def _parse(argv):
    parser = argparse.ArgumentParser(prog="snn-blockbackend")
    cli.add_parser(parser.add_subparsers(dest="command"))
    return parser.parse_args(["sparseprop", *argv])


SMALL = ["--neurons", "400", "--k", "20", "--seconds", "0.3", "--seed", "2"]


# ---------------------------------------------------------------------------------------------
# command line
# ---------------------------------------------------------------------------------------------
def test_cli_writes_no_file_unless_asked(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    args = _parse(SMALL)
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "us per spike" in out and "compile time" in out
    assert list(tmp_path.iterdir()) == []


def test_cli_raster_covers_the_whole_run(tmp_path, monkeypatch):
    import matplotlib.figure

    seen = {}

    def record(figure, path, **kwargs):
        ax = figure.axes[0]
        seen["xlim"] = ax.get_xlim()
        seen["last spike"] = max(line.get_xdata().max() for line in ax.get_lines())
        seen["path"] = path

    monkeypatch.setattr(matplotlib.figure.Figure, "savefig", record)
    args = _parse([*SMALL[:-4], "--seconds", "2", "--seed", "2", "--json", "--raster", str(tmp_path / "r.png")])
    assert args.func(args) == 0
    assert seen["xlim"] == (0.0, 2.0)
    assert seen["last spike"] > 1.9  # spikes of the second second are drawn
    assert seen["path"] == str(tmp_path / "r.png")


def test_cli_raster_in_a_missing_folder_is_refused_before_running(tmp_path, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse([*SMALL, "--raster", str(tmp_path / "missing" / "r.png")])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--raster" in err and "does not exist" in err and "missing" in err


@pytest.mark.parametrize("seconds", ["inf", "-inf", "nan", "0", "-1", "soon"])
def test_cli_refuses_unusable_seconds(seconds, capsys):
    with pytest.raises(SystemExit) as exit_info:
        _parse(["--neurons", "400", "--k", "20", f"--seconds={seconds}"])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert "--seconds" in err and (seconds in err)


def test_compile_time_is_reported_apart_from_the_run(monkeypatch):
    compile_calls = []
    real_compile = simulate_module._compile

    def slow_compile(kernel, args):
        compile_calls.append(kernel)
        real_compile(kernel, args)
        import time

        time.sleep(0.3)  # a stand-in for numba's JIT on a cold cache
        return 0.3

    monkeypatch.setattr(simulate_module, "_compile", slow_compile)
    net = sp.fixed_outdegree_network(300, 10, seed=1)
    result = sp.simulate(sp.LIF(drive=0.2), net, t_stop=0.2, seed=1)
    assert compile_calls  # the loops were compiled (or loaded) before the clock started
    assert result.compile_time_s == pytest.approx(0.3 * len(compile_calls))
    assert result.wall_time_s < 0.3  # none of it is in the run's time, nor in µs per spike
    assert result.summary()["compile_s"] == result.compile_time_s


# ---------------------------------------------------------------------------------------------
# simulate(): progress and stop conditions
# ---------------------------------------------------------------------------------------------
def test_progress_true_shows_a_bar_and_a_callable_is_called(capsys):
    net = sp.fixed_outdegree_network(300, 10, seed=1)
    model = sp.LIF(drive=0.2)
    with_bar = sp.simulate(model, net, t_stop=0.2, seed=1, progress=True, chunk=64)
    captured = capsys.readouterr()
    assert "sparseprop" in captured.out + captured.err
    calls = []
    with_callable = sp.simulate(model, net, t_stop=0.2, seed=1, progress=lambda n, t: calls.append((n, t)), chunk=64)
    assert len(calls) >= 2 and calls[-1][0] == with_callable.n_spikes
    assert np.array_equal(with_bar.spike_times, with_callable.spike_times)
    with pytest.raises(TypeError, match="progress must be True"):
        sp.simulate(model, net, t_stop=0.2, progress="yes")


def test_infinite_t_stop_needs_a_spike_budget():
    net = sp.fixed_outdegree_network(300, 10, seed=1)
    with pytest.raises(ValueError, match="t_stop=inf never ends without a spike budget"):
        sp.simulate(sp.LIF(drive=0.2), net, t_stop=math.inf)
    result = sp.simulate(sp.LIF(drive=0.2), net, t_stop=math.inf, n_spikes=50)
    assert result.n_spikes == 50


# ---------------------------------------------------------------------------------------------
# user connectivity
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("bad", [[[0, 1, -1], [1, 0, 2]], [[0, 1, 2], [1, 0, 3]], [[0, 3, 2], [1, 0, 1]]])
def test_torch_coo_with_invalid_indices_is_refused_without_crashing(bad):
    indices = torch.tensor(bad)
    matrix = torch.sparse_coo_tensor(indices, torch.ones(3), (3, 3), check_invariants=False)
    with pytest.raises(ValueError, match=r"weight matrix (row|column) .*indices must lie in \[0, 3\)"):
        sp.from_sparse_matrix(matrix)


def test_compressed_input_with_bad_pointers_is_named():
    indices, data = np.array([1, 0, 1]), np.ones(3)
    decreasing = sps.csr_matrix((3, 3))
    decreasing.indptr, decreasing.indices, decreasing.data = np.array([0, 2, 1, 3]), indices, data
    with pytest.raises(ValueError, match="indptr must be non-decreasing"):
        sp.from_sparse_matrix(decreasing)
    out_of_range = sps.csr_matrix((3, 3))
    out_of_range.indptr, out_of_range.indices, out_of_range.data = np.array([0, 1, 2, 3]), np.array([1, 5, 0]), data
    with pytest.raises(ValueError, match=r"CSR indices must lie in \[0, 3\)"):
        sp.from_sparse_matrix(out_of_range)
    torch_csr = torch.sparse_csr_tensor(torch.tensor([0, 2, 1, 3]), torch.tensor([1, 0, 1]), torch.ones(3), (3, 3),
                                        check_invariants=False)
    with pytest.raises(ValueError, match="indptr must be non-decreasing"):
        sp.from_sparse_matrix(torch_csr)
    with pytest.raises(ValueError, match=r"indices must lie in \[0, 3\)"):
        sp.Network(3, 1, 0.0, 0, False, np.array([0, 1, 2, 3]), np.array([1, 2, 7], dtype=np.int32), np.ones(3))


def test_duplicate_entries_are_summed_in_every_input_form():
    # W[post, pre]: (1, 0) given twice (0.5 + 0.25), (2, 1) once, (0, 2) twice (-1 + 0.5)
    post = np.array([1, 2, 0, 1, 0])
    pre = np.array([0, 1, 2, 0, 2])
    values = np.array([0.5, -0.75, -1.0, 0.25, 0.5])
    dense = np.zeros((3, 3))
    np.add.at(dense, (post, pre), values)
    forms = {
        "dense torch": torch.from_numpy(dense),
        "torch COO (uncoalesced)": torch.sparse_coo_tensor(torch.from_numpy(np.stack([post, pre])),
                                                           torch.from_numpy(values), (3, 3)),
        "scipy COO": sps.coo_matrix((values, (post, pre)), shape=(3, 3)),
        "scipy CSR (duplicates kept)": sps.csr_matrix(
            (values[np.argsort(post, kind="stable")], pre[np.argsort(post, kind="stable")],
             np.concatenate(([0], np.cumsum(np.bincount(post, minlength=3))))), shape=(3, 3)),
        "scipy CSC": sps.coo_matrix((values, (post, pre)), shape=(3, 3)).tocsc(),
    }
    assert not forms["scipy CSR (duplicates kept)"].has_canonical_format
    expected = sp.from_sparse_matrix(sps.csr_matrix(dense))
    assert expected.n_synapses == 3
    assert np.array_equal(expected.weights, [0.75, -0.75, -0.5])
    for name, matrix in forms.items():
        network = sp.from_sparse_matrix(matrix)
        assert network.n_synapses == 3, name
        assert np.array_equal(network.indptr, expected.indptr), name
        assert np.array_equal(network.indices, expected.indices), name
        assert np.array_equal(network.weights, expected.weights), name
