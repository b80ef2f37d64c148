"""The record of a merge in progress: ``.dvfs/MERGE``.

``dvfs merge`` (``vfs.ops.merge``) writes it before it changes the working tree when the
two sides changed the same paths, and ``dvfs commit`` removes it after the branch
moved to the version with two parents. While it is there and *live*, ``status``
shows the merge, ``commit`` adds the second parent (and refuses while a conflict is
unresolved), ``add`` and ``restore --source/--ours/--theirs`` mark the paths they
touch resolved, and ``dvfs merge --abort`` goes back to the branch's version.

Format version 1, msgpack (``use_bin_type``), written with ``write_atomic`` (temp,
fsync, rename)::

    {"v": 1, "branch": str, "ours": id, "theirs": id, "base": id, "rev": str,
     "message": str,
     "conflicts": [[path, ours | nil, theirs | nil, resolved], ...],
     "ready": bool}

    ours, theirs   the branch's version when the merge began, and the version merged
    base           their merge base
    rev            the revision as the user named it (for messages)
    message        the message the merge version will get
    conflicts      sorted by path, no repeats; each side is [size, mtime_ns] of the
                   file or link at that path on that side, nil where that side deleted
                   it; resolved is a bool
    ready          false from the record's first writing until the working tree and
                   the index hold the merged files (a merge killed or stopped in
                   between cannot be committed: only ``--abort`` leaves it); a
                   record without it, written before it existed, counts as true

A checkout of a whole version (``checkout``, ``switch``, a pull's fast-forward)
removes the record: the merge is left, as ``dvfs merge --abort`` leaves it, so that
coming back to the branch never brings a stale merge back to life.

The record is live only while HEAD is on ``branch`` and the branch still names
``ours``: a commit killed after its branch moved but before the record was removed
leaves a stale record, which every reader ignores and the next writer removes. A
stale record whose branch is deleted, or renamed, or whose name another branch takes
by a rename, is removed then (:func:`forget_for`): it could otherwise come back to
life on a branch of that name.

Test hook: ``DVFS_TEST_MERGE_KILL_AT=<step>`` makes ``dvfs merge`` kill itself
(SIGKILL) at ``recorded`` (this record written, the working tree untouched),
``removed`` (the files theirs deleted are gone), ``written`` (theirs' files written,
the index not saved), ``indexed`` (the index holds the merged files, nothing
committed) or ``moved`` (the branch names the merge version, this record not yet
removed): :func:`reached`.
"""

from __future__ import annotations

import os
import signal
import stat
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path

import msgpack

from vfs.errors import FormatError
from vfs.model.codec import Entry, Kind
from vfs.model.names import directories_above
from vfs.repo.refs import Refs
from vfs.store.durable import write_atomic

MERGE = "MERGE"
FORMAT = 1
LIMIT = 256 << 20  # bytes: a merge of a million conflicting paths stays far below
_KEYS = {"v", "branch", "ours", "theirs", "base", "rev", "message", "conflicts"}
_OPTIONAL = {"ready"}

Side = tuple[int, int] | None  # (size, mtime_ns) of what a side holds at a path


@dataclass(frozen=True)
class Conflict:
    """A path both sides changed differently."""

    path: bytes
    ours: Side
    theirs: Side
    resolved: bool = False


@dataclass(frozen=True)
class MergeState:
    """A merge in progress (see the module docstring)."""

    branch: str
    ours: bytes
    theirs: bytes
    base: bytes
    rev: str
    message: str
    conflicts: tuple[Conflict, ...]
    ready: bool = True  # the working tree and index hold the merge (module docstring)

    def unresolved(self) -> list[bytes]:
        """The paths still in conflict."""
        return [c.path for c in self.conflicts if not c.resolved]

    def resolving(self, paths: Iterable[bytes], *, below: bool = True) -> MergeState:
        """This state with the conflicts at or below ``paths`` marked resolved (at
        them alone, without ``below``)."""
        tops = [p for p in paths]
        at = set(tops)

        def hit(p: bytes) -> bool:
            if not below:
                return p in at
            return any(not t or p == t or p.startswith(t + b"/") for t in tops)

        return replace(
            self,
            conflicts=tuple(
                replace(c, resolved=True) if hit(c.path) else c for c in self.conflicts
            ),
        )


