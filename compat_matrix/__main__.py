"""``python -m compat_matrix [--only framework[==version] ...] [--jobs N] [--subset]``: build the environments,
run the equivalence suite in each and write compat_matrix/RESULTS.md and compat_matrix/results.json (records
of versions not selected by ``--only`` are kept from the previous results.json)."""

from __future__ import annotations

import argparse
import json
import shlex
import sys
import time

from . import runner
from .matrix import find_versions


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    parser = argparse.ArgumentParser(prog="python -m compat_matrix", description=__doc__)
    parser.add_argument(
        "--only", action="append", metavar="FRAMEWORK[==VERSION]", help="run only these (repeatable)"
    )
    parser.add_argument("--jobs", type=int, default=1, help="environments run at the same time (default 1)")
    parser.add_argument("--subset", action="store_true", help="the small CI selection of cells")
    args = parser.parse_args(argv)
    try:
        versions = find_versions(args.only)
    except ValueError as error:
        parser.error(str(error))
    started = time.perf_counter()
    environments = runner.run_matrix(versions, jobs=args.jobs, subset=args.subset, log=lambda m: print(m, flush=True))
    wall = time.perf_counter() - started
    previous = json.loads(runner.RESULTS_JSON.read_text()) if runner.RESULTS_JSON.exists() else None
    command = "python -m compat_matrix" + "".join(f" {shlex.quote(a)}" for a in argv)
    results = runner.merge_results(previous, environments, runner.meta(command, wall))
    runner.write_results(results)
    failed = 0
    for env in environments:
        statuses = {}
        for c in env.get("cells", []):
            statuses[c["status"]] = statuses.get(c["status"], 0) + 1
        failed += statuses.get("fail", 0) + (env.get("status") == "error")
        print(f"{env['framework']} {env['version']}: {env.get('status')} {statuses} ({env.get('seconds')} s)")
    print(f"wall time {wall:.1f} s; wrote {runner.RESULTS_MD} and {runner.RESULTS_JSON}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
