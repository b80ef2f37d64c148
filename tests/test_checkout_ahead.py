"""Large files a checkout writes ahead, unnamed, while it decides (vfs.worktree.restore).

A checkout starts writing a large file that nothing stands at before it has decided
whether it may write anything at all. Until it has decided, that file has no name in
the working tree: a kill leaves nothing behind, a refusal leaves the tree as it was,
and a file whose data is damaged is reported as if it had been written the usual way.
Small files' chunks are read while the checkout's marks are synced, and nothing is
written before they are durable.
"""

from __future__ import annotations

import json
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import vfs.worktree.restore as restore_module
from tests.support.cli import (
    Repo,
    add_in_process,
    assert_error,
    commit_files,
    commit_in_process,
    go,
    make_repo_fixture,  # noqa: F401  (a fixture)
    repo_fixture,  # noqa: F401  (a fixture)
    run_python,
    spawn_ready,
)
from tests.support.data import rand
from tests.test_faults import flip_back, flip_byte_of
from vfs._os.beneath import Walker
from vfs.errors import DvfsError
from vfs.model.codec import Entry, encode_tree
from vfs.model.ids import hash_bytes
from vfs.model.version_codec import encode_version
from vfs.repo.repository import Repository
from vfs.repo.stage import Staged
from vfs.store.durable import is_tmp_leaf
from vfs.store.objects import ObjKind
from vfs.worktree.pools import Workers
from vfs.worktree.restore import LARGE_FILE, RESTORE_SPLIT, restore_many

MiB = 1 << 20


def _temporaries(root: Path) -> list[str]:
    """dvfs's temporary files in the working tree."""
    return [
        p.name
        for p in root.rglob(".tmp-*")
        if ".dvfs" not in p.parts and is_tmp_leaf(p.name.encode())
    ]


def _being_written(pid: int, directory: Path) -> bool:
    """Whether process ``pid`` holds a file of ``directory`` that has no name yet
    (an ``O_TMPFILE``: "DIR/#INODE (deleted)" in /proc), or a temporary file of dvfs
    is there: either way, a large file is being written into it."""
    if _temporaries(directory):
        return True
    prefix = f"{directory}/#"
    fds = Path(f"/proc/{pid}/fd")
    try:
        names = os.listdir(fds)
    except FileNotFoundError:
        return False
    for n in names:
        try:
            target = os.readlink(fds / n)
        except OSError:
            continue
        if target.startswith(prefix) and target.endswith(" (deleted)"):
            return True
    return False


def test_a_checkout_killed_while_it_writes_a_large_file_leaves_nothing_behind(repo: Repo) -> None:
    """kill -9 while the large file is being written: no temporary file stays in the
    working tree (the file had no name yet), status says what is there, fsck is clean,
    and the next checkout restores it."""
    big = rand(6 * LARGE_FILE, seed=11)  # 48 MiB: slow enough to be caught being written
    commit_files(repo, {"d/big.bin": big, "d/small.txt": "small"}, "base")
    (repo.root / "d" / "big.bin").unlink()
    proc = spawn_ready(repo.root, "checkout", "HEAD")
    go(proc)
    while not _being_written(proc.pid, repo.root / "d"):
        assert proc.poll() is None, proc.communicate()
    proc.kill()
    proc.communicate()
    assert _temporaries(repo.root) == []
    there = (repo.root / "d" / "big.bin").exists()
    assert not there or repo.read("d/big.bin") == big  # (named only once whole)
    st = repo.status()
    assert st["untracked"] == [] and st["modified"] == []
    assert st["deleted"] == ([] if there else ["d/big.bin"])
    repo.fsck_clean()
    repo.ok("checkout", "HEAD")
    assert repo.read("d/big.bin") == big
    st = repo.status()
    assert st["deleted"] == [] and st["modified"] == [] and st["untracked"] == []
    repo.fsck_clean()