def _side(s: Side) -> list[int] | None:
    return None if s is None else [s[0], s[1]]


def save(dvfs_dir: Path, state: MergeState) -> None:
    """Write the record atomically (the caller holds the repository lock)."""
    rec = {
        "v": FORMAT, "branch": state.branch, "ours": state.ours, "theirs": state.theirs,
        "base": state.base, "rev": state.rev, "message": state.message,
        "conflicts": [[c.path, _side(c.ours), _side(c.theirs), c.resolved]
                      for c in state.conflicts],
        "ready": state.ready,
    }  # fmt: skip
    write_atomic(dvfs_dir / MERGE, msgpack.packb(rec, use_bin_type=True))


KILL_ENV = "DVFS_TEST_MERGE_KILL_AT"


def reached(step: str) -> None:
    """Test hook: die at once if ``DVFS_TEST_MERGE_KILL_AT`` names this step."""
    if os.environ.get(KILL_ENV) == step:
        os.kill(os.getpid(), signal.SIGKILL)


def remove(dvfs_dir: Path) -> None:
    """Remove the record (missing is fine)."""
    (dvfs_dir / MERGE).unlink(missing_ok=True)


def forget_for(dvfs_dir: Path, refs: Refs, branches: Iterable[str]) -> None:
    """Remove a record that is not live and names one of ``branches`` (a branch being
    deleted, or a name a branch is renamed from or to; the caller holds the lock).

    Its merge was given up when HEAD moved away (``switch -c``), and its branch goes:
    kept, the record would come back to life once HEAD was on a branch of that name at
    its ``ours`` again (``branch -D main``, then ``branch -m x main``), a merge the
    user was told is gone. A damaged record is left for ``merge --abort``."""
    names = set(branches)
    try:
        state = load(dvfs_dir)
    except FormatError:
        return
    if state is not None and state.branch in names and live(dvfs_dir, refs) is None:
        remove(dvfs_dir)


def _id(x: object) -> bytes:
    if not (isinstance(x, bytes) and len(x) == 32):
        raise ValueError("id")
    return x


def _decode_side(x: object) -> Side:
    if x is None:
        return None
    if not (isinstance(x, list) and len(x) == 2 and all(type(n) is int and n >= 0 for n in x)):
        raise ValueError("side")
    return x[0], x[1]


def decode(data: bytes) -> MergeState:
    """Decode a record strictly; FormatError if it is not one."""
    try:
        rec = msgpack.unpackb(data, raw=False, strict_map_key=True)
        if not (isinstance(rec, dict) and _KEYS <= set(rec) <= _KEYS | _OPTIONAL):
            raise ValueError("fields")
        if rec["v"] != FORMAT or not isinstance(rec.get("ready", True), bool):
            raise ValueError("fields")
        for k in ("branch", "rev", "message"):
            if not isinstance(rec[k], str):
                raise ValueError(k)
        conflicts = []
        last = None
        for row in rec["conflicts"]:
            if not (isinstance(row, list) and len(row) == 4 and isinstance(row[0], bytes)):
                raise ValueError("conflict")
            if (last is not None and row[0] <= last) or not isinstance(row[3], bool):
                raise ValueError("conflict order")
            last = row[0]
            conflicts.append(Conflict(row[0], _decode_side(row[1]), _decode_side(row[2]), row[3]))
        return MergeState(
            rec["branch"], _id(rec["ours"]), _id(rec["theirs"]), _id(rec["base"]),
            rec["rev"], rec["message"], tuple(conflicts), rec.get("ready", True),
        )  # fmt: skip
    except (ValueError, TypeError, KeyError, msgpack.ExtraData, msgpack.FormatError) as exc:
        raise FormatError(
            f".dvfs/{MERGE} is damaged ({exc}): run `dvfs merge --abort` to leave the merge"
        ) from None


