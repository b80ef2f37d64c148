"""A row diff as lines for people and as a JSON document for scripts.

Human output, in order: notes, schema changes, one summary line, then the rows::

    note: ...
    column added:    bonus (DOUBLE)
    column retyped:  qty: BIGINT -> VARCHAR
    rows of data/train.csv, v1 -> v2 (key id): 5,000 added, 5,000 removed, 19,953 changed, ...
    changed  id=17  score: 12.5 -> 13.0
    added    id=2000001  user=u1, score=1.0, ...
    ... 29,950 more (--limit N shows more)

Column names and values come from the data: every one passes through
:func:`vfs.quoting.quote_name`, so a newline or an escape sequence in a CSV cell
cannot forge a line or drive the terminal; one holding what the line puts between
names and values (``, ``, ``=``, ``: ``, `` -> ``) or blanks at an end is quoted too,
so ``x, y=z`` cannot forge a column. NULL is shown as ``NULL`` (a text ``NULL`` is
quoted); a list or a struct as its JSON, unquoted (its texts are in JSON's quotes).
JSON output keeps values exact (``vfs.quoting.safe_json``) up to a bound:
a value longer than ``JSON_VALUE`` characters (a nested one: its JSON text), or past
a row's ``JSON_ROW`` characters, is cut (a binary value where an escape starts, as in
human output) and marked as a version's message is
(``… [N more characters not shown]``), its column named in the row's ``cut`` (a text
may end as the marker does), and a column's name past ``JSON_NAME``; a file
from a remote or a teammate may hold a cell of megabytes, and twenty such rows would
otherwise be given out whole.

JSON::

    {"path", "old", "new", "format", "key": [...], "method": "full"|"chunks"|"bytes",
     "schema": [{"status", "column", "old_type", "new_type"}],
     "summary": {"added", "removed", "changed", "unchanged", "columns": {name: n}},
     "rows": [{"status", "key": {...}, "values": {...} | "changes": {col: {"old", "new"}},
               "count", "cut": [col, ...] (only when a value was cut)}],
     "more": n, "shared_bytes": n, "notes": [...],
     "bytes": null | {"old_size", "new_size", "shared_bytes"},
     "mixed_columns": [...]}

``mixed_columns`` names the columns where a text may stand beside a number, a boolean
or a list (``rowdiff.mixed_columns``: JSON on a side, or a Parquet column whose type
changed); there, human output quotes a text that reads as another value (``k="2"``
beside ``k=2``), and so does the dashboard.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from typing import Any

from vfs.model.params import reads_as_other
from vfs.model.params import shown as cut
from vfs.quoting import escape_text, quote_name
from vfs.tables.engine import byte_cut, plain_value
from vfs.tables.formats import NAMES
from vfs.tables.result import RowChange, RowDiff, shown, shown_binary

MAX_VALUE = 200  # characters of one value shown in human output
BEFORE = 20  # characters shown before where two long values alike that far part
JSON_VALUE = 4096  # characters of one value given in JSON
JSON_ROW = 64 << 10  # characters of a row's values given in JSON (then each is cut to none)
JSON_NAME = 1024  # characters of a column's name given in JSON


def value(v: Any, mixed: bool = False, texts: bool = False, skip: int = 0) -> str:
    """One value for people: NULL, quoted when it must be, cut when very long (and
    its first ``skip`` characters left out, marked). A list or a struct is its JSON,
    unquoted (``{"a": "x, y"}``: its texts are in JSON's quotes, the code points a
    terminal could act on escaped), never a text, which is quoted where it reads
    as one (below, and ``result.shown``). In a ``mixed`` column
    (``RowDiff.mixed``) a text that reads as another value (``2``, ``true``, ``[1]``:
    ``vfs.model.params.reads_as_other``), or any text if ``texts``, is quoted as
    parameters are, so that the text ``"2"`` and the number ``2`` are not shown alike
    (a decimal or a timestamp, shown by its text, is not a text). A binary value is
    its bytes in printable ASCII (``engine.plain_value``), unquoted where a text would
    be: its backslashes are its own escapes, not doubled again."""
    if v is None:
        return "NULL"
    p = plain_value(v)
    text = _text(p)
    if isinstance(p, str) and (text == "" or text == "NULL"):
        return '"' + text + '"'
    quote = isinstance(v, str) and mixed and (texts or reads_as_other(p))
    binary = isinstance(v, (bytes, bytearray, memoryview))
    if skip:  # (a binary value's escapes kept whole: cut where one starts)
        text = "..." + text[byte_cut(text, skip) if binary else skip :]
    if len(text) > MAX_VALUE:
        text = text[: byte_cut(text, MAX_VALUE) if binary else MAX_VALUE] + "..."
    if isinstance(p, (dict, list)):  # its JSON: a whole of its own, its texts in quotes
        return escape_text(text)
    if binary:
        return shown_binary(text)
    if not isinstance(p, str):
        return quote_name(text)
    text = shown(text)
    return f'"{text}"' if quote and not text.startswith('"') else text


def _text(p: Any) -> str:
    """The text of a value as ``plain_value`` gives it."""
    return p if isinstance(p, str) else json.dumps(p, ensure_ascii=False, default=str)


def label(name: str) -> str:
    """A column's name for people: quoted when it must be, cut when very long."""
    return shown(name if len(name) <= MAX_VALUE else name[:MAX_VALUE] + "...")


