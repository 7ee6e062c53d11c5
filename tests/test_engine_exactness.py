"""Property tests: every provider equals the sequential reference, bit for bit forward, BPTT backward."""

from __future__ import annotations

import contextlib
import os

import pytest
import torch
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from snn_blockbackend import block_neuron, make_profile, plugins
from snn_blockbackend.functional import check_params

# (profile name, options, parameter ranges (low, high) or fixed values, input scale, input offset)
CONFIGS = [
    ("paper_lif", {}, {"beta": (0.5, 1.0), "threshold": (0.5, 1.5)}, 0.6, 0.4),
    ("paper", {}, {"beta": (0.5, 1.0), "threshold": (0.5, 1.5), "adaptation_decay": (0.5, 0.99),
                   "adaptation_strength": (0.05, 1.0)}, 0.6, 0.4),
    ("snntorch_leaky", {}, {"beta": (0.5, 1.0), "threshold": (0.5, 1.5), "graded_spikes_factor": (0.5, 2.0)}, 0.6, 0.4),
    ("snntorch_leaky", {"reset_mechanism": "zero"}, {"beta": (0.5, 1.0), "threshold": (0.5, 1.5)}, 0.6, 0.4),
    ("snntorch_leaky", {"reset_mechanism": "none"}, {"beta": (0.5, 0.95), "threshold": (0.5, 1.5)}, 0.6, 0.2),
    ("snntorch_leaky", {"reset_delay": False}, {"beta": (0.5, 1.0), "threshold": (0.5, 1.5)}, 0.6, 0.4),
    ("spikingjelly_lif", {}, {"tau": (1.2, 4.0), "v_threshold": (0.5, 1.5)}, 1.0, 0.8),
    ("spikingjelly_lif", {"v_reset": None, "detach_reset": True, "decay_input": False}, {"tau": (1.2, 4.0)}, 0.6, 0.4),
    ("norse_lif_box", {}, {"tau_mem_inv": (50.0, 200.0)}, 300.0, 200.0),
    ("norse_lif", {}, {"tau_mem_inv": (50.0, 200.0), "tau_syn_inv": (100.0, 300.0)}, 300.0, 200.0),
    ("norse_lif", {"version": "1.0"}, {"tau_mem_inv": (50.0, 200.0)}, 300.0, 200.0),
    ("norse_lsnn", {}, {"tau_mem_inv": (50.0, 200.0), "beta": (0.5, 2.0)}, 300.0, 200.0),
    # profiles and options without a hand-written kernel: only the generated kernels (kernels.emit_*) run them
    ("snntorch_leaky", {"reset_mechanism": "zero", "reset_delay": False}, {"beta": (0.5, 1.0), "graded_spikes_factor": (0.5, 2.0)}, 0.6, 0.4),
    ("spikingjelly_lif", {"parametric": True, "decay_input": False, "v_reset": -0.1}, {"decay": (0.2, 0.8)}, 1.0, 0.8),
    ("spikingjelly_lif", {"version": "0.0.0.0.14", "decay_input": False}, {"tau": (1.2, 4.0)}, 1.0, 0.8),
    ("norse_lif_box", {"reset_method": "subtract"}, {"tau_mem_inv": (50.0, 200.0), "v_leak": (-0.2, 0.2)}, 300.0, 200.0),
    ("norse_lif_refrac", {}, {"tau_mem_inv": (50.0, 200.0), "rho_reset": (1.0, 5.0)}, 300.0, 200.0),
]
CONFIG_IDS = [f"{name}{'-' + '-'.join(f'{k}={v}' for k, v in opts.items()) if opts else ''}" for name, opts, *_ in CONFIGS]
FAST_PROVIDERS = [name for name in ("torch", "numba", "triton") if name in plugins.providers()]
GENERATED = "+generated"  # a backend name suffix: the provider's generated kernels, where it has hand-written ones too


def _variants(backend, profile):
    """The backend, and its generated kernels too where it prefers a hand-written family for ``profile``."""
    provider = plugins.providers()[backend]
    hand_written = getattr(provider, "hand_written", None)
    return [backend, backend + GENERATED] if hand_written is not None and hand_written(profile) else [backend]


