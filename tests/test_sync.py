"""Sharing versions through remotes, through the command line, on every kind of remote.

Each test runs twice: against a directory remote (``file://``) and against an
``s3://`` remote on the session's SeaweedFS server (``tests/support/s3server.py``). The
remote's own state is read back with a backend opened by the test, so that what the
commands print can be checked against what they did: which refs moved, which packs
exist, and that every visible pack is complete. Each test ends with ``dvfs fsck``
clean in every repository it wrote to.
"""

from __future__ import annotations

import os
import re
import shlex
import signal
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tests.support.cli import (
    Repo,
    RepoFactory,
    Result,
    assert_error,
    assert_ok,
    cli_command,
    cli_env,
    commit_files,
    go,
    make_repo_fixture,  # noqa: F401  (a fixture)
    run,
    spawn_ready,
)
from tests.support.data import rand
from tests.support.remote import (  # noqa: F401  (fixtures)
    Remote,
    dir_remote_fixture,
    remote_fixture,
)
from tests.support.waiting import wait_for
from vfs.remote.ondemand import STOP_ENV as DOWNLOAD_STOP_ENV
from vfs.repo.repository import Repository

KiB = 1024
MiB = 1024 * KiB

TRANSFER = re.compile(
    r"^(?P<verb>pushed|downloaded|fetched) (?P<objects>\d+) objects?"
    r"(?: in (?P<packs>\d+) packs?)? \((?P<size>[^)]*)\), (?P<requests>\d+) requests"
    r"(?:; (?P<kept>\d+) packs? \([^)]*\) already on the remote, not sent again)?$"
)


@dataclass(frozen=True)
class Transfer:
    """The closing line of push, fetch, pull or clone, parsed."""

    verb: str
    objects: int
    packs: int
    requests: int
    kept: int  # packs an interrupted push had already uploaded


def transfer(r: Result) -> Transfer:
    """Parse the one transfer line of ``r``'s output (pull prints the checkout after it)."""
    found = [m for line in r.out.splitlines() if (m := TRANSFER.match(line))]
    assert len(found) == 1, f"not one transfer line\n{r}"
    m = found[0]
    return Transfer(
        m["verb"],
        int(m["objects"]),
        int(m["packs"] or 0),
        int(m["requests"]),
        int(m["kept"] or 0),
    )


def same_files(a: Path, b: Path, names: list[str]) -> None:
    for name in names:
        assert (a / name).read_bytes() == (b / name).read_bytes(), name


def stored_objects(repo: Repo) -> int:
    """How many objects the repository's local store holds."""
    return sum(1 for _ in Repository(repo.root).store.iter_ids())


def kill(proc: subprocess.Popen[bytes]) -> None:
    """kill -9 and reap."""
    proc.send_signal(signal.SIGKILL)
    proc.communicate()
    assert proc.returncode == -signal.SIGKILL


# --------------------------------------------------------------------- the whole workflow


