"""``dvfs gc --remote`` (issue 16): condemn, then sweep; pushes racing it lose nothing.

The remote is the session's SeaweedFS (a bare S3 bucket) unless a test says otherwise.
Garbage is made as it happens: a push killed after uploading its packs and segment,
before its ref moved. A push is held at a chosen point of its work by
``DVFS_TEST_PUSH_STOP_AT`` (it stops itself; the test waits for the stop with
``waitpid``), a gc's clock is moved on by ``DVFS_TEST_GC_CLOCK`` (so that a grace
expires without waiting a day), and a gc is killed at each of its steps by
``DVFS_TEST_GC_KILL_AT``. Every test reads the remote back through a fresh clone and
ends with ``dvfs fsck``.
"""

from __future__ import annotations

import os
import signal
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest

from tests.support.cli import (
    Repo,
    RepoFactory,
    add_in_process,
    assert_error,
    assert_ok,
    cli_command,
    cli_env,
    commit_files,
    commit_in_process,
    make_repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from tests.support.data import rand
from tests.support.forge import Forge, file_entry, nested
from tests.support.remote import (  # noqa: F401  (fixtures)
    Remote,
    Seeds,
    dir_remote_fixture,
    seeds_fixture,
)
from tests.support.s3server import S3Server
from vfs.backends import LocalBackend, open_backend
from vfs.ops.sync import STOP_ENV
from vfs.remote.gc import CLOCK_ENV, KILL_ENV
from vfs.remote.layout import INDEX, MANIFESTS, decode_segment, new_manifest_key
from vfs.remote.manifests import encode_manifest

KiB = 1024
DAY = 24 * 3600


KEEP = rand(300 * KiB, 1)
JUNK = rand(400 * KiB, 2)
MORE = rand(200 * KiB, 3)


@pytest.fixture(name="s3_remote")
def s3_remote_fixture(s3_env: S3Server) -> Remote:
    url = f"s3://{s3_env.make_prefix()}/team/data"
    backend = open_backend(url, endpoint_url=s3_env.endpoint)
    return Remote("s3", url, ("--endpoint-url", s3_env.endpoint), backend)


def stopped_push(repo: Repo, step: str) -> subprocess.Popen[bytes]:
    """``dvfs push`` in ``repo``, stopped by its test hook at ``step``."""
    proc = subprocess.Popen(
        cli_command("push"),
        cwd=repo.root,
        env=cli_env({STOP_ENV: step}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"push ended before {step} (status {status})"
    return proc


def resume(proc: subprocess.Popen[bytes]) -> str:
    """Let a stopped push finish; it must succeed. Its output."""
    os.kill(proc.pid, signal.SIGCONT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 0, (out, err)
    return out.decode()


def interrupted_push(repo: Repo) -> None:
    """A push of ``repo`` killed after its packs and segment are up, before its ref."""
    proc = stopped_push(repo, "uploaded")
    proc.kill()
    proc.wait()


def gc(repo: Repo, *args: str, clock: float = 0, kill_at: str = "") -> dict[str, Any]:
    env = {CLOCK_ENV: str(clock), KILL_ENV: kill_at}
    r = assert_ok(run(repo.root, "gc", "--remote", "origin", "--json", *args, env=env))
    out: dict[str, Any] = r.json()
    return out


def push_keep(repo: Repo) -> None:
    """``keep.bin`` committed as v1, and pushed."""
    repo.write("keep.bin", KEEP)
    add_in_process(repo, "keep.bin")
    commit_in_process(repo, "keep")
    repo.ok("push")


def seeded(seeds: Seeds, remote: Remote, tmp_path: Path) -> Repo:
    """A repository ``tmp_path/seed`` with ``keep.bin`` pushed to ``remote`` as v1 (a copy
    of the module's first: ``tests.support.remote.Seeds``)."""
    return seeds.pushed(remote, tmp_path, push_keep)[0]


def with_garbage(repo: Repo, name: str = "junk.bin", data: bytes = JUNK) -> str:
    """Commit ``name`` and push it, interrupted: its packs are on the remote, no ref
    reaches them. Returns the version's id (on the local branch only)."""
    repo.write(name, data)
    add_in_process(repo, name)
    oid = commit_in_process(repo, name)
    interrupted_push(repo)
    return oid


def manifests(remote: Remote) -> set[str]:
    return remote.list_keys(MANIFESTS)


def cloned_clean(remote: Remote, cwd: Path, name: str, files: dict[str, bytes]) -> None:
    """A fresh clone of the remote has ``files`` and a clean fsck."""
    clone, _ = remote.clone(cwd, name)
    for rel, data in files.items():
        assert clone.read(rel) == data, rel
    clone.fsck_clean()


def test_remote_gc_condemns_then_sweeps_after_the_grace(
    seeds: Seeds, s3_remote: Remote, tmp_path: Path
) -> None:
    repo = seeded(seeds, s3_remote, tmp_path)
    kept = set(s3_remote.packs())
    with_garbage(repo)
    junk = set(s3_remote.packs()) - kept
    assert junk

    # young garbage (a push may be in flight) is left alone
    young = gc(repo)
    assert young["condemned_packs"] == 0 and young["deleted_packs"] == 0
    assert set(s3_remote.packs()) == kept | junk and not manifests(s3_remote)

    # a day later it is condemned, nothing is deleted yet (--grace 0 would delete it)
    at_once = gc(repo, "--dry-run", "--grace", "0", clock=DAY + 60)
    first = gc(repo, clock=DAY + 60)
    assert first["condemned_packs"] == len(junk) and first["deleted_packs"] == 0
    assert at_once["deleted_packs"] == len(junk)
    assert at_once["bytes_freed"] == first["condemned_bytes"] > len(JUNK)
    assert len(manifests(s3_remote)) == 1
    assert set(s3_remote.packs()) == kept | junk
    dry = gc(repo, "--dry-run", clock=2 * DAY + 120)  # (it said "would delete 1 pack (0 B)")
    assert dry["deleted_packs"] == len(junk)

    # a day after that, the sweep deletes it and drops it from the index
    second = gc(repo, clock=2 * DAY + 120)
    assert second["deleted_packs"] == len(junk) and second["bytes_freed"] > len(JUNK)
    assert dry["bytes_freed"] == second["bytes_freed"]
    assert second["manifests_swept"] == 1 and second["segments_replaced"] >= 1
    assert set(s3_remote.packs()) == kept and not manifests(s3_remote)
    assert "gc/lock" not in s3_remote.list_keys("gc/")
    cloned_clean(s3_remote, tmp_path, "clone", {"keep.bin": KEEP})
    entries = [e for e in repo.json("audit", "--json") if e["op"] == "gc"]
    assert "remote origin: deleted" in entries[-1]["note"]
    chain = [e for e in repo.json("audit", "--remote", "origin", "--json") if e["op"] == "gc"]
    assert [e["note"].split(" packs")[0] for e in chain] == ["deleted 0", f"deleted {len(junk)}"]
    repo.ok("audit", "verify", "--remote", "origin")

    # the version whose push was interrupted still goes up whole when pushed again
    repo.ok("push")
    cloned_clean(s3_remote, tmp_path, "again", {"keep.bin": KEEP, "junk.bin": JUNK})
    repo.fsck_clean()


def test_a_push_that_read_the_index_before_the_condemnation_is_pardoned(
    seeds: Seeds, s3_remote: Remote, tmp_path: Path
) -> None:
    """The pusher relies on garbage (same bytes) seen in the index; gc condemns it
    meanwhile; the push moves its ref; the sweep finds it live and keeps it."""
    seed = seeded(seeds, s3_remote, tmp_path)
    other, _ = s3_remote.clone(tmp_path, "other")
    with_garbage(seed)
    garbage = set(s3_remote.packs())
    other.write("copy.bin", JUNK)  # chunks the garbage holds: deduplicated against it
    add_in_process(other, "copy.bin")
    commit_in_process(other, "copy")
    push = stopped_push(other, "indexed")
    assert gc(seed, clock=DAY + 60)["condemned_packs"] >= 1
    resume(push)
    swept = gc(seed, clock=2 * DAY + 120)
    assert swept["pardoned_packs"] >= 1
    assert garbage <= set(s3_remote.packs())
    # the garbage's version and tree stay dead in a pack that stays: condemned, then
    # dropped from the index (its segment replaced) by the next sweep
    assert swept["condemned_records"] >= 1
    dropped = gc(seed, clock=3 * DAY + 180)
    assert dropped["dropped_records"] == swept["condemned_records"]
    assert dropped["segments_replaced"] >= 1 and dropped["deleted_packs"] == 0
    cloned_clean(s3_remote, tmp_path, "clone", {"keep.bin": KEEP, "copy.bin": JUNK})
    other.fsck_clean()


def test_pushes_after_the_condemnation_rely_on_nothing_condemned(
    seeds: Seeds, s3_remote: Remote, tmp_path: Path
) -> None:
    """Once garbage is condemned, the interrupted pusher's second try does not reuse its
    condemned pack (it is laid out again), and another pusher uploads its own copy of
    the chunks the garbage holds: the sweep that deletes the garbage while both pushes
    are stopped before their refs loses nothing of theirs."""
    seed = seeded(seeds, s3_remote, tmp_path)
    other, _ = s3_remote.clone(tmp_path, "other")
    admin, _ = s3_remote.clone(tmp_path, "admin")  # runs the gc while both push
    with_garbage(seed)
    garbage = set(s3_remote.packs())
    assert gc(admin, clock=DAY + 60)["condemned_packs"] >= 1
    held_seed = stopped_push(seed, "uploaded")
    other.ok("checkout", "-b", "side")
    other.write("copy.bin", JUNK)
    other.ok("add", "copy.bin")
    other.commit("copy")
    held_other = stopped_push(other, "uploaded")
    swept = gc(admin, clock=2 * DAY + 120)
    assert swept["deleted_packs"] >= 1 and swept["pardoned_packs"] == 0
    assert "already on the remote" not in resume(held_seed)
    resume(held_other)
    # the pushes' own packs looked old to that gc's clock and were condemned: the next
    # sweep finds them live
    later = gc(seed, clock=4 * DAY)
    assert later["deleted_packs"] == 0 and later["pardoned_packs"] == swept["condemned_packs"]
    assert garbage - set(s3_remote.packs())  # the garbage is gone
    cloned_clean(s3_remote, tmp_path, "main", {"keep.bin": KEEP, "junk.bin": JUNK})
    clone, _ = s3_remote.clone(tmp_path, "side", "--rev", "origin/side")
    assert clone.read("copy.bin") == JUNK
    clone.fsck_clean()
    seed.fsck_clean()
    other.fsck_clean()


KILL_STEPS = [
    ("remote-condemned", DAY + 60),
    ("remote-marked", 2 * DAY + 120),
    ("remote-indexed", 2 * DAY + 120),
    ("remote-unindexed", 2 * DAY + 120),
    ("remote-deleted", 2 * DAY + 120),
]


def test_remote_gc_killed_at_each_step_leaves_the_remote_readable(
    seeds: Seeds, s3_remote: Remote, tmp_path: Path
) -> None:
    repo = seeded(seeds, s3_remote, tmp_path)
    kept = set(s3_remote.packs())
    with_garbage(repo)
    with_garbage(repo, "junk2.bin", MORE)  # two garbage packs: "deleted" kills between them
    for step, clock in KILL_STEPS:
        env = {CLOCK_ENV: str(clock), KILL_ENV: step}
        r = run(repo.root, "gc", "--remote", "origin", env=env)
        assert r.code == -signal.SIGKILL, (step, str(r))
        assert "gc/lock" in s3_remote.list_keys("gc/")
        if step not in ("remote-condemned", "remote-marked"):  # those changed no index
            cloned_clean(s3_remote, tmp_path, f"after-{step}", {"keep.bin": KEEP})
    gc(repo, clock=2 * DAY + 180)  # takes over the dead run's lock
    assert set(s3_remote.packs()) == kept
    assert not manifests(s3_remote) and "gc/lock" not in s3_remote.list_keys("gc/")
    cloned_clean(s3_remote, tmp_path, "final", {"keep.bin": KEEP})
    repo.fsck_clean()


def test_remote_gc_refusals_and_bad_manifests(
    seeds: Seeds, s3_remote: Remote, tmp_path: Path
) -> None:
    repo = seeded(seeds, s3_remote, tmp_path)
    assert_error(run(repo.root, "gc", "--grace", "1h"), "--remote")
    assert_error(run(repo.root, "gc", "--remote", "origin", "--grace", "soon"), "duration")
    assert_error(run(repo.root, "gc", "--remote", "nowhere"), "unknown remote")
    zero = run(repo.root, "gc", "--remote", "origin", "--grace", "0")
    assert_ok(zero)
    assert "nobody pushes" in zero.err
    # a manifest that does not decode: a push cannot tell what is condemned and stops;
    # the next gc deletes it
    s3_remote.backend.put(f"{MANIFESTS}{'0' * 16}", b"\xc1 not msgpack")
    repo.write("more.bin", MORE)
    repo.ok("add", "more.bin")
    repo.commit("more")
    assert_error(repo.run("push"), "malformed", "dvfs gc --remote")
    report = gc(repo)
    assert any("malformed" in w for w in report["warnings"])
    assert not manifests(s3_remote)
    repo.ok("push")
    # a remote that is not a dvfs remote
    (tmp_path / "empty").mkdir()
    repo.ok("remote", "add", "empty", str(tmp_path / "empty"))
    assert_error(run(repo.root, "gc", "--remote", "empty"), "no dvfs repository")
    # a remote that does not answer
    repo.ok("remote", "add", "offline", "s3://bucket/x", "--endpoint-url", "http://127.0.0.1:9")
    gone = run(repo.root, "gc", "--remote", "offline", env={"DVFS_RETRY_ATTEMPTS": "1"})
    assert_error(gone, "127.0.0.1:9")
    cloned_clean(s3_remote, tmp_path, "clone", {"keep.bin": KEEP, "more.bin": MORE})
    repo.fsck_clean()


def test_remote_gc_removes_what_killed_pushes_left_half_written(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A put killed midway leaves its ``.tmp-*`` file in a directory remote; nothing else
    ever removes it. gc does, once it is older than an hour and than the grace."""
    remote = tmp_path / "remote"
    repo = make_repo("a")
    repo.ok("remote", "add", "origin", str(remote))
    repo.write("keep.bin", KEEP)
    repo.ok("add", "keep.bin")
    repo.commit("keep")
    repo.ok("push")
    two_hours_ago = os.stat(remote / "format").st_mtime - 2 * 3600
    old = remote / "packs" / ".tmp-0a1b.5f626ce69"
    old.write_bytes(rand(1 << 20, 7))
    os.utime(old, (two_hours_ago, two_hours_ago))
    young = remote / "refs" / "heads" / ".tmp-main.5f626ce610"  # a push writing now
    young.write_bytes(b"x")
    outside = tmp_path / "outside.txt"
    outside.write_text("not the remote's")
    link = remote / "packs" / ".tmp-link"
    link.symlink_to(outside)
    os.utime(link, (two_hours_ago, two_hours_ago), follow_symlinks=False)

    assert gc(repo, "--dry-run", "--grace", "0")["temporaries"] == 0 and old.exists()
    assert gc(repo)["temporaries"] == 0 and old.exists()  # younger than the 24 h grace
    got = gc(repo, "--grace", "0")
    assert (got["temporaries"], got["temporary_bytes"]) == (1, 1 << 20)
    assert not old.exists() and young.exists()
    assert link.is_symlink() and outside.read_text() == "not the remote's"
    out = assert_ok(run(repo.root, "gc", "--remote", "origin", "--grace", "0")).out
    assert "half-written" not in out  # nothing left to remove
    os.utime(young, (two_hours_ago, two_hours_ago))
    out = assert_ok(run(repo.root, "gc", "--remote", "origin", "--grace", "0")).out
    assert "removed 1 file(s) (1 B) that interrupted pushes left half-written" in out
    repo.fsck_clean()
    assert_ok(run(tmp_path, "clone", str(remote), "c"))
    assert (tmp_path / "c" / "keep.bin").read_bytes() == KEEP


def test_a_ref_holding_no_version_id_stops_the_gc_before_anything_is_condemned(
    seeds: Seeds, dir_remote: Remote, tmp_path: Path
) -> None:
    """A ref file damaged by hand (or a disk): what it named is unknown, so nothing is
    known to be garbage; as git's gc stops on a bad ref, the remote gc stops too,
    naming the ref and how to mend it, and its data survives any number of runs."""
    repo = seeded(seeds, dir_remote, tmp_path)
    repo.ok("switch", "-c", "side")
    repo.write("side.bin", MORE)
    repo.ok("add", "side.bin")
    side = repo.commit("side")
    repo.ok("push")
    packs = dir_remote.list_keys("packs/")
    dir_remote.backend.put("refs/heads/side", b"\x00garbage\n")
    for clock in (0, 2 * DAY, 4 * DAY):
        r = run(repo.root, "gc", "--remote", "origin", "--grace", "1h", env={CLOCK_ENV: str(clock)})
        line = assert_error(r, "refs/heads/side", "nothing was changed", "origin/side")
        assert "Traceback" not in r.err
    assert dir_remote.list_keys("packs/") == packs
    assert not manifests(dir_remote)
    # mended as the message says: the gc runs, and side's data is there
    dir_remote.backend.put("refs/heads/side", f"{side}\n".encode())
    gc(repo, clock=6 * DAY)
    gc(repo, clock=8 * DAY)
    assert line
    cloned_clean(dir_remote, tmp_path, "clone", {"keep.bin": KEEP})
    clone = Repo(tmp_path / "clone")
    clone.ok("switch", "-c", "side", "origin/side")
    assert clone.read("side.bin") == MORE
    clone.fsck_clean()


def test_a_ref_with_a_control_character_in_its_name_stops_the_gc_with_its_name_quoted(
    seeds: Seeds, dir_remote: Remote, tmp_path: Path
) -> None:
    """A ref file named with an escape sequence: clones skip it with a warning, but the
    gc stopped with "invalid storage key" and no word of what to do. No backend reads
    such a key, so what it names is unknown and nothing is known to be garbage: the gc
    (and its dry run) now stops before changing anything, naming the ref quoted and
    how to mend it, and runs once the file is renamed."""
    repo = seeded(seeds, dir_remote, tmp_path)
    repo.ok("switch", "-c", "side")
    repo.write("side.bin", MORE)
    repo.ok("add", "side.bin")
    side = repo.commit("side")
    repo.ok("push")
    repo.ok("switch", "main")
    repo.ok("branch", "-D", "side")
    heads = Path(dir_remote.url.removeprefix("file://")) / "refs" / "heads"
    (heads / "side").rename(heads / "s\x1b[31mide")
    packs = dir_remote.list_keys("packs/")
    for args, clock in ((("--dry-run",), 0), ((), 0), ((), 4 * DAY)):
        r = run(repo.root, "gc", "--remote", "origin", *args, env={CLOCK_ENV: str(clock)})
        line = assert_error(r, '"refs/heads/s\\033[31mide"', "nothing was changed", "rename")
        assert "\x1b" not in line
    assert dir_remote.list_keys("packs/") == packs
    assert not manifests(dir_remote)
    # mended as the message says: the gc runs, and side's data is there
    (heads / "s\x1b[31mide").rename(heads / "side")
    assert dir_remote.ref("side") == side
    gc(repo, clock=6 * DAY)
    gc(repo, clock=8 * DAY)
    clone, _ = dir_remote.clone(tmp_path, "clone")
    clone.ok("switch", "-c", "side", "origin/side")
    assert clone.read("side.bin") == MORE
    clone.fsck_clean()


def test_a_lost_pack_stops_the_gc_with_advice_that_mends_it(
    seeds: Seeds, dir_remote: Remote, tmp_path: Path
) -> None:
    """A pack the refs reach deleted from the remote: the gc stopped and said to push
    those versions again, which sends nothing (the remote's index lists them). It now
    names `dvfs fsck --remote` and a way that works: all of it pushed to a new remote."""
    repo = seeded(seeds, dir_remote, tmp_path)
    packs = sorted(dir_remote.list_keys("packs/"))
    dir_remote.backend.delete(packs[0])
    line = assert_error(run(repo.root, "gc", "--remote", "origin"), "missing", "fsck --remote")
    assert "push those versions again" not in line
    pushed = repo.ok("push")
    assert "up to date" in pushed.out + pushed.err  # (a push sends nothing)
    checked = run(repo.root, "fsck", "--remote", "origin")
    assert checked.code == 1 and packs[0] in checked.out, str(checked)
    mended = tmp_path / "mended"
    repo.ok("remote", "add", "mended", str(mended))
    repo.ok("push", "--remote", "mended", "--all", "--tags")
    assert_ok(run(tmp_path, "clone", str(mended), "clone"))
    clone = Repo(tmp_path / "clone")
    assert clone.read("keep.bin") == KEEP
    clone.fsck_clean()
    repo.fsck_clean()


def test_a_push_uploads_again_what_a_lost_pack_held(
    seeds: Seeds, dir_remote: Remote, tmp_path: Path
) -> None:
    """A push took every object the remote's index lists as there: with v1's pack
    deleted by hand (its index segment left), a push of v2, which keeps v1's file,
    sent v2's own objects alone and said it was done, and a clone of v2 then stopped
    on the lost pack. An object listed only in a pack the listing of packs/ lacks is
    uploaded again now, below v1 too, so everything v2 names is on the remote."""
    repo = seeded(seeds, dir_remote, tmp_path)
    (lost,) = dir_remote.list_keys("packs/")
    dir_remote.backend.delete(lost)
    repo.write("more.bin", MORE)
    add_in_process(repo, "more.bin")
    commit_in_process(repo, "more")
    repo.ok("push")
    cloned_clean(dir_remote, tmp_path, "clone", {"keep.bin": KEEP, "more.bin": MORE})
    repo.fsck_clean()


def test_a_push_sends_again_a_lost_chunk_below_a_folder_the_remote_holds(
    tmp_path: Path,
) -> None:
    """A push takes a tree the remote holds as complete below it: with the pack of a
    chunk lost while the pack of the trees above it stays, the chunk was not sent
    again below an unchanged folder. Below a lost pack's records nothing is taken
    as complete: the push walks its versions down to their chunks."""
    forge = Forge(tmp_path / "remote")
    chunk = forge.chunk(b"hello\n")
    forge.publish({})
    (lost,) = (forge.root / "packs").iterdir()
    forge.publish(forge.version(nested(forge, [b"data"], [file_entry(b"a.txt", chunk, 6)])))
    assert_ok(run(tmp_path, "clone", forge.url, "repo"))
    repo = Repo(tmp_path / "repo")
    lost.unlink()
    commit_files(repo, {"more.bin": MORE}, "more")
    pushed = repo.ok("push")
    assert "1 pack(s)" in pushed.err and "gc --remote" in pushed.err, str(pushed)
    cloned_clean(
        Remote("dir", forge.url, (), open_backend(forge.url)),
        tmp_path,
        "clone",
        {"data/a.txt": b"hello\n", "more.bin": MORE},
    )
    repo.fsck_clean()


def test_a_fifo_or_a_link_named_as_a_pack_is_passed_over_by_the_gc(
    seeds: Seeds, dir_remote: Remote, tmp_path: Path
) -> None:
    """A FIFO or a link out of the remote under a pack's name in a directory remote's
    packs/ stopped `dvfs gc --remote` ("... is not a regular file"), though the
    listing of sizes passes over such names for `fsck --remote` and `store prune`:
    the gc asked each dead pack's time itself. It passes over them with one warning
    each now, opening no FIFO and following no link, and finishes."""
    repo = seeded(seeds, dir_remote, tmp_path)
    root = Path(dir_remote.url.removeprefix("file://"))
    fifo, link = root / "packs" / ("a" * 64), root / "packs" / ("b" * 64)
    os.mkfifo(fifo)
    (tmp_path / "outside").write_bytes(JUNK)
    link.symlink_to(tmp_path / "outside")
    (root / "packs" / ("c" * 64)).write_bytes(JUNK)  # (a dead pack: no index lists it)
    done = gc(repo, "--grace", "0")
    assert done["deleted_packs"] == 1 and done["bytes_freed"] == len(JUNK), done
    said = done["warnings"]
    assert len(said) == 2 and all("passed over, as no pack" in w for w in said), said
    assert fifo.name in said[0] + said[1] and link.name in said[0] + said[1]
    assert stat.S_ISFIFO(fifo.lstat().st_mode) and link.is_symlink()
    assert (tmp_path / "outside").read_bytes() == JUNK
    assert_ok(run(repo.root, "fsck", "--remote", "origin"))
    repo.fsck_clean()


# ------------------------------------------------------- an object listed in two packs


def listed_twice(root: Path) -> tuple[Forge, str]:
    """A remote whose ``main`` version (``data/a.txt``) is listed in two packs, each
    with its own index segment (as two clones that pushed it at once leave it); and the
    pack listed in the segment a listing gives first, where readers look first."""
    forge = Forge(root)
    leaf = file_entry(b"a.txt", forge.chunk(b"hello\n"), 6)
    tip = forge.version(nested(forge, [b"data"], [leaf]))
    again = list(forge.objects)
    forge.publish(tip)
    forge.objects = [*again, *forge.objects]
    forge.chunk(b"the second pack's own")
    forge.publish(tip)
    first = next(LocalBackend(root).list(INDEX))  # (in the directory's order)
    (pack_id,) = {p for p, _ in decode_segment((root / first).read_bytes(), first)}
    return forge, pack_id


def test_a_push_relies_on_the_live_pack_of_an_object_a_condemned_one_lists_too(
    tmp_path: Path,
) -> None:
    """A push reads the remote's index with each object in the first pack listing it,
    then leaves out the objects of condemned packs: an object a live pack lists too was
    left out with it, and uploaded again (wasted space on the remote until a sweep).
    It is found in the live pack now, and nothing is uploaded."""
    forge, first = listed_twice(tmp_path / "remote")
    forge.raw(new_manifest_key(), encode_manifest({first}, set()))
    assert_ok(run(tmp_path, "clone", forge.url, "clone"))
    clone = Repo(tmp_path / "clone")
    packs = sorted((forge.root / "packs").iterdir())
    clone.ok("branch", "copy")
    clone.ok("push", "--remote", "origin", "copy")
    assert sorted((forge.root / "packs").iterdir()) == packs
    assert (forge.root / "refs" / "heads" / "copy").exists()
    clone.fsck_clean()


def test_a_lost_pack_another_lists_the_objects_of_does_not_stop_the_gc(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """The gc read each version and tree from the first pack listing it, and counted a
    live object in the first pack listing it: with that pack deleted by hand while
    another pack holds the same objects, it stopped with "pack missing" (or "pack ...
    is missing") though the remote held everything its refs reach. It reads and counts
    the other copy now, and drops the lost pack's listings from the index."""
    forge, first = listed_twice(tmp_path / "remote")
    (forge.root / "packs" / first).unlink()
    repo = make_repo("admin")  # (holds none of the remote's records: the gc reads them)
    repo.ok("remote", "add", "origin", forge.url)
    done = gc(repo, "--grace", "0")
    assert done["deleted_packs"] == 0 and done["segments_replaced"] >= 1
    checked = run(repo.root, "fsck", "--remote", "origin")
    assert checked.code == 0, str(checked)
    assert_ok(run(tmp_path, "clone", forge.url, "clone"))
    clone = Repo(tmp_path / "clone")
    assert clone.read("data/a.txt") == b"hello\n"
    clone.fsck_clean()
    repo.fsck_clean()


def test_a_clone_and_a_fetch_read_a_lost_packs_objects_from_another_that_lists_them(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A pack deleted by hand whose objects another pack holds too: a clone read each
    object from the first pack listing it and stopped with "pack ... is missing", its
    advice not naming the remote gc that mends it. It reads them from the pack that is
    there now, as the gc and the remote check do."""
    forge, first = listed_twice(tmp_path / "remote")
    (forge.root / "packs" / first).unlink()
    assert_ok(run(tmp_path, "clone", forge.url, "clone"))
    clone = Repo(tmp_path / "clone")
    assert clone.read("data/a.txt") == b"hello\n"
    clone.fsck_clean()
    repo = make_repo("here")
    repo.ok("remote", "add", "origin", forge.url)
    repo.ok("pull", "--remote", "origin")
    assert repo.read("data/a.txt") == b"hello\n"
    repo.fsck_clean()


def test_a_clone_reads_the_objects_of_a_fifo_in_a_packs_place_from_another_pack(
    tmp_path: Path,
) -> None:
    """A FIFO in place of a pack whose objects another pack holds too: a clone stopped
    at once on it ("... is not a regular file"), though the data were there. It is read
    as a lost pack is now, from the other pack, and the FIFO is never opened."""
    forge, first = listed_twice(tmp_path / "remote")
    fifo = forge.root / "packs" / first
    fifo.unlink()
    os.mkfifo(fifo)
    assert_ok(run(tmp_path, "clone", forge.url, "clone", timeout=30))  # a hang fails here
    clone = Repo(tmp_path / "clone")
    assert clone.read("data/a.txt") == b"hello\n"
    assert stat.S_ISFIFO(fifo.lstat().st_mode)
    clone.fsck_clean()