# every (profile configuration, provider) pair the provider accepts on CPU tensors (Triton's on CPU only in its
# interpreter, see conftest.py): numba and Triton run every profile, hand-written and generated kernels both
CASES = [
    pytest.param(config, variant, id=f"{config_id}-{variant}")
    for config, config_id in zip(CONFIGS, CONFIG_IDS)
    for backend in FAST_PROVIDERS
    if plugins.providers()[backend].supports(make_profile(config[0], **config[1]), torch.device("cpu"), "exact") is None
    for variant in _variants(backend, make_profile(config[0], **config[1]))
]


# Triton's interpreter takes ~15 ms per time step (forward + backward): its properties draw shorter sequences
MAX_REFRACTORY = {"triton": 10, "triton" + GENERATED: 10}


@st.composite
def problems(draw, config, max_refractory=50, dtypes=(torch.float32, torch.float64), param_dtype=None):
    """(profile, params, R, x): parameters in x's dtype, or in ``param_dtype`` (mixed dtypes) where given."""
    name, options, ranges, scale, offset = config
    if name == "norse_lif_refrac":
        max_refractory = 0  # its refractory period is its own counter (rho_reset), never the engine's
    R = draw(st.integers(0, max_refractory))
    L = R + 1
    T = draw(st.integers(0, 3)) * L + draw(st.integers(1, max(L - 1, 1)))  # T not divisible by L (if L > 1)
    neuron_shape = tuple(draw(st.lists(st.integers(1, 6), min_size=1, max_size=2)))
    batch = draw(st.integers(1, 3))
    dtype = draw(st.sampled_from(list(dtypes)))
    seed = draw(st.integers(0, 2**31 - 1))
    per_neuron = draw(st.booleans())
    gen = torch.Generator().manual_seed(seed)
    x = torch.randn((T, batch, *neuron_shape), generator=gen, dtype=dtype) * scale + offset
    params = {}
    for pname, (low, high) in ranges.items():
        shape = neuron_shape if per_neuron else ()
        params[pname] = (low + (high - low) * torch.rand(shape, generator=gen, dtype=torch.float64)).to(param_dtype or dtype)
    return make_profile(name, **options), params, R, x


@st.composite
def initial_states(draw, profile, params, R, x, dtype=None, always=False):
    """None (the profile's own initial state), or a random one: every state variable random (adaptation
    non-negative), in ``dtype`` (default x's), and a refractory countdown in [0, R], independent of the membrane
    (a neuron may start mid-refractory below threshold, or live above it). ``always``: never None."""
    if not always and not draw(st.booleans()):
        return None
    gen = torch.Generator().manual_seed(draw(st.integers(0, 2**31 - 1)))
    default = profile.initial_state(profile.prepare(check_params(profile, params, x)), x[0])
    state = {}
    for name, value in default.items():
        shape, dtype = x.shape[1:], dtype or x.dtype
        if name == "refractory":
            state[name] = torch.randint(0, R + 1, shape, generator=gen)
        else:
            random = torch.randn(shape, generator=gen, dtype=torch.float64).to(dtype)
            state[name] = random.abs() if name == "a" else random
    if "refractory" not in state:
        state["refractory"] = torch.randint(0, R + 1, x.shape[1:], generator=gen)
    return state


@contextlib.contextmanager
def _kernels_of(backend):
    """``backend`` without the GENERATED suffix, with the generated kernels forced while it carries one."""
    if not backend.endswith(GENERATED):
        yield backend
        return
    saved = os.environ.get("SNN_BLOCKBACKEND_GENERATED_KERNELS")
    os.environ["SNN_BLOCKBACKEND_GENERATED_KERNELS"] = "1"
    try:
        yield backend.removesuffix(GENERATED)
    finally:
        if saved is None:
            del os.environ["SNN_BLOCKBACKEND_GENERATED_KERNELS"]
        else:
            os.environ["SNN_BLOCKBACKEND_GENERATED_KERNELS"] = saved


