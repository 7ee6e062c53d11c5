"""Train a 2-layer SNN on scikit-learn's digits in snnTorch, SpikingJelly and Norse, native vs the one-line swap.

Each framework's network is written its usual way (snnTorch: a per-step loop over ``Leaky``; SpikingJelly:
``LIFNode(step_mode='m')``; Norse: ``LIF`` in a ``SequentialState``) and trained once with the native neuron
and once with ours (``BlockLeaky(sequence=True)``, ``BlockLIFNode``, ``BlockLIF``), from the same seed, initial
weights and batch order. Then the snnTorch network is trained with a refractory period R in {0, 1, 2, 4} and
with ``BlockALIF``. Writes ``classify_digits.png`` and ``classify_digits.json``.

Run: ``python examples/classify_digits.py [--quick] [--out DIR]``
"""

from __future__ import annotations

import importlib
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

try:
    from _common import Progress, parser, pyplot, write_results
except ImportError:  # imported as examples._common
    from ._common import Progress, parser, pyplot, write_results

NAME = "classify_digits"
SIZES = {  # default / --quick
    False: {"steps": 50, "hidden": 128, "epochs": 4, "batch": 64, "train": None},
    True: {"steps": 30, "hidden": 64, "epochs": 2, "batch": 48, "train": 384},
}
REFRACTORY = (0, 1, 2, 4)
MAX_RATE = 0.5  # a pixel of value 16 spikes with probability 0.5 per step


# ---------------------------------------------------------------------------------------------
# data: rate-coded digits, time first [T, samples, 64]
# ---------------------------------------------------------------------------------------------
def load_digits(steps: int, seed: int, train_limit: int | None):
    try:
        from sklearn.datasets import load_digits as sk_digits
        from sklearn.model_selection import train_test_split
    except ImportError as error:
        raise ImportError("this example needs scikit-learn: pip install 'snn-blockbackend[examples]'") from error
    images, labels = sk_digits(return_X_y=True)
    x_train, x_test, y_train, y_test = train_test_split(
        images / 16.0, labels, test_size=0.25, random_state=seed, stratify=labels
    )
    if train_limit is not None:
        x_train, y_train = x_train[:train_limit], y_train[:train_limit]
    generator = torch.Generator().manual_seed(seed)

    def encode(pixels):  # Bernoulli rate code, drawn once so every run sees the same spikes
        p = torch.as_tensor(pixels, dtype=torch.float32) * MAX_RATE
        return torch.bernoulli(p.expand(steps, *p.shape), generator=generator)

    return encode(x_train), torch.as_tensor(y_train), encode(x_test), torch.as_tensor(y_test)


# ---------------------------------------------------------------------------------------------
# the networks, each written its framework's usual way; ``ours`` swaps one class
# ---------------------------------------------------------------------------------------------
def _scale_weights(net, gain):
    with torch.no_grad():
        for layer in net:
            if isinstance(layer, nn.Linear):
                layer.weight.mul_(gain)


class SnnTorchNet(nn.Module):
    """snnTorch: nn.Sequential of Linear/Leaky with init_hidden; native runs a per-step loop (README diff)."""

    def __init__(self, hidden, ours=False, refractory_steps=0, alif=False):
        super().__init__()
        import snntorch as snn

        from snn_blockbackend.adapters.snntorch import BlockALIF, BlockLeaky

        if alif:
            def neuron(**kw):
                return BlockALIF(beta=0.9, adaptation_decay=0.9, adaptation_strength=0.2, sequence=True,
                                 refractory_steps=refractory_steps, **kw)  # fmt: skip
        elif ours:
            def neuron(**kw):
                return BlockLeaky(beta=0.9, sequence=True, refractory_steps=refractory_steps, **kw)
        else:
            def neuron(**kw):
                return snn.Leaky(beta=0.9, **kw)
        self.sequence = ours or alif
        self.net = nn.Sequential(
            nn.Linear(64, hidden), neuron(init_hidden=True),
            nn.Linear(hidden, 10), neuron(init_hidden=True, output=True),
        )  # fmt: skip

    def forward(self, x):
        from snntorch import utils

        utils.reset(self.net)
        if self.sequence:
            spikes, _ = self.net(x)  # x: [T, B, 64] -> [T, B, 10]
            return spikes
        spk_rec, _ = zip(*(self.net(x[t]) for t in range(x.shape[0])))
        return torch.stack(spk_rec)


