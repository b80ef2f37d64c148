"""The queries comparing the rows of two tables in the engine, filling in a RowDiff.

``keyed`` matches rows by key (``key_totals`` checks that a key names one row on
each side and counts the rows); ``unkeyed`` takes the multiset difference of whole
rows over the columns both sides have. ``vfs.tables.rowdiff`` chooses which rows
they read (the fast or the full path) and states what they compute.
"""

from __future__ import annotations

from collections.abc import Callable, Collection, Sequence
from typing import Any

from vfs.quoting import quote_name
from vfs.tables.engine import Engine, MapKeyTwice, NotTabular, Table, byte_cut, ident, plain_value
from vfs.tables.result import KeyNotUnique, RowChange, RowDiff, shown, shown_binary

# The engine's number types: a column that is one of them on each side is compared as
# numbers even when they differ (BIGINT in one version, DOUBLE in the next).
_INTEGERS = {
    "TINYINT", "SMALLINT", "INTEGER", "BIGINT", "HUGEINT", "UTINYINT", "USMALLINT",
    "UINTEGER", "UBIGINT", "UHUGEINT",
}  # fmt: skip


def _number(kind: str) -> bool:
    return kind in _INTEGERS or kind in ("FLOAT", "DOUBLE") or kind.startswith("DECIMAL")


def _retyped(ot: Table, nt: Table, name: str, text: bool) -> str | None:
    """The type column ``name`` is compared as when the two sides read it as different
    types, else None: two number types as numbers (an integer column that gained a
    ``2.5`` holds the same numbers in its other rows: ``2`` and ``2.0`` are equal, as
    ``1.0`` and ``1.00`` are), at the precision of the less precise side (a FLOAT
    column written again as DOUBLE holds the same ``0.1``: FLOAT, else DOUBLE); two
    integer types as their text, which is exact (64-bit ids past 2**53 are not one
    DOUBLE); a DATE and a TIMESTAMP as timestamps (a day is its midnight); any others
    (:func:`as_text`) as the JSON values they are in Parquet, whose values carry their
    types (``JSON_VALUE``: the number ``2`` that became the text ``"2"`` is a change),
    and as text elsewhere. (``vfs.tables.rowdiff`` reads such a column of a CSV or
    JSON Lines file as the text or the JSON the file holds on both sides, so that it
    reaches here with one type.)"""
    if text:
        return None
    a, b = ot.types()[name], nt.types()[name]
    if a == b:
        return None
    if a in _INTEGERS and b in _INTEGERS:
        return "VARCHAR"
    if _number(a) and _number(b):
        return "FLOAT" if "FLOAT" in (a, b) else "DOUBLE"
    if {a, b} == {"DATE", "TIMESTAMP"}:  # a date column that gained a time: same days
        return "TIMESTAMP"
    return JSON_VALUE if ot.fmt == "parquet" else "VARCHAR"


def as_text(a: str, b: str) -> bool:
    """Whether a column read as type ``a`` on one side and ``b`` on the other is
    compared as text (CSV, TSV; JSON values in JSON Lines and Parquet): unless both are
    number types, or one a DATE and the other a TIMESTAMP (:func:`_retyped`)."""
    return a != b and not (_number(a) and _number(b)) and {a, b} != {"DATE", "TIMESTAMP"}


# What _retyped names to compare values as their JSON text (``to_json``): a text is
# quoted there, a number is not.
JSON_VALUE = "JSON_VALUE"


def _expr(alias: str, col: str, cast: str | None, kind: str) -> str:
    """Column ``col`` (of ``alias``) as compared: as the type ``cast`` (``_retyped``), or
    as it is (None); ``kind``: its type on the side it is read from. A BLOB compared as
    JSON is the JSON of its text where its bytes are UTF-8, else ``blob:`` and their
    hex digits, which no JSON is: to_json makes one text of the byte 0xff and of the
    four characters ``\\xFF``, and of the bytes ``ok`` and the text ``ok``."""
    e = f"{alias}.{col}" if alias else col
    if cast == JSON_VALUE and kind == "BLOB":
        return f"coalesce(CAST(to_json(try(decode({e}))) AS VARCHAR), 'blob:' || hex({e}))"
    if cast == JSON_VALUE:
        return f"CAST(to_json({e}) AS VARCHAR)"
    return f"CAST({e} AS {cast})" if cast else e


