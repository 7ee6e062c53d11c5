"""The torch provider's fast path for leaky integrate-and-fire profiles, with a hand-written backward.

Covers profiles whose state is one membrane ``v`` with a bitwise-linear charge ``v*decay + x`` and a
detached reset (the paper's LIF; snnTorch ``Leaky`` with its default delayed reset). The block structure
gives the refractory period for free: within a block of L = R+1 positions a neuron is live on positions
``entry <= k <= last``: ``entry`` is carried from the previous block's spike (-1: none) and ``last`` is its
spike position in this block (L: none).

Forward, one step at a time on [B, ...] slices (they stay in cache; on CPU whole-block temporaries cost
more memory traffic than they save in op calls). Per step (R > 0, snnTorch's delayed subtract reset):

    u     = v*decay + x              mul then add, never a fused multiply-add: the reference's rounding
    u    -= owed*threshold           owed: the previous state crossed (the reference's delayed-reset rule)
    live  = gate <= k                gate: the block's entry, pushed past the block by a spike
    u     = where(live, u, v)        held neurons keep v (a select: lerp's 0*inf would make NaN)
    owed  = u > threshold;  gate += owed*live*(L + 1 + k)   (one addcmul: fired = owed*live)

eight small ops; a block's spikes are written at once from where its gate jumped (``position == k``).
R = 0 needs neither gate nor hold (four ops). Masks are float 0/1 tensors where they only scale (cheaper on
CPU than bool tensors); the hold is a select, exact also for an overflowing (infinite) candidate. Per block only the entries and spike positions are kept
([blocks, ...]); the backward rebuilds the live masks from them instead of reading a [T, ...] mask that
the forward would have to write into freshly allocated (page-faulting) memory.

Backward (float tolerance only). With ``b_t`` the gradient reaching the state ``v_t`` (the reported
membrane's included), ``c_t`` the 0/1 factor of an immediate reset to zero (1 - spike; 1 for delayed
resets), ``z_t`` the re-entry-to-zero mask and ``s_t = live_t * dL/dspike_t * graded *
surrogate'(u_t - threshold)``, BPTT through the steps above is the reverse linear recurrence

    dL/du_t  = live_t * c_t * b_t + s_t                        (also dL/dx_t)
    b_{t-1}  = P_t * b_t + Q_t + dL/dM_{t-1}
    P_t      = (1 - live_t) + decay * live_t * c_t * (1 - z_t)
    Q_t      = decay * (1 - z_t) * s_t

(a held step passes b on unchanged; a live one sends decay times its dL/du back). Per step one ``addcmul``
remains; live masks, P, Q, the surrogate terms and the input, threshold, decay and graded gradients are
whole-chunk ops into reused buffers (whole blocks per chunk).

Intra-op threads: when one time step is below ATen's parallel grain size, the fast path runs with one
intra-op thread (restored afterwards), as a per-step loop over the same layer would: ATen would split each
whole-chunk op over its threads, and on a busy machine every such parallel region can wait milliseconds
for a descheduled thread.
"""

from __future__ import annotations

import contextlib
import itertools
import math

import torch

from ._memory import empty, populate_in_background

_ATEN_GRAIN_SIZE = 32768  # ATen splits an elementwise op over threads from this many elements on
_BACKWARD_CHUNK_ELEMENTS = 1 << 18  # about this many elements per backward chunk


@contextlib.contextmanager
def _one_thread_for_small_steps(x: torch.Tensor):
    threads = torch.get_num_threads()
    step_numel = x[0].numel() if x.shape[0] else 0
    if x.device.type != "cpu" or threads == 1 or step_numel >= _ATEN_GRAIN_SIZE:
        yield
        return
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(threads)