class SpikingJellyNet(nn.Module):
    """SpikingJelly 2.x: multi-step LIFNode(tau=2) layers; ``functional.reset_net`` before each batch."""

    def __init__(self, hidden, ours=False):
        super().__init__()
        from spikingjelly.activation_based import neuron

        from snn_blockbackend.adapters.spikingjelly import BlockLIFNode

        node = BlockLIFNode if ours else neuron.LIFNode
        self.net = nn.Sequential(
            nn.Linear(64, hidden), node(tau=2.0, step_mode="m"), nn.Linear(hidden, 10), node(tau=2.0, step_mode="m")
        )
        _scale_weights(self.net, 4.0)  # the node charges (x - v)/tau: half the input, so larger weights

    def forward(self, x):
        from spikingjelly.activation_based import functional

        functional.reset_net(self.net)
        return self.net(x)


class NorseNet(nn.Module):
    """Norse: time-first LIF modules in a SequentialState (current-based LIF, dt = 1 ms)."""

    def __init__(self, hidden, ours=False):
        super().__init__()
        import norse.torch as norse

        from snn_blockbackend.adapters.norse import BlockLIF

        lif = BlockLIF if ours else norse.LIF
        self.net = norse.SequentialState(nn.Linear(64, hidden), lif(), nn.Linear(hidden, 10), lif())
        _scale_weights(self.net, 4.0)  # the membrane integrates 0.1 of the current per step: larger weights

    def forward(self, x):
        spikes, _ = self.net(x)
        return spikes


FRAMEWORKS = {"snntorch": SnnTorchNet, "spikingjelly": SpikingJellyNet, "norse": NorseNet}
OUR_CLASS = {"snntorch": "BlockLeaky(sequence=True)", "spikingjelly": "BlockLIFNode", "norse": "BlockLIF"}
NATIVE_CLASS = {"snntorch": "snntorch.Leaky (per-step loop)", "spikingjelly": "LIFNode(step_mode='m')",
                "norse": "norse.torch.LIF"}  # fmt: skip


# ---------------------------------------------------------------------------------------------
# training
# ---------------------------------------------------------------------------------------------
def loss_of(spikes, labels):
    return F.cross_entropy(spikes.sum(0), labels)  # logits = output spike counts


@torch.no_grad()
def accuracy(model, x, y, batch=256):
    correct = 0
    for i in range(0, x.shape[1], batch):
        correct += int((model(x[:, i : i + batch]).sum(0).argmax(1) == y[i : i + batch]).sum())
    return correct / x.shape[1]


def train(make_model, data, size, seed, label, progress=True):
    """Train from ``seed``; returns the per-step losses, epoch times, test accuracy and first-batch spikes."""
    x_train, y_train, x_test, y_test = data
    torch.manual_seed(seed)
    model = make_model()
    initial_weights = [p.detach().clone() for p in model.parameters()]
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    order = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        first_spikes = model(x_train[:, : size["batch"]]).clone()
    n = x_train.shape[1]
    batches = (n + size["batch"] - 1) // size["batch"]
    losses, epoch_s = [], []
    with Progress(label, size["epochs"] * batches, progress) as bar:
        for _ in range(size["epochs"]):
            perm = torch.randperm(n, generator=order)
            start = time.perf_counter()
            for b in range(batches):
                idx = perm[b * size["batch"] : (b + 1) * size["batch"]]
                loss = loss_of(model(x_train[:, idx]), y_train[idx])
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                losses.append(loss.item())
                bar.advance(info=f"loss {losses[-1]:.3f}")
            epoch_s.append(time.perf_counter() - start)
    return {
        "losses": losses,
        "epoch_s": epoch_s,
        "test_accuracy": accuracy(model, x_test, y_test),
        "first_spikes": first_spikes,
        "initial_weights": initial_weights,
        "final_weights": [p.detach().clone() for p in model.parameters()],
    }


def drift(native_losses, our_losses):
    """How far two loss curves from identical forwards part: first step they differ, and by how much."""
    a, b = np.asarray(native_losses), np.asarray(our_losses)
    diff = np.abs(a - b)
    differ = np.flatnonzero(diff > 0)
    above = np.flatnonzero(diff > 1e-3 * np.maximum(np.abs(a), 1e-12))
    return {
        "first_step_differing": int(differ[0]) if differ.size else None,
        "first_step_relative_diff_above_1e-3": int(above[0]) if above.size else None,
        "max_abs_diff_first_10_steps": float(diff[:10].max()),
        "max_abs_diff": float(diff.max()),
        "final_abs_diff": float(diff[-1]),
        "steps": int(a.size),
    }


