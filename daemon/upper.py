"""The upper layer of a working tree served by the kernel's overlayfs (root mounts).

A root mount's MNT is an overlayfs (``daemon.kernel_overlay``): its lower layer is the
daemon's read-only view of one version, the *base*; its upper layer a directory on
local disk into which the kernel writes every change. This module reads that upper
layer: what changed (``dvfs status MNT``), the version it makes (``dvfs snapshot``),
and how it is rebased onto the last snapshot when the working tree is mounted again.

Work directory (one per source and branch, where the daemon's own overlay keeps its
work directory; the daemon user's alone)::

    lock            flock held by the daemon serving this working tree
    layers          msgpack map: format, base (the lower layer's version id or nil),
                    head (the version this working tree was last recorded as: base,
                    or the last snapshot), gen
    recorded.<gen>  msgpack map of path: [ino, size, mtime_ns, ctime_ns]: the upper
                    layer's files, links and directories (a directory's path ends
                    in ``/``, MNT's is ``/``) as the snapshot that made ``head``
                    found them
    pending         msgpack map: version, gen: a snapshot being recorded (its
                    ``recorded.<gen>`` is written before it)
    upper/          the overlay's upper directory
    scratch/        the overlay's work directory (the kernel's own)

The upper layer, as overlayfs writes it (mounted with redirect_dir, metacopy and index
off, so that no entry names another path): a directory holds the names changed in
it; a character device 0/0 is a *whiteout*, a name deleted from the lower layer; a
directory with the extended attribute ``trusted.overlay.opaque`` = ``y`` hides the
lower directory of its name (it was removed and made again). A name the upper layer
does not hold shows the lower layer's, which nothing changed since ``base``.

**Snapshots** read the upper layer while writers go on (nothing is held) and cost
what changed since the last one (``daemon.upper_build``): what is recorded unchanged
keeps the head's entries, a directory with nothing changed below it the head's tree,
and every other file is hashed and checked not to have changed meanwhile, else
hashed again: each file is recorded as it was at one moment. A file deleted while
the snapshot runs is left out. Owners, times
other than the mtime, the setuid, setgid and sticky bits, FIFOs, sockets and devices
are not versioned: special files are skipped and listed. A reserved name (``.git``,
``.dvfs``: overlayfs cannot refuse one) fails the snapshot until it is removed.

**Rebasing** (``daemon.upper_rebase``): the lower layer stays the same while mounted
(overlayfs forbids changing it under a mount), so after a snapshot MNT shows ``head``
as upper ⊕ base.
At the next mount, before the overlay is made, the upper layer is rebased onto
``head``: a name that ``head`` holds but MNT no longer shows gets a whiteout, then
``layers`` names ``head`` as the base (atomically), then upper entries that show
exactly what the new lower layer shows (recorded, unchanged, the mounting user's,
plain permission bits) are removed. A crash before ``layers`` is written leaves
whiteouts for names the old base does not have (harmless); after it, what is left
to remove is removed at the next mount. A working tree whose upper layer is empty
follows its branch at mount, as the daemon's own overlay does.
"""

from __future__ import annotations

import contextlib
import errno
import logging
import os
import stat as statmod
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgpack

from daemon.overlay import lock_work
from vfs import (
    LAYERS_FORMAT,
    PERM_BITS,
    DvfsError,
    Entry,
    Kind,
    Tree,
    Walker,
    fsync_dir,
    is_reserved,
    is_reserved_at_root,
    listing,
    newer_format,
    newer_format_message,
    quote_name,
    write_atomic,
)

log = logging.getLogger(__name__)
FORMAT = LAYERS_FORMAT
UPPER = "upper"
SCRATCH = "scratch"
OPAQUE = "trusted.overlay.opaque"
Trees = Callable[[bytes], Tree]  # a tree by id (blocking)
Stamp = tuple[int, int, int, int]  # ino, size, mtime_ns, ctime_ns
Recorded = dict[bytes, Stamp]


class LayersError(DvfsError):
    """The work directory's state is damaged."""


def stamp(st: os.stat_result) -> Stamp:
    """What tells a file unchanged since it was recorded."""
    return st.st_ino, st.st_size, st.st_mtime_ns, st.st_ctime_ns


