"""Working-tree paths resolved beneath the repository root, never through a link.

A working tree is not trusted: it may hold a symbolic link where a directory was
(``data -> /etc``), made by its owner, unpacked from an archive, or swapped in by
another process while dvfs runs. A path handed to the kernel whole follows such a
link, and dvfs would read, write or delete outside the repository. So every
working-tree path is resolved from a descriptor of the root, one directory at a time,
each opened relative to the one before with ``O_NOFOLLOW | O_DIRECTORY``; the last
name is then acted on relative to its directory's descriptor (``openat`` with
``O_NOFOLLOW``, ``unlinkat``, ``renameat``, ``fstatat``, ``readlinkat``, ...).

A component that is a link (or a file) where a directory is expected fails the
resolution with ``ENOTDIR``: callers treat the paths below it as not in the working
tree. A component swapped for a link *after* it was opened redirects nothing: the
descriptor still names the directory that was there. ``..`` and ``.`` are refused
as components, so a resolution cannot climb out either.

:class:`Walker` keeps the descriptors of the directory it resolved last, so that a
run of paths in one directory, or in neighbouring ones, costs one ``fstatat`` or
``openat`` each rather than a walk from the root each. Only the deepest ``KEEP`` of
them are held (a path 1,000 directories deep does not hold 1,000 descriptors); the
rest are opened again when needed. A walker belongs to one thread.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat as statmod
from pathlib import Path
from typing import Any

WALK = os.O_PATH | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # a directory to resolve in
LIST = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC  # a directory to list
# A file to read: never a link, never a wait on a FIFO or device, never a controlling tty.
READ = os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_NOCTTY | os.O_CLOEXEC
DVFS_DIR = ".dvfs"  # a repository's own directory (vfs.repo.repository)
KEEP = 48  # directory descriptors a walker holds beside the root's
# Errors that mean "not in the working tree": missing, or below a non-directory.
ABSENT = frozenset({errno.ENOENT, errno.ENOTDIR, errno.ELOOP})
_BAD = (b"", b".", b"..")


class Walker:
    """Directories below ``root``, opened without following links (see the module doc)."""

    def __init__(self, root: Path | bytes) -> None:
        self.root = os.fsencode(root)
        self._names: list[bytes] = []  # components of the directory resolved last
        self._fds: list[int] = [os.open(self.root, WALK & ~os.O_NOFOLLOW)]  # [i]: names[:i]
        self._listable = [False]  # [i]: fds[i] is open with LIST (else WALK)
        self._low = 1  # fds below this (but the root's) are all let go of

    def __enter__(self) -> Walker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close every descriptor held (again: nothing)."""
        for fd in self._fds:
            if fd >= 0:
                os.close(fd)
        self._fds = []
        self._names = []
        self._listable = []

    def dir(self, rel: bytes, *, listable: bool = False) -> int:
        """A descriptor of directory ``rel`` (b"" is the root), ``O_PATH`` or ``LIST``.

        ``listable`` asks for one open for reading (``LIST``), to list the directory
        or read its entries' attributes. Valid until the next call on this walker.
        OSError with ENOENT or ENOTDIR if a component is missing or is not a
        directory (a link, say).
        """
        parts = rel.split(b"/") if rel else []
        names = self._names
        common = 0
        limit = min(len(parts), len(names))
        while common < limit and parts[common] == names[common]:
            common += 1
        self._cut(common)
        fds, flags = self._fds, self._listable
        last = len(parts)
        if listable and last == common and fds[last] >= 0 and not flags[last]:  # held: reopen
            fd = os.open(b".", LIST, dir_fd=fds[last])
            os.close(fds[last])
            fds[last], flags[last] = fd, True
        start = common
        while fds[start] < 0:  # let go of: open again from the nearest one held
            start -= 1
        self._low = low = min(self._low, start + 1)
        for i in range(start, last):
            name = parts[i]
            if name in _BAD:
                raise OSError(errno.EINVAL, f"invalid path component {name!r}")
            read = listable and i == last - 1
            fd = os.open(name, LIST if read else WALK, dir_fd=fds[i])
            if i < common:
                fds[i + 1], flags[i + 1] = fd, read
            else:
                fds.append(fd)
                flags.append(read)
                names.append(name)
        top = len(fds) - KEEP
        while low < top:  # hold only the deepest KEEP: let go of the others
            if fds[low] >= 0:
                os.close(fds[low])
                fds[low] = -1
            low += 1
        self._low = low
        return fds[-1]

    def parent(self, rel: bytes) -> tuple[int, bytes]:
        """(descriptor of ``rel``'s directory, ``rel``'s last name); see :meth:`dir`."""
        head, _, leaf = rel.rpartition(b"/")
        if leaf in _BAD:
            raise OSError(errno.EINVAL, f"invalid path component {leaf!r}")
        return self.dir(head), leaf

    def lstat(self, rel: bytes) -> os.stat_result | None:
        """lstat of ``rel``, or None if it is missing or below a non-directory (or has
        a name longer than the filesystem takes: nothing can be there)."""
        try:
            if not rel:
                return os.stat(self._fds[0])
            fd, leaf = self.parent(rel)
            return os.stat(leaf, dir_fd=fd, follow_symlinks=False)
        except OSError as exc:
            if exc.errno in ABSENT or exc.errno == errno.ENAMETOOLONG:
                return None
            raise

    def forget(self, rel: bytes) -> None:
        """Let go of ``rel`` and the directories below it (they were removed or replaced)."""
        parts = rel.split(b"/") if rel else []
        names = self._names
        if len(names) >= len(parts) and names[: len(parts)] == parts:
            self._cut(max(len(parts) - 1, 0))

    def _cut(self, depth: int) -> None:
        """Keep only the first ``depth`` names (and the root)."""
        fds, names = self._fds, self._names
        while len(names) > depth:
            names.pop()
            self._listable.pop()
            fd = fds.pop()
            if fd >= 0:
                os.close(fd)


