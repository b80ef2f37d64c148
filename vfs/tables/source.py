"""One side of a row diff: a file copied into a scratch directory, with its chunk list.

The engine reads files by name, and a version's file exists only as chunks in the
object store (compressed, in packs), so each side is first written out whole, one
verified chunk at a time: memory holds one chunk (at most ``MAX_CHUNK``), the disk
holds the copy. A working-tree file is copied too, read once from a descriptor
opened beneath the repository root without following links (``vfs.beneath``) and cut
into chunks as ``dvfs add`` would cut it, so both sides have chunk lists to compare
and the engine reads a file that cannot change or turn into a link while it works.

While copying, each side counts the bytes the fast path must know about
(``SPECIAL``: quote characters and carriage returns), so that deciding whether the
fast path is sound costs no second read.

Scratch directories are ``.dvfs/rows-<pid>-<random>``, removed when the diff ends;
one left by a process that no longer runs (a kill -9) is removed by the next diff.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import stat
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from vfs.beneath import ABSENT, READ, Walker
from vfs.chunking import MAX_SIZE_RANGE, Chunker
from vfs.codec import ChunkRef, Entry
from vfs.errors import FileUnreadable, FormatError, UsageError
from vfs.ids import hash_bytes
from vfs.objects import ObjectStore
from vfs.quoting import quote_name
from vfs.tables.formats import MAX_LINE

MAX_CHUNK = MAX_SIZE_RANGE[1]  # no chunk dvfs makes is larger
SPECIAL = (b'"', b"'", b"\r")  # counted per side for the fast path (vfs.tables.regions)
LOOK = 64 * 1024  # bytes of each end kept for the format check
_SCRATCH = re.compile(r"^rows-(\d+)-")


@dataclass
class Side:
    """A file as one side of a diff: where its copy is and what it is made of."""

    label: str  # how messages name this side: "v3", "the working tree"
    path: bytes  # its path in the repository
    file: Path  # its copy in the scratch directory
    size: int = 0
    chunks: list[ChunkRef] = field(default_factory=list)
    counts: dict[bytes, int] = field(default_factory=lambda: dict.fromkeys(SPECIAL, 0))
    head: bytes = b""  # the first LOOK bytes
    tail: bytes = b""  # the last LOOK bytes
    present: bool = True  # False: the file is not on this side (an empty stand-in)
    longest_line: int = 0  # bytes of the longest line, its newline left out
    _open_line: int = 0  # bytes since the last newline so far

    def _take(self, data: bytes) -> None:
        """Account for the next piece of the file (already written)."""
        for b in SPECIAL:
            self.counts[b] += data.count(b)
        if len(self.head) < LOOK:
            self.head += data[: LOOK - len(self.head)]
        self.tail = (self.tail + data)[-LOOK:] if len(data) < LOOK else data[-LOOK:]
        self.size += len(data)
        first = data.find(b"\n")
        if first < 0:
            self._open_line += len(data)
        else:
            longest = self._open_line + first
            if len(data) > MAX_LINE:  # a line inside the piece could be too long too
                pos = first + 1
                while (nl := data.find(b"\n", pos)) >= 0:
                    longest = max(longest, nl - pos)
                    pos = nl + 1
            self.longest_line = max(self.longest_line, longest)
            self._open_line = len(data) - data.rfind(b"\n") - 1
        self.longest_line = max(self.longest_line, self._open_line)


@contextlib.contextmanager
def scratch(parent: Path) -> Iterator[Path]:
    """A fresh scratch directory below ``parent`` (``.dvfs``), removed afterwards.

    Directories that dead processes left behind are removed first.
    """
    with contextlib.suppress(OSError):
        for name in os.listdir(parent):
            m = _SCRATCH.match(name)
            if m and not _alive(int(m.group(1))):
                shutil.rmtree(parent / name, ignore_errors=True)
    path = Path(tempfile.mkdtemp(prefix=f"rows-{os.getpid()}-", dir=parent))
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        return True
    return True


def empty_side(label: str, path: bytes, dest: Path) -> Side:
    """A side where the file does not exist: an empty file stands in for it."""
    dest.write_bytes(b"")
    return Side(label, path, dest, present=False)


def from_version(store: ObjectStore, entry: Entry, label: str, path: bytes, dest: Path) -> Side:
    """Write the file ``entry`` describes to ``dest``, verifying every chunk."""
    side = Side(label, path, dest)
    with open(dest, "wb") as out:
        for c in entry.chunks:
            if c.size > MAX_CHUNK:
                raise FormatError(
                    f"{quote_name(path)} in {label} names a chunk of {c.size:,} bytes, more "
                    f"than dvfs ever makes ({MAX_CHUNK:,}): run `dvfs fsck`"
                )
            data = store.get(c.oid)  # verified against its id
            if len(data) != c.size:
                raise FormatError(
                    f"{quote_name(path)} in {label}: a chunk holds {len(data):,} bytes, "
                    f"its record says {c.size:,}: run `dvfs fsck`"
                )
            out.write(data)
            side._take(data)
            side.chunks.append(c)
    return side


def from_working(root: Path, rel: bytes, chunker: Chunker, dest: Path) -> Side:
    """Copy the working file ``rel`` to ``dest`` and cut it into chunks on the way."""
    side = Side("the working tree", rel, dest)
    with Walker(root) as walker:
        try:
            dir_fd, leaf = walker.parent(rel)
            fd = os.open(leaf, READ, dir_fd=dir_fd)
        except PermissionError:
            raise FileUnreadable(f"cannot read {quote_name(rel)}: permission denied") from None
        except OSError as exc:
            if exc.errno in ABSENT:
                raise UsageError(
                    f"{quote_name(rel)} is not a file of the working tree "
                    "(give two revisions to compare versions)"
                ) from None
            raise
    with os.fdopen(fd, "rb") as fh, open(dest, "wb") as out:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise UsageError(f"{quote_name(rel)} is not a regular file")
        for data in chunker.stream(fh):
            out.write(data)
            side._take(data)
            side.chunks.append(ChunkRef(hash_bytes(data), len(data)))
    return side
