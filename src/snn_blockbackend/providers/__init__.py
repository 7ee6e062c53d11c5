"""Kernel providers: implementations of the neuron engine for some devices.

A provider is an object with ``name``, ``priority``, ``supports(profile, device, grad) -> str | None``
(None when supported, else the reason) and ``run(...)`` (see ``reference.ReferenceProvider.run``).
Providers are registered through the pluggy hook ``snn_blockbackend_providers`` (see ``plugins``).
"""
