"""Training-step rows of ``snn-blockbackend bench``: a whole training step, native neurons vs ours, one run.

The network is ``Linear -> neuron -> Linear -> neuron`` over a time-first input [T, B, n_in] (Bernoulli
spikes, rate 0.2, as a rate-coded image; weights ``WEIGHT_GAIN`` times PyTorch's default); the step is
``zero_grad``, forward, cross-entropy of the output spike counts against random labels, ``backward`` and
``Adam.step``. Both Linear layers run on the whole
sequence (one matrix product each) in both variants, so the two differ only in their neurons:

* snnTorch: ``Leaky(beta=0.9)`` in a per-step loop over ``x.unbind(0)`` vs ``BlockLeaky(beta=0.9, sequence=True)``;
* SpikingJelly 2.x: ``LIFNode(step_mode='m')`` (its defaults: tau = 2, sigmoid surrogate, reset not
  detached) vs ``BlockLIFNode(step_mode='m')``; ``functional.reset_net`` before each step;
* Norse: ``LIFCell()`` in a per-step loop over ``x.unbind(0)`` (Norse's time-first ``LIF`` module indexes
  ``x[t]``, whose backward is quadratic in T) vs ``BlockLIF()``.

Both variants start from the same weights, and the first step's losses are compared (``loss_equal``: the
forward passes are bit-exact, so they must be equal).

Besides float32 eager, each framework gets a ``bfloat16`` row (the step under
``torch.autocast("cpu", torch.bfloat16)``, the usual mixed-precision recipe: the Linear layers run in bfloat16,
each neuron in the dtypes its inputs and parameters promote to, as the native class does) and a ``compiled`` row (both nets through ``torch.compile`` with its default
backend, Inductor; the compile is in the warm-up step, not in the timed ones), at the neuron-dominated shape with
one thread. Compiled, the two nets are different programs to Inductor (it fuses the native loop's elementwise
operations its own way), so their losses need not be equal there. Each (shape, threads) pair runs with
``torch.set_num_threads(threads)`` (restored afterwards); "rate" is the hidden layer's firing rate. Times: median of ``reps`` steps after one warm-up.
"""

from __future__ import annotations

import logging
import warnings
from typing import Callable

import torch
from torch import nn

from .timing import median_ms, ratio, torch_threads

# (T, B, n_in, n_hidden, n_out): the first dominated by the Linear layers, the second by the neurons
SHAPES = ((100, 64, 784, 512, 10), (200, 32, 64, 1024, 10))
QUICK_SHAPES = ((25, 16, 784, 256, 10), (50, 8, 64, 512, 10))
THREADS = (1, 2)
VARIANTS = ("float32", "bfloat16", "compiled")
FRAMEWORKS = ("snntorch", "spikingjelly", "norse")
LABELS = {
    "snntorch": ("Leaky loop", "BlockLeaky(sequence=True)"),
    "spikingjelly": ("LIFNode(step_mode='m')", "BlockLIFNode(step_mode='m')"),
    "norse": ("LIFCell loop", "BlockLIF"),
}
INPUT_RATE = 0.2
# both Linear layers' weights: PyTorch's default initialisation times this, so that the hidden layer of every
# framework's neuron fires at a rate a trained network shows (~0.05-0.2; at 1x SpikingJelly's tau = 2 LIF hardly fires)
WEIGHT_GAIN = 4.0


class _Net(nn.Module):
    """Linear -> neuron -> Linear -> neuron; ``run(neuron, current)`` maps [T, B, n] currents to spikes."""

    def __init__(self, sizes, make_neuron: Callable[[], nn.Module], run: Callable, reset: Callable | None = None):
        super().__init__()
        n_in, n_hidden, n_out = sizes
        self.fc1, self.lif1 = nn.Linear(n_in, n_hidden), make_neuron()
        self.fc2, self.lif2 = nn.Linear(n_hidden, n_out), make_neuron()
        with torch.no_grad():
            self.fc1.weight.mul_(WEIGHT_GAIN)
            self.fc2.weight.mul_(WEIGHT_GAIN)
        self._run, self._reset = run, reset

    def reset_state(self):
        """Called before each step, outside ``forward`` (a compiled forward would retrace SpikingJelly's reset)."""
        if self._reset is not None:
            self._reset(self)

    def forward(self, x):
        hidden = self._run(self.lif1, self.fc1(x))
        self.hidden_rate = hidden.detach().mean()  # a tensor: float() here would break a compiled graph
        return self._run(self.lif2, self.fc2(hidden))


