"""Pack files: many objects in one file, with a trailing header that describes them.

Pack file, format version 1 (``pack-<id>.pack``; since repository format 2 the id is
the BLAKE3 of the header, the same 32 bytes the footer carries)::

    offset 0          4 bytes    magic b"DVP1"
    offset 4          ...        object payloads back to back (raw or zstd frames)
    header            n * 50 B   one record per object, in file order:
                                 id (32), kind (1), compression (1),
                                 offset (8), stored length (4), raw length (4)
    footer            44 bytes   object count (4), header length (4),
                                 BLAKE3 of the header (32), magic b"DVPE"

The header makes a pack self-describing: its index can always be rebuilt from the
pack alone, and a reader that knows an object's offset and stored length can fetch it
with one ranged read. All integers are little endian.

A pack's id (:func:`pack_id`) is the BLAKE3 of its header: the header lists every
object's id, place, stored length and codec, and each object is verified against its
own id when it is read, so the header proves what the pack holds without a hash pass
over the payloads (a third pass over every added byte, after the chunk ids and the
file's digest). Two packs with the same id hold the same objects at the same offsets.
Repositories of format 1 named packs by the BLAKE3 of the whole file; such names are
still accepted (:func:`name_matches`).

Index file, format version 1 (``pack-<id>.idx``, beside a local pack)::

    magic b"DVI1", count (4), then count * 50-byte records as in the pack header
    (sorted by id), then BLAKE3 of everything before it (32)

These are the same files the remotes store (see ``vfs.backends``).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import NamedTuple

from vfs.errors import FormatError
from vfs.model.ids import hash_bytes

PACK_MAGIC = b"DVP1"
PACK_END = b"DVPE"
INDEX_MAGIC = b"DVI1"
RECORD = struct.Struct("<32sBBQII")
FOOTER = struct.Struct("<II32s4s")
TARGET_PACK_SIZE = 16 * 1024 * 1024
# A pack under SMALL_PACK bytes is small: `dvfs gc` merges a store's small packs, and
# `dvfs gc --remote` a remote's, once there are SMALL_PACKS_MERGE of them (each small
# commit or push leaves one or two; every command reads each local pack's index, every
# clone each remote pack and segment). What grows the local store merges them once
# there are ``vfs.ops.store_limit.AUTO_MERGE_AT``.
SMALL_PACK = 1 << 20
SMALL_PACKS_MERGE = 16
# The most objects a pack or an index may list: a 64 MiB pack of 16-byte objects. A
# header or index claiming more is refused before anything that size is read.
MAX_PACK_OBJECTS = 1 << 22
MAX_INDEX_BYTES = 8 + MAX_PACK_OBJECTS * RECORD.size + 32


class PackedObject(NamedTuple):
    """Where one object lies in a pack and how it is stored.

    A named tuple rather than a frozen dataclass: a store's index holds one per object,
    and building them from an index's records (``decode_records``) took three times as
    long through a frozen dataclass's ``__init__``.
    """

    oid: bytes
    kind: int
    compression: int
    offset: int
    stored_len: int
    raw_len: int


def encode_records(objs: Iterable[PackedObject]) -> bytes:
    """The header records for ``objs``, in the given order."""
    return b"".join(
        RECORD.pack(o.oid, o.kind, o.compression, o.offset, o.stored_len, o.raw_len) for o in objs
    )


def decode_records(data: bytes, what: str) -> list[PackedObject]:
    """Parse header records; FormatError if the length is not a whole number of them."""
    if len(data) % RECORD.size:
        raise FormatError(f"{what}: header length {len(data)} is not a multiple of a record")
    return list(map(PackedObject._make, RECORD.iter_unpack(data)))


def pack_trailer(objs: list[PackedObject]) -> bytes:
    """Header plus footer, appended after the last payload."""
    header = encode_records(objs)
    return header + FOOTER.pack(len(objs), len(header), hash_bytes(header), PACK_END)


def trailer_id(trailer: bytes) -> bytes:
    """The id of the pack ending with ``trailer`` (from :func:`pack_trailer`): the
    header's hash, which the footer carries."""
    return trailer[-36:-4]


def pack_id(objs: list[PackedObject]) -> bytes:
    """The id of a pack whose header lists ``objs`` (in file order): BLAKE3 of the header."""
    return hash_bytes(encode_records(objs))


