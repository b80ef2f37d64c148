"""Ranged GETs of an S3 object over plain HTTP without botocore's request machinery.

A cold sequential read through a URL mount issues one ranged GET per pack, a random
reader one per chunk, a download one per range of chunks; through boto3 each cost
the client about 2.1 ms of CPU before the first byte of the body
(building, signing and sending the request, parsing the answer into a dict), as much
as receiving 7 MiB of it. Here the request is signed by botocore's own SigV4 signer
(``S3SigV4Auth``, about 60 us) and written on a kept-alive socket; the answer's
status line and headers are read and checked strictly, and the body is received
straight into the caller's buffers (``recv_into`` with ``MSG_WAITALL``: one system
call, the GIL released, per piece).

Used only where it cannot change what is read or who is asked: an ``http://``
endpoint with no path (path-style addressing, as botocore uses for an endpoint),
no HTTP proxy configured for it, and credentials botocore's chain found. TLS
endpoints (AWS itself) keep boto3's path. Anything but a plain, well-formed
``206 Partial Content`` (or ``200`` for a range from 0) answer is not interpreted
here: the connection is closed and :meth:`RawGetter.open` returns None, and the
caller asks again through boto3, which maps the error (a missing key, a refused
signature, a 5xx, a 416 past the end) as for every other request.

Every byte of the answer is untrusted: the status line and headers are at most
``HEAD_LIMIT`` bytes; ``Content-Length`` must be decimal digits and no more than
was asked; ``Content-Range`` must start where asked and agree with it; a chunked or
encoded body is refused. A socket that delivered its whole body goes back to a
bounded pool for the next request; any other is closed.
"""

from __future__ import annotations

import contextlib
import re
import socket
import struct
import threading
import urllib.request
from typing import Any
from urllib.parse import urlsplit

from botocore.auth import S3SigV4Auth
from botocore.awsrequest import AWSRequest

from vfs.errors import RemoteUnreachable

HEAD_LIMIT = 64 * 1024  # bytes of status line and headers, at most
_STATUS = re.compile(rb"HTTP/1\.[01] (\d{3}) [^\r\n]*")
_HEADER = re.compile(rb"([!#$%&'*+.^_`|~0-9A-Za-z-]+):[ \t]*([^\r\n]*?)[ \t]*")
_CONTENT_RANGE = re.compile(rb"bytes (\d{1,19})-(\d{1,19})/(\d{1,19}|\*)")


class Answer:
    """The body of one ranged GET, to be received piece by piece with :meth:`read_into`."""

    def __init__(self, getter: RawGetter, sock: socket.socket, early: bytes, length: int) -> None:
        self._getter = getter
        self._sock: socket.socket | None = sock
        self._early = early  # body bytes that came with the headers
        self.length = length  # bytes of body, as Content-Length said
        self.left = length
        self.reusable = True

    def read_into(self, into: memoryview) -> None:
        """Fill ``into`` (at most :attr:`left` bytes) from the body; RemoteUnreachable if
        the connection fails, times out or ends early."""
        assert self._sock is not None and len(into) <= self.left
        got = 0
        if self._early:
            got = min(len(self._early), len(into))
            into[:got] = self._early[:got]
            self._early = self._early[got:]
        while got < len(into):
            try:
                n = self._sock.recv_into(into[got:], len(into) - got, socket.MSG_WAITALL)
            except OSError as exc:  # (a timeout: EAGAIN from SO_RCVTIMEO)
                self.close()
                raise RemoteUnreachable(
                    f"reading from {self._getter.server} failed ({exc.strerror or exc}): "
                    "check the network and the endpoint URL"
                ) from exc
            if not n:
                self.close()
                raise RemoteUnreachable(
                    f"{self._getter.server} ended its answer after {self.length - self.left + got}"
                    f" of {self.length} bytes"
                )
            got += n
        self.left -= got

    def close(self) -> None:
        """Done: the socket back to the pool if the body was read whole, else closed."""
        sock, self._sock = self._sock, None
        if sock is None:
            return
        if self.left or self._early or not self.reusable:
            sock.close()
        else:
            self._getter.give_back(sock)


