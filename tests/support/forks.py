"""Running ``dvfs`` commands as processes forked from one that has already imported them.

Starting ``python -m vfs.cli`` costs 50-110 ms before a command does anything (a plain
``status`` 53-66 ms, a ``log`` 96-117 ms), most of it importing, and the suite runs
thousands of commands: it took 850-918 s on two cores. Each test process
therefore starts one server (:mod:`tests.support.fork_server`) that imports the
command line once and forks a child per command. The child is a process of its own,
with the command's argv, directory, environment and standard streams, that runs the
same ``__main__`` ``python -P -m vfs.cli`` runs and ends as that would; the caller
gets its exit code, output and error as :func:`subprocess.run` gives them.

What a fork cannot give, :func:`tests.support.cli.run` starts the usual way: a
command with root's file override dropped (a capability set at ``exec``), one whose
environment changes what Python reads as it starts (``PYTHON*``, the locale), one
started with another umask than the server's (dvfs reads it at import), and every
command when ``DVFS_TESTS_EXEC`` is set (to compare both ways).

The server ends when the test process does, and removes its socket's directory: it
watches a pipe whose other end only the test process holds.
"""

from __future__ import annotations

import atexit
import contextlib
import json
import os
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

from tests.support.fork_server import HEADER
from tests.support.scratch import scratch_dir

SERVER = Path(__file__).with_name("fork_server.py")
EXEC_VAR = "DVFS_TESTS_EXEC"
# Variables that Python reads as it starts (the child of a fork has started already).
_STARTUP_PREFIXES = ("PYTHON", "LC_", "LANG")


def forkable(env: Mapping[str, str], base: Mapping[str, str], base_umask: int) -> bool:
    """Whether a command with environment ``env``, started now, runs the same forked as
    exec'd from a server started with environment ``base`` and umask ``base_umask``
    (dvfs reads the umask as it is imported: ``vfs.repo.stage.UMASK``)."""
    if os.environ.get(EXEC_VAR) or umask() != base_umask:
        return False
    return all(
        env.get(name) == base.get(name)
        for name in {*env, *base}
        if name.startswith(_STARTUP_PREFIXES)
    )


class Server:
    """One fork server, owned by the process that started it."""

    def __init__(self, env: Mapping[str, str]) -> None:
        self.env = dict(env)
        self.dir = str(scratch_dir("forks"))
        self.path = os.path.join(self.dir, "socket")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(128)
        self.proc = subprocess.Popen(
            [sys.executable, "-P", str(SERVER), str(listener.fileno()), self.dir],
            env=self.env,
            stdin=subprocess.PIPE,  # its lifeline: EOF when this process is gone
            stdout=subprocess.DEVNULL,
            pass_fds=[listener.fileno()],
            cwd="/",
        )
        listener.close()
        self.owner = os.getpid()
        self.umask = umask()

    def close(self) -> None:
        """End the server and remove its socket (only in the process that started it)."""
        if os.getpid() != self.owner:
            return
        self.proc.kill()
        self.proc.wait()
        if self.proc.stdin is not None:
            self.proc.stdin.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def run(
        self,
        args: Sequence[str],
        cwd: Path | str,
        env: Mapping[str, str],
        input: bytes | None,
        timeout: float,
    ) -> subprocess.CompletedProcess[bytes]:
        """``dvfs ARGS`` in ``cwd`` with ``env`` in a forked child, as ``subprocess.run``
        with ``capture_output`` would run it (``TimeoutExpired`` after ``timeout``)."""
        deadline = time.monotonic() + timeout
        fields = {"args": list(args), "cwd": os.fspath(cwd), "env": dict(env)}
        request = json.dumps(fields).encode()
        out_r, out_w = os.pipe2(os.O_CLOEXEC)
        err_r, err_w = os.pipe2(os.O_CLOEXEC)
        in_r, in_w = os.pipe2(os.O_CLOEXEC) if input is not None else (0, -1)
        theirs = [out_w, err_w, *((in_r,) if input is not None else ())]
        feeder = None
        try:
            with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC) as conn:
                conn.connect(self.path)
                socket.send_fds(conn, [HEADER.pack(len(request))], [in_r, out_w, err_w])
                conn.sendall(request)
                for fd in theirs:
                    os.close(fd)
                theirs = []
                if input is not None:
                    feeder, in_w = _feed(in_w, input), -1
                with conn.makefile("rb") as replies:
                    conn.settimeout(max(deadline - time.monotonic(), 0.001))
                    pid = int(replies.readline())
                    out, err = _drain(out_r, err_r, deadline)
                    if out is None or err is None:
                        with contextlib.suppress(ProcessLookupError):
                            os.kill(pid, signal.SIGKILL)
                        raise subprocess.TimeoutExpired(["dvfs", *args], timeout)
                    conn.settimeout(max(deadline - time.monotonic(), 1.0))
                    code = int(replies.readline())
        finally:
            for fd in (*theirs, out_r, err_r, *((in_w,) if in_w >= 0 else ())):
                os.close(fd)
            if feeder is not None:
                feeder.join()
        return subprocess.CompletedProcess(["dvfs", *args], code, out, err)


def umask() -> int:
    """This process's umask, read without changing it (``os.umask`` sets it to read it)."""
    with open("/proc/self/status", "rb") as status:
        for line in status:
            if line.startswith(b"Umask:"):
                return int(line.split()[1], 8)
    raise OSError("no Umask line in /proc/self/status")


def _feed(fd: int, data: bytes) -> threading.Thread:
    """Write ``data`` to the pipe ``fd`` and close it, in a thread of its own."""

    def write() -> None:
        with open(fd, "wb") as pipe, contextlib.suppress(BrokenPipeError):
            pipe.write(data)

    thread = threading.Thread(target=write, daemon=True)
    thread.start()
    return thread


def _drain(out_fd: int, err_fd: int, deadline: float) -> tuple[bytes | None, bytes | None]:
    """Everything written to the two pipes until both end, or (None, None) at ``deadline``."""
    got = {out_fd: bytearray(), err_fd: bytearray()}
    with selectors.DefaultSelector() as selector:
        for fd in got:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = deadline - time.monotonic()
            if left <= 0:
                return None, None
            for key, _events in selector.select(left):
                assert isinstance(key.fileobj, int)
                chunk = os.read(key.fileobj, 1 << 16)
                if chunk:
                    got[key.fileobj] += chunk
                else:
                    selector.unregister(key.fileobj)
    return bytes(got[out_fd]), bytes(got[err_fd])


_lock = threading.Lock()
_server: Server | None = None


def server(env: Mapping[str, str]) -> Server:
    """This process's fork server, started with ``env`` on first use."""
    global _server
    with _lock:
        if _server is None or _server.owner != os.getpid() or _server.proc.poll() is not None:
            _server = Server(env)
            atexit.register(_server.close)
        return _server


def run(
    args: Sequence[str],
    cwd: Path | str,
    env: Mapping[str, str],
    server_env: Mapping[str, str],
    input: bytes | None,
    timeout: float,
) -> subprocess.CompletedProcess[bytes] | None:
    """``dvfs ARGS`` forked by this process's server (started with ``server_env``), or
    None if it must be exec'd instead (:func:`forkable`)."""
    forker = server(server_env)
    if not forkable(env, forker.env, forker.umask):
        return None
    return forker.run(args, cwd, env, input, timeout)
