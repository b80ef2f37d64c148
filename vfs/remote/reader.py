"""What is read from a remote (``RemoteRepo``), within bounds, and checked before use.

The keys and record formats are ``vfs.remote.layout``'s. A remote is shared, so what
is read from one is bounded before it is read and checked before it is used
(``docs/security.md`` states the whole threat model):

- the format record is at most ``FORMAT_LIMIT`` bytes, a ref ``REF_LIMIT``, an index
  segment ``SEGMENT_LIMIT`` (``Backend.get_small``: a larger object is refused from its
  size, not read) and all segments together ``SEGMENTS_TOTAL_LIMIT`` (the segment that
  would pass it is read no further than the bound); at most ``MAX_REFS`` branches or
  tags and ``MAX_SEGMENTS`` segments are listed; no object a segment describes may
  claim more than ``MAX_OBJECT`` bytes;
- a branch or tag name is used only if it is one a local ``dvfs branch``/``dvfs tag``
  would accept (``vfs.repo.refs.check_ref_name``) and no other remote name is its folder
  (``main`` beside ``main/x`` keeps ``main``); a ref that does not hold a version id
  is skipped too. Each skipped ref gives one warning; the rest are used;
- refs are read in bulk where the listing tells each one's bytes by its ETag (S3):
  thousands of refs naming a few versions cost a few GETs (``RemoteRepo.refs``); a
  directory remote's are read a folder at a time (``Backend.get_small_many``).

A segment listed but gone when read was replaced by a remote gc: the listing is read
again (at most ``SEGMENT_RELISTS`` times). Segments are cached under
``.dvfs/remotes/<name>/index/<id>`` (they never change); a cached copy whose bytes are not
its id, or that is not a regular file at all (a link, a FIFO: never read through nor
waited on), is dropped and read again from the remote. One the remote no longer lists
is removed, unless the remote lists no segment and has no format record either (a
directory remote not mounted: what it held when last read is kept). If ``remotes``, a
folder of the remote's name or ``index`` there is a symbolic link, no cache is used:
segments are read from the remote alone, and nothing is written or deleted where the
link points (``index_cache``).
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections import deque
from collections.abc import Collection, Iterable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

from vfs._os.beneath import open_kept
from vfs.backends import Backend, Refused, parse_url
from vfs.errors import (
    DvfsError,
    FormatError,
    ObjectCorrupt,
    PreconditionFailed,
    RemoteError,
    RemoteNotFound,
    RemoteObjectRefused,
    StorageFull,
    UsageError,
)
from vfs.model.ids import hash_bytes, is_hex_prefix
from vfs.quoting import quote_name
from vfs.remote.config import Meter, cached_ids, read_cached, remotes
from vfs.remote.layout import (
    FORMAT_KEY,
    FORMAT_LIMIT,
    INDEX,
    MAX_REFS,
    MAX_SEGMENTS,
    PACKS,
    REF_LIMIT,
    SEGMENT_LIMIT,
    SEGMENTS_TOTAL_LIMIT,
    bounded,
    decode_segment,
    encode_ref,
    pack_key,
    pack_of,
    packs_listed,
    parse_ref,
    ref_key,
    refs_prefix,
    segment_key,
    segment_of,
)
from vfs.repo.refs import check_ref_name
from vfs.repo.repository import DVFS_DIR, Repository, format_record, parse_format
from vfs.store.compression import decode_payload
from vfs.store.durable import write_atomic_at
from vfs.store.packs import FOOTER, PackedObject, parse_footer, parse_header

SEGMENT_RELISTS = 2  # listings read again when a listed segment is gone (a remote gc)
REF_READERS = 16  # refs read at once (each one GET of some 65 bytes)


def cached_remote_ids(repo: Repository, only: Iterable[str] | None = None) -> set[bytes]:
    """Ids of objects the configured remotes (or the remotes ``only``) hold, as far as
    their cached index segments tell (not a remote no settings name any more: no
    command fetches from it)."""
    if only is not None:
        return cached_ids(repo, only)
    try:
        names = list(remotes(repo))
    except DvfsError:
        # a dvfs.toml that does not parse stops remote commands until it is fixed;
        # till then every cache counts (the file fixed most likely names them again)
        names = [p.name for p in (repo.dir / "remotes").glob("*")]
    return cached_ids(repo, names)


def _named(name: str) -> str:
    """A ref name from a remote, quoted for a message (escaped if it holds controls)."""
    shown = quote_name(name)
    return shown if shown != name else f"'{name}'"


def usable_ref_names(names: Iterable[str], what: str) -> tuple[list[str], list[str]]:
    """The names among ``names`` that can be used here, sorted; and why the rest cannot.

    A name must pass ``check_ref_name`` (as a local one would) and must not lie below
    another name (``main/x`` beside ``main``): a directory cannot hold both files.
    """
    kept: list[str] = []
    taken: set[str] = set()
    notes = []
    for name in sorted(set(names)):
        try:
            check_ref_name(name, what)
        except UsageError:
            notes.append(f"remote {what} {_named(name)} skipped: not a valid {what} name here")
            continue
        parts = name.split("/")
        above = next(
            ("/".join(parts[:i]) for i in range(1, len(parts)) if "/".join(parts[:i]) in taken),
            None,
        )
        if above is not None:
            notes.append(
                f"remote {what} {_named(name)} skipped: it clashes with {what} {_named(above)}"
            )
            continue
        taken.add(name)
        kept.append(name)
    return kept, notes


def unnamed_ref_hint(name: str, what: str) -> str | None:
    """How to mend a remote ref that ``dvfs push --delete`` cannot name (too long, a
    control character, a folder deeper than any key): by hand on the remote. None for a
    name dvfs can delete."""
    try:
        check_ref_name(name, what, existing=True)
    except UsageError:
        return (
            "no dvfs command can name it: on the remote, rename it to a valid name "
            "(ASCII letters, digits, '.', '_' and '-', at most 200 characters) or delete it if "
            "it is not wanted"
        )
    return None


def repository_at(url: str) -> Path | None:
    """The directory ``url`` names if it is a dvfs repository (a ``.dvfs`` there) and
    not a remote (no ``format``): given to ``clone`` or ``vfs.Repo.remote`` by someone
    who takes it for one, as git clones a repository. None for anything else."""
    try:
        where = parse_url(url).path
    except DvfsError:
        return None
    if where is None or not (where / DVFS_DIR).is_dir() or (where / FORMAT_KEY).exists():
        return None
    return where


def mend_hint(key: str) -> str:
    """What to do about a damaged object on a remote: a push cannot replace it, since
    the remote's index says the remote holds what the damaged key held."""
    return (
        f"a push cannot mend it in place: restore {key} on the remote from a backup, or "
        "from a repository that has the data push it all to a new remote (`dvfs remote add "
        "NAME URL && dvfs push --remote NAME --all --tags`) and use that one"
    )