def _forward(x, v0, decay, threshold, entry0, L, cfg, keep_crossings):
    """Runs the steps; returns U, M, FIRED, crossings (or None) and the per-block live windows (or None).

    Step by step, with the refractory period from the block structure: ``live_k = [gate <= k]`` where the
    per-neuron ``gate`` starts each block at the carried entry and jumps past the block at a spike. A
    neuron is live in a block exactly on positions ``entry <= k <= last``, ``last`` its spike position (L
    where none); the backward rebuilds the live masks from these two [blocks, ...] tensors, which is
    cheaper than writing a [T, ...] mask into fresh memory.
    """
    T, shape, dtype, device = x.shape[0], x.shape[1:], x.dtype, x.device
    U = empty(x.shape, dtype, device)  # charged membrane (held where the neuron is held)
    M = empty(x.shape, dtype, device) if cfg.post_zero else U
    FIRED = empty(x.shape, dtype, device)
    ever_held = L > 1 or bool((entry0 > 0).any())
    reentry = cfg.reentry_subtract or cfg.reentry_zero
    # crossings of the state: snnTorch's delayed reset is owed at the next step where the previous state is
    # above threshold (the reference's rule; after a refractory period that is the held spike value)
    if not ever_held and not (cfg.post_zero and reentry):
        CROSS = FIRED  # every step is live: the crossings are the spikes
    elif keep_crossings:
        CROSS = empty(x.shape, dtype, device)
    else:
        CROSS = torch.empty((2, *shape), dtype=dtype, device=device)
    populate_in_background(U, M, FIRED, CROSS)  # the loop fills them in time order
    crossed = torch.gt if cfg.strict else torch.ge
    owed = crossed(v0, threshold).to(dtype) if reentry else None
    jump = float(L + 1)  # gate += jump + k at a spike at position k: past the block, and it records k
    # block positions are small integers: exact in the gate's dtype (half precision would not hold large L)
    gate_dtype = torch.promote_types(dtype, torch.float32)
    positions = [torch.tensor(k, dtype=gate_dtype, device=device) for k in range(min(L, T))]  # 0-dim: fast
    block_positions = torch.arange(min(L, T), dtype=gate_dtype, device=device).view(-1, *([1] * len(shape)))
    live = torch.empty(shape, dtype=dtype, device=device) if ever_held else None
    live_mask = torch.empty(shape, dtype=torch.bool, device=device) if ever_held else None
    gate = entry0.to(gate_dtype)
    v = v0
    xs, Us, Fs, Ms, CROSSs = x.unbind(0), U.unbind(0), FIRED.unbind(0), M.unbind(0), CROSS.unbind(0)
    ring = CROSS.shape[0] != T
    common = ever_held and not cfg.reentry_zero and not cfg.post_zero
    subtract = cfg.reentry_subtract
    # a select, not lerp(v, u, live): 0*inf would turn an overflowing (infinite) candidate into NaN
    mul, le, hold = torch.mul, torch.le, torch.where
    entries, lasts = [], []
    for start in range(0, T, L):
        n = min(L, T - start)
        entry = gate
        if ever_held:
            gate = gate.clone()
        if common:  # the tight loop of the common case (snnTorch Leaky, R > 0): eight small ops per step
            cross_outs = CROSSs[start : start + n] if not ring else itertools.repeat(CROSSs[0])
            steps = zip(positions, Us[start : start + n], xs[start : start + n], cross_outs)
            for k, (position, ut, xt, cross_out) in enumerate(steps):
                mul(v, decay, out=ut)
                ut.add_(xt)
                if subtract:  # (v*decay + x) - owed*threshold; the product is exact
                    ut.addcmul_(owed, threshold, value=-1)
                le(gate, position, out=live)
                hold(le(gate, position, out=live_mask), ut, v, out=ut)  # held neurons keep v
                owed = crossed(ut, threshold, out=cross_out)  # owed is read above before this overwrites it
                gate.addcmul_(owed, live, value=jump + k)  # a spike: the gate jumps; its block's spikes below
                v = ut
        for k in range(0 if common else n):
            t = start + k
            ut = Us[t]
            if cfg.reentry_zero:  # decay * ((1 - owed) * v) + x
                torch.mul(v, 1 - owed, out=ut).mul_(decay)  # a product as in the reference: -inf stays -inf
            else:
                torch.mul(v, decay, out=ut)
            ut.add_(xs[t])
            if cfg.reentry_subtract:  # (v*decay + x) - owed*threshold; the product is exact
                ut.addcmul_(owed, threshold, value=-1)
            if ever_held:
                torch.le(gate, positions[k], out=live)
                hold(torch.le(gate, positions[k], out=live_mask), ut, v, out=ut)  # held neurons keep v
            cross = crossed(ut, threshold, out=CROSSs[t % 2] if ring else CROSSs[t])
            if ever_held:
                fired = torch.mul(cross, live, out=Fs[t])
                gate.add_(fired, alpha=jump + k)
            elif CROSS is FIRED:
                fired = cross
            else:
                fired = Fs[t].copy_(cross)
            if cfg.post_zero:
                v = torch.mul(ut, 1 - fired, out=Ms[t])  # the reference's v*(1 - spike): -inf stays -inf
                if reentry:
                    cross = crossed(v, threshold, out=cross)
            else:
                v = ut
            owed = cross
        if ever_held:
            gate.sub_(entry)  # jump + spike position, 0 where no spike
            spiked = torch.gt(gate, 0).to(gate_dtype)
            position = gate.sub_(spiked, alpha=jump)  # spike position, 0 where none
            if common:  # the block's spikes at once: position k where spiked (-1 matches no position)
                torch.eq(block_positions[:n], position + spiked - 1, out=FIRED[start : start + n])
            entries.append(entry)
            lasts.append(torch.add(position, 1 - spiked, alpha=L))  # L where none
            gate = position.add_(spiked).sub_(1)  # next block's entry: the spike position, -1 where none
    if ever_held:
        windows = (torch.stack(entries), torch.stack(lasts))
    else:
        windows = None
        entries = [FIRED[T - 2] - 1 if T > 1 else entry0]
        lasts = [(1 - FIRED[T - 1]) * L]
    return U, M, FIRED, CROSS if keep_crossings else None, windows, entries[-1], lasts[-1]


