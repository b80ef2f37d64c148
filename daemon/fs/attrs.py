"""Owners, modes and times of the daemon's working tree, by the POSIX rules.

The kernel checks permissions (the mount has ``default_permissions``): who may chown,
chgrp, chmod or set times is decided before a request reaches the daemon. What is
left to the daemon, as to any filesystem, is what a change does to the node:

- **New nodes** belong to the caller's fsuid, and to its fsgid unless the directory has
  the setgid bit (then to the directory's group, and a new directory inherits the bit).
- **chown** of anything but a directory clears the setuid bit, and the setgid bit when
  the group may execute (a setgid file without group execute is a mandatory-locking
  mark, kept), whoever asks, as Linux does.
- **Writes and truncation** clear the same bits unless the writer is root (it holds
  CAP_FSETID); libfuse leaves this to the filesystem (``FUSE_CAP_HANDLE_KILLPRIV``).
- **Times**: every change of content sets mtime and ctime; every change of attributes
  or names sets ctime; ``utimensat`` sets atime and mtime apart, ``UTIME_NOW`` to the
  clock and ``UTIME_OMIT`` leaving one as it was. Reads do not set atime (as with
  ``noatime``): the kernel sends the daemon no request for them.

Versions record none of this but the permission bits (``vfs.model.codec.PERM_BITS``) and
the mtime: owners, the setuid, setgid and sticky bits, atime and ctime live in the
working tree only, and FIFOs, sockets and device nodes (:data:`SPECIAL`) are never
versioned.
"""

from __future__ import annotations

import stat

MODE_BITS = 0o7777  # what chmod sets: permissions plus setuid, setgid and sticky
SPECIAL = frozenset({stat.S_IFIFO, stat.S_IFSOCK, stat.S_IFCHR, stat.S_IFBLK})
ROOT = 0


def new_owner(
    uid: int, gid: int, mode: int, parent_gid: int, parent_mode: int, *, directory: bool
) -> tuple[int, int, int]:
    """(uid, gid, mode) of a node the caller (``uid``, ``gid``) makes in a directory."""
    if parent_mode & stat.S_ISGID:
        gid = parent_gid
        if directory:
            mode |= stat.S_ISGID
    return uid, gid, mode & MODE_BITS


def after_chown(mode: int, *, directory: bool) -> int:
    """The mode of a node whose owner or group was changed."""
    if directory:
        return mode
    return _killed(mode)


def after_write(mode: int, uid: int) -> int:
    """The mode of a file written or truncated by ``uid``."""
    return mode if uid == ROOT else _killed(mode)


def _killed(mode: int) -> int:
    mode &= ~stat.S_ISUID
    if mode & stat.S_IXGRP:
        mode &= ~stat.S_ISGID
    return mode
