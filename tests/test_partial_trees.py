"""Partial working trees: paths that were never written are *not checked out*, not deleted.

A ``clone --no-checkout``, a ``pull PATH`` or a ``checkout REV PATH`` of a subset
leaves paths of the version out of the working tree on purpose. ``status`` must say
so in one line (never list them as deleted), ``commit`` must keep them as they are
in the parent, and ``push`` must publish a version that still has every file: the
other files of a branch are never dropped without a ``dvfs rm``. Each test works on
its own copy of a directory remote (pushed to once for the module), through the real
command line, and ends with ``dvfs fsck`` clean.
"""

from __future__ import annotations

import os
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import msgpack
import pytest

from tests.support.cli import Repo, assert_ok, commit_files, init_repo, run
from tests.support.data import rand
from vfs.backends import open_backend
from vfs.repo.stage import INDEX_FORMAT, Index

KiB = 1024

FILES = {
    "data/x/a.bin": rand(3 * KiB, 1),
    "data/x/b.bin": rand(5 * KiB, 2),
    "data/y/c.bin": rand(7 * KiB, 3),
    "data/y/d/e.bin": rand(2 * KiB, 4),
    "top.txt": b"top\n",
}
V2 = {"data/x/a.bin": b"a at v2\n", "data/z.txt": b"z\n"}
AT_V2 = sorted(FILES.keys() | V2.keys())


@dataclass(frozen=True)
class Template:
    """A directory remote whose main holds v1 (FILES) then v2 (FILES and V2)."""

    path: Path
    v1: str
    v2: str
    hashes: dict[str, dict[str, str]]  # version id -> path -> content hash


@pytest.fixture(scope="module")
def template(tmp_path_factory: pytest.TempPathFactory) -> Template:
    base = tmp_path_factory.mktemp("partial")
    a = init_repo(base / "a")
    v1 = commit_files(a, FILES, "v1")
    v2 = commit_files(a, V2, "v2")
    a.ok("remote", "add", "origin", str(base / "remote"))
    a.ok("push")
    hashes = {v: {p: f["hash"] for p, f in a.show(v)["files"].items()} for v in (v1, v2)}
    return Template(base / "remote", v1, v2, hashes)


@dataclass(frozen=True)
class Origin:
    """This test's copy of the template remote."""

    url: str
    template: Template

    def clone(self, cwd: Path, dest: str, *extra: str) -> Repo:
        assert_ok(run(cwd, "clone", self.url, dest, *extra))
        return Repo(cwd / dest)

    def main(self) -> str:
        """The version id the remote's main branch holds."""
        return open_backend(self.url).get("refs/heads/main").decode().strip()


@pytest.fixture
def origin(template: Template, tmp_path: Path) -> Origin:
    shutil.copytree(template.path, tmp_path / "remote", symlinks=True)
    return Origin((tmp_path / "remote").as_uri(), template)


def published_files(repo: Repo, origin: Origin) -> dict[str, str]:
    """The files (path -> hash) of what ``repo`` committed last, once the remote's main
    names it (a version id is the hash of its content: the remote holds these)."""
    assert origin.main() == repo.head_id()
    return {p: f["hash"] for p, f in repo.show()["files"].items()}


def not_checked_out(repo: Repo) -> list[str]:
    st = repo.status()
    assert st["deleted"] == [] and st["staged"] == [] and st["modified"] == [], st
    return list(st["not_checked_out"])


def test_clone_no_checkout_then_commit_keeps_every_file(origin: Origin, tmp_path: Path) -> None:
    b = origin.clone(tmp_path, "b", "--no-checkout")
    assert sorted(os.listdir(b.root)) == [".dvfs"]
    assert not_checked_out(b) == AT_V2
    out = b.ok("status").out
    assert "6 files of v2 not checked out; `dvfs pull PATH` or `dvfs checkout HEAD PATH`" in out
    assert "removed" not in out and "deleted" not in out
    b.write("new.txt", b"new\n")
    b.ok("add", "new.txt")
    b.commit("one more file")
    assert not_checked_out(b) == AT_V2
    b.ok("push")
    got = published_files(b, origin)
    assert sorted(got) == sorted([*AT_V2, "new.txt"])
    at_v2 = origin.template.hashes[origin.template.v2]
    assert {p: h for p, h in got.items() if p != "new.txt"} == at_v2
    b.fsck_clean()


