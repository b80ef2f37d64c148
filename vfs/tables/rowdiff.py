"""Row-level diff of one tabular file between two sides (versions or the working tree).

What a user gets, in order: schema changes (columns added, removed or retyped, by
name), counts of rows added, removed, changed and unchanged, then up to ``limit``
rows, in key order (or row order of their values without a key).

- With a key (one or more columns), rows are matched by key. The key must name one
  row on each side; otherwise the diff stops with an example of a key that names
  several. A matched pair is changed when a column both sides have differs; a column
  whose type changed is compared as text. Columns only one side has are listed as
  schema changes, never as row changes.
- Without a key, the diff is the multiset difference of whole rows (over the columns
  both sides have): a row that one side holds more often than the other is removed
  or added that many times.
- CSV values are compared as the types detected on the file's first rows
  (``vfs.tables.engine``); if a value elsewhere does not fit, the diff is made again
  with every value compared as text, and a note says so.
- A file that is not what its extension claims, or that the engine cannot read
  (malformed rows, a line over the engine's limit, a damaged Parquet footer), gets a
  byte-level summary with a note saying why.

The fast path (``method: chunks``). When both sides are CSV/TSV without quoted
fields (the quote character occurs in neither file) or JSON Lines, read with the
same columns and dialect, and share at least ``FAST_SHARE`` of their bytes through
shared chunks, ``vfs.tables.regions`` splits each file into the rows both share and
the changed rows. Then:

- the shared rows are one multiset S, on both sides; old = S + CA, new = S + CB;
- keyed: uniqueness is checked over S + CA and S + CB = old - CA + CB (one
  aggregation reading the old file, every value converted, so a value that does not
  fit its type is found as the full path finds it; ``_checked`` says when text
  columns can be left out); when keys are unique, a row of S
  has a key that no row of CA or CB has, so matching CA against CB gives exactly the
  full diff. Only CA and CB are written out for the engine;
- unkeyed: (S + CA) - (S + CB) = CA - CB as multisets.

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
that reads fewer rows than the file has: that file gets the byte-level summary.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from vfs.errors import DvfsError, UsageError
from vfs.model.chunking import Chunker
from vfs.model.codec import Entry, Kind
from vfs.quoting import quote_name
from vfs.repo.history import History
from vfs.store.objects import ObjectStore
from vfs.tables import regions
from vfs.tables.engine import Engine, NotTabular, Table, TypeMismatch, ident, plain_value
from vfs.tables.formats import NAMES, SUFFIXES, Format, format_of, refusal
from vfs.tables.source import (
    Side,
    empty_side,
    from_version,
    from_working,
    scratch,
    write_ranges,
)

FAST_SHARE = 0.5  # the share of bytes two sides must have in common for the fast path
LINES = ("csv", "tsv", "jsonl")  # the formats whose rows are lines


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


def diff_rows(
    engine: Engine,
    fmt: Format,
    old: Side,
    new: Side,
    key: Sequence[str] = (),
    limit: int = 20,
    fast_share: float | None = FAST_SHARE,
) -> RowDiff:
    """Compare the rows of two sides of one file (see the module doc).

    ``fast_share`` None turns the fast path off (tests compare both paths).
    """
    out = RowDiff(new.path, old.label, new.label, fmt, tuple(key))
    for side in (old, new):
        lines = side.longest_line if fmt in LINES else 0
        why = refusal(fmt, side.head, side.tail, side.size, lines)
        if why:
            return _bytes_only(out, old, new, f"{_where(side)} is not {NAMES[fmt]}: {why}")
    try:
        ot, nt = engine.sniff_pair(fmt, old.file, old.size, new.file, new.size)
    except NotTabular as exc:
        return _bytes_only(out, old, new, f"{NAMES[fmt]} that the engine cannot read: {exc}")
    if ot.empty and nt.empty:
        return out  # no rows on either side: nothing to compare, no key to check
    if ot.empty and not nt.empty:
        ot = Table(fmt, nt.columns, empty=True)
    elif nt.empty and not ot.empty:
        nt = Table(fmt, ot.columns, empty=True)
    else:
        out.schema = schema_changes(ot, nt)
    _check_key(key, old, ot, new, nt)
    plan = None
    if fast_share is not None:
        plan = fast_plan(old, new, ot, nt, fast_share)
    for text in (False, True):
        out.added = out.removed = out.changed = out.unchanged = 0
        out.columns, out.rows = {}, []  # nothing of a pass that failed half-way
        try:
            if plan is not None:
                _fast(engine, out, old, new, ot, nt, plan, key, limit, text)
            else:
                _full(engine, out, old, new, ot, nt, key, limit, text)
            return out
        except TypeMismatch as exc:
            if text:  # read as text, a value that does not convert is not a table's
                return _bytes_only(
                    out, old, new, f"{NAMES[fmt]} that the engine cannot read: {exc}"
                )
            out.notes.append(
                f"a value does not fit the type detected for its column ({exc}): "
                "values are compared as text"
            )
        except NotTabular as exc:
            return _bytes_only(out, old, new, f"{NAMES[fmt]} that the engine cannot read: {exc}")
    return out  # not reached: the text pass returns or raises


def _where(side: Side) -> str:
    return f"{quote_name(side.path)} in {side.label}"


def _bytes_only(out: RowDiff, old: Side, new: Side, reason: str) -> RowDiff:
    shared = sum(n for _, _, n in regions.matching_runs(old.chunks, new.chunks))
    out.method = "bytes"
    out.schema, out.rows, out.columns = [], [], {}
    out.added = out.removed = out.changed = out.unchanged = 0
    out.bytes_only = ByteSummary(reason, old.size, new.size, shared)
    out.notes.append(f"{reason}: byte-level summary")
    return out


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


def _check_key(key: Sequence[str], old: Side, ot: Table, new: Side, nt: Table) -> None:
    for side, table in ((old, ot), (new, nt)):
        missing = [k for k in key if k not in table.names]
        if missing:
            shown = ", ".join(quote_name(n) for n in table.names[:20])
            more = f" and {len(table.names) - 20} more" if len(table.names) > 20 else ""
            raise UsageError(
                f"--key column {quote_name(missing[0])} is not in {_where(side)} "
                f"(its columns: {shown or 'none'}{more})"
            )
    if len(set(key)) != len(key):
        raise UsageError("--key names a column twice")


def fast_plan(old: Side, new: Side, ot: Table, nt: Table, share: float) -> regions.Plan | None:
    """The fast path's plan, or None where it cannot be proven right (module doc)."""
    if ot.fmt not in LINES or ot != nt or ot.empty:
        return None
    if ot.fmt != "jsonl":
        if not ot.plain:
            return None
        if ot.quote:
            q = ot.quote.encode()
            if old.holds.get(q, True) or new.holds.get(q, True):
                return None
    with open(old.file, "rb") as a, open(new.file, "rb") as b:
        plan = regions.plan(a.fileno(), old.chunks, b.fileno(), new.chunks, ot.has_header)
    if plan is None or not plan.shared:
        return None
    if plan.shared_bytes < share * max(old.size, new.size):
        return None
    return plan