def is_whiteout(st: os.stat_result) -> bool:
    """True for overlayfs's mark of a deleted name: a character device 0/0."""
    return statmod.S_ISCHR(st.st_mode) and st.st_rdev == 0


def is_special(st: os.stat_result) -> bool:
    """True for a FIFO, socket or device: kept in MNT, never in a version."""
    return not (statmod.S_ISREG(st.st_mode) or statmod.S_ISDIR(st.st_mode)) and not (
        statmod.S_ISLNK(st.st_mode)
    )


def kind_of(st: os.stat_result) -> Kind | None:
    """The version kind of an upper entry (None: not versionable)."""
    if statmod.S_ISREG(st.st_mode):
        return Kind.FILE
    if statmod.S_ISDIR(st.st_mode):
        return Kind.DIR
    if statmod.S_ISLNK(st.st_mode):
        return Kind.SYMLINK
    return None


def _join(parent: bytes, name: bytes) -> bytes:
    return parent + b"/" + name if parent else name


def _show(path: bytes, kind: Kind | None) -> str:
    return os.fsdecode(path) + ("/" if kind == Kind.DIR else "")


# the state ----------------------------------------------------------------------------


class Layers:
    """The state of a kernel-overlay work directory (see the module docstring).

    Opening it resolves a snapshot left pending by a crash: if the branch is at its
    version (``branch_head``), it was recorded and becomes ``head``; else it is dropped.
    """

    def __init__(self, work: Path, branch_head: bytes | None, lock_fd: int | None = None) -> None:
        self.work = work
        self.upper = work / UPPER
        self.scratch = work / SCRATCH
        self._lock_fd = lock_work(work) if lock_fd is None else lock_fd
        for d in (self.upper, self.scratch):
            with contextlib.suppress(FileExistsError):
                os.mkdir(d, 0o755 if d == self.upper else 0o700)
        got = self._read()
        if got is None:
            self.base = self.head = branch_head
            self.gen = 1
            self.recorded: Recorded = {}
            self._write()
            return
        self.base, self.head, self.gen = got
        self.recorded = self._read_recorded(self.gen)
        pending = self._read_pending()
        if pending is not None:
            version, gen = pending
            if version == branch_head:
                self.finish(version, gen, self._read_recorded(gen))
            else:
                self.abandon()

    @staticmethod
    def exists(work: Path) -> bool:
        """True if ``work`` is a kernel-overlay work directory."""
        return (work / "layers").exists()

    def _read_file(self, name: str) -> bytes | None:
        """The bytes of record ``name`` of the work directory; None if it is missing.

        Opened without waiting and through no link: OSError (EINVAL for a FIFO or
        other file that is not regular, which would otherwise hold the mount for ever).
        """
        flags = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        try:
            fd = os.open(self.work / name, flags)
        except FileNotFoundError:
            return None
        try:
            if not statmod.S_ISREG(os.fstat(fd).st_mode):
                raise OSError(errno.EINVAL, "not a regular file", str(self.work / name))
            with open(fd, "rb", closefd=False) as f:
                return f.read()
        finally:
            os.close(fd)

    def _read(self) -> tuple[bytes | None, bytes | None, int] | None:
        try:
            raw = self._read_file("layers")
        except OSError as exc:
            raise LayersError(
                f"the working tree state {self.work / 'layers'} cannot be read "
                f"({exc.strerror}): move {self.work} aside to start from the branch head "
                "(its upper/ holds the changed files)"
            ) from None
        if raw is None:
            return None
        try:
            st = msgpack.unpackb(raw, raw=False)
            newer = newer_format(st, FORMAT)
            if newer is not None:  # (not damage: refused, and left as it is)
                raise LayersError(newer_format_message(self.work / "layers", newer, FORMAT))
            ok = (
                isinstance(st, dict)
                and st.get("format") == FORMAT
                and all(st.get(k) is None or isinstance(st.get(k), bytes) for k in ("base", "head"))
                and isinstance(st.get("gen"), int)
            )
        except (ValueError, msgpack.UnpackException):
            ok = False
        if not ok:
            raise LayersError(
                f"the working tree state {self.work / 'layers'} is damaged: move {self.work} "
                "aside to start from the branch head (its upper/ holds the changed files)"
            )
        return st["base"], st["head"], st["gen"]

    def _write(self) -> None:
        record = {"format": FORMAT, "base": self.base, "head": self.head, "gen": self.gen}
        write_atomic(self.work / "layers", msgpack.packb(record, use_bin_type=True), mode=0o600)

    def _read_recorded(self, gen: int) -> Recorded:
        try:
            raw = self._read_file(f"recorded.{gen}")
            if raw is None:
                return {}
            got = msgpack.unpackb(raw, raw=False, use_list=False)
            if isinstance(got, tuple):  # rows [path, ino, size, mtime_ns, ctime_ns] (before)
                got = {r[0]: tuple(r[1:5]) for r in got}
            if not isinstance(got, dict) or not all(
                type(p) is bytes and type(s) is tuple and len(s) == 4
                and all(type(x) is int for x in s)
                for p, s in got.items()
            ):  # fmt: skip
                raise ValueError("not a map of stamps")
            return got
        except (OSError, ValueError, TypeError, IndexError, KeyError, msgpack.UnpackException):
            log.warning("recorded.%d is damaged: every upper file will be hashed again", gen)
            return {}

    def _write_recorded(self, gen: int, recorded: Recorded) -> None:
        data = msgpack.packb(recorded, use_bin_type=True)  # (a stamp packs as an array)
        write_atomic(self.work / f"recorded.{gen}", data, mode=0o600)

    def _read_pending(self) -> tuple[bytes, int] | None:
        try:
            raw = self._read_file("pending")
            if raw is None:
                return None
            p = msgpack.unpackb(raw, raw=False)
            ok = isinstance(p, dict) and isinstance(p.get("version"), bytes)
            if ok and isinstance(p.get("gen"), int):
                return p["version"], p["gen"]
        except (OSError, ValueError, msgpack.UnpackException):
            pass  # (damaged: dropped, as the docstring of the module says)
        return None

    def begin(self, version: bytes, recorded: Recorded) -> None:
        """A snapshot made ``version`` (its files found as ``recorded``): durably pending."""
        gen = self.gen + 1
        self._write_recorded(gen, recorded)
        record = msgpack.packb({"version": version, "gen": gen}, use_bin_type=True)
        write_atomic(self.work / "pending", record, mode=0o600)

    def finish(self, version: bytes, gen: int, recorded: Recorded) -> None:
        """The branch moved to ``version``: it is the head now."""
        old = self.gen
        self.head, self.gen, self.recorded = version, gen, recorded
        self._write()
        for name in ("pending", f"recorded.{old}"):
            with contextlib.suppress(FileNotFoundError):
                (self.work / name).unlink()

    def abandon(self) -> None:
        """A pending snapshot was not recorded: forget it."""
        for name in ("pending", f"recorded.{self.gen + 1}"):
            with contextlib.suppress(FileNotFoundError):
                (self.work / name).unlink()

    def set_base(self, base: bytes | None, head: bytes | None) -> None:
        """The lower layer is now ``base`` and the working tree recorded as ``head``."""
        self.base, self.head = base, head
        self._write()

    def set_recorded(self, recorded: Recorded) -> None:
        """Replace the recorded files (after a rebase removed some)."""
        self.gen += 1
        self._write_recorded(self.gen, recorded)
        self._write()
        with contextlib.suppress(FileNotFoundError):
            (self.work / f"recorded.{self.gen - 1}").unlink()

    def close(self) -> None:
        """Let go of the work directory (the daemon is stopping)."""
        with contextlib.suppress(OSError):
            os.close(self._lock_fd)

    def upper_empty(self) -> bool:
        """True if the upper layer holds nothing (the working tree is the base)."""
        with os.scandir(self.upper) as it:
            return next(it, None) is None

    def move_to(self, work: Path) -> None:
        """The working tree now belongs to another branch: rename its work directory
        (while mounted: the kernel holds the upper layer by its inode, not its path)."""
        os.rename(self.work, work)
        fsync_dir(work.parent)
        self.work, self.upper, self.scratch = work, work / UPPER, work / SCRATCH


