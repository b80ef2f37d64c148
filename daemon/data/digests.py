"""Files' digests, taken as their chunks are served in order.

A file of several chunks carries a digest, BLAKE3 of its whole bytes, which checking
each chunk against its own id does not check: a forged or damaged tree may name whole
chunks under a digest their bytes do not have. Each chunk a read serves is taken into
its file's digest if it is the next in order from the first, on a thread of its own
(``dvfs-digest``: BLAKE3 lets the GIL go; no chunk is read twice). The read that
serves the last chunk waits for the digest: if the bytes do not make it, that read
fails (EIO) and one line is logged naming the file; from then on every read of the
file fails (EIO, not logged again), in any open. A file of one chunk or none has
its digest checked when its tree is decoded (``vfs.model.codec``).

The state is kept per file content (its digest and chunks), not per open file: the
kernel keeps a file's pages across opens (``keep_cache``), so a second reader asks
the daemon only for the pages the first did not get, and the hashing goes on from
where the first left it. That holds for every open file and ``KEEP`` closed ones not
settled, the least recently used let go first; a file whose bytes were found false
is remembered among ``FALSE_KEEP``, one found true among ``TRUE_KEEP`` as a mark (32
bytes, BLAKE3 of its digest and chunks: no state, nothing to hash again, and no slot
of the ``KEEP`` taken, so files read whole do not push out those read in part). A
closed file's state let go when it had taken chunks but not the whole digest takes
the kernel's pages of that file with it (``pyfuse3.invalidate_inode`` of every inode it
was opened at, on a thread: the kernel may wait for reads under way of that inode,
which this thread serves), and the next open of that content waits for it: else a
reader would get the pages kept from a state that is gone, and the daemon would
check the rest against a state that never saw them. Where the kernel refuses to
drop an inode's pages (an error other than ENOENT, logged), the next open at that
inode is answered without ``keep_cache``, which has the kernel drop them itself.

Order: the kernel sends several reads of a sequential reader at once and their chunks
may arrive in any order, so a chunk served ahead of the next in order is held until
those before it are taken (if it starts within ``REORDER`` bytes of the next, within
``HOLD_BYTES`` for every file, and only while the file is open). The read serving the
last chunk waits for the digest while every chunk before it is taken, held, or being
read by a read under way; if one is neither (a reader that skipped it, or a read that
failed), it is served unchecked: random access, or any part of a file, cannot be
checked. A chunk served out of order and let go (not held, or held until its file was
closed) is read again when the frontier reaches it, if every chunk before the last was
served: the kernel keeps the pages it got, so a reader of the whole file after one of
a part of it may never ask for them again (``REREAD`` bytes a file at most; beyond,
served unchecked). For the same reason, when the last chunk was served before (a
reader of the file's end, then of the whole), the read that brings the digest to it,
or past it, settles the digest and fails if the bytes are false. A read waits for the
hashing thread when more than ``BEHIND_BYTES`` are queued for it.

Marks outlive the daemon: given a path (``<cache dir>/digests``, see
:class:`MarkFile`), the marks of the files found true are appended to it and read back
at the next start, so a file read whole once, its chunks cached, is read from the chunk
cache by the next mount without its digest taken again (each chunk is still checked
against its id). A mark is only ever matched, never trusted for what it says: it is
BLAKE3 of a content's digest and chunks, so damage to the file (a torn append, a flipped
byte, zeros after a crash) makes marks of nothing, and at worst a file is hashed again.

Test hooks: ``DVFS_TEST_DIGEST_KEEP=<n>`` (ASCII digits) keeps ``n`` closed states
instead of ``KEEP``; ``DVFS_TEST_DROP_FAILS=1`` fails every drop of pages (EIO).

Threading: everything here belongs to the trio thread but the hashing, which only
updates a file's hasher, in order (one thread for every file), and the appends to the
file of marks, queued on that same thread.
"""

from __future__ import annotations

import errno
import itertools
import logging
import os
import stat
from collections import Counter, OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import blake3
import pyfuse3
import trio

from vfs import ChunkRef, Entry, FormatError, false_digest, hasher, write_atomic

