"""``dvfs mv``: files and directories moved in the working tree and the index, recorded
as renames, never replacing anything, never leaving the repository.
"""

from __future__ import annotations

import errno
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.cli import (
    Repo,
    Result,
    add_in_process,
    assert_error,
    cli_env,
    commit_files,
    commit_in_process,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from tests.support.trees import contents_of
from vfs._os.beneath import rename_noreplace
from vfs.repo.stage import Index


def staged(repo: Repo) -> set[tuple[str, str | None, str]]:
    """(status, old path, path) of each staged change."""
    return {(c["status"], c.get("old_path"), c["path"]) for c in repo.status()["staged"]}


def committed(repo: Repo) -> None:
    repo.write("data/raw/1.csv", "one")
    repo.write("data/raw/2.csv", "two")
    repo.write("data/labels.csv", "labels")
    os.symlink("raw/1.csv", repo.root / "data/first")
    add_in_process(repo, "data")
    commit_in_process(repo, "one")


def test_files_directories_and_links_move_as_renames(repo: Repo) -> None:
    committed(repo)
    assert repo.ok("mv", "data/labels.csv", "data/y.csv").out == (
        "renamed data/labels.csv -> data/y.csv\n"
    )
    repo.write("data/raw/notes.txt", "untracked, moves along")
    got = repo.json("mv", "data/raw", "data/old", "--json")
    assert got == {"moved": [{"from": "data/raw", "to": "data/old", "tracked": 2}]}
    assert (repo.root / "data/old/notes.txt").read_text() == "untracked, moves along"
    repo.ok("mv", "data/first", "data/first-link")
    assert os.readlink(repo.root / "data/first-link") == "raw/1.csv"  # the link itself
    assert staged(repo) == {
        ("renamed", "data/labels.csv", "data/y.csv"),
        ("renamed", "data/raw/1.csv", "data/old/1.csv"),
        ("renamed", "data/raw/2.csv", "data/old/2.csv"),
        ("renamed", "data/first", "data/first-link"),
    }
    st = repo.status()
    assert st["modified"] == [] and st["deleted"] == []
    assert st["untracked"] == ["data/old/notes.txt"]
    # the renamed file's new ctime is staged: status need not read it again
    index = Index.load(repo.root / ".dvfs" / "index")
    for rel in ("data/y.csv", "data/old/1.csv", "data/first-link"):
        entry = index.get(rel.encode())
        assert entry is not None and entry.matches_stat(os.lstat(repo.root / rel)), rel
    repo.ok("commit", "-m", "moved")
    diff = repo.json("diff", "v1", "v2", "--json")
    assert {(c["status"], c.get("old_path"), c["path"]) for c in diff["changes"]} == {
        ("renamed", "data/labels.csv", "data/y.csv"),
        ("renamed", "data/raw/1.csv", "data/old/1.csv"),
        ("renamed", "data/raw/2.csv", "data/old/2.csv"),
        ("renamed", "data/first", "data/first-link"),
    }
    assert repo.cat("v2:data/old/2.csv") == b"two"
    repo.fsck_clean()


def test_several_sources_into_a_directory_and_staged_files(repo: Repo) -> None:
    committed(repo)
    repo.write("new.csv", "staged, never committed")
    repo.ok("add", "new.csv")
    (repo.root / "archive").mkdir()
    out = repo.ok("mv", "new.csv", "data/raw", "data/labels.csv", "archive").out
    assert out.splitlines() == [
        "renamed new.csv -> archive/new.csv",
        "renamed data/raw -> archive/raw (2 tracked files)",
        "renamed data/labels.csv -> archive/labels.csv",
    ]
    repo.ok("mv", "archive/new.csv", "archive/raw")  # an existing directory: into it
    assert repo.read("archive/raw/new.csv") == b"staged, never committed"
    assert ("added", None, "archive/raw/new.csv") in staged(repo)
    # from a subdirectory, paths are relative to it
    r = run(repo.root / "archive", "mv", "labels.csv", "../data/labels.csv")
    assert r.code == 0, r
    repo.ok("commit", "-m", "two")
    files = set(repo.show("HEAD")["files"])
    assert files == {
        "archive/raw/1.csv", "archive/raw/2.csv", "archive/raw/new.csv",
        "data/labels.csv", "data/first",
    }  # fmt: skip
    repo.fsck_clean()


def test_what_mv_refuses_changes_nothing(repo: Repo, tmp_path: Path) -> None:
    committed(repo)
    repo.write("data/untracked.txt", "u")
    repo.write("gone.csv", "g")
    repo.ok("add", "gone.csv")
    os.unlink(repo.root / "gone.csv")
    outside = tmp_path / "outside"
    outside.mkdir()
    os.symlink(outside, repo.root / "link-out")
    status = repo.status()
    cases = [
        (("data/labels.csv", "data/untracked.txt"), "already exists"),
        (("data/labels.csv", "data/raw/1.csv"), "already exists (tracked)"),
        (("data/labels.csv", "gone.csv"), "tracked, though not in the working tree (deleted)"),
        (("data/labels.csv", "data/.git"), "dvfs never stores the name .git"),
        (("data/labels.csv", ".DVFS"), "dvfs never stores the name .DVFS"),
        (("data/labels.csv", "x/.git./y"), "dvfs never stores"),
        (("data/labels.csv", ".versions"), "the mount's list of versions"),
        (("data/labels.csv", "dvfs.lock"), "dvfs's own record"),
        (("data/labels.csv", str(tmp_path / "x.csv")), "outside the repository"),
        (("data/labels.csv", "link-out/x.csv"), "goes through the symbolic link"),
        (("data/labels.csv", ".dvfs/x"), "inside dvfs's own directory"),
        (("data", "data/sub/data"), "into itself"),
        (("data/raw", "data/raw"), "into itself (data/raw/raw)"),
        (("data/labels.csv", "nowhere/x.csv"), "create it first"),
        (("data/untracked.txt", "data/u.txt"), "is not tracked"),
        (("nothing.csv", "x.csv"), "does not exist"),
        (("gone.csv", "back.csv"), "not in the working tree"),
        (("data/raw", "data/raw/1.csv", "data/labels.csv"), "needs a directory"),
        (("data/raw", "data/raw/1.csv", "data/new"), "needs a directory"),
        (("data/labels.csv", "data/raw/1.csv", "data"), "data/labels.csv is already there"),
        (("data/raw/1.csv", "data/raw", "data/old"), "needs a directory"),
        (("data/labels.csv",), "give a source and a destination"),
        (("",), "empty"),
    ]
    (repo.root / "into").mkdir()
    cases.append((("data/raw", "data/raw/1.csv", "into"), "inside another source"))
    repo.write("my file.csv", "m")  # deleted, still staged: the hints name it as typed
    repo.ok("add", "my file.csv")
    os.unlink(repo.root / "my file.csv")
    cases.append((("my file.csv", "x.csv"), "`dvfs restore 'my file.csv'` brings it back"))
    # a tracked file that is a directory now (it moved the directory and staged a
    # rename of the file's old content), and a tracked directory that is a file now
    os.unlink(repo.root / "data" / "raw" / "2.csv")
    repo.write("data/raw/2.csv/new.txt", "n")
    cases.append((("data/raw/2.csv", "two"), "is a directory now, where dvfs tracks a file"))
    status = repo.status()
    before = contents_of(repo.root)
    for args, wanted in cases:
        line = repo.fail("mv", *args, code=2)
        assert wanted.lower() in line.lower(), (args, line)
    after = contents_of(repo.root)
    assert after == before and repo.status() == status
    repo.fsck_clean()


def test_a_tracked_file_now_a_fifo_is_not_moved(repo: Repo) -> None:
    """`dvfs mv data/labels.csv x.csv` with labels.csv replaced by a FIFO said "renamed
    data/labels.csv -> x.csv": it moved the FIFO and staged x.csv with the old file's
    content, which no working file held (and the next `commit -a` dropped it). It is
    refused, saying what is there and what brings the tracked file back."""
    committed(repo)
    fifo = repo.root / "data" / "labels.csv"
    fifo.unlink()
    os.mkfifo(fifo)
    line = repo.fail("mv", "data/labels.csv", "x.csv", code=2)
    assert "data/labels.csv is a FIFO now, where dvfs tracks a file" in line, line
    assert "`dvfs restore data/labels.csv` then brings back" in line, line
    assert staged(repo) == set() and not (repo.root / "x.csv").exists()
    fifo.unlink()
    repo.ok("restore", "data/labels.csv")  # what it says to run
    repo.ok("mv", "data/labels.csv", "x.csv")
    assert repo.read("x.csv") == b"labels"
    repo.fsck_clean()


def test_a_destination_tracked_but_deleted_is_named_so(repo: Repo) -> None:
    """`dvfs mv data/labels.csv data/raw/2.csv` with 2.csv deleted from the working tree
    said "data/raw/2.csv already exists (tracked)", though nothing was there, and not
    how to get past it. The line says it is tracked but deleted, and what to run."""
    committed(repo)
    (repo.root / "data/raw/2.csv").unlink()
    line = repo.fail("mv", "data/labels.csv", "data/raw/2.csv", code=2)
    assert "data/raw/2.csv is tracked, though not in the working tree (deleted)" in line, line
    assert "`dvfs rm data/raw/2.csv` first drops it" in line and "already exists" not in line
    assert staged(repo) == set() and repo.read("data/labels.csv") == b"labels"
    repo.ok("rm", "data/raw/2.csv")  # what it says to run
    repo.ok("mv", "data/labels.csv", "data/raw/2.csv")
    assert staged(repo) == {
        ("removed", None, "data/labels.csv"),
        ("modified", None, "data/raw/2.csv"),
    }
    assert repo.read("data/raw/2.csv") == b"labels"
    repo.fsck_clean()


def test_a_failed_move_is_put_back(repo: Repo) -> None:
    committed(repo)
    (repo.root / "dest").mkdir()
    ro = repo.root / "data/raw"
    os.chmod(ro, 0o555)  # 1.csv cannot leave it: the second rename fails
    try:
        before, status = contents_of(repo.root), repo.status()
        r = run(repo.root, "mv", "data/labels.csv", "data/raw/1.csv", "dest", unprivileged=True)
        line = assert_error(r, "permission denied", code=1)
        assert "1.csv" in line
        assert contents_of(repo.root) == before and repo.status() == status
    finally:
        os.chmod(ro, 0o755)
    repo.fsck_clean()


def test_rename_noreplace_never_replaces(tmp_path: Path) -> None:
    (tmp_path / "a").write_text("a")
    (tmp_path / "b").write_text("b")
    fd = os.open(tmp_path, os.O_PATH | os.O_DIRECTORY)
    try:
        with pytest.raises(OSError) as caught:
            rename_noreplace(fd, b"a", fd, b"b")
        assert caught.value.errno == errno.EEXIST
        assert (tmp_path / "b").read_text() == "b"
        rename_noreplace(fd, b"a", fd, b"c")
        assert (tmp_path / "c").read_text() == "a" and not (tmp_path / "a").exists()
    finally:
        os.close(fd)


KILLED_AFTER_RENAME = """
import os, signal, sys
from vfs.cli import main
from vfs.ops import workflow
renaming = workflow.rename_noreplace
def rename(*args):
    renaming(*args)
    os.kill(os.getpid(), signal.SIGKILL)
workflow.rename_noreplace = rename
sys.argv = ["dvfs", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize(("src", "dst"), [("data", "newdata"), ("top.csv", "top2.csv")])
def test_a_move_killed_before_the_index_is_saved_is_shown_by_status(
    repo: Repo, src: str, dst: str
) -> None:
    """``dvfs mv`` killed between the rename on disk and the index save: status listed
    the old paths as deleted but not the new ones at all (a new top-level name is not
    looked in for untracked files), though mv's own doc says they show as untracked.
    Now they do, and ``dvfs add`` of both records the move."""
    committed(repo)
    repo.write("top.csv", "top")
    repo.ok("add", "top.csv")
    repo.ok("commit", "-m", "two")
    killed = subprocess.run(
        [sys.executable, "-P", "-c", KILLED_AFTER_RENAME, "mv", src, dst],
        cwd=repo.root, env=cli_env(), capture_output=True, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    assert not (repo.root / src).exists() and (repo.root / dst).exists()
    st = repo.status()
    moved = [p.replace(src, dst, 1) for p in st["deleted"]]
    assert moved and st["untracked"] == moved, st
    repo.ok("add", src, dst)
    assert {s for s, _, _ in staged(repo)} == {"renamed"}
    repo.ok("commit", "-m", "moved")
    assert repo.status()["untracked"] == []
    repo.fsck_clean()


def test_a_move_into_a_repository_of_its_own_is_refused(repo: Repo) -> None:
    """``dvfs mv data/a.csv data/inner/a.csv``, data/inner holding a ``.dvfs`` of its
    own: the outer repository silently took a file of the inner one, which ``dvfs add``
    refuses without --force (the README: that repository tracks its files)."""
    committed(repo)
    (repo.root / "data" / "inner" / ".dvfs").mkdir(parents=True)
    (repo.root / "data" / "inner" / "deep").mkdir()
    before = contents_of(repo.root / "data")
    for dst in ("data/inner/labels.csv", "data/inner/deep/", "data/inner"):
        assert_error(
            repo.run("mv", "data/labels.csv", dst),
            "is in data/inner/, a dvfs repository of its own", "nothing was moved",
        )  # fmt: skip
    assert contents_of(repo.root / "data") == before
    assert staged(repo) == set()
    repo.ok("mv", "data/labels.csv", "data/raw/labels.csv")
    repo.ok("commit", "-m", "moved")
    repo.fsck_clean()


ACROSS_FILESYSTEMS = """
import errno, sys
from vfs.cli import main
from vfs.ops import workflow
renaming = workflow.rename_noreplace
def rename(src_dir, src, dst_dir, dst):
    if dst == b"raw":  # the second move: the first is put back
        raise OSError(errno.EXDEV, "Invalid cross-device link", dst)
    renaming(src_dir, src, dst_dir, dst)
workflow.rename_noreplace = rename
sys.argv = ["dvfs", *sys.argv[1:]]
main()
"""


def test_a_move_to_another_filesystem_is_refused_in_one_line(repo: Repo) -> None:
    """A destination on another filesystem (a mount point inside the working tree):
    mv stopped with the bare "Invalid cross-device link: a". Now one line says why and
    what to do, and what moved before it is put back."""
    committed(repo)
    repo.write("other/keep", "k")
    before = contents_of(repo.root)
    r = subprocess.run(
        [sys.executable, "-P", "-c", ACROSS_FILESYSTEMS, "mv", "data/labels.csv", "data/raw",
         "other/"],
        cwd=repo.root, env=cli_env(), capture_output=True, check=False,
    )  # fmt: skip
    proc = Result(("mv",), r.returncode, r.stdout, r.stderr.decode(errors="replace"))
    assert_error(proc, "different filesystems", "nothing was moved", "`dvfs add` both paths")
    assert contents_of(repo.root) == before
    assert staged(repo) == set()
    repo.fsck_clean()


GITIGNORE_FULL = """
import sys
from vfs.cli import main
from vfs.errors import StorageFull
from vfs.ops import workflow
def full(*args, **kw):
    raise StorageFull("the disk is full while writing .gitignore: free some space")
workflow.ignore_paths = full
sys.argv = ["dvfs", *sys.argv[1:]]
main()
"""


def test_a_gitignore_that_cannot_be_written_leaves_the_move_as_recorded(repo: Repo) -> None:
    """mv saved the index, then wrote .gitignore (inside git): when that failed (a full
    disk) the files were renamed back while the saved index named them moved, so
    status listed the new paths deleted and mv could not be run again."""
    committed(repo)
    r = subprocess.run(
        [sys.executable, "-P", "-c", GITIGNORE_FULL, "mv", "data/labels.csv", "data/l.csv"],
        cwd=repo.root, env=cli_env(), capture_output=True, check=False,
    )  # fmt: skip
    assert r.returncode != 0, r
    assert (repo.root / "data/l.csv").exists() and not (repo.root / "data/labels.csv").exists()
    st = repo.status()
    assert (st["deleted"], st["untracked"]) == ([], []), st
    assert staged(repo) == {("renamed", "data/labels.csv", "data/l.csv")}
    repo.ok("commit", "-m", "moved")
    repo.fsck_clean()


def test_a_staged_removal_is_carried_or_refused_by_checkout_as_other_staged_changes(
    repo: Repo,
) -> None:
    """After `mv d/a d/b` and `rm --cached d/b`, the removal of d/a is staged. Before, a
    checkout wrote the version's d/a and dropped the staged removal without a word.
    Now, as git does and as for other staged changes: a version that holds d/a as the
    checked-out one does carries the removal; one that holds another d/a is refused."""
    for files, message in (({"d/a": "one"}, "v1"), ({"d/c": "c"}, "v2"), ({"d/a": "two"}, "v3")):
        for rel, text in files.items():
            repo.write(rel, text)
        repo.ok("add", "d")
        repo.ok("commit", "-m", message)
    repo.ok("checkout", "v2")
    repo.ok("mv", "d/a", "d/b")
    repo.ok("rm", "--cached", "d/b")
    assert staged(repo) == {("removed", None, "d/a")}
    repo.ok("checkout", "v1")  # (v1's d/a is v2's: the removal stays staged)
    assert staged(repo) == {("removed", None, "d/a")} and not (repo.root / "d/a").exists()
    assert repo.status()["detached"] == "v1"
    repo.fail("checkout", "main", fragments=("would overwrite the staged removal of d/a",))
    assert staged(repo) == {("removed", None, "d/a")} and not (repo.root / "d/a").exists()
    repo.ok("checkout", "--force", "main")
    assert repo.read("d/a") == b"two" and staged(repo) == set()
    repo.fsck_clean()


def test_a_checkout_refused_for_a_staged_removal_names_it_and_what_to_run(repo: Repo) -> None:
    """`dvfs rm --cached d/a` keeps the file; `dvfs checkout main` on main then refused
    with "would overwrite untracked d/a: move the untracked files away": the file is
    the version's own, what the checkout would undo is the staged removal, and moving
    the file away would not have let it go on. It names the removal now, and how to
    commit, unstage or discard it; the unstaging it names lets the checkout run."""
    commit_files(repo, {"d/a": "one", "d/b": "bee"}, "v1")
    repo.ok("rm", "--cached", "d/a")
    line = repo.fail("checkout", "main", code=1)
    assert "untracked" not in line, line
    assert "would overwrite the staged removal of d/a: commit the removal" in line, line
    assert "run `dvfs restore --staged d/a` to track it again" in line, line
    assert "--force to discard it" in line, line
    assert staged(repo) == {("removed", None, "d/a")} and repo.read("d/a") == b"one"
    repo.write("d/a", "edited, untracked")  # (now an untracked file differs too: both named)
    line = repo.fail("checkout", "main", code=1)
    assert "the staged removal of d/a and untracked d/a" in line, line
    repo.write("d/a", "one")
    repo.ok("restore", "--staged", "d/a")
    repo.ok("checkout", "main")
    st = repo.status()
    assert st["staged"] == st["untracked"] == st["modified"] == []
    repo.fsck_clean()


def test_a_path_in_conflict_is_not_moved_until_settled(repo: Repo) -> None:
    """`dvfs mv` of a path a merge left in conflict moved it and left the conflict
    under the old name: status went on listing it, `dvfs add` of it staged nothing,
    and commit refused. It is refused now, as git refuses to move an unmerged path."""
    repo.write("d/a", "base")
    repo.ok("add", "d")
    repo.ok("commit", "-m", "one")
    repo.ok("switch", "-c", "side")
    repo.write("d/a", "side")
    repo.ok("commit", "-am", "side")
    repo.ok("switch", "main")
    repo.write("d/a", "main")
    repo.ok("commit", "-am", "main")
    assert repo.run("merge", "side").code == 1
    for args in (("d/a", "d/z"), ("d", "e")):
        repo.fail("mv", *args, fragments=("d/a is in conflict in the merge of side", "settle it"))
    assert repo.read("d/a") == b"main" and staged(repo) == set()
    repo.ok("restore", "--ours", "d/a")
    repo.ok("mv", "d/a", "d/z")
    repo.ok("commit", "-m", "merged")
    assert repo.read("d/z") == b"main" and repo.status()["staged"] == []
    repo.fsck_clean()
