"""The released PSU code's spike function: Heaviside forward, ATan surrogate with a *learnable* slope alpha.

BrainCog ``AtanGrad(alpha=2., requires_grad=True)`` (``surrogate.py`` L91-131 of Brain-Cog-Lab/PSU): forward
``margin > 0``; backward as if the spike were the smooth ``atan(pi/2 * alpha * margin) / pi + 1/2``:

    d/dmargin = (alpha/2) / (1 + (pi/2 * alpha * margin)^2)
    d/dalpha  = (margin/2) / (1 + (pi/2 * alpha * margin)^2)     (summed over all elements: one alpha per layer)
"""

from __future__ import annotations

import math

import torch


class _AtanSpike(torch.autograd.Function):
    @staticmethod
    def forward(ctx, margin, alpha):
        ctx.save_for_backward(margin, alpha)
        return (margin > 0).to(margin.dtype)

    @staticmethod
    def backward(ctx, grad_spike):
        margin, alpha = ctx.saved_tensors
        slope = alpha.to(margin.dtype)
        # grad / (1 + (pi/2 alpha margin)^2), built in place: one temporary instead of one per operation
        scaled = torch.square(margin).mul_(slope.square() * (math.pi / 2) ** 2).add_(1).reciprocal_().mul_(grad_spike)
        grad_alpha = None
        if ctx.needs_input_grad[1]:
            grad_alpha = (torch.dot(scaled.flatten(), margin.flatten()) / 2).reshape(alpha.shape).to(alpha.dtype)
        grad_margin = scaled.mul_(slope / 2) if ctx.needs_input_grad[0] else None
        return grad_margin, grad_alpha


def atan_spike(margin: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """Spikes ``1[margin > 0]`` with the ATan surrogate of slope ``alpha`` (a 0-dim tensor, may require grad)."""
    return _AtanSpike.apply(margin, alpha)


def atan_primal(margin: torch.Tensor, alpha: torch.Tensor) -> torch.Tensor:
    """The smooth function whose derivatives the surrogate uses (for checking the backward against autograd)."""
    return torch.atan(math.pi / 2 * alpha * margin) / math.pi + 0.5
