"""The query engine of row diffs: DuckDB, reading the sides' copies and comparing them.

Why DuckDB (measured on the benchmark's 2M-row CSVs, ``benchmarks/bench_rowdiff.py``):
its CSV reader detects the dialect, the header and the column types, reads in
parallel and converts only the columns a query uses; its joins and aggregations
spill to disk past a memory limit, so a diff of files larger than memory works; JSON
Lines and Parquet readers are built in. On two 111 MB CSVs (1% changed), under the
same load, DuckDB read and joined them in 1.65 s at a 464 MiB peak; PyArrow took
8.8 s to read them and 2.6 s to join, at 922 MiB, holds both tables in memory for
its join and cannot detect a delimiter.

Every file is read with parameters fixed here (``Table``): the dialect, header and
types that ``sniff_csv`` found in the file's first ``SNIFF_BYTES``, or for JSON Lines
the columns DuckDB finds reading the whole file (a DOUBLE one holding an integer past
2**53 read as JSON: ``Engine._exact``), or Parquet's own schema. The same
parameters read a whole file or a part of it (the fast path's shared and changed
rows), so both paths parse every row the same way. A CSV value that does not fit
its column's detected type raises ``TypeMismatch``, and the diff is made again with
every column read as text.

Comparisons (``vfs.tables.rowdiff`` states them for users):

- keyed: the key must name one row on each side; the two sides are joined on it
  (``IS NOT DISTINCT FROM``: a NULL key is a key like any other) and a pair is
  changed when a common column differs (``IS DISTINCT FROM``; a column whose type
  changed is compared as DOUBLE between two number types, else as text).
- unkeyed: rows are counted per distinct row of the common columns on each side;
  a row counted more times on one side is removed or added that many times.

The differing rows go to a temporary table (DuckDB spills it too), from which counts
and the first rows in key order are read: rows beyond ``--limit`` are never fetched.

Names from files go into SQL only through :func:`ident` and :func:`literal`.

Start-up costs count on small files: the engine is DuckDB's compiled module
(``_duckdb``) alone, not the ``duckdb`` package, whose Python layer (relational API,
expression builder, version lookup through package metadata) this module never uses
and which costs 0.3 s of CPU to import; the connection is opened on a thread of
its own while the caller looks the versions up (``warm``, for the CLI) or copies
the sides out of the store; the CSV sides are sniffed at the same time (two
cursors), a sample shared by both sides sniffed once, each as soon as its sample is
written (``sniff_early``), while the other side is still being made; and a query
that would leave a core idle runs beside another on a cursor of its own
(``run_beside``).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import json
import os
import re
import sys
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol, TypeVar

import _duckdb as duckdb  # the engine without the package's Python layer (above)

from vfs.errors import DvfsError
from vfs.tables.formats import LOOK, MAX_COLUMNS, MAX_LINE, Format, columns_in, refusal

SNIFF_BYTES = 4 * 1024 * 1024  # the prefix a CSV's dialect and types are detected on
SNIFF_ROWS = 20480
MAX_PART = 300  # characters kept of each line of an engine's error
LINE_BATCH = 8192  # rows fetched at a time by write_lines, and at most
LINE_BATCH_BYTES = 16 * 1024 * 1024  # this many bytes of them (by the longest line)
SCAN_PARTS = 8  # pieces a CSV whose lines are its rows is read in (scan_options)
SCAN_BUFFER = (1 << 20, 7 << 20)  # the least and the most bytes of one piece
SCAN_LINE = 64 * 1024  # the least max_line_size given with pieces
UNQUOTED = ", quote='', escape=''"  # sniff_csv's options for a sample without quotes
MEMORY_LIMIT = "2GB"  # DuckDB's own; past it, joins and aggregations spill to disk
# What the engine may spill to disk (DuckDB's own bound is 90% of the free space): at
# least SPILL_FLOOR, else SPILL_RATIO times the bytes of the files compared
# (Engine.bound_spill). A Parquet file of 450 KiB holding one 100 KB text 200,000
# times spilled 21 GB in four minutes, and on until the disk was nearly full.
SPILL_FLOOR = 4 << 30
SPILL_RATIO = 64

T = TypeVar("T")
_LINGERING: list[Any] = []  # connections left open to the process's end (Engine.close)


class Sniffs(Protocol):
    """What ``sniff_csv`` answered for files sniffed before, by what identifies their
    first ``SNIFF_BYTES`` (``vfs.tables.checks``)."""

    def get(self, fmt: Format, key: bytes) -> tuple[Any, ...] | None: ...

    def put(self, fmt: Format, key: bytes, row: tuple[Any, ...]) -> None: ...


class NotTabular(Exception):
    """The engine could not read a file as its format; the message says why."""


class PiecesRefused(NotTabular):
    """DuckDB would not read a file in the pieces ``scan_options`` asked for, or found
    a line longer than the limit it set."""


class TypeMismatch(Exception):
    """A CSV value does not fit the type detected for its column; ``file``: the file
    the engine read it in, where its message names one."""

    def __init__(self, message: str, file: str | None = None) -> None:
        super().__init__(message)
        self.file = file


class MapKeyTwice(NotTabular):
    """A map value to be given names a key twice: the engine's Python values hold no
    such map (a Parquet file may, as DuckDB reads it). Where it is raised, the side
    and the column are not known (``vfs.tables.compare`` names them)."""


class EngineError(DvfsError):
    """The engine failed for another reason (memory, disk); the message says which."""


def _config(threads: int | None) -> dict[str, Any]:
    """The engine's options but its scratch directory (``Engine``).

    No asynchronous I/O threads (``async_threads``, 8 by default in DuckDB 2.0): the
    files read are local copies, mostly in the page cache, and those threads spun on
    a lock waiting for the workers (``Executor::RescheduleTask``) where they had
    nothing to read ahead. The worker threads read the files themselves; on the
    benchmark's 200,000-row cut, 0.027 CPU-s less (0.397 against 0.424, 30
    interleaved pairs), the answer the same byte for byte."""
    return {
        "memory_limit": MEMORY_LIMIT,
        "max_temp_directory_size": f"{SPILL_FLOOR}B",
        "threads": threads or os.cpu_count() or 1,
        "preserve_insertion_order": False,
        "autoinstall_known_extensions": False,
        "autoload_known_extensions": False,
        "async_threads": 0,
    }


def _open(config: dict[str, Any]) -> duckdb.DuckDBPyConnection:
    con = duckdb.connect(":memory:", config=config)
    con.execute("SET enable_progress_bar = false")  # it would print over ours
    return con


_Warm = tuple[int, "Future[duckdb.DuckDBPyConnection]"]  # threads, the connection
_WARM: list[_Warm] = []  # a connection being opened for the next Engine (warm)


def warm(threads: int | None = None) -> None:
    """Start opening, on a thread of its own, the connection that the next ``Engine``
    made in this process with as many ``threads`` takes, while the caller goes on:
    for a process that makes one diff (the CLI), so that the 0.03 s of CPU opening
    it takes overlaps the caller's look-ups rather than delaying the first sniff.
    Its failure is raised by the engine's first query, as a connection's the
    engine opens itself."""
    if _WARM:
        return
    config = _config(threads)
    pool = ThreadPoolExecutor(1, thread_name_prefix="engine-warm")
    _WARM.append((config["threads"], pool.submit(_open, config)))
    pool.shutdown(wait=False)


def ident(name: str) -> str:
    """``name`` as a quoted SQL identifier."""
    return '"' + name.replace('"', '""') + '"'


def literal(text: str) -> str:
    """``text`` as a SQL string literal."""
    return "'" + text.replace("'", "''") + "'"


Lines = tuple[int, int]  # a file's size and the bytes of its longest line (Table.relation)


def scan_options(
    options: Sequence[tuple[str, str]], size: int, longest: int
) -> tuple[tuple[str, str], ...]:
    """``options`` of ``read_csv`` for a file of ``size`` bytes whose every line is one
    row of at most ``longest`` bytes (its newline left out): the reader's buffer cut
    to ``SCAN_PARTS`` pieces of the file (``SCAN_BUFFER``), so that DuckDB's threads
    share even a file of a few MiB, which one default buffer holds whole.

    DuckDB wants its buffer larger than ``max_line_size``, which is ``MAX_LINE`` in
    every table: for such a file it is lowered to the longest line plus its newline
    (at least ``SCAN_LINE``), which accepts exactly the lines the higher limit
    accepted (no row is longer than its line). Should DuckDB refuse to read a file
    in pieces, or find a longer line than the chunk facts said (a damaged kept
    entry), ``PiecesRefused`` makes the diff run again without pieces
    (``vfs.tables.rowdiff``). On the benchmark's 200,000-row cut, the line join and
    the key check took 0.05 s of wall time each instead of 0.07-0.09 (2 cores).

    A piece is at most 7 MiB: the reader holds a few pieces a thread at once, and on
    the benchmark's 101 MiB file, 13 MiB pieces made the first diff's peak 368 MiB
    against 342 with 7 MiB ones (median of 10 pairs), at the same CPU time.
    """
    cap = max(longest + 2, SCAN_LINE)  # + "\r\n"
    if cap >= MAX_LINE:
        return tuple(options)
    lo, hi = SCAN_BUFFER
    buffer = max(min(max(size // SCAN_PARTS, lo), hi), 2 * cap)
    buffer = -(-buffer // lo) * lo  # whole MiB: DuckDB 2.0 refuses some other sizes
    kept = [(k, v) for k, v in options if k not in ("max_line_size", "buffer_size")]
    return (*kept, ("max_line_size", str(cap)), ("buffer_size", str(buffer)))


@dataclass(frozen=True)
class Table:
    """How to read one side: its format, columns (name, DuckDB type) and read options."""

    fmt: Format
    columns: tuple[tuple[str, str], ...]
    options: tuple[tuple[str, str], ...] = ()  # read_csv/read_json options as SQL
    has_header: bool = False
    quote: str = ""  # the CSV quote character ("" for none)
    plain: bool = True  # CSV: no comment lines, no rows skipped before the header
    newline: str = "\\n"  # the line ending as the reader's option spells it
    empty: bool = False  # a file of 0 bytes: no columns, no rows

    @property
    def names(self) -> list[str]:
        return [n for n, _ in self.columns]

    def types(self) -> dict[str, str]:
        return dict(self.columns)

    def first(self, n: int) -> Table:
        """This table read as its first ``n`` columns: of a CSV, the others are skipped
        rather than bound and converted, which costs per column (0.4 s of CPU a query
        for 20,000 columns). Only for a file this Table has read whole before, every
        row found as wide as the header: the reader then stops checking it
        (``strict_mode``), as it would refuse the fields past the ``n``-th."""
        if self.fmt not in ("csv", "tsv") or self.empty or n >= len(self.columns):
            return self
        options = tuple((k, "false" if k == "strict_mode" else v) for k, v in self.options)
        return dataclasses.replace(self, columns=self.columns[:n], options=options)

    def relation(self, path: Path, text: bool = False, lines: Lines | None = None) -> str:
        """SQL reading ``path`` as this table (every column as text if ``text``).

        ``lines``: the file's size and its longest line, for a CSV whose every line is
        one row (``scan_options``); None reads it with the table's options alone.
        """
        if self.empty:  # no rows, with the columns the other side gave it
            cols = ", ".join(f"NULL AS {ident(n)}" for n, _ in self.columns)
            return f"(SELECT {cols or '1'} WHERE false)"
        where = literal(str(path))
        if self.fmt == "parquet":
            return f"read_parquet({where})"
        cols = ", ".join(
            f"{literal(n)}: {literal('VARCHAR' if text else t)}" for n, t in self.columns
        )
        options = self.options
        if lines is not None and self.fmt in ("csv", "tsv"):
            options = scan_options(options, *lines)
        opts = "".join(f", {k}={v}" for k, v in options)
        if self.fmt == "jsonl":
            return f"read_json({where}, columns={{{cols}}}{opts})"
        return f"read_csv({where}, columns={{{cols}}}{opts})"


@dataclass(frozen=True)
class Field:
    """A field of a Parquet file's schema as its footer writes it (``Engine.parquet_fields``)."""

    name: str
    kind: str | None  # its converted type: "LIST", "MAP", "MAP_KEY_VALUE"..., or None
    repeated: bool
    children: tuple[Field, ...] = ()


