"""Undo that works: ``dvfs restore`` with git's verbs, and every hint ``status`` prints.

``restore PATH`` discards changes not staged (a deleted file comes back);
``restore --staged PATH`` unstages (the file stays as it is); ``--source REV`` takes
REV's content instead. Nothing is ever deleted and an untracked file is never
overwritten. Then each command ``status`` suggests between backquotes is typed as it
is printed (PATH replaced by a real path) and must do what the hint says.
"""

from __future__ import annotations

import re

from tests.cli_support import (
    Repo,
    RepoFactory,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
)
from tests.remote_support import Remote, remote_fixture  # noqa: F401  (a fixture)


def committed(repo: Repo, files: dict[str, bytes], message: str) -> str:
    for rel, data in files.items():
        repo.write(rel, data)
    repo.ok("add", *sorted({rel.split("/")[0] for rel in files}))
    return repo.commit(message)


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


HINT = re.compile(r"`(dvfs [^`]+)`")


def hints(out: str) -> list[str]:
    """The commands a human-readable output suggests, in order."""
    return HINT.findall(out)


def typed(repo: Repo, hint: str, path: str) -> None:
    """Run a hint as printed, PATH replaced by ``path``."""
    args = hint.split()[1:]
    repo.ok(*[path if a == "PATH" else a for a in args])


def test_every_hint_of_status_works_when_typed(remote: Remote, make_repo: RepoFactory) -> None:
    a = make_repo("a")
    committed(a, {"d/a.txt": b"a1\n", "d/b.txt": b"b1\n", "e/c.txt": b"c1\n"}, "v1")
    remote.add_to(a)
    a.ok("push")
    # a change not staged: `dvfs add PATH` stages it, `dvfs restore PATH` undoes it
    a.write("d/a.txt", b"a2\n")
    out = a.ok("status").out
    add, undo = hints(out)[:2]
    assert (add, undo) == ("dvfs add PATH", "dvfs restore PATH")
    typed(a, undo, "d/a.txt")
    assert a.read("d/a.txt") == b"a1\n"
    clean(a)
    a.write("d/a.txt", b"a2\n")
    typed(a, add, "d/a.txt")
    st = a.status()
    assert [c["path"] for c in st["staged"]] == ["d/a.txt"] and st["modified"] == []
    # a staged change: `dvfs restore --staged PATH` unstages it
    (unstage,) = [h for h in hints(a.ok("status").out) if "--staged" in h]
    typed(a, unstage, "d/a.txt")
    assert a.status()["modified"] == ["d/a.txt"] and a.status()["staged"] == []
    typed(a, undo, "d/a.txt")
    clean(a)
    # an untracked file in a tracked directory: `dvfs add PATH`
    a.write("d/new.txt", b"new\n")
    (add_new,) = hints(a.ok("status").out)
    typed(a, add_new, "d/new.txt")
    assert [c["path"] for c in a.status()["staged"]] == ["d/new.txt"]
    a.commit("v2")
    # ahead of the remote: `dvfs push` publishes it
    (push,) = hints(a.ok("status").out)
    assert push == "dvfs push"
    typed(a, push, "")
    assert "Up to date with origin/main." in a.ok("status").out
    # behind the remote: `dvfs pull` brings it; not checked out: pull or checkout PATH
    b, _ = remote.clone(a.root.parent, "b", "--no-checkout")
    committed(a, {"e/c.txt": b"c2\n"}, "v3")
    a.ok("push")
    b.ok("fetch")
    out = b.ok("status").out
    pull, pull_path, checkout_path = hints(out)
    assert pull == "dvfs pull"
    assert (pull_path, checkout_path) == ("dvfs pull PATH", "dvfs checkout HEAD PATH")
    typed(b, pull, "")
    assert b.status()["head"] == "v3"
    typed(b, pull_path, "d")
    typed(b, checkout_path, "e/c.txt")
    assert b.read("e/c.txt") == b"c2\n" and b.read("d/new.txt") == b"new\n"
    clean(b)
    # many changes: `dvfs status -v` lists every file
    for i in range(60):
        b.write(f"d/many/f{i:02}.txt", b"x")
    out = b.ok("status").out
    (verbose,) = [h for h in hints(out) if "-v" in h]
    listed = b.ok(*verbose.split()[1:]).out
    assert all(f"d/many/f{i:02}.txt" in listed for i in range(60))
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
