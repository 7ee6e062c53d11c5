"""BlockLIF / BlockALIF modules: parameters, state_dict, dtype/device moves, state continuation."""

from __future__ import annotations

import torch

from snn_blockbackend import BlockALIF, BlockLIF, block_neuron


def test_module_equals_functional_and_reference():
    x = torch.randn(40, 3, 5) * 0.6 + 0.5
    layer = BlockALIF(beta=torch.linspace(0.7, 0.95, 5), adaptation_strength=0.5, refractory_steps=3)
    params = {"beta": layer.beta, "threshold": layer.threshold, "adaptation_decay": layer.adaptation_decay,
              "adaptation_strength": layer.adaptation_strength}  # fmt: skip
    ref = block_neuron(x, "paper", params, 3, backend="reference")
    assert torch.equal(layer(x), ref.spikes)
    assert ref.spikes.any()


def test_learnable_parameters_are_parameters_and_get_gradients():
    layer = BlockLIF(beta=torch.full((4,), 0.9), threshold=1.0, refractory_steps=2, learn_beta=True, learn_threshold=True)
    assert {name for name, _ in layer.named_parameters()} == {"beta", "threshold"}
    frozen = BlockALIF(beta=0.9)
    assert list(frozen.parameters()) == []
    assert set(frozen.state_dict()) == {"beta", "threshold", "adaptation_decay", "adaptation_strength"}
    x = (torch.randn(30, 2, 4) * 0.6 + 0.5).requires_grad_()
    layer(x).sum().backward()
    assert layer.beta.grad is not None and layer.beta.grad.shape == (4,)
    assert layer.threshold.grad is not None and x.grad is not None


def test_state_dict_round_trip_and_dtype_move():
    a = BlockALIF(beta=torch.rand(6) * 0.5 + 0.4, learn_adaptation=True, refractory_steps=4)
    b = BlockALIF(beta=0.5, learn_adaptation=True, refractory_steps=4)
    b.beta = torch.zeros(6)  # buffers of another shape are replaced by load_state_dict below
    b.load_state_dict(a.state_dict())
    x = torch.randn(25, 2, 6) + 0.5
    assert torch.equal(a(x), b(x))
    a64 = a.double()
    assert a64.beta.dtype == torch.float64
    assert torch.equal(a64(x.double()), block_neuron(x.double(), "paper", {
        "beta": a64.beta, "threshold": a64.threshold, "adaptation_decay": a64.adaptation_decay,
        "adaptation_strength": a64.adaptation_strength}, 4, backend="reference").spikes)  # fmt: skip


def test_return_state_continues_the_sequence():
    layer = BlockALIF(beta=0.85, adaptation_strength=0.4, refractory_steps=5)
    x = torch.randn(50, 2, 7) * 0.7 + 0.6
    whole = layer(x)
    first, state = layer(x[:23], return_state=True)
    second = layer(x[23:], state=state)
    assert torch.equal(torch.cat([first, second]), whole)
