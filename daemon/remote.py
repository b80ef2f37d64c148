"""Chunks read from a remote one ranged GET at a time, verified before they are returned.

The remote is connected on first use. Its index (object id -> pack, offset, stored
length) is merged from its index segments on first use, and again when a chunk is
not in it (versions pushed since). Each chunk costs exactly one GET of its stored
bytes; it is decompressed and checked against its id here, so nothing unverified
leaves this module.

Threading: ``fetch`` blocks (network) and is called from worker threads, several at
once; the index is replaced whole under a lock, never changed in place.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable

from vfs import Located, ObjectMissing, RemoteRepo, decode_payload

log = logging.getLogger(__name__)


class RemoteChunks:
    """Chunks of one remote, by id."""

    def __init__(self, opener: Callable[[], RemoteRepo]) -> None:
        self._opener = opener
        self._remote: RemoteRepo | None = None
        self._index: dict[bytes, Located] | None = None
        self._lock = threading.Lock()

    def _open(self) -> RemoteRepo:
        """The remote, connected on first use (a repository mount may never need it)."""
        with self._lock:
            if self._remote is None:
                self._remote = self._opener()
            return self._remote

    def set_index(self, index: dict[bytes, Located]) -> None:
        """Use a freshly merged index (after a metadata refresh)."""
        with self._lock:
            self._index = index

    def _locate(self, oid: bytes) -> Located:
        with self._lock:
            index = self._index
        hit = index.get(oid) if index is not None else None
        if hit is None:
            fresh = self._open().index()
            with self._lock:
                self._index = fresh
            hit = fresh.get(oid)
        if hit is None:
            raise ObjectMissing(oid.hex(), f"a file; it is not on {self._open().url} either")
        return hit

    def fetch(self, oid: bytes) -> bytes:
        """The chunk's bytes: one ranged GET, decompressed and verified (ObjectCorrupt if not)."""
        pack_id, obj = self._locate(oid)
        payload = self._open().backend.get(f"packs/{pack_id}", obj.offset, obj.stored_len)
        log.debug("fetched chunk %s: %d bytes from pack %s", oid.hex(), len(payload), pack_id)
        return decode_payload(obj, payload)
