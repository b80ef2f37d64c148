"""The staging index's cache-tree (``Index.trees``, ``vfs.ops.commit.build_index_trees``).

A commit reuses the tree of every directory nothing below has changed in since the
last commit built it. What must hold: after any command, each cached tree is the one
a rebuild from the index's rows makes, and every commit records the tree a full
rebuild would; a cache entry that is wrong in shape or numbers is not used, and one
that is wrong only in its id is found by ``fsck``, which drops the cache.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import (
    Repo,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
)
from vfs.ops.commit import build_tree_rows, index_tree_ids
from vfs.repo.repository import Repository
from vfs.repo.stage import Index


def index_of(repo: Repo) -> Index:
    return Index.load(repo.root / ".dvfs" / "index")


def assert_cache_true(repo: Repo) -> dict[bytes, tuple[int, int, int, bytes]]:
    """Each cached tree is the one the index's rows make now; the cache."""
    cached = dict(index_of(repo).trees())
    fresh = index_tree_ids(index_of(repo))
    assert {d: fresh.get(d) for d in cached} == cached
    return cached


def head_tree(repo: Repo) -> bytes:
    r = Repository(repo.root)
    return r.history.version(bytes.fromhex(repo.head_id())).tree


def assert_head_is_a_full_rebuild(repo: Repo) -> None:
    r = Repository(repo.root)
    assert build_tree_rows(r.store, index_of(repo).rows())[0] == head_tree(repo)


def test_every_command_leaves_the_cache_true_and_commits_what_a_rebuild_makes(
    repo: Repo,
) -> None:
    for rel in ("top.txt", "d1/a.txt", "d1/sub/b.txt", "d2/c.txt", "d2/deep/er/e.txt"):
        repo.write(rel, rel)
    repo.ok("add", ".")
    assert assert_cache_true(repo) == {}  # nothing built yet
    repo.commit("one")
    cached = assert_cache_true(repo)
    assert set(cached) == {b"", b"d1", b"d1/sub", b"d2", b"d2/deep", b"d2/deep/er"}
    assert cached[b""][3] == head_tree(repo)

    def step(*args: str, commit: bool = True) -> None:
        repo.ok(*args)
        assert_cache_true(repo)
        if commit:
            repo.commit(" ".join(args))
            assert_cache_true(repo)
            assert_head_is_a_full_rebuild(repo)

    repo.write("d1/sub/b.txt", "changed")
    step("add", "d1/sub/b.txt")
    kept = index_of(repo).trees()
    assert kept[b"d2"] == cached[b"d2"] and kept[b"d1"] != cached[b"d1"]
    step("rm", "d2/c.txt", commit=False)
    after_rm = index_of(repo).trees()  # only the directories above it are dropped
    assert b"d1" in after_rm and b"d2/deep" in after_rm
    assert b"d2" not in after_rm and b"" not in after_rm
    repo.commit("rm")
    assert_cache_true(repo)
    assert_head_is_a_full_rebuild(repo)
    step("mv", "d1/a.txt", "d2/deep/a.txt")
    repo.write("d3/x.txt", "x")
    step("add", "d3")
    repo.write("d2/deep/er/e.txt", "same size, other")
    step("status", commit=False)
    step("add", ".")
    repo.write("d2/deep/er/e.txt", "edited again")
    step("restore", "d2/deep/er/e.txt", commit=False)
    assert repo.read("d2/deep/er/e.txt") == b"same size, other"
    step("rm", "--cached", "d3/x.txt")
    step("checkout", "v1", commit=False)
    step("switch", "main", commit=False)
    repo.write("d1/new.txt", "n")
    step("add", "d1")
    assert repo.cat("HEAD:d2/deep/a.txt") == b"d1/a.txt"
    assert repo.cat("HEAD:d1/sub/b.txt") == b"changed"
    repo.fsck_clean()


def test_cached_entries_that_do_not_fit_the_rows_are_rebuilt(repo: Repo) -> None:
    # Another directory's tree (stored, the wrong numbers), an id the store does not
    # hold (the right numbers): each is built again from the rows, never used.
    for rel in ("a/1.txt", "a/2.txt", "b/3.txt", "c/4.txt"):
        repo.write(rel, rel * 3)
    repo.ok("add", ".")
    repo.commit("one")
    good = dict(index_of(repo).trees())
    for d, forged in (
        (b"a", good[b"b"]),
        (b"b", (*good[b"b"][:3], b"\x07" * 32)),
        (b"", (*good[b""][:3], b"\x08" * 32)),
    ):
        index = index_of(repo)
        index.set_trees({**index.trees(), d: forged})
        index.save()
        repo.write(f"c/{d.hex()}.txt", "new")
        repo.ok("add", "c")
        repo.commit(f"past {d!r}")
        assert_head_is_a_full_rebuild(repo)
        assert assert_cache_true(repo)[b"a"] == good[b"a"]
    assert repo.cat("HEAD:a/2.txt") == b"a/2.txt" * 3
    repo.fsck_clean()


def test_fsck_finds_a_cached_id_the_rows_do_not_make_and_drops_the_cache(repo: Repo) -> None:
    # The right numbers and a stored tree, but not this directory's: only a rebuild
    # tells, which fsck does.
    repo.write("a/1.txt", "one")
    repo.write("b/2.txt", "two")
    repo.ok("add", ".")
    repo.commit("one")
    good = dict(index_of(repo).trees())
    index = index_of(repo)
    index.set_trees({**good, b"a": (*good[b"a"][:3], good[b"b"][3])})
    index.save()
    r = repo.run("fsck")
    assert r.code != 0
    assert "staging index: the cached tree of directory a is not the one its paths make" in r.out
    assert index_of(repo).trees() == {}
    repo.write("b/3.txt", "three")
    repo.ok("add", "b")
    repo.commit("two")
    assert_head_is_a_full_rebuild(repo)
    assert repo.cat("HEAD:a/1.txt") == b"one"
    repo.fsck_clean()


def test_a_commit_of_an_unchanged_index_reuses_the_root(tmp_path: Path, repo: Repo) -> None:
    # Nothing staged since the commit: the root's cached tree is the version's, and
    # the commit says there is nothing to commit without building a tree.
    repo.write("a/1.txt", "one")
    repo.ok("add", ".")
    repo.commit("one")
    line = repo.fail("commit", "-m", "again")
    assert "nothing to commit" in line
    assert index_of(repo).trees()[b""][3] == head_tree(repo)
    repo.fsck_clean()


def test_an_index_staging_a_path_as_file_and_directory_is_never_committed(repo: Repo) -> None:
    # an older restore staged d/x/y beside the file d/x: the commit recorded a tree
    # holding x twice, which fsck then called malformed, for ever (it is in history)
    repo.write("d/x", "file")
    repo.ok("add", "d")
    repo.commit("one")
    index = index_of(repo)
    staged = index.get(b"d/x")
    assert staged is not None
    index.put(b"d/x/y", staged)
    index.save()
    r = repo.run("fsck")
    assert r.code == 1
    said = "the index stages d/x both as a file and as a directory: run `dvfs add d/x`"
    assert f"staging index: {said}" in r.out
    repo.fail("commit", "-m", "two", fragments=(said,), code=2)
    assert repo.json("log", "--json")[0]["message"] == "one"
    (repo.root / "d" / "x").unlink()
    repo.write("d/x/y", "file")
    repo.ok("add", "d/x")
    repo.commit("two")
    assert repo.cat("HEAD:d/x/y") == b"file"
    repo.fsck_clean()
