"""``dvfs fsck --remote [NAME] [--data]``: a remote checked in place, nothing written.

Each test damages the remote through a backend of its own (as a disk, a hand or a
half-done copy would) and reads what the check says: one line a problem, naming it,
exit 1; a clean remote exits 0 with what was counted. ``--data`` alone reads packs.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from tests.support.api import SMALL_CHUNKS
from tests.support.cli import (
    Repo,
    RepoFactory,
    Result,
    assert_error,
    assert_ok,
    commit_files,
    make_repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from tests.support.data import rand
from tests.support.forge import Forge, dir_entry, file_entry
from tests.support.remote import (  # noqa: F401  (fixtures)
    Remote,
    dir_remote_fixture,
    pack_reads,
    remote_fixture,
)
from tests.test_remote_gc import (  # noqa: F401  (a fixture)
    listed_twice,
    manifests,
    s3_remote_fixture,
)
from tests.test_remote_repack import DAY, PUSHES, gc, small_pushes
from vfs.errors import RemoteNotFound
from vfs.model.codec import ChunkRef, Entry, Kind, encode_tree
from vfs.model.ids import hash_bytes
from vfs.model.version_codec import Version, encode_version
from vfs.ops.prune import prune
from vfs.remote.check import fsck_remote
from vfs.remote.config import Meter, get_remote
from vfs.remote.gc import gc_remote
from vfs.remote.layout import decode_segment, encode_segments
from vfs.repo.repository import Repository
from vfs.store.objects import ObjKind
from vfs.store.packs import encode_index


def seeded(make_repo: RepoFactory, remote: Remote) -> Repo:
    """Two versions in two pushes (two packs), a tag, all on the remote as ``origin``."""
    repo = make_repo("seed")
    remote.add_to(repo)
    commit_files(repo, {"data/a.csv": b"id,v\n" + b"1,2\n" * 500, "notes.txt": b"one\n"}, "one")
    repo.ok("push")
    commit_files(repo, {"data/b.csv": b"id,w\n" + b"3,4\n" * 700}, "two")
    repo.ok("tag", "release")
    repo.ok("push", "--tags")
    return repo


def check(repo: Repo, *args: str) -> Result:
    return repo.run("fsck", "--remote", "origin", *args)


def problems(r: Result) -> list[str]:
    assert r.code == 1, r
    lines = [line for line in r.out.splitlines() if line.startswith("problem: ")]
    assert lines and "Traceback" not in r.err, r
    return lines


def objects(remote: Remote) -> dict[str, list[Any]]:
    """Each indexed pack and the objects its entries list."""
    out: dict[str, list[Any]] = {}
    for key in remote.list_keys("index/"):
        for pack_id, obj in decode_segment(remote.backend.get(key), key):
            out.setdefault(pack_id, []).append(obj)
    return out


def local_state(repo: Repo) -> dict[str, bytes]:
    """Every file under .dvfs and its bytes (the check must change none)."""
    out = {}
    for top, _, files in os.walk(repo.root / ".dvfs"):
        for f in files:
            p = Path(top, f)
            out[str(p.relative_to(repo.root))] = p.read_bytes()
    return out


def remote_state(remote: Remote) -> dict[str, bytes]:
    return {k: remote.backend.get(k) for k in remote.list_keys()}


def test_fsck_remote_counts_a_clean_remote_and_writes_nothing(
    make_repo: RepoFactory, remote: Remote
) -> None:
    repo = seeded(make_repo, remote)
    here, there = local_state(repo), remote_state(remote)
    r = repo.ok("fsck", "--remote")  # the default remote
    assert (
        "origin: checked 1 branch, 1 tag, 2 versions, 4 trees, 3 chunks; 2 packs" in r.out
        and "in 2 index segments: no problems" in r.out
    ), r
    got = repo.json("fsck", "--remote", "origin", "--json")
    assert got["clean"] and got["problems"] == [] and got["warnings"] == []
    assert (got["branches"], got["tags"], got["versions"], got["trees"], got["chunks"]) == (
        1, 1, 2, 4, 3,
    )  # fmt: skip
    assert got["packs"] == 2 and got["objects_verified"] == 0
    full = repo.json("fsck", "--remote", "origin", "--data", "--json")
    assert full["clean"] and full["objects_verified"] == full["objects_indexed"] == 9
    assert "read back 9 objects" in check(repo, "--data").out
    assert local_state(repo) == here and remote_state(remote) == there
    repo.fsck_clean()


def test_fsck_remote_names_each_damage(make_repo: RepoFactory, remote: Remote) -> None:
    repo = seeded(make_repo, remote)
    packs = objects(remote)
    assert len(packs) == 2
    # the second push's pack: a chunk, and the pack's key and bytes
    second = next(p for p, objs in packs.items() if any(o.kind == ObjKind.VERSION and
                  o.oid.hex() == repo.head_id() for o in objs))  # fmt: skip
    chunk = next(o for o in packs[second] if o.kind == ObjKind.CHUNK)
    key = f"packs/{second}"
    good = remote.backend.get(key)
    short = second[:12]

    flipped = bytearray(good)
    flipped[chunk.offset + chunk.stored_len // 2] ^= 0x40
    remote.backend.put(key, bytes(flipped))
    repo.ok("fsck", "--remote", "origin")  # the default reads no pack
    (line,) = problems(check(repo, "--data"))
    assert f"pack {short} is damaged: 1 object(s) do not verify (first: chunk " in line, line
    assert f"restore {key} on the remote from a backup" in line, line

    remote.backend.put(key, good[:-30])
    lines = problems(check(repo))
    assert any(f"pack {short} is truncated: {len(good) - 30:,} bytes" in x for x in lines), lines

    remote.backend.delete(key)
    got = repo.run("fsck", "--remote", "origin", "--json")
    assert got.code == 1 and not got.json()["clean"], got
    assert any(f"pack {short} is missing" in x for x in got.json()["problems"]), got.out
    remote.backend.put(key, good)
    repo.ok("fsck", "--remote", "origin", "--data")

    missing = "ab" * 32
    remote.backend.put("refs/heads/lost", f"{missing}\n".encode())
    (line,) = problems(check(repo))
    assert f"branch 'lost' names version {missing[:12]}, which the remote's index" in line
    remote.backend.put("refs/tags/bad", b"not an id\n")
    lines = problems(check(repo))
    assert any("tag 'bad' cannot be read" in x and "--delete refs/tags/bad" in x for x in lines)
    remote.backend.delete("refs/heads/lost")
    remote.backend.delete("refs/tags/bad")

    seg = next(iter(remote.list_keys("index/")))
    data = remote.backend.get(seg)
    remote.backend.put(seg, data[:-1] + bytes([data[-1] ^ 1]))
    lines = problems(check(repo))
    assert any(f"index segment {seg[6:18]} is corrupt" in x for x in lines), lines
    remote.backend.put(seg, data)

    record = remote.backend.get("format")
    remote.backend.delete("format")
    (line,) = problems(check(repo))
    assert "has an index but no format record: fetches refuse it" in line, line
    remote.backend.put("format", record)
    repo.ok("fsck", "--remote", "origin", "--data")
    repo.fsck_clean()


def test_fsck_remote_names_a_version_whose_totals_are_not_its_trees(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A remote version claiming a terabyte of a tree holding 16 bytes, which clones
    and fetches refuse, was no problem to `dvfs fsck --remote`."""
    forge = Forge(tmp_path / "evil")
    data = forge.tree([file_entry(b"a.txt", forge.chunk(b"hello\n"), 6)])
    v1 = forge.version(forge.tree([dir_entry(b"data", data)]))
    top = [dir_entry(b"data", data), file_entry(b"more.txt", forge.chunk(b"more text\n"), 10)]
    tree = forge.tree(top)
    record = Version(tree, (v1,), 2, "m", "m <m@x>", 1, files=2, bytes=10**12)
    v2 = forge.add(ObjKind.VERSION, encode_version(record))
    forge.publish(v2)
    repo = make_repo("here")
    repo.ok("remote", "add", "origin", forge.url)
    (line,) = problems(check(repo))
    assert f"v2 {v2.hex()[:12]} (branch 'main') claims 2 files of 1,000,000,000,000 bytes" in line
    assert "but its tree holds 2 files of 16 bytes: clones and fetches refuse it" in line
    assert repo.run("fsck", "--remote", "origin", "--json").json()["problems"] == [line[9:]]


