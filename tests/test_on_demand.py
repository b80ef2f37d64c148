"""Data that is only on a remote is fetched when a command needs it, or refused whole.

A clone has the chunks of the version it checked out, not of the others. ``checkout``,
``switch``, ``restore`` and ``cat`` of another version download exactly the chunks
they lack from the default remote first, then go on; ``--offline`` refuses, naming
the files. When the download fails (a dead server, a kill), nothing has changed:
HEAD, the index and the files are as they were, ``status`` says so, and a later
``pull`` or ``checkout`` of the version works. A file whose data no remote holds is
*not checked out*, never silently left with other bytes. Every test that wrote ends
with ``dvfs fsck`` clean.
"""

from __future__ import annotations

import re
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.cli_support import (
    Repo,
    RepoFactory,
    Result,
    assert_error,
    assert_ok,
    go,
    make_repo_fixture,  # noqa: F401  (a fixture)
    run,
    spawn_ready,
    warnings_of,
)
from tests.forge import Forge
from tests.relay import Proxy
from tests.remote_support import Remote, remote_fixture  # noqa: F401  (a fixture)
from tests.s3server import S3Server
from tests.test_hostile_remote import good_v1, subtree_bomb
from tests.test_sync import commit_files, rand
from vfs.codec import ChunkRef, Entry, Kind

KiB = 1024
MiB = 1024 * KiB

V1 = {f"data/f{i}.bin": rand(4 * KiB + i, i) for i in range(5)} | {"data/big.bin": rand(3 * MiB, 9)}
V2 = {"data/f0.bin": b"f0 at v2\n", "data/f1.bin": b"f1 at v2\n", "data/new.txt": b"new\n"}
DOWNLOADED = re.compile(r"; (\d+) chunks? downloaded first")


def two_versions(remote: Remote, make_repo: RepoFactory) -> tuple[Repo, str, str]:
    """``a`` with V1 then V1|V2 committed and pushed; (a, v1, v2)."""
    a = make_repo("a")
    v1 = commit_files(a, V1, "v1")
    v2 = commit_files(a, V2, "v2")
    remote.add_to(a)
    a.ok("push")
    return a, v1, v2


def downloaded(r: Result) -> int:
    found = DOWNLOADED.search(r.out)
    return int(found[1]) if found else 0


def same_as(repo: Repo, files: dict[str, bytes]) -> None:
    for rel, data in files.items():
        assert repo.read(rel) == data, rel


def clean_at(repo: Repo, version: str, oid: str) -> None:
    """``status`` says HEAD is at ``version`` and nothing differs."""
    st = repo.status()
    assert st["head"] == version and repo.head_id() == oid, st
    for key in ("staged", "modified", "deleted", "untracked", "not_checked_out"):
        assert st[key] == [], (key, st)


