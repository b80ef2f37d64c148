"""Where a pipeline runs, and the content ids of its paths there.

A pipeline runs in a working tree, found from the current directory upwards: the
nearest directory that is either a repository's root (it holds ``.dvfs``) or the
root of a writable dvfs mount (it holds the hidden ``.versions/.control``). In a
repository, the staging index serves as a cache of content ids (a file whose stat
is unchanged is not read again) and outputs are staged into it; a mount has no
index (its snapshot records the working tree whole), and its repository, when it
mounts a local one, holds the run cache. An experiment runs in a working tree of
its own below ``.dvfs`` (``vfs.pipeline.experiments``).

Every path is a repository path resolved beneath the root, never through a link
(``vfs._os.beneath``); files are read only if regular and within a bound, and written by
renaming a new file over the old one.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import os
import stat as statmod
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from vfs._os.beneath import Walker, read_regular
from vfs.errors import FileChanged, FileUnreadable, FormatError, NotARepository, UsageError
from vfs.model.chunking import Chunker, ChunkerParams
from vfs.model.codec import Kind
from vfs.model.names import VERSIONS_DIR
from vfs.mount.control import CONTROL_LINK
from vfs.pipeline import graph, spec
from vfs.pipeline.content import dir_id, leaf_id
from vfs.pipeline.graph import Dag
from vfs.pipeline.spec import Pipeline
from vfs.pipeline.writing import FILE_NAME as WRITING_FILE
from vfs.quoting import quote_name, quoted
from vfs.repo.gitlink import PIPELINE_FILE, RUNS_FILE
from vfs.repo.refs import Head, Refs
from vfs.repo.repository import DVFS_DIR, Repository
from vfs.repo.stage import Index, Staged
from vfs.store.durable import storage_error, tmp_leaf
from vfs.store.lock import repository_lock
from vfs.worktree.ingest import Hasher
from vfs.worktree.pools import Workers
from vfs.worktree.scan import Found, Warn, scan

if TYPE_CHECKING:  # (imported where used: `dvfs dag` and `stage list` need neither)
    from vfs.model.version_codec import StageRecord
    from vfs.mount.mounts import MountRecord
    from vfs.worktree.ignore import Ignores

_CREATE = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


_GONE = object()  # (a memo's value may be None)


def _quiet(_: str) -> None:
    """Drop a warning."""


@dataclass
class Workspace:
    """A working tree a pipeline runs in (see the module docstring)."""

    root: Path
    repo: Repository | None  # the store, run cache and versions (None: a remote's mount)
    own_index: bool  # the repository's own working tree: outputs are staged in its index
    mount: Path | None = None
    _walker: Walker | None = field(default=None, repr=False)

    @property
    def kind(self) -> str:
        """``repository``, ``mount`` or ``experiment``: for messages."""
        if self.mount is not None:
            return "mount"
        return "repository" if self.own_index else "experiment"

    def walker(self) -> Walker:
        """A walker of the root (kept: one thread uses it, the one driving the pipeline)."""
        if self._walker is None:
            self._walker = Walker(self.root)
        return self._walker

    def close(self) -> None:
        """Let go of the walker's descriptors."""
        if self._walker is not None:
            self._walker.close()
            self._walker = None

    def read(self, rel: bytes, limit: int) -> bytes | None:
        """The bytes of regular file ``rel`` (None if absent); UsageError if it is not one."""
        w = self.walker()
        try:
            fd, leaf = w.parent(rel)
            return read_regular(fd, leaf, limit)
        except OSError as exc:
            if exc.errno in (errno.ENOENT, errno.ENOTDIR):  # not there
                return None
            why = "a symbolic link" if exc.errno == errno.ELOOP else exc.strerror
            raise UsageError(f"{quoted(rel)} cannot be read ({why})") from None

    def write(self, rel: bytes, data: bytes) -> None:
        """Replace file ``rel`` with ``data`` atomically (its directory must exist)."""
        w = self.walker()
        dir_fd, leaf = w.parent(rel)
        tmp = tmp_leaf(leaf)
        try:
            fd = os.open(tmp, _CREATE, 0o644, dir_fd=dir_fd)
            try:
                view = memoryview(data)
                while view:
                    view = view[os.write(fd, view) :]
            finally:
                os.close(fd)
            os.replace(tmp, leaf, src_dir_fd=dir_fd, dst_dir_fd=dir_fd)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp, dir_fd=dir_fd)
            raise storage_error(exc, quoted(rel)) from exc

    def lstat(self, rel: bytes) -> os.stat_result | None:
        """lstat of ``rel`` beneath the root; None if absent (or below a non-directory)."""
        return self.walker().lstat(rel)

    @contextlib.contextmanager
    def exclusive(self) -> Iterator[None]:
        """One pipeline run at a time in this working tree (``LockBusy`` if another runs)."""
        if self.repo is not None and self.own_index:
            path = self.repo.dir / "pipeline.lock"
        elif self.mount is not None:
            from vfs.mount.mounts import pipeline_file  # (only for a mount)

            path = pipeline_file(self.mount, "lock")
        else:
            yield
            return
        with repository_lock(path, wait=0):
            yield

    def writing_list(self) -> Path | None:
        """Where a run lists the outputs being written (``vfs.pipeline.writing``): what
        ``add`` refuses in a repository, and a snapshot in a mount (None: neither)."""
        if self.repo is not None and self.own_index:
            return self.repo.dir / WRITING_FILE
        if self.mount is not None:
            from vfs.mount.mounts import pipeline_file  # (only for a mount)

            return pipeline_file(self.mount, "writing")
        return None

    def chunker(self) -> Chunker:
        """The repository's chunker (content ids do not depend on it: digests are whole)."""
        return self.repo.chunker if self.repo is not None else Chunker(ChunkerParams())


