"""Every module class of ours pickles, deep-copies and round-trips through torch.save / torch.load."""

from __future__ import annotations

import copy
import importlib
import io
import pickle

import pytest
import torch

T = 6

# (framework needed or None, module path, class name, constructor kwargs)
MODULES = [
    (None, "snn_blockbackend.modules", "BlockLIF", {"beta": 0.9, "refractory_steps": 2}),
    (None, "snn_blockbackend.modules", "BlockALIF", {"beta": 0.9, "refractory_steps": 2}),
    (None, "snn_blockbackend.psu.modules", "PSU", {}),
    (None, "snn_blockbackend.psu.modules", "IPSU", {"T": T}),
    (None, "snn_blockbackend.psu.modules", "RPSU", {"T": T}),
    (None, "snn_blockbackend.psu.modules", "PPSU", {"T": T}),
    ("snntorch", "snn_blockbackend.adapters.snntorch", "BlockLeaky", {"beta": 0.9, "refractory_steps": 2}),
    ("snntorch", "snn_blockbackend.adapters.snntorch", "BlockALIF", {"beta": 0.9, "refractory_steps": 2}),
    ("spikingjelly", "snn_blockbackend.adapters.spikingjelly", "BlockLIFNode", {"refractory_steps": 2}),
    ("spikingjelly", "snn_blockbackend.adapters.spikingjelly", "BlockParametricLIFNode", {"refractory_steps": 2}),
    ("spikingjelly", "snn_blockbackend.adapters.spikingjelly", "BlockALIFNode", {"refractory_steps": 2}),
    ("norse", "snn_blockbackend.adapters.norse", "BlockLIFBoxCell", {}),
    ("norse", "snn_blockbackend.adapters.norse", "BlockLIFBox", {}),
    ("norse", "snn_blockbackend.adapters.norse", "BlockLIFCell", {}),
    ("norse", "snn_blockbackend.adapters.norse", "BlockLIF", {}),
    ("norse", "snn_blockbackend.adapters.norse", "BlockLSNNCell", {}),
    ("norse", "snn_blockbackend.adapters.norse", "BlockLSNN", {}),
    ("norse", "snn_blockbackend.adapters.norse", "BlockLIFRefracCell", {}),
]
for _framework in ("snntorch", "spikingjelly", "norse"):
    MODULES += [(_framework, f"snn_blockbackend.adapters.psu_{_framework}", "PSU", {})]
    MODULES += [
        (_framework, f"snn_blockbackend.adapters.psu_{_framework}", unit, {"T": T}) for unit in ("IPSU", "RPSU", "PPSU")
    ]


def _build(framework, module_path, class_name, kwargs):
    if framework is not None:
        pytest.importorskip(framework, reason=f"{framework} is not installed: its adapter classes cannot be built")
    cls = getattr(importlib.import_module(module_path), class_name)
    return cls(**kwargs)


def _same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key


@pytest.mark.parametrize(
    "framework, module_path, class_name, kwargs",
    MODULES,
    ids=[f"{path.rsplit('.', 1)[-1]}.{name}" for _, path, name, _ in MODULES],
)
def test_module_round_trips(framework, module_path, class_name, kwargs, tmp_path):
    module = _build(framework, module_path, class_name, kwargs)
    for clone in (pickle.loads(pickle.dumps(module)), copy.deepcopy(module)):
        assert type(clone) is type(module)
        _same_tensors(clone.state_dict(), module.state_dict())
    path = tmp_path / "module.pt"
    torch.save(module, path)
    loaded = torch.load(path, weights_only=False)  # a whole module is arbitrary Python: not weights_only
    assert type(loaded) is type(module)
    _same_tensors(loaded.state_dict(), module.state_dict())
    buffer = io.BytesIO()
    torch.save(module.state_dict(), buffer)
    buffer.seek(0)
    state = torch.load(buffer, weights_only=True)
    fresh = _build(framework, module_path, class_name, kwargs)
    fresh.load_state_dict(state)
    _same_tensors(fresh.state_dict(), module.state_dict())


def test_round_tripped_module_computes_the_same():
    from snn_blockbackend.modules import BlockLIF

    module = BlockLIF(beta=0.8, refractory_steps=1, surrogate="multi_gaussian")
    clone = pickle.loads(pickle.dumps(module))
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    assert torch.equal(clone(x), module(x))
    x1 = x.clone().requires_grad_()
    x2 = x.clone().requires_grad_()
    module(x1).sum().backward()
    clone(x2).sum().backward()
    torch.testing.assert_close(x1.grad, x2.grad, rtol=0, atol=0)


@pytest.mark.parametrize("name", ["atan", "fast_sigmoid", "sigmoid", "superspike", "multi_gaussian", "boxcar", "heaviside"])
def test_named_surrogates_pickle(name):
    from snn_blockbackend import surrogate as sg

    made = sg.get(name, None)
    clone = pickle.loads(pickle.dumps(made))
    assert clone == made or (clone.name, clone.kind, clone.args) == (made.name, made.kind, made.args)
    margin = torch.linspace(-1, 1, 11)
    if made.derivative is not None:
        assert torch.equal(clone.derivative(margin), made.derivative(margin))


def test_pickled_snntorch_neuron_keeps_its_surrogate():
    pytest.importorskip("snntorch", reason="snntorch is not installed")
    from snntorch import surrogate as snn_surrogate

    from snn_blockbackend.adapters.snntorch import BlockLeaky

    module = BlockLeaky(beta=0.9, spike_grad=snn_surrogate.fast_sigmoid(slope=10), sequence=True, refractory_steps=1)
    clone = pickle.loads(pickle.dumps(module))
    assert clone.spike_grad.__qualname__ == "fast_sigmoid.<locals>.inner"
    x1 = torch.randn(8, 3, generator=torch.Generator().manual_seed(1)).requires_grad_()
    x2 = x1.detach().clone().requires_grad_()
    s1, _ = module(x1)
    s2, _ = clone(x2)
    assert torch.equal(s1, s2)
    s1.sum().backward()
    s2.sum().backward()
    assert torch.equal(x1.grad, x2.grad)
