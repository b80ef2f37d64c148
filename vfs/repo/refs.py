"""Named pointers to versions: branches, tags and HEAD, moved by compare-and-swap.

Layout under ``.dvfs``::

    HEAD                 "ref: refs/heads/<branch>\\n"  (on a branch)
                         "<64 hex> <branch>\\n"         (detached at a version; the
                                                          branch it came from names vN)
    refs/heads/<branch>  "<64 hex>\\n"
    refs/tags/<tag>      "<64 hex>\\n"
    refs/remotes/<remote>/<branch>
                         "<64 hex>\\n": that remote's branch as last pushed,
                         fetched or pulled (vfs.ops.sync)
    refs.lock            flock held while a ref is compared and written

A branch with no versions yet has no file. Every change is written atomically and
fsynced (``vfs.store.durable.write_atomic``), and made under ``refs.lock`` after checking
that the ref still holds the value the caller saw, so a concurrent writer is never
silently overwritten. Every change of a ref or of HEAD is first appended to the
audit log (``vfs.repo.audit``), under the same lock; the many changes of one command
(a fetch's tags) are one durable step (:meth:`Refs.update_many`). HEAD and refs are read only as
regular files (:func:`_read`): a link or a FIFO there is unreadable (FormatError),
never followed nor waited on.
"""

from __future__ import annotations

import errno
import fcntl
import os
import re
import stat
from collections.abc import Callable, Collection, Iterator, Sequence
from contextlib import contextmanager, suppress
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, NamedTuple

from vfs.errors import FormatError, RefConflict, UsageError
from vfs.model.ids import from_hex
from vfs.quoting import quote_given
from vfs.store.durable import (
    at_once,
    fsync_dir,
    fsync_file,
    many_at_once,
    put_in_place,
    storage_error,
    write_atomic,
    write_beside,
)
from vfs.store.lock import open_lock_file

if TYPE_CHECKING:
    from vfs.repo import audit

# Matched whole (fullmatch): "$" would also match before a final newline, which let
# "t\n" name a tag.
_NAME_RE = re.compile(r"[A-Za-z0-9_][A-Za-z0-9._/-]*")
# vN, HEAD and anything that reads as an id prefix (which is matched ignoring case).
_RESERVED_RE = re.compile(r"v\d+|HEAD.*|[0-9a-fA-F]{4,64}")


def check_ref_name(name: str, what: str, *, existing: bool = False) -> str:
    """Return ``name`` if it can name a branch or tag; UsageError saying why not.

    ``existing``: the name of a ref to delete, which may have been made before a part
    ending in ``.lock`` was refused: it is still accepted, so that the ref can go.
    """
    why = _unfit(name, existing)
    if why:
        raise UsageError(f"{_shown(name)} is not a valid {what} name: {why}")
    if _RESERVED_RE.fullmatch(name):
        raise UsageError(
            f"{_shown(name)} cannot be a {what} name: it would read as a version number, HEAD "
            "or an id"
        )
    if not existing and name.startswith(FULL_PREFIX):
        raise UsageError(
            f"{_shown(name)} cannot be a {what} name: a revision starting with 'refs/' is read "
            "as a ref's full name (refs/heads/BRANCH, refs/tags/TAG); name it without 'refs/'"
        )
    return name


FULL_PREFIX = "refs/"
# The full names a revision may give (``refs/heads/main``), each as its ref's kind.
FULL_KINDS = ("heads", "tags", "remotes")


def full_ref(name: str) -> str | None:
    """``name`` if it is the full name of a branch, tag or remote branch
    (``refs/heads/main``, ``refs/tags/v1.0``, ``refs/remotes/origin/main``), else None."""
    if not name.startswith(FULL_PREFIX):
        return None
    kind, slash, rest = name[len(FULL_PREFIX) :].partition("/")
    if kind not in FULL_KINDS or not slash or _unfit(rest, existing=True):
        return None
    return name


def _shown(name: str) -> str:
    """A refused name as messages show names (``""`` when it is empty)."""
    return quote_given(name)


