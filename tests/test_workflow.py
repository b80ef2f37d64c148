"""The whole command-line workflow, end to end, each command a real ``dvfs`` process.

init, add, rm, commit (params, tags), status, log, show, ls, cat, diff, checkout,
branch, switch, tag; every revision form; deduplication measured on the object
cache; symbolic links; and the link with a surrounding git work tree.
"""

from __future__ import annotations

import json
import os
import random
import re
from pathlib import Path
from typing import Any

import blake3
import pytest
import yaml

from tests.support.cli import (
    AUTHOR,
    Repo,
    RepoFactory,
    assert_error,
    assert_ok,
    commit_files,
    fsck_clean,
    git,
    init_repo,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
    run_python,
)
from tests.support.data import rand
from vfs.repo.repository import Repository

KiB = 1024
MiB = 1024 * KiB
ISO_TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$")


def digest(data: bytes) -> str:
    return blake3.blake3(data).hexdigest()


def changes(diff_json: dict[str, Any]) -> dict[str, tuple[str, str | None]]:
    """path -> (status, old_path) of a ``diff --json`` result."""
    return {c["path"]: (c["status"], c.get("old_path")) for c in diff_json["changes"]}


def lock_file(repo: Repo) -> dict[str, Any]:
    data: dict[str, Any] = yaml.safe_load((repo.root / "dvfs.lock").read_text())
    return data


# -------------------------------------------------------------------------------------------- init


def test_init_in_a_new_directory_and_here(tmp_path: Path) -> None:
    target = tmp_path / "new" / "dir"
    r = assert_ok(run(tmp_path, "init", str(target)))
    assert str(target) in r.out
    assert (target / ".dvfs" / "format").is_file()

    here = tmp_path / "here"
    here.mkdir()
    assert_ok(run(here, "init"))
    assert (here / ".dvfs").is_dir()
    assert_error(run(here, "init"), "already a dvfs repository")

    empty = Repo(here)
    st = empty.status()
    assert st["branch"] == "main"
    assert st["head"] is None
    assert st["staged"] == [] and st["untracked"] == []
    assert "No versions yet." in empty.ok("status").out
    empty.fail("log", fragments=("no versions yet",))
    fsck_clean(here)
    fsck_clean(target)


def test_init_where_dvfs_is_a_file_or_a_dangling_link_says_so(tmp_path: Path) -> None:
    """A file named ``.dvfs`` made init say "already a dvfs repository" while every
    other command said "not a dvfs repository: run `dvfs init`"; a dangling link so
    named made it fail with the bare "Not a directory: …/.dvfs.init-PID"."""
    here = tmp_path / "here"
    here.mkdir()
    (here / ".dvfs").write_text("junk")
    assert_error(run(here, "init"), ".dvfs is not a directory", "move it away")
    assert (here / ".dvfs").read_text() == "junk"
    (here / ".dvfs").unlink()
    (here / ".dvfs").symlink_to(tmp_path / "nowhere")
    assert_error(run(here, "init"), ".dvfs is a symbolic link to no directory", "move it away")
    assert sorted(os.listdir(here)) == [".dvfs"] and not (tmp_path / "nowhere").exists()
    (here / ".dvfs").unlink()
    assert_ok(run(here, "init"))
    fsck_clean(here)


# --------------------------------------------------------------------- add / status / commit / log


def test_add_commit_status_and_log(repo: Repo) -> None:
    repo.write("data/a.csv", "x\n1\n")
    repo.write("data/b.csv", "y\n2\n")
    repo.write("notes.txt", "not tracked, not under a tracked directory")
    r = repo.ok("add", "data")
    assert r.out.startswith("staged 2 files")

    st = repo.status()
    assert st["branch"] == "main" and st["head"] is None and st["detached"] is None
    assert [(c["status"], c["path"], c["new_size"]) for c in st["staged"]] == [
        ("added", "data/a.csv", 4),
        ("added", "data/b.csv", 4),
    ]
    assert st["modified"] == [] and st["deleted"] == [] and st["untracked"] == []

    r = repo.ok("commit", "-m", "first")
    assert r.out.startswith("v1 ") and "2 files" in r.out
    st = repo.status()
    assert st["head"] == "v1"
    assert st["staged"] == [] and st["modified"] == [] and st["deleted"] == []
    assert "Nothing to commit, working tree clean." in repo.ok("status").out
    repo.fail("commit", "-m", "again", fragments=("nothing to commit",))

    # Unstaged changes of every kind.
    repo.write("data/a.csv", "x\n1\n3\n")
    (repo.root / "data" / "b.csv").unlink()
    repo.write("data/new.csv", "z")
    repo.write("data/sub/deep.csv", "d")
    st = repo.status()
    assert st["staged"] == []
    assert st["modified"] == ["data/a.csv"]
    assert st["deleted"] == ["data/b.csv"]
    assert st["untracked"] == ["data/new.csv", "data/sub/deep.csv"]
    text = repo.ok("status").out
    assert "modified: data/a.csv" in text
    assert "deleted:  data/b.csv" in text
    assert "  data/sub/deep.csv" in text
    assert "notes.txt" not in text

    # Adding the directory stages the modification, the additions and the deletion.
    r = repo.ok("add", "data")
    assert "1 deletion" in r.out
    st = repo.status()
    assert {c["path"]: c["status"] for c in st["staged"]} == {
        "data/a.csv": "modified",
        "data/b.csv": "removed",
        "data/new.csv": "added",
        "data/sub/deep.csv": "added",
    }
    assert st["modified"] == [] and st["deleted"] == [] and st["untracked"] == []
    repo.ok("commit", "-m", "second")
    repo.write("data/c.csv", "c")
    repo.ok("add", "data/c.csv")
    repo.ok("commit", "-m", "third")

    log = repo.json("log", "--json")
    assert [v["version"] for v in log] == ["v3", "v2", "v1"]
    assert [v["message"] for v in log] == ["third", "second", "first"]
    assert [v["files"] for v in log] == [4, 3, 2]
    for v in log:
        assert v["author"] == AUTHOR
        assert re.fullmatch(r"[0-9a-f]{64}", v["id"])
        assert ISO_TIME.match(v["created"])
        assert v["git_commit"] is None
    assert len({v["id"] for v in log}) == 3
    assert [v["version"] for v in repo.json("log", "--json", "-n", "2")] == ["v3", "v2"]
    assert [v["version"] for v in repo.json("log", "v2", "--json")] == ["v2", "v1"]
    text = repo.ok("log", "-n", "1").out
    assert "v3" in text and "third" in text and "second" not in text
    repo.fsck_clean()


# --------------------------------------------------------------------------------- show / ls / cat


def test_show_in_text_yaml_and_json(repo: Repo) -> None:
    table = b"id,value\n1,2\n"
    weights_v2 = rand(1000, seed=2)
    repo.write("data.csv", table)
    repo.write("model/weights.bin", rand(1000, seed=1))
    repo.ok("add", "data.csv", "model")
    repo.ok("commit", "-m", "first", "--param", "lr=0.1")
    repo.write("model/weights.bin", weights_v2)
    repo.ok("add", "model")
    repo.ok("commit", "-m", "second")

    y = yaml.safe_load(repo.ok("show", "--format", "yaml").out)
    for key in ("version", "files", "parameters", "pipeline", "git_commit", "message", "author",
                "created"):  # fmt: skip
        assert key in y, key
    assert y["version"] == "v2"
    assert y["files"]["data.csv"] == {"hash": digest(table), "size": len(table), "added": "v1"}
    assert y["files"]["model/weights.bin"] == {
        "hash": digest(weights_v2),
        "size": 1000,
        "added": "v2",
    }
    assert set(y["files"]) == {"data.csv", "model/weights.bin"}
    assert y["parameters"] == {}
    assert y["pipeline"] == []
    assert y["git_commit"] is None
    assert y["message"] == "second"
    assert y["author"] == AUTHOR
    assert ISO_TIME.match(y["created"])
    assert y["totals"] == {"files": 2, "bytes": len(table) + 1000, "directories": 1}

    assert repo.show("HEAD") == y  # json and yaml carry the same record
    v1 = yaml.safe_load(repo.ok("show", "v1", "--format", "yaml").out)
    assert v1["version"] == "v1" and v1["parameters"] == {"lr": 0.1}
    assert v1["files"]["model/weights.bin"]["added"] == "v1"
    assert v1["id"] == y["parents"][0]

    text = repo.ok("show").out  # text is the default
    assert repo.ok("show", "--format", "text").out == text
    assert f"version  v2  {y['id']}" in text
    assert "second" in text and AUTHOR in text
    assert "2 files, " in text and "data.csv" not in text  # a summary
    listed = repo.ok("show", "--files").out
    assert digest(table)[:12] in listed and "data.csv" in listed
    assert "param    lr = 0.1" in repo.ok("show", "v1").out
    repo.fsck_clean()


