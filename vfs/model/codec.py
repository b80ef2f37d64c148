"""Canonical msgpack encoding of trees, decoded strictly (versions:
``vfs.model.version_codec``).

Record layouts (format version 1). Ids are 32 raw bytes; names are raw bytes as on
Linux; times are integer nanoseconds since the Unix epoch (UTC).

Tree (one directory)::

    {"v": 1, "entries": [[name, kind, mode, size, mtime_ns, payload], ...]}

    entries sorted by name (bytewise); kind 0 = file, 1 = dir, 2 = symlink;
    mode holds the permission bits (0o777: an old record's setuid, setgid and
         sticky bits, up to 0o7777, are accepted and dropped when decoded);
    payload: file    -> [digest, [[chunk_id, chunk_len], ...]]
                        digest is BLAKE3 of the whole content (equal to the chunk id
                        for a one-chunk file, to ``EMPTY`` for an empty one: both are
                        checked on decode); the chunk lengths add up to size
             dir     -> subtree id (size is the subtree's total file bytes)
             symlink -> link target bytes (size is its length, checked on decode)

Encoding is canonical (sorted entries, fixed key order, no floats in structure),
so equal directories have equal bytes and therefore equal ids. Decoding rejects
anything else: unknown versions, wrong types, unsorted or duplicate names, and
names that are empty, contain ``/`` or NUL, are ``.``/``..``, or are reserved
(``.git``, ``.dvfs`` and their lookalikes: ``vfs.model.names``; refused with
``ReservedName``, which carries the name). Whether a tree may be a version's root (no
``.versions``) is for whoever receives the version to ask (:func:`root_refusal`).
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Sequence
from operator import attrgetter
from typing import Any, NamedTuple, NoReturn, TypeVar

import msgpack

from vfs.errors import FormatError, ReservedName
from vfs.model.ids import ID_BYTES, hash_bytes
from vfs.model.names import any_reserved, is_reserved, is_reserved_at_root
from vfs.quoting import quote_given

TREE_FORMAT = 1
MODE_MASK = 0o7777  # the modes a record may hold
PERM_BITS = 0o777  # the ones dvfs keeps and applies: never setuid, setgid or sticky
DIR_MODE = 0o755  # the mode of every directory in a version (see dir_entry)
# A sanity bound on sizes read from records, so a hostile record cannot ask for
# absurd allocations (1 PiB).
MAX_SIZE = 1 << 50
EMPTY = hash_bytes(b"")  # the digest of an empty file


class Kind(enum.IntEnum):
    """What a tree entry is."""

    FILE = 0
    DIR = 1
    SYMLINK = 2


R = TypeVar("R", bound="Record")


class Record:
    """A frozen record of named fields (its ``__slots__``), behaving as a frozen,
    slotted dataclass does: made by position or keyword, compared (``==``) and hashed
    by its fields in order, shown as ``Name(field=value, ...)``, refusing assignment
    and deletion (``dataclasses.FrozenInstanceError``), pickled and copied whole.

    Plain classes rather than dataclasses: a dataclass compiles the methods it makes
    (``exec`` of their source) in every process that defines it, about 4 M
    instructions each, and every ``dvfs add`` and ``commit`` defined four. A record is
    copied with changes by ``_replace`` (``dataclasses.replace`` takes dataclasses
    only).
    """

    __slots__ = ()
    _fields: tuple[str, ...] = ()  # a record's: its slots, in the order it takes them
    _values: Callable[[Any], tuple[Any, ...]]
    __match_args__: tuple[str, ...] = ()

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        names = cls._fields
        many = attrgetter(*names)
        one = len(names) == 1
        cls._values = staticmethod((lambda r: (many(r),)) if one else many)
        cls.__match_args__ = names  # type: ignore[misc]  # (as a dataclass sets it)

    def __eq__(self, other: object) -> bool:
        if other.__class__ is self.__class__:
            return self._values(self) == self._values(other)
        return NotImplemented

    def __hash__(self) -> int:
        return hash(self._values(self))

    def __repr__(self) -> str:
        pairs = zip(self._fields, self._values(self), strict=True)
        shown = ", ".join(f"{n}={v!r}" for n, v in pairs)
        return f"{self.__class__.__qualname__}({shown})"

    def __setattr__(self, name: str, value: object) -> NoReturn:
        from dataclasses import FrozenInstanceError  # (only when refusing)

        raise FrozenInstanceError(f"cannot assign to field {name!r}")

    def __delattr__(self, name: str) -> NoReturn:
        from dataclasses import FrozenInstanceError  # (only when refusing)

        raise FrozenInstanceError(f"cannot delete field {name!r}")

    def __reduce__(self) -> tuple[type[Record], tuple[Any, ...]]:
        return self.__class__, self._values(self)

    def _replace(self: R, **changes: Any) -> R:
        """A copy with ``changes`` (field name to value), as ``dataclasses.replace``."""
        given = dict(zip(self._fields, self._values(self), strict=True))
        return self.__class__(**(given | changes))


class ChunkRef(Record):
    """One piece of a file: the chunk's id and its length in bytes."""

    _fields = ("oid", "size")
    __slots__ = _fields
    oid: bytes
    size: int

    def __init__(self, oid: bytes, size: int) -> None:
        _ref_oid(self, oid)
        _ref_size(self, size)