def _key_col(ot: Table, nt: Table, name: str, text: bool, side: Table) -> str:
    """Key column ``name`` as compared, read from ``side`` (``ot`` or ``nt``)."""
    return _expr("", ident(name), _retyped(ot, nt, name, text), side.types()[name])


def key_totals(
    engine: Engine, out: RowDiff, ot: Table, nt: Table, key: Sequence[str],
    sources: list[tuple[str, int, int, Sequence[str]]],
    bounds: list[tuple[int, int] | None] | None = None, text: bool = False,
) -> tuple[int, int]:  # fmt: skip
    """Rows on each side, after checking that the key names one row on each.

    ``bounds``, when given, gets the least and greatest value of the key's first
    column on each side (old, new; None for a side without rows) from the same pass:
    for an integer column only (``vfs.tables.checks.bounded``).

    ``sources``: (relation, weight on the old side, weight on the new, columns whose
    every value is converted on the way): each row counts that many times towards
    its key's rows on each side. The fast path gives (old file, 1, 1), (CA, 0, -1),
    (CB, 0, 1): the new side is S + CB = old - CA + CB; the full path (old file, 1,
    0), (new file, 0, 1). A source counted on the new side alone (0, 1) holds rows of
    the new file, read with its types, any other rows of the old file (``_expr``: a
    retyped key is compared as each side's own type gives it). The weights are added up
    as counts: sum() keeps 128-bit states, and the benchmark's key check peaked
    50 MiB higher with it. Each weight is a column that is true where a row has it
    and NULL elsewhere, counted with ``count(column)``, and the bounds are the least
    and greatest of a CASE: a FILTER clause on each aggregate cost 15-20% more CPU
    on the benchmark's 2M-row key check (0.85-1.01 CPU-s instead of 0.78-0.96, six
    runs each, interleaved, load 6.7).
    """
    sql = key_totals_query(ot, nt, key, sources, bounds is not None, text)
    blobs = {
        k for k in key
        if _retyped(ot, nt, k, text) == JSON_VALUE and "BLOB" in (ot.types()[k], nt.types()[k])
    }  # fmt: skip
    return key_totals_answer(out, key, engine.run(sql)[0], bounds, blobs)


def key_totals_query(
    ot: Table, nt: Table, key: Sequence[str], sources: list[tuple[str, int, int, Sequence[str]]],
    bounded: bool, text: bool = False,
) -> str:  # fmt: skip
    """The query of ``key_totals`` (``bounded``: with the key's bounds), whose one row
    ``key_totals_answer`` reads: for a caller that runs it beside another query."""
    parts = []
    for rel, wa, wb, convert in sources:
        assert wa in (0, 1) and wb in (-1, 0, 1)
        side = nt if (wa, wb) == (0, 1) else ot  # (key_totals: which file's rows)
        keys = ", ".join(f"{_key_col(ot, nt, k, text, side)} AS k{i}" for i, k in enumerate(key))
        where = ""
        if convert:
            where = f" WHERE hash({', '.join(map(ident, convert))}) IS NOT NULL"
        weights = ", ".join(
            f"{'true' if on else 'NULL::BOOLEAN'} AS {name}"
            for name, on in (("__a", wa == 1), ("__p", wb == 1), ("__m", wb == -1))
        )
        parts.append(f"SELECT {weights}, {keys} FROM {rel}{where}")
    ks = ", ".join(f"k{i}" for i in range(len(key)))
    example = ", ".join(f"k{i} := k{i}" for i in range(len(key)))
    return (
        f"WITH g AS (SELECT {ks}, count(__a) AS na, count(__p) - count(__m) AS nb "
        f"FROM ({' UNION ALL '.join(parts)}) GROUP BY ALL) "
        "SELECT coalesce(sum(na), 0), coalesce(sum(nb), 0), "
        f"first(struct_pack({example}, na := na, nb := nb)) FILTER (WHERE na > 1 OR nb > 1)"
        + (
            ", min(CASE WHEN na > 0 THEN k0 END), max(CASE WHEN na > 0 THEN k0 END), "
            "min(CASE WHEN nb > 0 THEN k0 END), max(CASE WHEN nb > 0 THEN k0 END)"
            if bounded
            else ""
        )
        + " FROM g"
    )


