"""``nn.Module``s for the parallel spiking units: PSU (fixed matrices), IPSU, RPSU, PPSU (learned T x T).

Input is time-first input current [T, B, ...]; ``forward`` returns spikes of the same shape, ``run`` the
full ``PSUResult`` (spikes, membrane, PSU state). Defaults are the released code's: tau = 2, threshold 0.5,
``leak="released"``, ATan surrogate with a learnable slope alpha = 2 (one per layer).
"""

from __future__ import annotations

import torch
from torch import nn

from . import functional as F
from .functional import PSUResult, PSUState


class _ParallelUnit(nn.Module):
    kind: str

    def __init__(self, tau, threshold, leak, alpha, learn_alpha, surrogate, backend, check_finite):
        super().__init__()
        F.leak_coefficients(tau, leak)  # validate now, not at the first forward
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)):
            raise TypeError(f"threshold must be a number, not {type(threshold).__name__}")
        self.tau = float(tau)
        self.threshold = float(threshold)
        self.leak = leak
        self.backend = backend
        self.check_finite = check_finite
        self.surrogate = surrogate
        if surrogate is None:
            slope = torch.tensor(float(F.DEFAULT_ALPHA if alpha is None else alpha))
            if learn_alpha:
                self.alpha = nn.Parameter(slope)
            else:
                self.register_buffer("alpha", slope)
        elif alpha is not None:
            raise ValueError("pass either alpha (slope of the built-in ATan surrogate) or surrogate, not both")
        else:
            self.alpha = None

    def _options(self, x):
        alpha = None
        if self.alpha is not None:
            # one learnable slope per layer; cast (differentiably) so float64 input works with the default float32
            alpha = self.alpha if self.alpha.dtype == x.dtype else self.alpha.to(x.dtype)
        return dict(
            tau=self.tau, threshold=self.threshold, leak=self.leak, alpha=alpha, surrogate=self.surrogate,
            backend=self.backend, check_finite=self.check_finite,
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.run(x).spikes

    def extra_repr(self):
        return f"tau={self.tau}, threshold={self.threshold}, leak={self.leak!r}, backend={self.backend!r}"


class PSU(_ParallelUnit):
    """Parallel Spiking Unit: H = A X, V = H + theta R sigmoid(H), S = spike(V - theta).

    No learnable matrix (A and R are fixed); runs any sequence length. ``run(x, state)`` continues a sequence
    (``result.state``), and ``step(x_t, state)`` is the exact recurrence for streaming inference.
    """

    kind = "psu"

    def __init__(self, tau=F.DEFAULT_TAU, threshold=F.DEFAULT_THRESHOLD, leak="released", alpha=None,
                 learn_alpha=True, surrogate=None, backend="auto", check_finite=True):  # fmt: skip
        super().__init__(tau, threshold, leak, alpha, learn_alpha, surrogate, backend, check_finite)

    def run(self, x: torch.Tensor, state: PSUState | None = None) -> PSUResult:
        return F.psu(x, state=state, **self._options(x))

    def step(self, x_t: torch.Tensor, state: PSUState | None = None) -> PSUResult:
        """One time step [B, ...] of the exact recurrence; start with ``state=None``."""
        options = self._options(x_t)
        options.pop("backend")
        return F.psu_step(x_t, state, **options)


class _LearnedUnit(_ParallelUnit):
    """One learnable causal T x T matrix W (masked by tril on every forward) and a bias b of length T per layer.

    Initialisation as released: W ~ kaiming_normal_(mode='fan_out', nonlinearity='relu') = N(0, 2/T), b = 0.
    Tied to sequences of exactly length T.
    """

    def __init__(self, T: int, tau=F.DEFAULT_TAU, threshold=F.DEFAULT_THRESHOLD, leak="released", alpha=None,
                 learn_alpha=True, surrogate=None, backend="auto", check_finite=True):  # fmt: skip
        if isinstance(T, bool) or not isinstance(T, int) or T < 1:
            raise ValueError(f"T (the sequence length) must be a positive int, got {T!r}")
        super().__init__(tau, threshold, leak, alpha, learn_alpha, surrogate, backend, check_finite)
        self.T = T
        self.weight = nn.Parameter(torch.empty(T, T))
        self.bias = nn.Parameter(torch.zeros(T))
        nn.init.kaiming_normal_(self.weight, mode="fan_out", nonlinearity="relu")

    def run(self, x: torch.Tensor) -> PSUResult:
        return F.parallel_unit(self.kind, x, self.weight, self.bias, **self._options(x))

    def step(self, x_t: torch.Tensor, state: F.LearnedState | None = None) -> PSUResult:
        """One time step [B, ...] from the input history (streaming; at most T steps); start with ``state=None``."""
        options = self._options(x_t)
        options.pop("backend")
        return F.unit_step(self.kind, x_t, self.weight, self.bias, state, **options)

    def extra_repr(self):
        return f"T={self.T}, " + super().extra_repr()


class IPSU(_LearnedUnit):
    """Input-aware PSU: V = (W o M) X + b + R X (R not scaled by theta, as released)."""

    kind = "ipsu"


class RPSU(_LearnedUnit):
    """Reset-aware PSU: V = A X + R sigmoid((W o M) X + b)."""

    kind = "rpsu"


class PPSU(_LearnedUnit):
    """The released code's PPSU: P = (W o M) X + b; V = P + R sigmoid(P)."""

    kind = "ppsu"
