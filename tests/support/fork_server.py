"""The process that forks ``dvfs`` commands for :mod:`tests.support.forks` (run as a script).

Started once per test process with ``python -P fork_server.py FD DIR``, FD a listening
Unix socket it inherits, bound in DIR. It imports the command line and the modules
most commands load, then, for every connection, reads one request (argv, directory,
environment, and the command's standard input, output and error as descriptors),
forks, and tells the caller the child's pid and, once the child has ended, its exit
code as ``subprocess`` gives it (``-N`` for signal N).

The child becomes ``python -P -m vfs.cli ARGS``: it takes the three descriptors as
0, 1 and 2, closes every other one it inherited, takes the caller's directory (its
umask is the server's: a caller forks only under the same one), replaces its
environment (and what was read from it: the time zone, the temporary directory), and
runs ``vfs.cli``'s ``__main__`` through :mod:`runpy` as ``-m`` would. It then ends as
the interpreter would (threads joined, atexit handlers run, buffers flushed) but
without freeing every object (:func:`end`).

This process runs no thread, not even one a library started natively (it checks
``/proc/self/task`` after its imports), so a fork copies no lock that some other thread
holds.
"""

from __future__ import annotations

import atexit
import contextlib
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

HEADER = struct.Struct("!I")  # length of the JSON request that follows the descriptors
MAX_REQUEST = 64 << 20
# Seconds a caller has to send its whole request: one that stops half-way (its thread
# gone) must not hold up every other.
RECEIVE_TIMEOUT = 30.0

# Loaded before the first fork, so that each command finds them imported: the click
# commands, and the modules of the repository, the working tree and the remotes that
# nearly every command reaches. The engines of row diffs and the mount's daemon are
# left to the commands that use them.
PRELOAD = (
    "vfs.cli",
    "vfs.cli.root",
    "vfs.cli.staging",
    "vfs.cli.status_report",
    "vfs.repo.repository",
    "vfs.worktree.status",
    "vfs.ops.checkout",
    "vfs.ops.sync",
    "vfs.backends.s3",
)


def preload() -> None:
    """Import what :data:`PRELOAD` names."""
    for name in PRELOAD:
        importlib.import_module(name)


def receive(conn: socket.socket) -> tuple[dict[str, object], list[int]]:
    """One request from ``conn``: its fields, and the three descriptors sent with it
    (closed again if the rest of the request does not follow)."""
    head, fds, _flags, _addr = socket.recv_fds(conn, HEADER.size, 3)
    try:
        while len(head) < HEADER.size:
            head += _more(conn, HEADER.size - len(head))
        (size,) = HEADER.unpack(head)
        if size > MAX_REQUEST or len(fds) != 3:
            raise ValueError("malformed request")
        body = bytearray()
        while len(body) < size:
            body += _more(conn, min(size - len(body), 1 << 20))
        request = json.loads(body)
        if not isinstance(request, dict):
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
    """In the child: turn into ``dvfs ARGS`` as the request describes, and run it.
    Never returns: a child that cannot become the command says why and exits 127."""
    try:
        selector.close()
        for sock in keep:
            sock.detach()  # closed below with the rest, and never again at exit
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        os.closerange(3, os.sysconf("SC_OPEN_MAX"))
        args, env, cwd = (request[k] for k in ("args", "env", "cwd"))
        assert isinstance(args, list) and isinstance(env, dict) and isinstance(cwd, str)
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
        runpy.run_module("vfs.cli", run_name="__main__", alter_sys=True)
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
    preload()
    if len(os.listdir("/proc/self/task")) != 1:  # (a library's native threads count too)
        raise SystemExit(f"fork server: threads running after the imports: {threading.enumerate()}")
    gc.freeze()  # what the children share stays shared: their collector never walks it
    serve(socket.socket(fileno=int(sys.argv[1])), sys.stdin.fileno(), sys.argv[2])
