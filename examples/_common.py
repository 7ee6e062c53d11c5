"""What every example shares: its command line, a progress bar, and writing its numbers and figure.

Not an example itself (the leading underscore keeps it out of ``snn-blockbackend examples``).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

DEFAULT_OUT = Path(__file__).resolve().parent / "results"


def parser(description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--quick", action="store_true", help="a small run (under 30 s on 2 CPU cores), as the tests run it")
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help=f"output folder (default {DEFAULT_OUT})")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--no-progress", action="store_true", help="no progress bars")
    return p


class Progress:
    """One rich progress bar per training run / simulation (``with Progress(...) as bar: bar.advance()``)."""

    def __init__(self, description: str, total: int | None, enabled: bool = True):
        self.description, self.total, self.enabled = description, total, enabled
        self._progress = None

    def __enter__(self):
        if self.enabled:
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as RichProgress, TextColumn
            from rich.progress import TimeElapsedColumn

            self._progress = RichProgress(
                TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                TextColumn("{task.fields[info]}"),
            )  # fmt: skip
            self._progress.start()
            self._task = self._progress.add_task(self.description, total=self.total, info="")
        return self

    def advance(self, steps: float = 1, info: str = "") -> None:
        if self._progress is not None:
            self._progress.update(self._task, advance=steps, info=info)

    def update(self, completed: float, info: str = "") -> None:
        if self._progress is not None:
            self._progress.update(self._task, completed=completed, info=info)

    def __exit__(self, *exc):
        if self._progress is not None:
            self._progress.stop()
        return False


def machine() -> dict:
    import torch

    return {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "threads": torch.get_num_threads(),
        "cpu": platform.processor() or platform.machine(),
        "date_utc": time.strftime("%Y-%m-%d %H:%M", time.gmtime()),
    }


def write_results(out: Path, name: str, numbers: dict, figure) -> dict:
    """Write ``<out>/<name>.json`` and ``<out>/<name>.png``; returns the numbers with both paths added."""
    import matplotlib

    matplotlib.use("Agg")  # headless: the examples only write files
    out.mkdir(parents=True, exist_ok=True)
    png = out / f"{name}.png"
    figure.savefig(png, dpi=110, bbox_inches="tight")
    numbers = {**numbers, "figure": str(png), "machine": machine()}
    (out / f"{name}.json").write_text(json.dumps(numbers, indent=2) + "\n")
    numbers["json"] = str(out / f"{name}.json")
    return numbers


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt
