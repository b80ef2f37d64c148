"""Writing a new file front to back past the page cache (``O_DIRECT``).

Packs are written once and not read again soon, yet a buffered write gives each 4 KiB
of them a page of the page cache. Taking fresh pages is not free: on virtual machines
that hand free memory back to the host (virtio balloon free page reporting), every
such page costs the host a fault, and writing 1 GiB buffered then ran at 320 MB/s
where ``O_DIRECT`` ran at 1.5 GB/s on the same disk. Direct writes also leave the
user's cached data where it is. A large restored file is written through the page
cache instead (``vfs.worktree.restore._write_through``): the user reads it next, and
a checkout reads its packs on the same disk meanwhile. Both ways are measured in
``benchmarks/README.md`` (the EPYC without AVX-512).

:class:`DirectAppender` copies what it is given into page-aligned blocks, reused
from a small process-wide pool, and a thread writes each full block with ``O_DIRECT``
while the caller fills the next; an optional consumer (such as a hash) reads each
block too, on a thread of its own so that it runs while the block is being written.
With ``gather``, full blocks waiting for the thread go out in one system call (up to
``gather`` of them): while the disk is the bottleneck blocks queue up, and one write
of 6 MiB goes out where three of 2 MiB went one after the other. A gathering
appender's executor may have several threads (WRITE_DEPTH): each takes the pieces
queued first, so the disk has two writes at a time. On the benchmark machine 256 MiB
written direct took 0.35-0.92 s in 4 MiB writes one at a time, 0.20-0.95 s two at a
time, and 0.22-0.92 s in 8 MiB writes either way (eight runs each, other work
running): pieces come a chunk or a few at a time, so writes of a pack are mostly 3-5
MiB, where one at a time is slow.

:meth:`DirectAppender.lend` appends a long stretch of a page-aligned buffer without
copying it: zero bytes are first appended up to the file position that lies at the
same place within a page as the stretch does in its buffer, the stretch's first and
last partial pages are copied into blocks, and its whole pages are written straight
from the caller's buffer, which the caller leaves unchanged until the returned future
is done. Copying a 1 GiB file into blocks cost about 0.15 CPU-seconds of adding it (a
tenth of the whole), under the store's lock. The last partial
block is written direct up to its last whole page and the rest through the page
cache. Where ``O_DIRECT`` is refused (some filesystems have none) the same blocks are
written the ordinary way. Durability is unchanged: the data is written, not synced;
the caller's flush before a ref moves syncs it.

:func:`write_new` writes a whole small file the same way in one call, through this
thread's aligned buffer; :func:`write_at` writes a piece at a page-aligned offset,
padded to whole pages (a chunk appended to a chunk-cache segment).

Reading past the page cache: :func:`open_direct` opens a file with ``O_DIRECT`` (or
says the filesystem has none), :func:`read_range` and :func:`read_range_into` read a
byte range of it through a page-aligned buffer, :func:`set_direct` turns the flag
off again for an ordinary read. Whether a range is cached already is
``vfs._os.page_cache``'s question.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import threading
from collections import deque
from collections.abc import Callable
from typing import TYPE_CHECKING

from vfs._os.threads import Task

if TYPE_CHECKING:
    from collections.abc import Iterable

    from vfs._os.threads import Submits, Waitable

# 4 blocks of 2 MiB: a 1 GiB add in 1.25 s, against 1.5 s with 2 of 4 MiB. Single
# direct writes of 4 MiB ran faster than of 2 MiB (`dd oflag=direct` of 512 MiB, three
# runs each, other work running: 900-1000 MB/s against 570-920), but 4 blocks of 4 MiB
# raised the peak RSS of adding 1 GiB over DVC's (see vfs.worktree.ingest.REGIONS).
BLOCK = 2 << 20
ALIGN = 4096  # every block device's logical block size divides it
DEPTH = 4  # blocks per appender: one being filled, the others being written
GATHER = DEPTH  # blocks' worth of bytes a gathering appender writes in one system call
GATHER_PIECES = 64  # and pieces (blocks, parts of them, lent stretches) at most
KEEP = 4  # free blocks kept for the next appender
# Threads writing a gathering appender's pieces (ObjectStore's pack writers): with two,
# the disk has the next write while it finishes one, and one write's
# system-call work overlaps the other's transfer.
WRITE_DEPTH = 2

Consumer = Callable[[memoryview], object]
Piece = tuple["mmap.mmap | memoryview", int, int, "Task[None]"]  # see DirectAppender._queued


class _Pool:
    """Page-aligned anonymous blocks, reused so that their pages stay the process's."""

    def __init__(self) -> None:
        self._free: list[mmap.mmap] = []
        self._lock = threading.Lock()

    def take(self) -> mmap.mmap:
        with self._lock:
            if self._free:
                return self._free.pop()
        return mmap.mmap(-1, BLOCK)

    def give(self, block: mmap.mmap) -> None:
        with self._lock:
            if len(self._free) < KEEP:
                self._free.append(block)
                return
        with contextlib.suppress(BufferError):  # (a view still held: unmapped with it)
            block.close()


