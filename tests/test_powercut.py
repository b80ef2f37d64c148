"""Power cuts in the middle of dvfs commands: what is durable must be a whole repository.

A kill -9 leaves every completed write in the page cache (tests/test_faults.py); a
power cut loses what was not made durable. Each test here builds a repository, serves
it through ``tests.support.powercut`` (a FUSE filesystem keeping what each fsync made
durable), runs the command as a user does with the power cut before one of its
mutating operations, and checks the durable state with the CLI: ``dvfs fsck`` clean,
the branch at the old or the new version, every file of that version byte for byte,
and ``dvfs status`` saying what the working tree holds.

``python -m tests.support.powercut --seeds N`` runs each scenario with N seeded cut
points instead of the few below.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from blake3 import blake3

from tests.support import powercut
from tests.support.cli import (
    Repo,
    add_in_process,
    cli_command,
    cli_env,
    commit_files,
    commit_in_process,
    fsck_in_process,
    init_repo,
    run,
    switch_in_process,
)
from vfs import Repo as LibRepo
from vfs.errors import UsageError
from vfs.model.codec import Kind
from vfs.repo.repository import Repository

MESSAGE = "the change"
MOUNT = "cut/mnt"  # where each run's mount is (below the scenario's directory)


@dataclass
class Scenario:
    """A repository made in ``setup`` (a plain directory, all durable) and a command."""

    name: str
    setup: Path  # holds repo/
    argv: list[str]
    old: dict[str, bytes]  # files of the version HEAD names before the command
    new: dict[str, bytes]  # files of the version HEAD may name after it
    new_head: str | None = None  # that version (None: one the command makes)
    remote: tuple[str, str] | None = None  # push: the remote's main before, and after


def base_files() -> dict[str, bytes]:
    files = {f"data/d{i % 3}/f{i}.txt": f"file {i}\n".encode() * (i + 1) for i in range(12)}
    files["data/big.bin"] = random.Random(7).randbytes(300_000)
    return files


def changed(old: dict[str, bytes]) -> dict[str, bytes]:
    """``old`` with files modified, added and removed."""
    new = dict(old)
    new["data/d0/f0.txt"] = b"changed\n"
    new["data/d1/added.txt"] = b"added\n"
    new["data/big.bin"] = random.Random(8).randbytes(200_000)
    del new["data/d2/f2.txt"]
    return new


def write_tree(root: Path, old: dict[str, bytes], new: dict[str, bytes]) -> None:
    """Turn the working files ``old`` at ``root`` into ``new``."""
    for rel, data in new.items():
        if old.get(rel) != data:
            (root / rel).parent.mkdir(parents=True, exist_ok=True)
            (root / rel).write_bytes(data)
    for rel in old.keys() - new.keys():
        (root / rel).unlink()


def commit_scenario(root: Path) -> Scenario:
    """``dvfs commit`` of a staged change: files modified, added and removed."""
    setup = root / "setup"
    repo = init_repo(setup / "repo")
    old = base_files()
    commit_files(repo, old, "base")
    new = changed(old)
    write_tree(repo.root, old, new)
    add_in_process(repo, "data")
    return Scenario("commit", setup, ["commit", "-m", MESSAGE], old, new)


def add_scenario(root: Path) -> Scenario:
    """``dvfs add`` of a changed working tree (HEAD does not move)."""
    setup = root / "setup"
    repo = init_repo(setup / "repo")
    old = base_files()
    head = commit_files(repo, old, "base")
    write_tree(repo.root, old, changed(old))
    return Scenario("add", setup, ["add", "data"], old, old, head)


def checkout_scenario(root: Path) -> Scenario:
    """``dvfs switch`` to a branch at an older version: the working tree rewritten."""
    setup = root / "setup"
    repo = init_repo(setup / "repo")
    new = base_files()
    first = commit_files(repo, new, "base")
    old = changed(new)
    write_tree(repo.root, new, old)
    add_in_process(repo, "data")
    commit_in_process(repo, "second")
    assert run(repo.root, "branch", "older", first).code == 0
    return Scenario("switch", setup, ["switch", "older"], old, new, first)


def gc_scenario(root: Path) -> Scenario:
    """``dvfs gc`` freeing a deleted branch's version: packs rewritten and deleted."""
    setup = root / "setup"
    repo = init_repo(setup / "repo")
    old = base_files()
    head = commit_files(repo, old, "base")
    switch_in_process(repo, "side", create=True)
    side = changed(old)
    write_tree(repo.root, old, side)
    add_in_process(repo, "data")
    commit_in_process(repo, "side")
    switch_in_process(repo, "main")
    assert run(repo.root, "branch", "-D", "side").code == 0
    return Scenario("gc", setup, ["gc"], old, old, head)


