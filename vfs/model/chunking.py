"""Content-defined chunking of file contents with FastCDC.

Files at or below the chunker's minimum size are one chunk. Larger files are cut with
FastCDC (normalized chunking level 1) so that an edit in the middle of a large file
changes only the chunks around it. The parameters are fixed per repository in its
format record (see ``vfs.repo.repository``) and never change for it; ``tests/test_chunking.py``
pins the cut points of a fixed input so a library upgrade cannot silently move them.

Memory stays bounded: :meth:`Chunker.stream` reads through one stream buffer of about
the maximum chunk size and hands out each chunk as a fresh ``bytes`` copy;
:meth:`Chunker.ring` reads a file into the regions of one buffer in turn and hands
out chunks as positions in it, so a large file is read with no copy per chunk.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Generator, Iterator
from typing import TYPE_CHECKING, BinaryIO, Literal, NamedTuple, TypeVar, cast

if TYPE_CHECKING:
    import mmap
    from types import ModuleType

    import pyfastcdc

    from vfs._os.threads import Cancellable

Block = TypeVar("Block", bytearray, "mmap.mmap")  # a writable buffer a file is read into
# Runs a function on another thread: a pool's ``submit`` (for Chunker.ring's cuts).
Spawn = Callable[..., "Cancellable[list[int]]"]
# What Chunker.ring yields per region read: (k, first, chunk ends, region start, end).
Batch = tuple[int, int, list[int], int, int]

KIB = 1024
MIB = 1024 * KIB
PAGE = 4096  # Chunker.ring reads into whole pages (for O_DIRECT packs)
# The ranges FastCDC is defined for (those pyfastcdc enforces): a format record, which
# a clone takes from its remote, must fall inside them, so that a hostile remote can
# neither break chunking (zero sizes) nor make every add hold huge buffers (1 TiB).
MIN_SIZE_RANGE = (64, 1 * MIB)
AVG_SIZE_RANGE = (256, 4 * MIB)
MAX_SIZE_RANGE = (1 * KIB, 16 * MIB)
NORMALIZATIONS = (0, 1, 2, 3)


class ChunkerParams(NamedTuple):
    """FastCDC parameters, recorded in a repository's format record.

    A named tuple, not a frozen dataclass: every command that opens a repository makes
    this class, and a dataclass compiles its methods as it is made (about 4 M
    instructions, against 0.7 M)."""

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


def import_pyfastcdc() -> ModuleType:
    """:mod:`pyfastcdc`, imported without running :mod:`typing_extensions` if nothing has.

    Its ``pyfastcdc.common`` takes two names from ``typing_extensions`` for its
    annotations (``Literal``, ``Protocol``), and loading that module (and ``inspect``,
    which it runs) was 37 M instructions, about 8 ms of the cut thread before the first
    chunk of every large file. While pyfastcdc is imported, ``typing_extensions`` stands
    in ``sys.modules`` unrun (:func:`~vfs._os.deferred.defer`), answering those two with
    :mod:`typing`'s (any other name runs it); still unrun after, it is taken out again,
    so that a later import loads the module itself.
    """
    import sys

    if "pyfastcdc" not in sys.modules:
        import typing

        from vfs._os.deferred import defer

        run = defer("typing_extensions", Literal=typing.Literal, Protocol=typing.Protocol)
        try:
            import pyfastcdc
        finally:
            stand_in = sys.modules.get("typing_extensions")
            unrun = stand_in is not None and vars(stand_in).get("__getattr__") is run
            if run is not None and unrun:
                del sys.modules["typing_extensions"]
    import pyfastcdc

    return pyfastcdc


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
            pyfastcdc = import_pyfastcdc()
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

    def ring(
        self,
        readinto: Callable[[memoryview], int],
        ring: Block,
        regions: int,
        take: Callable[[int], object],
        spawn: Spawn | None = None,
    ) -> Generator[Batch, None, None]:
        """Cut a stream read into the regions of one buffer in turn; yield for each
        region read (k, first, chunk ends, start, end): the k-th region read (from 0)
        holds ``ring[start:end]``, and the chunks cut once it was read are
        ``ring[first:ends[0]]``, ``ring[ends[0]:ends[1]]``... (offsets into ``ring``).

        ``ring`` holds :attr:`reserve` bytes, then ``regions`` regions of equal size
        (see :meth:`ring_size`). ``readinto`` fills a view and returns the bytes read
        (0 at the end). ``take(k)`` is called before the k-th region is read into: it
        returns once nothing of the batches yielded before ``k - regions + 2`` is in use
        (the chunks of batch ``j`` lie in regions ``j - 1`` and ``j``).

        Adjacent regions are adjacent in memory, so a chunk that a region's end cuts
        in two is whole in the buffer once the next region is read: it is cut then,
        and no byte is copied. Only when reading goes round from the last region to
        the first is the tail left in the last one (less than the maximum chunk size)
        copied into the reserve, before the first region. A chunk is cut only once the
        maximum chunk size past its start is in the buffer (or the end of the stream
        is), as :meth:`stream` cuts it, so each byte is cut once and the cut points
        are exactly the stream's.

        With ``spawn`` (a pool's ``submit``), each region is cut on another
        thread while the caller reads the next; a cut starts once the cut before it
        is known (it says where the first chunk begins).
        """
        reserve = self.reserve
        size = (len(ring) - reserve) // regions
        if regions < 3 or size < self.params.max_size or size % PAGE:
            raise ValueError(
                f"{regions} regions of {size:,} bytes: at least 3 of whole pages, each at "
                f"least the maximum chunk size ({self.params.max_size:,})"
            )
        pending: list[Cancellable[list[int]]] = []  # cuts running on other threads

        def read_next(k: int) -> tuple[int, int, bool]:
            take(k)
            start = reserve + (k % regions) * size
            with memoryview(ring) as whole:
                view = whole[start : start + size]
                filled = 0
                eof = False
                while filled < size:
                    n = readinto(view[filled:])
                    if n <= 0:
                        eof = True
                        break
                    filled += n
                view.release()
            return start, start + filled, eof

        def cut(first: int, filled: int, eof: bool) -> Cancellable[list[int]] | list[int]:
            view = memoryview(ring)
            if spawn is None:
                return self._whole_chunks(view, first, filled, eof)
            fut = spawn(self._whole_chunks, view, first, filled, eof)
            pending[:] = [f for f in pending if not f.done()]  # (two at most)
            pending.append(fut)
            return fut

        if spawn is not None and self._made is None:
            # (pyfastcdc loaded there while region 0 is read, not after: before the
            # first chunk is known; without ``typing_extensions``: import_pyfastcdc)
            spawn(lambda: self._cdc)
        try:
            k = 0
            cur: tuple[int, int, bool] | None = read_next(0)
            assert cur is not None
            first = reserve
            cutting = cut(first, cur[1], cur[2])
            while cur is not None:
                start, filled, eof = cur
                nxt = None if eof else read_next(k + 1)  # (while region k is cut)
                ends = cutting if isinstance(cutting, list) else cutting.result()
                pos = after = ends[-1] if ends else first
                if nxt is not None:
                    if nxt[0] == reserve:  # round to the first region: the tail before it
                        after = reserve - (filled - pos)
                        if filled > pos:
                            with memoryview(ring) as buf:
                                buf[after:reserve] = buf[pos:filled]
                    cutting = cut(after, nxt[1], nxt[2])  # (cut while the caller works)
                yield k, first, ends, start, filled
                cur, first = nxt, after
                k += 1
        finally:
            for fut in pending:  # a cut still running reads the buffer: let it end first
                if not fut.cancel():
                    with contextlib.suppress(Exception):
                        fut.result()

    @property
    def reserve(self) -> int:
        """Bytes before the first region of :meth:`ring`'s buffer, for the tail carried
        round from the last region (less than the maximum chunk size); whole pages."""
        return -(-self.params.max_size // PAGE) * PAGE

    def ring_size(self, read: int, regions: int) -> int:
        """The size of a buffer for :meth:`ring` with ``regions`` regions that each
        read ``read`` bytes (at least the maximum chunk size, in whole pages)."""
        return self.reserve + regions * (-(-max(read, self.params.max_size) // PAGE) * PAGE)

    def _whole_chunks(self, view: memoryview, first: int, filled: int, eof: bool) -> list[int]:
        """The ends of the chunks of ``view[first:filled]`` (offsets into ``view``),
        cut from ``first`` while the maximum chunk size past a chunk's start is there
        (all of them at ``eof``): those no later byte can move."""
        max_size = self.params.max_size
        ends: list[int] = []
        pos = first
        chunks = self._cdc.cut_buf(view[first:filled])
        while pos < filled and (eof or filled - pos >= max_size):
            chunk = next(chunks)
            pos = first + chunk.offset + chunk.length
            ends.append(pos)
        return ends

    def buffer(self, data: bytes) -> Iterator[bytes]:
        """Yield the chunks of an in-memory buffer (for small inputs and tests)."""
        if len(data) <= self.params.min_size:
            if data:
                yield data
            return
        for chunk in self._cdc.cut_buf(data):
            yield bytes(chunk.data)
