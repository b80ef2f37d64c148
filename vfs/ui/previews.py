"""Pages of a tabular file for the preview route, from tables read once and kept.

A table's first page used to cost the whole of reading it: copy the file out of the
store, start a DuckDB connection, sniff the CSV dialect and column types, count the
rows, close the connection (60 to 300 ms for a 5,000-row CSV on a loaded 2-core
machine, over the 100 ms the dashboard's API aims at). A version's files never
change, so :class:`TablePreviews` keeps, for the files read last (``KEEP_BYTES`` of
copies at most, and the newest always), the copy in its scratch directory, the
``Table`` that reads it and its row count, keyed by the format and the content's
BLAKE3; every other page of such a file is then one ``SELECT … LIMIT … OFFSET`` on
one engine kept open for the server's life.

A wide CSV costs per column, not per row: DuckDB binds every column a query reads
(0.4 s of CPU a query for 20,000 of them) and its dialect search detects the column
types once per candidate (1.45 s more). The first page of a 20,000-column CSV took
2.8 s of CPU, 35 s on a loaded machine. Now its dialect is sniffed once when its
sample holds no quote (``vfs.tables.engine``: 0.2 s), every row's width is checked
once by the count, and each page reads the columns up to its last one only
(``Table.first``: 0.02 s for the first page): 0.65 s of CPU in all.

The count is still 0.7 s of wall time of the first page's 1.1 s (20,000 columns,
20 rows, 2 loaded cores). Asked with ``count=False`` (the page asks so first, then
again for the count), the rows come without it, ``total`` None, when the lines they
lie in prove their width: a CSV whose lines are its rows (no quoting, or no quote
character in the file; no comment lines or rows skipped), each of those lines
holding as many fields as the header. Otherwise, or when a line does not, the file is
counted first as before, so a row the count would refuse is never shown as one.
The first page then comes in 0.5 s (the sniff), the count after it.

Threads: the API's worker threads share one instance; a lock guards the cache and
the engine (whose queries run one at a time on its own thread anyway). The scratch
directory is ``.dvfs/rows-<pid>-…`` (``vfs.tables.source.scratch``), removed by
:meth:`TablePreviews.close`, and by the next table reader if this process dies.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import re
import threading
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from vfs.tables import engine as table_engine
from vfs.tables.formats import LOOK, NAMES, Format, refusal
from vfs.tables.source import scratch

KEEP_BYTES = 256 << 20  # bytes of kept copies, at most (the newest is kept whatever its size)
COLUMNS_SHOWN = 100  # columns of a table in one page of its preview


class Refused(table_engine.NotTabular):
    """A file whose bytes are not its format's (``vfs.tables.formats.refusal``), not
    given to the engine: the message names the file and says why, and what to do, as
    ``dvfs diff --rows`` does in the page's words."""


@dataclass(frozen=True)
class _Read:
    """A file read once: its copy, how to read it, its columns and rows."""

    copy: Path
    size: int
    table: table_engine.Table
    total: int | None  # None: not counted yet (``page(count=False)``)


