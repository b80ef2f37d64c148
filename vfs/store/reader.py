"""A file of a version as a seekable, read-only file object whose chunks are read lazily.

A file is a list of chunks (``vfs.model.codec.ChunkRef``, id and size). Reading a range
fetches only the chunks the range touches, through the function the caller gives
(the local store, or a remote one ranged GET a chunk; either verifies every chunk
against its id before returning it). The last chunks read are kept in a small LRU,
at most ``CACHE_BYTES`` (and always the one being read), so a sequential read
fetches each chunk once and a seek back into a recent chunk costs nothing; memory
stays bounded whatever the file's size. Given the file's digest, the chunks read in
order from the first are hashed on the way (no second read), and the read that
reaches the last fails if they do not make that digest: a forged or damaged version
may name whole chunks under a digest their bytes do not have. A file of one chunk or
none has the digest decoding checked (``vfs.model.codec``). :func:`read_whole` joins a
small file's chunks in memory, checking its digest the same way.

:class:`ChunkedFile` is a raw stream (``io.RawIOBase``); :func:`open_chunks` wraps it
as Python's ``open()`` would: an ``io.BufferedReader`` for ``"rb"`` (:class:`Reader`,
which also tells the file's ``size``, as fsspec's files do), plus an
``io.TextIOWrapper`` (:class:`TextReader`) for ``"r"``; each tells its ``mode``.
"""

from __future__ import annotations

import bisect
import errno
import io
import operator
import threading
from collections import OrderedDict
from collections.abc import Callable, Sequence
from typing import IO, TYPE_CHECKING, Any, SupportsIndex

from vfs.errors import FormatError
from vfs.model.chunking import MAX_SIZE_RANGE
from vfs.model.codec import ChunkRef
from vfs.model.ids import hash_bytes, hasher

if TYPE_CHECKING:  # (loaded when a file is read in order: commit reads pipeline files only)
    from concurrent.futures import Future, ThreadPoolExecutor

CACHE_BYTES = 32 * 1024 * 1024
MAX_CHUNK = MAX_SIZE_RANGE[1]  # no chunk dvfs makes is larger
BUFFER = 256 * 1024  # the BufferedReader's buffer: small reads cost no call into Python each


class NegativeSeek(OSError, ValueError):
    """A seek before the start of the file: an OSError (EINVAL), as a file on disk
    raises, and a ValueError, as ``io.BytesIO`` raises, so that code catching either
    goes on (``zipfile.is_zipfile`` of a file shorter than a zip's end record seeks
    before its start and catches OSError)."""


_DIGESTS: list[ThreadPoolExecutor] = []  # one thread hashing files' chunks, once needed
_DIGESTS_LOCK = threading.Lock()


def _digests() -> ThreadPoolExecutor:
    """The thread that takes chunks into their file's digest while the reader goes on
    (BLAKE3 lets the GIL go): on the reader's thread, a whole read of 1 GiB took 12%
    longer. One thread for every file keeps each file's chunks in order."""
    from concurrent.futures import ThreadPoolExecutor

    with _DIGESTS_LOCK:
        if not _DIGESTS:
            _DIGESTS.append(ThreadPoolExecutor(1, "dvfs-digest"))
        return _DIGESTS[0]


def false_digest(name: str, got: bytes, want: bytes, whose: str = "the") -> str:
    """What every reader says of a file of several chunks (``name``: how it names the
    file, or nothing) whose bytes hash to ``got``, not to ``want``, the digest its
    version records: its chunks are whole (each checked against its id), the record is
    forged or damaged. ``whose``: "the" or "its" version."""
    return (
        f"{name + ': ' if name else ''}its bytes hash to {got.hex()[:12]}, not to "
        f"{want.hex()[:12]}, the digest {whose} version records for it (a forged or damaged "
        "record)"
    )


def read_whole(
    name: str, chunks: Sequence[ChunkRef], digest: bytes, get: Callable[[bytes], bytes]
) -> bytes:
    """The bytes of a file of ``chunks`` (one small enough to be held whole), each chunk
    read by ``get`` (verified against its id), checked against the file's ``digest``
    once joined (no chunk is read twice): FormatError naming ``name`` if they do not
    make it (a forged or damaged record)."""
    data = b"".join(get(c.oid) for c in chunks)
    if len(chunks) > 1 and (got := hash_bytes(data)) != digest:
        raise FormatError(false_digest(name, got, digest))
    return data


