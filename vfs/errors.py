"""Every error dvfs raises on purpose, as one tree.

Lower layers raise these; the CLI is the one place that turns them into a message
and an exit code, and the daemon the one place that turns them into errno values.
Each message is written for the user: what happened, what was kept safe, what to do.

::

    DvfsError                       base; ``str(exc)`` is the one-line message
    ├── NotARepository              no ``.dvfs`` here or in any parent
    ├── UsageError                  bad arguments: missing path, path outside the repo
    │   ├── PathNotFound            a path a version does not hold (FileNotFoundError)
    │   ├── NotAFile                a directory asked for as a file (IsADirectoryError)
    │   ├── NotADirectory           a file asked for as a directory (NotADirectoryError)
    │   │                           (these three carry the errno the kernel gives)
    │   └── FileUnreadable          a working file dvfs is not allowed to read
    ├── RevisionNotFound            unknown revision; carries close names (exit 2)
    ├── RefConflict                 a ref moved under us (compare-and-swap failed)
    ├── UncommittedChanges          checkout/switch would overwrite work; carries paths
    ├── LockBusy                    another dvfs process holds the repository lock
    ├── ObjectError                 object store problems
    │   ├── ObjectMissing           an object a record names is not stored
    │   ├── ObjectCorrupt           stored bytes do not match the id, or do not decode
    │   └── FormatError             a record is malformed or of an unknown version
    │       └── ReservedName        a tree record holds .git, .dvfs or a lookalike
    ├── StorageFull                 the disk filled up while writing
    ├── FileChanged                 a file kept changing while it was being read
    ├── KeptChanged                 a working file changed after it was checked: kept
    ├── MountError                  a mount could not be made, found or undone
    │   └── NoSuchMount             no mount at the path given (exit 2)
    └── RemoteError                 remote store problems (see vfs.backends)
        ├── RemoteUnreachable       network down, server not answering
        ├── RemoteAuthError         wrong credentials or no permission
        ├── RemoteNotFound          missing bucket/directory or key
        ├── RemoteObjectRefused     one object refused as what it is (a link, too large)
        └── PreconditionFailed      a conditional write lost the race
"""

from __future__ import annotations

from collections.abc import Sequence
from errno import EISDIR, ENOENT, ENOTDIR

from vfs.quoting import escape_text, quote_given


class DvfsError(Exception):
    """Base of every deliberate dvfs error; the message is shown to the user as is.

    ``str(exc)`` escapes the control characters a name in it may hold (``a\\nb``, as
    :func:`vfs.quoting.escape_text` does and the CLI prints it): a program using the
    Python API that prints or logs the message gets one line, not a forged second one
    or a terminal escape. ``exc.args[0]`` keeps the message as it was made.
    """

    exit_code = 1

    def __str__(self) -> str:
        return escape_text(super().__str__())


class NotARepository(DvfsError):
    """Raised when no repository is found at or above a directory."""

    def __init__(self, message: str = "") -> None:
        super().__init__(message or "not a dvfs repository (or any parent): run `dvfs init`")


class UsageError(DvfsError):
    """Bad arguments the user can fix: a missing path, a path outside the repository."""

    exit_code = 2


class NameInUse(UsageError):
    """A new branch or tag named as one there is already (a usage error to the CLI; a
    conflict with the refs as they stand to the dashboard, 409)."""


class PathNotFound(UsageError, FileNotFoundError):
    """A path a version does not hold (a FileNotFoundError too, for Python callers,
    whose ``errno`` is ENOENT, as open()'s: ``str(exc)`` stays the message alone)."""

    errno = ENOENT


class NotAFile(UsageError, IsADirectoryError):
    """A directory where a file was asked for (an IsADirectoryError too, EISDIR)."""

    errno = EISDIR


class NotADirectory(UsageError, NotADirectoryError):
    """A file where a directory was asked for (``data/x.csv/``; a NotADirectoryError
    too, ENOTDIR)."""

    errno = ENOTDIR


