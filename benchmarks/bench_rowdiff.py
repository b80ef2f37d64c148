"""``dvfs diff --rows --key id`` against a hand-written DuckDB diff, datacompy and daff.

    python benchmarks/bench_rowdiff.py [--workdir DIR] [--dvfs CMD] [--rows N] [--cut N]

Data (seeded, not timed): a CSV of ``--rows`` rows (2,000,000: 101 MiB) and 8
columns (id, user, cat, score, qty, day, flag, tag), and two edits of it: *random*,
1% of the rows given a new score at random, 5,000 rows removed at random and 5,000
added at the end; *block*, one block of 1,000 consecutive rows given a new qty. The
same recipe at ``--cut`` rows (200,000) makes the peers' smaller pair. The three
versions are committed to a dvfs repository as v1 (base), v2 (random) and v3 (block).

Steps (one run each by default; ``--runs N`` takes the median of N):

| step | command |
| --- | --- |
| dvfs, one block, first diff of v1 | ``dvfs diff v1 v3 data.csv --rows --key id --json`` |
| dvfs, random 1% | ``dvfs diff v1 v2 data.csv --rows --key id --json`` |
| DuckDB by hand | ``REFERENCE`` below on the same two files as plain CSVs |
| dvfs, one block | the same again: v1's key was proved by the diffs before |
| dvfs, cut | ``dvfs diff v1 v2 cut.csv --rows --key id --json`` |
| dvfs, random 1%, nothing kept | the random diff again, ``.dvfs/rowcache`` emptied first |
| datacompy, cut | ``PandasCompare(pd.read_csv(a), pd.read_csv(b), join_columns="id").report()`` |
| daff, cut | ``Coopy.compareTables`` with id as the primary key, aligned and highlighted |

``REFERENCE`` is what one would write by hand: DuckDB reads both files (sniffing
them), joins them with a FULL OUTER JOIN on id and keeps the differing pairs in a
table, counted by kind; it runs with the interpreter and DuckDB that dvfs runs with.
datacompy and daff are installed into ``WORKDIR/peers-venv`` on the first run (pinned
versions below), never into dvfs's environment. Each command's wall time, CPU time
(user + system, DuckDB's threads included: steadier than wall time while others load
the machine) and peak RSS (``ru_maxrss`` through ``spawner.py``, as in
``bench_local.py``) are reported, with the load average when each step ended,
then the targets of issue 17: random <= 1.0 x DuckDB by hand; cut <= 0.2 x the faster
peer; one block <= 0.3 x dvfs's own random. The block edit is timed twice: first
when no diff has read v1 yet, so the whole of v1 is read to prove its key, then
after the first diffs proved it (``vfs.tables.checks``), when only its key column is
read; the target is given for both. The random edit is timed twice too: after the
first block diff, which kept a copy of v1 (``vfs.tables.source``), as when several
versions are diffed against one base, and last with nothing kept from any diff
before it; the target is given for both. The counts dvfs reports are checked against the
hand-written diff's, and dvfs's JSON against the edits made.

It prints and never fails on a timing: benchmarks are not tests.
"""

from __future__ import annotations

import argparse
import ast
import functools
import json
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path

from measure import Proc, rss_floor, run, settle
from results import human, ratio
from tools import REPO_ROOT, Dvfs, SetupError, dvfs_command, must

DATACOMPY = "datacompy==1.1.0"
DAFF = "daff==1.4.2"
CATS = ("alpha", "beta", "gamma", "delta", "eps")
HEADER = "id,user,cat,score,qty,day,flag,tag\n"

REFERENCE = """
import sys, duckdb
a, b = sys.argv[1], sys.argv[2]
con = duckdb.connect()
cols = [r[0] for r in con.execute(f"DESCRIBE SELECT * FROM read_csv('{a}')").fetchall()]
differ = " OR ".join(f'o."{c}" IS DISTINCT FROM n."{c}"' for c in cols if c != "id")
con.execute(f'''CREATE TEMP TABLE d AS SELECT
  CASE WHEN o.id IS NULL THEN 'added' WHEN n.id IS NULL THEN 'removed' ELSE 'changed' END AS st,
  o.*, n.* FROM read_csv('{a}') o FULL OUTER JOIN read_csv('{b}') n ON o.id = n.id
  WHERE o.id IS NULL OR n.id IS NULL OR {differ}''')
print(dict(con.execute("SELECT st, count(*) FROM d GROUP BY st").fetchall()))
"""

