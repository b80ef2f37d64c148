"""The fast path of row diffs gives exactly the full diff's answer (hypothesis).

Two versions of a small table are cut with tiny chunks (64 B to 1 KiB) so that a
few hundred rows span many chunks, then edited as data is: values changed, rows
deleted, inserted, moved and duplicated, keys reused. Both paths must agree on
everything a user sees: schema changes, counts, changed columns, the rows shown and
whether the key is unique.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import msgpack
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from tests.support.cli import Repo, commit_files
from vfs.model.chunking import Chunker, ChunkerParams
from vfs.model.codec import ChunkRef
from vfs.model.ids import hash_bytes
from vfs.repo.repository import Repository
from vfs.store.objects import ObjectStore
from vfs.tables import checks, compare, rowdiff, source
from vfs.tables import engine as engine_module
from vfs.tables.engine import Engine, NotTabular, Table
from vfs.tables.formats import Format
from vfs.tables.result import KeyNotUnique, RowDiff
from vfs.tables.rowdiff import diff_rows
from vfs.tables.source import Facts, Side, from_version, from_working

TABLE = Table("csv", (("id", "BIGINT"), ("a", "VARCHAR"), ("b", "BIGINT")))
TINY = Chunker(ChunkerParams(min_size=64, avg_size=256, max_size=1024))
# for files of a few MiB: tiny chunks made 10,000 a side, a third of the CPU time of
# their test spent cutting and matching them
SMALL = Chunker(ChunkerParams(min_size=1024, avg_size=4096, max_size=16384))
WORDS = ["a", "bb", "ccc", "north", "south", "x y", "", "üñï", "tab\there"]

Row = tuple[int, str, str]


def render(rows: list[Row], fmt: Format, crlf: bool) -> bytes:
    """The file of ``rows`` (id, a, b) in ``fmt``."""
    nl = "\r\n" if crlf else "\n"
    if fmt == "jsonl":
        lines = [
            json.dumps({"id": i, "a": a, "b": (int(b) if b.lstrip("-").isdigit() else b)})
            for i, a, b in rows
        ]
        return "".join(line + "\n" for line in lines).encode()
    return ("id,a,b" + nl + "".join(f"{i},{a},{b}{nl}" for i, a, b in rows)).encode()


@st.composite
def versions(draw: st.DrawFn) -> tuple[list[Row], list[Row]]:
    """An old table and an edited new one."""
    n = draw(st.integers(0, 250))
    ids = list(range(n))
    if draw(st.booleans()):
        ids = draw(st.permutations(ids))
    number = st.integers(-999, 99999).map(str)
    old = [(i, draw(st.sampled_from(WORDS)), draw(number)) for i in ids]
    new = list(old)
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.sampled_from(["change", "delete", "insert", "move", "dup", "block"]))
        if not new and op != "insert":
            continue
        at = draw(st.integers(0, max(0, len(new) - 1)))
        if op == "change":
            i, a, b = new[at]
            new[at] = (
                (i, a, draw(number))
                if draw(st.booleans())
                else (i, draw(st.sampled_from(WORDS)), b)
            )
        elif op == "delete":
            del new[at : at + draw(st.integers(1, 20))]
        elif op == "insert":
            key = draw(st.integers(0, n + 50))  # sometimes a key that exists already
            new.insert(at, (key, draw(st.sampled_from(WORDS)), draw(number)))
        elif op == "move":
            block = new[at : at + draw(st.integers(1, 30))]
            del new[at : at + len(block)]
            to = draw(st.integers(0, len(new)))
            new[to:to] = block
        elif op == "dup":
            new.insert(draw(st.integers(0, len(new))), new[at])
        else:  # a block of consecutive rows changed in one column
            for j in range(at, min(len(new), at + draw(st.integers(1, 40)))):
                i, a, b = new[j]
                new[j] = (i, a, b + "7")
    return old, new


@pytest.fixture(scope="module")
def workdir() -> Iterator[Path]:
    with tempfile.TemporaryDirectory() as d:
        yield Path(d)


def side(root: Path, name: str, data: bytes, fmt: Format, chunker: Chunker = TINY) -> Side:
    rel = f"{name}.{fmt}".encode()
    (root / os.fsdecode(rel)).write_bytes(data)
    return from_working(root, rel, chunker, root / f"copy-{name}.{fmt}")


def oracle(old: list[Row], new: list[Row], fmt: Format, keyed: bool) -> Any:
    """(added, removed, changed, unchanged) as plain Python counts them, or the key error."""

    def value(row: Row) -> tuple[Any, ...]:
        i, a, b = row
        return (i, None if a == "" and fmt == "csv" else a, int(b))

    olds, news = [value(r) for r in old], [value(r) for r in new]
    if not keyed:
        a, b = Counter(olds), Counter(news)
        removed, added = sum((a - b).values()), sum((b - a).values())
        return added, removed, 0, len(olds) - removed
    by_old = {r[0]: r for r in olds}
    by_new = {r[0]: r for r in news}
    if len(by_old) != len(olds) or len(by_new) != len(news):
        return "key not unique"
    changed = sum(1 for k in by_old.keys() & by_new.keys() if by_old[k] != by_new[k])
    removed = len(by_old.keys() - by_new.keys())
    return len(by_new.keys() - by_old.keys()), removed, changed, len(olds) - removed - changed


def outcome(result: RowDiff | KeyNotUnique) -> Any:
    """What a user sees of a diff (the path taken and its byte count aside)."""
    if isinstance(result, KeyNotUnique):
        return "key not unique"
    return (
        result.schema, result.added, result.removed, result.changed, result.unchanged,
        result.columns, result.rows, result.more, result.bytes_only is None,
    )  # fmt: skip


def both(root: Path, fmt: Format, old: bytes, new: bytes, key: list[str]) -> tuple[Any, Any, str]:
    """(full outcome, fast outcome, the path the fast attempt took).

    The fast attempt is made twice more after the full diff, with a cache of proved
    files (``vfs.tables.checks``) that the full diff filled, then the fast one: both
    must give the first fast attempt's outcome. So must two more with a cache that a
    fast attempt fills first (it keeps the key's bounds, which the second one reads).
    """
    a, b = side(root, "old", old, fmt), side(root, "new", new, fmt)
    results: list[RowDiff | KeyNotUnique] = []
    with (
        tempfile.TemporaryDirectory(dir=root) as cache,
        tempfile.TemporaryDirectory(dir=root) as other,
    ):
        for share, dvfs_dir in ((None, None), (0.0, None), (None, cache), (0.0, cache)):
            results.append(diff_once(root, fmt, a, b, key, share, dvfs_dir))
        for dvfs_dir in (cache, other, other):
            results.append(diff_once(root, fmt, a, b, key, 0.0, dvfs_dir))
    fast = results[1]
    assert [outcome(r) for r in results[2:]] == [outcome(results[0])] + [outcome(fast)] * 4
    return outcome(results[0]), outcome(fast), getattr(fast, "method", "-")


# The engine the diffs of this module run on, one after another (as_fresh): starting
# one took 0.04 CPU-s, half of what a diff of a few hundred rows takes.
ENGINES: list[tuple[Engine, set[tuple[Any, ...]]]] = []  # and the settings it started with


@pytest.fixture(scope="module", autouse=True)
def engine_closed() -> Iterator[None]:
    with tempfile.TemporaryDirectory() as d:
        ENGINES.append((Engine(Path(d), threads=1), set()))
        ENGINES[0][1].update(raw(ENGINES[0][0], "SELECT name, value FROM duckdb_settings()"))
        yield
        while ENGINES:
            ENGINES.pop()[0].close()


def raw(engine: Engine, sql: str) -> list[tuple[Any, ...]]:
    """``sql``'s rows, on the engine's connection but not through ``Engine.run`` (which
    ``record_queries`` watches)."""
    return engine._call(lambda con: con.execute(sql).fetchall())


@contextlib.contextmanager
def as_fresh() -> Iterator[Engine]:
    """The module's engine for one diff, as ``Engine(scratch, threads=1)`` starts: no
    table or view, no file in its scratch directory, no setting changed, files read
    in pieces. What a diff left is undone after it (a diff's cursors beside are its
    own: their temporary tables and settings go with them); an engine whose state
    cannot be undone, or that failed, is closed and a fresh one started for the next."""
    engine, settings = ENGINES[0]
    ok = False
    try:
        yield engine
        ok = True
    finally:
        engine.cancel_beside()
        ok = ok and not engine._early  # (no diff here sniffs early)
        if ok:
            for kind, listing in (
                ("TABLE", "SELECT database_name, schema_name, table_name FROM duckdb_tables()"),
                ("VIEW", "SELECT database_name, schema_name, view_name FROM duckdb_views() "
                 "WHERE NOT internal"),
            ):  # fmt: skip
                for names in raw(engine, listing):
                    raw(engine, f"DROP {kind} {'.'.join(map(engine_module.ident, names))}")
            changed = set(raw(engine, "SELECT name, value FROM duckdb_settings()")) - settings
            for name, _ in changed:
                raw(engine, f"RESET {name}")
            if changed:
                ok = set(raw(engine, "SELECT name, value FROM duckdb_settings()")) == settings
        for entry in os.scandir(engine.scratch):
            if entry.is_dir(follow_symlinks=False):
                shutil.rmtree(entry.path)
            else:
                os.unlink(entry.path)
        engine.pieces, engine.spill = True, engine_module.SPILL_FLOOR
        if not ok:
            engine.close()
            ENGINES[0] = (Engine(engine.scratch, threads=1), settings)


def diff_once(
    root: Path, fmt: Format, a: Side, b: Side, key: list[str], share: float | None,
    cache: str | None,
) -> RowDiff | KeyNotUnique:  # fmt: skip
    """One diff of two sides (its KeyNotUnique returned), with the cache directory given."""
    with as_fresh() as engine:
        try:
            return diff_rows(
                engine, fmt, a, b, key, limit=1000, fast_share=share,
                cache=Path(cache) if cache else None,
            )  # fmt: skip
        except KeyNotUnique as exc:
            return exc


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    tables=versions(),
    fmt=st.sampled_from(["csv", "jsonl"]),
    keyed=st.booleans(),
    crlf=st.booleans(),
)
def test_fast_path_agrees_with_full_diff(
    workdir: Path, tables: tuple[list[Row], list[Row]], fmt: Format, keyed: bool, crlf: bool
) -> None:
    old, new = tables
    full, fast, method = both(
        workdir, fmt, render(old, fmt, crlf), render(new, fmt, crlf), ["id"] if keyed else []
    )
    event(f"fast attempt took the {method} path")
    assert fast == full
    expected = oracle(old, new, fmt, keyed)
    assert expected == (full if isinstance(full, str) else tuple(full[1:5]))


MIXED = b"id,a\n" + b"".join(b"%d,x\n" % i for i in range(100)) + b"100,y\r\n101,z\n"
NO_CHUNKS = 2.0  # a fast_share no two files reach: only the line path can be taken


def lines_taken(root: Path, fmt: Format, old: bytes, new: bytes) -> bool:
    """Whether the line path finds the changed lines of two files (``rowdiff.line_parts``)."""
    a, b = side(root, "old", old, fmt), side(root, "new", new, fmt)
    with as_fresh() as engine:
        try:
            ot, nt = engine.sniff_pair(fmt, a.file, a.size, b.file, b.size)
        except NotTabular:
            return False
        return rowdiff.line_parts(engine, a, b, ot, nt) is not None


@settings(
    max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(tables=versions(), fmt=st.sampled_from(["csv", "jsonl"]), crlf=st.booleans())
def test_line_path_agrees_with_full_diff(
    workdir: Path, tables: tuple[list[Row], list[Row]], fmt: Format, crlf: bool
) -> None:
    # Keyed diffs of files that share no chunk compare their differing lines only.
    old, new = (render(t, fmt, crlf) for t in tables)
    a, b = side(workdir, "old", old, fmt), side(workdir, "new", new, fmt)
    full, lines = (
        outcome(diff_once(workdir, fmt, a, b, ["id"], share, None)) for share in (None, NO_CHUNKS)
    )
    event(f"line path taken: {lines_taken(workdir, fmt, old, new)}")
    assert lines == full
    expected = oracle(*tables, fmt, True)
    assert expected == (full if isinstance(full, str) else tuple(full[1:5]))


def test_a_table_edited_at_random_is_compared_by_lines(workdir: Path) -> None:
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(3000)]
    edited = [(i, a, str(int(b) + 1)) if i % 50 == 0 else (i, a, b) for i, a, b in rows[:2900]]
    edited += [(9000, "new", "1"), (10, "dup", "2")]  # a fresh key, and a key reused
    for crlf in (False, True):
        old, new = render(rows, "csv", crlf), render(edited, "csv", crlf)
        assert lines_taken(workdir, "csv", old, new)
        a, b = side(workdir, "old", old, "csv"), side(workdir, "new", new, "csv")
        full, lines = (
            outcome(diff_once(workdir, "csv", a, b, ["id"], s, None)) for s in (None, NO_CHUNKS)
        )
        assert lines == full == "key not unique"
        new = render(edited[:-1], "csv", crlf)
        b = side(workdir, "new", new, "csv")
        full, lines = (
            outcome(diff_once(workdir, "csv", a, b, ["id"], s, None)) for s in (None, NO_CHUNKS)
        )
        assert lines == full
        assert full[1:5] == (1, 100, 58, 2842)


def test_changed_lines_are_written_out_in_batches_of_bounded_bytes(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Batches are sized by the longest line: one line at a time here.
    monkeypatch.setattr(engine_module, "LINE_BATCH_BYTES", 10)
    rows = [(i, "w" * (i % 90), str(i)) for i in range(2000)]
    edited = [(i, a + "v", b) if i % 7 == 0 else (i, a, b) for i, a, b in rows]
    old, new = render(rows, "csv", False), render(edited, "csv", False)
    assert lines_taken(workdir, "csv", old, new)
    a, b = side(workdir, "old", old, "csv"), side(workdir, "new", new, "csv")
    full, lines = (
        outcome(diff_once(workdir, "csv", a, b, ["id"], s, None)) for s in (None, NO_CHUNKS)
    )
    assert lines == full
    assert full[1:5] == (0, 0, 286, 1714)


@pytest.mark.parametrize(
    ("old", "new"),
    [
        (b"id,a\n1,x\n2,y\n", b"id,b\n1,x\n2,z\n"),  # another header
        (b'id,a\n1,"x"\n2,y\n', b'id,a\n1,"x"\n2,z\n'),  # a quote character
        (b"id,a\n1,x\n\n2,y\n", b"id,a\n1,x\n2,z\n"),  # an empty line
        (MIXED, MIXED.replace(b"\n5,x\n", b"\n5,q\n")),  # mixed line ends
        (MIXED[:-18], MIXED[:-18].replace(b",x\n", b",y\n")),  # every row rewritten
    ],
)
def test_lines_that_may_not_be_rows_are_not_compared_as_lines(
    workdir: Path, old: bytes, new: bytes
) -> None:
    assert not lines_taken(workdir, "csv", old, new)
    a, b = side(workdir, "old", old, "csv"), side(workdir, "new", new, "csv")
    full, lines = (
        outcome(diff_once(workdir, "csv", a, b, ["id"], s, None)) for s in (None, NO_CHUNKS)
    )
    assert lines == full


def test_a_block_edited_in_a_large_table_is_compared_by_chunks(workdir: Path) -> None:
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(3000)]
    edited = list(rows)
    for j in range(1500, 1520):
        edited[j] = (j, "changed", "0")
    edited.insert(2500, (5000, "new", "1"))
    del edited[100]
    for key in (["id"], []):
        full, fast, method = both(
            workdir, "csv", render(rows, "csv", False), render(edited, "csv", False), key
        )
        assert method == "chunks"
        assert fast == full
        added, removed, changed = full[1], full[2], full[3]
        assert (added, removed, changed) == ((1, 1, 20) if key else (21, 21, 0))


def test_rows_alike_in_the_changed_chunks_are_not_compared(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An edit of a few rows changes the chunks around them (of 16-64 KiB here, a few
    thousand rows): only the rows edited, give or take a row at each end, go to the
    engine, and the answer is the full diff's."""
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(20000)]
    edited = list(rows)
    for j in range(10000, 10010):
        edited[j] = (j, "changed", "0")
    edited.insert(15000, (50000, "new", "1"))
    written: list[list[tuple[int, int]]] = []
    write = source.write_ranges

    def seen(src: int, ranges: Any, out: int, header: bytes = b"") -> None:
        written.append(list(ranges))
        write(src, ranges, out, header)

    monkeypatch.setattr(rowdiff, "write_ranges", seen)
    big = Chunker(ChunkerParams(min_size=16 << 10, avg_size=32 << 10, max_size=64 << 10))
    old, new = render(rows, "csv", False), render(edited, "csv", False)
    (workdir / "big-old.csv").write_bytes(old)
    (workdir / "big-new.csv").write_bytes(new)
    a = from_working(workdir, b"big-old.csv", big, workdir / "copy-big-old.csv")
    b = from_working(workdir, b"big-new.csv", big, workdir / "copy-big-new.csv")
    for key in (["id"], []):
        written.clear()
        fast = diff_once(workdir, "csv", a, b, key, 0.0, None)
        assert isinstance(fast, RowDiff) and fast.method == "chunks"
        assert outcome(fast) == outcome(diff_once(workdir, "csv", a, b, key, None, None))
        assert (fast.added, fast.removed, fast.changed) == ((1, 0, 10) if key else (11, 10, 0))
        sizes = [sum(e - s for s, e in ranges) for ranges in written]
        assert len(sizes) == 2 and max(sizes) < 20 * 30  # rows of ~15 bytes, not chunks


