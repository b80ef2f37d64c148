"""A clone of a remote that many small pushes made, before and after ``dvfs gc --remote``.

    python benchmarks/bench_repack.py [--workdir DIR] [--pushes N] [--files F] [--runs R]

Set-up (not timed): a repository commits and pushes, one push per version, ``N``
versions (default 200) of ``F`` new small files each (default 3, 1-4 KiB of seeded
bytes) to a directory remote; the same history is pushed in one push to a second
directory remote. Then, timed, ``R`` clones each (the median is printed) of:

- the remote of many pushes, as the pushes left it (one small pack and one index
  segment a push);
- the same remote after ``dvfs gc --remote origin --grace 0`` (nobody pushes here, so
  the merged packs go at once rather than a grace later);
- the remote of one push.

For each: the packs and segments on the remote, the requests the clone says it made,
and its wall time. The gc's own time and report line are printed too. It never fails on
a timing.
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT))

import vfs  # noqa: E402  (from this checkout)

DVFS = [sys.executable, "-m", "vfs.cli"]


def dvfs(cwd: Path, *args: str) -> str:
    env = {**os.environ, "PYTHONPATH": str(REPO_ROOT)}
    p = subprocess.run([*DVFS, *args], cwd=cwd, env=env, capture_output=True, text=True)
    if p.returncode != 0:
        raise SystemExit(f"`dvfs {' '.join(args)}` failed: {p.stderr.strip()}")
    return p.stdout


def build(work: Path, pushes: int, files: int) -> tuple[Path, Path, Path]:
    """The repository, the remote of many pushes and the remote of one."""
    repo, many, once = work / "repo", work / "many", work / "once"
    repo.mkdir()
    dvfs(repo, "init")
    dvfs(repo, "remote", "add", "origin", many.as_uri())
    dvfs(repo, "remote", "add", "once", once.as_uri())
    rng = random.Random(7)
    api = vfs.Repo(repo)
    try:
        for v in range(pushes):
            names = []
            for f in range(files):
                name = f"d{v % 10}/v{v:04d}-{f}.bin"
                (repo / name).parent.mkdir(exist_ok=True)
                (repo / name).write_bytes(rng.randbytes(rng.randint(1024, 4096)))
                names.append(name)
            api.add(names)
            api.commit(f"version {v}")
            api.push()
        api.push(remote="once")
    finally:
        api.close()
    return repo, many, once


def counts(remote: Path) -> tuple[int, int]:
    return len(os.listdir(remote / "packs")), len(os.listdir(remote / "index"))


def clone(work: Path, remote: Path, runs: int, label: str) -> tuple[int, float]:
    """Requests and median wall time of ``runs`` clones of ``remote``."""
    times, reqs = [], 0
    for n in range(runs):
        dest = work / f"clone-{label}-{n}"
        t = time.perf_counter()
        out = dvfs(work, "clone", remote.as_uri(), str(dest))
        times.append(time.perf_counter() - t)
        m = re.search(r"(\d+) requests", out)
        reqs = int(m.group(1)) if m else -1
        shutil.rmtree(dest)
    return reqs, statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "work" / "repack")
    ap.add_argument("--pushes", type=int, default=200)
    ap.add_argument("--files", type=int, default=3)
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    work: Path = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    try:
        repo, many, once = build(work, args.pushes, args.files)
        rows = [("many pushes", many, *counts(many), *clone(work, many, args.runs, "before"))]
        t = time.perf_counter()
        report = dvfs(repo, "gc", "--remote", "origin", "--grace", "0")
        took = time.perf_counter() - t
        rows.append(
            ("after gc --remote", many, *counts(many), *clone(work, many, args.runs, "after"))
        )
        rows.append(("one push", once, *counts(once), *clone(work, once, args.runs, "once")))
    finally:
        load = os.getloadavg()[0]
    print(f"{args.pushes} pushes of {args.files} small files each; median of {args.runs} clones")
    print(f"gc --remote origin --grace 0: {took:.2f} s")
    for line in report.strip().splitlines():
        print(f"  {line}")
    print(f"{'remote':<20} {'packs':>6} {'segments':>9} {'requests':>9} {'clone':>8}")
    for label, _, packs, segs, reqs, secs in rows:
        print(f"{label:<20} {packs:>6} {segs:>9} {reqs:>9} {secs:>7.2f}s")
    print(f"load average (1 min) at the end: {load:.2f}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