DATACOMPY_SCRIPT = """
import sys, pandas as pd, datacompy
c = datacompy.PandasCompare(pd.read_csv(sys.argv[1]), pd.read_csv(sys.argv[2]), join_columns="id")
c.report()
print(len(c.df1_unq_rows), len(c.df2_unq_rows))
"""

DAFF_SCRIPT = """
import csv, sys, daff
def table(p):
    with open(p, newline="") as f:
        return daff.PythonTableView(list(csv.reader(f)))
flags = daff.CompareFlags()
flags.addPrimaryKey("id")
alignment = daff.Coopy.compareTables(table(sys.argv[1]), table(sys.argv[2]), flags).align()
out = []
daff.TableDiff(alignment, flags).hilite(daff.PythonTableView(out))
print(len(out))
"""


@dataclass
class Step:
    """One measured command (the median run when there are several)."""

    key: str
    title: str
    wall_s: float
    maxrss_kib: int
    ok: bool
    detail: str
    cpu_s: float = 0.0  # user + system time of the median run
    load: float = 0.0  # the one-minute load average when it ended


def rows_of(n: int, rng: random.Random) -> list[list[str]]:
    """``n`` rows of the benchmark table."""
    out = []
    for i in range(n):
        out.append([
            str(i), f"u{rng.randrange(100_000):05d}", CATS[i % 5],
            f"{rng.randrange(100_000) / 100:.2f}", str(rng.randrange(1000)),
            f"2024-{1 + i % 12:02d}-{1 + i % 28:02d}", "true" if i % 3 else "false",
            f"t{rng.randrange(10_000):04d}",
        ])  # fmt: skip
    return out


def write(path: Path, rows: list[list[str]]) -> None:
    with open(path, "w") as f:
        f.write(HEADER)
        f.writelines(",".join(r) + "\n" for r in rows)