def whole_pack(backend: Backend, pack_id: str, size: int) -> set[PackedObject] | None:
    """What pack ``pack_id`` (``size`` bytes) lists in its own header, if it is whole: its
    footer and checksummed header read, and its name is their hash. None if not (or a
    format-1 pack, named by the hash of all its bytes): only asked when an object of it
    does not read as the index says, to tell a damaged index entry from a damaged pack."""
    key = pack_key(pack_id)
    what = f"pack {pack_id[:12]}"
    try:
        if size < FOOTER.size:
            return None
        _, hlen, hhash = parse_footer(backend.get(key, size - FOOTER.size, FOOTER.size), size, what)
        data_end = size - FOOTER.size - hlen
        listed = parse_header(backend.get(key, data_end, hlen), hhash, data_end, what)
    except DvfsError:
        return None
    return set(listed) if hhash.hex() == pack_id else None


def index_fault(backend: Backend, pack_id: str, obj: PackedObject, size: int) -> str | None:
    """What to say when the index places ``obj`` in pack ``pack_id`` where that whole
    pack's own header does not (past its end, or at other bytes): the index segment
    listing it is damaged, not the pack. None if the pack is not whole (or agrees)."""
    listed = whole_pack(backend, pack_id, size)
    if listed is None or obj in listed:
        return None
    where = "past the end" if obj.offset + obj.stored_len > size else "at bytes that do not hold it"
    seg = next(_segments_listing(backend, pack_id, obj), None)
    named = f"index segment {seg}" if seg else "the remote's index"
    return (
        f"{named} on {backend.url} places object {obj.oid.hex()[:12]} {where} of pack "
        f"{pack_id[:12]} ({size:,} bytes), which is whole: the index segment is damaged, not "
        "the pack; " + mend_hint(seg or INDEX)
    )


