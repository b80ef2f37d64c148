"""``dvfs merge`` killed with SIGKILL at each step it exposes (``DVFS_TEST_MERGE_KILL_AT``).

After each kill: ``fsck`` is clean, both sides' committed versions read back whole,
``status`` tells the truth about every path the merge touches (a file that differs from
HEAD's version is listed), and the merge can be done again (``merge --abort`` then
``merge``, or nothing to do when the branch already moved).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from tests.support.cli import Repo, fsck_clean, init_repo, run_as_dvfs
from tests.support.data import rand
from tests.test_faults import fill
from vfs.ops.merging import KILL_ENV
from vfs.repo.repository import Repository

# The steps in the order a merge reaches them (vfs.ops.merging's docstring).
STEPS = ("recorded", "removed", "written", "indexed", "moved")
OURS = {"a": b"a from main", "b": b"b", "d/x": b"d/x", "f": b"f"}  # main changed a, deleted c
THEIRS = {"a": b"a", "b": b"b from other", "c": b"c", "d/e": b"new in other", "d/x": b"d/x"}
MERGED = {"a": b"a from main", "b": b"b from other", "d/e": b"new in other", "d/x": b"d/x"}
PATHS = ("a", "b", "c", "d/e", "d/x", "f")


@pytest.fixture(name="template", scope="module")
def template_fixture(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """main and `other` share v1 (a, b, c, d/x, f), then change different paths.

    (``status`` looks for untracked files in the top-level directories holding tracked
    files, so the new ``d/e`` goes where ``d/x`` is tracked.)
    """
    repo = init_repo(tmp_path_factory.mktemp("merge-faults") / "template")
    for name in ("a", "b", "c", "d/x", "f"):
        repo.write(name, name)
    repo.ok("add", ".")
    repo.commit("base")
    repo.ok("switch", "-c", "other")
    repo.write("b", "b from other")
    repo.write("d/e", "new in other")
    (repo.root / "f").unlink()
    repo.ok("add", ".")
    repo.commit("other")
    repo.ok("switch", "main")
    repo.write("a", "a from main")
    (repo.root / "c").unlink()
    repo.ok("add", ".")
    repo.commit("main")
    return repo


def files_of(repo: Repo, rev: str) -> dict[str, bytes]:
    hist = Repository(repo.root).history
    tree = hist.version(hist.resolve(rev)).tree
    return {p.decode(): repo.cat(f"{rev}:{p.decode()}") for p in hist.flatten(tree)}


def on_disk(repo: Repo) -> dict[str, bytes]:
    return {p: (repo.root / p).read_bytes() for p in PATHS if (repo.root / p).is_file()}


def assert_status_truthful(repo: Repo, step: str) -> None:
    """Every path whose file differs from HEAD's version is listed by ``status``."""
    st = repo.status()
    listed = {c["path"] for c in st["staged"]} | set(st["modified"]) | set(st["deleted"])
    listed |= set(st["untracked"])
    head, disk = files_of(repo, "HEAD"), on_disk(repo)
    for p in PATHS:
        if head.get(p) != disk.get(p):
            assert p in listed, f"{step}: {p} differs from HEAD but status says {st}"