class TablePreviews:
    """One engine and the tables it has read (see the module doc)."""

    def __init__(self, dvfs_dir: Path) -> None:
        self._dvfs_dir = dvfs_dir
        self._lock = threading.Lock()
        self._stack: contextlib.ExitStack | None = None
        self._dir: Path | None = None
        self._engine: table_engine.Engine | None = None
        self._kept: OrderedDict[tuple[str, bytes], _Read] = OrderedDict()
        self._serial = 0

    def _start(self) -> tuple[Path, table_engine.Engine]:
        if self._engine is None or self._dir is None:
            stack = contextlib.ExitStack()
            self._dir = stack.enter_context(scratch(self._dvfs_dir))
            self._engine = table_engine.Engine(self._dir, threads=1)
            stack.callback(self._engine.close)
            self._stack = stack
            self._engine.run("SET preserve_insertion_order = true")  # pages in the file's order
        return self._dir, self._engine

    def close(self) -> None:
        """Stop the engine and remove the copies."""
        with self._lock:
            if self._stack is not None:
                self._stack.close()
            self._stack, self._dir, self._engine = None, None, None
            self._kept.clear()

    def page(
        self, fmt: Format, digest: bytes, size: int, suffix: str, content: Iterable[bytes],
        offset: int, limit: int, column_offset: int = 0, column_limit: int = COLUMNS_SHOWN,
        name: str = "the file", count: bool = True,
    ) -> dict[str, Any]:  # fmt: skip
        """Rows ``offset`` to ``offset + limit`` of a file in format ``fmt`` whose bytes
        (BLAKE3 ``digest``, ``size`` of them) ``content`` yields when not kept already,
        of its columns ``column_offset`` to ``column_offset + column_limit`` (a table of
        20,000 columns is not one answer): ``{columns, rows, total, total_columns,
        column_offset}``. NotTabular or TypeMismatch if the engine cannot, naming the
        file ``name`` (as the user knows it: ``data/x.csv in v2``), not the copy read.
        ``count=False``: ``total`` may be None, the rows not waiting on the count (module
        doc)."""
        with self._lock:
            where, eng = self._start()
            key = (fmt, digest)
            read = self._kept.get(key)
            if read is None:
                read = self._read(where, eng, fmt, size, suffix, content, name)
                self._kept[key] = read
                self._trim()
            self._kept.move_to_end(key)
            if read.total is None and (count or not _as_wide(read, offset + limit)):
                read = self._kept[key] = self._counted(eng, key, read, name)
            columns = read.table.columns
            shown = columns[column_offset : column_offset + column_limit]
            picked = ", ".join(table_engine.ident(n) for n, _ in shown)
            rel = read.table.first(column_offset + len(shown)).relation(read.copy)
            more = read.total is None or (read.total and offset < read.total)
            rows = (
                eng.run(f"SELECT {picked} FROM {rel} LIMIT {limit} OFFSET {offset}")
                if more and shown
                else []
            )
        return {
            "columns": [{"name": n, "type": t} for n, t in shown],
            "rows": [[table_engine.plain_value(v) for v in r] for r in rows],
            "total": read.total,
            "total_columns": len(columns),
            "column_offset": column_offset,
        }

    def _read(
        self, where: Path, eng: table_engine.Engine, fmt: Format, size: int, suffix: str,
        content: Iterable[bytes], name: str,
    ) -> _Read:  # fmt: skip
        self._serial += 1
        copy = where / f"preview-{self._serial}{suffix}"
        try:
            with open(copy, "wb") as out:
                for piece in content:
                    out.write(piece)
            _refuse(fmt, copy, size, name)
            t = eng.sniff(fmt, copy, size)
        except Refused:
            copy.unlink(missing_ok=True)
            raise
        except (table_engine.NotTabular, table_engine.TypeMismatch) as exc:
            copy.unlink(missing_ok=True)
            raise type(exc)(_named(str(exc), copy, name)) from None
        except BaseException:
            copy.unlink(missing_ok=True)
            raise
        return _Read(copy, size, t, 0 if t.empty else None)

    def _counted(
        self, eng: table_engine.Engine, key: tuple[str, bytes], read: _Read, name: str
    ) -> _Read:
        """``read`` with its rows counted, every row's width checked on the way; a file
        the count refuses is forgotten (NotTabular or TypeMismatch naming ``name``)."""
        try:
            total = eng.count(read.table.relation(read.copy))
        except (table_engine.NotTabular, table_engine.TypeMismatch) as exc:
            self._forget(key)
            raise type(exc)(_named(str(exc), read.copy, name)) from None
        except BaseException:
            self._forget(key)
            raise
        return dataclasses.replace(read, total=total)

    def _forget(self, key: tuple[str, bytes]) -> None:
        old = self._kept.pop(key, None)
        if old is not None:
            with contextlib.suppress(OSError):
                os.unlink(old.copy)

    def _trim(self) -> None:
        """Forget the oldest reads past ``KEEP_BYTES`` (never the newest)."""
        while len(self._kept) > 1 and sum(r.size for r in self._kept.values()) > KEEP_BYTES:
            _, old = self._kept.popitem(last=False)
            with contextlib.suppress(OSError):
                os.unlink(old.copy)


def _refuse(fmt: Format, copy: Path, size: int, name: str) -> None:
    """Refused if the bytes of ``copy`` are not ``fmt``'s, as the row diff refuses them
    (a UTF-16 CSV: how to convert it, not the engine's decoding error)."""
    with open(copy, "rb") as f:
        head = f.read(LOOK)
        f.seek(max(0, size - LOOK))
        tail = f.read(LOOK)
    why = refusal(fmt, head, tail, size, purpose="see its rows here")
    if why:
        raise Refused(f"{name} is not {NAMES[fmt]}: {why}")


def _as_wide(read: _Read, rows: int) -> bool:
    """True if the first ``rows`` rows of ``read`` (and its header) are its first lines,
    each holding as many fields as the table has columns (the module doc's proof)."""
    t = read.table
    opts = dict(t.options)
    if t.fmt not in ("csv", "tsv") or not t.plain or opts.get("skip", "0") != "0":
        return False
    delim = _text_of(opts.get("delim", "''")).encode()
    if not delim:
        return False
    quote = t.quote.encode()
    fields = len(t.columns)
    with open(read.copy, "rb") as f:
        while quote and (piece := f.read(1 << 20)):
            if quote in piece:
                return False  # a quoted field may hold a delimiter or a newline
        f.seek(0)
        for _ in range(rows + t.has_header):
            line = f.readline()
            if not line:
                return True  # the whole file: every line checked
            line = line.removesuffix(b"\n").removesuffix(b"\r")
            if not line or b"\r" in line or line.count(delim) != fields - 1:
                return False
    return True


def _text_of(literal: str) -> str:
    """The text of a SQL string literal (``table_engine.literal``'s inverse)."""
    return literal[1:-1].replace("''", "'") if len(literal) >= 2 else ""


def _named(text: str, copy: Path, name: str) -> str:
    """An engine's message with the copy it read (or the sample of it it sniffed,
    ``vfs.tables.engine``) named ``name``: the copy is gone by the time it is shown."""
    return re.sub(f"([\"']?){re.escape(str(copy))}(?:\\.sniff)?\\1", lambda _: name, text)