@pytest.mark.parametrize("how", ["--no-checkout", "killed before its checkout"])
def test_a_pull_of_a_branch_up_to_date_writes_the_files_not_checked_out(
    how: str, origin: Origin, tmp_path: Path
) -> None:
    """`dvfs pull` without PATHs writes every file, even with nothing new to fetch: a
    clone killed after its branch was made but before its checkout (no index yet; a new
    clone is refused, the directory is not empty) is finished by it."""
    b = origin.clone(tmp_path, "b", "--no-checkout")
    b.ok("pull", "data/x")
    b.write("data/x/a.bin", b"changed here\n")  # a local change stays as it is
    if how != "--no-checkout":
        (b.root / ".dvfs/index").unlink()
        (b.root / "data").rename(tmp_path / "aside")  # the clone wrote no file
    out = b.ok("pull").out
    assert "main is up to date" in out
    for rel, data in {**FILES, **V2}.items():
        if rel != "data/x/a.bin" or how != "--no-checkout":
            assert b.read(rel) == V2.get(rel, data), rel
    st = b.status()
    assert st["not_checked_out"] == []
    if how == "--no-checkout":
        assert b.read("data/x/a.bin") == b"changed here\n"
        assert st["modified"] == ["data/x/a.bin"]
    else:
        assert st["modified"] == []
    assert "main is up to date\ndownloaded 0 objects" in b.ok("pull").out  # nothing left to do
    b.fsck_clean()


def test_pull_path_then_commit_and_push_keeps_every_file(origin: Origin, tmp_path: Path) -> None:
    b = origin.clone(tmp_path, "b", "--no-checkout")
    b.ok("pull", "data/x")
    assert b.read("data/x/a.bin") == V2["data/x/a.bin"]
    assert not (b.root / "data/y").exists()
    assert not_checked_out(b) == ["data/y/c.bin", "data/y/d/e.bin", "data/z.txt", "top.txt"]
    b.write("data/x/a.bin", b"changed\n")
    b.ok("commit", "-am", "change a")  # -a stages the change, and no deletion
    b.ok("push")
    got = published_files(b, origin)
    at_v2 = origin.template.hashes[origin.template.v2]
    assert sorted(got) == AT_V2
    assert {p: h for p, h in got.items() if p != "data/x/a.bin"} == {
        p: h for p, h in at_v2.items() if p != "data/x/a.bin"
    }
    assert got["data/x/a.bin"] != at_v2["data/x/a.bin"]
    # and the rest comes when asked for, by pull PATH or checkout HEAD PATH
    b.ok("checkout", "HEAD", "data/y/d")
    assert b.read("data/y/d/e.bin") == FILES["data/y/d/e.bin"]
    b.ok("pull", "top.txt")
    assert not_checked_out(b) == ["data/y/c.bin", "data/z.txt"]
    b.ok("checkout", "HEAD")  # a whole checkout brings everything
    assert b.read("data/y/c.bin") == FILES["data/y/c.bin"]
    assert "Nothing to commit, working tree clean." in b.ok("status").out
    b.fsck_clean()


