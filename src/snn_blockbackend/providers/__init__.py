"""Kernel providers: implementations of the neuron engine for some devices.

A provider is an object with ``name``, ``priority``, ``supports(profile, device, grad) -> str | None``
(None when supported, else the reason) and ``run(...)`` (see ``reference.ReferenceProvider.run``); optionally
``prepare(profile)``, the per-profile work to do once outside ``torch.compile`` (``functional.prepare_kernels``).
Providers are registered through the pluggy hook ``snn_blockbackend_providers`` (see ``plugins``).
"""

# Providers that need an optional package, and our pip extra that installs it (named in errors and ``info``).
PIP_EXTRAS = {"numba": "numba", "triton": "triton"}


def install_hint(name: str) -> str | None:
    """How to install the optional provider ``name`` (None for a provider that needs nothing extra)."""
    extra = PIP_EXTRAS.get(name)
    return None if extra is None else f"pip install 'snn-blockbackend[{extra}]'"
