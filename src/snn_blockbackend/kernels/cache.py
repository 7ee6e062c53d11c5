"""Generated kernel modules on disk, so that numba's and Triton's own caches (which key on a source file) keep
compiled kernels between processes.

A module is written once per (target, traced step, dtype, surrogate kind) under ``$SNN_BLOCKBACKEND_KERNEL_CACHE``
(default ``~/.cache/snn_blockbackend/kernels``), atomically (several processes may generate the same kernel at
once, e.g. DDP workers), and imported from there.
"""

from __future__ import annotations

import importlib.util
import os
import sys
import tempfile
import threading
from pathlib import Path
from types import ModuleType
from typing import Callable

_LOCK = threading.Lock()
_LOADED: dict[str, ModuleType] = {}


def directory() -> Path:
    configured = os.environ.get("SNN_BLOCKBACKEND_KERNEL_CACHE")
    base = Path(configured) if configured else Path.home() / ".cache" / "snn_blockbackend" / "kernels"
    base.mkdir(parents=True, exist_ok=True)
    return base


def load(name: str, make_text: Callable[[], str]) -> ModuleType:
    """Import the module ``name`` with the source ``make_text()`` returns (generated and written to the cache
    directory on first use in a process)."""
    module = _LOADED.get(name)
    if module is not None:
        return module
    with _LOCK:
        if name in _LOADED:
            return _LOADED[name]
        text = make_text()
        path = directory() / f"{name}.py"
        if not path.exists() or path.read_text() != text:
            fd, tmp = tempfile.mkstemp(dir=path.parent, suffix=".tmp")
            with os.fdopen(fd, "w") as f:
                f.write(text)
            os.replace(tmp, path)
        spec = importlib.util.spec_from_file_location(f"snn_blockbackend_kernels.{name}", path)
        module = importlib.util.module_from_spec(spec)
        sys.modules[spec.name] = module  # Triton and numba look the module up by name
        spec.loader.exec_module(module)
        _LOADED[name] = module
        return module
