"""Processes forked from one that has imported dvfs: each must behave as a process of
its own.

A program that imports dvfs and forks (a ``multiprocessing`` pool, a DataLoader's
workers) gets children that write files beside each other.
"""

from __future__ import annotations

from pathlib import Path

from tests.support.cli import run_python

_TWO_WRITERS = """
import os, sys
from pathlib import Path
from vfs.store.durable import write_atomic, write_beside

target = Path(sys.argv[1]) / "main"
write_atomic(target, b"parent")  # the parent has named one temporary file already
ready_r, ready_w = os.pipe()
first = os.fork()
if first == 0:  # a write under way: its temporary file stands until the rename
    write_beside(target, b"first")
    os.write(ready_w, b"x")
    os._exit(0)
os.read(ready_r, 1)
_, status = os.waitpid(first, 0)
assert status == 0, status
second = os.fork()
if second == 0:
    try:
        write_atomic(target, b"second")
    except BaseException as exc:
        print("second writer failed:", exc)
        os._exit(1)
    os._exit(0)
_, status = os.waitpid(second, 0)
print("second writer:", os.waitstatus_to_exitcode(status))
print("file:", target.read_bytes().decode())
"""


def test_forked_writers_of_one_file_never_meet_on_a_temporary_name(tmp_path: Path) -> None:
    """Two children of a process that imported dvfs write the same file, one while the
    other's write is still under way: the second is not refused for a temporary name
    its sibling already holds (both would have counted from the parent's count)."""
    out = run_python(_TWO_WRITERS, str(tmp_path))
    assert "second writer: 0" in out, out
    assert "file: second" in out, out
    leftovers = [p.name for p in tmp_path.iterdir() if p.name != "main"]
    assert len(leftovers) == 1 and leftovers[0].startswith(".tmp-main."), leftovers