@pytest.mark.parametrize("name", ["d/big.bin", "big.bin"])
def test_a_refused_checkout_leaves_no_large_file(repo: Repo, name: str) -> None:
    """A checkout refused over an uncommitted change writes nothing: the large file it
    began to write ahead (in a directory, or at the top) is not in the tree, nor any
    temporary file."""
    big = rand(LARGE_FILE + MiB, seed=12)
    commit_files(repo, {name: big, "d/a.txt": "committed"}, "base")
    (repo.root / name).unlink()
    repo.write("d/a.txt", "my change")
    r = repo.run("checkout", "HEAD")
    assert_error(r, "d/a.txt")
    assert not (repo.root / name).exists()
    assert _temporaries(repo.root) == []
    # nor the record of a checkout under way, its marker, or their temporary files
    # (written while it decided: vfs.ops.checkout._Marks)
    left = {p.name for p in (repo.root / ".dvfs").iterdir()}
    assert not {n for n in left if n.startswith(".tmp-")} | (left & {"checking-out", "restoring"})
    assert repo.read("d/a.txt") == b"my change"
    st = repo.status()
    assert st["deleted"] == [name] and st["modified"] == ["d/a.txt"]
    repo.fsck_clean()


def test_a_large_file_restored_keeps_its_mode_and_mtime(repo: Repo) -> None:
    """The file is named with the version's permission bits and mtime, and the index
    records its stat: status after the checkout is clean."""
    big = rand(LARGE_FILE + MiB, seed=13)
    path = repo.write("run.bin", big)
    path.chmod(0o755)
    os.utime(path, ns=(1_600_000_000_123_456_789, 1_600_000_000_123_456_789))
    add_in_process(repo, "run.bin")
    commit_in_process(repo, "big")
    path.unlink()
    repo.ok("checkout", "HEAD")
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) & 0o100, oct(st.st_mode)
    assert st.st_mtime_ns == 1_600_000_000_123_456_789
    assert path.read_bytes() == big
    s = repo.status()
    assert s["deleted"] == [] and s["modified"] == [] and s["untracked"] == []
    repo.fsck_clean()


@pytest.mark.parametrize("name", ["d/big.bin", "big.bin"])
def test_a_damaged_large_file_is_reported_and_the_others_restored(repo: Repo, name: str) -> None:
    """A chunk of the large file that reads back wrong fails that file alone, with the
    usual line naming it; the other files are restored and no temporary file stays."""
    damaged_large_file_is_reported(repo, name)


def damaged_large_file_is_reported(repo: Repo, name: str) -> None:
    """The damaged large file's check (also run on a filesystem that shares blocks:
    test_restore_shared): a byte of a pack flipped, the checkout fails that file alone,
    naming the damaged object (not a false digest of the version: the chunks of a file
    written through the page cache are proven by its digest, then each is checked to
    say which is bad), restores the others, leaves no temporary file, and brings the
    file back once the pack is mended."""
    big = rand(LARGE_FILE + MiB, seed=14)
    commit_files(repo, {name: big, "d/a.txt": "a"}, "base")
    for rel in (name, "d/a.txt"):
        (repo.root / rel).unlink()
    where = flip_byte_of(repo.root / ".dvfs" / "objects", big[4 * MiB : 4 * MiB + 4096])
    line = assert_error(repo.run("checkout", "HEAD"), "could not restore", name)
    assert "is corrupt" in line and "digest the version records" not in line, line
    assert not (repo.root / name).exists()
    assert repo.read("d/a.txt") == b"a"
    assert _temporaries(repo.root) == []
    flip_back(*where)
    repo.ok("checkout", "HEAD")
    assert repo.read(name) == big
    repo.fsck_clean()


@pytest.mark.parametrize(
    ("name", "size"), [("d/big.bin", LARGE_FILE + MiB), ("big.bin", LARGE_FILE + MiB),
                       ("d/mid.bin", 3 * MiB)]
)  # fmt: skip
def test_a_file_whose_bytes_are_not_its_digest_is_not_written(
    repo: Repo, name: str, size: int
) -> None:
    """A version whose file of several chunks claims a digest its bytes do not have (a
    forged record an older dvfs fetched) was checked out silently: the file held bytes
    that were not the hash `dvfs show` gave, and the index recorded that hash for them.
    Each chunk is checked against its id as it is read; the whole file against its
    digest on the way, with no second read."""
    lying_digest_is_reported(repo, name, size)


