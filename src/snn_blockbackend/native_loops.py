"""The native framework neurons the benchmarks compare against, each as a user runs it over a time-first
sequence: a per-step Python loop over ``x.unbind(0)`` (indexing ``x[t]`` would make the backward pass
quadratic in T) or the framework's own multi-step mode. Each builder imports its framework on call
(ImportError: not installed) and returns a ``Runner`` (input [T, ...] -> spikes [T, ...])."""

from __future__ import annotations

import logging
import warnings

import torch

from .timing import Runner


def snntorch_leaky(reset_mechanism: str = "subtract", beta: float = 0.9, threshold: float = 1.0) -> Runner:
    """snnTorch ``Leaky`` in the per-step loop of snnTorch's tutorials."""
    import snntorch as snn

    lif = snn.Leaky(beta=beta, threshold=threshold, reset_mechanism=reset_mechanism)

    def run(x):
        mem = lif.reset_mem()
        spikes = []
        for xt in x.unbind(0):
            spk, mem = lif(xt, mem)
            spikes.append(spk)
        return torch.stack(spikes)

    return run


def spikingjelly_lif(**node_options) -> Runner:
    """SpikingJelly 2.x ``LIFNode(step_mode='m', **node_options)`` (the multi-step torch backend)."""
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # SpikingJelly's import probes Triton
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based import neuron

    node = neuron.LIFNode(step_mode="m", **node_options)

    def run(x):
        node.reset()
        return node(x)

    return run


def norse_lif_box(tau_mem_inv: float | None = None, v_th: float | None = None, subtract_reset: bool = False) -> Runner:
    """Norse ``LIFBoxCell`` (defaults: Norse's ``LIFBoxParameters()``) in a per-step loop over ``x.unbind(0)``
    (Norse's time-first ``LIF`` module indexes ``x[t]``, whose backward is quadratic in T on CPU)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import norse.torch as norse_torch
        from norse.torch.functional.reset import reset_subtract

    options = {}
    if tau_mem_inv is not None:
        options["tau_mem_inv"] = torch.tensor(tau_mem_inv)
    if v_th is not None:
        options["v_th"] = torch.tensor(v_th)
    if subtract_reset:
        options["reset_method"] = reset_subtract
    return _norse_loop(norse_torch.LIFBoxCell(norse_torch.LIFBoxParameters(**options)))


def norse_cell(name: str) -> Runner:
    """A Norse cell (``LIFCell``, ``LSNNCell``; default parameters) in a per-step loop over ``x.unbind(0)``."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import norse.torch as norse_torch

    return _norse_loop(getattr(norse_torch, name)())


def _norse_loop(cell) -> Runner:
    def run(x):
        state, spikes = None, []
        for xt in x.unbind(0):
            z, state = cell(xt, state)
            spikes.append(z)
        return torch.stack(spikes)

    return run

