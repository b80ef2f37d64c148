"""Forked helper processes, for work that threads cannot share.

Python code holds the interpreter lock, so work that is mostly short system calls with
Python between them (an ``lstat`` per file, creating small files) runs no faster on
two threads than on one. A helper process does a share of it instead.

A helper is forked only while this process runs no other thread: a thread holding a
lock at the moment of the fork would leave that lock held forever in the child. It
runs one function and talks to its parent through two pipes, in frames (an 8-byte
length, then ``marshal`` data: bytes, str, ints, tuples, lists and None). The parent
trusts nothing a helper did not report: whatever a failed helper did not report, the
parent does again itself, where any error is raised as usual.

:func:`within` forks a child for work that may wait in the kernel for ever (a look
into a FUSE mount whose daemon is stopped or hung), and gives up on it after a while:
a process of its own is the only way to. It is killed and reaped; one that the kernel
keeps waiting (its request taken by the daemon, which has not answered) is named in
mark files, and no other child is forked while it lives.
"""

from __future__ import annotations

import contextlib
import marshal
import os
import select
import struct
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

MAX_FRAME = 1 << 31
REAP_WAIT = 0.2  # seconds a child given up on has to end once killed, else it is marked
_PR_SET_PDEATHSIG = 1  # prctl option (linux/prctl.h)


def alive(pid: int) -> bool:
    """Whether process ``pid`` exists (``kill(pid, 0)``; one of another user counts):
    what tells a directory left by a killed process from one still in use."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # (EPERM: it exists, and is not ours)
        return True
    return True


def process_start(pid: int) -> int | None:
    """When process ``pid`` started (clock ticks after boot, ``/proc/PID/stat`` field
    22); None if it is gone. A zombie counts as gone: it has exited, only its parent
    has not reaped it."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as fh:
            text = fh.read()
    except OSError:
        return None
    fields = text.rpartition(b")")[2].split()  # the name, in (), may hold anything
    if len(fields) < 20 or fields[0] == b"Z" or not fields[19].isdigit():
        return None
    return int(fields[19])


def process_tag() -> str:
    """This process as ``<pid>-<start time>``, for names of what it leaves while it
    works: unlike a pid alone, no process started later has the same tag. The bare pid
    where ``/proc`` cannot tell the start time."""
    pid = os.getpid()
    start = process_start(pid)
    return f"{pid}" if start is None else f"{pid}-{start}"


def tag_alive(tag: str) -> bool | None:
    """Whether the process ``tag`` names still runs; None if ``tag`` names none.

    A :func:`process_tag` is alive while its pid runs with its start time: a dead
    process's pid, taken since by another process, does not keep it alive. A bare pid
    (what older versions wrote) is alive while any process has that pid.
    """
    pid, dash, start = tag.partition("-")
    if not pid.isdigit() or (dash and not start.isdigit()):
        return None
    if not dash:
        return alive(int(pid))
    return process_start(int(pid)) == int(start)


def cpus() -> int:
    """How many CPUs this process may run on."""
    try:
        return len(os.sched_getaffinity(0))
    except OSError:
        return os.cpu_count() or 1


def spare_cpus(limit: int) -> int:
    """How many helpers to fork now: the CPUs beyond this one, at most ``limit``.

    0 while other threads run (see the module doc) or on a single CPU.
    """
    if threading.active_count() != 1:
        return 0
    return max(0, min(cpus() - 1, limit))


class Channel:
    """One end of a helper's two pipes."""

    def __init__(self, read_fd: int, write_fd: int) -> None:
        self.read_fd = read_fd
        self.write_fd = write_fd

    def send(self, value: Any) -> bool:
        """Send one frame; False if the other end is gone."""
        data = marshal.dumps(value)
        view = memoryview(len(data).to_bytes(8, "little") + data)
        try:
            while view:
                view = view[os.write(self.write_fd, view) :]
        except OSError:
            return False
        return True

    def receive(self) -> tuple[bool, Any]:
        """(True, value) for the next frame; (False, None) if the pipe ended or is damaged."""
        head = _read_exactly(self.read_fd, 8)
        if head is None:
            return False, None
        size = int.from_bytes(head, "little")
        data = _read_exactly(self.read_fd, size) if size < MAX_FRAME else None
        if data is None:
            return False, None
        try:
            return True, marshal.loads(data)
        except (ValueError, TypeError, EOFError):
            return False, None

    def close(self) -> None:
        """Close both ends held here (again: nothing)."""
        for fd in (self.read_fd, self.write_fd):
            if fd >= 0:
                with contextlib.suppress(OSError):
                    os.close(fd)
        self.read_fd = self.write_fd = -1


