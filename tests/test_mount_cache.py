"""The disk a mount's cache uses: a full disk, several mounts of one source, cleaning.

A URL mount keeps fetched chunks and the remote's metadata in a cache directory,
and its working tree (``--writable``) in the user's data directory. What a user
relies on: a cache on a small disk never leaves the mount unable to write, snapshot
or start again; a second mount of a source needs no ``--cache-dir``; ``dvfs cache
clean`` frees the space of caches no mount uses and never loses a change that was
not snapshotted yet.
"""

from __future__ import annotations

import contextlib
import os
import random
import secrets
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import vfs
from daemon.data.chunk_cache import ChunkCache
from tests.conftest import tmpfs
from tests.support.chunk_cache import disk_bytes
from tests.support.cli import assert_error, assert_ok, fsck_clean
from tests.support.mount import (
    commit,
    dvfs,
    force_unmount,
    mounted,
    push_to,
    url_work,
    write,
)
from vfs import hash_bytes
from vfs.mount import launch
from vfs.repo.repository import Repository
from vfs.ui.source import open_source

MiB = 1 << 20
BIG = random.Random(21).randbytes(32 * MiB)  # more than the small disk holds
NEW = random.Random(22).randbytes(6 * MiB)  # more than the cache keeps free there
DISK = 24 * MiB


@pytest.fixture(name="url")
def url_fixture(tmp_path: Path) -> str:
    """A directory remote holding v1: a large file and a small one."""
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/big.bin", BIG)
    write(root, "data/small.txt", b"small\n")
    commit(repo, "one")
    remote = tmp_path / "remote"
    push_to(repo, remote.as_uri())
    return remote.as_uri()


def free(path: Path) -> int:
    st = os.statvfs(path)
    return st.f_bavail * st.f_frsize


def snapshot(mnt: Path, home: Path, *args: str) -> dict[str, Any]:
    got: dict[str, Any] = assert_ok(
        dvfs(mnt.parent, home, "snapshot", str(mnt), *args, "--json")
    ).json()
    return got


def pending(mnt: Path, home: Path) -> dict[str, Any]:
    got: dict[str, Any] = assert_ok(dvfs(mnt.parent, home, "status", str(mnt), "--json")).json()
    return got


def fill_with_old_chunks(chunks: Path) -> int:
    """Fill the disk of ``chunks`` to the last byte with chunk files, as an older dvfs
    (bounded only by --cache-size) left it; returns how many bytes they hold."""
    total = 0
    while True:
        name = secrets.token_hex(32)
        d = chunks / name[:2]
        try:
            d.mkdir(mode=0o700, exist_ok=True)
            with open(d / name, "wb") as f:
                f.write(bytes(MiB))
        except OSError:  # ENOSPC: a chunk file may be left short, as a crash leaves one
            return total
        total += MiB


def cache_behind(cache: ChunkCache, chunks: list[bytes], sample: Callable[[], None]) -> None:
    """Hand every chunk to the cache's writers and close it, calling ``sample`` over
    and over on another thread meanwhile (to catch what the writers do side by side)."""
    done = threading.Event()

    def watch() -> None:
        while not done.is_set():
            sample()

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for data in chunks:
            cache.put_later(hash_bytes(data), data)
        cache.close()
    finally:
        done.set()
        watcher.join()


def test_the_chunk_cache_leaves_a_tenth_of_its_disk_free(tmp_path: Path) -> None:
    """Whatever --cache-size says; and it gives room to others that ask for it."""
    with tmpfs(tmp_path / "disk", "16m") as disk:
        cache = ChunkCache(disk / "chunks", 10 << 30)
        assert cache.reserve == 16 * MiB // 10
        rng = random.Random(5)
        chunks = [rng.randbytes(MiB) for _ in range(40)]  # 40 MiB through a 16 MiB disk
        for data in chunks:
            assert cache.put(hash_bytes(data), data)
            assert free(disk) >= cache.reserve
        kept = [d for d in chunks if hash_bytes(d) in cache]
        assert kept == chunks[-len(kept) :] and len(kept) >= 12  # the most recent, all
        assert cache.get(hash_bytes(kept[-1])) == kept[-1]
        before = free(disk)
        assert cache.shed(3 * MiB, near=disk) >= 3 * MiB + cache.reserve
        assert free(disk) >= before + 3 * MiB + cache.reserve
        assert cache.shed(MiB, near=tmp_path) == 0  # another disk: nothing to gain there


