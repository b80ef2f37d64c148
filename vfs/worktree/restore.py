"""Writing versions' files into the working tree: directories, files, many at once."""

from __future__ import annotations

import contextlib
import errno
import itertools
import os
import select
import stat as statmod
import threading
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import chain
from pathlib import Path
from typing import TYPE_CHECKING

from vfs._os.beneath import ABSENT, Walker, rename_exchange, rename_noreplace
from vfs._os.direct_io import (
    ALIGN,
    open_direct,
    pwrite_all,
    read_range_into,
    reserve_blocks,
)
from vfs._os.helper_process import Channel, Helper, Tickets, cpus, spare_cpus
from vfs.errors import (
    DvfsError,
    FormatError,
    KeptChanged,
    ObjectCorrupt,
    ObjectError,
    UsageError,
)
from vfs.model.codec import PERM_BITS, Entry, Kind
from vfs.model.ids import hash_bytes, hasher
from vfs.quoting import quoted
from vfs.repo.stage import Staged, staged_from_entry, staged_with_stat
from vfs.store.durable import storage_error, tmp_leaf
from vfs.store.objects import ObjectStore
from vfs.store.reader import false_digest
from vfs.worktree.pools import Workers
from vfs.worktree.remove import aside_leaf, not_writable, remove_tree

if TYPE_CHECKING:  # imported when a pool is first made: a clean `status` makes none
    from concurrent.futures import Future, ThreadPoolExecutor

    import blake3


RESTORE_BATCH_BYTES = 16 << 20  # files of one directory restored per claim
RESTORE_SPLIT = 2048  # small files to restore: past this, a helper process shares them
LARGE_FILE = 8 << 20  # files this large are restored on a thread of their own (_write_through)
READ_AHEAD = 3  # chunks of such a file read ahead while the current one is written
READERS = 4  # threads reading them: direct reads in parallel keep the disk's queue full
# Small files' chunks read ahead of their writes while a checkout's marks are synced
# (restore_many's ``pending``): about 250 of the benchmark's files, 5-10 ms of work.
# Held until written, they add to the checkout's peak memory: 16 MiB put it 8 MiB
# over DVC's in slow-disk runs of the benchmark (102 MiB against 94).
PREFETCH_BYTES = 4 << 20

Replace = Callable[[bytes], bool]
# What stood at a path when the caller checked that it may be replaced: the
# (inode, size, mtime_ns) of the file or link there, or None where nothing stood.
# A path the caller did not check (not in the mapping) is replaced unchecked.
Identity = tuple[int, int, int] | None
Checked = Mapping[bytes, Identity]
_UNCHECKED = (-1, -1, -1)  # (no file has it: a path not in Checked)


def identity(st: os.stat_result) -> tuple[int, int, int]:
    """The :data:`Identity` of a file or link of stat ``st``."""
    return st.st_ino, st.st_size, st.st_mtime_ns


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
                    f"{quoted(cur)} is {what} where the version has a directory: "
                    "move it away, or use --force to replace it"
                )
            # Several restore threads or processes may get here for the same one at once.
            with contextlib.suppress(FileNotFoundError, IsADirectoryError):
                os.unlink(part, dir_fd=walker.dir(cur.rpartition(b"/")[0]))
        try:
            os.mkdir(part, dir_fd=walker.dir(cur.rpartition(b"/")[0]))
        except FileExistsError:
            pass
        except OSError as exc:
            raise not_writable(exc, cur, "make the directory") from exc
        try:
            walker.dir(cur)
        except OSError as exc:
            if exc.errno not in ABSENT:
                raise
            raise UsageError(
                f"{quoted(cur)} changed while it was being restored: try again"
            ) from None
    return walker.dir(rel_dir)


_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC
# A file without a name in the directory (Linux's O_TMPFILE; 0 where there is none).
_ANONYMOUS = getattr(os, "O_TMPFILE", 0) | os.O_WRONLY | os.O_CLOEXEC
# Errors of an O_TMPFILE open that mean "not here": no kernel support (EISDIR, as
# the flag includes O_DIRECTORY) or none in the filesystem (EOPNOTSUPP).
_NO_ANONYMOUS = frozenset({errno.EOPNOTSUPP, errno.EISDIR, errno.EINVAL})
_anonymous = [hasattr(os, "O_TMPFILE") and os.path.isdir("/proc/self/fd")]


def _open_anonymous(dir_fd: int, mode: int) -> int:
    """A new file in directory ``dir_fd`` with no name yet (-1 where there are none).

    Written, then given its name by ``linkat`` of ``/proc/self/fd/N``: as many
    system calls as a temporary name renamed (``linkat`` in place of ``renameat``),
    but one directory entry made instead of one made and then moved, and nothing is
    ever seen half-written under any name, nor left behind by a kill (the kernel
    frees the file). Where the kernel or filesystem has no such files, or ``/proc`` is not
    mounted, this process uses temporary names from then on.
    """
    if not _anonymous[0]:
        return -1
    try:
        return os.open(b".", _ANONYMOUS, mode, dir_fd=dir_fd)
    except OSError as exc:
        if exc.errno not in _NO_ANONYMOUS:
            raise
        _anonymous[0] = False
        return -1


