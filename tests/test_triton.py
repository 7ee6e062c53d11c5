"""The Triton provider (``providers.triton_provider``): what it accepts and refuses, every surrogate kind of its
backward, and every way an output gradient reaches it. Without a GPU its kernels run on CPU tensors in
Triton's interpreter (tests/conftest.py); the hypothesis exactness properties over random shapes, parameters,
R and initial states are in test_engine_exactness.py."""

from __future__ import annotations

import pytest
import torch

from snn_blockbackend import block_neuron, make_profile, plugins
from snn_blockbackend import surrogate as sg
from snn_blockbackend.functional import select_provider

pytest.importorskip("triton", reason="the Triton provider needs triton (Linux; pip extra [triton])")
pytestmark = pytest.mark.skipif("triton" not in plugins.providers(), reason="the Triton provider is not registered")

DEVICE = torch.device("cuda" if torch.cuda.is_available() else "cpu")


def _provider():
    return plugins.providers()["triton"]


def _input(T=17, shape=(2, 5), dtype=torch.float64, seed=0):
    gen = torch.Generator().manual_seed(seed)
    return (torch.randn((T, *shape), generator=gen, dtype=dtype) * 0.6 + 0.45).to(DEVICE)


def _grads(profile, x, R, backend, loss, params):
    x = x.clone().requires_grad_()
    params = {k: v.clone().requires_grad_() for k, v in params.items()}
    result = block_neuron(x, profile, params, R, backend=backend)
    loss(result).backward()
    return result, {"x": x.grad, **{k: v.grad for k, v in params.items()}}


def _assert_same(profile, x, R, loss, params):
    ref, ref_grads = _grads(profile, x, R, "reference", loss, params)
    got, got_grads = _grads(profile, x, R, "triton", loss, params)
    assert torch.equal(got.spikes, ref.spikes) and torch.equal(got.membrane, ref.membrane)
    assert any(bool(g.any()) for g in ref_grads.values() if g is not None), "the loss must reach some gradient"
    for name, g_ref in ref_grads.items():
        if g_ref is None:
            assert got_grads[name] is None or not got_grads[name].any(), name
        else:
            torch.testing.assert_close(got_grads[name], g_ref, rtol=1e-9, atol=1e-9 * float(g_ref.abs().max() + 1), msg=name)


SURROGATES = [sg.atan(2.0), sg.fast_sigmoid(25.0), sg.superspike(10.0), sg.sigmoid(4.0), sg.multi_gaussian(),
              sg.boxcar(1.0), sg.heaviside()]


@pytest.mark.parametrize("surrogate", SURROGATES, ids=lambda s: s.name)
@pytest.mark.parametrize("R", [0, 3])
def test_every_surrogate_kind_gives_the_reference_gradient(surrogate, R):
    profile = make_profile("snntorch_leaky", surrogate=surrogate)
    params = {"beta": torch.tensor([0.9, 0.8, 0.95, 0.7, 0.85], dtype=torch.float64, device=DEVICE),
              "threshold": torch.tensor(1.0, dtype=torch.float64, device=DEVICE)}
    weights = torch.linspace(-1, 1, 17 * 10, dtype=torch.float64, device=DEVICE).view(17, 2, 5)
    _assert_same(profile, _input(), R, lambda r: (r.spikes * weights).sum() + (r.membrane * weights).sum(), params)


@pytest.mark.parametrize(
    "loss",
    [
        lambda r: r.spikes.sum(),  # one uniform gradient row (the expanded scalar of a sum)
        lambda r: (r.membrane**2).sum(),  # no gradient reaches the spikes
        lambda r: r.state["v"].sum() + r.spikes[-1].sum(),  # the final membrane and one step only
    ],
    ids=["spikes-sum", "membrane-only", "final-state"],
)
@pytest.mark.parametrize("name", ["snntorch_leaky", "paper_lif", "paper"])
def test_every_way_an_output_gradient_arrives(loss, name):
    params = {"beta": torch.tensor(0.9, dtype=torch.float64, device=DEVICE)}
    _assert_same(make_profile(name), _input(T=13), 2, loss, params)


