"""Data that is only on a remote is fetched when a command needs it, or refused whole.

A clone has the chunks of the version it checked out, not of the others. ``checkout``,
``switch``, ``restore``, ``cat`` and ``diff --rows`` of another version download
exactly the chunks they lack from the default remote first, then go on; ``--offline``
refuses, naming the files. When the download fails (a dead server, a kill), nothing
has changed: HEAD, the index and the files are as they were, ``status`` says so, and
a later ``pull`` or ``checkout`` of the version works. A file whose data no remote
holds is *not checked out*, never silently left with other bytes. Every test that
wrote ends with ``dvfs fsck`` clean.

The two versions are pushed once for the module, to one bucket of the session's
SeaweedFS server; no test writes to it.
"""

from __future__ import annotations

import json
import re
import signal
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.support.cli import (
    Repo,
    Result,
    assert_error,
    assert_ok,
    commit_files,
    go,
    init_repo,
    run,
    spawn_ready,
    warnings_of,
)
from tests.support.data import rand
from tests.support.forge import Forge
from tests.support.relay import Proxy
from tests.support.s3server import S3Server, use_aws_keys
from tests.test_hostile_remote import good_v1, subtree_bomb
from vfs.errors import UsageError
from vfs.model.codec import ChunkRef, Entry, Kind
from vfs.remote.ondemand import check_files_expansion
from vfs.repo.repository import Repository

KiB = 1024
MiB = 1024 * KiB

V1 = {f"data/f{i}.bin": rand(4 * KiB + i, i) for i in range(5)} | {
    "data/big.bin": rand(3 * MiB, 9),
    "data/t.csv": b"id,name\n1,alice\n2,bob\n",
}
V2 = {
    "data/f0.bin": b"f0 at v2\n",
    "data/f1.bin": b"f1 at v2\n",
    "data/big.bin": rand(3 * MiB, 10),
    "data/new.txt": b"new\n",
    "data/t.csv": b"id,name\n1,alice\n3,carol\n",
}
AT_V2 = V1 | V2
CHANGED = ["data/big.bin", "data/f0.bin", "data/f1.bin", "data/t.csv"]  # by v2, and back
DOWNLOADED = re.compile(r"; (\d+) chunks? downloaded first")


@dataclass(frozen=True)
class Published:
    """V1 then V1|V2 pushed to an S3 remote (read only for the tests)."""

    url: str
    endpoint: str
    v1: str
    v2: str
    only_at_v1: int  # chunks of v1 that v2 lacks: what a clone of v2 must download

    def clone(self, cwd: Path, dest: str, *extra: str, endpoint: str = "") -> tuple[Repo, Result]:
        at = endpoint or self.endpoint
        r = assert_ok(run(cwd, "clone", self.url, dest, "--endpoint-url", at, *extra))
        return Repo(cwd / dest), r


def chunks_of(root: Path, oid: str) -> set[bytes]:
    hist = Repository(root).history
    tree = hist.version(bytes.fromhex(oid)).tree
    return {c.oid for _, e in hist.walk(tree) for c in e.chunks}


@pytest.fixture(scope="module")
def published(s3_server: S3Server, tmp_path_factory: pytest.TempPathFactory) -> Published:
    with pytest.MonkeyPatch.context() as mp:
        use_aws_keys(mp, s3_server.access_key, s3_server.secret_key)
        a = init_repo(tmp_path_factory.mktemp("on-demand") / "a")
        v1 = commit_files(a, V1, "v1")
        v2 = commit_files(a, V2, "v2")
        url = f"s3://{s3_server.make_bucket()}/p"
        a.ok("remote", "add", "origin", url, "--endpoint-url", s3_server.endpoint)
        a.ok("push")
    only_at_v1 = len(chunks_of(a.root, v1) - chunks_of(a.root, v2))
    return Published(url, s3_server.endpoint, v1, v2, only_at_v1)


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