def column_type(name: str | None) -> str:
    """A column's type for people: escaped, cut at ``MAX_VALUE`` characters and marked (a
    forged Parquet file may give a struct type of megabytes, its field names any text)."""
    return escape_text(cut(name or "", MAX_VALUE))


def _pairs(d: dict[str, Any], mixed: frozenset[str]) -> str:
    return ", ".join(f"{label(k)}={value(v, k in mixed)}" for k, v in d.items())


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:,} B" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024  # type: ignore[assignment]
    return f"{n} B"


def lines(d: RowDiff) -> Iterator[str]:
    """The human-readable diff, line by line."""
    for note in d.notes:
        yield f"note: {escape_text(note)}"
    where = f"{quote_name(d.path)}, {quote_name(d.old_label)} -> {quote_name(d.new_label)}"
    if d.bytes_only is not None:
        b = d.bytes_only
        yield (
            f"bytes of {where}: {_size(b.old_size)} -> {_size(b.new_size)}, "
            f"{_size(b.shared_bytes)} in chunks both share"
        )
        return
    for s in d.schema:
        if s.status == "retyped":
            old, new = column_type(s.old_type), column_type(s.new_type)
            yield f"column retyped:  {label(s.name)}: {old} -> {new}"
        else:
            yield (
                f"column {s.status + ':':<9} {label(s.name)} "
                f"({column_type(s.old_type or s.new_type)})"
            )
    key = f" (key {', '.join(shown(k) for k in d.key)})" if d.key else ""
    counts = f"{d.added:,} added, {d.removed:,} removed"
    if d.key:
        counts += f", {d.changed:,} changed"
    yield f"rows of {where}{key}: {counts}, {d.unchanged:,} unchanged"
    if d.columns:
        yield "changed columns: " + ", ".join(
            f"{label(n)} ({c:,})" for n, c in sorted(d.columns.items(), key=lambda x: -x[1])
        )
    for r in d.rows:
        yield _row_line(r, d.mixed)
    if d.more:
        yield f"... {d.more:,} more (--limit N shows more)"
    if d.method == "chunks":
        yield (
            f"({_size(d.shared_bytes)} of rows in chunks both versions share were not "
            "compared: they are the same rows)"
        )


def _row_line(r: RowChange, mixed: frozenset[str]) -> str:
    key = f"  {_pairs(r.key, mixed)}" if r.key else ""
    times = f" (x{r.count:,})" if r.count != 1 else ""
    if r.status == "changed":
        changes = ", ".join(
            f"{label(n)}: {_change(a, b, n in mixed)}" for n, (a, b) in r.changes.items()
        )
        return f"changed{key}  {changes}"
    rest = {k: v for k, v in r.values.items() if k not in r.key}
    values = f"  {_pairs(rest, mixed)}" if rest else ""  # a row of its key alone: nothing after
    return f"{r.status + times:<7}{key}{values}"


