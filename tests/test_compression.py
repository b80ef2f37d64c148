"""Which payloads ``dvfs add`` stores compressed (zstd) and which it stores as they are.

Text of every size is stored compressed, random bytes as they are, whether the
incompressibility probe (payloads over 64 KiB, or over 4 KiB in a batch of small
files) or the whole compression decided it; every object reads back intact (fsck).
"""

from __future__ import annotations

import random

from tests.support.cli import Repo
from tests.support.cli import make_repo_fixture as make_repo_fixture
from tests.support.cli import repo_fixture as repo_fixture
from vfs.model.ids import hash_bytes
from vfs.store.compression import Compression
from vfs.store.packs import decode_index

KiB = 1024


def csv_like(rng: random.Random, size: int) -> bytes:
    lines = [f"{i},{rng.randrange(10_000)},{rng.random():.6f},label\n" for i in range(size // 20)]
    return "".join(lines).encode()[:size]


def stored_methods(repo: Repo) -> dict[bytes, int]:
    """Each object id in the repository's packs and how its payload is stored."""
    out: dict[bytes, int] = {}
    for idx in (repo.root / ".dvfs" / "objects").glob("pack-*.idx"):
        for obj in decode_index(idx.read_bytes(), str(idx)):
            out[obj.oid] = obj.compression
    return out


def test_text_is_compressed_and_random_bytes_are_not(repo: Repo) -> None:
    rng = random.Random(20)
    files = {
        "text-40.csv": csv_like(rng, 40),  # too short to compress
        "text-4k.csv": csv_like(rng, 4 * KiB),
        "text-5k.csv": csv_like(rng, 5 * KiB),  # just over the batch probe's threshold
        "text-17k.csv": csv_like(rng, 17 * KiB),
        "text-32k.csv": csv_like(rng, 32 * KiB),
        "text-65k.csv": csv_like(rng, 65 * KiB),  # just over the probe's threshold
        "text-200k.csv": csv_like(rng, 200 * KiB),
        "rand-4k.bin": rng.randbytes(4 * KiB),
        "rand-5k.bin": rng.randbytes(5 * KiB),
        "rand-17k.bin": rng.randbytes(17 * KiB),
        "rand-32k.bin": rng.randbytes(32 * KiB),
        "rand-65k.bin": rng.randbytes(65 * KiB),
        "rand-200k.bin": rng.randbytes(200 * KiB),
    }
    for name, data in files.items():
        repo.write(name, data)
    repo.ok("add", *files)
    repo.commit("mixed")
    methods = stored_methods(repo)
    for name, data in files.items():
        want = Compression.ZSTD if name.startswith("text") and len(data) > 64 else Compression.NONE
        assert methods[hash_bytes(data)] == want, name
    repo.fsck_clean()


def test_a_damaged_or_truncated_payload_is_reported_corrupt_by_its_id() -> None:
    """Reading a stored payload checks it whole: a compressed one that does not
    decompress, one cut short and one that decompresses to other bytes each raise
    ``ObjectCorrupt`` naming the object, which `dvfs fsck` and every read report."""
    import pytest
    import zstandard

    from vfs.errors import ObjectCorrupt
    from vfs.store.compression import decode_payload
    from vfs.store.packs import PackedObject

    data = csv_like(random.Random(3), 8 * KiB)
    packed = zstandard.ZstdCompressor().compress(data)
    oid = hash_bytes(data)

    def obj(stored: int, raw: int = len(data)) -> PackedObject:
        return PackedObject(oid, 0, Compression.ZSTD, 0, stored, raw)

    assert bytes(decode_payload(obj(len(packed)), packed)) == data
    other = zstandard.ZstdCompressor().compress(data[:-1] + b"!")
    cases = [
        (b"\0" * len(packed), "does not decompress"),
        (packed[:-1], "truncated"),
        (other, "is corrupt"),
    ]
    for payload, said in cases:
        with pytest.raises(ObjectCorrupt, match=said) as got:
            decode_payload(obj(len(payload)) if said != "truncated" else obj(len(packed)), payload)
        assert oid.hex() in str(got.value)
