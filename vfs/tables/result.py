"""The answer of a row-level diff (``vfs.tables.rowdiff``): schema changes, counts,
the rows shown, or a byte-level summary; and the error of a key naming several rows."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from vfs.errors import DvfsError
from vfs.tables.formats import Format


@dataclass(frozen=True)
class SchemaChange:
    """A column added, removed or retyped."""

    status: str  # "added" | "removed" | "retyped"
    name: str
    old_type: str | None = None
    new_type: str | None = None


@dataclass(frozen=True)
class RowChange:
    """One row added or removed (``values``), or changed (``changes``: old, new)."""

    status: str  # "added" | "removed" | "changed"
    key: dict[str, Any] = field(default_factory=dict)
    values: dict[str, Any] = field(default_factory=dict)
    changes: dict[str, tuple[Any, Any]] = field(default_factory=dict)
    count: int = 1  # unkeyed: how many times


@dataclass(frozen=True)
class ByteSummary:
    """What can be said of a file that is not read as a table."""

    reason: str
    old_size: int
    new_size: int
    shared_bytes: int  # bytes in chunks both sides have


@dataclass
class RowDiff:
    """The answer of :func:`diff_rows`."""

    path: bytes
    old_label: str
    new_label: str
    fmt: Format
    key: tuple[str, ...]
    schema: list[SchemaChange] = field(default_factory=list)
    added: int = 0
    removed: int = 0
    changed: int = 0
    unchanged: int = 0
    columns: dict[str, int] = field(default_factory=dict)  # changed rows per column
    rows: list[RowChange] = field(default_factory=list)
    method: str = "full"  # "full" | "chunks" | "bytes"
    shared_bytes: int = 0  # bytes of rows the fast path did not compare
    notes: list[str] = field(default_factory=list)
    bytes_only: ByteSummary | None = None

    @property
    def more(self) -> int:
        """Rows added, removed or changed that are not shown (beyond the limit)."""
        return max(0, self.added + self.removed + self.changed - self._shown())

    def _shown(self) -> int:
        return sum(r.count for r in self.rows)


class KeyNotUnique(DvfsError):
    """A ``--key`` names several rows on one side."""
