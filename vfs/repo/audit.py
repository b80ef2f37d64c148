"""The audit log: every change of a local ref, hash-chained so that tampering shows.

``.dvfs/audit.log`` holds one entry a line, appended by ``vfs.repo.refs`` under
``refs.lock`` (so entries are in the order the refs changed) *before* the ref is
written: a crash between the two leaves an entry for a change that did not happen,
never a change without its entry. Each line is compact JSON with sorted keys::

    {"cmd": ["dvfs", "commit", "-m", "..."], "host": "node", "new": "<64 hex>" | null,
     "note": "", "old": "<64 hex>" | null, "op": "branch move", "prev": "<64 hex>",
     "ref": "refs/heads/main", "seq": 7, "time_ns": 1767225600000000000,
     "user": "alice", "v": 1}

``seq`` counts from 1; ``prev`` is the BLAKE3 of the previous line's bytes (without
its newline; 64 zeros for the first). ``op`` is ``<branch|tag|remote branch|HEAD>
<create|delete|move>``, or ``gc``; ``note`` says more where a ref alone does not
(HEAD's branch, bytes gc freed). ``cmd`` is the command line that made the change
(``vfs._os.program.set_command``; else the process's own), or what a long-running process did on
someone's behalf (:func:`acting`: ``["dvfs", "ui", "tag", NAME, REV]`` for the
dashboard's actions; a mount's daemon records the ``dvfs snapshot`` command line its
client sent). A line is written with one ``write``
to a file opened ``O_APPEND`` and fsynced; a last line without its newline (a crash
mid-write) was never an entry: the next append cuts it off, ``verify`` mentions it;
more bytes after the last line than an entry takes are damage, which appends refuse
and ``verify`` and :func:`blocked` (``dvfs fsck``) name.
Both files are read and written only as regular files opened from the directory's
descriptor with ``O_NOFOLLOW`` (:func:`_open`): a link there is refused, never followed.

``.dvfs/audit.head``: ``"<seq> <64 hex>\\n"``, the last entry's number and hash,
rewritten atomically after each append, so that deleting the last entries shows (a
head that is damaged, which no crash leaves, is left as it is for ``verify`` to name;
so is one missing beside two entries or more: a crash leaves a log without a head
only after its first entry or batch, and every dvfs that wrote the log wrote the head, which
came with it, before format 2, so no format record marks a log as older than heads). An
append to a log cut or whose last entry was edited since the head was written follows
the head, not the log's last line (its ``seq`` after the head's, its ``prev`` the
head's hash): the gap or the broken link stays in the chain for ``verify`` to name,
not only until the next change of a ref. The head is one entry behind the log at
most (a crash between the append and its rewrite), or just before a batch (below);
entries past that were added by hand: ``verify`` names them, and appends leave the
head where it is.

The changes of many refs one command makes together (``Refs.update_many``) are one
batch: :func:`record_many` appends their entries with one ``write`` and one fsync and
rewrites the head once; each entry's note ends ``change I of N made together``. A
crash during that append or before the head's rewrite leaves entries 1..J of the
batch past the head, which ``verify`` and appends accept (and nothing else past it;
an append that finds the head so behind first writes it at the log's end);
the creations of the log's last batch, not only its last entry, may have been cut
short (:func:`lost_refs`). A full disk
leaves both as they were (the head's bytes are written first, an entry not written
whole is cut off), and ``vfs.repo.refs`` writes a ref's new file before its entry.

:func:`verify` names the first entry edited, deleted, inserted or reordered. It
proves nothing against someone who rewrites the whole chain and the head: the log
is evidence of accidents and casual edits; the remote chain (below) is the
stronger record.

**The remote chain.** A remote keeps its own chain of the changes made to it (a push
moving a branch or creating a tag, and a remote gc that changed anything), one object per entry
at ``audit/<seq, 12 digits>`` (``audit/000000000001`` first), each the same JSON as a
local line (no newline) with ``prev`` the BLAKE3 of the previous *object's* bytes.
An entry is written with ``If-None-Match`` (:func:`vfs.remote.audit.append_remote`): of two writers
racing for the same number one wins and the other reads the winner, links to it and
takes the next number, so the chain never forks and an ordinary write never
replaces an entry without breaking the link the next entry holds. A push appends its
entry *before* it moves the remote ref, so no ref moves without an entry (an entry
may name a move that then lost its race). ``.dvfs/remotes/<name>/audit.head`` holds
``"<seq> <hash>\n"`` of the last entry this clone wrote or verified: a later append
starts looking from there (else it lists ``audit/``), and :func:`vfs.remote.audit.verify_remote`
checks that entry still hashes the same, so a chain cut or edited at its end shows
too. Entries are at most ``MAX_LINE`` bytes; a command line that would take more than
``CMD_BYTES`` of an entry (a long ``commit -m``, many names given to ``branch -d``) is
recorded shortened: long arguments cut, saying their length, and the arguments that
do not fit counted.
"""

