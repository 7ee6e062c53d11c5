"""The compatibility matrix: the equivalence suite on the installed framework versions (a CI subset of
cells, in-process), and the matrix declaration / runner logic (no virtual environments are built here).

The full matrix over all framework versions is ``python -m compat_matrix`` (see compat_matrix/RESULTS.md).
"""

from __future__ import annotations

import importlib.metadata
import json
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # compat_matrix is a top-level package of the repository, not of src/
    sys.path.insert(0, str(REPO))

from compat_matrix import runner  # noqa: E402
from compat_matrix.matrix import (  # noqa: E402
    COMPILED_REFRACTORY, DTYPES, HALF_DTYPES, MODES, NEURONS, PATHS, VERSIONS, Cell, cells_for, find_versions,
    group_key, neurons_for,
)


def _installed(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


# ---------------------------------------------------------------------------------------------
# the suite on the installed versions
# ---------------------------------------------------------------------------------------------
@pytest.mark.parametrize("framework", ("snntorch", "spikingjelly", "norse"))
def test_installed_version_row_passes(framework):
    """Every cell of the CI subset for the installed framework version: pass, or a declared gap (an adapter
    class the issue does not ask for) reported as unsupported with its reason; never fail."""
    from compat_matrix import suite

    version = _installed(framework)
    if version is None:
        pytest.skip(f"{framework} is not installed; its matrix row runs in its own environment (python -m compat_matrix)")
    result = suite.run_suite(framework, subset=True)
    assert result["status"] == "ran", result["reason"]
    cells = result["cells"]
    assert cells, "the subset selected no cell"
    bad = [c for c in cells if c["status"] not in ("pass", "unsupported")]
    assert not bad, "\n".join(
        f"{c['neuron']} {c['path']} R={c['refractory_steps']} {c['dtype']} {c['mode']} {c['group']} {c['options']}: "
        f"{c['status']}: {c['reason']}"
        for c in bad[:20]
    )
    passed = [c for c in cells if c["status"] == "pass"]
    # every neuron x path x R of the declaration has at least one passing cell (no row is all-unsupported)
    covered = {(c["neuron"], c["path"], c["refractory_steps"]) for c in passed}
    declared = {(c.neuron, c.path, c.refractory_steps) for c in cells_for(framework, version, subset=True)}
    assert declared == covered, f"rows without a passing cell: {sorted(declared - covered)}"
    for c in passed:
        assert c["spike_mismatches"] == 0 and c["spikes"] > 0
    # the new columns: half precision (bit-identical membranes) and torch.compile(fullgraph=True)
    for dtype in HALF_DTYPES:
        half = [c for c in passed if c["dtype"] == dtype]
        assert half, f"no passing {dtype} cell"
        assert all(c["membrane_max_abs_diff"] == 0 for c in half)
    compiled = [c for c in passed if c["mode"] == "compiled"]
    assert compiled, "no passing compiled cell"
    with_native = {n.name for n in NEURONS if n.native is not None}
    assert all("native_fullgraph" in c for c in compiled if c["refractory_steps"] == 0 and c["neuron"] in with_native)
    for c in cells:
        if c["status"] == "unsupported":
            assert c["reason"], "an unsupported cell must say why"


def test_compare_detects_a_changed_spike_and_gradient():
    """The comparison is not vacuous: a flipped spike, a shifted membrane and a scaled gradient are counted."""
    import torch

    from compat_matrix.suite import SHAPE, Run, compare

    g = torch.Generator().manual_seed(0)
    x = torch.randn(SHAPE, generator=g, dtype=torch.float64).requires_grad_()
    spikes = (x > 0.5).double()
    expected = Run(spikes + 0 * x, x * 2, [x])
    same = compare(expected, Run(spikes + 0 * x, x * 2, [x]), 0, "float64", "norse")
    assert same["status"] == "pass" and same["spike_mismatches"] == 0 and same["grad_max_rel_error"] == 0
    flipped = spikes.clone()
    flipped[3, 0, 0] = 1 - flipped[3, 0, 0]
    changed = compare(expected, Run(flipped + 0 * x, x * 2 * (1 + 1e-6), [x]), 0, "float64", "norse")
    assert changed["status"] == "fail"
    assert changed["spike_mismatches"] == 1
    assert changed["membrane_max_abs_diff"] > 0
    assert changed["grad_max_rel_error"] == pytest.approx(1e-6, rel=1e-3)
    silent = torch.zeros(SHAPE, dtype=torch.float64)
    vacuous = compare(Run(silent + 0 * x, x, [x]), Run(silent + 0 * x, x, [x]), 0, "float64", "norse")
    assert vacuous["status"] == "fail" and "never spiked" in vacuous["reason"]


def test_a_native_class_without_a_half_kernel_is_unsupported_not_failed(monkeypatch):
    """Only PyTorch's "not implemented for 'Half'" from the native class makes a half cell unsupported; any
    other error of the native run stays a failing cell."""
    from compat_matrix import suite

    if _installed("snntorch") is None:
        pytest.skip("snnTorch is not installed")
    fw = suite.import_framework("snntorch")
    cell = next(
        c for c in cells_for("snntorch", fw.version) if c.neuron == "Leaky" and c.dtype == "float16"
        and c.refractory_steps == 0
    )
    real_case = suite.CASES["snntorch"]

    def case_raising(message):
        def build(cell, fw):
            case = real_case(cell, fw)

            def native(wrap=None):
                raise RuntimeError(message)

            case.native = native
            return case

        return build

    monkeypatch.setitem(suite.CASES, "snntorch", case_raising('"addcmul_cpu_out" not implemented for \'Half\''))
    record = suite.run_cell(cell, fw)
    assert record["status"] == "unsupported"
    assert record["reason"] == (
        "the native Leaky cannot run in float16 on CPU: \"addcmul_cpu_out\" not implemented for 'Half'"
    )
    monkeypatch.setitem(suite.CASES, "snntorch", case_raising("shape mismatch"))
    assert suite.run_cell(cell, fw)["status"] == "fail"


def test_a_missing_adapter_is_reported_not_passed(monkeypatch):
    from compat_matrix import suite

    if _installed("snntorch") is None:
        pytest.skip("snnTorch is not installed")
    monkeypatch.setitem(suite.ADAPTER_MODULES, "snntorch", "snn_blockbackend.adapters.no_such_adapter")
    monkeypatch.setattr(suite, "_ADAPTERS", {})
    cells = [c for c in cells_for("snntorch", _installed("snntorch"), subset=True) if c.neuron == "Leaky"][:8]
    result = suite.run_suite("snntorch", cells=cells)
    statuses = {c["path"]: c["status"] for c in result["cells"]}
    assert statuses == {"engine": "pass", "adapter": "adapter not available"}
    assert result["adapter"].startswith("not available: ModuleNotFoundError")
    assert all("no_such_adapter" in c["reason"] for c in result["cells"] if c["path"] == "adapter")


# ---------------------------------------------------------------------------------------------
# declaration and runner logic
# ---------------------------------------------------------------------------------------------
def test_declaration_covers_the_issue():
    keys = {(v.framework, v.version) for v in VERSIONS}
    for framework, prefix in (
        ("snntorch", "0.9.4"), ("snntorch", "1.0."), ("spikingjelly", "0.0.0.0.14"), ("spikingjelly", "2.0."),
        ("norse", "1.0."), ("norse", "1.1."),
    ):
        assert any(f == framework and v.startswith(prefix) for f, v in keys), (framework, prefix)
    for version in VERSIONS:
        cells = cells_for(version.framework, version.version)
        assert set(HALF_DTYPES) <= {c.dtype for c in cells} == set(DTYPES)
        assert {c.mode for c in cells} == set(MODES)
        assert {c.path for c in cells} == set(PATHS)
        assert {0, 1, 9} <= {c.refractory_steps for c in cells}
        assert len({c.seed for c in cells}) == len(cells), "every cell has its own input"
    leaky = next(n for n in NEURONS if n.name == "Leaky")
    assert set(leaky.group_axes["reset_mechanism"]) == {"subtract", "zero", "none"}
    lif = next(n for n in NEURONS if n.name == "LIFNode")
    assert {0.0, None} <= set(lif.group_axes["v_reset"]) and set(lif.group_axes["decay_input"]) == {True, False}


def test_half_and_compiled_columns_cover_every_neuron():
    """Half precision: every row (neuron x group x path x R) and mode in both half dtypes, and every option
    value somewhere. Compiled: every neuron class x R in COMPILED_REFRACTORY, our adapter, float32."""
    for version in VERSIONS:
        cells = cells_for(version.framework, version.version)
        for dtype in HALF_DTYPES:
            half = [c for c in cells if c.dtype == dtype]
            assert {(group_key(c), c.mode) for c in half} == {
                (group_key(c), c.mode) for c in cells if c.mode != "compiled"
            }
            for neuron in {c.neuron for c in cells}:
                options = {c.options for c in half if c.neuron == neuron}
                assert options == {c.options for c in cells if c.neuron == neuron}, (neuron, dtype)
        compiled = [c for c in cells if c.mode == "compiled"]
        assert {(c.path, c.dtype) for c in compiled} == {("adapter", "float32")}
        assert {(c.neuron, c.refractory_steps) for c in compiled} == {
            (n.name, r) for n in neurons_for(version.framework, version.version) for r in COMPILED_REFRACTORY
            if r in n.refractory
        }


def test_subset_keeps_every_row_kind():
    for version in VERSIONS:
        full = cells_for(version.framework, version.version)
        subset = cells_for(version.framework, version.version, subset=True)
        assert len(subset) < len(full)
        # every row kind at R = 0 (the native comparisons), every neuron x path x mode x R
        assert {(c.neuron, c.group, c.path, c.mode) for c in subset if c.refractory_steps == 0} == {
            (c.neuron, c.group, c.path, c.mode) for c in full if c.refractory_steps == 0
        }
        # (the compiled column only at R = 0: a compile costs seconds)
        assert {(c.neuron, c.path, c.refractory_steps, c.mode) for c in subset} == {
            (c.neuron, c.path, c.refractory_steps, c.mode) for c in full
            if c.mode != "compiled" or c.refractory_steps == 0
        }
        assert {c.dtype for c in subset} == set(DTYPES)
        assert {c.neuron for c in subset if c.mode == "compiled"} == {c.neuron for c in full}
        assert {c.mode for c in subset} == set(MODES)
        assert set(subset) <= set(full)


def test_find_versions():
    assert find_versions(None) == list(VERSIONS)
    assert [v.key for v in find_versions(["norse==1.1.0"])] == ["norse==1.1.0"]
    assert {v.framework for v in find_versions(["snntorch"])} == {"snntorch"}
    with pytest.raises(ValueError, match="matches no framework version"):
        find_versions(["snntorch==0.1"])


def _cell(path, status, **metrics):
    cell = Cell("norse", "1.1.0", "LIFCell", path, 0, "float32", "step", (), (("params", "default"),), 1).to_json()
    return {**cell, "status": status, "reason": metrics.pop("reason", ""), **metrics}


def test_render_markdown_rows_and_unsupported_reasons():
    good = dict(spikes=10, spike_mismatches=0, membrane_max_abs_diff=0.0, grad_max_rel_error=2e-7)
    results = {
        "generated_utc": "2026-01-01 00:00",
        "command": "python -m compat_matrix",
        "wall_s": 12.0,
        "environments": [
            {
                "framework": "norse", "version": "1.1.0", "status": "ran", "torch": "2.13.0+cpu", "adapter": "available",
                "cells": [
                    _cell("engine", "pass", **good),
                    _cell("engine", "pass", **{**good, "grad_max_rel_error": 3e-6}),
                    _cell("adapter", "fail", reason="4 spike mismatches", **{**good, "spike_mismatches": 4}),
                    _cell("adapter", "pass", **good),
                ],
            },
            {
                "framework": "norse", "version": "1.0.0", "status": "unsupported", "cells": [],
                "reason": "import norse.torch failed: ImportError: undefined symbol | _ZN3c10",
            },
        ],
    }
    text = runner.render_markdown(results)
    rows = [line for line in text.splitlines() if line.startswith("| LIFCell |")]
    assert len(rows) == 2
    engine_row = next(r for r in rows if "| engine |" in r)
    assert "| pass |" in engine_row and "3e-06" in engine_row
    adapter_row = next(r for r in rows if "| adapter |" in r)
    assert "**FAIL** (1/2)" in adapter_row and "4 spike mismatches" in adapter_row and "| 4 |" in adapter_row
    # the reason is kept verbatim, with the table's separator escaped
    assert "**unsupported**: import norse.torch failed: ImportError: undefined symbol \\| _ZN3c10" in text
    summary = [line for line in text.splitlines() if line.startswith("| norse | 1.0.0 |")]
    assert summary and "unsupported" in summary[0]


def test_results_json_round_trips(tmp_path):
    cells = [_cell("engine", "pass", spikes=3, spike_mismatches=0, membrane_max_abs_diff=0.0, grad_max_rel_error=1e-7)]
    results = {"command": "python -m compat_matrix", "wall_s": 1.5, "environments": [
        {"framework": "norse", "version": "1.1.0", "status": "ran", "cells": cells * 3},
        {"framework": "norse", "version": "1.0.0", "status": "unsupported", "reason": "x", "cells": []},
    ]}
    runner.write_results(results, tmp_path / "r.json", tmp_path / "r.md")
    assert json.loads((tmp_path / "r.json").read_text()) == json.loads(json.dumps(results))
    assert (tmp_path / "r.md").read_text() == runner.render_markdown(results)


def test_merge_keeps_other_versions_and_follows_the_declaration():
    old = {"environments": [
        {"framework": "norse", "version": "1.1.0", "status": "ran", "cells": [], "tag": "old"},
        {"framework": "snntorch", "version": "0.9.4", "status": "ran", "cells": [], "tag": "old"},
    ]}
    new = [{"framework": "norse", "version": "1.1.0", "status": "ran", "cells": [], "tag": "new"}]
    merged = runner.merge_results(old, new, {"command": "x"})
    assert [(e["framework"], e["tag"]) for e in merged["environments"]] == [("snntorch", "old"), ("norse", "new")]
    assert merged["command"] == "x"


def test_group_key_accepts_cells_and_json():
    cell = Cell("snntorch", "1.0.0", "Leaky", "engine", 9, "float64", "sequence", (("reset_mechanism", "zero"),), (), 3)
    assert group_key(cell) == group_key(json.loads(json.dumps(cell.to_json())))


def test_build_error_becomes_an_unsupported_record(tmp_path, monkeypatch):
    """An environment that cannot be built is recorded as unsupported with the failing command's output."""
    monkeypatch.setattr(runner, "VENVS", tmp_path)

    def fail(version, base, log):
        raise runner.BuildError("`pip install norse==1.0.0` failed (exit 1): error: command 'g++' failed")

    monkeypatch.setattr(runner, "ensure_env", fail)
    record = runner.run_version(VERSIONS[-2], tmp_path, log=lambda m: None)
    assert record["status"] == "unsupported"
    assert record["reason"].startswith("environment build failed: `pip install norse==1.0.0` failed")
    assert record["cells"] == []


def test_suite_cli_writes_json(tmp_path):
    """``python -m compat_matrix.suite`` (what the runner calls inside each environment) writes its JSON."""
    framework = next((f for f in ("norse", "snntorch", "spikingjelly") if _installed(f)), None)
    if framework is None:
        pytest.skip("no framework installed")
    out = tmp_path / "out.json"
    code = (
        "import sys; from compat_matrix import suite, matrix; "
        "matrix.cells_for = lambda f, v, subset=False, _c=matrix.cells_for: _c(f, v, subset=True)[:2]; "
        f"sys.exit(suite.main(['--framework', '{framework}', '--json', r'{out}']))"
    )
    completed = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert completed.returncode == 0, completed.stderr[-2000:]
    data = json.loads(out.read_text())
    assert data["framework"] == framework and data["status"] == "ran" and len(data["cells"]) == 2


NORSE_1_0_PYTHON = REPO / "compat_matrix" / ".venvs" / "norse-1.0.0" / "bin" / "python"
BROKEN_NORSE_OP = (
    "raise ImportError('/venv/lib/python3.11/site-packages/norse_op.so: undefined symbol: "
    "_ZN3c1017RegisterOperatorsD1Ev')\n"
)


@pytest.mark.skipif(
    not NORSE_1_0_PYTHON.exists(),
    reason="needs the Norse 1.0.0 environment of the matrix (built by `python -m compat_matrix --only norse==1.0.0`)",
)
def test_norse_1_0_broken_norse_op_workaround(tmp_path):
    """frameworks.md 0.7: a norse_op built against another torch fails to import with an undefined symbol.
    With such a norse_op first on the path, the suite applies the documented workaround
    (sys.modules['norse_op'] = None), records it, and the cells still pass."""
    (tmp_path / "norse_op.py").write_text(BROKEN_NORSE_OP)
    code = (
        "import json, sys; from compat_matrix import suite, matrix; "
        "cells = [c for c in matrix.cells_for('norse', '1.0.0', subset=True) if c.neuron == 'LIFCell'][:6]; "
        "print(json.dumps(suite.run_suite('norse', cells=cells)))"
    )
    env = {"PYTHONPATH": str(tmp_path), "PATH": "/usr/bin:/bin"}
    completed = subprocess.run(
        [str(NORSE_1_0_PYTHON), "-c", code], cwd=REPO, capture_output=True, text=True, timeout=300, env=env
    )
    assert completed.returncode == 0, completed.stderr[-2000:]
    result = json.loads(completed.stdout.strip().splitlines()[-1])
    assert result["workaround"].startswith("norse_op disabled (sys.modules['norse_op'] = None")
    assert "undefined symbol" in result["workaround"]
    assert [c["status"] for c in result["cells"]] == ["pass"] * 6, [c["reason"] for c in result["cells"]]


def test_run_matrix_keeps_the_declared_order_with_jobs(tmp_path, monkeypatch):
    monkeypatch.setattr(runner, "ensure_base", lambda log: tmp_path)
    seen = []

    def fake_run_version(version, base, subset, log):
        seen.append(version.key)
        return {"framework": version.framework, "version": version.version, "status": "ran", "cells": []}

    monkeypatch.setattr(runner, "run_version", fake_run_version)
    records = runner.run_matrix(list(VERSIONS), jobs=2, log=lambda m: None)
    assert [(r["framework"], r["version"]) for r in records] == [(v.framework, v.version) for v in VERSIONS]
    assert sorted(seen) == sorted(v.key for v in VERSIONS)


def test_environment_stamp_decides_reuse(tmp_path):
    venv = tmp_path / "env"
    (venv / "bin").mkdir(parents=True)
    spec = {"framework": "norse", "version": "1.1.0"}
    assert not runner._stamp_matches(venv, spec)  # no interpreter, no stamp
    (venv / "bin" / "python").write_text("")
    runner._write_stamp(venv, spec)
    assert runner._stamp_matches(venv, spec)
    assert not runner._stamp_matches(venv, {**spec, "version": "1.0.0"})  # a changed declaration rebuilds


def test_framework_import_failure_is_an_unsupported_environment(monkeypatch):
    from compat_matrix import suite

    def broken(name):
        raise suite.Unsupported("import norse.torch failed: ImportError: undefined symbol: _ZN3c10")

    monkeypatch.setattr(suite, "import_framework", broken)
    result = suite.run_suite("norse")
    assert result["status"] == "unsupported" and result["cells"] == []
    assert result["reason"] == "import norse.torch failed: ImportError: undefined symbol: _ZN3c10"
    text = runner.render_markdown({"environments": [{**result, "framework": "norse", "version": "1.0.0"}]})
    assert "**unsupported**: import norse.torch failed: ImportError: undefined symbol: _ZN3c10" in text
