"""Running the dashboard: check the bind, bind it, print the URL, serve until stopped.

Why uvicorn: the reference ASGI server for Starlette, pure Python with ``h11`` (no
compiled part needed), runs on asyncio so the ``vfs`` rule "never import trio" holds,
and it accepts an already-bound socket, so ``--port 0`` can print the real port
before the first request.

A host that is not a loopback address is refused unless a token guards every
request (``vfs.ui.app.Guard``); tokens are URL-safe and long enough not to guess.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
import socket
import threading
import urllib.parse
import webbrowser
from collections.abc import Callable, Iterator

import uvicorn

from vfs.errors import UsageError
from vfs.quoting import quote_name
from vfs.ui import background, data
from vfs.ui.app import make_app
from vfs.ui.binds import check_bind, is_loopback
from vfs.ui.source import Source

UNFINISHED = "ASGI callable returned without completing response."  # uvicorn's words
STOP_WAIT = 2.0  # seconds a stop waits for answers under way (a download) before cutting them


class Server(uvicorn.Server):
    """uvicorn's server, stopping on SIGINT or SIGTERM and then returning, within
    ``STOP_WAIT`` seconds whatever it is answering.

    (uvicorn itself raises the signal again once stopped, so that Ctrl-C would end
    ``dvfs ui`` with an "interrupted" error and SIGTERM would kill it.)
    """

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        """uvicorn's, cutting the connections still answering after ``STOP_WAIT``
        seconds (uvicorn would wait for a download under way for as long as it takes,
        with not a word, or cancel it with a traceback)."""
        cut = asyncio.get_running_loop().call_later(STOP_WAIT, self._cut)
        try:
            await super().shutdown(sockets)
        finally:
            cut.cancel()

    def _cut(self) -> None:
        for connection in list(self.server_state.connections):
            transport = getattr(connection, "transport", None)
            if transport is not None:
                transport.abort()  # its answer ends as a client gone away would end it

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        if threading.current_thread() is not threading.main_thread():
            yield
            return
        stops = (signal.SIGINT, signal.SIGTERM)
        before = {sig: signal.signal(sig, self.handle_exit) for sig in stops}
        try:
            yield
        finally:
            for sig, handler in before.items():
                signal.signal(sig, handler)


def said_already(record: logging.LogRecord) -> bool:
    """False for uvicorn's line on a response the app left unfinished: only a download
    cut short does so, and the app logs why (``vfs.ui.app.Download``)."""
    return record.getMessage() != UNFINISHED


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host``:``port`` (0: a free port)."""
    try:
        family, kind, proto, _, addr = socket.getaddrinfo(
            host, port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )[0]
    except socket.gaierror as exc:
        raise UsageError(f"--host {host}: {exc.strerror}") from None
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind(addr)
    except OSError as exc:
        sock.close()
        raise UsageError(f"cannot listen on {host}:{port}: {exc.strerror}") from None
    sock.listen(128)
    return sock


def url_of(sock: socket.socket, token: str | None) -> str:
    """The address to open: the bound host and port, and the token if there is one."""
    host, port = sock.getsockname()[:2]
    shown = f"[{host}]" if ":" in host else host
    query = f"?token={urllib.parse.quote(token)}" if token else ""
    return f"http://{shown}:{port}/{query}"


def serve(
    source: Source, host: str, port: int, token: str | None, open_browser: bool,
    say: Callable[[str], None], allow_write: bool = False,
) -> None:  # fmt: skip
    """Serve the dashboard of ``source`` until SIGINT or SIGTERM; ``say`` prints the URL.
    With ``allow_write``, its pages offer the actions (``vfs.ui.actions``)."""
    check_bind(host, token)
    if allow_write and source.remote is not None:
        raise UsageError(f"--allow-write: {source.remote} is a remote, and its view is read-only")
    sock = bind(host, port)
    url = url_of(sock, token)
    app = make_app(source, token, loopback=is_loopback(host), allow_write=allow_write)
    data.warm(source.repo)  # before the URL is printed: no request waits for it
    config = uvicorn.Config(app, log_level="warning", access_log=False, lifespan="on")
    logging.getLogger("uvicorn.error").addFilter(said_already)
    server = Server(config)
    mode = "read-write" if allow_write else "read-only"
    # SIGINT and SIGTERM stop the server from the moment the URL is out: one sent as
    # soon as it is read (a service manager, a script) must end it as cleanly as later.
    with server.capture_signals():
        say(f"dvfs ui: {quote_name(source.description)} at {url}  ({mode}; Ctrl-C stops it)")
        if open_browser:
            threading.Thread(target=webbrowser.open, args=(url,), daemon=True).start()
        worker = background.start(source.repo.root)
        try:
            server.run(sockets=[sock])
        finally:
            sock.close()
            background.stop(worker)
