"""The daemon's working tree without the kernel: the overlay and its request handlers.

Each test builds a small repository, opens the overlay's work directory and drives
``daemon.fs.worktree.WorkingFs`` by calling its handlers in a trio run, as the kernel
would (the real mounts of test_worktree*.py check the same through FUSE). A crash is
simulated by dropping the overlay without closing it and letting go of its lock, as
the kernel does for a killed daemon; the next overlay opened on the same work
directory replays the journal.
"""

from __future__ import annotations

import contextlib
import errno
import functools
import os
import stat
import threading
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import msgpack
import pyfuse3
import pytest
import trio

from daemon.data.fetcher import Fetcher
from daemon.data.record_cache import Records
from daemon.fs import inodes
from daemon.fs.namespace import Layout
from daemon.fs.worktree import WorkingFs
from daemon.overlay import COMPACT_ABOVE, Overlay, OverlayError, lock_work
from daemon.overlay.journal import pack
from daemon.overlay_snapshot import OverlaySnapshots
from daemon.service import choose_overlay
from daemon.snapshot import Request
from daemon.source import RepositorySource
from daemon.upper import Layers, LayersError
from tests.support.cli import fsck_clean
from tests.support.cli import run as run_cli
from tests.support.mount import commit, write
from vfs import DvfsError, read_journal
from vfs.repo.repository import Repository

CTX = cast(
    pyfuse3.RequestContext,
    SimpleNamespace(uid=os.getuid(), gid=os.getgid(), pid=os.getpid(), umask=0o022),
)
FIELDS = ["update_atime", "update_ctime", "update_gid", "update_mode", "update_mtime"]
FIELDS += ["update_size", "update_uid"]
BASE = {"data/a.txt": b"alpha\n", "data/b.txt": b"beta\n", "data/sub/c.txt": b"gamma\n"}


@dataclass
class Tree:
    """A repository, its source, and the work directory of its working tree."""

    root: Path
    source: RepositorySource
    work: Path

    def open(self) -> tuple[WorkingFs, Overlay, int]:
        """The overlay of the work directory (held by a lock), and handlers over it."""
        lock = lock_work(self.work)
        catalog = self.source.catalog()
        overlay = Overlay(self.work, catalog.head, self.source.root_entry, lock)
        fetcher = Fetcher(self.source.local, None, None, timeout=5)
        layout = Layout(Records(self.source.history, trio.CapacityLimiter(2)), catalog)
        return WorkingFs(layout, fetcher, overlay), overlay, lock


def make_tree(tmp_path: Path) -> Tree:
    root = tmp_path / "repo"
    repo = Repository.init(root)
    for rel, data in BASE.items():
        write(root, rel, data)
    commit(repo, "one")
    return Tree(root, RepositorySource(root, None, 2), tmp_path / "work")


def crash(overlay: Overlay, lock: int) -> None:
    """What a killed daemon leaves: nothing closed cleanly; the kernel drops its lock."""
    os.close(lock)
    for node in overlay.nodes.values():
        if node.fd >= 0:
            os.close(node.fd)
            node.fd = -1
    overlay.journal.close()


def run(fs: WorkingFs, scenario: Callable[[WorkingFs], Awaitable[None]]) -> None:
    async def main() -> None:
        async with trio.open_nursery() as nursery:
            await nursery.start(fs.fetcher.run)
            await scenario(fs)
            nursery.cancel_scope.cancel()

    trio.run(main)


async def ino_of(fs: WorkingFs, path: str) -> int:
    ino = inodes.ROOT
    for name in path.split("/") if path else []:
        ino = (await fs.lookup(ino, os.fsencode(name), CTX)).st_ino
    return ino


async def put(fs: WorkingFs, path: str, data: bytes) -> None:
    """Create (or truncate) ``path`` and write ``data`` to it."""
    parent, _, name = path.rpartition("/")
    d = await ino_of(fs, parent)
    try:
        ino = (await fs.lookup(d, os.fsencode(name), CTX)).st_ino
        fi = await fs.open(ino, os.O_WRONLY | os.O_TRUNC, CTX)
    except pyfuse3.FUSEError:
        fi, _ = await fs.create(d, os.fsencode(name), 0o644, os.O_WRONLY, CTX)
    assert await fs.write(fi.fh, 0, data) == len(data)
    await fs.release(fi.fh)


async def get(fs: WorkingFs, path: str) -> bytes:
    fi = await fs.open(await ino_of(fs, path), os.O_RDONLY, CTX)
    try:
        return await fs.read(fi.fh, 0, 1 << 20)
    finally:
        await fs.release(fi.fh)


