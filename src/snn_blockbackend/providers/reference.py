"""The sequential reference: one obvious step per time step. It is the ground truth; never optimise it."""

from __future__ import annotations

import torch

from ..plugins import hookimpl


def run_reference(profile, params, x, refractory_steps, state=None):
    """Run ``profile`` over time-first input ``x`` ([T, ...]) one step at a time.

    Returns ``(spikes, membranes, final_state)``; ``final_state`` holds the profile's state variables and
    ``refractory``: the number of refractory steps still to come for each neuron.
    """
    p = profile.prepare(params)
    s = dict(state) if state is not None else profile.initial_state(p, x[0])
    countdown = s.pop("refractory", None)
    if countdown is None:
        countdown = torch.zeros(x.shape[1:], dtype=torch.long, device=x.device)
    spikes, membranes = [], []
    for xt in x.unbind(0):
        charged, margin = profile.charge(p, s, xt)
        refractory = countdown > 0
        spike = torch.where(refractory, torch.zeros_like(margin), profile.spike(margin))
        after_reset = profile.reset(p, s, charged, spike)
        s = {
            name: torch.where(refractory, s[name] if name in profile.held else charged[name], after_reset[name])
            for name in profile.state_names
        }
        fired = spike != 0
        countdown = torch.where(fired, refractory_steps, (countdown - 1).clamp(min=0))
        spikes.append(profile.emit(p, spike))
        membranes.append(profile.membrane(s))
    return torch.stack(spikes), torch.stack(membranes), {**s, "refractory": countdown}


class ReferenceProvider:
    name = "reference"
    priority = 0  # never chosen by "auto" unless nothing else supports the request

    def supports(self, profile, device, grad):
        if grad != "exact":
            return "the reference computes exact BPTT gradients only"
        return None

    def run(self, profile, params, x, refractory_steps, state=None, grad="exact"):
        return run_reference(profile, params, x, refractory_steps, state)


@hookimpl
def snn_blockbackend_providers():
    return [ReferenceProvider()]
