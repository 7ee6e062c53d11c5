"""Odd input (issue 15): each case is a clear exception naming the problem, or the correct output."""

from __future__ import annotations

import threading

import pytest
import torch

from snn_blockbackend import block_neuron, set_backend, use_backend
from snn_blockbackend.functional import get_backend


# ---------------------------------------------------------------------------------------------
# use_backend is context-local
# ---------------------------------------------------------------------------------------------
def test_use_backend_in_two_threads_does_not_leak():
    set_backend(None)
    before = get_backend()
    step = threading.Barrier(2, timeout=30)
    seen = {}
    errors = []

    def first():
        try:
            with use_backend("reference"):
                step.wait()  # 1: both are inside their own use_backend
                step.wait()  # 2: the second thread has entered after us
                seen["first inside"] = get_backend()
            step.wait()  # 3: we left first (the old global version restored our 'previous' for everyone)
            step.wait()  # 4
            seen["first after"] = get_backend()
        except Exception as error:  # noqa: BLE001 - reported below
            errors.append(error)

    def second():
        try:
            step.wait()  # 1
            with use_backend("torch"):
                step.wait()  # 2
                step.wait()  # 3: the first thread has left its block
                seen["second inside"] = get_backend()
            step.wait()  # 4
            seen["second after"] = get_backend()
        except Exception as error:  # noqa: BLE001
            errors.append(error)

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    assert seen == {
        "first inside": "reference",
        "second inside": "torch",
        "first after": before,
        "second after": before,
    }
    assert get_backend() == before


def test_use_backend_nests_over_set_backend():
    try:
        set_backend("torch")
        with use_backend("reference"):
            assert get_backend() == "reference"
            with use_backend("numba"):
                assert get_backend() == "numba"
            assert get_backend() == "reference"
        assert get_backend() == "torch"
        with pytest.raises(ValueError, match="unknown backend 'nope'"):
            with use_backend("nope"):
                pass
    finally:
        set_backend(None)
