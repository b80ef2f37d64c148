"""Undo that works: ``dvfs restore`` with git's verbs, and every hint ``status`` prints.

``restore PATH`` discards changes not staged (a deleted file comes back);
``restore --staged PATH`` unstages (the file stays as it is); ``--source REV`` takes
REV's content instead. Nothing is ever deleted and an untracked file is never
overwritten. Then each command ``status`` suggests between backquotes is typed as it
is printed (PATH replaced by a real path) and must do what the hint says.
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

import vfs
from tests.support.cli import (
    Repo,
    RepoFactory,
    assert_error,
    assert_ok,
    commit_files,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from vfs.errors import UsageError


def committed(repo: Repo, files: dict[str, bytes], message: str) -> str:
    return commit_files(repo, files, message)


def clean(repo: Repo) -> None:
    st = repo.status()
    for key in ("staged", "modified", "deleted", "untracked", "not_checked_out"):
        assert st[key] == [], (key, st)


def test_restore_discards_working_changes(repo: Repo) -> None:
    committed(repo, {"d/a.txt": b"a1\n", "d/b.txt": b"b1\n", "d/c.txt": b"c1\n"}, "v1")
    repo.write("d/a.txt", b"edited\n")
    (repo.root / "d/b.txt").unlink()
    repo.write("d/new.txt", b"untracked\n")
    r = repo.ok("restore", "d")
    assert r.out.strip() == "restored from the index: 2 written, 1 unchanged"
    assert repo.read("d/a.txt") == b"a1\n" and repo.read("d/b.txt") == b"b1\n"
    assert repo.read("d/new.txt") == b"untracked\n"  # untracked: never touched
    assert repo.status()["untracked"] == ["d/new.txt"]
    # the staged content is what comes back, not HEAD's
    repo.write("d/c.txt", b"c staged\n")
    repo.ok("add", "d/c.txt")
    repo.write("d/c.txt", b"c edited again\n")
    repo.ok("restore", "d/c.txt")
    assert repo.read("d/c.txt") == b"c staged\n"
    st = repo.status()
    assert [c["path"] for c in st["staged"]] == ["d/c.txt"] and st["modified"] == []
    repo.fail("restore", "d/nope.txt", fragments=("d/nope.txt", "not tracked"))
    repo.fsck_clean()


def test_restore_source_of_a_path_the_version_lacks_says_so(repo: Repo) -> None:
    """`dvfs restore --source v1 d/b.txt`, where d/b.txt came in v2, said "restored
    from v1: 0 written, 0 unchanged" and exited 0: nothing said v1 has no such file."""
    committed(repo, {"d/a.txt": b"a\n"}, "v1")
    committed(repo, {"d/b.txt": b"b\n"}, "v2")
    for args in (["d/b.txt"], ["d/a.txt", "d/b.txt"]):
        repo.write("d/a.txt", b"edited\n")
        repo.fail(
            "restore", "--source", "v1", *args,
            fragments=("d/b.txt is not in v1: nothing was restored", "`dvfs rm d/b.txt` does"),
        )  # fmt: skip
        assert repo.read("d/a.txt") == b"edited\n" and repo.read("d/b.txt") == b"b\n"
    assert "1 written" in repo.ok("restore", "--source", "v1", "d").out  # d/b.txt stays
    assert repo.read("d/a.txt") == b"a\n" and repo.read("d/b.txt") == b"b\n"
    repo.fsck_clean()


