"""The daemon's parts without the kernel: inodes, the chunk cache, the fetcher, handlers.

The handlers are called directly, as the kernel would call them, on a repository
built in the test (S3QL's ``t3_fs_api`` style): lookups down to a file, 200 reads at
random offsets against the committed bytes, and every write refused with EROFS. The
fetcher is driven with a fake remote that counts and can stall, to show that
readers of one chunk share one fetch, that a stalled fetch costs a bounded wait, and
that read-ahead follows sequential readers only.
"""

from __future__ import annotations

import errno
import os
import random
import threading
import time
from collections.abc import Awaitable, Callable, Generator, Sequence
from pathlib import Path
from typing import Any, cast

import pyfuse3
import pytest
import trio
import trio.testing
import yaml

from daemon.data import digests as digests_module
from daemon.data import fetcher as fetcher_module
from daemon.data import meta as meta_module
from daemon.data.chunk_cache import ChunkCache
from daemon.data.digests import KEEP_ENV, Digests, MarkFile
from daemon.data.fetcher import MAX_INFLIGHT_BYTES, MAX_RUN, Fetcher
from daemon.data.open_files import AHEAD_AFTER, MAX_AHEAD, OpenFile
from daemon.data.record_cache import Records
from daemon.fs import inodes
from daemon.fs.inodes import InodeTable, Node, NodeKind, entry_node
from daemon.fs.namespace import Layout
from daemon.fs.versions import VersionsFs
from daemon.source import RepositorySource
from tests.support.chunk_cache import chunks_on_disk, disk_bytes, sealed
from tests.support.cli import fsck_clean
from tests.support.forge import content_entry
from tests.support.mount import commit, write
from vfs import (
    ChunkRef,
    Entry,
    FormatError,
    Kind,
    ObjectCorrupt,
    RemoteRepo,
    RemoteUnreachable,
    hash_bytes,
)
from vfs.ops.browse import show_version
from vfs.remote.read import RemoteChunks, RunPiece
from vfs.repo.repository import Repository
from vfs.store.compression import Compression
from vfs.store.objects import ObjKind
from vfs.store.packs import PackedObject

CTX = cast(pyfuse3.RequestContext, None)
KiB = 1024
MiB = 1024 * KiB


# ---------------------------------------------------------------------------- inodes


def test_inode_numbers_derive_from_what_and_where() -> None:
    a = entry_node(b"data", content_entry(b"a", b"x"))
    assert inodes.number_of(a.key) == inodes.number_of(
        entry_node(b"data", content_entry(b"a", b"x")).key
    )
    assert inodes.HASHED_BASE <= inodes.number_of(a.key) < 1 << 63
    moved = entry_node(b"other", content_entry(b"a", b"x"))
    changed = entry_node(b"data", content_entry(b"a", b"y"))
    touched = entry_node(b"data", content_entry(b"a", b"x", mtime=5))
    assert len({n.key for n in (a, moved, changed, touched)}) == 4
    d = Entry(b"d", Kind.DIR, 0o755, 0, 0, subtree=b"\1" * 32)
    assert entry_node(b"v1", d).key != entry_node(b"v2", d).key


def test_table_counts_references_and_forgets_at_zero() -> None:
    table = InodeTable()
    root = table.pin(inodes.ROOT, Node(b"/", NodeKind.ROOT, b""))
    n = table.remember(entry_node(b"", content_entry(b"a", b"x")))
    again = table.remember(entry_node(b"", content_entry(b"a", b"x")))
    assert again is n and n.lookups == 2
    table.forget(n.ino, 1)
    assert table.get(n.ino) is n
    table.forget(n.ino, 1)
    assert table.get(n.ino) is None
    table.forget(inodes.ROOT, 100)
    assert table.get(inodes.ROOT) is root
    third = table.remember(entry_node(b"", content_entry(b"a", b"x")))
    assert third.ino == n.ino  # the same number when it comes back


