"""The fsyncs that stand between an ``add`` or a ``commit`` and the record naming
its objects run at the same time, not one after the other, but for the pack's data.

Each fsync is a round trip to the disk (its cache flushed); the pack's data is fsynced
before the pack is renamed into place (a name durable before the bytes would come back
from a power cut as a truncated pack), and those a record must then wait for (the
pack's index file, the folder naming them, and the new staging index written beside
the old one) are all started before any is waited for. Told without timing anything:
in the command's own process, each of those three fsyncs waits at a barrier of three
before it goes on, so the command ends only if all three were under way at once (one
after the other, the first waits alone and the barrier gives up); an fsync of a pack
under its final name, or of the folder before the pack's data, fails the command.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.support.cli import Repo, add_in_process, fsck_clean, run_as_dvfs
from tests.support.cli import make_repo_fixture as make_repo_fixture
from tests.support.cli import repo_fixture as repo_fixture
from vfs.store import pack_files as pack_io
from vfs.store.objects import ObjectStore, ObjKind

# ``python -c AT_ONCE ARGS``: ``dvfs ARGS`` whose fsyncs of a finished pack, its index
# file, the objects folder and a new staging index each wait for the two others
# (once each); a barrier that gives up fails the command, as does an fsync of a pack
# under its final name or of the folder before a pack's data.
AT_ONCE = """
import os, re, sys, threading
from vfs.cli import main
meet = threading.Barrier(3, timeout=20)
met = set()
synced = set()
lock = threading.Lock()
def kind(path):
    name = os.path.basename(path)
    if re.fullmatch(r"pack-[0-9a-f]{64}[.]pack", name):
        return "renamed pack"
    if name.startswith(".tmp-pack-"):
        return "pack"
    if re.fullmatch(r"pack-[0-9a-f]{64}[.]idx", name):
        return "index file"
    if path.endswith("/.dvfs/objects"):
        return "folder"
    if name.startswith(".tmp-index."):
        return "staging index"
    return None
def waiting(real):
    def call(fd):
        k = kind(os.readlink(f"/proc/self/fd/{fd}"))
        if k == "renamed pack" or (k == "folder" and "pack" not in synced):
            raise OSError(f"{k} fsynced before the pack's data")
        with lock:
            first = k not in (None, "pack") and k not in met
            met.add(k)
        if first:
            meet.wait()
        real(fd)
        synced.add(k)
    return call
os.fsync, os.fdatasync = waiting(os.fsync), waiting(os.fdatasync)
sys.argv = ["dvfs", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", ["add", "commit"])
def test_the_fsyncs_before_the_index_names_the_objects_run_at_once(
    repo: Repo, command: str
) -> None:
    """``dvfs add`` makes its pack durable (data, then index file and folder) while it
    writes the new index beside the old one; ``dvfs commit`` does the same with the
    pack of its trees and version: after the pack's data, three fsyncs under way at
    once, where the pack's went one after the other (each a disk round trip, 3-8 ms
    on the benchmark machine)."""
    repo.write("data/a.csv", "x,y\n1,2\n" * 1000)
    if command == "commit":
        add_in_process(repo, "data")
        args = ["commit", "-m", "first"]
    else:
        args = ["add", "data"]
    proc = run_as_dvfs(repo.root, AT_ONCE, *args)
    assert proc.returncode == 0, proc.stderr
    if command == "commit":
        assert "first" in repo.ok("log").out
    else:
        assert "data/a.csv" in repo.ok("status").out
    fsck_clean(repo.root)


def test_a_store_syncs_a_pack_then_its_index_file_and_its_folder_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ObjectStore.sync`` of a finished pack: its data under its temporary name, then
    its index file and the folder at the same time (a barrier of two, as above), and
    the pack reads back whole afterwards."""
    root = tmp_path / "objects"
    store = ObjectStore.create(root)
    oid, _ = store.put(ObjKind.CHUNK, os.urandom(100_000))
    meet = threading.Barrier(2, timeout=20)
    met: set[str] = set()
    synced: list[str] = []
    lock = threading.Lock()
    folder = os.path.realpath(root)

    def waiting(real: Callable[[int], None]) -> Callable[[int], None]:
        def call(fd: int) -> None:
            path = os.readlink(f"/proc/self/fd/{fd}")
            name = os.path.basename(path)
            k = "folder" if path == folder else os.path.splitext(path)[1]
            if name.startswith(".tmp-pack-"):
                k = "data"
            assert k != ".pack", "a pack fsynced under its final name"
            if k == "folder":
                assert "data" in synced, "the folder is fsynced before the pack's data"
            with lock:
                first = k in ("folder", ".idx") and k not in met
                met.add(k)
            if first:
                meet.wait()
            real(fd)
            synced.append(k)

        return call

    monkeypatch.setattr(os, "fsync", waiting(os.fsync))
    monkeypatch.setattr(os, "fdatasync", waiting(os.fdatasync))
    store.sync()
    monkeypatch.undo()
    assert {"folder", "data", ".idx"} <= met
    store.close()
    (pack,) = root.glob("pack-*.pack")
    assert pack_io.check_pack(pack) is None
    again = ObjectStore(root)
    assert len(again.get(oid)) == 100_000
    again.close()
