"""Hashing files of the working tree into chunks and storing them (:class:`Hasher`).

A large file goes through a pipeline whose stages run at the same time, each bounded,
so that both cores stay busy from the first byte to the last and memory does not grow
with the file (:meth:`Hasher._read_large`)::

    kernel read-ahead    READ_AHEAD bytes ahead of the reader (POSIX_FADV_WILLNEED)
      -> calling thread  reads into the REGIONS regions of one page-aligned buffer
                         in turn; the cut thread cuts each (FastCDC) from the first
                         chunk the region before left uncut, once that one is cut,
                         while the calling thread reads the next (Chunker.ring)
      -> chunks pool     one task per region read: for each chunk cut, BLAKE3 id
                         and compressibility probe (zstd); then the region's new
                         chunks appended to the open pack under one acquisition of
                         the store's lock, raw ones back to back as one stretch
      -> pack writers    two threads write the pack (vfs._os.direct_io): a stretch's
                         whole pages straight from the buffer, the rest copied into
                         DEPTH blocks of BLOCK bytes
    and beside them the digest thread updates the file's BLAKE3 region by region. A
    region is read into again once the chunks in it are hashed and written to the pack.

BLAKE3, FastCDC's cut loop, zstd and the reads and writes release the GIL, so each
stage runs on whichever core is free; the stage that waits (a full pack writer, a
region still being hashed) holds the ones before it back. Every byte is hashed twice:
once as part of its chunk and once for the file's digest (packs are named by their
header, ``vfs.store.packs``).

Small files (one chunk each) are read, hashed and stored whole, in batches
(:meth:`Hasher.stage_batch`); past HASH_SPLIT of them a forked helper process hashes a
share of the batches into packs of its own (:class:`_SmallHelper`).
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
import struct
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from vfs._os.beneath import ABSENT, READ, Walker
from vfs._os.helper_process import Channel, Helper, Tickets, spare_cpus
from vfs.errors import DvfsError, FileChanged, FileUnreadable
from vfs.model.chunking import Chunker
from vfs.model.codec import PERM_BITS, ChunkRef, Kind
from vfs.model.ids import hash_bytes, hasher
from vfs.repo.stage import Row, Staged, as_row
from vfs.store.durable import storage_error
from vfs.store.objects import ObjectStore, ObjKind
from vfs.worktree.pools import Progress, Workers
from vfs.worktree.scan import Found, show

if TYPE_CHECKING:  # imported when a pool is first made: a clean `status` makes none
    import mmap

    from vfs._os.threads import Task, Waitable


READ_RETRIES = 3
BLOCK_BYTES = 4 << 20  # a large file is read this many bytes per region (Chunker.ring_size)
# Regions of a large file's buffer in flight: one being read, one being cut, the others
# being hashed and written to the pack from where they lie. History: when each of five
# blocks of 4 MiB reads had its own 4 MiB reserve for the tail carried over (40 MiB),
# the tails were copied and cut twice (209 MiB copied and about 130 MiB cut again per
# GiB of random bytes); adjacent regions of one buffer need neither. Sizes before
# that, each measured on the peak RSS of adding 1 GiB (DVC's: 67 MiB) and its wall
# time: four blocks of 6 MiB reads, then five of 4 MiB (wall 1.68-2.30 s against
# 2.09-2.76 in process at load 12, peak RSS 57-64 MiB either way); reads of 8 MiB put
# the peak at 71 MiB. Seven regions, not five: adding 1 GiB to a repository of 20,000
# files, peak RSS 60.3 MiB against 52.3 (61.5 with the blocks; eight regions: 64.4),
# and in process, eight pairs at load 11-14, CPU medians 1.12 s against 1.20 (user
# 0.83 and 0.88, system 0.29 and 0.34).
REGIONS = 7
READ_AHEAD = 64 << 20  # bytes of a large file the kernel is asked to read ahead
BATCH_FILES = 64  # small files hashed per task
BATCH_BYTES = 4 << 20  # and at most about this many bytes of them
# Small files from which a forked helper hashes a share of them (see _SmallHelper).
HASH_SPLIT = 2048

Pending = tuple[bytes, ObjKind, bytes]  # a chunk to store: id, kind, bytes
_T = TypeVar("_T")  # what a file's record is yielded as (Feed.stage, Feed.stage_rows)
# The chunks of a region, stored: their refs, and the writes still reading the buffer.
Lent = tuple[list[ChunkRef], list["Waitable[None]"]]


def _store_chunk(store: ObjectStore | None, data: bytes | memoryview) -> ChunkRef:
    oid = hash_bytes(data)
    if store is not None:
        store.put(ObjKind.CHUNK, data, oid)
    return ChunkRef(oid, len(data))


def _lend_chunks(store: ObjectStore | None, block: memoryview, first: int, ends: list[int]) -> Lent:
    """Hash and store the chunks ``block[first:ends[0]]``, ``block[ends[0]:ends[1]]``...
    of a page-aligned block; with the futures of the writes that read them from the
    block (``ObjectStore.put_lent_many``: those lying back to back go out as one).

    One task per block, not per chunk: a task per chunk cost a future, a thread
    hand-off and a wait for each of about 1,000 chunks per GiB. If storing fails, the
    writes already started are waited for before the error is raised: the block must
    not be reused while they read it.
    """
    refs: list[ChunkRef] = []
    pieces: list[tuple[bytes, int, int]] = []
    start = first
    for end in ends:
        oid = hash_bytes(block[start:end])
        refs.append(ChunkRef(oid, end - start))
        pieces.append((oid, start, end))
        start = end
    if store is None or not pieces:
        return refs, []
    return refs, store.put_lent_many(ObjKind.CHUNK, block, pieces)[1]


class _Blocks:
    """The page-aligned buffer large files are read into, kept for the next file.

    Pages a process touches for the first time cost a fault each, and on virtual
    machines that hand free memory back to the host much more (see vfs._os.direct_io);
    a command that adds many large files pays for its buffer once. It is kept only
    while ``keep`` is set (by :meth:`Hasher.stage_many`, for its large files) and
    unmapped after: a command's peak RSS comes after the hashing, when it writes the
    staging index, and the buffer must not add to it.
    """

    def __init__(self) -> None:
        self._free: mmap.mmap | None = None
        self._lock = threading.Lock()
        self.keep = False

    def take(self, size: int, reserve: int) -> mmap.mmap:
        """A buffer of ``size`` bytes whose first ``reserve`` bytes (whole pages) take
        the tail carried round from the last region and the rest the bytes read.

        The regions read into ask for transparent huge pages (MADV_HUGEPAGE): they
        are written whole every time, and the pack's direct writes lent from them
        then pin 2 MiB pages instead of 4 KiB ones (a tenth of the CPU) and go to the
        disk in fewer, larger requests. The reserve keeps small pages: a huge page
        there would be held whole for a carried tail of a few pages.
        """
        import mmap

        with self._lock:
            if self._free is not None and len(self._free) == size:
                block, self._free = self._free, None
                return block
        block = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE)
        with contextlib.suppress(OSError, AttributeError, ValueError):  # (no THP here)
            block.madvise(mmap.MADV_HUGEPAGE, reserve, size - reserve)
        return block

    def give(self, block: mmap.mmap) -> None:
        with self._lock:
            if self.keep and self._free is None:
                self._free = block
                return
        with contextlib.suppress(BufferError):  # (a view left: unmapped with it)
            block.close()

    def clear(self) -> None:
        """Unmap the buffer kept, and keep none."""
        with self._lock:
            self.keep = False
            block, self._free = self._free, None
        if block is not None:
            self.give(block)


class Hasher:
    """Turns working-tree files into staged records, storing their chunks if asked."""

    def __init__(
        self, root: Path, chunker: Chunker, store: ObjectStore | None, workers: Workers
    ) -> None:
        self.root = root
        self.chunker = chunker
        self.store = store
        self.workers = workers
        self.bytes_read = 0  # (added to through :meth:`_count`: threads hash at once)
        self._counting = threading.Lock()
        self._blocks = _Blocks()

    def _count(self, nbytes: int) -> None:
        """Add ``nbytes`` read to ``bytes_read``, from any of the hashing threads."""
        with self._counting:
            self.bytes_read += nbytes

    def _read_file(
        self,
        rel: bytes,
        walker: Walker,
        sink: list[Pending] | None = None,
        seen: os.stat_result | None = None,
    ) -> Staged:
        """Read, hash and (with a store) store one regular file; FileChanged if it kept
        changing (READ_RETRIES tries).

        ``seen`` is the file's lstat from the scan that found it. A small regular file
        is then read without an ``fstat`` first: the ``fstat`` after the read must find
        the same file (device and inode), size, mtime and ctime as the scan did, and
        the bytes read must be that size; else it is read again the careful way (an
        ``fstat`` before, which refuses anything but a regular file before a byte is
        read). One system call fewer per small file.
        """
        min_size = self.chunker.params.min_size
        trusting = seen is not None and statmod.S_ISREG(seen.st_mode) and seen.st_size <= min_size
        tries = READ_RETRIES + trusting
        for _ in range(tries):
            try:
                dir_fd, leaf = walker.parent(rel)
                fd = os.open(leaf, READ, dir_fd=dir_fd)
            except PermissionError:
                raise FileUnreadable(f"cannot read {show(rel)}: permission denied") from None
            except OSError as exc:
                if exc.errno in ABSENT:  # gone, or it or a directory above is now a link
                    raise FileChanged(f"{show(rel)} changed while it was read") from None
                if exc.errno == errno.ENXIO:  # a socket or a device now (an overlay's whiteout)
                    raise FileChanged(f"{show(rel)} changed type while it was read") from None
                raise
            try:
                if trusting:
                    assert seen is not None
                    before = seen
                    try:  # at most size + 1 bytes: bounded whatever the file has become
                        digest, chunks, total = self._read_small(fd, seen.st_size, sink, grow=False)
                    except OSError:  # (a FIFO now, say): read again the careful way
                        trusting = False
                        continue
                else:
                    before = os.fstat(fd)
                    if not statmod.S_ISREG(before.st_mode):  # a FIFO, say: opened without waiting
                        raise FileChanged(f"{show(rel)} changed type while it was read")
                    if before.st_size <= min_size:
                        digest, chunks, total = self._read_small(fd, before.st_size, sink)
                    else:
                        digest, chunks, total = self._read_large(fd, before.st_size + 1)
                after = os.fstat(fd)
            except OSError as exc:
                if exc.errno == errno.EIO:
                    raise FileUnreadable(f"cannot read {show(rel)}: input/output error") from None
                raise
            finally:
                os.close(fd)
            stable = (
                total == after.st_size
                and before.st_size == after.st_size
                and before.st_mtime_ns == after.st_mtime_ns
                and before.st_ctime_ns == after.st_ctime_ns
            )
            if trusting:
                trusting = False
                if not (
                    stable
                    and statmod.S_ISREG(after.st_mode)
                    and after.st_ino == before.st_ino
                    and after.st_dev == before.st_dev
                ):
                    continue  # read again, the careful way
            self._count(total)
            if stable:
                return Staged(
                    Kind.FILE, after.st_mode & PERM_BITS, total, after.st_mtime_ns,
                    after.st_ctime_ns, after.st_ino, digest, tuple(chunks),
                )  # fmt: skip
        raise FileChanged(
            f"{show(rel)} kept changing while it was read: "
            "add it again once it is no longer being written"
        )

    def _read_small(
        self, fd: int, size: int, sink: list[Pending] | None, *, grow: bool = True
    ) -> tuple[bytes, list[ChunkRef], int]:
        """Read a file expected to be one chunk with plain reads (no file object).

        ``grow``: a file that grew past one chunk meanwhile is read to its end and
        cut (only for a descriptor known to be a regular file); else at most
        ``size + 1`` bytes are read.
        """
        want = size + 1  # one byte more than expected, to notice growth
        data = os.read(fd, want)
        # All of it read: no second read to see the end (the fstat after the read
        # notices a file that grew, as it notices one that changed).
        while 0 < len(data) < size:
            more = os.read(fd, want - len(data))
            if not more:
                break
            data += more
        if grow and len(data) > self.chunker.params.min_size:  # grew: cut it properly
            while more := os.read(fd, 1 << 20):
                data += more
            refs = [_store_chunk(self.store, c) for c in self.chunker.buffer(data)]
            return hash_bytes(data), refs, len(data)
        if not data:
            return hash_bytes(b""), [], 0
        oid = hash_bytes(data)
        if self.store is not None:
            if sink is None:
                self.store.put(ObjKind.CHUNK, data, oid)
            else:
                sink.append((oid, ObjKind.CHUNK, data))
        return oid, [ChunkRef(oid, len(data))], len(data)

    def _read_large(self, fd: int, limit: int) -> tuple[bytes, list[ChunkRef], int]:
        """Read, cut, hash and store a large file, with the work spread over the pools.

        At most ``limit`` bytes are read (its size and one more, to notice growth): a
        file written faster than it is read is not followed to an end it never reaches.

        The file is read into the regions of one page-aligned buffer in turn
        (:meth:`Chunker.ring`) and each chunk is hashed and stored straight from
        there: no copy per chunk and no fresh memory per chunk (page faults on fresh
        memory cost as much as hashing), and a raw chunk's whole pages go to the pack
        from the buffer (``ObjectStore.put_lent_many``). The whole-file digest is updated
        region by region in the one ``digest`` thread. The stages and their bounds are
        in the module docstring.
        """
        whole = hasher()
        chunker = self.chunker
        ring = self._blocks.take(chunker.ring_size(BLOCK_BYTES, REGIONS), chunker.reserve)
        inflight: deque[tuple[int, Task[Lent], Task[Any]]] = deque()
        refs: list[ChunkRef] = []
        total = 0

        def settle() -> None:
            _, chunks, upd = inflight[0]
            stored, writes = chunks.result()
            upd.result()
            for write in writes:
                write.exception()  # (waits; its error is the store's to raise)
            inflight.popleft()  # only now: on failure, the rest is waited for below
            refs.extend(stored)

        def take(k: int) -> None:
            while inflight and inflight[0][0] < k - REGIONS + 2:
                settle()

        pos = asked = 0

        def readinto(view: memoryview) -> int:
            nonlocal pos, asked
            if pos + READ_AHEAD // 2 >= asked:  # keep half a window or more asked for
                with contextlib.suppress(OSError):
                    os.posix_fadvise(fd, asked, READ_AHEAD, os.POSIX_FADV_WILLNEED)
                asked += READ_AHEAD
            n = os.readv(fd, [view[: limit - pos]]) if pos < limit else 0
            pos += n
            return n

        progress = self.workers.progress
        view = memoryview(ring)
        try:
            pool = self.workers.chunks
            cut = chunker.ring(readinto, ring, REGIONS, take, self.workers.cuts.submit)
            with contextlib.closing(cut):  # (its cuts end before the buffer is given)
                for k, first, ends, start, end in cut:
                    chunks = pool.submit(_lend_chunks, self.store, view, first, ends)
                    upd = self.workers.digest.submit(whole.update, view[start:end])
                    inflight.append((k, chunks, upd))
                    progress.advance(0, end - start)
                    total += end - start
            while inflight:
                settle()
        finally:
            for _, chunks, upd in inflight:  # on failure: let running work end before we do
                if not upd.cancel():
                    upd.exception()
                if not chunks.cancel() and chunks.exception() is None:
                    for write in chunks.result()[1]:  # (the pack writer reads the buffer)
                        write.exception()
            with contextlib.suppress(BufferError):  # (nothing reads it any more)
                view.release()
            self._blocks.give(ring)
        return whole.digest(), refs, total

    def stage_one(
        self, found: Found, sink: list[Pending] | None = None, walker: Walker | None = None
    ) -> Staged:
        """Hash one file or link (storing its chunks when the hasher has a store).

        With ``sink``, the chunk of a small file is appended to it instead of stored,
        for the caller to store a batch at once. ``walker`` resolves the path (one of
        this call's own if not given).
        """
        if walker is None:
            with Walker(self.root) as own:
                return self.stage_one(found, sink, own)
        try:
            if statmod.S_ISLNK(found.st.st_mode):
                dir_fd, leaf = walker.parent(found.rel)
                try:
                    target = os.readlink(leaf, dir_fd=dir_fd)
                except OSError as exc:
                    if exc.errno in ABSENT or exc.errno == errno.EINVAL:  # gone, or not a link
                        raise FileChanged(f"{show(found.rel)} changed while it was read") from None
                    raise
                return Staged(
                    Kind.SYMLINK, found.st.st_mode & PERM_BITS, len(target), found.st.st_mtime_ns,
                    found.st.st_ctime_ns, found.st.st_ino, target=target,
                )  # fmt: skip
            return self._read_file(found.rel, walker, sink, found.st)
        except OSError as exc:
            raise storage_error(exc, f"the chunks of {show(found.rel)}") from exc

    def stage_batch(
        self, batch: list[Found], failed: dict[bytes, DvfsError] | None = None
    ) -> list[Staged | None]:
        """Hash a batch of small files and links in one task, storing their chunks together.

        One task per file cost more in futures, locks and thread switches than hashing a
        1-32 KiB file does; a batch pays that once. With ``failed``, a file that cannot
        be read or kept changing is put there (and None in the result) instead of
        failing the batch.

        A small regular file is read here at once, as :meth:`_read_file` reads one
        it trusts the scan's lstat of (open, one read, ``fstat``, close): the same
        checks, without the three calls and the loop around them per file, and the
        descriptor of its directory asked of the walker once per directory, not once
        per file (5-6 us of a file's 20 in all). Anything else, and any file that
        fails a check or a system call here, goes the usual way (:meth:`stage_one`),
        which reads it again and says what went wrong.
        """
        out: list[Staged | None] = []
        sink: list[Pending] = []
        held = nread = 0
        store = self.store
        min_size = self.chunker.params.min_size
        is_reg, open_, read, fstat, close = statmod.S_ISREG, os.open, os.read, os.fstat, os.close
        chunk, file = ObjKind.CHUNK, Kind.FILE
        head: bytes | None = None  # the directory ``dir_fd`` is (None: ask the walker)
        dir_fd = -1
        with Walker(self.root) as walker:
            for f in batch:
                st = f.st
                size = st.st_size
                staged = None
                if 0 < size <= min_size and is_reg(st.st_mode):
                    d, _, leaf = f.rel.rpartition(b"/")
                    after = data = None
                    try:
                        if d != head:
                            head = None
                            dir_fd = walker.dir(d)
                            head = d
                        if leaf and leaf != b"." and leaf != b"..":
                            fd = open_(leaf, READ, dir_fd=dir_fd)
                            try:  # at most size + 1 bytes: bounded whatever the file is now
                                data = read(fd, size + 1)
                                after = fstat(fd)
                            finally:
                                close(fd)
                    except OSError:
                        pass
                    if (
                        after is not None
                        and data is not None
                        and len(data) == size == after.st_size
                        and after.st_mtime_ns == st.st_mtime_ns
                        and after.st_ctime_ns == st.st_ctime_ns
                        and after.st_ino == st.st_ino
                        and after.st_dev == st.st_dev
                        and is_reg(after.st_mode)
                    ):
                        oid = hash_bytes(data)
                        if store is not None:
                            sink.append((oid, chunk, data))
                        nread += size
                        staged = Staged(
                            file, after.st_mode & PERM_BITS, size, after.st_mtime_ns,
                            after.st_ctime_ns, after.st_ino, oid, (ChunkRef(oid, size),),
                        )  # fmt: skip
                if staged is None:
                    head = None  # (the walker is asked again: its descriptor may change)
                    try:
                        staged = self.stage_one(f, sink, walker)
                    except (FileUnreadable, FileChanged) as exc:
                        if failed is None:
                            raise
                        failed[f.rel] = exc
                out.append(staged)
                held += size
                if held >= BATCH_BYTES and store is not None:
                    store.put_many(sink)
                    sink.clear()
                    held = 0
        if sink and store is not None:
            store.put_many(sink)
        self._count(nread)
        return out

    def stage_many(
        self, items: Iterable[Found], failed: dict[bytes, DvfsError] | None = None
    ) -> Iterator[tuple[bytes, Staged]]:
        """Hash many paths in parallel; yields (path, staged) as each finishes.

        The first failure is raised after the remaining work is cancelled; with
        ``failed``, files that cannot be read or kept changing are put there instead,
        and the others hashed.

        Small files are hashed in batches (:meth:`stage_batch`). From HASH_SPLIT of
        them on, with a CPU to spare, a forked helper process hashes a share of the
        batches while this one hashes the others (:class:`_SmallHelper`); else they go
        to the ``chunks`` pool.
        """
        feed = Feed(self)
        feed.add(items)
        yield from feed.stage(failed)

    def feed(self) -> Feed:
        """A :class:`Feed` for files handed over as a scan finds them."""
        return Feed(self)

    def _stage_large(
        self, large: list[Found], failed: dict[bytes, DvfsError] | None
    ) -> Iterator[tuple[bytes, Staged]]:
        """Hash the large files one at a time, each with the work spread over the pools."""
        for f in large:
            try:
                staged = self.stage_one(f)
            except (FileUnreadable, FileChanged) as exc:
                if failed is None:
                    raise
                failed[f.rel] = exc
            else:
                yield f.rel, staged
            self.workers.progress.advance(1, 0)

    def _stage_threaded(
        self, small: list[list[Found]], large: list[Found], failed: dict[bytes, DvfsError] | None
    ) -> Iterator[tuple[bytes, Staged]]:
        """:meth:`stage_many` in this process: batches of small files on the ``chunks`` pool."""
        progress = self.workers.progress
        batches = iter(small)
        # One thread per core: with more, they spent their time handing the GIL to
        # each other (twice the context switches, a third more wall time for 20,000
        # small files). The ``chunks`` pool has that size; its tasks never wait.
        pool = self.workers.chunks
        window = 2 * self.workers.threads
        futures: deque[tuple[list[Found], Task[list[Staged | None]]]] = deque()
        try:
            for batch in batches:  # small files start while the large ones are read
                futures.append((batch, pool.submit(self.stage_batch, batch, failed)))
                if len(futures) >= window:
                    break
            yield from self._stage_large(large, failed)
            while True:
                for batch in batches:
                    futures.append((batch, pool.submit(self.stage_batch, batch, failed)))
                    if len(futures) >= window:
                        break
                if not futures:
                    break
                batch, fut = futures.popleft()
                for f, got in zip(batch, fut.result(), strict=True):
                    progress.advance(1, f.st.st_size if got is None else got.size)
                    if got is not None:
                        yield f.rel, got
        finally:
            for _, fut in futures:  # on failure: let running work end before we do
                if not fut.cancel():
                    with contextlib.suppress(Exception):
                        fut.result()

    def _stage_shared(
        self,
        helper: _SmallHelper,
        large: list[Found],
        failed: dict[bytes, DvfsError] | None,
        own: Callable[[bytes, Staged], _T],
        theirs: Callable[[bytes, Encoded], _T],
    ) -> Iterator[tuple[bytes, _T]]:
        """:meth:`stage_many` with a helper process: this one hashes the large files,
        then the batches of small files it claims, one at a time on this thread (the
        helper has the other CPU); then it takes the helper's records, and hashes again
        whatever the helper did not hash (it failed, or a file of its failed). Each
        record yielded as ``own`` makes it of a :class:`Staged` hashed here, or as
        ``theirs`` does of one the helper sent (:func:`_encode`)."""
        progress = self.workers.progress
        for rel, staged in self._stage_large(large, failed):
            yield rel, own(rel, staged)
        for batch in helper.mine():
            for f, got in zip(batch, self.stage_batch(batch, failed), strict=True):
                if got is not None:
                    yield f.rel, own(f.rel, got)
            progress.advance(len(batch), sum(f.st.st_size for f in batch))
            helper.report_progress(progress)
        yield from helper.results(theirs)
        self._count(helper.bytes_read)
        helper.report_progress(progress)
        left = helper.left()
        for batch in _batches(left):
            for f, got in zip(batch, self.stage_batch(batch, failed), strict=True):
                if got is not None:
                    yield f.rel, own(f.rel, got)


class Feed:
    """Files for :meth:`Hasher.stage_many`, handed over as a scan finds them.

    Small files are put in batches as they come, so that none is looked at again once
    the scan is over (``add`` hands each directory's files over as they are listed).
    """

    def __init__(self, hasher: Hasher) -> None:
        self.hasher = hasher
        self.files = 0  # files handed over
        self.nbytes = 0  # and their bytes
        self.large: list[Found] = []
        self.batches: list[list[Found]] = []  # of small files and links
        self._small = 0  # files in the batches
        self._batch: list[Found] = []
        self._held = 0  # bytes in _batch

    def add(self, files: Iterable[Found]) -> None:
        """Take these files (regular files and links, each once) to hash."""
        min_size = self.hasher.chunker.params.min_size
        is_reg = statmod.S_ISREG
        batch, held = self._batch, self._held
        for f in files:
            size = f.st.st_size
            self.files += 1
            self.nbytes += size
            if size > min_size and is_reg(f.st.st_mode):
                self.large.append(f)
                continue
            batch.append(f)
            held += size
            if len(batch) >= BATCH_FILES or held >= BATCH_BYTES:
                self._seal(batch)
                batch, held = self._batch, 0
        self._held = held

    def _seal(self, batch: list[Found]) -> None:
        """Close the batch being filled."""
        self._batch, self._held = [], 0
        self.batches.append(batch)
        self._small += len(batch)

    def stage(self, failed: dict[bytes, DvfsError] | None = None) -> Iterator[tuple[bytes, Staged]]:
        """Hash the files handed over: :meth:`Hasher.stage_many` of them."""
        return self._stage(failed, _same, _staged_record)

    def stage_rows(
        self, failed: dict[bytes, DvfsError] | None = None
    ) -> Iterator[tuple[bytes, Row]]:
        """:meth:`stage`, each record as the staging index's row of it (``as_row``).

        For ``add``, which stages them so (``Index.put_row``): a row is made of each
        record hashed here while the other process hashes (where ``Index.save`` made
        20,000 of them in a row once the hashing was over), and of each record the
        helper sent with no :class:`Staged` made of it first.
        """
        return self._stage(failed, as_row, _row_of)

    def _stage(
        self,
        failed: dict[bytes, DvfsError] | None,
        own: Callable[[bytes, Staged], _T],
        theirs: Callable[[bytes, Encoded], _T],
    ) -> Iterator[tuple[bytes, _T]]:
        if self._batch:
            self._seal(self._batch)
        hasher = self.hasher
        if not (self.batches or self.large):
            return  # and no thread pool is made (a clean ``status`` hashes nothing)
        progress = hasher.workers.progress
        progress.start("hashing", self.files, self.nbytes)
        hasher._blocks.keep = len(self.large) > 1
        helper = _SmallHelper.start(hasher, self.batches) if self._small >= HASH_SPLIT else None
        try:
            if helper is None:
                for rel, staged in hasher._stage_threaded(self.batches, self.large, failed):
                    yield rel, own(rel, staged)
            else:
                yield from hasher._stage_shared(helper, self.large, failed, own, theirs)
        finally:
            if helper is not None:
                helper.close()
            hasher._blocks.clear()
            progress.done()


class _SmallHelper:
    """A forked process hashing a share of the small files of :meth:`Hasher.stage_many`.

    Hashing a small file is a few short system calls with Python between them, and
    the interpreter lock keeps two threads from sharing that work (only compression
    and the system calls let go of it). So the batches of small files are numbered
    and shared through :class:`~vfs._os.helper_process.Tickets` between this process
    and a forked helper: the one with more CPU to spare takes more.

    The helper stores the chunks of its files in packs of its own (one ``ObjectStore``
    per process, as two commands adding at once would have), makes them durable
    (``ObjectStore.sync``) and only then reports its records, a frame per batch
    (:func:`_encode`), then the bytes it read. Until that last frame nothing it hashed is used: a
    helper that failed in any way has every batch it claimed hashed again here, where
    any error is raised as usual, and the packs it wrote are named by nothing (as a
    killed command's). A file it could not read, or that kept changing, is reported
    as None and hashed again here too, for its error to come from this process.

    Records depend on the files' bytes alone, never on which process hashed them or
    which pack holds a chunk, so the trees are the same whatever the split. How far
    the helper is goes through 16 bytes of shared memory (files, bytes), read for the
    progress bar between this process's own batches.
    """

    def __init__(
        self, process: Helper, tickets: Tickets, batches: list[list[Found]], shared: mmap.mmap
    ) -> None:
        self.process = process
        self.tickets = tickets
        self.batches = batches
        self.shared = shared
        self.taken: list[int] = []  # the batches this process claimed
        self.got: Mapping[int, Sequence[object]] = {}  # the helper's records, once it ended whole
        self.whole = False  # it did
        self.bytes_read = 0
        self._shown = (0, 0)

    @staticmethod
    def start(hasher: Hasher, batches: list[list[Found]]) -> _SmallHelper | None:
        """Fork a helper sharing ``batches`` with this process; None if there is no CPU
        to spare (or threads run already), no pipe or no process."""
        import mmap

        if not spare_cpus(1):
            return None
        tickets = Tickets.share(len(batches))
        if tickets is None:
            return None
        shared = mmap.mmap(-1, PROGRESS.size)  # (anonymous: shared with the helper)
        process = Helper.start(lambda ch: _hash_share(ch, hasher, tickets, batches, shared))
        if process is None:
            tickets.close()
            shared.close()
            return None
        return _SmallHelper(process, tickets, batches, shared)

    def mine(self) -> Iterator[list[Found]]:
        """The batches this process hashes: those it claims first."""
        while (pieces := self.tickets.claim()) is not None:
            for k in pieces:
                self.taken.append(k)
                yield self.batches[k]

    def report_progress(self, progress: Progress) -> None:
        """Advance ``progress`` by what the helper hashed since the last call."""
        files, nbytes = PROGRESS.unpack(self.shared)
        progress.advance(files - self._shown[0], nbytes - self._shown[1])
        self._shown = (files, nbytes)

    def results(self, decode: Callable[[bytes, Encoded], _T]) -> Iterator[tuple[bytes, _T]]:
        """Wait for the helper's records; yield them, each as ``decode`` makes it of
        its path and :func:`_encode`'s tuple, if it ended whole (else nothing)."""
        got: dict[int, list[_T | None]] = {}
        while True:
            ok, frame = self.process.receive()
            if not ok:
                return
            if not isinstance(frame, tuple):
                break
            try:
                k, records = frame
                batch = self.batches[k]
                if len(records) != len(batch) or k in got:
                    return
                got[k] = [
                    None if r is None else decode(f.rel, r)
                    for f, r in zip(batch, records, strict=True)
                ]
            except (ValueError, TypeError, IndexError):
                return
        if not isinstance(frame, int):
            return
        self.got, self.whole = got, True
        self.bytes_read = frame
        for k, records in got.items():
            for f, staged in zip(self.batches[k], records, strict=True):
                if staged is not None:
                    yield f.rel, staged

    def left(self) -> list[Found]:
        """The small files neither process hashed (call after :meth:`results`)."""
        mine = set(self.taken)
        out: list[Found] = []
        for k, batch in enumerate(self.batches):
            if k in mine:
                continue
            records = self.got.get(k)
            if records is None:
                out.extend(batch)
            else:
                out.extend(f for f, r in zip(batch, records, strict=True) if r is None)
        return out

    def close(self) -> None:
        """Stop the helper if it still runs, reap it and let go of what it shared."""
        if not self.whole:
            self.process.interrupt()
        self.process.close()
        self.tickets.close()
        with contextlib.suppress(BufferError):
            self.shared.close()


PROGRESS = struct.Struct("<QQ")  # files and bytes a small-file helper hashed so far

Encoded = tuple[int, int, int, int, int, int, bytes, tuple[tuple[bytes, int], ...], bytes]


def _encode(s: Staged) -> Encoded:
    """A staged record as ``marshal`` takes it (see :class:`_SmallHelper`)."""
    chunks = tuple((c.oid, c.size) for c in s.chunks)
    return (int(s.kind), s.mode, s.size, s.mtime_ns, s.ctime_ns, s.ino, s.digest, chunks, s.target)


_KINDS = {int(k): k for k in Kind}  # (a lookup: calling an IntEnum is slow)


def _same(rel: bytes, staged: Staged) -> Staged:
    """``staged`` (a record hashed here, yielded as it is)."""
    return staged


def _staged_record(rel: bytes, r: Encoded) -> Staged:
    """:func:`_decode` of a record the helper sent for ``rel``."""
    return _decode(r)


def _row_of(rel: bytes, r: Encoded) -> Row:
    """The staging index's row (``as_row``) of the record :func:`_encode` made for
    ``rel``, with no :class:`Staged` made of it (ValueError or TypeError if it is not
    one): the parent takes some 13,000 of the benchmark's 20,000 records so, once the
    helper is done, where a Staged made and turned into a row cost 3 us each."""
    kind, mode, size, mtime_ns, ctime_ns, ino, digest, chunks, target = r
    if not (
        type(kind) is int
        and kind in _KINDS
        and type(mode) is int
        and type(size) is int
        and type(mtime_ns) is int
        and type(ctime_ns) is int
        and type(ino) is int
        and type(digest) is bytes
        and type(target) is bytes
        and type(chunks) is tuple
        and all(type(c) is tuple and len(c) == 2 for c in chunks)
    ):
        raise TypeError("not a staged record")
    return (rel, kind, mode, size, mtime_ns, ctime_ns, ino, digest, chunks, target)


def _decode(r: Encoded) -> Staged:
    """The record :func:`_encode` made (ValueError or TypeError if it is not one).

    The parent decodes the helper's records, some 13,000 of the benchmark's 20,000,
    after the helper has hashed its last file, so each microsecond here is 13 ms of
    the command's time: a small file's one chunk is made without a generator.
    """
    kind, mode, size, mtime_ns, ctime_ns, ino, digest, chunks, target = r
    if len(chunks) == 1:
        ((oid, n),) = chunks
        refs: tuple[ChunkRef, ...] = (ChunkRef(oid, n),)
    else:
        refs = tuple([ChunkRef(oid, n) for oid, n in chunks])
    known = _KINDS.get(kind)
    if known is None or not (isinstance(digest, bytes) and isinstance(target, bytes)):
        raise TypeError("not a staged record")
    return Staged(known, mode, size, mtime_ns, ctime_ns, ino, digest, refs, target)


def _hash_share(
    channel: Channel,
    hasher: Hasher,
    tickets: Tickets,
    batches: list[list[Found]],
    shared: mmap.mmap,
) -> None:
    """A small-file helper's work: hash the batches it claims, make what it stored
    durable, then report (see :class:`_SmallHelper`)."""
    done: list[tuple[int, list[Staged | None]]] = []
    files = nbytes = 0
    before = hasher.bytes_read
    try:
        while (pieces := tickets.claim()) is not None:
            for k in pieces:
                batch = batches[k]
                done.append((k, hasher.stage_batch(batch, {})))
                files += len(batch)
                nbytes += sum(f.st.st_size for f in batch)
                PROGRESS.pack_into(shared, 0, files, nbytes)
        # The records go out while what was stored is made durable: the parent
        # decodes them meanwhile, and uses none before the last frame, sent after.
        store = hasher.store
        failed: list[BaseException] = []
        syncing = None
        if store is not None:

            def sync() -> None:
                try:
                    store.sync()
                except BaseException as exc:
                    failed.append(exc)

            syncing = threading.Thread(target=sync, name="dvfs-sync")
            syncing.start()
        try:
            sent = all(
                channel.send((k, [None if s is None else _encode(s) for s in records]))
                for k, records in done
            )
        finally:
            if syncing is not None:
                syncing.join()  # (before the store is discarded below, on an error)
        if failed:
            raise failed[0]
    except BaseException:
        if hasher.store is not None:
            hasher.store.discard()
        raise
    if sent:
        channel.send(hasher.bytes_read - before)


def _batches(items: list[Found]) -> Iterator[list[Found]]:
    """Consecutive batches of at most BATCH_FILES files and about BATCH_BYTES bytes."""
    batch: list[Found] = []
    held = 0
    for f in items:
        batch.append(f)
        held += f.st.st_size
        if len(batch) >= BATCH_FILES or held >= BATCH_BYTES:
            yield batch
            batch, held = [], 0
    if batch:
        yield batch