def _run(profile, params, R, x, backend, state=None):
    x = x.clone().requires_grad_()
    params = {k: v.clone().requires_grad_() for k, v in params.items()}
    with _kernels_of(backend) as name:
        result = block_neuron(x, profile, params, R, backend=name, state=state)
    weights = torch.linspace(-1, 1, x.numel(), dtype=x.dtype).view(x.shape)
    loss = (result.spikes * weights).sum() + (result.membrane * weights.flip(0)).sum()
    loss.backward()
    grads = {"x": x.grad, **{k: v.grad for k, v in params.items()}}
    return result, grads


HALF = [torch.float16, torch.bfloat16]
HALF_GRAD_RTOL = {torch.float16: 2e-2, torch.bfloat16: 1e-1}  # a few units of the dtype's last place


def _assert_grads_close(ref, got, dtype):
    rtol = HALF_GRAD_RTOL.get(dtype) or (1e-5 if dtype == torch.float32 else 1e-9)
    # Summation order differs between BPTT and a hand-written recurrence, so errors are relative to the size
    # of the summed terms, not of the sum: a parameter gradient is a sum over all steps and neurons of terms
    # as large as the per-step (input) gradients and can cancel to far less (seen: threshold grad -5.9e-4 from
    # terms of +-0.43, where the fp32 reference itself is off by 3e-8). So the scale is the largest gradient.
    scale = max((float(g[g.isfinite()].abs().max()) for g in ref.values() if g is not None and bool(g.isfinite().any())),
                default=0.0)  # fmt: skip
    for name, g_ref in ref.items():
        g_got = got[name]
        if g_ref is None:
            assert g_got is None or not g_got.any(), name
            continue
        # a gradient stored in half precision is rounded to its grid: near zero that is the smallest subnormal
        quantum = torch.finfo(dtype).smallest_normal * torch.finfo(dtype).eps if dtype in HALF else 0.0
        atol = max(rtol * max(scale, 1e-12), 2 * quantum)
        # a NaN where the reference has one agrees with it: float16 autograd overflows in a sum over steps
        # (a Norse tau_mem_inv gradient, NaN in the reference, -164.6 in float64), and the torch provider's
        # gradients are that autograd's
        torch.testing.assert_close(g_got.to(g_ref.dtype), g_ref, rtol=rtol, atol=atol, equal_nan=True,
                                   msg=lambda m, name=name: f"{name}: {m}")


def _assert_half_grads_close(run, ref, ref_grads, got_grads, dtype):
    """Half-precision gradients. The reference's autograd rounds every gradient operation to the half dtype,
    its sums over steps included; the kernels accumulate in float64. They agree to the dtype's tolerance
    except where the reference's sums lose their digits: a bfloat16 sum of a hundred steps' terms drops terms
    below half an ulp of the running sum (seen: a SpikingJelly ``v_threshold`` gradient of 3.78 from bfloat16
    autograd, -1.6 from the kernels), a float16 one cancels or underflows (a Norse ``tau_mem_inv`` gradient of
    -0.0233 in float16 autograd, -0.0066 in float64 and from the kernels). There the kernels must agree with the
    reference run in float64 (``run(dtype)``: the reference on the same inputs in ``dtype``) where float64 fires
    the same spikes; where it does not, only the per-element input gradients remain comparable with the half
    reference, and are compared."""
    try:
        _assert_grads_close(ref_grads, got_grads, dtype)
        return
    except AssertionError:
        wide, wide_grads = run(torch.float64)
    if torch.equal(wide.spikes, ref.spikes.double()):
        _assert_grads_close(wide_grads, got_grads, dtype)
    else:
        _assert_grads_close({"x": ref_grads["x"]}, {"x": got_grads["x"]}, dtype)
        event("half precision: parameter gradients below the reference's own accumulation error")


