"""Running ``dvfs`` commands as processes forked from one that has already imported them.

Starting ``python -m vfs.cli`` costs 50-110 ms before a command does anything (a plain
``status`` 53-66 ms, a ``log`` 96-117 ms), most of it importing, and the suite runs
thousands of commands: it took 850-918 s on two cores. Each test process
therefore starts a server (:mod:`tests.support.fork_server`) that imports the
command line once and forks a child per command. The child is a process of its own,
with the command's argv, directory, environment and standard streams, that runs the
same ``__main__`` ``python -P -m vfs.cli`` runs and ends as that would; the caller
gets its exit code, output and error as :func:`subprocess.run` gives them.

Commands left running are forked the same way (:func:`spawn`): ``dvfs ui``, 0.45 s
from its start to its URL exec'd, nearly all of it imports, from a server of kind
``ui`` that has loaded the dashboard too; ``dvfs mount --foreground``, whose
``execve`` of its daemon is handed back and forked by a server of kind ``daemon``,
started with the daemon's malloc tunables and its modules loaded. The caller gets a
``subprocess.Popen`` of the process that runs (:class:`Spawned`).

What a fork cannot give, :func:`tests.support.cli.run` starts the usual way: a
command with root's file override dropped (a capability set at ``exec``), one whose
environment changes what Python or the C library reads as it starts (``PYTHON*``, the
locale, malloc's tunables), one
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
import select
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
from typing import IO, Any

from tests.support.fork_server import HEADER, receive
from tests.support.scratch import scratch_dir

SERVER = Path(__file__).with_name("fork_server.py")
EXEC_VAR = "DVFS_TESTS_EXEC"
START_WAIT = 60.0  # seconds for a server to fork a child (it may be starting)
# Variables that Python, or the C library under it, reads as it starts (the child of a
# fork has started already): a mount's daemon is started with malloc's tunables.
_STARTUP_PREFIXES = ("PYTHON", "LC_", "LANG", "GLIBC_TUNABLES", "MALLOC_", "LD_")


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

    def __init__(self, env: Mapping[str, str], kind: str = "cli") -> None:
        self.env = dict(env)
        self.kind = kind
        self.dir = str(scratch_dir("forks"))
        self.path = os.path.join(self.dir, "socket")
        listener = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        listener.bind(self.path)
        listener.listen(128)
        self.proc = subprocess.Popen(
            [sys.executable, "-P", str(SERVER), str(listener.fileno()), self.dir, kind],
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

    def spawn(
        self,
        args: Sequence[str],
        cwd: Path | str,
        env: Mapping[str, str],
        streams: tuple[Stream, Stream, Stream],
        daemons: Server | None = None,
    ) -> Spawned:
        """``dvfs ARGS`` in ``cwd`` with ``env`` in a forked child, left running, as
        ``subprocess.Popen`` would start it with ``streams`` as its stdin, stdout and
        stderr. ``daemons``: the server that forks the mount daemon the command
        ``execve``-s, if it does (``dvfs mount --foreground``)."""
        opened = [_Ends(spec, number) for number, spec in enumerate(streams)]
        hand = theirs = None
        try:
            if daemons is not None:
                hand, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            fields: dict[str, object] = {"args": list(args), "cwd": os.fspath(cwd)}
            fields["env"] = dict(env)
            fds = [e.child for e in opened]
            if theirs is not None:
                fields["handover"] = True
                fds.append(theirs.fileno())
            conn, pid, rest = self.start(fields, fds)
        except BaseException:
            for e in opened:
                e.close_ours()
            if hand is not None:
                hand.close()
            raise
        finally:
            for e in opened:
                e.close_child()
            if theirs is not None:
                theirs.close()
        files = [e.ours for e in opened]
        return Spawned(["dvfs", *args], conn, pid, rest, files, hand, daemons)

    def start(
        self, fields: Mapping[str, object], fds: Sequence[int]
    ) -> tuple[socket.socket, int, bytes]:
        """Send one request (``fields``, the child's descriptors ``fds``); the connection
        on which its exit code will come, the child's pid, and what was read past it."""
        request = json.dumps(fields).encode()
        conn = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM | socket.SOCK_CLOEXEC)
        try:
            conn.settimeout(START_WAIT)
            conn.connect(self.path)
            socket.send_fds(conn, [HEADER.pack(len(request))], list(fds))
            conn.sendall(request)
            got = b""
            while b"\n" not in got:
                more = conn.recv(64)
                if not more:
                    raise RuntimeError(f"the fork server ({self.kind}) ended without forking")
                got += more
            conn.settimeout(None)
        except BaseException:
            conn.close()
            raise
        line, _, rest = got.partition(b"\n")
        return conn, int(line), rest


