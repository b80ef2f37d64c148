"""Canonical msgpack encoding of trees and versions, decoded strictly.

Record layouts (format version 1). Ids are 32 raw bytes; names are raw bytes as on
Linux; times are integer nanoseconds since the Unix epoch (UTC).

Tree (one directory)::

    {"v": 1, "entries": [[name, kind, mode, size, mtime_ns, payload], ...]}

    entries sorted by name (bytewise); kind 0 = file, 1 = dir, 2 = symlink;
    mode holds the permission bits (0o777: an old record's setuid, setgid and
         sticky bits, up to 0o7777, are accepted and dropped when decoded);
    payload: file    -> [digest, [[chunk_id, chunk_len], ...]]
                        digest is BLAKE3 of the whole content (equal to the chunk id
                        for a one-chunk file)
             dir     -> subtree id (size is the subtree's total file bytes)
             symlink -> link target bytes

Version::

    {"v": 1, "tree": id, "parents": [id, ...], "number": n, "message": str,
     "author": str, "time_ns": int, "params": {...}, "pipeline": [...],
     "git": null | {"commit": str, "dirty": bool}, "files": int, "bytes": int}

    number is the version's position on its first-parent chain (v1 is the first),
    fixed when the version is made.

Pipeline (the lineage of a version's outputs; ``[]`` when it has none): one map per
stage whose outputs the version holds as its last run made them, sorted by name::

    {"name": str, "cmd": str | [str, ...], "wdir": path,
     "deps": [[path, id], ...], "outs": [[path, id], ...],
     "params": [[file, key, value], ...], "metrics": [path, ...],
     "run": {"exit": int, "started_ns": int, "ns": int, "host": str, "dvfs": str,
             "python": str, "git": str | null}}

    name matches ``STAGE_NAME`` (at most 100 characters); a string cmd runs under
    ``sh -c``, a list is the argv itself; paths are repository paths as bytes (b""
    for the root as wdir), each component a valid name (as in trees, reserved names
    refused); ids are content ids (``vfs.pipeline.content``: a file's digest, or a
    digest of a directory's listing); deps, outs and metrics are sorted by path
    without repeats, params by (file, key); metrics are paths among the outs; value
    is any parameter value (as in ``params``); run is the run that made the outs:
    exit status, start time, duration (ns), host, dvfs and Python versions, and the
    git commit around the working tree, if any. At most ``MAX_STAGES`` stages, each
    with at most ``MAX_PATHS`` deps, outs, params and metrics; a cmd of at most
    ``MAX_CMD`` bytes (``MAX_ARGS`` arguments); an out belongs to one stage only.

Encoding is canonical (sorted entries, fixed key order, no floats in structure),
so equal directories have equal bytes and therefore equal ids. Decoding rejects
anything else: unknown versions, wrong types, unsorted or duplicate names, and
names that are empty, contain ``/`` or NUL, are ``.``/``..``, or are reserved
(``.git``, ``.dvfs`` and their lookalikes: ``vfs.model.names``; refused with
``ReservedName``, which carries the name). A version's parameters and pipeline may
nest at most ``MAX_NESTING`` levels. Whether a tree may be a version's root (no
``.versions``) is for whoever receives the version to ask (:func:`root_refusal`).
"""

from __future__ import annotations

import builtins
import enum
import itertools
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import msgpack

from vfs.errors import FormatError, ReservedName
from vfs.model.ids import ID_BYTES
from vfs.model.names import any_reserved, is_reserved, is_reserved_at_root

TREE_FORMAT = 1
VERSION_FORMAT = 1
MODE_MASK = 0o7777  # the modes a record may hold
PERM_BITS = 0o777  # the ones dvfs keeps and applies: never setuid, setgid or sticky
DIR_MODE = 0o755  # the mode of every directory in a version (see dir_entry)
# A sanity bound on sizes read from records, so a hostile record cannot ask for
# absurd allocations (1 PiB).
MAX_SIZE = 1 << 50
# How deeply a version's parameters and pipeline may nest lists and maps: printing
# them (JSON, YAML) recurses, and a record nested a thousand deep would exhaust the
# stack of whoever shows it. Real parameters nest two or three levels.
MAX_NESTING = 32
# Bounds of a version's pipeline (see the module docstring): a record may come from a
# remote, and every one of these is listed by `show` and walked by `lineage`.
MAX_STAGES = 1024
MAX_PATHS = 10_000
MAX_CMD = 64 << 10
MAX_ARGS = 4096
MAX_PATH_BYTES = 4096
MAX_TEXT = 255  # host, dvfs and Python versions, git commit
MAX_KEY = 256  # a parameter's name
STAGE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,99}")


