"""The writable working tree and ``dvfs snapshot`` against issue 19's targets.

    python benchmarks/bench_snapshot.py [--workdir DIR] [--scale F] [--rounds N]
        [--overlays kernel,daemon] [--keep] [--profile FILE] [--spy DIR]

The data is the foundation benchmark's (``workload.py``: 20,000 files of 1-32 KiB in
200 directories, half CSV-like text and half random bytes, and one 1 GiB random
file; ``--scale`` shrinks it for a smoke run). It is committed with the library
(not timed), and one branch per overlay is made at that version. Each overlay's
branch is then mounted writable by its own daemon in the foreground (``--overlay
kernel``: the kernel's overlayfs over the daemon's view, root only; ``--overlay
daemon``: the daemon's own), so that the process started is the daemon (its peak RSS
is VmHWM of ``/proc/PID/status``). With all of them mounted, side by side:

1. ``ls -lR`` of each fresh mount, against ``ls -lR`` of the same files on local disk;
2. 10 files changed through each MNT, then ``dvfs snapshot MNT --json``: the command's
   wall time and the seconds the daemon reports (target < 1 s);
3. ``tar x`` of the small files (an archive made beforehand, in the page cache) into a
   new directory of each MNT and of the local disk that holds the working trees
   (target >= 0.5x), each MNT's followed by a snapshot of its 20,000 new files
   (target < 2 s); beside each snapshot's wall time, the CPU seconds its daemon used
   meanwhile (``/proc/PID/stat``, every thread): on a machine others load, the gap
   between the two is time spent waiting for a core;
4. 1 GiB (the big file's bytes, held in memory) written into a new file in 1 MiB
   ``write`` calls, then ``fsync`` and ``close``, into each MNT and the local disk
   (target >= 0.8x), each MNT's followed by a snapshot; the file is then removed;
5. each daemon's peak RSS.

Steps 3 and 4 run ``--rounds`` times (default 3), the order of local disk and mounts
turned by one place each round, so that a machine whose speed drifts slows every side
alike; the table gives the median, and the spread. Nothing is deleted between the
``tar x`` rounds: on ext4 without a journal, files made within minutes of deleting
many are slowed by the inode allocator (see README, ``bench_local.py``), so a previous
run is moved aside first and deleted at the end. Each snapshot's first version is
checked against the data (a fast snapshot that records nothing is not a result).
``--profile FILE`` runs the daemon's own overlay under cProfile (its main thread only);
``--spy DIR`` records every daemon during each snapshot with py-spy (every thread,
idle ones too: where the wall time goes), one collapsed-stack file per snapshot in
DIR (``py-spy`` on ``PATH`` or beside the interpreter). It prints a table and never
fails on a timing: benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from measure import cpu_seconds, peak_rss, timed, unwind_on_sigterm
from results import human, render
from tools import REPO_ROOT
from workload import MIB, Workload, ensure_data, small_path, tree_digest

from vfs import Repository
from vfs.ops import workflow
from vfs.ops.branches import create_branch
from vfs.ops.commit import commit
from vfs.worktree.pools import Workers

DVFS = [sys.executable, "-P", "-m", "vfs.cli"]
TRACKED = ["small", "big.bin"]
CHANGED = 10
WRITE_BLOCK = MIB
CACHE_SIZE = 64 << 30
LOCAL = "local disk"
SPY = shutil.which("py-spy") or str(Path(sys.executable).with_name("py-spy"))
TARGETS = {"tar": 0.5, "write": 0.8, "tar snapshot": 2.0, "ten snapshot": 1.0}


@dataclass
class Row:
    """One line of the table: what was measured, against what, and the goal."""

    figure: str
    measured: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    met: bool | None = None


def spread(values: list[float]) -> str:
    """The median, and min-max when there are several values."""
    med = statistics.median(values)
    if len(values) < 2:
        return f"{med:.3f} s"
    return f"{med:.3f} s ({min(values):.2f}-{max(values):.2f})"


def limit_row(figure: str, seconds: list[float], limit: float | None) -> Row:
    """Times (median) against an upper limit (none: reported only)."""
    med = statistics.median(seconds)
    if limit is None:
        return Row(figure, spread(seconds))
    return Row(figure, spread(seconds), "", f"{med / limit:.2f}", f"< {limit:g} s", med < limit)


def rate_row(
    figure: str, size: int, seconds: list[float], base: list[float], need: float | None
) -> Row:
    """Throughputs against a baseline's; the ratio is the median of each round's
    baseline time / this time (>1: faster than the baseline)."""
    ratios = [b / s for s, b in zip(seconds, base, strict=True)]
    r = statistics.median(ratios)
    med, base_med = statistics.median(seconds), statistics.median(base)
    return Row(
        figure,
        f"{size / MIB / med:.0f} MiB/s ({spread(seconds)})",
        f"{size / MIB / base_med:.0f} MiB/s ({spread(base)})",
        f"{r:.2f}x" + (f" ({min(ratios):.2f}-{max(ratios):.2f})" if len(ratios) > 1 else ""),
        "" if need is None else f">= {need:g}x",
        None if need is None else r >= need,
    )


def time_row(figure: str, seconds: float, base_s: float) -> Row:
    """A time beside a baseline's, no target; the ratio is time / the baseline's."""
    return Row(figure, f"{seconds:.3f} s", f"{base_s:.3f} s", f"{seconds / base_s:.2f}")


@dataclass
class Side:
    """One mount: its overlay, branch, mount point and daemon."""

    overlay: str
    mnt: Path
    pid: int = 0
    tar_s: list[float] = field(default_factory=list)
    tar_snap_s: list[float] = field(default_factory=list)
    tar_snap_daemon_s: list[float] = field(default_factory=list)
    tar_snap_cpu_s: list[float] = field(default_factory=list)
    write_s: list[float] = field(default_factory=list)
    write_calls_s: list[float] = field(default_factory=list)
    write_snap_s: list[float] = field(default_factory=list)

    @property
    def branch(self) -> str:
        return f"bench-{self.overlay}"


@dataclass
class Bench:
    """Where everything is."""

    work: Path
    data: Path
    repo: Path
    env: dict[str, str]
    profile: Path | None
    spy: Path | None = None

    @contextmanager
    def daemon(self, side: Side) -> Iterator[int]:
        """A foreground daemon with ``side``'s branch writable at its MNT; yields its pid
        once mounted."""
        side.mnt.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, "-P"]
        if self.profile is not None and side.overlay == "daemon":
            argv += ["-m", "cProfile", "-o", str(self.profile)]
        argv += [
            "-m", "daemon", "--source", str(self.repo), "--mountpoint", str(side.mnt),
            "--cache-dir", str(self.work / f"cache-{side.overlay}"),
            "--cache-size", str(CACHE_SIZE), "--branch", side.branch, "--writable",
            "--overlay", side.overlay,
        ]  # fmt: skip
        log = self.work / f"daemon-{side.overlay}.log"
        with open(log, "ab") as err:
            proc = subprocess.Popen(argv, stdout=err, stderr=err, env=self.env, cwd="/")
        try:
            while not os.path.ismount(side.mnt):
                if proc.poll() is not None:
                    raise SystemExit(f"the daemon exited ({proc.returncode}): see {log}")
                time.sleep(0.002)
            yield proc.pid
        finally:
            subprocess.run(
                [*DVFS, "umount", str(side.mnt)], check=False, capture_output=True, env=self.env
            )
            try:
                proc.wait(timeout=60)
            except subprocess.TimeoutExpired:
                subprocess.run([*DVFS, "umount", "--force", str(side.mnt)], check=False)
                proc.kill()
                proc.wait()

    def snapshot(self, side: Side, message: str) -> tuple[float, dict[str, Any]]:
        """Wall seconds of ``dvfs snapshot MNT -m message --json``, and its answer; the
        CPU seconds the daemon spent meanwhile are added to it as ``cpu_seconds``."""
        with self.spied(side, message):
            cpu = cpu_seconds(side.pid)
            started = time.perf_counter()
            p = subprocess.run(
                [*DVFS, "snapshot", str(side.mnt), "-m", message, "--json"],
                capture_output=True,
                text=True,
                env=self.env,
            )
            wall = time.perf_counter() - started
            cpu = cpu_seconds(side.pid) - cpu
        if p.returncode != 0:
            raise SystemExit(f"dvfs snapshot failed ({p.returncode}): {p.stderr.strip()}")
        answer: dict[str, Any] = json.loads(p.stdout)
        answer["cpu_seconds"] = cpu
        return wall, answer

    @contextmanager
    def spied(self, side: Side, label: str) -> Iterator[None]:
        """With ``--spy``: py-spy records ``side``'s daemon meanwhile."""
        if self.spy is None:
            yield
            return
        out = self.spy / f"{side.overlay}-{label.replace(' ', '-')}.txt"
        argv = [SPY, "record", "--pid", str(side.pid), "--idle", "--threads", "--rate", "250"]
        argv += ["--format", "raw", "--output", str(out)]
        spy = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(0.5)  # attached (py-spy says nothing when it is)
        try:
            yield
        finally:
            spy.send_signal(signal.SIGINT)
            spy.wait(timeout=60)


