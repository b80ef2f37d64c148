"""Object ids: BLAKE3-256 of an object's raw bytes, shown as lowercase hex.

The id depends on the bytes alone; what kind of object it is lives in a separate
field of whatever refers to it. Ids travel as 32 raw bytes inside records and as
64 hex characters everywhere a person or a path sees them.
"""

from __future__ import annotations

import blake3

ID_BYTES = 32
HEX_LEN = ID_BYTES * 2
SHORT_LEN = 10
_HEX = frozenset("0123456789abcdef")  # (spelled out: importing `string` costs every command)


def hash_bytes(data: bytes | memoryview) -> bytes:
    """Return the raw 32-byte id of ``data``."""
    return blake3.blake3(data).digest()


def hasher() -> blake3.blake3:
    """A fresh incremental hasher whose digest is an id."""
    return blake3.blake3()


def to_hex(oid: bytes) -> str:
    """Hex form of a raw id."""
    return oid.hex()


def short(oid: bytes) -> str:
    """The short hex prefix shown in listings."""
    return oid.hex()[:SHORT_LEN]


def is_hex_prefix(text: str, min_len: int = 4) -> bool:
    """True if ``text`` could be an id or an unambiguous-looking id prefix."""
    return min_len <= len(text) <= HEX_LEN and set(text) <= _HEX


def from_hex(text: str) -> bytes:
    """Raw id from 64 hex characters; ValueError otherwise."""
    if len(text) != HEX_LEN or not set(text) <= _HEX:
        raise ValueError(f"not an object id: {text!r}")
    return bytes.fromhex(text)