# ------------------------------------------------------------------ the two paths


def _fast(
    engine: Engine, out: RowDiff, old: Side, new: Side, ot: Table, nt: Table,
    plan: regions.Plan, key: Sequence[str], limit: int, text: bool,
) -> None:  # fmt: skip
    """Write the changed rows out and compare only them.

    The shared rows S are never written out: where they must be read (the key check,
    the unkeyed count of unchanged rows), the old file (S + CA) is read and CA
    subtracted.
    """
    base = engine.scratch
    files = {name: base / f"part-{name}.{ot.fmt}" for name in ("old", "new")}
    with open(old.file, "rb") as a, open(new.file, "rb") as b:
        header = os.pread(a.fileno(), plan.old_header, 0)
        for name, src, ranges in (("old", a, plan.old_changed), ("new", b, plan.new_changed)):
            with open(files[name], "wb") as dst:
                write_ranges(src.fileno(), ranges, dst.fileno(), header)
    whole = ot.relation(old.file, text)
    a_rel, b_rel = ot.relation(files["old"], text), nt.relation(files["new"], text)
    out.method = "chunks"
    out.shared_bytes = plan.shared_bytes
    counted = (_rows(old, ot), _rows(new, nt))
    checked = _checked(old, ot, text)
    if key:
        counts = _key_totals(
            engine, out, ot, nt, key,
            [(whole, 1, 1, checked), (a_rel, 0, -1, ()), (b_rel, 0, 1, ())],
        )  # fmt: skip
        _keyed(engine, out, ot, nt, key, a_rel, b_rel, limit, text, lambda: counts, counted)
    else:
        shared = engine.count(whole, checked) - engine.count(a_rel)
        _unkeyed(engine, out, ot, nt, a_rel, b_rel, limit, text, shared, counted)