def test_writers_side_by_side_keep_the_reserve_free(tmp_path: Path) -> None:
    """Chunks cached behind the reader are written four at a time: at no moment may
    the disk's free space drop below the reserve (each writer makes room for the
    writes under way beside it, not only for its own)."""
    with tmpfs(tmp_path / "disk", "16m") as disk:
        cache = ChunkCache(disk / "chunks", 10 << 30, writers=4, pending_limit=8 * MiB)
        rng = random.Random(6)
        chunks = [rng.randbytes(MiB) for _ in range(48)]
        lowest = [free(disk)]

        def sample() -> None:
            lowest[0] = min(lowest[0], free(disk))

        cache_behind(cache, chunks, sample)
        assert lowest[0] >= cache.reserve
        kept = [d for d in chunks if hash_bytes(d) in cache]
        assert len(kept) >= 8 and all(cache.get(hash_bytes(d)) == d for d in kept)


def test_writers_side_by_side_stay_within_the_size_limit(tmp_path: Path) -> None:
    """Four writers, a limit of three chunks or so: the chunks cached plus those being
    written never pass it (room held by the writes under way cannot be evicted, so a
    writer waits for one of them to land)."""
    limit = 3 * MiB
    cache = ChunkCache(tmp_path / "chunks", limit, 0, writers=4, pending_limit=8 * MiB)
    rng = random.Random(7)
    chunks = [rng.randbytes(rng.randrange(900 << 10, 1400 << 10)) for _ in range(40)]
    most = [0, 0]  # accounted, on disk

    def sample() -> None:
        most[0] = max(most[0], cache.usage())
        with contextlib.suppress(FileNotFoundError):
            most[1] = max(most[1], disk_bytes(cache.root))

    cache_behind(cache, chunks, sample)
    assert most[0] <= limit and most[1] <= limit, most
    assert cache.usage() == disk_bytes(cache.root) <= limit
    kept = [d for d in chunks if hash_bytes(d) in cache]
    assert len(kept) >= 2 and all(cache.get(hash_bytes(d)) == d for d in kept)


