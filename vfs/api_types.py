"""What the Python API (``vfs.api``) returns: versions, entries and changes as plain
values (``VersionInfo``, ``FileInfo``, ``FileChange``), the warning it issues, and the
repository paths it takes."""

from __future__ import annotations

import datetime as dt
import decimal
import os
import sys
import warnings
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from vfs.errors import UsageError
from vfs.model.codec import Entry, Kind
from vfs.model.params import MAX_DEPTH
from vfs.ops.diff import Change
from vfs.quoting import escape_text, quote_given

PathArg = str | os.PathLike[str]


class DvfsWarning(UserWarning):
    """Something dvfs would print as a warning on the command line."""


_OWN = ("vfs", "contextlib")  # modules whose frames a warning is never attributed to


def warn(message: str) -> None:
    """Warn of ``message`` (a :class:`DvfsWarning`) at the caller's line outside dvfs:
    the call of the API, or the ``with`` of a ``track`` block, however deep inside dvfs
    the warning arose (a fixed ``stacklevel`` named a line of dvfs from callbacks).
    Control characters in it are escaped, as the CLI prints them."""
    frame, level = sys._getframe(1), 2
    while frame.f_back is not None and _is_own(frame.f_globals.get("__name__", "")):
        frame, level = frame.f_back, level + 1
    warnings.warn(escape_text(message), DvfsWarning, stacklevel=level)


def _is_own(module: str) -> bool:
    return any(module == m or module.startswith(m + ".") for m in _OWN)


@dataclass(frozen=True)
class VersionInfo:
    """One version: what ``dvfs log`` shows, and with :meth:`Repo.show` all of
    ``dvfs show --format json`` (``to_json()`` returns that document exactly).

    Example::

        v = repo.show("v3")
        v.number, v.id, v.time, v.author, v.message, v.params, v.tags
        v.files["data/train.csv"]["size"]
    """

    number: int
    id: str  # 64 hex digits
    time: dt.datetime  # when it was committed (UTC)
    author: str
    message: str
    params: dict[str, Any]
    tags: tuple[str, ...]
    branches: tuple[str, ...]  # branches whose tip it is
    parents: tuple[str, ...]
    git_commit: str | None
    git_dirty: bool | None
    file_count: int
    bytes: int
    changes: dict[str, Any] | None = None  # show(): counts since its parent
    top_directories: dict[str, Any] | None = None  # show(): its largest directories
    files: dict[str, dict[str, Any]] | None = None  # show(): path -> hash, size, added
    _json: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    @property
    def version(self) -> str:
        """``v3``: how the command line names it."""
        return f"v{self.number}"

    def to_json(self) -> dict[str, Any]:
        """The JSON the command line gives for it (``dvfs show --format json`` for
        :meth:`Repo.show`, a row of ``dvfs log --json`` for :meth:`Repo.versions`)."""
        return dict(self._json)


@dataclass(frozen=True)
class FileInfo:
    """One entry of a version: a file, a directory or a symbolic link."""

    path: str  # from the root, "/"-separated; "" is the root
    type: str  # "file" | "dir" | "link"
    size: int  # files: bytes; directories: bytes below; links: length of the target
    mode: int  # permission bits
    mtime: dt.datetime
    hash: str | None = None  # files: BLAKE3 of the content (hex)
    target: str | None = None  # links: where it points

    @property
    def name(self) -> str:
        """The last part of the path."""
        return self.path.rsplit("/", 1)[-1]


@dataclass(frozen=True)
class FileChange:
    """One path's change between two versions, or a version and the working tree."""

    status: str  # "added" | "removed" | "modified" | "renamed"
    path: str
    old_path: str | None = None  # renamed: where it was
    old_size: int | None = None
    new_size: int | None = None
    kind: str = "file"  # "file" | "link" | "dir" (an empty directory)
    old_kind: str | None = None  # modified: what it was, if another kind (a file, a link)
    old_mode: int | None = None  # the permission bits of both sides, when they changed
    new_mode: int | None = None  # (``chmod +x`` alone is a change), else None


def time_of(ns: int) -> dt.datetime:
    """A time of a record (ns since the epoch) as a UTC datetime."""
    return dt.datetime.fromtimestamp(ns / 1e9, dt.UTC)


def repo_path(path: PathArg) -> bytes:
    """A repository path from what a caller gives: "/"-separated, from the root."""
    text = os.fspath(path)
    if not isinstance(text, str):
        raise TypeError("give paths as text (os.fsdecode), not bytes")
    parts = [p for p in text.replace(os.sep, "/").split("/") if p not in ("", ".")]
    if ".." in parts:
        raise UsageError(f"{quote_given(text)}: paths of a version cannot contain '..'")
    return os.fsencode("/".join(parts))


RevArg = str | int | VersionInfo | None