_LEAVE = ": run `dvfs merge --abort` to leave the merge"


def load(dvfs_dir: Path) -> MergeState | None:
    """The record as written, live or not; None if there is none."""
    path = dvfs_dir / MERGE
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise FormatError(f".dvfs/{MERGE} cannot be read ({exc.strerror}){_LEAVE}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode) or st.st_size > LIMIT:
            raise FormatError(f".dvfs/{MERGE} is not a merge record dvfs wrote{_LEAVE}")
        chunks = []
        while chunk := os.read(fd, 1 << 20):
            chunks.append(chunk)
            if sum(map(len, chunks)) > LIMIT:
                raise FormatError(
                    f".dvfs/{MERGE} is larger than any merge record dvfs writes{_LEAVE}"
                )
    finally:
        os.close(fd)
    return decode(b"".join(chunks))


def live(dvfs_dir: Path, refs: Refs) -> MergeState | None:
    """The merge in progress: the record, if HEAD is on its branch at its ``ours``."""
    state = load(dvfs_dir)
    if state is None:
        return None
    head = refs.head()
    if head.detached is not None or head.branch != state.branch:
        return None
    if refs.get(f"refs/heads/{state.branch}") != state.ours:
        return None
    return state


@dataclass(frozen=True)
class Instead:
    """What a side of a conflict holds instead of its path: ``renamed`` (the base's
    content, now at ``path``), ``directory`` (files below the path) or ``file`` (a
    file at ``path``, a directory above the conflict's path); or, where the side has
    the path, what is not a file there: ``link`` (a symbolic link to ``path``)."""

    kind: str
    path: bytes


Renames = dict[tuple[bytes, str], Instead]  # (conflict path, "ours" | "theirs") -> instead


def renamed(
    conflicts: Sequence[Conflict],
    base: Mapping[bytes, Entry],
    ours: Mapping[bytes, Entry],
    theirs: Mapping[bytes, Entry],
) -> Renames:
    """What a side that lacks a conflict's path holds instead, where it holds something.

    The merge is by path, so a conflict where one side lacks the path reads "changed
    here, deleted there"; but that side may have renamed it (the base's content under
    a path the base lacks, as far as contents tell: "theirs: renamed to b", where the
    other side's change may belong), made it a directory ("theirs: a directory"), or
    have a file where the path needs a directory ("ours: a file at d", for ``d/x``).
    A side that has the path as a symbolic link is named so, with its target: its
    size alone would read as a file's.
    """
    out: Renames = {}
    for side, tree in (("ours", ours), ("theirs", theirs)):
        for c in conflicts:
            e = tree.get(c.path) if getattr(c, side) is not None else None
            if e is not None and e.kind == Kind.SYMLINK:
                out[(c.path, side)] = Instead("link", e.target)
        absent = [c.path for c in conflicts if getattr(c, side) is None]
        if not absent:
            continue
        dirs = directories_above(tree)
        for p in absent:
            if p in dirs:
                out[(p, side)] = Instead("directory", p)
                continue
            above = p.rpartition(b"/")[0]
            while above and above not in tree:
                above = above.rpartition(b"/")[0]
            if above:
                out[(p, side)] = Instead("file", above)
        gone = [p for p in absent if p in base and (p, side) not in out]
        if not gone:
            continue
        new: dict[tuple[int, bytes, bytes], bytes] = {}
        for p in sorted(p for p in tree if p not in base):
            new.setdefault(_content(tree[p]), p)
        for p in gone:
            if (hit := new.get(_content(base[p]))) is not None:
                out[(p, side)] = Instead("renamed", hit)
    return out


def _content(e: Entry) -> tuple[int, bytes, bytes]:
    return (int(e.kind), e.digest, e.target)