# Of ``shared_totals_query``: a key of integers over many rows is grouped in a perfect
# hash table (one slot per value between its least and greatest), which DuckDB uses
# only for columns whose bounds it knows: a table's, not a file's as it is read.
PERFECT_ROWS = 1 << 16  # the least rows worth writing the keys to a table for it
PERFECT_BITS = 22  # the most slots (2**22, 8 bytes each) it may take
KEYS_TABLE = "__keys"  # the old file's keys (temporary: the cursor's own)
BITMAP_ROWS = 1 << 19  # the least rows whose keys ``shared_totals`` checks by a bitmap


def perfect_bits(
    ot: Table, nt: Table, key: Sequence[str], rows: int | None, text: bool = False
) -> int | None:
    """The bits of the perfect hash table ``shared_totals_query`` may group a key of
    integers in, over about ``rows`` rows, or None to leave DuckDB's own threshold: a
    key of another type, few rows or too many (``PERFECT_ROWS``, ``PERFECT_BITS``).
    At most 2 x ``rows`` slots: a dense key fits (ids from 0 or 1 up, with gaps),
    a sparse one (random ids) takes a hash table as before."""
    if rows is None or rows < PERFECT_ROWS:
        return None
    for k in key:
        cast = _retyped(ot, nt, k, text)
        kind = "VARCHAR" if text else (cast or ot.types()[k])
        if kind not in _INTEGERS - {"HUGEINT", "UHUGEINT"}:
            return None
    bits = (2 * rows).bit_length()
    return max(12, bits) if bits <= PERFECT_BITS else None


def shared_totals_query(
    ot: Table, nt: Table, key: Sequence[str], old: tuple[str, Sequence[str]], ca: str,
    cb: str, bounded: bool, text: bool = False, rows: int | None = None,
) -> str:  # fmt: skip
    """``key_totals`` for the fast paths' sources (the old file, CA, CB: the new side
    is old - CA + CB, and CA's rows are rows of the old file), in less work: the
    old file's keys are counted alone, with one count a key, and the new side's
    follow from them. Where the old file's keys are unique, so are CA's, each a key
    of the old file; a key then names several rows of the new side exactly when it
    names several of CB, or one of CB and one of the old file that CA has not. On
    the benchmark's 2M rows (DuckDB alone, medians of 5): 0.57 CPU-s instead of 0.80
    with the perfect hash table (``perfect_bits``), which the keys written to a
    table allow, and which one count a key keeps at 32 MiB for them.

    ``old``: the old file's relation and the columns whose every value is converted
    on the way. ``rows``: about how many rows it has (None: unknown). Its one row
    (``shared_totals_answer``) holds no example of a repeated key: where it finds
    one, ``key_totals`` names it. A script of statements whose last one answers,
    which leaves a table and a setting on the connection: for a cursor of its own
    (``Engine.run_beside``). ``shared_totals`` runs it in less work where the key
    is one column of integers."""
    return _keys_script(ot, nt, key, old, text, rows) + _shared_query(
        ot, nt, key, ca, cb, bounded, text
    )


