"""Partial working trees: paths that were never written are *not checked out*, not deleted.

A ``clone --no-checkout``, a ``pull PATH`` or a ``checkout REV PATH`` of a subset
leaves paths of the version out of the working tree on purpose. ``status`` must say
so in one line (never list them as deleted), ``commit`` must keep them as they are
in the parent, and ``push`` must publish a version that still has every file: the
other files of a branch are never dropped without a ``dvfs rm``. Each test runs on a
directory remote and on SeaweedFS (``remote`` of ``tests.test_sync``), through the
real command line, and ends with ``dvfs fsck`` clean.
"""

from __future__ import annotations

import os
from pathlib import Path

import msgpack

from tests.cli_support import (
    Repo,
    RepoFactory,
    assert_ok,
    make_repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from tests.remote_support import Remote, remote_fixture  # noqa: F401  (a fixture)
from tests.test_sync import commit_files, rand

KiB = 1024

FILES = {
    "data/x/a.bin": rand(3 * KiB, 1),
    "data/x/b.bin": rand(5 * KiB, 2),
    "data/y/c.bin": rand(7 * KiB, 3),
    "data/y/d/e.bin": rand(2 * KiB, 4),
    "top.txt": b"top\n",
}


def published(remote: Remote, make_repo: RepoFactory) -> tuple[Repo, str]:
    """A repository ``a`` with FILES committed as v1 and pushed; v1's id."""
    a = make_repo("a")
    v1 = commit_files(a, FILES, "all")
    remote.add_to(a)
    a.ok("push")
    return a, v1


def remote_files(a: Repo) -> dict[str, str]:
    """The files of the remote's main branch (path -> hash), as ``a`` fetches them."""
    a.ok("fetch")
    files = a.show("origin/main")["files"]
    return {p: f["hash"] for p, f in files.items()}


def not_checked_out(repo: Repo) -> list[str]:
    st = repo.status()
    assert st["deleted"] == [] and st["staged"] == [] and st["modified"] == [], st
    return list(st["not_checked_out"])


def test_clone_no_checkout_then_commit_keeps_every_file(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a, v1 = published(remote, make_repo)
    b, _ = remote.clone(a.root.parent, "b", "--no-checkout")
    assert sorted(os.listdir(b.root)) == [".dvfs"]
    assert not_checked_out(b) == sorted(FILES)
    out = b.ok("status").out
    assert "5 files of v1 not checked out; `dvfs pull PATH` or `dvfs checkout HEAD PATH`" in out
    assert "removed" not in out and "deleted" not in out
    b.write("new.txt", b"new\n")
    b.ok("add", "new.txt")
    assert [c["path"] for c in b.status()["staged"]] == ["new.txt"]
    b.commit("one more file")
    assert not_checked_out(b) == sorted(FILES)
    b.ok("push")
    on_remote = remote_files(a)
    assert sorted(on_remote) == sorted([*FILES, "new.txt"])
    assert {p: h for p, h in on_remote.items() if p in FILES} == {
        p: f["hash"] for p, f in a.show(v1)["files"].items()
    }
    a.ok("pull")
    assert a.read("new.txt") == b"new\n" and a.read("top.txt") == FILES["top.txt"]
    a.fsck_clean()
    b.fsck_clean()


def test_pull_path_then_commit_and_push_keeps_every_file(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a, _ = published(remote, make_repo)
    b, _ = remote.clone(a.root.parent, "b", "--no-checkout")
    b.ok("pull", "data/x")
    assert b.read("data/x/a.bin") == FILES["data/x/a.bin"]
    assert not (b.root / "data/y").exists()
    assert not_checked_out(b) == ["data/y/c.bin", "data/y/d/e.bin", "top.txt"]
    assert "3 files of v1 not checked out" in b.ok("status").out
    b.write("data/x/a.bin", b"changed\n")
    b.ok("commit", "-am", "change a")  # -a stages the change, and no deletion
    b.ok("push")
    on_remote = a.show("HEAD")["files"] | {}
    got = remote_files(a)
    assert sorted(got) == sorted(FILES)
    assert got["data/y/c.bin"] == on_remote["data/y/c.bin"]["hash"]
    assert got["data/x/a.bin"] != on_remote["data/x/a.bin"]["hash"]
    # and the rest comes when asked for, by pull PATH or checkout HEAD PATH
    b.ok("checkout", "HEAD", "data/y/d")
    assert b.read("data/y/d/e.bin") == FILES["data/y/d/e.bin"]
    b.ok("pull", "top.txt")
    assert not_checked_out(b) == ["data/y/c.bin"]
    b.ok("checkout", "HEAD")  # a whole checkout brings everything
    assert not_checked_out(b) == []
    assert b.read("data/y/c.bin") == FILES["data/y/c.bin"]
    assert "Nothing to commit, working tree clean." in b.ok("status").out
    a.fsck_clean()
    b.fsck_clean()


def test_checkout_of_a_subset_from_another_version_keeps_the_rest(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a, v1 = published(remote, make_repo)
    v2 = commit_files(a, {"data/x/a.bin": b"a at v2\n", "data/z.txt": b"z\n"}, "v2")
    a.ok("push")
    b, _ = remote.clone(a.root.parent, "b", "--no-checkout")
    b.ok("checkout", "v1", "data/x")  # an older data/x, the rest not checked out
    assert b.read("data/x/a.bin") == FILES["data/x/a.bin"]
    st = b.status()
    assert [(c["path"], c["status"]) for c in st["staged"]] == [("data/x/a.bin", "modified")]
    assert st["deleted"] == [] and st["modified"] == []
    assert st["not_checked_out"] == ["data/y/c.bin", "data/y/d/e.bin", "data/z.txt", "top.txt"]
    b.commit("data/x as at v1")
    b.ok("push")
    got = remote_files(a)
    assert sorted(got) == sorted([*FILES, "data/z.txt"])
    at_v1 = a.show(v1)["files"]
    at_v2 = a.show(v2)["files"]
    assert got["data/x/a.bin"] == at_v1["data/x/a.bin"]["hash"]
    assert got["data/z.txt"] == at_v2["data/z.txt"]["hash"]
    a.fsck_clean()
    b.fsck_clean()


def test_a_file_that_appears_is_compared_and_rm_drops_the_others(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a, _ = published(remote, make_repo)
    b, _ = remote.clone(a.root.parent, "b", "--no-checkout")
    b.write("top.txt", FILES["top.txt"])  # the same bytes: now checked out, nothing to do
    b.write("data/x/a.bin", b"other bytes\n")  # other bytes: a change
    st = b.status()
    assert st["modified"] == ["data/x/a.bin"] and st["deleted"] == []
    assert st["not_checked_out"] == ["data/x/b.bin", "data/y/c.bin", "data/y/d/e.bin"]
    b.ok("add", "data")  # a directory: no deletion staged for what is not checked out
    assert [(c["path"], c["status"]) for c in b.status()["staged"]] == [
        ("data/x/a.bin", "modified")
    ]
    r = b.ok("rm", "data/y")  # the one way to drop them
    assert r.out.strip() == "removed 2 files"
    staged = {c["path"]: c["status"] for c in b.status()["staged"]}
    assert staged == {
        "data/x/a.bin": "modified",
        "data/y/c.bin": "removed",
        "data/y/d/e.bin": "removed",
    }
    b.commit("drop y")
    assert sorted(b.show()["files"]) == ["data/x/a.bin", "data/x/b.bin", "top.txt"]
    assert not_checked_out(b) == ["data/x/b.bin"]
    b.fsck_clean()


def test_an_index_from_before_and_no_index_at_all(remote: Remote, make_repo: RepoFactory) -> None:
    """A format 1 index is read as it is; a clone whose index file is missing (made by
    an older ``clone --no-checkout``) has its files not checked out, not deleted."""
    a, _ = published(remote, make_repo)
    b, _ = remote.clone(a.root.parent, "b", "--no-checkout")
    index = b.root / ".dvfs" / "index"
    index.unlink()
    assert not_checked_out(b) == sorted(FILES)
    b.ok("pull", "data/x")
    rec = msgpack.unpackb(index.read_bytes(), raw=False)
    assert rec["v"] == 2
    old = {**rec, "v": 1, "entries": [e for e in rec["entries"] if len(e) == 10]}
    index.write_bytes(msgpack.packb(old, use_bin_type=True))  # as an older dvfs wrote it
    st = b.status()  # what an older index lacks reads as a staged removal, as it did
    assert st["not_checked_out"] == [] and st["deleted"] == []
    assert sorted(c["path"] for c in st["staged"] if c["status"] == "removed") == [
        "data/y/c.bin",
        "data/y/d/e.bin",
        "top.txt",
    ]
    b.ok("checkout", "--force", "HEAD")
    assert not_checked_out(b) == []
    b.fsck_clean()


def test_clone_no_checkout_of_a_revision(remote: Remote, make_repo: RepoFactory) -> None:
    a, v1 = published(remote, make_repo)
    commit_files(a, {"later.txt": b"later\n"}, "v2")
    a.ok("push")
    b, _ = remote.clone(a.root.parent, "b", "--no-checkout", "--rev", "v1")
    st = b.status()
    assert st["detached"] == "v1" and st["not_checked_out"] == sorted(FILES)
    assert b.head_id() == v1
    assert_ok(run(b.root, "checkout", "HEAD", "top.txt"))
    assert b.read("top.txt") == FILES["top.txt"]
    b.fsck_clean()


def test_status_of_a_partial_tree_needs_no_hashing(tmp_path: Path, make_repo: RepoFactory) -> None:
    """The not-checked-out paths cost status nothing but a lookup: nothing is read."""
    a = make_repo("a")
    files = {f"d{i % 7}/f{i}.bin": rand(KiB, i) for i in range(300)}
    commit_files(a, files, "many")
    a.ok("remote", "add", "origin", str(tmp_path / "remote"))
    a.ok("push")
    assert_ok(run(tmp_path, "clone", str(tmp_path / "remote"), "b", "--no-checkout"))
    b = Repo(tmp_path / "b")
    b.ok("pull", "d3")
    st = b.status()
    assert len(st["not_checked_out"]) == len([p for p in files if not p.startswith("d3/")])
    assert st["deleted"] == [] and st["modified"] == []
    b.fsck_clean()
