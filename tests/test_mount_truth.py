"""``dvfs status MNT`` says what ``dvfs snapshot MNT`` will record, in states a user
reaches by ordinary commands in a mounted working tree.

Each case compares the status with what the next snapshot records, as
``dvfs diff`` between the two versions tells it.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import assert_error, assert_ok, fsck_clean
from tests.support.mount import commit, dvfs, mounted, write
from vfs.model.names import MAX_DEPTH
from vfs.repo.repository import Repository


@pytest.fixture(name="repo")
def repo_fixture(tmp_path: Path) -> Path:
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "d/a", b"a\n")
    commit(repo, "one", top="d")
    return root


def status(mnt: Path, home: Path) -> dict[str, Any]:
    got: dict[str, Any] = assert_ok(dvfs(mnt.parent, home, "status", str(mnt), "--json")).json()
    return {k: got[k] for k in ("added", "modified", "deleted", "renamed")}


def changes(repo: Path, home: Path) -> list[tuple[str, str]]:
    """What the last version changed, as `dvfs diff HEAD~1 HEAD --json` gives it."""
    got = assert_ok(dvfs(repo, home, "diff", "HEAD~1", "HEAD", "--json")).json()
    return sorted((c["status"], c["path"]) for c in got["changes"])


@pytest.mark.parametrize("overlay", ["daemon", "kernel"])
@pytest.mark.parametrize("how", ["replaced", "removed"])
def test_status_after_a_snapshot_of_a_hard_link(
    repo: Path, tmp_path: Path, overlay: str, how: str
) -> None:
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home, overlay=overlay):
        os.link(mnt / "d" / "a", mnt / "d" / "h")
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "a link"))
        assert status(mnt, home) == {"added": [], "modified": [], "deleted": [], "renamed": []}
        if how == "replaced":
            (mnt / "d" / "a.new").write_bytes(b"new\n")
            os.rename(mnt / "d" / "a.new", mnt / "d" / "a")
            want = {"added": [], "modified": ["d/a"], "deleted": [], "renamed": []}
        else:
            os.unlink(mnt / "d" / "a")
            want = {"added": [], "modified": [], "deleted": ["d/a"], "renamed": []}
        assert (mnt / "d" / "h").read_bytes() == b"a\n"
        assert status(mnt, home) == want
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", how))
        assert changes(repo, home) == [("modified" if how == "replaced" else "removed", "d/a")]


@pytest.mark.parametrize("overlay", ["daemon", "kernel"])
def test_status_after_an_editor_kept_a_backup_by_renaming(
    repo: Path, tmp_path: Path, overlay: str
) -> None:
    """Emacs saves ``f`` by renaming it to ``f~`` and writing a new ``f``: both are in
    the next version, so the backup is added, not a rename of ``f``."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home, overlay=overlay):
        os.rename(mnt / "d" / "a", mnt / "d" / "a~")
        (mnt / "d" / "a").write_bytes(b"edited\n")
        want = {"added": ["d/a~"], "modified": ["d/a"], "deleted": [], "renamed": []}
        assert status(mnt, home) == want
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "saved"))
        assert changes(repo, home) == [("added", "d/a~"), ("modified", "d/a")]
        # a backup written to after the rename is added too; a rename that leaves its
        # old path empty stays one
        os.rename(mnt / "d" / "a", mnt / "d" / "a~~")
        (mnt / "d" / "a").write_bytes(b"again\n")
        with open(mnt / "d" / "a~~", "ab") as f:
            f.write(b"more\n")
        os.rename(mnt / "d" / "a~", mnt / "d" / "b")
        after: dict[str, Any] = {
            "added": ["d/a~~"],
            "modified": ["d/a"],
            "deleted": [],
            "renamed": [["d/a~", "d/b"]],
        }
        if overlay == "kernel":  # (the kernel's overlay shows a rename as two changes)
            after = {**after, "added": ["d/a~~", "d/b"], "deleted": ["d/a~"], "renamed": []}
        assert status(mnt, home) == after
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "again"))
        assert changes(repo, home) == [("added", "d/a~~"), ("modified", "d/a"), ("renamed", "d/b")]
    fsck_clean(repo)


