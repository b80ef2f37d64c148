"""dvfs from Python: versions, their files and the everyday commands, as functions.

Everything here calls what the ``dvfs`` command calls (``vfs.ops.browse``,
``vfs.ops.workflow``, ``vfs.ops.sync``); nothing is implemented twice. Quick tour::

    import vfs

    repo = vfs.Repo(".")                              # the repository around "."
    for v in repo.versions():                         # newest first
        print(v.number, v.id[:10], v.message, v.params, v.tags)
    with repo.open("data/train.csv", rev="v3", mode="r") as f:
        header = f.readline()                          # reads the first chunk only
    vfs.read_bytes("data/labels.csv", rev="main", repo=".")

    repo.add(["data/train.csv"])                      # as `dvfs add`
    v = repo.commit("cleaned", params={"lr": 3e-4}, tag="clean")

    remote = vfs.Repo.remote("s3://bucket/datasets/cats")   # no clone: chunks on demand
    remote.read_text("labels.csv", rev="v2")

Paths are relative to the repository's root (``"data/train.csv"``; a leading ``/``
is ignored) and never leave it. A symbolic link on the way (``data/linked/x.csv``,
``linked`` a link to a directory of the version) is followed, as the kernel (and a
mount) follows it; a link named last is followed by :meth:`Repo.open`, ``ls`` and
``walk`` (to a directory), never by ``info``. Revisions are what the command line takes: ``v3``,
``main``, a tag, an id or its prefix, ``HEAD~2``; or a version's number (``3``, as
``VersionInfo.number`` gives it), or a VersionInfo; the default is ``HEAD``.

Reading: :meth:`Repo.open` (and :func:`open`) return a seekable file object that
fetches only the chunks it reads (``vfs.store.reader``): from the local store, else (a
``clone --no-checkout``) from the repository's default remote; for
:meth:`Repo.remote`, from the remote, one ranged GET a chunk. Every chunk is
verified against its id before a byte of it is returned.

A remote read without cloning (:meth:`Repo.remote`) keeps the remote's versions and
trees (never file data) in a repository of its own under
``<user cache>/dvfs/api/<name>-<hash>/meta`` (``$XDG_CACHE_HOME``; ``cache_dir=``
chooses another place), fetched and checked by the code of ``dvfs fetch``; its
branches and tags mirror the remote's as of the last :meth:`Repo.refresh`. It is
read-only: clone it to add and commit.

Errors: a missing path raises ``FileNotFoundError`` (``vfs.PathNotFound``) naming the
path and the version; an unknown revision ``vfs.RevisionNotFound`` with the command
line's message and close names; a directory opened as a file ``IsADirectoryError``
(``vfs.NotAFile``), a file's path with a trailing ``/`` ``NotADirectoryError``
(``vfs.NotADirectory``), as the kernel says; anything else dvfs refuses,
``vfs.DvfsError`` with one line saying what to do. Warnings the command line prints
(an unreadable file skipped, say) are issued with :mod:`warnings` as
:class:`DvfsWarning`.
"""

from __future__ import annotations

import dataclasses
import io
import operator
import os
import posixpath
import re
import weakref
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any, SupportsIndex

from vfs import api_types, settings
from vfs.api_types import (
    FileChange,
    FileInfo,
    PathArg,
    RevArg,
    VersionInfo,
    file_change,
    file_info,
    message_arg,
    names_dir,
    params_arg,
    repo_path,
    rev_text,
    text_arg,
    time_of,
    url_arg,
)
from vfs.errors import (
    DvfsError,
    NotADirectory,
    NotAFile,
    NotARepository,
    ObjectCorrupt,
    ObjectMissing,
    PathNotFound,
    RemoteError,
    RevisionNotFound,
    UsageError,
    error_kind,
    from_kind,
)
from vfs.model import params as version_params
from vfs.model.codec import Entry, Kind
from vfs.mount.launch import hold_mirror, mirror_dir
from vfs.ops import browse, sync, workflow
from vfs.ops.commit import commit as commit_staged
from vfs.ops.commit import committable
from vfs.ops.store_limit import keep_within_max_size
from vfs.quoting import quote_name
from vfs.remote.config import Meter, RemoteSpec, connect, default_remote, get_remote
from vfs.remote.layout import FORMAT_KEY, PACKS, pack_key
from vfs.remote.read import OtherSource, RemoteChunks, open_meta, repository_chunks
from vfs.remote.reader import RemoteRepo, mend_hint, repository_at
from vfs.repo.record import tag_free
from vfs.repo.refs import check_ref_name
from vfs.repo.repository import Repository
from vfs.store.reader import ChunkedFile, check_mode, open_chunks
from vfs.worktree.pools import Workers

MAX_LINKS = 40  # links followed to open one path, as the kernel allows
JOBS = 8  # requests to a remote at once
_FULL_ID = re.compile(r"[0-9a-f]{64}")  # a version's whole id, as a VersionInfo gives it
_MODE_LIKE = re.compile(r"[rwaxbt+]{1,3}")  # what a mode passed where the revision goes looks like


def _warn(message: str) -> None:
    api_types.warn(message)