@pytest.mark.parametrize("crlf", [False, True])
def test_edits_in_the_first_and_last_chunks_are_compared_by_chunks(
    workdir: Path, crlf: bool
) -> None:
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(3000)]
    edited = list(rows)
    edited[0] = (0, "first", "1")  # the row right after the header
    edited[-1] = (2999, "last", "2")  # the file's last row
    edited.append((3000, "after", "3"))
    for key in (["id"], []):
        full, fast, method = both(
            workdir, "csv", render(rows, "csv", crlf), render(edited, "csv", crlf), key
        )
        assert method == "chunks"
        assert fast == full
        assert full[1:4] == ((1, 0, 2) if key else (3, 2, 0))


def test_json_lines_with_lines_of_blanks_are_compared_by_chunks(workdir: Path) -> None:
    # A line of spaces (or a tab) is no record, as an empty line is not: the rows
    # counted from the newlines took it for one, and the file got a byte summary.
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(3000)]
    edited = list(rows)
    edited[2000] = (2000, "changed", "1")
    old, new = (render(r, "jsonl", False) for r in (rows, edited))
    old = old.replace(b'\n{"id": 1000,', b'\n  \n{"id": 1000,')
    new = new.replace(b'\n{"id": 1000,', b'\n  \n{"id": 1000,') + b"\t\n"
    for key in (["id"], []):
        full, fast, method = both(workdir, "jsonl", old, new, key)
        assert method == "chunks"
        assert fast == full
        assert full[1:5] == ((0, 0, 1, 2999) if key else (1, 1, 0, 2999))