class Entry(Record):
    """One name in a directory."""

    _fields = ("name", "kind", "mode", "size", "mtime_ns", "digest", "chunks", "subtree", "target")
    __slots__ = _fields
    name: bytes
    kind: Kind
    mode: int
    size: int
    mtime_ns: int
    digest: bytes  # files: BLAKE3 of the whole content
    chunks: tuple[ChunkRef, ...]  # files
    subtree: bytes  # dirs
    target: bytes  # symlinks

    def __init__(
        self,
        name: bytes,
        kind: Kind,
        mode: int,
        size: int,
        mtime_ns: int,
        digest: bytes = b"",
        chunks: tuple[ChunkRef, ...] = (),
        subtree: bytes = b"",
        target: bytes = b"",
    ) -> None:
        _name(self, name)
        _kind(self, kind)
        _mode(self, mode)
        _size(self, size)
        _mtime(self, mtime_ns)
        _digest(self, digest)
        _chunks(self, chunks)
        _subtree(self, subtree)
        _target(self, target)

    def __eq__(self, other: Any) -> bool:  # (field by field: faster than Record's)
        if other.__class__ is not Entry:
            return NotImplemented
        return (
            self.name, self.kind, self.mode, self.size, self.mtime_ns, self.digest,
            self.chunks, self.subtree, self.target,
        ) == (
            other.name, other.kind, other.mode, other.size, other.mtime_ns, other.digest,
            other.chunks, other.subtree, other.target,
        )  # fmt: skip

    def __hash__(self) -> int:
        return hash(
            (self.name, self.kind, self.mode, self.size, self.mtime_ns, self.digest,
             self.chunks, self.subtree, self.target)
        )  # fmt: skip


class Tree(Record):
    """A directory: entries sorted by name."""

    _fields = ("entries",)
    __slots__ = _fields
    entries: tuple[Entry, ...]

    def __init__(self, entries: tuple[Entry, ...]) -> None:
        _entries(self, entries)

    def get(self, name: bytes) -> Entry | None:
        """The entry called ``name``, or None (binary search: entries are sorted)."""
        lo, hi = 0, len(self.entries)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.entries[mid].name < name:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self.entries) and self.entries[lo].name == name:
            return self.entries[lo]
        return None


def dir_entry(
    name: bytes, subtree: bytes, entries: Sequence[Entry], own_mtime_ns: int = 0
) -> Entry:
    """The entry naming a stored directory (``subtree``) that holds ``entries``.

    The directory-entry rule, for every writer of trees: mode ``DIR_MODE``, size the
    total of its entries' sizes (so a directory's size is its file bytes), mtime the
    newest of its entries' mtimes, or, for an empty directory, its own (``own_mtime_ns``:
    a working tree's directory has one; a directory made from index paths is never
    empty). :func:`dir_row` is the same rule over encoded rows.
    """
    size = sum(e.size for e in entries)
    mtime = max((e.mtime_ns for e in entries), default=own_mtime_ns)
    return Entry(name, Kind.DIR, DIR_MODE, size, mtime, subtree=subtree)


def dir_row(
    name: bytes, subtree: bytes, rows: Sequence[Sequence[Any]], own_mtime_ns: int = 0
) -> list[Any]:
    """:func:`dir_entry` as an encoded row (see :func:`encode_tree_rows`)."""
    size = sum(r[3] for r in rows)
    mtime = max((r[4] for r in rows), default=own_mtime_ns)
    return [name, int(Kind.DIR), DIR_MODE, size, mtime, subtree]