def test_checkout_switch_restore_diff_and_cat_fetch_exactly_what_is_missing(
    published: Published, s3_env: S3Server, tmp_path: Path
) -> None:
    p = published
    b, _ = p.clone(tmp_path, "b")
    r = b.ok("checkout", "v1")
    assert downloaded(r) == p.only_at_v1  # v1's chunks that v2 lacks: nothing else
    same_as(b, V1)
    assert not (b.root / "data/new.txt").exists()
    r = b.ok("switch", "main")
    assert downloaded(r) == 0  # v2's chunks were here all along
    same_as(b, AT_V2)
    clean_at(b, "v2", p.v2)
    b.fsck_clean()

    c, _ = p.clone(tmp_path, "c", "--no-checkout")
    rows = json.dumps(c.json("diff", "v1", "v2", "data/t.csv", "--rows", "--json"))
    assert rows.count("carol") == 1 and "bob" in rows  # both sides were read
    assert c.cat("v1:data/f3.bin") == V1["data/f3.bin"]
    assert c.cat("v1:data/big.bin") == V1["data/big.bin"]
    r = c.ok("restore", "--source", "v1", "data/f0.bin")
    assert downloaded(r) == 1 and c.read("data/f0.bin") == V1["data/f0.bin"]
    c.ok("branch", "old", p.v1)
    r = c.ok("switch", "old")
    assert downloaded(r) == 3  # f1, f2 and f4 (diff, cat and restore brought the others)
    same_as(c, V1)
    clean_at(c, "v1", p.v1)
    c.fsck_clean()


def test_offline_refuses_and_data_no_remote_holds_is_not_checked_out(
    published: Published, s3_env: S3Server, tmp_path: Path
) -> None:
    p = published
    b, _ = p.clone(tmp_path, "b")
    line = b.fail("checkout", "v1", "--offline", fragments=("data/f0.bin", "data/f1.bin"))
    assert "--offline" in line and "`dvfs pull v1`" in line and "nothing was changed" in line
    assert not re.search(r"[0-9a-f]{16}", line), line  # files, not hashes
    b.ok("branch", "old", p.v1)
    b.fail("switch", "old", "--offline", fragments=("data/f0.bin", "`dvfs pull old`"))
    b.fail("cat", "v1:data/f1.bin", "--offline", fragments=("data/f1.bin", "--offline"))
    b.fail("restore", "--source", "v1", "data", "--offline", fragments=("data/f0.bin",))
    clean_at(b, "v2", p.v2)
    same_as(b, AT_V2)
    b.ok("checkout", "v1", "data/f2.bin", "--offline")  # what is here needs nothing

    # Without a remote to fetch from, the files that need data are not checked out,
    # never left with v2's bytes under v1's name; status says so, and its hint works.
    b.ok("remote", "remove", "origin", "--force")
    r = b.run("checkout", "v1")
    assert_error(r, "could not restore 4 files", "data/f0.bin", "not checked out")
    assert "no remote" in r.err
    assert "v1 (detached): " in r.out and "4 not checked out" in r.out
    st = b.status()
    assert st["detached"] == "v1" and b.head_id() == p.v1
    assert st["not_checked_out"] == CHANGED
    assert st["deleted"] == [] and st["modified"] == [] and st["staged"] == []
    assert not (b.root / "data/f0.bin").exists()
    assert "4 files of v1 not checked out" in b.ok("status").out
    b.ok("remote", "add", "origin", p.url, "--endpoint-url", p.endpoint)
    r = b.ok("checkout", "HEAD", "data/f0.bin")  # the hint works once data can be had
    assert downloaded(r) == 1
    b.ok("pull", "v1")
    same_as(b, V1)
    clean_at(b, "v1", p.v1)
    b.fsck_clean()


def test_removing_the_remote_that_alone_holds_data_here_is_refused(
    published: Published, s3_env: S3Server, tmp_path: Path
) -> None:
    """A clone holds v2's data, not v1's: `remote remove origin` went through, and the
    clone could no longer read v1's files, which `dvfs fsck` then counted missing. It
    is refused, naming what would become unreadable; once another remote holds that
    data (a push to it downloads it first) the removal goes; --force removes it anyway."""
    p = published
    b, _ = p.clone(tmp_path, "b")
    line = b.fail("remote", "remove", "origin", code=2)
    assert "remote origin alone holds the data of 6 chunk(s)" in line, line
    assert "nothing was removed" in line and "dvfs remote remove origin --force" in line
    assert b.json("remote", "list", "--json")[0]["name"] == "origin"
    b.fsck_clean()
    c, _ = p.clone(tmp_path, "c")
    c.ok("remote", "remove", "origin", "--force")
    assert c.json("remote", "list", "--json") == []
    b.ok("remote", "add", "backup", str(tmp_path / "backup"))
    b.ok("push", "--remote", "backup")
    b.ok("remote", "remove", "origin")
    assert [r["name"] for r in b.json("remote", "list", "--json")] == ["backup"]
    assert b.cat("v1:data/f0.bin") == V1["data/f0.bin"]
    b.fsck_clean()