def _segments_listing(backend: Backend, pack_id: str, obj: PackedObject) -> Iterator[str]:
    """The keys of the index segments that list ``obj`` in pack ``pack_id`` (read again);
    none past ``SEGMENTS_TOTAL_LIMIT`` bytes of segments read, as ``RemoteRepo.segments``
    reads them."""
    total = 0
    for n, key in enumerate(backend.list(INDEX), 1):
        if n > MAX_SEGMENTS:
            return
        if segment_of(key) is None:
            continue
        try:
            data = read_segment(backend, key, SEGMENTS_TOTAL_LIMIT - total)
        except RemoteNotFound:
            continue  # (replaced by a remote gc since it was listed)
        except DvfsError:
            return  # refused (too large: S3 sent its first bytes all the same), or away
        if data is None:
            return
        total += len(data)
        try:
            rows = decode_segment(data, key)
        except DvfsError:
            continue
        if (pack_id, obj) in rows:
            yield key


def read_segment(backend: Backend, key: str, room: int) -> bytes | None:
    """The bytes of index segment ``key`` (not verified); RemoteError if it holds more
    than ``SEGMENT_LIMIT`` bytes (refused from its size, not read), None if it holds more
    than ``room`` (the room left under ``SEGMENTS_TOTAL_LIMIT``: at most ``room + 1`` bytes
    of it are read)."""
    if room >= SEGMENT_LIMIT:
        return backend.get_small(key, SEGMENT_LIMIT)
    data = backend.get(key, 0, room + 1)
    return data if len(data) <= room else None


def segments_too_large(url: str, limit: int) -> RemoteError:
    """What to say when the index segments of ``url`` hold more than ``limit`` bytes."""
    return RemoteError(
        f"the index segments of {url} hold more than {limit:,} bytes in all, far more than "
        "any repository needs: refusing to read them (the remote is damaged or hostile); "
        "use another remote, or ask its owner to check its index/ folder"
    )


# Ranges of one pack closer than this are fetched with one GET.
COALESCE_GAP = 256 * 1024
MAX_RANGE = 16 * 1024 * 1024

Located = tuple[str, PackedObject]  # (pack id hex, where in it)