def find(start: Path | None = None, writes: bool = True) -> Workspace:
    """The working tree around ``start`` (default: the current directory). A read-only
    mount is one for commands that only read (``writes`` False: ``lineage``,
    ``compare``, ``dag``...), as its files and its repository's versions can be read;
    for the others it is a UsageError, naming where to run them."""
    try:
        here = (start or Path.cwd()).absolute()
    except FileNotFoundError:
        raise NotARepository("the current directory no longer exists: cd into one") from None
    for d in (here, *here.parents):
        versions = d / VERSIONS_DIR.decode()
        if os.path.lexists(versions) and _mounted(d):
            from vfs.mount.mounts import read_record

            rec = read_record(d)
            if writes and not os.path.lexists(d / CONTROL_LINK):
                raise UsageError(_read_only(d, rec))
            repo = None
            if rec is not None and (Path(rec.source) / DVFS_DIR).is_dir():
                repo = Repository(Path(rec.source))
                repo.refs = BranchRefs(repo.dir, rec.branch)
            return Workspace(d, repo, own_index=False, mount=d)
        if (d / DVFS_DIR).is_dir():
            return Workspace(d, Repository(d), own_index=True)
    raise NotARepository()


class BranchRefs(Refs):
    """The refs of a mounted repository, HEAD read as the branch the mount serves: in
    the mount, ``HEAD``, ``vN`` and the versions compared are that branch's, as its
    ``.versions`` shows them, wherever the repository's own HEAD is."""

    def __init__(self, dvfs_dir: Path, branch: str) -> None:
        super().__init__(dvfs_dir)
        self.branch = branch

    def head(self) -> Head:
        return Head(self.branch)


def _read_only(mnt: Path, rec: MountRecord | None) -> str:
    """What to say to a pipeline run in the read-only mount ``mnt``: where it can run."""
    where = quote_name(str(mnt))
    if rec is not None and "://" in rec.source:
        return (
            f"{where} is a read-only dvfs mount: a pipeline writes its outputs, so run it in "
            f"a mount of {quote_name(rec.source)} made with --writable, or in a clone of it"
        )
    repo = "the repository" if rec is None else f"the repository ({quote_name(rec.source)})"
    return (
        f"{where} is a read-only dvfs mount: a pipeline writes its outputs, so run it in "
        f"{repo}, or in a mount of it made without --read-only"
    )


def _mounted(d: Path) -> bool:
    """True if ``d`` is a dvfs mount (``vfs.mount.mounts``: imported only when one may be)."""
    from vfs.mount.mounts import is_mounted

    return is_mounted(d)


# ----------------------------------------------------------------------------- content ids


