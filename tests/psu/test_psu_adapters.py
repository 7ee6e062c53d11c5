"""Framework wrappers of the parallel spiking units (SpikingJelly, snnTorch, Norse).

Each wrapper only maps conventions onto ``snn_blockbackend.psu``; the tests check that the conventions hold
(step modes, ``reset_net``, ``(spk, mem)`` / ``(output, state)`` returns, framework surrogates) and that the
numbers are those of the framework-free units. Importing a wrapper without its framework raises an ImportError
naming the pip extra.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import sys
import warnings

import pytest
import torch

from snn_blockbackend.psu import functional as F
from snn_blockbackend.psu.modules import IPSU as CoreIPSU

T = 12


def _input(shape=(T, 4, 9), seed=0, dtype=torch.float32):
    g = torch.Generator().manual_seed(seed)
    return (torch.randn(shape, generator=g, dtype=torch.float64) + 0.4).to(dtype)


def _spikingjelly():
    pytest.importorskip("spikingjelly", reason="SpikingJelly is not installed (pip install 'snn-blockbackend[spikingjelly]')")
    from snn_blockbackend.adapters import psu_spikingjelly

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based import functional, layer, surrogate
    return psu_spikingjelly, functional, layer, surrogate


# ---------------------------------------------------------------------------------------------
# SpikingJelly
# ---------------------------------------------------------------------------------------------
def test_spikingjelly_psu_multi_step_single_step_and_reset_net():
    wrappers, functional, _, _ = _spikingjelly()
    x = _input(dtype=torch.float64)
    expected = F.psu(x)
    node = wrappers.PSU(step_mode="m", store_v_seq=True).double()
    assert torch.equal(node(x), expected.spikes)
    torch.testing.assert_close(node.v_seq, expected.membrane)
    # a second multi-step call continues the sequence (state in the memories h, k) ...
    continued = node(x)
    assert torch.equal(continued, F.psu(torch.cat([x, x])).spikes[T:])
    # ... until reset_net, after which the next call is a fresh sequence
    functional.reset_net(node)
    assert node.h == 0.0 and node.k == 0.0
    assert torch.equal(node(x), expected.spikes)
    # single-step mode: the exact recurrence, T calls give the multi-step spikes
    functional.reset_net(node)
    functional.set_step_mode(node, "s")
    steps = torch.stack([node(xt) for xt in x.unbind(0)])
    torch.testing.assert_close(steps, expected.spikes)
    torch.testing.assert_close(node.h, expected.state.h)
    with pytest.raises(ValueError, match="reset_net"):  # a new batch size without reset_net
        node(x[0, :2])


def test_spikingjelly_learned_units_are_multi_step_only_and_match_the_core_units():
    wrappers, functional, layer, surrogate = _spikingjelly()
    x = _input()
    for name in ("IPSU", "RPSU", "PPSU"):
        node = getattr(wrappers, name)(T)
        core = getattr(importlib.import_module("snn_blockbackend.psu.modules"), name)(T)
        core.load_state_dict(node.unit.state_dict())
        assert torch.equal(node(x), core(x))
        functional.reset_net(node)  # no state: runs and changes nothing
        assert torch.equal(node(x), core(x))
        with pytest.raises(ValueError, match="step_mode"):
            getattr(wrappers, name)(T, step_mode="s")
        with pytest.raises(ValueError, match=f"built for T={T}"):
            node(_input((T + 1, 4, 9)))
    # inside a multi-step SpikingJelly network, with a SpikingJelly surrogate, gradients reach every parameter
    net = torch.nn.Sequential(
        layer.Linear(9, 16, step_mode="m"),
        wrappers.RPSU(T, surrogate_function=surrogate.ATan()),
        layer.Linear(16, 9, step_mode="m"),
        wrappers.PSU(),
    )
    net(x).sum().backward()
    assert all(p.grad is not None for p in net.parameters())
    functional.reset_net(net)


# ---------------------------------------------------------------------------------------------
# snnTorch
# ---------------------------------------------------------------------------------------------
def test_snntorch_wrappers_return_spk_mem_and_accept_snntorch_surrogates():
    pytest.importorskip("snntorch", reason="snnTorch is not installed (pip install 'snn-blockbackend[snntorch]')")
    from snntorch import surrogate

    from snn_blockbackend.adapters import psu_snntorch

    x = _input().requires_grad_()
    ours = psu_snntorch.PSU()
    spk, mem = ours(x)
    expected = F.psu(x.detach())
    assert torch.equal(spk, expected.spikes) and torch.equal(mem, expected.membrane)
    assert torch.equal(psu_snntorch.PSU(output=False)(x), mem)
    # snnTorch's atan(alpha=2) has the same backward formula as the released ATan surrogate at alpha = 2
    (grad_ours,) = torch.autograd.grad(spk.sum(), x)
    spk_snn, _ = psu_snntorch.PSU(spike_grad=surrogate.atan(alpha=2.0))(x)
    (grad_snn,) = torch.autograd.grad(spk_snn.sum(), x)
    assert torch.equal(spk_snn, spk)
    torch.testing.assert_close(grad_snn, grad_ours, rtol=1e-6, atol=1e-7)
    # learned units: same numbers as the framework-free modules
    rpsu = psu_snntorch.RPSU(T)
    core = importlib.import_module("snn_blockbackend.psu.modules").RPSU(T)
    core.load_state_dict(rpsu.state_dict())
    assert torch.equal(rpsu(x)[0], core(x))


# ---------------------------------------------------------------------------------------------
# Norse
# ---------------------------------------------------------------------------------------------
def test_norse_wrappers_return_output_and_state():
    pytest.importorskip("norse", reason="Norse is not installed (pip install 'snn-blockbackend[norse]')")
    from snn_blockbackend.adapters import psu_norse

    x = _input(dtype=torch.float64)
    unit = psu_norse.PSU(tau=3.0, leak="lif").double()
    whole, whole_state = unit(x)
    first, state = unit(x[:5])
    second, final = unit(x[5:], state)
    assert isinstance(final, psu_norse.PSUState)
    torch.testing.assert_close(torch.cat([first, second]), whole)
    torch.testing.assert_close(final.k, whole_state.k)
    ipsu = psu_norse.IPSU(T).double()
    out, none = ipsu(x)
    assert none is None and out.shape == x.shape
    with pytest.raises(ValueError, match="no state between calls"):
        ipsu(x, state)


# ---------------------------------------------------------------------------------------------
# missing framework
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    "module, distribution, extra",
    [("psu_snntorch", "snntorch", "snntorch"), ("psu_spikingjelly", "spikingjelly", "spikingjelly"),
     ("psu_norse", "norse", "norse")],
)  # fmt: skip
def test_import_without_the_framework_names_the_pip_extra(monkeypatch, module, distribution, extra):
    real_version = importlib.metadata.version

    def version(name):
        if name == distribution:
            raise importlib.metadata.PackageNotFoundError(name)
        return real_version(name)

    monkeypatch.setattr(importlib.metadata, "version", version)
    name = f"snn_blockbackend.adapters.{module}"
    monkeypatch.delitem(sys.modules, name, raising=False)
    # a wrapper may import its framework through the framework's adapter module: import that afresh too
    monkeypatch.delitem(sys.modules, f"snn_blockbackend.adapters.{distribution}", raising=False)
    with pytest.raises(ImportError, match=rf"pip install 'snn-blockbackend\[{extra}\]'"):
        importlib.import_module(name)


def test_core_modules_need_no_framework():
    assert CoreIPSU(4)(torch.randn(4, 2)).shape == (4, 2)
