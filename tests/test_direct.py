"""Writing and reading past the page cache (vfs._os.direct_io), on the real filesystem."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import mmap
import os
import random
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from vfs._os import direct_io, page_cache
from vfs._os.direct_io import ALIGN, BLOCK, DirectAppender, read_range, read_range_view
from vfs._os.heap import aligned_buffer
from vfs._os.helper_process import Tickets
from vfs._os.page_cache import read_cached
from vfs.errors import ObjectCorrupt, StorageFull
from vfs.model.ids import hash_bytes, hasher
from vfs.store import objects
from vfs.store.objects import ObjectStore, ObjKind
from vfs.store.pack_files import check_pack


def _pieces(total: int, seed: int) -> list[bytes]:
    """Random bytes cut at odd sizes, so that no write is aligned."""
    rng = random.Random(seed)
    out, left = [], total
    while left:
        n = min(left, rng.choice([1, 7, 4095, 4097, 65_537, 1_000_003, BLOCK + 5]))
        out.append(rng.randbytes(n))
        left -= n
    return out


def _append(
    path: Path, pieces: list[bytes], refuse_direct: bool = False, beside: bool = False
) -> bytes:
    """Write the pieces through an appender; return the BLAKE3 it fed.

    ``beside``: the hash runs on a thread of its own, while each block is written.
    """
    h = hasher()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with ThreadPoolExecutor(1) as thread, ThreadPoolExecutor(1) as hashing:
            out = DirectAppender(fd, thread, h.update, hashing if beside else None)
            assert out.direct is not refuse_direct
            for p in pieces:
                out.write(p)
            out.finish()
            assert fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT == 0  # left buffered
    finally:
        os.close(fd)
    return h.digest()


@pytest.mark.parametrize("beside", [False, True], ids=["hash-after-write", "hash-beside"])
def test_appender_writes_every_byte_in_order(tmp_path: Path, beside: bool) -> None:
    pieces = _pieces(9 * BLOCK + 12_345, seed=1)  # more blocks than are ever in flight
    data = b"".join(pieces)
    digest = _append(tmp_path / "f", pieces, beside=beside)
    assert (tmp_path / "f").read_bytes() == data
    assert digest == hash_bytes(data)


def test_a_failing_consumer_fails_the_append(tmp_path: Path) -> None:
    """An error of the consumer (on its own thread) comes out of write or finish."""
    seen = []

    def consumer(view: memoryview) -> None:
        seen.append(len(view))
        if len(seen) == 2:
            raise ValueError("consumer broke")

    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with ThreadPoolExecutor(1) as thread, ThreadPoolExecutor(1) as hashing:
            out = DirectAppender(fd, thread, consumer, hashing)
            with pytest.raises(ValueError, match="consumer broke"):
                for p in _pieces(9 * BLOCK, seed=9):
                    out.write(p)
                out.finish()
            out.abandon()
    finally:
        os.close(fd)
    assert len(seen) >= 2


def test_appender_without_o_direct(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A filesystem that refuses O_DIRECT gets the same bytes written the ordinary way."""
    monkeypatch.setattr(direct_io, "set_direct", lambda fd, on: not on)
    pieces = _pieces(BLOCK + 999, seed=2)
    digest = _append(tmp_path / "f", pieces, refuse_direct=True)
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)
    assert digest == hash_bytes(b"".join(pieces))


def refuse_direct_writes(monkeypatch: pytest.MonkeyPatch) -> None:
    """Make every write to an O_DIRECT descriptor fail with EINVAL, as a filesystem with a
    stricter alignment does, while the open succeeded."""
    real = os.pwrite

    def strict(fd: int, data: memoryview, offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, data, offset)

    monkeypatch.setattr(os, "pwrite", strict)