def epoch_time(run):
    """The fastest epoch after the first (which pays for one-off costs: kernel cache loads, allocator warm-up).
    The fastest, not the median: on a shared machine other processes only ever add time."""
    times = run["epoch_s"][1:] or run["epoch_s"]
    return float(np.min(times))


def refractory_sweep(ours_r0, data, size, seed, show):
    """The snnTorch network with BlockLeaky(refractory_steps=R) for R in REFRACTORY, then with BlockALIF."""
    sweep = []
    for r in REFRACTORY:
        if r == 0:
            run = ours_r0
        else:
            run = train(lambda: SnnTorchNet(size["hidden"], ours=True, refractory_steps=r), data, size, seed,
                        f"snntorch BlockLeaky R={r}", show)  # fmt: skip
        sweep.append({"neuron": "BlockLeaky", "R": r, "test_accuracy": run["test_accuracy"],
                      "epoch_s": epoch_time(run), "epoch_s_all": run["epoch_s"], "final_loss": run["losses"][-1]})  # fmt: skip
    alif = train(lambda: SnnTorchNet(size["hidden"], alif=True), data, size, seed, "snntorch BlockALIF", show)
    sweep.append({"neuron": "BlockALIF", "R": 0, "test_accuracy": alif["test_accuracy"],
                  "epoch_s": epoch_time(alif), "epoch_s_all": alif["epoch_s"], "final_loss": alif["losses"][-1]})  # fmt: skip
    return sweep


def main(argv=None) -> dict:
    args = parser(__doc__.splitlines()[0]).parse_args(argv)
    size = SIZES[args.quick]
    data = load_digits(size["steps"], args.seed, size["train"])
    show = not args.no_progress
    results = {"size": size, "encoding": f"Bernoulli rate code, p = pixel/16 * {MAX_RATE}", "frameworks": {}}
    runs = {}
    for name, net_cls in FRAMEWORKS.items():
        try:
            importlib.import_module(f"snn_blockbackend.adapters.{name}")
        except ImportError as error:  # the adapter's message names the pip extra
            results["frameworks"][name] = {"skipped": str(error)}
            print(f"skipping {name}: {error}")
            continue
        native = train(lambda: net_cls(size["hidden"]), data, size, args.seed, f"{name} native", show)
        ours = train(lambda: net_cls(size["hidden"], ours=True), data, size, args.seed, f"{name} ours", show)
        same_init = all(torch.equal(a, b) for a, b in zip(native["initial_weights"], ours["initial_weights"]))
        weight_drift = max(float((a - b).abs().max()) for a, b in zip(native["final_weights"], ours["final_weights"]))
        mismatch = int((native["first_spikes"] != ours["first_spikes"]).sum())
        runs[name] = (native, ours)
        results["frameworks"][name] = {
            "native_class": NATIVE_CLASS[name],
            "our_class": OUR_CLASS[name],
            "same_initial_weights": same_init,
            "first_batch_output_spikes": int(native["first_spikes"].sum()),
            "first_batch_spike_mismatch": mismatch,
            "max_abs_weight_difference_after_training": weight_drift,
            "loss_drift": drift(native["losses"], ours["losses"]),
            "native": {"test_accuracy": native["test_accuracy"], "epoch_s": epoch_time(native),
                       "epoch_s_all": native["epoch_s"],
                       "final_loss": native["losses"][-1], "losses": native["losses"]},
            "ours": {"test_accuracy": ours["test_accuracy"], "epoch_s": epoch_time(ours), "epoch_s_all": ours["epoch_s"],
                     "final_loss": ours["losses"][-1], "losses": ours["losses"]},
            "speedup_per_epoch": epoch_time(native) / epoch_time(ours),
        }  # fmt: skip

    if "snntorch" in runs:  # the refractory sweep and BlockALIF run on the snnTorch network
        results["snntorch_sweep"] = refractory_sweep(runs["snntorch"][1], data, size, args.seed, show)
        results["snntorch_native_epoch_s"] = epoch_time(runs["snntorch"][0])

    figure = plot(results, runs, size)
    results = write_results(args.out, NAME, results, figure)
    report(results)
    return results