def _keys_script(
    ot: Table, nt: Table, key: Sequence[str], old: tuple[str, Sequence[str]], text: bool,
    rows: int | None,
) -> str:  # fmt: skip
    """The statements of ``shared_totals_query`` that write the old file's keys to
    ``KEYS_TABLE`` (each ending with ``; ``)."""
    rel, convert = old
    where = f" WHERE hash({', '.join(map(ident, convert))}) IS NOT NULL" if convert else ""
    bits = perfect_bits(ot, nt, key, rows, text)
    setting = f"SET perfect_ht_threshold = {bits}; " if bits is not None else ""
    return (
        f"{setting}CREATE OR REPLACE TEMP TABLE {KEYS_TABLE} AS "
        f"SELECT {', '.join(_key_cols(ot, nt, key, text, ot))} FROM {rel}{where}; "
    )


def _key_cols(ot: Table, nt: Table, key: Sequence[str], text: bool, side: Table) -> list[str]:
    return [f"{_key_col(ot, nt, k, text, side)} AS k{i}" for i, k in enumerate(key)]


def _on(key: Sequence[str], a: str, b: str) -> str:
    return " AND ".join(f"{a}.k{i} IS NOT DISTINCT FROM {b}.k{i}" for i in range(len(key)))


def _with(ot: Table, nt: Table, key: Sequence[str], ca: str, cb: str, text: bool) -> str:
    old, new = (", ".join(_key_cols(ot, nt, key, text, t)) for t in (ot, nt))
    return (
        f"WITH ca AS (SELECT {old} FROM {ca}), cb AS (SELECT {new} FROM {cb}), "
        f"s AS (SELECT * FROM {KEYS_TABLE} __o ANTI JOIN ca ON {_on(key, '__o', 'ca')}) "
    )


def _shared_query(
    ot: Table, nt: Table, key: Sequence[str], ca: str, cb: str, bounded: bool, text: bool
) -> str:
    """The last statement of ``shared_totals_query``, over ``KEYS_TABLE``."""
    ks = ", ".join(f"k{i}" for i in range(len(key)))
    bounds = ""
    if bounded:  # (each pair from one pass)
        bounds = (
            f", (SELECT min(k0), max(k0) FROM {KEYS_TABLE}), "
            "(SELECT min(k0), max(k0) FROM (SELECT k0 FROM s UNION ALL SELECT k0 FROM cb))"
        )
    return (
        f"{_with(ot, nt, key, ca, cb, text)}"
        f"SELECT * FROM (SELECT (SELECT count(*) FROM {KEYS_TABLE}), (SELECT count(*) FROM ca), "
        "(SELECT count(*) FROM cb), "
        f"(SELECT max(n) FROM (SELECT count(*) AS n FROM {KEYS_TABLE} GROUP BY {ks})), "
        f"(SELECT max(n) FROM (SELECT count(*) AS n FROM cb GROUP BY {ks})), "
        f"(SELECT count(*) FROM cb JOIN {KEYS_TABLE} __o ON {_on(key, 'cb', '__o')}), "
        f"(SELECT count(*) FROM cb JOIN ca ON {_on(key, 'cb', 'ca')})){bounds}"
    )


