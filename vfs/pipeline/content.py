"""Content ids: what a stage's deps and outs are compared by, run to run.

A content id is 32 bytes of BLAKE3, computed from content alone:

- a file: its digest, BLAKE3 of its bytes (the digest tree records hold);
- a symbolic link: BLAKE3 of ``b"link\\0"`` followed by its target;
- a directory: BLAKE3 of ``b"dir\\0"`` followed by the msgpack encoding of
  ``[[path, kind, id], ...]`` for every file and link below it, sorted by path
  (bytes, relative to the directory), kind 0 for a file and 2 for a link.

Permission bits, times and empty directories do not count: a stage re-run because a
file's mtime moved would be a stage re-run for nothing. An output directory holding no
file at all has the id ``EMPTY_DIR_ID``; a version made from the working tree cannot
hold it (its trees hold what the index does: files and links), so a version that lacks
such an output holds it as its run made it (``vfs.pipeline.record``), and a run cache
hit makes the directory again (``vfs.pipeline.repro``). The same id comes out of the
working tree and out of a version's tree, so a version can check that its outputs
are those a run made (``vfs.pipeline.record``).
"""

from __future__ import annotations

from collections.abc import Iterable

import msgpack

from vfs.model.codec import Entry, Kind
from vfs.model.ids import hash_bytes
from vfs.repo.history import History

LINK_PREFIX = b"link\0"
DIR_PREFIX = b"dir\0"


def link_id(target: bytes) -> bytes:
    """The content id of a symbolic link to ``target``."""
    return hash_bytes(LINK_PREFIX + target)


def leaf_id(kind: Kind, digest: bytes, target: bytes) -> bytes:
    """The content id of a file (its digest) or a link."""
    return link_id(target) if kind == Kind.SYMLINK else digest


def dir_id(rows: Iterable[tuple[bytes, Kind, bytes]]) -> bytes:
    """The content id of a directory from (path below it, kind, content id) rows."""
    listing = [[p, int(k), i] for p, k, i in sorted(rows)]
    return hash_bytes(DIR_PREFIX + msgpack.packb(listing, use_bin_type=True))


def entry_id(hist: History, e: Entry, memo: dict[bytes, bytes] | None = None) -> bytes:
    """The content id of a tree entry (a directory's from the trees below it).

    ``memo`` maps subtree ids to content ids already worked out: equal subtrees are
    listed once.
    """
    if e.kind != Kind.DIR:
        return leaf_id(e.kind, e.digest, e.target)
    if memo is not None and e.subtree in memo:
        return memo[e.subtree]
    rows = [(p, x.kind, leaf_id(x.kind, x.digest, x.target)) for p, x in hist.walk(e.subtree)]
    out = dir_id(rows)
    if memo is not None:
        memo[e.subtree] = out
    return out


EMPTY_DIR_ID = dir_id(())


def tree_path_id(
    hist: History, tree: bytes, path: bytes, memo: dict[bytes, bytes] | None = None
) -> bytes | None:
    """The content id of ``path`` in a version's tree; None if it is not there."""
    e = hist.lookup(tree, path)
    return None if e is None else entry_id(hist, e, memo)