class ChunkedFile(io.RawIOBase):
    """Raw, seekable, read-only access to the bytes of ``chunks``.

    ``get(oid)`` returns a chunk's verified bytes. ``name`` is what the object says it
    reads (``repr``, error messages). ``on_close`` is called once, when the file is
    closed (or collected): to close what was opened for it alone. ``digest``, if
    given, is checked once the chunks have been read in order (module docstring).
    """

    def __init__(
        self,
        name: str,
        chunks: Sequence[ChunkRef],
        get: Callable[[bytes], bytes],
        cache_bytes: int = CACHE_BYTES,
        on_close: Callable[[], None] | None = None,
        digest: bytes | None = None,
    ) -> None:
        super().__init__()
        self.name = name
        self._digest = digest if len(chunks) > 1 else None
        self._whole = hasher() if self._digest is not None else None
        self._hashed = 0  # chunks taken into ``_whole``, in order from the first
        self._hashing: Future[object] | None = None  # the last chunk being taken into it
        self._wrong: FormatError | None = None  # the digest, once found not to match
        self._on_close = on_close
        self._chunks = list(chunks)
        self._get = get
        self._starts: list[int] = []
        size = 0
        for c in self._chunks:
            if not 0 < c.size <= MAX_CHUNK:
                raise FormatError(
                    f"{name} names a chunk of {c.size:,} bytes, which dvfs never makes: "
                    "run `dvfs fsck`"
                )
            self._starts.append(size)
            size += c.size
        self.size = size
        self._pos = 0
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._cached = 0
        self._limit = cache_bytes

    def __repr__(self) -> str:
        return f"<{type(self).__name__} {self.name!r} size={self.size}>"

    @property
    def mode(self) -> str:
        """``"rb"``, as a file ``open()`` gives says (a buffered reader tells its raw's)."""
        return "rb"

    # io.RawIOBase -----------------------------------------------------------------

    def readable(self) -> bool:
        self._check_closed()  # (as a file of open() says, not True)
        return True

    def seekable(self) -> bool:
        self._check_closed()
        return True

    def tell(self) -> int:
        self._check_closed()
        return self._pos

    def seek(self, offset: SupportsIndex, whence: SupportsIndex = io.SEEK_SET) -> int:
        self._check_closed()
        offset, whence = operator.index(offset), operator.index(whence)  # (1.5: TypeError)
        if whence == io.SEEK_SET:
            pos = offset
        elif whence == io.SEEK_CUR:
            pos = self._pos + offset
        elif whence == io.SEEK_END:
            pos = self.size + offset
        else:
            raise ValueError(f"invalid whence ({whence}, should be 0, 1 or 2)")
        if pos < 0:
            raise NegativeSeek(errno.EINVAL, f"negative seek position {pos}")
        self._pos = pos
        return pos

    def readinto(self, buffer: Any) -> int:
        """Fill ``buffer`` from the current position, up to the end of the chunk there
        (a raw stream may return less than asked): a buffered reader filling its
        buffer never fetches a chunk beyond the one read. 0 at the end of the file."""
        self._check_closed()
        out = memoryview(buffer).cast("B")
        if not out or self._pos >= self.size:
            return 0
        i = bisect.bisect_right(self._starts, self._pos) - 1
        data = self._chunk(i)
        off = self._pos - self._starts[i]
        n = min(len(out), len(data) - off)
        out[:n] = data[off : off + n]
        self._pos += n
        return n

    def readall(self) -> bytes:
        """The rest of the file (held whole: prefer reading in parts for large files)."""
        self._check_closed()
        parts = []
        while self._pos < self.size:
            i = bisect.bisect_right(self._starts, self._pos) - 1
            data = self._chunk(i)
            off = self._pos - self._starts[i]
            parts.append(data[off:])
            self._pos += len(data) - off
        return b"".join(parts)

    def close(self) -> None:
        self._cache.clear()
        self._cached = 0
        then, self._on_close = self._on_close, None
        try:
            super().close()
        finally:
            if then is not None:
                then()

    # ranges -----------------------------------------------------------------------

    def pread(self, start: int, end: int) -> bytes:
        """Bytes [start, end) (clipped to the file), without moving the position."""
        self._check_closed()
        start, end = max(0, start), min(end, self.size)
        if start >= end:
            return b""
        parts = []
        i = bisect.bisect_right(self._starts, start) - 1
        pos = start
        while pos < end:
            data = self._chunk(i)
            off = pos - self._starts[i]
            take = data[off : off + end - pos]
            parts.append(take)
            pos += len(take)
            i += 1
        return b"".join(parts)

    def _chunk(self, i: int) -> bytes:
        if self._wrong is not None:
            raise self._wrong
        hit = self._cache.get(i)
        if hit is not None:
            self._cache.move_to_end(i)
            self._take(i, hit)
            return hit
        ref = self._chunks[i]
        data = self._get(ref.oid)
        if len(data) != ref.size:
            raise FormatError(
                f"{self.name}: a chunk holds {len(data):,} bytes, its record says "
                f"{ref.size:,}: run `dvfs fsck`"
            )
        while self._cache and self._cached + len(data) > self._limit:
            _, old = self._cache.popitem(last=False)
            self._cached -= len(old)
        self._cache[i] = data
        self._cached += len(data)
        self._take(i, data)
        return data

    def _take(self, i: int, data: bytes) -> None:
        """Hash chunk ``i`` into the file's digest if it is the next in order; at the
        last, FormatError (kept, for every read after) if they do not make it."""
        if self._whole is None or i != self._hashed:
            return
        if self._hashing is not None:
            self._hashing.result()
        self._hashing = _digests().submit(self._whole.update, data)
        self._hashed += 1
        if self._hashed < len(self._chunks):
            return
        self._hashing.result()
        self._hashing = None
        got, self._whole = self._whole.digest(), None
        if got != self._digest:
            self._wrong = FormatError(false_digest(self.name, got, self._digest or b""))
            raise self._wrong

    def _check_closed(self) -> None:
        if self.closed:
            raise ValueError("I/O operation on closed file")