def relayout(data: bytes, objs: list[PackedObject], pad: int) -> tuple[bytes, list[PackedObject]]:
    """Pack ``data`` (built without padding) with ``pad`` zero bytes after the magic.

    The same objects in a pack with another id (the header lists other offsets, so it
    hashes to another id); readers take offsets from the header and the index, so the
    gap is never read. For a pack that must not take an id already used (one a remote
    gc condemned).
    """
    end = len(data) - len(pack_trailer(objs))
    moved = [o._replace(offset=o.offset + pad) for o in objs]
    return PACK_MAGIC + bytes(pad) + data[len(PACK_MAGIC) : end] + pack_trailer(moved), moved


def name_matches(name: str, header_hash: bytes, whole: Callable[[], bytes]) -> bool:
    """True if ``name`` (hex) is a valid id of a pack whose checked header hashes to
    ``header_hash``: that hash (format 2), or else ``whole()``, the BLAKE3 of the whole
    file (format 1; computed only when the first does not match)."""
    return name == header_hash.hex() or name == whole().hex()


def parse_footer(footer: bytes, pack_size: int, what: str) -> tuple[int, int, bytes]:
    """(count, header length, header hash) from a pack's last FOOTER.size bytes."""
    if len(footer) != FOOTER.size:
        raise FormatError(f"{what}: truncated pack")
    count, hlen, hhash, magic = FOOTER.unpack(footer)
    if (
        magic != PACK_END
        or count > MAX_PACK_OBJECTS
        or hlen != count * RECORD.size
        or hlen + FOOTER.size + 4 > pack_size
    ):
        raise FormatError(f"{what}: not a complete dvfs pack")
    return count, hlen, hhash


def parse_header(header: bytes, hhash: bytes, data_end: int, what: str) -> list[PackedObject]:
    """Verify and decode a pack header; every object must lie inside the payload area."""
    if hash_bytes(header) != hhash:
        raise FormatError(f"{what}: pack header does not match its checksum")
    objs = decode_records(header, what)
    for o in objs:
        if o.offset < len(PACK_MAGIC) or o.offset + o.stored_len > data_end:
            raise FormatError(f"{what}: object {o.oid.hex()} lies outside the pack")
    return objs


def encode_index(objs: Iterable[PackedObject]) -> bytes:
    """An index file body for one pack."""
    ordered = sorted(objs, key=lambda o: o.oid)
    body = INDEX_MAGIC + struct.pack("<I", len(ordered)) + encode_records(ordered)
    return body + hash_bytes(body)


def check_index(data: bytes, what: str) -> int:
    """Verify an index file's framing and checksum; return its object count."""
    if len(data) < 40 or data[:4] != INDEX_MAGIC or hash_bytes(data[:-32]) != data[-32:]:
        raise FormatError(f"{what}: damaged pack index")
    count: int = struct.unpack_from("<I", data, 4)[0]
    if count > MAX_PACK_OBJECTS or len(data) != 8 + count * RECORD.size + 32:
        raise FormatError(f"{what}: pack index count mismatch")
    return count


def search_index(data: bytes, count: int, oid: bytes) -> PackedObject | None:
    """Binary search of a checked index file for one id, without decoding the rest."""
    lo, hi = 0, count
    size = RECORD.size
    while lo < hi:
        mid = (lo + hi) // 2
        at = 8 + mid * size
        key = data[at : at + 32]
        if key < oid:
            lo = mid + 1
        elif key > oid:
            hi = mid
        else:
            return PackedObject(*RECORD.unpack_from(data, at))
    return None


def index_ids(data: bytes, count: int) -> list[bytes]:
    """The object ids of a checked index file, in its (sorted) order."""
    end = 8 + count * RECORD.size
    return [data[at : at + 32] for at in range(8, end, RECORD.size)]


def decode_index(data: bytes, what: str) -> list[PackedObject]:
    """Parse an index file strictly."""
    if (
        len(data) < 40
        or len(data) > MAX_INDEX_BYTES
        or data[:4] != INDEX_MAGIC
        or hash_bytes(data[:-32]) != data[-32:]
    ):
        raise FormatError(f"{what}: damaged pack index")
    (count,) = struct.unpack_from("<I", data, 4)
    objs = decode_records(data[8:-32], what)
    if len(objs) != count:
        raise FormatError(f"{what}: pack index count mismatch")
    return objs
