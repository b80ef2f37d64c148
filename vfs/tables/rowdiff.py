"""Row-level diff of one tabular file between two sides (versions or the working tree).

What a user gets, in order: schema changes (columns added, removed or retyped, by
name), counts of rows added, removed, changed and unchanged, then up to ``limit``
rows, in key order (or row order of their values without a key).

- With a key (one or more columns), rows are matched by key. The key must name one
  row on each side; otherwise the diff stops with an example of a key that names
  several. A matched pair is changed when a column both sides have differs; a column
  whose type changed is compared as numbers if both types are numbers (an integer
  column that gained a ``2.5``: ``3`` and ``3.0`` are equal), else as text in CSV
  and TSV files (each field's own text: ``2.50`` in a column of numbers is not the
  text of 2.5) and as JSON values in JSON Lines and Parquet, whose values carry
  their types (a JSON Lines field read as the JSON the file holds, ``_read_as_text``:
  a string the engine read as a timestamp is that string; a Parquet binary value
  equals the text it is the UTF-8 of, and no other). Columns only one side has
  are listed as schema changes, never as row changes.
- Without a key, the diff is the multiset difference of whole rows (over the columns
  both sides have): a row that one side holds more often than the other is removed
  or added that many times.
- Either way, a row shows each value as its own side reads it (a removed row as the
  old version's column types, an added one as the new version's), whatever type a
  retyped column was compared as (``vfs.tables.compare``).
- CSV values are compared as the types detected on the file's first rows
  (``vfs.tables.engine``); if a value elsewhere does not fit, the diff is made again
  with every value compared as text, and a note says so.
- A file that is not what its extension claims, or that the engine cannot read
  (malformed rows, a line over the engine's limit, a damaged Parquet footer), or of
  more than ``MAX_COLUMNS`` columns, gets a byte-level summary with a note saying why.

The fast path (``method: chunks``). When both sides are CSV/TSV without quoted
fields (the quote character occurs in neither file) or JSON Lines, read with the
same columns and dialect, and share at least ``FAST_SHARE`` of their bytes through
shared chunks, ``vfs.tables.regions`` splits each file into the rows both share and
the changed rows. Then:

- the shared rows are one multiset S, on both sides; old = S + CA, new = S + CB;
- keyed: uniqueness is checked over S + CA and S + CB = old - CA + CB (one read of
  the old file, every value converted, so a value that does not fit its type is
  found as the full path finds it; ``_checked`` says when text columns can be left
  out; its keys are counted alone, and the new side's follow from them and CB's:
  ``compare.shared_totals``); when keys are unique, a row of S
  has a key that no row of CA or CB has, so matching CA against CB gives exactly the
  full diff. Only CA and CB are written out for the engine. When an earlier keyed
  diff proved the old file's values and key (``vfs.tables.checks``), only the old
  rows whose key CB has are counted, from the key column alone, and the old file is
  not read at all when CB's keys are CA's or lie beyond the old key's bounds;
- unkeyed: (S + CA) - (S + CB) = CA - CB as multisets.

The line path (still ``method: full``: every row is compared, byte for byte first).
A keyed diff of two such files that share too few chunks (an edit scattered over the
whole file) finds CA and CB by their lines instead: the engine reads each file as
one text column per line (no delimiter, no quote: a line is its bytes) and joins the
two on it; the lines of one side that the other lacks are written out, with the old
file's header, and compared as the fast path compares them. Equal lines are equal
rows: the same bytes read with the same columns and dialect, where no quote joins
lines and no empty line or stray carriage return makes a line other than a row
(``Side.rows`` is exact on both sides). The join finds lines, not how often each
occurs; the fast path's key check reads every key of the old file, so the old side
repeats no line once it passes, and then the new side repeats none of the shared
lines exactly when its rows minus CB equal the old rows minus CA, which is checked
before. Headers that differ, first lines that mostly differ (every row rewritten:
checked on the sides' first bytes before anything is read), a line the engine cannot
read as text, or more than ``LINE_SHARE`` of the rows differing: the full path.

On both paths, the key check's read of the old file runs while the changed rows are
found (``_old_keys``), and the check itself while the changed rows are compared
(``_checked_beside``), each on a cursor of its own: on two cores, one query alone
leaves one idle part of the time. What the key check finds still comes first.

Counts of unchanged rows follow from the side totals. Anything the fast path cannot
prove (different headers or dialects, quotes, nothing shared) takes the full path;
``tests/test_rowdiff_fast.py`` checks with hypothesis that both give the same answer,
and that it is the answer plain Python gives.

The full keyed path reads each file once: the join keeps identical pairs as one
counted row, so it tells how many rows of each side it matched. When those numbers
equal the rows counted from the files' newlines while they were copied (where that
count is exact, ``Side.rows``), and no key repeats among the rows one side alone has,
every key named one row on each side; otherwise the uniqueness check reads every key
of both files and stops with an example. The newline counts also catch an engine
that reads fewer rows than the file has: that file gets the byte-level summary; but a
JSON Lines file's fewer rows are its lines of blanks, which the engine skips as it
skips empty ones (the chunk facts see the empty ones only): the diff is made again
with the rows counted by the engine (``Side.uncount``).
"""

from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import re
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import replace
from pathlib import Path
from typing import Any

from vfs.errors import DvfsError, PathNotFound, UsageError
from vfs.model.chunking import Chunker
from vfs.model.codec import Entry, Kind
from vfs.quoting import quote_name
from vfs.repo.history import History
from vfs.repo.stage import Index, Staged
from vfs.store.objects import ObjectStore
from vfs.tables import checks, keys, regions
from vfs.tables import engine as engine_module
from vfs.tables.compare import (
    Miscounted,
    as_text,
    key_totals,
    key_totals_answer,
    key_totals_query,
    keyed,
    shared_totals,
    shared_totals_answer,
    unkeyed,
)
from vfs.tables.engine import (
    Engine,
    EngineError,
    Field,
    NotTabular,
    PiecesRefused,
    Table,
    TypeMismatch,
    ident,
    literal,
    scan_options,
)
from vfs.tables.formats import (
    MAX_COLUMNS,
    MAX_LINE,
    NAMES,
    SUFFIXES,
    Format,
    columns_in,
    format_of,
    refusal,
)
from vfs.tables.result import (
    CLI,
    ByteSummary,
    KeyNotUnique,
    RowDiff,
    SchemaChange,
    Words,
    shown,
)
from vfs.tables.source import (
    Side,
    empty_side,
    from_tree_file,
    from_version,
    from_working,
    prefix_key,
    scratch,
    write_ranges,
)

FAST_SHARE = 0.5  # the share of bytes two sides must have in common for the fast path
LINES = ("csv", "tsv", "jsonl")  # the formats whose rows are lines
LINE_SHARE = 0.25  # the line path gives up when more of the rows than this differ
OLD_KEYS = "main.__old_keys"  # the old file's keys, read beside (_old_keys)
BESIDE_MAX = 32 << 20  # and of a file of at most this many bytes
PARTS = ("main.__part_old", "main.__part_new")  # the changed rows, read once (_held)
PARQUET_COLUMN_BYTES = 4  # a column's least bytes in a footer: its name, type, repetition
MAX_LIMIT = (1 << 63) - 1  # rows shown at most: the engine's LIMIT is a 64-bit number


def diff_rows(
    engine: Engine,
    fmt: Format,
    old: Side,
    new: Side,
    key: Sequence[str] = (),
    limit: int = 20,
    fast_share: float | None = FAST_SHARE,
    cache: Path | None = None,
    words: Words = CLI,
) -> RowDiff:
    """Compare the rows of two sides of one file (see the module doc).

    ``fast_share`` None turns the fast path off (tests compare both paths). ``cache``:
    the ``.dvfs`` directory whose ``vfs.tables.checks`` entries a keyed diff reads and
    writes (None: none). Where the engine refuses to read a file in pieces
    (``engine.scan_options``), the diff is made again reading every file whole.
    A ``limit`` past ``MAX_LIMIT`` shows every row, as ``MAX_LIMIT`` does. ``key`` is
    as the user gave it (``vfs.tables.keys``: ``["id, v"]`` is id and v); a key the
    files refuse is named in ``words`` (the CLI's options, or a page's controls).
    """
    keys.check(key, words)
    limit = min(limit, MAX_LIMIT)

    def attempt() -> RowDiff:
        try:
            return _diff_rows(engine, fmt, old, new, key, limit, fast_share, cache, words)
        except Miscounted:  # (JSON Lines only: a line of blanks, which is no record)
            old.uncount()
            new.uncount()
            return _diff_rows(engine, fmt, old, new, key, limit, fast_share, cache, words)

    try:
        try:
            return attempt()
        except PiecesRefused:
            if not engine.pieces:
                raise
            engine.pieces = False
            return attempt()
    except KeyNotUnique as exc:
        raise exc.worded(words) from None


