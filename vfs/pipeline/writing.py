"""The outputs ``dvfs repro`` is writing now, which ``dvfs add`` refuses to stage.

While a stage runs (or its outputs are restored from the run cache), its outputs are
partial: ``dvfs add`` of one of them, or of a directory above one (``dvfs add .``,
``commit -a``), would stage half a file. So ``repro`` in a repository's working tree
lists the stages writing, with their outputs, in ``.dvfs/pipeline.writing``, and
``add`` (``vfs.ops.workflow``) refuses a path at, above or below one of those outputs,
naming the stage and what to do. In a mount the list is
``<runtime dir>/pipeline-<sha256(MNT)[:16]>.writing`` (``vfs.mount.mounts.pipeline_file``),
and ``dvfs snapshot MNT`` (its daemon, once writers wait) is refused while a stage
writes there: the version would record half a file.

The list is live while its process holds an exclusive ``flock`` on it, as a pin is
(``vfs.store.pins``): the kernel drops the lock when the process dies, so a list a
killed ``repro`` left behind is told by its lock being free and counts for nothing
(the next ``repro`` replaces it), but for the stages whose commands still run: a
stage's command runs in a process group of its own, which a ``kill -9`` of ``repro``
leaves running, writing the outputs. The list names each command's group (its
leader's pid and start time, so that a pid used again is not taken for it); while
one of them lives, ``add`` still refuses its outputs and ``repro`` refuses to run,
naming the group to stop. Each new list is written under a temporary name,
locked, then renamed into place, so the file at the name is never seen unlocked while
its process lives; it is removed when no stage writes.

``vfs.track`` lists a run's outputs the same way while its block runs (and lets go
before it stages them itself).

Format version 1, msgpack: ``{"v": 1, "pid": <int>, "by": <text>, "unit": <text>,
"stages": {name: [out, ...]}, "groups": {name: [pgid, start], ...}}``: who writes
(``dvfs repro``, ``dvfs run``, ``vfs.track``), what its names name (``stage``, ``run``), outs as
repository paths (bytes), and the process group of each stage's command once it
started (``start``: its leader's start time in clock ticks after boot, field 22 of
``/proc/PID/stat``; ``groups`` absent or not decoding: none known); at most
``MAX_FILE`` bytes. A live list that does not
decode counts as naming the whole working tree (``add`` refuses everything until that
``repro`` ends).
"""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Iterable
from pathlib import Path
from typing import NamedTuple

from vfs.errors import FormatError, LockBusy
from vfs.model.codec import pack, unpack
from vfs.quoting import escape_text, quote_name
from vfs.store.durable import storage_error, tmp_name

FILE_NAME = "pipeline.writing"
FORMAT = 1
MAX_FILE = 16 << 20
_OPEN = os.O_RDONLY | os.O_CLOEXEC | os.O_NOFOLLOW | os.O_NONBLOCK


class Writer(NamedTuple):
    """A stage writing an output, in process ``pid`` (0 when the list does not decode)."""

    stage: str
    out: bytes
    pid: int
    by: str = "`dvfs repro`"
    unit: str = "stage"
    group: int = 0  # the process group of a command whose repro was killed (0: none)


