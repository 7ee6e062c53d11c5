"""Kernels generated from the profiles (``snn_blockbackend.kernels``): tracing, what the generators refuse, a new
neuron added as one profile running on every compiled target, and the Triton kernels compiled for a GPU without
fused multiply-adds. The exactness properties of every profile on the generated kernels (numba, and Triton in
its interpreter) are in test_engine_exactness.py (backends ``numba+generated``, ``triton+generated``)."""

from __future__ import annotations

import subprocess
import sys

import pytest
import torch

from snn_blockbackend import block_neuron, kernels, plugins
from snn_blockbackend import surrogate as sg
from snn_blockbackend.kernels import emit_numba, emit_triton
from snn_blockbackend.kernels.trace import TraceError, trace
from snn_blockbackend.profiles import PROFILES, NeuronProfile

# one configuration per profile and per option that changes the traced operations
TRACED = [
    ("paper", {}), ("paper_lif", {}), ("snntorch_leaky", {}), ("snntorch_leaky", {"reset_delay": False}),
    ("snntorch_leaky", {"reset_mechanism": "zero", "reset_delay": False}), ("snntorch_leaky", {"reset_mechanism": "none"}),
    ("spikingjelly_lif", {}), ("spikingjelly_lif", {"v_reset": None, "detach_reset": True}),
    ("spikingjelly_lif", {"parametric": True, "decay_input": False}),
    ("spikingjelly_lif", {"version": "0.0.0.0.14", "decay_input": False}),
    ("norse_lif_box", {}), ("norse_lif_box", {"reset_method": "subtract"}), ("norse_lif", {}),
    ("norse_lif", {"version": "1.0"}), ("norse_lif_refrac", {}), ("norse_lsnn", {}),
]  # fmt: skip


def test_every_profile_is_traced_and_every_option_changes_its_kernel():
    """All 8 profiles trace; different options give different steps (so different kernels), the same options the
    same step (the kernel cache key)."""
    assert {name for name, _ in TRACED} == set(PROFILES)
    keys = [trace(PROFILES[name](**options)).key for name, options in TRACED]
    assert len(set(keys)) == len(keys)
    assert trace(PROFILES["norse_lif"]()).key == trace(PROFILES["norse_lif"]()).key


def _render(step, k):
    """A node as a fully parenthesized expression."""
    n = step.nodes[k]
    if n.kind in ("state", "param"):
        return n.name
    if n.kind in ("x", "live"):
        return n.kind
    if n.kind == "const":
        return repr(n.value)
    args = [_render(step, a) for a in n.args]
    symbols = {"add": "+", "sub": "-", "mul": "*", "div": "/"}
    if n.kind in symbols:
        return f"({args[0]} {symbols[n.kind]} {args[1]})"
    return f"{n.kind}({', '.join(args)})"


def test_trace_keeps_the_reference_operation_order():
    """snnTorch's Leaky charge is traced as written, ``beta*U + X - R*theta`` (multiply, add, then subtract the
    detached reset), and its membrane is that charged value held by the refractory select: operand order
    decides rounding, so the trace must not reassociate anything."""
    step = trace(PROFILES["snntorch_leaky"]())
    charged = "(((beta * v) + x) - (detach(step((v - threshold))) * threshold))"
    assert _render(step, step.membrane) == f"select({charged}, v, live)"  # v is held while refractory
    assert _render(step, step.spike) == f"select(step(({charged} - threshold)), 0.0, live)"


class _DataDependent(NeuronProfile):
    name = "data_dependent"
    param_defaults = {"beta": 0.9}

    def charge(self, p, s, x):
        v = p["beta"] * s["v"] + x
        if v > 1:  # a Python branch on a value: not a kernel
            v = v * 0.5
        return {"v": v}, v - 1.0

    def reset(self, p, prev, charged, spike):
        return {"v": charged["v"] * (1 - spike)}


class _TorchFunction(_DataDependent):
    name = "torch_function"

    def charge(self, p, s, x):
        v = torch.tanh(p["beta"] * s["v"]) + x
        return {"v": v}, v - 1.0


@pytest.mark.parametrize("profile", [_DataDependent(), _TorchFunction()], ids=["branch", "tanh"])
def test_untraceable_profiles_are_refused_with_the_reason(profile):
    with pytest.raises(TraceError):
        trace(profile)
    reason = kernels.traceable(profile)
    assert reason and profile.describe() in reason
    for name in ("numba", "triton"):
        if name in plugins.providers():
            assert plugins.providers()[name].supports(profile, torch.device("cpu"), "exact")