def shared_totals(
    run: Callable[[str], list[tuple[Any, ...]]], ot: Table, nt: Table, key: Sequence[str],
    old: tuple[str, Sequence[str]], ca: str, cb: str, bounded: bool, text: bool = False,
    rows: int | None = None,
) -> tuple[Any, ...]:  # fmt: skip
    """The row ``shared_totals_query`` gives (its arguments are this one's), each
    query through ``run`` (one cursor: ``Engine.call_beside``).

    A key of one integer column whose values span at most ``2**perfect_bits`` is
    checked for repeats with a bitmap of its values (``bitstring_agg``: each value
    sets one bit, so the keys are unique when as many bits are set as there are
    keys, and at most one is NULL) instead of grouping them, and the new side's
    bounds are the old file's widened by CB's keys where CA holds neither of the
    old file's extreme keys (both then are keys of S, so S reaches them), instead
    of the anti-join of every old key with CA's. On the benchmark's 2M rows, DuckDB
    alone: the keys' queries after their read 0.06 CPU-s instead of 0.16 (grouping
    2M keys in a perfect hash table: 0.09 of it, the bitmap 0.02). Over fewer than
    ``BITMAP_ROWS`` rows, the one query of ``shared_totals_query``: the bitmap's
    bounds take a query of their own, which costs more than grouping the keys
    saves (the benchmark's 200,000-row cut: 0.01 CPU-s more)."""
    bits = perfect_bits(ot, nt, key, rows, text)
    if bits is None or len(key) != 1 or rows is None or rows < BITMAP_ROWS:
        return run(shared_totals_query(ot, nt, key, old, ca, cb, bounded, text, rows))[0]
    lo, hi, n_old, n_keys = run(
        _keys_script(ot, nt, key, old, text, rows)
        + f"SELECT min(k0), max(k0), count(*), count(k0) FROM {KEYS_TABLE}"
    )[0]
    if not n_keys or int(hi) - int(lo) >= 1 << bits:  # no key, or too sparse a one
        return run(_shared_query(ot, nt, key, ca, cb, bounded, text))[0]
    kind = _retyped(ot, nt, key[0], text) or ot.types()[key[0]]
    low, high = (f"CAST({int(v)} AS {kind})" for v in (lo, hi))
    row = run(
        f"{_with(ot, nt, key, ca, cb, text)}"
        "SELECT (SELECT count(*) FROM ca), (SELECT count(*) FROM cb), "
        f"(SELECT bit_count(bitstring_agg(k0, {low}, {high})) FROM {KEYS_TABLE}), "
        "(SELECT max(n) FROM (SELECT count(*) AS n FROM cb GROUP BY k0)), "
        f"(SELECT count(*) FROM cb JOIN {KEYS_TABLE} __o ON {_on(key, 'cb', '__o')}), "
        f"(SELECT count(*) FROM cb JOIN ca ON {_on(key, 'cb', 'ca')}), "
        f"(SELECT count(*) FROM ca WHERE k0 IN ({low}, {high})), "
        "(SELECT min(k0) FROM cb), (SELECT max(k0) FROM cb)"
    )[0]
    n_ca, n_cb, distinct, most_cb, cb_old, cb_ca, ends_in_ca, lo_cb, hi_cb = row
    most_old = 1 if distinct == n_keys and n_old - n_keys <= 1 else 2
    got: tuple[Any, ...] = (n_old, n_ca, n_cb, most_old, most_cb, cb_old, cb_ca)
    if not bounded:
        return got
    if ends_in_ca:  # S's bounds may lie inside the old file's: read them
        lo_new, hi_new = run(
            f"{_with(ot, nt, key, ca, cb, text)}"
            "SELECT min(k0), max(k0) FROM (SELECT k0 FROM s UNION ALL SELECT k0 FROM cb)"
        )[0]
    else:
        lo_new = lo if lo_cb is None else min(lo, lo_cb)
        hi_new = hi if hi_cb is None else max(hi, hi_cb)
    return (*got, lo, hi, lo_new, hi_new)


def shared_totals_answer(
    row: tuple[Any, ...], bounds: list[tuple[int, int] | None] | None = None
) -> tuple[int, int] | None:
    """Rows on each side from the one row ``shared_totals_query`` gave, and the key's
    bounds into ``bounds`` if given; None if a key names several rows of a side
    (``key_totals`` then names one)."""
    n_old, n_ca, n_cb, most_old, most_cb, cb_old, cb_ca = row[:7]
    if (most_old or 0) > 1 or (most_cb or 0) > 1 or cb_old != cb_ca:
        return None
    if bounds is not None:
        lo_a, hi_a, lo_b, hi_b = row[7:]
        bounds[:] = [
            None if lo is None or hi is None else (int(lo), int(hi))
            for lo, hi in ((lo_a, hi_a), (lo_b, hi_b))
        ]
    return int(n_old), int(n_old) - int(n_ca) + int(n_cb)


