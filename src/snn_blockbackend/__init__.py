"""snn-blockbackend: exact, fast block-neuron engine for snnTorch, SpikingJelly and Norse."""

from . import surrogate
from .functional import BlockResult, block_neuron, set_backend, use_backend
from .modules import BlockALIF, BlockLIF
from .profiles import PROFILES, NeuronProfile, make_profile
from .providers._memory import empty_cache

__version__ = "0.1.0"

__all__ = [
    "BlockALIF",
    "BlockLIF",
    "BlockResult",
    "NeuronProfile",
    "PROFILES",
    "block_neuron",
    "empty_cache",
    "make_profile",
    "set_backend",
    "surrogate",
    "use_backend",
]