def make_data(dest: Path, n: int, seed: int) -> dict[str, int]:
    """base.csv, random.csv and block.csv of ``n`` rows in ``dest``; the edits' sizes."""
    rng = random.Random(seed)
    base = rows_of(n, rng)
    write(dest / "base.csv", base)
    changed = max(1, n // 100)
    moved = max(1, n * 5000 // 2_000_000)
    edited = [list(r) for r in base]
    for i in rng.sample(range(n), changed):
        old = edited[i][3]
        while edited[i][3] == old:
            edited[i][3] = f"{rng.randrange(100_000) / 100:.2f}"
    gone = set(rng.sample(range(n), moved))
    edited = [r for i, r in enumerate(edited) if i not in gone]
    edited += [[str(n + j), "unew", "beta", "1.00", "1", "2025-01-01", "true", "t0000"]
               for j in range(moved)]  # fmt: skip
    write(dest / "random.csv", edited)
    block = [list(r) for r in base]
    start = n // 2
    for r in block[start : start + min(1000, n)]:
        r[4] = str(int(r[4]) + 1000)
    write(dest / "block.csv", block)
    return {"changed_at_most": changed, "added": moved, "removed": moved}


def ensure_peers(venv: Path) -> Path:
    """``venv`` with datacompy and daff (made on first use, not timed); its python."""
    python = venv / "bin" / "python"
    probe = [str(python), "-c", "import datacompy, daff"]
    if python.exists() and subprocess.run(probe, capture_output=True).returncode == 0:
        return python
    print(f"installing {DATACOMPY} and {DAFF} into {venv} ...", flush=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    for argv in (
        [sys.executable, "-m", "venv", str(venv)],
        [str(python), "-m", "pip", "install", "-q", DATACOMPY, DAFF],
    ):
        p = subprocess.run(argv, env=env, capture_output=True, text=True, check=False)
        if p.returncode != 0:
            raise SetupError(f"`{' '.join(argv)}` failed: {(p.stdout + p.stderr)[-2000:]}")
    return python


def measure(key: str, title: str, argv: list[str], cwd: Path, env: dict[str, str],
            runs: int, before: Callable[[], object] | None = None,
            ) -> tuple[Step, list[Proc]]:  # fmt: skip
    """Run ``argv`` ``runs`` times, each after ``before`` and a sync (``settle``: the
    writeback of the data just generated and committed is never billed to a step); the
    median wall time and the largest peak RSS."""
    procs = []
    for _ in range(runs):
        if before is not None:
            before()
        settle(False)
        procs.append(run(argv, cwd, env))
    ok = all(p.returncode == 0 for p in procs)
    median = sorted(procs, key=lambda p: p.wall_s)[(len(procs) - 1) // 2]
    wall = statistics.median(p.wall_s for p in procs)
    rss = max(p.maxrss_kib for p in procs)
    detail = "" if ok else procs[-1].output_tail[-300:]
    load = os.getloadavg()[0]
    print(
        f"  {title:<34} {wall:8.2f} s {median.cpu_s:8.2f} s  {human(rss * 1024):>10}  {load:5.2f}",
        flush=True,
    )
    return Step(key, title, wall, rss, ok, detail, median.cpu_s, load), procs


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--workdir", type=Path, default=REPO_ROOT / "benchmarks" / "work")
    ap.add_argument("--dvfs", help="the dvfs command, split like a shell line")
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--cut", type=int, default=200_000)
    ap.add_argument("--seed", type=int, default=17)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--no-peers", action="store_true", help="skip datacompy and daff")
    ap.add_argument("--keep", action="store_true", help="keep the data and the repository")
    args = ap.parse_args()

    work = args.workdir.resolve() / "rowdiff"
    if work.exists():
        shutil.rmtree(work)
    data, repo = work / "data", work / "repo"
    data.mkdir(parents=True)
    repo.mkdir()
    env = {**os.environ, "GIT_CEILING_DIRECTORIES": str(work), "DVFS_AUTHOR": "bench <b@x>"}
    env.pop("DVFS_THREADS", None)
    dvfs = Dvfs(repo, env, dvfs_command(args.dvfs))
    python = dvfs.interpreter()
    notes: list[str] = []
    try:
        print(f"generating {args.rows:,} and {args.cut:,} rows (seed {args.seed}) ...", flush=True)
        full_dir, cut_dir = data / "full", data / "cut"
        full_dir.mkdir()
        cut_dir.mkdir()
        edits = make_data(full_dir, args.rows, args.seed)
        make_data(cut_dir, args.cut, args.seed + 1)
        peers = None if args.no_peers else ensure_peers(args.workdir.resolve() / "peers-venv")
        dvfs.setup()
        for version, big, cut in (("base", "base", "base"), ("random", "random", "random"),
                                  ("block", "block", "random")):  # fmt: skip
            shutil.copyfile(full_dir / f"{big}.csv", repo / "data.csv")
            shutil.copyfile(cut_dir / f"{cut}.csv", repo / "cut.csv")
            must([*dvfs.command, "add", "data.csv", "cut.csv"], repo, dvfs.env)
            must([*dvfs.command, "commit", "-m", version], repo, dvfs.env)
        size = (full_dir / "base.csv").stat().st_size
        print(f"data.csv: {human(size)}; load {os.getloadavg()[0]:.2f} before timing", flush=True)
        floor = rss_floor(repo, dvfs.env)
        rows = "--rows", "--key", "id", "--json"
        steps: list[Step] = []
        out: dict[str, list[Proc]] = {}
        plan = [
            ("block_cold", "dvfs, one block, first diff of v1",
             [*dvfs.command, "diff", "v1", "v3", "data.csv", *rows]),
            ("random", "dvfs, random 1%", [*dvfs.command, "diff", "v1", "v2", "data.csv", *rows]),
            ("reference", "DuckDB by hand, random 1%",
             [python, "-c", REFERENCE, str(full_dir / "base.csv"), str(full_dir / "random.csv")]),
            ("block", "dvfs, one block of 1,000 rows",
             [*dvfs.command, "diff", "v1", "v3", "data.csv", *rows]),
            ("cut", f"dvfs, {args.cut:,}-row cut",
             [*dvfs.command, "diff", "v1", "v2", "cut.csv", *rows]),
            ("random_cold", "dvfs, random 1%, nothing kept",
             [*dvfs.command, "diff", "v1", "v2", "data.csv", *rows]),
        ]  # fmt: skip
        if peers is not None:
            pair = [str(cut_dir / "base.csv"), str(cut_dir / "random.csv")]
            plan += [
                ("datacompy", f"datacompy, {args.cut:,}-row cut",
                 [str(peers), "-c", DATACOMPY_SCRIPT, *pair]),
                ("daff", f"daff, {args.cut:,}-row cut", [str(peers), "-c", DAFF_SCRIPT, *pair]),
            ]  # fmt: skip
        print(f"timing ({args.runs} run{'s' if args.runs > 1 else ''} each; RSS floor "
              f"{human(floor * 1024)}):")  # fmt: skip
        print(f"  {'step':<34} {'wall':>10} {'CPU':>10}  {'peak RSS':>10}  {'load':>5}")
        proved = repo / ".dvfs" / "rowcache"  # what earlier diffs proved (vfs.tables.checks)
        for key, title, argv in plan:
            forget = None
            if key in ("block_cold", "random_cold"):
                forget = functools.partial(shutil.rmtree, proved, ignore_errors=True)
            step, procs = measure(key, title, argv, repo, dvfs.env, args.runs, forget)
            steps.append(step)
            out[key] = procs
        by = {s.key: s for s in steps}
        check = [*dvfs.command, "diff", "v1", "v2", "data.csv", *rows, "--limit", "0"]
        summary = json.loads(must(check, repo, dvfs.env)) if by["random"].ok else {}
        reference = out["reference"][-1].output_tail.strip().splitlines()[-1:]
        if summary and reference:
            s = summary["summary"]
            mine = {"added": s["added"], "removed": s["removed"], "changed": s["changed"]}
            theirs = ast.literal_eval(reference[0])  # the dict the reference printed
            same = mine == {k: theirs.get(k, 0) for k in mine}
            notes.append(f"dvfs counts {mine} {'match' if same else 'DIFFER from'} DuckDB's")
            if (s["added"], s["removed"]) != (edits["added"], edits["removed"]):
                notes.append(f"dvfs found {s['added']} added, {s['removed']} removed; "
                             f"the edit made {edits['added']}, {edits['removed']}")  # fmt: skip
        if by["block"].ok:
            check = [*dvfs.command, "diff", "v1", "v3", "data.csv", *rows, "--limit", "0"]
            b = json.loads(must(check, repo, dvfs.env))
            notes.append(f"one block: {b['summary']['changed']:,} changed, method {b['method']}, "
                         f"{human(b['shared_bytes'])} not compared")  # fmt: skip
        targets = [
            ("random 1% <= 1.0 x DuckDB by hand", by["random"], by["reference"], 1.0),
            ("  the same, nothing kept", by["random_cold"], by["reference"], 1.0),
            ("one block <= 0.3 x random 1%", by["block"], by["random"], 0.3),
            ("  the same, first diff of v1", by["block_cold"], by["random"], 0.3),
        ]  # fmt: skip
        if peers is not None:
            faster = min(by["datacompy"], by["daff"], key=lambda s: s.wall_s)
            targets.append(("cut <= 0.2 x the faster peer", by["cut"], faster, 0.2))
        print("\ntargets (wall time; CPU time beside it, steadier on a loaded machine):")
        for name, a, b, limit in targets:
            r = a.wall_s / b.wall_s if b.wall_s else float("inf")
            print(
                f"  {name:<36} {ratio(a.wall_s, b.wall_s):>6}  {'met' if r <= limit else 'not met'}"
                f"  (CPU {ratio(a.cpu_s, b.cpu_s)})"
            )
        for n in notes:
            print(f"note: {n}")
        failed = [s for s in steps if not s.ok]
        for s in failed:
            print(f"FAILED {s.title}: {s.detail}")
        stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
        report = {
            "steps": [asdict(s) for s in steps], "notes": notes, "rss_floor_kib": floor,
            "rows": args.rows, "cut": args.cut, "seed": args.seed, "runs": args.runs,
            "csv_bytes": size, "machine": platform.platform(), "cpus": os.cpu_count(),
            "load": os.getloadavg(), "python": sys.version.split()[0],
        }  # fmt: skip
        path = args.workdir.resolve() / f"bench_rowdiff-{stamp}.json"
        path.write_text(json.dumps(report, indent=2) + "\n")
        print(f"figures: {path}")
        return 1 if failed else 0
    finally:
        if not args.keep:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