def _check(config, backend, data, device="cpu", dtypes=(torch.float32, torch.float64), max_refractory=None):
    max_refractory = max_refractory if max_refractory is not None else MAX_REFRACTORY.get(backend, 50)
    profile, params, R, x = data.draw(problems(config, max_refractory, dtypes))
    state = data.draw(initial_states(profile, params, R, x))
    if device != "cpu":  # the reference runs on the same device: bitwise equality is per device
        x, params = x.to(device), {k: v.to(device) for k, v in params.items()}
        state = {k: v.to(device) for k, v in state.items()} if state is not None else None
    ref, ref_grads = _run(profile, params, R, x, "reference", state)
    got, got_grads = _run(profile, params, R, x, backend, state)
    assert torch.equal(got.spikes, ref.spikes)
    assert torch.equal(got.membrane, ref.membrane)
    assert got.state.keys() == ref.state.keys()
    for key in ref.state:
        assert torch.equal(got.state[key], ref.state[key]), key
    if x.dtype in HALF:
        _assert_half_grads_close(_widened(profile, params, R, x, state), ref, ref_grads, got_grads, x.dtype)
    else:
        _assert_grads_close(ref_grads, got_grads, x.dtype)


def _widened(profile, params, R, x, state):
    """``run(dtype)``: the reference on these inputs, every floating tensor converted to ``dtype``."""

    def convert(t, dtype):
        return t.to(dtype) if t.is_floating_point() else t

    def run(dtype):
        wide_state = {k: convert(v, dtype) for k, v in state.items()} if state is not None else None
        return _run(profile, {k: convert(v, dtype) for k, v in params.items()}, R, convert(x, dtype), "reference", wide_state)

    return run


@pytest.mark.parametrize(("config", "backend"), CASES)
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_provider_equals_reference(config, backend, data):
    _check(config, backend, data)


@pytest.mark.slow
@pytest.mark.parametrize(("config", "backend"), CASES)
@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_provider_equals_reference_deep(config, backend, data):
    _check(config, backend, data)


# half precision: the torch provider computes in the storage dtype; the generated kernels (numba, Triton) compute
# each operation in float32 and round it to the half dtype, as PyTorch's CPU kernels do. Each (configuration,
# dtype) is a numba kernel compiled for the test (~7-16 s on 2 cores), and Triton's interpreter takes ~15 ms a
# step: the default run takes nine cases of each (FAST_KERNEL_HALF), `make test-slow` every configuration in every
# dtype situation.
HALF_BACKENDS = [name for name in ("torch", "numba", "triton") if name in plugins.providers()]
KERNEL_BACKENDS = [name for name in ("numba", "triton") if name in plugins.providers()]
FIRST_OF_EACH_PROFILE = {name: (name, options) for name, options, *_ in reversed(CONFIGS)}
# the default run (make test's time budget): every profile as autocast gives it (bfloat16 input, 0-dim float32
# parameters; Norse LIF also with its float32 state), float16 with half-precision parameters for one profile
FAST_KERNEL_HALF = {
    *((name, torch.bfloat16, "float32-params") for name in ("paper", "paper_lif", "snntorch_leaky", "spikingjelly_lif",
                                                            "norse_lif_box", "norse_lif_refrac", "norse_lsnn")),
    ("norse_lif", torch.bfloat16, "float32-state"), ("paper_lif", torch.float16, "half-params"),
}  # fmt: skip


def _kernel_half_marks(config, dtype, situation):
    """Slow unless the case is in FAST_KERNEL_HALF (each profile's first configuration)."""
    first = FIRST_OF_EACH_PROFILE[config[0]] == (config[0], config[1])
    fast = first and (config[0], dtype, situation) in FAST_KERNEL_HALF
    return () if fast else (pytest.mark.slow,)


HALF_CASES = [
    pytest.param(config, dtype, backend, id=f"{config_id}-{str(dtype).replace('torch.', '')}-{backend}",
                 marks=_kernel_half_marks(config, dtype, "half-params") if backend != "torch" else ())
    for config, config_id in zip(CONFIGS, CONFIG_IDS)
    for dtype in HALF
    for backend in HALF_BACKENDS
]  # fmt: skip


@pytest.mark.parametrize(("config", "dtype", "backend"), HALF_CASES)
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_half_precision_equals_reference(config, dtype, backend, data):
    """float16/bfloat16 (parameters too): spikes, membranes and final state bitwise equal to the reference in
    that dtype; gradients as ``_assert_half_grads_close`` says."""
    _check(config, backend, data, dtypes=(dtype,))


