"""The snnTorch adapter against snnTorch itself (``snn.Leaky``) and against the engine's sequential reference.

* R = 0: ``BlockLeaky`` (single steps and sequence mode, every backend) gives the same spikes and membranes
  as ``snn.Leaky`` (``torch.equal``) and the same input/parameter gradients, compared like
  ``tests/test_native_equivalence.py``: ``rtol=1e-5`` with an absolute term ``1e-7 + 2e-6*G`` (G = the
  largest native gradient magnitude), because autograd sums a gradient's contributions in a graph-dependent
  order and BPTT gradients through non-detached resets grow large.
* R > 0: single steps, sequence mode and chunked sequences equal the engine's sequential reference.
* BlockALIF equals the reference run of the ``paper`` profile it documents.
* Tutorial-style training, checkpoints, convert/unconvert, ``snntorch.utils.reset``, errors.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import os
import sys

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

snn = pytest.importorskip("snntorch", reason="snnTorch is not installed; its adapter is not tested")

from snntorch import surrogate as snn_surrogate  # noqa: E402
from snntorch import utils as snn_utils  # noqa: E402

from snn_blockbackend import block_neuron, make_profile  # noqa: E402
from snn_blockbackend import surrogate as sg  # noqa: E402
from snn_blockbackend.adapters import snntorch as adapter  # noqa: E402
from snn_blockbackend.adapters.snntorch import BlockALIF, BlockLeaky, convert, unconvert  # noqa: E402

DTYPES = (torch.float32, torch.float64)
BACKENDS = ("auto", "torch", "reference")
# a deeper random search: SNNTORCH_ADAPTER_EXAMPLES=300 pytest tests/adapters/test_snntorch_adapter.py
EXAMPLES = int(os.environ.get("SNNTORCH_ADAPTER_EXAMPLES", "25"))
HYPOTHESIS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)


# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------
def _generator(seed):
    return torch.Generator().manual_seed(seed)


def _input(shape, dtype, seed, mean, std, kick=0.0):
    x = torch.randn(shape, generator=_generator(seed), dtype=torch.float64) * std + mean
    x.view(shape[0], -1)[0, 0] += kick  # so that short sequences spike too
    return x.to(dtype)


def _loss_weights(shape, dtype, seed):
    g = _generator(10_000 + seed)
    return torch.randn(shape, generator=g, dtype=torch.float64).to(dtype), torch.randn(
        shape, generator=g, dtype=torch.float64
    ).to(dtype)


def _loss(spikes, membrane, weights):
    return (spikes.to(weights[0].dtype) * weights[0]).sum() + (membrane * weights[1]).sum()


def _grads(loss, leaves):
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, grads)]


def _assert_grads_close(ours, native, what):
    scale = max(g.abs().max().item() for g in native)
    for index, (o, n) in enumerate(zip(ours, native)):
        torch.testing.assert_close(
            o, n.to(o.dtype), rtol=1e-5, atol=1e-7 + 2e-6 * scale, msg=lambda m, i=index: f"{what}, leaf {i}: {m}"
        )


def _step_loop(neuron, x, mem=None, thread_mem=True):
    """Leaky's documented per-step loop: ``spk, mem = lif(x[t], mem)``."""
    spikes, membranes = [], []
    for xt in x.unbind(0):
        if thread_mem:
            spk, mem = neuron(xt, mem)
        else:
            out = neuron(xt)
            spk, mem = out if isinstance(out, tuple) else (out, neuron.mem)
        spikes.append(spk)
        membranes.append(mem)
    return torch.stack(spikes), torch.stack(membranes)


def _leaves(neuron, x):
    return [x] + [p for p in neuron.parameters()]


def _leaky_pair(dtype, **config):
    """A native Leaky and a BlockLeaky with the same configuration and (copied) parameter values."""
    fresh = lambda: {k: v.clone() if isinstance(v, torch.Tensor) else v for k, v in config.items()}  # noqa: E731
    native = snn.Leaky(**fresh()).to(dtype)
    ours = BlockLeaky(**fresh()).to(dtype)
    ours.load_state_dict(native.state_dict())
    return native, ours


# spike_grad choices: snnTorch's built-ins, a custom surrogate, the engine's own, and no surrogate at all
def _triangular_custom(input_, grad_input, spikes):
    return grad_input * (1.0 - input_.abs()).clamp(min=0.0)


