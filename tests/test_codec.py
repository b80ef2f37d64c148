"""Tree and version records: canonical, round-tripping, strict, and pinned."""

from __future__ import annotations

import msgpack
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vfs.errors import FormatError
from vfs.model.codec import (
    ChunkRef,
    Entry,
    Kind,
    decode_tree,
    dir_entry,
    dir_row,
    encode_tree,
    encode_tree_rows,
    tree_names,
)
from vfs.model.ids import hash_bytes
from vfs.model.names import is_reserved
from vfs.model.version_codec import GitLink, Version, decode_version, encode_version

ID = bytes(range(32))

names = st.binary(min_size=1, max_size=40).filter(
    lambda n: b"/" not in n and b"\0" not in n and n not in (b".", b"..") and not is_reserved(n)
)


@st.composite
def entries(draw: st.DrawFn) -> Entry:
    name = draw(names)
    kind = draw(st.sampled_from(list(Kind)))
    mode = draw(st.integers(0, 0o777))  # (0o7000 bits are dropped: see test_worktree_safety)
    mtime = draw(st.integers(-(2**62), 2**62))
    if kind == Kind.FILE:
        sizes = draw(st.lists(st.integers(1, 4 << 20), max_size=4))
        chunks = tuple(ChunkRef(hash_bytes(bytes([i])), s) for i, s in enumerate(sizes))
        # (the digest of one chunk's file is its id, of an empty file the hash of nothing)
        digest = chunks[0].oid if len(chunks) == 1 else ID if chunks else hash_bytes(b"")
        return Entry(name, kind, mode, sum(sizes), mtime, digest=digest, chunks=chunks)
    if kind == Kind.DIR:
        return Entry(name, kind, mode, draw(st.integers(0, 2**40)), mtime, subtree=ID)
    target = draw(st.binary(min_size=1, max_size=100).filter(lambda t: b"\0" not in t))
    return Entry(name, kind, mode, len(target), mtime, target=target)


@settings(max_examples=200, deadline=None)
@given(st.lists(entries(), unique_by=lambda e: e.name, max_size=20))
def test_tree_round_trip_is_canonical(items: list[Entry]) -> None:
    data = encode_tree(items)
    tree = decode_tree(data)
    assert list(tree.entries) == sorted(items, key=lambda e: e.name)
    assert encode_tree(list(reversed(items))) == data  # order of input does not matter
    for e in items:
        assert tree.get(e.name) == e


def test_tree_encoding_is_pinned() -> None:
    tree = [
        Entry(b"a.csv", Kind.FILE, 0o644, 5, 10**18, digest=ID, chunks=(ChunkRef(ID, 5),)),
        Entry(b"sub", Kind.DIR, 0o755, 5, 10**18, subtree=ID),
        Entry(b"ln", Kind.SYMLINK, 0o777, 5, 10**18, target=b"a.csv"),
    ]
    # Equal directories must keep equal ids across releases: pin one.
    assert hash_bytes(encode_tree(tree)).hex() == (
        "077aaf976c52194b2236751846942d728f90dd9ef7cc17879d9a4f1d938d5847"
    )


@settings(max_examples=100, deadline=None)
@given(st.lists(entries(), unique_by=lambda e: e.name, max_size=10), st.integers(0, 2**62))
def test_one_directory_rule_for_entries_and_rows(items: list[Entry], own: int) -> None:
    items.sort(key=lambda e: e.name)
    rows = msgpack.unpackb(encode_tree(items))["entries"]
    assert encode_tree_rows(rows) == encode_tree(items)  # a commit's rows: the same bytes
    e = dir_entry(b"d", ID, items, own)
    assert dir_row(b"d", ID, rows, own) == [b"d", int(Kind.DIR), 0o755, e.size, e.mtime_ns, ID]
    assert e.size == sum(i.size for i in items) and e.mode == 0o755 and e.subtree == ID
    assert e.mtime_ns == (max(i.mtime_ns for i in items) if items else own)  # empty: its own


