"""A ``dvfs`` process that counts its own fsyncs: what a batch of writes costs the
disk, told without timing it (tests) and printed beside the times (benchmarks)."""

from __future__ import annotations

# ``python -c COUNTING ARGS``: ``dvfs ARGS`` counting its fsyncs and fdatasyncs, printed
# last on stderr as "FSYNCS N".
COUNTING = """
import atexit, os, sys
from vfs.cli import main
calls = [0]
def counted(real):
    def call(fd):
        calls[0] += 1
        return real(fd)
    return call
os.fsync, os.fdatasync = counted(os.fsync), counted(os.fdatasync)
atexit.register(lambda: print(f"FSYNCS {calls[0]}", file=sys.stderr))
sys.argv = ["dvfs", *sys.argv[1:]]
main()
"""