def test_appender_when_direct_writes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """O_DIRECT accepted at open but a write refused (a stricter alignment): written anyway."""
    refuse_direct_writes(monkeypatch)
    pieces = _pieces(2 * BLOCK + 77, seed=8)
    digest = _append(tmp_path / "f", pieces)
    assert (tmp_path / "f").read_bytes() == b"".join(pieces)
    assert digest == hash_bytes(b"".join(pieces))


@pytest.mark.parametrize("size", [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, 3 * BLOCK + 5])
def test_write_new_writes_a_whole_file(tmp_path: Path, size: int) -> None:
    """A cached chunk's file: every byte, and the descriptor left without O_DIRECT."""
    data = random.Random(size).randbytes(size)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        direct_io.write_new(fd, data)
        assert not fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data


def test_write_new_when_direct_writes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refuse_direct_writes(monkeypatch)
    data = random.Random(3).randbytes(BLOCK + 77)
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        direct_io.write_new(fd, data)
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data


@pytest.mark.parametrize("size", [0, 1, ALIGN - 1, ALIGN, ALIGN + 1, 3 * BLOCK + 5])
@pytest.mark.parametrize("refused", [False, True])
def test_write_new_to_a_file_opened_direct(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: int, refused: bool
) -> None:
    """The chunk cache's way: opened with O_DIRECT, every byte written, mode kept."""
    if refused:
        refuse_direct_writes(monkeypatch)
    data = random.Random(size).randbytes(size)
    path = tmp_path / "f"
    write_new_direct(path, data)
    assert path.read_bytes() == data
    assert path.stat().st_mode & 0o777 == 0o600


