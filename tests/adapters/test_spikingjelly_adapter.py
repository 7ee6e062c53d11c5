"""The SpikingJelly adapter (``snn_blockbackend.adapters.spikingjelly``) against the stock SpikingJelly neurons.

Runs against whichever SpikingJelly is installed (0.0.0.0.14 or 2.x) and tests that version's behaviour:
``adapter.API`` says which; nothing version-specific is skipped silently (0.0.0.0.14: ``backend='block'``;
2.x: the overridden functional transitions). Checks:

* refractory_steps=0: spikes bitwise equal, membrane (``v_seq`` / ``v``) equal to 1e-6 (bitwise where the
  arithmetic allows, asserted separately), input and ``w`` gradients within rtol 1e-5 (plus the gradient-scale
  absolute term of tests/test_native_equivalence.py), multi-step and single-step, train and eval mode;
* refractory_steps>0: identical to the engine's sequential reference for the same profile (forward and
  gradients), single-step too; BlockALIFNode likewise (``paper`` profile);
* network plumbing: set_step_mode / set_backend (0.0.0.0.14), convert / unconvert, reset_net, state carried
  between calls, a tutorial-style training loop with equal losses;
* bad input and the adapter's import errors.
"""

from __future__ import annotations

import importlib
import importlib.metadata
import inspect
import os
import sys
import warnings

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from snn_blockbackend import block_neuron, make_profile
from snn_blockbackend import surrogate as sg

ADAPTER = "snn_blockbackend.adapters.spikingjelly"
EXAMPLES = int(os.environ.get("SPIKINGJELLY_ADAPTER_EXAMPLES", "20"))
HYPOTHESIS = settings(
    max_examples=EXAMPLES, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow]
)
DTYPES = (torch.float32, torch.float64)


# =============================================================================================
# import errors (no SpikingJelly needed)
# =============================================================================================
def _fresh_import_with_version(monkeypatch, version):
    real_version = importlib.metadata.version

    def fake_version(distribution):
        if distribution == "spikingjelly":
            if version is None:
                raise importlib.metadata.PackageNotFoundError(distribution)
            return version
        return real_version(distribution)

    monkeypatch.setattr(importlib.metadata, "version", fake_version)
    for name in [m for m in sys.modules if m == ADAPTER or m.startswith(ADAPTER + ".")]:
        monkeypatch.delitem(sys.modules, name)  # restored after the test
    return importlib.import_module(ADAPTER)


def test_import_error_names_the_pip_extra_when_spikingjelly_is_missing(monkeypatch):
    with pytest.raises(ImportError, match=r"pip install 'snn-blockbackend\[spikingjelly\]'"):
        _fresh_import_with_version(monkeypatch, None)


@pytest.mark.parametrize("version", ["0.0.0.0.13", "2.1.0", "3.0"])
def test_import_error_names_the_supported_range_for_other_versions(monkeypatch, version):
    with pytest.raises(ImportError, match=r"supported versions: >=0\.0\.0\.0\.14,<2\.1") as error:
        _fresh_import_with_version(monkeypatch, version)
    assert version in str(error.value)


# =============================================================================================
# helpers
# =============================================================================================
@pytest.fixture(scope="module")
def sj():
    """The adapter plus SpikingJelly's modules (skipped, with the reason, when SpikingJelly is absent)."""
    pytest.importorskip("spikingjelly", reason="SpikingJelly is not installed; the adapter cannot be tested")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        adapter = importlib.import_module(ADAPTER)
        from spikingjelly.activation_based import functional, layer, neuron, surrogate
    return _SJ(adapter, neuron, functional, layer, surrogate)


class _SJ:
    def __init__(self, adapter, neuron, functional, layer, surrogate):
        self.adapter, self.neuron, self.functional, self.layer, self.surrogate = (
            adapter, neuron, functional, layer, surrogate,
        )
        self.legacy = adapter.API == "0.0.0.0.14"
        self.profile_version = "0.0.0.0.14" if self.legacy else "2"

    def multi_step(self, node):
        """Put a (Block or stock) node in multi-step mode, on the block backend where 0.0.0.0.14 has one."""
        self.functional.set_step_mode(node, "m")
        if self.legacy and isinstance(node, (self.adapter.BlockLIFNode, self.adapter.BlockParametricLIFNode,
                                             self.adapter.BlockALIFNode)):
            node.backend = "block"
        return node


