"""Every name and record dvfs keeps on a remote: built, written and read here alone.

A remote is a key-value store (``vfs.backends``); under the URL's prefix it holds::

    format                 the repository format record (JSON, ``vfs.repo.repository``); sharers
                           must agree on it
    packs/<id>             pack files (``vfs.store.packs``), named by BLAKE3 of their
                           header (``pack_id``; by BLAKE3 of their bytes when a dvfs of
                           repository format 1 pushed them)
    index/<id>             index segments (below), named by BLAKE3 of their bytes
    refs/heads/<branch>    ref text: "<64 hex>\\n"
    refs/tags/<tag>        ref text: "<64 hex>\\n"
    audit/<seq>            the remote's audit chain, ``seq`` in 12 digits from
                           ``audit/000000000001`` to ``audit/999999999999``, the
                           last (``vfs.repo.audit``); a wider key is no entry
    gc/lock                a running remote gc's lock (``vfs.remote.gc``)
    gc/condemned-<16 hex>  a remote gc's condemnation manifest (``vfs.remote.manifests``)
    gc/probe-<16 hex>      written and removed at once: the server's clock (``vfs.remote.gc``)

Index segments (``index/<id>``, cached in ``.dvfs/remotes/<name>/index/<id>``), format
version 1, msgpack::

    {"v": 1, "packs": [[pack id (32 bytes), pack index file (vfs.store.packs)], ...]}

Writers (a push, a remote gc replacing segments) close a segment whenever its pack
index files reach ``SEGMENT_TARGET`` bytes (:func:`encode_segments`), so a push of a
few terabytes writes several and none nears ``SEGMENT_LIMIT``.

Bounds on what is read from a remote (the readers are ``vfs.remote.reader``,
``vfs.remote.gc``, ``vfs.repo.audit``): the format record is at most ``FORMAT_LIMIT`` bytes,
a ref ``REF_LIMIT``, an index segment ``SEGMENT_LIMIT`` (``Backend.get_small``: a
larger object is refused from its size, not read) and all segments together
``SEGMENTS_TOTAL_LIMIT``; at most ``MAX_REFS`` branches or tags and ``MAX_SEGMENTS``
segments are listed; no object a segment describes may claim more than ``MAX_OBJECT``
bytes (:func:`decode_segment`).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Iterator
from typing import TypeVar

import msgpack

from vfs.errors import FormatError, RemoteError
from vfs.model.ids import HEX_LEN, from_hex, hash_bytes, is_hex_prefix
from vfs.store.compression import Compression
from vfs.store.objects import ObjKind
from vfs.store.packs import PackedObject, decode_index

FORMAT_KEY = "format"
PACKS = "packs/"
INDEX = "index/"
AUDIT = "audit/"
GC_LOCK = "gc/lock"
MANIFESTS = "gc/condemned-"
AUDIT_DIGITS = 12
MAX_AUDIT_SEQ = 10**AUDIT_DIGITS - 1  # the last entry number a key can hold

SEGMENT_FORMAT = 1
# No object a remote describes may claim more than this (chunks are at most 16 MiB,
# vfs.model.chunking.MAX_SIZE_RANGE).
MAX_OBJECT = 64 * 1024 * 1024
# What a record of each kind may hold at most. A format record is ~200 bytes and a ref
# 65; a segment is 50 bytes per object plus 32 per pack, so SEGMENT_LIMIT holds about
# 5 million objects (5 TiB of 1 MiB chunks), and a push writes a new segment every
# SEGMENT_TARGET bytes (1.3 million objects), far below it.
FORMAT_LIMIT = 64 * 1024
REF_LIMIT = 1024
SEGMENT_LIMIT = 256 * 1024 * 1024
SEGMENT_TARGET = 64 * 1024 * 1024
# All segments of a remote together: 50 bytes per object, so about 21 million objects
# (20 TiB of 1 MiB chunks), whose merged index (``RemoteRepo.index``, some 400 bytes per
# object) already takes 9 GiB of memory. Without it, MAX_SEGMENTS segments of
# SEGMENT_LIMIT bytes each could make a reader fetch and hold 256 TiB.
SEGMENTS_TOTAL_LIMIT = 1024 * 1024 * 1024
# Listings longer than this are refused: a remote with more is damaged or hostile.
MAX_REFS = 100_000  # branches, or tags
MAX_SEGMENTS = 1_000_000  # one per push (or per SEGMENT_TARGET of one)
MAX_AUDIT_ENTRIES = 10_000_000  # one per ref a push moves, and per remote gc
MAX_PACKS = 10_000_000  # a push writes one or a few; a remote gc merges small ones

_PACK_KEY = re.compile(r"packs/([0-9a-f]{64})")
_AUDIT_KEY = re.compile(r"audit/([0-9]{12})")  # AUDIT_DIGITS digits
_MANIFEST_KEY = re.compile(r"gc/condemned-[0-9a-f]{16}")
_KINDS = frozenset(int(k) for k in ObjKind)
_COMPRESSIONS = frozenset(int(c) for c in Compression)


# keys -------------------------------------------------------------------------------


def pack_key(pack_id: str) -> str:
    """The key of the pack with id ``pack_id`` (hex)."""
    return f"{PACKS}{pack_id}"


def pack_of(key: str) -> str | None:
    """The pack id (hex) a listed key names, or None if it is not a pack's key."""
    m = _PACK_KEY.fullmatch(key)
    return m.group(1) if m else None


