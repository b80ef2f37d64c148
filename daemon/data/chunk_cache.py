"""The chunk cache: verified chunks on local disk, least recently used evicted first.

Layout, under ``<cache dir>/chunks``::

    <16 hex>-<n>.seg    a segment: chunks appended one after the other, then its index

A segment holds the chunks one writer thread cached in a stretch of time (up to
``SEGMENT_BYTES``), each write starting on a page boundary (padded with zeros to
whole pages, so that each is written with ``O_DIRECT``), then its index, padded to
whole pages too and ending with a footer. A write is one chunk, or a piece of a
remote's answer holding several chunks back to back (``put_group_later``: one write
for them all, and the bytes between them too), so a chunk starts on a page boundary
or anywhere after the previous one in its piece; it is read with ``O_DIRECT`` from
the pages around it. (A version before pieces required every chunk on a page and
deletes a segment holding others at start-up, as if torn: those chunks are fetched
again.)::

    entries   count x (32-byte chunk id, u64 offset, u64 length), little-endian
    zeros     up to 64 bytes before the next page boundary
    footer    "dvfscs1\n", u64 index offset, u64 count, u64 0, BLAKE3 of the entries

Why segments: creating a file per chunk cost 0.33-0.39 CPU-seconds per GiB cached
(open, rename, directory and inode work, each a release and retake of the GIL that
the fetching and serving threads want) against 0.06 appending the same bytes to one
file; a cold sequential read through a URL mount caches every byte it serves.

Which chunk lies where is kept in memory (id -> segment, offset, length), filled at
start-up from the segments' indexes and as each chunk's write lands. A segment is
*open* while its writer appends to it (its chunks are found and read already; it is
not evicted), and *sealed* once its index is written: after ``SEAL_IDLE`` seconds
without a chunk for its writer, once it holds ``SEGMENT_BYTES`` (less for a small
limit or a small disk), when its room is needed, and at
:meth:`ChunkCache.close`. Crashes: a segment without a whole, matching footer and index
(a daemon killed while it was open, a torn write) is deleted at start-up, so a kill
leaves only missing chunks; every chunk is verified against its id when it is read
back, and a sealed segment holding one that fails, or whose file fails to read (an
I/O error of the disk), is deleted whole (and logged with the chunk's id), never
served: its chunks are fetched again. An older layout (``<2 hex>/<64 hex>`` files, one per
chunk) and leftover ``.tmp-*`` files are removed at start-up.

The files are 0600 in a 0700 directory, whatever the modes of the files they come
from: with ``--allow-other`` the kernel checks each file's mode on the mount, and the
cache must not be a way around that.

Size: the bytes of segments (data, padding and index) plus those being written never
exceed ``limit``: room for a chunk, its padding and the growth of its segment's index
is reserved before it is written, and made by evicting whole sealed segments, least
recently used first; a write for which the open segments and writes under way leave
no room seals its own segment (so that it can go) or waits for one of them. A chunk
that cannot fit with an index page in the whole limit is not cached. Recency lives in
memory (an ordered dict of segments) and is seeded at start-up from the segments'
mtimes, which a hit refreshes (when older than ten minutes), so the order survives a
restart. Memory: about 150 bytes per cached chunk.

Free space: the cache also leaves ``reserve`` bytes free on its filesystem (a tenth
of it, between 1 MiB and 1 GiB), whatever ``limit`` says: before each write, and at
start-up, it evicts until that much is free, and a write that meets ENOSPC anyway
evicts more and is tried once again. So a cache directory on a small disk never
fills it: the mount's metadata, a snapshot's packs, the working tree and a remount
find room. Others that need room on the same filesystem (a write to the working
tree, a snapshot) call :meth:`ChunkCache.shed` when they meet ENOSPC, and retry.

Written behind (:meth:`ChunkCache.put_later`, :meth:`ChunkCache.put_group_later`):
the mount daemon hands a fetched chunk to the cache and to its readers at once, and
the cache writes it afterwards, on ``writers`` threads of its own, each appending
to a segment of its own. One 1 MiB ``O_DIRECT`` write at a
time ran at 272-501 MiB/s and three or four at a time at 1,055-1,146 MiB/s on the
benchmark machine, and in a cold read through a URL mount the fetching threads had
waited 24.9 s in all for the previous chunk's write against 9.3 s receiving. Until
its write lands, a chunk is kept in memory (pending) and is found there by ``in`` and
:meth:`ChunkCache.get`, so a second reader never fetches it again; pending chunks hold
at most ``pending_limit`` bytes, and a caller that would pass that waits for room
(back-pressure on the fetching thread: memory stays bounded). What this promises: a
chunk handed over is cached soon after, not by the time the read returns;
:meth:`ChunkCache.close` (at unmount) writes what is pending and seals every segment;
a kill meanwhile leaves a cache that only lacks the chunks of open segments and those
not written yet.

Threading: every method may be called from several worker threads at once. The
lock guards the accounting, the pending chunks, the segments and the deletion of
evicted ones; reading, writing and hashing chunks happen outside it. ``in`` reads the
accounting without the lock or the disk, so the trio thread may use it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import queue
import shutil
import struct
import threading
import time
from collections import OrderedDict
from collections.abc import Sequence
from pathlib import Path
from typing import NamedTuple

from vfs import (
    hash_bytes,
    human_size,
    open_direct,
    private_dir,
    read_range_view,
    set_direct,
    write_at,
)

log = logging.getLogger(__name__)
TMP_PREFIX = ".tmp-"  # an older version's chunk being written (deleted at start-up)
SUFFIX = ".seg"
TOUCH_AFTER_NS = 600 * 10**9
RESERVE_SHARE = 10  # leave free a tenth of the cache's filesystem...
RESERVE_MIN = 1 << 20  # ...but at least 1 MiB
RESERVE_MAX = 1 << 30  # ...and at most 1 GiB
_FULL = (errno.ENOSPC, errno.EDQUOT)
WRITERS = 4  # cache writes at once: 3-4 in flight ran twice as fast as one (see above)
PENDING_BYTES = 32 * 1024 * 1024  # chunks handed over and not written yet, at most
SEGMENT_BYTES = 16 * 1024 * 1024  # chunk bytes of one segment, at most
SEAL_IDLE = 0.2  # seconds without a chunk after which a writer seals its segment
PAGE = 4096  # chunks start on a page: written and read with O_DIRECT
MAGIC = b"dvfscs1\n"
FOOTER = struct.Struct("<8sQQQ32s")  # magic, index offset, count, 0, BLAKE3 of the entries
ENTRY = struct.Struct("<32sQQ")  # chunk id, offset, length
_STOP = None


def _pages(n: int) -> int:
    """``n`` rounded up to whole pages."""
    return -(-n // PAGE) * PAGE


def _index_size(count: int) -> int:
    """Bytes of a segment's index (entries and footer, whole pages) for ``count`` chunks."""
    return _pages(count * ENTRY.size + FOOTER.size)


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged user may still write on the filesystem of ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def reserve_for(path: Path) -> int:
    """How much the cache leaves free on the filesystem of ``path`` (see above)."""
    st = os.statvfs(path)
    return min(max(st.f_blocks * st.f_frsize // RESERVE_SHARE, RESERVE_MIN), RESERVE_MAX)


def _read_at(path: Path, offset: int, length: int, touch: bool) -> bytes | memoryview | None:
    """``length`` bytes at ``offset`` of the file; None if it is shorter. With ``touch``,
    its mtime is set to now if older than ``TOUCH_AFTER_NS``.

    Read with O_DIRECT where the filesystem allows it, else through the page cache.
    The mtime only seeds the recency order at the next start, so it need not be
    exact; touching on every hit would write the inode (and the journal) for every
    chunk a sequential reader streams from the cache.
    """
    fd = open_direct(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    direct = fd >= 0
    if not direct:  # no O_DIRECT on this filesystem
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    try:
        data: bytes | memoryview | None = read_range_view(fd, offset, length) if direct else None
        if data is None:
            if direct:  # a short or refused direct read: read it the ordinary way
                set_direct(fd, False)
            parts = [os.pread(fd, length, offset)]
            got = len(parts[0])
            while parts[-1] and got < length:
                parts.append(os.pread(fd, length - got, offset + got))
                got += len(parts[-1])
            if got < length:
                return None
            data = parts[0] if len(parts) == 1 else b"".join(parts)
        if touch:
            st = os.fstat(fd)
            if time.time_ns() - st.st_mtime_ns > TOUCH_AFTER_NS:
                with contextlib.suppress(OSError):
                    os.utime(fd)
    finally:
        os.close(fd)
    return data


def _read_index(path: Path) -> list[tuple[bytes, int, int]] | None:
    """The entries of a sealed segment's index; None if it has no whole, matching one."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW)
    except OSError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size < PAGE or size % PAGE:
            return None
        foot = os.pread(fd, FOOTER.size, size - FOOTER.size)
        magic, at, count, zero, digest = FOOTER.unpack(foot)
        if (
            magic != MAGIC
            or zero
            or at % PAGE
            or count > size // PAGE
            or size - at != _index_size(count)
        ):
            return None
        raw = os.pread(fd, count * ENTRY.size, at)
    except (OSError, struct.error):
        return None
    finally:
        os.close(fd)
    if len(raw) != count * ENTRY.size or hash_bytes(raw) != digest:
        return None
    entries = list(ENTRY.iter_unpack(raw))
    if any(off + n > at for _, off, n in entries):
        return None
    return entries


def contents(root: Path) -> dict[bytes, int]:
    """Every chunk in the sealed segments under ``root``: id -> length (reads only)."""
    found: dict[bytes, int] = {}
    for entry in os.scandir(root):
        if entry.name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
            for oid, _, n in _read_index(Path(entry.path)) or ():
                found[oid] = n
    return found


class _Write(NamedTuple):
    """Bytes for a writer thread to append, and the chunks in them (id, where, length)."""

    data: bytes | memoryview
    chunks: list[tuple[bytes, int, int]]


class _Segment:
    """One segment file: where its chunks lie, and what it holds of the limit."""

    __slots__ = ("direct", "end", "entries", "fd", "held", "path", "sealed")

    def __init__(self, path: Path, fd: int = -1, direct: bool = False) -> None:
        self.path = path
        self.fd = fd  # open for appending until sealed
        self.direct = direct
        self.end = 0  # where the next chunk goes (the index, once sealed)
        self.held = 0  # bytes of the limit it holds: its file's size once sealed
        self.entries: list[tuple[bytes, int, int]] = []
        self.sealed = False


class ChunkCache:
    """A size-bounded directory of verified chunks, in segment files."""

    def __init__(
        self,
        root: Path,
        limit: int,
        reserve: int | None = None,
        *,
        writers: int = WRITERS,
        pending_limit: int = PENDING_BYTES,
    ) -> None:
        self.root = root
        self.limit = limit
        self.pending_limit = pending_limit
        self._lock = threading.Lock()
        self._room = threading.Condition(self._lock)  # pending bytes went down
        self._landed = threading.Condition(self._lock)  # a write landed or failed
        self._pending: dict[bytes, bytes | memoryview] = {}  # handed over, not written yet
        self._pending_bytes = 0
        self._writer_count = writers
        self._queue: queue.SimpleQueue[_Write | None] = queue.SimpleQueue()
        self._writers: list[threading.Thread] = []  # started by the first put_later
        self._closed = False
        self._index: dict[bytes, tuple[_Segment, int, int]] = {}  # id -> segment, offset, length
        self._segments: OrderedDict[str, _Segment] = OrderedDict()  # sealed, least recent first
        self._used = 0  # segments' bytes plus bytes reserved for writes under way
        self._writing = 0  # bytes of writes started and not landed (room made for them)
        self._names = itertools.count()
        self._stamp = f"{time.time_ns():016x}"
        self.hits = 0
        self.misses = 0
        self.evicted = 0
        private_dir(root, tighten=True)
        self.device = os.stat(root).st_dev
        self.reserve = reserve_for(root) if reserve is None else reserve
        # A small cache, or one on a small disk, gets small segments: what the open
        # ones hold cannot be evicted, so all of them together stay within a quarter
        # of the limit and a fortieth of the disk (a quarter of the reserve's share).
        st = os.statvfs(root)
        disk = st.f_blocks * st.f_frsize // (4 * RESERVE_SHARE)
        share = max(writers, 1)
        self.segment_bytes = max(PAGE, min(SEGMENT_BYTES, limit // (4 * share), disk // share))
        self._load()

    def _load(self) -> None:
        """Take stock of the segments on disk; drop leftovers of a crash or older layout."""
        found: list[tuple[int, _Segment]] = []
        old = 0
        for entry in os.scandir(self.root):
            path = Path(entry.path)
            name = entry.name
            if name.startswith(TMP_PREFIX):
                path.unlink(missing_ok=True)
            elif len(name) == 2 and entry.is_dir(follow_symlinks=False):
                with contextlib.suppress(ValueError):  # an older layout's directory
                    bytes.fromhex(name)
                    old += sum(1 for _ in os.scandir(path))
                    shutil.rmtree(path, ignore_errors=True)
            elif name.endswith(SUFFIX) and entry.is_file(follow_symlinks=False):
                entries = _read_index(path)
                if entries is None:  # open when its daemon stopped, or torn
                    path.unlink(missing_ok=True)
                    continue
                seg = _Segment(path)
                seg.entries = entries
                st = entry.stat(follow_symlinks=False)
                seg.end = st.st_size - _index_size(len(entries))
                seg.held = st.st_size
                seg.sealed = True
                if st.st_mode & 0o777 != 0o600:
                    os.chmod(path, 0o600)
                found.append((st.st_mtime_ns, seg))
        for _, seg in sorted(found, key=lambda f: f[0]):
            self._segments[seg.path.name] = seg
            self._used += seg.held
            for oid, off, n in seg.entries:
                self._index[oid] = (seg, off, n)
        if old:
            log.info("chunk cache: %d chunks of an older layout removed at start", old)
        with self._lock:
            self._evict(0, self._short_of(0))
        if self.evicted:
            log.info(
                "chunk cache: %d chunks evicted at start, %s kept (limit %s, %s kept free)",
                self.evicted, human_size(self._used), human_size(self.limit),
                human_size(self.reserve),
            )  # fmt: skip

    def _short_of(self, size: int) -> int:
        """Bytes the filesystem lacks to take ``size`` more and keep the reserve free."""
        try:
            return max(0, size + self.reserve - free_bytes(self.root))
        except OSError:
            return 0

    def usage(self) -> int:
        """Bytes cached (and reserved for writes under way)."""
        return self._used

    def __contains__(self, oid: bytes) -> bool:
        """True if the chunk is cached or about to be (no disk access: safe in the trio
        thread)."""
        return oid in self._index or oid in self._pending

    def get(self, oid: bytes) -> bytes | memoryview | None:
        """The chunk's bytes if cached and intact, or waiting to be written; None otherwise."""
        with self._lock:
            data = self._pending.get(oid)
            if data is not None:
                self.hits += 1
                return data
            where = self._index.get(oid)
            if where is None:
                self.misses += 1
                return None
            seg, offset, length = where
            if seg.sealed:
                self._segments.move_to_end(seg.path.name)
        try:
            data = _read_at(seg.path, offset, length, seg.sealed)
        except FileNotFoundError:  # evicted meanwhile
            return None
        except OSError as exc:  # (an I/O error of the disk): as damaged as a wrong byte
            log.error("cached chunk %s could not be read (%s): deleted, it will be fetched "
                      "again", oid.hex(), exc.strerror or exc)  # fmt: skip
            self._discard(seg, oid)
            return None
        if data is None or hash_bytes(data) != oid:
            log.error("cached chunk %s failed verification: deleted, it will be fetched again",
                      oid.hex())  # fmt: skip
            self._discard(seg, oid)
            return None
        self.hits += 1
        return data

    def _discard(self, seg: _Segment, oid: bytes) -> None:
        """Forget a chunk that failed verification: with its whole segment once sealed."""
        with self._landed:
            if not seg.sealed:
                if self._index.get(oid, (None,))[0] is seg:
                    del self._index[oid]
                return
            if self._segments.pop(seg.path.name, None) is None:
                return
            self._forget(seg)
            self._landed.notify_all()
        with contextlib.suppress(OSError):  # (forgotten whatever it is now)
            seg.path.unlink()

    def _forget(self, seg: _Segment) -> None:
        """Drop a sealed segment's chunks and bytes from the accounting (lock held)."""
        self._used -= seg.held
        for oid, _, _ in seg.entries:
            if self._index.get(oid, (None,))[0] is seg:
                del self._index[oid]

    def put(self, oid: bytes, data: bytes | memoryview) -> bool:
        """Cache a verified chunk now, in a segment of its own (evicting others); False if
        it cannot fit at all or could not be written."""
        seg = self._append(None, [(oid, 0, len(data))], data)
        if seg is not None:
            self._seal(seg)
        return oid in self._index

    def _append(
        self, seg: _Segment | None, chunks: list[tuple[bytes, int, int]], data: bytes | memoryview
    ) -> _Segment | None:
        """Append ``data`` to ``seg`` (sealed first when full; None: a new one), indexing
        ``chunks`` (id, where in ``data``, length) that are not cached yet; the segment
        to append the next write to (None if there is none open).

        ``data`` that cannot fit in the whole limit is appended chunk by chunk.
        """
        padded = _pages(len(data))
        if len(chunks) > 1 and padded + _index_size(len(chunks)) > self.limit:
            view = memoryview(data)
            for oid, at, n in chunks:
                seg = self._append(seg, [(oid, 0, n)], view[at : at + n])
            return seg
        if seg is not None and seg.end + padded > self.segment_bytes:
            self._seal(seg)
            seg = None
        while True:
            count = len(seg.entries) if seg is not None else 0
            with self._landed:
                chunks = [c for c in chunks if c[0] not in self._index]
                if not chunks:
                    return seg
                if padded + _index_size(len(chunks)) > self.limit:
                    return seg
                grown = _index_size(count + len(chunks)) - (_index_size(count) if count else 0)
                need = padded + grown
                # Open segments and writes under way hold room no eviction can free:
                # when they leave too little, seal this writer's own segment (it can
                # then go), or wait until one of the others lands or is sealed.
                self._evict(need)
                while self._used + need > self.limit and seg is None:
                    self._landed.wait()
                    self._evict(need)
                if self._used + need <= self.limit:
                    self._used += need
                    break
            assert seg is not None
            self._seal(seg)
            seg = None
        fresh = seg is None
        try:
            for attempt in (1, 2):
                # Room is made under the lock for this write and the ones under way,
                # which the free space does not show yet: writers side by side would
                # otherwise each make room for one and together eat into the reserve.
                with self._lock:
                    short = self._short_of(need + self._writing)
                    self._evict(0, short if attempt == 1 else short + need)
                    self._writing += need
                try:
                    if seg is None:
                        seg = self._create()
                    write_at(seg.fd, data, seg.end, direct=seg.direct)
                    break
                except OSError as exc:
                    if exc.errno not in _FULL or attempt == 2:
                        raise
                finally:
                    with self._lock:
                        self._writing -= need
        except BaseException as exc:
            with self._landed:
                self._used -= need
                self._landed.notify_all()
            if seg is not None:
                if fresh:  # nothing of it is cached: gone with the chunks
                    self._abandon(seg)
                    seg = None
                else:
                    with contextlib.suppress(OSError):
                        os.ftruncate(seg.fd, seg.end)
            if not isinstance(exc, OSError):
                raise
            log.warning(
                "could not cache chunk %s%s: %s",
                chunks[0][0].hex(),
                f" and {len(chunks) - 1} more" if len(chunks) > 1 else "",
                exc,
            )
            return seg
        assert seg is not None
        with self._landed:
            for oid, at, n in chunks:
                seg.entries.append((oid, seg.end + at, n))
                self._index[oid] = (seg, seg.end + at, n)
            seg.end += padded
            seg.held += need
            self._landed.notify_all()
        if seg.end >= self.segment_bytes:  # full: evictable from now on
            self._seal(seg)
            return None
        return seg

    def _create(self) -> _Segment:
        """A new, empty segment file, open for appending."""
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        while True:  # a name taken by another process of the same start time is passed over
            path = self.root / f"{self._stamp}-{next(self._names)}{SUFFIX}"
            try:
                fd = open_direct(path, flags, 0o600)
                if fd < 0:  # no O_DIRECT on this filesystem (the refused open made it)
                    return _Segment(path, os.open(path, flags & ~os.O_EXCL, 0o600), False)
                return _Segment(path, fd, True)
            except FileExistsError:
                continue

    def _abandon(self, seg: _Segment) -> None:
        """Close and delete a segment none of whose chunks is accounted any more."""
        with contextlib.suppress(OSError):
            os.close(seg.fd)
        seg.fd = -1
        seg.path.unlink(missing_ok=True)

    def _seal(self, seg: _Segment) -> None:
        """Write a segment's index after its chunks and make it evictable; on failure
        it is deleted with its chunks."""
        raw = b"".join(ENTRY.pack(*e) for e in seg.entries)
        size = _index_size(len(seg.entries))
        index = bytearray(size)
        index[: len(raw)] = raw
        index[-FOOTER.size :] = FOOTER.pack(MAGIC, seg.end, len(seg.entries), 0, hash_bytes(raw))
        try:
            write_at(seg.fd, index, seg.end, direct=seg.direct)
            os.close(seg.fd)
            seg.fd = -1
        except OSError as exc:
            log.warning("could not cache %d chunks: %s", len(seg.entries), exc)
            self._abandon(seg)
            with self._landed:
                self._forget(seg)
                self._landed.notify_all()
            return
        with self._landed:
            assert seg.held == seg.end + size, (seg.held, seg.end, size)
            seg.sealed = True
            self._segments[seg.path.name] = seg
            self._landed.notify_all()

    def put_later(self, oid: bytes, data: bytes | memoryview) -> None:
        """Cache a verified chunk on a writer thread; kept in memory until written.

        Returns at once, unless the chunks waiting to be written already hold
        ``pending_limit`` bytes: then it waits until there is room (back-pressure).
        ``data`` must not change afterwards. After :meth:`close` it does nothing.
        """
        self._enqueue(data, [(oid, 0, data)])

    def put_group_later(
        self, data: memoryview, chunks: Sequence[tuple[bytes, int, bytes | memoryview]]
    ) -> None:
        """Like :meth:`put_later` for verified chunks that lie in ``data``: each given as
        (id, where in ``data``, its bytes there). ``data`` is written whole, in one
        write (what lies between the chunks too), and each chunk indexed where it
        landed: a piece of a remote's answer that holds several chunks costs one
        write, not one each."""
        self._enqueue(data, chunks)

    def _enqueue(
        self, data: bytes | memoryview, chunks: Sequence[tuple[bytes, int, bytes | memoryview]]
    ) -> None:
        """Queue ``data`` holding ``chunks`` for a writer thread (see :meth:`put_later`)."""
        size = len(data)
        if size > self.limit:
            if len(chunks) > 1:
                for oid, _, chunk in chunks:
                    self._enqueue(chunk, [(oid, 0, chunk)])
            return
        with self._room:
            while (
                not self._closed
                and self._pending_bytes
                and self._pending_bytes + size > self.pending_limit
                and any(oid not in self._pending for oid, _, _ in chunks)
            ):
                self._room.wait()
            fresh = [c for c in chunks if c[0] not in self._pending and c[0] not in self._index]
            if self._closed or not fresh:
                return
            if not self._writers:
                for n in range(self._writer_count):
                    t = threading.Thread(
                        target=self._write_behind, name=f"dvfs-cache-write-{n}", daemon=True
                    )
                    t.start()
                    self._writers.append(t)
            for oid, _, chunk in fresh:
                self._pending[oid] = chunk
            self._pending_bytes += size
            self._queue.put(_Write(data, [(oid, at, len(chunk)) for oid, at, chunk in fresh]))

    def _write_behind(self) -> None:
        """A writer thread: append pending chunks to a segment of its own, then let them
        go from memory; seal the segment when no chunk came for ``SEAL_IDLE`` s."""
        seg: _Segment | None = None
        while True:
            try:
                item = self._queue.get(timeout=SEAL_IDLE) if seg is not None else self._queue.get()
            except queue.Empty:
                assert seg is not None
                self._seal(seg)
                seg = None
                continue
            if item is _STOP:
                break
            try:
                seg = self._append(seg, list(item.chunks), item.data)
            except Exception:  # _append logs and swallows OS errors; anything else is a bug
                log.exception("could not cache chunk %s", item.chunks[0][0].hex())
            finally:
                with self._room:
                    for oid, _, _ in item.chunks:
                        self._pending.pop(oid, None)
                    self._pending_bytes -= len(item.data)
                    self._room.notify_all()
        if seg is not None:
            self._seal(seg)

    def pending(self) -> int:
        """Bytes of chunks handed to :meth:`put_later` and not written yet."""
        return self._pending_bytes

    def close(self) -> None:
        """Take no more chunks, write those pending, seal every segment and stop the
        writer threads. Called when the daemon stops, after the unmount."""
        with self._room:
            self._closed = True
            self._room.notify_all()
            writers, self._writers = self._writers, []
        for _ in writers:
            self._queue.put(_STOP)
        for t in writers:
            t.join()

    def shed(self, need: int, near: Path | None = None) -> int:
        """Evict chunks to free ``need`` bytes for another writer; the bytes freed.

        With ``near``, only if that path is on the cache's filesystem (0 otherwise):
        evicting elsewhere frees nothing there. Called by writers that met ENOSPC.
        """
        if near is not None:
            try:
                if os.stat(near).st_dev != self.device:
                    return 0
            except OSError:
                return 0
        with self._lock:
            before = self._used
            self._evict(0, need + self.reserve)
            freed = before - self._used
        if freed:
            log.info("chunk cache: %s evicted to make room on its disk", human_size(freed))
        return freed

    def _evict(self, room: int, free: int = 0) -> None:
        """Delete least recently used segments until ``room`` more bytes fit in the limit
        and at least ``free`` bytes were deleted (lock held)."""
        while self._segments and (self._used + room > self.limit or free > 0):
            _, seg = self._segments.popitem(last=False)
            self._forget(seg)
            free -= seg.held
            self.evicted += len(seg.entries)
            seg.path.unlink(missing_ok=True)