class FileUnreadable(UsageError):
    """A file of the working tree that dvfs may not read (permissions, I/O error)."""


class RevisionNotFound(DvfsError):
    """An unknown revision; ``candidates`` holds the closest existing names.

    Exit 2, as an unknown branch, tag, remote or path: a name the user gave that
    names nothing here is a mistake in the command line, whatever kind of name it is.

    ``hint`` replaces the guesses in the message when the revision's form says what
    went wrong (a version number past the branch's last, a walk back past the first
    version); ``candidates`` still lists what to link to (the dashboard does).
    """

    exit_code = 2

    def __init__(self, rev: str, candidates: Sequence[str] = (), hint: str = "") -> None:
        self.rev = rev
        self.candidates = list(candidates)
        self.hint = hint
        msg = f"unknown revision {quote_given(rev)}"
        if hint:
            msg += f": {hint}"
        elif self.candidates:
            msg += "; did you mean: " + ", ".join(self.candidates)
        else:
            msg += "; run `dvfs log` or `dvfs branch` to see what exists"
        super().__init__(msg)


class RefConflict(DvfsError):
    """A ref did not hold the value a compare-and-swap expected."""


class UncommittedChanges(DvfsError):
    """An operation would overwrite uncommitted work; ``paths`` lists it, and
    ``untracked`` those of them that are not tracked (named so: "commit them" is not
    how to keep an untracked file), ``removed`` those whose removal is staged (by
    ``rm --cached`` or ``mv``: their file may stand there, untracked, but what would be
    lost is the staged removal). ``action`` is the command the user ran, ``verb``
    what it would do to the changes, ``what`` what to do instead (by default, commit
    them, unstage a removal, or move the untracked away; given, it stands for all)."""

    def __init__(
        self,
        action: str,
        paths: Sequence[str],
        untracked: Sequence[str] = (),
        *,
        removed: Sequence[str] = (),
        verb: str = "overwrite",
        what: str | None = None,
    ) -> None:
        self.paths = list(paths)
        apart, gone = set(untracked), set(removed)
        loose = [p for p in self.paths if p in apart]
        unstaged = [p for p in self.paths if p in gone]
        changed = [p for p in self.paths if p not in apart and p not in gone]
        parts = []
        if changed:
            parts.append(f"uncommitted changes in {_first(changed)}")
        if unstaged:
            parts.append(f"the staged removal of {_first(unstaged)}")
        if loose:
            parts.append(f"untracked {_first(loose)}")
        if what is None and not loose and not unstaged:
            what = "commit them, or use --force to discard them"
        elif what is None and not loose:
            many = len(unstaged) + len(changed) > 1
            what = (
                ("commit the changes and the removal" if changed else "commit the removal")
                + f", or run `{_unstage(unstaged)}` to track "
                + ("them" if len(unstaged) > 1 else "it")
                + " again, or use --force to discard "
                + ("them" if many else "it")
            )
        elif what is None:
            what = (
                "move the untracked files away (or `dvfs add` and commit them)"
                + (", and commit the changes" if changed else "")
                + (f", and commit the removal (or `{_unstage(unstaged)}`)" if unstaged else "")
                + ", or use --force to overwrite them"
            )
        super().__init__(f"{action} would {verb} {' and '.join(parts)}: {what}")


def _unstage(paths: Sequence[str]) -> str:
    """The command that unstages the removal of ``paths`` (one named, more as PATH)."""
    import shlex  # (here: every command imports this module, few say this)

    return f"dvfs restore --staged {shlex.quote(paths[0]) if len(paths) == 1 else 'PATH...'}"


def _first(paths: Sequence[str]) -> str:
    shown = ", ".join(paths[:10])
    return shown + (f" and {len(paths) - 10} more" if len(paths) > 10 else "")


class LockBusy(DvfsError):
    """Another dvfs process holds the repository lock."""


class ObjectError(DvfsError):
    """Base for problems with stored objects."""