def _diff_rows(
    engine: Engine, fmt: Format, old: Side, new: Side, key: Sequence[str], limit: int,
    fast_share: float | None, cache: Path | None, words: Words,
) -> RowDiff:  # fmt: skip
    out = RowDiff(new.path, old.label, new.label, fmt, tuple(keys.columns(key)))
    for side in (old, new):
        lines = side.longest_line if fmt in LINES else 0
        why = refusal(fmt, side.head, side.tail, side.size, lines)
        if why:
            return _bytes_only(out, old, new, f"{_where(side)} is not {NAMES[fmt]}: {why}")
    for side in (old, new):  # before the engine detects them, slowly for so many
        wide = _too_wide(engine, fmt, side)
        if wide:
            return _bytes_only(out, old, new, f"{_where(side)} is not compared row by row: {wide}")
    try:
        ot, nt = engine.sniff_pair(
            fmt, lambda: _sniffed(old, fmt), old.size, lambda: _sniffed(new, fmt), new.size,
            checks.KeptSniffs(cache) if cache is not None else None,
            (old.prefix(engine_module.SNIFF_BYTES), new.prefix(engine_module.SNIFF_BYTES)),
        )  # fmt: skip
    except NotTabular as exc:
        return _bytes_only(out, old, new, _unread(fmt, old, new, exc))
    for side, table in ((old, ot), (new, nt)):
        if len(table.columns) > MAX_COLUMNS:
            why = f"it has {len(table.columns):,} columns, more than the {MAX_COLUMNS:,} compared"
            return _bytes_only(out, old, new, f"{_where(side)} is not compared row by row: {why}")
    key = keys.columns(key, {*ot.names, *nt.names})
    out.key = tuple(key)
    if ot.empty and nt.empty:
        return out  # no rows on either side: nothing to compare, no key to check
    renames = (_duplicates(engine, old, ot), _duplicates(engine, new, nt))
    fields = (_own_fields(engine, old, ot), _own_fields(engine, new, nt))
    skipped = _skipped(old, ot, new, nt)
    out.notes += _renamed(old, new, renames) + skipped
    headerless = _headerless(old, ot, new, nt)
    if headerless:
        out.notes.append(headerless)
    if ot.empty and not nt.empty:
        ot = Table(fmt, nt.columns, empty=True)
    elif nt.empty and not ot.empty:
        nt = Table(fmt, ot.columns, empty=True)
    else:
        if _header_only(old, ot) and not _header_only(new, nt):
            ot = _typed_as(ot, nt)
        elif _header_only(new, nt) and not _header_only(old, ot):
            nt = _typed_as(nt, ot)
        out.schema = schema_changes(_own_typed(ot, fields[0]), _own_typed(nt, fields[1]))
        ot, nt = _read_as_text(ot, nt)
    out.mixed = mixed_columns(ot, nt)
    _check_key(key, old, ot, new, nt, words, renames)
    plan, parts, early = None, None, None
    if fast_share is not None:
        plan = fast_plan(old, new, ot, nt, fast_share)
        if plan is not None or (key and _lines_are_rows(old, new, ot, nt)):
            early = _old_keys(engine, old, ot, nt, key, cache)
    try:
        if fast_share is not None and plan is None and key:
            parts = line_parts(engine, old, new, ot, nt)
        if plan is None and parts is None and early is not None:
            engine.cancel_beside()  # the full path reads the old file itself
        out = _compared(engine, fmt, out, old, new, ot, nt, key, limit, cache, plan, parts, early)
        if fields != (None, None):
            _field_names(out, *fields)
        return out if skipped else _rewritten(out, old, new)
    finally:
        if early is not None:
            engine.cancel_beside()  # (when an error left it running)
            with contextlib.suppress(NotTabular, TypeMismatch, EngineError):
                engine.run(f"DROP TABLE IF EXISTS {OLD_KEYS}")


def _compared(
    engine: Engine, fmt: Format, out: RowDiff, old: Side, new: Side, ot: Table, nt: Table,
    key: Sequence[str], limit: int, cache: Path | None, plan: regions.Plan | None,
    parts: tuple[Path, Path] | None, early: Future[Any] | None,
) -> RowDiff:  # fmt: skip
    """``_diff_rows`` once the path is chosen: the fast path (``plan``), the line path
    (``parts``) or the full path, reading every value as text where a value does not
    fit its type; ``early``: the old file's keys read beside (``_old_keys``)."""
    if plan is None and parts is None:
        early = None
    for text in (False, True):
        out.added = out.removed = out.changed = out.unchanged = 0
        out.columns, out.rows = {}, []  # nothing of a pass that failed half-way
        try:
            bounds: list[checks.Bounds | None] = [None, None]  # of the key, on each side
            keys_of_old = early if not text else None
            if plan is not None:
                bounds = _fast(
                    engine, out, old, new, ot, nt, plan, key, limit, text, cache, keys_of_old
                )
            elif parts is not None:
                out.method, out.shared_bytes = "full", 0  # every row compared, as text first
                bounds = _parts(
                    engine, out, old, new, ot, nt, parts, key, limit, text, cache, keys_of_old
                )
            else:
                _full(engine, out, old, new, ot, nt, key, limit, text)
            if key:
                _proved(cache, out, old, ot, new, nt, key, text, bounds)
            if not text:
                _json_values(out, ot, nt)
            return out
        except TypeMismatch as exc:
            if text:  # read as text, a value that does not convert is not a table's
                return _bytes_only(out, old, new, _unread(fmt, old, new, exc))
            why = _mismatch(exc, engine, fmt, old, new)
            out.notes.append(
                f"a value does not fit the type detected for its column ({why}): "
                "values are compared as text"
            )
        except PiecesRefused:
            raise
        except Miscounted as exc:
            if fmt == "jsonl" and (_rows(old, ot), _rows(new, nt)) != (None, None):
                raise  # counted with the engine instead (diff_rows)
            return _bytes_only(out, old, new, _unread(fmt, old, new, exc))
        except NotTabular as exc:
            return _bytes_only(out, old, new, _unread(fmt, old, new, exc))
    return out  # not reached: the text pass returns or raises


# What may change in a file of each format when none of its rows does (_rewritten).
REWRITES: dict[Format, str] = {
    "csv": "quoting, the spelling of numbers, line endings, the order of rows; an empty "
    'field and a quoted empty one, "", both read as NULL',
    "jsonl": "spacing, the order of keys, the spelling of numbers, the order of rows",
    "parquet": "encoding, compression, row groups, the order of rows",
}
REWRITES["tsv"] = REWRITES["csv"]


def _rewritten(out: RowDiff, old: Side, new: Side) -> RowDiff:
    """``out``, with a note when the two sides' bytes differ but not one row, nor a
    column, does as read: the counts alone ("0 changed, 3 unchanged") would read as
    a file nobody changed, where ``dvfs diff`` lists it as modified. (Not called where
    lines were left out, which the note on them says: the change may be there.)"""
    if out.bytes_only is not None or out.schema or out.added or out.removed or out.changed:
        return out
    if not old.present or not new.present:
        return out
    if old.size == new.size and [c.oid for c in old.chunks] == [c.oid for c in new.chunks]:
        return out  # (the same chunks: the same bytes)
    out.notes.append(
        f"{quote_name(new.path)} changed, but none of its rows as read: only how they are "
        f"written ({REWRITES[out.fmt]})"
    )
    return out


def _json_values(out: RowDiff, ot: Table, nt: Table) -> None:
    """The values of JSON columns (JSON Lines fields of mixed types) in the rows shown
    as the JSON values they hold, not their text: ``"2"`` is the text 2, shown once
    quoted, not the text of quotes around it. So are JSON values inside objects and
    lists (``STRUCT(a JSON)``, ``JSON[]``): the engine gives those as text too."""
    old = {n: _json_shape(t) for n, t in ot.columns if "JSON" in t}
    new = {n: _json_shape(t) for n, t in nt.columns if "JSON" in t}
    if not old and not new:
        return

    def decoded(cols: dict[str, Any], row: dict[str, Any]) -> dict[str, Any]:
        return {k: _decoded(v, cols[k]) if k in cols else v for k, v in row.items()}

    rows = []
    for r in out.rows:
        side = new if r.status == "added" else old
        changes = {
            k: (_decoded(a, old[k]) if k in old else a, _decoded(b, new[k]) if k in new else b)
            for k, (a, b) in r.changes.items()
        }
        rows.append(
            replace(r, key=decoded(side, r.key), values=decoded(side, r.values), changes=changes)
        )
    out.rows = rows


_NUMBERED_FIELD = re.compile(r'_[0-9]+"? ')  # a struct's field the engine may have renamed


def _own_fields(engine: Engine, side: Side, table: Table) -> dict[str, Field] | None:
    """The fields of each column of a Parquet ``side`` as its footer names them, where
    a struct of it may hold fields named alike but for case: the engine takes them for
    one name and calls the later ``id_1`` (``{"ID": 1, "id": 2}`` read as ``{"ID": 1,
    "id_1": 2}``). None where no struct has a field named as the engine renames
    one (the footer is read only then) or the footer does not match the table."""
    if table.fmt != "parquet" or table.empty:
        return None
    if not any("STRUCT(" in t and _NUMBERED_FIELD.search(t) for _, t in table.columns):
        return None
    fields = engine.parquet_fields(side.file)
    if len(fields) != len(table.columns):
        return None
    return {n: f for (n, _), f in zip(table.columns, fields, strict=True)}


def _field_names(out: RowDiff, old: dict[str, Field] | None, new: dict[str, Field] | None) -> None:
    """The structs in the rows shown with their fields named as each side's file names
    them (``_own_fields``), not as the engine renamed them."""
    of, nf = old or {}, new or {}

    def named(cols: dict[str, Field], row: dict[str, Any]) -> dict[str, Any]:
        return {k: _own_names(v, cols.get(k)) for k, v in row.items()}

    rows = []
    for r in out.rows:
        side = nf if r.status == "added" else of
        changes = {
            k: (_own_names(a, of.get(k)), _own_names(b, nf.get(k)))
            for k, (a, b) in r.changes.items()
        }
        rows.append(
            replace(r, key=named(side, r.key), values=named(side, r.values), changes=changes)
        )
    out.rows = rows


