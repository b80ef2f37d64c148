"""Which tabular format a path claims, and whether its bytes bear the claim out.

The extension names the format (``.csv``; ``.tsv`` and ``.tab``; ``.jsonl`` and
``.ndjson``; ``.parquet`` and ``.pq``, in any case). Before a file is given to the
engine its first and last bytes (at most ``LOOK`` of each) are checked: Parquet
starts and ends with ``PAR1``; JSON Lines starts with ``{`` after blanks; CSV and
TSV are text (no NUL byte, UTF-8 up to a character cut by the sample's end; UTF-16,
told by its byte order mark, is named as such rather than as binary). A file
that fails gets a byte-level summary and a note instead of rows: a ``.csv`` that is
really a gzip archive must not be read as a table of garbage.
"""

from __future__ import annotations

import contextlib
import csv
import io
import itertools
import json
import os
import re
from typing import Literal

Format = Literal["csv", "tsv", "jsonl", "parquet"]
LOOK = 64 * 1024  # bytes looked at from each end of a file
# The longest line (CSV, TSV, JSON Lines) the engine is given. Longer ones are refused
# before it reads the file: its buffers grow with the line, and an over-long last
# line it would drop without a word (DuckDB 2.0 reads a file ending in one as if the
# line were not there).
MAX_LINE = 8 * 1024 * 1024
# Columns a side may have to be compared row by row: the engine's plan of the keyed
# join grows with the square of the columns, outside its memory limit (4,000 columns
# of 100 rows, a 2 MB CSV: 9.6 GB and 4 minutes; 1,000: 0.9 GB and 11 s). Its
# detection of a file's columns is already slow past it (30,000 columns: 22 s for
# JSON Lines, 37 s for CSV), so a file's first bytes are counted first (``columns_in``).
MAX_COLUMNS = 1024
_DELIMITERS = (",", ";", "|", "\t")  # those the engine tries in a CSV
# a JSON string (one cut by the sample's end too), or a character of structure
_JSON_TOKEN = re.compile(rb'"(?:[^"\\\n]|\\.)*"?|[][{}:]')
PARQUET_MAGIC = b"PAR1"
NAMES: dict[Format, str] = {
    "csv": "CSV", "tsv": "TSV", "jsonl": "JSON Lines", "parquet": "Parquet",
}  # fmt: skip
_BY_SUFFIX: dict[str, Format] = {
    ".csv": "csv", ".tsv": "tsv", ".tab": "tsv", ".jsonl": "jsonl", ".ndjson": "jsonl",
    ".parquet": "parquet", ".pq": "parquet",
}  # fmt: skip
SUFFIXES = ", ".join(_BY_SUFFIX)


def format_of(path: bytes) -> Format | None:
    """The format ``path`` claims by its extension, or None."""
    _, ext = os.path.splitext(os.fsdecode(path).lower())
    return _BY_SUFFIX.get(ext)


def refusal(
    fmt: Format, head: bytes, tail: bytes, size: int, longest_line: int = 0,
    purpose: str = "compare rows",
) -> str | None:  # fmt: skip
    """Why a file of ``size`` bytes starting with ``head`` and ending with ``tail`` is
    not ``fmt``, or None if it may well be (the engine has the last word). ``purpose``
    ends advice on what to do (``convert it … to PURPOSE``): what the caller would do
    with the rows (``compare rows`` for the CLI's row diff)."""
    if size == 0:
        return None  # an empty file is an empty table in every format
    if fmt == "parquet":
        if size < 12 or not head.startswith(PARQUET_MAGIC) or not tail.endswith(PARQUET_MAGIC):
            return "it does not start and end with Parquet's PAR1 marker"
        return None
    if longest_line > MAX_LINE:
        return (
            f"it has a line of {longest_line:,} bytes, longer than the {MAX_LINE:,} "
            "bytes a row may take"
        )
    if head.startswith((b"\xff\xfe", b"\xfe\xff")):  # as Excel's "Unicode text" is saved
        return (
            f"it is UTF-16 text, not UTF-8 (convert it with iconv -f UTF-16 -t UTF-8 to {purpose})"
        )
    if b"\0" in head:
        return "it holds NUL bytes, so it is binary, not text"
    try:
        head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3 or len(head) == size:
            return f"it is not UTF-8 text (byte {exc.start:,})"
    if fmt == "jsonl":
        first = head.lstrip(b" \t\r\n\xef\xbb\xbf")[:1]
        if first and first != b"{":
            return "its first record is not a JSON object"
    return None


def columns_in(fmt: Format, head: bytes, size: int) -> tuple[int, bool]:
    """How many columns a CSV, TSV or JSON Lines file of ``size`` bytes starting with
    ``head`` has at least, counted on ``head`` alone, and whether that is all of them
    (0 for Parquet: its footer says). CSV: the fields of its first two records (blank
    lines are none: the engine skips them), for the delimiter giving most (the fewer
    of the two: a header as wide as its first row); JSON Lines: the distinct keys of
    its first record (the engine's columns are those of every record, told apart
    without case), or 0 when that line has no more than ``MAX_COLUMNS`` colons. A
    record cut by the end of ``head`` counts the columns it shows."""
    cut = len(head) < size
    text = head.decode("utf-8", "replace")
    if fmt in ("csv", "tsv"):
        most = 0
        for delimiter in _DELIMITERS if fmt == "csv" else ("\t",):
            rows = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=False)
            fields = (len(r) for r in rows if r)  # (an empty line reads as no field)
            with contextlib.suppress(csv.Error):
                most = max(most, min(itertools.islice(fields, 2), default=0))
        return most, not cut
    if fmt != "jsonl":
        return 0, False
    body = head.lstrip(b" \t\r\n\xef\xbb\xbf")  # (blank lines: no record, as refusal)
    line = body[: body.find(b"\n")] if b"\n" in body else body
    if line.count(b":") <= MAX_COLUMNS:  # each key is followed by one: too few to count
        return 0, False
    found: set[str] = set()
    depth, key = 0, None
    for m in _JSON_TOKEN.finditer(line):
        token = m.group()
        if token in (b"{", b"["):
            depth += 1
        elif token in (b"}", b"]"):
            depth = max(0, depth - 1)
        elif token == b":" and depth == 1 and key is not None:
            with contextlib.suppress(ValueError):
                found.add(str(json.loads(key)).lower())
        key = token if depth == 1 and token.startswith(b'"') else None
    return len(found), not cut and line == body.rstrip(b"\n")