def test_a_changed_row_reusing_a_shared_rows_key_is_found(workdir: Path) -> None:
    # The old rows are read whole for the key check: a key the new side repeats
    # between its changed rows and the rows both sides share is an error on both paths.
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(3000)]
    for reused, expected in ((2000, "chunks"), (10, "-")):  # 10 stays, in a shared chunk
        edited = list(rows)
        edited[2000] = (reused, "again", "1")
        full, fast, method = both(
            workdir, "csv", render(rows, "csv", False), render(edited, "csv", False), ["id"]
        )
        assert method == expected  # with a fresh key, the same edit takes the fast path
        assert fast == full
    assert full == "key not unique"


def test_an_old_file_proved_before_is_read_for_the_keys_that_could_collide(
    workdir: Path,
) -> None:
    # A first diff proves the old file's key (vfs.tables.checks); later diffs against it
    # read its key column only, yet still find a key reused from the shared rows.
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(3000)]
    old = render(rows, "csv", False)
    fresh, reused, moved, twice = list(rows), list(rows), list(rows), list(rows)
    fresh[2000] = (2000, "again", "1")  # edited in place: CB's keys are CA's
    reused[2000] = (10, "again", "1")  # 10 stays, in a shared chunk
    twice[2000] = (2000, "again", "1")
    twice.insert(2001, (2000, "twice", "1"))  # a key CA has, twice in CB
    moved[2000] = (2000, "again", "1")
    moved.insert(2100, (3000, "new", "2"))
    del moved[2500]
    with tempfile.TemporaryDirectory(dir=workdir) as cache:
        a = side(workdir, "old", old, "csv")
        got: dict[str, Any] = {}
        edits = (("fresh", fresh), ("reused", reused), ("moved", moved), ("twice", twice))
        for name, new in edits:
            b = side(workdir, "new", render(new, "csv", False), "csv")
            cold = diff_once(workdir, "csv", a, b, ["id"], 0.0, None)
            if name == "fresh":
                assert not (Path(cache) / "rowcache").exists()
                diff_once(workdir, "csv", a, b, ["id"], None, cache)  # proves both sides
                kept = os.listdir(Path(cache) / "rowcache")
                assert len([n for n in kept if not n.endswith(".sniff")]) == 2
            warm = diff_once(workdir, "csv", a, b, ["id"], 0.0, cache)
            assert outcome(warm) == outcome(cold)
            got[name] = outcome(warm), getattr(warm, "method", "-")
    assert got["fresh"][0][1:4] == (0, 0, 1) and got["fresh"][1] == "chunks"
    assert got["reused"][0] == got["twice"][0] == "key not unique"
    assert got["moved"][0][1:4] == (1, 1, 1) and got["moved"][1] == "chunks"


def diff_v1_v2(root: Path) -> Any:
    """The outcome of the keyed row diff of t.csv between v1 and v2, run in-process."""
    r = Repository.find(root)
    return outcome(
        rowdiff.diff_path(
            r.history, r.store, r.chunker, r.root, r.dir, ["v1", "v2"], b"t.csv", ["id"],
            1000, threads=1,
        )
    )  # fmt: skip


