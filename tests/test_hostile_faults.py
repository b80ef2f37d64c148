"""Faults a hostile remote could cause that ``tests/support/hostile.py`` found, one test
each: every one ends in one clear line and a non-zero exit (or a verdict naming what is
wrong), never an internal error, with the repository ``dvfs fsck`` clean."""

from __future__ import annotations

from collections.abc import Collection
from pathlib import Path

import pytest

from tests.support import hostile
from tests.support.cli import (
    Repo,
    RepoFactory,
    assert_error,
    commit_files,
    make_repo_fixture,  # noqa: F401  (a fixture)
    run,
)
from tests.support.forge import Forge, file_entry, files_under, nested
from tests.support.remote import Remote
from tests.support.remote import remote_fixture as remote_fixture
from vfs.errors import FormatError
from vfs.model.ids import hash_bytes
from vfs.model.version_codec import Version, decode_version, encode_version
from vfs.remote.layout import GC_LOCK, audit_key
from vfs.repo.repository import Repository
from vfs.store.objects import ObjKind

NESTED = b"[" * 60_000  # JSON nested past Python's stack, well inside any record's bound


def pushed(make_repo: RepoFactory, tmp_path: Path) -> tuple[Repo, Path]:
    """A repository pushed twice to a directory remote (two audit entries there)."""
    repo = make_repo()
    remote = tmp_path / "remote"
    commit_files(repo, {"a": "1"}, "one")
    repo.ok("remote", "add", "origin", str(remote))
    repo.ok("push")
    commit_files(repo, {"a": "2"}, "two")
    repo.ok("push")
    return repo, remote


def entry_2_named_edited(repo: Repo) -> None:
    """`audit verify --remote` names entry 2 of origin's chain as edited, `audit
    --remote` lists entry 1 and names entry 2 as no entry; fsck is clean."""
    r = repo.run("audit", "verify", "--remote", "origin", "--json")
    assert r.code == 1, str(r)
    assert r.json()["problems"] == ["entry 2 is not an entry: it was edited"], str(r)
    r = repo.run("audit", "--remote", "origin")
    assert_error(r, "entry 2 of remote origin's audit chain is not an entry", code=1)
    assert [ln.split()[0] for ln in r.out.splitlines()] == ["1"]
    repo.fsck_clean()


def test_a_format_record_nested_past_the_stack_is_refused_in_one_line(tmp_path: Path) -> None:
    """A remote whose ``format`` record was 60,000 ``[`` made clone, fetch, push and
    mount say "internal error (RecursionError ...)", and ``vfs.Repo.remote`` raise
    RecursionError; it is a damaged format record like any other now."""
    import vfs

    forge = Forge(tmp_path / "evil")
    v1 = forge.version(nested(forge, [b"d"], [file_entry(b"a", forge.chunk(b"x"), 1)]))
    forge.publish(v1)
    forge.raw("format", NESTED)
    before = files_under(tmp_path)
    r = run(tmp_path, "clone", forge.url, "victim")
    assert_error(r, "format is damaged: it is not a dvfs format record")
    assert files_under(tmp_path) == before
    with pytest.raises(FormatError, match="not a dvfs format record"):
        vfs.Repo.remote(forge.url, cache_dir=tmp_path / "cache")


