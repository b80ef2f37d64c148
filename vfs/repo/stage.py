"""The staging index (``.dvfs/index``): what the next commit will hold, plus a stat cache.

Record, format version 4 (written atomically and fsynced; integers little-endian)::

    header   magic "dvfsidx" and a NUL, u32 version = 4, u32 count N,
             i64 written_ns, u32 meta length, u64 names length,
             u64 content length                                      (44 bytes)
    meta     msgpack {"head": id | null, "base": id | null,
                      "numbers": [[id, int], ...] (optional),
                      "trees": [[dir, paths, bytes, mtime_ns, id], ...] (optional),
                      "untracked": [name, ...] (optional),
                      "removed_absent": [path, ...] (optional),
                      "sum": BLAKE3 of the names, columns and content blocks}
    names    the N paths, sorted, unique, joined by NUL
    padding  zero bytes to a multiple of 8 from the start of the file
    columns  size[N] i64, mtime_ns[N] i64, ctime_ns[N] i64, ino[N] u64,
             mode[N] u32, flags[N] u32, at[N] u64         (row i: the i-th path)
    content  msgpack [[kind, digest, [[chunk_id, chunk_len], ...], target], ...]
             (N rows, in the order of the names; row i starts at byte at[i] of it)

``trees`` is the cache-tree (:meth:`Index.trees`): the tree of each directory that a
commit built and below which nothing changed since, with the count, bytes and newest
mtime of the paths below it, so that the next commit builds only the others and
decodes only their rows (``at``). Format 3 is the same without ``trees``, ``at``, ``sum``:
it is read, and written again in format 4. ``sum`` is checked where every row is
decoded, and where rows loaded unchanged are written again without being decoded.

``untracked`` names the top-level files and directories whose paths ``restore
--staged`` or ``rm --cached`` took out of the index (:meth:`Index.note_untracked`):
``status`` lists untracked files only where tracked ones are, and these, which ``add``
once named, are listed too while they stay on disk (before the first commit nothing
else would be). An index written without it lists none.

``removed_absent`` lists the paths ``rm`` took out of the index while they were not
checked out (below): ``restore --staged`` puts such a path back not checked out, as it
was, not as a file deleted from the working tree. A commit or a full checkout, after
which the paths are no longer the index's to undo, empties it.

``numbers`` gives the number (``vN``) of the versions ``head`` and ``base`` name, as
far as the writer knew them (a version's number is part of it and never changes), so
that ``status`` can name HEAD's version without reading it from the store.

A clean ``status`` needs only the names and the columns: it builds a dict of names
to row numbers, copies each column into an array, and compares every file's
``lstat`` with the numbers there, leaving ``content`` undecoded (a tenth of the time of
decoding 20,000 msgpack rows). ``content`` is decoded, and checked, the first time a
row's content is needed (the lengths in the header must add up to the file's: a
file cut short is refused when loaded). An inode of -1 (no file has it) is stored as 2**64 - 1.

``path`` is the repository-relative path as bytes with ``/`` separators. The stat
fields (size, mtime, ctime, inode, mode) let ``status`` and ``add`` skip re-hashing a
file whose stat is unchanged. An entry whose mtime is within ``RACY_NS`` of the time
the index was written is not trusted (the file could have changed again within the
same timestamp tick); it is re-hashed once and then trusted. Such an entry written
again unchanged under a later time would be trusted without that re-hash, so
:meth:`Index.save` writes it with the inode -1, which no stat matches. ``head`` is the version
the index was made equal to by the last commit or full checkout, and null once
anything is staged after that; while it names HEAD, nothing is staged and ``status``
need not read any tree. ``base`` is that same version, but kept while files are
staged: the version the working tree was last made equal to. If the branch moves
past it without the working tree (a snapshot of a mount, say), ``commit`` refuses
rather than undo the versions in between (an index written before ``base`` existed
has none, and is not checked).

``flags`` is a bit set. ``NOT_CHECKED_OUT`` (1) marks a
path that is part of the next commit but was never written into the working tree:
a ``clone --no-checkout`` makes every path so, ``pull PATH`` and ``checkout REV PATH``
write some of them (a partial working tree, as git's skip-worktree bit), and a
checkout that could not restore a file leaves it so. Its content fields are those of
the version it came from, its ctime and inode are -1, so its stat never matches a
file: a file that appears there is hashed and compared like any tracked file (same
content: it is checked out; other content: modified). ``status`` reports such paths
as not checked out, never as deleted; ``commit`` keeps them as they are; only
``dvfs rm`` drops them. An absent index file in a repository whose HEAD names a
version is read as that version with every path not checked out (``vfs.repo.repository``).

Older formats, msgpack records, are read as they are and rewritten in format 4 by
the next write (a ``status`` that can take the lock rewrites one at once)::

    {"v": 2 (1: no row has flags), "written_ns": int, "head": id | null,
     "base": id | null (optional),
     "entries": [[path, kind, mode, size, mtime_ns, ctime_ns, ino, digest,
                  [[chunk_id, chunk_len], ...], target (, flags)], ...]}
"""

from __future__ import annotations

import bisect
import errno
import mmap
import operator
import os
import stat as statmod
import struct
import sys
import time
from array import array
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager, suppress
from itertools import accumulate, islice
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import msgpack

from vfs._os.gc_pause import paused_gc
from vfs.errors import FormatError
from vfs.model.codec import PERM_BITS, ChunkRef, Entry, Kind, Record, check_name
from vfs.model.ids import ID_BYTES, hasher
from vfs.quoting import quote_given
from vfs.store.durable import put_in_place, write_atomic, write_beside

INDEX_FORMAT = 4
MAGIC = b"dvfsidx\0"
HEADER = struct.Struct("<8sIIqIQQ")  # magic, version, N, written_ns, lengths: meta, names, content
NO_INODE = (1 << 64) - 1  # how an inode of -1 (no file's) is stored
NOT_CHECKED_OUT = 1  # flags bit: in the index, never written into the working tree
RACY_NS = 50_000_000
# What a damaged index's message says to run: the first keeps the working files.
REBUILD_HINT = (
    "run `dvfs restore --staged .` at the root to rebuild it from HEAD, keeping the "
    "working files (what was staged is lost), or `dvfs checkout --force HEAD` to also "
    "discard their changes"
)
# Changes kept over the loaded columns at most (see Index._over); past this many the
# rows are decoded and the whole index encoded again when saved.
OVERLAY_MAX = 1024


def _read_umask() -> int:
    """The process umask, read without changing it where the kernel says it."""
    try:
        with open("/proc/self/status", "rb") as fh:
            for line in fh:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)  # at import, before any thread runs
    os.umask(mask)
    return mask


UMASK = _read_umask()
_KEEP = PERM_BITS & ~UMASK


def same_mode(disk: int, recorded: int) -> bool:
    """True if a working file with permission bits ``disk`` has the ``recorded`` ones.

    A restored file is created with the recorded bits less those the umask removes
    (as git does), and is unchanged for that.
    """
    return disk == recorded or disk == recorded & _KEEP


_F = TypeVar("_F", bound=tuple[bytes, os.stat_result])
if TYPE_CHECKING:  # (an array is not subscriptable at run time)
    # Index.sieve: the sorted paths, the map of each to its row, the size, mtime, ctime,
    # inode and mode columns, the mtime from which a row proves nothing, the permission
    # bits a mode may be cut to.
    Sieve = tuple[
        list[bytes], Callable[[], dict[bytes, int]], array[int], array[int], array[int],
        array[int], array[int], int, int,
    ]  # fmt: skip
