"""Remote gc's condemnation manifests, and what a pusher must not rely on because of them.

A remote gc (``vfs.remote.gc``) *condemns* dead packs in a manifest before it deletes
anything; a pusher (``vfs.ops.sync.push``) and a prune (``vfs.ops.prune``)
read the manifests before the index and rely on no condemned pack or record
(:func:`shunned`), and a push moves its refs within ``PUSH_WINDOW`` of reading them.

``gc/condemned-<16 hex>`` (the key is ``vfs.remote.layout``'s), msgpack, format
version 1::

    {"v": 1, "packs": [pack id (32 bytes), ...], "records": [object id (32 bytes), ...]}

``packs``: dead packs to delete; ``records``: dead versions and trees in packs that
stay, to drop from the index. Its ``LastModified`` is when it was condemned. At most
``MANIFEST_LIMIT`` bytes, and ``MANIFESTS_TOTAL_LIMIT`` all together
(:func:`read_manifests`); at most ``MAX_MANIFESTS`` are listed. A manifest that does
not decode makes a push stop (it cannot tell what is condemned) and is deleted by the
next gc (its packs are condemned again if still dead).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass, field

import msgpack

from vfs.backends import Backend
from vfs.errors import FormatError, RemoteError, RemoteNotFound
from vfs.remote.layout import MANIFESTS, bounded, is_manifest_key
from vfs.remote.reader import Located

PUSH_WINDOW = 3600.0  # a push moves its refs within this many seconds of reading manifests
MANIFEST_FORMAT = 1
MANIFEST_LIMIT = 64 * 1024 * 1024
# All of a remote's manifests together: 32 bytes per condemned pack or record, so some
# 8 million ids. A remote rarely holds more than the one or two of the last gc runs
# (each is swept once its grace is over); without it, MAX_MANIFESTS of MANIFEST_LIMIT
# bytes each could make every push read and hold 6 TiB.
MANIFESTS_TOTAL_LIMIT = 256 * 1024 * 1024
MAX_MANIFESTS = 100_000


@dataclass(frozen=True)
class Manifest:
    """One condemnation manifest as read from the remote."""

    key: str
    modified: float
    packs: frozenset[str]  # pack ids, hex
    records: frozenset[bytes]


def encode_manifest(packs: set[str], records: set[bytes]) -> bytes:
    """A manifest's bytes (see the module docstring)."""
    rec = {
        "v": MANIFEST_FORMAT,
        "packs": [bytes.fromhex(p) for p in sorted(packs)],
        "records": sorted(records),
    }
    data: bytes = msgpack.packb(rec, use_bin_type=True)
    return data


def decode_manifest(data: bytes, key: str) -> tuple[frozenset[str], frozenset[bytes]]:
    """(pack ids, record ids) of a manifest; FormatError if it is malformed."""
    malformed = FormatError(f"remote gc manifest {key} is malformed")
    try:
        rec = msgpack.unpackb(data, raw=False)
    except Exception:  # msgpack raises several unrelated types
        raise malformed from None
    if not isinstance(rec, dict) or set(rec) != {"v", "packs", "records"}:
        raise malformed
    if rec["v"] != MANIFEST_FORMAT:
        raise malformed
    ids: list[frozenset[bytes]] = []
    for name in ("packs", "records"):
        items = rec[name]
        if not isinstance(items, list) or not all(
            isinstance(i, bytes) and len(i) == 32 for i in items
        ):
            raise malformed
        ids.append(frozenset(items))
    return frozenset(i.hex() for i in ids[0]), ids[1]


def manifest_keys(backend: Backend) -> list[str]:
    """The keys of the manifests on the remote, sorted (bounded: ``MAX_MANIFESTS``)."""
    keys = []
    for key in bounded(backend.list(MANIFESTS), MAX_MANIFESTS, backend.url, "gc manifests"):
        if is_manifest_key(key):
            keys.append(key)
    return sorted(keys)


def read_manifests(
    backend: Backend, *, modified: bool = False
) -> Iterator[tuple[str, bytes, float]]:
    """Each manifest's key, bytes and (with ``modified``) ``LastModified``, else 0.0;
    one swept since it was listed is skipped. RemoteError once they hold more than
    ``MANIFESTS_TOTAL_LIMIT`` bytes in all (the one that would pass it is read no
    further than the bound)."""
    total = 0
    for key in manifest_keys(backend):
        room = MANIFESTS_TOTAL_LIMIT - total
        try:
            when = backend.stat(key).modified if modified else 0.0
            if room >= MANIFEST_LIMIT:
                data = backend.get_small(key, MANIFEST_LIMIT)
            else:
                data = backend.get(key, 0, room + 1)
        except RemoteNotFound:
            continue
        if len(data) > room:
            raise RemoteError(
                f"the gc manifests of {backend.url} hold more than "
                f"{MANIFESTS_TOTAL_LIMIT:,} bytes in all, far more than any gc writes: "
                "refusing to read them (the remote is damaged or hostile); use another "
                "remote, or ask its owner to check its gc/ folder"
            )
        total += len(data)
        yield key, data, when


@dataclass
class Shunned:
    """What a pusher must not rely on: condemned packs and records (module docstring)."""

    packs: set[str] = field(default_factory=set)
    records: set[bytes] = field(default_factory=set)
    keys: set[str] = field(default_factory=set)  # the manifests they came from

    def visible(self, index: dict[bytes, Located]) -> dict[bytes, Located]:
        """``index`` without the objects of condemned packs and the condemned records.

        Read the index with ``RemoteRepo.index(avoid=self.packs)``: an object a live
        pack lists too is then placed there, and stays."""
        if not self.packs and not self.records:
            return index
        return {
            oid: hit
            for oid, hit in index.items()
            if hit[0] not in self.packs and oid not in self.records
        }


def shunned(backend: Backend) -> Shunned:
    """Every manifest's condemned packs and records; RemoteError if one cannot be read."""
    out = Shunned()
    for key, data, _ in read_manifests(backend):
        try:
            packs, records = decode_manifest(data, key)
        except FormatError as exc:
            raise RemoteError(
                f"{exc} on {backend.url}: cannot tell which packs a gc condemned, so "
                f"nothing was pushed; run `dvfs gc --remote` to clear it"
            ) from None
        out.packs |= packs
        out.records |= records
        out.keys.add(key)
    return out


def new_manifests(backend: Backend, seen: set[str]) -> list[str]:
    """Manifests on the remote that are not in ``seen``."""
    return [k for k in manifest_keys(backend) if k not in seen]
