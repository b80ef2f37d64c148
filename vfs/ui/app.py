"""The dashboard's web application: JSON API, guard, static front end (Starlette).

Routes (docs/ui.md documents each answer; all are GET but the actions, and without
``--allow-write`` the dashboard changes nothing)::

    /                    the page (static/index.html); ?token=T sets the token cookie
    /static/...          the front end: ES modules, CSS, the vendored graph library
    /api/versions        branch, tag, author, q, path, offset, limit  (data.versions)
    /api/version         rev                                      (data.version)
    /api/version/changes rev                                      (data.version_changes)
    /api/files           rev, dir, offset, limit                  (data.files)
    /api/preview         rev, path, offset, limit, coffset, count (files.preview)
    /api/raw             rev, path, inline                        the file's bytes (HEAD: the
                                                                  check alone, no bytes)
    /api/diff            old, new, offset, limit                  (data.diff)
    /api/rows            old, new, path, key, limit               (data.row_diff)
    /api/lineage         rev                                      (data.lineage)
    /api/experiments     sort, offset, limit                      (data.experiments)
    /api/store                                                    (data.store)
    /api/audit           offset, limit                            (data.audit_log)
    /api/mounts                                                   (data.mounts)
    /api/steps           rev, path, offset, limit                 (data.steps)
    /api/added           rev, dir, offset, limit                  (data.added)
    POST /api/actions/A  tag {name, rev}, delete-branch {name,    (actions.ACTIONS)
                         force}, snapshot {mountpoint, message}

Actions (``--allow-write`` only, else 403): a POST whose JSON body names the
arguments, carrying the CSRF token the page holds (``<meta name="dvfs-csrf">``, a new
one each time the server starts) in the header ``X-DVFS-CSRF``; a request without it,
with another, of another content type, or whose ``Origin`` or ``Sec-Fetch-Site``
names another site is refused (403). A page elsewhere cannot read the token (no
CORS), and cannot send that header or a JSON body across sites without a preflight
this server never grants. Each action runs the CLI's operation (``vfs.ui.actions``).

Guard (:class:`Guard`, around everything): with a token, a request must carry it
(``Authorization: Bearer T``, the cookie the page sets, or ``?token=T``) or gets 401;
on a loopback address the ``Host`` header must name a loopback host too, so that a
web page elsewhere cannot reach the dashboard through DNS rebinding; and what a page of
another site makes the browser ask (``Sec-Fetch-Site``: an image, a fetch) is refused
(403), a link to the dashboard (a navigation) still opening it. Every answer
forbids sniffing, framing and any script or style not served here (CSP).

Errors become statuses here and only here: ``RevisionNotFound`` and ``PathNotFound``
404 (the first with ``candidates``, the closest revisions), ``UsageError`` (a bad
argument or path) and ``KeyNotUnique`` (a row diff's key naming several rows) 400,
``RefConflict`` (a tag ``a/b`` beside a tag ``a``, a ref moved meanwhile),
``NameInUse`` (a tag named as a tag or branch there is) and ``LockBusy`` (another
command holds the repository) 409, ``RemoteUnreachable`` (a
remote's view, or a clone's data, whose remote does not answer) 503 and any other
``RemoteError`` (a remote gone, or lacking a pack) 502, any other ``DvfsError`` 500,
anything else 500 too (and a traceback in the server's log); the router's own
refusals keep their status (405: a method a route does not take, with ``Allow``); the
body is ``{"error": MSG}``.

Threads: each request's work runs in a worker thread (``anyio.to_thread``), at most
``WORKERS`` at once; the repository handle is shared (its caches are thread-safe
``lru_cache``s, the store locks itself), its store first taking note of packs
written or deleted since (``ObjectStore.refresh``: a version ``dvfs gc`` deleted is
then unknown, as to the CLI).
"""

from __future__ import annotations

import contextlib
import hmac
import json
import logging
import secrets
import urllib.parse
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any, TypeVar