SPIKE_GRADS = {
    "default": lambda: {},
    "atan3": lambda: {"spike_grad": snn_surrogate.atan(alpha=3.0)},
    "fast_sigmoid": lambda: {"spike_grad": snn_surrogate.fast_sigmoid(slope=10)},
    "sigmoid": lambda: {"spike_grad": snn_surrogate.sigmoid(slope=5)},  # slope 25 overflows exp() natively
    "triangular": lambda: {"spike_grad": snn_surrogate.triangular()},
    "custom": lambda: {"spike_grad": snn_surrogate.custom_surrogate(_triangular_custom)},
    "engine_boxcar": lambda: {"spike_grad": sg.boxcar(1.0)},
    "disabled": lambda: {"surrogate_disable": True},
}


def test_engine_surrogate_mapping():
    """snnTorch's atan/fast_sigmoid become named engine surrogates (fast kernels); others pass through."""
    assert adapter.engine_surrogate(None).name == "atan(2.0)"
    assert adapter.engine_surrogate(snn_surrogate.atan(alpha=3.0)).name == "atan(3.0)"
    fast = adapter.engine_surrogate(snn_surrogate.fast_sigmoid(slope=7))
    assert isinstance(fast, sg.Surrogate) and fast.args == (7.0,)
    assert adapter.engine_surrogate(None, surrogate_disable=True).name == "heaviside"
    custom = snn_surrogate.sigmoid(slope=5)
    assert adapter.engine_surrogate(custom) is custom
    with pytest.raises(TypeError, match="callable"):
        adapter.engine_surrogate(3.0)


# ---------------------------------------------------------------------------------------------
# R = 0: the native Leaky
# ---------------------------------------------------------------------------------------------
def _check_against_native(config, x, seed, backend, check_grads=True):
    dtype = x.dtype
    native, ours = _leaky_pair(dtype, **config)
    weights = _loss_weights(x.shape, dtype, seed)

    x_native = x.clone().requires_grad_()
    native_spikes, native_membrane = _step_loop(native, x_native, native.reset_mem())
    assert bool((native_spikes != 0).any()), "the native neuron never spiked: the input scale is wrong"
    native_leaves = _leaves(native, x_native)
    native_grads = _grads(_loss(native_spikes, native_membrane, weights), native_leaves) if check_grads else None

    ours.backend = backend
    runs = {
        "single steps": lambda xin: _step_loop(ours, xin, ours.reset_mem()),
        "sequence": lambda xin: ours.forward_sequence(xin, ours.reset_mem()),
    }
    for mode, run in runs.items():
        x_ours = x.clone().requires_grad_()
        spikes, membrane = run(x_ours)
        assert spikes.dtype == native_spikes.dtype and membrane.dtype == native_membrane.dtype, mode
        assert torch.equal(spikes, native_spikes), f"spikes differ ({mode}, {backend})"
        if not torch.equal(membrane, native_membrane):
            diff = (membrane - native_membrane).abs().max().item()
            raise AssertionError(f"membrane differs ({mode}, {backend}): max |diff| = {diff:.3g}")
        if check_grads:
            our_grads = _grads(_loss(spikes, membrane, weights), _leaves(ours, x_ours))
            _assert_grads_close(our_grads, native_grads, f"gradient ({mode}, {backend})")


