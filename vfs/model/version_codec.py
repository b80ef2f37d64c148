"""Canonical msgpack encoding of versions and their pipelines, decoded strictly.

Record layouts (format version 1), as those of trees (``vfs.model.codec``): ids are
32 raw bytes; names are raw bytes as on Linux; times are integer nanoseconds since
the Unix epoch (UTC).

Version::

    {"v": 1, "tree": id, "parents": [id, ...], "number": n, "message": str,
     "author": str, "time_ns": int, "params": {...}, "pipeline": [...],
     "git": null | {"commit": str, "dirty": bool}, "files": int, "bytes": int}

    number is the version's position on its first-parent chain (v1 is the first),
    fixed when the version is made. parents are distinct, at most ``MAX_PARENTS``
    (a merge's two).

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
    is any parameter value (as in ``params``; a TOML date a stage read is the map
    ``{"!toml-date": TEXT}``, decoded as ``vfs.model.params.TomlDate``, and a text
    that YAML reads as NaN or an infinity ``{"!text": TEXT}``, decoded as
    ``vfs.model.params.FloatText``; the user's mapping of one key ``!toml-date`` or
    ``!text`` and a text value, or of one key starting with NUL, has a NUL in front
    of that key); run is the
    run that made the outs:
    exit status, start time, duration (ns), host, dvfs and Python versions, and the
    git commit around the working tree, if any. At most ``MAX_STAGES`` stages, each
    with at most ``MAX_PATHS`` deps, outs, params and metrics; a cmd of at most
    ``MAX_CMD`` bytes (``MAX_ARGS`` arguments); an out belongs to one stage only.

Encoding is canonical (fixed key order, no floats in structure). Decoding rejects
anything else: unknown versions, wrong types, unsorted or duplicate names, names a
tree may not hold (``vfs.model.codec.check_name``). A version's parameters and
pipeline may nest at most ``MAX_NESTING`` levels.
"""

from __future__ import annotations

import builtins
import itertools
import re
from collections.abc import Sequence
from typing import Any, NamedTuple

from vfs.errors import FormatError, ReservedName
from vfs.model.codec import DIR_MODE, Entry, Kind, check_name, is_id, is_int, pack, unpack
from vfs.model.names import is_reserved_at_root
from vfs.model.params import from_record, to_record
from vfs.quoting import quote_given

VERSION_FORMAT = 1
# How deeply a version's parameters and pipeline may nest lists and maps: printing
# them (JSON, YAML) recurses, and a record nested a thousand deep would exhaust the
# stack of whoever shows it. Real parameters nest two or three levels.
MAX_NESTING = 32
MAX_PARENTS = 2  # a merge's; each named once
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


class GitLink(NamedTuple):
    """The git commit of the surrounding work tree when a version was made."""

    commit: str
    dirty: bool


class StageRun(NamedTuple):
    """How the run that made a stage's outputs went (a failed run is never recorded)."""

    exit: int
    started_ns: int
    duration_ns: int
    host: str
    dvfs: str
    python: str
    git: str | None = None


class StageRecord(NamedTuple):
    """One stage of a version's pipeline: what its outputs were made from, and how."""

    name: str
    cmd: str | tuple[str, ...]
    wdir: bytes
    deps: tuple[tuple[bytes, bytes], ...]  # (path, content id), sorted by path
    outs: tuple[tuple[bytes, bytes], ...]
    params: tuple[tuple[bytes, str, Any], ...]  # (file, key, value), sorted
    metrics: tuple[bytes, ...]  # paths among the outs
    run: StageRun


class _VersionFields(NamedTuple):
    tree: bytes
    parents: tuple[bytes, ...]
    number: int
    message: str
    author: str
    time_ns: int
    params: dict[str, Any]
    pipeline: tuple[StageRecord, ...]
    git: GitLink | None
    files: int
    bytes: int