class Kind(enum.IntEnum):
    """What a tree entry is."""

    FILE = 0
    DIR = 1
    SYMLINK = 2


@dataclass(frozen=True, slots=True)
class ChunkRef:
    """One piece of a file: the chunk's id and its length in bytes."""

    oid: bytes
    size: int


@dataclass(frozen=True, slots=True)
class Entry:
    """One name in a directory."""

    name: bytes
    kind: Kind
    mode: int
    size: int
    mtime_ns: int
    digest: bytes = b""  # files: BLAKE3 of the whole content
    chunks: tuple[ChunkRef, ...] = ()  # files
    subtree: bytes = b""  # dirs
    target: bytes = b""  # symlinks


@dataclass(frozen=True, slots=True)
class Tree:
    """A directory: entries sorted by name."""

    entries: tuple[Entry, ...]

    def get(self, name: bytes) -> Entry | None:
        """The entry called ``name``, or None (binary search: entries are sorted)."""
        lo, hi = 0, len(self.entries)
        while lo < hi:
            mid = (lo + hi) // 2
            if self.entries[mid].name < name:
                lo = mid + 1
            else:
                hi = mid
        if lo < len(self.entries) and self.entries[lo].name == name:
            return self.entries[lo]
        return None


@dataclass(frozen=True)
class GitLink:
    """The git commit of the surrounding work tree when a version was made."""

    commit: str
    dirty: bool


@dataclass(frozen=True)
class StageRun:
    """How the run that made a stage's outputs went (a failed run is never recorded)."""

    exit: int
    started_ns: int
    duration_ns: int
    host: str
    dvfs: str
    python: str
    git: str | None = None


@dataclass(frozen=True)
class StageRecord:
    """One stage of a version's pipeline: what its outputs were made from, and how."""

    name: str
    cmd: str | tuple[str, ...]
    wdir: bytes
    deps: tuple[tuple[bytes, bytes], ...]  # (path, content id), sorted by path
    outs: tuple[tuple[bytes, bytes], ...]
    params: tuple[tuple[bytes, str, Any], ...]  # (file, key, value), sorted
    metrics: tuple[bytes, ...]  # paths among the outs
    run: StageRun


@dataclass(frozen=True)
class Version:
    """One recorded state of the data: a root tree plus metadata."""

    tree: bytes
    parents: tuple[bytes, ...]
    number: int
    message: str
    author: str
    time_ns: int
    params: dict[str, Any] = field(default_factory=dict)
    pipeline: tuple[StageRecord, ...] = ()
    git: GitLink | None = None
    files: int = 0
    bytes: int = 0

    def root_entry(self, name: builtins.bytes = b"") -> Entry:
        """The directory entry of this version's root tree, as a mount shows it.

        Its size is the version's bytes and its mtime the time the version was made:
        ``.versions/vN``, a mount's working tree and ``dvfs ls v3`` all show this.
        """
        return Entry(name, Kind.DIR, DIR_MODE, self.bytes, self.time_ns, subtree=self.tree)


def dir_entry(
    name: bytes, subtree: bytes, entries: Sequence[Entry], own_mtime_ns: int = 0
) -> Entry:
    """The entry naming a stored directory (``subtree``) that holds ``entries``.

    The directory-entry rule, for every writer of trees: mode ``DIR_MODE``, size the
    total of its entries' sizes (so a directory's size is its file bytes), mtime the
    newest of its entries' mtimes, or, for an empty directory, its own (``own_mtime_ns``:
    a working tree's directory has one; a directory made from index paths is never
    empty). :func:`dir_row` is the same rule over encoded rows.
    """
    size = sum(e.size for e in entries)
    mtime = max((e.mtime_ns for e in entries), default=own_mtime_ns)
    return Entry(name, Kind.DIR, DIR_MODE, size, mtime, subtree=subtree)


