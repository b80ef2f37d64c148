"""Tuning glibc's malloc (``mallopt`` through ctypes)."""

from __future__ import annotations

import contextlib
from collections.abc import Mapping

M_TRIM_THRESHOLD = -1  # glibc's mallopt parameters
M_MMAP_THRESHOLD = -3
M_ARENA_MAX = -8


def large_buffers_to_os() -> None:
    """Make glibc's malloc serve 8 MiB+ blocks (the ~16 MiB packs of a push) by mmap.

    By default glibc raises its mmap threshold to the size of each large block freed, so
    after the first pack the next ones come from the heap, where they fragment: a push
    of 20,000 small files peaked anywhere between 126 and 176 MiB, and 126 MiB with the
    threshold fixed. Only push does this: a fixed threshold also fixes the heap's trim
    threshold, which made add and checkout of a 512 MiB file 25% slower. Elsewhere
    (another C library) it does nothing.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None).mallopt(M_MMAP_THRESHOLD, 8 << 20)


def chunk_buffers_reused() -> None:
    """Make glibc's malloc keep the memory of freed chunks for the next ones (mount daemon).

    A URL mount's cold sequential read receives every chunk (up to 4 MiB) into a new
    buffer and frees it once served. By default glibc serves such blocks by mmap until
    its threshold has risen past them, and gives the top of its heaps back to the
    system whenever more than twice that is free there: either way most chunks landed
    in fresh pages, which the kernel faulted in and zeroed one by one. That was a
    tenth of the daemon's CPU time for a cold read of 1 GiB (``perf``:
    ``exc_page_fault`` and ``clear_page``, in its own faults and in ``recv`` filling
    new buffers), about as much as verifying the bytes. Blocks under 8 MiB (every
    chunk) now come from the heap, which keeps up to 256 MiB free before trimming, and
    two arenas at most serve the daemon's threads, so the chunks freed by one thread
    are reused by the others instead of each thread's arena keeping its own spares:
    page faults fell to a third of that share, and the daemon's peak RSS for that read
    to 156-164 MiB from 184-190 (``benchmarks/bench_mount.py``'s cold read, machine
    load 5-8).
    Larger blocks (a snapshot's 16 MiB packs) still go to the system by mmap, as push
    has them (``large_buffers_to_os``). Call it before any thread starts. Elsewhere
    (another C library) it does nothing.
    """
    import ctypes

    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None)
        libc.mallopt(M_ARENA_MAX, 2)
        libc.mallopt(M_MMAP_THRESHOLD, 8 << 20)
        libc.mallopt(M_TRIM_THRESHOLD, 256 << 20)


HUGE_HEAP = "glibc.malloc.hugetlb=1"  # glibc 2.35+: malloc's heaps madvised for huge pages


def huge_heap_environment(environ: Mapping[str, str]) -> dict[str, str]:
    """``environ`` for a mount daemon: glibc's malloc asked to back its heaps with
    transparent huge pages (``GLIBC_TUNABLES``, read when the process starts).

    The daemon receives each chunk of a cold read into a heap block
    (``vfs._os.heap.aligned_buffer``), then the kernel pins its pages twice: to write
    it to the chunk cache (``O_DIRECT``) and to copy it into the reader's page cache
    (the FUSE reply). On 4 KiB pages that pinning walked 256 page-table entries per
    MiB and took 6% of the daemon's CPU for a cold read of 1 GiB (``perf``:
    ``gup_fast_fallback``); on 2 MiB pages it is one entry each, and half of it
    went. Tunables the user set are kept, and theirs wins if they name this one;
    a C library without it ignores the name.
    """
    env = dict(environ)
    given = env.get("GLIBC_TUNABLES", "")
    if "glibc.malloc.hugetlb=" not in given:
        env["GLIBC_TUNABLES"] = f"{given}:{HUGE_HEAP}" if given else HUGE_HEAP
    return env