import anyio
import anyio.to_thread
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request, cookie_parser
from starlette.responses import HTMLResponse, Response, StreamingResponse
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from vfs.errors import (
    DvfsError,
    LockBusy,
    NameInUse,
    PathNotFound,
    RefConflict,
    RemoteError,
    RemoteUnreachable,
    RevisionNotFound,
    UsageError,
)
from vfs.quoting import quote_name, safe_json
from vfs.tables.result import KeyNotUnique
from vfs.ui import actions, arguments, data, files
from vfs.ui.binds import is_loopback
from vfs.ui.source import Source

STATIC = Path(__file__).parent / "static"
COOKIE = "dvfs_ui_token_{port}"  # named after the port: cookies do not tell ports apart
CSRF_HEADER = "x-dvfs-csrf"
SESSION_MARK = "<!-- dvfs:session -->"  # where index.html gets the page's CSRF token
MAX_ACTION_BODY = 64 * 1024  # bytes of an action's JSON body, at most
WORKERS = 4
SECURITY_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
        b"frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
    ),
]
T = TypeVar("T")
log = logging.getLogger(__name__)


def json_response(body: Any, status: int = 200) -> Response:
    """``body`` as exact JSON (names that are not UTF-8 escaped, as ``--json`` does)."""
    return Response(safe_json(body), status, media_type="application/json",
                    headers={"cache-control": "no-store"})  # fmt: skip


class Download(StreamingResponse):
    """A file's bytes (``/api/raw``). A failure past the headers (a chunk that cannot be
    had, bytes that are not the file's digest: ``vfs.ui.files.opened``) ends the body
    short of the length announced, and the connection with it, so the client knows
    the download failed; the log gets one line saying why, not a traceback (uvicorn's
    own line for a response left unfinished is dropped, ``vfs.ui.serve``)."""

    async def stream_response(self, send: Send) -> None:
        await send({"type": "http.response.start", "status": self.status_code,
                    "headers": self.raw_headers})  # fmt: skip
        try:
            async for chunk in self.body_iterator:
                await send({"type": "http.response.body", "body": chunk, "more_body": True})
        except DvfsError as exc:
            log.error("download cut short: %s", exc)
            return
        await send({"type": "http.response.body", "body": b"", "more_body": False})


def cookie_name(scope: Scope) -> str:
    """The token cookie of the dashboard answering ``scope``: a browser sends a cookie
    of 127.0.0.1 to every port of it, so one name for all would let a second
    dashboard's token replace the first's (logging it out) and reach it."""
    server = scope.get("server")
    return COOKIE.format(port=server[1] if server else 0)


class Guard:
    """ASGI middleware: the token, the Host check and the security headers."""

    def __init__(self, app: ASGIApp, token: str | None, loopback: bool) -> None:
        self.app = app
        self.token = token
        self.loopback = loopback

    def _authorised(self, scope: Scope) -> bool:
        if self.token is None:
            return True
        want = self.token.encode()
        headers = dict(scope["headers"])
        offered: list[bytes] = []
        auth = headers.get(b"authorization", b"")
        if auth.startswith(b"Bearer "):
            offered.append(auth[7:])
        if b"cookie" in headers:  # (Starlette's lenient parser: the browser sends the
            # cookies of other servers of this host too, which SimpleCookie may refuse whole)
            jar = cookie_parser(headers[b"cookie"].decode("latin-1"))
            name = cookie_name(scope)
            if name in jar:
                offered.append(jar[name].encode())
        # (each byte as itself: %FF is a wrong token, not a character Latin-1 lacks)
        text = scope.get("query_string", b"").decode("latin-1")
        query = urllib.parse.parse_qs(text, encoding="latin-1")
        offered += [t.encode("latin-1") for t in query.get("token", [])]
        return any(hmac.compare_digest(o, want) for o in offered)

    @staticmethod
    def _from_here(scope: Scope) -> bool:
        """False for what a page of another site makes the browser ask (an image, a
        script, a fetch: ``Sec-Fetch-Site`` cross-site or same-site, another port of
        this host too), but a navigation (a link to the dashboard opens it)."""
        headers = dict(scope["headers"])
        if headers.get(b"sec-fetch-site", b"same-origin") in (b"same-origin", b"none"):
            return True
        return headers.get(b"sec-fetch-mode") == b"navigate" and scope["method"] in ("GET", "HEAD")

    def _host_ok(self, scope: Scope) -> bool:
        if not self.loopback:
            return True  # the token guards a non-loopback bind
        host = dict(scope["headers"]).get(b"host", b"").decode("latin-1")
        name = host.rsplit(":", 1)[0] if not host.endswith("]") else host
        return is_loopback(name)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_guarded(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *SECURITY_HEADERS]
            await send(message)

        if not self._host_ok(scope):
            body = {"error": "unexpected Host header: open the address `dvfs ui` printed"}
            await json_response(body, 400)(scope, receive, send_guarded)
            return
        if not self._from_here(scope):
            body = {"error": "refused: a request from a page of another site"}
            await json_response(body, 403)(scope, receive, send_guarded)
            return
        if not self._authorised(scope):
            body = {"error": "this dashboard needs its token: open the URL `dvfs ui` printed"}
            await json_response(body, 401)(scope, receive, send_guarded)
            return
        await self.app(scope, receive, send_guarded)


