"""The run cache: outputs of an earlier run, found again by its exact inputs.

When a stale stage's command, wdir, deps (by content id), params (by value) and
output paths are exactly those of a run made before, its outputs are restored from
the store instead of running the command again. Runs are found:

1. in ``.dvfs/runcache/``, written by every ``repro`` and experiment of this
   repository;
2. else in the pipelines of versions (every branch and tag, newest first, at most
   ``SCAN`` versions): runs made elsewhere and pushed, or made here before the cache
   was cleared.

A run is only restored if every chunk of its outputs is in the local store.

Key (32 bytes, the entry's file name in hex)::

    BLAKE3(b"run\\0" + msgpack([cmd, wdir, [[dep, id], ...], [[file, key, value], ...],
                               [out, ...]]))   # lists sorted, as in vfs.model.version_codec

Entry ``.dvfs/runcache/<2 hex>/<62 hex>`` (msgpack, written atomically once the
objects it names are on disk; never read or written through a symbolic link: a
``runcache`` that is one is left alone, with a warning)::

    {"v": 1, "tree": <id of a tree holding the outputs at their paths>,
     "stage": <the run, as one stage of a version's pipeline (vfs.model.version_codec)>}

An entry that does not decode, or names objects the store lacks, is a miss.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import msgpack

from vfs._os.beneath import open_dir, read_regular
from vfs.errors import DvfsError, FormatError
from vfs.model.codec import Entry, Kind
from vfs.model.ids import hash_bytes
from vfs.model.params import to_record
from vfs.model.version_codec import StageRecord, decode_pipeline, encode_pipeline
from vfs.ops.commit import build_tree_rows
from vfs.quoting import quote_name
from vfs.repo.repository import Repository
from vfs.repo.stage import Staged, as_row
from vfs.store.durable import write_atomic_at

CACHE_DIR = "runcache"
ENTRY_FORMAT = 1
MAX_ENTRY = 64 << 20
SCAN = 10_000


def key_of(
    cmd: str | tuple[str, ...],
    wdir: bytes,
    deps: Sequence[tuple[bytes, bytes]],
    params: Sequence[tuple[bytes, str, Any]],
    outs: Sequence[bytes],
) -> bytes:
    """The run cache key of a run's inputs (see the module docstring)."""
    body = [
        cmd if isinstance(cmd, str) else list(cmd),
        wdir,
        [[p, i] for p, i in sorted(deps)],
        [[f, k, to_record(v)] for f, k, v in sorted(params, key=lambda x: (x[0], x[1]))],
        sorted(outs),
    ]
    return hash_bytes(b"run\0" + msgpack.packb(body, use_bin_type=True))


def key_of_record(s: StageRecord) -> bytes:
    """The key of a recorded run."""
    return key_of(s.cmd, s.wdir, s.deps, s.params, [p for p, _ in s.outs])


@dataclass(frozen=True)
class Hit:
    """A run found again: its record and its outputs' entries, all stored here."""

    record: StageRecord
    entries: list[tuple[bytes, Entry]]
    where: str  # "the run cache" or "vN"


def _decode(raw: bytes) -> Any:
    return msgpack.unpackb(raw, raw=False, strict_map_key=True)


