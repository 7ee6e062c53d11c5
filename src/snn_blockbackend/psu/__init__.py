"""Parallel spiking units (Li et al., "Parallel Spiking Unit for Efficient Training of SNNs", arXiv 2402.00449).

``PSU`` (fixed leak/reset matrices, sigmoid spike estimate), ``IPSU`` / ``RPSU`` / ``PPSU`` (one learnable causal
T x T matrix and bias per layer). Functional forms in ``snn_blockbackend.psu.functional``; framework wrappers in
``snn_blockbackend.adapters.psu_snntorch`` / ``psu_spikingjelly`` / ``psu_norse``. See docs/psu.md.
"""

from .functional import (
    LearnedState,
    PSUResult,
    PSUState,
    ipsu,
    leak_coefficients,
    leak_matrices,
    parallel_unit,
    ppsu,
    psu,
    psu_step,
    rpsu,
    unit_step,
)
from .modules import IPSU, PPSU, PSU, RPSU

__all__ = [
    "IPSU",
    "LearnedState",
    "PPSU",
    "PSU",
    "PSUResult",
    "PSUState",
    "RPSU",
    "ipsu",
    "leak_coefficients",
    "leak_matrices",
    "parallel_unit",
    "ppsu",
    "psu",
    "psu_step",
    "rpsu",
    "unit_step",
]
