"""SpikingJelly adapter: ``BlockLIFNode``, ``BlockParametricLIFNode`` and ``BlockALIFNode`` as SpikingJelly
neurons running on the block engine (``spikingjelly_lif`` / ``paper`` profiles), for SpikingJelly 0.0.0.0.14
and 2.x.

* 0.0.0.0.14: select the engine per module with ``backend='block'`` in multi-step mode, e.g. for a whole
  network ``functional.set_step_mode(net, 'm'); functional.set_backend(net, 'block')``.
* 2.x (no backend selector): our classes override the functional state transitions, so they always run the
  engine in multi-step mode.
* Both: ``convert(net, refractory_steps=0)`` swaps stock ``LIFNode`` / ``ParametricLIFNode`` for ours and
  ``unconvert(net)`` swaps them back; ``functional.reset_net`` resets all our memories.

Importing this module raises ImportError when SpikingJelly is missing or of an unsupported version.
See docs/spikingjelly.md.
"""

from __future__ import annotations

from packaging.version import Version

from .. import psu_exports
from ..registry import SPIKINGJELLY

SPIKINGJELLY_VERSION: str = SPIKINGJELLY.require()
#: "0.0.0.0.14" or "2": the SpikingJelly API generation this module adapts to
API = "0.0.0.0.14" if Version(SPIKINGJELLY_VERSION) < Version("2") else "2"

if API == "2":
    from ._v2 import BlockALIFNode, BlockLIFNode, BlockParametricLIFNode, convert, map_surrogate, unconvert
else:
    from ._legacy import BlockALIFNode, BlockLIFNode, BlockParametricLIFNode, convert, map_surrogate, unconvert

__all__ = [
    "API",
    "SPIKINGJELLY_VERSION",
    "BlockALIFNode",
    "BlockLIFNode",
    "BlockParametricLIFNode",
    "convert",
    "map_surrogate",
    "unconvert",
]

# PSU / IPSU / RPSU / PPSU as SpikingJelly memory modules (adapters.psu_spikingjelly), imported on first use
__getattr__ = psu_exports(__name__, "snn_blockbackend.adapters.psu_spikingjelly")