def _own_names(v: Any, field: Field | None) -> Any:
    """Value ``v`` of the Parquet ``field`` with its structs' fields named as the field
    names them (a list's elements and a map's values too); as it is where the two do
    not match, or where the file names two fields alike."""
    if v is None or field is None:
        return v
    if isinstance(v, dict) and field.kind in ("MAP", "MAP_KEY_VALUE"):
        pairs = field.children[0].children if len(field.children) == 1 else ()
        inner = pairs[1] if len(pairs) == 2 else None
        return {k: _own_names(x, inner) for k, x in v.items()}
    if isinstance(v, dict) and field.kind is None and not field.repeated:
        names = [c.name for c in field.children]
        if len(names) != len(v) or len(set(names)) != len(names):
            return v
        return {c.name: _own_names(x, c) for c, x in zip(field.children, v.values(), strict=True)}
    if isinstance(v, list):
        element = _element(field)
        return [_own_names(x, element) for x in v]
    return v


def _own_typed(table: Table, fields: dict[str, Field] | None) -> Table:
    """``table`` with its columns' struct types naming their fields as the file does
    (``_own_fields``): ``STRUCT(ID BIGINT, id BIGINT)``, not the engine's
    ``STRUCT(ID BIGINT, id_1 BIGINT)``, for the schema changes shown."""
    if fields is None:
        return table
    return replace(table, columns=tuple((n, _own_type(t, fields.get(n))) for n, t in table.columns))


_PLAIN_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")  # a field name the engine shows unquoted


def _own_type(type_name: str, field: Field | None) -> str:
    """The engine's ``type_name`` of the Parquet ``field`` with its structs' fields
    named as the field names them (a list's elements and a map's values too); as it
    is where the two do not match, or where the file names two fields alike."""
    t = type_name.strip()
    if field is None:
        return t
    if t.endswith("]"):  # a list (T[]) or an array (T[3])
        at = t.rindex("[")
        return _own_type(t[:at], _element(field)) + t[at:]
    head, _, rest = t.partition("(")
    if not rest.endswith(")"):
        return t
    args = _split_args(rest[:-1])
    if head == "MAP" and len(args) == 2 and field.kind in ("MAP", "MAP_KEY_VALUE"):
        pairs = field.children[0].children if len(field.children) == 1 else ()
        inner = pairs[1] if len(pairs) == 2 else None
        return f"MAP({args[0]}, {_own_type(args[1], inner)})"
    if head != "STRUCT" or field.kind is not None or field.repeated:
        return t
    names = [c.name for c in field.children]
    if len(names) != len(args) or len(set(names)) != len(names):
        return t
    own = []
    for c, arg in zip(field.children, args, strict=True):
        name, kind = _field(arg)
        if c.name != name:
            arg = f"{c.name if _PLAIN_NAME.fullmatch(c.name) else ident(c.name)} {kind}"
        own.append(arg[: len(arg) - len(kind)] + _own_type(kind, c))
    return f"STRUCT({', '.join(own)})"


def _element(field: Field) -> Field | None:
    """The field of each element of a list ``field`` holds, by Parquet's rules for lists
    (a ``LIST`` of a repeated group of one field, or of the repeated field itself, or
    a repeated field without ``LIST``)."""
    if field.kind == "LIST" and len(field.children) == 1:
        rep = field.children[0]
        if len(rep.children) == 1 and rep.name not in ("array", f"{field.name}_tuple"):
            return rep.children[0]
        return replace(rep, repeated=False)
    if field.repeated:
        return replace(field, repeated=False)
    return None


# The shape of an engine type as far as JSON values inside it go: "json", ("list",
# shape), ("struct", {field: shape}), ("map", shape of the values), or None (no JSON).
_Shape = Any


def _json_shape(type_name: str) -> _Shape:
    """Where ``type_name`` (``STRUCT(a JSON, "b c" JSON[])``) holds JSON values."""
    t = type_name.strip()
    if t.endswith("]"):  # a list (T[]) or an array (T[3])
        inner = _json_shape(t[: t.rindex("[")])
        return ("list", inner) if inner is not None else None
    if t == "JSON":
        return "json"
    head, _, rest = t.partition("(")
    if not rest.endswith(")"):
        return None
    args = _split_args(rest[:-1])
    if head == "STRUCT":
        fields = {}
        for arg in args:
            name, kind = _field(arg)
            shape = _json_shape(kind)
            if shape is not None:
                fields[name] = shape
        return ("struct", fields) if fields else None
    if head == "MAP" and len(args) == 2:
        inner = _json_shape(args[1])
        return ("map", inner) if inner is not None else None
    return None


def _split_args(text: str) -> list[str]:
    """``text`` split at its commas outside parentheses, brackets and quotes."""
    parts, depth, quoted, start = [], 0, False, 0
    for i, ch in enumerate(text):
        if ch == '"':
            quoted = not quoted
        elif not quoted and ch in "([":
            depth += 1
        elif not quoted and ch in ")]":
            depth -= 1
        elif not quoted and depth == 0 and ch == ",":
            parts.append(text[start:i].strip())
            start = i + 1
    parts.append(text[start:].strip())
    return parts


def _field(arg: str) -> tuple[str, str]:
    """(name, type) of a STRUCT field: ``a JSON``, ``"b c" INTEGER``."""
    if arg.startswith('"'):
        end = 1
        while end < len(arg):
            if arg[end] == '"':
                if arg[end + 1 : end + 2] == '"':
                    end += 2
                    continue
                break
            end += 1
        return arg[1:end].replace('""', '"'), arg[end + 1 :].strip()
    name, _, kind = arg.partition(" ")
    return name, kind.strip()


def _decoded(v: Any, shape: _Shape) -> Any:
    """``v`` with the JSON text at the places ``shape`` says decoded."""
    if v is None or shape is None:
        return v
    if shape == "json":
        return _loads(v)
    kind, inner = shape
    if kind == "list" and isinstance(v, (list, tuple)):
        return [_decoded(x, inner) for x in v]
    if kind == "struct" and isinstance(v, dict):
        return {k: _decoded(x, inner.get(k)) for k, x in v.items()}
    if kind == "map" and isinstance(v, dict):
        return {k: _decoded(x, inner) for k, x in v.items()}
    return v


def _loads(v: Any) -> Any:
    if not isinstance(v, str):
        return v
    try:
        return json.loads(v)
    except ValueError:
        return v


def _headerless(old: Side, ot: Table, new: Side, nt: Table) -> str | None:
    """What to say of a CSV or TSV file read with a header on one side and without on
    the other (its first line reads as a row there: the engine names its columns
    column0, column1...), or None."""
    if ot.fmt not in ("csv", "tsv") or ot.empty or nt.empty or ot.has_header == nt.has_header:
        return None
    side, other = (new, old) if ot.has_header else (old, new)
    return (
        f"{_where(side)} is read without a header (its first line reads as a row), "
        f"{_where(other)} with one: their columns are named otherwise"
    )


def _header_only(side: Side, table: Table) -> bool:
    """True for a CSV or TSV side holding its header and no row: the engine types its
    columns as text for want of values, which says nothing of the other side's."""
    if table.fmt not in ("csv", "tsv") or not table.has_header or table.empty:
        return False
    return side.rows(True, table.quote) == 0


def _typed_as(table: Table, other: Table) -> Table:
    """``table`` with the types ``other`` gives the columns of the same name."""
    types = other.types()
    return replace(table, columns=tuple((n, types.get(n, t)) for n, t in table.columns))


def _read_as_text(ot: Table, nt: Table) -> tuple[Table, Table]:
    """The two sides of a CSV, TSV or JSON Lines file with the columns compared as
    text (retyped, :func:`vfs.tables.compare.as_text`) read as what the file holds, on
    both sides: a CSV column as its fields' text (the field ``2.50`` of a column read as
    DOUBLE is ``2.50``, not the text of 2.5; ``2024-1-5`` not ``2024-01-05``), a JSON
    Lines field as its JSON values (the string ``"2024-01-05T10:00:00Z"`` that the
    engine read as a timestamp is that string, in an object too; the number ``2`` is
    not the string ``"2"``). An unchanged field or value is then no change. A Parquet
    file is read as it is (its columns' types are its own): ``compare`` compares such a
    column's values as JSON."""
    old, new = ot.types(), nt.types()
    text = {n for n in old.keys() & new.keys() if as_text(old[n], new[n])}
    if not text or ot.fmt == "parquet":
        return ot, nt
    kind = "JSON" if ot.fmt == "jsonl" else "VARCHAR"

    def read(t: Table) -> Table:
        return replace(t, columns=tuple((n, kind if n in text else k) for n, k in t.columns))

    return read(ot), read(nt)


def _sniffed(side: Side, fmt: Format) -> Path:
    """The copy of ``side`` with the bytes the engine sniffs in it: a CSV's first
    ``SNIFF_BYTES``, any other format's whole file (``vfs.tables.source``: a lazy copy
    holds only what was asked for)."""
    if fmt in ("csv", "tsv"):
        return side.fill(0, engine_module.SNIFF_BYTES)
    return side.file