class RemoteRepo:
    """The layout above, on one backend, read within the bounds above."""

    def __init__(self, backend: Meter, cache: Path | None) -> None:
        self.backend = backend
        self.url = backend.url
        self.cache = cache
        self._avoid: frozenset[str] = frozenset()  # what the last index() was asked to avoid
        self._lost: set[str] = set()  # packs found missing (fetch_range)
        self._elsewhere: dict[bytes, Located] | None = None  # the index avoiding them
        self._lost_lock = threading.Lock()

    def read_format(self) -> str | None:
        """The remote's format record, or None if it has none (empty remote)."""
        try:
            return self.backend.get_small(FORMAT_KEY, FORMAT_LIMIT).decode("utf-8", "replace")
        except RemoteNotFound:
            # a missing bucket is reported as missing too: tell it from an empty remote
            for _ in self.backend.list(FORMAT_KEY):
                break
            return None

    def ensure_format(self, repo: Repository, *, foreign: str) -> None:
        """Create the remote's format record, or check that it matches ours.

        A remote with no format record that holds other keys already (a URL naming a
        folder of someone's files: a home directory, a bucket's data) is not made
        there: UsageError ``foreign``, and nothing is written among those files."""
        mine = format_record(repo.chunker.params)
        if self.read_format() is None and next(iter(self.backend.list("")), None) is not None:
            raise UsageError(foreign)
        try:
            self.backend.put_conditional(FORMAT_KEY, mine.encode(), if_none_match=True)
            return
        except PreconditionFailed:
            pass
        self.check_format(repo)

    def check_format(self, repo: Repository, *, empty: str | None = None) -> None:
        """FormatError unless the remote is empty or chunks like ``repo``; with
        ``empty``, an empty remote is RemoteNotFound with that message too."""
        text = self.read_format()
        if text is None:
            if empty is not None:
                raise RemoteNotFound(empty)
            return
        theirs = parse_format(text, f"{self.url}/format")
        if theirs != repo.chunker.params:
            raise FormatError(
                f"{self.url} uses different chunking parameters than this repository: "
                "clone it instead of adding it as a remote"
            )

    def refs(
        self,
        kind: str,
        skipped: list[str] | None = None,
        unreadable: dict[str, str] | None = None,
        known: Iterable[bytes] = (),
    ) -> dict[str, bytes]:
        """Every usable ``heads`` or ``tags`` ref of the remote (see the module docstring).

        A ref that is not usable is left out, with one line saying why appended to
        ``skipped``; one that is there but cannot be read (it holds no version id) is
        put in ``unreadable`` too, by name, with why.

        Read in bulk where the store allows (``Backend.content_etag``: S3): the listing
        gives each ref's ETag, refs with one ETag hold the same bytes and are read with
        one GET, and a ref whose ETag is that of a version id in ``known`` (what this
        clone already holds for the remote's refs) is not read at all. So thousands of
        refs naming a few versions cost a few GETs, and fetching again costs none for
        refs that did not move. The GETs left run ``REF_READERS`` at a time.
        """
        base = refs_prefix(kind)
        what = "branch" if kind == "heads" else "tag"
        whats = "branches" if kind == "heads" else "tags"
        advice = "; delete the ones nobody needs there, or use another remote"
        bulk = self.backend.content_etag(b"") is not None
        listing: Iterable[tuple[str, str]] = (
            ((key, info.etag) for key, info in self.backend.list_info(base))
            if bulk
            else ((key, "") for key in self.backend.list(base))
        )
        etags = {
            key[len(base) :]: etag
            for key, etag in bounded(listing, MAX_REFS, self.url, f"{whats} under {base}", advice)
        }
        usable, notes = usable_ref_names(etags, what)
        values: dict[str, tuple[bytes, bytes] | DvfsError] = {}
        todo = usable
        if bulk:
            texts = {self.backend.content_etag(t): t for t in map(encode_ref, known)}
            by_etag: dict[str, list[str]] = {}
            for name in usable:
                text = texts.get(etags[name])
                if text is not None:
                    values[name] = (parse_ref(text, base + name), text)
                else:
                    by_etag.setdefault(etags[name], []).append(name)
            firsts = self._read_refs(base, [names[0] for names in by_etag.values()])
            values.update(firsts)
            todo = []
            for etag, (first, *others) in by_etag.items():
                got = firsts.get(first)
                if isinstance(got, tuple) and self.backend.content_etag(got[1]) == etag:
                    values.update(dict.fromkeys(others, got))  # the same bytes
                else:
                    todo += others  # (moved since listed, or ETags of another kind)
        values.update(self._read_refs(base, todo))
        out = {}
        for name in usable:
            value = values.get(name)
            if isinstance(value, tuple):
                out[name] = value[0]
            elif value is not None:
                notes.append(f"remote {what} {_named(name)} skipped: {value}")
                if unreadable is not None:
                    unreadable[name] = str(value)
        if skipped is not None:
            skipped += [f"{self.url}: {note}" for note in notes]
        return out

    def _read_refs(
        self, base: str, names: Sequence[str]
    ) -> dict[str, tuple[bytes, bytes] | DvfsError]:
        """Refs ``names`` under ``base`` (``Backend.get_small_many``: ``REF_READERS`` GETs
        at a time, or a directory remote's folders read in turn): each one's version id
        and bytes, or why it holds none; a ref deleted since it was listed is left out."""
        keys = [base + name for name in names]
        out: dict[str, tuple[bytes, bytes] | DvfsError] = {}
        for name, key, got in zip(
            names, keys, self.backend.get_small_many(keys, REF_LIMIT, REF_READERS), strict=True
        ):
            if isinstance(got, bytes):
                try:
                    out[name] = parse_ref(got, key), got
                except FormatError as exc:
                    out[name] = exc
            elif got is not None:  # (None: deleted since it was listed)
                out[name] = got
        return out

    def ref_with_etag(self, kind: str, name: str) -> tuple[bytes | None, str | None]:
        """A ref's value and ETag, or (None, None) if it does not exist."""
        key = ref_key(kind, name)
        try:
            etag = self.backend.head(key).etag
            return parse_ref(self.backend.get_small(key, REF_LIMIT), key), etag
        except RemoteNotFound:
            return None, None

    def index(self, avoid: Collection[str] = ()) -> dict[bytes, Located]:
        """Merge every index segment: object id -> (pack id, location).

        An object is placed where the first segment that lists it says; one listed in a
        pack of ``avoid`` (condemned by a remote gc: ``Shunned.visible``) is placed in a
        pack not in it where another segment lists one (still one place per object).
        A segment listed but gone when read was replaced by a remote gc, which writes
        the replacement first: the listing is read again (at most ``SEGMENT_RELISTS``
        times). Cached segments the listing lacks are forgotten (``_forget_unlisted``).
        """
        self._avoid = frozenset(avoid)
        return self._merged(self._avoid)

    def listed_packs(self, refused: Refused | None = None) -> set[str]:
        """The ids of the packs the listing of ``packs/`` gives (at most ``MAX_PACKS``:
        ``packs_listed``); a name there that is no pack's is left out, and so is what is
        no object (a link or a FIFO in a directory remote: never followed nor opened,
        its refusal given to ``refused``: ``Backend.list_info``)."""
        listing = self.backend.list_info(PACKS, etags=False, refused=refused)
        return {
            pack_id
            for key, _ in packs_listed(listing, self.url)
            if (pack_id := pack_of(key)) is not None
        }

    def _merged(self, avoid: Collection[str]) -> dict[bytes, Located]:
        """:meth:`index`, remembering nothing of ``avoid``."""
        relists = 0
        while True:
            out: dict[bytes, Located] = {}
            listed: set[str] = set()
            try:
                for seg_id, data in self.segments():
                    listed.add(seg_id)
                    for pack_id, obj in decode_segment(data, segment_key(seg_id)):
                        had = out.setdefault(obj.oid, (pack_id, obj))
                        if avoid and had[0] in avoid and pack_id not in avoid:
                            out[obj.oid] = (pack_id, obj)
                self._forget_unlisted(listed)
                return out
            except RemoteNotFound:
                relists += 1
                if relists > SEGMENT_RELISTS:
                    raise

    def _forget_unlisted(self, listed: set[str]) -> None:
        """Remove cached segments the remote no longer lists (a remote gc replaced them),
        so that the cache tells what the remote held when last read (``dvfs fsck``).
        Where it lists none and has no format record either, nothing is removed: a
        directory remote not mounted (an empty folder) holds nothing now, and what it
        held is what it held when last read (a remote gc leaves the format)."""
        if self.cache is None:
            return
        try:
            fd = open_kept(self.cache)  # (deleted in by name: never through a link)
        except OSError:
            return
        try:
            names = [
                name
                for name in os.listdir(fd)
                if len(name) == 64 and is_hex_prefix(name) and name not in listed
            ]
            if names and not listed and self.read_format() is None:
                return
            for name in names:
                with contextlib.suppress(FileNotFoundError):
                    os.unlink(name, dir_fd=fd)
        finally:
            os.close(fd)

    def segments(self) -> Iterator[tuple[str, bytes]]:
        """Every index segment (its id and bytes, verified), one at a time; RemoteError
        once they hold more than ``SEGMENTS_TOTAL_LIMIT`` bytes in all."""
        total = 0
        for key in bounded(self.backend.list(INDEX), MAX_SEGMENTS, self.url, "index segments"):
            seg_id = segment_of(key)
            if seg_id is None:
                continue  # not a segment: segments are named by their hash
            data = self._segment(seg_id, SEGMENTS_TOTAL_LIMIT - total)
            if data is None:
                raise segments_too_large(self.url, SEGMENTS_TOTAL_LIMIT)
            total += len(data)
            yield seg_id, data

    def _segment(self, seg_id: str, room: int) -> bytes | None:
        """The segment's bytes, verified; None if it holds more than ``room`` bytes (of
        which at most ``room + 1`` are read from the remote)."""
        cached = self.cache / seg_id if self.cache else None
        if cached is not None and os.path.lexists(cached):
            data = read_cached(cached)
            if data is not None and hash_bytes(data).hex() == seg_id:
                return data if len(data) <= room else None
            # damaged here (a crash after the cache was written, something put in its
            # place), not on the remote: dropped (replaced below), read again from the remote
        key = segment_key(seg_id)
        try:
            data = read_segment(self.backend, key, room)
        except RemoteObjectRefused as exc:  # (a link, a FIFO, a huge file: never read)
            raise RemoteObjectRefused(
                f"{exc}; every reader of the remote stops on it: delete it on the remote, "
                "or put the index segment itself in its place (`dvfs fsck --remote` then "
                "names anything the remote lacks)"
            ) from None
        if data is None:
            return None
        if hash_bytes(data).hex() != seg_id:
            raise RemoteError(
                f"index segment {seg_id} on {self.url} is corrupt (hash mismatch): refusing "
                "it; " + mend_hint(key)
            )
        self.keep_segment(seg_id, data)
        return data

    def keep_segment(self, seg_id: str, data: bytes) -> None:
        """Cache the segment ``seg_id`` (verified, or written by this clone's push, which
        then needs no read of it to know what the remote holds). A directory in its place,
        a full disk, a link on the way: not cached, read again next time; written through
        a descriptor, never through a link."""
        if self.cache is None:
            return
        with contextlib.suppress(OSError, StorageFull):
            fd = open_kept(self.cache, make=True)
            try:
                write_atomic_at(fd, seg_id, data, sync=False)
            finally:
                os.close(fd)

    def ranges(
        self, wanted: Iterable[bytes], index: dict[bytes, Located]
    ) -> list[tuple[str, list[PackedObject]]]:
        """``wanted`` as ranged GETs: (pack id, objects), neighbours in a pack coalesced."""
        by_pack: dict[str, list[PackedObject]] = {}
        for oid in wanted:
            hit = index.get(oid)
            if hit is None:
                raise RemoteNotFound(f"object {oid.hex()} is not on {self.url}")
            by_pack.setdefault(hit[0], []).append(hit[1])
        ranges: list[tuple[str, list[PackedObject]]] = []
        for pack_id, objs in by_pack.items():
            objs.sort(key=lambda o: o.offset)
            group: list[PackedObject] = []
            for o in objs:
                if group and (
                    o.offset - (group[-1].offset + group[-1].stored_len) > COALESCE_GAP
                    or o.offset + o.stored_len - group[0].offset > MAX_RANGE
                ):
                    ranges.append((pack_id, group))
                    group = []
                group.append(o)
            if group:
                ranges.append((pack_id, group))
        return ranges

    def pack_bytes(self, pack_id: str, start: int, length: int) -> bytes:
        """Bytes of pack ``pack_id`` (one ranged GET); a pack the index lists and the
        remote lacks is a damaged remote (:meth:`lost_pack`), not a missing one."""
        try:
            return self.backend.get(pack_key(pack_id), start, length)
        except RemoteNotFound:
            raise self.lost_pack(pack_id) from None

    def lost_pack(self, pack_id: str) -> RemoteError:
        """What to say of pack ``pack_id``, listed by the remote's index and not there."""
        return RemoteError(
            f"pack {pack_id[:12]} is missing from {self.url}, though the remote's index "
            "lists it: the remote is damaged (the pack was deleted or lost), nothing of it "
            "was stored; if a `dvfs gc --remote` was running, run this again; else "
            + mend_hint(pack_key(pack_id))
        )

    def fetch_range(
        self, pack_id: str, group: list[PackedObject]
    ) -> list[tuple[PackedObject, bytes]]:
        """One ranged GET for ``group``; each object verified (RemoteError if corrupt
        or if the pack is missing)."""
        start = group[0].offset
        end = group[-1].offset + group[-1].stored_len
        try:
            data = self.backend.get(pack_key(pack_id), start, end - start)
        except RemoteNotFound:
            return self._from_elsewhere(pack_id, group)
        except RemoteObjectRefused as exc:  # (a link or a FIFO in its place: no pack)
            return self._from_elsewhere(pack_id, group, exc)
        out = []
        for o in group:
            payload = data[o.offset - start : o.offset - start + o.stored_len]
            how = "truncated" if len(payload) < o.stored_len else ""
            if not how:
                try:
                    decode_payload(o, payload)
                except ObjectCorrupt:
                    how = "hash mismatch"
            if how:
                try:
                    size = self.backend.stat(pack_key(pack_id)).size
                except RemoteNotFound:
                    raise self.lost_pack(pack_id) from None
                fault = index_fault(self.backend, pack_id, o, size)
                raise RemoteError(
                    f"object {o.oid.hex()} does not read as the index says ({how}): "
                    f"refused, nothing of it was stored; {fault}"
                    if fault
                    else f"object {o.oid.hex()} in pack {pack_id[:12]} on {self.url} is "
                    f"corrupt ({how}): refused, nothing of it was stored; "
                    + mend_hint(pack_key(pack_id))
                )
            out.append((o, payload))
        return out

    def _from_elsewhere(
        self, lost: str, group: list[PackedObject], refused: RemoteObjectRefused | None = None
    ) -> list[tuple[PackedObject, bytes]]:
        """The objects of ``group`` read from other packs that list them, pack ``lost``
        being missing (deleted by hand, or lost with a disk: a remote gc drops its
        entries) or ``refused`` as no pack (a link or a FIFO in its place), as
        ``fetch_range`` gives them; :meth:`lost_pack` (or that refusal, with what to do)
        if one is listed nowhere else. The index is read again (from the segments cached
        here) avoiding every pack found missing and what the last ``index`` avoided: one
        extra index in memory while a remote lacks a pack its index lists."""
        with self._lost_lock:
            if lost not in self._lost or self._elsewhere is None:
                self._lost.add(lost)
                self._elsewhere = self._merged(self._avoid | self._lost)
            elsewhere, gone = self._elsewhere, set(self._lost)
        if any(elsewhere.get(o.oid, (lost, o))[0] in gone for o in group):
            if refused is not None:
                raise RemoteObjectRefused(f"{refused}; " + mend_hint(pack_key(lost)))
            raise self.lost_pack(lost)
        out = []
        for pack_id, objs in self.ranges([o.oid for o in group], elsewhere):
            out += self.fetch_range(pack_id, objs)
        return out

    def download(
        self,
        wanted: Iterable[bytes],
        index: dict[bytes, Located],
        pool: ThreadPoolExecutor,
        jobs: int,
    ) -> Iterator[tuple[PackedObject, bytes]]:
        """Fetch objects by id, several per ranged GET; each is verified before it is yielded.

        At most ``2 * jobs`` ranges are in flight, so memory stays bounded.
        """
        pending: deque[Future[list[tuple[PackedObject, bytes]]]] = deque()
        limit = 2 * jobs
        try:
            for pack_id, group in self.ranges(wanted, index):
                pending.append(pool.submit(self.fetch_range, pack_id, group))
                while len(pending) >= limit:
                    yield from pending.popleft().result()
            while pending:
                yield from pending.popleft().result()
        finally:
            for f in pending:
                f.cancel()