# What a spawned child's standard stream is: subprocess.PIPE or DEVNULL, a descriptor,
# a file, or None for this process's own.
Stream = int | IO[Any] | None


class _Ends:
    """The two ends of one standard stream of a child to spawn: the descriptor sent for
    it, and this process's file (a pipe's other end) if any."""

    def __init__(self, spec: Stream, number: int) -> None:
        self.ours: IO[bytes] | None = None
        self.made = -1  # a descriptor made here for the child, closed once sent
        if spec == subprocess.PIPE:
            r, w = os.pipe2(os.O_CLOEXEC)
            mine, self.made = (w, r) if number == 0 else (r, w)
            self.ours = open(mine, "wb" if number == 0 else "rb")  # noqa: SIM115
        elif spec == subprocess.DEVNULL:
            self.made = os.open(
                os.devnull, (os.O_RDONLY if number == 0 else os.O_WRONLY) | os.O_CLOEXEC
            )
        self.child = (
            self.made if self.made >= 0
            else number if spec is None
            else spec if isinstance(spec, int)
            else spec.fileno()
        )  # fmt: skip

    def close_child(self) -> None:
        if self.made >= 0:
            os.close(self.made)
            self.made = -1

    def close_ours(self) -> None:
        if self.ours is not None:
            self.ours.close()


class Spawned(subprocess.Popen[bytes]):
    """A child of a fork server, handled as the ``subprocess.Popen`` that would have
    exec'd it: ``pid``, ``poll``, ``wait``, ``communicate``, ``send_signal``,
    ``terminate``, ``kill``, ``returncode`` (``-N`` for signal N), and ``stdin``,
    ``stdout``, ``stderr`` where they are pipes. Signals go through a pidfd, so never
    to a later process that took the pid.

    A ``dvfs mount --foreground`` exec's its daemon: given a handover socket, this
    takes the daemon its child sends there (:func:`tests.support.fork_server.hand_over`)
    to the daemons' server as the child ends, and from then on is the daemon's handle:
    its pid, its signals, its exit code, as the one process of an ``exec``.
    """

    def __init__(
        self,
        args: list[str],
        conn: socket.socket,
        pid: int,
        rest: bytes,
        files: list[IO[bytes] | None],
        hand: socket.socket | None,
        daemons: Server | None,
    ) -> None:  # (not Popen's: nothing is exec'd here)
        self.args = args
        self.stdin, self.stdout, self.stderr = files
        self.returncode: int | None = None
        self._child_created = False  # Popen.__del__: nothing for it to reap
        self.text_mode = self.universal_newlines = False
        self._hand, self._daemons = hand, daemons
        self._conn, self._got = conn, rest
        self._take(pid)

    def _take(self, pid: int) -> None:
        self.pid = pid
        try:
            self._pidfd = os.pidfd_open(pid)
        except ProcessLookupError:  # ended and reaped already: its code is on the way
            self._pidfd = -1

    def poll(self) -> int | None:
        return self._wait(0)

    def wait(self, timeout: float | None = None) -> int:
        code = self._wait(timeout)
        if code is None:
            assert timeout is not None
            raise subprocess.TimeoutExpired(self.args, timeout)
        return code

    def _wait(self, timeout: float | None) -> int | None:
        """The exit code once the child has ended, waiting up to ``timeout`` s for it
        (None: for ever); None if it still runs."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while self.returncode is None:
            if b"\n" in self._got:
                line, _, self._got = self._got.partition(b"\n")
                self._ended(int(line))
                continue
            left = None if deadline is None else max(deadline - time.monotonic(), 0)
            if not _readable(self._conn.fileno(), left):
                return None
            more = self._conn.recv(64)
            if not more:
                raise RuntimeError(f"the fork server of {self.args!r} ended before its child")
            self._got += more
        return self.returncode

    def _ended(self, code: int) -> None:
        """The child has ended with ``code``: this handle's too, unless it handed its
        exec over (then the daemon's handle from now on)."""
        hand, self._hand = self._hand, None
        if self._pidfd >= 0:
            os.close(self._pidfd)
        self._conn.close()
        if hand is not None:
            with hand:
                if code == 0 and _readable(hand.fileno(), 0):
                    request, fds = receive(hand)
                    self._exec(request, fds)
                    return
        self.returncode = code

    def _exec(self, request: dict[str, object], fds: list[int]) -> None:
        """Fork the daemon a child handed over (its request, its descriptors)."""
        try:
            daemons = self._daemons
            env = request["env"]
            assert daemons is not None and isinstance(env, dict)
            if not forkable(env, daemons.env, daemons.umask):
                raise AssertionError(
                    f"{self.args!r} exec'd a daemon the fork server cannot start as exec "
                    "would (its environment or umask differ): start it exec'd"
                )
            self._conn, pid, self._got = daemons.start(request, fds)
        finally:
            for fd in fds:
                os.close(fd)
        self._take(pid)

    def send_signal(self, sig: int) -> None:
        self.poll()
        if self.returncode is None and self._pidfd >= 0:
            with contextlib.suppress(ProcessLookupError):
                signal.pidfd_send_signal(self._pidfd, sig)

    def communicate(
        self, input: bytes | None = None, timeout: float | None = None
    ) -> tuple[Any, Any]:
        if input is not None:
            raise ValueError("a spawned child reads no input given here")
        deadline = None if timeout is None else time.monotonic() + timeout
        if self.stdin is not None:
            self.stdin.close()
        pipes = [f for f in (self.stdout, self.stderr) if f is not None]
        got = _read_all([f.fileno() for f in pipes], deadline)
        if got is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0)
        out, err = (None if f is None else got[f.fileno()] for f in (self.stdout, self.stderr))
        for f in pipes:
            f.close()
        self.wait(None if deadline is None else max(deadline - time.monotonic(), 0))
        return out, err


