"""dvfs against DVC on one machine, step by step, on identical copies of the same data.

    python benchmarks/bench_local.py [--workdir DIR] [--dvfs CMD] [--scale F] [--runs N] [--keep]

Steps, each run for both tools (dvfs first in odd runs, DVC first in even ones, so that
neither always meets what the other just left behind: freed inodes, dirty pages, a busy
disk): add+commit of 20,000 small files; status
with nothing changed (first run, then the median of several); add+commit of a 1 GiB
file; checkout of everything after deleting it; re-add+commit after editing 64 KiB of
the big file and appending 4 KiB. For each it measures wall time and peak RSS of the
tool's processes and the size of its content store, prints a table with dvfs/DVC
ratios and the targets (issue 20's), and writes the figures as JSON into the work
directory. ``--runs N`` runs the whole sequence N times, each on fresh copies in a
directory of its own, and reports the median of each figure (the targets are judged on
the medians; every run's figures are in the JSON too).

At the top it prints the CPU model and its single-core BLAKE3 throughput; beside the
1 GiB add+commit, the physical floor of storing those bytes (``floor.py``: the larger
of a ``dd oflag=direct`` of them into the store's filesystem and one single-core
BLAKE3 pass) and each tool's ratio to it, with dvfs's CPU use (user+sys / wall).

It prints and never fails on a timing: benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from floor import Floor, blake3_rate, cpu_model, floor, load
from measure import (
    Measurement,
    check_drop_caches,
    disk_usage,
    rss_floor,
    run_all,
    settle,
    unwind_on_sigterm,
    warm_memory,
)
from results import (
    DVC,
    DVFS,
    Row,
    Target,
    ToolStep,
    human,
    median_rows,
    ratio,
    table,
    target_lines,
    targets,
)
from tools import REPO_ROOT, Dvc, Dvfs, SetupError, Tool, dvfs_command, ensure_dvc
from workload import Workload, edit_big, ensure_data, tree_digest

TRACKED = ("small", "big.bin")


class Bench:
    """One run: the tools, the options, and the rows and notes gathered so far."""

    def __init__(
        self,
        tools: list[Tool],
        work: Workload,
        drop_caches: bool,
        pristine: str,
        free_before_checkout: bool = False,
    ):
        self.tools = tools
        self.work = work
        self.drop_caches = drop_caches
        self.pristine = pristine
        self.free_before_checkout = free_before_checkout
        self.rows: list[Row] = []
        self.notes: list[str] = []
        self.floor: Floor | None = None

    def timed(self, tool: Tool, commands: list[list[str]]) -> Measurement:
        """Settle the disk (and drop caches if asked), then run and measure ``commands``."""
        settle(self.drop_caches)
        return run_all(commands, tool.root, tool.env)

    def step(self, key: str, title: str, store: str, one: Callable[[Tool], ToolStep]) -> Row:
        """Run one step for each tool in turn (in the run's order) and keep its row."""
        row = Row(key, title, store, {})
        for tool in self.tools:
            try:
                result = one(tool)
            except OSError as exc:  # e.g. a file the tool should have restored is missing
                result = ToolStep(0.0, 0, 0, 0, error=f"{type(exc).__name__}: {exc}")
            row.tools[tool.name] = result
            if result.error:
                self.notes.append(f"{tool.name}, {title}: {result.error}")
            self.notes += [f"{tool.name}, {title}: {n}" for n in result.notes]
            state = " FAILED" if result.error else ""
            print(f"  {title:<34} {tool.name:<5} {result.wall_s:8.2f} s{state}", flush=True)
        self.rows.append(row)
        return row

    def add_commit(self, path: str, message: str) -> Callable[[Tool], ToolStep]:
        """A step body: add ``path`` and commit it."""

        def one(tool: Tool) -> ToolStep:
            before = disk_usage(tool.store())[0]
            m = self.timed(tool, tool.add_commit(path, message))
            return ToolStep.of(m, before, disk_usage(tool.store())[0])

        return one

    def status(self, times: int, say: bool) -> Callable[[Tool], ToolStep]:
        """A step body: status ``times`` times, reported as the median; ``say``: note output."""

        def one(tool: Tool) -> ToolStep:
            runs = [self.timed(tool, [tool.status()]) for _ in range(times)]
            result = ToolStep.median_of(runs, disk_usage(tool.store())[0])
            last = runs[-1].procs[-1].output_tail.strip().splitlines()
            if say:
                result.notes.append(f"status said: {last[-1] if last else '(nothing)'}")
            return result

        return one

    def checkout(self, tool: Tool) -> ToolStep:
        """A step body: take the tracked data away, then check everything out again.

        The data is moved out of the repository (into ``removed_dir``) and freed after
        the step, not deleted right before the timed checkout, unless
        ``free_before_checkout``. On ext4 without a journal, new inodes skip any inode
        freed in the last 60 s (360 s if its table block is dirty), scanning past each
        one, so creating 20,000 files right after deleting 20,000 spends seconds of
        system time in the inode allocator, for either tool. Journaled ext4, XFS and
        btrfs reuse freed inodes at once; moving the data aside measures the checkout
        as it runs there, and the same way for both tools.
        """
        for name in TRACKED:
            target = tool.root / name
            if self.free_before_checkout:
                if target.is_dir():
                    shutil.rmtree(target)
                else:
                    target.unlink(missing_ok=True)
            elif target.exists() or target.is_symlink():
                aside = removed_dir(tool)
                aside.mkdir(exist_ok=True)
                target.rename(aside / name)
        before = disk_usage(tool.store())[0]
        m = self.timed(tool, [tool.checkout()])
        notes = []
        fallback = tool.checkout_fallback()
        if m.failed and fallback:
            notes.append(
                f"`{' '.join(tool.checkout())}` refused after a plain delete "
                f"({m.failed.output_tail.strip()}); timed `{' '.join(fallback)}` instead"
            )
            m = self.timed(tool, [fallback])
        result = ToolStep.of(m, before, disk_usage(tool.store())[0])
        restored = tree_digest(tool.root, TRACKED) == self.pristine
        notes.append("restored data verified" if restored else "RESTORED DATA DIFFERS")
        result.notes = notes
        return result

    def recommit(self, tool: Tool) -> ToolStep:
        """A step body: edit the big file in place, then add and commit it again."""
        edit_big(tool.root / "big.bin", self.work.seed)
        return self.add_commit("big.bin", "edit big")(tool)


def removed_dir(tool: Tool) -> Path:
    """Where the checkout step moves ``tool``'s data: beside its repository, not in it."""
    return tool.root.parent / f"{tool.root.name}-removed"


def copy_data(data: Path, dest: Path) -> None:
    """An independent copy (no hard links, no reflinks) of the tracked data into ``dest``."""
    dest.mkdir(parents=True)
    for name in TRACKED:
        subprocess.run(
            ["cp", "-a", "--reflink=never", str(data / name), str(dest / name)], check=True
        )


def read_through(root: Path) -> int:
    """Read every tracked file under ``root`` once (into the page cache); bytes read.

    Touching free memory (``warm_memory``) evicts part of the page cache, and with it
    part of the copies just made: without this, "warm" runs read some files from disk
    and the first tool to read them pays for it.
    """
    total = 0
    for name in TRACKED:
        top = root / name
        paths = [top] if top.is_file() else sorted(p for p in top.rglob("*") if p.is_file())
        for p in paths:
            with open(p, "rb") as f:
                while chunk := f.read(1 << 20):
                    total += len(chunk)
    return total


def machine() -> dict[str, object]:
    """What the run ran on, for the JSON."""
    mem = ""
    with open("/proc/meminfo") as f:
        mem = f.readline().split(":", 1)[1].strip()
    return {
        "python": sys.version.split()[0],
        "kernel": platform.release(),
        "cpus": os.cpu_count(),
        "memory": mem,
    }


def end_sizes(tool: Tool) -> dict[str, int]:
    """The store's size at the end, on disk and apparent, and the whole tool directory's."""
    on_disk, apparent = disk_usage(tool.store())
    return {
        "store_on_disk": on_disk,
        "store_apparent": apparent,
        "tool_dir_on_disk": disk_usage(tool.metadata())[0],
    }


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    """The command line."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "work")
    p.add_argument("--dvfs", help='dvfs command (default: "dvfs" on PATH, else this checkout)')
    p.add_argument("--keep", action="store_true", help="keep the data and both repositories")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the data, e.g. 0.05")
    p.add_argument("--seed", type=int, default=Workload.seed)
    p.add_argument("--status-runs", type=int, default=5, help="status runs for the median")
    p.add_argument(
        "--runs", type=int, default=1, help="run the whole sequence N times; report medians"
    )
    p.add_argument(
        "--drop-caches", action="store_true", help="drop the page cache before each timed step"
    )
    p.add_argument(
        "--free-before-checkout",
        action="store_true",
        help="delete the data right before the checkout step instead of moving it aside",
    )
    p.add_argument(
        "--no-warm-memory",
        dest="warm_memory",
        action="store_false",
        help="skip touching free memory once before the steps (see measure.warm_memory)",
    )
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark ``--runs`` times, print the table and targets, write the JSON."""
    args = parse_args(argv)
    if args.runs < 1:
        raise SystemExit("--runs must be at least 1")
    unwind_on_sigterm()
    if args.drop_caches:
        check_drop_caches()
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    work = Workload.scaled(args.scale, args.seed)
    data, runs, previous = workdir / "data", workdir / "run", workdir / "run-previous"
    try:
        ensure_dvc(workdir / "dvc-venv")
        started = time.perf_counter()
        if ensure_data(data, work):
            print(f"generated data in {time.perf_counter() - started:.1f} s", flush=True)
        pristine = tree_digest(data, TRACKED)
        if runs.exists():  # a kept run: freed at the end (see Bench.checkout for why)
            shutil.rmtree(previous, ignore_errors=True)
            runs.rename(previous)
        dvfs_cmd = dvfs_command(args.dvfs)
        rate = blake3_rate(Dvfs(runs / "dvfs", dict(os.environ), dvfs_cmd).interpreter())
        print(f"CPU: {cpu_model()}", flush=True)
        print(f"BLAKE3, one core: {rate / 1e9:.2f} GB/s (CPU time, best of 3)", flush=True)
        print(f"machine: {load()}", flush=True)
        machine_info = {"cpu": cpu_model(), "blake3_one_core_bytes_per_s": rate}
        benches = []
        for n in range(1, args.runs + 1):
            # Each run in a directory of its own, all freed at the end: see Bench.checkout.
            here = runs if args.runs == 1 else runs / str(n)
            if args.runs > 1:
                print(f"\nrun {n} of {args.runs}: {load()}", flush=True)
            benches.append(one_run(args, work, data, here, workdir, dvfs_cmd, pristine, n))
        report(benches, work, args, workdir, machine_info)
    except SetupError as exc:
        raise SystemExit(f"set-up failed: {exc}") from None
    finally:
        shutil.rmtree(previous, ignore_errors=True)
        if not args.keep:
            shutil.rmtree(runs, ignore_errors=True)
            shutil.rmtree(data, ignore_errors=True)


def one_run(
    args: argparse.Namespace,
    work: Workload,
    data: Path,
    runs: Path,
    workdir: Path,
    dvfs_cmd: list[str],
    pristine: str,
    n: int = 1,
) -> Bench:
    """Set up fresh copies and repositories under ``runs`` and run every step once, dvfs
    first in an odd run ``n`` and DVC first in an even one."""
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(runs)}
    dvfs = Dvfs(runs / "dvfs", env, dvfs_cmd)
    dvc = Dvc(runs / "dvc", env, workdir / "dvc-venv")
    for tool in (dvfs, dvc):
        copy_data(data, tool.root)
        tool.setup()
    if args.warm_memory:
        print(f"warmed {human(warm_memory())} of free memory", flush=True)
    if not args.drop_caches:
        read = sum(read_through(tool.root) for tool in (dvfs, dvc))
        print(f"read {human(read)} of data into the page cache", flush=True)
    order: list[Tool] = [dvfs, dvc] if n % 2 else [dvc, dvfs]
    print(f"order: {order[0].name} first in each step", flush=True)
    bench = Bench(order, work, args.drop_caches, pristine, args.free_before_checkout)
    run_steps(bench, work, args.status_runs, free_removed=args.runs == 1)
    return bench


