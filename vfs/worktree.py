"""Reading and writing the working tree: scanning, hashing into chunks, restoring.

Threading: :class:`Workers` owns the pools. Small files (one chunk) are hashed,
compressed and stored whole in batches by the ``chunks`` pool (one thread per core).
A large file is read once by the calling thread, in a few recycled blocks that it
cuts, while the ``chunks`` pool hashes, compresses and stores its chunks and the
one-thread ``digest`` pool hashes the whole content in order, so memory stays
bounded whatever the file size. Restoring files uses the calling thread, a forked
helper and the ``restore_large`` pool (see :func:`restore_many`). No task waits for
another task, so the pools cannot deadlock.

Paths: inside the repository every path is bytes, relative to the root, with ``/``
separators (``vfs.stage`` checks them). Nothing here follows a symbolic link, nor
reaches a path through one: every path is resolved from the root one directory at a
time by a :class:`~vfs._os.beneath.Walker`, links are read with ``readlinkat`` and stored
as links, files are opened with ``O_NOFOLLOW`` (and ``O_NONBLOCK``: a FIFO never
blocks a scan), and a link where a directory should be is the user's, replaced only
when the caller allows it, never written through.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import select
import stat as statmod
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from vfs._os.beneath import ABSENT, LIST, READ, Walker, listing
from vfs._os.direct_io import ALIGN, DirectAppender
from vfs._os.helper_process import Channel, Helper, Tickets, spare_cpus
from vfs.chunking import Chunker
from vfs.codec import PERM_BITS, ChunkRef, Entry, Kind
from vfs.durable import TMP_PREFIX, is_tmp_leaf, storage_error, tmp_leaf
from vfs.errors import DvfsError, FileChanged, FileUnreadable, ObjectError, UsageError
from vfs.ids import hash_bytes, hasher
from vfs.names import MAX_DEPTH, VERSIONS_DIR, any_reserved, is_reserved, is_reserved_at_root
from vfs.objects import ObjectStore, ObjKind
from vfs.stage import Staged, staged_from_entry, staged_with_stat

if TYPE_CHECKING:  # imported when a pool is first made: a clean `status` makes none
    from concurrent.futures import Future, ThreadPoolExecutor

SKIP_DIRS = frozenset({b".dvfs", b".git"})  # never listed nor entered, whatever they are
READ_RETRIES = 3
BLOCK_BYTES = 8 << 20  # a large file is read in blocks of this size (at least)
BLOCKS = 2  # blocks of a large file in flight
BATCH_FILES = 64  # small files hashed per task
BATCH_BYTES = 4 << 20  # and at most about this many bytes of them
RESTORE_BATCH_BYTES = 16 << 20  # files of one directory restored per claim
RESTORE_SPLIT = 2048  # small files to restore: past this, a helper process shares them
WRITE_DIRECT = 8 << 20  # files this large are restored past the page cache (vfs._os.direct_io)
READ_AHEAD = 2  # chunks of such a file read ahead while the current one is written
_TMP_PREFIX = TMP_PREFIX.encode()
_OTHERS_TMP = _TMP_PREFIX + b"dvfs-"  # temporaries with owners of their own (remove_temporaries)
Warn = Callable[[str], None]
Pending = tuple[bytes, ObjKind, bytes]  # a chunk to store: id, kind, bytes


def show(path: bytes) -> str:
    """A repository path as text for messages (undecodable bytes escaped)."""
    return os.fsdecode(path) if path else "."


class Progress(Protocol):
    """Where long operations report how far they are (called from one thread)."""

    def start(self, label: str, files: int, nbytes: int, unit: str = "files") -> None:
        """A phase begins with this much work: ``files`` things counted as ``unit``."""

    def advance(self, files: int, nbytes: int) -> None:
        """This much more is done."""

    def done(self) -> None:
        """The phase is over."""


class NoProgress:
    """Reports nothing."""

    def start(self, label: str, files: int, nbytes: int, unit: str = "files") -> None:
        """Ignore."""

    def advance(self, files: int, nbytes: int) -> None:
        """Ignore."""

    def done(self) -> None:
        """Ignore."""


class Workers:
    """The thread pools used for hashing, storing and restoring files, and progress.

    Each pool is made when first used: a clean ``status`` uses none.
    """

    def __init__(self, threads: int | None = None, progress: Progress | None = None) -> None:
        self.threads = threads or max(2, os.cpu_count() or 2)
        self.progress: Progress = progress or NoProgress()
        self._pools: dict[str, ThreadPoolExecutor] = {}
        self._lock = threading.Lock()

    def _pool(self, name: str, threads: int) -> ThreadPoolExecutor:
        pool = self._pools.get(name)
        if pool is None:
            with self._lock:  # file threads may ask for `chunks` at the same moment
                pool = self._pools.get(name)
                if pool is None:
                    from concurrent.futures import ThreadPoolExecutor

                    pool = ThreadPoolExecutor(threads, thread_name_prefix=f"dvfs-{name}")
                    self._pools[name] = pool
        return pool

    @property
    def files(self) -> ThreadPoolExecutor:
        """Objects verified in parallel (``dvfs fsck``)."""
        return self._pool("file", self.threads * 2)

    @property
    def chunks(self) -> ThreadPoolExecutor:
        """Chunks of large files."""
        return self._pool("chunk", self.threads)

    @property
    def digest(self) -> ThreadPoolExecutor:
        """One thread, so whole-file digests are updated in order, beside the chunk work."""
        return self._pool("digest", 1)

    @property
    def deletes(self) -> ThreadPoolExecutor:
        """Files unlinked in parallel (see :func:`remove_many`)."""
        return self._pool("delete", DELETE_THREADS)

    @property
    def restore_large(self) -> ThreadPoolExecutor:
        """One thread restoring large files, beside the small ones (see :func:`restore_many`)."""
        return self._pool("restore-large", 1)

    def close(self) -> None:
        """Stop the pools made (pending work is finished first)."""
        with self._lock:
            pools = list(self._pools.values())
        for pool in pools:
            pool.shutdown()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Found(NamedTuple):
    """A path found in the working tree with its lstat."""

    rel: bytes
    st: os.stat_result


def _store_chunk(store: ObjectStore | None, data: bytes | memoryview) -> ChunkRef:
    oid = hash_bytes(data)
    if store is not None:
        store.put(ObjKind.CHUNK, data, oid)
    return ChunkRef(oid, len(data))


class Hasher:
    """Turns working-tree files into staged records, storing their chunks if asked."""

    def __init__(
        self, root: Path, chunker: Chunker, store: ObjectStore | None, workers: Workers
    ) -> None:
        self.root = root
        self.chunker = chunker
        self.store = store
        self.workers = workers
        self.bytes_read = 0

    def _read_file(self, rel: bytes, walker: Walker, sink: list[Pending] | None = None) -> Staged:
        for _ in range(READ_RETRIES):
            try:
                dir_fd, leaf = walker.parent(rel)
                fd = os.open(leaf, READ, dir_fd=dir_fd)
            except PermissionError:
                raise FileUnreadable(f"cannot read {show(rel)}: permission denied") from None
            except OSError as exc:
                if exc.errno in ABSENT:  # gone, or it or a directory above is now a link
                    raise FileChanged(f"{show(rel)} changed while it was read") from None
                raise
            try:
                before = os.fstat(fd)
                if not statmod.S_ISREG(before.st_mode):  # a FIFO, say: opened without waiting
                    raise FileChanged(f"{show(rel)} changed type while it was read")
                if before.st_size <= self.chunker.params.min_size:
                    digest, chunks, total = self._read_small(fd, before.st_size, sink)
                else:
                    digest, chunks, total = self._read_large(fd)
                after = os.fstat(fd)
            except OSError as exc:
                if exc.errno == errno.EIO:
                    raise FileUnreadable(f"cannot read {show(rel)}: input/output error") from None
                raise
            finally:
                os.close(fd)
            self.bytes_read += total
            stable = (
                total == after.st_size
                and before.st_size == after.st_size
                and before.st_mtime_ns == after.st_mtime_ns
                and before.st_ctime_ns == after.st_ctime_ns
            )
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
        self, fd: int, size: int, sink: list[Pending] | None
    ) -> tuple[bytes, list[ChunkRef], int]:
        """Read a file expected to be one chunk with plain reads (no file object)."""
        want = size + 1  # one byte more than expected, to notice growth
        data = os.read(fd, want)
        # All of it read: no second read to see the end (the fstat after the read
        # notices a file that grew, as it notices one that changed).
        while 0 < len(data) < size:
            more = os.read(fd, want - len(data))
            if not more:
                break
            data += more
        if len(data) > self.chunker.params.min_size:  # grew meanwhile: cut it properly
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

    def _read_large(self, fd: int) -> tuple[bytes, list[ChunkRef], int]:
        """Read, cut, hash and store a large file, with the work spread over the pools.

        The file is read into a few recycled blocks (:meth:`Chunker.blocks`) and each
        chunk is hashed and stored straight from its block: no copy per chunk and no
        fresh memory per chunk (page faults on fresh memory cost as much as hashing).
        The whole-file digest is updated block by block in the one ``digest`` thread.
        """
        whole = hasher()
        size = max(BLOCK_BYTES, 2 * self.chunker.params.max_size)
        inflight: deque[tuple[bytearray, list[Future[ChunkRef]], Future[Any]]] = deque()
        refs: list[ChunkRef] = []
        made = 0
        total = 0

        def settle() -> bytearray:
            block, chunks, upd = inflight[0]
            done = [f.result() for f in chunks]
            upd.result()
            inflight.popleft()  # only now: on failure, the rest is waited for below
            refs.extend(done)
            return block

        def take() -> bytearray:
            nonlocal made
            if made < BLOCKS:
                made += 1
                return bytearray(size)
            return settle()

        def readinto(view: memoryview) -> int:
            return os.readv(fd, [view])

        progress = self.workers.progress
        try:
            for block, ends in self.chunker.blocks(readinto, take):
                view = memoryview(block)
                futs: list[Future[ChunkRef]] = []
                start = 0
                pool = self.workers.chunks
                for end in ends:
                    futs.append(pool.submit(_store_chunk, self.store, view[start:end]))
                    progress.advance(0, end - start)
                    start = end
                total += start
                upd = self.workers.digest.submit(whole.update, view[:start])
                inflight.append((block, futs, upd))
            while inflight:
                settle()
        finally:
            for _, chunks, upd in inflight:  # on failure: let running work end before we do
                waits: list[Future[Any]] = [*chunks, upd]
                for fut in waits:
                    if not fut.cancel():
                        with contextlib.suppress(Exception):
                            fut.result()
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
            return self._read_file(found.rel, walker, sink)
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
        """
        out: list[Staged | None] = []
        sink: list[Pending] = []
        held = 0
        with Walker(self.root) as walker:
            for f in batch:
                try:
                    out.append(self.stage_one(f, sink, walker))
                except (FileUnreadable, FileChanged) as exc:
                    if failed is None:
                        raise
                    failed[f.rel] = exc
                    out.append(None)
                held += f.st.st_size
                if held >= BATCH_BYTES and self.store is not None:
                    self.store.put_many(sink)
                    sink.clear()
                    held = 0
        if sink and self.store is not None:
            self.store.put_many(sink)
        return out

    def stage_many(
        self, items: Iterable[Found], failed: dict[bytes, DvfsError] | None = None
    ) -> Iterator[tuple[bytes, Staged]]:
        """Hash many paths in parallel; yields (path, staged) as each finishes.

        The first failure is raised after the remaining work is cancelled; with
        ``failed``, files that cannot be read or kept changing are put there instead,
        and the others hashed.
        """
        small: list[Found] = []
        large: list[Found] = []
        for f in items:
            big = statmod.S_ISREG(f.st.st_mode) and f.st.st_size > self.chunker.params.min_size
            (large if big else small).append(f)
        progress = self.workers.progress
        if small or large:
            total = sum(f.st.st_size for f in small) + sum(f.st.st_size for f in large)
            progress.start("hashing", len(small) + len(large), total)
        batches = _batches(small)
        # One thread per core: with more, they spent their time handing the GIL to
        # each other (twice the context switches, a third more wall time for 20,000
        # small files). The ``chunks`` pool has that size; its tasks never wait.
        pool = self.workers.chunks
        window = 2 * self.workers.threads
        futures: deque[tuple[list[Found], Future[list[Staged | None]]]] = deque()
        try:
            for batch in batches:  # small files start while the large ones are read
                futures.append((batch, pool.submit(self.stage_batch, batch, failed)))
                if len(futures) >= window:
                    break
            for f in large:
                try:
                    staged = self.stage_one(f)
                except (FileUnreadable, FileChanged) as exc:
                    if failed is None:
                        raise
                    failed[f.rel] = exc
                else:
                    yield f.rel, staged
                progress.advance(1, 0)
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
            if small or large:
                progress.done()


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