RowAt = Callable[[int], Sequence[Any]]  # row i of the sorted paths (Index.tree_columns)
# The cache-tree: directory (b"" the root) -> (paths below it, their bytes, their newest
# mtime, the id of the tree they make): see Index.trees.
CacheTree = dict[bytes, tuple[int, int, int, bytes]]
# A staged path as a row (:func:`as_row`): path, kind, mode, size, mtime_ns, ctime_ns,
# ino, digest, ((chunk id, length), ...), target (, flags).
Row = tuple[Any, ...]


class Staged(Record):
    """One tracked path: its content as staged and the stat it had when hashed.

    A frozen record (:class:`~vfs.model.codec.Record`, as a tree's entries are)."""

    _fields = (
        "kind", "mode", "size", "mtime_ns", "ctime_ns", "ino", "digest", "chunks", "target",
        "checked_out",
    )  # fmt: skip
    __slots__ = _fields
    kind: Kind
    mode: int
    size: int
    mtime_ns: int
    ctime_ns: int
    ino: int
    digest: bytes
    chunks: tuple[ChunkRef, ...]
    target: bytes
    checked_out: bool  # False: not in the working tree by design (NOT_CHECKED_OUT)

    def __init__(
        self,
        kind: Kind,
        mode: int,
        size: int,
        mtime_ns: int,
        ctime_ns: int,
        ino: int,
        digest: bytes = b"",
        chunks: tuple[ChunkRef, ...] = (),
        target: bytes = b"",
        checked_out: bool = True,
    ) -> None:
        """The fields set through their slots (``_SET_*``), not through
        ``object.__setattr__`` once each as a frozen dataclass's ``__init__`` did: half
        the time, and ``add`` makes one per file (and one per file a helper hashed)."""
        _SET_KIND(self, kind)
        _SET_MODE(self, mode)
        _SET_SIZE(self, size)
        _SET_MTIME(self, mtime_ns)
        _SET_CTIME(self, ctime_ns)
        _SET_INO(self, ino)
        _SET_DIGEST(self, digest)
        _SET_CHUNKS(self, chunks)
        _SET_TARGET(self, target)
        _SET_CHECKED_OUT(self, checked_out)

    def __eq__(self, other: Any) -> bool:  # (field by field: faster than Record's)
        if other.__class__ is not Staged:
            return NotImplemented
        return (
            self.kind, self.mode, self.size, self.mtime_ns, self.ctime_ns, self.ino,
            self.digest, self.chunks, self.target, self.checked_out,
        ) == (
            other.kind, other.mode, other.size, other.mtime_ns, other.ctime_ns, other.ino,
            other.digest, other.chunks, other.target, other.checked_out,
        )  # fmt: skip

    def __hash__(self) -> int:
        return hash(
            (self.kind, self.mode, self.size, self.mtime_ns, self.ctime_ns, self.ino,
             self.digest, self.chunks, self.target, self.checked_out)
        )  # fmt: skip

    def same_content(self, other: Staged | Entry) -> bool:
        """True if both describe the same bytes, kind and permission bits."""
        return (
            self.kind == other.kind
            and self.mode == other.mode
            and self.digest == other.digest
            and self.target == other.target
            and self.size == other.size
        )

    def same_on_disk(self, recorded: Staged | Entry) -> bool:
        """True if this record of a working file shows it holds ``recorded``.

        The permission bits may be the recorded ones less the umask's (:func:`same_mode`).
        """
        return (
            self.kind == recorded.kind
            and self.digest == recorded.digest
            and self.target == recorded.target
            and self.size == recorded.size
            and same_mode(self.mode, recorded.mode)
        )

    def matches_stat(self, st: os.stat_result) -> bool:
        """True if ``st`` is the stat this entry was hashed with."""
        return (
            st.st_size == self.size
            and st.st_mtime_ns == self.mtime_ns
            and st.st_ctime_ns == self.ctime_ns
            and st.st_ino == self.ino
            and same_mode(st.st_mode & PERM_BITS, self.mode)
        )

    def to_entry(self, name: bytes) -> Entry:
        """The tree entry this staged path becomes in a commit."""
        return Entry(
            name, self.kind, self.mode, self.size, self.mtime_ns,
            digest=self.digest, chunks=self.chunks, target=self.target,
        )  # fmt: skip


(
    _SET_KIND, _SET_MODE, _SET_SIZE, _SET_MTIME, _SET_CTIME, _SET_INO, _SET_DIGEST,
    _SET_CHUNKS, _SET_TARGET, _SET_CHECKED_OUT,
) = (getattr(Staged, name).__set__ for name in Staged._fields)  # fmt: skip


def staged_from_entry(e: Entry, st: os.stat_result | None) -> Staged:
    """A staged record for tree entry ``e``, with stat ``st`` of its working file if known.

    Without a stat the record keeps the entry's mtime (a commit records it as it
    was) and a ctime and inode that no file has, so that ``status`` hashes the file.
    """
    if st is None:
        return staged_with_stat(e, e.mtime_ns, -1, -1)
    return staged_with_stat(e, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)


def not_checked_out(e: Entry) -> Staged:
    """A staged record for tree entry ``e`` that is not in the working tree (NOT_CHECKED_OUT)."""
    return Staged(e.kind, e.mode, e.size, e.mtime_ns, -1, -1, e.digest, e.chunks, e.target, False)


def staged_with_stat(e: Entry, mtime_ns: int, ctime_ns: int, ino: int) -> Staged:
    """A staged record for tree entry ``e`` whose working file has these stat fields.

    (Arguments by position: by name, the 20,000 of a checkout took 18.6 ms, 12.8 so.)
    """
    return Staged(e.kind, e.mode, e.size, mtime_ns, ctime_ns, ino, e.digest, e.chunks, e.target)


def check_path(path: bytes) -> bytes:
    """Validate a repository-relative path; FormatError if a component is invalid."""
    for part in path.split(b"/"):
        check_name(part)
    return path


def _no_dot_names(joined: bytes) -> None:
    """ValueError if a path of ``joined`` (paths joined by NUL) is absolute or has an
    empty, ``.`` or ``..`` name: a few scans of the bytes (1.3 ms for 20,000 paths)
    where :func:`check_path` on each costs 20 times that. Such a path never leaves
    the working tree (``vfs._os.beneath`` refuses it), but the index that holds it is
    damaged and says so, with how to rebuild it.
    """
    if not joined:
        return
    seen = b"/" + joined.replace(b"\0", b"/") + b"/"
    if b"//" in seen or b"/./" in seen or b"/../" in seen:
        raise ValueError("a path is absolute or has an empty, '.' or '..' name")


def _row_fresh(r: Sequence[Any], st: os.stat_result, limit: int) -> bool:
    """True if index row ``r`` was hashed with stat ``st`` and is older than ``limit``.

    The test of :meth:`Staged.matches_stat` on a raw row (see :meth:`Index.fresh`).
    """
    return bool(
        st.st_mtime_ns == r[4]
        and st.st_size == r[3]
        and st.st_ctime_ns == r[5]
        and st.st_ino == r[6]
        and ((m := st.st_mode & PERM_BITS) == r[2] or m == r[2] & _KEEP)  # (same_mode, inline)
        and r[4] < limit
    )


def _staged(row: Sequence[Any]) -> Staged:
    _, kind, mode, size, mtime, ctime, ino, digest, chunks, target = row[:10]
    return Staged(
        Kind(kind), mode, size, mtime, ctime, ino, digest,
        tuple(ChunkRef(c[0], c[1]) for c in chunks), target,
        len(row) == 10 or not row[10] & NOT_CHECKED_OUT,  # (inline: once per row)
    )  # fmt: skip


