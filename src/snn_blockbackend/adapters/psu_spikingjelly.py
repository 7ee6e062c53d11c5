"""SpikingJelly wrappers of the parallel spiking units: ``MemoryModule``s for ``step_mode='m'`` networks.

* ``PSU``: ``step_mode='m'`` runs the parallel form over [T, N, *]; ``step_mode='s'`` runs PSU's exact
  two-variable recurrence one step at a time. Both keep the streaming state in the memories ``h`` and ``k``,
  so consecutive calls continue the sequence (like ``LIFNode``) until ``functional.reset_net(net)``.
  ``store_v_seq=True`` keeps the membrane of the last multi-step call in ``v_seq``.
* ``IPSU``, ``RPSU``, ``PPSU``: multi-step only (one learned T x T matrix; sequences of exactly length T),
  like SpikingJelly's ``PSN``; they carry no state, so ``reset_net`` leaves them unchanged.

``surrogate_function`` takes a SpikingJelly surrogate (e.g. ``surrogate.ATan()``); by default the released
PSU code's ATan surrogate with a learnable slope is used. All math is in ``snn_blockbackend.psu``.
"""

from __future__ import annotations

import logging
import warnings

import torch

from ..psu import modules as _units
from ..psu.functional import DEFAULT_TAU, DEFAULT_THRESHOLD, PSUState
from .registry import SPIKINGJELLY

SPIKINGJELLY.require()

logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # SpikingJelly's import probes Triton
with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    from spikingjelly.activation_based import base  # noqa: E402

__all__ = ["IPSU", "PPSU", "PSU", "RPSU"]


class PSU(base.MemoryModule):
    def __init__(self, tau=DEFAULT_TAU, threshold=DEFAULT_THRESHOLD, leak="released", surrogate_function=None,
                 alpha=None, learn_alpha=True, step_mode="m", store_v_seq=False, backend="auto"):  # fmt: skip
        super().__init__()
        self.unit = _units.PSU(tau, threshold, leak, alpha, learn_alpha, surrogate_function, backend)
        self.step_mode = step_mode
        self.store_v_seq = store_v_seq
        self.register_memory("h", 0.0)
        self.register_memory("k", 0.0)
        if store_v_seq:
            self.register_memory("v_seq", None)

    def _state(self, neuron_shape):
        if not isinstance(self.h, torch.Tensor):
            return None  # after reset_net: a fresh sequence
        if self.h.shape != neuron_shape:
            raise ValueError(
                f"PSU holds the state of a previous input of shape {tuple(self.h.shape)} per step, but this input "
                f"has {tuple(neuron_shape)}; call spikingjelly.activation_based.functional.reset_net(net) "
                "before a new batch"
            )
        return PSUState(self.h, self.k)

    def single_step_forward(self, x: torch.Tensor) -> torch.Tensor:
        result = self.unit.step(x, self._state(x.shape))
        self.h, self.k = result.state
        return result.spikes

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        result = self.unit.run(x_seq, self._state(x_seq.shape[1:]))
        self.h, self.k = result.state
        if self.store_v_seq:
            self.v_seq = result.membrane
        return result.spikes

    def extra_repr(self):
        return super().extra_repr() + f", store_v_seq={self.store_v_seq}"


class _Learned(base.MemoryModule):
    unit_class: type

    def __init__(self, T, tau=DEFAULT_TAU, threshold=DEFAULT_THRESHOLD, leak="released", surrogate_function=None,
                 alpha=None, learn_alpha=True, step_mode="m", backend="auto"):  # fmt: skip
        super().__init__()
        self.unit = self.unit_class(T, tau, threshold, leak, alpha, learn_alpha, surrogate_function, backend)
        self.step_mode = step_mode

    def supported_step_mode(self):
        return ("m",)  # one learned T x T matrix over the whole sequence (like SpikingJelly's PSN)

    @property
    def T(self):
        return self.unit.T

    def multi_step_forward(self, x_seq: torch.Tensor) -> torch.Tensor:
        return self.unit(x_seq)


class IPSU(_Learned):
    unit_class = _units.IPSU


class RPSU(_Learned):
    unit_class = _units.RPSU


class PPSU(_Learned):
    unit_class = _units.PPSU
