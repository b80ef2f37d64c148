"""How an object's payload is stored: zstd level 1, when it saves enough.

Payloads are zstd compressed (level 1) when that saves at least 1/32. Payloads over
64 KiB are first probed: eight samples of up to 4 KiB (together at most an eighth of
the payload) spread over the payload are compressed (a few microseconds), and if they
do not shrink by 1/64 the payload is stored as it is (see the decisions in
:mod:`vfs.store.objects`). A batch of payloads (:func:`compress_many`, the small files
of ``add``) is probed from 4 KiB up, the batch's samples compressed in one call.
Every read is verified against the id (:func:`decode_payload`)."""

from __future__ import annotations

import enum
import threading
from collections.abc import Sequence
from typing import TYPE_CHECKING, overload

from vfs.errors import ObjectCorrupt
from vfs.model.ids import hash_bytes
from vfs.store.packs import PackedObject

if TYPE_CHECKING:  # imported where first used: commands like `status` need neither
    import zstandard


ZSTD_LEVEL = 1
PROBE_LEVEL = 1
# Payloads larger than this are probed before compressing. Below it zstd gives up on
# random bytes about as fast as the probe decides (10,000 random files of 1-32 KiB:
# 0.10 CPU-s to compress, 0.05 to probe those over 16 KiB), while the probe of a
# compressible payload is wasted: the benchmark's 20,000 small files took 0.67 CPU-s
# to store with 64 KiB here, 0.76 with 16 KiB, the same bytes stored.
PROBE_ABOVE = 64 * 1024
TOO_SMALL = 64  # payloads shorter than this are stored as they are
PROBE_PIECES = 8
PROBE_PIECE = 4096
# In a batch (:func:`compress_many`) payloads larger than this are probed too: the
# samples of the whole batch are compressed by one call, so a probe costs a few
# hundred bytes of zstd and no call of its own.
BATCH_PROBE_ABOVE = 4096
BATCH_PROBE_PIECE = 1024


class Compression(enum.IntEnum):
    """How an object's payload is stored."""

    NONE = 0
    ZSTD = 1


_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_local, "zc", None)
    if c is None:
        import zstandard

        c = _local.zc = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return c


def _prober() -> zstandard.ZstdCompressor:
    c = getattr(_local, "zp", None)
    if c is None:
        import zstandard

        c = _local.zp = zstandard.ZstdCompressor(level=PROBE_LEVEL)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "zd", None)
    if d is None:
        import zstandard

        d = _local.zd = zstandard.ZstdDecompressor()
    return d


def _sample(data: bytes | memoryview) -> bytes:
    """PROBE_PIECES pieces spread over ``data``, together at most an eighth of it."""
    view = memoryview(data)
    step = len(view) // PROBE_PIECES
    # At most an eighth of the payload: with pieces of half a step, a 20 KiB file
    # had half its bytes compressed by the probe, then all of them again when it
    # was compressible (text), a quarter of the CPU time of adding 10,000 CSV files.
    piece = min(PROBE_PIECE, step >> 3)
    return b"".join(view[i * step : i * step + piece] for i in range(PROBE_PIECES))


def _shrinks(packed: int, raw: int) -> bool:
    """True if a probe's sample of ``raw`` bytes compressed to ``packed`` saves 1/64."""
    return packed <= raw - (raw >> 6)


def _worth(packed: int, raw: int) -> bool:
    """True if a payload of ``raw`` bytes compressed to ``packed`` saves 1/32 (stored so)."""
    return packed <= raw - (raw >> 5)


def looks_incompressible(data: bytes | memoryview) -> bool:
    """True if samples spread over ``data`` do not shrink by 1/64 at a fast level."""
    sample = _sample(data)
    return not _shrinks(len(_prober().compress(sample)), len(sample))


def compress(data: bytes | memoryview) -> tuple[Compression, bytes | memoryview]:
    """Compress when it saves at least 1/32; return the method and payload."""
    if len(data) < TOO_SMALL:
        return Compression.NONE, data
    if len(data) > PROBE_ABOVE and looks_incompressible(data):
        return Compression.NONE, data
    packed = _compressor().compress(data)
    if _worth(len(packed), len(data)):
        return Compression.ZSTD, packed
    return Compression.NONE, data


