"""``dvfs://``: the files of one version as an fsspec filesystem, read-only.

Any library that opens files through fsspec (pandas, pyarrow, dask, polars...) can
read a version without checking it out; reads fetch only the chunks they touch.
Installed with ``pip install 'dvfs[fsspec]'``, found by fsspec through the
``fsspec.specs`` entry point; nothing else in dvfs imports this module.

URL forms (and the paths the filesystem's methods take, without ``dvfs://``)::

    dvfs:///data/train.csv            the file in HEAD (or ``rev=``) of the repository
                                      around the current directory: after a third
                                      ``/`` comes a path and nothing else
    dvfs://data/train.csv             the same, for a path that holds no ``@/`` and
                                      does not end in ``@``
    dvfs://v3@/data/train.csv         ... in version v3 (any revision: main, a tag,
                                      an id, HEAD~2), as dvfs's REV:PATH says
    dvfs://feature/x@/data/train.csv  ... in the tip of branch feature/x
    dvfs://v3@                        the root of v3 (as ``dvfs://v3@/``)

When what follows ``dvfs://`` does not start with ``/``, the revision is all that
comes before its first ``@/``, or all but a final ``@`` (no revision holds an ``@``:
:func:`split_rev`). So ``dvfs://x@/y.txt`` is ``y.txt`` of revision ``x``, always,
and ``y.txt`` in a directory called ``x@`` is ``dvfs:///x@/y.txt``; an unknown
revision says so.

Storage options (``storage_options=`` in pandas, keywords of ``fsspec.filesystem``):

- ``repo``: the repository: a directory (default: the current one), a remote URL
  (``s3://bucket/prefix``, ``file:///path``) read in place without cloning, or a
  ``vfs.Repo``;
- ``rev``: the revision when the URL names none (default ``HEAD``; for a remote, its
  default branch). Give it one way: a URL's ``REV@/`` and a different ``rev=`` is an
  error;
- ``endpoint_url``: the S3 endpoint of a remote (MinIO, SeaweedFS, ...); ``cache_dir``:
  where a remote's versions are kept (see ``vfs.api``).

Any other option, but fsspec's own (``use_listings_cache``...), is ignored with a
``DvfsWarning`` naming it: a misspelt ``rev`` (``revision=``) reads another version.
(Not an error: readers add options of their own, as pandas adds ``anon``.)

The repository is never part of the URL: a repository is a directory or a remote URL,
which a URL cannot hold unambiguously (fsspec's ``::`` chaining would hand the inner
URL to a filesystem of its own, s3fs for ``s3://``). DVC's ``dvc://`` does the same
(repository and revision as options); lakeFS puts both in the URL, its repositories
being names on one server.

A path is read in the revision it names, a path naming none in ``rev`` (HEAD if not
given), whatever revision the URL the filesystem was made from named: fsspec makes
one filesystem for a list of URLs (``fsspec.open_files``) from the first one's, and
each URL of the list is read as it says (``dvfs:///PATH`` in HEAD beside
``dvfs://v1@/PATH``). Each revision is resolved to a version when the filesystem
first meets it (``rev`` and the URL's when it is made), so every read of one
filesystem in one revision sees the same version even if a branch moves meanwhile
(a pickled filesystem too: the processes a DataLoader or a multiprocessing pool
starts read the versions of the filesystem they were given; so does its JSON form,
``to_json``, which names the repository by its root or remote URL); instances are
not cached (``cachable = False``), so each ``pandas.read_csv`` of ``dvfs://main@/...``
reads the branch as it is then.

Entries are named as they were asked for: from the root with a leading ``/``
(``/data/train.csv``), after the revision when the path named one
(``v3@/data/train.csv`` in a listing of ``v3@/data``). A name read back so opens the
same version, and a listing lies under the directory listed, which readers check (a
pyarrow dataset of ``dvfs://v3@/data/parquet``, as ``pandas.read_parquet`` makes one,
refuses files named outside it). ``info`` gives ``name``, ``type``
(``file``, ``directory`` or ``link``), ``size``, ``mode``, ``mtime`` (seconds),
``blake3`` (a file's content id) and, for a symbolic link, ``islink`` and
``destination`` (its target). A link to a file of the version is that file
(``file``, with its size, mode and content id), as fsspec's local filesystem says
of one: readers that list a directory (a pyarrow dataset) read it, as they would
on disk; so is a link to a directory of the version (``directory``), but one leading
to a directory its own path lies in or below (``loop -> ..``, two links leading to
each other's directories), which a reader walking the tree would enter for ever; that
one, and a link out of the version or to nothing, is ``link``.

``open`` gives a buffered file over the version's chunks (``io.BufferedReader``);
given fsspec's ``block_size`` or ``cache_type``, fsspec's own buffered file
(:class:`DvfsFile`) with that cache, which the caching filesystems need:
``blockcache::dvfs://...`` keeps the blocks read in a local sparse file, as
``simplecache::`` and ``filecache::`` keep whole files.

Writes (``open(..., "wb")``, ``pipe``, ``put``, ``rm``, ``mkdir``, ``mv``, ``touch``)
raise :class:`ReadOnlyError`: a version never changes; change files through a
writable mount or a checkout, then ``dvfs add`` and ``dvfs commit`` (or
``repo.add()`` and ``repo.commit()``).
"""

