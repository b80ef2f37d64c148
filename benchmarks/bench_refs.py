"""Refs at scale, on this machine: thousands of tags pushed, and cloned.

    python benchmarks/bench_refs.py                  # 2,000 tags, 3 runs
    python benchmarks/bench_refs.py --tags 200       # quick
    python benchmarks/bench_refs.py --dvfs-path DIR  # another tree's code (an old one)

A repository of one version and ``--tags`` tags is made once under WORKDIR (the tags
written in one batch, not timed). Then, ``--runs`` times each, as commands:

- ``dvfs push --tags`` to a new directory remote, then ``dvfs clone`` of it;
- ``dvfs push --all`` of ``--branches`` new branches to another new directory remote;
- ``dvfs push --tags`` to a new prefix of a bucket on a local SeaweedFS started for the
  run (``seaweed.py``).

Each prints the median wall and CPU seconds, the requests the command states, and the
fsyncs it made (counted in the command's own process), with the load average beside
them (the machine may be shared). ``--dvfs-path`` runs the commands with another
tree's ``vfs`` first on ``PYTHONPATH``, for a before and after.
"""

from __future__ import annotations

import argparse
import os
import re
import resource
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from seaweed import SeaweedFS

from tests.support.fsyncs import COUNTING
from vfs.repo.repository import Repository


def dvfs(
    cwd: Path, env: dict[str, str], *args: str, counted: bool = False
) -> tuple[float, float, int, int]:
    """Run ``dvfs ARGS`` (it must succeed): wall and CPU seconds, requests, fsyncs."""
    argv = [sys.executable, "-c", COUNTING] if counted else [sys.executable, "-m", "vfs.cli"]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.monotonic()
    r = subprocess.run([*argv, *args], cwd=cwd, env=env, capture_output=True, text=True)
    wall = time.monotonic() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if r.returncode != 0:
        raise SystemExit(f"dvfs {' '.join(args)} failed: {r.stderr[-2000:]}")
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    found = re.findall(r"(\d[\d,]*) requests", r.stdout + r.stderr)
    requests = int(found[-1].replace(",", "")) if found else 0
    fsyncs = int(r.stderr.rsplit("FSYNCS ", 1)[1]) if counted else 0
    return wall, cpu, requests, fsyncs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tags", type=int, default=2000)
    parser.add_argument("--branches", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/dvfs-bench-refs"))
    parser.add_argument("--dvfs-path", type=Path, help="a tree whose vfs the commands run")
    args = parser.parse_args()
    work: Path = args.workdir
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    env = {**os.environ}
    if args.dvfs_path is not None:
        env["PYTHONPATH"] = str(args.dvfs_path.resolve())
    repo = work / "repo"
    repo.mkdir()
    dvfs(repo, env, "init")
    (repo / "a.txt").write_text("a\n")
    dvfs(repo, env, "add", "a.txt")
    dvfs(repo, env, "commit", "-m", "one")
    refs = Repository(repo).refs
    tip = refs.head_id()
    assert tip is not None
    refs.update_many([(f"refs/tags/t-{n:05}", tip, None) for n in range(args.tags)])
    refs.update_many([(f"refs/heads/b-{n:05}", tip, None) for n in range(args.branches)])
    server = SeaweedFS(work / "seaweedfs")
    server.start()
    try:
        server.make_bucket("bench")
        s3_env = {**env, **server.env()}
        rows: dict[str, list[tuple[float, float, int, int]]] = {}
        for run in range(args.runs):
            clone = work / f"run-{run}"
            shutil.copytree(repo, clone, symlinks=True)
            url = (work / f"remote-{run}").as_uri()
            dvfs(clone, env, "remote", "add", "dir", url)
            dvfs(clone, env, "remote", "add", "all", (work / f"branches-{run}").as_uri())
            dvfs(clone, s3_env, "remote", "add", "s3", f"s3://bench/run-{run}",
                 "--endpoint-url", server.endpoint)  # fmt: skip
            steps = {
                "push --tags, directory": (clone, env, ["push", "--tags", "--remote", "dir"]),
                "clone, directory": (work, env, ["clone", url, f"cloned-{run}"]),
                "push --all, directory": (clone, env, ["push", "--all", "--remote", "all"]),
                "push --tags, SeaweedFS": (clone, s3_env, ["push", "--tags", "--remote", "s3"]),
            }
            for title, (cwd, step_env, argv) in steps.items():
                rows.setdefault(title, []).append(dvfs(cwd, step_env, *argv, counted=True))
    finally:
        server.stop()
    load = os.getloadavg()[0]
    print(
        f"{args.tags:,} tags, {args.branches:,} branches, median of {args.runs} runs "
        f"(load {load:.1f}):"
    )
    for title, got in rows.items():
        wall, cpu, requests, fsyncs = (statistics.median(col) for col in zip(*got, strict=True))
        print(
            f"  {title:<24} wall {wall:6.2f} s  CPU {cpu:6.2f} s  "
            f"{requests:8,.0f} requests  {fsyncs:7,.0f} fsyncs"
        )


if __name__ == "__main__":
    main()
