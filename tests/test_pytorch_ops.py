"""The engine as PyTorch operators: torch.compile (fullgraph, no graph breaks), torch.export, FlopCounterMode,
the meta device, double backward, and half precision / autocast against the native neurons."""

from __future__ import annotations

import copy

import pytest
import torch
import torch._dynamo
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from snn_blockbackend import block_neuron, kernels, plugins
from snn_blockbackend.modules import BlockALIF, BlockLIF

snn = pytest.importorskip("snntorch")
sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron")
norse = pytest.importorskip("norse.torch")
from norse.torch.module.lif_box import LIFBoxCell  # noqa: E402

from snn_blockbackend.adapters import norse as our_norse  # noqa: E402
from snn_blockbackend.adapters import spikingjelly as our_sj  # noqa: E402
from snn_blockbackend.adapters.snntorch import BlockLeaky  # noqa: E402


# ---------------------------------------------------------------------------------------------
# the layers, ours and native, in sequence mode ([T, batch, features] -> spikes [T, batch, features])
# ---------------------------------------------------------------------------------------------
class FirstOutput(nn.Module):
    """Norse's modules return (spikes, state); a sequential net passes the spikes on."""

    def __init__(self, module):
        super().__init__()
        self.module = module

    def forward(self, x):
        return self.module(x)[0]


class StepLoop(nn.Module):
    """A native single-step neuron run over the time steps (snnTorch Leaky, Norse LIFBoxCell)."""

    def __init__(self, cell, snntorch_style: bool):
        super().__init__()
        self.cell, self.snntorch_style = cell, snntorch_style

    def forward(self, x):
        state = self.cell.init_leaky() if self.snntorch_style else None
        spikes = []
        for xt in x.unbind(0):
            z, state = self.cell(xt, state)
            spikes.append(z)
        return torch.stack(spikes)


class OursSnnTorch(nn.Module):
    """BlockLeaky(sequence=True) from a zero membrane, as StepLoop(Leaky) starts."""

    def __init__(self, **kwargs):
        super().__init__()
        self.neuron = BlockLeaky(beta=0.9, sequence=True, **kwargs)

    def forward(self, x):
        return self.neuron(x, torch.zeros_like(x[0]))[0]


LAYERS = {
    # name: (ours, native or None, input scale)
    "snntorch.BlockLeaky": (lambda: OursSnnTorch(), lambda: StepLoop(snn.Leaky(beta=0.9), True), 1.0),
    "spikingjelly.BlockLIFNode": (
        lambda: our_sj.BlockLIFNode(step_mode="m"), lambda: sj_neuron.LIFNode(step_mode="m"), 2.0),
    "spikingjelly.BlockParametricLIFNode": (
        lambda: our_sj.BlockParametricLIFNode(step_mode="m"), lambda: sj_neuron.ParametricLIFNode(step_mode="m"), 2.0),
    "norse.BlockLIF": (lambda: FirstOutput(our_norse.BlockLIF()), lambda: FirstOutput(norse.LIF()), 200.0),
    "norse.BlockLIFBox": (
        lambda: FirstOutput(our_norse.BlockLIFBox()), lambda: StepLoop(LIFBoxCell(), False), 200.0),
    "norse.BlockLSNN": (lambda: FirstOutput(our_norse.BlockLSNN()), lambda: FirstOutput(norse.LSNN()), 200.0),
    "BlockLIF": (lambda: BlockLIF(beta=0.9, threshold=0.5), None, 1.0),
    "BlockALIF": (lambda: BlockALIF(beta=0.9, threshold=0.5), None, 1.0),
}


def two_layer_net(make, scale=None):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(10, 8), make(), nn.Linear(8, 4), make())
    if scale is not None:  # the second layer sees 0/1 spikes: scale its weights so that it spikes too
        with torch.no_grad():
            net[2].weight.mul_(3 * scale)
            net[2].bias.fill_(scale / 2)
    return net


def _input(name, T=13, dtype=torch.float32):
    gen = torch.Generator().manual_seed(1)
    return (torch.randn(T, 3, 10, generator=gen) * LAYERS[name][2]).to(dtype)


def _reset(net):
    for module in net.modules():  # SpikingJelly nodes keep their membrane between calls
        if hasattr(module, "reset") and isinstance(module, sj_neuron.BaseNode):
            module.reset()


def _run(net, x):
    _reset(net)
    out = net(x)
    loss = (out * torch.linspace(-1, 1, out.numel()).view(out.shape)).sum()
    grads = torch.autograd.grad(loss, [p for p in net.parameters() if p.requires_grad])
    return out, grads