def segment_key(seg_id: str) -> str:
    """The key of the index segment with id ``seg_id`` (hex)."""
    return f"{INDEX}{seg_id}"


def segment_of(key: str) -> str | None:
    """The segment id (hex) a listed key names, or None if it is not a segment's key."""
    seg_id = key.removeprefix(INDEX)
    return seg_id if len(seg_id) == HEX_LEN and is_hex_prefix(seg_id) and key != seg_id else None


def refs_prefix(kind: str) -> str:
    """Where the ``heads`` or ``tags`` refs are listed."""
    return f"refs/{kind}/"


def ref_key(kind: str, name: str) -> str:
    """The key of branch (``heads``) or tag (``tags``) ``name``."""
    return f"{refs_prefix(kind)}{name}"


def audit_key(seq: int) -> str:
    """The key of entry ``seq`` of the remote's audit chain (1 to ``MAX_AUDIT_SEQ``: a
    wider key is listed as no entry, so none is ever made)."""
    if not 0 < seq <= MAX_AUDIT_SEQ:
        raise ValueError(f"audit entry number {seq} has no key")
    return f"{AUDIT}{seq:0{AUDIT_DIGITS}d}"


def audit_seq(key: str) -> int | None:
    """The entry number a listed key names (None if it names no entry)."""
    m = _AUDIT_KEY.fullmatch(key)
    return int(m.group(1)) if m and int(m.group(1)) > 0 else None


def new_manifest_key() -> str:
    """A fresh key for a condemnation manifest."""
    return f"{MANIFESTS}{os.urandom(8).hex()}"


def is_manifest_key(key: str) -> bool:
    """Whether a listed key is a condemnation manifest's."""
    return bool(_MANIFEST_KEY.fullmatch(key))


def new_probe_key() -> str:
    """A fresh key to write and remove at once (the server's clock)."""
    return f"gc/probe-{os.urandom(8).hex()}"


# refs -------------------------------------------------------------------------------


def encode_ref(oid: bytes) -> bytes:
    """The text of a ref naming version ``oid``."""
    return (oid.hex() + "\n").encode()


def parse_ref(data: bytes, what: str) -> bytes:
    """The id a remote ref file holds; FormatError if it is not one."""
    try:
        return from_hex(data.decode("ascii").strip())
    except ValueError:  # UnicodeDecodeError is one too
        raise FormatError(f"remote ref {what} is not a version id: refusing it") from None


# index segments -----------------------------------------------------------------------


def _segment(group: list[list[bytes]]) -> bytes:
    data: bytes = msgpack.packb({"v": SEGMENT_FORMAT, "packs": group}, use_bin_type=True)
    return data


def encode_segments(packs: Iterable[tuple[bytes, bytes]]) -> list[tuple[str, bytes]]:
    """Index segments listing ``packs`` (pack id, pack index file): (key, bytes) each.

    A segment is closed whenever its index files would pass ``SEGMENT_TARGET`` bytes.
    """
    out: list[bytes] = []
    group: list[list[bytes]] = []
    size = 0
    for pack_id, idx in packs:
        if group and size + len(idx) > SEGMENT_TARGET:
            out.append(_segment(group))
            group, size = [], 0
        group.append([pack_id, idx])
        size += len(idx) + len(pack_id)
    if group:
        out.append(_segment(group))
    return [(segment_key(hash_bytes(data).hex()), data) for data in out]


def decode_segment(data: bytes, key: str) -> list[tuple[str, PackedObject]]:
    """The (pack id hex, object) pairs an index segment lists; FormatError if malformed."""
    out = []
    malformed = FormatError(f"remote index segment {key} is malformed: refusing it")
    try:
        rec = msgpack.unpackb(data, raw=False)
    except Exception:  # msgpack raises several unrelated types
        raise malformed from None
    if not isinstance(rec, dict) or set(rec) != {"v", "packs"} or rec["v"] != SEGMENT_FORMAT:
        raise malformed
    if not isinstance(rec["packs"], list):
        raise malformed
    for row in rec["packs"]:
        if not isinstance(row, list) or len(row) != 2:
            raise malformed
        pack_id, idx = row
        if not isinstance(pack_id, bytes) or len(pack_id) != 32 or not isinstance(idx, bytes):
            raise malformed
        for obj in decode_index(idx, key):
            if obj.stored_len > MAX_OBJECT or obj.raw_len > MAX_OBJECT:
                raise FormatError(f"{key}: object {obj.oid.hex()} claims to be too large")
            if obj.kind not in _KINDS or obj.compression not in _COMPRESSIONS:
                raise malformed
            out.append((pack_id.hex(), obj))
    return out


_T = TypeVar("_T")


def bounded(
    listing: Iterable[_T], limit: int, url: str, what: str, advice: str = ""
) -> Iterator[_T]:
    """``listing`` (of a remote's keys), RemoteError once it holds more than ``limit``
    items: a remote is untrusted, and one listing millions of names is damaged or hostile.
    ``what`` names them in the error (``index segments``), ``advice`` ends it."""
    for n, item in enumerate(listing, 1):
        if n > limit:
            raise RemoteError(
                f"{url} lists more than {limit:,} {what}: refusing to read them (the remote "
                f"is damaged or hostile){advice}"
            )
        yield item


def packs_listed(listing: Iterable[_T], url: str) -> Iterator[_T]:
    """A listing of ``packs/``, bounded by ``MAX_PACKS`` (``bounded``): the gc, the
    prune, the remote check and a push each hold every pack's name in memory."""
    return bounded(listing, MAX_PACKS, url, "packs")
