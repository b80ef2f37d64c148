"""Remotes that fail, lie or are misnamed: each must end in one clear line, losing nothing.

Every error is checked the same way (``assert_error``): a non-zero exit, exactly one
``dvfs: error:`` line saying what went wrong, and no traceback. Each test that wrote
to a repository ends with ``dvfs fsck`` clean.

- A server that is down, or goes down in the middle of a push (a TCP proxy in front
  of the session's SeaweedFS is cut), on a real S3 endpoint. Each waits out the retry
  wrapper's back-off (6 attempts, 0.25 s doubling: 4 to 8 s), which no setting
  shortens yet.
- Wrong credentials, a missing bucket, a read-only identity.
- A pack on a directory remote damaged after the push (a flipped byte, a truncation).
- A hostile remote written by hand (``Forge``) with the codec and pack APIs: names
  like ``..`` and ``a/b`` in trees, sizes that lie, versions and trees that claim to
  contain themselves, refs that are not ids, an index that points nowhere.
- Unknown remotes, bad URLs and nothing to push.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.support.cli import (
    Repo,
    RepoFactory,
    Result,
    assert_error,
    assert_ok,
    cli_command,
    cli_env,
    commit_files,
    finish,
    go,
    make_repo_fixture,  # noqa: F401  (a fixture)
    run,
    spawn_ready,
)
from tests.support.data import rand
from tests.support.forge import Forge, dir_entry, file_entry, files_under
from tests.support.loopback import free_ports
from tests.support.relay import Proxy
from tests.support.s3server import S3Server, use_aws_keys
from tests.test_sync import transfer
from vfs._os.helper_process import process_start
from vfs.model.codec import Entry, Kind
from vfs.model.ids import hash_bytes
from vfs.ops.sync import STOP_ENV
from vfs.remote.layout import decode_segment
from vfs.repo.repository import Repository

KiB = 1024
MiB = 1024 * KiB


# ---------------------------------------------------------------------- unreachable servers


@pytest.fixture
def proxy(s3_env: S3Server) -> Iterator[Proxy]:
    p = Proxy(int(s3_env.endpoint.rsplit(":", 1)[1]))
    yield p
    p.cut()


def test_server_down_before_a_push(make_repo: RepoFactory, s3_env: S3Server) -> None:
    a = make_repo("a")
    commit_files(a, {"d/x": b"x"}, "x")
    (port,) = free_ports(1)  # nothing listens there
    a.ok("remote", "add", "origin", "s3://nobody/x", "--endpoint-url", f"http://127.0.0.1:{port}")
    # Two attempts (one retry, a quarter of a second's wait) rather than the default six,
    # whose back-off waits 4 to 8 s in all: what is said after the last one is the same.
    r = a.run("push", env={"DVFS_RETRY_ATTEMPTS": "2"})
    line = assert_error(
        r, "could not reach", "after 2 attempts", "nothing was lost", "run `dvfs push`"
    )
    assert f"127.0.0.1:{port}" in line
    a.fsck_clean()


def test_the_resume_hint_names_the_remote_that_did_not_answer(
    make_repo: RepoFactory, s3_env: S3Server, tmp_path: Path
) -> None:
    """`dvfs push` would send to the default remote: the hint repeats `--remote NAME`."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"x"}, "x")
    a.ok("remote", "add", "origin", str(tmp_path / "origin"))
    (port,) = free_ports(1)  # nothing listens there
    url = f"http://127.0.0.1:{port}"
    a.ok("remote", "add", "backup", "s3://nobody/x", "--endpoint-url", url)
    once = {"DVFS_RETRY_ATTEMPTS": "1"}
    for cmd in (("push", "--remote", "backup"), ("fetch", "--remote", "backup")):
        r = a.run(*cmd, env=once)
        assert_error(r, "nothing was lost", f"run `dvfs {' '.join(cmd)}` again to resume")
    r = run(tmp_path, "clone", "s3://nobody/x", "c", "--endpoint-url", url, env=once)
    assert_error(r, f"run `dvfs clone s3://nobody/x c --endpoint-url {url}` again")
    assert not (tmp_path / "origin").exists()  # the default remote was never written to
    a.fsck_clean()


def test_server_lost_during_a_push_then_resumed(
    make_repo: RepoFactory, s3_env: S3Server, proxy: Proxy
) -> None:
    bucket = s3_env.make_bucket()
    url = f"s3://{bucket}/p"
    a = make_repo("a")
    big = {f"d/big{i}.bin": rand(16 * MiB, i) for i in range(3)}
    v1 = commit_files(a, big, "big")
    a.ok("remote", "add", "origin", url, "--endpoint-url", f"http://127.0.0.1:{proxy.port}")
    client = s3_env.client()

    def keys(prefix: str) -> set[str]:
        page = client.list_objects_v2(Bucket=bucket, Prefix=f"p/{prefix}")
        return {o["Key"] for o in page.get("Contents", [])}

    # two attempts a request: the server stays gone, and the full schedule of retries
    # would only make the push wait 8 s longer before it gives up
    proc = spawn_ready(a.root, "push", "--jobs", "1", env={"DVFS_RETRY_ATTEMPTS": "2"})
    go(proc)
    give_up = time.monotonic() + 60
    while not keys("packs/"):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < give_up
        time.sleep(0.005)
    proxy.cut()
    out, err = proc.communicate(timeout=60)
    r = Result(("push",), proc.returncode, out, err.decode())
    assert_error(r, "could not reach", "nothing was lost", "run `dvfs push --jobs 1` again")
    assert not keys("refs/")  # the branch was not created
    sent = keys("packs/")
    assert sent and not keys("index/")

    proxy.restore()
    r = a.ok("push", "--jobs", "1")
    assert f"main: v1 {v1[:10]}" in r.out
    t = transfer(r)
    assert t.kept == len(sent)  # what arrived before the cut was not sent again
    assert t.kept + t.packs == len(keys("packs/"))
    assert len(keys("index/")) == 1 and len(keys("refs/")) == 1
    b = Repo(a.root.parent / "b")
    assert_ok(run(a.root.parent, "clone", url, "b", "--endpoint-url", s3_env.endpoint))
    for rel, data in big.items():
        assert b.read(rel) == data
    a.fsck_clean()
    b.fsck_clean()