def test_ls_and_cat(repo: Repo) -> None:
    big = rand(700 * KiB)  # above the 256 KiB minimum: cut into chunks
    repo.write("d/big.bin", big)
    small = repo.write("d/s/small.txt", "hello\n")
    small.chmod(0o640)
    repo.write("top.txt", "t")
    repo.ok("add", "d", "top.txt")
    repo.ok("commit", "-m", "first")

    assert [e["name"] for e in repo.json("ls", "--json")] == ["d", "top.txt"]
    rows = {e["name"]: e for e in repo.json("ls", "v1:d", "--json")}
    assert rows["big.bin"]["type"] == "file" and rows["big.bin"]["size"] == len(big)
    assert rows["s"]["type"] == "dir"
    (one,) = repo.json("ls", "HEAD:d/s/small.txt", "--json")
    assert one["type"] == "file" and one["mode"] == oct(0o640) and one["size"] == 6
    text = repo.ok("ls", "v1:d").out
    assert "s/" in text and "big.bin" in text and "-rw-r-----" in repo.ok("ls", "v1:d/s").out

    assert repo.cat("v1:d/big.bin") == big
    assert repo.cat("HEAD:d/s/small.txt") == b"hello\n"
    assert repo.cat("v1:/top.txt") == b"t"
    repo.fail("cat", "v1:d", fragments=("is a directory",))
    repo.fail("cat", "v1:d/nope.txt", fragments=("d/nope.txt", "does not exist"))
    repo.fail("ls", "v1:nope", fragments=("nope", "does not exist"))
    # the path may also follow the revision as a second argument, as in `git ls-tree`
    assert repo.ok("ls", "v1", "d").out == text
    assert repo.run("cat", "v1", "d/s/small.txt").raw == b"hello\n"
    repo.fail("cat", "v1:d/big.bin", "d/big.bin", fragments=("REV:PATH or REV PATH",))
    repo.fsck_clean()


# -------------------------------------------------------------------------------------------- diff


def test_diff_between_versions_shows_empty_directories(repo: Repo) -> None:
    """Versions made by a snapshot record empty directories; diff lists them like files.

    A directory that only empties or fills is known by its files; one that turns into
    a file (or back) is removed and added.
    """
    from vfs.model.codec import ChunkRef, Entry, Kind, encode_tree
    from vfs.ops.diff import diff_trees
    from vfs.repo.repository import Repository
    from vfs.store.objects import ObjKind

    handle = Repository.find(repo.root)
    store = handle.store

    def tree(*entries: Entry) -> bytes:
        return store.put(ObjKind.TREE, encode_tree(entries))[0]

    def file(name: str, data: bytes) -> Entry:
        oid = store.put(ObjKind.CHUNK, data)[0]
        refs = (ChunkRef(oid, len(data)),)
        whole = blake3.blake3(data).digest()
        return Entry(name.encode(), Kind.FILE, 0o644, len(data), 0, digest=whole, chunks=refs)

    def folder(name: str, subtree: bytes) -> Entry:
        return Entry(name.encode(), Kind.DIR, 0o755, 0, 0, subtree=subtree)

    empty = tree()
    a = tree(folder("e1", empty), file("f", b"x"), folder("g", tree(file("z.txt", b"z"))),
             folder("keep", empty), folder("sw", empty))  # fmt: skip
    b = tree(folder("e2", empty), file("f", b"x"), folder("g", empty), folder("keep", empty),
             folder("n", empty), file("sw", b"now a file"))  # fmt: skip
    got = [(c.status, c.path, c.old_path, c.kind) for c in diff_trees(handle.history, a, b)]
    store.close()
    assert got == [  # empty directories look alike: never a rename
        ("removed", b"e1", None, "dir"),
        ("added", b"e2", None, "dir"),
        ("removed", b"g/z.txt", None, "file"),
        ("added", b"n", None, "dir"),
        ("removed", b"sw", None, "dir"),
        ("added", b"sw", None, "file"),
    ]


def test_diff_names_a_change_of_permission_bits(repo: Repo) -> None:
    """`chmod +x` alone showed as "modified: d/run.sh (3 B -> 3 B)", as if the bytes had
    changed, with no word of the mode; the mode is named, in the JSON too."""
    repo.write("d/run.sh", "hi\n")
    repo.write("d/data.txt", "abc")
    (repo.root / "d/run.sh").chmod(0o644)
    (repo.root / "d/data.txt").chmod(0o644)
    repo.ok("add", "d")
    repo.ok("commit", "-m", "one")
    (repo.root / "d/run.sh").chmod(0o755)
    repo.write("d/data.txt", "abcdef")
    (repo.root / "d/data.txt").chmod(0o600)
    lines = repo.ok("diff").out.splitlines()
    assert lines == [
        "modified: d/data.txt (3 B -> 6 B, mode 644 -> 600)",
        "modified: d/run.sh (mode 644 -> 755)",
        "0 added, 0 removed, 2 modified, 0 renamed (+6 B, -3 B)",  # run.sh: no byte
    ]
    repo.ok("add", "d")
    assert "  modified: d/run.sh (mode 644 -> 755)" in repo.ok("status").out.splitlines()
    repo.ok("commit", "-m", "two")
    got = {c["path"]: c for c in repo.json("diff", "v1", "v2", "--json")["changes"]}
    assert got["d/run.sh"] == {
        "status": "modified", "path": "d/run.sh", "kind": "file", "old_size": 3,
        "new_size": 3, "old_mode": "0o644", "new_mode": "0o755",
    }  # fmt: skip
    assert (got["d/data.txt"]["old_mode"], got["d/data.txt"]["new_mode"]) == ("0o644", "0o600")
    assert repo.ok("diff", "v1", "v2").out.splitlines()[1] == "modified: d/run.sh (mode 644 -> 755)"
    # A rename that changes the bits says so too; one that does not, as before.
    repo.ok("mv", "d/run.sh", "d/go.sh")
    (repo.root / "d/go.sh").chmod(0o700)
    repo.ok("mv", "d/data.txt", "d/data2.txt")
    repo.ok("add", "d")
    lines = repo.ok("diff").out.splitlines()
    assert "renamed:  d/run.sh -> d/go.sh (mode 755 -> 700)" in lines
    assert "renamed:  d/data.txt -> d/data2.txt" in lines


def test_a_file_that_became_a_link_is_named_so_not_as_a_mode_change(repo: Repo) -> None:
    """A file replaced by a link showed as "modified: a (2 B -> 1 B, mode 644 -> 777)":
    no word that it was a link now, and a mode a link does not have."""
    repo.write("a", "a\n")
    repo.write("b", "b\n")
    (repo.root / "a").chmod(0o644)
    repo.ok("add", ".")
    repo.ok("commit", "-m", "one")
    (repo.root / "a").unlink()
    (repo.root / "a").symlink_to("b")
    assert repo.ok("diff").out.splitlines()[0] == "modified: a (file -> link, 2 B -> 1 B)"
    repo.ok("add", "a")
    assert "  modified: a (file -> link, 2 B -> 1 B)" in repo.ok("status").out.splitlines()
    repo.ok("commit", "-m", "two")
    assert repo.json("diff", "v1", "v2", "--json")["changes"] == [
        {"status": "modified", "path": "a", "kind": "link", "old_size": 2, "new_size": 1,
         "old_kind": "file"},
    ]  # fmt: skip
    back = repo.ok("diff", "v2", "v1").out.splitlines()[0]
    assert back == "modified: a (link -> file, 1 B -> 2 B)"
    repo.fsck_clean()


def test_a_link_added_removed_or_retargeted_is_named_a_link(repo: Repo) -> None:
    """A link pointed elsewhere showed as "modified: l (1 B -> 2 B)", and one added as
    "added: m (1 B)": read as a file's bytes, with no word that it was a link."""
    repo.write("a", "a\n")
    (repo.root / "l").symlink_to("a")
    repo.ok("add", ".")
    repo.ok("commit", "-m", "one")
    (repo.root / "l").unlink()
    (repo.root / "l").symlink_to("aa")
    (repo.root / "m").symlink_to("a")
    repo.ok("add", ".")
    lines = repo.ok("status").out.splitlines()
    assert "  modified: l (link, 1 B -> 2 B)" in lines and "  added:    m (link, 1 B)" in lines
    repo.ok("commit", "-m", "two")
    assert repo.ok("diff", "v2", "v1").out.splitlines()[:2] == [
        "modified: l (link, 2 B -> 1 B)", "removed:  m (link, 1 B)",
    ]  # fmt: skip
    repo.fsck_clean()


def test_diff_added_removed_modified_renamed(repo: Repo) -> None:
    repo.write("d/keep.txt", "k")
    repo.write("d/mod.txt", "old")
    repo.write("d/gone.txt", "bye")
    moved = rand(5000)
    repo.write("d/old_name.bin", moved)
    repo.ok("add", "d")
    repo.ok("commit", "-m", "first")

    repo.write("d/mod.txt", "new content")
    (repo.root / "d" / "gone.txt").unlink()
    (repo.root / "d" / "old_name.bin").rename(repo.root / "d" / "new_name.bin")
    repo.write("d/added.txt", "a")
    expected = {
        "d/added.txt": ("added", None),
        "d/gone.txt": ("removed", None),
        "d/mod.txt": ("modified", None),
        "d/new_name.bin": ("renamed", "d/old_name.bin"),
    }
    # HEAD against the tracked files of the working tree (untracked ones are not data yet)
    assert changes(repo.json("diff", "--json")) == {
        "d/gone.txt": ("removed", None),
        "d/mod.txt": ("modified", None),
        "d/old_name.bin": ("removed", None),
    }
    repo.ok("add", "d")
    assert changes(repo.json("diff", "--json")) == expected  # staged additions count
    repo.ok("commit", "-m", "second")

    full = repo.json("diff", "v1", "v2", "--json")
    assert changes(full) == expected
    assert full["summary"] == {
        "added": 1, "removed": 1, "modified": 1, "renamed": 1,
        "bytes_added": 1 + len("new content"), "bytes_removed": 3 + 3, "parameters": 0,
    }  # fmt: skip
    stat = repo.json("diff", "v1", "v2", "--stat", "--json")
    assert stat == {"summary": full["summary"], "changes": [], "parameters": []}
    assert repo.ok("diff", "v1", "v2", "--stat").out.splitlines() == [
        "1 added, 1 removed, 1 modified, 1 renamed (+12 B, -6 B)"
    ]
    lines = repo.ok("diff", "v1", "v2").out.splitlines()
    assert "renamed:  d/old_name.bin -> d/new_name.bin" in lines
    assert any(ln.startswith("modified: d/mod.txt") for ln in lines)
    assert any(ln.startswith("added:    d/added.txt") for ln in lines)
    assert any(ln.startswith("removed:  d/gone.txt") for ln in lines)

    assert changes(repo.json("diff", "v1", "--json")) == expected  # v1 against the working tree
    assert repo.json("diff", "--json")["changes"] == []
    reverse = changes(repo.json("diff", "v2", "v1", "--json"))
    assert reverse["d/added.txt"] == ("removed", None)
    assert reverse["d/gone.txt"] == ("added", None)
    assert reverse["d/old_name.bin"] == ("renamed", "d/new_name.bin")
    repo.fail("diff", "v1", "v2", "v1", fragments=("at most two",))
    repo.fsck_clean()


