"""What `dvfs add` and `dvfs commit` load: the code they run, not the row diff's.

Each command is a new process, and every module it imports is paid for before the
first byte is read: `dvfs add` of a large file imported the row diff (`vfs.ops.diff`,
`vfs.ops.rows`, 5 ms of start-up) for a helper of `dvfs rm` only.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import commit_files, init_repo
from tests.test_listing_imports import loaded

ROW_DIFF = {"vfs.ops.diff", "vfs.ops.rows"}


def test_add_and_commit_load_no_row_diff(tmp_path: Path) -> None:
    repo = init_repo(tmp_path / "repo")
    commit_files(repo, {"d/x": b"one\n"}, "one")
    (repo.root / "big.bin").write_bytes(bytes(range(256)) * 4096)
    got = loaded(repo.root, "add", "big.bin")
    assert "vfs.worktree.ingest" in got and not got & ROW_DIFF, sorted(got & ROW_DIFF)
    got = loaded(repo.root, "commit", "-m", "big")
    assert "vfs.ops.commit" in got and not got & ROW_DIFF, sorted(got & ROW_DIFF)
    repo.fsck_clean()
