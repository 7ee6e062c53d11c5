"""Truncated BPTT with each framework's own idiom, ours against the native class doing the same.

A sequence is cut into chunks; after each chunk the loss is back-propagated and the state is detached
(snnTorch ``Leaky.detach_hidden()``, SpikingJelly ``functional.detach_net``, Norse ``state.v.detach_()`` on each
state field), then the next chunk continues from it. At R = 0 the spikes and every chunk's gradients (input and
parameters) equal the native run's (float tolerance); at R > 0 the chunked spikes equal one unchunked run (the
state, refractory countdown included, is carried across the cut).
"""

from __future__ import annotations

import copy
import warnings

import pytest
import torch
from torch import nn

warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script inside Norse / SpikingJelly

T, B, N_IN, N = 24, 3, 4, 5
CHUNK = 7  # does not divide T: the last chunk is shorter


def _data(seed=0):
    generator = torch.Generator().manual_seed(seed)
    x = torch.rand(T, B, N_IN, generator=generator)
    weights = torch.randn(T, B, N, generator=generator)  # the loss: a fixed random readout of the spikes
    return x, weights


def _run_chunks(run_chunk, detach, parameters, x, weights):
    """Spikes [T, B, N] and, per chunk, the gradients (input chunk first, then ``parameters``)."""
    spikes, grads = [], []
    for start in range(0, T, CHUNK):
        chunk = x[start : start + CHUNK].clone().requires_grad_()
        out = run_chunk(chunk)
        (out * weights[start : start + CHUNK]).sum().backward()
        grads.append([chunk.grad] + [p.grad.clone() for p in parameters])
        for p in parameters:
            p.grad = None
        detach()
        spikes.append(out.detach())
    return torch.cat(spikes), grads


def _assert_same(native, ours):
    spikes_native, grads_native = native
    spikes, grads = ours
    assert bool(spikes_native.any()) and not bool(spikes_native.all()), "degenerate spikes: the case tests nothing"
    assert torch.equal(spikes, spikes_native)
    for chunk_native, chunk in zip(grads_native, grads):
        for g_native, g in zip(chunk_native, chunk):
            scale = float(g_native.abs().max())
            torch.testing.assert_close(g, g_native, rtol=1e-5, atol=1e-7 + 2e-6 * scale)
    assert any(float(g.abs().max()) > 0 for chunk in grads_native for g in chunk), "no gradient reaches anything"


# =============================================================================================
# snnTorch
# =============================================================================================
snn = None


def _snntorch():
    global snn
    snn = pytest.importorskip("snntorch", reason="snnTorch is not installed")
    return pytest.importorskip("snn_blockbackend.adapters.snntorch", reason="snnTorch is not installed")


def test_snntorch_tbptt_matches_native():
    sb = _snntorch()
    torch.manual_seed(0)
    native = nn.Sequential(nn.Linear(N_IN, N), snn.Leaky(beta=0.8, threshold=0.4, init_hidden=True, learn_beta=True))
    ours = nn.Sequential(
        nn.Linear(N_IN, N), sb.BlockLeaky(beta=0.8, threshold=0.4, init_hidden=True, learn_beta=True, sequence=True)
    )
    ours.load_state_dict(native.state_dict())
    x, weights = _data()
    native[1].reset_mem()
    ours[1].reset_mem()
    result_native = _run_chunks(
        lambda chunk: torch.stack([native(xt) for xt in chunk]), snn.Leaky.detach_hidden,
        list(native.parameters()), x, weights,
    )  # fmt: skip
    result = _run_chunks(ours, snn.Leaky.detach_hidden, list(ours.parameters()), x, weights)
    _assert_same(result_native, result)


def test_snntorch_tbptt_carries_the_refractory_countdown():
    sb = _snntorch()
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(N_IN, N), sb.BlockLeaky(beta=0.9, threshold=0.3, init_hidden=True, sequence=True,
                                                          refractory_steps=3))  # fmt: skip
    whole = copy.deepcopy(net)
    x, weights = _data(1)
    net[1].reset_mem()
    spikes, _ = _run_chunks(net, snn.Leaky.detach_hidden, list(net.parameters()), x, weights)
    whole[1].reset_mem()
    with torch.no_grad():
        expected = whole(x)
    assert bool(expected.any())
    assert torch.equal(spikes, expected)


# =============================================================================================
# SpikingJelly
# =============================================================================================
def _spikingjelly():
    sjb = pytest.importorskip("snn_blockbackend.adapters.spikingjelly", reason="SpikingJelly is not installed")
    from spikingjelly.activation_based import functional, neuron

    return sjb, neuron, functional


def _sj_net(node):
    return nn.Sequential(nn.Linear(N_IN, N), node)


def _sj_run(net, step_mode):
    if step_mode == "m":
        return net
    return lambda chunk: torch.stack([net(xt) for xt in chunk])