def build(data: Path, repo_dir: Path, branches: list[str]) -> None:
    """Commit the data in a repository with the library, and make ``branches`` at it
    (not timed)."""
    repo_dir.mkdir(parents=True)
    for name in TRACKED:  # hard links: the same bytes without copying a GiB
        subprocess.run(["cp", "-al", str(data / name), str(repo_dir / name)], check=True)
    repo = Repository.init(repo_dir)
    with Workers() as w:
        workflow.add(repo, [str(repo_dir / n) for n in TRACKED], w)
        commit(repo, "bench", {})
    for b in branches:
        create_branch(repo, b, "HEAD")


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


def turned(items: list[Any], by: int) -> list[Any]:
    """``items`` turned left by ``by`` places."""
    by %= len(items)
    return items[by:] + items[:by]


def run(bench: Bench, sides: list[Side], wl: Workload, rounds: int, notes: list[str]) -> list[Row]:
    """Every measurement, in order; the rows of the table."""
    rows: list[Row] = []
    data, work = bench.data, bench.work
    archive = work / "small.tar"
    subprocess.run(["tar", "cf", str(archive), "-C", str(data), "small"], check=True)
    timed(["cat", str(archive)])  # in the page cache for every tar run
    size = sum(p.stat().st_size for p in (data / "small").rglob("*") if p.is_file())
    buf = memoryview((data / "big.bin").read_bytes())
    local = work / "local"
    local.mkdir()
    local_tar: list[float] = []
    local_write: list[float] = []
    local_calls: list[float] = []

    local_ls = timed(["ls", "-lR", str(data / "small"), str(data / "big.bin")])
    with ExitStack() as daemons:
        for side in sides:
            side.pid = daemons.enter_context(bench.daemon(side))
        for side in sides:  # 1. the first listing
            rows.append(
                time_row(
                    f"[{side.overlay}] first ls -lR of MNT (vs local disk)",
                    timed(["ls", "-lR", str(side.mnt)]),
                    local_ls,
                )
            )

        names = changed_files(wl)  # 2. ten files changed
        for side in sides:
            for i, rel in enumerate(names):
                with open(side.mnt / rel, "r+b") as f:
                    f.write(f"changed {i}\n".encode())
            wall, got = bench.snapshot(side, "ten files")
            what = f"[{side.overlay}] snapshot after changing {len(names)} files"
            rows.append(limit_row(what, [wall], TARGETS["ten snapshot"]))
            rows.append(limit_row("  seconds the daemon reports", [float(got["seconds"])], None))
            rows.append(limit_row("  CPU seconds of the daemon", [float(got["cpu_seconds"])], None))
            vdir = version_dir(side.mnt, got)
            ok = all(
                (vdir / rel).read_bytes() == (side.mnt / rel).read_bytes()
                and (vdir / rel).read_bytes().startswith(f"changed {i}\n".encode())
                for i, rel in enumerate(names)
            )
            notes.append(f"[{side.overlay}] {got['version']} holds the changed files: {ok}")

        targets: list[Side | None] = [None, *sides]  # None: the local disk
        for r in range(rounds):  # 3. tar x
            for side in turned(targets, r):
                if side is None:
                    local_tar.append(untar(archive, local / f"untar{r}"))
                    continue
                side.tar_s.append(untar(archive, side.mnt / f"untar{r}"))
                wall, got = bench.snapshot(side, f"tar x {r}")
                side.tar_snap_s.append(wall)
                side.tar_snap_daemon_s.append(float(got["seconds"]))
                side.tar_snap_cpu_s.append(float(got["cpu_seconds"]))
                if r == 0:
                    held = tree_digest(version_dir(side.mnt, got) / "untar0", ("small",))
                    want = tree_digest(data, ("small",))
                    notes.append(
                        f"[{side.overlay}] {got['version']}/untar0/small equals the data: "
                        f"{held == want}"
                    )

        for r in range(rounds):  # 4. 1 GiB written
            for side in turned(targets, r):
                if side is None:
                    calls, total = write_file(local / "big.out", buf)
                    (local / "big.out").unlink()
                    local_write.append(total)
                    local_calls.append(calls)
                    continue
                out = side.mnt / f"big{r}.out"
                calls, total = write_file(out, buf)
                side.write_s.append(total)
                side.write_calls_s.append(calls)
                wall, got = bench.snapshot(side, f"big write {r}")
                side.write_snap_s.append(wall)
                if r == 0:
                    with open(version_dir(side.mnt, got) / out.name, "rb") as f:
                        equal = all(
                            f.read(len(b)) == b
                            for b in (buf[i : i + 8 * MIB] for i in range(0, len(buf), 8 * MIB))
                        )
                    notes.append(f"[{side.overlay}] {got['version']}/{out.name} equals: {equal}")
                out.unlink()

        for side in sides:  # 5. memory
            rss = peak_rss(side.pid)
            o = side.overlay
            rows += [
                rate_row(
                    f"[{o}] tar x of {wl.files} files into MNT (vs local)",
                    size, side.tar_s, local_tar, TARGETS["tar"],
                ),
                limit_row(
                    f"[{o}] snapshot after tar x ({wl.files} new files)", side.tar_snap_s,
                    TARGETS["tar snapshot"],
                ),
                limit_row("  seconds the daemon reports", side.tar_snap_daemon_s, None),
                limit_row("  CPU seconds of the daemon (every thread)", side.tar_snap_cpu_s,
                          None),
                rate_row(
                    f"[{o}] write {human(len(buf))} + fsync into MNT (vs local)",
                    len(buf), side.write_s, local_write, TARGETS["write"],
                ),
                rate_row("  of which the write calls", len(buf), side.write_calls_s,
                         local_calls, None),
                limit_row(f"[{o}] snapshot after writing {human(len(buf))}",
                          side.write_snap_s, None),
                Row(f"[{o}] daemon peak RSS (VmHWM)", f"{rss / MIB:.0f} MiB"),
            ]  # fmt: skip
    return rows


