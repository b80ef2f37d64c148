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

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, BinaryIO, Literal, TypeVar, cast

if TYPE_CHECKING:
    import mmap

    import pyfastcdc

Block = TypeVar("Block", bytearray, "mmap.mmap")  # a writable buffer a file is read into

KIB = 1024
MIB = 1024 * KIB
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
        self, readinto: Callable[[memoryview], int], take: Callable[[], Block]
    ) -> Iterator[tuple[Block, list[int]]]:
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