class TreeState:
    """Content ids of the working tree's paths, worked out once each until forgotten.

    Files whose stat matches the staging index take their digest from it; others are
    read (in parallel, nothing stored). Directories are listed as what records them
    would take them: ``dvfs add`` (ignored untracked paths left out), or in a mount its
    snapshot (every file: ignore rules play no part there), so that an output's id is
    that of what the version holds.
    """

    def __init__(self, ws: Workspace, workers: Workers, warn: Warn = _quiet) -> None:
        self.ws = ws
        self.workers = workers
        self.warn = warn
        self._memo: dict[bytes, bytes | None] = {}
        self._known: list[bytes] = []  # its keys, sorted: see forget
        self.index: Index | None = ws.repo.index() if ws.repo and ws.own_index else None

    def reload_index(self) -> None:
        """Read the index again (after it was saved)."""
        if self.ws.repo is not None and self.ws.own_index:
            self.index = self.ws.repo.index()

    def tracked(self) -> list[bytes]:
        """The tracked paths, sorted (none without an index)."""
        return self._tracked()

    def _tracked(self) -> list[bytes]:
        return sorted(self.index.paths()) if self.index is not None else []

    def ignores(self) -> contextlib.AbstractContextManager[Ignores | None]:
        """The ignore rules paths are listed with (None in a mount: see the class)."""
        if self.ws.mount is not None:
            return contextlib.nullcontext()
        from vfs.worktree.ignore import Ignores  # (pathspec: only when paths are looked at

        return Ignores(self.ws.root, self._tracked, self.warn)

    def files_below(
        self, rel: bytes, ign: Ignores | None
    ) -> tuple[os.stat_result | None, list[Found]]:
        """(lstat of ``rel``, the files and links at or below it as ``add`` would stage;
        ``ign`` None: every one)."""
        st = self.ws.lstat(rel)
        if st is None:
            return None, []
        if not statmod.S_ISDIR(st.st_mode):
            ok = statmod.S_ISREG(st.st_mode) or statmod.S_ISLNK(st.st_mode)
            return st, [Found(rel, st)] if ok else []

        if ign is None:
            return st, list(scan(self.ws.root, rel, self.warn))

        def enter(d: bytes) -> bool:
            return not ign.ignored(d, is_dir=True)

        found = scan(self.ws.root, rel, self.warn, enter=enter)
        return st, [f for f in found if not ign.ignored(f.rel)]

    def ignored_outs(self, paths: Iterable[bytes]) -> list[tuple[bytes, str]]:
        """See :func:`ignored_outs` (the index read once)."""
        return ignored_outs(self.ws, paths, self._tracked, self.warn)

    def ids(self, paths: Iterable[bytes]) -> dict[bytes, bytes | None]:
        """The content id of each path (None if it is not there), hashing what it must."""
        want = [p for p in dict.fromkeys(paths) if p not in self._memo]
        if want:
            self._work_out(want)
        return {p: self._memo[p] for p in paths}

    def _work_out(self, paths: list[bytes]) -> None:
        listed: dict[bytes, tuple[os.stat_result | None, list[Found]]] = {}
        with self.ignores() as ign:
            for p in paths:
                listed[p] = self.files_below(p, ign)
        leaf: dict[bytes, tuple[Kind, bytes, bytes]] = {}
        to_hash: list[Found] = []
        index = self.index
        for _, found in listed.values():
            for f in found:
                if f.rel in leaf:
                    continue
                s = index.get(f.rel) if index is not None and index.fresh(f.rel, f.st) else None
                if s is not None:
                    leaf[f.rel] = (s.kind, s.digest, s.target)
                else:
                    to_hash.append(f)
        if to_hash:
            hasher = Hasher(self.ws.root, self.ws.chunker(), None, self.workers)
            unique = list({f.rel: f for f in to_hash}.values())
            try:
                for rel, s in hasher.stage_many(unique):
                    leaf[rel] = (s.kind, s.digest, s.target)
            except (FileChanged, FileUnreadable) as exc:
                raise UsageError(f"{exc}: the pipeline's state is unknown") from None
        for p, (st, found) in listed.items():
            if st is None:
                out = None
            elif not statmod.S_ISDIR(st.st_mode):
                out = leaf_id(*leaf[p]) if p in leaf else None
            else:
                cut = len(p) + 1
                out = dir_id((f.rel[cut:], leaf[f.rel][0], leaf_id(*leaf[f.rel])) for f in found)
            self.remember({p: out})

    @property
    def memo(self) -> Mapping[bytes, bytes | None]:
        """The ids known (None: not there)."""
        return self._memo

    def remember(self, ids: Mapping[bytes, bytes | None]) -> None:
        """Take ``ids`` as the paths' ids (a stage's outputs, as its run recorded them)."""
        for p, i in ids.items():
            if p not in self._memo:
                bisect.insort(self._known, p)
            self._memo[p] = i

    def forget(self, changed: Iterable[bytes]) -> None:
        """Drop what is known of paths at, below or above any of ``changed``.

        Paths above one are its ancestors, looked up by name; paths below it are one run
        of the sorted keys, so that each stage of a long chain costs its own paths, not
        all the chain has remembered (a 1,024-stage repro spent seconds here).
        """
        known = self._known
        for c in changed:
            above = c
            while True:
                if self._memo.pop(above, _GONE) is not _GONE:
                    del known[bisect.bisect_left(known, above)]
                cut = above.rfind(b"/")
                if cut < 0:
                    break
                above = above[:cut]
            slash = c + b"/"
            i = bisect.bisect_left(known, slash)
            j = bisect.bisect_left(known, c + b"0", i)  # ("0" follows "/")
            for p in known[i:j]:
                del self._memo[p]
            del known[i:j]

    def stage_records(self, paths: Iterable[bytes], store: bool) -> dict[bytes, Staged]:
        """Every file and link at or below ``paths``, hashed (chunks stored if ``store``).

        A file whose stat matches the index is taken from it, not read again.
        """
        out: dict[bytes, Staged] = {}
        todo: list[Found] = []
        index = self.index
        with self.ignores() as ign:
            for p in paths:
                for f in self.files_below(p, ign)[1]:
                    s = index.get(f.rel) if index is not None and index.fresh(f.rel, f.st) else None
                    if s is not None:
                        out[f.rel] = s
                    else:
                        todo.append(f)
        if todo:
            where = self.ws.repo.store if store and self.ws.repo is not None else None
            hasher = Hasher(self.ws.root, self.ws.chunker(), where, self.workers)
            out.update(hasher.stage_many(todo))
        return out