async def move(fs: WorkingFs, old: str, new: str) -> None:
    a, _, x = old.rpartition("/")
    b, _, y = new.rpartition("/")
    await fs.rename(
        await ino_of(fs, a), os.fsencode(x), await ino_of(fs, b), os.fsencode(y), 0, CTX
    )


async def listing(fs: WorkingFs, path: str = "") -> dict[str, Any]:
    """Every file's bytes and every directory (``"dir"``) below ``path``, via the handlers."""
    out: dict[str, Any] = {}
    d = fs.overlay.nodes[await ino_of(fs, path)]
    for name, kid in sorted((await fs.kids(d)).items()):
        rel = f"{path}/{os.fsdecode(name)}" if path else os.fsdecode(name)
        if kid.is_dir:
            out[rel] = "dir"
            out.update(await listing(fs, rel))
        else:
            out[rel] = await get(fs, rel)
    return out


async def pending(fs: WorkingFs) -> dict[str, list[Any]]:
    """``dvfs status`` of the working tree, as the snapshot code asks for it."""
    while todo := fs.overlay.unloaded_dirty():
        for d in todo:
            await fs.kids(d)
    return fs.overlay.status()


NO_CHANGES: dict[str, list[Any]] = {
    "added": [], "modified": [], "deleted": [], "renamed": [], "unversionable": [],
}  # fmt: skip


