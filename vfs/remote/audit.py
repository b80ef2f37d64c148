"""The remote's audit chain: each push and remote gc appends an entry at ``audit/<seq>``.

Entries have the local log's format (:mod:`vfs.repo.audit`) and are linked the same
way, by the BLAKE3 of the entry before. An entry is created with If-None-Match, so two
writers racing for a number never fork the chain: the loser links to the winner's
entry and takes the next number. ``.dvfs/remotes/<name>/audit.head`` remembers where
the chain ended for this clone, so that a chain cut or edited at its end shows at the
next :func:`verify_remote`. The key names are :mod:`vfs.remote.layout`'s. A listing of
more than ``MAX_AUDIT_ENTRIES`` keys under ``audit/`` is refused (RemoteError), as
one of too many refs or segments is: each entry is read at most ``MAX_LINE`` bytes.
An object no entry can be (larger than that; on a directory remote a FIFO, a link or
a folder) is read as no bytes: named as edited by a verify, linked past by an append.
"""

from __future__ import annotations

import contextlib
import errno
import os
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from vfs._os.beneath import open_kept
from vfs.backends.base import Backend
from vfs.errors import FormatError, RemoteError, RemoteNotFound, RemoteObjectRefused
from vfs.model.ids import hash_bytes
from vfs.remote.layout import (
    AUDIT,
    MAX_AUDIT_ENTRIES,
    MAX_AUDIT_SEQ,
    audit_key,
    audit_seq,
    bounded,
)
from vfs.repo.audit import (
    MAX_LINE,
    ZERO,
    Change,
    Entry,
    Verdict,
    encode_entry,
    make_entry,
    parse_entry,
    read_file,
)
from vfs.store.durable import write_atomic_at

REMOTE_HEAD = "audit.head"  # in .dvfs/remotes/<name>/
VERIFIED = "audit.verified"  # beside it: the entries already checked, by ETag (verify_remote)
MAX_CHECKED = 1 << 30  # bytes of that record read at most (some 5 million entries)
APPEND_TRIES = 1000  # entries other writers may add while one append goes on
# What an object that cannot be read as an entry (too large; a FIFO, a link or a folder
# on a directory remote) hashes as when an entry must link to it: the hash of no bytes,
# which no entry is.
UNREADABLE = hash_bytes(b"").hex()


_Listed = TypeVar("_Listed")


def _bounded(backend: Backend, listed: Iterable[_Listed]) -> Iterator[_Listed]:
    """``listed`` (a listing of ``audit/``); RemoteError past ``MAX_AUDIT_ENTRIES``."""
    return bounded(listed, MAX_AUDIT_ENTRIES, backend.url, f"objects under {AUDIT}",
                   "; use another remote, or ask its owner to check its audit/ folder")  # fmt: skip


def _remote_seqs(backend: Backend) -> tuple[list[int], list[str]]:
    """The entry numbers under ``audit/`` (sorted), and the keys that are not entries."""
    seqs: list[int] = []
    odd: list[str] = []
    for key in _bounded(backend, backend.list(AUDIT)):
        seq = audit_seq(key)
        if seq is not None:
            seqs.append(seq)
        else:
            odd.append(key)
    return sorted(seqs), sorted(odd)


def _refused(exc: RemoteError) -> bool:
    """Whether ``exc`` is about one object (too large, no regular file, a link, a folder
    where a key is written; or gone), not the remote as a whole (unreachable,
    credentials, a TLS failure, a directory remote that is no longer the one it was)."""
    return isinstance(exc, RemoteObjectRefused | RemoteNotFound)


def _exists(backend: Backend, seq: int) -> bool:
    """Whether something is at entry ``seq``'s key: an entry, or an object refused."""
    try:
        backend.stat(audit_key(seq))
        return True
    except RemoteNotFound:
        return False
    except RemoteError as exc:
        if _refused(exc):
            # A FIFO or a link there: the number is taken all the same. Unless it is the
            # folder that is refused (audit/ a link), and so every key, each "taken":
            # listing the key's name raises that, as a listing of audit/ does.
            next(iter(backend.list(audit_key(seq))), None)
            return True
        raise


