"""The fsyncs that stand between an ``add`` or a ``commit`` and the record naming
its objects run at the same time, not one after the other.

Each fsync is a round trip to the disk (its cache flushed); those a record must wait
for (the pack's data, its index file, the folder naming them, and the new staging
index written beside the old one) are all started before any is waited for. Told
without timing anything: in the command's own process, each of those four fsyncs
waits at a barrier of four before it goes on, so the command ends only if all four
were under way at once (one after the other, the first waits alone and the barrier
gives up).
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
# file, the objects folder and a new staging index each wait for the three others
# (once each); a barrier that gives up fails the command.
AT_ONCE = """
import os, re, sys, threading
from vfs.cli import main
meet = threading.Barrier(4, timeout=20)
met = set()
lock = threading.Lock()
def kind(path):
    name = os.path.basename(path)
    if re.fullmatch(r"pack-[0-9a-f]{64}[.]pack", name):
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
        with lock:
            first = k is not None and k not in met
            met.add(k)
        if first:
            meet.wait()
        return real(fd)
    return call
os.fsync, os.fdatasync = waiting(os.fsync), waiting(os.fdatasync)
sys.argv = ["dvfs", *sys.argv[1:]]
main()
"""


@pytest.mark.parametrize("command", ["add", "commit"])
def test_the_fsyncs_before_the_index_names_the_objects_run_at_once(
    repo: Repo, command: str
) -> None:
    """``dvfs add`` makes its pack durable (data, index file, folder) while it writes
    the new index beside the old one; ``dvfs commit`` does the same with the pack of
    its trees and version: four fsyncs under way at once, where the pack's three went
    one after the other (each a disk round trip, 3-8 ms on the benchmark machine)."""
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


def test_a_store_syncs_a_pack_its_index_file_and_its_folder_at_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """``ObjectStore.sync`` of a finished pack: its data, its index file and the folder
    are fsynced at the same time (a barrier of three, as above), and the pack reads
    back whole afterwards."""
    root = tmp_path / "objects"
    store = ObjectStore.create(root)
    oid, _ = store.put(ObjKind.CHUNK, os.urandom(100_000))
    meet = threading.Barrier(3, timeout=20)
    met: set[str] = set()
    lock = threading.Lock()
    folder = os.path.realpath(root)

    def waiting(real: Callable[[int], None]) -> Callable[[int], None]:
        def call(fd: int) -> None:
            path = os.readlink(f"/proc/self/fd/{fd}")
            k = "folder" if path == folder else os.path.splitext(path)[1]
            with lock:
                first = k in ("folder", ".pack", ".idx") and k not in met
                met.add(k)
            if first:
                meet.wait()
            real(fd)

        return call

    monkeypatch.setattr(os, "fsync", waiting(os.fsync))
    monkeypatch.setattr(os, "fdatasync", waiting(os.fdatasync))
    store.sync()
    monkeypatch.undo()
    assert {"folder", ".pack", ".idx"} <= met
    store.close()
    (pack,) = root.glob("pack-*.pack")
    assert pack_io.check_pack(pack) is None
    again = ObjectStore(root)
    assert len(again.get(oid)) == 100_000
    again.close()