def run_steps(bench: Bench, work: Workload, status_runs: int, free_removed: bool = True) -> None:
    """Every step, in order; the data the checkout moved aside is freed if ``free_removed``
    (else with the run's directory, at the end of all the runs)."""
    print(f"running: {work.files} small files, big file {human(work.big_size)}", flush=True)
    bench.step(
        "add_small",
        f"add+commit {work.files} small files",
        "total",
        bench.add_commit("small", "add small"),
    )
    bench.step("status_first", "status, first run after add", "none", bench.status(1, say=False))
    bench.step(
        "status", f"status, median of {status_runs}", "none", bench.status(status_runs, say=True)
    )
    dvfs = next(t for t in bench.tools if t.name == DVFS)
    assert isinstance(dvfs, Dvfs)
    bench.floor = floor(dvfs.root / "big.bin", dvfs.store(), dvfs.interpreter())
    print(f"  physical floor of the big file: {bench.floor.line()}; {load()}", flush=True)
    bench.step(
        "add_big",
        f"add+commit {human(work.big_size)} file",
        "total",
        bench.add_commit("big.bin", "add big"),
    )
    bench.step("checkout", "checkout after deleting all", "total", bench.checkout)
    for tool in bench.tools if free_removed else ():  # once neither tool creates files
        shutil.rmtree(removed_dir(tool), ignore_errors=True)
    bench.step("recommit", "edit big file, re-add+commit", "delta", bench.recommit)