# mixed precision as the frameworks meet it under autocast: half-precision input (a Linear's output) with float32
# parameters (Python floats become 0-dim float32 tensors) and a state in the input's dtype (SpikingJelly); and a
# float32 state, with per-neuron float32 parameters or not, as Norse keeps it
MIXED_CASES = [
    pytest.param(config, dtype, situation, backend,
                 id=f"{config_id}-{str(dtype).replace('torch.', '')}-{situation}-{backend}",
                 marks=_kernel_half_marks(config, dtype, situation))
    for config, config_id in zip(CONFIGS, CONFIG_IDS)
    for dtype in HALF
    for situation in ("float32-params", "float32-state")
    for backend in KERNEL_BACKENDS
]  # fmt: skip


@pytest.mark.skipif(not KERNEL_BACKENDS, reason="neither numba nor Triton is installed (extras [numba], [triton])")
@pytest.mark.parametrize(("config", "dtype", "situation", "backend"), MIXED_CASES or [(None,) * 4])
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_mixed_precision_equals_reference(config, dtype, situation, backend, data):
    """Half-precision input, float32 parameters (0-dim: the results stay half precision, PyTorch reading the
    float32 value as the second operand of a product or quotient and rounding it to the half dtype elsewhere;
    per-neuron, with a float32 state: everything they touch promotes to float32): the generated kernels equal
    the reference bitwise, and return the reference's dtypes."""
    _check_mixed(config, dtype, situation, backend, data)


def _check_mixed(config, dtype, situation, backend, data, device="cpu"):
    profile, params, R, x = data.draw(problems(config, MAX_REFRACTORY.get(backend, 20), (dtype,), param_dtype=torch.float32))
    if situation == "float32-state":
        state = data.draw(initial_states(profile, params, R, x, torch.float32, always=True))
    else:
        params = {name: p.flatten()[0] for name, p in params.items()}  # 0-dim, as Python floats become
        state = data.draw(initial_states(profile, params, R, x))
    x, params = x.to(device), {k: v.to(device) for k, v in params.items()}
    state = {k: v.to(device) for k, v in state.items()} if state is not None else None
    ref, ref_grads = _run(profile, params, R, x, "reference", state)
    got, got_grads = _run(profile, params, R, x, backend, state)
    assert got.spikes.dtype == ref.spikes.dtype and got.membrane.dtype == ref.membrane.dtype
    assert torch.equal(got.spikes, ref.spikes)
    assert torch.equal(got.membrane, ref.membrane)
    for key in ref.state:
        assert got.state[key].dtype == ref.state[key].dtype and torch.equal(got.state[key], ref.state[key]), key
    _assert_half_grads_close(_widened(profile, params, R, x, state), ref, ref_grads, got_grads, x.dtype)


@pytest.mark.skipif(len(KERNEL_BACKENDS) < 2, reason="needs numba and Triton both (extras [numba], [triton])")
@pytest.mark.parametrize(("name", "dtype", "situation"), sorted(FAST_KERNEL_HALF, key=str))
def test_half_precision_gradients_agree_between_the_kernel_targets(name, dtype, situation):
    """The reference's half-precision autograd rounds every gradient operation, so the properties above can only
    hold half-precision gradients to the dtype's tolerance. The two generated targets run the same adjoint in
    float64 and round once when they store: their gradients agree to within a unit in the last place of the
    stored dtype (a check of the Triton kernels' half-precision loads, stores and offsets at float64 precision)."""
    _, options, ranges, scale, offset = next(c for c in CONFIGS if c[0] == name)  # its first configuration
    profile = make_profile(name, **options)
    gen = torch.Generator().manual_seed(11)
    x = (torch.randn(23, 2, 7, generator=gen, dtype=torch.float64) * scale + offset).to(dtype)
    param_dtype = dtype if situation == "half-params" else torch.float32
    params = {k: (lo + (hi - lo) * torch.rand((), generator=gen, dtype=torch.float64)).to(param_dtype)
              for k, (lo, hi) in ranges.items()}  # fmt: skip
    state = None
    if situation == "float32-state":
        default = profile.initial_state(profile.prepare(check_params(profile, params, x)), x[0])
        state = {k: torch.randn(x.shape[1:], generator=gen).abs() for k in default if k != "refractory"}
        state["refractory"] = torch.randint(0, 4, x.shape[1:], generator=gen)
    (nb, nb_grads), (tr, tr_grads) = (_run(profile, params, 3, x, backend, state) for backend in ("numba", "triton"))
    assert torch.equal(nb.spikes, tr.spikes) and torch.equal(nb.membrane, tr.membrane) and bool(nb.spikes.any())
    for key, g in nb_grads.items():
        ulp = torch.finfo(g.dtype).eps
        torch.testing.assert_close(tr_grads[key], g, rtol=ulp, atol=ulp * float(g.abs().max()), msg=key)


