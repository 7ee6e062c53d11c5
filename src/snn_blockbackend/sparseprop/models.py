"""Neuron models in phase representation (units of the membrane time constant tau).

Each model maps a voltage jump ``J`` (delta synapse, in the model's voltage units) onto
the coupling parameter ``c`` of its phase transition curve, ``c = J * coupling_factor``,
and advances its phase at ``omega`` per unit of ``t / tau``.

``drive`` may be a scalar (homogeneous network: the co-moving-frame SparseProp algorithm
applies) or an array of length N (heterogeneous drives: use the time-based variant).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from .phasecurves import EIF_ID, LIF_ID, QIF_ID


def _check_positive_scalar(name: str, value) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise TypeError(f"{name} must be a real number, got {type(value).__name__}")
    value = float(value)
    if math.isnan(value):
        raise ValueError(f"{name} is NaN")
    if not math.isfinite(value) or value <= 0.0:
        raise ValueError(f"{name} must be positive and finite, got {value}")
    return value


def _check_drive(drive, lower: float, what: str):
    """Return drive as float or float64 array; every entry must exceed ``lower``."""
    if isinstance(drive, (bool, str)) or drive is None:
        raise TypeError(f"drive must be a number or an array of numbers, got {type(drive).__name__}")
    arr = np.asarray(drive, dtype=np.float64) if not np.isscalar(drive) else None
    if arr is None:
        if not isinstance(drive, (int, float, np.integer, np.floating)):
            raise TypeError(f"drive must be a number, got {type(drive).__name__}")
        values = np.array([float(drive)])
    else:
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError("an array drive must be one-dimensional and non-empty")
        values = arr
    if np.isnan(values).any():
        raise ValueError("drive contains NaN")
    if not np.isfinite(values).all() or (values <= lower).any():
        bad = values[~(np.isfinite(values) & (values > lower))][0]
        raise ValueError(f"drive must be finite and > {lower} ({what}); got {bad}")
    return float(values[0]) if arr is None else values.copy()


def balanced_drive(k: int, j0: float = 1.0, rate_hz: float = 1.0, tau: float = 0.01) -> float:
    """Drive of the balanced-state estimate ``I = tau * sqrt(K) * J0 * rate`` (reference setup)."""
    _check_positive_scalar("k", k)
    _check_positive_scalar("j0", j0)
    _check_positive_scalar("rate_hz", rate_hz)
    _check_positive_scalar("tau", tau)
    return tau * math.sqrt(k) * j0 * rate_hz


@dataclass(frozen=True)
class _Model:
    drive: float | np.ndarray = 0.1
    tau: float = 0.01

    model_id = -1
    threshold = 1.0
    reset = 0.0

    @property
    def heterogeneous(self) -> bool:
        return isinstance(self.drive, np.ndarray)

    def omega_of(self, drive):
        raise NotImplementedError

    def coupling_factor_of(self, drive):
        raise NotImplementedError

    @property
    def omega(self):
        """Phase velocity per unit t/tau (array for heterogeneous drives)."""
        return self.omega_of(self.drive)

    @property
    def coupling_factor(self):
        """Factor turning a voltage jump J into the PTC parameter c."""
        return self.coupling_factor_of(self.drive)

    @property
    def period(self):
        """Free firing period in seconds."""
        return (self.threshold - self.reset) / self.omega * self.tau

    def initial_phases(self, n: int, seed: int) -> np.ndarray:
        """Uniform random phases in [reset, threshold), seeded."""
        rng = np.random.default_rng(seed)
        return self.reset + (self.threshold - self.reset) * rng.random(n)


@dataclass(frozen=True)
class LIF(_Model):
    """Leaky integrate-and-fire: ``tau V' = -V + (1 + I)``, threshold 1, reset 0."""

    model_id = LIF_ID
    threshold = 1.0
    reset = 0.0

    def __post_init__(self):
        _check_positive_scalar("tau", self.tau)
        object.__setattr__(self, "drive", _check_drive(self.drive, 0.0, "LIF fires only for I > 0"))

    def omega_of(self, drive):
        return 1.0 / np.log1p(1.0 / np.asarray(drive)) if isinstance(drive, np.ndarray) else 1.0 / math.log1p(1.0 / drive)

    def coupling_factor_of(self, drive):
        return -1.0 / (1.0 + drive)

    def voltage(self, phi):
        """V(phi) = (1 + I)(1 - exp(-phi/omega))."""
        return (1.0 + self.drive) * (1.0 - np.exp(-np.asarray(phi) / self.omega))

    def phase(self, v):
        return -self.omega * np.log(1.0 - np.asarray(v) / (1.0 + self.drive))

    def domega_ddrive(self, drive):
        w = self.omega_of(drive)
        return w * w / (drive * (drive + 1.0))

    def dfactor_ddrive(self, drive):
        return 1.0 / (1.0 + drive) ** 2


