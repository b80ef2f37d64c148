"""dvfs gc, store prune and remote gc against DVC's gc, after 5 versions of the data.

    python benchmarks/bench_gc.py [--workdir DIR] [--dvfs CMD] [--scale F] [--keep]

The data is the small files of ``workload.py`` (no big file). Version 1 is them as
generated; versions 2 to 5 each replace half of them (every other file, alternating
halves, new seeded bytes of the same size). Each tool records and pushes every version
(not timed) to its own bucket on one local SeaweedFS, then the timed steps run, dvfs
then DVC:

- **local gc**: ``dvfs gc`` against ``dvc gc -w -f``. They do not free the same
  things: dvfs keeps every version a branch reaches (its history), so ``dvfs gc`` frees
  only unreachable objects (none here), while DVC keeps only what the workspace uses.
- **local store prune**: the dvfs command that does what ``dvc gc -w -f`` does to the
  local store: ``dvfs store prune --keep-last 1`` drops the data of versions 1-4 (the
  remote holds it; the versions stay in ``log``). DVC's figure is its gc's again.
- **remote gc**: ``dvfs gc --remote origin --grace 0`` against ``dvc gc -w -c -f``. A
  dvfs remote's old versions are history too, so for dvfs the five versions are pushed
  as five unrelated branches (each recorded in a repository of its own, to a second
  bucket) and four of the branches are then removed from the bucket, as a deleted
  remote branch would be; the gc frees their packs that nothing else uses. dvfs deletes
  whole dead packs only (a pack with a live object stays whole on a remote).

For each: wall time, peak RSS, the store (or bucket) before and after, bytes freed.
It prints a table with dvfs/DVC ratios, the issue's targets, and the load average, and
writes the figures as JSON into the work directory. It never fails on a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import time
from collections.abc import Callable
from dataclasses import asdict
from pathlib import Path

from bench_local import machine
from bench_remote import bucket_bytes
from measure import Measurement, disk_usage, run, settle, unwind_on_sigterm
from results import DVC, DVFS, Row, ToolStep, human, render
from seaweed import SeaweedFS
from tools import REPO_ROOT, Dvc, Dvfs, SetupError, Tool, dvfs_command, ensure_dvc, must
from workload import Workload, ensure_data, small_path

from tests.support.loopback import AWS_VARS_TO_CLEAR

VERSIONS = 5
BUCKET = {DVFS: "dvfs-gc", DVC: "dvc-gc"}
SOLO_BUCKET = "dvfs-gc-branches"  # the five versions as unrelated branches


def replace_half(root: Path, work: Workload, version: int) -> None:
    """Version ``version`` (2..5): every other small file gets new bytes of its size."""
    rng = random.Random(work.seed * 100 + version)
    for i in range(version % 2, work.files, 2):
        path = root / small_path(i, work.dirs)
        path.write_bytes(rng.randbytes(path.stat().st_size))


def copy_small(data: Path, dest: Path) -> None:
    dest.mkdir(parents=True)
    shutil.copytree(data / "small", dest / "small", copy_function=shutil.copy2)


def store_size(tool: Tool) -> int:
    return disk_usage(tool.store())[1]


def measured(argv: list[str], tool: Tool, size: Callable[[], int]) -> ToolStep:
    settle(False)
    before = size()
    m = Measurement([run(argv, tool.root, tool.env)])
    return ToolStep.of(m, before, size())


def dvfs_solo(tool: Dvfs, version: int, server: SeaweedFS) -> None:
    """Record the working tree as version ``version`` of a repository of its own, and
    push it to the solo bucket as branch ``b<version>`` (the main repository's
    ``.dvfs`` is moved aside meanwhile)."""
    store, aside = tool.root / ".dvfs", tool.root.parent / "dvfs-chain-store"
    store.rename(aside)
    try:
        cmd, root, env = tool.command, tool.root, tool.env
        must([*cmd, "init", "--branch", f"b{version}"], root, env)
        must([*cmd, "remote", "add", "origin", f"s3://{SOLO_BUCKET}/dvfs", "--endpoint-url",
              server.endpoint], root, env)  # fmt: skip
        for argv in tool.add_commit("small", f"version {version}"):
            must(argv, root, env)
        must([*cmd, "push"], root, env)
        if version == VERSIONS:  # kept: the remote gc runs in it
            store.rename(tool.root.parent / "dvfs-solo")
        else:
            shutil.rmtree(store)
    finally:
        shutil.rmtree(store, ignore_errors=True)
        aside.rename(store)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "work")
    p.add_argument("--dvfs", help='dvfs command (default: "dvfs" on PATH, else this checkout)')
    p.add_argument("--keep", action="store_true", help="keep the data and repositories")
    p.add_argument("--scale", type=float, default=1.0, help="shrink the data, e.g. 0.05")
    p.add_argument("--seed", type=int, default=Workload.seed)
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark, print the table and targets, write the JSON."""
    args = parse_args(argv)
    unwind_on_sigterm()
    workdir: Path = args.workdir.resolve()
    workdir.mkdir(parents=True, exist_ok=True)
    work = Workload.scaled(args.scale, args.seed)
    work = Workload(work.files, work.dirs, work.min_size, work.max_size, 0, work.seed)
    data, runs = workdir / "data-gc", workdir / "run-gc"
    server = SeaweedFS(runs / "seaweedfs")
    try:
        ensure_dvc(workdir / "dvc-venv", "s3")
        ensure_data(data, work)
        shutil.rmtree(runs, ignore_errors=True)
        server.start()
        env = {k: v for k, v in os.environ.items() if k not in AWS_VARS_TO_CLEAR}
        env.update(server.env())
        env["GIT_CEILING_DIRECTORIES"] = str(runs)
        dvfs = Dvfs(runs / "dvfs", env, dvfs_command(args.dvfs))
        dvc = Dvc(runs / "dvc", env, workdir / "dvc-venv")
        for bucket in (*BUCKET.values(), SOLO_BUCKET):
            server.make_bucket(bucket)
        for tool in (dvfs, dvc):
            copy_small(data, tool.root)
            tool.setup()
        must([*dvfs.command, "remote", "add", "origin", f"s3://{BUCKET[DVFS]}/dvfs",
              "--endpoint-url", server.endpoint], dvfs.root, dvfs.env)  # fmt: skip
        for argv in (
            [*dvc.command, "remote", "add", "-d", "s3remote", f"s3://{BUCKET[DVC]}/dvc"],
            [*dvc.command, "remote", "modify", "s3remote", "endpointurl", server.endpoint],
        ):
            must(argv, dvc.root, dvc.env)
        print(f"{work.files} small files, {VERSIONS} versions", flush=True)
        for version in range(1, VERSIONS + 1):
            for tool in (dvfs, dvc):
                if version > 1:
                    replace_half(tool.root, work, version)
                for argv in [*tool.add_commit("small", f"v{version}"), [*tool.command, "push"]]:
                    must(argv, tool.root, tool.env)
            dvfs_solo(dvfs, version, server)
            print(f"  version {version} recorded and pushed by both", flush=True)
        for version in range(1, VERSIONS):  # the four old branches leave the solo bucket
            server.delete_object(SOLO_BUCKET, f"dvfs/refs/heads/b{version}")
        rows, notes = steps(dvfs, dvc, server, runs)
        report(rows, notes, work, args, workdir, dvfs, dvc)
    except SetupError as exc:
        raise SystemExit(f"set-up failed: {exc}") from None
    finally:
        server.stop()
        if not args.keep:
            shutil.rmtree(runs, ignore_errors=True)
            shutil.rmtree(data, ignore_errors=True)


