"""Reading an open file of a version: byte ranges to chunks, and read-ahead.

A read touches only the chunks its range overlaps (found by bisecting the chunks'
start offsets). Read-ahead: each open file measures its streak, the bytes read
sequentially so far (a read starting within ``SEQUENTIAL_SLACK`` of where the last
ended continues it, since the kernel may deliver its own read-ahead slightly out of
order; any other read starts a new one). Once a streak reaches ``AHEAD_AFTER``
bytes, the chunks in the next ``window`` bytes are fetched in the background, the
window being as long as the streak (so it doubles as the reader keeps going) up to
``MAX_AHEAD``; the fetcher takes the window on to the end of the run of chunks
it reaches into in a pack, and fetches each such run with one GET
(``daemon.data.fetcher``). A random reader, or one that reads a few pages, never
triggers it: its reads fetch the chunks they touch, one each.

Time: a read waits at most the fetcher's ``timeout`` in all, for every chunk it
touches (they are fetched at once, and share one deadline), then fails (EIO). The
kernel answers an application's failed read by asking again, at once, for the page
the application wanted (its read-ahead request failed; now it reads that page
alone), so a chunk that failed on an open file is failed again at once for
``FAILED_FOR`` seconds: the application's read fails within ``timeout``, not twice
that. Another open, or the same one a little later, tries again.

Digest: the chunks served are taken into the file's digest in order, and the read
that serves the last chunk of a file read in order fails (EIO) if the bytes are not
that digest (``daemon.data.digests``).
"""

from __future__ import annotations

import bisect
import itertools
from collections.abc import Callable
from dataclasses import dataclass, field

import trio

from daemon.data.digests import Digests, FileDigest
from daemon.data.fetcher import Fetcher
from daemon.fs.inodes import Node
from vfs import ChunkRef, DvfsError, adjoining, quote_name

AHEAD_AFTER = 512 * 1024
MAX_AHEAD = 32 * 1024 * 1024  # plus the rest of a pack run: about three packs ahead
SEQUENTIAL_SLACK = 256 * 1024
FAILED_FOR = 1.0  # seconds a failed chunk fails again at once on the same open file


@dataclass(eq=False)
class OpenFile:
    """One open file: its chunks, its reader's streak and its digest's state."""

    node: Node
    chunks: tuple[ChunkRef, ...]
    size: int
    starts: list[int] = field(default_factory=list)
    digest: FileDigest | None = None
    shown: Callable[[], str] | None = None  # how messages name the file (default: its path)
    next_off: int = 0
    streak: int = 0  # bytes read sequentially so far
    asked: int = 0  # chunks before this index were handed to prefetch in this streak
    failed: dict[int, tuple[float, DvfsError]] = field(default_factory=dict)  # i -> until, why

    @staticmethod
    def of(node: Node, digests: Digests, shown: Callable[[], str] | None = None) -> OpenFile:
        """Open a FILE node (at the kernel's inode ``node.ino``), once
        ``digests.ready`` returned for it; ``shown()`` names it in messages
        (default: its path)."""
        assert node.entry is not None
        e = node.entry
        starts = list(itertools.accumulate((c.size for c in e.chunks), initial=0))[:-1]
        digest = digests.of(e)
        if digest is not None:
            digest.opened(node.ino)
        return OpenFile(node, e.chunks, e.size, starts, digest, shown)

    def close(self) -> None:
        """The file is released."""
        if self.digest is not None:
            self.digest.closed()
            self.digest = None

    def window(self) -> int:
        """Bytes to read ahead after the current read (0: not sequential enough)."""
        return 0 if self.streak < AHEAD_AFTER else min(MAX_AHEAD, self.streak)

    def _advance(self, off: int, end: int) -> None:
        sequential = abs(off - self.next_off) <= SEQUENTIAL_SLACK
        self.streak = self.streak + (end - off) if sequential else end - off
        self.next_off = max(end, self.next_off) if sequential else end
        if not sequential:
            self.asked = 0

    async def read(self, fetcher: Fetcher, off: int, size: int) -> bytes:
        """Up to ``size`` bytes from ``off`` (fewer at the end of the file)."""
        data = await self.view(fetcher, off, size)
        return data if isinstance(data, bytes) else bytes(data)

    async def view(self, fetcher: Fetcher, off: int, size: int) -> bytes | memoryview:
        """Like ``read``, but a range inside one chunk is a view of it, not a copy.

        The read handler replies with it directly (pyfuse3 takes any buffer), so the
        bytes are copied once, into the kernel: a quarter less work per read.
        """
        end = min(off + size, self.size)
        if off >= end:
            return b""
        first = bisect.bisect_right(self.starts, off) - 1
        last = bisect.bisect_right(self.starts, end - 1) - 1
        self._advance(off, end)
        # the chunks of this read after the first, and those starting in the window
        later = max(last + 1, bisect.bisect_left(self.starts, end + self.window()))
        begin = max(first + 1, self.asked)
        if begin < later:  # each chunk is handed over once per streak, not once per read
            # a sequential reader's window is taken on to the end of the pack run it
            # reaches into (one GET per pack); a read's own chunks alone otherwise.
            # The chunk read now is asked for first: the read waits for it alone, not
            # for a run's GET to reach it.
            fetcher.want(self.chunks[first])
            ahead = self.window() > 0
            self.asked = fetcher.prefetch(self.chunks, begin, later, extend=ahead)
        now = trio.current_time()
        if self.failed:
            for i in range(first, last + 1):
                known = self.failed.get(i)
                if known is not None and known[0] > now:
                    raise known[1]
        digest = self.digest
        if digest is not None:
            digest.refuse_if_false()
            digest.taking(range(first, last + 1), True)
        deadline = now + fetcher.timeout
        parts = []
        try:
            for i in range(first, last + 1):
                try:
                    data = await fetcher.get(self.chunks[i], deadline)
                except DvfsError as exc:
                    self.failed[i] = (trio.current_time() + FAILED_FOR, exc)
                    raise
                if self.failed:
                    self.failed.pop(i, None)
                if digest is not None:
                    digest.take(i, data)
                start = self.starts[i]
                lo, hi = max(off, start) - start, min(end, start + len(data)) - start
                # a view, not a copy: pyfuse3 replies from any buffer
                parts.append(data if lo == 0 and hi == len(data) else memoryview(data)[lo:hi])
        finally:
            if digest is not None:
                digest.taking(range(first, last + 1), False)
        if digest is not None:
            if digest.due(last):
                shown = self.shown or (lambda: quote_name(self.node.path))
                tail = data if last == len(self.chunks) - 1 else None
                await digest.settle(tail, shown, lambda j: fetcher.get(self.chunks[j]))
            await digest.digests.keep_up()
        if len(parts) == 1:
            return parts[0]
        # chunks received in one piece lie back to back: one view of them, no join
        return adjoining(parts) or b"".join(parts)
