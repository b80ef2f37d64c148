"""The chunk cache: verified chunks on local disk, least recently used evicted first.

Layout, under ``<cache dir>/chunks``::

    <first 2 hex of id>/<64 hex id>     a chunk's raw (uncompressed) bytes
    .tmp-<pid>-<n>                      a chunk being written (deleted at start-up)

The directories are 0700 and the chunks 0600, whatever the modes of the files they
come from: with ``--allow-other`` the kernel checks each file's mode on the mount, and
the cache must not be a way around that. Directories left looser by an older version
are closed at start-up.

A chunk is written to a temporary name and renamed into place, so a crash never
leaves a partial chunk under a real name (and one damaged anyway fails verification
when read, below). Caching a chunk costs seven system calls:
the temporary file is opened with ``O_DIRECT`` already and named by the process id
and a counter (``O_EXCL``; no random name), and the 256 directories are made once
each, not tried for every chunk (each call of a worker thread releases and retakes
the GIL the fetching and serving threads want). It is written past the page cache
(``O_DIRECT``, ``vfs.write_new``), as it is read: a cold sequential read through a
URL mount caches every byte it serves, and filling fresh page-cache pages for them
was the largest CPU cost of that read. Every chunk is verified against its id
when it is read back; one that fails is deleted and reported as missing (and
logged with its id), never served.

Size: the bytes of cached chunks plus those being written never exceed ``limit``;
room is made before a write by evicting the least recently used chunks, and a write
for which the writes under way beside it leave no room waits for one of them to land. A chunk
larger than the whole limit is not cached. Recency lives in memory (an ordered
dict) and is seeded at start-up from the files' mtimes, which a hit refreshes (when
older than ten minutes), so the order survives a restart. Memory: about 150 bytes per cached chunk.

Free space: the cache also leaves ``reserve`` bytes free on its filesystem (a tenth
of it, between 1 MiB and 1 GiB), whatever ``limit`` says: before each write, and at
start-up, it evicts until that much is free, and a write that meets ENOSPC anyway
evicts more and is tried once again. So a cache directory on a small disk never
fills it: the mount's metadata, a snapshot's packs, the working tree and a remount
find room. Others that need room on the same filesystem (a write to the working
tree, a snapshot) call :meth:`ChunkCache.shed` when they meet ENOSPC, and retry.

Written behind (:meth:`ChunkCache.put_later`): the mount daemon hands a fetched
chunk to its readers first and caches it afterwards, on ``writers`` threads of the
cache's own, several writes at once. Creating a file and writing 1 MiB into it with
``O_DIRECT`` ran at 272-501 MiB/s one at a time and 1,055-1,146 MiB/s three or four
at a time on the benchmark machine, and in a cold read through a URL mount the
fetching threads had waited 24.9 s in all for the previous chunk's write against 9.3
s receiving. Until its write lands, a chunk is kept in memory (pending) and is found
there by ``in`` and :meth:`ChunkCache.get`, so a second reader never fetches it
again; pending chunks hold at most ``pending_limit`` bytes, and a caller that would
pass that waits for room (back-pressure on the fetching thread: memory stays
bounded). What this promises: a chunk handed over is cached soon after, not by the
time the read returns; :meth:`ChunkCache.close` (at unmount) writes what is pending
and leaves no temporary file; a kill meanwhile leaves a cache that only lacks the
chunks not written yet, plus temporary files, deleted at the next start.

Threading: every method may be called from several worker threads at once. The
lock guards the accounting, the pending chunks and the deletion of evicted files;
reading, writing and hashing chunks happen outside it. ``in`` reads the accounting
without the lock or the disk, so the trio thread may use it.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import logging
import os
import threading
import time
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vfs import (
    hash_bytes,
    human_size,
    open_direct,
    private_dir,
    read_range,
    set_direct,
    write_new,
)

log = logging.getLogger(__name__)
TMP_PREFIX = ".tmp-"
TOUCH_AFTER_NS = 600 * 10**9
RESERVE_SHARE = 10  # leave free a tenth of the cache's filesystem...
RESERVE_MIN = 1 << 20  # ...but at least 1 MiB
RESERVE_MAX = 1 << 30  # ...and at most 1 GiB
_FULL = (errno.ENOSPC, errno.EDQUOT)
WRITERS = 4  # cache writes at once: 3-4 in flight ran twice as fast as one (see above)
PENDING_BYTES = 32 * 1024 * 1024  # chunks handed over and not written yet, at most


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged user may still write on the filesystem of ``path``."""
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def reserve_for(path: Path) -> int:
    """How much the cache leaves free on the filesystem of ``path`` (see above)."""
    st = os.statvfs(path)
    return min(max(st.f_blocks * st.f_frsize // RESERVE_SHARE, RESERVE_MIN), RESERVE_MAX)


def _read_and_touch(path: Path) -> bytes:
    """The file's bytes; its mtime set to now if older than ``TOUCH_AFTER_NS``.

    Read with O_DIRECT where the filesystem allows it, else through the page cache.
    The mtime only seeds the recency order at the next start, so it need not be
    exact; touching on every hit would write the inode (and the journal) for every
    chunk a sequential reader streams from the cache.
    """
    fd = open_direct(path, os.O_RDONLY | os.O_CLOEXEC)
    direct = fd >= 0
    if not direct:  # no O_DIRECT on this filesystem
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        st = os.fstat(fd)
        data = read_range(fd, 0, st.st_size) if direct else None
        if data is None:
            if direct:  # a short or refused direct read: read it the ordinary way
                set_direct(fd, False)
            parts = [os.pread(fd, st.st_size, 0)]
            while len(parts[-1]) and sum(map(len, parts)) < st.st_size:
                parts.append(os.pread(fd, st.st_size, sum(map(len, parts))))
            data = parts[0] if len(parts) == 1 else b"".join(parts)
        if time.time_ns() - st.st_mtime_ns > TOUCH_AFTER_NS:
            with contextlib.suppress(OSError):
                os.utime(fd)
    finally:
        os.close(fd)
    return data


class ChunkCache:
    """A size-bounded directory of verified chunks."""

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
        self._writer: ThreadPoolExecutor | None = None  # started by the first put_later
        self._closed = False
        self._sizes: OrderedDict[bytes, int] = OrderedDict()  # least recent first
        self._used = 0  # cached bytes plus bytes reserved for writes under way
        self._writing = 0  # bytes of writes started and not landed (room made for them)
        self._made: set[str] = set()  # the two-hex directories known to exist
        self._names = itertools.count()  # temporary names (next() is atomic)
        self.hits = 0
        self.misses = 0
        self.evicted = 0
        private_dir(root, tighten=True)
        self.device = os.stat(root).st_dev
        self.reserve = reserve_for(root) if reserve is None else reserve
        self._load()

    def _path(self, oid: bytes) -> Path:
        h = oid.hex()
        return self.root / h[:2] / h

    def _load(self) -> None:
        """Take stock of the chunks already on disk; drop leftovers of a crash."""
        found: list[tuple[int, bytes, int]] = []
        for sub in self.root.iterdir():
            if sub.name.startswith(TMP_PREFIX):
                sub.unlink(missing_ok=True)
                continue
            if not sub.is_dir():
                continue
            private_dir(sub, tighten=True)
            for f in sub.iterdir():
                try:
                    oid = bytes.fromhex(f.name)
                    st = f.stat()
                except (ValueError, OSError):
                    oid, st = b"", None
                if len(oid) != 32 or st is None:
                    f.unlink(missing_ok=True)
                    continue
                found.append((st.st_mtime_ns, oid, st.st_size))
        for _, oid, size in sorted(found):
            self._sizes[oid] = size
            self._used += size
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
        return oid in self._sizes or oid in self._pending

    def get(self, oid: bytes) -> bytes | memoryview | None:
        """The chunk's bytes if cached and intact, or waiting to be written; None otherwise."""
        with self._lock:
            data = self._pending.get(oid)
            if data is not None:
                self.hits += 1
                return data
            if oid not in self._sizes:
                self.misses += 1
                return None
            self._sizes.move_to_end(oid)
        path = self._path(oid)
        try:
            data = _read_and_touch(path)
        except FileNotFoundError:
            self._drop(oid)
            return None
        if hash_bytes(data) != oid:
            log.error("cached chunk %s failed verification: deleted, it will be fetched again",
                      oid.hex())  # fmt: skip
            self._drop(oid)
            path.unlink(missing_ok=True)
            return None
        self.hits += 1
        return data

    def put(self, oid: bytes, data: bytes | memoryview) -> bool:
        """Cache a verified chunk (evicting others); False if it cannot fit at all."""
        size = len(data)
        with self._landed:
            if oid in self._sizes:
                return True
            if size > self.limit:
                return False
            # Writes under way hold room no eviction can free: when what they hold
            # leaves too little, wait until one lands (and so becomes evictable).
            self._evict(size)
            while self._used + size > self.limit:
                self._landed.wait()
                self._evict(size)
            self._used += size
        try:
            for attempt in (1, 2):
                # Room is made under the lock for this write and the ones under way,
                # which the free space does not show yet: writers side by side would
                # otherwise each make room for one and together eat into the reserve.
                with self._lock:
                    short = self._short_of(size + self._writing)
                    self._evict(0, short if attempt == 1 else short + size)
                    self._writing += size
                try:
                    self._write(oid, data)
                    break
                except OSError as exc:
                    if exc.errno not in _FULL or attempt == 2:
                        raise
                finally:
                    with self._lock:
                        self._writing -= size
        except BaseException as exc:
            with self._landed:
                self._used -= size
                self._landed.notify_all()
            if not isinstance(exc, OSError):
                raise
            log.warning("could not cache chunk %s: %s", oid.hex(), exc)
            return False
        with self._landed:
            self._sizes[oid] = size
            self._landed.notify_all()
        return True

    def put_later(self, oid: bytes, data: bytes | memoryview) -> None:
        """Cache a verified chunk on a writer thread; kept in memory until written.

        Returns at once, unless the chunks waiting to be written already hold
        ``pending_limit`` bytes: then it waits until there is room (back-pressure).
        ``data`` must not change afterwards. After :meth:`close` it does nothing.
        """
        size = len(data)
        if size > self.limit:
            return
        with self._room:
            while (
                not self._closed
                and self._pending_bytes
                and self._pending_bytes + size > self.pending_limit
                and oid not in self._pending
            ):
                self._room.wait()
            if self._closed or oid in self._pending or oid in self._sizes:
                return
            if self._writer is None:
                self._writer = ThreadPoolExecutor(
                    self._writer_count, thread_name_prefix="dvfs-cache-write"
                )
            self._pending[oid] = data
            self._pending_bytes += size
            self._writer.submit(self._write_pending, oid, data)

    def _write_pending(self, oid: bytes, data: bytes | memoryview) -> None:
        """A writer thread: cache a pending chunk, then let it go from memory."""
        try:
            self.put(oid, data)
        except Exception:  # put logs and swallows OS errors; anything else is a bug
            log.exception("could not cache chunk %s", oid.hex())
        finally:
            with self._room:
                if self._pending.pop(oid, None) is not None:
                    self._pending_bytes -= len(data)
                self._room.notify_all()

    def pending(self) -> int:
        """Bytes of chunks handed to :meth:`put_later` and not written yet."""
        return self._pending_bytes

    def close(self) -> None:
        """Take no more chunks, write those pending and stop the writer threads.

        Leaves no temporary file. Called when the daemon stops, after the unmount.
        """
        with self._room:
            self._closed = True
            self._room.notify_all()
            writer = self._writer
        if writer is not None:
            writer.shutdown(wait=True)

    def _write(self, oid: bytes, data: bytes | memoryview) -> None:
        """Write a chunk under its name (temp + rename); nothing is left if it fails."""
        path = self._path(oid)
        sub = path.parent.name
        if sub not in self._made:
            with contextlib.suppress(FileExistsError):
                os.mkdir(path.parent, 0o700)
            self._made.add(sub)
        flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC
        fd = -2
        while fd == -2:  # a name left by an earlier process of the same id is passed over
            tmp = self.root / f"{TMP_PREFIX}{os.getpid()}-{next(self._names)}"
            with contextlib.suppress(FileExistsError):
                fd = open_direct(tmp, flags, 0o600)
        direct = fd >= 0
        try:
            if not direct:  # no O_DIRECT on this filesystem (the refused open made it)
                fd = os.open(tmp, flags & ~os.O_EXCL, 0o600)
            try:
                write_new(fd, data, opened_direct=direct)
            finally:
                os.close(fd)
            try:
                os.replace(tmp, path)
            except FileNotFoundError:  # its directory was removed meanwhile
                self._made.discard(sub)
                os.mkdir(path.parent, 0o700)
                os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise

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

    def _drop(self, oid: bytes) -> None:
        with self._lock:
            size = self._sizes.pop(oid, None)
            if size is not None:
                self._used -= size

    def _evict(self, room: int, free: int = 0) -> None:
        """Delete least recently used chunks until ``room`` more bytes fit in the limit
        and at least ``free`` bytes were deleted (lock held)."""
        while self._sizes and (self._used + room > self.limit or free > 0):
            oid, size = self._sizes.popitem(last=False)
            self._used -= size
            free -= size
            self.evicted += 1
            with contextlib.suppress(FileNotFoundError):
                self._path(oid).unlink()
