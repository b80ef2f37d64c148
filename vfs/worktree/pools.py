"""The thread pools that hash, store and restore files, and the progress they report.

Threading: :class:`Workers` owns the pools. Small files (one chunk) are hashed,
compressed and stored whole in batches by the ``chunks`` pool (one thread per core),
or, past ``ingest.HASH_SPLIT`` of them, by the calling thread and a forked helper
process (see :class:`vfs.worktree.ingest.Hasher`).
A large file is read once by the calling thread, in a few recycled blocks that the
one-thread ``cuts`` pool cuts in order, while the ``chunks`` pool hashes, compresses
and stores its chunks and the one-thread ``digest`` pool hashes the whole content in
order, so memory stays
bounded whatever the file size. Restoring files uses the calling thread, a forked
helper and the ``restore_large`` pool (see :func:`vfs.worktree.restore.restore_many`).
No task waits for another task, so the pools cannot deadlock.

The pools that ``add`` and ``commit`` use run on the store's own threads
(``vfs._os.threads``): as ``concurrent.futures``' pools they loaded ``logging`` with
it (about 4.5 ms of CPU) before the first byte was read. ``restore_large`` stays a
``ThreadPoolExecutor``: its caller waits on it with ``concurrent.futures.wait``."""

from __future__ import annotations

import os
import threading
from typing import TYPE_CHECKING, Protocol

from vfs._os.threads import Threads

if TYPE_CHECKING:  # imported when that pool is first made: only a restore makes it
    from concurrent.futures import ThreadPoolExecutor


DELETE_THREADS = 8  # unlinks in flight (see vfs.worktree.remove.remove_many)


class Progress(Protocol):
    """Where long operations report how far they are (called from one thread)."""

    def start(self, label: str, files: int, nbytes: int, unit: str = "files") -> None:
        """A phase begins with this much work: ``files`` things counted as ``unit``."""

    def advance(self, files: int, nbytes: int) -> None:
        """This much more is done."""

    def done(self) -> None:
        """The phase is over."""


class NoProgress:
    """Reports nothing."""

    def start(self, label: str, files: int, nbytes: int, unit: str = "files") -> None:
        """Ignore."""

    def advance(self, files: int, nbytes: int) -> None:
        """Ignore."""

    def done(self) -> None:
        """Ignore."""


class Workers:
    """The thread pools used for hashing, storing and restoring files, and progress.

    Each pool is made when first used: a clean ``status`` uses none.
    """

    def __init__(self, threads: int | None = None, progress: Progress | None = None) -> None:
        self.threads = threads or max(2, os.cpu_count() or 2)
        self.progress: Progress = progress or NoProgress()
        self._pools: dict[str, Threads] = {}
        self._restore_large: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _pool(self, name: str, threads: int) -> Threads:
        pool = self._pools.get(name)
        if pool is None:
            with self._lock:  # file threads may ask for `chunks` at the same moment
                pool = self._pools.get(name)
                if pool is None:
                    pool = Threads(threads, f"dvfs-{name}")
                    self._pools[name] = pool
        return pool

    @property
    def files(self) -> Threads:
        """Objects verified in parallel (``dvfs fsck``)."""
        return self._pool("file", self.threads * 2)

    @property
    def chunks(self) -> Threads:
        """Chunks of large files."""
        return self._pool("chunk", self.threads)

    @property
    def cuts(self) -> Threads:
        """One thread, so a large file's blocks are cut (FastCDC) in order, each as soon
        as the cut of the block before is known, never queued behind chunk work."""
        return self._pool("cut", 1)

    @property
    def digest(self) -> Threads:
        """One thread, so whole-file digests are updated in order, beside the chunk work."""
        return self._pool("digest", 1)

    @property
    def deletes(self) -> Threads:
        """Files unlinked in parallel (see :func:`remove_many`)."""
        return self._pool("delete", DELETE_THREADS)

    @property
    def restore_large(self) -> ThreadPoolExecutor:
        """One thread restoring large files, beside the small ones (see :func:`restore_many`)."""
        with self._lock:
            if self._restore_large is None:
                from concurrent.futures import ThreadPoolExecutor

                self._restore_large = ThreadPoolExecutor(1, "dvfs-restore-large")
            return self._restore_large

    def close(self) -> None:
        """Stop the pools made (pending work is finished first)."""
        with self._lock:
            pools = list(self._pools.values())
            large = self._restore_large
        for pool in pools:
            pool.shutdown()
        if large is not None:
            large.shutdown()

    def __enter__(self) -> Workers:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
