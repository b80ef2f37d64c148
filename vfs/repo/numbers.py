"""The ids of v1..vK along one first-parent chain, kept so that ``vN`` is found at once.

``vN`` names the version numbered N on the current branch's first-parent chain
(:meth:`vfs.repo.history.History.resolve`). Without help that is a walk down from the
branch's tip, one version record per step: 0.18 s for ``v3`` of 1,500 versions, and
growing with the history. As the chain below a version never changes, the ids of one
chain, from v1 up, are kept in the repository as a cache of derived data::

    .dvfs/numbers       b"DVFSNUM1", then the id of v1, v2, ..., vK (32 bytes each)

A walk from a tip goes down only until it meets the kept chain (a version whose id
is the one kept at its number): below that point the chains are the same, and the
kept id at N is read with one ``pread``. An answer is used only if that version's
record says it is numbered N; anything else (a file damaged, cut short, written by
another branch's walk, or naming a version gc deleted) is ignored, and the walk goes
on as without it. A walk that went far rewrites the file for its own chain
(atomically, without fsync: a file lost or torn by a crash only costs a walk); a
repository whose ``.dvfs`` cannot be written answers all the same.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from vfs.errors import StorageFull
from vfs.model.ids import ID_BYTES
from vfs.store.durable import write_atomic

NUMBERS_FILE = "numbers"
MAGIC = b"DVFSNUM1"
MAX_KEPT = 10_000_000  # versions of one chain kept at most (320 MB)
REWRITE_AFTER = 32  # versions a walk must go down past the kept chain to rewrite it


class Numbers:
    """The kept chain of one repository (see the module docstring).

    Each read opens the file anew (no descriptor is held between calls, and a file
    another process rewrote meanwhile is read whole or not at all); one that is
    missing is not looked for again by this object until it writes one.
    """

    def __init__(self, dvfs_dir: Path) -> None:
        self.path = dvfs_dir / NUMBERS_FILE
        self._absent = False

    def _read(self, start: int, count: int) -> bytes | None:
        """``count`` ids from ``v<start>`` on, or None if the file does not hold them."""
        if self._absent:
            return None
        try:
            fd = os.open(self.path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
        except FileNotFoundError:
            self._absent = True
            return None
        except OSError:
            return None
        try:
            size = os.fstat(fd).st_size
            kept = (size - len(MAGIC)) // ID_BYTES
            if (size - len(MAGIC)) % ID_BYTES or not 1 <= start <= start + count - 1 <= kept:
                return None
            if kept > MAX_KEPT or os.pread(fd, len(MAGIC), 0) != MAGIC:
                return None
            raw = os.pread(fd, count * ID_BYTES, len(MAGIC) + (start - 1) * ID_BYTES)
        except OSError:
            return None
        finally:
            os.close(fd)
        return raw if len(raw) == count * ID_BYTES else None

    def get(self, number: int) -> bytes | None:
        """The id kept for ``v<number>``, or None."""
        return self._read(number, 1)

    def below(self, number: int) -> list[bytes] | None:
        """The ids kept for v1..v<number>, in order, or None if not all are kept."""
        raw = self._read(1, number) if number > 0 else b""
        if raw is None:
            return None
        return [raw[i : i + ID_BYTES] for i in range(0, len(raw), ID_BYTES)]

    def save(self, ids: list[bytes]) -> None:
        """Keep ``ids`` (of v1, v2, ... in order) as the chain; quietly nothing if the
        repository cannot be written."""
        if not ids or len(ids) > MAX_KEPT:
            return
        with contextlib.suppress(OSError, StorageFull):
            write_atomic(self.path, MAGIC + b"".join(ids), sync=False)
            self._absent = False