def test_pull_path_ahead_of_the_remote_or_diverged_never_reverts_the_branch(
    origin: Origin, tmp_path: Path
) -> None:
    # ahead of the remote, `dvfs pull data` wrote the remote's older data/x/a.bin over
    # the branch's committed one and staged it: the next commit reverted the branch's
    # own version; diverged, it took the remote's files at PATH the same way
    b = origin.clone(tmp_path, "b", "--no-checkout")
    b.ok("pull", "data/x")
    b.write("data/x/a.bin", b"changed here\n")
    b.ok("commit", "-am", "change a")
    b.ok("pull", "data")  # ahead: the branch's own version of data, the rest downloaded
    assert b.read("data/x/a.bin") == b"changed here\n"
    assert b.read("data/y/c.bin") == FILES["data/y/c.bin"]
    assert not_checked_out(b) == ["top.txt"]
    c = origin.clone(tmp_path, "c")
    c.write("data/z.txt", b"z from c\n")
    c.ok("commit", "-am", "c")
    c.ok("push")
    b.fail("pull", "data", fragments=("have diverged", "left as it is", "`dvfs pull HEAD PATH`"))
    assert b.read("data/x/a.bin") == b"changed here\n" and b.read("data/z.txt") == V2["data/z.txt"]
    b.ok("pull", "HEAD", "top.txt")
    assert not_checked_out(b) == []
    b.fsck_clean()


def test_checkout_of_a_subset_from_another_version_keeps_the_rest(
    origin: Origin, tmp_path: Path
) -> None:
    t = origin.template
    b = origin.clone(tmp_path, "b", "--no-checkout")
    b.ok("checkout", "v1", "data/x")  # an older data/x, the rest not checked out
    assert b.read("data/x/a.bin") == FILES["data/x/a.bin"]
    st = b.status()
    assert [(c["path"], c["status"]) for c in st["staged"]] == [("data/x/a.bin", "modified")]
    assert st["deleted"] == [] and st["modified"] == []
    assert st["not_checked_out"] == ["data/y/c.bin", "data/y/d/e.bin", "data/z.txt", "top.txt"]
    b.commit("data/x as at v1")
    b.ok("push")
    got = published_files(b, origin)
    assert sorted(got) == AT_V2
    assert got["data/x/a.bin"] == t.hashes[t.v1]["data/x/a.bin"]
    assert {p: h for p, h in got.items() if p != "data/x/a.bin"} == {
        p: h for p, h in t.hashes[t.v2].items() if p != "data/x/a.bin"
    }
    b.fsck_clean()
    # a clone of an older version, without checkout: detached there, nothing written
    c = origin.clone(tmp_path, "c", "--no-checkout", "--rev", "v1")
    st = c.status()
    assert st["detached"] == "v1" and st["not_checked_out"] == sorted(FILES)
    assert c.head_id() == t.v1
    c.ok("checkout", "HEAD", "top.txt")
    assert c.read("top.txt") == FILES["top.txt"] and not_checked_out(c) == sorted(FILES)[:-1]
    c.fsck_clean()


def test_a_file_that_appears_is_compared_and_rm_drops_the_others(
    origin: Origin, tmp_path: Path
) -> None:
    b = origin.clone(tmp_path, "b", "--no-checkout")
    b.write("top.txt", FILES["top.txt"])  # the same bytes: now checked out, nothing to do
    b.write("data/x/a.bin", b"other bytes\n")  # other bytes: a change
    st = b.status()
    assert st["modified"] == ["data/x/a.bin"] and st["deleted"] == []
    assert st["not_checked_out"] == [
        "data/x/b.bin", "data/y/c.bin", "data/y/d/e.bin", "data/z.txt",
    ]  # fmt: skip
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
    assert sorted(b.show()["files"]) == ["data/x/a.bin", "data/x/b.bin", "data/z.txt", "top.txt"]
    assert not_checked_out(b) == ["data/x/b.bin", "data/z.txt"]
    b.fsck_clean()