def record_queries(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The list every query the engine runs is appended to, from now on."""
    sql: list[str] = []
    run = Engine.run

    def seen(self: Engine, query: str) -> list[tuple[Any, ...]]:
        sql.append(query)
        return run(self, query)

    aside = Engine.run_aside

    def seen_aside(self: Engine, query: str) -> list[tuple[Any, ...]]:
        sql.append(query)
        return aside(self, query)

    beside = Engine.call_beside

    def seen_beside(self: Engine, fn: Callable[[Callable[[str], Any]], Any]) -> Any:
        def watched(run: Callable[[str], Any]) -> Any:
            def recorded(query: str) -> Any:
                sql.append(query)
                return run(query)

            return fn(recorded)

        return beside(self, watched)

    monkeypatch.setattr(Engine, "run", seen)
    monkeypatch.setattr(Engine, "run_aside", seen_aside)
    monkeypatch.setattr(Engine, "call_beside", seen_beside)
    return sql


def test_rows_added_with_keys_beyond_the_old_files_are_compared_without_reading_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A first diff keeps the bounds of the old file's integer key (vfs.tables.checks);
    # rows added later with keys beyond them cannot collide with a shared row, so the
    # old file is not read again. A key within the bounds (a gap refilled) still is,
    # and a key reused from a shared row is still an error.
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(3000) if i != 1500]
    old = render(rows, "csv", False)
    appended, refilled, reused = list(rows), list(rows), list(rows)
    for new in (appended, refilled, reused):
        new[2000] = (new[2000][0], "again", "1")
    appended += [(3000 + j, "new", str(j)) for j in range(5)] + [(-7, "low", "1")]
    refilled.append((1500, "back", "2"))
    reused.append((10, "again", "2"))
    sql = record_queries(monkeypatch)
    a = side(workdir, "old", old, "csv")
    first = side(workdir, "new", render(rows[:-1], "csv", False), "csv")
    got: dict[str, Any] = {}
    with tempfile.TemporaryDirectory(dir=workdir) as cache:
        diff_once(workdir, "csv", a, first, ["id"], 0.0, cache)  # proves the old file
        kept = [
            (Path(cache) / "rowcache" / n).read_bytes()
            for n in os.listdir(Path(cache) / "rowcache")
        ]
        assert b"dvfs-rows 1 2999 0 2999\n" in kept
        for name, new in (("appended", appended), ("refilled", refilled), ("reused", reused)):
            b = side(workdir, "new", render(new, "csv", False), "csv")
            cold = diff_once(workdir, "csv", a, b, ["id"], None, None)
            sql.clear()
            warm = diff_once(workdir, "csv", a, b, ["id"], 0.0, cache)
            assert outcome(warm) == outcome(cold)
            read = any(
                str(a.file) in q for q in sql if "sniff_csv" not in q
            )  # rows, not its dialect
            got[name] = outcome(warm), warm.method if isinstance(warm, RowDiff) else "-", read
    assert got["appended"][0][1:4] == (6, 0, 1) and got["appended"][1:] == ("chunks", False)
    assert got["refilled"][0][1:4] == (1, 0, 1) and got["refilled"][1:] == ("chunks", True)
    assert got["reused"][0] == "key not unique"


def test_a_sample_sniffed_before_is_not_sniffed_again(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The engine's answer for a CSV's first bytes is kept (vfs.tables.checks): a later
    # diff of files starting with the same bytes sniffs only the samples it lacks,
    # and reads the files as the first diff did.
    monkeypatch.setattr(engine_module, "SNIFF_BYTES", 4096)
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(3000)]
    head = [(i, a, b + "1") if i < 3 else (i, a, b) for i, a, b in rows]  # in the samples
    sql = record_queries(monkeypatch)
    sniffs = []
    a = side(workdir, "old", render(rows, "csv", False), "csv")
    with tempfile.TemporaryDirectory(dir=workdir) as cache:
        for edited in (rows[:-1], head, head):
            b = side(workdir, "new", render(edited, "csv", False), "csv")
            sql.clear()
            warm = diff_once(workdir, "csv", a, b, ["id"], 0.0, cache)
            sniffs.append(sum(q.count("sniff_csv(") for q in sql))
            assert outcome(warm) == outcome(diff_once(workdir, "csv", a, b, ["id"], 0.0, None))
    assert sniffs == [1, 1, 0]  # one sample shared; then the new one alone; then none


@pytest.mark.parametrize(
    ("odd", "seen"),
    [
        (b"2000,w,many", "compared as text"),  # not a number, after the sniffed sample
        (b"2000,\xff\xfe,14000", "byte-level"),  # not UTF-8, in a text column
        (b"2000,\xc3\xbc,14000", None),  # not ASCII, but UTF-8
    ],
)
def test_a_value_in_the_shared_rows_is_checked_as_the_full_path_checks_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, odd: bytes, seen: str | None
) -> None:
    # The odd row lies in the middle of a 200 KB file: beyond the sniffed sample and
    # the ends that the format check looks at, in chunks both versions share.
    monkeypatch.setattr(engine_module, "SNIFF_BYTES", 4096)
    rows = [(i, "w" * 40, str(i * 7)) for i in range(4000)]
    row = f"\n2000,{'w' * 40},14000\n".encode()
    old = render(rows, "csv", False).replace(row, b"\n" + odd + b"\n")
    assert odd in old and len(old) > 3 * 64 * 1024
    new = old.replace(b"\n3500,", b"\n3500,v")  # far from the odd row
    for key in (["id"], []):
        full, fast, method = both(workdir, "csv", old, new, key)
        assert method == ("bytes" if seen == "byte-level" else "chunks")
        assert fast == full
        notes = " ".join(diff_rows_notes(workdir, old, new, key))
        assert (seen or "no note") in (notes or "no note")


def test_a_value_that_does_not_fit_is_placed_in_its_file_not_in_the_changed_rows(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The note said where the engine met the value, by its line in the file it read:
    on the fast and line paths, the changed rows written out, so "CSV Error on Line:
    2" for a value on line 3,002 of the new file; and no path named which file."""
    monkeypatch.setattr(engine_module, "SNIFF_BYTES", 4096)
    rows = [(i, "w" * 40, str(i * 7)) for i in range(4000)]
    old = render(rows, "csv", False)
    new = old.replace(f"\n3000,{'w' * 40},21000\n".encode(), b"\n3000,w,many\n")
    for key in (["id"], []):
        full, fast, lines = (
            diff_rows_notes(workdir, old, new, key, s) for s in (None, 0.0, NO_CHUNKS)
        )
        for notes in (full, fast, lines):
            assert len(notes) == 1 and "compared as text" in notes[0], notes
            assert 'Could not convert string "many"' in notes[0]
            assert "in new.csv in the working tree" in notes[0]
        assert "Line: 3002;" in full[0]
        assert "Line" not in fast[0]
        assert "Line" not in lines[0] if key else lines == full  # (keyed diffs only)


def diff_rows_notes(
    root: Path, old: bytes, new: bytes, key: list[str], share: float | None = 0.0
) -> list[str]:
    """The notes of the fast attempt at a diff of two CSVs."""
    a, b = side(root, "old", old, "csv"), side(root, "new", new, "csv")
    with as_fresh() as engine:
        return diff_rows(engine, "csv", a, b, key, fast_share=share).notes


@pytest.mark.parametrize(
    ("odd", "seen"),
    [
        (b"2000,w,many", "compared as text"),
        (b"2000,\xff\xfe,14000", "byte-level"),
        (b"2000,\xc3\xbc,14000", None),
        (b"3000,w,21000", "not unique"),  # a key the old file holds twice
    ],
)
def test_a_value_in_the_shared_lines_is_checked_as_the_full_path_checks_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch, odd: bytes, seen: str | None
) -> None:
    # Every 20th row edited: the line path, which never compares the lines both files
    # share, finds the odd row among them (a value its type does not fit, bytes that
    # are not UTF-8, a key held twice) as the full path does, or stops as it does.
    monkeypatch.setattr(engine_module, "SNIFF_BYTES", 4096)
    rows = [(i, "w", str(i * 7)) for i in range(4000)]
    old = render(rows, "csv", False).replace(b"\n2000,w,14000\n", b"\n" + odd + b"\n")
    edited = [(i, a, str(int(b) + 1)) if i % 20 == 1 else (i, a, b) for i, a, b in rows]
    new = render(edited, "csv", False).replace(b"\n2000,w,14000\n", b"\n" + odd + b"\n")
    a, b = side(workdir, "old", old, "csv"), side(workdir, "new", new, "csv")
    full, lines = (
        outcome(diff_once(workdir, "csv", a, b, ["id"], s, None)) for s in (None, NO_CHUNKS)
    )
    assert lines == full
    if seen == "not unique":
        assert full == "key not unique"
        return
    assert lines_taken(workdir, "csv", old, new) == (seen != "byte-level")
    if seen == "byte-level":
        assert full[-1] is False  # a byte-level summary
    else:
        assert full[1:5] == (0, 0, 200, 3800)
    notes = " ".join(diff_rows_notes(workdir, old, new, ["id"], NO_CHUNKS))
    assert (seen or "no note") in (notes or "no note")