class RunCache:
    """The run cache of one repository (see the module docstring)."""

    def __init__(self, repo: Repository) -> None:
        self.repo = repo
        self.dir = repo.dir / CACHE_DIR
        self._pending: list[tuple[bytes, bytes]] = []  # (key, entry bytes) to write
        self._from_versions: dict[bytes, tuple[str, bytes, StageRecord]] | None = None

    def find(self, key: bytes) -> Hit | None:
        """A run with this key whose outputs can all be restored from the store, or None."""
        hit = self._local(key)
        if hit is not None:
            return hit
        return self._in_versions(key)

    def _read(self, shard: str, name: str) -> bytes | None:
        """The bytes of entry ``shard/name``; None if there is none that can be one: a
        link on the way or in its place, a FIFO (never waited on), more than
        ``MAX_ENTRY`` bytes (never read whole)."""
        try:
            fd = open_dir(self.repo.dir, f"{CACHE_DIR}/{shard}")
        except OSError:
            return None
        try:
            return read_regular(fd, name, MAX_ENTRY)
        except OSError:
            return None
        finally:
            os.close(fd)

    def _local(self, key: bytes) -> Hit | None:
        h = key.hex()
        raw = self._read(h[:2], h[2:])
        if raw is None:
            return None
        try:
            rec = _decode(raw)
            if not (isinstance(rec, dict) and set(rec) == {"v", "tree", "stage"}):
                return None
            if rec["v"] != ENTRY_FORMAT or not isinstance(rec["tree"], bytes):
                return None
            (record,) = decode_pipeline([rec["stage"]])
            if key_of_record(record) != key:
                return None
            entries = list(self.repo.history.walk(rec["tree"]))
        except (DvfsError, ValueError, msgpack.UnpackException):
            return None
        return self._usable(record, entries, "the run cache")

    def trees(self) -> Iterator[bytes]:
        """The output tree named by each entry (what ``dvfs gc`` keeps); entries that do
        not decode are skipped (they are misses; so is a cache that is a link)."""
        try:
            top = open_dir(self.repo.dir, CACHE_DIR)
        except OSError:
            return
        try:
            subs = sorted(os.listdir(top))
        finally:
            os.close(top)
        for sub in subs:
            try:
                fd = open_dir(self.repo.dir, f"{CACHE_DIR}/{sub}")
            except OSError:
                continue
            try:
                found = []
                for name in sorted(os.listdir(fd)):
                    with contextlib.suppress(OSError, ValueError, msgpack.UnpackException):
                        raw = read_regular(fd, name, MAX_ENTRY)  # (no FIFO waited on)
                        rec = None if raw is None else _decode(raw)
                        if isinstance(rec, dict) and isinstance(rec.get("tree"), bytes):
                            found.append(rec["tree"])
            finally:
                os.close(fd)
            yield from found

    def _usable(
        self, record: StageRecord, entries: list[tuple[bytes, Entry]], where: str
    ) -> Hit | None:
        store = self.repo.store
        for _, e in entries:
            if e.kind == Kind.FILE and not all(store.has(c.oid) for c in e.chunks):
                return None
        return Hit(record, entries, where)

    def _versions(self) -> Iterator[tuple[str, bytes]]:
        """(label, id) of versions on every branch and tag, newest first per chain."""
        hist = self.repo.history
        seen: set[bytes] = set()
        tips = [*self.repo.refs.branches().values(), *self.repo.refs.tags().values()]
        count = 0
        for tip in tips:
            with contextlib.suppress(DvfsError):
                for oid, v in hist.chain(tip):
                    if oid in seen:
                        break
                    seen.add(oid)
                    count += 1
                    if count > SCAN:
                        return
                    yield f"v{v.number}", oid

    def _in_versions(self, key: bytes) -> Hit | None:
        hist = self.repo.history
        if self._from_versions is None:
            found: dict[bytes, tuple[str, bytes, StageRecord]] = {}
            for label, oid in self._versions():
                with contextlib.suppress(DvfsError):
                    v = hist.version(oid)
                    for s in v.pipeline:
                        found.setdefault(key_of_record(s), (label, v.tree, s))
            self._from_versions = found
        hit = self._from_versions.get(key)
        if hit is None:
            return None
        label, tree, record = hit
        entries: list[tuple[bytes, Entry]] = []
        try:
            for p, _ in record.outs:
                e = hist.lookup(tree, p)
                if e is None:
                    return None
                if e.kind == Kind.DIR:
                    entries += list(hist.walk(e.subtree, p))
                else:
                    entries.append((p, e))
        except DvfsError:
            return None
        return self._usable(record, entries, label)

    def add(self, record: StageRecord, staged: dict[bytes, Staged]) -> None:
        """Store the tree of a run's outputs (chunks already stored); its entry waits
        for :meth:`flush`, once the objects are on disk."""
        tree, _, _ = build_tree_rows(
            self.repo.store, ((p, as_row(p, s)) for p, s in sorted(staged.items()))
        )
        (row,) = encode_pipeline([record])
        entry = msgpack.packb({"v": ENTRY_FORMAT, "tree": tree, "stage": row}, use_bin_type=True)
        self._pending.append((key_of_record(record), entry))

    def flush(self) -> int:
        """Make the stored objects durable, then write the pending entries; how many.

        Written through descriptors of ``runcache`` and its shards opened without
        following a link (``vfs._os.beneath.open_dir``): one swapped in at any moment
        makes the write fail, never lands it elsewhere."""
        if not self._pending:
            return 0
        self.repo.store.sync()
        pending, self._pending = self._pending, []
        try:
            top = open_dir(self.repo.dir, CACHE_DIR, make=True)
        except OSError as exc:
            if exc.errno not in (errno.ELOOP, errno.ENOTDIR):
                return 0  # (a read-only .dvfs keeps none)
            raise FormatError(
                f"{quote_name(str(self.dir))} is a symbolic link or not a folder: dvfs writes "
                "nothing out of the repository; remove it (the run cache is made again)"
            ) from None
        done = 0
        try:
            for key, entry in pending:
                h = key.hex()
                with contextlib.suppress(OSError):
                    shard = open_dir(top, h[:2], make=True)
                    try:
                        write_atomic_at(shard, h[2:], entry, sync=False)
                    finally:
                        os.close(shard)
                    done += 1
        finally:
            os.close(top)
        return done