# ---------------------------------------------------------------- checkout / branch / switch / tag


def test_checkout_a_version_and_single_paths(repo: Repo) -> None:
    repo.write("d/a.txt", "a1")
    repo.write("d/b.txt", "b1")
    tool = repo.write("d/run.sh", "#!/bin/sh\n")
    tool.chmod(0o755)
    repo.ok("add", "d")
    v1 = repo.commit("first")
    repo.write("d/a.txt", "a2")
    (repo.root / "d" / "b.txt").unlink()
    repo.write("d/c.txt", "c2")
    repo.ok("add", "d")
    repo.commit("second")
    assert not (repo.root / "dvfs.lock").exists()  # written only inside a git work tree

    r = repo.ok("checkout", "v1")
    assert "v1 (detached)" in r.out
    assert repo.read("d/a.txt") == b"a1" and repo.read("d/b.txt") == b"b1"
    assert not (repo.root / "d" / "c.txt").exists()
    assert (repo.root / "d" / "run.sh").stat().st_mode & 0o777 == 0o755
    st = repo.status()
    assert st["detached"] == "v1" and st["head"] == "v1"
    assert st["staged"] == [] and st["modified"] == [] and st["untracked"] == []
    assert repo.show("HEAD")["id"] == v1
    repo.fail("commit", "-m", "on a detached head", fragments=("detached",))

    r = repo.ok("checkout", "main")
    assert "on branch main" in r.out
    assert repo.read("d/a.txt") == b"a2" and repo.read("d/c.txt") == b"c2"
    assert not (repo.root / "d" / "b.txt").exists()
    st = repo.status()
    assert st["branch"] == "main" and st["detached"] is None and st["head"] == "v2"

    # One path from an older version: HEAD stays, the path is restored and staged.
    repo.ok("checkout", "v1", "d/a.txt")
    assert repo.read("d/a.txt") == b"a1" and repo.read("d/c.txt") == b"c2"
    st = repo.status()
    assert st["detached"] is None and st["head"] == "v2"
    assert [(c["status"], c["path"]) for c in st["staged"]] == [("modified", "d/a.txt")]
    assert st["modified"] == []
    repo.ok("checkout", "--force", "HEAD", "d/a.txt")  # staged: only --force discards it
    assert repo.read("d/a.txt") == b"a2"
    st = repo.status()
    assert st["staged"] == [] and st["modified"] == []

    # A deleted path comes back from a version that has it.
    repo.ok("checkout", "v1", "d/b.txt")
    assert repo.read("d/b.txt") == b"b1"
    repo.fail("checkout", "v1", "d/nothing.txt", fragments=("d/nothing.txt",))
    repo.ok("checkout", "--force", "main")
    assert not (repo.root / "d" / "b.txt").exists()
    st = repo.status()
    assert st["staged"] == [] and st["modified"] == [] and st["untracked"] == []
    repo.fsck_clean()


def test_branch_and_switch(repo: Repo) -> None:
    repo.write("d/base.txt", "base")
    repo.ok("add", "d")
    v1 = repo.commit("base")
    r = repo.ok("branch", "feature")
    assert r.out.startswith("branch feature at v1")
    listing = repo.ok("branch").out.splitlines()
    assert any(ln.startswith("* main") for ln in listing)
    assert any(ln.startswith("  feature  v1") for ln in listing)

    repo.ok("switch", "feature")
    assert repo.status()["branch"] == "feature"
    repo.write("d/feature.txt", "f")
    repo.ok("add", "d")
    r = repo.ok("commit", "-m", "on feature")
    assert r.out.startswith("v2 ")

    repo.ok("switch", "main")
    assert not (repo.root / "d" / "feature.txt").exists()
    st = repo.status()
    assert st["branch"] == "main" and st["head"] == "v1" and st["untracked"] == []
    assert [v["version"] for v in repo.json("log", "feature", "--json")] == ["v2", "v1"]
    assert repo.json("log", "--json")[0]["id"] == v1

    repo.ok("branch", "other", "v1")
    assert repo.show("other")["id"] == v1
    repo.ok("switch", "feature")
    assert repo.read("d/feature.txt") == b"f"
    deleted = repo.ok("branch", "-d", "other").out.strip()
    assert deleted == f"deleted branch other (was v1 {v1[:10]})"  # (its id: nothing is lost)
    assert "other" not in repo.ok("branch").out
    repo.fail("branch", "-d", "feature", fragments=("current branch",))
    repo.fail("switch", "nope", fragments=("no branch named nope",))
    repo.fail("branch", "main", fragments=("already exists",))
    repo.fail("branch", "v7", fragments=("v7",))
    repo.fsck_clean()


def test_switch_to_what_is_no_branch_suggests_a_command_that_does_what_was_meant(
    repo: Repo, tmp_path: Path
) -> None:
    """`dvfs switch v1` said "`dvfs branch v1`", which is refused (v1 reads as a
    version), and `dvfs switch TAG` "`dvfs branch TAG`", a branch at HEAD, not at the tag."""
    repo.write("d/a.txt", "a")
    repo.ok("add", "d")
    repo.commit("one")
    repo.ok("tag", "t1")
    repo.write("d/a.txt", "b")
    repo.commit("two", "-a")
    for rev in ("v1", "t1", "HEAD~1"):
        line = repo.fail("switch", rev, fragments=(f"no branch named {rev}: it names a version",))
        assert f"`dvfs checkout {rev}`" in line and f"`dvfs switch -c NAME {rev}`" in line
        assert "`dvfs branch" not in line
    line = repo.fail("switch", "nope", fragments=("no branch named nope (branches: main)",))
    assert line.endswith("`dvfs switch -c nope` makes it at HEAD")
    assert "`dvfs" not in repo.fail("switch", "a b")  # no name to suggest making
    # A remote's branch: make it here from the remote's.
    repo.ok("remote", "add", "origin", str(tmp_path / "remote"))
    repo.ok("push")
    repo.ok("switch", "-c", "side")
    repo.ok("branch", "-d", "main")
    line = repo.fail("switch", "main", fragments=("no branch named main",))
    assert "`dvfs switch -c main origin/main`" in line, line
    line = repo.fail("switch", "origin/main", fragments=("it is remote origin's branch main",))
    assert "`dvfs switch -c main origin/main`" in line, line
    repo.ok("switch", "-c", "main", "origin/main")
    assert repo.status()["branch"] == "main"


def test_tags(repo: Repo) -> None:
    repo.write("f.txt", "1")
    repo.ok("add", "f.txt")
    r = repo.ok("commit", "-m", "one", "--tag", "first")
    assert "(tag first)" in r.out
    v1 = repo.head_id()
    repo.write("f.txt", "2")
    repo.ok("add", "f.txt")
    v2 = repo.commit("two")
    assert repo.ok("tag", "second").out.startswith("tag second -> v2")
    repo.ok("tag", "early", "v1")
    listing = repo.ok("tag").out.splitlines()
    assert [ln.split()[:2] for ln in listing] == [["early", "v1"], ["first", "v1"],
                                                  ["second", "v2"]]  # fmt: skip
    assert repo.show("first")["id"] == v1 and repo.show("second")["id"] == v2
    repo.fail("tag", "second", fragments=("already exists",))
    deleted = repo.ok("tag", "--delete", "early").out
    assert deleted == f"deleted tag early (was v1 {v1[:10]})\n"
    assert "early" not in repo.ok("tag").out
    repo.fail("tag", "--delete", "early", fragments=("no tag named early",))
    repo.fail("tag", "HEAD", fragments=("HEAD",))
    repo.write("f.txt", "3")
    repo.ok("add", "f.txt")
    repo.fail("commit", "-m", "three", "--tag", "first", fragments=("tag first already exists",))
    assert repo.show()["id"] == v2  # the refused commit made nothing
    repo.fsck_clean()


# ---------------------------------------------------------------------------------------------- rm


