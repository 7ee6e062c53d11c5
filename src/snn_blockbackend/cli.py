"""The ``snn-blockbackend`` command line: ``info``, ``bench``, ``sparseprop`` and ``examples``."""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from . import __version__

SPARSEPROP_INSTALL = "pip install 'snn-blockbackend[sparseprop]'"


# ---------------------------------------------------------------------------------------------
# info
# ---------------------------------------------------------------------------------------------
def _summary(cls) -> str:
    """The first sentence of the class docstring's first paragraph (without the ``code`` markup)."""
    paragraph = (cls.__doc__ or "").strip().split("\n\n")[0]
    text = " ".join(paragraph.split()).replace("``", "")
    end = text.find(". ")
    return text if end < 0 else text[: end + 1]


def _torch_info() -> dict:
    import torch

    cuda = torch.cuda.is_available()
    mps = getattr(torch.backends, "mps", None)
    return {
        "version": torch.__version__,
        "threads": torch.get_num_threads(),
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())] if cuda else [],
        "mps_available": bool(mps is not None and mps.is_available()),
        "kernel_threads": _kernel_threads(),
    }


def _kernel_threads() -> str:
    """Whose threads the numba kernels run on (``providers.numba_threads``)."""
    from .providers import numba_threads

    runtime = numba_threads.openmp_runtime()
    if runtime is None:
        return "Python threads"
    return f"PyTorch's OpenMP threads ({runtime})"


def _extras() -> list[str]:
    """Our pip extras, from the installed distribution's metadata (empty for a source checkout)."""
    import importlib.metadata

    try:
        return sorted(importlib.metadata.metadata("snn-blockbackend").get_all("Provides-Extra") or [])
    except importlib.metadata.PackageNotFoundError:
        return []


def _kernels(profile, providers) -> dict:
    """Per compiled provider, which kernels run ``profile`` (its default options) on that provider's device."""
    import torch

    kernels = {}
    for provider in providers:
        if provider.name not in ("numba", "triton"):
            continue
        device = torch.device("cpu" if provider.name == "numba" else "cuda")
        refusal = provider.supports(profile, device, "exact")
        hand_written = getattr(provider, "hand_written", lambda profile: False)
        kernels[provider.name] = refusal or ("hand-written (float32/float64; generated otherwise)" if hand_written(profile) else "generated")
    return kernels


def collect_info() -> dict:
    """Everything ``info`` shows, as plain data."""
    from . import plugins
    from .functional import ENV_BACKEND
    from .profiles import PROFILES
    from .providers import PIP_EXTRAS, install_hint

    providers = sorted(plugins.providers().values(), key=lambda p: -p.priority)
    missing = [name for name in PIP_EXTRAS if name not in {p.name for p in providers}]
    return {
        "version": __version__,
        "providers": [{"name": p.name, "priority": p.priority, "module": type(p).__module__} for p in providers],
        "providers_not_installed": [{"name": name, "install": install_hint(name)} for name in missing],
        "extras": _extras(),
        "profiles": [
            {"name": name, "summary": _summary(cls), "kernels": _kernels(cls(), providers)} for name, cls in PROFILES.items()
        ],
        "frameworks": [
            {
                "framework": a.framework,
                "distribution": a.distribution,
                "supported": a.supported_range,
                "installed_version": a.installed_version(),
                "status": a.status(),
                "extra": a.extra,
            }
            for a in plugins.adapters().values()
        ],
        "torch": _torch_info(),
        "env": {ENV_BACKEND: os.environ.get(ENV_BACKEND)},
    }


def print_kernel(name: str) -> None:
    """The traced step of profile ``name`` (default options) and its generated numba and Triton sources."""
    import torch

    from . import kernels, make_profile
    from .kernels import emit_numba, emit_triton

    profile = make_profile(name)
    step = kernels.step_of(profile, torch.float32)
    sys.stdout.write(step.listing() + "\n\n")
    sys.stdout.write(emit_numba.source(step, profile.surrogate.kind) + "\n")
    sys.stdout.write(emit_triton.source(step, profile.surrogate.kind) + "\n")


