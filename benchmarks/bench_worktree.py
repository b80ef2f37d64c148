"""Deleting files by checkout, and data fetched on demand, each beside its yardstick.

    .venv/bin/python benchmarks/bench_worktree.py [--workdir DIR] [--files N] [--runs N]
                                                  [--big-mib M] [--skip-remote]

Two comparisons, each run side by side in one call, alternating (A B A B ...) so
that a drift in the machine's speed touches both, and reported as medians:

1. **Deleting**: a repository whose v1 has N tracked files (default 5,000, 1-32 KiB
   in 50 directories under ``gone/``) besides one kept file, and whose v2 removes
   them. Each round restores v1 (``dvfs checkout v1``, timed too: restoring is the
   figure deleting is held against), syncs, then times either ``dvfs checkout v2``
   (deletes the N files) or ``rm -rf gone`` (the same files; the index is put back
   afterwards). Target: the checkout takes at most 1.2x ``rm -rf``.
2. **On demand** (needs the ``weed`` binary, as ``bench_remote.py``): v1 of N files
   plus one file of M MiB (default 256), and v2 with every file changed, pushed to a
   SeaweedFS on loopback. Each round makes a fresh ``dvfs clone`` (v2, not timed) and
   times either ``dvfs checkout v1`` there (it downloads v1's chunks on demand) or
   ``dvfs pull v1`` (the download by name). Target: checkout at most 1.1x pull.

Every command is a new process (``python -P -m vfs.cli``), timed from start to exit,
after a ``sync``. The files each step leaves are checked (a fast checkout that writes
nothing is not a result). It prints figures and never fails on a timing: benchmarks
are not tests. Run it on a quiet machine (``uptime``: load below 1).
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from seaweed import SeaweedFS

DVFS = [sys.executable, "-P", "-m", "vfs.cli"]
DIRS = 50
DELETE_TARGET = 1.2
DEMAND_TARGET = 1.1
MIB = 1 << 20


def dvfs(cwd: Path, *args: str, env: dict[str, str] | None = None) -> float:
    """Seconds of ``dvfs ARGS`` in ``cwd`` (it must succeed), after a sync."""
    return timed([*DVFS, *args], cwd, env)


def timed(argv: list[str], cwd: Path, env: dict[str, str] | None = None) -> float:
    subprocess.run(["sync"], check=True)
    started = time.perf_counter()
    p = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True)
    took = time.perf_counter() - started
    if p.returncode != 0:
        raise SystemExit(f"`{' '.join(argv)}` failed ({p.returncode}):\n{p.stderr}")
    return took


def write_files(root: Path, files: int, seed: int) -> None:
    """``files`` files of 1-32 KiB in DIRS directories under ``root/gone``."""
    rng = random.Random(seed)
    for i in range(files):
        d = root / "gone" / f"d{i % DIRS:02d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:05d}.bin").write_bytes(rng.randbytes(rng.randint(1024, 32 * 1024)))


def gone_count(root: Path) -> int:
    return sum(len(fs) for _, _, fs in os.walk(root / "gone"))


def median_line(
    title: str, a: list[float], b: list[float], names: tuple[str, str], target: float
) -> None:
    ma, mb = statistics.median(a), statistics.median(b)
    ratio = ma / mb
    verdict = "meets" if ratio <= target else "misses"
    print(
        f"{title:<34} {names[0]} {ma:7.3f} s   {names[1]} {mb:7.3f} s   "
        f"ratio {ratio:.2f}  ({verdict} <= {target})"
    )


def bench_delete(base: Path, files: int, runs: int, env: dict[str, str]) -> None:
    repo = base / "del"
    repo.mkdir()
    dvfs(repo, "init", env=env)
    write_files(repo, files, 1)
    (repo / "keep.txt").write_text("kept\n")
    dvfs(repo, "add", "gone", "keep.txt", env=env)
    dvfs(repo, "commit", "-m", "v1", env=env)
    dvfs(repo, "rm", "gone", env=env)
    dvfs(repo, "commit", "-m", "v2", env=env)
    index = repo / ".dvfs" / "index"
    checkout: list[float] = []
    rm: list[float] = []
    restore: list[float] = []
    for i in range(2 * runs + 2):  # the first pair warms up, and is dropped
        restore.append(dvfs(repo, "checkout", "v1", env=env))
        assert gone_count(repo) == files
        if i % 2 == 0:
            checkout.append(dvfs(repo, "checkout", "v2", env=env))
        else:
            saved = index.read_bytes()
            rm.append(timed(["rm", "-rf", "gone"], repo))
            index.write_bytes(saved)  # as after the checkout of v1
        assert gone_count(repo) == 0
        if i == 1:
            for figures in (checkout, rm, restore):
                figures.clear()
    print(f"{files:,} files of 1-32 KiB in {DIRS} directories, {runs} runs each")
    median_line("deleting them", checkout, rm, ("checkout", "rm -rf"), DELETE_TARGET)
    print(f"{'restoring them (checkout)':<34} median {statistics.median(restore):.3f} s")


def bench_on_demand(base: Path, files: int, big_mib: int, runs: int, env: dict[str, str]) -> None:
    server = SeaweedFS(base / "seaweed")
    server.start()
    try:
        server.make_bucket("bench")
        env = {**env, **server.env()}
        url = "s3://bench/worktree"
        a = base / "a"
        a.mkdir()
        dvfs(a, "init", env=env)
        for version, seed in (("v1", 1), ("v2", 2)):
            write_files(a, files, seed)
            rng = random.Random(seed + 100)
            with open(a / "big.bin", "wb") as out:
                for _ in range(big_mib):
                    out.write(rng.randbytes(MIB))
            dvfs(a, "add", "gone", "big.bin", env=env)
            dvfs(a, "commit", "-m", version, env=env)
        dvfs(a, "remote", "add", "origin", url, "--endpoint-url", server.endpoint, env=env)
        dvfs(a, "push", env=env)
        expected = (a / "big.bin").stat().st_size
        checkout: list[float] = []
        pull: list[float] = []
        for i in range(2 * runs + 2):
            clone = base / f"clone{i}"
            dvfs(base, "clone", url, str(clone), "--endpoint-url", server.endpoint, env=env)
            if i % 2 == 0:
                checkout.append(dvfs(clone, "checkout", "v1", env=env))
            else:
                pull.append(dvfs(clone, "pull", "v1", env=env))
            assert gone_count(clone) == files and (clone / "big.bin").stat().st_size == expected
            shutil.rmtree(clone)
            if i == 1:
                checkout.clear()
                pull.clear()
        print(f"v1: {files:,} files and {big_mib} MiB, every file changed in v2; {runs} runs each")
        median_line("checkout v1, fetched on demand", checkout, pull, ("checkout", "pull"),
                    DEMAND_TARGET)  # fmt: skip
    finally:
        server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where the trees go (default: a temp dir)")
    parser.add_argument("--files", type=int, default=5_000)
    parser.add_argument("--big-mib", type=int, default=256)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--skip-remote", action="store_true", help="only the deleting part")
    opts = parser.parse_args()
    load = os.getloadavg()[0]
    print(f"load average {load:.2f}")
    if load >= 1:
        print("note: the machine is busy (load >= 1): figures are noisy")
    repo_root = Path(__file__).resolve().parent.parent
    env = {
        **os.environ, "PYTHONPATH": str(repo_root), "DVFS_AUTHOR": "bench <bench@example.org>",
        "GIT_CEILING_DIRECTORIES": str(opts.workdir or tempfile.gettempdir()),
    }  # fmt: skip
    # dvfs runs with its bytecode cached, as installed (the set-up writes it): without
    # it every command compiles its modules again, 0.1 s that rm -rf never pays
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    base = Path(tempfile.mkdtemp(prefix="dvfs-bench-worktree-", dir=opts.workdir))
    try:
        bench_delete(base, opts.files, opts.runs, env)
        if not opts.skip_remote:
            bench_on_demand(base, opts.files, opts.big_mib, opts.runs, env)
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
