"""A URL mount on S3 (SeaweedFS) coalesces a sequential reader's GETs, and only its.

A file of several packs is pushed to a real SeaweedFS bucket and the bucket's URL is
mounted with ``--debug``, which logs one line per ranged GET of chunk data
(``ranged GET of pack P: N chunks, B bytes``); the unmount line gives the daemon's
own count of those requests. The tests count GETs, never time anything:

- reading the file from start to end costs at most two GETs per pack (one, or for
  the pack the read starts in its first chunk alone, then the rest), each chunk
  fetched once;
- random 4 KiB reads fetch one chunk each, never a run;
- a byte flipped on the server inside a coalesced range fails the read of that
  chunk (EIO) and nothing of it is cached, while its good neighbours are;
- the chunks of a run are cached back to back, a piece of the answer per write, and
  read back from there.
"""

from __future__ import annotations

import collections
import contextlib
import errno
import os
import random
import re
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.chunk_cache import ENTRY, FOOTER, chunks_on_disk, sealed
from tests.support.mount import Mount, commit, mounted, push_to, write
from tests.support.s3server import S3Server, use_aws_keys
from tests.support.waiting import wait_for
from vfs import ChunkRef, RemoteRepo, RemoteSpec, connect, hash_bytes
from vfs.remote.reader import Located
from vfs.repo.repository import Repository

MiB = 1024 * 1024
PAGE = 4096
DATA = random.Random(21).randbytes(36 * MiB)  # three packs of at most 16 MiB
GET = re.compile(r"ranged GET of pack ([0-9a-f]{64}): (\d+) chunks, (\d+) bytes")
TOTAL = re.compile(r"fetched from the remote in (\d+) requests")
FETCHED = re.compile(r"fetched chunk ([0-9a-f]{64}): \d+ bytes")


@dataclass
class Bucket:
    """The pushed file: where it is, its chunks and where the remote holds each."""

    server: S3Server
    bucket: str
    url: str
    chunks: list[ChunkRef]
    index: dict[bytes, Located]

    def mount(self, tmp_path: Path) -> contextlib.AbstractContextManager[Mount]:
        env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
        return mounted(
            self.url, tmp_path / "mnt", tmp_path / "home", "--endpoint-url", self.server.endpoint,
            "--debug", "--timeout", "20", env=env,
        )  # fmt: skip

    def packs(self) -> dict[str, list[ChunkRef]]:
        """Pack id -> the file's chunks in it, in file order."""
        out: dict[str, list[ChunkRef]] = {}
        for c in self.chunks:
            out.setdefault(self.index[c.oid][0], []).append(c)
        return out

    def starts(self) -> list[int]:
        """Offset in the file of each chunk."""
        out = [0]
        for c in self.chunks[:-1]:
            out.append(out[-1] + c.size)
        return out


def push(server: S3Server, root: Path) -> Bucket:
    """Commit ``DATA`` as ``data/big.bin`` in a new repository at ``root`` and push it to
    a new bucket of ``server`` (its admin keys in the environment)."""
    repo = Repository.init(root)
    write(root, "data/big.bin", DATA)
    commit(repo, "one")
    bucket = server.make_bucket()
    url = f"s3://{bucket}/ds"
    push_to(repo, url, "s3", server.endpoint)
    hist = repo.history
    head = hist.head_id()
    assert head is not None
    entry = hist.lookup(hist.version(head).tree, b"data/big.bin")
    assert entry is not None
    index = RemoteRepo(connect(RemoteSpec("t", url, server.endpoint), 1), None).index()
    got = Bucket(server, bucket, url, list(entry.chunks), index)
    assert len(got.packs()) >= 3
    assert len(set(entry.chunks)) == len(entry.chunks)  # random data: no chunk repeats
    return got