def test_an_audit_entry_nested_past_the_stack_is_named_as_edited(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """``dvfs audit verify --remote`` and ``dvfs audit --remote`` said "internal error
    (RecursionError ...)" for a remote entry of 200,000 ``[``; the verdict names the
    entry as edited, and the listing lists the others and names it."""
    repo, remote = pushed(make_repo, tmp_path)
    (remote / audit_key(2)).write_bytes(b"[" * 200_000)
    entry_2_named_edited(repo)


def test_a_gc_lock_nested_past_the_stack_is_a_lock_of_unknown_holder(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """``dvfs gc --remote`` said "internal error (RecursionError ...)" when the remote's
    ``gc/lock`` held JSON nested past the stack: it is a lock held by an unknown
    process now, refused as any fresh lock is."""
    repo, remote = pushed(make_repo, tmp_path)
    (remote / GC_LOCK).parent.mkdir(exist_ok=True)
    (remote / GC_LOCK).write_bytes(b"[" * 4000)  # (a lock is read up to 4 KiB)
    before = {p: p.read_bytes() for p in files_under(remote) if p.is_file()}
    assert_error(repo.run("gc", "--remote", "origin"), "is running (unknown)")
    assert {p: p.read_bytes() for p in files_under(remote) if p.is_file()} == before
    repo.fsck_clean()


def test_a_16_tib_sparse_ref_is_refused_from_its_size_by_push(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A directory remote's branch file made a 16 TiB sparse file kept ``dvfs push``
    reading it to its end (its ETag hashed every byte, hours of zeros); the push now
    refuses the ref from its size in one line and moves nothing."""
    repo, remote = pushed(make_repo, tmp_path)
    commit_files(repo, {"a": "3"}, "three")
    with open(remote / "refs/heads/main", "wb") as f:
        f.truncate((1 << 44) - (1 << 20))  # (ext4's largest file)
    line = assert_error(repo.run("push", timeout=60), "refs/heads/main", "holds more than")
    assert "damaged or hostile" in line
    assert (remote / "refs/heads/main").stat().st_size == (1 << 44) - (1 << 20)
    repo.fsck_clean()


def remote_main(repo: Repo) -> bytes | None:
    found = Repository(repo.root)
    try:
        return found.refs.get("refs/remotes/origin/main")
    finally:
        found.close()


def test_a_remote_branch_naming_a_tree_held_here_is_refused(
    make_repo: RepoFactory, remote: Remote
) -> None:
    """A remote's ``main`` rewritten to name the tree of its version (an object this
    clone holds, as a tree) was kept by ``dvfs fetch`` as ``origin/main``, unchecked
    because it was already stored: ``dvfs fsck`` then found the ref malformed and a
    pull failed. The fetch refuses it now and moves no ref (a directory remote and
    S3 alike)."""
    repo = make_repo()
    commit_files(repo, {"a": "1"}, "one")
    remote.add_to(repo)
    repo.ok("push")
    head = bytes.fromhex(repo.head_id())
    found = Repository(repo.root)
    try:
        tree = decode_version(found.store.get(head)).tree
    finally:
        found.close()
    remote.backend.put("refs/heads/main", tree.hex().encode() + b"\n")
    line = assert_error(repo.run("fetch"), "as a version, but it is a tree here")
    assert tree.hex()[:12] in line
    assert remote_main(repo) == head
    repo.fsck_clean()


def test_a_folder_naming_a_chunk_held_here_is_refused(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A forged version holding a folder whose subtree is a chunk this clone holds (the
    bytes of a file) was stored by ``dvfs fetch`` (the subtree was "already here") and
    ``origin/main`` moved to it, so ``dvfs fsck`` found the clone damaged. The fetch
    refuses it now, stores nothing and moves no ref."""
    repo, remote = pushed(make_repo, tmp_path)
    head = bytes.fromhex(repo.head_id())
    objects: hostile.Objects = []
    folder = [b"d", 1, 0o755, 1, 0, hash_bytes(b"2")]  # the chunk of file a
    root = hostile._tree(objects, [folder])
    forged = encode_version(Version(root, (head,), 3, "forged", "m <m@x>", 1))
    objects.append((hash_bytes(forged), ObjKind.VERSION, forged))
    hostile.publish(remote, objects)
    (remote / "refs/heads/main").write_text(hash_bytes(forged).hex() + "\n")
    assert_error(repo.run("fetch"), "as a tree, but it is a chunk here")
    assert remote_main(repo) == head
    repo.fsck_clean()


def test_an_audit_entry_longer_than_any_is_named_as_edited(
    make_repo: RepoFactory, tmp_path: Path
) -> None:
    """A remote audit entry made an 8 GiB sparse file made ``dvfs audit verify --remote``
    and ``dvfs audit --remote`` fail whole ("holds more than 1,048,576 bytes"), where
    checking the chain is what they are for: the verdict names the entry as edited now,
    and the listing lists the others and names it."""
    repo, remote = pushed(make_repo, tmp_path)
    with open(remote / audit_key(2), "r+b") as f:
        f.truncate(8 << 30)
    entry_2_named_edited(repo)


def test_chunks_a_remote_lacks_read_its_index_again_once_not_once_each(tmp_path: Path) -> None:
    """A forged tree naming thousands of chunks the remote lacks made a mount (or
    ``vfs.Repo.remote``) list and decode the remote's whole index again for each chunk
    read: 300 reads, 300 readings. A reading that finds the index as it was holds for
    the chunks missing after it (for ``read.REREAD_GAP`` seconds)."""
    from vfs.errors import ObjectMissing
    from vfs.remote.config import RemoteSpec, connect
    from vfs.remote.read import RemoteChunks
    from vfs.remote.reader import Located, RemoteRepo

    forge = Forge(tmp_path / "evil")
    held = forge.chunk(b"held")
    forge.publish(forge.version(nested(forge, [b"d"], [file_entry(b"a", held, 4)])))
    readings: list[int] = []

    class Counting(RemoteRepo):
        def index(self, avoid: Collection[str] = ()) -> dict[bytes, Located]:
            readings.append(1)
            return super().index(avoid)

    chunks = RemoteChunks(lambda: Counting(connect(RemoteSpec("origin", forge.url), 2), None))
    assert chunks.fetch(held) == b"held"
    for n in range(300):
        with pytest.raises(ObjectMissing):
            chunks.fetch(hash_bytes(b"missing %d" % n))
    assert len(readings) <= 3, len(readings)  # (the first, one that found nothing new)
    assert chunks.fetch(held) == b"held"
