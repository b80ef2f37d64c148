"""The namespace of a mount: which names a directory holds and what each one is.

::

    MNT/                    the head of the mounted branch (its root tree)
    MNT/.versions/          not listed in MNT, but found by name
        v1/ ... vN/         the versions on the branch's first-parent chain
        latest -> vN
        tags/<tag>/         a tag "a/b" is the directory tags/a/b/
        branches/<branch>/
        ids/<64 hex>/       any version by its full id; lists the ones named above
        meta/vN.yaml        each version's metadata: `dvfs show vN --format yaml` (daemon.data.meta)

Names that are not valid on Linux never get this far: trees are decoded strictly
(``vfs.model.codec``), so a directory holding one, or a reserved name (``.git``,
``.dvfs``, ``vfs.model.names``), fails to read (EIO) and is logged. A head whose root
holds an entry ``.versions`` (refused at the root since, but decodable) does not
hide the version list: MNT neither lists nor finds that entry.

Nodes made here are not counted yet: the caller puts them in the inode table when
it hands them to the kernel.
"""

from __future__ import annotations

import re

from daemon.data.meta import MetaFiles
from daemon.data.record_cache import Records
from daemon.fs import inodes
from daemon.fs.catalog import Catalog
from daemon.fs.inodes import Node, NodeKind, entry_node, refs_node
from vfs import DvfsError, Tree

VERSIONS_NAME = b".versions"
_VN = re.compile(rb"v([1-9][0-9]{0,17})")
_HEX64 = re.compile(rb"[0-9a-f]{64}")
_META = re.compile(rb"v([1-9][0-9]{0,17})\.yaml")
_EMPTY = Tree(())


def fixed_nodes() -> dict[int, Node]:
    """The pinned nodes, by their fixed numbers."""
    return {
        inodes.ROOT: Node(b"/", NodeKind.ROOT, b""),
        inodes.VERSIONS: Node(b"v", NodeKind.VERSIONS, VERSIONS_NAME),
        inodes.TAGS: refs_node(VERSIONS_NAME + b"/tags"),
        inodes.BRANCHES: refs_node(VERSIONS_NAME + b"/branches"),
        inodes.IDS: Node(b"i", NodeKind.IDS, VERSIONS_NAME + b"/ids"),
        inodes.LATEST: Node(b"L", NodeKind.LATEST, VERSIONS_NAME + b"/latest"),
        inodes.META: Node(b"m", NodeKind.META, VERSIONS_NAME + b"/meta"),
    }


