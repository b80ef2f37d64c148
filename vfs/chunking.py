"""Content-defined chunking of file contents with FastCDC.

Files at or below the chunker's minimum size are one chunk. Larger files are cut with
FastCDC (normalized chunking level 1) so that an edit in the middle of a large file
changes only the chunks around it. The parameters are fixed per repository in its
format record (see ``vfs.repo``) and never change for it; ``tests/test_chunking.py``
pins the cut points of a fixed input so a library upgrade cannot silently move them.

Memory stays bounded: :meth:`Chunker.stream` reads through one stream buffer of about
the maximum chunk size and hands out each chunk as a fresh ``bytes`` copy;
:meth:`Chunker.blocks` cuts a file in large blocks that the caller recycles, and hands
out chunks as positions in them, so a large file is read with no copy per chunk.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Literal, cast

if TYPE_CHECKING:
    import pyfastcdc

KIB = 1024
MIB = 1024 * KIB


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
        """Parse the format-record form; ValueError if it is not one we know."""
        if not isinstance(rec, dict) or rec.get("algorithm") != "fastcdc":
            raise ValueError(f"unknown chunker record {rec!r}")
        params = cls(
            min_size=int(rec["min"]),
            avg_size=int(rec["avg"]),
            max_size=int(rec["max"]),
            normalization=int(rec["normalization"]),
        )
        if not params.min_size <= params.avg_size <= params.max_size:
            raise ValueError(f"inconsistent chunker sizes {rec!r}")
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
        self, readinto: Callable[[memoryview], int], take: Callable[[], bytearray]
    ) -> Iterator[tuple[bytearray, list[int]]]:
        """Cut a stream block by block; yield (block, chunk end offsets in it).

        ``readinto`` fills a view and returns the bytes read (0 at the end); ``take``
        returns an empty buffer of at least twice the maximum chunk size, which the
        caller may recycle once it has no more use for a block it was given before
        (never the block last yielded: its tail is carried over into the next one).
        The chunks of a block are ``block[0:ends[0]]``, ``block[ends[0]:ends[1]]``...;
        the cut points are exactly those of :meth:`stream`, because a chunk is cut
        only once the maximum chunk size past its start (or the end) is in the block,
        or when the cut was found before the block's end at a distance that the
        stream would have scanned with the same masks (at least the average size).
        """
        max_size, avg = self.params.max_size, self.params.avg_size
        carry = memoryview(b"")
        eof = False
        while not eof:
            block = take()
            view = memoryview(block)
            filled = len(carry)
            view[:filled] = carry
            while filled < len(block):
                n = readinto(view[filled:])
                if n <= 0:
                    eof = True
                    break
                filled += n
            ends: list[int] = []
            start = 0
            if filled:
                for chunk in self._cdc.cut_buf(view[:filled]):
                    left = filled - chunk.offset
                    found = chunk.length < left  # a boundary matched before the block's end
                    if not (eof or left >= max_size or (found and left >= avg)):
                        break  # the cut could depend on bytes not read yet
                    start = chunk.offset + chunk.length
                    ends.append(start)
            carry = view[start:filled]
            if ends:
                yield block, ends

    def buffer(self, data: bytes) -> Iterator[bytes]:
        """Yield the chunks of an in-memory buffer (for small inputs and tests)."""
        if len(data) <= self.params.min_size:
            if data:
                yield data
            return
        for chunk in self._cdc.cut_buf(data):
            yield bytes(chunk.data)