def _die_with(parent: int) -> None:
    """In a helper: have the kernel kill it when ``parent`` ends, and end now if it has.

    A command killed with SIGKILL cannot stop its helpers itself, and a helper left
    running would carry on with its share: a restore's would go on writing files into
    the working tree after the command was gone.
    """
    import ctypes  # (in the helper alone: a clean ``status`` never loads it)
    import signal  # (nor this: its enums are made at import, 0.5 ms)

    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    if os.getppid() != parent:  # (it ended before the request was made)
        os._exit(1)


class Helper(Channel):
    """The parent's handle on a forked helper."""

    def __init__(self, pid: int, read_fd: int, write_fd: int) -> None:
        super().__init__(read_fd, write_fd)
        self.pid = pid

    @staticmethod
    def start(work: Callable[[Channel], None], *, tied: bool = True) -> Helper | None:
        """Fork a helper running ``work(channel)``; None if no process could be made.

        The helper ends when ``work`` returns or raises (exit status 0 or 1), without
        running this process's exit handlers or flushing its buffers. ``tied``: the
        kernel kills it when this process ends (:func:`_die_with`). A helper that only
        reads and reports (a status's scan) may go without, sparing it the 3 ms of CPU
        that asking costs (importing ctypes): left alone, it ends once its share is
        done, or sooner, on writing to the pipe no one reads.
        """
        down_r, down_w = os.pipe()  # parent -> helper
        up_r, up_w = os.pipe()  # helper -> parent
        parent = os.getpid()
        try:
            pid = os.fork()
        except OSError:
            for fd in (down_r, down_w, up_r, up_w):
                os.close(fd)
            return None
        if pid == 0:  # the helper: never returns
            code = 1
            try:
                if tied:
                    _die_with(parent)
                os.close(down_w)
                os.close(up_r)
                work(Channel(down_r, up_w))
                code = 0
            finally:
                os._exit(code)
        os.close(down_r)
        os.close(up_w)
        return Helper(pid, up_r, down_w)

    def interrupt(self) -> None:
        """Ask the helper to stop (SIGINT, not SIGTERM: it unwinds as from Ctrl-C,
        removing what it was writing). Its pipe then ends."""
        if self.pid > 0:
            import signal  # (see _die_with)

            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGINT)

    def kill(self) -> None:
        """End the helper at once (SIGKILL): for work that leaves nothing to undo."""
        if self.pid > 0:
            import signal  # (see _die_with)

            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)

    def close(self) -> None:
        """Close the pipes and reap the helper (one still writing to them ends there)."""
        super().close()
        if self.pid > 0:
            with contextlib.suppress(ChildProcessError):
                os.waitpid(self.pid, 0)
            self.pid = -1


