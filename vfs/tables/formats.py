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

import os
from typing import Literal

Format = Literal["csv", "tsv", "jsonl", "parquet"]
LOOK = 64 * 1024  # bytes looked at from each end of a file
# The longest line (CSV, TSV, JSON Lines) the engine is given. Longer ones are refused
# before it reads the file: its buffers grow with the line, and an over-long last
# line it would drop without a word (DuckDB 2.0 reads a file ending in one as if the
# line were not there).
MAX_LINE = 8 * 1024 * 1024
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