def key_totals_answer(
    out: RowDiff, key: Sequence[str], row: tuple[Any, ...],
    bounds: list[tuple[int, int] | None] | None = None, blobs: Collection[str] = (),
) -> tuple[int, int]:  # fmt: skip
    """``key_totals``'s answer from the row its query gave; ``blobs``: the key's columns
    compared as JSON that a side reads as BLOB, whose ``blob:`` values (``_expr``) are
    shown as the bytes they are."""
    total_a, total_b, dup = row[:3]
    if bounds is not None:
        lo_a, hi_a, lo_b, hi_b = row[3:]
        bounds[:] = [
            None if lo is None or hi is None else (int(lo), int(hi))
            for lo, hi in ((lo_a, hi_a), (lo_b, hi_b))
        ]
    if dup is not None:
        values = [dup[f"k{i}"] for i in range(len(key))]
        values = [
            bytes.fromhex(v[5:]) if k in blobs and str(v).startswith("blob:") else v
            for k, v in zip(key, values, strict=True)
        ]
        named = ", ".join(f"{shown(k)}={_show(v)}" for k, v in zip(key, values, strict=True))
        label = out.old_label if dup["na"] > 1 else out.new_label
        n = dup["na"] if dup["na"] > 1 else dup["nb"]
        raise KeyNotUnique(tuple(key), f"{quote_name(out.path)} in {label}", named, n)
    return int(total_a), int(total_b)


class Miscounted(NotTabular):
    """The engine read another number of rows than the lines counted (``_check_rows``)."""


def _check_rows(counted: tuple[int | None, int | None], read: tuple[int, int]) -> None:
    """Miscounted if the engine read another number of rows than the lines counted.

    A count from newlines is exact where it is made (``Side.rows``), so a difference
    means the engine misread the file (it has dropped lines before): better a
    byte-level summary than a diff that leaves rows out.
    """
    for side, n, m in zip(("old", "new"), counted, read, strict=True):
        if n is not None and n != m:
            raise Miscounted(f"the engine read {m:,} rows of the {side} file, which has {n:,}")


_EXAMPLE_CHARS = 80  # of a key's value in an error: the first, then "..."


def _show(v: Any) -> str:
    """A key's value in an error: quoted, and cut short (a key may be a long text)."""
    if v is None:
        return "NULL"
    text = str(plain_value(v))
    binary = isinstance(v, (bytes, bytearray, memoryview))
    show = shown_binary if binary else shown
    if len(text) > _EXAMPLE_CHARS:
        at = byte_cut(text, _EXAMPLE_CHARS) if binary else _EXAMPLE_CHARS  # (escapes whole)
        return f"{show(text[:at])}... ({len(text):,} characters)"
    return show(text)


def _fetched(
    engine: Engine, out: RowDiff, sql: str, probes: Sequence[tuple[str, str, str, str]]
) -> list[tuple[Any, ...]]:
    """The rows ``sql`` gives to be shown. Where a map among them names a key twice,
    which the engine gives as no value (``MapKeyTwice``), the error names the side and
    the column: each of ``probes`` (a column of ``sql``'s rows, a condition on them,
    the column's name in the file, the side's label) is given alone until one fails."""
    try:
        return engine.run(sql)
    except MapKeyTwice:
        for col, where, name, label in probes:
            try:
                engine.run(f"SELECT {col} FROM ({sql}) WHERE {where}")
            except MapKeyTwice:
                raise MapKeyTwice(
                    f"{quote_name(out.path)} in {label} holds a map naming a key twice "
                    f"(column {shown(name)}): write each key of a map once to compare rows"
                ) from None
        raise


def _maps(table: Table) -> list[tuple[int, str]]:
    """The columns of ``table`` holding maps (in a struct or a list too): index, name."""
    return [(i, n) for i, (n, kind) in enumerate(table.columns) if "MAP(" in kind]


