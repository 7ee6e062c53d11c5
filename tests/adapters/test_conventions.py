"""Framework conventions the adapters must keep (issues 13 and 15), each framework against its native classes.

* Norse: the initial state's ``requires_grad`` (a cell's output has a graph, as natively), returned states are
  tensors of their own (``state.v.detach_()``), integer parameters and bool input where Norse takes them;
* SpikingJelly: ``named_memories`` / ``functional_forward`` in the stock layout at R = 0, ``detach_net`` and
  ``reset_net`` after single- and multi-step forwards;
* every Block class: ``check_finite`` (default True) reaches the engine;
* checkpoints: ``load_state_dict(strict=True)`` native -> ours and ours -> native, equal outputs after loading;
* ``convert(model, refractory_steps=R)`` on an already converted model sets R.
"""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn

from snn_blockbackend import modules

warnings.simplefilter("ignore", DeprecationWarning)  # torch.jit.script inside Norse / SpikingJelly

nb = pytest.importorskip("snn_blockbackend.adapters.norse", reason="Norse is not installed")
nt = pytest.importorskip("norse.torch", reason="Norse is not installed")
sb = pytest.importorskip("snn_blockbackend.adapters.snntorch", reason="snnTorch is not installed")
snn = pytest.importorskip("snntorch", reason="snnTorch is not installed")
sjb = pytest.importorskip("snn_blockbackend.adapters.spikingjelly", reason="SpikingJelly is not installed")
sj_neuron = pytest.importorskip("spikingjelly.activation_based.neuron", reason="SpikingJelly is not installed")
sj_functional = pytest.importorskip("spikingjelly.activation_based.functional", reason="SpikingJelly is not installed")

# (ours, native) for the Norse cells and time-first modules (native LIFBox: none, its cell loops)
NORSE_CELLS = [
    (nb.BlockLIFBoxCell, nt.LIFBoxCell),
    (nb.BlockLIFCell, nt.LIFCell),
    (nb.BlockLSNNCell, nt.LSNNCell),
    (nb.BlockLIFRefracCell, nt.LIFRefracCell),
]
NORSE_MODULES = [(nb.BlockLIF, nt.LIF), (nb.BlockLSNN, nt.LSNN)]


def _fields(state):
    """The tensors of a (possibly nested) Norse state, in order."""
    out = []
    for value in state:
        out.extend(_fields(value) if isinstance(value, tuple) else [value])
    return out


# =============================================================================================
# Norse conventions
# =============================================================================================
@pytest.mark.parametrize("ours, native", NORSE_CELLS + NORSE_MODULES, ids=lambda c: c.__name__)
def test_norse_output_has_a_graph_like_native(ours, native):
    """Norse's initial_state sets v.requires_grad: outputs have a graph for input without one."""
    shape = (6, 2, 4) if ours._time_first else (2, 4)
    x = torch.ones(shape) * 300
    z_native, s_native = native()(x)
    z, s = ours()(x)
    assert z.requires_grad == z_native.requires_grad
    # v carries the graph as natively (other fields may have one where Norse's has none: one engine node)
    assert _fields(s)[0].requires_grad == _fields(s_native)[0].requires_grad
    z.sum().backward()  # raised "element 0 of tensors does not require grad" before
    with torch.no_grad():
        z, s = ours()(x)
    assert not z.requires_grad and not any(t.requires_grad for t in _fields(s))


@pytest.mark.parametrize("refractory_steps", [0, 3])
@pytest.mark.parametrize(
    "ours",
    [nb.BlockLIFBoxCell, nb.BlockLIFCell, nb.BlockLSNNCell, nb.BlockLIF, nb.BlockLSNN, nb.BlockLIFBox],
    ids=lambda c: c.__name__,
)
def test_norse_states_are_tensors_of_their_own(ours, refractory_steps):
    x = torch.rand((5, 2, 4) if ours._time_first else (2, 4)) * 300
    _, state = ours(refractory_steps=refractory_steps)(x)
    for tensor in _fields(state):
        assert not tensor._is_view()
        tensor.detach_()  # raised "Can't detach views in-place" before (truncated BPTT)
    _, state = nb.BlockLIFRefracCell()(torch.rand(2, 4) * 300)
    for tensor in _fields(state):
        tensor.detach_()


def _over_time(module, xs, time_first):
    """(spikes [T, ...], final state) of a Norse module over time-first ``xs``: one call for a time-first module,
    a step loop threading the state for a cell."""
    if time_first:
        return module(xs)
    state, outputs = None, []
    for x in xs:
        z, state = module(x, state)
        outputs.append(z)
    return torch.stack(outputs), state