def median_floor(benches: list[Bench]) -> Floor | None:
    """The physical floor over several runs: the median of each of its two figures."""
    floors = [b.floor for b in benches if b.floor is not None]
    if not floors:
        return None
    return Floor(
        floors[0].size,
        statistics.median(f.dd_s for f in floors),
        statistics.median(f.blake3_s for f in floors),
    )


def floor_lines(rows: list[Row], fl: Floor | None, cpus: list[float]) -> tuple[list[str], Target]:
    """The big file's add+commit against its physical floor, and the floor target.

    ``cpus`` is dvfs's CPU time (user+sys) of that step in each run; the median is shown.
    """
    goal = "add+commit big file <= 1.2 x physical floor"
    row = next((r for r in rows if r.key == "add_big"), None)
    if row is None or fl is None or row.tools[DVFS].error:
        return [], Target(goal, "no figure", None)
    a, b = row.tools[DVFS], row.tools[DVC]
    cpu = statistics.median(cpus)
    lines = [
        f"add+commit {human(fl.size)} beside its physical floor {fl.line()}:",
        f"  dvfs {a.wall_s:.2f} s = {a.wall_s / fl.seconds:.2f} x floor "
        f"(CPU {cpu:.2f} s, user+sys / wall {cpu / a.wall_s:.2f})",
    ]
    if not b.error:
        lines.append(f"  DVC  {b.wall_s:.2f} s = {b.wall_s / fl.seconds:.2f} x floor")
        lines.append(f"  dvfs / DVC {ratio(a.wall_s, b.wall_s)}")
    got = a.wall_s / fl.seconds
    return lines, Target(goal, f"{got:.2f} ({a.wall_s:.2f} s vs {fl.seconds:.2f} s)", got <= 1.2)