def row_same_content(row: Sequence[Any], other: Staged | Entry) -> bool:
    """:meth:`Staged.same_content` of an index row (``Index.row_table``), without
    building its record."""
    return bool(
        row[1] == other.kind  # (an int: Kind is an IntEnum)
        and row[2] == other.mode
        and row[7] == other.digest
        and row[9] == other.target
        and row[3] == other.size
    )


def _absent_row(row: Sequence[Any]) -> bool:
    """True if an index row is marked NOT_CHECKED_OUT."""
    return len(row) > 10 and bool(row[10] & NOT_CHECKED_OUT)


def as_row(path: bytes, s: Staged) -> tuple[Any, ...]:
    """The index row of a staged record (see the format above).

    A file of one chunk (every small file) has its pair made without a generator:
    ``add`` makes a row for each file it stages, and that halved the time of it.
    """
    ch = s.chunks
    pairs = ((ch[0].oid, ch[0].size),) if len(ch) == 1 else tuple([(c.oid, c.size) for c in ch])
    row = (
        path, _KIND_INT[s.kind], s.mode, s.size, s.mtime_ns, s.ctime_ns, s.ino, s.digest,
        pairs, s.target,
    )  # fmt: skip
    return row if s.checked_out else (*row, NOT_CHECKED_OUT)


_KIND_INT = {k: int(k) for k in Kind}  # (a lookup: int() of an IntEnum is a slow call)


@contextmanager
def _mapped(fd: int) -> Iterator[bytes | mmap.mmap]:
    """The bytes of the file open at ``fd``, mapped rather than read.

    Decoding reads the page cache in place: no copy of the whole index (2.5 MB for
    20,000 paths) into a new buffer first, whose pages the kernel would zero and then
    fault in. ValueError if it is not a regular file (nothing is read from a FIFO).
    The index is replaced by a rename, never rewritten in place (as git's, which git
    maps too), so the file mapped does not change while it is decoded.
    """
    st = os.fstat(fd)
    if not statmod.S_ISREG(st.st_mode):
        raise ValueError("not a regular file")
    if st.st_size == 0:  # (nothing to map)
        yield b""
        return
    # A file far larger than any index (damage: a sparse file of 50 GB) is mapped page
    # by page as it is decoded, which stops at its first bad bytes: populated whole, it
    # was read into memory before anything could be said.
    populate = _POPULATE if st.st_size <= POPULATE_MAX else 0
    with mmap.mmap(fd, 0, flags=mmap.MAP_PRIVATE | populate, prot=mmap.PROT_READ) as m:
        yield m


_POPULATE = getattr(mmap, "MAP_POPULATE", 0)  # every page mapped at once, not one fault each
POPULATE_MAX = 1 << 30  # bytes: an index of some 8 million paths


_I64, _U64, _U32 = "q", "Q", "I"  # the array typecodes of the columns (8, 8 and 4 bytes)
_BIG_ENDIAN = sys.byteorder == "big"


def _column(raw: bytes | mmap.mmap, start: int, code: str, n: int) -> tuple[array[int], int]:
    """Column ``code`` of ``n`` numbers at ``start`` of ``raw``, and the offset after it."""
    col = array(code)
    end = start + col.itemsize * n
    col.frombytes(raw[start:end])
    if _BIG_ENDIAN:
        col.byteswap()
    return col, end


def _as_bytes(col: array[int]) -> bytes:
    """A column as it is stored (little-endian)."""
    if _BIG_ENDIAN:
        col.byteswap()
    return col.tobytes()