@pytest.mark.parametrize(
    "ours, native, params",
    [
        (nb.BlockLIF, nt.LIF, nt.LIFParameters(tau_syn_inv=torch.as_tensor(42), v_th=torch.as_tensor(1))),
        (nb.BlockLIFCell, nt.LIFCell, nt.LIFParameters(tau_syn_inv=torch.as_tensor(42), v_reset=torch.as_tensor(0))),
        (nb.BlockLIFBoxCell, nt.LIFBoxCell, nt.LIFBoxParameters(v_reset=0)),
        (nb.BlockLIFBoxCell, nt.LIFBoxCell, nt.LIFBoxParameters(tau_mem_inv=torch.as_tensor(80), v_th=1)),
        (nb.BlockLSNNCell, nt.LSNNCell, nt.LSNNParameters(v_th=torch.as_tensor(1), tau_adapt_inv=torch.as_tensor(2))),
    ],
    ids=["LIF", "LIFCell", "LIFBoxCell-reset", "LIFBoxCell-tau", "LSNNCell"],
)
def test_norse_integer_parameters_as_native(ours, native, params):
    torch.manual_seed(0)
    xs = torch.rand(12, 2, 5) * 400
    ours_module, native_module = ours(params), native(params)
    (z, s), (z_native, s_native) = (_over_time(m, xs, ours._time_first) for m in (ours_module, native_module))
    assert torch.any(z_native > 0), "no spike: the case tests nothing"
    assert z.dtype == z_native.dtype and torch.equal(z, z_native)
    for tensor, tensor_native in zip(_fields(s), _fields(s_native)):
        assert torch.equal(tensor, tensor_native)
    assert all(t.is_floating_point() for t in ours_module.buffers())


@pytest.mark.parametrize("ours, native", [(nb.BlockLIFBoxCell, nt.LIFBoxCell), (nb.BlockLIFCell, nt.LIFCell),
                                          (nb.BlockLIF, nt.LIF)], ids=lambda c: c.__name__)  # fmt: skip
def test_norse_bool_input_as_native(ours, native):
    torch.manual_seed(1)
    xs = torch.rand(20, 3, 4) > 0.2
    if ours is nb.BlockLIFBoxCell:
        params = nt.LIFBoxParameters(tau_mem_inv=torch.tensor(900.0), v_th=torch.tensor(0.5))
    else:
        params = nt.LIFParameters(tau_mem_inv=torch.tensor(900.0))
    (z, s), (z_native, s_native) = (_over_time(m(params), xs, ours._time_first) for m in (ours, native))
    assert bool(z_native.any()), "no spike: the case tests nothing"
    assert z.dtype == z_native.dtype and torch.equal(z, z_native)
    for tensor, tensor_native in zip(_fields(s), _fields(s_native)):
        assert tensor.dtype == tensor_native.dtype and torch.equal(tensor, tensor_native)


@pytest.mark.parametrize("ours", [nb.BlockLSNNCell, nb.BlockLSNN, nb.BlockLIFRefracCell], ids=lambda c: c.__name__)
def test_norse_bool_input_refused_where_native_fails(ours):
    x = torch.rand((4, 2, 3) if ours._time_first else (2, 3)) > 0.5
    with pytest.raises(TypeError, match="floating-point input"):
        ours()(x)


# =============================================================================================
# SpikingJelly conventions
# =============================================================================================
SJ_PAIRS = [(sjb.BlockLIFNode, sj_neuron.LIFNode), (sjb.BlockParametricLIFNode, sj_neuron.ParametricLIFNode)]


@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("ours, native", SJ_PAIRS, ids=lambda c: c.__name__)
def test_spikingjelly_memories_in_the_stock_layout(ours, native, step_mode):
    node, stock = ours(step_mode=step_mode), native(step_mode=step_mode)
    assert list(dict(node.named_memories())) == list(dict(stock.named_memories())) == ["v"]
    with_period = ours(step_mode=step_mode, refractory_steps=2)
    assert list(dict(with_period.named_memories())) == ["v", "refractory"]
    with_period.refractory_steps = 0
    assert list(dict(with_period.named_memories())) == ["v"]
    if sjb.API != "2":
        return  # functional_forward is SpikingJelly 2.x API
    torch.manual_seed(2)
    x = torch.rand((6, 2, 3) if step_mode == "m" else (2, 3)) * 3
    v = torch.rand(2, 3) * 0.5
    (out,), states = node.functional_forward((x,), (v,))  # IndexError before
    (out_stock,), states_stock = stock.functional_forward((x,), (v,))
    assert torch.equal(out, out_stock) and len(states) == len(states_stock) == 1
    torch.testing.assert_close(states[0], states_stock[0], rtol=0, atol=1e-6)