class Reader(io.BufferedReader):
    """The buffered binary file :func:`open_chunks` gives, with the file's ``size``.

    fsspec's helpers read ``size`` from the files a filesystem opens (``read_block``,
    which dask's ``read_csv`` splits a file by, and ``tail``).
    """

    raw: ChunkedFile

    @property
    def size(self) -> int:
        """The file's size in bytes."""
        return self.raw.size


class TextReader(io.TextIOWrapper):
    """The text file :func:`open_chunks` gives, telling its ``mode`` (``"r"``) as a
    file ``open()`` gives does: libraries look at it."""

    @property
    def mode(self) -> str:
        return "r"


def check_mode(mode: str) -> str:
    """``mode`` as ``rb`` or ``r`` if it reads as ``open()`` takes it (``rb``, ``br``,
    ``r``, ``rt``, ``tr``); ValueError saying why not: a mode that writes (versions are
    read-only) or no mode at all."""
    chars = set(mode) if isinstance(mode, str) else set()
    opens = chars & set("rwax")
    if (
        not isinstance(mode, str) or len(chars) != len(mode) or not chars <= set("rwaxbt+")
        or len(opens) != 1 or {"b", "t"} <= chars
    ):  # fmt: skip
        raise ValueError(f"mode {mode!r} is not a mode open() takes: give 'rb' or 'r'")
    if opens != {"r"} or "+" in chars:
        raise ValueError(
            f"mode {mode!r}: files of versions are read-only; open them with 'rb' or 'r'"
        )
    return "rb" if "b" in chars else "r"


def open_chunks(
    raw: ChunkedFile,
    mode: str = "rb",
    encoding: str | None = None,
    errors: str | None = None,
    newline: str | None = None,
) -> IO[Any]:
    """``raw`` as ``open(..., mode)`` gives a file: buffered binary (``rb``) or text (``r``).

    ValueError for any other mode: versions are read-only (:func:`check_mode`).
    """
    mode = check_mode(mode)
    buffered = Reader(raw, BUFFER)
    if mode == "rb":
        if encoding is not None or errors is not None or newline is not None:
            raise ValueError("binary mode takes no encoding, errors or newline argument")
        return buffered
    return TextReader(buffered, encoding or "utf-8", errors, newline)
