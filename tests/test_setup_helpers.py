"""The suite's in-process setup (``commit_files``) leaves what ``dvfs add`` and ``dvfs
commit`` as processes leave: the tests that use it look at the same repository."""

from __future__ import annotations

import os
from typing import Any

from tests.support.cli import (
    RepoFactory,
    commit_files,
    make_repo_fixture,  # noqa: F401  (a fixture)
)
from tests.support.data import rand

V1: dict[str, bytes | str] = {
    "data/a.csv": b"id\n1\n",
    "data/raw/b.bin": rand(200_000, seed=5),
    "data/__pycache__/m.pyc": b"ignored by the built-in rules",
    "data/skip.tmp": b"ignored by .dvfsignore",
    "notes.txt": "one\n",
}
V2: dict[str, bytes | str] = {"data/a.csv": b"id\n1\n2\n", "extra/c.txt": b"new\n"}


def masked(value: Any, root: str) -> Any:
    """``value`` with what differs between two repositories made apart replaced: ids and
    times (made of the time), and the repository's own path."""
    if isinstance(value, dict):
        return {
            k: "ID/TIME"
            if k in ("id", "created", "time_ns", "new", "old", "prev", "mtime")
            else masked(v, root)
            for k, v in value.items()
        }
    if isinstance(value, list):
        return [masked(v, root) for v in value]
    if isinstance(value, str):
        return "ID/TIME" if len(value) == 64 else value.replace(root, "ROOT")
    return value


def test_commit_files_leaves_what_the_commands_leave(make_repo: RepoFactory) -> None:
    made = {}
    for name in ("here", "cli"):
        repo = make_repo(name, git_repo=True)
        repo.write(".dvfsignore", "*.tmp\n")
        repo.write("data/a.csv", b"")
        os.symlink("a.csv", repo.root / "data" / "link")
        for message, files in (("one", V1), ("two", V2)):
            files = {**files, ".dvfsignore": "*.tmp\n"}
            if name == "here":
                commit_files(repo, files, message)
            else:
                for rel, data in files.items():
                    repo.write(rel, data)
                repo.ok("add", *sorted({rel.split("/")[0] for rel in files}))
                repo.ok("commit", "-m", message)
        made[name] = repo
    views = {}
    for name, repo in made.items():
        root = str(repo.root)
        views[name] = {
            "fsck": repo.fsck_clean(),
            "status": repo.status(),
            "log": masked(repo.json("log", "--json"), root),
            "audit": masked(repo.json("audit", "--json"), root),
            "ls": masked(repo.json("ls", "-r", "--json"), root),
            ".gitignore": repo.read(".gitignore"),
            "ignored": repo.run("check-ignore", "data/skip.tmp").out,
        }
    assert views["here"] == views["cli"]
    assert views["here"]["log"][-1]["files"] == 5  # the ignored files were left out
    assert views["here"]["log"][0]["author"] == "Test Author <test@example.org>"