@pytest.fixture(autouse=True)
def _fresh_dynamo():
    torch._dynamo.reset()
    yield
    torch._dynamo.reset()


@pytest.mark.parametrize("name", list(LAYERS))
def test_compile_fullgraph_equals_eager(name):
    """torch.compile(net, fullgraph=True) of Linear -> neuron -> Linear -> neuron: spikes bitwise equal to
    eager, gradients (through our backward operators, traced by AOTAutograd) equal too."""
    net = two_layer_net(LAYERS[name][0], LAYERS[name][2])
    compiled_net = copy.deepcopy(net)
    x = _input(name)
    eager_out, eager_grads = _run(net, x)
    compiled = torch.compile(compiled_net, fullgraph=True, backend="aot_eager")
    out, grads = _run(compiled, x)
    assert eager_out.any(), "the net must spike for the comparison to mean something"
    assert torch.equal(out, eager_out)
    for got, expected in zip(grads, eager_grads):
        torch.testing.assert_close(got, expected)


@pytest.fixture
def untraced_profiles(monkeypatch):
    """No neuron step traced yet, as in a fresh process (the kernels' step caches start empty)."""
    monkeypatch.setattr(kernels, "_BY_PROFILE", {})
    monkeypatch.setattr(kernels, "_STEPS", {})


@pytest.mark.parametrize("name", list(LAYERS))
def test_compile_before_any_eager_call(name, untraced_profiles):
    """A net compiled before it ever ran, in a process that never traced its neuron: one graph (a module traces
    its profile when it is built; Dynamo cannot trace the tracer), and the same spikes and gradients as eager."""
    net = two_layer_net(LAYERS[name][0], LAYERS[name][2])
    eager_net = copy.deepcopy(net)
    x = _input(name)
    out, grads = _run(torch.compile(net, fullgraph=True, backend="aot_eager"), x)
    eager_out, eager_grads = _run(eager_net, x)
    assert eager_out.any() and torch.equal(out, eager_out)
    for got, expected in zip(grads, eager_grads):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("name", list(LAYERS))
def test_compiled_net_follows_changing_shapes(name):
    """A compiled net called with other sequence lengths and batch sizes (a shorter last batch, truncated BPTT
    windows; Dynamo recompiles with dynamic shapes after the second): the same spikes and gradients as eager."""
    net = two_layer_net(LAYERS[name][0], LAYERS[name][2])
    compiled = torch.compile(copy.deepcopy(net), backend="aot_eager")
    gen = torch.Generator().manual_seed(2)
    for T, batch in [(13, 3), (13, 2), (7, 2), (16, 5)]:
        x = torch.randn(T, batch, 10, generator=gen) * LAYERS[name][2]
        out, grads = _run(compiled, x)
        eager_out, eager_grads = _run(net, x)
        assert eager_out.any() and torch.equal(out, eager_out), (T, batch)
        for got, expected in zip(grads, eager_grads):
            torch.testing.assert_close(got, expected)


class ChunkedLeaky(nn.Module):
    """snnTorch-style truncated BPTT: the membrane at the end of one chunk is passed to the next."""

    def __init__(self, refractory_steps):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(10, 8)
        self.lif = BlockLeaky(beta=0.9, sequence=True, refractory_steps=refractory_steps)

    def forward(self, x, chunk=5):
        mem, spikes = torch.zeros_like(self.fc(x[0])), []
        for part in x.split(chunk):
            spk, mem_seq = self.lif(self.fc(part), mem)
            spikes.append(spk)
            mem = mem_seq[-1]
        return torch.cat(spikes)


@pytest.mark.parametrize("refractory_steps", [0, 2])
def test_compile_continued_membrane(refractory_steps):
    """Chunks continued through the membrane equal one run over the whole sequence, eager and compiled after an
    eager call. With R = 0 the stored refractory countdown is known to be zero, so continuing needs no
    data-pointer check (a graph break): one graph. With R > 0 the check stays (README, Known limitations)."""
    net = ChunkedLeaky(refractory_steps)
    x = _input("snntorch.BlockLeaky") * 2
    whole = net.lif(net.fc(x), torch.zeros(3, 8))[0]
    eager = net(x)
    assert whole.any() and torch.equal(eager, whole)
    if refractory_steps == 0:
        explanation = torch._dynamo.explain(net)(x)
        assert explanation.graph_break_count == 0, explanation.break_reasons
        torch._dynamo.reset()
    assert torch.equal(torch.compile(net, backend="aot_eager", fullgraph=refractory_steps == 0)(x), whole)


@pytest.mark.parametrize("name", list(LAYERS))
def test_no_graph_breaks(name):
    net = two_layer_net(LAYERS[name][0], LAYERS[name][2])
    explanation = torch._dynamo.explain(net)(_input(name))
    assert explanation.graph_break_count == 0, [b.reason for b in explanation.break_reasons]
    assert explanation.graph_count == 1


