"""Bad input gets a clear exception, never a silent wrong answer."""

from __future__ import annotations

import pytest
import torch

from snn_blockbackend import make_profile, plugins, BlockALIF, BlockLIF, block_neuron, set_backend, use_backend
from snn_blockbackend.adapters.registry import ADAPTERS, AdapterInfo

X = torch.randn(6, 2, 3)


@pytest.mark.parametrize(
    ("x", "error", "match"),
    [
        (torch.randn(6), ValueError, "time-first"),
        (torch.ones(6, 2, 3, dtype=torch.int64), TypeError, "floating-point"),
        (torch.tensor([[1.0, float("nan")]]), ValueError, "NaN or Inf"),
        (torch.tensor([[1.0, float("inf")]]), ValueError, "NaN or Inf"),
        ([[1.0, 2.0]], TypeError, "torch.Tensor"),
    ],
)
def test_bad_input_tensor(x, error, match):
    with pytest.raises(error, match=match):
        block_neuron(x, "paper_lif", {"beta": 0.9})


CPU_PROVIDERS = [name for name in ("reference", "torch", "numba") if name in plugins.providers()]


@pytest.mark.parametrize("backend", CPU_PROVIDERS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("bad", [float("nan"), float("inf"), -float("inf")])
def test_non_finite_input_is_refused_wherever_it_is(backend, dtype, bad):
    """The numba provider checks the input inside its forward kernel (chunks of neurons on several threads):
    a NaN or Inf anywhere is refused as by the separate check of the other providers, the first and the last
    step, the first and the last neuron (the edges of the kernel's chunks) included; without the check the
    same input runs."""
    T, N = 7, 700  # with two threads the kernel's chunks end at neuron 349 and 699
    for t, n in [(0, 0), (T - 1, N - 1), (3, N // 2 - 1), (3, N // 2)]:
        x = torch.randn(T, N, dtype=dtype)
        x[t, n] = bad
        with pytest.raises(ValueError, match="input contains NaN or Inf"):
            block_neuron(x, "snntorch_leaky", {"beta": 0.9}, 2, backend=backend)
        assert block_neuron(x, "snntorch_leaky", {"beta": 0.9}, 2, backend=backend, check_finite=False).spikes.shape == x.shape


def test_numba_reads_the_input_once():
    """With the numba provider the finiteness check is the kernel's: no torch reduction over the input precedes
    it (a separate pass re-reads x, and the parallel operator's spinning OpenMP workers slow the kernel)."""
    if "numba" not in plugins.providers():
        pytest.skip("numba is not installed (the [numba] extra)")
    x = torch.randn(20, 4, 64)
    with torch.profiler.profile(record_shapes=True) as prof:
        block_neuron(x, "snntorch_leaky", {"beta": 0.9}, 0, backend="numba")
    names = {event.name for event in prof.events()}
    over_x = {event.name for event in prof.events() if list(x.shape) in event.input_shapes}
    assert "snn_blockbackend::numba_generated_forward" in names and "aten::sum" in names  # the parameter's check
    assert not over_x & {"aten::sum", "aten::isfinite", "aten::all"}, over_x


def test_finite_check_can_be_skipped():
    x = torch.tensor([[1.0, float("nan")]])
    spikes = block_neuron(x, "paper_lif", {"beta": 0.9}, check_finite=False).spikes
    assert spikes.shape == x.shape


@pytest.mark.parametrize(
    ("kwargs", "error", "match"),
    [
        ({"refractory_steps": -1}, ValueError, ">= 0"),
        ({"refractory_steps": 1.5}, TypeError, "non-negative int"),
        ({"refractory_steps": True}, TypeError, "non-negative int"),
        ({"params": {"beta": 0.0}}, ValueError, r"\(0, 1\]"),
        ({"params": {"beta": 1.2}}, ValueError, r"\(0, 1\]"),
        ({"params": {"beta": 0.9, "threshold": 0.0}}, ValueError, "threshold must be > 0"),
        ({"params": {"beta": 0.9, "threshold": -1.0}}, ValueError, "threshold must be > 0"),
        ({"params": {"beta": float("nan")}}, ValueError, "NaN or Inf"),
        ({"params": {}}, ValueError, "needs parameter 'beta'"),
        ({"params": {"beta": 0.9, "tau": 2.0}}, ValueError, "unknown parameter"),
        ({"params": {"beta": torch.full((3,), 1, dtype=torch.int64)}}, TypeError, "floating point"),
        ({"params": {"beta": torch.full((4,), 0.9)}}, ValueError, "does not broadcast"),
        ({"params": {"beta": "0.9"}}, TypeError, "float or a tensor"),
        ({"grad": "approx"}, ValueError, "grad must be one of"),
        ({"backend": "cuda-magic"}, ValueError, "unknown backend"),
        ({"profile": "no_such_neuron"}, ValueError, "unknown neuron profile"),
        ({"profile": 3}, TypeError, "NeuronProfile"),
        ({"state": {"v": torch.zeros(2, 3, dtype=torch.int64)}}, TypeError, "floating point"),
        ({"state": {"v": torch.zeros(5)}}, ValueError, "shape"),
        ({"state": {}}, ValueError, "missing"),
        ({"refractory_steps": 2, "state": {"v": torch.zeros(2, 3), "refractory": torch.full((2, 3), 3)}},
         ValueError, r"must lie in \[0, refractory_steps=2\]"),
        ({"refractory_steps": 2, "state": {"v": torch.zeros(2, 3), "refractory": torch.full((2, 3), -1)}},
         ValueError, r"must lie in \[0, refractory_steps=2\]"),
        ({"refractory_steps": 2, "state": {"v": torch.zeros(2, 3), "refractory": torch.ones(2, 3)}},
         TypeError, "integer tensor"),
    ],
)
def test_bad_arguments(kwargs, error, match):
    args = {"profile": "paper_lif", "params": {"beta": 0.9}, **kwargs}
    with pytest.raises(error, match=match):
        block_neuron(X, **args)


def test_device_mismatch_is_reported():
    meta_beta = torch.full((3,), 0.9, device="meta")
    with pytest.raises(ValueError, match="is on meta but the input is on cpu"):
        block_neuron(X, "paper_lif", {"beta": meta_beta})


def test_provider_refusal_names_the_reason():
    custom = make_profile("paper_lif", surrogate=lambda m: (m > 0).to(m.dtype))
    with pytest.raises(ValueError, match="numba.*custom surrogate"):
        block_neuron(X, custom, {"beta": 0.9}, backend="numba")


def test_process_wide_and_environment_backend(monkeypatch):
    with pytest.raises(ValueError, match="unknown backend"):
        set_backend("nope")
    with use_backend("reference"):
        ref = block_neuron(X + 1, "paper_lif", {"beta": 0.9}, 2).spikes
    monkeypatch.setenv("SNN_BLOCKBACKEND_BACKEND", "torch")
    assert torch.equal(block_neuron(X + 1, "paper_lif", {"beta": 0.9}, 2).spikes, ref)
    monkeypatch.setenv("SNN_BLOCKBACKEND_BACKEND", "bogus")
    with pytest.raises(ValueError, match="unknown backend 'bogus'"):
        block_neuron(X, "paper_lif", {"beta": 0.9})


def test_module_constructor_validates_refractory_steps():
    with pytest.raises(ValueError, match=">= 0"):
        BlockLIF(beta=0.9, refractory_steps=-2)
    with pytest.raises(ValueError, match=r"\(0, 1\]"):
        BlockALIF(beta=1.5)(X)


def test_missing_and_unsupported_framework_messages(monkeypatch):
    missing = AdapterInfo("nofw", "no-such-distribution-xyz", "nofw", "1.0", "2.0", "x")
    with pytest.raises(ImportError, match=r"pip install 'snn-blockbackend\[nofw\]'"):
        missing.require()
    old = AdapterInfo("torch", "torch", "torch", "0.1", "0.2", "x")  # torch is installed, but too new
    with pytest.raises(ImportError, match=r"supported versions: >=0.1,<0.2"):
        old.require()
    assert {a.framework for a in ADAPTERS} == {"snntorch", "spikingjelly", "norse"}