def push_scenario(root: Path) -> Scenario:
    """``dvfs push`` of a new version to a directory remote on the same filesystem."""
    setup = root / "setup"
    repo = init_repo(setup / "repo")
    files = base_files()
    first = commit_files(repo, files, "base")
    place = root / MOUNT / "remote"  # where the remote is while the command runs
    assert run(repo.root, "remote", "add", "origin", str(place)).code == 0
    assert run(repo.root, "push").code == 0
    shutil.move(place, setup / "remote")
    shutil.rmtree(root / MOUNT.split("/")[0])
    new = changed(files)
    write_tree(repo.root, files, new)
    add_in_process(repo, "data")
    second = commit_in_process(repo, "second")
    return Scenario("push", setup, ["push"], new, new, second, (first, second))


def check_remote(sc: Scenario, outcome: powercut.Outcome, root: Path, where: str) -> str:
    """The remote after a cut: whole, its branch at the old or the new version."""
    assert sc.remote is not None
    report = dvfs_json(root, "fsck", "--remote", "origin", "--data", "--json")
    assert report["clean"] is True and report["problems"] == [], (where, report)
    tip = (outcome.state / "remote" / "refs" / "heads" / "main").read_text().strip()
    assert tip in sc.remote, (where, tip)
    return "old" if tip == sc.remote[0] else "new"


def dvfs_json(root: Path, *args: str) -> Any:
    r = run(root, *args)
    assert r.code == 0, str(r)
    return r.json()


def version_files(root: Path, rev: str) -> dict[str, bytes]:
    with LibRepo(root) as lib:
        return {f.path: lib.read_bytes(f.path, rev) for f in lib.walk(rev) if f.type == "file"}


def assert_status_truthful(root: Path, head: dict[str, bytes], where: str) -> dict[str, Any]:
    """``dvfs status --json`` says what the working tree and the staging index hold:
    the working files hashed here against the index's rows, the rows against the
    version HEAD names (``head``), or, when status says the branch moved past the
    version the index was made on (``behind``: a cut between the index and the move
    of HEAD), that version.

    (The durable state is a fresh copy, so no stat the index keeps matches: status
    hashes every file, and the check is of what the index and HEAD say.)
    """
    status: dict[str, Any] = dvfs_json(root, "status", "--json")
    working = {p: blake3(data).digest() for p, data in powercut.walk_files(root)}
    repo = Repository(root)
    try:
        index = repo.index()
        rows = {
            os.fsdecode(p): s.digest
            for p, s in index.entries.items()
            if s.kind == Kind.FILE and s.checked_out
        }
        base = index.base
    finally:
        repo.close()
    if status["behind"] is not None:
        assert base is not None, (where, status)
        head = version_files(root, base.hex())
    versioned = {p: blake3(data).digest() for p, data in head.items()}
    expect = {
        "modified": {p for p in rows.keys() & working.keys() if rows[p] != working[p]},
        "deleted": rows.keys() - working.keys(),
        "untracked": working.keys() - rows.keys(),
        "staged": {p for p in rows.keys() | versioned.keys() if rows.get(p) != versioned.get(p)},
    }
    said = {key: set(status[key]) for key in ("modified", "deleted", "untracked")}
    said["staged"] = {e["path"] for e in status["staged"]}
    assert said == expect, (where, status)
    return status


def carry_on(root: Path, where: str, status: dict[str, Any]) -> None:
    """Work goes on after the cut: ``dvfs add`` and ``dvfs commit`` of the working tree
    (their steps, in this process) make a version holding it byte for byte, and fsck
    stays clean (a pack the cut left damaged must not make the store skip objects it
    no longer holds)."""
    if status["behind"] is not None:
        return  # (commit refuses, naming `dvfs switch`: tested elsewhere)
    repo = Repo(root)
    add_in_process(repo, "data")
    try:
        commit_in_process(repo, "after the cut")
    except UsageError as exc:
        assert "nothing to commit" in str(exc), (where, exc)
    report = fsck_in_process(root)
    assert report["clean"] is True and report["problems"] == [], (where, report)
    working = {p: data for p, data in powercut.walk_files(root) if p.startswith("data/")}
    assert version_files(root, "HEAD") == working, where


def check_state(sc: Scenario, outcome: powercut.Outcome, old_head: str) -> str:
    """Check the durable state after a cut; which version HEAD names."""
    root = outcome.state / "repo"
    where = f"cut before op {outcome.cut_at} of {sc.name}: {outcome.stderr}"
    report = dvfs_json(root, "fsck", "--json")
    assert report["clean"] is True and report["problems"] == [], (where, report)
    with LibRepo(root) as lib:
        head = lib.show("HEAD", files=False)
    if head.id == old_head:
        which, want = "old", sc.old
    elif sc.new_head is not None:
        assert head.id == sc.new_head, (where, head)
        which, want = "new", sc.new
    else:
        assert head.message == MESSAGE and head.parents == (old_head,), (where, head)
        which, want = "new", sc.new
    assert version_files(root, "HEAD") == want, where
    status = assert_status_truthful(root, want, where)
    if sc.remote is not None:
        which = check_remote(sc, outcome, root, where)
    carry_on(root, where, status)
    return which