def _unfit(name: str, existing: bool = False) -> str:
    """Why ``name`` cannot name a ref, in a few words, or "" if it can (git's rules:
    ``git check-ref-format`` refuses each of these too)."""
    if not name:
        return "it is empty"
    if len(name) > 200:
        return "it is longer than 200 characters"
    if not _NAME_RE.fullmatch(name):
        if _NAME_RE.fullmatch("x" + name[1:]):
            return "it must start with an ASCII letter, a digit or '_'"
        return "use ASCII letters, digits, '.', '_', '-' and '/'"
    if ".." in name or "//" in name:
        return "it may not hold '..' or '//'"
    if name.endswith(("/", ".", ".lock")):
        return "it may not end in '/', '.' or '.lock'"
    parts = name.split("/")
    if any(part.startswith(".") for part in parts) or (
        not existing and any(part.endswith(".lock") for part in parts)
    ):
        return "no part of it may start with '.' or end in '.lock'"
    return ""


def misnamed(name: str) -> str:
    """Why ``name``, found on disk as a ref's (an archive from someone else, a file
    made by hand), is one no ref can have, or "" if it can (a part ending in ``.lock``
    made before that was refused is accepted)."""
    return _unfit(name, existing=True)


def is_ref_like(name: str) -> bool:
    """True if ``name`` could name a ref at all (so it is safe to look it up as a path)."""
    return bool(_NAME_RE.fullmatch(name)) and ".." not in name and len(name) <= 300


_KINDS = {"heads": "branch", "tags": "tag", "remotes": "remote branch"}


def _op(ref: str, old: bytes | None, new: bytes | None) -> str:
    """The audit log's name for a change of ``ref``: ``branch create`` and so on."""
    kind = _KINDS.get(ref.split("/")[1] if "/" in ref else "", "ref")
    return f"{kind} {'create' if old is None else 'delete' if new is None else 'move'}"


def _audit(
    dvfs_dir: Path, op: str, ref: str, old: bytes | None, new: bytes | None, note: str = "",
    alongside: Sequence[Callable[[], object]] = (),
) -> None:  # fmt: skip
    """Append an entry to the audit log (``vfs.repo.audit``; the caller holds
    ``refs.lock``); ``alongside``: as :func:`_audit_many`."""
    _audit_many(dvfs_dir, [(op, ref, old, new, note)], alongside)


def _audit_many(
    dvfs_dir: Path,
    changes: Sequence[audit.Change],
    alongside: Sequence[Callable[[], object]] = (),
) -> None:
    """Append the entries of ``changes`` to the audit log as one batch (the caller
    holds ``refs.lock``), after one entry for each creation a kill cut short, of the
    log's last batch or of the one before a run of such entries a kill cut short too
    (``audit.maybe_cut_short``), that was never made (:func:`_never_made`).

    ``alongside``: the fsyncs of the change itself, run with the log's
    (``audit.record_many``: if one fails, the entries are taken back and the error
    raised); the fsync of ``.dvfs`` after the head's rename is then the caller's.

    The audit module is loaded by the first change of a ref: a command that only reads
    refs (a plain ``dvfs status``) never loads it, nor what it imports.
    """
    from vfs.repo import audit

    refs = Refs(dvfs_dir)
    refs._checked = set()  # (the folders of a batch of 2,000 tags looked at once)
    never = [e for e in audit.maybe_cut_short(dvfs_dir) if _never_made(refs, e)]
    if never:
        audit.record_many(
            dvfs_dir,
            [(_op(e.ref, b"", None), e.ref, None, None, audit.never_made_note(e.seq))
             for e in never],
        )  # fmt: skip
    audit.record_many(dvfs_dir, changes, alongside=alongside, settle=not alongside)


def _never_made(refs: Refs, last: audit.Entry) -> bool:
    """Whether ``last``, of the log's last batch (its last entry, or the entries a
    command logged together with it, ``audit.maybe_cut_short``), is the creation of
    a branch or tag whose file is not there: a command that died (or failed) between
    logging the creation and putting the file in place, as the caller holds
    ``refs.lock`` both are done under.
    ``dvfs fsck`` passes over such an entry while it is of the log's last batch, and
    would take the ref for one lost (a file deleted by hand) once another change is
    logged after it: :func:`_audit_many` logs first that the ref was never made."""
    parts = last.ref.split("/")
    if last.old is not None or last.new is None or len(parts) < 3:
        return False
    if parts[0] != "refs" or parts[1] not in ("heads", "tags"):
        return False
    try:
        return not os.path.lexists(refs._path(last.ref))  # (nothing there: get finds None)
    except (FormatError, UsageError, OSError):
        return False  # (unreadable, or a name no ref has: fsck says what is wrong)