def ids_of_records(paths: Iterable[bytes], records: dict[bytes, Staged]) -> dict[bytes, bytes]:
    """The content id of each of ``paths`` from the staged records at and below them."""
    out: dict[bytes, bytes] = {}
    for p in paths:
        s = records.get(p)
        if s is not None:
            out[p] = leaf_id(s.kind, s.digest, s.target)
            continue
        cut = len(p) + 1
        below = p + b"/"
        out[p] = dir_id(
            (r[cut:], x.kind, leaf_id(x.kind, x.digest, x.target))
            for r, x in records.items()
            if r.startswith(below)
        )
    return out


def ignored_outs(
    ws: Workspace,
    paths: Iterable[bytes],
    tracked: Callable[[], Sequence[bytes]] | None = None,
    warn: Warn = _quiet,
) -> list[tuple[bytes, str]]:
    """The outputs among ``paths`` that ignore rules keep out, each with the rule
    (``FILE:LINE:PATTERN``): a directory they keep out whole (none of its files would
    be staged, nor count in its content id) and, in a repository's working tree, an
    untracked file (or a path not made yet) a rule matches, which ``dvfs add`` would
    refuse and ``status`` not show. None in a mount, whose snapshot records every file
    whatever the rules say. ``tracked``: the tracked paths (default: read from the index)."""
    from vfs.worktree.ignore import Ignores

    if ws.mount is not None:
        return []

    def from_index() -> Sequence[bytes]:
        if ws.repo is None or not ws.own_index:
            return []
        return sorted(ws.repo.index().paths())

    out = []
    with Ignores(ws.root, tracked or from_index, warn) as ign:
        for p in paths:
            st = ws.lstat(p)
            is_dir = st is not None and statmod.S_ISDIR(st.st_mode)
            if not is_dir and not ws.own_index:  # (an experiment's)
                continue
            m = ign.match(p, is_dir=is_dir)
            if m is not None and ign.ignored(p, is_dir=is_dir):
                out.append((p, m.rule()))
    return out


def load_runs(ws: Workspace) -> dict[str, StageRecord]:
    """The runs the working tree's ``dvfs.runs`` records (no file: none); FormatError if
    it is not valid."""
    from vfs.pipeline import runs  # (only when runs are read)

    try:
        data = ws.read(RUNS_FILE.encode(), runs.MAX_FILE)
    except UsageError as exc:  # a link, a directory: not a runs file either
        raise FormatError(str(exc)) from None
    return {} if data is None else runs.parse(data)


def load_pipeline(ws: Workspace) -> tuple[Pipeline, Dag]:
    """The working tree's ``dvfs.yaml`` and its graph, checked (no file: no stages)."""
    try:
        data = ws.read(PIPELINE_FILE.encode(), spec.MAX_FILE)
    except UsageError as exc:
        raise UsageError(
            f"{exc}: make {PIPELINE_FILE} a regular file of the working tree (dvfs follows no link)"
        ) from None
    p = spec.read(data)
    return p, graph.build(p)
