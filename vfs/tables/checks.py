"""What a keyed row diff proved about one file, kept for the next diff of the same bytes.

The fast path (``vfs.tables.rowdiff``) compares only the rows in changed chunks, but
to prove its answer it reads every row of the older file once: that every value
fits its column's type and that the key names one row. On the benchmark's one-block
edit that read is most of the diff. Both are facts about the file's bytes, the way
the engine reads them and the key; any keyed diff that finishes has proved them for
both its sides. So it records them here, and a later fast diff whose older side was
proved before (several versions diffed against one base, or the next version
against this one) reads only the key column of the older file, for the rows whose
key a changed row of the newer side also has.

A diff may also know bounds of the key: for a first key column of an integer type,
a low and a high value between which every key of the file lies (its least and
greatest, or a range holding them). A later diff whose changed rows bring keys
outside those bounds (rows appended with new ids) knows that no shared row has such
a key, and does not read the older file at all.

What the engine's sniffer found in a CSV's first bytes (``Engine.sniff_pair``) depends
on those bytes alone too: ``KeptSniffs`` keeps its answer in ``<64 hex>.sniff`` (the
BLAKE3 hash of the ids and sizes of the chunks holding the file's first
``SNIFF_BYTES`` and whether it has more, ``Side.prefix``, which fix the sample's
bytes; the format, the sniffer's settings and the engine's version; msgpack ``[1,
[delimiter, quote, escape, newline, comment, skip, header, [[column, type], ...],
date format, timestamp format]]``), so that the next diff of a version that starts
with the same chunks (the older side of most diffs) neither reads its first bytes (a
lazy copy leaves them unwritten) nor sniffs them again.

An entry is ``.dvfs/rowcache/<64 hex>``: the hex is the BLAKE3 hash of everything the
facts depend on (the file's chunk ids and sizes, the ``Table`` that reads it, typed
or text, the key columns, the engine's version), its content ``dvfs-rows 1 <rows>\\n``
with the rows the engine reads, or ``dvfs-rows 1 <rows> <low> <high>\\n`` with the
key's bounds (decimal integers). It is a cache, local to the repository and never
part of its format: an entry that is missing or not exactly of that form is not
used; entries are written without fsync (the rename keeps them whole; a crash may
lose one) and writing one may fail silently (a read-only ``.dvfs``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import re
import stat
import threading
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import _duckdb as duckdb
import msgpack

from vfs._os.beneath import open_dir
from vfs.errors import DvfsError
from vfs.model.codec import ChunkRef
from vfs.model.ids import hasher
from vfs.store.durable import write_atomic_at
from vfs.tables import engine
from vfs.tables.engine import Table
from vfs.tables.formats import MAX_LINE, Format

DIR = "rowcache"
FORMAT = 1
_INT = rb"(-?(?:0|[1-9][0-9]{0,39}))"
_ENTRY = re.compile(rb"dvfs-rows 1 (0|[1-9][0-9]{0,18})(?: " + _INT + b" " + _INT + rb")?\n")
# The key types whose bounds are kept: their values, their order and equality are
# the integers' own, and every value fits in the entry (UHUGEINT: 39 digits).
INTEGERS = {
    "TINYINT": (-(2**7), 2**7 - 1), "SMALLINT": (-(2**15), 2**15 - 1),
    "INTEGER": (-(2**31), 2**31 - 1), "BIGINT": (-(2**63), 2**63 - 1),
    "HUGEINT": (-(2**127), 2**127 - 1), "UTINYINT": (0, 2**8 - 1),
    "USMALLINT": (0, 2**16 - 1), "UINTEGER": (0, 2**32 - 1), "UBIGINT": (0, 2**64 - 1),
    "UHUGEINT": (0, 2**128 - 1),
}  # fmt: skip
Bounds = tuple[int, int]
_NAME = re.compile(r"[0-9a-f]{64}")
# how entries are opened: a link is not followed, a FIFO does not block the open
READ_FLAGS = os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK


def entry_name(header: bytes, chunks: Sequence[ChunkRef]) -> str:
    """The name of a cache entry about the file made of ``chunks``: the BLAKE3 of
    ``header`` (what else the entry depends on) and the chunks' ids and sizes."""
    h = hasher()
    h.update(header)
    for c in chunks:
        h.update(c.oid + c.size.to_bytes(8, "big"))
    return str(h.hexdigest())


