"""What ignore rules cost ``dvfs status``: the same tree, with and without them, in one run.

    .venv/bin/python benchmarks/bench_ignore.py [--workdir DIR] [--files N] [--runs N]

The tree: N tracked files (default 20,000, 64 bytes each) in 200 directories, one
commit; then a ``.dvfsignore`` of five patterns at the top and in every directory,
and untracked files that the rules must sort: 10 per directory (half ``*.tmp``,
ignored; half ``*.new``, listed) and a ``__pycache__/`` of 5 files in every tenth
directory (ignored by a built-in rule).

``status`` is run in this process, through the library, alternately with the ignore
step (``vfs.worktree.ignore``) and with it replaced by one that keeps every untracked path,
so that the two differ by the matching alone: reading the ignore files, compiling
them, and matching each untracked path. Both are run on the tree as described
("with untracked files") and once more after the untracked files are removed ("clean":
nothing to match). Each figure is the median of ``--runs`` runs; the ratio is with /
without. The target: ignore matching adds at most 5% (ratio <= 1.05).

It prints figures and never fails on a timing: benchmarks are not tests. Run it on a
quiet machine (``uptime``: load below 1).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path

from vfs.ops import status as ops_status
from vfs.ops import workflow
from vfs.ops.commit import commit
from vfs.repo.repository import Repository
from vfs.worktree.pools import Workers

DIRS = 200
RULES = "*.tmp\n/build/\nlogs/\n*.log\n!keep.log\n"
TARGET = 1.05


class _KeepAll:
    """Stands for ``vfs.worktree.ignore.Ignores`` in the runs without ignore rules."""

    def __init__(self, *args: object) -> None:
        pass

    def __enter__(self) -> _KeepAll:
        return self

    def __exit__(self, *exc: object) -> None:
        pass

    def keep(self, untracked: Iterable[bytes]) -> list[bytes]:
        return list(untracked)


@contextmanager
def without_rules() -> Iterator[None]:
    names = vars(ops_status)
    real = names["Ignores"]
    names["Ignores"] = _KeepAll
    try:
        yield
    finally:
        names["Ignores"] = real


def build(root: Path, files: int) -> Repository:
    """The tracked tree, committed (see the module docstring)."""
    repo = Repository.init(root)
    for i in range(files):
        d = root / "data" / f"d{i % DIRS:03d}"
        d.mkdir(parents=True, exist_ok=True)
        (d / f"f{i:06d}.csv").write_bytes(b"%064d" % i)
    with Workers() as w:
        workflow.add(repo, [str(root / "data")], w)
    commit(repo, "data", {})
    return repo


def untracked(root: Path, make: bool) -> None:
    """Add (or remove) the ignore files and the untracked files."""
    data = root / "data"
    if make:
        (data / ".dvfsignore").write_text(RULES)
    else:
        (data / ".dvfsignore").unlink()
    for k in range(DIRS):
        d = data / f"d{k:03d}"
        if not make:
            for p in [*d.glob("u*"), d / ".dvfsignore"]:
                p.unlink(missing_ok=True)
            shutil.rmtree(d / "__pycache__", ignore_errors=True)
            continue
        (d / ".dvfsignore").write_text(RULES)
        for j in range(10):
            (d / f"u{j}.{'tmp' if j % 2 else 'new'}").write_bytes(b"u")
        if k % 10 == 0:
            (d / "__pycache__").mkdir()
            for j in range(5):
                (d / "__pycache__" / f"m{j}.pyc").write_bytes(b"p")


def timed(repo: Repository, runs: int) -> tuple[list[float], list[float], int, int]:
    """Seconds of each status with and without the ignore step, alternately; and how many
    untracked paths each listed."""
    with_rules: list[float] = []
    without: list[float] = []
    listed = [0, 0]

    def one(sink: list[float], slot: int) -> None:
        with Workers() as w:
            started = time.perf_counter()
            st = ops_status.status(repo, w)
            sink.append(time.perf_counter() - started)
        listed[slot] = len(st.work.untracked)

    plain: Callable[[], None] = lambda: one(with_rules, 0)  # noqa: E731
    for i in range(runs + 1):  # the first pair warms the page cache up, and is dropped
        if i % 2:
            plain()
            with without_rules():
                one(without, 1)
        else:
            with without_rules():
                one(without, 1)
            plain()
        if i == 0:
            with_rules.clear()
            without.clear()
    return with_rules, without, listed[0], listed[1]


def report(title: str, with_rules: list[float], without: list[float], shown: str) -> float:
    a, b = statistics.median(with_rules), statistics.median(without)
    ratio = a / b
    verdict = "meets" if ratio <= TARGET else "misses"
    print(
        f"{title:<22} without {b * 1000:7.1f} ms   with {a * 1000:7.1f} ms   "
        f"ratio {ratio:.3f}  ({verdict} <= {TARGET})   {shown}"
    )
    return ratio


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workdir", type=Path, help="where the tree goes (default: a temp dir)")
    parser.add_argument("--files", type=int, default=20_000)
    parser.add_argument("--runs", type=int, default=15)
    opts = parser.parse_args()
    load = os.getloadavg()[0]
    base = Path(tempfile.mkdtemp(prefix="dvfs-bench-ignore-", dir=opts.workdir))
    try:
        print(f"{opts.files:,} tracked files in {DIRS} directories; load average {load:.2f}")
        if load >= 1:
            print("note: the machine is busy (load >= 1): figures are noisy")
        repo = build(base / "repo", opts.files)
        untracked(repo.root, True)
        w, wo, n_with, n_without = timed(repo, opts.runs)
        report("with untracked files", w, wo, f"untracked listed: {n_with} / {n_without}")
        untracked(repo.root, False)
        w, wo, n_with, n_without = timed(repo, opts.runs)
        report("clean", w, wo, f"untracked listed: {n_with} / {n_without}")
    finally:
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
