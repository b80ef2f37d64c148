"""Crash-safe file writing: temp file, rename, and fsyncs before refs move.

Objects are written to a temporary name in the destination directory and renamed
into place, so a crash never leaves half an object under a real name. They are not
fsynced one by one (that costs a disk round trip per object): the store fsyncs each
pack as it is finished and waits for those before a ref moves
(``vfs.store.pack_files.Durability``), never ``syncfs``, which would also wait for other
programs' dirty files. Small records that must be durable on their own (refs, the index)
use :func:`write_atomic` with ``sync=True``.
"""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import re
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TypeVar

from vfs.errors import StorageFull

T = TypeVar("T")
R = TypeVar("R")
SYNC_AT_ONCE = 16  # small files written or fsynced at once by many_at_once

TMP_PREFIX = ".tmp-"
NAME_MAX = 255  # bytes in one file name, on every Linux filesystem we write to


_serial = itertools.count()
_TMP_PREFIX_BYTES = TMP_PREFIX.encode()
_PROCESS_TAG_BYTES = b""


def _new_process_tag() -> None:
    """Draw this process's tag for temporary names (:func:`tmp_leaf`), and start its
    counter again: at import, and in the child of every ``fork``, which would otherwise
    name its temporary files exactly as its parent and its siblings do (two workers of
    a forked pool writing the same file would meet at ``O_EXCL``)."""
    global _PROCESS_TAG_BYTES, _serial
    _PROCESS_TAG_BYTES = os.urandom(4).hex().encode()  # not secrets: 4 ms to import
    _serial = itertools.count()


_new_process_tag()
os.register_at_fork(after_in_child=_new_process_tag)


def tmp_name(path: Path) -> Path:
    """A unique temporary sibling of ``path``, recognisable by its prefix.

    Unique per process by a counter (no random bytes per call: reading the kernel's
    random source costs a system call per file when thousands are written).
    """
    return path.with_name(os.fsdecode(tmp_leaf(os.fsencode(path.name))))


def tmp_leaf(name: bytes) -> bytes:
    """:func:`tmp_name` for a bare file name in bytes (no path objects: one per file).

    A long name is shortened so that the temporary one still fits in NAME_MAX.
    """
    tail = b".%s%d" % (_PROCESS_TAG_BYTES, next(_serial))
    room = NAME_MAX - len(_TMP_PREFIX_BYTES) - len(tail)
    return _TMP_PREFIX_BYTES + name[:room] + tail


_TMP_LEAF = re.compile(rb"\.tmp-.*\.[0-9a-f]{8}[0-9]+", re.DOTALL)


def is_tmp_leaf(name: bytes) -> bool:
    """True if ``name`` has the form :func:`tmp_leaf` gives (a temporary file of ours)."""
    return _TMP_LEAF.fullmatch(name) is not None


def remove_tmp_files(folder: Path) -> int:
    """Delete the regular files directly in ``folder`` named as :func:`tmp_leaf` names
    them (a write killed before its rename); how many. The caller makes sure nobody
    writes there meanwhile. No link is followed: a ``folder`` that is one is left as it
    is, and so is a link (or anything else not a regular file) with such a name."""
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    except OSError:
        return 0
    try:
        with os.scandir(fd) as it:
            names = [
                e.name
                for e in it
                if e.name.startswith(TMP_PREFIX)
                and is_tmp_leaf(os.fsencode(e.name))
                and e.is_file(follow_symlinks=False)
            ]
        removed = 0
        for name in names:
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(name, dir_fd=fd)
                removed += 1
        return removed
    finally:
        os.close(fd)