def dir_row(
    name: bytes, subtree: bytes, rows: Sequence[Sequence[Any]], own_mtime_ns: int = 0
) -> list[Any]:
    """:func:`dir_entry` as an encoded row (see :func:`encode_tree_rows`)."""
    size = sum(r[3] for r in rows)
    mtime = max((r[4] for r in rows), default=own_mtime_ns)
    return [name, int(Kind.DIR), DIR_MODE, size, mtime, subtree]


def check_name(name: bytes) -> bytes:
    """Return ``name`` if it is a valid single path component, else FormatError."""
    if not name or name in (b".", b"..") or b"/" in name or b"\0" in name:
        raise FormatError(f"invalid name {name!r} in a tree record")
    if len(name) > 255:
        raise FormatError(f"name longer than 255 bytes in a tree record: {name[:40]!r}...")
    if is_reserved(name):
        raise ReservedName(f"reserved name {name!r} in a tree record", name)
    return name


def _pack(obj: object) -> bytes:
    return msgpack.packb(obj, use_bin_type=True)  # type: ignore[no-any-return]


def _unpack(data: bytes, what: str) -> Any:
    try:
        return msgpack.unpackb(data, raw=False, strict_map_key=True)
    except Exception as exc:  # msgpack raises several unrelated types
        raise FormatError(f"{what} record does not decode: {exc}") from None


def encode_tree(entries: Sequence[Entry]) -> bytes:
    """Canonical bytes of a directory; entries are sorted here."""
    rows: list[list[Any]] = []
    for e in sorted(entries, key=lambda e: e.name):
        payload: Any
        if e.kind == Kind.FILE:
            payload = [e.digest, [[c.oid, c.size] for c in e.chunks]]
        elif e.kind == Kind.DIR:
            payload = e.subtree
        else:
            payload = e.target
        rows.append([e.name, int(e.kind), e.mode & PERM_BITS, e.size, e.mtime_ns, payload])
    return encode_tree_rows(rows)


def encode_tree_rows(rows: list[list[Any]]) -> bytes:
    """Canonical bytes of a directory from rows already in canonical form.

    Each row ``[name, kind, mode & PERM_BITS, size, mtime_ns, payload]`` as the layout
    above, sorted by name: what :func:`encode_tree` makes of entries. A commit builds
    rows straight from the index, without an entry object per file.
    """
    return _pack({"v": TREE_FORMAT, "entries": rows})


def _need(cond: bool, what: str) -> None:
    if not cond:
        raise FormatError(f"malformed tree record: {what}")


def _is_id(x: object) -> bool:
    return isinstance(x, bytes) and len(x) == ID_BYTES


def _is_int(x: object, lo: int = 0, hi: int = MAX_SIZE) -> bool:
    return isinstance(x, int) and not isinstance(x, bool) and lo <= x <= hi