def test_an_rm_undone_with_restore_staged_leaves_the_files_not_checked_out(
    origin: Origin, tmp_path: Path
) -> None:
    """`dvfs rm PATH` of files never checked out, undone with `dvfs restore --staged
    PATH` (as status says), put them back as files deleted from the working tree: status
    listed them deleted, and `commit -a` (or `add DIR`) then dropped them from the
    version. They are not checked out again now; a checked-out file rm deleted stays
    deleted."""
    b = origin.clone(tmp_path, "b", "--no-checkout")
    b.ok("restore", "top.txt")
    b.ok("rm", "data/y", "top.txt")
    b.ok("rm", "--cached", "data/z.txt")
    b.ok("restore", "--staged", "data", "top.txt")
    st = b.status()
    assert st["staged"] == [] and st["deleted"] == ["top.txt"], st
    assert st["not_checked_out"] == [p for p in AT_V2 if p != "top.txt"]
    b.ok("rm", "data/x/b.bin")
    b.commit("drop b and top.txt", "-a")  # (top.txt: deleted in the working tree)
    assert sorted(b.show()["files"]) == [p for p in AT_V2 if p not in ("data/x/b.bin", "top.txt")]
    b.ok("restore", "--source", "v2", "--staged", "data/x/b.bin")  # (a commit ago: a file)
    assert b.status()["deleted"] == ["data/x/b.bin"]
    b.fsck_clean()


def test_mv_of_a_file_not_checked_out_says_how_to_get_it(origin: Origin, tmp_path: Path) -> None:
    b = origin.clone(tmp_path, "b", "--no-checkout")
    for src in ("top.txt", "data/y"):
        line = b.fail("mv", src, "moved", code=2)
        assert f"{src} is tracked but was never checked out" in line, line
        assert f"`dvfs restore {src}` checks it out" in line and "deleted" not in line, line
    assert not_checked_out(b) == AT_V2
    b.ok("restore", "top.txt")  # what it says to run
    b.ok("mv", "top.txt", "moved")
    (b.root / "moved").unlink()  # deleted: another word, another way out
    line = b.fail("mv", "moved", "again", code=2)
    assert "moved is tracked but not in the working tree (deleted)" in line, line
    assert "`dvfs restore moved`" in line and "`dvfs rm moved`" in line, line
    b.fsck_clean()


def test_a_fifo_where_a_file_was_never_checked_out_is_replaced_only_when_asked(
    origin: Origin, tmp_path: Path
) -> None:
    b = origin.clone(tmp_path, "b", "--no-checkout")
    os.mkfifo(b.root / "top.txt")
    assert b.status()["special"] == [{"path": "top.txt", "kind": "FIFO"}]
    line = b.fail("checkout", "HEAD")
    assert "would replace top.txt (a FIFO at a tracked path)" in line and "--force" in line
    assert stat.S_ISFIFO(os.lstat(b.root / "top.txt").st_mode)
    b.ok("checkout", "--force", "HEAD")
    assert b.read("top.txt") == FILES["top.txt"]
    b.fsck_clean()


def test_an_index_from_before_and_no_index_at_all(origin: Origin, tmp_path: Path) -> None:
    """A format 1 index is read as it is; a clone whose index file is missing (made by
    an older ``clone --no-checkout``) has its files not checked out, not deleted. Any
    index is written in format 3 (``vfs.repo.stage``)."""
    b = origin.clone(tmp_path, "b", "--no-checkout")
    index = b.root / ".dvfs" / "index"
    index.unlink()
    assert not_checked_out(b) == AT_V2
    b.ok("pull", "data/x")
    now = Index.load(index)
    assert now.version == INDEX_FORMAT and now.absent()
    rows = [list(r) for _, r in sorted(now.rows()) if len(r) == 10]
    old = {"v": 1, "written_ns": now.written_ns, "head": now.head, "entries": rows}
    index.write_bytes(msgpack.packb(old, use_bin_type=True))  # as an older dvfs wrote it
    st = b.status()  # what an older index lacks reads as a staged removal, as it did
    assert st["not_checked_out"] == [] and st["deleted"] == []
    assert sorted(c["path"] for c in st["staged"] if c["status"] == "removed") == [
        "data/y/c.bin",
        "data/y/d/e.bin",
        "data/z.txt",
        "top.txt",
    ]
    b.ok("checkout", "--force", "HEAD")
    assert not_checked_out(b) == []
    assert Index.load(index).version == INDEX_FORMAT and not Index.load(index).absent()
    b.fsck_clean()