def keyed(
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
            _expr("o" if alias else "", f"o{oi[n]}", cast, ot.types()[n]),
            _expr("n" if alias else "", f"n{ni[n]}", cast, nt.types()[n]),
        )

    on = " AND ".join(f"{a} IS NOT DISTINCT FROM {b}" for a, b in map(pair, key))
    values = [n for n in common if n not in key]
    differ = " OR ".join(f"{a} IS DISTINCT FROM {b}" for a, b in map(pair, values)) or "false"
    cols = [f"o{i}" for i in range(len(ot.names))] + [f"n{i}" for i in range(len(nt.names))]
    status = (
        "CASE WHEN o.__o IS NULL THEN 'added' WHEN n.__n IS NULL THEN 'removed' "
        f"WHEN {differ} THEN 'changed' ELSE 'same' END"
    )
    # Identical pairs fold into one ``same`` row: its values are one NULL, a struct of
    # the pair, so that the status is tested once a row. Tested once per column, the
    # engine's optimizer copied the status (a term per column) into each test and
    # then searched the copies for common parts: 9.4 s for 3 rows of 250 columns.
    packed = ", ".join(f"{c} := {c}" for c in cols)
    engine.run(
        "CREATE OR REPLACE TEMP TABLE d AS SELECT __st, "
        f"{', '.join(f'__r.{c} AS {c}' for c in cols)}, count(*) AS __k "
        f"FROM (SELECT __st, CASE WHEN __st = 'same' THEN NULL ELSE struct_pack({packed}) "
        f"END AS __r FROM (SELECT {status} AS __st, o.* EXCLUDE (__o), n.* EXCLUDE (__n) "
        f"FROM (SELECT true AS __o, {oproj} FROM {a_rel}) o "
        f"FULL OUTER JOIN (SELECT true AS __n, {nproj} FROM {b_rel}) n ON {on})) "
        "GROUP BY __st, __r"
    )
    alone = ", ".join(
        f"coalesce({a}, {b})" for a, b in (pair(k, alias=False) for k in key)
    )  # the key of a row that one side alone has
    kinds = ("same", "changed", "added", "removed")
    row = engine.run(  # one query: each costs a few ms on a small file
        "SELECT "
        + "".join(f"coalesce(sum(__k) FILTER (WHERE __st = '{k}'), 0), " for k in kinds)
        + "max(__k) FILTER (WHERE __st <> 'same'), "
        f"(SELECT count(*) FROM (SELECT __st, {alone} FROM d WHERE __st IN ('added', 'removed') "
        "GROUP BY ALL HAVING sum(__k) > 1)) FROM d"
    )[0]
    same, changed, added, removed = (int(v) for v in row[:4])
    many, repeated = row[4], row[5]
    seen = (same + changed + removed, same + changed + added)
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
    m, w = len(ot.names), len(cols)
    # which columns of a changed row differ, as the engine found the row changed
    flags = "".join(
        f", __st = 'changed' AND {a} IS DISTINCT FROM {b}"
        for a, b in (pair(n, alias=False) for n in values)
    )
    probes = [(f"o{i}", "true", n, out.old_label) for i, n in _maps(ot)]
    probes += [(f"n{i}", "true", n, out.new_label) for i, n in _maps(nt)]
    for r in _fetched(
        engine, out,
        f"SELECT __st, {', '.join(cols)}{flags} FROM d ORDER BY {order}, __st LIMIT {int(limit)}",
        probes,
    ):  # fmt: skip
        st, ov, nv = r[0], r[1 : 1 + m], r[1 + m : 1 + w]
        kv = {k: (nv[ni[k]] if st == "added" else ov[oi[k]]) for k in key}
        if st == "added":
            out.rows.append(RowChange(st, kv, dict(zip(nt.names, nv, strict=True))))
        elif st == "removed":
            out.rows.append(RowChange(st, kv, dict(zip(ot.names, ov, strict=True))))
        else:
            flagged = zip(values, r[1 + w :], strict=True)
            ch = {n: (ov[oi[n]], nv[ni[n]]) for n, flag in flagged if flag}
            out.rows.append(RowChange(st, kv, changes=ch))


