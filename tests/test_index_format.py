"""The staging index's file (``vfs.repo.stage``): format 4, and the older formats it replaces.

A clean ``status`` reads only the paths and the stat columns of a format 4 index, so
these tests hold the columns to what the rows say: the same records back, the same
answers from the columns as from the records, the older msgpack formats read and
rewritten, and damage refused with the one line that says how to rebuild.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import msgpack
import pytest

from tests.support.cli import (
    Repo,
    assert_error,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
)
from vfs.model.codec import ChunkRef, Kind
from vfs.repo import stage
from vfs.repo.stage import HEADER, INDEX_FORMAT, MAGIC, Index, Staged, _encode, as_row

ID = bytes(range(32))


def records(here: Path) -> dict[bytes, Staged]:
    """Staged records of every kind the index holds, one of them the stat of ``here``."""
    st = os.lstat(here)
    return {
        b"a/file.bin": Staged(
            Kind.FILE, 0o644, st.st_size, st.st_mtime_ns, st.st_ctime_ns, st.st_ino,
            b"\x01" * 32, (ChunkRef(b"\x02" * 32, 10), ChunkRef(b"\x03" * 32, 5)),
        ),
        b"a/link": Staged(Kind.SYMLINK, 0o777, 6, 5, 6, 7, target=b"target"),
        b"absent/x": Staged(Kind.FILE, 0o600, 1, 2, -1, -1, b"\x04" * 32, (), b"", False),
        b"big-inode": Staged(Kind.FILE, 0o755, 0, -5, 3, (1 << 64) - 2, b"\x05" * 32),
        "dir/é \x01name".encode(): Staged(Kind.FILE, 0o640, 3, 4, 5, 6, b"\x06" * 32),
    }  # fmt: skip


def test_format_4_gives_back_every_record_and_answers_as_the_records_do(tmp_path: Path) -> None:
    here = tmp_path / "here"
    here.write_bytes(b"x" * 15)
    os.utime(here, ns=(1, 1))  # (old enough to be trusted)
    index = Index(tmp_path / "index")
    index.entries = records(here)
    index.head, index.base = ID, None
    index.save()
    raw = (tmp_path / "index").read_bytes()
    assert raw.startswith(MAGIC) and HEADER.unpack_from(raw)[1] == INDEX_FORMAT == 4

    cols = Index.load(tmp_path / "index")  # the columns, content not decoded
    recs = Index.load(tmp_path / "index")
    recs.check()
    assert (cols.version, cols.head, cols.base, cols.written_ns) == (4, ID, None, index.written_ns)
    assert cols.count() == 5 and list(cols.paths()) == sorted(records(here))
    assert cols.absent() == recs.absent() == [b"absent/x"]
    assert cols.is_absent(b"absent/x") and not cols.is_absent(b"a/link")
    st = os.lstat(here)
    assert cols.fresh(b"a/file.bin", st) is True
    assert cols.fresh(b"a/link", st) is False and cols.fresh(b"nope", st) is None
    found = [(p, st) for p in [*records(here), b"untracked"]]
    assert cols.triage(found) == recs.triage(found) == index.triage(found)
    assert recs.entries == records(here)
    assert cols.get(b"big-inode") == records(here)[b"big-inode"]
    one = Index.load(tmp_path / "index")  # each row decoded alone, as a commit does
    names, sizes, _, row_at = one.tree_columns()
    assert [row_at(i) for i in reversed(range(5))] == [r for _, r in sorted(recs.rows())][::-1]
    assert (names, list(sizes)) == (
        sorted(records(here)),
        [s.size for _, s in sorted(records(here).items())],
    )
    assert cols.entries == records(here)

    with pytest.raises(Exception, match="is damaged"):  # cut short: refused when loaded
        (tmp_path / "index").write_bytes(raw[:-1])
        Index.load(tmp_path / "index")


def rows_part(raw: bytes) -> tuple[bytes, bytes]:
    """The names, and the columns and content, of an index file of format 4."""
    _, _, n, _, meta_len, names_len, content_len = HEADER.unpack_from(raw)
    names_at = HEADER.size + meta_len
    return raw[names_at : names_at + names_len], raw[len(raw) - 48 * n - content_len :]


def test_rows_saved_unchanged_are_written_as_read_and_changed_ones_anew(tmp_path: Path) -> None:
    # A commit only names the new version: the rows go back as they were read, with
    # the new head; a change through put, remove or the records is encoded again.
    here = tmp_path / "here"
    here.write_bytes(b"x" * 15)
    os.utime(here, ns=(1, 1))  # (old enough to be trusted: a slow run smudges no row)
    path = tmp_path / "index"
    index = Index(path)
    index.entries = records(here)
    index.save()
    first = path.read_bytes()
    loaded = Index.load(path)
    assert loaded.count() == 5
    loaded.head = loaded.base = ID
    loaded.save()
    again = Index.load(path)
    assert (again.head, again.base) == (ID, ID)
    assert again.entries == records(here)
    assert rows_part(path.read_bytes()) == rows_part(first)

    changed = Index.load(path)
    changed.put(b"new", records(here)[b"a/link"])
    changed.remove(b"big-inode")
    changed.save()
    want = {**records(here), b"new": records(here)[b"a/link"]}
    del want[b"big-inode"]
    assert Index.load(path).entries == want

    through = Index.load(path)
    del through.entries[b"a/link"]
    through.save()
    del want[b"a/link"]
    assert Index.load(path).entries == want


def legacy(index: Path, version: int) -> dict[str, Any]:
    """Rewrite ``index`` as the msgpack record of format ``version`` (1 or 2) held it."""
    old = Index.load(index)
    rows = [list(r) for _, r in sorted(old.rows())]
    rec = {"v": version, "written_ns": old.written_ns, "head": old.head, "entries": rows}
    if version == 2:
        rec["base"] = old.base
    index.write_bytes(msgpack.packb(rec, use_bin_type=True))
    return rec


def test_changes_kept_over_the_columns_save_the_bytes_a_full_encoding_does(tmp_path: Path) -> None:
    # ``add`` of a file puts its row over the loaded columns, and the save splices it
    # in between the rows copied as stored: the file must be the one that decoding
    # every row and encoding them all again gives, whatever was put, replaced or
    # removed, at the start, between or after the paths there are.
    here = tmp_path / "here"
    here.write_bytes(b"x" * 15)
    os.utime(here, ns=(1, 1))  # (old enough to be trusted: a slow run smudges no row)
    recs = records(here)
    source = tmp_path / "index"
    index = Index(source)
    index.entries = {**recs, **{b"m/%03d" % i: recs[b"big-inode"] for i in range(300)}}
    index.save()
    absent = recs[b"absent/x"]
    changes: list[tuple[bytes, Staged | None]] = [
        (b"0first", recs[b"a/link"]),  # before every path
        (b"m/100", None),  # removed
        (b"m/150", absent),  # replaced, now not checked out
        (b"m/150x", recs[b"a/file.bin"]),  # between two paths
        (b"m/200", None),
        (b"m/201", None),  # two removed in a row
        (b"nope", None),  # not staged: nothing removed
        (b"zz/last", recs[b"a/link"]),  # after every path
        (b"0first", None),  # put, then removed again
        (b"a/link", absent),  # replaced
    ]
    for name, spliced in (("spliced", True), ("encoded", False)):
        copy = tmp_path / name
        copy.write_bytes(source.read_bytes())
        changed = Index.load(copy)
        if not spliced:
            changed.check()  # every row decoded: saved by encoding them all
        for path, staged in changes:
            if staged is None:
                assert changed.remove(path) is (path in (b"m/100", b"m/200", b"m/201", b"0first"))
            else:
                changed.put(path, staged)
        assert bool(changed._over) is spliced
        assert changed.get(b"m/150") == absent and changed.get(b"m/100") is None
        changed.save()
    spliced_raw, encoded_raw = (
        (tmp_path / "spliced").read_bytes(),
        (tmp_path / "encoded").read_bytes(),
    )
    assert rows_part(spliced_raw) == rows_part(encoded_raw)
    again = Index.load(tmp_path / "spliced")
    again.check()
    assert again.absent() == [b"a/link", b"absent/x", b"m/150"]
    assert again.count() == 5 + 300 - 3 + 2
    assert again.get(b"m/150x") == recs[b"a/file.bin"] and again.get(b"0first") is None


def test_records_encoded_ahead_save_the_bytes_a_full_encoding_does(tmp_path: Path) -> None:
    # A whole checkout encodes the records it expects while its large file's last
    # writes are in flight, and the save reuses those bytes for the records that are
    # the same objects, putting in the stat, size, mode and flags of the others: the
    # file must be the one that encoding the final records gives, whatever changed
    # (the stat of a file written last, one not checked out, a different content, a
    # path more or less).
    here = tmp_path / "here"
    here.write_bytes(b"x" * 15)
    os.utime(here, ns=(1, 1))  # (old enough to be trusted: a slow run smudges no row)
    recs = records(here)
    base = {**recs, **{b"m/%03d" % i: recs[b"big-inode"]._replace(ino=i) for i in range(300)}}
    big = recs[b"a/file.bin"]
    finals: dict[str, dict[bytes, Staged]] = {
        "same": base,
        "stat": {**base, b"a/file.bin": big._replace(size=99, mtime_ns=7, ctime_ns=8, ino=9)},
        "mode and flags": {
            **base,
            b"m/007": base[b"m/007"]._replace(mode=0o600, checked_out=False),
            b"absent/x": recs[b"absent/x"]._replace(checked_out=True, ino=-1),
        },
        "content": {**base, b"m/010": base[b"m/010"]._replace(digest=b"\x07" * 32)},
        "a path less": {p: r for p, r in base.items() if p != b"m/299"},
        "a path more": {**base, b"m/299x": big},
    }
    for name, final in finals.items():
        plain = Index(tmp_path / f"{name}-plain")
        plain.entries = dict(final)
        plain.save()
        ahead = Index(tmp_path / f"{name}-ahead")
        ahead.encode_ahead(base)
        ahead.entries = dict(final)
        ahead.save()
        raw = (tmp_path / f"{name}-ahead").read_bytes()
        assert rows_part(raw) == rows_part((tmp_path / f"{name}-plain").read_bytes()), name
        again = Index.load(tmp_path / f"{name}-ahead")
        again.check()
        assert again.entries == final, name


@pytest.mark.parametrize("version", [1, 2])
def test_an_older_index_is_read_and_status_rewrites_it(repo: Repo, version: int) -> None:
    repo.write("d/a.txt", "a")
    repo.write("d/e/b.txt", "b")
    repo.write("top.txt", "t")
    repo.ok("add", "d", "top.txt")
    repo.commit("one")
    index = repo.root / ".dvfs" / "index"
    legacy(index, version)
    repo.write("d/a.txt", "changed")
    first = repo.ok("status").out
    assert "modified: d/a.txt" in first and first.startswith("On branch main (v1)\n")
    assert Index.load(index).version == INDEX_FORMAT  # rewritten by that status
    assert repo.ok("status").out == first
    repo.ok("restore", "d/a.txt")
    assert "working tree clean" in repo.ok("status").out
    repo.fsck_clean()


def test_a_damaged_index_of_format_4_is_one_line(repo: Repo) -> None:
    # Paths out of order, a header that lies, content that does not decode: each
    # gives the line that says how to rebuild, and that rebuild works.
    repo.write("d/a.txt", "a")
    repo.write("d/b.txt", "b")
    repo.ok("add", "d")
    repo.commit("one")
    index = repo.root / ".dvfs" / "index"
    good = index.read_bytes()
    n_at = HEADER.size + HEADER.unpack_from(good)[4]
    swapped = good[:n_at] + good[n_at:].replace(b"d/a.txt\0d/b.txt", b"d/b.txt\0d/a.txt", 1)
    longer = bytearray(good)
    longer[8:12] = (2).to_bytes(4, "little")  # no version of the columns is 2
    garbled = good[:-8] + b"\xc1" * 8  # the content block's tail
    for bad, args in ((swapped, "status"), (bytes(longer), "status"), (garbled, "add")):
        index.write_bytes(bad)
        line = assert_error(repo.run(args, "d" if args == "add" else "-v"), "staging index")
        assert "is damaged" in line and "dvfs checkout --force HEAD" in line
        repo.ok("checkout", "--force", "HEAD")
        assert Index.load(index).version == INDEX_FORMAT
        assert "working tree clean" in repo.ok("status").out
    repo.fsck_clean()


def test_an_index_of_a_newer_format_is_left_alone_and_named_as_such(repo: Repo) -> None:
    # Not "damaged": a newer dvfs wrote it, and what it staged may be in it. The
    # line says so; nothing is rewritten until a rebuild is asked for.
    repo.write("a.txt", "a")
    repo.ok("add", "a.txt")
    repo.commit("one")
    repo.write("a.txt", "changed")
    index = repo.root / ".dvfs" / "index"
    newer = bytearray(index.read_bytes())
    newer[8:12] = (INDEX_FORMAT + 1).to_bytes(4, "little")
    index.write_bytes(newer)
    for args in (("status",), ("add", "a.txt"), ("commit", "-m", "x")):
        line = assert_error(repo.run(*args), "staging index")
        assert f"newer dvfs (index format {INDEX_FORMAT + 1}" in line and "damaged" not in line
        assert index.read_bytes() == newer
    repo.ok("checkout", "--force", "HEAD")  # the rebuild a user may still choose
    assert Index.load(index).version == INDEX_FORMAT
    repo.fsck_clean()


def test_the_index_notes_the_number_of_its_version(repo: Repo) -> None:
    # What status prints as HEAD's version comes from the index when it was made equal
    # to HEAD (without reading the version), and from the store when not.
    index = repo.root / ".dvfs" / "index"
    repo.write("a.txt", "1")
    repo.ok("add", "a.txt")
    one = bytes.fromhex(repo.commit("one"))
    repo.write("a.txt", "2")
    repo.ok("add", "a.txt")
    two = bytes.fromhex(repo.commit("two"))
    got = Index.load(index)
    assert (got.head, got.number(two), got.number(one)) == (two, 2, None)
    assert repo.ok("status").out.startswith("On branch main (v2)\n")
    repo.ok("checkout", "v1")
    got = Index.load(index)
    assert (got.head, got.number(one)) == (one, 1)
    assert repo.ok("status").out.startswith("HEAD detached at v1\n")
    repo.ok("switch", "main")
    repo.write("a.txt", "3")
    repo.ok("add", "a.txt")  # the index no longer equals HEAD: its head is gone
    got = Index.load(index)
    assert got.head is None and got.number(two) == 2  # (two is still its base)
    out = repo.ok("status").out
    assert out.startswith("On branch main (v2)\n") and "modified: a.txt" in out
    repo.fsck_clean()


# Format 4 as it is written, byte for byte: a change here is a change of format (bump
# INDEX_FORMAT and describe it in docs/architecture.md), and files written so must stay readable.
GOLDEN = bytes.fromhex(
    "6476667369647800040000000300000000945fadfe9c97170a0100000d0000000000000080000000"
    "0000000085a468656164c42044444444444444444444444444444444444444444444444444444444"
    "44444444a462617365c4204444444444444444444444444444444444444444444444444444444444"
    "444444a76e756d626572739192c42044444444444444444444444444444444444444444444444444"
    "4444444444444403a574726565739295c400030bcf17979cfe3d85cd15c420555555555555555555"
    "555555555555555555555555555555555555555555555595c401610105cf17979cfe3d85cd15c420"
    "6666666666666666666666666666666666666666666666666666666666666666a373756dc420179e"
    "c1c0a7f0db57ca8e3f0a00da7bd419e765e49735065df4e90440d4e2ba3a612f66696c65006c696e"
    "6b007a000000000005000000000000000600000000000000000000000000000015cd853dfe9c9717"
    "0700000000000000010000000000000000cac471fe9c97170800000000000000ffffffffffffffff"
    "2a000000000000000900000000000000ffffffffffffffffa4010000ff0100008001000000000000"
    "000000000100000001000000000000004c000000000000005900000000000000939400c420111111"
    "11111111111111111111111111111111111111111111111111111111119192c42022222222222222"
    "2222222222222222222222222222222222222222222222222205c4009402c40090c4067461726765"
    "749400c420333333333333333333333333333333333333333333333333333333333333333390c400"
)
MTIME = 1_700_000_000_123_456_789
TREES = {b"": (3, 11, MTIME, b"\x55" * 32), b"a": (1, 5, MTIME, b"\x66" * 32)}

# Format 3, the same rows without the cache-tree and the content offsets: still read.
GOLDEN_3 = bytes.fromhex(
    "6476667369647800030000000300000000945fadfe9c97177c0000000d0000000000000080000000"
    "0000000083a468656164c42044444444444444444444444444444444444444444444444444444444"
    "44444444a462617365c4204444444444444444444444444444444444444444444444444444444444"
    "444444a76e756d626572739192c42044444444444444444444444444444444444444444444444444"
    "4444444444444403612f66696c65006c696e6b007a00000005000000000000000600000000000000"
    "000000000000000015cd853dfe9c97170700000000000000010000000000000000cac471fe9c9717"
    "0800000000000000ffffffffffffffff2a000000000000000900000000000000ffffffffffffffff"
    "a4010000ff01000080010000000000000000000001000000939400c4201111111111111111111111"
    "1111111111111111111111111111111111111111119192c420222222222222222222222222222222"
    "222222222222222222222222222222222205c4009402c40090c4067461726765749400c420333333"
    "333333333333333333333333333333333333333333333333333333333390c400"
)


def golden_records() -> dict[bytes, Staged]:
    return {
        b"a/file": Staged(
            Kind.FILE, 0o644, 5, 1_700_000_000_123_456_789, 1_700_000_001_000_000_000, 42,
            b"\x11" * 32, (ChunkRef(b"\x22" * 32, 5),),
        ),
        b"link": Staged(Kind.SYMLINK, 0o777, 6, 7, 8, 9, target=b"target"),
        b"z": Staged(Kind.FILE, 0o600, 0, 1, -1, -1, b"\x33" * 32, (), b"", False),
    }  # fmt: skip


def test_format_4_golden_bytes(tmp_path: Path) -> None:
    head = b"\x44" * 32
    rows = [as_row(p, s) for p, s in golden_records().items()]
    trees = [[d, *t] for d, t in TREES.items()]
    ids = {"head": head, "base": head, "numbers": [[head, 3]], "trees": trees}
    assert _encode(rows, 1_700_000_002_000_000_000, ids) == GOLDEN
    (tmp_path / "index").write_bytes(GOLDEN)
    got = Index.load(tmp_path / "index")
    assert (got.version, got.written_ns, got.head, got.base) == (
        4,
        1_700_000_002_000_000_000,
        head,
        head,
    )
    assert got.number(head) == 3 and got.absent() == [b"z"] and got.trees() == TREES
    assert got.entries == golden_records()


def test_format_3_is_read_and_written_again_as_format_4(tmp_path: Path) -> None:
    path = tmp_path / "index"
    path.write_bytes(GOLDEN_3)
    got = Index.load(path)
    assert (got.version, got.head, got.number(b"\x44" * 32), got.trees()) == (
        3,
        b"\x44" * 32,
        3,
        {},
    )
    assert [r for _, r in sorted(got.rows())] == [as_row(p, s) for p, s in golden_records().items()]
    got.save()
    again = Index.load(path)
    assert again.version == 4 and again.entries == golden_records()


@pytest.mark.parametrize(
    "trees",
    [
        [[b"", 3, 11, MTIME]],  # an id missing
        [[b"", 3, 11, MTIME, b"\x55" * 31]],  # an id cut short
        [[b"../x", 1, 5, MTIME, b"\x66" * 32]],  # a name no tree may hold
        [[b"a", 1, 5, MTIME, b"\x66" * 32], [b"a", 1, 5, MTIME, b"\x66" * 32]],  # twice
        [[b"a", "1", 5, MTIME, b"\x66" * 32]],  # a count not a number
        {b"a": 1},
    ],
)
def test_a_malformed_cache_tree_is_dropped_whole(tmp_path: Path, trees: Any) -> None:
    # The cache is only a shortcut: one bad entry and none is trusted, the rows are read.
    head = b"\x44" * 32
    rows = [as_row(p, s) for p, s in golden_records().items()]
    good = [[b"", 3, 11, MTIME, b"\x55" * 32]]
    ids = {"head": head, "base": head, "trees": good + trees if isinstance(trees, list) else trees}
    (tmp_path / "index").write_bytes(_encode(rows, 1_700_000_002_000_000_000, ids))
    got = Index.load(tmp_path / "index")
    assert got.trees() == {} and got.entries == golden_records()


@pytest.mark.parametrize("fmt", [4, 2])
def test_an_index_naming_paths_no_tree_may_hold_is_damaged(repo: Repo, fmt: int) -> None:
    # A path no tree may hold makes the index damaged: status says how to rebuild (and
    # nothing outside is touched), and `checkout --force HEAD` makes a good index.
    outside = repo.root.parent / f"outside-{fmt}.txt"
    outside.write_text("keep")
    repo.write("d/a.txt", "a")
    repo.ok("add", "d")
    repo.commit("one")
    index = repo.root / ".dvfs" / "index"
    for bad in (b"../" + outside.name.encode(), b"d/../../x", b"/abs", b"d//a", b"d/.git/x"):
        idx = Index.load(index)
        idx.entries[bad] = idx.entries[b"d/a.txt"]
        if fmt == 4:
            idx.save()
        else:
            rows = [list(as_row(p, s)) for p, s in sorted(idx.entries.items())]
            rec = {"v": 2, "written_ns": 1, "head": None, "entries": rows}
            index.write_bytes(msgpack.packb(rec, use_bin_type=True))  # (as legacy() writes)
        line = assert_error(repo.run("status"), "staging index", "is damaged")
        assert "dvfs checkout --force HEAD" in line
        if b".git" not in bad:  # (add drops that one: below d, it is not found)
            assert_error(repo.run("add", "d"), "staging index", "is damaged")
        r = repo.ok("checkout", "--force", "HEAD")
        assert "the staging index was not readable: it is rebuilt from v1" in r.err, bad
        assert "working tree clean" in repo.ok("status").out
    assert outside.read_text() == "keep"
    repo.fsck_clean()


def forge_racy(repo: Repo, rel: str, data: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Give ``rel`` new bytes of the same size while its index row keeps the old content
    but takes the file's new stat, the index written just after that mtime: what a
    change within the timestamp tick after ``add`` hashed the file leaves behind."""
    path = repo.write(rel, data)
    st = os.lstat(path)
    index = Index.load(repo.root / ".dvfs" / "index")
    old = index.entries[rel.encode()]
    assert old.size == st.st_size
    index.entries[rel.encode()] = old._replace(
        mtime_ns=st.st_mtime_ns, ctime_ns=st.st_ctime_ns, ino=st.st_ino
    )
    stamp = st.st_mtime_ns + 1_000_000  # within RACY_NS of it
    with monkeypatch.context() as m:
        m.setattr(stage, "time", SimpleNamespace(time_ns=lambda: stamp))
        index.save()
    assert Index.load(repo.root / ".dvfs" / "index").written_ns == stamp