def cmd_info(args) -> int:
    if args.kernel:
        print_kernel(args.kernel)
        return 0
    info = collect_info()
    if args.json:
        sys.stdout.write(json.dumps(info, indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.markup import escape
    from rich.table import Table

    console = Console()
    console.print(f"[bold]snn-blockbackend[/bold] {info['version']}")
    table = Table(title="providers (backend='auto' tries the highest priority first)")
    table.add_column("name")
    table.add_column("priority", justify="right")
    table.add_column("module")
    for p in info["providers"]:
        table.add_row(p["name"], str(p["priority"]), p["module"])
    for p in info["providers_not_installed"]:
        table.add_row(p["name"], "-", escape(f"not installed: {p['install']}"), style="yellow")
    console.print(table)
    table = Table(title="neuron profiles (make_profile(name, **options)) and their compiled kernels")
    table.add_column("name")
    table.add_column("summary")
    compiled = sorted({name for p in info["profiles"] for name in p["kernels"]})
    for name in compiled:
        table.add_column(name)
    for p in info["profiles"]:
        table.add_row(p["name"], p["summary"], *(escape(p["kernels"].get(name, "-")) for name in compiled))
    console.print(table)
    table = Table(title="framework adapters")
    for column in ("framework", "supported", "status"):
        table.add_column(column)
    for f in info["frameworks"]:
        style = "green" if f["status"].endswith("installed") and f["installed_version"] else "yellow"
        table.add_row(f["framework"], f["supported"], escape(f["status"]), style=style)
    console.print(table)
    if info["extras"]:
        extras = ", ".join(f"[{name}]" for name in info["extras"])
        console.print(escape(f"pip extras: {extras} (pip install 'snn-blockbackend[EXTRA]')"))
    t = info["torch"]
    devices = ", ".join(t["cuda_devices"]) if t["cuda_available"] else "no CUDA device"
    console.print(
        f"torch {t['version']} ({t['threads']} threads; CUDA {t['cuda_version'] or 'n/a'}: {devices}; "
        f"MPS {'available' if t['mps_available'] else 'not available'})"
    )
    console.print(escape(f"numba kernels run on {t['kernel_threads']}"))
    for name, value in info["env"].items():
        console.print(f"{name}={value}" if value is not None else f"{name} is not set (backend='auto')")
    return 0


# ---------------------------------------------------------------------------------------------
# bench
# ---------------------------------------------------------------------------------------------
def cmd_bench(args) -> int:
    from . import bench

    return bench.main(args)


# ---------------------------------------------------------------------------------------------
# sparseprop (provided by snn_blockbackend.sparseprop.cli; needs numba)
# ---------------------------------------------------------------------------------------------
def _add_sparseprop(subparsers) -> None:
    try:
        from .sparseprop import cli as sparseprop_cli
    except ImportError as error:
        reason = f"needs the [sparseprop] extra (numba): {SPARSEPROP_INSTALL} (import failed: {error})"
    except Exception as error:  # a broken module must not take down `info` and `bench`
        reason = f"failed to load: {type(error).__name__}: {error}"
    else:
        parser = sparseprop_cli.add_parser(subparsers)
        sparseprop_main = parser.get_default("func") or sparseprop_cli.main

        def run(args):
            try:
                return sparseprop_main(args)
            except (ValueError, TypeError) as error:  # bad arguments, reported like argparse does
                parser.exit(2, f"{parser.prog}: error: {error}\n")

        parser.set_defaults(func=run)
        return

    parser = subparsers.add_parser(
        "sparseprop", help="event-driven sparse network simulation (unavailable here)", add_help=False
    )

    def unavailable(args):
        print(f"snn-blockbackend sparseprop: error: this subcommand {reason}", file=sys.stderr)
        return 2

    parser.set_defaults(func=unavailable, ignore_extra_args=True)  # whatever options follow, say why


# ---------------------------------------------------------------------------------------------
# examples (the scripts in the repository's examples/ folder; their docstrings describe them)
# ---------------------------------------------------------------------------------------------
EXAMPLES_DIR = Path(__file__).resolve().parents[2] / "examples"  # a source checkout; wheels do not ship it


def list_examples(folder: Path = EXAMPLES_DIR) -> list[dict]:
    """Name, one-line description and command of every ``examples/*.py`` script (``_*.py`` are helpers)."""
    import ast

    found = []
    for script in sorted(folder.glob("[!_]*.py")):
        doc = ast.get_docstring(ast.parse(script.read_text())) or ""
        found.append({
            "name": script.stem,
            "description": " ".join(doc.split("\n\n")[0].split()),
            "run": f"python examples/{script.name} [--quick] [--out DIR]",
        })  # fmt: skip
    return found


def cmd_examples(args) -> int:
    if not EXAMPLES_DIR.is_dir():
        print("the examples live in the source repository's examples/ folder (not in the installed package)")
        return 1
    examples = list_examples()
    if args.json:
        sys.stdout.write(json.dumps(examples, indent=2) + "\n")
        return 0
    from rich.console import Console
    from rich.table import Table

    table = Table(title="examples (pip extra \\[examples]; --quick: a small run; a PNG and a JSON go to --out)")
    for column in ("name", "what it shows", "run"):
        table.add_column(column)
    for example in examples:
        table.add_row(example["name"], example["description"], example["run"])
    Console().print(table)
    return 0


# ---------------------------------------------------------------------------------------------
# entry point
# ---------------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    from . import bench

    parser = argparse.ArgumentParser(
        prog="snn-blockbackend", description="Exact, fast block-neuron backend for snnTorch, SpikingJelly and Norse."
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")

    info = subparsers.add_parser("info", help="installed providers, profiles, framework adapters and torch")
    info.add_argument("--kernel", metavar="PROFILE", help="print the traced step of a profile and its generated kernels")
    info.add_argument("--json", action="store_true", help="print a JSON object instead of tables")
    info.set_defaults(func=cmd_info)

    bench_parser = subparsers.add_parser(
        "bench", help="time block_neuron against the native framework neurons",
        description=(bench.__doc__ or "").strip().splitlines()[0],
    )  # fmt: skip
    bench.add_arguments(bench_parser)
    bench_parser.set_defaults(func=cmd_bench)

    _add_sparseprop(subparsers)

    examples = subparsers.add_parser("examples", help="list the example scripts (training, fitting, SparseProp)")
    examples.add_argument("--json", action="store_true", help="print a JSON list instead of a table")
    examples.set_defaults(func=cmd_examples)
    return parser


def main(argv=None) -> int:
    parser = build_parser()
    args, extra = parser.parse_known_args(argv)
    if extra and not getattr(args, "ignore_extra_args", False):
        parser.error(f"unrecognized arguments: {' '.join(extra)}")
    if getattr(args, "func", None) is None:
        parser.print_help()
        return 1
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