def error_response(request: Request, exc: Exception) -> Response:
    """A DvfsError as a status and ``{"error": ...}`` (see the module doc)."""
    assert isinstance(exc, DvfsError)
    body: dict[str, Any] = {"error": str(exc)}
    if isinstance(exc, RevisionNotFound):
        body["candidates"] = exc.candidates
        return json_response(body, 404)
    if isinstance(exc, PathNotFound):
        return json_response(body, 404)
    if isinstance(exc, (RefConflict, NameInUse, LockBusy)):  # refs as they stand, another
        return json_response(body, 409)  # command
    if isinstance(exc, (UsageError, KeyNotUnique)):  # (the key the page was given)
        return json_response(body, 400)
    if isinstance(exc, RemoteUnreachable):  # a remote's view: the remote did not answer
        return json_response(body, 503)
    if isinstance(exc, RemoteError):  # ... answered without what it should hold
        return json_response(body, 502)
    return json_response(body, 500)


def http_error(request: Request, exc: Exception) -> Response:
    """The router's own refusals (405: a method the route does not take; 404: no such
    static file) in the API's form, ``{"error": MSG}``, saying what to send."""
    assert isinstance(exc, HTTPException)
    path = quote_name(request.url.path[:200])
    headers = dict(exc.headers or {})
    if exc.status_code == 405:
        given = headers.get("Allow", headers.get("allow", "GET"))
        allowed = ", ".join(sorted(m.strip() for m in given.split(",")))  # (a set's order)
        message = f"{path} does not take {request.method[:20]!r}: send {allowed}"
    elif exc.status_code == 404:
        message = f"no such page: {path}"
    else:
        message = f"{path}: {exc.detail}"
    response = json_response({"error": message}, exc.status_code)
    response.headers.update(headers)
    return response


def internal_error(request: Request, exc: Exception) -> Response:
    """Anything unexpected: one line for the page (the server's log has the rest)."""
    return json_response({"error": f"internal error ({type(exc).__name__}: {exc})"[:500]}, 500)


