"""Where `dvfs add` + `commit` of one large file spends its wall time: a time line.

Runs ``dvfs init``, ``dvfs add FILE`` and ``dvfs commit`` in a fresh repository under
``--workdir`` and samples, every ``--interval`` seconds while each runs:

- ``/proc/diskstats`` of the device the repository is on: the share of the interval the
  device was busy (``io_ticks``) and the MB written;
- ``/proc/PID/task/*/stat``: the CPU time of each thread of the command (clock ticks,
  so an interval of 10 ms sees 0 or 1 tick per thread; the rows add them up).

It prints one row per ``--bucket`` seconds (disk busy, MB/s written, cores used by the
command), then per command: wall, CPU (user+sys) and utilisation, the time to the first
write and how long the disk stood idle between the first write and the end; per
thread, its CPU and when it was busy. The ``dd oflag=direct`` floor of the same bytes
(``floor.py``) is measured in the same run, before the commands. The disk and the CPUs
are shared: other work on the machine shows up as busy disk and missing cores, so the
load average is printed with the figures.

    python benchmarks/add_timeline.py --workdir /tmp/add-timeline --file big.bin
"""

from __future__ import annotations

import argparse
import contextlib
import itertools
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from floor import dd_direct, load
from tools import Dvfs, dvfs_command

TICK = os.sysconf("SC_CLK_TCK")


def disk_line(dev: int) -> tuple[str, ...] | None:
    """The /proc/diskstats fields of device ``dev`` (None if it has no line)."""
    major, minor = os.major(dev), os.minor(dev)
    with open("/proc/diskstats") as fh:
        for line in fh:
            f = line.split()
            if int(f[0]) == major and int(f[1]) == minor:
                return tuple(f)
    return None


def disk_sample(dev: int) -> tuple[int, int]:
    """(milliseconds the device has been busy, sectors written) so far."""
    f = disk_line(dev)
    return (int(f[12]), int(f[9])) if f is not None else (0, 0)


def thread_ticks(pid: int) -> dict[int, int]:
    """Clock ticks (user + system) each thread of ``pid`` has used so far."""
    out: dict[int, int] = {}
    with os.scandir(f"/proc/{pid}/task") as it:
        for entry in it:
            try:
                with open(f"/proc/{pid}/task/{entry.name}/stat") as fh:
                    fields = fh.read().rpartition(")")[2].split()
            except OSError:
                continue  # the thread ended meanwhile
            out[int(entry.name)] = int(fields[11]) + int(fields[12])
    return out


@dataclass
class Sample:
    t: float
    busy_ms: int
    sectors: int
    ticks: dict[int, int]


@dataclass
class Trace:
    argv: list[str]
    pid: int = 0
    wall: float = 0.0
    cpu: float = 0.0
    samples: list[Sample] = field(default_factory=list)


def traced(argv: list[str], cwd: Path, env: dict[str, str], dev: int, interval: float) -> Trace:
    """Run ``argv`` in ``cwd``, sampling the disk and its threads every ``interval``."""
    trace = Trace(argv)
    started = time.perf_counter()
    before = os.times()
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=subprocess.DEVNULL)
    trace.pid = proc.pid
    ticks: dict[int, int] = {}
    while proc.poll() is None:
        busy, sectors = disk_sample(dev)
        with contextlib.suppress(OSError):  # (the process ended between poll and scandir)
            ticks = {**ticks, **thread_ticks(proc.pid)}  # (ended threads keep their last)
        trace.samples.append(Sample(time.perf_counter() - started, busy, sectors, dict(ticks)))
        time.sleep(interval)
    busy, sectors = disk_sample(dev)
    trace.wall = time.perf_counter() - started
    trace.samples.append(Sample(trace.wall, busy, sectors, dict(ticks)))
    after = os.times()
    trace.cpu = (after.children_user - before.children_user) + (
        after.children_system - before.children_system
    )
    if proc.returncode != 0:
        raise SystemExit(f"{' '.join(argv)} failed with exit code {proc.returncode}")
    return trace