@pytest.mark.parametrize("overlay", ["daemon", "kernel"])
def test_status_after_a_file_is_moved_over_another(
    repo: Path, tmp_path: Path, overlay: str
) -> None:
    """``mv new.csv data.csv`` with both in the version: data.csv is modified and
    new.csv deleted, as the snapshot records; data.csv is not both renamed and deleted."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    (repo / "d" / "b").write_bytes(b"b\n")
    assert_ok(dvfs(repo, home, "add", "d/b"))
    assert_ok(dvfs(repo, home, "commit", "-m", "b"))
    with mounted(str(repo), mnt, home, overlay=overlay):
        os.rename(mnt / "d" / "b", mnt / "d" / "a")
        want = {"added": [], "modified": ["d/a"], "deleted": ["d/b"], "renamed": []}
        assert status(mnt, home) == want
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "moved over"))
        assert changes(repo, home) == [("modified", "d/a"), ("removed", "d/b")]
    fsck_clean(repo)


@pytest.mark.parametrize("overlay", ["daemon", "kernel"])
def test_a_file_opened_for_writing_and_not_written_is_not_modified(
    repo: Path, tmp_path: Path, overlay: str
) -> None:
    """``touch -a`` or a program opening a file read-write only to read it changes
    nothing a version records: status lists nothing, as the snapshot finds nothing."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home, overlay=overlay):
        (mnt / "d" / "b").write_bytes(b"b\n")
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "b"))
        for name in ("a", "b"):  # from the version mounted, and from the snapshot
            with open(mnt / "d" / name, "r+b") as f:
                assert f.read() == name.encode() + b"\n"
            subprocess.run(["touch", "-a", mnt / "d" / name], check=True)
        none: dict[str, list[str]] = {"added": [], "modified": [], "deleted": [], "renamed": []}
        assert status(mnt, home) == none
        assert_error(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "x"), "nothing to snapshot")
        with open(mnt / "d" / "a", "r+b") as f:  # a write is a change, of the same size too
            f.write(b"A")
        assert status(mnt, home) == {**none, "modified": ["d/a"]}
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "A"))
        assert changes(repo, home) == [("modified", "d/a")]
    fsck_clean(repo)


@pytest.mark.parametrize("overlay", ["daemon", "kernel"])
def test_a_file_holding_its_committed_bytes_is_not_modified(
    repo: Path, tmp_path: Path, overlay: str
) -> None:
    """``touch``, the same bytes written again, or an editor saving an unchanged file
    by renaming a copy over it change no content: status lists nothing (as the
    on-disk working tree's does), after a remount too; other bytes of the same size,
    or other permission bits, are a change."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    none: dict[str, list[str]] = {"added": [], "modified": [], "deleted": [], "renamed": []}
    a = mnt / "d" / "a"
    with mounted(str(repo), mnt, home, overlay=overlay):
        subprocess.run(["touch", a], check=True)
        assert status(mnt, home) == none
        a.write_bytes(b"a\n")
        assert status(mnt, home) == none
        (mnt / "d" / "a.tmp").write_bytes(b"a\n")
        os.rename(mnt / "d" / "a.tmp", a)
        assert status(mnt, home) == none
    with mounted(str(repo), mnt, home, overlay=overlay):
        assert status(mnt, home) == none
        a.write_bytes(b"A\n")
        assert status(mnt, home) == {**none, "modified": ["d/a"]}
        a.write_bytes(b"a\n")
        assert status(mnt, home) == none
        a.chmod(0o600)
        assert status(mnt, home) == {**none, "modified": ["d/a"]}
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "private"))
        assert changes(repo, home) == [("modified", "d/a")]
    fsck_clean(repo)


@pytest.mark.parametrize("overlay", ["daemon", "kernel"])
def test_a_touched_working_tree_says_it_stays_when_the_branch_moves(
    repo: Path, tmp_path: Path, overlay: str
) -> None:
    """A working tree whose only change is a new mtime lists nothing, yet keeps that
    change and so stays over its version when the branch moves: status says so and
    how to save it, never that a remount shows the new version (it does not)."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home, overlay=overlay):
        (mnt / "d" / "c").write_bytes(b"c\n")
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "c"))
        out = assert_ok(dvfs(tmp_path, home, "status", str(mnt))).out
        assert out.endswith("Nothing to snapshot, working tree clean.\n"), out
        subprocess.run(["touch", mnt / "d" / "a"], check=True)
        assert_ok(dvfs(repo, home, "switch", "main"))
        write(repo, "d/b", b"b\n")
        assert_ok(dvfs(repo, home, "add", "d/b"))
        assert_ok(dvfs(repo, home, "commit", "-m", "two"))
        got = assert_ok(dvfs(tmp_path, home, "status", str(mnt), "--json")).json()
        assert (got["modified"], got["kept"], got["head_version"]) == ([], True, 3)
        out = assert_ok(dvfs(tmp_path, home, "status", str(mnt))).out
        assert "again to show it" not in out and "Nothing to snapshot" not in out, out
        assert "so it stays over its version; `dvfs snapshot" in out, out
        assert "--branch NEW` saves them on a new branch" in out, out
    with mounted(str(repo), mnt, home, overlay=overlay):
        assert not (mnt / "d" / "b").exists()
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "t", "--branch", "touched"))
    fsck_clean(repo)