class _Columns:
    """An index of format 3 or 4 as loaded: the paths and the stat columns, content
    still encoded.

    ``pos`` maps each path to its row, made on first use (20,000 paths hashed into a
    dict: 2-3 ms that a clean ``status``, which looks paths up a directory at a time,
    does without); the columns are arrays (indexing one costs what indexing a tuple
    does). ``content`` is the encoded content block, decoded whole by
    :meth:`rows` or, in format 4, one row at a time by :meth:`row` (``at``: where each
    row's content starts; None in format 3).
    """

    __slots__ = (
        "_pos", "at", "columns", "content", "ctime", "flags", "ino", "mode", "mtime",
        "names", "names_block", "names_checked", "size",
    )  # fmt: skip

    def __init__(
        self,
        raw: bytes | mmap.mmap,
        n: int,
        names_at: int,
        names_len: int,
        content_len: int,
        version: int = INDEX_FORMAT,
    ) -> None:
        block = raw[names_at : names_at + names_len]
        self.names: list[bytes] = block.split(b"\0") if n else []
        if len(self.names) != n or (n == 0 and names_len):
            raise ValueError("malformed names")
        at = -(-(names_at + names_len) // 8) * 8
        width = 48 if version >= 4 else 40  # (format 4: the content offsets too)
        if len(raw) != at + width * n + content_len:
            raise ValueError("its size is not what its header says")
        self.names_block = block
        self.names_checked = False  # (by check_names: once, not at every use)
        self.columns = raw[at : at + width * n]
        self.size, at = _column(raw, at, _I64, n)
        self.mtime, at = _column(raw, at, _I64, n)
        self.ctime, at = _column(raw, at, _I64, n)
        self.ino, at = _column(raw, at, _U64, n)
        self.mode, at = _column(raw, at, _U32, n)
        self.flags, at = _column(raw, at, _U32, n)
        self.at: array[int] | None = None
        if version >= 4:
            self.at, at = _column(raw, at, _U64, n)
        self.content = bytes(raw[at:])
        self._pos: dict[bytes, int] | None = None
        names = self.names  # (each after the one before: sorted, none repeated, none empty)
        if n and (not names[0] or not all(map(operator.lt, names, islice(names, 1, None)))):
            raise ValueError("paths not sorted, repeated or empty")

    @property
    def pos(self) -> dict[bytes, int]:
        """Each path's row (made on first use)."""
        if self._pos is None:
            self._pos = dict(zip(self.names, range(len(self.names)), strict=True))
        return self._pos

    def check_names(self) -> None:
        """:func:`_no_dot_names` of the paths, the first time only (a commit both
        builds its trees from them and writes them again: 1.3 ms each for 20,000)."""
        if not self.names_checked:
            _no_dot_names(self.names_block)
            self.names_checked = True

    def row(self, i: int) -> Sequence[Any]:
        """Row ``i`` as :meth:`rows` gives it, decoding that row's content alone
        (format 4; ValueError if it is damaged: its bytes must hold one row exactly)."""
        offsets = self.at
        if offsets is None:
            raise ValueError("no offsets in format 3")
        end = offsets[i + 1] if i + 1 < len(offsets) else len(self.content)
        c = msgpack.unpackb(self.content[offsets[i] : end], raw=False, use_list=False)
        if type(c) is not tuple or len(c) != 4:
            raise ValueError("malformed content row")
        ino = self.ino[i]
        row = (
            self.names[i], c[0], self.mode[i], self.size[i], self.mtime[i], self.ctime[i],
            -1 if ino == NO_INODE else ino, c[1], c[2], c[3],
        )  # fmt: skip
        return (*row, flags) if (flags := self.flags[i]) else row

    def absent(self) -> set[bytes]:
        """The paths marked NOT_CHECKED_OUT."""
        names = self.names
        return {names[i] for i, f in enumerate(self.flags) if f & NOT_CHECKED_OUT}

    def rows(self) -> dict[bytes, Sequence[Any]]:
        """Every row, as format 2 decodes it (ValueError if the content block is damaged)."""
        content = msgpack.unpackb(self.content, raw=False, use_list=False)
        n = len(self.names)
        if type(content) is not tuple or len(content) != n:
            raise ValueError("malformed content")
        if n and (set(map(type, content)) != {tuple} or set(map(len, content)) != {4}):
            raise ValueError("malformed content row")
        ino = [-1 if i == NO_INODE else i for i in self.ino]
        out: dict[bytes, Sequence[Any]] = {}
        for p, c, mode, size, mtime, ctime, i, flags in zip(
            self.names,
            content,
            self.mode,
            self.size,
            self.mtime,
            self.ctime,
            ino,
            self.flags,
            strict=True,
        ):
            row = (p, c[0], mode, size, mtime, ctime, i, c[1], c[2], c[3])
            out[p] = (*row, flags) if flags else row
        return out


# The rows of an index file, encoded: (count, names, columns, content), as the format
# lays them out (the padding between names and columns depends on the meta part).
_Body = tuple[int, bytes, bytes, bytes | memoryview]


def _encode(rows: Sequence[Sequence[Any]], written_ns: int, ids: dict[str, Any]) -> bytes:
    """An index file of format 4 holding ``rows`` (sorted by path) and the ``ids`` of its
    meta part (see the format above)."""
    return _file(_encode_rows(rows), written_ns, ids)


def _encode_rows(rows: Sequence[Sequence[Any]]) -> _Body:
    """The names, columns and content of ``rows`` (sorted by path)."""
    n = len(rows)
    names = b"\0".join(r[0] for r in rows)
    pack = msgpack.Packer(use_bin_type=True).pack
    head = msgpack.Packer().pack_array_header(n)
    parts = [pack((r[1], r[7], r[8], r[9])) for r in rows]
    starts = list(accumulate(map(len, parts), initial=len(head)))[:-1]
    columns = b"".join((
        _as_bytes(array(_I64, [r[3] for r in rows])),
        _as_bytes(array(_I64, [r[4] for r in rows])),
        _as_bytes(array(_I64, [r[5] for r in rows])),
        _as_bytes(array(_U64, [r[6] & NO_INODE for r in rows])),
        _as_bytes(array(_U32, [r[2] for r in rows])),
        _as_bytes(array(_U32, [r[10] if len(r) > 10 else 0 for r in rows])),
        _as_bytes(array(_U64, starts)),
    ))  # fmt: skip
    return n, names, columns, b"".join((head, *parts))


def _splice(cols: _Columns, over: dict[bytes, Sequence[Any] | None]) -> _Body:
    """The names, columns and content of ``cols`` (format 4) with the rows of ``over``
    put in place (None: the path removed), as :func:`_encode_rows` would make them.

    Rows unchanged are copied as they are stored, run by run between the changed
    paths: adding one file to an index of 20,000 paths decoded and encoded every row
    again, 60 ms of the add.
    """
    assert cols.at is not None
    names, at, content = cols.names, cols.at, memoryview(cols.content)
    n_old = len(names)
    out_names: list[bytes] = []
    size, mtime, ctime = array(_I64), array(_I64), array(_I64)
    ino, mode, flags, starts = array(_U64), array(_U32), array(_U32), array(_U64)
    parts: list[bytes | memoryview] = []
    pack = msgpack.Packer(use_bin_type=True).pack
    pos = cols.pos
    n = n_old + sum((r is not None) - (p in pos) for p, r in over.items())
    head = msgpack.Packer().pack_array_header(n)
    cursor = len(head)  # where the next row starts in the content block

    def run(a: int, b: int) -> None:
        nonlocal cursor
        if a >= b:
            return
        out_names.extend(names[a:b])
        size.extend(cols.size[a:b])
        mtime.extend(cols.mtime[a:b])
        ctime.extend(cols.ctime[a:b])
        ino.extend(cols.ino[a:b])
        mode.extend(cols.mode[a:b])
        flags.extend(cols.flags[a:b])
        first = at[a]
        end = at[b] if b < n_old else len(content)
        shift = cursor - first
        starts.extend([x + shift for x in at[a:b]])
        parts.append(content[first:end])
        cursor += end - first

    prev = 0
    for path in sorted(over):
        row = over[path]
        i = bisect.bisect_left(names, path, prev)
        run(prev, i)
        if row is not None:
            out_names.append(path)
            size.append(row[3])
            mtime.append(row[4])
            ctime.append(row[5])
            ino.append(row[6] & NO_INODE)
            mode.append(row[2])
            flags.append(row[10] if len(row) > 10 else 0)
            starts.append(cursor)
            part = pack((row[1], row[7], row[8], row[9]))
            parts.append(part)
            cursor += len(part)
        prev = i + 1 if i < n_old and names[i] == path else i
    run(prev, n_old)
    assert len(out_names) == n
    columns = b"".join(map(_as_bytes, (size, mtime, ctime, ino, mode, flags, starts)))
    return n, b"\0".join(out_names), columns, b"".join((head, *parts))


def _file(body: _Body, written_ns: int, ids: dict[str, Any]) -> bytes:
    """An index file of format 4 of encoded rows and the ``ids`` of its meta part, with
    the checksum of the rows (``sum``) added."""
    return b"".join(_file_parts(body, written_ns, ids))


def _file_parts(
    body: _Body, written_ns: int, ids: dict[str, Any]
) -> tuple[bytes | memoryview, ...]:
    """:func:`_file` in the parts it is joined from, to be written as they are."""
    n, names, columns, content = body
    meta = msgpack.packb({**ids, "sum": _checksum(names, columns, content)}, use_bin_type=True)
    lengths = (len(meta), len(names), len(content))
    pad = b"\0" * (-(HEADER.size + len(meta) + len(names)) % 8)
    head = HEADER.pack(MAGIC, INDEX_FORMAT, n, written_ns, *lengths)
    return head, meta, names, pad, columns, content


def _checksum(names: bytes, columns: bytes, content: bytes | memoryview) -> bytes:
    """BLAKE3 of the names, columns and content blocks of a file of format 4 (1 ms for
    20,000 paths: rows written again as read are checked by it, not decoded)."""
    h = hasher()
    h.update(names)
    h.update(columns)
    h.update(content)
    return h.digest()


class _Newer(ValueError):
    """An index of a format newer than this dvfs knows: not damaged, and not to be
    rebuilt unasked (its rows may be what a newer dvfs staged)."""

    def __init__(self, version: int) -> None:
        super().__init__(f"index format {version}")
        self.version = version


class Index:
    """The staged paths of a repository, loaded whole (about 150 bytes a path).

    Three forms, each made from the one before only when needed: the columns of a
    file of format 3 or 4 (:class:`_Columns`: enough for a clean ``status``), the decoded
    rows (tuples, as format 2 stores them: enough to stage, unstage and commit), and
    :class:`Staged` records (``entries``). A clean ``status`` compares stats against
    the columns and never decodes 20,000 rows nor builds 20,000 objects it does not need.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._cols: _Columns | None = None
        self._rows: dict[bytes, Sequence[Any]] = {}
        self._entries: dict[bytes, Staged] | None = {}
        self.written_ns = 0
        self.head: bytes | None = None
        self.base: bytes | None = None
        self.numbers: dict[bytes, int] = {}  # version id -> its number, for head and base
        self.untracked_tops: set[bytes] = set()  # top-level names unstaged (see the format)
        self.removed_absent: set[bytes] = set()  # paths rm unstaged not checked out (same)
        self.on_disk = False  # read from a file (else: there was none)
        self.version: int | None = None  # the format of the file read
        self.damaged: str | None = None  # why the file was not read (Repository.index rebuild)
        self._absent: set[bytes] = set()  # NOT_CHECKED_OUT paths among the raw rows
        # The rows as a file of format 4 encoded them, while none has changed since it
        # was loaded: a commit, which only names the new version, writes them as read.
        self._loaded: _Body | None = None
        # Size, mtime, ctime and inode of the rows within RACY_NS of ``written_ns`` (not
        # yet proved unchanged by a re-hash): see :meth:`save`.
        self._racy: dict[bytes, tuple[int, int, int, int]] = {}
        # The cache-tree: directory -> (paths below it, their bytes, their newest mtime,
        # the id of the tree they make), for the directories nothing below has changed
        # in since a commit built them (:meth:`trees`). Dropped whole once ``entries``
        # is handed out (``_exposed``): a caller may change that dict unseen.
        self._trees: CacheTree = {}
        self._trees_read: object = None  # the file's "trees", parsed when first needed
        self._exposed = False
        self._sum: object = None  # the checksum of a file of format 4 (see _file)
        # Rows put (None: removed) over the columns of a file of format 4 while they are
        # still columns, at most OVERLAY_MAX: ``add`` of a file stages it without
        # decoding the others, and :meth:`save` splices it in (:func:`_splice`). Any
        # other use of the rows decodes them first, with these changes applied
        # (:meth:`_settle`).
        self._over: dict[bytes, Sequence[Any] | None] = {}
        # Records encoded before they were given (:meth:`encode_ahead`): their sorted
        # paths, the records, their rows and the encoding of those.
        self._ahead: tuple[list[bytes], list[Staged], list[Row], _Body] | None = None

    def _damaged(self, why: object) -> FormatError:
        return FormatError(f"the staging index {self.path} is damaged ({why}): {REBUILD_HINT}")

    def _decode(self) -> None:
        """Make rows of the columns, if the index is still columns."""
        cols = self._cols
        if cols is None:
            return
        try:
            self._verify()
            cols.check_names()
            with paused_gc():
                rows = cols.rows()
        except Exception as exc:
            raise self._damaged(exc) from None
        absent = cols.absent()
        for path, row in self._over.items():
            if row is None:
                rows.pop(path, None)
                absent.discard(path)
            else:
                rows[path] = row
                if _absent_row(row):
                    absent.add(path)
                else:
                    absent.discard(path)
        self._rows = rows
        self._absent = absent
        self._cols = None
        self._over = {}

    def _settle(self) -> None:
        """Decode the rows if changes are kept over the columns (see ``_over``): every
        reader of the columns but :meth:`save` reads them with none."""
        if self._over:
            self._decode()

    def _verify(self) -> None:
        """ValueError unless the rows of a file of format 4 still loaded as columns
        are the bytes its checksum was made of."""
        cols = self._cols
        if (
            cols is not None
            and cols.at is not None
            and _checksum(cols.names_block, cols.columns, cols.content) != self._sum
        ):
            raise ValueError("its rows do not match their checksum")

    def check(self) -> None:
        """Decode everything the file holds and check every path's names (reserved
        ones, lengths: what loading leaves to the users of a path); FormatError now
        if any of it is damaged."""
        self._decode()
        self.check_paths(self._rows if self._entries is None else self._entries)

    def check_paths(self, paths: Iterable[bytes]) -> None:
        """FormatError (the index is damaged) unless each of ``paths`` (paths of this
        index) is one a tree may hold. Loading checks none; decoding the rows checks
        the cheap part (:func:`_no_dot_names`); a clean ``status`` checks the few
        paths it looks up other than those it found in the working tree."""
        for path in paths:
            try:
                check_path(path)
            except FormatError:
                raise self._damaged(
                    f"it holds {quote_given(path)}, a path no tree may hold"
                ) from None

    @property
    def entries(self) -> dict[bytes, Staged]:
        """Every staged path (built from the loaded rows on first use)."""
        if self._entries is None:
            self._decode()
            with paused_gc():
                self._entries = {p: _staged(r) for p, r in self._rows.items()}
            self._rows = {}
            self._absent = set()
            self._loaded = None  # (the caller may change the dict)
        self._exposed = True
        self._trees, self._trees_read = {}, None
        return self._entries

    @entries.setter
    def entries(self, value: dict[bytes, Staged]) -> None:
        self._entries = value
        self._exposed = True
        self._trees, self._trees_read = {}, None
        self._cols = None
        self._over = {}
        self._rows = {}
        self._absent = set()
        self._loaded = None

    def absent(self) -> list[bytes]:
        """The paths marked NOT_CHECKED_OUT (in the next commit, not in the working tree)."""
        self._settle()
        if self._cols is not None:
            return sorted(self._cols.absent())
        if self._entries is None:
            return sorted(self._absent)
        return sorted(p for p, s in self._entries.items() if not s.checked_out)

    def is_absent(self, path: bytes) -> bool:
        """True if ``path`` is staged and marked NOT_CHECKED_OUT."""
        self._settle()
        if (cols := self._cols) is not None:
            i = cols.pos.get(path)
            return i is not None and bool(cols.flags[i] & NOT_CHECKED_OUT)
        if self._entries is None:
            return path in self._absent
        s = self._entries.get(path)
        return s is not None and not s.checked_out

    def count(self) -> int:
        """How many paths are staged."""
        self._settle()
        if self._cols is not None:
            return len(self._cols.names)
        return len(self._rows) if self._entries is None else len(self._entries)

    def rows(self) -> Iterable[tuple[bytes, Sequence[Any]]]:
        """Every staged path with its row, without building records."""
        if self._entries is None:
            self._decode()
            return self._rows.items()
        return ((p, as_row(p, s)) for p, s in self._entries.items())

    def holds_rows(self) -> bool:
        """Whether the records are still kept as rows (``entries`` not built)."""
        return self._entries is None

    def row_table(self) -> Mapping[bytes, Sequence[Any]] | None:
        """Every staged path's row, decoded, without building records (not to be
        changed: :meth:`put` changes them); None once the records are built
        (``entries``). A whole checkout decides from it: 20,000 records built
        first took 0.05-0.1 s, and were then replaced by those of the files it wrote."""
        if self._entries is not None:
            return None
        self._decode()
        return self._rows

    def paths(self) -> Iterable[bytes]:
        """Every staged path, without building records."""
        self._settle()
        if self._cols is not None:
            return self._cols.names
        return self._rows.keys() if self._entries is None else self._entries.keys()

    def sorted_paths(self) -> list[bytes]:
        """Every staged path, sorted (a new list)."""
        self._settle()
        if self._cols is not None:
            return list(self._cols.names)  # (sorted: checked when loaded)
        keys = list(self.paths())
        if keys != sorted(keys):  # (a saved index is sorted: one pass to confirm it)
            keys.sort()
        return keys

    def get(self, path: bytes) -> Staged | None:
        """One staged record, without building the others."""
        if self._entries is not None:
            return self._entries.get(path)
        if path in self._over:
            row = self._over[path]
            return None if row is None else _staged(row)
        if self._cols is not None:
            if path not in self._cols.pos:
                return None
            self._decode()
        row = self._rows.get(path)
        return None if row is None else _staged(row)

    def put(self, path: bytes, staged: Staged) -> None:
        """Stage ``staged`` at ``path``, without building the other records."""
        if self._entries is None or self._overlays():
            self._put_row(path, as_row(path, staged))
        else:
            self._changed(path)
            self._entries[path] = staged

    def put_row(self, path: bytes, row: Row) -> None:
        """:meth:`put` of the record whose row (:func:`as_row`) is ``row``, a row
        being what the index keeps: an index with nothing staged yet takes rows from
        then on rather than :class:`Staged` records (``add`` of 20,000 files made a
        record of each row, then a row of each record again to write it)."""
        if self._entries is not None and not self._entries and not self._exposed:
            self._entries = None  # (empty: the rows are the form kept from now on)
        if self._entries is not None:
            self.put(path, _staged(row))
        else:
            self._put_row(path, row)

    def _overlays(self) -> bool:
        """Whether a path staged now goes on the overlay of the rows read (``_over``)."""
        cols = self._cols
        return cols is not None and cols.at is not None and len(self._over) < OVERLAY_MAX

    def _changed(self, path: bytes) -> None:
        """Forget what staging ``path`` makes stale: the records built, its directories'
        trees."""
        self._loaded = None
        if self._trees or self._trees_read is not None:
            self._invalidate(path)

    def _put_row(self, path: bytes, row: Row) -> None:
        """Stage ``row`` at ``path`` where records are kept as rows: :meth:`_changed`
        and :meth:`_overlays` written out, as ``add`` calls this for every path it
        stages (the two calls cost 2 ms for 20,000 paths)."""
        self._loaded = None
        if self._trees or self._trees_read is not None:
            self._invalidate(path)
        cols = self._cols
        if cols is not None and cols.at is not None and len(self._over) < OVERLAY_MAX:
            self._over[path] = row
            return
        self._decode()
        self._rows[path] = row
        if _absent_row(row):
            self._absent.add(path)
        else:
            self._absent.discard(path)

    def remove(self, path: bytes) -> bool:
        """Unstage ``path``; True if it was staged."""
        cols = self._cols
        if cols is not None and self._overlays():
            over = self._over
            if not (over[path] is not None if path in over else path in cols.pos):
                return False  # not staged
            if path in cols.pos:
                over[path] = None
            else:
                del over[path]
            self._changed(path)
            return True
        self._decode()
        table: dict[bytes, Any] = self._rows if self._entries is None else self._entries
        if table.pop(path, None) is None:
            return False
        self._absent.discard(path)
        self._changed(path)
        return True

    def _invalidate(self, path: bytes) -> None:
        """Forget the cached trees of the directories above ``path`` (root included)."""
        trees = self.trees()
        while path:
            path = path.rpartition(b"/")[0]
            trees.pop(path, None)

    def trees(self) -> CacheTree:
        """The cache-tree: for each directory (b"" the root) whose tree is known and
        nothing below it has changed since, the number of paths below it, their bytes,
        their newest mtime and the id of the tree they make. Read from the file
        (format 4) and checked there only for its shape: a user checks the numbers
        against the rows and that the tree is stored
        (:func:`vfs.ops.commit.build_index_trees`), and ``fsck`` checks each id
        against a rebuild. (Parsed from the file when first asked for: a clean
        ``status`` never needs it.)"""
        if self._trees_read is not None:
            self._trees, self._trees_read = _read_trees(self._trees_read), None
        return self._trees

    def set_trees(self, trees: CacheTree) -> None:
        """Record the trees a commit built from the rows now staged (kept unless the
        records were handed out: see ``_exposed``)."""
        self._trees, self._trees_read = ({} if self._exposed else trees), None

    def tree_columns(self) -> tuple[Sequence[bytes], Sequence[int], Sequence[int], RowAt]:
        """What building trees needs: the sorted paths, their sizes and mtimes, and a
        function giving row ``i`` whole, which in format 4 decodes that row alone."""
        self._settle()
        if (cols := self._cols) is not None and cols.at is not None:
            try:
                cols.check_names()
            except ValueError as exc:
                raise self._damaged(exc) from None
            damaged = self._damaged

            def row_at(i: int) -> Sequence[Any]:
                try:
                    return cols.row(i)
                except Exception as exc:
                    raise damaged(exc) from None

            return cols.names, cols.size, cols.mtime, row_at
        rows = [r for _, r in sorted(self.rows())]
        return [r[0] for r in rows], [r[3] for r in rows], [r[4] for r in rows], rows.__getitem__

    def fresh(self, path: bytes, st: os.stat_result) -> bool | None:
        """None if ``path`` is not staged; else whether stat ``st`` proves it unchanged."""
        self._settle()
        if self._entries is not None:
            s = self._entries.get(path)
            return None if s is None else self.unchanged(s, st)
        limit = self.written_ns - RACY_NS
        if (cols := self._cols) is not None:
            i = cols.pos.get(path)
            return None if i is None else _col_fresh(cols, i, st, limit)
        r = self._rows.get(path)
        return None if r is None else _row_fresh(r, st, limit)

    @staticmethod
    def load(path: Path) -> Index:
        """Read the index; an absent file is an empty index.

        A file of format 3 or 4 is read as columns, its content block left encoded
        (:meth:`check` decodes it: until then a damaged one is found when first used).
        """
        idx = Index(path)
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW  # (a FIFO: no wait)
        try:
            fd = os.open(path, flags)
        except FileNotFoundError:
            return idx
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            raise FormatError(
                f"the staging index {path} is a symbolic link: {REBUILD_HINT}"
            ) from None
        try:
            with _mapped(fd) as raw, paused_gc():
                if raw[: len(MAGIC)] == MAGIC:
                    idx._load_columns(raw)
                else:
                    idx._load_record(raw)
        except _Newer as exc:
            raise FormatError(
                f"the staging index {path} was written by a newer dvfs (index format "
                f"{exc.version}; this dvfs knows up to {INDEX_FORMAT}): use that dvfs, or "
                "upgrade this one"
            ) from None
        except Exception as exc:
            raise idx._damaged(exc) from None
        finally:
            os.close(fd)
        idx.on_disk = True
        return idx

    def _load_columns(self, raw: bytes | mmap.mmap) -> None:
        """Read a file of format 4 or 3 (see the format above)."""
        if len(raw) < HEADER.size:
            raise ValueError("truncated")
        _, v, n, written_ns, meta_len, names_len, content_len = HEADER.unpack_from(raw)
        if v > INDEX_FORMAT:
            raise _Newer(v)
        if v not in (3, INDEX_FORMAT):
            raise ValueError("unknown index format")
        meta_at = HEADER.size
        names_at = meta_at + meta_len
        if len(raw) < names_at + names_len:
            raise ValueError("truncated")
        meta = msgpack.unpackb(raw[meta_at:names_at], raw=False)
        if not isinstance(meta, dict):
            raise ValueError("malformed header")
        self._cols = cols = _Columns(raw, n, names_at, names_len, content_len, v)
        # (format 3 lacks the offsets column: its rows are encoded again when written)
        self._loaded = (n, cols.names_block, cols.columns, cols.content) if v == 4 else None
        self._entries = None
        self._rows = {}
        self.written_ns = written_ns
        self._ids(meta)
        self._trees, self._trees_read = {}, meta.get("trees")
        self._sum = meta.get("sum")
        if v == INDEX_FORMAT and not (type(self._sum) is bytes and len(self._sum) == ID_BYTES):
            raise ValueError("no checksum")
        self.version = v
        self._note_racy()

    def _ids(self, rec: dict[Any, Any]) -> None:
        head, base = rec.get("head"), rec.get("base")
        self.head = head if isinstance(head, bytes) and len(head) == ID_BYTES else None
        self.base = base if isinstance(base, bytes) and len(base) == ID_BYTES else None
        for pair in rec.get("numbers", ()):
            oid, number = pair
            if not (isinstance(oid, bytes) and len(oid) == ID_BYTES and type(number) is int):
                raise ValueError("malformed version number")
            if number > 0 and oid in (self.head, self.base):
                self.numbers[oid] = number
        tops = rec.get("untracked", ())
        if not isinstance(tops, (list, tuple)) or not all(type(t) is bytes for t in tops):
            raise ValueError("malformed untracked names")
        self.untracked_tops = set(tops)
        gone = rec.get("removed_absent", ())
        if not isinstance(gone, (list, tuple)) or not all(type(p) is bytes for p in gone):
            raise ValueError("malformed removed paths")
        self.removed_absent = set(gone)

    def note_untracked(self, paths: Iterable[bytes]) -> None:
        """Note the top-level names of ``paths``, taken out of the index with their files
        kept: ``status`` lists the untracked files there (see the format above)."""
        self.untracked_tops.update(p.partition(b"/")[0] for p in paths)

    def number(self, oid: bytes | None) -> int | None:
        """The number of version ``oid`` if it is ``head`` or ``base`` and was noted."""
        return None if oid is None or oid not in (self.head, self.base) else self.numbers.get(oid)

    def _load_record(self, raw: bytes | mmap.mmap) -> None:
        """Read a file of format 1 or 2, a msgpack record (see the format above)."""
        rec = msgpack.unpackb(raw, raw=False, use_list=False)  # tuples: less memory
        if not isinstance(rec, dict) or rec.get("v") not in (1, 2):
            raise ValueError("unknown index format")
        self.written_ns = int(rec["written_ns"])
        self._ids(rec)
        rows = rec["entries"]
        sizes = set(map(len, rows))  # (map: a tenth of the time of a loop)
        if rows and (set(map(type, rows)) != {tuple} or not sizes <= {10, 11}):
            raise ValueError("malformed entry")
        if 11 in sizes:
            if rec["v"] < 2 or not all(type(r[10]) is int for r in rows if len(r) > 10):
                raise ValueError("malformed flags")
            self._absent = {r[0] for r in rows if _absent_row(r)}
        self._rows = {r[0]: r for r in rows}
        _no_dot_names(b"\0".join(self._rows))
        self._entries = None
        self.version = rec["v"]
        self._note_racy()

    def save(self, ready: Callable[[], object] | None = None, *, settle: bool = True) -> None:
        """Write the index atomically and fsync it, in format 4.

        Rows unchanged since a file of format 4 was loaded are written as read (a
        commit: encoding 20,000 rows again was a fifth of its time), and so are those
        the changes kept over them (``_over``: an ``add``) left as they were.

        ``ready``: called once the new file is written and fsynced beside the old one,
        before it takes the old one's name; if it raises, the new file is deleted and
        the old one left as it was. ``add`` waits there for the objects the index
        names to be durable, which they become meanwhile. ``settle``: False leaves the
        fsync of the folder after the rename to the caller (a commit makes it with
        the branch's new file's: ``vfs.repo.record``).
        """
        now = time.time_ns()
        cols = self._cols
        if cols is not None and (self._loaded is not None or self._over):
            try:  # (a damaged file is refused, not copied: the rows are checked, not decoded)
                self._verify()
                cols.check_names()
                _no_dot_names(b"\0".join(self._over))
            except ValueError as exc:
                raise self._damaged(exc) from None
        else:
            self._decode()
        self._smudge(now - RACY_NS)
        body = self._loaded
        if body is None and (cols := self._cols) is not None:
            body = _splice(cols, self._over)  # (changes kept over the columns: see put)
        if body is None:
            if self._entries is None:
                table = self._rows
                rows = [table[p] for p in sorted(table)]
                body = _encode_rows(rows)
            else:
                entries = self._entries
                keys = sorted(entries)
                body = self._encoded_ahead(keys, entries)
                if body is None:
                    body = _encode_rows([as_row(p, entries[p]) for p in keys])
        ids: dict[str, Any] = {"head": self.head, "base": self.base}
        known = {oid: self.number(oid) for oid in (self.head, self.base) if oid is not None}
        if numbers := [[oid, n] for oid, n in known.items() if n is not None]:
            ids["numbers"] = numbers
        if self.untracked_tops:
            ids["untracked"] = sorted(self.untracked_tops)
        if self.removed_absent:
            ids["removed_absent"] = sorted(self.removed_absent)
        if (trees := self.trees()) and not self._exposed:
            ids["trees"] = [[d, *trees[d]] for d in sorted(trees)]
        if self.damaged is not None:
            _set_aside(self.path)
        if ready is None:
            write_atomic(self.path, _file_parts(body, now, ids))
        else:
            tmp = write_beside(self.path, _file_parts(body, now, ids))
            try:
                ready()
            except BaseException:
                with suppress(FileNotFoundError):
                    os.unlink(tmp)
                raise
            put_in_place(tmp, self.path, sync=settle)
        if self._entries is None:  # (records may be changed through ``entries`` unseen)
            self._loaded = body
        self.written_ns = now
        self.on_disk = True
        self.version = INDEX_FORMAT
        self._note_racy()

    def encode_ahead(self, entries: Mapping[bytes, Staged]) -> None:
        """Encode ``entries``, what this index's records are about to be, while the
        caller waits anyway; nothing else changes.

        :meth:`save` of records that are mostly these same objects then writes the
        bytes made here, with the stat, size, mode and flags of the others put in
        (their content must be the same, else all is encoded again). A whole checkout
        encoded its 20,000 rows (25-40 ms) after its last file was written; it calls
        this while the large file's last writes are in flight.
        """
        keys = sorted(entries)
        recs = [entries[p] for p in keys]
        rows = [as_row(p, r) for p, r in zip(keys, recs, strict=True)]
        self._ahead = (keys, recs, rows, _encode_rows(rows))

    def _encoded_ahead(self, keys: list[bytes], entries: Mapping[bytes, Staged]) -> _Body | None:
        """The encoding of ``entries`` (sorted paths ``keys``) from
        :meth:`encode_ahead`'s, or None where that cannot make it."""
        ahead, self._ahead = self._ahead, None
        if ahead is None or ahead[0] != keys:
            return None
        _, recs, rows, body = ahead
        n, names, columns, content = body
        patched: bytearray | None = None
        pack_into = struct.pack_into
        for i, p in enumerate(keys):
            rec = entries[p]
            if rec is recs[i]:
                continue
            row, was = as_row(p, rec), rows[i]
            if row[1] != was[1] or row[7:10] != was[7:10]:
                return None  # (the content part differs: encoded again)
            if patched is None:
                patched = bytearray(columns)
            at = 8 * i
            pack_into("<q", patched, at, row[3])
            pack_into("<q", patched, 8 * n + at, row[4])
            pack_into("<q", patched, 16 * n + at, row[5])
            pack_into("<Q", patched, 24 * n + at, row[6] & NO_INODE)
            pack_into("<I", patched, 32 * n + 4 * i, row[2])
            pack_into("<I", patched, 36 * n + 4 * i, row[10] if len(row) > 10 else 0)
        return body if patched is None else (n, names, bytes(patched), content)

    def _stat(self, path: bytes) -> tuple[int, int, int, int] | None:
        """Size, mtime, ctime and inode of ``path``'s row, in whatever form it is held."""
        if path in self._over:
            r = self._over[path]
            return None if r is None else (r[3], r[4], r[5], r[6])
        if self._entries is not None:
            s = self._entries.get(path)
            return None if s is None else (s.size, s.mtime_ns, s.ctime_ns, s.ino)
        if (cols := self._cols) is not None:
            i = cols.pos.get(path)
            return None if i is None else (cols.size[i], cols.mtime[i], cols.ctime[i], cols.ino[i])
        r = self._rows.get(path)
        return None if r is None else (r[3], r[4], r[5], r[6])

    def _note_racy(self) -> None:
        """Note the rows too recent to trust against ``written_ns`` (a pass over the
        mtimes, in C when the file's columns are still what is held)."""
        limit = self.written_ns - RACY_NS
        if self._entries is not None:
            found = [p for p, s in self._entries.items() if s.mtime_ns >= limit]
        elif (cols := self._cols) is not None:
            if not cols.names or max(cols.mtime) < limit:
                found = []
            else:
                found = [cols.names[i] for i, t in enumerate(cols.mtime) if t >= limit]
            found += [p for p, r in self._over.items() if r is not None and r[4] >= limit]
        else:
            found = [p for p, r in self._rows.items() if r[4] >= limit]
        self._racy = {p: st for p in found if (st := self._stat(p)) is not None}

    def _smudge(self, trusted_below: int) -> None:
        """Give inode -1 to the rows that were too recent to trust when last written
        and still hold that stat, if the file about to be written would trust them.

        Rewriting the index stamps it with a later time. A file changed within the
        timestamp tick after it was hashed keeps the stat of its row, so under the later
        time that row would prove it unchanged (git's "racily clean" entries). With
        inode -1 no stat matches, and the next ``status`` or ``add`` hashes it; a row
        staged again meanwhile holds the stat of that hashing instead, and is kept.
        """
        doomed = [
            p for p, st in self._racy.items() if st[1] < trusted_below and self._stat(p) == st
        ]
        if not doomed:
            return
        self._decode()
        self._loaded = None
        if self._entries is not None:
            entries = self._entries
            for p in doomed:
                entries[p] = entries[p]._replace(ino=-1)
        else:
            rows = self._rows
            for p in doomed:
                r = rows[p]
                rows[p] = (*r[:6], -1, *r[7:])

    def sieve(self) -> Sieve | None:
        """What :meth:`triage` holds a file's lstat against, for a caller that sorts the
        files of a directory as it lists them (``vfs.worktree.status``): the sorted
        paths (row i is path i), what makes the map of each path to its row (once, on
        first call: a caller that looks up a directory's paths among its run of the
        sorted ones need not), the size, mtime, ctime, inode and mode columns, the
        mtime at or after which a row proves nothing (racily clean), and the
        permission bits a recorded mode may be cut to (:func:`same_mode`). None unless
        the rows are held as a file's columns: :meth:`triage` then sorts them."""
        self._settle()
        if (cols := self._cols) is None:
            return None
        limit = self.written_ns - RACY_NS
        return (
            cols.names, lambda: cols.pos, cols.size, cols.mtime, cols.ctime, cols.ino,
            cols.mode, limit, _KEEP,
        )  # fmt: skip

    def triage(self, found: Iterable[_F]) -> tuple[list[_F], list[_F], list[bytes]]:
        """Sort (path, lstat) pairs: (untracked, maybe changed, paths of tracked ones).

        The same test as :meth:`fresh`, in one loop over the columns or the raw rows.
        ``found`` may be a generator: a pair proved unchanged is dropped at once, so a
        clean ``status`` never holds a stat result per file.
        """
        self._settle()
        untracked: list[_F] = []
        stale: list[_F] = []
        tracked: list[bytes] = []
        limit = self.written_ns - RACY_NS
        keep = tracked.append
        if (cols := self._cols) is not None:
            at = cols.pos.get
            size, mtime, ctime, ino, mode = cols.size, cols.mtime, cols.ctime, cols.ino, cols.mode
            for f in found:
                rel, st = f
                i = at(rel)
                if i is None:
                    untracked.append(f)
                    continue
                keep(rel)
                if not (  # _col_fresh, inline: a call per file was a tenth of this loop
                    st.st_mtime_ns == (t := mtime[i])
                    and st.st_size == size[i]
                    and st.st_ctime_ns == ctime[i]
                    and st.st_ino == ino[i]
                    and ((m := st.st_mode & PERM_BITS) == (r := mode[i]) or m == r & _KEEP)
                    and t < limit
                ):
                    stale.append(f)
            return untracked, stale, tracked
        if self._entries is not None:
            for f in found:
                ok = self.fresh(f[0], f[1])
                if ok is None:
                    untracked.append(f)
                else:
                    tracked.append(f[0])
                    if not ok:
                        stale.append(f)
            return untracked, stale, tracked
        get = self._rows.get
        for f in found:
            rel, st = f
            row = get(rel)
            if row is None:
                untracked.append(f)
                continue
            keep(rel)
            if not (  # _row_fresh, inline
                st.st_mtime_ns == row[4]
                and st.st_size == row[3]
                and st.st_ctime_ns == row[5]
                and st.st_ino == row[6]
                and ((m := st.st_mode & PERM_BITS) == row[2] or m == row[2] & _KEEP)
                and row[4] < limit
            ):
                stale.append(f)
        return untracked, stale, tracked

    def unchanged(self, staged: Staged, st: os.stat_result) -> bool:
        """True if a file with stat ``st`` certainly still has the staged content."""
        return staged.matches_stat(st) and staged.mtime_ns < self.written_ns - RACY_NS

    def under(self, prefix: bytes) -> list[bytes]:
        """Tracked paths equal to ``prefix`` or below it (all paths for b"")."""
        if not prefix:
            return list(self.paths())
        self._settle()
        slash = prefix + b"/"
        if (cols := self._cols) is not None:  # sorted: the paths below are one run of them
            names = cols.names
            i = bisect.bisect_left(names, prefix)
            here = [prefix] if i < len(names) and names[i] == prefix else []
            j = bisect.bisect_left(names, slash, i)
            return here + names[j : bisect.bisect_left(names, prefix + b"0", j)]  # ("/" + 1)
        return [p for p in self.paths() if p == prefix or p.startswith(slash)]