from __future__ import annotations

import contextlib
import errno
import json
import os
import re
import stat
import threading
import time
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, NamedTuple

from vfs._os.program import command_line, given_command
from vfs.errors import FormatError
from vfs.model.ids import from_hex, hash_bytes
from vfs.store.durable import (
    at_once,
    fsync_file,
    put_in_place,
    storage_error,
    write_atomic,
    write_beside,
)

LOG = "audit.log"
HEAD = "audit.head"
FORMAT = 1
ZERO = "0" * 64
TAIL = 1 << 16  # bytes read from the end to find the last entry
MAX_LINE = 1 << 20
CMD_BYTES = 16 << 10  # a command line longer than this (as JSON) is shortened (_bounded)
ARG_CHARS = 1024
_HEX = re.compile("(?:[0-9a-f]{2})*")  # an entry's old and new: bytes.hex()
_KEYS = {"v", "seq", "time_ns", "user", "host", "cmd", "op", "ref", "old", "new", "note", "prev"}
_acting = threading.local()  # .cmd: what this thread records instead (acting)


@contextlib.contextmanager
def acting(cmd: list[str]) -> Iterator[None]:
    """Entries this thread records in the block name ``cmd`` as their command: a
    server (``dvfs ui --allow-write``) changes refs for the actions it is asked for,
    each of which is its own command, not the server's command line."""
    before = getattr(_acting, "cmd", None)
    _acting.cmd = list(cmd)
    try:
        yield
    finally:
        _acting.cmd = before


_users: dict[int, str] = {}  # uid: name in the password file, looked up once


def _user() -> str:
    """The user's name as ``getpass.getuser`` finds it (the environment, else the
    password file, read once a process)."""
    for key in ("LOGNAME", "USER", "LNAME", "USERNAME"):
        if name := os.environ.get(key):
            return name
    uid = os.getuid()
    if (name := _users.get(uid)) is None:
        import pwd

        try:
            name = pwd.getpwuid(uid).pw_name
        except (KeyError, OSError):
            name = "unknown"
        _users[uid] = name
    return name


def warm() -> None:
    """Look up now what an entry needs and costs time to find (this module loaded, the
    user's name): a commit calls it while the disk makes its objects durable, so that
    moving the branch after that waits for the disk alone."""
    _user()


def encode_entry(entry: dict[str, Any]) -> bytes:
    return json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()


def _last_line(fd: int) -> tuple[bytes | None, int]:
    """The last complete line of the log (None if empty) and where complete lines end.

    The last ``TAIL`` bytes are read, and if the last line does not start inside them,
    up to ``MAX_LINE`` bytes before its end (a torn line after it may be as long).
    FormatError (:func:`_damaged_end`) if more than ``MAX_LINE`` bytes follow the last
    line, or it is too long to be found so.
    """
    size = os.fstat(fd).st_size
    for window in (TAIL, 2 * MAX_LINE + 2):
        start = max(0, size - window)
        tail = os.pread(fd, size - start, start)
        end = tail.rfind(b"\n")
        if end < 0:
            if start == 0:
                return None, 0
            continue
        before = tail.rfind(b"\n", 0, end)
        if before < 0 and start > 0:
            continue
        if size - (start + end + 1) > MAX_LINE:
            break  # (no torn entry: damage)
        return tail[before + 1 : end], start + end + 1
    raise FormatError(_damaged_end(fd, size))


def _damaged_end(fd: int, size: int) -> str:
    """What to tell a user whose log (``size`` bytes) ends in what no append can
    follow: more bytes after the last line than any entry takes, or a last line too
    long to be found from the end; and the ``truncate`` that cuts it off."""
    end = _end(fd, size)
    if size - end > MAX_LINE:
        return _junk(size - end, end)
    start = _end(fd, end - 1)
    return (
        f"the audit log's last line is {end - 1 - start:,} bytes, longer than any entry "
        f"dvfs writes: it was damaged, and no ref can change until it is gone; cut it off "
        f"with what follows it (`truncate -s {start} .dvfs/{LOG}`)"
    )