def test_rm_and_rm_cached(repo: Repo) -> None:
    for name in "abcd":
        repo.write(f"d/{name}.txt", name)
    repo.ok("add", "d")
    repo.ok("commit", "-m", "four files")

    assert repo.ok("rm", "d/a.txt").out.strip() == "removed 1 file"
    assert not (repo.root / "d" / "a.txt").exists()
    assert repo.ok("rm", "--cached", "d/b.txt").out.strip() == "untracked 1 file"
    assert repo.read("d/b.txt") == b"b"
    st = repo.status()
    assert [(c["status"], c["path"]) for c in st["staged"]] == [
        ("removed", "d/a.txt"),
        ("removed", "d/b.txt"),
    ]
    assert st["untracked"] == ["d/b.txt"]

    repo.write("d/c.txt", "changed, not staged")
    line = repo.fail("rm", "d/c.txt", fragments=("rm would delete uncommitted changes in d/c.txt",))
    assert "nothing was removed" in line and "--cached" in line and "--force" in line, line
    assert repo.read("d/c.txt") == b"changed, not staged"
    repo.ok("rm", "--force", "d/c.txt")
    assert not (repo.root / "d" / "c.txt").exists()
    repo.fail("rm", "d/b.txt", fragments=("not tracked",))

    repo.ok("commit", "-m", "only d remains")
    assert set(repo.show()["files"]) == {"d/d.txt"}
    assert set(repo.show("v1")["files"]) == {"d/a.txt", "d/b.txt", "d/c.txt", "d/d.txt"}

    # a path named twice, or a file and its directory, is one path removed
    assert repo.json("rm", "--cached", "d/d.txt", "d", "d/d.txt", "--json") == {
        "untracked": ["d/d.txt"]
    }
    assert repo.read("d/d.txt") == b"d"
    repo.ok("add", "d/d.txt")
    assert repo.ok("rm", "d", "d/d.txt").out.strip() == "removed 1 file"
    repo.fsck_clean()


def test_status_lists_files_staged_for_removal_that_are_still_on_disk(repo: Repo) -> None:
    """`rm --cached` of a whole directory (or a top-level file) left status saying
    "removed" and nothing more: its files were listed nowhere, as if gone from disk."""
    repo.write("d/a.txt", "a")
    repo.write("d/e/b.txt", "b")
    repo.write("top.txt", "t")
    repo.write("keep/k.txt", "k")
    repo.ok("add", "d", "top.txt", "keep")
    repo.ok("commit", "-m", "one")
    repo.ok("rm", "--cached", "d", "top.txt")
    repo.write(".dvfsignore", "*.tmp\n")
    repo.write("d/x.tmp", "ignored")
    st = repo.status()
    assert [(c["status"], c["path"]) for c in st["staged"]] == [
        ("removed", "d/a.txt"),
        ("removed", "d/e/b.txt"),
        ("removed", "top.txt"),
    ]
    assert st["untracked"] == ["d/a.txt", "d/e/b.txt", "top.txt"]
    out = repo.ok("status").out
    assert "Untracked" in out and "  d/e/b.txt" in out and "  top.txt" in out, out
    (repo.root / "top.txt").unlink()  # deleted from disk too: removed, not untracked
    assert repo.status()["untracked"] == ["d/a.txt", "d/e/b.txt"]
    repo.ok("commit", "-m", "two")
    assert set(repo.show()["files"]) == {"keep/k.txt"}
    repo.fsck_clean()


def test_rm_refuses_to_delete_a_staged_change_that_no_version_holds(repo: Repo) -> None:
    """A file added (or changed and added) since HEAD was deleted by `dvfs rm` with its
    entry: no version held its bytes, and they were lost. git refuses too."""
    repo.write("d/a.txt", "a")
    repo.write("d/b.txt", "b")
    repo.ok("add", "d")
    repo.ok("commit", "-m", "one")
    repo.write("d/new.txt", "new, staged")
    repo.write("d/a.txt", "a, changed and staged")
    repo.ok("add", "d")
    for args in (("d/new.txt",), ("d/a.txt",), ("d",), (".",)):
        line = repo.fail("rm", *args, fragments=("rm would delete uncommitted changes in",))
        assert "nothing was removed" in line and "--cached" in line, line
    assert "d/a.txt, d/new.txt:" in repo.fail("rm", "d")
    assert repo.read("d/new.txt") == b"new, staged" and repo.read("d/a.txt").startswith(b"a, ")
    assert repo.status()["staged"] != [] and repo.read("d/b.txt") == b"b"
    assert repo.ok("rm", "d/b.txt").out.strip() == "removed 1 file"  # HEAD holds it
    assert repo.ok("rm", "--cached", "d/new.txt").out.strip() == "untracked 1 file"
    assert repo.read("d/new.txt") == b"new, staged"
    repo.ok("rm", "--force", "d/a.txt")
    assert not (repo.root / "d/a.txt").exists()
    repo.fsck_clean()


def test_add_where_files_and_directories_swapped_places(repo: Repo) -> None:
    """A tracked file that became a directory (two levels deep), and a tracked directory
    that became a file: one add stages the new paths and drops the old ones."""
    repo.write("x", "a file")
    repo.write("y/inner.txt", "in a directory")
    repo.write("keep/k.txt", "kept")
    repo.ok("add", ".")
    repo.commit("before")
    (repo.root / "x").unlink()
    for i in range(3):
        repo.write(f"x/deep/f{i}.txt", f"deep {i}")
    repo.write("x/top.txt", "top")
    (repo.root / "y" / "inner.txt").unlink()
    (repo.root / "y").rmdir()
    repo.write("y", "now a file")
    repo.ok("add", "x/deep", "x/top.txt", "y")  # (not "x": its old file is not under these)
    repo.commit("after")
    assert set(repo.show()["files"]) == {
        "keep/k.txt", "x/deep/f0.txt", "x/deep/f1.txt", "x/deep/f2.txt", "x/top.txt", "y",
    }  # fmt: skip
    st = repo.status()
    assert st["modified"] == [] and st["deleted"] == [] and st["staged"] == []
    assert st["untracked"] == []
    repo.fsck_clean()


def test_status_of_a_tracked_file_or_link_at_the_root_that_became_a_directory(repo: Repo) -> None:
    """It is deleted, as one a level down is: status said "could not be read: state
    unknown", with a warning that it "changed type while it was read"."""
    repo.write("f.txt", "a file")
    os.symlink("f.txt", repo.root / "link")
    repo.write("d/g.txt", "below")
    repo.ok("add", ".")
    repo.commit("v1")
    for rel in ("f.txt", "link", "d/g.txt"):
        (repo.root / rel).unlink()
        repo.write(f"{rel}/inner", "now a directory")
    r = repo.ok("status")
    assert "changed type" not in r.err and "unknown" not in r.out
    st = repo.status()
    assert st["deleted"] == ["d/g.txt", "f.txt", "link"] and st["unreadable"] == []
    assert st["untracked"] == ["d/g.txt/inner"]  # (in a tracked directory: listed)
    repo.ok("add", ".")
    repo.commit("v2")
    assert set(repo.show()["files"]) == {"f.txt/inner", "link/inner", "d/g.txt/inner"}
    st = repo.status()
    assert st["deleted"] == st["modified"] == st["untracked"] == st["unreadable"] == []
    repo.fsck_clean()


def test_commit_a_records_a_file_now_a_directory_as_deleted_not_what_it_holds(
    repo: Repo,
) -> None:
    """`dvfs commit -am` with a tracked file replaced by a directory committed the
    files in that directory, untracked, which status had not listed and `-a` says it
    leaves alone. It records the file's removal; the directory's files stay untracked."""
    repo.write("f.txt", "a file")
    repo.write("d/g.txt", "below")
    repo.write("d/keep.txt", "kept")
    repo.ok("add", ".")
    repo.commit("v1")
    for rel in ("f.txt", "d/g.txt"):
        (repo.root / rel).unlink()
        repo.write(f"{rel}/inner", "untracked")
    repo.ok("commit", "-am", "v2")
    assert set(repo.show()["files"]) == {"d/keep.txt"}
    st = repo.status()
    assert st["untracked"] == ["d/g.txt/inner"] and st["staged"] == st["deleted"] == []
    repo.fsck_clean()


# -------------------------------------------------------------------------------------- parameters


def test_params_and_params_file(repo: Repo) -> None:
    repo.write("data.csv", "1")
    repo.ok("add", "data.csv")
    params = repo.write(
        "params.yaml",
        "epochs: 10\nmodel:\n  name: resnet\n  layers: [18, 34]\nstart: 2024-01-31\n",
    )
    repo.ok(
        "commit", "-m", "with params", "--params-file", str(params),
        "--param", "lr=0.01", "--param", "name=exp one", "--param", "shuffle=true",
        "--param", "epochs=20",
    )  # fmt: skip
    y = yaml.safe_load(repo.ok("show", "--format", "yaml").out)
    assert y["parameters"] == {
        "epochs": 20,  # --param wins over the file
        "lr": 0.01,
        "model": {"layers": [18, 34], "name": "resnet"},
        "name": "exp one",
        "shuffle": True,
        "start": "2024-01-31",
    }
    repo.write("data.csv", "2")
    repo.ok("add", "data.csv")
    repo.fail("commit", "-m", "bad", "--param", "novalue", fragments=("novalue",), code=2)
    repo.write("list.yaml", "- 1\n- 2\n")
    repo.fail("commit", "-m", "bad", "--params-file", "list.yaml", fragments=("mapping",))
    repo.write("broken.yaml", "a: [1\n")
    repo.fail("commit", "-m", "bad", "--params-file", "broken.yaml", fragments=("not valid YAML",))
    assert repo.show()["version"] == "v1"
    repo.fsck_clean()


