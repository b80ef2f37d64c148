"""``dvfs store prune`` (issue 16): the local store as a cache of the default remote.

Three versions of ``data.bin`` (each new bytes) are pushed to a directory remote (the
code is the same above every backend; ``tests/test_remote_gc.py`` uses SeaweedFS).
Pruning drops the data of the old ones, never what the remote lacks, keeps every
record (``log``, ``show``), and the files come back on demand. Each test ends with
``dvfs fsck``, which counts the absent chunks as held by the remote.
"""

from __future__ import annotations

import json
import random
import shutil
from pathlib import Path

import pytest

import vfs
from tests.conftest import tmpfs
from tests.support.cli import (
    Repo,
    RepoFactory,
    add_in_process,
    assert_error,
    assert_ok,
    commit_in_process,
    init_repo,
    run,
    switch_in_process,
)
from tests.support.cli import make_repo_fixture as make_repo_fixture
from tests.support.mount import mounted
from tests.support.remote import Remote
from tests.support.remote import dir_remote_fixture as dir_remote_fixture
from tests.test_faults import fill
from vfs.store.packs import SMALL_PACKS_MERGE

KiB = 1024
DATA = [random.Random(i).randbytes(300 * KiB) for i in range(5)]


def three_pushed(make_repo: RepoFactory, remote: Remote) -> Repo:
    repo = make_repo()
    remote.add_to(repo)
    for i in range(3):
        repo.write("data.bin", DATA[i])
        add_in_process(repo, "data.bin")
        commit_in_process(repo, f"v{i + 1}")
    repo.ok("tag", "first", "v1")
    repo.ok("push", "--tags")
    return repo