def _too_wide(engine: Engine, fmt: Format, side: Side) -> str | None:
    """Why ``side`` has too many columns to be compared (``MAX_COLUMNS``), as its first
    bytes (``columns_in``) or a Parquet file's footer tell, or None. A footer of fewer
    bytes than a column's least in it times ``MAX_COLUMNS`` is not read."""
    if fmt == "parquet":
        footer = int.from_bytes(side.tail[-8:-4], "little") if len(side.tail) >= 8 else 0
        if footer <= PARQUET_COLUMN_BYTES * MAX_COLUMNS:
            return None
        try:
            n, whole = engine.parquet_width(side.file), True
        except NotTabular:
            return None  # (the sniff says why)
    else:
        n, whole = columns_in(fmt, side.head, side.size)
    if n <= MAX_COLUMNS:
        return None
    n_of = f"{n:,}" if whole else f"at least {n:,}"
    return f"it has {n_of} columns, more than the {MAX_COLUMNS:,} compared"


def _where(side: Side) -> str:
    return f"{quote_name(side.path)} in {side.label}"


# (_duplicates) each side's, old first: index, name, name shown, why ("exact", "case"...)
Renames = tuple[list[tuple[int, str, str, str]], ...]


def _renamed(old: Side, new: Side, renames: Renames) -> list[str]:
    """Notes for a CSV or TSV header, or a Parquet file, naming a column more than
    once, or a column with no name (``renames``: :func:`_duplicates` of each side): the
    engine shows (and ``--key`` takes) the second ``v`` as ``v_1``, an unnamed one as
    ``column0`` (a Parquet file's: ``C0``), a name the file does not hold."""
    found = list(renames)
    if found[0] == found[1]:
        found, where = found[:1], [quote_name(new.path)]
    else:
        where = [_where(old), _where(new)]
    notes = []
    for w, side in zip(where, found, strict=True):
        for i, name, as_, kind in side:
            if kind == "exact":
                notes.append(
                    f"{w} names more than one column {quote_name(name)}: column {i + 1} is "
                    f"shown as {quote_name(as_)}"
                )
            elif kind == "case":
                notes.append(
                    f"{w} names column {i + 1} {quote_name(name)} as an earlier one but for "
                    f"its case, which the engine does not tell apart: it is shown as "
                    f"{quote_name(as_)}"
                )
            elif kind == "unnamed":
                notes.append(
                    f"{w} has a column {i + 1} without a name: it is shown as {quote_name(as_)}"
                )
            else:
                notes.append(
                    f"{w} names column {i + 1} {quote_name(name)}, the name the engine gives "
                    f"another column: it is shown as {quote_name(as_)}"
                )
    return notes


def _skipped(old: Side, ot: Table, new: Side, nt: Table) -> list[str]:
    """Notes for the lines of a CSV or TSV side that the engine reads no row from: the
    lines it took for lines before the table (a title, or a header followed by a row
    wider than it) and comment lines. Their rows are in no count: they are not
    compared."""
    found = [_unread_lines(t) for t in (ot, nt)]
    if found[0] == found[1]:
        found, where = found[:1], [quote_name(new.path)]
    else:
        where = [_where(old), _where(new)]
    notes = []
    for w, (skip, comment) in zip(where, found, strict=True):
        parts = []
        if skip:
            lines = "its first line" if skip == 1 else f"its first {skip:,} lines"
            parts.append(f"{lines}, which it takes for lines before the table")
        if comment:
            parts.append(f"lines beginning with {comment}, which it takes for comments")
        if parts:
            notes.append(
                f"{w}: the engine reads no row from {', nor from '.join(parts)}: "
                "they are not compared"
            )
    return notes


def _unread_lines(table: Table) -> tuple[int, str]:
    """The lines before the table that ``table`` skips, and its comment character."""
    if table.fmt not in ("csv", "tsv") or table.empty:
        return 0, ""
    options = dict(table.options)
    return int(options.get("skip", "0")), _unquoted(options.get("comment", "''"))


def _duplicates(engine: Engine, side: Side, table: Table) -> list[tuple[int, str, str, str]]:
    """(index, name in the header, name the engine gives, ``"exact"`` where an earlier
    name is this one, ``"case"`` where it is but for its case, ``"unnamed"`` where the
    name is empty, ``"taken"`` where the engine gave it to an earlier column) of each
    column of ``side``'s header (a Parquet file's: its footer's) the engine names
    otherwise: one whose name an earlier column has, but maybe for its case (the
    engine's names are one whatever their case: ``ID`` after ``id`` is ``ID_1``), one
    that has none (``column0``, a Parquet file's ``C0``), one named as the engine
    named such an earlier one (``v_1`` after ``v, v``: ``v_1_1``); none where that
    cannot be told."""
    if table.empty:
        return []
    if table.fmt == "parquet":
        header = engine.parquet_names(table, side.file) or []
    elif table.fmt in ("csv", "tsv") and table.has_header:
        header = _csv_header(side, table)
    else:
        return []
    if len(header) != len(table.columns):
        return []
    found = []
    earlier: set[str] = set()  # the names before each column, as written,
    lower: set[str] = set()  # in lower case,
    shown: set[str] = set()  # and as the engine shows them, in lower case
    for i, (h, (as_, _)) in enumerate(zip(header, table.columns, strict=True)):
        if h != as_:
            why = _renaming(h, earlier, lower, shown)
            if why is not None:
                found.append((i, h, as_, why))
        earlier.add(h)
        lower.add(h.lower())
        shown.add(as_.lower())
    return found


def _renaming(name: str, earlier: set[str], lower: set[str], shown: set[str]) -> str | None:
    """Why the engine names a column ``name`` otherwise (``_duplicates``), after the
    columns ``earlier`` (``lower``: their names in lower case; ``shown``: as the engine
    shows them, in lower case); None if none of these is why."""
    if not name:
        return "unnamed"
    if name in earlier:
        return "exact"
    if name.lower() in lower:
        return "case"
    return "taken" if name.lower() in shown else None


def _csv_header(side: Side, table: Table) -> list[str]:
    """The names in the header of the CSV or TSV ``side``, as written; none where
    they cannot be told."""
    options = dict(table.options)
    delim, quote = (_unquoted(options.get(k, "''")) for k in ("delim", "quote"))
    if not table.plain or len(delim) != 1 or len(quote) > 1:
        return []
    text = side.head.decode("utf-8", "replace").lstrip("\ufeff")
    if quote:
        reader = csv.reader(io.StringIO(text), delimiter=delim, quotechar=quote)
    else:
        reader = csv.reader(io.StringIO(text), delimiter=delim, quoting=csv.QUOTE_NONE)
    try:
        return next(reader, [])
    except csv.Error:
        return []


def _unquoted(sql: str) -> str:
    """The text of a SQL string literal (``engine.literal``'s inverse)."""
    return sql[1:-1].replace("''", "'") if len(sql) >= 2 and sql[0] == sql[-1] == "'" else ""


def _named(text: str, old: Side, new: Side) -> str:
    """An engine's message with the scratch copies it read named as the user knows
    them (``data/x.csv in v2``), not by the name of a copy that is gone by then."""
    for side in (old, new):
        copy = str(side.copy)
        for q in ('"', "'", ""):
            text = text.replace(f"{q}{copy}{q}", _where(side))
    return text


_LINE = re.compile(r" on Line: \d+")  # where a CSV error places a value


def _mismatch(exc: TypeMismatch, engine: Engine, fmt: Format, old: Side, new: Side) -> str:
    """The engine's message on a value that does not fit its type, with the side it
    read the value in (``data/x.csv in v2``). In the changed rows the fast and line
    paths write out, its line is theirs, not the file's: it is left out."""
    text = _named(str(exc), old, new)
    for name, side in (("old", old), ("new", new)):
        if exc.file == str(engine.scratch / f"part-{name}.{fmt}"):
            return f"{_LINE.sub('', text)}, in {_where(side)}"
        if exc.file == str(side.copy):
            return f"{text}, in {_where(side)}"
    return text


def _unread(fmt: Format, old: Side, new: Side, exc: Exception) -> str:
    """Why the engine could not read a side: what it said, or, for a CSV or TSV whose
    lines end both in ``\r\n`` and in ``\n`` (a Windows file with lines appended on
    Linux), that, which its reader does not take and its message does not say."""
    if fmt in ("csv", "tsv"):
        for side in (old, new):
            if side.present and side.size and _mixed_endings(side.file):
                return (
                    f"{_where(side)} ends its lines both in \\r\\n and in \\n, which the "
                    "engine does not read: make them one kind (dos2unix) to compare rows"
                )
    return f"{NAMES[fmt]} that the engine cannot read: {exc}"


def _mixed_endings(path: Path) -> bool:
    """True if the file at ``path`` has lines ending in ``\r\n`` and lines in ``\n``."""
    crlf = lf = 0
    carry = b""  # a "\r" that ended the block before
    with open(path, "rb") as f:
        while block := f.read(1 << 20):
            data = carry + block
            pairs = data.count(b"\r\n")
            crlf += pairs
            lf += data.count(b"\n") - pairs
            if crlf and lf:
                return True
            carry = b"\r" if data.endswith(b"\r") else b""
    return False


def _bytes_only(out: RowDiff, old: Side, new: Side, reason: str) -> RowDiff:
    reason = _named(reason, old, new)
    shared = sum(n for _, _, n in regions.matching_runs(old.chunks, new.chunks))
    out.method = "bytes"
    out.schema, out.rows, out.columns = [], [], {}
    out.added = out.removed = out.changed = out.unchanged = 0
    out.bytes_only = ByteSummary(reason, old.size, new.size, shared)
    out.notes.append(f"{reason}: byte-level summary")
    return out


