"""Build one virtual environment per framework version, run the equivalence suite in each, and write
``compat_matrix/results.json`` and ``compat_matrix/RESULTS.md``.

Environments (under ``compat_matrix/.venvs/``, reused between runs while their declaration is unchanged):

* ``_base``: torch 2.13.0 (the local CPU wheel; every pip call passes ``-c constraints.txt`` so no CUDA torch
  can be pulled) and our runtime/test dependencies, installed once.
* ``<framework>-<version>``: a plain venv whose ``_compat_base.pth`` appends ``_base``'s site-packages (one torch
  for all environments), the framework with ``--no-deps`` plus the runtime dependencies its neuron code
  imports, and this repository with ``--no-deps`` in editable mode (the suite always tests the current code).

Each environment runs ``python -m compat_matrix.suite`` in a subprocess. A version whose environment cannot be
built, or whose framework cannot be imported on our torch, is recorded as "unsupported" with the exact reason.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

from .matrix import BASE_REQUIREMENTS, NEURONS, TORCH_REQUIREMENT, VERSIONS, FrameworkVersion, group_key

PACKAGE_DIR = Path(__file__).resolve().parent
REPO = PACKAGE_DIR.parent
VENVS = PACKAGE_DIR / ".venvs"
CONSTRAINTS = REPO / "constraints.txt"
RESULTS_JSON = PACKAGE_DIR / "results.json"
RESULTS_MD = PACKAGE_DIR / "RESULTS.md"
SUITE_TIMEOUT_S = 1500


class BuildError(Exception):
    """An environment could not be built; the message says which command failed and how."""


def _python(venv: Path) -> Path:
    return venv / "bin" / "python"


def _run(command: list[str], log: Path, cwd: Path | None = None) -> None:
    with open(log, "a") as handle:
        handle.write(f"\n$ {' '.join(map(str, command))}\n")
        handle.flush()
        completed = subprocess.run(command, stdout=handle, stderr=subprocess.STDOUT, cwd=cwd)
    if completed.returncode != 0:
        tail = log.read_text(errors="replace").strip().splitlines()[-12:]
        raise BuildError(
            f"`{' '.join(map(str, command[2:]))}` failed (exit {completed.returncode}); log {log}:\n" + "\n".join(tail)
        )


def _pip(venv: Path, *args: str) -> list[str]:
    return [str(_python(venv)), "-m", "pip", "install", "--progress-bar", "off", "-c", str(CONSTRAINTS), *args]


def _stamp_matches(venv: Path, spec: dict) -> bool:
    stamp = venv / ".compat_stamp.json"
    return _python(venv).exists() and stamp.exists() and json.loads(stamp.read_text()) == spec


def _write_stamp(venv: Path, spec: dict) -> None:
    (venv / ".compat_stamp.json").write_text(json.dumps(spec, indent=1))


def _site_packages(venv: Path) -> str:
    out = subprocess.run(
        [str(_python(venv)), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True, capture_output=True, text=True,
    )
    return out.stdout.strip()


def ensure_base(log=print) -> Path:
    """The shared environment with the one CPU torch (built once)."""
    venv = VENVS / "_base"
    spec = {"torch": TORCH_REQUIREMENT, "requirements": list(BASE_REQUIREMENTS), "python": platform.python_version()}
    if _stamp_matches(venv, spec):
        return venv
    log(f"building {venv} ...")
    VENVS.mkdir(parents=True, exist_ok=True)
    build_log = VENVS / "_base.log"
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], build_log)
    _run(_pip(venv, TORCH_REQUIREMENT, *BASE_REQUIREMENTS), build_log)
    _write_stamp(venv, spec)
    return venv


def ensure_env(version: FrameworkVersion, base: Path, log=print) -> Path:
    """The environment of one framework version (rebuilt when its declaration changed)."""
    venv = VENVS / version.venv_name
    spec = {
        "framework": version.framework, "version": version.version, "requirements": list(version.requirements),
        "deps": list(version.deps), "no_build_isolation": version.no_build_isolation,
        "base": str(base), "python": platform.python_version(), "repo": str(REPO),  # editable install of REPO
    }
    if _stamp_matches(venv, spec):
        return venv
    log(f"building {venv} ...")
    build_log = VENVS / f"{version.venv_name}.log"
    build_log.write_text("")
    _run([sys.executable, "-m", "venv", "--clear", str(venv)], build_log)
    # one torch for all: the base site-packages come after this environment's own
    Path(_site_packages(venv), "_compat_base.pth").write_text(_site_packages(base) + "\n")
    if version.deps:
        _run(_pip(venv, *version.deps), build_log)
    isolation = ["--no-build-isolation"] if version.no_build_isolation else []
    _run(_pip(venv, "--no-deps", *isolation, *version.requirements), build_log)
    _run(_pip(venv, "--no-deps", "--no-build-isolation", "-e", str(REPO)), build_log)
    _write_stamp(venv, spec)
    return venv


def run_version(version: FrameworkVersion, base: Path | Exception, subset: bool = False, log=print) -> dict:
    """Build the environment and run the suite in it; never raises (failures become the record)."""
    started = time.perf_counter()
    record = {"framework": version.framework, "version": version.version, "note": version.note}
    try:
        if isinstance(base, Exception):
            raise base
        venv = ensure_env(version, base, log)
    except BuildError as error:
        record.update(status="unsupported", reason=f"environment build failed: {error}", cells=[])
        record["seconds"] = round(time.perf_counter() - started, 2)
        return record
    with tempfile.TemporaryDirectory(prefix="compat_") as tmp:
        out = Path(tmp) / "suite.json"
        command = [str(_python(venv)), "-m", "compat_matrix.suite", "--framework", version.framework, "--json", str(out)]
        if subset:
            command.append("--subset")
        log(f"running the suite for {version.key} ...")
        env = {**os.environ, "PYTHONWARNINGS": "ignore"}
        try:
            completed = subprocess.run(
                command, cwd=REPO, capture_output=True, text=True, timeout=SUITE_TIMEOUT_S, env=env
            )
        except subprocess.TimeoutExpired:
            record.update(status="error", reason=f"the suite did not finish within {SUITE_TIMEOUT_S} s", cells=[])
            record["seconds"] = round(time.perf_counter() - started, 2)
            return record
        if completed.returncode != 0 or not out.exists():
            tail = "\n".join((completed.stderr or completed.stdout).strip().splitlines()[-15:])
            record.update(status="error", reason=f"the suite exited with {completed.returncode}:\n{tail}", cells=[])
        else:
            suite = json.loads(out.read_text())
            installed = suite.pop("version", None)
            if installed is not None and installed != version.version:
                suite["installed_version"] = installed
            record.update(suite)
    record["seconds"] = round(time.perf_counter() - started, 2)
    return record


def run_matrix(versions: list[FrameworkVersion], jobs: int = 1, subset: bool = False, log=print) -> list[dict]:
    try:
        base: Path | Exception = ensure_base(log)
    except BuildError as error:
        base = BuildError(f"the shared torch environment could not be built: {error}")
    with concurrent.futures.ThreadPoolExecutor(max_workers=max(1, jobs)) as pool:
        return list(pool.map(lambda v: run_version(v, base, subset, log), versions))


# ---------------------------------------------------------------------------------------------
# results: merge, JSON, Markdown
# ---------------------------------------------------------------------------------------------
def merge_results(previous: dict | None, environments: list[dict], meta: dict) -> dict:
    """New environments replace the previous records of the same framework version; the order follows the
    matrix declaration."""
    by_key = {}
    if previous:
        by_key.update({(e["framework"], e["version"]): e for e in previous.get("environments", [])})
    by_key.update({(e["framework"], e["version"]): e for e in environments})
    order = {(v.framework, v.version): i for i, v in enumerate(VERSIONS)}
    merged = sorted(by_key.values(), key=lambda e: order.get((e["framework"], e["version"]), len(order)))
    return {**meta, "environments": merged}


def _fmt(value, digits=3) -> str:
    if value is None:
        return ""
    if isinstance(value, float):
        return "0" if value == 0 else f"{value:.{digits}g}"
    return str(value)


def _cell_text(value) -> str:
    return str(value).replace("|", "\\|").replace("\n", " ")


def _config_text(group) -> str:
    return ", ".join(f"{axis}={value}" for axis, value in group) or "-"


def summarize_group(cells: list[dict]) -> dict:
    """One RESULTS.md row from its cells."""
    counts = Counter(c["status"] for c in cells)
    ran = [c for c in cells if c["status"] in ("pass", "fail") and "spike_mismatches" in c]
    if counts.get("fail"):
        result = f"**FAIL** ({counts['fail']}/{len(cells)})"
    elif counts.get("pass") == len(cells):
        result = "pass"
    elif len(counts) == 1:
        result = next(iter(counts))
    else:
        result = ", ".join(f"{status} {n}" for status, n in sorted(counts.items()))
    reasons = []
    for c in cells:
        if c["status"] != "pass" and c.get("reason") and c["reason"] not in reasons:
            reasons.append(c["reason"])
    return {
        "cells": len(cells),
        "result": result,
        "spike_mismatches": max((c["spike_mismatches"] for c in ran), default=None),
        "membrane": max((c["membrane_max_abs_diff"] for c in ran), default=None),
        "grad": max((c["grad_max_rel_error"] for c in ran), default=None),
        "reasons": reasons,
    }


def render_markdown(results: dict) -> str:
    lines = [
        "# Compatibility matrix",
        "",
        "Generated by `python -m compat_matrix` from `results.json`; do not edit by hand.",
        "",
        f"- generated: {results.get('generated_utc', '?')} (UTC), command: `{results.get('command', '?')}`",
        f"- wall time of that run: {_fmt(results.get('wall_s'))} s on {results.get('machine', '?')}",
        f"- torch {results.get('torch', '?')}, Python {results.get('python', '?')}",
        "",
        "Each row is one framework version x neuron class x our path x configuration group x refractory period R;",
        "its cells vary the dtype (float32, float64; float16 and bfloat16 with the options rotating, see",
        "`matrix.is_selected`), the mode (`step`: one call per time step, state threaded; `sequence`: one call",
        "per time-first sequence; `compiled`: our adapter class, sequence mode, under",
        "`torch.compile(fullgraph=True, backend=\"aot_eager\")`, float32, first group, R in {0, 9}) and the",
        "options listed under each framework. Expected",
        "results: the framework's own class at R = 0; the engine's sequential reference (`backend=\"reference\"`)",
        "at R > 0 and for neurons the framework lacks. Paths: `engine` = `functional.block_neuron` with the",
        "matching profile; `adapter` = our class in `snn_blockbackend.adapters.<framework>`.",
        "Columns: spike mismatches (count, must be 0), max |membrane diff| (<= 1e-6, issue 3's acceptance),",
        "max gradient error `|ours - expected| / max(|expected|, 0.2 G)` over the input and learnable parameters",
        "(G = the largest expected gradient; <= 1e-5 float32, 1e-7 float64; snnTorch 1e-5 as its spikes are float32;",
        "half precision: spikes and membranes bit-identical, gradients <= u T with T = 30 steps, u = 2^-11 float16,",
        "2^-8 bfloat16, i.e. 1.46e-2 and 0.117).",
        "",
        "## Summary",
        "",
        "| framework | version | environment | adapter | cells | pass | fail | unsupported | adapter not available |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for env in results.get("environments", []):
        counts = Counter(c["status"] for c in env.get("cells", []))
        status = env.get("status", "?")
        if status == "ran" and env.get("workaround"):
            status = "ran (with workaround)"
        adapter = env.get("adapter", "")
        adapter = "available" if adapter == "available" else ("not available" if adapter else "")
        lines.append(
            f"| {env['framework']} | {env['version']} | {status} | {adapter} | {len(env.get('cells', []))} | "
            f"{counts.get('pass', 0)} | {counts.get('fail', 0)} | {counts.get('unsupported', 0)} | "
            f"{counts.get('adapter not available', 0)} |"
        )
    for env in results.get("environments", []):
        lines += ["", f"## {env['framework']} {env['version']}", ""]
        if env.get("note"):
            lines.append(f"- note: {_cell_text(env['note'])}")
        if env.get("status") != "ran":
            lines.append(f"- **{env.get('status')}**: {_cell_text(env.get('reason', ''))}")
            continue
        lines.append(f"- torch {env.get('torch')}, suite time {_fmt(env.get('seconds'))} s")
        if env.get("workaround"):
            lines.append(f"- workaround applied: {_cell_text(env['workaround'])}")
        if env.get("adapter") and env["adapter"] != "available":
            lines.append(f"- adapter {_cell_text(env['adapter'])}")
        columns = []
        for label, pick in (
            ("float16", lambda c: c["dtype"] == "float16"), ("bfloat16", lambda c: c["dtype"] == "bfloat16"),
            ("compiled", lambda c: c["mode"] == "compiled"),
        ):
            chosen = [c for c in env.get("cells", []) if pick(c)]
            counts = Counter(c["status"] for c in chosen)
            columns.append(f"{label} {counts.get('pass', 0)}/{len(chosen)} pass" + (
                f" ({', '.join(f'{s} {n}' for s, n in sorted(counts.items()) if s != 'pass')})" if len(counts) > 1 else ""
            ))
        lines.append(f"- new columns: {'; '.join(columns)}")
        native = {}
        for c in env.get("cells", []):
            if "native_fullgraph" in c:
                native.setdefault(c["neuron"], c["native_fullgraph"])
        if native:
            lines.append(
                "- the framework's own class under `torch.compile(fullgraph=True, backend=\"eager\")`: "
                + "; ".join(f"{n}: {_cell_text(v)}" for n, v in native.items())
            )
        for neuron in NEURONS:
            if neuron.framework == env["framework"] and neuron.axes:
                varied = ", ".join(f"{a} in {list(v)}" for a, v in neuron.axes.items())
                lines.append(f"- {neuron.name}: rows also vary {varied}")
        lines += [
            "",
            "| neuron | path | configuration | R | cells | result | spike mismatches | membrane diff | grad error | notes |",
            "|---|---|---|---|---|---|---|---|---|---|",
        ]
        groups: dict[tuple, list[dict]] = {}
        for c in env.get("cells", []):
            groups.setdefault(group_key(c), []).append(c)
        for key, cells in groups.items():
            _, _, neuron, path, group, r = key
            row = summarize_group(cells)
            notes = "; ".join(_cell_text(reason)[:240] for reason in row["reasons"][:2])
            if len(row["reasons"]) > 2:
                notes += f" (+{len(row['reasons']) - 2} more)"
            lines.append(
                f"| {neuron} | {path} | {_cell_text(_config_text(group))} | {r} | {row['cells']} | {row['result']} | "
                f"{_fmt(row['spike_mismatches'])} | {_fmt(row['membrane'])} | {_fmt(row['grad'])} | {notes} |"
            )
    return "\n".join(lines) + "\n"


def results_json_text(results: dict) -> str:
    """results.json with one cell per line (small, and diffs between runs stay readable)."""
    lines = ["{"]
    lines += [f" {json.dumps(k)}: {json.dumps(v)}," for k, v in results.items() if k != "environments"]
    lines.append(' "environments": [')
    environments = results.get("environments", [])
    for i, env in enumerate(environments):
        head = json.dumps({k: v for k, v in env.items() if k != "cells"})
        cells = env.get("cells", [])
        lines.append(f"  {head[:-1]}, \"cells\": [")
        lines += [f"   {json.dumps(c, separators=(',', ':'))}{',' if j < len(cells) - 1 else ''}" for j, c in enumerate(cells)]
        lines.append("  ]}" + ("," if i < len(environments) - 1 else ""))
    lines += [" ]", "}"]
    return "\n".join(lines) + "\n"


def write_results(results: dict, json_path: Path = RESULTS_JSON, md_path: Path = RESULTS_MD) -> None:
    json_path.write_text(results_json_text(results))
    md_path.write_text(render_markdown(results))


def meta(command: str, wall_s: float) -> dict:
    import importlib.metadata

    try:
        torch_version = importlib.metadata.version("torch")
    except importlib.metadata.PackageNotFoundError:
        torch_version = TORCH_REQUIREMENT.split("==")[1]
    return {
        "generated_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M"),
        "command": command,
        "wall_s": round(wall_s, 1),
        "machine": f"{os.cpu_count()} CPU cores, {platform.machine()}",
        "torch": torch_version,
        "python": platform.python_version(),
    }
