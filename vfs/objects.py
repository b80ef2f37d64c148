"""The local object cache: loose objects by id under ``.dvfs/objects``.

Loose object file, format version 1 (path ``objects/<2 hex>/<62 hex>``)::

    offset 0   4 bytes   magic b"DVO1"
    offset 4   1 byte    kind (0 chunk, 1 tree, 2 version)
    offset 5   1 byte    compression (0 none, 1 zstd)
    offset 6   2 bytes   reserved, zero
    offset 8   8 bytes   uncompressed length, little endian
    offset 16  ...       payload (raw or zstd frame)

The id is BLAKE3 of the uncompressed bytes; the kind is a field, not part of the id,
so identical bytes are stored once whatever they are used as. Payloads are zstd
compressed when that saves at least 1/32 of the size (incompressible data costs a
few microseconds per MiB to detect, so everything is tried).

Writes go to a temporary sibling and are renamed into place without an fsync; the
caller flushes the filesystem once before a ref that names them moves (see
``vfs.durable``). Every read is verified against the id before it is returned.
Thread safety: all methods may be called from several threads at once.
"""

from __future__ import annotations

import contextlib
import enum
import os
import struct
import threading
from collections.abc import Iterator
from pathlib import Path

import zstandard

from vfs.durable import TMP_PREFIX, storage_error, tmp_name
from vfs.errors import ObjectCorrupt, ObjectMissing
from vfs.ids import HEX_LEN, hash_bytes

MAGIC = b"DVO1"
HEADER = struct.Struct("<4sBBHQ")
ZSTD_LEVEL = 3


class ObjKind(enum.IntEnum):
    """What an object is used as; informational, never part of the id."""

    CHUNK = 0
    TREE = 1
    VERSION = 2


class Compression(enum.IntEnum):
    """How an object's payload is stored."""

    NONE = 0
    ZSTD = 1


_local = threading.local()


def _compressor() -> zstandard.ZstdCompressor:
    c = getattr(_local, "zc", None)
    if c is None:
        c = _local.zc = zstandard.ZstdCompressor(level=ZSTD_LEVEL)
    return c


def _decompressor() -> zstandard.ZstdDecompressor:
    d = getattr(_local, "zd", None)
    if d is None:
        d = _local.zd = zstandard.ZstdDecompressor()
    return d


def compress(data: bytes) -> tuple[Compression, bytes]:
    """Compress when it saves at least 1/32; return the method and payload."""
    if len(data) < 64:
        return Compression.NONE, data
    packed = _compressor().compress(data)
    if len(packed) <= len(data) - (len(data) >> 5):
        return Compression.ZSTD, packed
    return Compression.NONE, data


def decompress(method: int, payload: bytes, size: int, oid_hex: str) -> bytes:
    """Undo :func:`compress`; ObjectCorrupt if the payload does not decode to ``size``."""
    if method == Compression.NONE:
        data = payload
    elif method == Compression.ZSTD:
        try:
            data = _decompressor().decompress(payload, max_output_size=size)
        except zstandard.ZstdError as exc:
            raise ObjectCorrupt(oid_hex, f"does not decompress: {exc}") from None
    else:
        raise ObjectCorrupt(oid_hex, f"unknown compression {method}")
    if len(data) != size:
        raise ObjectCorrupt(oid_hex, "wrong length")
    return data


class ObjectStore:
    """Loose objects in one directory, fanned out by the first id byte."""

    def __init__(self, root: Path) -> None:
        self.root = root

    @staticmethod
    def create(root: Path) -> ObjectStore:
        """Make the directory and its 256 fan-out subdirectories."""
        root.mkdir(parents=True, exist_ok=True)
        for i in range(256):
            (root / f"{i:02x}").mkdir(exist_ok=True)
        return ObjectStore(root)

    def path(self, oid: bytes) -> Path:
        """Where the object with raw id ``oid`` lives."""
        h = oid.hex()
        return self.root / h[:2] / h[2:]

    def has(self, oid: bytes) -> bool:
        """True if the object is stored (not verified)."""
        return os.path.exists(self.path(oid))

    def put(self, kind: ObjKind, data: bytes, oid: bytes | None = None) -> tuple[bytes, int]:
        """Store ``data`` unless present; return its id and the bytes written (0 if present).

        ``oid`` may be passed when the caller already hashed ``data``.
        """
        if oid is None:
            oid = hash_bytes(data)
        dest = self.path(oid)
        if os.path.exists(dest):
            return oid, 0
        method, payload = compress(data)
        header = HEADER.pack(MAGIC, int(kind), int(method), 0, len(data))
        tmp = tmp_name(dest)
        try:
            with open(tmp, "xb") as fh:
                fh.write(header)
                fh.write(payload)
            os.replace(tmp, dest)
        except OSError as exc:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise storage_error(exc, f"object {oid.hex()}") from exc
        return oid, len(header) + len(payload)

    def read_stored(self, oid: bytes) -> tuple[int, int, int, bytes]:
        """Return (kind, compression, size, payload) as stored, unverified."""
        h = oid.hex()
        try:
            with open(self.path(oid), "rb") as fh:
                raw = fh.read()
        except FileNotFoundError:
            raise ObjectMissing(h) from None
        if len(raw) < HEADER.size:
            raise ObjectCorrupt(h, "truncated header")
        magic, kind, method, _, size = HEADER.unpack_from(raw)
        if magic != MAGIC:
            raise ObjectCorrupt(h, "bad magic")
        return kind, method, size, raw[HEADER.size :]

    def get(self, oid: bytes) -> bytes:
        """The object's bytes, verified against its id."""
        _, method, size, payload = self.read_stored(oid)
        h = oid.hex()
        data = decompress(method, payload, size, h)
        if hash_bytes(data) != oid:
            raise ObjectCorrupt(h)
        return data

    def verify(self, oid: bytes) -> None:
        """Raise ObjectMissing/ObjectCorrupt unless the object reads back intact."""
        self.get(oid)

    def iter_ids(self) -> Iterator[bytes]:
        """Every stored object id (temporary files skipped)."""
        for sub in sorted(self.root.iterdir()):
            if not sub.is_dir() or len(sub.name) != 2:
                continue
            for f in os.scandir(sub):
                name = sub.name + f.name
                if not f.name.startswith(TMP_PREFIX) and len(name) == HEX_LEN:
                    try:
                        yield bytes.fromhex(name)
                    except ValueError:
                        continue

    def remove_temporaries(self) -> int:
        """Delete temporary files left by an interrupted write; return how many."""
        n = 0
        for sub in self.root.iterdir():
            if sub.is_dir():
                for f in os.scandir(sub):
                    if f.name.startswith(TMP_PREFIX):
                        os.unlink(f.path)
                        n += 1
        return n
