"""A version's file for the dashboard: its bytes, a bounded head, and its preview.

The download and preview routes of ``vfs.ui.app`` read a file through here, by the
same lookup as ``dvfs cat`` (``vfs.ops.browse.lookup``); every chunk comes from a
``Getter`` that verifies it (a store's or a remote's). A preview reads a bounded head
(``TEXT_HEAD``, ``HEX_HEAD``) or, for a table up to ``TABLE_MAX``, pages through the
table engine's copy kept by ``vfs.ui.previews``.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from vfs.errors import NotAFile, ObjectCorrupt, ObjectMissing, RemoteError
from vfs.model.codec import Entry, Kind
from vfs.ops import browse
from vfs.quoting import quote_name
from vfs.repo.repository import Repository
from vfs.ui.arguments import page
from vfs.worktree.scan import show

try:  # the table engine (DuckDB) is the optional extra dvfs[tables]
    from vfs.tables import engine as table_engine
    from vfs.tables.formats import format_of
    from vfs.ui.previews import Refused
    from vfs.ui.previews import TablePreviews as TablePreviews
except ModuleNotFoundError as exc:  # pragma: no cover - tests install it
    if exc.name not in ("duckdb", "_duckdb"):
        raise
    table_engine = None  # type: ignore[assignment]
    TablePreviews = None  # type: ignore[assignment,misc]

TEXT_HEAD = 64 * 1024  # bytes of a text file a preview shows
HEX_HEAD = 512  # bytes of a binary file a preview shows
TABLE_MAX = 64 * 1024 * 1024  # larger tables are previewed as text
IMAGE_MAX = 16 * 1024 * 1024  # larger images are offered for download only

# Images a browser may show inline: raster formats only (an SVG can carry script).
IMAGE_TYPES = {
    b"\x89PNG\r\n\x1a\n": "image/png",
    b"\xff\xd8\xff": "image/jpeg",
    b"GIF87a": "image/gif",
    b"GIF89a": "image/gif",
}


@dataclass
class FileRef:
    """A file of a version: where it is and its entry."""

    version: str
    id: bytes
    path: bytes
    entry: Entry


def file_of(repo: Repository, rev: str, path: bytes) -> FileRef:
    """The file (or link) ``path`` of ``rev``; NotAFile for a directory."""
    oid, e = browse.lookup(repo, rev, path)
    if e.kind == Kind.DIR:
        raise NotAFile(f"{show(path) if path else 'the root'} is a directory: open it instead")
    return FileRef(repo.history.label(oid), oid, path, e)


Getter = Callable[[bytes], bytes]  # a chunk's verified bytes by id (a store's, a remote's)


def chunks(get: Getter, f: FileRef) -> Iterator[bytes]:
    """The content of a file, chunk by chunk, each verified (``dvfs cat``).

    A chunk that cannot be had names the file and its version, and what to do: an
    ObjectMissing or ObjectCorrupt of the repository's store (a lost pack: ``dvfs
    pull``; damage: ``dvfs fsck``), or a RemoteError of the same kind for a remote's
    view (the remote gone, a pack it lost or holds damaged: check the remote)."""
    if f.entry.kind == Kind.SYMLINK:
        yield f.entry.target
        return
    for c in f.entry.chunks:
        try:
            piece = get(c.oid)
        except ObjectMissing as exc:
            raise ObjectMissing(exc.oid, f"{show(f.path)} of {f.version}") from None
        except ObjectCorrupt as exc:
            raise ObjectCorrupt(exc.oid, exc.detail, f"{show(f.path)} of {f.version}") from None
        except RemoteError as exc:
            raise type(exc)(
                f"{show(f.path)} of {f.version} cannot be read from the remote ({exc}): "
                "check that the remote is reachable and holds this version intact, then reload"
            ) from None
        yield piece


Need = Callable[[FileRef, int | None], None]  # make a file's first N bytes (None: all) readable


def opened(get: Getter, f: FileRef) -> Iterator[bytes]:
    """:func:`chunks`, checked before a download's response begins: the first chunk
    is read already (a remote gone fails here; a clone's missing data is downloaded
    before, ``vfs.ui.fetch``). Past the headers, a failure can only cut the
    download short (``vfs.ui.app``): so does a file of several chunks whose bytes are
    not the digest its version records (:func:`whole`)."""
    pieces = whole(f, chunks(get, f))
    first = next(pieces, None)
    return iter(()) if first is None else itertools.chain([first], pieces)


def whole(
    f: FileRef, pieces: Iterator[bytes], then: str = "its last chunk was not sent"
) -> Iterator[bytes]:
    """``pieces``, the chunks of ``f`` in order, the last held back until they are
    known to make the digest its version records: FormatError instead of it if they
    do not, its message ending with ``then`` (a forged or damaged record; a file of one
    chunk or none has the digest decoding checked, ``vfs.model.codec``). Each chunk is
    taken into the digest on a thread of its own while the next is read, as ``dvfs cat``
    does (``vfs.ops.browse.digest_checked``)."""
    return browse.digest_checked(pieces, f.entry, lambda: f"{show(f.path)} of {f.version}", then)


def head(get: Getter, f: FileRef, n: int) -> bytes:
    """At most the first ``n`` bytes of a file (only the chunks holding them are read)."""
    out = bytearray()
    for piece in chunks(get, f):
        out += piece
        if len(out) >= n:
            break
    return bytes(out[:n])


def image_type(data: bytes) -> str | None:
    """The media type of a PNG, JPEG or GIF by its first bytes, else None."""
    for magic, mime in IMAGE_TYPES.items():
        if data.startswith(magic):
            return mime
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "image/webp"
    return None


def hex_lines(data: bytes) -> list[str]:
    """``hexdump -C`` style lines: offset, 16 bytes in hex, the printable ones as text."""
    out = []
    for at in range(0, len(data), 16):
        row = data[at : at + 16]
        hexes = " ".join(f"{b:02x}" for b in row)
        text = "".join(chr(b) if 32 <= b < 127 else "." for b in row)
        out.append(f"{at:08x}  {hexes:<47}  |{text}|")
    return out


def _text(data: bytes, size: int) -> str | None:
    """``data`` (a head of ``size`` bytes) as text, or None if it is binary."""
    if b"\0" in data:
        return None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        if len(data) < size and exc.start >= len(data) - 3:  # a character cut by the head
            return data[: exc.start].decode("utf-8")
        return None


def preview(
    repo: Repository, rev: str, path: bytes, offset: int = 0, limit: int = 50,
    tables: TablePreviews | None = None, get: Getter | None = None,
    need: Need | None = None, column_offset: int = 0, count: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """What the file page shows of ``REV:PATH``, bounded whatever the file's size.

    ``kind`` says which: ``table`` (a page of rows of a CSV, TSV, JSON Lines or Parquet
    file read by the table engine, when installed, up to ``TABLE_MAX`` bytes: of
    ``vfs.ui.previews.COLUMNS_SHOWN`` of its columns from ``column_offset``),
    ``image`` (PNG, JPEG, GIF, WebP: the page loads it from the raw route), ``text``
    (the first ``TEXT_HEAD`` bytes), ``binary`` (a hex dump of the first ``HEX_HEAD``
    bytes), ``link`` (its target).

    ``tables`` keeps the tables it has read, so that the next page of one is a query
    (the server holds one); without it, the file is read for this page alone. ``get``
    reads chunks (default: the repository's store; a remote's view reads its remote);
    ``need`` (a repository's, ``vfs.ui.fetch``), given the part of the file the
    preview reads, makes it readable first (the data a clone lacks, downloaded) or
    says why it cannot, naming the file. ``count=False``: a table's ``total`` may
    be None, its rows not waiting on counting them (``vfs.ui.previews``).
    """
    offset, limit = page(offset, limit)
    get = repo.store.get if get is None else get
    f = file_of(repo, rev, path)
    e = f.entry
    tabular = table_engine is not None and format_of(path) is not None and e.size <= TABLE_MAX
    if need is not None:
        need(f, None if tabular else max(TEXT_HEAD, HEX_HEAD))
    base: dict[str, Any] = {"version": f.version, "id": f.id.hex(), "path": show(path),
                            "size": e.size}  # fmt: skip
    if e.kind == Kind.SYMLINK:
        return {**base, "kind": "link", "target": show(e.target)}
    note = None
    if table_engine is not None and format_of(path) is not None:
        if e.size > TABLE_MAX:
            note = f"larger than {TABLE_MAX >> 20} MiB: its first bytes as text"
        else:
            try:
                return {**base, **_table(repo, get, f, offset, limit, tables, column_offset, count)}
            except Refused as exc:
                note = f"{exc}: its first bytes"
            except (table_engine.NotTabular, table_engine.TypeMismatch) as exc:
                note = f"not readable as a table ({exc}): its first bytes"
    first = head(get, f, max(TEXT_HEAD, HEX_HEAD))
    mime = image_type(first)
    if mime is not None and e.size <= IMAGE_MAX:
        return {**base, "kind": "image", "mime": mime}
    text = _text(first[:TEXT_HEAD], e.size)
    if text is not None:
        return {**base, "kind": "text", "text": text, "truncated": e.size > TEXT_HEAD,
                "note": note}  # fmt: skip
    return {**base, "kind": "binary", "hex": hex_lines(first[:HEX_HEAD]),
            "truncated": e.size > HEX_HEAD, "note": note}  # fmt: skip


def _table(
    repo: Repository, get: Getter, f: FileRef, offset: int, limit: int,
    tables: TablePreviews | None, column_offset: int = 0, count: bool = True,
) -> dict[str, Any]:  # fmt: skip
    """A page of rows of a tabular file, read by the table engine (``vfs.ui.previews``),
    which keeps its copy by its digest: FormatError, nothing kept, if its bytes are not
    the digest its version records (:func:`whole`)."""
    fmt = format_of(f.path)
    assert fmt is not None and TablePreviews is not None
    suffix = os.path.splitext(show(f.path))[1].lower()
    own = tables is None
    use = TablePreviews(repo.dir) if tables is None else tables
    try:
        content = whole(f, chunks(get, f), "not previewed")
        rows = use.page(fmt, f.entry.digest, f.entry.size, suffix, content, offset, limit,
                        column_offset, name=f"{quote_name(f.path)} in {f.version}",
                        count=count)  # fmt: skip
    finally:
        if own:
            use.close()
    return {"kind": "table", "format": fmt, **rows, "offset": offset, "limit": limit}


# ------------------------------------------------------------------------ diff