def test_table_probes_past_a_collision(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(inodes, "number_of", lambda key: inodes.HASHED_BASE + 7)
    table = InodeTable()
    a = table.remember(entry_node(b"", content_entry(b"a", b"x")))
    b = table.remember(entry_node(b"", content_entry(b"b", b"y")))
    assert (a.ino, b.ino) == (inodes.HASHED_BASE + 7, inodes.HASHED_BASE + 8)


# ---------------------------------------------------------------------------- cache


UNIT = 8192  # a small chunk alone in a segment: one page of bytes, one of index


def test_cache_evicts_least_recently_used_within_its_limit(tmp_path: Path) -> None:
    chunks = {name: name * 100 for name in (b"a", b"b", b"c", b"d")}
    ids = {name: hash_bytes(data) for name, data in chunks.items()}
    root = tmp_path / "chunks"
    cache = ChunkCache(root, 2 * UNIT + UNIT // 2)
    assert cache.put(ids[b"a"], chunks[b"a"]) and cache.put(ids[b"b"], chunks[b"b"])
    assert cache.get(ids[b"a"]) == chunks[b"a"]  # a is now more recent than b
    cache.put(ids[b"c"], chunks[b"c"])
    assert ids[b"b"] not in cache and cache.get(ids[b"b"]) is None
    assert cache.get(ids[b"a"]) == chunks[b"a"] and cache.get(ids[b"c"]) == chunks[b"c"]
    assert cache.usage() == 2 * UNIT <= cache.limit
    big = b"z" * 3 * UNIT
    assert not cache.put(hash_bytes(big), big)  # larger than the whole cache
    assert disk_bytes(root) == cache.usage()
    assert chunks_on_disk(root) == {ids[n].hex(): chunks[n] for n in (b"a", b"c")}
    reopened = ChunkCache(root, 2 * UNIT + UNIT // 2)
    assert reopened.usage() == 2 * UNIT and ids[b"a"] in reopened and ids[b"c"] in reopened
    reopened = ChunkCache(root, UNIT + UNIT // 2)  # a smaller limit evicts at start
    assert reopened.usage() == UNIT == disk_bytes(root)


def test_cache_never_serves_a_damaged_chunk(tmp_path: Path) -> None:
    data = b"payload" * 10
    oid = hash_bytes(data)
    cache = ChunkCache(tmp_path / "chunks", 100_000)
    cache.put(oid, data)
    (path,) = (tmp_path / "chunks").glob("*.seg")
    with open(path, "r+b") as f:
        f.write(b"X")  # the chunk's first byte
    assert cache.get(oid) is None
    assert not path.exists() and oid not in cache and cache.usage() == 0


@pytest.mark.parametrize("direct", [True, False], ids=["O_DIRECT", "no-O_DIRECT"])
def test_cache_reads_chunks_of_every_size_back(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, direct: bool
) -> None:
    """Direct reads round sizes up to blocks and fall back where O_DIRECT is refused."""
    if not direct:  # a filesystem without O_DIRECT (tmpfs before 6.6) refuses the open
        real_open = os.open

        def no_direct(path: str | Path, flags: int, *args: int) -> int:
            if flags & os.O_DIRECT:
                raise OSError(errno.EINVAL, "O_DIRECT refused")
            return real_open(path, flags, *args)

        monkeypatch.setattr(os, "open", no_direct)
    rng = random.Random(7)
    sizes = [0, 1, 511, 512, 4095, 4096, 4097, 300_000, 4 * 1024 * 1024, 5 * 1024 * 1024 + 3]
    chunks = {hash_bytes(d): d for d in (rng.randbytes(n) for n in sizes)}
    cache = ChunkCache(tmp_path / "chunks", 64 * 1024 * 1024)
    for oid, data in chunks.items():
        assert cache.put(oid, data)
    for oid, data in chunks.items():
        assert cache.get(oid) == data


def test_cache_removes_an_older_layout_and_writes_past_taken_names(tmp_path: Path) -> None:
    """An older version's cache (a file per chunk in 256 directories, temporary files)
    is removed at start; a segment name another process took is passed over; segments
    are 0600 in 0700."""
    root = tmp_path / "chunks"
    old = root / "ab" / ("ab" + "0" * 62)
    old.parent.mkdir(parents=True)
    old.write_bytes(b"old chunk")
    (root / ".tmp-1-1").write_bytes(b"half written")
    os.chmod(root, 0o755)
    cache = ChunkCache(root, 1 << 20)
    assert list(root.iterdir()) == [] and root.stat().st_mode & 0o777 == 0o700
    taken = root / f"{cache._stamp}-0.seg"  # the name the cache's first segment takes
    taken.write_bytes(b"someone else's")
    first = b"first" * 1000
    assert cache.put(hash_bytes(first), first)
    assert cache.get(hash_bytes(first)) == first
    assert taken.read_bytes() == b"someone else's"  # another's file is left alone
    taken.unlink()
    assert chunks_on_disk(root) == {hash_bytes(first).hex(): first}
    for f in root.iterdir():
        assert f.stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------------------- fetcher


class FakeRemote(RemoteChunks):
    """A remote of known chunks that counts fetches and can be made to stall."""

    def __init__(self, chunks: dict[bytes, bytes], delay: float = 0.0) -> None:
        super().__init__(self._no_remote)
        self.chunks = chunks
        self.delay = delay
        self.calls: list[bytes] = []
        self.gate = threading.Event()
        self.gate.set()

    @staticmethod
    def _no_remote() -> RemoteRepo:
        raise AssertionError("not connected in tests")

    def fetch(self, oid: bytes) -> bytes:
        self.calls.append(oid)
        self.gate.wait(timeout=30)
        time.sleep(self.delay)
        return self.chunks[oid]


def with_fetcher(fetcher: Fetcher, scenario: Callable[[Fetcher], Awaitable[None]]) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(fetcher.run)
            await scenario(fetcher)
            nursery.cancel_scope.cancel()

    trio.run(main)


def make_chunks(n: int, size: int) -> tuple[list[ChunkRef], dict[bytes, bytes]]:
    rng = random.Random(n)
    datas = [rng.randbytes(size) for _ in range(n)]
    refs = [ChunkRef(hash_bytes(d), len(d)) for d in datas]
    return refs, {r.oid: d for r, d in zip(refs, datas, strict=True)}


def file_of(refs: Sequence[ChunkRef], chunks: dict[bytes, bytes], digest: bytes = b"") -> Entry:
    """A file ``f`` of ``refs`` (bytes in ``chunks``), with its true digest unless
    another is given."""
    data = b"".join(chunks[r.oid] for r in refs)
    size = len(data)
    return Entry(b"f", Kind.FILE, 0o644, size, 0, digest or hash_bytes(data), tuple(refs))


class GatedWrites:
    """Holds the cache's writes at a gate, so that a test sees them pending."""

    def __init__(self, cache: ChunkCache, monkeypatch: pytest.MonkeyPatch) -> None:
        self.gate = threading.Event()
        self.started = threading.Semaphore(0)
        real = cache._append

        def gated(seg: Any, chunks: list[tuple[bytes, int, int]], data: bytes | memoryview) -> Any:
            self.started.release()
            assert self.gate.wait(timeout=30)
            return real(seg, chunks, data)

        monkeypatch.setattr(cache, "_append", gated)


def on_disk(root: Path) -> dict[str, bytes]:
    return chunks_on_disk(root)


def test_a_chunk_is_served_from_memory_until_its_cache_write_lands(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    refs, chunks = make_chunks(3, 100 * KiB)
    root = tmp_path / "chunks"
    cache = ChunkCache(root, MiB, writers=2)
    writes = GatedWrites(cache, monkeypatch)
    for r in refs:
        cache.put_later(r.oid, chunks[r.oid])
    assert writes.started.acquire(timeout=30) and writes.started.acquire(timeout=30)
    assert on_disk(root) == {} and cache.pending() == 3 * 100 * KiB
    for r in refs:  # a second reader finds each chunk while its write is pending
        assert r.oid in cache and cache.get(r.oid) == chunks[r.oid]
    writes.gate.set()
    cache.close()  # what is pending is written before it returns
    assert on_disk(root) == {r.oid.hex(): chunks[r.oid] for r in refs}
    assert cache.pending() == 0 and cache.usage() == disk_bytes(root)
    assert set(sealed(root)) == set(root.iterdir())  # every segment sealed
    cache.put_later(hash_bytes(b"late"), b"late")  # a closed cache takes nothing
    reopened = ChunkCache(root, MiB)
    assert all(reopened.get(r.oid) == chunks[r.oid] for r in refs)


def test_a_read_racing_with_a_pending_cache_write_gets_the_right_bytes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A chunk pushed out of the fetcher's memory before its cache write lands is read
    from the cache's pending chunks: the right bytes, and no second GET."""
    monkeypatch.setattr(fetcher_module, "MEMORY_BYTES", 64 * KiB)  # one chunk each
    monkeypatch.setattr(fetcher_module, "AHEAD_BYTES", 64 * KiB)
    refs, chunks = make_chunks(4, 64 * KiB)
    root = tmp_path / "chunks"
    cache = ChunkCache(root, MiB)
    writes = GatedWrites(cache, monkeypatch)
    remote = FakeRemote(chunks)
    fetcher = Fetcher(None, cache, remote, timeout=5)

    async def scenario(f: Fetcher) -> None:
        for r in refs:  # each pushes the one before out of the fetcher's memory
            assert await f.get(r) == chunks[r.oid]
        assert on_disk(root) == {}  # every write still held at the gate
        for r in refs:
            assert await f.get(r) == chunks[r.oid]

    try:
        with_fetcher(fetcher, scenario)
    finally:
        writes.gate.set()
    assert remote.calls == [r.oid for r in refs]  # each fetched once
    cache.close()
    assert on_disk(root) == {r.oid.hex(): chunks[r.oid] for r in refs}


def test_pending_cache_writes_are_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fetching thread waits when the chunks not written yet would pass the bound."""
    refs, chunks = make_chunks(3, 100 * KiB)
    root = tmp_path / "chunks"
    cache = ChunkCache(root, MiB, writers=1, pending_limit=250 * KiB)
    writes = GatedWrites(cache, monkeypatch)
    cache.put_later(refs[0].oid, chunks[refs[0].oid])
    cache.put_later(refs[1].oid, chunks[refs[1].oid])
    assert writes.started.acquire(timeout=30)  # the first is being written, the second waits
    third_in = threading.Event()

    def fetching_thread() -> None:
        cache.put_later(refs[2].oid, chunks[refs[2].oid])
        third_in.set()

    t = threading.Thread(target=fetching_thread)
    t.start()
    assert not third_in.wait(timeout=0.3)  # 300 KiB would pass the bound: it waits
    assert cache.pending() == 200 * KiB
    writes.gate.set()  # the first write lands: room for the third
    assert third_in.wait(timeout=30)
    t.join(timeout=30)
    cache.close()
    assert on_disk(root) == {r.oid.hex(): chunks[r.oid] for r in refs}
    assert cache.pending() == 0 and cache.usage() == disk_bytes(root)


def test_a_cache_left_by_a_killed_daemon_is_only_missing_chunks(tmp_path: Path) -> None:
    """What a kill, or a crash of the machine, can leave: a segment being written (no
    index yet), a chunk damaged in a sealed one. The first is deleted at start-up; the
    second is found when read, deleted, and fetched again, never served."""
    refs, chunks = make_chunks(3, 64 * KiB)
    root = tmp_path / "chunks"
    cache = ChunkCache(root, MiB)
    for r in refs:  # a segment each
        assert cache.put(r.oid, chunks[r.oid])
    torn = root / "0000000000000000-7.seg"
    torn.write_bytes(chunks[refs[0].oid] + bytes(4 * KiB))
    (damaged,) = [f for f, held in sealed(root).items() if refs[1].oid.hex() in held]
    with open(damaged, "r+b") as f:
        f.seek(32 * KiB)
        f.write(b"\0" * 100)
    remote = FakeRemote(chunks)
    reopened = ChunkCache(root, MiB)
    assert not torn.exists()
    fetcher = Fetcher(None, reopened, remote, timeout=5)

    async def scenario(f: Fetcher) -> None:
        for r in refs:
            assert await f.get(r) == chunks[r.oid]

    with_fetcher(fetcher, scenario)
    assert remote.calls == [refs[1].oid]  # the damaged chunk alone came from the remote
    assert not damaged.exists()
    reopened.close()
    assert on_disk(root) == {r.oid.hex(): chunks[r.oid] for r in refs}  # whole again


def test_a_cached_segment_that_cannot_be_read_is_fetched_again(tmp_path: Path) -> None:
    """A segment whose file fails to read (an I/O error of the cache's disk; here a
    directory where the segment was) is a damaged one: dropped, its chunks fetched
    from the remote and cached again, never a read failing with the cache's error."""
    refs, chunks = make_chunks(2, 64 * KiB)
    root = tmp_path / "chunks"
    cache = ChunkCache(root, MiB)
    for r in refs:  # a segment each
        assert cache.put(r.oid, chunks[r.oid])
    (unreadable,) = [f for f, held in sealed(root).items() if refs[0].oid.hex() in held]
    unreadable.unlink()
    unreadable.mkdir()
    remote = FakeRemote(chunks)
    fetcher = Fetcher(None, cache, remote, timeout=5)

    async def scenario(f: Fetcher) -> None:
        for r in refs:
            assert await f.get(r) == chunks[r.oid]

    with_fetcher(fetcher, scenario)
    assert remote.calls == [refs[0].oid]  # the unreadable chunk alone came from the remote
    unreadable.rmdir()
    cache.close()
    assert on_disk(root) == {r.oid.hex(): chunks[r.oid] for r in refs}  # whole again


def test_chunks_written_behind_share_segments_that_outlive_the_cache(tmp_path: Path) -> None:
    """Written behind by one writer, chunks land in one segment (one file, not one per
    chunk), found again by the next cache from the segment's index."""
    refs, chunks = make_chunks(20, 40 * KiB + 7)
    root = tmp_path / "chunks"
    cache = ChunkCache(root, 64 * MiB, writers=1)
    for r in refs:
        cache.put_later(r.oid, chunks[r.oid])
    cache.close()
    assert len(list(root.iterdir())) == 1
    assert on_disk(root) == {r.oid.hex(): chunks[r.oid] for r in refs}
    reopened = ChunkCache(root, 64 * MiB)
    assert reopened.usage() == disk_bytes(root)
    assert all(reopened.get(r.oid) == chunks[r.oid] for r in refs)


def test_readers_of_one_chunk_share_one_fetch(tmp_path: Path) -> None:
    refs, chunks = make_chunks(1, 1000)
    remote = FakeRemote(chunks, delay=0.2)
    fetcher = Fetcher(None, ChunkCache(tmp_path, 10_000), remote, timeout=5)
    got: list[bytes | memoryview] = []

    async def scenario(f: Fetcher) -> None:
        async def reader() -> None:
            got.append(await f.get(refs[0]))

        async with trio.open_nursery() as n:
            for _ in range(20):
                n.start_soon(reader)

    with_fetcher(fetcher, scenario)
    assert got == [chunks[refs[0].oid]] * 20
    assert remote.calls == [refs[0].oid]
    assert fetcher.stats.shared_waits == 19


def test_a_stalled_fetch_costs_a_bounded_wait_and_recovers(tmp_path: Path) -> None:
    refs, chunks = make_chunks(2, 1000)
    remote = FakeRemote(chunks)
    fetcher = Fetcher(None, ChunkCache(tmp_path, 10_000), remote, timeout=0.3)

    async def scenario(f: Fetcher) -> None:
        assert await f.get(refs[0]) == chunks[refs[0].oid]
        remote.gate.clear()
        started = trio.current_time()
        with pytest.raises(RemoteUnreachable, match=r"did not arrive within 0\.3 s"):
            await f.get(refs[1])
        assert 0.25 < trio.current_time() - started < 2
        assert await f.get(refs[0]) == chunks[refs[0].oid]  # served while the remote hangs
        remote.gate.set()
        assert await f.get(refs[1]) == chunks[refs[1].oid]

    with_fetcher(fetcher, scenario)
    assert remote.calls == [refs[0].oid, refs[1].oid]  # the late result was kept


def test_a_read_of_several_stalled_chunks_fails_within_one_timeout(tmp_path: Path) -> None:
    """The chunks of one read share its deadline, and the kernel's re-sent read of a
    chunk that just failed on the same open file fails at once."""
    refs, chunks = make_chunks(4, 64 * KiB)
    entry = file_of(refs, chunks)
    remote = FakeRemote(chunks)
    fetcher = Fetcher(None, None, remote, timeout=0.3)

    async def scenario(fetch: Fetcher) -> None:
        f = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", entry), Digests())
        remote.gate.clear()
        started = trio.current_time()
        with pytest.raises(RemoteUnreachable):
            await f.read(fetch, 0, 4 * 64 * KiB)  # every chunk
        assert 0.25 < trio.current_time() - started < 0.6  # once 0.3 s, not four times
        started = trio.current_time()
        with pytest.raises(RemoteUnreachable):
            await f.read(fetch, 0, 4 * KiB)  # the page the reader wants, asked again
        assert trio.current_time() - started < 0.1
        other = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", entry), Digests())
        started = trio.current_time()
        with pytest.raises(RemoteUnreachable):
            await other.read(fetch, 0, 4 * KiB)  # another open tries again
        assert trio.current_time() - started > 0.25
        remote.gate.set()
        third = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", entry), Digests())
        assert await third.read(fetch, 0, 4 * 64 * KiB) == b"".join(chunks[r.oid] for r in refs)

    with_fetcher(fetcher, scenario)


def test_a_chunk_of_the_wrong_size_is_refused(tmp_path: Path) -> None:
    refs, chunks = make_chunks(1, 1000)
    chunks[refs[0].oid] = chunks[refs[0].oid][:-1]
    cache = ChunkCache(tmp_path, 10_000)
    fetcher = Fetcher(None, cache, FakeRemote(chunks), timeout=5)

    async def scenario(f: Fetcher) -> None:
        with pytest.raises(ObjectCorrupt, match=refs[0].oid.hex()):
            await f.get(refs[0])

    with_fetcher(fetcher, scenario)


def test_a_chunk_another_tree_names_with_another_size_is_refused() -> None:
    """A chunk's size is its tree's word: a forged tree may name a chunk another file
    holds under a size it does not have. Loaded for the true file, then read for the
    forged one from memory (or while its load was under way), it was served as it
    is: the forged file's read gave the chunk's bytes where the next chunk's belong,
    or fewer than asked (the kernel takes a short read for the file's end). Every
    reader now gets the chunk only at the size its tree names, else EIO."""
    refs, chunks = make_chunks(2, 1000)
    true = file_of(refs[:1], chunks)
    forged = file_of([ChunkRef(refs[0].oid, 600), ChunkRef(refs[1].oid, 1000)], chunks)
    longer = file_of([ChunkRef(refs[0].oid, 1400)], chunks)  # (600 + 1000 - 200)
    remote = FakeRemote(chunks)

    async def scenario(fetch: Fetcher) -> None:
        node = Node(b"f", NodeKind.FILE, b"f", true)
        assert await OpenFile.of(node, Digests()).read(fetch, 0, 1000) == chunks[refs[0].oid]
        for lie in (forged, longer):
            f = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", lie), Digests())
            with pytest.raises(ObjectCorrupt, match="1000 bytes where the tree says"):
                await f.read(fetch, 0, 1200)
        # a reader sharing the load of a reader whose tree names the true size
        again = Fetcher(None, None, remote, timeout=5)
        got: dict[int, object] = {}  # the size named -> what the reader got

        async def read(ref: ChunkRef) -> None:
            try:
                got[ref.size] = len(await again.get(ref))
            except ObjectCorrupt:
                got[ref.size] = "refused"

        async with trio.open_nursery() as nursery:
            await nursery.start(again.run)
            remote.gate.clear()
            async with trio.open_nursery() as readers:
                readers.start_soon(read, refs[0])
                await trio.testing.wait_all_tasks_blocked()
                readers.start_soon(read, ChunkRef(refs[0].oid, 600))
                await trio.testing.wait_all_tasks_blocked()
                remote.gate.set()
            nursery.cancel_scope.cancel()
        assert got == {1000: 1000, 600: "refused"}

    with_fetcher(Fetcher(None, None, remote, timeout=5), scenario)


def test_read_ahead_follows_sequential_readers_only(tmp_path: Path) -> None:
    refs, chunks = make_chunks(40, 256 * KiB)
    size = sum(r.size for r in refs)
    entry = file_of(refs, chunks)
    data = b"".join(chunks[r.oid] for r in refs)

    def run(offsets: list[int]) -> FakeRemote:
        remote = FakeRemote(chunks)
        fetcher = Fetcher(None, None, remote, timeout=5)
        f = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", entry), Digests())

        async def scenario(fetch: Fetcher) -> None:
            for off in offsets:
                assert await f.read(fetch, off, 128 * KiB) == data[off : off + 128 * KiB]
            while fetch.pending:
                await trio.sleep(0.01)

        with_fetcher(fetcher, scenario)
        return remote

    sequential = run(list(range(0, 8 * MiB, 128 * KiB)))
    # reading 8 MiB in order fetched chunks beyond 8 MiB in advance
    assert len(set(sequential.calls)) > 8 * MiB // (256 * KiB)
    rng = random.Random(1)
    offsets = [rng.randrange(0, size - 128 * KiB) // 4096 * 4096 for _ in range(20)]
    touched = {
        refs[i].oid
        for off in offsets
        for i in (off // (256 * KiB), (off + 128 * KiB - 1) // (256 * KiB))
    }
    assert set(run(offsets).calls) == touched  # random reads: no read-ahead
    f = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", entry), Digests())
    assert f.window() == 0
    f.streak = AHEAD_AFTER
    assert f.window() == AHEAD_AFTER
    f.streak = 1 << 40
    assert f.window() == MAX_AHEAD


class StalledRuns(FakeRemote):
    """A remote whose index places the chunks given in 16 MiB packs, one after the
    other, and whose runs never arrive (until the gate opens): read-ahead's GETs are
    seen as they are started."""

    def __init__(self, chunks: dict[bytes, bytes], refs: Sequence[ChunkRef]) -> None:
        super().__init__(chunks)
        self.runs: list[tuple[str, int]] = []  # (pack, stored bytes) of each run started
        self.at: dict[bytes, tuple[str, PackedObject]] = {}
        for i, r in enumerate(refs):
            offset = (i % 16) * MiB
            obj = PackedObject(r.oid, ObjKind.CHUNK, Compression.NONE, offset, MiB, MiB)
            self.at[r.oid] = (f"pack{i // 16}", obj)

    def where(self, oid: bytes) -> tuple[str, PackedObject] | None:
        return self.at.get(oid)

    def stream_run(
        self, pack_id: str, objs: Sequence[PackedObject]
    ) -> Generator[RunPiece, None, None]:
        self.runs.append((pack_id, objs[-1].offset + objs[-1].stored_len - objs[0].offset))
        self.gate.wait(timeout=30)
        yield from ()


def test_runs_on_their_way_stay_within_their_bound() -> None:
    """Read-ahead starts a run while less than MAX_INFLIGHT_BYTES are on their way, and
    takes it whole (a pack is one GET): at most MAX_INFLIGHT_BYTES + MAX_RUN at once."""
    refs = [ChunkRef(hash_bytes(b"%d" % i), MiB) for i in range(128)]
    remote = StalledRuns({}, refs)
    remote.gate.clear()
    fetcher = Fetcher(None, None, remote, timeout=5)

    async def scenario(f: Fetcher) -> None:
        dealt = f.prefetch(refs, 0, len(refs), extend=True)
        assert dealt % 16 == 0  # whole packs; the next one waits, whole
        assert MAX_INFLIGHT_BYTES < dealt * MiB <= MAX_INFLIGHT_BYTES + MAX_RUN
        remote.gate.set()
        while f.pending:
            await trio.sleep(0.01)
        assert sorted(remote.runs) == [(f"pack{n}", 16 * MiB) for n in range(dealt // 16)]

    with_fetcher(fetcher, scenario)


def test_a_sequential_reader_hands_each_chunk_to_read_ahead_once(tmp_path: Path) -> None:
    refs, chunks = make_chunks(24, 256 * KiB)
    size = sum(r.size for r in refs)
    entry = file_of(refs, chunks)
    data = b"".join(chunks[r.oid] for r in refs)
    handed: list[bytes] = []

    class Counting(Fetcher):
        def prefetch(
            self, refs: Sequence[ChunkRef], begin: int, end: int, *, extend: bool = False
        ) -> int:
            done = super().prefetch(refs, begin, end, extend=extend)
            handed.extend(r.oid for r in refs[begin:done])
            return done

    fetcher = Counting(None, None, FakeRemote(chunks), timeout=5)
    f = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", entry), Digests())

    async def scenario(fetch: Fetcher) -> None:
        for off in range(0, size, 96 * KiB):  # reads that straddle chunk boundaries
            got = await f.view(fetch, off, 96 * KiB)
            assert bytes(got) == data[off : off + 96 * KiB]
        assert await f.read(fetch, 10, 20) == data[10:30]  # a jump back: a new streak

    with_fetcher(fetcher, scenario)
    # every chunk after the first, once, in order (the jump back read one chunk only)
    assert handed == [r.oid for r in refs[1:]]


class HeldBack(FakeRemote):
    """A remote that holds one chunk back until its gate opens."""

    def __init__(self, chunks: dict[bytes, bytes], held: bytes) -> None:
        super().__init__(chunks)
        self.held = held
        self.held_gate = threading.Event()

    def fetch(self, oid: bytes) -> bytes:
        if oid == self.held:
            self.held_gate.wait(timeout=30)
        return super().fetch(oid)


def test_a_file_read_in_order_fails_its_last_read_if_its_digest_is_false() -> None:
    """A version's file of several chunks whose digest is not its bytes' (each chunk is
    its id: a forged or damaged record) was served whole. Read in order, its chunks are
    taken into the digest as they are served: the read that reaches the last chunk
    fails, and so does every read of that file after, in any open; parts of it read
    out of order cannot be checked and read as before; the true file reads whole."""
    refs, chunks = make_chunks(6, 64 * KiB)
    data = b"".join(chunks[r.oid] for r in refs)
    lie = file_of(refs, chunks, digest=hash_bytes(b"something else"))
    last = len(data) - 64 * KiB

    async def scenario(fetch: Fetcher) -> None:
        digests = Digests()
        f = OpenFile.of(Node(b"f", NodeKind.FILE, b"d/f", lie), digests, lambda: "v2:d/f")
        for off in range(0, last, 32 * KiB):  # every chunk but the last, in order
            assert await f.read(fetch, off, 32 * KiB) == data[off : off + 32 * KiB]
        with pytest.raises(FormatError, match=r"v2:d/f: its bytes hash to .*, not to "):
            await f.read(fetch, last, 32 * KiB)
        for read_from in (f, OpenFile.of(Node(b"f", NodeKind.FILE, b"f", lie), digests)):
            assert await fuse_errno(read_from.read(fetch, 0, 4 * KiB)) == errno.EIO
        # out of order, in a fresh daemon: read as before
        g = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", lie), Digests())
        assert await g.read(fetch, last, 64 * KiB) == data[last:]
        assert await g.read(fetch, 64 * KiB, 64 * KiB) == data[64 * KiB : 128 * KiB]
        true = file_of(refs, chunks)
        h = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", true), digests)
        assert await h.read(fetch, 0, len(data)) == data

    with_fetcher(Fetcher(None, None, FakeRemote(chunks), timeout=5), scenario)


def test_a_file_read_in_order_over_two_opens_is_checked() -> None:
    """The kernel keeps a file's pages across opens: a second reader of the whole file
    asks only for the pages the first did not read. The digest goes on from where
    the first open left it, so the whole read still fails at the end."""
    refs, chunks = make_chunks(6, 64 * KiB)
    data = b"".join(chunks[r.oid] for r in refs)
    lie = file_of(refs, chunks, digest=hash_bytes(b"something else"))

    async def scenario(fetch: Fetcher) -> None:
        digests = Digests()
        node = Node(b"f", NodeKind.FILE, b"f", lie)
        first = OpenFile.of(node, digests)
        assert await first.read(fetch, 0, 128 * KiB) == data[: 128 * KiB]
        first.close()
        second = OpenFile.of(node, digests)
        assert await second.read(fetch, 128 * KiB, 192 * KiB) == data[128 * KiB : 320 * KiB]
        with pytest.raises(FormatError):
            await second.read(fetch, 320 * KiB, 64 * KiB)

    with_fetcher(Fetcher(None, None, FakeRemote(chunks), timeout=5), scenario)


def counting_hashes(
    digests: Digests, hashed: list[int], monkeypatch: pytest.MonkeyPatch
) -> Digests:
    """``digests``, each chunk it takes into a digest counted into ``hashed``."""
    submit = digests.submit

    def counted(whole: Any, b: bytes | memoryview) -> Any:
        hashed.append(len(b))
        return submit(whole, b)

    monkeypatch.setattr(digests, "submit", counted)
    return digests


async def read_whole(fetch: Fetcher, entry: Entry, digests: Digests) -> bytes:
    f = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", entry), digests)
    try:
        return await f.read(fetch, 0, entry.size)
    finally:
        f.close()


def test_a_file_found_true_is_not_hashed_again_after_many_others(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The daemon keeps a state for ``KEEP`` closed files (here 2). A file read whole
    and found true, then more files than that read whole: its state was let go, and
    a read of it again (pages the kernel no longer had) hashed every chunk again. A
    true file now leaves a mark: read again, nothing is hashed, and it reads whole."""
    monkeypatch.setenv(KEEP_ENV, "2")
    refs, chunks = make_chunks(4, 64 * KiB)
    data = b"".join(chunks[r.oid] for r in refs)
    true = file_of(refs, chunks)
    others = [file_of(refs[i:] + refs[:i], chunks) for i in (1, 2, 3)]
    hashed: list[int] = []

    async def scenario(fetch: Fetcher) -> None:
        digests = counting_hashes(Digests(), hashed, monkeypatch)
        for entry in (true, *others):
            f = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", entry), digests)
            assert len(await f.read(fetch, 0, len(data))) == len(data)
            f.close()
        assert sum(hashed) == 4 * len(data)
        again = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", true), digests)
        assert await again.read(fetch, 0, len(data)) == data
        assert sum(hashed) == 4 * len(data)  # (was 5 times)

    with_fetcher(Fetcher(None, None, FakeRemote(chunks), timeout=5), scenario)


def test_a_file_found_true_is_not_hashed_again_by_the_next_daemon(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A file read whole was hashed again by the next daemon, though the last one had
    found it true: a second read of a GiB from the chunk cache took a third more CPU.
    The marks of true files are kept in the cache directory: the next daemon takes
    none of its chunks into a digest, and the same chunks under another digest are
    still found false there."""
    refs, chunks = make_chunks(4, 64 * KiB)
    true = file_of(refs, chunks)
    lie = file_of(refs, chunks, digest=hash_bytes(b"something else"))
    marks = tmp_path / "digests"
    hashed: list[int] = []

    async def scenario(fetch: Fetcher) -> None:
        first = counting_hashes(Digests(marks), hashed, monkeypatch)
        assert await read_whole(fetch, true, first) == b"".join(chunks[r.oid] for r in refs)
        assert sum(hashed) == true.size
        first.close()  # (the daemon stops: what the hashing thread had queued is done)
        second = counting_hashes(Digests(marks), hashed, monkeypatch)
        assert len(await read_whole(fetch, true, second)) == true.size
        assert sum(hashed) == true.size  # (was twice)
        with pytest.raises(FormatError, match="its bytes hash to"):
            await read_whole(fetch, lie, second)
        assert sum(hashed) == 2 * true.size
        second.close()

    with_fetcher(Fetcher(None, None, FakeRemote(chunks), timeout=5), scenario)
    assert marks.stat().st_size == 64 and marks.stat().st_mode & 0o777 == 0o600


def test_the_file_of_marks_holds_at_most_twice_the_marks_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Marks are appended as files are found true, and the daemon keeps the last
    ``TRUE_KEEP`` (here 2): past twice that, the file is written anew with those, so it
    never grows without bound, and the next start reads the last ones."""
    monkeypatch.setattr(digests_module, "TRUE_KEEP", 2)
    path = tmp_path / "digests"
    marks = MarkFile(path)
    assert marks.load() == []
    kept: dict[bytes, None] = {}
    for i in range(7):
        kept[bytes([i]) * 32] = None
        kept = dict(list(kept.items())[-2:])
        marks.add(bytes([i]) * 32, kept)
        assert path.stat().st_size <= 32 + 4 * 32
    marks.close()
    assert MarkFile(path).load() == [bytes([5]) * 32, bytes([6]) * 32]
    assert path.stat().st_size == 32 + 4 * 32  # (read as it is: not written anew)


@pytest.mark.parametrize("damage", ["torn", "header", "link", "directory"])
def test_a_damaged_file_of_marks_costs_at_most_a_hash(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture, damage: str
) -> None:
    """The file of marks is the daemon's and nobody else's, but a crash may tear it and
    anything may stand at its name: a torn tail is cut off (the marks before it kept),
    another header drops every mark, and a link or a directory there is neither read
    nor written through. Each costs at most the file hashed again; it reads whole, and
    the file is written anew where it can be."""
    refs, chunks = make_chunks(3, 64 * KiB)
    true = file_of(refs, chunks)
    marks = tmp_path / "digests"
    outside = tmp_path / "outside"
    outside.write_bytes(b"not the daemon's")
    hashed: list[int] = []

    async def scenario(fetch: Fetcher) -> None:
        first = Digests(marks)
        assert len(await read_whole(fetch, true, first)) == true.size
        first.close()
        assert marks.stat().st_size == 64
        if damage == "torn":
            with marks.open("ab") as f:
                f.write(b"\x01\x02\x03")
        elif damage == "header":
            marks.write_bytes(b"X" + marks.read_bytes()[1:])
        else:
            marks.unlink()
            marks.mkdir() if damage == "directory" else marks.symlink_to(outside)
        again = counting_hashes(Digests(marks), hashed, monkeypatch)
        assert len(await read_whole(fetch, true, again)) == true.size
        assert sum(hashed) == (0 if damage == "torn" else true.size)
        again.close()

    with_fetcher(Fetcher(None, None, FakeRemote(chunks), timeout=5), scenario)
    assert outside.read_bytes() == b"not the daemon's"
    if damage == "directory":
        assert marks.is_dir() and "digest marks not kept" in caplog.text
    else:
        assert not marks.is_symlink() and marks.stat().st_size == 64


@pytest.mark.parametrize("true", [False, True])
def test_a_chunk_the_kernel_keeps_from_an_earlier_read_is_read_again(true: bool) -> None:
    """A reader of one part of a file (its pages kept by the kernel), then a reader of
    the whole: the daemon is asked for every chunk but that part. Every chunk before
    the last was served, so the one served out of order is read again to take the
    digest on: the last read fails if the bytes are false, and is served if not."""
    refs, chunks = make_chunks(6, 64 * KiB)
    data = b"".join(chunks[r.oid] for r in refs)
    entry = file_of(refs, chunks, digest=b"" if true else hash_bytes(b"something else"))

    async def scenario(fetch: Fetcher) -> None:
        digests = Digests()
        node = Node(b"f", NodeKind.FILE, b"f", entry)
        first = OpenFile.of(node, digests)
        assert await first.read(fetch, 3 * 64 * KiB, 64 * KiB) == data[3 * 64 * KiB : 4 * 64 * KiB]
        first.close()
        second = OpenFile.of(node, digests)
        for i in (0, 1, 2, 4):
            assert (
                await second.read(fetch, i * 64 * KiB, 64 * KiB) == data[i * 64 * KiB :][: 64 * KiB]
            )
        if true:
            assert await second.read(fetch, 5 * 64 * KiB, 64 * KiB) == data[5 * 64 * KiB :]
        else:
            with pytest.raises(FormatError):
                await second.read(fetch, 5 * 64 * KiB, 64 * KiB)

    with_fetcher(Fetcher(None, None, FakeRemote(chunks), timeout=5), scenario)


@pytest.mark.parametrize("same_open", [False, True])
@pytest.mark.parametrize("true", [False, True])
def test_a_file_whose_end_was_read_first_is_checked_when_the_rest_is_read(
    true: bool, same_open: bool
) -> None:
    """A reader of a file's end (a footer), then of the whole: the kernel keeps the
    end's pages and asks the daemon only for the rest, so no read of the last chunk
    comes after the others. The read that brings the digest to the last chunk reads
    it again and settles the digest: it fails if the bytes are false."""
    refs, chunks = make_chunks(6, 64 * KiB)
    data = b"".join(chunks[r.oid] for r in refs)
    entry = file_of(refs, chunks, digest=b"" if true else hash_bytes(b"something else"))

    async def scenario(fetch: Fetcher) -> None:
        digests = Digests()
        node = Node(b"f", NodeKind.FILE, b"f", entry)
        footer = OpenFile.of(node, digests)
        assert await footer.read(fetch, len(data) - 100, 100) == data[-100:]
        if not same_open:
            footer.close()
        whole = footer if same_open else OpenFile.of(node, digests)
        for i in range(4):
            assert (
                await whole.read(fetch, i * 64 * KiB, 64 * KiB) == data[i * 64 * KiB :][: 64 * KiB]
            )
        if true:
            assert (
                await whole.read(fetch, 4 * 64 * KiB, 64 * KiB) == data[4 * 64 * KiB :][: 64 * KiB]
            )
        else:
            with pytest.raises(FormatError):
                await whole.read(fetch, 4 * 64 * KiB, 64 * KiB)

    with_fetcher(Fetcher(None, None, FakeRemote(chunks), timeout=5), scenario)


@pytest.mark.parametrize("true", [False, True])
def test_the_last_read_waits_for_the_chunks_before_it_still_on_their_way(true: bool) -> None:
    """The kernel sends a sequential reader's reads several at once: the read of the
    last chunk may have it before the read of the chunk before it. It waits for that
    read, then for the digest: it is not served unchecked."""
    refs, chunks = make_chunks(6, 64 * KiB)
    data = b"".join(chunks[r.oid] for r in refs)
    entry = file_of(refs, chunks, digest=b"" if true else hash_bytes(b"something else"))
    remote = HeldBack(chunks, refs[4].oid)
    got: dict[int, bytes | int] = {}

    async def read(f: OpenFile, fetch: Fetcher, i: int) -> None:
        try:
            got[i] = await f.read(fetch, i * 64 * KiB, 64 * KiB)
        except FormatError:
            got[i] = errno.EIO
        except pyfuse3.FUSEError as exc:
            got[i] = exc.errno

    async def scenario(fetch: Fetcher) -> None:
        f = OpenFile.of(Node(b"f", NodeKind.FILE, b"f", entry), Digests())
        assert await f.read(fetch, 0, 4 * 64 * KiB) == data[: 4 * 64 * KiB]
        async with trio.open_nursery() as nursery:
            nursery.start_soon(read, f, fetch, 4)
            await trio.testing.wait_all_tasks_blocked()
            nursery.start_soon(read, f, fetch, 5)
            assert f.digest is not None
            while 5 not in f.digest.held:  # the last chunk is here...
                await trio.sleep(0.01)
            await trio.testing.wait_all_tasks_blocked()
            assert got == {}  # ...but not served yet
            remote.held_gate.set()
        if true:
            assert got == {4: data[4 * 64 * KiB : 5 * 64 * KiB], 5: data[5 * 64 * KiB :]}
        else:
            assert got == {4: data[4 * 64 * KiB : 5 * 64 * KiB], 5: errno.EIO}

    with_fetcher(Fetcher(None, None, remote, timeout=5), scenario)


# ---------------------------------------------------------------------------- handlers


def build_fs(root: Path) -> tuple[VersionsFs, bytes]:
    repo = Repository.init(root)
    big = random.Random(5).randbytes(3 * MiB + 17)
    write(root, "data/big.bin", big)
    write(root, "data/small.txt", b"one\n")
    os.symlink("small.txt", root / "data" / "link")
    commit(repo, "one", tag="release/1.0")
    write(root, "data/small.txt", b"two\n")
    commit(repo, "two")
    source = RepositorySource(root, None, 2)
    fetcher = Fetcher(source.local, None, None, timeout=5)
    layout = Layout(Records(source.history, trio.CapacityLimiter(2)), source.catalog())
    return VersionsFs(layout, fetcher), big


def run_fs(fs: VersionsFs, scenario: Callable[[VersionsFs], Awaitable[None]]) -> None:
    with_fetcher(fs.fetcher, lambda _: scenario(fs))


async def walk(fs: VersionsFs, *names: bytes) -> pyfuse3.EntryAttributes:
    ino = inodes.ROOT
    attrs = await fs.getattr(ino, CTX)
    for name in names:
        attrs = await fs.lookup(ino, name, CTX)
        ino = attrs.st_ino
    return attrs


async def fuse_errno(call: Awaitable[object]) -> int:
    try:
        await call
    except pyfuse3.FUSEError as exc:
        return exc.errno
    return 0


def test_handlers_read_what_was_committed(tmp_path: Path) -> None:
    fs, big = build_fs(tmp_path / "repo")

    async def scenario(fs: VersionsFs) -> None:
        attrs = await walk(fs, b"data", b"big.bin")
        assert attrs.st_size == len(big)
        fi = await fs.open(attrs.st_ino, os.O_RDONLY, CTX)
        assert fi.keep_cache
        rng = random.Random(2)
        for _ in range(200):
            off = rng.randrange(len(big) + 100)
            n = rng.randrange(1, 300 * KiB)
            assert await fs.read(fi.fh, off, n) == big[off : off + n]
        await fs.release(fi.fh)
        small = await walk(fs, b".versions", b"v1", b"data", b"small.txt")
        fi = await fs.open(small.st_ino, os.O_RDONLY, CTX)
        assert await fs.read(fi.fh, 0, 100) == b"one\n"
        link = await walk(fs, b"data", b"link")
        assert await fs.readlink(link.st_ino, CTX) == b"small.txt"
        latest = await walk(fs, b".versions", b"latest")
        assert await fs.readlink(latest.st_ino, CTX) == b"v2"
        tagged = await walk(fs, b".versions", b"tags", b"release", b"1.0", b"data", b"small.txt")
        assert tagged.st_size == 4
        assert await fuse_errno(walk(fs, b".versions", b"v3")) == errno.ENOENT
        assert await fuse_errno(walk(fs, b"data", b"small.txt", b"x")) == errno.ENOTDIR
        root = fs.table.get(inodes.ROOT)
        assert root is not None
        assert [n for n, _ in await fs.layout.listing(root)] == [b"data"]
        versions = fs.table.get(inodes.VERSIONS)
        assert versions is not None
        names = [n for n, _ in await fs.layout.listing(versions)]
        assert names == [b"v1", b"v2", b"latest", b"tags", b"branches", b"ids", b"meta"]
        st = await fs.statfs(CTX)
        assert st.f_files == 3 and st.f_namemax == 255

    run_fs(fs, scenario)


def test_handlers_refuse_writes_with_erofs(tmp_path: Path) -> None:
    fs, _ = build_fs(tmp_path / "repo")

    async def scenario(fs: VersionsFs) -> None:
        d = (await walk(fs, b"data")).st_ino
        f = (await walk(fs, b"data", b"small.txt")).st_ino
        fields = pyfuse3.SetattrFields()
        calls = [
            fs.open(f, os.O_WRONLY, CTX),
            fs.open(f, os.O_RDWR, CTX),
            fs.create(d, b"new", 0o644, os.O_WRONLY, CTX),
            fs.mkdir(d, b"new", 0o755, CTX),
            fs.mknod(d, b"new", 0o644, 0, CTX),
            fs.unlink(d, b"small.txt", CTX),
            fs.rmdir(inodes.ROOT, b"data", CTX),
            fs.symlink(d, b"l", b"x", CTX),
            fs.rename(d, b"small.txt", d, b"x", 0, CTX),
            fs.link(f, d, b"x", CTX),
            fs.setattr(f, pyfuse3.EntryAttributes(), fields, None, CTX),
            fs.setxattr(f, b"user.x", b"1", CTX),
            fs.removexattr(f, b"user.x", CTX),
            fs.write(1, 0, b"x"),
        ]
        for call in calls:
            assert await fuse_errno(call) == errno.EROFS

    run_fs(fs, scenario)


def test_a_versions_meta_file_lists_its_files_up_to_a_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``.versions/meta/vN.yaml`` was made whole, every file listed, and kept even past
    ``KEEP_BYTES``: a stat of the file of a version of millions of files grew the
    daemon by hundreds of MB. Its files are listed up to ``FILES_BYTES`` of text, the
    first in path order, and it says how many it leaves out; ``dvfs show`` lists all."""
    repo = Repository.init(tmp_path / "repo")
    for i in range(40):
        write(repo.root, f"data/f{i:03d}.txt", b"x")
    oid = commit(repo, "many")
    monkeypatch.setattr(meta_module, "FILES_BYTES", 10 * (len("data/f000.txt") + 100))

    async def made() -> tuple[Entry, bytes]:
        files = meta_module.MetaFiles(repo.history, trio.CapacityLimiter(1))
        e = await files.entry(oid, b"v1.yaml", 0)
        pieces = [await files.chunk(c.oid) for c in e.chunks]
        return e, b"".join(p or b"" for p in pieces)

    e, data = trio.run(made)
    assert e.size == len(data) and e.digest == hash_bytes(data)
    shown = yaml.safe_load(data)
    assert list(shown["files"]) == [f"data/f{i:03d}.txt" for i in range(10)]
    assert shown["files_not_listed"] == 30 and shown["totals"]["files"] == 40
    assert len(show_version(repo.history, oid)["files"]) == 40
    fsck_clean(repo.root)