def test_cat_of_a_file_whose_bytes_are_not_its_digest_fails_before_its_end(repo: Repo) -> None:
    """`dvfs cat` of such a file (see above) wrote it whole and exited 0, as if its
    bytes were the digest `dvfs show` gives. Its chunks are hashed as they are written
    out and the last is held back: the output is cut short, with one error line."""
    data = rand(3 * MiB, seed=18)
    commit_files(repo, {"d/mid.bin": data}, "base")
    r = Repository(repo.root)
    head = r.history.head_id()
    assert head is not None
    last = r.history.lookup(r.history.version(head).tree, b"d/mid.bin")
    assert last is not None and len(last.chunks) > 1
    r.refs.update("refs/tags/lie", forge_digest(r, head, b"d/mid.bin", bytes(32)), None)
    got = repo.run("cat", "lie:d/mid.bin")
    assert_error(got, "v2:d/mid.bin", "the digest the version records for it")
    assert got.raw == data[: len(data) - last.chunks[-1].size]
    assert repo.cat("HEAD:d/mid.bin") == data
    repo.ok("tag", "-d", "lie")
    repo.fsck_clean()


def lying_digest_is_reported(repo: Repo, name: str, size: int) -> None:
    """The lying digest's check (also run on a filesystem that shares blocks:
    test_restore_shared): a version holding ``name`` (``size`` bytes, several chunks)
    under another digest; its checkout fails that file alone with a line naming it,
    restores the others and leaves no temporary file; fsck names nothing (the chunks
    are whole), and the honest version checks out whole."""
    data = rand(size, seed=16)
    commit_files(repo, {name: data, "d/a.txt": "a"}, "base")
    r = Repository(repo.root)
    head = r.history.head_id()
    assert head is not None
    lie = forge_digest(r, head, name.encode(), hash_bytes(b"other bytes"))
    r.refs.update("refs/tags/lie", lie, None)
    for rel in (name, "d/a.txt"):
        (repo.root / rel).unlink()
    line = assert_error(repo.run("checkout", "lie"), "could not restore", name)
    assert "the digest the version records for it" in line, line
    assert not (repo.root / name).exists()
    assert repo.read("d/a.txt") == b"a"
    assert _temporaries(repo.root) == []
    assert repo.status()["modified"] == []
    repo.ok("checkout", "--force", "main")
    assert repo.read(name) == data
    repo.ok("tag", "-d", "lie")
    repo.fsck_clean()


def forge_digest(repo: Repository, version: bytes, path: bytes, digest: bytes) -> bytes:
    """A version of ``version``'s tree with the file at ``path`` given ``digest``, stored
    past the fetch's checks (as an older dvfs kept one); its id."""
    hist, store = repo.history, repo.store
    v = hist.version(version)
    trees = [v.tree]
    parts = path.split(b"/")
    for part in parts[:-1]:
        e = hist.tree(trees[-1]).get(part)
        assert e is not None
        trees.append(e.subtree)
    e = hist.tree(trees[-1]).get(parts[-1])
    assert e is not None and len(e.chunks) > 1
    new = e._replace(digest=digest)
    for depth in range(len(trees) - 1, -1, -1):
        entries = {x.name: x for x in hist.tree(trees[depth]).entries} | {new.name: new}
        oid, _ = store.put(ObjKind.TREE, encode_tree(list(entries.values())))
        if depth:
            above = hist.tree(trees[depth - 1]).get(parts[depth - 1])
            assert above is not None
            new = above._replace(subtree=oid)
    made = v._replace(tree=oid, parents=(version,), number=v.number + 1, message="lie")
    lie, _ = store.put(ObjKind.VERSION, encode_version(made))
    store.flush()
    return lie


def _restore_head(
    root: Path, replace: Callable[[bytes], bool], **given: Any
) -> tuple[dict[bytes, Staged], dict[bytes, DvfsError]]:
    """``restore_many`` of every file of HEAD in the repository at ``root``, in this
    process (``given``: its other arguments)."""
    r = Repository(root)
    try:
        hist = r.history
        wanted = hist.flatten(hist.version(hist.head_id()).tree, [])
        with Workers() as workers:
            return restore_many(r.root, sorted(wanted.items()), r.store, workers, replace, **given)
    finally:
        r.close()


