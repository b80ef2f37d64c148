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
