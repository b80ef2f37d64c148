"""Hostile remotes written by hand with the project's own codec and pack APIs.

A ``Forge`` lays out a remote directory (format record, one pack per ``publish``, its
index segment, refs) holding whatever objects a test makes, under whatever ids and
sizes it claims: nothing it writes is checked (but a version's totals, its files and
bytes, are those of the trees it was given, unless a test says otherwise). Refs and the
format record can be written raw, under names no backend would accept, or through a
``Backend`` (an S3 remote) where the layout needs two keys a directory cannot hold
(``main`` and ``main/x``)."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TypedDict

import msgpack

from vfs.backends import Backend
from vfs.model.chunking import ChunkerParams
from vfs.model.codec import ChunkRef, Entry, Kind, encode_tree
from vfs.model.ids import hash_bytes
from vfs.model.version_codec import StageRecord, StageRun, Version, encode_version
from vfs.remote.layout import SEGMENT_FORMAT
from vfs.repo.repository import format_record
from vfs.store.compression import Compression
from vfs.store.objects import ObjKind
from vfs.store.packs import PACK_MAGIC, PackedObject, encode_index, pack_trailer, trailer_id

Tip = bytes | str


class Totals(TypedDict):
    """A version's ``files`` and ``bytes`` (``Version(..., **totals)``)."""

    files: int
    bytes: int


def raw_totals(top: bytes, record: Callable[[bytes], bytes | None]) -> Totals:
    """The ``files`` and ``bytes`` a version of tree ``top`` records, as dvfs counts
    them (files and links at every path), from the raw tree records ``record`` gives
    (None: not made here), each distinct tree read once (a tree may repeat one subtree
    at every level). A forged tree that does not decode, or holds itself, counts as
    nothing, so that a forged version is refused for what its tree holds, not for its
    totals."""
    done: dict[bytes, tuple[int, int]] = {}
    opened: set[bytes] = set()
    stack = [top]
    while stack:
        tid = stack[-1]
        if tid in done:
            stack.pop()
            continue
        data = record(tid)
        try:
            rows = msgpack.unpackb(data)["entries"] if data is not None else []
            leaves = [r[3] for r in rows if r[1] != Kind.DIR]
            subtrees = [r[5] for r in rows if r[1] == Kind.DIR]
        except Exception:  # (a record made not to decode)
            leaves, subtrees = [], []
        missing = [t for t in subtrees if t not in done]
        if missing and tid not in opened:
            opened.add(tid)
            stack += missing
            continue
        if missing:  # (a forged tree that holds itself)
            done[stack.pop()] = (0, 0)
            continue
        files = len(leaves) + sum(done[t][0] for t in subtrees)
        size = sum(n for n in leaves if isinstance(n, int)) + sum(done[t][1] for t in subtrees)
        done[stack.pop()] = (files, size)
    files, size = done[top]
    return {"files": files, "bytes": size if 0 <= size <= 1 << 62 else 0}


class Forge:
    """A remote written by hand, object by object, with whatever ids and sizes we claim."""

    def __init__(self, root: Path, backend: Backend | None = None) -> None:
        self.root = root
        self.backend = backend
        if backend is None:
            root.mkdir()
        self.raw("format", format_record(ChunkerParams()).encode())
        self.objects: list[tuple[bytes, int, bytes]] = []  # (claimed id, kind, bytes)
        self.lies: dict[bytes, dict[str, int]] = {}  # claimed id -> index fields to falsify
        self.trees: dict[bytes, bytes] = {}  # every tree made, published or not: id -> record
        self.sizes: dict[bytes, int] = {}  # and the bytes of the files below it

    @property
    def url(self) -> str:
        return self.backend.url if self.backend is not None else self.root.as_uri()

    def raw(self, key: str, data: bytes) -> None:
        """Write ``data`` under ``key`` as it is (any name a directory can hold)."""
        if self.backend is not None:
            self.backend.put(key, data)
            return
        path = self.root / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)

    def add(self, kind: int, data: bytes, oid: bytes | None = None) -> bytes:
        oid = oid or hash_bytes(data)
        self.objects.append((oid, kind, data))
        return oid

    def chunk(self, data: bytes) -> bytes:
        return self.add(ObjKind.CHUNK, data)

    def tree(self, entries: list[Entry], oid: bytes | None = None) -> bytes:
        """A tree of ``entries``, each folder given the bytes below it as its size (as
        dvfs writes them) where its subtree was made here: a test that wants another
        size adds the tree record itself."""
        entries = [
            e._replace(size=self.sizes[e.subtree])
            if e.kind == Kind.DIR and e.subtree in self.sizes
            else e
            for e in entries
        ]
        data = encode_tree(entries)
        tid = self.add(ObjKind.TREE, data, oid)
        self.trees[tid] = data
        self.sizes[tid] = sum(e.size for e in entries)
        return tid

    def totals(self, tree: bytes) -> Totals:
        """The ``files`` and ``bytes`` of a version of ``tree``, as dvfs counts them (files
        and links, and their sizes, at every path), over the trees made here (each
        distinct one read once: a tree may repeat one subtree at every level)."""
        return raw_totals(tree, self.trees.get)

    def version(
        self,
        tree: bytes,
        parents: tuple[bytes, ...] = (),
        number: int = 1,
        oid: bytes | None = None,
    ) -> bytes:
        v = Version(
            tree, parents, number, "forged", "mallory <m@example.org>", 1, **self.totals(tree)
        )
        return self.add(ObjKind.VERSION, encode_version(v), oid)

    def publish(self, heads: Tip | Mapping[str, Tip], tags: Mapping[str, Tip] = {}) -> None:
        """Write one pack with every object added since, its index segment, and refs.

        ``heads`` is the tip of ``main``, or a map of branch names to tips; a tip is a
        version id, or the text to write in the ref as it is.
        """
        parts = [PACK_MAGIC]
        objs = []
        offset = len(PACK_MAGIC)
        for oid, kind, data in self.objects:
            fields = {"offset": offset, "stored_len": len(data), "raw_len": len(data)}
            fields.update(self.lies.get(oid, {}))
            objs.append(PackedObject(oid, kind, Compression.NONE, **fields))
            parts.append(data)
            offset += len(data)
        if objs:
            parts.append(pack_trailer(objs))
            pack = b"".join(parts)
            pack_id = trailer_id(parts[-1])
            segment = msgpack.packb(
                {"v": SEGMENT_FORMAT, "packs": [[pack_id, encode_index(objs)]]}, use_bin_type=True
            )
            self.raw(f"packs/{pack_id.hex()}", pack)
            self.raw(f"index/{hash_bytes(segment).hex()}", segment)
        branches = heads if isinstance(heads, Mapping) else {"main": heads}
        for folder, refs in (("heads", branches), ("tags", tags)):
            for name, tip in refs.items():
                text = tip.hex() if isinstance(tip, bytes) else tip
                self.raw(f"refs/{folder}/{name}", text.encode() + b"\n")
        self.objects = []