def decode_tree(data: bytes) -> Tree:
    """Parse a tree record strictly; FormatError on anything unexpected.

    The checks are written out inline (no helper call per field): a checkout decodes
    every directory of a version, and this took 4.5 us an entry, 16 times msgpack's
    own time, when each check was a call.
    """
    rec = _unpack(data, "tree")
    _need(isinstance(rec, dict) and set(rec) == {"v", "entries"}, "bad keys")
    if rec["v"] != TREE_FORMAT:
        raise FormatError(f"tree record of unknown format version {rec['v']!r}")
    rows = rec["entries"]
    _need(isinstance(rows, list), "entries is not a list")
    out: list[Entry] = []
    names: list[bytes] = []
    prev = b""
    file, folder, link = Kind.FILE, Kind.DIR, Kind.SYMLINK
    for row in rows:
        if type(row) is not list or len(row) != 6:
            _need(False, "entry is not a 6-list")
        name, kind, mode, size, mtime_ns, payload = row
        if type(name) is not bytes:
            _need(False, "name is not bytes")
        if not 0 < len(name) <= 255 or b"/" in name or b"\0" in name or name in _DOTS:
            check_name(name)
        if not prev < name:
            _need(False, "names unsorted or duplicated")
        prev = name
        names.append(name)
        if type(kind) is not int or not 0 <= kind <= 2:
            _need(False, "bad kind")
        if type(mode) is not int or not 0 <= mode <= MODE_MASK:
            _need(False, "bad mode")
        if type(size) is not int or not 0 <= size <= MAX_SIZE:
            _need(False, "bad size")
        if type(mtime_ns) is not int or not _MIN_NS <= mtime_ns <= _MAX_NS:
            _need(False, "bad mtime")
        if kind == file:
            if type(payload) is not list or len(payload) != 2:
                _need(False, "bad file payload")
            digest, chunk_rows = payload
            if type(digest) is not bytes or len(digest) != ID_BYTES:
                _need(False, "bad digest")
            if type(chunk_rows) is not list:
                _need(False, "bad chunk list")
            chunks = []
            total = 0
            for c in chunk_rows:
                if type(c) is not list or len(c) != 2:
                    _need(False, "bad chunk ref")
                oid, n = c
                if (
                    type(oid) is not bytes
                    or len(oid) != ID_BYTES
                    or type(n) is not int
                    or not 1 <= n <= MAX_SIZE
                ):
                    _need(False, "bad chunk ref")
                chunks.append(ChunkRef(oid, n))
                total += n
            if total != size:
                _need(False, "chunk sizes do not add up to the file size")
            out.append(Entry(name, file, mode & 0o777, size, mtime_ns, digest, tuple(chunks)))
        elif kind == folder:
            _need(_is_id(payload), "bad subtree id")
            out.append(Entry(name, folder, mode & 0o777, size, mtime_ns, subtree=payload))
        else:
            _need(isinstance(payload, bytes) and 0 < len(payload) <= 4096, "bad link target")
            _need(b"\0" not in payload, "NUL in link target")
            out.append(Entry(name, link, mode & 0o777, size, mtime_ns, target=payload))
    bad = any_reserved(names)
    if bad is not None:
        check_name(bad)
    return Tree(tuple(out))


def root_refusal(tree: Tree) -> bytes | None:
    """The first name ``tree`` may not hold at the root of a version, or None."""
    return next((e.name for e in tree.entries if is_reserved_at_root(e.name)), None)


_DOTS = (b".", b"..")
_MIN_NS, _MAX_NS = -(1 << 63), (1 << 63) - 1


def _stage_row(s: StageRecord) -> dict[str, Any]:
    r = s.run
    return {
        "name": s.name,
        "cmd": s.cmd if isinstance(s.cmd, str) else list(s.cmd),
        "wdir": s.wdir,
        "deps": [[p, i] for p, i in sorted(s.deps)],
        "outs": [[p, i] for p, i in sorted(s.outs)],
        "params": [[f, k, v] for f, k, v in sorted(s.params, key=lambda x: (x[0], x[1]))],
        "metrics": sorted(s.metrics),
        "run": {
            "exit": r.exit, "started_ns": r.started_ns, "ns": r.duration_ns, "host": r.host,
            "dvfs": r.dvfs, "python": r.python, "git": r.git,
        },
    }  # fmt: skip


def encode_pipeline(stages: Sequence[StageRecord]) -> list[dict[str, Any]]:
    """The pipeline field of a version record, checked as it will be decoded.

    FormatError if the stages break a bound or a rule of the module docstring.
    """
    rows = [_stage_row(s) for s in sorted(stages, key=lambda s: s.name)]
    if not _shallow(rows):
        raise FormatError(f"pipeline parameters nest deeper than {MAX_NESTING} levels")
    decode_pipeline(rows)
    return rows


def encode_version(v: Version) -> bytes:
    """Canonical bytes of a version record."""
    if not _shallow([v.params]):
        raise FormatError(f"parameters nest deeper than {MAX_NESTING} levels: flatten them")
    return _pack(
        {
            "v": VERSION_FORMAT,
            "tree": v.tree,
            "parents": list(v.parents),
            "number": v.number,
            "message": v.message,
            "author": v.author,
            "time_ns": v.time_ns,
            "params": v.params,
            "pipeline": encode_pipeline(v.pipeline),
            "git": None if v.git is None else {"commit": v.git.commit, "dirty": v.git.dirty},
            "files": v.files,
            "bytes": v.bytes,
        }
    )