# reading the upper layer ----------------------------------------------------------------


@dataclass
class Dir:
    """One directory of the upper layer, with what the lower layer and ``head`` hold there."""

    rel: bytes  # its path below MNT (b"" for MNT)
    st: os.stat_result
    lower: Tree | None  # the base's directory shown under it (None: none, or hidden)
    head: Tree | None  # the head version's directory at this path
    names: dict[bytes, os.stat_result] = field(default_factory=dict)  # but whiteouts
    whiteouts: set[bytes] = field(default_factory=set)
    targets: dict[bytes, bytes] = field(default_factory=dict)  # symbolic links' targets
    opaque: bool = False

    def shown_lower(self) -> list[Entry]:
        """The lower layer's entries MNT shows here (neither replaced nor deleted)."""
        if self.lower is None:
            return []
        covered = self.names.keys() | self.whiteouts
        return [e for e in self.lower.entries if e.name not in covered]

    def visible(self) -> set[bytes]:
        """Every name MNT shows here."""
        return set(self.names) | {e.name for e in self.shown_lower()}

    def subdir(self, name: bytes, trees: Trees) -> tuple[Tree | None, Tree | None]:
        """(lower, head) trees of the upper subdirectory ``name``."""

        def below(tree: Tree | None) -> Tree | None:
            e = tree.get(name) if tree is not None else None
            return trees(e.subtree) if e is not None and e.kind == Kind.DIR else None

        return below(self.lower), below(self.head)