class RawGetter:
    """Signed ranged GETs to one plain-HTTP endpoint over kept-alive sockets."""

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        credentials: Any,
        region: str,
        *,
        connect_timeout: float,
        read_timeout: float,
        max_idle: int,
    ) -> None:
        parts = urlsplit(endpoint)
        assert parts.hostname is not None
        self.host = parts.hostname
        self.port = parts.port or 80
        self.server = f"{parts.scheme}://{parts.netloc}"
        self._host_header = self.host if self.port == 80 else f"{self.host}:{self.port}"
        if ":" in self.host and self.port != 80:  # an IPv6 literal keeps its brackets
            self._host_header = f"[{self.host}]:{self.port}"
        self._base = f"http://{self._host_header}/{bucket}/"
        self._credentials = credentials
        self._region = region
        self._connect_timeout = connect_timeout
        self._timeval = struct.pack("ll", int(read_timeout), int(read_timeout % 1 * 1e6))
        self._idle: list[socket.socket] = []
        self._max_idle = max_idle
        self._lock = threading.Lock()

    @staticmethod
    def usable(endpoint: str | None) -> bool:
        """True if GETs to ``endpoint`` may go this way (see the module docstring)."""
        if not endpoint:
            return False
        parts = urlsplit(endpoint)
        if parts.scheme.lower() != "http" or parts.path not in ("", "/") or not parts.hostname:
            return False
        proxies = urllib.request.getproxies()
        return "http" not in proxies or bool(urllib.request.proxy_bypass(parts.hostname))

    def open(self, name: str, start: int, length: int) -> Answer | None:
        """Send a GET of ``length`` bytes of object ``name`` from ``start``; the answer's
        body to read, or None if the server answered anything but those bytes (the
        caller then asks through boto3, which says what went wrong)."""
        frozen = self._credentials.get_frozen_credentials()
        request = AWSRequest(
            method="GET",
            url=self._base + name,
            headers={"Host": self._host_header, "Range": f"bytes={start}-{start + length - 1}"},
        )
        S3SigV4Auth(frozen, "s3", self._region).add_auth(request)
        lines = [f"GET /{request.url.split('/', 3)[3]} HTTP/1.1"]
        lines += [f"{k}: {v}" for k, v in request.headers.items()]
        raw = ("\r\n".join(lines) + "\r\n\r\n").encode("ascii")
        for fresh in (False, True):
            sock = self._take() if not fresh else self._connect()
            if sock is None:
                continue
            try:
                sock.sendall(raw)
                got = _read_head(sock)
            except (OSError, _Torn) as exc:
                sock.close()
                stale = isinstance(exc, ConnectionError) or (isinstance(exc, _Torn) and exc.empty)
                if stale and not fresh:
                    continue  # a kept-alive socket the server had closed: once more, anew
                raise RemoteUnreachable(
                    f"could not reach {self.server} ({_why(exc)}): check the network and "
                    "the endpoint URL"
                ) from exc
            answer = None if got is None else self._answer(sock, *got, start, length)
            if answer is None:
                sock.close()
            return answer
        raise AssertionError("unreachable")  # pragma: no cover

    def _answer(
        self, sock: socket.socket, head: bytes, early: bytes, start: int, length: int
    ) -> Answer | None:
        """The body of a well-formed answer with the bytes asked for, else None."""
        first, _, rest = head.partition(b"\r\n")
        status = _STATUS.fullmatch(first)
        if status is None or status.group(1) not in (b"200", b"206"):
            return None
        headers: dict[bytes, bytes] = {}
        for line in rest.split(b"\r\n"):
            if not line:
                continue
            m = _HEADER.fullmatch(line)
            if m is None:
                return None
            name = m.group(1).lower()
            if name in headers and name in (b"content-length", b"content-range"):
                return None  # told twice: trust neither
            headers[name] = m.group(2)
        size = headers.get(b"content-length", b"")
        if not size.isdigit() or len(size) > 19 or int(size) > length:
            return None
        n = int(size)
        if headers.get(b"transfer-encoding") or headers.get(b"content-encoding", b"") not in (
            b"",
            b"identity",
        ):
            return None
        if status.group(1) == b"206":
            got = _CONTENT_RANGE.fullmatch(headers.get(b"content-range", b""))
            if got is None or int(got.group(1)) != start or int(got.group(2)) - start + 1 != n:
                return None
        elif start != 0:  # the whole object, not the range asked for
            return None
        if len(early) > n:
            return None
        answer = Answer(self, sock, early, n)
        answer.reusable = headers.get(b"connection", b"").lower() != b"close"
        return answer

    def _take(self) -> socket.socket | None:
        with self._lock:
            return self._idle.pop() if self._idle else None

    def give_back(self, sock: socket.socket) -> None:
        """Keep ``sock`` for the next request (or close it: the pool is full)."""
        with self._lock:
            if len(self._idle) < self._max_idle:
                self._idle.append(sock)
                return
        sock.close()

    def _connect(self) -> socket.socket:
        """A new connection, blocking, with the read timeout set in the kernel (so that a
        body is received in one ``recv`` a piece, yet a silent server still times out)."""
        try:
            sock = socket.create_connection((self.host, self.port), self._connect_timeout)
        except OSError as exc:
            raise RemoteUnreachable(
                f"could not reach {self.server} ({_why(exc)}): check the network and the "
                "endpoint URL"
            ) from exc
        sock.settimeout(None)
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVTIMEO, self._timeval)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_SNDTIMEO, self._timeval)
        return sock

    def close(self) -> None:
        """Close the kept sockets."""
        with self._lock:
            idle, self._idle = self._idle, []
        for sock in idle:
            sock.close()


class _Torn(Exception):
    """The connection ended before a whole status line and headers came."""

    def __init__(self, empty: bool) -> None:
        super().__init__("the server closed the connection")
        self.empty = empty  # not a byte came


def _why(exc: BaseException) -> str:
    return str(getattr(exc, "strerror", None) or exc)


def _read_head(sock: socket.socket) -> tuple[bytes, bytes] | None:
    """The status line and headers (without the blank line) and the body bytes that came
    with them; None past ``HEAD_LIMIT`` bytes; _Torn if the connection ends first."""
    got = b""
    while True:
        block = sock.recv(65536)
        if not block:
            raise _Torn(not got)
        got += block
        end = got.find(b"\r\n\r\n")
        if end >= 0:
            return got[:end], got[end + 4 :]
        if len(got) > HEAD_LIMIT:
            return None