@HYPOTHESIS
@given(
    t=st.integers(1, 40),
    neurons=st.lists(st.integers(1, 5), min_size=1, max_size=3),
    beta=st.floats(-0.2, 1.2),  # snnTorch clamps beta to [0, 1] on every call
    per_neuron=st.booleans(),
    threshold=st.floats(0.3, 2.0),
    graded=st.sampled_from([1.0, 0.5, 2.0]),
    reset_mechanism=st.sampled_from(["subtract", "zero", "none"]),
    reset_delay=st.booleans(),
    learn=st.sampled_from(["none", "beta", "threshold", "all"]),
    spike_grad=st.sampled_from(sorted(SPIKE_GRADS)),
    backend=st.sampled_from(BACKENDS),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_block_leaky_matches_native_leaky(
    t, neurons, beta, per_neuron, threshold, graded, reset_mechanism, reset_delay, learn, spike_grad, backend,
    dtype, seed,
):  # fmt: skip
    if per_neuron:
        beta = torch.full(neurons[-1:], beta) + torch.linspace(0.0, 0.1, neurons[-1])
        threshold = torch.full(neurons[-1:], threshold) + torch.linspace(0.0, 0.3, neurons[-1])
    config = dict(
        beta=beta,
        threshold=threshold,
        graded_spikes_factor=graded,
        reset_mechanism=reset_mechanism,
        reset_delay=reset_delay,
        learn_beta=learn in ("beta", "all"),
        learn_threshold=learn in ("threshold", "all"),
        learn_graded_spikes_factor=learn == "all",
        **SPIKE_GRADS[spike_grad](),
    )
    level = float(torch.as_tensor(threshold).mean())
    x = _input((t, *neurons), dtype, seed, 0.6 * level, level, kick=3 * level)
    _check_against_native(config, x, seed, backend)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("reset_delay", (True, False), ids=("delay", "immediate"))
@pytest.mark.parametrize("reset_mechanism", ("subtract", "zero", "none"))
def test_block_leaky_matches_native_fixed_cases(reset_mechanism, reset_delay, dtype):
    """Larger [T, B, N] runs in the 5-30 % spike regime, learnable per-neuron parameters, every backend."""
    g = _generator(3)
    n = 19
    config = dict(
        beta=torch.rand(n, generator=g) * 0.5 + 0.45,
        threshold=torch.rand(n, generator=g) * 0.6 + 0.8,
        graded_spikes_factor=0.7,
        reset_mechanism=reset_mechanism,
        reset_delay=reset_delay,
        learn_beta=True,
        learn_threshold=True,
    )
    x = _input((60, 4, n), dtype, 11, 0.0 if reset_mechanism == "none" else 0.25, 0.6)
    for backend in BACKENDS:
        _check_against_native(config, x, 11, backend)


def test_init_hidden_output_and_sequential_match_native():
    """init_hidden=True inside nn.Sequential (returns spk, or (spk, mem) with output=True), per step and
    in sequence mode, against the native Sequential."""
    torch.manual_seed(0)
    x = torch.randn(25, 3, 6) * 0.8 + 0.4

    def build(neuron_cls, **extra):
        torch.manual_seed(1)
        return torch.nn.Sequential(
            torch.nn.Linear(6, 8),
            neuron_cls(beta=0.85, init_hidden=True, **extra),
            torch.nn.Linear(8, 4),
            neuron_cls(beta=0.9, init_hidden=True, output=True, reset_mechanism="zero", **extra),
        )

    native = build(snn.Leaky)
    snn_utils.reset(native)
    steps = [native(xt) for xt in x.unbind(0)]
    native_spikes = torch.stack([s for s, _ in steps])
    native_mem = torch.stack([m for _, m in steps])
    hidden = native[1](native[0](x[0]))  # init_hidden without output returns the spikes alone
    assert isinstance(hidden, torch.Tensor)

    stepped = build(BlockLeaky)
    snn_utils.reset(stepped)
    ours = [stepped(xt) for xt in x.unbind(0)]
    assert torch.equal(torch.stack([s for s, _ in ours]), native_spikes)
    assert torch.equal(torch.stack([m for _, m in ours]), native_mem)

    sequence = build(BlockLeaky, sequence=True)
    snn_utils.reset(sequence)
    spikes, mem = sequence(x)
    assert torch.equal(spikes, native_spikes) and torch.equal(mem, native_mem)
    with pytest.raises(TypeError, match="init_hidden"):
        sequence[1].forward_sequence(x, torch.zeros(3, 8))


def test_mem_kept_in_module_without_init_hidden_continues_like_native():
    """Leaky with init_hidden=False and no ``mem`` argument continues from self.mem; so do both modes."""
    x = _input((12, 2, 5), torch.float32, 4, 0.4, 0.8)
    native, ours = _leaky_pair(torch.float32, beta=0.8)
    native_spikes, native_mem = _step_loop(native, x, thread_mem=False)
    spikes, mem = ours.forward_sequence(x[:5])
    spikes2, mem2 = ours.forward_sequence(x[5:])  # continues from ours.mem
    assert torch.equal(torch.cat([spikes, spikes2]), native_spikes)
    assert torch.equal(torch.cat([mem, mem2]), native_mem)


def test_inhibition_single_step_is_native():
    x = _input((10, 3, 7), torch.float32, 5, 0.5, 0.8)
    with pytest.warns(UserWarning, match="Inhibition"):
        native, ours = _leaky_pair(torch.float32, beta=0.8, inhibition=True)
    assert all(torch.equal(a, b) for a, b in zip(_step_loop(native, x, native.reset_mem()), _step_loop(ours, x)))


# ---------------------------------------------------------------------------------------------
# R > 0: the engine's sequential reference
# ---------------------------------------------------------------------------------------------
def _reference_leaky(neuron, x, refractory_steps):
    profile = make_profile(
        "snntorch_leaky",
        surrogate=adapter.engine_surrogate(neuron.spike_grad, neuron.surrogate_disable),
        reset_mechanism=neuron.reset_mechanism,
        reset_delay=neuron.reset_delay,
    )
    params = {
        "beta": neuron.beta,
        "threshold": neuron.threshold,
        "graded_spikes_factor": neuron.graded_spikes_factor,
    }
    return block_neuron(x, profile, params, refractory_steps, backend="reference")


@HYPOTHESIS
@given(
    t=st.integers(1, 40),
    neurons=st.lists(st.integers(1, 4), min_size=1, max_size=2),
    refractory_steps=st.integers(1, 6),
    beta=st.floats(0.3, 1.0),
    threshold=st.floats(0.5, 1.5),
    reset_mechanism=st.sampled_from(["subtract", "zero", "none"]),
    reset_delay=st.booleans(),
    spike_grad=st.sampled_from(["default", "fast_sigmoid", "custom"]),
    backend=st.sampled_from(BACKENDS),
    dtype=st.sampled_from(DTYPES),
    split=st.integers(1, 39),
    seed=st.integers(0, 2**16),
)
def test_block_leaky_refractory_matches_reference(
    t, neurons, refractory_steps, beta, threshold, reset_mechanism, reset_delay, spike_grad, backend, dtype, split,
    seed,
):  # fmt: skip
    config = dict(
        beta=beta, threshold=threshold, reset_mechanism=reset_mechanism, reset_delay=reset_delay,
        learn_beta=True, learn_threshold=True, **SPIKE_GRADS[spike_grad](),
    )  # fmt: skip
    ours = BlockLeaky(**config, refractory_steps=refractory_steps, backend=backend).to(dtype)
    x = _input((t, *neurons), dtype, seed, 0.6 * threshold, threshold, kick=3 * threshold)
    weights = _loss_weights(x.shape, dtype, seed)

    x_ref = x.clone().requires_grad_()
    ref = _reference_leaky(ours, x_ref, refractory_steps)
    assert bool((ref.spikes != 0).any())
    ref_grads = _grads(_loss(ref.spikes, ref.membrane, weights), _leaves(ours, x_ref))

    split = min(split, t)

    def chunks(xin):  # two sequence calls: the refractory countdown carries over with the membrane
        first = ours.forward_sequence(xin[:split], ours.reset_mem())
        if split == t:
            return first
        # continue from self.mem, or from the last returned membrane passed back explicitly
        second = ours.forward_sequence(xin[split:], first[1][-1] if split % 2 else None)
        return torch.cat([first[0], second[0]]), torch.cat([first[1], second[1]])

    runs = {
        "single steps": lambda xin: _step_loop(ours, xin, ours.reset_mem()),
        "sequence": lambda xin: ours.forward_sequence(xin, ours.reset_mem()),
        "chunks": chunks,
    }
    for mode, run in runs.items():
        x_ours = x.clone().requires_grad_()
        spikes, membrane = run(x_ours)
        assert torch.equal(spikes, ref.spikes.to(spikes.dtype)), f"spikes differ ({mode}, {backend})"
        assert torch.equal(membrane, ref.membrane), f"membrane differs ({mode}, {backend})"
        grads = _grads(_loss(spikes, membrane, weights), _leaves(ours, x_ours))
        _assert_grads_close(grads, ref_grads, f"gradient ({mode}, {backend})")


def test_refractory_countdown_is_the_engine_state():
    """The single-step countdown buffer is the engine's state['refractory'] after the same steps."""
    x = _input((9, 2, 6), torch.float32, 8, 0.9, 0.6)
    ours = BlockLeaky(beta=0.9, refractory_steps=3)
    mem = ours.reset_mem()
    for xt in x.unbind(0):
        _, mem = ours(xt, mem)
    ref = _reference_leaky(ours, x, 3)
    assert bool((ref.state["refractory"] > 0).any())
    assert torch.equal(ours.refractory, ref.state["refractory"])
    assert torch.equal(ours.mem, ref.state["v"])


# ---------------------------------------------------------------------------------------------
# BlockALIF
# ---------------------------------------------------------------------------------------------
def _reference_alif(neuron, x, refractory_steps):
    profile = make_profile("paper", surrogate=adapter.engine_surrogate(neuron.spike_grad, neuron.surrogate_disable))
    params = {
        "beta": neuron.beta.clamp(0, 1),
        "threshold": neuron.threshold,
        "adaptation_decay": neuron.adaptation_decay,
        "adaptation_strength": neuron.adaptation_strength,
    }
    return block_neuron(x, profile, params, refractory_steps, backend="reference")


@settings(max_examples=max(EXAMPLES // 2, 5), deadline=None, derandomize=True)
@given(
    t=st.integers(1, 30),
    n=st.integers(1, 6),
    refractory_steps=st.integers(0, 4),
    beta=st.floats(0.3, 1.0),
    threshold=st.floats(0.5, 1.5),
    adaptation_decay=st.floats(0.0, 0.99),
    adaptation_strength=st.floats(0.0, 2.0),
    spike_grad=st.sampled_from(["default", "fast_sigmoid", "custom"]),
    backend=st.sampled_from(BACKENDS),
    dtype=st.sampled_from(DTYPES),
    seed=st.integers(0, 2**16),
)
def test_block_alif_matches_reference(
    t, n, refractory_steps, beta, threshold, adaptation_decay, adaptation_strength, spike_grad, backend, dtype, seed
):
    ours = BlockALIF(
        beta, threshold, adaptation_decay, adaptation_strength, learn_beta=True, learn_threshold=True,
        learn_adaptation=True, refractory_steps=refractory_steps, backend=backend, **SPIKE_GRADS[spike_grad](),
    ).to(dtype)  # fmt: skip
    x = _input((t, 3, n), dtype, seed, 0.6 * threshold, threshold, kick=3 * threshold)
    weights = _loss_weights(x.shape, dtype, seed)
    x_ref = x.clone().requires_grad_()
    ref = _reference_alif(ours, x_ref, refractory_steps)
    assert bool((ref.spikes != 0).any())
    ref_grads = _grads(_loss(ref.spikes, ref.membrane, weights), _leaves(ours, x_ref))
    for mode in ("single steps", "sequence"):
        x_ours = x.clone().requires_grad_()
        ours.reset_mem()
        spikes, membrane = _step_loop(ours, x_ours) if mode == "single steps" else ours.forward_sequence(x_ours)
        assert torch.equal(spikes, ref.spikes), f"spikes differ ({mode})"
        assert torch.equal(membrane, ref.membrane), f"membrane differs ({mode})"
        assert torch.equal(ours.adaptation, ref.state["a"]) and torch.equal(ours.refractory, ref.state["refractory"])
        grads = _grads(_loss(spikes, membrane, weights), _leaves(ours, x_ours))
        _assert_grads_close(grads, ref_grads, f"gradient ({mode}, {backend})")


def test_block_alif_adapts_and_follows_leaky_conventions():
    x = torch.full((40, 1, 1), 0.6)
    plain = BlockALIF(0.9, adaptation_strength=0.0)
    adaptive = BlockALIF(0.9, adaptation_strength=1.0)
    assert adaptive.forward_sequence(x)[0].sum() < plain.forward_sequence(x)[0].sum()  # adaptation slows firing
    hidden = BlockALIF(0.9, init_hidden=True)
    assert isinstance(hidden(x[0]), torch.Tensor)  # init_hidden: spikes only
    assert len(BlockALIF(0.9, init_hidden=True, output=True)(x[0])) == 2
    assert set(BlockALIF(0.9).state_dict()) == {
        "beta", "threshold", "graded_spikes_factor", "reset_mechanism_val", "adaptation_decay", "adaptation_strength",
    }  # fmt: skip


# ---------------------------------------------------------------------------------------------
# state handling: snntorch.utils.reset, detach, .to()
# ---------------------------------------------------------------------------------------------
def _stateful_net():
    torch.manual_seed(2)
    return torch.nn.Sequential(
        torch.nn.Linear(5, 7),
        BlockLeaky(beta=0.9, init_hidden=True, refractory_steps=3),
        torch.nn.Linear(7, 4),
        BlockALIF(beta=0.9, init_hidden=True, output=True, refractory_steps=2, adaptation_strength=0.5),
    )


def _run_net(net, x):
    outputs = [net(xt) for xt in x.unbind(0)]
    return torch.stack([s for s, _ in outputs]), torch.stack([m for _, m in outputs])


@pytest.mark.parametrize("how", ("utils.reset", "reset_hidden", "adapter.reset", "reset_mem"))
def test_reset_clears_refractory_and_adaptation(how):
    x = torch.randn(20, 2, 5, generator=_generator(6)) + 1.0
    fresh = _run_net(_stateful_net(), x)
    net = _stateful_net()
    _run_net(net, x)
    assert bool((net[1].refractory > 0).any()) and bool((net[3].adaptation > 0).any())
    if how == "utils.reset":
        snn_utils.reset(net)
    elif how == "reset_hidden":
        snn.Leaky.reset_hidden()
    elif how == "adapter.reset":
        adapter.reset(torch.nn.Sequential(torch.nn.Sequential(net)))  # nested too
    else:
        net[1].reset_mem()
        net[3].reset_mem()
    again = _run_net(net, x)
    assert torch.equal(again[0], fresh[0]) and torch.equal(again[1], fresh[1])


def test_state_continues_through_detach_and_to():
    """TBPTT-style detach (``detach_hidden``) and ``.to()`` keep the extra state; a backward works after."""
    x = torch.randn(20, 2, 5, generator=_generator(7)) + 1.0
    whole = _run_net(_stateful_net(), x)
    net = _stateful_net()
    first = _run_net(net, x[:10])
    (first[0].sum() + first[1].sum()).backward()  # the spikes' graph runs through the adaptation
    assert net[3].adaptation.requires_grad
    snn.Leaky.detach_hidden()  # what snnTorch's TBPTT helpers call
    net.to(torch.float32)
    second = _run_net(net, x[10:])
    (second[0].sum() + second[1].sum()).backward()  # fails if the adaptation kept the first chunk's graph
    assert torch.equal(torch.cat([first[0], second[0]]), whole[0])
    assert torch.equal(torch.cat([first[1], second[1]]), whole[1])


def test_mem_of_another_neuron_restarts_the_extra_state():
    x = torch.randn(6, 3, generator=_generator(9)) * 0.3 + 1.5
    ours = BlockLeaky(beta=0.9, refractory_steps=4)
    _, mem = ours(x[0], ours.reset_mem())
    assert bool((ours.refractory > 0).all())
    ours(x[1], mem.detach())  # a detached alias of our own membrane continues
    assert bool((ours.refractory > 0).all())
    ours(x[2], mem.clone())  # any other tensor is a new membrane: no refractory period is owed
    assert not bool((ours.refractory == 3).any())


# ---------------------------------------------------------------------------------------------
# training (snnTorch tutorial style) and checkpoints
# ---------------------------------------------------------------------------------------------
class TutorialNet(torch.nn.Module):
    """snnTorch tutorial 5: two fully connected layers, Leaky neurons, membranes threaded per step."""

    def __init__(self, neuron_cls, sequence_mode=False, num_inputs=12, num_hidden=16, num_outputs=3):
        super().__init__()
        self.sequence_mode = sequence_mode
        self.fc1 = torch.nn.Linear(num_inputs, num_hidden)
        self.lif1 = neuron_cls(beta=0.95, learn_beta=True)
        self.fc2 = torch.nn.Linear(num_hidden, num_outputs)
        self.lif2 = neuron_cls(beta=0.95, learn_threshold=True)

    def forward(self, x):  # x: [T, B, num_inputs]
        mem1, mem2 = self.lif1.reset_mem(), self.lif2.reset_mem()
        if self.sequence_mode:
            spk1, _ = self.lif1.forward_sequence(self.fc1(x), mem1)
            return self.lif2.forward_sequence(self.fc2(spk1), mem2)
        spk2_rec, mem2_rec = [], []
        for xt in x.unbind(0):
            spk1, mem1 = self.lif1(self.fc1(xt), mem1)
            spk2, mem2 = self.lif2(self.fc2(spk1), mem2)
            spk2_rec.append(spk2)
            mem2_rec.append(mem2)
        return torch.stack(spk2_rec), torch.stack(mem2_rec)


def _train(net, data, targets, steps=6):
    optimizer = torch.optim.Adam(net.parameters(), lr=5e-3, betas=(0.9, 0.999))
    loss_fn = torch.nn.CrossEntropyLoss()
    losses = []
    for _ in range(steps):
        _, mem_rec = net(data)
        loss = sum(loss_fn(mem_rec[t], targets) for t in range(mem_rec.shape[0]))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        losses.append(loss.item())
    return losses


def test_tutorial_training_gives_the_same_losses():
    g = _generator(12)
    data = (torch.rand(25, 8, 12, generator=g) < 0.3).float()  # rate-coded spikes, time-first
    targets = torch.randint(0, 3, (8,), generator=g)
    torch.manual_seed(0)
    native = TutorialNet(snn.Leaky)
    native_losses = _train(native, data, targets)
    assert native_losses[-1] < native_losses[0]
    for neuron_cls, sequence_mode in ((BlockLeaky, False), (BlockLeaky, True)):
        torch.manual_seed(0)
        ours = TutorialNet(neuron_cls, sequence_mode)
        torch.testing.assert_close(_train(ours, data, targets), native_losses, rtol=1e-5, atol=1e-6)
    # converting a model (with its optimizer state untouched) mid-way changes nothing either
    torch.manual_seed(0)
    converted = convert(TutorialNet(snn.Leaky))
    torch.testing.assert_close(_train(converted, data, targets), native_losses, rtol=1e-5, atol=1e-6)


def test_checkpoint_round_trip():
    g = _generator(13)
    native = snn.Leaky(beta=0.8, threshold=torch.rand(6, generator=g) + 0.5, learn_beta=True, learn_threshold=True,
                       reset_mechanism="zero")  # fmt: skip
    with torch.no_grad():  # a "trained" checkpoint: parameters away from their initial values
        native.beta.fill_(0.73)
        native.threshold.mul_(1.1)
    state = native.state_dict()
    ours = BlockLeaky(beta=0.5, threshold=torch.ones(6), learn_beta=True, learn_threshold=True, reset_mechanism="zero")
    assert set(ours.state_dict()) == set(state)
    ours.load_state_dict(state)  # strict
    x = torch.randn(15, 2, 6, generator=g) + 0.4
    expected = _step_loop(native, x, native.reset_mem())
    assert all(torch.equal(a, b) for a, b in zip(ours.forward_sequence(x, ours.reset_mem()), expected))
    back = snn.Leaky(beta=0.5, threshold=torch.ones(6), learn_beta=True, learn_threshold=True, reset_mechanism="zero")
    back.load_state_dict(ours.state_dict())
    assert all(torch.equal(a, b) for a, b in zip(_step_loop(back, x, back.reset_mem()), expected))


# ---------------------------------------------------------------------------------------------
# convert / unconvert
# ---------------------------------------------------------------------------------------------
class Nested(torch.nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(3)
        shared = snn.Leaky(beta=0.7, learn_beta=True, init_hidden=True)
        self.encoder = torch.nn.Sequential(torch.nn.Linear(4, 6), shared)
        self.blocks = torch.nn.ModuleList([torch.nn.Linear(6, 6), shared])
        self.head = torch.nn.ModuleDict({"fc": torch.nn.Linear(6, 3)})
        self.out = snn.Leaky(beta=0.9, reset_mechanism="zero", reset_delay=False, init_hidden=True, output=True,
                             spike_grad=snn_surrogate.fast_sigmoid(slope=5), graded_spikes_factor=0.5)  # fmt: skip

    def forward(self, x):
        h = self.encoder(x)
        h = self.blocks[1](self.blocks[0](h))
        return self.out(self.head["fc"](h))


def test_convert_and_unconvert_nested_models():
    x = torch.randn(12, 2, 4, generator=_generator(14)) + 0.5
    model = Nested()
    parameters = {id(p) for p in model.parameters()}
    snn.Leaky.reset_hidden()
    expected = _run_net(model, x)

    converted = convert(model)
    assert converted is model
    leaky = [m for m in model.modules() if isinstance(m, snn.Leaky)]
    assert len(leaky) == 2 and all(type(m) is BlockLeaky for m in leaky)
    assert model.encoder[1] is model.blocks[1]  # a shared neuron stays shared
    assert {id(p) for p in model.parameters()} == parameters  # the same Parameter objects (optimizers stay valid)
    assert model.out.spike_grad is not None and model.out.reset_delay is False
    snn.Leaky.reset_hidden()
    got = _run_net(model, x)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])

    unconvert(model)
    assert all(type(m) is snn.Leaky for m in model.modules() if isinstance(m, snn.Leaky))
    snn.Leaky.reset_hidden()
    got = _run_net(model, x)
    assert torch.equal(got[0], expected[0]) and torch.equal(got[1], expected[1])

    lone = snn.Leaky(beta=0.5)
    assert type(convert(lone, refractory_steps=2)) is BlockLeaky and convert(lone, 2).refractory_steps == 2
    with pytest.raises(ValueError, match="refractory"):
        unconvert(convert(Nested(), refractory_steps=1))


# ---------------------------------------------------------------------------------------------
# errors
# ---------------------------------------------------------------------------------------------
def test_bad_input_errors():
    lif = BlockLeaky(beta=0.9)
    with pytest.raises(ValueError, match="time-first"):
        lif.forward_sequence(torch.ones(5))
    with pytest.raises(TypeError, match="torch.Tensor"):
        lif.forward_sequence([[1.0]])
    with pytest.raises(ValueError, match="NaN"):
        lif.forward_sequence(torch.tensor([[float("nan")]]))
    with pytest.raises(ValueError, match=">= 0"):
        BlockLeaky(beta=0.9, refractory_steps=-1)
    with pytest.raises(TypeError, match="non-negative int"):
        BlockLeaky(beta=0.9, refractory_steps=1.5)
    with pytest.raises(ValueError, match="unknown backend"):
        BlockLeaky(beta=0.9, backend="nope").forward_sequence(torch.ones(3, 2))
    with pytest.raises(ValueError, match="at least one dimension"):
        BlockLeaky(beta=0.9, refractory_steps=2)(torch.tensor(1.0))
    with pytest.raises(NotImplementedError, match="inhibition"):  # refused before snnTorch's warning
        BlockLeaky(beta=0.9, inhibition=True, refractory_steps=1)
    with pytest.warns(UserWarning), pytest.raises(NotImplementedError, match="inhibition"):
        BlockLeaky(beta=0.9, inhibition=True).forward_sequence(torch.ones(3, 2, 2))
    with pytest.raises(NotImplementedError, match="state_quant"):
        BlockLeaky(beta=0.9, state_quant=lambda m: m).forward_sequence(torch.ones(3, 2))
    with pytest.raises(TypeError, match="init_hidden"):
        BlockLeaky(beta=0.9, init_hidden=True, refractory_steps=1)(torch.ones(2), torch.zeros(2))
    # a checkpoint whose reset_mechanism_val disagrees with the construction-time charge (snnTorch mixes both)
    mixed = BlockLeaky(beta=0.9, reset_delay=False)
    mixed.load_state_dict(snn.Leaky(beta=0.9, reset_mechanism="zero").state_dict())
    with pytest.raises(ValueError, match="reset_mechanism='zero'"):
        mixed.forward_sequence(torch.ones(3, 2))
    with pytest.raises(ValueError, match="threshold must be > 0"):
        BlockALIF(0.9, threshold=-1.0).forward_sequence(torch.ones(3, 2))
    with pytest.raises(ValueError, match="beta must lie in"):
        BlockALIF(-0.5).forward_sequence(torch.ones(3, 2))
    graded = BlockALIF(0.9)
    graded.graded_spikes_factor.fill_(0.5)
    with pytest.raises(ValueError, match="graded_spikes_factor"):
        graded(torch.ones(2))


ADAPTER_MODULE = "snn_blockbackend.adapters.snntorch"


@pytest.mark.parametrize(
    "installed, message",
    (
        (None, r"pip install 'snn-blockbackend\[snntorch\]'"),
        ("0.9.3", r">=0\.9\.4,<1\.1"),
        ("1.1.0", r">=0\.9\.4,<1\.1"),
    ),
    ids=("missing", "too-old", "too-new"),
)
def test_import_errors_name_the_extra_or_the_supported_range(monkeypatch, installed, message):
    real_version = importlib.metadata.version

    def fake_version(distribution):
        if distribution != "snntorch":
            return real_version(distribution)
        if installed is None:
            raise importlib.metadata.PackageNotFoundError(distribution)
        return installed

    monkeypatch.setattr(importlib.metadata, "version", fake_version)
    if installed is None:
        monkeypatch.setitem(sys.modules, "snntorch", None)  # as if snnTorch were not installed at all
    monkeypatch.delitem(sys.modules, ADAPTER_MODULE)  # monkeypatch puts the real module back afterwards
    with pytest.raises(ImportError, match=message):
        importlib.import_module(ADAPTER_MODULE)