def mixed_columns(ot: Table, nt: Table) -> frozenset[str]:
    """The columns whose values of the two sides may be texts beside other kinds of
    value: retyped ones as the sides are compared (a Parquet ``INTEGER -> VARCHAR``:
    ``2`` and ``"2"``; not a CSV column read as text on both, ``_read_as_text``) and
    JSON ones (a JSON Lines field of mixed types, or one read as JSON on both sides),
    whose rows may each hold a text, a number, a boolean or a list."""
    old, new = ot.types(), nt.types()
    return frozenset(
        n
        for n, t in (*ot.columns, *nt.columns)
        if t == "JSON" or (n in old and n in new and old[n] != new[n])
    )


def schema_changes(ot: Table, nt: Table) -> list[SchemaChange]:
    """Columns added, removed or retyped from ``ot`` to ``nt``, in column order."""
    old, new = ot.types(), nt.types()
    out = [SchemaChange("removed", n, old_type=t) for n, t in ot.columns if n not in new]
    out += [SchemaChange("added", n, new_type=t) for n, t in nt.columns if n not in old]
    out += [
        SchemaChange("retyped", n, old[n], new[n])
        for n, _ in ot.columns
        if n in new and old[n] != new[n]
    ]
    return out


def _check_key(
    key: Sequence[str], old: Side, ot: Table, new: Side, nt: Table, words: Words,
    renames: Renames = ([], []),
) -> None:  # fmt: skip
    for side, table, renamed in zip((old, new), (ot, nt), renames, strict=True):
        missing = [k for k in key if k not in table.names]
        if missing:
            listed = ", ".join(shown(n) for n in table.names[:20])
            more = f" and {len(table.names) - 20} more" if len(table.names) > 20 else ""
            if table.fmt in ("csv", "tsv") and len(table.names) == 1:
                one = table.names[0]
                if any(d in one for d in (",", ";", "\t", "|")):  # a header not split
                    raise UsageError(
                        f"{words.key} column {shown(missing[0])} is not in "
                        f"{_where(side)}: it "
                        f"was read as one column named {json.dumps(one)}, as no delimiter is "
                        "on every one of its first lines (a line blank but for spaces, or "
                        "with fewer fields, hides it): mend that line"
                    )
            other = next((r for r in renamed if r[1] == missing[0]), None)
            headerless = _headerless(old, ot, new, nt)
            raise UsageError(
                f"{words.key} column {shown(missing[0])} is not in {_where(side)} "
                f"(its columns: {listed or 'none'}{more})"
                + ("" if other is None else f": its column {other[0] + 1} "
                   f"{shown(other[1])} is shown as {shown(other[2])}")
                + (f": {headerless}" if headerless else "")
            )  # fmt: skip
    if len(set(key)) != len(key):
        raise UsageError(f"{words.key} names a column twice")


def _lines_are_rows(old: Side, new: Side, ot: Table, nt: Table) -> bool:
    """True if each line of both sides is one row: the same line format, with no
    quoting (a quoted field may hold a newline) or no quote character in either file."""
    if ot.fmt not in LINES or ot != nt or ot.empty:
        return False
    if ot.fmt == "jsonl":
        return True
    if not ot.plain:
        return False
    if ot.quote:
        q = ot.quote.encode()
        return not (old.holds.get(q, True) or new.holds.get(q, True))
    return True


def fast_plan(old: Side, new: Side, ot: Table, nt: Table, share: float) -> regions.Plan | None:
    """The fast path's plan, or None where it cannot be proven right (module doc)."""
    if not _lines_are_rows(old, new, ot, nt):
        return None
    with open(old.copy, "rb") as a, open(new.copy, "rb") as b:
        plan = regions.plan(
            a.fileno(), old.chunks, b.fileno(), new.chunks, ot.has_header, old.fill, new.fill
        )
    if plan is None or not plan.shared:
        return None
    if plan.shared_bytes < share * max(old.size, new.size):
        return None
    return plan


def line_parts(
    engine: Engine, old: Side, new: Side, ot: Table, nt: Table
) -> tuple[Path, Path] | None:
    """The line path's CA and CB, written out with the old file's header (module doc),
    or None where it cannot be proven right or more than ``LINE_SHARE`` of the rows
    differ (then the full path is the cheaper)."""
    if not _lines_are_rows(old, new, ot, nt):
        return None
    rows = _rows(old, ot), _rows(new, nt)
    if rows[0] is None or rows[1] is None or not _alike(old.head, new.head):
        return None
    header = b""
    if ot.has_header:
        cut = old.head.find(b"\n") + 1
        if not cut or new.head[:cut] != old.head[:cut]:
            return None
        header = old.head[:cut]
    eol = b"\r\n" if ot.newline == "\\r\\n" else b"\n"
    longest = max(old.longest_line, new.longest_line)
    opts = (
        ("columns", "{'l': 'VARCHAR'}"), ("delim", "'\\0'"), ("quote", "''"),
        ("escape", "''"), ("header", "false"), ("auto_detect", "false"),
        ("skip", str(1 if header else 0)), ("max_line_size", str(MAX_LINE)),
        ("strict_mode", "true"),
    )  # fmt: skip
    a, b = (
        f"(SELECT l FROM read_csv({literal(str(s.file))}"
        + "".join(
            f", {k}={v}"
            for k, v in (scan_options(opts, s.size, longest) if engine.pieces else opts)
        )
        + "))"
        for s in (old, new)
    )
    files = (engine.scratch / f"part-old.{ot.fmt}", engine.scratch / f"part-new.{ot.fmt}")
    try:
        differ = engine.run(  # (it answers how many rows it made: CA + CB)
            "CREATE OR REPLACE TEMP TABLE __lines AS SELECT __a.l AS a, __b.l AS b "
            f"FROM {a} __a FULL OUTER JOIN {b} __b ON __a.l = __b.l "
            "WHERE __a.l IS NULL OR __b.l IS NULL"
        )[0][0]
        if differ > LINE_SHARE * (rows[0] + rows[1]):
            return None
        ca, cb = (
            engine.write_lines(
                f"SELECT {col} FROM __lines WHERE {col} IS NOT NULL", dest, header, eol, longest
            )
            for dest, col in zip(files, ("a", "b"), strict=True)
        )
        return files if rows[0] - ca == rows[1] - cb else None
    except PiecesRefused:
        raise
    except (NotTabular, TypeMismatch):
        return None
    finally:
        with contextlib.suppress(NotTabular, TypeMismatch):
            engine.run("DROP TABLE IF EXISTS __lines")


def _alike(old: bytes, new: bytes) -> bool:
    """Whether at least half the whole lines of ``new`` (a file's first bytes) are lines
    of ``old`` too: where they are not (every row rewritten, rows reordered), the line
    path would find most lines differing and give up after reading both files."""
    ours = new.split(b"\n")[:-1]  # the last piece may be a line cut short
    theirs = set(old.split(b"\n")[:-1])
    return sum(1 for line in ours if line in theirs) * 2 >= len(ours)


# ------------------------------------------------------------------ the two paths


def _fast(
    engine: Engine, out: RowDiff, old: Side, new: Side, ot: Table, nt: Table,
    plan: regions.Plan, key: Sequence[str], limit: int, text: bool, cache: Path | None,
    early: Future[Any] | None = None,
) -> list[checks.Bounds | None]:  # fmt: skip
    """Write the changed rows out and compare only them; the key's bounds (``_parts``).
    The changed chunks' rows are narrowed to those that differ (``regions.narrowed``).

    The shared rows S are never written out: where they must be read (the key check,
    the unkeyed count of unchanged rows), the old file (S + CA) is read and CA
    subtracted. A keyed diff whose old file was proved before (``vfs.tables.checks``)
    reads only its key column, for the keys CB has (``_collisions``).
    """
    base = engine.scratch
    files = (base / f"part-old.{ot.fmt}", base / f"part-new.{ot.fmt}")
    for side, ranges in ((old, plan.old_changed), (new, plan.new_changed)):
        side.fill(0, plan.old_header if side is old else plan.new_header)
        for start, end in ranges:
            side.fill(start, end)
    with open(old.copy, "rb") as a, open(new.copy, "rb") as b:
        header = os.pread(a.fileno(), plan.old_header, 0)
        rows = regions.narrowed(plan, a.fileno(), old.size, b.fileno(), new.size)
        for dest, src, ranges in ((files[0], a, rows.old_changed), (files[1], b, rows.new_changed)):
            with open(dest, "wb") as dst:
                write_ranges(src.fileno(), ranges, dst.fileno(), header)
    out.method = "chunks"
    out.shared_bytes = plan.shared_bytes
    return _parts(engine, out, old, new, ot, nt, files, key, limit, text, cache, early)