def run_scenario(
    tmp: Path,
    make: Callable[[Path], Scenario],
    picks: Callable[[list[tuple[str, str]]], list[int]],
    variant: str = "lost",
    fsync_delay: float = 0,
) -> dict[str, int]:
    """Run the scenario (made in the empty directory ``tmp``) once to its end (the
    power cut after it), then with the power cut before each op ``picks(total)``
    names (given the operations of the whole run); the outcomes counted."""
    try:
        sc = make(tmp)
        assert tmp / MOUNT == tmp / "cut" / "mnt"
        old_head = Repo(sc.setup / "repo").head_id()
        moves = sc.new_head is None or sc.new_head != old_head or sc.remote is not None
        wanted = "new" if moves else "old"
        env = cli_env({"XDG_CACHE_HOME": str(tmp / "home")})
        argv = cli_command(*sc.argv)

        def once(cut_at: int) -> tuple[powercut.Outcome, str]:
            work = tmp / "cut"  # the same paths each time: see MOUNT
            shutil.copytree(sc.setup, work / "backing", symlinks=True)
            outcome = powercut.run_cut(
                work / "backing", work, "repo", argv, env, cut_at, variant, fsync_delay
            )
            which = check_state(sc, outcome, old_head)
            shutil.rmtree(work)
            return outcome, which

        whole, which = once(0)
        assert whole.code == 0 and not whole.cut, whole.stderr
        assert which == wanted  # a command that returned: what it made survives the cut
        counts = {"ops": whole.ops, "old": 0, "new": 0}
        for cut_at in picks(whole.log):
            outcome, which = once(cut_at)
            assert outcome.cut, cut_at
            counts[which] += 1
        return counts
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


def spread(count: int, seed: int) -> Callable[[list[tuple[str, str]]], list[int]]:
    """``count`` seeded cut points among the ops (the last one always)."""

    def picks(log: list[tuple[str, str]]) -> list[int]:
        rng = random.Random(seed)
        total = len(log)
        tail = [total]
        rest = rng.sample(range(1, total + 1), min(count, total))
        return sorted(set(tail + rest))

    return picks


SCENARIOS = {
    "commit": commit_scenario,
    "add": add_scenario,
    "switch": checkout_scenario,
    "gc": gc_scenario,
    "push": push_scenario,
}


@pytest.mark.parametrize("name", sorted(SCENARIOS))
def test_power_cut_leaves_a_whole_repository(name: str, tmp_path: Path) -> None:
    """The power cut after the command returned (what it made is kept), before its
    last mutating operation and before a seeded one: each time the durable state is
    a whole repository at the old or the new version, status truthful, and work can
    go on."""
    counts = run_scenario(tmp_path, SCENARIOS[name], spread(1, 1))
    assert counts["old"] + counts["new"] >= 1


def after_store_fsyncs(log: list[tuple[str, str]]) -> list[int]:
    """The operations just after each fsync of ``.dvfs/objects``."""
    return [i + 2 for i, (op, where) in enumerate(log) if (op, where) == ("fsyncdir", STORE)]


STORE = "repo/.dvfs/objects"


def test_power_cut_after_the_store_folder_is_synced(tmp_path: Path) -> None:
    """A pack's name is made durable only once its data is.

    The packs a command finished were fsynced at the same time as their folder; a
    disk answering the folder's fsync first (here: each file's fsync answered 0.5 s
    after it was asked, while the folder's goes on) made the pack's name durable
    without its bytes, and a power cut then left a truncated pack under its real
    name, its ``.idx`` perhaps whole: fsck named it, and a later ``dvfs add`` of the
    same bytes stored nothing, the store counting them as held.
    """
    counts = run_scenario(tmp_path, add_scenario, after_store_fsyncs, fsync_delay=0.5)
    assert counts["old"] >= 1


def after_renames(log: list[tuple[str, str]]) -> list[int]:
    """The operations just after each rename."""
    return [i + 2 for i, (op, _) in enumerate(log) if op == "rename"]


def test_power_cut_with_every_rename_written_back(tmp_path: Path) -> None:
    """A filesystem may write a rename back before the renamed file's data (here:
    every name as the command left it, data only as last fsynced): a pack renamed into
    place before its data was fsynced came back truncated under its real name."""
    counts = run_scenario(tmp_path, add_scenario, after_renames, variant="names")
    assert counts["old"] >= 1


def run_seeds(seeds: int, names: list[str], variant: str, fsync_delay: float = 0) -> int:
    """The scenarios ``names`` (all if empty) with ``seeds`` seeded cut points (and
    the last few ops) each."""
    for name in names or list(SCENARIOS):
        tmp = Path(tempfile.mkdtemp(prefix="powercut-"))
        counts = run_scenario(tmp, SCENARIOS[name], spread(seeds, seeds), variant, fsync_delay)
        print(json.dumps({name: counts, "variant": variant}), flush=True)
    return 0