_VERSION_KEYS = {
    "v", "tree", "parents", "number", "message", "author", "time_ns",
    "params", "pipeline", "git", "files", "bytes",
}  # fmt: skip


def _shallow(value: object) -> bool:
    """True if lists and maps in ``value`` nest at most MAX_NESTING levels (no recursion)."""
    stack = [(value, 0)]
    while stack:
        x, depth = stack.pop()
        if isinstance(x, dict):
            x = list(x.values())
        if isinstance(x, list):
            if depth > MAX_NESTING:
                return False
            stack += [(y, depth + 1) for y in x]
    return True


def decode_version(data: bytes) -> Version:
    """Parse a version record strictly; FormatError on anything unexpected."""
    rec = _unpack(data, "version")

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise FormatError(f"malformed version record: {what}")

    need(isinstance(rec, dict) and set(rec) == _VERSION_KEYS, "bad keys")
    if rec["v"] != VERSION_FORMAT:
        raise FormatError(f"version record of unknown format version {rec['v']!r}")
    need(_is_id(rec["tree"]), "bad tree id")
    need(isinstance(rec["parents"], list) and all(_is_id(p) for p in rec["parents"]), "parents")
    need(_is_int(rec["number"], 1), "bad number")
    need(isinstance(rec["message"], str) and isinstance(rec["author"], str), "text fields")
    need(_is_int(rec["time_ns"], 0, (1 << 63) - 1), "bad time")
    need(isinstance(rec["params"], dict) and isinstance(rec["pipeline"], list), "params")
    need(_shallow([rec["params"], rec["pipeline"]]), f"nested deeper than {MAX_NESTING} levels")
    need(_is_int(rec["files"]) and _is_int(rec["bytes"], 0, 1 << 62), "totals")
    git = rec["git"]
    link = None
    if git is not None:
        need(isinstance(git, dict) and set(git) == {"commit", "dirty"}, "git link")
        need(isinstance(git["commit"], str) and isinstance(git["dirty"], bool), "git link")
        link = GitLink(git["commit"], git["dirty"])
    pipeline = decode_pipeline(rec["pipeline"])
    return Version(
        tree=rec["tree"],
        parents=tuple(rec["parents"]),
        number=rec["number"],
        message=rec["message"],
        author=rec["author"],
        time_ns=rec["time_ns"],
        params=rec["params"],
        pipeline=pipeline,
        git=link,
        files=rec["files"],
        bytes=rec["bytes"],
    )


def _bad_stage(what: str) -> FormatError:
    return FormatError(f"malformed pipeline: {what}")


def _text_ok(x: object, limit: int) -> bool:
    """A str of at most ``limit`` UTF-8 bytes without control characters or NUL."""
    if not isinstance(x, str) or len(x) > limit:
        return False
    try:
        n = len(x.encode("utf-8"))
    except UnicodeEncodeError:
        return False
    return n <= limit and not any(ord(c) < 32 or ord(c) == 127 for c in x)


def _path_ok(x: object, *, root: bool = False) -> bool:
    """A repository path (bytes): valid names, not reserved; b"" only if ``root``."""
    if not isinstance(x, bytes) or len(x) > MAX_PATH_BYTES:
        return False
    if not x:
        return root
    parts = x.split(b"/")
    for part in parts:
        check_name(part)  # FormatError, or ReservedName naming it
    if is_reserved_at_root(parts[0]):
        raise ReservedName(f"reserved name {parts[0]!r} at the top of a pipeline path", parts[0])
    return True


def _pairs(rows: object, what: str) -> tuple[tuple[bytes, bytes], ...]:
    """[[path, id], ...], sorted by path without repeats."""
    if not isinstance(rows, list) or len(rows) > MAX_PATHS:
        raise _bad_stage(f"{what} is not a list of at most {MAX_PATHS:,}")
    out: list[tuple[bytes, bytes]] = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 2 and _path_ok(row[0]) and _is_id(row[1])):
            raise _bad_stage(f"bad entry in {what}")
        if out and not out[-1][0] < row[0]:
            raise _bad_stage(f"{what} unsorted or repeated")
        out.append((row[0], row[1]))
    return tuple(out)


_STAGE_KEYS = {"name", "cmd", "wdir", "deps", "outs", "params", "metrics", "run"}
_RUN_KEYS = {"exit", "started_ns", "ns", "host", "dvfs", "python", "git"}