def test_float32_and_a_batch_of_many_neurons():
    """Several programs (more neurons than one program's width) and a partly filled last one, in float32."""
    x = _input(T=9, shape=(3, 700), dtype=torch.float32, seed=3)
    params = {"beta": torch.tensor(0.85, device=DEVICE)}
    ref, ref_grads = _grads(make_profile("snntorch_leaky"), x, 2, "reference", lambda r: r.spikes.sum(), params)
    got, got_grads = _grads(make_profile("snntorch_leaky"), x, 2, "triton", lambda r: r.spikes.sum(), params)
    assert torch.equal(got.spikes, ref.spikes) and bool(ref.spikes.any())
    torch.testing.assert_close(got_grads["x"], ref_grads["x"], rtol=1e-5, atol=1e-6)
    torch.testing.assert_close(got_grads["beta"], ref_grads["beta"], rtol=1e-5, atol=1e-4)


def test_auto_does_not_pick_it():
    """Not measured on a GPU yet: "auto" keeps the torch provider on CUDA (and numba on CPU)."""
    choice = select_provider("auto", make_profile("snntorch_leaky"), DEVICE, "exact")
    assert choice.name != "triton" and choice.priority > _provider().priority


@pytest.mark.parametrize(
    ("profile", "grad", "words"),
    [
        (make_profile("snntorch_leaky", surrogate=lambda m: (m > 0).to(m.dtype)), "exact", "custom surrogate"),
        (make_profile("paper_lif"), "blocks", "exact BPTT"),
    ],
)
def test_refusals_name_the_reason(profile, grad, words):
    reason = _provider().supports(profile, DEVICE, grad)
    assert reason is not None and words in reason


def test_cpu_tensors_need_the_interpreter(monkeypatch):
    from snn_blockbackend.providers import triton_lif

    monkeypatch.setattr(triton_lif, "interpreted", lambda: False)
    reason = _provider().supports(make_profile("snntorch_leaky"), torch.device("cpu"), "exact")
    assert "CUDA" in reason and "TRITON_INTERPRET=1" in reason
    with pytest.raises(ValueError, match="TRITON_INTERPRET"):
        block_neuron(torch.rand(4, 3), make_profile("snntorch_leaky"), {"beta": 0.9}, 1, backend="triton")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_half_precision_of_a_hand_written_profile_runs_on_the_generated_kernels(dtype):
    """The hand-written families compute in float32/float64; half precision of their profiles (snnTorch Leaky)
    goes to the generated kernels, which round after every operation as the reference does."""
    x = (torch.randn(11, 3, 4, device=DEVICE) * 0.7 + 0.5).to(dtype)
    profile = make_profile("snntorch_leaky")
    ref = block_neuron(x, profile, {"beta": 0.9}, 2, backend="reference")
    got = block_neuron(x, profile, {"beta": 0.9}, 2, backend="triton")
    assert got.spikes.dtype == dtype and bool(ref.spikes.any())
    assert torch.equal(got.spikes, ref.spikes) and torch.equal(got.membrane, ref.membrane)


@pytest.mark.skipif(DEVICE.type == "cuda", reason="on a GPU the CUDA reads are checked against the reference there")
def test_cuda_operand_reads_round_a_float32_parameter_as_it_loads(monkeypatch):
    """On a GPU the Triton kernels reproduce PyTorch's CUDA kernels, which convert a 0-dim float32 parameter (a
    CUDA tensor) to the bfloat16 result dtype as they load it, in every operation (the CPU kernels read it at
    float32 precision as the second operand of a product or quotient: SpikingJelly's ``/ tau``). Each parameter
    of SpikingJelly's LIF meets only bfloat16 operands, so the CUDA reads equal the reference with the parameters
    cast to bfloat16: run on CPU tensors with the CUDA reads forced, the kernels give exactly that, and not the
    CPU reference (tau = 1.7 is not a bfloat16 value, so the two differ)."""
    from snn_blockbackend.providers import triton_provider

    name, params = "spikingjelly_lif", {"tau": 1.7, "v_threshold": 0.9}
    x = _input(T=40, shape=(3, 16), dtype=torch.float32).to(torch.bfloat16)
    wide = {k: torch.tensor(v, dtype=torch.float32) for k, v in params.items()}
    cpu = block_neuron(x, name, wide, 2, backend="reference")
    cast = block_neuron(x, name, {k: v.to(torch.bfloat16) for k, v in wide.items()}, 2, backend="reference")
    monkeypatch.setattr(triton_provider, "_reads", lambda device: "cuda")
    got = block_neuron(x, name, wide, 2, backend="triton")
    assert got.membrane.dtype == torch.bfloat16 and bool(got.spikes.any())
    assert torch.equal(got.spikes, cast.spikes) and torch.equal(got.membrane, cast.membrane)
    assert not torch.equal(cpu.membrane, cast.membrane)  # the two devices' reads differ on this input