def write_entry(
    walker: Walker,
    rel: bytes,
    entry: Entry,
    store: ObjectStore,
    replace: Replace,
    have: Mapping[bytes, bytes | memoryview] | None = None,
    checked: Checked | None = None,
) -> os.stat_result:
    """Restore one file or link from the store, atomically; return its new lstat.

    ``have`` holds chunks already read and verified (:func:`read_batch`); the others
    are read from ``store``.

    The file is created with the entry's permission bits (``PERM_BITS``: never
    setuid, setgid or sticky), less those the umask removes, as git does. A file
    under LARGE_FILE is written without a name and then linked in
    (:func:`_open_anonymous`) where nothing stands at ``rel``. Whatever stands
    there is replaced, never written through (the new file is renamed over it); a
    directory there, or a non-directory where a directory is needed on the way,
    only if ``replace(path)`` says so. Where ``checked`` holds ``rel``, what stands
    there is replaced only if it is still what the caller checked
    (:func:`_rename_over`), else KeptChanged. A file written under a temporary
    name (``tmp_leaf``: a kill leaves it to the cleanup of temporaries) is renamed
    to the name it is swapped in from (:func:`_swap_name`) once whole.
    """
    parent, _, leaf = rel.rpartition(b"/")
    dir_fd = ensure_dir(walker, parent, replace)
    tmp = tmp_leaf(leaf)
    new = _swap_name(rel, leaf, tmp, checked)
    fd = -1
    try:
        if entry.kind == Kind.SYMLINK:  # (made whole at once: at its last name beside)
            os.symlink(entry.target, new, dir_fd=dir_fd)
            os.utime(new, ns=(entry.mtime_ns, entry.mtime_ns), dir_fd=dir_fd, follow_symlinks=False)
        else:
            small = entry.size < LARGE_FILE
            fd = _open_anonymous(dir_fd, entry.mode & PERM_BITS) if small else -1
            named = fd < 0
            if named:
                fd = os.open(tmp, _CREATE, entry.mode & PERM_BITS, dir_fd=dir_fd)
            if not small:
                _write_large(fd, entry, store)
            else:
                whole = _whole(entry)
                for c in entry.chunks:
                    got = have.get(c.oid) if have is not None else None
                    view = memoryview(store.get(c.oid) if got is None else got)
                    if whole is not None:
                        whole.update(view)
                    while view:
                        view = view[os.write(fd, view) :]
                _check_whole(entry, whole)
            os.utime(fd, ns=(entry.mtime_ns, entry.mtime_ns))
            if not named:
                if _link_in(fd, dir_fd, leaf, new):
                    return os.fstat(fd)  # (after the link, which changed the ctime)
            elif new != tmp:
                os.rename(tmp, new, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        dir_fd = _rename_over(walker, rel, dir_fd, new, replace, checked)
        # The rename changed the ctime: stat after it, so the index records the final one.
        return os.fstat(fd) if fd >= 0 else os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp, dir_fd=walker.dir(parent))
        if new != tmp:
            _drop_new(walker, parent, new, fd, entry.target)
        if isinstance(exc, OSError) and not isinstance(exc, DvfsError):
            raise not_writable(storage_error(exc, quoted(rel)), rel, "write") from exc
        raise
    finally:
        if fd >= 0:
            os.close(fd)


def write_batch(
    walker: Walker,
    batch: list[tuple[bytes, Entry]],
    store: ObjectStore,
    replace: Replace,
    have: Mapping[bytes, bytes | memoryview],
    checked: Checked | None = None,
) -> list[os.stat_result | ObjectError | KeptChanged]:
    """:func:`write_entry` of each entry of ``batch``, files of one directory
    (:func:`_restore_batches`) whose chunks :func:`read_batch` read into ``have``: the
    new stat of each, or the ObjectError (or KeptChanged) that failed it.

    The usual case, a small file where nothing stands, is written here with the
    directory resolved once for the whole batch (:func:`_write_unnamed`); anything
    else (a link, something in the way, a chunk to read, an error) goes through
    :func:`write_entry`, which deals with it as for a file alone. A file ``checked``
    found standing goes there at once: written here first, it was written in vain,
    its link refused (EEXIST), and written again there. A file standing where the
    caller did not check is replaced by the one written here (:func:`_write_unnamed`).
    """
    out: list[os.stat_result | ObjectError | KeptChanged] = []
    dir_fd, dir_of = -1, b""
    fds = _descriptors() if _anonymous[0] else -1
    try:
        for rel, e in batch:
            st = None
            if (
                e.kind == Kind.FILE
                and e.size < LARGE_FILE
                and _anonymous[0]
                and (checked is None or checked.get(rel) is None)
            ):
                parent, _, leaf = rel.rpartition(b"/")
                if dir_fd < 0 or parent != dir_of:  # (a batch given more than one directory)
                    dir_fd, dir_of = ensure_dir(walker, parent, replace), parent
                over = checked is None or rel not in checked
                st = _write_unnamed(dir_fd, leaf, e, have, fds, over)
            if st is None:
                dir_fd = -1  # (the walker moves on: the directory is resolved again)
                try:
                    st = write_entry(walker, rel, e, store, replace, have, checked)
                except (ObjectError, KeptChanged) as exc:
                    out.append(exc)
                    continue
            out.append(st)
    finally:
        if fds >= 0:
            os.close(fds)
    return out


