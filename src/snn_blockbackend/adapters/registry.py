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
            return f"not installed (pip install 'snn-blockbackend[{self.extra}]')"
        if not (Version(self.min_version) <= Version(version) < Version(self.max_version)):
            return f"{version} installed, unsupported (supported: {self.supported_range})"
        return f"{version} installed"

    def require(self) -> str:
        """Raise a clear ImportError unless a supported version of the framework is installed."""
        version = self.installed_version()
        if version is None:
            raise ImportError(
                f"{self.distribution} is not installed; install it with: pip install 'snn-blockbackend[{self.extra}]'"
            )
        if not (Version(self.min_version) <= Version(version) < Version(self.max_version)):
            raise ImportError(
                f"{self.distribution} {version} is not supported by snn-blockbackend; "
                f"supported versions: {self.supported_range}"
            )
        return version


ADAPTERS = (
    AdapterInfo("snntorch", "snntorch", "snntorch", "0.9.4", "1.1", "snn_blockbackend.adapters.snntorch"),
    AdapterInfo("spikingjelly", "spikingjelly", "spikingjelly", "0.0.0.0.14", "2.1", "snn_blockbackend.adapters.spikingjelly"),
    AdapterInfo("norse", "norse", "norse", "1.0", "1.2", "snn_blockbackend.adapters.norse"),
)


@hookimpl
def snn_blockbackend_adapters():
    return list(ADAPTERS)