def test_chunks_read_while_the_marks_sync_change_nothing_before_they_are_durable(
    repo: Repo,
) -> None:
    """While a checkout's marks are still being made durable (``pending``), the small
    files' chunks are read ahead, but no file appears in the working tree before
    ``ready`` returns; then every file is restored with its bytes, and the records
    returned hold the stat the files have."""
    files = {f"d{i % 3}/f{i:03d}.txt": f"file {i} ".encode() * (i + 1) for i in range(300)}
    commit_files(repo, files, "base")
    for rel in files:
        (repo.root / rel).unlink()
    asked: list[int] = []

    def pending() -> bool:
        asked.append(len(asked))
        return len(asked) < 4  # (the marks sync while three batches are read)

    def ready() -> None:
        assert len(asked) == 4
        assert [p for p in files if (repo.root / p).exists()] == []

    done, failed = _restore_head(repo.root, lambda _: False, ready=ready, pending=pending)
    assert failed == {}
    assert sorted(done) == sorted(p.encode() for p in files)
    for rel, data in files.items():
        assert repo.read(rel) == data
        st = os.lstat(repo.root / rel)
        rec = done[rel.encode()]
        assert (rec.mtime_ns, rec.ctime_ns, rec.ino) == (st.st_mtime_ns, st.st_ctime_ns, st.st_ino)
    assert repo.status()["deleted"] == []
    repo.fsck_clean()