def _parts(
    engine: Engine, out: RowDiff, old: Side, new: Side, ot: Table, nt: Table,
    files: tuple[Path, Path], key: Sequence[str], limit: int, text: bool, cache: Path | None,
    early: Future[Any] | None = None,
) -> list[checks.Bounds | None]:  # fmt: skip
    """Compare the changed rows CA and CB (``files``, each with the old file's header)
    and count the shared ones from the old file (module doc): the fast paths' common
    part. Returns bounds of the key on each side, where they were found on the way
    (``vfs.tables.checks``). ``early``: the old file's keys being read into
    ``OLD_KEYS`` (``_old_keys``), which the key check then reads instead of the file."""

    def whole() -> str:  # the old file: whole in its copy once asked for (Side.file)
        return ot.relation(old.file, text, _lines(engine, old, ot))

    a_rel, b_rel = _held(engine, files, ot.relation(files[0], text), nt.relation(files[1], text))
    counted = (_rows(old, ot), _rows(new, nt))
    checked = _checked(old, ot, text)
    bounds: list[checks.Bounds | None] = [None, None]
    if key:
        kind, proved = _proof(cache, old, ot, nt, key, text)
        if proved is not None:
            check = engine.call_beside(
                lambda run: _collisions(
                    run, out, ot, nt, key, whole, a_rel, b_rel, proved, kind, bounds, text
                )
            )
            try:
                keyed(engine, out, ot, nt, key, a_rel, b_rel, limit, text, check.result, counted)
            except Exception:
                check.result()  # its error first, as when it ran before the join
                raise
            check.result()  # (keyed asks for it only where its own counts disagree)
            return bounds
        if early is not None:
            early.result()  # its error is the one reading the old file here gives
            first: tuple[str, int, int, Sequence[str]] = (OLD_KEYS, 1, 1, ())
        else:
            first = (whole(), 1, 1, checked)
        sources = [first, (a_rel, 0, -1, ()), (b_rel, 0, 1, ())]
        _checked_beside(
            engine, out, ot, nt, key, a_rel, b_rel, limit, text, counted, sources,
            bounds if kind else None,
        )  # fmt: skip
        return bounds
    shared = engine.count(whole(), checked) - engine.count(a_rel)
    unkeyed(engine, out, ot, nt, a_rel, b_rel, limit, text, shared, counted)
    return bounds


def _held(engine: Engine, files: tuple[Path, Path], a_rel: str, b_rel: str) -> tuple[str, str]:
    """The changed rows CA and CB (``files``, read by ``a_rel`` and ``b_rel``) as two
    tables (``PARTS``), each file read once, the old one beside the new: the key
    check and the keyed join after read each of them two or three times, and most of
    such a read is converting its values (the benchmark's one-block diff: three
    queries of 17-29 ms over two parts of 1 MB). The relations as they were where
    either file is larger than ``BESIDE_MAX`` (a table holds what a read streams) or
    does not read: the queries then meet its error in the order they always did."""
    if any(f.stat().st_size > BESIDE_MAX for f in files):
        return a_rel, b_rel
    beside = engine.run_beside(f"CREATE OR REPLACE TABLE {PARTS[0]} AS SELECT * FROM {a_rel}")
    read = True
    try:
        engine.run(f"CREATE OR REPLACE TABLE {PARTS[1]} AS SELECT * FROM {b_rel}")
    except (NotTabular, TypeMismatch):
        read = False
    try:
        beside.result()  # (waited for either way: nothing still reads when this returns)
    except (NotTabular, TypeMismatch):
        read = False
    return PARTS if read else (a_rel, b_rel)


def _checked_beside(
    engine: Engine, out: RowDiff, ot: Table, nt: Table, key: Sequence[str], a_rel: str,
    b_rel: str, limit: int, text: bool, counted: tuple[int | None, int | None],
    sources: list[tuple[str, int, int, Sequence[str]]], bounds: list[checks.Bounds | None] | None,
) -> None:  # fmt: skip
    """``keyed`` on the changed rows, with the key check over ``sources`` (the old file,
    CA, CB) run beside it (``Engine.run_beside``): each is a few small queries that
    leave a core idle. The check is ``compare.shared_totals``; where it finds a
    key naming several rows, ``key_totals`` names one. What the key check finds comes
    first, as when it ran before: a key that names several rows, or its error,
    rather than the join's."""
    (old_rel, _, _, convert), (ca, *_), (cb, *_) = sources
    check = engine.call_beside(
        lambda run: shared_totals(
            run, ot, nt, key, (old_rel, convert), ca, cb, bounds is not None, text, counted[0]
        )
    )  # (a cursor of its own, as the queries need)
    found: list[tuple[int, int]] = []

    def counts() -> tuple[int, int]:
        if not found:
            got = shared_totals_answer(check.result(), bounds)
            if got is None:  # a key names several rows: the whole check names one
                got = key_totals(engine, out, ot, nt, key, sources, bounds, text)
            found.append(got)
        return found[0]

    try:
        keyed(engine, out, ot, nt, key, a_rel, b_rel, limit, text, counts, counted)
    except Exception:
        counts()  # its error first
        raise
    counts()  # (keyed asks for it only where its own counts disagree)


def _proof(
    cache: Path | None, old: Side, ot: Table, nt: Table, key: Sequence[str], text: bool
) -> tuple[str | None, tuple[int, checks.Bounds | None] | None]:
    """The key's type if it has bounds (``checks.bounded``), and what an earlier keyed
    diff proved of the old file (``checks.proof``), or None."""
    kind = checks.bounded(ot, key, text) if ot == nt else None
    proved = checks.proof(cache, checks.name(old.chunks, ot, text, key), kind)
    if proved is not None and _rows(old, ot) not in (None, proved[0]):
        proved = None  # a damaged entry: the rows counted from the newlines say so
    return kind, proved


def _old_keys(
    engine: Engine, old: Side, ot: Table, nt: Table, key: Sequence[str], cache: Path | None
) -> Future[Any] | None:
    """Start reading the key columns of the old file into ``OLD_KEYS`` (``Engine.
    run_beside``), every value converted on the way as the key check converts it
    (``_checked``), while the fast or line path finds the changed rows: the key
    check (``_parts``) then reads that table instead of the file, and the two whole
    reads keep both cores busy where each alone leaves one idle part of the time.
    None where the key check would not read the old file whole (no key, or one an
    earlier diff proved: ``_collisions``), or where the file is larger than
    ``BESIDE_MAX``: each query then keeps both cores busy alone, and the two at once
    held more memory (the benchmark's 2M-row file, nothing kept: 423 MiB at its
    peak instead of 374, at the same wall time)."""
    if not key or ot.empty or old.size > BESIDE_MAX:
        return None
    if _proof(cache, old, ot, nt, key, False)[1] is not None:
        return None
    checked = _checked(old, ot, False)
    where = f" WHERE hash({', '.join(map(ident, checked))}) IS NOT NULL" if checked else ""
    whole = ot.relation(old.file, False, _lines(engine, old, ot))
    cols = ", ".join(ident(k) for k in key)
    return engine.run_beside(
        f"CREATE OR REPLACE TABLE {OLD_KEYS} AS SELECT {cols} FROM {whole}{where}"
    )


def _collisions(
    run: Callable[[str], list[tuple[Any, ...]]], out: RowDiff, ot: Table, nt: Table,
    key: Sequence[str],
    whole: Callable[[], str], a_rel: str, b_rel: str, proved: tuple[int, checks.Bounds | None],
    kind: str | None, bounds: list[checks.Bounds | None], text: bool,
) -> tuple[int, int]:  # fmt: skip
    """``key_totals`` of the fast path for an old file already proved to hold
    ``proved[0]`` rows, every value fitting its type and every key naming one row.

    The new side is S + CB with S = old - CA, so a key names several of its rows only
    if CB has it: of the old file, only the rows with a key CB has are counted, and
    only its key columns are read. Every row outside them counts once on each side,
    which gives the totals. When every key of CB is a key of CA (rows edited in
    place), or lies outside the old file's key bounds (``proved[1]``: rows added with
    new ids), the old file is not read at all: its only row with such a key is CA's.

    ``kind``: the key's type if it has bounds (``checks.bounded``); then ``bounds``
    gets the old file's and bounds of the new side's keys (S's within the old
    file's, CB's read here).
    """
    keys = ", ".join(ident(k) for k in key)
    on = " AND ".join(f"__w.{ident(k)} IS NOT DISTINCT FROM __c.{ident(k)}" for k in key)
    known = proved[1] if kind is not None else None
    first = f"__w.{ident(key[0])}"
    within, extent = "true", ""
    if known is not None:
        low, high = (f"CAST({literal(str(v))} AS {kind})" for v in known)
        within = f"{first} IS NULL OR {first} BETWEEN {low} AND {high}"
        extent = f", min({first}), max({first})"
    row = run(
        f"SELECT count(*) FILTER (WHERE {within}){extent} FROM (SELECT {keys} FROM {b_rel}) __w "
        f"ANTI JOIN (SELECT {keys} FROM {a_rel}) __c ON {on}"
    )[0]
    fresh = row[0]  # keys of CB that the shared rows may have
    if known is not None:
        lows = [known[0]] + ([] if row[1] is None else [int(row[1])])
        highs = [known[1]] + ([] if row[2] is None else [int(row[2])])
        # of CB's keys, those CA has too are within the old file's bounds
        bounds[:] = [known, (min(lows), max(highs))]
    hit = (
        f"(SELECT __w.* FROM (SELECT {keys} FROM {whole() if fresh else a_rel}) __w "
        f"SEMI JOIN (SELECT {keys} FROM {b_rel}) __c ON {on})"
    )
    sources: list[tuple[str, int, int, Sequence[str]]] = [
        (hit, 1, 1, ()), (a_rel, 0, -1, ()), (b_rel, 0, 1, ()),
    ]  # fmt: skip
    sql = key_totals_query(ot, nt, key, sources, False, text)
    part, total_b = key_totals_answer(out, key, run(sql)[0])
    return proved[0], proved[0] - part + total_b