class Engine:
    """One DuckDB connection with dvfs's limits, working in a scratch directory.

    The connection is opened on the engine's own thread (the one every query runs
    on), so that the caller goes on with its work meanwhile; a failure to open it is
    raised by the first query. Its spill directory (``scratch/spill``) is made by
    DuckDB when a query first spills, not before: removing a directory costs 2-8 ms
    on an ext4 disk mounted with ``discard`` (the benchmark's), and most diffs
    spill nothing.
    """

    def __init__(self, scratch: Path, threads: int | None = None) -> None:
        config = _config(threads)
        config["temp_directory"] = str(scratch / "spill")
        opened = _WARM.pop() if _WARM else None
        if opened is not None and opened[0] != config["threads"]:
            opened = None  # (closed by the collector)
        self.scratch = scratch
        self.spill = SPILL_FLOOR  # bytes it may spill to disk (bound_spill)
        self.pieces = True  # files whose lines are rows are read in pieces (scan_options)
        self._con: duckdb.DuckDBPyConnection | None = None
        self._thread: int | None = None  # the engine thread's ident, once it runs
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="engine")
        self._started = self._pool.submit(self._connect, config, opened)
        self._early: dict[tuple[Format, bytes], Future[tuple[Any, ...]]] = {}
        self._early_pool: ThreadPoolExecutor | None = None
        self._early_lock = threading.Lock()
        self._shut = False  # closed: nothing more is sniffed early
        self._beside: ThreadPoolExecutor | None = None  # queries run beside (run_beside)
        self._beside_cursors: list[duckdb.DuckDBPyConnection] = []

    def _connect(self, config: dict[str, Any], opened: _Warm | None) -> None:
        self._thread = threading.get_ident()
        try:
            if opened is not None:  # (warm): all but the scratch directory set
                con = opened[1].result()
                con.execute(f"SET temp_directory = {literal(config['temp_directory'])}")
            else:
                con = _open(config)
        except duckdb.Error as exc:
            raise EngineError(f"the table engine did not start: {first_line(exc)}") from None
        self._con = con

    def close(self, linger: bool = False) -> None:
        """End the engine's threads and close its connection.

        ``linger``: for a process that ends right after, without the interpreter's
        teardown (``vfs.cli.exit_now``): the connection is left open to the end
        (``_LINGERING``) rather than closed, which frees everything it made one piece
        at a time (about 0.01 s after the benchmark's 200,000-row cut)."""
        with self._early_lock:  # no sniff started early still runs on the connection
            self._shut = True
            if self._early_pool is not None:
                self._early_pool.shutdown(wait=True, cancel_futures=True)
            for cursor in self._beside_cursors:  # nor a query run beside (run_beside)
                with contextlib.suppress(Exception):
                    cursor.interrupt()
        if self._beside is not None:
            self._beside.shutdown(wait=True, cancel_futures=True)
        self._pool.shutdown(wait=True)
        if self._con is not None:
            if linger:
                _LINGERING.append(self._con)
            else:
                self._con.close()

    def bound_spill(self, size: int) -> None:
        """Let the engine spill up to SPILL_RATIO times ``size`` (the bytes of the files
        it compares) to disk, SPILL_FLOOR at least; past it a query fails (EngineError)."""
        self.spill = max(SPILL_FLOOR, SPILL_RATIO * size)
        self.run(f"SET max_temp_directory_size = '{self.spill}B'")

    def run(self, sql: str) -> list[tuple[Any, ...]]:
        """Run ``sql``; DuckDB's errors become this module's.

        The query runs on a thread of its own while this one waits, so that Ctrl-C
        (which Python delivers to this thread only between bytecodes, never while
        DuckDB computes) interrupts the query at once instead of after it.
        """
        return self._call(lambda con: con.execute(sql).fetchall())

    def run_aside(self, sql: str) -> list[tuple[Any, ...]]:
        """Run ``sql`` on a cursor of its own, on the calling thread, while the engine's
        thread may run another query (``run``): for short queries only, as Ctrl-C
        interrupts the engine thread's query, not this one."""

        def aside(con: duckdb.DuckDBPyConnection) -> list[tuple[Any, ...]]:
            cursor = con.cursor()
            try:
                return cursor.execute(sql).fetchall()
            finally:
                cursor.close()

        return self._guarded(aside)

    def run_beside(self, sql: str) -> Future[list[tuple[Any, ...]]]:
        """Start ``sql`` on a cursor of its own, on a thread of its own, while the
        engine's thread runs other queries (``run``); its answer or this module's
        error comes from the future's ``result()``. ``cancel_beside`` interrupts what
        still runs (so do ``close`` and Ctrl-C in ``result``). For a table the next
        queries read (a table of the main schema: a cursor's temporary tables are
        its own), where one query alone leaves a core idle: on the benchmark's
        200,000-row cut, the old file's key check beside the line join."""
        return self.call_beside(lambda run: run(sql))

    def call_beside(self, fn: Callable[[Callable[[str], list[tuple[Any, ...]]]], T]) -> Future[T]:
        """``run_beside`` for several queries in turn: ``fn`` runs on the thread beside,
        given a ``run`` that answers each of its queries on one cursor of its own (the
        errors this module's), and the future gives what it returns or raises: for a
        few small queries each waiting for the answer of the one before, which the
        engine's thread would otherwise run one after another with its own."""
        with self._early_lock:
            if self._beside is None:
                self._beside = ThreadPoolExecutor(1, thread_name_prefix="engine-beside")

            def beside(con: duckdb.DuckDBPyConnection) -> T:
                with self._early_lock:
                    if self._shut:
                        raise EngineError("the table engine was closed")
                    cursor = con.cursor()
                    self._beside_cursors.append(cursor)

                def run(sql: str) -> list[tuple[Any, ...]]:
                    return self._guarded(lambda _: cursor.execute(sql).fetchall())

                try:
                    return fn(run)
                finally:
                    with self._early_lock:
                        self._beside_cursors.remove(cursor)
                    cursor.close()

            return self._beside.submit(self._guarded, beside)

    def cancel_beside(self) -> None:
        """Interrupt the queries ``run_beside`` started that still run, and wait for
        their threads to end."""
        with self._early_lock:
            for cursor in self._beside_cursors:
                with contextlib.suppress(Exception):
                    cursor.interrupt()
            pool, self._beside = self._beside, None
        if pool is not None:
            pool.shutdown(wait=True, cancel_futures=True)

    def write_lines(self, sql: str, dest: Path, header: bytes, eol: bytes, longest: int) -> int:
        """Write ``header``, then the one text column of each row ``sql`` gives followed
        by ``eol``, to ``dest``: a batch of rows at a time, however many there are, each
        batch at most ``LINE_BATCH_BYTES`` of lines no longer than ``longest`` bytes.
        Returns how many lines it wrote after the header."""
        batch = max(1, min(LINE_BATCH, LINE_BATCH_BYTES // (longest + 1)))

        def write(con: duckdb.DuckDBPyConnection) -> int:
            res = con.execute(sql)
            n = 0
            with open(dest, "wb") as out:
                out.write(header)
                while rows := res.fetchmany(batch):
                    out.write(b"".join(str(r[0]).encode() + eol for r in rows))
                    n += len(rows)
            return n

        return self._call(write)

    def _call(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        if threading.get_ident() == self._thread:  # asked from a query: the one thread
            return self._guarded(fn)  # is busy running it, so waiting would never end
        job = self._pool.submit(self._guarded, fn)
        try:
            return job.result()
        except KeyboardInterrupt:
            if self._con is not None:
                self._con.interrupt()
            with contextlib.suppress(Exception):
                job.result()
            raise

    def _guarded(self, fn: Callable[[duckdb.DuckDBPyConnection], T]) -> T:
        self._started.result()  # the connection's failure, if it failed
        assert self._con is not None
        try:
            return fn(self._con)
        except duckdb.ConversionException as exc:
            raise TypeMismatch(first_line(exc, 2), _error_file(str(exc))) from None
        except duckdb.InvalidInputException as exc:
            message = first_line(_json_line(str(exc)), 3)
            if self.pieces and "Maximum line size" in message:
                # the limit scan_options set from the chunk facts (a kept entry that
                # lies about a line's length): read again without it
                raise PiecesRefused(message) from None
            if "converting column" in message or "Could not convert" in message:
                raise TypeMismatch(message) from None
            if message.endswith("Map keys must be unique."):  # (as a value is given)
                raise MapKeyTwice(
                    "a map names a key twice, which the engine does not give as a value: "
                    "write each key of a map once to compare rows"
                ) from None
            raise NotTabular(message) from None
        except duckdb.OutOfMemoryException as exc:
            if "max_temp_directory_size" in str(exc):
                raise EngineError(
                    f"the tables expand to more than {self.spill / (1 << 30):,.1f} GiB on "
                    f"disk, over {SPILL_RATIO} times the files' size (one value repeated, a "
                    "decompression bomb): they are not compared row by row"
                ) from None
            raise EngineError(
                f"the table engine ran out of memory ({first_line(exc)}); its limit is "
                f"{MEMORY_LIMIT} and it spills to disk beyond: free some disk space"
            ) from None
        except duckdb.IOException as exc:
            raise EngineError(
                f"the table engine could not read or write: {first_line(exc)}"
            ) from None
        except duckdb.NotImplementedException as exc:
            if "Parallel CSV Reader" in str(exc):
                raise PiecesRefused(first_line(exc)) from None
            raise NotTabular(first_line(exc, 3)) from None
        except duckdb.Error as exc:
            raise NotTabular(first_line(exc, 3)) from None

    # reading ---------------------------------------------------------------

    def sniff(self, fmt: Format, path: Path, size: int) -> Table:
        """The Table that reads ``path`` (a file of ``size`` bytes)."""
        if size == 0:
            return Table(fmt, (), empty=True)
        if fmt == "parquet":
            rows = self.run(f"DESCRIBE SELECT * FROM read_parquet({literal(str(path))})")
            return Table(fmt, tuple((str(r[0]), str(r[1])) for r in rows))
        if fmt == "jsonl":
            opts = (
                ("format", "'newline_delimited'"),
                ("maximum_object_size", str(MAX_LINE)),
                # an object of more than 200 keys is still its columns, not one MAP
                # column named "json" (DuckDB's default past 200)
                ("map_inference_threshold", "-1"),
            )
            rows = self.run(
                f"DESCRIBE SELECT * FROM read_json({literal(str(path))}, sample_size=-1"
                + "".join(f", {k}={v}" for k, v in opts) + ")"
            )  # fmt: skip
            table = Table(fmt, tuple((str(r[0]), str(r[1])) for r in rows), opts)
            self._one_case(table, path)
            return self._exact(table, path)
        sample, head = self._sample(path, size)
        try:
            return self._csv_table(fmt, self._sniff_csv([(sample, head)], fmt)[0])
        finally:
            if sample != path:
                sample.unlink(missing_ok=True)

    def parquet_names(self, table: Table, path: Path) -> list[str] | None:
        """The names of the Parquet file ``path``'s columns as its footer writes them,
        where they are not those of ``table`` (the engine's): it names a column whose
        name an earlier one has, but maybe for its case, ``NAME_1`` (``Id`` then
        ``id`` read as ``Id`` and ``id_1``); None when every name is its own (the
        footer is read only when a name of ``table`` could be such a one); a column
        with no name it names ``C0`` (by its place), a second one ``_1``."""
        lower = {n.lower() for n in table.names}
        if not any(
            _UNNAMED.fullmatch(n) or ((m := _NUMBERED.fullmatch(n)) and m.group(1).lower() in lower)
            for n in table.names
        ):
            return None
        names = [f.name for f in self.parquet_fields(path)]
        return None if names == list(table.names) else names

    def parquet_width(self, path: Path) -> int:
        """How many columns the Parquet file ``path`` has, from its footer alone."""
        rows = self.run(f"SELECT num_children FROM parquet_schema({literal(str(path))}) LIMIT 1")
        return int(rows[0][0] or 0) if rows else 0

    def parquet_fields(self, path: Path) -> tuple[Field, ...]:
        """The columns of the Parquet file ``path`` as its footer writes them, each with
        the fields nested in it (the footer alone is read)."""
        rows = self.run(
            "SELECT name, repetition_type, num_children, converted_type "
            f"FROM parquet_schema({literal(str(path))})"
        )
        # Each field open: its row and the fields read below it; one is closed once it
        # holds the children its row says (the first row is the schema's root).
        open_: list[tuple[tuple[Any, ...], list[Field]]] = [(rows[0], [])] if rows else []
        for row in [*rows[1:], None]:
            while open_ and (row is None or len(open_[-1][1]) >= int(open_[-1][0][2] or 0)):
                (name, repetition, _, kind), children = open_.pop()
                done = Field(str(name), kind, repetition == "REPEATED", tuple(children))
                if not open_:
                    return done.children
                open_[-1][1].append(done)
            if row is not None and open_:
                open_.append((row, []))
        return ()

    def _one_case(self, table: Table, path: Path) -> None:
        """NotTabular if the JSON Lines file ``path`` holds keys that differ only in case
        (``id`` and ``ID``): the engine takes them for one column, names the others
        ``ID_1`` (the next a number up), a key no record holds, and reads NULL there in
        every row; or an empty key (``""``): it reads each record whole as one column,
        ``json``, where reordered keys are another value, as it does when a record is
        not an object (``[1, 2]``, ``3``). Only a file with such a name among its
        columns is read for its keys."""
        lower = {n.lower() for n in table.names}
        if table.names != ["json"] and not any(
            (m := _NUMBERED.fullmatch(n)) and m.group(1).lower() in lower for n in table.names
        ):
            return
        opts = "".join(f", {k}={v}" for k, v in table.options if k != "map_inference_threshold")
        rows = self.run(
            "SELECT DISTINCT unnest(json_keys(json)) FROM "
            f"read_json_objects({literal(str(path))}{opts})"
        )
        held = {str(r[0]) for r in rows}
        if "" in held:
            raise NotTabular(
                f'{path} holds an empty key (""), which the engine does not read as a column'
            )
        if set(table.names) <= held:
            return
        cased: dict[str, list[str]] = {}
        for k in held:
            cased.setdefault(k.lower(), []).append(k)
        clash = sorted(k for ks in cased.values() if len(ks) > 1 for k in ks)
        if not clash:  # no such keys: a record that is no object made it read as one column
            rows = self.run(
                f"SELECT json FROM read_json_objects({literal(str(path))}{opts}) "
                "WHERE json_type(json) <> 'OBJECT' LIMIT 1"
            )
            record = str(rows[0][0]) if rows else ""
            shown = f" ({_quoted(record if len(record) <= 40 else record[:40] + '...')})"
            raise NotTabular(
                f"{path} holds a record that is not a JSON object{shown if rows else ''}, "
                "which the engine reads as one column of whole records"
            )
        raise NotTabular(
            f"{path} holds keys that differ only in case ({', '.join(map(_quoted, clash))}), "
            "which the engine reads as one column"
        )

    def _exact(self, table: Table, path: Path) -> Table:
        """``table`` (a JSON Lines file's) with each DOUBLE column that holds an integer
        past 2**53 (where DOUBLE stops holding every integer) read as JSON, which keeps
        its digits: the engine reads a field of integers past 64 bits (or one beside a
        ``2.5``) as DOUBLE, where ``2**64`` and ``2**64 + 1`` are one number. So is a
        column holding DOUBLE values in objects or lists (``STRUCT(a DOUBLE[])``) where
        one of them is an integer of 16 digits or more."""
        doubles = {n: t for n, t in table.columns if "DOUBLE" in t}
        if not doubles:
            return table
        probe = dataclasses.replace(table, columns=tuple((n, "JSON") for n in doubles))

        def inexact(name: str) -> str:
            text = f"CAST({ident(name)} AS VARCHAR)"
            if doubles[name] != "DOUBLE":  # (a string holding such digits: read as JSON too)
                return f"bool_or(regexp_matches({text}, '[\\[,:]-?[0-9]{{16,}}[,\\]}}]'))"
            n = f"TRY_CAST({text} AS HUGEINT)"  # (asked of 16 digits or more only: 0.3 s,
            # not 0.9, for the two DOUBLE columns of 1M rows)
            return (
                f"bool_or(CASE WHEN regexp_full_match({text}, '-?[0-9]{{16,}}') "
                f"THEN {n} IS NULL OR abs({n}) > {1 << 53} ELSE false END)"
            )

        found = self.run(f"SELECT {', '.join(map(inexact, doubles))} FROM {probe.relation(path)}")
        json_ = {n for n, hit in zip(doubles, found[0], strict=True) if hit}
        if not json_:
            return table
        return dataclasses.replace(
            table, columns=tuple((n, "JSON" if n in json_ else t) for n, t in table.columns)
        )

    def sniff_pair(self, fmt: Format, old: Path | Callable[[], Path], old_size: int,
                   new: Path | Callable[[], Path], new_size: int, kept: Sniffs | None = None,
                   keys: tuple[bytes, bytes] | None = None) -> tuple[Table, Table]:  # fmt: skip
        """The Tables that read two files: :meth:`sniff` of each, in fewer queries.

        Two CSV samples are sniffed at the same time, and once when they are the same bytes
        (two versions that share their first ``SNIFF_BYTES``): each file still gets
        exactly the Table its own sample gives. ``kept``: what earlier diffs sniffed,
        by ``keys`` (what identifies each file's first ``SNIFF_BYTES`` and whether it
        has more, ``Side.prefix``); a file found there is neither read nor sniffed
        again (a callable giving its path is not called), and what is sniffed is added.
        """
        paths: list[Path | None] = [None, None]

        def path(i: int) -> Path:
            if paths[i] is None:
                p = (old, new)[i]
                paths[i] = p() if callable(p) else p
            found = paths[i]
            assert found is not None
            return found

        if fmt not in ("csv", "tsv") or not old_size or not new_size:
            return self.sniff(fmt, path(0), old_size), self.sniff(fmt, path(1), new_size)
        lookup = kept if keys is not None else None
        rows = [lookup.get(fmt, k) if lookup is not None else None for k in keys or (b"", b"")]
        samples: dict[int, tuple[Path, bytes]] = {}
        early: dict[int, tuple[Any, ...]] = {}
        refused: dict[int, Exception] = {}  # the engine's verdict on a sample sniffed early
        for i in (0, 1):
            started = self._early.get((fmt, keys[i])) if keys is not None else None
            if rows[i] is not None or started is None:
                continue
            try:
                found = started.result()
            except (NotTabular, TypeMismatch) as exc:
                refused[i] = exc
                continue
            except Exception:  # sniffed again below, as without it
                continue
            early[i] = rows[i] = found
        if 0 in refused:
            raise refused[0]  # as the old side's sniff fails first without it
        try:
            todo: list[tuple[Path, bytes]] = []
            for i, size in ((0, old_size), (1, new_size)):
                if i in early and lookup is not None and keys is not None:
                    lookup.put(fmt, keys[i], early[i])
                if rows[i] is None and i not in refused:
                    samples[i] = self._sample(path(i), size)
                    if all(samples[i][1] != h for _, h in todo):
                        todo.append(samples[i])
            if todo:
                by = dict(zip((h for _, h in todo), self._sniff_csv(todo, fmt), strict=True))
                for i, (_, head) in samples.items():
                    rows[i] = by[head]
                    if lookup is not None and keys is not None:
                        lookup.put(fmt, keys[i], by[head])
            if 1 in refused:
                raise refused[1]
            a, b = rows
            assert a is not None and b is not None
            return self._csv_table(fmt, a), self._csv_table(fmt, b)
        finally:
            for i, (sample, _) in samples.items():
                if sample != paths[i]:
                    sample.unlink(missing_ok=True)

    def sniff_early(self, fmt: Format, path: Path, size: int, key: bytes) -> None:
        """Start sniffing the CSV or TSV ``path`` (a file of ``size`` bytes whose first
        ``SNIFF_BYTES`` are written, the rest maybe not yet) while the caller goes on,
        for :meth:`sniff_pair` to take by ``key`` (what identifies that prefix,
        ``Side.prefix``) instead of sniffing it then. Its sample is read here, into a
        file of its own: the same bytes, so the same answer. A sample that is not
        text, or a file that cannot be read, is left to ``sniff_pair``."""
        with self._early_lock:  # (called from the copies' threads too)
            if fmt not in ("csv", "tsv") or not size or self._shut or (fmt, key) in self._early:
                return
            try:
                with open(path, "rb") as src:
                    head = src.read(SNIFF_BYTES)
                end = len(head)  # the sample: head[:end], not copied (4 MiB: 0.002 s)
                if size > SNIFF_BYTES and (cut := head.rfind(b"\n")) > 0:
                    end = cut + 1  # as _sample cuts it
                if refusal(fmt, head[: min(LOOK, end)], b"", size) is not None:
                    return
                if columns_in(fmt, head[:LOOK], size)[0] > MAX_COLUMNS:
                    return  # (sniff_pair is not asked: rowdiff refuses it first)
                sample = self.scratch / f"{path.name}.sniff"  # as _sample names it
                sample.write_bytes(memoryview(head)[:end])
            except OSError:
                return
            query = self._sniff_query(sample, head, fmt, end)
            if self._early_pool is None:
                self._early_pool = ThreadPoolExecutor(2, thread_name_prefix="engine-early")

            def sniffed() -> tuple[Any, ...]:
                try:
                    return spaced_names(self.run_aside(query)[0], head)
                except (NotTabular, TypeMismatch) as exc:
                    if size > SNIFF_BYTES:
                        raise
                    # _sample sniffs such a file itself: name it so
                    raise type(exc)(str(exc).replace(str(sample), str(path))) from None
                finally:
                    sample.unlink(missing_ok=True)

            self._early[(fmt, key)] = self._early_pool.submit(sniffed)

    def _sample(self, path: Path, size: int) -> tuple[Path, bytes]:
        """The file a CSV's dialect is detected on (``path`` or a prefix of it cut after
        a whole line, in a file of its own in the scratch directory: ``path`` may name a
        descriptor, ``vfs.tables.source.from_tree_file``) and its bytes."""
        with open(path, "rb") as src:
            head = src.read(SNIFF_BYTES)
        if size <= SNIFF_BYTES:
            return path, head
        cut = head.rfind(b"\n")
        head = head[: cut + 1] if cut > 0 else head
        sample = self.scratch / f"{path.name}.sniff"
        sample.write_bytes(head)
        return sample, head

    def _sniff_csv(self, samples: list[tuple[Path, bytes]], fmt: Format) -> list[tuple[Any, ...]]:
        """sniff_csv's answer for each sample (its file and bytes), in order.

        Two samples are sniffed at the same time, the second on a cursor of its own
        on another thread: DuckDB's sniffer works on one thread, and one query of
        both (UNION ALL) ran them one after the other. On the benchmark's cut (two
        4 MiB samples, load 5.7): 0.10-0.22 s of wall time instead of 0.22-0.31.

        A sample holding no quote character (``"`` or ``'``) is sniffed with no quote
        and no escape given (``UNQUOTED``): every quote and escape DuckDB would try
        reads it the same, and it answers no quote for such a sample, but it detects
        the column types once per candidate, which costs per column: 1.45 s of CPU
        for a 20,000-column CSV, 0.2 s with them given (the answer is the same,
        ``tests/test_rowdiff_edges.py``).
        """
        queries = [self._sniff_query(p, head, fmt) for p, head in samples]

        if len(queries) == 1:
            return [spaced_names(self.run(queries[0])[0], samples[0][1])]
        with ThreadPoolExecutor(1, thread_name_prefix="engine-aside") as pool:
            second = pool.submit(self.run_aside, queries[1])
            first = self.run(queries[0])
            return [
                spaced_names(first[0], samples[0][1]),
                spaced_names(second.result()[0], samples[1][1]),
            ]

    @staticmethod
    def _sniff_query(path: Path, head: bytes, fmt: Format, end: int | None = None) -> str:
        """The query sniffing the sample ``path`` holding ``head`` (its first ``end``
        bytes, if given)."""
        hint = ", delim='\t'" if fmt == "tsv" else ""
        return (
            f"SELECT * FROM sniff_csv({literal(str(path))}, "
            f"sample_size={SNIFF_ROWS}, max_line_size={MAX_LINE}{hint}{_quotes(head, end)})"
        )

    def _csv_table(self, fmt: Format, row: tuple[Any, ...]) -> Table:
        delim, quote, escape, newline, comment, skip, header, columns, datef, tsf = row[:10]

        def opt(v: Any) -> str:
            return "" if v in (None, "(empty)") else str(v)

        options = [
            ("auto_detect", "false"), ("delim", literal(opt(delim))),
            ("quote", literal(opt(quote))), ("escape", literal(opt(escape))),
            ("header", "true" if header else "false"), ("skip", str(int(skip or 0))),
            ("strict_mode", "true"), ("max_line_size", str(MAX_LINE)),
        ]  # fmt: skip
        # new_line is left to the reader: given explicitly, DuckDB 2.0 reads no row at
        # all from a file whose lines end in "\r\n" (tests/test_rowdiff_fast.py).
        if opt(comment):
            options.append(("comment", literal(opt(comment))))
        if opt(datef):
            options.append(("dateformat", literal(opt(datef))))
        if opt(tsf):
            options.append(("timestampformat", literal(opt(tsf))))
        cols = tuple((str(c["name"]), str(c["type"])) for c in columns)
        return Table(
            fmt, cols, tuple(options), bool(header), opt(quote),
            plain=not opt(comment) and not skip, newline=opt(newline),
        )  # fmt: skip

    def count(self, relation: str, all_columns: Sequence[str] = ()) -> int:
        """Rows of a relation; with ``all_columns``, every value is converted on the way."""
        where = (
            f" WHERE hash({', '.join(map(ident, all_columns))}) IS NOT NULL" if all_columns else ""
        )
        return int(self.run(f"SELECT count(*) FROM {relation}{where}")[0][0])


def spaced_names(row: tuple[Any, ...], head: bytes) -> tuple[Any, ...]:
    """``sniff_csv``'s answer ``row`` for a sample ``head``, with the header's column
    names as the file writes them: the sniffer strips their spaces (`` qty`` becomes
    ``qty``), and the row diff would name, and key on, a column the file has not. A
    name is taken from the header line only where stripped it is the sniffer's, and
    only for a plain header (no rows skipped, no comments) that parses into as many
    names, all distinct; otherwise the answer is left as it is."""
    delim, quote, escape, _, comment, skip, header, columns = row[:8]
    line = head[: head.find(b"\n")] if b"\n" in head else head
    if not header or skip or comment not in (None, "(empty)") or b" " not in line:
        return row
    import csv  # (only for a header with spaces)

    quote = "" if quote in (None, "(empty)") else str(quote)
    escape = "" if escape in (None, "(empty)") else str(escape)
    try:
        text = head.decode("utf-8").removeprefix("\ufeff")
        first = next(
            csv.reader(
                text.splitlines(keepends=True), delimiter=str(delim), quotechar=quote or None,
                quoting=csv.QUOTE_MINIMAL if quote else csv.QUOTE_NONE,
                doublequote=escape in ("", quote),
                escapechar=escape if escape not in ("", quote) else None,
            ),
            None,
        )  # fmt: skip
    except (UnicodeDecodeError, csv.Error, TypeError):
        return row
    names = [str(c["name"]) for c in columns]
    if first is None or len(first) != len(names):
        return row
    found = [raw if raw.strip() == n else n for raw, n in zip(first, names, strict=True)]
    if found == names or len(set(found)) != len(found):
        return row
    cols = [{**c, "name": n} for c, n in zip(columns, found, strict=True)]
    return (*row[:7], cols, *row[8:])


def _quotes(sample: bytes, end: int | None = None) -> str:
    """sniff_csv's options on the quotes of ``sample`` (its first ``end`` bytes, if
    given): ``UNQUOTED`` if it holds none."""
    return "" if sample.find(b'"', 0, end) >= 0 or sample.find(b"'", 0, end) >= 0 else UNQUOTED


_MALFORMED_JSON = re.compile(
    r'Malformed JSON in file "(?P<path>[^"\n]+)", at byte \d+ in line (?P<n>\d+)'
)
# a record the engine parsed but refused (a key twice), named by its place among the
# records: blank lines not counted
_REFUSED_JSON = re.compile(r'JSON transform error in file "(?P<path>[^"\n]+)", in line (?P<n>\d+)')


def _json_line(text: str) -> str:
    """An engine's error with the line of a malformed JSON Lines record as the file
    numbers it. DuckDB 2.0 says ``in line N`` for the (N-1)th record, blank lines not
    counted: ``in line 3`` of a file of two lines, or of one whose bad record is on
    line 4 after two blank lines. The line is found by reading the file up to that
    record (the place the engine named, or the record after it), checking that the
    record there does not parse, and named without the engine's byte offset, which
    counts from elsewhere (``at byte 10`` of a line of 8); if neither record is
    malformed, the engine's text is kept."""
    m = _MALFORMED_JSON.search(text)
    if m is None:
        return _refused_line(text)
    said = int(m["n"])
    candidates = {said - 1, said} - {0}
    record = line = 0
    try:
        with open(m["path"], "rb") as f:
            for raw in f:
                line += 1
                body = raw.rstrip(b"\r\n")
                if not body:
                    continue
                record += 1
                if record in candidates and not _parses(body):
                    where = f'Malformed JSON in file "{m["path"]}", in line {line}'
                    return text[: m.start()] + where + text[m.end() :]
                if record >= said:
                    break
    except OSError:
        pass
    return text


def _refused_line(text: str) -> str:
    """An engine's error on a JSON Lines record that parses but holds a key twice,
    with the line of that record as the file numbers it: the engine says ``in line N``
    for the Nth record, blank lines not counted. Kept as it is unless that record
    holds a key twice."""
    m = _REFUSED_JSON.search(text)
    if m is None:
        return text
    said = int(m["n"])
    record = line = 0
    try:
        with open(m["path"], "rb") as f:
            for raw in f:
                line += 1
                if not raw.rstrip(b"\r\n"):
                    continue
                record += 1
                if record == said:
                    if _parses(raw) and _twice(raw):
                        where = f'JSON transform error in file "{m["path"]}", in line {line}'
                        return text[: m.start()] + where + text[m.end() :]
                    break
    except OSError:
        pass
    return text


def _twice(record: bytes) -> bool:
    """True if an object of the JSON ``record`` holds a key twice."""
    found = False

    def pairs(items: list[tuple[str, Any]]) -> dict[str, Any]:
        nonlocal found
        found = found or len({k for k, _ in items}) != len(items)
        return dict(items)

    json.loads(record, object_pairs_hook=pairs)
    return found


def _parses(record: bytes) -> bool:
    try:
        json.loads(record)
    except ValueError:
        return False
    return True


_QUERY_PART = re.compile(r"\s*(LINE \d+:|\^+\s*$)")  # the query an error quotes
_NUMBERED = re.compile(r"(.+)_[0-9]+", re.DOTALL)  # a name the engine gave a column
_UNNAMED = re.compile(r"C[0-9]+|_[0-9]+")  # a name it gave a Parquet column with none


def _quoted(name: str) -> str:
    """A key's name in a message: in double quotes where it holds a comma, a quote or
    blanks at its ends (escape sequences are the message printer's)."""
    if name != name.strip() or any(c in name for c in ',"()'):
        return json.dumps(name, ensure_ascii=False)
    return name


_FILE_PART = re.compile(r"^  file = (.+)$", re.MULTILINE)  # the file a CSV error names


def _error_file(text: str) -> str | None:
    """The file an engine's error about a CSV file names (in its list of the reader's
    options, which ``first_line`` leaves out), or None."""
    found = _FILE_PART.search(text)
    return found.group(1) if found else None


# the offending line a CSV error quotes; advice on the engine's own options ("Try
# setting 'ignore_errors' to true"), which no dvfs command takes
_NOT_SHOWN = ("Original Line", "Try ")


def first_line(exc: BaseException | str, lines: int = 1) -> str:
    """The first ``lines`` lines of an error's text, joined on one line.

    The engine quotes the offending line of a file in its errors ("Original Line:
    ..."): that line is data, possibly huge, so it is left out, and every part is cut
    to ``MAX_PART`` characters. So are the query it ran ("LINE 1: SELECT ...") and
    the carets under it, which say nothing of the file, a part that introduces
    what the lines after it list ("The search space used was:"), which are not shown,
    and the engine's advice on its own options ("Try setting 'ignore_errors' to true").
    """
    parts = [
        p.strip()[:MAX_PART]
        for p in str(exc).splitlines()
        if p.strip() and not p.startswith(_NOT_SHOWN) and not _QUERY_PART.match(p)
    ]
    parts = parts[:lines]
    while len(parts) > 1 and parts[-1].endswith(":"):
        parts.pop()
    return "; ".join(parts)


# Values shown as their text, by the module that defines their type. ``decimal`` and
# ``uuid`` are not imported for them: DuckDB imports them to give such a value, and a
# row diff whose values hold neither starts without them (importing this module took
# 0.018 s instead of 0.021, python -X importtime, the least of 11 runs).
_AS_TEXT = (("decimal", "Decimal"), ("_decimal", "Decimal"), ("_pydecimal", "Decimal"),
            ("uuid", "UUID"))  # fmt: skip


# A binary value's text, byte by byte: printable ASCII as itself, a backslash doubled,
# any other byte (and the double quote, which may enclose it) as \xNN, lowercase, so
# that the byte 0xff (\xff) and the four characters \xff (\\xff) read apart.
_BYTE_TEXT = {
    b: "\\\\" if b == 0x5C else chr(b) if 0x20 <= b < 0x7F and b != 0x22 else f"\\x{b:02x}"
    for b in range(256)
}


def byte_cut(text: str, at: int) -> int:
    """Where to cut a binary value's text (``_BYTE_TEXT``) at ``at`` characters or
    before: ``at``, or the start of the escape (``\\xNN``, ``\\\\``) it falls inside,
    so that a value cut to be shown ends or starts with no part of one (``\\x``,
    ``\\xf``, ``f``). An escape starts at a backslash after an even number of them."""
    at = max(0, min(at, len(text)))
    for start in range(at - 1, max(-1, at - 4), -1):
        if text[start] != "\\":
            continue
        before = start
        while before and text[before - 1] == "\\":
            before -= 1
        if (start - before) % 2:  # the second of a doubled backslash
            continue
        size = 2 if text[start + 1 : start + 2] == "\\" else 4
        return start if at < start + size else at
    return at


def plain_value(v: Any) -> Any:
    """A value from the engine as JSON can hold it (dates as ISO text, a binary value
    as its ``_BYTE_TEXT``, and so on)."""
    if isinstance(v, (dt.datetime, dt.date, dt.time)):
        return v.isoformat()
    if isinstance(v, dt.timedelta) or _as_text(v):
        return str(v)
    if isinstance(v, (bytes, bytearray, memoryview)):
        return bytes(v).decode("latin-1").translate(_BYTE_TEXT)
    if isinstance(v, dict):
        return {str(k): plain_value(x) for k, x in v.items()}
    if isinstance(v, (list, tuple)):
        return [plain_value(x) for x in v]
    return v


def _as_text(v: Any) -> bool:
    """Whether ``v`` is a Decimal or a UUID (``_AS_TEXT``): an instance of a type
    whose module was never imported cannot be."""
    loaded = sys.modules
    for module, name in _AS_TEXT:
        found = loaded.get(module)
        if found is not None and isinstance(v, getattr(found, name)):
            return True
    return False