def test_compile_with_inductor():
    """The default backend (Inductor) around our operators: the Linear layers are compiled, the neurons stay
    our operators."""
    net = two_layer_net(LAYERS["BlockLIF"][0])
    x = _input("BlockLIF")
    compiled = torch.compile(copy.deepcopy(net), fullgraph=True)
    try:
        out = compiled(x)
    except Exception as error:  # Inductor on CPU needs a working C++ compiler
        if "InductorError" in type(error).__name__ and "compil" in str(error).lower():
            pytest.skip(f"Inductor cannot compile C++ on this machine: {str(error)[:200]}")
        raise
    assert torch.equal(out, net(x))


@pytest.mark.parametrize("name", list(LAYERS))
def test_export(name):
    """torch.export.export works for ours wherever it works for the native class (the native one is tried
    first); the exported program computes what eager does and calls our operator."""
    ours, native, _ = LAYERS[name]
    x = _input(name)
    native_error = None
    if native is not None:
        try:
            torch.export.export(two_layer_net(native, LAYERS[name][2]).eval(), (x,))
        except Exception as error:  # noqa: BLE001  (whatever the native class trips over)
            native_error = f"{type(error).__name__}: {str(error).splitlines()[0][:150]}"
    net = two_layer_net(ours, LAYERS[name][2])
    try:
        exported = torch.export.export(net, (x,))
    except Exception as error:
        if native_error is not None:
            pytest.skip(f"the native class does not export either ({native_error}); ours: {type(error).__name__}")
        raise
    graph = str(exported.graph_module.code)
    assert "snn_blockbackend" in graph
    _reset(net)
    expected = net(x)
    assert torch.equal(exported.module()(x), expected)


def test_flop_counter_counts_our_operator():
    net = BlockLIF(beta=0.9, threshold=0.5)
    x = torch.randn(20, 4, 16, requires_grad=True)
    with FlopCounterMode(display=False) as counter:
        net(x).sum().backward()
    counts = {str(op): n for op, n in counter.get_flop_counts()["Global"].items()}
    ours = {op: n for op, n in counts.items() if "snn_blockbackend" in op}
    assert any("forward" in op for op in ours) and any("backward" in op for op in ours), counts
    assert all(n >= x.numel() for n in ours.values())


def test_meta_device_gives_shapes_and_dtypes():
    """Meta tensors run the operators' fake implementations: output shapes and dtypes, no data."""
    for dtype in (torch.float32, torch.float64):
        x = torch.empty(7, 2, 5, device="meta", dtype=dtype)
        result = block_neuron(x, "paper_lif", {"beta": 0.9}, 2)
        assert result.spikes.shape == result.membrane.shape == x.shape
        assert result.spikes.device.type == "meta" and result.spikes.dtype == dtype
        assert result.state["v"].shape == x.shape[1:] and result.state["refractory"].dtype == torch.long
    module = BlockALIF(beta=0.9).to("meta")
    out = module(torch.empty(7, 2, 5, device="meta"))
    assert out.shape == (7, 2, 5) and out.device.type == "meta"
    # half precision and mixed dtypes: the generated kernels' operators give PyTorch's result dtypes
    half = torch.empty(7, 2, 5, device="meta", dtype=torch.bfloat16)
    assert block_neuron(half, "spikingjelly_lif", {}, 2).spikes.dtype == torch.bfloat16
    norse_state = {"v": torch.empty(2, 5, device="meta"), "i": torch.empty(2, 5, device="meta")}
    assert block_neuron(half, "norse_lif", {}, 2, state=norse_state).membrane.dtype == torch.float32
    # a request only the torch provider's generic path runs (a bfloat16 state a per-neuron float32 parameter
    # would promote) reads values per block: refused clearly
    with pytest.raises(NotImplementedError, match="meta"):
        block_neuron(half, "spikingjelly_lif", {"tau": torch.full((5,), 2.0, device="meta")}, 2)


def _double_backward(backend):
    x = (torch.randn(9, 2, 3, dtype=torch.float64) + 0.5).requires_grad_()
    beta = torch.tensor(0.8, dtype=torch.float64, requires_grad=True)
    result = block_neuron(x, "paper_lif", {"beta": beta}, 1, backend=backend)
    (g_beta,) = torch.autograd.grad(result.membrane.pow(2).sum(), beta, create_graph=True)
    return torch.autograd.grad(g_beta, x)[0]