_pool = _Pool()


def set_direct(fd: int, on: bool) -> bool:
    """Turn ``O_DIRECT`` on or off for ``fd``; False if the filesystem refuses it."""
    flags = fcntl.fcntl(fd, fcntl.F_GETFL)
    want = flags | os.O_DIRECT if on else flags & ~os.O_DIRECT
    if want == flags:
        return True
    try:
        fcntl.fcntl(fd, fcntl.F_SETFL, want)
    except OSError:
        return False
    return True


def open_direct(path: str | bytes | os.PathLike[str], flags: int, mode: int = 0o777) -> int:
    """``path`` opened with ``flags | O_DIRECT``; -1 where its filesystem has no O_DIRECT.

    ``mode`` as for ``os.open`` (with ``O_CREAT``). Any other error of the open is
    raised as it is.
    """
    try:
        return os.open(path, flags | os.O_DIRECT, mode)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return -1


_FALLOCATE: list[Callable[[int, int, int, int], int] | None] = []  # libc's, once looked up


FALLOC_FL_KEEP_SIZE = 1


def _fallocate() -> Callable[[int, int, int, int], int] | None:
    """libc's ``fallocate`` (None where there is none), looked up once."""
    if not _FALLOCATE:
        import ctypes

        try:
            libc_fn = ctypes.CDLL(None, use_errno=True).fallocate
            libc_fn.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int64, ctypes.c_int64]
            libc_fn.restype = ctypes.c_int
            _FALLOCATE.append(libc_fn)
        except (OSError, AttributeError):
            _FALLOCATE.append(None)
    return _FALLOCATE[0]


def _call_fallocate(fd: int, mode: int, offset: int, length: int) -> bool:
    """``fallocate``; False where the filesystem or C library has none, OSError else."""
    fn = _fallocate()
    if fn is None:
        return False
    import ctypes

    while fn(fd, mode, offset, length) != 0:
        err = ctypes.get_errno()
        if err in (errno.EOPNOTSUPP, errno.ENOSYS, errno.EINVAL):
            return False
        if err != errno.EINTR:
            raise OSError(err, os.strerror(err))
    return True


def reserve_blocks(fd: int, offset: int, length: int) -> bool:
    """Give the file at ``fd`` the blocks of ``length`` bytes at ``offset`` now, its size
    unchanged (``fallocate`` with ``FALLOC_FL_KEEP_SIZE``): appends there then need no
    new block. OSError ENOSPC if the disk has not that room; False, having done
    nothing, where the filesystem has no such ``fallocate``."""
    return length > 0 and _call_fallocate(fd, FALLOC_FL_KEEP_SIZE, offset, length)


def pwrite_all(fd: int, data: bytes | memoryview, offset: int) -> None:
    """Write all of ``data`` at ``offset`` of ``fd`` (a write may take part of it)."""
    view = memoryview(data)
    while view:
        n = os.pwrite(fd, view, offset)
        view, offset = view[n:], offset + n


def _pwritev_all(fd: int, views: list[memoryview], offset: int) -> None:
    """Write ``views`` back to back at ``offset``: one system call unless one falls short."""
    while views:
        n = os.pwritev(fd, views, offset)
        offset += n
        while views and n >= len(views[0]):
            n -= len(views[0])
            views = views[1:]
        if views and n:
            views = [views[0][n:], *views[1:]]