def listing(fd: int) -> tuple[Any, bool]:
    """A ``scandir`` of the directory open at ``fd`` (``LIST``); True if names are bytes.

    Listed through ``/proc/self/fd``, which names the open directory itself rather
    than a path to it, so that the names come as bytes with no conversion each;
    where ``/proc`` is missing, by the descriptor (names as ``str``: ``os.fsencode``).
    """
    try:
        return os.scandir(_PROC_FD % fd), True
    except FileNotFoundError:
        return os.scandir(fd), False


def names_in(fd: int) -> list[bytes]:
    """The names in the directory open at ``fd`` (``LIST``), as bytes: what
    :func:`listing` lists, without an entry object for each."""
    try:
        return os.listdir(_PROC_FD % fd)
    except FileNotFoundError:
        return [os.fsencode(n) for n in os.listdir(fd)]


_PROC_FD = b"/proc/self/fd/%d"


def read_regular(dir_fd: int, name: bytes | str, limit: int) -> bytes | None:
    """The bytes of regular file ``name`` in ``dir_fd``; None if it does not exist.

    Never follows a link and never waits on a FIFO or device: OSError (ELOOP,
    EINVAL) if ``name`` is not a regular file, EFBIG if it holds more than ``limit``
    bytes.
    """
    try:
        fd = os.open(name, READ, dir_fd=dir_fd)
    except FileNotFoundError:
        return None
    try:
        st = os.fstat(fd)
        if not statmod.S_ISREG(st.st_mode):
            raise OSError(errno.EINVAL, "not a regular file", os.fsdecode(name))
        if st.st_size > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", os.fsdecode(name))
        data = os.read(fd, limit + 1)
        if len(data) > limit:
            raise OSError(errno.EFBIG, f"larger than {limit} bytes", os.fsdecode(name))
        return data
    finally:
        os.close(fd)


def open_dir(root: Path | str | bytes | int, rel: str | bytes, *, make: bool = False) -> int:
    """A descriptor (``LIST``) of directory ``rel`` below ``root``; the caller closes it.

    For dvfs's own directories (``.dvfs/runcache``, ``.dvfs/remotes/NAME``, ...): each
    component is opened relative to the one before with ``O_NOFOLLOW | O_DIRECTORY``,
    so that a link on the way, made before the call or swapped in during it, fails the
    open (ELOOP or ENOTDIR) instead of leading it out; what is then written or deleted
    through the descriptor (``openat``, ``unlinkat``, ``renameat``) stays in the
    directory that was opened, whatever is renamed meanwhile. ``root`` itself (a path
    or a descriptor) is trusted: it is the repository or was opened so. ``make`` makes
    missing directories on the way.
    """
    parts = [p for p in os.fsencode(rel).split(b"/") if p]
    if isinstance(root, int):
        fd = os.open(b".", LIST, dir_fd=root)
    else:
        fd = os.open(root, LIST & ~os.O_NOFOLLOW)
    try:
        for name in parts:
            if name in _BAD:
                raise OSError(errno.EINVAL, f"invalid path component {name!r}")
            if make:
                with contextlib.suppress(FileExistsError):
                    os.mkdir(name, 0o777, dir_fd=fd)
            nxt = os.open(name, LIST, dir_fd=fd)
            os.close(fd)
            fd = nxt
    except BaseException:
        os.close(fd)
        raise
    return fd


