"""Whether the journal of a writable mount's working tree can be read whole.

The daemon's overlay (``daemon.overlay``) keeps each working tree in a work
directory, ``<repo>/.dvfs/worktrees/<branch>/``: ``state`` names the journal,
``journal.<gen>``, and ``data/`` holds the changed files' content; the records are
defined in ``daemon.overlay.journal``. Here only their framing is read, by the daemon
at every mount and by ``dvfs fsck``: a journal is msgpack arrays, each beginning with
its tag (``N``, ``L``, ``U`` or ``S``), appended with one ``write`` each.

A kill cannot tear a ``write``; a power cut or a full disk can leave a *torn tail*:
the last record cut short (bytes that begin a record and end before it does), or
zeros where the file's new size was made durable before its data. That tail is cut
off: the change it recorded was never acknowledged. Anything else that does not read
as records is *damage* (a record that is no array, or no known tag, or bytes that do
not decode, with more than zeros after them; or a length reaching past the end of the
journal, which stops the reading as a cut does, with a whole record after it): what
the records past it said is unknown, so the daemon refuses the working tree rather
than take the files named there for strays and delete them.
"""

from __future__ import annotations

import os
import re
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import msgpack

from vfs.quoting import quote_name

TAGS = ("N", "L", "U", "S")
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


def read_journal(data: bytes) -> JournalRecords:
    """The records of journal bytes ``data``, and where damage begins if any.

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
        gen = _generation(top / name / "state")
        if gen is None:
            continue  # (a damaged state is gc's and the daemon's to name)
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
        got = read_journal(data)
        if got.damaged_at is not None:
            out.append(journal_damage(path, f"at byte {got.damaged_at} of {len(data)}"))
    return out


def _generation(path: Path) -> int | None:
    """The journal generation a ``state`` record names (None: none readable)."""
    try:
        with open(path, "rb", opener=_no_follow) as f:
            if not stat.S_ISREG(os.fstat(f.fileno()).st_mode):
                return None
            raw = f.read(MAX_STATE + 1)
        st = msgpack.unpackb(raw, raw=False)
    except (OSError, ValueError, msgpack.UnpackException):
        return None
    gen = st.get("gen") if isinstance(st, dict) else None
    return gen if isinstance(gen, int) and not isinstance(gen, bool) else None


def _no_follow(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
