"""Compaction: the few journal records that rebuild the same working tree.

A long-lived mount only appends (a file made and deleted leaves three records), and
replay reads all of it at every mount; a journal longer than ``COMPACT_ABOVE`` is
rewritten at mount by ``OverlayState._compact`` as :func:`compacted` gives it.
"""

from __future__ import annotations

from typing import Any

from daemon.fs import inodes
from daemon.overlay.journal import Defs, Names

COMPACT_ABOVE = 256 << 10  # journals this long are compacted at mount (see OverlayState._compact)


def compacted(defs: Defs, over: Names) -> list[list[Any]]:
    """The records that rebuild what :func:`fold` gave, with nothing replay skips.

    Replay builds the nodes reachable from the root (see ``Overlay._replay``); their
    definitions and their directories' names are all it needs, and each directory's
    names keep their order, which is the order replay walks them in.
    """
    seen = {inodes.ROOT}
    todo = [inodes.ROOT]
    while todo:
        for kid in over.get(todo.pop(), {}).values():
            if kid is not None and kid in defs and kid not in seen:
                seen.add(kid)
                todo.append(kid)
    out = [defs[nid] for nid in sorted(seen) if nid in defs]
    for nid in sorted(seen):
        for name, kid in over.get(nid, {}).items():
            out.append(["U", nid, name] if kid is None else ["L", nid, name, kid])
    return out
