"""The writable working tree and ``dvfs snapshot`` against issue 5's targets.

    python benchmarks/bench_snapshot.py [--workdir DIR] [--scale F] [--keep] [--profile FILE]

The data is the foundation benchmark's (``workload.py``: 20,000 files of 1-32 KiB in
200 directories, half CSV-like text and half random bytes, and one 1 GiB random
file; ``--scale`` shrinks it for a smoke run). It is committed with the library
(not timed), then the repository is mounted with the daemon in the foreground, so
that the process started is the daemon (its peak RSS is VmHWM of
``/proc/PID/status``). Everything runs warm, on one daemon, in this order:

1. ``ls -lR MNT``, the first listing of the fresh mount, against ``ls -lR`` of the
   same files on local disk;
2. 10 files of the tree changed through MNT, then ``dvfs snapshot MNT --json``: the
   command's wall time and the seconds the daemon reports (target < 1 s);
3. ``tar x`` of the small files (an archive made beforehand, in the page cache) into
   MNT, against ``tar x`` into a directory of the filesystem that holds the upper
   layer (target >= 0.25x); then a snapshot of the 20,000 new files;
4. 1 GiB (the big file's bytes, held in memory) written into a new file of MNT in
   1 MiB ``write`` calls, then ``fsync`` and ``close``, against the same into a file
   of the upper layer's filesystem (target >= 0.3x); then a snapshot of it;
5. the daemon's peak RSS.

Each snapshot's version is checked against the data (a fast snapshot that records
nothing is not a result). ``--profile FILE`` runs the daemon under cProfile and
writes its statistics to FILE. It prints a table and never fails on a timing:
benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from measure import peak_rss, timed
from results import human, render
from tools import REPO_ROOT
from workload import MIB, Workload, ensure_data, small_path, tree_digest

from vfs import Repository, workflow
from vfs.worktree import Workers

DVFS = [sys.executable, "-P", "-m", "vfs.cli"]
TRACKED = ["small", "big.bin"]
CHANGED = 10
WRITE_BLOCK = MIB
CACHE_SIZE = 64 << 30


@dataclass
class Row:
    """One line of the table: what was measured, against what, and the goal."""

    figure: str
    measured: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None


def limit_row(figure: str, seconds: float, limit: float | None) -> Row:
    """A time against an upper limit (none: reported only)."""
    if limit is None:
        return Row(figure, f"{seconds:.3f} s")
    return Row(
        figure, f"{seconds:.3f} s", "", f"{seconds / limit:.2f}", f"< {limit:g} s", seconds < limit
    )


def rate_row(figure: str, size: int, seconds: float, base_s: float, need: float | None) -> Row:
    """A throughput against a baseline's; the ratio is this rate / the baseline's."""
    r = base_s / seconds
    return Row(
        figure,
        f"{size / MIB / seconds:.0f} MiB/s ({seconds:.2f} s)",
        f"{size / MIB / base_s:.0f} MiB/s ({base_s:.2f} s)",
        f"{r:.2f}x",
        "" if need is None else f">= {need:g}x",
        None if need is None else r >= need,
    )


def time_row(figure: str, seconds: float, base_s: float) -> Row:
    """A time beside a baseline's, no target; the ratio is time / the baseline's."""
    return Row(figure, f"{seconds:.3f} s", f"{base_s:.3f} s", f"{seconds / base_s:.2f}")


@dataclass
class Bench:
    """Where everything is."""

    work: Path
    data: Path
    repo: Path
    mnt: Path
    env: dict[str, str]
    profile: Path | None

    @contextmanager
    def daemon(self) -> Iterator[int]:
        """A foreground daemon with MNT writable; yields its pid once mounted."""
        self.mnt.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-P"]
        if self.profile is not None:
            argv += ["-m", "cProfile", "-o", str(self.profile)]
        argv += [
            "-m", "daemon", "--source", str(self.repo), "--mountpoint", str(self.mnt),
            "--cache-dir", str(self.work / "cache"), "--cache-size", str(CACHE_SIZE),
            "--writable",
        ]  # fmt: skip
        log = self.work / "daemon.log"
        with open(log, "ab") as err:
            proc = subprocess.Popen(argv, stdout=err, stderr=err, env=self.env, cwd="/")
        try:
            while not os.path.ismount(self.mnt):
                if proc.poll() is not None:
                    raise SystemExit(f"the daemon exited ({proc.returncode}): see {log}")
                time.sleep(0.002)
            yield proc.pid
        finally:
            subprocess.run(["fusermount3", "-u", str(self.mnt)], check=False, capture_output=True)
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                subprocess.run(["fusermount3", "-uz", str(self.mnt)], check=False)
                proc.kill()
                proc.wait()

    def snapshot(self, message: str) -> tuple[float, dict[str, Any]]:
        """Wall seconds of ``dvfs snapshot MNT -m message --json``, and its answer."""
        started = time.perf_counter()
        p = subprocess.run(
            [*DVFS, "snapshot", str(self.mnt), "-m", message, "--json"],
            capture_output=True,
            text=True,
            env=self.env,
        )
        wall = time.perf_counter() - started
        if p.returncode != 0:
            raise SystemExit(f"dvfs snapshot failed ({p.returncode}): {p.stderr.strip()}")
        return wall, json.loads(p.stdout)


def build(data: Path, repo_dir: Path) -> None:
    """Commit the data in a repository with the library (not timed)."""
    repo_dir.mkdir(parents=True)
    for name in TRACKED:  # hard links: the same bytes without copying a GiB
        subprocess.run(["cp", "-al", str(data / name), str(repo_dir / name)], check=True)
    repo = Repository.init(repo_dir)
    with Workers() as w:
        workflow.add(repo, [str(repo_dir / n) for n in TRACKED], w)
        workflow.commit(repo, "bench", {})


def write_file(path: Path, buf: memoryview) -> tuple[float, float]:
    """Write ``buf`` into a new file in 1 MiB calls, fsync, close: (write s, total s)."""
    os.sync()
    started = time.perf_counter()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        off = 0
        while off < len(buf):
            off += os.write(fd, buf[off : off + WRITE_BLOCK])
        written = time.perf_counter() - started
        os.fsync(fd)
    finally:
        os.close(fd)
    return written, time.perf_counter() - started


def untar(archive: Path, into: Path) -> float:
    """Seconds of ``tar xf archive -C into`` (``into`` is made first, not timed)."""
    into.mkdir(parents=True, exist_ok=True)
    os.sync()
    return timed(["tar", "xf", str(archive), "-C", str(into)])


def changed_files(wl: Workload) -> list[str]:
    """``CHANGED`` small files spread over the tree."""
    n = min(CHANGED, wl.files)
    return [small_path(i * wl.files // n, wl.dirs) for i in range(n)]


def version_dir(mnt: Path, answer: dict[str, Any]) -> Path:
    """Where the mount shows the version a snapshot made."""
    return mnt / ".versions" / str(answer["version"])


def run(bench: Bench, wl: Workload, notes: list[str]) -> list[Row]:
    """Every measurement, in order; the rows of the table."""
    rows: list[Row] = []
    data, mnt, work = bench.data, bench.mnt, bench.work
    archive = work / "small.tar"
    subprocess.run(["tar", "cf", str(archive), "-C", str(data), "small"], check=True)
    timed(["cat", str(archive)])  # in the page cache for both tar runs
    buf = memoryview((data / "big.bin").read_bytes())
    local = work / "local"
    local.mkdir()

    local_ls = timed(["ls", "-lR", str(data / "small"), str(data / "big.bin")])
    with bench.daemon() as pid:
        # 1. the first listing
        rows.append(
            time_row(
                "first ls -lR of MNT (vs local disk)", timed(["ls", "-lR", str(mnt)]), local_ls
            )
        )

        # 2. ten files changed
        names = changed_files(wl)
        for i, rel in enumerate(names):
            with open(mnt / rel, "r+b") as f:
                f.write(f"changed {i}\n".encode())
        wall, got = bench.snapshot("ten files")
        rows.append(
            limit_row(f"snapshot after changing {len(names)} files: dvfs snapshot", wall, 1.0)
        )
        rows.append(limit_row("  seconds the daemon reports", float(got["seconds"]), 1.0))
        rows.append(Row("  files hashed", str(got["hashed"])))
        vdir = version_dir(mnt, got)
        ok = all(
            (vdir / rel).read_bytes() == (mnt / rel).read_bytes()
            and (vdir / rel).read_bytes().startswith(f"changed {i}\n".encode())
            for i, rel in enumerate(names)
        )
        notes.append(f"{got['version']} holds the {len(names)} changed files: {ok}")

        # 3. tar x of the small files
        local_tar = untar(archive, local / "untar")
        mnt_tar = untar(archive, mnt / "untar")
        size = sum(p.stat().st_size for p in (data / "small").rglob("*") if p.is_file())
        rows.append(
            rate_row(
                f"tar x of {wl.files} files into MNT (vs local)", size, mnt_tar, local_tar, 0.25
            )
        )
        wall, got = bench.snapshot("tar x")
        rows.append(limit_row(f"snapshot after tar x ({wl.files} new files)", wall, None))
        rows.append(limit_row("  seconds the daemon reports", float(got["seconds"]), None))
        same = tree_digest(version_dir(mnt, got) / "untar", ("small",)) == tree_digest(
            data, ("small",)
        )
        notes.append(f"{got['version']}/untar/small equals the data: {same}")
        shutil.rmtree(local / "untar")

        # 4. 1 GiB written
        local_w, local_s = write_file(local / "big.out", buf)
        (local / "big.out").unlink()
        mnt_w, mnt_s = write_file(mnt / "big.out", buf)
        rows.append(
            rate_row(
                f"write {human(len(buf))} + fsync into MNT (vs local)",
                len(buf),
                mnt_s,
                local_s,
                0.3,
            )
        )
        rows.append(rate_row("  of which the write calls", len(buf), mnt_w, local_w, None))
        wall, got = bench.snapshot("big write")
        rows.append(limit_row(f"snapshot after writing {human(len(buf))}", wall, None))
        rows.append(limit_row("  seconds the daemon reports", float(got["seconds"]), None))
        with open(version_dir(mnt, got) / "big.out", "rb") as f:
            same = all(
                f.read(len(b)) == b
                for b in (buf[i : i + 8 * MIB] for i in range(0, len(buf), 8 * MIB))
            )
        notes.append(f"{got['version']}/big.out equals the bytes written: {same}")

        # 5. memory
        rss = peak_rss(pid)
    rows.append(Row("daemon peak RSS (VmHWM)", f"{rss / MIB:.0f} MiB"))
    return rows


def table(rows: list[Row]) -> str:
    """The rows as aligned text."""
    grid = [["figure", "measured", "baseline", "ratio", "target", "met"]]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "NO")
        grid.append([r.figure, r.measured, r.baseline, r.ratio, r.target, met])
    return render(grid)


def stop(signum: int, _frame: object) -> None:
    """On SIGTERM, unwind like on Ctrl-C (the daemon is unmounted)."""
    raise SystemExit(128 + signum)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "work" / "snapshot")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the data (0.05: smoke run)")
    p.add_argument("--seed", type=int, default=Workload.seed)
    p.add_argument("--keep", action="store_true", help="keep the generated data for a rerun")
    p.add_argument("--profile", type=Path, help="run the daemon under cProfile, stats to FILE")
    a = p.parse_args(argv)
    signal.signal(signal.SIGTERM, stop)
    work: Path = a.workdir.resolve()
    data, run_dir = work / "data", work / "run"
    wl = Workload.scaled(a.scale, a.seed)
    shutil.rmtree(run_dir, ignore_errors=True)
    run_dir.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    profile = a.profile.resolve() if a.profile else None
    bench = Bench(run_dir, data, run_dir / "repo", run_dir / "mnt", env, profile)
    notes: list[str] = []
    try:
        started = time.perf_counter()
        if ensure_data(data, wl):
            print(f"generated the data in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        build(data, bench.repo)
        print(
            f"committed {wl.files} files and {human(wl.big_size)} "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        rows = run(bench, wl, notes)
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        if not a.keep:
            shutil.rmtree(data, ignore_errors=True)
    print()
    print(table(rows))
    print()
    print("\n".join(f"check: {n}" for n in notes))


if __name__ == "__main__":
    main()