def test_push_clone_fetch_log_pull(remote: Remote, make_repo: RepoFactory) -> None:
    a = make_repo("a")
    files = {f"data/d{i % 3}/f{i}.bin": rand(2 * KiB + i, i) for i in range(12)}
    files["data/big.bin"] = rand(3 * MiB, 99)
    v1 = commit_files(a, files, "first")
    a.ok("tag", "baseline")
    remote.add_to(a)
    r = a.ok("push", "--tags")
    pushed = transfer(r)
    assert pushed.verb == "pushed" and pushed.packs == 1 and pushed.kept == 0
    # 13 files (the big one in several chunks), 5 trees, 1 version
    assert pushed.objects >= 13 + 5 + 1
    assert f"main: v1 {v1[:10]}" in r.out
    assert f"tag baseline: v1 {v1[:10]}" in r.out  # each tag the push made there is named
    assert "tag baseline" not in a.ok("push", "--tags").out  # (and only then)
    assert remote.ref() == v1
    assert remote.list_keys("refs/tags/") == {"refs/tags/baseline"}
    assert len(remote.list_keys("index/")) == 1 and len(remote.packs()) == 1

    b, r = remote.clone(a.root.parent, "b")
    t = transfer(r)
    assert t.verb == "downloaded" and t.objects == pushed.objects
    same_files(a.root, b.root, list(files))
    assert b.head_id() == v1
    assert b.json("log", "baseline", "--json")[0]["id"] == v1  # tags come along

    # a moves on; b sees it with fetch (no data, working tree untouched), then pulls
    files2 = {"data/d0/f0.bin": rand(4 * KiB, 1000), "data/new.bin": rand(5 * KiB, 1001)}
    v2 = commit_files(a, files2, "second")
    a.ok("tag", "best")
    r = a.ok("push", "--tags")
    assert transfer(r).packs == 1 and remote.ref() == v2
    r = b.ok("fetch")
    assert f"origin/main  v2  {v2[:10]}" in r.out
    assert f"new tag best  v2  {v2[:10]}" in r.out and "baseline" not in r.out
    assert "best" not in b.ok("fetch").out  # a tag is new once
    assert transfer(r).verb == "fetched"
    assert b.head_id() == v1 and not (b.root / "data/new.bin").exists()
    # fsck checks the fetched version too; its chunks wait on the remote
    checked = b.json("fsck", "--json")
    assert checked["clean"] and checked["versions"] == 2, checked
    log = b.json("log", "origin/main", "--json")
    assert [row["id"] for row in log] == [v2, v1]
    r = b.ok("log", "--remote", "origin")
    assert v2[:10] in r.out and v1[:10] in r.out
    r = b.ok("pull")
    assert transfer(r).verb == "downloaded"
    assert b.head_id() == v2
    same_files(a.root, b.root, [*files2, "data/big.bin"])
    st = b.status()
    assert st["modified"] == [] and st["staged"] == [] and st["untracked"] == []

    # pulling again moves nothing; pushing from b has nothing to send
    r = b.ok("pull")
    assert "main is up to date" in r.out and transfer(r).objects == 0
    r = b.ok("push")
    assert "already up to date" in r.out and transfer(r).objects == 0
    assert remote.ref() == v2

    # b commits and pushes; a pulls it as a fast-forward
    v3 = commit_files(b, {"data/from-b.txt": b"hello from b\n"}, "third")
    assert f"main: v3 {v3[:10]}" in b.ok("push").out
    a.ok("pull")
    assert a.head_id() == v3 and a.read("data/from-b.txt") == b"hello from b\n"
    for repo in (a, b):
        repo.fsck_clean()


