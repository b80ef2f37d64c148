"""The journal of a working tree: its record format, appends, and what replay keeps.

Journal records (msgpack arrays; each is an assignment, so replaying one already
applied changes nothing). Each append's records are one frame, with their length and
a CRC-32 (``vfs.mount.work_dirs``). Format 3 (``state`` says which; formats 1 and 2
wrote the records bare, unframed, and are rewritten framed at the next mount; format
1 journals, whose ``N`` records end at ``target``, are replayed with the daemon's
owner and times equal to the mtime)::

    ["N", nid, kind, mode, mtime_ns, origin|nil, entry|nil, upper, target|nil,
     uid, gid, atime_ns, ctime_ns, special, rdev]
        what node ``nid`` is: ``entry`` is its base entry (a directory's base tree,
        a file's chunks), ``upper`` says its content is ``data/<nid>``, ``origin``
        its path in the base version (nil for a node made through the mount);
        ``mode`` holds the setuid, setgid and sticky bits too; ``special`` is the
        file type of a FIFO, socket or device (0 for anything else) and ``rdev`` a
        device's number (``daemon.fs.attrs``)
    ["L", dir nid, name, nid]    the name now means node ``nid`` in that directory
                                 (a file named twice is a hard link)
    ["U", dir nid, name]         the name is gone from that directory
    ["S", version id]            a snapshot of this working tree is being recorded

A change touches only the nodes on the path to it: before a name changes in a
directory, that directory and its ancestors are recorded (``N`` and ``L``) once.
Data is never journaled: a write goes straight to ``data/<nid>``, and an upper
file's size and mtime (and its ctime, if later than the recorded one) are read back
from it on replay. Each append is one ``write``, so a killed daemon loses nothing it
acknowledged; ``fsync`` of any file also syncs the journal, so what was fsynced
survives a power cut too. A torn last append (a crash mid-append, a full disk, zeros
a power cut left) fails its checksum and is cut off whole; damage anywhere else
(``vfs.mount.work_dirs``) keeps the working tree from being mounted, and deletes nothing.
"""

from __future__ import annotations

import contextlib
import errno
import os
import stat
from pathlib import Path
from typing import Any

import msgpack

from daemon.fs import inodes
from vfs import (
    JOURNAL_FRAMED,
    STATE_FORMAT,
    Entry,
    JournalRecords,
    MountError,
    decode_tree,
    encode_tree,
    journal_damage,
    journal_frame,
    read_journal,
    reserve_blocks,
)

RESERVE = 64 << 10  # bytes kept allocated past the journal's end (see Journal.append)
FORMAT = STATE_FORMAT  # of state and journal (3); formats 1 and 2 are still read
READ_FORMATS = (1, 2, 3)
Defs = dict[int, list[Any]]  # node id -> its last N record
N_FIELDS = 15  # of a format 2 N record (format 1: 9)
Names = dict[int, dict[bytes, int | None]]  # dir id -> name -> node id (None: removed)


def encode_entry(e: Entry | None) -> bytes | None:
    return None if e is None else encode_tree([e])


def decode_entry(data: bytes | None) -> Entry | None:
    return None if data is None else decode_tree(data).entries[0]


def fold(records: list[list[Any]]) -> tuple[Defs, Names] | None:
    """What replay keeps of ``records``: the last ``N`` of each node and the last
    ``L``/``U`` of each name, names in first-seen order. None if a record is bad.
    """
    defs: Defs = {}
    over: Names = {inodes.ROOT: {}}
    for rec in records:
        tag = rec[0]
        if tag != "S" and not all(type(x) is int for x in rec[1:2]):  # (a node or directory)
            return None
        if tag == "N" and len(rec) in (9, N_FIELDS) and _defines_node(rec):
            defs[rec[1]] = rec
            over.setdefault(rec[1], {})
        elif tag == "L" and len(rec) == 4 and type(rec[2]) is bytes and type(rec[3]) is int:
            over.setdefault(rec[1], {})[rec[2]] = rec[3]
        elif tag == "U" and len(rec) == 3 and type(rec[2]) is bytes:
            over.setdefault(rec[1], {})[rec[2]] = None
        elif not (tag == "S" and len(rec) == 2):  # S: read by the Overlay constructor
            return None
    return defs, over


