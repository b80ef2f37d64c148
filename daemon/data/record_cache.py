"""Trees and versions for the trio thread: kept in memory, read from disk in threads.

``History`` reads records from the object store, which is blocking disk I/O, so the
handlers never call it directly: a record not in this module's memory is read by a
worker thread (under the disk limiter) and kept. Records are immutable, so a record
in memory is always right; the memory is bounded by a count of records (a decoded
tree costs about 200 bytes per entry).
"""

from __future__ import annotations

from collections import OrderedDict

import trio

from vfs import History, Tree, Version

TREES_KEPT = 8192
VERSIONS_KEPT = 65536


class Records:
    """Decoded trees and versions by id, for async callers."""

    def __init__(self, history: History, limiter: trio.CapacityLimiter) -> None:
        self.history = history
        self.limiter = limiter
        self._trees: OrderedDict[bytes, Tree] = OrderedDict()
        self._versions: OrderedDict[bytes, Version] = OrderedDict()

    async def tree(self, oid: bytes) -> Tree:
        """The tree ``oid`` (FormatError, ObjectMissing, ObjectCorrupt if it cannot be read)."""
        tree = self._trees.get(oid)
        if tree is None:
            tree = await trio.to_thread.run_sync(self.history.tree, oid, limiter=self.limiter)
            self._trees[oid] = tree
            if len(self._trees) > TREES_KEPT:
                self._trees.popitem(last=False)
        else:
            self._trees.move_to_end(oid)
        return tree

    async def version(self, oid: bytes) -> Version:
        """The version ``oid`` (errors as for ``tree``)."""
        v = self._versions.get(oid)
        if v is None:
            v = await trio.to_thread.run_sync(self.history.version, oid, limiter=self.limiter)
            self._versions[oid] = v
            if len(self._versions) > VERSIONS_KEPT:
                self._versions.popitem(last=False)
        return v
