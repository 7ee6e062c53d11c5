"""Framework adapters (snnTorch, SpikingJelly, Norse): map a framework's conventions onto profiles.

An adapter never re-implements neuron math; it builds a profile and calls ``functional.block_neuron``.
"""

import importlib

PSU_UNITS = ("PSU", "IPSU", "RPSU", "PPSU")


def psu_exports(adapter: str, wrapper: str):
    """A module ``__getattr__`` for adapter ``adapter`` that serves the parallel spiking units of ``wrapper``
    (e.g. ``snn_blockbackend.adapters.psu_snntorch``) on first use, so ``from snn_blockbackend.adapters.snntorch
    import PSU`` works without importing the PSU code (or failing on it) whenever the adapter is imported."""

    def __getattr__(name: str):
        if name in PSU_UNITS:
            return getattr(importlib.import_module(wrapper), name)
        raise AttributeError(f"module {adapter!r} has no attribute {name!r}")

    return __getattr__
