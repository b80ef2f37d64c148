"""Where the time of one ``dvfs diff --rows`` goes, stage by stage, beside DuckDB alone.

    python benchmarks/rowdiff_stages.py REPO OLD NEW PATH [--key id] [--plain A B] [--cold]
                                        [--chunks]

Runs the diff in this process (``vfs.tables.rowdiff.diff_path``, as the CLI calls
it) with a timer around each stage: the copies of the two sides out of the store
(the sniffs begin within them, ``Engine.sniff_early``), each side's copy or read in
place on the thread that makes it, what the sniffing still
takes after them, the fast path's plan and key check, and every engine query (those
run beside another, ``Engine.run_beside``, are timed within the stage that waits for
them: the line join and ``_parts``, where the old file's keys read beside are waited
for, or ``_checked_beside``; ``_collisions`` runs beside the keyed join,
``Engine.call_beside``, its queries within its own line). Each line gives wall and CPU seconds
(the process's CPU time, DuckDB's and the copy's threads included), when it ended
(seconds since the diff began) and the load then. Queries run beside
(``Engine.run_beside``, ``Engine.call_beside``: the old file's keys read, or its
key check) get a line of their own, named by the first, from their start to their
end: its CPU is the process's over that time, shared with what ran beside it.
``--cold`` empties the repository's ``.dvfs/rowcache`` first, for a first diff.
With ``--plain A B`` (the same two versions as plain files, as ``bench_rowdiff.py
--keep`` leaves them), DuckDB alone then reads A, reads both, and runs
``bench_rowdiff.REFERENCE``'s join, in the same
process: the floor each dvfs stage can be held against.

With ``--chunks``, each thread's
chunk work during the copies is summed too: ``ObjectStore.get`` (read, decompress,
verify) and ``Facts.of``, wall time against the thread's own CPU time. Both hold
the GIL only in part (``get`` lets it go to decompress and hash, ``Facts.of`` holds
it throughout), so wall time well above CPU time is a thread waiting for the GIL
(or, on a loaded machine, for a core).

A tool to find the stage to cut next, not a figure of record: the targets are
measured by ``bench_rowdiff.py``. Several runs in a row use the repository's
``.dvfs/rowcache`` (``vfs.tables.checks``): ``--cold`` removes it, to time a first diff.
"""

from __future__ import annotations

import argparse
import os
import shutil
import sys
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))

from vfs.repo.repository import Repository
from vfs.store.objects import ObjectStore
from vfs.tables import engine, rowdiff, source

Stage = tuple[str, float, float, float, float]  # name, wall s, CPU s, end s, load at its end
BEGUN = time.perf_counter()  # what the ends are counted from (main: the diff's start)


@contextmanager
def timer(stages: list[Stage], name: str) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        end = time.perf_counter()
        stages.append(
            (name, end - wall, time.process_time() - cpu, end - BEGUN, os.getloadavg()[0])
        )