def test_push_all_branches_and_clone_of_a_plain_path(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a = make_repo("a")
    v1 = commit_files(a, {"d/x": b"x1"}, "x1")
    a.ok("branch", "exp")
    a.ok("switch", "exp")
    v2 = commit_files(a, {"d/y": b"y on exp"}, "y")
    remote.add_to(a)
    r = a.ok("push", "--all")
    assert f"exp: v2 {v2[:10]}" in r.out and f"main: v1 {v1[:10]}" in r.out
    assert remote.ref("main") == v1 and remote.ref("exp") == v2
    # a directory remote may also be named by its plain path
    where = remote.url.removeprefix("file://") if remote.kind == "dir" else remote.url
    r = assert_ok(run(a.root.parent, "clone", where, "b", *remote.options))
    b = Repo(a.root.parent / "b")
    assert "(branch main)" in r.out  # the main branch is checked out, not the newest
    assert b.head_id() == v1 and not (b.root / "d/y").exists()
    assert b.json("log", "origin/exp", "--json")[0]["id"] == v2
    assert b.json("remote", "list", "--json")[0]["url"] == where
    v3 = commit_files(b, {"d/z": b"z"}, "z")
    b.ok("push")
    assert remote.ref("main") == v3 and remote.ref("exp") == v2
    b.fsck_clean()
    a.fsck_clean()


# --------------------------------------------------------------- diverged histories


def test_divergence_is_reported_and_nothing_is_lost(remote: Remote, make_repo: RepoFactory) -> None:
    a = make_repo("a")
    v1 = commit_files(a, {"data/base.txt": b"base\n"}, "base")
    remote.add_to(a)
    a.ok("push")
    b, _ = remote.clone(a.root.parent, "b")
    va = commit_files(a, {"data/a.txt": b"from a\n"}, "a's work")
    a.ok("push")
    vb = commit_files(b, {"data/b.txt": b"from b\n"}, "b's work")

    keys_before = {k: remote.backend.get(k) for k in remote.list_keys()}
    line = b.fail("push", fragments=("remote main has versions you don't have: run `dvfs pull`",))
    assert "nothing was changed" in line
    assert {k: remote.backend.get(k) for k in remote.list_keys()} == keys_before  # untouched
    assert remote.ref() == va

    line = b.fail("pull", fragments=("diverged", "origin/main"))
    assert va[:10] in line and vb[:10] in line
    assert b.head_id() == vb  # the local branch stays where it was
    assert b.read("data/b.txt") == b"from b\n" and not (b.root / "data/a.txt").exists()
    st = b.status()
    assert st["staged"] == [] and st["modified"] == []
    # the remote's versions are reachable as origin/main, with their data on demand
    assert [row["id"] for row in b.json("log", "origin/main", "--json")] == [va, v1]
    b.ok("pull", "origin/main", "data/a.txt")
    assert b.read("data/a.txt") == b"from a\n"
    assert remote.ref() == va
    a.fsck_clean()
    b.fsck_clean()


def test_diverged_local_branch_dropped_for_the_remote_one(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """Until merge exists: take the remote's branch and drop the local one, as in git.

    While HEAD is detached no branch is current, so the local branch it came from may
    be deleted; its versions stay reachable by the id the deletion prints.
    """
    a = make_repo("a")
    commit_files(a, {"data/base.txt": b"base\n"}, "base")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")
    va = commit_files(a, {"data/a.txt": b"from a\n"}, "a's work")
    a.ok("push")
    vb = commit_files(b, {"data/b.txt": b"from b\n"}, "b's work")
    b.fail("pull", fragments=("diverged",))
    b.ok("checkout", "origin/main", "--force")
    r = b.ok("branch", "-D", "main")  # HEAD is detached: no branch is current
    assert r.out.strip() == f"deleted branch main (was v2 {vb[:10]})"
    assert b.show(vb[:12])["message"] == "b's work"  # nothing lost: reachable by id
    b.ok("switch", "-c", "main")
    st = b.status()
    assert st["branch"] == "main" and st["detached"] is None and b.head_id() == va
    assert b.read("data/a.txt") == b"from a\n" and not (b.root / "data/b.txt").exists()
    commit_files(b, {"data/c.txt": b"c\n"}, "on top of a's")
    b.ok("push")  # converged: a fast-forward of the remote's main
    assert dir_remote.ref() == b.head_id()
    b.fail("branch", "-d", "main", fragments=("current branch",))  # attached again: refused
    b.fsck_clean()


# --------------------------------------------------------------------- partial transfers


def test_a_pull_refused_over_a_local_change_names_pull(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """A pull of a revision or of paths checks out as `dvfs checkout` does, and its
    refusal said "checkout would overwrite ...", a command the user had not run."""
    a = make_repo("a")
    commit_files(a, {"d/a": b"one"}, "one")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")
    commit_files(a, {"d/a": b"two"}, "two")
    a.ok("push")
    b.write("d/a", "my change")
    for args in (("pull",), ("pull", "main"), ("pull", "d/a"), ("pull", "main", "d")):
        line = b.fail(*args, fragments=("pull would overwrite uncommitted changes in d/a",))
        assert "checkout" not in line and "--force" in line, line
    assert b.read("d/a") == b"my change"
    b.ok("pull", "--force", "origin/main", "d")
    assert b.read("d/a") == b"two"


def test_pull_of_a_version_number_only_the_remote_has_yet_takes_the_remotes(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """`dvfs pull v2 d` on a branch behind the remote's failed with "unknown revision
    'v2': main has only v1": vN counted only along the branch here."""
    a = make_repo("a")
    commit_files(a, {"d/a": b"one"}, "one")
    dir_remote.add_to(a)
    a.ok("push")
    b, _ = dir_remote.clone(a.root.parent, "b")
    v2 = commit_files(a, {"d/a": b"two"}, "two")
    commit_files(a, {"d/a": b"three"}, "three")
    a.ok("push")
    b.ok("pull", "v2", "d")
    assert b.read("d/a") == b"two" and b.status()["head"] == "v1"  # paths only: HEAD stays
    b.ok("checkout", "--force", "HEAD")
    b.ok("pull", "v2")
    assert b.head_id() == v2 and b.read("d/a") == b"two"
    b.fail("pull", "v4", fragments=("unknown revision v4",))
    # Diverged: the remote's v2 is not what v2 would be here; the number stays local.
    b.ok("switch", "main")
    commit_files(b, {"d/a": b"mine"}, "mine")
    assert b.ok("pull", "v2").out  # v2 here: mine
    assert b.read("d/a") == b"mine"
    b.fail("pull", "v3", fragments=("unknown revision v3",))


def test_pull_of_some_paths_downloads_only_their_chunks(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a = make_repo("a")
    wanted = {f"data/wanted/f{i}.bin": rand(20 * KiB, i) for i in range(6)}
    other = {"data/other/big.bin": rand(6 * MiB, 50), "data/other/s.bin": rand(KiB, 51)}
    vid = commit_files(a, {**wanted, **other}, "all")
    remote.add_to(a)
    a.ok("push")

    b, r = remote.clone(a.root.parent, "b", "--no-checkout")
    metadata = transfer(r).objects  # 1 version + 4 trees, no chunks
    assert metadata == 5
    assert not (b.root / "data").exists()
    stored = b.objects_size()
    r = b.ok("pull", "main", "data/wanted")
    t = transfer(r)
    assert t.objects == len(wanted)  # one chunk per small file, nothing else
    assert b.objects_size() - stored < 200 * KiB
    same_files(a.root, b.root, list(wanted))
    assert not (b.root / "data/other").exists()
    assert b.head_id() == vid
    report = b.fsck_clean()
    assert report["remote_only"] >= 2  # big.bin's chunks and s.bin: on the remote only
    # and the rest comes when asked for
    r = b.ok("pull", "main", "data/other")
    assert transfer(r).objects == report["remote_only"]
    same_files(a.root, b.root, list(other))
    assert b.fsck_clean()["remote_only"] == 0


def test_clone_of_one_revision_downloads_only_its_chunks(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a = make_repo("a")
    v1 = commit_files(a, {"data/small.bin": rand(10 * KiB, 1)}, "small")
    commit_files(a, {"data/big.bin": rand(8 * MiB, 2)}, "big")
    remote.add_to(a)
    a.ok("push")
    b, r = remote.clone(a.root.parent, "b", "--rev", "v1")
    # 2 versions, 2 x 2 trees, and the one chunk v1 needs
    assert transfer(r).objects == 2 + 4 + 1
    assert b.objects_size() < 1 * MiB
    assert b.read("data/small.bin") == a.read("data/small.bin")
    assert not (b.root / "data/big.bin").exists()
    assert b.head_id() == v1
    b.fsck_clean()


def test_clone_of_an_unknown_revision_says_what_the_remote_has_and_a_command_that_runs(
    dir_remote: Remote, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """The clone is removed, so "run `dvfs log` or `dvfs branch`" named commands that
    had no repository to run in."""
    a = make_repo("a")
    commit_files(a, {"data/x": b"x"}, "one")
    commit_files(a, {"data/x": b"y"}, "two")
    a.ok("tag", "t1")
    dir_remote.add_to(a)
    a.ok("push", "--tags")
    r = run(tmp_path, "clone", "--rev", "nosuch", dir_remote.url, "c d")
    line = assert_error(r, "unknown revision nosuch", "has branch main and tag t1")
    assert "nothing was cloned" in line and "`dvfs log` or" not in line, line
    assert not (tmp_path / "c d").exists()
    command = re.search(r"`(dvfs clone [^`]*)`", line)
    assert command is not None, line
    argv = shlex.split(command.group(1))
    assert argv[:3] == ["dvfs", "clone", "--no-checkout"] and argv[-1] == "c d"
    assert_ok(run(tmp_path, *argv[1:]))  # it runs as written, and lists what was asked for
    assert "two" in assert_ok(run(tmp_path / "c d", "log")).out
    # A close name or a number past the last: the usual guess, and that nothing is left.
    line = assert_error(run(tmp_path, "clone", "--rev", "v9", dir_remote.url, "e"))
    assert line.endswith("unknown revision v9: main has v1 to v2; nothing was cloned")
    line = assert_error(run(tmp_path, "clone", "--rev", "mian", dir_remote.url, "e"))
    assert line.endswith("did you mean: main; nothing was cloned")
    assert not (tmp_path / "e").exists()


def test_clone_of_one_of_the_remotes_branches_makes_and_checks_out_that_branch(
    dir_remote: Remote, make_repo: RepoFactory
) -> None:
    """`--rev other` of a branch the remote has failed with "unknown revision other":
    only the main branch was made before REV was looked up."""
    a = make_repo("a")
    commit_files(a, {"data/x": b"x"}, "one")
    a.ok("switch", "-c", "other")
    other = commit_files(a, {"data/y": b"y"}, "on other")
    dir_remote.add_to(a)
    a.ok("push", "main", "other")
    b, r = dir_remote.clone(a.root.parent, "b", "--rev", "other")
    assert "(branch other)" in r.out
    assert b.head_id() == other and b.read("data/y") == b"y"
    st = b.status()
    assert st["branch"] == "other" and st["detached"] is None
    assert [t["name"] for t in st["remotes"]] == ["origin/other"]
    c, _ = dir_remote.clone(a.root.parent, "c", "--rev", "other", "--no-checkout")
    assert c.status()["branch"] == "other" and not (c.root / "data").exists()


def test_the_records_of_many_directories_come_in_a_few_requests(
    remote: Remote, make_repo: RepoFactory
) -> None:
    """A push packs versions and trees before chunks, so a fetch needs no GET per tree."""
    a = make_repo("a")
    dirs = 24  # each tree would sit between its directory's 300 KiB chunks otherwise
    commit_files(a, {f"data/d{i:02}/f.bin": rand(300 * KiB, i) for i in range(dirs)}, "dirs")
    remote.add_to(a)
    a.ok("push")
    b, r = remote.clone(a.root.parent, "b", "--no-checkout")
    t = transfer(r)
    assert t.objects == 1 + 2 + dirs  # the version, the root and data trees, one per dir
    assert t.requests < 15  # refs, format, index, then one GET per level of the tree
    b.fsck_clean()


# --------------------------------------------------------------------- interruptions


def test_interrupted_push_and_pull_resume_without_sending_twice(
    remote: Remote, make_repo: RepoFactory
) -> None:
    a = make_repo("a")
    commit_files(a, {"data/seed.txt": b"seed\n"}, "seed")
    remote.add_to(a)
    a.ok("push")
    b, _ = remote.clone(a.root.parent, "b")
    seed_packs = set(remote.packs())
    # 48 MiB of incompressible data: 4 packs (3 of ~16 MiB), sent one at a time
    big = {f"data/big{i}.bin": rand(16 * MiB, 100 + i) for i in range(3)}
    v2 = commit_files(a, big, "big")

    proc = spawn_ready(a.root, "push", "--jobs", "1")
    go(proc)
    wait_for(lambda: len(remote.list_keys("packs/")) > len(seed_packs), proc, "a pack was uploaded")
    kill(proc)
    # nothing half-written is visible; the branch did not move
    partial = set(remote.packs()) - seed_packs
    assert partial
    assert remote.ref() != v2
    assert len(remote.list_keys("index/")) == 1

    r = a.ok("push", "--jobs", "1")
    t = transfer(r)
    new = set(remote.packs()) - seed_packs - partial
    assert t.kept == len(partial) and t.packs == len(new)  # none was sent twice
    assert len(new) + len(partial) >= 3
    assert remote.ref() == v2
    assert len(remote.list_keys("index/")) == 2

    # b pulls it, is killed once part of the data is stored, and pulls again
    objects = b.root / ".dvfs" / "objects"
    packs_before = len(list(objects.glob("pack-*.pack")))
    had = stored_objects(b)
    proc = subprocess.Popen(
        cli_command("pull", "--jobs", "1"),
        cwd=b.root,
        env=cli_env({DOWNLOAD_STOP_ENV: "20"}),  # stops itself once 20 chunks are stored
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"the pull ended before its 20th chunk (status {status})"
    kill(proc)
    assert len(list(objects.glob("pack-*.pack"))) > packs_before
    have = stored_objects(b)
    assert have > had  # some of the data was kept
    r = b.ok("pull", "--jobs", "1")
    t = transfer(r)
    assert t.objects > 0
    assert stored_objects(b) - have == t.objects  # only what was missing came down
    assert b.head_id() == v2
    same_files(a.root, b.root, list(big))
    a.fsck_clean()
    b.fsck_clean()
