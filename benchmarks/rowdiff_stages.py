"""Where the time of one ``dvfs diff --rows`` goes, stage by stage, beside DuckDB alone.

    python benchmarks/rowdiff_stages.py REPO OLD NEW PATH [--key id] [--plain A B]

Runs the diff in this process (``vfs.tables.rowdiff.diff_path``, as the CLI calls
it) with a timer around each stage: the copies of the two sides out of the store
(the sniffs begin within them, ``Engine.sniff_early``), what the sniffing still
takes after them, the fast path's plan and key check, and every engine query (those
run beside another, ``Engine.run_beside``, are timed within the stage that waits for
them: the line join and ``_parts``, where the old file's key check is waited for, or
``_checked_beside``). Each line gives wall and CPU seconds
(the process's CPU time, DuckDB's and the copy's threads included) and the load when
the stage ended. With ``--plain A B`` (the same two
versions as plain files, as ``bench_rowdiff.py --keep`` leaves them), DuckDB alone
then reads A, reads both, and runs ``bench_rowdiff.REFERENCE``'s join, in the same
process: the floor each dvfs stage can be held against.

A tool to find the stage to cut next, not a figure of record: the targets are
measured by ``bench_rowdiff.py``. Several runs in a row use the repository's
``.dvfs/rowcache`` (``vfs.tables.checks``): remove it to time a first diff.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from tools import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))

from vfs.repo.repository import Repository
from vfs.tables import engine, rowdiff

Stage = tuple[str, float, float, float]  # name, wall s, CPU s, load at its end


@contextmanager
def timer(stages: list[Stage], name: str) -> Iterator[None]:
    wall, cpu = time.perf_counter(), time.process_time()
    try:
        yield
    finally:
        stages.append(
            (name, time.perf_counter() - wall, time.process_time() - cpu, os.getloadavg()[0])
        )


def timed(stages: list[Stage], name: str, fn: Callable[..., Any]) -> Callable[..., Any]:
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        with timer(stages, name):
            return fn(*args, **kwargs)

    return wrapper


def show(stages: list[Stage]) -> None:
    print(f"  {'stage':<64} {'wall':>7} {'CPU':>7} {'load':>5}")
    for name, wall, cpu, load in stages:
        print(f"  {name[:64]:<64} {wall:7.3f} {cpu:7.3f} {load:5.2f}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("repo", type=Path)
    ap.add_argument("old")
    ap.add_argument("new")
    ap.add_argument("path")
    ap.add_argument("--key", default="id", help="comma-separated; '' for none")
    ap.add_argument("--plain", nargs=2, type=Path, metavar=("A", "B"))
    args = ap.parse_args()

    stages: list[Stage] = []
    stages_of = (
        "_copy_sides", "fast_plan", "line_parts", "_parts", "key_totals", "_checked_beside",
        "_collisions", "keyed",
    )  # fmt: skip
    for name in (*stages_of, "unkeyed"):
        setattr(rowdiff, name, timed(stages, name, getattr(rowdiff, name)))
    run = engine.Engine.run

    def query(self: engine.Engine, sql: str) -> list[tuple[Any, ...]]:
        with timer(stages, "  sql: " + " ".join(sql.split())):
            return run(self, sql)

    engine.Engine.run = query  # type: ignore[method-assign]
    pair = engine.Engine.sniff_pair

    def sniffs(self: engine.Engine, *rest: Any, **named: Any) -> Any:
        # the sniffs begin inside _copy_sides (Engine.sniff_early, on their own cursors,
        # not timed apart): this is what they still take once both sides are made
        with timer(stages, "sniff_pair (what the sniffs begun early still take)"):
            return pair(self, *rest, **named)

    engine.Engine.sniff_pair = sniffs  # type: ignore[method-assign]
    key = [k for k in args.key.split(",") if k]
    print(f"load {os.getloadavg()[0]:.2f}; dvfs diff {args.old} {args.new} {args.path} --rows")
    with timer(stages, "whole diff (repository open to answer)"):
        repo = Repository.find(args.repo.resolve())
        result = rowdiff.diff_path(
            repo.history, repo.store, repo.chunker, repo.root, repo.dir,
            [args.old, args.new], os.fsencode(args.path), key, 20,
        )  # fmt: skip
    show(stages)
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
