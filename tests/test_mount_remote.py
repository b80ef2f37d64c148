"""Mounting a remote alone: lazy reads, the cache bound, refresh, S3, and faults.

A repository is pushed to a directory remote (``file://``) and the remote URL is
mounted. The daemon runs with ``--debug``, which logs one line per ranged GET
(``fetched chunk <id>``), so each test can count exactly what went over the wire
and check it against the chunks the read touched. Faults are made on the remote's
files: the directory taken away (unreachable), a flipped byte in a chunk
(corruption); and an S3 server behind a relay that stops passing bytes on (a remote
that never answers).
"""

from __future__ import annotations

import errno
import hashlib
import os
import random
import re
import shutil
import signal
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon.data.digests import DROP_FAILS_ENV
from daemon.data.digests import KEEP_ENV as DIGEST_KEEP_ENV
from tests.support.chunk_cache import chunks_on_disk, disk_bytes, sealed
from tests.support.cli import assert_error, assert_ok, fsck_clean
from tests.support.forge import Forge, content_entry, file_entry
from tests.support.mount import Mount, commit, dvfs, in_mount_table, mounted, push_to, write
from tests.support.relay import Proxy
from tests.support.s3server import S3Server
from tests.support.waiting import wait_for
from vfs import ChunkRef, Entry, Kind, RemoteRepo, RemoteSpec, connect, hash_bytes
from vfs.repo.repository import Repository

MiB = 1024 * 1024
BIG = random.Random(11).randbytes(8 * MiB)
OTHER = random.Random(12).randbytes(3 * MiB)
MARGIN = 0.75  # seconds a failed read may take beyond --timeout
FETCHED = re.compile(r"fetched chunk ([0-9a-f]{64}): (\d+) bytes")


@dataclass
class Pushed:
    """A repository, the remote it was pushed to, and the chunks of its big files."""

    repo: Path
    remote: Path
    big: list[ChunkRef]
    other: list[ChunkRef]

    @property
    def url(self) -> str:
        return self.remote.as_uri()

    def pack_of(self, oid: bytes) -> tuple[Path, int, int]:
        """(pack file, offset, stored length) of an object on the remote."""
        index = RemoteRepo(connect(RemoteSpec("t", self.url), 1), None).index()
        pack_id, obj = index[oid]
        return self.remote / "packs" / pack_id, obj.offset, obj.stored_len


def chunks_of(root: Path, path: bytes) -> list[ChunkRef]:
    """The chunks of a file at the head of the repository at ``root``."""
    hist = Repository(root).history
    head = hist.head_id()
    assert head is not None
    entry = hist.lookup(hist.version(head).tree, path)
    assert entry is not None
    return list(entry.chunks)


@pytest.fixture(name="pushed")
def pushed_fixture(tmp_path: Path) -> Pushed:
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/big.bin", BIG)
    write(root, "data/other.bin", OTHER)
    write(root, "data/small.txt", b"small\n")
    commit(repo, "one", tag="first")
    remote = tmp_path / "remote"
    push_to(repo, remote.as_uri())
    return Pushed(
        root, remote, chunks_of(root, b"data/big.bin"), chunks_of(root, b"data/other.bin")
    )


@pytest.fixture(name="url_mount")
def url_mount_fixture(pushed: Pushed, tmp_path: Path) -> Iterator[Mount]:
    with mounted(pushed.url, tmp_path / "mnt", tmp_path / "home", "--debug", "--timeout", "2") as m:
        yield m


def fetches(m: Mount) -> list[tuple[str, int]]:
    """(chunk id, bytes) of every ranged GET the daemon logged so far."""
    return [(i, int(n)) for i, n in FETCHED.findall(m.log_text())]


def cached(m: Mount) -> dict[str, int]:
    """Chunk id -> size of every chunk in the mount's cache."""
    return {oid: len(data) for oid, data in chunks_on_disk(m.cache / "chunks").items()}


