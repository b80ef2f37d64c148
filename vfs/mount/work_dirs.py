"""Whether the journal of a writable mount's working tree can be read whole.

The daemon's overlay (``daemon.overlay``) keeps each working tree in a work
directory, ``<repo>/.dvfs/worktrees/<branch>/``: ``state`` names the journal,
``journal.<gen>``, and its format; ``data/`` holds the changed files' content. The
records are defined in ``daemon.overlay.journal``; here only their framing is read,
by the daemon at every mount and by ``dvfs fsck``.

Framing of format 3 (``JOURNAL_FRAMED``): each append is one *frame*, written with one
``write``::

    u32 little-endian  n      length of the payload, 1 or more
    u32 little-endian  crc    CRC-32 (zlib's) of the 4 length bytes, then the payload
    n bytes            payload the appended records: msgpack arrays, concatenated

A kill cannot tear a ``write``; a power cut or a full disk can leave a *torn tail*:
the last frame cut short, or zeros where the file's new size was made durable
before its data (ext4 does this), or both. No such tail passes its checksum (a
length of 0 never does), none is followed by a frame that does, its payload, as
far as it is there and not zeros, begins as a record does, and only zeros follow
the length its header gives: it is cut off, since the change it recorded was never
acknowledged, and so is every record of an append cut short (one append is one
change). A frame that fails its checksum with a whole frame after it, or with a
payload that begins as no record does, or with more than zeros past its length, or
one that passes it and holds no whole records, is *damage*: what the records past
it said is unknown, so the daemon refuses the working tree rather than take the
files named there for strays and delete them.

Formats 1 and 2 wrote the msgpack arrays bare, concatenated. They are still read
(the daemon rewrites such a journal framed at its next mount): a torn tail there is
bytes that begin a record and end before it does, or zeros after the last record;
anything else that does not read as records is damage (a record that is no array,
or no known tag, or bytes that do not decode, with more than zeros after them; or
a length reaching past the end of the journal, with a whole record after it). Zeros
after a record's first bytes cannot be told from its fields there; the checksum
is what tells them apart now.
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from vfs.quoting import quote_name

TAGS = ("N", "L", "U", "S")
JOURNAL_FRAMED = 3  # the first format (of ``state``) whose journal is framed
STATE_FORMAT = 3  # the newest format of ``state`` (and its journal) this dvfs knows
LAYERS_FORMAT = 1  # the format of a kernel overlay's ``layers`` (``daemon.upper``)
FRAME = struct.Struct("<II")  # a frame's length and checksum
# How a record begins: an array of up to 15 items, then its tag as a 1-byte string.
_RECORD_START = re.compile(rb"[\x92-\x9f]\xa1[NLUS]")
WORKTREES = "worktrees"
MAX_STATE = 1 << 16  # bytes of a state record read at most


@dataclass(frozen=True)
class JournalRecords:
    """The records of a journal as read (see the module docstring)."""

    records: list[list[Any]]
    whole: int  # bytes of the whole records at its start
    damaged_at: int | None  # where damage begins (None: none, maybe a torn tail)


def journal_frame(payload: bytes) -> bytes:
    """One append of a framed journal: ``payload`` (records) with its length and
    checksum."""
    length = len(payload).to_bytes(4, "little")
    return length + zlib.crc32(payload, zlib.crc32(length)).to_bytes(4, "little") + payload


def read_journal(data: bytes, framed: bool) -> JournalRecords:
    """The records of journal bytes ``data`` (``framed``: of format
    ``JOURNAL_FRAMED``, else bare records), and where damage begins if any."""
    return _read_framed(data) if framed else _read_bare(data)


def _read_framed(data: bytes) -> JournalRecords:
    starts: list[int] = []  # of the frames that pass their checksums, in order
    payloads: list[bytes] = []
    at = 0
    while (payload := _frame_at(data, at)) is not None:
        starts.append(at)
        payloads.append(payload)
        at += FRAME.size + len(payload)
    joined = b"".join(payloads)  # decoded at once: a frame must hold whole records
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(joined) or 1)
    unpacker.feed(joined)
    records: list[list[Any]] = []
    ends = {0: 0}  # offset in joined where a record ends -> records before it
    with contextlib.suppress(ValueError, msgpack.UnpackException):
        for rec in unpacker:
            if not (isinstance(rec, list) and rec and rec[0] in TAGS):
                break
            records.append(rec)
            ends[unpacker.tell()] = len(records)
    end = 0
    for i, payload in enumerate(payloads):
        end += len(payload)
        if end not in ends:  # checksummed, yet no whole records
            kept = ends[end - len(payload)]
            return JournalRecords(records[:kept], starts[i], starts[i])
    torn = at == len(data) or (_torn_shape(data[at:]) and not _frame_resumes(data, at + 1))
    return JournalRecords(records, at, None if torn else at)


def _torn_shape(tail: bytes) -> bool:
    """True if ``tail``, what follows the whole frames, can be one append cut short or
    zero-filled: its payload, as far as it is there and not zeros, begins as a record
    does, and only zeros follow the length its header gives. (Bytes that do not are
    damage, not a tail to cut: cutting them would take the files their records named
    for strays.)"""
    start = tail[FRAME.size : FRAME.size + 3].rstrip(b"\0")
    if _RECORD_START.match(start + b"\x92\xa1N"[len(start) :]) is None:
        return False
    if len(tail) < FRAME.size:
        return True
    n, _ = FRAME.unpack_from(tail)
    return not tail[FRAME.size + n :].strip(b"\0")


def _frame_at(data: bytes, at: int) -> bytes | None:
    """The payload of the frame at ``at`` in ``data``, if a whole one that passes its
    checksum begins there."""
    if len(data) - at < FRAME.size:
        return None
    n, crc = FRAME.unpack_from(data, at)
    start = at + FRAME.size
    if n == 0 or n > len(data) - start:
        return None
    payload = data[start : start + n]
    return payload if zlib.crc32(payload, zlib.crc32(data[at : at + 4])) == crc else None


def _frame_resumes(data: bytes, start: int) -> bool:
    """True if a whole frame begins somewhere at or after ``start``.

    Only where a record begins 8 bytes on (``_RECORD_START``) is a frame looked
    for: every payload begins with one, and so the checksums read add up to about
    the journal's size, however damaged it is.
    """
    for m in _RECORD_START.finditer(data, start + FRAME.size):
        if _frame_at(data, m.start() - FRAME.size) is not None:
            return True
    return False


def _read_bare(data: bytes) -> JournalRecords:
    """The records of a journal of format 1 or 2 (bare records).

    A record cut short is a torn tail only if no whole record follows it: a length
    damaged to reach past the end of the data stops the reading as a cut does, and
    what follows it is still there.
    """
    records, whole, stopped = _records(data)
    if stopped:
        torn = not data[whole:].strip(b"\0")
    else:
        torn = whole == len(data) or not _resumes(data, whole + 1)
    return JournalRecords(records, whole, None if torn else whole)


def _records(data: bytes) -> tuple[list[list[Any]], int, bool]:
    """The records at the start of ``data``, the bytes they take, and whether the
    reading stopped on something that is no record (else at the end of ``data``)."""
    unpacker = msgpack.Unpacker(raw=False, strict_map_key=False, max_buffer_size=len(data) or 1)
    unpacker.feed(data)
    records: list[list[Any]] = []
    whole = 0
    try:
        for rec in unpacker:
            if not (isinstance(rec, list) and rec and rec[0] in TAGS):
                return records, whole, True
            records.append(rec)
            whole = unpacker.tell()
    except (ValueError, msgpack.UnpackException):
        return records, whole, True
    return records, whole, False


def _resumes(data: bytes, start: int) -> bool:
    """True if a whole record begins somewhere at or after ``start``."""
    for m in _RECORD_START.finditer(data, start):
        got, _, _ = _records(data[m.start() :])
        if got:
            return True
    return False


def journal_damage(path: Path, where: str) -> str:
    """What to tell a user whose journal ``path`` is damaged (``where``: "at byte 5 of
    90", say)."""
    return (
        f"the working tree journal {quote_name(str(path))} is damaged {where}, so its "
        "changes cannot be read back: no mount uses it and nothing in it is deleted; "
        f"move {quote_name(str(path.parent))} elsewhere (its data/ holds the changed files' "
        "content) to mount the branch head"
    )


def orphaned_changes(work: Path) -> str | None:
    """What a work directory without its ``state`` record holds that only a mount
    could have written (a journal with records, files in ``data/``), or None.

    ``state`` is written before any of them (and removed after them), so they are
    changes whose record of which version they were made over is lost.
    """
    journals = [p for p in work.glob("journal.*") if p.is_file() and p.stat().st_size]
    try:
        files = len(os.listdir(work / "data"))
    except (FileNotFoundError, NotADirectoryError):
        files = 0
    if not (journals or files):
        return None
    return f"{files} file(s) in data/" if files else f"the journal {journals[0].name}"


def newer_format(record: object, known: int) -> int | None:
    """The format of a decoded work-directory record (``state``, ``layers``) if it is
    newer than ``known``, the newest this dvfs writes; else None.

    Only the ``format`` field is looked at: a later format may change every other
    field, and its record must be told from a damaged one by that number alone, so
    that an older dvfs refuses it as a newer dvfs's (and leaves it as it is) rather
    than as damage. (Formats up to 3 of ``state`` were only checked among the
    others: a dvfs that old calls any newer one damaged.)
    """
    if not isinstance(record, dict):
        return None
    fmt = record.get("format")
    return fmt if type(fmt) is int and fmt > known else None


def newer_format_message(path: Path, fmt: int, known: int) -> str:
    """What to tell a user whose work-directory record ``path`` is of format ``fmt``,
    newer than this dvfs knows (``known``)."""
    work = quote_name(str(path.parent))
    return (
        f"the working tree {work} was written by a newer dvfs ({path.name} format {fmt}; "
        f"this one knows up to {known}): mount it with that dvfs, or upgrade dvfs; "
        "nothing in it was changed"
    )


def missing_state_message(work: Path, held: str) -> str:
    """What to tell a user whose work directory ``work`` lost its ``state`` record."""
    return (
        f"the working tree {quote_name(str(work))} has no state record though it holds "
        f"{held}: no mount uses it and nothing in it is deleted; move it elsewhere (its "
        "data/ holds the changed files' content) to mount the branch head"
    )


def work_dir_names(dvfs_dir: Path) -> list[str]:
    """The names of the work directories in ``dvfs_dir/worktrees``, sorted (fsck, gc).

    A symbolic link, there or as ``worktrees`` itself, is left out: no mount uses one
    (``service.work_dir`` refuses a link out), and what it points to is not the
    repository's to read.
    """
    top = dvfs_dir / WORKTREES
    if top.is_symlink():
        return []
    try:
        names = sorted(os.listdir(top))
    except (FileNotFoundError, NotADirectoryError):
        return []
    return [name for name in names if not (top / name).is_symlink()]


def check_work_dirs(dvfs_dir: Path) -> list[str]:
    """Problems of the daemon overlays' journals under ``dvfs_dir/worktrees`` (fsck)."""
    top = dvfs_dir / WORKTREES
    out: list[str] = []
    for name in work_dir_names(dvfs_dir):
        if not (top / name / "state").exists():
            held = None if (top / name / "layers").exists() else orphaned_changes(top / name)
            if held is not None:
                out.append(missing_state_message(top / name, held))
            continue
        got_state = _generation(top / name / "state")
        if got_state is None:
            continue  # (a damaged state is gc's and the daemon's to name)
        gen, fmt = got_state
        if fmt > STATE_FORMAT:
            continue  # (a newer dvfs's journal: not read as damaged; the daemon names it)
        path = top / name / f"journal.{gen}"
        try:
            with open(path, "rb", opener=_no_follow) as f:
                if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):  # (a FIFO: not waited on)
                    out.append(journal_damage(path, "(it is not a regular file)"))
                    continue
                data = f.read()
        except FileNotFoundError:
            continue
        except OSError as exc:
            out.append(f"cannot read the working tree journal {path} ({exc.strerror})")
            continue
        got = read_journal(data, fmt >= JOURNAL_FRAMED)
        if got.damaged_at is not None:
            out.append(journal_damage(path, f"at byte {got.damaged_at} of {len(data)}"))
    return out


