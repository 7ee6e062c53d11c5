"""Result helpers (binning into torch tensors, statistics) and the command line."""

import argparse
import json
import subprocess
import sys

import numpy as np
import torch

import snn_blockbackend.sparseprop as sp
from snn_blockbackend.sparseprop import cli


def test_bin_spikes_time_first_sparse_tensor():
    net = sp.fixed_outdegree_network(300, 10, seed=1)
    res = sp.simulate(sp.LIF(drive=0.2), net, t_stop=0.2, seed=1)
    spikes = res.bin_spikes(1e-3)
    assert spikes.is_sparse and spikes.shape == (200, 300)
    dense = res.bin_spikes(1e-3, sparse=False)
    assert dense.sum().item() == res.n_spikes
    # each spike lands in bin floor(t / dt) of its neuron
    s = 17
    t_bin = int(res.spike_times[s] / 1e-3)
    assert dense[t_bin, res.neuron_ids[s]] >= 1
    # usable as input to a torch layer (time-first [T, N])
    layer = torch.nn.Linear(300, 4)
    assert layer(dense).shape == (200, 4)


def test_isi_cv_of_regular_and_poisson_trains():
    regular = np.arange(1, 101, dtype=float)
    assert sp.isi_cv(regular, np.zeros(100, dtype=np.int32)) < 1e-12
    rng = np.random.default_rng(0)
    poisson = np.cumsum(rng.exponential(1.0, 20000))
    assert abs(sp.isi_cv(poisson, np.zeros(20000, dtype=np.int32)) - 1.0) < 0.03


def test_add_parser_integrates_with_argparse(tmp_path, capsys):
    parser = argparse.ArgumentParser(prog="snn-blockbackend")
    sub = parser.add_subparsers(dest="command")
    cli.add_parser(sub)
    raster = tmp_path / "r.png"
    args = parser.parse_args(["sparseprop", "--neurons", "2000", "--k", "20", "--seconds", "0.2",
                              "--raster", str(raster)])
    assert args.func(args) == 0
    out = capsys.readouterr().out
    assert "mean rate" in out and "us per spike" in out and "CV" in out
    assert raster.exists() and raster.stat().st_size > 1000


def test_module_entry_json_prints_only_json(tmp_path):
    cmd = [sys.executable, "-m", "snn_blockbackend.sparseprop", "--model", "qif", "--neurons", "3000",
           "--k", "30", "--seconds", "0.2", "--seed", "1", "--json", "--raster", str(tmp_path / "x.png")]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120, check=True)
    figures = json.loads(proc.stdout)
    assert set(figures) == {"spikes", "rate_hz", "cv", "us_per_spike", "compile_s"}
    assert figures["spikes"] > 0 and figures["rate_hz"] > 0
    assert proc.stdout.strip().count("\n") == 0


def test_module_entry_reports_bad_input():
    cmd = [sys.executable, "-m", "snn_blockbackend.sparseprop", "--neurons", "10", "--k", "10", "--json"]
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    assert "smaller than n" in proc.stderr
    assert proc.stdout == ""