def table(rows: list[Row]) -> str:
    """The rows as aligned text."""
    grid = [["figure", "measured", "baseline", "ratio", "target", "met"]]
    for r in rows:
        met = "" if r.met is None else ("yes" if r.met else "NO")
        grid.append([r.figure, r.measured, r.baseline, r.ratio, r.target, met])
    return render(grid)


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "work" / "snapshot")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the data (0.05: smoke run)")
    p.add_argument("--seed", type=int, default=Workload.seed)
    p.add_argument("--rounds", type=int, default=3, help="rounds of tar x and of the write")
    default = "kernel,daemon" if os.geteuid() == 0 else "daemon"
    p.add_argument("--overlays", default=default, help=f"comma-separated (default {default})")
    p.add_argument("--keep", action="store_true", help="keep the generated data for a rerun")
    p.add_argument("--profile", type=Path, help="run the daemon overlay under cProfile")
    p.add_argument("--spy", type=Path, help="py-spy every snapshot into this directory")
    a = p.parse_args(argv)
    unwind_on_sigterm()
    work: Path = a.workdir.resolve()
    data, run_dir, old = work / "data", work / "run", work / "run.old"
    wl = Workload.scaled(a.scale, a.seed)
    if run_dir.exists():  # freed at the end, not now: see the module docstring
        shutil.rmtree(old, ignore_errors=True)
        run_dir.rename(old)
    run_dir.mkdir(parents=True)
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT))
    # dvfs runs with its bytecode cached, as installed: without it every command (and
    # each daemon) compiles its modules again, which a user's `dvfs snapshot` never pays
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    profile = a.profile.resolve() if a.profile else None
    spy = a.spy.resolve() if a.spy else None
    if spy is not None:
        spy.mkdir(parents=True, exist_ok=True)
    bench = Bench(run_dir, data, run_dir / "repo", env, profile, spy)
    sides = [Side(o, run_dir / f"mnt-{o}") for o in a.overlays.split(",")]
    notes: list[str] = []
    try:
        started = time.perf_counter()
        if ensure_data(data, wl):
            print(f"generated the data in {time.perf_counter() - started:.1f} s", flush=True)
        started = time.perf_counter()
        build(data, bench.repo, [s.branch for s in sides])
        print(
            f"committed {wl.files} files and {human(wl.big_size)} "
            f"in {time.perf_counter() - started:.1f} s",
            flush=True,
        )
        load = os.getloadavg()
        rows = run(bench, sides, wl, a.rounds, notes)
        notes.append(
            "load average at the start: " + ", ".join(f"{x:.2f}" for x in load)
            + "; at the end: " + ", ".join(f"{x:.2f}" for x in os.getloadavg())
        )  # fmt: skip
    finally:
        shutil.rmtree(run_dir, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
        if not a.keep:
            shutil.rmtree(data, ignore_errors=True)
    print()
    print(table(rows))
    print()
    print("\n".join(f"check: {n}" for n in notes))


if __name__ == "__main__":
    main()