def read_dir(
    walker: Walker, rel: bytes, lower: Tree | None, head: Tree | None, *, links: bool = False
) -> Dir | None:
    """The upper directory ``rel``; None if it went meanwhile. ``links``: read link targets."""
    try:
        fd = walker.dir(rel, listable=True)
        st = os.fstat(fd)
        try:
            opaque = os.getxattr(fd, OPAQUE) == b"y"
        except OSError as exc:
            if exc.errno not in (errno.ENODATA, errno.ENOTSUP, errno.EOPNOTSUPP):
                raise
            opaque = False
        d = Dir(rel, st, None if opaque else lower, head, opaque=opaque)
        scan, as_bytes = listing(fd)
        with scan:
            for e in scan:
                name = e.name if as_bytes else os.fsencode(e.name)
                try:  # beside the descriptor: a DirEntry's stat would resolve /proc again
                    est = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                if is_whiteout(est):
                    d.whiteouts.add(name)
                    continue
                d.names[name] = est
                if links and statmod.S_ISLNK(est.st_mode):
                    with contextlib.suppress(FileNotFoundError, OSError):
                        d.targets[name] = os.readlink(name, dir_fd=fd)
    except OSError as exc:
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.ELOOP):
            return None
        raise
    return d


def walk(
    upper: Path,
    trees: Trees,
    lower_root: Entry | None,
    head_root: Entry | None,
    *,
    links: bool = False,
    enter: Callable[[Dir, bytes], bool] = lambda d, name: True,
) -> Iterator[Dir]:
    """Every directory of the upper layer, parents first (an explicit stack: trees may be
    thousands of levels deep); ``enter(d, name)`` says whether to go into a subdirectory."""

    def root_tree(e: Entry | None) -> Tree | None:
        return trees(e.subtree) if e is not None and e.subtree else None

    with Walker(upper) as walker:
        stack: list[tuple[bytes, Tree | None, Tree | None]] = [
            (b"", root_tree(lower_root), root_tree(head_root))
        ]
        while stack:
            rel, lower, head = stack.pop()
            d = read_dir(walker, rel, lower, head, links=links)
            if d is None:
                continue
            yield d
            for name in sorted(d.names, reverse=True):
                if statmod.S_ISDIR(d.names[name].st_mode) and enter(d, name):
                    low, hd = d.subdir(name, trees)
                    stack.append((_join(rel, name), low, hd))


def unversionable(d: Dir, name: bytes) -> bool:
    """True for an upper entry no version may hold: a special file or a reserved name."""
    reserved = is_reserved_at_root(name) if not d.rel else is_reserved(name)
    return reserved or is_special(d.names[name])