class DirectAppender:
    """Appends to a new, empty file open for writing at ``fd`` (see the module doc).

    ``executor`` runs the writes: in order (one thread), or with ``gather`` on as many
    threads as it has, each piece's future done when its own write is. ``consumer`` is called with
    each stretch in file order: on ``consumer_executor`` (one thread), at the same time
    as the stretch is written, or else on ``executor`` after the write. Errors of a
    write or of the consumer surface in a later :meth:`write` or in :meth:`finish`.
    ``gather``: full blocks written by one system call at most (see the module doc;
    without a consumer only).
    """

    def __init__(
        self,
        fd: int,
        executor: Submits,
        consumer: Consumer | None = None,
        consumer_executor: Submits | None = None,
        gather: int = 1,
    ) -> None:
        self.fd = fd
        self.direct = set_direct(fd, True)
        self._executor = executor
        self._consumer = consumer
        self._consume_on = consumer_executor if consumer is not None else None
        self._gather = gather if consumer is None else 1
        # Pieces shipped to a gathering executor, not written yet: (buffer, length,
        # offset, the future set once it is written). Offsets only grow; pieces one
        # after the other go out in one write.
        self._queued: deque[Piece] = deque()
        self._queued_lock = threading.Lock()
        self._block: mmap.mmap | None = _pool.take()
        self._fill = 0  # bytes in the block
        self._shipped = 0  # bytes at the block's start already handed to the writer
        # File offset block[i] goes to, for i >= _shipped (a multiple of ALIGN): a lent
        # stretch written after block[:_shipped] moves the rest of the block past it.
        self._base = 0
        # Writes in flight and the block each writes (None: a lent stretch).
        self._flying: deque[tuple[list[Waitable[None]], mmap.mmap | None]] = deque()

    @property
    def size(self) -> int:
        """Bytes appended so far."""
        return self._base + self._fill

    def write(self, data: bytes | bytearray | memoryview) -> None:
        """Append ``data``; the caller may reuse its buffer as soon as this returns."""
        view = memoryview(data).cast("B")
        while view:
            block = self._current()
            n = min(len(view), BLOCK - self._fill)
            block[self._fill : self._fill + n] = view[:n]
            self._fill += n
            view = view[n:]
            if self._fill == BLOCK:
                self._ship(BLOCK, last=False)

    def lend(self, view: memoryview, phase: int) -> Waitable[None] | None:
        """Append ``view`` writing its whole pages from the caller's memory, uncopied.

        ``phase`` is where ``view`` starts within a page of its buffer (its address
        modulo ALIGN; the buffer is page-aligned). Zero bytes are appended first so that
        the file position has the same phase (fewer than ALIGN of them: the caller
        records where the stretch lands from :attr:`size` after the call, minus its
        length). Returns the future of the uncopied write: until it is done the caller
        must leave the memory unchanged. None: the stretch was copied like
        :meth:`write` (too short to gain, or an appender with a consumer).
        """
        view = view.cast("B")
        head = -phase % ALIGN
        if self._gather == 1 or len(view) < head + 2 * ALIGN:
            self.write(view)
            return None
        pad = (phase - self.size) % ALIGN
        if pad:
            self.write(bytes(pad))
        self.write(view[:head])  # now self.size is a multiple of ALIGN
        whole = (len(view) - head) // ALIGN * ALIGN
        middle = view[head : head + whole]
        block, fill, shipped = self._block, self._fill, self._shipped
        pieces: list[tuple[mmap.mmap | memoryview, int, int]] = []
        if block is not None and fill > shipped:  # goes out with the stretch: one write
            pieces.append((memoryview(block)[shipped:fill], fill - shipped, self._base + shipped))
        pieces.append((middle, whole, self._base + fill))
        futs = self._queue(pieces)
        # The block stays the one being filled: its next bytes follow the stretch. Were
        # it shipped with its few bytes, the next stretches would wait for blocks
        # (DEPTH) that hold a few pages each, under the store's lock.
        self._shipped = fill
        self._flying.append((futs, None))
        self._base += whole
        self.write(view[head + whole :])
        return futs[-1]

    def make_visible(self) -> None:
        """Make every byte appended so far readable from the file.

        The partial block is written through the page cache; the block stays, and its
        eventual direct write covers the same bytes again.
        """
        self._wait_all()
        start = self._shipped
        if self._fill > start and self._block is not None:
            set_direct(self.fd, False)
            try:
                view = memoryview(self._block)[start : self._fill]
                pwrite_all(self.fd, view, self._base + start)
            finally:
                if self.direct:
                    set_direct(self.fd, True)

    def finish(self) -> None:
        """Write what is left and wait for every write; ``fd`` is left without O_DIRECT."""
        self._wait_all()  # first: the last write turns O_DIRECT off for every thread
        self._ship(self._fill, last=True)
        self._wait_all()

    def abandon(self) -> None:
        """Wait for the writes in flight, ignoring their errors, and give the blocks back."""
        while self._flying:
            futs, block = self._flying.popleft()
            settled(futs)
            if block is not None:
                _pool.give(block)
        if self._block is not None:
            _pool.give(self._block)
            self._block = None
        with contextlib.suppress(OSError):
            set_direct(self.fd, False)

    # ------------------------------------------------------------------------------

    def _current(self) -> mmap.mmap:
        """The block being filled; at most DEPTH - 1 others are being written (the
        writes of lent stretches, which hold none, are not counted)."""
        while self._block is None:
            if sum(block is not None for _, block in self._flying) >= DEPTH - 1:
                futs, block = self._flying.popleft()
                failed = settled(futs)
                if failed is not None:
                    if block is not None:
                        _pool.give(block)
                    raise failed
                self._block = block
            else:
                self._block = _pool.take()
        return self._block

    def _ship(self, n: int, *, last: bool) -> None:
        """Hand the block's first ``n`` bytes to the writing thread (``n`` a multiple of
        ALIGN unless ``last``)."""
        block = self._current()
        start = self._shipped  # (0 unless stretches were lent: never with a consumer)
        futs: list[Waitable[None]]
        if self._gather > 1 and not last:
            piece = memoryview(block)[start:n] if start else block
            futs = self._queue([(piece, n - start, self._base + start)])
        else:
            futs = [self._executor.submit(self._put, block, self._base + start, start, n, last)]
        if self._consume_on is not None:
            futs.append(self._consume_on.submit(self._consume, block, n))
        self._flying.append((futs, block))
        self._block = None
        self._base += n
        self._fill = self._shipped = 0

    def _put(self, block: mmap.mmap, at: int, start: int, n: int, last: bool) -> None:
        """Runs on the executor: write ``block[start:n]`` at ``at``, then consume it."""
        view = memoryview(block)[start:n]
        try:
            size = n - start
            whole = size if not last else size - size % ALIGN
            if whole:
                self._write([view[:whole]], at)
            if last:
                if not set_direct(self.fd, False):
                    raise OSError("could not leave O_DIRECT")
                if whole < size:
                    pwrite_all(self.fd, view[whole:], at + whole)
            if self._consumer is not None and self._consume_on is None:
                self._consumer(view)
        finally:
            view.release()

    def _write(self, views: list[memoryview], offset: int) -> None:
        """Write ``views`` back to back at ``offset``: direct while the filesystem takes
        it; an alignment it refuses (EINVAL) turns this file to ordinary writes."""
        try:
            _pwritev_all(self.fd, views, offset)
        except OSError as exc:
            if exc.errno != errno.EINVAL or not self.direct:
                raise
            self.direct = False
            set_direct(self.fd, False)
            _pwritev_all(self.fd, views, offset)

    def _put_gathered(self) -> None:
        """Runs on the executor: write the pieces queued, until none is left.

        Each write takes the piece first in the queue and those queued right after it
        (up to ``gather`` blocks' worth of bytes in GATHER_PIECES pieces), then sets
        their futures. One call is submitted per :meth:`_queue` call, not per piece:
        a call that was submitted after a piece was queued either writes it or finds
        it taken by another call, so every piece is written. A call per piece woke a
        thread that mostly found the queue emptied already (1,416 of 1,705 calls when
        adding 1 GiB). With more than one thread in the executor, writes of different
        pieces run at the same time (the disk sees more than one request at a time),
        and each piece's future says when its own write ended.
        """
        while True:
            with self._queued_lock:
                if not self._queued:
                    return
                taken = [self._queued.popleft()]
                nbytes = taken[0][1]
                while self._queued and len(taken) < GATHER_PIECES:
                    _, n, at, _ = self._queued[0]
                    if at != taken[-1][2] + taken[-1][1] or nbytes + n > self._gather * BLOCK:
                        break
                    taken.append(self._queued.popleft())
                    nbytes += n
            views = [memoryview(buf)[:n] for buf, n, _, _ in taken]
            try:
                self._write(views, taken[0][2])
            except BaseException as exc:
                for *_, fut in taken:
                    fut.set_exception(exc)
            else:
                for *_, fut in taken:
                    fut.set_result(None)
            finally:
                for view in views:
                    view.release()

    def _queue(self, pieces: list[tuple[mmap.mmap | memoryview, int, int]]) -> list[Waitable[None]]:
        """Queue pieces (buffer, length, offset) for the gathering writer; their tasks."""
        tasks: list[Task[None]] = [Task() for _ in pieces]
        with self._queued_lock:
            self._queued.extend((*p, t) for p, t in zip(pieces, tasks, strict=True))
        self._executor.submit(self._put_gathered)
        return [*tasks]

    def _consume(self, block: mmap.mmap, n: int) -> None:
        """Runs on the consumer's executor: hand ``block[:n]`` to the consumer."""
        assert self._consumer is not None
        view = memoryview(block)[:n]
        try:
            self._consumer(view)
        finally:
            view.release()

    def _wait_all(self) -> None:
        while self._flying:
            futs, block = self._flying[0]
            failed = settled(futs)
            if failed is not None:
                self.abandon()
                raise failed
            self._flying.popleft()
            if block is not None:
                _pool.give(block)