def test_git_checkout_dash_dash_path_says_what_does_it_here(repo: Repo) -> None:
    # it said "unknown revision 'd/a.txt'", as if the path were a version's name
    v1 = committed(repo, {"d/a.txt": b"a1\n"}, "v1")
    repo.write("d/a.txt", b"edited\n")
    line = repo.fail("checkout", "--", "d/a.txt", fragments=("names no version",))
    hint = re.search(r"`(dvfs restore [^`]+)`", line)
    assert hint is not None and "dvfs checkout REV d/a.txt" in line
    assert repo.read("d/a.txt") == b"edited\n"  # nothing was done
    assert_ok(run(repo.root, *hint.group(1).split()[1:]))  # the hint works as typed
    assert repo.read("d/a.txt") == b"a1\n"
    repo.write("d/a.txt", b"edited\n")
    # written with a trailing '/' (a file): the hint names it bare, as restore takes it
    line = repo.fail("checkout", "--", "d/a.txt/", "d/", fragments=("names no version",))
    hint = re.search(r"`(dvfs restore [^`]+)`", line)
    assert hint is not None and hint.group(1) == "dvfs restore d/a.txt d/"
    assert_ok(run(repo.root, *hint.group(1).split()[1:]))
    assert repo.read("d/a.txt") == b"a1\n"
    repo.write("d/a.txt", b"edited\n")
    repo.ok("checkout", "--force", v1, "--", "d/a.txt")  # a REV before -- is one
    assert repo.read("d/a.txt") == b"a1\n"
    repo.fsck_clean()


def test_git_checkout_path_without_a_revision_says_what_does_it_here(repo: Repo) -> None:
    """`dvfs checkout d/a.txt` (git's way to discard a file's changes) said "unknown
    revision d/a.txt; run `dvfs log`...", as if the path were a misspelt version. The
    line says it is a path and what to run instead; nothing is done."""
    committed(repo, {"d/a.txt": b"a1\n"}, "v1")
    repo.write("d/a.txt", b"edited\n")
    for cwd, arg in ((repo.root, "d/a.txt"), (repo.root / "d", "a.txt"), (repo.root, "d")):
        line = assert_error(run(cwd, "checkout", arg), f"{arg} is a path, not a revision", code=2)
        assert f"`dvfs restore {arg}`" in line and f"`dvfs checkout REV {arg}`" in line, line
    assert repo.read("d/a.txt") == b"edited\n"
    repo.fail("checkout", "nothing.txt", fragments=("unknown revision nothing.txt",), code=2)
    assert_ok(run(repo.root / "d", "restore", "a.txt"))  # the hint works as typed
    assert repo.read("d/a.txt") == b"a1\n"
    repo.fsck_clean()


def test_restore_never_replaces_an_untracked_file_where_a_directory_goes(repo: Repo) -> None:
    """The line says what restore can do: it has no --force to offer."""
    committed(repo, {"d/e/a.txt": b"a\n", "d/e/b.txt": b"b\n"}, "v1")
    shutil.rmtree(repo.root / "d" / "e")
    repo.write("d/e", b"mine\n")  # a file where the directory was
    line = repo.fail("restore", "d", fragments=("d/e", "untracked file", "move it away"))
    assert "--force" not in line and "nothing was restored" in line, line
    assert repo.read("d/e") == b"mine\n"
    assert not (repo.root / ".dvfs" / "restoring").exists()
    (repo.root / "d" / "e").rename(repo.root / "mine.txt")
    repo.ok("restore", "d")
    assert repo.read("d/e/a.txt") == b"a\n" and repo.read("d/e/b.txt") == b"b\n"

    (repo.root / "d" / "e" / "a.txt").unlink()  # and a directory where a file goes
    repo.write("d/e/a.txt/mine.txt", b"mine\n")
    line = repo.fail("restore", "d/e/a.txt", fragments=("d/e/a.txt", "untracked", "move it away"))
    assert "--force" not in line and "nothing was restored" in line, line
    assert repo.read("d/e/a.txt/mine.txt") == b"mine\n"
    assert not (repo.root / ".dvfs" / "restoring").exists()
    repo.fsck_clean()


def test_restore_source_of_a_file_where_tracked_files_are_says_what_they_are(
    repo: Repo,
) -> None:
    """Where REV has a file and the working tree a directory of tracked files, the
    line calls them tracked (not untracked), and what it says to do lets restore go."""
    committed(repo, {"d/x": b"old\n"}, "v1")
    (repo.root / "d" / "x").unlink()
    committed(repo, {"d/x/a": b"a\n", "d/x/b": b"b\n"}, "v2")
    line = repo.fail("restore", "--source", "HEAD~1", "d/x", fragments=("d/x", "dvfs rm -r"))
    assert "not tracked" not in line and "nothing was restored" in line, line
    assert repo.read("d/x/a") == b"a\n"
    repo.ok("rm", "-r", "d/x")
    repo.ok("restore", "--source", "HEAD~1", "d/x")
    assert repo.read("d/x") == b"old\n"
    repo.fsck_clean()