class Api:
    """The routes' handlers over one repository."""

    def __init__(self, source: Source, token: str | None, allow_write: bool = False) -> None:
        self.source = source
        self.repo = source.repo
        self.token = token
        self.allow_write = allow_write
        self.csrf = secrets.token_urlsafe(32) if allow_write else None
        self._limiter: anyio.CapacityLimiter | None = None
        # tables read for previews, kept for their next pages (None: no table engine)
        engine = files.TablePreviews is not None
        self.tables = files.TablePreviews(self.repo.dir) if engine else None

    def close(self) -> None:
        """Stop what the handlers keep (the previews' table engine and copies), and
        store the data downloaded and not stored yet."""
        if self.tables is not None:
            self.tables.close()
        if self.source.fetcher is not None:
            self.source.fetcher.close()

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` in a worker thread (at most ``WORKERS`` at once). In a remote's
        view, a revision it does not know (a link to a version pushed since it last
        looked) makes it look for new pushes first (unless another request is looking),
        and ``fn`` is run again if it did."""
        if self._limiter is None:  # made in the event loop, on first use
            self._limiter = anyio.CapacityLimiter(WORKERS)
        try:
            return await anyio.to_thread.run_sync(self._fresh, fn, *args, limiter=self._limiter)
        except RevisionNotFound:
            fresh = self.source.refresher
            looked = fresh is not None and await anyio.to_thread.run_sync(
                fresh.maybe, 0.0, limiter=self._limiter
            )
            if not looked:
                raise
        return await anyio.to_thread.run_sync(fn, *args, limiter=self._limiter)

    def _fresh(self, fn: Callable[..., T], *args: Any) -> T:
        """``fn(*args)`` once the store has taken note of packs written or deleted since
        the last request (one ``stat`` when there are none): a version a ``dvfs gc``
        deleted meanwhile is unknown here as it is to ``dvfs show``."""
        self.repo.store.refresh()
        return fn(*args)

    # arguments ---------------------------------------------------------------

    @staticmethod
    def text(request: Request, name: str, default: str | None = None) -> str | None:
        value = request.query_params.get(name)
        return default if value is None or value == "" else value

    @staticmethod
    def key(request: Request) -> list[str]:
        """The key of a row diff as given, as ``--key`` takes it: ``key=a,b`` or
        ``key=a&key=b`` (both: a, b; ``vfs.tables.keys``); none if every ``key`` is
        blank. A key naming an empty column (``key=,``, ``key=id,``) is refused by the
        diff, as the CLI's is: it was dropped, and the rows compared by another key or
        by none."""
        return [k for k in request.query_params.getlist("key") if k.strip()]

    @staticmethod
    def rev(request: Request, name: str = "rev") -> str:
        value = request.query_params.get(name, "HEAD") or "HEAD"
        if "\0" in value or len(value) > 1024:
            raise UsageError(f"{name} is not a revision")
        return value

    @staticmethod
    def number(request: Request, name: str, default: int) -> int:
        value = request.query_params.get(name)
        if value is None or value == "":
            return default
        if not (value.isascii() and value.isdigit()):
            raise UsageError(f"{name} must be a whole number, not {value[:40]!r}")
        if len(value) > 12:  # (it said "must be a whole number" of one)
            raise UsageError(f"{name} {value[:40]} is too large: give at most 12 digits")
        return int(value)

    def local_only(self, what: str) -> None:
        """UsageError on a remote's view for what reads a repository's own store."""
        if self.source.remote is not None:
            raise UsageError(
                f"a view of the remote {self.source.remote} shows no {what}: `dvfs clone` "
                "it and run `dvfs ui` in the clone"
            )

    def path(self, request: Request, name: str = "path") -> bytes:
        return arguments.check_path(arguments.query_value(request.scope["query_string"], name))

    # routes ------------------------------------------------------------------

    async def index(self, request: Request) -> Response:
        page = (STATIC / "index.html").read_text()
        if self.csrf is not None:  # the page's actions send it back (see the module doc)
            page = page.replace(SESSION_MARK, f'<meta name="dvfs-csrf" content="{self.csrf}">')
        response = HTMLResponse(page, headers={"cache-control": "no-store"})
        if self.token is not None and request.query_params.get("token") == self.token:
            response.set_cookie(
                cookie_name(request.scope), self.token, httponly=True, samesite="strict"
            )
        return response

    async def versions(self, request: Request) -> Response:
        args = (
            self.text(request, "branch"), self.text(request, "tag"),
            self.text(request, "author"), self.text(request, "q"),
            self.number(request, "offset", 0), self.number(request, "limit", 50),
            self.path(request),
        )  # fmt: skip
        fresh = self.source.refresher
        if fresh is not None:
            await self.run(fresh.maybe)
        answer = await self.run(data.versions, self.repo, *args)
        return json_response({**answer, "source": self.source.description,
                              "remote": self.source.remote is not None,
                              "as_of": fresh.as_of if fresh else None,
                              "refresh_error": fresh.error if fresh else None})  # fmt: skip

    async def version(self, request: Request) -> Response:
        return json_response(await self.run(data.version, self.repo, self.rev(request)))

    async def version_changes(self, request: Request) -> Response:
        answer = await self.run(data.version_changes, self.repo, self.rev(request))
        return json_response(answer)

    async def files(self, request: Request) -> Response:
        args = (self.rev(request), self.path(request, "dir"),
                self.number(request, "offset", 0), self.number(request, "limit", 200))  # fmt: skip
        return json_response(await self.run(data.files, self.repo, *args))

    async def preview(self, request: Request) -> Response:
        args = (self.rev(request), self.path(request),
                self.number(request, "offset", 0), self.number(request, "limit", 50))  # fmt: skip
        columns = self.number(request, "coffset", 0)
        when = request.query_params.get("count")
        if when not in (None, "", "later"):
            raise UsageError(f"count may only be 'later', not {when[:40]!r}")
        count = when != "later"
        answer = await self.run(
            files.preview, self.repo, *args, self.tables, self.source.get, self.source.need,
            columns, count,
        )  # fmt: skip
        return json_response(answer)

    async def raw(self, request: Request) -> Response:
        f = await self.run(files.file_of, self.repo, self.rev(request), self.path(request))
        if self.source.need is not None:  # (a clone lacking it: downloaded, or why not)
            await self.run(self.source.need, f, None)
        name = f.path.rsplit(b"/", 1)[-1].decode("utf-8", "replace")
        disposition = "attachment"
        media = "application/octet-stream"
        if request.query_params.get("inline") == "1":
            mime = files.image_type(await self.run(files.head, self.source.get, f, 16))
            if mime is not None:
                disposition, media = "inline", mime
        headers = {
            "content-disposition": f"{disposition}; filename*=UTF-8''{urllib.parse.quote(name)}",
            "content-length": str(len(f.entry.target) if f.entry.target else f.entry.size),
            "cache-control": "no-store",
        }
        body = await self.run(files.opened, self.source.get, f)
        if request.method == "HEAD":  # the page's check before a download: read no further
            return Response(None, media_type=media, headers=headers)
        return Download(body, media_type=media, headers=headers)

    async def diff(self, request: Request) -> Response:
        args = (self.rev(request, "old"), self.rev(request, "new"),
                self.number(request, "offset", 0), self.number(request, "limit", 200))  # fmt: skip
        return json_response(await self.run(data.diff, self.repo, *args))

    async def rows(self, request: Request) -> Response:
        args = (self.rev(request, "old"), self.rev(request, "new"), self.path(request),
                self.key(request),
                self.number(request, "limit", data.ROWS_SHOWN), self.source.fetcher)  # fmt: skip
        self.local_only("row diffs")
        return json_response(await self.run(data.row_diff, self.repo, *args))

    async def lineage(self, request: Request) -> Response:
        return json_response(await self.run(data.lineage, self.repo, self.rev(request)))

    async def experiments(self, request: Request) -> Response:
        args = (self.text(request, "sort"), self.source.get, self.number(request, "offset", 0),
                self.number(request, "limit", data.EXPERIMENTS_PAGE),
                self.source.fetcher)  # fmt: skip
        answer = await self.run(data.experiments, self.repo, *args)
        return json_response(answer)

    async def store(self, request: Request) -> Response:
        self.local_only("store figures")
        return json_response(await self.run(data.store, self.repo))

    async def audit(self, request: Request) -> Response:
        args = (self.number(request, "offset", 0), self.number(request, "limit", 100))
        self.local_only("audit log")
        return json_response(await self.run(data.audit_log, self.repo, *args))

    def _same_site(self, request: Request) -> bool:
        """The request's CSRF token is the page's, and nothing says it came from
        another site (``Origin``, ``Sec-Fetch-Site``)."""
        offered = request.headers.get(CSRF_HEADER, "").encode("latin-1", "replace")
        if self.csrf is None or not hmac.compare_digest(offered, self.csrf.encode()):
            return False
        origin = request.headers.get("origin")
        if origin is not None and origin != f"{request.url.scheme}://{request.headers.get('host')}":
            return False
        return request.headers.get("sec-fetch-site", "same-origin") == "same-origin"

    async def action(self, request: Request) -> Response:
        """POST /api/actions/NAME: one of ``actions.ACTIONS`` (see the module doc)."""
        name = request.path_params["name"]
        fn = actions.ACTIONS.get(name)
        if fn is None:
            return json_response({"error": f"no such action: {name[:100]}"}, 404)
        if not self.allow_write:
            body = {"error": "this dashboard is read-only: start it with `dvfs ui --allow-write`"}
            return json_response(body, 403)
        if not self._same_site(request):
            body = {"error": "refused: no valid CSRF token from this dashboard's page (reload it)"}
            return json_response(body, 403)
        if request.headers.get("content-type", "").split(";")[0].strip() != "application/json":
            return json_response({"error": "refused: an action's body is JSON"}, 403)
        raw = bytearray()
        async for piece in request.stream():
            raw += piece
            if len(raw) > MAX_ACTION_BODY:
                raise UsageError(f"an action's body is at most {MAX_ACTION_BODY} bytes")
        try:
            args = json.loads(raw)
        except (ValueError, RecursionError):  # (RecursionError: nested past what it takes)
            raise UsageError("an action's body is a JSON object") from None
        if not isinstance(args, dict):
            raise UsageError("an action's body is a JSON object")
        return json_response(await self.run(actions.run, self.repo.root, fn, args))

    async def added(self, request: Request) -> Response:
        args = (self.rev(request), self.path(request, "dir"),
                self.number(request, "offset", 0), self.number(request, "limit", 200))  # fmt: skip
        return json_response(await self.run(data.added, self.repo, *args))

    async def steps(self, request: Request) -> Response:
        given = self.text(request, "offset")
        offset = None if given is None else self.number(request, "offset", 0)
        args = (self.rev(request), self.path(request), offset,
                self.number(request, "limit", data.STEPS_PAGE))  # fmt: skip
        answer = await self.run(data.steps, self.repo, self.source.get, *args, self.source.need)
        return json_response(answer)

    async def mounts(self, request: Request) -> Response:
        return json_response(await self.run(data.mounts, self.source.description))


def make_app(
    source: Source, token: str | None = None, loopback: bool = True, allow_write: bool = False
) -> ASGIApp:
    """The dashboard of ``source``, guarded by ``token`` if given, with its actions if
    ``allow_write`` (see the module doc)."""
    api = Api(source, token, allow_write)
    routes = [
        Route("/", api.index),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
        Route("/api/version/changes", api.version_changes),
        *(
            Route(f"/api/{name}", getattr(api, name))
            for name in (
                "versions",
                "version",
                "files",
                "preview",
                "raw",
                "diff",
                "rows",
                "lineage",
                "experiments",
                "store",
                "audit",
                "mounts",
                "steps",
                "added",
            )
        ),
        Route("/api/actions/{name}", api.action, methods=["POST"]),
    ]  # (a path none of them serves is the router's 404, for any method: http_error)
    handlers = {DvfsError: error_response, HTTPException: http_error, Exception: internal_error}

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await anyio.to_thread.run_sync(api.close)

    app = Starlette(routes=routes, exception_handlers=handlers, lifespan=lifespan)
    return Guard(app, token, loopback)
