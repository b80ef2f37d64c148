"""Files made without a name (``O_TMPFILE``) and linked into place later."""

from __future__ import annotations

import os
from pathlib import Path


def unnamed_file(dir_fd: int) -> int:
    """A new empty file, read-write and mode 0600, on the filesystem of ``dir_fd``.

    It has no name until :func:`link_unnamed` gives it one, and vanishes when its
    last descriptor closes. OSError where the filesystem has no ``O_TMPFILE``
    (EOPNOTSUPP, EISDIR on old kernels) or is full (ENOSPC, EDQUOT).
    """
    return os.open(".", os.O_TMPFILE | os.O_RDWR | os.O_CLOEXEC, 0o600, dir_fd=dir_fd)


def link_unnamed(fd: int, path: Path | str, dir_fd: int) -> None:
    """Give the unnamed file open at ``fd`` the name ``path`` (relative to the directory
    open at ``dir_fd``).

    ``linkat(AT_SYMLINK_FOLLOW)`` of ``/proc/self/fd/FD``: the file, not the link in
    ``/proc``. OSError if ``path`` exists (EEXIST) or ``/proc`` is missing.
    """
    os.link(f"/proc/self/fd/{fd}", path, dst_dir_fd=dir_fd)