def _decode_cmd(cmd: object) -> str | tuple[str, ...]:
    if isinstance(cmd, str):
        if not cmd or "\0" in cmd or len(cmd.encode("utf-8", "surrogatepass")) > MAX_CMD:
            raise _bad_stage("bad command")
        return cmd
    if not isinstance(cmd, list) or not 1 <= len(cmd) <= MAX_ARGS:
        raise _bad_stage("bad command")
    total = 0
    for a in cmd:
        if not isinstance(a, str) or "\0" in a:
            raise _bad_stage("bad command argument")
        total += len(a.encode("utf-8", "surrogatepass"))
    if total > MAX_CMD or not cmd[0]:
        raise _bad_stage("bad command")
    return tuple(cmd)


def _decode_stage(rec: object) -> StageRecord:
    if not isinstance(rec, dict) or set(rec) != _STAGE_KEYS:
        raise _bad_stage("bad keys in a stage")
    name = rec["name"]
    if not isinstance(name, str) or not STAGE_NAME.fullmatch(name):
        raise _bad_stage("bad stage name")
    if not _path_ok(rec["wdir"], root=True):
        raise _bad_stage("bad wdir")
    deps = _pairs(rec["deps"], "deps")
    outs = _pairs(rec["outs"], "outs")
    params = rec["params"]
    if not isinstance(params, list) or len(params) > MAX_PATHS:
        raise _bad_stage("bad params")
    plist: list[tuple[bytes, str, Any]] = []
    for row in params:
        if not (
            isinstance(row, list)
            and len(row) == 3
            and _path_ok(row[0])
            and _text_ok(row[1], MAX_KEY)
            and row[1]
        ):
            raise _bad_stage("bad param")
        if plist and not (plist[-1][0], plist[-1][1]) < (row[0], row[1]):
            raise _bad_stage("params unsorted or repeated")
        plist.append((row[0], row[1], row[2]))
    metrics = rec["metrics"]
    out_paths = {p for p, _ in outs}
    if (
        not isinstance(metrics, list)
        or len(metrics) > MAX_PATHS
        or any(not isinstance(m, bytes) or m not in out_paths for m in metrics)
        or any(not a < b for a, b in itertools.pairwise(metrics))
    ):
        raise _bad_stage("metrics must be sorted paths among the outs")
    run = rec["run"]
    if not isinstance(run, dict) or set(run) != _RUN_KEYS:
        raise _bad_stage("bad run")
    git = run["git"]
    if not (
        _is_int(run["exit"], -(1 << 31), (1 << 31) - 1)
        and _is_int(run["started_ns"], 0, (1 << 63) - 1)
        and _is_int(run["ns"], 0, (1 << 63) - 1)
        and _text_ok(run["host"], MAX_TEXT)
        and _text_ok(run["dvfs"], MAX_TEXT)
        and _text_ok(run["python"], MAX_TEXT)
        and (git is None or _text_ok(git, MAX_TEXT))
    ):
        raise _bad_stage("bad run")
    return StageRecord(
        name=name,
        cmd=_decode_cmd(rec["cmd"]),
        wdir=rec["wdir"],
        deps=deps,
        outs=outs,
        params=tuple(plist),
        metrics=tuple(metrics),
        run=StageRun(
            run["exit"], run["started_ns"], run["ns"], run["host"], run["dvfs"],
            run["python"], git,
        ),
    )  # fmt: skip


def decode_pipeline(rows: object) -> tuple[StageRecord, ...]:
    """The stages of a version record's pipeline field, checked (module docstring)."""
    if not isinstance(rows, list) or len(rows) > MAX_STAGES:
        raise _bad_stage(f"not a list of at most {MAX_STAGES:,} stages")
    stages = tuple(_decode_stage(r) for r in rows)
    names = [s.name for s in stages]
    if any(not a < b for a, b in itertools.pairwise(names)):
        raise _bad_stage("stages unsorted or repeated")
    seen: set[bytes] = set()
    for s in stages:
        for p, _ in s.outs:
            if p in seen:
                raise _bad_stage("an out belongs to two stages")
            seen.add(p)
    return stages