class Listing(NamedTuple):
    """What one directory holds, as repository paths."""

    files: list[Found]  # regular files and links, with their lstat
    subdirs: list[bytes]
    odd: list[bytes]  # FIFOs, sockets, devices
    reserved: list[bytes]  # names dvfs never stores (see :func:`reserved_in`)


def list_dir(walker: Walker, d: bytes) -> Listing:
    """One directory's entries, by kind; nothing if ``d`` is gone or not a directory now.

    ``.git`` and ``.dvfs`` themselves (git's and dvfs's own) are left out, whatever
    they are; the other names dvfs never stores are listed apart, in ``reserved``.
    """
    try:
        fd = walker.dir(d, listable=True)  # (held by the walker)
    except PermissionError:
        raise FileUnreadable(f"cannot read directory {show(d)}: permission denied") from None
    except OSError as exc:
        if exc.errno in ABSENT:  # removed, or replaced by a link: nothing of ours is there
            return Listing([], [], [], [])
        raise
    prefix = d + b"/" if d else b""
    files: list[Found] = []
    subdirs: list[bytes] = []
    odd: list[bytes] = []
    names: list[bytes] = []
    is_reg, is_link, new, lstat = statmod.S_ISREG, statmod.S_ISLNK, tuple.__new__, os.stat
    encode = os.fsencode
    # Each lstat is an fstatat of a bare name in the directory's descriptor, rather
    # than a walk of the whole path again: a sixth less time for 20,000 files.
    it, raw = listing(fd)
    with it:
        for de in it:
            name = de.name if raw else encode(de.name)
            names.append(name)
            if de.is_dir(follow_symlinks=False):
                if name not in SKIP_DIRS:
                    subdirs.append(prefix + name)
                continue
            if name.startswith(_TMP_PREFIX):
                continue
            try:
                est = lstat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:  # removed since it was listed
                continue
            mode = est.st_mode
            if is_reg(mode) or is_link(mode):
                files.append(new(Found, (prefix + name, est)))  # (NamedTuple's __new__ is slow)
            else:
                odd.append(prefix + name)
    if any_reserved(names) is None and (d or VERSIONS_DIR not in names):  # (one pass)
        return Listing(files, subdirs, odd, [])
    gone = {prefix + n for n in reserved_in(names, at_root=not d)}
    skip = gone | {prefix + n for n in SKIP_DIRS}  # git's and dvfs's own, whatever they are
    return Listing(
        [f for f in files if f.rel not in skip],
        [p for p in subdirs if p not in skip],
        [p for p in odd if p not in skip],
        sorted(gone),
    )