def unkeyed(
    engine: Engine, out: RowDiff, ot: Table, nt: Table, a_rel: str, b_rel: str,
    limit: int, text: bool, shared: int, counted: tuple[int | None, int | None] = (None, None),
) -> None:  # fmt: skip
    nt_names = set(nt.names)
    common = [n for n in ot.names if n in nt_names]
    if not common:
        out.removed = shared + engine.count(a_rel)
        out.added = shared + engine.count(b_rel)
        for status, rel, names in (("removed", a_rel, ot.names), ("added", b_rel, nt.names)):
            left = limit - len(out.rows)  # each side's rows, with its own columns
            if left <= 0 or not names:
                continue
            cols = ", ".join(map(ident, names))
            table, label = (ot, out.old_label) if status == "removed" else (nt, out.new_label)
            probes = [(ident(n), "true", n, label) for _, n in _maps(table)]
            sql = f"SELECT {cols} FROM {rel} ORDER BY ALL LIMIT {int(left)}"
            for r in _fetched(engine, out, sql, probes):
                out.rows.append(RowChange(status, values=dict(zip(names, r, strict=True))))
        out.notes.append("the two sides have no column in common: every row differs")
        return

    # A column the two sides read as different types is compared as one type
    # (_retyped), but each row is shown as its own side reads it: a removed row of an
    # integer column that gained a 4.5 shows 4, as its file says and as the keyed diff
    # shows it, not the 4.0 it was compared as.
    casts = [_retyped(ot, nt, n, text) for n in common]
    moved = [i for i, cast in enumerate(casts) if cast is not None]

    def sel(side: int) -> str:
        types = (ot if side == 0 else nt).types()
        own = [
            f"{ident(common[i]) if s == side else 'NULL'} AS {'on'[s]}{i}"
            for i in moved
            for s in (0, 1)
        ]
        return ", ".join(
            [f"{_expr('', ident(n), casts[i], types[n])} AS c{i}" for i, n in enumerate(common)]
            + own
        )

    cs = ", ".join(f"c{i}" for i in range(len(common)))
    shown = "".join(f", any_value({x}{i}) AS {x}{i}" for i in moved for x in "on")
    engine.run(
        "CREATE OR REPLACE TEMP TABLE d AS SELECT * FROM ("
        f"SELECT {cs}{shown}, count(*) FILTER (WHERE __s = 0) AS __na, "
        "count(*) FILTER (WHERE __s = 1) AS __nb FROM ("
        f"SELECT 0 AS __s, {sel(0)} FROM {a_rel} UNION ALL "
        f"SELECT 1 AS __s, {sel(1)} FROM {b_rel}) GROUP BY {cs}) WHERE __na <> __nb"
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
    probes = []  # (_fetched) a removed row's values are the old side's, an added one's new
    sides = ((ot, "o", out.old_label, ">"), (nt, "n", out.new_label, "<"))
    for i, n in enumerate(common):
        for table, x, label, more in sides:
            if "MAP(" not in table.types()[n]:
                continue
            if casts[i] is None:  # compared as it is: c_i, a removed or an added row's
                probes.append((f"c{i}", f"__na {more} __nb", n, label))
            else:  # compared as another type: the side's own value is o_i or n_i
                probes.append((f"{x}{i}", "true", n, label))
    sql = f"SELECT * FROM d ORDER BY {cs}, __na, __nb LIMIT {int(limit)}"
    for r in _fetched(engine, out, sql, probes):
        vals, na, nb = list(r[: len(common)]), int(r[-2]), int(r[-1])
        st = "removed" if na > nb else "added"
        for j, i in enumerate(moved):  # each side's own value (above)
            vals[i] = r[len(common) + 2 * j + (st == "added")]
        out.rows.append(
            RowChange(st, values=dict(zip(common, vals, strict=True)), count=abs(na - nb))
        )