class Layout:
    """Resolves names to nodes against the current catalog."""

    def __init__(self, records: Records, catalog: Catalog) -> None:
        self.records = records
        self.catalog = catalog
        self.fixed = fixed_nodes()
        self.meta = MetaFiles(records.history, records.limiter)
        self.pinned = False  # see pin()
        self.root_version: bytes | None = None
        # the branch was deleted since: the catalog is the last one it had (refresh_loop)
        self.branch_deleted = False

    def pin(self, version: bytes | None) -> None:
        """Show ``version`` (None: nothing) at MNT whatever the branch does: the lower
        layer of a kernel overlay must not change while mounted."""
        self.pinned = True
        self.root_version = version

    # version roots --------------------------------------------------------------

    async def version_root(self, oid: bytes, path: bytes) -> Node:
        """The directory showing version ``oid`` at ``path``."""
        v = await self.records.version(oid)
        name = path.rsplit(b"/", 1)[-1]
        return entry_node(path.rpartition(b"/")[0], v.root_entry(name))

    async def head_tree(self) -> Tree:
        """The root tree MNT shows: the branch head's (empty before the first version),
        or the pinned version's."""
        if self.pinned:
            if self.root_version is None:
                return _EMPTY
            return await self.records.tree((await self.records.version(self.root_version)).tree)
        v = self.catalog.head_version
        return _EMPTY if v is None else await self.records.tree(v.tree)

    @staticmethod
    def _refs_place(node: Node) -> tuple[str, str]:
        """("tags" or "branches", name prefix) of a REFS node."""
        parts = node.path.decode().split("/")
        return parts[1], "/".join(parts[2:])

    # lookup and listing ------------------------------------------------------------

    async def lookup(self, parent: Node, name: bytes) -> Node | None:
        """The node ``name`` names in ``parent``, or None if there is none."""
        kind = parent.kind
        if kind == NodeKind.ROOT:
            if name == VERSIONS_NAME:
                return self.fixed[inodes.VERSIONS]
            e = (await self.head_tree()).get(name)
            return None if e is None else entry_node(b"", e)
        if kind == NodeKind.DIR:
            assert parent.entry is not None
            e = (await self.records.tree(parent.entry.subtree)).get(name)
            return None if e is None else entry_node(parent.path, e)
        if kind == NodeKind.VERSIONS:
            return await self._in_versions(name)
        if kind == NodeKind.REFS:
            return await self._in_refs(parent, name)
        if kind == NodeKind.META:
            return await self._in_meta(name)
        if kind == NodeKind.IDS and _HEX64.fullmatch(name):
            oid = bytes.fromhex(name.decode())
            try:
                return await self.version_root(oid, parent.path + b"/" + name)
            except DvfsError:  # not a version here (or not readable): no such name
                return None
        return None

    async def _in_meta(self, name: bytes) -> Node | None:
        m = _META.fullmatch(name)
        oid = self.catalog.numbered.get(int(m.group(1))) if m else None
        if oid is None:
            return None
        v = await self.records.version(oid)
        return entry_node(VERSIONS_NAME + b"/meta", await self.meta.entry(oid, name, v.time_ns))

    async def _in_versions(self, name: bytes) -> Node | None:
        for ino in (inodes.TAGS, inodes.BRANCHES, inodes.IDS, inodes.META):
            if self.fixed[ino].path.endswith(b"/" + name):
                return self.fixed[ino]
        if name == b"latest":
            return self.fixed[inodes.LATEST] if self.catalog.latest else None
        m = _VN.fullmatch(name)
        oid = self.catalog.numbered.get(int(m.group(1))) if m else None
        return None if oid is None else await self.version_root(oid, VERSIONS_NAME + b"/" + name)

    async def _in_refs(self, parent: Node, name: bytes) -> Node | None:
        kind, prefix = self._refs_place(parent)
        try:
            part = name.decode()
        except UnicodeDecodeError:
            return None
        below = self.catalog.below(kind, prefix)
        if part not in below:
            return None
        full = below[part]
        path = parent.path + b"/" + name
        if full is None:
            return refs_node(path)
        return await self.version_root(self.catalog.refs(kind)[full], path)

    async def listing(self, parent: Node) -> list[tuple[bytes, Node]]:
        """Every (name, node) ``parent`` lists, in a stable order."""
        kind = parent.kind
        if kind == NodeKind.ROOT:
            return [
                (e.name, entry_node(b"", e))
                for e in (await self.head_tree()).entries
                if e.name != VERSIONS_NAME
            ]
        if kind == NodeKind.DIR:
            assert parent.entry is not None
            tree = await self.records.tree(parent.entry.subtree)
            return [(e.name, entry_node(parent.path, e)) for e in tree.entries]
        out: list[tuple[bytes, Node | None]] = []
        if kind == NodeKind.VERSIONS:
            names = [b"v%d" % n for n in sorted(self.catalog.numbered)]
            names += [b"latest", b"tags", b"branches", b"ids", b"meta"]
            out = [(n, await self._in_versions(n)) for n in names]
        elif kind == NodeKind.META:
            names = [b"v%d.yaml" % n for n in sorted(self.catalog.numbered)]
            out = [(n, await self._in_meta(n)) for n in names]
        elif kind == NodeKind.REFS:
            refs_kind, prefix = self._refs_place(parent)
            names = [p.encode() for p in self.catalog.below(refs_kind, prefix)]
            out = [(n, await self._in_refs(parent, n)) for n in names]
        elif kind == NodeKind.IDS:
            base = parent.path + b"/"
            out = [
                (oid.hex().encode(), await self.version_root(oid, base + oid.hex().encode()))
                for oid in self.catalog.ids()
            ]
        return [(n, node) for n, node in out if node is not None]