def write_new_direct(path: Path, data: bytes | memoryview) -> None:
    """Write ``data`` to a new file at ``path`` the chunk cache's way (O_DIRECT)."""
    fd = direct_io.open_direct(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    assert fd >= 0, "the test directory's filesystem takes O_DIRECT"
    try:
        direct_io.write_new(fd, data, opened_direct=True)
    finally:
        os.close(fd)


@pytest.mark.parametrize("shift", [0, 1])
def test_write_new_writes_a_page_aligned_view_from_where_it_lies(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shift: int
) -> None:
    """A chunk received into ``aligned_buffer`` is written without a copy; a view that
    starts off a page boundary lands whole all the same (copied where the kernel
    refuses it)."""
    size = 3 * ALIGN + 5
    buf = aligned_buffer(size + shift)
    assert len(buf) == size + shift and not buf.readonly
    buf[:] = random.Random(shift).randbytes(size + shift)
    data = buf[shift:]
    copies: list[int] = []
    real = direct_io._buffer

    def counted(n: int) -> mmap.mmap:
        copies.append(n)
        return real(n)

    monkeypatch.setattr(direct_io, "_buffer", counted)
    path = tmp_path / "f"
    write_new_direct(path, data)
    assert path.read_bytes() == bytes(data)
    if shift == 0:
        assert copies == []


def test_write_at_writes_a_large_view_the_kernel_refuses_to_take_in_place(tmp_path: Path) -> None:
    """A view not on a page (several chunks received into one buffer, cached one by
    one) and larger than the thread's aligned buffer was lost: the copy needed a
    bigger buffer while the refused write still held the old one (BufferError)."""
    data = random.Random(3).randbytes(3 * 1024 * 1024 + 100)
    view = memoryview(data)[1:]  # read-only and not on a page: refused in place
    path = tmp_path / "seg"
    fd = direct_io.open_direct(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    assert fd >= 0, "the test directory's filesystem takes O_DIRECT"
    try:
        at = direct_io.write_at(fd, view, 0, direct=True)
    finally:
        os.close(fd)
    raw = path.read_bytes()
    assert len(raw) == at == -(-len(view) // ALIGN) * ALIGN
    assert raw[: len(view)] == bytes(view)


@pytest.mark.parametrize("shift", [0, 1])
def test_write_at_caches_a_received_chunk_with_one_direct_write(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shift: int
) -> None:
    """Chunks appended to a cache segment the chunk cache's way: each lands on its page,
    zeros after it to the next, whatever its shape; one received into an aligned buffer
    with a partial last page goes to the disk in one direct write, not two (each write
    extends the file: as costly to the filesystem as a page of data)."""
    rng = random.Random(shift)
    sizes = [3 * ALIGN + 5, 2 * ALIGN, 100, ALIGN + 1]
    pieces: list[bytes | memoryview] = []
    for n in sizes:
        buf = aligned_buffer(n + shift)
        buf[:] = rng.randbytes(n + shift)
        pieces.append(buf[shift:])
    pieces.append(rng.randbytes(ALIGN + 7))  # bytes, not a view: through the aligned buffer
    writes: list[int] = []
    real_pwrite, real_pwritev = os.pwrite, os.pwritev

    def pwrite(fd: int, data: memoryview, offset: int) -> int:
        writes.append(fd)
        return real_pwrite(fd, data, offset)

    def pwritev(fd: int, views: list[memoryview], offset: int) -> int:
        writes.append(fd)
        return real_pwritev(fd, views, offset)

    monkeypatch.setattr(os, "pwrite", pwrite)
    monkeypatch.setattr(os, "pwritev", pwritev)
    path = tmp_path / "seg"
    fd = direct_io.open_direct(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    assert fd >= 0, "the test directory's filesystem takes O_DIRECT"
    offsets = []
    at = 0
    try:
        for piece in pieces:
            offsets.append(at)
            writes.clear()
            at += direct_io.write_at(fd, piece, at, direct=True)
            if shift == 0 and isinstance(piece, memoryview):
                assert len(writes) == 1
    finally:
        os.close(fd)
    raw = path.read_bytes()
    assert len(raw) == at
    for piece, off in zip(pieces, offsets, strict=True):
        n = len(piece)
        assert off % ALIGN == 0
        assert raw[off : off + n] == bytes(piece)
        assert raw[off + n : -(-(off + n) // ALIGN) * ALIGN] == bytes(-n % ALIGN)


def test_a_gathering_appender_writes_queued_blocks_together(tmp_path: Path) -> None:
    """Blocks that queue up while the writer is busy go out together, every byte in place."""
    path = tmp_path / "f"
    rng = random.Random(11)
    queued = rng.randbytes((direct_io.DEPTH - 1) * BLOCK)  # as many as may wait at once
    pieces = [queued, *_pieces(11 * BLOCK + 4321, seed=11)]
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with ThreadPoolExecutor(1) as thread:
            out = DirectAppender(fd, thread, gather=direct_io.GATHER)
            busy = threading.Event()
            thread.submit(busy.wait)  # the writer is held up: the first blocks queue
            out.write(queued)
            busy.set()
            for p in pieces[1:]:
                out.write(p)
            out.make_visible()
            assert path.read_bytes() == b"".join(pieces)
            out.write(b"tail")
            out.finish()
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(pieces) + b"tail"


def test_bytes_made_visible_midway_read_back(tmp_path: Path) -> None:
    """A pack being written is read from before it is finished (the store does this)."""
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    rng = random.Random(3)
    first, second = rng.randbytes(BLOCK + 5000), rng.randbytes(BLOCK // 2 + 3)
    try:
        with ThreadPoolExecutor(1) as thread:
            out = DirectAppender(fd, thread)
            out.write(first)
            out.make_visible()
            assert path.read_bytes() == first
            out.write(second)
            out.finish()
    finally:
        os.close(fd)
    assert path.read_bytes() == first + second


@pytest.mark.parametrize(
    ("gather", "writers"),
    [(1, 1), (direct_io.GATHER, 1), (direct_io.GATHER, direct_io.WRITE_DEPTH)],
)
def test_disk_full_is_an_oserror_of_the_writer(small_disk: Path, gather: int, writers: int) -> None:
    fd = os.open(small_disk / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with ThreadPoolExecutor(writers) as thread:
            out = DirectAppender(fd, thread, gather=gather)
            with pytest.raises(OSError) as info:
                for p in _pieces(16 << 20, seed=4):  # twice the 8 MiB the disk has
                    out.write(p)
                out.finish()
            assert info.value.errno == errno.ENOSPC
            out.abandon()
    finally:
        os.close(fd)


def test_reserved_blocks_leave_the_size_to_the_writes(tmp_path: Path) -> None:
    """reserve_blocks gives an empty file its blocks but not its size (a large file
    restored through the page cache: its size grows with its bytes); writes then fill
    it, and its size is what they wrote."""
    size = 3 * BLOCK + 12_345
    fd = os.open(tmp_path / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        assert direct_io.reserve_blocks(fd, 0, size)  # (ext4 and tmpfs both have fallocate)
        st = os.fstat(fd)
        assert st.st_size == 0 and st.st_blocks * 512 >= size
        data = random.Random(8).randbytes(size)
        for at in range(0, size, 1_000_003):
            os.pwrite(fd, data[at : at + 1_000_003], at)
        st = os.fstat(fd)
        assert st.st_size == size and st.st_blocks * 512 < size + BLOCK
    finally:
        os.close(fd)
    assert (tmp_path / "f").read_bytes() == data


def test_reserving_more_than_the_disk_has_fails_before_anything_is_written(
    small_disk: Path,
) -> None:
    fd = os.open(small_disk / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with pytest.raises(OSError) as info:
            direct_io.reserve_blocks(fd, 0, 16 << 20)  # twice the 8 MiB the disk has
        assert info.value.errno == errno.ENOSPC
    finally:
        os.close(fd)
    assert os.statvfs(small_disk).f_bfree * os.statvfs(small_disk).f_frsize > 7 << 20


def _random_block(size: int, seed: int) -> mmap.mmap:
    """A page-aligned buffer of random bytes, as a large file is read into."""
    buf = mmap.mmap(-1, size)
    buf[:] = random.Random(seed).randbytes(size)
    return buf


def _lend_and_write(path: Path, busy: bool, writers: int = 1) -> tuple[bytes, bool]:
    """Append copied pieces and lent stretches of a page-aligned buffer, at every kind of
    offset; return the bytes the file must hold (zeros where the appender padded) and
    whether it stayed direct. ``busy``: the writers are held up, so pieces queue and go
    out together; ``writers``: threads writing (several writes at a time)."""
    buf = _random_block(3 * BLOCK, seed=12)
    rng = random.Random(12)
    stretches = [(5, 3 * ALIGN), (ALIGN, 2 * ALIGN + 1), (7, 2 * ALIGN + 6),
                 (ALIGN + 1, BLOCK + 12_345), (BLOCK - 3, BLOCK + 4 * ALIGN), (0, BLOCK),
                 (100, 100 + ALIGN)]  # fmt: skip
    expect = bytearray()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with ThreadPoolExecutor(writers) as thread:
            out = DirectAppender(fd, thread, gather=direct_io.GATHER)
            held = threading.Event()
            if busy:
                for _ in range(writers):
                    thread.submit(held.wait)
            lent = []
            for i, (start, end) in enumerate(stretches):
                if i == 2:  # (before a fourth block would wait for the held writer)
                    held.set()
                piece = rng.randbytes(rng.choice([1, 4, 4097, 70_001]))
                out.write(piece)
                expect += piece
                fut = out.lend(memoryview(buf)[start:end], start % ALIGN)
                at = out.size - (end - start)
                assert 0 <= at - len(expect) < ALIGN  # padded by less than a page
                expect += bytes(at - len(expect)) + buf[start:end]
                if fut is not None:
                    lent.append(fut)
            assert lent  # (most stretches are long enough to be lent)
            out.make_visible()
            assert path.read_bytes() == expect  # readable midway, as the store reads
            out.write(b"tail")
            out.finish()
            assert all(f.done() for f in lent)
            direct = out.direct
    finally:
        os.close(fd)
    return bytes(expect + b"tail"), direct


@pytest.mark.parametrize("writers", [1, direct_io.WRITE_DEPTH])
@pytest.mark.parametrize("busy", [False, True], ids=["idle-writer", "busy-writer"])
def test_lent_stretches_are_written_in_place(tmp_path: Path, busy: bool, writers: int) -> None:
    """Stretches lent from a page-aligned buffer land at the offsets the appender gives,
    after fewer than ALIGN zero bytes, between copied pieces, written direct (by one
    thread, or by several at a time as the store's packs are)."""
    expect, direct = _lend_and_write(tmp_path / "f", busy, writers)
    assert direct
    assert (tmp_path / "f").read_bytes() == expect


def test_lent_stretches_when_direct_writes_are_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A filesystem that refuses the alignment of direct writes gets the same bytes."""
    real = os.pwritev

    def strict(fd: int, views: list[memoryview], offset: int) -> int:
        if fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_DIRECT:
            raise OSError(errno.EINVAL, "Invalid argument")
        return real(fd, views, offset)

    monkeypatch.setattr(os, "pwritev", strict)
    refuse_direct_writes(monkeypatch)
    expect, direct = _lend_and_write(tmp_path / "f", busy=False)
    assert not direct
    assert (tmp_path / "f").read_bytes() == expect


@pytest.mark.parametrize("writers", [1, direct_io.WRITE_DEPTH])
def test_disk_full_while_lending_is_an_oserror_of_the_writer(
    small_disk: Path, writers: int
) -> None:
    buf = _random_block(2 * BLOCK, seed=13)
    fd = os.open(small_disk / "f", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    try:
        with ThreadPoolExecutor(writers) as thread:
            out = DirectAppender(fd, thread, gather=direct_io.GATHER)
            with pytest.raises(OSError) as info:
                for _ in range(8):  # 16 MiB, twice the 8 MiB the disk has
                    out.write(b"x")
                    out.lend(memoryview(buf)[1:], 1)
                out.finish()
            assert info.value.errno == errno.ENOSPC
            out.abandon()
    finally:
        os.close(fd)


def test_store_lends_a_run_of_chunks_as_one_stretch(tmp_path: Path) -> None:
    """put_lent_many: raw chunks lying back to back go to the pack in one stretch; a
    compressible one between them is stored compressed, one present or given twice is
    stored once. Each reads back from the open pack and from the finished one, after
    the caller's buffer was reused, and the pack checks."""
    store = ObjectStore.create(tmp_path / "objects")
    buf = _random_block(4 * BLOCK, seed=15)
    text = (b"column,value\n" * 80_660)[: 1 << 20]
    buf[3 * BLOCK : 3 * BLOCK + len(text)] = text
    ends = [300_001, 1_000_003, 1_700_000, 3 * BLOCK, 3 * BLOCK + len(text), 7_800_000]
    cuts = list(zip([100, *ends[:-1]], ends, strict=True))
    kept = {hash_bytes(buf[a:b]): bytes(buf[a:b]) for a, b in cuts}
    store.put(ObjKind.CHUNK, kept[hash_bytes(buf[300_001:1_000_003])])  # present already
    pieces = [(hash_bytes(buf[a:b]), a, b) for a, b in cuts]
    pieces.append(pieces[0])  # the same chunk twice
    written, futs = store.put_lent_many(ObjKind.CHUNK, memoryview(buf), pieces)
    raw = sum(b - a for a, b in cuts) - (1_000_003 - 300_001) - len(text)
    assert raw < written < raw + len(text) // 2  # the text compressed, the rest raw
    assert len(futs) == 3  # stretches: before the one present, then up to the text, after it
    for fut in futs:
        fut.result()
    assert {oid: store.get(oid) for oid in kept} == kept  # from the open pack
    buf[:] = bytes(len(buf))  # the caller's buffer is free again
    store.close()
    again = ObjectStore(tmp_path / "objects")
    assert {oid: again.get(oid) for oid in kept} == kept
    assert all(check_pack(p) is None for p in again.pack_paths())


def test_store_lends_raw_chunks_and_copies_the_rest(tmp_path: Path) -> None:
    """put_lent: a raw chunk is written from the caller's buffer (which may change once
    the write is done), a compressible one is stored compressed, a present one skipped;
    every pack then checks and every object reads back."""
    store = ObjectStore.create(tmp_path / "objects")
    buf = _random_block(3 * BLOCK, seed=14)
    buf[BLOCK : BLOCK + (1 << 20)] = (b"column,value\n" * 80_660)[: 1 << 20]
    raw = memoryview(buf)[77 : 77 + 900_001]
    text = memoryview(buf)[BLOCK : BLOCK + (1 << 20)]
    kept = {hash_bytes(raw): bytes(raw), hash_bytes(text): bytes(text)}
    written, fut = store.put_lent(ObjKind.CHUNK, raw, hash_bytes(raw), 77)
    assert written == len(raw) and fut is not None
    fut.result()
    written, fut = store.put_lent(ObjKind.CHUNK, text, hash_bytes(text), 0)
    assert 0 < written < len(text) // 2 and fut is None  # compressed: copied
    assert store.put_lent(ObjKind.CHUNK, raw, hash_bytes(raw), 77) == (0, None)
    assert store.get(hash_bytes(raw)) == kept[hash_bytes(raw)]  # from the open pack
    buf[:] = bytes(len(buf))  # the caller's buffer is free again
    store.close()
    again = ObjectStore(tmp_path / "objects")
    for oid, data in kept.items():
        assert again.get(oid) == data
    assert all(check_pack(p) is None for p in again.pack_paths())
    again.close()


def test_full_packs_are_finished_while_the_next_one_fills(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A pack that fills up is finished on a thread of its own while the store goes on.

    Each object reads back as soon as its store returns, whether its pack is still
    being finished or not; once flushed, every pack has its real name and a header and
    index file that check out, and no temporary file is left.
    """
    monkeypatch.setattr(objects, "LOCAL_PACK_SIZE", 1 << 20)
    store = ObjectStore.create(tmp_path / "objects")
    rng = random.Random(11)
    kept = {}
    for i in range(24):
        data = rng.randbytes(300_000 + i)  # random: stored raw, several packs
        oid = store.put(ObjKind.CHUNK, data)[0]
        kept[oid] = data
        assert store.get(oid) == data
    first = next(iter(kept))
    assert store.locate(first)[0].name.endswith(".pack")  # finished by the time it is named
    store.flush()
    packs = store.pack_paths()
    assert len(packs) >= 6
    assert all(check_pack(p) is None for p in packs)
    assert [p.name for p in (tmp_path / "objects").iterdir() if p.name.startswith(".tmp")] == []
    store.close()
    again = ObjectStore(tmp_path / "objects")
    assert {oid: again.get(oid) for oid in kept} == kept
    again.close()


def test_a_pack_that_cannot_be_finished_is_forgotten(
    small_disk: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The disk fills up while full packs are finished in the background.

    The store says so (one error, the disk is full) at a later store or at the flush;
    what it still lists as stored reads back intact, what it lost is no longer listed,
    and no temporary file is left to take the space.
    """
    monkeypatch.setattr(objects, "LOCAL_PACK_SIZE", 1 << 20)
    store = ObjectStore.create(small_disk / "objects")
    rng = random.Random(12)
    kept = {}
    with pytest.raises(StorageFull):
        for _ in range(40):  # 12 MiB for 8
            data = rng.randbytes(300_000)
            kept[store.put(ObjKind.CHUNK, data)[0]] = data
        store.flush()
    with contextlib.suppress(StorageFull):
        store.discard()
        store.flush()
    held = [oid for oid in kept if store.has(oid)]
    assert 0 < len(held) < len(kept)
    for oid in held:
        assert store.get(oid) == kept[oid]
    assert all(check_pack(p) is None for p in store.pack_paths())
    store.close()
    left = [p.name for p in (small_disk / "objects").iterdir() if p.name.startswith(".tmp")]
    assert left == []
    again = ObjectStore(small_disk / "objects")
    assert sorted(oid for oid in kept if again.has(oid)) == sorted(held)
    again.close()


def _uncached(path: Path) -> None:
    """Drop a file's pages from the page cache (written back first: clean pages go)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_DONTNEED)
    finally:
        os.close(fd)


def test_read_range_and_read_cached(disk_path: Path) -> None:
    path = disk_path / "f"
    data = random.Random(5).randbytes(3 * ALIGN * 100 + 17)
    path.write_bytes(data)
    _uncached(path)
    fd = os.open(path, os.O_RDONLY)
    dfd = os.open(path, os.O_RDONLY | os.O_DIRECT)
    try:
        assert read_cached(fd, 5000, 70_000) is None  # not in the page cache
        assert page_cache.cached(fd, 0, len(data)) is False  # and the miss read nothing in
        for offset, length in [(0, 1), (5000, 70_000), (ALIGN, ALIGN), (len(data) - 17, 17)]:
            assert read_range(dfd, offset, length) == data[offset : offset + length]
            view = read_range_view(dfd, offset, length)
            assert view is not None and view == data[offset : offset + length]
            assert isinstance(view.obj, bytearray)  # its own buffer, not the thread's
        assert page_cache.cached(fd, 0, len(data)) is False  # direct reads pass the cache by
        assert read_range(dfd, len(data) - 10, 20) is None  # past the end: short
        assert read_range_view(dfd, len(data) - 10, 20) is None
        os.pread(fd, len(data), 0)  # now cached
        assert read_cached(fd, 5000, 70_000) == data[5000:75_000]
    finally:
        os.close(fd)
        os.close(dfd)


@pytest.mark.parametrize("probe", [0, 1], ids=["cachestat", "mincore"])
def test_page_cache_probes(disk_path: Path, probe: int) -> None:
    """Each probe tells cached ranges from uncached ones, to the page, without reading.

    cachestat needs Linux 6.5: on an older kernel it must answer None (unknown), so
    that the mincore probe is asked instead.
    """
    ask = page_cache._probes()[probe]
    page = mmap.PAGESIZE
    path = disk_path / "f"
    path.write_bytes(random.Random(6).randbytes(64 * page))
    _uncached(path)
    fd = os.open(path, os.O_RDONLY)
    try:
        os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no readahead around the reads
        os.pread(fd, 4 * page, 8 * page)  # pages 8-11 cached, the rest not
        if probe == 0 and ask(fd, 8 * page, 4) is None:
            kernel = tuple(int(n) for n in os.uname().release.split("-")[0].split(".")[:2])
            assert kernel < (6, 5), "cachestat answered nothing on a kernel that has it"
            return
        assert ask(fd, 8 * page, 4) is True
        assert ask(fd, 9 * page, 2) is True
        assert ask(fd, 7 * page, 2) is False  # page 7 is not cached
        assert ask(fd, 11 * page, 2) is False  # nor page 12
        assert ask(fd, 30 * page, 1) is False
        assert ask(fd, 8 * page, 4) is True  # asking read nothing in
        assert page_cache.cached(fd, 8 * page + 100, 4 * page - 200) is True
        assert page_cache.cached(fd, 8 * page + 100, 4 * page) is False
    finally:
        os.close(fd)


def test_large_objects_read_once_past_the_page_cache(disk_path: Path) -> None:
    """A large object not in the page cache is read direct, and only once.

    A miss of the cached read must not start a readahead of the range: the object
    would be read from the disk twice, once into pages nobody reads.
    """
    store = ObjectStore.create(disk_path / "objects")
    blob = random.Random(8).randbytes(3 << 20)  # incompressible: stored whole
    oid = store.put(ObjKind.CHUNK, blob)[0]
    store.close()
    (pack,) = ObjectStore(disk_path / "objects").pack_paths()
    _uncached(pack)
    again = ObjectStore(disk_path / "objects")
    assert again.get(oid) == blob
    buf = mmap.mmap(-1, len(blob) + 2 * ALIGN)
    view = again.read_into(oid, buf)
    assert isinstance(view, memoryview) and view == blob  # a view of buf: no copy
    view.release()
    fd = os.open(pack, os.O_RDONLY)
    try:
        assert page_cache.cached(fd, 0, os.fstat(fd).st_size) is False
        os.pread(fd, os.fstat(fd).st_size, 0)  # cached now: read from the cache
        view = again.read_into(oid, buf)
        assert isinstance(view, memoryview) and view == blob
        view.release()
    finally:
        os.close(fd)
    small = mmap.mmap(-1, 4096)  # too small a buffer: bytes, still verified
    assert again.read_into(oid, small) == blob
    again.close()


@pytest.mark.parametrize("cached", [False, True], ids=["direct", "cached"])
def test_read_into_verifies(disk_path: Path, cached: bool) -> None:
    """A damaged large object read into a buffer fails as corrupt, by either path."""
    store = ObjectStore.create(disk_path / "objects")
    blob = random.Random(9).randbytes(1 << 20)
    oid = store.put(ObjKind.CHUNK, blob)[0]
    store.close()
    (pack,) = ObjectStore(disk_path / "objects").pack_paths()
    raw = bytearray(pack.read_bytes())
    at = raw.find(blob) + len(blob) // 2
    raw[at] ^= 0xFF
    pack.write_bytes(bytes(raw))
    if not cached:
        _uncached(pack)
    again = ObjectStore(disk_path / "objects")
    with pytest.raises(ObjectCorrupt):
        again.read_into(oid, mmap.mmap(-1, len(blob) + 2 * ALIGN))
    again.close()


def test_tickets_are_claimed_once_across_processes() -> None:
    """Parent and forked child together claim every piece exactly once."""
    pieces = 40_000  # more than a pipe holds tickets for: each covers a run of pieces
    tickets = Tickets.share(pieces)
    assert tickets is not None and tickets.per > 1
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child claims until none are left, and reports what it got
        code = 1
        try:
            os.close(r)
            got: list[int] = []
            while (run := tickets.claim()) is not None:
                got.extend(run)
            with os.fdopen(w, "w") as out:
                out.write(" ".join(map(str, got)))
            code = 0
        finally:
            os._exit(code)
    os.close(w)
    mine: list[int] = []
    while (run := tickets.claim()) is not None:
        mine.extend(run)
    with os.fdopen(r) as fh:
        theirs = [int(x) for x in fh.read().split()]
    assert os.waitpid(pid, 0)[1] == 0
    tickets.close()
    assert sorted(mine + theirs) == list(range(pieces))


def test_a_store_keeps_a_bounded_number_of_packs_open(tmp_path: Path) -> None:
    """Reading from more packs than the limit keeps at most the limit open.

    A store of a few terabytes has hundreds of thousands of packs; one descriptor
    kept per pack read would hit the file limit. Large objects are read direct, so
    both kinds of descriptor are counted.
    """
    store = ObjectStore.create(tmp_path / "objects")
    rng = random.Random(7)
    blobs = [rng.randbytes(300_000 if i % 2 else 3000) for i in range(40)]
    ids = []
    for blob in blobs:
        ids.append(store.put(ObjKind.CHUNK, blob)[0])
        store.flush()  # one pack each
    assert len(store.pack_paths()) == 40

    def fds() -> int:
        return len(os.listdir("/proc/self/fd"))

    before = fds()
    again = ObjectStore(tmp_path / "objects")
    again._fds.limit = 6
    with ThreadPoolExecutor(4) as pool:
        for _ in range(3):
            got = list(pool.map(again.get, ids))
            assert got == blobs
            assert fds() - before <= 6
    again.close()
    assert fds() <= before
    store.close()
