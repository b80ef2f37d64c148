"""Content-defined chunking of file contents with FastCDC.

Files at or below the chunker's minimum size are one chunk. Larger files are cut with
FastCDC (normalized chunking level 1) so that an edit in the middle of a large file
changes only the chunks around it. The parameters are fixed per repository in its
format record (see ``vfs.repo.repository``) and never change for it; ``tests/test_chunking.py``
pins the cut points of a fixed input so a library upgrade cannot silently move them.

Memory stays bounded: :meth:`Chunker.stream` reads through one stream buffer of about
the maximum chunk size and hands out each chunk as a fresh ``bytes`` copy;
:meth:`Chunker.blocks` cuts a file in large blocks that the caller recycles, and hands
out chunks as positions in them, so a large file is read with no copy per chunk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Literal, TypeVar, cast

if TYPE_CHECKING:
    import mmap
    from concurrent.futures import Future

    import pyfastcdc

Block = TypeVar("Block", bytearray, "mmap.mmap")  # a writable buffer a file is read into
# Runs a function on another thread: an executor's ``submit`` (for Chunker.blocks's cuts).
Spawn = Callable[..., "Future[list[int]]"]

KIB = 1024
MIB = 1024 * KIB
PAGE = 4096  # Chunker.blocks reads whole pages into its blocks (for O_DIRECT packs)
# The ranges FastCDC is defined for (those pyfastcdc enforces): a format record, which
# a clone takes from its remote, must fall inside them, so that a hostile remote can
# neither break chunking (zero sizes) nor make every add hold huge buffers (1 TiB).
MIN_SIZE_RANGE = (64, 1 * MIB)
AVG_SIZE_RANGE = (256, 4 * MIB)
MAX_SIZE_RANGE = (1 * KIB, 16 * MIB)
NORMALIZATIONS = (0, 1, 2, 3)


@dataclass(frozen=True)
class ChunkerParams:
    """FastCDC parameters, recorded in a repository's format record."""

    min_size: int = 256 * KIB
    avg_size: int = 1 * MIB
    max_size: int = 4 * MIB
    normalization: int = 1

    def to_record(self) -> dict[str, int | str]:
        """The format-record form of these parameters."""
        return {
            "algorithm": "fastcdc",
            "min": self.min_size,
            "avg": self.avg_size,
            "max": self.max_size,
            "normalization": self.normalization,
        }

    @classmethod
    def from_record(cls, rec: object) -> ChunkerParams:
        """Parse the format-record form; ValueError if it is not one we know.

        Every size must be an integer inside its range above, and min <= avg <= max.
        """
        if not isinstance(rec, dict) or rec.get("algorithm") != "fastcdc":
            raise ValueError(f"unknown chunker record {str(rec)[:100]!r}")
        fields = {}
        for key, allowed in (
            ("min", MIN_SIZE_RANGE), ("avg", AVG_SIZE_RANGE), ("max", MAX_SIZE_RANGE),
            ("normalization", (NORMALIZATIONS[0], NORMALIZATIONS[-1])),
        ):  # fmt: skip
            value = rec.get(key)
            if type(value) is not int or not allowed[0] <= value <= allowed[1]:
                raise ValueError(
                    f"{key} is {str(value)[:40]}, outside the range {allowed[0]:,} to "
                    f"{allowed[1]:,} that dvfs accepts"
                )
            fields[key] = value
        params = cls(fields["min"], fields["avg"], fields["max"], fields["normalization"])
        if not params.min_size <= params.avg_size <= params.max_size:
            raise ValueError(f"sizes must grow from min to avg to max: {str(rec)[:100]!r}")
        return params