def report(trace: Trace, bucket: float) -> None:
    """Print the time line of one command and its summary."""
    s = trace.samples
    print(f"\n$ {' '.join(trace.argv)}")
    print("     t   disk busy   MB/s written   cores")
    edge, first = 0.0, 0
    for i, smp in enumerate(s):
        if smp.t < edge + bucket and i != len(s) - 1:
            continue
        a, b = s[first], smp
        dt = max(b.t - a.t, 1e-9)
        cores = (sum(b.ticks.values()) - sum(a.ticks.values())) / TICK / dt
        print(
            f"{a.t:6.2f}   {min(1.0, (b.busy_ms - a.busy_ms) / 1000 / dt):8.0%}   "
            f"{(b.sectors - a.sectors) * 512 / 1e6 / dt:12.0f}   {cores:5.2f}"
        )
        edge, first = smp.t, i
    writes = [x for x, y in itertools.pairwise(s) if y.sectors > x.sectors]
    idle = sum(
        y.t - x.t
        for x, y in itertools.pairwise(s)
        if writes and x.t >= writes[0].t and y.busy_ms == x.busy_ms
    )
    first_write = f"{writes[0].t:.2f} s" if writes else "none"
    print(
        f"wall {trace.wall:.2f} s, CPU {trace.cpu:.2f} s (user+sys), utilisation "
        f"{trace.cpu / trace.wall:.2f}; first write to the device (anyone's) at "
        f"{first_write}, idle {idle:.2f} s after it"
    )
    start: dict[int, float] = {}
    end: dict[int, float] = {}
    for x, y in itertools.pairwise(s):
        for tid, n in y.ticks.items():
            if n > x.ticks.get(tid, 0):
                start.setdefault(tid, x.t)
                end[tid] = y.t
    for tid, n in sorted(s[-1].ticks.items(), key=lambda kv: -kv[1]):
        if n:
            name = "main" if tid == trace.pid else str(tid)
            print(
                f"  thread {name}: {n / TICK:.2f} CPU-s, busy from {start.get(tid, 0):.2f} "
                f"to {end.get(tid, 0):.2f} s"
            )


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    ap.add_argument("--workdir", type=Path, required=True)
    ap.add_argument("--file", type=Path, required=True, help="the large file to add")
    ap.add_argument("--dvfs", help='dvfs command (default: "dvfs" on PATH, else this checkout)')
    ap.add_argument("--interval", type=float, default=0.01)
    ap.add_argument("--bucket", type=float, default=0.1)
    args = ap.parse_args()
    repo = args.workdir / "timeline-repo"
    # As bench_local.py runs it: a ``-m vfs.cli`` command imports this checkout, whose
    # modules are compiled to bytecode first (see tools.Dvfs).
    tool = Dvfs(repo, dict(os.environ), dvfs_command(args.dvfs))
    dvfs, env = tool.command, tool.env
    shutil.rmtree(repo, ignore_errors=True)
    repo.mkdir(parents=True)
    target = repo / args.file.name
    try:
        os.link(args.file, target)
    except OSError:
        shutil.copyfile(args.file, target)
    dev = os.stat(repo).st_dev
    if disk_line(dev) is None:
        print(f"no /proc/diskstats line for device {os.major(dev)}:{os.minor(dev)}")
    try:
        tool.compile_bytecode()
        subprocess.run([*dvfs, "init"], cwd=repo, env=env, check=True, stdout=subprocess.DEVNULL)
        print(f"{load()}")
        size = target.stat().st_size
        dd = dd_direct(target, repo)
        print(f"floor: dd oflag=direct of {size / 2**20:.0f} MiB {dd:.2f} s")
        add = traced([*dvfs, "add", target.name], repo, env, dev, args.interval)
        commit = traced([*dvfs, "commit", "-m", "timeline"], repo, env, dev, args.interval)
        for t in (add, commit):
            report(t, args.bucket)
        wall, cpu = add.wall + commit.wall, add.cpu + commit.cpu
        print(
            f"\nadd+commit {wall:.2f} s = {wall / dd:.2f} x the dd floor {dd:.2f} s; "
            f"CPU {cpu:.2f} s, utilisation {cpu / wall:.2f}; {load()}"
        )
    finally:
        shutil.rmtree(repo, ignore_errors=True)


if __name__ == "__main__":
    main()