def _exists_key(backend: Backend, key: str) -> bool:
    """Whether something is at ``key``: an object, or one refused (a FIFO, a link)."""
    try:
        backend.stat(key)
        return True
    except RemoteNotFound:
        return False
    except RemoteError as exc:
        if _refused(exc):
            return True
        raise


def _entry_hash(backend: Backend, seq: int) -> str:
    """The hash of entry ``seq``'s bytes, for the next entry to link to; ``UNREADABLE``
    if no entry can be read there (too large, not a file, gone since listed)."""
    try:
        return hash_bytes(backend.get_small(audit_key(seq), MAX_LINE)).hex()
    except RemoteError as exc:
        if _refused(exc):
            return UNREADABLE
        raise


def _create(backend: Backend, batch: list[tuple[str, bytes]]) -> Sequence[bool]:
    """``backend.create_many(batch, in_order=True)``. A directory remote refuses to write
    where a folder, a link or a FIFO holds a key (an S3 store answers "there"): the
    entries written before it are found by reading them back, and that key is taken.
    A key refused because ``audit/`` itself is a file or a FIFO is no key taken, and
    no other number would do better: RemoteError."""
    try:
        return backend.create_many(batch, in_order=True)
    except RemoteError as exc:
        if not _refused(exc):
            raise
    made: list[bool] = []
    for key, data in batch:
        try:
            made.append(backend.get_small(key, MAX_LINE) == data)
        except RemoteNotFound:
            if not _exists_key(backend, AUDIT.rstrip("/")):
                made.append(False)  # (a folder at the key: no entry, the number taken)
                break
            raise RemoteError(
                f"{backend.url} holds {AUDIT.rstrip('/')} as no folder, so no audit entry "
                f"can be written ({key}) and no ref was moved: ask the remote's owner to "
                f"put its {AUDIT} folder back"
            ) from None
        except RemoteError as exc:
            if not _refused(exc):
                raise
            made.append(False)
        if not made[-1]:
            break
    return made


def seen_end(head_path: Path | None) -> int:
    """The number of the last entry of a remote's chain this clone saw, at its last
    push or verify (``head_path``, ``chain_head``); 0 where it recorded none."""
    hint = _read_head(head_path)
    return 0 if hint is None else hint[0]


def _read_head(path: Path | None) -> tuple[int, str] | None:
    if path is None:
        return None
    data = read_file(path.parent, path.name)  # (never through a link: FormatError)
    with contextlib.suppress(ValueError, UnicodeDecodeError):
        seq, digest = (data or b"").decode().split()
        if 0 < int(seq) <= MAX_AUDIT_SEQ and len(digest) == 64:
            return int(seq), digest
    return None


def _write_head(path: Path | None, seq: int, digest: str) -> None:
    if path is not None:
        _write_beneath(path, f"{seq} {digest}\n".encode())


def _write_beneath(path: Path, data: bytes) -> None:
    """Write ``path`` atomically through a descriptor of its directory, opened from
    ``.dvfs`` without following a link (made before or swapped in meanwhile: the
    write is left out, as when the link was there first: see ``config.kept_dir``)."""
    try:
        fd = open_kept(path.parent, make=True)
    except OSError as exc:
        if exc.errno in (errno.ELOOP, errno.ENOTDIR):
            return
        raise
    try:
        write_atomic_at(fd, path.name, data)
    finally:
        os.close(fd)


def _last_seq(backend: Backend, hint: tuple[int, str] | None) -> int:
    """The number of the last entry: probed forward from ``hint``, else listed."""
    if hint is not None and _exists(backend, hint[0]):
        n = hint[0]
        while n < MAX_AUDIT_SEQ and _exists(backend, n + 1):
            n += 1
        return n
    seqs, _ = _remote_seqs(backend)
    return seqs[-1] if seqs else 0


