"""The kernel's mount API (Linux 5.2+: ``fsopen``, ``fsconfig``, ``fsmount``,
``move_mount``, ``open_tree``) and ``umount2``, which ``os`` lacks.

Each is a ``syscall(2)`` through ctypes (the numbers are one table on every
architecture since Linux 5.1); the C library is loaded on first use. A failed call
raises OSError with the kernel's errno, except :func:`umount2`, which returns it.
"""

from __future__ import annotations

import functools
import os
from pathlib import Path
from typing import Any

_OPEN_TREE, _MOVE_MOUNT, _FSOPEN, _FSCONFIG, _FSMOUNT = 428, 429, 430, 431, 432
_FSOPEN_CLOEXEC = 1
_FSCONFIG_SET_STRING, _FSCONFIG_CMD_CREATE = 1, 6
_FSMOUNT_CLOEXEC = 1
_MOUNT_ATTR_NOSUID, _MOUNT_ATTR_NODEV = 0x2, 0x4
_MOVE_MOUNT_F_EMPTY_PATH = 0x4
_OPEN_TREE_CLONE = 1
_MNT_DETACH = 2
_AT_FDCWD = -100


@functools.cache
def _libc() -> Any:
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.syscall.restype = ctypes.c_long
    libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]
    return libc


def _call(number: int, *args: object) -> int:
    """syscall(2); OSError on failure."""
    import ctypes

    got = int(_libc().syscall(ctypes.c_long(number), *args))
    if got < 0:
        code = ctypes.get_errno()
        raise OSError(code, os.strerror(code))
    return got


def fsopen(fstype: bytes) -> int:
    """A new filesystem context of type ``fstype`` (close-on-exec); its descriptor.

    Reading the descriptor gives the filesystem's messages about a failed
    configuration, one per read.
    """
    return _call(_FSOPEN, fstype, _FSOPEN_CLOEXEC)


def fsconfig_string(fs_fd: int, key: bytes, value: bytes) -> None:
    """Set option ``key`` of the filesystem context ``fs_fd`` to ``value``."""
    _call(_FSCONFIG, fs_fd, _FSCONFIG_SET_STRING, key, value, 0)


def fsconfig_create(fs_fd: int) -> None:
    """Create the filesystem its context ``fs_fd`` describes (the superblock)."""
    _call(_FSCONFIG, fs_fd, _FSCONFIG_CMD_CREATE, None, None, 0)


def fsmount(fs_fd: int, *, nosuid: bool, nodev: bool) -> int:
    """A detached mount of the created filesystem ``fs_fd`` (close-on-exec); its descriptor.

    ``nosuid``: set-user-id bits are ignored in it; ``nodev``: device files cannot be opened.
    """
    attrs = (_MOUNT_ATTR_NOSUID if nosuid else 0) | (_MOUNT_ATTR_NODEV if nodev else 0)
    return _call(_FSMOUNT, fs_fd, _FSMOUNT_CLOEXEC, attrs)


def move_mount(mount_fd: int, dst: Path) -> None:
    """Attach the detached mount ``mount_fd`` at ``dst``."""
    _call(_MOVE_MOUNT, mount_fd, b"", _AT_FDCWD, os.fsencode(dst), _MOVE_MOUNT_F_EMPTY_PATH)


def open_tree_clone(path: Path) -> int:
    """A detached copy of the mount at ``path`` (close-on-exec), to attach elsewhere."""
    return _call(_OPEN_TREE, _AT_FDCWD, os.fsencode(path), _OPEN_TREE_CLONE | os.O_CLOEXEC)


def umount2(path: Path, *, lazy: bool = False) -> int:
    """umount2(2), ``MNT_DETACH`` if ``lazy``; 0 on success, else the errno."""
    import ctypes

    if _libc().umount2(os.fsencode(path), _MNT_DETACH if lazy else 0) == 0:
        return 0
    return ctypes.get_errno()