def test_a_version_root_shows_the_version() -> None:
    v = version()
    assert v.root_entry(b"v2") == Entry(b"v2", Kind.DIR, 0o755, 10, v.time_ns, subtree=ID)
    assert v.root_entry().name == b""


def raw_tree(rows: list[list[object]], v: int = 1) -> bytes:
    return msgpack.packb({"v": v, "entries": rows}, use_bin_type=True)  # type: ignore[no-any-return]


FILE_PAYLOAD = [ID, [[ID, 3]]]


@pytest.mark.parametrize(
    "data",
    [
        raw_tree([[b"../x", 0, 0o644, 3, 0, FILE_PAYLOAD]]),
        raw_tree([[b"a/b", 0, 0o644, 3, 0, FILE_PAYLOAD]]),
        raw_tree([[b"..", 1, 0o755, 0, 0, ID]]),
        raw_tree([[b".", 1, 0o755, 0, 0, ID]]),
        raw_tree([[b"", 0, 0o644, 3, 0, FILE_PAYLOAD]]),
        raw_tree([[b"b", 0, 0o644, 3, 0, FILE_PAYLOAD], [b"a", 0, 0o644, 3, 0, FILE_PAYLOAD]]),
        raw_tree([[b"a", 0, 0o644, 3, 0, FILE_PAYLOAD], [b"a", 0, 0o644, 3, 0, FILE_PAYLOAD]]),
        raw_tree([[b"a", 0, 0o644, 4, 0, FILE_PAYLOAD]]),  # sizes do not add up
        raw_tree([[b"a", 7, 0o644, 3, 0, FILE_PAYLOAD]]),  # unknown kind
        raw_tree([[b"a", 0, 0o644, 3, 0, FILE_PAYLOAD]], v=2),  # unknown format
        raw_tree([[b"a", 1, 0o755, 0, 0, b"short"]]),  # bad subtree id
        raw_tree([[b"a", 0, 0o644, 1 << 60, 0, [ID, [[ID, 1 << 60]]]]]),  # absurd size
        raw_tree([[b"a", 2, 0o777, 1, 0, b""]]),  # empty link target
        raw_tree([[b"a\0b", 0, 0o644, 3, 0, FILE_PAYLOAD]]),  # NUL in a name
        raw_tree([[b"n" * 256, 0, 0o644, 3, 0, FILE_PAYLOAD]]),  # name too long
        raw_tree([["a", 0, 0o644, 3, 0, FILE_PAYLOAD]]),  # name as text
        raw_tree([[b"a", True, 0o644, 3, 0, FILE_PAYLOAD]]),  # kind as a boolean
        raw_tree([[b"a", 0, 0o7777777, 3, 0, FILE_PAYLOAD]]),  # mode out of range
        raw_tree([[b"a", 0, 0o644, -3, 0, FILE_PAYLOAD]]),  # negative size
        raw_tree([[b"a", 0, 0o644, 0, 0, [ID, [[ID, 0]]]]]),  # empty chunk
        raw_tree([[b"a", 0, 0o644, 3, 0, [ID[:31], [[ID, 3]]]]]),  # short digest
        raw_tree([[b"a", 0, 0o644, 3, 0, [ID, [[ID[:31], 3]]]]]),  # short chunk id
        raw_tree([[b"a", 0, 0o644, 3, 0, [ID, [(ID, 3.0)]]]]),  # chunk size not an int
        raw_tree([[b"a", 0, 0o644, 3, 0, [ID, "chunks"]]]),  # chunk list not a list
        raw_tree([[b"a", 0, 0o644, 3, 0]]),  # five fields
        b"\xc1garbage",
        msgpack.packb([1, 2, 3]),
    ],
)
def test_malformed_trees_are_rejected(data: bytes) -> None:
    with pytest.raises(FormatError):
        decode_tree(data)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(entries(), unique_by=lambda e: e.name, max_size=20),
    st.binary(max_size=3),
    st.integers(1, 25),
)
def test_tree_names_are_the_entries_beginning_so(
    items: list[Entry], start: bytes, most: int
) -> None:
    """What shell completion reads of a tree, row by row: the decoded entries' names."""
    want = [e for e in decode_tree(encode_tree(items)).entries if e.name.startswith(start)]
    got = tree_names(encode_tree(items), start, most)
    assert [(n.name, n.kind, n.subtree) for n in got] == [
        (e.name, e.kind, e.subtree) for e in want[:most]
    ]