def eventually(check: Callable[[], bool], timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while not check():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


# ---------------------------------------------------------------------------- lazy reads


def test_a_read_fetches_only_the_chunks_it_touches(pushed: Pushed, url_mount: Mount) -> None:
    data = url_mount.path / "data"
    assert sorted(os.listdir(data)) == ["big.bin", "other.bin", "small.txt"]
    assert os.stat(data / "big.bin").st_size == len(BIG)
    assert fetches(url_mount) == []  # listing and stat need metadata only
    starts = [0]
    for c in pushed.big:
        starts.append(starts[-1] + c.size)
    # the middle of the largest chunk: the kernel's own read-ahead stays inside it
    want = max(pushed.big, key=lambda c: c.size)
    assert want.size > 1200 * 1024
    off = starts[pushed.big.index(want)] + want.size // 2
    with open(data / "big.bin", "rb") as f:
        f.seek(off)
        assert f.read(100) == BIG[off : off + 100]
    assert fetches(url_mount) == [(want.oid.hex(), want.size)]  # one GET, of that chunk
    # served first, cached behind the reader
    written = {want.oid.hex(): want.size}
    wait_for(lambda: cached(url_mount) == written, url_mount.proc, "the chunk was cached")
    assert hashlib.sha256((data / "big.bin").read_bytes()).digest() == hashlib.sha256(BIG).digest()
    got = fetches(url_mount)
    assert sorted(got) == sorted({(c.oid.hex(), c.size) for c in pushed.big})  # each once
    assert (url_mount.versions / "tags" / "first" / "data" / "small.txt").read_bytes() == b"small\n"


def test_a_command_inside_a_url_mount_is_sent_to_a_clone(
    pushed: Pushed, url_mount: Mount, tmp_path: Path
) -> None:
    # it said "a working tree, not a repository: run `dvfs status MNT` or `dvfs
    # snapshot MNT -m MSG`, and other commands in the repository (file:///...)": a
    # read-only view has no working tree, and a URL is no repository to run them in
    mnt = url_mount.path
    for cwd in (mnt, mnt / "data"):
        line = assert_error(dvfs(cwd, tmp_path / "home", "log"), code=1)
        assert f"{cwd} is in the dvfs mount {mnt}, a read-only view, not a repository: " in line
        assert f"read its versions in {mnt}/.versions" in line and "snapshot" not in line
        assert f"a clone of {pushed.url} (`dvfs clone {pushed.url}`)" in line, line


def test_the_cache_stays_within_its_size(pushed: Pushed, tmp_path: Path) -> None:
    limit = 3 * MiB
    with mounted(pushed.url, tmp_path / "mnt", tmp_path / "home", "--cache-size", str(limit)) as m:
        for _ in range(2):
            assert (m.path / "data" / "big.bin").read_bytes() == BIG
            assert (m.versions / "v1" / "data" / "other.bin").read_bytes() == OTHER
            wait_for(lambda: sum(cached(m).values()) > 0, m.proc, "chunks were cached")
            assert disk_bytes(m.cache / "chunks") <= limit


def test_refresh_shows_versions_pushed_by_others(pushed: Pushed, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with mounted(pushed.url, tmp_path / "mnt", home, "--refresh", "0.2") as m:
        assert os.listdir(m.versions)[:2] == ["v1", "latest"]
        assert not (m.path / "data" / "new.txt").exists()
        repo = Repository(pushed.repo)
        write(pushed.repo, "data/new.txt", b"pushed later\n")
        commit(repo, "two", tag="second")
        push_to(repo, pushed.url)
        eventually(lambda: (m.versions / "v2").exists())
        assert (m.versions / "v2" / "data" / "new.txt").read_bytes() == b"pushed later\n"
        assert os.readlink(m.versions / "latest") == "v2"
        # a push sends the branch before the tags: a refresh in between shows v2 alone
        eventually(lambda: sorted(os.listdir(m.versions / "tags")) == ["first", "second"])
        eventually(lambda: (m.path / "data" / "new.txt").exists())
        assert (m.path / "data" / "new.txt").read_bytes() == b"pushed later\n"


def test_a_branch_deleted_on_the_remote_is_still_served_and_not_snapshotted_over(
    pushed: Pushed, tmp_path: Path
) -> None:
    """`dvfs push --delete main` while a writable URL mount with --refresh serves main:
    a job reading the mount must not find an empty tree, so v1 is still served, and the
    log says why; a snapshot is refused, naming the deletion and its own command with
    --branch NEW, which then records the pending file on that branch."""
    home = tmp_path / "home"
    with mounted(pushed.url, tmp_path / "mnt", home, "--writable", "--refresh", "0.2") as m:
        (m.path / "data" / "new.txt").write_bytes(b"pending\n")
        assert_ok(dvfs(pushed.repo, home, "push", "--delete", "main"))
        eventually(lambda: "branch main was deleted: still serving v1" in m.log_text())
        assert (m.path / "data" / "small.txt").read_bytes() == b"small\n"
        assert (m.versions / "v1" / "data" / "other.bin").read_bytes() == OTHER
        assert (m.path / "data" / "new.txt").read_bytes() == b"pending\n"
        status = assert_ok(dvfs(tmp_path, home, "status", str(m.path)))
        assert "The branch was deleted since this working tree began: " in status.out
        assert f"`dvfs snapshot {m.path} -m MSG --branch NEW` records these" in status.out
        got = assert_ok(dvfs(tmp_path, home, "status", str(m.path), "--json")).json()
        assert (got["branch_deleted"], got["added"]) == (True, ["data/new.txt"])
        cmd = ["snapshot", str(m.path), "-m", "kept"]
        said = dvfs(tmp_path, home, *cmd)
        assert said.code == 1
        assert "main was deleted since this working tree was started" in said.err
        assert f"`dvfs snapshot {m.path} -m kept --branch NEW`" in said.err
        got = assert_ok(dvfs(tmp_path, home, *cmd, "--branch", "saved", "--json")).json()
        assert got["version"] == "v2"
    clone = tmp_path / "clone"
    assert_ok(dvfs(tmp_path, home, "clone", pushed.url, str(clone)))  # saved: the only branch
    assert (clone / "data" / "new.txt").read_bytes() == b"pending\n"
    fsck_clean(clone)


def test_mount_over_s3(pushed: Pushed, s3_env: S3Server, tmp_path: Path) -> None:
    url = f"s3://{s3_env.make_bucket()}/ds"
    push_to(Repository(pushed.repo), url, "s3", s3_env.endpoint)
    env = {k: os.environ[k] for k in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY")}
    with mounted(
        url, tmp_path / "mnt", tmp_path / "home", "--endpoint-url", s3_env.endpoint, "--debug",
        env=env,
    ) as m:  # fmt: skip
        with open(m.path / "data" / "big.bin", "rb") as f:
            f.seek(len(BIG) - 5)
            assert f.read() == BIG[-5:]
        assert fetches(m) == [(pushed.big[-1].oid.hex(), pushed.big[-1].size)]
        assert (m.versions / "v1" / "data" / "other.bin").read_bytes() == OTHER
        # --debug logs every fetch, but never a credential: no key, header or signature
        text = m.log_text()
        assert len(fetches(m)) > 1
        for secret in (s3_env.secret_key, s3_env.access_key, "Authorization", "Signature="):
            assert secret not in text


def test_a_snapshot_keeps_every_file_never_read(pushed: Pushed, tmp_path: Path) -> None:
    """A URL mount's working tree shows the whole version without fetching it: a
    snapshot of one new file keeps every other file, and a clone gets them all."""
    home = tmp_path / "home"
    with mounted(pushed.url, tmp_path / "mnt", home, "--writable", "--debug") as m:
        (m.path / "data" / "new.txt").write_bytes(b"written through the mount\n")
        got = assert_ok(
            dvfs(tmp_path, home, "snapshot", str(m.path), "-m", "one new file", "--json")
        ).json()
        assert (got["version"], got["files"], got["hashed"]) == ("v2", 4, 1)
        assert fetches(m) == []  # no file of v1 was read, not even for the snapshot
    clone = tmp_path / "clone"
    assert_ok(dvfs(tmp_path, home, "clone", pushed.url, str(clone)))
    for name, data in (("big.bin", BIG), ("other.bin", OTHER), ("small.txt", b"small\n")):
        assert (clone / "data" / name).read_bytes() == data, name
    assert (clone / "data" / "new.txt").read_bytes() == b"written through the mount\n"
    assert sorted(os.listdir(clone / "data")) == ["big.bin", "new.txt", "other.bin", "small.txt"]
    fsck_clean(clone)


# ---------------------------------------------------------------------------- faults


def read_error(path: Path) -> int:
    """The errno reading ``path`` fails with (0 if it does not fail)."""
    try:
        path.read_bytes()
    except OSError as exc:
        return exc.errno or -1
    return 0


def test_unreachable_remote_fails_reads_and_recovers(pushed: Pushed, url_mount: Mount) -> None:
    data = url_mount.path / "data"
    assert (data / "big.bin").read_bytes() == BIG
    away = pushed.remote.with_name("remote-away")
    pushed.remote.rename(away)
    try:
        assert read_error(data / "other.bin") == errno.EIO
        # cached chunks are still served (through another inode: not the page cache)
        assert (url_mount.versions / "v1" / "data" / "big.bin").read_bytes() == BIG
    finally:
        away.rename(pushed.remote)
    assert (data / "other.bin").read_bytes() == OTHER
    assert "could not be read" in url_mount.log_text()


def test_a_remote_that_never_answers_costs_one_read(
    pushed: Pushed, s3_env: S3Server, tmp_path: Path
) -> None:
    relay = Proxy(int(s3_env.endpoint.rsplit(":", 1)[1]))  # an S3 server that can stall
    endpoint = f"http://127.0.0.1:{relay.port}"
    url = f"s3://{s3_env.make_bucket()}/ds"
    push_to(Repository(pushed.repo), url, "s3", endpoint)
    home = tmp_path / "home"
    try:
        with mounted(
            url, tmp_path / "mnt", home, "--endpoint-url", endpoint, "--debug", "--timeout", "2"
        ) as m:
            data = m.path / "data"
            assert (data / "big.bin").read_bytes() == BIG
            relay.pause()  # requests are taken in, and never answered
            try:
                started = time.monotonic()
                assert read_error(data / "other.bin") == errno.EIO
                took = time.monotonic() - started
                # within --timeout 2, although the kernel asks twice (its read-ahead
                # failed, then the page the reader wants)
                assert 1.9 < took < 2 + MARGIN, took
                # meanwhile, cached data is served at once
                started = time.monotonic()
                assert (m.versions / "v1" / "data" / "big.bin").read_bytes() == BIG
                assert time.monotonic() - started < 1.5
            finally:
                relay.resume()  # the stuck GET finishes
            eventually(lambda: read_error(data / "other.bin") == 0)
            assert (data / "other.bin").read_bytes() == OTHER
            assert "did not arrive within 2 s" in m.log_text()
    finally:
        relay.cut()


def test_a_corrupt_chunk_is_never_served_or_cached(pushed: Pushed, url_mount: Mount) -> None:
    bad = pushed.other[1]
    pack, offset, length = pushed.pack_of(bad.oid)
    original = pack.read_bytes()
    flipped = bytearray(original)
    flipped[offset + length // 2] ^= 0xFF
    pack.chmod(0o644)
    pack.write_bytes(bytes(flipped))
    try:
        assert read_error(url_mount.path / "data" / "other.bin") == errno.EIO
        assert bad.oid.hex() not in cached(url_mount)
        log = url_mount.log_text()
        assert f"chunk {bad.oid.hex()} could not be read" in log
        assert "corrupt" in log
        # the remote's pack is named, and how it is mended (`dvfs fsck` sees no remote)
        assert f"pack {pack.name[:12]} on {pushed.url} holds it damaged" in log
        assert "dvfs fsck" not in log
    finally:
        pack.write_bytes(original)
    assert (url_mount.versions / "v1" / "data" / "other.bin").read_bytes() == OTHER
    wait_for(
        lambda: bad.oid.hex() in cached(url_mount), url_mount.proc, "the good chunk was cached"
    )


def test_a_chunk_the_remote_lacks_fails_its_read_and_is_named(tmp_path: Path) -> None:
    """A version names a chunk the remote's index does not list (a push cut short, a
    damaged remote): its reads fail (EIO), the others' do not, and the log says what
    mends it (no `dvfs pull` brings what the remote lacks)."""
    forge = Forge(tmp_path / "remote")
    ghost = hash_bytes(b"never stored")
    tree = forge.tree([file_entry(b"ghost.bin", ghost, 12), content_entry(b"ok.txt", b"ok\n")])
    forge.chunk(b"ok\n")
    forge.publish(forge.version(tree))
    with mounted(forge.url, tmp_path / "mnt", tmp_path / "home") as m:
        assert (m.path / "ok.txt").read_bytes() == b"ok\n"
        assert read_error(m.path / "ghost.bin") == errno.EIO
        log = m.log_text()
    assert f"object {ghost.hex()} is not" in log and f"not on {forge.url}" in log
    assert "push it there from a repository that has it" in log
    assert "dvfs pull" not in log and "dvfs fsck" not in log


def read_until_error(path: Path) -> tuple[bytes, int]:
    """The bytes read from ``path`` in order, 128 KiB at a time, and the errno that
    stopped the reading (0: none, the end was reached)."""
    got = bytearray()
    with open(path, "rb", buffering=0) as f:
        try:
            while part := f.read(128 * 1024):
                got += part
        except OSError as exc:
            return bytes(got), exc.errno or -1
    return bytes(got), 0


@pytest.mark.parametrize(
    ("mode", "overlay"),
    [((), "auto"), (("--writable",), "auto"), (("--writable",), "daemon")],
    ids=["read-only", "kernel-overlay", "daemon-overlay"],  # (root takes the kernel's)
)
def test_a_file_whose_bytes_are_not_its_digest_fails_its_read_to_the_end(
    tmp_path: Path, mode: tuple[str, ...], overlay: str
) -> None:
    """A remote's version holds files of several chunks whose digest is not their
    bytes' (each chunk is its id, so each was served): `cat` of one gave it whole.
    Read in order, the read that reaches its end now fails (EIO), once again after
    (the kernel keeps the pages read before), also after a first reader read only its
    start, and under another path; one line of the log names it. A part read
    out of order reads as before, and a true file of several chunks reads whole. In
    a writable MNT, such a file is not copied into the working tree to be written
    (the open fails), a true one is."""
    forge = Forge(tmp_path / "remote")
    files = {}
    entries = []
    for seed, name in enumerate((b"lie.bin", b"part.bin", b"later.bin", b"true.bin")):
        data = random.Random(seed).randbytes(8 * MiB)
        refs = []
        for i in range(0, len(data), MiB):
            refs.append(ChunkRef(forge.chunk(data[i : i + MiB]), MiB))
        digest = hash_bytes(data) if name == b"true.bin" else hash_bytes(b"other " + name)
        entries.append(Entry(name, Kind.FILE, 0o644, len(data), 0, digest, tuple(refs)))
        files[name.decode()] = data
    forge.publish(forge.version(forge.tree(entries)))
    with mounted(forge.url, tmp_path / "mnt", tmp_path / "home", *mode, overlay=overlay) as m:
        lie = m.path / "lie.bin"
        got, code = read_until_error(lie)
        assert code == errno.EIO and files["lie.bin"].startswith(got)
        assert len(got) < 8 * MiB
        assert read_until_error(lie)[1] == errno.EIO
        assert read_error(m.versions / "v1" / "lie.bin") == errno.EIO
        with open(m.path / "part.bin", "rb") as f:
            assert (
                os.pread(f.fileno(), MiB + 10, 3 * MiB) == files["part.bin"][3 * MiB : 4 * MiB + 10]
            )
        later = m.path / "later.bin"
        with open(later, "rb") as f:
            assert f.read(4096) == files["later.bin"][:4096]
        got, code = read_until_error(later)
        assert code == errno.EIO and files["later.bin"].startswith(got)
        assert (m.path / "true.bin").read_bytes() == files["true.bin"]
        if mode:
            with pytest.raises(OSError) as refused:
                open(m.path / "part.bin", "ab").close()
            assert refused.value.errno == errno.EIO
            with open(m.path / "true.bin", "ab") as f:
                f.write(b"more")
            assert (m.path / "true.bin").read_bytes() == files["true.bin"] + b"more"
        log = m.log_text()
    lines = [line for line in log.splitlines() if "the digest its version records" in line]
    named = ["lie.bin", "later.bin", "part.bin"] if mode else ["lie.bin", "later.bin"]
    assert len(lines) == len(named), log
    for line, file in zip(lines, named, strict=True):
        assert f"v1:{file}: its bytes hash to" in line
    # the next mount of the cache keeps the mark of the true file alone
    with mounted(forge.url, tmp_path / "mnt", tmp_path / "home", *mode, overlay=overlay) as m:
        assert (m.cache / "digests").stat().st_size == 64
        assert read_until_error(m.versions / "v1" / "lie.bin")[1] == errno.EIO
        assert (m.versions / "v1" / "true.bin").read_bytes() == files["true.bin"]


READ_LOGGED = re.compile(r"read b'([^']*)': (\d+) bytes at (\d+)")


def asked(m: Mount, name: str) -> int:
    """Bytes of ``name`` the kernel asked the daemon for so far (``--debug``)."""
    return sum(int(n) for path, n, _ in READ_LOGGED.findall(m.log_text()) if path == name)


@pytest.mark.parametrize(
    ("mode", "overlay"),
    [((), "auto"), (("--writable",), "auto"), (("--writable",), "daemon")],
    ids=["read-only", "kernel-overlay", "daemon-overlay"],
)
def test_a_false_file_read_in_part_then_whole_fails_after_many_others_were_opened(
    tmp_path: Path, mode: tuple[str, ...], overlay: str
) -> None:
    """The daemon keeps the digest state of ``KEEP`` closed contents (the least
    recently used let go first; here 4, ``DVFS_TEST_DIGEST_KEEP``); the kernel keeps
    the pages a reader got. A false file's start read, then more other files opened,
    then the whole file read: the kernel served the start from its pages and the
    daemon the rest, checked from a state that never saw the start, so the whole file
    was read unchecked; so was one kept open meanwhile, read whole by another open. A
    closed file's state takes the kernel's pages with it, an open file's is kept: both
    whole reads fail (EIO). Files read whole and found true kept a state each, and
    pushed out that of a true file read in part, whose start the daemon was then asked
    for again (read back and hashed again): they now leave a mark and take no place,
    and it is asked only for the rest."""
    forge = Forge(tmp_path / "remote")
    files = {}
    entries = []
    for seed, name in enumerate((b"lie.bin", b"kept.bin", b"true.bin")):
        data = random.Random(seed).randbytes(8 * MiB)
        refs = tuple(ChunkRef(forge.chunk(data[i : i + MiB]), MiB) for i in range(0, 8 * MiB, MiB))
        digest = hash_bytes(data) if name == b"true.bin" else hash_bytes(b"other")
        entries.append(Entry(name, Kind.FILE, 0o644, len(data), 0, digest, refs))
        files[name.decode()] = data
    keep = 4
    two = (ChunkRef(forge.chunk(b"a"), 1), ChunkRef(forge.chunk(b"b"), 1))
    opened = [b"o%d" % i for i in range(keep)]  # each its own content (its digest)
    for other in opened:
        entries.append(Entry(other, Kind.FILE, 0o644, 2, 0, hash_bytes(b"x" + other), two))
    whole = [b"w%d" % i for i in range(2 * keep)]  # each its own true content
    for other in whole:
        parts = (ChunkRef(forge.chunk(other), len(other)), ChunkRef(forge.chunk(b"!"), 1))
        size, digest = len(other) + 1, hash_bytes(other + b"!")
        entries.append(Entry(other, Kind.FILE, 0o644, size, 0, digest, parts))
    forge.publish(forge.version(forge.tree(entries)))
    env = {DIGEST_KEEP_ENV: str(keep)}
    mnt, home = tmp_path / "mnt", tmp_path / "home"
    with mounted(forge.url, mnt, home, "--debug", *mode, env=env, overlay=overlay) as m:
        with open(m.path / "lie.bin", "rb") as f:
            assert f.read(2 * MiB) == files["lie.bin"][: 2 * MiB]
        with open(m.path / "kept.bin", "rb") as kept:
            assert kept.read(2 * MiB) == files["kept.bin"][: 2 * MiB]
            for other in opened:  # lie.bin's state is let go: the least recently used
                os.close(os.open(m.path / os.fsdecode(other), os.O_RDONLY))
            with open(m.path / "true.bin", "rb") as f:
                assert f.read(2 * MiB) == files["true.bin"][: 2 * MiB]
            for other in whole:
                assert (m.path / os.fsdecode(other)).read_bytes() == other + b"!"
            for file in ("lie.bin", "kept.bin"):
                got, code = read_until_error(m.path / file)
                assert code == errno.EIO and files[file].startswith(got)
        if not mode:  # (MNT's files are read at other paths in a writable mount)
            assert 2 * MiB <= asked(m, "true.bin") < 8 * MiB
        assert (m.path / "true.bin").read_bytes() == files["true.bin"]
        if not mode:  # each byte once (was 11 MiB: the first 3 MiB twice)
            assert asked(m, "true.bin") == 8 * MiB
        log = m.log_text()
    assert "v1:lie.bin: its bytes hash to" in log and "v1:kept.bin: its bytes hash to" in log


@pytest.mark.parametrize(
    ("mode", "overlay"),
    [((), "auto"), (("--writable",), "daemon")],
    ids=["read-only", "daemon-overlay"],
)
def test_pages_the_kernel_kept_when_asked_to_drop_them_go_at_the_next_open(
    tmp_path: Path, mode: tuple[str, ...], overlay: str
) -> None:
    """A digest state let go asks the kernel to drop the file's pages; where it
    refuses (here every drop fails: ``DVFS_TEST_DROP_FAILS``), the next open has it
    drop them itself. Else the start of a false file, kept in the kernel's pages, was
    never asked for again, the rest was checked against a state that never saw it, and
    the whole file was read unchecked. It fails (EIO), its start asked for again."""
    forge = Forge(tmp_path / "remote")
    data = random.Random(3).randbytes(8 * MiB)
    refs = tuple(ChunkRef(forge.chunk(data[i : i + MiB]), MiB) for i in range(0, 8 * MiB, MiB))
    entries = [Entry(b"lie.bin", Kind.FILE, 0o644, len(data), 0, hash_bytes(b"other"), refs)]
    keep = 2
    two = (ChunkRef(forge.chunk(b"a"), 1), ChunkRef(forge.chunk(b"b"), 1))
    opened = [b"o%d" % i for i in range(keep)]  # each its own content (its digest)
    for other in opened:
        entries.append(Entry(other, Kind.FILE, 0o644, 2, 0, hash_bytes(b"x" + other), two))
    forge.publish(forge.version(forge.tree(entries)))
    env = {DIGEST_KEEP_ENV: str(keep), DROP_FAILS_ENV: "1"}
    mnt, home = tmp_path / "mnt", tmp_path / "home"
    with mounted(forge.url, mnt, home, "--debug", *mode, env=env, overlay=overlay) as m:
        with open(m.path / "lie.bin", "rb") as f:
            assert f.read(2 * MiB) == data[: 2 * MiB]

        def let_go() -> bool:  # (once the kernel has released lie.bin, which it does later)
            for other in opened:
                os.close(os.open(m.path / os.fsdecode(other), os.O_RDONLY))
            return "could not drop the kernel's pages of inode" in m.log_text()

        wait_for(let_go, m.proc, "lie.bin's state let go", log=m.log_text)
        before = asked(m, "lie.bin")
        got, code = read_until_error(m.path / "lie.bin")
        assert code == errno.EIO and data.startswith(got)
        if not mode:  # (MNT's files are read at other paths in a writable mount)
            assert asked(m, "lie.bin") - before >= 2 * MiB
        log = m.log_text()
    assert "v1:lie.bin: its bytes hash to" in log


def test_a_damaged_cache_file_is_fetched_again(pushed: Pushed, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with mounted(pushed.url, tmp_path / "mnt", home) as m:
        assert (m.path / "data" / "small.txt").read_bytes() == b"small\n"
    (name,) = cached(m)  # written by the time the daemon has stopped
    (victim,) = sealed(m.cache / "chunks")
    with open(victim, "r+b") as f:
        f.write(b"tampered\n")
    with mounted(pushed.url, tmp_path / "mnt", home) as m:
        assert (m.path / "data" / "small.txt").read_bytes() == b"small\n"
        assert f"cached chunk {name} failed verification" in m.log_text()
    assert not victim.exists()
    assert chunks_on_disk(m.cache / "chunks") == {name: b"small\n"}


def test_readers_of_one_chunk_fetch_it_once(pushed: Pushed, url_mount: Mount) -> None:
    paths = [url_mount.path / "data" / "big.bin", url_mount.versions / "v1" / "data" / "big.bin"]
    paths += [url_mount.versions / "tags" / "first" / "data" / "big.bin"]
    results: list[bool] = []

    def reader(p: Path) -> None:
        results.append(p.read_bytes() == BIG)

    threads = [threading.Thread(target=reader, args=(p,)) for p in paths]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert results == [True] * len(paths)
    got = [i for i, _ in fetches(url_mount)]
    assert sorted(got) == sorted(c.oid.hex() for c in pushed.big)  # each chunk fetched once


def test_cache_outlives_the_daemon(pushed: Pushed, tmp_path: Path) -> None:
    home = tmp_path / "home"
    with mounted(pushed.url, tmp_path / "mnt", home) as m:
        assert (m.path / "data" / "other.bin").read_bytes() == OTHER
        cache = m.cache
    shutil.rmtree(pushed.remote / "packs")  # from now on, only the cache has data
    with mounted(pushed.url, tmp_path / "mnt", home) as m:
        assert m.cache == cache
        assert (m.path / "data" / "other.bin").read_bytes() == OTHER


def test_a_hung_remote_does_not_hold_up_an_unmount(
    pushed: Pushed, s3_env: S3Server, tmp_path: Path
) -> None:
    # An S3 server that takes a GET in and never answers: the read fails within the
    # mount's --timeout, and the daemon, asked to stop, stops and unmounts although the
    # GET is still stuck in its thread. (A FIFO in a directory remote hangs no read: the
    # directory backend refuses anything but a regular file at once.)
    relay = Proxy(int(s3_env.endpoint.rsplit(":", 1)[1]))
    endpoint = f"http://127.0.0.1:{relay.port}"
    url = f"s3://{s3_env.make_bucket()}/ds"
    push_to(Repository(pushed.repo), url, "s3", endpoint)
    try:
        with mounted(
            url, tmp_path / "mnt", tmp_path / "home", "--endpoint-url", endpoint,
            "--timeout", "0.5",
        ) as m:  # fmt: skip
            relay.pause()  # requests are taken in, and never answered
            assert read_error(m.path / "data" / "other.bin") == errno.EIO
            m.proc.send_signal(signal.SIGTERM)  # the GET is still stuck in its thread
            assert m.proc.wait(timeout=10) == 0, m.log_text()
            assert not in_mount_table(m.path)
    finally:
        relay.cut()
