"""Every example in examples/ runs in --quick mode and its numbers back its claims."""

from __future__ import annotations

import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

from snn_blockbackend import cli

EXAMPLES = Path(__file__).resolve().parents[1] / "examples"


def load(name: str):
    """Import examples/<name>.py as a module (the examples import their helper ``_common`` by name)."""
    pytest.importorskip("matplotlib", reason="the examples write figures (matplotlib, [examples] extra)")
    sys.path.insert(0, str(EXAMPLES))
    try:
        spec = importlib.util.spec_from_file_location(f"example_{name}", EXAMPLES / f"{name}.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(EXAMPLES))
    return module


def run_quick(name: str, out: Path) -> dict:
    results = load(name).main(["--quick", "--out", str(out), "--no-progress"])
    assert (out / f"{name}.png").stat().st_size > 10_000
    assert json.loads((out / f"{name}.json").read_text())["figure"] == str(out / f"{name}.png")
    return results


def test_cli_lists_every_example(capsys):
    listed = cli.list_examples()
    scripts = sorted(p.stem for p in EXAMPLES.glob("*.py") if not p.name.startswith("_"))
    assert [e["name"] for e in listed] == scripts == ["classify_digits", "fit_alif_neurons", "sparseprop_network"]
    assert all(e["description"] and e["run"].startswith(f"python examples/{e['name']}.py") for e in listed)
    assert cli.main(["examples", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == listed


def test_classify_digits_quick(tmp_path):
    pytest.importorskip("sklearn", reason="the digits data set comes with scikit-learn ([examples] extra)")
    results = run_quick("classify_digits", tmp_path)
    ran = {name: r for name, r in results["frameworks"].items() if "skipped" not in r}
    assert ran, f"no framework installed: {results['frameworks']}"
    for name, r in ran.items():
        # same seed and initial weights: at R = 0 the forward spikes are identical, so is the first loss
        assert r["same_initial_weights"], name
        assert r["first_batch_output_spikes"] > 0, name  # the comparison is not vacuous
        assert r["first_batch_spike_mismatch"] == 0, name
        assert r["native"]["losses"][0] == r["ours"]["losses"][0], name
        for run in (r["native"], r["ours"]):
            losses = run["losses"]
            assert sum(losses[-4:]) / 4 < losses[0], (name, losses)  # it learns
        assert r["ours"]["test_accuracy"] > 0.2, name  # chance is 0.1
        assert r["speedup_per_epoch"] > 0 and math.isfinite(r["speedup_per_epoch"])
    if "snntorch" in ran:
        sweep = results["snntorch_sweep"]
        assert [(s["neuron"], s["R"]) for s in sweep] == [("BlockLeaky", r) for r in (0, 1, 2, 4)] + [("BlockALIF", 0)]
        assert all(s["test_accuracy"] > 0.15 for s in sweep), sweep


@pytest.mark.serial  # asserts a same-run speed ratio: alone on the machine
def test_fit_alif_neurons_quick(tmp_path):
    results = run_quick("fit_alif_neurons", tmp_path)
    assert results["loss_last"] < results["loss_first"]
    assert results["gamma_fitted"] > 0.5
    assert results["gamma_fitted"] > results["gamma_initial"] + 0.1
    assert results["refractory_steps"] == 20 and results["dt_ms"] == 0.1
    # the per-step loop does the same work much more slowly (a same-run ratio; generous for a loaded machine)
    assert results["speedup_per_iteration"] > 2


def test_sparseprop_network_quick(tmp_path):
    pytest.importorskip("scipy", reason="the E/I network is built as a scipy matrix ([sparseprop] extra)")
    results = run_quick("sparseprop_network", tmp_path)
    net, check, train = results["network"], results["exactness"], results["training"]
    assert net["spikes"] > 10_000 and 1 < net["rate_hz"] < 100 and net["us_per_spike"] > 0
    assert check["inhibitory"]["identical_order"] and check["inhibitory"]["max_abs_dt_s"] < 1e-9
    assert check["excitatory_inhibitory"]["first_difference_is_a_tie"]
    assert check["passed"]
    assert train["loss_after"] < 0.1 * train["loss_before"]
    for key in ("weight", "drive"):
        assert abs(train["fitted"][key] - train["teacher"][key]) < abs(train["initial"][key] - train["teacher"][key])