def _unbind_loop(step):
    """A neuron run per step over ``current.unbind(0)``; ``step(neuron, x_t, state) -> (spikes, state)``."""

    def run(neuron, current):
        state, spikes = None, []
        for x_t in current.unbind(0):
            spk, state = step(neuron, x_t, state)
            spikes.append(spk)
        return torch.stack(spikes)

    return run


def _snntorch(ours: bool, sizes) -> _Net:
    import snntorch as snn

    if ours:
        from .adapters.snntorch import BlockLeaky

        def run(neuron, current):
            return neuron(current, torch.zeros_like(current[0]))[0]

        return _Net(sizes, lambda: BlockLeaky(beta=0.9, sequence=True), run)

    def step(neuron, x_t, mem):
        return neuron(x_t, torch.zeros_like(x_t) if mem is None else mem)

    return _Net(sizes, lambda: snn.Leaky(beta=0.9), _unbind_loop(step))


def _spikingjelly(ours: bool, sizes) -> _Net:
    logging.getLogger("torch._library.triton").setLevel(logging.ERROR)  # SpikingJelly's import probes Triton
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        from spikingjelly.activation_based import functional, neuron

        if ours:
            from .adapters.spikingjelly import BlockLIFNode as node
        else:
            node = neuron.LIFNode
    return _Net(sizes, lambda: node(step_mode="m"), lambda n, current: n(current), functional.reset_net)


def _norse(ours: bool, sizes) -> _Net:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import norse.torch as norse_torch

        if ours:
            from .adapters.norse import BlockLIF

            return _Net(sizes, BlockLIF, lambda n, current: n(current)[0])
    return _Net(sizes, norse_torch.LIFCell, _unbind_loop(lambda neuron, x_t, state: neuron(x_t, state)))


_BUILDERS = {"snntorch": _snntorch, "spikingjelly": _spikingjelly, "norse": _norse}


def make_batch(shape, seed: int = 0):
    """(input spikes [T, B, n_in], labels [B]) for a shape (T, B, n_in, n_hidden, n_out)."""
    T, B, n_in, _, n_out = shape
    generator = torch.Generator().manual_seed(seed)
    x = (torch.rand((T, B, n_in), generator=generator) < INPUT_RATE).float()
    return x, torch.randint(0, n_out, (B,), generator=generator)


def _trainer(net: nn.Module, x, labels, autocast_dtype=None):
    optimizer = torch.optim.Adam(net.parameters(), lr=1e-3)
    plain = getattr(net, "_orig_mod", net)  # the module under torch.compile's wrapper

    def step():
        optimizer.zero_grad(set_to_none=True)
        plain.reset_state()
        with torch.autocast("cpu", dtype=autocast_dtype or torch.bfloat16, enabled=autocast_dtype is not None):
            out = net(x)
            loss = nn.functional.cross_entropy(out.sum(0), labels)
        loss.backward()
        optimizer.step()
        return loss.detach()

    return step