def test_params_are_typed_as_yaml_12(repo: Repo) -> None:
    repo.write("data.csv", "1")
    repo.ok("add", "data.csv")
    repo.write("params.yaml", "lr: 1e-3\nflag: on\nlayers: 010\nwhen: 2024-01-31\nwd: 5e-5\n")
    repo.ok(
        "commit", "-m", "typed", "--params-file", "params.yaml", "--param", "wd=3e-4",
        "--param", "opt=yes", "--param", "sizes=[1, 2]", "--param", "net={depth: 18}",
        "--param", "note=a: b",
    )  # fmt: skip
    wanted = {
        "lr": 0.001, "flag": "on", "layers": 10, "when": "2024-01-31", "wd": 0.0003,
        "opt": "yes", "sizes": [1, 2], "net": {"depth": 18}, "note": "a: b",
    }  # fmt: skip
    assert repo.show()["parameters"] == wanted
    # YAML output reads back the same with a YAML 1.1 reader (strings such as "on" quoted)
    assert yaml.safe_load(repo.ok("show", "--format", "yaml").out)["parameters"] == wanted
    text = repo.ok("show").out
    assert "param    wd = 0.0003" in text and "param    opt = yes" in text
    repo.write("data.csv", "2")
    repo.ok("add", "data.csv")
    repo.write("twice.yaml", "lr: 0.1\nlr: 0.2\n")
    line = repo.fail("commit", "-m", "bad", "--params-file", "twice.yaml", code=2)
    assert "found the key lr twice (line 2, column 1)" in line and "\\n" not in line
    # one dotted name twice: show listed net.depth twice, compare one of the two values
    repo.fail(
        "commit", "-m", "bad", "--params-file", "params.yaml", "--param", "net={depth: 18}",
        "--param", "net.depth=34", fragments=("net.depth is given twice", "give it once"),
    )  # fmt: skip
    assert repo.show()["version"] == "v1"
    repo.fsck_clean()


def test_a_toml_params_file_is_read_as_toml(repo: Repo) -> None:
    # read as YAML: "config.toml is not valid YAML: did not find expected <document
    # start>", or "must hold a mapping" for `lr = 0.1`, while a stage reads it as TOML
    repo.write("data.csv", "1")
    repo.ok("add", "data.csv")
    repo.write("config.toml", 'seed = 7\n[train]\nlr = 0.1\nwhen = 2024-01-31\nname = "a"\n')
    repo.ok("commit", "-m", "toml", "--params-file", "config.toml", "--param", "seed=8")
    assert repo.show()["parameters"] == {
        "seed": 8, "train": {"lr": 0.1, "name": "a", "when": "2024-01-31"},
    }  # fmt: skip
    repo.write("data.csv", "2")
    repo.ok("add", "data.csv")
    repo.write("twice.toml", "a = 1\na = 2\n")
    repo.fail(
        "commit", "-m", "bad", "--params-file", "twice.toml", code=2,
        fragments=("twice.toml is not valid TOML: Cannot overwrite a value (at line 2",),
    )  # fmt: skip
    assert repo.show()["version"] == "v1"
    repo.fsck_clean()


# --------------------------------------------------------------------------------------- revisions


def test_every_revision_form(repo: Repo) -> None:
    for i in range(1, 4):
        commit_files(repo, {"f.txt": f"content {i}"}, f"version {i}")
    v3, v2, v1 = (v["id"] for v in repo.json("log", "--json"))
    repo.ok("tag", "t1", "v1")
    repo.ok("branch", "side", "v2")
    prefix = next(
        v2[:n] for n in range(4, 65) if not any(o[:n] == v2[:n] for o in (v1, v3))
    )  # the shortest unique prefix of at least 4 hex digits
    forms = {
        "v1": v1, "t1": v1, "side": v2, "HEAD": v3, "HEAD~": v2, "HEAD~2": v1, "side~1": v1,
        prefix: v2, v3: v3, v1[:12].upper(): v1,
    }  # fmt: skip
    for rev, expected in forms.items():
        assert repo.show(rev)["id"] == expected, rev

    # The same forms work in every command that takes a revision.
    assert repo.cat("t1:f.txt") == b"content 1"
    assert repo.cat("HEAD~1:f.txt") == b"content 2"
    assert repo.cat(f"{prefix}:f.txt") == b"content 2"
    assert [e["name"] for e in repo.json("ls", "side", "--json")] == ["f.txt"]
    assert changes(repo.json("diff", "t1", "HEAD~1", "--json")) == {"f.txt": ("modified", None)}
    assert [v["version"] for v in repo.json("log", "side", "--json")] == ["v2", "v1"]
    repo.ok("checkout", "HEAD~2")
    assert repo.read("f.txt") == b"content 1"
    assert repo.status()["detached"] == "v1"
    assert repo.show("v3")["id"] == v3  # vN counts along the branch HEAD came from
    repo.ok("checkout", "main")
    assert repo.read("f.txt") == b"content 3"
    repo.fsck_clean()


def test_a_revision_is_read_as_typed(repo: Repo) -> None:
    """Spaces, a newline or digits of another script make no name of a version: they
    used to be dropped or read as figures, so a script's " v1" or "v\u0661" showed v1."""
    repo.write("f.txt", "one")
    repo.ok("add", "f.txt")
    repo.ok("commit", "-m", "one")
    for rev in (" v1", "v1 ", "v1\n", "HEAD ", "v\u0661", "HEAD~\u0661", "main^\u0660"):
        line = repo.fail("show", rev, code=2, fragments=("unknown revision",))
        assert "did you mean" in line, (rev, line)
    assert repo.show("HEAD~0")["version"] == repo.show("v1")["version"] == "v1"
    repo.fsck_clean()


# ----------------------------------------------------------------------------------- deduplication


def test_identical_files_are_stored_once(repo: Repo) -> None:
    content = rand(200 * KiB)  # one chunk, incompressible
    before = repo.objects_size()
    for rel in ("a/1.bin", "a/2.bin", "b/3.bin"):
        repo.write(rel, content)
    repo.ok("add", "a", "b")
    grown = repo.objects_size() - before
    assert len(content) <= grown < len(content) + 16 * KiB, grown
    repo.ok("commit", "-m", "three copies")

    before = repo.objects_size()
    repo.write("c/4.bin", content)
    repo.ok("add", "c")
    repo.ok("commit", "-m", "a fourth copy")
    assert repo.objects_size() - before < 16 * KiB  # trees and a version, no data
    files = repo.show()["files"]
    assert {files[p]["hash"] for p in files} == {digest(content)}
    assert repo.cat("HEAD:c/4.bin") == content
    repo.fsck_clean()


def test_unchanged_chunks_of_a_big_file_are_stored_once(repo: Repo) -> None:
    big = rand(6 * MiB, seed=7)  # several chunks (min 256 KiB, avg 1 MiB, max 4 MiB)
    repo.write("big.bin", big)
    repo.ok("add", "big.bin")
    repo.ok("commit", "-m", "big")
    first = repo.objects_size()
    assert first >= len(big)

    edited = big[:-100] + bytes(100)  # change the last 100 bytes
    repo.write("big.bin", edited)
    repo.ok("add", "big.bin")
    repo.ok("commit", "-m", "edited tail")
    grown = repo.objects_size() - first
    assert grown <= 4 * MiB + 16 * KiB, grown  # at most one (maximal) chunk is new
    assert grown < len(big) // 2, grown
    assert repo.cat("v1:big.bin") == big
    assert repo.cat("v2:big.bin") == edited
    repo.fsck_clean()


def test_large_files_added_together_read_back(repo: Repo) -> None:
    """Several large files in one add: the raw chunks are written to the pack from the
    blocks the files are read into (reused from one file to the next), a compressible
    file's chunks are compressed; every byte reads back and the store checks clean."""
    first, second = rand(21 * MiB + 4321, seed=31), rand(9 * MiB + 1, seed=32)
    text = b"".join(b"%d,%d\n" % (i, i * i) for i in range(800_000))  # about 10 MiB
    repo.write("a.bin", first)
    repo.write("b.bin", second)
    repo.write("c.csv", text)
    repo.ok("add", "a.bin", "b.bin", "c.csv")
    repo.ok("commit", "-m", "large")
    assert repo.objects_size() < len(first) + len(second) + len(text) // 2  # c.csv shrank
    assert repo.cat("v1:a.bin") == first
    assert repo.cat("v1:b.bin") == second
    assert repo.cat("v1:c.csv") == text
    files = repo.show()["files"]
    assert files["a.bin"]["hash"] == digest(first)  # the file's BLAKE3, as b3sum says
    assert files["b.bin"]["hash"] == digest(second)
    assert files["c.csv"]["hash"] == digest(text)
    repo.fsck_clean()


LET_GO = """
import json, sys
from pathlib import Path
from vfs.ops import workflow
from vfs.repo.repository import Repository
from vfs.worktree.pools import Workers

loads, real_index = [], Repository.index

def index(self, rebuild=False):
    loads.append(1)
    return real_index(self, rebuild)

Repository.index = index
workflow.LET_GO_BYTES = 1  # (every add lets go of the index while it hashes)
handle = Repository.find(Path(sys.argv[1]))
with Workers() as workers:
    report = workflow.add(handle, [str(handle.root / "data")], workers)
handle.store.close()
print(json.dumps({"loads": len(loads), "files": report.files, "removed": report.removed}))
"""