class Tickets:
    """Pieces of work numbered 0..n-1, each taken by whichever process asks first.

    The numbers are written into a pipe before a helper is forked, and its write end
    is closed; a claim reads the next one. A pipe read takes its bytes whole under the
    pipe's lock, so no two claims get the same piece, and the process that is faster
    at the moment takes more: no guess about who will be faster is needed. A pipe
    holds only so much unread, so each ticket stands for a run of consecutive pieces
    when there are more pieces than tickets fit.
    """

    def __init__(self, fd: int, pieces: int, per: int) -> None:
        self.fd = fd
        self.pieces = pieces
        self.per = per

    @staticmethod
    def share(pieces: int) -> Tickets | None:
        """Tickets for ``pieces`` pieces; None if no pipe could take them."""
        import fcntl

        r, w = os.pipe()
        try:
            os.set_blocking(w, False)  # never wait: a pipe smaller than asked fails instead
            room = fcntl.fcntl(w, fcntl.F_GETPIPE_SZ) // TICKET.size
            per = max(1, -(-pieces // room))
            count = -(-pieces // per)
            data = memoryview(b"".join(TICKET.pack(t) for t in range(count)))
            while data:
                data = data[os.write(w, data) :]
        except OSError:
            os.close(r)
            return None
        finally:
            os.close(w)
        return Tickets(r, pieces, per)

    def claim(self) -> range | None:
        """The next pieces for this process; None once every ticket is taken."""
        try:
            got = os.read(self.fd, TICKET.size)
        except OSError:
            return None
        if len(got) != TICKET.size:
            return None
        first = TICKET.unpack(got)[0] * self.per
        return range(first, min(first + self.per, self.pieces))

    def close(self) -> None:
        """Let go of the pipe (again: nothing)."""
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.close(self.fd)
            self.fd = -1


TICKET = struct.Struct("<I")


def _read_exactly(fd: int, n: int) -> bytes | None:
    parts: list[bytes] = []
    left = n
    while left:
        try:
            got = os.read(fd, min(left, 1 << 20))
        except OSError:
            return None
        if not got:
            return None
        parts.append(got)
        left -= len(got)
    return b"".join(parts)


def within(work: Callable[[], bytes], wait: float, marks: Sequence[str] = ()) -> bytes | None:
    """``work()``, done in a forked child and given up on after ``wait`` seconds (the
    child killed); None then, or if it failed.

    A thread left waiting in the kernel would keep this process from ending, and a
    child holding this process's standard output would keep whoever reads it to its
    end (a shell's ``$(...)``) waiting, so the child has /dev/null for its standard
    streams and answers through a pipe. It is forked only while no other thread runs
    (see the module doc); else ``work()`` is done here, unbounded.

    ``marks``: files (in a directory of this user's alone) naming a child given up on
    that still waits. A child whose request a FUSE daemon took waits for the answer
    even killed (SIGKILL ends it only once the daemon answers, or the mount is
    aborted), and another child would wait beside it at each call: while a mark names
    a child alive, None is returned at once and nothing is forked. A child given up
    on is killed and reaped; if it has not ended ``REAP_WAIT`` seconds later, its
    :func:`process_tag` is written to each mark (whole: a new file renamed over it).
    A mark naming a process gone is removed.
    """
    if threading.active_count() != 1:
        return work()
    if _marked(marks):
        return None
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: never returns
        code = 1
        try:
            os.close(read)
            null = os.open(os.devnull, os.O_RDWR)
            for fd in (0, 1, 2):
                os.dup2(null, fd)
            view = memoryview(work())
            while view:
                view = view[os.write(write, view) :]
            code = 0
        finally:
            os._exit(code)
    os.close(write)
    got = bytearray()
    deadline = time.monotonic() + wait
    try:
        while (left := deadline - time.monotonic()) > 0:
            if not select.select([read], [], [], left)[0]:
                continue
            part = os.read(read, 65536)
            if not part:  # the child is done: its end closes as it exits
                _, status = os.waitpid(pid, 0)
                return bytes(got) if status == 0 else None
            got += part
    finally:
        os.close(read)
    import signal  # (see _die_with)

    os.kill(pid, signal.SIGKILL)  # (ends at once unless the daemon took its request)
    ended = time.monotonic() + REAP_WAIT
    while os.waitpid(pid, os.WNOHANG)[0] == 0:
        if time.monotonic() > ended:
            _mark(marks, pid)
            break
        time.sleep(0.005)
    return None


def _marked(marks: Sequence[str]) -> bool:
    """Whether a mark names a child that still waits (removing those that do not)."""
    for mark in marks:
        try:
            fd = os.open(mark, os.O_RDONLY | os.O_NOFOLLOW)
        except OSError:
            continue
        try:
            tag = os.read(fd, 64).decode("ascii", "replace").strip()
        except OSError:
            tag = ""
        finally:
            os.close(fd)
        if tag_alive(tag):
            return True
        with contextlib.suppress(OSError):
            os.unlink(mark)
    return False


def _mark(marks: Sequence[str], pid: int) -> None:
    """Name child ``pid``, which waits in the kernel, in each of ``marks`` (each
    written whole: a new file renamed over it; a mark that cannot be written is
    passed over)."""
    start = process_start(pid)
    if start is None:  # (it has just ended)
        return
    data = f"{pid}-{start}\n".encode()
    for mark in marks:
        new = f"{mark}.{os.getpid()}.new"
        try:
            fd = os.open(new, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
            try:
                os.write(fd, data)
            finally:
                os.close(fd)
            os.replace(new, mark)
        except OSError:
            with contextlib.suppress(OSError):
                os.unlink(new)
