"""The process that forks ``dvfs`` commands for :mod:`tests.support.forks` (run as a script).

Started once per test process and kind with ``python -P fork_server.py FD DIR KIND``,
FD a listening Unix socket it inherits, bound in DIR. It imports the modules its KIND
of child runs (:data:`PRELOAD`), then, for every connection, reads one request
(program, argv, directory, environment, and the child's standard input, output and
error as descriptors, with any more it is to hold open), forks, and tells the caller
the child's pid and, once the child has ended, its exit code as ``subprocess`` gives
it (``-N`` for signal N).

The child becomes ``python -P -m PROGRAM ARGS`` (``vfs.cli``, or ``daemon``: a mount's
daemon): it takes the three descriptors as 0, 1 and 2 and the others at the numbers
the request gives them (inheritable, as ``exec`` leaves them), closes every other one
it inherited, takes the caller's directory (its umask is the server's: a caller forks
only under the same one), replaces its environment (and what was read from it: the
time zone, the temporary directory), and runs PROGRAM's ``__main__`` through
:mod:`runpy` as ``-m`` would. It then ends as the interpreter would (threads joined,
atexit handlers run, buffers flushed) but without freeing every object (:func:`end`).

A request may also hand the child a socket for its ``exec``: ``dvfs mount
--foreground`` ends by ``execve``-ing ``python -P -m daemon ARGS``. In such a child,
that one ``execve`` (:func:`hand_over`) sends the daemon's argv, environment,
directory and every descriptor an ``exec`` would keep open (those without
close-on-exec, at their numbers) to that socket and exits 0 at once, as an ``exec``
leaves the command behind without running its exit handlers; the caller has the
daemon forked from a server of kind ``daemon``, which was started with the
environment a daemon is started with (malloc's tunables are read at start). Only
``/proc/PID/cmdline`` and ``environ`` show the server's: what the process was exec'd
with (dvfs reads neither).

This process runs no thread, not even one a library started natively (it checks
``/proc/self/task`` after its imports), so a fork copies no lock that some other thread
holds.
"""

from __future__ import annotations

import atexit
import contextlib
import fcntl
import functools
import gc
import importlib
import json
import os
import runpy
import selectors
import shutil
import signal
import socket
import struct
import sys
import tempfile
import threading
import time
import traceback
from collections.abc import Callable, Mapping, Sequence

HEADER = struct.Struct("!I")  # length of the JSON request that follows the descriptors
MAX_REQUEST = 64 << 20
MAX_FDS = 16  # descriptors a request may send: 0, 1, 2, the ones kept, the handover socket
PROGRAMS = ("vfs.cli", "daemon")
HAND_FD = 900  # where a child holds the socket for its exec: above what a command opens
# Seconds a caller has to send its whole request: one that stops half-way (its thread
# gone) must not hold up every other.
RECEIVE_TIMEOUT = 30.0

# Loaded before the first fork, by kind of server, so that each child finds them
# imported. ``cli``: the click commands, and the modules of the repository, the working
# tree and the remotes that nearly every command reaches, and what ``dvfs mount`` runs
# before it starts its daemon; the engines of row diffs are left to the commands that
# use them. ``ui``: those and the dashboard's web server (kept out of the other
# commands' server: a fork copies the page tables of all that is loaded). ``daemon``:
# the mount's daemon.
_CLI = (
    "vfs.cli",
    "vfs.cli.root",
    "vfs.cli.staging",
    "vfs.cli.status_report",
    "vfs.repo.repository",
    "vfs.worktree.status",
    "vfs.ops.checkout",
    "vfs.ops.sync",
    "vfs.backends.s3",
    "vfs.cli.mount",
    "vfs.mount.launch",
)
PRELOAD = {
    "cli": _CLI,
    "ui": (*_CLI, "vfs.cli.ui", "vfs.ui.binds", "vfs.ui.serve", "vfs.ui.source"),
    "daemon": ("vfs", "vfs.backends.s3", "daemon.service"),
}


def preload(kind: str) -> None:
    """Import what :data:`PRELOAD` names for ``kind``."""
    for name in PRELOAD[kind]:
        importlib.import_module(name)


def receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    """One request from ``conn``: its fields, and the descriptors sent with it (closed
    again if the rest of the request does not follow or does not account for them)."""
    head, fds, _flags, _addr = socket.recv_fds(conn, HEADER.size, MAX_FDS)
    try:
        while len(head) < HEADER.size:
            head += _more(conn, HEADER.size - len(head))
        (size,) = HEADER.unpack(head)
        if size > MAX_REQUEST:
            raise ValueError("malformed request")
        body = bytearray()
        while len(body) < size:
            body += _more(conn, min(size - len(body), 1 << 20))
        request = json.loads(body)
        if not isinstance(request, dict):
            raise ValueError("malformed request")
        keep = request.get("keep", [])
        if (
            request.get("program", "vfs.cli") not in PROGRAMS
            or not isinstance(keep, list)
            or not all(isinstance(n, int) and n > 2 for n in keep)
            or len(fds) != 3 + len(keep) + bool(request.get("handover"))
        ):
            raise ValueError("malformed request")
    except BaseException:
        for fd in fds:
            os.close(fd)
        raise
    return request, fds


def _more(conn: socket.socket, most: int) -> bytes:
    """Up to ``most`` more bytes of a request; EOFError if it ended."""
    got = conn.recv(most)
    if not got:
        raise EOFError("request cut short")
    return got


def become_command(
    request: dict[str, object],
    fds: list[int],
    selector: selectors.BaseSelector,
    keep: list[socket.socket],
) -> None:
    """In the child: turn into ``python -P -m PROGRAM ARGS`` as the request describes,
    and run it. Never returns: a child that cannot become the command says why and
    exits 127."""
    try:
        selector.close()
        for sock in keep:
            sock.detach()  # closed below with the rest, and never again at exit
        program, args, env, cwd = (
            request.get(k, "vfs.cli") for k in ("program", "args", "env", "cwd")
        )
        numbers = request.get("keep", [])
        assert isinstance(program, str) and isinstance(args, list) and isinstance(numbers, list)
        assert isinstance(env, dict) and isinstance(cwd, str)
        targets = [0, 1, 2, *numbers]
        # each moved above every number one goes to first, so that none is overwritten
        moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, max(targets) + 1) for fd in fds]
        for target, fd in zip(targets, moved[: len(targets)], strict=True):
            os.dup2(fd, target)  # inheritable, as exec leaves them
        hand = None
        if request.get("handover"):
            hand = fcntl.fcntl(moved[len(targets)], fcntl.F_DUPFD_CLOEXEC, HAND_FD)
        close_all_but({*targets, *(() if hand is None else (hand,))})
        if hand is not None:
            setattr(os, "execve", functools.partial(hand_over, hand, os.execve))  # noqa: B010
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(env)
        time.tzset()
        tempfile.tempdir = None  # found again from TMPDIR and the others, as at start
        gc.enable()
        sys.argv = ["", *args]
    except BaseException:
        traceback.print_exc()
        os._exit(127)
    code: object = 0
    try:
        runpy.run_module(program, run_name="__main__", alter_sys=True)
    except SystemExit as exc:
        code = exc.code
    except KeyboardInterrupt:
        traceback.print_exc()
        end(0)
        signal.signal(signal.SIGINT, signal.SIG_DFL)
        os.kill(os.getpid(), signal.SIGINT)  # as the interpreter ends on Ctrl-C
    except BaseException:
        traceback.print_exc()
        code = 1
    os._exit(end(code))


def close_all_but(kept: set[int]) -> None:
    """Close every descriptor but those in ``kept``."""
    start = 0
    for fd in sorted(kept):
        if start < fd:  # (closerange(n, n) would close everything from n)
            os.closerange(start, fd)
        start = fd + 1
    os.closerange(start, os.sysconf("SC_OPEN_MAX"))