def _sync_files(paths: Sequence[Path]) -> None:
    """fsync each of ``paths`` (new files, not yet synced), many at once
    (``many_at_once``). A full disk raises as the store says it."""

    many_at_once(fsync_file, paths, "dvfs-refsync")


REF_LIMIT = 4096  # bytes: a ref or HEAD is one short line


class _NotAFile(Exception):
    """A ref or HEAD that is a link, a FIFO, a socket or a device: what it is."""


def _read(path: Path) -> str:
    """The text of a ref or of HEAD: a regular file, never read through a symbolic
    link nor waited on (a FIFO there hung every command); :class:`_NotAFile` saying
    what it is otherwise. FileNotFoundError, NotADirectoryError and IsADirectoryError
    (a folder of refs) are the system's."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _NotAFile("a symbolic link, which dvfs never reads through") from None
        if exc.errno == errno.ENXIO:  # (a socket)
            raise _NotAFile("not a regular file") from None
        raise
    try:
        mode = os.fstat(fd).st_mode
        if stat.S_ISDIR(mode):
            raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), str(path))
        if not stat.S_ISREG(mode):
            raise _NotAFile("not a regular file")
        return os.read(fd, REF_LIMIT).decode(errors="replace")
    finally:
        os.close(fd)


def _way_out(ref: str) -> str:
    """What to run about a ref whose file does not hold an id."""
    kind, _, name = ref.removeprefix("refs/").partition("/")
    if kind == "tags":
        return (
            "`dvfs fsck --repair` writes it back as the audit log last recorded it; "
            f"`dvfs tag -d {name}` deletes it"
        )
    if kind == "heads":
        return (
            "`dvfs fsck --repair` writes it back as the audit log last recorded it; "
            f"`dvfs branch -d {name}` deletes it (from another branch, if it is the current "
            "one)"
        )
    remote = name.partition("/")[0]
    return f"delete .dvfs/{ref}: the next `dvfs fetch --remote {remote}` sets it again"


def _drop(_: str) -> None:
    """A warning no one asked for."""


def twin_refused(refs: Refs, kind: str, name: str) -> str:
    """Why a new branch (``kind`` "branch") or tag ``name`` cannot be made beside a tag
    or branch of that name, or "" if there is none: a revision ``name`` reads the
    branch (:meth:`vfs.repo.history.History.resolve`), and would silently hide the tag.
    """
    ref = f"refs/{'tags' if kind == 'branch' else 'heads'}/{name}"
    try:
        if refs.get(ref) is None:
            return ""
    except FormatError:
        pass  # (a damaged ref of that name is there all the same)
    return twin_message(kind, name)


def twin_message(kind: str, name: str) -> str:
    """Why a ``kind`` ("branch" or "tag") ``name`` cannot be made beside the other kind's
    ``name`` (:func:`twin_refused`)."""
    other = "tag" if kind == "branch" else "branch"
    return (
        f"{kind} {name} would share its name with {other} {name}, and `{name}` would read "
        f"as the branch wherever a revision is read: name the {kind} otherwise"
    )


def remote_twin(kind: str, name: str, remotes: Collection[str]) -> str:
    """Why a new ``kind`` ("branch" or "tag") ``name`` cannot be made, or "": it would
    read as a branch of one of ``remotes`` (``origin/x``, with a remote ``origin``)."""
    top, slash, rest = name.partition("/")
    if not slash or top not in remotes:
        return ""
    return (
        f"{kind} {name} would share its name with remote {top}'s branch {rest}, and "
        f"one would hide the other wherever a revision is read: name the {kind} otherwise"
    )


class Head(NamedTuple):
    """Where HEAD points: a branch (maybe without versions yet) or a detached version.

    (A named tuple: a frozen dataclass generates and compiles its methods at import,
    0.5 ms of every command that reads HEAD, a clean ``status`` among them.)
    """

    branch: str
    detached: bytes | None = None


class Refs:
    """Branches, tags and HEAD of one repository."""

    def __init__(self, dvfs_dir: Path) -> None:
        self.dir = dvfs_dir
        self._lock_path = dvfs_dir / "refs.lock"
        # Where a warning about what the refs hold goes (the CLI prints it); dropped
        # unless set.
        self.warn: Callable[[str], None] = _drop
        # The folders found no link while :meth:`update_many` runs (None otherwise): a
        # batch of 2,000 tags looked at refs/ and refs/tags 14,000 times.
        self._checked: set[tuple[str, ...]] | None = None

    @staticmethod
    def create(dvfs_dir: Path, branch: str) -> Refs:
        """Make the ref directories and point HEAD at ``branch``."""
        (dvfs_dir / "refs" / "heads").mkdir(parents=True, exist_ok=True)
        (dvfs_dir / "refs" / "tags").mkdir(parents=True, exist_ok=True)
        refs = Refs(dvfs_dir)
        refs.set_head(Head(branch))
        return refs

    # HEAD ---------------------------------------------------------------

    def head(self) -> Head:
        """Parse HEAD strictly."""
        try:
            text = _read(self.dir / "HEAD")
        except FileNotFoundError:
            raise FormatError("the repository has no HEAD file: run `dvfs fsck --repair`") from None
        except _NotAFile as exc:
            raise FormatError(f"HEAD is {exc}: run `dvfs fsck --repair`") from None
        line = text.strip()
        head: Head | None = None
        if line.startswith("ref: refs/heads/"):
            head = Head(line[len("ref: refs/heads/") :])
        elif len(parts := line.split(" ")) == 2:
            with suppress(ValueError):
                head = Head(parts[1], from_hex(parts[0]))
        # A branch name no ref may have (``..`` in it, a control character) is damage
        # too: every command would go on to show it, or look for its ref.
        if head is None or _unfit(head.branch, existing=True):
            raise FormatError(
                f"HEAD is unreadable ({quote_given(line[:80])}): run `dvfs fsck --repair`"
            )
        return head

    def set_head(self, head: Head) -> None:
        """Point HEAD at a branch or detach it at a version (an audit entry if it moves).

        UsageError for a branch name no ref may have: HEAD never holds one, wherever
        the name came from (a ``dvfs.lock`` from git, say).
        """
        why = _unfit(head.branch, existing=True)
        if why:
            raise UsageError(f"{_shown(head.branch)} is not a valid branch name: {why}")
        if head.detached is None:
            text = f"ref: refs/heads/{head.branch}\n"
        else:
            text = f"{head.detached.hex()} {head.branch}\n"
        with self._locked():
            try:
                old = _read(self.dir / "HEAD").strip()
            except (FileNotFoundError, _NotAFile):
                old = ""
            new = text.strip()
            if old == new:
                write_atomic(self.dir / "HEAD", text.encode())
                return
            short = [t.removeprefix("ref: refs/heads/") for t in (old, new)]
            note = f"{short[0]} -> {short[1]}".strip()
            self._write_audited(
                self.dir / "HEAD", text.encode(),
                lambda also: _audit(self.dir, "HEAD move", "HEAD", None, head.detached, note,
                                    also),
            )  # fmt: skip

    # refs -----------------------------------------------------------------

    def _path(self, ref: str) -> Path:
        """Where ``ref`` lives; UsageError for a name that could step out of ``refs/``."""
        parts = ref.split("/")
        if (
            len(parts) < 3
            or parts[0] != "refs"
            or parts[1] not in _KINDS
            or any(not p or p.startswith(".") for p in parts[2:])
        ):
            raise UsageError(f"{_shown(ref)} is not a valid ref name")
        self._no_linked_folder(parts[:-1])
        return self.dir / ref

    def _no_linked_folder(self, parts: Sequence[str]) -> None:
        """FormatError if a folder on the way to a ref (``refs``, ``refs/heads``,
        ``refs/heads/feature``...) is a symbolic link: refs are never read nor written
        through one, which could lead out of the repository."""
        checked = self._checked
        if checked is not None and tuple(parts) in checked:
            return
        at = self.dir
        for i, part in enumerate(parts):
            at = at / part
            try:
                mode = os.lstat(at).st_mode
            except (FileNotFoundError, NotADirectoryError):
                return
            if stat.S_ISLNK(mode):
                raise FormatError(
                    f"{'/'.join(parts[: i + 1])} in {self.dir} is a symbolic link, which "
                    "dvfs never follows: `dvfs fsck --repair` makes it a directory again "
                    "and writes its refs back as the audit log last recorded them"
                )
        if checked is not None:
            checked.add(tuple(parts))

    def linked_folders(self) -> list[str]:
        """The folders of refs that are symbolic links: ``refs`` and ``refs/KIND``
        whatever they lead to, a folder below them if it leads to a directory (a link
        to a file is a ref's, which :func:`_read` refuses). Nothing below a link is
        looked at."""
        out: list[str] = []
        stack = ["refs"]
        while stack:
            rel = stack.pop()
            try:
                mode = os.lstat(self.dir / rel).st_mode
            except (FileNotFoundError, NotADirectoryError):
                continue
            if stat.S_ISLNK(mode):
                out.append(rel)
            elif stat.S_ISDIR(mode):
                fixed = rel.count("/") < 1  # refs/KIND comes next
                with os.scandir(self.dir / rel) as it:
                    for e in it:
                        linked = e.is_symlink() and (fixed or e.is_dir(follow_symlinks=True))
                        if linked or e.is_dir(follow_symlinks=False):
                            stack.append(f"{rel}/{e.name}")
        return sorted(out)

    def head_id(self, head: Head | None = None) -> bytes | None:
        """The version HEAD (or ``head``, as read already) names, or None on a branch
        with no versions yet."""
        h = self.head() if head is None else head
        if h.detached is not None:
            return h.detached
        return self.get(f"refs/heads/{h.branch}")

    def get(self, ref: str) -> bytes | None:
        """The id a ref (``refs/heads/x`` or ``refs/tags/x``) holds, or None (also for
        a name no ref can have)."""
        try:
            text = _read(self._path(ref)).strip()
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError, UsageError):
            return None
        except _NotAFile as exc:
            raise FormatError(f"ref {ref} is {exc}: {_way_out(ref)}") from None
        except OSError as exc:  # a name longer than a file's (`dvfs diff LONG-PATH`): none
            if exc.errno != errno.ENAMETOOLONG:
                raise
            return None
        try:
            return from_hex(text)
        except ValueError:
            raise FormatError(f"ref {ref} is unreadable: {_way_out(ref)}") from None

    @contextmanager
    def locked(self) -> Iterator[None]:
        """Hold ``refs.lock``: no ref, nor HEAD, is written meanwhile."""
        with self._locked():
            yield

    @contextmanager
    def _locked(self) -> Iterator[None]:
        fd = open_lock_file(self._lock_path)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            yield
        finally:
            os.close(fd)

    def update(
        self, ref: str, new: bytes | None, expected: bytes | None, also: Sequence[Path] = ()
    ) -> None:
        """Set ``ref`` to ``new`` (None deletes) if it still holds ``expected``;
        a ref that already holds ``new`` is not written again, nor audited.

        ``also``: folders whose fsync must be done before ``ref`` names ``new`` (a
        commit's index renamed into place, naming the version first): they are made
        with the ref's new file's and its entry's (:meth:`_write_audited`)."""
        with self._locked():
            current = self.get(ref)
            if current != expected:
                raise RefConflict(
                    f"{ref.split('/', 2)[-1]} moved while this command ran: run it again"
                )
            if new == current:
                return  # (nothing to write: a full disk does not stop a ref staying put)
            path = self._path(ref)
            if new is None:
                if current is not None:
                    _audit(self.dir, _op(ref, current, new), ref, current, new)
                path.unlink(missing_ok=True)
                self._drop_empty_folders(ref)
                return
            clash = self.clash(ref)
            if clash is not None:
                raise RefConflict(
                    f"{ref.split('/', 2)[-1]} cannot be made: {clash.split('/', 2)[-1]} "
                    "exists, and a name cannot be both a ref and the folder of others"
                )
            path.parent.mkdir(parents=True, exist_ok=True)
            self._write_audited(
                path, (new.hex() + "\n").encode(),
                lambda more: _audit(self.dir, _op(ref, current, new), ref, current, new, "",
                                    more),
                also,
            )  # fmt: skip

    def update_many(
        self, changes: Sequence[tuple[str, bytes | None, bytes | None]]
    ) -> dict[str, str]:
        """:meth:`update` of each ``(ref, new, expected)`` as one durable step: the new
        files written and fsynced beside their refs, their audit entries appended as
        one batch, then the files renamed into place (deletions first) and each of
        their directories fsynced once (``docs/architecture.md``, "Many refs at once":
        what a kill at each point leaves). A ref that no longer holds ``expected``, or
        that cannot be made beside another ref or one of the batch, is left as it is:
        the refs so refused, each with why (as :class:`RefConflict` says it)."""
        refused: dict[str, str] = {}
        with self._locked():
            self._checked = set()
            try:
                self._update_many(changes, refused)
            finally:
                self._checked = None
        return refused

    def _update_many(
        self, changes: Sequence[tuple[str, bytes | None, bytes | None]], refused: dict[str, str]
    ) -> None:
        """:meth:`update_many` under ``refs.lock``; ``refused`` gets the refs left out."""
        todo: list[tuple[str, bytes | None, bytes | None]] = []  # ref, new, current
        made: set[str] = set()  # the refs the batch makes
        folders: set[str] = set()  # and each folder above them
        for ref, new, expected in changes:
            current = self.get(ref)
            name = ref.split("/", 2)[-1]
            if current != expected:
                refused[ref] = f"{name} moved while this command ran: run it again"
                continue
            if new == current:
                continue
            if new is not None:
                parts = ref.split("/")
                above = ["/".join(parts[:i]) for i in range(3, len(parts))]
                clash = self.clash(ref) or (ref + "/..." if ref in folders else None)
                clash = clash or next((a for a in above if a in made), None)
                if clash is not None:
                    refused[ref] = (
                        f"{name} cannot be made: {clash.split('/', 2)[-1]} exists, and a "
                        "name cannot be both a ref and the folder of others"
                    )
                    continue
                made.add(ref)
                folders.update(above)
            todo.append((ref, new, current))
        if not todo:
            return
        tmps: dict[str, Path] = {}
        try:
            for ref, new, _ in todo:
                if new is not None:
                    path = self._path(ref)
                    path.parent.mkdir(parents=True, exist_ok=True)
                    tmps[ref] = write_beside(path, (new.hex() + "\n").encode(), sync=False)
            _sync_files(list(tmps.values()))
            _audit_many(self.dir, [(_op(r, c, n), r, c, n, "") for r, n, c in todo])
        except BaseException:
            for tmp in tmps.values():
                with suppress(OSError):
                    os.unlink(tmp)
            raise
        synced: set[Path] = set()  # the directories to fsync
        for ref, new, _ in todo:
            if new is None:
                path = self._path(ref)
                path.unlink(missing_ok=True)
                synced.add(path.parent)
                self._drop_empty_folders(ref)
        for ref, tmp in tmps.items():
            path = self._path(ref)
            put_in_place(tmp, path, sync=False)
            synced.add(path.parent)
        for folder in sorted(synced):
            with suppress(FileNotFoundError):  # (a folder a deletion left empty)
                fsync_dir(folder)

    def delete_unreadable(self, ref: str) -> bool:
        """Delete ``ref`` if its file holds no id (a damaged ref :meth:`get` refuses);
        return whether it did. Its audit entry has no old id and says why."""
        with self._locked():
            try:
                self.get(ref)
                return False
            except FormatError:
                pass
            _audit(self.dir, _op(ref, b"", None), ref, None, None, "unreadable")
            self._path(ref).unlink(missing_ok=True)
            self._drop_empty_folders(ref)
            return True

    def mend(self, ref: str, new: bytes, note: str) -> None:
        """Write ``ref``, unreadable now, as ``new`` (``dvfs fsck --repair``; audited,
        with ``note`` saying where ``new`` comes from)."""
        path = self._path(ref)
        with self._locked():
            path.parent.mkdir(parents=True, exist_ok=True)  # (its folder may be gone too)
            self._write_audited(
                path, (new.hex() + "\n").encode(),
                lambda also: _audit(self.dir, _op(ref, new, new), ref, None, new, note, also),
            )  # fmt: skip

    def _write_audited(
        self,
        path: Path,
        data: bytes,
        audit: Callable[[Sequence[Callable[[], object]]], None],
        also: Sequence[Path] = (),
    ) -> None:
        """Write ``data`` to ``path`` atomically, making its audit entry (``audit``,
        given the fsyncs to run with the log's) once the new bytes are written and
        before they replace the old: a full disk stops the change before its entry, so
        the log never records a move that was not made (``dvfs fsck`` would name the
        ref as lost).

        Two disk round trips, not five in a row (``docs/architecture.md``, "One ref
        and its entry"): the fsyncs of the new file, of the folders ``also``, of the
        log and of its head's new file at once (if one fails, the entry is taken
        back and the file deleted: nothing changed); then, once the new file has
        replaced the old, those of its folder and of ``.dvfs`` (the head's rename)."""
        tmp = write_beside(path, data, sync=False)
        jobs: list[Callable[[], object]] = [lambda: fsync_file(tmp)]
        jobs += [partial(fsync_dir, f) for f in also]
        try:
            audit(jobs)
        except BaseException:
            with suppress(OSError):
                os.unlink(tmp)
            raise
        put_in_place(tmp, path, sync=False)
        folders = sorted({path.parent, self.dir})
        errors = at_once([partial(fsync_dir, f) for f in folders], "dvfs-refsync")
        failed = next((e for e in errors if e is not None), None)
        if failed is not None:
            raise storage_error(failed, str(path)) if isinstance(failed, OSError) else failed

    def record(self, op: str, note: str) -> None:
        """An audit entry for a change that moves no ref (``gc``)."""
        with self._locked():
            _audit(self.dir, op, "", None, None, note)

    def _drop_empty_folders(self, ref: str) -> None:
        """Remove the folders of ``ref`` (below ``refs/<kind>/``) that hold no ref now,
        so that a deleted ``x/y`` does not keep a branch ``x`` from being made."""
        parts = ref.split("/")
        for i in range(len(parts) - 1, 2, -1):
            try:
                os.rmdir(self._path("/".join(parts[:i])))
            except OSError:  # not empty (or gone): the folders above hold it too
                return

    def clash(self, ref: str) -> str | None:
        """The existing ref (or folder of refs) that keeps ``ref`` from being written.

        A folder that holds no ref (left by a deletion before they were removed) is
        removed, not a clash."""
        path = self._path(ref)
        if path.is_dir():
            for folder, _, files in os.walk(path, topdown=False):
                if files:
                    return ref + "/..."
                with suppress(OSError):
                    os.rmdir(folder)
            if path.is_dir():
                return ref + "/..."
        parts = ref.split("/")
        for i in range(3, len(parts)):  # below refs/<kind>/
            above = "/".join(parts[:i])
            if self._path(above).is_file():
                return above
        return None

    def names(self, kind: str) -> list[str]:
        """Sorted names of all ``heads`` or ``tags``; FormatError if their folder is a
        symbolic link (:meth:`_no_linked_folder`; one below it is not entered)."""
        self._no_linked_folder(["refs", kind])
        base = self.dir / "refs" / kind
        out = []
        start = len(str(base)) + 1  # (os.walk's paths begin with base: no relpath, which
        for dirpath, _, files in os.walk(base):  # took 3/4 of listing 200,000 tags)
            folder = dirpath[start:]
            for f in files:
                if not f.startswith("."):
                    out.append(f"{folder}/{f}" if folder else f)
        return sorted(out)

    def branches(self) -> dict[str, bytes]:
        """Every branch that has versions, with its head id."""
        out = {}
        for n in self.names("heads"):
            oid = self.get(f"refs/heads/{n}")
            if oid is not None:
                out[n] = oid
        return out

    def tags(self) -> dict[str, bytes]:
        """Every tag with the version id it names."""
        out = {}
        for n in self.names("tags"):
            oid = self.get(f"refs/tags/{n}")
            if oid is not None:
                out[n] = oid
        return out
