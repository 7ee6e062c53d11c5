"""Plugin discovery: our providers/adapters come from entry points, and a third-party package can add its own."""

from __future__ import annotations

import importlib.metadata
import sys
import textwrap

import pytest
import torch

from snn_blockbackend import block_neuron, make_profile, plugins
from snn_blockbackend.providers.reference import run_reference


def test_declared_entry_points_load_and_match_the_registered_plugins():
    declared = {ep.name: ep for ep in importlib.metadata.entry_points(group=plugins.PROJECT)}
    ours = {"reference", "torch", "numba", "triton", "adapter-snntorch", "adapter-spikingjelly", "adapter-norse"}
    assert ours <= set(declared), f"entry points missing from the installed metadata: {ours - set(declared)}"
    manager = plugins.plugin_manager()
    for name in ours:
        # the explicitly registered plugin under the entry point's name is the object the entry point names
        assert manager.get_plugin(name) is declared[name].load()
    assert {"reference", "torch"} <= set(plugins.providers())
    assert set(plugins.adapters()) == {"snntorch", "spikingjelly", "norse"}


@pytest.fixture
def third_party_distribution(tmp_path, monkeypatch):
    """A fake installed distribution whose entry point adds a provider that delegates to the reference."""
    package = tmp_path / "thirdparty_provider.py"
    package.write_text(
        textwrap.dedent(
            """
            from snn_blockbackend.plugins import hookimpl
            from snn_blockbackend.providers.reference import run_reference

            class CountingProvider:
                name = "thirdparty"
                priority = -5  # never picked by "auto" over ours
                calls = 0

                def supports(self, profile, device, grad):
                    return None if grad == "exact" else "exact gradients only"

                def run(self, profile, params, x, refractory_steps, state=None, grad="exact"):
                    CountingProvider.calls += 1
                    return run_reference(profile, params, x, refractory_steps, state)

            @hookimpl
            def snn_blockbackend_providers():
                return [CountingProvider()]
            """
        )
    )
    dist_info = tmp_path / "thirdparty_provider-0.1.dist-info"
    dist_info.mkdir()
    (dist_info / "METADATA").write_text("Metadata-Version: 2.1\nName: thirdparty-provider\nVersion: 0.1\n")
    (dist_info / "entry_points.txt").write_text("[snn_blockbackend]\nthirdparty = thirdparty_provider\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    plugins.plugin_manager.cache_clear()
    yield
    plugins.plugin_manager.cache_clear()
    sys.modules.pop("thirdparty_provider", None)


def test_a_third_party_provider_is_discovered_through_its_entry_point(third_party_distribution):
    available = plugins.providers()
    assert "thirdparty" in available
    provider_class = type(available["thirdparty"])
    x = torch.randn(7, 3, 4)
    profile = make_profile("paper_lif")
    before = provider_class.calls
    result = block_neuron(x, profile, {"beta": 0.8}, 2, backend="thirdparty")
    assert provider_class.calls == before + 1
    expected_spikes, _, _ = run_reference(profile, {"beta": torch.tensor(0.8), "threshold": torch.tensor(1.0)}, x, 2)
    assert torch.equal(result.spikes, expected_spikes)
    # "auto" still prefers the higher-priority built-in providers
    block_neuron(x, profile, {"beta": 0.8}, 2)
    assert provider_class.calls == before + 1
