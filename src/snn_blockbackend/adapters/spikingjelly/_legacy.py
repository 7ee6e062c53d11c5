"""SpikingJelly 0.0.0.0.14: block neurons selected with ``backend='block'`` in multi-step mode.

0.0.0.0.14 chooses an implementation through ``MemoryModule.backend`` (checked against ``supported_backends``
and ``base.check_backend_library``, which rejects unknown names). Our classes add ``'block'`` to
``supported_backends`` in step mode ``'m'`` and accept it in the setter, so

    functional.set_step_mode(net, 'm')
    functional.set_backend(net, 'block')

switches every Block* node of a network (stock nodes log SpikingJelly's usual warning and keep theirs).
"""

from __future__ import annotations

import warnings

import torch

with warnings.catch_warnings():  # 0.0.0.0.14 decorates many helpers with the deprecated torch.jit.script
    warnings.simplefilter("ignore", DeprecationWarning)
    from spikingjelly.activation_based import base, neuron, surrogate

from . import _common

VERSION = "0.0.0.0.14"
BLOCK_BACKEND = "block"
SURROGATE_BASES = (surrogate.SurrogateFunctionBase, surrogate.MultiArgsSurrogateFunctionBase)
NAMED_SURROGATES = {"Sigmoid": surrogate.Sigmoid, "ATan": surrogate.ATan}



def map_surrogate(surrogate_function):
    """The engine surrogate for a SpikingJelly ``surrogate_function`` (see ``_common.engine_surrogate``)."""
    return _common.engine_surrogate(surrogate_function, SURROGATE_BASES, NAMED_SURROGATES)


class _BlockNodeMixin(_common.BlockMemories):
    """Backend plumbing, memories and the engine call shared by the three 0.0.0.0.14 Block nodes."""

    # -- backend selection ---------------------------------------------------------------------
    @property
    def supported_backends(self):
        stock = super().supported_backends
        return stock + (BLOCK_BACKEND,) if self.step_mode == "m" else stock

    @property
    def backend(self):
        return self._backend

    @backend.setter
    def backend(self, value):
        if value == BLOCK_BACKEND:
            if value not in self.supported_backends:  # same rule and message as the stock setter
                raise NotImplementedError(
                    f"{value} is not a supported backend of {self._get_name()}! "
                    "(the block backend needs step_mode='m': call functional.set_step_mode(net, 'm') first)"
                )
            self._backend = value  # base.check_backend_library only knows torch/cupy/lava
        else:
            base.MemoryModule.backend.fset(self, value)

    # -- the engine ----------------------------------------------------------------------------
    def _engine_profile(self, training: bool):
        function = map_surrogate(self.surrogate_function)
        if self.adaptive:
            return _common.alif_profile(function)
        # eval-mode LIFNode runs TorchScript kernels whose hard-reset charge is 2.x's arithmetic
        eval_hard_reset = not training and not self.parametric and self.v_reset is not None
        return _common.lif_profile(self, "2" if eval_hard_reset else VERSION, self.parametric, function)

    def _state(self, x0: torch.Tensor) -> dict:
        state = {}
        for name in ("v", "a") if self.adaptive else ("v",):
            value = self._memories[name]
            if isinstance(value, float):  # as BaseNode.v_float_to_tensor
                value = torch.full_like(x0.data, value)
            elif value.shape != x0.shape:
                raise ValueError(
                    f"{self._get_name()}: the stored state {name!r} has shape {tuple(value.shape)} but this input's "
                    f"time step has shape {tuple(x0.shape)}; call functional.reset_net(net) between batches"
                )
            state[name] = value.to(dtype=x0.dtype, device=x0.device)
        countdown = self._countdown()
        if countdown is not None:
            state["refractory"] = _common.initial_refractory(countdown, x0)
        return state

    def _run(self, x_seq: torch.Tensor):
        profile, params = self._profile(x_seq)
        result = _common.run_engine(self, x_seq, profile, params, self._state(x_seq[0]))
        for name, value in result.state.items():  # v, a; the countdown only where it is a memory (R > 0)
            if name in self._memories:
                self._memories[name] = value
        return result

    def single_step_forward(self, x: torch.Tensor):
        if self.refractory_steps == 0 and not self.adaptive:
            return super().single_step_forward(x)  # the stock step (no refractory period to honour)
        _common.check_single_step_input(x)
        return self._run(x.unsqueeze(0)).spikes[0]

    def multi_step_forward(self, x_seq: torch.Tensor):
        if self.backend != BLOCK_BACKEND and self.refractory_steps == 0 and not self.adaptive:
            return super().multi_step_forward(x_seq)  # stock torch/cupy backend
        # backend='block', or a refractory period / adaptation that only the engine implements
        _common.check_multi_step_input(x_seq)
        result = self._run(x_seq)
        if self.store_v_seq:
            self.v_seq = result.membrane
        return result.spikes

    def extra_repr(self):
        return super().extra_repr() + f", refractory_steps={self.refractory_steps}"