def reserved_in(names: list[bytes], *, at_root: bool) -> list[bytes]:
    """The names among ``names`` that dvfs never stores, but ``.git`` and ``.dvfs`` themselves.

    Those are the lookalikes of ``.git`` and ``.dvfs`` (``vfs.names``), and ``.versions``
    at the root. One screening pass over all the names; a full check only on a hit.
    """
    if any_reserved(names) is None and not (at_root and VERSIONS_DIR in names):
        return []
    check = is_reserved_at_root if at_root else is_reserved
    return [n for n in names if n not in SKIP_DIRS and check(n)]


def odd_warning(path: bytes) -> str:
    """The warning for a path that is not a regular file, directory or link."""
    return f"skipping {show(path)}: not a regular file, directory or link"


def reserved_message(path: bytes) -> str:
    """Why a path with a reserved name is never stored."""
    name = path.rpartition(b"/")[2]
    what = "the mount's list of versions" if name == VERSIONS_DIR else "git's and dvfs's own"
    return f"{show(path)}: dvfs never stores the name {show(name)} ({what})"


def too_deep_message(path: bytes) -> str:
    """Why a directory nested too deeply is never stored."""
    return f"{show(path)[:200]}...: nested more than {MAX_DEPTH} directories deep"


def scan(
    root: Path,
    rel: bytes,
    warn: Warn,
    *,
    strict: bool = False,
    skipped: list[bytes] | None = None,
    enter: Callable[[bytes], bool] | None = None,
) -> Iterator[Found]:
    """Every file and symlink at or below ``rel``, depth first (nothing if ``rel`` is gone).

    ``enter``, if given, says which subdirectories to go into (``vfs.ignore`` leaves
    ignored ones out).

    FIFOs, sockets and devices are skipped with a warning; ``.dvfs`` and ``.git`` are
    never entered. Other names dvfs never stores (:func:`reserved_in`), and
    directories more than MAX_DEPTH deep, are skipped with a warning, or refused with
    a UsageError if ``strict``. Links are never followed, not even one that replaced a
    directory while it was being scanned (see ``vfs._os.beneath``). A directory that
    cannot be read raises FileUnreadable; with ``skipped``, it gets a warning and is
    added there instead.
    """

    with Walker(root) as walker:
        st = walker.lstat(rel)
        if st is None:
            return
        if not statmod.S_ISDIR(st.st_mode):
            if statmod.S_ISREG(st.st_mode) or statmod.S_ISLNK(st.st_mode):
                yield Found(rel, st)
            else:
                warn(odd_warning(rel))
            return
        stack = [rel]
        while stack:
            listing = list_dir_or_skip(walker, stack.pop(), warn, skipped)
            yield from listing.files
            subdirs = enterable(listing, warn, strict=strict)
            stack += subdirs if enter is None else [d for d in subdirs if enter(d)]


