"""Faults of the writable working tree (issue 5): crashes, a full disk, races.

Each test drives a real mount the way a user would: files are written through MNT,
``dvfs snapshot`` and ``dvfs status MNT`` run as processes, the daemon is killed
with SIGKILL (directly, or by the ``DVFS_TEST_KILL_AT`` hook of
``daemon.snapshot`` at a named step). What is checked is what a user relies on:
after a remount MNT shows every change made before the crash, the branch is the
old version or the new one and never anything else, nothing written is lost, and
``dvfs fsck`` finds nothing wrong.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
import threading
import time
from pathlib import Path
from typing import Any

import msgpack
import pytest

from tests.support.cli import Result, assert_error, assert_ok, fsck_clean
from tests.support.data import rand
from tests.support.mount import (
    Mount,
    commit,
    dvfs,
    push_to,
    url_work,
    write,
)
from tests.support.mount import mounted as any_mounted
from tests.support.mount import (
    own_overlay_mounted as mounted,
)
from tests.support.s3server import S3Server
from tests.support.trees import listing_of
from tests.support.waiting import wait_for
from vfs.repo.repository import Repository

KiB = 1024
MiB = 1024 * KiB
# The steps of a snapshot at which DVFS_TEST_KILL_AT can stop the daemon, in order;
# from "moved" on the branch is at the new version.
STEPS = ["hashed", "stored", "flushed", "journaled", "moved", "rebase"]
MOVED = STEPS.index("moved")


def make_repo(root: Path) -> Path:
    """A repository whose v1 has a few files in two directories."""
    repo = Repository.init(root)
    write(root, "data/a.txt", b"alpha\n")
    write(root, "data/gone.txt", b"to be deleted\n")
    write(root, "data/old.txt", b"to be renamed\n")
    write(root, "data/sub/deep.bin", rand(300 * KiB, seed=1))
    write(root, "data/run.sh", b"#!/bin/sh\n", mode=0o755)
    commit(repo, "one")
    return root


@pytest.fixture(name="repo")
def repo_fixture(tmp_path: Path) -> Path:
    return make_repo(tmp_path / "repo")


def head(root: Path, branch: str = "main") -> bytes | None:
    """Where ``branch`` of the repository at ``root`` is."""
    return Repository(root).refs.get(f"refs/heads/{branch}")


def change(mnt: Path) -> None:
    """Every kind of change: modify, add, delete, rename, mkdir, symlink, chmod."""
    with open(mnt / "data" / "a.txt", "r+b") as f:
        f.seek(2)
        f.write(b"PHA and more\n")
    (mnt / "data" / "new").mkdir()
    (mnt / "data" / "new" / "big.bin").write_bytes(rand(3 * MiB, seed=2))
    (mnt / "data" / "gone.txt").unlink()
    os.rename(mnt / "data" / "old.txt", mnt / "data" / "new" / "renamed.txt")
    os.symlink("../a.txt", mnt / "data" / "new" / "link")
    os.chmod(mnt / "data" / "run.sh", 0o700)


def snapshot(mnt: Path, home: Path, *args: str) -> Result:
    """``dvfs snapshot MNT ARGS --json``."""
    return dvfs(mnt.parent, home, "snapshot", str(mnt), *args, "--json")


def status(mnt: Path, home: Path) -> dict[str, Any]:
    """``dvfs status MNT --json``."""
    got: dict[str, Any] = assert_ok(dvfs(mnt.parent, home, "status", str(mnt), "--json")).json()
    return got


def pending(mnt: Path, home: Path) -> dict[str, Any]:
    """The changes ``dvfs status MNT`` lists (without branch and base)."""
    got = status(mnt, home)
    return {k: got[k] for k in ("added", "modified", "deleted", "renamed")}


NO_CHANGES: dict[str, Any] = {"added": [], "modified": [], "deleted": [], "renamed": []}


def killed(m: Mount) -> None:
    """Assert that the daemon died of SIGKILL."""
    assert m.proc.wait(timeout=30) == -9, m.log_text()


def assert_clean_work_dir(repo: Path, branch: str = "main") -> None:
    """The branch's work directory holds its lock, state and current journal, nothing else.

    A clean working tree keeps no data files, and no journal of an earlier generation
    is left behind by a crash.
    """
    work = repo / ".dvfs" / "worktrees" / branch
    state = msgpack.unpackb((work / "state").read_bytes())
    assert sorted(os.listdir(work)) == sorted(["data", "lock", "state", f"journal.{state['gen']}"])
    assert os.listdir(work / "data") == []


# ------------------------------------------------------------------------------ kill -9


def test_kill_during_writes_loses_nothing_written(repo: Path, tmp_path: Path) -> None:
    """Writes, fsynced or not, and namespace changes are all there after a remount."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    synced = rand(2 * MiB + 123, seed=3)
    unsynced = rand(MiB, seed=4)
    with mounted(str(repo), mnt, home) as m:
        change(mnt)
        fd = os.open(mnt / "data" / "synced.bin", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(fd, synced)
        os.fsync(fd)
        os.close(fd)
        (mnt / "data" / "unsynced.bin").write_bytes(unsynced)
        with open(mnt / "data" / "sub" / "deep.bin", "r+b") as f:  # a write into a base file
            f.seek(100 * KiB)
            f.write(b"patched")
            os.fsync(f.fileno())
        # a moved directory written into, a name deleted and made again, a rename over a file
        os.rename(mnt / "data" / "sub", mnt / "data" / "new" / "moved")
        with open(mnt / "data" / "new" / "moved" / "deep.bin", "ab") as f:
            f.write(b"appended after the move")
        (mnt / "data" / "again.txt").write_bytes(b"first\n")
        (mnt / "data" / "again.txt").unlink()
        (mnt / "data" / "again.txt").write_bytes(b"second\n")
        (mnt / "data" / "tmp.txt").write_bytes(b"saved by an editor\n")
        os.rename(mnt / "data" / "tmp.txt", mnt / "data" / "a.txt")
        still_open = os.open(mnt / "data" / "open.txt", os.O_WRONLY | os.O_CREAT, 0o644)
        os.write(still_open, b"written, never closed\n")
        expected = listing_of(mnt)
        before = pending(mnt, home)
        m.proc.kill()
        killed(m)
        with contextlib.suppress(OSError):
            os.close(still_open)
        assert_error(dvfs(tmp_path, home, "status", str(mnt)), "daemon", "is gone", "dvfs umount")
        assert_ok(dvfs(tmp_path, home, "umount", str(mnt)))
    with mounted(str(repo), mnt, home) as m:
        assert listing_of(mnt) == expected
        assert os.stat(mnt / "data" / "run.sh").st_mode & 0o777 == 0o700
        assert pending(mnt, home) == before
        m.proc.kill()
        killed(m)
    with mounted(str(repo), mnt, home):  # a snapshot before anything was looked at
        got = assert_ok(snapshot(mnt, home, "-m", "after the crash")).json()
        assert got["version"] == "v2"
        assert listing_of(mnt / ".versions" / "v2") == expected
        assert listing_of(mnt) == expected
        assert pending(mnt, home) == NO_CHANGES
    assert_clean_work_dir(repo)
    fsck_clean(repo)


def test_kill_while_a_writer_is_busy(repo: Path, tmp_path: Path) -> None:
    """Every write and every new file the daemon acknowledged before SIGKILL is kept."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    acked: list[bytes] = []
    files: list[str] = []
    failure: list[OSError] = []

    def writer() -> None:
        try:
            fd = os.open(mnt / "data" / "log.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        except OSError as exc:
            failure.append(exc)
            return
        try:
            for i in range(1_000_000):
                line = b"%06d " % i + b"x" * 4000 + b"\n"
                done = os.write(fd, line)  # short if the daemon died between two pages
                acked.append(line[:done])
                if i % 10 == 0:
                    (mnt / "data" / f"f{i:06d}").write_bytes(line)
                    files.append(f"f{i:06d}")
        except OSError as exc:
            failure.append(exc)
        finally:
            with contextlib.suppress(OSError):
                os.close(fd)

    with mounted(str(repo), mnt, home) as m:
        t = threading.Thread(target=writer)
        t.start()
        while len(acked) < 300:
            assert t.is_alive(), failure
            time.sleep(0.01)
        m.proc.kill()
        t.join(timeout=30)
        killed(m)
        # the request in flight is aborted, later ones find no daemon
        assert failure and failure[0].errno in (errno.ECONNABORTED, errno.ENOTCONN), failure
    with mounted(str(repo), mnt, home):
        got = (mnt / "data" / "log.txt").read_bytes()
        kept = b"".join(acked)  # appends go straight to the page cache: all of them
        # ... and the write in flight may have landed too, though never acknowledged
        assert got.startswith(kept) and len(got) - len(kept) <= 4008, (len(got), len(kept))
        present = sorted(n for n in os.listdir(mnt / "data") if n.startswith("f"))
        assert present[: len(files)] == files and len(present) <= len(files) + 1
        assert_ok(snapshot(mnt, home, "-m", "after the crash"))
        assert listing_of(mnt / ".versions" / "v2") == listing_of(mnt)
    fsck_clean(repo)


@pytest.mark.parametrize("step", STEPS)
def test_kill_at_each_step_of_a_snapshot(repo: Path, tmp_path: Path, step: str) -> None:
    """The branch is the old or the new version; the remounted MNT has every change."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    v1 = head(repo)
    with mounted(str(repo), mnt, home, env={"DVFS_TEST_KILL_AT": step}) as m:
        change(mnt)
        expected = listing_of(mnt)
        changes = pending(mnt, home)
        assert_error(snapshot(mnt, home, "-m", "two", "--tag", "t2"), "daemon")
        killed(m)
    now = head(repo)
    moved = STEPS.index(step) >= MOVED
    with mounted(str(repo), mnt, home) as m:
        assert listing_of(mnt) == expected
        if moved:
            assert now != v1
            assert listing_of(mnt / ".versions" / "v2") == expected
            assert listing_of(mnt / ".versions" / "tags" / "t2") == expected
            assert pending(mnt, home) == NO_CHANGES
            assert status(mnt, home)["base_version"] == 2
            assert_error(snapshot(mnt, home, "-m", "again"), "nothing to snapshot")
        else:
            assert now == v1
            assert sorted(os.listdir(mnt / ".versions")) == [
                "branches", "ids", "latest", "meta", "tags", "v1",
            ]  # fmt: skip
            assert pending(mnt, home) == changes
            got = assert_ok(snapshot(mnt, home, "-m", "two, again")).json()
            assert got["version"] == "v2"
            assert listing_of(mnt / ".versions" / "v2") == expected
        assert listing_of(mnt) == expected
    version = Repository(repo).history.version(head(repo) or b"")
    assert version.number == 2 and version.parents == (v1,)
    assert_clean_work_dir(repo)
    fsck_clean(repo)


KERNEL_STEPS = ["journaled", "moved"]  # a pending snapshot forgotten, then finished


@pytest.mark.parametrize("step", KERNEL_STEPS)
def test_kill_during_a_snapshot_of_the_kernels_overlay(
    repo: Path, tmp_path: Path, step: str
) -> None:
    """The kernel's overlay records a snapshot as ``pending`` (no write gate, no journal):
    killed before the branch moved, the next mount forgets it and every change is still
    pending; after, the next mount makes it the head and rebases onto it."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    v1 = head(repo)
    env = {"DVFS_TEST_KILL_AT": step}
    with any_mounted(str(repo), mnt, home, env=env, overlay="kernel") as m:
        change(mnt)
        expected = listing_of(mnt)
        changes = pending(mnt, home)
        assert_error(snapshot(mnt, home, "-m", "two"), "daemon")
        killed(m)
    moved = step == "moved"
    assert (head(repo) != v1) == moved
    with any_mounted(str(repo), mnt, home, overlay="kernel"):
        assert listing_of(mnt) == expected
        if moved:
            assert listing_of(mnt / ".versions" / "v2") == expected
            assert pending(mnt, home) == NO_CHANGES
            assert status(mnt, home)["base_version"] == 2
        else:
            # (the kernel's overlay shows a rename as a deletion and an addition)
            assert pending(mnt, home)["modified"] == changes["modified"]
            assert_ok(snapshot(mnt, home, "-m", "two, again"))
            assert listing_of(mnt / ".versions" / "v2") == expected
    work = repo / ".dvfs" / "worktrees" / "main"
    assert not (work / "pending").exists()
    assert Repository(repo).history.version(head(repo) or b"").parents == (v1,)
    fsck_clean(repo)


# ------------------------------------------------------------------------------ disk full


def test_disk_full_in_the_upper_layer(small_disk: Path, tmp_path: Path) -> None:
    """ENOSPC reaches the writer; the daemon serves on, and writes work once space is freed.

    The repository, and so its working tree's upper layer, is on an 8 MiB tmpfs.
    While the disk is full a new file fails whole (its journal record did not fit):
    it is not half there, now or after a remount.
    """
    repo = small_disk / "repo"
    make_repo(repo)
    v1 = head(repo)
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    block = rand(MiB, seed=5)
    with mounted(str(repo), mnt, home) as m:
        written = 0
        with pytest.raises(OSError) as info, open(mnt / "data" / "huge.bin", "wb") as f:
            while True:
                f.write(block)
                f.flush()
                written += len(block)
                assert written < 16 * MiB, "the disk never filled"
        assert info.value.errno == errno.ENOSPC
        (mnt / "data" / "many").mkdir()
        made: list[str] = []
        with pytest.raises(OSError) as info:
            for i in range(5000):
                name = f"n{i:04d}"
                (mnt / "data" / "many" / name).write_bytes(b"")
                made.append(name)
        assert info.value.errno == errno.ENOSPC
        assert m.proc.poll() is None, m.log_text()
        assert sorted(os.listdir(mnt / "data" / "many")) == made
        assert (mnt / "data" / "a.txt").read_bytes() == b"alpha\n"
        assert (mnt / "data" / "sub" / "deep.bin").read_bytes() == rand(300 * KiB, seed=1)
        with pytest.raises(OSError) as info:  # no room to copy it up
            open(mnt / "data" / "sub" / "deep.bin", "ab").close()
        assert info.value.errno == errno.ENOSPC
        assert (mnt / "data" / "sub" / "deep.bin").read_bytes() == rand(300 * KiB, seed=1)
        full = listing_of(mnt)
        assert_error(snapshot(mnt, home, "-m", "no room"), "full", code=1)  # as commit would
        assert listing_of(mnt) == full
        assert head(repo) == v1
        os.unlink(mnt / "data" / "huge.bin")
        (mnt / "data" / "small.bin").write_bytes(block)
        with open(mnt / "data" / "sub" / "deep.bin", "ab") as f:
            f.write(b"tail")
        assert (mnt / "data" / "small.bin").read_bytes() == block
        got = assert_ok(snapshot(mnt, home, "-m", "after the disk was full")).json()
        assert got["version"] == "v2"
        expected = listing_of(mnt)
        assert "data/huge.bin" not in expected and len(expected) == 9 + len(made)
        assert listing_of(mnt / ".versions" / "v2") == expected
        assert expected["data/sub/deep.bin"] == rand(300 * KiB, seed=1) + b"tail"
        (mnt / "data" / "after.txt").write_bytes(b"after\n")  # pending at the remount
        expected = listing_of(mnt)
        assert m.proc.poll() is None
    with mounted(str(repo), mnt, home):
        assert listing_of(mnt) == expected
        assert pending(mnt, home)["added"] == ["data/after.txt"]
    fsck_clean(repo)


def test_space_of_a_deleted_file_is_free_at_once(small_disk: Path, tmp_path: Path) -> None:
    """Deleting a closed file frees its space before the call returns, as on any filesystem.

    The kernel forgets the deleted inode a little later; a writer that fills the
    space at once (a rotating log, a tool replacing its output) must not get ENOSPC.
    """
    repo = small_disk / "repo"
    make_repo(repo)
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    chunk = rand(5 * MiB, seed=9)  # more than half of the 8 MiB disk: two cannot coexist
    with mounted(str(repo), mnt, home) as m:
        for i in range(16):
            if i:
                (mnt / "data" / f"out{i - 1}.bin").unlink()
            (mnt / "data" / f"out{i}.bin").write_bytes(chunk)
        assert (mnt / "data" / "out15.bin").read_bytes() == chunk
        assert sorted(p.name for p in (mnt / "data").glob("out*")) == ["out15.bin"]
        assert m.proc.poll() is None, m.log_text()
    fsck_clean(repo)


# ----------------------------------------------------------------- writing during a snapshot


def test_writing_while_a_snapshot_runs(repo: Path, tmp_path: Path) -> None:
    """A writer waits for the snapshot; each line lands in the version or after it."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    big = rand(64 * MiB, seed=6)
    with mounted(str(repo), mnt, home):
        (mnt / "data" / "big.bin").write_bytes(big)  # makes the snapshot take a while
        lines: list[bytes] = []
        waits: list[float] = []
        stop = threading.Event()

        def writer() -> None:
            fd = os.open(mnt / "data" / "log.txt", os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            try:
                i = 0
                while not stop.is_set():
                    line = b"line %06d\n" % i
                    t = time.monotonic()
                    os.write(fd, line)
                    if i % 25 == 0:
                        (mnt / "data" / f"f{i:06d}").write_bytes(line)
                    waits.append(time.monotonic() - t)
                    lines.append(line)
                    i += 1
            finally:
                os.close(fd)

        t = threading.Thread(target=writer)
        t.start()
        try:
            while len(lines) < 200:
                time.sleep(0.01)
            started = time.monotonic()
            r = snapshot(mnt, home, "-m", "during writes")
            took = time.monotonic() - started
            after = len(lines)
            while len(lines) < after + 200:
                time.sleep(0.01)
        finally:
            stop.set()
            t.join(timeout=60)
        got = assert_ok(r).json()
        v2 = mnt / ".versions" / "v2" / "data"
        assert (v2 / "big.bin").read_bytes() == big
        in_version = (v2 / "log.txt").read_bytes()
        written = b"".join(lines)
        assert written.startswith(in_version)  # whole lines, a prefix: nothing torn or lost
        count = len(in_version) // len(lines[0])
        assert 200 <= count < len(lines)
        assert (mnt / "data" / "log.txt").read_bytes() == written
        # f<i> is made right after line i: the version has those of the lines it has
        # (the one of its last line maybe not yet)
        named = sorted(n for n in os.listdir(v2) if n.startswith("f"))
        made = [f"f{i:06d}" for i in range(0, count, 25)]
        assert named in (made, made[:-1] if (count - 1) % 25 == 0 else made)
        assert max(waits) < took + 5  # a writer waits for the snapshot, no longer
        assert got["seconds"] > 0
        assert "data/log.txt" in pending(mnt, home)["modified"]
        assert_ok(snapshot(mnt, home, "-m", "the rest"))
        assert (mnt / ".versions" / "v3" / "data" / "log.txt").read_bytes() == written
        assert listing_of(mnt / ".versions" / "v3") == listing_of(mnt)
    fsck_clean(repo)


# ------------------------------------------------------------------- the branch moved meanwhile


def test_a_snapshot_after_the_branch_moved_is_refused(repo: Path, tmp_path: Path) -> None:
    """A CLI commit moved the branch: refused, the changes kept; --branch saves them."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home) as m:
        change(mnt)
        expected = listing_of(mnt)
        changes = pending(mnt, home)
        write(repo, "data/cli.txt", b"committed from the CLI\n")
        assert_ok(dvfs(repo, home, "add", "data"))
        assert_ok(dvfs(repo, home, "commit", "-m", "from the CLI"))
        v2 = head(repo)
        line = assert_error(
            snapshot(mnt, home, "-m", "late"), "main moved to v2", "--branch NEW", code=1
        )
        assert "\n" not in line
        assert head(repo) == v2
        assert listing_of(mnt) == expected
        assert pending(mnt, home) == changes
        got = assert_ok(snapshot(mnt, home, "-m", "saved aside", "--branch", "aside")).json()
        assert (got["version"], got["branch"]) == ("v2", "aside")
        assert listing_of(mnt / ".versions" / "branches" / "aside") == expected
        assert head(repo) == v2
        assert head(repo, "aside") == bytes.fromhex(got["id"])
        assert pending(mnt, home) == NO_CHANGES
        assert status(mnt, home)["branch"] == "aside"
        # the working tree now follows the new branch
        (mnt / "data" / "later.txt").write_bytes(b"after the new branch\n")
        got = assert_ok(snapshot(mnt, home, "-m", "more")).json()
        assert (got["version"], got["branch"]) == ("v3", "aside")
        (mnt / "data" / "pending.txt").write_bytes(b"not snapshotted\n")
        on_aside = listing_of(mnt)
        assert m.proc.poll() is None
    log = assert_ok(dvfs(repo, home, "log", "aside", "--json")).json()
    assert [v["message"] for v in log] == ["more", "saved aside", "one"]
    # the pending change belongs to aside's working tree, not to main's
    with mounted(str(repo), mnt, home, "--branch", "aside"):
        assert listing_of(mnt) == on_aside
        assert pending(mnt, home)["added"] == ["data/pending.txt"]
    with mounted(str(repo), mnt, home):
        assert listing_of(mnt) == listing_of(mnt / ".versions" / "v2")
        assert (mnt / "data" / "cli.txt").exists()
        assert pending(mnt, home) == NO_CHANGES
    fsck_clean(repo)


def test_a_snapshot_recorded_says_so_when_versions_cannot_be_rebuilt(
    repo: Path, tmp_path: Path
) -> None:
    """After the branch moved, the daemon pins the new version before it shows it in
    .versions; that failing (a full disk, here a file where .dvfs/pins should be) must
    not make the recorded snapshot read as failed: it succeeds with a warning."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    pins = repo / ".dvfs" / "pins"
    with mounted(str(repo), mnt, home) as m:
        (mnt / "data" / "more.txt").write_bytes(b"more\n")
        shutil.rmtree(pins)
        pins.write_bytes(b"")
        r = assert_ok(snapshot(mnt, home, "-m", "kept"))
        got = r.json()
        assert got["version"] == "v2" and bytes.fromhex(got["id"]) == head(repo)
        assert any("v2 is recorded" in w for w in got["warnings"]), got
        assert pending(mnt, home) == NO_CHANGES
        assert m.proc.poll() is None
        pins.unlink()
    log = assert_ok(dvfs(repo, home, "log", "--json")).json()
    assert [v["message"] for v in log] == ["kept", "one"]
    with mounted(str(repo), mnt, home):
        assert (mnt / ".versions" / "v2" / "data" / "more.txt").read_bytes() == b"more\n"
    fsck_clean(repo)


# ---------------------------------------------------------------------------- a URL mount


@pytest.fixture(name="remote", params=["file", "s3"])
def remote_fixture(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, list[str]]:
    """(URL, the options that reach it) of an empty remote: a directory or a new S3 prefix."""
    if request.param == "file":
        return "file://" + str(tmp_path / "remote"), []
    s3: S3Server = request.getfixturevalue("s3_env")
    return f"s3://{s3.make_prefix()}/ds", ["--endpoint-url", s3.endpoint]


def test_a_url_mount_snapshot_is_pushed(
    repo: Path, tmp_path: Path, remote: tuple[str, list[str]]
) -> None:
    """A --writable URL mount publishes; a --refresh mount sees it; a moved remote refuses.

    The second mount is writable too, standing for another machine (a data directory
    of its own, where its working tree goes): once it has followed the branch to the
    new version, its own snapshot moves the remote's branch under the first mount.
    """
    url, opts = remote
    push_to(Repository(repo), url, endpoint_url=opts[1] if opts else None)
    home = tmp_path / "home"
    elsewhere = {"XDG_DATA_HOME": str(tmp_path / "elsewhere")}
    with (
        mounted(url, tmp_path / "w", home, "--writable", *opts) as w,
        mounted(url, tmp_path / "r", home, "--writable", "--refresh", "0.2", *opts,
                env=elsewhere) as r,
    ):  # fmt: skip
        change(w.path)
        expected = listing_of(w.path)
        got = assert_ok(snapshot(w.path, home, "-m", "from the mount", "--tag", "m2")).json()
        assert (got["version"], got["branch"]) == ("v2", "main")
        # the branch moves first, then the tag is pushed: wait for both
        wait_for(
            lambda: (r.versions / "v2").exists() and (r.versions / "tags" / "m2").exists(),
            r.proc,
            "v2 and its tag m2",
            log=r.log_text,
            timeout=15,
        )
        assert listing_of(r.versions / "v2") == expected
        assert listing_of(r.versions / "tags" / "m2") == expected
        assert listing_of(r.path) == expected  # a clean working tree follows the branch
        # the remote's branch moves (a snapshot elsewhere): the next snapshot is refused
        (r.path / "data" / "elsewhere.txt").write_bytes(b"pushed from elsewhere\n")
        got = assert_ok(snapshot(r.path, home, "-m", "elsewhere")).json()
        assert (got["version"], got["branch"]) == ("v3", "main")
        (w.path / "data" / "mine.txt").write_bytes(b"mine\n")
        mine = listing_of(w.path)
        assert_error(snapshot(w.path, home, "-m", "late"), "main moved to", "--branch NEW")
        assert listing_of(w.path) == mine
        assert pending(w.path, home)["added"] == ["data/mine.txt"]
        got = assert_ok(snapshot(w.path, home, "-m", "mine", "--branch", "mine")).json()
        assert (got["version"], got["branch"]) == ("v3", "mine")
        wait_for(
            lambda: (r.versions / "branches" / "mine").exists(),
            r.proc,
            "the branch mine",
            log=r.log_text,
            timeout=15,
        )
        assert listing_of(r.versions / "branches" / "mine") == mine
        assert (r.versions / "v3" / "data" / "elsewhere.txt").exists()  # main's v3
        assert os.listdir(url_work(home, url).parent) == ["mine"]
    clone = tmp_path / "clone"
    assert_ok(dvfs(tmp_path, home, "clone", url, str(clone), "--rev", "origin/mine", *opts))
    assert {k: v for k, v in listing_of(clone).items() if not k.startswith(".dvfs")} == mine
    fsck_clean(clone)


@pytest.mark.parametrize("step", ["flushed", "moved"])
def test_kill_during_a_url_mount_snapshot(repo: Path, tmp_path: Path, step: str) -> None:
    """Killed before or after the push: the remote is at the old or the new version."""
    url = "file://" + str(tmp_path / "remote")
    push_to(Repository(repo), url)
    home, mnt = tmp_path / "home", tmp_path / "w"
    with mounted(url, mnt, home, "--writable", env={"DVFS_TEST_KILL_AT": step}) as m:
        change(mnt)
        expected = listing_of(mnt)
        assert_error(snapshot(mnt, home, "-m", "two"), "daemon")
        killed(m)
    with mounted(url, mnt, home, "--writable"):
        assert listing_of(mnt) == expected
        if step == "moved":
            assert listing_of(mnt / ".versions" / "v2") == expected
            assert pending(mnt, home) == NO_CHANGES
        else:
            assert not (mnt / ".versions" / "v2").exists()
            assert_ok(snapshot(mnt, home, "-m", "two, again"))
        (mnt / "data" / "after.txt").write_bytes(b"after\n")
        got = assert_ok(snapshot(mnt, home, "-m", "three")).json()
        assert got["version"] == "v3"
        expected = listing_of(mnt)
    clone = tmp_path / "clone"
    assert_ok(dvfs(tmp_path, home, "clone", url, str(clone)))
    assert {k: v for k, v in listing_of(clone).items() if not k.startswith(".dvfs")} == expected
    fsck_clean(clone)