def test_a_full_cache_disk_never_wedges_a_writable_url_mount(url: str, tmp_path: Path) -> None:
    """Cache, metadata and working tree on one 24 MiB disk, the default --cache-size 10G:
    reading 32 MiB, writing 6 MiB, snapshots and remounts all work.

    With the daemon's overlay, which sees every write (the kernel's does not: its writes
    meet a full disk as on any filesystem; README says so)."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with tmpfs(tmp_path / "disk", f"{DISK // MiB}m") as disk:
        cache = disk / "cache"
        env = {"XDG_DATA_HOME": str(disk / "share")}  # the working tree on the same disk
        with mounted(url, mnt, home, "--writable", env=env, cache=cache, overlay="daemon"):
            assert (mnt / "data" / "big.bin").read_bytes() == BIG
            assert free(disk) >= DISK // 20  # the cache left room (a tenth, less what is in flight)
        # Mounted again, the chunks cached behind the reads have all landed: a writer still
        # landing makes room on its own, and the write below might not meet a full disk.
        # Another file takes what the cache may have left beyond its reserve (it caches less
        # of a read that outruns its writers, as on a busy machine).
        other = disk / "other.bin"
        other.write_bytes(bytes(max(0, free(disk) - DISK // 10)))
        with mounted(url, mnt, home, "--writable", env=env, cache=cache, overlay="daemon") as m:
            assert free(disk) < len(NEW)
            (mnt / "data" / "new.bin").write_bytes(NEW)  # the cache makes room for it
            assert (mnt / "data" / "new.bin").read_bytes() == NEW
            assert snapshot(mnt, home, "-m", "new")["version"] == "v2"
            assert pending(mnt, home)["added"] == []
            log = m.log_text()
            assert "evicted to make room on its disk" in log
            assert "the snapshot is stored again, in the room made" in log
        other.unlink()
        # an older dvfs filled the disk with chunks: the next mount makes room at start
        stale = fill_with_old_chunks(cache / "chunks")
        assert stale > 0 and free(disk) < MiB
        with mounted(url, mnt, home, "--writable", env=env, cache=cache, overlay="daemon") as m:
            assert (mnt / "data" / "new.bin").read_bytes() == NEW
            (mnt / "data" / "more.txt").write_bytes(b"more\n")
            assert snapshot(mnt, home, "-m", "more")["version"] == "v3"
            assert "chunks of an older layout removed at start" in m.log_text()
            assert free(disk) >= DISK // 10 - MiB
    clone = tmp_path / "clone"
    assert_ok(dvfs(tmp_path, home, "clone", url, str(clone)))
    assert (clone / "data" / "big.bin").read_bytes() == BIG
    assert (clone / "data" / "new.bin").read_bytes() == NEW
    assert (clone / "data" / "more.txt").read_bytes() == b"more\n"
    fsck_clean(clone)


def test_mounts_of_one_source_get_their_own_caches_and_cleaning_spares_work(
    url: str, tmp_path: Path
) -> None:
    """Two mounts of a URL without --cache-dir; `dvfs cache clean` skips the one in use,
    cleans the other; `--all` removes both once unmounted; the pending change stays."""
    home = tmp_path / "home"
    m1, m2 = tmp_path / "m1", tmp_path / "m2"
    m1.mkdir()
    m2.mkdir()
    try:
        assert_ok(dvfs(tmp_path, home, "mount", url, str(m1), "--writable"))
        assert_ok(dvfs(tmp_path, home, "mount", url, str(m2), "--read-only"))
        rows = {r["mountpoint"]: r for r in mounts(tmp_path, home)}
        c1, c2 = Path(rows[str(m1)]["cache_dir"]), Path(rows[str(m2)]["cache_dir"])
        assert c2 == c1.with_name(f"{c1.name}-2")
        assert rows[str(m1)]["work_dir"] == str(url_work(home, url))
        assert rows[str(m2)]["work_dir"] is None
        for m in (m1, m2):
            assert (m / "data" / "big.bin").read_bytes() == BIG
        (m1 / "data" / "mine.txt").write_bytes(b"not snapshotted\n")
        assert_ok(dvfs(tmp_path, home, "umount", str(m2)))
        got = assert_ok(dvfs(tmp_path, home, "cache", "clean", "--json")).json()
        pid = rows[str(m1)]["pid"]
        assert got["in_use"] == [{"cache_dir": str(c1), "by": f"the mount at {m1} (pid {pid})"}]
        assert got["cleaned"] == [str(c2)] and got["freed"] >= len(BIG)
        assert not (c2 / "chunks").exists() and (c2 / "meta").is_dir()
        r = assert_ok(dvfs(tmp_path, home, "cache", "clean"))
        assert r.out.strip() == "freed 0 B in 1 cache directory"
        assert f"{c1} is in use by the mount at {m1}" in r.err
        assert_ok(dvfs(tmp_path, home, "umount", str(m1)))
        got = assert_ok(dvfs(tmp_path, home, "cache", "clean", "--all", "--json")).json()
        assert sorted(got["cleaned"]) == [str(c1), str(c2)] and got["freed"] >= len(BIG)
        assert not c1.exists() and not c2.exists()
        assert_ok(dvfs(tmp_path, home, "mount", url, str(m1), "--writable"))
        assert (m1 / "data" / "mine.txt").read_bytes() == b"not snapshotted\n"
        assert pending(m1, home)["added"] == ["data/mine.txt"]
        assert_ok(dvfs(tmp_path, home, "umount", str(m1)))
    finally:
        force_unmount(m1)
        force_unmount(m2)
    assert_error(
        dvfs(tmp_path, home, "cache", "clean", "--cache-dir", str(tmp_path)),
        "is not a dvfs cache directory",
    )
    assert (tmp_path / "repo").is_dir()


def mounts(where: Path, home: Path) -> list[dict[str, Any]]:
    """`dvfs mounts --json` rows of mounts below ``where``."""
    rows: list[dict[str, Any]] = assert_ok(dvfs(where, home, "mounts", "--json")).json()
    return [r for r in rows if Path(r["mountpoint"]).is_relative_to(where)]


def test_a_working_tree_an_older_version_kept_in_the_cache_moves_out(
    url: str, tmp_path: Path
) -> None:
    home, mnt, cache = tmp_path / "home", tmp_path / "mnt", tmp_path / "cache"
    with mounted(url, mnt, home, "--writable", cache=cache):
        (mnt / "data" / "mine.txt").write_bytes(b"mine\n")
    work = url_work(home, url)
    (cache / "work").mkdir()
    os.rename(work, cache / "work" / "main")  # where an older version kept it
    got = assert_ok(
        dvfs(tmp_path, home, "cache", "clean", "--all", "--cache-dir", str(cache), "--json")
    ).json()
    assert got["kept_work"] == [str(cache / "work")]
    assert (cache / "work" / "main").is_dir() and not (cache / "meta").exists()
    with mounted(url, mnt, home, "--writable", cache=cache) as m:
        assert (mnt / "data" / "mine.txt").read_bytes() == b"mine\n"
        assert not (cache / "work").exists() and work.is_dir()
        assert "the working tree moved from" in m.log_text()
        assert snapshot(mnt, home, "-m", "mine")["version"] == "v2"


def test_a_second_read_only_mount_of_a_repository_needs_no_cache_dir(tmp_path: Path) -> None:
    root, home = tmp_path / "repo", tmp_path / "home"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"a\n")
    commit(repo, "one")
    points = [tmp_path / "m1", tmp_path / "m2"]
    for p in points:
        p.mkdir()
    try:
        assert_ok(dvfs(root, home, "mount", str(points[0])))
        for p in points[1:]:
            assert_ok(dvfs(root, home, "mount", str(p), "--read-only"))
        rows = {r["mountpoint"]: r for r in mounts(tmp_path, home)}
        caches = [Path(rows[str(p)]["cache_dir"]) for p in points]
        assert caches[1].name == f"{caches[0].name}-2"
        assert rows[str(points[0])]["work_dir"] == str(root / ".dvfs" / "worktrees" / "main")
        for p in points:
            assert (p / "data" / "a.txt").read_bytes() == b"a\n"
            assert_ok(dvfs(root, home, "umount", str(p)))
    finally:
        for p in points:
            force_unmount(p)


def test_cleaning_all_spares_a_remote_read_in_place_until_it_is_closed(
    url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`vfs.Repo.remote` and `dvfs ui URL` keep the remote's versions in the user's
    cache: `cache clean --all` names one in use and keeps it, removes it once closed,
    and the next reader fetches the versions again."""
    home = tmp_path / "home"
    monkeypatch.setenv("XDG_CACHE_HOME", str(home))
    remote = vfs.Repo.remote(url)
    mirror = launch.mirror_dir("api", url)
    ui_mirror = launch.mirror_dir("ui", url)
    dashboard = open_source(url)
    assert (mirror / "meta").is_dir() and (ui_mirror / "meta").is_dir()
    got = assert_ok(dvfs(tmp_path, home, "cache", "clean", "--all", "--json")).json()
    by = "a dvfs ui or Python program reading its remote"
    assert sorted(got["in_use"], key=str) == [
        {"cache_dir": str(mirror), "by": by},
        {"cache_dir": str(ui_mirror), "by": by},
    ]
    assert got["cleaned"] == [] and (mirror / "meta").is_dir()
    assert [v.message for v in remote.versions()] == ["one"]
    remote.close()
    assert dashboard.held is not None
    os.close(dashboard.held)
    got = assert_ok(dvfs(tmp_path, home, "cache", "clean", "--all", "--json")).json()
    assert got["in_use"] == [] and sorted(got["cleaned"]) == [str(mirror), str(ui_mirror)]
    assert got["freed"] > 0 and not mirror.exists() and not ui_mirror.exists()
    with vfs.Repo.remote(url) as again:
        assert again.read_bytes("data/small.txt", rev="v1") == b"small\n"
    assert (mirror / "meta").is_dir()