class BlockLIFNode(_BlockNodeMixin, neuron.LIFNode):
    """``neuron.LIFNode`` (SpikingJelly 0.0.0.0.14) on the block engine, plus an absolute refractory period.

    Same arguments and defaults as ``LIFNode``, plus ``refractory_steps`` R >= 0: after a spike the membrane
    stays at its post-reset value and no spike can occur for R steps. With R = 0 the results equal the stock
    ``LIFNode``'s; multi-step mode with ``backend='block'`` runs the engine on the whole sequence, and with
    R > 0 the engine runs whatever the backend (the stock backends have no refractory period).
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
        backend="torch",
        store_v_seq: bool = False,
        refractory_steps: int = 0,
        check_finite: bool = True,
    ):
        _common.check_lif_arguments(tau, v_threshold, v_reset, detach_reset)
        super().__init__(
            tau, decay_input, v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend, store_v_seq
        )
        self._init_block(refractory_steps, check_finite)


class BlockParametricLIFNode(_BlockNodeMixin, neuron.ParametricLIFNode):
    """``neuron.ParametricLIFNode`` (SpikingJelly 0.0.0.0.14) on the block engine, plus ``refractory_steps``;
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
        backend="torch",
        store_v_seq: bool = False,
        refractory_steps: int = 0,
        check_finite: bool = True,
    ):
        _common.check_lif_arguments(init_tau, v_threshold, v_reset, detach_reset, tau_name="init_tau")
        super().__init__(
            init_tau, decay_input, v_threshold, v_reset, surrogate_function, detach_reset, step_mode, backend,
            store_v_seq,
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
    detach_reset=True)`` except at exact ties (V == v_threshold). Memories ``v``, ``a`` and (when R > 0)
    ``refractory`` are reset by ``functional.reset_net``; ``v_seq`` (``store_v_seq=True``) holds V after each
    step. The engine runs in every backend (``'block'`` is accepted in multi-step mode for
    ``functional.set_backend``).
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
        backend="torch",
        store_v_seq: bool = False,
        refractory_steps: int = 0,
        check_finite: bool = True,
    ):
        _common.check_alif_arguments(tau, tau_adapt, adaptation_strength, v_threshold)
        super().__init__(v_threshold, 0.0, surrogate_function, True, step_mode, backend, store_v_seq)
        self.tau = tau
        self.tau_adapt = tau_adapt
        self.adaptation_strength = adaptation_strength
        self._init_block(refractory_steps, check_finite)

    def neuronal_charge(self, x: torch.Tensor):
        raise NotImplementedError("BlockALIFNode runs on the block engine; it has no per-step charge method")

    def extra_repr(self):
        return (
            super().extra_repr()
            + f", tau={self.tau}, tau_adapt={self.tau_adapt}, adaptation_strength={self.adaptation_strength}"
        )


def convert(net, refractory_steps: int = 0):
    """Replace every stock ``LIFNode`` / ``ParametricLIFNode`` in ``net`` (nested too) by ``BlockLIFNode`` /
    ``BlockParametricLIFNode`` with the same arguments, backend, memories and (the same) ``w`` parameter.
    Returns ``net`` (or the replacement when ``net`` itself is a stock node). Set ``backend='block'`` with
    ``functional.set_backend(net, 'block')`` in multi-step mode."""
    make = _common.stock_to_block(
        neuron.LIFNode, neuron.ParametricLIFNode, BlockLIFNode, BlockParametricLIFNode, ("backend",), refractory_steps
    )
    return _common.swap_modules(net, make)


def unconvert(net):
    """The inverse of ``convert``: our LIF nodes back to stock ones (``backend='block'`` becomes ``'torch'``)."""

    def stock_lif(**arguments):
        return neuron.LIFNode(**_stock_backend(arguments))

    def stock_plif(**arguments):
        return neuron.ParametricLIFNode(**_stock_backend(arguments))

    make = _common.block_to_stock(stock_lif, stock_plif, BlockLIFNode, BlockParametricLIFNode, ("backend",))
    return _common.swap_modules(net, make)


def _stock_backend(arguments: dict) -> dict:
    if arguments.get("backend") == BLOCK_BACKEND:
        arguments = {**arguments, "backend": "torch"}
    return arguments
