"""``MNT/.versions/meta/vN.yaml``: each version's metadata, readable by any tool.

A file's content is ``dvfs show vN --format yaml`` of that version (``vfs.version_yaml``:
metadata, parameters, pipeline lineage, its files), made in a worker thread when the
file is first looked up or listed, and served like any file of a version: cut into
pieces of ``PIECE`` bytes whose ids are their BLAKE3, which the fetcher asks this
module for (``chunk``) before it looks anywhere else. Versions never change, so
neither does their YAML: an entry made once keeps its inode and the kernel may cache
it. Its files are listed up to about ``FILES_BYTES`` of text, the first in path order;
a version with more says how many are left out (``files_not_listed``), so one file
is never larger than about that (``dvfs show`` lists them all). The text of at most
``KEEP_BYTES`` of versions is kept (and the newest, up to ``FILES_BYTES`` and the
version's metadata, whatever its size); a piece of one let go of is made again, from
the version, when it is read. The entry of each file (its size
and the ids of its pieces, a few hundred bytes) is kept as long as the mount runs.

Listing ``meta/`` makes the YAML of every version it lists the first time (the size
of each file is that of its text), which for many versions of many files takes a
while once; later listings use the entries kept.
"""

from __future__ import annotations

from collections import OrderedDict

import trio

from vfs import ChunkRef, Entry, History, Kind, hash_bytes, version_yaml

PIECE = 1 << 20
KEEP_BYTES = 64 << 20
# The files of one version's YAML, in bytes of text (about 100,000 files): making a
# version of millions of files whole took as many hundreds of MB, and all was kept.
FILES_BYTES = 16 << 20


class MetaFiles:
    """The YAML of versions, as file entries and their pieces."""

    def __init__(self, history: History, limiter: trio.CapacityLimiter) -> None:
        self.history = history
        self.limiter = limiter
        self._text: OrderedDict[bytes, bytes] = OrderedDict()  # version id -> YAML
        self._held = 0
        self.pieces: dict[bytes, tuple[bytes, int]] = {}  # piece id -> (version id, index)
        self._entries: dict[tuple[bytes, bytes], Entry] = {}  # (version id, name) -> entry

    async def _made(self, oid: bytes) -> bytes:
        data = self._text.get(oid)
        if data is not None:
            self._text.move_to_end(oid)
            return data
        text = await trio.to_thread.run_sync(
            version_yaml, self.history, oid, FILES_BYTES, limiter=self.limiter
        )
        data = text.encode("utf-8", "surrogateescape")
        self._text[oid] = data
        self._held += len(data)
        while self._held > KEEP_BYTES and len(self._text) > 1:
            _, gone = self._text.popitem(last=False)
            self._held -= len(gone)
        return data

    async def entry(self, oid: bytes, name: bytes, time_ns: int) -> Entry:
        """The file entry of version ``oid``'s YAML, named ``name``."""
        known = self._entries.get((oid, name))
        if known is not None:
            return known
        data = await self._made(oid)
        chunks = []
        for i in range(0, len(data), PIECE):
            piece = data[i : i + PIECE]
            pid = hash_bytes(piece)
            self.pieces[pid] = (oid, i // PIECE)
            chunks.append(ChunkRef(pid, len(piece)))
        made = Entry(
            name,
            Kind.FILE,
            0o444,
            len(data),
            time_ns,
            digest=hash_bytes(data),
            chunks=tuple(chunks),
        )
        self._entries[(oid, name)] = made
        return made

    async def chunk(self, pid: bytes) -> bytes | None:
        """The bytes of piece ``pid`` (None if it is not one of these files')."""
        where = self.pieces.get(pid)
        if where is None:
            return None
        data = await self._made(where[0])
        piece = data[where[1] * PIECE : (where[1] + 1) * PIECE]
        return piece if hash_bytes(piece) == pid else None