class Writing:
    """The list of one ``repro``: :meth:`start` before a stage writes, :meth:`done` after."""

    def __init__(self, path: Path, by: str = "`dvfs repro`", unit: str = "stage") -> None:
        """``path``: where the list is (``.dvfs/pipeline.writing`` in a repository)."""
        self.path = path
        self.by, self.unit = by, unit
        self.stages: dict[str, tuple[bytes, ...]] = {}
        self.groups: dict[str, list[int]] = {}
        self.fd = -1

    def start(self, stage: str, outs: Iterable[bytes]) -> None:
        """List ``stage`` as writing ``outs`` (StorageFull if the disk is full)."""
        self.stages[stage] = tuple(outs)
        self._save()

    def running(self, stage: str, pid: int) -> None:
        """``stage``'s command runs as process ``pid``, the leader of its own group:
        listed, so that a kill of this process does not hide it (as well as it can be)."""
        start = start_time(pid)
        if stage in self.stages and start is not None:
            self.groups[stage] = [pid, start]
            with contextlib.suppress(OSError, LockBusy):  # (a safety net: not worth a failure)
                self._save()

    def done(self, stage: str) -> None:
        """``stage`` writes no more (the list is then only as up to date as it can be)."""
        self.groups.pop(stage, None)
        if self.stages.pop(stage, None) is not None:
            with contextlib.suppress(OSError, LockBusy):  # (a stale entry only refuses more)
                self._save()

    def close(self) -> None:
        """No stage writes: the list is removed."""
        self.stages.clear()
        self.groups.clear()
        self._save()

    def _save(self) -> None:
        if not self.stages:
            if self.fd >= 0:
                with contextlib.suppress(OSError):
                    self.path.unlink()
                os.close(self.fd)
                self.fd = -1
            return
        data = pack({"v": FORMAT, "pid": os.getpid(), "by": self.by, "unit": self.unit, "stages": {
            k: list(v) for k, v in sorted(self.stages.items())
        }, "groups": dict(sorted(self.groups.items()))})  # fmt: skip
        tmp = tmp_name(self.path)  # (one fsck removes if a kill leaves it)
        new = os.O_RDWR | os.O_CREAT | os.O_EXCL | os.O_CLOEXEC | os.O_NOFOLLOW
        try:
            fd = os.open(tmp, new, 0o644)
        except OSError as exc:
            raise storage_error(exc, str(self.path)) from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            os.rename(tmp, self.path)
        except OSError as exc:
            os.close(fd)
            with contextlib.suppress(OSError):
                tmp.unlink()
            raise storage_error(exc, str(self.path)) from exc
        if self.fd >= 0:
            os.close(self.fd)
        self.fd = fd