def _descriptors() -> int:
    """A descriptor of this process's ``/proc/self/fd`` (-1 if it cannot be opened),
    for :func:`_write_unnamed` to name each unnamed file by its number there.

    ``linkat`` of ``/proc/self/fd/N`` walks four names for every file, ``self`` a
    link to this process's directory; from this descriptor it looks up ``N`` alone:
    6.0 µs a link against 7.0 (a file linked 3,000 times each way, alternating). It
    is opened per batch, by the process that writes it (a forked helper's
    ``/proc/self`` is not its parent's), and closed with the batch: a library that
    restores files holds no descriptor once it returns.
    """
    try:
        return os.open(b"/proc/self/fd", os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return -1


def _write_unnamed(
    dir_fd: int,
    leaf: bytes,
    e: Entry,
    have: Mapping[bytes, bytes | memoryview],
    fds: int = -1,
    over: bool = False,
) -> os.stat_result | None:
    """Write small file ``e`` as ``leaf`` in ``dir_fd`` from the chunks in ``have``:
    unnamed, written, given its mtime, then linked in (through ``fds``, this
    process's ``/proc/self/fd`` from :func:`_descriptors`, if given); its new stat.

    Where a file or link stands at ``leaf`` and ``over`` says it may simply be
    replaced (a path its caller did not check), the written file is linked under a
    temporary name beside it and renamed over it, as :func:`write_entry` would after
    writing it again. None where that is not all it takes: a chunk not in ``have``,
    a directory (or, without ``over``, anything) standing at ``leaf``, chunks that
    do not make the file's digest (checked first), or any error. Nothing is then left
    (the file had no name, its temporary one is removed), and the caller writes it
    with :func:`write_entry`, which meets the error itself.
    """
    data = []
    for c in e.chunks:
        got = have.get(c.oid)
        if got is None:
            return None
        data.append(got)
    whole = _whole(e)
    if whole is not None:
        for d in data:
            whole.update(d)
        if whole.digest() != e.digest:
            return None
    try:
        fd = os.open(b".", _ANONYMOUS, e.mode & PERM_BITS, dir_fd=dir_fd)
    except OSError:
        return None
    try:
        for d in data:
            view = memoryview(d)
            while view:
                view = view[os.write(fd, view) :]
        os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))
        if not _link_in(fd, dir_fd, leaf, None, fds):  # something stands there
            if not over:
                return None
            tmp = tmp_leaf(leaf)
            _link_fd(fd, tmp, dir_fd, fds)
            try:
                os.replace(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
            except OSError:  # (a directory there: write_entry asks whether it may go)
                with contextlib.suppress(OSError):
                    os.unlink(tmp, dir_fd=dir_fd)
                return None
        return os.fstat(fd)  # (after the link or rename, which changed the ctime)
    except OSError:
        return None
    finally:
        os.close(fd)


def _link_in(fd: int, dir_fd: int, leaf: bytes, aside: bytes | None = None, fds: int = -1) -> bool:
    """Give the unnamed file open as ``fd`` the name ``leaf`` in ``dir_fd`` if nothing
    stands there (True); else the name ``aside`` beside it, if given, for the caller
    to rename over ``leaf`` (False). Linked through ``fds``, this process's
    ``/proc/self/fd``, if it is open (see :func:`_descriptors`)."""
    try:
        _link_fd(fd, leaf, dir_fd, fds)
        return True
    except FileExistsError:
        if aside is not None:
            _link_fd(fd, aside, dir_fd, fds)
        return False


def _link_fd(fd: int, name: bytes, dir_fd: int, fds: int) -> None:
    """The link of :func:`_link_in`: through ``fds`` if open, else ``/proc/self/fd``."""
    if fds >= 0:
        os.link(b"%d" % fd, name, src_dir_fd=fds, dst_dir_fd=dir_fd)
    else:
        os.link(_PROC_FD % fd, name, dst_dir_fd=dir_fd)


def _rename_over(
    walker: Walker,
    rel: bytes,
    dir_fd: int,
    tmp: bytes,
    replace: Replace,
    checked: Checked | None = None,
) -> int:
    """Rename ``tmp`` over ``rel``'s name in ``dir_fd``, its directory; return that
    directory's descriptor (opened again if a directory at ``rel`` had to go).

    A directory at ``rel`` is removed first only if ``replace(rel)`` says so, else
    UsageError. Where ``checked`` holds ``rel``, see :func:`_swap_in` (``tmp`` is then
    the name :func:`_swap_name` gave).
    """
    parent, _, leaf = rel.rpartition(b"/")
    if checked is not None and (was := checked.get(rel, _UNCHECKED)) != _UNCHECKED:
        _swap_in(dir_fd, tmp, leaf, rel, was)
        return dir_fd
    try:
        os.replace(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    except IsADirectoryError:
        if not replace(rel):
            raise UsageError(
                f"{quoted(rel)} is a directory with untracked files where the version has "
                "a file: move it away, or use --force to replace it"
            ) from None
        remove_tree(walker, rel)
        dir_fd = walker.dir(parent)
        os.replace(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
    return dir_fd


def _swap_in(dir_fd: int, tmp: bytes, leaf: bytes, rel: bytes, was: Identity) -> None:
    """Put ``tmp`` at ``leaf`` (both in ``dir_fd``) if what stands there is still
    ``was`` (:data:`Identity`): else leave it, and raise KeptChanged.

    The check and the replacement must not leave a moment in which a write by the
    user (an editor saving, a job appending) is lost: the two names are swapped at
    once (:func:`~vfs._os.beneath.rename_exchange`), then what ``tmp`` names now,
    the old file, is compared with ``was`` and deleted, or swapped back if it
    changed. A write made before the swap is seen in the old file; one made after it
    through a name goes to the new one. (A file written still through a descriptor
    opened before the swap is written to the file deleted: no tool can see that.)
    Where ``was`` is a file, ``tmp`` is a name no cleanup deletes
    (:func:`_swap_name`): killed between the swap and the comparison, the old file
    stays under it, listed as untracked, since it may hold such a write.
    Where nothing stood (``was`` None, or the file was deleted meanwhile), ``tmp`` is
    renamed in only if nothing stands there yet. A swap costs one ``renameat2``, an
    ``fstatat`` and an ``unlinkat`` where a rename alone cost one call: lost in the
    noise of a checkout that replaces 20,000 small files. Where the filesystem
    cannot swap, the old file is compared just before ``tmp`` is renamed over it.
    """
    swapped = False
    if was is not None:
        try:
            swapped = rename_exchange(dir_fd, tmp, leaf)
        except FileNotFoundError:  # (nothing at leaf: deleted meanwhile)
            was = None
        if not swapped and was is not None:
            try:
                st = os.stat(leaf, dir_fd=dir_fd, follow_symlinks=False)
            except FileNotFoundError:
                was = None
            else:
                if statmod.S_ISDIR(st.st_mode) or identity(st) != was:
                    raise KeptChanged(_kept(rel))
                os.replace(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
                return
    if was is None:
        try:
            rename_noreplace(dir_fd, tmp, dir_fd, leaf)
        except FileExistsError:
            raise KeptChanged(_kept(rel)) from None
        return
    st = os.stat(tmp, dir_fd=dir_fd, follow_symlinks=False)  # the old file, or what replaced it
    if statmod.S_ISDIR(st.st_mode) or identity(st) != was:
        try:
            rename_exchange(dir_fd, tmp, leaf)  # back: the user's at its name, ours to delete
        except FileNotFoundError:  # (the new file deleted meanwhile: the user's goes back)
            rename_noreplace(dir_fd, tmp, dir_fd, leaf)
        raise KeptChanged(_kept(rel))
    os.unlink(tmp, dir_fd=dir_fd)


def _kept(rel: bytes) -> str:
    return f"{quoted(rel)} changed while it was being replaced: it was kept as it is"


def _swap_name(rel: bytes, leaf: bytes, tmp: bytes, checked: Checked | None) -> bytes:
    """The name beside ``leaf`` that the new file for ``rel`` takes before it takes
    ``leaf``: ``tmp`` (a temporary's, which a cleanup after a kill deletes), but
    where :func:`_swap_in` swaps it with a file the caller checked, one no cleanup
    deletes (``NAME.TAGn.dvfs-kept``: :func:`~vfs.worktree.remove.aside_leaf`), as
    the old file holds it from the swap until it is compared. A kill before the
    swap leaves the new file under it: listed as untracked, never the user's bytes
    lost. Given as a file is linked in (a small file: no call more than a
    temporary name); a file written under ``tmp`` is renamed to it once whole."""
    if checked is None or checked.get(rel, _UNCHECKED) in (_UNCHECKED, None):
        return tmp
    return aside_leaf(leaf)


def _drop_new(walker: Walker, parent: bytes, name: bytes, fd: int, target: bytes = b"") -> None:
    """After a failure, delete ``name`` in directory ``parent`` if it holds the new
    file (the one open as ``fd``; a link to ``target`` if none is open), not
    the old one a swap put there (:func:`_swap_in`), which may hold a user's write
    and stays where it is."""
    with contextlib.suppress(OSError):
        dir_fd = walker.dir(parent)
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
        if fd >= 0:
            ours = os.fstat(fd).st_ino == st.st_ino
        else:
            ours = statmod.S_ISLNK(st.st_mode) and os.readlink(name, dir_fd=dir_fd) == target
        if ours:
            os.unlink(name, dir_fd=dir_fd)


def place_unnamed(
    walker: Walker, rel: bytes, fd: int, replace: Replace, checked: Checked | None = None
) -> os.stat_result | None:
    """Give ``fd``, a whole file written without a name (:class:`WrittenAhead`), the
    name ``rel``; return its new stat, or None where it cannot be linked there (its
    directory is now on another filesystem: the caller writes the file anew).

    As :func:`write_entry` names its unnamed files: where something stands at ``rel``
    the file is linked under a temporary name and renamed over it (never written
    through), a directory there only if ``replace(rel)`` says so; the directories on
    the way are resolved (and made) now, without following a link. ``checked``: as
    for :func:`write_entry`.
    """
    parent, _, leaf = rel.rpartition(b"/")
    dir_fd = ensure_dir(walker, parent, replace)
    new = _swap_name(rel, leaf, tmp_leaf(leaf), checked)
    try:
        if _link_in(fd, dir_fd, leaf, new):
            return os.fstat(fd)  # (after the link, which changed the ctime)
        _rename_over(walker, rel, dir_fd, new, replace, checked)
        return os.fstat(fd)
    except BaseException as exc:
        _drop_new(walker, parent, new, fd)
        if isinstance(exc, OSError) and exc.errno == errno.EXDEV:
            return None
        if isinstance(exc, OSError) and not isinstance(exc, DvfsError):
            raise not_writable(storage_error(exc, quoted(rel)), rel, "write") from exc
        raise


_PROC_FD = b"/proc/self/fd/%d"  # a descriptor's file, for linkat: how an unnamed file gets a name


def read_batch(
    store: ObjectStore, batch: list[tuple[bytes, Entry]]
) -> dict[bytes, bytes | memoryview]:
    """The chunks of a batch of small files, read a run of a pack at a time.

    A batch is files of one directory in pack order (:func:`restore_many`), so their
    chunks mostly lie side by side: one ``pread`` for a run of them instead of one
    per file (``ObjectStore.read_many``). What could not be read so is left out, and
    :func:`write_entry` reads it alone, failing only the file that uses it.
    """
    return store.read_many(
        c.oid for _, e in batch if e.kind == Kind.FILE and e.size < LARGE_FILE for c in e.chunks
    )


def _write_large(fd: int, entry: Entry, store: ObjectStore) -> None:
    """Restore a large file into the empty file at ``fd``.

    Where the filesystem shares blocks between files (XFS, Btrfs) the file is made of
    its chunks' blocks in the packs (``ObjectStore.share_into``): only the partial
    blocks at the ends of each run of chunks are written, the file takes no room of
    its own until it is changed, and a change to it copies the block it touches
    first, leaving the pack as it was. Every chunk is then read back from the file
    and checked against its id (:func:`_check_shared`), so a damaged pack fails the
    file as it does when the file is written. Elsewhere (ext4, tmpfs) the file is
    written through the page cache (:func:`_write_through`).
    """
    if sum(c.size for c in entry.chunks) == entry.size and store.share_into(
        fd, [(c.oid, c.size) for c in entry.chunks]
    ):
        if _check_shared(fd, entry):
            return
        os.ftruncate(fd, 0)  # (no second descriptor to read it back with: written instead)
    _write_through(fd, entry, store)


def _check_shared(fd: int, entry: Entry) -> bool:
    """Read back the file at ``fd`` that :func:`_write_large` made of shared blocks,
    checking each chunk against its id (ObjectCorrupt names the first that is not),
    past the page cache where the filesystem allows, on READERS threads, and the
    whole file against its digest (:func:`_check_whole`) as the chunks come in order. False,
    having read nothing, where no descriptor to read it with can be had (``fd`` only
    writes; a second one is opened through ``/proc``)."""
    import mmap
    from concurrent.futures import ThreadPoolExecutor

    path = _PROC_FD % fd
    try:
        plain = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        return False
    try:
        direct = open_direct(path, os.O_RDONLY | os.O_CLOEXEC)
    except OSError:
        direct = -1
    room = max(c.size for c in entry.chunks) + 2 * ALIGN
    whole = _whole(entry)
    depth = READERS + 1  # chunks read ahead of the one the file's digest takes next
    # Chunk k is read into slot k % (depth + 1): the one that used it last has been
    # taken into the digest by the time chunk k is asked for.
    slots = [mmap.mmap(-1, room) for _ in range(depth + 1)] if direct >= 0 else []

    def check(oid: bytes, at: int, size: int, k: int) -> bytes | memoryview:
        view = None
        if direct >= 0:  # (None: an alignment the filesystem refuses, read plainly)
            view = read_range_into(direct, at, size, slots[k % len(slots)])
        data: bytes | memoryview = view if view is not None else os.pread(plain, size, at)
        if len(data) != size or hash_bytes(data) != oid:
            if view is not None:
                view.release()
            raise ObjectCorrupt(oid.hex())  # (the line a written file's damage gives)
        return data

    def take(fut: Future[bytes | memoryview]) -> None:
        data = fut.result()
        try:
            if whole is not None:
                whole.update(data)
        finally:
            if isinstance(data, memoryview):
                data.release()

    try:
        with ThreadPoolExecutor(READERS, "dvfs-check") as pool:
            flying: deque[Future[bytes | memoryview]] = deque()
            at = 0
            try:
                for k, c in enumerate(entry.chunks):
                    flying.append(pool.submit(check, c.oid, at, c.size, k))
                    at += c.size
                    if len(flying) > depth:
                        take(flying.popleft())
                while flying:
                    take(flying.popleft())
            finally:
                for fut in flying:
                    fut.cancel()
    finally:
        os.close(plain)
        if direct >= 0:
            os.close(direct)
    _check_whole(entry, whole)
    return True


def _whole(entry: Entry) -> blake3.blake3 | None:
    """A hasher for the digest of a file of several chunks, written in order; None for
    one of one chunk or none, whose digest decoding checked (``vfs.model.codec``)."""
    return hasher() if len(entry.chunks) > 1 else None


def _check_whole(entry: Entry, whole: blake3.blake3 | None) -> None:
    """FormatError, failing this file alone, if ``whole`` (the bytes written) is not the
    digest the version records for ``entry``: its chunks are whole (each was checked
    against its id), but the record is forged or damaged, and the index would record
    that digest for bytes that do not have it."""
    if whole is not None and whole.digest() != entry.digest:
        raise FormatError(f"{false_digest('', whole.digest(), entry.digest)}: nothing was written")


def _write_through(fd: int, entry: Entry, store: ObjectStore) -> None:
    """Write a large file's chunks through the page cache, reading the next ones meanwhile.

    READERS threads read up to READ_AHEAD + 1 chunks at once (past the page cache,
    ``ObjectStore.read_into``), into buffers of their own that are reused, while one
    thread writes each chunk, in order, from the buffer it was read into and this
    thread takes it into the file's digest at the same time. The chunks of a file of
    several are not hashed one by one: the file's digest, which the version records
    (and the ids from the ref down to the version prove), proves every byte of it,
    and the file is named only once it matched. Where it does not, each chunk is
    read and verified again to name a damaged one (``ObjectCorrupt``, as a chunk
    checked on reading gives), else the version's digest is false (``FormatError``).
    Hashing them too cost 0.4 CPU-s a GiB on a checkout whose two cores are busy.

    Several direct reads in flight keep the disk busy where one at a time waits on each
    request's latency (reading 1 GiB of packs on a virtio disk: 0.7-1.0 s with four in
    flight, 2.3-3.5 s with one). The buffers are sized for this file's largest chunk,
    so memory stays bounded. One writer: buffered writes to one file take its inode's
    lock, and a second thread only spun on it.

    Through the page cache, not past it (``O_DIRECT``) as packs are written: a
    restored file is the user's to read next, and a checkout reads its packs and
    would write its file on the same disk at the same time. On the benchmark machine
    (the EPYC of ``benchmarks/README.md``) restoring its 1 GiB file took 6.6-6.9 s
    written direct against 4.5 s through the page cache: the direct writes shared the
    disk with the packs' reads (about 500 MB/s for both together), and the index's
    fsync then waited 1.1 s for the device to flush them. Written this way the file
    is written back by the kernel after the command, as ``cp`` leaves a copy; it is
    not fsynced either way (``docs/architecture.md`` §11).

    The file is given its blocks first, its size left to grow with its bytes
    (:func:`~vfs._os.direct_io.reserve_blocks`): a disk too full for it fails before
    anything is written, and ext4 writes a size to disk only with the data it covers,
    so a power cut before the kernel wrote the file back leaves it shorter than its
    version's, which ``status`` sees, not of the full size reading as zeros (as a
    size given with the blocks would).
    """
    import mmap
    from concurrent.futures import ThreadPoolExecutor

    if sum(c.size for c in entry.chunks) == entry.size:  # (else written as it comes)
        reserve_blocks(fd, 0, entry.size)
    room = max(c.size for c in entry.chunks) + 2 * ALIGN
    # Chunk i is read into slot i % (READ_AHEAD + 2): when it is asked for, the chunk
    # that used the slot last has been written (one write is in flight at a time, of a
    # chunk at least READ_AHEAD + 1 before it).
    slots = [mmap.mmap(-1, room) for _ in range(READ_AHEAD + 2)]
    ahead: deque[Future[bytes | memoryview]] = deque()
    whole = _whole(entry)
    with (
        ThreadPoolExecutor(1, "dvfs-restore") as writer,
        ThreadPoolExecutor(READERS, "dvfs-read") as reader,
    ):
        out = _InOrder(fd, writer, whole)
        try:
            for i, c in enumerate(entry.chunks):
                slot = slots[i % len(slots)]
                ahead.append(reader.submit(store.read_into, c.oid, slot, verify=whole is None))
                if len(ahead) > READ_AHEAD:
                    out.put(ahead.popleft().result())
            while ahead:
                out.put(ahead.popleft().result())
            out.finish()
            if whole is not None and whole.digest() != entry.digest:
                _name_damage(entry, store)  # a damaged chunk (they were not hashed), or
                _check_whole(entry, whole)  # else the version's digest is false
        except BaseException:
            for fut in ahead:
                fut.cancel()
            out.abandon()
            raise
    # The slots are unmapped once the last view of them is gone, with this frame.


def _name_damage(entry: Entry, store: ObjectStore) -> None:
    """ObjectCorrupt for the first chunk of ``entry`` that is not its id, each read
    and verified again; nothing if every one is (then the version's digest is false)."""
    for c in entry.chunks:
        store.get(c.oid)


class _InOrder:
    """Writes chunks one after another at the end of a new file, each on ``writer``
    while the caller's thread takes it into ``whole`` (the file's digest), one write
    in flight: :meth:`put` returns once the chunk before is written, so the buffer of
    any chunk before that one may be reused."""

    def __init__(self, fd: int, writer: ThreadPoolExecutor, whole: blake3.blake3 | None) -> None:
        self._fd = fd
        self._writer = writer
        self._whole = whole
        self._at = 0
        self._flying: tuple[Future[None], bytes | memoryview] | None = None

    def put(self, data: bytes | memoryview) -> None:
        """Write ``data`` next, hashing it meanwhile; wait for the write before it."""
        self._wait()
        self._flying = (self._writer.submit(pwrite_all, self._fd, data, self._at), data)
        self._at += len(data)
        if self._whole is not None:
            self._whole.update(data)

    def finish(self) -> None:
        """Wait for the last write (its error raised here)."""
        self._wait()

    def abandon(self) -> None:
        """Wait for the write in flight, its error dropped: the caller is failing."""
        with contextlib.suppress(Exception):
            self._wait()

    def _wait(self) -> None:
        if self._flying is None:
            return
        fut, data = self._flying
        self._flying = None
        try:
            fut.result()
        finally:
            if isinstance(data, memoryview):
                data.release()


WRITE_AHEAD_MAX = 64  # large files written ahead at most (each holds a descriptor till named)


class WrittenAhead:
    """Large files of a version written without a name by a helper process, while the
    checkout is still deciding what to write (:func:`write_ahead`).

    Nothing of them is seen in the working tree until :func:`restore_many` names one
    (:func:`place_unnamed`); those it does not name go when :meth:`close` kills the
    helper and closes their descriptors, and a kill of the command frees them too (the
    helper dies with it; the kernel frees a file nobody named or holds).
    """

    def __init__(self, helper: Helper, files: list[tuple[bytes, Entry, int]]) -> None:
        self._helper: Helper | None = helper
        self._files = files  # (path, entry, descriptor; -1 once handed out or closed)
        self._at = {rel: k for k, (rel, _, _) in enumerate(files)}
        self._written: dict[int, bool] = {}  # as the helper reported them
        self._lock = threading.Lock()

    def take(self, rel: bytes, entry: Entry) -> int:
        """The descriptor of ``rel`` written whole as ``entry``, for the caller to name
        and close; -1 if it is not written ahead, or its writing failed (the caller
        writes it as usual, and meets the error itself). Waits for the helper to
        report it."""
        with self._lock:
            k = self._at.pop(rel, None)
            if k is None:
                return -1
            _, wrote, fd = self._files[k]
            self._files[k] = (rel, wrote, -1)
            while k not in self._written and self._helper is not None:
                ok, frame = self._helper.receive()
                if not ok or frame is None:  # (ended: whatever it did not report failed)
                    self._stop()
                    break
                at, whole = frame
                self._written[at] = bool(whole)
            if wrote is entry and self._written.get(k, False):
                return fd
            os.close(fd)  # (an unnamed file: closing it frees what was written)
            return -1

    def only(self, wanted: Iterable[bytes]) -> None:
        """The checkout writes only ``wanted`` of these: if none, stop the helper now."""
        with self._lock:
            if self._at.keys().isdisjoint(wanted):
                self._stop()

    def close(self) -> None:
        """Stop the helper if it runs, and free every file not taken."""
        with self._lock:
            self._stop()
            for k, (rel, entry, fd) in enumerate(self._files):
                if fd >= 0:
                    os.close(fd)
                    self._files[k] = (rel, entry, -1)
            self._at.clear()

    def _stop(self) -> None:
        helper, self._helper = self._helper, None
        if helper is not None:
            helper.kill()  # (what it writes has no name: nothing to clean up)
            helper.close()


def write_ahead(
    root: Path, wanted: Mapping[bytes, Entry], store: ObjectStore
) -> WrittenAhead | None:
    """Start writing the version's large files that nothing stands at yet, unnamed.

    A checkout spends its first moments deciding (the index, the working tree's
    state, what would be overwritten), on one core, before it writes anything; a large
    file then takes the disk longest. So a forked helper writes each large file
    (LARGE_FILE or more) whose directory exists, where nothing stands at its name,
    and whose chunks are all here, into a file without a name in that directory
    (``O_TMPFILE``), while the checkout decides: nothing in the working tree changes
    until :func:`restore_many` links one in, and only if the checkout writes it.
    None when there is nothing to write so, no second CPU, other threads run (a fork
    now could leave their locks held in the helper), or no unnamed files can be made.
    """
    large = [(p, e) for p, e in wanted.items() if e.kind == Kind.FILE and e.size >= LARGE_FILE]
    if not large or not spare_cpus(1):
        return None
    files: list[tuple[bytes, Entry, int]] = []
    try:
        with Walker(root) as walker:
            for rel, e in large[:WRITE_AHEAD_MAX]:
                try:
                    dir_fd, leaf = walker.parent(rel)
                    if _exists(dir_fd, leaf) or store.missing(c.oid for c in e.chunks):
                        continue
                    fd = _open_anonymous(dir_fd, e.mode & PERM_BITS)
                except OSError:  # (no directory there, say: the checkout sees to it)
                    continue
                if fd < 0:
                    break
                files.append((rel, e, fd))
        if not files:
            return None
        import concurrent.futures.thread  # noqa: F401  (once, for both processes)

        helper = Helper.start(lambda ch: _write_ahead_share(ch, files, store))
    except BaseException:
        for _, _, fd in files:
            os.close(fd)
        raise
    if helper is None:
        for _, _, fd in files:
            os.close(fd)
        return None
    return WrittenAhead(helper, files)


def _exists(dir_fd: int, name: bytes) -> bool:
    """Whether anything (a link too) stands at ``name`` in ``dir_fd``."""
    try:
        os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return False
    return True


def _write_ahead_share(
    channel: Channel, files: list[tuple[bytes, Entry, int]], store: ObjectStore
) -> None:
    """The write-ahead helper's work: each file, then a frame (its position, whether it
    was written whole and given its mtime). A file that failed is left for the parent
    to write as usual. The last frame is None."""
    for k, (_, e, fd) in enumerate(files):
        whole = False
        try:
            _write_large(fd, e, store)
            os.utime(fd, ns=(e.mtime_ns, e.mtime_ns))
            whole = True
        except Exception:  # (the parent meets it again, and reports it)
            pass
        finally:
            os.close(fd)
        if not channel.send((k, whole)):
            return
    channel.send(None)


def restore_many(
    root: Path,
    entries: Iterable[tuple[bytes, Entry]],
    store: ObjectStore,
    workers: Workers,
    replace: Replace,
    ahead: WrittenAhead | None = None,
    ready: Callable[[], None] | None = None,
    where: Mapping[bytes, tuple[int, int]] | None = None,
    pending: Callable[[], bool] | None = None,
    idle: Callable[[Mapping[bytes, Staged]], None] | None = None,
    checked: Checked | None = None,
) -> tuple[dict[bytes, Staged], dict[bytes, DvfsError]]:
    """Restore many entries; return their staged records and failures.

    ``checked``: what stood at the paths when the caller checked them (see
    :func:`_swap_in`); a path whose file changed since fails with KeptChanged, its
    file kept as it is.

    ``where``: the places of their chunks in the packs, if the caller looked them up
    already (``ObjectStore.read_order``; ``vfs.ops.checkout.fetch_missing``).

    ``ready``, if given, is called once the files are sorted and batched, before
    anything changes (a checkout's marks become durable meanwhile:
    ``vfs.ops.checkout``); not when there is nothing to restore. While ``pending()``
    says that ``ready`` would still wait, the chunks of the first batches this
    process restores are read, decompressed and verified (up to PREFETCH_BYTES),
    which changes nothing: that fsync queues behind a large file's direct writes
    (0-260 ms on the benchmark's disk) with this process otherwise idle. ``idle``,
    if given, is called once with the records made so far when this process has no
    small file left to write but a large file is still being written (a checkout
    encodes its index meanwhile: ``Index.encode_ahead``).

    Small files are restored directory by directory in the order of their objects in
    the packs, on this thread: creating one is a few short system calls with Python
    between them, so a second thread only passes the interpreter lock back and forth
    (20,000 small files: 2.35 s on one thread, 2.9-3.0 s on two). Past RESTORE_SPLIT
    of them, a forked helper process (``vfs._os.helper_process``) restores some too: the two take
    directories from shared :class:`~vfs._os.helper_process.Tickets`, so the one with more CPU
    to spare does more, and the helper reports each directory's records as it goes.
    Whatever it did not report (it failed, or an object of a file was bad) is
    restored here again. Files of LARGE_FILE and more go on a thread beside: they
    mostly wait for the disk (see :func:`_write_through`); one in ``ahead`` is only
    waited for and linked in (:func:`write_ahead`).

    The records carry the restored files' new stat; a stat result itself is not
    kept (about 600 bytes each: 12 MB for 20,000 files).

    A damaged or missing object fails only the files that use it; the others are
    restored. Errors other than object errors (disk full, untracked files in the way:
    see :func:`write_entry` for ``replace``) stop the whole operation.
    """
    todo = list(entries)
    # Small files in pack order, their packs read ahead; large files are read direct,
    # chunk by chunk (a readahead of their packs would read them twice).
    large_items = [item for item in todo if item[1].size >= LARGE_FILE]
    small_items = [item for item in todo if item[1].size < LARGE_FILE] if large_items else todo
    firsts = [e.chunks[0].oid for _, e in small_items if e.chunks]
    if where is None:
        places = store.read_order(firsts)
    else:  # (the small files' alone: their packs are the ones read ahead)
        places = {oid: at for oid in firsts if (at := where.get(oid)) is not None}
    nowhere = (-1, 0)
    place_of = places.get
    small_items.sort(
        key=lambda item: place_of(item[1].chunks[0].oid, nowhere) if item[1].chunks else nowhere
    )
    done: dict[bytes, Staged] = {}
    failed: dict[bytes, DvfsError] = {}
    if not todo:
        return done, failed

    def run(
        batch: list[tuple[bytes, Entry]],
        walker: Walker | None,
        one: bool = False,
        have: dict[bytes, bytes | memoryview] | None = None,
    ) -> list[Staged | DvfsError]:
        """Restore ``batch`` (``one``: one of ``small``, a batch already, whose
        chunks are ``have`` if read before)."""
        if walker is None:  # on the large files' thread: a walker of its own
            with Walker(root) as own:
                return run(batch, own)
        out: list[Staged | DvfsError] = []
        # (what is read at once stays bounded)
        for piece in [batch] if one else _restore_batches(batch):
            if have is None:
                have = read_batch(store, piece)
            wrote = write_batch(walker, piece, store, replace, have, checked)
            have = None
            for (_, e), st in zip(piece, wrote, strict=True):
                out.append(st if isinstance(st, DvfsError) else staged_from_entry(e, st))
        return out

    def record(batch: list[tuple[bytes, Entry]], results: list[Staged | DvfsError]) -> None:
        size = 0
        for (rel, e), res in zip(batch, results, strict=True):
            if isinstance(res, DvfsError):
                failed[rel] = res
            else:
                done[rel] = res
            size += e.size
        workers.progress.advance(len(batch), size)

    small = list(_restore_batches(small_items))
    first = list(itertools.accumulate(map(len, small), initial=0))  # of each batch, in flat
    flat = small_items  # (the batches' files, in order)
    restored = bytearray(len(flat))  # 1: restored here, or by the helper as it reported
    helper = None
    # (the tickets before ``ready``, whose thread may run yet: the helper after it)
    tickets = Tickets.share(len(small)) if len(flat) >= RESTORE_SPLIT and cpus() > 1 else None

    def claims() -> Iterator[int]:
        """The batches this process restores: all, or those it claims first."""
        if tickets is None:
            yield from range(len(small))
            return
        while (pieces := tickets.claim()) is not None:
            yield from pieces

    mine = claims()
    early: list[tuple[int, dict[bytes, bytes | memoryview]]] = []  # (read while waiting)
    packs_asked = False
    try:
        if ready is not None:
            if pending is not None and small and pending():
                # The small files' packs are read ahead from here on (the large files'
                # reads are under way by now: asking first held those back).
                store.read_ahead_packs(places)
                packs_asked = True
                held = 0
                while held < PREFETCH_BYTES and pending():
                    k = next(mine, None)
                    if k is None:
                        break
                    early.append((k, read_batch(store, small[k])))
                    held += sum(e.size for _, e in small[k])
            ready()
    except BaseException:
        if tickets is not None:
            tickets.close()
        raise
    if tickets is not None and spare_cpus(1):  # (before any thread starts)
        shared = tickets
        helper = Helper.start(
            lambda ch: _restore_share(ch, shared, small, first, root, store, replace, checked)
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
            size = 0
            for at, mtime_ns, ctime_ns, ino in frame:
                rel, e = flat[at]
                done[rel] = staged_with_stat(e, mtime_ns, ctime_ns, ino)
                restored[at] = 1
                size += e.size
            workers.progress.advance(len(frame), size)  # (once a frame: a directory)

    def stop_helper() -> None:  # for good, before any of its files is restored here
        if helper is not None:
            if not helper_done:
                helper.interrupt()
            helper.close()
        if tickets is not None:
            tickets.close()

    workers.progress.start("restoring", len(todo), sum(e.size for _, e in todo))
    from concurrent.futures import FIRST_COMPLETED, wait

    stopping = False  # (the large files' thread starts no file once this is over)

    def run_large(item: tuple[bytes, Entry]) -> list[Staged | DvfsError]:
        rel, e = item
        fd = ahead.take(rel, e) if ahead is not None else -1
        if fd >= 0:
            try:
                with Walker(root) as own:
                    st = place_unnamed(own, rel, fd, replace, checked)
            except KeptChanged as exc:
                return [exc]
            finally:
                os.close(fd)
            if st is not None:
                return [staged_from_entry(e, st)]
        if stopping:
            return []
        return run([item], None)

    large = {workers.restore_large.submit(run_large, item): [item] for item in large_items}

    def collect() -> None:
        for fut in [f for f in large if f.done()]:
            record(large.pop(fut), fut.result())

    walker = Walker(root)
    try:
        # The small files' packs are read ahead once the large files' reads are under
        # way: asking for them first held those back (the call may wait for the disk).
        if not packs_asked:
            store.read_ahead_packs(places)
        for k, have in chain(early, ((k, None) for k in mine)):
            record(small[k], run(small[k], walker, True, have))
            restored[first[k] : first[k + 1]] = b"\1" * (first[k + 1] - first[k])
            listen(0)
            collect()
        if idle is not None and large:
            idle(done)
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
        stopping = True
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
    checked: Checked | None,
) -> None:
    """A restore helper's work: the batches it claims, each followed by a frame.

    A frame lists (position among all the batches' files, mtime_ns, ctime_ns, inode)
    of each file restored; a file whose object is bad, or that was kept (KeptChanged),
    is left out, for the parent to try again and get the error itself. The last
    frame is None.
    """
    with Walker(root) as walker:
        while (pieces := tickets.claim()) is not None:
            for k in pieces:
                batch = batches[k]
                have = read_batch(store, batch)
                restored = [
                    (first[k] + i, st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
                    for i, st in enumerate(
                        write_batch(walker, batch, store, replace, have, checked)
                    )
                    if not isinstance(st, DvfsError)
                ]
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