def check_name(name: bytes) -> bytes:
    """Return ``name`` if it is a valid single path component, else FormatError."""
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise FormatError(f"invalid name {quote_given(name)} in a tree record")
    if len(name) > 255:
        raise FormatError(
            f"name longer than 255 bytes in a tree record: {quote_given(name[:40])}..."
        )
    if is_reserved(name):
        raise ReservedName(f"reserved name {quote_given(name)} in a tree record", name)
    return name


def pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def unpack(data: bytes, what: str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise FormatError(f"{what} record does not decode: {exc}") from None


def encode_tree(entries: Sequence[Entry]) -> bytes:
    """Canonical bytes of a directory; entries are sorted here."""
    rows: list[list[Any]] = []
    for e in sorted(entries, key=lambda e: e.name):
        payload: Any
        if e.kind == Kind.FILE:
            payload = [e.digest, [[c.oid, c.size] for c in e.chunks]]
        elif e.kind == Kind.DIR:
            payload = e.subtree
        else:
            payload = e.target
        rows.append([e.name, int(e.kind), e.mode & PERM_BITS, e.size, e.mtime_ns, payload])
    return encode_tree_rows(rows)


def encode_tree_rows(rows: list[list[Any]]) -> bytes:
    """Canonical bytes of a directory from rows already in canonical form.

    Each row ``[name, kind, mode & PERM_BITS, size, mtime_ns, payload]`` as the layout
    above, sorted by name: what :func:`encode_tree` makes of entries. A commit builds
    rows straight from the index, without an entry object per file.
    """
    return pack({"v": TREE_FORMAT, "entries": rows})


class Named(NamedTuple):
    """What :func:`tree_names` reads of an entry: its name, kind and, for a directory,
    its subtree's id (else ``b""``)."""

    name: bytes
    kind: Kind
    subtree: bytes


def tree_names(data: bytes, start: bytes, most: int) -> list[Named]:
    """The entries of a tree record whose names begin with ``start``, at most ``most``,
    in name order; FormatError if what is read of the record is malformed.

    For shell completion, on every TAB: rows are read one by one as the record is
    unpacked, no entry made (:func:`decode_tree` makes and checks each: 1.6 s for a
    directory of 200,000 files), none kept but those returned, and the reading stops
    past the names beginning so (the names are sorted). Names are not checked here:
    the caller offers only those it can show.
    """
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=True, max_buffer_size=len(data) + 1)
    unpacker.feed(data)
    out: list[Named] = []
    try:
        _need(unpacker.read_map_header() == 2 and unpacker.unpack() == "v", "bad keys")
        version = unpacker.unpack()
        if version != TREE_FORMAT:
            raise FormatError(f"tree record of unknown format version {version!r}")
        _need(unpacker.unpack() == "entries", "bad keys")
        for _ in range(unpacker.read_array_header()):
            row = unpacker.unpack()
            if type(row) is not list or len(row) != 6 or type(row[0]) is not bytes:
                _need(False, "entry is not a 6-list with a name")
            name, kind, payload = row[0], row[1], row[5]
            if type(kind) is not int or not 0 <= kind <= 2:
                _need(False, "bad kind")
            if name.startswith(start):
                if kind == Kind.DIR and not is_id(payload):
                    _need(False, "bad dir payload")
                out.append(Named(name, Kind(kind), payload if kind == Kind.DIR else b""))
                if len(out) == most:
                    break
            elif name > start:  # past every name beginning with start
                break
    except FormatError:
        raise
    except Exception as exc:  # msgpack raises several unrelated types
        raise FormatError(f"tree record does not decode: {exc}") from None
    return out


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise FormatError(f"malformed tree record: {what}")


def is_id(x: object) -> bool:
    return isinstance(x, bytes) and len(x) == ID_BYTES


def is_int(x: object, lo: int = 0, hi: int = MAX_SIZE) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi


def decode_tree(data: bytes) -> Tree:
    """Parse a tree record strictly; FormatError on anything unexpected.

    The checks are written out inline (no helper call per field): a checkout decodes
    every directory of a version, and this took 4.5 us an entry, 16 times msgpack's
    own time, when each check was a call.
    """
    rec = unpack(data, "tree")
    _need(isinstance(rec, dict) and set(rec) == {"v", "entries"}, "bad keys")
    if rec["v"] != TREE_FORMAT:
        raise FormatError(f"tree record of unknown format version {rec['v']!r}")
    rows = rec["entries"]
    _need(isinstance(rows, list), "entries is not a list")
    out: list[Entry] = []
    names: list[bytes] = []
    prev = b""
    file, folder, link = Kind.FILE, Kind.DIR, Kind.SYMLINK
    for row in rows:
        if type(row) is not list or len(row) != 6:
            _need(False, "entry is not a 6-list")
        name, kind, mode, size, mtime_ns, payload = row
        if type(name) is not bytes:
            _need(False, "name is not bytes")
        if not 0 < len(name) <= 255 or b"/" in name or b"\0" in name or name in _DOTS:
            check_name(name)
        if not prev < name:
            _need(False, "names unsorted or duplicated")
        prev = name
        names.append(name)
        if type(kind) is not int or not 0 <= kind <= 2:
            _need(False, "bad kind")
        if type(mode) is not int or not 0 <= mode <= MODE_MASK:
            _need(False, "bad mode")
        if type(size) is not int or not 0 <= size <= MAX_SIZE:
            _need(False, "bad size")
        if type(mtime_ns) is not int or not _MIN_NS <= mtime_ns <= _MAX_NS:
            _need(False, "bad mtime")
        if kind == file:
            if type(payload) is not list or len(payload) != 2:
                _need(False, "bad file payload")
            digest, chunk_rows = payload
            if type(digest) is not bytes or len(digest) != ID_BYTES:
                _need(False, "bad digest")
            if type(chunk_rows) is not list:
                _need(False, "bad chunk list")
            chunks = []
            total = 0
            for c in chunk_rows:
                if type(c) is not list or len(c) != 2:
                    _need(False, "bad chunk ref")
                oid, n = c
                if (
                    type(oid) is not bytes
                    or len(oid) != ID_BYTES
                    or type(n) is not int
                    or not 1 <= n <= MAX_SIZE
                ):
                    _need(False, "bad chunk ref")
                ref = _new(ChunkRef)
                _ref_oid(ref, oid)
                _ref_size(ref, n)
                chunks.append(ref)
                total += n
            if total != size:
                _need(False, "chunk sizes do not add up to the file size")
            if len(chunks) < 2 and digest != (chunks[0].oid if chunks else EMPTY):
                _need(False, f"the digest of {quote_given(name)} is not the hash of its content")
            e = _new(Entry)
            _name(e, name)
            _kind(e, file)
            _mode(e, mode & 0o777)
            _size(e, size)
            _mtime(e, mtime_ns)
            _digest(e, digest)
            _chunks(e, tuple(chunks))
            _subtree(e, b"")
            _target(e, b"")
            out.append(e)
        elif kind == folder:
            _need(is_id(payload), "bad subtree id")
            out.append(Entry(name, folder, mode & 0o777, size, mtime_ns, subtree=payload))
        else:
            _need(isinstance(payload, bytes) and 0 < len(payload) <= 4096, "bad link target")
            _need(b"\0" not in payload, "NUL in link target")
            if size != len(payload):
                _need(False, f"the size of link {quote_given(name)} is not its target's length")
            out.append(Entry(name, link, mode & 0o777, size, mtime_ns, target=payload))
    bad = any_reserved(names)
    if bad is not None:
        check_name(bad)
    return Tree(tuple(out))


# A record's fields set through their slots (each a ``__set__`` of the slot's
# descriptor: assignment is refused), by its ``__init__`` and, without the call, by
# the tree's decoding: a frozen dataclass's ``__init__`` called ``object.__setattr__``
# per field, 1.04 us for an Entry against 0.54 and 0.44 for a ChunkRef against 0.28.
# The benchmark's version (20,202 entries) decoded in 59 ms of CPU so, 13 ms less
# by slot, on the way to every checkout's first write.
_new = object.__new__
_ref_oid = ChunkRef.__dict__["oid"].__set__
_ref_size = ChunkRef.__dict__["size"].__set__
_name = Entry.__dict__["name"].__set__
_kind = Entry.__dict__["kind"].__set__
_mode = Entry.__dict__["mode"].__set__
_size = Entry.__dict__["size"].__set__
_mtime = Entry.__dict__["mtime_ns"].__set__
_digest = Entry.__dict__["digest"].__set__
_chunks = Entry.__dict__["chunks"].__set__
_subtree = Entry.__dict__["subtree"].__set__
_target = Entry.__dict__["target"].__set__
_entries = Tree.__dict__["entries"].__set__


def root_refusal(tree: Tree) -> bytes | None:
    """The first name ``tree`` may not hold at the root of a version, or None."""
    return next((e.name for e in tree.entries if is_reserved_at_root(e.name)), None)


_DOTS = (b".", b"..")
_MIN_NS, _MAX_NS = -(1 << 63), (1 << 63) - 1
