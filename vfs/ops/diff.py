"""Differences between two states of the data: added, removed, modified, renamed.

Both sides are maps of path -> (kind, mode, size, digest/target). Between two versions
the trees are walked together and subtrees with equal ids are skipped, so the cost
follows the size of the change, not of the data. A removed and an added path with the
same content and kind become one rename (the first unused candidate of the same name,
in path order, else the first unused one: a directory moved among copies of its files
is paired with itself), unless it is empty.

Directories are known by the files in them, except empty ones: a snapshot of a
mounted working tree records those, so between two versions an empty directory where
the other side has no directory is added or removed like a file.

Trees are walked with a stack, not by recursion, so any depth can be compared.

Restricted to some paths (``dvfs log -- PATH``, ``dvfs diff REV REV PATH``), only the
entries on the way to each path are read, and below it only the subtrees that differ.

Parameters are compared by name; nested mappings are compared key by key, their
names joined with dots (``model.depth``).
"""

from __future__ import annotations

from collections import defaultdict, deque
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from vfs.model.codec import Entry, Kind
from vfs.ops import rows
from vfs.repo.history import History
from vfs.repo.stage import Staged

Side = Mapping[bytes, Entry | Staged]


@dataclass(frozen=True)
class Change:
    """One path's change; ``old``/``new`` are None for additions/removals.

    ``old_mode``/``new_mode``: the permission bits of both sides of a modified or
    renamed path whose bits changed (``chmod +x`` alone is a change); None otherwise.
    ``old_kind``: what a modified path was when it was another kind (a file that became
    a link, or the reverse); its permission bits are then not compared (a link has none).
    """

    status: str  # "added" | "removed" | "modified" | "renamed"
    path: bytes
    old_path: bytes | None = None
    old_size: int | None = None
    new_size: int | None = None
    kind: str = "file"  # "file" | "link" | "dir" (an empty directory)
    old_mode: int | None = None
    new_mode: int | None = None
    mode_only: bool = False  # modified: the same bytes, other permission bits
    old_kind: str | None = None  # modified: the kind it was, if another

    @property
    def mode_changed(self) -> bool:
        """True if the permission bits differ between the two sides."""
        return self.old_mode != self.new_mode


_KIND_NAMES = {Kind.FILE: "file", Kind.SYMLINK: "link", Kind.DIR: "dir"}


def _content(e: Entry | Staged) -> tuple[int, bytes, bytes]:
    return (int(e.kind), e.digest, e.target)


def _same(a: Entry | Staged, b: Entry | Staged) -> bool:
    return _content(a) == _content(b) and a.mode == b.mode and a.size == b.size


def diff_maps(old: Side, new: Side) -> list[Change]:
    """Changes turning ``old`` into ``new``, sorted by path, renames detected.

    A path that turns from a directory into a file or back is removed and added.
    """
    swapped = {
        p for p in new if p in old and (old[p].kind == Kind.DIR) != (new[p].kind == Kind.DIR)
    }
    added = sorted(p for p in new if p not in old or p in swapped)
    removed = sorted(p for p in old if p not in new or p in swapped)
    changes = [
        Change(
            "modified", p, old_size=old[p].size, new_size=new[p].size, kind=_kind(new[p]),
            **_modes(old[p], new[p]),
        )
        for p in new
        if p in old and p not in swapped and not _same(old[p], new[p])
    ]  # fmt: skip
    by_content: dict[tuple[int, bytes, bytes], deque[bytes]] = defaultdict(deque)
    by_name: dict[tuple[tuple[int, bytes, bytes], bytes], deque[bytes]] = defaultdict(deque)
    for p in removed:
        key = _content(old[p])
        by_content[key].append(p)
        by_name[key, _name(p)].append(p)
    renamed_from: set[bytes] = set()
    for p in added:
        e = new[p]
        key = _content(e)
        # Empty files and directories all look alike: never a rename.
        src = None
        if key in by_content and (e.kind == Kind.SYMLINK or (e.kind == Kind.FILE and e.size > 0)):
            src = _unused(by_name.get((key, _name(p))), renamed_from) or _unused(
                by_content[key], renamed_from
            )
        if src is not None:
            renamed_from.add(src)
            changes.append(
                Change("renamed", p, src, old[src].size, e.size, _kind(e), **_modes(old[src], e))
            )
        else:
            changes.append(Change("added", p, new_size=e.size, kind=_kind(e)))
    changes += [
        Change("removed", p, old_size=old[p].size, kind=_kind(old[p]))
        for p in removed
        if p not in renamed_from
    ]
    return sorted(changes, key=lambda c: (c.path, c.status != "removed"))