def read_entry(dvfs_dir: Path | None, entry: str, limit: int) -> bytes | None:
    """The first ``limit`` bytes of cache entry ``entry`` (a link is not followed, in
    its place nor in the row cache's: :func:`open_read`), or None if there is none,
    it is not a regular file (a FIFO would block the open without ``O_NONBLOCK``) or
    it cannot be read."""
    where = open_read(dvfs_dir)
    if where is None:
        return None
    try:
        fd = os.open(entry, READ_FLAGS, dir_fd=where)
    except OSError:
        return None
    finally:
        os.close(where)
    try:
        # (checked before fdopen: on a directory's descriptor it fails and leaves it open)
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            return None
        with os.fdopen(fd, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def read_record(dvfs_dir: Path | None, entry: str, limit: int) -> Any:
    """The payload of cache entry ``entry`` written by :func:`write_record`, or None
    if there is none or it is not such a record (the caller checks the payload)."""
    data = read_entry(dvfs_dir, entry, limit)
    if data is None:
        return None
    try:
        doc = msgpack.unpackb(data, raw=False)
    except (ValueError, msgpack.UnpackException):
        return None
    if not (isinstance(doc, list) and len(doc) == 2 and doc[0] == 1):
        return None
    return doc[1]


def write_record(dvfs_dir: Path | None, entry: str, payload: object) -> None:
    """Write ``payload`` as cache entry ``entry``, msgpack ``[1, payload]`` (best effort,
    as :func:`write_entry`)."""
    write_entry(dvfs_dir, entry, msgpack.packb([1, payload], use_bin_type=True))


def write_entry(dvfs_dir: Path | None, entry: str, data: bytes) -> None:
    """Write cache entry ``entry`` (atomically, not fsynced; best effort: a read-only
    ``.dvfs`` keeps none); while this thread holds its writes (:func:`held`), only
    note it."""
    if dvfs_dir is None:
        return
    holding: Held | None = getattr(_THREAD, "held", None)
    if holding is not None:
        holding.entries[(dvfs_dir, entry)] = data
        return
    _store(dvfs_dir, entry, data)


def open_cache(dvfs_dir: Path) -> int | None:
    """A descriptor of ``dvfs_dir/rowcache`` (made if missing), for writing and deleting
    there by name; None if it cannot be had: a symbolic link on the way (a repository
    unpacked from someone else, one swapped in at any moment) is never followed, so
    nothing is kept, nor deleted, where one points. The caller closes it."""
    try:
        return open_dir(dvfs_dir, DIR, make=True)
    except OSError:
        return None


def open_read(dvfs_dir: Path | None) -> int | None:
    """A descriptor of ``dvfs_dir/rowcache`` to read entries in by name; None if there
    is none or it is a symbolic link (one planted there, by whoever made the repository
    or swapped in at any moment, is never read through: what is kept there is
    trusted). The caller closes it."""
    if dvfs_dir is None:
        return None
    try:
        return open_dir(dvfs_dir, DIR)
    except OSError:
        return None


def _store(dvfs_dir: Path, entry: str, data: bytes) -> None:
    fd = open_cache(dvfs_dir)
    if fd is None:
        return
    try:
        with contextlib.suppress(OSError, DvfsError):
            write_atomic_at(fd, entry, data, sync=False)
    finally:
        os.close(fd)


class Held:
    """The cache entries a thread wrote while it held its writes (:func:`held`)."""

    def __init__(self) -> None:
        self.entries: dict[tuple[Path, str], bytes] = {}

    def write(self) -> None:
        """Write the entries noted (best effort, as :func:`write_entry`)."""
        entries, self.entries = self.entries, {}
        for (dvfs_dir, entry), data in entries.items():
            _store(dvfs_dir, entry, data)


_THREAD = threading.local()


@contextlib.contextmanager
def held() -> Iterator[Held]:
    """Hold the cache entries this thread writes until the caller knows that what they
    were learned from stayed as it was: a diff that reads a working-tree file in place
    (``vfs.tables.source``) writes them only once the file is found unchanged after
    the engine read it (``Held.write``, in the block or after it); otherwise they are
    dropped."""
    outer = getattr(_THREAD, "held", None)
    holding = Held()
    _THREAD.held = holding
    try:
        yield holding
    finally:
        _THREAD.held = outer


def name(chunks: Sequence[ChunkRef], table: Table, text: bool, key: Sequence[str]) -> str:
    """The entry that holds the facts of the file made of ``chunks``, read as ``table``."""
    what = [FORMAT, duckdb.__version__, dataclasses.astuple(table), text, list(key)]
    return entry_name(json.dumps(what, separators=(",", ":")).encode(), chunks)


def bounded(table: Table, key: Sequence[str], text: bool) -> str | None:
    """The type of the key's first column if bounds of it can be kept, else None."""
    if text or not key:
        return None
    kind = table.types().get(key[0])
    return kind if kind in INTEGERS else None


def proof(dvfs_dir: Path | None, entry: str, kind: str | None = None
          ) -> tuple[int, Bounds | None] | None:  # fmt: skip
    """The rows recorded in ``entry`` and the key's bounds if it holds bounds that fit
    ``kind`` (the key's type, ``bounded``), or None when there is no valid entry."""
    if not _NAME.fullmatch(entry):
        return None
    data = read_entry(dvfs_dir, entry, 128)
    m = _ENTRY.fullmatch(data) if data is not None else None
    if m is None:
        return None
    bounds = None
    if m.group(2) is not None and kind in INTEGERS:
        low, high = int(m.group(2)), int(m.group(3))
        least, most = INTEGERS[kind]
        if least <= low <= high <= most:
            bounds = low, high
    return int(m.group(1)), bounds


def record(dvfs_dir: Path | None, entry: str, count: int, bounds: Bounds | None = None) -> None:
    """Record that the file of ``entry`` was proved, with ``count`` rows and the key's
    ``bounds`` if known (best effort)."""
    if not _NAME.fullmatch(entry) or count < 0:
        return
    text = b"dvfs-rows 1 %d" % count
    if bounds is not None and bounds[0] <= bounds[1]:
        text += b" %d %d" % bounds
    text += b"\n"
    kept = read_entry(dvfs_dir, entry, 128)
    if kept == text or (bounds is None and kept is not None and kept.startswith(text[:-1] + b" ")
                        and _ENTRY.fullmatch(kept)):  # fmt: skip
        return  # the same, or the same rows with bounds that another diff found
    write_entry(dvfs_dir, entry, text)


class KeptSniffs:
    """``engine.Sniffs`` kept in ``dvfs_dir``'s row cache (module doc); best effort."""

    def __init__(self, dvfs_dir: Path | None) -> None:
        self.dvfs_dir = dvfs_dir

    def _name(self, fmt: Format, key: bytes) -> str:
        h = hasher()
        what = [
            FORMAT, duckdb.__version__, fmt, engine.SNIFF_ROWS, engine.SNIFF_BYTES, MAX_LINE,
            len(key),
        ]  # fmt: skip
        h.update(b"dvfs sniff 3" + json.dumps(what).encode() + b"\n")
        h.update(key)
        return f"{h.hexdigest()}.sniff"

    def get(self, fmt: Format, key: bytes) -> tuple[Any, ...] | None:
        row = read_record(self.dvfs_dir, self._name(fmt, key), 1 << 20)
        if not isinstance(row, list) or len(row) != 10:
            return None
        delim, quote, escape, newline, comment, skip, header, columns, datef, tsf = row
        texts = (delim, quote, escape, newline, comment, datef, tsf)
        if not (
            all(t is None or isinstance(t, str) for t in texts)
            and (skip is None or type(skip) is int) and (header is None or type(header) is bool)
            and isinstance(columns, list)
            and all(
                isinstance(c, list) and len(c) == 2 and all(isinstance(v, str) for v in c)
                for c in columns
            )
        ):  # fmt: skip
            return None
        cols = [{"name": n, "type": t} for n, t in columns]
        return (delim, quote, escape, newline, comment, skip, header, cols, datef, tsf)

    def put(self, fmt: Format, key: bytes, row: tuple[Any, ...]) -> None:
        delim, quote, escape, newline, comment, skip, header, columns, datef, tsf = row[:10]
        cols = [[str(c["name"]), str(c["type"])] for c in columns]
        fields = [delim, quote, escape, newline, comment, skip, header, cols, datef, tsf]
        write_record(self.dvfs_dir, self._name(fmt, key), fields)
