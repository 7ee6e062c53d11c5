"""The block algorithm in plain PyTorch ops (CPU and GPU).

With an absolute refractory period of R steps a neuron spikes at most once per block of L = R+1 steps.
Time is cut into blocks; within a block the engine tracks only *where* the first spike happened, and the
refractory period is a positional mask (``position < entry`` where ``entry`` is the previous block's spike
position), so no per-step refractory counter exists. A short last block handles T not divisible by L.

Exactness: the sub-threshold recurrence is evaluated with the same operations, in the same order, as the
sequential reference (a Horner chain ``v*decay + x``, not the paper's convolution, whose different rounding
could flip spikes near threshold). Spike detection, surrogate spikes, resets, refractory masks and output
assembly are done once per block on whole [L, ...] tensors. Gradients come from autograd through exactly
these operations, which is BPTT of the reference.

Two paths:
* ``fast`` (``torch_lif``): profiles with one held state variable, a bitwise-linear charge and a detached
  reset (the paper's LIF, snnTorch ``Leaky`` with its default delayed reset), with a hand-written backward.
* ``generic``: any profile; per step the profile's charge, surrogate spike and reset run under autograd,
  with the refractory period still given by block positions.
"""

from __future__ import annotations

import torch

from .. import surrogate as sg
from ..ops import has_data
from ..plugins import hookimpl
from .torch_lif import run_lif_steps


def _positions(length: int, like: torch.Tensor) -> torch.Tensor:
    return torch.arange(length, device=like.device).view(length, *([1] * like.dim()))