def test_an_add_that_lets_go_of_the_index_while_hashing_stages_what_one_that_keeps_it_does(
    repo: Repo,
) -> None:
    """Hashing large files, add frees the index and reads it again after (the memory
    goes to the blocks the files are read into): files changed, added and deleted are
    staged exactly as otherwise, and what is ignored stays out."""
    repo.write("data/keep.txt", b"kept\n")
    repo.write("data/gone.txt", b"to be deleted\n")
    repo.write("data/big.bin", rand(2 * MiB, seed=41))
    repo.write(".dvfsignore", b"*.tmp\n")
    repo.ok("add", "data", ".dvfsignore")
    repo.commit("before")
    big = rand(3 * MiB + 5, seed=42)
    repo.write("data/big.bin", big)
    repo.write("data/new/more.bin", rand(MiB, seed=43))
    repo.write("data/scratch.tmp", b"ignored\n")
    (repo.root / "data/gone.txt").unlink()
    got = json.loads(run_python(LET_GO, str(repo.root)))
    assert got == {"loads": 2, "files": 3, "removed": 1}
    staged = {c["path"]: c["status"] for c in repo.status()["staged"]}
    assert staged == {
        "data/big.bin": "modified", "data/new/more.bin": "added", "data/gone.txt": "removed",
    }  # fmt: skip
    repo.commit("after")
    assert repo.cat("HEAD:data/big.bin") == big
    assert repo.cat("HEAD:data/keep.txt") == b"kept\n"
    assert "data/scratch.tmp" not in repo.show()["files"]
    assert repo.status()["staged"] == [] and repo.status()["untracked"] == []
    repo.fsck_clean()


ADD_SPLIT = """
import json, os, sys
from pathlib import Path
from vfs._os.helper_process import Helper
from vfs.errors import FileChanged
from vfs.ops.workflow import add
from vfs.repo.repository import Repository
from vfs.worktree import ingest
from vfs.worktree.pools import Workers

how = sys.argv[2]
parent, forked = os.getpid(), []
told_r, told_w = os.pipe()
real_start, real_share, real_stage_one = Helper.start, ingest._hash_share, ingest.Hasher.stage_one

def start(work):
    helper = real_start(work)
    forked.append(helper is not None)
    if helper is not None:  # (this process claims nothing before the helper has)
        os.read(told_r, 1)
    return helper

def share(channel, hasher, tickets, *rest):
    real_claim, claims = tickets.claim, []

    def claim():
        claims.append(real_claim())
        if len(claims) == 2:
            os.write(told_w, b"x")
        if how == "dies" and len(claims) == 4:  # three claims hashed, the fourth lost
            raise RuntimeError("the helper broke")
        return claims[-1]

    tickets.claim = claim
    real_share(channel, hasher, tickets, *rest)

def stage_one(self, found, *rest):
    if how == "refuses" and os.getpid() != parent and found.rel.endswith(b"3.txt"):
        os.write(1, b"r")  # (a file the helper finds changing: this process reads it)
        raise FileChanged("changed")
    return real_stage_one(self, found, *rest)

real_stage_batch = ingest.Hasher.stage_batch

def stage_batch(self, batch, failed=None):
    if how == "refuses" and os.getpid() != parent:  # (the lstat the scan took of these
        # is no longer what the helper finds: each is read the careful way, stage_one)
        batch = [
            f._replace(st=os.stat_result(tuple(f.st[:7]) + (0, 0, 0)))
            if f.rel.endswith(b"3.txt") else f
            for f in batch
        ]
    return real_stage_batch(self, batch, failed)

Helper.start = start
ingest._hash_share = share
ingest.Hasher.stage_one = stage_one
ingest.Hasher.stage_batch = stage_batch
ingest.spare_cpus = (lambda limit: 0) if how == "alone" else (lambda limit: 1)
handle = Repository.find(Path(sys.argv[1]))
with Workers() as workers:
    report = add(handle, [str(handle.root / "data")], workers)
handle.store.close()
print(json.dumps({"forked": forked, "files": report.files, "read": report.bytes_read}))
"""


def head_tree(repo: Repo) -> bytes:
    """The id of the root tree of the repository's HEAD version."""
    return Repository(repo.root).history.version(bytes.fromhex(repo.head_id())).tree


SMALL_FILES_TIME = 1_700_000_000 * 10**9  # every file's and link's mtime (ns): trees record it


def _many_small_to_add(repo: Repo) -> dict[str, bytes]:
    """More small files than one process hashes alone (a helper takes a share): some
    alike, an empty one, links, and a large file among them; each with the same
    modification time, so that any repository holding them makes the same tree."""
    from vfs.worktree.ingest import HASH_SPLIT

    files = {
        f"data/d{i % 13:02}/f{i:05}.txt": (
            b"same in many directories\n" if i % 50 == 0 else rand(100 + i % 3000, seed=i)
        )
        for i in range(HASH_SPLIT + 300)
    }
    files["data/empty.txt"] = b""
    files["data/big.bin"] = rand(3 * MiB + 17, seed=99)
    for rel, data in files.items():
        os.utime(repo.write(rel, data), ns=(SMALL_FILES_TIME, SMALL_FILES_TIME))
    os.symlink("f00001.txt", repo.root / "data/d01/link")
    os.symlink("../nowhere", repo.root / "data/d02/dangling")
    for link in ("data/d01/link", "data/d02/dangling"):
        os.utime(repo.root / link, ns=(SMALL_FILES_TIME,) * 2, follow_symlinks=False)
    return files


def _added_apart(repo: Repo, how: str) -> dict[str, Any]:
    """Add ``data`` the way ``how`` says (see ADD_SPLIT), commit; what the add said."""
    out = run_python(ADD_SPLIT, str(repo.root), how)
    got: dict[str, Any] = json.loads(out[out.index("{") :])
    got["refused"] = out[: out.index("{")].count("r")  # by the helper (see ADD_SPLIT)
    repo.commit(how)
    return got