def _full(
    engine: Engine, out: RowDiff, old: Side, new: Side, ot: Table, nt: Table,
    key: Sequence[str], limit: int, text: bool,
) -> None:  # fmt: skip
    a_rel, b_rel = ot.relation(old.file, text), nt.relation(new.file, text)
    out.method = "full"
    out.shared_bytes = 0
    if key:
        counted = (_rows(old, ot), _rows(new, nt))

        def totals() -> tuple[int, int]:
            return _key_totals(engine, out, ot, nt, key, [(a_rel, 1, 0, ()), (b_rel, 0, 1, ())])

        _keyed(engine, out, ot, nt, key, a_rel, b_rel, limit, text, totals, counted)
    else:
        counted = (_rows(old, ot), _rows(new, nt))
        _unkeyed(engine, out, ot, nt, a_rel, b_rel, limit, text, 0, counted)


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


def _rows(side: Side, table: Table) -> int | None:
    """The rows the engine reads from ``side``, counted while it was copied, or None."""
    if table.empty:
        return 0
    if table.fmt == "parquet" or not table.plain or table.newline not in ("\\n", "\\r\\n"):
        return None
    return side.rows(table.has_header, table.quote if table.fmt != "jsonl" else None)


def _retyped(ot: Table, nt: Table, name: str, text: bool) -> bool:
    return not text and ot.types()[name] != nt.types()[name]


def _expr(alias: str, col: str, as_text: bool) -> str:
    e = f"{alias}.{col}" if alias else col
    return f"CAST({e} AS VARCHAR)" if as_text else e


def _key_totals(
    engine: Engine, out: RowDiff, ot: Table, nt: Table, key: Sequence[str],
    sources: list[tuple[str, int, int, Sequence[str]]],
) -> tuple[int, int]:  # fmt: skip
    """Rows on each side, after checking that the key names one row on each.

    ``sources``: (relation, weight on the old side, weight on the new, columns whose
    every value is converted on the way): each row counts that many times towards
    its key's rows on each side. The fast path gives (old file, 1, 1), (CA, 0, -1),
    (CB, 0, 1): the new side is S + CB = old - CA + CB. The weights are added up
    as counts: sum() keeps 128-bit states, and the benchmark's key check peaked
    50 MiB higher with it.
    """
    parts = []
    for rel, wa, wb, convert in sources:
        assert wa in (0, 1) and wb in (-1, 0, 1)
        keys = ", ".join(
            f"{_expr('', ident(k), _retyped(ot, nt, k, False))} AS k{i}" for i, k in enumerate(key)
        )
        where = ""
        if convert:
            where = f" WHERE hash({', '.join(map(ident, convert))}) IS NOT NULL"
        parts.append(f"SELECT {int(wa)} AS __a, {int(wb)} AS __b, {keys} FROM {rel}{where}")
    ks = ", ".join(f"k{i}" for i in range(len(key)))
    example = ", ".join(f"k{i} := k{i}" for i in range(len(key)))
    rows = engine.run(
        f"WITH g AS (SELECT {ks}, count(*) FILTER (WHERE __a = 1) AS na, "
        "count(*) FILTER (WHERE __b = 1) - count(*) FILTER (WHERE __b = -1) AS nb "
        f"FROM ({' UNION ALL '.join(parts)}) GROUP BY ALL) "
        "SELECT coalesce(sum(na), 0), coalesce(sum(nb), 0), "
        f"first(struct_pack({example}, na := na, nb := nb)) FILTER (WHERE na > 1 OR nb > 1) "
        "FROM g"
    )
    total_a, total_b, dup = rows[0]
    if dup is not None:
        shown = ", ".join(f"{quote_name(k)}={_show(dup[f'k{i}'])}" for i, k in enumerate(key))
        label = out.old_label if dup["na"] > 1 else out.new_label
        n = dup["na"] if dup["na"] > 1 else dup["nb"]
        raise KeyNotUnique(
            f"--key {','.join(quote_name(k) for k in key)} is not unique in "
            f"{quote_name(out.path)} in {label}: {shown} names {n:,} rows; give the columns "
            "that together name one row (--key a,b), or leave --key out to compare whole rows"
        )
    return int(total_a), int(total_b)