@pytest.mark.parametrize(
    "data",
    [
        raw_tree([[b"a", 7, 0o644, 3, 0, FILE_PAYLOAD]]),
        raw_tree([[b"a", 0, 0o644, 3, 0, FILE_PAYLOAD]], v=2),
        raw_tree([[b"a", 1, 0o755, 0, 0, b"short"]]),
        raw_tree([["a", 0, 0o644, 3, 0, FILE_PAYLOAD]]),
        raw_tree([[b"a", 0, 0o644, 3, 0]]),
        b"\xc1garbage",
        msgpack.packb([1, 2, 3]),
    ],
)
def test_tree_names_refuse_what_they_read_malformed(data: bytes) -> None:
    with pytest.raises(FormatError):
        tree_names(data, b"", 10)


def version() -> Version:
    return Version(
        tree=ID, parents=(hash_bytes(b"p"),), number=2, message="msg", author="a <a@b>",
        time_ns=1_700_000_000 * 10**9, params={"lr": 0.01, "epochs": 3},
        git=GitLink("abc123", True), files=2, bytes=10,
    )  # fmt: skip


def test_version_round_trip() -> None:
    v = version()
    assert decode_version(encode_version(v)) == v


def test_version_with_unknown_field_or_version_is_rejected() -> None:
    rec = msgpack.unpackb(encode_version(version()))
    with pytest.raises(FormatError):
        decode_version(msgpack.packb({**rec, "extra": 1}))
    with pytest.raises(FormatError):
        decode_version(msgpack.packb({**rec, "v": 9}))
    with pytest.raises(FormatError):
        decode_version(msgpack.packb({**rec, "number": 0}))


def test_tree_and_index_records_behave_as_frozen_dataclasses() -> None:
    """The records of trees and of the index are plain slotted classes (a dataclass
    cost every command 4 M instructions to make): made by position or keyword, equal
    and hashed by their fields, shown by them, frozen, pickled and copied whole."""
    import copy
    import dataclasses
    import pickle

    from vfs.model.codec import Tree
    from vfs.repo.stage import Staged

    ref = ChunkRef(b"\1" * 32, 5)
    e = Entry(b"f", Kind.FILE, 0o644, 5, 7, digest=b"\2" * 32, chunks=(ref,))
    t = Tree((e,))
    s = Staged(Kind.FILE, 0o644, 5, 7, 8, 9, b"\2" * 32, (ref,))
    assert e == Entry(b"f", Kind.FILE, 0o644, 5, 7, b"\2" * 32, (ChunkRef(b"\1" * 32, 5),))
    assert e != Entry(b"f", Kind.FILE, 0o600, 5, 7, b"\2" * 32, (ref,)) and e != (b"f",)
    assert hash(ref) == hash((b"\1" * 32, 5)) and hash(t) == hash(((e,),))
    assert repr(ChunkRef(b"ab", 5)) == "ChunkRef(oid=b'ab', size=5)"
    assert repr(t).startswith("Tree(entries=(Entry(name=b'f', kind=<Kind.FILE: 0>, mode=420,")
    for record in (ref, e, t, s):
        assert pickle.loads(pickle.dumps(record)) == record == copy.deepcopy(record)
        with pytest.raises(dataclasses.FrozenInstanceError):
            record.size = 1
    assert s._replace(ino=-1) == Staged(Kind.FILE, 0o644, 5, 7, 8, -1, b"\2" * 32, (ref,))
    assert e._replace(mode=0o600).mode == 0o600 and e.mode == 0o644
    assert s.to_entry(b"f") == e
