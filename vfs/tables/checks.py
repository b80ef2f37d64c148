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

An entry is ``.dvfs/rowcache/<64 hex>``: the hex is the BLAKE3 hash of everything the
facts depend on (the file's chunk ids and sizes, the ``Table`` that reads it, typed
or text, the key columns, the engine's version), its content ``dvfs-rows 1 <rows>\\n``
with the rows the engine reads. It is a cache, local to the repository and never
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
from collections.abc import Sequence
from pathlib import Path

import _duckdb as duckdb

from vfs.errors import DvfsError
from vfs.model.codec import ChunkRef
from vfs.model.ids import hasher
from vfs.store.durable import write_atomic
from vfs.tables.engine import Table

DIR = "rowcache"
FORMAT = 1
_ENTRY = re.compile(rb"dvfs-rows 1 (0|[1-9][0-9]{0,18})\n")
_NAME = re.compile(r"[0-9a-f]{64}")


def entry_name(header: bytes, chunks: Sequence[ChunkRef]) -> str:
    """The name of a cache entry about the file made of ``chunks``: the BLAKE3 of
    ``header`` (what else the entry depends on) and the chunks' ids and sizes."""
    h = hasher()
    h.update(header)
    for c in chunks:
        h.update(c.oid + c.size.to_bytes(8, "big"))
    return str(h.hexdigest())


def read_entry(dvfs_dir: Path | None, entry: str, limit: int) -> bytes | None:
    """The first ``limit`` bytes of cache entry ``entry`` (a link is not followed), or
    None if there is none or it cannot be read."""
    if dvfs_dir is None:
        return None
    try:
        fd = os.open(dvfs_dir / DIR / entry, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        with os.fdopen(fd, "rb") as f:
            return f.read(limit)
    except OSError:
        return None


def write_entry(dvfs_dir: Path | None, entry: str, data: bytes) -> None:
    """Write cache entry ``entry`` (atomically, not fsynced; best effort: a read-only
    ``.dvfs`` keeps none)."""
    if dvfs_dir is None:
        return
    with contextlib.suppress(OSError, DvfsError):
        (dvfs_dir / DIR).mkdir(exist_ok=True)
        write_atomic(dvfs_dir / DIR / entry, data, sync=False)


def name(chunks: Sequence[ChunkRef], table: Table, text: bool, key: Sequence[str]) -> str:
    """The entry that holds the facts of the file made of ``chunks``, read as ``table``."""
    what = [FORMAT, duckdb.__version__, dataclasses.astuple(table), text, list(key)]
    return entry_name(json.dumps(what, separators=(",", ":")).encode(), chunks)


def rows(dvfs_dir: Path | None, entry: str) -> int | None:
    """The rows recorded in ``entry``, or None when there is no valid entry."""
    if not _NAME.fullmatch(entry):
        return None
    data = read_entry(dvfs_dir, entry, 64)
    m = _ENTRY.fullmatch(data) if data is not None else None
    return int(m.group(1)) if m else None


def record(dvfs_dir: Path | None, entry: str, count: int) -> None:
    """Record that the file of ``entry`` was proved, with ``count`` rows (best effort)."""
    if not _NAME.fullmatch(entry) or count < 0 or rows(dvfs_dir, entry) == count:
        return
    write_entry(dvfs_dir, entry, b"dvfs-rows 1 %d\n" % count)