def _check_rows(counted: tuple[int | None, int | None], read: tuple[int, int]) -> None:
    """NotTabular if the engine read another number of rows than the lines counted.

    A count from newlines is exact where it is made (``Side.rows``), so a difference
    means the engine misread the file (it has dropped lines before): better a
    byte-level summary than a diff that leaves rows out.
    """
    for side, n, m in zip(("old", "new"), counted, read, strict=True):
        if n is not None and n != m:
            raise NotTabular(f"the engine read {m:,} rows of the {side} file, which has {n:,}")


def _show(v: Any) -> str:
    return "NULL" if v is None else quote_name(str(plain_value(v)))


def _keyed(
    engine: Engine, out: RowDiff, ot: Table, nt: Table, key: Sequence[str],
    a_rel: str, b_rel: str, limit: int, text: bool, totals: Callable[[], tuple[int, int]],
    counted: tuple[int | None, int | None] = (None, None),
) -> None:  # fmt: skip
    """Join the two sides on the key into the table ``d`` and read the answer from it.

    The join keeps every pair, identical ones folded into one ``same`` row with
    their count, so ``d`` says how many rows of each side the join saw. When keys
    are unique, that is every row of each side once: if both sides' rows were
    ``counted`` while copying and agree, and no key is repeated among the rows one
    side alone has, the keys are unique and the separate check (``totals``: an
    aggregation over every key of both sides) is skipped. Any disagreement runs it.
    """
    oi = {n: i for i, n in enumerate(ot.names)}
    ni = {n: i for i, n in enumerate(nt.names)}
    common = [n for n in ot.names if n in ni]
    oproj = ", ".join(f"{ident(n)} AS o{i}" for i, n in enumerate(ot.names))
    nproj = ", ".join(f"{ident(n)} AS n{i}" for i, n in enumerate(nt.names))

    def pair(n: str, alias: bool = True) -> tuple[str, str]:
        cast = _retyped(ot, nt, n, text)
        return (
            _expr("o" if alias else "", f"o{oi[n]}", cast),
            _expr("n" if alias else "", f"n{ni[n]}", cast),
        )

    on = " AND ".join(f"{a} IS NOT DISTINCT FROM {b}" for a, b in map(pair, key))
    values = [n for n in common if n not in key]
    differ = " OR ".join(f"{a} IS DISTINCT FROM {b}" for a, b in map(pair, values)) or "false"
    cols = [f"o{i}" for i in range(len(ot.names))] + [f"n{i}" for i in range(len(nt.names))]
    status = (
        "CASE WHEN o.__o IS NULL THEN 'added' WHEN n.__n IS NULL THEN 'removed' "
        f"WHEN {differ} THEN 'changed' ELSE 'same' END"
    )
    kept = ", ".join(f"CASE WHEN __st = 'same' THEN NULL ELSE {c} END AS {c}" for c in cols)
    engine.run(
        f"CREATE OR REPLACE TEMP TABLE d AS SELECT __st, {', '.join(cols)}, count(*) AS __k "
        f"FROM (SELECT __st, {kept} FROM (SELECT {status} AS __st, "
        "o.* EXCLUDE (__o), n.* EXCLUDE (__n) "
        f"FROM (SELECT true AS __o, {oproj} FROM {a_rel}) o "
        f"FULL OUTER JOIN (SELECT true AS __n, {nproj} FROM {b_rel}) n ON {on})) GROUP BY ALL"
    )
    pairs = {str(k): int(v) for k, v in engine.run("SELECT __st, sum(__k) FROM d GROUP BY __st")}
    same, changed = pairs.get("same", 0), pairs.get("changed", 0)
    added, removed = pairs.get("added", 0), pairs.get("removed", 0)
    seen = (same + changed + removed, same + changed + added)
    alone = ", ".join(
        f"coalesce({a}, {b})" for a, b in (pair(k, alias=False) for k in key)
    )  # the key of a row that one side alone has
    repeated = engine.run(
        f"SELECT count(*) FROM (SELECT __st, {alone} FROM d WHERE __st IN ('added', 'removed') "
        "GROUP BY ALL HAVING sum(__k) > 1)"
    )[0][0]
    many = engine.run("SELECT max(__k) FROM d WHERE __st <> 'same'")[0][0]
    if counted != seen or repeated or many not in (None, 1):
        seen = totals()  # raises KeyNotUnique with an example if a key names several rows
    _check_rows(counted, seen)
    engine.run("DELETE FROM d WHERE __st = 'same'")
    out.added, out.removed, out.changed = added, removed, changed
    out.unchanged = seen[0] - out.removed - out.changed
    if values and out.changed:
        row = engine.run(
            "SELECT "
            + ", ".join(
                f"count(*) FILTER (WHERE {a} IS DISTINCT FROM {b})"
                for a, b in (pair(n, alias=False) for n in values)
            )
            + " FROM d WHERE __st = 'changed'"
        )[0]
        out.columns = {n: int(c) for n, c in zip(values, row, strict=True) if c}
    if limit <= 0:
        return
    order = ", ".join(
        f"coalesce({a}, {b}) NULLS FIRST" for a, b in (pair(k, alias=False) for k in key)
    )
    m = len(ot.names)
    for r in engine.run(
        f"SELECT __st, {', '.join(cols)} FROM d ORDER BY {order}, __st LIMIT {int(limit)}"
    ):
        st, ov, nv = r[0], r[1 : 1 + m], r[1 + m :]
        kv = {k: (nv[ni[k]] if st == "added" else ov[oi[k]]) for k in key}
        if st == "added":
            out.rows.append(RowChange(st, kv, dict(zip(nt.names, nv, strict=True))))
        elif st == "removed":
            out.rows.append(RowChange(st, kv, dict(zip(ot.names, ov, strict=True))))
        else:
            ch = {}
            for n in values:
                a, b = ov[oi[n]], nv[ni[n]]
                if _retyped(ot, nt, n, text):
                    differs = (None if a is None else str(a)) != (None if b is None else str(b))
                else:
                    differs = not _same(a, b)
                if differs:
                    ch[n] = (a, b)
            out.rows.append(RowChange(st, kv, changes=ch))