def test_checkout_switch_restore_and_cat_fetch_exactly_what_is_missing(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a, v1, v2 = two_versions(remote, make_repo)
    b, _ = remote.clone(a.root.parent, "b")
    r = b.ok("checkout", "v1")
    assert downloaded(r) == 2  # f0 and f1 as they were at v1: nothing else
    same_as(b, V1)
    assert not (b.root / "data/new.txt").exists()
    assert b.status()["detached"] == "v1"
    r = b.ok("switch", "main")
    assert downloaded(r) == 0  # v2's chunks were here all along
    same_as(b, V2)
    clean_at(b, "v2", v2)
    b.fsck_clean()

    c, _ = remote.clone(a.root.parent, "c", "--no-checkout")
    assert c.cat("v1:data/f3.bin") == V1["data/f3.bin"]
    assert c.cat("v1:data/big.bin") == V1["data/big.bin"]
    r = c.ok("restore", "--source", "v1", "data/f0.bin")
    assert downloaded(r) == 1 and c.read("data/f0.bin") == V1["data/f0.bin"]
    c.ok("branch", "old", v1)
    r = c.ok("switch", "old")
    assert downloaded(r) == 3  # f1, f2 and f4 (cat and restore brought the others)
    same_as(c, V1)
    clean_at(c, "v1", v1)
    c.fsck_clean()


def test_offline_refuses_naming_the_files_and_what_gets_them(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a, v1, v2 = two_versions(remote, make_repo)
    b, _ = remote.clone(a.root.parent, "b")
    line = b.fail("checkout", "v1", "--offline", fragments=("data/f0.bin", "data/f1.bin"))
    assert "--offline" in line and "`dvfs pull v1`" in line and "nothing was changed" in line
    assert not re.search(r"[0-9a-f]{16}", line), line  # files, not hashes
    clean_at(b, "v2", v2)
    same_as(b, V2)
    b.ok("branch", "old", v1)
    b.fail("switch", "old", "--offline", fragments=("data/f0.bin", "`dvfs pull old`"))
    b.fail("cat", "v1:data/f1.bin", "--offline", fragments=("data/f1.bin", "--offline"))
    b.fail("restore", "--source", "v1", "data", "--offline", fragments=("data/f0.bin",))
    clean_at(b, "v2", v2)
    b.ok("checkout", "v1", "data/f2.bin", "--offline")  # what is here needs nothing
    b.fsck_clean()


@pytest.fixture
def proxy(s3_env: S3Server) -> Iterator[Proxy]:
    p = Proxy(int(s3_env.endpoint.rsplit(":", 1)[1]))
    yield p
    p.cut()


def test_a_checkout_whose_remote_is_dead_changes_nothing(
    make_repo: RepoFactory, s3_env: S3Server, proxy: Proxy
) -> None:
    url = f"s3://{s3_env.make_bucket()}/p"
    endpoint = ("--endpoint-url", f"http://127.0.0.1:{proxy.port}")
    a = make_repo("a")
    v1 = commit_files(a, V1, "v1")
    v2 = commit_files(a, V2, "v2")
    a.ok("remote", "add", "origin", url, *endpoint)
    a.ok("push")
    assert_ok(run(a.root.parent, "clone", url, "b", *endpoint))
    b = Repo(a.root.parent / "b")
    proxy.cut()
    once = {"DVFS_RETRY_ATTEMPTS": "1"}
    r = b.run("checkout", "v1", env=once)
    line = assert_error(r, "data/f0.bin", "origin", "nothing was changed")
    assert "(detached)" not in r.out  # no summary of work that was not done
    clean_at(b, "v2", v2)  # HEAD, the index and the files as they were
    same_as(b, V2)
    proxy.restore()
    r = b.ok("pull", "v1")  # and the version comes when the remote answers
    same_as(b, V1)
    clean_at(b, "v1", v1)
    b.fsck_clean()
    assert line


def test_a_kill_during_the_fetch_of_a_checkout_leaves_fsck_clean(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a = make_repo("a")
    v1 = commit_files(a, {"data/big.bin": rand(96 * MiB, 7), "data/s.txt": b"s1\n"}, "v1")
    v2 = commit_files(a, {"data/big.bin": b"small now\n", "data/s.txt": b"s2\n"}, "v2")
    remote.add_to(a)
    a.ok("push")
    b, _ = remote.clone(a.root.parent, "b")
    objects = b.root / ".dvfs" / "objects"
    proc = spawn_ready(b.root, "checkout", "v1")
    go(proc)
    give_up = time.monotonic() + 60
    while not any(p.name.startswith(".tmp-pack") for p in objects.iterdir()):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < give_up, "no download started"
        time.sleep(0.002)
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    report = b.fsck_clean()
    assert report["temporaries_removed"] >= 1
    clean_at(b, "v2", v2)
    assert b.read("data/big.bin") == b"small now\n"
    b.ok("checkout", "v1")
    assert b.read("data/s.txt") == b"s1\n"
    clean_at(b, "v1", v1)
    b.fsck_clean()


def test_data_no_remote_holds_leaves_files_not_checked_out(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a, v1, v2 = two_versions(remote, make_repo)
    b, _ = remote.clone(a.root.parent, "b")
    b.ok("remote", "remove", "origin")  # nowhere to fetch v1's f0 and f1 from
    r = b.run("checkout", "v1")
    assert_error(r, "could not restore 2 files", "data/f0.bin", "not checked out")
    assert "no remote" in r.err
    assert "v1 (detached): " in r.out and "2 not checked out" in r.out
    st = b.status()  # HEAD moved; the two files are not there, and status says so
    assert st["detached"] == "v1" and b.head_id() == v1
    assert st["not_checked_out"] == ["data/f0.bin", "data/f1.bin"]
    assert st["deleted"] == [] and st["modified"] == [] and st["staged"] == []
    assert not (b.root / "data/f0.bin").exists()  # never v2's bytes under v1's name
    assert "2 files of v1 not checked out" in b.ok("status").out
    remote.add_to(b)
    r = b.ok("checkout", "HEAD", "data/f0.bin")  # the hint works once data can be had
    assert downloaded(r) == 1
    b.ok("pull", "v1")
    same_as(b, V1)
    clean_at(b, "v1", v1)
    b.fsck_clean()
    assert v2


def test_a_remote_ref_naming_a_missing_version_is_skipped(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a, _, v2 = two_versions(remote, make_repo)
    remote.backend.put("refs/heads/broken", ("ab" * 32 + "\n").encode())
    r = a.ok("fetch")
    (warning,) = [w for w in warnings_of(r) if "broken" in w]
    assert "skipped" in warning and "does not hold" in warning
    b, r = remote.clone(a.root.parent, "b")
    assert any("broken" in w for w in warnings_of(r))
    assert b.head_id() == v2
    b.fsck_clean()


def test_the_expansion_cap_applies_to_a_checkout_that_downloads(tmp_path: Path) -> None:
    ok = Forge(tmp_path / "ok")
    v1 = good_v1(ok)
    ok.publish(v1)
    assert_ok(run(tmp_path, "clone", ok.url, "b"))
    b = Repo(tmp_path / "b")
    block = ok.chunk(b"y" * 65536)  # a file of 282 MB made of one chunk, 4,300 times
    chunks = tuple(ChunkRef(block, 65536) for _ in range(4300))
    big = Entry(b"big", Kind.FILE, 0o644, 65536 * 4300, 0, digest=bytes(32), chunks=chunks)
    ok.publish(ok.version(ok.tree([big]), (v1,), 2))
    b.ok("fetch")
    line = b.fail("checkout", "origin/main", fragments=("4,300 times", "--yes"))
    assert "nothing was written" in line
    assert b.head_id() == v1.hex() and b.read("data/a.txt") == b"hello\n"
    # and a clone --no-checkout of a tree bomb would fill the index: refused the same way
    bomb = Forge(tmp_path / "bomb")
    bomb.publish(bomb.version(subtree_bomb(bomb, 20)))
    assert_error(run(tmp_path, "clone", bomb.url, "c", "--no-checkout"), "1,048,576", "--yes")
    assert not (tmp_path / "c").exists()
    b.fsck_clean()