def _proved(
    cache: Path | None, out: RowDiff, old: Side, ot: Table, new: Side, nt: Table,
    key: Sequence[str], text: bool, bounds: Sequence[checks.Bounds | None] = (None, None),
) -> None:  # fmt: skip
    """Record what a keyed diff that finished proved of each side (``vfs.tables.checks``):
    every value fits its type (the full path reads every value; the fast path the old
    file's and CB's, and S is in the old file), the key names one row, and its rows;
    with ``bounds`` of the key on each side where the diff found them."""
    if cache is None:
        return
    rows = (out.unchanged + out.removed + out.changed, out.unchanged + out.changed + out.added)
    for side, table, n, b in ((old, ot, rows[0], bounds[0]), (new, nt, rows[1], bounds[1])):
        if side.present and not table.empty and side.chunks:
            checks.record(cache, checks.name(side.chunks, table, text, key), n, b)


def _full(
    engine: Engine, out: RowDiff, old: Side, new: Side, ot: Table, nt: Table,
    key: Sequence[str], limit: int, text: bool,
) -> None:  # fmt: skip
    a_rel = ot.relation(old.file, text, _lines(engine, old, ot))
    b_rel = nt.relation(new.file, text, _lines(engine, new, nt))
    out.method = "full"
    out.shared_bytes = 0
    if key:
        counted = (_rows(old, ot), _rows(new, nt))

        def totals() -> tuple[int, int]:
            return key_totals(
                engine, out, ot, nt, key, [(a_rel, 1, 0, ()), (b_rel, 0, 1, ())], text=text
            )

        keyed(engine, out, ot, nt, key, a_rel, b_rel, limit, text, totals, counted)
    else:
        counted = (_rows(old, ot), _rows(new, nt))
        unkeyed(engine, out, ot, nt, a_rel, b_rel, limit, text, 0, counted)


def _checked(side: Side, table: Table, text: bool) -> list[str]:
    """The columns of ``side`` to convert so that a value that does not fit its column's
    type (or is not UTF-8) is found as reading every column would find it.

    Every column, but for a CSV side of ASCII bytes only its typed ones: such a side
    holds only valid UTF-8, and any text fits a VARCHAR column (read as ``text``,
    every column is one). The engine checks the UTF-8 of the text columns it reads
    only: reading them costs a quarter of the benchmark file's key check.
    """
    if table.fmt not in ("csv", "tsv") or not side.ascii:
        return table.names
    if text:
        return []
    return [n for n, t in table.columns if t != "VARCHAR"]


def _lines(engine: Engine, side: Side, table: Table) -> tuple[int, int] | None:
    """The size and longest line of ``side`` if each of its lines is one row (where
    ``_rows`` counts them), for ``Table.relation`` to read it in parallel pieces
    (unless the engine refused them)."""
    if not engine.pieces or table.fmt not in ("csv", "tsv") or _rows(side, table) is None:
        return None
    return side.size, side.longest_line


def _rows(side: Side, table: Table) -> int | None:
    """The rows the engine reads from ``side``, counted while it was copied, or None."""
    if table.empty:
        return 0
    if table.fmt == "parquet" or not table.plain or table.newline not in ("\\n", "\\r\\n"):
        return None
    return side.rows(table.has_header, table.quote if table.fmt != "jsonl" else None)


def _apart(entries: Sequence[Entry | None]) -> bool:
    """True for two files of which the newer could reuse less than ``FAST_SHARE`` of its
    bytes from the older (then both are copied at the same time)."""
    if len(entries) != 2 or entries[0] is None or entries[1] is None:
        return False
    old = {c.oid for c in entries[0].chunks}
    reused = sum(c.size for c in entries[1].chunks if c.oid in old)
    return reused < FAST_SHARE * max(1, entries[1].size)


def diff_path(
    history: History, store: ObjectStore, chunker: Chunker, root: Path, dvfs_dir: Path,
    revs: Sequence[str], path: bytes, key: Sequence[str] = (), limit: int = 20,
    threads: int | None = None, fast_share: float | None = FAST_SHARE, words: Words = CLI,
    linger: bool = False,
) -> RowDiff:  # fmt: skip
    """The rows of ``path`` from ``revs[0]`` to ``revs[1]``; a refusal names what the
    user gave in ``words`` (the CLI's options, or a page's controls). ``linger``: a
    diff that succeeds leaves its engine's connection open (``Engine.close``), for a
    process that ends right after without the interpreter's teardown.

    ``key`` is as the user gave it (``vfs.tables.keys``). One revision: it against the
    working tree; none: HEAD against the working tree.
    A side where the file does not exist is an empty file (every row added or
    removed); the file must exist on one side at least.

    A version whose file the working tree holds as it is, as the index vouches, is
    read there in place (``vfs.tables.source.from_tree_file``). If that file changed
    by the time the diff is made, the diff is made again from copies out of the
    store, and nothing learned from the working-tree file is kept in the row cache
    (``vfs.tables.checks.held``).
    """
    keys.check(key, words)
    if not path:
        raise UsageError(
            f"{words.rows} compares one file, not the repository's root: give its path"
        )
    fmt = format_of(path)
    if fmt is None:
        raise UsageError(
            f"{words.reader} reads CSV, TSV, JSON Lines and Parquet files ({SUFFIXES}); "
            f"{quote_name(path)} has none of these extensions"
        )
    ext = os.path.splitext(os.fsdecode(path))[1].lower()
    names = list(revs) if revs else ["HEAD"]
    with scratch(dvfs_dir) as tmp:
        entries: list[Entry | None] = []
        for rev in names:
            entry = history.lookup(history.version(history.resolve(rev)).tree, path)
            if entry is not None and entry.kind != Kind.FILE:
                what = "a directory" if entry.kind == Kind.DIR else "a symbolic link"
                raise UsageError(
                    f"{quote_name(path)} is {what} in {rev}: {words.rows} compares files"
                )
            entries.append(entry)
        done: RowDiff | None = None
        for vouched in (_Vouching(dvfs_dir, path), None):
            # the first attempt works in the scratch directory itself, an attempt from
            # copies in a directory of its own: one directory fewer to remove, which
            # costs milliseconds on some disks (Engine)
            work = tmp
            if vouched is None:
                work = tmp / "copies"
                work.mkdir()
            engine = Engine(work, threads)  # it starts while the sides are copied
            soon = _sniffer(engine, fmt, entries, dvfs_dir) if len(names) == 2 else None
            sides: tuple[Side, ...] = ()
            try:
                with checks.held() as holding:
                    try:
                        sides = _copy_sides(
                            store, chunker, root, work, ext, names, entries, path, threads,
                            dvfs_dir, vouched, soon,
                        )  # fmt: skip
                        engine.bound_spill(sum(s.size for s in sides))
                        result = diff_rows(
                            engine, fmt, *sides, key, limit, fast_share, dvfs_dir, words
                        )
                    except _Moved:
                        continue
                    except Exception:
                        if not any(s.moved() for s in sides):
                            holding.write()  # what a diff that stopped learned holds
                            raise
                        continue  # what went wrong may be the file changing under the engine
                    if any(s.moved() for s in sides):
                        continue
                holding.write()
                done = result
                return result
            finally:
                engine.close(linger=linger and done is not None)
                for s in sides:
                    s.close()
        raise AssertionError("not reached: the diff from copies returns or raises")


def _sniffer(
    engine: Engine, fmt: Format, entries: Sequence[Entry | None], dvfs_dir: Path
) -> Callable[[int, Path], None] | None:
    """``_copy_sides``'s ``soon``: two CSV or TSV versions whose dialects no earlier
    diff kept are sniffed as soon as each copy holds its sample, while the copies go
    on (``Engine.sniff_early``); None where there is nothing to sniff so.

    The copies are mostly one thread's work (the chunk facts hold the GIL), and each
    sniff is one thread's too, so on two cores they overlap; before, both sniffs
    waited for both copies."""
    if fmt not in ("csv", "tsv") or len(entries) != 2:
        return None
    sizes = [e.size if e is not None else 0 for e in entries]
    if not all(sizes):
        return None
    kept = checks.KeptSniffs(dvfs_dir)
    keys = [prefix_key(e.chunks, engine_module.SNIFF_BYTES) for e in entries if e is not None]
    todo = {i for i in (0, 1) if kept.get(fmt, keys[i]) is None}
    if not todo:
        return None

    def soon(i: int, path: Path) -> None:
        if i in todo:
            engine.sniff_early(fmt, path, sizes[i], keys[i])

    return soon


class _Moved(Exception):
    """A working-tree file read in place changed while the sides were made."""