@pytest.fixture(scope="module")
def pushed_once(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Bucket:
    """The pushed file, for the tests that only read the bucket (each mounts it with a
    cache of its own): chunking and pushing 36 MiB takes seconds."""
    with pytest.MonkeyPatch.context() as mp:
        use_aws_keys(mp, s3_server.access_key, s3_server.secret_key)
        return push(s3_server, tmp_path_factory.mktemp("coalesce") / "repo")


@pytest.fixture(name="pushed")
def pushed_fixture(s3_env: S3Server, pushed_once: Bucket) -> Bucket:
    return pushed_once


@pytest.fixture(name="pushed_alone")
def pushed_alone_fixture(s3_env: S3Server, tmp_path: Path) -> Bucket:
    """The pushed file in a bucket of the test's own: for a test that changes the bucket."""
    return push(s3_env, tmp_path / "repo")


def gets(m: Mount) -> list[tuple[str, int]]:
    """(pack id, chunks) of every ranged GET of chunk data the daemon logged so far."""
    return [(p, int(n)) for p, n, _ in GET.findall(m.log_text())]


def cached(m: Mount) -> set[str]:
    return set(chunks_on_disk(m.cache / "chunks"))


def test_a_sequential_read_costs_at_most_two_gets_per_pack(pushed: Bucket, tmp_path: Path) -> None:
    with pushed.mount(tmp_path) as m:
        assert (m.path / "data" / "big.bin").read_bytes() == DATA
        done = gets(m)
        fetched = FETCHED.findall(m.log_text())
    # served first and cached behind the reader: all written once the daemon stopped
    assert cached(m) == {c.oid.hex() for c in pushed.chunks}
    per_pack = collections.Counter(p for p, _ in done)
    assert set(per_pack) == set(pushed.packs())
    assert max(per_pack.values()) <= 2, per_pack
    assert sum(per_pack.values()) < len(pushed.chunks) // 4  # not one GET per chunk
    assert sorted(fetched) == sorted(c.oid.hex() for c in pushed.chunks)  # each chunk once
    assert sum(n for _, n in done) == len(pushed.chunks)
    total = TOTAL.search(m.log_text())
    assert total is not None and int(total[1]) == len(done)


def test_random_reads_fetch_one_chunk_each(pushed: Bucket, tmp_path: Path) -> None:
    rng = random.Random(4)
    starts = pushed.starts()
    reads: list[tuple[int, ChunkRef]] = []
    for _ in range(100):  # a page wholly inside a chunk picked at random
        i = rng.randrange(len(pushed.chunks))
        c = pushed.chunks[i]
        first = -(-starts[i] // PAGE) * PAGE
        last = (starts[i] + c.size) // PAGE * PAGE - PAGE
        reads.append((rng.randrange(first, last + 1, PAGE), c))
    with pushed.mount(tmp_path) as m:
        fd = os.open(m.path / "data" / "big.bin", os.O_RDONLY)
        try:
            os.posix_fadvise(fd, 0, 0, os.POSIX_FADV_RANDOM)  # no kernel read-ahead
            for off, _ in reads:
                assert os.pread(fd, PAGE, off) == DATA[off : off + PAGE]
        finally:
            os.close(fd)
        done = gets(m)
        fetched = FETCHED.findall(m.log_text())
    touched = {c.oid.hex() for _, c in reads}
    assert all(n == 1 for _, n in done)  # no run: one chunk per GET
    assert len(done) == len(touched) <= len(reads)
    assert sorted(fetched) == sorted(touched)


def test_a_corrupt_byte_in_a_coalesced_range_is_caught(
    pushed_alone: Bucket, tmp_path: Path
) -> None:
    pushed = pushed_alone
    packs = pushed.packs()
    pack_id, inside = list(packs.items())[1]  # the second pack: read whole, in one GET
    assert len(inside) >= 3
    bad = inside[len(inside) // 2]
    bad_start = pushed.starts()[pushed.chunks.index(bad)]
    _, obj = pushed.index[bad.oid]
    client = pushed.server.client()
    key = f"ds/packs/{pack_id}"
    original = client.get_object(Bucket=pushed.bucket, Key=key)["Body"].read()
    flipped = bytearray(original)
    flipped[obj.offset + obj.stored_len // 2] ^= 0xFF
    client.put_object(Bucket=pushed.bucket, Key=key, Body=bytes(flipped))
    try:
        with pushed.mount(tmp_path) as m:
            got = bytearray()
            big = m.path / "data" / "big.bin"
            with open(big, "rb", buffering=0) as f, pytest.raises(OSError) as raised:
                while block := f.read(MiB):
                    got += block
            assert raised.value.errno == errno.EIO
            assert bytes(got) == DATA[: len(got)] and len(got) <= bad_start
            good = {c.oid.hex() for c in inside} - {bad.oid.hex()}
            wait_for(lambda: good <= cached(m), m.proc, "the good chunks were cached")
            assert bad.oid.hex() not in cached(m)
            # the damaged chunk came with its pack, in at most two coalesced GETs; a read
            # that needs it later asks for it again, alone (a failure is not data)
            runs = [n for p, n in gets(m) if p == pack_id]
            coalesced = [n for n in runs if n > 1]
            assert sum(coalesced) == len(inside) and len(coalesced) <= 2
            assert runs[len(coalesced) :] == [1] * (len(runs) - len(coalesced))
            log = m.log_text()
            times = collections.Counter(FETCHED.findall(log))
            assert all(times[c.oid.hex()] == 1 for c in inside if c != bad)
            assert f"chunk {bad.oid.hex()} could not be read" in log
            assert "corrupt" in log
            assert f"pack {pack_id[:12]} on {pushed.url} at " in log  # (and the endpoint)
            assert "holds it damaged; a push cannot mend it in place" in log
            assert "dvfs fsck" not in log
            client.put_object(Bucket=pushed.bucket, Key=key, Body=original)
            assert (m.path / "data" / "big.bin").read_bytes() == DATA  # a new open tries again
            wait_for(lambda: bad.oid.hex() in cached(m), m.proc, "the chunk was cached")
    finally:
        client.put_object(Bucket=pushed.bucket, Key=key, Body=original)


def test_a_daemon_killed_while_caching_leaves_a_cache_that_only_lacks_chunks(
    pushed: Bucket, tmp_path: Path
) -> None:
    """Chunks are served before they are cached: a kill -9 right after a read may lose
    the writes still pending, never leave a chunk that would be served damaged. A
    chunk cut short on disk (what a crash of the machine can leave) is fetched again."""
    every = {c.oid.hex() for c in pushed.chunks}
    with pushed.mount(tmp_path) as m:
        with open(m.path / "data" / "big.bin", "rb") as f:  # half: read-ahead is under way
            assert f.read(len(DATA) // 2) == DATA[: len(DATA) // 2]
        m.proc.kill()  # whatever it is fetching and writing
        m.proc.wait(timeout=15)
    kept = cached(m)
    assert kept <= every
    chunks = m.cache / "chunks"
    assert all(hash_bytes(d).hex() == i for i, d in chunks_on_disk(chunks).items())
    segments = sealed(chunks)
    lost: set[str] = set()  # a damaged chunk's segment goes whole
    if segments:
        victim, held = next(iter(segments.items()))
        cut, lost = next(iter(held)), set(held)
        raw = victim.read_bytes()
        with open(victim, "r+b") as f:  # its bytes cut short, as a crash may leave them
            f.seek(raw.index(held[cut]) + len(held[cut]) // 2)
            f.write(bytes(len(held[cut]) - len(held[cut]) // 2))
    with pushed.mount(tmp_path) as m:
        assert set(chunks.iterdir()) == set(segments)  # segments left open deleted
        assert (m.path / "data" / "big.bin").read_bytes() == DATA
        fetched = FETCHED.findall(m.log_text())
        if lost:
            assert f"cached chunk {cut} failed verification" in m.log_text()
    assert len(fetched) == len(set(fetched))  # each at most once
    assert every - kept <= set(fetched) <= every - kept | lost
    assert not lost or cut in fetched
    assert cached(m) == every
    assert all(hash_bytes(d).hex() == i for i, d in chunks_on_disk(chunks).items())
    assert set(chunks.iterdir()) == set(sealed(chunks))


def test_the_chunks_of_a_run_are_cached_back_to_back_and_served_from_there(
    pushed: Bucket, tmp_path: Path
) -> None:
    """A run's answer is received in pieces of several chunks, and the cache writes each
    piece whole, in one write: a chunk lies right after the one before it, not on the
    next page (one write per piece, not per chunk). A new daemon reads them back
    from there, verified, and fetches nothing."""
    with pushed.mount(tmp_path) as m:
        assert (m.path / "data" / "big.bin").read_bytes() == DATA
    where: dict[bytes, tuple[Path, int, int]] = {}
    for seg in sealed(m.cache / "chunks"):
        raw = seg.read_bytes()
        _, at, count, _, _ = FOOTER.unpack(raw[-FOOTER.size :])
        for oid, off, n in ENTRY.iter_unpack(raw[at : at + count * ENTRY.size]):
            where[oid] = (seg, off, n)
    assert set(where) == {c.oid for c in pushed.chunks}
    after = sum(
        1
        for a, b in zip(pushed.chunks, pushed.chunks[1:], strict=False)
        if where[b.oid][0] == where[a.oid][0] and where[b.oid][1] == where[a.oid][1] + a.size
    )
    assert after >= len(pushed.chunks) // 2, (after, len(pushed.chunks))
    with pushed.mount(tmp_path) as m:
        assert (m.path / "data" / "big.bin").read_bytes() == DATA
        assert gets(m) == []
        assert FETCHED.findall(m.log_text()) == []
