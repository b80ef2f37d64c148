"""Where the time of a clean ``dvfs status`` goes, beside the floors it is held against.

    python benchmarks/status_stages.py REPO [--dvc DIR [--dvc-command DVC]] [--runs N]
                                            [--python PY]

REPO is a dvfs repository whose working tree is clean (``bench_local.py --keep``
leaves one, with DVC's copy of the same files beside it for ``--dvc``). Each figure
is the median of N fresh processes, run in turns so that a drift of the machine
touches them all alike: wall time and CPU time (user+sys, children included).

- the interpreter alone (``PY -c pass``), and with ``-S`` (no site-packages, so
  without what their ``.pth`` files import: an editable install's finder, say);
- the floors of the scan: a bare script that lstat()s every tracked path, and one
  that lists each tracked directory and fstatat()s its entries (``PY -S``);
- ``PY -m vfs.cli status`` (the module, as ``bench_local.py`` runs it without
  ``dvfs`` on PATH) and, if PY's directory has it, the ``dvfs`` console script a
  user runs; with ``--dvc``, ``dvc status`` there and each dvfs/DVC ratio;
- the stages of a quick status in one fresh process (imports, index load, the scan
  and sort of ``work_state``, the rest), each wall and CPU.

A tool to find the stage to cut next: the figure of record is ``bench_local.py``'s.
It prints and never fails on a timing.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from floor import load
from tools import REPO_ROOT

sys.path.insert(0, str(REPO_ROOT))

from vfs.repo.stage import Index

# One quick status, in stages (wall and CPU ms each), as vfs.cli.main runs it.
STAGES = """
import json, time
w0, c0 = time.perf_counter(), time.process_time()
marks = []
def mark(name):
    marks.append((name, time.perf_counter(), time.process_time()))
import gc
import vfs.cli
gc.disable()  # as vfs.cli.main does first, for the imports and the status
if hasattr(vfs.cli, "defer_inspect"):  # (as main does next, where it does)
    vfs.cli.defer_inspect()
from vfs.cli import status_report
from vfs.cli.output import repo_here, warn, workers
from vfs.ops import status as ops
from vfs._os.gc_pause import paused_gc
mark("imports")
repo = repo_here()
with paused_gc():
    index = repo.index()
    mark("index load")
    head = repo.refs.head()
    head_id = repo.refs.head_id(head)
    if ops.may_be_behind(head, head_id, index):
        ops.moved_past(repo.history, index)
    with workers() as w:
        work = ops.work_state(repo, index, w, warn)
        mark("scan and sort (work_state)")
    if head_id is not None:
        ops.label(repo, index, head_id)
    if hasattr(ops, "merge_in_progress"):
        ops.merge_in_progress(repo)
    else:  # (an older tree, measured beside this one)
        from vfs.ops import merging
        merging.live(repo.dir, repo.refs)
    ops.lock_apart(repo, index.base or head_id, None)
    status_report.tracking(repo, ops.Status(head.branch, None, None, [], work))
    mark("head, merge state, lock, remotes")
out, w, c = [], w0, c0
for name, w1, c1 in marks:
    out.append([name, (w1 - w) * 1000, (c1 - c) * 1000])
    w, c = w1, c1
print(json.dumps(out))
"""

FLOOR_PATHS = """
import os, sys
for p in open(sys.argv[1], "rb").read().split(b"\\0"):
    if p:
        os.lstat(p)
"""

FLOOR_DIRS = """
import os, sys
for d in open(sys.argv[1], "rb").read().split(b"\\0"):
    fd = os.open(d or b".", os.O_RDONLY | os.O_DIRECTORY)
    with os.scandir(fd) as it:
        for e in it:
            os.stat(e.name, dir_fd=fd, follow_symlinks=False)
    os.close(fd)
"""


def timed(argv: list[str], cwd: Path) -> tuple[float, float]:
    """Wall and CPU seconds (children included) of one run of ``argv`` in ``cwd``."""
    start = time.perf_counter()
    proc = subprocess.Popen(argv, cwd=cwd, stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    if os.waitstatus_to_exitcode(status) != 0:
        raise SystemExit(f"{' '.join(argv)} failed in {cwd}")
    return wall, usage.ru_utime + usage.ru_stime


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("repo", type=Path)
    p.add_argument("--dvc", type=Path, help="DVC's copy of the same files, for `dvc status`")
    p.add_argument("--dvc-command", default="dvc", help="DVC's command (its venv's bin/dvc)")
    p.add_argument("--runs", type=int, default=10)
    p.add_argument("--python", default=sys.executable, help="the interpreter dvfs is installed in")
    args = p.parse_args()
    repo: Path = args.repo.resolve()
    py: str = args.python
    paths = sorted(Index.load(repo / ".dvfs" / "index").paths())
    dirs = sorted({q.rpartition(b"/")[0] for q in paths})
    print(f"{len(paths):,} tracked paths in {len(dirs):,} directories; {load()}")
    with tempfile.TemporaryDirectory() as tmp:
        (Path(tmp) / "paths").write_bytes(b"\0".join(paths))
        (Path(tmp) / "dirs").write_bytes(b"\0".join(dirs))
        cases: dict[str, tuple[list[str], Path]] = {
            "interpreter (-c pass)": ([py, "-c", "pass"], repo),
            "interpreter, no site (-S -c pass)": ([py, "-S", "-c", "pass"], repo),
            "floor: lstat each path (-S)": ([py, "-S", "-c", FLOOR_PATHS, f"{tmp}/paths"], repo),
            "floor: scandir + fstatat (-S)": ([py, "-S", "-c", FLOOR_DIRS, f"{tmp}/dirs"], repo),
            "dvfs status (-m vfs.cli)": ([py, "-m", "vfs.cli", "status"], repo),
        }
        script = Path(py).parent / "dvfs"
        if script.exists():
            cases["dvfs status (console script)"] = ([str(script), "status"], repo)
        if args.dvc is not None:
            dvc = shutil.which(args.dvc_command)
            if dvc is None:
                raise SystemExit(f"--dvc: no {args.dvc_command} found")
            cases["dvc status"] = ([dvc, "status"], args.dvc.resolve())
        runs: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
        for _ in range(args.runs):
            for name, (argv, cwd) in cases.items():
                runs[name].append(timed(argv, cwd))
    medians = {
        name: (statistics.median(w for w, _ in got), statistics.median(c for _, c in got))
        for name, got in runs.items()
    }
    peer = medians.get("dvc status")
    print(f"{'median of ' + str(args.runs):<40} {'wall ms':>8} {'CPU ms':>8} {'vs DVC':>7}")
    for name, (wall, cpu) in medians.items():
        ratio = f"{wall / peer[0]:7.3f}" if peer and name.startswith("dvfs") else ""
        print(f"{name:<40} {wall * 1000:8.1f} {cpu * 1000:8.1f} {ratio}")
    done = subprocess.run(
        [py, "-c", STAGES], cwd=repo, capture_output=True, text=True, check=True
    ).stdout
    print("stages of one quick status (after the interpreter's start), wall / CPU ms:")
    for name, wall_ms, cpu_ms in json.loads(done.splitlines()[-1]):
        print(f"  {name:<38} {wall_ms:8.1f} {cpu_ms:8.1f}")
    print(load())


if __name__ == "__main__":
    main()
