"""grad="blocks": exact forward, and the Blocks paper's gradient (blocks.md sections 2-3)."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
from hypothesis import given, settings
from hypothesis import strategies as st

from snn_blockbackend import block_neuron, surrogate


def paper_blocks(x, beta, p, b, R, spike):
    """A literal transcription of the authors' Blocks layer (conv1d kernels, zero padding to whole blocks).

    x: [T, B, N]; beta, p, b: [N]; returns spikes [T, B, N]. Threshold base 1, reset to 0, detached spikes.
    """
    T, B, N = x.shape
    L = R + 1
    n_blocks = -(-T // L)
    xp = torch.cat([x, x.new_zeros(n_blocks * L - T, B, N)]).permute(1, 2, 0)  # (B, N, T') time last
    beta_kernel = torch.stack([beta ** (L - 1 - m) for m in range(L)], -1).unsqueeze(1)  # (N,1,L)
    phi_kernel = torch.arange(L, 0, -1, dtype=x.dtype).expand(N, 1, L)
    v0 = x.new_zeros(B, N)
    a = x.new_zeros(B, N)  # a[iL-1]
    mask = torch.ones(B, N, L, dtype=x.dtype)
    out = []
    for i in range(n_blocks):
        cur = xp[..., i * L : (i + 1) * L] * mask
        cur = torch.cat([cur[..., :1] + beta.view(1, N, 1) * v0.unsqueeze(-1), cur[..., 1:]], -1)
        v_tilde = F.conv1d(F.pad(cur, (L - 1, 0)), beta_kernel, groups=N)
        k = torch.arange(L, dtype=x.dtype)
        theta = 1 + b.view(1, N, 1) * a.unsqueeze(-1) * p.view(1, N, 1) ** k
        faulty = spike(v_tilde - theta)
        z = F.conv1d(F.pad(faulty, (L - 1, 0)), phi_kernel, groups=N)
        s = z - (z * (z != 1)).detach()
        out.append(s)
        fired = s.detach() == 1
        spiked = fired.any(-1)
        j0 = fired.to(torch.uint8).argmax(-1)
        v0 = torch.where(spiked, torch.zeros_like(v0), v_tilde[..., -1])
        a_spiked = (a * p ** (j0 + 1) + 1) * p ** (L - 1 - j0)
        a = torch.where(spiked, a_spiked, a * p**L)
        mask = torch.where(spiked.unsqueeze(-1), (k >= j0.unsqueeze(-1)).to(x.dtype), torch.ones_like(mask))
    return torch.cat(out, -1)[..., :T].permute(2, 0, 1)


@settings(max_examples=15, deadline=None)
@given(
    R=st.integers(0, 12),
    T=st.integers(1, 60),
    adaptive=st.booleans(),
    seed=st.integers(0, 10_000),
)
def test_block_gradient_matches_the_papers_blocks_layer(R, T, adaptive, seed):
    gen = torch.Generator().manual_seed(seed)
    N, B = 5, 3
    x = torch.randn(T, B, N, generator=gen, dtype=torch.float64) * 0.7 + 0.45
    beta = 0.6 + 0.35 * torch.rand(N, generator=gen, dtype=torch.float64)
    p = 0.6 + 0.35 * torch.rand(N, generator=gen, dtype=torch.float64)
    b = (0.1 + 0.8 * torch.rand(N, generator=gen, dtype=torch.float64)) if adaptive else torch.zeros(N, dtype=torch.float64)
    sg = surrogate.multi_gaussian()

    def ours(x, beta, p, b):
        if adaptive:
            params = {"beta": beta, "adaptation_decay": p, "adaptation_strength": b}
            return block_neuron(x, "paper", params, R, grad="blocks").spikes
        return block_neuron(x, "paper_lif", {"beta": beta}, R, grad="blocks").spikes

    leaves_ours = [t.clone().requires_grad_() for t in (x, beta, p, b)]
    leaves_paper = [t.clone().requires_grad_() for t in (x, beta, p, b)]
    s_ours = ours(*leaves_ours)
    s_paper = paper_blocks(*leaves_paper, R, lambda m: sg(m, True))
    exact = block_neuron(x, "paper_lif", {"beta": beta}, R).spikes if not adaptive else None
    assert torch.equal(s_ours.detach(), s_paper.detach())
    if exact is not None:
        assert torch.equal(s_ours.detach(), exact)
    w = torch.randn(s_ours.shape, generator=gen, dtype=torch.float64)
    (s_ours * w).sum().backward()
    (s_paper * w).sum().backward()
    names = ["x", "beta", "p", "b"] if adaptive else ["x", "beta"]
    for name, lo, lp in zip(names, leaves_ours, leaves_paper):
        torch.testing.assert_close(lo.grad, lp.grad, rtol=1e-9, atol=1e-9, msg=name)


def test_block_gradient_equals_bptt_without_refractoriness():
    """At R = 0 without adaptation the paper's gradient is plain BPTT (its measured cosine 1.000)."""
    gen = torch.Generator().manual_seed(1)
    x = torch.randn(80, 4, 6, generator=gen, dtype=torch.float64) * 0.6 + 0.4
    grads = []
    for grad in ("exact", "blocks"):
        xx = x.clone().requires_grad_()
        (block_neuron(xx, "paper_lif", {"beta": 0.9}, 0, grad=grad).spikes * torch.cos(x)).sum().backward()
        grads.append(xx.grad)
    torch.testing.assert_close(grads[0], grads[1], rtol=1e-12, atol=1e-12)


def test_block_gradient_differs_from_bptt_with_refractoriness():
    """With R > 0 the paper's gradient is an approximation: it must not silently equal BPTT."""
    gen = torch.Generator().manual_seed(2)
    x = torch.randn(80, 4, 6, generator=gen, dtype=torch.float64) * 0.6 + 0.4
    grads, spikes = [], []
    for grad in ("exact", "blocks"):
        xx = x.clone().requires_grad_()
        s = block_neuron(xx, "paper_lif", {"beta": 0.9}, 4, grad=grad).spikes
        (s * torch.cos(x)).sum().backward()
        grads.append(xx.grad)
        spikes.append(s.detach())
    assert torch.equal(spikes[0], spikes[1])
    assert not torch.allclose(grads[0], grads[1])


def test_block_gradient_refuses_other_profiles():
    with pytest.raises(ValueError, match="blocks"):
        block_neuron(torch.randn(5, 2, 3), "snntorch_leaky", {"beta": 0.9}, 2, grad="blocks")


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
@pytest.mark.parametrize("profile", ["paper_lif", "paper"])
def test_half_precision_keeps_the_input_dtype(profile, dtype):
    """Half-precision input with Python-float parameters (0-dim float32 tensors): the outputs keep the input's
    dtype and the exact forward values, as with the exact gradient."""
    x = (torch.randn(20, 2, 5, generator=torch.Generator().manual_seed(0)) + 0.5).to(dtype).requires_grad_()
    result = block_neuron(x, profile, {"beta": 0.9}, 2, grad="blocks")
    reference = block_neuron(x, profile, {"beta": 0.9}, 2, backend="reference")
    assert result.spikes.dtype == result.membrane.dtype == dtype and bool(reference.spikes.any())
    assert torch.equal(result.spikes, reference.spikes) and torch.equal(result.membrane, reference.membrane)
    (grad,) = torch.autograd.grad(result.spikes.sum(), x)
    assert grad.dtype == dtype and bool(grad.abs().sum() > 0)
