"""Norse wrappers of the parallel spiking units: ``(output, state)`` modules over time-first sequences.

``PSU()(x, state=None) -> (spikes, PSUState)``: ``x`` is [T, ...]; pass the returned state to the next call to
continue the sequence (chunked processing equals one call on the concatenation). IPSU / RPSU / PPSU learn one
T x T matrix and run whole sequences of exactly length T, so their state is always ``None``. ``surrogate``
takes any ``margin -> spikes`` callable (e.g. ``lambda m: norse.torch.functional.threshold.threshold(m,
"super", 100.)``); by default the released ATan surrogate with a learnable slope is used.
All math is in ``snn_blockbackend.psu``; this module only maps conventions.
"""

from __future__ import annotations


import torch

from ..psu import modules as _units
from ..psu.functional import PSUState
# the Norse adapter checks the version and imports Norse (with its workaround for Norse 1.0's norse_op)
from .norse import norse_torch  # noqa: F401

__all__ = ["IPSU", "PPSU", "PSU", "PSUState", "RPSU"]


class PSU(_units.PSU):
    def forward(self, x: torch.Tensor, state: PSUState | None = None):
        result = self.run(x, state)
        return result.spikes, result.state


class _Learned:
    def forward(self, x: torch.Tensor, state=None):
        if state is not None:
            raise ValueError(
                f"{type(self).__name__} has no state between calls (it runs whole sequences of length T={self.T}); "
                "pass state=None"
            )
        return self.run(x).spikes, None


class IPSU(_Learned, _units.IPSU):
    pass


class RPSU(_Learned, _units.RPSU):
    pass


class PPSU(_Learned, _units.PPSU):
    pass