@pytest.fixture(scope="module")
def added_alone(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """The files of :func:`_many_small_to_add` added by one process alone and
    committed: the tree each split add must make. Read only, shared by the tests."""
    alone = init_repo(tmp_path_factory.mktemp("alone") / "repo")
    _many_small_to_add(alone)
    assert _added_apart(alone, "alone")["forked"] == []
    return alone


def test_many_small_files_hashed_by_two_processes_make_the_same_trees(
    make_repo: RepoFactory, added_alone: Repo
) -> None:
    """Past HASH_SPLIT small files a forked helper hashes a share of them into packs of
    its own: the version is the one a single process makes, every file reads back and
    the store checks clean."""
    split = make_repo("split")
    files = _many_small_to_add(split)
    got = _added_apart(split, "split")
    assert got["forked"] == [True], "the split was not exercised"
    assert got["files"] == len(files) + 2
    assert got["read"] == sum(len(d) for d in files.values())  # (links are not read)
    assert head_tree(split) == head_tree(added_alone)
    for rel, data in list(files.items())[::97]:
        assert split.cat(f"HEAD:{rel}") == data
    assert split.status()["staged"] == []
    split.fsck_clean()
    added_alone.fsck_clean()


def test_a_small_file_helper_that_dies_leaves_its_files_to_the_parent(
    make_repo: RepoFactory, added_alone: Repo
) -> None:
    """A helper that fails after hashing and storing some batches reports nothing:
    this process hashes all it claimed again, the version is whole, and the pack the
    helper was writing is gone."""
    split = make_repo("split")
    files = _many_small_to_add(split)
    got = _added_apart(split, "dies")
    assert got["forked"] == [True], "the split was not exercised"
    assert got["files"] == len(files) + 2
    assert head_tree(split) == head_tree(added_alone)
    objects = split.root / ".dvfs" / "objects"
    assert [p.name for p in objects.iterdir() if p.name.startswith(".tmp")] == []
    for rel, data in list(files.items())[::89]:
        assert split.cat(f"HEAD:{rel}") == data
    split.fsck_clean()


def test_files_a_small_file_helper_cannot_read_are_hashed_by_the_parent(
    make_repo: RepoFactory, added_alone: Repo
) -> None:
    """A file the helper finds changing is left to this process, which reads it (and
    would give the error itself): every file is staged, as one process would."""
    split = make_repo("split")
    files = _many_small_to_add(split)
    got = _added_apart(split, "refuses")
    assert got["forked"] == [True] and got["refused"] > 0, f"the split was not exercised: {got}"
    assert got["files"] == len(files) + 2
    assert got["read"] == sum(len(d) for d in files.values())
    assert head_tree(split) == head_tree(added_alone)
    assert split.status()["staged"] == []
    split.fsck_clean()


def test_names_of_the_longest_length_round_trip(repo: Repo) -> None:
    """A 255-byte name (NAME_MAX) is restored, though its temporary name must be shorter."""
    names = ["n" * 255, "d/" + "\u00e9" * 127 + "x"]  # 255 bytes each; the second in UTF-8
    for i, name in enumerate(names):
        repo.write(name, f"long {i}")
    repo.ok("add", ".")
    repo.commit("long names")
    for name in names:
        (repo.root / name).unlink()
    repo.ok("checkout", "HEAD")
    for i, name in enumerate(names):
        assert repo.read(name) == f"long {i}".encode()
    st = repo.status()
    assert st["modified"] == [] and st["deleted"] == [] and st["untracked"] == []
    repo.fsck_clean()


def _big_tree(repo: Repo) -> list[str]:
    """More tracked files than one process sorts alone (vfs.worktree.status), two levels deep."""
    from vfs.worktree.status import SPLIT_ABOVE

    names = [f"data/p{i % 7}/q{i % 41:02}/f{i:05}.txt" for i in range(SPLIT_ABOVE + 200)]
    for name in names:
        repo.write(name, name)
    repo.write("top.txt", "top")
    repo.ok("add", "data", "top.txt")
    repo.commit("many files")
    return names


def test_status_of_a_large_tree_split_across_processes(repo: Repo) -> None:
    """Changes in every part of a large tree are found, whichever process scans it."""
    names = _big_tree(repo)
    r = repo.ok("status", "--json", env={"PYTHONPROFILEIMPORTTIME": "1"})
    assert json.loads(r.out)["modified"] == []  # nothing changed: nothing listed
    # its helper only reads: not tied to it by prctl, which cost it 3 ms (ctypes)
    assert not [line for line in r.err.splitlines() if line.endswith(" ctypes")]
    modified, deleted = names[5::900], names[7::900]  # spread over many directories
    for name in modified:
        repo.write(name, "changed " + name)
    for name in deleted:
        (repo.root / name).unlink()
    untracked = [f"data/p{i}/q{i:02}/new.txt" for i in range(0, 7, 2)]
    for name in untracked:
        repo.write(name, "new")
    os.mkfifo(repo.root / "data" / "p3" / "q03" / "fifo")
    # a name dvfs never stores, ignored by a rule: passed over without a word
    repo.write("data/.dvfsignore", ".DVFS\n")
    repo.ok("add", "data/.dvfsignore")
    for i in range(7):
        repo.write(f"data/p{i}/q{i + 9:02}/.DVFS", "ignored")
    r = repo.ok("status", "--json")
    st = json.loads(r.out)
    assert st["modified"] == sorted(modified)
    assert st["deleted"] == sorted(deleted)
    assert st["untracked"] == sorted(untracked)
    assert "data/p3/q03/fifo" in r.err and "skipping" in r.err  # warned once, by whoever saw it
    assert r.err.count("skipping") == 1


STATUS_HELPER_DIES = """
import json, os, sys
from pathlib import Path
from vfs.worktree import status as triage
from vfs.repo.repository import Repository
from vfs.ops.status import work_state
from vfs.worktree.pools import Workers

told_r, told_w = os.pipe()

def broken(root, dirs, tickets, index, channel, *rest):
    # Claims directories, says how many, and dies without a word on them.
    n = sum(len(tickets.claim() or ()) for _ in range(3))
    os.write(told_w, bytes([n]))
    raise RuntimeError("the helper broke")

started = []
real_start = triage._Helper.start

def start(*args):
    helper = real_start(*args)
    started.append(0 if helper is None else helper.process.pid)
    if helper is not None:  # (this process claims nothing before the helper has)
        started.append(os.read(told_r, 1)[0])
    return helper

triage._serve = broken
triage._helpers_for = lambda index: 1
triage._Helper.start = start
handle = Repository.find(Path(sys.argv[1]))
with Workers() as workers:
    st = work_state(handle, handle.index(), workers)
print(json.dumps({"started": started, "modified": [p.decode() for p in st.modified],
                  "deleted": [p.decode() for p in st.deleted],
                  "untracked": [p.decode() for p in st.untracked]}))
"""


def test_a_failed_status_helper_is_replaced_by_a_scan_here(repo: Repo) -> None:
    """A helper process that dies after claiming directories leaves them to this
    process: the result is whole."""
    names = _big_tree(repo)
    for name in names[::1000]:
        repo.write(name, "changed " + name)
    (repo.root / names[1]).unlink()
    got = json.loads(run_python(STATUS_HELPER_DIES, str(repo.root)))
    assert len(got["started"]) == 2 and all(got["started"]), "the split was not exercised"
    assert got["modified"] == sorted(n for n in names[::1000] if n != names[1])
    assert got["deleted"] == [names[1]]
    assert got["untracked"] == []


# ---------------------------------------------------------------------------------- symbolic links


def test_symlinks_are_stored_as_links_never_followed(repo: Repo, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = outside / "secret.txt"
    secret.write_text("outside the repository")
    d = repo.root / "d"
    repo.write("d/file.txt", "x")
    links = {
        "d/rel_link": "file.txt",
        "d/abs_out": str(secret),
        "d/dir_out": "../../outside",
        "d/dangling": "missing.txt",
    }
    for rel, target in links.items():
        os.symlink(target, repo.root / rel)
    assert (d / "dir_out" / "secret.txt").read_text() == "outside the repository"

    r = repo.ok("add", "d")
    assert r.out.startswith("staged 5 files")
    repo.fail("add", "d/dir_out/secret.txt", fragments=("symbolic link", "dir_out"))
    repo.ok("commit", "-m", "links")

    files = repo.show()["files"]
    assert set(files) == {"d/file.txt", *links}
    for rel, target in links.items():
        assert files[rel] == {"link": target, "added": "v1"}
    rows = {e["name"]: e for e in repo.json("ls", "HEAD:d", "--json")}
    assert rows["dir_out"]["type"] == "symlink" and rows["dir_out"]["target"] == "../../outside"
    assert repo.cat("HEAD:d/abs_out") == str(secret).encode()

    # Restored as links, with the same targets; nothing outside is touched.
    for rel in links:
        (repo.root / rel).unlink()
    repo.ok("checkout", "HEAD")
    for rel, target in links.items():
        assert os.readlink(repo.root / rel) == target
    assert sorted(os.listdir(outside)) == ["secret.txt"]
    assert secret.read_text() == "outside the repository"
    st = repo.status()
    assert st["modified"] == [] and st["deleted"] == []

    # A changed target is a modification.
    (d / "rel_link").unlink()
    os.symlink("dangling", d / "rel_link")
    assert repo.status()["modified"] == ["d/rel_link"]
    repo.ok("add", "d")
    repo.ok("commit", "-m", "retarget")
    assert changes(repo.json("diff", "v1", "v2", "--json")) == {"d/rel_link": ("modified", None)}
    repo.fsck_clean()


# --------------------------------------------------------------------------------------------- git


def test_checkout_and_merge_keep_the_gitignore_naming_new_data(make_repo: RepoFactory) -> None:
    """`.gitignore` was written by `add` alone: top-level data that a checkout, switch,
    pull or merge brought into a clone whose `.gitignore` lacked it (a teammate's)
    showed as untracked in `git status`. They keep it as `add` does now."""
    repo = make_repo(git_repo=True)
    root = repo.root
    commit_files(repo, {"d/x": b"one"}, "one")
    plain = (root / ".gitignore").read_text()
    repo.ok("switch", "-c", "side")
    commit_files(repo, {"new/y": b"two"}, "two")
    repo.ok("switch", "main")
    commit_files(repo, {"d/z": b"three"}, "three")

    def untracked() -> list[str]:
        out = git(root, "status", "--porcelain", "--untracked-files=all").splitlines()
        return sorted(
            line[3:] for line in out if line.startswith("?? ") and line[3:] != ".gitignore"
        )

    (root / ".gitignore").write_text(plain)  # as a clone without `add new` has it
    repo.ok("merge", "side")
    assert repo.read("new/y") == b"two" and untracked() == ["dvfs.lock"]
    (root / ".gitignore").write_text(plain)
    repo.ok("checkout", "v1")
    repo.ok("checkout", "main")
    assert repo.read("new/y") == b"two" and untracked() == ["dvfs.lock"]
    assert (root / ".gitignore").read_text().splitlines().count("/new") == 1
    repo.ok("checkout", "v1")
    repo.ok("checkout", "main")  # (named once)
    assert (root / ".gitignore").read_text().splitlines().count("/new") == 1
    repo.fsck_clean()


def test_git_linkage(make_repo: RepoFactory) -> None:
    repo = make_repo(git_repo=True)
    root = repo.root
    repo.write("README.md", "project\n")
    git(root, "add", "README.md")
    git(root, "commit", "-q", "-m", "code")
    g0 = git(root, "rev-parse", "HEAD")

    repo.write("data/train.csv", "a\n1\n")
    repo.ok("add", "data")
    ignored = (root / ".gitignore").read_text().splitlines()
    assert "/data" in ignored and "/.dvfs/" in ignored
    untracked = git(root, "status", "--porcelain", "--untracked-files=all").splitlines()
    assert untracked == ["?? .gitignore"]  # the data and .dvfs stay out of git

    v1 = repo.commit("data v1")
    s1 = repo.show()
    assert s1["git_commit"] == g0 and s1["git_dirty"] is False
    assert lock_file(repo) == {"branch": "main", "version": "v1", "id": v1}
    git(root, "add", ".gitignore", "dvfs.lock")
    git(root, "commit", "-q", "-m", "pin data v1")
    g1 = git(root, "rev-parse", "HEAD")

    repo.write("data/train.csv", "a\n1\n2\n")
    repo.ok("add", "data")
    repo.write("README.md", "project, edited\n")  # an uncommitted change in git
    v2 = repo.commit("data v2")
    s2 = repo.show()
    assert s2["git_commit"] == g1 and s2["git_dirty"] is True
    assert repo.json("log", "-n", "1", "--json")[0]["git_dirty"] is True
    assert f"git      {g1} (dirty)" in repo.ok("show").out
    assert lock_file(repo) == {"branch": "main", "version": "v2", "id": v2}
    assert (root / ".gitignore").read_text().splitlines().count("/data") == 1
    git(root, "commit", "-q", "-a", "-m", "pin data v2")

    # Checkout and switch keep the pointer in step with the data.
    repo.ok("checkout", "v1")
    assert lock_file(repo) == {"branch": "main", "version": "v1", "id": v1}
    assert git(root, "status", "--porcelain") == "M dvfs.lock"
    repo.ok("branch", "exp")
    repo.ok("switch", "exp")
    assert lock_file(repo) == {"branch": "exp", "version": "v1", "id": v1}
    repo.ok("switch", "main")
    assert lock_file(repo) == {"branch": "main", "version": "v2", "id": v2}
    assert git(root, "status", "--porcelain") == ""

    # Back to the older code: dvfs.lock names v1, and --lock brings the data along.
    git(root, "checkout", "-q", g1)
    assert lock_file(repo)["id"] == v1
    assert repo.read("data/train.csv") == b"a\n1\n2\n"
    r = repo.ok("checkout", "--lock")
    assert r.out.startswith("v1")
    assert repo.read("data/train.csv") == b"a\n1\n"
    assert repo.status()["head"] == "v1"
    assert git(root, "status", "--porcelain") == ""  # dvfs.lock left as git has it

    git(root, "checkout", "-q", "master")
    assert lock_file(repo)["id"] == v2
    repo.ok("checkout", "--lock")
    assert repo.read("data/train.csv") == b"a\n1\n2\n"
    st = repo.status()
    assert st["branch"] == "main" and st["detached"] is None and st["head"] == "v2"
    assert git(root, "status", "--porcelain") == ""
    repo.fail("checkout", "--lock", "v1", fragments=("--lock",))
    repo.fsck_clean()


def test_a_lock_from_git_cannot_name_a_branch_no_branch_can_have(make_repo: RepoFactory) -> None:
    """dvfs.lock comes from git, written by whoever committed it: the branch it names
    goes into HEAD only if a branch can have that name, and a checkout --lock that
    stops (changes in the way) moves nothing at all."""
    repo = make_repo(git_repo=True)
    root = repo.root
    repo.write("data/a.csv", "a\n1\n")
    repo.ok("add", "data")
    v1 = repo.commit("v1")
    repo.ok("branch", "exp")
    repo.write("data/a.csv", "a\n1\n2\n")
    repo.ok("add", "data")
    v2 = repo.commit("v2")
    head = (root / ".dvfs" / "HEAD").read_bytes()
    for name in ("../../../outside", "main\x1b[31m", "a..b", "-x"):
        for text in (
            f"# dvfs data version\nbranch: {name}\nversion: v1\nid: {v1}\n",
            f"branch: '{name}'\nversion: v1\nid: {v1}\n",  # as YAML, by hand
        ):
            (root / "dvfs.lock").write_text(text)
            err = repo.fail("checkout", "--lock", fragments=("dvfs.lock", "restore it from git"))
            assert "\x1b" not in err
            assert (root / ".dvfs" / "HEAD").read_bytes() == head
            st = repo.status()
            assert (st["branch"], st["head"]) == ("main", "v2")
    assert not (root.parent / "outside").exists()

    # A lock naming v2 on exp (whose latest is v1), with a change in the way: refused,
    # and HEAD stays on main (it went onto exp, at v1, before the tree was checked).
    (root / "dvfs.lock").write_text(f"branch: exp\nversion: v2\nid: {v2}\n")
    repo.write("data/a.csv", "mine\n")
    repo.fail("checkout", "--lock", fragments=("data/a.csv", "--force"))
    st = repo.status()
    assert (st["branch"], st["detached"], st["head"]) == ("main", None, "v2")
    assert st["modified"] == ["data/a.csv"]
    repo.ok("checkout", "--lock", "--force")
    st = repo.status()
    assert (st["branch"], st["head"]) == ("exp", "v2") and st["detached"] is not None
    assert repo.read("data/a.csv") == b"a\n1\n2\n" and repo.head_id() == v2
    repo.fsck_clean()


def test_a_head_naming_a_branch_no_branch_can_have_is_damage(repo: Repo) -> None:
    """HEAD written by hand (or by an older dvfs) with such a name is reported as
    unreadable, with the repair to run, and the repair points it at a branch again."""
    repo.write("a", "1")
    repo.ok("add", "a")
    v1 = repo.commit("v1")
    (repo.root / ".dvfs" / "HEAD").write_text(f"{v1} ../../x\n")
    repo.fail("status", fragments=("HEAD is unreadable", "dvfs fsck --repair"))
    repo.ok("fsck", "--repair")
    st = repo.status()
    assert st["head"] == "v1" and st["branch"] == "main"
    repo.fsck_clean()


def test_trees_made_from_index_rows_equal_the_codec_s(tmp_path: Path) -> None:
    """Commit encodes trees from raw index rows: the bytes must be encode_tree's."""
    from collections import defaultdict

    from vfs.model.codec import ChunkRef, Entry, Kind, encode_tree
    from vfs.model.ids import hash_bytes
    from vfs.ops.commit import build_tree_rows, build_trees
    from vfs.repo.stage import Index, Staged
    from vfs.store.objects import ObjectStore

    rng = random.Random(5)
    entries: dict[bytes, Staged] = {}
    for i in range(300):
        path = f"d{i % 7}/s{i % 3}/f{i}.bin".encode() if i % 5 else f"top{i}".encode()
        chunks = tuple(ChunkRef(rng.randbytes(32), rng.randrange(1, 1 << 20)) for _ in range(i % 3))
        if i % 11 == 0:
            entries[path] = Staged(Kind.SYMLINK, 0o777, 5, i << 40, 1, 2, target=b"../x")
        else:
            size = sum(c.size for c in chunks)
            entries[path] = Staged(
                Kind.FILE, 0o644 | (i % 2) << 6, size, (i * 7919) << 32, 1, 2,
                rng.randbytes(32), chunks,
            )  # fmt: skip

    def reference() -> bytes:  # the trees as encode_tree makes them from entries
        children: dict[bytes, list[Entry]] = defaultdict(list)
        dirs = {b""}
        for path, s in entries.items():
            parent, _, name = path.rpartition(b"/")
            children[parent].append(s.to_entry(name))
            while parent and parent not in dirs:
                dirs.add(parent)
                parent = parent.rpartition(b"/")[0]
        root = b""
        for d in sorted(dirs, key=lambda p: -p.count(b"/") if p else 1):
            kids = children.get(d, [])
            oid = hash_bytes(encode_tree(kids))
            if not d:
                root = oid
                continue
            parent, _, name = d.rpartition(b"/")
            size = sum(e.size for e in kids)
            mtime = max(e.mtime_ns for e in kids)
            children[parent].append(Entry(name, Kind.DIR, 0o755, size, mtime, subtree=oid))
        return root

    index = Index(tmp_path / "index")
    index.entries = dict(entries)
    index.save()
    loaded = Index.load(tmp_path / "index")
    store = ObjectStore.create(tmp_path / "objects")
    want = reference()
    assert build_tree_rows(store, loaded.rows())[0] == want
    assert build_trees(store, entries)[0] == want


def test_fsck_counts_in_words_that_fit_the_numbers(repo: Repo) -> None:
    # it said "checked 1 versions, 1 trees, 1 chunks"
    commit_files(repo, {"one.txt": b"1\n"}, "one")
    last = repo.ok("fsck").out.splitlines()[-1]
    assert last == "checked 1 version, 1 tree, 1 chunk (2 B): no problems"
    commit_files(repo, {"two.txt": b"2\n"}, "two")
    assert repo.ok("fsck").out.splitlines()[-1].startswith("checked 2 versions, 2 trees, 2 chunks")


def test_status_sorts_every_kind_of_entry_as_it_lists_it(repo: Repo) -> None:
    """Each directory's entries are held against the index as they are listed: a file
    changed in any way the stat shows, one turned into a link, a directory, a FIFO, a
    new file, a ``.tmp-*`` directory (entered) and file (dvfs's own: left out), a
    ``.git`` (left out) and a lookalike (never stored: a warning) are each what they
    were before that sort was one pass."""
    names = ["d/same", "d/grown", "d/chmod", "d/touched", "d/to_link", "d/to_dir", "d/to_fifo"]
    names.append("d/t/f")  # (.tmp-* names are there: d's own entries are sorted in one pass)
    for name in names:
        repo.write(name, "content of " + name)
    repo.ok("add", "d")
    repo.commit("kinds")
    repo.write("d/grown", "content of d/grown, and more")
    (repo.root / "d/chmod").chmod(0o755)
    os.utime(repo.root / "d/touched", ns=(1, 1))
    (repo.root / "d/to_link").unlink()
    (repo.root / "d/to_link").symlink_to("same")
    (repo.root / "d/to_dir").unlink()
    repo.write("d/to_dir/inside", "new below")
    (repo.root / "d/to_fifo").unlink()
    os.mkfifo(repo.root / "d/to_fifo")
    repo.write("d/new", "new")
    repo.write("d/t/.tmp-mine/kept", "a user's directory of that name is looked into")
    repo.write("d/t/.tmp-x.0123abcd", "dvfs's own temporary: never listed")
    repo.write("d/sub/.git", "gitdir: elsewhere")  # (git's own: left out without a word)
    repo.write("d/sub/.GIT", "a lookalike")
    r = repo.ok("status", "--json")
    st = json.loads(r.out)
    assert st["modified"] == ["d/chmod", "d/grown", "d/to_link"]
    assert st["deleted"] == ["d/to_dir", "d/to_fifo"]
    assert st["untracked"] == ["d/new", "d/t/.tmp-mine/kept", "d/to_dir/inside"]
    assert "d/to_fifo" in r.err and "not a regular file" in r.err
    assert "d/sub/.GIT" in r.err and "never stores" in r.err and ".git:" not in r.err
    assert repo.status()["modified"] == st["modified"]  # d/touched: re-hashed, refreshed
    repo.fsck_clean()
