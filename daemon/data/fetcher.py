"""Chunk bytes for the read handler: from memory, the local store or cache, or the remote.

Where a chunk comes from, in order:

1. memory: the chunks read last (``MEMORY_BYTES``), since the kernel asks for a
   1 MiB chunk in 128 KiB pieces and each piece must not read and hash it again;
   and the chunks loaded but not read yet (read-ahead, ``AHEAD_BYTES``), kept apart
   so that what was read cannot push out what is about to be;
2. the local object store (repository mounts), then the chunk cache, both verified
   on every read (worker thread, disk limiter);
3. the remote: one ranged GET (worker thread, network limiter), verified, served,
   and written to the cache behind the reader (``ChunkCache.put_later``).

Read-ahead of a sequential reader (``prefetch`` with ``extend``) coalesces: chunks
to be fetched from the remote that lie next to each other in one pack are a *run*,
fetched with one ranged GET of up to ``MAX_RUN`` bytes, and a run the window reaches
into is taken whole, to the end of the pack, so that a sequential read costs one GET
per pack, two for the pack it starts in (its first chunk is read alone, then the
rest in one GET). Runs of several packs go in parallel (up to the network limiter):
a run is started while the runs under way have less than ``MAX_INFLIGHT_BYTES``
stored bytes still to arrive, and is taken whole, so at most that plus ``MAX_RUN``
are on their way at once (three 16 MiB packs); a pack is not cut into parallel
halves: every GET costs the daemon and the server CPU (signing, parsing,
answering), which a cold read on two cores is short of, and a run costs
memory only for the piece being read, so more packs in flight cost no more RSS.
Each chunk of a run is verified against its id on its own
before it is served or cached: a damaged one fails its readers (EIO) and nothing
else. A run's answer is read in pieces of a few MiB as it streams in (never held
whole, ``vfs.remote.read.RemoteChunks.stream_run``): the chunks of a piece are
verified, queued for the chunk cache (which writes the piece in one write on threads
of its own while the run goes on, and serves its chunks from memory until then) and
handed to their readers at once, so the first piece of a run is served while the
rest is on its way. The chunks of a piece lie back to back in one buffer, so a read
that spans two of them is one view, not a copy (``daemon.data.open_files``).
Without ``extend`` (a read that spans chunks) only the chunks given are fetched, so
random reads keep fetching one chunk each.

Every load is a task of this module's own nursery, registered by chunk id while it
runs: a second reader of the same chunk waits for that task instead of starting
another, and read-ahead (``prefetch``) starts the same tasks without waiting. A
reader waits at most ``timeout`` seconds, then fails with EIO; the load goes on in
its thread and its result still goes to the cache, so a slow or unreachable
remote costs that one read, never the daemon: cached chunks keep being served
meanwhile, and the next read of the chunk tries again. A caller may give the
deadline itself, so that one request touching several chunks waits ``timeout`` in
all, not once per chunk (``daemon.data.open_files``). When the daemon stops, a
load stuck in its thread is abandoned, so a hung remote cannot hold up an unmount.

Threading: all state here (memory, the in-flight table) belongs to the trio thread;
the worker threads run only ``_read_local``, ``_fetch_remote`` and ``_fetch_run``,
which touch the store, the cache and the remote (each thread-safe) and nothing else
here; a run's thread queues the chunks of each piece for the trio thread at once
(``run_sync_soon``). At most ``disk_threads`` + ``net_threads`` threads block at
once, plus the cache's writers; read-ahead is capped at ``MAX_INFLIGHT`` single loads
and ``MAX_INFLIGHT_BYTES`` in runs, so it cannot queue without bound behind a slow
remote. Memory: ``MEMORY_BYTES`` of chunks kept,
``AHEAD_BYTES`` loaded ahead, one piece per run under way (the one being read), and
the cache's ``pending_limit`` of chunks not written yet (``MAX_INFLIGHT_BYTES``
counts the bytes of runs not arrived yet).
"""

from __future__ import annotations

import contextlib
import logging
from collections import OrderedDict
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import trio

from daemon.data.chunk_cache import ChunkCache
from daemon.data.meta import MetaFiles
from vfs import (
    ChunkRef,
    ObjectCorrupt,
    ObjectMissing,
    ObjectStore,
    PackedObject,
    RemoteChunks,
    RemoteUnreachable,
)

log = logging.getLogger(__name__)
MEMORY_BYTES = 8 * 1024 * 1024  # chunks read last: the kernel asks for one in pieces
AHEAD_BYTES = 48 * 1024 * 1024  # loaded, not read yet: the oldest go first past it
MAX_INFLIGHT = 64
MAX_RUN = 24 * 1024 * 1024  # stored bytes of one coalesced GET (a 16 MiB pack is one)
MAX_INFLIGHT_BYTES = 40 * 1024 * 1024  # runs not arrived yet, below which one is started
RUN_GAP = 64 * 1024  # chunks this close in a pack share a GET (the gap is read and dropped)