log = logging.getLogger(__name__)
KEEP = 1024
KEEP_ENV = "DVFS_TEST_DIGEST_KEEP"  # test hook: keep this many instead
DROP_FAILS_ENV = "DVFS_TEST_DROP_FAILS"  # test hook: "1" fails every drop of pages (EIO)
FALSE_KEEP = 65536
TRUE_KEEP = 65536  # about 10 MB of marks
MARKS_HEADER = b"dvfs digest marks 1\n".ljust(32, b"\0")
MARK_SIZE = 32
REORDER = 16 * 1024 * 1024
HOLD_BYTES = 64 * 1024 * 1024
BEHIND_BYTES = 64 * 1024 * 1024
REREAD = 64 * 1024 * 1024

_Key = tuple[bytes, tuple[ChunkRef, ...]]


class Digests:
    """The digest of every file being read, by content; the hashing thread."""

    def __init__(self, marks: Path | None = None) -> None:
        """``marks``: the file that keeps the marks of true files across mounts (None:
        they live as long as this object)."""
        hook = os.environ.get(KEEP_ENV, "")
        self.keep = int(hook) if hook.isascii() and hook.isdigit() else KEEP
        self._drop_fails = os.environ.get(DROP_FAILS_ENV) == "1"
        self._files: OrderedDict[_Key, FileDigest] = OrderedDict()  # closed, least recent first
        self._open: dict[_Key, FileDigest] = {}
        self._dropping: dict[_Key, trio.Event] = {}  # kernel pages being invalidated
        self._stale: set[int] = set()  # inodes whose pages could not be invalidated
        self._false: OrderedDict[_Key, None] = OrderedDict()
        self._true: OrderedDict[bytes, None] = OrderedDict()  # marks, see ``_mark``
        self._pool: ThreadPoolExecutor | None = None
        self._queued: deque[tuple[Future[object], int]] = deque()
        self._queued_bytes = 0
        self.held_bytes = 0  # chunks held by every file, waiting for those before them
        self._marks = MarkFile(marks) if marks is not None else None
        if self._marks is not None:
            self._true.update(dict.fromkeys(self._marks.load()))

    def of(self, entry: Entry) -> FileDigest | None:
        """The digest state of ``entry``'s content (None for fewer than two chunks)."""
        if len(entry.chunks) < 2:
            return None
        key = (entry.digest, entry.chunks)
        d = self._open.get(key) or self._files.get(key)
        if d is not None:
            if d.opens <= 0:
                self._files.move_to_end(key)
            return d
        known: bool | None = False if key in self._false else None
        if known is None and (mark := _mark(key)) in self._true:
            self._true.move_to_end(mark)
            known = True
        d = self._files[key] = FileDigest(self, entry, known)
        self._evict()
        return d

    async def ready(self, entry: Entry, ino: int) -> bool:
        """Return once the kernel holds no pages of ``entry``'s content kept from a
        state let go (call before opening it at the kernel's inode ``ino``, never in
        a read: the invalidation may wait for the reads under way of its inodes):
        whether the open may keep the kernel's pages of ``ino`` (``keep_cache``).
        False where they could not be dropped, once: that open, answered without
        ``keep_cache``, has the kernel drop them."""
        key = (entry.digest, entry.chunks)
        while (dropping := self._dropping.get(key)) is not None:
            await dropping.wait()
        if ino in self._stale:
            self._stale.discard(ino)
            return False
        return True

    def _opened(self, d: FileDigest) -> None:
        key = (d.digest, d.chunks)
        self._files.pop(key, None)
        self._open[key] = d

    def _closed(self, d: FileDigest) -> None:
        key = (d.digest, d.chunks)
        if self._open.get(key) is d:
            del self._open[key]
            if d.verdict is not True:  # (a true one's mark stays: ``found_true``)
                self._files[key] = d
                self._evict()

    def _evict(self) -> None:
        while len(self._files) > self.keep:
            key, old = self._files.popitem(last=False)
            old.drop_held()
            if old.inodes and old.verdict is not True and (old.next or old.served):
                done = self._dropping[key] = trio.Event()
                trio.lowlevel.spawn_system_task(self._drop_pages, key, old.inodes, done)

    async def _drop_pages(self, key: _Key, inodes: set[int], done: trio.Event) -> None:
        try:
            kept = await trio.to_thread.run_sync(
                _invalidate, inodes, self._drop_fails, abandon_on_cancel=True
            )
            self._stale.update(kept)
        except Exception:  # a system task must not raise: it would end the daemon
            log.exception("could not drop the kernel's pages of inodes %s", sorted(inodes))
            self._stale.update(inodes)
        finally:
            if self._dropping.get(key) is done:
                del self._dropping[key]
            done.set()

    def found_true(self, d: FileDigest) -> None:
        mark = _mark((d.digest, d.chunks))
        self._true[mark] = None
        while len(self._true) > TRUE_KEEP:
            self._true.popitem(last=False)
        if self._marks is not None:  # (on the hashing thread: never a disk wait here)
            keep = list(self._true) if self._marks.due() else None
            self._thread().submit(self._marks.add, mark, keep)

    def found_false(self, d: FileDigest) -> None:
        key = (d.digest, d.chunks)
        self._false[key] = None
        while len(self._false) > FALSE_KEEP:
            self._false.popitem(last=False)

    def close(self) -> None:
        """Wait for the hashing thread's work (the marks' appends among it), then close
        the file of marks (the daemon stops; blocking)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True)
            self._pool = None
        if self._marks is not None:
            self._marks.close()

    def _thread(self) -> ThreadPoolExecutor:
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, "dvfs-digest")
        return self._pool

    def submit(self, whole: blake3.blake3, data: bytes | memoryview) -> Future[object]:
        """Queue ``data`` for ``whole`` on the hashing thread (after what is queued)."""
        done: Future[object] = self._thread().submit(whole.update, data)
        self._queued.append((done, len(data)))
        self._queued_bytes += len(data)
        self._settled()
        return done

    def _settled(self) -> None:
        while self._queued and self._queued[0][0].done():
            _, size = self._queued.popleft()
            self._queued_bytes -= size

    async def keep_up(self) -> None:
        """Wait while more than ``BEHIND_BYTES`` are queued for the hashing thread."""
        while self._queued_bytes > BEHIND_BYTES:
            await trio.to_thread.run_sync(self._queued[0][0].result)
            self._settled()


class FileDigest:
    """One file content's digest, taken in order as its chunks are served."""

    def __init__(self, digests: Digests, entry: Entry, known: bool | None) -> None:
        self.digests = digests
        self.digest = entry.digest
        self.chunks: tuple[ChunkRef, ...] = entry.chunks
        self.starts = list(itertools.accumulate((c.size for c in self.chunks), initial=0))
        self.whole: blake3.blake3 | None = None if known is not None else hasher()
        self.next = 0  # chunks before it are taken into ``whole``
        self.last: Future[object] | None = None  # the last chunk queued for the thread
        self.held: dict[int, bytes | memoryview] = {}
        self.served: set[int] = set()  # chunks served past ``next``, neither taken nor held
        self.reread = 0  # bytes read again to take chunks served out of order
        self.reading: Counter[int] = Counter()  # chunk -> reads under way waiting for it
        self.opens = 0
        self.inodes: set[int] = set()  # the kernel's inodes it was opened at
        self.verdict: bool | None = known  # True: the bytes are the digest; False: not
        self._finishing = False
        self._tails = 0  # reads of the last chunk settling the digest
        self._changed = trio.Event()

    def refuse_if_false(self) -> None:
        """EIO (not logged again) if this file's bytes were found not to be its digest."""
        if self.verdict is False:
            raise pyfuse3.FUSEError(errno.EIO)

    def taking(self, indexes: Sequence[int], add: bool) -> None:
        """Count reads under way that wait for chunks ``indexes`` (``add``), or one less."""
        for i in indexes:
            self.reading[i] += 1 if add else -1
            if not self.reading[i]:
                del self.reading[i]
        if not add:
            self._poke()

    def take(self, i: int, data: bytes | memoryview) -> None:
        """Chunk ``i`` served: into the digest if it is the next, held if it is just ahead."""
        if self.whole is None or i < self.next:
            return
        if i > self.next:
            fits = self.digests.held_bytes + len(data) <= HOLD_BYTES
            if i not in self.held and fits and self.starts[i] - self.starts[self.next] < REORDER:
                self.held[i] = data
                self.digests.held_bytes += len(data)
                self.served.discard(i)
            elif i not in self.held:
                self.served.add(i)
            return
        self.last = self.digests.submit(self.whole, data)
        self.served.discard(i)
        self.next += 1
        while self.next in self.held:
            later = self.held.pop(self.next)
            self.digests.held_bytes -= len(later)
            self.last = self.digests.submit(self.whole, later)
            self.next += 1
        self._poke()

    def due(self, last: int) -> bool:
        """Whether a read whose chunks end at ``last`` settles the digest before it is
        served (:meth:`settle`): it serves the file's last chunk, or every chunk is
        taken, or all but the last, which was served before (the kernel keeps the
        pages it got, so it may never ask for that chunk again)."""
        n = len(self.chunks)
        if self.verdict is not None:
            return False
        if last == n - 1:
            return True
        # (while a read of the last chunk settles it, that read is the one to fail)
        taken = self.next == n or (self.next == n - 1 and n - 1 in self.served)
        return taken and not self._tails

    async def settle(
        self,
        last: bytes | memoryview | None,
        shown: Callable[[], str],
        again: Callable[[int], Awaitable[bytes | memoryview]],
    ) -> None:
        """Return once a read that is :meth:`due` may be served: the digest known
        true, or the file not read in order; FormatError naming ``shown()`` if the
        bytes are found false here, EIO if by another read. ``last`` is the bytes of
        the file's last chunk if the read serves it.

        A chunk served before out of order, and neither held nor read now, is read
        again (``again(i)``; ``REREAD`` bytes a file at most) when every chunk before
        the last was served: the kernel keeps its pages, so it may never ask again."""
        n = len(self.chunks)
        upto = n - 1 if last is not None else n  # the chunks that must have been served
        if last is None:
            await self._settle(None, upto, shown, again)
            return
        self._tails += 1
        try:
            await self._settle(last, upto, shown, again)
        finally:
            self._tails -= 1

    async def _settle(
        self,
        last: bytes | memoryview | None,
        upto: int,
        shown: Callable[[], str],
        again: Callable[[int], Awaitable[bytes | memoryview]],
    ) -> None:
        n = len(self.chunks)
        while True:
            self.refuse_if_false()
            if self.verdict:
                return
            if last is not None:
                self.take(n - 1, last)  # (again: it may not have been held)
            if self.next == n:
                if not self._finishing:
                    await self._finish(shown)
                    return
            elif not all(
                j in self.held or j in self.reading or j in self.served
                for j in range(self.next, upto)
            ):
                return  # a chunk was skipped: this read cannot be checked
            elif self.next in self.served and self.next not in self.reading:
                i = self.next
                if self.reread + self.chunks[i].size > REREAD:
                    return
                self.reread += self.chunks[i].size
                self.take(i, await again(i))
                continue
            changed = self._changed
            await changed.wait()

    async def _finish(self, shown: Callable[[], str]) -> None:
        assert self.whole is not None and self.last is not None
        self._finishing = True
        try:
            await trio.to_thread.run_sync(self.last.result)
        finally:
            self._finishing = False
        got, self.whole = self.whole.digest(), None
        self.verdict = got == self.digest
        self.drop_held()
        self._poke()
        if self.verdict:
            self.digests.found_true(self)
        else:
            self.digests.found_false(self)
            raise FormatError(
                f"{false_digest(shown(), got, self.digest, 'its')}: its reads fail from now on"
            )

    def opened(self, ino: int | None) -> None:
        """One more open file of it, at the kernel's inode ``ino`` (None: a reader
        of the daemon's own, whose bytes the kernel does not keep)."""
        self.opens += 1
        if ino is not None:
            self.inodes.add(ino)
        if self.opens == 1:
            self.digests._opened(self)

    def closed(self) -> None:
        """One open file of it less; with none left, the chunks held are let go."""
        self.opens -= 1
        if self.opens <= 0:
            self.drop_held()
            self.digests._closed(self)

    def drop_held(self) -> None:
        self.digests.held_bytes -= sum(len(d) for d in self.held.values())
        self.served.update(self.held)
        self.held.clear()

    def _poke(self) -> None:
        self._changed.set()
        self._changed = trio.Event()