from __future__ import annotations

import datetime as dt
import functools
import os
import threading
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

from fsspec import AbstractFileSystem
from fsspec.caching import caches
from fsspec.json import FilesystemJSONEncoder
from fsspec.spec import AbstractBufferedFile, make_instance
from fsspec.utils import stringify_path, tokenize

from vfs.api import Repo
from vfs.api_types import FileInfo, RevArg, repo_path, rev_text, warn
from vfs.errors import PathNotFound, RevisionNotFound
from vfs.quoting import quote_given
from vfs.store.reader import ChunkedFile, open_chunks

PROTOCOL = "dvfs"
# what AbstractFileSystem itself takes (its listings cache, async and instance options),
# and the anon=True pandas adds when it tries again after a PermissionError (a write)
FSSPEC_OPTIONS = frozenset({
    "use_listings_cache", "listings_expiry_time", "max_paths", "skip_instance_cache",
    "asynchronous", "loop", "add_docs", "add_aliases", "anon",
})  # fmt: skip
F = TypeVar("F", bound=Callable[..., Any])


def _as_asked(method: F) -> F:
    """``method`` raising PathNotFound that names the version as its path (its first
    argument) or the filesystem was given it (``v1 (first)``), not by the id every
    read names it by."""

    @functools.wraps(method)
    def named(self: DvfsFileSystem, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except PathNotFound as exc:
            path = args[0] if args else kwargs.get("path", "/")
            rev = split_rev(self._strip_protocol(path))[0] or self.rev
            version = self._version(rev)  # (resolved already: the error is past that)
            label = self.repo.repository.history.label(version)
            asked = label if rev == label else f"{label} ({rev})"
            text = str(exc).replace(f"{label} ({version.hex()[:10]})", asked)
            raise PathNotFound(text) from None

    return named  # type: ignore[return-value]


def _then_idle(method: F) -> F:
    """``method``, then the packs' descriptors closed if no file of the filesystem is
    open (:meth:`DvfsFileSystem._idle`)."""

    @functools.wraps(method)
    def done(self: DvfsFileSystem, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        finally:
            self._idle()

    return done  # type: ignore[return-value]


class ReadOnlyError(PermissionError):
    """A write through ``dvfs://``, which reads versions only."""

    def __init__(self, what: str) -> None:
        super().__init__(
            f"{what}: dvfs:// is read-only (a version never changes); change files in a "
            "checkout or a writable mount, then `dvfs add` and `dvfs commit` (or "
            "repo.add() and repo.commit() in Python)"
        )


def split_rev(path: str) -> tuple[str | None, str]:
    """(revision or None, the path from the root) of a path without the protocol, as
    the module docstring's grammar reads it: ``/PATH`` names no revision; else
    ``REV@/PATH`` (REV: all before the first ``@/``) and ``REV@`` (the root of REV)
    do, and anything else is a path. REV is never empty: ``@/x`` is a path."""
    if path.startswith("/"):
        return None, path
    at = path.find("@/")
    if at > 0:
        return path[:at], path[at + 1 :]
    if at < 0 and len(path) > 1 and path.endswith("@"):
        return path[:-1], "/"
    return None, path


def _unknown(rev: str, rest: str, exc: RevisionNotFound) -> RevisionNotFound:
    """``exc`` for revision ``rev`` that a URL or path names (``REV@/`` then ``rest``),
    its advice kept, also saying how to name a path whose directory ends in ``@``."""
    said = str(exc).removeprefix(f"unknown revision {quote_given(rev)}").lstrip(":; ")
    hint = (
        f"{said}; dvfs://{rev}@/{rest} names revision {rev}, and a path holding '@/' is "
        f"written after a third '/': dvfs:///{rev}@/{rest}"
    )
    return RevisionNotFound(rev, exc.candidates, hint=hint)


def _clean(path: str) -> str:
    parts = [p for p in path.split("/") if p not in ("", ".")]
    return "/" + "/".join(parts)


def _check_buffering(block_size: Any, cache_type: Any) -> None:
    """ValueError unless fsspec's buffered file can read with ``block_size`` and
    ``cache_type``: its read-ahead took a negative size as is and left the file's last
    bytes unread, and an unknown cache was a KeyError from inside it."""
    if block_size is not None and (
        isinstance(block_size, bool) or not isinstance(block_size, int) or block_size < 0
    ):
        raise ValueError(
            f"block_size={block_size!r}: give a number of bytes (0 or more), or leave it "
            "out for the default"
        )
    if cache_type is not None and cache_type not in caches:
        known = ", ".join(repr(c) for c in caches if c is not None)
        raise ValueError(f"cache_type={cache_type!r}: fsspec's caches are {known}")


class DvfsFile(AbstractBufferedFile):  # type: ignore[misc]
    """A file opened with fsspec's ``block_size`` or ``cache_type``: fsspec's buffered
    file over the version's chunks, as fsspec's caching filesystems (``blockcache::``)
    require of what they wrap."""

    def __init__(
        self, fs: DvfsFileSystem, path: str, raw: ChunkedFile, block_size: int | None,
        cache_type: str | None, cache_options: dict[str, Any] | None,
    ) -> None:  # fmt: skip
        self.raw = raw
        super().__init__(
            fs, path, "rb", block_size, cache_type=cache_type or "readahead",
            cache_options=cache_options, size=raw.size,
        )  # fmt: skip

    def _fetch_range(self, start: int, end: int) -> bytes:
        return self.raw.pread(start, end)

    def close(self) -> None:
        super().close()
        self.raw.close()


class DvfsFileSystem(AbstractFileSystem):  # type: ignore[misc]
    """The files of one version of a dvfs repository, read-only (module docstring).

    Example::

        fs = fsspec.filesystem("dvfs", repo="/data/cats", rev="v3")
        fs.ls("/images")
        with fs.open("/labels.csv") as f:
            ...
    """

    protocol: ClassVar[str] = PROTOCOL
    root_marker: ClassVar[str] = "/"
    cachable: ClassVar[bool] = False

    def __init__(
        self, repo: Repo | str | os.PathLike[str] | None = None, rev: RevArg = None,
        endpoint_url: str | None = None, cache_dir: str | os.PathLike[str] | None = None,
        _url_rev: str | None = None, _pinned: str | None = None,
        _pins: dict[str, str] | None = None, **storage_options: Any,
    ) -> None:  # fmt: skip
        for name in sorted(storage_options.keys() - FSSPEC_OPTIONS):
            warn(
                f"dvfs:// ignores the option {name!r}: its options are repo, rev, "
                "endpoint_url and cache_dir"
            )
        super().__init__(**storage_options)
        if isinstance(repo, Repo):
            self.repo = repo
        else:
            where = os.fspath(repo) if repo is not None else "."
            if "://" in where:
                self.repo = Repo.remote(where, endpoint_url=endpoint_url, cache_dir=cache_dir)
            else:
                self.repo = Repo(where)
        self.rev = rev_text(rev) if rev not in (None, "") else "HEAD"
        # each revision named, as the version it named when first named (every read
        # names the version, not the branch); _pinned and _pins: __reduce__
        self._pins = {k: bytes.fromhex(v) for k, v in (_pins or {}).items()}
        self._pins_lock = threading.Lock()
        if _pinned:
            self._pins[self.rev] = bytes.fromhex(_pinned)
        if _url_rev is not None:
            try:
                url_version = self._version(_url_rev)
            except RevisionNotFound as exc:
                raise _unknown(_url_rev, "...", exc) from None
            if rev not in (None, "") and self._version(self.rev) != url_version:
                raise ValueError(
                    f"the URL names revision {_url_rev} (dvfs://{_url_rev}@/...) but "
                    f"rev={rev!r} names another: give the revision one way"
                )
        if _url_rev is None or rev not in (None, ""):
            self._version(self.rev)  # (an unknown one is an error now, not at a read)
        self._files = 0  # files opened and not closed yet
        self._files_lock = threading.Lock()
        self._idle()

    @property
    def version(self) -> bytes:
        """The version a path naming no revision reads: ``rev``'s."""
        return self._version(self.rev)

    def _version(self, rev: str) -> bytes:
        """The version ``rev`` names, as it named it when this filesystem first met it."""
        with self._pins_lock:
            found = self._pins.get(rev)
        if found is None:
            found = self.repo.repository.history.resolve(rev)
            with self._pins_lock:
                found = self._pins.setdefault(rev, found)
        return found

    def _pinning(self) -> dict[str, Any]:
        """The options that make this filesystem again reading the same versions."""
        with self._pins_lock:
            pins = {k: v.hex() for k, v in self._pins.items() if k != self.rev}
            default = self._pins.get(self.rev)
        out: dict[str, Any] = {"_pins": pins}
        if default is not None:
            out["_pinned"] = default.hex()
        return out

    def __reduce__(self) -> tuple[Any, ...]:
        """Pickled, the filesystem reads the same versions of the same repository, even
        if a branch moved since it was made (multiprocessing's workers each unpickle
        one), or the process unpickling it works in another directory (Ray's workers
        do): a repository goes as its root, a remote as its Repo (URL and options)."""
        root = self.repo.root
        where: Repo | str = self.repo if root is None else str(root)
        options = {**self.storage_options, **self._pinning(), "repo": where}
        return make_instance, (type(self), self.storage_args, options)

    def to_dict(self, *, include_password: bool = True) -> dict[str, Any]:
        """fsspec's JSON form (``to_json``), read back by ``from_json`` as a pickle is:
        the version pinned, and the repository by where it reads (an absolute root, or
        a remote's URL, endpoint and cache directory), never as a ``vfs.Repo``, which
        JSON cannot hold, nor as a directory relative to this process's."""
        options = {
            k: v for k, v in self.storage_options.items()
            if k not in ("repo", "endpoint_url", "cache_dir")
        }  # fmt: skip
        options.update(self.repo._options(), **self._pinning())
        encoder = FilesystemJSONEncoder()
        return {
            "cls": f"{type(self).__module__}:{type(self).__name__}",
            "protocol": PROTOCOL,
            "args": encoder.make_serializable(self.storage_args),
            **encoder.make_serializable(options),
        }

    # paths ---------------------------------------------------------------------------

    @classmethod
    def _strip_protocol(cls, path: Any) -> Any:
        if isinstance(path, list):
            return [cls._strip_protocol(p) for p in path]
        text = stringify_path(path)
        if not isinstance(text, str):
            raise TypeError(f"a dvfs path is text (/data/train.csv), not {type(text).__name__}")
        for prefix in (f"{PROTOCOL}://", f"{PROTOCOL}::"):
            if text.startswith(prefix):
                text = text[len(prefix) :]
        rev, rest = split_rev(text)
        return f"{rev}@{_clean(rest)}" if rev is not None else _clean(rest)

    @staticmethod
    def _get_kwargs_from_urls(path: str) -> dict[str, Any]:
        text = path[len(PROTOCOL) + 3 :] if path.startswith(f"{PROTOCOL}://") else path
        rev, _ = split_rev(text)
        # not "rev": fsspec merges these with the caller's options by dict(**a, **b),
        # a TypeError when both name one (a URL's revision and rev=); checked above
        return {"_url_rev": rev} if rev is not None else {}

    @classmethod
    def _parent(cls, path: Any) -> str:
        rev, rest = split_rev(cls._strip_protocol(path))
        parent = _clean(rest.rsplit("/", 1)[0])
        return f"{rev}@{parent}" if rev is not None else parent

    def unstrip_protocol(self, name: str) -> str:
        at = self._named(name)[2]
        return f"{PROTOCOL}://{at[:12]}@{_clean(split_rev(name)[1])}"

    def _path(self, path: Any) -> tuple[str, str]:
        """(``path`` as a repository path, no leading ``/``; the id of the version it
        names)."""
        _, rel, at = self._named(path)
        return rel, at

    def _named(self, path: Any) -> tuple[str, str, str]:
        """(``REV@`` as ``path`` names its revision, or nothing; the repository path;
        the id of the version it reads: REV's, or ``rev``'s if it names none)."""
        rev, rest = split_rev(self._strip_protocol(path))
        try:
            version = self._version(self.rev if rev is None else rev)
        except RevisionNotFound as exc:
            if rev is None:
                raise
            raise _unknown(rev, rest.lstrip("/"), exc) from None
        return ("" if rev is None else f"{rev}@"), rest.lstrip("/"), version.hex()

    # reading -------------------------------------------------------------------------

    def _idle(self) -> None:
        """Close the repository's pack descriptors unless a file of this filesystem is
        open. fsspec and the libraries over it keep a filesystem as long as they like
        (an ``OpenFile``, a dataset, a DataFrame's ``attrs``); it holds no descriptor
        between calls, and no more than the store's bound while its files are open."""
        with self._files_lock:
            if self._files == 0:
                self.repo._close_idle()

    def _opened(self) -> Callable[[], None]:
        """Count a file opened; the function to call when it is closed (once counts)."""
        with self._files_lock:
            self._files += 1
        done = threading.Event()

        def closed() -> None:
            with self._files_lock:
                if done.is_set():
                    return
                done.set()
                self._files -= 1
            self._idle()

        return closed

    def _shown(self, f: FileInfo, at: str) -> FileInfo:
        """The entry the filesystem shows for ``f`` of version ``at`` (module docstring):
        a link to a file is that file, as the local filesystem says; a link to a
        directory is that directory, unless it loops; any other entry is itself."""
        if f.type == "link":
            to = self.repo.target(f.path, at)
            if to is not None:
                return to
            if (d := self._linked_dir(f.path, at)) is not None:
                return d
        return f

    def _entry(self, f: FileInfo, prefix: str, at: str) -> dict[str, Any]:
        name = prefix + _clean(f.path)
        link = f.target
        f = self._shown(f, at)
        out: dict[str, Any] = {
            "name": name,
            "type": {"dir": "directory"}.get(f.type, f.type),
            "size": 0 if f.type == "dir" else f.size,
            "mode": f.mode,
            "mtime": f.mtime.timestamp(),
        }
        if f.hash is not None:
            out["blake3"] = f.hash
        if link is not None:
            out["destination"] = link
            out["islink"] = True
        return out

    def _linked_dir(self, path: str, at: str) -> FileInfo | None:
        """The directory the link at ``path`` leads to, or None: if it leads to no
        directory, or to one that ``path`` already lies in or below (``loop -> ..``,
        or ``a/l1 -> ../b`` beside ``b/l2 -> ../a``), which a reader walking the
        tree would enter for ever."""
        repo, rel = self.repo, repo_path(path)
        to = repo._real_dir(at, rel)
        if to is None:
            return None
        parts = rel.split(b"/")
        for i in range(len(parts)):  # every directory the path passes through
            was = repo._real_dir(at, b"/".join(parts[:i]))
            if was is not None and (not to or was == to or was.startswith(to + b"/")):
                return None
        return repo.info(os.fsdecode(to), at)

    @_then_idle
    @_as_asked
    def ls(self, path: Any, detail: bool = True, **kwargs: Any) -> list[Any]:
        """Entries of a directory (or the file itself), named as the module docstring says."""
        prefix, rel, at = self._named(path)
        rows = [self._entry(f, prefix, at) for f in self.repo.ls(at, rel)]
        return rows if detail else [r["name"] for r in rows]

    @_then_idle
    @_as_asked
    def info(self, path: Any, **kwargs: Any) -> dict[str, Any]:
        prefix, rel, at = self._named(path)
        return self._entry(self.repo.info(rel, at), prefix, at)

    @_then_idle
    @_as_asked
    def _open(
        self, path: Any, mode: str = "rb", block_size: int | None = None,
        autocommit: bool = True, cache_options: dict[str, Any] | None = None, **kwargs: Any,
    ) -> Any:  # fmt: skip
        if mode not in ("rb", "br"):  # (the order of the letters is free, as for open())
            raise ReadOnlyError(f"open({path!r}, {mode!r})")
        buffered = block_size is not None or "cache_type" in kwargs
        if buffered:
            _check_buffering(block_size, kwargs.get("cache_type"))
        closed = self._opened()
        try:
            raw = self.repo._raw(*self._path(path), on_close=closed)
        except BaseException:
            closed()
            raise
        if not buffered:
            return open_chunks(raw, "rb")
        return DvfsFile(
            self, self._strip_protocol(path), raw, block_size, kwargs.get("cache_type"),
            cache_options,
        )  # fmt: skip

    @_then_idle
    @_as_asked
    def cat_file(
        self, path: Any, start: int | None = None, end: int | None = None, **kwargs: Any
    ) -> bytes:
        """The file's bytes [start, end) (negative: from the end); only the chunks the
        range lies in are read."""
        f = self.repo.file(*self._path(path))
        with f:
            size = f.size
            lo = 0 if start is None else (max(0, size + start) if start < 0 else start)
            hi = size if end is None else (max(0, size + end) if end < 0 else end)
            return f.pread(lo, hi)

    @_then_idle
    @_as_asked
    def modified(self, path: Any) -> dt.datetime:
        """The ``mtime`` of ``info``: of the file or directory a link leads to."""
        rel, at = self._path(path)
        return self._shown(self.repo.info(rel, at), at).mtime

    def checksum(self, path: Any) -> int:
        """The content id (its first 64 bits) of the file ``path`` reads, a link to one
        included (as ``info`` gives it); for another entry, its ``info`` and the
        version hashed: the same in every process, and another in another version."""
        info = self.info(path)
        if "blake3" in info:
            return int(info["blake3"][:16], 16)
        return int(tokenize(self._path(path)[1], info), 16)

    # writing: refused ------------------------------------------------------------------

    def pipe_file(self, path: Any, value: Any, mode: str = "overwrite", **kwargs: Any) -> None:
        raise ReadOnlyError(f"pipe({path!r})")

    def put_file(self, lpath: Any, rpath: Any, callback: Any = None, **kwargs: Any) -> None:
        raise ReadOnlyError(f"put({lpath!r}, {rpath!r})")

    def cp_file(self, path1: Any, path2: Any, **kwargs: Any) -> None:
        raise ReadOnlyError(f"copy({path1!r}, {path2!r})")

    def mv(self, path1: Any, path2: Any, *args: Any, **kwargs: Any) -> None:
        raise ReadOnlyError(f"mv({path1!r}, {path2!r})")

    def rm_file(self, path: Any) -> None:
        raise ReadOnlyError(f"rm({path!r})")

    def rm(self, path: Any, recursive: bool = False, maxdepth: int | None = None) -> None:
        raise ReadOnlyError(f"rm({path!r})")

    def mkdir(self, path: Any, create_parents: bool = True, **kwargs: Any) -> None:
        raise ReadOnlyError(f"mkdir({path!r})")

    def makedirs(self, path: Any, exist_ok: bool = False) -> None:
        raise ReadOnlyError(f"makedirs({path!r})")

    def rmdir(self, path: Any) -> None:
        raise ReadOnlyError(f"rmdir({path!r})")

    def touch(self, path: Any, truncate: bool = True, **kwargs: Any) -> None:
        raise ReadOnlyError(f"touch({path!r})")
