"""``dvfs snapshot`` of the kernel's overlay costs what changed (``daemon.upper_build``).

The tree building is tested on a plain directory laid out as overlayfs lays out an
upper layer (the kernel is not needed to read one), over a real repository: what it
reads and hashes, the racily-clean guard, and that building on the last snapshot
gives the very trees a build from nothing gives. Then through a real mount: a deep
change after a large one is recorded as exactly that change.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import pytest

from daemon import upper_build
from daemon.snapshot import FileCounts
from daemon.upper import OPAQUE, Recorded, stamp
from tests.support.cli import assert_ok, fsck_clean
from tests.support.mount import MTIME, commit, dvfs, mounted, write
from vfs import Entry, Kind, Tree
from vfs.model.ids import hash_bytes
from vfs.ops.diff import diff_trees
from vfs.repo.repository import Repository
from vfs.worktree.ingest import Hasher
from vfs.worktree.pools import Workers

FAR = 1 << 62  # a clock after every stamp: everything may be recorded


@dataclass
class Layer:
    """A repository at one version, and an upper layer over it."""

    repo: Repository
    upper: Path
    base: Entry
    read: list[bytes]  # tree ids the builds asked for, in order
    counts: dict[bytes, int]

    def trees(self, oid: bytes) -> Tree:
        self.read.append(oid)
        return self.repo.history.tree(oid)

    def build(
        self, head: Entry | None = None, recorded: Recorded | None = None, since: int = FAR
    ) -> upper_build.Built:
        """A snapshot's trees over the base (``head``: the last snapshot's root)."""
        store = self.repo.store
        with Workers() as w:
            built = upper_build.build(
                self.upper, self.trees, self.base, head or self.base, recorded or {},
                Hasher(self.upper, self.repo.chunker, store, w), store,
                FileCounts(self.trees, self.counts), self.files(head or self.base), since,
            )  # fmt: skip
        store.flush()
        return built

    def files(self, root: Entry | None) -> int:
        """Files in the version whose root is ``root`` (as its record says)."""
        return len(files_of(self, root)) if root is not None else 0

    def subtree(self, root: Entry, path: str) -> bytes:
        """The tree id at ``path`` below ``root``."""
        oid = root.subtree
        for name in path.split("/"):
            e = self.repo.history.tree(oid).get(name.encode())
            assert e is not None and e.kind == Kind.DIR, path
            oid = e.subtree
        return oid

    def put(self, rel: str, data: bytes) -> Path:
        """A file in the upper layer (its directories made as overlayfs copies them up)."""
        p = self.upper / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        return p


@pytest.fixture(name="layer")
def layer_fixture(tmp_path: Path) -> Layer:
    """data/deep/er/est/leaf.txt, 40 files in data/wide/d0..d3, and an empty upper layer."""
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/deep/er/est/leaf.txt", b"leaf\n")
    write(root, "data/deep/er/side.txt", b"side\n")
    for i in range(40):
        write(root, f"data/wide/d{i % 4}/f{i}.txt", f"file {i}\n".encode())
    oid = commit(repo, "base")
    v = repo.history.version(oid)
    upper = tmp_path / "upper"
    upper.mkdir()
    base = Entry(b"", Kind.DIR, 0o755, v.bytes, v.time_ns, subtree=v.tree)
    return Layer(repo, upper, base, [], {})


def files_of(layer: Layer, root: Entry) -> dict[str, bytes]:
    """Every file below ``root``: its digest, by path."""
    out: dict[str, bytes] = {}
    stack = [("", root.subtree)]
    while stack:
        path, oid = stack.pop()
        for e in layer.repo.history.tree(oid).entries:
            p = f"{path}/{e.name.decode()}" if path else e.name.decode()
            if e.kind == Kind.DIR:
                stack.append((p, e.subtree))
            else:
                out[p] = e.digest
    return out


def test_an_unchanged_subtree_is_reused_and_only_changes_are_hashed(layer: Layer) -> None:
    layer.put("data/deep/er/est/leaf.txt", b"leaf, changed\n")  # copied up, deep
    for i in range(30):
        layer.put(f"data/new/n{i % 3}/f{i}.txt", f"new {i}\n".encode())
    first = layer.build()
    assert first.hashed == 31
    assert first.files == 2 + 40 + 30
    wide = layer.subtree(layer.base, "data/wide")  # beside the changes: never read
    assert not {wide, *(layer.subtree(layer.base, f"data/wide/d{i}") for i in range(4))} & set(
        layer.read
    )
    # the upper layer's files, links and directories are recorded (directories with a /)
    assert b"data/new/n0/" in first.recorded and b"data/new/n0/f0.txt" in first.recorded
    assert b"/" in first.recorded

    # one deep file changed again, one new: the 30 files of data/new are neither hashed
    # nor their trees read; the same trees come out as from nothing
    layer.put("data/deep/er/est/leaf.txt", b"leaf, changed twice\n")
    layer.put("data/deep/er/new.txt", b"new\n")
    layer.read.clear()
    again = layer.build(first.root, first.recorded)
    assert again.hashed == 2
    new_tree = layer.subtree(first.root, "data/new")
    assert layer.subtree(again.root, "data/new") == new_tree
    assert new_tree not in layer.read
    assert not {layer.subtree(first.root, f"data/new/n{i}") for i in range(3)} & set(layer.read)
    scratch = layer.build()
    assert scratch.root == again.root
    changes = diff_trees(layer.repo.history, first.root.subtree, again.root.subtree)
    assert sorted((c.status, c.path) for c in changes) == [
        ("added", b"data/deep/er/new.txt"), ("modified", b"data/deep/er/est/leaf.txt"),
    ]  # fmt: skip

    # nothing changed since: the head's root itself
    layer.read.clear()
    assert layer.build(again.root, again.recorded).root == again.root
    assert layer.read == []


def test_whiteouts_opaque_directories_and_links_build_as_from_nothing(layer: Layer) -> None:
    """Deleting, hiding a lower directory, replacing a name's kind, links: each change
    built on the last snapshot gives the trees a build from nothing gives."""
    up = layer.upper
    (up / "data" / "wide").mkdir(parents=True)
    steps: list[Callable[[], None]] = [
        lambda: os.mknod(up / "data/wide/d1", 0o020000, 0),  # whiteout: d1 deleted
        lambda: os.symlink("d0/f0.txt", up / "data/wide/link"),
        lambda: _opaque(up / "data/deep"),  # data/deep removed and made again
        lambda: _write(up / "data/deep/fresh.txt", b"fresh\n"),
        lambda: os.unlink(up / "data/wide/link"),
        lambda: os.symlink("elsewhere", up / "data/wide/link"),
        lambda: os.mknod(up / "data/wide/d0", 0o020000, 0),
        lambda: shutil.rmtree(up / "data/deep"),  # the lower data/deep shows again
    ]
    head: Entry = layer.base
    recorded: Recorded = {}
    for step in steps:
        step()
        got = layer.build(head, recorded)
        want = layer.build()
        assert got.root == want.root, step
        assert got.files == want.files == len(files_of(layer, got.root))
        head, recorded = got.root, got.recorded
    files = files_of(layer, head)
    assert "data/wide/d1/f1.txt" not in files and "data/wide/d0/f0.txt" not in files
    assert files["data/deep/er/est/leaf.txt"] == hash_bytes(b"leaf\n")


def _write(path: Path, data: bytes) -> None:
    path.write_bytes(data)


def _opaque(path: Path) -> None:
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True)
    os.setxattr(path, OPAQUE, b"y")


def test_a_file_stamped_in_the_snapshots_second_is_hashed_again(layer: Layer) -> None:
    """Racily clean: a stamp recorded as the file was changed again within the same
    clock tick does not move; so a file whose mtime falls in the snapshot's start
    second, or later, is hashed even though its stamp is the recorded one."""
    f = layer.put("data/deep/er/side.txt", b"one\n")
    first = layer.build()
    now = time.time_ns()
    past = (now // 10**9 - 5) * 10**9 + 10**9 // 2  # the middle of a second
    for mtime, since in ((past, past + 1), (now + 86_400 * 10**9, now)):
        f.write_bytes(b"two\n")  # as large as before
        os.utime(f, ns=(mtime, mtime))
        recorded = dict(first.recorded)
        recorded[b"data/deep/er/side.txt"] = stamp(os.lstat(f))  # the stamp did not move
        got = layer.build(first.root, recorded, since)
        assert files_of(layer, got.root)["data/deep/er/side.txt"] == hash_bytes(b"two\n")
        assert got.hashed == 1
        f.write_bytes(b"one\n")


def test_what_changed_at_or_after_the_snapshot_began_is_not_recorded(layer: Layer) -> None:
    """A stamp at or after the filesystem's clock when the snapshot began may not move
    at the next change: it is left out, and the next snapshot hashes the file again."""
    f = layer.put("data/deep/er/side.txt", b"changed\n")
    st = os.lstat(f)
    later = layer.build(since=min(st.st_mtime_ns, st.st_ctime_ns))
    assert b"data/deep/er/side.txt" not in later.recorded
    kept = layer.build(since=max(st.st_mtime_ns, st.st_ctime_ns) + 1)
    assert kept.recorded[b"data/deep/er/side.txt"] == stamp(st)
    assert layer.build(later.root, later.recorded).hashed == 1
    assert layer.build(kept.root, kept.recorded).hashed == 0
    clock = upper_build.fs_clock(layer.upper.parent)
    assert clock >= st.st_ctime_ns


def test_a_deep_change_after_a_large_one_is_recorded_as_just_that(tmp_path: Path) -> None:
    """Through the kernel's overlay: after a snapshot of many new files, changing one
    deep file and snapshotting records exactly that change, hashes only it, and keeps
    every other tree by id."""
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a/b/c/d/deep.txt", b"deep\n")
    write(root, "data/a/b/other.txt", b"other\n")
    commit(repo, "base")
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(root), mnt, home, overlay="kernel") as m:
        for i in range(60):  # (old mtimes: not read again as stamped in a snapshot's second)
            (m.path / "data" / "many" / f"d{i % 6}").mkdir(parents=True, exist_ok=True)
            f = m.path / "data" / "many" / f"d{i % 6}" / f"f{i}.txt"
            f.write_bytes(b"%d\n" % i)
            os.utime(f, (MTIME, MTIME))
        assert_ok(dvfs(root, home, "snapshot", str(mnt), "-m", "many", "--json"))
        deep = m.path / "data" / "a" / "b" / "c" / "d" / "deep.txt"
        deep.write_bytes(b"deeper\n")
        os.utime(deep, (MTIME, MTIME))
        got = assert_ok(dvfs(root, home, "snapshot", str(mnt), "-m", "deep", "--json")).json()
        assert got["hashed"] == 1
        assert got["files"] == 62
        os.unlink(m.path / "data" / "many" / "d3" / "f9.txt")
        gone = assert_ok(dvfs(root, home, "snapshot", str(mnt), "-m", "rm", "--json")).json()
        assert gone["hashed"] == 0
    hist = Repository(root).history
    v2, v3, v4 = (hist.version(hist.resolve(f"v{n}")) for n in (2, 3, 4))
    changes = diff_trees(hist, v2.tree, v3.tree)
    assert [(c.status, c.path) for c in changes] == [("modified", b"data/a/b/c/d/deep.txt")]
    many = [hist.lookup(v.tree, b"data/many") for v in (v2, v3)]
    assert many[0] is not None and many[0] == many[1]  # the same tree id
    changes = diff_trees(hist, v3.tree, v4.tree)
    assert [(c.status, c.path) for c in changes] == [("removed", b"data/many/d3/f9.txt")]
    fsck_clean(root)


def test_names_no_version_may_hold_are_reported(layer: Layer) -> None:
    """overlayfs cannot refuse a name: the snapshot finds ``.git`` at any depth (in any
    spelling a filesystem folds) and ``.versions`` at the top, and names them."""
    layer.put("data/deep/.GIT/config", b"[core]\n")
    layer.put(".versions", b"")
    layer.put("data/wide/.versions", b"")  # allowed below the top
    got = layer.build()
    assert got.reserved == [b".versions", b"data/deep/.GIT"]
    os.unlink(layer.upper / ".versions")
    shutil.rmtree(layer.upper / "data/deep/.GIT")
    assert layer.build(got.root, got.recorded).reserved == []


def test_a_version_s_file_deleted_after_a_snapshot_stays_deleted_at_the_next_mount(
    tmp_path: Path,
) -> None:
    """Through the kernel's overlay: a file the working tree began with, still in the
    snapshot, then deleted, leaves a whiteout over the old lower layer; the next mount,
    which puts the snapshot under the working tree, mounts with the file still deleted."""
    root = tmp_path / "repo"
    repo = Repository.init(root)
    write(root, "data/a.txt", b"a\n")
    write(root, "data/b.txt", b"b\n")
    commit(repo, "base")
    home, mnt = tmp_path / "home", tmp_path / "mnt"
    with mounted(str(root), mnt, home, overlay="kernel") as m:
        (m.path / "data" / "new.txt").write_bytes(b"new\n")
        assert_ok(dvfs(root, home, "snapshot", str(mnt), "-m", "new"))
        os.unlink(m.path / "data" / "a.txt")
    with mounted(str(root), mnt, home, overlay="kernel") as m:
        assert sorted(os.listdir(m.path / "data")) == ["b.txt", "new.txt"]
        st = assert_ok(dvfs(root, home, "status", str(mnt), "--json")).json()
        assert (st["added"], st["modified"], st["deleted"]) == ([], [], ["data/a.txt"])
        assert_ok(dvfs(root, home, "snapshot", str(mnt), "-m", "rm"))
    hist = Repository(root).history
    v2, v3 = (hist.version(hist.resolve(f"v{n}")) for n in (2, 3))
    changes = diff_trees(hist, v2.tree, v3.tree)
    assert [(c.status, c.path) for c in changes] == [("removed", b"data/a.txt")]
    fsck_clean(root)
