"""The suite's in-process setup (``commit_files``) leaves what ``dvfs add`` and ``dvfs
commit`` as processes leave: the tests that use it look at the same repository."""

from __future__ import annotations

import gc
import os
import threading
from collections import Counter
from collections.abc import Callable
from typing import Any

import pytest

from tests.support.cli import (
    Repo,
    RepoFactory,
    assert_ok,
    commit_files,
    fsck_clean,
    fsck_in_process,
    make_repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from tests.support.data import rand
from vfs.store.objects import ObjectStore

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


# ------------------------------------------------------------------- fsck in this process


def flip_a_byte(repo: Repo, content: bytes) -> None:
    """Change one byte in the middle of the stored copy of ``content`` (stored as is)."""
    for pack in (repo.root / ".dvfs" / "objects").glob("*.pack"):
        at = pack.read_bytes().find(content)
        if at >= 0:
            with open(pack, "r+b") as fh:
                fh.seek(at + len(content) // 2)
                byte = fh.read(1)
                fh.seek(at + len(content) // 2)
                fh.write(bytes([byte[0] ^ 1]))
            return
    raise AssertionError("no stored copy")


def remove_the_pack_of(repo: Repo, content: bytes) -> None:
    """Remove the pack (and its index) that holds ``content``."""
    for pack in (repo.root / ".dvfs" / "objects").glob("*.pack"):
        if content in pack.read_bytes():
            pack.unlink()
            pack.with_suffix(".idx").unlink()
            return
    raise AssertionError("no stored copy")


BIG = rand(50_000, seed=7)  # one chunk, stored uncompressed
DAMAGE: dict[str, Callable[[Repo], object]] = {
    "a chunk's bytes changed": lambda repo: flip_a_byte(repo, BIG),
    "a chunk's pack removed": lambda repo: remove_the_pack_of(repo, BIG),
    "a branch that does not read": lambda repo: (repo.root / ".dvfs/refs/heads/main").write_bytes(
        b"not an id\n"
    ),
    "a pack's header changed": lambda repo: flip_a_byte(
        repo, next((repo.root / ".dvfs/objects").glob("*.pack")).read_bytes()[:16]
    ),
}


def left_by_this_process() -> dict[str, Any]:
    """What a check in this process could leave behind: threads, descriptors, its
    directory, its environment."""
    return {
        "threads": Counter(t.name for t in threading.enumerate()),
        "fds": set(os.listdir("/proc/self/fd")),
        "cwd": os.getcwd(),
        "env": dict(os.environ),
    }


def added_since(before: dict[str, Any]) -> dict[str, Any]:
    """What this process holds now that it did not hold at ``before``. Only additions
    count: a store an earlier test left to the garbage collector may be collected at any
    moment, and its threads and descriptors go then."""
    now = left_by_this_process()
    return {
        "threads": sorted((now["threads"] - before["threads"]).elements()),
        "fds": sorted(now["fds"] - before["fds"]),
        "cwd": now["cwd"] if now["cwd"] != before["cwd"] else None,
        "env": {k: v for k, v in now["env"].items() if before["env"].get(k) != v}
        | {k: None for k in before["env"].keys() - now["env"].keys()},
    }


@pytest.mark.parametrize("damage", sorted(DAMAGE))
def test_fsck_in_this_process_finds_the_damage_the_command_finds(
    make_repo: RepoFactory, damage: str
) -> None:
    """``fsck_clean`` checks in the test's process: it must find what ``dvfs fsck``
    finds, after it has read the same repository clean once (nothing read is kept)."""
    repo = make_repo()
    commit_files(repo, {"d/big.bin": BIG, "d/small.txt": "small"}, "v1")
    commit_files(repo, {"e/more.txt": "more"}, "v2")
    gc.collect()  # what earlier tests left unreferenced goes now, not during the check
    before = left_by_this_process()
    assert fsck_clean(repo.root)["versions"] == 2
    DAMAGE[damage](repo)
    here = fsck_in_process(repo.root)
    assert added_since(before) == {"threads": [], "fds": [], "cwd": None, "env": {}}
    there = run(repo.root, "fsck", "--json")
    assert there.code == 1, str(there)
    assert here == there.json()
    assert here["clean"] is False and here["problems"], here
    with pytest.raises(AssertionError):
        fsck_clean(repo.root)


def test_fsck_in_this_process_removes_the_temporaries_the_command_removes(
    make_repo: RepoFactory,
) -> None:
    reports = []
    for name in ("here", "there"):
        repo = make_repo(name)
        commit_files(repo, {"d/a.txt": "a"}, "v1")
        for where in (".dvfs", ".dvfs/objects", "d"):
            (repo.root / where / ".tmp-a.txt.0123abcd7").write_bytes(b"half")
        if name == "here":
            reports.append(fsck_in_process(repo.root))
        else:
            reports.append(assert_ok(run(repo.root, "fsck", "--json")).json())
        assert not list(repo.root.rglob(".tmp-*"))
    assert reports[0] == reports[1]
    assert reports[0]["temporaries_removed"] == 3


def test_fsck_clean_checks_in_a_process_while_the_test_has_patched_code(
    make_repo: RepoFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A test that replaced code of its process (here: a store that finds every object
    good) gets the check of the code on disk: ``dvfs fsck`` as a process."""
    repo = make_repo()
    commit_files(repo, {"d/big.bin": BIG}, "v1")
    flip_a_byte(repo, BIG)
    blind = lambda self, oid: None  # noqa: E731
    monkeypatch.setattr(ObjectStore, "verify", blind)
    assert fsck_in_process(repo.root)["clean"] is True  # what the patched code sees
    with pytest.raises(AssertionError, match="is corrupt"):
        fsck_clean(repo.root)
    monkeypatch.undo()
    assert fsck_in_process(repo.root)["clean"] is False
    with pytest.raises(AssertionError, match="is corrupt"):
        fsck_clean(repo.root)
    with pytest.MonkeyPatch.context() as m:  # (a patch made otherwise than by the fixture)
        m.setattr(ObjectStore, "verify", blind)
        with pytest.raises(AssertionError, match="is corrupt"):
            fsck_clean(repo.root)
