"""The web application ``asyncflow serve`` runs (Starlette; imported only by
:mod:`._serve`, once it has checked that the ``ui`` extra is installed).

Routes (all GET):

- ``/``: the run list, filtered by the query parameters ``flow``, ``status`` and ``tag``;
- ``/runs/{flow}/{run_id}``: the run's report page, which fetches its model again from
  ``/api/runs/{flow}/{run_id}`` while the run is going;
- ``/api/runs``: the run list as JSON (same filters); ``/api/runs/{flow}/{run_id}``: the
  run's model (see ``_model``) as JSON.

Every read of the store runs in a worker thread, never on the server's event loop, through
the client, which opens the store read-only. Every response carries a Content-Security-Policy
(the report page's allows exactly its own inline scripts, by hash, and fetches from this
server only), and requests whose ``Host`` is not this machine's loopback name are refused
unless the server was asked to listen beyond it (a web page elsewhere that renames itself to
127.0.0.1, DNS rebinding, cannot read the store).
"""

from __future__ import annotations

import base64
import hashlib
import ipaddress
import re
from collections.abc import Callable
from typing import Any
from urllib.parse import quote

import anyio
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from .._client import Flow
from .._errors import AsyncflowError, NotFoundError
from ._runs import RunFilter, list_runs, run_url
from ._serve_html import error_page, runs_page

__all__ = ["LIVE_INTERVAL_MS", "LOOPBACK_NAMES", "host_allowed", "make_app", "page_policy"]

# How often a run page fetches its model again while the run is going.
LIVE_INTERVAL_MS = 1000
# How many run pages (the heavy reads) are read at once; the others wait their turn.
HEAVY_AT_ONCE = 2
# The Host names a request to a server on the loopback interface may carry.
LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]"})

_BASE_POLICY = (
    "default-src 'none'; img-src data:; style-src 'unsafe-inline'; base-uri 'none'; "
    "form-action 'self'; frame-ancestors 'none'"
)
_SCRIPT = re.compile(r"<script(?P<attrs>[^>]*)>(?P<body>.*?)</script>", re.DOTALL | re.I)


def page_policy(page: str) -> str:
    """The Content-Security-Policy for an HTML page: no script at all, or, for a page with
    inline scripts (the report page), exactly those (by their sha256) and fetches from this
    server."""
    hashes = []
    for found in _SCRIPT.finditer(page):
        if "application/json" in found.group("attrs"):
            continue  # data, never run
        digest = hashlib.sha256(found.group("body").encode("utf-8", "replace")).digest()
        hashes.append(f"'sha256-{base64.b64encode(digest).decode('ascii')}'")
    if not hashes:
        return _BASE_POLICY
    return f"{_BASE_POLICY}; script-src {' '.join(hashes)}; connect-src 'self'"


def _html(page: str, status: int = 200) -> Response:
    return Response(
        page.encode("utf-8", "replace"),  # a lone surrogate from a store becomes '?'
        status_code=status,
        media_type="text/html; charset=utf-8",
        headers={"Content-Security-Policy": page_policy(page)},
    )


def _json(data: Any, status: int = 200) -> Response:
    # As the page embeds its model (one rule: embed_json): <, >, & as \u escapes, a lone
    # surrogate as the text of its escape, NaN as null.
    from ._page import embed_json

    text = embed_json(data)
    return Response(text.encode("utf-8"), status_code=status, media_type="application/json")


def _problem(exc: AsyncflowError, api: bool) -> Response:
    status = 404 if isinstance(exc, NotFoundError) else 500
    title = "not found" if status == 404 else "cannot read the store"
    if api:
        return _json({"error": type(exc).__name__, "message": str(exc)}, status)
    return _html(error_page(title, str(exc)), status)


def _read_model(store: str, flow: str, run_id: str) -> dict[str, Any]:
    """The model of run ``flow/run_id`` (blocking: run it in a worker thread)."""
    from ._model import build_model

    with Flow(flow, store) as opened:
        return build_model(opened[run_id])


def _run_page(model: dict[str, Any], flow: str, run_id: str) -> str:
    from ._page import render_page

    live = {"url": run_url(flow, run_id, api=True), "interval_ms": LIVE_INTERVAL_MS}
    return render_page(model, live=live)