def test_double_backward_on_the_reference():
    """The reference is plain autograd: gradients of gradients work (checked against finite differences)."""
    assert _double_backward("reference").abs().sum() > 0
    x = (torch.randn(5, 2, dtype=torch.float64) + 0.5).requires_grad_()

    def membrane(inputs):
        return block_neuron(inputs, "paper_lif", {"beta": 0.8}, 1, backend="reference").membrane

    assert torch.autograd.gradgradcheck(membrane, (x,))


@pytest.mark.parametrize("backend", [name for name in ("numba",) if name in plugins.providers()])
def test_double_backward_refused_clearly(backend):
    with pytest.raises(NotImplementedError, match=f"double backward.*{backend}"):
        _double_backward(backend)


# ---------------------------------------------------------------------------------------------
# half precision against the native neurons
# ---------------------------------------------------------------------------------------------
NATIVE = [name for name, (_, native, _) in LAYERS.items() if native is not None]


def _spikes(module, x):
    _reset(module)
    return module(x)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("name", NATIVE)
def test_half_precision_equals_native(name, dtype):
    """Half input: same output dtype as the native neuron (its type promotion: snnTorch's float32 reset term and
    Norse's float32 initial state promote to float32) and bitwise equal spikes."""
    ours, native, _ = LAYERS[name]
    torch.manual_seed(0)
    x = _input(name, T=40, dtype=dtype) * 1.5
    expected = _spikes(native(), x)
    got = _spikes(ours(), x)
    assert expected.any()
    assert got.dtype == expected.dtype
    assert torch.equal(got, expected)


@pytest.mark.parametrize("name", NATIVE)
def test_autocast_equals_native(name):
    """Inside torch.autocast("cpu", bfloat16) the Linear layers output bfloat16; the neuron behaves like the
    native one (same output dtype, same spikes)."""
    ours, native, _ = LAYERS[name]
    x = _input(name, T=30) * 1.5
    nets = [two_layer_net(make, LAYERS[name][2]) for make in (native, ours)]
    nets[1].load_state_dict(nets[0].state_dict(), strict=False)
    with torch.autocast("cpu", torch.bfloat16):
        expected, got = (_spikes(net, x) for net in nets)
    assert expected.any()
    assert got.dtype == expected.dtype
    assert torch.equal(got, expected)


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_framework_free_modules_take_half_input(dtype):
    """BlockLIF/BlockALIF keep float32 buffers; half input promotes as the reference's operations do."""
    x = (torch.randn(25, 3, 6) + 0.6).to(dtype)
    for module in (BlockLIF(beta=0.9), BlockALIF(beta=0.9)):
        got = module(x)
        ref = block_neuron(x, module.profile, module._params(), 0, backend="reference").spikes
        assert got.dtype == ref.dtype == dtype
        assert torch.equal(got, ref)
        with torch.autocast("cpu", torch.bfloat16):
            assert module(x).dtype == dtype


@pytest.mark.parametrize("backend", [name for name in ("torch", "numba") if name in plugins.providers()])
@pytest.mark.parametrize("refractory_steps", [0, 3])
def test_compile_per_provider(backend, refractory_steps):
    """Each provider's operators compile fullgraph (the torch provider's LIF fast path is an operator too), with
    spikes and gradients equal to eager."""
    net = two_layer_net(lambda: BlockLIF(beta=0.9, threshold=0.5, refractory_steps=refractory_steps,
                                         backend=backend, learn_threshold=True), 1.0)  # fmt: skip
    x = _input("BlockLIF")
    eager_out, eager_grads = _run(net, x)
    explanation = torch._dynamo.explain(copy.deepcopy(net))(x)
    assert explanation.graph_break_count == 0
    torch._dynamo.reset()
    out, grads = _run(torch.compile(copy.deepcopy(net), fullgraph=True, backend="aot_eager"), x)
    assert eager_out.any() and torch.equal(out, eager_out)
    for got, expected in zip(grads, eager_grads):
        torch.testing.assert_close(got, expected)


@pytest.mark.parametrize("backend", [name for name in ("torch", "numba", "triton") if name in plugins.providers()])
def test_operator_per_layer_call(backend):
    """One of our operators per neuron-layer call: the exported graph of a 2-layer net holds two forward calls."""
    net = two_layer_net(lambda: BlockLIF(beta=0.9, threshold=0.5, refractory_steps=2, backend=backend), 1.0)
    graph = torch.export.export(net, (_input("BlockLIF"),)).graph
    targets = [str(node.target) for node in graph.nodes if node.op == "call_function"]
    forward = {"numba": "numba_generated_forward"}.get(backend, f"{backend}_lif_forward")
    assert sum(t.startswith(f"snn_blockbackend.{forward}") for t in targets) == 2, targets