def steps(dvfs: Dvfs, dvc: Dvc, server: SeaweedFS, runs: Path) -> tuple[list[Row], list[str]]:
    notes = []
    gc_plain = measured([*dvfs.command, "gc"], dvfs, lambda: store_size(dvfs))
    dvc_gc = measured([*dvc.command, "gc", "-w", "-f"], dvc, lambda: store_size(dvc))
    prune = measured([*dvfs.command, "store", "prune", "--keep-last", "1"], dvfs,
                     lambda: store_size(dvfs))  # fmt: skip
    solo = Dvfs(runs / "dvfs-solo-tree", dvfs.env, dvfs.command)
    solo.root.mkdir()
    (runs / "dvfs-solo").rename(solo.root / ".dvfs")
    remote = measured([*dvfs.command, "gc", "--remote", "origin", "--grace", "0"], solo,
                      lambda: bucket_bytes(server, SOLO_BUCKET))  # fmt: skip
    dvc_remote = measured([*dvc.command, "gc", "-w", "-c", "-f"], dvc,
                          lambda: bucket_bytes(server, BUCKET[DVC]))  # fmt: skip
    rows = [
        Row("gc", "local gc (dvfs gc)", "delta", {DVFS: gc_plain, DVC: dvc_gc}),
        Row("prune", "local: dvfs store prune --keep-last 1", "delta", {DVFS: prune, DVC: dvc_gc}),
        Row("remote", "remote gc", "delta", {DVFS: remote, DVC: dvc_remote}),
    ]
    for r in rows:
        for name, s in r.tools.items():
            if s.error:
                notes.append(f"{name}, {r.title}: {s.error}")
    notes.append(
        "dvfs gc keeps every version on a branch's history, so it has nothing to free here; "
        "store prune is the dvfs command that drops old versions' data locally"
    )
    return rows, notes