def _input(shape, dtype, seed, mean, std, kick=0.0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(shape, generator=g, dtype=torch.float64) * std + mean
    x.view(shape[0], -1)[0, 0] += kick
    return x.to(dtype).requires_grad_()


def _loss_weights(shape, dtype, seed):
    g = torch.Generator().manual_seed(10_000 + seed)
    return [torch.randn(shape, generator=g, dtype=torch.float64).to(dtype) for _ in range(2)]


def _run(node, x, mode):
    """Spikes and membrane per step (post-reset ``v``), in step mode ``mode``."""
    if mode == "m":
        spikes = node(x)
        return spikes, node.v_seq
    spikes, membranes = [], []
    for xt in x.unbind(0):
        spikes.append(node(xt))
        membranes.append(node.v)
    return torch.stack(spikes), torch.stack(membranes)


def _grads(outputs, weights, leaves):
    loss = sum((out * w).sum() for out, w in zip(outputs, weights))
    grads = torch.autograd.grad(loss, leaves, allow_unused=True)
    return [torch.zeros_like(leaf) if g is None else g for leaf, g in zip(leaves, grads)]


def _assert_grads_close(ours, native):
    scale = max(g.abs().max().item() for g in native)  # the problem's gradient scale (see test_native_equivalence)
    for o, n in zip(ours, native):
        torch.testing.assert_close(o, n, rtol=1e-5, atol=1e-7 + 2e-6 * scale)


def _assert_same_forward(ours, native, exact_membrane=False):
    assert torch.equal(ours[0], native[0]), "spikes differ"
    assert ours[1].dtype == native[1].dtype
    if exact_membrane:
        assert torch.equal(ours[1], native[1]), f"membrane differs by {(ours[1] - native[1]).abs().max().item():.3g}"
    else:
        torch.testing.assert_close(ours[1], native[1], rtol=0, atol=1e-6)


def _node_pair(sj, parametric, tau, dtype, refractory_steps=0, **common):
    if parametric:
        native = sj.neuron.ParametricLIFNode(init_tau=tau, **common).to(dtype)
        ours = sj.adapter.BlockParametricLIFNode(init_tau=tau, refractory_steps=refractory_steps, **common).to(dtype)
    else:
        native = sj.neuron.LIFNode(tau=tau, **common)
        ours = sj.adapter.BlockLIFNode(tau=tau, refractory_steps=refractory_steps, **common)
    return native, ours


def _scaled_input(shape, dtype, seed, tau, decay_input, v_threshold, v_reset, kick=3.0):
    # steady state v = x (decay_input) or tau*x; around the threshold so that 5-30 % of steps spike
    scale = (1.0 if decay_input else 1.0 / tau) * (0.65 if v_reset is None else 0.85)
    first_step_gain = 1.0 / tau if decay_input else 1.0
    return _input(shape, dtype, seed, v_threshold * scale, 1.2 * v_threshold * scale, kick * v_threshold / first_step_gain)


def _surrogate(sj, name):
    s = sj.surrogate
    return {
        "default": None,
        "sigmoid": lambda: s.Sigmoid(alpha=3.0),
        "atan": lambda: s.ATan(),
        "softsign": lambda: s.SoftSign(),  # no engine equivalent: SpikingJelly's own backward, wrapped
        "piecewise_quadratic": lambda: s.PiecewiseQuadratic(),
        "erf": lambda: s.Erf(),
    }[name]


SURROGATES = ("default", "sigmoid", "atan", "softsign", "piecewise_quadratic", "erf")


# =============================================================================================
# constructor
# =============================================================================================
@pytest.mark.parametrize("name", ["LIFNode", "ParametricLIFNode"])
def test_same_constructor_arguments_and_defaults_plus_refractory_steps(sj, name):
    stock = inspect.signature(getattr(sj.neuron, name)).parameters
    ours = inspect.signature(getattr(sj.adapter, "Block" + name)).parameters
    assert list(ours) == list(stock) + ["refractory_steps", "check_finite"]
    for key, parameter in stock.items():
        assert ours[key].default is parameter.default or ours[key].default == parameter.default, key
    assert ours["refractory_steps"].default == 0 and ours["check_finite"].default is True
    assert "backend" in stock if sj.legacy else "backend" not in stock  # the API generation under test
    node = getattr(sj.adapter, "Block" + name)()
    assert isinstance(node, getattr(sj.neuron, name))
    assert isinstance(sj.adapter.BlockALIFNode(), sj.neuron.BaseNode)


# =============================================================================================
# refractory_steps = 0: equal to the stock nodes
# =============================================================================================
def _check_equivalence(sj, parametric, tau, decay_input, v_threshold, v_reset, detach_reset, dtype, mode,
                       training, surrogate_name, shape, seed):
    make_surrogate = _surrogate(sj, surrogate_name)
    common = dict(decay_input=decay_input, v_threshold=v_threshold, v_reset=v_reset, detach_reset=detach_reset,
                  store_v_seq=True)
    if make_surrogate is not None:
        common["surrogate_function"] = make_surrogate()
    native, ours = _node_pair(sj, parametric, tau, dtype, **common)
    if mode == "m":
        sj.functional.set_step_mode(native, "m")
        sj.multi_step(ours)
    native.train(training)
    ours.train(training)
    if parametric:
        ours.w.data.copy_(native.w.data)
    x = _scaled_input(shape, dtype, seed, tau, decay_input, v_threshold, v_reset)
    native_out = _run(native, x, mode)
    assert bool(native_out[0].any()), "the stock neuron never spiked: the input scale is wrong"
    ours_out = _run(ours, x, mode)
    # bitwise except in 0.0.0.0.14's float32 coefficient 1 - 1/tau of a tau float32 cannot hold (see legacy_tau)
    legacy_coefficient = not parametric and not decay_input and v_reset in (None, 0.0) and (training or v_reset is None)
    representable = float(torch.tensor(tau, dtype=torch.float32)) == tau
    exact = not (sj.legacy and legacy_coefficient and dtype == torch.float32 and not representable)
    _assert_same_forward(ours_out, native_out, exact_membrane=exact)
    # 0.0.0.0.14's eval mode runs TorchScript kernels without autograd: nothing to compare there
    if training or not sj.legacy:
        weights = _loss_weights(shape, dtype, seed)
        leaves_native = [x] + ([native.w] if parametric else [])
        leaves_ours = [x] + ([ours.w] if parametric else [])
        _assert_grads_close(_grads(ours_out, weights, leaves_ours), _grads(native_out, weights, leaves_native))


@HYPOTHESIS
@given(
    parametric=st.booleans(),
    tau=st.floats(1.05, 8.0),
    decay_input=st.booleans(),
    v_threshold=st.floats(0.3, 2.0),
    v_reset=st.sampled_from([0.0, None, -0.2, 0.1]),
    detach_reset=st.booleans(),
    dtype=st.sampled_from(DTYPES),
    mode=st.sampled_from(["m", "s"]),
    training=st.sampled_from([True, True, False]),
    surrogate_name=st.sampled_from(SURROGATES),
    t=st.integers(1, 30),
    neurons=st.lists(st.integers(1, 5), min_size=1, max_size=2),
    seed=st.integers(0, 2**16),
)
def test_random_configurations_match_the_stock_nodes(
    sj, parametric, tau, decay_input, v_threshold, v_reset, detach_reset, dtype, mode, training, surrogate_name,
    t, neurons, seed,
):
    _check_equivalence(sj, parametric, tau, decay_input, v_threshold, v_reset, detach_reset, dtype, mode,
                       training, surrogate_name, (t, *neurons), seed)


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
@pytest.mark.parametrize("parametric", (False, True), ids=("LIFNode", "ParametricLIFNode"))
@pytest.mark.parametrize("v_reset", (0.0, None, -0.2), ids=("hard0", "soft", "hard-0.2"))
@pytest.mark.parametrize("decay_input", (True, False), ids=("decay-input", "no-decay-input"))
def test_multi_step_membrane_is_bitwise_for_representable_tau(sj, decay_input, v_reset, parametric, dtype):
    """With a tau the input dtype represents exactly, the engine's arithmetic is SpikingJelly's: v bitwise."""
    for seed, (tau, detach_reset, training) in enumerate(((2.0, False, True), (3.0, True, True), (2.5, False, False))):
        native, ours = _node_pair(sj, parametric, tau, dtype, decay_input=decay_input, v_reset=v_reset,
                                  detach_reset=detach_reset, store_v_seq=True)
        sj.functional.set_step_mode(native, "m")
        sj.multi_step(ours)
        native.train(training)
        ours.train(training)
        x = _scaled_input((37, 3, 17), dtype, seed, tau, decay_input, 1.0, v_reset, kick=0.0)
        native_out = _run(native, x, "m")
        assert bool(native_out[0].any())
        _assert_same_forward(_run(ours, x, "m"), native_out, exact_membrane=True)


# =============================================================================================
# refractory_steps > 0: equal to the engine's sequential reference
# =============================================================================================
REPRESENTABLE_TAUS = (1.25, 1.5, 2.0, 2.5, 3.0, 4.0, 6.5)  # exact in float32, so the profile's tau is the node's


@HYPOTHESIS
@given(
    parametric=st.booleans(),
    tau=st.sampled_from(REPRESENTABLE_TAUS),
    decay_input=st.booleans(),
    v_reset=st.sampled_from([0.0, None, -0.2]),
    detach_reset=st.booleans(),
    refractory_steps=st.integers(1, 6),
    dtype=st.sampled_from(DTYPES),
    mode=st.sampled_from(["m", "s"]),
    t=st.integers(1, 30),
    seed=st.integers(0, 2**16),
)
def test_refractory_period_matches_the_engine_reference(
    sj, parametric, tau, decay_input, v_reset, detach_reset, refractory_steps, dtype, mode, t, seed
):
    shape = (t, 2, 5)
    _, ours = _node_pair(sj, parametric, tau, dtype, refractory_steps, decay_input=decay_input, v_reset=v_reset,
                         detach_reset=detach_reset, store_v_seq=True)
    if mode == "m":
        sj.multi_step(ours)
    x = _scaled_input(shape, dtype, seed, tau, decay_input, 1.0, v_reset)
    ours_out = _run(ours, x, mode)
    profile = make_profile("spikingjelly_lif", decay_input=decay_input, v_reset=v_reset, detach_reset=detach_reset,
                           parametric=parametric, version=sj.profile_version)
    params = {"v_threshold": 1.0}
    params.update({"decay": ours.w.sigmoid()} if parametric else {"tau": tau})
    reference = block_neuron(x, profile, params, refractory_steps, backend="reference")
    assert bool(reference.spikes.any())
    _assert_same_forward(ours_out, (reference.spikes, reference.membrane), exact_membrane=True)
    assert torch.equal(ours.refractory, reference.state["refractory"])
    weights = _loss_weights(shape, dtype, seed)
    leaves = [x] + ([ours.w] if parametric else [])
    _assert_grads_close(_grads(ours_out, weights, leaves), _grads(reference[:2], weights, leaves))


def test_refractory_period_blocks_spikes_and_holds_v(sj):
    node = sj.multi_step(sj.adapter.BlockLIFNode(v_reset=-0.3, store_v_seq=True, refractory_steps=4))
    x = torch.full((40, 1, 3), 5.0)  # would spike every step without refractoriness
    spikes = node(x)
    assert bool((spikes[::5] == 1).all()) and int(spikes.sum()) == 8 * 3
    assert bool((node.v_seq[(spikes == 0)] == -0.3).all())  # held at v_reset while refractory


# =============================================================================================
# BlockALIFNode
# =============================================================================================
@HYPOTHESIS
@given(
    tau=st.floats(1.1, 8.0),
    tau_adapt=st.floats(1.5, 50.0),
    adaptation_strength=st.floats(0.0, 2.0),
    refractory_steps=st.integers(0, 5),
    dtype=st.sampled_from(DTYPES),
    mode=st.sampled_from(["m", "s"]),
    t=st.integers(1, 30),
    seed=st.integers(0, 2**16),
)
def test_alif_matches_the_paper_profile_reference(
    sj, tau, tau_adapt, adaptation_strength, refractory_steps, dtype, mode, t, seed
):
    shape = (t, 2, 4)
    node = sj.adapter.BlockALIFNode(tau=tau, tau_adapt=tau_adapt, adaptation_strength=adaptation_strength,
                                    store_v_seq=True, refractory_steps=refractory_steps)
    if mode == "m":
        sj.multi_step(node)
    x = _input(shape, dtype, seed, 0.5, 0.8, kick=3.0)
    ours_out = _run(node, x, mode)
    params = {"beta": 1.0 - 1.0 / tau, "threshold": 1.0, "adaptation_decay": 1.0 - 1.0 / tau_adapt,
              "adaptation_strength": adaptation_strength}
    profile = make_profile("paper", surrogate=sg.sigmoid(4.0))  # SpikingJelly's default Sigmoid(alpha=4)
    reference = block_neuron(x, profile, params, refractory_steps, backend="reference")
    assert bool(reference.spikes.any())
    _assert_same_forward(ours_out, (reference.spikes, reference.membrane), exact_membrane=True)
    assert torch.equal(node.a, reference.state["a"])
    weights = _loss_weights(shape, dtype, seed)
    _assert_grads_close(_grads(ours_out, weights, [x]), _grads(reference[:2], weights, [x]))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_alif_without_adaptation_is_a_detached_hard_reset_lif(sj, dtype):
    """adaptation_strength=0: LIFNode(tau, decay_input=False, v_reset=0., detach_reset=True) on tie-free input
    (0.0.0.0.14: the same arithmetic, v bitwise; 2.x charges V - V/tau + X, one rounding apart)."""
    tau = 3.0
    native = sj.neuron.LIFNode(tau=tau, decay_input=False, detach_reset=True, store_v_seq=True, step_mode="m")
    ours = sj.multi_step(sj.adapter.BlockALIFNode(tau=tau, adaptation_strength=0.0, store_v_seq=True))
    x = _input((37, 3, 17), dtype, 5, 0.35, 0.5)
    native_out = _run(native, x, "m")
    assert bool(native_out[0].any())
    # no ties (the charged H at the threshold), where > and >= would differ: H from the stored V, in double
    v_before = torch.cat([torch.zeros_like(native_out[1][:1]), native_out[1][:-1]]).detach().double()
    charged = v_before * (1.0 - 1.0 / tau) + x.detach().double()
    assert bool(((charged - 1.0).abs() > 1e-5).all())
    ours_out = _run(ours, x, "m")
    _assert_same_forward(ours_out, native_out, exact_membrane=sj.legacy)
    weights = _loss_weights(x.shape, dtype, 5)
    _assert_grads_close(_grads(ours_out, weights, [x]), _grads(native_out, weights, [x]))


# =============================================================================================
# surrogates
# =============================================================================================
def test_surrogate_mapping(sj):
    s = sj.surrogate
    sigmoid = sj.adapter.map_surrogate(s.Sigmoid(alpha=3.0))
    assert isinstance(sigmoid, sg.Surrogate) and (sigmoid.kind, sigmoid.args) == ("sigmoid", (3.0,))
    atan = sj.adapter.map_surrogate(s.ATan(alpha=1.5))
    assert (atan.kind, atan.args) == ("atan", (1.5,))
    if hasattr(s, "SuperSpike"):  # 2.x: alpha*g/(|x|+1)^2, the engine's superspike(1) only at alpha=1
        assert sj.adapter.map_surrogate(s.SuperSpike()).kind == "fast_sigmoid"
        assert sj.adapter.map_surrogate(s.SuperSpike(alpha=2.0)).kind == ""
    wrapped = sj.adapter.map_surrogate(s.SoftSign())
    assert isinstance(wrapped, sg.Surrogate) and wrapped.kind == ""
    margin = torch.linspace(-2, 2, 41, dtype=torch.float64)
    functions = [s.Sigmoid(alpha=3.0), s.ATan(alpha=1.5), s.SoftSign(), s.Erf(), s.PiecewiseQuadratic()]
    if hasattr(s, "SuperSpike"):
        functions += [s.SuperSpike(), s.SuperSpike(alpha=2.0)]
    for function in functions:
        m = margin.clone().requires_grad_()
        (native_grad,) = torch.autograd.grad(function(m).sum(), m)
        ours = sj.adapter.map_surrogate(function)
        torch.testing.assert_close(ours.derivative(margin), native_grad, rtol=1e-12, atol=1e-15)
        assert torch.equal(ours(margin, strict=False), function(margin))  # SpikingJelly's Heaviside is >=
    custom = lambda margin: (margin >= 0).to(margin)  # noqa: E731  a plain callable is used as is
    assert sj.adapter.map_surrogate(custom) is custom
    with pytest.raises(ValueError, match="spiking=True"):
        sj.adapter.map_surrogate(s.Sigmoid(spiking=False))
    with pytest.raises(TypeError, match="callable"):
        sj.adapter.map_surrogate(4.0)


def test_surrogate_with_trainable_parameters_is_called_as_is(sj):
    class LearnableSigmoid(torch.nn.Module):
        def __init__(self):
            super().__init__()
            self.alpha = torch.nn.Parameter(torch.tensor(4.0))

        def forward(self, x):
            soft = torch.sigmoid(self.alpha * x)
            return (x >= 0).to(x) + soft - soft.detach()  # Heaviside forward, sigmoid gradient to x and alpha

    function = LearnableSigmoid()
    assert sj.adapter.map_surrogate(function) is function
    native = sj.neuron.LIFNode(surrogate_function=LearnableSigmoid(), step_mode="m", store_v_seq=True)
    ours = sj.multi_step(sj.adapter.BlockLIFNode(surrogate_function=function, store_v_seq=True))
    x = _input((20, 2, 6), torch.float32, 3, 1.0, 1.0)
    native_out, ours_out = _run(native, x, "m"), _run(ours, x, "m")
    _assert_same_forward(ours_out, native_out, exact_membrane=True)
    weights = _loss_weights(x.shape, x.dtype, 3)
    _assert_grads_close(
        _grads(ours_out, weights, [x, function.alpha]),
        _grads(native_out, weights, [x, native.surrogate_function.alpha]),
    )


# =============================================================================================
# networks: step mode / backend, engine dispatch, memories, convert
# =============================================================================================
def _count_engine_calls(sj, monkeypatch):
    calls = []
    common = sys.modules[ADAPTER + "._common"]
    real = common.block_neuron

    def counting(*args, **kwargs):
        calls.append(args[0].shape)
        return real(*args, **kwargs)

    monkeypatch.setattr(common, "block_neuron", counting)
    return calls


def test_whole_network_switch_runs_the_engine(sj, monkeypatch):
    calls = _count_engine_calls(sj, monkeypatch)
    net = torch.nn.Sequential(
        sj.layer.Linear(6, 5), sj.adapter.BlockLIFNode(), sj.layer.Linear(5, 4), sj.neuron.LIFNode(),
        sj.adapter.BlockParametricLIFNode(), sj.adapter.BlockALIFNode(),
    )
    sj.functional.set_step_mode(net, "m")
    if sj.legacy:
        # 0.0.0.0.14: the stock backend until set_backend(net, 'block'); stock nodes keep 'torch'
        net(torch.randn(8, 2, 6))
        assert len(calls) == 1  # only BlockALIFNode, which has no stock implementation
        sj.functional.set_backend(net, "block")
        assert [m.backend for m in net if hasattr(m, "backend") and isinstance(m, sj.neuron.BaseNode)] == [
            "block", "torch", "block", "block"]  # fmt: skip
        with pytest.raises(NotImplementedError, match="step_mode='m'"):
            sj.adapter.BlockLIFNode(step_mode="s", backend="block")
        assert sj.adapter.BlockALIFNode(step_mode="m", backend="block").backend == "block"
        sj.functional.set_backend(net, "torch")  # and back: our nodes accept the stock backends too
        assert net[1].backend == "torch"
        sj.functional.set_backend(net, "block")
        with pytest.raises(NotImplementedError):
            sj.adapter.BlockLIFNode(step_mode="m", backend="no-such-backend")
    else:
        # 2.x has no backend selector: our nodes always run the engine in multi-step mode
        assert not hasattr(sj.functional, "set_backend")
        with pytest.raises(TypeError):
            sj.adapter.BlockLIFNode(backend="block")
    calls.clear()
    x = torch.randn(8, 2, 6)
    net(x)
    assert calls == [torch.Size([8, 2, 5]), torch.Size([8, 2, 4]), torch.Size([8, 2, 4])]


def test_reset_net_resets_all_memories_and_state_carries_between_calls(sj):
    nodes = [
        sj.adapter.BlockLIFNode(v_reset=None, refractory_steps=3),
        sj.adapter.BlockParametricLIFNode(refractory_steps=2),
        sj.adapter.BlockALIFNode(adaptation_strength=0.5, refractory_steps=1),
    ]
    x = _input((30, 2, 5), torch.float32, 1, 0.9, 1.0).detach()
    for node in nodes:
        sj.multi_step(node)
        whole = node(x)
        sj.functional.reset_net(node)
        assert isinstance(node.v, float) and node.refractory == 0 and (not node.adaptive or node.a == 0.0)
        first = node(x[:11])
        assert isinstance(node.refractory, torch.Tensor)
        second = node(x[11:])
        assert torch.equal(torch.cat([first, second]), whole)  # v, a and the countdown carried over
        sj.functional.reset_net(node)
        sj.functional.set_step_mode(node, "s")
        stepped = torch.stack([node(xt) for xt in x])  # single-step mode, same memories
        assert torch.equal(stepped, whole)


def test_state_shape_change_without_reset(sj):
    node = sj.multi_step(sj.adapter.BlockLIFNode())
    node(torch.randn(5, 2, 3))
    if sj.legacy:  # 0.0.0.0.14 keeps v: a clear error instead of a silent broadcast
        with pytest.raises(ValueError, match="reset_net"):
            node(torch.randn(5, 4, 3))
    else:  # 2.x starts from a fresh state, as its stock nodes do
        native = sj.neuron.LIFNode(step_mode="m")
        native(torch.randn(5, 2, 3))
        x = torch.randn(5, 4, 3) + 1.0
        assert torch.equal(node(x), native(x))


def test_convert_and_unconvert(sj):
    torch.manual_seed(0)
    inner = sj.neuron.LIFNode(tau=3.0, v_reset=None, detach_reset=True)
    net = torch.nn.Sequential(
        sj.layer.Linear(6, 5),
        torch.nn.Sequential(inner, sj.layer.Linear(5, 5)),
        sj.neuron.ParametricLIFNode(init_tau=4.0, decay_input=False, surrogate_function=sj.surrogate.ATan()),
    )
    sj.functional.set_step_mode(net, "m")
    x = torch.randn(12, 3, 6) + 0.8
    expected = net(x)
    sj.functional.reset_net(net)  # 2.x caches the resettable modules: convert must invalidate that cache
    stock_modules = list(net.modules())  # alive, so a stale cache would still resolve (to them)
    w = net[2].w
    optimizer = torch.optim.SGD(net.parameters(), lr=0.1)
    converted = sj.adapter.convert(net, refractory_steps=0)
    assert converted is net
    assert type(net[1][0]) is sj.adapter.BlockLIFNode
    assert type(net[2]) is sj.adapter.BlockParametricLIFNode and net[2].w is w
    assert (net[1][0].tau, net[1][0].v_reset, net[1][0].detach_reset, net[1][0].step_mode) == (3.0, None, True, "m")
    assert isinstance(net[2].surrogate_function, sj.surrogate.ATan) and not net[2].decay_input
    sj.multi_step(net[1][0]), sj.multi_step(net[2])
    assert torch.equal(net(x), expected)
    net(x).sum().backward()
    optimizer.step()  # the optimizer built before convert still owns w
    assert w.grad is not None
    sj.functional.reset_net(net)
    # a stale reset cache (2.x) would reset the replaced stock nodes instead of ours
    assert isinstance(net[1][0].v, float) and isinstance(net[2].v, float)
    assert "refractory" not in dict(net[1][0].named_memories())  # R = 0: the stock memories only
    assert inner in stock_modules
    reverted = sj.adapter.unconvert(net)
    assert type(reverted[1][0]) is sj.neuron.LIFNode and type(reverted[2]) is sj.neuron.ParametricLIFNode
    assert reverted[2].w is w
    assert set(sj.adapter.BlockParametricLIFNode().state_dict()) == set(sj.neuron.ParametricLIFNode().state_dict())
    assert sj.adapter.convert(sj.neuron.LIFNode(), refractory_steps=2).refractory_steps == 2  # a bare node
    mixed = torch.nn.Sequential(sj.adapter.BlockLIFNode(), sj.adapter.BlockLIFNode(refractory_steps=2))
    with pytest.raises(ValueError, match="no refractory period"):
        sj.adapter.unconvert(mixed)
    assert type(mixed[0]) is sj.adapter.BlockLIFNode  # nothing swapped
    with pytest.raises(ValueError):
        sj.adapter.convert(net, refractory_steps=-1)
    shared = sj.neuron.LIFNode()
    pair = sj.adapter.convert(torch.nn.ModuleList([shared, shared]))
    assert type(pair[0]) is sj.adapter.BlockLIFNode and pair[0] is pair[1]  # a shared module stays shared


def test_float64_and_parameter_dtype(sj):
    native, ours = _node_pair(sj, True, 2.0, torch.float64, step_mode="m", store_v_seq=True)
    sj.multi_step(ours)
    x = _input((20, 2, 4), torch.float64, 0, 1.0, 1.0)
    _assert_same_forward(_run(ours, x, "m"), _run(native, x, "m"), exact_membrane=True)
    assert ours.v.dtype == torch.float64


# =============================================================================================
# a training loop in SpikingJelly's tutorial style
# =============================================================================================
@pytest.mark.parametrize("mode", ["m", "s"])
def test_training_loop_gives_the_same_losses(sj, mode):
    """Linear + LIF(ATan) on Poisson-encoded input, MSE on firing rates, Adam, reset_net after each batch (the
    SpikingJelly MNIST tutorial's loop, on random data): stock and block nodes give the same losses."""
    T, features, classes = 8, 20, 4
    g = torch.Generator().manual_seed(0)
    images = torch.rand(5, 16, features, generator=g)
    labels = torch.randint(0, classes, (5, 16), generator=g)
    encode = torch.rand(5, T, 16, features, generator=g)

    def make_net():
        torch.manual_seed(1)
        net = torch.nn.Sequential(
            sj.layer.Linear(features, 12), sj.neuron.LIFNode(tau=2.0, surrogate_function=sj.surrogate.ATan()),
            sj.layer.Linear(12, classes), sj.neuron.ParametricLIFNode(surrogate_function=sj.surrogate.ATan()),
        )
        with torch.no_grad():  # larger weights than the default init, so that both layers spike from the start
            net[0].weight.mul_(5.0)
            net[2].weight.mul_(4.0)
        return net

    def train(net):
        optimizer = torch.optim.Adam(net.parameters(), lr=1e-2)
        losses = []
        for batch in range(5):
            spikes_in = (encode[batch] < images[batch]).float()  # Poisson encoder, time-first
            target = torch.nn.functional.one_hot(labels[batch], classes).float()
            if mode == "m":
                rate = net(spikes_in).mean(0)
            else:
                rate = sum(net(spikes_in[t]) for t in range(T)) / T
            loss = torch.nn.functional.mse_loss(rate, target)
            optimizer.zero_grad()
            loss.backward()
            optimizer.step()
            sj.functional.reset_net(net)
            losses.append(loss.item())
        return losses

    stock = make_net()
    block = sj.adapter.convert(make_net())
    assert type(block[1]) is sj.adapter.BlockLIFNode and type(block[3]) is sj.adapter.BlockParametricLIFNode
    if mode == "m":
        sj.functional.set_step_mode(stock, "m")
        sj.functional.set_step_mode(block, "m")
        if sj.legacy:
            sj.functional.set_backend(block, "block")
    stock_losses, block_losses = train(stock), train(block)
    assert len(set(stock_losses)) == len(stock_losses)  # it trained (and the output layer spiked)
    torch.testing.assert_close(block_losses, stock_losses, rtol=1e-5, atol=1e-7)


# =============================================================================================
# bad input
# =============================================================================================
@pytest.mark.parametrize(
    "kwargs, error",
    [
        ({"tau": 2}, TypeError),  # SpikingJelly asserts a float
        ({"tau": 1.0}, ValueError),
        ({"v_threshold": 1}, TypeError),
        ({"v_reset": "0"}, TypeError),
        ({"detach_reset": 1}, TypeError),
        ({"refractory_steps": -1}, ValueError),
        ({"refractory_steps": 1.5}, TypeError),
        ({"refractory_steps": True}, TypeError),
    ],
)
def test_bad_constructor_arguments(sj, kwargs, error):
    with pytest.raises(error):
        sj.adapter.BlockLIFNode(**kwargs)


def test_bad_alif_arguments(sj):
    with pytest.raises(ValueError, match="tau_adapt"):
        sj.adapter.BlockALIFNode(tau_adapt=0.5)
    with pytest.raises(ValueError, match="adaptation_strength"):
        sj.adapter.BlockALIFNode(adaptation_strength=-1.0)
    with pytest.raises(ValueError, match="v_threshold"):
        sj.adapter.BlockALIFNode(v_threshold=-1.0)


def test_bad_input(sj):
    node = sj.multi_step(sj.adapter.BlockLIFNode(refractory_steps=2))
    with pytest.raises(TypeError, match="floating-point"):
        node(torch.ones(4, 2, 3, dtype=torch.long))
    sj.functional.reset_net(node)
    bad = torch.ones(4, 2, 3)
    bad[1, 0, 0] = float("nan")
    with pytest.raises(ValueError, match="NaN"):
        node(bad)
    sj.functional.reset_net(node)
    with pytest.raises(ValueError, match=r"\[T, N, \*\]"):
        node(torch.ones(4))
    with pytest.raises(ValueError, match="no time steps"):
        node(torch.ones(0, 2, 3))
    single = sj.adapter.BlockALIFNode()
    with pytest.raises(ValueError, match="0-dim"):
        single(torch.tensor(1.0))