def append_remote(
    backend: Backend,
    head_path: Path | None,
    op: str,
    ref: str,
    old: bytes | None,
    new: bytes | None,
    note: str = "",
) -> int:
    """Append an entry to a remote's chain with If-None-Match; return its number.

    ``head_path`` (``.dvfs/remotes/<name>/audit.head``) remembers where the chain
    ended for this clone. A lost race for a number is retried at the next one. A chain
    that ends before that entry, or whose entry there no longer hashes as recorded
    (cut, edited or made unreadable since this clone saw it), is appended to after
    what this clone saw: its number, and its hash as ``prev``. An end this clone never
    saw that cannot be read is linked to as ``UNREADABLE``.
    """
    return append_remote_many(backend, head_path, [(op, ref, old, new, note)])


def append_remote_many(backend: Backend, head_path: Path | None, changes: Sequence[Change]) -> int:
    """:func:`append_remote` of each of ``changes`` in turn; the number of the last.

    Where the chain ends is found once: each entry after the first is written at the
    number after the one before, linked to it, with one PUT (a push of 2,000 new tags
    probed and read the chain's end again for each, four requests a tag), all of them
    by one ``Backend.create_many`` in order (a directory remote fsyncs the folder once
    for all). Only a lost race for a number reads the winner's entry to link to it,
    and writes the rest after it. Nothing is asked of the remote when there is
    nothing to append (0).
    """
    if not changes:
        return 0
    hint = _read_head(head_path)
    n = _last_seq(backend, hint)
    prev: str | None = None  # the hash of entry n, once known
    if hint is not None and n <= hint[0]:
        # The chain ends where this clone saw it end, or before: the new entry follows
        # what this clone saw, whatever entry n holds now. Entries cut off the end, or
        # the last one edited or made unreadable (too large, a FIFO, a link), so stay
        # for verify (here and in every clone) to name, not only until this append;
        # and no remote is stuck refusing every push for an end no one can read.
        n, prev = hint
    done = lost = 0
    while done < len(changes):
        if n + len(changes) - done > MAX_AUDIT_SEQ:
            raise RemoteError(_no_number(backend, n))
        if prev is None:
            prev = ZERO if n == 0 else _entry_hash(backend, n)
        batch: list[tuple[str, bytes]] = []
        link = prev
        for op, ref, old, new, note in changes[done:]:
            data = encode_entry(make_entry(n + 1 + len(batch), link, op, ref, old, new, note))
            batch.append((audit_key(n + 1 + len(batch)), data))
            link = hash_bytes(data).hex()
        made = _create(backend, batch)
        kept = made.index(False) if False in made else len(made)
        if kept:
            n, prev, done, lost = n + kept, hash_bytes(batch[kept - 1][1]).hex(), done + kept, 0
        if done < len(changes):
            lost += 1  # another writer took number n + 1: link to its entry
            if lost >= APPEND_TRIES:
                raise FormatError(
                    f"{backend.url}: {APPEND_TRIES} audit entries were written while this "
                    "one waited: try again"
                )
            n, prev = n + 1, None
    if prev is not None:
        _write_head(head_path, n, prev)
    return n


def _no_number(backend: Backend, n: int) -> str:
    """Why no entry can follow entry ``n`` (a key past ``MAX_AUDIT_SEQ`` is no entry,
    read by no listing), and what to do."""
    return (
        f"{backend.url} holds {audit_key(n)}, the last number an audit entry can have, so "
        "no entry can be added after it and no ref was moved: the chain is damaged or "
        f"hostile (none grows that long); ask the remote's owner to check its {AUDIT} "
        "folder (`dvfs audit verify --remote` names the damage)"
    )


