"""Refs shared through a remote by several clones: what a push that cannot move one says.

Two or three clones of one directory remote, used as careful users would; each test
checks the exit status and the one error line a script or a person relies on.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from tests.support.cli import (
    Repo,
    RepoFactory,
    Result,
    assert_error,
    assert_ok,
    commit_files,
    init_repo,
    make_repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from tests.support.data import rand
from tests.support.remote import (  # noqa: F401  (fixtures)
    Remote,
    dir_remote_fixture,
    remote_fixture,
)
from vfs.ops import sync
from vfs.ops.commit import commit
from vfs.remote.config import get_remote
from vfs.repo.repository import Repository
from vfs.worktree.pools import Workers


def test_a_tag_the_remote_holds_at_another_version_fails_the_push(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """As `git push --tags`: the other tags go, the refused one makes the exit non-zero."""
    a = make_repo("a")
    v1 = commit_files(a, {"data/x.txt": b"one\n"}, "one")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")
    a.ok("tag", "best", v1)
    a.ok("push", "--tags")
    v2 = commit_files(b, {"data/x.txt": b"two\n"}, "two")
    b.ok("tag", "best", v2)
    b.ok("tag", "other", v2)

    line = b.fail("push", "--tags", fragments=("tag best", v1[:10], v2[:10], "dvfs tag -d best"))
    assert dir_remote.backend.get("refs/tags/best").decode().strip() == v1  # never replaced
    # what could go went: the branch and the other tag
    assert dir_remote.ref() == v2
    assert dir_remote.backend.get("refs/tags/other").decode().strip() == v2
    assert "\n" not in line
    # the hint works: drop ours, take theirs, and the push is clean
    b.ok("tag", "-d", "best")
    b.ok("fetch")
    b.ok("push", "--tags")
    a.fsck_clean()
    b.fsck_clean()


def test_fetch_pull_and_log_from_a_remote_that_went_empty_say_so(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A NAS mount point with nothing mounted: the directory is there, empty. A clone
    that fetched from it is told so, as a push is, not "no branch main" or "no versions
    yet", and not a quiet "fetched 0 objects"; its remote branches stay as they were."""
    a = make_repo("a")
    v1 = commit_files(a, {"d/x": b"x"}, "x")
    remote = tmp_path / "nas"
    a.ok("remote", "add", "origin", str(remote))
    a.ok("push")
    remote.rename(tmp_path / "elsewhere")
    remote.mkdir()
    for args in (("fetch",), ("pull",), ("log", "--remote", "origin")):
        a.fail(*args, fragments=("holds no dvfs repository", "origin/main", "mounted"))
    assert list(remote.iterdir()) == []
    assert Repository(a.root).refs.get("refs/remotes/origin/main") == bytes.fromhex(v1)
    assert "Up to date with origin/main" in a.ok("status").out


def test_a_clone_of_a_remote_nobody_pushed_to_says_what_to_do(tmp_path: Path) -> None:
    """An empty directory (a new bucket), or one whose format record is all there is
    (a first push killed early): the clone leaves nothing and says how to start one."""
    empty = tmp_path / "empty"
    empty.mkdir()
    started = tmp_path / "started"
    a = init_repo(tmp_path / "a")
    commit_files(a, {"d/x": b"x"}, "x")
    a.ok("remote", "add", "origin", str(started))
    a.ok("push")
    for key in Path(started).rglob("*"):
        if key.is_file() and key.name != "format":
            key.unlink()
    for remote in (empty, started):
        line = assert_error(run(tmp_path, "clone", str(remote), "b"), "nothing to clone")
        assert "dvfs init b" in line and f"dvfs remote add origin {remote}" in line, line
        assert "dvfs push" in line, line
        assert not (tmp_path / "b").exists()


def test_a_clone_of_a_repository_says_it_is_no_remote_and_how_to_make_one(
    tmp_path: Path,
) -> None:
    """`dvfs clone a b`, a being a repository (as git clones one), said "a holds no dvfs
    repository" and told to add it as a remote, which push then refuses (it holds
    files). It says a is a repository, not a remote, and how to make one; doing as
    it says makes a clone."""
    a = init_repo(tmp_path / "a")
    commit_files(a, {"d/x": b"x"}, "x")
    line = assert_error(run(tmp_path, "clone", "a", "b"), "a is a dvfs repository, not a remote")
    assert "holds no" not in line and "`dvfs push --remote NAME`" in line, line
    assert not (tmp_path / "b").exists()
    a.ok("remote", "add", "share", str(tmp_path / "share"))
    a.ok("push", "--remote", "share")
    assert_ok(run(tmp_path, "clone", "share", "b"))
    Repo(tmp_path / "b").fsck_clean()
    a.fsck_clean()


def test_the_hint_of_a_clone_of_an_empty_relative_directory_works_as_given(
    tmp_path: Path,
) -> None:
    """`dvfs clone empty b` of an empty directory named relative to here told to run
    `dvfs remote add origin empty` in b, where empty names b/empty, inside the
    repository, which add refuses. The hint names the directory from the root, and
    doing as it says starts the remote there."""
    (tmp_path / "empty").mkdir()
    line = assert_error(run(tmp_path, "clone", "empty", "b"), "nothing to clone")
    assert f"`dvfs remote add origin {tmp_path / 'empty'}`" in line, line
    assert_ok(run(tmp_path, "init", "b"))
    b = Repo(tmp_path / "b")
    b.ok("remote", "add", "origin", str(tmp_path / "empty"))
    commit_files(b, {"d/x": b"x"}, "x")
    b.ok("push")
    assert_ok(run(tmp_path, "clone", "empty", "c"))
    c = Repo(tmp_path / "c")
    assert c.read("d/x") == b"x"
    c.fsck_clean()


def test_a_pull_of_a_branch_deleted_on_the_remote_says_so(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """Another clone's branch, deleted on the remote behind this clone's back: the pull
    says it is gone there and where it last was; nothing moves."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"x"}, "x")
    dir_remote.add_to(a)
    a.ok("switch", "-c", "feat")
    feat = commit_files(a, {"d/f": b"f"}, "f")
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b", "--rev", "feat")
    dir_remote.backend.delete("refs/heads/feat")
    line = b.fail(
        "pull", fragments=("origin has no branch feat", "deleted", "origin/feat", "dvfs push")
    )
    assert feat[:10] in line
    assert b.head_id() == feat
    b.fsck_clean()


def test_a_push_that_finds_the_remote_up_to_date_brings_the_remote_branch_along(
    dir_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """b gets v2 through another remote (backup) after a pushed it to origin too: status
    says b is ahead of origin/main, and `dvfs push`, which it names, finds origin up to
    date; from then on status says so, not "ahead" again and again."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")
    backup = str(tmp_path / "backup")
    a.ok("remote", "add", "backup", backup)
    commit_files(a, {"d/x": b"2"}, "two")
    a.ok("push")
    a.ok("push", "--remote", "backup")
    b.ok("remote", "add", "backup", backup)
    b.ok("pull", "--remote", "backup")
    hint = "Ahead of origin/main by 1 version: `dvfs push --remote origin` publishes it"
    assert hint in b.ok("status").out
    assert "main: already up to date" in b.ok("push", "--remote", "origin").out
    assert "Up to date with origin/main." in b.ok("status").out
    b.fsck_clean()