def test_restore_staged_unstages_and_keeps_the_files(repo: Repo) -> None:
    committed(repo, {"d/a.txt": b"a1\n", "d/b.txt": b"b1\n"}, "v1")
    repo.write("d/a.txt", b"a2\n")
    repo.write("d/new.txt", b"new\n")
    repo.ok("add", "d")
    repo.ok("rm", "d/b.txt")
    staged = {c["path"]: c["status"] for c in repo.status()["staged"]}
    assert staged == {"d/a.txt": "modified", "d/b.txt": "removed", "d/new.txt": "added"}
    r = repo.ok("restore", "--staged", "d")
    assert r.out.strip() == "restored from HEAD: unstaged 3 paths"
    st = repo.status()
    assert st["staged"] == []
    assert st["modified"] == ["d/a.txt"] and st["deleted"] == ["d/b.txt"]
    assert st["untracked"] == ["d/new.txt"]
    assert repo.read("d/a.txt") == b"a2\n"  # the working files are as they were
    repo.ok("restore", "d/b.txt")  # and a deleted file comes back
    repo.ok("restore", "--staged", "--worktree", "d/a.txt")
    assert repo.read("d/a.txt") == b"a1\n"
    st = repo.status()
    assert st["modified"] == [] and st["deleted"] == [] and st["staged"] == []
    repo.fsck_clean()


def test_restore_from_another_version(repo: Repo) -> None:
    committed(repo, {"d/a.txt": b"a1\n", "d/gone.txt": b"gone\n"}, "v1")
    repo.ok("rm", "d/gone.txt")
    committed(repo, {"d/a.txt": b"a2\n", "d/later.txt": b"later\n"}, "v2")
    r = repo.ok("restore", "--source", "v1", "d")
    assert r.out.startswith("restored from v1: 2 written")
    assert repo.read("d/a.txt") == b"a1\n" and repo.read("d/gone.txt") == b"gone\n"
    assert repo.read("d/later.txt") == b"later\n"  # what v1 lacks is left as it is
    st = repo.status()  # the index is untouched: these are changes against it
    assert st["modified"] == ["d/a.txt"] and st["untracked"] == ["d/gone.txt"]
    assert st["staged"] == []
    repo.ok("restore", "--staged", "--source", "v1", "d/a.txt")
    st = repo.status()
    assert [(c["path"], c["status"]) for c in st["staged"]] == [("d/a.txt", "modified")]
    assert st["modified"] == []
    # an untracked file with other content is never overwritten
    repo.write("d/gone.txt", b"my own notes\n")
    repo.fail("restore", "--source", "v1", "d/gone.txt", fragments=("untracked", "d/gone.txt"))
    assert repo.read("d/gone.txt") == b"my own notes\n"
    repo.fsck_clean()


def test_restoring_a_directory_where_a_file_is_staged_unstages_the_file(repo: Repo) -> None:
    # v1 has the directory d/x, v2 the file d/x: restoring d/x/y from v1 staged it
    # beside the file d/x, replaced on disk by the directory, and the next commit
    # recorded a tree holding x twice, which fsck found malformed
    committed(repo, {"d/x/y": b"in\n"}, "v1")
    shutil.rmtree(repo.root / "d" / "x")
    committed(repo, {"d/x": b"file\n"}, "v2")
    repo.ok("restore", "--staged", "--worktree", "--source", "v1", "d/x/y")
    staged = [(c["path"], c["status"]) for c in repo.status()["staged"]]
    assert staged == [("d/x", "removed"), ("d/x/y", "added")]
    assert repo.status()["deleted"] == [] and repo.read("d/x/y") == b"in\n"
    repo.commit("v3")
    assert [e["name"] for e in repo.json("ls", "HEAD", "d", "--json")] == ["x"]
    repo.fsck_clean()
    # the reverse, with changes in the way, is refused and leaves both as they were
    committed(repo, {"d/x/y": b"edited\n"}, "v4")
    repo.write("d/x/y", "edited again\n")
    repo.fail(
        "restore", "--staged", "--worktree", "--source", "v2", "d/x",
        fragments=("d/x/y changed since staged", "nothing was restored"),
    )  # fmt: skip
    assert repo.read("d/x/y") == b"edited again\n" and repo.status()["staged"] == []
    repo.fsck_clean()


