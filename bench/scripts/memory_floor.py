"""How far the numba kernels are from what memory allows, in one process: the traffic floor the bench uses
(``timing.traffic_floor_ms``: bytes / streaming bandwidth of a warm copy), a *skeleton* kernel that moves exactly
a neuron's arrays in the generated kernels' layout and threading but computes nothing (forward: read x, write
spikes, membranes and the live flags; backward: read x, membranes and flags, write the input gradient), the
forward operator alone, and the whole ``block_neuron`` call (checks, autograd, the backward).

Usage: ``python bench/scripts/memory_floor.py [reps]`` (default 7; x = [1000, 32, 512] float32, torch's threads).
"""

from __future__ import annotations

import sys

import numba
import numpy as np
import torch

from snn_blockbackend import bench, block_neuron, kernels, make_profile
from snn_blockbackend.functional import check_params
from snn_blockbackend.providers import numba_provider
from snn_blockbackend.providers.numba_threads import run_chunks
from snn_blockbackend.timing import median_ms, stream_bandwidth, time_forward_backward, traffic_floor_ms

PROFILES = {  # profile name: parameters
    "snntorch_leaky": {"beta": 0.9},
    "spikingjelly_lif": {},
    "norse_lif_box": {},
    "paper": {"beta": 0.9, "threshold": 1.0, "adaptation_decay": 0.9, "adaptation_strength": 0.2},
}


@numba.njit(nogil=True, cache=True)
def skeleton_forward(lo, width, x, S, M, F):
    T = x.shape[0]
    hi = lo + width
    for t in range(T):
        xr, Sr, Mr, Fr = x[t, lo:hi], S[t, lo:hi], M[t, lo:hi], F[t, lo:hi]
        for i in range(width):
            v = xr[i]
            Sr[i] = v
            Mr[i] = v
            Fr[i] = np.uint8(1)


@numba.njit(nogil=True, cache=True)
def skeleton_backward(lo, width, x, M, F, gx):
    T = x.shape[0]
    hi = lo + width
    for t in range(T - 1, -1, -1):
        xr, Mr, Fr, gr = x[t, lo:hi], M[t, lo:hi], F[t, lo:hi], gx[t, lo:hi]
        for i in range(width):
            gr[i] = xr[i] + Mr[i] if Fr[i] != 0 else xr[i]


def main() -> None:
    reps = int(sys.argv[1]) if len(sys.argv) > 1 else 7
    x = bench.make_input((1000, 32, 512))
    T, N = x.shape[0], x[0].numel()
    rows = x.reshape(T, N).numpy()
    S, M, gx = (np.empty((T, N), np.float32) for _ in range(3))
    F = np.empty((T, N), np.uint8)
    bandwidth = stream_bandwidth()
    floors = {kind: traffic_floor_ms(x, kind, bandwidth) for kind in ("fwd", "fwd_bwd")}
    fwd_width = numba_provider.chunk_width(N, numba_provider.FORWARD_WIDEST)
    bwd_width = numba_provider.chunk_width(N, numba_provider.BACKWARD_WIDEST)
    skeleton = {
        "fwd": median_ms(lambda: run_chunks(skeleton_forward, N, fwd_width, rows, S, M, F), reps)[0],
        "bwd": median_ms(lambda: run_chunks(skeleton_backward, N, bwd_width, rows, M, F, gx), reps)[0],
    }
    skeleton["fwd_bwd"] = skeleton["fwd"] + skeleton["bwd"]
    print(f"x = {list(x.shape)} float32, {torch.get_num_threads()} threads, streaming bandwidth {bandwidth:.1f} GB/s: "
          f"floor fwd {floors['fwd']:.2f} ms, fwd+bwd {floors['fwd_bwd']:.2f} ms")  # fmt: skip
    print(f"skeleton (moves the arrays, computes nothing): fwd {skeleton['fwd']:.2f} ms = "
          f"{skeleton['fwd'] / floors['fwd']:.2f}x floor, fwd+bwd {skeleton['fwd_bwd']:.2f} ms = "
          f"{skeleton['fwd_bwd'] / floors['fwd_bwd']:.2f}x floor")  # fmt: skip
    print(f"{'profile':18} {'what':24} {'ms':>8} {'x floor':>8} {'x skeleton':>10}")
    forward_op = torch.ops.snn_blockbackend.numba_generated_forward
    for name, params in PROFILES.items():
        profile = make_profile(name)
        p = profile.prepare(check_params(profile, params, x))
        step = kernels.step_of(profile, x.dtype)
        state0 = [torch.zeros(x.shape[1:]) for _ in step.state]
        countdown = torch.zeros(x.shape[1:], dtype=torch.int64)
        args = (x, state0, [p[k] for k in step.params], countdown, 0, step.key, profile.surrogate.kind,
                list(profile.surrogate.kernel_args), True)  # fmt: skip  (True: the kernel checks x, as in a call)

        def call():
            with torch.no_grad():
                return block_neuron(x, profile, params, 0, backend="numba").spikes

        def after_torch_op():
            x.sum()  # a parallel torch operator: its OpenMP workers keep spinning for a few ms after it
            forward_op(*args)

        def train(leaf):
            return block_neuron(leaf, profile, params, 0, backend="numba").spikes

        sum_ms = median_ms(x.sum, reps)[0]
        timed = {
            "forward operator": (median_ms(lambda: forward_op(*args), reps)[0], "fwd"),
            "... right after x.sum()": (median_ms(after_torch_op, reps)[0] - sum_ms, "fwd"),
            "block_neuron, no_grad": (median_ms(call, reps)[0], "fwd"),
            "block_neuron + backward": (time_forward_backward(train, x, reps), "fwd_bwd"),
        }
        for what, (ms, kind) in timed.items():
            print(f"{name:18} {what:24} {ms:8.2f} {ms / floors[kind]:8.2f} {ms / skeleton[kind]:10.2f}")


if __name__ == "__main__":
    main()