def _defines_node(rec: list[Any]) -> bool:
    """True if an ``N`` record's fields have their types (kind, mode, mtime, origin,
    entry, upper, target; the attributes of format 2 are checked at replay)."""
    _, _, kind, mode, mtime, origin, entry, upper, target = rec[:9]
    return (
        kind in (0, 1, 2)
        and type(mode) is int
        and type(mtime) is int
        and all(x is None or type(x) is bytes for x in (origin, entry, target))
        and isinstance(upper, int)
    )


def pack(records: list[list[Any]]) -> bytes:
    """``records`` as one frame of a journal of format ``FORMAT``."""
    return journal_frame(b"".join(msgpack.packb(r, use_bin_type=True) for r in records))


class Journal:
    """The append-only record of namespace changes (see the module docstring).

    ``fmt``: the format of ``state`` naming it; one of an older format is only read.

    ``RESERVE`` bytes past its end are kept allocated (``fallocate``, its size
    unchanged), so that on a full disk removing a file can still be recorded, and so
    free room. Once the disk has no room for that reserve, an append that records
    something new (a name made or linked) fails with ENOSPC, leaving the reserve to
    the others, until the reserve can be made again.
    """

    def __init__(self, dir_fd: int, path: Path, fmt: int = FORMAT) -> None:
        """Open (or create) the journal ``path``: MountError if it is no regular file.

        It is opened as its name in the work directory held open at ``dir_fd`` (the
        path is what messages show), without waiting (``O_NONBLOCK``: a FIFO there
        would otherwise hold the daemon for ever, at this open or at the first read)
        and through no link.
        """
        self.path = path
        self.dir_fd = dir_fd
        self.framed = fmt >= JOURNAL_FRAMED
        flags = os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK
        self.fd = os.open(path.name, flags, 0o600, dir_fd=dir_fd)
        st = os.fstat(self.fd)
        if not stat.S_ISREG(st.st_mode):
            os.close(self.fd)
            raise MountError(journal_damage(path, "(it is not a regular file)"))
        self.size = st.st_size
        self.unsynced = False
        self.reserved = 0  # the offset up to which blocks are allocated, as far as known
        self.short = False  # the reserve could not be made (the disk is full)

    def read(self) -> JournalRecords:
        """Every whole record (``vfs.mount.work_dirs``); a torn tail is cut off the
        file, damage is left as it is (the caller refuses the working tree)."""
        data = bytearray()  # (read through the open journal, not its path again)
        while piece := os.pread(self.fd, 1 << 20, len(data)):
            data += piece
        got = read_journal(bytes(data), self.framed)
        if got.damaged_at is None and got.whole != len(data):
            os.ftruncate(self.fd, got.whole)
            self.size = got.whole
        return got

    def append(self, *records: list[Any], new: bool = False) -> None:
        """Append records in one write; on failure the journal is as it was.

        ``new``: they record a name made or linked, refused while the disk has no room
        for the reserve (see the class docstring)."""
        assert self.framed, "a journal of an older format is rewritten before use"
        data = pack(list(records))
        if new and self.short:
            self._reserve()
            if self.short:
                raise OSError(errno.ENOSPC, "no room left for the journal's reserve")
        try:
            n = os.write(self.fd, data)
            if n != len(data):
                raise OSError(errno.ENOSPC, "short write to the journal")
        except OSError:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, self.size)
            raise
        self.size += len(data)
        self.unsynced = True
        if self.size + RESERVE > self.reserved:
            self._reserve()

    def _reserve(self) -> None:
        """Allocate ``RESERVE`` bytes past the end, and as many more (one call per that
        much growth); ``short`` says whether it failed for want of room."""
        try:
            done = reserve_blocks(self.fd, self.size, 2 * RESERVE)
        except OSError as exc:  # (never raised: the append it follows is made)
            self.short = exc.errno in (errno.ENOSPC, errno.EDQUOT)
            if not self.short:
                self.reserved = 1 << 62  # not to be had here: never tried again
            return
        self.short = False
        self.reserved = self.size + 2 * RESERVE if done else 1 << 62

    def sync(self) -> None:
        """Make the appended records durable."""
        if self.unsynced:
            os.fsync(self.fd)
            self.unsynced = False

    def close(self) -> None:
        with contextlib.suppress(OSError):
            os.close(self.fd)

    def remove(self) -> None:
        """Close the journal and delete it (one no longer named by ``state``)."""
        self.close()
        with contextlib.suppress(OSError):
            os.unlink(self.path.name, dir_fd=self.dir_fd)