Change = tuple[str, str, bytes | None, bytes | None, str]  # op, ref, old, new, note

# How the note of each entry of a batch ends (record_many): the log's readers know a
# batch by it.
_BATCH = re.compile(r"(?:^|; )change ([1-9][0-9]*) of ([1-9][0-9]*) made together$")


def batch_note(note: str, i: int, n: int) -> str:
    """``note`` as entry ``i`` (from 1) of a batch of ``n`` changes logged together
    records it: what it says, then which of the batch it is."""
    return f"{note}{'; ' if note else ''}change {i} of {n} made together"


def batch_place(note: str) -> tuple[int, int] | None:
    """(I, N) if ``note`` is an entry's of a batch (:func:`batch_note`), else None."""
    m = _BATCH.search(note)
    if m is None:
        return None
    i, n = int(m[1]), int(m[2])
    return (i, n) if i <= n else None


# The note of an entry logging that a creation was never made (``vfs.repo.refs``):
# which entry logged the creation.
_NEVER = re.compile(r"^never made: the command that logged its creation \(entry ([1-9][0-9]*)\)")


def never_made_note(seq: int) -> str:
    """The note of an entry logging that the creation of entry ``seq`` was never made."""
    return f"never made: the command that logged its creation (entry {seq}) was cut short"


def never_made_of(note: str) -> int | None:
    """The entry whose creation an entry of ``note`` logs as never made, if it does."""
    m = _NEVER.match(note)
    return None if m is None else int(m[1])


def record(
    dvfs_dir: Path,
    op: str,
    ref: str,
    old: bytes | None,
    new: bytes | None,
    note: str = "",
) -> None:
    """Append an entry; the caller holds ``refs.lock`` (or the repository lock)."""
    record_many(dvfs_dir, [(op, ref, old, new, note)])


def record_many(
    dvfs_dir: Path,
    changes: Sequence[Change],
    *,
    alongside: Sequence[Callable[[], object]] = (),
    settle: bool = True,
) -> None:
    """Append an entry for each of ``changes`` with one write and one fsync, and write
    the head once, for the last (the caller holds ``refs.lock``). Two or more are a
    batch: each entry's note says which of it it is (:func:`batch_note`), so that a
    head a crash left before the batch is told from entries added by hand.

    The log's fsync, the head's new file's and ``alongside`` (the fsyncs of the change
    the entries record: a ref's new file, a commit's index) run at once, a disk round
    trip in all (``docs/architecture.md``, "One ref and its entry"). If any of them
    fails, the entries are cut off the log again and the head left as it was: the
    change is not made, and the log does not say it was. ``settle``: False leaves the
    fsync of ``.dvfs`` after the head's rename to the caller, which makes it with the
    ref's own folder's."""
    if not changes:
        return
    if len(changes) > 1:
        n = len(changes)
        changes = [
            (op, ref, old, new, batch_note(note, i, n))
            for i, (op, ref, old, new, note) in enumerate(changes, 1)
        ]
    fd = _open(dvfs_dir, LOG, os.O_RDWR | os.O_CREAT | os.O_APPEND)
    try:
        last, end = _last_line(fd)
        if end != os.fstat(fd).st_size:
            os.ftruncate(fd, end)  # a torn line of a crashed append
        seq, prev = 1, ZERO
        behind = 1  # how far behind the log a crash may leave the head
        if last is not None:
            try:
                rec = json.loads(last)
                got = rec["seq"]
            except (ValueError, KeyError, TypeError, RecursionError):  # (nested past the stack)
                rec, got = None, None
            if type(got) is int and got >= 1:
                seq = got + 1
            else:  # edited (no number, or 1e400 read as infinity): verify will say so
                seq = os.pread(fd, end, 0).count(b"\n") + 1
            note = rec.get("note") if isinstance(rec, dict) else None
            place = batch_place(note) if type(note) is str else None
            if place is not None:
                behind = max(1, place[0])  # (the head may be just before the batch)
            prev = hash_bytes(last).hex()
        head = _head(dvfs_dir)
        # Entries added by hand, a head damaged (no crash leaves one: it is written
        # whole or not at all), or one deleted beside two entries or more (a crash
        # leaves none only beside the first entry, or the first batch): verify names
        # them, so they stay so.
        added = (head is None and seq - 1 > behind) or (
            head is not None and (head[0] < 0 or head[0] < seq - 1 - behind)
        )
        if not added and seq > 1 and (head is None or head[0] < seq - 1):
            # A crash left the head behind (before the last entry, or the last batch's
            # first): it names the log's end again before more is appended, so that a
            # crash during this append leaves one run past it, never two.
            write_atomic(dvfs_dir / HEAD, f"{seq - 1} {prev}\n".encode())
        if head is not None and (head[0] >= seq or (head[0] == seq - 1 and head[1] != prev)):
            # The log was cut or its last entry edited since the head was written: the new
            # entries follow the head, so that verify still names what was lost.
            seq, prev = head[0] + 1, head[1]
        lines = []
        for op, ref, old, new, note in changes:
            line = encode_entry(make_entry(seq, prev, op, ref, old, new, note))
            lines.append(line)
            seq, prev = seq + 1, hash_bytes(line).hex()
        # The head's new bytes go to disk first, and the entries are cut off again if
        # they cannot be written whole: a full disk leaves log and head as they were,
        # never a head behind the log (which reads as entries added by hand).
        head_bytes = f"{seq - 1} {prev}\n".encode()
        tmp = None if added else write_beside(dvfs_dir / HEAD, head_bytes, sync=False)
        data = b"".join(line + b"\n" for line in lines)
        jobs: list[Callable[[], object]] = [lambda: _append(fd, data, end, dvfs_dir / LOG)]
        if tmp is not None:
            jobs.append(lambda: fsync_file(tmp))
        jobs.extend(alongside)
        errors = at_once(jobs, "dvfs-audit")  # (one job: run here, no thread)
        failed = next((e for e in errors if e is not None), None)
        if failed is not None:
            if tmp is not None:
                with contextlib.suppress(OSError):
                    os.unlink(tmp)
            if errors[0] is None:  # (the entries are on disk: taken back, the change failed)
                with contextlib.suppress(OSError):
                    os.ftruncate(fd, end)
                    os.fsync(fd)
            raise failed
    finally:
        os.close(fd)
    if tmp is not None:
        put_in_place(tmp, dvfs_dir / HEAD, sync=settle)


