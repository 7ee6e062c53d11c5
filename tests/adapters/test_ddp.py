"""DistributedDataParallel over our Block neurons: 2 CPU processes (gloo, loopback only) training on half a batch
each end with the parameters of one process training on the whole batch, for every framework's Block class.

DDP averages the gradients of the processes; with a loss that is a mean over the batch that average is the
whole-batch gradient, so 3 SGD steps must give the same parameters (to float rounding).
"""

from __future__ import annotations

import os
import socket
import sys
import time
import warnings

import pytest
import torch
import torch.multiprocessing as mp

sys.path.insert(0, os.path.dirname(__file__))  # the spawned processes import the worker module by name
import ddp_worker  # noqa: E402

TIMEOUT_S = 240


def _free_loopback_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _installed(framework: str) -> bool:
    framework = framework.removesuffix("-native")
    if framework == "modules":
        return True
    try:
        __import__(f"snn_blockbackend.adapters.{framework}")
    except ImportError:
        return False
    return True


@pytest.mark.skipif(not torch.distributed.is_available(), reason="this torch build has no torch.distributed")
def test_ddp_two_processes_equal_one_process_on_the_whole_batch(tmp_path, monkeypatch):
    missing = [f for f in ddp_worker.FRAMEWORKS if not _installed(f)]
    if missing:
        pytest.skip(f"frameworks not installed: {missing}")
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    context = mp.spawn(
        ddp_worker.run, args=(2, _free_loopback_port(), str(tmp_path)), nprocs=2, join=False
    )
    deadline = time.monotonic() + TIMEOUT_S
    try:
        while not context.join(timeout=5):
            if time.monotonic() > deadline:
                pytest.fail(f"the DDP processes did not finish within {TIMEOUT_S} s")
    finally:
        for process in context.processes:  # only the two processes this test started
            if process.is_alive():
                process.terminate()
                process.join(5)

    x, target = ddp_worker.data()
    warnings.simplefilter("ignore", DeprecationWarning)
    for framework in ddp_worker.FRAMEWORKS:
        single = ddp_worker.Net(framework)
        start = {name: p.detach().clone() for name, p in single.named_parameters()}
        losses = ddp_worker.train(single, x, target)
        distributed = torch.load(tmp_path / f"{framework}.pt")
        moved = 0
        for name, parameter in single.named_parameters():
            torch.testing.assert_close(distributed[name], parameter.detach(), rtol=1e-10, atol=1e-12,
                                       msg=lambda m: f"{framework} {name}: {m}")  # fmt: skip
            moved += not torch.equal(parameter.detach(), start[name])
        assert moved >= 4, f"{framework}: training changed only {moved} parameters; the comparison is weak"
        assert losses[-1] != losses[0]