@pytest.mark.parametrize("refractory_steps", [0, 2])
@pytest.mark.parametrize("step_mode", ["s", "m"])
@pytest.mark.parametrize("node_class", [sjb.BlockLIFNode, sjb.BlockParametricLIFNode, sjb.BlockALIFNode],
                         ids=lambda c: c.__name__)  # fmt: skip
def test_spikingjelly_detach_net_and_reset_net(node_class, step_mode, refractory_steps):
    net = nn.Sequential(nn.Linear(3, 3), node_class(step_mode=step_mode, refractory_steps=refractory_steps))
    if sjb.API == "0.0.0.0.14" and step_mode == "m":
        sj_functional.set_backend(net, "block")
    x = torch.rand(5, 2, 3) * 3
    net(x) if step_mode == "m" else [net(xt) for xt in x]
    node = net[1]
    assert node.v.requires_grad
    sj_functional.detach_net(net)  # "Can't detach views in-place" before (multi-step: v was a view)
    assert not node.v.requires_grad and not node.v._is_view()
    net(x) if step_mode == "m" else [net(xt) for xt in x]  # continues from the detached state
    sj_functional.reset_net(net)
    assert all(not isinstance(value, torch.Tensor) or not bool(value.any()) for value in node.memories())


# =============================================================================================
# check_finite on every Block class
# =============================================================================================
def _nan_runs():
    """(name, make(check_finite) -> module, run(module, x)) for every Block class, x: [T, B, N] with a NaN."""

    def time_first(module, x):
        return module(x)

    def step(module, x):
        return module(x[0])

    def sj_multi(module, x):
        module.step_mode = "m"
        if sjb.API == "0.0.0.0.14":
            module.backend = "block"
        return module(x)

    return [
        ("modules.BlockLIF", lambda c: modules.BlockLIF(0.9, check_finite=c), time_first),
        ("modules.BlockALIF", lambda c: modules.BlockALIF(0.9, check_finite=c), time_first),
        ("snntorch.BlockLeaky", lambda c: sb.BlockLeaky(0.9, sequence=True, check_finite=c), time_first),
        ("snntorch.BlockALIF", lambda c: sb.BlockALIF(0.9, sequence=True, check_finite=c), time_first),
        ("spikingjelly.BlockLIFNode", lambda c: sjb.BlockLIFNode(check_finite=c), sj_multi),
        ("spikingjelly.BlockParametricLIFNode", lambda c: sjb.BlockParametricLIFNode(check_finite=c), sj_multi),
        ("spikingjelly.BlockALIFNode", lambda c: sjb.BlockALIFNode(check_finite=c), sj_multi),
        *[(f"norse.{cls.__name__}", (lambda cls: lambda c: cls(check_finite=c))(cls), step)
          for cls in (nb.BlockLIFBoxCell, nb.BlockLIFCell, nb.BlockLSNNCell, nb.BlockLIFRefracCell)],
        *[(f"norse.{cls.__name__}", (lambda cls: lambda c: cls(check_finite=c))(cls), time_first)
          for cls in (nb.BlockLIF, nb.BlockLSNN, nb.BlockLIFBox)],
    ]  # fmt: skip


@pytest.mark.parametrize("name, make, run", _nan_runs(), ids=lambda v: v if isinstance(v, str) else "")
def test_check_finite_switch_on_every_block_class(name, make, run):
    x = torch.rand(4, 2, 3)
    x[0, 0, 2] = float("nan")
    module = make(True)
    assert module.check_finite is True
    with pytest.raises(ValueError, match="NaN or Inf"):
        run(module, x)
    out = run(make(False), x)  # no check: the NaN just flows through
    out = out[0] if isinstance(out, tuple) else out
    assert out.shape[-1] == 3


# =============================================================================================
# checkpoints: strict loading both ways, equal outputs
# =============================================================================================
def _assert_same_outputs(a, b, x):
    out_a, out_b = a(x), b(x)
    out_a = out_a[0] if isinstance(out_a, tuple) else out_a
    out_b = out_b[0] if isinstance(out_b, tuple) else out_b
    assert bool(out_b.any()), "no spike: the comparison tests nothing"
    assert torch.equal(out_a, out_b)