def test_merge_killed_at_each_step_loses_nothing_and_can_be_redone(
    template: Repo, tmp_path: Path
) -> None:
    ours, theirs = template.head_id(), Repository(template.root).history.resolve("other").hex()
    for step in STEPS:
        dst = tmp_path / step
        shutil.copytree(template.root, dst, symlinks=True)
        repo = Repo(dst)
        r = repo.run("merge", "other", env={KILL_ENV: step})
        assert r.code == -9, f"{step}: {r}"
        fsck_clean(repo.root)
        # nothing committed is lost: both sides read back whole
        assert files_of(repo, ours) == OURS and files_of(repo, theirs) == THEIRS, step
        assert_status_truthful(repo, step)
        st = repo.status()
        if step == "moved":
            # the branch names the merge version: the stale record is ignored, done
            assert st["merging"] is None and st["modified"] == [] and st["staged"] == []
            assert repo.ok("merge", "other").out.startswith("already up to date"), step
        else:
            assert st["merging"] is not None, f"{step}: {st}"
            assert repo.head_id() == ours, step
            assert "a merge is in progress" in repo.fail("merge", "other")
            repo.ok("merge", "--abort")
            assert on_disk(repo) == OURS, step
            assert repo.json("merge", "other", "--json")["outcome"] == "merged", step
        hist = Repository(repo.root).history
        assert [p.hex() for p in hist.version(hist.resolve("HEAD")).parents] == [ours, theirs]
        assert files_of(repo, "HEAD") == MERGED and on_disk(repo) == MERGED, step
        st = repo.status()
        assert st["merging"] is None and st["modified"] == [] and st["untracked"] == [], step
        fsck_clean(repo.root)


def test_abort_after_a_kill_keeps_a_new_file_the_user_changed(
    template: Repo, tmp_path: Path
) -> None:
    shutil.copytree(template.root, tmp_path / "r", symlinks=True)
    repo = Repo(tmp_path / "r")
    assert repo.run("merge", "other", env={KILL_ENV: "written"}).code == -9
    repo.write("d/e", "my own words")  # no longer what the merge wrote: the user's
    repo.ok("merge", "--abort")
    assert on_disk(repo) == {**OURS, "d/e": b"my own words"}
    assert repo.status()["untracked"] == ["d/e"]
    assert "overwrite untracked d/e" in repo.fail("merge", "other")
    fsck_clean(repo.root)


def test_abort_after_a_kill_counts_the_files_it_deletes(template: Repo, tmp_path: Path) -> None:
    # the new file d/e the killed merge had written was deleted, and the line said
    # "merge aborted: 2 written, 0 deleted"
    shutil.copytree(template.root, tmp_path / "r", symlinks=True)
    repo = Repo(tmp_path / "r")
    assert repo.run("merge", "other", env={KILL_ENV: "written"}).code == -9
    assert (repo.root / "d/e").exists()
    assert repo.ok("merge", "--abort").out == "merge aborted: 2 written, 1 deleted\n"
    assert on_disk(repo) == OURS
    fsck_clean(repo.root)


def test_a_merge_killed_before_its_index_was_saved_cannot_be_committed(
    template: Repo, tmp_path: Path
) -> None:
    """Killed before the index held the merged files, a merge left a record that
    `status` showed as "every conflict settled ... `dvfs commit -m MSG` records it":
    that commit made a version with two parents holding ours' files alone, and `merge
    other` then said "already up to date": theirs' changes were gone from the branch."""
    ours = template.head_id()
    for step in ("recorded", "removed", "written"):
        shutil.copytree(template.root, tmp_path / step, symlinks=True)
        repo = Repo(tmp_path / step)
        assert repo.run("merge", "other", env={KILL_ENV: step}).code == -9
        repo.fail("commit", "-m", "m", fragments=("stopped before", "dvfs merge --abort"))
        repo.fail("commit", "-a", "-m", "m", fragments=("stopped before",))
        repo.fail("merge", "other", fragments=("stopped midway", "dvfs merge --abort"))
        st = repo.status()
        assert st["merging"]["complete"] is False, step
        out = repo.ok("status").out
        # (killed once it had written theirs' files, it said "before it had written its
        # files" beside the files it wrote, listed as changes: they are not staged)
        assert "Merging other (" in out and "stopped before it had staged its files" in out
        assert ("modified: b" in out) is (step == "written"), out
        assert out.splitlines()[-1].startswith("A merge stopped midway: `dvfs merge --abort`")
        assert repo.head_id() == ours, step
        repo.ok("merge", "--abort")
        assert repo.json("merge", "other", "--json")["outcome"] == "merged", step
        assert files_of(repo, "HEAD") == MERGED, step
        assert repo.status()["merging"] is None, step
        fsck_clean(repo.root)


