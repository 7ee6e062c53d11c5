"""SpikingJelly 2.x: block neurons as subclasses that override the functional state transitions.

2.x has no ``backend=`` argument and no ``functional.set_backend``; on CPU it always runs its Python reference
loop. Its hook for a different implementation is the explicit-state transition of ``MemoryModule``:
``single_step_functional_forward`` / ``multi_step_functional_forward`` (``LIFNode.multi_step_forward`` routes
through an override of them), plus ``multi_step_forward`` itself, because with ``store_v_seq=True``
``BaseNode.multi_step_forward`` would loop over single steps. ``convert(net)`` swaps stock nodes for ours.
"""

from __future__ import annotations


import torch
from spikingjelly.activation_based import neuron, surrogate

from . import _common

VERSION = "2"
SURROGATE_BASES = (surrogate.SurrogateFunctionBase,)
NAMED_SURROGATES = {"Sigmoid": surrogate.Sigmoid, "ATan": surrogate.ATan, "SuperSpike": surrogate.SuperSpike}



def map_surrogate(surrogate_function):
    """The engine surrogate for a SpikingJelly ``surrogate_function`` (see ``_common.engine_surrogate``)."""
    return _common.engine_surrogate(surrogate_function, SURROGATE_BASES, NAMED_SURROGATES)


class _BlockNodeMixin(_common.BlockMemories):
    """Memories, state materialisation and the engine call shared by the three 2.x Block nodes."""

    def materialize_states(self, inputs, states, step_mode):
        states = list(super().materialize_states(inputs, states, step_mode))  # v, as the stock node does
        x0 = inputs[0][0] if step_mode == "m" else inputs[0]
        for index, name in enumerate(self._memories):
            value = states[index]
            if name == "a":
                if not isinstance(value, torch.Tensor) or value.shape != x0.shape:
                    value = torch.full_like(x0, value if isinstance(value, float) else 0.0)
                states[index] = value.to(dtype=x0.dtype, device=x0.device)
            elif name == "refractory":
                states[index] = _common.initial_refractory(value, x0)
        return tuple(states)

    def _engine_profile(self, training: bool):
        function = map_surrogate(self.surrogate_function)
        if self.adaptive:
            return _common.alif_profile(function)
        return _common.lif_profile(self, VERSION, self.parametric, function)

    def _engine(self, x_seq: torch.Tensor, states: tuple):
        if getattr(self, "_neuron_precision", None) is not None:
            raise NotImplementedError(
                f"{self._get_name()}: SpikingJelly's neuron precision conversion is not supported by the block "
                "engine (it runs in the input's dtype); undo the precision conversion or unconvert(net) first"
            )
        names = list(self._memories)
        profile, params = self._profile(x_seq)
        result = _common.run_engine(self, x_seq, profile, params, dict(zip(names, states)))
        return result, tuple(result.state[name] for name in names)

    # -- the transitions SpikingJelly 2.x calls ------------------------------------------------
    def single_step_functional_forward(self, inputs, states, **kwargs):
        if self.refractory_steps == 0 and not self.adaptive:
            return super().single_step_functional_forward(inputs, states, **kwargs)  # the stock step
        _common.check_single_step_input(inputs[0])
        result, states = self._engine(inputs[0].unsqueeze(0), states)
        return (result.spikes[0],), states

    def multi_step_functional_forward(self, inputs, states, **kwargs):
        _common.check_multi_step_input(inputs[0])
        result, states = self._engine(inputs[0], states)
        return (result.spikes,), states

    def multi_step_forward(self, x_seq: torch.Tensor, *args, **kwargs):
        if args or kwargs:
            raise TypeError(f"{self._get_name()} takes one input sequence, got extra arguments")
        _common.check_multi_step_input(x_seq)
        states = self.materialize_states((x_seq,), tuple(self._memories.values()), "m")
        result, states = self._engine(x_seq, states)
        for name, value in zip(list(self._memories), states):
            self._memories[name] = value
        self.v_seq = result.membrane if self.store_v_seq else None
        return result.spikes

    def extra_repr(self):
        return super().extra_repr() + f", refractory_steps={self.refractory_steps}"


class BlockLIFNode(_BlockNodeMixin, neuron.LIFNode):
    """``neuron.LIFNode`` (SpikingJelly 2.x) on the block engine, plus an absolute refractory period.

    Same arguments and defaults as ``LIFNode``, plus ``refractory_steps`` R >= 0: after a spike the membrane
    stays at its post-reset value and no spike can occur for R steps. Multi-step mode runs the engine on the
    whole sequence; single-step mode runs the stock step when R = 0 and the engine one step at a time
    otherwise (with a ``refractory`` countdown memory). ``functional.reset_net`` resets ``v`` and the countdown.
    """

    def __init__(
        self,
        tau: float = 2.0,
        decay_input: bool = True,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function=_common.stock_default(neuron.LIFNode),
        detach_reset: bool = False,
        step_mode="s",
        store_v_seq: bool = False,
        refractory_steps: int = 0,
        check_finite: bool = True,
    ):
        _common.check_lif_arguments(tau, v_threshold, v_reset, detach_reset)
        super().__init__(
            tau, decay_input, v_threshold, v_reset, surrogate_function, detach_reset, step_mode, store_v_seq
        )
        self._init_block(refractory_steps, check_finite)