class ObjectMissing(ObjectError):
    """A record names an object that is not stored; ``advice`` says what to do (what a
    remote lacks too, no pull brings)."""

    def __init__(
        self,
        oid: str,
        what: str = "",
        advice: str = "`dvfs pull` it from a remote, or run `dvfs fsck` if it should be here",
    ) -> None:
        self.oid = oid
        where = f" (needed by {what})" if what else ""
        super().__init__(f"object {oid} is not in the local store{where}: {advice}")


class ObjectCorrupt(ObjectError):
    """Stored bytes do not match their id or cannot be decoded; ``what`` names the
    file that needs them, when known; ``advice`` what to do (a remote's damage is
    not the local store's, which ``dvfs fsck`` checks)."""

    detail = "hash mismatch"  # (what ``from_kind`` gives: the message alone crosses)

    def __init__(
        self,
        oid: str,
        detail: str = "hash mismatch",
        what: str = "",
        advice: str = "run `dvfs fsck`",
    ) -> None:
        self.oid = oid
        self.detail = detail
        where = f", needed by {what}" if what else ""
        super().__init__(f"object {oid} is corrupt ({detail}{where}): {advice}")


class FormatError(ObjectError):
    """A record is malformed, of an unknown version, or holds an invalid name."""


class ReservedName(FormatError):
    """A tree record holds a name dvfs never stores (``vfs.model.names``); ``name`` is it."""

    def __init__(self, message: str, name: bytes) -> None:
        self.name = name
        super().__init__(message)


class StorageFull(DvfsError):
    """The disk filled up while writing; nothing half-written is visible."""


class FileChanged(DvfsError):
    """A file kept changing while it was being read."""


class KeptChanged(DvfsError):
    """A working file changed (written, replaced, made) after a checkout found that it
    could be replaced, and before the version's file took its place: it was kept as
    it is, and the version's file was not written there."""


class MountError(DvfsError):
    """A mount could not be made, found or undone (mount point, FUSE, daemon)."""


class NoSuchMount(MountError):
    """The path given as a mount point does not exist, or holds no dvfs mount: a
    mistake in the command line (exit 2), as an unknown revision or branch is."""

    exit_code = 2


class RemoteError(DvfsError):
    """Base for problems talking to a remote store."""


class RemoteUnreachable(RemoteError):
    """The remote did not answer (network down, server stopped)."""


class RemoteAuthError(RemoteError):
    """The remote refused the credentials or denied permission."""


class RemoteNotFound(RemoteError):
    """The bucket, directory or key does not exist."""


class RemoteObjectRefused(RemoteError):
    """One object of the remote refused as what it is: a link, not a regular file,
    larger than its kind ever is, a key clashing with a folder. The rest of the remote
    may be fine: unlike an unreachable remote, a caller may pass over that one object."""


class PreconditionFailed(RemoteError):
    """A conditional write found the target changed (or already existing)."""


def error_kind(exc: DvfsError) -> str:
    """The name that carries ``exc``'s class across a process boundary (``from_kind``)."""
    cls: type[DvfsError] = type(exc)
    while cls.__module__ != __name__:  # a subclass of another module: its nearest class here
        cls = next(b for b in cls.__mro__[1:] if issubclass(b, DvfsError))
    return cls.__name__


def _classes(root: type[DvfsError]) -> dict[str, type[DvfsError]]:
    found = {root.__name__: root}
    for sub in root.__subclasses__():
        if sub.__module__ == __name__:
            found.update(_classes(sub))
    return found


def from_kind(kind: object, message: str) -> DvfsError:
    """An error of the class ``error_kind`` named, saying ``message``.

    Only the class and the message cross (attributes such as ``paths`` do not); a kind
    this version does not know becomes a plain DvfsError, never a usage error.
    """
    cls = _classes(DvfsError).get(kind, DvfsError) if isinstance(kind, str) else DvfsError
    exc = cls.__new__(cls)
    Exception.__init__(exc, message)
    return exc