def test_a_merge_killed_once_its_files_are_staged_names_the_commit_that_finishes_it(
    template: Repo, tmp_path: Path
) -> None:
    """After a merge killed once the index held the merged files, `dvfs merge other`
    said "resolve it and `dvfs commit`": there was nothing to resolve. It now says every
    conflict is settled, and the commit it names works as typed."""
    repo = Repo(tmp_path / "repo")
    shutil.copytree(template.root, repo.root, symlinks=True)
    ours, theirs = repo.head_id(), Repository(repo.root).history.resolve("other").hex()
    assert repo.run("merge", "other", env={KILL_ENV: "indexed"}).code == -9
    line = repo.fail(
        "merge", "other", fragments=("every conflict settled", "`dvfs commit` records")
    )
    assert "resolve" not in line
    repo.ok("commit")  # what the line says, as typed (the merge's own message)
    hist = Repository(repo.root).history
    assert [p.hex() for p in hist.version(hist.resolve("HEAD")).parents] == [ours, theirs]
    assert files_of(repo, "HEAD") == MERGED and on_disk(repo) == MERGED
    assert repo.status()["merging"] is None
    fsck_clean(repo.root)


def test_a_merge_stopped_by_a_full_disk_names_what_finishes_it(small_disk: Path) -> None:
    """A merge stopped by a full disk while it wrote theirs' files said "nothing
    half-written was kept; free some space and run the command again", and running
    it again was refused: the merge was in progress, stopped midway. The line now
    says so, and that `dvfs merge --abort`, then the merge again, finishes it."""
    repo = init_repo(small_disk / "repo")
    repo.write("a", "a")
    repo.ok("add", ".")
    repo.commit("base")
    repo.ok("switch", "-c", "other")
    repo.write("big.bin", rand(2 << 20, seed=7))
    repo.ok("add", ".")
    repo.commit("other")
    repo.ok("switch", "main")
    repo.write("b", "b")
    repo.ok("add", ".")
    repo.commit("main")
    (small_disk / "room").write_bytes(b"\0" * (256 << 10))  # (room for the record alone)
    fill(small_disk / "fill")
    (small_disk / "room").unlink()
    line = repo.fail("merge", "other", "-m", "m", fragments=(
        "the disk is full while merging other: the merge stopped midway",
        "then `dvfs merge --abort` and `dvfs merge other` again",
    ))  # fmt: skip
    assert "nothing half-written was kept" not in line
    (small_disk / "fill").unlink()
    repo.ok("merge", "--abort")  # what the line says, as typed
    repo.ok("merge", "other", "-m", "m")
    assert repo.read("big.bin") == rand(2 << 20, seed=7) and repo.read("b") == b"b"
    st = repo.status()
    assert st["merging"] is None and st["modified"] == [] and st["staged"] == []
    fsck_clean(repo.root)