class Version(_VersionFields):
    """One recorded state of the data: a root tree plus metadata.

    A named tuple, as :class:`StageRecord`, :class:`StageRun` and :class:`GitLink`
    are, not a frozen dataclass: a dataclass compiles its methods as it is made,
    about 4 M instructions each, in every ``log``, ``commit`` and ``diff`` (with the
    history's ``Extent`` and ``RevPath``, 19 M of a ``dvfs log -n 1``'s 324 M).
    ``_replace`` makes a changed copy.
    """

    __slots__ = ()

    def __new__(
        cls,
        tree: builtins.bytes,
        parents: tuple[builtins.bytes, ...],
        number: int,
        message: str,
        author: str,
        time_ns: int,
        params: dict[str, Any] | None = None,
        pipeline: tuple[StageRecord, ...] = (),
        git: GitLink | None = None,
        files: int = 0,
        bytes: int = 0,
    ) -> Version:
        """A version; ``params`` left out is a new empty dict (never a shared one)."""
        if params is None:
            params = {}
        return super().__new__(
            cls, tree, parents, number, message, author, time_ns, params, pipeline, git,
            files, bytes,
        )  # fmt: skip

    def root_entry(self, name: builtins.bytes = b"") -> Entry:
        """The directory entry of this version's root tree, as a mount shows it.

        Its size is the version's bytes and its mtime the time the version was made:
        ``.versions/vN``, a mount's working tree and ``dvfs ls v3`` all show this.
        """
        return Entry(name, Kind.DIR, DIR_MODE, self.bytes, self.time_ns, subtree=self.tree)


def _stage_row(s: StageRecord) -> dict[str, Any]:
    r = s.run
    return {
        "name": s.name,
        "cmd": s.cmd if isinstance(s.cmd, str) else list(s.cmd),
        "wdir": s.wdir,
        "deps": [[p, i] for p, i in sorted(s.deps)],
        "outs": [[p, i] for p, i in sorted(s.outs)],
        "params": [
            [f, k, to_record(v)] for f, k, v in sorted(s.params, key=lambda x: (x[0], x[1]))
        ],
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
    return pack(
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
    rec = unpack(data, "version")

    def need(cond: bool, what: str) -> None:
        if not cond:
            raise FormatError(f"malformed version record: {what}")

    need(isinstance(rec, dict) and set(rec) == _VERSION_KEYS, "bad keys")
    if rec["v"] != VERSION_FORMAT:
        raise FormatError(f"version record of unknown format version {rec['v']!r}")
    need(is_id(rec["tree"]), "bad tree id")
    need(isinstance(rec["parents"], list) and all(is_id(p) for p in rec["parents"]), "parents")
    parents = rec["parents"]
    need(len(parents) <= MAX_PARENTS and len(set(parents)) == len(parents), "parents")
    need(is_int(rec["number"], 1), "bad number")
    need(isinstance(rec["message"], str) and isinstance(rec["author"], str), "text fields")
    need(is_int(rec["time_ns"], 0, (1 << 63) - 1), "bad time")
    need(isinstance(rec["params"], dict) and isinstance(rec["pipeline"], list), "params")
    need(_shallow([rec["params"], rec["pipeline"]]), f"nested deeper than {MAX_NESTING} levels")
    need(is_int(rec["files"]) and is_int(rec["bytes"], 0, 1 << 62), "totals")
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
        raise ReservedName(
            f"reserved name {quote_given(parts[0])} at the top of a pipeline path", parts[0]
        )
    return True


def _pairs(rows: object, what: str) -> tuple[tuple[bytes, bytes], ...]:
    """[[path, id], ...], sorted by path without repeats."""
    if not isinstance(rows, list) or len(rows) > MAX_PATHS:
        raise _bad_stage(f"{what} is not a list of at most {MAX_PATHS:,}")
    out: list[tuple[bytes, bytes]] = []
    for row in rows:
        if not (isinstance(row, list) and len(row) == 2 and _path_ok(row[0]) and is_id(row[1])):
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
        plist.append((row[0], row[1], from_record(row[2])))
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
        is_int(run["exit"], -(1 << 31), (1 << 31) - 1)
        and is_int(run["started_ns"], 0, (1 << 63) - 1)
        and is_int(run["ns"], 0, (1 << 63) - 1)
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