@dataclass(frozen=True)
class QIF(_Model):
    """Quadratic integrate-and-fire / theta neuron: ``tau V' = V^2 + I``, V = sqrt(I) tan(theta/2)."""

    model_id = QIF_ID
    threshold = math.pi
    reset = -math.pi

    def __post_init__(self):
        _check_positive_scalar("tau", self.tau)
        object.__setattr__(self, "drive", _check_drive(self.drive, 0.0, "QIF fires only for I > 0"))

    def omega_of(self, drive):
        return 2.0 * np.sqrt(drive) if isinstance(drive, np.ndarray) else 2.0 * math.sqrt(drive)

    def coupling_factor_of(self, drive):
        return 1.0 / np.sqrt(drive) if isinstance(drive, np.ndarray) else 1.0 / math.sqrt(drive)

    def voltage(self, theta):
        return np.sqrt(self.drive) * np.tan(0.5 * np.asarray(theta))

    def phase(self, v):
        return 2.0 * np.arctan(np.asarray(v) / np.sqrt(self.drive))

    def domega_ddrive(self, drive):
        return 1.0 / math.sqrt(drive)

    def dfactor_ddrive(self, drive):
        return -0.5 * drive ** -1.5


@dataclass(frozen=True)
class EIF(_Model):
    """Exponential integrate-and-fire: ``tau V' = -V + dT exp(V/dT) + I``, reset -1, spike at +inf.

    Phase ``phi = 1 - omega * T_s(V)`` with ``T_s`` the time to spike. The PTC is tabulated
    (piecewise Chebyshev, see :mod:`.eif`) for one voltage jump, so EIF networks need a single
    uniform coupling.
    """

    delta_t: float = 0.1
    v_reset: float = -1.0
    model_id = EIF_ID
    threshold = 1.0
    reset = 0.0
    _tables: dict = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self):
        _check_positive_scalar("tau", self.tau)
        _check_positive_scalar("delta_t", self.delta_t)
        if isinstance(self.v_reset, bool) or not isinstance(self.v_reset, (int, float)) or not math.isfinite(self.v_reset):
            raise ValueError(f"v_reset must be a finite number, got {self.v_reset!r}")
        drive = _check_drive(self.drive, -self.delta_t, "EIF needs I > -delta_t for repetitive firing")
        if isinstance(drive, np.ndarray):
            raise ValueError("EIF supports only a homogeneous (scalar) drive")
        object.__setattr__(self, "drive", drive)

    def _quadrature(self):
        from .eif import EIFQuadrature

        key = "quad"
        if key not in self._tables:
            self._tables[key] = EIFQuadrature(self.drive, self.delta_t, self.v_reset)
        return self._tables[key]

    def omega_of(self, drive):
        return self._quadrature().omega

    def coupling_factor_of(self, drive):
        return 1.0

    def table(self, jump: float) -> np.ndarray:
        """Chebyshev PTC table for a voltage jump ``jump`` (built once, then cached)."""
        from .eif import build_eif_table

        key = ("table", float(jump))
        if key not in self._tables:
            self._tables[key] = build_eif_table(self._quadrature(), float(jump))
        return self._tables[key]


def make_model(name: str, **kwargs) -> _Model:
    """Model by name: ``"lif"``, ``"qif"`` or ``"eif"``."""
    table = {"lif": LIF, "qif": QIF, "eif": EIF}
    if not isinstance(name, str) or name.lower() not in table:
        raise ValueError(f"unknown model {name!r}; choose one of {sorted(table)}")
    return table[name.lower()](**kwargs)