def report(
    rows: list[Row], notes: list[str], work: Workload, args: argparse.Namespace,
    workdir: Path, dvfs: Dvfs, dvc: Dvc,
) -> None:  # fmt: skip
    header = ["step", "dvfs s", "DVC s", "ratio", "dvfs before", "dvfs freed", "DVC before",
              "DVC freed"]  # fmt: skip
    grid = [header]
    for r in rows:
        a, b = r.tools[DVFS], r.tools[DVC]
        ratio = f"{a.wall_s / b.wall_s:.2f}" if b.wall_s and not (a.error or b.error) else "-"
        grid.append([
            r.title, f"{a.wall_s:.2f}", f"{b.wall_s:.2f}", ratio,
            human(a.store_bytes - a.store_delta), human(-a.store_delta),
            human(b.store_bytes - b.store_delta), human(-b.store_delta),
        ])  # fmt: skip
    print()
    print(render(grid))
    load = os.getloadavg()
    print(f"\nload average: {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    by = {r.key: r for r in rows}
    for key, goal, limit in (("prune", "local", 0.5), ("remote", "remote", 0.5)):
        a, b = by[key].tools[DVFS], by[key].tools[DVC]
        ok = b.wall_s > 0 and a.wall_s <= limit * b.wall_s
        print(f"target: {goal} <= {limit} x DVC: {a.wall_s:.2f} s vs {b.wall_s:.2f} s: "
              f"{'met' if ok else 'NOT met'}")  # fmt: skip
    if notes:
        print("\nnotes:\n" + "\n".join(f"- {n}" for n in notes))
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    out = workdir / f"bench_gc-{stamp}.json"
    doc = {
        "when": stamp, "machine": machine(), "load": load,
        "versions": {DVFS: dvfs.version(), DVC: dvc.version()},
        "options": {"scale": args.scale}, "workload": asdict(work),
        "rows": [{"key": r.key, "title": r.title,
                  "tools": {n: {k: v for k, v in asdict(s).items() if k != "procs"}
                            for n, s in r.tools.items()}} for r in rows],
        "notes": notes,
    }  # fmt: skip
    out.write_text(json.dumps(doc, indent=2) + "\n")
    print(f"\nresults: {out}")


if __name__ == "__main__":
    main()
