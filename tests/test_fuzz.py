"""Fuzzing what arrives from a remote: only ``DvfsError`` may escape, nothing lands outside.

The decoders of every record a remote or a store hands over (trees, versions, pack
headers and footers, pack index files, index segments, refs, format records) are fed
random bytes, random msgpack structures and mutations of valid records: each must
return a value or raise a ``DvfsError``, never anything else (a ``KeyError`` or a
``RecursionError`` would be an internal error for the user, or worse, a check that
did not happen). Then whole clones run against mutated copies of a valid remote
that holds links, directories and several versions: each clone succeeds and checks
clean, or fails with a ``DvfsError`` and leaves nothing; nothing is ever written
outside the temporary directory that holds the remote and the clone.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import struct
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import msgpack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tests.support.forge import Forge, dir_entry, file_entry, files_under, nested
from vfs.errors import DvfsError
from vfs.model.chunking import ChunkerParams
from vfs.model.codec import ChunkRef, Entry, Kind, decode_tree, encode_tree
from vfs.model.ids import hash_bytes
from vfs.model.version_codec import (
    GitLink,
    StageRecord,
    StageRun,
    Version,
    decode_version,
    encode_version,
)
from vfs.ops.fsck import fsck
from vfs.ops.sync import clone
from vfs.remote.layout import decode_segment, parse_ref
from vfs.repo.repository import format_record, parse_format
from vfs.store.pack_files import read_pack_header
from vfs.store.packs import PackedObject, check_index, decode_index, encode_index, pack_trailer
from vfs.worktree.pools import Workers

ID = hash_bytes(b"an id")


def sample_tree() -> bytes:
    return encode_tree(
        [
            Entry(
                b"a.csv",
                Kind.FILE,
                0o644,
                7,
                10**18,
                digest=ID,
                chunks=(ChunkRef(ID, 3), ChunkRef(ID, 4)),
            ),
            Entry(b"sub", Kind.DIR, 0o755, 5, 0, subtree=ID),
            Entry(b"ln", Kind.SYMLINK, 0o777, 5, 0, target=b"a.csv"),
        ]
    )


def sample_version() -> bytes:
    run = StageRun(0, 1, 2, "host", "0.1.0", "3.11", None)
    stage = StageRecord("train", ("python", "t.py"), b"", ((b"data", ID),), ((b"m.json", ID),),
                        ((b"params.yaml", "lr", 0.1),), (b"m.json",), run)  # fmt: skip
    v = Version(ID, (ID,), 2, "msg", "a <a@b>", 1, {"lr": 0.1, "n": [1, {"k": "v"}]},
                (stage,), GitLink("abc", False), 2, 10)  # fmt: skip
    return encode_version(v)


def sample_objects() -> list[PackedObject]:
    return [
        PackedObject(hash_bytes(bytes([i])), i % 3, i % 2, 4 + 10 * i, 10, 12) for i in range(5)
    ]


def sample_pack() -> bytes:
    objs = sample_objects()
    return b"DVP1" + bytes(50) + pack_trailer(objs)


def sample_segment() -> bytes:
    body = encode_index(sample_objects())
    packed: bytes = msgpack.packb({"v": 1, "packs": [[ID, body]]}, use_bin_type=True)
    return packed


def pack_header_of(data: bytes) -> list[PackedObject]:
    """read_pack_header on ``data`` as a file."""
    fd = os.memfd_create("pack")
    try:
        os.write(fd, data)
        return read_pack_header(fd, len(data), "fuzzed pack")
    finally:
        os.close(fd)


def index_file(data: bytes) -> list[PackedObject]:
    check_index(data, "fuzzed index")
    return decode_index(data, "fuzzed index")


DECODERS: dict[str, tuple[Callable[[bytes], object], Callable[[], bytes]]] = {
    "tree": (decode_tree, sample_tree),
    "version": (decode_version, sample_version),
    "pack header": (pack_header_of, sample_pack),
    "pack index": (index_file, lambda: encode_index(sample_objects())),
    "segment": (lambda d: decode_segment(d, "index/x"), sample_segment),
    "ref": (lambda d: parse_ref(d, "refs/heads/x"), lambda: ID.hex().encode() + b"\n"),
    "format": (
        lambda d: parse_format(d.decode("utf-8", "replace"), "format"),
        lambda: format_record(ChunkerParams()).encode(),
    ),
}


@st.composite
def mutated(draw: st.DrawFn, sample: bytes) -> bytes:
    """``sample`` with a few bytes flipped, cut, inserted or duplicated."""
    data = bytearray(sample)
    for _ in range(draw(st.integers(1, 4))):
        how = draw(st.sampled_from(["flip", "cut", "insert", "repeat", "int"]))
        at = draw(st.integers(0, max(0, len(data) - 1)))
        if how == "flip" and data:
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif how == "cut":
            del data[at : at + draw(st.integers(1, 64))]
        elif how == "insert":
            data[at:at] = draw(st.binary(min_size=1, max_size=16))
        elif how == "repeat":
            data[at:at] = data[at : at + draw(st.integers(1, 64))] * draw(st.integers(1, 8))
        elif how == "int" and len(data) >= at + 4:
            struct.pack_into("<I", data, at, draw(st.sampled_from([0, 1, 2**31, 2**32 - 1])))
    return bytes(data)


msgpack_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.floats()
    | st.binary(max_size=40) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=6)
    | st.dictionaries(st.text(max_size=8), inner, max_size=6),
    max_leaves=30,
)  # fmt: skip


def tree_rows() -> st.SearchStrategy[bytes]:
    """Tree records whose rows are random values: every check of the decoder is met."""
    chunk_like = st.just(ID) | st.lists(st.just(ID) | st.integers(-1, 9), max_size=3)
    field = st.one_of(
        st.binary(min_size=0, max_size=40),
        st.integers(-5, 2**51),
        st.just(ID),
        st.lists(chunk_like, max_size=3),
        msgpack_values,
    )
    row = st.lists(field, min_size=0, max_size=7)
    return st.builds(
        lambda rows, v: msgpack.packb({"v": v, "entries": rows}, use_bin_type=True),
        st.lists(row, max_size=5),
        st.sampled_from([1, 1, 1, 2, "1"]),
    )


def accepts_or_refuses(decode: Callable[[bytes], object], data: bytes) -> None:
    """``decode(data)`` returns, or raises a DvfsError: nothing else."""
    with contextlib.suppress(DvfsError):
        decode(data)


@settings(max_examples=150, deadline=None)
@given(name=st.sampled_from(sorted(DECODERS)), data=st.data())
def test_mutated_records_decode_or_raise_dvfs_errors(name: str, data: st.DataObject) -> None:
    decode, sample = DECODERS[name]
    accepts_or_refuses(decode, data.draw(mutated(sample())))


@settings(max_examples=100, deadline=None)
@given(name=st.sampled_from(sorted(DECODERS)), raw=st.binary(max_size=300))
def test_random_bytes_decode_or_raise_dvfs_errors(name: str, raw: bytes) -> None:
    accepts_or_refuses(DECODERS[name][0], raw)


@settings(max_examples=150, deadline=None)
@given(record=tree_rows() | msgpack_values.map(lambda v: msgpack.packb(v, use_bin_type=True)))
def test_random_structures_decode_or_raise_dvfs_errors(record: bytes) -> None:
    for name in ("tree", "version", "segment"):
        accepts_or_refuses(DECODERS[name][0], record)


# ----------------------------------------------------------------------------- clones


def valid_remote(root: Path, outside: Path) -> None:
    """A remote of two versions with files, directories, an empty file and a link out."""
    forge = Forge(root)
    a = file_entry(b"a.txt", forge.chunk(b"alpha\n"), 6)
    link = Entry(b"out", Kind.SYMLINK, 0o777, len(bytes(outside)), 0, target=bytes(outside))
    v1 = forge.version(forge.tree([a, link, dir_entry(b"d", nested(forge, [b"e"], [a]))]))
    b = file_entry(b"b.bin", forge.chunk(bytes(range(256)) * 8), 2048)
    v2 = forge.version(nested(forge, [b"d", b"f"], [a, b]), (v1,), 2)
    forge.publish(v1)
    forge.publish(v2, tags={"first": v1})


@contextlib.contextmanager
def sandbox() -> Iterator[Path]:
    with tempfile.TemporaryDirectory(prefix="dvfs-fuzz-") as base:
        yield Path(base)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_clones_of_mutated_remotes_write_nothing_outside(data: st.DataObject) -> None:
    with sandbox() as base:
        outside = base / "outside"
        outside.mkdir()
        remote = base / "remote"
        valid_remote(remote, outside)
        files = sorted(p for p in files_under(remote) if p.is_file())
        victim = data.draw(st.sampled_from(files), label="file")
        victim.write_bytes(data.draw(mutated(victim.read_bytes()), label="mutation"))
        before = files_under(base) - files_under(remote)
        dest = base / "clone"
        with Workers(2) as w:
            try:
                repo, _, _, _ = clone(remote.as_uri(), dest, w, jobs=2)
            except DvfsError:
                assert not dest.exists()
            else:
                assert fsck(repo, w).clean
        made = files_under(base) - files_under(remote) - files_under(dest) - {dest}
        assert made == before
        assert list(outside.iterdir()) == []
        if dest.exists():
            shutil.rmtree(dest)
