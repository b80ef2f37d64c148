"""Long lists of paths shown by directory, so that 5,000 new files are a few lines.

``dvfs status`` lists each section (staged additions, modifications, untracked
files...) file by file while it is short. A longer one is shown by directory: the
paths are gathered under their directories at the deepest level where the lines
still fit in ``limit``, so that ``data/train/`` and ``data/val/`` stay apart when
there is room for both, and a directory holding one path shows that path itself.
Paths at the top of the repository are never gathered. ``dvfs status -v`` (and
``--json``) list every path.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

GROUP_OVER = 30  # a section longer than this is shown by directory


@dataclass(frozen=True)
class Group:
    """One line: a path alone (``count`` 1, ``members`` its index), or a directory."""

    path: bytes
    is_dir: bool
    members: tuple[int, ...]  # indexes into the paths given

    @property
    def count(self) -> int:
        """How many of the paths given this line stands for."""
        return len(self.members)


def _key(path: bytes, depth: int) -> tuple[bytes, bool]:
    """The line ``path`` belongs to when directories ``depth`` deep are gathered."""
    parts = path.split(b"/")
    if len(parts) - 1 >= depth:  # at least ``depth`` directories above the name
        return b"/".join(parts[:depth]), True
    return path, False


def _gather(paths: Sequence[bytes], depth: int) -> dict[tuple[bytes, bool], list[int]]:
    groups: dict[tuple[bytes, bool], list[int]] = {}
    for i, p in enumerate(paths):
        groups.setdefault(_key(p, depth), []).append(i)
    return groups


def by_directory(paths: Sequence[bytes], limit: int = GROUP_OVER) -> list[Group]:
    """``paths`` as at most about ``limit`` lines (see the module docstring), in order.

    Up to ``limit`` paths are returned one per line. Otherwise directories are
    gathered at the deepest level that gives at most ``limit`` lines, or at the top
    level when none does.
    """
    if len(paths) <= limit:
        return [Group(p, False, (i,)) for i, p in enumerate(paths)]
    deepest = max(p.count(b"/") for p in paths)
    chosen = _gather(paths, 1)
    for depth in range(2, deepest + 1):
        groups = _gather(paths, depth)
        if len(groups) > limit:
            break
        chosen = groups
    out = []
    for (key, is_dir), members in chosen.items():
        if is_dir and len(members) == 1:
            out.append(Group(paths[members[0]], False, (members[0],)))
        else:
            out.append(Group(key, is_dir, tuple(members)))
    return sorted(out, key=lambda g: g.path)