def test_fsck_remote_digests_names_a_file_whose_bytes_are_not_its_digest(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A remote version whose file of several chunks claims a digest its bytes do not
    have (each chunk is its id, so fetches take it): `dvfs fsck --remote --data`
    verified each chunk, never the file, and called the remote clean. `--digests`
    reads every such file whole, in order, and names it; a true one is no problem."""
    forge = Forge(tmp_path / "evil")
    entries = []
    for name in (b"lie.bin", b"true.bin"):
        data = os.urandom(3 * 1024 * 1024)
        refs = tuple(
            ChunkRef(forge.chunk(data[i : i + 1024 * 1024]), 1024 * 1024)
            for i in range(0, len(data), 1024 * 1024)
        )
        digest = hash_bytes(data) if name == b"true.bin" else hash_bytes(b"other")
        entries.append(Entry(name, Kind.FILE, 0o644, len(data), 0, digest, refs))
        if name == b"lie.bin":
            real = hash_bytes(data)
    forge.publish(forge.version(forge.tree([dir_entry(b"d", forge.tree(entries))])))
    repo = make_repo("here")
    repo.ok("remote", "add", "origin", forge.url)
    assert_ok(check(repo, "--data"))
    (line,) = problems(check(repo, "--digests"))
    assert line == (
        f"problem: v1:d/lie.bin: its bytes hash to {real.hex()[:12]}, not to "
        f"{hash_bytes(b'other').hex()[:12]}, the digest its version records for it (a forged "
        "or damaged record): checkouts and reads of it fail; point the refs that reach it "
        "at other versions, or delete them"
    )
    got = repo.run("fsck", "--remote", "origin", "--digests", "--json").json()
    assert got["problems"] == [line[9:]] and got["files_read_whole"] == 2


def test_fsck_remote_digests_reads_neighbouring_chunks_with_one_request(
    s3_remote: Remote, tmp_path: Path
) -> None:
    """`--digests` read a file one ranged GET a chunk, one after the other: a round trip
    to S3 for each. The chunks of a file that lie next to each other in a pack are read
    with one ranged GET, each still verified: a byte flipped in one names the file."""
    Repository.init(tmp_path / "seed", chunker=SMALL_CHUNKS).close()
    repo = Repo(tmp_path / "seed")
    s3_remote.add_to(repo)
    commit_files(repo, {"big.bin": rand(500_000, seed=41), "small.txt": b"one\n"}, "big")
    repo.ok("push")
    here = Repository(repo.root)
    entry = here.history.lookup(here.history.version(here.history.head_id()).tree, b"big.bin")
    here.close()
    assert entry is not None and len(entry.chunks) >= 20
    (pack,) = s3_remote.list_keys("packs/")
    plain = repo.run("fsck", "--remote", "origin", "--json").json()
    whole = repo.run("fsck", "--remote", "origin", "--digests", "--json").json()
    assert plain["clean"] and whole["clean"] and whole["files_read_whole"] == 1, whole
    assert whole["requests"] - plain["requests"] <= 2, (plain["requests"], whole["requests"])

    data = bytearray(s3_remote.backend.get(pack))
    data[len(data) // 3] ^= 0xFF  # (inside a chunk of big.bin, which fills most of it)
    s3_remote.backend.put(pack, bytes(data))
    (line,) = problems(check(repo, "--digests"))
    assert line.startswith("problem: v1:big.bin could not be read whole: "), line
    repo.fsck_clean()


def test_fsck_remote_digests_reads_the_index_once_where_a_pack_is_gone(
    make_repo: RepoFactory, remote: Remote
) -> None:
    """A file whose pack is gone could not be read whole: said once, and the index is
    not read again for it (the check reads the remote as its index was read)."""
    repo = make_repo("seed")
    remote.add_to(repo)
    commit_files(repo, {"big.bin": rand(3 * 1024 * 1024, seed=43)}, "big")
    repo.ok("push")
    (pack,) = remote.list_keys("packs/")
    commit_files(repo, {"notes.txt": b"one\n"}, "notes")  # (its records in a pack of its own)
    repo.ok("push")
    remote.backend.delete(pack)
    plain = repo.run("fsck", "--remote", "origin", "--json").json()
    whole = repo.run("fsck", "--remote", "origin", "--digests", "--json").json()
    lines = [p for p in whole["problems"] if p not in plain["problems"]]
    assert len(lines) == 1 and lines[0].startswith("v2:big.bin could not be read whole: "), lines
    assert "is missing from" in lines[0], lines
    assert whole["requests"] - plain["requests"] == 1, (plain["requests"], whole["requests"])


def test_fsck_remote_names_a_folder_whose_size_is_not_the_bytes_below_it(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A remote folder claiming 999 bytes above files of 6, which clones and fetches
    refuse, was no problem to `dvfs fsck --remote`."""
    forge = Forge(tmp_path / "evil")
    data = forge.tree([file_entry(b"a.txt", forge.chunk(b"hello\n"), 6)])
    lie = Entry(b"data", Kind.DIR, 0o755, 999, 0, subtree=data)
    top = forge.add(ObjKind.TREE, encode_tree([lie]))
    v1 = Version(top, (), 1, "m", "m <m@x>", 1, files=1, bytes=6)
    forge.publish(forge.add(ObjKind.VERSION, encode_version(v1)))
    repo = make_repo("here")
    repo.ok("remote", "add", "origin", forge.url)
    (line,) = problems(check(repo))
    assert f"tree {top.hex()[:12]} (v1:) says folder data/ holds 999 bytes" in line, line
    assert "but the files below it hold 6: clones and fetches refuse it" in line, line


def test_an_index_entry_outside_its_pack_names_the_segment_not_the_pack(
    make_repo: RepoFactory, remote: Remote, tmp_path: Path
) -> None:
    """An index segment placing a chunk past the end of its (whole) pack: fsck, its
    --data and a clone called the pack damaged ("restore packs/X from a backup"), which
    would mend nothing. They now name the segment, and restoring it mends the remote."""
    repo = seeded(make_repo, remote)
    seg = next(
        k
        for k in remote.list_keys("index/")
        if any(o.kind == ObjKind.CHUNK for _, o in decode_segment(remote.backend.get(k), k))
    )
    good = remote.backend.get(seg)
    rows = decode_segment(good, seg)
    pack_id, chunk = next((p, o) for p, o in rows if o.kind == ObjKind.CHUNK)
    objs = [o._replace(offset=o.offset + (1 << 20)) if o == chunk else o for _, o in rows]
    ((bad_key, bad),) = encode_segments([(bytes.fromhex(pack_id), encode_index(objs))])
    remote.backend.put(bad_key, bad)
    remote.backend.delete(seg)
    for args in ((), ("--data",)):
        lines = problems(check(repo, *args))
        (line,) = [x for x in lines if chunk.oid.hex()[:12] in x]
        assert f"index segment {bad_key} on " in line and "past the end of pack" in line, line
        assert f"restore {bad_key} on the remote from a backup" in line, line
        assert "packs/" not in line, line
    line = assert_error(
        run(tmp_path, "clone", remote.url, "c", *remote.options), f"restore {bad_key} on"
    )
    assert "packs/" not in line, line
    remote.backend.put(seg, good)
    remote.backend.delete(bad_key)
    repo.ok("fsck", "--remote", "origin", "--data")
    remote.clone(tmp_path, "c2")[0].fsck_clean()
    repo.fsck_clean()


def test_fsck_remote_reads_the_index_again_when_a_gc_replaces_a_segment(
    make_repo: RepoFactory, dir_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    repo = seeded(make_repo, dir_remote)
    gone: list[str] = []
    real = Meter.get_small

    def replaced_once(self: Meter, key: str, limit: int) -> bytes:
        if key.startswith("index/") and not gone:
            gone.append(key)
            raise RemoteNotFound(f"{key} is gone")
        return real(self, key, limit)

    monkeypatch.setattr(Meter, "get_small", replaced_once)
    here = Repository(repo.root)
    got = fsck_remote(here, get_remote(here, None, record=False))
    assert gone and got.clean and got.segments == 2 and got.versions == 2, got
    repo.fsck_clean()


def test_fsck_remote_says_what_mends_a_missing_version_and_a_dead_pack(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    """What the problem lines promise: a push of the branch at a missing version does
    not upload it, a tag on it pushed does; a remote gc drops a lost dead pack."""
    repo = seeded(make_repo, dir_remote)
    lost = commit_files(repo, {"notes.txt": b"three\n"}, "three")
    dir_remote.backend.put("refs/heads/main", f"{lost}\n".encode())  # (a lost segment)
    (line,) = problems(check(repo))
    assert f"branch 'main' names version {lost[:12]}" in line and "--tags" in line, line
    assert "already up to date" in repo.ok("push").out
    problems(check(repo))
    repo.ok("tag", "keep", lost)
    repo.ok("push", "--tags")
    repo.ok("fsck", "--remote", "origin", "--data")

    # a pack no ref reaches, lost: a remote gc drops its index entries, as said
    before = set(dir_remote.list_keys("packs/"))
    repo.ok("switch", "-c", "side")
    commit_files(repo, {"side.txt": b"side\n"}, "side")
    repo.ok("push")
    repo.ok("push", "--delete", "side")
    (dead,) = set(dir_remote.list_keys("packs/")) - before
    dir_remote.backend.delete(dead)
    (line,) = problems(check(repo))
    assert f"pack {dead[6:18]} is missing" in line and "no ref reaches it: `dvfs gc" in line
    repo.ok("gc", "--remote", "origin")
    repo.ok("fsck", "--remote", "origin")

    # a ref under a name no dvfs reads (written by hand): skipped as clones skip it
    hostile = Path(dir_remote.url.removeprefix("file://"), "refs/heads/a\x1b[31mb")
    hostile.write_bytes(b"cd" * 32 + b"\n")
    r = repo.ok("fsck", "--remote", "origin")
    assert 'remote branch "a\\033[31mb" skipped' in r.err and "\x1b" not in r.err, r
    repo.fsck_clean()


def test_fsck_remote_reads_what_a_lost_pack_held_from_another_that_lists_it(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A pack deleted by hand whose objects another pack holds too: the check read each
    object from the first pack listing it, said the version "cannot be read" and that
    the refs reach objects in the lost pack, and told to push everything to a new
    remote. It reads them from the pack that is there now: the lost pack is the one
    problem, with what mends it (a remote gc drops its index entries)."""
    forge, first = listed_twice(tmp_path / "remote")
    (forge.root / "packs" / first).unlink()
    repo = make_repo("here")
    repo.ok("remote", "add", "origin", forge.url)
    (line,) = problems(check(repo, "--data", "--digests"))
    assert f"pack {first[:12]} is missing" in line and "no ref reaches it: `dvfs gc" in line
    repo.ok("gc", "--remote", "origin", "--grace", "0")
    repo.ok("fsck", "--remote", "origin", "--data", "--digests")
    repo.fsck_clean()


def test_fsck_remote_is_clean_after_a_remote_gc_merges_small_packs(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    remote = dir_remote  # (gc's merging is the same above every backend)
    repo = make_repo("seed")
    remote.add_to(repo)
    small_pushes(repo)
    assert repo.json("fsck", "--remote", "--data", "--json")["packs"] == PUSHES
    merged = gc(repo)
    assert merged["merged_packs"] == PUSHES and len(manifests(remote)) == 1
    got = repo.json("fsck", "--remote", "--data", "--json")
    assert got["clean"] and got["packs"] == 1 and got["condemned_packs"] == PUSHES, got
    assert got["versions"] == PUSHES and got["objects_verified"] > 0
    swept = gc(repo, clock=DAY + 60)
    assert swept["deleted_packs"] == PUSHES
    got = repo.json("fsck", "--remote", "--data", "--json")
    assert got["clean"] and got["packs"] == 1 and got["condemned_packs"] == 0, got
    repo.fsck_clean()


def test_fsck_remote_takes_pack_sizes_from_a_directory_listing_reading_no_pack(
    make_repo: RepoFactory, dir_remote: Remote, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Sizes from the listing, no download (README): on a directory remote the listing
    of packs/ asked each pack's ETag, which hashes the whole file, so the check read
    every byte of every pack, and so did `store prune` and a remote gc (each dead
    pack's size). They read the versions and trees they look at, and no more."""
    repo = seeded(make_repo, dir_remote)
    repo.ok("switch", "-c", "side")
    commit_files(repo, {"side.bin": rand(2 << 20, seed=1)}, "side")
    repo.ok("push")
    repo.ok("push", "--delete", "side")
    repo.ok("switch", "main")
    commit_files(repo, {"big.bin": rand(3 << 20)}, "three")
    repo.ok("push")
    root = Path(dir_remote.url.removeprefix("file://"))
    got = pack_reads(monkeypatch, root)
    here = Repository(repo.root)
    spec = get_remote(here, None, record=False)
    report = fsck_remote(here, spec)
    assert report.clean and report.packs == 4, report
    assert got == {"read": got["read"], "hashed": 0} and got["read"] < 64 << 10, got
    assert not prune(here, spec, dry_run=True).problems
    assert gc_remote(here, spec, dry_run=True).dead_packs == 1
    assert got["hashed"] == 0 and got["read"] < 64 << 10, got
    repo.fsck_clean()


def test_fsck_remote_and_prune_pass_over_what_is_no_object_in_a_directory_packs_folder(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    """A FIFO or a link among a directory remote's packs (not a pack: no pack has such
    a name or is such a file) stopped `fsck --remote` and `store prune` with "packs/junk
    ... is not a regular file": the check meant to say what is wrong with a remote
    could not run. The listing of sizes leaves out what is no object, as an S3
    listing never shows one; a pack the index lists that is a link is missing."""
    repo = seeded(make_repo, dir_remote)
    root = Path(dir_remote.url.removeprefix("file://"))
    os.mkfifo(root / "packs" / "junk")
    (root / "packs" / "link").symlink_to("/etc/passwd")
    repo.ok("fsck", "--remote", "origin")
    repo.ok("store", "prune", "--dry-run")
    pack = sorted((root / "packs").glob("[0-9a-f]*"))[0]
    kept = pack.with_name("kept")
    pack.rename(kept)
    pack.symlink_to(kept)
    assert any(f"pack {pack.name[:12]} is missing" in line for line in problems(check(repo)))
    pack.unlink()
    kept.rename(pack)
    repo.fsck_clean()


def test_fsck_remote_and_prune_pass_over_names_no_key_has_in_a_directory_packs_folder(
    make_repo: RepoFactory, dir_remote: Remote
) -> None:
    """A file among a directory remote's packs under a name no dvfs writes ("Copy of
    x", a space, a non-ASCII letter) stopped `fsck --remote` and `store prune` with
    "invalid storage key packs/bad name" and exit 2, as if the user had typed it. The
    listing of sizes passes over such a name, as an S3 listing does."""
    repo = seeded(make_repo, dir_remote)
    root = Path(dir_remote.url.removeprefix("file://"))
    for name in ("bad name", "\u00e9", "a\x1b[31mb"):
        (root / "packs" / name).write_bytes(b"x")
    got = repo.json("fsck", "--remote", "origin", "--json")
    assert got["clean"] and got["packs"] == 2, got
    repo.ok("store", "prune", "--dry-run")
    repo.fsck_clean()


def test_fsck_remote_usage(make_repo: RepoFactory, dir_remote: Remote) -> None:
    repo = make_repo()
    repo.fail("fsck", "--remote", fragments=("no remote is configured",), code=2)
    repo.fail("fsck", "--data", fragments=("--data goes with --remote",), code=2)
    dir_remote.add_to(repo)
    repo.fail("fsck", "--remote", "origin", "--repair", fragments=("--repair",), code=2)
    repo.fail("fsck", "--remote", "nope", fragments=("unknown remote nope",), code=2)
    repo.fail("fsck", "--remote", fragments=("holds no dvfs repository",), code=2)