def open_kept(path: Path, *, make: bool = False) -> int:
    """:func:`open_dir` of directory ``path``, a place dvfs keeps its own files in below
    a repository's ``.dvfs`` (``.dvfs/remotes/NAME/index``, say): every component
    after the last ``.dvfs`` of ``path`` is opened without following a link. A
    ``path`` with no ``.dvfs`` on its way (a place a caller names) has only its last
    component so opened (``make``: the directories above it are made as by path)."""
    parts = path.parts
    if DVFS_DIR in parts[:-1]:
        i = len(parts) - 1 - parts[-2::-1].index(DVFS_DIR) - 1
        return open_dir(Path(*parts[: i + 1]), "/".join(parts[i + 1 :]), make=make)
    if make:
        os.makedirs(path.parent, exist_ok=True)
    return open_dir(path.parent, path.name, make=make)


def remove_tree(dir_fd: int, name: str | bytes, *, strict: bool = False) -> None:
    """Delete ``name`` in ``dir_fd`` and all below it, following no link (a link is
    removed, not what it points to); nothing if it is missing. Other errors are
    ignored (nothing of it is needed), or raised with ``strict``."""
    name = os.fsdecode(name)
    try:
        st = os.stat(name, dir_fd=dir_fd, follow_symlinks=False)
    except FileNotFoundError:
        return
    except OSError:
        if strict:
            raise
        return
    if not statmod.S_ISDIR(st.st_mode):
        try:
            os.unlink(name, dir_fd=dir_fd)
        except FileNotFoundError:
            pass
        except OSError:
            if strict:
                raise
        return
    import shutil  # (here: 2 ms of imports that a `status` never needs)

    shutil.rmtree(name, ignore_errors=not strict, dir_fd=dir_fd)


RENAME_NOREPLACE = 1  # renameat2(2): fail with EEXIST rather than replace the target
RENAME_EXCHANGE = 2  # renameat2(2): swap the two names, both of which must exist
_renameat2: list[Any] = []  # (libc's renameat2 once looked up, or None: see rename_exchange)


def rename_exchange(dir_fd: int, a: bytes, b: bytes) -> bool:
    """Swap names ``a`` and ``b`` of directory ``dir_fd`` at once (``renameat2`` with
    ``RENAME_EXCHANGE``): each then names what the other did, and no moment exists
    when either is missing. False where the kernel or the filesystem cannot
    (ENOSYS, EINVAL, EOPNOTSUPP), or the C library has no ``renameat2``; OSError for
    any other failure (ENOENT: one of them is not there).

    The function is looked up once a process (a ctypes call costs about 1 us after);
    ctypes is imported only then.
    """
    if not _renameat2:
        import ctypes  # (here: a `status` never renames, and importing ctypes costs 3 ms)

        _renameat2.append(getattr(ctypes.CDLL(None, use_errno=True), "renameat2", None))
        _renameat2.append(ctypes.get_errno)
    call, get_errno = _renameat2
    if call is None:
        return False
    if call(dir_fd, a, dir_fd, b, RENAME_EXCHANGE) == 0:
        return True
    err = get_errno()
    if err in (errno.ENOSYS, errno.EINVAL, errno.EOPNOTSUPP):
        return False
    raise OSError(err, os.strerror(err), os.fsdecode(b))


def rename_noreplace(src_dir: int, src: bytes, dst_dir: int, dst: bytes) -> None:
    """Rename ``src`` in ``src_dir`` to ``dst`` in ``dst_dir``; EEXIST if ``dst`` exists.

    One ``renameat2`` with ``RENAME_NOREPLACE``, so that nothing made at ``dst``
    meanwhile is ever replaced. Where the kernel or the filesystem lacks the flag
    (ENOSYS, EINVAL), ``dst`` is checked and a plain ``renameat`` follows: replacing
    is then possible only for a file made in between.
    """
    import ctypes  # only here: ``mv`` alone renames, and importing ctypes costs 3 ms

    libc = ctypes.CDLL(None, use_errno=True)
    call = getattr(libc, "renameat2", None)
    if call is not None:
        if call(src_dir, src, dst_dir, dst, RENAME_NOREPLACE) == 0:
            return
        err = ctypes.get_errno()
        if err not in (errno.ENOSYS, errno.EINVAL):
            raise OSError(err, os.strerror(err), os.fsdecode(dst))
    try:
        os.stat(dst, dir_fd=dst_dir, follow_symlinks=False)
    except FileNotFoundError:
        os.rename(src, dst, src_dir_fd=src_dir, dst_dir_fd=dst_dir)
        return
    raise OSError(errno.EEXIST, os.strerror(errno.EEXIST), os.fsdecode(dst))