def timed(stages: list[Stage], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with timer(stages, name):
            return fn(*args, **kwargs)

    return wrapper


def show(stages: list[Stage]) -> None:
    print(f"  {'stage':<64} {'wall':>7} {'CPU':>7} {'end':>7} {'load':>5}")
    for name, wall, cpu, end, load in stages:
        print(f"  {name[:64]:<64} {wall:7.3f} {cpu:7.3f} {end:7.3f} {load:5.2f}")


def chunk_work(work: dict[tuple[str, str], list[float]]) -> None:
    """Sum, by thread, the wall and thread CPU time of each chunk's fetch and facts."""
    lock = threading.Lock()

    def summed(what: str, fn: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any) -> Any:
            wall, cpu = time.perf_counter(), time.thread_time()
            try:
                return fn(*args)
            finally:
                row = [time.perf_counter() - wall, time.thread_time() - cpu, 1.0]
                with lock:
                    got = work.setdefault((what, threading.current_thread().name), [0, 0, 0])
                    for i, v in enumerate(row):
                        got[i] += v

        return wrapper

    ObjectStore.get = summed("get  ", ObjectStore.get)  # type: ignore[method-assign]
    facts_of = source.Facts.of
    source.Facts.of = summed("facts", facts_of)  # type: ignore[method-assign]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo", type=Path)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("path")
    ap.add_argument("--key", default="id", help="comma-separated; '' for none")
    ap.add_argument("--plain", nargs=2, type=Path, metavar=("A", "B"))
    ap.add_argument("--cold", action="store_true", help="empty .dvfs/rowcache first")
    ap.add_argument("--chunks", action="store_true", help="sum each thread's chunk work")
    args = ap.parse_args()
    if args.cold:
        shutil.rmtree(Repository.find(args.repo.resolve()).dir / "rowcache", ignore_errors=True)

    stages: list[Stage] = []
    stages_of = (
        "_copy_sides", "fast_plan", "line_parts", "_parts", "key_totals", "_checked_beside",
        "_collisions", "keyed",
    )  # fmt: skip
    for name in (*stages_of, "unkeyed"):
        setattr(rowdiff, name, timed(stages, name, getattr(rowdiff, name)))
    for name, at in (("from_version", 2), ("from_tree_file", 3)):  # where the label is
        made = getattr(rowdiff, name)

        def side(*rest: Any, _made: Any = made, _name: str = name, _at: int = at, **kw: Any) -> Any:
            # each copy, or file read in place, on the thread that makes it
            with timer(stages, f"  {_name} ({rest[_at]})"):
                return _made(*rest, **kw)

        setattr(rowdiff, name, side)
    run = engine.Engine.run

    def query(self: engine.Engine, sql: str) -> list[tuple[Any, ...]]:
        with timer(stages, "  sql: " + " ".join(sql.split())):
            return run(self, sql)

    engine.Engine.run = query  # type: ignore[method-assign]
    beside = engine.Engine.call_beside

    def begun(self: engine.Engine, fn: Callable[[Any], Any]) -> Future[Any]:
        # run_beside goes through call_beside: one line for each, named by its first query
        wall, cpu = time.perf_counter(), time.process_time()
        first: list[str] = []

        def watched(run: Callable[[str], Any]) -> Any:
            def recorded(sql: str) -> Any:
                first.append(sql)
                return run(sql)

            return fn(recorded)

        def ended(_: object) -> None:
            end = time.perf_counter()
            load = os.getloadavg()[0]
            name = "  beside: " + " ".join((first[0] if first else "").split())
            stages.append((name, end - wall, time.process_time() - cpu, end - BEGUN, load))

        job = beside(self, watched)
        job.add_done_callback(ended)
        return job

    engine.Engine.call_beside = begun  # type: ignore[method-assign]
    pair = engine.Engine.sniff_pair

    def sniffs(self: engine.Engine, *rest: Any, **named: Any) -> Any:
        # the sniffs begin inside _copy_sides (Engine.sniff_early, on their own cursors,
        # not timed apart): this is what they still take once both sides are made
        with timer(stages, "sniff_pair (what the sniffs begun early still take)"):
            return pair(self, *rest, **named)

    engine.Engine.sniff_pair = sniffs  # type: ignore[method-assign]
    work: dict[tuple[str, str], list[float]] = {}  # (what, thread): [wall, CPU, calls]
    if args.chunks:
        chunk_work(work)
    key = [k for k in args.key.split(",") if k]
    print(f"load {os.getloadavg()[0]:.2f}; dvfs diff {args.old} {args.new} {args.path} --rows")
    global BEGUN
    BEGUN = time.perf_counter()
    with timer(stages, "whole diff (repository open to answer)"):
        repo = Repository.find(args.repo.resolve())
        result = rowdiff.diff_path(
            repo.history, repo.store, repo.chunker, repo.root, repo.dir,
            [args.old, args.new], os.fsencode(args.path), key, 20,
        )  # fmt: skip
    show(stages)
    for (what, thread), (wall, cpu, calls) in sorted(work.items()):
        print(f"  {what} on {thread:<32} {int(calls):5d} calls {wall:7.3f} s {cpu:7.3f} CPU-s")
    print(
        f"  method {result.method}: {result.added:,} added, {result.removed:,} removed, "
        f"{result.changed:,} changed, {result.unchanged:,} unchanged"
    )
    if args.plain:
        engine.Engine.run = run  # type: ignore[method-assign]
        import _duckdb as duckdb

        a, b = (str(p.resolve()) for p in args.plain)
        con = duckdb.connect(":memory:")
        alone: list[Stage] = []
        with timer(alone, "DuckDB: read A (count)"):
            con.execute(f"SELECT count(*) FROM read_csv('{a}')").fetchall()
        with timer(alone, "DuckDB: read A and B (count)"):
            con.execute(
                f"SELECT (SELECT count(*) FROM read_csv('{a}')), "
                f"(SELECT count(*) FROM read_csv('{b}'))"
            ).fetchall()
        cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_csv('{a}')").fetchall()]
        differ = " OR ".join(f'o."{c}" IS DISTINCT FROM n."{c}"' for c in cols if c != "id")
        with timer(alone, "DuckDB: the reference's join (read, join, keep differences)"):
            con.execute(
                "CREATE TEMP TABLE d AS SELECT o.*, n.* FROM "
                f"read_csv('{a}') o FULL OUTER JOIN read_csv('{b}') n ON o.id = n.id "
                f"WHERE o.id IS NULL OR n.id IS NULL OR {differ}"
            )
        con.close()
        show(alone)
    return 0


if __name__ == "__main__":
    sys.exit(main())
