"""The pip extras install the compiled CPU path, the SpikingJelly extra stays light, and the errors and
``info`` name the extras that install what is missing."""

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest
import torch

from snn_blockbackend import functional, plugins
from snn_blockbackend.adapters.registry import ADAPTERS
from snn_blockbackend.providers import PIP_EXTRAS

PYPROJECT = tomllib.loads((Path(__file__).parents[1] / "pyproject.toml").read_text())
EXTRAS = PYPROJECT["project"]["optional-dependencies"]
SELF = PYPROJECT["project"]["name"]


def _requirement_names(extra: str) -> set[str]:
    """The distributions an extra installs, following our own ``snn-blockbackend[...]`` references."""
    names = set()
    for requirement in EXTRAS[extra]:
        name = requirement.split(";")[0].strip()
        if name.startswith(SELF + "["):
            for inner in name[len(SELF) + 1 : -1].split(","):
                names |= _requirement_names(inner.strip())
        else:
            names.add(name.split("[")[0].split(">")[0].split("<")[0].split("=")[0].split("!")[0].strip().lower())
    return names


@pytest.mark.parametrize("adapter", ADAPTERS, ids=lambda adapter: adapter.framework)
def test_every_framework_extra_installs_the_compiled_cpu_path(adapter):
    assert adapter.extra in EXTRAS
    assert "numba" in _requirement_names(adapter.extra)


def test_spikingjelly_extra_pulls_no_vision_audio_or_tensorboard():
    names = _requirement_names("spikingjelly")
    assert not names & {"spikingjelly", "torchvision", "torchaudio", "tensorboard", "h5py"}
    # what SpikingJelly's neuron modules import besides torch and numpy
    assert {"loguru", "packaging", "tqdm"} <= names


def test_spikingjelly_install_command_names_the_no_deps_step():
    spikingjelly = next(adapter for adapter in ADAPTERS if adapter.framework == "spikingjelly")
    assert spikingjelly.install_command == (
        "pip install 'snn-blockbackend[spikingjelly]' && pip install --no-deps 'spikingjelly>=0.0.0.0.14,<2.1'"
    )


def test_optional_providers_name_existing_extras():
    for extra in PIP_EXTRAS.values():
        assert extra in EXTRAS


def test_missing_optional_provider_names_its_extra(monkeypatch):
    installed = {name: provider for name, provider in plugins.providers().items() if name != "numba"}
    monkeypatch.setattr(plugins, "providers", lambda: installed)
    with pytest.raises(ValueError, match=r"backend 'numba' is not installed.*pip install 'snn-blockbackend\[numba\]'"):
        functional.block_neuron(torch.randn(4, 3), "paper", {"beta": 0.9}, backend="numba")
    with pytest.raises(ValueError, match=r"unknown backend 'nonesuch'"):
        functional.block_neuron(torch.randn(4, 3), "paper", {"beta": 0.9}, backend="nonesuch")


def test_info_prints_the_extras_names(capsys, monkeypatch):
    from snn_blockbackend import cli

    installed = {name: provider for name, provider in plugins.providers().items() if name != "triton"}
    monkeypatch.setattr(plugins, "providers", lambda: installed)
    assert cli.main(["info"]) == 0
    out = capsys.readouterr().out
    # rich markup used to swallow "[norse]"; the extras and the missing provider's install hint are printed
    assert "not installed: pip install 'snn-blockbackend[triton]'" in " ".join(out.split())
    info = cli.collect_info()
    if info["extras"]:  # an installed distribution (not a bare source checkout)
        assert "[norse]" in out and "[spikingjelly]" in out


WITHOUT_NUMBA = textwrap.dedent(
    """
    import sys

    class Missing:  # numba and llvmlite as if not installed (the base install: no extra)
        def find_spec(self, name, path=None, target=None):
            if name.split(".")[0] in ("numba", "llvmlite"):
                raise ImportError(f"No module named {name!r}")
            return None

    sys.meta_path.insert(0, Missing())
    import torch
    from snn_blockbackend import block_neuron, cli, plugins

    print(sorted(plugins.providers()))
    x = torch.randn(6, 2, 3)
    auto = block_neuron(x, "paper_lif", {"beta": 0.9}, 1)
    ref = block_neuron(x, "paper_lif", {"beta": 0.9}, 1, backend="reference")
    assert torch.equal(auto.membrane, ref.membrane)
    cli.main(["info"])
    """
)


def test_the_base_install_runs_without_numba():
    """``pip install snn-blockbackend`` (no extra) has no numba: the providers are discovered without it (the
    numba provider is simply absent) and ``backend="auto"`` runs the torch provider."""
    done = subprocess.run([sys.executable, "-c", WITHOUT_NUMBA], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    providers = done.stdout.splitlines()[0]
    assert "'torch'" in providers and "'numba'" not in providers, providers