class Repo:
    """A dvfs repository on this machine, or a remote read without cloning it.

    ``Repo(path)`` opens the repository containing ``path`` (default: the current
    directory), as the command line finds it; ``path`` must exist (``~`` is the
    home), so that a mistyped one is an error, not the repository around it. Use
    :meth:`clone` to make one from a remote, :meth:`remote` to read a remote in place.
    A Repo can be used as a context manager; it holds no repository lock between calls.
    A remote's Repo keeps its mirror (versions and trees) from ``dvfs cache clean``
    until it is closed.

    Example::

        repo = vfs.Repo("/data/cats")
        repo.ls("v2", "images")[:3]
    """

    def __init__(self, path: PathArg = ".") -> None:
        text = os.fspath(path)
        if "://" in text:
            raise UsageError(
                f"{text} is a URL: use vfs.Repo.remote(url) or vfs.Repo.clone(url, dir)"
            )
        text = os.path.expanduser(text)  # as clone and remote take a home's ~
        if not os.path.lexists(text):  # not the repository around a typo's parent
            raise NotARepository(
                f"{quote_name(text)} does not exist: give a repository's directory "
                "(or a directory or file inside one)"
            )
        try:
            self._repo = Repository.find(Path(text))
        except NotARepository:
            where = Path(text)
            if (where / FORMAT_KEY).is_file() and (where / PACKS).is_dir():
                url = "file://" + os.path.abspath(text)
                raise NotARepository(
                    f"{text} is a remote (as `dvfs push` writes one), not a repository: "
                    f"read it with vfs.Repo.remote({text!r}) (dvfs://: repo={url!r}), "
                    "or clone it"
                ) from None
            raise
        self._repo.refs.warn = _warn  # (a branch that hides a tag of its name, say)
        self._spec: RemoteSpec | None = None  # set for Repo.remote
        self._meter: Meter | None = None
        self._chunks: RemoteChunks | None = None
        self._fallback_known = False
        self._jobs = JOBS
        self._cache_dir: PathArg | None = None  # Repo.remote's cache_dir
        self._held: weakref.finalize[[int], Repo] | None = None  # a remote's mirror lock

    # making ------------------------------------------------------------------------

    @classmethod
    def clone(
        cls, url: PathArg, directory: PathArg, *, rev: RevArg = None,
        endpoint_url: str | None = None, no_checkout: bool = False, yes: bool = False,
        jobs: int = JOBS,
    ) -> Repo:  # fmt: skip
        """Make a new repository from the remote at ``url`` (a URL, or a directory as
        text or a ``pathlib.Path``) in ``directory``, as ``dvfs clone`` does, and open it.

        ``no_checkout``: fetch the versions only; files are then read from the remote
        on demand. ``yes``: check out even a version that would expand far beyond its
        distinct data (see ``dvfs clone --help``).

        Example::

            repo = vfs.Repo.clone("s3://bucket/cats", "cats", endpoint_url="http://minio:9000")
        """
        with Workers(settings.threads()) as w:
            repo, transfer, _, report = sync.clone(
                url_arg(url), Path(os.fspath(directory)), w,
                rev=None if rev is None else rev_text(rev), no_checkout=no_checkout,
                endpoint_url=endpoint_url, jobs=jobs, yes=yes,
            )  # fmt: skip
        for line in transfer.warnings:
            _warn(line)
        for path, exc in sorted(report.failed.items()) if report is not None else ():
            _warn(f"{os.fsdecode(path)} is not checked out: {exc}")
        return cls(repo.root)

    @classmethod
    def remote(
        cls, url: PathArg, *, endpoint_url: str | None = None, cache_dir: PathArg | None = None,
        jobs: int = JOBS,
    ) -> Repo:  # fmt: skip
        """The remote at ``url`` (``s3://bucket/prefix``, ``file:///path`` or a
        directory, as text or a ``pathlib.Path``), read without cloning: versions and
        trees are fetched now (only what is new since the last time), file chunks when
        read. Read-only.

        Example::

            cats = vfs.Repo.remote("s3://bucket/cats", endpoint_url="http://minio:9000")
            cats.versions()[0].message
        """
        url = url_arg(url)
        if "://" not in url:  # a directory remote, as `dvfs remote add` keeps it (~: a home)
            url = os.path.abspath(os.path.expanduser(url))
        where = repository_at(url)
        if where is not None:
            raise UsageError(
                f"{url} is a repository, not a remote (as `dvfs push` writes one): open it "
                f"with vfs.Repo({str(where)!r})"
            )
        spec = RemoteSpec("origin", url, endpoint_url)
        meter = connect(spec, jobs)
        backend = RemoteRepo(meter, None)
        base = Path(os.fspath(cache_dir)) if cache_dir is not None else mirror_dir("api", url)
        self = cls.__new__(cls)
        self._held = weakref.finalize(self, os.close, hold_mirror(base))
        try:
            try:
                self._repo = open_meta(base / "meta", spec, backend)
            except OtherSource as exc:
                if cache_dir is None:
                    raise
                raise OtherSource(
                    f"{exc}: give each remote a cache_dir of its own (without one, each "
                    "gets its own in the user cache)"
                ) from None
            self._spec = spec
            self._meter = meter
            self._chunks = RemoteChunks(lambda: backend)
            self._fallback_known = True
            self._jobs = jobs
            self._cache_dir = cache_dir
            self.refresh()
        except BaseException:
            self._held()
            raise
        return self

    def refresh(self) -> None:
        """A remote's branches, tags and versions as they are now (local: nothing to do)."""
        if self._spec is None or self._meter is None or self._chunks is None:
            return
        repo = self._repo
        with repo.locked():
            got = sync.mirror_locked(repo, self._spec, self._meter, self._jobs)
        self._chunks.set_index(got.index)
        for line in got.transfer.warnings:
            _warn(line)

    def close(self) -> None:
        """Close the files the Repo holds open (its store's packs: a program opening
        repository after repository would run out of descriptors) and let go of a
        remote's mirror, so that ``dvfs cache clean --all`` may remove it (also done
        when the Repo is garbage collected). A local Repo used again opens them again."""
        try:
            self._repo.close()
        finally:
            if self._held is not None:
                self._held()

    def _close_idle(self) -> None:
        """Close the packs' descriptors no read holds now, keeping everything else
        open (``vfs.filesystem``, whose filesystems live as long as their users keep
        them, between reads)."""
        self._repo.close_idle()

    def __enter__(self) -> Repo:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        """How to make this Repo again: ``vfs.Repo(root)`` or ``vfs.Repo.remote(url)``."""
        if self._spec is not None:
            return f"vfs.Repo.remote({self._spec.url!r})"
        return f"vfs.Repo({str(self._repo.root)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        """A Repo pickles as where it reads, for other processes (multiprocessing's
        spawn, a DataLoader's workers): a repository by its root, a remote by its URL
        and options (unpickled, it is opened again, as :meth:`remote` opens it)."""
        if self._spec is None:
            return (Repo, (str(self._repo.root),))
        return (_remote, (self._spec.url, self._spec.endpoint_url, self._cache_dir, self._jobs))

    def _options(self) -> dict[str, str]:
        """Where this Repo reads, as text options that open it again from any directory:
        ``repo`` (a root, or a remote's URL), and a remote's ``endpoint_url`` and
        ``cache_dir`` when it has them (``vfs.filesystem``'s JSON form)."""
        if self._spec is None:
            return {"repo": str(self._repo.root)}
        out = {"repo": self._spec.url}
        if self._spec.endpoint_url is not None:
            out["endpoint_url"] = self._spec.endpoint_url
        if self._cache_dir is not None:
            out["cache_dir"] = os.path.abspath(self._cache_dir)
        return out

    # what it is ----------------------------------------------------------------------

    @property
    def root(self) -> Path | None:
        """The repository's directory (None for a remote read in place)."""
        return None if self._spec is not None else self._repo.root

    @property
    def url(self) -> str | None:
        """The remote's URL for :meth:`remote`, else None."""
        return self._spec.url if self._spec is not None else None

    @property
    def requests(self) -> int:
        """Requests made to the remote so far (:meth:`remote` only; else 0)."""
        return self._meter.requests if self._meter is not None else 0

    @property
    def repository(self) -> Repository:
        """The underlying :class:`vfs.repo.repository.Repository` (the library's lower layer)."""
        return self._repo

    # versions ----------------------------------------------------------------------

    def versions(
        self, rev: RevArg = None, *, limit: int | None = None,
        paths: PathArg | Sequence[PathArg] = (),
    ) -> list[VersionInfo]:  # fmt: skip
        """Versions from ``rev`` (default HEAD) back along first parents, newest first,
        as ``dvfs log``; with ``paths``, only those that changed something there.

        Example::

            [v.version for v in repo.versions(limit=3)]   # ['v7', 'v6', 'v5']
        """
        if limit is not None:
            limit = _count(limit, "limit")
            if limit < 0:
                raise UsageError(f"limit={limit}: give 0 or more (None for every version)")
        if rev is None and self._repo.history.head_id() is None:
            return []
        named = None if rev is None else rev_text(rev)
        wanted = [repo_path(p) for p in _each(paths)]
        try:
            rows = browse.log(self._repo, named, limit, wanted)
        except RevisionNotFound as exc:
            if named is None or wanted:
                raise
            raise self._hinted(exc, named, f"repo.versions(paths={named!r})") from None
        return [self._version(row) for row in rows]

    def show(self, rev: RevArg = "HEAD", *, files: bool = True) -> VersionInfo:
        """One version with everything ``dvfs show --format json`` gives: what changed
        since its parent, its largest directories and (``files``) every file.

        Example::

            repo.show("v3").files["data/train.csv"]   # {'hash': ..., 'size': ..., 'added': 'v2'}
        """
        data = browse.show(self._repo, rev_text(rev), files=files)
        refs = browse.decorations(self._repo).get(bytes.fromhex(data["id"]), {})
        return self._version(
            {**data, "tags": refs.get("tags", []), "branches": refs.get("branches", [])},
            json=data,
        )

    def _version(self, row: dict[str, Any], json: dict[str, Any] | None = None) -> VersionInfo:
        oid = bytes.fromhex(row["id"])
        v = self._repo.history.version(oid)
        return VersionInfo(
            number=v.number, id=row["id"], time=time_of(v.time_ns), author=row["author"],
            message=row["message"], params=row["parameters"], tags=tuple(row["tags"]),
            branches=tuple(row["branches"]), parents=tuple(p.hex() for p in v.parents),
            git_commit=row["git_commit"], git_dirty=row["git_dirty"], file_count=v.files,
            bytes=v.bytes, changes=row.get("changes"), top_directories=row.get("top_directories"),
            files=row.get("files"), _json=json if json is not None else row,
        )  # fmt: skip

    # trees ---------------------------------------------------------------------------

    def ls(self, rev: RevArg = "HEAD", path: PathArg = "") -> list[FileInfo]:
        """The entries of directory ``path`` of ``rev`` in name order (one entry if it
        names a file), as ``dvfs ls``.

        Example::

            [f.name for f in repo.ls("v2", "data")]   # ['labels.csv', 'train']
        """
        rel, rev, real = self._listing(path, rev, "ls")
        _, listed = browse.lookup(self._repo, rev, real)
        if listed.kind != Kind.DIR:  # (told by its kind: a directory a may hold an a)
            return [file_info(rel, listed)]
        prefix = rel + b"/" if rel else b""
        return [file_info(prefix + n, e) for n, e in browse.ls_entries(self._repo, rev, real)]

    def walk(self, rev: RevArg = "HEAD", path: PathArg = "") -> Iterator[FileInfo]:
        """Every file and link at or below ``path`` of ``rev``, depth first in name
        order, as ``dvfs ls -r``; read as it goes (a tree is never held whole).

        Example::

            sum(f.size for f in repo.walk("v2", "data"))
        """
        rel, rev, real = self._listing(path, rev, "walk")
        for p, e in browse.ls_entries(self._repo, rev, real, recursive=True):
            below = p[len(real) :].lstrip(b"/") if real else p
            yield file_info(rel + b"/" + below if rel and below else rel or below, e)

    def _listing(self, path: PathArg, rev: RevArg, call: str) -> tuple[bytes, str, bytes]:
        """What ``ls`` and ``walk`` list: the path as given, the revision, and the path
        listed (a link's target); a revision that is no version but names the path a
        lone argument meant gets the hint to call ``repo.CALL(path=...)``."""
        rel, text = repo_path(path), rev_text(rev)
        try:
            if names_dir(path):
                self._directory(rel, text)
            return rel, text, self._listed(text, rel)
        except RevisionNotFound as exc:
            if rel:
                raise
            raise self._hinted(exc, text, f"repo.{call}(path={text!r})") from None

    def info(self, path: PathArg, rev: RevArg = "HEAD") -> FileInfo:
        """The entry at ``path`` of ``rev`` (a link is not followed).

        Example::

            repo.info("data/train.csv", "v3").size   # its bytes; .hash, .mtime, .type
        """
        rel, rev = repo_path(path), rev_text(rev)
        if names_dir(path):
            self._directory(rel, rev)
        _, _, e = self._lookup(rev, rel)
        return file_info(rel, e)

    def _lookup(self, rev: str, rel: bytes) -> tuple[bytes, bytes, Entry]:
        """(the version, the path, its entry) of ``rel`` in ``rev``, a link met before its
        last name followed as the kernel follows it (a link named last is not): the
        path is then the one the links lead to. PathNotFound naming ``rel`` else (and
        a version given by its whole id, a VersionInfo, by its first ten digits)."""
        try:
            return self._find(rev, rel)
        except PathNotFound as exc:
            if not _FULL_ID.fullmatch(rev):
                raise
            raise PathNotFound(str(exc).replace(f"({rev})", f"({rev[:10]})")) from None

    def _find(self, rev: str, rel: bytes) -> tuple[bytes, bytes, Entry]:
        """:meth:`_lookup`, a version given by its id named by it whole."""
        try:
            oid, e = browse.lookup(self._repo, rev, rel)
            return oid, rel, e
        except PathNotFound:
            hist = self._repo.history
            oid = hist.resolve(rev)
            tree = hist.version(oid).tree
            parts, followed = rel.split(b"/"), 0
            i = 0
            while i < len(parts) - 1:
                here = b"/".join(parts[: i + 1])
                found = hist.lookup(tree, here)
                if found is None or found.kind != Kind.SYMLINK:
                    if found is None or found.kind != Kind.DIR:
                        raise
                    i += 1
                    continue
                followed += 1
                to = posixpath.normpath(posixpath.join(posixpath.dirname(here), found.target))
                out = found.target.startswith(b"/") or to == b".." or to.startswith(b"../")
                if out or followed > MAX_LINKS:
                    raise
                parts, i = [*(to.split(b"/") if to != b"." else []), *parts[i + 1 :]], 0
            real = b"/".join(parts)
            if not followed or real == rel:
                raise
            there = hist.lookup(tree, real) if real else hist.version(oid).root_entry()
            if there is None:
                raise PathNotFound(
                    f"{quote_name(rel)} does not exist in {hist.label(oid)}: its links lead "
                    f"to {quote_name(real)}, which does not"
                ) from None
            return oid, real, there

    def _real_dir(self, rev: str, rel: bytes) -> bytes | None:
        """The directory of ``rev`` that ``rel`` is, through every link on the way and a
        link named last (``b""``: the root); None if it is no directory."""
        try:
            oid, real, e = self._lookup(rev, rel)
            to, found = self._follow(oid, real, e)
        except PathNotFound:
            return None
        return to if found.kind == Kind.DIR else None

    def _listed(self, rev: str, rel: bytes) -> bytes:
        """The directory ``ls`` and ``walk`` of ``rel`` list: ``rel``'s own path, or the
        directory a link there leads to (as ``ls`` of a link to a directory lists it)."""
        oid, real, e = self._lookup(rev, rel)
        if e.kind != Kind.SYMLINK:
            return real
        try:
            to, found = self._follow(oid, real, e)
        except PathNotFound:
            return real
        return to if found.kind == Kind.DIR else real

    def _directory(self, rel: bytes, rev: str) -> None:
        """NotADirectory unless ``rel`` is a directory of ``rev`` (or a link)."""
        oid, _, e = self._lookup(rev, rel)
        if e.kind == Kind.FILE:
            raise NotADirectory(
                f"{quote_name(rel)}/: {quote_name(rel)} is a file in "
                f"{self._repo.history.label(oid)}, not a directory"
            )

    def diff(
        self, a: RevArg = None, b: RevArg = None, *,
        paths: PathArg | Sequence[PathArg] = (),
    ) -> list[FileChange]:  # fmt: skip
        """What changed, as ``dvfs diff``: no revision, HEAD against the working tree;
        ``a``, that version against the working tree; ``a`` and ``b``, two versions.
        Each FileChange says what ``dvfs diff --json`` says of the path (its permission
        bits as ``old_mode``/``new_mode`` when they changed, ``old_kind`` when a file
        became a link or the reverse).

        Example::

            [(c.status, c.path) for c in repo.diff("v1", "v2")]
        """
        if a is None and b is not None:
            raise UsageError("diff(a, b): give the first version as well")
        revs = [rev_text(r) for r in (a, b) if r is not None]
        if self._spec is not None and len(revs) < 2:
            raise UsageError(f"{self._spec.url} has no working tree: compare two versions")
        with Workers(settings.threads()) as w:
            wanted = [repo_path(p) for p in _each(paths)]
            try:
                changes = browse.diff(self._repo, revs, w, _warn, None, wanted)
            except RevisionNotFound as exc:
                if len(revs) != 1 or wanted:
                    raise
                raise self._hinted(exc, revs[0], f"repo.diff(paths={revs[0]!r})") from None
        return [file_change(c) for c in changes]

    def _hinted(self, exc: RevisionNotFound, rev: str, call: str) -> RevisionNotFound:
        """``exc``, or, when the revision it could not find is a path of HEAD
        (``repo.ls("data")`` for the directory, as ``dvfs ls data`` lists it), the
        same error saying the first argument is the revision and how to give a path."""
        if exc.rev != rev or exc.hint:
            return exc
        try:
            self._lookup("HEAD", repo_path(rev))
        except DvfsError:
            return exc
        hint = f"the first argument is the revision, and {rev} is a path: {call}"
        return RevisionNotFound(rev, exc.candidates, hint=hint)

    # reading -------------------------------------------------------------------------

    def open(
        self, path: PathArg, rev: RevArg = "HEAD", mode: str = "rb", *,
        encoding: str | None = None, errors: str | None = None, newline: str | None = None,
    ) -> IO[Any]:  # fmt: skip
        """File ``path`` of ``rev``, read-only: binary (``"rb"``) or text (``"r"``,
        UTF-8 unless ``encoding`` says otherwise). Seekable; reads fetch only the
        chunks they touch; a binary file tells its ``size``. A symbolic link to a file
        of the same version is followed.

        Example::

            with repo.open("data/train.csv", rev="v3", mode="r") as f:
                for line in f:
                    ...
        """
        return self._open(path, rev, mode, encoding, errors, newline)

    def _open(
        self, path: PathArg, rev: RevArg, mode: str, encoding: str | None, errors: str | None,
        newline: str | None, on_close: Callable[[], None] | None = None,
    ) -> IO[Any]:  # fmt: skip
        """:meth:`open`, calling ``on_close`` once the file is closed."""
        check_mode(mode)  # before anything is read
        rev = rev_text(rev)
        try:
            raw = self._raw(path, rev, on_close)
        except RevisionNotFound as exc:
            if not _MODE_LIKE.fullmatch(rev):
                raise
            hint = f"the second argument is the revision: give a mode as mode={rev!r}"
            raise RevisionNotFound(rev, exc.candidates, hint=hint) from None
        return open_chunks(raw, mode, encoding, errors, newline)

    def read_bytes(self, path: PathArg, rev: RevArg = "HEAD") -> bytes:
        """The whole content of file ``path`` of ``rev``.

        Example::

            labels = repo.read_bytes("data/labels.csv", rev="v2")
        """
        with self._raw(path, rev) as f:
            return f.readall()

    def read_text(
        self, path: PathArg, rev: RevArg = "HEAD", encoding: str = "utf-8",
        errors: str = "strict", newline: str | None = None,
    ) -> str:  # fmt: skip
        """The whole content of file ``path`` of ``rev``, decoded, with ``\\r\\n`` and
        ``\\r`` read as ``\\n`` unless ``newline`` says otherwise: as ``open(..., "r")``,
        ``pathlib.Path.read_text`` and ``repo.open(path, "r")`` read text.

        Example::

            rows = repo.read_text("data/labels.csv", rev="v2").splitlines()
        """
        data = self.read_bytes(path, rev)
        with io.TextIOWrapper(io.BytesIO(data), encoding, errors, newline) as text:
            return text.read()

    def read_range(
        self, path: PathArg, start: SupportsIndex, end: SupportsIndex, rev: RevArg = "HEAD"
    ) -> bytes:
        """Bytes [start, end) of file ``path`` of ``rev``: only the chunks they lie in
        are read. A negative offset counts from the end, as in a slice (and fsspec's
        ``cat_file``): ``read_range(path, -100, size)`` is the last 100 bytes.

        Example::

            header = repo.read_range("data/train.parquet", 0, 4, rev="v3")   # b"PAR1"
        """
        offsets = []
        for offset in (start, end):
            try:
                if isinstance(offset, bool):
                    raise TypeError
                offsets.append(operator.index(offset))  # an int, or numpy's
            except TypeError:
                raise TypeError(
                    f"start and end are byte offsets (int), not {type(offset).__name__}"
                ) from None
        with self._raw(path, rev) as f:
            lo, hi, _ = slice(*offsets).indices(f.size)
            return f.pread(lo, hi)

    def file(self, path: PathArg, rev: RevArg = "HEAD") -> ChunkedFile:
        """The raw file object behind :meth:`open` (unbuffered; ``size``, ``pread``)."""
        return self._raw(path, rev)

    def target(self, path: PathArg, rev: RevArg = "HEAD") -> FileInfo | None:
        """The file the symbolic link at ``path`` of ``rev`` leads to, as :meth:`open`
        follows it (named by the file's own path); None if it leads to a directory,
        out of the repository or nowhere. ``path`` itself when it is a file.

        Example::

            repo.target("data/latest.csv", "v3").path   # 'data/2024-06.csv'
        """
        oid, real, e = self._lookup(rev_text(rev), repo_path(path))
        try:
            rel, found = self._follow(oid, real, e)
        except PathNotFound:
            return None
        return file_info(rel, found) if found.kind == Kind.FILE else None

    def _follow(self, oid: bytes, rel: bytes, e: Entry) -> tuple[bytes, Entry]:
        """The path and entry that ``e``, at ``rel`` of version ``oid``, leads to through
        symbolic links (PathNotFound if out of the version, nowhere, or too many)."""
        hist = self._repo.history
        label = hist.label(oid)
        start = rel
        for _ in range(MAX_LINKS):
            if e.kind != Kind.SYMLINK:
                break
            target = posixpath.normpath(posixpath.join(posixpath.dirname(rel), e.target))
            if e.target.startswith(b"/") or target == b".." or target.startswith(b"../"):
                raise PathNotFound(
                    f"{quote_name(rel)} in {label} is a link to {quote_name(e.target)}, "
                    "outside the repository"
                )
            try:  # through the links on the way (`dl/f.txt`, dl -> d), as the kernel goes
                _, to, found = self._find(oid.hex(), target if target != b"." else b"")
            except PathNotFound:
                raise PathNotFound(
                    f"{quote_name(rel)} in {label} is a link to {quote_name(e.target)}, "
                    "which does not exist there"
                ) from None
            rel, e = to, found
        else:
            raise PathNotFound(f"{quote_name(start)} in {label}: too many links")
        return rel, e

    def _raw(
        self, path: PathArg, rev: RevArg, on_close: Callable[[], None] | None = None
    ) -> ChunkedFile:
        oid, real, e = self._lookup(rev_text(rev), repo_path(path))
        rel, e = self._follow(oid, real, e)
        label = self._repo.history.label(oid)
        if e.kind == Kind.DIR:
            raise NotAFile(f"{quote_name(rel) if rel else '.'} is a directory in {label}")
        if names_dir(path):
            raise NotADirectory(
                f"{quote_name(repo_path(path))}/: {quote_name(rel)} is a file in {label}, "
                "not a directory"
            )
        name = f"{label}:{os.fsdecode(rel)}"
        return ChunkedFile(
            name, e.chunks, lambda oid: self._chunk_of(name, oid), on_close=on_close,
            digest=e.digest,
        )  # fmt: skip

    def _chunk_of(self, name: str, oid: bytes) -> bytes:
        """:meth:`_get`, a remote's failure saying which file needed the chunk; a chunk
        the remote holds damaged is named there (`dvfs fsck` here would find nothing),
        and one it lacks too (no `dvfs pull` brings it)."""
        try:
            return self._get(oid)
        except ObjectMissing as exc:
            if self._chunks is None:
                raise  # asked of the local store alone: its message says what to do
            if self._spec is not None:
                how = (
                    f"that {self._where()} lacks (object {oid.hex()}), though its versions name it"
                )
            else:
                how = f"neither in the local store nor on {self._where()} (object {oid.hex()})"
            raise from_kind(
                error_kind(exc),
                f"reading {name} needs data {how}: push it from a repository that has it",
            ) from None
        except RemoteError as exc:
            where = self._where()
            raise from_kind(
                error_kind(exc), f"reading {name} needs data from {where}, which failed: {exc}"
            ) from None
        except ObjectCorrupt as exc:
            at = self._chunks.where(oid) if self._chunks is not None else None
            if at is None or (self._spec is None and self._repo.store.has(oid)):
                raise  # the local store's copy: `dvfs fsck` finds it
            how = f"object {oid.hex()} is corrupt ({exc.detail})"  # fsck here cannot see it
            raise from_kind(
                error_kind(exc),
                f"reading {name} needs data from {self._where()}, whose {how} in pack "
                f"{at[0][:12]}: nothing of it was kept; {mend_hint(pack_key(at[0]))}",
            ) from None

    def _where(self) -> str:
        """The remote chunks come from, for a message."""
        return self._spec.url if self._spec else f"remote {default_remote(self._repo)}"

    def _get(self, oid: bytes) -> bytes:
        """A chunk's verified bytes: the local store, else the remote."""
        if self._spec is None:
            try:
                return self._repo.store.get(oid)
            except ObjectMissing:
                if self._fallback() is None:
                    raise
        chunks = self._fallback()
        assert chunks is not None
        return chunks.fetch(oid)

    def _fallback(self) -> RemoteChunks | None:
        """Where chunks missing locally come from: the default remote, if there is one,
        then what it lacks or cannot give from each other remote whose index, as last
        read, lists it (as for commands: ``vfs.remote.read.repository_chunks``).

        Threads may read at once: the answer is known only once it is set (a thread
        that finds it unknown works it out too, rather than taking "none" meanwhile)."""
        if not self._fallback_known:
            self._chunks = repository_chunks(self._repo, JOBS)
            self._fallback_known = True
        return self._chunks

    # changing ------------------------------------------------------------------------

    def add(self, paths: PathArg | Iterable[PathArg], *, force: bool = False) -> workflow.AddReport:
        """Stage files or directories, as ``dvfs add`` (paths from the repository's root;
        one path may be given alone, as for ``paths=`` of :meth:`versions` and :meth:`diff`).

        Example::

            repo.add(["data/train.csv", "data/images"])
        """
        root = self._writable()
        named = _each(paths)
        if not named:  # (`dvfs add` without a path is refused too: an empty list from a
            # filter that matched nothing would otherwise look like a success)
            raise UsageError("repo.add() was given no path: name the files to stage")
        # an absolute one stays so; a "/" at the end too (it names a directory, which
        # add checks: a Path, root / p, drops it)
        args = [os.path.join(root, os.fspath(p)) for p in named]
        with Workers(settings.threads()) as w:
            report = workflow.add(self._repo, args, w, _warn, force=force)
        keep_within_max_size(self._repo, _warn)  # as after `dvfs add`
        return report

    def commit(
        self, message: str | None, *, params: dict[str, Any] | None = None,
        tag: str | None = None, all: bool = False, amend: bool = False,
    ) -> VersionInfo:  # fmt: skip
        """Record the staged data as a new version, as ``dvfs commit`` (``all``: first
        stage every modified or deleted tracked file, as ``-a``; ``amend``: replace the
        branch's latest version, as ``--amend``, keeping its message if ``message`` is
        None and updating its parameters with ``params``).

        Example::

            v = repo.commit("run 7", params={"lr": 3e-4, "layers": [64, 64]}, tag="run7")
            v = repo.commit(None, params={"note": "rerun"}, amend=True)
        """
        self._writable()
        if (message is not None or not amend) and not message_arg(message).strip():
            raise UsageError("the commit message is empty: repo.commit(message) says what changed")
        recorded = params_arg(params)
        # what the commit would refuse, refused before `all` stages anything
        if message is not None:
            version_params.message(message)
        version_params.check(recorded)
        if tag is not None:
            check_ref_name(text_arg(tag, "tag"), "tag")
            tag_free(self._repo, tag)
        if all:
            committable(self._repo, amend)
            with Workers(settings.threads()) as w:
                workflow.stage_tracked_changes(self._repo, w, _warn)
        made = commit_staged(self._repo, message, recorded, tag, _warn, amend=amend)
        keep_within_max_size(self._repo, _warn)  # as after `dvfs commit`
        return self.versions(made.oid.hex(), limit=1)[0]

    # sharing ------------------------------------------------------------------------

    def push(
        self, branches: str | Iterable[str] | None = None, *, remote: str | None = None,
        all: bool = False, tags: bool = False, force: bool = False, jobs: int = JOBS,
    ) -> sync.Transfer:  # fmt: skip
        """Send branches (default: the current one) to a remote (default: the default
        one), as ``dvfs push``: what the remote lacks is uploaded, then each remote
        branch moves by a conditional write. ``force`` as ``dvfs push --force``.

        RefConflict if a remote branch has versions this repository lacks (pull
        first), or holds a tag of ours at another version (the rest is pushed).

        Example::

            run_version = repo.commit("run 7", tag="run7")
            repo.push(tags=True)
        """
        self._writable()
        names = [] if branches is None else [text_arg(b, "branch") for b in _names(branches)]
        spec = self._remote_spec(remote)
        with Workers(settings.threads()) as w:
            t = sync.push(self._repo, spec, names, w, all_branches=all, tags=tags,
                          jobs=jobs, force=force)  # fmt: skip
        if t.refused:
            raise sync.refused_tags_error(t.refused)
        return t

    def fetch(
        self, remote: str | None = None, *, prune: bool = False, jobs: int = JOBS
    ) -> sync.FetchResult:
        """Fetch a remote's refs, versions and trees (no file data), as ``dvfs fetch``:
        its branches become ``REMOTE/BRANCH`` here (``prune``: those it deleted go).
        The result names them (``heads``, ``tags``, ``gone``); its ``index`` is left
        empty.

        Example::

            got = repo.fetch()
            repo.versions("origin/main", limit=1)
        """
        self._writable()
        spec = self._remote_spec(remote)
        got = sync.fetch(self._repo, spec, jobs, prune=prune)
        for line in got.transfer.warnings:
            _warn(line)
        return dataclasses.replace(got, index={})  # (the remote's whole index: not kept)

    def pull(
        self, rev: RevArg = None, paths: PathArg | Iterable[PathArg] = (), *,
        remote: str | None = None, force: bool = False, merge: bool = False,
        yes: bool = False, jobs: int = JOBS,
    ) -> sync.PullResult:  # fmt: skip
        """Fetch, download what ``rev`` (default: the remote's branch) or its ``paths``
        need, and bring the working tree there, as ``dvfs pull`` (``merge``: merge the
        remote's branch if the two diverged; the result's ``conflicts`` says if the
        merge stopped). Files that could not be written are warned about.

        Example::

            repo.pull()
            repo.pull("v3", ["data/train"])
        """
        root = self._writable()
        named = None if rev is None else rev_text(rev)  # a version's number too, as for reads
        args = [os.path.join(root, os.fspath(p)) for p in _each(paths)]  # (as add's)
        spec = self._remote_spec(remote)
        with Workers(settings.threads()) as w:
            r = sync.pull(self._repo, spec, named, args, w, jobs=jobs, force=force, yes=yes,
                          merge=merge)  # fmt: skip
        keep_within_max_size(self._repo, _warn)  # as after `dvfs pull`
        for line in r.transfer.warnings:
            _warn(line)
        for path, exc in sorted(r.checkout.failed.items()) if r.checkout is not None else ():
            _warn(f"{os.fsdecode(path)} is not checked out: {exc}")
        return r

    def _remote_spec(self, remote: str | None) -> RemoteSpec:
        """This repository's remote ``remote`` (None: the default one)."""
        return get_remote(self._repo, None if remote is None else text_arg(remote, "remote"))

    def _writable(self) -> Path:
        if self._spec is not None:
            raise UsageError(
                f"{self._spec.url} is read in place and read-only: clone it "
                "(vfs.Repo.clone) to add and commit"
            )
        return self._repo.root


def _count(value: object, what: str) -> int:
    """``value`` as an int (numpy's too), else TypeError naming ``what``: never a
    boolean or a float, which would be taken as 1 or cut."""
    if not isinstance(value, bool):
        try:
            return operator.index(value)  # type: ignore[arg-type]
        except TypeError:
            pass
    raise TypeError(f"{what} is a whole number (int), not {type(value).__name__}")


def _names(names: str | Iterable[str]) -> list[str]:
    """Branch names: one given alone is one name, not its characters."""
    if isinstance(names, str):
        return [names]
    if isinstance(names, bytes) or not isinstance(names, Iterable):
        raise TypeError(f"branches is a name or a list of names, not {type(names).__name__}")
    return list(names)


def _each(paths: PathArg | Iterable[PathArg]) -> list[PathArg]:
    """``paths`` as a list: one path given alone is one path, not its characters.

    An empty path is refused, as the command line refuses an empty argument: from an
    unset variable, it would name the whole repository (``add("")`` staged it all)."""
    if isinstance(paths, (str, os.PathLike)):
        paths = [paths]
    elif isinstance(paths, bytes):
        raise TypeError("give paths as text (os.fsdecode), not bytes")
    elif not isinstance(paths, Iterable):
        raise TypeError(f"paths is a path or a list of paths, not {type(paths).__name__}")
    given = list(paths)
    for p in given:
        if not isinstance(p, (str, bytes, os.PathLike)):
            raise TypeError(f"a path is text or a pathlib.Path, not {type(p).__name__}")
        text = os.fspath(p)
        if not isinstance(text, str):  # bytes, or a PathLike giving bytes
            raise TypeError("give paths as text (os.fsdecode), not bytes")
        if not text:
            raise UsageError(
                "an empty path (an unset variable?): nothing was done; give '.' for the "
                "whole repository"
            )
        if "\0" in text:
            raise UsageError(f"{quote_name(text)} holds a NUL character, which no file name can")
    return given


def _remote(url: str, endpoint_url: str | None, cache_dir: PathArg | None, jobs: int) -> Repo:
    """A remote's Repo unpickled (:meth:`Repo.__reduce__`)."""
    return Repo.remote(url, endpoint_url=endpoint_url, cache_dir=cache_dir, jobs=jobs)


def _repo(repo: Repo | PathArg) -> Repo:
    if isinstance(repo, Repo):
        return repo
    text = os.fspath(repo)
    return Repo.remote(text) if "://" in text else Repo(text)


@contextmanager
def _using(repo: Repo | PathArg) -> Iterator[Repo]:
    """``repo`` as a Repo; one opened from a directory or a URL is closed afterwards (its
    packs' descriptors, a remote's mirror lock), not left for the garbage collector."""
    r = _repo(repo)
    try:
        yield r
    finally:
        if r is not repo:
            r.close()


def open(
    path: PathArg, rev: RevArg = "HEAD", repo: Repo | PathArg = ".", mode: str = "rb", *,
    encoding: str | None = None, errors: str | None = None, newline: str | None = None,
) -> IO[Any]:  # fmt: skip
    """File ``path`` of version ``rev`` of ``repo`` (a :class:`Repo`, a directory, or
    a remote URL read in place), as :meth:`Repo.open`.

    Example::

        with vfs.open("data/train.csv", rev="v3", repo=".") as f:
            f.seek(1 << 20)
            block = f.read(4096)
    """
    r = _repo(repo)
    if r is repo:
        return r.open(path, rev, mode, encoding=encoding, errors=errors, newline=newline)
    try:  # the Repo opened for the file is closed with it
        return r._open(path, rev, mode, encoding, errors, newline, on_close=r.close)
    except BaseException:
        r.close()
        raise


def read_bytes(path: PathArg, rev: RevArg = "HEAD", repo: Repo | PathArg = ".") -> bytes:
    """The content of file ``path`` of version ``rev`` of ``repo``.

    Example::

        vfs.read_bytes("data/labels.csv", rev="v2", repo="s3://bucket/cats")
    """
    with _using(repo) as r:
        return r.read_bytes(path, rev)


def read_text(
    path: PathArg, rev: RevArg = "HEAD", repo: Repo | PathArg = ".",
    encoding: str = "utf-8", errors: str = "strict", newline: str | None = None,
) -> str:  # fmt: skip
    """The content of file ``path`` of version ``rev`` of ``repo``, decoded
    (``Repo.read_text``: newlines as ``open(..., "r")`` reads them).

    Example::

        vfs.read_text("data/labels.csv", rev="main", repo=".")
    """
    with _using(repo) as r:
        return r.read_text(path, rev, encoding, errors, newline)