COMPILE_SCRIPT = r"""
import os, sys
os.environ.pop("TRITON_INTERPRET", None)  # compile for real (no GPU is needed to compile)
import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from snn_blockbackend.kernels.emit_triton import inexact_instructions
from snn_blockbackend.providers import triton_lif

INTS = ("entry0_ptr", "entry_out_ptr", "spike_out_ptr", "block_spike_ptr", "countdown0_ptr", "countdown_out_ptr")
FLOAT64 = ("sg_ptr", "g_v0_ptr", "g_decay_ptr", "g_thr_ptr", "g_graded_ptr", "g_a0_ptr", "g_beta_ptr",
           "g_decay_a_ptr", "g_strength_ptr")

def ptx(fn, dtype, consts, fp_fusion, arch):
    def kind(name):
        if name in consts:
            return "constexpr"
        if not name.endswith("_ptr"):
            return "i32"
        if name == "F_ptr":
            return "*i8"
        return "*i32" if name in INTS else ("*fp64" if name in FLOAT64 else "*" + dtype)
    names = fn.arg_names
    source = ASTSource(fn=fn, signature={n: kind(n) for n in names},
                       constexprs={(names.index(k),): v for k, v in consts.items()})
    options = {"enable_fp_fusion": fp_fusion, "num_warps": 4}
    return triton.compile(source, target=GPUTarget("cuda", arch, 32), options=options).asm["ptx"]

flags = ("STRICT", "REENTRY_ZERO", "REENTRY_SUBTRACT", "POST_ZERO")
profiles = {"snntorch_leaky": (True, False, True, False), "paper_lif": (True, False, False, True),
            "snntorch_zero": (True, True, False, False)}
for dtype in ("fp32", "fp64"):
    for name, values in profiles.items():
        code = ptx(triton_lif.lif_forward, dtype, dict(zip(flags, values), BLOCK=128), False, 90)
        assert not inexact_instructions(code), (name, dtype, inexact_instructions(code))
        assert "mul.rn." in code, (name, dtype)
    code = ptx(triton_lif.alif_forward, dtype, dict(BLOCK=128), False, 90)
    assert not inexact_instructions(code), ("alif", dtype, inexact_instructions(code))
# the check can see a fusion: with fusion allowed the same source does fuse
assert "fma.rn.f32" in inexact_instructions(ptx(triton_lif.lif_forward, "fp32", dict(zip(flags, profiles["snntorch_leaky"]), BLOCK=128), True, 90))
for kind in range(6):  # every surrogate kind, float64 arithmetic
    ptx(triton_lif.lif_backward, "fp32", dict(HAS_G_SPIKES=True, **dict(zip(flags, profiles["snntorch_leaky"])),
                                              SG_KIND=kind, BLOCK=128), False, 90)
ptx(triton_lif.lif_backward, "fp64", dict(HAS_G_SPIKES=False, **dict(zip(flags, profiles["paper_lif"])),
                                          SG_KIND=4, BLOCK=128), False, 80)
for kind in (1, 4):
    ptx(triton_lif.alif_backward, "fp32", dict(SG_KIND=kind, BLOCK=128), False, 90)
print("compiled")
"""


def test_kernels_compile_for_a_gpu_without_inexact_instructions():
    """The interpreter cannot show what a GPU compile does; compiling needs no GPU. Every kernel compiles to
    PTX for sm_90 / sm_80, and the forwards' ``v*decay + x`` (and the ALIF's ``threshold + strength*a``) stay a
    rounded multiply then an add (no ``fma``, no approximate instruction: ``emit_triton.inexact_instructions``)
    in float32 and float64: the reference's rounding, so its spikes on a GPU."""
    pytest.importorskip("triton.backends.nvidia", reason="triton without its CUDA backend cannot compile for a GPU")
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT], capture_output=True, text=True, timeout=600)
    assert done.returncode == 0 and "compiled" in done.stdout, done.stderr[-3000:]
