"""``dvfs diff --rows`` reading a version's file in the working tree in place.

When the index vouches that the working tree holds a version's file as it is, the
engine reads that file instead of a copy out of the store
(``vfs.tables.source.from_tree_file``). These tests check that it does, and that
it never gives anything but the version's rows: not for a file changed while the
diff runs, nor for one changed just before it with its modification time set back,
nor through a symbolic link; and that nothing learned from a changed file is kept
in the row cache. A working-tree file that holds neither version but shares most
of one's chunks gives the copies those chunks.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import Repo, add_in_process, commit_in_process, init_repo
from vfs.errors import UsageError
from vfs.model.chunking import ChunkerParams
from vfs.repo.repository import Repository
from vfs.store.objects import ObjectStore
from vfs.tables import engine, rowdiff, source
from vfs.tables.engine import Engine
from vfs.tables.result import RowDiff
from vfs.tables.source import Side

HEADER = "id,name,score\n"
V1 = HEADER + "".join(f"{i},n{i % 7},{i * 3}\n" for i in range(3000))
V2 = V1.replace("\n7,n0,21\n", "\n7,n0,22\n").replace("\n2999,n3,8997\n", "\n3000,new,1\n")
# What the diff of v1 and v2 finds: id 7 changed, 2999 removed, 3000 added.
EXPECTED = (1, 1, 1, 2998)


def committed(root: Path) -> Repo:
    """A repository whose v1 and v2 hold t.csv, the working tree v2's, with the index
    vouching for it: each file is written a second in the past, so that the index
    written after it holds it outside the racy window."""
    return commit_texts(init_repo(root), V1, V2)


def commit_texts(repo: Repo, *texts: str) -> Repo:
    """``repo`` with a version of t.csv committed for each of ``texts``, each file
    written a second in the past (see :func:`committed`)."""
    for text in texts:
        path = repo.write("t.csv", text)
        past = time.time_ns() - 2_000_000_000
        os.utime(path, ns=(past, past))
        add_in_process(repo, "t.csv")
        commit_in_process(repo, "t")
    return repo


def counts(d: RowDiff) -> tuple[int, int, int, int]:
    return d.added, d.removed, d.changed, d.unchanged


def diff_in_process(repo: Repo, revs: tuple[str, ...] = ("v1", "v2")) -> RowDiff:
    r = Repository.find(repo.root)
    return rowdiff.diff_path(
        r.history, r.store, r.chunker, r.root, r.dir, list(revs), b"t.csv", ["id"], 100,
        threads=1,
    )  # fmt: skip


def watch(monkeypatch: pytest.MonkeyPatch, before: Any = None) -> list[tuple[bool, bool]]:
    """Which sides each call of ``diff_rows`` reads in place; ``before(old, new)`` runs
    first on each call."""
    calls: list[tuple[bool, bool]] = []
    real = rowdiff.diff_rows

    def seen(engine: Any, fmt: Any, old: Side, new: Side, *rest: Any) -> RowDiff:
        calls.append((old.in_place, new.in_place))
        if before is not None:
            before(old, new)
        return real(engine, fmt, old, new, *rest)

    monkeypatch.setattr(rowdiff, "diff_rows", seen)
    return calls


def cached(repo: Repo) -> dict[str, bytes]:
    where = repo.root / ".dvfs" / "rowcache"
    return {p.name: p.read_bytes() for p in where.iterdir()} if where.exists() else {}


def cli_counts(repo: Repo) -> tuple[int, int, int, int]:
    s = repo.json("diff", "v1", "v2", "t.csv", "--rows", "--key", "id", "--json")["summary"]
    return s["added"], s["removed"], s["changed"], s["unchanged"]


def test_a_version_the_working_tree_holds_is_read_in_place(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = committed(tmp_path / "repo")
    calls = watch(monkeypatch)
    assert counts(diff_in_process(repo)) == EXPECTED
    assert calls == [(False, True)]
    # So is the working tree's side, with the chunks the index records.
    calls.clear()
    working = diff_in_process(repo, ("v1",))
    assert counts(working) == EXPECTED and working.new_label == "the working tree"
    assert calls == [(False, True)]
    # A file the index does not vouch for (written again: another stat) is copied.
    repo.write("t.csv", V2)
    calls.clear()
    assert counts(diff_in_process(repo)) == EXPECTED
    assert counts(diff_in_process(repo, ("v1",))) == EXPECTED
    assert calls == [(False, False), (False, False)]
    assert cli_counts(repo) == EXPECTED
    repo.ok("fsck")


def test_a_file_changed_during_the_diff_gives_the_versions_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Rewritten in place, same size, after it was vouched for and before the engine
    # reads it: the diff is made again from the store, and the row cache ends as a
    # diff that read only v2's bytes leaves it.
    clean = committed(tmp_path / "clean")
    assert counts(diff_in_process(clean)) == EXPECTED
    repo = committed(tmp_path / "repo")
    wt = repo.root / "t.csv"

    def rewrite(old: Side, new: Side) -> None:
        if new.in_place:
            with open(wt, "r+b") as f:
                f.write(V2.replace("\n5,n5,15\n", "\n5,n5,99\n").encode())

    calls = watch(monkeypatch, rewrite)
    assert counts(diff_in_process(repo)) == EXPECTED
    assert calls == [(False, True), (False, False)]
    assert cached(repo) == cached(clean)
    assert cli_counts(repo) == EXPECTED
    # The working tree's side changed the same way: the diff is made again from a
    # copy of the file as it is now (row 5 changed too), never from a mix of both.
    wt.write_text(V2)
    past = time.time_ns() - 2_000_000_000
    os.utime(wt, ns=(past, past))
    repo.ok("add", "t.csv")
    calls.clear()
    assert counts(diff_in_process(repo, ("v1",))) == (1, 1, 2, 2997)
    assert calls == [(False, True), (False, False)]
    repo.ok("fsck")


def test_a_file_changed_before_the_diff_with_its_time_set_back_is_not_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = committed(tmp_path / "repo")
    wt = repo.root / "t.csv"
    st = wt.stat()
    wt.write_text(V2.replace("\n5,n5,15\n", "\n5,n5,99\n"))  # same size, one row changed
    os.utime(wt, ns=(st.st_atime_ns, st.st_mtime_ns))  # the change time still moves
    calls = watch(monkeypatch)
    assert counts(diff_in_process(repo)) == EXPECTED
    assert calls == [(False, False)]
    assert cli_counts(repo) == EXPECTED
    repo.ok("fsck")


def test_a_symbolic_link_in_the_working_tree_is_never_followed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = init_repo(tmp_path / "repo")
    for text in (V1, V2):
        path = repo.write("d/t.csv", text)
        past = time.time_ns() - 2_000_000_000
        os.utime(path, ns=(past, past))
        repo.ok("add", "d/t.csv")
        repo.ok("commit", "-m", "t")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.rename(repo.root / "d" / "t.csv", outside / "t.csv")  # the vouched inode, moved
    calls = watch(monkeypatch)
    r = Repository.find(repo.root)

    def diff() -> RowDiff:
        return rowdiff.diff_path(
            r.history, r.store, r.chunker, r.root, r.dir, ["v1", "v2"], b"d/t.csv", ["id"],
            100, threads=1,
        )  # fmt: skip

    os.symlink(outside / "t.csv", repo.root / "d" / "t.csv")  # the file a link
    assert counts(diff()) == EXPECTED
    os.unlink(repo.root / "d" / "t.csv")
    os.rmdir(repo.root / "d")
    os.symlink(outside, repo.root / "d")  # its directory a link
    assert counts(diff()) == EXPECTED
    assert calls == [(False, False), (False, False)]
    repo.ok("fsck")


@pytest.mark.parametrize("kind", ["directory", "fifo"])
def test_a_working_path_that_is_no_file_is_named(tmp_path: Path, kind: str) -> None:
    """`dvfs diff v1 t.csv --rows` where t.csv had become a directory said "dvfs:
    error: Is a directory: 7" (a descriptor's number) and exited 1; it says what a
    FIFO there gets: the path is not a regular file."""
    repo = committed(tmp_path / "repo")
    (repo.root / "t.csv").unlink()
    if kind == "directory":
        (repo.root / "t.csv").mkdir()
    else:
        os.mkfifo(repo.root / "t.csv")
    repo.fail("diff", "v1", "t.csv", "--rows", "--key", "id",
              fragments=("t.csv is not a regular file",), code=2)  # fmt: skip
    assert not [p for p in (repo.root / ".dvfs").iterdir() if p.name.startswith("rows-")]
    if kind == "directory":
        (repo.root / "t.csv").rmdir()
    else:
        (repo.root / "t.csv").unlink()
    repo.ok("restore", "t.csv")
    repo.ok("fsck")


# Every tenth row changed: v2 shares almost no chunk with v1, and both are copied at
# once (vfs.tables.rowdiff._apart), v2's from the start, before the working tree's
# file is read for v1's copy.
SCATTERED = HEADER + "".join(f"{i},n{i % 7},{i * 3 + (i % 10 == 0)}\n" for i in range(3000))


@pytest.mark.parametrize(
    ("v2", "expected"), [(V2, EXPECTED), (SCATTERED, (0, 0, 300, 2700))], ids=["near", "apart"]
)
def test_copies_take_the_chunks_the_working_tree_shares_from_there(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, v2: str, expected: tuple[int, ...]
) -> None:
    # v1 against v2 while the working tree holds v3, a small edit of v1: v1's copy
    # takes the chunks v3 shares with it from the working-tree file, not the store.
    # Changed while they are copied, the copies are made again from the store.
    root = tmp_path / "repo"
    Repository.init(root, chunker=ChunkerParams(min_size=64, avg_size=256, max_size=1024))
    repo = commit_texts(Repo(root), V1, v2, V1.replace("\n1500,n2,4500\n", "\n1500,n2,4501\n"))
    r = Repository.find(root)
    v1 = r.history.lookup(r.history.version(r.history.resolve("v1")).tree, b"t.csv")
    held = r.history.lookup(r.history.version(r.history.resolve("v3")).tree, b"t.csv")
    assert v1 is not None and held is not None
    shared = {c.oid for c in v1.chunks} & {c.oid for c in held.chunks}
    assert len(shared) > len(v1.chunks) // 2
    fetched: list[bytes] = []
    get = ObjectStore.get

    def counted(self: ObjectStore, oid: bytes) -> bytes:
        fetched.append(oid)
        return get(self, oid)

    monkeypatch.setattr(ObjectStore, "get", counted)
    calls = watch(monkeypatch)
    assert counts(diff_in_process(repo)) == expected
    assert calls == [(False, False)] and not shared & set(fetched)

    wt = repo.root / "t.csv"
    copy = source.copy_range

    def rewrite(src: int, pos: int, n: int, dst: int) -> None:
        if os.fstat(src).st_ino == wt.stat().st_ino and b"4501" in wt.read_bytes():
            wt.write_bytes(wt.read_bytes().replace(b"\n1,n1,3\n", b"\n1,n1,9\n"))
        copy(src, pos, n, dst)

    monkeypatch.setattr(source, "copy_range", rewrite)
    shutil.rmtree(repo.root / ".dvfs" / "rowcache")
    fetched.clear()
    calls.clear()
    assert counts(diff_in_process(repo)) == expected
    assert calls == [(False, False)] and shared <= set(fetched)
    repo.ok("fsck")


def test_a_copy_takes_the_working_trees_chunks_without_waiting_for_its_whole_scan(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # v1 against v2 while the working tree holds v3: v1's copy takes the chunks v3
    # shares with it from the working-tree file as soon as it begins, scanning each
    # for its facts as it copies it, instead of waiting for the whole file to be
    # scanned first (on a 100 MiB file, a tenth of a second on one core)
    root = tmp_path / "repo"
    Repository.init(root, chunker=ChunkerParams(min_size=64, avg_size=256, max_size=1024))
    repo = commit_texts(Repo(root), V1, V2, V1.replace("\n1500,n2,4500\n", "\n1500,n2,4501\n"))
    r = Repository.find(root)
    held = r.history.lookup(r.history.version(r.history.resolve("v3")).tree, b"t.csv")
    assert held is not None and len(held.chunks) > 40
    scans: list[int] = []
    first: list[int] = []
    facts_of, copy = source.Facts.of, source.copy_range

    def scanned(data: Any) -> source.Facts:
        scans.append(1)
        return facts_of(data)

    def copied(src: int, pos: int, n: int, dst: int) -> None:
        if not first and os.fstat(src).st_ino == (repo.root / "t.csv").stat().st_ino:
            first.append(len(scans))
        copy(src, pos, n, dst)

    monkeypatch.setattr(source.Facts, "of", scanned)
    monkeypatch.setattr(source, "copy_range", copied)
    calls = watch(monkeypatch)
    assert counts(diff_in_process(repo)) == EXPECTED
    assert calls == [(False, False)]
    assert first and first[0] <= source.AHEAD + 1  # not every chunk of v3 scanned first
    assert len(scans) < 2 * len(held.chunks)  # and not scanned twice over
    repo.ok("fsck")


def test_a_diff_that_stops_keeps_what_it_learned(tmp_path: Path) -> None:
    # The row cache's writes wait for the working-tree file to be found unchanged;
    # a diff that stops (a key naming two rows) keeps them as it did before.
    repo = commit_texts(committed(tmp_path / "repo"), V1 + "7,twice,1\n", V2 + "7,twice,1\n")
    repo.fail("diff", "v3", "v4", "t.csv", "--rows", "--key", "id", fragments=("not unique",))
    kept = cached(repo)
    assert any(n.endswith(".sniff") for n in kept) and any(n.endswith(".facts") for n in kept)
    repo.ok("fsck")


def test_both_versions_are_sniffed_while_the_sides_are_made(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # each side's dialect is sniffed as soon as its first bytes are there (the one read
    # in place at once, the copy once it holds its sample), not after both sides; a
    # diff that finds both sniffs kept sniffs neither
    repo = committed(tmp_path / "r")
    early: list[Path] = []
    late: list[Any] = []
    sniff_early, sniff_csv = Engine.sniff_early, Engine._sniff_csv

    def started(self: Engine, fmt: Any, path: Path, size: int, key: bytes) -> None:
        early.append(path)
        sniff_early(self, fmt, path, size, key)

    def sniffed(self: Engine, samples: Any, fmt: Any) -> Any:
        late.append(samples)
        return sniff_csv(self, samples, fmt)

    monkeypatch.setattr(Engine, "sniff_early", started)
    monkeypatch.setattr(Engine, "_sniff_csv", sniffed)
    calls = watch(monkeypatch)
    assert counts(diff_in_process(repo)) == EXPECTED
    assert calls == [(False, True)]  # v2 read in place, v1 copied
    assert len(early) == 2 and late == []
    early.clear()
    assert counts(diff_in_process(repo)) == EXPECTED
    assert early == [] and late == []


def test_the_file_read_in_place_is_sniffed_before_its_chunks_are_scanned(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the file read in place is whole from the start: its dialect is detected while
    # its chunks are scanned for their facts, not after (the copy's chunks are bytes
    # out of the store, the file's are read into a buffer: memoryview)
    repo = committed(tmp_path / "r")
    events: list[str] = []
    sniff_early, facts_of = Engine.sniff_early, source.Facts.of

    def started(self: Engine, fmt: Any, path: Path, size: int, key: bytes) -> None:
        events.append("sniff in place" if str(path).startswith("/proc/") else "sniff copy")
        sniff_early(self, fmt, path, size, key)

    def scanned(data: Any) -> source.Facts:
        if isinstance(data, memoryview):
            events.append("scan in place")
        return facts_of(data)

    monkeypatch.setattr(Engine, "sniff_early", started)
    monkeypatch.setattr(source.Facts, "of", scanned)
    calls = watch(monkeypatch)
    assert counts(diff_in_process(repo)) == EXPECTED
    assert calls == [(False, True)]
    assert events.index("sniff in place") < events.index("scan in place")
    assert events.count("sniff in place") == events.count("sniff copy") == 1


def test_a_file_changed_before_its_sniff_read_it_gives_the_versions_rows(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # rewritten (same size) after the index vouched for it and before its sample is
    # read: neither that sniff nor the file is used, the diff is made from the store,
    # and the row cache ends as a diff that read only v2's bytes leaves it
    clean = committed(tmp_path / "clean")
    assert counts(diff_in_process(clean)) == EXPECTED
    repo = committed(tmp_path / "repo")
    sniff_early = Engine.sniff_early

    def rewritten(self: Engine, fmt: Any, path: Path, size: int, key: bytes) -> None:
        if str(path).startswith("/proc/"):
            with open(path, "r+b") as f:  # the file read in place
                f.write(V2.replace(",", ";").encode())  # another dialect
        sniff_early(self, fmt, path, size, key)

    monkeypatch.setattr(Engine, "sniff_early", rewritten)
    calls = watch(monkeypatch)
    assert counts(diff_in_process(repo)) == EXPECTED
    assert calls == [(False, False)]
    assert cached(repo) == cached(clean)
    monkeypatch.undo()
    assert cli_counts(repo) == EXPECTED
    repo.ok("fsck")


def test_a_diff_that_lingers_leaves_its_connection_open_and_no_scratch(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the CLI ends the process right after a diff that succeeded: the engine's
    # connection is left to that end; a diff that fails closes it as ever
    repo = committed(tmp_path / "r")
    lingering: list[Any] = []
    monkeypatch.setattr(engine, "_LINGERING", lingering)
    r = Repository.find(repo.root)

    def diff(key: str) -> RowDiff:
        return rowdiff.diff_path(
            r.history, r.store, r.chunker, r.root, r.dir, ["v1", "v2"], b"t.csv", [key], 100,
            threads=1, linger=True,
        )  # fmt: skip

    assert counts(diff("id")) == EXPECTED
    assert len(lingering) == 1
    assert lingering[0].execute("SELECT 42").fetchall() == [(42,)]  # open
    with pytest.raises(UsageError):
        diff("nope")
    assert len(lingering) == 1
    assert not [p for p in r.dir.iterdir() if p.name.startswith("rows-")]
    lingering[0].close()