class BlockParametricLIFNode(_BlockNodeMixin, neuron.ParametricLIFNode):
    """``neuron.ParametricLIFNode`` (SpikingJelly 2.x) on the block engine, plus ``refractory_steps``;
    ``w`` (1/tau = sigmoid(w)) stays the learnable parameter. See ``BlockLIFNode``."""

    parametric = True

    def __init__(
        self,
        init_tau: float = 2.0,
        decay_input: bool = True,
        v_threshold: float = 1.0,
        v_reset: float | None = 0.0,
        surrogate_function=_common.stock_default(neuron.ParametricLIFNode),
        detach_reset: bool = False,
        step_mode="s",
        store_v_seq: bool = False,
        refractory_steps: int = 0,
        check_finite: bool = True,
    ):
        _common.check_lif_arguments(init_tau, v_threshold, v_reset, detach_reset, tau_name="init_tau")
        super().__init__(
            init_tau, decay_input, v_threshold, v_reset, surrogate_function, detach_reset, step_mode, store_v_seq
        )
        self._init_block(refractory_steps, check_finite)


class BlockALIFNode(_BlockNodeMixin, neuron.BaseNode):
    """An adaptive-threshold LIF (SpikingJelly has none) in SpikingJelly's form, on the engine's ``paper``
    profile (Taylor, King & Harper 2023). Per step, with S detached in the reset:

        H[t]     = (1 - 1/tau) * V[t-1] + X[t]
        theta[t] = v_threshold + adaptation_strength * a[t-1]
        S[t]     = H[t] > theta[t]                  (strict, unlike LIFNode's >=)
        V[t]     = H[t] * (1 - S[t])                (hard reset to 0)
        a[t]     = (1 - 1/tau_adapt) * a[t-1] + S[t]

    then ``refractory_steps`` R: for R steps after a spike V is held at 0 and no spike occurs (a keeps
    decaying). With ``adaptation_strength=0`` this is ``LIFNode(tau, decay_input=False, v_reset=0.,
    detach_reset=True)`` up to one rounding of the charge (2.x computes ``V - V/tau + X``) and exact ties.
    Memories ``v``, ``a`` and (R > 0) ``refractory`` are reset by ``functional.reset_net``; ``v_seq``
    (``store_v_seq=True``) holds V after each step.
    """

    adaptive = True

    def __init__(
        self,
        tau: float = 2.0,
        tau_adapt: float = 10.0,
        adaptation_strength: float = 1.0,
        v_threshold: float = 1.0,
        surrogate_function=_common.stock_default(neuron.BaseNode),
        step_mode="s",
        store_v_seq: bool = False,
        refractory_steps: int = 0,
        check_finite: bool = True,
    ):
        _common.check_alif_arguments(tau, tau_adapt, adaptation_strength, v_threshold)
        super().__init__(v_threshold, 0.0, surrogate_function, True, step_mode=step_mode, store_v_seq=store_v_seq)
        self.tau = tau
        self.tau_adapt = tau_adapt
        self.adaptation_strength = adaptation_strength
        self._init_block(refractory_steps, check_finite)

    def extra_repr(self):
        return (
            super().extra_repr()
            + f", tau={self.tau}, tau_adapt={self.tau_adapt}, adaptation_strength={self.adaptation_strength}"
        )


def convert(net, refractory_steps: int = 0):
    """Replace every stock ``LIFNode`` / ``ParametricLIFNode`` in ``net`` (nested too) by ``BlockLIFNode`` /
    ``BlockParametricLIFNode`` with the same arguments, memories and (the same) ``w`` parameter. Returns
    ``net`` (or the replacement when ``net`` itself is a stock node)."""
    make = _common.stock_to_block(
        neuron.LIFNode, neuron.ParametricLIFNode, BlockLIFNode, BlockParametricLIFNode, (), refractory_steps
    )
    return _invalidate_reset_cache(_common.swap_modules(net, make))


def unconvert(net):
    """The inverse of ``convert``: our LIF nodes back to the stock classes."""
    make = _common.block_to_stock(neuron.LIFNode, neuron.ParametricLIFNode, BlockLIFNode, BlockParametricLIFNode, ())
    return _invalidate_reset_cache(_common.swap_modules(net, make))


def _invalidate_reset_cache(net):
    # functional.reset_net caches the list of resettable modules per network; a swap must clear it
    from spikingjelly.activation_based import functional

    invalidate = getattr(functional, "invalidate_reset_cache", None)
    if invalidate is not None:
        for module in net.modules():
            invalidate(module)
    return net