def settled(futs: Iterable[Waitable[object]]) -> BaseException | None:
    """Wait for every future (all may use the same block); the first error, if any."""
    failed: BaseException | None = None
    for fut in futs:
        try:
            fut.result()
        except BaseException as exc:
            failed = failed or exc
    return failed


_local = threading.local()  # each thread's aligned buffer for direct reads


def _buffer(size: int) -> mmap.mmap:
    """This thread's page-aligned read buffer, at least ``size`` bytes (reused)."""
    buf: mmap.mmap | None = getattr(_local, "buf", None)
    if buf is None or len(buf) < size:
        if buf is not None:
            buf.close()
        buf = _local.buf = mmap.mmap(-1, max(size, 2 << 20))
    return buf


def _pwrite_in_place(fd: int, view: memoryview) -> bool:
    """Write ``view`` (whole pages) at offset 0 of ``fd`` (``O_DIRECT``) from its own
    memory; False, with nothing written, if the kernel refuses its alignment."""
    try:
        n = os.pwrite(fd, view, 0)
    except OSError as exc:
        if exc.errno != errno.EINVAL:
            raise
        return False
    pwrite_all(fd, view[n:], n)
    return True


def write_new(
    fd: int, data: bytes | bytearray | memoryview, *, opened_direct: bool = False
) -> None:
    """Write ``data`` at the start of the new, empty file at ``fd``, past the page cache.

    Its whole pages are copied into this thread's page-aligned buffer and written
    with ``O_DIRECT``; the last partial page, and everything where ``O_DIRECT`` is
    refused, through the page cache. ``fd`` is left without ``O_DIRECT``. A chunk
    cached by the mount daemon this way costs a copy into a buffer whose pages are
    the process's already, not a fresh page-cache page for every 4 KiB of it (see
    the module docstring: on this kind of machine filling 1 GiB of new page-cache
    pages took more CPU than fetching, verifying and serving the same bytes).

    ``opened_direct``: ``fd`` was opened with ``O_DIRECT`` (``open_direct``) and no
    other of the flags ``F_SETFL`` changes (``O_APPEND``, ``O_NONBLOCK``...), so
    the flag is neither read nor set before the whole pages, and is cleared with one
    ``fcntl`` before a partial last page only: the chunk cache writes each chunk
    this way, four system calls fewer per chunk, each a release and a retake of the
    GIL among the daemon's busy threads. Where it is on, ``fd`` may be left with it.

    A view (not ``bytes``, whose bytes never start at a page boundary) is first
    written from where it lies, without the copy: a chunk received into a buffer of
    ``vfs._os.heap.aligned_buffer`` is page-aligned. The kernel refuses a view that
    is not (EINVAL, before writing anything), and that one is copied as above.
    """
    view = memoryview(data).cast("B")
    whole = len(view) - len(view) % ALIGN
    direct = opened_direct
    if whole and (direct or set_direct(fd, True)):
        direct = True
        try:
            if not (isinstance(data, memoryview) and _pwrite_in_place(fd, view[:whole])):
                buf = _buffer(whole)
                with memoryview(buf) as aligned:
                    aligned[:whole] = view[:whole]
                    pwrite_all(fd, aligned[:whole], 0)
        except OSError as exc:
            if exc.errno != errno.EINVAL:
                raise
            whole = 0  # an alignment this filesystem refuses: all of it the ordinary way
    else:
        whole = 0
    if direct and (whole < len(view) or not opened_direct):
        if opened_direct:
            fcntl.fcntl(fd, fcntl.F_SETFL, 0)  # O_DIRECT was its only such flag
        else:
            set_direct(fd, False)
    pwrite_all(fd, view[whole:], whole)