def test_two_samples_are_sniffed_as_each_alone(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(engine_module, "SNIFF_BYTES", 4096)  # samples: prefixes of the files
    body = "".join(f"{i},{WORDS[i % 5]},{i * 7}\n" for i in range(1000))
    files = {
        "base": "id,a,b\n" + body,
        "tail": "id,a,b\n" + body + "1000,x,not a number\n",  # same sample as base
        "typed": "id,a,b\n" + body.replace(",0\n", ",zero\n"),  # b as text in its sample
        "small": "id;a\n1;x\n",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = workdir / f"sniff-{name}.csv"
        paths[name].write_text(text)
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        engine = Engine(Path(scratch), threads=1)
        try:
            alone = {n: engine.sniff("csv", p, p.stat().st_size) for n, p in paths.items()}
            assert alone["base"] == alone["tail"] != alone["typed"] != alone["small"]
            for a in paths:
                for b in paths:
                    pa, pb = paths[a], paths[b]
                    got = engine.sniff_pair("csv", pa, pa.stat().st_size, pb, pb.stat().st_size)
                    assert got == (alone[a], alone[b]), (a, b)
        finally:
            engine.close()
    assert not [p for p in workdir.iterdir() if p.name.endswith(".sniff")]


def test_samples_sniffed_early_are_sniffed_as_each_alone(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Engine.sniff_early (while the copies are written) gives sniff_pair the Tables it
    # would find itself, and leaves a sample that is not text (NUL) to it.
    monkeypatch.setattr(engine_module, "SNIFF_BYTES", 4096)
    body = "".join(f"{i},{WORDS[i % 5]},{i * 7}\n" for i in range(1000))
    files = {
        "base": "id,a,b\n" + body,
        "typed": "id,a,b\n" + body.replace(",0\n", ",zero\n"),
        "small": "id;a\n1;x\n",
        "nul": "id,a\n1,\0\n",
    }
    paths = {}
    for name, text in files.items():
        paths[name] = workdir / f"early-{name}.csv"
        paths[name].write_text(text)
    size = {n: p.stat().st_size for n, p in paths.items()}
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        alone_engine = Engine(Path(scratch), threads=1)
        try:
            alone = {n: alone_engine.sniff("csv", paths[n], size[n]) for n in files}
        finally:
            alone_engine.close()
    for a in files:
        for b in files:
            with tempfile.TemporaryDirectory(dir=workdir) as scratch:
                engine = Engine(Path(scratch), threads=1)
                try:
                    keys = (a.encode(), b.encode())
                    for name, key in ((a, keys[0]), (b, keys[1])):
                        engine.sniff_early("csv", paths[name], size[name], key)
                    early = {k for _, k in engine._early}
                    assert early == {n.encode() for n in (a, b) if n != "nul"}, (a, b)
                    got = engine.sniff_pair(
                        "csv", paths[a], size[a], paths[b], size[b], keys=keys,
                        kept=checks.KeptSniffs(None),
                    )  # fmt: skip
                    assert got == (alone[a], alone[b]), (a, b)
                finally:
                    engine.close()
                assert not [p for p in Path(scratch).iterdir() if p.name.endswith(".sniff")]


def test_a_sample_the_engine_refuses_early_is_refused_as_without_it(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # the old side's refusal is the one raised, sniffed early or not
    monkeypatch.setattr(engine_module, "SNIFF_BYTES", 4096)
    good, bad = workdir / "good.csv", workdir / "bad.csv"
    good.write_text("id,a\n" + "".join(f"{i},x\n" for i in range(500)))
    bad.write_bytes(b"id,a\r1,x\r" + b"2,y\n" * 3 + b"\r\r\n" * 3)
    messages = []
    for early in ((), (0,), (1,), (0, 1)):
        with tempfile.TemporaryDirectory(dir=workdir) as scratch:
            engine = Engine(Path(scratch), threads=1)
            try:
                for i in early:
                    path = (bad, good)[i]
                    engine.sniff_early("csv", path, path.stat().st_size, b"%d" % i)
                try:
                    engine.sniff_pair(
                        "csv", bad, bad.stat().st_size, good, good.stat().st_size, keys=(b"0", b"1")
                    )
                except NotTabular as exc:
                    messages.append(str(exc).replace(str(scratch), "S"))
                else:
                    messages.append("sniffed")
            finally:
                engine.close()
    assert len(set(messages)) == 1, messages


def seen(result: RowDiff | KeyNotUnique) -> Any:
    """What a user sees of a diff, a repeated key's error with the example it names."""
    return str(result) if isinstance(result, KeyNotUnique) else outcome(result)


# The rows past which the perfect hash table and the bitmap are taken, in the tests of
# them: their answers are those of every size, the thresholds a 32nd of the usual ones.
SMALL_PERFECT = 1 << 11


def test_many_rows_keyed_by_lines_agree_with_the_full_diff(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past PERFECT_ROWS rows, the old file's keys (integers) are counted in a perfect
    # hash table, or one integer column's checked by a bitmap (past BITMAP_ROWS),
    # and the new side's follow from them (compare.shared_totals): the answer, and a
    # repeated key's error, are the full path's.
    monkeypatch.setattr(compare, "PERFECT_ROWS", SMALL_PERFECT)  # (smaller files)
    monkeypatch.setattr(compare, "BITMAP_ROWS", SMALL_PERFECT)
    n = compare.PERFECT_ROWS + 5000
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(n)]
    edited = [(i, a, str(int(b) + 1)) if i % 97 == 0 else (i, a, b) for i, a, b in rows]
    edited = [r for r in edited if r[0] % 1001 != 3] + [(n + 5, "new", "1")]
    assert compare.perfect_bits(*(TABLE,) * 2, ["id"], n) is not None
    assert compare.perfect_bits(*(TABLE,) * 2, ["a"], n) is None  # text: a hash table
    none: list[bytes] = []
    cases = {  # (old rows, new rows, lines appended to the old file, to the new)
        "clean": (rows, edited, none, none),
        "old repeats a key": ([*rows, (77, "again", "1")], edited, none, none),
        "new repeats a shared key": (rows, [*edited, (5000, "again", "1")], none, none),
        "new repeats an added key": (rows, [*edited, (n + 5, "again", "2")], none, none),
        "new reuses a removed key twice": (
            rows,
            [*edited, (3, "x", "1"), (3, "y", "2")],
            none,
            none,
        ),
        "an empty key on each side": (rows, edited, [b",a,1"], [b",a,2"]),
        "old repeats the empty key": (rows, edited, [b",a,1", b",b,2"], none),
        "new repeats the empty key": (rows, edited, [b",a,1"], [b",a,2", b",b,1"]),
    }
    for crlf in (False, True):
        nl = b"\r\n" if crlf else b"\n"
        for name, (old, new, more_old, more_new) in cases.items():
            if crlf and name not in ("clean", "new repeats a shared key"):
                continue  # (each diff of these files takes a second)
            old_bytes = render(old, "csv", crlf) + b"".join(line + nl for line in more_old)
            new_bytes = render(new, "csv", crlf) + b"".join(line + nl for line in more_new)
            if name == "clean":
                assert lines_taken(workdir, "csv", old_bytes, new_bytes)
            a = side(workdir, "old", old_bytes, "csv")
            b = side(workdir, "new", new_bytes, "csv")
            # a key of two integers takes the perfect hash table too; with a text, not
            for key in (["id"], ["id", "b"], ["a", "id"])[: 3 if name == "clean" else 2]:
                full, lines = (
                    diff_once(workdir, "csv", a, b, key, s, None) for s in (None, NO_CHUNKS)
                )
                assert seen(lines) == seen(full), (name, key, crlf)
                if key != ["id"]:
                    continue
                if name in ("clean", "an empty key on each side"):
                    assert isinstance(full, RowDiff), name
                    changed = sum(1 for i in range(n) if i % 97 == 0 and i % 1001 != 3)
                    changed += name != "clean"
                    removed = sum(1 for i in range(n) if i % 1001 == 3)
                    assert (full.added, full.removed, full.changed) == (1, removed, changed)
                else:
                    assert isinstance(full, KeyNotUnique), name


def test_a_dense_integer_key_is_checked_without_grouping_the_old_files_keys(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Past PERFECT_ROWS rows, a key of one integer column whose values span few more
    # than its rows is checked for repeats by a bitmap of its values, not by grouping
    # every key of the old file (compare.shared_totals); the new side's bounds are
    # found without the old keys' anti-join where CA holds neither extreme key. The
    # answer and the bounds kept (vfs.tables.checks) are those of every key counted.
    monkeypatch.setattr(compare, "PERFECT_ROWS", SMALL_PERFECT)  # (smaller files)
    monkeypatch.setattr(compare, "BITMAP_ROWS", SMALL_PERFECT)
    n = compare.PERFECT_ROWS + 1000
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(n)]

    def edit(row: Row) -> Row:
        return (row[0], row[1], str(int(row[2]) + 1))

    middle = [edit(r) if r[0] % 97 == 5 else r for r in rows if r[0] % 1001 != 3]
    cases = {  # the new rows; CA holding neither old extreme, one, or both
        "middle, keys added beyond both ends": [(-4, "low", "1"), *middle, (n + 9, "high", "2")],
        "middle only": middle,
        "the last row removed": middle[:-1],
        "the first row changed": [edit(middle[0]), *middle[1:]],
        "both ends changed": [edit(middle[0]), *middle[1:-1], edit(middle[-1])],
    }
    sql = record_queries(monkeypatch)
    a = side(workdir, "old", render(rows, "csv", False), "csv")
    for name, new in cases.items():
        b = side(workdir, "new", render(new, "csv", False), "csv")
        full = diff_once(workdir, "csv", a, b, ["id"], None, None)
        with tempfile.TemporaryDirectory(dir=workdir) as cache:
            sql.clear()
            lines = diff_once(workdir, "csv", a, b, ["id"], NO_CHUNKS, cache)
            kept = {p.read_bytes() for p in (Path(cache) / "rowcache").iterdir()}
        assert isinstance(lines, RowDiff) and lines.method == "full", name
        assert outcome(lines) == outcome(full), name
        ids = [r[0] for r in new]
        assert {
            b"dvfs-rows 1 %d 0 %d\n" % (n, n - 1),
            b"dvfs-rows 1 %d %d %d\n" % (len(new), min(ids), max(ids)),
        } <= kept, name
        keys_read = [q for q in sql if compare.KEYS_TABLE in q]
        assert keys_read, name  # the old file's keys were read into their table
        assert not any(f"FROM {compare.KEYS_TABLE} GROUP BY" in q for q in keys_read), name


def test_quoted_fields_take_the_full_path(workdir: Path) -> None:
    # A quoted field may hold a newline, so lines are not rows: no fast path.
    rows = b"id,a\n" + b"".join(b'%d,"x\ny"\n' % i for i in range(2000))
    edited = rows.replace(b'1000,"x\ny"', b'1000,"z\ny"')
    full, fast, method = both(workdir, "csv", rows, edited, ["id"])
    assert method == "full"
    assert fast == full
    assert full[3] == 1  # one row changed, its value spanning two lines


def test_a_header_changed_takes_the_full_path(workdir: Path) -> None:
    rows = [(i, "a", str(i)) for i in range(2000)]
    old = render(rows, "csv", False)
    new = old.replace(b"id,a,b\n", b"id,a,c\n", 1)
    full, fast, method = both(workdir, "csv", old, new, ["id"])
    assert method == "full"
    assert fast == full
    assert [s.status for s in full[0]] == ["removed", "added"]


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=64) | st.lists(st.sampled_from([b"\n", b"\r", b"a", b'"'])).map(b"".join))
def test_chunk_facts_read_back_are_the_facts_scanned(data: bytes) -> None:
    kept = msgpack.unpackb(msgpack.packb(Facts.of(data).fields()), raw=False)
    assert Facts.kept(kept, len(data)) == Facts.of(data)
    assert Facts.kept(kept, len(data) + 1) in (None, Facts.of(data))


@pytest.mark.parametrize(
    ("data", "rows"),
    [
        (b"id,v\n1,a\n2,b\n", 2),
        (b"id,v\r\n1,a\r\n2,b\r\n", 2),
        (b"id,v\n1,a\n2,b", 2),  # no newline at the end
        (b"id,v\n", 0),
        (b"id,v\n1,a\n\n2,b\n", None),  # an empty line: the engine skips it
        (b"id,v\n1,a\r\n\r\n2,b\n", None),
        (b"\nid,v\n1,a\n", None),
        (b"id,v\n1,a\rb\n", None),  # a lone carriage return
        (b'id,v\n1,"a"\n', None),  # a quote: a field may hold a newline
    ],
)
def test_rows_are_counted_from_newlines_only_where_that_is_exact(
    data: bytes, rows: int | None
) -> None:
    # Cut in two at every position, so that each seam (\r | \n, \n | \n) falls
    # between two chunks once.
    for cut in range(len(data) + 1):
        s = Side("v1", b"rows.csv", Path("/dev/null"))
        for part in (data[:cut], data[cut:]):
            if part:
                s._take(ChunkRef(hash_bytes(part), len(part)), Facts.of(part))
        assert s.rows(True, '"') == rows, (data, cut)


def test_a_query_asked_from_inside_a_query_runs_instead_of_waiting(workdir: Path) -> None:
    """The engine runs queries on its one thread; a query that asks for another (a
    writer counting what it wrote, say) must get its answer, not wait for itself."""
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        engine = Engine(Path(scratch), threads=1)
        try:

            def nested(con: Any) -> list[tuple[Any, ...]]:
                return [*con.execute("SELECT 1").fetchall(), *engine.run("SELECT 2")]

            assert engine._call(nested) == [(1,), (2,)]
            assert engine.run("SELECT 3") == [(3,)]  # and the engine goes on
        finally:
            engine.close()


def tiny_repo(root: Path, tables: tuple[list[Row], ...]) -> Repo:
    """A repository cut with tiny chunks whose versions v1, v2... hold ``tables`` as
    t.csv (the add and commit made in this process: the diffs after are the subject)."""
    Repository.init(root, chunker=TINY.params).close()
    repo = Repo(root)
    for table in tables:
        commit_files(repo, {"t.csv": render(table, "csv", False)}, "t")
    return repo


def test_versions_sharing_chunks_are_copied_lazily_and_compared_alike(tmp_path: Path) -> None:
    # With the chunk facts kept by a first diff (vfs.tables.source), a later diff of two
    # versions that share chunks writes only the chunks it reads into its copies: the
    # answers are those of the first diff and of the full path, and a lazy copy holds
    # the file's bytes wherever it was filled, and all of them once asked for whole.
    root = tmp_path / "repo"
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(12000)]  # 4 LOOKs and more
    block = [(i, a, b + "1") if 5200 <= i < 5250 else (i, a, b) for i, a, b in rows]
    grown = [(i, "again", b) if i == 700 else (i, a, b) for i, a, b in rows]
    grown += [(12000 + j, "new", str(j)) for j in range(40)]
    scattered = [(i, a, b + "2") if i % 40 == 0 else (i, a, b) for i, a, b in rows]
    reused = [*block, (10, "dup", "3")]
    repo = tiny_repo(root, (rows, block, grown, scattered, reused))
    pairs = [("v1", f"v{n}") for n in range(2, 6)] + [("v3", "v2"), ("v5", "v1")]

    def diff(a: str, b: str, share: float | None) -> Any:
        r = Repository.find(root)
        try:
            got = rowdiff.diff_path(
                r.history, r.store, r.chunker, r.root, r.dir, [a, b], b"t.csv", ["id"], 1000,
                threads=1, fast_share=share,
            )  # fmt: skip
        except KeyNotUnique as exc:
            return outcome(exc)
        return outcome(got)

    first = {p: diff(*p, rowdiff.FAST_SHARE) for p in pairs}  # keeps the chunks' facts
    assert any(n.endswith(".facts") for n in os.listdir(root / ".dvfs" / "rowcache"))
    for p in pairs:
        assert diff(*p, rowdiff.FAST_SHARE) == first[p] == diff(*p, None), p
    assert first[("v1", "v5")] == "key not unique"
    assert first[("v1", "v3")][1:4] == (40, 0, 1)

    r = Repository.find(root)
    entry = r.history.lookup(r.history.version(r.history.resolve("v2")).tree, b"t.csv")
    assert entry is not None and len(entry.chunks) > 20
    whole = render(block, "csv", False)
    with tempfile.TemporaryDirectory(dir=tmp_path) as scratch:
        copy = Path(scratch) / "copy.csv"
        lazy = from_version(r.store, entry, "v2", b"t.csv", copy, cache=r.dir, lazy=True)
        middle = len(whole) // 2
        lazy.fill(middle, middle + 100)
        held = copy.read_bytes()
        assert len(held) == len(whole) and held.count(0) > 10_000  # holes left
        assert held[middle : middle + 100] == whole[middle : middle + 100]
        assert held[:64] == whole[:64] and held[-64:] == whole[-64:]  # the format check's
        assert lazy.file.read_bytes() == whole
        assert (lazy.head, lazy.rows(True, '"')) == (whole[: len(lazy.head)], 12000)
    repo.fsck_clean()


def test_a_whole_copy_is_kept_for_the_next_diff_and_a_damaged_one_is_not_used(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A diff keeps the whole copies it wrote (vfs.tables.source); the next diff of the
    # same versions uses them instead of reading the chunks from the store. A kept
    # copy whose bytes differ from the chunks', of another size, or that is a link,
    # is not used and is replaced; the least recently used go past the budget, and
    # all of them when the disk is short of room.
    monkeypatch.setattr(source, "COPY_MIN", 1)
    root = tmp_path / "repo"
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(6000)]
    scattered = [(i, a, b + "2") if i % 3 == 0 else (i, a, b) for i, a, b in rows]
    files = [render(v, "csv", False) for v in (rows, scattered)]
    repo = tiny_repo(root, (rows, scattered))
    # Written again, the working file is one the index does not vouch for: v2 is
    # copied too, not read in place (vfs.tables.source.from_tree_file).
    repo.write("t.csv", files[1])
    r = Repository.find(root)
    chunks = set()
    for rev in ("v1", "v2"):
        entry = r.history.lookup(r.history.version(r.history.resolve(rev)).tree, b"t.csv")
        assert entry is not None
        chunks |= {c.oid for c in entry.chunks}
    fetched: list[bytes] = []
    get = ObjectStore.get

    def counted(self: ObjectStore, oid: bytes) -> bytes:
        if oid in chunks:
            fetched.append(oid)
        return get(self, oid)

    monkeypatch.setattr(ObjectStore, "get", counted)
    cache = root / ".dvfs" / "rowcache"

    def diff() -> Any:
        fetched.clear()
        return diff_v1_v2(root)

    def copies() -> list[bytes]:
        return sorted((cache / n).read_bytes() for n in os.listdir(cache) if n.endswith(".copy"))

    first = diff()
    assert first[1:4] == (0, 0, 2000) and len(fetched) > 40
    assert copies() == sorted(files)
    assert diff() == first and fetched == []  # both copies used, no chunk read
    names = sorted(n for n in os.listdir(cache) if n.endswith(".copy"))
    kept = cache / names[0]
    good = kept.read_bytes()
    for damage in (
        good[:100] + bytes([good[100] ^ 1]) + good[101:],  # a bit flipped
        good[:-1],  # a byte short
        good + b"\n",  # a byte more
        None,  # a link to a file with the right bytes
        b"",  # a FIFO (opening it for reading would wait for a writer)
    ):
        kept.unlink()
        if damage is None:
            (tmp_path / "elsewhere").write_bytes(good)
            kept.symlink_to(tmp_path / "elsewhere")
        elif not damage:
            os.mkfifo(kept)
            for facts in cache.glob("*.facts"):  # the facts too: the copy scans them again
                facts.unlink()
                os.mkfifo(facts)
        else:
            kept.write_bytes(damage)
        assert diff() == first and len(fetched) > 20  # one side read from the store
        assert kept.is_file() and not kept.is_symlink() and kept.read_bytes() == good
        assert diff() == first and fetched == []  # and its copy kept again
    monkeypatch.setattr(source, "COPIES", max(map(len, files)) + 1)  # room for one
    assert diff() == first and len(copies()) == 2  # a diff that writes none removes none
    kept.unlink()
    assert diff() == first
    assert [n for n in os.listdir(cache) if n.endswith(".copy")] == [kept.name]  # the newest
    monkeypatch.setattr(source, "COPIES", 1 << 62)  # more than the disk has free
    assert diff() == first and copies() == []  # none kept, the one there removed
    repo.fsck_clean()


def test_a_kept_sniff_is_found_by_the_chunks_without_reading_the_files(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the engine sniffed in a file's first bytes is kept by the chunks holding
    # them (vfs.tables.checks): the next diff of the same versions sniffs nothing,
    # and one whose kept sniffs were damaged sniffs again, with the same answer.
    root = tmp_path / "repo"
    rows = [(i, WORDS[i % 5], str(i * 7)) for i in range(3000)]
    block = [(i, a, b + "1") if 1200 <= i < 1210 else (i, a, b) for i, a, b in rows]
    repo = tiny_repo(root, (rows, block))

    def diff() -> Any:
        return diff_v1_v2(root)

    first = diff()
    assert first[1:4] == (0, 0, 10)
    sql = record_queries(monkeypatch)
    assert diff() == first
    assert not any("sniff_csv" in q for q in sql)
    sniffs = list((root / ".dvfs" / "rowcache").glob("*.sniff"))
    assert len(sniffs) == 2
    for kept in sniffs:
        kept.write_bytes(b"\x92\x01\x91junk")
    sql.clear()
    assert diff() == first
    assert any("sniff_csv" in q for q in sql)
    repo.fsck_clean()


def test_a_large_file_is_read_in_pieces_of_at_most_7_mib() -> None:
    """A CSV of 100 MiB or 10 GiB whose lines are its rows is read in pieces of at most
    7 MiB (``engine.scan_options``): the reader holds a few pieces a thread at once,
    and 13 MiB pieces of the benchmark's 101 MiB file raised a first diff's peak
    memory by a tenth. A line longer than half a piece still gets a piece twice its
    length, and every piece is whole MiB."""
    mib = 1 << 20
    for size in (100 * mib, 10 << 30):
        opts = dict(engine_module.scan_options((), size, 100))
        assert int(opts["buffer_size"]) == 7 * mib
    opts = dict(engine_module.scan_options((), 100 * mib, 5 * mib))
    assert int(opts["buffer_size"]) == 11 * mib  # 2 x (5 MiB + "\r\n"), in whole MiB
    assert int(opts["max_line_size"]) == 5 * mib + 2


def test_files_of_several_mib_read_in_pieces_give_the_whole_files_answer(
    workdir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A table of a few MiB, each line a row, is read in 1 MiB pieces on two threads
    (``engine.scan_options``) by every path, with either line ending; the answer is
    the one read whole, and plain Python's. A piece size DuckDB refuses (not whole
    MiB) makes it read every file whole instead: still rows, never a byte-level
    summary."""
    rows = [(i, WORDS[i % len(WORDS)], str(i * 7)) for i in range(150_000)]
    edited = [(i, a, str(int(b) + 1)) if i % 97 == 0 else (i, a, b) for i, a, b in rows]
    edited = [r for r in edited if r[0] % 1000 != 1] + [(10**6 + i, "new", "1") for i in range(9)]
    expected = oracle(rows, edited, "csv", True)
    for crlf in (True, False):  # the LF pair stays for the refusals below
        old, new = render(rows, "csv", crlf), render(edited, "csv", crlf)
        assert len(old) > 2 * (1 << 20)
        a, b = (side(workdir, n, d, "csv", SMALL) for n, d in (("old", old), ("new", new)))
        answers = []
        for pieces in (True, False):
            for share, method in ((None, "full"), (NO_CHUNKS, "full"), (0.0, "chunks")):
                with tempfile.TemporaryDirectory(dir=workdir) as scratch:
                    engine = Engine(Path(scratch), threads=2)
                    engine.pieces = pieces
                    try:
                        got = diff_rows(engine, "csv", a, b, ["id"], limit=5, fast_share=share)
                    finally:
                        engine.close()
                assert got.bytes_only is None and got.method == method
                assert (got.added, got.removed, got.changed, got.unchanged) == expected
                answers.append(outcome(got))
        assert answers == [answers[0]] * 6
    monkeypatch.setattr(engine_module, "SCAN_BUFFER", ((1 << 20) + 1, 16 << 20))
    with tempfile.TemporaryDirectory(dir=workdir) as scratch:
        engine = Engine(Path(scratch), threads=2)
        try:
            got = diff_rows(engine, "csv", a, b, ["id"], limit=5, fast_share=NO_CHUNKS)
            assert not engine.pieces  # refused, then read whole
        finally:
            engine.close()
    assert outcome(got) == answers[0]
    monkeypatch.undo()
    # Chunk facts that lie about the longest line (a damaged kept entry): the limit
    # set from them is exceeded, and the diff is read whole, with the same answer.
    long = [(i, "x" * 100_000 if i == 7 else a, b) for i, a, b in rows[:500]]
    a = side(workdir, "old", render(long, "csv", False), "csv")
    b = side(workdir, "new", render(long[:-1], "csv", False), "csv")
    results = []
    for lie in (False, True):
        if lie:
            a.longest_line = b.longest_line = 3
        with tempfile.TemporaryDirectory(dir=workdir) as scratch:
            engine = Engine(Path(scratch), threads=2)
            try:
                results.append(outcome(diff_rows(engine, "csv", a, b, ["id"], fast_share=None)))
                assert engine.pieces is not lie
            finally:
                engine.close()
    assert results[0] == results[1] and results[0][1:5] == (0, 1, 0, 499)


def test_a_linked_row_cache_is_neither_written_nor_emptied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With ``.dvfs/rowcache`` a symbolic link, row diffs kept their facts where it
    pointed and, keeping a whole copy, deleted the ``*.copy`` files there; now no
    cache is kept through it."""
    dvfs = tmp_path / ".dvfs"
    dvfs.mkdir()
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "mine.copy").write_bytes(b"precious\n")
    (dvfs / "rowcache").symlink_to(outside)
    checks.write_entry(dvfs, "ab" * 32, b"facts")
    copy = tmp_path / "copy"
    copy.write_bytes(b"\0" * source.COPY_MIN)
    monkeypatch.setattr(source, "COPIES", 1 << 62)  # no room: every kept copy goes
    source.keep_copy(dvfs, [ChunkRef(b"\1" * 32, source.COPY_MIN)], copy)
    assert [p.name for p in outside.iterdir()] == ["mine.copy"]
    assert (outside / "mine.copy").read_bytes() == b"precious\n"


def test_a_linked_row_cache_is_not_read(tmp_path: Path) -> None:
    """With ``.dvfs/rowcache`` a symbolic link (planted in a repository from someone
    else, or swapped in), row diffs read entries, facts and whole copies where it
    pointed and trusted them; now a linked cache is a miss."""
    dvfs = tmp_path / ".dvfs"
    dvfs.mkdir()
    chunks = [ChunkRef(hash_bytes(b"\0" * source.COPY_MIN), source.COPY_MIN)]
    checks.write_entry(dvfs, "ab" * 32, b"facts")
    source.keep_facts(dvfs, chunks, [Facts.of(b"\0" * source.COPY_MIN)])
    copy = tmp_path / "copy"
    copy.write_bytes(b"\0" * source.COPY_MIN)
    source.keep_copy(dvfs, chunks, copy)
    assert checks.read_entry(dvfs, "ab" * 32, 100) == b"facts"  # kept, while no link
    assert source.kept_facts(dvfs, chunks) is not None
    (dvfs / "rowcache").rename(tmp_path / "outside")
    (dvfs / "rowcache").symlink_to(tmp_path / "outside")
    assert checks.read_entry(dvfs, "ab" * 32, 100) is None
    assert source.kept_facts(dvfs, chunks) is None
    assert source.kept_copy(dvfs, chunks, tmp_path / "linked", None) is None
    assert not (tmp_path / "linked").exists()