@pytest.mark.parametrize("overlay", ["daemon", "kernel"])
def test_status_after_a_directory_is_replaced_by_another(
    repo: Path, tmp_path: Path, overlay: str
) -> None:
    """``rm -r old && mv new old`` with both in the version: what old holds changed and
    new is deleted, as the snapshot records; old is not both renamed and deleted."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    for path, data in (("d/old/f1", b"1\n"), ("d/old/f2", b"2\n"), ("d/new/f1", b"one\n")):
        write(repo, path, data)
    assert_ok(dvfs(repo, home, "add", "d"))
    assert_ok(dvfs(repo, home, "commit", "-m", "two directories"))
    with mounted(str(repo), mnt, home, overlay=overlay):
        shutil.rmtree(mnt / "d" / "old")
        subprocess.run(["mv", mnt / "d" / "new", mnt / "d" / "old"], check=True)
        want = {
            "added": [],
            "modified": ["d/old/f1"],
            "deleted": ["d/new/", "d/old/f2"],
            "renamed": [],
        }
        assert status(mnt, home) == want
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "replaced"))
        assert changes(repo, home) == [
            ("modified", "d/old/f1"),
            ("removed", "d/new/f1"),
            ("removed", "d/old/f2"),
        ]
    fsck_clean(repo)


def test_status_of_a_directory_never_listed_that_replaced_another(
    repo: Path, tmp_path: Path
) -> None:
    """After a remount the daemon has not loaded the directory moved over another (nor
    its subdirectory): it is still compared with the one it replaced, file by file,
    never shown renamed while the path it took shows deleted."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    for path, data in (
        ("d/old/f1", b"1\n"), ("d/old/f2", b"2\n"), ("d/old/s/x", b"x\n"),
        ("d/new/f1", b"one\n"), ("d/new/s/x", b"x\n"), ("d/new/s/y", b"y\n"),
    ):  # fmt: skip
        write(repo, path, data)
    assert_ok(dvfs(repo, home, "add", "d"))
    assert_ok(dvfs(repo, home, "commit", "-m", "two directories"))
    with mounted(str(repo), mnt, home, overlay="daemon"):
        shutil.rmtree(mnt / "d" / "old")
        os.rename(mnt / "d" / "new", mnt / "d" / "old")
    want = {
        "added": [],
        "modified": ["d/old/f1"],
        "deleted": ["d/new/", "d/old/f2"],
        "renamed": [["d/new/s/y", "d/old/s/y"]],
    }
    with mounted(str(repo), mnt, home, overlay="daemon"):
        assert status(mnt, home) == want
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "replaced"))
        assert changes(repo, home) == [
            ("modified", "d/old/f1"),
            ("removed", "d/new/f1"),
            ("removed", "d/new/s/x"),
            ("removed", "d/old/f2"),
            ("renamed", "d/old/s/y"),
        ]
    fsck_clean(repo)


def test_status_of_a_directory_renamed_away_from_a_path_a_new_one_took(
    repo: Path, tmp_path: Path
) -> None:
    """``mv d d2 && mkdir d && mv d2/old d/old``: d2 is a new directory holding what was
    moved along (d/a, d/new), and d/old stays where it was: d/ is not shown renamed to
    d2/, as if d/old had gone with it."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    for path, data in (("d/old/f", b"1\n"), ("d/new/f", b"2\n")):
        write(repo, path, data)
    assert_ok(dvfs(repo, home, "add", "d"))
    assert_ok(dvfs(repo, home, "commit", "-m", "two directories"))
    with mounted(str(repo), mnt, home, overlay="daemon"):
        os.rename(mnt / "d", mnt / "d2")
        (mnt / "d").mkdir()
        os.rename(mnt / "d2" / "old", mnt / "d" / "old")
        want = {
            "added": ["d2/"],
            "modified": [],
            "deleted": [],
            "renamed": [["d/a", "d2/a"], ["d/new/", "d2/new/"]],
        }
        assert status(mnt, home) == want
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "moved"))
        assert changes(repo, home) == [("renamed", "d2/a"), ("renamed", "d2/new/f")]
        assert status(mnt, home) == {"added": [], "modified": [], "deleted": [], "renamed": []}
    fsck_clean(repo)


def nest(top: Path, levels: int) -> int:
    """Make ``levels`` directories ``d`` one in another below ``top`` (by descriptor:
    the path would pass PATH_MAX) and a file ``f`` in the last; returns how many
    directories the file's path in the version has above it (its slashes)."""
    fd = os.open(top, os.O_RDONLY | os.O_DIRECTORY)
    try:
        for _ in range(levels):
            os.mkdir("d", dir_fd=fd)
            fd, old = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
            os.close(old)
        os.close(os.open("f", os.O_CREAT | os.O_WRONLY, 0o644, dir_fd=fd))
    finally:
        os.close(fd)
    return levels + 1  # (below d/ of the version)