@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("parametric", [False, True], ids=["LIFNode", "ParametricLIFNode"])
def test_spikingjelly_tbptt_matches_native(parametric, step_mode):
    sjb, neuron, functional = _spikingjelly()
    torch.manual_seed(0)
    stock_class = neuron.ParametricLIFNode if parametric else neuron.LIFNode
    block_class = sjb.BlockParametricLIFNode if parametric else sjb.BlockLIFNode
    native = _sj_net(stock_class(step_mode=step_mode, v_threshold=0.3))
    ours = _sj_net(block_class(step_mode=step_mode, v_threshold=0.3))
    if sjb.API == "0.0.0.0.14" and step_mode == "m":
        functional.set_backend(ours, "block")
    ours.load_state_dict(native.state_dict())
    x, weights = _data()
    results = []
    for net in (native, ours):
        functional.reset_net(net)
        run = _sj_run(net, step_mode)
        results.append(_run_chunks(run, lambda: functional.detach_net(net), list(net.parameters()), x, weights))
    _assert_same(*results)


@pytest.mark.parametrize("step_mode", ["s", "m"])
def test_spikingjelly_tbptt_carries_the_refractory_countdown(step_mode):
    sjb, neuron, functional = _spikingjelly()
    torch.manual_seed(0)
    net = _sj_net(sjb.BlockLIFNode(step_mode=step_mode, v_threshold=0.3, refractory_steps=3))
    whole = copy.deepcopy(net)

    x, weights = _data(1)
    functional.reset_net(net)
    spikes, _ = _run_chunks(_sj_run(net, step_mode), lambda: functional.detach_net(net), list(net.parameters()),
                            x, weights)  # fmt: skip
    functional.reset_net(whole)
    with torch.no_grad():
        expected = _sj_run(whole, step_mode)(x)
    assert bool(expected.any())
    assert torch.equal(spikes, expected)


# =============================================================================================
# Norse
# =============================================================================================
def _norse():
    nb = pytest.importorskip("snn_blockbackend.adapters.norse", reason="Norse is not installed")
    nt = pytest.importorskip("norse.torch", reason="Norse is not installed")
    return nb, nt


class _NorseNet(nn.Module):
    """Linear -> a Norse neuron, carrying the neuron's state between calls (detached by ``detach``)."""

    def __init__(self, neuron, time_first):
        super().__init__()
        self.linear, self.neuron, self.time_first = nn.Linear(N_IN, N), neuron, time_first
        self.state = None

    def forward(self, chunk):
        h = self.linear(chunk)
        if self.time_first:
            out, self.state = self.neuron(h, self.state)
            return out
        outputs = []
        for ht in h:
            z, self.state = self.neuron(ht, self.state)
            outputs.append(z)
        return torch.stack(outputs)

    def detach(self):
        for tensor in self.state:  # in place, on each field of the NamedTuple
            tensor.detach_()


@pytest.mark.parametrize("kind", ["LIF", "LIFCell", "LSNN"])
def test_norse_tbptt_matches_native(kind):
    nb, nt = _norse()
    torch.manual_seed(0)
    make_params = nt.LSNNParameters if kind == "LSNN" else nt.LIFParameters

    def params():  # a learnable time constant, one per network
        return make_params(tau_mem_inv=nn.Parameter(torch.tensor(150.0)), v_th=torch.tensor(0.25))

    time_first = not kind.endswith("Cell")
    native = _NorseNet(getattr(nt, kind)(params()), time_first)
    ours = _NorseNet(getattr(nb, "Block" + kind)(params()), time_first)
    ours.linear.load_state_dict(native.linear.state_dict())
    x, weights = _data()
    x = x * 300  # Norse's dt * tau: inputs of a few hundred make spikes
    results = [
        _run_chunks(net, net.detach, [*net.linear.parameters(), net.neuron.p.tau_mem_inv], x, weights)
        for net in (native, ours)
    ]
    _assert_same(*results)


@pytest.mark.parametrize("kind", ["LIF", "LIFCell", "LSNN", "LIFBox"])
def test_norse_tbptt_carries_the_refractory_countdown(kind):
    nb, nt = _norse()
    torch.manual_seed(0)
    make_params = {"LSNN": nt.LSNNParameters, "LIFBox": nt.LIFBoxParameters}.get(kind, nt.LIFParameters)
    neuron = getattr(nb, "Block" + kind)(make_params(v_th=torch.tensor(0.25)), refractory_steps=3)
    net = _NorseNet(neuron, not kind.endswith("Cell"))
    whole = copy.deepcopy(net)
    x, weights = _data(1)
    x = x * 300
    spikes, _ = _run_chunks(net, net.detach, list(net.parameters()), x, weights)
    assert isinstance(net.state, (nb.BlockLIFState, nb.BlockLSNNState, nb.BlockLIFBoxState))
    with torch.no_grad():
        expected = whole(x)
    assert bool(expected.any())
    assert torch.equal(spikes, expected)
