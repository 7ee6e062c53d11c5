"""Plugin discovery with pluggy: providers and framework adapters come from entry points.

A third-party package adds a provider by exposing a module with a ``snn_blockbackend_providers`` hook
implementation under the ``snn_blockbackend`` entry-point group.
"""

from __future__ import annotations

import functools

import pluggy

PROJECT = "snn_blockbackend"
hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)


class Hooks:
    @hookspec
    def snn_blockbackend_providers(self):
        """Return a list of provider objects."""

    @hookspec
    def snn_blockbackend_psu_providers(self):
        """Return a list of parallel-spiking-unit provider objects (see ``snn_blockbackend.psu``)."""

    @hookspec
    def snn_blockbackend_adapters(self):
        """Return a list of ``adapters.AdapterInfo`` describing framework adapters."""


@functools.lru_cache(maxsize=1)
def plugin_manager() -> pluggy.PluginManager:
    pm = pluggy.PluginManager(PROJECT)
    pm.add_hookspecs(Hooks)
    # Our own plugins are registered explicitly too, so an un-installed source checkout works.
    from .adapters import registry as adapter_registry
    from .providers import numba_provider, psu_reference, psu_torch, reference, torch_provider, triton_provider

    # Same names as our entry points, so load_setuptools_entrypoints skips them.
    ours = (
        ("reference", reference),
        ("torch", torch_provider),
        ("numba", numba_provider),
        ("triton", triton_provider),
        ("psu-reference", psu_reference),
        ("psu-torch", psu_torch),
        ("adapter-snntorch", adapter_registry.snntorch_plugin),
        ("adapter-spikingjelly", adapter_registry.spikingjelly_plugin),
        ("adapter-norse", adapter_registry.norse_plugin),
    )
    for name, module in ours:
        pm.register(module, name=name)
    pm.load_setuptools_entrypoints(PROJECT)
    return pm


def providers() -> dict:
    found = {}
    for group in plugin_manager().hook.snn_blockbackend_providers():
        for provider in group:
            found[provider.name] = provider
    return found


def adapters() -> dict:
    found = {}
    for group in plugin_manager().hook.snn_blockbackend_adapters():
        for adapter in group:
            found[adapter.framework] = adapter
    return found