def hand_over(
    hand: int,
    real: Callable[..., object],
    path: str,
    argv: Sequence[str],
    env: Mapping[str, str],
) -> None:
    """``os.execve`` in a child given a socket for its exec (``hand``): ``python -P -m
    daemon ARGS`` is sent there as a request for a server of kind ``daemon``, with every
    descriptor an exec would keep open, and this process ends as an exec ends it
    (no exit handler, no buffer flushed). Any other program is exec'd."""
    args = [os.fsdecode(a) for a in argv]
    if path != sys.executable or args[1:4] != ["-P", "-m", "daemon"]:
        real(path, argv, env)
        return
    kept = []
    for name in os.listdir("/proc/self/fd"):
        with contextlib.suppress(OSError):  # (the listing's own descriptor, closed since)
            if int(name) > 2 and not fcntl.fcntl(int(name), fcntl.F_GETFD) & fcntl.FD_CLOEXEC:
                kept.append(int(name))
    fields = {"program": "daemon", "args": args[4:], "cwd": os.getcwd(), "env": dict(env)}
    request = json.dumps({**fields, "keep": sorted(kept)}).encode()
    with socket.socket(fileno=hand) as conn:
        socket.send_fds(conn, [HEADER.pack(len(request))], [0, 1, 2, *sorted(kept)])
        conn.sendall(request)
    os._exit(0)


def end(code: object) -> int:
    """What the interpreter does as it exits that a command's caller can see, but the
    teardown of its objects: threads joined, atexit handlers run, ``SystemExit``'s
    code turned into an exit status, the standard streams flushed (120 if they cannot
    be). Tearing every module down in a child that shares them with its parent writes
    to each of their pages, copying them: 40-60 ms of a ``dvfs log``.
    """
    threading._shutdown()  # type: ignore[attr-defined]
    atexit._run_exitfuncs()
    if code is None:
        status = 0
    elif isinstance(code, int):
        status = code & 0xFF
    else:
        print(code, file=sys.stderr)
        status = 1
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            status = 120
    return status


def serve(listener: socket.socket, lifeline: int, home: str) -> None:
    """Answer requests until ``lifeline`` (a pipe only the test process writes) ends;
    then remove ``home``, the directory of the listening socket (its starter may have
    been killed without a chance to)."""
    selector = selectors.DefaultSelector()
    selector.register(listener, selectors.EVENT_READ)
    selector.register(lifeline, selectors.EVENT_READ)
    waiting: dict[int, tuple[int, socket.socket]] = {}  # pidfd -> (pid, connection)
    while True:
        for key, _events in selector.select():
            if key.fileobj is listener:
                conn, _addr = listener.accept()
                conn.settimeout(RECEIVE_TIMEOUT)
                try:
                    request, fds = receive(conn)
                except (OSError, EOFError, ValueError):
                    conn.close()
                    continue
                conn.settimeout(None)
                pid = os.fork()
                if pid == 0:
                    become_command(
                        request, fds, selector, [listener, conn, *(c for _p, c in waiting.values())]
                    )
                for fd in fds:
                    os.close(fd)
                conn.sendall(b"%d\n" % pid)
                pidfd = os.pidfd_open(pid)
                waiting[pidfd] = (pid, conn)
                selector.register(pidfd, selectors.EVENT_READ)
            elif key.fileobj == lifeline:
                if not os.read(lifeline, 1 << 10):
                    shutil.rmtree(home, ignore_errors=True)
                    return
            else:
                assert isinstance(key.fileobj, int)
                pidfd = key.fileobj
                selector.unregister(pidfd)
                os.close(pidfd)
                pid, conn = waiting.pop(pidfd)
                _pid, status = os.waitpid(pid, 0)
                with contextlib.suppress(OSError):  # the caller may have given up (a timeout)
                    conn.sendall(b"%d\n" % os.waitstatus_to_exitcode(status))
                conn.close()


if __name__ == "__main__":
    gc.disable()
    preload(sys.argv[3] if len(sys.argv) > 3 else "cli")
    if len(os.listdir("/proc/self/task")) != 1:  # (a library's native threads count too)
        raise SystemExit(f"fork server: threads running after the imports: {threading.enumerate()}")
    gc.freeze()  # what the children share stays shared: their collector never walks it
    serve(socket.socket(fileno=int(sys.argv[1])), sys.stdin.fileno(), sys.argv[2])
