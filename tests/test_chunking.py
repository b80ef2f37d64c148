"""Chunk boundaries: pinned for a fixed input, local under edits, bounded in size."""

from __future__ import annotations

import io
import random

from hypothesis import given, settings
from hypothesis import strategies as st

from vfs.model.chunking import Chunker, ChunkerParams

MIB = 1024 * 1024
# Cut points of 12 MiB from random.Random(1234): these must never move, or every
# repository's existing chunks would stop deduplicating against new ones.
GOLDEN_CUTS = [1587404, 3009159, 4169601, 5411006, 8682795, 10679639, 11991201, 12582912]


def cuts(chunks: list[bytes]) -> list[int]:
    out, off = [], 0
    for c in chunks:
        off += len(c)
        out.append(off)
    return out


def test_cut_points_are_pinned() -> None:
    data = random.Random(1234).randbytes(12 * MIB)
    chunker = Chunker(ChunkerParams())
    assert cuts(list(chunker.stream(io.BytesIO(data)))) == GOLDEN_CUTS
    assert cuts(list(chunker.buffer(data))) == GOLDEN_CUTS


def test_format_record_round_trips() -> None:
    p = ChunkerParams()
    assert ChunkerParams.from_record(p.to_record()) == p
    assert p.to_record() == {
        "algorithm": "fastcdc", "min": 262144, "avg": 1048576, "max": 4194304,
        "normalization": 1,
    }  # fmt: skip


def test_small_inputs_are_one_chunk() -> None:
    chunker = Chunker(ChunkerParams())
    assert list(chunker.buffer(b"")) == []
    assert list(chunker.buffer(b"x" * 1000)) == [b"x" * 1000]
    assert list(chunker.stream(io.BytesIO(b"abc"))) == [b"abc"]


def test_an_edit_in_the_middle_changes_only_nearby_chunks() -> None:
    rng = random.Random(7)
    data = bytearray(rng.randbytes(24 * MIB))
    chunker = Chunker(ChunkerParams())
    before = set(chunker.buffer(bytes(data)))
    data[12 * MIB : 12 * MIB + 65536] = rng.randbytes(65536)
    data += rng.randbytes(4096)
    after = list(chunker.buffer(bytes(data)))
    new = [c for c in after if c not in before]
    assert sum(len(c) for c in new) <= 3 * 4 * MIB
    assert len(new) <= 3


@settings(max_examples=25, deadline=None)
@given(st.integers(min_value=0, max_value=3 * MIB), st.integers(min_value=0, max_value=2**32))
def test_chunks_reassemble_and_respect_bounds(size: int, seed: int) -> None:
    data = random.Random(seed).randbytes(size)
    p = ChunkerParams()
    chunks = list(Chunker(p).stream(io.BytesIO(data)))
    assert b"".join(chunks) == data
    assert all(len(c) <= p.max_size for c in chunks)
    assert all(len(c) >= p.min_size for c in chunks[:-1])


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=40 * MIB), st.integers(min_value=0, max_value=2**32))
def test_blocks_cut_where_the_stream_does(size: int, seed: int) -> None:
    data = random.Random(seed).randbytes(size)
    chunker = Chunker(ChunkerParams())
    src = io.BytesIO(data)
    spare = [bytearray(8 * MIB) for _ in range(2)]
    got: list[bytes] = []
    turn = 0

    def take() -> bytearray:
        nonlocal turn
        turn += 1
        return spare[turn % 2]

    for block, ends in chunker.blocks(src.readinto, take):
        start = 0
        for end in ends:
            got.append(bytes(block[start:end]))
            start = end
    assert got == list(chunker.stream(io.BytesIO(data)))


def test_blocks_of_the_pinned_input() -> None:
    data = random.Random(1234).randbytes(12 * MIB)
    chunker = Chunker(ChunkerParams())
    src = io.BytesIO(data)
    ends: list[int] = []
    base = 0
    for block, cut in chunker.blocks(src.readinto, lambda: bytearray(8 * MIB)):
        ends += [base + e for e in cut]
        base += cut[-1]
        del block
    assert ends == GOLDEN_CUTS