def _same(a: Any, b: Any) -> bool:
    """Equal as the engine's IS NOT DISTINCT FROM says (NaN equals NaN there)."""
    if a is None or b is None:
        return a is b
    if isinstance(a, float) and isinstance(b, float) and a != a and b != b:
        return True
    return bool(a == b)


def _unkeyed(
    engine: Engine, out: RowDiff, ot: Table, nt: Table, a_rel: str, b_rel: str,
    limit: int, text: bool, shared: int, counted: tuple[int | None, int | None] = (None, None),
) -> None:  # fmt: skip
    nt_names = set(nt.names)
    common = [n for n in ot.names if n in nt_names]
    if not common:
        out.removed = shared + engine.count(a_rel)
        out.added = shared + engine.count(b_rel)
        out.notes.append("the two sides have no column in common: every row differs")
        return

    def sel() -> str:
        return ", ".join(
            f"{_expr('', ident(n), _retyped(ot, nt, n, text))} AS c{i}"
            for i, n in enumerate(common)
        )

    cs = ", ".join(f"c{i}" for i in range(len(common)))
    engine.run(
        "CREATE OR REPLACE TEMP TABLE d AS SELECT * FROM ("
        f"SELECT {cs}, count(*) FILTER (WHERE __s = 0) AS __na, "
        "count(*) FILTER (WHERE __s = 1) AS __nb FROM ("
        f"SELECT 0 AS __s, {sel()} FROM {a_rel} UNION ALL "
        f"SELECT 1 AS __s, {sel()} FROM {b_rel}) GROUP BY ALL) WHERE __na <> __nb"
    )
    removed, added = engine.run(
        "SELECT coalesce(sum(__na - __nb) FILTER (WHERE __na > __nb), 0), "
        "coalesce(sum(__nb - __na) FILTER (WHERE __nb > __na), 0) FROM d"
    )[0]
    out.removed, out.added = int(removed), int(added)
    # Rows of the old side not in d are unchanged; so are those in d up to __nb.
    total_a = shared + engine.count(a_rel)
    if counted != (None, None):
        _check_rows(counted, (total_a, shared + engine.count(b_rel)))
    out.unchanged = total_a - out.removed
    if limit <= 0:
        return
    for r in engine.run(f"SELECT * FROM d ORDER BY ALL LIMIT {int(limit)}"):
        vals, na, nb = r[: len(common)], int(r[-2]), int(r[-1])
        st = "removed" if na > nb else "added"
        out.rows.append(
            RowChange(st, values=dict(zip(common, vals, strict=True)), count=abs(na - nb))
        )


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
    threads: int | None = None, fast_share: float | None = FAST_SHARE,
) -> RowDiff:  # fmt: skip
    """The rows of ``path`` from ``revs[0]`` to ``revs[1]``.

    One revision: it against the working tree; none: HEAD against the working tree.
    A side where the file does not exist is an empty file (every row added or
    removed); the file must exist on one side at least.
    """
    fmt = format_of(path)
    if fmt is None:
        raise UsageError(
            f"dvfs diff --rows reads CSV, TSV, JSON Lines and Parquet files ({SUFFIXES}); "
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
                raise UsageError(f"{quote_name(path)} is {what} in {rev}: --rows compares files")
            entries.append(entry)
        engine = Engine(tmp, threads)  # it starts while the sides are copied
        try:
            old, new = _copy_sides(store, chunker, root, tmp, ext, names, entries, path, threads)
            return diff_rows(engine, fmt, old, new, key, limit, fast_share)
        finally:
            engine.close()


def _copy_sides(
    store: ObjectStore, chunker: Chunker, root: Path, tmp: Path, ext: str, names: list[str],
    entries: list[Entry | None], path: bytes, threads: int | None,
) -> tuple[Side, Side]:  # fmt: skip
    """Both sides of ``path`` copied into ``tmp``: the versions ``names`` name, and the
    working tree's file when there is one name."""
    sides: list[Side] = []
    dests = [tmp / f"{('old', 'new')[i]}{ext}" for i in range(len(names))]
    if _apart(entries):  # nothing to reuse: both copies at once
        with ThreadPoolExecutor(2, thread_name_prefix="rows-copy") as pool:
            jobs = [
                pool.submit(from_version, store, e, rev, path, dest, None, threads)
                for e, rev, dest in zip(entries, names, dests, strict=True)
                if e is not None
            ]
            sides = [j.result() for j in jobs]
    else:
        for entry, rev, dest in zip(entries, names, dests, strict=True):
            if entry is None:
                sides.append(empty_side(rev, path, dest))
            else:
                reuse = sides[0] if sides else None
                sides.append(from_version(store, entry, rev, path, dest, reuse, threads))
    if len(names) == 1:
        dest = tmp / f"new{ext}"
        if os.path.lexists(root / os.fsdecode(path)):
            sides.append(from_working(root, path, chunker, dest))
        else:
            sides.append(empty_side("the working tree", path, dest))
    old, new = sides
    if not old.present and not new.present:
        raise UsageError(f"{quote_name(path)} is neither in {old.label} nor in {new.label}")
    return old, new