def storage_error(exc: OSError, what: str) -> Exception:
    """Turn ENOSPC/EDQUOT into StorageFull; leave other errors as they are."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return StorageFull(
            f"the disk is full while writing {what}: nothing half-written was kept; "
            "free some space and run the command again"
        )
    return exc


# Parts given to writev at most (the kernel's limit is 1024).
_IOV_MAX = 1024
# A temporary file is always new: never an existing file, never through a link.
_CREATE_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_atomic(
    path: Path, data: bytes | Sequence[bytes | memoryview], *, sync: bool = True, mode: int = 0o644
) -> None:
    """Write ``data`` to ``path`` atomically (temp + optional fsync + rename).

    Whatever ``path`` was (a link, say) is replaced by the new file, never written
    through; the directory above it is trusted.
    """
    put_in_place(write_beside(path, data, sync=sync, mode=mode), path, sync=sync)


def write_beside(
    path: Path, data: bytes | Sequence[bytes | memoryview], *, sync: bool = True, mode: int = 0o644
) -> Path:
    """The first half of :func:`write_atomic`: ``data`` in a new temporary file beside
    ``path`` (fsynced unless not ``sync``), returned; :func:`put_in_place` is the second.

    For a caller that must know the bytes are on disk (the disk not full) before it
    records the change elsewhere, as a ref's audit entry is (``vfs.repo.refs``).
    """
    tmp = tmp_name(path)
    try:
        _fill(os.open(tmp, _CREATE_NEW, mode), data, sync)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise storage_error(exc, str(path)) from exc
    return tmp


def _fill(fd: int, data: bytes | Sequence[bytes | memoryview], sync: bool) -> None:
    """Write all of ``data`` (bytes, or parts written one after the other) to the new
    file open at ``fd`` (fsynced if ``sync``), and close it.

    Parts go out by ``writev``: the staging index is written as its header, names,
    columns and rows, which joining first copied into 3 MB of fresh memory for 20,000
    paths (about 2 ms of CPU, mostly page faults).
    """
    try:
        if isinstance(data, (bytes, bytearray, memoryview)):
            view = memoryview(data)
            while view:
                n = os.write(fd, view)
                view = view[n:]
        else:
            parts = [v for v in (memoryview(p).cast("B") for p in data) if v.nbytes]
            while parts:
                n = os.writev(fd, parts[:_IOV_MAX])
                while n and n >= parts[0].nbytes:
                    n -= parts.pop(0).nbytes
                if n:
                    parts[0] = parts[0][n:]
        if sync:
            os.fsync(fd)
    finally:
        os.close(fd)


def put_in_place(tmp: Path, path: Path, *, sync: bool = True) -> None:
    """Rename ``tmp`` (from :func:`write_beside`) over ``path``, durably unless not
    ``sync``; ``tmp`` is gone either way."""
    try:
        os.replace(tmp, path)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise storage_error(exc, str(path)) from exc
    if sync:
        fsync_dir(path.parent)


def write_atomic_at(
    dir_fd: int, name: str, data: bytes, *, sync: bool = True, mode: int = 0o644
) -> None:
    """:func:`write_atomic` of file ``name`` in the directory open at ``dir_fd``
    (``vfs._os.beneath.open_dir``): the temporary file is made and renamed there, so
    that a link swapped in above it meanwhile leads nothing elsewhere."""
    tmp = os.fsdecode(tmp_leaf(os.fsencode(name)))
    try:
        _fill(os.open(tmp, _CREATE_NEW, mode, dir_fd=dir_fd), data, sync)
        os.rename(tmp, name, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except OSError as exc:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp, dir_fd=dir_fd)
        raise storage_error(exc, name) from exc
    if sync:
        os.fsync(dir_fd)


def fsync_dir(path: Path) -> None:
    """Make a rename or create in directory ``path`` durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_file(path: Path) -> None:
    """fsync the file at ``path`` (one :func:`write_beside` wrote with ``sync=False``),
    never through a link; a full disk raises as the store says it."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    except OSError as exc:
        raise storage_error(exc, str(path)) from exc


def at_once(jobs: Sequence[Callable[[], object]], name: str) -> list[BaseException | None]:
    """Run ``jobs`` (fsyncs: a disk round trip each) at the same time, the first in this
    thread and the others on threads named ``name``, and return what each raised (None:
    done), in order. Every job runs to its end, whatever another does: the caller
    must know which were done to take back what a failure leaves half made."""
    import threading

    errors: list[BaseException | None] = [None] * len(jobs)

    def run(i: int) -> None:
        try:
            jobs[i]()
        except BaseException as exc:
            errors[i] = exc

    threads = [
        threading.Thread(target=run, args=(i,), name=name, daemon=True) for i in range(1, len(jobs))
    ]
    for t in threads:
        t.start()
    try:
        if jobs:
            run(0)
    finally:
        for t in threads:
            t.join()
    return errors


def many_at_once(work: Callable[[T], R], items: Sequence[T], name: str) -> list[R]:
    """``work`` of each of ``items`` (small files' writes and fsyncs), ``SYNC_AT_ONCE``
    at once on threads named ``name``, in order: the disk commits fsyncs that wait
    together as one, where 2,000 one after the other took a round trip each. Fewer
    than two run in this thread (no threads for one ref). The first error, in order,
    is raised once every one has ended."""
    if len(items) < 2:
        return [work(item) for item in items]
    from vfs._os.threads import Threads

    pool = Threads(min(SYNC_AT_ONCE, len(items)), name)
    try:
        tasks = [pool.submit(work, item) for item in items]
    finally:
        pool.shutdown()
    return [t.result() for t in tasks]
