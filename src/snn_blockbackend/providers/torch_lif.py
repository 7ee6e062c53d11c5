"""The torch provider's fast path for leaky integrate-and-fire profiles, with a hand-written backward.

Covers profiles whose state is one membrane ``v`` with a bitwise-linear charge ``v*decay + x`` and a
detached reset (the paper's LIF; snnTorch ``Leaky`` with its default delayed reset). The block structure
gives the refractory period for free: within a block of L = R+1 positions a neuron is held before its
``entry`` position (carried from the previous block's spike) and after its first spike in the block.

Why stepping with small in-place ops rather than block-wide tensor ops: on CPU, [B, N] slices stay in cache
and allocate nothing, while every [L, B, N] temporary costs a trip through memory; measured, the stepping
form is several times faster at the same exact arithmetic. Masks are float 0/1 tensors and selections are
products (``u*live + v*held``), which are exact for finite values (only the sign of a zero may differ) and,
on CPU, much cheaper than ``torch.where``. The backward is the reverse-time linear recurrence of BPTT
through the same steps, so no autograd graph is recorded per step.
"""

from __future__ import annotations

import torch


class _LIFSteps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v0, decay, threshold, graded, entry0, block_len, cfg, derivative):
        T = x.shape[0]
        shape = x.shape[1:]
        U = torch.empty_like(x)  # charged membrane per step (pre-reset): the surrogate's argument
        M = torch.empty_like(x) if cfg.post_zero else U  # reported (post-reset) membrane
        LIVE = torch.empty_like(x)  # 1 where the neuron may spike at this step (not refractory)
        F = torch.empty_like(x)  # 1 where it spiked
        S = torch.empty_like(x) if graded is not None else F
        special_reentry = cfg.reentry_zero or cfg.reentry_subtract
        reentering = torch.empty(shape, dtype=x.dtype, device=x.device) if special_reentry else None
        v = v0
        entry = entry0.to(x.dtype)  # -1: no pending re-entry; else first live position of the block
        blocks = []
        for start in range(0, T, block_len):
            n = min(block_len, T - start)
            last_entry_pos = int(entry.max()) if entry.numel() else -1
            # live at position k iff k + 1 - entry >= 1 and no spike yet in this block
            live_base = 1 - entry
            next_entry = torch.full(shape, -1.0, dtype=x.dtype, device=x.device)
            for k in range(n):
                t = start + k
                ut, live = U[t], LIVE[t]
                torch.mul(v, decay, out=ut)
                ut.add_(x[t])
                torch.add(live_base, k, out=live)
                if special_reentry and k <= last_entry_pos:
                    torch.eq(live, 1, out=reentering)
                    if cfg.reentry_zero:  # v*0 + x
                        ut.mul_(1 - reentering).addcmul_(x[t], reentering)
                    if cfg.reentry_subtract:  # (v*decay + x) - threshold
                        ut.addcmul_(reentering, threshold, value=-1)
                live.clamp_(0, 1)
                ut.mul_(live).addcmul_(v, 1 - live)  # held neurons keep v
                fired = F[t]
                (torch.gt if cfg.strict else torch.ge)(ut, threshold, out=fired)
                fired.mul_(live)
                live_base.sub_(fired, alpha=2 * block_len)  # not live for the rest of the block
                next_entry.add_(fired, alpha=k + 1)
                if graded is not None:
                    torch.mul(fired, graded, out=S[t])
                if cfg.post_zero:
                    torch.addcmul(ut, ut, fired, value=-1, out=M[t])
                v = M[t]
            blocks.append((start, n, entry))
            last_entry, entry = entry, next_entry
        ctx.blocks = blocks
        ctx.cfg = cfg
        ctx.derivative = derivative
        ctx.has_graded = graded is not None
        ctx.save_for_backward(x, v0, decay, threshold, graded, U, M, LIVE, F)
        # position of the last block's spike (block_len: none), for the final refractory countdown
        last_spike = torch.where(entry >= 0, entry, block_len).to(torch.int64)
        last_entry = last_entry.to(torch.int64)
        ctx.mark_non_differentiable(last_entry, last_spike)
        return S, M, v.clone(), last_entry, last_spike

    @staticmethod
    def backward(ctx, g_spikes, g_membrane, g_final_v, _g_entry, _g_spike):
        x, v0, decay, threshold, graded, U, M, LIVE, F = ctx.saved_tensors
        cfg = ctx.cfg
        need_x, need_v0, need_decay, need_threshold, need_graded = ctx.needs_input_grad[:5]
        shape = x.shape[1:]

        def zeros():
            return torch.zeros(shape, dtype=x.dtype, device=x.device)

        a = g_final_v.clone() if g_final_v is not None else zeros()  # dL/dv after the current step
        gx = torch.empty_like(x)
        g_decay = zeros() if need_decay else None
        g_threshold = zeros() if need_threshold else None
        g_graded = zeros() if need_graded else None
        use_surrogate = g_spikes is not None and ctx.derivative is not None
        for start, n, entry in reversed(ctx.blocks):
            for k in reversed(range(n)):
                t = start + k
                live = LIVE[t]
                if g_membrane is not None:
                    a.add_(g_membrane[t])
                g_u = gx[t]
                # through the reported membrane; an immediate reset to zero cuts it at the spike step
                torch.mul(a, 1 - F[t], out=g_u) if cfg.post_zero else g_u.copy_(a)
                if use_surrogate:
                    g_out = g_spikes[t] * graded if ctx.has_graded else g_spikes[t]
                    g_margin = (g_out * ctx.derivative(U[t] - threshold)).mul_(live)
                    g_u.add_(g_margin)
                    if need_threshold:
                        g_threshold.sub_(g_margin)
                if need_graded and g_spikes is not None:
                    g_graded.addcmul_(g_spikes[t], F[t])
                g_u.mul_(live)
                reentering = torch.eq(entry, k).to(x.dtype) if (cfg.reentry_zero or cfg.reentry_subtract) else None
                if cfg.reentry_subtract and need_threshold:
                    g_threshold.addcmul_(g_u, reentering, value=-1)
                through = g_u * (1 - reentering) if cfg.reentry_zero else g_u
                if need_decay:
                    g_decay.addcmul_(through, M[t - 1] if t > 0 else v0)
                a.mul_(1 - live).addcmul_(through, decay)
        return (
            gx if need_x else None,
            a if need_v0 else None,
            g_decay.sum_to_size(decay.shape) if need_decay else None,
            g_threshold.sum_to_size(threshold.shape) if need_threshold else None,
            g_graded.sum_to_size(graded.shape) if need_graded else None,
            None,
            None,
            None,
            None,
        )


def run_lif_steps(cfg, x, v0, entry0, block_len, derivative):
    """Returns (spikes, membrane, final_v, last block's entry, last block's spike position)."""
    return _LIFSteps.apply(x, v0, cfg.decay, cfg.threshold, cfg.graded, entry0, block_len, cfg, derivative)
