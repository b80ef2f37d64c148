"""`dvfs audit verify` of a long chain, on this machine: the remote chain and the local log.

    python benchmarks/bench_audit.py                  # 10,000 entries
    python benchmarks/bench_audit.py --entries 1000   # quick

The issue asks for a verify of 10,000 entries in under 1 s; no peer tool keeps such a
chain, so the figure is printed against that target. The chain is written once (not
timed) into a directory remote and a repository's ``.dvfs/audit.log`` under WORKDIR,
with the entries dvfs itself writes (``vfs.repo.audit``); then ``dvfs audit verify --remote``
and ``dvfs audit verify`` each run as commands, ``--runs`` times, median shown, with the
load average beside it (the machine may be shared).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

from vfs.backends import open_backend
from vfs.model.ids import hash_bytes
from vfs.remote.layout import audit_key
from vfs.repo import audit

HERE = Path(__file__).resolve().parent


def build(work: Path, entries: int) -> Path:
    """A repository with a remote `origin` whose chain, and local log, hold ``entries``."""
    if work.exists():
        shutil.rmtree(work)
    repo = work / "repo"
    subprocess.run([*dvfs(), "init", str(repo)], check=True, capture_output=True)
    remote = work / "remote"
    subprocess.run(
        [*dvfs(), "remote", "add", "origin", str(remote)], cwd=repo, check=True, capture_output=True
    )
    backend = open_backend(str(remote), create=True)
    prev = audit.ZERO
    lines = []
    for n in range(1, entries + 1):
        new = hash_bytes(n.to_bytes(8, "big"))
        data = audit.encode_entry(
            audit.make_entry(n, prev, "push", "refs/heads/main", None, new, "")
        )
        backend.put(audit_key(n), data)
        lines.append(data)
        prev = hash_bytes(data).hex()
    (repo / ".dvfs" / audit.LOG).write_bytes(b"\n".join(lines) + b"\n")
    (repo / ".dvfs" / audit.HEAD).write_text(f"{entries} {prev}\n")
    return repo


def dvfs() -> list[str]:
    found = shutil.which("dvfs")
    return [found] if found else [sys.executable, "-m", "vfs.cli"]


def timed(repo: Path, args: list[str], runs: int) -> float:
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        subprocess.run([*dvfs(), *args], cwd=repo, check=True, capture_output=True)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--entries", type=int, default=10_000)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", type=Path, default=HERE / "work" / "audit")
    opts = ap.parse_args()
    repo = build(opts.workdir, opts.entries)
    start = timed(repo, ["--version"], opts.runs)
    print(
        f"{opts.entries:,} entries; load average {os.getloadavg()[0]:.2f} on {os.cpu_count()} CPUs"
    )
    print(f"{'command':<40} {'median s':>9} {'vs 1 s':>7}")
    print(f"{'dvfs --version (start-up)':<40} {start:>9.3f} {start:>7.2f}")
    for label, args in (
        ("dvfs audit verify --remote origin", ["audit", "verify", "--remote", "origin"]),
        ("dvfs audit verify (local log)", ["audit", "verify"]),
    ):
        t = timed(repo, args, opts.runs)
        print(f"{label:<40} {t:>9.3f} {t:>7.2f}")
    print(f"load average after: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
