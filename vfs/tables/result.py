"""The answer of a row-level diff (``vfs.tables.rowdiff``): schema changes, counts,
the rows shown, or a byte-level summary; the error of a key naming several rows; and
the words a diff's messages name what the user gave with (``CLI``, ``PAGE``)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from vfs.errors import DvfsError
from vfs.quoting import quote_name
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
    # Columns where a text may stand beside a number, a boolean or a list
    # (``rowdiff.mixed_columns``): a text reading as one is quoted when shown.
    mixed: frozenset[str] = frozenset()

    @property
    def more(self) -> int:
        """Rows added, removed or changed that are not shown (beyond the limit)."""
        return max(0, self.added + self.removed + self.changed - self._shown())

    def _shown(self) -> int:
        return sum(r.count for r in self.rows)


# What a line puts between names and values ("id=1  a=x, b: y -> z"), and blanks at
# either end, which cannot be seen: text holding them is shown quoted.
_AMBIGUOUS = re.compile(r"^\s|\s$|, |=|: | -> |  ")


def shown(text: str) -> str:
    """``text`` (a column's name, a text value) quoted when it is unsafe
    (``quote_name``) or would read as the separators of a line or a list: ``x, y=z``
    is one value, not two; `` v`` is not ``v``."""
    quoted = quote_name(text)
    if quoted == text and _AMBIGUOUS.search(text):
        return f'"{text}"'
    return quoted


def shown_binary(text: str) -> str:
    """A binary value's text (``engine.plain_value``: printable ASCII, its own escapes)
    quoted where a text would be for its separators, its backslashes not doubled."""
    bare = text.replace("\\", "")
    return text if text and shown(bare) == bare else f'"{text}"'


@dataclass(frozen=True)
class Words:
    """How a row diff's messages name what the user gave it and where: the CLI's
    options, or the dashboard's controls. A message is built with the caller's words,
    never rewritten after."""

    key: str  # the key as given: "--key"
    several: str  # a key of several columns, as given: "--key a,b"
    no_key: str  # how to compare whole rows instead: "leave --key out"
    rows: str  # a row diff, as asked for: "--rows"
    reader: str  # what reads the files: "dvfs diff --rows"


CLI = Words("--key", "--key a,b", "leave --key out", "--rows", "dvfs diff --rows")
PAGE = Words("the key", "a,b", "empty the key field", "a row diff", "a row diff")


class KeyNotUnique(DvfsError):
    """A key names several rows on one side: ``key`` (columns) in ``where`` (the file
    and its version, quoted), whose ``example`` (``id=7``) names ``rows`` rows; the
    message in ``words`` (:meth:`worded` gives it in others)."""

    def __init__(
        self, key: tuple[str, ...], where: str, example: str, rows: int, words: Words = CLI
    ) -> None:
        self.key, self.where, self.example, self.rows = key, where, example, rows
        super().__init__(
            f"{words.key} {','.join(shown(k) for k in key)} is not unique in {where}: "
            f"{example} names {rows:,} rows; give the columns that together name one row "
            f"({words.several}), or {words.no_key} to compare whole rows"
        )

    def worded(self, words: Words) -> KeyNotUnique:
        """The same error, its message in ``words``."""
        return KeyNotUnique(self.key, self.where, self.example, self.rows, words)
