"""Page-cache probes and the kernel's read-ahead setting of a mount.

:func:`cached` asks the kernel whether a file's byte range is in the page cache
without reading it (``cachestat``, Linux 6.5, else ``mmap`` + ``mincore``, both by
ctypes); :func:`read_cached` reads the range only if it is. :func:`set_bdi_read_ahead`
writes a backing device's read-ahead in sysfs.
"""

from __future__ import annotations

import errno
import functools
import mmap
import os
from collections.abc import Callable
from pathlib import Path


def read_cached(fd: int, offset: int, length: int) -> bytes | None:
    """The bytes if the page cache holds all of them, else None (read them direct).

    Asked of the kernel without reading: a read with ``RWF_NOWAIT`` that misses
    starts a readahead of the range before it gives up, so the bytes would come
    from the disk twice, once into pages nobody reads. Where neither probe of
    :func:`cached` works (not Linux) the bytes are read the ordinary way.
    """
    if cached(fd, offset, length) is False:
        return None
    return os.pread(fd, length, offset)


def cached(fd: int, offset: int, length: int) -> bool | None:
    """Whether every page of a file's byte range is in the page cache; None: unknown.

    ``cachestat`` (Linux 6.5) answers in one call; on older kernels the range is
    mapped and ``mincore`` asked. Neither reads or allocates a page of the file.
    """
    if length <= 0:
        return True
    start = offset - offset % mmap.PAGESIZE
    pages = -(-(offset + length - start) // mmap.PAGESIZE)
    for probe in _probes():
        held = probe(fd, start, pages)
        if held is not None:
            return held
    return None


Probe = Callable[[int, int, int], "bool | None"]


@functools.cache
def _probes() -> list[Probe]:
    """The page cache probes, best first: (fd, first byte, pages) to True, False or None.

    A probe answers None when it cannot tell, such as ``cachestat`` on a kernel
    without it (the other is asked then). ctypes is loaded only when needed.
    """
    import ctypes

    try:
        libc = ctypes.CDLL(None, use_errno=True)
        syscall, mincore, mapper, unmap = libc.syscall, libc.mincore, libc.mmap, libc.munmap
    except (OSError, AttributeError):
        return []
    u64 = ctypes.c_uint64

    class Range(ctypes.Structure):
        _fields_ = [("off", u64), ("len", u64)]

    class Stat(ctypes.Structure):
        _fields_ = [(n, u64) for n in ("cache", "dirty", "writeback", "evicted", "recent")]

    syscall.restype = ctypes.c_long
    mapper.restype = ctypes.c_void_p
    mapper.argtypes = [
        ctypes.c_void_p,
        ctypes.c_size_t,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int,
        ctypes.c_int64,
    ]
    unmap.argtypes = [ctypes.c_void_p, ctypes.c_size_t]
    mincore.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_void_p]
    failed = ctypes.c_void_p(-1).value
    missing: list[bool] = []  # [True] once the kernel said it has no cachestat

    def by_cachestat(fd: int, start: int, pages: int) -> bool | None:
        if missing:
            return None
        rng, st = Range(start, pages * mmap.PAGESIZE), Stat()
        if syscall(_CACHESTAT, fd, ctypes.byref(rng), ctypes.byref(st), 0) == 0:
            return bool(st.cache >= pages)
        if ctypes.get_errno() == errno.ENOSYS:
            missing.append(True)
        return None

    def by_mincore(fd: int, start: int, pages: int) -> bool | None:
        size = pages * mmap.PAGESIZE
        addr = mapper(None, size, mmap.PROT_READ, mmap.MAP_SHARED, fd, start)
        if addr is None or addr == failed:
            return None
        try:
            vec = (ctypes.c_ubyte * pages)()
            if mincore(addr, size, vec) != 0:
                return None
            return all(b & 1 for b in vec)
        finally:
            unmap(addr, size)

    return [by_cachestat, by_mincore]


_CACHESTAT = 451  # the same number on every architecture (Linux 6.5's common table)


def set_bdi_read_ahead(device: str, kib: int) -> None:
    """Set the read-ahead of backing device ``device`` (``major:minor``) to ``kib`` KiB.

    A write to sysfs (``/sys/class/bdi/DEVICE/read_ahead_kb``), allowed to root only:
    OSError otherwise.
    """
    Path(f"/sys/class/bdi/{device}/read_ahead_kb").write_text(f"{kib}\n")