def make_app(store: str, *, hosts: frozenset[str] = frozenset()) -> ASGIApp:
    """The application serving the runs of the store file ``store``.

    :param hosts: the host names (lower case) it answers requests to besides localhost and
        any IP address (see :func:`host_allowed`): this machine's names and ``--allow-host``
        names when it listens beyond the loopback interface.
    """

    async def runs(request: Request) -> Response:
        where = RunFilter.from_query(dict(request.query_params))
        api = request.url.path.startswith("/api/")
        try:
            listing = await run_in_threadpool(list_runs, store, where)
        except AsyncflowError as exc:
            return _problem(exc, api)
        return _json(listing) if api else _html(runs_page(listing))

    # Run pages are the heavy reads (a 10,000-task run: tenths of a second each): a few at
    # once, the others waiting on the loop, so that the worker threads stay free for the
    # cheap requests (the list, a 404) however many run pages are asked for at once.
    heavy = anyio.Semaphore(HEAVY_AT_ONCE)

    async def run(request: Request) -> Response:
        flow, run_id = request.path_params["flow"], request.path_params["run_id"]
        api = request.url.path.startswith("/api/")
        async with heavy:
            try:
                model = await run_in_threadpool(_read_model, store, flow, run_id)
            except AsyncflowError as exc:
                return _problem(exc, api)
            if api:
                return _json(model)
            return _html(await run_in_threadpool(_run_page, model, flow, run_id))

    async def missing(request: Request, exc: Exception) -> Response:
        status = exc.status_code if isinstance(exc, HTTPException) else 500
        path = quote(request.url.path, safe="/")
        text = (
            f"there is no page at {path}: the runs are listed at /, each run at "
            "/runs/FLOW/RUN_ID (and as JSON at /api/runs and /api/runs/FLOW/RUN_ID)"
            if status == 404
            else f"{request.method} {path}: this server only answers GET requests"
        )
        if request.url.path.startswith("/api/"):
            return _json({"error": "HTTPException", "message": text}, status)
        return _html(error_page("not found" if status == 404 else "not allowed", text), status)

    app = Starlette(
        routes=[
            Route("/", runs),
            Route("/api/runs", runs),
            Route("/runs/{flow:path}/{run_id}", run),
            Route("/api/runs/{flow:path}/{run_id}", run),
        ],
        exception_handlers={HTTPException: missing},
    )
    return _Guard(app, hosts)


def _host_name(header: str) -> str:
    """The name of a ``Host`` header, without its port (``[::1]:8000`` -> ``[::1]``)."""
    header = header.strip().lower()
    if header.startswith("["):
        return header.split("]", 1)[0] + "]"
    return header.rsplit(":", 1)[0] if header.count(":") == 1 else header


def host_allowed(name: str, hosts: frozenset[str]) -> bool:
    """Whether a request addressed to ``name`` (a ``Host`` without its port) is answered:
    localhost, any IP address (a page of another site cannot make a browser send one it
    did not load itself from), or one of ``hosts``. Any other name could be a site's own
    name made to point at this machine (DNS rebinding), so that its pages read the store."""
    if name in LOOPBACK_NAMES or name in hosts:
        return True
    try:
        ipaddress.ip_address(name.removeprefix("[").removesuffix("]"))
    except ValueError:
        return False
    return True


class _Guard:
    """Around the application: refuses requests addressed to a host name it does not
    answer to (see :func:`host_allowed`) and adds the security headers to every response
    (a Content-Security-Policy when the response has none of its own)."""

    def __init__(self, app: ASGIApp, hosts: frozenset[str]) -> None:
        self._app = app
        self._hosts = hosts

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self._app(scope, receive, send)
            return
        headers = dict(scope.get("headers") or [])
        host = headers.get(b"host", b"").decode("latin-1")
        if not host_allowed(_host_name(host), self._hosts):
            text = (
                f"this server answers requests addressed to an IP address, localhost or a "
                f"name it was given, not to {host!r} (another site's page could otherwise "
                "read the store through a name that points here); open it by its address, "
                "or start it with --allow-host NAME to answer to that name"
            )
            await _html(error_page("wrong host", text), 421)(scope, receive, send)
            return
        await self._app(scope, receive, _secured(send))


def _secured(send: Send) -> Callable[[Message], Any]:
    async def wrapped(message: Message) -> None:
        if message["type"] == "http.response.start":
            headers = list(message.get("headers") or [])
            names = {name.lower() for name, _ in headers}
            extra = [
                (b"content-security-policy", _BASE_POLICY.encode()),
                (b"x-content-type-options", b"nosniff"),
                (b"referrer-policy", b"no-referrer"),
                (b"x-frame-options", b"DENY"),
                (b"cache-control", b"no-store"),
            ]
            headers += [(name, value) for name, value in extra if name not in names]
            message = {**message, "headers": headers}
        await send(message)

    return wrapped
