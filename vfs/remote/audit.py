"""The remote's audit chain: each push and remote gc appends an entry at ``audit/<seq>``.

Entries have the local log's format (:mod:`vfs.repo.audit`) and are linked the same
way, by the BLAKE3 of the entry before. An entry is created with If-None-Match, so two
writers racing for a number never fork the chain: the loser links to the winner's
entry and takes the next number. ``.dvfs/remotes/<name>/audit.head`` remembers where
the chain ended for this clone, so that a chain cut or edited at its end shows at the
next :func:`verify_remote`. The key names are :mod:`vfs.remote.layout`'s.
"""

from __future__ import annotations

import contextlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from vfs.backends.base import Backend
from vfs.errors import FormatError, PreconditionFailed, RemoteNotFound
from vfs.model.ids import hash_bytes
from vfs.remote.layout import AUDIT, audit_key, audit_seq
from vfs.repo.audit import MAX_LINE, ZERO, Entry, Verdict, encode_entry, make_entry, parse_entry
from vfs.store.durable import write_atomic

REMOTE_HEAD = "audit.head"  # in .dvfs/remotes/<name>/
APPEND_TRIES = 1000  # entries other writers may add while one append goes on


def _remote_seqs(backend: Backend) -> tuple[list[int], list[str]]:
    """The entry numbers under ``audit/`` (sorted), and the keys that are not entries."""
    seqs: list[int] = []
    odd: list[str] = []
    for key in backend.list(AUDIT):
        seq = audit_seq(key)
        if seq is not None:
            seqs.append(seq)
        else:
            odd.append(key)
    return sorted(seqs), sorted(odd)


def _exists(backend: Backend, seq: int) -> bool:
    try:
        backend.head(audit_key(seq))
        return True
    except RemoteNotFound:
        return False


def _read_head(path: Path | None) -> tuple[int, str] | None:
    if path is None:
        return None
    with contextlib.suppress(FileNotFoundError, ValueError, UnicodeDecodeError):
        seq, digest = path.read_text().split()
        if int(seq) > 0 and len(digest) == 64:
            return int(seq), digest
    return None


def _write_head(path: Path | None, seq: int, digest: str) -> None:
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_atomic(path, f"{seq} {digest}\n".encode())


def _last_seq(backend: Backend, hint: tuple[int, str] | None) -> int:
    """The number of the last entry: probed forward from ``hint``, else listed."""
    if hint is not None and _exists(backend, hint[0]):
        n = hint[0]
        while _exists(backend, n + 1):
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
    ended for this clone. A lost race for a number is retried at the next one.
    """
    hint = _read_head(head_path)
    n = _last_seq(backend, hint)
    for _ in range(APPEND_TRIES):
        prev = ZERO if n == 0 else hash_bytes(backend.get_small(audit_key(n), MAX_LINE)).hex()
        data = encode_entry(make_entry(n + 1, prev, op, ref, old, new, note))
        try:
            backend.put_conditional(audit_key(n + 1), data, if_none_match=True)
        except PreconditionFailed:
            n += 1  # another writer took that number: link to its entry instead
            continue
        _write_head(head_path, n + 1, hash_bytes(data).hex())
        return n + 1
    raise FormatError(
        f"{backend.url}: {APPEND_TRIES} audit entries were written while this one waited: try again"
    )


def _fetch_remote(backend: Backend, seqs: list[int], jobs: int) -> list[bytes | None]:
    """The entries' bytes (None: deleted since listed), ``jobs`` runs of them at once."""

    def run(part: list[int]) -> list[bytes | None]:
        out: list[bytes | None] = []
        for seq in part:
            try:
                out.append(backend.get_small(audit_key(seq), MAX_LINE))
            except RemoteNotFound:
                out.append(None)
        return out

    size = max(64, -(-len(seqs) // max(1, jobs)))  # one task a run: no per-entry future
    parts = [seqs[i : i + size] for i in range(0, len(seqs), size)]
    with ThreadPoolExecutor(max(1, min(jobs, len(parts)))) as pool:
        return [data for got in pool.map(run, parts) for data in got]


def remote_entries(backend: Backend, jobs: int = 16) -> list[Entry]:
    """Every entry of a remote's chain in order (not verified; odd objects skipped)."""
    seqs, _ = _remote_seqs(backend)
    out = []
    for seq, data in zip(seqs, _fetch_remote(backend, seqs, jobs), strict=True):
        if data is not None:
            with contextlib.suppress(FormatError):
                out.append(parse_entry(data, seq)[0])
    return out


def verify_remote(backend: Backend, head_path: Path | None, jobs: int = 16) -> Verdict:
    """Check a remote's chain; name the first entry edited, deleted or inserted.

    When it is intact, ``head_path`` is moved to its last entry, so that cutting or
    editing entries later, at the end included, shows at the next verify.
    """
    seqs, odd = _remote_seqs(backend)
    datas = _fetch_remote(backend, seqs, jobs)
    problems: list[str] = [f"{k} is not an entry: it was inserted" for k in odd[:3]]
    n = len(seqs)
    prev_hash = ZERO
    expect = 1
    last: tuple[int, str] | None = None
    for seq, data in zip(seqs, datas, strict=True):
        if seq != expect:
            gone = f"{expect}" if seq == expect + 1 else f"{expect}..{seq - 1}"
            problems.append(f"entry {gone} {'is' if seq == expect + 1 else 'are'} missing: deleted")
            return Verdict(n, problems)
        expect = seq + 1
        if data is None:
            problems.append(f"entry {seq} is missing: deleted")
            return Verdict(n, problems)
        try:
            e, prev = parse_entry(data, seq)
        except FormatError:
            problems.append(f"entry {seq} is not an entry: it was edited")
            return Verdict(n, problems)
        if e.seq != seq:
            problems.append(f"entry {seq} holds entry {e.seq}'s number: it was inserted or moved")
            return Verdict(n, problems)
        if prev != prev_hash:
            problems.append(
                "entry 1 was edited (it must follow nothing)"
                if seq == 1
                else f"entry {seq - 1} was edited, or entry {seq} inserted: entry {seq} "
                f"holds the hash of another"
            )
            return Verdict(n, problems)
        prev_hash = hash_bytes(data).hex()
        last = (seq, prev_hash)
    hint = _read_head(head_path)
    if hint is not None:
        seq, digest = hint
        if seq > n:
            problems.append(f"entries {n + 1}..{seq} are missing: deleted from the end")
        elif datas[seq - 1] is not None and hash_bytes(datas[seq - 1] or b"").hex() != digest:
            problems.append(f"entry {seq} was edited: this clone saw it with another hash")
    if not problems and last is not None:
        _write_head(head_path, *last)
    return Verdict(n, problems)