def measure(framework: str, shape, threads: int, reps: int, seed: int = 0, variant: str = "float32") -> dict:
    """One row: a training step of the native net and of ours at ``shape`` with ``threads`` torch threads;
    ``variant`` one of ``VARIANTS`` (float32 eager, bfloat16 eager, float32 under ``torch.compile``)."""
    if variant not in VARIANTS:
        raise ValueError(f"variant must be one of {VARIANTS}, not {variant!r}")
    T, B, n_in, n_hidden, n_out = shape
    native_label, our_label = LABELS[framework]
    row = {
        "framework": framework, "T": T, "B": B, "sizes": [n_in, n_hidden, n_out], "threads": threads,
        "variant": variant, "native": native_label, "ours": our_label, "native_ms": None, "our_ms": None,
        "speedup": None, "loss_equal": None, "rate": None, "note": None,
    }  # fmt: skip
    try:
        nets = {}
        for ours in (False, True):
            torch.manual_seed(seed)  # the same initial weights for both
            nets[ours] = _BUILDERS[framework](ours, shape[2:])
    except ImportError as error:
        row["note"] = f"{framework} not installed ({error})"
        return row
    x, labels = make_batch(shape, seed)
    if variant == "compiled":
        nets = {ours: torch.compile(net) for ours, net in nets.items()}
    try:
        with torch_threads(threads):
            autocast = torch.bfloat16 if variant == "bfloat16" else None
            first = {ours: _trainer(net, x, labels, autocast)() for ours, net in nets.items()}  # also warms up both
            row["loss_equal"] = bool(torch.equal(first[False], first[True]))
            row["rate"] = float(getattr(nets[True], "_orig_mod", nets[True]).hidden_rate)
            row["native_ms"] = median_ms(_trainer(nets[False], x, labels, autocast), reps)[0]
            row["our_ms"] = median_ms(_trainer(nets[True], x, labels, autocast), reps)[0]
    except Exception as error:  # report and go on: one broken framework must not lose the whole run
        row["note"] = f"error: {type(error).__name__}: {error}"
    row["speedup"] = ratio(row["native_ms"], row["our_ms"])
    return row


def training_plan(rows: list, reps: int, quick: bool, shapes=None, threads=THREADS, frameworks=FRAMEWORKS,
                  variants=VARIANTS):
    """(description, thunk) steps that append one row each to ``rows`` (see ``bench.run_plan``): float32 at
    every shape and thread count, the other ``variants`` at the last (neuron-dominated) shape with one thread.
    ``--quick`` leaves out the compiled rows (Inductor's compile takes tens of seconds per net)."""
    shapes = shapes or (QUICK_SHAPES if quick else SHAPES)
    runs = [(shape, n, "float32") for shape in shapes for n in threads]
    runs += [(shapes[-1], 1, v) for v in variants if v != "float32" and not (quick and v == "compiled")]
    plan = []
    for shape, n, variant in runs:
        for framework in frameworks:
            plan.append((
                f"training step {framework} {_shape(shape)} {n} thr {variant}",
                lambda f=framework, s=shape, n=n, v=variant: rows.append(measure(f, s, n, reps, variant=v)),
            ))  # fmt: skip
    return plan


def _shape(shape) -> str:
    T, B, n_in, n_hidden, n_out = shape
    return f"T={T} B={B} {n_in}-{n_hidden}-{n_out}"


def training_table(rows: list):
    """A rich Table of the rows (under 100 columns; notes become numbered footnotes)."""
    from rich.table import Table

    table = Table(title="training step (Linear-neuron-Linear-neuron, CE loss, Adam), native vs ours")
    for header in ("framework", "T B sizes", "thr", "mode", "native ms", "ours ms", "x", "loss", "rate"):
        left = header in ("framework", "T B sizes", "mode")
        table.add_column(header, justify="left" if left else "right", no_wrap=True)
    notes: list[str] = []
    for r in rows:
        shape = f"{r['T']} {r['B']} {'-'.join(map(str, r['sizes']))}"
        if r["note"]:
            notes += [r["note"]] if r["note"] not in notes else []
            table.add_row(r["framework"], shape, str(r["threads"]), r.get("variant", "float32"),
                          f"[yellow]\\[{notes.index(r['note']) + 1}][/yellow]", "", "", "", "")  # fmt: skip
            continue
        table.add_row(
            r["framework"], shape, str(r["threads"]), r.get("variant", "float32"), f"{r['native_ms']:.1f}", f"{r['our_ms']:.1f}",
            f"{r['speedup']:.2f}", "yes" if r["loss_equal"] else "[red]NO[/red]", f"{r['rate']:.2f}",
        )  # fmt: skip
    caption = ["x = native ms / our ms (> 1: ours faster); loss: first step's losses equal; rate: hidden spikes"]
    table.caption = "\n".join(caption + [f"[{i}] {note}" for i, note in enumerate(notes, 1)])
    table.caption_justify = "left"
    return table