def list_dir_or_skip(walker: Walker, d: bytes, warn: Warn, skipped: list[bytes] | None) -> Listing:
    """:func:`list_dir`; with ``skipped``, an unreadable directory is warned of, added
    there, and listed as empty."""
    try:
        return list_dir(walker, d)
    except FileUnreadable as exc:
        if skipped is None:
            raise
        warn(f"{exc} (what it holds is left out)")
        skipped.append(d)
        return Listing([], [], [], [])


def enterable(listing: Listing, warn: Warn, *, strict: bool = False) -> list[bytes]:
    """The subdirectories of a listing to scan, after a warning for what is skipped.

    Reserved names and directories nested deeper than MAX_DEPTH are refused with a
    UsageError instead if ``strict`` (see :func:`scan`).
    """

    def refuse(message: str) -> None:
        if strict:
            raise UsageError(f"cannot add {message}; nothing was staged")
        warn(f"skipping {message}")

    for p in listing.reserved:
        refuse(reserved_message(p))
    for p in listing.odd:
        warn(odd_warning(p))
    subdirs = listing.subdirs
    if subdirs and subdirs[0].count(b"/") >= MAX_DEPTH:  # (all at the same depth)
        for p in subdirs:
            refuse(too_deep_message(p))
        return []
    return subdirs


def lstat_or_none(root: Path, rel: bytes) -> os.stat_result | None:
    """lstat of a repository path; None if it is missing or below a non-directory.

    For many paths, use :meth:`Walker.lstat` of one walker instead.
    """
    with Walker(root) as walker:
        return walker.lstat(rel)


Replace = Callable[[bytes], bool]