def _read_trees(rec: object) -> CacheTree:
    """The cache-tree of a file's meta part (format 4: ``[[dir, paths, bytes, mtime,
    id], ...]``), or none at all if any entry is malformed: a cache is rebuilt, never
    trusted in part."""
    if rec is None:
        return {}
    out: CacheTree = {}
    try:
        for d, count, size, mtime, oid in rec:  # type: ignore[attr-defined]
            if not (
                type(d) is bytes
                and type(count) is int
                and type(size) is int
                and type(mtime) is int
                and type(oid) is bytes
                and len(oid) == ID_BYTES
                and d not in out
            ):
                return {}
            if d:
                check_path(d)
            out[d] = (count, size, mtime, oid)
    except (TypeError, ValueError, FormatError):
        return {}
    return out


def _col_fresh(cols: _Columns, i: int, st: os.stat_result, limit: int) -> bool:
    """:func:`_row_fresh` of row ``i`` of the columns."""
    return bool(
        st.st_mtime_ns == cols.mtime[i]
        and st.st_size == cols.size[i]
        and st.st_ctime_ns == cols.ctime[i]
        and st.st_ino == cols.ino[i]
        and ((m := st.st_mode & PERM_BITS) == cols.mode[i] or m == cols.mode[i] & _KEEP)
        and cols.mtime[i] < limit
    )


def _set_aside(path: Path) -> None:
    """Rename a directory found where a rebuilt index goes (a file is replaced by the
    write, a link too) to ``index.not-a-file``, which nothing reads: the rename of the
    new index over a directory would fail."""
    try:
        if statmod.S_ISDIR(os.lstat(path).st_mode):
            os.replace(path, path.with_name(f"{path.name}.not-a-file"))
    except OSError:
        pass  # (the write that follows says what stands in its way)