Candidate = tuple[bytes, os.stat_result, Entry]  # an upper file, its lstat, the head's entry


def status(
    upper: Path,
    trees: Trees,
    base: Entry | None,
    head: Entry | None,
    recorded: Recorded,
    same: Callable[[list[Candidate]], set[bytes]] = lambda maybe: set(),
) -> dict[str, Any]:
    """Pending changes against ``head``: added, modified, deleted, and what is not
    versionable (renames show as a deletion and an addition: the upper layer does not
    say where a name came from). A directory added or deleted is one line ending in /.

    A file is modified if it holds other bytes or permission bits than the head's
    entry (a new mtime alone is no change, as in the on-disk working tree's status):
    one not recorded as the last snapshot found it, with the entry's size and bits, is
    compared by content: ``same`` gets these and returns the paths of those that
    hold the entry's bytes. ``kept`` is true if a file or link is not as the last
    snapshot recorded it (a new mtime too), or a special file is there: changes that
    keep the working tree over its version when the branch moves.
    """
    added: list[str] = []
    modified: list[str] = []
    maybe: list[Candidate] = []
    deleted: list[str] = []
    odd: list[str] = []
    new_dirs: set[bytes] = set()  # added directories: their contents are not listed
    unrecorded = False  # a file or link not as recorded, or a special file

    def enter(d: Dir, name: bytes) -> bool:
        if unversionable(d, name):
            return False  # (listed whole: nothing in it can be recorded)
        p = _join(d.rel, name)
        h = d.head.get(name) if d.head is not None else None
        if h is None or h.kind != Kind.DIR:
            new_dirs.add(p)  # walked for what is not versionable only
        return True

    for d in walk(upper, trees, base, head, links=True, enter=enter):
        inside_new = d.rel in new_dirs or any(d.rel.startswith(p + b"/") for p in new_dirs)
        theirs = {e.name: e for e in d.head.entries} if d.head is not None else {}
        for name, st in d.names.items():
            p = _join(d.rel, name)
            if unversionable(d, name):
                odd.append(os.fsdecode(p))
                continue
            if not statmod.S_ISDIR(st.st_mode) and recorded.get(p) != stamp(st):
                unrecorded = True
            if inside_new:
                continue
            kind = kind_of(st)
            h = theirs.get(name)
            if h is None or h.kind != kind:
                if h is not None:
                    deleted.append(_show(p, h.kind))
                added.append(_show(p, kind))
            elif kind == Kind.FILE and recorded.get(p) != stamp(st):
                if (st.st_size, st.st_mode & PERM_BITS) != (h.size, h.mode):
                    modified.append(_show(p, kind))
                else:
                    maybe.append((p, st, h))
            elif kind == Kind.SYMLINK and d.targets.get(name) != h.target:
                modified.append(_show(p, kind))
        if not inside_new and d.head is not None:
            shown = d.visible()
            deleted.extend(_show(_join(d.rel, e.name), e.kind) for e in theirs.values()
                           if e.name not in shown)  # fmt: skip
            for e in d.shown_lower():  # a lower entry the head lacks: cannot be, but say so
                if e.name not in theirs:
                    added.append(_show(_join(d.rel, e.name), e.kind))
    proved = same(maybe) if maybe else set()
    modified += [_show(p, Kind.FILE) for p, _, _ in maybe if p not in proved]
    return {
        "added": sorted(added),
        "modified": sorted(modified),
        "deleted": sorted(deleted),
        "renamed": [],
        "unversionable": sorted(odd),
        "kept": unrecorded or bool(odd or added or modified or deleted),
    }


# making a version (``daemon.upper_build``) ------------------------------------------


def reserved_message(paths: list[bytes]) -> str:
    """Why a snapshot of a tree holding reserved names is refused."""
    shown = quote_name(paths[0]) + (f" and {len(paths) - 1} more" if len(paths) > 1 else "")
    return (
        f"the working tree holds {shown}: no version may hold a name that git or dvfs "
        "reads as its own (.git, .dvfs) nor .versions at the top; rename or remove it in "
        "the mount, then snapshot again"
    )