@pytest.mark.parametrize("backend", KERNEL_BACKENDS)
def test_kernels_refuse_a_state_that_changes_dtype(backend):
    """Half-precision state with a per-neuron float32 parameter turns float32 after one step (PyTorch promotes
    it); a kernel keeps each state variable in one dtype, so the generated kernels refuse, saying why, and
    "auto" runs the torch provider, equal to the reference."""
    x = (torch.randn(9, 2, 3) + 0.5).to(torch.bfloat16)
    params = {"beta": torch.full((3,), 0.9)}
    with pytest.raises(ValueError, match="turns from bfloat16 into float32"):
        block_neuron(x, "paper_lif", params, 1, backend=backend)
    ref = block_neuron(x, "paper_lif", params, 1, backend="reference")
    got = block_neuron(x, "paper_lif", params, 1)
    assert torch.equal(got.spikes, ref.spikes) and torch.equal(got.membrane, ref.membrane)


@pytest.mark.parametrize("dtype", HALF)
def test_mixed_dtypes_promote_like_pytorch(dtype):
    """Parameters of another dtype are not cast: a 0-dim float32 beta keeps half input in the half dtype, a
    per-neuron one promotes it to float32 (PyTorch's promotion, op by op), on every provider that accepts them."""
    x = (torch.randn(12, 2, 3) + 0.5).to(dtype)
    for beta, expected in ((torch.tensor(0.9), dtype), (torch.full((3,), 0.9), torch.float32)):
        ref = block_neuron(x, "paper_lif", {"beta": beta}, 2, backend="reference")
        got = block_neuron(x, "paper_lif", {"beta": beta}, 2)
        assert ref.spikes.dtype == ref.membrane.dtype == expected
        assert torch.equal(got.spikes, ref.spikes) and torch.equal(got.membrane, ref.membrane)
        # what PyTorch itself computes for the first step: beta * 0 + x (where it did not spike and reset)
        silent = ref.spikes[0] == 0
        assert torch.equal(ref.membrane[0][silent], (beta * torch.zeros_like(x[0]) + x[0])[silent])


# The same properties on an accelerator (``make gpu-check`` runs them first on a GPU machine): every profile on
# every provider that runs there, against the reference on the same device. $SNN_BLOCKBACKEND_CHECK_DEVICE picks
# the device (default cuda; the gpu-check dry run sets cpu so the selection cannot rot).
CHECK_DEVICE = torch.device(os.environ.get("SNN_BLOCKBACKEND_CHECK_DEVICE", "cuda"))
ON_DEVICE = [
    pytest.param(config, variant, id=f"{config_id}-{variant}")
    for config, config_id in zip(CONFIGS, CONFIG_IDS)
    for backend in ("torch", "triton")
    if (CHECK_DEVICE.type != "cuda" or torch.cuda.is_available()) and backend in plugins.providers()
    and plugins.providers()[backend].supports(make_profile(config[0], **config[1]), CHECK_DEVICE, "exact") is None
    for variant in _variants(backend, make_profile(config[0], **config[1]))
]


@pytest.mark.skipif(not ON_DEVICE, reason=f"needs a {CHECK_DEVICE.type} device with a provider for it (without a "
                    "GPU the same kernels are checked on CPU, Triton's in its interpreter, by test_provider_equals_reference)")
