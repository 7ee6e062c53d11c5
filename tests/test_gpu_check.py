"""`make gpu-check` cannot rot between GPU sessions: its dry run takes every step on CPU at tiny sizes."""

import json
import subprocess
import sys

import pytest
import torch

from snn_blockbackend import gpu_check


def test_gpu_check_dry_run(tmp_path):
    done = subprocess.run(
        [sys.executable, "-m", "snn_blockbackend.gpu_check", "--dry", "--examples", "1", "--select", "paper_lif",
         "--out", str(tmp_path)],
        capture_output=True, text=True, timeout=600, cwd=gpu_check.REPO,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    report = json.loads((tmp_path / "gpu_check.json").read_text())
    assert report["device"] == "cpu" and report["dry"]
    # the property selection (one profile) ran real examples on the check device (torch and triton providers,
    # float32/float64 and half precision), none failed
    for key, cases in (("exactness", 3), ("exactness_half", 8)):  # paper_lif: torch, triton (+generated); 2x2x2
        assert report[key]["returncode"] == 0, key
        assert report[key]["summary"].startswith(f"{cases} passed") and "failed" not in report[key]["summary"], key
    # the natives-vs-ours bench per shape, then the generated kernels alone (hand-written ones disabled)
    bench, generated = report["bench"]
    assert "generated_kernels" not in bench and generated["generated_kernels"]
    for run in (bench, generated):
        assert run["returncode"] == 0
        rows = json.loads((tmp_path / run["folder"] / "bench.json").read_text())["rows"]
        timed = [row for row in rows if row["provider"] == "torch" and row["fwd_ms"] is not None]
        assert timed and all(row["spike_mismatch"] == 0 for row in timed)


@pytest.mark.skipif(torch.cuda.is_available(), reason="on a GPU machine the real check runs (make gpu-check)")
def test_gpu_check_refuses_without_a_gpu(tmp_path):
    assert gpu_check.main(["--out", str(tmp_path)]) == 2