class _Vouching:
    """What the index says of the working tree's file ``path``, read when first asked
    (a damaged index vouches for nothing).

    Reading a record decodes the whole index (``Index.get``): 0.3-0.45 CPU-s for
    200,000 paths (a 29 MB index), where reading a file in place spares about 7 ms
    a MB of it (its copy out of the store). So the index is asked only about files
    at least twice its size (``_worth``); a smaller file is copied as before.
    """

    def __init__(self, dvfs_dir: Path, path: bytes) -> None:
        self.dvfs_dir = dvfs_dir
        self.path = path
        self._index: list[Index | None] = []
        self._bytes: int | None = None

    def _worth(self, size: int) -> bool:
        """True if reading the index costs less than copying a file of ``size`` bytes."""
        if self._bytes is None:
            try:
                self._bytes = os.stat(self.dvfs_dir / "index").st_size
            except OSError:
                self._bytes = -1  # no index: it vouches for nothing
        return 0 <= self._bytes <= size // 2

    def _staged(self) -> Staged | None:
        if not self._index:
            try:
                self._index.append(Index.load(self.dvfs_dir / "index"))
            except (DvfsError, OSError):
                self._index.append(None)
        idx = self._index[0]
        try:
            staged = idx.get(self.path) if idx is not None else None
        except DvfsError:
            return None
        if staged is None or not staged.checked_out or staged.kind != Kind.FILE:
            return None
        return staged if staged.digest else None

    def __call__(self, entry: Entry) -> Callable[[os.stat_result], bool]:
        """Whether a working-tree file of stat ``st`` holds the bytes of ``entry`` (a
        version's file), as ``vfs.tables.source.from_tree_file`` asks: the index
        records the path as a checked-out file with the entry's content hash and size,
        hashed with that very stat, outside the racy window (``Index.fresh``)."""

        def holds(st: os.stat_result) -> bool:
            if not self.may_hold(entry):
                return False
            idx = self._index[0]
            try:
                return idx is not None and idx.fresh(self.path, st) is True
            except DvfsError:
                return False

        return holds

    def may_hold(self, entry: Entry) -> bool:
        """Whether the index records the working tree's file with the bytes of ``entry``
        (the file itself not looked at: ``__call__`` checks it), so that it may be read
        in place (``_worth``); False when it certainly is not."""
        if not self._worth(entry.size):
            return False
        staged = self._staged()
        return staged is not None and (staged.digest, staged.size) == (entry.digest, entry.size)

    def working(self, size: int) -> Entry | None:
        """The working tree's file as the index recorded it, as a tree entry (its
        chunks those of the file's bytes), or None if the index holds no such file
        or is not worth reading for a file of ``size`` bytes (``_worth``)."""
        staged = self._staged() if self._worth(size) else None
        return staged.to_entry(self.path.rpartition(b"/")[2]) if staged is not None else None


DONOR = 2  # in ``_copy_sides``: the working tree's file, read for the chunks it shares


def _shares(working: Entry, entries: Sequence[Entry | None]) -> bool:
    """True if a version's file (``entries``) shares ``FAST_SHARE`` of its bytes with
    the working tree's (``working``): then its copy takes those chunks from there."""
    return any(
        e is not None and _shared(working, e) >= FAST_SHARE * max(1, e.size) for e in entries
    )


def _shared(working: Entry, entry: Entry) -> int:
    """How many bytes of ``entry`` lie in chunks the working tree's file (``working``) holds."""
    held = {c.oid for c in working.chunks}
    return sum(c.size for c in entry.chunks if c.oid in held)


ALONE = 0.1  # a version sharing less of its bytes with the working tree's file is copied
# without it, from the start (``_copy_sides``)


def _alone(working: Entry | None, entry: Entry) -> bool:
    """True if ``entry`` (a version's file) shares less than ``ALONE`` of its bytes with
    the working tree's file (``working``, as the index records it; None: none)."""
    return working is None or _shared(working, entry) < ALONE * max(1, entry.size)


def _copy_sides(
    store: ObjectStore, chunker: Chunker, root: Path, tmp: Path, ext: str, names: list[str],
    entries: list[Entry | None], path: bytes, threads: int | None, cache: Path | None = None,
    vouched: _Vouching | None = None, soon: Callable[[int, Path], None] | None = None,
) -> tuple[Side, Side]:  # fmt: skip
    """Both sides of ``path`` copied into ``tmp``: the versions ``names`` name, and the
    working tree's file when there is one name. ``cache``: the ``.dvfs`` directory whose
    kept chunk facts the copies use and fill (``vfs.tables.source``). ``vouched``
    (``_Vouching``): a version's file that the working tree holds is read there in
    place rather than copied, and the other version's copy takes the chunks the two
    share from it; so is the working tree's side, with the chunks the index records,
    rather than copied and cut into chunks. Where the working tree holds neither
    version but shares most of the bytes of one (the diff of two older versions),
    the copies take the chunks they share with it from there rather than out of the
    store (``vfs.tables.source.from_version``'s ``reuse``), and scan each of them for
    its facts as they copy it: that file is not scanned whole first (on the
    benchmark's random 1% with nothing kept, the older version's copy began 0.2 s
    in, once the working tree's 100 MiB had been scanned on the GIL beside the newer
    version's copy). _Moved if a file read in the working tree changed while the
    copies were made.

    Two versions copied at the same time (``_apart``) start copying before the working
    tree's files are read (``from_tree_file`` reads each whole for its chunk facts) when
    they take nothing from there: a version that the index does not record as the
    working tree's file and that shares less than ``ALONE`` of its bytes with it. On
    the benchmark's random 1% with nothing kept, the newer version's copy (100 MiB
    decompressed) no longer waits for the working tree's file (the older version's
    donor) to be read; on its 200,000-row cut, the older version's copy no longer waits
    for the newer one's, read in place, to be scanned.

    ``soon(i, path)``: side ``i`` (0 old, 1 new) holds its first ``SNIFF_BYTES`` at
    ``path`` (the rest may still be written): its dialect may be detected meanwhile
    (``Engine.sniff_early``)."""
    sides: list[Side] = []
    placed: dict[int, Side] = {}
    pool = ThreadPoolExecutor(2, thread_name_prefix="rows-copy")
    dests = [tmp / f"{('old', 'new')[i]}{ext}" for i in range(len(names))]
    early: dict[int, Future[Side]] = {}

    def ready(i: int) -> tuple[int, Callable[[], None]] | None:
        if soon is None:
            return None
        return engine_module.SNIFF_BYTES, lambda: soon(i, dests[i])

    try:
        if _apart(entries):
            largest = max((e.size for e in entries if e is not None), default=0)
            working = vouched.working(largest) if vouched is not None else None
            for i, e in enumerate(entries):
                if e is not None and (
                    vouched is None or (not vouched.may_hold(e) and _alone(working, e))
                ):
                    early[i] = pool.submit(
                        from_version, store, e, names[i], path, dests[i], None, threads, cache,
                        ready=ready(i),
                    )  # fmt: skip
        if vouched is not None:
            for i, e in enumerate(entries):
                if e is None or i in early:
                    continue
                begun: list[Path] = []

                def sniff(copy: Path, i: int = i, begun: list[Path] = begun) -> None:
                    begun.append(copy)
                    if soon is not None:
                        soon(i, copy)

                s = from_tree_file(
                    root, path, e, names[i], vouched(e), cache, sniff if soon else None
                )
                if s is not None:
                    placed[i] = s
                elif begun:
                    raise _Moved  # the file changed after its sniff began: from copies
            largest = max((e.size for e in entries if e is not None), default=0)
            if len(names) == 1:
                with contextlib.suppress(OSError):
                    largest = max(largest, os.lstat(root / os.fsdecode(path)).st_size)
            staged = vouched.working(largest) if len(names) == 1 or not placed else None
            whole = len(names) == 1  # a side of the diff, not only a donor: scanned whole
            later = [e for i, e in enumerate(entries) if i not in early]
            if (
                staged is not None
                and (len(names) == 1 or _shares(staged, later))
                and (
                    s := from_tree_file(
                        root, path, staged, "the working tree", vouched(staged), cache, None, whole
                    )
                )
            ):
                placed[1 if len(names) == 1 else DONOR] = s
        if _apart(entries):  # two files, nothing to reuse: both copies at once
            both = [e for e in entries if e is not None]  # (_apart: neither is None)
            donor = placed.get(DONOR)
            jobs: list[Future[Side] | None] = []
            for i, (e, rev, dest) in enumerate(zip(both, names, dests, strict=True)):
                if i in early or i in placed:
                    jobs.append(early.get(i))
                else:
                    job = pool.submit(
                        from_version, store, e, rev, path, dest, donor, threads, cache,
                        ready=ready(i),
                    )  # fmt: skip
                    jobs.append(job)
            sides = [placed[i] if j is None else j.result() for i, j in enumerate(jobs)]
        else:
            # the file read in place, else the copy made before, else the donor
            reuse = next((placed[i] for i in (0, 1) if i in placed), None)
            for i, (entry, rev, dest) in enumerate(zip(entries, names, dests, strict=True)):
                if i in placed:
                    sides.append(placed[i])
                elif entry is None:
                    sides.append(empty_side(rev, path, dest))
                else:
                    src = reuse or (sides[0] if sides else placed.get(DONOR))
                    side = from_version(
                        store, entry, rev, path, dest, src, threads, cache, lazy=True,
                        ready=ready(i),
                    )  # fmt: skip
                    sides.append(side)
        if len(names) == 1:
            dest = tmp / f"new{ext}"
            if 1 in placed:
                sides.append(placed[1])
            elif os.path.lexists(root / os.fsdecode(path)):
                sides.append(from_working(root, path, chunker, dest))
            else:
                sides.append(empty_side("the working tree", path, dest))
    except BaseException as exc:
        for job in early.values():
            job.cancel()
        pool.shutdown(wait=True)  # no copy goes on writing into the scratch directory
        moved = any(s.moved() for s in placed.values())
        for s in placed.values():
            s.close()
        if moved and isinstance(exc, Exception):
            raise _Moved from exc
        raise
    pool.shutdown(wait=True)
    if any(s.moved() for s in placed.values()):
        for s in placed.values():
            s.close()
        raise _Moved
    if DONOR in placed:  # its bytes are in the copies now, and were as vouched for
        placed.pop(DONOR).close()
    old, new = sides
    if not old.present and not new.present:
        for s in placed.values():
            s.close()
        raise PathNotFound(f"{quote_name(path)} is neither in {old.label} nor in {new.label}")
    return old, new