class Chunker:
    """Cuts byte streams into chunks with one repository's parameters."""

    def __init__(self, params: ChunkerParams) -> None:
        self.params = params
        self._made: pyfastcdc.FastCDC | None = None

    @property
    def _cdc(self) -> pyfastcdc.FastCDC:
        """The FastCDC cutter, made (and its module imported) on first use.

        Commands that cut nothing, such as a clean ``status``, skip the import.
        """
        if self._made is None:
            import pyfastcdc

            p = self.params
            self._made = pyfastcdc.FastCDC(
                avg_size=p.avg_size,
                min_size=p.min_size,
                max_size=p.max_size,
                normalized_chunking=cast(Literal[0, 1, 2, 3], p.normalization),
            )
        return self._made

    def stream(self, fh: BinaryIO) -> Iterator[bytes]:
        """Yield the chunks of an open binary file, reading it exactly once."""
        for chunk in self._cdc.cut_stream(fh):
            yield bytes(chunk.data)

    def blocks(
        self,
        readinto: Callable[[memoryview], int],
        take: Callable[[], Block],
        spawn: Spawn | None = None,
    ) -> Generator[tuple[Block, int, list[int]], None, None]:
        """Cut a stream block by block; yield (block, first, chunk end offsets in it).

        ``readinto`` fills a view and returns the bytes read (0 at the end); ``take``
        returns an empty buffer of at least :meth:`block_size` bytes, which the caller
        may recycle once it has no more use for a block it was given before. The chunks
        of a block are ``block[first:ends[0]]``, ``block[ends[0]:ends[1]]``...

        Each block holds a reserve of :attr:`reserve` bytes, then the bytes read into
        it. The tail of a block that no cut ends (less than the maximum chunk size) is
        copied into the end of the next block's reserve once the block's cuts are
        known, so the next block can be read before that. The cut points are exactly
        those of :meth:`stream`: a chunk is cut only once the maximum chunk size past its
        start (or the end) is in the block, or when the cut was found before the block's
        end at a distance that the stream would have scanned with the same masks (at
        least the average size).

        With ``spawn`` (an executor's ``submit``), each block is cut on another thread,
        from its true first chunk, while the caller reads the next block: a block's
        cut starts once the cut of the block before is known (it says where the first
        chunk begins and which tail to carry over), so each byte is cut once, but for
        the tail carried over, which is cut again from its first chunk in the next
        block (FastCDC cuts a chunk from its start and the bytes after it alone).
        """
        reserve = self.reserve
        pending: list[Future[list[int]]] = []  # cuts running on other threads

        def read_next() -> tuple[Block, int, bool]:
            block = take()
            if len(block) < self.block_size(0):  # too small to hold a chunk after the reserve
                raise ValueError(f"a block of {len(block):,} bytes is under {self.block_size(0):,}")
            view = memoryview(block)
            filled = reserve
            eof = False
            while filled < len(block):
                n = readinto(view[filled:])
                if n <= 0:
                    eof = True
                    break
                filled += n
            return block, filled, eof

        def cut(block: Block, first: int, filled: int, eof: bool) -> Future[list[int]] | list[int]:
            view = memoryview(block)
            if spawn is None:
                return self._accepted(view, first, filled, eof)
            fut = spawn(self._accepted, view, first, filled, eof)
            pending[:] = [f for f in pending if not f.done()]  # (two at most)
            pending.append(fut)
            return fut

        try:
            cur: tuple[Block, int, bool] | None = read_next()
            first = reserve
            assert cur is not None
            cutting = cut(cur[0], first, cur[1], cur[2])
            while cur is not None:
                block, filled, eof = cur
                nxt = None if eof else read_next()  # (while the block is cut)
                ends = cutting if isinstance(cutting, list) else cutting.result()
                start = ends[-1] if ends else first
                carry = filled - start
                if nxt is not None:
                    if carry:
                        with memoryview(block) as src, memoryview(nxt[0]) as dst:
                            dst[reserve - carry : reserve] = src[start:filled]
                    cutting = cut(nxt[0], reserve - carry, nxt[1], nxt[2])
                if ends:
                    yield block, first, ends
                cur, first = nxt, reserve - carry
        finally:
            for fut in pending:  # a cut still running reads a block: let it end first
                if not fut.cancel():
                    with contextlib.suppress(Exception):
                        fut.result()

    @property
    def reserve(self) -> int:
        """Bytes at the start of each of :meth:`blocks`'s blocks, for the tail carried
        over from the block before (less than the maximum chunk size); whole pages."""
        return -(-self.params.max_size // PAGE) * PAGE

    def block_size(self, read: int) -> int:
        """The size of a block for :meth:`blocks` that reads ``read`` bytes at a time
        (at least the maximum chunk size, so that each block ends a chunk)."""
        return self.reserve + -(-max(read, self.params.max_size) // PAGE) * PAGE

    def _accepted(self, view: memoryview, first: int, filled: int, eof: bool) -> list[int]:
        """The ends of the chunks of ``view[first:filled]`` (offsets into ``view``),
        cut from ``first``, that no later byte can move (all of them at ``eof``); the
        cut stops at the first one that could."""
        max_size, avg = self.params.max_size, self.params.avg_size
        ends: list[int] = []
        pos = first
        for chunk in self._cdc.cut_buf(view[first:filled]):
            end = first + chunk.offset + chunk.length
            left = filled - pos
            found = end < filled  # a boundary matched before the block's end
            if not (eof or left >= max_size or (found and left >= avg)):
                break  # the cut could depend on bytes not read yet
            ends.append(end)
            pos = end
        return ends

    def buffer(self, data: bytes) -> Iterator[bytes]:
        """Yield the chunks of an in-memory buffer (for small inputs and tests)."""
        if len(data) <= self.params.min_size:
            if data:
                yield data
            return
        for chunk in self._cdc.cut_buf(data):
            yield bytes(chunk.data)