def file_entry(name: bytes, oid: bytes, size: int, mode: int = 0o644, mtime: int = 0) -> Entry:
    """A file entry of one chunk ``oid`` that claims ``size`` bytes."""
    return Entry(name, Kind.FILE, mode, size, mtime, digest=oid, chunks=(ChunkRef(oid, size),))


def content_entry(name: bytes, data: bytes, mtime: int = 0) -> Entry:
    """A true file entry for ``data``, stored as one chunk."""
    return file_entry(name, hash_bytes(data), len(data), mtime=mtime)


def dir_entry(name: bytes, subtree: bytes) -> Entry:
    return Entry(name, Kind.DIR, 0o755, 1, 0, subtree=subtree)


def nested(forge: Forge, names: list[bytes], leaf: list[Entry]) -> bytes:
    """A tree holding ``names[0]/names[1]/.../`` with the entries ``leaf`` at the bottom."""
    tree = forge.tree(leaf)
    for name in reversed(names):
        tree = forge.tree([dir_entry(name, tree)])
    return tree


def files_under(root: Path) -> set[Path]:
    """Every path below ``root`` (not following links)."""
    out = set()
    for dirpath, dirnames, filenames in os.walk(root):
        for name in [*dirnames, *filenames]:
            out.add(Path(dirpath, name))
    return out


def forge_deep_pipeline(where: Path, versions: int, stages: int) -> Forge:
    """A remote at ``where`` whose branch holds ``versions`` versions, the last of which
    records ``stages`` chained stages, each reading bytes no version holds."""
    forge = Forge(where)
    ran = StageRun(0, 1, 1, "h", "0.1.0", "3.11", None)
    parents: tuple[bytes, ...] = ()
    for n in range(1, versions + 1):
        forge.chunk(f"{n}\n".encode())
        forge.chunk(b"x\n")
        tree = forge.tree([content_entry(b"d", f"{n}\n".encode()), content_entry(b"x", b"x\n")])
        pipeline = tuple(
            StageRecord(
                f"s{i:04d}", "true", b"", ((f"o{i - 1}".encode() if i else b"x", b"\2" * 32),),
                ((f"o{i}".encode(), b"\3" * 32),), (), (), ran,
            )
            for i in range(stages if n == versions else 0)
        )  # fmt: skip
        v = Version(tree, parents, n, "forged", "m <m@e>", n, pipeline=pipeline,
                    **forge.totals(tree))  # fmt: skip
        parents = (forge.add(ObjKind.VERSION, encode_version(v)),)
    forge.publish(parents[0])
    return forge


def forge_wide_pipeline(where: Path, stages: int, paths: int) -> Forge:
    """A remote at ``where`` whose one version records ``stages`` chained stages, each
    making ``paths`` files in a folder of its own (``o{i}/{k}``) and reading every file
    the stage before it made (the first reads ``x``)."""
    forge = Forge(where)
    ran = StageRun(0, 1, 1, "h", "0.1.0", "3.11", None)
    forge.chunk(b"x\n")
    tree = forge.tree([content_entry(b"x", b"x\n")])

    def named(i: int) -> tuple[tuple[bytes, bytes], ...]:
        return tuple(sorted((f"o{i}/{k}".encode(), b"\3" * 32) for k in range(paths)))

    pipeline = tuple(
        StageRecord(f"s{i:04d}", "true", b"", named(i - 1) if i else ((b"x", b"\2" * 32),),
                    named(i), (), (), ran)
        for i in range(stages)
    )  # fmt: skip
    v = Version(tree, (), 1, "forged", "m <m@e>", 1, pipeline=pipeline, **forge.totals(tree))
    forge.publish(forge.add(ObjKind.VERSION, encode_version(v)))
    return forge
