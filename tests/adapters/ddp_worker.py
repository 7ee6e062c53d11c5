"""The per-process half of tests/adapters/test_ddp.py (a module of its own so that ``torch.multiprocessing.spawn``
can import it in the child processes)."""

from __future__ import annotations

import datetime
import os
import warnings

import torch
from torch import nn

T, BATCH, N_IN, N_HIDDEN, N_OUT, STEPS, LR = 20, 8, 6, 8, 4, 3, 0.5
# ours per framework, then the native classes in the same network (the reference for "works with DDP")
FRAMEWORKS = ("modules", "snntorch", "spikingjelly", "norse", "snntorch-native", "spikingjelly-native", "norse-native")


def data():
    generator = torch.Generator().manual_seed(0)
    x = torch.rand(T, BATCH, N_IN, generator=generator, dtype=torch.float64)
    target = torch.rand(BATCH, N_OUT, generator=generator, dtype=torch.float64)
    return x, target


class Net(nn.Module):
    """Linear -> Block neuron -> Linear -> Block neuron of one framework, on time-first input [T, B, N_IN]."""

    def __init__(self, framework: str):
        super().__init__()
        torch.manual_seed(1)
        self.framework = framework
        self.fc1, self.fc2 = nn.Linear(N_IN, N_HIDDEN), nn.Linear(N_HIDDEN, N_OUT)
        self.neuron1, self.neuron2 = self._neuron(), self._neuron()
        self.double()

    def _neuron(self):
        if self.framework == "snntorch-native":
            import snntorch

            return snntorch.Leaky(0.9, threshold=0.3, learn_beta=True)
        if self.framework == "spikingjelly-native":
            from spikingjelly.activation_based.neuron import ParametricLIFNode

            return ParametricLIFNode(v_threshold=0.3, step_mode="m")
        if self.framework == "norse-native":
            from norse.torch import LIF, LIFParameters

            return LIF(LIFParameters(v_th=torch.tensor(0.3)))  # Norse registers no parameter of p
        if self.framework == "modules":
            from snn_blockbackend.modules import BlockLIF

            return BlockLIF(0.9, threshold=0.3, learn_beta=True)
        if self.framework == "snntorch":
            from snn_blockbackend.adapters.snntorch import BlockLeaky

            return BlockLeaky(0.9, threshold=0.3, learn_beta=True, sequence=True)
        if self.framework == "spikingjelly":
            from snn_blockbackend.adapters.spikingjelly import API, BlockParametricLIFNode

            node = BlockParametricLIFNode(v_threshold=0.3, step_mode="m")
            if API == "0.0.0.0.14":
                node.backend = "block"
            return node
        from norse.torch import LIFParameters

        from snn_blockbackend.adapters.norse import BlockLIF

        return BlockLIF(LIFParameters(tau_mem_inv=nn.Parameter(torch.tensor(200.0)), v_th=torch.tensor(0.3)))

    def _spikes(self, neuron, h):
        if self.framework == "snntorch-native":  # snn.Leaky steps
            mem, spikes = torch.zeros_like(h[0]), []
            for ht in h:
                spk, mem = neuron(ht, mem)
                spikes.append(spk)
            return torch.stack(spikes).to(h.dtype)
        if self.framework == "snntorch":
            # a fresh membrane per batch; snnTorch's spikes are float32 (its spike function's dtype)
            return neuron(h, torch.zeros_like(h[0]))[0].to(h.dtype)
        if self.framework.startswith("norse"):
            return neuron(h * 100)[0].to(h.dtype)
        return neuron(h)

    def forward(self, x):
        if self.framework.startswith("spikingjelly"):
            from spikingjelly.activation_based import functional

            functional.reset_net(self)  # a fresh state per batch
        return self._spikes(self.neuron2, self.fc2(self._spikes(self.neuron1, self.fc1(x))))


def train(net: nn.Module, x: torch.Tensor, target: torch.Tensor) -> list[float]:
    """STEPS SGD steps on the loss mean((rate - target)^2) (a mean over the batch: DDP averages gradients)."""
    optimizer = torch.optim.SGD(net.parameters(), lr=LR)
    losses = []
    for _ in range(STEPS):
        optimizer.zero_grad()
        loss = ((net(x).mean(0) - target) ** 2).mean()
        loss.backward()
        optimizer.step()
        losses.append(float(loss))
    return losses


def run(rank: int, world_size: int, port: int, out_dir: str) -> None:
    warnings.simplefilter("ignore")
    torch.set_num_threads(1)
    os.environ["MASTER_ADDR"] = "127.0.0.1"
    os.environ["MASTER_PORT"] = str(port)
    os.environ.setdefault("GLOO_SOCKET_IFNAME", "lo")
    torch.distributed.init_process_group(
        "gloo", rank=rank, world_size=world_size, timeout=datetime.timedelta(seconds=60),
        init_method=f"tcp://127.0.0.1:{port}",
    )  # fmt: skip
    try:
        x, target = data()
        share = BATCH // world_size
        mine = slice(rank * share, (rank + 1) * share)
        for framework in FRAMEWORKS:
            model = nn.parallel.DistributedDataParallel(Net(framework))
            train(model, x[:, mine], target[mine])
            if rank == 0:
                torch.save(model.module.state_dict(), os.path.join(out_dir, f"{framework}.pt"))
    finally:
        torch.distributed.destroy_process_group()