@dataclass(eq=False)
class _Load:
    """One chunk being loaded; readers wait for ``done``."""

    done: trio.Event = field(default_factory=trio.Event)
    data: bytes | memoryview | None = None
    error: Exception | None = None


@dataclass
class FetchStats:
    """What the fetcher did, for logs and benchmarks."""

    remote_chunks: int = 0
    remote_bytes: int = 0
    remote_gets: int = 0  # ranged GETs of chunk data issued (one per single load or run)
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
        self._memory: OrderedDict[bytes, bytes | memoryview] = OrderedDict()
        self._memory_bytes = 0
        self._ahead: OrderedDict[bytes, bytes | memoryview] = OrderedDict()  # not read yet
        self._ahead_bytes = 0
        self._loads: dict[bytes, _Load] = {}
        self._run_bytes = 0  # stored bytes of runs under way
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

    async def get(self, ref: ChunkRef, deadline: float | None = None) -> bytes | memoryview:
        """The chunk's verified bytes; a DvfsError (EIO) if it cannot be had in time,
        or if they are not as long as ``ref`` says (a chunk is kept, and loaded
        once, by id alone: a forged tree may name it under another size).

        In time: by ``deadline`` (trio's clock), else within ``timeout`` from now.
        """
        data = await self._get(ref, deadline)
        if len(data) != ref.size:
            why = f"{len(data)} bytes where the tree says {ref.size}"
            raise ObjectCorrupt(ref.oid.hex(), why)
        return data

    async def _get(self, ref: ChunkRef, deadline: float | None) -> bytes | memoryview:
        if self.made is not None and ref.oid in self.made.pieces:
            made = await self.made.chunk(ref.oid)
            if made is not None:
                return made
        data = self._memory.get(ref.oid)
        if data is not None:
            self._memory.move_to_end(ref.oid)
            self.stats.memory_hits += 1
            return data
        data = self._ahead.pop(ref.oid, None)
        if data is not None:
            self._ahead_bytes -= len(data)
            self._remember(ref.oid, data)
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
        held = self._ahead.pop(ref.oid, None)  # read now: no longer "loaded, not read yet"
        if held is not None:
            self._ahead_bytes -= len(held)
            self._remember(ref.oid, held)
        return load.data

    def want(self, ref: ChunkRef) -> None:
        """Start loading one chunk unless it is held or on its way; no wait."""
        oid = ref.oid
        held = oid in self._memory or oid in self._ahead or oid in self._loads
        made = self.made is not None and oid in self.made.pieces
        if not held and not made:
            self._start(ref)

    def prefetch(
        self, refs: Sequence[ChunkRef], begin: int, end: int, *, extend: bool = False
    ) -> int:
        """Start loading ``refs[begin:end]`` that are not held or on their way; no wait.

        Chunks to come from the remote that lie side by side in a pack are fetched as
        runs, one GET each (module docstring). With ``extend`` (a sequential reader's
        window) the last run is taken on past ``end`` to the end of its pack, up to
        ``MAX_RUN``. Returns the index up to which ``refs`` were dealt with (started,
        held or under way): less than ``end`` when the in-flight caps are reached,
        more when a run was extended.
        """
        run: list[tuple[ChunkRef, PackedObject]] = []
        run_pack = ""
        run_bytes = 0
        run_first = begin  # index in refs of the run's first chunk
        taken: set[bytes] = set()
        i = begin
        while i < len(refs):
            ref = refs[i]
            oid = ref.oid
            if oid in self._memory or oid in self._ahead or oid in self._loads or oid in taken:
                if i >= end:
                    break
                i += 1
                continue
            where = self._remote_only(oid)
            if where is not None:
                pack_id, obj = where
                last = run[-1][1] if run else None
                joins = (
                    last is not None
                    and pack_id == run_pack
                    and 0 <= obj.offset - (last.offset + last.stored_len) <= RUN_GAP
                    and obj.offset + obj.stored_len - run[0][1].offset <= MAX_RUN
                )
                if not joins:
                    if i >= end:
                        break
                    if run and not self._start_run(run_pack, run, run_bytes):
                        return run_first
                    run, run_pack, run_bytes, run_first = [], pack_id, 0, i
                    if self._run_bytes and self._run_bytes + obj.stored_len > MAX_INFLIGHT_BYTES:
                        return i
                run.append((ref, obj))
                run_bytes = obj.offset + obj.stored_len - run[0][1].offset
                taken.add(oid)
                i += 1
                if i >= end and not extend:
                    break
                continue
            if i >= end:
                break
            if run:
                if not self._start_run(run_pack, run, run_bytes):
                    return run_first
                run, run_bytes = [], 0
            if len(self._loads) >= MAX_INFLIGHT:
                return i
            self._start(ref)
            taken.add(oid)
            i += 1
        if run and not self._start_run(run_pack, run, run_bytes):
            return run_first
        return i

    def _remote_only(self, oid: bytes) -> tuple[str, PackedObject] | None:
        """Where the remote holds a chunk that only the remote has, if known; else None.

        None for a chunk of the local store or the cache (read by ``_load``, verified
        from disk), and when the remote's index is not loaded yet.
        """
        if self.remote is None or self.local is not None:
            return None
        if self.cache is not None and oid in self.cache:
            return None
        return self.remote.where(oid)

    def _start_run(self, pack_id: str, run: list[tuple[ChunkRef, PackedObject]], size: int) -> bool:
        """Start fetching ``run`` (one chunk: an ordinary load); False at the in-flight cap."""
        if len(run) == 1:
            if len(self._loads) >= MAX_INFLIGHT:
                return False
            self._start(run[0][0])
            return True
        self._launch(pack_id, run, size)
        return True

    def _launch(self, pack_id: str, run: list[tuple[ChunkRef, PackedObject]], size: int) -> None:
        """Register ``run``'s chunks as under way and start its GET."""
        if len(run) == 1:
            self._start(run[0][0])
            return
        assert self._nursery is not None, "Fetcher.run is not running"
        loads = []
        for ref, _ in run:
            load = _Load()
            self._loads[ref.oid] = load
            loads.append(load)
        self._run_bytes += size
        self._nursery.start_soon(self._load_run, pack_id, run, loads, size)

    def _start(self, ref: ChunkRef) -> _Load:
        assert self._nursery is not None, "Fetcher.run is not running"
        load = _Load()
        self._loads[ref.oid] = load
        self._nursery.start_soon(self._load, ref, load)
        return load

    async def _load(self, ref: ChunkRef, load: _Load) -> None:
        got: bytes | memoryview | Exception | None = None
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
                self.stats.remote_gets += 1
                self.stats.remote_chunks += 1
                self.stats.remote_bytes += len(data)
            got = data
        except Exception as exc:
            got = exc
        finally:
            if got is None:  # cancelled: the daemon stops
                del self._loads[ref.oid]
                load.done.set()
        self._settle(ref, load, got)

    async def _load_run(
        self,
        pack_id: str,
        run: list[tuple[ChunkRef, PackedObject]],
        loads: list[_Load],
        size: int,
    ) -> None:
        released = 0  # stored bytes of the run's chunks handed over so far

        def arrived(first: int, items: list[bytes | memoryview | ObjectCorrupt]) -> None:
            """The chunks of a piece of the run are in (trio thread), ``items`` from its
            ``first`` chunk on: their readers are answered now.

            Called by ``run_sync_soon``, where an exception would end the daemon: none
            can escape ``_settle``, and a load given up on (the daemon stops) is left.
            """
            nonlocal released
            for i, item in enumerate(items, first):
                (ref, obj), load = run[i], loads[i]
                if load.done.is_set():
                    continue
                released += obj.stored_len
                self._run_bytes -= obj.stored_len
                if not isinstance(item, Exception):
                    self.stats.remote_chunks += 1
                    self.stats.remote_bytes += len(item)
                self._settle(ref, load, item)

        token = trio.lowlevel.current_trio_token()

        def hand(first: int, items: list[bytes | memoryview | ObjectCorrupt]) -> None:
            """From the fetching thread: queue ``arrived`` in the trio thread, no wait (once
            a piece, not once a chunk: each wakes the trio thread)."""
            token.run_sync_soon(arrived, first, items)

        failure: Exception | None = None
        finished = False
        try:
            await trio.to_thread.run_sync(
                self._fetch_run, pack_id, run, hand, limiter=self._net, abandon_on_cancel=True
            )
            self.stats.remote_gets += 1
            finished = True
        except Exception as exc:  # the GET failed: the chunks not in yet fail with it
            failure = exc
            finished = True
        finally:
            self._run_bytes -= size - released
            if not finished:  # cancelled: the daemon stops
                for (ref, _), load in zip(run, loads, strict=True):
                    if not load.done.is_set():
                        self._loads.pop(ref.oid, None)
                        load.done.set()
        for (ref, _), load in zip(run, loads, strict=True):
            if not load.done.is_set():
                missing = ObjectCorrupt(ref.oid.hex(), "not in the answer to its pack's GET")
                self._settle(ref, load, failure if failure is not None else missing)

    def _settle(self, ref: ChunkRef, load: _Load, got: bytes | memoryview | Exception) -> None:
        """Hand ``got`` to the readers waiting on ``load``: the chunk's bytes once their
        length is the tree's, else the failure (each of those readers answers EIO)."""
        try:
            if isinstance(got, Exception):
                raise got
            if len(got) != ref.size:
                why = f"{len(got)} bytes where the tree says {ref.size}"
                raise ObjectCorrupt(ref.oid.hex(), why)
            load.data = got
            self._hold(ref.oid, got)
        except Exception as exc:
            self.stats.failures += 1
            log.error("chunk %s could not be read: %s", ref.oid.hex(), exc)
            load.error = exc
        finally:
            del self._loads[ref.oid]
            load.done.set()

    def _hold(self, oid: bytes, data: bytes | memoryview) -> None:
        """Keep a loaded chunk until it is read (the oldest go past ``AHEAD_BYTES``)."""
        if oid in self._ahead:
            return
        self._ahead[oid] = data
        self._ahead_bytes += len(data)
        while self._ahead_bytes > AHEAD_BYTES and len(self._ahead) > 1:
            _, old = self._ahead.popitem(last=False)
            self._ahead_bytes -= len(old)

    def _remember(self, oid: bytes, data: bytes | memoryview) -> None:
        """Keep a chunk just read (the least recently read go past ``MEMORY_BYTES``)."""
        self._memory[oid] = data
        self._memory_bytes += len(data)
        while self._memory_bytes > MEMORY_BYTES and len(self._memory) > 1:
            _, old = self._memory.popitem(last=False)
            self._memory_bytes -= len(old)

    # worker threads ---------------------------------------------------------------------

    def _read_local(self, oid: bytes) -> bytes | memoryview | None:
        """The chunk from the local store or the cache (verified), or None. Blocking."""
        if self.local is not None:
            try:
                return self.local.get(oid)
            except ObjectMissing:
                pass
        return self.cache.get(oid) if self.cache is not None else None

    def _fetch_remote(self, ref: ChunkRef) -> bytes:
        """One ranged GET, verified, then handed to the cache's writers. Blocking."""
        assert self.remote is not None
        data = self.remote.fetch(ref.oid)
        if self.cache is not None and len(data) == ref.size:
            self.cache.put_later(ref.oid, data)
        return data

    def _fetch_run(
        self,
        pack_id: str,
        run: list[tuple[ChunkRef, PackedObject]],
        hand: Callable[[int, list[bytes | memoryview | ObjectCorrupt]], None],
    ) -> None:
        """One ranged GET for a run, read piece by piece (``RemoteChunks.stream_run``):
        the good chunks of each piece handed to the cache's writers, then the piece's
        chunks given to ``hand`` at once (with the index in ``run`` of the first), which
        queues them for the trio thread without waiting. Blocking.

        The good chunks a piece holds as received go to the cache with the piece,
        written whole in one write (``ChunkCache.put_group_later``), unless they are
        less than half of it (the rest: gaps, damaged or compressed chunks); others
        one by one. Queued for the cache before they are served, so that a chunk a
        reader got is cached even if the daemon stops right after; the stream goes
        on while the cache writes what came before (several writes at once, on the
        cache's threads). The run is never held whole in memory: the thread waits
        only when the chunks not yet written reach the cache's bound.
        """
        assert self.remote is not None
        cache = self.cache
        i = 0
        with contextlib.closing(self.remote.stream_run(pack_id, [o for _, o in run])) as pieces:
            for piece, chunks in pieces:
                if cache is not None:
                    held: list[tuple[bytes, int, bytes | memoryview]] = []
                    for k, (item, at) in enumerate(chunks):
                        ref = run[i + k][0]
                        if isinstance(item, Exception) or len(item) != ref.size:
                            continue
                        if at < 0:
                            cache.put_later(ref.oid, item)
                        else:
                            held.append((ref.oid, at, item))
                    _cache_piece(cache, piece, held)
                hand(i, [item for item, _ in chunks])
                i += len(chunks)


def _cache_piece(
    cache: ChunkCache, piece: memoryview, held: list[tuple[bytes, int, bytes | memoryview]]
) -> None:
    """Hand the good chunks received in ``piece`` to the cache: with the piece, in one
    write, when they are at least half of it; one by one otherwise."""
    if sum(len(data) for _, _, data in held) * 2 >= len(piece):
        cache.put_group_later(piece, held)
    else:
        for oid, _, data in held:
            cache.put_later(oid, data)