def _name(path: bytes) -> bytes:
    return path.rpartition(b"/")[2]


def _unused(candidates: deque[bytes] | None, used: set[bytes]) -> bytes | None:
    """The first of ``candidates`` not in ``used`` (those before it are dropped)."""
    while candidates:
        first = candidates.popleft()
        if first not in used:
            return first
    return None


def _kind(e: Entry | Staged) -> str:
    return _KIND_NAMES[e.kind]


def _modes(a: Entry | Staged, b: Entry | Staged) -> dict[str, Any]:
    """``old_mode``/``new_mode`` of a :class:`Change` from ``a`` to ``b``, if they differ
    (and ``mode_only`` if nothing else does); ``old_kind`` instead if the kind changed."""
    if a.kind != b.kind:
        return {"old_kind": _kind(a)}
    if a.mode == b.mode:
        return {}
    same = _content(a) == _content(b) and a.size == b.size
    return {"old_mode": a.mode, "new_mode": b.mode, "mode_only": same}


def _walk_diff(
    hist: History,
    a: bytes | None,
    b: bytes | None,
    prefix: bytes,
    old: dict[bytes, Entry],
    new: dict[bytes, Entry],
) -> None:
    """Fill ``old``/``new`` with the entries of the subtrees that differ, leaving out
    those that both sides hold byte for byte (:func:`vfs.ops.rows.differing`: in a
    directory of 20,000 entries where one changed, one entry a side is decoded).

    A stack of directory pairs takes the place of recursion: any depth works.
    """
    stack = [(a, b, prefix)]
    while stack:
        a, b, prefix = stack.pop()
        if a == b:
            continue
        if a and b:
            xs, ys = rows.differing(hist, a, b)
        else:
            xs = hist.tree(a).entries if a else ()
            ys = hist.tree(b).entries if b else ()
        ea = {e.name: e for e in xs}
        eb = {e.name: e for e in ys}
        for name in ea.keys() | eb.keys():
            x, y = ea.get(name), eb.get(name)
            path = prefix + b"/" + name if prefix else name
            xd = x.subtree if x is not None and x.kind == Kind.DIR else None
            yd = y.subtree if y is not None and y.kind == Kind.DIR else None
            if xd is not None or yd is not None:
                stack.append((xd, yd, path))
                # An empty directory where the other side has none was made or removed.
                if x is not None and xd is not None and yd is None and not hist.tree(xd).entries:
                    old[path] = x
                if y is not None and yd is not None and xd is None and not hist.tree(yd).entries:
                    new[path] = y
            if x is not None and x.kind != Kind.DIR:
                old[path] = x
            if y is not None and y.kind != Kind.DIR:
                new[path] = y


def tree_delta(
    hist: History, a: bytes | None, b: bytes | None
) -> tuple[dict[bytes, Entry], dict[bytes, Entry]]:
    """The file/link entries of tree ``a`` and tree ``b`` below subtrees that differ,
    except those the two sides hold byte for byte (equal, whatever the comparison).

    Empty directories that only one side has are included (see the module doc).
    """
    old: dict[bytes, Entry] = {}
    new: dict[bytes, Entry] = {}
    _walk_diff(hist, a, b, b"", old, new)
    return old, new


def diff_trees(hist: History, a: bytes | None, b: bytes | None) -> list[Change]:
    """Changes from tree ``a`` to tree ``b`` (None for an empty tree)."""
    return diff_maps(*tree_delta(hist, a, b))


def outermost(paths: Iterable[bytes]) -> list[bytes]:
    """``paths`` without duplicates and without those inside another one (b"" is all)."""
    out: list[bytes] = []
    for p in sorted(set(paths)):
        if not any(not q or p.startswith(q + b"/") for q in out):
            out.append(p)
    return out


def under(path: bytes, prefixes: Iterable[bytes]) -> bool:
    """True if ``path`` is one of ``prefixes`` or below one (b"" holds everything)."""
    return any(not q or path == q or path.startswith(q + b"/") for q in prefixes)


