"""Writing back dirty pages: ``syncfs`` and ``sync_file_range``, which ``os`` lacks.

Both are called through ctypes; the C library is loaded on first use (importing
ctypes costs ~3 ms, which a command that never flushes does not pay).
"""

from __future__ import annotations

import functools
import os
from typing import Any

_SYNC_FILE_RANGE_WRITE = 2


@functools.cache
def _libc() -> Any:
    """The C library, its two calls typed."""
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    libc.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
    libc.syncfs.argtypes = [ctypes.c_int]
    return libc


def start_writeback(fd: int) -> None:
    """Ask the kernel to start writing a file's dirty pages now, without waiting.

    ``sync_file_range(SYNC_FILE_RANGE_WRITE)`` over the whole file; its result is not
    looked at (a later flush reports what failed).
    """
    _libc().sync_file_range(fd, 0, 0, _SYNC_FILE_RANGE_WRITE)


def syncfs(fd: int) -> None:
    """Write back every dirty page of the filesystem holding open file ``fd``; OSError if not."""
    if _libc().syncfs(fd) != 0:
        import ctypes

        err = ctypes.get_errno()
        raise OSError(err, os.strerror(err))
