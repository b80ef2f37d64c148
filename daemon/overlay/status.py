"""What the working tree changed over its base version, as ``dvfs status`` shows it."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from typing import Any

from daemon.overlay.node import PERM, WNode, join
from daemon.overlay.rebase import Rebase
from vfs import MAX_NAME, VERSIONS_DIR, Entry, Kind, Tree, any_reserved, is_reserved

WALKS = 4  # walks of the changed part a status may take (see Status.status)


class Status(Rebase):
    """Pending changes, read from the changed part of the tree."""

    def reserved_paths(self) -> list[bytes]:
        """Paths of nodes whose names no version may hold (``vfs.model.names``:
        reserved, or longer than ``MAX_NAME``), sorted.

        Only changed directories are looked into: the others are versions' trees,
        which decode only without such names. Nodes made through the mount cannot
        take one either; a working tree left by an older version may hold some.
        """
        out: list[bytes] = []
        todo = [self.root]
        while todo:
            d = todo.pop()
            names = list(d.kids or {})
            if d is self.root and VERSIONS_DIR in names:
                out.append(VERSIONS_DIR)
            if any_reserved(names) is not None:
                out.extend(join(d.path, n) for n in names if is_reserved(n))
            out.extend(join(d.path, n) for n in names if len(n) > MAX_NAME)
            todo.extend(k for k in (d.kids or {}).values() if k.is_dir and k.dirty)
        return sorted(set(out))

    def changed_files(self) -> list[WNode]:
        """Every upper file of the working tree (what a snapshot hashes), once each."""
        out: dict[int, WNode] = {}
        todo = [self.root] if self.root.dirty else []
        while todo:
            for kid in (todo.pop().kids or {}).values():
                if kid.is_dir and kid.dirty:
                    todo.append(kid)
                elif kid.upper and kid.kind == Kind.FILE:
                    out[kid.nid] = kid
        return list(out.values())

    def unloaded_dirty(self) -> list[WNode]:
        """Dirty directories whose children are not loaded yet (replayed changes)."""
        out: list[WNode] = []
        todo = [self.root]
        while todo:
            d = todo.pop()
            if not d.dirty:
                continue
            if d.kids is None:
                out.append(d)
                continue
            todo.extend(k for k in d.kids.values() if k.is_dir)
        return out

    def status(
        self,
        trees: Mapping[bytes, Tree] | None = None,
        missing: set[bytes] | None = None,
        unhashed: dict[int, WNode] | None = None,
    ) -> dict[str, list[Any]]:
        """Pending changes: added, modified, deleted and renamed paths, and what no
        version may hold (FIFOs, sockets, devices, reserved names: ``unversionable``).

        Read from the changed part of the tree only (call when ``unloaded_dirty`` is
        empty). A directory that was added, deleted or renamed is one line ending in
        "/"; a renamed file whose content also changed is listed in both; a file
        (or directory) renamed over one of the base version is that one modified (and
        its old path deleted, unless a node took it again); a file
        renamed away from a path that a new file took again (an editor's backup,
        ``mv f f~`` and a new ``f``) is added under its new name, as the next
        version has both; a hard link's other names are added files. A directory
        made where the base version had one is compared with that one's tree, taken
        from ``trees``; the ids of those not there are added to ``missing`` (then call
        again with them). A file is modified if it holds other bytes, another link
        target or other permission bits than the version's (a new mtime alone is no
        change, as in the on-disk working tree's status): an upper file of the same
        size is compared by its digest, known once hashed (``WNode.hashed``); one not
        hashed since it was last written is listed modified and added to
        ``unhashed`` (then hash it and call again). A directory renamed away from a
        path that a new directory took again (``mv d d2 && mkdir d``) is added under
        its new name, with what was moved along with it renamed, as the next version
        holds both.
        """
        # Which paths are taken again is known once the walk is over: walk again, told
        # the last walk's, until they agree (a second walk, where a directory is added).
        retaken: set[bytes] = set()
        for _ in range(WALKS):
            out, again = self._changes(trees or {}, missing, retaken, unhashed)
            if again <= retaken:
                break
            retaken |= again
        return out

    def _changes(
        self,
        trees: Mapping[bytes, Tree],
        missing: set[bytes] | None,
        retaken: set[bytes],
        unhashed: dict[int, WNode] | None,
    ) -> tuple[dict[str, list[Any]], set[bytes]]:
        """One walk of :meth:`status`, given the base paths a new directory took again
        (``retaken``); also returns the ones it found that renamed directories left."""
        added: list[str] = []
        modified: list[str] = []
        renamed: list[tuple[bytes, bytes, WNode]] = []
        seen: set[bytes] = set()
        taken: set[bytes] = set()  # base paths a node of the same kind stands at again
        gone: list[tuple[bytes, Entry]] = []
        odd: list[str] = [os.fsdecode(p) for p in self.reserved_paths()]

        def show(p: bytes, n: WNode | Entry) -> str:
            return os.fsdecode(p) + ("/" if n.kind == Kind.DIR else "")

        # A walk of the changed directories, depth first, with a stack of frames (a
        # tree may be thousands of levels deep). A frame: a directory's path,
        # the directory of the base version it stands for (base tree and origin; a
        # new directory made in place of one stands for that one), in_added (below
        # an added directory, whose one line covers the new nodes in it), and the
        # iterator over its children, and the directory itself.
        Frame = tuple[bytes, Tree | None, bytes | None, bool, Iterator[tuple[bytes, WNode]], WNode]
        stack: list[Frame] = []

        def enter(
            d: WNode, path: bytes, base: Tree | None, origin: bytes | None, in_added: bool
        ) -> None:
            assert d.kids is not None
            stack.append((path, base, origin, in_added, iter(sorted(d.kids.items())), d))

        if self.root.dirty and self.root.kids is not None:
            enter(self.root, b"", self.root.base, self.root.origin, False)
        while stack:
            dpath, base, origin, in_added, kids, d = stack[-1]
            step = next(kids, None)
            if step is None:
                stack.pop()
                if base is not None and origin is not None:
                    gone.extend((join(origin, e.name), e) for e in base.entries)
                continue
            name, kid = step
            p = join(dpath, name)
            if kid.special:
                odd.append(os.fsdecode(p))
                continue
            here = None if origin is None else join(origin, name)
            first = kid.parent is d and kid.name == name  # not a hard link's other name
            came_from = kid.origin if first else None
            if came_from is None:
                prior = base.get(name) if base is not None else None
                if prior is not None and here is not None and prior.kind == kid.kind:
                    seen.add(here)
                    taken.add(here)
                    if not first:  # another name of a file: changed if it shows another
                        if _modified(kid, prior, unhashed):
                            modified.append(show(p, kid))
                    elif kid.is_dir:
                        sub = trees.get(prior.subtree) if prior.subtree else None
                        if prior.subtree and sub is None and missing is not None:
                            missing.add(prior.subtree)
                        enter(kid, p, sub, here, False)
                    elif _modified(kid, prior, unhashed):
                        modified.append(show(p, kid))
                elif kid.is_dir:
                    if not in_added:
                        added.append(show(p, kid))
                    enter(kid, p, None, None, True)  # for what was moved into it
                elif not in_added:
                    added.append(show(p, kid))
                continue
            if came_from != here and here is not None:
                prior = base.get(name) if base is not None else None
                if (
                    prior is not None
                    and prior.kind == kid.kind
                    and self._opened(kid, trees, missing)
                ):
                    # The base holds a node of this kind here: the node was renamed over
                    # it (``mv new old``, ``rm -r old && mv new old``: old is modified, new's
                    # old path deleted), or it is that very entry (a hard link whose first
                    # name went), not renamed. A directory is compared with the one it took
                    # the place of.
                    seen.add(here)
                    taken.add(here)
                    if kid.is_dir:
                        sub = trees.get(prior.subtree) if prior.subtree else None
                        if prior.subtree and sub is None and missing is not None:
                            missing.add(prior.subtree)
                        enter(kid, p, sub, here, False)
                    elif _modified(kid, prior, unhashed):
                        modified.append(show(p, kid))
                    continue
            if (
                kid.is_dir
                and came_from != here
                and came_from in retaken
                and self._opened(kid, trees, missing)
            ):  # renamed away from a path a new directory took: a new directory too
                if not in_added:
                    added.append(show(p, kid))
                enter(kid, p, None, None, True)
                continue
            seen.add(came_from)
            if came_from != here:
                renamed.append((came_from, p, kid))
            if kid.is_dir:
                if kid.dirty and kid.kids is not None:
                    enter(kid, p, kid.base, kid.origin, False)
            elif kid.entry is None or _modified(kid, kid.entry, unhashed):
                modified.append(show(p, kid))
        deleted = sorted(show(p, e) for p, e in gone if p not in seen)
        left = {old for old, _, kid in renamed if kid.is_dir and old in taken}
        moved: list[list[str]] = []
        for old, new, kid in renamed:
            if kid.is_dir or old not in taken:
                moved.append([show(old, kid), show(new, kid)])
            else:  # the old path holds a file again: the next version has both
                added.append(show(new, kid))
                modified = [m for m in modified if m != show(new, kid)]
        return {
            "added": added,
            "modified": sorted(set(modified)),
            "deleted": _outermost(deleted),
            "renamed": moved,
            "unversionable": sorted(odd),
        }, left

    def _opened(self, n: WNode, trees: Mapping[bytes, Tree], missing: set[bytes] | None) -> bool:
        """True for a file, or a directory whose children are loaded: loaded here if
        need be, from its tree in ``trees`` (else its id is added to ``missing``).

        A directory renamed without being looked into (``mv new old`` after a remount,
        or before any listing) is compared with the one it took the place of by its
        children, as a directory that was listed is; compared as a whole, it showed as
        renamed while the path it took showed as deleted.
        """
        if not n.is_dir or n.kids is not None:
            return True
        own = n.subtree()
        if own is None or own in trees:
            self.load(n, trees[own] if own is not None else None)
            return True
        if missing is not None:
            missing.add(own)
        return False


def _modified(n: WNode, e: Entry, unhashed: dict[int, WNode] | None) -> bool:
    """True if file or link ``n`` does not hold what base entry ``e`` (of its kind)
    records: other bytes, target or permission bits; its mtime plays no part.

    An upper file of ``e``'s size not hashed since it was last written counts as
    modified and is added to ``unhashed``.
    """
    if n.kind == Kind.SYMLINK:
        return n.target != e.target
    if n.mode & PERM != e.mode & PERM:
        return True
    if not n.upper:
        return n.entry is None or (n.entry.digest, n.entry.size) != (e.digest, e.size)
    if n.size != e.size:
        return True
    if n.hashed is not None and n.hashed[0] == n.wrote:
        return n.hashed[1] != e.digest
    if unhashed is not None:
        unhashed[n.nid] = n
    return True


def _outermost(paths: list[str]) -> list[str]:
    """Drop paths inside a listed directory ("a/" covers "a/b")."""
    out: list[str] = []
    for p in sorted(paths):
        if out and out[-1].endswith("/") and p.startswith(out[-1]):
            continue
        out.append(p)
    return out