def test_restore_never_replaces_an_edited_file_where_a_directory_goes(repo: Repo) -> None:
    # `dvfs restore --source v1 d`, with the tracked file d edited and v1's d a
    # directory, deleted the edit and wrote the directory, without a word
    committed(repo, {"d/x": b"x\n"}, "v1")
    shutil.rmtree(repo.root / "d")
    committed(repo, {"d": b"file\n"}, "v2")
    repo.write("d", "edited\n")
    repo.fail("restore", "--source", "v1", "d", fragments=("d changed since staged",))
    assert repo.read("d") == b"edited\n"
    repo.write("d", "file\n")  # as committed: its content is in the store, replaced
    repo.ok("restore", "--source", "v1", "d")
    assert repo.read("d/x") == b"x\n"
    repo.fsck_clean()


def test_checking_out_a_path_where_a_file_is_staged_replaces_the_file(repo: Repo) -> None:
    # `dvfs checkout v1 d/x/y` over the file d/x left d/x staged beside d/x/y, as
    # restore did (a tree holding x twice); the file is now replaced, unless changed
    committed(repo, {"d/x/y": b"in\n", "d/k": b"k\n"}, "v1")
    shutil.rmtree(repo.root / "d" / "x")
    committed(repo, {"d/x": b"file\n"}, "v2")
    repo.write("d/x", "changed\n")
    repo.fail("checkout", "v1", "d/x/y", fragments=("uncommitted changes in d/x",))
    assert repo.read("d/x") == b"changed\n"
    repo.write("d/x", "file\n")
    repo.ok("checkout", "v1", "d/x/y")
    staged = [(c["path"], c["status"]) for c in repo.status()["staged"]]
    assert staged == [("d/x", "removed"), ("d/x/y", "added")]
    assert repo.status()["deleted"] == [] and repo.read("d/x/y") == b"in\n"
    repo.commit("v3")
    assert repo.json("ls", "-r", "--json") == repo.json("ls", "v1", "-r", "--json")
    repo.fsck_clean()


HINT = re.compile(r"`(dvfs [^`]+)`")


def test_files_not_checked_out_without_a_remote_are_not_sent_to_pull(repo: Repo) -> None:
    # a first snapshot through a mount (or a lost index) leaves files not checked out;
    # the hint said `dvfs pull PATH`, which fails with no remote to pull from
    committed(repo, {"d/a.txt": b"a\n"}, "v1")
    (repo.root / "d" / "a.txt").unlink()
    (repo.root / ".dvfs" / "index").unlink()
    out = repo.ok("status").out
    assert "1 file of v1 not checked out; `dvfs checkout HEAD PATH` brings them" in out
    [hint] = [h for h in hints(out) if "PATH" in h]
    typed(repo, hint, "d")
    assert repo.read("d/a.txt") == b"a\n"
    clean(repo)
    repo.fsck_clean()


def hints(out: str) -> list[str]:
    """The commands a human-readable output suggests, in order."""
    return HINT.findall(out)


def typed(repo: Repo, hint: str, path: str) -> None:
    """Run a hint as printed, PATH replaced by ``path``."""
    args = hint.split()[1:]
    repo.ok(*[path if a == "PATH" else a for a in args])