def _live_chunks(T, L, C, windows, live_buffer):
    """(start, stop, live mask or None) over the time steps from the end, in chunks of about C steps.

    The live mask of a block is ``entry <= k <= last``: ``clamp(k, entry, last) == k``, for several blocks
    at once as an [m, L, ...] view of ``live_buffer``.
    """
    if windows is None:
        for stop in range(T, 0, -C):
            yield max(0, stop - C), stop, None
        return
    entries, lasts = windows
    view = (1, -1) + (1,) * (entries.dim() - 1)
    pos = torch.arange(L, dtype=entries.dtype, device=entries.device).view(view)

    def live_mask(first_block, blocks, k0, k1):
        e = entries[first_block : first_block + blocks].unsqueeze(1)
        last = lasts[first_block : first_block + blocks].unsqueeze(1)
        p = pos[:, k0:k1]
        live = live_buffer[: blocks * (k1 - k0)].view(blocks, k1 - k0, *entries.shape[1:])
        torch.clamp(p, min=e, max=last, out=live)
        return torch.eq(live, p, out=live).flatten(0, 1)

    full_blocks = T // L
    tail = T - full_blocks * L
    if tail:
        yield full_blocks * L, T, live_mask(full_blocks, 1, 0, tail)
    if L <= C:
        per_chunk = max(1, C // L)
        for b1 in range(full_blocks, 0, -per_chunk):
            b0 = max(0, b1 - per_chunk)
            yield b0 * L, b1 * L, live_mask(b0, b1 - b0, 0, L)
    else:
        for b in range(full_blocks - 1, -1, -1):
            for k1 in range(L, 0, -C):
                k0 = max(0, k1 - C)
                yield b * L + k0, b * L + k1, live_mask(b, 1, k0, k1)


class _LIFSteps(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x, v0, decay, threshold, graded, entry0, block_len, cfg, derivative, surrogate):
        # re-entry masks for the backward: the crossings of the previous step at live steps
        keep_crossings = cfg.reentry_zero or (cfg.reentry_subtract and ctx.needs_input_grad[3])
        with _one_thread_for_small_steps(x):
            U, M, F, CROSS, windows, last_entry, last_spike = _forward(
                x, v0, decay, threshold, entry0, block_len, cfg, keep_crossings
            )
            S = F * graded if graded is not None else F
        last_entry = last_entry.to(torch.int64)
        last_spike = last_spike.to(torch.int64)
        ctx.cfg = cfg
        ctx.derivative = derivative
        ctx.surrogate = surrogate
        ctx.block_len = block_len
        entries, lasts = windows if windows is not None else (None, None)
        ctx.save_for_backward(v0, decay, threshold, graded, U, M, F, CROSS, entries, lasts)
        ctx.mark_non_differentiable(last_entry, last_spike)
        ctx.set_materialize_grads(False)  # unused outputs get None, not [T, ...] zeros
        return S, M, M[-1].clone(), last_entry, last_spike

    @staticmethod
    def backward(ctx, g_spikes, g_membrane, g_final_v, _g_entry, _g_spike):
        with _one_thread_for_small_steps(ctx.saved_tensors[4]):
            return _backward(ctx, g_spikes, g_membrane, g_final_v, *ctx.saved_tensors)


def _surrogate_terms(ctx, U, threshold, g_spikes, graded, live, out, scratch):
    """s = live * dL/dspike * graded * surrogate'(U - threshold) over a chunk, into ``out``."""
    surrogate = ctx.surrogate
    if surrogate is not None and surrogate.kind == "atan" and graded is None:
        # alpha/2 / (1 + (pi/2*alpha*m)^2) in four whole-chunk ops (float tolerance is all the backward needs)
        (alpha,) = surrogate.args
        z = torch.add(ctx.shifted_threshold, U, alpha=math.pi / 2 * alpha, out=scratch)  # c*U - c*threshold
        denominator = torch.addcmul(ctx.two_over_alpha, z, z, value=2 / alpha, out=z)  # (1 + z^2) * 2/alpha
        if live is not None:
            return torch.mul(g_spikes, live, out=out).div_(denominator)
        return torch.div(g_spikes, denominator, out=out)
    s = ctx.derivative(U - threshold)
    s.mul_(g_spikes)
    if graded is not None:
        s.mul_(graded)
    if live is not None:
        s.mul_(live)
    return out.copy_(s)


def _backward(ctx, g_spikes, g_membrane, g_final_v, v0, decay, threshold, graded, U, M, F, CROSS, entries, lasts):
    cfg = ctx.cfg
    need_x, need_v0, need_decay, need_threshold, need_graded = ctx.needs_input_grad[:5]
    T, shape, dtype, device = U.shape[0], U.shape[1:], U.dtype, U.device
    use_surrogate = g_spikes is not None and ctx.derivative is not None
    ctx.one = torch.ones((), dtype=dtype, device=device)
    if ctx.surrogate is not None and ctx.surrogate.kind == "atan":
        alpha = ctx.surrogate.args[0]
        ctx.shifted_threshold = threshold * (-math.pi / 2 * alpha)
        ctx.two_over_alpha = torch.tensor(2 / alpha, dtype=dtype, device=device)
    OWED = None
    if CROSS is not None:  # re-entry: a live step whose previous state was above threshold
        owed0 = (torch.gt if cfg.strict else torch.ge)(v0, threshold).to(dtype)
        OWED = torch.cat([owed0[None], CROSS[:-1]])

    def zeros():
        return torch.zeros(shape, dtype=dtype, device=device)

    a = g_final_v.clone() if g_final_v is not None else zeros()  # dL/dv after the current chunk
    gx = empty(U.shape, dtype, device)
    populate_in_background(gx, reverse=True)  # filled from the last step back
    g_decay = zeros() if need_decay else None
    g_threshold = zeros() if need_threshold else None
    g_graded = zeros() if need_graded and g_spikes is not None else None
    L = ctx.block_len
    C = max(1, min(T, _BACKWARD_CHUNK_ELEMENTS // max(1, U[0].numel())))
    if L <= 4 * C:
        C = max(C, min(L, T))  # whole blocks per chunk
    # chunk buffers, reused (fresh [C, ...] temporaries per chunk would each pay page faults)
    live_buffer, P_buffer, Q_buffer, s_buffer, scratch = (torch.empty((C, *shape), dtype=dtype, device=device) for _ in range(5))
    decay_minus_one = float(decay) - 1 if decay.dim() == 0 else decay - 1
    windows = (entries, lasts) if entries is not None else None
    for start, stop, live in _live_chunks(T, L, C, windows, live_buffer):
        n = stop - start
        reentering = None
        if OWED is not None:
            reentering = OWED[start:stop] * live if live is not None else OWED[start:stop]
        # through: where the charged membrane reaches the state (live, and not reset to zero at once)
        through = live
        if cfg.post_zero:
            through = live - F[start:stop] if live is not None else 1 - F[start:stop]
        rz = 1 - reentering if cfg.reentry_zero else None  # u = v*0 + x: nothing reaches v
        decay_through = through if rz is None else (rz if through is None else through * rz)
        # P = (1 - live) + decay * decay_through
        if decay_through is None:
            P = decay.expand((n, *shape))
        elif decay_through is live:  # 1 + live*(decay - 1): exact for decay in [0.5, 2], else to float tolerance
            if isinstance(decay_minus_one, float):
                P = torch.add(ctx.one, live, alpha=decay_minus_one, out=P_buffer[:n])
            else:
                P = torch.mul(live, decay_minus_one, out=P_buffer[:n]).add_(1)
        elif live is None:
            P = torch.mul(decay_through, decay, out=P_buffer[:n])
        else:
            P = torch.lerp(1 - live, decay, decay_through)
        s = None
        if use_surrogate:
            s = _surrogate_terms(
                ctx, U[start:stop], threshold, g_spikes[start:stop], graded, live, s_buffer[:n], scratch[:n]
            )
        B = gx[start:stop]  # b_t (W_t), then dL/du_t
        if through is live and rz is None:
            # W_t = b_t + s_t: a held step passes b on (s = 0 there), a live one sends decay*(b + s) back,
            # so W_{t-1} = P_t*W_t + s_{t-1} + dL/dM_{t-1}, and dL/du_t = live_t*W_t
            addend = s
            if g_membrane is not None:
                addend = torch.add(s, g_membrane[start:stop], out=s) if s is not None else g_membrane[start:stop]
            if addend is not None:
                torch.add(a, addend[n - 1], out=B[n - 1])
                addends, Ps, Bs, addcmul = addend.unbind(0), P.unbind(0), B.unbind(0), torch.addcmul
                for j in range(n - 1, 0, -1):  # the only per-step op of the backward
                    addcmul(addends[j - 1], Ps[j], Bs[j], out=Bs[j - 1])
            else:
                B[n - 1].copy_(a)
                for j in range(n - 1, 0, -1):
                    torch.mul(P[j], B[j], out=B[j - 1])
            a = P[0] * B[0]
            if live is not None:
                B.mul_(live)
            if s is not None and g_membrane is not None:  # s held s + dL/dM; the gradients below need s alone
                s.sub_(g_membrane[start:stop])
        else:
            if s is not None:
                Q = torch.mul(s, decay, out=Q_buffer[:n])
                if rz is not None:
                    Q.mul_(rz)
            elif g_membrane is not None:
                Q = Q_buffer[:n].zero_()
            else:
                Q = None
            if g_membrane is not None:
                Q[1:] += g_membrane[start : stop - 1]
            if g_membrane is not None:
                torch.add(a, g_membrane[stop - 1], out=B[n - 1])
            else:
                B[n - 1].copy_(a)
            for j in range(n - 1, 0, -1):
                if Q is not None:
                    torch.addcmul(Q[j], B[j], P[j], out=B[j - 1])
                else:
                    torch.mul(B[j], P[j], out=B[j - 1])
            a = torch.addcmul(Q[0], B[0], P[0]) if Q is not None else B[0] * P[0]
            # dL/du = through * b + s
            if through is not None:
                if s is not None:
                    torch.addcmul(s, B, through, out=B)
                else:
                    B.mul_(through)
            elif s is not None:
                B.add_(s)
        if s is not None and need_threshold:
            g_threshold.sub_(s.sum(0))
        if need_threshold and cfg.reentry_subtract:
            g_threshold.sub_((B * reentering).sum(0))
        if need_decay:
            previous = M[start - 1 : stop - 1] if start > 0 else torch.cat([v0[None], M[: stop - 1]])
            contribution = B * previous
            if rz is not None:
                contribution.mul_(rz)
            g_decay.add_(contribution.sum(0))
        if g_graded is not None:
            g_graded.add_((g_spikes[start:stop] * F[start:stop]).sum(0))
    return (
        gx if need_x else None,
        a if need_v0 else None,
        g_decay.sum_to_size(decay.shape) if need_decay else None,
        g_threshold.sum_to_size(threshold.shape) if need_threshold else None,
        g_graded.sum_to_size(graded.shape) if g_graded is not None else None,
        None,
        None,
        None,
        None,
        None,
    )


def run_lif_steps(cfg, x, v0, entry0, block_len, derivative, surrogate=None):
    """Returns (spikes, membrane, final_v, last block's entry, last block's spike position).

    ``surrogate``: the ``surrogate.Surrogate`` that ``derivative`` belongs to, if any (known kinds get a
    faster backward).
    """
    return _LIFSteps.apply(x, v0, cfg.decay, cfg.threshold, cfg.graded, entry0, block_len, cfg, derivative, surrogate)