def compress_many(
    items: Sequence[bytes | memoryview],
) -> list[tuple[Compression, bytes | memoryview]]:
    """:func:`compress` of each payload of a batch, in two calls into zstd for all of them.

    Payloads over BATCH_PROBE_ABOVE are probed (BATCH_PROBE_PIECE bytes or an eighth
    of each, from its middle; the samples compressed together in one call), then
    those that are worth it compressed together in another
    (``multi_compress_to_buffer``, the same frames ``compress`` makes). Each call
    releases the GIL once for the whole batch: compressing the benchmark's small
    files one call each, the hashing threads spent much of their time handing the GIL
    to each other around every call, and half of those files are random bytes that
    zstd compressed in full only for the result to be thrown away. The payloads
    returned may be views of one buffer shared by the batch.
    """
    out: list[tuple[Compression, bytes | memoryview]] = [(Compression.NONE, d) for d in items]
    probed: list[int] = []
    samples: list[bytes | memoryview] = []
    todo: list[int] = []
    for i, data in enumerate(items):
        size = len(data)
        if size < TOO_SMALL:
            continue
        if size > PROBE_ABOVE:
            if not looks_incompressible(data):
                todo.append(i)
        elif size > BATCH_PROBE_ABOVE:  # one piece from the middle: a join per file cost
            probed.append(i)  # half as much as compressing the random ones whole
            at = size >> 1
            samples.append(data[at : at + min(size >> 3, BATCH_PROBE_PIECE)])
        else:
            todo.append(i)
    if samples:
        done = _compress_all(_prober(), samples)
        todo.extend(
            i for i, s, p in zip(probed, samples, done, strict=True) if _shrinks(len(p), len(s))
        )
    if todo:
        for i, packed in zip(
            todo, _compress_all(_compressor(), [items[i] for i in todo]), strict=True
        ):
            if _worth(len(packed), len(items[i])):
                out[i] = (Compression.ZSTD, packed)
    return out


def _compress_all(
    c: zstandard.ZstdCompressor, items: Sequence[bytes | memoryview]
) -> list[bytes | memoryview]:
    """Each of ``items`` compressed by ``c``, in one call where the backend has one."""
    try:
        got = c.multi_compress_to_buffer(list(items), threads=0)
    except (AttributeError, NotImplementedError):  # (a backend without it)
        return [c.compress(d) for d in items]
    # (BufferSegment has the buffer protocol; its type stub does not say so)
    return [memoryview(got[i]) for i in range(len(got))]  # type: ignore[arg-type]


@overload
def decode_payload(obj: PackedObject, payload: bytes, *, verify: bool = True) -> bytes: ...
@overload
def decode_payload(
    obj: PackedObject, payload: memoryview, *, verify: bool = True
) -> bytes | memoryview: ...
def decode_payload(
    obj: PackedObject, payload: bytes | memoryview, *, verify: bool = True
) -> bytes | memoryview:
    """Decompress a stored payload and verify it against its id (a whole view stays one).

    ``verify`` false leaves out the hash, for a caller that proves the bytes another
    way (a large file's chunks, by the file's digest: ``vfs.worktree.restore``)."""
    if len(payload) != obj.stored_len:
        raise ObjectCorrupt(obj.oid.hex(), "truncated")
    if obj.compression == Compression.NONE:
        data = payload
    elif obj.compression == Compression.ZSTD:
        try:
            data = _decompressor().decompress(payload, max_output_size=obj.raw_len)
        except _zstd_error() as exc:  # (looked up only when something was raised)
            raise ObjectCorrupt(obj.oid.hex(), f"does not decompress: {exc}") from None
    else:
        raise ObjectCorrupt(obj.oid.hex(), f"unknown compression {obj.compression}")
    if len(data) != obj.raw_len or (verify and hash_bytes(data) != obj.oid):
        raise ObjectCorrupt(obj.oid.hex())
    return data


def _zstd_error() -> type[Exception]:
    """zstandard's error class, for the one ``except`` that needs it: a checkout of
    20,000 small files ran ``import zstandard`` and the id's ``hex()`` for each."""
    import zstandard

    error: type[Exception] = zstandard.ZstdError
    return error
