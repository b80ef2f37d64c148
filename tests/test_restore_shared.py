"""Large files restored by sharing the packs' blocks, on a filesystem that can (XFS).

On XFS or Btrfs a checkout makes a large file of its chunks' blocks in the packs
(``ObjectStore.share_into``) instead of writing its bytes: the file takes no room until
it is changed, a change copies the block it touches and leaves the pack as it was,
and every chunk is still read back and checked against its id. These tests run on a
real XFS, made in a file and mounted through a loop device (we run as root;
``scripts/bootstrap.sh`` installs ``mkfs.xfs``).
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import mounted, tmpfs
from tests.support.cli import Repo, commit_files, init_repo
from tests.support.data import rand
from tests.test_checkout_ahead import damaged_large_file_is_reported, lying_digest_is_reported
from vfs._os import reflink
from vfs.repo.repository import Repository
from vfs.store.objects import ObjectStore, ObjKind
from vfs.worktree.restore import LARGE_FILE

MiB = 1 << 20


@pytest.fixture(scope="module")
def xfs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """An XFS of 512 MiB (reflinks on, as mkfs.xfs makes it), mounted for the module."""
    mkfs = shutil.which("mkfs.xfs")
    assert mkfs is not None, "mkfs.xfs is missing: apt-get install xfsprogs (scripts/bootstrap.sh)"
    base = tmp_path_factory.mktemp("xfs")
    image, mnt = base / "image", base / "mnt"
    with open(image, "wb") as fh:
        fh.truncate(512 * MiB)
    subprocess.run([mkfs, "-q", "-m", "reflink=1", str(image)], check=True)
    with mounted(mnt, "-o", "loop", str(image)):
        yield mnt


@pytest.fixture
def repo(xfs: Path, request: pytest.FixtureRequest) -> Iterator[Repo]:
    """A fresh repository on the XFS, removed after the test (the filesystem is shared)."""
    root = xfs / request.node.name.replace("[", "-").replace("]", "")
    r = init_repo(root)
    yield r
    shutil.rmtree(root)


def _shared(path: Path) -> int:
    """Bytes of the file at ``path`` in blocks it shares with another file (the extents
    ``filefrag -v`` flags "shared", from the kernel's FIEMAP)."""
    out = subprocess.run(
        ["filefrag", "-v", str(path)], check=True, capture_output=True, text=True
    ).stdout
    block = int(re.search(r"blocks of (\d+) bytes", out).group(1))  # type: ignore[union-attr]
    shared = 0
    for line in out.splitlines():  # " 2:  318.. 1427:  10932.. 12041:  1110:  13892: shared"
        fields = [f.strip() for f in line.split(":")]
        if len(fields) >= 5 and fields[0].isdigit() and "shared" in fields[-1].split(","):
            shared += int(fields[3]) * block
    return shared


def test_a_checkout_shares_the_packs_blocks_and_takes_no_room(repo: Repo) -> None:
    """Two large files (one written ahead beside the root, one in a directory the
    checkout makes again) come back byte for byte, each in blocks it shares but for the
    partial blocks at the ends of its runs of chunks; status is clean and fsck finds
    nothing."""
    big = rand(24 * MiB + 123, seed=31)
    other = rand(LARGE_FILE + 5 * MiB + 7, seed=32)
    commit_files(repo, {"big.bin": big, "d/other.bin": other, "d/a.txt": "a"}, "base")
    (repo.root / "big.bin").unlink()
    shutil.rmtree(repo.root / "d")
    repo.ok("checkout", "HEAD")
    assert _shared(repo.root / "big.bin") > len(big) - MiB
    assert _shared(repo.root / "d" / "other.bin") > len(other) - MiB
    assert repo.read("big.bin") == big
    assert repo.read("d/other.bin") == other
    assert repo.read("d/a.txt") == b"a"
    s = repo.status()
    assert s["modified"] == [] and s["deleted"] == [] and s["untracked"] == []
    repo.fsck_clean()


def test_a_shared_file_changed_in_place_leaves_the_pack_as_it_was(repo: Repo) -> None:
    """Writing into a restored file copies the blocks it touches: the packs still hold
    the version (fsck clean, a forced checkout brings the old bytes back), and status
    reports the file modified."""
    big = rand(16 * MiB, seed=33)
    commit_files(repo, {"big.bin": big}, "base")
    (repo.root / "big.bin").unlink()
    repo.ok("checkout", "HEAD")
    assert _shared(repo.root / "big.bin") > len(big) - MiB
    with open(repo.root / "big.bin", "r+b") as fh:
        fh.seek(5 * MiB + 17)
        fh.write(b"changed in place")
    assert repo.status()["modified"] == ["big.bin"]
    repo.fsck_clean()
    repo.ok("checkout", "--force", "HEAD")
    assert repo.read("big.bin") == big
    repo.fsck_clean()


@pytest.mark.parametrize("name", ["d/big.bin", "big.bin"])
def test_a_damaged_pack_fails_the_shared_file_as_a_written_one(repo: Repo, name: str) -> None:
    """A byte flipped in a chunk the file would share is found when the file is read
    back: the file is reported as not restored, with the usual line, and comes back
    whole once the pack is mended (as on any filesystem: test_checkout_ahead)."""
    damaged_large_file_is_reported(repo, name)


@pytest.mark.parametrize("name", ["d/big.bin", "big.bin"])
def test_a_shared_file_whose_bytes_are_not_its_digest_is_not_kept(repo: Repo, name: str) -> None:
    """A file made of shared blocks is checked against the version's digest as its
    chunks are read back in order, as a written one is (test_checkout_ahead)."""
    lying_digest_is_reported(repo, name, LARGE_FILE + MiB)


def test_a_file_with_compressed_chunks_is_written_and_shares_nothing(repo: Repo) -> None:
    """Chunks stored compressed cannot be shared: such a file is written as on any
    filesystem, and shares no block."""
    data = bytes(6 * MiB) + rand(6 * MiB, seed=35)
    commit_files(repo, {"mixed.bin": data}, "base")
    (repo.root / "mixed.bin").unlink()
    repo.ok("checkout", "HEAD")
    assert _shared(repo.root / "mixed.bin") == 0
    assert repo.read("mixed.bin") == data
    repo.fsck_clean()


def test_share_into_says_no_on_a_filesystem_without_shared_blocks(tmp_path: Path) -> None:
    """On a filesystem without shared blocks (the suite's own, tmpfs here) the store
    leaves the file empty and says no, for the caller to write it, and does not ask
    that filesystem again."""
    with tmpfs(tmp_path / "tmpfs", "64m") as mnt:
        r = init_repo(mnt / "repo")
        big = rand(LARGE_FILE + MiB, seed=36)
        commit_files(r, {"big.bin": big}, "base")
        repo = Repository(r.root)
        try:
            hist = repo.history
            entry = hist.flatten(hist.version(hist.head_id()).tree, [])[b"big.bin"]
            fd = os.open(mnt / "copy", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                assert not repo.store.share_into(fd, [(c.oid, c.size) for c in entry.chunks])
                assert os.fstat(fd).st_size == 0
                assert reflink.refused(fd)
            finally:
                os.close(fd)
        finally:
            repo.close()


def test_share_into_leaves_the_file_empty_where_it_shares_nothing(xfs: Path) -> None:
    """On XFS too, a length that is not the stored one, or objects with no whole block
    to share between them, get False and an empty file, for the caller to write."""
    root = xfs / "store-only"
    store = ObjectStore.create(root / "objects")
    try:
        small = [rand(3000 + i, seed=40 + i) for i in range(2)]
        ids = [store.put(ObjKind.CHUNK, d)[0] for d in small]
        store.flush()
        fd = os.open(root / "out", os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        try:
            assert not store.share_into(fd, [(i, len(d)) for i, d in zip(ids, small, strict=True)])
            assert os.fstat(fd).st_size == 0
            assert not store.share_into(fd, [(ids[0], len(small[0]) + 1)])
            assert os.fstat(fd).st_size == 0
            assert not reflink.refused(fd)  # (XFS was not asked to share, so not refused)
        finally:
            os.close(fd)
    finally:
        store.close()
        shutil.rmtree(root)