def _first_true(mask: torch.Tensor, none_value: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Index of the first True along dim 0 (``none_value`` where there is none) and the any-mask."""
    any_true = mask.any(0)
    first = mask.to(torch.uint8).argmax(0)
    return torch.where(any_true, first, none_value), any_true


def initial_state(profile, p, x, state):
    """The initial state (the profile's own where none is given), less its refractory countdown, and that countdown."""
    s = dict(state) if state is not None else profile.initial_state(p, x[0])
    countdown = s.pop("refractory", None)
    if countdown is None:
        countdown = torch.zeros(x.shape[1:], dtype=torch.long, device=x.device)
    return s, countdown.to(torch.long)


def describes_itself(profile, spec: str) -> bool:
    """Whether ``profile`` describes itself for a compiled kernel (``kernel_spec``, ``alif_spec``, ...)."""
    return callable(getattr(profile, spec, None))


def _initial(profile, p, x, state):
    s, countdown = initial_state(profile, p, x, state)
    # "entry": the position of the first block where a neuron that spiked recently is live again; it is
    # refractory before it. -1: no spike pending.
    entry = torch.where(countdown > 0, countdown, -1)
    return s, entry


def prepare_fast(profile, p, x, state, L):
    """Shared set-up of the LIF fast path (torch and numba): its description, initial v and entry."""
    cfg = profile.fast_lif(p)
    # A 0-dim parameter of another dtype (a Python float is float32 for half-precision input) meets the
    # full-shape membrane in the fast-path profiles' operations as the first operand of a product
    # (``beta * v``) or in a difference or comparison with it (``v - threshold``), where PyTorch rounds it to
    # the membrane's dtype first; ``spike * graded`` and ``owed * threshold`` are exact products of a 0/1 factor.
    # So the fast path computes with those parameters rounded (differentiably) to the input's dtype.
    cfg = cfg._replace(**{
        name: value.to(x.dtype)
        for name, value in (("decay", cfg.decay), ("threshold", cfg.threshold), ("graded", cfg.graded))
        if value is not None and value.dtype != x.dtype
    })
    s, entry = _initial(profile, p, x, state)
    pending = profile.pending_reset(p, s)
    if pending is not None:  # an initial membrane above threshold owes a delayed reset at the first step
        entry = torch.where((entry < 0) & pending, 0, entry)
    graded = cfg.graded
    if graded is not None and not graded.requires_grad and has_data(graded) and bool((graded == 1).all()):
        cfg = cfg._replace(graded=None)  # a factor of exactly 1 changes nothing
    return cfg, s["v"], entry


def finish_fast(refractory_steps, T, v, last_entry, last_spike):
    L = refractory_steps + 1
    n = (T - 1) % L + 1  # length of the last block
    return {"v": v, "refractory": _countdown(refractory_steps, n, last_spike < L, last_spike, last_entry)}


def run_fast(profile, p, x, refractory_steps, state):
    L = refractory_steps + 1
    cfg, v0, entry = prepare_fast(profile, p, x, state, L)
    spikes, membrane, v, last_entry, last_spike = run_lif_steps(
        cfg, x, v0, entry, L, profile.surrogate.derivative, profile.surrogate
    )
    return spikes, membrane, finish_fast(refractory_steps, x.shape[0], v, last_entry, last_spike)


def _countdown(refractory_steps, n, spiked, j0, prev_entry):
    """Refractory steps owed after the last block (length ``n``)."""
    after_spike = refractory_steps - (n - 1 - j0)
    carried = prev_entry - n
    return torch.where(spiked, after_spike, carried).clamp(min=0)


def run_plain(profile, p, x, state):
    """R = 0: the profile's step loop as the framework runs it (charge, spike, reset; nothing held). The same
    operations as ``run_generic`` at R = 0, whose masks are then all False, without them: this path is the
    fallback for the profiles no compiled kernel covers (Norse LIFRefracCell, custom surrogates, snnTorch's
    immediate reset) and must not be slower than the native step loop."""
    s, _ = initial_state(profile, p, x, state)  # at R = 0 the countdown is 0 (check_state)
    spikes, membranes = [], []
    for xt in x.unbind(0):
        charged, margin = profile.charge(p, s, xt)
        spike = profile.spike(margin)
        s = profile.reset(p, s, charged, spike)
        spikes.append(profile.emit(p, spike))
        membranes.append(profile.membrane(s))
    countdown = torch.zeros(x.shape[1:], dtype=torch.long, device=x.device)
    return torch.stack(spikes), torch.stack(membranes), {**s, "refractory": countdown}


def run_generic(profile, p, x, refractory_steps, state):
    if refractory_steps == 0:
        return run_plain(profile, p, x, state)
    L = refractory_steps + 1
    s, entry = _initial(profile, p, x, state)
    zero = torch.zeros((), dtype=x.dtype, device=x.device)
    spikes, membranes = [], []
    for xb in x.split(L):
        n = xb.shape[0]
        carry_refractory = _positions(n, xb[0]) < entry
        last_carry = int(entry.max()) if entry.numel() else 0  # positions >= this need no carry mask
        spiked = torch.zeros(x.shape[1:], dtype=torch.bool, device=x.device)
        j0 = torch.full(x.shape[1:], L, dtype=torch.long, device=x.device)
        for k, xt in enumerate(xb.unbind(0)):
            charged, margin = profile.charge(p, s, xt)
            refractory = spiked | carry_refractory[k] if k < last_carry else spiked
            spike = torch.where(refractory, zero, profile.spike(margin))
            after_reset = profile.reset(p, s, charged, spike)
            s = {
                name: torch.where(refractory, s[name] if name in profile.held else charged[name], after_reset[name])
                for name in profile.state_names
            }
            fired = spike != 0
            j0 = torch.where(fired, k, j0)
            spiked = spiked | fired
            spikes.append(profile.emit(p, spike))
            membranes.append(profile.membrane(s))
        prev_entry, entry = entry, torch.where(spiked, j0, -1)
    countdown = _countdown(refractory_steps, n, spiked, j0, prev_entry)
    return torch.stack(spikes), torch.stack(membranes), {**s, "refractory": countdown}


def _fast_path_dtypes(x, p, state) -> bool:
    """Whether the fast path computes this request as the profile's operations do: a full-shape state of the
    input's dtype, and parameters of the input's dtype or 0-dim ones (rounded to it, see ``prepare_fast``).
    Other mixes run the generic path, whose per-step operations promote as the native neuron's do."""
    states = [t for t in (state or {}).values() if t.is_floating_point()]
    if not all(t.dtype == x.dtype and t.shape == x.shape[1:] for t in states):
        return False
    return all(t.dtype == x.dtype or t.dim() == 0 for t in p.values() if t.is_floating_point())


class TorchBlockProvider:
    name = "torch"
    priority = 10

    def supports(self, profile, device, grad):
        if grad == "blocks" and not getattr(profile, "supports_block_gradient", False):
            return f"grad='blocks' (the paper's block gradient) is defined for the paper profiles, not {profile.name}"
        return None

    def run(self, profile, params, x, refractory_steps, state=None, grad="exact"):
        p = profile.prepare(params)
        if grad == "blocks":
            from .block_gradient import run_with_block_gradient

            return run_with_block_gradient(profile, p, x, refractory_steps, state)
        if profile.fast_lif_capable and isinstance(profile.surrogate, sg.Surrogate) and _fast_path_dtypes(x, p, state):
            return run_fast(profile, p, x, refractory_steps, state)
        if x.is_meta:
            raise NotImplementedError(
                f"meta tensors: the torch provider's generic path (here for {profile.describe()}) reads values per "
                "block; the operators (the LIF fast path, the generated numba kernels) run on meta tensors"
            )
        return run_generic(profile, p, x, refractory_steps, state)


@hookimpl
def snn_blockbackend_providers():
    return [TorchBlockProvider()]