def test_prune_drops_what_the_remote_holds_and_it_comes_back(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    repo = three_pushed(make_repo, dir_remote)
    before = repo.objects_size()
    dry = repo.json("store", "prune", "--dry-run", "--json")
    assert dry["chunks_dropped"] == 2 and repo.objects_size() == before
    kept = repo.json("store", "prune", "--keep-tags", "--json")
    assert kept["chunks_dropped"] == 1 and kept["pruned_versions"] == 1  # v2 only
    got = repo.json("store", "prune", "--json")
    assert got["chunks_dropped"] == 1 and got["bytes_dropped"] >= len(DATA[0])
    assert repo.objects_size() < before - 2 * len(DATA[0]) + 64 * KiB
    # every record stays; the data comes back when a command needs it
    assert len(repo.json("log", "--json")) == 3
    assert repo.show("v1")["version"] == "v1"
    assert repo.fsck_clean()["remote_only"] == 2
    assert "not stored here" in repo.ok("fsck").out
    assert repo.cat("v1:data.bin") == DATA[0]
    repo.ok("checkout", "v2")
    assert repo.read("data.bin") == DATA[1]
    repo.ok("checkout", "main")
    assert [e["op"] for e in repo.json("audit", "--json")].count("prune") == 2
    repo.fsck_clean()


def test_prune_never_drops_data_the_remote_lacks(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    repo = three_pushed(make_repo, dir_remote)
    for i in (3, 4):  # v4 and v5: committed, never pushed
        repo.write("data.bin", DATA[i])
        add_in_process(repo, "data.bin")
        repo.commit(f"v{i + 1}")
    got = repo.json("store", "prune", "--json")
    assert got["chunks_dropped"] == 3  # v1..v3's; v4's data exists only here
    assert (got["pruned_versions"], got["kept_versions"]) == (3, 2)  # (said 1: v5 alone)
    assert "kept the data of 2 version(s)" in repo.ok("store", "prune", "--dry-run").out
    assert repo.cat("v4:data.bin") == DATA[3]
    # --pushed-only looks only at versions on the remote's history: the same here
    assert repo.json("store", "prune", "--pushed-only", "--json")["chunks_dropped"] == 0
    repo.fsck_clean()


def with_a_default_lacking_the_data(
    make_repo: RepoFactory, dir_remote: Remote, tmp_path: Path
) -> Repo:
    """Three versions pushed to origin, then remote team (another repository's, which
    lacks their data) added as the default."""
    repo = three_pushed(make_repo, dir_remote)
    other = make_repo("other")
    other.write("o.bin", DATA[4])
    other.ok("add", "o.bin")
    other.commit("other")
    other.ok("remote", "add", "origin", str(tmp_path / "team"))
    other.ok("push")
    repo.ok("remote", "add", "team", str(tmp_path / "team"), "--default")
    return repo


def test_data_pruned_for_a_remote_other_than_the_default_comes_back_from_it(
    make_repo: RepoFactory, dir_remote: Remote, tmp_path: Path
) -> None:
    """`store prune --remote backup` while origin, the default, lacks the data: `cat`
    and `checkout` of an old version asked origin alone and failed ("which failed",
    or "neither in the local store nor on remote origin"), while fsck said commands
    fetch the data when needed. The remote the default lacks it on is asked next."""
    repo = with_a_default_lacking_the_data(make_repo, dir_remote, tmp_path)
    assert repo.json("store", "prune", "--json")["chunks_dropped"] == 0  # (team holds none)
    assert repo.json("store", "prune", "--remote", "origin", "--json")["chunks_dropped"] == 2
    assert repo.cat("v1:data.bin") == DATA[0]
    shutil.rmtree(tmp_path / "team")  # the default fails: origin still answers
    repo.ok("checkout", "v2")
    assert repo.read("data.bin") == DATA[1]
    repo.ok("checkout", "main")
    repo.fsck_clean()


def test_a_repository_mount_reads_data_pruned_for_a_remote_other_than_the_default(
    make_repo: RepoFactory, dir_remote: Remote, tmp_path: Path
) -> None:
    """A mount's daemon asked the default remote alone for the data the local store
    lacks: after `store prune --remote origin` while team, the default, lacks it, a
    read of an old version failed (EIO) where `cat` gave it. origin is asked next."""
    repo = with_a_default_lacking_the_data(make_repo, dir_remote, tmp_path)
    assert repo.json("store", "prune", "--remote", "origin", "--json")["chunks_dropped"] == 2
    with mounted(str(repo.root), tmp_path / "mnt", tmp_path / "home", "--read-only") as m:
        assert (m.versions / "v1" / "data.bin").read_bytes() == DATA[0]
        assert (m.versions / "v2" / "data.bin").read_bytes() == DATA[1]
        assert (m.versions / "v3" / "data.bin").read_bytes() == DATA[2]
    repo.fsck_clean()


def test_the_python_api_reads_data_pruned_for_a_remote_other_than_the_default(
    make_repo: RepoFactory, dir_remote: Remote, tmp_path: Path
) -> None:
    """``vfs.Repo`` asked the default remote alone for the data the local store lacks:
    after `store prune --remote origin` while team, the default, lacks it, reading an
    old version raised ObjectMissing where `cat` gave it. origin is asked next."""
    repo = with_a_default_lacking_the_data(make_repo, dir_remote, tmp_path)
    assert repo.json("store", "prune", "--remote", "origin", "--json")["chunks_dropped"] == 2
    api = vfs.Repo(repo.root)
    assert api.read_bytes("data.bin", rev="v1") == DATA[0]
    with api.open("data.bin", rev="v2") as f:
        assert f.read() == DATA[1]
    repo.fsck_clean()


def test_prune_refusals(make_repo: RepoFactory, dir_remote: Remote) -> None:
    repo = three_pushed(make_repo, dir_remote)
    assert_error(repo.run("store", "prune", "--keep-last", "0"), "--keep-last", code=2)
    repo.ok("remote", "add", "offline", "s3://bucket/x", "--endpoint-url", "http://127.0.0.1:9")
    r = run(repo.root, "store", "prune", "--remote", "offline", env={"DVFS_RETRY_ATTEMPTS": "1"})
    assert_error(r, "cannot verify", "nothing was pruned")
    assert repo.cat("v1:data.bin") == DATA[0]  # nothing was dropped
    repo.fsck_clean()


def test_max_size_drops_the_least_recently_used_data_the_remote_holds(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    repo = three_pushed(make_repo, dir_remote)  # v1, v2, v3: about 300 KiB each
    assert_error(repo.run("config", "store.max-size", "big"), "not a size", code=2)
    limit = repo.objects_size() - 200 * KiB
    repo.ok("config", "store.max-size", str(limit))  # over by ~200 KiB: v1 goes
    assert repo.ok("config", "store.max-size").out.strip() == str(limit)
    assert repo.ok("config").out == f"store.max-size {limit}\n"  # what is set, listed
    assert repo.objects_size() <= limit
    repo.write("data.bin", DATA[3])  # v4: committed, never pushed
    r = repo.ok("add", "data.bin")  # the store grows past the limit here
    assert "store.max-size" in r.err and "1 version" in r.err  # one more goes, not v3
    assert "stays above" not in r.err
    r = repo.ok("config", "store.max-size", "1K")  # v3 (the newest pushed) and v4 stay
    assert "it stays above 1K: the rest is data origin lacks (`dvfs push` sends it)" in r.err
    repo.ok("config", "store.max-size", str(limit))
    repo.commit("v4")
    assert repo.fsck_clean()["remote_only"] == 2
    # with the remote gone, the newer data is here, the older is not
    where = Path(dir_remote.url.removeprefix("file://"))
    where.rename(where.with_name("moved"))
    assert repo.cat("v3:data.bin") == DATA[2] and repo.cat("v4:data.bin") == DATA[3]
    assert repo.run("cat", "v1:data.bin").code != 0
    # nothing can be verified now: a limit below the store leaves it as it is, warning
    r = repo.ok("config", "store.max-size", "1K")
    assert r.err.count("nothing was pruned") == 1, r.err  # said once, not twice
    assert repo.cat("v3:data.bin") == DATA[2]
    repo.ok("config", "--unset", "store.max-size")
    listed = repo.ok("config")
    assert listed.out == "" and "no setting is set (known: store.max-size)" in listed.err
    assert_error(repo.run("config", "--unset"), "needs the KEY", code=2)
    repo.fsck_clean()


def test_a_max_size_too_large_for_a_number_is_refused_in_one_line(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    """A size of 400 digits: `dvfs config store.max-size` failed with "internal error
    (OverflowError ...)", and so did every `dvfs add` once .dvfs/config held it."""
    repo = three_pushed(make_repo, dir_remote)
    huge = "9" * 400
    for size in (huge, f"{huge}T", f"1{'0' * 400}.5K"):
        assert_error(repo.run("config", "store.max-size", size), "is not a size", code=2)
    (repo.root / ".dvfs" / "config").write_text(json.dumps({"store.max-size": huge}))
    repo.write("more.bin", DATA[3])
    r = repo.ok("add", "more.bin")  # (staged: the setting is only warned about)
    assert "store.max-size 9999" in r.err and "is not a size" in r.err, r.err
    repo.commit("v4")
    assert repo.cat("v1:data.bin") == DATA[0]
    repo.fsck_clean()


def test_max_size_holds_for_the_python_api_and_track_too(
    make_repo: RepoFactory, dir_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``store.max-size`` is the store's rule, not the command line's: ``repo.add`` and
    ``repo.commit`` of the API, and a ``vfs.track`` run, keep it as the CLI does."""
    repo = three_pushed(make_repo, dir_remote)
    limit = repo.objects_size() + 100 * KiB  # room for a third of the next version
    repo.ok("config", "store.max-size", str(limit))
    api = vfs.Repo(repo.root)
    repo.write("data.bin", DATA[3])
    api.add("data.bin")  # over the limit: v1's data goes (the oldest the remote holds)
    assert repo.objects_size() <= limit
    api.commit("v4")
    assert repo.fsck_clean()["remote_only"] >= 1
    repo.ok("push")
    limit = repo.objects_size() + 100 * KiB
    repo.ok("config", "store.max-size", str(limit))
    monkeypatch.chdir(repo.root)
    with vfs.track(repo=".", message="v5") as t:
        repo.write("data.bin", DATA[4])
        t.output("data.bin")
    assert repo.objects_size() <= limit
    assert repo.cat("v1:data.bin") == DATA[0]  # what went comes back from the remote
    repo.fsck_clean()


def test_a_full_disk_does_not_stop_a_remote_index_being_read(
    tmp_path: Path, dir_remote: Remote
) -> None:
    """The copies of a remote's index segments kept in .dvfs/remotes/ only save reading
    them again: on a full disk they are not kept, and the command goes on (a prune,
    which is what a full disk calls for, failed on "the disk is full")."""
    with tmpfs(tmp_path / "disk", "16m") as disk:
        repo = init_repo(disk / "repo")
        dir_remote.add_to(repo)
        for i in range(2):
            repo.write("data.bin", DATA[i])
            repo.ok("add", "data.bin")
            repo.commit(f"v{i + 1}")
        repo.ok("push")
        cache = repo.root / ".dvfs" / "remotes" / "origin" / "index"
        shutil.rmtree(cache, ignore_errors=True)
        fill(disk / "fill")
        assert repo.json("store", "prune", "--dry-run", "--json")["chunks_dropped"] == 1
        assert not any(cache.glob("*"))
        (disk / "fill").unlink()
        assert repo.json("store", "prune", "--json")["chunks_dropped"] == 1
        assert repo.cat("v1:data.bin") == DATA[0]
        repo.fsck_clean()


def test_prune_on_a_full_disk_says_what_it_kept(tmp_path: Path, dir_remote: Remote) -> None:
    """A pack holding a chunk to drop beside one to keep is rewritten, which takes room:
    on a full disk it is kept, and prune says so, counts nothing dropped and fails,
    rather than report the chunk dropped and succeed."""
    with tmpfs(tmp_path / "disk", "16m") as disk:
        repo = init_repo(disk / "repo")
        dir_remote.add_to(repo)
        repo.write("old.bin", DATA[0])
        repo.write("keep.bin", DATA[1])
        repo.ok("add", "old.bin", "keep.bin")  # one pack
        repo.commit("v1")
        repo.ok("rm", "old.bin")
        repo.commit("v2")
        repo.ok("push")
        fill(disk / "fill")
        r = repo.run("store", "prune", "--json")
        assert r.code == 1 and r.raw, str(r)
        got = r.json()
        assert got["chunks_dropped"] == 0 and got["pruned_versions"] == 0, got
        assert any("disk is full" in p for p in got["problems"]), got
        r = repo.run("store", "prune")
        assert r.code == 1 and "problem: the disk is full" in r.out, str(r)
        assert "dropped 0 chunk(s)" in r.out, str(r)
        assert repo.cat("v1:old.bin") == DATA[0]
        repo.fsck_clean()

        (disk / "fill").unlink()
        got = repo.json("store", "prune", "--json")
        assert got["chunks_dropped"] == 1 and got["problems"] == [], got
        assert repo.cat("v1:old.bin") == DATA[0]  # (from the remote)
        repo.fsck_clean()


def test_prune_keeps_what_lies_in_a_pack_the_remote_lacks(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    """A pack deleted or cut short on the remote (by hand, by a disk) while its index
    still lists it: prune dropped the objects placed there, their last copy, and exited
    0; then `cat` found the data gone from both sides."""
    repo = make_repo()
    dir_remote.add_to(repo)
    first: set[str] = set()
    for i in range(3):
        repo.write("data.bin", DATA[i])
        add_in_process(repo, "data.bin")
        repo.commit(f"v{i + 1}")
        repo.ok("push")
        if i == 0:
            first = dir_remote.list_keys("packs/")
    (pack,) = first
    saved = dir_remote.backend.get(pack)
    dir_remote.backend.delete(pack)
    r = repo.run("store", "prune", "--json")
    assert r.code == 1, str(r)
    got = r.json()
    assert got["chunks_dropped"] == 1  # v2's; v1's lies in the pack the remote lacks
    (problem,) = got["problems"]
    assert f"lists 1 pack(s) it does not hold whole ({pack.rpartition('/')[2][:12]})" in problem
    assert "`dvfs fsck --remote origin`" in problem
    assert repo.cat("v1:data.bin") == DATA[0]
    dir_remote.backend.put(pack, saved[: len(saved) // 2])  # cut short: the same
    assert "does not hold whole" in repo.run("store", "prune").out
    assert repo.cat("v1:data.bin") == DATA[0]
    dir_remote.backend.put(pack, saved)
    assert repo.json("store", "prune", "--json")["chunks_dropped"] == 1  # v1's, now
    assert repo.cat("v1:data.bin") == DATA[0]
    repo.fsck_clean()


def test_a_remote_branch_data_pruned_here_relies_on_is_not_deleted(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    """Prune drops data the remote's refs reach. `dvfs push --delete` of such a ref
    from this very clone went through, and the next `dvfs gc --remote` deleted the
    last copy of data that a branch here still used."""
    repo = make_repo()
    dir_remote.add_to(repo)
    repo.write("base.txt", "base\n")
    add_in_process(repo, "base.txt")
    commit_in_process(repo, "base")
    repo.ok("push")
    repo.ok("checkout", "-b", "exp")
    for i in range(2):
        repo.write("data.bin", DATA[i])
        repo.ok("add", "data.bin")
        repo.commit(f"exp {i}")
    repo.ok("push", "exp")
    repo.ok("checkout", "main")
    assert repo.json("store", "prune", "--json")["chunks_dropped"] >= 2
    r = repo.run("push", "--delete", "exp")
    assert_error(r, "deleting exp on origin would leave", "`dvfs branch -D NAME`", code=2)
    assert "nothing was deleted" in r.err
    assert dir_remote.ref("exp") is not None
    repo.ok("gc", "--remote", "origin", "--grace", "0")
    assert repo.cat("exp~1:data.bin") == DATA[0]
    repo.ok("branch", "-D", "exp")
    repo.ok("push", "--delete", "exp")  # nothing here uses its data any more
    assert dir_remote.ref("exp") is None
    repo.fsck_clean()


def test_a_directory_remote_not_mounted_is_named_so_by_prune_and_by_reads_of_its_data(
    make_repo: RepoFactory, dir_remote: Remote, tmp_path: Path
) -> None:
    """A NAS not mounted: the remote's directory empty, or missing. A read of pruned
    data said "neither in the local store nor on remote origin: push it from a
    repository that has it", `store prune` said "dropped 0 chunk(s)" (empty) or
    "create it" (missing), where fetch says the clone had versions from there. And the
    empty folder's listing, no index segment, made the cached index forgotten: `dvfs
    fsck` then called every pruned chunk missing, lost."""
    repo = three_pushed(make_repo, dir_remote)
    repo.ok("store", "prune")
    where = tmp_path / "remote"
    where.rename(tmp_path / "unmounted")
    for empty in (True, False):
        if empty:
            where.mkdir()
        said = "holds no dvfs repository" if empty else "does not exist"
        gone = "but this clone has origin/main from it: check that it is mounted"
        assert_error(repo.run("fetch"), said, gone)
        assert_error(repo.run("cat", "v1:data.bin"), "needs data for data.bin", said, gone)
        line = assert_error(repo.run("store", "prune"), said, gone)
        assert "cannot verify what remote origin holds, so nothing was pruned" in line
        # what the remote's index held when last read is kept: fsck does not call the
        # pruned data lost (the empty folder listed no index segment)
        repo.fsck_clean()
        if empty:
            where.rmdir()
    (tmp_path / "unmounted").rename(where)
    assert repo.cat("v1:data.bin") == DATA[0]
    repo.fsck_clean()


def damage_on(remote: Path, data: bytes) -> None:
    """Flip a byte of ``data`` (stored raw: random bytes) in the directory remote's pack
    that holds it."""
    packs = sorted((remote / "packs").iterdir())
    damaged = next(p for p in packs if data[1000:1100] in p.read_bytes())
    raw = bytearray(damaged.read_bytes())
    raw[raw.index(data[1000:1100]) + 50] ^= 0xFF
    damaged.chmod(0o644)
    damaged.write_bytes(bytes(raw))


def test_prune_verify_keeps_what_the_remote_holds_damaged(
    make_repo: RepoFactory, dir_remote: Remote, tmp_path: Path
) -> None:
    """Prune trusts the remote's index and listing: a pack damaged in place on the
    remote (a byte flipped, its size the same) still counts as holding its chunks, and
    their last copy goes from here. With --verify the data to drop is read back and
    checked first: the damaged chunk stays here, named as a problem (exit 1), the
    whole one is dropped, and the file of each version still reads."""
    repo = three_pushed(make_repo, dir_remote)
    damage_on(tmp_path / "remote", DATA[0])
    r = repo.run("store", "prune", "--verify", "--dry-run", "--json")
    assert r.code == 1, str(r)
    got = r.json()
    assert got["chunks_dropped"] == 1 and got["chunks_verified"] == 1  # v2's
    assert got["bytes_verified"] == len(DATA[1])
    (problem,) = got["problems"]
    assert "1 chunk(s) did not read back whole from remote origin" in problem
    assert "they were kept here" in problem and "`dvfs fsck --remote origin --data`" in problem
    r = repo.run("store", "prune", "--verify")
    assert r.code == 1 and "problem: 1 chunk(s) did not read back whole" in r.out, str(r)
    assert "verified 1 chunk(s) (300.0 KiB) on origin" in r.out
    assert "dropped 1 chunk(s)" in r.out
    assert repo.cat("v1:data.bin") == DATA[0]  # (kept here: the remote's copy is damaged)
    assert repo.cat("v2:data.bin") == DATA[1]  # (from the remote, whole)
    assert repo.cat("v3:data.bin") == DATA[2]
    repo.fsck_clean()


def test_a_repository_mount_reads_from_another_remote_what_the_default_holds_damaged(
    make_repo: RepoFactory, dir_remote: Remote, tmp_path: Path
) -> None:
    """The default remote's copy of a chunk the local store lacks fails verification,
    another remote holds it whole: `cat` reads it from there, and so must a mount
    (it failed with EIO, the other remote never asked)."""
    repo = three_pushed(make_repo, dir_remote)
    repo.ok("remote", "add", "backup", str(tmp_path / "backup"))
    repo.ok("push", "--remote", "backup", "--all", "--tags")
    repo.ok("fetch", "--remote", "backup")  # (its index as last read lists the data)
    assert repo.json("store", "prune", "--json")["chunks_dropped"] == 2
    damage_on(tmp_path / "remote", DATA[0])
    assert repo.cat("v1:data.bin") == DATA[0]
    repo.ok("store", "prune")  # (cat kept what it fetched)
    with mounted(str(repo.root), tmp_path / "mnt", tmp_path / "home", "--read-only") as m:
        assert (m.versions / "v1" / "data.bin").read_bytes() == DATA[0]
        assert (m.versions / "v2" / "data.bin").read_bytes() == DATA[1]
    repo.fsck_clean()


def test_what_a_push_wrote_to_another_remote_is_known_there_without_a_fetch(
    make_repo: RepoFactory, dir_remote: Remote, tmp_path: Path
) -> None:
    """After `push --remote backup`, data the default remote holds damaged came from
    nowhere ("not in the local store") until a `fetch --remote backup` read backup's
    index: the push had not kept the index segment it wrote there."""
    repo = three_pushed(make_repo, dir_remote)
    repo.ok("remote", "add", "backup", str(tmp_path / "backup"))
    repo.ok("push", "--remote", "backup", "--all", "--tags")
    cached = repo.root / ".dvfs" / "remotes" / "backup" / "index"
    written = {p.name for p in (tmp_path / "backup" / "index").iterdir()}
    assert written and {p.name for p in cached.iterdir()} == written
    assert repo.json("store", "prune", "--json")["chunks_dropped"] == 2
    damage_on(tmp_path / "remote", DATA[0])
    assert repo.cat("v1:data.bin") == DATA[0]
    repo.fsck_clean()


def exp_pruned_then_unreached(
    make_repo: RepoFactory, remote: Remote, tmp_path: Path
) -> tuple[Repo, set[str]]:
    """Branch exp (two versions) pushed and its data pruned here; then another clone,
    which relies on none of it, deletes exp on the remote. Returns exp's packs there."""
    repo = make_repo()
    remote.add_to(repo)
    repo.write("base.txt", "base\n")
    add_in_process(repo, "base.txt")
    commit_in_process(repo, "base")
    repo.ok("push")
    before = remote.list_keys("packs/")
    switch_in_process(repo, "exp", create=True)
    for i in range(2):
        repo.write("data.bin", DATA[i])
        add_in_process(repo, "data.bin")
        commit_in_process(repo, f"exp {i}")
    repo.ok("push", "exp")
    switch_in_process(repo, "main")
    assert repo.json("store", "prune", "--json")["chunks_dropped"] == 2
    assert_ok(run(tmp_path, "clone", remote.url, "other"))
    assert_ok(run(tmp_path / "other", "push", "--delete", "exp"))
    return repo, remote.list_keys("packs/") - before


def test_a_remote_gc_run_here_keeps_data_pruned_here_that_another_clone_unreached(
    make_repo: RepoFactory, dir_remote: Remote, tmp_path: Path
) -> None:
    """Another clone deleted the remote branch whose data was pruned here (it relies on
    none of it); `dvfs gc --remote` run from this clone then deleted the last copy of
    data this clone's branch exp uses, though it could tell: `cat exp:data.bin` failed
    and `dvfs fsck` named the chunks missing."""
    repo, _ = exp_pruned_then_unreached(make_repo, dir_remote, tmp_path)
    r = repo.ok("gc", "--remote", "origin", "--grace", "0")
    assert "kept 2 chunk(s) (614,400 bytes) that no ref of origin reaches" in r.err, r.err
    assert "`dvfs push --all`" in r.err
    repo.ok("push", "--all")  # (what it advises: exp reaches them on the remote again)
    assert "kept" not in repo.ok("gc", "--remote", "origin", "--grace", "0").err
    assert repo.cat("exp~1:data.bin") == DATA[0]
    assert repo.cat("exp:data.bin") == DATA[1]
    repo.fsck_clean()


def test_data_pruned_here_in_a_pack_the_remote_lost_does_not_stop_its_gc(
    make_repo: RepoFactory, dir_remote: Remote, tmp_path: Path
) -> None:
    """What the remote's index lists in a pack it no longer holds is no copy to keep:
    the gc drops those entries as before, rather than stopping for "pack(s) holding
    objects the refs reach are missing" (no ref reaches them)."""
    repo, packs = exp_pruned_then_unreached(make_repo, dir_remote, tmp_path)
    for key in packs:
        dir_remote.backend.delete(key)
    r = repo.ok("gc", "--remote", "origin", "--grace", "0")
    assert "kept" not in r.err, r.err
    assert_error(repo.run("cat", "exp:data.bin"), "neither in the local store nor on remote")


def test_what_a_remote_gc_merged_is_still_known_here_to_be_on_the_remote(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    """A remote gc run here merged the remote's small pushes and replaced their index
    segments: it deleted the cached copies of those, and kept none of the one that
    replaced them. Data pruned here then counted as held by no remote: `dvfs fsck`
    named every pruned chunk "missing" (exit 1), and `dvfs remote remove origin` went
    through without saying that origin alone held it."""
    repo = make_repo()
    dir_remote.add_to(repo)
    api = vfs.Repo(repo.root)
    small = [f"row {i}\n".encode() * 50 for i in range(SMALL_PACKS_MERGE + 1)]
    try:
        for i, data in enumerate(small):
            repo.write("small.txt", data)
            api.add("small.txt")
            api.commit(f"small {i}")
            api.push()
    finally:
        api.close()
    assert repo.json("store", "prune", "--json")["chunks_dropped"] == SMALL_PACKS_MERGE
    assert "merged" in repo.ok("gc", "--remote", "origin").out
    assert repo.fsck_clean()["remote_only"] == SMALL_PACKS_MERGE
    assert_error(repo.run("remote", "remove", "origin"), "alone holds the data of", code=2)
    assert repo.cat("v1:small.txt") == small[0]
    repo.fsck_clean()


def test_a_forced_push_leaving_data_pruned_here_unreached_is_refused(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    """`dvfs push --force` moving origin/main back, as `push --delete` of a ref: the
    data of v2 was pruned here (origin/main reached it) and branch keep here still uses
    it; the forced push went through, and the next `dvfs gc --remote` from any clone
    deleted the last copy."""
    repo = three_pushed(make_repo, dir_remote)
    repo.ok("branch", "keep", "v2")
    v1, v3 = repo.show("v1")["id"], repo.show("v3")["id"]
    assert repo.json("store", "prune", "--json")["chunks_dropped"] == 2
    repo.ok("switch", "-c", "other", "v1")
    repo.ok("branch", "-f", "main", "v1")
    r = repo.run("push", "--force", "main")
    assert_error(r, "forcing main on origin would leave 1 chunk(s)", "`dvfs branch -D", code=2)
    assert "nothing was pushed" in r.err
    assert dir_remote.ref("main") == v3
    repo.ok("branch", "-D", "keep")
    repo.ok("push", "--force", "main")  # nothing here uses v2's data any more
    assert dir_remote.ref("main") == v1
    assert repo.cat("v1:data.bin") == DATA[0]
    repo.fsck_clean()
