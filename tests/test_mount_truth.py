"""``dvfs status MNT`` says what ``dvfs snapshot MNT`` will record, in states a user
reaches by ordinary commands in a mounted working tree.

Each case compares the status with what the next snapshot records, as
``dvfs diff`` between the two versions tells it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import assert_ok
from tests.support.mount import commit, dvfs, mounted, write
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