def test_replay_after_a_crash_rebuilds_what_was_acknowledged(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    fs, overlay, lock = t.open()
    seen: dict[str, Any] = {}

    async def change(fs: WorkingFs) -> None:
        await put(fs, "data/new.txt", b"new\n")
        await put(fs, "data/a.txt", b"alpha, changed\n")  # copied up, then written
        await fs.mkdir(await ino_of(fs, "data"), b"made", 0o755, CTX)
        await put(fs, "data/made/deep.bin", b"\0" * 1000)
        await fs.unlink(await ino_of(fs, "data"), b"b.txt", CTX)
        await move(fs, "data/sub", "data/moved")
        seen["tree"] = await listing(fs)
        seen["status"] = await pending(fs)

    run(fs, change)
    assert seen["status"] == {
        "added": ["data/made/", "data/new.txt"],
        "modified": ["data/a.txt"],
        "deleted": ["data/b.txt"],
        "renamed": [["data/sub/", "data/moved/"]],
        "unversionable": [],
    }
    journal = overlay.journal.path
    whole = journal.stat().st_size
    with open(journal, "ab") as f:
        f.write(b"\x9f\xa1N\x01")  # a record torn by the crash
    (t.work / "data" / "999999").write_bytes(b"a file no node uses")
    crash(overlay, lock)

    fs, overlay, lock = t.open()
    assert journal.stat().st_size == whole  # the torn tail is cut off
    assert not (t.work / "data" / "999999").exists()
    again: dict[str, Any] = {}

    async def look(fs: WorkingFs) -> None:
        again["tree"] = await listing(fs)
        again["status"] = await pending(fs)

    run(fs, look)
    assert again == seen
    overlay.close()  # its lock too
    fsck_clean(t.root)


def test_a_long_journal_is_compacted_at_mount_to_the_same_tree(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    fs, overlay, _ = t.open()
    owner = (os.getuid(), os.getgid())
    seen: dict[str, Any] = {}

    async def churn(fs: WorkingFs) -> None:
        data = overlay.nodes[await ino_of(fs, "data")]
        await fs.kids(data)
        i = 0
        while overlay.journal.size < COMPACT_ABOVE:  # made and deleted: nothing remains
            overlay.create_file(data, b"tmp-%d" % i, 0o644, owner)
            overlay.release_fd(overlay.remove(data, b"tmp-%d" % i))
            i += 1
        await put(fs, "data/kept.txt", b"kept\n")
        await move(fs, "data/a.txt", "data/sub/a.txt")
        seen["tree"] = await listing(fs)
        seen["status"] = await pending(fs)

    run(fs, churn)
    before, gen = overlay.journal.size, overlay.gen
    overlay.close()  # its lock too

    fs, overlay, _ = t.open()
    assert overlay.gen == gen + 1
    assert overlay.journal.size * 10 < before
    assert sorted(p.name for p in t.work.glob("journal.*")) == [f"journal.{gen + 1}"]
    again: dict[str, Any] = {}

    async def look(fs: WorkingFs) -> None:
        again["tree"] = await listing(fs)
        again["status"] = await pending(fs)

    run(fs, look)
    assert again == seen
    assert seen["status"]["renamed"] == [["data/a.txt", "data/sub/a.txt"]]
    overlay.close()  # its lock too


def test_rename_chains_show_where_a_file_came_from(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    fs, overlay, lock = t.open()
    seen: dict[str, Any] = {}

    async def chains(fs: WorkingFs) -> None:
        await move(fs, "data/a.txt", "data/x")
        await move(fs, "data/x", "data/y")
        await fs.mkdir(await ino_of(fs, "data"), b"new", 0o755, CTX)
        await move(fs, "data/y", "data/new/z")  # into a new directory
        await move(fs, "data/b.txt", "data/t")
        await move(fs, "data/t", "data/b.txt")  # and back: no change
        await move(fs, "data/sub/c.txt", "data/c.txt")
        # a new file at the old name: both are in the next version, c.txt is added
        await put(fs, "data/sub/c.txt", b"another c\n")
        seen["status"] = await pending(fs)
        seen["tree"] = await listing(fs)

    run(fs, chains)
    assert seen["status"] == {
        "added": ["data/new/", "data/c.txt"],
        "modified": ["data/sub/c.txt"],
        "deleted": [],
        "renamed": [["data/a.txt", "data/new/z"]],
        "unversionable": [],
    }
    assert seen["tree"]["data/new/z"] == BASE["data/a.txt"]
    crash(overlay, lock)
    fs, overlay, lock = t.open()
    again: dict[str, Any] = {}

    async def look(fs: WorkingFs) -> None:
        again["status"] = await pending(fs)
        again["tree"] = await listing(fs)

    run(fs, look)
    assert again == seen
    overlay.close()  # its lock too


def test_a_snapshot_rebases_the_working_tree_on_the_new_version(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    fs, overlay, lock = t.open()
    first = overlay.base
    seen: dict[str, Any] = {}

    async def snapshot(fs: WorkingFs) -> None:
        await put(fs, "data/a.txt", b"alpha 2\n")
        await put(fs, "data/sub/d.txt", b"delta\n")
        await move(fs, "data/b.txt", "data/bee.txt")
        seen["tree"] = await listing(fs)
        got = await OverlaySnapshots(fs, t.source, overlay).take(Request("two"))
        assert (got["version"], got["branch"]) == ("v2", "main")
        seen["clean"] = await pending(fs)
        seen["after"] = await listing(fs)
        v2 = await ino_of(fs, ".versions/v2/data/bee.txt")
        fi = await fs.open(v2, os.O_RDONLY, CTX)
        seen["v2"] = await fs.read(fi.fh, 0, 100)
        await fs.release(fi.fh)
        await put(fs, "data/bee.txt", b"bee\n")  # a change over the new base
        seen["status"] = await pending(fs)

    run(fs, snapshot)
    assert overlay.base != first and overlay.base == t.source.catalog().head
    assert seen["clean"] == NO_CHANGES
    assert seen["after"] == seen["tree"]
    assert seen["v2"] == BASE["data/b.txt"]
    assert seen["status"] == {**NO_CHANGES, "modified": ["data/bee.txt"]}
    crash(overlay, lock)

    fs, overlay, lock = t.open()  # replayed over v2, not v1
    assert overlay.base == t.source.catalog().head
    again: dict[str, Any] = {}

    async def look(fs: WorkingFs) -> None:
        again["status"] = await pending(fs)
        again["bee"] = await get(fs, "data/bee.txt")

    run(fs, look)
    assert again == {"status": seen["status"], "bee": b"bee\n"}
    overlay.close()  # its lock too
    fsck_clean(t.root)


def test_status_names_every_kind_of_change(tmp_path: Path) -> None:
    t = make_tree(tmp_path)
    fs, overlay, _ = t.open()
    seen: dict[str, Any] = {}

    async def every(fs: WorkingFs) -> None:
        data = await ino_of(fs, "data")
        await put(fs, "data/sub/c.txt", b"gamma 2\n")
        await fs.mknod(data, b"fifo", stat.S_IFIFO | 0o644, 0, CTX)
        await fs.unlink(await ino_of(fs, "data/sub"), b"c.txt", CTX)
        await fs.rmdir(data, b"sub", CTX)
        await fs.symlink(data, b"link", b"a.txt", CTX)
        attrs = pyfuse3.EntryAttributes()
        attrs.st_mode = stat.S_IFREG | 0o600
        only_mode = {**dict.fromkeys(FIELDS, False), "update_mode": True}
        fields = cast(pyfuse3.SetattrFields, SimpleNamespace(**only_mode))
        await fs.setattr(await ino_of(fs, "data/a.txt"), attrs, fields, None, CTX)
        await fs.link(await ino_of(fs, "data/b.txt"), data, b"b2.txt", CTX)
        seen["status"] = await pending(fs)

    run(fs, every)
    assert seen["status"] == {
        "added": ["data/b2.txt", "data/link"],
        "modified": ["data/a.txt"],
        "deleted": ["data/sub/"],
        "renamed": [],
        "unversionable": ["data/fifo"],
    }
    overlay.close()  # its lock too


def test_a_damaged_journal_keeps_every_file_of_the_working_tree(tmp_path: Path) -> None:
    """A journal damaged inside (not a torn tail, which is cut) is not read as "no
    changes": the working tree is refused with one line naming the journal and what to
    do, no data file is deleted, and fsck names it until the work directory is moved."""
    t, journal = _three_new_files(tmp_path)
    whole = journal.read_bytes()
    journal.write_bytes(whole + whole[:7])  # a record cut short: the tail is cut
    fs, overlay, lock = t.open()
    run(fs, lambda fs: _expect_new_files(fs, 3))
    crash(overlay, lock)
    assert journal.read_bytes() == whole
    damaged = whole[:5] + bytes([whole[5] ^ 0xFF]) + whole[6:]  # (in the first checksum)
    journal.write_bytes(damaged)
    files = {p.name: p.read_bytes() for p in (t.work / "data").iterdir()}
    assert sorted(files.values()) == [b"new 0\n", b"new 1\n", b"new 2\n"]
    lock = lock_work(t.work)
    with pytest.raises(OverlayError) as got:
        Overlay(t.work, t.source.catalog().head, t.source.root_entry, lock)
    os.close(lock)
    said = str(got.value)
    assert f"{journal} is damaged at byte 0 of {len(damaged)}" in said
    assert f"move {t.work} elsewhere" in said and "\n" not in said
    assert journal.read_bytes() == damaged
    assert {p.name: p.read_bytes() for p in (t.work / "data").iterdir()} == files
    r = run_cli(t.root, "fsck", "--json")
    assert r.code == 1 and r.json()["problems"] == [said]
    os.rename(t.work, tmp_path / "kept")
    fs, overlay, lock = t.open()
    run(fs, lambda fs: _expect_new_files(fs, 0))
    crash(overlay, lock)
    fsck_clean(t.root)


def test_a_length_damaged_past_the_end_of_the_journal_is_no_torn_tail(tmp_path: Path) -> None:
    """A record whose length was damaged to reach past the end of the journal stops
    the reading as a torn tail does, but whole records follow it: the working tree is
    refused and keeps its files, rather than be cut there and its files deleted."""
    t, journal = _three_new_files(tmp_path)
    whole = journal.read_bytes()
    at = whole.index(b"\xc4\x04new0")  # the name of an L record, 4 bytes long
    damaged = whole[:at] + b"\xc5" + len(whole).to_bytes(2, "big") + whole[at + 2 :]
    journal.write_bytes(damaged)
    files = sorted(os.listdir(t.work / "data"))
    lock = lock_work(t.work)
    with pytest.raises(OverlayError, match=f"{journal} is damaged at byte "):
        Overlay(t.work, t.source.catalog().head, t.source.root_entry, lock)
    os.close(lock)
    assert journal.read_bytes() == damaged
    assert sorted(os.listdir(t.work / "data")) == files and len(files) == 3


def _three_new_files(tmp_path: Path) -> tuple[Tree, Path]:
    """A working tree in the repository's .dvfs/worktrees holding data/new0..2, left
    by a crash; and its journal."""
    t = make_tree(tmp_path)
    t = Tree(t.root, t.source, t.root / ".dvfs" / "worktrees" / "main")
    fs, overlay, lock = t.open()

    async def scenario(fs: WorkingFs) -> None:
        for i in range(3):
            await put(fs, f"data/new{i}", b"new %d\n" % i)

    run(fs, scenario)
    crash(overlay, lock)
    return t, overlay.journal.path


async def _expect_new_files(fs: WorkingFs, count: int) -> None:
    got = await listing(fs, "data")
    assert {k: v for k, v in got.items() if "new" in k} == {
        f"data/new{i}": b"new %d\n" % i for i in range(count)
    }


def test_a_working_tree_without_its_state_keeps_every_file(tmp_path: Path) -> None:
    """A work directory whose ``state`` record is gone, though its journal and data/
    hold changes, is refused (whichever overlay a mount would choose), not started
    afresh with its files taken for strays; fsck names it."""
    t = make_tree(tmp_path)
    t = Tree(t.root, t.source, t.root / ".dvfs" / "worktrees" / "main")
    fs, overlay, lock = t.open()
    run(fs, lambda fs: put(fs, "data/new0", b"new 0\n"))
    crash(overlay, lock)
    state = (t.work / "state").read_bytes()
    (t.work / "state").unlink()
    before = sorted(os.listdir(t.work)), sorted(os.listdir(t.work / "data"))
    lock = lock_work(t.work)
    assert choose_overlay("auto", t.work) == "daemon"
    with pytest.raises(OverlayError) as got:
        Overlay(t.work, t.source.catalog().head, t.source.root_entry, lock)
    os.close(lock)
    said = str(got.value)
    assert said.startswith(f"the working tree {t.work} has no state record though it holds 1 ")
    assert (sorted(os.listdir(t.work)), sorted(os.listdir(t.work / "data"))) == before
    r = run_cli(t.root, "fsck", "--json")
    assert r.code == 1 and r.json()["problems"] == [said]
    (t.work / "state").write_bytes(state)
    fs, overlay, lock = t.open()
    run(fs, lambda fs: _expect_new_files(fs, 1))
    crash(overlay, lock)
    fsck_clean(t.root)


def test_a_file_unlinked_while_open_can_be_opened_again_for_writing(tmp_path: Path) -> None:
    """A file of the version, opened to read and then unlinked, opened again for
    writing through its inode (``/proc/self/fd/N``) or truncated: its copy-up found no
    name to record and failed (EIO, an assertion in the log). It works as on a disk,
    and its data goes at the last close."""
    t = make_tree(tmp_path)
    fs, overlay, lock = t.open()

    async def scenario(fs: WorkingFs) -> None:
        ino = await ino_of(fs, "data/a.txt")
        reader = await fs.open(ino, os.O_RDONLY, CTX)
        await fs.unlink(await ino_of(fs, "data"), b"a.txt", CTX)
        writer = await fs.open(ino, os.O_WRONLY, CTX)
        assert await fs.write(writer.fh, 0, b"ALPHA") == 5
        assert await fs.read(reader.fh, 0, 100) == b"ALPHA\n"
        attrs = pyfuse3.EntryAttributes()
        attrs.st_size = 2
        only_size = {**dict.fromkeys(FIELDS, False), "update_size": True}
        fields = cast(pyfuse3.SetattrFields, SimpleNamespace(**only_size))
        await fs.setattr(ino, attrs, fields, None, CTX)
        assert await fs.read(reader.fh, 0, 100) == b"AL"
        await fs.release(writer.fh)
        await fs.release(reader.fh)
        assert os.listdir(t.work / "data") == []
        assert (await pending(fs))["deleted"] == ["data/a.txt"]

    run(fs, scenario)
    crash(overlay, lock)
    fs, overlay, lock = t.open()
    run(fs, lambda fs: _expect_gone(fs, "a.txt"))
    crash(overlay, lock)
    fsck_clean(t.root)


def test_a_file_unlinked_while_open_counts_no_link(tmp_path: Path) -> None:
    """fstat of a file whose last name is gone says st_nlink 0, as a disk does (SQLite
    and log followers tell a deleted file so); each name removed counts one less."""
    t = make_tree(tmp_path)
    fs, overlay, lock = t.open()

    async def scenario(fs: WorkingFs) -> None:
        data = await ino_of(fs, "data")
        ino = await ino_of(fs, "data/a.txt")
        await fs.link(ino, data, b"again", CTX)
        assert (await fs.getattr(ino, CTX)).st_nlink == 2
        reader = await fs.open(ino, os.O_RDONLY, CTX)
        await fs.unlink(data, b"a.txt", CTX)
        assert (await fs.getattr(ino, CTX)).st_nlink == 1
        await fs.unlink(data, b"again", CTX)
        assert (await fs.getattr(ino, CTX)).st_nlink == 0
        assert await fs.read(reader.fh, 0, 100) == BASE["data/a.txt"]
        await fs.release(reader.fh)

    run(fs, scenario)
    crash(overlay, lock)


async def _expect_gone(fs: WorkingFs, name: str) -> None:
    assert name not in {
        os.fsdecode(n) for n in await fs.kids(fs.overlay.nodes[await ino_of(fs, "data")])
    }


@pytest.mark.parametrize(
    "records",
    [
        [["N", 99, 7, 0o644, 0, None, None, True, None]],  # a kind no node has
        [["N", 99, 0, 0o644, 0, b"x", b"\x01\x02", False, None], ["L", 1, b"x", 99]],
        [["L", [1], b"x", 99]],  # a directory number that is no number
        [["U", 1, "x"]],  # a name that is no bytes
    ],
)
def test_a_journal_record_of_the_wrong_types_is_damage(
    tmp_path: Path, records: list[list[Any]]
) -> None:
    """A record whose fields do not have their types (read from a damaged journal; the
    second holds a base entry that does not decode) refused the mount with an internal
    error; it is damage, named as such, and the working tree's files are kept."""
    t, journal = _three_new_files(tmp_path)
    with open(journal, "ab") as f:
        f.write(pack(records))
    lock = lock_work(t.work)
    with pytest.raises(OverlayError, match=f"{journal} is damaged "):
        Overlay(t.work, t.source.catalog().head, t.source.root_entry, lock)
    os.close(lock)
    assert len(os.listdir(t.work / "data")) == 3


def test_fsck_follows_no_link_out_of_the_working_trees(tmp_path: Path) -> None:
    """fsck reads the working trees in .dvfs/worktrees, but never through a link
    there (no mount uses one): what it points to is not the repository's."""
    t, journal = _three_new_files(tmp_path)
    os.rename(t.work, tmp_path / "outside")
    (tmp_path / "outside" / journal.name).write_bytes(b"\xc1" * 40)
    os.symlink(tmp_path / "outside", t.work)
    fsck_clean(t.root)
    os.unlink(t.work)
    os.rename(t.root / ".dvfs" / "worktrees", tmp_path / "trees")
    os.symlink(tmp_path / "trees", t.root / ".dvfs" / "worktrees")
    os.symlink(tmp_path / "outside", tmp_path / "trees" / "main")
    fsck_clean(t.root)


def test_a_torn_or_zero_filled_last_append_is_cut_and_nothing_else(tmp_path: Path) -> None:
    """A power cut during an append leaves its bytes cut short, or the file's new size
    filled with zeros past what reached the disk (ext4 does). Zeros decoded as a valid
    record (a chmod's node owned by root, its times 0) or as a record of no file,
    which refused the mount as damaged; every such tail is cut, and the records
    before it are kept."""
    t, journal = _three_new_files(tmp_path)
    fs, overlay, lock = t.open()
    before = journal.read_bytes()

    async def chmod(fs: WorkingFs) -> None:
        n = overlay.nodes[await ino_of(fs, "data/new2")]
        overlay.set_attrs(n, mode=0o600)

    run(fs, chmod)
    crash(overlay, lock)
    appended = journal.read_bytes()[len(before) :]
    assert appended
    for cut in range(len(appended) + 1):
        for tail in (b"", b"\0" * (len(appended) - cut), b"\0" * 4096):
            torn = before + appended[:cut] + tail
            journal.write_bytes(torn)
            fs, overlay, lock = t.open()
            kept = torn.startswith(before + appended)  # (its last bytes may be zeros)
            assert journal.read_bytes() == before + (appended if kept else b"")

            want = 0o600 if kept else 0o644
            run(fs, functools.partial(_expect_mode, path="data/new2", mode=want))
            crash(overlay, lock)
    fsck_clean(t.root)


async def _expect_mode(fs: WorkingFs, path: str, mode: int) -> None:
    n = fs.overlay.nodes[await ino_of(fs, path)]
    assert (n.mode, n.uid) == (mode, os.getuid())


def test_damage_before_whole_appends_is_refused_even_as_zeros(tmp_path: Path) -> None:
    """Bytes changed, or zeroed, in an append that whole ones follow are damage, not a
    torn tail, and so are bytes past the length of the last append's header, or that
    begin no record: the working tree is refused at that append, and keeps its files."""
    t, journal = _three_new_files(tmp_path)
    whole = journal.read_bytes()
    second = 8 + int.from_bytes(whole[:4], "little")  # where the second append begins
    size = 8 + int.from_bytes(whole[second : second + 4], "little")
    for damaged in (
        whole[: second + 12] + bytes([whole[second + 12] ^ 1]) + whole[second + 13 :],
        whole[:second] + b"\0" * size + whole[second + size :],
        whole[: second + 12] + b"\xc1" * size,  # more than its header's length; no frame after
        whole[:second] + b"\x07" * 64,  # no frame, nor record, begins there
    ):
        journal.write_bytes(damaged)
        lock = lock_work(t.work)
        with pytest.raises(OverlayError, match=f"{journal} is damaged at byte {second} of "):
            Overlay(t.work, t.source.catalog().head, t.source.root_entry, lock)
        os.close(lock)
        assert journal.read_bytes() == damaged
        assert len(os.listdir(t.work / "data")) == 3
        r = run_cli(t.root, "fsck", "--json")
        assert r.code == 1 and f"is damaged at byte {second} of " in r.json()["problems"][0]
    journal.write_bytes(whole)
    fsck_clean(t.root)


def test_a_journal_of_format_2_is_read_and_written_again_framed(tmp_path: Path) -> None:
    """A work directory left by a dvfs whose journal records were bare (format 2) is
    replayed, a torn tail cut as then; its records are written again framed under the
    next generation, and later changes go after them."""
    t, journal = _three_new_files(tmp_path)
    framed = read_journal(journal.read_bytes(), True)
    assert framed.damaged_at is None and framed.records
    bare = b"".join(msgpack.packb(r, use_bin_type=True) for r in framed.records)
    journal.write_bytes(bare + bare[:5])  # and a torn record
    state = msgpack.unpackb((t.work / "state").read_bytes())
    (t.work / "state").write_bytes(msgpack.packb({**state, "format": 2}))
    assert run_cli(t.root, "fsck", "--json").code == 0  # read as format 2
    fs, overlay, lock = t.open()
    assert not journal.exists()
    assert msgpack.unpackb((t.work / "state").read_bytes())["format"] == 3
    assert overlay.journal.path == t.work / f"journal.{state['gen'] + 1}"
    assert read_journal(overlay.journal.path.read_bytes(), True).records == framed.records
    run(fs, lambda fs: put(fs, "data/new3", b"new 3\n"))
    crash(overlay, lock)
    fs, overlay, lock = t.open()
    run(fs, lambda fs: _expect_new_files(fs, 4))
    crash(overlay, lock)
    fsck_clean(t.root)


def test_a_rebase_that_fails_after_the_branch_moved_takes_no_more_changes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The version is recorded and the branch moved, but the working tree's new state
    cannot be written (a full disk): the snapshot said it failed, and changes made
    after it went into the journal that already says the snapshot was recorded, so
    the next mount started clean over the version and dropped them. The answer now
    names the version and says to remount; the working tree takes no more changes,
    and the next mount shows the version."""
    t = make_tree(tmp_path)
    fs, overlay, lock = t.open()
    seen: dict[str, Any] = {}

    def full() -> None:
        raise OSError(errno.ENOSPC, "No space left on device")

    async def snapshot(fs: WorkingFs) -> None:
        await put(fs, "data/a.txt", b"alpha 2\n")
        seen["tree"] = await listing(fs)
        monkeypatch.setattr(overlay, "_write_state", full)  # (only the rebase writes it)
        got = await OverlaySnapshots(fs, t.source, overlay).take(Request("two"))
        monkeypatch.undo()
        seen["version"] = got["version"]
        seen["warnings"] = got["warnings"]
        with pytest.raises(pyfuse3.FUSEError) as refused:
            await put(fs, "data/later.txt", b"made after\n")
        seen["errno"] = refused.value.errno

    run(fs, snapshot)
    assert seen["version"] == "v2"
    (warning,) = seen["warnings"]
    assert "v2 is recorded, but the working tree could not be made clean over it" in warning
    assert "No space left on device" in warning and "unmount it and mount it again" in warning
    assert seen["errno"] == errno.EROFS
    crash(overlay, lock)

    fs, overlay, lock = t.open()
    assert overlay.base == t.source.catalog().head
    again: dict[str, Any] = {}

    async def look(fs: WorkingFs) -> None:
        again["tree"] = await listing(fs)
        again["status"] = await pending(fs)

    run(fs, look)
    assert again == {"tree": seen["tree"], "status": NO_CHANGES}
    overlay.close()  # its lock too
    fsck_clean(t.root)


@pytest.mark.parametrize("name", ["journal", "state"])
def test_a_journal_or_state_that_is_no_regular_file_is_refused(tmp_path: Path, name: str) -> None:
    """A FIFO in place of the working tree's journal (or its state) held the daemon
    for ever at mount (opened, then read, waiting for a writer): it is refused with
    one line, and the working tree mounts once the file is put back."""
    t, journal = _three_new_files(tmp_path)
    target = journal if name == "journal" else t.work / "state"
    kept = target.read_bytes()
    target.unlink()
    os.mkfifo(target, 0o600)
    lock = lock_work(t.work)
    said: list[str] = []

    def open_overlay() -> None:
        with pytest.raises(DvfsError) as got:
            Overlay(t.work, t.source.catalog().head, t.source.root_entry, lock)
        said.append(str(got.value))

    opening = threading.Thread(target=open_overlay, daemon=True)
    opening.start()
    opening.join(30)  # (a guard: it hung here before)
    os.close(lock)
    assert not opening.is_alive(), "opening the overlay waits on the FIFO"
    (line,) = said
    assert f"{target}" in line and "not a regular file" in line and "\n" not in line
    assert f"move {t.work}" in line
    assert stat.S_ISFIFO(os.lstat(target).st_mode)
    target.unlink()
    target.write_bytes(kept)
    fs, overlay, lock = t.open()
    run(fs, lambda fs: _expect_new_files(fs, 3))
    crash(overlay, lock)
    fsck_clean(t.root)


def test_a_state_of_a_newer_format_is_refused_as_a_newer_dvfs_s(tmp_path: Path) -> None:
    """A working tree whose state a newer dvfs wrote (format 4, its other fields
    changed) was refused as damaged, with the advice to move it aside; it is named
    as a newer dvfs's and left as it is, and fsck calls it damaged nowhere (gc, which
    cannot tell its base, says why it cannot run). So is a kernel overlay's
    ``layers`` of a newer format."""
    t, _ = _three_new_files(tmp_path)
    state = t.work / "state"
    kept = state.read_bytes()
    newer = msgpack.packb({"format": 4, "generation": "x", "other": [1, 2]})
    state.write_bytes(newer)
    lock = lock_work(t.work)
    with pytest.raises(OverlayError) as got:
        Overlay(t.work, t.source.catalog().head, t.source.root_entry, lock)
    os.close(lock)
    said = str(got.value)
    assert f"the working tree {t.work} was written by a newer dvfs (state format 4" in said
    assert "upgrade dvfs" in said and "damaged" not in said
    assert state.read_bytes() == newer and len(os.listdir(t.work / "data")) == 3
    (problem,) = run_cli(t.root, "fsck", "--json").json()["problems"]  # (gc's roots)
    assert "state is of format 4, written by a newer dvfs" in problem, problem
    assert "damaged" not in problem
    state.write_bytes(kept)
    fs, overlay, lock = t.open()
    run(fs, lambda fs: _expect_new_files(fs, 3))
    crash(overlay, lock)
    kernel = tmp_path / "kernel"
    kernel.mkdir()
    (kernel / "layers").write_bytes(newer)
    with pytest.raises(LayersError) as got_layers:
        Layers(kernel, None)
    assert "was written by a newer dvfs (layers format 4" in str(got_layers.value)
    fsck_clean(t.root)


def test_a_link_swapped_in_for_the_work_directory_leads_no_write_elsewhere(
    tmp_path: Path,
) -> None:
    """The daemon named its work directory by path for its whole life: a symbolic link
    swapped in for it after the mount began took its new files, copied-up files,
    state, journals and the snapshot's rebase elsewhere. The work directory is held
    open from the start, so the working tree goes on in the directory it opened."""
    t = make_tree(tmp_path)
    fs, overlay, lock = t.open()
    aside, elsewhere = tmp_path / "aside", tmp_path / "elsewhere"
    (elsewhere / "data").mkdir(parents=True)
    os.rename(t.work, aside)
    t.work.symlink_to(elsewhere)
    seen: dict[str, Any] = {}

    async def scenario(fs: WorkingFs) -> None:
        await put(fs, "data/new.txt", b"new\n")
        await put(fs, "data/a.txt", b"alpha 2\n")  # (copied up)
        got = await OverlaySnapshots(fs, t.source, overlay).take(Request("two"))
        seen["version"] = got["version"]
        await put(fs, "data/b.txt", b"beta 2\n")
        seen["tree"] = await listing(fs)

    run(fs, scenario)
    crash(overlay, lock)
    assert seen["version"] == "v2"
    assert sorted(str(p.relative_to(elsewhere)) for p in elsewhere.rglob("*")) == ["data"]
    t.work.unlink()
    os.rename(aside, t.work)
    fs, overlay, lock = t.open()
    again: dict[str, Any] = {}

    async def look(fs: WorkingFs) -> None:
        again["status"] = await pending(fs)
        again["tree"] = await listing(fs)

    run(fs, look)
    assert again == {"status": {**NO_CHANGES, "modified": ["data/b.txt"]}, "tree": seen["tree"]}
    overlay.close()
    fsck_clean(t.root)


def test_a_kernel_overlay_record_that_is_no_regular_file_holds_no_mount(tmp_path: Path) -> None:
    """A FIFO in place of a kernel overlay's ``layers`` held the daemon for ever at
    mount, as one in place of ``recorded.<gen>`` or ``pending`` did: ``layers`` is
    refused with one line, and the other two are read as damaged (every upper file
    hashed again; no snapshot pending), as their damage is."""
    work = tmp_path / "work"
    Layers(work, None).close()
    layers = (work / "layers").read_bytes()
    said: list[str] = []

    lock = lock_work(work)  # (each opening below is given a descriptor of it)

    def open_layers() -> None:
        try:
            Layers(work, None, os.dup(lock)).close()
        except LayersError as exc:
            said.append(str(exc))
        else:
            said.append("opened")

    for fifo in ("layers", "recorded.1", "pending"):
        with contextlib.suppress(FileNotFoundError):
            (work / fifo).unlink()
        os.mkfifo(work / fifo, 0o600)
        opening = threading.Thread(target=open_layers, daemon=True)
        opening.start()
        opening.join(30)  # (a guard: it hung here before)
        assert not opening.is_alive(), f"opening the layers waits on the FIFO {fifo}"
        (work / fifo).unlink()
        if fifo == "layers":
            (work / fifo).write_bytes(layers)
    os.close(lock)
    first, *rest = said
    assert "layers cannot be read (not a regular file): move" in first and "\n" not in first
    assert rest == ["opened", "opened"]
