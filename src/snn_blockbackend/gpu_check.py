"""``make gpu-check``: what a session that is lent a GPU runs first, as one script with a time budget.

1. The machine: torch, triton, the GPU.
2. The exactness properties on the GPU (``tests/test_engine_exactness.py::test_provider_on_device_equals_reference``
   and ``test_half_precision_on_device_equals_reference``: every profile on every provider that runs there, in
   float32/float64 and in half precision with half or float32 parameters, against the sequential reference on the
   same device).
3. ``snn-blockbackend bench --device cuda`` (native neurons and ours on the GPU) at [T=1000, B=32, N=512] and
   at the Blocks paper's shape [T=2048, B=64, N=128].

Results go to ``bench/cuda/`` (``gpu_check.json``, the logs, one bench folder per shape). The GPU machine has
its own CUDA PyTorch and no network, so this runs with its ``python3`` and this checkout's source; the
frameworks' wheels can be carried in ``.gpu-wheels/`` (``make gpu-wheels`` downloads them here) and are
installed into ``.gpu-site/`` without dependencies. ``--dry`` runs the same steps on CPU at tiny sizes, which
the tests do, so the script cannot rot between GPU sessions.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import re
import subprocess
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
WHEELS, SITE = REPO / ".gpu-wheels", REPO / ".gpu-site"
GPU_SHAPES = ((1000, 32, 512), (2048, 64, 128))
DRY_SHAPES = ((12, 2, 8),)
# (report key, property, share of the time budget): two runs, so that a half-precision run that times out
# cannot take the float32/float64 result with it
PROPERTIES = (
    ("exactness", "tests/test_engine_exactness.py::test_provider_on_device_equals_reference", 0.25),
    ("exactness_half", "tests/test_engine_exactness.py::test_half_precision_on_device_equals_reference", 0.15),
)


def _machine() -> dict:
    import torch

    info = {"python": platform.python_version(), "torch": torch.__version__, "cuda": torch.version.cuda,
            "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}  # fmt: skip
    try:
        import triton

        info["triton"] = triton.__version__
    except ImportError:
        info["triton"] = None
    return info


def _install_carried_wheels(log) -> str | None:
    """Install the carried framework wheels/sdists into .gpu-site (no dependencies, no network)."""
    if not WHEELS.is_dir():
        return None
    packages = sorted(str(path) for path in WHEELS.iterdir() if path.suffix in (".whl", ".gz"))
    command = [sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--no-index", "--no-build-isolation",
               "--target", str(SITE), *packages]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True)
    log.write_text(done.stdout + done.stderr)
    return f"installed {len(packages)} carried packages" if done.returncode == 0 else f"pip failed (see {log.name})"


def _summary_line(output: str) -> str:
    found = re.findall(r"^=*\s*(\d+ (?:passed|failed|skipped|error).*?)\s*=*$", output, flags=re.MULTILINE)
    return found[-1] if found else "no pytest summary"


def _run(command, env, log: Path, timeout: float) -> dict:
    start = time.perf_counter()
    try:
        done = subprocess.run(command, cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout)
        output, returncode = done.stdout + done.stderr, done.returncode
    except subprocess.TimeoutExpired as expired:
        output = (expired.stdout or b"").decode() if isinstance(expired.stdout, bytes) else (expired.stdout or "")
        returncode = "timeout"
    log.write_text(output)
    return {"returncode": returncode, "seconds": round(time.perf_counter() - start, 1), "log": log.name}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m snn_blockbackend.gpu_check", description=__doc__.split("\n\n")[0])
    parser.add_argument("--dry", action="store_true", help="the same steps on CPU at tiny sizes (for the tests)")
    parser.add_argument("--out", default=None, help="results folder (default bench/cuda, or bench/gpu-check-dry)")
    parser.add_argument("--examples", type=int, default=None, help="hypothesis examples per property (default 50)")
    parser.add_argument("--select", default=None, metavar="EXPR",
                        help="only the property cases pytest's -k EXPR selects (the tests' dry run: one profile)")
    parser.add_argument("--workers", type=int, default=None,
                        help="pytest-xdist processes for the properties (default 8 on a GPU when xdist is there, "
                             "else 0: the reference's many small launches leave the GPU mostly idle)")
    parser.add_argument("--budget", type=float, default=480.0, help="seconds for the whole check (default 480)")
    args = parser.parse_args(argv)

    device = "cpu" if args.dry else "cuda"
    out = Path(args.out) if args.out else REPO / ("bench/gpu-check-dry" if args.dry else "bench/cuda")
    out.mkdir(parents=True, exist_ok=True)
    deadline = time.perf_counter() + args.budget
    report = {"device": device, "dry": args.dry, "machine": _machine()}
    report["carried_wheels"] = _install_carried_wheels(out / "pip.log")
    if not args.dry and report["machine"]["gpu"] is None:
        print("gpu-check: no CUDA device here (use --dry to exercise the steps on CPU)", file=sys.stderr)
        return 2

    paths = [str(REPO / "src"), *([str(SITE)] if SITE.is_dir() else []), os.environ.get("PYTHONPATH", "")]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p), "SNN_BLOCKBACKEND_CHECK_DEVICE": device,
           "SNN_BLOCKBACKEND_CHECK_EXAMPLES": str(args.examples or (2 if args.dry else 50))}  # fmt: skip
    workers = args.workers if args.workers is not None else (0 if args.dry else 8)
    if workers and importlib.util.find_spec("xdist") is None:
        workers = 0
    report["property_workers"] = workers
    for key, test, share in PROPERTIES:
        # -v: a line per case as it ends, so a run stopped at its time share still says what passed
        pytest = [sys.executable, "-m", "pytest", "-v", "-p", "no:cacheprovider", "--import-mode=importlib",
                  "-o", "addopts=", *(["-n", str(workers)] if workers else []), test,
                  *(["-k", args.select] if args.select else [])]  # fmt: skip
        log = out / f"{key}.log"
        report[key] = _run(pytest, env, log, max(deadline - time.perf_counter(), 1) * share)
        report[key]["summary"] = _summary_line(log.read_text())
        print(f"gpu-check {key} on {device}: {report[key]['summary']} ({report[key]['seconds']} s)")

    report["bench"] = []
    shapes = DRY_SHAPES if args.dry else GPU_SHAPES
    for k, (T, B, N) in enumerate(shapes):
        folder = out / f"T{T}_B{B}_N{N}"
        bench = [sys.executable, "-m", "snn_blockbackend.cli", "bench", "--device", device, "--no-psu",
                 "--T", str(T), "--B", str(B), "--N", str(N), "--out", str(folder),
                 *(["--quick", "--providers", "torch"] if args.dry else [])]  # fmt: skip
        budget = max(deadline - time.perf_counter(), 1) / (len(shapes) - k)
        result = _run(bench, env, out / f"bench_T{T}_B{B}_N{N}.log", budget)
        print(f"gpu-check bench [T={T}, B={B}, N={N}] on {device}: exit {result['returncode']} ({result['seconds']} s)")
        report["bench"].append({"shape": [T, B, N], "folder": folder.name, **result})

    # the generated Triton kernels where hand-written ones exist too (the paper's LIF/ALIF, snnTorch Leaky): the
    # measurement that decides which of the two "auto" should run on a GPU
    T, B, N = shapes[0]
    folder = out / f"T{T}_B{B}_N{N}_generated"
    bench = [sys.executable, "-m", "snn_blockbackend.cli", "bench", "--device", device, "--no-psu", "--no-training",
             "--T", str(T), "--B", str(B), "--N", str(N), "--out", str(folder),
             *(["--quick", "--providers", "torch"] if args.dry else ["--providers", "triton"])]  # fmt: skip
    budget = max(deadline - time.perf_counter(), 1)
    result = _run(bench, {**env, "SNN_BLOCKBACKEND_GENERATED_KERNELS": "1"}, out / "bench_generated.log", budget)
    print(f"gpu-check bench of the generated kernels on {device}: exit {result['returncode']} ({result['seconds']} s)")
    report["bench"].append({"shape": [T, B, N], "folder": folder.name, "generated_kernels": True, **result})

    (out / "gpu_check.json").write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {out / 'gpu_check.json'}")
    ok = all(report[key]["returncode"] == 0 for key, _, _ in PROPERTIES) and all(b["returncode"] == 0 for b in report["bench"])
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
