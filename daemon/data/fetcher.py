"""Chunk bytes for the read handler: from memory, the local store or cache, or the remote.

Where a chunk comes from, in order:

1. memory: the chunks read last (``MEMORY_BYTES``), since the kernel asks for a
   1 MiB chunk in 128 KiB pieces and each piece must not read and hash it again;
2. the local object store (repository mounts), then the chunk cache, both verified
   on every read (worker thread, disk limiter);
3. the remote: one ranged GET (worker thread, network limiter), verified, then
   written to the cache.

Every load is a task of this module's own nursery, registered by chunk id while it
runs: a second reader of the same chunk waits for that task instead of starting
another, and read-ahead (``prefetch``) starts the same tasks without waiting. A
reader waits at most ``timeout`` seconds, then fails with EIO; the load goes on in
its thread and its result still lands in the cache, so a slow or unreachable
remote costs that one read, never the daemon: cached chunks keep being served
meanwhile, and the next read of the chunk tries again. A caller may give the
deadline itself, so that one request touching several chunks waits ``timeout`` in
all, not once per chunk (``daemon.data.open_files``). When the daemon stops, a
load stuck in its thread is abandoned, so a hung remote cannot hold up an unmount.

Threading: all state here (memory, the in-flight table) belongs to the trio thread;
the worker threads run only ``_read_local`` and ``_fetch_remote``, which touch the
store, the cache and the remote (each thread-safe) and nothing else here. At most
``disk_threads`` + ``net_threads`` threads block at once; read-ahead is capped at
``MAX_INFLIGHT`` loads so it cannot queue without bound behind a slow remote.
"""

from __future__ import annotations

import logging
from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from daemon.data.chunk_cache import ChunkCache
from daemon.data.meta import MetaFiles
from vfs import ChunkRef, ObjectCorrupt, ObjectMissing, ObjectStore, RemoteChunks, RemoteUnreachable

log = logging.getLogger(__name__)
MEMORY_BYTES = 64 * 1024 * 1024
MAX_INFLIGHT = 64


@dataclass(eq=False)
class _Load:
    """One chunk being loaded; readers wait for ``done``."""

    done: trio.Event = field(default_factory=trio.Event)
    data: bytes | None = None
    error: Exception | None = None


@dataclass
class FetchStats:
    """What the fetcher did, for logs and benchmarks."""

    remote_chunks: int = 0
    remote_bytes: int = 0
    local_chunks: int = 0
    memory_hits: int = 0
    shared_waits: int = 0
    timeouts: int = 0
    failures: int = 0


class Fetcher:
    """Chunks by reference, shared between readers, bounded in time and threads."""

    def __init__(
        self,
        local: ObjectStore | None,
        cache: ChunkCache | None,
        remote: RemoteChunks | None,
        *,
        timeout: float,
        disk_threads: int = 8,
        net_threads: int = 8,
    ) -> None:
        self.local = local
        self.cache = cache
        self.remote = remote
        self.timeout = timeout
        self.stats = FetchStats()
        self._disk = trio.CapacityLimiter(disk_threads)
        self._net = trio.CapacityLimiter(net_threads)
        self._memory: OrderedDict[bytes, bytes] = OrderedDict()
        self._memory_bytes = 0
        self._loads: dict[bytes, _Load] = {}
        self._nursery: trio.Nursery | None = None
        self.made: MetaFiles | None = None  # the pieces of .versions/meta (daemon.data.meta)

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Own the nursery the loads run in, until cancelled."""
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            task_status.started()
            await trio.sleep_forever()

    @property
    def pending(self) -> int:
        """Loads under way (readers waiting or read-ahead)."""
        return len(self._loads)

    # reading -------------------------------------------------------------------------

    async def get(self, ref: ChunkRef, deadline: float | None = None) -> bytes:
        """The chunk's verified bytes; a DvfsError (EIO) if it cannot be had in time.

        In time: by ``deadline`` (trio's clock), else within ``timeout`` from now.
        """
        if self.made is not None and ref.oid in self.made.pieces:
            made = await self.made.chunk(ref.oid)
            if made is not None:
                return made
        data = self._memory.get(ref.oid)
        if data is not None:
            self._memory.move_to_end(ref.oid)
            self.stats.memory_hits += 1
            return data
        load = self._loads.get(ref.oid)
        if load is None:
            load = self._start(ref)
        else:
            self.stats.shared_waits += 1
        if deadline is None:
            deadline = trio.current_time() + self.timeout
        with trio.move_on_at(deadline):
            await load.done.wait()
        if not load.done.is_set():
            self.stats.timeouts += 1
            raise RemoteUnreachable(
                f"chunk {ref.oid.hex()} did not arrive within {self.timeout:g} s; "
                "cached data is still served"
            )
        if load.error is not None:
            raise load.error
        assert load.data is not None
        return load.data

    def prefetch(self, refs: Sequence[ChunkRef]) -> int:
        """Start loading chunks that are not held or on their way (read-ahead); no wait.

        Returns how many of ``refs`` were dealt with (started, held or under way):
        fewer than all when ``MAX_INFLIGHT`` loads are running.
        """
        for n, ref in enumerate(refs):
            if len(self._loads) >= MAX_INFLIGHT:
                return n
            if ref.oid not in self._memory and ref.oid not in self._loads:
                self._start(ref)
        return len(refs)

    def _start(self, ref: ChunkRef) -> _Load:
        assert self._nursery is not None, "Fetcher.run is not running"
        load = _Load()
        self._loads[ref.oid] = load
        self._nursery.start_soon(self._load, ref, load)
        return load

    async def _load(self, ref: ChunkRef, load: _Load) -> None:
        try:
            data = await trio.to_thread.run_sync(
                self._read_local, ref.oid, limiter=self._disk, abandon_on_cancel=True
            )
            if data is not None:
                self.stats.local_chunks += 1
            elif self.remote is None:
                raise ObjectMissing(ref.oid.hex(), "a file")
            else:
                data = await trio.to_thread.run_sync(
                    self._fetch_remote, ref, limiter=self._net, abandon_on_cancel=True
                )
                self.stats.remote_chunks += 1
                self.stats.remote_bytes += len(data)
            if len(data) != ref.size:
                why = f"{len(data)} bytes where the tree says {ref.size}"
                raise ObjectCorrupt(ref.oid.hex(), why)
            load.data = data
            self._remember(ref.oid, data)
        except Exception as exc:  # handed to every waiting reader, which answers EIO
            self.stats.failures += 1
            log.error("chunk %s could not be read: %s", ref.oid.hex(), exc)
            load.error = exc
        finally:
            del self._loads[ref.oid]
            load.done.set()

    def _remember(self, oid: bytes, data: bytes) -> None:
        self._memory[oid] = data
        self._memory_bytes += len(data)
        while self._memory_bytes > MEMORY_BYTES and len(self._memory) > 1:
            _, old = self._memory.popitem(last=False)
            self._memory_bytes -= len(old)

    # worker threads ---------------------------------------------------------------------

    def _read_local(self, oid: bytes) -> bytes | None:
        """The chunk from the local store or the cache (verified), or None. Blocking."""
        if self.local is not None:
            try:
                return self.local.get(oid)
            except ObjectMissing:
                pass
        return self.cache.get(oid) if self.cache is not None else None

    def _fetch_remote(self, ref: ChunkRef) -> bytes:
        """One ranged GET, verified, then cached. Blocking."""
        assert self.remote is not None
        data = self.remote.fetch(ref.oid)
        if self.cache is not None and len(data) == ref.size:
            self.cache.put(ref.oid, data)
        return data
