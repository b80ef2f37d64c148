"""A TCP relay in front of a server, for tests of remotes that fail or stall."""

from __future__ import annotations

import contextlib
import socket
import threading
from collections.abc import Callable, Iterable

from tests.support.loopback import free_ports


class Proxy:
    """A TCP relay on a fixed loopback port in front of a server; it can be cut and restored.

    Cut: the listening socket is closed and every open connection is reset, as when a
    server dies or the network drops. Restored: it listens on the same port again.
    Paused: connections are accepted and bytes received, but nothing is passed on until
    it is resumed, as with a server that never answers. :meth:`pause_after` lets a
    number of bytes from the server through first, so that a client is stalled in the
    middle of a download (``paused`` is set then).
    """

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        (self.port,) = free_ports(1)
        self._conns: set[socket.socket] = set()
        self._lock = threading.Lock()
        self._listener: socket.socket | None = None
        self._flowing = threading.Event()
        self._flowing.set()
        self._budget: int | None = None  # bytes from the server to pass on before pausing
        self.paused = threading.Event()
        self.restore()

    def pause(self) -> None:
        self._flowing.clear()
        self.paused.set()

    def pause_after(self, nbytes: int) -> None:
        """Pass on ``nbytes`` more bytes from the server (about: whole reads), then pause."""
        with self._lock:
            self._budget = nbytes
        self.paused.clear()

    def resume(self) -> None:
        self.paused.clear()
        self._flowing.set()

    def restore(self) -> None:
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(("127.0.0.1", self.port))
        sock.listen(64)
        self._listener = sock
        threading.Thread(target=self._accept, args=(sock,), daemon=True).start()

    @property
    def endpoint(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def drop(self) -> None:
        """Close every open connection, going on listening: as a server does with idle
        kept-alive connections (the peer sees the end of the stream, not a reset)."""
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        if self._listener is not None:
            self._listener.shutdown(socket.SHUT_RDWR)  # wakes the thread blocked in accept
            self._listener.close()
            self._listener = None
        with self._lock:
            conns, self._conns = self._conns, set()
        for c in conns:
            try:
                c.setsockopt(
                    socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00"
                )
                # A pump blocked in recv holds the socket: closing it alone would send
                # nothing until the peer spoke again (a client awaiting an answer waited
                # out its read timeout). Shutting its reading wakes that recv, and the
                # socket goes with linger 0 once released: the peer sees a reset.
                c.shutdown(socket.SHUT_RD)
                c.close()
            except OSError:
                pass

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            if self._answered_here(client):
                continue
            try:
                upstream = socket.create_connection(self.target)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns |= {client, upstream}
            for a, b, down in ((client, upstream, False), (upstream, client, True)):
                threading.Thread(target=self._pump, args=(a, b, down), daemon=True).start()

    def _answered_here(self, client: socket.socket) -> bool:
        """Whether ``client`` is answered by the relay itself, not passed on (a
        subclass's choice; none here)."""
        return False

    def _pump(self, src: socket.socket, dst: socket.socket, down: bool) -> None:
        try:
            while data := src.recv(1 << 16):
                self._flowing.wait()
                if down:
                    self._spend(len(data))
                dst.sendall(data)
        except OSError:
            pass
        for s in (src, dst):
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def _spend(self, n: int) -> None:
        """Count ``n`` bytes from the server against :meth:`pause_after`'s budget."""
        with self._lock:
            if self._budget is None:
                return
            self._budget -= n
            if self._budget > 0:
                return
            self._budget = None
        self.pause()


class Tamper(Proxy):
    """A loopback relay to the real server whose first connections get ``answers``
    instead (each sent after the request's headers, then the connection closed)."""

    def __init__(self, target_port: int, answers: list[bytes]) -> None:
        self.answers = list(answers)
        self.requests: list[bytes] = []
        super().__init__(target_port)

    def _answered_here(self, client: socket.socket) -> bool:
        if not self.answers:
            return False
        threading.Thread(target=self._answer, args=(client, self.answers.pop(0))).start()
        return True

    def _answer(self, client: socket.socket, answer: bytes) -> None:
        with client:
            head = b""
            while b"\r\n\r\n" not in head:
                block = client.recv(65536)
                if not block:
                    return
                head += block
            self.requests.append(head)
            with contextlib.suppress(OSError):
                client.sendall(answer)
                client.shutdown(socket.SHUT_WR)


class Intercept(Proxy):
    """A loopback relay that reads each request and passes it to the real server on a
    connection of its own (``Connection: close``: the client opens a new one for the
    next), unless ``answer(head)`` (the request line and headers) gives the blocks of
    an answer to send instead: then those are sent, as long as the client reads them,
    and the connection closed. ``sent``: the bytes of those answers the client took."""

    def __init__(self, target_port: int, answer: Callable[[bytes], Iterable[bytes] | None]):
        self.answer = answer
        self.sent = 0
        super().__init__(target_port)

    def _answered_here(self, client: socket.socket) -> bool:
        with self._lock:
            self._conns.add(client)
        threading.Thread(target=self._serve, args=(client,), daemon=True).start()
        return True

    def _serve(self, client: socket.socket) -> None:
        with client, contextlib.suppress(OSError):
            got = b""
            while b"\r\n\r\n" not in got:
                block = client.recv(1 << 16)
                if not block:
                    return
                got += block
            head, _, body = got.partition(b"\r\n\r\n")
            lines = head.split(b"\r\n")
            length = next(
                (int(v) for k, _, v in (line.partition(b":") for line in lines[1:])
                 if k.strip().lower() == b"content-length"),
                0,
            )  # fmt: skip
            while len(body) < length:
                block = client.recv(1 << 16)
                if not block:
                    return
                body += block
            blocks = self.answer(head)
            if blocks is not None:
                for block in blocks:
                    client.sendall(block)
                    with self._lock:
                        self.sent += len(block)
                return
            kept = [line for line in lines if not line.lower().startswith(b"connection:")]
            with socket.create_connection(self.target) as upstream:
                upstream.sendall(b"\r\n".join([*kept, b"Connection: close", b"", b""]) + body)
                while data := upstream.recv(1 << 16):
                    client.sendall(data)