def test_fsck_after_a_remote_is_removed_no_longer_counts_on_it(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """A clone holds only the data of what it checked out; the rest is the remote's. Once
    that remote is removed, no command can fetch it: fsck names it missing, not "held by
    a remote; commands fetch them when needed"."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"one\n"}, "one")
    commit_files(a, {"d/x": b"two\n"}, "two")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")
    assert b.fsck_clean()["remote_only"] == 1  # v1's chunk, on the remote
    b.fail("remote", "remove", "origin", fragments=("alone holds the data of 1 chunk(s)",))
    b.ok("remote", "remove", "origin", "--force")
    r = b.run("fsck", "--json")
    assert r.code != 0, r
    report = r.json()
    assert not report["clean"] and report["remote_only"] == 0, r
    assert any("d/x" in p for p in map(str, report["problems"])), r


def test_fsck_no_longer_counts_on_a_remote_dvfs_toml_stopped_naming(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """As above, when dvfs.toml changed under the clone (a `git pull`) rather than by
    `remote remove`: checkout cannot fetch the chunk, and fsck says it is missing."""
    a = make_repo("a", git_repo=True)
    commit_files(a, {"d/x": b"one\n"}, "one")
    commit_files(a, {"d/x": b"two\n"}, "two")
    a.ok("remote", "add", "origin", str(tmp_path / "origin"), "--local")
    a.ok("push")
    b = Repo(tmp_path / "b")
    assert_ok(run(tmp_path, "clone", str(tmp_path / "origin"), "b"))
    (b.root / "dvfs.toml").write_text(f'[remotes.origin]\nurl = "{tmp_path / "origin"}"\n')
    b.ok("remote", "remove", "origin", "--local")  # (dvfs.toml's origin stays: a clone's)
    assert b.fsck_clean()["remote_only"] == 1
    (b.root / "dvfs.toml").write_text("")  # a teammate dropped it
    b.fail("checkout", "v1", fragments=("no remote is set",))
    r = b.run("fsck", "--json")
    assert r.code != 0, r
    report = r.json()
    assert not report["clean"] and report["remote_only"] == 0, r
    assert any("d/x" in p for p in map(str, report["problems"])), r


def moved_after_a_prune(make_repo: RepoFactory, tmp_path: Path) -> Repo:
    """A repository whose v1 data was pruned for origin, whose URL dvfs.toml then
    changes (as a `git pull` of a teammate's edit does) to a place without it."""
    a = make_repo("a", git_repo=True)
    commit_files(a, {"d/x": b"one\n"}, "one")
    commit_files(a, {"d/x": b"two\n"}, "two")
    a.ok("remote", "add", "origin", str(tmp_path / "old"))  # (in dvfs.toml)
    a.ok("push")
    assert a.json("store", "prune", "--json")["chunks_dropped"] == 1
    (tmp_path / "new").mkdir()
    (a.root / "dvfs.toml").write_text(f'[remotes.origin]\nurl = "{tmp_path / "new"}"\n')
    return a


def test_a_changed_url_keeps_the_old_place_of_pruned_data_until_told(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """The old place alone holds v1's data: what this clone kept of it (the only record
    of where that data is) stays, every command that would use the new place says so
    and names the old one, and adding the old place as a remote makes the data readable.
    Before, the warning spoke of branch copies only, and fsck then named the chunk
    missing and `cat` said to push it from a repository that has it."""
    a = moved_after_a_prune(make_repo, tmp_path)
    old = str(tmp_path / "old")
    r = a.ok("status")
    assert "only at" in r.err and old in r.err and "origin/main" not in r.out, r
    report = a.fsck_clean()
    assert report["remote_only"] == 0 and report["held_back"] == {"origin": 1}, report
    for args in (("cat", "v1:d/x"), ("fetch",), ("checkout", "v1")):
        a.fail(*args, fragments=("held only at", old, "nothing was done", "--force"))
    a.fail("remote", "remove", "origin", fragments=("alone holds the data of 1 chunk(s)",))
    a.ok("remote", "add", "was", old, "--local")
    a.ok("fetch", "--remote", "was")
    r = a.ok("cat", "v1:d/x")  # (was holds it now: origin moves on)
    assert r.raw == b"one\n" and "was dropped" in r.err and "cannot be read" not in r.err, r
    a.ok("fetch", "--remote", "origin")
    a.fsck_clean()


def test_fsck_says_data_held_at_a_moved_remotes_old_place_is_not_fetched(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """While origin's old place alone holds v1's pruned chunk, the commands that need it
    refuse (above); `dvfs fsck` still said "a remote's index, as last read, lists them;
    commands fetch them when needed", and counted it in `remote_only` as data a command
    fetches. It names the old place's chunks apart now, as refused until the old place
    is added or the URL set back; once the old place is fetched as another remote they
    are fetched when needed again."""
    a = moved_after_a_prune(make_repo, tmp_path)
    r = a.ok("fsck")
    assert "fetch them when needed" not in r.out, r
    assert (
        "1 chunk(s) are not stored here (never downloaded, or pruned) and are held only at "
        "remote origin's old place: commands that need them refuse until it is added as "
        "another remote and fetched, or origin's URL is set back" in r.out
    ), r
    assert str(tmp_path / "old") in r.err, r  # (the warning names the old place)
    a.fail("cat", "v1:d/x", fragments=("held only at",))
    a.ok("remote", "add", "was", str(tmp_path / "old"), "--local")
    a.ok("fetch", "--remote", "was")
    r = a.ok("fsck")
    assert "commands fetch them when needed" in r.out and "old place" not in r.out, r
    report = a.fsck_clean()
    assert report["remote_only"] == 1 and report["held_back"] == {}, report
    assert a.cat("v1:d/x") == b"one\n"


def repaired_after_a_move(a: Repo, tmp_path: Path, data: bytes) -> tuple[Result, Any]:
    """Point origin at an empty new place by hand, damage the stored copy of ``data``
    (with no good copy in the working tree: ``d/b.bin`` changed since), and run `dvfs
    fsck --repair --json`: the result and its report, once checked that the chunk was
    not dropped as "a remote holds it" but named as held only by the old place."""
    (tmp_path / "new").mkdir()
    (a.root / "dvfs.toml").write_text(f'[remotes.origin]\nurl = "{tmp_path / "new"}"\n')
    (hit,) = [f for f in (a.root / ".dvfs" / "objects").rglob("*") if data in f.read_bytes()]
    raw = bytearray(hit.read_bytes())
    raw[raw.find(data) + 100] ^= 1
    hit.write_bytes(bytes(raw))
    (a.root / "d" / "b.bin").write_bytes(b"changed since\n")  # (no good copy here)
    r = a.run("fsck", "--repair", "--json")
    assert r.code == 1, r
    report = r.json()
    assert "a remote holds it" not in json.dumps(report["repaired"]), report
    (problem,) = report["problems"]
    assert "only remote origin's old place holds it" in problem, report
    assert "commands that need it refuse" in problem, report
    return r, report


def test_fsck_repair_of_a_chunk_only_a_held_back_remote_holds_says_it_is_refused(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A damaged chunk that only origin's old place holds (its URL changed while v1's
    pruned data is there alone): `dvfs fsck --repair` dropped it saying "dropped; a
    remote holds it" and exited 0, while `cat` of its file refused. It says now that
    only the old place holds it, that commands refuse and what to run, and exits 1;
    fsck then counts it with the old place's; once the old place is fetched as another
    remote the file reads again."""
    a = make_repo("a", git_repo=True)
    commit_files(a, {"d/x": b"one\n"}, "one")
    data = rand(50 * 1024, seed=41)  # (one chunk, stored as it is)
    commit_files(a, {"d/x": b"two\n", "d/b.bin": data}, "two")
    a.ok("remote", "add", "origin", str(tmp_path / "old"))
    a.ok("push")
    assert a.json("store", "prune", "--json")["chunks_dropped"] == 1
    _, report = repaired_after_a_move(a, tmp_path, data)
    assert report["held_back"] == {"origin": 2} and report["remote_only"] == 0, report
    a.fail("cat", "v2:d/b.bin", fragments=("held only at",))
    assert a.fsck_clean()["held_back"] == {"origin": 2}
    a.ok("remote", "add", "was", str(tmp_path / "old"), "--local")
    a.ok("fetch", "--remote", "was")
    assert a.cat("v2:d/b.bin") == data
    a.fsck_clean()


def test_fsck_repair_counts_on_no_copy_kept_from_a_moved_remotes_old_place(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """origin's URL changed by hand while every chunk was stored here: `dvfs fsck
    --repair` dropped a damaged chunk saying "a remote holds it; commands fetch it when
    needed", counting on what this clone kept of the old place. Once dropped, only the
    old place held it and `cat` refused. It says now that only the old place holds it,
    that commands refuse and what to run, and exits 1; once the old place is fetched as
    another remote the file reads again."""
    a = make_repo("a", git_repo=True)
    data = rand(50 * 1024, seed=43)  # (one chunk, stored as it is)
    commit_files(a, {"d/x": b"one\n", "d/b.bin": data}, "one")
    a.ok("remote", "add", "origin", str(tmp_path / "old"))
    a.ok("push")
    a.ok("fetch")  # (what origin holds, as this clone keeps it)
    r, report = repaired_after_a_move(a, tmp_path, data)
    assert report["remote_only"] == 0 and report["held_back"] == {"origin": 1}, report
    assert "nothing of it was dropped" in r.err, r  # (what this clone kept of the old place)
    a.fail("cat", "v1:d/b.bin", fragments=("held only at", str(tmp_path / "old")))
    a.ok("remote", "add", "was", str(tmp_path / "old"), "--local")
    a.ok("fetch", "--remote", "was")
    assert a.cat("v1:d/b.bin") == data
    a.fsck_clean()


def test_fetch_force_moves_a_remote_to_its_new_place_and_says_what_went(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    a = moved_after_a_prune(make_repo, tmp_path)
    r = a.ok("fetch", "--force")
    assert "1 chunk(s)" in r.err and "cannot be read from here" in r.err, r
    r = a.run("fsck", "--json")
    assert r.code != 0 and r.json()["remote_only"] == 0, r


def test_a_remote_removed_and_added_again_elsewhere_starts_its_audit_check_afresh(
    dir_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """Where this clone last saw the old remote's audit chain end is no claim about the
    new one: `audit verify --remote` finds the new chain intact, not "deleted from
    the end"."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    dir_remote.add_to(a)
    a.ok("push")
    commit_files(a, {"d/x": b"2"}, "two")
    a.ok("push")
    a.ok("audit", "verify", "--remote", "origin")  # 2 entries, known here
    b = make_repo("b")  # the team's new remote, made by someone else: one entry
    commit_files(b, {"d/y": b"y"}, "y")
    b.ok("remote", "add", "origin", str(tmp_path / "new"))
    b.ok("push")
    a.ok("remote", "remove", "origin")
    a.ok("remote", "add", "origin", str(tmp_path / "new"))
    out = a.ok("audit", "verify", "--remote", "origin").out
    assert "1 entries: intact" in out or "1 entry: intact" in out, out


def test_a_partial_clone_pushes_to_a_second_remote_what_only_the_first_holds(
    dir_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A clone holds the data of what it checked out only. Pushed to a backup remote,
    the older versions' data comes from origin first (as a checkout's would), and the
    backup ends up whole: a clone of it has every version's files."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"one\n"}, "one")
    commit_files(a, {"d/x": b"two\n"}, "two")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")
    assert b.fsck_clean()["remote_only"] == 1  # v1's data stayed on origin
    backup = tmp_path / "backup"
    b.ok("remote", "add", "backup", str(backup))
    b.ok("push", "--remote", "backup")
    c = Repo(tmp_path / "c")
    assert_ok(run(tmp_path, "clone", str(backup), "c"))
    assert c.cat("v1:d/x") == b"one\n" and c.read("d/x") == b"two\n"
    c.ok("remote", "remove", "origin")  # backup alone: every byte is here now
    assert c.fsck_clean()["remote_only"] == 0
    b.fsck_clean()


def test_a_push_finds_the_data_another_process_stored_since_the_store_was_opened(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """A long-lived process (a URL mount's daemon, a script using the library) whose
    store was read before another process (`dvfs add`, or add's own hashing helper)
    stored the chunks it then commits and pushes: they are not taken for data this
    clone lacks."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"one\n"}, "one")
    dir_remote.add_to(a)
    repo = Repository.find(a.root)
    assert not repo.store.has(bytes(32))  # the store is read now
    a.write("d/y", "two\n")
    a.ok("add", "d")  # the chunk, stored by another process
    v2 = commit(repo, "two", {}).oid  # the trees, by this one
    with Workers() as w:  # in this process, as the daemon and scripts push
        report = sync.push(repo, get_remote(repo, "origin"), [], w)
    assert not report.refused and dir_remote.ref() == v2.hex()
    b, _ = dir_remote.clone(a.root.parent, "b")
    assert b.read("d/y") == b"two\n"
    b.fsck_clean()
    a.fsck_clean()


def test_a_remote_named_inside_another_is_refused(make_repo: RepoFactory, tmp_path: Path) -> None:
    """Remotes team and team/a would share refs/remotes/team/: team's branch a/main and
    team/a's main are one ref, and removing team took team/a's branches with it."""
    a = make_repo("a")
    a.ok("remote", "add", "team", str(tmp_path / "t"))
    a.fail(
        "remote",
        "add",
        "team/a",
        str(tmp_path / "ta"),
        fragments=("team/a", "team", "another name"),
    )
    a.ok("remote", "add", "squad/a", str(tmp_path / "sa"))
    a.fail("remote", "add", "squad", str(tmp_path / "s"), fragments=("squad", "squad/a"))
    a.ok("remote", "add", "teams", str(tmp_path / "ts"))  # a longer name is no folder of it
    assert sorted(row["name"] for row in a.json("remote", "list", "--json")) == [
        "squad/a",
        "team",
        "teams",
    ]


def test_a_shared_remote_around_a_clones_own_leaves_its_branches_alone(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """This clone's team/a, then a teammate's dvfs.toml naming team (add refuses that
    pair, a committed file cannot be refused at add): pruning team or removing it
    leaves team/a's branches, which share refs/remotes/team/."""
    a = make_repo("a", git_repo=True)
    v1 = commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "team/a", str(tmp_path / "ta"), "--local")
    a.ok("push", "--remote", "team/a")
    (a.root / "dvfs.toml").write_text(f'[remotes.team]\nurl = "{tmp_path / "t"}"\n')
    a.ok("push", "--remote", "team")
    assert a.ok("fetch", "--remote", "team", "--prune").out.count("gone") == 0
    assert a.ok("log", "-n", "1", "team/a/main").out
    a.ok("remote", "remove", "team")
    assert a.json("log", "-n", "1", "--json", "team/a/main")[0]["id"] == v1
    a.fail("log", "team/main")
    a.fsck_clean()


def test_branches_of_a_remote_dvfs_toml_no_longer_names_are_shown_and_removable(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A teammate drops remote old from dvfs.toml and `git pull` brings that: this
    clone's old/main stays (as git keeps a remote's copies until `git remote remove`),
    `branch -r` says that no remote old is configured, and `remote remove old` deletes
    it with what was kept of old; a name that is not a remote's changes nothing."""
    a = make_repo("a", git_repo=True)
    commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "old", str(tmp_path / "old"))
    a.ok("remote", "add", "origin", str(tmp_path / "origin"), "--default")
    a.ok("push", "--remote", "old")
    a.ok("push", "--remote", "origin")
    (a.root / "dvfs.toml").write_text(f'[remotes.origin]\nurl = "{tmp_path / "origin"}"\n')

    rows = a.json("branch", "-r", "--json")
    assert [(r["name"], r["configured"]) for r in rows] == [
        ("old/main", False),
        ("origin/main", True),
    ]
    lines = a.ok("branch", "-r").out.splitlines()
    assert "no remote old is configured: `dvfs remote remove old` deletes it here" in lines[0]
    assert lines[1].split() == ["origin/main", "v1", rows[1]["id"][:10]]

    out = a.ok("fetch", "--prune").out
    assert "old/main  kept: no remote old is configured (`dvfs remote remove old`" in out
    assert a.json("fetch", "--prune", "--json")["unconfigured"] == ["old/main"]
    a.fail("remote", "remove", "../old", fragments=("unknown remote ../old",))
    a.fail("remote", "remove", "nope", fragments=("unknown remote nope",))
    out = a.ok("remote", "remove", "old").out
    assert out.splitlines() == [
        "old/main  deleted",
        "removed what this clone kept of remote old (no settings name it any more)",
    ]
    assert [r["name"] for r in a.json("branch", "-r", "--json")] == ["origin/main"]
    assert not (a.root / ".dvfs" / "remotes" / "old").exists()
    a.fail("remote", "remove", "old", fragments=("unknown remote old",))
    assert "Up to date with origin/main." in a.ok("status").out
    a.fsck_clean()


def drop_from_config(repo: Repo, name: str) -> None:
    """Remove remote ``name`` from .dvfs/config by hand, leaving its copies."""
    config = json.loads((repo.root / ".dvfs" / "config").read_text())
    del config["remotes"][name]
    (repo.root / ".dvfs" / "config").write_text(json.dumps(config))


def spike_pushed_to_a_dropped_remote(a: Repo, tmp_path: Path) -> str:
    """v1 on main; branch spike's v2 pushed to remote old alone, which is then dropped
    from the settings by hand; back on main. Returns spike's id."""
    commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "old", str(tmp_path / "old"))
    a.ok("switch", "-c", "spike")
    spike = commit_files(a, {"d/x": b"2"}, "two")
    a.ok("push", "--remote", "old")
    a.ok("switch", "main")
    drop_from_config(a, "old")
    return spike


def test_branch_d_does_not_count_on_a_copy_of_a_remote_no_settings_name(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """`branch -d` of a branch pushed to a remote since dropped from the settings
    was accepted: the copy old/spike was counted as holding its versions, though
    `branch -r` calls it one to delete and `remote remove old` deletes it, after
    which gc drops the versions. It is refused as for any branch held alone."""
    a = make_repo("a")
    spike = spike_pushed_to_a_dropped_remote(a, tmp_path)
    assert a.json("branch", "-r", "--json")[0]["configured"] is False
    a.fail("branch", "-d", "spike", fragments=(f"holds a version (v2 {spike[:10]})",), code=2)
    assert a.show("spike")["id"] == spike
    a.ok("remote", "remove", "old")
    a.ok("gc")
    assert a.show("spike")["id"] == spike
    a.ok("branch", "-D", "spike")
    a.fsck_clean()


def test_branch_d_names_the_copy_of_a_dropped_remote_that_alone_holds_its_versions(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """The branch was pushed to remote old, since dropped from the settings: `branch
    -d` is refused, and said that no other branch, tag or remote copy held its
    versions, though old/spike does. The refusal names that copy and the command
    that deletes it; a branch no copy holds keeps the plain message."""
    a = make_repo("a")
    spike = spike_pushed_to_a_dropped_remote(a, tmp_path)
    a.ok("switch", "-c", "solo")
    commit_files(a, {"d/x": b"3"}, "three")
    a.ok("switch", "main")

    line = a.fail("branch", "-d", "spike", code=2)
    assert f"holds a version (v2 {spike[:10]}) that no other branch, tag or copy of a " in line
    assert "configured remote holds, only old/spike, a copy of remote old, which no " in line
    assert "`dvfs remote remove old` deletes it, and gc then drops what only it " in line
    assert "nothing was deleted" in line
    line = a.fail("branch", "-d", "solo", code=2)
    assert "that no other branch, tag or remote copy holds: merge or tag" in line
    assert "old/" not in line
    assert a.show("spike")["id"] == spike
    a.fsck_clean()


def test_gc_says_what_it_keeps_for_copies_of_a_dropped_remote(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """Copies of a remote the settings no longer name (old/spike) are kept by gc, as
    git keeps them until `git remote remove`; gc said nothing of it, so a user who
    deleted the branch saw nothing freed and no reason. gc now counts the versions
    only such copies hold and names the command that lets it free them; after
    `remote remove old` it does. A remote renamed by `remote rename` is no such one."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "old", str(tmp_path / "old"))
    a.ok("remote", "add", "keep", str(tmp_path / "keep"))
    a.ok("remote", "rename", "keep", "kept")
    a.ok("switch", "-c", "spike")
    spike = commit_files(a, {"d/x": b"2"}, "two")
    a.ok("push", "--remote", "old")
    a.ok("push", "--remote", "kept", "main")
    a.ok("switch", "main")
    a.ok("branch", "-D", "spike")
    assert "kept 1 version(s)" not in a.ok("gc").out  # old is still configured
    drop_from_config(a, "old")

    lines = a.ok("gc").out.splitlines()
    assert lines[-1] == (
        "kept 1 version(s) that only copies of remote(s) old hold, which no settings name "
        "any more (`dvfs remote remove old` deletes those copies, and the next gc frees "
        "what only they held)"
    )
    got = a.json("gc", "--json")
    assert (got["unconfigured"], got["unconfigured_versions"]) == (["old/spike"], 1)
    assert a.json("log", "-n", "1", "--json", spike)[0]["id"] == spike
    a.ok("remote", "remove", "old")
    out = a.ok("gc").out
    assert "kept" not in out.splitlines()[-1].split(";")[0] and "settings" not in out
    assert a.json("gc", "--json")["unconfigured"] == []
    a.fail("log", "-n", "1", spike)
    a.fsck_clean()


def test_a_remote_added_under_the_name_of_one_dvfs_toml_dropped_starts_afresh(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """old/main was a copy of a remote dvfs.toml no longer names; a new remote old
    elsewhere is not that one: its first push makes it, status compares with nothing
    stale, and its audit chain starts at entry 1."""
    a = make_repo("a", git_repo=True)
    commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "old", str(tmp_path / "old"))
    a.ok("remote", "add", "origin", str(tmp_path / "origin"), "--default")
    a.ok("push", "--remote", "old")
    a.ok("push", "--remote", "origin")
    (a.root / "dvfs.toml").write_text(f'[remotes.origin]\nurl = "{tmp_path / "origin"}"\n')
    a.ok("remote", "add", "old", str(tmp_path / "new"), "--local")
    assert [r["name"] for r in a.json("branch", "-r", "--json")] == ["origin/main"]
    v2 = commit_files(a, {"d/x": b"2"}, "two")
    assert f"main: v2 {v2[:10]}" in a.ok("push", "--remote", "old").out
    assert [e["seq"] for e in a.json("audit", "--remote", "old", "--json")] == [1]
    assert a.ok("audit", "verify", "--remote", "old").out.endswith(": intact\n")
    a.fsck_clean()


def test_a_remote_renamed_to_the_name_of_one_dvfs_toml_dropped_takes_none_of_its_branches(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """old/exp was a copy of a remote dvfs.toml no longer names; `remote rename origin
    old` makes old/main origin's, and old/exp, not origin's, goes."""
    a = make_repo("a", git_repo=True)
    commit_files(a, {"d/x": b"1"}, "one")
    a.ok("branch", "exp")
    a.ok("remote", "add", "old", str(tmp_path / "old"))
    a.ok("remote", "add", "origin", str(tmp_path / "origin"), "--default")
    a.ok("push", "--remote", "old", "exp")
    a.ok("push", "--remote", "origin")
    (a.root / "dvfs.toml").write_text(f'[remotes.origin]\nurl = "{tmp_path / "origin"}"\n')
    a.ok("remote", "rename", "origin", "old")
    rows = a.json("branch", "-r", "--json")
    assert [(r["name"], r["configured"]) for r in rows] == [("old/main", True)]
    assert "exp" not in a.ok("fetch", "--prune").out
    a.fsck_clean()


def test_a_remote_renamed_keeps_its_branches_default_and_audit_check(
    dir_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """`remote rename origin up`: origin/main becomes up/main (status and log name it),
    the default follows, and the audit chain's end as this clone saw it too, so
    `audit verify --remote up` still holds the chain to it; bad names change nothing."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")
    b.ok("audit", "verify", "--remote", "origin")
    b.ok("remote", "add", "team", str(tmp_path / "team"))

    b.fail("remote", "rename", "nope", "x", fragments=("unknown remote nope",))
    b.fail("remote", "rename", "origin", "team", fragments=("remote team already exists",))
    b.fail(
        "remote", "rename", "origin", "origin", fragments=("remote origin already has that name",)
    )
    b.fail("remote", "rename", "origin", "team/a", fragments=("would share refs/remotes/team/",))
    b.fail("remote", "rename", "origin", "../x", fragments=("not a valid remote name",))
    b.ok("branch", "mine/x")
    b.fail("remote", "rename", "origin", "mine", fragments=("branch mine/x would be read",))
    b.fail("remote", "add", "mine", str(tmp_path / "m"), fragments=("branch mine/x would be",))
    b.ok("branch", "-d", "mine/x")
    out = b.ok("remote", "rename", "origin", "up").out
    assert out.strip() == "renamed remote origin to up in .dvfs/config"
    assert [r["name"] for r in b.json("branch", "-r", "--json")] == ["up/main"]
    assert "Up to date with up/main." in b.ok("status").out
    assert [(r["name"], r["default"]) for r in b.json("remote", "list", "--json")] == [
        ("team", False),
        ("up", True),
    ]
    assert (b.root / ".dvfs" / "remotes" / "up" / "audit.head").is_file()
    assert not (b.root / ".dvfs" / "remotes" / "origin").exists()
    v2 = commit_files(b, {"d/x": b"2"}, "two")
    assert f"main: v2 {v2[:10]}" in b.ok("push").out
    assert b.ok("audit", "verify", "--remote", "up").out
    b.fsck_clean()


def test_one_object_is_counted_as_one_object(dir_remote: Remote, make_repo: RepoFactory) -> None:
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")
    commit_files(a, {"d/x": b"2"}, "two")
    a.ok("push")
    b.ok("fetch")  # the version and its trees
    out = b.ok("pull").out  # then the one chunk
    assert "downloaded 1 object (" in out, out


def test_push_delete_removes_a_branch_and_a_tag_and_fetch_prune_follows(
    remote: Remote, make_repo: RepoFactory
) -> None:
    """`dvfs push --delete` as git's: the remote's branch and tag go, the audit chain
    says who deleted what, the pusher's origin/exp goes; another clone's fetch names
    origin/exp as gone and `fetch --prune` deletes it. What main reaches stays."""
    a = make_repo("a")
    v1 = commit_files(a, {"d/x": b"1"}, "one")
    remote.add_to(a)
    a.ok("switch", "-c", "exp")
    v2 = commit_files(a, {"d/x": b"2"}, "two")
    a.ok("tag", "t", v2)
    a.ok("push", "--all", "--tags")
    b, _ = remote.clone(a.root.parent, "b")
    assert "origin/exp" in b.ok("fetch").out
    listed = [(r["name"], r["remote"], r["current"]) for r in b.json("branch", "-a", "--json")]
    assert listed == [
        ("main", False, True),
        ("origin/exp", True, False),
        ("origin/main", True, False),
    ]

    out = a.ok("push", "--delete", "exp", "t").out
    assert f"deleted branch exp on origin (it was at v2 {v2[:10]})" in out
    assert f"deleted tag t on origin (it was at v2 {v2[:10]})" in out
    assert remote.list_keys("refs/") == {"refs/heads/main"}
    assert remote.ref() == v1
    assert a.ok("log", "-n", "1", "exp").out  # the local branch is untouched
    a.fail("log", "origin/exp")
    entries = json.loads(a.ok("audit", "--remote", "origin", "--json").out)
    assert [(e["op"], e["ref"], e["old"], e["new"]) for e in entries[-2:]] == [
        ("delete", "refs/heads/exp", v2, None),
        ("delete", "refs/tags/t", v2, None),
    ]
    a.ok("audit", "verify", "--remote", "origin")

    seen = b.ok("fetch").out
    assert "origin/exp  gone from the remote (`dvfs fetch --prune` deletes it here)" in seen
    assert b.ok("log", "-n", "1", "origin/exp").out  # kept until pruned
    got = json.loads(b.ok("fetch", "--prune", "--json").out)
    assert (got["gone"], got["pruned"]) == (["origin/exp"], True)
    b.fail("log", "origin/exp")
    assert [r["name"] for r in b.json("branch", "-r", "--json")] == ["origin/main"]
    assert "gone" not in b.ok("fetch").out
    a.fsck_clean()
    b.fsck_clean()


def test_push_force_moves_a_branch_back_only_from_where_this_clone_saw_it(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """A version pushed by mistake: `branch -f` moves main back here, a plain push is
    refused naming `push --force`, and `push --force` moves the remote's main
    back, but only while it is where this clone last saw it: b's push since makes the
    force stop, naming both versions; after a fetch it goes. The chain records it."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    v2 = commit_files(a, {"d/x": b"2"}, "two")
    v3 = commit_files(a, {"d/x": b"3"}, "three")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")

    a.fail("branch", "-f", "main", v2, fragments=("main is the current branch", "switch"))
    a.ok("switch", "-c", "tmp", v2)
    moved = a.json("branch", "-f", "main", v2, "--json")
    assert (moved["id"], moved["was"]) == (v2, v3)
    a.ok("switch", "main")
    line = a.fail("push", fragments=("which main here no longer follows", "push --force"))
    assert f"remote main is at v3 {v3[:10]}" in line
    v4 = commit_files(b, {"d/x": b"4"}, "four")
    b.ok("push")  # (b still holds v3: its push goes on from there)

    line = a.fail("push", "--force", fragments=("not where this clone last saw it", "dvfs fetch"))
    assert v4[:10] in line and v3[:10] in line
    assert dir_remote.ref() == v4
    a.ok("fetch")
    out = a.ok("push", "--force").out
    assert f"main: forced from v4 {v4[:10]}, which it no longer reaches" in out
    assert dir_remote.ref() == v2
    last = a.json("audit", "--remote", "origin", "--json")[-1]
    assert (last["op"], last["old"], last["new"]) == ("push", v4, v2)
    assert last["cmd"][-2:] == ["push", "--force"]
    a.fail("push", "--delete", "main", "--force", fragments=("--delete takes the names",))
    a.fail("branch", "-f", "nope", v2, fragments=("no branch named nope",))
    a.fail("branch", "-f", "tmp", fragments=("dvfs branch -f NAME REV",))
    a.fsck_clean()
    b.fsck_clean()


def test_push_delete_refuses_what_this_clone_never_saw(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """b deletes exp after a pushed to it since b's fetch: b never saw that version, so
    nothing is deleted and the line says what to run; after the fetch the delete goes."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    dir_remote.add_to(a)
    a.ok("push")  # (main: what b checks out, so that b relies on nothing only exp reaches)
    a.ok("switch", "-c", "exp")
    commit_files(a, {"d/x": b"2"}, "two")
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")
    b.ok("fetch")
    v3 = commit_files(a, {"d/x": b"3"}, "three")
    a.ok("push")

    line = b.fail(
        "push", "--delete", "exp", fragments=(v3[:12], "never fetched", "nothing was deleted")
    )
    assert "dvfs fetch" in line
    assert dir_remote.ref("exp") == v3
    b.ok("fetch")
    b.ok("push", "--delete", "exp")
    assert dir_remote.ref("exp") is None
    b.fsck_clean()


def test_push_delete_names_what_it_cannot_delete(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """A name the remote lacks, a name that is both a branch and a tag there, a name no
    ref can have, and --delete without names: one line each, nothing deleted."""
    a = make_repo("a")
    v1 = commit_files(a, {"d/x": b"1"}, "one")
    dir_remote.add_to(a)
    a.ok("branch", "same", v1)
    (a.root / ".dvfs" / "refs" / "tags" / "same").write_text(v1 + "\n")  # (as an older dvfs)
    a.ok("push", "--all", "--tags")
    keys = dir_remote.list_keys("refs/")

    # exit 2, as `dvfs log --remote origin nope` and `dvfs pull` of a branch it lacks
    # (a name to fix; exit 1 before)
    line = a.fail(
        "push", "--delete", "nope", fragments=("origin has no branch or tag nope",), code=2
    )
    assert "`dvfs fetch --remote origin`, then `dvfs branch -r` and `dvfs tag`" in line
    a.fail("push", "--delete", "refs/tags/main", fragments=("origin has no tag main",), code=2)
    a.fail("push", "--delete", "same", fragments=("refs/heads/same or refs/tags/same",))
    a.fail("push", "--delete", "../x", fragments=("not a valid branch or tag name",))
    a.fail("push", "--delete", fragments=("dvfs push --delete NAME",))
    assert dir_remote.list_keys("refs/") == keys
    a.ok("push", "--delete", "refs/tags/same")
    assert dir_remote.list_keys("refs/") == keys - {"refs/tags/same"}
    a.fsck_clean()


def test_a_remote_left_with_tags_only_is_cloned_at_a_tag(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """Its branches deleted, a remote keeps its tags: a clone without --rev names them
    and the command that clones one, a clone with --rev TAG checks it out (it was
    refused as "no branches yet: to start it, dvfs init"), and log --remote says where
    the versions are (it said "no versions yet")."""
    a = make_repo("a")
    v1 = commit_files(a, {"d/x": b"1"}, "one")
    dir_remote.add_to(a)
    a.ok("tag", "release", v1)
    a.ok("push", "--tags")
    a.ok("push", "--delete", "refs/heads/main")
    a.fail("log", "--remote", "origin", fragments=("only tags", "`dvfs log release`"))

    line = assert_error(
        run(a.root.parent, "clone", dir_remote.url, "b"), "no branches, only tags (release)"
    )
    assert f"`dvfs clone --rev release {dir_remote.url} b`" in line
    assert not (a.root.parent / "b").exists()
    b, _ = dir_remote.clone(a.root.parent, "b", "--rev", "release")
    st = b.status()
    assert st["head"] == "v1" and st["detached"] is not None
    assert b.read("d/x") == b"1"
    b.ok("switch", "-c", "next")
    commit_files(b, {"d/x": b"2"}, "two")
    b.ok("push")
    assert dir_remote.ref("next") == b.head_id()
    b.fsck_clean()


def test_push_delete_mends_a_ref_that_holds_no_version_so_the_remote_gc_can_run(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """A remote ref damaged by hand stops `dvfs gc --remote`, whose line says to delete
    it if that ref is gone for good: push --delete does that, and the gc then runs."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    dir_remote.add_to(a)
    a.ok("push")
    dir_remote.backend.put("refs/heads/broken", b"not a version\n")
    hint = "dvfs push --remote origin --delete refs/heads/broken"
    a.fail("gc", "--remote", "origin", fragments=(hint,))
    out = a.ok(*hint.split()[1:]).out
    assert "deleted branch broken on origin (it was at no version id)" in out
    a.ok("gc", "--remote", "origin")
    a.fsck_clean()


def test_log_remote_lists_the_remote_branch_it_is_given_and_names_a_substitute(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """`log --remote origin BRANCH` lists the remote's BRANCH (a branch this clone does
    not have yet included), never this clone's branch of that name; on a branch the
    remote lacks, the remote's main branch is listed and a warning says so."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")
    v2 = commit_files(a, {"d/x": b"2"}, "two")
    a.ok("branch", "exp")
    a.ok("push", "main", "exp")
    mine = commit_files(b, {"d/x": b"mine"}, "mine")

    rows = b.json("log", "--remote", "origin", "main", "--json")
    ids = [r["id"] for r in rows]
    assert ids[0] == v2 and mine not in ids
    assert b.json("log", "--remote", "origin", "exp", "--json")[0]["id"] == v2
    b.fail("log", "--remote", "origin", "nope", fragments=("origin has no branch nope",), code=2)
    b.ok("switch", "-c", "feat")
    r = b.ok("log", "--remote", "origin", "--json")
    assert r.json()[0]["id"] == v2
    assert "origin has no branch feat: listing its branch main" in r.err
    assert b.json("log", "--remote", "origin", "d", "--json")[0]["id"] == v2  # d: a path
    # the remote's names of its versions, not this clone's: b's tag and branches were
    # shown as if the remote had them
    b.ok("tag", "mine-only", v2)
    a.ok("tag", "pushed", v2)
    a.ok("push", "--tags")
    [top] = b.json("log", "--remote", "origin", "-n", "1", "--json")
    assert (top["tags"], top["branches"]) == (["pushed"], ["origin/exp", "origin/main"])
    line = b.ok("log", "--remote", "origin", "-n", "1", "--oneline").out
    assert "(tag: pushed, origin/exp, origin/main)" in line and "mine-only" not in line
    assert "tag: mine-only" in b.ok("log", "-n", "1", "--oneline", v2).out
    b.fsck_clean()


def test_a_branch_or_tag_beside_its_own_folder_on_the_remote_is_refused_before_any_upload(
    remote: Remote, make_repo: RepoFactory
) -> None:
    """The remote has x/y; a push of x (or the reverse) cannot make both usable: a
    directory remote cannot store them, readers of any remote use only x. It stops
    before anything is uploaded or entered in the remote's audit chain."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    remote.add_to(a)
    a.ok("branch", "x/y")
    a.ok("tag", "t/u")
    a.ok("push", "main", "x/y", "--tags")
    b, _ = remote.clone(a.root.parent, "b")
    b.ok("tag", "-d", "t/u")
    b.ok("tag", "t")
    commit_files(b, {"d/x": b"2"}, "two")
    b.ok("branch", "x")
    chain = remote.list_keys("audit/")
    packs = remote.list_keys("packs/")
    b.fail("push", "x", fragments=("origin has branch x/y", "a branch x cannot sit beside it",
                                   "nothing was pushed", "`dvfs branch NEW x`"))  # fmt: skip
    b.fail("push", "--tags", fragments=("origin has tag t/u", "a tag t cannot"))
    assert remote.list_keys("audit/") == chain and remote.list_keys("packs/") == packs
    assert remote.ref("x") is None
    b.ok("branch", "x2", "x")
    b.ok("push", "x2")
    assert remote.ref("x2") == b.head_id()
    b.fsck_clean()


def test_a_clone_without_a_directory_is_named_after_the_remote_however_spelled(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """`dvfs clone /srv/cats/.` in an empty directory made the clone there (`.`), not in
    `cats` as `git clone` does; `/srv/cats/refs/..` was taken as `..`."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "origin", str(tmp_path / "srv" / "cats"))
    a.ok("push")
    here = tmp_path / "here"
    here.mkdir()
    assert_ok(run(here, "clone", f"{tmp_path / 'srv' / 'cats'}/."))
    assert sorted(os.listdir(here)) == ["cats"]
    assert (here / "cats" / "d" / "x").read_bytes() == b"1"
    there = tmp_path / "there"
    there.mkdir()
    assert_ok(run(there, "clone", f"file://{tmp_path / 'srv' / 'cats' / 'refs'}/.."))
    assert sorted(os.listdir(there)) == ["cats"]
    Repo(here / "cats").fsck_clean()
    Repo(there / "cats").fsck_clean()
    # below a file: it said "Not a directory: .../afile/sub", naming no way out
    (there / "afile").write_text("x")
    r = run(there, "clone", str(tmp_path / "srv" / "cats"), "afile/sub/c")
    assert_error(r, f"{there / 'afile'} is not a directory: clone into a directory below one")
    assert sorted(os.listdir(there)) == ["afile", "cats"]
    # a link to a directory not made yet: it said "File exists: .../link"
    (there / "link").symlink_to(tmp_path / "later")
    for args in (("clone", str(tmp_path / "srv" / "cats"), "link"), ("init", "link")):
        r = run(there, *args)
        assert_error(r, f"{there / 'link'} is a symbolic link to {tmp_path / 'later'}, which")
        assert (there / "link").is_symlink() and not (tmp_path / "later").exists()


def test_a_remote_tag_named_like_a_remote_branch_here_is_not_copied(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """Pushed from a clone whose remote had another name, tag origin/main reaches a clone
    whose remote is origin: as `dvfs tag origin/main` is refused there, the tag is not
    copied (a warning says why); other tags are."""
    a = make_repo("a")
    v1 = commit_files(a, {"d/x": b"1"}, "one")
    a.ok("tag", "origin/main")
    a.ok("tag", "keep/me")
    a.ok("remote", "add", "up", dir_remote.url)
    a.ok("push", "--tags")
    commit_files(a, {"d/x": b"2"}, "two")
    a.ok("push")
    b, r = dir_remote.clone(a.root.parent, "b")
    assert "remote tag origin/main not copied here" in r.err
    assert [t["name"] for t in b.json("tag", "--json")] == ["keep/me"]
    assert b.json("log", "-n", "1", "--json", "origin/main")[0]["id"] != v1
    assert "remote tag origin/main not copied here" in b.ok("fetch").err
    b.fsck_clean()


def test_a_pull_into_a_new_repository_of_a_remote_without_its_branch_says_what_to_run(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """`dvfs init`, `remote add`, `pull`: the remote's only branch is data, not main. The
    error names the remote's branches and a command that works as typed."""
    a = make_repo("a")
    a.ok("switch", "-c", "data")
    commit_files(a, {"d/x": b"1"}, "one")
    dir_remote.add_to(a)
    a.ok("push")
    b = make_repo("b")
    dir_remote.add_to(b)
    line = b.fail("pull", fragments=("origin has no branch main: nothing to pull", "it has data"))
    assert "`dvfs switch -c data origin/data` makes one here" in line
    b.ok("switch", "-c", "data", "origin/data")
    assert b.read("d/x") == b"1"
    assert "data is up to date" in b.ok("pull").out
    b.fsck_clean()


def test_removing_a_local_override_drops_what_was_kept_from_its_url(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """origin was this clone's own at A, pushed to; dvfs.toml names origin at B.
    `remote remove origin --local` left origin/main and A's audit chain end here, taken
    then for B's: status said "Up to date with origin/main", a push to B was refused as
    a remote gone missing. Now they go, said as a warning, and B starts afresh."""
    a = make_repo("a", git_repo=True)
    commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "origin", str(tmp_path / "A"), "--local")
    a.ok("push")
    (a.root / "dvfs.toml").write_text(f'[remotes.origin]\nurl = "{tmp_path / "B"}"\n')
    r = a.ok("remote", "remove", "origin", "--local")
    assert "what this clone kept of it from" in r.err and str(tmp_path / "A") in r.err
    assert a.json("branch", "-r", "--json") == []
    assert not (a.root / ".dvfs" / "remotes" / "origin").exists()
    assert "origin/main" not in a.ok("status").out
    assert "main: v1" in a.ok("push").out
    assert [e["seq"] for e in a.json("audit", "--remote", "origin", "--json")] == [1]
    assert "Up to date with origin/main." in a.ok("status").out
    a.fsck_clean()


def test_a_remote_whose_url_changed_takes_none_of_the_old_urls_copies(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A URL edited in dvfs.toml, or a local override added over it: the copies and
    the cached index kept from the old URL are not the new one's, and go; going back
    to the old URL, a fetch brings its own again."""
    a = make_repo("a", git_repo=True)
    commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "origin", str(tmp_path / "A"))
    a.ok("push")
    a.ok("fetch")
    kept = a.root / ".dvfs" / "remotes" / "origin"
    assert (kept / "index").is_dir()
    shared = (a.root / "dvfs.toml").read_text()
    (a.root / "dvfs.toml").write_text(shared.replace(str(tmp_path / "A"), str(tmp_path / "C")))
    r = a.ok("status")
    assert "origin/main" not in r.out and "was dropped" in r.err
    assert not kept.exists() and a.json("branch", "-r", "--json") == []
    (a.root / "dvfs.toml").write_text(shared)
    a.ok("fetch")
    assert [r["name"] for r in a.json("branch", "-r", "--json")] == ["origin/main"]
    r = a.ok("remote", "add", "origin", str(tmp_path / "B"), "--local")
    assert "was dropped" in r.err and a.json("branch", "-r", "--json") == []
    assert "main: v1" in a.ok("push").out
    assert (tmp_path / "B" / "refs" / "heads" / "main").is_file()
    a.fsck_clean()


def test_a_first_push_makes_no_remote_among_someone_elses_files(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A remote URL naming a folder of files (a home directory, a typo) had the first
    push write format, packs, index and refs among them; now it is refused, and the
    remote is made in a new or empty directory only."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    docs = tmp_path / "docs"
    (docs / "sub").mkdir(parents=True)
    (docs / "sub" / "notes.txt").write_text("mine\n")
    a.ok("remote", "add", "o", str(docs))
    a.fail("push", code=2, fragments=("holds files and no dvfs repository", "dvfs remote remove o"))
    assert sorted(p.name for p in docs.iterdir()) == ["sub"]
    (tmp_path / "empty").mkdir()
    a.ok("remote", "add", "e", str(tmp_path / "empty"))
    assert "main: v1" in a.ok("push", "--remote", "e").out
    assert "already up to date" in a.ok("push", "--remote", "e").out
    a.fsck_clean()


def test_a_relative_directory_in_dvfs_config_is_taken_from_the_root(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A remote URL written by hand in .dvfs/config as ../store was taken from the
    current directory: a push from d/ made a second remote at d/../store, inside the
    repository. It is taken from the root, as a relative one in dvfs.toml is."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    cfg = a.root / ".dvfs" / "config"
    data = json.loads(cfg.read_text()) if cfg.exists() else {}
    data["remotes"] = {"origin": {"url": "../store"}}
    cfg.write_text(json.dumps(data))
    assert "main: v1" in assert_ok(run(a.root / "d", "push")).out
    assert (tmp_path / "store" / "refs" / "heads" / "main").is_file()
    assert sorted(p.name for p in (a.root / "d").iterdir()) == ["x"]
    assert a.json("remote", "list", "--json")[0]["url"] == str(tmp_path / "store")
    a.fsck_clean()


def test_a_url_edited_by_hand_is_seen_by_revisions_at_once(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """origin's URL edited in .dvfs/config (not by `remote set-url`): `log origin/main`
    read the old place's copy until a status or fetch dropped it. Now a revision naming
    it is refused at once, saying where it came from and to fetch; `branch -r` lists it
    no more, and the fetch brings the new place's."""
    a = make_repo("a")
    v1 = commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "origin", str(tmp_path / "A"))
    a.ok("push")
    v2 = commit_files(a, {"d/x": b"2"}, "two")
    a.ok("remote", "add", "backup", str(tmp_path / "B"))
    a.ok("push", "--remote", "backup")
    assert a.show("origin/main")["id"] == v1
    config = a.root / ".dvfs" / "config"
    config.write_text(config.read_text().replace(str(tmp_path / "A"), str(tmp_path / "B"), 1))
    for args in (("log", "origin/main"), ("diff", "origin/main", "main"), ("show", "origin/main"),
                 ("show", "refs/remotes/origin/main")):  # fmt: skip
        a.fail(*args, fragments=("origin/main", "file://" + str(tmp_path / "A"), "dvfs fetch"))
    assert [b["name"] for b in a.json("branch", "-r", "--json")] == ["backup/main"]
    a.ok("fetch")
    assert a.show("origin/main")["id"] == v2
    a.fsck_clean()


def test_copies_an_older_dvfs_kept_without_their_place_are_taken_once_then_checked(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A clone of an older dvfs has origin/main and no record of where it came from:
    the first command to read it takes it as the configured place's and records that,
    so an edit of dvfs.toml afterwards is seen by revisions as for any clone."""
    a = make_repo("a", git_repo=True)
    v1 = commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "origin", str(tmp_path / "A"))
    a.ok("push")
    kept = a.root / ".dvfs" / "remotes" / "origin" / "location"
    kept.unlink()  # (as an older dvfs left it)
    assert a.show("origin/main")["id"] == v1
    assert kept.read_text() == f"file://{tmp_path / 'A'}\n"
    shared = a.root / "dvfs.toml"
    shared.write_text(shared.read_text().replace(str(tmp_path / "A"), str(tmp_path / "C")))
    a.fail("log", "origin/main", fragments=("origin/main", str(tmp_path / "C"), "dvfs fetch"))
    r = a.ok("status")
    assert "origin/main" not in r.out and "was dropped" in r.err
    a.fsck_clean()


def test_a_remote_whose_endpoint_changed_is_said_to_be_at_the_new_endpoint(
    make_repo: RepoFactory,
) -> None:
    """Only the endpoint of an S3 remote edited: the warning and the refused revision
    said the remote "is now s3://b/x", the very URL it was at; they name the endpoint."""
    a = make_repo("a")
    v1 = commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "s", "s3://bkt/x", "--endpoint-url", "http://old.example:9000")
    (a.root / ".dvfs" / "refs" / "remotes" / "s").mkdir(parents=True)
    (a.root / ".dvfs" / "refs" / "remotes" / "s" / "main").write_text(v1 + "\n")
    assert a.show("s/main")["id"] == v1  # (kept by an older dvfs: taken once, recorded)
    config = a.root / ".dvfs" / "config"
    config.write_text(config.read_text().replace("old.example", "new.example"))
    a.fail(
        "log",
        "s/main",
        fragments=(
            "was at s3://bkt/x http://old.example:9000",
            "is now s3://bkt/x http://new.example:9000",
        ),
    )
    r = a.ok("status")
    assert "is now s3://bkt/x http://new.example:9000" in r.err
    a.fsck_clean()


def test_a_remote_whose_endpoint_came_from_the_environment_is_moved_when_it_changes(
    make_repo: RepoFactory,
) -> None:
    """An S3 remote with no endpoint of its own, reached through AWS_ENDPOINT_URL: set
    to another server holding the same bucket name, the first server's copies were
    taken for the second's (`s/main` read as its branch). The record names the endpoint
    in effect, so the copies are refused and dropped as for an endpoint edited."""
    a = make_repo("a")
    v1 = commit_files(a, {"d/x": b"1"}, "one")
    a.ok("remote", "add", "s", "s3://bkt/x")
    (a.root / ".dvfs" / "refs" / "remotes" / "s").mkdir(parents=True)
    (a.root / ".dvfs" / "refs" / "remotes" / "s" / "main").write_text(v1 + "\n")
    old = {"AWS_ENDPOINT_URL": "http://old.example:9000"}
    new = {"AWS_ENDPOINT_URL": "http://new.example:9000"}
    shown = assert_ok(run(a.root, "show", "s/main", "--format", "json", env=old))
    assert shown.json()["id"] == v1  # (kept by an older dvfs: taken once, recorded)
    assert_ok(run(a.root, "show", "s/main", env=old))  # the same server: still its copy
    assert_error(
        run(a.root, "log", "s/main", env=new),
        "was at s3://bkt/x http://old.example:9000",
        "is now s3://bkt/x http://new.example:9000",
    )
    r = assert_ok(run(a.root, "status", env=new))
    assert "is now s3://bkt/x http://new.example:9000" in r.err and "was dropped" in r.err
    assert a.json("branch", "-r", "--json") == []
    a.fsck_clean()


def test_a_directory_remote_spelled_with_dot_dot_is_the_directory_it_names(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """`file:///srv/missing/../rem` was opened as written, where `remote add` takes the
    path `/srv/missing/../rem` as `/srv/rem`: a push made the directory `missing`, a
    clone said the remote "does not exist", and `lnk/../rem`, `lnk` a link, was the
    `rem` beside where the link leads, while `remote list` named `/srv/rem`."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    srv, far = tmp_path / "srv", tmp_path / "far"
    (srv / "rem").mkdir(parents=True)
    (far / "deep").mkdir(parents=True)
    (srv / "lnk").symlink_to(far / "deep")
    a.ok("remote", "add", "origin", f"file://{srv}/missing/../rem")
    a.ok("push")
    assert not (srv / "missing").exists() and (srv / "rem" / "refs").is_dir()
    a.ok("remote", "add", "other", f"file://{srv}/lnk/../rem", "--local")
    assert "nothing to push" in a.ok("push", "--remote", "other").out  # the same place
    assert not (far / "rem").exists()
    for i, url in enumerate((f"file://{srv}/missing/../rem", f"{srv}/missing/../rem")):
        assert_ok(run(tmp_path, "clone", url, f"c{i}"))
        assert (tmp_path / f"c{i}" / "d" / "x").read_bytes() == b"1"
        Repo(tmp_path / f"c{i}").fsck_clean()
    assert not (srv / "missing").exists()
    a.fsck_clean()


def test_a_directory_remote_url_spelled_with_dot_dot_is_recorded_as_used(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """`remote add origin file:///srv/missing/../rem` is used as /srv/rem, yet `remote
    list` (and `remote -v`, `--json`, .dvfs/config, dvfs.toml) kept the URL as typed,
    its `..` through a directory that is not there, where a plain path is recorded as
    the directory it names. The URL is recorded so now, a name holding URL
    characters (`%`, `?`, `#`) escaped so that it reads back as the same directory."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"1"}, "one")
    srv = tmp_path / "srv"
    odd = srv / "a %41?b#c"
    odd.mkdir(parents=True)
    out = a.ok("remote", "add", "origin", f"file://{srv}/missing/./../rem/").out
    assert f"added remote origin -> file://{srv}/rem (" in out, out
    a.ok("remote", "add", "odd", f"file://{srv}/x/../a%20%2541%3Fb%23c", "--local")
    a.ok("remote", "add", "typed", f"file://{srv}/a%20b")  # (no `..`: kept as typed)
    urls = {r["name"]: r["url"] for r in a.json("remote", "list", "--json")}
    assert urls == {
        "origin": f"file://{srv}/rem",
        "odd": f"file://{srv}/a %2541%3Fb%23c",
        "typed": f"file://{srv}/a%20b",
    }, urls
    assert f"origin  file://{srv}/rem  " in a.ok("remote", "-v").out
    a.ok("push", "--remote", "odd")
    assert (odd / "refs").is_dir() and not (srv / "x").exists()
    a.ok("push")
    assert (srv / "rem" / "refs").is_dir() and not (srv / "missing").exists()
    assert_ok(run(tmp_path, "clone", f"file://{srv}/missing/../rem", "c"))
    c = Repo(tmp_path / "c")
    assert c.json("remote", "list", "--json")[0]["url"] == f"file://{srv}/rem"
    c.fsck_clean()
    a.fsck_clean()


def test_a_directory_remote_set_by_hand_with_dot_dot_is_shown_as_the_directory_it_names(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A `file://` URL or a path holding `..`, written in .dvfs/config or dvfs.toml by
    hand (or by an older dvfs), was listed as written (`file:///srv/missing/../rem`,
    through a directory that is not there) and named so by the commands using it,
    where `remote add` records the directory it names. It is listed and used as that
    directory; the files keep what was written."""
    a = make_repo("a", git_repo=True)
    commit_files(a, {"d/x": b"1"}, "one")
    srv = tmp_path / "srv"
    srv.mkdir()
    (a.root / "dvfs.toml").write_text(
        f'[remotes.team]\nurl = "file://{srv}/missing/../team"\n'
        f'[remotes.nas]\nurl = "{srv}/missing/./../nas/"\n'
    )
    local = {
        name: {"url": url, "endpoint_url": None, "region": None, "profile": None}
        for name, url in (("own", f"file://{srv}/x/../own"), ("mine", f"{srv}/x/../mine"))
    }
    (a.root / ".dvfs" / "config").write_text(json.dumps({"remotes": local}))
    written = {p: (a.root / p).read_bytes() for p in ("dvfs.toml", ".dvfs/config")}
    urls = {r["name"]: r["url"] for r in a.json("remote", "list", "--json")}
    assert urls == {
        "team": f"file://{srv}/team", "nas": str(srv / "nas"),
        "own": f"file://{srv}/own", "mine": str(srv / "mine"),
    }, urls  # fmt: skip
    listed = a.ok("remote", "-v").out
    assert f"  team  file://{srv}/team  [dvfs.toml]\n" in listed, listed
    assert f"  mine  {srv}/mine  [this clone only]\n" in listed, listed
    for name in urls:
        a.ok("push", "--remote", name)
        assert (srv / name / "refs").is_dir()
    assert not (srv / "missing").exists() and not (srv / "x").exists()
    assert {p: (a.root / p).read_bytes() for p in written} == written
    a.fsck_clean()