def tree_delta_under(
    hist: History, a: bytes | None, b: bytes | None, paths: Iterable[bytes]
) -> tuple[dict[bytes, Entry], dict[bytes, Entry]]:
    """:func:`tree_delta` restricted to ``paths`` (files, links or directories)."""
    old: dict[bytes, Entry] = {}
    new: dict[bytes, Entry] = {}
    for path in outermost(paths):
        x = hist.lookup(a, path) if a else None
        y = hist.lookup(b, path) if b else None
        xd = x.subtree if x is not None and x.kind == Kind.DIR else None
        yd = y.subtree if y is not None and y.kind == Kind.DIR else None
        if xd is not None or yd is not None:
            _walk_diff(hist, xd, yd, path, old, new)
        if path:  # an empty directory that one side alone has (see the module doc)
            if x is not None and xd is not None and yd is None and not hist.tree(xd).entries:
                old[path] = x
            if y is not None and yd is not None and xd is None and not hist.tree(yd).entries:
                new[path] = y
        if x is not None and x.kind != Kind.DIR:
            old[path] = x
        if y is not None and y.kind != Kind.DIR:
            new[path] = y
    return old, new


def changed_under(hist: History, a: bytes | None, b: bytes | None, paths: Iterable[bytes]) -> bool:
    """True if anything at or below one of ``paths`` differs from tree ``a`` to tree ``b``.

    Equal entries on the way (equal subtree ids) answer at once; only subtrees whose
    ids differ are compared, and a change of mtimes alone is no change (as in a diff).
    """
    for path in outermost(paths):
        x = hist.lookup(a, path) if a else None
        y = hist.lookup(b, path) if b else None
        if x is None and y is None:
            continue
        if x is None or y is None or (x.kind == Kind.DIR) != (y.kind == Kind.DIR):
            return True
        if x.kind != Kind.DIR:
            if not _same(x, y):
                return True
        elif x.subtree != y.subtree and diff_maps(*tree_delta(hist, x.subtree, y.subtree)):
            return True
    return False


@dataclass(frozen=True)
class ParamChange:
    """One parameter's change between two versions (dotted name for nested ones)."""

    status: str  # "added" | "removed" | "changed"
    name: str
    old: Any = None
    new: Any = None


def flat_params(params: Mapping[str, Any], prefix: str = "") -> Iterator[tuple[str, Any]]:
    """Every parameter, nested mappings spelled as dotted names (``model.depth``)."""
    for k, v in params.items():
        name = f"{prefix}{k}"
        if isinstance(v, Mapping) and v:
            yield from flat_params(v, name + ".")
        else:
            yield name, v


def _equal(x: Any, y: Any) -> bool:
    """Equal as recorded: 1 and 1.0 and True differ, NaN equals NaN."""
    if type(x) is not type(y):
        return False
    if isinstance(x, float):
        return x == y or (x != x and y != y)
    if isinstance(x, list):
        return len(x) == len(y) and all(_equal(i, j) for i, j in zip(x, y, strict=True))
    if isinstance(x, dict):
        return x.keys() == y.keys() and all(_equal(x[k], y[k]) for k in x)
    return bool(x == y)


def param_changes(old: Mapping[str, Any], new: Mapping[str, Any]) -> list[ParamChange]:
    """Parameters added, removed or changed from ``old`` to ``new``, by name."""
    a = dict(flat_params(old))
    b = dict(flat_params(new))
    out = [ParamChange("removed", k, old=a[k]) for k in a if k not in b]
    out += [ParamChange("added", k, new=b[k]) for k in b if k not in a]
    out += [ParamChange("changed", k, a[k], b[k]) for k in b if k in a and not _equal(a[k], b[k])]
    return sorted(out, key=lambda c: c.name)


def same_entry(a: Entry | Staged, b: Entry | Staged) -> bool:
    """True if two entries hold the same content, kind, mode and size."""
    return _same(a, b)


def summary(changes: list[Change]) -> dict[str, int]:
    """Counts per kind of change plus bytes added and removed."""
    out = {"added": 0, "removed": 0, "modified": 0, "renamed": 0, "bytes_added": 0,
           "bytes_removed": 0}  # fmt: skip
    for c in changes:
        out[c.status] += 1
        if c.mode_only:  # (no byte written, as for a rename)
            continue
        if c.status in ("added", "modified"):
            out["bytes_added"] += c.new_size or 0
        if c.status in ("removed", "modified"):
            out["bytes_removed"] += c.old_size or 0
    return out
