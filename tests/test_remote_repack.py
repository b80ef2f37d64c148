"""``dvfs gc --remote`` merges the small packs and segments that many small pushes leave.

Each test starts from ``SMALL_PACKS_MERGE + 1`` versions of one small file each, one push
per version (through the Python API, in this process: the CLI would take a second a
push), so the remote holds that many small packs and segments. The pushes are made once
a module for each kind of remote, and each test gets a copy of the repository and of
the remote (``tests.support.remote.Seeds``). Every test reads the remote back through a
fresh clone and ends with ``dvfs fsck``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import vfs
from tests.support.cli import (
    Repo,
    Result,
    assert_ok,
    cli_command,
    cli_env,
    run,
)
from tests.support.relay import Intercept
from tests.support.remote import (  # noqa: F401  (fixtures)
    Remote,
    Seeds,
    dir_remote_fixture,
    remote_fixture,
    seeds_fixture,
)
from tests.support.s3server import S3Server
from tests.test_remote_gc import (  # noqa: F401  (s3_remote_fixture: a fixture)
    cloned_clean,
    manifests,
    resume,
    s3_remote_fixture,
    stopped_push,
)
from vfs.model.ids import hash_bytes
from vfs.remote.config import Meter
from vfs.remote.gc import CLOCK_ENV, KILL_ENV
from vfs.remote.layout import decode_segment
from vfs.remote.ondemand import STOP_ENV as DOWNLOAD_STOP_ENV
from vfs.remote.read import RemoteChunks
from vfs.remote.reader import RemoteRepo
from vfs.store.packs import SMALL_PACKS_MERGE

DAY = 24 * 3600
PUSHES = SMALL_PACKS_MERGE + 1


def small_pushes(repo: Repo, n: int = PUSHES) -> dict[str, bytes]:
    """``n`` versions of one small file each, each pushed on its own; the files."""
    files = {}
    api = vfs.Repo(repo.root)
    try:
        for i in range(n):
            name = f"small/{i:03d}.txt"
            files[name] = f"row {i}\n".encode() * (40 + i)
            repo.write(name, files[name])
            api.add(name)
            api.commit(f"small {i}")
            api.push()
    finally:
        api.close()
    return files


def gc(repo: Repo, *args: str, clock: float = 0) -> dict[str, Any]:
    r = assert_ok(
        run(repo.root, "gc", "--remote", "origin", "--json", *args, env={CLOCK_ENV: str(clock)})
    )
    out: dict[str, Any] = r.json()
    return out


def requests(r: Result) -> int:
    """The requests a clone or pull says it made."""
    m = re.search(r"(\d+) requests", r.out)
    assert m, r.out
    return int(m.group(1))


def test_remote_gc_merges_the_small_packs_of_many_small_pushes(
    seeds: Seeds, remote: Remote, tmp_path: Path
) -> None:
    repo, files = seeds.pushed(remote, tmp_path, small_pushes)
    small = set(remote.packs())
    assert len(small) == PUSHES and len(remote.list_keys("index/")) == PUSHES
    _, before = remote.clone(tmp_path, "before")

    plan = gc(repo, "--dry-run")
    assert plan["merged_packs"] == PUSHES and plan["merged_bytes"] > 0
    assert set(remote.packs()) == small and len(remote.list_keys("index/")) == PUSHES

    out = assert_ok(run(repo.root, "gc", "--remote", "origin")).out
    assert f"merged {PUSHES} small pack(s)" in out, out
    assert "into 1 (" in out and f"index segments: {PUSHES} -> 1" in out, out
    assert "merged packs are deleted by a `dvfs gc --remote origin` run 24h from now" in out
    # the new pack is there and indexed; the old ones stay, condemned, for the grace
    assert len(remote.list_keys("index/")) == 1 and len(manifests(remote)) == 1
    merged = set(remote.packs()) - small
    assert len(merged) == 1 and small < set(remote.packs())
    cloned_clean(remote, tmp_path, "during", files)
    again = gc(repo)  # nothing more to merge while the old packs wait
    assert again["merged_packs"] == 0 and again["pending_packs"] == PUSHES

    swept = gc(repo, clock=DAY + 60)
    assert swept["deleted_packs"] == PUSHES and swept["pardoned_packs"] == 0
    assert set(remote.packs()) == merged and len(remote.list_keys("index/")) == 1
    assert not manifests(remote)
    cloned_clean(remote, tmp_path, "after", files)
    _, after = remote.clone(tmp_path, "counted")
    assert requests(after) < requests(before), (before.out, after.out)
    notes = [e["note"] for e in repo.json("audit", "--remote", "origin", "--json")]
    assert any(f"merged {PUSHES} small packs into 1" in n for n in notes), notes
    repo.ok("audit", "verify", "--remote", "origin")
    repo.fsck_clean()


def test_remote_gc_merging_with_no_grace_deletes_the_small_packs_at_once(
    seeds: Seeds, dir_remote: Remote, tmp_path: Path
) -> None:
    repo, files = seeds.pushed(dir_remote, tmp_path, small_pushes)
    small = set(dir_remote.packs())
    plan = gc(repo, "--grace", "0", "--dry-run")  # (it said it would delete none)
    got = gc(repo, "--grace", "0")
    assert got["merged_packs"] == PUSHES and got["deleted_packs"] == PUSHES
    assert (plan["deleted_packs"], plan["bytes_freed"]) == (PUSHES, got["bytes_freed"])
    assert got["merged_into"] == 1 and got["merged_into_bytes"] < got["merged_bytes"]
    packs = set(dir_remote.packs())
    assert len(packs) == 1 and not packs & small and not manifests(dir_remote)
    assert len(dir_remote.list_keys("index/")) == 1
    cloned_clean(dir_remote, tmp_path, "clone", files)
    repo.fsck_clean()


REPACK_KILLS = ["remote-repacked", "remote-indexed", "remote-condemned", "remote-unindexed"]


def test_remote_gc_killed_while_merging_leaves_a_remote_a_later_gc_finishes(
    seeds: Seeds, remote: Remote, tmp_path: Path
) -> None:
    repo, files = seeds.pushed(remote, tmp_path, small_pushes)
    for step in REPACK_KILLS:
        r = run(repo.root, "gc", "--remote", "origin", env={KILL_ENV: step})
        assert r.code == -signal.SIGKILL, (step, str(r))
        cloned_clean(remote, tmp_path, f"after-{step}", files)
    gc(repo)  # takes over the dead run's lock
    gc(repo, clock=DAY + 60)
    assert len(remote.packs()) == 1 and len(remote.list_keys("index/")) == 1
    assert not manifests(remote) and "gc/lock" not in remote.list_keys("gc/")
    cloned_clean(remote, tmp_path, "final", files)
    repo.fsck_clean()


def test_a_pack_that_does_not_verify_is_not_merged(
    seeds: Seeds, dir_remote: Remote, tmp_path: Path
) -> None:
    """A small pack whose bytes were damaged on the remote stays as it is (the others
    are merged), named in a warning."""
    repo, _ = seeds.pushed(dir_remote, tmp_path, small_pushes)
    damaged = sorted(dir_remote.list_keys("packs/"))[0]
    data = bytearray(dir_remote.backend.get(damaged))
    data[4] ^= 0xFF  # the first object's first byte
    dir_remote.backend.put(damaged, bytes(data))
    got = gc(repo, "--grace", "0")
    assert got["merged_packs"] == PUSHES - 1
    assert any(damaged.removeprefix("packs/")[:12] in w for w in got["warnings"])
    assert dir_remote.backend.get(damaged) == bytes(data)  # kept as it was
    assert len(dir_remote.list_keys("packs/")) == 2
    repo.fsck_clean()


def test_readers_and_pushers_started_before_the_merge_lose_nothing(
    seeds: Seeds, s3_remote: Remote, tmp_path: Path
) -> None:
    """A clone that read the index before the merge downloads from the old packs during
    the grace; a push that read the index before it relies on an old pack's chunk, and
    the sweep finds that chunk in the new pack; a push whose segment the merge replaced
    before its branch moved finds its pack indexed: the old packs go, nothing is lost."""
    remote = s3_remote
    repo, files = seeds.pushed(remote, tmp_path, small_pushes)
    other, _ = remote.clone(tmp_path, "other")
    side, _ = remote.clone(tmp_path, "side")
    side.ok("switch", "-c", "side")
    side.write("side.txt", b"side data\n" * 50)
    side.ok("add", "side.txt")
    side.commit("side")
    side_push = stopped_push(side, "uploaded")  # its pack and segment are up, not its ref
    other.write("copy.txt", files["small/000.txt"])  # deduplicated against a small pack
    other.ok("add", "copy.txt")
    other.commit("copy")
    push = stopped_push(other, "indexed")
    reader = subprocess.Popen(
        cli_command("clone", remote.url, "reader", "--jobs", "1", *remote.options),
        cwd=tmp_path,
        # it counts the records it fetched first (a version and two trees a push)
        env=cli_env({DOWNLOAD_STOP_ENV: str(3 * PUSHES + 1)}),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    _, status = os.waitpid(reader.pid, os.WUNTRACED)
    assert os.WIFSTOPPED(status), f"the clone ended before its first chunk (status {status})"

    merged = gc(repo)
    assert merged["merged_packs"] == PUSHES and merged["segments_replaced"] == PUSHES + 1
    resume(push)
    resume(side_push)
    resume(reader)
    cloned = Repo(tmp_path / "reader")
    for rel, data in files.items():
        assert cloned.read(rel) == data, rel
    cloned.fsck_clean()

    swept = gc(repo, clock=DAY + 60)
    assert swept["deleted_packs"] == PUSHES and swept["pardoned_packs"] == 0
    cloned_clean(remote, tmp_path, "after", {**files, "copy.txt": files["small/000.txt"]})
    clone, _ = remote.clone(tmp_path, "after-side", "--rev", "origin/side")
    assert clone.read("side.txt") == b"side data\n" * 50
    clone.fsck_clean()
    side.fsck_clean()
    other.fsck_clean()
    repo.fsck_clean()


def test_a_merged_pack_read_back_is_read_no_further_than_what_was_written(
    seeds: Seeds, s3_env: S3Server, s3_remote: Remote, tmp_path: Path
) -> None:
    """A server that answers the read-back of a merged pack with far more bytes than
    were put (an endless body) is read no further than the pack's length and one byte:
    nothing is merged (the small packs stay, none condemned), with a warning."""
    repo, files = seeds.pushed(s3_remote, tmp_path, small_pushes)
    small = {key.encode() for key in s3_remote.list_keys("packs/")}
    flood = 128 << 20

    def answer(head: bytes) -> Iterator[bytes] | None:
        method, target = head.split(b" ", 2)[:2]
        path = target.split(b"?")[0]
        if method != b"GET" or b"/packs/" not in path or any(path.endswith(k) for k in small):
            return None
        return iter(
            [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % flood]
            + [bytes(1 << 20)] * (flood >> 20)
        )

    relay = Intercept(int(s3_env.endpoint.rsplit(":", 1)[1]), answer)
    try:
        repo.ok("remote", "add", "hostile", s3_remote.url, "--endpoint-url", relay.endpoint)
        r = assert_ok(run(repo.root, "gc", "--remote", "hostile", "--json", env={CLOCK_ENV: "0"}))
    finally:
        relay.cut()
    got = r.json()
    assert relay.sent < 32 << 20, relay.sent  # (what socket buffers took before the close)
    assert got["merged_packs"] == 0 and got["condemned_packs"] == 0, got
    assert any("did not read back whole" in w for w in got["warnings"]), got
    assert small < {key.encode() for key in s3_remote.list_keys("packs/")}
    assert not manifests(s3_remote)
    cloned_clean(s3_remote, tmp_path, "clone", files)
    repo.fsck_clean()


def test_a_remote_read_in_place_across_a_merge_reads_the_merged_pack(
    seeds: Seeds, remote: Remote, tmp_path: Path
) -> None:
    """A remote opened with ``vfs.Repo.remote`` before another clone's gc merged and
    deleted its small packs knew each chunk in a pack that is gone: every read of a
    file not read before failed, until the program started again; and so did a
    mount's read-ahead of a run of chunks (``stream_run``) from where the index it read
    placed them. The index is read again and each chunk read where it lies now."""
    repo, files = seeds.pushed(remote, tmp_path, small_pushes)
    options = dict(zip(remote.options[::2], remote.options[1::2], strict=True))
    reader = vfs.Repo.remote(
        remote.url, endpoint_url=options.get("--endpoint-url"), cache_dir=tmp_path / "c"
    )
    ahead = RemoteChunks(lambda: RemoteRepo(Meter(remote.backend), None))
    try:
        first, *rest = sorted(files)
        assert reader.read_bytes(first) == files[first]  # (the index is read)
        last = hash_bytes(files[rest[-1]])  # (a file of one chunk: its id is the file's)
        assert ahead.fetch(last) == files[rest[-1]]
        was = ahead.where(last)
        assert was is not None
        got = gc(repo, "--grace", "0")
        assert got["merged_packs"] == PUSHES and got["deleted_packs"] == PUSHES
        for rel in rest:
            assert reader.read_bytes(rel) == files[rel], rel
        ((_, [(chunk, _)]),) = ahead.stream_run(was[0], [was[1]])
        assert bytes(chunk) == files[rest[-1]]  # type: ignore[arg-type]
        assert ahead.where(last) not in (None, was)
    finally:
        reader.close()
    repo.fsck_clean()


def test_a_pack_that_does_not_verify_loses_no_copy_another_small_pack_holds(
    seeds: Seeds, dir_remote: Remote, tmp_path: Path
) -> None:
    """A chunk two clones pushed at once lies in two small packs; it is copied from the
    first. When that copy is damaged, that pack is kept as it is, and the chunk was
    copied from nowhere: the other pack, whose copy is good, was merged and deleted,
    leaving only the damaged one. It is copied from the other pack instead."""
    repo, files = seeds.pushed(dir_remote, tmp_path, small_pushes)
    dup = b"the same file, pushed by two clones at once\n" * 40
    other, _ = dir_remote.clone(tmp_path, "other")
    other.ok("switch", "-c", "side")
    other.write("dup.txt", dup)
    other.ok("add", "dup.txt")
    other.commit("dup on side")
    push = stopped_push(other, "indexed")  # it read the index: it will upload the chunk too
    repo.write("dup.txt", dup)
    repo.ok("add", "dup.txt")
    repo.commit("dup on main")
    repo.ok("push")
    resume(push)
    chunk = hash_bytes(dup)
    holding = sorted(
        (pack_id, obj)
        for key in dir_remote.list_keys("index/")
        for pack_id, obj in decode_segment(dir_remote.backend.get(key), key)
        if obj.oid == chunk
    )
    assert len(holding) == 2
    damaged, obj = holding[0]  # (the pack it is copied from)
    data = bytearray(dir_remote.backend.get(f"packs/{damaged}"))
    data[obj.offset] ^= 0xFF
    dir_remote.backend.put(f"packs/{damaged}", bytes(data))

    got = gc(repo, "--grace", "0")
    assert got["merged_packs"] == PUSHES + 1 and got["deleted_packs"] == PUSHES + 1, got
    assert any(damaged[:12] in w for w in got["warnings"]), got
    assert f"packs/{damaged}" in dir_remote.list_keys("packs/")  # kept as it was
    cloned_clean(dir_remote, tmp_path, "main", {**files, "dup.txt": dup})
    side, _ = dir_remote.clone(tmp_path, "side", "--rev", "origin/side")
    assert side.read("dup.txt") == dup
    side.fsck_clean()
    repo.fsck_clean()