@pytest.fixture
def proxy(s3_env: S3Server) -> Iterator[Proxy]:
    p = Proxy(int(s3_env.endpoint.rsplit(":", 1)[1]))
    yield p
    p.cut()


def test_a_checkout_whose_remote_dies_or_that_is_killed_changes_nothing(
    published: Published, proxy: Proxy, tmp_path: Path
) -> None:
    p = published
    b, _ = p.clone(tmp_path, "b", endpoint=f"http://127.0.0.1:{proxy.port}")
    proxy.cut()
    r = b.run("checkout", "v1", env={"DVFS_RETRY_ATTEMPTS": "1"})
    assert_error(r, "data/f0.bin", "origin", "nothing was changed")
    assert "(detached)" not in r.out  # no summary of work that was not done
    clean_at(b, "v2", p.v2)  # HEAD, the index and the files as they were
    same_as(b, AT_V2)
    # kill -9 in the middle of the download (the server stalls after 1 MiB of it)
    proxy.restore()
    proc = spawn_ready(b.root, "checkout", "v1")
    proxy.pause_after(MiB)
    go(proc)
    assert proxy.paused.wait(60), proc.communicate()
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    proxy.resume()
    b.fsck_clean()
    clean_at(b, "v2", p.v2)
    same_as(b, AT_V2)
    b.ok("pull", "v1")  # and the version comes when the remote answers
    same_as(b, V1)
    clean_at(b, "v1", p.v1)
    b.fsck_clean()


def test_hostile_refs_and_expansion_are_refused_by_a_fetching_checkout(tmp_path: Path) -> None:
    """A remote ref naming a version the remote lacks is skipped with a warning; a
    checkout that would download a version expanding far is refused, as a clone is."""
    ok = Forge(tmp_path / "ok")
    v1 = good_v1(ok)
    ok.publish(v1)
    ok.raw("refs/heads/broken", ("ab" * 32 + "\n").encode())
    r = assert_ok(run(tmp_path, "clone", ok.url, "b"))
    (warning,) = [w for w in warnings_of(r) if "broken" in w]
    assert "skipped" in warning and "does not hold" in warning
    b = Repo(tmp_path / "b")
    block = ok.chunk(b"y" * 65536)  # a file of 282 MB made of one chunk, 4,300 times
    chunks = tuple(ChunkRef(block, 65536) for _ in range(4300))
    big = Entry(b"big", Kind.FILE, 0o644, 65536 * 4300, 0, digest=bytes(32), chunks=chunks)
    ok.publish(ok.version(ok.tree([big]), (v1,), 2))
    r = b.ok("fetch")
    assert any("broken" in w for w in warnings_of(r))
    line = b.fail("checkout", "origin/main", fragments=("4,300 times", "--yes"))
    assert "nothing was written" in line
    assert b.head_id() == v1.hex() and b.read("data/a.txt") == b"hello\n"
    # and a clone --no-checkout of a tree bomb would fill the index: refused the same way
    bomb = Forge(tmp_path / "bomb")
    bomb.publish(bomb.version(subtree_bomb(bomb, 20)))
    assert_error(run(tmp_path, "clone", bomb.url, "c", "--no-checkout"), "1,048,576", "--yes")
    assert not (tmp_path / "c").exists()
    b.fsck_clean()


def test_a_restore_that_would_expand_far_is_refused_before_it_downloads() -> None:
    block = ChunkRef(bytes(32), 65536)  # one chunk of 64 KiB, named 4,300 times: 282 MB
    big = Entry(b"big", Kind.FILE, 0o644, 65536 * 4300, 0, digest=bytes(32), chunks=(block,) * 4300)
    with pytest.raises(UsageError, match="restore would write 281,804,800 bytes, 4,300 times"):
        check_files_expansion([(b"d/big", big)], "restore")
    small = Entry(b"small", Kind.FILE, 0o644, 65536, 0, digest=bytes(32), chunks=(block,))
    check_files_expansion([(b"d/small", small)] * 100, "restore")  # below the floor: fine