def write_at(fd: int, data: bytes | bytearray | memoryview, offset: int, *, direct: bool) -> int:
    """Write ``data`` at ``offset`` (a multiple of ``ALIGN``), zeros after it up to the next
    page boundary; the bytes written (``data``'s length rounded up to whole pages).

    ``direct``: ``fd`` is open with ``O_DIRECT``. A page-aligned view's whole pages are
    written from where they lie and its last partial page, padded, from this thread's
    aligned buffer, both in one ``pwritev``: one direct write per chunk, not two (each
    extends the file, which costs the filesystem as much as a page of data); anything
    else goes through the aligned buffer whole. A filesystem without ``O_DIRECT``
    (``direct`` False) gets the same bytes the ordinary way. The chunk cache appends
    each chunk to a segment file this way, so that every chunk starts on a page and is
    read back with ``O_DIRECT`` too.
    """
    view = memoryview(data).cast("B")
    n = len(view)
    padded = -(-n // ALIGN) * ALIGN
    if not direct:
        pwrite_all(fd, view, offset)
        if padded > n:
            pwrite_all(fd, memoryview(bytes(padded - n)), offset + n)
        return padded
    whole = n - n % ALIGN
    if whole and isinstance(data, memoryview):
        with memoryview(_buffer(padded - whole)) as spare:
            parts = [view[:whole]]
            if padded > whole:  # the last partial page, padded with zeros
                tail = spare[: padded - whole]
                tail[: n - whole] = view[whole:]
                tail[n - whole :] = bytes(padded - n)
                parts.append(tail)
            try:
                done = os.pwritev(fd, parts, offset)
            except OSError as exc:
                if exc.errno != errno.EINVAL:
                    raise
                done = 0  # the kernel refused the view's alignment: copied below
            if done:
                done -= done % ALIGN  # a short direct write: on from a whole page
                starts = (0, whole)[: len(parts)]
                rest = [p[max(0, done - at) :] for p, at in zip(parts, starts, strict=True)]
                _pwritev_all(fd, [p for p in rest if p], offset + done)
                return padded
            for part in parts:  # (the tail holds the spare buffer, which _buffer may replace)
                part.release()
    buf = _buffer(padded)
    with memoryview(buf) as aligned:
        aligned[:n] = view
        aligned[n:padded] = bytes(padded - n)
        pwrite_all(fd, aligned[:padded], offset)
    return padded


def read_range(fd: int, offset: int, length: int) -> bytes | None:
    """``length`` bytes at ``offset`` of a file open with ``O_DIRECT`` at ``fd``.

    Read with :func:`read_range_into` into this thread's page-aligned buffer, and
    copied out. None if the filesystem refuses the alignment or the file is shorter.
    """
    buf = _buffer(length + 2 * ALIGN)
    view = read_range_into(fd, offset, length, buf)
    if view is None:
        return None
    with view:
        return bytes(view)


def read_range_view(fd: int, offset: int, length: int) -> memoryview | None:
    """:func:`read_range`, into a page-aligned buffer of their own from the C heap
    (``vfs._os.heap.aligned_buffer``), of which a view is returned, not a copy: for a
    reader that keeps the bytes a while, as the mount daemon keeps every chunk it
    reads from its cache (copied out of the thread's buffer, each cost one more pass
    over its bytes, with the GIL held)."""
    from vfs._os.heap import aligned_buffer  # (ctypes: not for every command's start)

    start = offset - offset % ALIGN
    end = -(-(offset + length) // ALIGN) * ALIGN
    return read_range_into(fd, offset, length, aligned_buffer(end - start))


def read_range_into(
    fd: int, offset: int, length: int, buf: mmap.mmap | memoryview
) -> memoryview | None:
    """``length`` bytes at ``offset`` of a file open with ``O_DIRECT`` at ``fd``, in ``buf``.

    The aligned stretch around them goes from the disk into the page-aligned ``buf``
    (as long as that stretch at least: ``length + 2 * ALIGN`` bytes will do), so no
    page cache is filled; the result is a view of ``buf``. None if the filesystem
    refuses the alignment or the file is shorter.
    """
    start = offset - offset % ALIGN
    end = -(-(offset + length) // ALIGN) * ALIGN
    view = memoryview(buf)
    try:
        got = os.preadv(fd, [view[: end - start]], start)
        if got < offset + length - start:
            view.release()
            return None
    except OSError as exc:
        view.release()
        if exc.errno == errno.EINVAL:
            return None
        raise
    return view[offset - start : offset - start + length]