def plot(results, runs, size):
    plt = pyplot()
    fig, axes = plt.subplots(1, 3, figsize=(16, 4.2))
    colours = {"snntorch": "tab:blue", "spikingjelly": "tab:orange", "norse": "tab:green"}
    for name, (native, ours) in runs.items():
        axes[0].plot(native["losses"], color=colours[name], lw=2.5, alpha=0.45, label=f"{name} native")
        axes[0].plot(ours["losses"], color=colours[name], lw=1, ls="--", label=f"{name} ours")
        diff = np.abs(np.asarray(native["losses"]) - np.asarray(ours["losses"]))
        axes[1].semilogy(np.maximum(diff, 1e-10), color=colours[name], label=name)
    axes[0].set(xlabel="training step", ylabel="cross-entropy loss", title="loss: native (thick) vs ours (dashed)")
    axes[0].legend(fontsize=7, ncol=2)
    axes[1].set(xlabel="training step", ylabel="|loss native - loss ours| (1e-10 = equal)",
                title="drift from fp32 gradient rounding (R = 0)")  # fmt: skip
    axes[1].legend(fontsize=8)
    if "snntorch_sweep" not in results:
        axes[2].set_visible(False)
        fig.tight_layout()
        return fig
    sweep = [s for s in results["snntorch_sweep"] if s["neuron"] == "BlockLeaky"]
    alif = next(s for s in results["snntorch_sweep"] if s["neuron"] == "BlockALIF")
    rs = [s["R"] for s in sweep]
    ax = axes[2]
    ax.plot(rs, [s["test_accuracy"] for s in sweep], "o-", color="tab:blue", label="BlockLeaky accuracy")
    ax.plot([0], [alif["test_accuracy"]], "s", color="tab:purple", markersize=9, fillstyle="none",
            label="BlockALIF (R = 0) accuracy")  # fmt: skip
    ax.set(xlabel="refractory period R (steps)", ylabel="test accuracy", xticks=rs, ylim=(0, 1.05),
           title=f"snnTorch net, T = {size['steps']}: accuracy and speed vs R")  # fmt: skip
    twin = ax.twinx()
    native_s = results["snntorch_native_epoch_s"]
    twin.plot(rs, [native_s / s["epoch_s"] for s in sweep], "^:", color="tab:red", label="speed-up per epoch vs Leaky loop")
    twin.plot([0], [native_s / alif["epoch_s"]], "v", color="tab:red", label="BlockALIF speed-up")
    twin.set_ylabel("speed-up per epoch (native / ours)")
    twin.set_ylim(bottom=0)
    lines = ax.get_legend_handles_labels()
    more = twin.get_legend_handles_labels()
    ax.legend(lines[0] + more[0], lines[1] + more[1], fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig


def report(results):
    from rich.console import Console
    from rich.table import Table

    table = Table(title="digits, native vs ours (same seed and initial weights)")
    for column in ("framework", "spike mismatch batch 1", "first differing step", "native acc", "our acc",
                   "native s/epoch", "our s/epoch", "speed-up"):  # fmt: skip
        table.add_column(column)
    for name, r in results["frameworks"].items():
        if "skipped" in r:
            continue
        table.add_row(name, str(r["first_batch_spike_mismatch"]), str(r["loss_drift"]["first_step_differing"]),
                      f"{r['native']['test_accuracy']:.3f}", f"{r['ours']['test_accuracy']:.3f}",
                      f"{r['native']['epoch_s']:.3f}", f"{r['ours']['epoch_s']:.3f}", f"{r['speedup_per_epoch']:.1f}x")  # fmt: skip
    console = Console()
    console.print(table)
    if "snntorch_sweep" in results:
        sweep = Table(title="snnTorch net vs refractory period")
        for column in ("neuron", "R", "test acc", "s/epoch"):
            sweep.add_column(column)
        for s in results["snntorch_sweep"]:
            sweep.add_row(s["neuron"], str(s["R"]), f"{s['test_accuracy']:.3f}", f"{s['epoch_s']:.3f}")
        console.print(sweep)
    console.print(f"wrote {results['figure']} and {results['json']}")


if __name__ == "__main__":
    main()