def test_a_row_too_recent_to_trust_stays_untrusted_when_the_index_is_written_again(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A row whose stat the file still has, but that was hashed within RACY_NS of when
    # the index was written, is re-hashed by status. Writing the index again later
    # (a commit, an add of another file, a status refreshing another row) must not
    # make that row trusted: the file's change would then never show.
    for rel, data in (("a.txt", "one\n"), ("b.txt", "bee\n"), ("c.txt", "sea\n")):
        repo.write(rel, data)
    repo.ok("add", ".")
    repo.commit("one")
    forge_racy(repo, "a.txt", "two\n", monkeypatch)
    assert repo.status()["modified"] == ["a.txt"]
    repo.write("d.txt", "new\n")
    repo.ok("add", "d.txt")  # the index written again, a.txt's row carried over
    assert repo.status()["modified"] == ["a.txt"]
    os.utime(repo.root / "b.txt", ns=(1, 1))  # status refreshes b.txt's row and saves
    assert repo.status()["modified"] == ["a.txt"]
    assert repo.status()["modified"] == ["a.txt"]
    repo.commit("d")
    assert repo.status()["modified"] == ["a.txt"]
    repo.ok("add", "a.txt")
    repo.commit("two")
    assert repo.status()["modified"] == []
    assert repo.read("a.txt") == b"two\n" and repo.cat("HEAD:a.txt") == b"two\n"
    repo.fsck_clean()


def test_a_row_changed_on_disk_is_found_by_the_checksum_before_a_commit_moves(
    repo: Repo,
) -> None:
    # A byte of a digest is not malformed msgpack: decoding would take it. A commit
    # decodes only the rows of the directories it builds, but the index it writes
    # again is checked whole against its checksum, so the branch never moves past it.
    repo.write("a/1.txt", "one")
    repo.write("b/2.txt", "two")
    repo.ok("add", ".")
    one = repo.commit("one")
    repo.write("a/3.txt", "three")
    repo.ok("add", "a")
    index = repo.root / ".dvfs" / "index"
    raw = index.read_bytes()
    digest = Index.load(index).get(b"b/2.txt")
    assert digest is not None
    at = raw.index(digest.digest)
    index.write_bytes(raw[:at] + bytes([raw[at] ^ 1]) + raw[at + 1 :])
    line = assert_error(repo.run("commit", "-m", "two"), "staging index", "is damaged")
    assert "checksum" in line and "dvfs checkout --force HEAD" in line
    assert repo.head_id() == one
    assert_error(repo.run("add", "b"), "staging index", "is damaged")
    repo.ok("checkout", "--force", "HEAD")
    assert repo.read("b/2.txt") == b"two"
    repo.fsck_clean()
