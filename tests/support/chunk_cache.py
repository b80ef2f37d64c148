"""Reading a chunk cache's directory the way its format is documented, independently of
``daemon.data.chunk_cache`` (whose reader the tests would otherwise trust)."""

from __future__ import annotations

import struct
from pathlib import Path

import blake3

FOOTER = struct.Struct("<8sQQQ32s")
ENTRY = struct.Struct("<32sQQ")


def sealed(root: Path) -> dict[Path, dict[str, bytes]]:
    """Each sealed segment under ``root``: chunk id (hex) -> its bytes. A segment without
    a whole, matching index (one being written) is left out."""
    found: dict[Path, dict[str, bytes]] = {}
    for f in sorted(root.glob("*.seg")):
        try:
            raw = f.read_bytes()
        except FileNotFoundError:  # evicted meanwhile
            continue
        if len(raw) < FOOTER.size:
            continue
        magic, at, count, _, digest = FOOTER.unpack(raw[-FOOTER.size :])
        entries = raw[at : at + count * ENTRY.size]
        if magic != b"dvfscs1\n" or blake3.blake3(entries).digest() != digest:
            continue
        found[f] = {oid.hex(): raw[off : off + n] for oid, off, n in ENTRY.iter_unpack(entries)}
    return found


def chunks_on_disk(root: Path) -> dict[str, bytes]:
    """Every chunk in the sealed segments under ``root``: id (hex) -> bytes."""
    return {oid: data for seg in sealed(root).values() for oid, data in seg.items()}


def disk_bytes(root: Path) -> int:
    """The bytes of every file under ``root`` (segments sealed or being written)."""
    total = 0
    for f in root.iterdir():
        try:
            total += f.stat().st_size
        except FileNotFoundError:
            continue
    return total
