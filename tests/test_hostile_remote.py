"""A remote crafted to attack whoever clones, fetches or pulls from it.

Each remote is written by hand (``tests.support.forge``) with the project's own codec, the
way a teammate's push or a writable shared bucket could lay it out, and each attack
must end in one clear line and a non-zero exit (or, for oddly named refs, one warning
per ref), with nothing written outside the repository, no ref moved by a refused
version, and ``dvfs fsck`` clean wherever something was kept.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import subprocess
import threading
from pathlib import Path

import pytest

import vfs.remote.reader
from tests.support.cli import (
    Repo,
    RepoFactory,
    Result,
    assert_error,
    assert_ok,
    commit_files,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run,
    run_as_dvfs,
    warnings_of,
)
from tests.support.data import rand
from tests.support.forge import Forge, dir_entry, file_entry, files_under, nested
from tests.support.s3server import S3Server
from tests.test_checkout_ahead import MiB, forge_digest
from vfs import fetch_locked
from vfs.backends import LocalBackend, open_backend
from vfs.errors import RemoteError
from vfs.model.codec import ChunkRef, Entry, Kind, encode_tree
from vfs.model.ids import hash_bytes, hasher
from vfs.model.version_codec import Version, encode_version
from vfs.remote import audit as remote_audit
from vfs.remote.check import fsck_remote
from vfs.remote.config import Meter, RemoteSpec, connect
from vfs.remote.layout import audit_key, decode_segment
from vfs.remote.manifests import encode_manifest, shunned
from vfs.remote.reader import RemoteRepo, index_fault
from vfs.repo.repository import Repository, format_record
from vfs.store.objects import ObjKind


def good_v1(forge: Forge) -> bytes:
    """A harmless first version: ``data/a.txt``."""
    leaf = file_entry(b"a.txt", forge.chunk(b"hello\n"), 6)
    return forge.version(nested(forge, [b"data"], [leaf]))


def refused_clone(tmp_path: Path, forge: Forge, *fragments: str) -> str:
    """Clone ``forge`` and assert it failed, leaving nothing behind; the error line."""
    before = files_under(tmp_path)
    line = assert_error(run(tmp_path, "clone", forge.url, "victim"), *fragments)
    assert files_under(tmp_path) == before
    return line


# ------------------------------------------------------------------- reserved names


@pytest.mark.parametrize(
    ("name", "shown"),
    [(b".git", ".git"), (b".DVFS", ".DVFS"), (".g\u200cit".encode(), '"data/.g\\342\\200\\214it"')],
)
def test_a_version_holding_a_reserved_name_is_refused_naming_it(
    name: bytes, shown: str, tmp_path: Path
) -> None:
    forge = Forge(tmp_path / "evil")
    v1 = good_v1(forge)
    hook = file_entry(b"pre-commit", forge.chunk(b"#!/bin/sh\nrm -rf ~\n"), 19, 0o755)
    evil = nested(forge, [b"data", name, b"hooks"], [hook])
    v2 = forge.version(evil, (v1,), 2)
    forge.publish(v2)
    line = refused_clone(tmp_path, forge, "which dvfs never stores", v2.hex()[:12])
    assert "v2 holds " in line and f"{shown}" in line, line


def test_a_pull_of_a_version_holding_git_moves_nothing(tmp_path: Path) -> None:
    forge = Forge(tmp_path / "evil")
    v1 = good_v1(forge)
    forge.publish(v1)
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    b = Repo(tmp_path / "b")
    config = file_entry(b"config", forge.chunk(b"[core]\n\tfsmonitor = evil\n"), 25)
    v2 = forge.version(nested(forge, [b"data", b".git"], [config]), (v1,), 2)
    forge.publish(v2)
    before = files_under(b.root)
    objects = set(Repository(b.root).store.iter_ids())
    for command in ("pull", "fetch"):
        b.fail(command, fragments=("v2 holds data/.git, which dvfs never stores",))
    store = Repository(b.root).store
    assert set(store.iter_ids()) == objects  # nothing of v2 was kept
    assert b.head_id() == v1.hex()
    refs = Repository(b.root).refs
    assert refs.get("refs/remotes/origin/main") == v1
    new = files_under(b.root) - before
    assert all("remotes" in p.parts for p in new), new  # only the cached index segment
    assert not (b.root / "data" / ".git").exists()
    b.fsck_clean()


def test_versions_at_the_root_is_refused_but_deeper_down_is_kept(tmp_path: Path) -> None:
    forge = Forge(tmp_path / "evil")
    inner = forge.tree([file_entry(b"v1", forge.chunk(b"fake\n"), 5)])
    v1 = forge.version(forge.tree([dir_entry(b".versions", inner)]))
    forge.publish(v1)
    refused_clone(tmp_path, forge, "v1 holds .versions at its root", "never stores")

    ok = Forge(tmp_path / "ok")
    v1 = ok.version(nested(ok, [b"data", b".versions"], [file_entry(b"x", ok.chunk(b"x"), 1)]))
    ok.publish(v1)
    assert_ok(run(tmp_path, "clone", ok.url, "fine"))
    assert (tmp_path / "fine" / "data" / ".versions" / "x").read_bytes() == b"x"
    Repo(tmp_path / "fine").fsck_clean()


def test_a_version_lying_about_its_number_is_refused(tmp_path: Path) -> None:
    forge = Forge(tmp_path / "evil")
    v1 = good_v1(forge)
    tree = forge.tree([file_entry(b"f", forge.chunk(b"f"), 1)])
    forge.publish(forge.version(tree, (v1,), 1_000_000_000_000))
    refused_clone(tmp_path, forge, "calls itself v1000000000000", "makes it v2")


@pytest.mark.parametrize("count", [2, 200_000])
def test_a_version_naming_one_parent_again_is_refused(tmp_path: Path, count: int) -> None:
    """A forged v2 naming v1 as its parent 200,000 times was cloned, checked clean by
    fsck, and shown by `dvfs show` as a merge of 200,000 parents on one 3 MiB line. A
    version names each parent once, and at most two (a merge's), as dvfs writes them."""
    forge = Forge(tmp_path / "evil")
    v1 = good_v1(forge)
    tree = forge.tree([file_entry(b"f", forge.chunk(b"f"), 1)])
    forge.publish(forge.version(tree, (v1,) * count, 2))
    refused_clone(tmp_path, forge, "malformed version record", "parents")


@pytest.mark.parametrize(
    ("files", "size", "claim"),
    [(77, 16, "77 files of 16 bytes"), (3, 10**12, "3 files of 1,000,000,000,000 bytes")],
)
def test_a_version_lying_about_its_totals_is_refused(
    tmp_path: Path, files: int, size: int, claim: str
) -> None:
    """A forged v2 claiming 77 files, or a terabyte, of a tree holding three files of 16
    bytes was cloned and pulled, and `dvfs log`, `show` and `du` gave its claim as the
    version's size. The totals of a version must be those of its tree, which a fetch
    reads anyway; a subtree stored here already counts as it is stored."""
    forge = Forge(tmp_path / "evil")
    data = forge.tree([file_entry(b"a.txt", forge.chunk(b"hello\n"), 6)])
    v1 = forge.version(forge.tree([dir_entry(b"data", data)]))
    forge.publish(v1)
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    top = [dir_entry(b"data", data), file_entry(b"more.txt", forge.chunk(b"more\n"), 5)]
    tree = forge.tree([*top, file_entry(b"z.txt", forge.chunk(b"last\n"), 5)])
    assert forge.totals(tree) == {"files": 3, "bytes": 16}
    record = Version(tree, (v1,), 2, "m", "m <m@x>", 1, files=files, bytes=size)
    v2 = forge.add(ObjKind.VERSION, encode_version(record))
    forge.publish(v2)
    fragments = ("v2", v2.hex()[:12], forge.url, f"claims {claim}", "3 files of 16 bytes")
    refused_clone(tmp_path, forge, *fragments)
    b = Repo(tmp_path / "b")
    objects = set(Repository(b.root).store.iter_ids())
    for command in ("fetch", "pull"):
        b.fail(command, fragments=fragments)
    assert set(Repository(b.root).store.iter_ids()) == objects  # nothing of v2 was kept
    assert b.head_id() == v1.hex()
    assert Repository(b.root).refs.get("refs/remotes/origin/main") == v1
    b.fsck_clean()


def test_a_folder_lying_about_its_size_is_refused(tmp_path: Path) -> None:
    """A forged v2 whose folder `data` claims 999 bytes, though the files below it hold
    6, was pulled, and `dvfs ls` showed `data/` as 999 bytes. A folder's size is the
    bytes of the files below it, counted as a version's totals are."""
    forge = Forge(tmp_path / "evil")
    data = forge.tree([file_entry(b"a.txt", forge.chunk(b"hello\n"), 6)])
    v1 = forge.version(forge.tree([dir_entry(b"data", data)]))
    forge.publish(v1)
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    assert Repo(tmp_path / "b").json("ls", "--json")[0]["size"] == 6
    lie = Entry(b"data", Kind.DIR, 0o755, 999, 0, subtree=data)
    top = forge.add(ObjKind.TREE, encode_tree([lie, file_entry(b"m", forge.chunk(b"m"), 1)]))
    v2 = forge.add(
        ObjKind.VERSION, encode_version(Version(top, (v1,), 2, "m", "a", 1, files=2, bytes=7))
    )
    forge.publish(v2)
    fragments = ("v2", v2.hex()[:12], forge.url, "folder data/ holds 999 bytes", "hold 6")
    refused_clone(tmp_path, forge, *fragments)
    b = Repo(tmp_path / "b")
    b.fail("pull", fragments=fragments)
    assert b.head_id() == v1.hex()
    b.fsck_clean()


def test_fsck_names_a_stored_version_whose_totals_are_not_its_trees(repo: Repo) -> None:
    """A version an older dvfs fetched without counting its tree (or one put in the
    store by other means) kept its false totals, and `dvfs fsck` called the clone
    clean while `log` and `show` gave them as the version's size."""
    repo.write("data/a.txt", "hello\n")
    repo.write("data/b.txt", "bye\n")
    repo.ok("add", "data")
    v1 = bytes.fromhex(repo.commit("v1"))
    r = Repository(repo.root)
    made = r.history.version(v1)
    assert (made.files, made.bytes) == (2, 10)
    record = Version(made.tree, (v1,), 2, "lies", "m <m@x>", 1, files=2, bytes=10**12)
    oid, _ = r.store.put(ObjKind.VERSION, encode_version(record))
    r.store.flush()
    r.refs.update("refs/tags/big", oid, None)
    report = repo.run("fsck", "--json").json()
    assert not report["clean"]
    assert report["problems"] == [
        f"v2 {oid.hex()[:10]} claims 2 files of 1,000,000,000,000 bytes, but its "
        "tree holds 2 files of 10 bytes: `log`, `show` and `du` give its claim as its size"
    ]


def test_fsck_names_a_stored_folder_whose_size_is_not_the_bytes_below_it(repo: Repo) -> None:
    """A folder an older dvfs fetched without counting it kept its false size, which
    `dvfs ls` shows, and `dvfs fsck` called the clone clean."""
    repo.write("data/a.txt", "hello\n")
    repo.ok("add", "data")
    v1 = bytes.fromhex(repo.commit("v1"))
    r = Repository(repo.root)
    made = r.history.version(v1)
    data = r.history.lookup(made.tree, b"data")
    assert data is not None and data.size == 6
    top, _ = r.store.put(ObjKind.TREE, encode_tree([data._replace(size=999)]))
    record = Version(top, (v1,), 2, "lies", "m <m@x>", 1, files=1, bytes=6)
    oid, _ = r.store.put(ObjKind.VERSION, encode_version(record))
    r.store.flush()
    r.refs.update("refs/tags/big", oid, None)
    report = repo.run("fsck", "--json").json()
    assert report["problems"] == [
        f"tree {top.hex()[:12]}: folder data/ claims 999 bytes, but the files below it hold "
        "6: `ls` gives its claim as its size"
    ]


def test_fsck_digests_names_a_version_whose_file_is_not_its_digest(repo: Repo) -> None:
    """A version whose file of several chunks claims a digest its bytes do not have
    (each chunk is its id: a forged record an older dvfs fetched, or a damaged one):
    `dvfs fsck` reads each chunk once, not files whole, and called the clone clean.
    `--digests` reads every file of several chunks whole and names the version and
    path holding it; the true file, read under the same flag, is no problem."""
    data = rand(3 * MiB, seed=23)
    commit_files(repo, {"d/mid.bin": data}, "base")
    r = Repository(repo.root)
    head = r.history.head_id()
    assert head is not None
    true = r.history.lookup(r.history.version(head).tree, b"d/mid.bin")
    assert true is not None and len(true.chunks) > 1
    lie = forge_digest(r, head, b"d/mid.bin", bytes(32))
    r.refs.update("refs/tags/lie", lie, None)
    r.close()
    assert repo.run("fsck", "--json").json()["clean"]  # (by design: see --digests)
    report = repo.run("fsck", "--digests", "--json").json()
    where = f"{lie.hex()[:10]}:d/mid.bin"  # (its v2 is not this branch's: a revision that is)
    assert report["problems"] == [
        f"{where}: its bytes hash to {true.digest.hex()[:12]}, not to 000000000000, "
        "the digest its version records for it (a forged or damaged record)"
    ]
    got = repo.run("fsck", "--digests")
    assert got.code == 1 and f"problem: {where}: its bytes hash to" in got.out
    repo.ok("tag", "-d", "lie")
    repo.ok("fsck", "--digests")


def lying_entries(forge: Forge) -> dict[str, Entry]:
    """Entries whose own size or digest a reader can see is false without their bytes."""
    other = hash_bytes(b"other\n")
    one = forge.chunk(b"hello\n")
    return {
        "one-chunk": Entry(b"a.txt", Kind.FILE, 0o644, 6, 0, other, (ChunkRef(one, 6),)),
        "empty": Entry(b"empty", Kind.FILE, 0o644, 0, 0, other),
        "link": Entry(b"ln", Kind.SYMLINK, 0o777, 999_999, 0, target=b"a.txt"),
    }


@pytest.mark.parametrize(
    ("lie", "name"), [("one-chunk", "a.txt"), ("empty", "empty"), ("link", "ln")]
)
def test_an_entry_lying_about_its_digest_or_size_is_refused(
    tmp_path: Path, lie: str, name: str
) -> None:
    """A file of one chunk has that chunk's id as its digest (the BLAKE3 of the same
    bytes), an empty file the BLAKE3 of nothing, and a link its target's length as its
    size. A forged version breaking these was cloned: the checkout wrote files whose
    bytes were not the digest `dvfs show` gives as their hash, and a link `dvfs status`
    called modified at once. It is refused, naming the entry."""
    forge = Forge(tmp_path / "evil")
    v1 = good_v1(forge)
    entry = lying_entries(forge)[lie]
    v2 = forge.version(nested(forge, [b"data"], [entry]), (v1,), 2)
    forge.publish(v2)
    refused_clone(tmp_path, forge, "malformed tree record", name, forge.url)


def test_a_clone_does_not_write_a_file_whose_bytes_are_not_its_digest(tmp_path: Path) -> None:
    """A file of two chunks whose version claims another file's digest: each chunk is
    its id, so the clone wrote the file, and `dvfs show` gave a hash its bytes do not
    have. The clone restores the other files and fails that one, naming it."""
    forge = Forge(tmp_path / "evil")
    a, b = b"A" * 1000, b"B" * 1000
    refs = (ChunkRef(forge.chunk(a), 1000), ChunkRef(forge.chunk(b), 1000))
    two = Entry(b"two.bin", Kind.FILE, 0o644, 2000, 0, hash_bytes(b"A" * 2000), refs)
    forge.publish(
        forge.version(nested(forge, [b"data"], [two, file_entry(b"z", forge.chunk(b"z"), 1)]))
    )
    r = run(tmp_path, "clone", forge.url, "b")
    line = assert_error(r, "could not restore data/two.bin", "the digest the version records")
    assert "nothing was written" in line, line
    assert not (tmp_path / "b" / "data" / "two.bin").exists()
    assert (tmp_path / "b" / "data" / "z").read_bytes() == b"z"


# ------------------------------------------------------------------- ref names


def test_odd_remote_ref_names_are_skipped_with_a_warning(tmp_path: Path) -> None:
    forge = Forge(tmp_path / "evil")
    v1 = good_v1(forge)
    heads: dict[str, bytes | str] = {"main": v1, "we ird": v1, "esc\x1b[2Jape": v1, "HEAD": v1}
    heads["dev"] = "not an id"
    forge.publish(heads, tags={"ok": v1, "v1": v1, v1.hex(): v1, "x..y": v1})
    r = assert_ok(run(tmp_path, "clone", forge.url, "b"))
    warned = "\n".join(warnings_of(r))
    for shown in ("'we ird'", '"esc\\033[2Jape"', "'HEAD'", "'dev'", "'v1'", v1.hex(), "'x..y'"):
        assert shown in warned, r
    assert "\x1b" not in r.err  # quoted, never raw
    assert len(warnings_of(r)) == 7, r
    b = Repo(tmp_path / "b")
    assert sorted(Repository(b.root).refs.tags()) == ["ok"]
    assert sorted(Repository(b.root).refs.names("remotes")) == ["origin/main"]
    r = b.ok("fetch")
    assert len(warnings_of(r)) == 7, r
    b.fsck_clean()


def test_more_refs_than_any_remote_holds_are_refused_in_plain_words(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Past the bound on refs (lowered here: 100,001 files take half a minute to list):
    one line naming them as tags or branches, and what to do."""
    monkeypatch.setattr("vfs.remote.reader.MAX_REFS", 3)
    forge = Forge(tmp_path / "evil")
    v1 = good_v1(forge)
    forge.publish({f"b{n}": v1 for n in range(4)}, tags={f"t{n}": v1 for n in range(4)})
    remote = RemoteRepo(connect(RemoteSpec("origin", forge.url), 2), None)
    for kind, what in (("tags", "tags"), ("heads", "branches")):
        with pytest.raises(RemoteError) as caught:
            remote.refs(kind)
        line = str(caught.value)
        assert f"more than 3 {what}" in line and f"refs/{kind}/" in line, line


def test_a_push_of_a_new_branch_lists_the_remote_branches_within_the_bound(
    tmp_path: Path,
) -> None:
    """Pushing a new branch lists the remote's branches (a name and a folder of it
    clash): that listing is bounded as every listing of refs is (``MAX_REFS``, lowered
    here in the dvfs process), one line past it, nothing pushed."""
    forge = Forge(tmp_path / "evil")
    v1 = good_v1(forge)
    forge.publish({f"b{n}": v1 for n in range(4)})
    (tmp_path / "a").mkdir()
    a = Repo(tmp_path / "a")
    a.ok("init")
    a.ok("remote", "add", "origin", forge.url)
    commit_files(a, {"f": "x"}, "first")
    lowered = (
        "import sys, vfs.remote.layout as layout\n"
        "layout.MAX_REFS = 3\n"
        "from vfs.cli import main\n"
        "sys.argv = ['dvfs', *sys.argv[1:]]\n"
        "main()\n"
    )
    proc = run_as_dvfs(a.root, lowered, "push")
    assert_error(
        Result(("push",), proc.returncode, proc.stdout.encode(), proc.stderr), "more than 3"
    )
    assert sorted(p.name for p in (forge.root / "refs" / "heads").iterdir()) == [
        f"b{n}" for n in range(4)
    ]
    a.fsck_clean()


def test_index_segments_past_their_total_bound_are_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each segment under its own bound, together past the total (lowered here: a
    gibibyte of segments takes long to write): one line, and no more than the bound is
    read from the remote, with or without the first segments cached."""
    forge = Forge(tmp_path / "evil")
    forge.publish(good_v1(forge))
    for n in range(3):
        forge.chunk(bytes([n]) * 100)
        forge.publish(good_v1(forge))
    sizes = [p.stat().st_size for p in (forge.root / "index").iterdir()]
    bound = sum(sizes) - 20
    monkeypatch.setattr("vfs.remote.reader.SEGMENTS_TOTAL_LIMIT", bound)
    for cache in (None, tmp_path / "cache", tmp_path / "cache"):
        meter = connect(RemoteSpec("origin", forge.url), 2)
        with pytest.raises(RemoteError) as caught:
            RemoteRepo(meter, cache).index()
        line = str(caught.value)
        assert f"more than {bound:,} bytes in all" in line and forge.url in line, line
        assert "\n" not in line
        assert meter.received <= bound + 1


def test_fsck_remote_reads_index_segments_no_further_than_their_total_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``dvfs fsck --remote`` read the segment that passes the total bound whole (up to
    ``SEGMENT_LIMIT``) before refusing; it reads no further than the bound now, as a
    fetch does."""
    forge = Forge(tmp_path / "evil")
    forge.publish(good_v1(forge))
    for n in range(3):
        forge.chunk(bytes([n]) * 100)
        forge.publish(good_v1(forge))
    bound = sum(p.stat().st_size for p in (forge.root / "index").iterdir()) - 20
    monkeypatch.setattr("vfs.remote.check.SEGMENTS_TOTAL_LIMIT", bound)
    meters: list[Meter] = []

    def kept(spec: RemoteSpec, jobs: int) -> Meter:
        meters.append(connect(spec, jobs))
        return meters[-1]

    monkeypatch.setattr("vfs.remote.check.connect", kept)
    with pytest.raises(RemoteError) as caught:
        (tmp_path / "here").mkdir()
        fsck_remote(Repository.init(tmp_path / "here"), RemoteSpec("origin", forge.url))
    line = str(caught.value)
    assert f"more than {bound:,} bytes in all" in line and forge.url in line, line
    others = sum(  # (the format record and the refs, read whole before the index)
        p.stat().st_size
        for p in files_under(forge.root)
        if p.is_file() and p.relative_to(forge.root).parts[0] in ("format", "refs")
    )
    index_read = meters[0].received - others
    assert index_read <= bound + 1, (index_read, bound)


def test_gc_manifests_past_their_total_bound_are_refused_unread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As index segments: each manifest under its own bound, together past the total
    (lowered here), is one line for every reader (a push, a prune, a remote gc), and
    no more than the bound is read."""
    forge = Forge(tmp_path / "evil")
    forge.publish(good_v1(forge))
    for n in range(3):
        packs = {os.urandom(32).hex() for _ in range(50)}
        forge.raw(f"gc/condemned-{n:016x}", encode_manifest(packs, set()))
    bound = sum(p.stat().st_size for p in (forge.root / "gc").iterdir()) - 20
    monkeypatch.setattr("vfs.remote.manifests.MANIFESTS_TOTAL_LIMIT", bound)
    meter = connect(RemoteSpec("origin", forge.url), 2)
    with pytest.raises(RemoteError) as caught:
        shunned(meter)
    line = str(caught.value)
    assert f"more than {bound:,} bytes in all" in line and forge.url in line, line
    assert meter.received <= bound + 1


def test_a_gc_lock_naming_an_impossible_pid_here_is_taken_over(tmp_path: Path) -> None:
    """A gc/lock claiming this host and a pid no process can have (the remote is
    damaged or hostile) ended a remote gc on "internal error (OverflowError ...)": its
    holder cannot be running, so the lock is stale and taken over."""
    forge = Forge(tmp_path / "evil")
    forge.publish(good_v1(forge))
    holder = {"host": socket.gethostname(), "pid": 2**64, "started": 0}
    forge.raw("gc/lock", json.dumps(holder).encode())
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    b = Repo(tmp_path / "b")
    assert b.json("gc", "--remote", "origin", "--json")["dead_packs"] == 0
    assert not (forge.root / "gc" / "lock").exists()
    b.fsck_clean()


def test_an_audit_listing_past_its_bound_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """As refs, segments and manifests: a remote listing more audit objects than the
    bound (lowered here) is one line for `dvfs audit --remote` and its verify, and for
    a push appending to the chain, not a listing held whole however long."""
    forge = Forge(tmp_path / "evil")
    forge.publish(good_v1(forge))
    for n in range(1, 5):
        forge.raw(audit_key(n), b"{}\n")
    monkeypatch.setattr("vfs.remote.audit.MAX_AUDIT_ENTRIES", 3)
    meter = connect(RemoteSpec("origin", forge.url), 2)
    for read in (
        lambda: remote_audit.remote_entries(meter),
        lambda: remote_audit.verify_remote(meter, None),
        lambda: remote_audit.append_remote(meter, None, "push", "refs/heads/x", None, None),
    ):
        with pytest.raises(RemoteError) as caught:
            read()
        line = str(caught.value)
        assert "lists more than 3 objects under audit/" in line and forge.url in line, line
    assert sorted(p.name for p in (forge.root / "audit").iterdir()) == [
        audit_key(n).split("/")[1] for n in range(1, 5)
    ]


def test_remote_tags_cannot_hijack_branches_versions_or_ids(tmp_path: Path) -> None:
    forge = Forge(tmp_path / "evil")
    v1 = good_v1(forge)
    v2 = forge.version(forge.tree([file_entry(b"f", forge.chunk(b"two"), 3)]), (v1,), 2)
    forge.publish(v2, tags={"main": v1, "origin/main": v1, "v1": v2, v1.hex(): v2, "V2": v1})
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    b = Repo(tmp_path / "b")
    assert b.show("main")["id"] == v2.hex()  # the branch, not the tag called main
    assert b.show("origin/main")["id"] == v2.hex()  # the remote's branch
    assert b.show("v1")["id"] == v1.hex()
    assert b.show(v1.hex())["id"] == v1.hex()
    assert b.show(v1.hex()[:8])["id"] == v1.hex()
    assert b.show("V2")["id"] == v1.hex()  # an ordinary tag: not vN, which is lowercase
    # (origin/main is not copied: `dvfs tag origin/main` is refused here too)
    assert sorted(Repository(b.root).refs.tags()) == ["V2", "main"]
    b.fail("tag", "ABCDEF", fragments=("cannot be a tag name",))  # reads as an id prefix
    b.fsck_clean()


def test_a_remote_branch_beside_its_own_folder(tmp_path: Path, s3_env: S3Server) -> None:
    url = f"s3://{s3_env.make_bucket()}/shared"
    forge = Forge(tmp_path, open_backend(url, endpoint_url=s3_env.endpoint))
    v1 = good_v1(forge)
    forge.publish({"main": v1, "main/x": v1, "dev/a": v1})
    r = assert_ok(run(tmp_path, "clone", url, "b", "--endpoint-url", s3_env.endpoint))
    assert [w for w in warnings_of(r) if "'main/x' skipped: it clashes with branch 'main'" in w]
    b = Repo(tmp_path / "b")
    refs = Repository(b.root).refs
    assert sorted(refs.names("remotes")) == ["origin/dev/a", "origin/main"]

    # the remote replaces dev/a by dev: the local dev/ folder is in the way
    forge.backend.delete("refs/heads/dev/a")  # type: ignore[union-attr]
    forge.publish({"main": v1, "dev": v1})
    r = b.ok("fetch")
    assert [w for w in warnings_of(r) if "remote branch dev was not recorded" in w], r
    b.fsck_clean()


def test_refs_nested_beyond_any_name_are_skipped(tmp_path: Path) -> None:
    forge = Forge(tmp_path / "evil")
    v1 = good_v1(forge)
    forge.publish({"main": v1, "/".join(["a"] * 300): v1})
    r = assert_ok(run(tmp_path, "clone", forge.url, "c"))
    assert "remote branch 'a/a/" in r.err and "skipped" in r.err, r.err
    c = Repo(tmp_path / "c")
    assert [b["name"] for b in c.json("branch", "-r", "--json")] == ["origin/main"]
    c.fsck_clean()


def test_the_public_fetch_a_mount_uses_skips_odd_refs(tmp_path: Path) -> None:
    forge = Forge(tmp_path / "evil")
    v1 = good_v1(forge)
    forge.publish({"main": v1, "we ird": v1}, tags={"v9": v1})
    repo = Repository.init(tmp_path / "meta")
    spec = RemoteSpec("origin", forge.url)
    with repo.locked():
        got = fetch_locked(repo, spec, connect(spec, 2), 2)
    assert got.heads == {"main": v1}
    assert got.tags == {}
    assert len(got.transfer.warnings) == 2


# ------------------------------------------------------------------- quoting a path


def test_reserved_names_are_named_with_control_characters_quoted(tmp_path: Path) -> None:
    forge = Forge(tmp_path / "evil")
    link = Entry(b".git", Kind.SYMLINK, 0o777, 4, 0, target=b"/etc")
    forge.publish(forge.version(nested(forge, [b"a\nb"], [link])))
    line = refused_clone(tmp_path, forge, 'v1 holds "a\\nb/.git"')
    assert "\n" not in line.strip()
    assert os.listdir(tmp_path) == ["evil"]


# ------------------------------------------------------------------- bounds on reads


def test_a_fifo_in_place_of_a_record_or_a_pack_is_refused_at_once(tmp_path: Path) -> None:
    for victim in ("format", "pack", "index"):
        forge = Forge(tmp_path / f"evil-{victim}")
        forge.publish(good_v1(forge))
        path = {
            "format": forge.root / "format",
            "pack": next((forge.root / "packs").iterdir()),
            "index": next((forge.root / "index").iterdir()),
        }[victim]
        path.unlink()
        os.mkfifo(path)
        before = files_under(tmp_path)
        r = run(tmp_path, "clone", forge.url, "victim", timeout=30)  # a hang fails here
        assert_error(r, "is not a regular file")
        assert files_under(tmp_path) == before


def test_a_fifo_or_a_link_among_the_index_segments_stops_a_clone_saying_what_to_do(
    tmp_path: Path,
) -> None:
    """A FIFO, or a link out of the remote, under an index segment's name beside the
    real segment: a clone neither waited on the FIFO nor followed the link, but its one
    line ("... is not a regular file: refusing to read it") said nothing of what to do.
    It names the object and says to delete it on the remote; once that is done, the
    clone works."""
    forge = Forge(tmp_path / "evil")
    forge.publish(good_v1(forge))
    fifo, link = forge.root / "index" / ("e" * 64), forge.root / "index" / ("f" * 64)
    (tmp_path / "outside").write_bytes(b"not a segment")
    for odd, said in ((fifo, "not a regular file"), (link, "symbolic link")):
        if odd == fifo:
            os.mkfifo(odd)
        else:
            odd.symlink_to(tmp_path / "outside")
        before = files_under(tmp_path)
        r = run(tmp_path, "clone", forge.url, "victim", timeout=30)  # a hang fails here
        assert_error(r, said, f"index/{odd.name}", "delete it on the remote")
        assert files_under(tmp_path) == before
        odd.unlink()
    assert (tmp_path / "outside").read_bytes() == b"not a segment"
    assert_ok(run(tmp_path, "clone", forge.url, "c"))
    c = Repo(tmp_path / "c")
    assert c.read("data/a.txt") == b"hello\n"
    c.fsck_clean()


def test_a_huge_sparse_record_is_refused_from_its_size(tmp_path: Path) -> None:
    forge = Forge(tmp_path / "evil")
    forge.publish(good_v1(forge))
    segment = forge.root / "index" / ("0" * 64)
    for path in (segment, forge.root / "format"):
        with open(path, "wb") as f:
            f.truncate(20 << 30)  # 20 GiB of holes
        fragment = "65,536 bytes" if path.name == "format" else "268,435,456 bytes"
        r = run(tmp_path, "clone", forge.url, "victim", timeout=30)
        assert_error(r, f"holds more than {fragment}", path.name)
        assert not (tmp_path / "victim").exists()


def test_a_huge_record_is_refused_unread_through_the_meter(tmp_path: Path) -> None:
    """Commands read a remote through a ``Meter``, which did not forward ``get_small``:
    the default read the bound and a byte (256 MiB for an index segment) of a huge file
    on a directory remote before refusing it. The directory backend refuses it from its
    size now, as it says, with nothing read."""
    forge = Forge(tmp_path / "evil")
    forge.publish(good_v1(forge))
    for seg in (forge.root / "index").iterdir():
        seg.unlink()
    with open(forge.root / "index" / ("0" * 64), "wb") as f:
        f.truncate(20 << 30)  # 20 GiB of holes
    meter = connect(RemoteSpec("origin", forge.url), 2)
    with pytest.raises(RemoteError, match="holds more than 268,435,456 bytes"):
        RemoteRepo(meter, None).index()
    assert meter.received == 0, meter.received


@pytest.mark.parametrize(
    ("sizes", "fragment"),
    [((0, 0, 0), "min is 0, outside"), ((1 << 40, 1 << 40, 1 << 40), "min is 1099511627776")],
)
def test_absurd_chunk_sizes_are_refused(
    sizes: tuple[int, int, int], fragment: str, tmp_path: Path
) -> None:
    forge = Forge(tmp_path / "evil")
    forge.publish(good_v1(forge))
    record = {"algorithm": "fastcdc", "min": sizes[0], "avg": sizes[1], "max": sizes[2],
              "normalization": 1}  # fmt: skip
    text = json.dumps({"format": 1, "hash": "blake3-256", "chunker": record})
    (forge.root / "format").write_text(text)
    refused_clone(tmp_path, forge, "bad chunker settings", fragment)
    # a repository whose own record was changed is refused the same way
    repo = tmp_path / "repo"
    assert_ok(run(tmp_path, "init", str(repo)))
    (repo / ".dvfs" / "format").write_text(text)
    assert_error(run(repo, "status"), "bad chunker settings", fragment)


def test_a_1500_level_tree_from_a_remote_can_be_looked_at(tmp_path: Path) -> None:
    forge = Forge(tmp_path / "deep")
    depth = 1500
    names = [b"d"] * depth
    v1 = forge.version(nested(forge, names, [file_entry(b"f", forge.chunk(b"one"), 3)]))
    v2 = forge.version(nested(forge, names, [file_entry(b"f", forge.chunk(b"two"), 3)]), (v1,), 2)
    forge.publish(v2)
    assert_ok(run(tmp_path, "clone", forge.url, "b", "--no-checkout"))
    b = Repo(tmp_path / "b")
    deep = "/".join(["d"] * depth) + "/f"
    assert list(b.show("v2")["files"]) == [deep]
    listing = b.json("ls", "v2:" + "/".join(["d"] * depth), "--json")
    assert [e["name"] for e in listing] == ["f"]
    changes = b.json("diff", "v1", "v2", "--json")["changes"]
    assert [(c["path"], c["status"]) for c in changes] == [(deep, "modified")]
    b.fsck_clean()
    # checking it out either works or fails with one clean line
    try:
        r = run(tmp_path, "clone", forge.url, "c")
        if r.code == 0:
            assert (tmp_path / "c" / deep).read_bytes() == b"two"
            Repo(tmp_path / "c").fsck_clean()
        else:
            assert_error(r)
    finally:  # shutil.rmtree (pytest's clean-up) recurses, and would fail on this tree
        subprocess.run(["rm", "-rf", str(tmp_path / "c")], check=True)


# ------------------------------------------------------------------- expansion


def subtree_bomb(forge: Forge, levels: int) -> bytes:
    """A root tree whose every level names the level below twice: 2**levels files."""
    tree = forge.tree([file_entry(b"f", forge.chunk(b"x" * 4096), 4096)])
    for _ in range(levels):
        tree = forge.tree([dir_entry(b"a", tree), dir_entry(b"b", tree)])
    return tree


def test_a_tree_repeating_itself_at_every_level_is_not_expanded(tmp_path: Path) -> None:
    forge = Forge(tmp_path / "evil")
    forge.publish(forge.version(subtree_bomb(forge, 20)))
    line = refused_clone(tmp_path, forge, "v1", "4.0 GiB in 1,048,576 files", "--yes")
    assert "nothing was written" in line
    # a pull of it into an existing clone is refused the same way, moving nothing
    ok = Forge(tmp_path / "ok")
    v1 = good_v1(ok)
    ok.publish(v1)
    assert_ok(run(tmp_path, "clone", ok.url, "b"))
    b = Repo(tmp_path / "b")
    ok.publish(ok.version(subtree_bomb(ok, 20), (v1,), 2))
    b.fail("pull", fragments=("v2", "1,048,576 files", "--yes"))
    assert b.head_id() == v1.hex()
    assert sorted(os.listdir(b.root)) == [".dvfs", "data"]
    b.fsck_clean()


def repeated_chunk(forge: Forge, size: int, times: int) -> bytes:
    """A version holding one file made of one chunk of ``size`` bytes, ``times`` over."""
    data = b"y" * size
    block = forge.chunk(data)
    chunks = tuple(ChunkRef(block, size) for _ in range(times))
    whole = hasher()
    for _ in range(times):
        whole.update(data)
    big = Entry(b"big", Kind.FILE, 0o644, size * times, 0, whole.digest(), chunks)
    return forge.version(forge.tree([big]))


# ``EXPANSION_FLOOR_BYTES`` (256 MiB) lowered to 4 MiB in the dvfs process: a file past
# the floor is refused, and written with --yes, at the cost of a few MiB.
LOWERED_FLOOR = (
    "import sys, vfs.remote.receive as receive\n"
    "receive.EXPANSION_FLOOR_BYTES = 4 << 20\n"
    "from vfs.cli import main\n"
    "sys.argv = ['dvfs', *sys.argv[1:]]\n"
    "main()\n"
)


def clone_past_lowered_floor(tmp_path: Path, url: str, *args: str) -> Result:
    """``dvfs clone URL ARGS`` in ``tmp_path``, with the floor lowered (LOWERED_FLOOR)."""
    proc = run_as_dvfs(tmp_path, LOWERED_FLOOR, "clone", url, *args)
    return Result(("clone", url, *args), proc.returncode, proc.stdout.encode(), proc.stderr)


def test_a_chunk_repeated_into_a_huge_file_needs_yes(tmp_path: Path) -> None:
    big = Forge(tmp_path / "big")
    big.publish(repeated_chunk(big, 65536, 4300))  # 282 MB from a 64 KiB chunk, past the floor
    refused_clone(tmp_path, big, "268.8 MiB in 1 file,", "4,300 times the 64.0 KiB")
    # the same past the lowered floor: refused, nothing written; written whole with --yes
    forge = Forge(tmp_path / "evil")
    forge.publish(repeated_chunk(forge, 4096, 1100))  # 4.5 MB from a 4 KiB chunk
    before = files_under(tmp_path)
    r = clone_past_lowered_floor(tmp_path, forge.url, "b")
    assert_error(r, "4.3 MiB in 1 file,", "1,100 times the 4.0 KiB", "--yes")
    assert files_under(tmp_path) == before
    assert_ok(clone_past_lowered_floor(tmp_path, forge.url, "b", "--yes"))
    assert (tmp_path / "b" / "big").read_bytes() == b"y" * 4096 * 1100
    Repo(tmp_path / "b").fsck_clean()


# ------------------------------------------------------------------- links in a remote


def test_a_directory_remote_with_linked_folders_gets_no_write_outside(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    remote = tmp_path / "remote"
    (remote / "refs").mkdir(parents=True)
    os.symlink(outside, remote / "packs")
    a = make_repo("a")
    a.write("d/x", b"data\n")
    a.ok("add", "d")
    a.commit("one")
    a.ok("remote", "add", "origin", remote.as_uri())
    # (a remote made by a dvfs: a folder with no format record is never made one)
    params = Repository(a.root).chunker.params
    (remote / "format").write_text(format_record(params))
    a.fail("push", fragments=("packs", "is a symbolic link"))
    assert list(outside.iterdir()) == []
    assert not (remote / "refs" / "heads").exists()  # no ref moved

    (remote / "packs").unlink()
    os.symlink(outside, remote / "refs" / "heads")
    a.fail("push", fragments=("refs/heads", "is a symbolic link"))
    assert list(outside.iterdir()) == []
    (outside / "main").write_text("0" * 64 + "\n")
    assert_error(run(tmp_path, "clone", remote.as_uri(), "c"), "refs/heads", "symbolic link")
    assert not (tmp_path / "c").exists()
    a.fsck_clean()


def test_a_link_among_a_directory_remotes_refs_is_skipped_not_fatal(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A teammate's `ln -s main refs/heads/stable` (as git's symbolic refs): that ref is
    skipped with a warning, never read through, and every clone still fetches, pulls,
    pushes and clones; a link in place of refs/heads itself still stops them."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "main").write_text("0" * 64 + "\n")
    remote = tmp_path / "remote"
    a = make_repo("a")
    a.write("d/x", b"data\n")
    a.ok("add", "d")
    v1 = a.commit("one")
    a.ok("remote", "add", "origin", remote.as_uri())
    a.ok("push")
    os.symlink("main", remote / "refs" / "heads" / "stable")
    os.symlink(outside, remote / "refs" / "heads" / "elsewhere")
    r = assert_ok(run(tmp_path, "clone", remote.as_uri(), "c"))
    assert "remote branch 'stable' skipped" in r.err and "is a symbolic link" in r.err
    assert "remote branch 'elsewhere' skipped" in r.err
    c = Repo(tmp_path / "c")
    assert [b["name"] for b in c.json("branch", "-r", "--json")] == ["origin/main"]
    v2 = commit_files(c, {"d/x": b"two\n"}, "two")
    c.ok("push")
    assert "skipped" in a.ok("pull").err
    assert a.head_id() == v2 != v1
    assert (outside / "main").read_text() == "0" * 64 + "\n"
    assert (remote / "refs" / "heads" / "stable").is_symlink()
    a.fsck_clean()
    c.fsck_clean()


def test_a_folder_too_deep_among_a_directory_remotes_refs_is_skipped_not_fatal(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A folder 130 levels deep under refs/heads (no ref name is that long) stopped every
    clone, fetch, `fsck --remote` and gc with "refusing to list it". It is now skipped
    with a warning like any other bad ref; fsck names it with how to mend it by hand, and
    gc stops before changing anything, as for any ref it cannot read."""
    remote = tmp_path / "remote"
    a = make_repo("a")
    a.write("d/x", b"data\n")
    a.ok("add", "d")
    a.commit("one")
    a.ok("remote", "add", "origin", remote.as_uri())
    a.ok("push")
    deep = remote.joinpath("refs", "heads", *["d"] * 130)
    deep.mkdir(parents=True)
    (deep / "x").write_text("0" * 64 + "\n")
    r = assert_ok(run(tmp_path, "clone", remote.as_uri(), "c"))
    assert "remote branch 'd/d/" in r.err and "skipped: not a valid branch name" in r.err
    c = Repo(tmp_path / "c")
    assert [b["name"] for b in c.json("branch", "-r", "--json")] == ["origin/main"]
    v2 = commit_files(c, {"d/x": b"two\n"}, "two")
    c.ok("push")
    assert "skipped" in a.ok("pull").err
    assert a.head_id() == v2
    r = a.run("fsck", "--remote", "origin")
    assert r.code == 1 and "1 problem" in r.out and "Traceback" not in r.err, str(r)
    assert "deeper than 128 folders" in r.out and "rename it" in r.out, str(r)
    assert_error(run(a.root, "gc", "--remote", "origin"), "nothing was changed", "rename it")
    assert deep.joinpath("x").exists()
    a.fsck_clean()
    c.fsck_clean()


@pytest.mark.parametrize("odd", ["fifo", "link"])
def test_a_fetched_branch_that_became_unreadable_is_skipped_not_fatal(
    odd: str, make_repo: RepoFactory, tmp_path: Path
) -> None:
    """This clone has origin/stable; on the remote, stable became a FIFO or a link. The
    fetch skips it with a warning (it is there: not named gone, not pruned)."""
    remote = tmp_path / "remote"
    a = make_repo("a")
    a.write("d/x", b"data\n")
    a.ok("add", "d")
    a.commit("one")
    a.ok("branch", "stable")
    a.ok("remote", "add", "origin", remote.as_uri())
    a.ok("push", "--all")
    ref = remote / "refs" / "heads" / "stable"
    ref.unlink()
    if odd == "fifo":
        os.mkfifo(ref)
    else:
        os.symlink("main", ref)
    r = a.run("fetch", "--prune", timeout=30)
    assert_ok(r)
    assert "remote branch 'stable' skipped" in r.err and "deleted" not in r.out
    assert [b["name"] for b in a.json("branch", "-r", "--json")] == ["origin/main", "origin/stable"]
    a.fsck_clean()


def exchange(a: Path, b: Path) -> None:
    """Swap two names atomically (renameat2 with RENAME_EXCHANGE)."""
    libc = ctypes.CDLL(None, use_errno=True)
    at_fdcwd, rename_exchange = -100, 2
    if libc.renameat2(at_fdcwd, bytes(a), at_fdcwd, bytes(b), rename_exchange) != 0:
        raise OSError(ctypes.get_errno(), "renameat2")


def test_a_folder_swapped_for_a_link_during_puts_is_never_written_through(
    tmp_path: Path,
) -> None:
    outside = tmp_path / "outside"
    outside.mkdir()
    backend = LocalBackend(tmp_path / "remote", create=True)
    packs = backend.root / "packs"
    link = backend.root / ".link"
    packs.mkdir()
    os.symlink(outside, link)
    attempted = threading.Semaphore(0)
    stop = threading.Event()

    def swap() -> None:
        """Make ``packs`` a link to ``outside`` for two put attempts at a time."""
        while not stop.is_set():
            exchange(packs, link)
            for _ in range(2):
                while not attempted.acquire(timeout=0.1) and not stop.is_set():
                    pass
            exchange(packs, link)

    swapper = threading.Thread(target=swap)
    swapper.start()
    refused = 0
    try:
        for i in range(100):
            try:
                backend.put(f"packs/p{i}", b"payload")
            except RemoteError as exc:
                assert "symbolic link" in str(exc)
                refused += 1
            attempted.release()
    finally:
        stop.set()
        swapper.join()
    assert list(outside.iterdir()) == []
    assert refused > 0


def test_a_1100_level_tree_committed_here_can_be_looked_at(repo: Repo) -> None:
    depth = 1100
    deep = "/".join(["d"] * depth)
    fd = os.open(repo.root, os.O_RDONLY)
    try:
        for _ in range(depth):  # os.makedirs recurses: one level at a time
            os.mkdir("d", dir_fd=fd)
            fd, parent = os.open("d", os.O_RDONLY, dir_fd=fd), fd
            os.close(parent)
        for version in (b"one", b"two"):
            with open(
                os.open("f", os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644, dir_fd=fd), "wb"
            ) as f:
                f.write(version)
            repo.ok("add", "d")
            repo.commit(version.decode())
    finally:
        os.close(fd)
    try:
        assert list(repo.show("v2")["files"]) == [deep + "/f"]
        assert [e["name"] for e in repo.json("ls", f"v1:{deep}", "--json")] == ["f"]
        changes = repo.json("diff", "v1", "v2", "--json")["changes"]
        assert [(c["path"], c["status"]) for c in changes] == [(deep + "/f", "modified")]
        assert repo.fsck_clean()["trees"] == 2 * (depth + 1)  # the root and depth levels, twice
    finally:  # shutil.rmtree (pytest's clean-up) recurses, and would fail on this tree
        subprocess.run(["rm", "-rf", str(repo.root / "d")], check=True)


def test_more_packs_than_any_remote_holds_are_refused_in_one_line(tmp_path: Path) -> None:
    """The listing of packs/ read by ``fsck --remote``, ``gc --remote`` and ``store
    prune`` is bounded (``MAX_PACKS``, lowered here in the dvfs process: ten million
    files take long to make): past it each stops in one line naming the remote, and
    nothing is changed."""
    forge = Forge(tmp_path / "evil")
    for n in range(3):
        forge.chunk(bytes([n]) * 100)
        forge.publish(good_v1(forge))
    assert_ok(run(tmp_path, "clone", forge.url, "b"))
    b = Repo(tmp_path / "b")
    lowered = (
        "import sys, vfs.remote.layout as layout\n"
        "layout.MAX_PACKS = 2\n"
        "from vfs.cli import main\n"
        "sys.argv = ['dvfs', *sys.argv[1:]]\n"
        "main()\n"
    )
    packs = sorted((forge.root / "packs").rglob("*"))
    for args in (("fsck", "--remote"), ("gc", "--remote", "origin"), ("store", "prune")):
        proc = run_as_dvfs(b.root, lowered, *args)
        r = Result(args, proc.returncode, proc.stdout.encode(), proc.stderr)
        assert_error(r, "more than 2 packs", forge.url)
        assert sorted((forge.root / "packs").rglob("*")) == packs
    b.fsck_clean()


def test_a_directory_listing_of_packs_stops_reading_past_its_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A directory remote's folder was read whole and sorted before a listing gave its
    first name, so the bound on packs (``MAX_PACKS``, lowered here) came into force only
    once millions of names had been read into memory; an S3 listing is read a page at
    a time. A folder is read as it is listed now: one name past the bound, and one
    line."""
    monkeypatch.setattr("vfs.remote.layout.MAX_PACKS", 5)
    root = tmp_path / "remote"
    (root / "packs").mkdir(parents=True)
    for n in range(200):
        (root / "packs" / f"{n:064x}").write_bytes(b"")
    read: list[str] = []
    scandir = os.scandir

    class Counted:
        """A directory's entries, each name noted as it is read."""

        def __init__(self, fd: int) -> None:
            self.entries = scandir(fd)

        def __iter__(self) -> Counted:
            return self

        def __next__(self) -> os.DirEntry[str]:
            entry = next(self.entries)
            read.append(entry.name)
            return entry

        def __enter__(self) -> Counted:
            return self

        def __exit__(self, *_: object) -> None:
            self.close()

        def close(self) -> None:
            self.entries.close()

    monkeypatch.setattr(os, "scandir", Counted)
    with pytest.raises(RemoteError) as caught:
        RemoteRepo(Meter(LocalBackend(root)), None).listed_packs()
    monkeypatch.undo()
    line = str(caught.value)
    assert "more than 5 packs" in line and root.as_uri() in line and "\n" not in line, line
    assert len(read) <= 6, len(read)


def test_naming_a_damaged_index_segment_reads_the_segments_within_their_bound(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An object that does not read as the index says, in a whole pack: the segment
    listing it is looked for to be named, and every segment was read again for it,
    without the bound on all segments together (``SEGMENTS_TOTAL_LIMIT``) that reading
    the index keeps. It stops at that bound, and names the remote's index instead."""
    forge = Forge(tmp_path / "remote")
    for i in range(20):
        forge.chunk(f"chunk {i}".encode() * 40)
        forge.publish("00" * 32)
    segments = sorted((forge.root / "index").iterdir())
    size = segments[0].stat().st_size
    monkeypatch.setattr(vfs.remote.reader, "SEGMENTS_TOTAL_LIMIT", 3 * size)
    ((pack_id, obj),) = decode_segment(segments[0].read_bytes(), segments[0].name)
    pack_size = (forge.root / "packs" / pack_id).stat().st_size
    meter = Meter(LocalBackend(forge.root))
    said = index_fault(meter, pack_id, obj._replace(offset=obj.offset + 1), pack_size)
    assert said is not None and "the remote's index on" in said, said
    assert meter.received <= pack_size + 4 * size, (meter.received, size)