@pytest.mark.parametrize("overlay", ["daemon", "kernel"])
def test_a_snapshot_records_no_path_deeper_than_a_checkout_restores(
    repo: Path, tmp_path: Path, overlay: str
) -> None:
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home, overlay=overlay):
        assert nest(mnt / "d", MAX_DEPTH) == MAX_DEPTH + 1
        line = assert_error(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "deep"), code=2)
        assert f"nested more than {MAX_DEPTH} directories deep" in line, line
        assert "d/d/d/" in line and len(line) < 400, line
        assert assert_ok(dvfs(repo, home, "log", "--json")).json()[0]["version"] == "v1"
        # one level less is a version that a checkout restores
        os.rename(mnt / "d" / "d", mnt / "d" / "deep")
        os.rename(mnt / "d" / "deep" / "d", mnt / "d" / "d")
        os.rmdir(mnt / "d" / "deep")
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "deep"))
    assert_ok(dvfs(repo, home, "switch", "main"))
    fd, levels = os.open(repo / "d", os.O_RDONLY | os.O_DIRECTORY), 0
    while "d" in os.listdir(fd):
        fd, old = os.open("d", os.O_RDONLY | os.O_DIRECTORY, dir_fd=fd), fd
        os.close(old)
        levels += 1
    assert os.listdir(fd) == ["f"] and levels == MAX_DEPTH - 1
    os.close(fd)


def test_a_snapshot_through_the_kernels_overlay_leaves_nothing_to_keep_the_daemons_out(
    repo: Path, tmp_path: Path
) -> None:
    """What a snapshot recorded is no change: a working tree snapshotted through the
    kernel's overlay mounts with the daemon's own afterwards, showing the same."""
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home, overlay="kernel"):
        (mnt / "d" / "b").write_bytes(b"b\n")
        os.symlink("b", mnt / "d" / "l")
        (mnt / "d" / "a").write_bytes(b"a2\n")
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "kernel"))
    with mounted(str(repo), mnt, home, overlay="daemon"):
        assert status(mnt, home) == {"added": [], "modified": [], "deleted": [], "renamed": []}
        assert os.readlink(mnt / "d" / "l") == "b"
        assert (mnt / "d" / "a").read_bytes() == b"a2\n"
        assert (mnt / "d" / "l").read_bytes() == b"b\n"


def test_a_file_written_all_through_a_snapshot_is_named_with_what_to_do(
    repo: Path, tmp_path: Path
) -> None:
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    # 64 MiB (a read of it outlasts the writer's gaps), then blocks of it rewritten
    # without end: the file changes all through the snapshot, and its size is bounded
    writer = (
        "import os, random, sys\n"
        "with open(sys.argv[1], 'wb') as f:\n"
        "    f.write(os.urandom(64 << 20))\n"
        "    f.flush()\n"
        "    print('ready', flush=True)\n"
        "    while True:\n"
        "        f.seek(random.randrange(1024) << 16)\n"
        "        f.write(os.urandom(65536))\n"
        "        f.flush()\n"
    )
    with mounted(str(repo), mnt, home, overlay="kernel"):
        live = mnt / "d" / "live"
        proc = subprocess.Popen(
            [sys.executable, "-c", writer, str(live)], stdout=subprocess.PIPE, text=True
        )
        try:
            assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
            r = dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "live")
        finally:
            proc.kill()
            proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        line = assert_error(r, code=2)
        assert line == (
            "dvfs: error: d/live kept changing while it was read: snapshot again when it is "
            "no longer being written"
        ), line
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "still"))


def test_a_snapshot_that_fails_on_a_file_names_it(repo: Path, tmp_path: Path) -> None:
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(repo), mnt, home):
        (mnt / "d" / "b").write_bytes(b"b\n")
        os.rename(repo, tmp_path / "moved")  # the repository moved away under the mount
        try:
            line = assert_error(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "b"), code=1)
        finally:
            os.rename(tmp_path / "moved", repo)
        assert f"the repository {repo} was moved or removed while mounted: move it back" in line
        assert_ok(dvfs(tmp_path, home, "snapshot", str(mnt), "-m", "b"))