def test_every_hint_of_status_works_when_typed(tmp_path: Path, make_repo: RepoFactory) -> None:
    a = make_repo("a")
    committed(a, {"d/a.txt": b"a1\n", "e/c.txt": b"c1\n"}, "v1")
    a.ok("remote", "add", "origin", str(tmp_path / "remote"))
    a.ok("push")
    assert_ok(run(tmp_path, "clone", str(tmp_path / "remote"), "b", "--no-checkout"))
    b = Repo(tmp_path / "b")
    # A change not staged, a staged one, an untracked file and many more: every hint.
    a.write("d/a.txt", b"a2\n")
    a.write("e/c.txt", b"c2\n")
    a.ok("add", "e/c.txt")
    a.write("d/new.txt", b"new\n")
    for i in range(40):
        a.write(f"d/many/f{i:02}.txt", b"x")
    unstage, add, undo, add_new, verbose = hints(a.ok("status").out)
    assert (unstage, undo, verbose) == (
        "dvfs restore --staged PATH",
        "dvfs restore PATH",
        "dvfs status -v",
    )
    assert add == add_new == "dvfs add PATH"
    listed = a.ok(*verbose.split()[1:]).out
    assert all(f"d/many/f{i:02}.txt" in listed for i in range(40))
    shutil.rmtree(a.root / "d" / "many")
    typed(a, unstage, "e/c.txt")
    typed(a, undo, "d/a.txt")
    typed(a, add_new, "d/new.txt")
    st = a.status()
    assert [(c["path"], c["status"]) for c in st["staged"]] == [("d/new.txt", "added")]
    assert st["modified"] == ["e/c.txt"] and st["untracked"] == []
    assert a.read("d/a.txt") == b"a1\n" and a.read("e/c.txt") == b"c2\n"
    typed(a, add, "e/c.txt")
    a.ok("commit", "-m", "v2")
    # ahead of the remote: `dvfs push` publishes it
    (push,) = hints(a.ok("status").out)
    typed(a, push, "")
    assert push == "dvfs push" and "Up to date with origin/main." in a.ok("status").out
    # behind the remote, and not checked out: `dvfs pull PATH` or `dvfs checkout HEAD
    # PATH` brings files, `dvfs pull` the remote's version
    b.ok("fetch")
    pull, pull_path, checkout_path = hints(b.ok("status").out)
    assert (pull, pull_path, checkout_path) == (
        "dvfs pull", "dvfs pull PATH", "dvfs checkout HEAD PATH"
    )  # fmt: skip
    typed(b, pull_path, "d")  # d as the remote has it
    typed(b, checkout_path, "e/c.txt")  # as HEAD has it
    assert b.read("d/new.txt") == b"new\n" and b.read("e/c.txt") == b"c1\n"
    typed(b, pull, "")
    assert b.read("e/c.txt") == b"c2\n" and b.status()["head"] == "v2"
    clean(b)
    a.fsck_clean()
    b.fsck_clean()


def test_the_hint_of_a_working_tree_the_branch_moved_past(repo: Repo) -> None:
    """A snapshot of a mount moves the branch without this working tree: the index
    still names the version before. `dvfs switch BRANCH` brings it up to date."""
    committed(repo, {"d/a.txt": b"a1\n"}, "v1")
    index = repo.root / ".dvfs" / "index"
    before = index.read_bytes()
    committed(repo, {"d/a.txt": b"a2\n"}, "v2")  # as the mount's snapshot would record it
    index.write_bytes(before)
    repo.write("d/a.txt", b"a1\n")
    out = repo.ok("status").out
    assert "moved past this working tree, which is at v1" in out
    (switch,) = hints(out)
    assert switch == "dvfs switch main"
    typed(repo, switch, "")
    assert repo.read("d/a.txt") == b"a2\n"
    clean(repo)
    repo.fsck_clean()


