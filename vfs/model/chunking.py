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
# Runs a function on another thread: an executor's ``submit`` (for Chunker.blocks's guesses).
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


def stitch(
    cdc: pyfastcdc.FastCDC, view: memoryview, base: int, guess: Future[list[int]] | None
) -> Iterator[int]:
    """The chunk ends of ``view`` (offsets plus ``base``), cut from its start.

    ``guess`` (if any) holds the ends of a cut of a later part of the same bytes that
    began at an arbitrary offset. Once a chunk of ``view`` ends where a chunk of the
    guess ends, every later chunk is the same in both (a chunk's end depends only on
    its start and the bytes from there to the end of the buffer), so the rest is taken
    from the guess instead of cut again.
    """
    known: set[int] | None = None
    after: list[int] = []
    for chunk in cdc.cut_buf(view):
        end = base + chunk.offset + chunk.length
        yield end
        if guess is not None:
            if known is None:
                after = guess.result()
                known = set(after)
            if end in known:
                yield from after[after.index(end) + 1 :]
                return


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

        With ``spawn`` (an executor's ``submit``), the bytes read into a block are cut
        on another thread while the caller reads the next block: from the start of
        the read, as if a chunk began there (:func:`stitch`). The calling thread then
        cuts only from its block's true first chunk until it meets a cut of that
        guess, from where on the two are the same (FastCDC cuts a chunk from its
        start and the bytes after it alone); on random data that is ~1.5 MiB past
        the guess's start, and never worse than cutting the whole block itself.
        """
        reserve = self.reserve
        futs: list[Future[list[int]]] = []

        def read_next() -> tuple[Block, int, bool, Future[list[int]] | None] | None:
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
            guess = None
            if spawn is not None and filled - reserve >= self.params.max_size:
                guess = spawn(self._cut_ends, view, reserve, filled)
                futs[:] = [f for f in futs if not f.done()]  # (a few at most, whatever the size)
                futs.append(guess)
            return block, filled, eof, guess

        try:
            carry = 0
            cur = read_next()
            while cur is not None:
                block, filled, eof, guess = cur
                nxt = None if eof else read_next()
                first = reserve - carry
                ends = self._accepted(block, first, filled, eof, guess)
                start = ends[-1] if ends else first
                carry = filled - start
                if nxt is not None and carry:
                    memoryview(nxt[0])[reserve - carry : reserve] = memoryview(block)[start:filled]
                if ends:
                    yield block, first, ends
                cur = nxt
        finally:
            for fut in futs:  # a guess still cutting reads a block: let it end first
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

    def _cut_ends(self, view: memoryview, start: int, stop: int) -> list[int]:
        """The ends of the chunks of ``view[start:stop]`` cut as if a chunk began at
        ``start``, as offsets into ``view``."""
        return [start + c.offset + c.length for c in self._cdc.cut_buf(view[start:stop])]

    def _accepted(
        self,
        block: Block,
        first: int,
        filled: int,
        eof: bool,
        guess: Future[list[int]] | None,
    ) -> list[int]:
        """The ends of the chunks of ``block[first:filled]`` that no later byte can
        move (all of them at ``eof``); ``guess``: the cut ends of the bytes read into
        the block, cut as if a chunk began where they begin."""
        max_size, avg = self.params.max_size, self.params.avg_size
        ends: list[int] = []
        pos = first
        for end in stitch(self._cdc, memoryview(block)[first:filled], first, guess):
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