def test_small_files_replacing_unchecked_files_are_written_once(
    repo: Repo, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Where a restore replaces what stands at a path without a check (no ``checked``
    map, as a pipeline's run cache restores its outputs), a small file written
    unnamed is renamed over the file or link there, not written a second time; only a
    directory in the way takes the slower path, which asks ``replace``. Every file
    holds its bytes, a link's target is untouched, and no temporary is left."""
    files = {f"d/f{i:03d}.txt": f"file {i} ".encode() * (i + 1) for i in range(300)}
    commit_files(repo, files, "base")
    outside = tmp_path / "outside.txt"
    outside.write_bytes(b"not the repository's")
    for i, rel in enumerate(files):
        (repo.root / rel).unlink()
        if i % 10 == 0:
            os.symlink(outside, repo.root / rel)
        elif i == 1:
            (repo.root / rel).mkdir()
            (repo.root / rel / "x").write_bytes(b"x")
        else:
            (repo.root / rel).write_bytes(b"in the way")
    slow: list[bytes] = []
    real = restore_module.write_entry

    def write_entry(walker: Walker, rel: bytes, *rest: Any) -> os.stat_result:
        slow.append(rel)
        return real(walker, rel, *rest)

    monkeypatch.setattr(restore_module, "write_entry", write_entry)
    done, failed = _restore_head(repo.root, lambda _: True)
    assert failed == {}
    assert slow == [b"d/f001.txt"]
    assert sorted(done) == sorted(p.encode() for p in files)
    for rel, data in files.items():
        assert not (repo.root / rel).is_symlink() and repo.read(rel) == data, rel
        st = os.lstat(repo.root / rel)
        assert done[rel.encode()].ino == st.st_ino
    assert outside.read_bytes() == b"not the repository's"
    assert _temporaries(repo.root) == []
    assert repo.status()["modified"] == []
    repo.fsck_clean()


# Restores every file of HEAD in the repository at argv[1] as a checkout's process
# does (one thread, so that the helper may be forked) and prints, as JSON, whether
# it forked one, whether its descriptors are as before, the failures and each
# record's stat fields.
_RESTORE_ALL = """
import json, os, sys
from pathlib import Path
from vfs._os.helper_process import Helper
from vfs.model.codec import Entry, encode_tree
from vfs.model.ids import hash_bytes
from vfs.model.version_codec import encode_version
from vfs.repo.repository import Repository
from vfs.store.objects import ObjKind
from vfs.worktree.pools import Workers
from vfs.worktree.restore import restore_many

forked = []
start = Helper.start

def counted(work):
    helper = start(work)
    forked.append(helper is not None)
    return helper

Helper.start = staticmethod(counted)
before = sorted(os.listdir("/proc/self/fd"))
r = Repository(Path(sys.argv[1]))
try:
    hist = r.history
    wanted = hist.flatten(hist.version(hist.head_id()).tree, [])
    with Workers() as workers:
        done, failed = restore_many(
            r.root, sorted(wanted.items()), r.store, workers, lambda _: False
        )
finally:
    r.close()
print(json.dumps({
    "forked": forked,
    "descriptors": sorted(os.listdir("/proc/self/fd")) == before,
    "failed": sorted(p.decode() for p in failed),
    "records": {p.decode(): [s.mtime_ns, s.ctime_ns, s.ino] for p, s in done.items()},
    "mtimes": {p.decode(): e.mtime_ns for p, e in wanted.items()},
}))
"""


def test_small_files_restored_by_both_processes_hold_their_bytes_and_leave_no_descriptor(
    repo: Repo,
) -> None:
    """Past RESTORE_SPLIT small files a forked helper restores some of them too; each
    process names its unnamed files through its own ``/proc/self/fd``, opened per
    batch: every file holds its own bytes and mtime (a name taken from the other
    process's descriptors would link another file), the records hold the stat the
    files have, and no descriptor is left open once the restore returns. (In a process
    of its own: the helper is forked only where no other thread runs, as in a
    checkout's process, which a test session's process is not always.)"""
    files = {f"d{i % 7}/f{i:04d}.txt": b"%d " % i * (1 + i % 5) for i in range(RESTORE_SPLIT + 300)}
    commit_files(repo, files, "base")
    for rel in files:
        (repo.root / rel).unlink()
    got = json.loads(run_python(_RESTORE_ALL, str(repo.root)))  # (fails the test if it fails)
    assert got["forked"] == [True]  # (the helper restored some)
    assert got["descriptors"]  # (the packs' closed with the store, none left)
    assert got["failed"] == []
    assert sorted(got["records"]) == sorted(files)
    for rel, data in files.items():
        assert repo.read(rel) == data
        st = os.lstat(repo.root / rel)
        assert st.st_mtime_ns == got["mtimes"][rel]
        assert got["records"][rel] == [st.st_mtime_ns, st.st_ctime_ns, st.st_ino]
    assert repo.status()["deleted"] == []
    repo.fsck_clean()


def _large_entry(repo: Repo, rel: str) -> tuple[Repository, Entry]:
    """The open repository and the entry of ``rel`` in HEAD's version."""
    handle = Repository.find(repo.root)
    hist = handle.history
    head = hist.head_id()
    assert head is not None
    return handle, hist.flatten(hist.version(head).tree)[rel.encode()]


def test_a_large_file_written_a_little_at_a_time_is_whole(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write may take part of what it is given (a signal, a filesystem's own limit):
    the large file's writer goes on from where it stopped, and the file holds every
    byte once, in order. Its size is never ahead of the bytes written (its blocks are
    reserved, not its size: after a power cut it is short, not padded with zeros)."""
    from vfs.worktree import restore

    data = rand(LARGE_FILE + 3 * MiB + 123, seed=51)
    commit_files(repo, {"big.bin": data}, "base")
    handle, entry = _large_entry(repo, "big.bin")
    assert len(entry.chunks) > 4
    real = os.pwrite
    calls = []

    def short(fd: int, buf: bytes | memoryview, at: int) -> int:
        calls.append(at)
        assert os.fstat(fd).st_size == at
        return real(fd, memoryview(buf)[: 100_000 + len(calls) % 7], at)

    out = repo.root / "restored.bin"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    monkeypatch.setattr(os, "pwrite", short)
    try:
        restore._write_large(fd, entry, handle.store)
    finally:
        monkeypatch.undo()
        os.close(fd)
        handle.close()
    assert len(calls) > len(data) // 100_007
    assert out.read_bytes() == data
    out.unlink()
    repo.fsck_clean()


def test_a_large_file_whose_write_fails_half_way_fails_with_that_error(
    repo: Repo, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails (a full disk, an I/O error) in the middle of a large file
    stops it with that error, raised to the caller, once no read or write of it is
    still in flight: nothing more is written to the file after it returns."""
    import errno

    from vfs.worktree import restore

    data = rand(LARGE_FILE + 5 * MiB, seed=52)
    commit_files(repo, {"big.bin": data}, "base")
    handle, entry = _large_entry(repo, "big.bin")
    real = os.pwrite
    calls = []

    def failing(fd: int, buf: bytes | memoryview, at: int) -> int:
        calls.append(at)
        if len(calls) == 3:
            raise OSError(errno.EIO, "Input/output error")
        return real(fd, buf, at)

    out = repo.root / "restored.bin"
    fd = os.open(out, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
    monkeypatch.setattr(os, "pwrite", failing)
    try:
        with pytest.raises(OSError) as caught:
            restore._write_large(fd, entry, handle.store)
        written = len(calls)
    finally:
        monkeypatch.undo()
        os.close(fd)
        handle.close()
    assert caught.value.errno == errno.EIO
    assert written == 3  # (no write after the one that failed)
    out.unlink()
    repo.fsck_clean()
