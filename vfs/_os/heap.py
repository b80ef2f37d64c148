"""Page-aligned buffers taken from the C heap (ctypes), for bytes received and then
written past the page cache.

A URL mount receives each chunk of a cold sequential read from the network, serves
it and writes it to the chunk cache with ``O_DIRECT``, which takes page-aligned
memory only. Received into a ``bytes`` object, every chunk was copied once more into
an aligned buffer before that write (``vfs._os.direct_io.write_new``): 1 GiB copied
for a 1 GiB read, about 0.16 of the daemon's 2.5 CPU-seconds (``perf``, one cold
read of ``benchmarks/bench_mount.py``'s big file). Received straight into a buffer
from :func:`aligned_buffer`, it is written from where it landed.

The buffer is a ``bytearray`` made one page longer than asked and left
uninitialised (``PyByteArray_FromStringAndSize(NULL, n)``: zeroing it would cost
another pass over the bytes), and the view given starts at its first page
boundary. Such blocks come from malloc's heap, where the mount daemon keeps blocks
under 8 MiB (``vfs._os.malloc.chunk_buffers_reused``), so their pages are the
process's already: no fresh page is faulted in and zeroed, as it would be for an
anonymous ``mmap`` per chunk. The bytearray lives as long as a view of it does,
and cannot move or be resized meanwhile (a view holds an export of it).
"""

from __future__ import annotations

import ctypes
from collections.abc import Sequence

PAGE = 4096  # every block device's logical block size divides it (as direct_io.ALIGN)

_uninitialised = ctypes.pythonapi.PyByteArray_FromStringAndSize
_uninitialised.restype = ctypes.py_object
_uninitialised.argtypes = (ctypes.c_void_p, ctypes.c_ssize_t)


def aligned_buffer(size: int) -> memoryview:
    """A writable view of ``size`` bytes (contents undefined) starting at a page boundary."""
    if size <= 0:
        return memoryview(bytearray())
    raw: bytearray = _uninitialised(None, size + PAGE - 1)
    skip = -ctypes.addressof(ctypes.c_char.from_buffer(raw)) % PAGE
    return memoryview(raw)[skip : skip + size]


def adjoining(parts: Sequence[bytes | memoryview]) -> memoryview | None:
    """One view of ``parts`` (two or more) if they lie back to back in one bytearray,
    as the chunks of a piece of a remote's answer do; None otherwise.

    A read of a URL mount that spans two chunks was served by joining them, a copy of
    every byte the read returns: 4% of the daemon's CPU in a cold sequential read.
    Read-only views (bytes, a cached chunk) are never adjoining.
    """
    first = parts[0]
    if not isinstance(first, memoryview):
        return None
    base = first.obj
    if not isinstance(base, bytearray):
        return None
    try:
        origin = ctypes.addressof(ctypes.c_char.from_buffer(base))
        end = -1
        for part in parts:
            if not isinstance(part, memoryview) or part.obj is not base or not part.nbytes:
                return None
            at = ctypes.addressof(ctypes.c_char.from_buffer(part))
            if end >= 0 and at != end:
                return None
            end = at + part.nbytes
    except (TypeError, ValueError):  # read-only, or not one contiguous stretch of bytes
        return None
    start = ctypes.addressof(ctypes.c_char.from_buffer(first)) - origin
    return memoryview(base)[start : end - origin]
