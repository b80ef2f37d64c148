"""The repository lock: one state-changing dvfs command at a time per repository.

``.dvfs/lock`` is locked with ``flock`` (released by the kernel if the process dies,
so a kill -9 never leaves a stale lock). The holder writes its pid and command line
into the file so that a waiting command can say who it waits for. A lock file this user
may not write is locked through a read-only descriptor (``open_lock_file``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from vfs import settings
from vfs.errors import FormatError, LockBusy
from vfs.quoting import quote_name


def claim_for_life(path: Path, mode: int = 0o644) -> int | str:
    """Lock ``path`` for as long as this process lives, writing our pid into it.

    Returns the open descriptor (keep it open), or, if another process holds the
    lock, that process's pid as it wrote it ("?" if unknown). A ``path`` that is a
    symbolic link is refused (FormatError), as by :func:`open_lock_file`.
    """
    fd = _open_unlinked(path, os.O_RDWR | os.O_CREAT, mode)  # (we truncate and write it)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
        os.close(fd)
        return holder
    # who holds it is a courtesy: a full disk is no reason to fail
    with contextlib.suppress(OSError):
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
    return fd


def share_for_life(path: Path, mode: int = 0o600) -> int:
    """Hold a shared lock on ``path`` while the returned descriptor stays open.

    Any number of processes may share it; one that wants the whole directory (a
    cleaner, :func:`claim_for_life`) cannot lock it meanwhile. Waits while a cleaner
    holds it, then checks that ``path`` still names the file it locked: a cleaner
    that removed the file (and its directory) leaves a lock nobody else sees, so the
    file is made again and locked anew.
    ``FileNotFoundError`` if the directory itself is gone: the caller makes it again.
    """
    while True:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
        try:
            fcntl.flock(fd, fcntl.LOCK_SH)
            held = os.fstat(fd)
            now: os.stat_result | None = os.stat(path, follow_symlinks=False)
        except FileNotFoundError:
            now = None
        except BaseException:
            os.close(fd)
            raise
        if now is not None and (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):
            return fd
        os.close(fd)


def open_lock_file(path: Path) -> int:
    """A descriptor of the lock file ``path`` (made if missing) to ``flock``.

    In a repository this user may not write (another user's, on a read-only
    filesystem) the file is opened read-only: ``flock`` needs no more, so a command
    that only reads under the lock (``fsck``) runs, and one that writes fails where
    it writes, with a line naming the directory. A lock file that is a symbolic link
    is refused (FormatError): its holder would truncate wherever it points.
    """
    try:
        return _open_unlinked(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        if exc.errno not in (errno.EACCES, errno.EPERM, errno.EROFS):
            raise
        try:
            return _open_unlinked(path, os.O_RDONLY)
        except OSError:
            raise exc from None


def _open_unlinked(path: Path, flags: int, mode: int = 0o644) -> int:
    """``os.open`` of a lock file that is no symbolic link (its holder truncates and
    writes it): FormatError, one line saying so, if it is one."""
    try:
        return os.open(path, flags | os.O_CLOEXEC | os.O_NOFOLLOW, mode)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise FormatError(
                f"{quote_name(str(path))} is a symbolic link: dvfs writes no lock file through a "
                "link; remove it (it is made again)"
            ) from None
        if exc.errno == errno.EISDIR:
            raise FormatError(
                f"{quote_name(str(path))} is a directory, where dvfs keeps a lock file: move it "
                "away (the file is made again)"
            ) from None
        raise


def _command() -> str:
    """This process as its user started it, for the message of a lock it holds: ``dvfs
    commit -m`` for the command line, ``python train.py --lr`` for a program using the
    Python API (``vfs.track``), ``python -m daemon --source`` for a mount's daemon."""
    argv = sys.argv if sys.argv else [""]
    prog = Path(argv[0])
    if not argv[0]:  # an interactive interpreter
        name = ["python"]
    elif prog.name == "dvfs" or prog.parts[-3:] == ("vfs", "cli", "__main__.py"):
        name = ["dvfs"]
    elif prog.name == "__main__.py":
        name = ["python", "-m", prog.parent.name]
    else:
        name = ["python", prog.name]
    return " ".join([*name, *argv[1:3]])


@contextmanager
def repository_lock(path: Path, wait: float | None = None) -> Iterator[None]:
    """Hold the lock at ``path``, waiting up to ``wait`` seconds for another holder.

    ``wait`` defaults to ``DVFS_LOCK_TIMEOUT`` (see vfs.settings), read now; only then
    does the message of a busy lock say to raise it.
    """
    hint = ""
    if wait is None:
        wait = settings.lock_timeout()
        hint = " (or raise DVFS_LOCK_TIMEOUT)"
    fd = open_lock_file(path)
    try:
        deadline = time.monotonic() + wait
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    holder = os.pread(fd, 400, 0).decode(errors="replace").strip()
                    who = f" ({holder})" if holder else ""
                    raise LockBusy(
                        f"the repository lock {path} is held by another dvfs command{who}; "
                        f"run yours again when it has finished{hint}"
                    ) from None
                time.sleep(0.05)
        cmd = _command()
        with contextlib.suppress(
            OSError
        ):  # who holds it is a courtesy; a full disk is no reason to fail
            os.ftruncate(fd, 0)
            # (an argument in bytes no encoding reads is written escaped, never a crash)
            os.pwrite(fd, f"pid {os.getpid()}: {cmd}\n".encode(errors="backslashreplace"), 0)
        try:
            yield
        finally:
            with contextlib.suppress(OSError):
                os.ftruncate(fd, 0)
    finally:
        os.close(fd)