class QuadraticLIF(NeuronProfile):
    """A neuron no framework ships, written only as a profile: v' = v + dt*(v*v - v + x), threshold 1, hard
    reset to -0.5 with the surrogate's gradient through it, and an adaptation current w held during the
    refractory period like v."""

    name = "quadratic_lif_test"
    state_names = ("v", "w")
    held = frozenset({"v", "w"})
    param_defaults = {"dt": 0.1, "b": 0.2}
    default_surrogate = staticmethod(sg.fast_sigmoid)

    def charge(self, p, s, x):
        v, w = s["v"], s["w"]
        v = v + p["dt"] * (v * v - v + x - w)
        w = w + p["dt"] * (p["b"] * v - w)
        return {"v": v, "w": w}, v - 1.0

    def reset(self, p, prev, charged, spike):
        return {"v": (1 - spike) * charged["v"] + spike * -0.5, "w": charged["w"] + spike * 0.1}


@pytest.mark.parametrize("backend", [b for b in ("numba", "triton") if b in plugins.providers()])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("R", [0, 3])
def test_a_new_neuron_is_one_profile(backend, dtype, R):
    """Adding a neuron = one profile: the generated kernels run it bitwise like the reference, with BPTT
    gradients, on every compiled target, without a line of kernel code."""
    profile = QuadraticLIF()
    gen = torch.Generator().manual_seed(R)
    x = torch.randn(23, 3, 7, generator=gen, dtype=dtype) * 1.5 + 1.0
    params = {"dt": torch.full((7,), 0.1, dtype=dtype), "b": torch.tensor(0.2, dtype=dtype)}
    results = {}
    for name in ("reference", backend):
        xx = x.clone().requires_grad_()
        pp = {k: v.clone().requires_grad_() for k, v in params.items()}
        out = block_neuron(xx, profile, pp, R, backend=name)
        (out.spikes.sum() + (out.membrane * torch.linspace(-1, 1, 7, dtype=dtype)).sum()).backward()
        results[name] = out, xx.grad, {k: v.grad for k, v in pp.items()}
    (ref, ref_gx, ref_gp), (got, got_gx, got_gp) = results["reference"], results[backend]
    assert ref.spikes.sum() > 0
    assert torch.equal(got.spikes, ref.spikes) and torch.equal(got.membrane, ref.membrane)
    for key in ref.state:
        assert torch.equal(got.state[key], ref.state[key]), key
    tol = 1e-5 if dtype == torch.float32 else 1e-10
    scale = float(ref_gx.abs().max())
    torch.testing.assert_close(got_gx, ref_gx, rtol=tol, atol=tol * scale)
    for k in ref_gp:
        torch.testing.assert_close(got_gp[k], ref_gp[k], rtol=tol, atol=tol * max(scale, float(ref_gp[k].abs().max())))


def test_generated_source_is_readable_and_names_its_profile():
    profile = PROFILES["norse_lsnn"]()
    step32, step64 = kernels.step_of(profile, torch.float32), kernels.step_of(profile, torch.float64)
    numba_text = emit_numba.source(step32, "fast_sigmoid")
    triton_text = emit_triton.source(step64, "fast_sigmoid")
    assert "def forward_chunk(" in numba_text and "def backward_chunk(" in numba_text
    assert "def forward(" in triton_text and "def backward(" in triton_text
    for text in (numba_text, triton_text):
        assert "norse_lsnn" in text
        compile(text, "<generated>", "exec")  # valid Python


COMPILE_SCRIPT = r"""
import os, sys
os.environ.pop("TRITON_INTERPRET", None)  # compile for real (no GPU is needed to compile)
import torch, triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource
from snn_blockbackend import kernels
from snn_blockbackend.kernels import cache, emit_triton
from snn_blockbackend.profiles import PROFILES

TRACED = %r
DTYPES = ((torch.float32, 90), (torch.float64, 80), (torch.bfloat16, 90), (torch.float16, 80))
checked = 0
for name, options in TRACED:
    profile = PROFILES[name](**options)
    for dtype, arch in DTYPES:
        step = kernels.step_of(profile, dtype)
        # the sources a GPU runs: operands read as PyTorch's CUDA kernels read them
        module = cache.load(kernels.module_name("triton", step, profile.surrogate.kind, "cuda"),
                            lambda: emit_triton.source(step, profile.surrogate.kind, "cuda"))
        for function in ("forward", "backward"):
            fn = getattr(module, function)
            signature = emit_triton.signature(step, function)
            source = ASTSource(fn=fn, signature=signature, constexprs={(fn.arg_names.index("BLOCK"),): 128})
            ptx = triton.compile(source, target=GPUTarget("cuda", arch, 32),
                                 options={"enable_fp_fusion": False, "num_warps": 4}).asm["ptx"]
            if function.startswith("forward"):
                assert not emit_triton.inexact_instructions(ptx), (name, options, dtype, emit_triton.inexact_instructions(ptx))
            checked += 1
print("compiled", checked)
"""