def _stat(pid: str | int) -> list[bytes] | None:
    """The fields of ``/proc/PID/stat`` after the command's name (state first); None if
    the process is gone."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read(4096)
        return stat[stat.rindex(b")") + 2 :].split()
    except (OSError, ValueError):
        return None


def start_time(pid: int) -> int | None:
    """When process ``pid`` started, in clock ticks after boot (None: it is gone)."""
    fields = _stat(pid)
    try:
        return int(fields[19]) if fields is not None else None
    except (ValueError, IndexError):
        return None


def _group_lives(pgid: int, start: int) -> bool:
    """True if process group ``pgid``, whose leader started at ``start``, still has a
    process that runs (not a zombie waiting to be reaped): the leader itself, or one
    it started if it has exited (a leader of that pid started at another time heads
    another group)."""
    now = start_time(pgid)
    if pgid <= 1 or (now is not None and now != start):
        return False
    try:
        pids = [p for p in os.listdir("/proc") if p.isdigit()]
    except OSError:
        return False
    want = str(pgid).encode()
    for p in pids:
        fields = _stat(p)  # (state, ppid, pgrp, ...)
        running = fields is not None and len(fields) > 2 and fields[0] not in (b"Z", b"X")
        if running and fields is not None and fields[2] == want:
            return True
    return False


def writers(path: Path) -> list[Writer]:
    """What a live ``repro`` is writing now, as the list at ``path`` says (none if no
    list), or, if its process is gone, what the commands it left running write."""
    for _ in range(3):  # (the list may be replaced between open and flock: look again)
        try:
            fd = os.open(path, _OPEN)
        except OSError:
            return []
        try:
            try:
                fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
            except BlockingIOError:  # held: its process lives
                return _decode(os.pread(fd, MAX_FILE + 1, 0))
            held = os.fstat(fd)
            try:
                now = os.stat(path, follow_symlinks=False)
            except FileNotFoundError:
                return []
            if (held.st_dev, held.st_ino) == (now.st_dev, now.st_ino):  # left by one gone
                return _left_running(os.pread(fd, MAX_FILE + 1, 0))
        finally:
            os.close(fd)
    return []


def _left_running(data: bytes) -> list[Writer]:
    """The outputs of a list whose process is gone that its commands, still running in
    their process groups, write."""
    found = [w for w in _decode(data) if w.stage != "?"]
    groups = _groups(data)
    out = []
    for w in found:
        g = groups.get(w.stage)
        if g is not None and _group_lives(*g):
            out.append(Writer(w.stage, w.out, w.pid, w.by, w.unit, group=g[0]))
    return out


def _groups(data: bytes) -> dict[str, tuple[int, int]]:
    """The process groups a list names (none if it does not decode)."""
    try:
        rec = unpack(data, FILE_NAME) if len(data) <= MAX_FILE else None
    except FormatError:
        return {}
    groups = rec.get("groups") if isinstance(rec, dict) else None
    if not isinstance(groups, dict):
        return {}
    out = {}
    for name, g in groups.items():
        if (
            isinstance(name, str) and isinstance(g, list) and len(g) == 2
            and all(type(x) is int for x in g)
        ):  # fmt: skip
            out[name] = (g[0], g[1])
    return out


def _decode(data: bytes) -> list[Writer]:
    damaged = [Writer("?", b"", 0)]  # (any damage: the whole tree counts as being written)
    try:
        rec = unpack(data, FILE_NAME) if len(data) <= MAX_FILE else None
    except FormatError:
        return damaged
    if not (
        isinstance(rec, dict) and rec.get("v") == FORMAT and isinstance(rec.get("pid"), int)
        and isinstance(rec.get("stages"), dict) and isinstance(rec.get("by"), str)
        and isinstance(rec.get("unit"), str)
    ):  # fmt: skip
        return damaged
    out = []
    for name, outs in rec["stages"].items():
        if not isinstance(name, str) or not isinstance(outs, list):
            return damaged
        if not all(isinstance(o, bytes) for o in outs):
            return damaged
        out += [Writer(name, o, rec["pid"], rec["by"], rec["unit"]) for o in outs]
    return out


def _overlaps(path: bytes, out: bytes) -> bool:
    """True if ``path`` is ``out``, above it or below it (``b""``: the root)."""
    if not path or not out or path == out:
        return True
    return out.startswith(path + b"/") or path.startswith(out + b"/")


def refuse_partial(dvfs_dir: Path, paths: Iterable[bytes]) -> None:
    """LockBusy if one of ``paths`` is at, above or below an output a live ``repro`` is
    writing: staged now, it would be a partial output."""
    found = writers(dvfs_dir / FILE_NAME)
    for p in paths:
        for w in found:
            if _overlaps(p, w.out):
                raise LockBusy(_busy(w, "staged", "add again; nothing was staged"))


def refuse_snapshot(path: Path) -> None:
    """LockBusy if a live ``repro`` in a mount, whose list is at ``path``, is writing
    an output: a snapshot now would record it partial."""
    for w in writers(path):
        raise LockBusy(_busy(w, "recorded", "snapshot again; nothing was recorded"))


def refuse_left_running(path: Path) -> None:
    """LockBusy if a command a killed ``repro`` started, whose list is at ``path``,
    still writes its outputs: running the stage again beside it, the two would write
    the same files, and the run recorded would not be what made them."""
    for w in writers(path):
        if w.group:
            raise LockBusy(_busy(w, "", "run again"))


def _busy(w: Writer, done: str, then: str) -> str:
    """What to tell a user whose command would have ``done`` ``w``'s output partial
    (``done`` empty: would run beside it)."""
    what = "the working tree"
    if w.out:
        what = f"{quote_name(w.out)}, an output of {escape_text(w.unit)} {quote_name(w.stage)}"
    if w.group:
        now = f"{done} now it would be partial" if done else "a run now would write it too"
        return (
            f"the command of {escape_text(w.unit)} {quote_name(w.stage)}, left running by "
            f"{escape_text(w.by)} (pid {w.pid}), which was killed, is writing "
            f"{quote_name(w.out)}: "
            f"{now}; wait for it to finish, or stop it (kill -TERM -- -{w.group}), then {then}"
        )
    who = escape_text(w.by) + (f" (pid {w.pid})" if w.pid else "")
    stop = f"stop it (kill -INT {w.pid})" if w.pid else "stop it"
    return (
        f"{who} is writing {what}: {done} now it would be partial; wait for it to finish, "
        f"or {stop}, then {then}"
    )