def _fetch_remote(backend: Backend, seqs: list[int], jobs: int) -> list[bytes | None]:
    """The entries' bytes (None: deleted since listed), ``jobs`` runs of them at once.

    At most ``MAX_LINE + 1`` bytes of each are read; one longer than any entry, or
    refused (a FIFO or a link on a directory remote), is given as no bytes, which no
    entry is: the verdict names it as edited, the listing as not an entry (it made
    both fail whole, naming the object's size or kind instead)."""

    def run(part: list[int]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for seq in part:
            try:
                data = backend.get(audit_key(seq), 0, MAX_LINE + 1)
            except RemoteNotFound:
                out.append(None)
                continue
            except RemoteError as exc:
                if not _refused(exc):
                    raise
                data = b""  # a FIFO or a link on a directory remote: no entry either
            out.append(data if len(data) <= MAX_LINE else b"")
        return out

    size = max(64, -(-len(seqs) // max(1, jobs)))  # one task a run: no per-entry future
    parts = [seqs[i : i + size] for i in range(0, len(seqs), size)]
    from concurrent.futures import ThreadPoolExecutor  # (only when entries are read)

    with ThreadPoolExecutor(max(1, min(jobs, len(parts)))) as pool:
        return [data for got in pool.map(run, parts) for data in got]


def remote_entries(
    backend: Backend, jobs: int = 16, skipped: list[int] | None = None
) -> list[Entry]:
    """Every entry of a remote's chain in order (not verified; odd objects skipped, and
    the numbers of those that are no entry added to ``skipped``: one holding another
    number than its key's too, a copy of another entry or one moved)."""
    seqs, _ = _remote_seqs(backend)
    out = []
    for seq, data in zip(seqs, _fetch_remote(backend, seqs, jobs), strict=True):
        if data is not None:
            try:
                entry = parse_entry(data, seq)[0]
            except FormatError:
                entry = None
            if entry is not None and entry.seq == seq:
                out.append(entry)
            elif skipped is not None:
                skipped.append(seq)
    return out


def _listing(backend: Backend) -> tuple[dict[int, tuple[str, float]], list[str]]:
    """Each entry's number -> (ETag, LastModified), from one listing; the odd keys.

    Where the listing asks for each key's ETag and one is refused (a FIFO or a link on
    a directory remote), each key is asked for again, that one given no ETag: it is
    then read, as no bytes, and named as edited."""
    try:
        listed = [
            (key, (i.etag, i.modified)) for key, i in _bounded(backend, backend.list_info(AUDIT))
        ]
    except RemoteError as exc:
        if not _refused(exc) or isinstance(exc, RemoteNotFound):
            raise
        listed = [(key, _info(backend, key)) for key in _bounded(backend, backend.list(AUDIT))]
    seqs: dict[int, tuple[str, float]] = {}
    odd: list[str] = []
    for key, info in listed:
        seq = audit_seq(key)
        if seq is not None:
            seqs[seq] = info
        else:
            odd.append(key)
    return seqs, sorted(odd)


def _info(backend: Backend, key: str) -> tuple[str, float]:
    """``key``'s (ETag, LastModified); ("", 0) if it is refused or gone."""
    try:
        info = backend.head(key)
    except RemoteError as exc:
        if not _refused(exc):
            raise
        return "", 0.0
    return info.etag, info.modified


@dataclass(frozen=True, slots=True)
class _Checked:
    """An entry a verify found in an intact chain, and how the remote listed it then."""

    etag: str
    modified: float
    digest: str  # the entry's BLAKE3
    prev: str  # the hash it holds of the entry before


def _read_checked(path: Path | None) -> dict[int, _Checked]:
    """``audit.verified``: one line per entry, ``seq etag modified digest prev``.

    Anything unreadable makes it an empty record: the verify then reads every entry.
    """
    out: dict[int, _Checked] = {}
    if path is None:
        return out
    try:
        data = read_file(path.parent, path.name) or b""  # (a link: FormatError, empty)
        if len(data) > MAX_CHECKED:
            return {}
        for line in data.decode().splitlines():
            seq, etag, modified, digest, prev = line.split(" ")
            if len(digest) != 64 or len(prev) != 64:
                return {}
            out[int(seq)] = _Checked(etag, float(modified), digest, prev)
    except (OSError, ValueError, UnicodeDecodeError, FormatError):
        return {}
    return out


def _write_checked(path: Path | None, checked: dict[int, _Checked]) -> None:
    if path is None:
        return
    lines = [f"{n} {c.etag} {c.modified!r} {c.digest} {c.prev}\n" for n, c in checked.items()]
    if any(len(line.split(" ")) != 5 for line in lines):
        return  # an ETag with a space: keep no record (the next verify reads every entry)
    _write_beneath(path, "".join(lines).encode())


def verify_remote(
    backend: Backend, head_path: Path | None, jobs: int = 16, *, full: bool = False
) -> Verdict:
    """Check a remote's chain; name the first entry edited, deleted or inserted.

    When it is intact, ``head_path`` is moved to its last entry, so that cutting or
    editing entries later, at the end included, shows at the next verify; and
    ``audit.verified`` beside it records each entry's ETag and LastModified with its
    hash and link. The next verify lists the chain once (ListObjectsV2 gives both) and
    reads only the entries listed differently, or new: rewriting an entry gives it a new
    LastModified (a server's clock, which ordinary writes cannot set) and, with other
    bytes, a new ETag, so an edited entry is read again and named. ``full`` reads every
    entry whatever the record says.
    """
    listing, odd = _listing(backend)
    seqs = sorted(listing)
    checked_path = None if head_path is None else head_path.parent / VERIFIED
    known = {} if full else _read_checked(checked_path)
    need = [n for n in seqs if (k := known.get(n)) is None or (k.etag, k.modified) != listing[n]]
    fetched = dict(zip(need, _fetch_remote(backend, need, jobs), strict=True))
    problems: list[str] = [f"{k} is not an entry: it was inserted" for k in odd[:3]]
    n = len(seqs)
    prev_hash = ZERO
    expect = 1
    now: dict[int, _Checked] = {}
    for seq in seqs:
        if seq != expect:
            gone = f"entry {expect} is" if seq == expect + 1 else f"entries {expect}..{seq - 1} are"
            problems.append(f"{gone} missing: deleted")
            return Verdict(n, problems)
        expect = seq + 1
        if seq in fetched:
            data = fetched[seq]
            if data is None:
                problems.append(f"entry {seq} is missing: deleted")
                return Verdict(n, problems)
            try:
                e, prev = parse_entry(data, seq)
            except FormatError:
                problems.append(f"entry {seq} is not an entry: it was edited")
                return Verdict(n, problems)
            if e.seq != seq:
                problems.append(
                    f"entry {seq} holds entry {e.seq}'s number: it was inserted or moved"
                )
                return Verdict(n, problems)
            digest = hash_bytes(data).hex()
        else:
            prev, digest = known[seq].prev, known[seq].digest
        if prev != prev_hash:
            problems.append(
                "entry 1 was edited (it must follow nothing)"
                if seq == 1
                else f"entry {seq - 1} was edited, or entry {seq} inserted: entry {seq} "
                f"holds the hash of another"
            )
            return Verdict(n, problems)
        now[seq] = _Checked(*listing[seq], digest, prev)
        prev_hash = digest
    hint = _read_head(head_path)
    if hint is not None:
        seq, digest = hint
        if seq > n:
            problems.append(f"entries {n + 1}..{seq} are missing: deleted from the end")
        elif seq in now and now[seq].digest != digest:
            problems.append(f"entry {seq} was edited: this clone saw it with another hash")
    if not problems and now:
        last = max(now)
        _write_head(head_path, last, now[last].digest)
        if now != known:
            _write_checked(checked_path, now)
    return Verdict(n, problems)