def _norse_run(model, time_first):
    """The spikes of an (nn.Sequential(Linear, Norse neuron)) over x [T, B, 3], stepping cells."""

    def run(x):
        h = model[0](x)
        if time_first:
            return model[1](h)[0]
        state, spikes = None, []
        for ht in h:
            z, state = model[1](ht, state)
            spikes.append(z)
        return torch.stack(spikes)

    return run


def _norse_checkpoint_pairs():
    learn = nn.Parameter(torch.tensor(150.0))
    return [
        (nb.BlockLIF, nt.LIF, nt.LIFParameters(v_th=torch.tensor(0.4))),
        (nb.BlockLIFCell, nt.LIFCell, nt.LIFParameters(v_th=torch.tensor(0.4))),
        (nb.BlockLIFBoxCell, nt.LIFBoxCell, nt.LIFBoxParameters(v_th=torch.tensor(0.4))),
        (nb.BlockLSNN, nt.LSNN, nt.LSNNParameters(v_th=torch.tensor(0.4))),
        (nb.BlockLSNNCell, nt.LSNNCell, nt.LSNNParameters(v_th=torch.tensor(0.4))),
        (nb.BlockLIFRefracCell, nt.LIFRefracCell,
         nt.LIFRefracParameters(nt.LIFParameters(v_th=torch.tensor(0.4)))),
        (nb.BlockLIF, nt.LIF, nt.LIFParameters(tau_mem_inv=learn)),
    ]  # fmt: skip


@pytest.mark.parametrize("ours, native, params", _norse_checkpoint_pairs(),
                         ids=lambda v: v.__name__ if isinstance(v, type) else "")  # fmt: skip
def test_norse_checkpoints_load_strictly_both_ways(ours, native, params):
    torch.manual_seed(3)
    x = torch.rand(8, 2, 3) * 600
    block_model = nn.Sequential(nn.Linear(3, 3), ours(params))
    native_model = nn.Sequential(nn.Linear(3, 3), native(params))
    native_model.load_state_dict(block_model.state_dict() if not list(block_model[1].parameters())
                                 else {k: v for k, v in block_model.state_dict().items() if k.startswith("0.")})
    block_model.load_state_dict(native_model.state_dict(), strict=True)  # "missing keys" before
    _assert_same_outputs(_norse_run(block_model, ours._time_first), _norse_run(native_model, ours._time_first), x)
    fresh = nn.Sequential(nn.Linear(3, 3), native(params))
    if list(block_model[1].parameters()):
        # a learnable field: Norse cannot hold it, so loading ours into native reports it (not dropped silently)
        with pytest.raises(RuntimeError, match="Unexpected key"):
            fresh.load_state_dict(block_model.state_dict(), strict=True)
        again = nn.Sequential(nn.Linear(3, 3), ours(params))
        again.load_state_dict(block_model.state_dict(), strict=True)
        assert torch.equal(again[1].tau_mem_inv, block_model[1].tau_mem_inv)
    else:
        fresh.load_state_dict(block_model.state_dict(), strict=True)  # "unexpected keys" before
        _assert_same_outputs(_norse_run(fresh, ours._time_first), _norse_run(native_model, ours._time_first), x)


def test_norse_checkpoint_with_fixed_fields_still_loads():
    """A checkpoint of ours saved while the fixed fields were persistent (keys v_th, ...) loads strictly."""
    cell = nb.BlockLIFCell()
    old_style = {name: torch.tensor(0.25) for name in ("tau_syn_inv", "tau_mem_inv", "v_leak", "v_th", "v_reset")}
    cell.load_state_dict(old_style, strict=True)
    assert float(cell.v_th) == 0.25 and float(cell.p.tau_mem_inv) == 0.25
    with pytest.raises(RuntimeError, match="size mismatch for v_th"):
        cell.load_state_dict({**old_style, "v_th": torch.ones(3)})


