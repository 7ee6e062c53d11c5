"""grad="blocks": the Blocks paper's approximate gradient (Taylor, King & Harper 2023, blocks.md section 3).

The forward values are the exact ones (computed by the engine's exact path); only the backward differs. Per
block of L = R+1 steps the gradient graph is the paper's:

* reset-free membrane  V~[k] = beta^(k+1) V0 + sum_{j<=k} beta^(k-j) x[j]  (input masked where the previous
  block's spike still makes the neuron refractory),
* threshold  theta[k] = threshold + b * a_prev * p^k  (adaptation assumed spike-free within the block),
* faulty spikes S~ = surrogate(V~ - theta) at every position, phi(S~)[k] = sum_{j<=k} (k-j+1) S~[j] (two
  cumulative sums), and the straight-through first-spike map  S = z - stopgrad(z * [z != 1]),
* block to block only through V0 (neurons that did not spike) and the adaptation, with spikes detached.

The gradient is attached to the exact spikes with a straight-through sum, so spikes stay bit-exact.
"""

from __future__ import annotations

import torch


def _decay_powers(beta, n):
    k = torch.arange(n, device=beta.device, dtype=beta.dtype)
    return beta.unsqueeze(-1) ** k  # [..., n]: beta^0 .. beta^(n-1)


def run_with_block_gradient(profile, p, x, refractory_steps, state):
    from .torch_provider import run_generic

    if state is not None:
        raise ValueError("grad='blocks' starts from the resting state; pass state=None")
    with torch.no_grad():
        exact_spikes, exact_membrane, final = run_generic(profile, p, x, refractory_steps, None)
    # the gradient graph in the exact forward's dtype: a 0-dim parameter of another dtype (a Python float is
    # float32 for half-precision input) keeps the input's dtype there, as in the forward (PyTorch's promotion)
    p = {name: t.to(x.dtype) if t.dim() == 0 and t.dtype != x.dtype else t for name, t in p.items()}
    L = refractory_steps + 1
    shape = x.shape[1:]
    beta = p["beta"].expand(shape)
    adaptive = "adaptation_decay" in p
    if adaptive:
        decay_a, strength = p["adaptation_decay"].expand(shape), p["adaptation_strength"].expand(shape)
        a_prev = torch.zeros(shape, dtype=x.dtype, device=x.device)
    v0 = torch.zeros(shape, dtype=x.dtype, device=x.device)
    entry = torch.full(shape, -1, dtype=torch.long, device=x.device)
    fired_all = exact_spikes != 0
    surrogate_parts, membrane_parts = [], []
    for start in range(0, x.shape[0], L):
        xb = x[start : start + L]
        n = xb.shape[0]
        pos = torch.arange(n, device=x.device).view(n, *([1] * len(shape)))
        x_eff = xb * (pos >= entry).to(x.dtype)  # refractory carry-over masks the input (detached mask)
        powers = _decay_powers(beta, n + 1)  # [..., n+1]
        # V~[k] = beta^(k+1) V0 + sum_j beta^(k-j) x[j]: a lower-triangular product per neuron
        row, col = pos.unsqueeze(1), pos.unsqueeze(0)  # [n, 1, 1...] and [1, n, 1...]: k and j
        lag = (row - col).clamp(min=0)
        causal = (row >= col).to(x.dtype)
        kernel = torch.gather(powers.movedim(-1, 0).unsqueeze(0).expand(n, n + 1, *shape), 1,
                              lag.expand(n, n, *shape)) * causal  # fmt: skip
        v_tilde = (kernel * x_eff.unsqueeze(0)).sum(1) + powers.movedim(-1, 0)[1 : n + 1] * v0
        theta = p["threshold"]
        if adaptive:
            theta = theta + strength * a_prev * _decay_powers(decay_a, n).movedim(-1, 0)
        faulty = profile.spike(v_tilde - theta)
        z = faulty.cumsum(0).cumsum(0)
        first = z - (z * (z != 1)).detach()
        surrogate_parts.append(first)
        membrane_parts.append(v_tilde)
        # carry: detached spike positions from the exact forward
        fired = fired_all[start : start + n]
        spiked = fired.any(0)
        j0 = fired.to(torch.uint8).argmax(0)
        v0 = torch.where(spiked, torch.zeros_like(v0), v_tilde[-1])
        if adaptive:
            decay_to_end = _decay_powers(decay_a, n + 1)
            at_spike = a_prev * decay_to_end.gather(-1, (j0 + 1).unsqueeze(-1)).squeeze(-1) + 1
            after_spike = at_spike * decay_to_end.gather(-1, (n - 1 - j0).unsqueeze(-1)).squeeze(-1)
            a_prev = torch.where(spiked, after_spike, a_prev * decay_to_end[..., n])
        entry = torch.where(spiked, j0, -1)
    block_spikes = torch.cat(surrogate_parts)
    block_membrane = torch.cat(membrane_parts)
    spikes = exact_spikes + (block_spikes - block_spikes.detach())
    membrane = exact_membrane + (block_membrane - block_membrane.detach())
    return spikes, membrane, {k: v.detach() for k, v in final.items()}
