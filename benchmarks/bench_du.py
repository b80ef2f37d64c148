"""``dvfs du`` of the benchmark's small files after 5 versions, against issue 16's 1 s.

    python benchmarks/bench_du.py [--workdir DIR] [--scale F] [--runs N] [--dvfs CMD]

The data is the small files of ``workload.py`` (20,000 files of 1-32 KiB in 200
directories); version 1 is them as generated and versions 2 to 5 each replace half of
them (``bench_gc.replace_half``), recorded with ``dvfs add`` + ``commit`` (not timed).
Then ``dvfs du`` (every version: logical, stored and unique bytes, biggest files) and
``dvfs du --json`` run ``--runs`` times each after ``dvfs --version`` (start-up alone),
and the medians are printed with the load average. No peer tool reports the bytes each
version alone holds, so the figure stands against the issue's target, not a ratio. It
never fails on a timing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import time
from pathlib import Path

from bench_gc import VERSIONS, copy_small, replace_half
from tools import REPO_ROOT, Dvfs, dvfs_command, must
from workload import Workload, ensure_data


def timed(argv: list[str], cwd: Path, env: dict[str, str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run(argv, cwd=cwd, env=env, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "work")
    p.add_argument("--dvfs", help='dvfs command (default: "dvfs" on PATH, else this checkout)')
    p.add_argument("--scale", type=float, default=1.0, help="shrink the data, e.g. 0.05")
    p.add_argument("--runs", type=int, default=5)
    args = p.parse_args()
    full = Workload.scaled(args.scale, Workload.seed)
    work = Workload(full.files, full.dirs, full.min_size, full.max_size, 0, full.seed)
    data, repo = args.workdir / "data-du", args.workdir / "run-du"
    shutil.rmtree(repo, ignore_errors=True)
    ensure_data(data, work)
    dvfs = Dvfs(repo, dict(os.environ), dvfs_command(args.dvfs))
    try:
        copy_small(data, repo)
        dvfs.setup()
        for version in range(1, VERSIONS + 1):
            if version > 1:
                replace_half(repo, work, version)
            for argv in dvfs.add_commit("small", f"v{version}"):
                must(argv, repo, dvfs.env)
        print(f"{work.files:,} small files, {VERSIONS} versions; {os.cpu_count()} CPUs")
        print(f"{'command':<28} {'median s':>9} {'target':>8}")
        for label, rest, target in (
            ("dvfs --version (start-up)", ["--version"], ""),
            ("dvfs du", ["du"], "< 1 s"),
            ("dvfs du --json", ["du", "--json"], "< 1 s"),
        ):
            t = timed([*dvfs.command, *rest], repo, dvfs.env, args.runs)
            print(f"{label:<28} {t:>9.3f} {target:>8}", flush=True)
        print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    finally:
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