class MarkFile:
    """The marks of true files, kept in a file across mounts (blocking calls: loaded
    before the daemon serves, appended to on the hashing thread).

    Layout: ``MARKS_HEADER`` (32 bytes), then marks of 32 bytes, appended as files are
    found true. Appends are not synced: a crash may lose the last ones, or leave
    zeros, neither of which matches a file. At start-up the last ``TRUE_KEEP`` marks
    are read; the file is written anew (atomically) when it holds a torn tail, another
    header, or twice that many, and in place of anything but a regular file (a link is
    replaced, never followed). A missing one is made by the first append, on the
    hashing thread: a mount starts without a write. One daemon uses a cache directory
    at a time (its lock), so one writes it. A write that fails (a full disk, a
    directory at the name) is logged once and the marks then live in memory only.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._fd = -1
        self._count = 0  # marks in the file
        self._broken = False
        self._missing = False  # no file yet: the first add makes it

    def load(self) -> list[bytes]:
        """The marks the file holds, oldest first (the last ``TRUE_KEEP``); it is made
        ready for appends, written anew if it must be."""
        marks: list[bytes] = []
        whole = False
        count = 0  # marks in the file
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
        except FileNotFoundError:
            self._missing = True
            return []
        except OSError as exc:  # a link, say: replaced by the file written anew below
            log.warning("digest marks %s not read (%s)", self.path, exc.strerror or exc)
            fd = -1
        if fd >= 0:
            try:
                st = os.fstat(fd)
                size = st.st_size - len(MARKS_HEADER)
                if stat.S_ISREG(st.st_mode) and os.pread(fd, len(MARKS_HEADER), 0) == MARKS_HEADER:
                    count = size // MARK_SIZE
                    skip = max(0, count - TRUE_KEEP)
                    at = len(MARKS_HEADER) + skip * MARK_SIZE
                    data = os.pread(fd, (count - skip) * MARK_SIZE, at)
                    got = len(data) // MARK_SIZE
                    marks = [data[i * MARK_SIZE : (i + 1) * MARK_SIZE] for i in range(got)]
                    whole = size % MARK_SIZE == 0 and got == count - skip
                    whole = whole and count <= 2 * TRUE_KEEP
            except OSError as exc:
                log.warning("digest marks %s not read (%s)", self.path, exc.strerror or exc)
                marks = []
            finally:
                os.close(fd)
        if whole:
            self._count = count
            self._open()
        else:
            self._rewrite(marks)
        return marks

    def due(self) -> bool:
        """Whether the next :meth:`add` should write the file anew (or make it)."""
        return self._missing or self._count >= 2 * TRUE_KEEP

    def add(self, mark: bytes, marks: Iterable[bytes] | None) -> None:
        """Append ``mark``; or, given ``marks`` (those kept in memory, ``mark`` among
        them) once :meth:`due`, write the file anew with them instead."""
        if self._broken:
            return
        if marks is not None and self.due():
            self._rewrite(list(marks))
            return
        try:
            if os.write(self._fd, mark) != MARK_SIZE:
                raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
            self._count += 1
        except OSError as exc:
            self._give_up(exc)

    def _rewrite(self, marks: list[bytes]) -> None:
        self.close()
        try:
            write_atomic(self.path, [MARKS_HEADER, *marks], mode=0o600)
        except Exception as exc:  # a DvfsError for a full disk, an OSError for a directory
            self._give_up(exc)
            return
        self._count = len(marks)
        self._missing = False
        self._open()

    def _open(self) -> None:
        try:
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_NOFOLLOW | os.O_CLOEXEC)
        except OSError as exc:
            self._give_up(exc)

    def _give_up(self, exc: Exception) -> None:
        why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        log.warning("digest marks not kept in %s (%s): files found true are hashed again "
                    "at the next mount", self.path, why)  # fmt: skip
        self._broken = True
        self.close()

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


def _mark(key: _Key) -> bytes:
    """What remembers a content found true: BLAKE3 of its digest and chunks."""
    h = hasher()
    h.update(key[0])
    for c in key[1]:
        h.update(c.oid + c.size.to_bytes(8, "little"))
    return h.digest()


def _invalidate(inodes: set[int], fail: bool = False) -> set[int]:
    """Make the kernel drop its pages of ``inodes`` (blocking); those it did not drop
    (``fail``: every one, EIO, the test hook ``DROP_FAILS_ENV``)."""
    kept = set()
    for ino in inodes:
        try:
            if fail:
                raise OSError(errno.EIO, os.strerror(errno.EIO))
            pyfuse3.invalidate_inode(ino)
        except OSError as exc:  # ENOENT: the kernel forgot it, and its pages
            if exc.errno != errno.ENOENT:
                kept.add(ino)
                log.warning(
                    "could not drop the kernel's pages of inode %d (%s): its next open drops them",
                    ino,
                    exc,
                )
    return kept