def test_an_edit_in_the_way_of_a_branch_moved_past_is_kept_by_the_way_named(repo: Repo) -> None:
    """The branch moved past this working tree (a snapshot of a mount) and changed a
    file edited here too: `switch main` refused with "commit them", and commit refused
    with "run `dvfs switch main`", so only --force, which discards the edit, was left.
    The refusal names a way that keeps it, and that way works as typed."""
    committed(repo, {"d/a.txt": b"a1\n", "d/b.txt": b"b1\n"}, "v1")
    index = repo.root / ".dvfs" / "index"
    before = index.read_bytes()
    committed(repo, {"d/a.txt": b"a2\n"}, "v2")  # as the mount's snapshot would record it
    index.write_bytes(before)
    repo.write("d/a.txt", b"mine\n")
    repo.fail("commit", "-a", "-m", "x", fragments=("run `dvfs switch main`",))
    assert repo.status()["staged"] == []  # (a refused `commit -a` stages nothing)
    with pytest.raises(UsageError, match="run `dvfs switch main`"):
        vfs.Repo(repo.root).commit("x", all=True)
    assert repo.status()["staged"] == []
    msg = repo.fail("switch", "main")
    assert "main moved to v2 since this working tree was at v1" in msg
    assert "commit them," not in msg and "use --force to discard them" in msg
    (keep,) = re.findall(r"`(dvfs switch -c NAME [^`]+)`", msg)
    repo.ok(*keep.replace("NAME", "mine").split()[1:])
    assert repo.read("d/a.txt") == b"mine\n"
    repo.ok("commit", "-a", "-m", "mine")
    repo.ok("switch", "main")
    assert repo.read("d/a.txt") == b"a2\n" and repo.read("d/b.txt") == b"b1\n"
    merged = repo.run("merge", "mine")
    assert merged.code == 1 and "1 conflict" in merged.out
    repo.ok("restore", "--theirs", "d/a.txt")
    repo.ok("commit", "-m", "merged")
    assert repo.read("d/a.txt") == b"mine\n"
    clean(repo)
    repo.fsck_clean()


def test_restore_of_a_file_below_a_link_says_what_to_do(repo: Repo, tmp_path: Path) -> None:
    """A tracked directory replaced by a link: `status` says `dvfs restore PATH` for the
    file below it, which was refused with no word of how to get the file back."""
    committed(repo, {"d/x": b"x\n"}, "v1")
    outside = tmp_path / "outside"
    outside.mkdir()
    shutil.rmtree(repo.root / "d")
    (repo.root / "d").symlink_to(outside)
    assert "dvfs restore PATH" in repo.ok("status").out
    repo.fail(
        "restore", "d/x", fragments=("goes through the symbolic link d", "move the link away")
    )
    assert list(outside.iterdir()) == []
    (repo.root / "d").unlink()  # as the message says
    repo.ok("restore", "d/x")
    assert repo.read("d/x") == b"x\n"
    clean(repo)
    repo.fsck_clean()


def test_unstaging_before_the_first_commit_says_no_version_was_taken(repo: Repo) -> None:
    """`dvfs restore --staged PATH` before the first commit said "restored from HEAD"
    (and `--json` "source": "HEAD"), though no version exists to restore from: the
    paths were unstaged and nothing more. It says so now."""
    repo.write("a.txt", "a")
    repo.write("d/b.txt", "b")
    repo.ok("add", "a.txt", "d")
    out = repo.ok("restore", "--staged", "a.txt").out
    assert out == (
        "unstaged 1 path: nothing is committed yet, so nothing was restored; the files "
        "stay as they are, untracked\n"
    )
    got = repo.json("restore", "--staged", "d", "--json")
    assert got["source"] is None and got["unstaged"] == 1
    assert repo.read("a.txt") == b"a" and repo.read("d/b.txt") == b"b"
    repo.fail("restore", "--staged", "a.txt", fragments=("a.txt is not tracked: nothing",))
    repo.ok("add", "a.txt")
    repo.ok("commit", "-m", "one")
    assert repo.ok("restore", "--staged", "a.txt").out.startswith("restored from HEAD: ")
    repo.fsck_clean()