def _generation(path: Path) -> tuple[int, int] | None:
    """The journal generation and format a ``state`` record names (None: none
    readable)."""
    try:
        with open(path, "rb", opener=_no_follow) as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            raw = f.read(MAX_STATE + 1)
        st = msgpack.unpackb(raw, raw=False)
    except (OSError, ValueError, msgpack.UnpackException):
        return None
    if not isinstance(st, dict):
        return None
    gen, fmt = st.get("gen"), st.get("format")
    if type(gen) is not int or type(fmt) is not int:
        return None
    return gen, fmt


def work_dir_name(branch: str) -> str:
    """A file name for a branch's work directory (branch names may hold "/")."""
    return branch.replace("%", "%25").replace("/", "%2F")


def held_changes(work: Path) -> str | None:
    """What the work directory ``work`` holds that a mount wrote and no version may
    record yet, or None: a journal with records or files in ``data/`` (the daemon's
    overlay), or names in ``upper/`` (the kernel's, whose upper layer keeps what a
    snapshot recorded until the next mount rebases it: "may")."""
    held = orphaned_changes(work)
    if held is not None:
        return held
    try:
        with os.scandir(work / "upper") as it:
            if any(True for _ in it):
                return "files in upper/"
    except (FileNotFoundError, NotADirectoryError):
        pass
    return None


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