def _change(a: Any, b: Any, mixed: bool) -> str:
    """``a -> b`` for a changed value; where the two look alike in a ``mixed`` column
    (the timestamp and the text of it), the text among them is the one in quotes, and
    where they are alike in the ``MAX_VALUE`` characters shown, they are shown from
    ``BEFORE`` characters before the first that differs."""
    old, new = value(a, mixed), value(b, mixed)
    if old == new and mixed:
        old, new = value(a, mixed, True), value(b, mixed, True)
    if old == new and a is not None and b is not None:
        # alike in the characters shown: shown from a little before where they part
        ta, tb = _text(plain_value(a)), _text(plain_value(b))
        n = min(len(ta), len(tb))
        same = next((i for i in range(n) if ta[i] != tb[i]), n)
        if same > BEFORE:
            skip = same - BEFORE
            old, new = value(a, mixed, True, skip), value(b, mixed, True, skip)
    return f"{old} -> {new}"


def as_json(d: RowDiff) -> dict[str, Any]:
    """The diff as a JSON document (see the module doc)."""
    out: dict[str, Any] = {
        "path": os.fsdecode(d.path), "old": d.old_label, "new": d.new_label,
        "format": NAMES[d.fmt], "key": list(d.key), "method": d.method,
        "schema": [
            {"status": s.status, "column": _name(s.name), "old_type": _type(s.old_type),
             "new_type": _type(s.new_type)}
            for s in d.schema
        ],
        "summary": {
            "added": d.added, "removed": d.removed, "changed": d.changed,
            "unchanged": d.unchanged, "columns": {_name(n): c for n, c in d.columns.items()},
        },
        "rows": [_row_json(r) for r in d.rows], "more": d.more,
        "shared_bytes": d.shared_bytes, "notes": d.notes, "bytes": None,
        "mixed_columns": sorted(_name(n) for n in d.mixed),
    }  # fmt: skip
    if d.bytes_only is not None:
        b = d.bytes_only
        out["bytes"] = {
            "old_size": b.old_size, "new_size": b.new_size, "shared_bytes": b.shared_bytes,
        }  # fmt: skip
    return out


def _row_json(r: RowChange) -> dict[str, Any]:
    budget = [JSON_ROW]
    cut_names: dict[str, None] = {}  # the columns a value of which was cut, in order
    out: dict[str, Any] = {"status": r.status, "key": _cells(r.key, budget, cut_names)}
    if r.status == "changed":
        out["changes"] = {
            _name(n): {"old": _cell(a, budget, cut_names, n),
                       "new": _cell(b, budget, cut_names, n)}
            for n, (a, b) in r.changes.items()
        }  # fmt: skip
    else:
        out["values"] = _cells(r.values, budget, cut_names)
    out["count"] = r.count
    if cut_names:
        out["cut"] = list(cut_names)
    return out


def _name(name: str) -> str:
    return cut(name, JSON_NAME)


def _type(name: str | None) -> str | None:
    return None if name is None else cut(name, JSON_VALUE)


def _cells(values: dict[str, Any], budget: list[int], cut_names: dict[str, None]) -> dict[str, Any]:
    return {_name(n): _cell(v, budget, cut_names, n) for n, v in values.items()}


def _cell(v: Any, budget: list[int], cut_names: dict[str, None], name: str) -> Any:
    """One value for JSON: exact when short; else its text (a list's or a struct's
    JSON) cut to what is left of the row's ``budget`` (at most ``JSON_VALUE``), marked,
    and its column ``name`` put in ``cut_names`` (a text may end as the marker does)."""
    p = plain_value(v)
    if p is None or isinstance(p, (bool, int, float)):
        return p
    text = p if isinstance(p, str) else json.dumps(p, ensure_ascii=False, default=str)
    limit = min(JSON_VALUE, budget[0])
    if len(text) > limit and isinstance(v, (bytes, bytearray, memoryview)):
        limit = byte_cut(text, limit)  # (its escapes kept whole)
    budget[0] -= min(len(text), limit)
    if len(text) <= limit:
        return p
    cut_names[_name(name)] = None
    return cut(text, limit)