# ---------------------------------------------------------------------- credentials, buckets


def test_credentials_and_buckets_are_named(
    make_repo: RepoFactory, s3_server: S3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    admin = (s3_server.access_key, s3_server.secret_key)
    use_aws_keys(monkeypatch, *admin)
    a = make_repo("a")
    commit_files(a, {"d/x": b"x"}, "x")
    url = f"s3://{s3_server.make_bucket()}/p"
    missing = "s3://no-such-bucket-here/p"
    a.ok("remote", "add", "origin", url, "--endpoint-url", s3_server.endpoint)
    a.ok("remote", "add", "nowhere", missing, "--endpoint-url", s3_server.endpoint)
    a.ok("push")
    wrong = "rejected the credentials", "wrong access key or secret"
    cases: list[tuple[tuple[str, str], str, str, tuple[str, ...]]] = [
        ((s3_server.access_key, "0" * 40), "origin", url, wrong),
        (("AKIANOSUCHKEY0000000", s3_server.secret_key), "origin", url, wrong),
        (admin, "nowhere", missing, ("bucket no-such-bucket-here does not exist",)),
    ]
    for keys, name, where, fragments in cases:
        use_aws_keys(monkeypatch, *keys)
        line = a.fail("push", "--remote", name, fragments=fragments)
        assert keys[1] not in line  # no secret is ever shown
        r = run(a.root.parent, "clone", where, "c", "--endpoint-url", s3_server.endpoint)
        assert_error(r, *fragments)
        assert not (a.root.parent / "c").exists()
    # a read-only identity may clone, but not push
    use_aws_keys(monkeypatch, s3_server.reader_access_key, s3_server.reader_secret_key)
    assert_ok(run(a.root.parent, "clone", url, "c", "--endpoint-url", s3_server.endpoint))
    commit_files(a, {"d/y": b"y"}, "y")
    a.fail("push", fragments=("denied", "lack permission"))
    use_aws_keys(monkeypatch, *admin)
    assert a.head_id() != Repo(a.root.parent / "c").head_id()
    a.fsck_clean()
    Repo(a.root.parent / "c").fsck_clean()


# ---------------------------------------------------------------------- damaged packs


@pytest.mark.parametrize("damage", ["flipped byte", "truncated"])
def test_damaged_pack_is_refused_and_named(
    damage: str, make_repo: RepoFactory, tmp_path: Path
) -> None:
    remote = tmp_path / "remote"
    a = make_repo("a")
    v1 = commit_files(a, {"d/old.bin": b"old\n"}, "old")
    a.ok("remote", "add", "origin", remote.as_uri())
    a.ok("push")
    b = Repo(tmp_path / "b")
    assert_ok(run(tmp_path, "clone", remote.as_uri(), "b"))
    new = rand(100 * KiB, 7)
    v2 = commit_files(a, {"d/new.bin": new}, "new")
    a.ok("push")

    # find v2's pack and what lies where in it, from the remote's own index
    old_segments = {p.name for p in (b.root / ".dvfs/remotes/origin/index").iterdir()}
    (segment,) = [p for p in (remote / "index").iterdir() if p.name not in old_segments]
    located = {obj.oid.hex(): (pack, obj) for pack, obj in decode_segment(segment.read_bytes(), "")}
    chunk = hash_bytes(new).hex()
    if damage == "flipped byte":
        pack, obj = located[chunk]
        victim = chunk
        path = remote / "packs" / pack
        data = bytearray(path.read_bytes())
        data[obj.offset + obj.stored_len // 2] ^= 0x40
    else:  # cut the pack in the middle of its last object: the version record
        pack, obj = located[v2]
        victim = v2
        path = remote / "packs" / pack
        data = bytearray(path.read_bytes()[: obj.offset + obj.stored_len // 2])
    path.write_bytes(bytes(data))

    line = b.fail("pull", fragments=(victim, pack[:12], "corrupt"))
    if damage == "truncated":
        assert "truncated" in line
    assert b.head_id() == v1  # the branch did not move
    assert not (b.root / "d/new.bin").exists()
    assert b.read("d/old.bin") == b"old\n"
    store = Repository(b.root).store
    assert not store.has(bytes.fromhex(victim))
    b.fsck_clean()
    # a clone refuses the same way and leaves nothing behind
    r = run(tmp_path, "clone", remote.as_uri(), "c")
    assert_error(r, victim, "corrupt")
    assert not (tmp_path / "c").exists()

    # the way out it names works; a push to the damaged remote would send nothing
    # (its index lists what the damaged pack held)
    assert f"restore packs/{pack} on the remote" in line
    assert "dvfs remote add NAME URL && dvfs push --remote NAME --all --tags" in line
    mended = tmp_path / "mended"
    a.ok("remote", "add", "mended", mended.as_uri())
    a.ok("push", "--remote", "mended", "--all", "--tags")
    c, _ = Repo(tmp_path / "c"), assert_ok(run(tmp_path, "clone", mended.as_uri(), "c"))
    assert c.read("d/new.bin") == new
    c.fsck_clean()


@pytest.mark.parametrize("damage", ["emptied", "flipped byte", "fifo", "link"])
def test_a_damaged_cached_index_segment_is_read_again(
    damage: str, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """The remote is sound; only the clone's copy of a segment is not (a crash after it was
    written, a FIFO or a link put in its place): the copy is dropped and read again, never
    blamed on the remote, never waited on nor read through."""
    remote = tmp_path / "remote"
    a = make_repo("a")
    commit_files(a, {"d/old.bin": b"old\n"}, "old")
    a.ok("remote", "add", "origin", remote.as_uri())
    a.ok("push")
    b = Repo(tmp_path / "b")
    assert_ok(run(tmp_path, "clone", remote.as_uri(), "b"))
    (cached,) = (b.root / ".dvfs/remotes/origin/index").iterdir()
    sound = cached.read_bytes()
    elsewhere = tmp_path / "elsewhere"
    elsewhere.write_bytes(sound)
    if damage == "emptied":
        cached.write_bytes(b"")
    elif damage == "fifo":
        cached.unlink()
        os.mkfifo(cached)
    elif damage == "link":
        cached.unlink()
        cached.symlink_to(elsewhere)
    else:
        data = bytearray(sound)
        data[len(data) // 2] ^= 0x01
        cached.write_bytes(bytes(data))
    assert b.run("fsck", timeout=30).code in (0, 1)  # a hang fails here
    v2 = commit_files(a, {"d/new.bin": rand(100 * KiB, 3)}, "new")
    a.ok("push")
    b.ok("pull", timeout=30)
    assert b.head_id() == v2
    assert b.read("d/new.bin") == a.read("d/new.bin")
    assert not cached.is_symlink() and cached.read_bytes() == sound
    assert elsewhere.read_bytes() == sound
    b.fsck_clean()


# ---------------------------------------------------------------------- a hostile remote


def escaping_tree(forge: Forge, name: bytes) -> bytes:
    """A root tree whose one entry, ``name``, is a directory holding a file ``escaped``."""
    payload = forge.chunk(b"you have been pwned\n")
    inner = forge.tree([file_entry(b"escaped", payload, 20)])
    return forge.tree([dir_entry(name, inner)])


def self_parent(forge: Forge) -> bytes:
    root = forge.tree([file_entry(b"f", forge.chunk(b"data"), 4)])
    claimed = hash_bytes(b"a version that is its own parent")
    return forge.version(root, parents=(claimed,), number=2, oid=claimed)


def self_subtree(forge: Forge) -> bytes:
    claimed = hash_bytes(b"a tree that contains itself")
    forge.tree([dir_entry(b"loop", claimed)], oid=claimed)
    return forge.version(claimed)


def lying_size(forge: Forge) -> bytes:
    """A file entry claiming 1 TiB whose one chunk is 5 bytes."""
    chunk = forge.chunk(b"small")
    return forge.version(forge.tree([file_entry(b"huge", chunk, 1 << 40)]))


def huge_index_entry(forge: Forge) -> bytes:
    """The index claims a chunk is 4 GiB (and its stored payload 1 GiB)."""
    chunk = forge.chunk(b"small")
    forge.lies[chunk] = {"raw_len": (1 << 32) - 1, "stored_len": 1 << 30}
    return forge.version(forge.tree([file_entry(b"f", chunk, 5)]))


def out_of_pack(forge: Forge) -> bytes:
    """The index places a chunk far past the end of its pack."""
    chunk = forge.chunk(b"gone")
    forge.lies[chunk] = {"offset": 1 << 40}
    return forge.version(forge.tree([file_entry(b"f", chunk, 4)]))


HOSTILE: dict[str, tuple[Callable[[Forge], bytes | str], tuple[str, ...]]] = {
    "dotdot": (lambda f: f.version(escaping_tree(f, b"..")), ("invalid name",)),
    "dot": (lambda f: f.version(escaping_tree(f, b".")), ("invalid name",)),
    "slash": (lambda f: f.version(escaping_tree(f, b"a/../../b")), ("invalid name",)),
    "absolute": (lambda f: f.version(escaping_tree(f, b"/tmp")), ("invalid name",)),
    "empty name": (lambda f: f.version(escaping_tree(f, b"")), ("invalid name",)),
    "version is its own parent": (self_parent, ("corrupt",)),
    "tree contains itself": (self_subtree, ("corrupt",)),
    "file size lies": (lying_size, ("claims chunk", "holds 5", "refusing")),
    "index claims 4 GiB": (huge_index_entry, ("too large",)),
    "index points past the pack": (out_of_pack, ("corrupt",)),
    "ref is a path": (lambda f: "../../../etc/passwd", ("not a version id",)),
}


@pytest.mark.parametrize("case", list(HOSTILE))
def test_hostile_remote_is_refused(case: str, tmp_path: Path) -> None:
    build, fragments = HOSTILE[case]
    forge = Forge(tmp_path / "evil")
    forge.publish(build(forge))
    victim = tmp_path / "victim"
    victim.mkdir()
    before = files_under(tmp_path)
    r = run(victim, "clone", forge.root.as_uri(), "clone")
    assert_error(r, *fragments)
    assert files_under(tmp_path) == before  # nothing written anywhere, the clone removed


def test_hostile_update_is_refused_by_pull(make_repo: RepoFactory, tmp_path: Path) -> None:
    # a good first version, cloned; then the remote turns hostile
    forge = Forge(tmp_path / "evil")
    good = forge.version(forge.tree([file_entry(b"f", forge.chunk(b"good"), 4)]))
    forge.publish(good)
    assert_ok(run(tmp_path, "clone", forge.root.as_uri(), "b"))
    b = Repo(tmp_path / "b")
    before = files_under(tmp_path)
    evil = forge.version(escaping_tree(forge, b".."), parents=(good,), number=2)
    forge.publish(evil)
    b.fail("pull", fragments=("invalid name",))
    assert b.head_id() == good.hex()
    new = files_under(tmp_path) - before
    inside = b.root / ".dvfs"  # the remote's index segments are cached there
    assert all(forge.root in p.parents or inside in p.parents for p in new), new
    assert not (tmp_path / "escaped").exists()
    assert sorted(os.listdir(b.root)) == [".dvfs", "f"]
    b.fsck_clean()


def test_symlink_then_directory_does_not_write_through_the_link(tmp_path: Path) -> None:
    """v1 has a link ``d -> <outside>``; v2 makes ``d`` a directory with a file in it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    forge = Forge(tmp_path / "evil")
    link = Entry(b"d", Kind.SYMLINK, 0o777, len(bytes(outside)), 0, target=os.fsencode(outside))
    v1 = forge.version(forge.tree([link]))
    forge.publish(v1)
    assert_ok(run(tmp_path, "clone", forge.root.as_uri(), "b"))
    b = Repo(tmp_path / "b")
    assert os.readlink(b.root / "d") == str(outside)
    payload = forge.chunk(b"written through the link\n")
    inner = forge.tree([file_entry(b"x", payload, 25)])
    v2 = forge.version(forge.tree([dir_entry(b"d", inner)]), parents=(v1,), number=2)
    forge.publish(v2)
    b.ok("pull")
    assert list(outside.iterdir()) == []
    assert (b.root / "d").is_dir() and not (b.root / "d").is_symlink()
    assert b.read("d/x") == b"written through the link\n"
    b.fsck_clean()


# ---------------------------------------------------------------------- names and URLs


def test_unknown_remote_bad_urls_and_nothing_to_push(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    a = make_repo("a")
    a.fail("push", fragments=("no remote is configured", "dvfs remote add"))
    a.fail("pull", fragments=("no remote is configured",))
    remote = tmp_path / "remote"
    a.ok("remote", "add", "origin", remote.as_uri())
    a.fail("push", fragments=("branch main has no versions to push",))
    for cmd in (("push", "--remote", "nope"), ("fetch", "--remote", "nope"),
                ("pull", "--remote", "nope"), ("log", "--remote", "nope")):  # fmt: skip
        a.fail(*cmd, fragments=("unknown remote nope", "origin"))
    a.fail("remote", "add", "origin", remote.as_uri(), fragments=("already exists",))
    a.fail("remote", "remove", "nope", fragments=("unknown remote nope",))
    for url in ("ftp://host/x", "s3://", "file://relative/path", "http://example.org/x", "",
                "s3://bucket/../x", "s3://bucket/a//b"):  # fmt: skip
        a.fail("remote", "add", "bad", url, fragments=("url",))
    assert [r["name"] for r in a.json("remote", "list", "--json")] == ["origin"]

    commit_files(a, {"d/x": b"x"}, "x")
    a.ok("push")
    r = a.ok("push")
    assert "nothing to push" in r.out
    a.fail("push", "nope", fragments=("nope",))

    for url, fragment in (
        ("ftp://host/x", "unsupported remote URL"),
        ("s3://Bad_Bucket!/x", "bad bucket name"),
        ((tmp_path / "missing").as_uri(), "does not exist"),
        (str(tmp_path / "a"), "is a dvfs repository, not a remote"),  # a repository
    ):
        r = run(tmp_path, "clone", url, "c")
        assert_error(r, fragment)
        assert not (tmp_path / "c").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "keep.txt").write_text("mine")
    assert_error(run(tmp_path, "clone", remote.as_uri(), "full"), "not an empty directory")
    assert (tmp_path / "full" / "keep.txt").read_text() == "mine"
    # a file where the remote's directory belongs: it said "does not exist", and below
    # one that "a key and a folder of the same name clash"
    afile = tmp_path / "full" / "keep.txt"
    for where, shown in (
        (afile, f"{afile} is"),
        (afile / "sub", f"{afile} (above {afile / 'sub'}) is"),
    ):
        a.ok("remote", "add", "file", str(where))
        for cmd in (("push", "--remote", "file"), ("fetch", "--remote", "file")):
            a.fail(*cmd, fragments=(f"{shown} not a directory", "check the remote URL"))
        assert_error(run(tmp_path, "clone", str(where), "c"), f"{shown} not a directory")
        a.ok("remote", "remove", "file")
    assert afile.read_text() == "mine"
    a.fsck_clean()


def test_a_killed_clone_or_init_is_finished_or_cleared_by_the_next_command(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A clone killed before its store was renamed into place leaves ``.dvfs.init-PID``:
    the next clone or init there removes it (its process is gone) rather than refuse
    the directory as not empty. A clone killed later leaves a repository: a new clone
    says that `dvfs pull` in it finishes it."""
    remote = tmp_path / "remote"
    a = make_repo("a")
    commit_files(a, {"d/x": b"x\n"}, "x")
    a.ok("remote", "add", "origin", remote.as_uri())
    a.ok("push")
    dead = subprocess.Popen(["true"])  # (its pid: no process has it once it is waited for)
    dead.wait()
    for name in ("c", "i"):
        (tmp_path / name / f".dvfs.init-{dead.pid}" / "objects").mkdir(parents=True)
    (tmp_path / "i" / ".dvfs.init-1").mkdir()  # a process that lives: left alone
    assert_ok(run(tmp_path, "clone", remote.as_uri(), "c"))
    assert sorted(os.listdir(tmp_path / "c")) == [".dvfs", "d"]
    assert_ok(run(tmp_path, "init", "i"))
    assert sorted(os.listdir(tmp_path / "i")) == [".dvfs", ".dvfs.init-1"]

    assert_ok(run(tmp_path, "clone", remote.as_uri(), "k", "--no-checkout"))
    (tmp_path / "k" / ".dvfs" / "index").unlink()  # killed after its branch, before its files
    r = run(tmp_path, "clone", remote.as_uri(), "k")
    assert_error(r, "already a dvfs repository", "`dvfs pull` in it finishes it")
    assert_ok(run(tmp_path / "k", "pull"))
    assert (tmp_path / "k" / "d" / "x").read_bytes() == b"x\n"
    Repo(tmp_path / "k").fsck_clean()


# ``dvfs ARGS`` that kill -9s itself as soon as a repository has been made.
KILLED_AFTER_INIT = """
import os, signal, sys
from vfs.cli import main
from vfs.repo.repository import Repository
making = Repository.init
def init(*args, **kwargs):
    making(*args, **kwargs)
    os.kill(os.getpid(), signal.SIGKILL)
Repository.init = staticmethod(init)
sys.argv = ["dvfs", *sys.argv[1:]]
main()
"""


def test_a_clone_killed_as_soon_as_its_repository_is_made_is_finished_by_pull(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A clone killed after its repository appeared and before its remote was recorded
    left a repository with no remote: a new clone said that `dvfs pull` in it finishes
    it, and pull said "no remote is configured". The repository now appears with its
    remote, and pull finishes the clone."""
    remote = tmp_path / "remote"
    a = make_repo("a")
    commit_files(a, {"d/x": b"x\n"}, "x")
    a.ok("remote", "add", "origin", remote.as_uri())
    a.ok("push")
    killed = subprocess.run(
        [sys.executable, "-P", "-c", KILLED_AFTER_INIT, "clone", remote.as_uri(), "k"],
        cwd=tmp_path, env=cli_env(), capture_output=True, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    r = run(tmp_path, "clone", remote.as_uri(), "k")
    assert_error(r, "already a dvfs repository", "`dvfs pull` in it finishes it")
    k = Repo(tmp_path / "k")
    assert_ok(k.run("pull"))
    assert k.read("d/x") == b"x\n"
    assert [b["name"] for b in k.json("branch", "-r", "--json")] == ["origin/main"]
    k.fsck_clean()


def test_an_init_leftover_whose_pid_another_process_took_is_removed(tmp_path: Path) -> None:
    """``init`` judged a ``.dvfs.init-*`` leftover by its pid alone: once a process
    started later had the dead process's pid, the leftover was kept for ever. It is
    now named by pid and start time: a leftover whose pid runs with another start
    time goes, the one of a process that still runs stays."""
    pid = os.getpid()
    start = process_start(pid)
    assert start is not None
    stale, live = f".dvfs.init-{pid}-{start + 1}", f".dvfs.init-{pid}-{start}"
    for name in (stale, live):
        (tmp_path / "i" / name / "objects").mkdir(parents=True)
    assert_ok(run(tmp_path, "init", "i"))
    assert sorted(os.listdir(tmp_path / "i")) == [".dvfs", live]
    Repo(tmp_path / "i").fsck_clean()


# ``dvfs ARGS`` that kill -9s itself when the staging index is saved, before or after
# writing it (a kill at the instant a user could hit, made exact).
KILLED_AT_INDEX_SAVE = """
import os, signal, sys
from vfs.cli import main
from vfs.repo import stage
saving, when = stage.Index.save, sys.argv[1]
def save(self):
    if when == "after":
        saving(self)
    os.kill(os.getpid(), signal.SIGKILL)
stage.Index.save = save
sys.argv = ["dvfs", *sys.argv[2:]]
main()
"""


@pytest.mark.parametrize("when", ["before", "after"])
def test_a_pull_killed_as_it_saves_the_index_stages_nothing_and_a_pull_finishes(
    make_repo: RepoFactory, tmp_path: Path, when: str
) -> None:
    """A fast-forward moves the branch before the index says the working tree holds
    the new version: a kill between them never leaves the remote's changes listed as
    staged (a commit would have made them a version of its own, diverged from the
    remote's)."""
    remote = tmp_path / "remote"
    a = make_repo("a")
    commit_files(a, {"d/x": b"x1\n", "d/y": b"y\n"}, "one")
    a.ok("remote", "add", "origin", remote.as_uri())
    a.ok("push")
    assert_ok(run(tmp_path, "clone", remote.as_uri(), "b"))
    b = Repo(tmp_path / "b")
    v2 = commit_files(a, {"d/x": b"x2\n", "d/z": b"z\n"}, "two")
    a.ok("push")

    killed = subprocess.run(
        [sys.executable, "-P", "-c", KILLED_AT_INDEX_SAVE, when, "pull"],
        cwd=b.root, env=cli_env(), capture_output=True, check=False,
    )  # fmt: skip
    assert killed.returncode == -signal.SIGKILL, killed.stderr
    st = b.status()
    assert st["staged"] == [], st
    assert b.run("commit", "-a", "-m", "mine").code != 0  # no version of the remote's bytes
    assert_ok(b.run("pull"))
    st = b.status()
    assert (st["staged"], st["modified"], st["untracked"], st["behind"]) == ([], [], [], None)
    assert b.head_id() == v2 and (b.root / "d" / "z").read_bytes() == b"z\n"
    b.fsck_clean()


def test_a_remote_branch_naming_a_version_the_remote_lacks_is_named_as_damage(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """Push said "remote main has versions you don't have: run `dvfs pull`", and pull
    "origin has no branch main": each sent the user to the other. Both now say why."""
    remote = tmp_path / "remote"
    a = make_repo("a")
    commit_files(a, {"d/x": b"x\n"}, "x")
    a.ok("remote", "add", "origin", remote.as_uri())
    a.ok("push")
    ref = remote / "refs" / "heads" / "main"
    ref.write_text("ab" * 32 + "\n")  # a version no one holds
    v2 = commit_files(a, {"d/y": b"y\n"}, "y")
    a.fail("push", fragments=("remote main names version abababababab", "does not hold",
                              "nothing was changed on the remote"))  # fmt: skip
    assert ref.read_text() == "ab" * 32 + "\n"
    a.fail("pull", fragments=("origin has no branch main", "abababababab",
                              "which the remote does not hold"))  # fmt: skip
    assert a.head_id() == v2
    a.fsck_clean()


def test_a_remote_branch_holding_no_version_id_is_named_with_its_mend(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A remote ref whose file holds no version id (a disk, a hand): pull said "it was
    deleted there since origin/main here was fetched; `dvfs push` makes it again",
    and push, which did not, said only "is not a version id: refusing it". Both now
    say the branch cannot be used, nothing moved, and how it is mended; doing so
    works."""
    remote = tmp_path / "remote"
    a = make_repo("a")
    v1 = commit_files(a, {"d/x": b"x\n"}, "x")
    a.ok("remote", "add", "origin", str(remote))
    a.ok("push")
    ref = remote / "refs" / "heads" / "main"
    ref.write_text("garbage\n")
    line = a.fail("pull", code=2)
    assert line.startswith("dvfs: error: origin's branch main cannot be used: nothing to pull")
    assert "deleted" not in line and "is not a version id" in line, line
    v2 = commit_files(a, {"d/y": b"y\n"}, "y")
    line = a.fail("push")
    assert "remote main cannot be used" in line and "nothing was pushed" in line, line
    assert "`dvfs push --delete main`, then `dvfs push`" in line, line
    assert ref.read_text() == "garbage\n" and a.head_id() == v2
    a.ok("push", "--delete", "main")
    a.ok("push")
    assert ref.read_text().strip() == v2 != v1
    a.fsck_clean()


@pytest.mark.parametrize(
    ("record", "fragment"),
    [
        (b"junk", "is damaged: it is not a dvfs format record"),
        (b"[]", "is damaged: it is not a dvfs format record"),
        (b'{"format": "2"}', "is damaged: it is not a dvfs format record"),
        (b'{"format": 0}', "is damaged: format 0 never existed"),
        (b'{"format": 3}', "format 3 is not one this dvfs knows: upgrade dvfs"),
        (b'{"format": 2}', "is damaged: it names no object hash"),
        (b'{"format": 2, "hash": ["blake3-256"]}', "is damaged: it names no object hash"),
    ],
)
def test_a_damaged_format_record_is_not_taken_for_a_newer_one(
    record: bytes, fragment: str, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """Only a record of a newer format asks for a newer dvfs: "format [] is not one this
    dvfs knows: upgrade dvfs" sent the user to an upgrade that would not help."""
    remote = tmp_path / "remote"
    a = make_repo("a")
    commit_files(a, {"d/x": b"x\n"}, "x")
    a.ok("remote", "add", "origin", remote.as_uri())
    a.ok("push")
    (remote / "format").write_bytes(record)
    line = assert_error(run(tmp_path, "clone", remote.as_uri(), "c"), fragment)
    assert ("upgrade" in line) == (record == b'{"format": 3}')
    assert not (tmp_path / "c").exists()


@pytest.mark.parametrize("how", ["clone", "pull after clone --no-checkout"])
def test_a_file_whose_chunk_the_remote_lacks_is_left_not_checked_out_and_named(
    how: str, tmp_path: Path
) -> None:
    """A version whose file names a chunk no segment lists (a pack lost on the remote):
    clone and pull stopped with "internal error (KeyError ...)", and a clone that got
    past it said nothing of the file. The rest is written, that file is not checked out,
    and one line names it (exit 1), as a checkout does."""
    forge = Forge(tmp_path / "remote")
    good = b"good\n"
    forge.chunk(good)
    lost = b"lost\n"  # never published
    inner = forge.tree([file_entry(b"good", hash_bytes(good), len(good)),
                        file_entry(b"lost", hash_bytes(lost), len(lost))])  # fmt: skip
    forge.publish(forge.version(forge.tree([dir_entry(b"d", inner)])))
    b = Repo(tmp_path / "b")
    if how == "clone":
        r = run(tmp_path, "clone", forge.url, "b")
    else:
        assert_ok(run(tmp_path, "clone", forge.url, "b", "--no-checkout"))
        r = b.run("pull")
    assert_error(r, "could not restore d/lost", "neither in the local store nor on remote origin",
                 "not checked out")  # fmt: skip
    assert b.read("d/good") == good
    assert not (b.root / "d/lost").exists()
    assert b.status()["not_checked_out"] == ["d/lost"]


def test_a_push_never_makes_anew_a_remote_that_held_versions(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A NAS not mounted: its directory missing, or there but empty. The first push makes
    a remote; once this clone has a branch of it, a push stops rather than start anew."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"x"}, "x")
    nas = tmp_path / "nas"
    remote = nas / "cats"
    a.ok("remote", "add", "origin", str(remote))
    a.ok("push")  # made on the first push
    nas.rename(tmp_path / "elsewhere")
    commit_files(a, {"d/y": b"y"}, "y")
    a.fail("push", fragments=("does not exist", "origin/main", "mounted"), code=1)
    assert not nas.exists()
    nas.mkdir()  # the mount point, empty
    a.fail("push", fragments=("does not exist", "origin/main"), code=1)
    assert list(nas.iterdir()) == []
    remote.mkdir()  # a remote directory that is there but empty
    a.fail("push", fragments=("holds no dvfs repository", "origin/main", "mounted"), code=1)
    assert list(remote.iterdir()) == []
    remote.rmdir()
    nas.rmdir()
    (tmp_path / "elsewhere").rename(nas)  # mounted again: the push goes on
    assert "main: v2" in a.ok("push").out
    # Starting afresh is a choice: forget the remote, add it again.
    shutil.rmtree(nas)
    a.ok("remote", "remove", "origin")
    a.ok("remote", "add", "origin", str(remote))
    assert "main: v2" in a.ok("push").out
    a.fsck_clean()


def stopped_at(repo: Repo, point: str, *args: str) -> subprocess.Popen[bytes]:
    """``dvfs ARGS`` in ``repo``, started and stopped (SIGSTOP) at ``point`` of a push
    (``STOP_ENV``): the test changes the remote meanwhile, then sends SIGCONT."""
    proc = subprocess.Popen(
        cli_command(*args), cwd=repo.root, env=cli_env({STOP_ENV: point}),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )  # fmt: skip
    _, status = os.waitpid(proc.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), status
    return proc


def test_a_nas_unmounted_while_a_push_runs_gets_nothing_of_the_rest(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """The push has read the remote when its directory goes (a NAS unmounted, the empty
    mount point left): the rest of the push is not written into the mount point, and
    the push says so; once the NAS is back, the push goes through."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"x"}, "x")
    nas = tmp_path / "nas"
    a.ok("remote", "add", "origin", str(nas))
    a.ok("push")
    commit_files(a, {"d/y": rand(200 * KiB, 7)}, "y")
    proc = stopped_at(a, "indexed", "push")
    nas.rename(tmp_path / "away")
    nas.mkdir()  # the mount point, empty
    os.kill(proc.pid, signal.SIGCONT)
    r = finish(proc, ("push",))
    assert_error(r, "is no longer the one this command began with", "check the remote")
    assert list(nas.iterdir()) == []
    nas.rmdir()
    (tmp_path / "away").rename(nas)
    assert "main: v2" in a.ok("push").out
    b = Repo(tmp_path / "b")
    assert_ok(run(tmp_path, "clone", str(nas), "b"))
    assert b.read("d/y") == a.read("d/y")
    a.fsck_clean()
    b.fsck_clean()


def test_a_branch_that_loses_its_race_leaves_the_others_of_push_all_pushed(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """`dvfs push --all`: someone makes one of the new branches on the remote while the
    push uploads. That branch is left as they made it and named (exit 1); the other
    branches, whose audit entries are written with its, still move, here and there."""
    a = make_repo("a")
    commit_files(a, {"d/x": b"x"}, "x")
    nas = tmp_path / "nas"
    a.ok("remote", "add", "origin", str(nas))
    a.ok("push")
    a.ok("branch", "p")
    a.ok("branch", "q")
    proc = stopped_at(a, "uploaded", "push", "--all")
    theirs = (nas / "refs" / "heads" / "main").read_bytes()
    (nas / "refs" / "heads" / "p").write_bytes(theirs)  # someone else's p
    os.kill(proc.pid, signal.SIGCONT)
    r = finish(proc, ("push", "--all"))
    assert_error(r, "remote p has versions you don't have", "the branch was not moved")
    assert (nas / "refs" / "heads" / "q").read_bytes() == theirs  # was not pushed at all
    tracking = Repository(a.root).refs.names("remotes")
    assert "origin/q" in tracking and "origin/p" not in tracking
    assert a.ok("audit", "verify", "--remote", "origin").out.strip().endswith("intact")
    a.fsck_clean()


def test_a_scheme_without_its_slashes_is_refused_not_taken_for_a_directory(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """``s3:/bucket`` or ``file:/srv/x`` is a typo: it never becomes a directory in the tree."""
    repo = make_repo("a")
    commit_files(repo, {"d/x": b"x"}, "x")
    remote = tmp_path / "remote"
    for url in ("s3:/bucket/x", "s3:bucket", "S3:/bucket", f"file:{remote}", "https:/h/x"):
        repo.fail("remote", "add", "origin", url, fragments=("needs '://'",), code=2)
        r = run(tmp_path, "clone", url, "c")
        assert_error(r, "needs '://'")
        assert not (tmp_path / "c").exists()
    assert repo.json("remote", "list", "--json") == []
    repo.fail("push", fragments=("no remote is configured",))
    assert sorted(p.name for p in repo.root.iterdir()) == [".dvfs", "d"]
    # A directory whose name really starts so is still a remote, written as a path
    # (outside the repository: one inside it is refused, its files would mix in).
    repo.fail("remote", "add", "origin", "./s3:/bucket", fragments=("inside the repository",))
    repo.ok("remote", "add", "origin", "../s3:/bucket")
    repo.ok("push")
    assert (tmp_path / "s3:" / "bucket" / "format").is_file()
    assert_ok(run(tmp_path, "clone", "./s3:/bucket", "c"))
    assert (tmp_path / "c" / "d" / "x").read_bytes() == b"x"


def test_s3_options_with_a_directory_url_are_refused(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """`dvfs remote add origin my-bucket/cats --endpoint-url URL` (s3:// forgotten)
    recorded a directory remote inside the tree's parent and kept the endpoint, which
    no directory uses; a later push wrote there."""
    repo = make_repo("a")
    commit_files(repo, {"d/x": b"x"}, "x")
    remote = tmp_path / "remote"
    repo.ok("remote", "add", "origin", str(remote))
    repo.ok("push")
    repo.ok("remote", "remove", "origin")
    for url, extra, said in [
        ("../my-bucket/cats", ("--endpoint-url", "http://minio:9000"), "--endpoint-url goes"),
        (str(remote), ("--region", "eu-west-1", "--profile", "p"), "--region and --profile go"),
        (remote.as_uri(), ("--region", "eu-west-1"), "--region goes"),
    ]:
        repo.fail("remote", "add", "origin", url, *extra, code=2, fragments=(said, "s3://"))
    r = run(tmp_path, "clone", str(remote), "c", "--endpoint-url", "http://minio:9000")
    assert_error(r, "--endpoint-url goes with an S3 remote", code=2)
    assert not (tmp_path / "c").exists()
    assert repo.json("remote", "list", "--json") == []
    assert not (tmp_path / "my-bucket").exists()
    repo.fsck_clean()


def test_a_linked_index_cache_is_not_written_through(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """With ``.dvfs/remotes/NAME/index`` a symbolic link (a repository unpacked from
    someone else), a fetch wrote the remote's index segments where it pointed and
    deleted the files there named like segments; now no cache is used."""
    a = make_repo("a")
    remote = tmp_path / "remote"
    commit_files(a, {"d/one.txt": b"one\n"}, "one")
    a.ok("remote", "add", "origin", str(remote))
    a.ok("push")
    assert_ok(run(tmp_path, "clone", str(remote), "b"))
    b = Repo(tmp_path / "b")
    outside = tmp_path / "outside"
    outside.mkdir()
    stale = outside / ("ab" * 32)
    stale.write_bytes(b"precious\n")
    cache = b.root / ".dvfs" / "remotes" / "origin" / "index"
    shutil.rmtree(cache)
    cache.symlink_to(outside)
    commit_files(a, {"d/two.txt": b"two\n"}, "two")
    a.ok("push")
    b.ok("pull")
    assert (b.root / "d" / "two.txt").read_bytes() == b"two\n"
    assert sorted(outside.iterdir()) == [stale] and stale.read_bytes() == b"precious\n"
    b.fsck_clean()


def test_a_linked_remote_folder_is_not_written_nor_deleted_through(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """With ``.dvfs/remotes/NAME`` a symbolic link, a push wrote the audit chain's end
    (``audit.head``) where it pointed, and `dvfs remote remove` deleted the ``index``
    folder there, whatever it held; now nothing is written or deleted through it."""
    a = make_repo("a")
    commit_files(a, {"d/one.txt": b"one\n"}, "one")
    a.ok("remote", "add", "origin", str(tmp_path / "remote"))
    outside = tmp_path / "outside"
    (outside / "index").mkdir(parents=True)
    (outside / "index" / "notes.txt").write_text("precious\n")
    kept = a.root / ".dvfs" / "remotes"
    kept.mkdir(exist_ok=True)
    (kept / "origin").symlink_to(outside)
    a.ok("push")
    a.ok("remote", "remove", "origin")
    assert sorted(p.relative_to(outside).as_posix() for p in outside.rglob("*")) == [
        "index",
        "index/notes.txt",
    ]
    assert (outside / "index" / "notes.txt").read_text() == "precious\n"
    a.fsck_clean()