@pytest.mark.skipif("triton" not in plugins.providers(), reason="the Triton provider is not registered")
def test_generated_triton_kernels_compile_for_a_gpu_without_inexact_instructions():
    """Every generated Triton kernel (each profile configuration; float32 and bfloat16 for sm_90, float64 and
    float16 for sm_80; the two functions) compiles to PTX without a GPU, and no forward contains an ``fma`` or an approximate division
    (``emit_triton.inexact_instructions``; Triton's float32 ``/`` is ``div.full.f32``): the reference's rounding."""
    pytest.importorskip("triton.backends.nvidia", reason="triton without its CUDA backend cannot compile for a GPU")
    done = subprocess.run([sys.executable, "-c", COMPILE_SCRIPT % (TRACED,)], capture_output=True, text=True, timeout=900)
    assert done.returncode == 0 and f"compiled {len(TRACED) * 4 * 2}" in done.stdout, (done.stdout + done.stderr)[-3000:]


@pytest.mark.parametrize("backend", [b for b in ("numba", "triton") if b in plugins.providers()])
def test_sigmoid_surrogate_gradient_follows_the_reference_into_its_tails(backend):
    """SpikingJelly's sigmoid surrogate in float32: where 1 - sigmoid has lost its digits (the tails) the
    reference's gradient is what PyTorch's float32 sigmoid gives, often exactly 0; the kernels evaluate it with
    the same float32 steps, so elementwise input gradients agree within 0.2% (their exp may differ from
    PyTorch's by an ulp, which the tails amplify) over margins of -6..6
    (a float64 sigmoid gave values up to 1e23 times the reference's there)."""
    x = torch.linspace(-10.0, 14.0, 4001).view(1, 1, -1)  # one step from v = 0: margin = x/2 - 1
    grads = {}
    for name in ("reference", backend):
        xx = x.clone().requires_grad_()
        block_neuron(xx, "spikingjelly_lif", {}, 0, backend=name).spikes.sum().backward()
        grads[name] = xx.grad
    ref, got = grads["reference"], grads[backend]
    assert bool((ref == 0).any()) and bool((ref > 0).any())  # the range reaches the tails
    torch.testing.assert_close(got, ref, rtol=2e-3, atol=0)


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
@pytest.mark.parametrize("backend", [b for b in ("numba", "triton") if b in plugins.providers()])
def test_multi_gaussian_surrogate_gradient_follows_the_reference_elementwise(backend, dtype):
    """The paper's multi-Gaussian surrogate (three exponentials) is evaluated in the storage dtype, as autograd
    evaluates it in the reference (float32: ``numba_math.exp32``, eight lanes per vector): each element's input
    gradient agrees with the reference's to a few float32 ulps of the largest (the sum of three terms cancels
    near the narrow Gaussian's edges, so the error is relative to the surrogate's scale) over margins -12..12,
    and to float64 precision in float64."""
    x = torch.linspace(-11.0, 13.0, 6001, dtype=dtype).view(1, 1, -1)  # one step from v = 0: margin = x - 1
    params = {"beta": 0.9, "threshold": 1.0}
    grads = {}
    for name in ("reference", backend):
        xx = x.clone().requires_grad_()
        block_neuron(xx, "paper_lif", params, 0, backend=name).spikes.sum().backward()
        grads[name] = xx.grad
    ref, got = grads["reference"], grads[backend]
    scale = float(ref.abs().max())
    assert bool((ref < 0).any()) and scale > 0  # the wide Gaussians' negative side lobes are in range
    tolerance = 1e-6 if dtype == torch.float32 else 1e-13
    torch.testing.assert_close(got, ref, rtol=tolerance, atol=tolerance * scale)