def big_add_cpu(bench: Bench) -> float | None:
    """dvfs's CPU time (user+sys) adding and committing the big file in one run."""
    row = next((r for r in bench.rows if r.key == "add_big"), None)
    return None if row is None else sum(p.cpu_s for p in row.tools[DVFS].procs)


def report(
    benches: list[Bench],
    work: Workload,
    args: argparse.Namespace,
    workdir: Path,
    machine_info: dict[str, object],
) -> None:
    """Print the table (medians over the runs), the targets and the notes; write the JSON."""
    last = benches[-1]
    rows = median_rows([b.rows for b in benches])
    fl = median_floor(benches)
    ends = {t.name: end_sizes(t) for t in last.tools}
    cpus = [c for b in benches if (c := big_add_cpu(b)) is not None]
    lines, floor_target = floor_lines(rows, fl, cpus or [0.0])
    ts = [floor_target, *targets(rows)]
    print()
    if len(benches) > 1:
        print(f"medians of {len(benches)} runs:")
    print(table(rows))
    if len(benches) > 1:
        for r in rows:
            each = "; ".join(
                f"{t.name} " + " ".join(f"{x:.2f}" for x in r.tools[t.name].samples_s)
                for t in sorted(last.tools, key=lambda t: t.name != DVFS)
            )
            print(f"  {r.title}: {each}")
    if lines:
        print("\n" + "\n".join(lines))
    a, b = ends[DVFS]["store_on_disk"], ends[DVC]["store_on_disk"]
    print(f"\nstore at the end: dvfs {human(a)}, DVC {human(b)}, ratio {ratio(a, b)}")
    floor = rss_floor(workdir, os.environ)
    print(f"peak RSS floor (what `true` reports when spawned like the tools): {floor // 1024} MiB")
    print(f"\nat the end: {load()}")
    print("\ntargets:\n" + target_lines(ts))
    notes = list(dict.fromkeys(n for bench in benches for n in bench.notes))
    if notes:
        print("\nnotes:\n" + "\n".join(f"- {n}" for n in notes))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = workdir / f"bench_local-{stamp}.json"
    doc = {
        "when": stamp,
        "machine": {**machine(), **machine_info},
        "floor": asdict(fl) if fl is not None else None,
        "rss_floor_kib": floor,
        "versions": {t.name: t.version() for t in last.tools},
        "options": {
            "scale": args.scale,
            "runs": args.runs,
            "drop_caches": args.drop_caches,
            "free_before_checkout": args.free_before_checkout,
            "status_runs": args.status_runs,
            "commands": {t.name: t.command for t in last.tools},
        },
        "workload": asdict(work),
        "rows": [asdict(r) for r in rows],  # medians over the runs (the run itself if one)
        "runs": [
            {
                "rows": [asdict(r) for r in bench.rows],
                "floor": asdict(bench.floor) if bench.floor is not None else None,
                "notes": bench.notes,
            }
            for bench in benches
        ],
        "store_end": ends,
        "targets": [asdict(t) for t in ts],
        "notes": notes,
    }
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
