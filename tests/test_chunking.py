"""Chunk boundaries: pinned for a fixed input, local under edits, bounded in size."""

from __future__ import annotations

import io
import random
from concurrent.futures import ThreadPoolExecutor

import pytest
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


def cut_in_blocks(
    data: bytes, *, pool: ThreadPoolExecutor | None = None, reads: int = 0, spare: int = 3
) -> list[bytes]:
    """The chunks Chunker.ring cuts ``data`` in, with a buffer of ``spare`` regions,
    reads of at most ``reads`` bytes (0: as many as fit) and regions cut by ``pool``.

    Each batch's chunks are taken as they are when ``take`` lets the region they lie
    in be read into again, not when they are yielded: a region overwritten too soon
    shows as chunks that are not the stream's."""
    chunker = Chunker(ChunkerParams())
    src = io.BytesIO(data)
    ring = bytearray(chunker.ring_size(4 * MIB, spare))
    got: list[bytes] = []
    held: list[tuple[int, int, list[int]]] = []  # batches yielded, not yet let go

    def let_go(upto: int) -> None:
        while held and held[0][0] < upto:
            _, start, ends = held.pop(0)
            for end in ends:
                got.append(bytes(ring[start:end]))
                start = end

    def readinto(view: memoryview) -> int:
        return src.readinto(view[:reads] if reads else view)

    spawn = pool.submit if pool else None
    take = lambda k: let_go(k - spare + 2)  # noqa: E731
    for k, first, ends, _, _ in chunker.ring(readinto, ring, spare, take, spawn):
        held.append((k, first, ends))
    let_go(len(data) + 2)
    return got


def test_the_regions_read_are_the_bytes_in_order() -> None:
    """The regions Chunker.ring yields hold the stream's bytes in order, each once
    (what the file's digest is updated with)."""
    data = random.Random(7).randbytes(21 * MIB + 12_345)
    chunker = Chunker(ChunkerParams())
    ring = bytearray(chunker.ring_size(4 * MIB, 3))
    src = io.BytesIO(data)
    seen = b"".join(
        bytes(ring[start:end]) for _, _, _, start, end in chunker.ring(src.readinto, ring, 3, id)
    )
    assert seen == data


@settings(max_examples=40, deadline=None)
@given(st.integers(min_value=0, max_value=40 * MIB), st.integers(min_value=0, max_value=2**32))
def test_blocks_cut_where_the_stream_does(size: int, seed: int) -> None:
    data = random.Random(seed).randbytes(size)
    assert cut_in_blocks(data) == list(Chunker(ChunkerParams()).stream(io.BytesIO(data)))


@settings(max_examples=60, deadline=None)
@given(
    st.integers(min_value=0, max_value=40 * MIB),
    st.integers(min_value=0, max_value=2**32),
    st.sampled_from([0, 4096, 1_000_003, 3 * MIB + 17]),
    st.sampled_from(["random", "runs", "zeros"]),
)
def test_blocks_cut_in_parallel_where_the_stream_does(
    size: int, seed: int, reads: int, kind: str
) -> None:
    """Blocks cut on other threads, each from the first chunk the cut of the block
    before leaves it, give the stream's chunks, whatever the file and wherever its
    reads end: random bytes, runs of repeated bytes (cuts forced at the maximum size)
    and zeros (no cut but the forced ones)."""
    rng = random.Random(seed)
    if kind == "random":
        data = rng.randbytes(size)
    elif kind == "zeros":
        data = bytes(size)
    else:
        parts, held = [], 0
        while held < size:
            n = rng.randrange(1, 6 * MIB)
            run = bytes([rng.randrange(256)]) * n
            parts.append(rng.randbytes(n) if rng.random() < 0.5 else run)
            held += n
        data = b"".join(parts)[:size]
    want = list(Chunker(ChunkerParams()).stream(io.BytesIO(data)))
    with ThreadPoolExecutor(2) as pool:
        assert cut_in_blocks(data, pool=pool, reads=reads, spare=3) == want


def test_blocks_cut_in_parallel_a_large_file_where_the_stream_does() -> None:
    data = random.Random(99).randbytes(48 * MIB)
    want = list(Chunker(ChunkerParams()).stream(io.BytesIO(data)))
    with ThreadPoolExecutor(2) as pool:
        for reads in (0, 65536, 5 * MIB + 3):
            assert cut_in_blocks(data, pool=pool, reads=reads, spare=3) == want


def test_regions_too_small_for_a_chunk_are_refused() -> None:
    chunker = Chunker(ChunkerParams())
    src = io.BytesIO(bytes(10 * MIB))
    small = bytearray(chunker.ring_size(0, 3) - 3 * 4096)
    with pytest.raises(ValueError, match="at least the maximum chunk size"):
        next(chunker.ring(src.readinto, small, 3, id))
    with pytest.raises(ValueError, match="at least 3"):
        next(chunker.ring(src.readinto, bytearray(chunker.ring_size(0, 2)), 2, id))


def test_blocks_of_the_pinned_input() -> None:
    data = random.Random(1234).randbytes(12 * MIB)
    chunker = Chunker(ChunkerParams())
    src = io.BytesIO(data)
    ring = bytearray(chunker.ring_size(4 * MIB, 3))
    ends: list[int] = []
    base = 0  # the stream's offset of the batch's first chunk
    for _, first, cut, _, _ in chunker.ring(src.readinto, ring, 3, id):
        ends += [base + e - first for e in cut]
        base += (cut[-1] - first) if cut else 0
    assert ends == GOLDEN_CUTS
    with ThreadPoolExecutor(2) as pool:
        assert cuts(cut_in_blocks(data, pool=pool, reads=3 * MIB)) == GOLDEN_CUTS