@pytest.mark.parametrize(("config", "backend"), ON_DEVICE or [(None, None)])
@settings(max_examples=int(os.environ.get("SNN_BLOCKBACKEND_CHECK_EXAMPLES", "50")), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_provider_on_device_equals_reference(config, backend, data):
    _check(config, backend, data, device=str(CHECK_DEVICE))


# half precision on the device: the generated Triton kernels round by PyTorch's CPU rules (what the interpreter
# checks above); this is where a GPU shows whether PyTorch's CUDA kernels round the same way, operands of mixed
# dtypes (autocast's float32 parameters) included
ON_DEVICE_HALF = [
    pytest.param(config, dtype, situation, backend, id=f"{config_id}-{str(dtype).replace('torch.', '')}-{situation}-{backend}")
    for config, config_id in zip(CONFIGS, CONFIG_IDS)
    for backend in ("torch", "triton")
    if (CHECK_DEVICE.type != "cuda" or torch.cuda.is_available()) and backend in plugins.providers()
    and plugins.providers()[backend].supports(make_profile(config[0], **config[1]), CHECK_DEVICE, "exact") is None
    for dtype in HALF
    for situation in ("half-params", "float32-params")
]  # fmt: skip


@pytest.mark.skipif(not ON_DEVICE_HALF, reason=f"needs a {CHECK_DEVICE.type} device with a provider for it (without a "
                    "GPU the same kernels are checked on CPU by test_half_precision_equals_reference)")
@pytest.mark.parametrize(("config", "dtype", "situation", "backend"), ON_DEVICE_HALF or [(None,) * 4])
@settings(max_examples=max(1, int(os.environ.get("SNN_BLOCKBACKEND_CHECK_EXAMPLES", "50")) // 10), deadline=None,
          suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_half_precision_on_device_equals_reference(config, dtype, situation, backend, data):
    if situation == "half-params":
        _check(config, backend, data, device=str(CHECK_DEVICE), dtypes=(dtype,), max_refractory=20)
    else:
        _check_mixed(config, dtype, situation, backend, data, device=str(CHECK_DEVICE))


@pytest.mark.parametrize("config", CONFIGS, ids=CONFIG_IDS)
@settings(max_examples=10, deadline=None)
@given(data=st.data())
def test_refractory_period_is_respected(config, data):
    """Independent of any provider: after a spike the next one comes at least R+1 steps later."""
    profile, params, R, x = data.draw(problems(config))
    spikes = block_neuron(x, profile, params, R, backend="reference").spikes != 0
    times = torch.arange(x.shape[0]).view(-1, *([1] * (x.dim() - 1))).expand_as(spikes)
    for neuron in range(spikes[0].numel()):
        t = times.reshape(x.shape[0], -1)[:, neuron][spikes.reshape(x.shape[0], -1)[:, neuron]]
        assert bool((t.diff() >= R + 1).all())


@pytest.mark.parametrize(("config", "backend"), CASES)
def test_sequence_split_with_state_equals_whole(config, backend):
    """Running [0, t) then [t, T) with the returned state equals one run, mid-refractory included."""
    name, options, ranges, scale, offset = config
    profile = make_profile(name, **options)
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(37, 2, 9, generator=gen, dtype=torch.float64) * scale + offset
    params = {k: torch.tensor((lo + hi) / 2, dtype=torch.float64) for k, (lo, hi) in ranges.items()}
    R = 0 if name == "norse_lif_refrac" else 4
    with _kernels_of(backend) as backend:
        whole = block_neuron(x, profile, params, R, backend=backend)
        first = block_neuron(x[:18], profile, params, R, backend=backend)
        second = block_neuron(x[18:], profile, params, R, backend=backend, state=first.state)
    assert whole.spikes.any()
    assert torch.equal(torch.cat([first.spikes, second.spikes]), whole.spikes)
    assert torch.equal(torch.cat([first.membrane, second.membrane]), whole.membrane)


def test_zero_refractory_is_the_plain_neuron():
    """R = 0 equals a hand-written plain LIF loop (no refractory logic at all)."""
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(50, 4, 8, generator=gen) * 0.6 + 0.4
    beta, threshold = torch.tensor(0.9), torch.tensor(1.0)
    v, expected = torch.zeros(4, 8), []
    for xt in x:
        v = beta * v + xt
        s = (v > threshold).float()
        v = v * (1 - s)
        expected.append(s)
    for backend in ["reference", *FAST_PROVIDERS]:
        got = block_neuron(x, "paper_lif", {"beta": beta, "threshold": threshold}, 0, backend=backend).spikes
        assert torch.equal(got, torch.stack(expected)), backend


def test_auto_backend_falls_back_for_unsupported_profiles():
    x = torch.randn(10, 2, 3) + 1
    result = block_neuron(x, "spikingjelly_lif", {}, 2)  # no compiled kernel: auto picks torch
    ref = block_neuron(x, "spikingjelly_lif", {}, 2, backend="reference")
    assert torch.equal(result.spikes, ref.spikes)


FAST_PATH_PROFILES = [
    ("paper_lif", {}, {"beta": 0.9, "threshold": 0.7}),
    ("snntorch_leaky", {"reset_mechanism": "subtract"}, {"beta": 0.87, "threshold": 0.9, "graded_spikes_factor": 0.7}),
    ("snntorch_leaky", {"reset_mechanism": "zero"}, {"beta": 0.87, "threshold": 1.1}),
    ("snntorch_leaky", {"reset_mechanism": "none"}, {"beta": 0.93, "threshold": 0.9}),
]


@pytest.mark.parametrize("dtype", HALF)
@pytest.mark.parametrize(("name", "options", "params"), FAST_PATH_PROFILES)
@pytest.mark.parametrize("R", [0, 3])
def test_python_float_parameters_in_half_precision(name, options, params, R, dtype):
    """A Python-float parameter is a 0-dim float32 tensor for half-precision input (as the frameworks store
    theirs): the LIF fast path, which rounds such 0-dim parameters to the input's dtype as PyTorch's operations
    in the profile do, equals the reference bit for bit; values not representable in half precision make the
    check non-vacuous."""
    profile = make_profile(name, **options)
    x = (torch.randn(40, 3, 17, generator=torch.Generator().manual_seed(R)) * 0.8 + 0.4).to(dtype)
    ref = block_neuron(x, profile, params, R, backend="reference")
    got = block_neuron(x, profile, params, R, backend="torch")
    assert ref.membrane.dtype == dtype and bool(ref.spikes.any())
    assert torch.equal(got.spikes, ref.spikes) and torch.equal(got.membrane, ref.membrane)
    assert torch.equal(got.state["v"], ref.state["v"]) and torch.equal(got.state["refractory"], ref.state["refractory"])
    # the same request with the parameters as 0-dim float32 tensors is the same computation
    as_float32 = {k: torch.tensor(v) for k, v in params.items()}
    assert torch.equal(block_neuron(x, profile, as_float32, R).membrane, ref.membrane)


@pytest.mark.parametrize("dtype", HALF)
def test_python_float_dt_meets_float32_parameters_as_in_norse(dtype):
    """Norse multiplies its Python-float ``dt`` with float32 parameter tensors (``dt * tau_mem_inv``: a float32
    product, 0.001 * 150 != float16(0.001) * 150); a Python-float ``dt`` given to the engine does the same."""
    x = (torch.randn(30, 2, 11, generator=torch.Generator().manual_seed(1)) * 1.5 + 2.0).to(dtype)
    params = {"tau_mem_inv": torch.full((11,), 150.0), "tau_syn_inv": torch.tensor(300.0), "v_th": torch.tensor(0.8)}
    as_python = block_neuron(x, "norse_lsnn", {**params, "dt": 0.001}, backend="reference")
    as_float32 = block_neuron(x, "norse_lsnn", {**params, "dt": torch.tensor(0.001)}, backend="reference")
    assert torch.equal(as_python.membrane, as_float32.membrane) and torch.equal(as_python.spikes, as_float32.spikes)
    rounded = block_neuron(x, "norse_lsnn", {**params, "dt": torch.tensor(0.001, dtype=dtype)}, backend="reference")
    assert not torch.equal(rounded.membrane, as_python.membrane)  # the check is not vacuous