def test_a_reader_waiting_while_its_mirror_is_removed_makes_it_again(tmp_path: Path) -> None:
    """The cleaner holds the lock and removes the directory; the reader that waited
    then holds the lock of the directory as it is now, not of the removed one."""
    base = tmp_path / "mirror"
    cleaner = launch.claim(base)
    assert isinstance(cleaner, int)
    got: list[int] = []
    reader = threading.Thread(target=lambda: got.append(launch.hold_mirror(base)))
    reader.start()
    (base / "lock").unlink()  # as `cache clean --all` does: the reader may make
    with contextlib.suppress(OSError):  # a new lock file in between
        base.rmdir()
    os.close(cleaner)
    reader.join(timeout=30)
    assert got, "the reader never got the lock"
    held = os.fstat(got[0])
    now = (base / "lock").stat()
    assert (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino)
    assert isinstance(launch.claim(base), str)  # held shared: a cleaner cannot take it
    os.close(got[0])


def test_a_cache_lock_that_is_a_link_is_refused_not_truncated(tmp_path: Path) -> None:
    """A cache directory's lock (claim_for_life) was opened through a symbolic link
    and truncated: the file it pointed to lost its content."""
    outside = tmp_path / "outside.txt"
    outside.write_text("precious\n")
    cache = tmp_path / "cache"
    cache.mkdir(mode=0o700)
    (cache / "lock").symlink_to(outside)
    with pytest.raises(vfs.FormatError, match=r"lock is a symbolic link: .* remove it"):
        launch.claim(cache)
    assert outside.read_text() == "precious\n"
    (cache / "lock").unlink()
    fd = launch.claim(cache)
    assert isinstance(fd, int)
    os.close(fd)
