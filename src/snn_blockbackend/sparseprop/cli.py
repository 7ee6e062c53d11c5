"""``snn-blockbackend sparseprop``: run a balanced random network and report its statistics."""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

from .connectivity import default_weight, fixed_outdegree_network
from .models import balanced_drive, make_model
from .simulate import simulate


def add_parser(subparsers) -> argparse.ArgumentParser:
    """Register the ``sparseprop`` sub-command on an argparse ``subparsers`` object."""
    parser = subparsers.add_parser(
        "sparseprop", help="exact event-driven simulation of a sparse balanced network (SparseProp)",
        description="Simulate a balanced inhibitory network with SparseProp (O(K log N) per spike).")
    configure_parser(parser)
    parser.set_defaults(func=main)
    return parser


def _positive_finite_seconds(text: str) -> float:
    """argparse type of ``--seconds``: a finite time > 0 (inf would never end, NaN or <= 0 simulate nothing)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not math.isfinite(value) or value <= 0:
        raise argparse.ArgumentTypeError(f"must be a finite number of seconds > 0, got {text!r}")
    return value


def _writable_png_path(text: str) -> str:
    """argparse type of ``--raster``: refused before the simulation runs when its folder does not exist."""
    folder = os.path.dirname(os.path.abspath(text))
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"folder {folder!r} does not exist (create it first): {text!r}")
    return text


def configure_parser(parser: argparse.ArgumentParser) -> argparse.ArgumentParser:
    parser.add_argument("--model", choices=("lif", "qif", "eif"), default="lif")
    parser.add_argument("--neurons", type=int, default=100_000, help="network size N")
    parser.add_argument("--k", type=int, default=100, help="out-degree K (synapses per neuron)")
    parser.add_argument("--seconds", type=_positive_finite_seconds, default=1.0,
                        help="simulated time in seconds (finite, > 0)")
    parser.add_argument("--seed", type=int, default=0, help="seed for network and initial phases")
    parser.add_argument("--rate", type=float, default=1.0, help="target rate (Hz) of the balance equation")
    parser.add_argument("--j0", type=float, default=1.0, help="coupling strength; each synapse jumps -J0/sqrt(K)")
    parser.add_argument("--tau", type=float, default=0.01, help="membrane time constant (s)")
    parser.add_argument("--stored", action="store_true",
                        help="store the connectivity as CSR (default: regenerate on the fly, O(N) memory)")
    parser.add_argument("--raster", type=_writable_png_path, default=None, metavar="PATH",
                        help="write a raster plot of the whole run to this PNG file (default: no file)")
    parser.add_argument("--raster-neurons", type=int, default=200, help="neurons shown in the raster")
    parser.add_argument("--json", action="store_true", help="print only a JSON object with the figures")
    return parser


def _write_raster(result, path: str, n_show: int) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    show = result.neuron_ids < n_show
    fig, ax = plt.subplots(figsize=(8, 4))
    ax.plot(result.spike_times[show], result.neuron_ids[show], "|", ms=3, color="k")
    ax.set_xlim(0.0, result.t_stop)  # the whole run, also where its last spikes come early
    ax.set_xlabel("time (s)")
    ax.set_ylabel("neuron")
    ax.set_title(f"SparseProp raster, first {n_show} of {result.n_neurons} neurons")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def run(args) -> dict:
    """Run the simulation described by parsed ``args``; returns the summary figures."""
    drive = balanced_drive(args.k, args.j0, args.rate, args.tau)
    model = make_model(args.model, drive=drive, tau=args.tau)
    network = fixed_outdegree_network(args.neurons, args.k, default_weight(args.k, args.j0),
                                      seed=args.seed, stored=args.stored)
    result = simulate(model, network, t_stop=args.seconds, seed=args.seed, progress=not args.json)
    if args.raster:
        _write_raster(result, args.raster, args.raster_neurons)
    summary = result.summary()
    return {key: (None if isinstance(v, float) and math.isnan(v) else v) for key, v in summary.items()}


def main(args) -> int:
    """Entry point for the sub-command; ``args`` is the parsed namespace."""
    if args.neurons is None or args.k is None:
        raise ValueError("--neurons and --k are required")
    summary = run(args)
    if args.json:
        sys.stdout.write(json.dumps(summary) + "\n")
    else:
        print(f"spikes        {summary['spikes']}")
        print(f"mean rate     {summary['rate_hz']:.4f} Hz" if summary["rate_hz"] is not None else "mean rate     n/a")
        print(f"CV of ISIs    {summary['cv']:.4f}" if summary["cv"] is not None else "CV of ISIs    n/a")
        print(f"us per spike  {summary['us_per_spike']:.2f}" if summary["us_per_spike"] is not None
              else "us per spike  n/a")
        print(f"compile time  {summary['compile_s']:.2f} s (numba, before the run; not in us per spike)")
        if args.raster:
            print(f"raster        {args.raster}")
    return 0
