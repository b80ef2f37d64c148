"""Remote repack: the small packs and segments of many small pushes merged by a remote gc.

Each push of a few small files leaves one small pack and one index segment on the
remote, and a clone reads every segment and fetches from every pack. Once a remote
holds ``SMALL_PACKS_MERGE`` live packs under ``SMALL_PACK`` bytes (``vfs.store.packs``,
the thresholds of the local ``dvfs gc``) that no manifest condemns, ``dvfs gc
--remote`` (``vfs.remote.gc``) merges them:

1. :func:`plan`: each small pack's live objects (once each) are to be copied;
2. :func:`copy`: they are read with ranged GETs and verified against their ids (a
   pack that does not read or verify is left out, kept as it is; what was to be
   copied from it is read from another small pack that lists it, which is left out
   too if that copy does not read either: a merged pack's copies go with it), laid
   out as one push of them would lay them out (newest version first, records first,
   ~16 MiB packs), uploaded under an id no manifest condemns and no merged pack has,
   then each new pack is read back whole (one ranged GET of its length and a byte
   more, so that an answer of any length is read no further) and every object in it
   verified again (if one does not verify, nothing is merged);
3. the gc writes one new segment that lists the new packs first and then every entry of
   the segments it replaces (the merged packs stay listed, so that an object a push
   left in one, not live yet, stays indexed), then condemns the merged packs in its
   manifest, then deletes the replaced segments. The merged packs are swept like any
   condemned pack, a grace later: every object of theirs that is live then is counted
   in a new pack first, so they are dead; one a push made live meanwhile is pardoned.

Segments under ``SMALL_PACK`` bytes are replaced by that one segment too once there are
``SMALL_PACKS_MERGE`` of them, with or without packs to merge.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from vfs.errors import DvfsError, ObjectCorrupt
from vfs.remote.layout import pack_key
from vfs.remote.reader import RemoteRepo
from vfs.store.compression import decode_payload
from vfs.store.objects import ObjKind
from vfs.store.packs import (
    FOOTER,
    PACK_MAGIC,
    SMALL_PACK,
    SMALL_PACKS_MERGE,
    TARGET_PACK_SIZE,
    PackedObject,
    pack_trailer,
    parse_footer,
    parse_header,
    relayout,
    trailer_id,
)

_RECORDS = (ObjKind.TREE, ObjKind.VERSION)
# The most bytes of small packs one run merges: what it copies is held in memory until
# its new packs are written. A remote with more is merged by the runs that follow.
MERGE_LIMIT = 128 * 1024 * 1024

Rows = list[tuple[str, list[PackedObject]]]  # a segment's packs, each with its objects


@dataclass
class Plan:
    """What a remote gc merges: small packs (with the live objects to copy) and segments."""

    packs: dict[str, list[PackedObject]] = field(default_factory=dict)  # pack -> to copy
    # pack -> the live objects it lists that are to be copied (from it or another)
    listed: dict[str, list[PackedObject]] = field(default_factory=dict)
    sizes: dict[str, int] = field(default_factory=dict)  # pack -> its bytes
    segments: set[str] = field(default_factory=set)  # small segments to replace
    merged: list[str] = field(default_factory=list)  # packs whose objects were copied
    new: list[tuple[str, list[PackedObject], int]] = field(default_factory=list)  # id, objs, bytes

    @property
    def merged_bytes(self) -> int:
        return sum(self.sizes[p] for p in self.merged)

    @property
    def new_bytes(self) -> int:
        return sum(size for _, _, size in self.new)


def pack_size(objs: list[PackedObject]) -> int:
    """The bytes of a pack whose header lists ``objs``, from the index alone."""
    end = max((o.offset + o.stored_len for o in objs), default=len(PACK_MAGIC))
    return end + len(pack_trailer(objs))


def plan(
    segments: dict[str, Rows],
    segment_sizes: dict[str, int],
    live: set[bytes],
    homes: dict[bytes, str],
    mergeable: set[str],
) -> Plan:
    """The small packs among ``mergeable`` (listed, condemned by no manifest) that hold a
    live object, to merge if there are ``SMALL_PACKS_MERGE``; the segments to replace.

    ``homes``: the pack each live object counts in. An object is copied from the
    first small pack listing it, unless it counts in a pack that stays. (A pack whose
    live objects all count in another, as after a merge killed before its manifest,
    is merged again rather than left to be condemned as dead a grace later.)
    """
    out = Plan()
    objects_of: dict[str, list[PackedObject]] = {}
    for rows in segments.values():
        for p, objs in rows:
            objects_of.setdefault(p, objs)
    sizes = {
        p: pack_size(objects_of[p])
        for p in mergeable
        if p in objects_of and any(o.oid in live for o in objects_of[p])
    }
    small = sorted(p for p, size in sizes.items() if size < SMALL_PACK)
    if len(small) >= SMALL_PACKS_MERGE:
        total = 0
        for n, p in enumerate(small):
            total += sizes[p]
            if total > MERGE_LIMIT and n >= SMALL_PACKS_MERGE:
                small = small[:n]
                break
        chosen = set(small)
        seen: set[bytes] = set()
        for p in small:
            listed = [o for o in objects_of[p] if o.oid in live and homes.get(o.oid) in chosen]
            want = [o for o in listed if o.oid not in seen]
            seen.update(o.oid for o in want)
            out.packs[p] = want
            out.listed[p] = listed
            out.sizes[p] = sizes[p]
    listing = {seg for seg, rows in segments.items() if any(p in out.packs for p, _ in rows)}
    small_segments = {seg for seg, size in segment_sizes.items() if size < SMALL_PACK}
    if len(small_segments) >= SMALL_PACKS_MERGE or listing:
        out.segments = listing | small_segments
    if len(out.segments) < 2 and not out.packs:
        out.segments = set()
    return out


def _read(
    remote: RemoteRepo, pack: str, objs: list[PackedObject]
) -> list[tuple[PackedObject, bytes]]:
    """The payloads of ``objs`` from ``pack``, each verified (RemoteError if not)."""
    if not objs:
        return []
    group = sorted(objs, key=lambda o: o.offset)
    return remote.fetch_range(pack, group)


def _layouts(
    got: list[tuple[PackedObject, bytes]],
) -> list[tuple[bytes, list[PackedObject]]]:
    """Packs of ~16 MiB holding ``got`` as stored, records first (as a push lays them out)."""
    records = [g for g in got if g[0].kind in _RECORDS]
    ordered = records + [g for g in got if g[0].kind not in _RECORDS]
    out: list[tuple[bytes, list[PackedObject]]] = []
    parts: list[bytes] = [PACK_MAGIC]
    objs: list[PackedObject] = []
    offset = len(PACK_MAGIC)
    for o, payload in ordered:
        objs.append(o._replace(offset=offset))
        parts.append(payload)
        offset += len(payload)
        if offset >= TARGET_PACK_SIZE:
            parts.append(pack_trailer(objs))
            out.append((b"".join(parts), objs))
            parts, objs, offset = [PACK_MAGIC], [], len(PACK_MAGIC)
    if objs:
        parts.append(pack_trailer(objs))
        out.append((b"".join(parts), objs))
    return out


def _verify(data: bytes, pack: str, objs: list[PackedObject]) -> str | None:
    """Why the pack read back as ``data`` is not pack ``pack`` holding ``objs``, or None."""
    try:
        _, hlen, header_hash = parse_footer(data[-FOOTER.size :], len(data), pack)
        data_end = len(data) - FOOTER.size - hlen
        listed = parse_header(data[data_end : data_end + hlen], header_hash, data_end, pack)
        if header_hash.hex() != pack or listed != objs:
            return "its header is not the one written"
        for o in objs:
            decode_payload(o, data[o.offset : o.offset + o.stored_len])
    except ObjectCorrupt as exc:
        return f"object {exc}"
    except DvfsError as exc:
        return str(exc)
    return None


def copy(
    remote: RemoteRepo,
    todo: Plan,
    avoid: set[str],
    order: dict[bytes, int],
    warnings: list[str],
    reached: Callable[[str], None],
) -> None:
    """Read, write and verify the new packs of ``todo`` (see the module docstring);
    ``todo.merged`` and ``todo.new`` say what was done. ``avoid``: ids no new pack may
    take (condemned ones). ``order``: each version's place in a walk from the refs; the
    small packs are copied newest version first, as one push of them would lay them
    out (a clone asks for a version's trees and its parent together: they are
    neighbours then). ``reached(step)`` after each new pack is written."""
    meter = remote.backend
    parts: list[tuple[int, list[tuple[PackedObject, bytes]]]] = []
    read: list[str] = []
    owed: set[bytes] = set()  # to copy from a pack that did not read: from another one
    for p, objs in todo.packs.items():
        try:
            part = _read(remote, p, objs)
        except DvfsError as exc:
            warnings.append(f"pack {p[:12]} was not merged, it is kept as it is: {exc}")
            owed.update(o.oid for o in objs)
            continue
        read.append(p)
        newest = min((order[o.oid] for o, _ in part if o.oid in order), default=len(order))
        parts.append((newest, part))
    for p in list(read) if owed else []:
        # a merged pack's copies are deleted with it: an object that was to come from a
        # pack kept for not reading comes from this one (else this one is kept too)
        objs = [o for o in todo.listed.get(p, []) if o.oid in owed]
        if not objs:
            continue
        try:
            part = _read(remote, p, objs)
        except DvfsError as exc:
            warnings.append(f"pack {p[:12]} was not merged, it is kept as it is: {exc}")
            read.remove(p)  # (what was read of it is copied all the same)
            continue
        owed.difference_update(o.oid for o in objs)
        newest = min((order[o.oid] for o, _ in part if o.oid in order), default=len(order))
        parts.append((newest, part))
    if not read:
        return
    parts.sort(key=lambda rank_part: rank_part[0])
    got = [g for _, part in parts for g in part]
    taken = avoid | set(todo.packs)
    new: list[tuple[str, list[PackedObject], int]] = []
    for data, objs in _layouts(got):
        pid, pad = trailer_id(data).hex(), 0
        while pid in taken:
            pad += 1
            data, objs = relayout(data, objs, pad)
            pid = trailer_id(data).hex()
        taken.add(pid)
        meter.put(pack_key(pid), data)
        reached("remote-repacked")
        back = meter.get(pack_key(pid), 0, len(data) + 1)  # (a byte more: nothing follows)
        why = (
            f"{len(data) + 1:,} bytes or more where {len(data):,} were written"
            if len(back) > len(data)
            else _verify(back, pid, objs)
        )
        if why is not None:
            warnings.append(
                f"the merged pack {pid[:12]} did not read back whole ({why}): no pack was "
                "merged, every one is kept as it is"
            )
            return  # (what was written is unindexed: a later gc condemns it)
        new.append((pid, objs, len(data)))
    todo.merged = read
    todo.new = new