def last_entry(dvfs_dir: Path) -> Entry | None:
    """The log's last complete entry, or None (no log, an empty one, or a last line
    that is no entry: ``verify`` names that)."""
    try:
        fd = _open(dvfs_dir, LOG, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        line, _ = _last_line(fd)
        return None if line is None else parse_entry(line, 0)[0]
    except FormatError:
        return None
    finally:
        os.close(fd)


def last_batch(dvfs_dir: Path) -> list[Entry]:
    """The log's last entries made together (:func:`record_many`): the last entry
    alone unless it is entry I of a batch, then the I entries of that batch that end
    the log (fewer if the log does not hold them: an edited log). Empty if there is no
    entry, or the last line is none."""
    last = last_entry(dvfs_dir)
    if last is None:
        return []
    place = batch_place(last.note)
    if place is None or place[0] == 1:
        return [last]
    out: list[Entry] = []
    for line in _last_lines(dvfs_dir, place[0]):
        try:
            out.append(parse_entry(line, 0)[0])
        except FormatError:
            out.clear()  # (an edited line: only what follows it is of the batch)
    return out


def maybe_cut_short(dvfs_dir: Path) -> list[Entry]:
    """The entries whose change a kill may have cut short: the log's last batch
    (:func:`last_batch`), and when its last entry logs a creation as never made (the
    change after a batch cut short logs these first, and may itself be killed while
    it does), every entry after the creation that entry names: the rest of the batch
    cut short, which the run of "never made" entries did not reach."""
    batch = last_batch(dvfs_dir)
    named = never_made_of(batch[-1].note) if batch else None
    if named is None or not 0 < batch[-1].seq - named <= MAX_CUT_SHORT:
        return batch
    out: list[Entry] = []
    for line in _last_lines(dvfs_dir, batch[-1].seq - named):
        try:
            out.append(parse_entry(line, 0)[0])
        except FormatError:
            out.clear()  # (an edited line: only what follows it is of the run)
    return [e for e in out if e.seq > named]


MAX_CUT_SHORT = 1_000_000  # entries read back for :func:`maybe_cut_short` at most


def _last_lines(dvfs_dir: Path, count: int) -> list[bytes]:
    """The last ``count`` complete lines of the log (fewer if it holds fewer), read
    back from its end a block at a time: a log of years of changes is not read whole
    for the last batch of a fetch."""
    try:
        fd = _open(dvfs_dir, LOG, os.O_RDONLY)
    except FileNotFoundError:
        return []
    try:
        start = end = _end(fd, os.fstat(fd).st_size)
        parts: list[bytes] = []
        newlines = 0
        while start > 0 and newlines <= count:  # (one more: where the first line starts)
            at = max(0, start - TAIL)
            block = os.pread(fd, start - at, at)
            parts.append(block)
            newlines += block.count(b"\n")
            start = at
    finally:
        os.close(fd)
    lines = b"".join(reversed(parts)).split(b"\n")[:-1]  # (nothing after the last newline)
    if start > 0:
        lines = lines[1:]  # (the first may be the end of a line not read whole)
    return lines[-count:] if end else []


def _append(fd: int, data: bytes, end: int, path: Path) -> None:
    """Write ``data`` at the end of the log (open ``O_APPEND``) and fsync it; if that
    fails, cut the log back to ``end`` (no part of the entry stays) and raise as the
    store does (``storage_error``: a full disk says so)."""
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    except OSError as exc:
        with contextlib.suppress(OSError):
            os.ftruncate(fd, end)
        raise storage_error(exc, str(path)) from exc


def command() -> list[str]:
    """The command line an entry this thread makes now records (module doc): what it
    is acting for, else the CLI's command line, else the process's own
    (``vfs._os.program.command_line``: a script's name and arguments, ``python -c
    CODE`` with its code cut, ``jupyter NOTEBOOK``)."""
    cmd = getattr(_acting, "cmd", None) or given_command()
    if cmd is None:
        cmd = command_line()
        cmd[0] = os.path.basename(cmd[0])
    return list(cmd)


def _bounded(cmd: list[str]) -> list[str]:
    """``cmd`` as an entry records it: whole, unless it would make an entry longer than
    ``CMD_BYTES``; then each argument past ``ARG_CHARS`` characters is cut (saying
    how long it was), and the arguments that still do not fit are counted, not listed.
    A commit's message, for one, is in its version whole."""
    if len(encode_entry({"cmd": cmd})) <= CMD_BYTES:
        return cmd
    out: list[str] = []
    size = 0
    for i, arg in enumerate(cmd):
        if len(arg) > ARG_CHARS:
            arg = f"{arg[:ARG_CHARS]}... ({len(arg):,} characters)"
        size += len(encode_entry({"": arg}))
        if size > CMD_BYTES:
            out.append(f"... ({len(cmd) - i:,} more arguments)")
            break
        out.append(arg)
    return out


def make_entry(
    seq: int, prev: str, op: str, ref: str, old: bytes | None, new: bytes | None, note: str
) -> dict[str, Any]:
    cmd = _bounded(command())
    return {
        "v": FORMAT, "seq": seq, "time_ns": time.time_ns(), "user": _user(),
        "host": os.uname().nodename, "cmd": cmd, "op": op, "ref": ref,
        "old": None if old is None else old.hex(), "new": None if new is None else new.hex(),
        "note": note, "prev": prev,
    }  # fmt: skip


class Entry(NamedTuple):
    """One entry as read back."""

    seq: int
    time_ns: int
    user: str
    host: str
    cmd: tuple[str, ...]
    op: str
    ref: str
    old: str | None
    new: str | None
    note: str
    raw: bytes

    def as_json(self) -> dict[str, Any]:
        """The entry as ``dvfs audit --json`` prints it."""
        out: dict[str, Any] = json.loads(self.raw)
        return out


def parse_entry(line: bytes, where: int) -> tuple[Entry, str]:
    """An entry and its ``prev`` field; FormatError naming line ``where``."""
    try:
        rec = json.loads(line)
        if not (isinstance(rec, dict) and set(rec) == _KEYS and rec["v"] == FORMAT):
            raise ValueError("fields")
        if not (type(rec["time_ns"]) is int and 0 <= rec["time_ns"] < 1 << 63):
            raise ValueError("time")  # (a time no clock gives, nor a date can show)
        if not (type(rec["seq"]) is int and rec["seq"] >= 1):
            raise ValueError("seq")  # (entries are numbered from 1)
        # the types make_entry writes (a remote's entry may hold anything)
        if type(rec["cmd"]) is not list:
            raise ValueError("cmd")
        texts = [rec[k] for k in ("user", "host", "op", "ref", "note", "prev")]
        if not all(type(t) is str for t in [*texts, *rec["cmd"]]):
            raise ValueError("text")
        for oid in (rec["old"], rec["new"]):
            if oid is not None and (type(oid) is not str or not _HEX.fullmatch(oid)):
                raise ValueError("id")
        e = Entry(
            rec["seq"], rec["time_ns"], rec["user"], rec["host"], tuple(rec["cmd"]),
            rec["op"], rec["ref"], rec["old"], rec["new"], rec["note"], line,
        )  # fmt: skip
        return e, str(rec["prev"])
    except (ValueError, TypeError, KeyError, RecursionError):  # (nested past the stack)
        raise FormatError(f"line {where} of the audit log is not an entry") from None


def _not_a_file(path: Path, what: str) -> FormatError:
    """The error for a log or head that is a link (or a FIFO, a directory): never read
    through, as it is never written through."""
    return FormatError(
        f"{path} is {what}: dvfs reads and writes the audit log only as regular files, "
        "never through a link; put the file itself there, or move it away"
    )


def _open(dvfs_dir: Path, name: str, flags: int, mode: int = 0o644) -> int:
    """A descriptor of ``name`` in ``dvfs_dir``, opened from the directory's own
    descriptor with ``O_NOFOLLOW`` (FileNotFoundError if it is missing): FormatError if
    it is a symbolic link or not a regular file, rather than reading or appending
    through it (nor waiting on a FIFO)."""
    dfd = os.open(dvfs_dir, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        fd = os.open(name, flags | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, mode, dir_fd=dfd)
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            raise _not_a_file(dvfs_dir / name, "a symbolic link") from None
        if exc.errno in (errno.EISDIR, errno.ENXIO):
            raise _not_a_file(dvfs_dir / name, "not a regular file") from None
        raise type(exc)(exc.errno, exc.strerror, str(dvfs_dir / name)) from None  # (the whole path)
    finally:
        os.close(dfd)
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise _not_a_file(dvfs_dir / name, "not a regular file")
    return fd


def read_file(dvfs_dir: Path, name: str) -> bytes | None:
    """The bytes of ``name`` in ``dvfs_dir`` (see :func:`_open`); None if it (or the
    directory) is missing. Also for a remote's chain records (``vfs.remote.audit``)."""
    try:
        fd = _open(dvfs_dir, name, os.O_RDONLY)
    except FileNotFoundError:
        return None
    try:
        parts = []
        while chunk := os.read(fd, 1 << 20):
            parts.append(chunk)
        return b"".join(parts)
    finally:
        os.close(fd)


def _end(fd: int, size: int) -> int:
    """Where the complete lines of the log open at ``fd`` end (after the last newline),
    found back from its end a block at a time."""
    end = size
    while end > 0:
        start = max(0, end - (1 << 20))
        at = os.pread(fd, end - start, start).rfind(b"\n")
        if at >= 0:
            return start + at + 1
        end = start
    return 0


def _lines(dvfs_dir: Path) -> tuple[list[bytes], int]:
    """The complete lines of the log, and how many bytes follow them (a torn last
    line; more than ``MAX_LINE`` is no torn entry, but damage). Only the complete
    lines are read into memory: a log grown by gigabytes of junk is not."""
    try:
        fd = _open(dvfs_dir, LOG, os.O_RDONLY)
    except FileNotFoundError:
        return [], 0
    try:
        size = os.fstat(fd).st_size
        end = _end(fd, size)
        parts = []
        at = 0
        while at < end and (chunk := os.pread(fd, min(1 << 20, end - at), at)):
            parts.append(chunk)
            at += len(chunk)
        data = b"".join(parts)
    finally:
        os.close(fd)
    lines = data.split(b"\n")
    lines.pop()  # (after the last newline: nothing)
    return lines, size - end


def entries(dvfs_dir: Path, skipped: list[int] | None = None) -> Iterator[Entry]:
    """Every entry in order (not verified). A line that is no entry raises FormatError
    naming it, or, given ``skipped``, is passed over and its number added there (the
    listing shows the others, as a remote's does: ``vfs.remote.audit.remote_entries``)."""
    lines, _ = _lines(dvfs_dir)
    for i, line in enumerate(lines, 1):
        try:
            yield parse_entry(line, i)[0]
        except FormatError as exc:
            if skipped is None:
                raise FormatError(f"{exc}: `dvfs audit verify` says what was changed") from None
            skipped.append(i)


def last_entries(dvfs_dir: Path) -> dict[str, Entry]:
    """The log's last entry for each ref (and HEAD), as far as it reads (up to a line
    that is no entry, or all of it)."""
    last: dict[str, Entry] = {}
    with contextlib.suppress(FormatError, OSError):
        for e in entries(dvfs_dir):
            last[e.ref] = e
    return last


class Lost(NamedTuple):
    """A branch or tag whose file is gone though the log's last word on it is a version."""

    ref: str
    oid: bytes
    entry: Entry


def lost_refs(
    last: dict[str, Entry], get: Callable[[str], bytes | None], every: bool = False
) -> list[Lost]:
    """The branches and tags of ``last`` (:func:`last_entries`) whose file is gone
    (``get``, ``Refs.get``, finds none) though the log's last word on them is a version:
    a file deleted by hand or lost with a disk, which ``dvfs fsck --repair`` writes back
    and ``dvfs gc`` keeps. Every change of a ref is logged just before it is made, so
    the log's very last entry may name a change a crash cut short: a creation cut short
    leaves no file, and is no evidence (a move or a deletion cut short leaves the file
    as it was). ``every``: the refs' folder was emptied (``fsck --repair`` replaced a
    link), so the last entry counts too."""
    final = max(last.values(), key=lambda e: e.seq, default=None)
    place = None if final is None else batch_place(final.note)
    # (the log's last batch: every creation of it may have been cut short; and if it
    # logs creations as never made, the creations after the last it names: a kill
    # cut that run short too, :func:`maybe_cut_short`)
    first = 0 if final is None else final.seq - (place[0] - 1 if place else 0)
    named = None if final is None else never_made_of(final.note)
    if named is not None and named < first:
        first = named + 1
    out = []
    for ref, e in sorted(last.items()):
        kind = ref.removeprefix("refs/").partition("/")[0]
        cut_short = e.seq >= first and e.old is None and not every
        if kind not in ("heads", "tags") or e.new is None or cut_short:
            continue
        try:
            if get(ref) is not None:
                continue
            oid = from_hex(e.new)
        except (FormatError, ValueError):
            continue  # unreadable (fsck names it), or an edited entry (audit verify)
        out.append(Lost(ref, oid, e))
    return out


class Verdict(NamedTuple):
    """What ``verify`` found: ``problems`` empty when the chain is intact."""

    entries: int
    problems: list[str]
    torn: bool = False

    def as_json(self) -> dict[str, Any]:
        """The verdict as ``dvfs audit verify --json`` prints it."""
        return {"entries": self.entries, "intact": not self.problems, "problems": self.problems,
                "torn_last_line": self.torn}  # fmt: skip


def verify(dvfs_dir: Path) -> Verdict:
    """Check the chain: sequence, links and head; name the first thing changed."""
    lines, tail = _lines(dvfs_dir)
    torn = 0 < tail <= MAX_LINE
    problems: list[str] = []
    if tail > MAX_LINE:  # (no entry is that long: no crash while one was written)
        problems.append(_junk(tail, sum(len(line) + 1 for line in lines)))
    parsed: list[tuple[Entry, str, str]] = []  # entry, its prev, its own hash
    for i, line in enumerate(lines, 1):
        try:
            e, prev = parse_entry(line, i)
        except FormatError as exc:
            return Verdict(len(lines), [*problems, f"{exc}: it was edited"], torn)
        parsed.append((e, prev, hash_bytes(line).hex()))
    seqs = [e.seq for e, _, _ in parsed]
    n = len(parsed)
    if seqs != list(range(1, n + 1)):
        counts: dict[int, int] = {}
        for s in seqs:
            counts[s] = counts.get(s, 0) + 1
        twice = sorted(s for s, c in counts.items() if c > 1)
        if twice:
            s = twice[0]
            after = next((p for e, p, _ in parsed if e.seq == s + 1), None)
            ours = [(i, h) for i, (e, _, h) in enumerate(parsed, 1) if e.seq == s]
            # (an exact copy hashes as the entry it copies: the later line is the copy)
            fake = [i for i, h in ours if h != after] if after else []
            fake = fake or [ours[-1][0]]
            problems.append(
                f"entry {s} appears {counts[s]} times: the one at line {fake[0]} was inserted"
            )
        elif sorted(seqs) == list(range(1, n + 1)):
            moved = sorted(s for i, s in enumerate(seqs, 1) if s != i)
            problems.append(
                f"entries {', '.join(map(str, moved[:6]))} are out of order: the log was reordered"
            )
        else:
            gone, more = _missing(seqs, 6)
            count = max(seqs) - len(set(seqs))  # (every number is from 1 to the largest)
            shown = ", ".join(map(str, gone)) + (f" and {count - 6:,} more" if more else "")
            are = "are" if more or len(gone) > 1 else "is"
            problems.append(f"entry {shown} {are} missing: deleted")
        return Verdict(n, problems, torn)
    prev_hash = ZERO
    for e, prev, own in parsed:
        if prev != prev_hash:
            if e.seq == 1:
                problems.append("entry 1 was edited (it must follow nothing)")
            else:
                problems.append(
                    f"entry {e.seq - 1} was edited: entry {e.seq} holds the hash of another"
                )
            return Verdict(n, problems, torn)
        prev_hash = own
    head = _head(dvfs_dir)
    if head is not None:
        seq, digest = head
        if seq < 0:
            problems.append(f"{HEAD} is damaged: the last entries cannot be checked")
        elif seq > n:
            problems.append(f"entries {n + 1}..{seq} are missing: deleted from the end")
        elif seq >= 1 and parsed[seq - 1][2] != digest:
            problems.append(f"entry {seq} was edited: {HEAD} holds the hash of another")
        elif seq < n - 1 and not _batch_run(parsed, seq):
            # (a crash between an append and the head's rewrite: one entry, or a batch)
            problems.append(
                f"entries after {seq + 1} were added by hand: {HEAD} names entry {seq} "
                "as the last one written"
            )
    elif n > 1 and not _batch_run(parsed, 0):
        problems.append(f"{HEAD} is missing: the last entries cannot be checked")
    return Verdict(n, problems, torn)


def _batch_run(parsed: list[tuple[Entry, str, str]], head: int) -> bool:
    """Whether the entries after entry ``head`` (0: none) are the first ones of one
    batch (:func:`record_many`), counting on from ``change 1 of N``: what a crash
    during its append, or before the head's rewrite, leaves past the head."""
    after = [batch_place(e.note) for e, _, _ in parsed[head:]]
    if not after or after[0] is None:
        return False
    n = after[0][1]
    return all(p == (i, n) for i, p in enumerate(after, 1))


def _missing(seqs: list[int], limit: int) -> tuple[list[int], bool]:
    """The first ``limit`` numbers from 1 up to the largest of ``seqs`` that none of
    them is, and whether there are more: counted up to the limit only, so an entry
    edited to a number of 13 digits is named at once."""
    gone: list[int] = []
    expect = 1
    for s in sorted(set(seqs)):
        while expect < s:
            if len(gone) == limit:
                return gone, True
            gone.append(expect)
            expect += 1
        expect = s + 1
    return gone, False


def _junk(tail: int, end: int) -> str:
    """What to tell a user whose log ends with ``tail`` bytes of damage after ``end``."""
    return (
        f"the log ends with {tail:,} bytes that are no entry (longer than any entry dvfs "
        f"writes, so not one cut short by a crash): it was damaged, and no ref can change "
        f"until they are gone; cut them off after its last complete line "
        f"(`truncate -s {end} .dvfs/{LOG}`)"
    )


def blocked(dvfs_dir: Path) -> str | None:
    """Why no ref can change now, as the log or its head stand (``dvfs fsck``): one of
    them a link or no regular file, or the log ending in more than a torn entry (what
    :func:`record` refuses); None if nothing stops an append."""
    try:
        fd = _open(dvfs_dir, LOG, os.O_RDONLY)
    except FileNotFoundError:
        fd = -1
    except FormatError as exc:
        return str(exc)
    if fd >= 0:
        try:
            _last_line(fd)
        except FormatError as exc:
            return str(exc)
        finally:
            os.close(fd)
    try:
        read_file(dvfs_dir, HEAD)
    except FormatError as exc:
        return str(exc)
    return None


def _head(dvfs_dir: Path) -> tuple[int, str] | None:
    data = read_file(dvfs_dir, HEAD)
    if data is None:
        return None
    text = data.decode(errors="replace").split()
    if len(text) == 2 and text[0].isdigit():
        return int(text[0]), text[1]
    return -1, ""
