"""snnTorch wrappers of the parallel spiking units: time-first sequence modules in the style of ``StateLeaky``.

``PSU``, ``IPSU``, ``RPSU``, ``PPSU`` take a whole sequence [T, B, ...] and return ``(spk, mem)``
(``output=False``: ``mem`` only), like snnTorch 1.x's ``StateLeaky``. ``spike_grad`` takes a snnTorch surrogate
(e.g. ``snntorch.surrogate.atan()``); by default the unit uses the released PSU code's ATan surrogate with a
learnable slope (``alpha``, one per layer). PSU also keeps ``step(x_t, state)`` for streaming inference.
All math is in ``snn_blockbackend.psu``; this module only maps conventions.
"""

from __future__ import annotations

import torch

from ..psu import modules as _units
from ..psu.functional import DEFAULT_TAU, DEFAULT_THRESHOLD
from .registry import SNNTORCH

SNNTORCH.require()

import snntorch  # noqa: E402,F401  (after the version check, so a missing snnTorch fails clearly)

__all__ = ["IPSU", "PPSU", "PSU", "RPSU"]


class _SnnTorchOutput:
    def _finish(self, result):
        return (result.spikes, result.membrane) if self.output else result.membrane

    def forward(self, x: torch.Tensor):
        """``x``: time-first input current [T, B, ...]; returns ``(spk, mem)`` (or ``mem``)."""
        return self._finish(self.run(x))


class PSU(_SnnTorchOutput, _units.PSU):
    def __init__(self, tau=DEFAULT_TAU, threshold=DEFAULT_THRESHOLD, leak="released", spike_grad=None, alpha=None,
                 learn_alpha=True, output=True, backend="auto"):  # fmt: skip
        super().__init__(tau, threshold, leak, alpha, learn_alpha, spike_grad, backend)
        self.output = output


class _Learned(_SnnTorchOutput):
    def __init__(self, T, tau=DEFAULT_TAU, threshold=DEFAULT_THRESHOLD, leak="released", spike_grad=None,
                 alpha=None, learn_alpha=True, output=True, backend="auto"):  # fmt: skip
        super().__init__(T, tau, threshold, leak, alpha, learn_alpha, spike_grad, backend)
        self.output = output


class IPSU(_Learned, _units.IPSU):
    pass


class RPSU(_Learned, _units.RPSU):
    pass


class PPSU(_Learned, _units.PPSU):
    pass