def test_snntorch_checkpoints_load_strictly_both_ways():
    x = torch.rand(10, 2, 3) * 0.8
    native = snn.Leaky(beta=0.7, threshold=0.5, learn_beta=True)
    ours = sb.BlockLeaky(beta=0.3, threshold=0.9, learn_beta=True, sequence=True)
    with torch.no_grad():
        native.beta.fill_(0.85)
    ours.load_state_dict(native.state_dict(), strict=True)
    mem = torch.zeros(2, 3)
    spikes = []
    for xt in x:
        spk, mem = native(xt, mem)
        spikes.append(spk)
    assert bool(torch.stack(spikes).any())
    assert torch.equal(ours(x, torch.zeros(2, 3))[0], torch.stack(spikes))
    back = snn.Leaky(beta=0.1, learn_beta=True)
    back.load_state_dict(ours.state_dict(), strict=True)
    assert all(torch.equal(back.state_dict()[k], v) for k, v in native.state_dict().items())


@pytest.mark.parametrize("ours, native", SJ_PAIRS, ids=lambda c: c.__name__)
def test_spikingjelly_checkpoints_load_strictly_both_ways(ours, native):
    x = torch.rand(10, 2, 3) * 3
    stock = native(step_mode="m", v_threshold=0.5)
    if hasattr(stock, "w"):
        with torch.no_grad():
            stock.w.fill_(0.3)
    block = ours(step_mode="m", v_threshold=0.5)
    if sjb.API == "0.0.0.0.14":
        block.backend = "block"
    block.load_state_dict(stock.state_dict(), strict=True)
    _assert_same_outputs(block, stock, x)
    sj_functional.reset_net(block)
    sj_functional.reset_net(stock)
    again = native(step_mode="m", v_threshold=0.5)
    again.load_state_dict(block.state_dict(), strict=True)
    _assert_same_outputs(again, block, x)
    # a refractory period adds a memory, not a state_dict key
    assert set(ours(refractory_steps=3).state_dict()) == set(native().state_dict())


# =============================================================================================
# convert on an already converted model sets R
# =============================================================================================
def _refractory_gap_holds(spikes: torch.Tensor, refractory_steps: int) -> bool:
    """No neuron spikes within R steps after a spike (spikes [T, ...])."""
    flat = spikes.reshape(spikes.shape[0], -1)
    for column in flat.t():
        times = torch.nonzero(column).flatten().tolist()
        if any(b - a <= refractory_steps for a, b in zip(times, times[1:])):
            return False
    return True


def test_snntorch_convert_twice_sets_refractory_steps():
    model = nn.Sequential(snn.Leaky(beta=0.9, init_hidden=True))
    model = sb.convert(model)
    model = sb.convert(model, refractory_steps=4)
    assert isinstance(model[0], sb.BlockLeaky) and model[0].refractory_steps == 4
    spikes = torch.stack([model(xt) for xt in torch.full((30, 1, 2), 3.0)])
    assert bool(spikes.any()) and _refractory_gap_holds(spikes, 4)
    alif = sb.convert(nn.Sequential(sb.BlockALIF(0.9)), refractory_steps=2, sequence=True)[0]
    assert alif.refractory_steps == 2 and alif.sequence
    with pytest.raises(NotImplementedError, match="inhibition"):
        sb.convert(nn.Sequential(sb.BlockLeaky(0.9, inhibition=True, init_hidden=True)), refractory_steps=1)


def test_spikingjelly_convert_twice_sets_refractory_steps():
    model = sjb.convert(nn.Sequential(sj_neuron.LIFNode(step_mode="m"), sj_neuron.ParametricLIFNode(step_mode="m")))
    model = sjb.convert(model, refractory_steps=4)
    assert [m.refractory_steps for m in model] == [4, 4]
    assert list(dict(model[0].named_memories())) == ["v", "refractory"]
    if sjb.API == "0.0.0.0.14":
        sj_functional.set_backend(model, "block")
    spikes = model[0](torch.full((30, 1, 2), 3.0))
    assert bool(spikes.any()) and _refractory_gap_holds(spikes, 4)
    model = sjb.convert(model)
    assert [m.refractory_steps for m in model] == [0, 0] and list(dict(model[0].named_memories())) == ["v"]


def test_norse_convert_twice_sets_refractory_steps():
    model = nb.convert(nn.Sequential(nt.LIF(nt.LIFParameters(v_th=torch.tensor(0.3))), nt.LIFRefracCell()))
    model = nb.convert(model, refractory_steps=4)
    assert model[0].refractory_steps == 4 and model[1].refractory_steps == 0  # LIFRefrac keeps its own counter
    spikes, state = model[0](torch.full((30, 1, 2), 600.0))
    assert isinstance(state, nb.BlockLIFState)
    assert bool(spikes.any()) and _refractory_gap_holds(spikes, 4)