def _readable(fd: int, timeout: float | None) -> bool:
    """Whether ``fd`` has something to read within ``timeout`` s (None: waits for it).
    ``poll``, not ``select``: a test process may hold more than 1,024 descriptors."""
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    return bool(poller.poll(None if timeout is None else timeout * 1000))


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
    got = _read_all([out_fd, err_fd], deadline)
    return (None, None) if got is None else (got[out_fd], got[err_fd])


def _read_all(fds: list[int], deadline: float | None) -> dict[int, bytes] | None:
    """Everything written to the pipes ``fds`` until each ends, or None at ``deadline``
    (None: no limit)."""
    got = {fd: bytearray() for fd in fds}
    with selectors.DefaultSelector() as selector:
        for fd in got:
            selector.register(fd, selectors.EVENT_READ)
        while selector.get_map():
            left = None if deadline is None else deadline - time.monotonic()
            if left is not None and left <= 0:
                return None
            for key, _events in selector.select(left):
                assert isinstance(key.fileobj, int)
                chunk = os.read(key.fileobj, 1 << 16)
                if chunk:
                    got[key.fileobj] += chunk
                else:
                    selector.unregister(key.fileobj)
    return {fd: bytes(data) for fd, data in got.items()}


_lock = threading.Lock()
_servers: dict[str, Server] = {}


def server(env: Mapping[str, str], kind: str = "cli") -> Server:
    """This process's fork server of ``kind`` (see ``fork_server.PRELOAD``), started with
    ``env`` on first use."""
    with _lock:
        got = _servers.get(kind)
        if got is None or got.owner != os.getpid() or got.proc.poll() is not None:
            got = _servers[kind] = Server(env, kind)
            atexit.register(got.close)
        return got


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


def spawn(
    args: Sequence[str],
    cwd: Path | str,
    env: Mapping[str, str],
    server_env: Mapping[str, str],
    streams: tuple[Stream, Stream, Stream],
    kind: str = "cli",
    daemon_server_env: Mapping[str, str] | None = None,
) -> Spawned | None:
    """``dvfs ARGS`` forked by this process's server of ``kind`` (started with
    ``server_env``) and left running, or None if it must be exec'd instead
    (:func:`forkable`). ``daemon_server_env``: the command exec's a mount's daemon, to
    be forked by the server of kind ``daemon``, started with this environment."""
    forker = server(server_env, kind)
    if not forkable(env, forker.env, forker.umask):
        return None
    daemons = None if daemon_server_env is None else server(daemon_server_env, "daemon")
    return forker.spawn(args, cwd, env, streams, daemons)