def rev_text(rev: RevArg) -> str:
    """A revision as the command line takes it: text as given; a version's number
    (``3``, as ``VersionInfo.number`` says) as ``v3``; a VersionInfo as its id;
    None as ``HEAD``."""
    if isinstance(rev, str):
        return rev
    if rev is None:
        return "HEAD"
    if isinstance(rev, VersionInfo):
        return rev.id
    if isinstance(rev, int) and not isinstance(rev, bool):
        if rev < 1:
            raise UsageError(f"version {rev}: versions are numbered from 1 (v1)")
        return f"v{rev}"
    raise TypeError(
        f"a revision is text (v3, main, a tag, an id), a version's number or a "
        f"VersionInfo, not {type(rev).__name__}"
    )


def names_dir(path: PathArg) -> bool:
    """True if ``path`` ends with ``/`` (or ``/.``) after a name, as a directory's path
    may: ``data/x.csv/`` names a directory, as it does to the kernel."""
    parts = os.fspath(path).replace(os.sep, "/").split("/")
    return len(parts) > 1 and parts[-1] in ("", ".") and any(p not in ("", ".") for p in parts)


def file_info(path: bytes, e: Entry) -> FileInfo:
    """The FileInfo of an entry of a version at ``path``."""
    kind = {Kind.DIR: "dir", Kind.SYMLINK: "link"}.get(e.kind, "file")
    return FileInfo(
        os.fsdecode(path), kind, e.size, e.mode, time_of(e.mtime_ns),
        hash=e.digest.hex() if e.kind == Kind.FILE else None,
        target=os.fsdecode(e.target) if e.kind == Kind.SYMLINK else None,
    )  # fmt: skip


def file_change(c: Change) -> FileChange:
    """The FileChange of one change ``dvfs diff`` lists."""
    old = os.fsdecode(c.old_path) if c.old_path is not None else None
    modes = (c.old_mode, c.new_mode) if c.mode_changed else (None, None)
    return FileChange(
        c.status, os.fsdecode(c.path), old, c.old_size, c.new_size, c.kind, c.old_kind, *modes
    )


def message_arg(message: object) -> str:
    """``message`` as given to :meth:`Repo.commit` or ``vfs.track``: text, else TypeError."""
    return text_arg(message, "message")


def text_arg(value: object, what: str) -> str:
    """``value``, an argument that must be text (a message, a tag's name), else TypeError."""
    if not isinstance(value, str):
        raise TypeError(f"the {what} is text, not {type(value).__name__}")
    return value


def url_arg(url: object) -> str:
    """A remote given to :meth:`Repo.remote` or :meth:`Repo.clone`: a URL, or a
    directory's path as text or a path object (``pathlib.Path``); else TypeError."""
    if isinstance(url, os.PathLike):
        url = os.fspath(url)
    if not isinstance(url, str):
        raise TypeError(
            "a remote is a URL (s3://bucket/prefix, file:///path) or a directory's path, "
            f"not {type(url).__name__}"
        )
    return url


# What a parameter given from Python may be besides JSON's own types: numbers and
# arrays of NumPy or PyTorch (the numbers they hold), and values whose text is the
# value (a path, a date, a decimal). Anything else would be recorded as its repr.
_AS_TEXT = (os.PathLike, dt.date, dt.time, dt.timedelta, decimal.Decimal)


def params_arg(params: object) -> dict[Any, Any]:
    """``params`` as given from Python: a mapping whose values a version can record
    (JSON's types, NumPy and PyTorch numbers and arrays, paths, dates, decimals).

    TypeError, naming the parameter, for anything else: ``vfs.model.params`` keeps
    what it does not know as its text, which for an object is its address.
    """
    if params is None:
        return {}
    if not isinstance(params, Mapping):
        raise TypeError(
            f"params is a mapping of names to values (a dict), not {type(params).__name__}"
        )
    for k, v in params.items():
        _param_value(str(k), v)
    return dict(params)


def _param_value(name: str, value: Any, depth: int = 0) -> None:
    if value is None or isinstance(value, (str, bool, int, float, *_AS_TEXT)):
        return
    if depth > MAX_DEPTH:  # (a mapping holding itself): the bound vfs.model.params sets
        raise UsageError(f"parameters nest deeper than {MAX_DEPTH} levels")
    if isinstance(value, Mapping):
        for k, v in value.items():
            _param_value(f"{name}.{k}", v, depth + 1)
        return
    if isinstance(value, (list, tuple, set, frozenset)):
        for i, v in enumerate(value):
            _param_value(f"{name}[{i}]", v, depth + 1)
        return
    if hasattr(value, "tolist") and hasattr(value, "dtype"):  # numpy and torch values
        _param_value(name, value.tolist(), depth)  # (what they hold: an array of objects too)
        return
    raise TypeError(
        f"parameter {name} is a {type(value).__name__}, which a version cannot record: "
        "give a number, a boolean, text, None, a list or a mapping of them"
    )