def test_paths_unstaged_with_their_files_kept_are_listed_as_untracked(repo: Repo) -> None:
    """`dvfs restore --staged PATH` before the first commit said the files stay
    "untracked", then `status` said "working tree clean": it looks for untracked files
    only where tracked ones are, and none were. `rm --cached` of an addition, or a
    committed file once that removal was committed, vanished the same way. Such paths
    are listed as untracked now, while they stay on disk."""
    repo.write("top.txt", "t")
    repo.write("d/a.txt", "a")
    repo.write("d/e/b.txt", "b")
    repo.write("d/x.tmp", "ignored")
    repo.write(".dvfsignore", "*.tmp\n")
    repo.write("other/c.txt", "never named")
    repo.ok("add", "top.txt", "d")
    repo.ok("restore", "--staged", "top.txt", "d")
    st = repo.status()
    assert st["staged"] == [] and st["untracked"] == ["d/a.txt", "d/e/b.txt", "top.txt"]
    assert "  d/e/b.txt" in repo.ok("status").out
    repo.ok("add", "d/a.txt")
    repo.ok("commit", "-m", "one")
    assert repo.status()["untracked"] == ["d/e/b.txt", "top.txt"]
    repo.write("new/n.txt", "n")
    repo.ok("add", "new")
    repo.ok("rm", "--cached", "new", "d/a.txt")
    assert repo.status()["untracked"] == ["d/a.txt", "d/e/b.txt", "new/n.txt", "top.txt"]
    repo.ok("commit", "-m", "two")
    assert repo.status()["untracked"] == ["d/a.txt", "d/e/b.txt", "new/n.txt", "top.txt"]
    shutil.rmtree(repo.root / "new")
    (repo.root / "top.txt").unlink()
    assert repo.status()["untracked"] == ["d/a.txt", "d/e/b.txt"]
    repo.fsck_clean()


def test_an_index_that_is_a_directory_is_rebuilt_as_its_message_says(repo: Repo) -> None:
    """A directory where the staging index goes is damage whose message says to run
    `dvfs restore --staged .`; that command then failed with "Is a directory" (the new
    index cannot be renamed over a directory). The directory is now set aside as
    index.not-a-file and the index rebuilt."""
    repo.write("a.txt", "a")
    repo.ok("add", "a.txt")
    repo.commit("one")
    index = repo.root / ".dvfs" / "index"
    index.unlink()
    index.mkdir()
    repo.fail("status", fragments=("is damaged (not a regular file)", "restore --staged ."))
    repo.ok("restore", "--staged", ".")
    assert index.is_file() and (repo.root / ".dvfs" / "index.not-a-file").is_dir()
    st = repo.status()
    assert (st["staged"], st["modified"], st["untracked"]) == ([], [], [])
    repo.fsck_clean()


# Put on PYTHONPATH (as sitecustomize) for a `python -m vfs.cli` process: the Ctrl-C of
# a user lands, as a real SIGINT to the process, where code made by `exec` of a string
# runs (the methods of a dataclass) while the command's module is imported.
CTRL_C_IN_EXEC = """
import os, signal, sys

def _trace(frame, event, arg):
    if frame.f_code.co_filename == "<string>" and os.environ["AFTER"] in sys.modules:
        sys.settrace(None)
        os.kill(os.getpid(), signal.SIGINT)

sys.settrace(_trace)
"""


@pytest.mark.parametrize(
    ("args", "module"), [(("gc",), "vfs.cli.store"), (("restore", "d"), "vfs.cli.checkout")]
)
def test_ctrl_c_while_a_command_loads_exits_130_not_by_the_signal(
    make_repo: RepoFactory, tmp_path: Path, args: tuple[str, ...], module: str
) -> None:
    """A Ctrl-C to `python -m vfs.cli gc` or `restore` as the command's modules loaded
    printed the "interrupted" line, then the process killed itself with SIGINT: Python
    took the Ctrl-C, caught where it interrupted code made by `exec` (a dataclass's
    methods), for one never caught. It ends with exit status 130 now, that one line,
    nothing changed."""
    repo = make_repo()
    commit_files(repo, {"d/a": "1", "d/b": "2"}, "one")
    shutil.rmtree(repo.root / "d")
    hook = tmp_path / "hook"
    hook.mkdir()
    (hook / "sitecustomize.py").write_text(CTRL_C_IN_EXEC)
    path = os.pathsep.join(p for p in (str(hook), os.environ.get("PYTHONPATH", "")) if p)
    r = repo.run(*args, env={"PYTHONPATH": path, "AFTER": module})
    assert r.code == 130, str(r)  # (-2: killed by SIGINT)
    assert_error(r, "interrupted; nothing half-written is visible", code=130)
    assert [ln for ln in r.err.splitlines() if ln.strip()] == [
        "dvfs: error: interrupted; nothing half-written is visible, run the command again"
    ]
    assert r.out == "" and not (repo.root / "d").exists()
    repo.fsck_clean()
