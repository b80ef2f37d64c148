"""Files sharing blocks with other files (``FICLONERANGE``: XFS, Btrfs, bcachefs).

:func:`clone_range` makes a byte range of one file share the blocks of a range of
another on the same filesystem: nothing is read or written but the two files'
extent maps, and a later write to either copies the block it touches first, so
neither ever sees the other change. Both offsets and the length must be whole
blocks of the filesystem (the last block of the source may end at its end).

A filesystem that cannot share blocks (ext4, tmpfs, a FUSE filesystem, two
filesystems) answers with an error that says so; :func:`clone_range` then returns
False and remembers the destination's filesystem, so that the next file restored
there asks no more (:func:`refused`).
"""

from __future__ import annotations

import errno
import fcntl
import os
import struct

FICLONERANGE = 0x4020940D  # _IOW(0x94, 13, struct file_clone_range), every architecture
BLOCK = 4096  # offsets and lengths cloned are multiples of it (the block size of XFS
# and Btrfs on 4 KiB pages; a filesystem of larger blocks refuses with EINVAL)

# What a filesystem or a pair of files answers when blocks cannot be shared: no such
# ioctl (ENOTTY, EOPNOTSUPP), two filesystems (EXDEV), a range it will not take
# (EINVAL: blocks larger than BLOCK; the ranges asked are always whole BLOCKs), or a
# file it keeps apart (EPERM, ETXTBSY). Any of them: the filesystem is not asked again.
_CANNOT = frozenset(
    {errno.ENOTTY, errno.EOPNOTSUPP, errno.EXDEV, errno.EINVAL, errno.EPERM, errno.ETXTBSY}
)
_refused: set[int] = set()  # devices (st_dev) whose filesystem refused


def refused(fd: int) -> bool:
    """Whether the filesystem of ``fd`` refused to share blocks in this process."""
    return os.fstat(fd).st_dev in _refused


def clone_range(src: int, src_offset: int, length: int, dst: int, dst_offset: int) -> bool:
    """Make ``dst``'s bytes at ``dst_offset`` share ``src``'s ``length`` bytes at
    ``src_offset``; False, with nothing changed, where the filesystem cannot.

    Other errors (EIO, ENOSPC for the extent maps, EBADF) are raised.
    """
    arg = struct.pack("qQQQ", src, src_offset, length, dst_offset)
    try:
        fcntl.ioctl(dst, FICLONERANGE, arg)
    except OSError as exc:
        if exc.errno not in _CANNOT:
            raise
        _refused.add(os.fstat(dst).st_dev)
        return False
    return True