def test_abort_after_a_kill_takes_back_the_files_the_merge_combined(tmp_path: Path) -> None:
    """Killed once it had written its files, a merge that combined both sides in a file
    (a mode changed on one side and the content on the other; dvfs.yaml merged stage
    by stage) left `merge --abort` refused: "would overwrite uncommitted changes in
    dvfs.yaml, run.sh, tool.sh", files the user never touched, as the status line
    before it said to run."""
    repo = init_repo(tmp_path / "repo")
    stage = "  {0}:\n    cmd: echo {0} > {0}.txt\n    outs: [{0}.txt]\n"
    repo.write("run.sh", "echo 1\n")
    repo.write("tool.sh", "echo t\n")
    repo.write("dvfs.yaml", "stages:\n" + stage.format("a"))
    repo.ok("add", ".")
    repo.commit("base")
    repo.ok("switch", "-c", "other")
    (repo.root / "run.sh").chmod(0o755)
    repo.write("tool.sh", "echo t2\n")
    repo.write("dvfs.yaml", "stages:\n" + stage.format("a") + stage.format("b"))
    repo.ok("commit", "-a", "-m", "other")
    repo.ok("switch", "main")
    repo.write("run.sh", "echo 2\n")
    (repo.root / "tool.sh").chmod(0o755)
    repo.write("dvfs.yaml", "stages:\n" + stage.format("a") + stage.format("c"))
    repo.ok("commit", "-a", "-m", "main")
    before = {p: (repo.root / p).read_bytes() for p in ("run.sh", "tool.sh", "dvfs.yaml")}
    assert repo.run("merge", "other", env={KILL_ENV: "written"}).code == -9
    assert (repo.root / "dvfs.yaml").read_bytes() != before["dvfs.yaml"]  # (combined)
    repo.ok("merge", "--abort")
    assert {p: (repo.root / p).read_bytes() for p in before} == before
    assert not os.access(repo.root / "run.sh", os.X_OK)
    assert os.access(repo.root / "tool.sh", os.X_OK)
    st = repo.status()
    assert st["merging"] is None and st["modified"] == [] and st["staged"] == []
    assert repo.json("merge", "other", "--json")["outcome"] == "merged"
    assert os.access(repo.root / "run.sh", os.X_OK) and repo.read("run.sh") == b"echo 2\n"
    fsck_clean(repo.root)


def test_a_switch_over_a_merge_killed_midway_names_the_way_out(tmp_path: Path) -> None:
    """A merge killed before it staged its files (a conflict left, theirs' x written),
    then `dvfs switch third` over x: the refusal said to settle each conflict and
    `dvfs commit`, which a merge stopped midway refuses. It names `merge --abort`."""
    repo = init_repo(tmp_path / "repo")
    repo.write("a", "a")
    repo.write("x", "x")
    repo.ok("add", ".")
    repo.commit("base")
    for name, content in (("third", "x3"), ("other", "x2")):
        repo.ok("switch", "-c", name, "main")
        repo.write("x", content)
        repo.write("a", f"a from {name}")
        repo.ok("commit", "-a", "-m", name)
    repo.ok("switch", "main")
    repo.write("a", "a from main")
    repo.ok("commit", "-a", "-m", "main")
    assert repo.run("merge", "other", env={KILL_ENV: "written"}).code == -9
    assert repo.read("x") == b"x2"
    line = repo.fail("switch", "third", fragments=("x", "stopped midway", "dvfs merge --abort"))
    assert "dvfs commit" not in line and "settle" not in line, line
    repo.ok("merge", "--abort")  # what the line says, as typed
    repo.ok("switch", "third")
    assert repo.read("x") == b"x3" and repo.status()["merging"] is None
    fsck_clean(repo.root)


RACING_ABORT = """
import vfs.ops.merge as merge
from vfs.cli import main
class Hasher(merge.Hasher):
    def stage_many(self, *args, **kw):
        out = list(super().stage_many(*args, **kw))
        with open("d/e", "ab") as f:
            f.write(b"my line\\n")
        return iter(out)
merge.Hasher = Hasher
main()
"""


def test_abort_keeps_a_new_file_changed_after_it_found_it_the_merges(
    template: Repo, tmp_path: Path
) -> None:
    """`merge --abort` after a killed merge deletes the new files it finds holding what
    the merge wrote; a line appended to one after it was hashed went with it, and the
    abort said nothing. It is kept (untracked), named, and the abort exits 1."""
    shutil.copytree(template.root, tmp_path / "r", symlinks=True)
    repo = Repo(tmp_path / "r")
    assert repo.run("merge", "other", env={KILL_ENV: "written"}).code == -9
    proc = run_as_dvfs(repo.root, RACING_ABORT, "merge", "--abort")
    assert proc.returncode == 1, proc.stderr
    assert on_disk(repo) == {**OURS, "d/e": b"new in other" + b"my line\n"}
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "d/e" in lines[0] and "kept as changed" in lines[0], lines
    assert repo.status()["untracked"] == ["d/e"]
    fsck_clean(repo.root)