def ensure_dir(walker: Walker, rel_dir: bytes, replace: Replace) -> int:
    """A descriptor of directory ``rel_dir``, made where missing (see :meth:`Walker.dir`).

    A file or link in the way is removed if ``replace(path)`` says so (a link itself:
    what it points to is never touched), else UsageError.
    """
    try:
        return walker.dir(rel_dir)
    except OSError as exc:
        if exc.errno not in ABSENT:
            raise
    cur = b""
    for part in rel_dir.split(b"/"):
        parent_fd = walker.dir(cur)
        cur = cur + b"/" + part if cur else part
        try:
            walker.dir(cur)
            continue
        except OSError as exc:
            if exc.errno not in ABSENT:
                raise
        try:
            st: os.stat_result | None = os.stat(part, dir_fd=parent_fd, follow_symlinks=False)
        except FileNotFoundError:
            st = None
        if st is not None and not statmod.S_ISDIR(st.st_mode):
            if not replace(cur):
                what = "a symbolic link" if statmod.S_ISLNK(st.st_mode) else "an untracked file"
                raise UsageError(
                    f"{show(cur)} is {what} where the version has a directory: "
                    "move it away, or use --force to replace it"
                )
            # Several restore threads or processes may get here for the same one at once.
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(part, dir_fd=walker.dir(cur.rpartition(b"/")[0]))
        with contextlib.suppress(FileExistsError):
            os.mkdir(part, dir_fd=walker.dir(cur.rpartition(b"/")[0]))
        try:
            walker.dir(cur)
        except OSError as exc:
            if exc.errno not in ABSENT:
                raise
            raise UsageError(
                f"{show(cur)} changed while it was being restored: try again"
            ) from None
    return walker.dir(rel_dir)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_entry(
    walker: Walker, rel: bytes, entry: Entry, store: ObjectStore, replace: Replace
) -> os.stat_result:
    """Restore one file or link from the store, atomically; return its new lstat.

    The file is created with the entry's permission bits (``PERM_BITS``: never
    setuid, setgid or sticky), less those the umask removes, as git does. Whatever
    stands at ``rel`` is replaced, never written through (the new file is renamed
    over it); a directory there, or a non-directory where a directory is needed on
    the way, only if ``replace(path)`` says so.
    """
    parent, _, leaf = rel.rpartition(b"/")
    dir_fd = ensure_dir(walker, parent, replace)
    tmp = tmp_leaf(leaf)
    fd = -1
    try:
        if entry.kind == Kind.SYMLINK:
            os.symlink(entry.target, tmp, dir_fd=dir_fd)
            os.utime(tmp, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
        else:
            fd = os.open(tmp, _CREATE, entry.mode & PERM_BITS, dir_fd=dir_fd)
            if entry.size >= WRITE_DIRECT:
                _write_direct(fd, entry, store)
            else:
                for c in entry.chunks:
                    view = memoryview(store.get(c.oid))
                    while view:
                        view = view[os.write(fd, view) :]
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
        try:
            os.replace(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except IsADirectoryError:
            if not replace(rel):
                raise UsageError(
                    f"{show(rel)} is a directory with untracked files where the version has "
                    "a file: move it away, or use --force to replace it"
                ) from None
            remove_tree(walker, rel)
            dir_fd = walker.dir(parent)
            os.replace(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        # The rename changed the ctime: stat after it, so the index records the final one.
        return os.fstat(fd) if fd >= 0 else os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=walker.dir(parent))
        if isinstance(exc, OSError) and not isinstance(exc, DvfsError):
            raise storage_error(exc, show(rel)) from exc
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def _write_direct(fd: int, entry: Entry, store: ObjectStore) -> None:
    """Write a large file's chunks past the page cache, reading the next ones meanwhile.

    See ``vfs._os.direct_io``: a restored file is not read back by us, and the pages a
    buffered write takes are costly on some machines. A reader thread reads and
    verifies up to READ_AHEAD chunks ahead, into buffers of its own that are reused,
    while this thread copies each into the file's blocks: the reads wait for the
    disk, and need not wait for the copy and the writes too. The buffers are sized
    for this file's largest chunk, so memory stays bounded (peak RSS restoring 1 GiB
    alone: 77 MB, against 81 MB reading one chunk at a time into new bytes).
    """
    import mmap
    from concurrent.futures import ThreadPoolExecutor

    room = max(c.size for c in entry.chunks) + 2 * ALIGN
    slots = [mmap.mmap(-1, room) for _ in range(READ_AHEAD + 1)]
    ahead: deque[Future[bytes | memoryview]] = deque()
    with (
        ThreadPoolExecutor(1, "dvfs-restore") as thread,
        ThreadPoolExecutor(1, "dvfs-read") as reader,
    ):
        out = DirectAppender(fd, thread)
        try:
            # Chunk i goes into slot i % (READ_AHEAD + 1): the chunk that used it last
            # has been copied out by the time chunk i is asked for.
            for i, c in enumerate(entry.chunks):
                ahead.append(reader.submit(store.read_into, c.oid, slots[i % len(slots)]))
                if len(ahead) > READ_AHEAD:
                    _append_chunk(out, ahead.popleft())
            while ahead:
                _append_chunk(out, ahead.popleft())
            out.finish()
        except BaseException:
            for fut in ahead:
                fut.cancel()
            out.abandon()
            raise
    # The slots are unmapped once the last view of them is gone, with this frame.


def _append_chunk(out: DirectAppender, fut: Future[bytes | memoryview]) -> None:
    """Append a chunk the reader has read, and let go of its buffer."""
    data = fut.result()
    try:
        out.write(data)
    finally:
        if isinstance(data, memoryview):
            data.release()


def tracked_dir_only(root: Path, rel: bytes, tracked: Callable[[bytes], bool]) -> bool:
    """True if every file below directory ``rel`` is tracked (safe to remove)."""
    return all(tracked(f.rel) for f in scan(root, rel, lambda _: None))


def remove_tree(walker: Walker, rel: bytes) -> None:
    """Delete directory ``rel`` and everything below it, depth first, without recursion.

    Links below it are removed, never followed; a directory swapped for a link
    meanwhile is removed as a link.
    """
    walker.forget(rel)
    stack = [rel]
    rounds = 0
    while stack:
        d = stack[-1]
        try:
            fd = os.open(b".", LIST, dir_fd=walker.dir(d))
        except OSError as exc:
            if exc.errno not in ABSENT:
                raise
            stack.pop()  # gone, or a link now: removed as one below
            with contextlib.suppress(FileNotFoundError, IsADirectoryError, NotADirectoryError):
                dir_fd, leaf = walker.parent(d)
                os.unlink(leaf, dir_fd=dir_fd)
            continue
        deeper = []
        try:
            it, raw = listing(fd)
            with it:
                for de in it:
                    name = de.name if raw else os.fsencode(de.name)
                    if de.is_dir(follow_symlinks=False):
                        deeper.append(d + b"/" + name)
                        continue
                    try:
                        os.unlink(name, dir_fd=fd)
                    except FileNotFoundError:
                        pass
                    except IsADirectoryError:  # replaced by a directory meanwhile
                        deeper.append(d + b"/" + name)
        finally:
            os.close(fd)
        if deeper:
            stack.extend(deeper)
            continue
        dir_fd, leaf = walker.parent(d)
        try:
            os.rmdir(leaf, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except OSError as exc:
            rounds += 1
            if exc.errno != errno.ENOTEMPTY or rounds > 1000:  # files keep appearing
                raise
            continue
        stack.pop()


def remove_path(walker: Walker, rel: bytes) -> bool:
    """Delete a working file or link and then any directories it leaves empty.

    A directory on the way that is not one (a link, say) means the file is not in
    the working tree: nothing is deleted through it. True if something was deleted.
    """
    try:
        dir_fd, leaf = walker.parent(rel)
        os.unlink(leaf, dir_fd=dir_fd)
    except IsADirectoryError:
        return False
    except OSError as exc:
        if exc.errno not in ABSENT:
            raise
        return False
    prune_empty_dirs(walker, rel.rpartition(b"/")[0])
    return True


def prune_empty_dirs(walker: Walker, rel_dir: bytes) -> None:
    """Remove ``rel_dir`` and its parents while they are empty (never the root)."""
    while rel_dir:
        try:
            dir_fd, leaf = walker.parent(rel_dir)
            os.rmdir(leaf, dir_fd=dir_fd)
        except OSError:
            return
        rel_dir = rel_dir.rpartition(b"/")[0]


DELETE_THREADS = 8  # unlinks in flight (see remove_many)
DELETE_BATCH = 256  # files of one directory per task


def remove_many(root: Path, paths: Iterable[bytes], workers: Workers) -> int:
    """Delete working files and links, then the directories they leave empty.

    Like :func:`remove_path` for each, with the same care (nothing through a link, a
    directory where a file was is left alone), but by directory: each directory is
    opened once (beneath the root, as :class:`vfs._os.beneath.Walker` resolves it) and its
    files are unlinked by name in its descriptor, by ``DELETE_THREADS`` threads at
    once (``workers.deletes``), up to ``DELETE_BATCH`` files a task. An unlink waits
    on the disk more than on the CPU: on ext4, 8 at once delete 5,000 small files two
    to four times as fast as one after the other (``rm -rf``). Then each directory
    that held some is tried once, deepest first, for ``rmdir``. Progress counts
    files (``workers.progress``, from this thread). Returns how many were deleted.
    """
    by_dir: dict[bytes, list[bytes]] = {}
    for rel in paths:
        head, _, leaf = rel.rpartition(b"/")
        by_dir.setdefault(head, []).append(leaf)
    total = sum(map(len, by_dir.values()))
    if not total:
        return 0
    progress = workers.progress
    progress.start("deleting", total, 0)
    removed = 0
    emptied: set[bytes] = set()
    pending: deque[tuple[bytes, int, int, Future[int]]] = deque()  # (dir, fd, files, task)

    def settle() -> None:
        nonlocal removed
        head, _, files, task = pending.popleft()
        done = task.result()
        if done:
            removed += done
            emptied.add(head)
        progress.advance(files, 0)

    try:
        with Walker(root) as walker:
            for head, leaves in by_dir.items():
                try:
                    dir_fd = walker.dir(head)
                except OSError as exc:
                    if exc.errno not in ABSENT:
                        raise
                    progress.advance(len(leaves), 0)  # not there, or not beneath a directory
                    continue
                for at in range(0, len(leaves), DELETE_BATCH):
                    batch = leaves[at : at + DELETE_BATCH]
                    fd = os.dup(dir_fd)  # the task's own: the walker may close its one
                    pending.append(
                        (head, fd, len(batch), workers.deletes.submit(_unlink_all, fd, batch))
                    )
                    while len(pending) >= 2 * DELETE_THREADS:
                        settle()
            while pending:
                settle()
            above = {a for d in emptied for a in _and_above(d)}
            for d in sorted(above, key=lambda d: -d.count(b"/")):
                try:
                    dir_fd, leaf = walker.parent(d)
                    os.rmdir(leaf, dir_fd=dir_fd)
                except OSError:
                    continue  # not empty (or gone, or not a directory): kept
                walker.forget(d)
    finally:
        for _, fd, _, task in pending:  # after a failure: tasks not started are dropped
            if task.cancel():
                os.close(fd)
            else:
                task.exception()  # (waits: no unlink outlives the call)
        progress.done()
    return removed


def _unlink_all(dir_fd: int, leaves: list[bytes]) -> int:
    """Unlink ``leaves`` in the directory open as ``dir_fd``, then close it; how many.

    A name that is gone, or is a directory, is left (as :func:`remove_path` does).
    """
    n = 0
    try:
        for leaf in leaves:
            try:
                os.unlink(leaf, dir_fd=dir_fd)
            except IsADirectoryError:
                continue
            except OSError as exc:
                if exc.errno not in ABSENT:
                    raise
                continue
            n += 1
    finally:
        os.close(dir_fd)
    return n


def _and_above(rel_dir: bytes) -> Iterator[bytes]:
    """A directory and those above it, but the root."""
    while rel_dir:
        yield rel_dir
        rel_dir = rel_dir.rpartition(b"/")[0]


def remove_temporaries(root: Path, tracked: Callable[[bytes], bool]) -> int:
    """Delete the temporary files a killed restore left in the working tree; how many.

    Only files and links whose names have the form ``vfs.durable.tmp_leaf`` gives are
    removed (``.tmp-NAME.`` and a process tag: never a user's ``.tmp-notes``), and
    none that is ``tracked`` (a user's file that happens to look like one); no link
    is followed and ``.dvfs`` and ``.git`` are not entered. ``.tmp-dvfs-*`` names
    have other owners (a pipeline run's outputs moved aside: ``vfs.pipeline.repro``)
    and are neither removed nor entered. Every directory is listed once (no recursion).
    """
    removed = 0
    with Walker(root) as walker:
        stack = [b""]
        while stack:
            d = stack.pop()
            try:
                fd = walker.dir(d, listable=True)
            except OSError as exc:
                if exc.errno in ABSENT or exc.errno == errno.EACCES:
                    continue
                raise
            prefix = d + b"/" if d else b""
            it, raw = listing(fd)
            with it:
                for de in it:
                    name = de.name if raw else os.fsencode(de.name)
                    if name.startswith(_OTHERS_TMP):
                        continue
                    if de.is_dir(follow_symlinks=False):
                        if name not in SKIP_DIRS and prefix.count(b"/") < MAX_DEPTH:
                            stack.append(prefix + name)
                    elif (
                        name.startswith(_TMP_PREFIX)
                        and is_tmp_leaf(name)
                        and not tracked(prefix + name)
                    ):
                        with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                            os.unlink(name, dir_fd=fd)
                            removed += 1
    return removed


def restore_many(
    root: Path,
    entries: Iterable[tuple[bytes, Entry]],
    store: ObjectStore,
    workers: Workers,
    replace: Replace,
) -> tuple[dict[bytes, Staged], dict[bytes, DvfsError]]:
    """Restore many entries; return their staged records and failures.

    Small files are restored directory by directory in the order of their objects in
    the packs, on this thread: creating one is a few short system calls with Python
    between them, so a second thread only passes the interpreter lock back and forth
    (20,000 small files: 2.35 s on one thread, 2.9-3.0 s on two). Past RESTORE_SPLIT
    of them, a forked helper process (``vfs._os.helper_process``) restores some too: the two take
    directories from shared :class:`~vfs._os.helper_process.Tickets`, so the one with more CPU
    to spare does more, and the helper reports each directory's records as it goes.
    Whatever it did not report (it failed, or an object of a file was bad) is
    restored here again. Files of WRITE_DIRECT and more go on a thread beside: they
    mostly wait for the disk (see :func:`_write_direct`).

    The records carry the restored files' new stat; a stat result itself is not
    kept (about 600 bytes each: 12 MB for 20,000 files).

    A damaged or missing object fails only the files that use it; the others are
    restored. Errors other than object errors (disk full, untracked files in the way:
    see :func:`write_entry` for ``replace``) stop the whole operation.
    """
    todo = list(entries)
    # Small files in pack order, their packs read ahead; large files are read direct,
    # chunk by chunk (a readahead of their packs would read them twice).
    where = store.read_order(e.chunks[0].oid for _, e in todo if e.chunks and e.size < WRITE_DIRECT)
    todo.sort(
        key=lambda item: where.get(item[1].chunks[0].oid, (-1, 0)) if item[1].chunks else (-1, 0)
    )
    done: dict[bytes, Staged] = {}
    failed: dict[bytes, DvfsError] = {}
    if not todo:
        return done, failed

    def run(batch: list[tuple[bytes, Entry]], walker: Walker | None) -> list[Staged | DvfsError]:
        if walker is None:  # on the large files' thread: a walker of its own
            with Walker(root) as own:
                return run(batch, own)
        out: list[Staged | DvfsError] = []
        for rel, e in batch:
            try:
                out.append(staged_from_entry(e, write_entry(walker, rel, e, store, replace)))
            except ObjectError as exc:
                out.append(exc)
        return out

    def record(batch: list[tuple[bytes, Entry]], results: list[Staged | DvfsError]) -> None:
        for (rel, e), res in zip(batch, results, strict=True):
            if isinstance(res, DvfsError):
                failed[rel] = res
            else:
                done[rel] = res
            workers.progress.advance(1, e.size)

    small = list(_restore_batches([item for item in todo if item[1].size < WRITE_DIRECT]))
    first = list(itertools.accumulate(map(len, small), initial=0))  # of each batch, in flat
    flat = [item for batch in small for item in batch]
    restored = bytearray(len(flat))  # 1: restored here, or by the helper as it reported
    helper = tickets = None
    if len(flat) >= RESTORE_SPLIT and spare_cpus(1):  # before any thread starts
        tickets = Tickets.share(len(small))
        if tickets is not None:
            shared = tickets
            helper = Helper.start(
                lambda ch: _restore_share(ch, shared, small, first, root, store, replace)
            )
    listening = helper is not None  # frames may still come
    helper_done = False

    def listen(timeout: float | None) -> None:
        """Take the helper's frames that are ready, waiting up to ``timeout`` for one."""
        nonlocal listening, helper_done
        while listening and helper is not None and _readable(helper.read_fd, timeout):
            timeout = 0
            ok, frame = helper.receive()
            if not ok or frame is None:  # ended: whole (None) or failed
                listening, helper_done = False, ok
                return
            for at, mtime_ns, ctime_ns, ino in frame:
                rel, e = flat[at]
                done[rel] = staged_with_stat(e, mtime_ns, ctime_ns, ino)
                restored[at] = 1
                workers.progress.advance(1, e.size)

    def stop_helper() -> None:  # for good, before any of its files is restored here
        if helper is not None:
            if not helper_done:
                helper.interrupt()
            helper.close()
        if tickets is not None:
            tickets.close()

    def mine() -> Iterator[int]:
        """The batches this process restores: all, or those it claims first."""
        if helper is None:
            yield from range(len(small))
            return
        assert tickets is not None
        while (pieces := tickets.claim()) is not None:
            yield from pieces

    workers.progress.start("restoring", len(todo), sum(e.size for _, e in todo))
    from concurrent.futures import FIRST_COMPLETED, wait

    large = {
        workers.restore_large.submit(run, [item], None): [item]
        for item in todo
        if item[1].size >= WRITE_DIRECT
    }

    def collect() -> None:
        for fut in [f for f in large if f.done()]:
            record(large.pop(fut), fut.result())

    walker = Walker(root)
    try:
        for k in mine():
            record(small[k], run(small[k], walker))
            restored[first[k] : first[k + 1]] = b"\1" * (first[k + 1] - first[k])
            listen(0)
            collect()
        while listening or large:
            if listening:
                listen(0.005 if large else None)
            else:
                wait(large, return_when=FIRST_COMPLETED)
            collect()
        stop_helper()
        # Files the helper did not restore, or failed to (bad objects).
        left = [item for item, ok in zip(flat, restored, strict=True) if not ok]
        record(left, run(left, walker))
    finally:
        walker.close()
        for fut in large:  # on failure: let running work end before we do
            if not fut.cancel():
                with contextlib.suppress(Exception):
                    fut.result()
        stop_helper()
        workers.progress.done()
    return done, failed


def _readable(fd: int, timeout: float | None) -> bool:
    """True when ``fd`` has data (or its end) within ``timeout`` seconds (None: wait)."""
    return bool(select.select([fd], [], [], timeout)[0])


def _restore_share(
    channel: Channel,
    tickets: Tickets,
    batches: list[list[tuple[bytes, Entry]]],
    first: list[int],
    root: Path,
    store: ObjectStore,
    replace: Replace,
) -> None:
    """A restore helper's work: the batches it claims, each followed by a frame.

    A frame lists (position among all the batches' files, mtime_ns, ctime_ns, inode)
    of each file restored; a file whose object is bad is left out, for the parent to
    restore again and get the error itself. The last frame is None.
    """
    with Walker(root) as walker:
        while (pieces := tickets.claim()) is not None:
            for k in pieces:
                restored = []
                for i, (rel, e) in enumerate(batches[k]):
                    try:
                        st = write_entry(walker, rel, e, store, replace)
                    except ObjectError:
                        continue
                    restored.append((first[k] + i, st.st_mtime_ns, st.st_ctime_ns, st.st_ino))
                if not channel.send(restored):
                    return
    channel.send(None)


def _restore_batches(
    todo: list[tuple[bytes, Entry]],
) -> Iterator[list[tuple[bytes, Entry]]]:
    """Consecutive entries of one directory as one batch, up to RESTORE_BATCH_BYTES.

    A batch is what the parent and the restore helper claim: a claim per file would
    cost more than creating a small file does, and two processes creating files in
    the same directory mostly wait for each other on its lock.
    """
    batch: list[tuple[bytes, Entry]] = []
    held = 0
    parent = None
    for rel, e in todo:
        p = rel.rpartition(b"/")[0]
        if batch and (p != parent or held + e.size > RESTORE_BATCH_BYTES):
            yield batch
            batch, held = [], 0
        batch.append((rel, e))
        held += e.size
        parent = p
    if batch:
        yield batch
