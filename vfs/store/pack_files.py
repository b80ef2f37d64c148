"""The pack files of the local store: writing one, reading headers and index files.

A pack is written under a temporary name (:class:`PackWriter`), closed with its header
and renamed to its id (the BLAKE3 of that header), then given an index file (formats
in ``vfs.store.packs``); :func:`check_pack` checks a pack's name, header and index file.
Finished packs are made durable as they are finished (:class:`Durability`). Open pack
descriptors are kept in a bounded cache (:class:`Descriptors`)."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import threading
import time
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from vfs._os.direct_io import GATHER, DirectAppender, settled
from vfs.errors import FormatError
from vfs.model.ids import hasher
from vfs.store.compression import Compression
from vfs.store.durable import TMP_PREFIX, fsync_dir, many_at_once, write_atomic
from vfs.store.packs import (
    FOOTER,
    MAX_INDEX_BYTES,
    PACK_MAGIC,
    PackedObject,
    encode_index,
    name_matches,
    pack_trailer,
    parse_footer,
    parse_header,
    trailer_id,
)

if TYPE_CHECKING:  # imported where first used: commands like `status` need neither
    from vfs._os.threads import Threads, Waitable


OPEN_PACKS = 256  # pack descriptors kept open at most (see Descriptors)
RECENT_PACKS = 300  # s: another process's pack younger may still wait to be written back

# Packs are opened non-blocking: a FIFO in a pack's place fails a read instead of
# hanging the command (reads of regular files ignore the flag); and never through a
# symbolic link (one in a pack's place is a damaged pack: ELOOP, LINKED_PACK).
READ_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK | os.O_NOFOLLOW
AWAY = "move it out of .dvfs/objects"
LINKED_PACK = (
    "is a symbolic link, which dvfs checks and rewrites no pack through: put the pack "
    f"itself in its place, or {AWAY}"
)


def read_index_file(path: Path) -> bytes:
    """An index file's bytes; FormatError if it is no regular file (a link, say) or too
    large to be one."""
    try:
        fd = os.open(path, READ_FLAGS)
    except OSError as exc:
        if exc.errno != errno.ELOOP:
            raise
        raise FormatError(f"{path}: not a pack index (a symbolic link)") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > MAX_INDEX_BYTES:
            raise FormatError(f"{path}: not a pack index")
        return os.read(fd, st.st_size)
    finally:
        os.close(fd)


def read_pack_header(fd: int, size: int, what: str) -> list[PackedObject]:
    """The object records of a complete pack open at ``fd``."""
    return read_pack_records(fd, size, what)[0]


def read_pack_records(fd: int, size: int, what: str) -> tuple[list[PackedObject], bytes]:
    """The object records of a complete pack open at ``fd``, and its header's checked
    BLAKE3 (the pack's id, ``vfs.store.packs.pack_id``)."""
    if size < len(PACK_MAGIC) + FOOTER.size:
        raise FormatError(f"{what}: truncated pack")
    footer = os.pread(fd, FOOTER.size, size - FOOTER.size)
    _, hlen, hhash = parse_footer(footer, size, what)
    data_end = size - FOOTER.size - hlen
    header = os.pread(fd, hlen, data_end)
    return parse_header(header, hhash, data_end, what), hhash


def check_pack(path: Path) -> str | None:
    """What is wrong with a complete pack's name, header or index file; None if nothing.

    The header must read back against the footer's checksum, the pack's name must be
    its id (``vfs.store.packs.name_matches``: the header's BLAKE3, or for a pack of a
    format 1 repository the BLAKE3 of the whole file, then hashed here), and the index
    file beside it, if any, must list the same records. The objects themselves are
    checked against their ids by whoever reads them (``vfs.ops.fsck`` reads every
    reachable one).
    """
    name = path.name.removeprefix("pack-").removesuffix(".pack")
    try:
        try:
            fd = os.open(path, READ_FLAGS)
        except OSError as exc:
            if exc.errno != errno.ELOOP:
                raise
            return LINKED_PACK
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                return f"is not a regular file: {AWAY}"
            objs, header_hash = read_pack_records(fd, st.st_size, path.name)

            def whole() -> bytes:
                h = hasher()
                at = 0
                while block := os.pread(fd, 8 << 20, at):
                    h.update(block)
                    at += len(block)
                return h.digest()

            if not name_matches(name, header_hash, whole):
                return "its name is neither the hash of its header nor that of its bytes"
        finally:
            os.close(fd)
        idx = path.with_suffix(".idx")
        try:
            data = read_index_file(idx)
        except FileNotFoundError:
            return None  # rebuilt from the header when the store next lists the packs
        if data != encode_index(objs):
            return "its index file does not list what its header does"
    except FormatError as exc:
        return str(exc).removeprefix(f"{path.name}: ")  # (the caller names the pack)
    return None


class PackWriter:
    """One pack being appended to under a temporary name.

    The bytes go out through a :class:`DirectAppender`: the store's ``writing`` thread
    writes each block while the caller fills the next; the store's lock is held only
    for copying objects into a block. Nothing hashes the payloads again: the pack is
    named by its header (``vfs.store.packs.pack_id``), whose objects were hashed by
    whoever stored them.
    """

    def __init__(self, root: Path, slot: int, writing: Threads) -> None:
        self.slot = slot
        self.tmp = root / f"{TMP_PREFIX}pack-{os.urandom(8).hex()}"
        self.fd = os.open(self.tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC, 0o644)
        # Held until the descriptor closes: a command that stores without the repository
        # lock (`cat`, `diff` downloading data) is writing it, and gc or fsck leaves it
        # (``ObjectStore.remove_temporaries``).
        fcntl.flock(self.fd, fcntl.LOCK_SH)
        self.objs: list[PackedObject] = []
        self._trailer: bytes | None = None  # set by seal()
        self.out = DirectAppender(self.fd, writing, gather=GATHER)
        self.out.write(PACK_MAGIC)

    @property
    def offset(self) -> int:
        """Bytes in the pack so far."""
        return self.out.size

    def drain(self) -> None:
        """Make the bytes written so far readable from the file."""
        self.out.make_visible()

    def append(
        self, oid: bytes, kind: int, method: int, payload: bytes | memoryview, raw_len: int
    ) -> PackedObject:
        obj = PackedObject(oid, kind, method, self.offset, len(payload), raw_len)
        self.out.write(payload)
        self.objs.append(obj)
        return obj

    def lend(
        self, kind: int, payload: memoryview, phase: int, pieces: list[tuple[bytes, int, int]]
    ) -> tuple[list[PackedObject], Waitable[None] | None]:
        """Append raw payloads lying back to back in a page-aligned buffer as one
        stretch, its whole pages uncopied (``DirectAppender.lend``: up to ALIGN - 1 zero
        bytes may come before it; readers take offsets from the header). ``payload``
        starts ``phase`` bytes into a page; ``pieces`` are (id, start, size) of the
        objects in it, in order, covering it. The future: see ``DirectAppender.lend``."""
        fut = self.out.lend(payload, phase)
        base = self.offset - len(payload)
        objs = [PackedObject(oid, kind, Compression.NONE, base + at, n, n) for oid, at, n in pieces]
        self.objs.extend(objs)
        return objs, fut

    def seal(self, root: Path) -> Path:
        """Take no more objects; the path the pack will have once :meth:`finish` ends.

        Cheap (the header of a few dozen records is encoded and hashed): the store
        calls it under its lock, and may then finish the pack on another thread while
        the next one fills.
        """
        if self._trailer is None:
            self._trailer = pack_trailer(self.objs)
        return root / f"pack-{trailer_id(self._trailer).hex()}.pack"

    def finish(self, root: Path) -> tuple[Path, int]:
        """Write the header, wait for every write, fsync, rename to the pack's id, write
        the index.

        Returns the path and the still open descriptor, for the caller to close.
        """
        final = self.seal(root)
        assert self._trailer is not None
        self.out.write(self._trailer)
        self.out.finish()
        # The bytes durable before the name: a filesystem may write the rename back
        # before the data, and a power cut would then leave a truncated pack under
        # its real name, which a whole index file would say holds its objects.
        os.fdatasync(self.fd)
        os.replace(self.tmp, final)
        write_atomic(final.with_suffix(".idx"), encode_index(self.objs), sync=False)
        return final, self.fd

    def abandon(self) -> None:
        """Close and delete the temporary file after a failure."""
        self.out.abandon()
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1  # (called twice, it must not close a descriptor reused since)
        self.tmp.unlink(missing_ok=True)


class Durability:
    """Makes the packs a store finishes durable: each as soon as it is finished.

    A finished pack is fsynced (data, then its index file) on a thread of its own while
    the next one is filled, so that adding a large file does not end by waiting for
    all of it. :meth:`wait` returns once every pack finished so far, its index file and
    the directory naming them are durable, and with them the packs other processes
    finished, which this one may name without storing their objects again (a killed
    command's): the first time those younger than RECENT_PACKS seconds (older ones
    were written back long ago), then every one that appeared since the last wait (a
    long-lived process: the mount daemon's snapshots); of those, only the ones
    ``relied`` names when the store knows which packs hold the objects it found there
    (a commit after adding 1 GiB fsynced the add's 16 packs and their index files
    again, 32 fsyncs of 40 to 500 ms in all, for the few trees it found present).
    A pack left out stays a candidate for the next wait. Not ``syncfs``: that also
    waits for whatever else the filesystem holds dirty (other programs' files, those
    a ``tar x`` just made), 0.4 to 0.7 s of a ``dvfs add`` on the shared benchmark
    machine against 5 to 13 ms alone.

    The fsyncs a pack needs take two round trips to the disk (its cache flushed: on
    the benchmark machine 3 to 8 ms apiece), not three in a row: its data before its
    rename (``PackWriter.finish``: a name made durable before the bytes, by the
    folder's fsync or by the filesystem writing the rename back on its own, would
    come back from a power cut as a truncated pack, its index file perhaps whole);
    then its index file as soon as it is finished (a thread), and the folder naming
    it, with the packs of other processes, by :meth:`wait` while that runs (an index
    file cut short is rebuilt from the pack's header).
    """

    def __init__(self, root: Path) -> None:
        self.root = root
        self._thread: Threads | None = None
        self._pending: list[Waitable[None]] = []
        self._ours: set[str] = set()  # finished here, not listed by a wait yet
        self._known: set[str] | None = None  # packs the last wait found (None: no wait yet)
        self._lock = threading.Lock()

    def finished(self, fd: int, pack: Path) -> None:
        """Start making ``pack``'s index file durable (its data is: ``PackWriter.finish``);
        ``fd`` (open on the pack) is closed."""
        with self._lock:
            if self._thread is None:
                from vfs._os.threads import Threads

                self._thread = Threads(2, "dvfs-packsync")
            self._ours.add(pack.name)
            # Those done without an error are dropped: a daemon's store never waits.
            self._pending = [f for f in self._pending if not f.done() or f.exception()]
            self._pending.append(self._thread.submit(_sync_index, pack))
        os.close(fd)  # (its data was made durable before its rename: PackWriter.finish)

    def wait(self, relied: Callable[[list[str]], set[str] | None] | None = None) -> None:
        """Return once everything finished so far is durable (see the class doc); OSError if not.

        ``relied``: given the names of the other processes' packs that may not be
        durable, returns those holding objects this process found stored and may
        name (None: it cannot tell, every one is synced).
        """
        with self._lock:
            pending, self._pending = self._pending, []
            known, ours = self._known, set(self._ours)
        try:  # (while the fsyncs of the packs finished here run on their threads)
            durable = self._sync_others(known, ours, relied)
        finally:
            failed = settled(pending)
        if failed is not None:
            raise failed
        with self._lock:
            self._known = durable
            self._ours -= durable

    def _sync_others(
        self,
        known: set[str] | None,
        ours: set[str],
        relied: Callable[[list[str]], set[str] | None] | None,
    ) -> set[str]:
        """fsync the packs of other processes that :meth:`wait` must make durable, and the
        folder, all at once; the packs durable once those and ours are (the listed ones)."""
        listed = _packs_in(self.root)
        recent = time.time() - RECENT_PACKS
        durable = set() if known is None else known & listed.keys()
        todo = []
        for name, mtime in listed.items():
            if name in ours or name in durable:
                continue
            if known is None and mtime < recent:
                durable.add(name)  # written back long ago
            else:
                todo.append(name)
        named = relied(todo) if relied is not None and todo else None
        items = [(self.root, True)]
        for name in todo:
            if named is not None and name not in named:
                continue  # none of its objects found here: whoever names them syncs it
            pack = self.root / name
            items += [(pack, False), (pack.with_suffix(".idx"), False)]
            durable.add(name)
        many_at_once(_fsync_any, items, "dvfs-packsync")
        return durable | (ours & listed.keys())

    def close(self) -> None:
        """Let the fsyncs started finish, and stop the thread."""
        with self._lock:
            thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown()


def _sync_index(pack: Path) -> None:
    """Runs on a durability thread: fsync a finished pack's index file."""
    with contextlib.suppress(FileNotFoundError):  # (gc removed it meanwhile)
        _fsync_path(pack.with_suffix(".idx"))


def _fsync_any(item: tuple[Path, bool]) -> None:
    """fsync a pack or an index file (``(path, False)``: one gc removed meanwhile is no
    error) or a folder (``(path, True)``)."""
    path, folder = item
    if folder:
        fsync_dir(path)
        return
    with contextlib.suppress(FileNotFoundError):
        _fsync_path(path)


def _packs_in(root: Path) -> dict[str, float]:
    """The complete packs in ``root`` (regular files), with their mtimes."""
    out: dict[str, float] = {}
    with os.scandir(root) as listing:
        for entry in listing:
            if entry.name.startswith("pack-") and entry.name.endswith(".pack"):
                with contextlib.suppress(FileNotFoundError):  # (gc removed it)
                    st = entry.stat(follow_symlinks=False)
                    if stat.S_ISREG(st.st_mode):
                        out[entry.name] = st.st_mtime
    return out


def _fsync_path(path: Path) -> None:
    """fsync a regular file by name (opened read-only: fsync needs no more).

    A link is not followed and anything but a regular file is left alone (not ours).
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return
        raise
    try:
        if stat.S_ISREG(os.fstat(fd).st_mode):
            os.fsync(fd)
    finally:
        os.close(fd)


class Descriptors:
    """Open descriptors of packs, at most ``limit`` kept (the least recently used go).

    A store of a few terabytes holds hundreds of thousands of packs: one descriptor
    kept per pack ever read would run into the process's file limit (often 1024). A
    descriptor is borrowed for each read and closed only when no read holds it.
    Those still open when the object is dropped unclosed (a store its user never
    closed: ``vfs.Repo`` without ``close``) are closed then, as a file object's are,
    so that a process opening repositories again and again does not run out.
    """

    def __init__(self, limit: int = OPEN_PACKS) -> None:
        self.limit = limit
        self._open: OrderedDict[tuple[int, bool], int] = OrderedDict()
        self._users: dict[tuple[int, bool], int] = {}
        self._lock = threading.Lock()
        weakref.finalize(self, _close_all, self._open)

    @contextlib.contextmanager
    def borrow(self, key: tuple[int, bool], opener: Callable[[], int]) -> Iterator[int]:
        """The descriptor for ``key`` (opened by ``opener`` if not open), held meanwhile."""
        with self._lock:
            fd = self._open.get(key)
            if fd is None:
                fd = self._open[key] = opener()
            else:
                self._open.move_to_end(key)
            self._users[key] = self._users.get(key, 0) + 1
        try:
            yield fd
        finally:
            with self._lock:
                left = self._users.pop(key) - 1
                if left:
                    self._users[key] = left
                elif self._open.get(key) != fd:  # dropped meanwhile: its last reader closes it
                    close_fd(fd)
                if len(self._open) > self.limit:
                    for old in [k for k in self._open if k not in self._users]:
                        close_fd(self._open.pop(old))
                        if len(self._open) <= self.limit:
                            break

    def drop(self, slot: int) -> None:
        """Close the descriptors of pack ``slot`` (deleted), once no read holds them."""
        with self._lock:
            for key in [(slot, False), (slot, True)]:
                fd = self._open.pop(key, None)
                if fd is not None and key not in self._users:
                    close_fd(fd)

    def close_idle(self) -> None:
        """Close every descriptor no read holds now; a later read opens its pack again.
        For a user that keeps a store long after its reads (a ``dvfs://`` filesystem,
        which fsspec and the readers over it keep as long as they like)."""
        with self._lock:
            for key in [k for k in self._open if k not in self._users]:
                close_fd(self._open.pop(key))

    def close(self) -> None:
        """Close every descriptor (no read may be running)."""
        with self._lock:
            for fd in self._open.values():
                close_fd(fd)
            self._open.clear()


def _close_all(fds: OrderedDict[tuple[int, bool], int]) -> None:
    """Close the descriptors of a :class:`Descriptors` nothing refers to any more."""
    for fd in fds.values():
        close_fd(fd)
    fds.clear()


def close_fd(fd: int) -> None:
    if fd >= 0:  # -1 stands for "O_DIRECT refused"
        with contextlib.suppress(OSError):
            os.close(fd)
