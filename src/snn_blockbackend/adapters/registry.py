"""Which framework adapters exist, which framework versions they support, and what is installed."""

from __future__ import annotations

import importlib.metadata
from dataclasses import dataclass

from packaging.version import Version

from ..plugins import hookimpl


@dataclass(frozen=True)
class AdapterInfo:
    framework: str  # import name of the framework
    distribution: str  # pip distribution name
    extra: str  # our pip extra that installs it
    min_version: str  # supported range: min_version <= v < max_version
    max_version: str
    module: str  # our adapter module
    # installed with --no-deps after our extra (its metadata asks for packages its neurons never import)
    without_dependencies: bool = False

    @property
    def install_command(self) -> str:
        command = f"pip install 'snn-blockbackend[{self.extra}]'"
        if self.without_dependencies:
            command += f" && pip install --no-deps '{self.distribution}{self.supported_range}'"
        return command

    @property
    def supported_range(self) -> str:
        return f">={self.min_version},<{self.max_version}"

    def installed_version(self) -> str | None:
        try:
            return importlib.metadata.version(self.distribution)
        except importlib.metadata.PackageNotFoundError:
            return None

    def status(self) -> str:
        version = self.installed_version()
        if version is None:
            return f"not installed ({self.install_command})"
        if not (Version(self.min_version) <= Version(version) < Version(self.max_version)):
            return f"{version} installed, unsupported (supported: {self.supported_range})"
        return f"{version} installed"

    def require(self) -> str:
        """Raise a clear ImportError unless a supported version of the framework is installed."""
        version = self.installed_version()
        if version is None:
            raise ImportError(
                f"{self.distribution} is not installed; install it with: {self.install_command}"
            )
        if not (Version(self.min_version) <= Version(version) < Version(self.max_version)):
            raise ImportError(
                f"{self.distribution} {version} is not supported by snn-blockbackend; "
                f"supported versions: {self.supported_range}"
            )
        return version


SNNTORCH = AdapterInfo("snntorch", "snntorch", "snntorch", "0.9.4", "1.1", "snn_blockbackend.adapters.snntorch")
SPIKINGJELLY = AdapterInfo(
    "spikingjelly", "spikingjelly", "spikingjelly", "0.0.0.0.14", "2.1", "snn_blockbackend.adapters.spikingjelly",
    without_dependencies=True,
)
NORSE = AdapterInfo("norse", "norse", "norse", "1.0", "1.2", "snn_blockbackend.adapters.norse")
ADAPTERS = (SNNTORCH, SPIKINGJELLY, NORSE)


class AdapterPlugin:
    """One framework adapter as a pluggy plugin (one entry point each, so a third party can add its own).

    The plugin carries only the metadata; the adapter module itself imports its framework and is loaded
    when the user imports it, so discovery never imports snnTorch, SpikingJelly or Norse.
    """

    def __init__(self, info: AdapterInfo):
        self.info = info

    @hookimpl
    def snn_blockbackend_adapters(self):
        return [self.info]


snntorch_plugin = AdapterPlugin(SNNTORCH)
spikingjelly_plugin = AdapterPlugin(SPIKINGJELLY)
norse_plugin = AdapterPlugin(NORSE)
