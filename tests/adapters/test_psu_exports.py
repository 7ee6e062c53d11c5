"""Each framework adapter serves its framework's parallel spiking units under its own name."""

import importlib

import pytest

from snn_blockbackend.adapters import PSU_UNITS


@pytest.mark.parametrize("framework", ["snntorch", "spikingjelly", "norse"])
def test_adapter_module_exports_the_framework_psu_wrappers(framework):
    pytest.importorskip(framework, reason=f"{framework} is not installed")
    adapter = importlib.import_module(f"snn_blockbackend.adapters.{framework}")
    wrappers = importlib.import_module(f"snn_blockbackend.adapters.psu_{framework}")
    for name in PSU_UNITS:
        assert getattr(adapter, name) is getattr(wrappers, name)
    with pytest.raises(AttributeError, match="no attribute 'NoSuchUnit'"):
        adapter.NoSuchUnit
