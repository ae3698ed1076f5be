"""The stewards' workbench: a Starlette application of server-rendered pages and forms.

Pages read the warehouse through short read-only connections (`web.reading`); decisions,
unmerges and the audit log go to the steward store (`store.py`), which the nightly run
imports. The application never writes the warehouse.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from pathlib import Path

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Mount, Route
from starlette.staticfiles import StaticFiles
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from custpipe.config import ConfigError
from custpipe.settings import Settings
from custpipe.steward import auth, store
from custpipe.steward.config import (
    StewardConfig,
    User,
    load_steward_config,
    load_users,
    session_secret,
    users_path,
)
from custpipe.steward.web import NoWarehouse, WarehouseBusy, render

log = logging.getLogger(__name__)
STATIC = Path(__file__).parent / "static"
COOKIE = "custpipe_steward"
CONTENT_SECURITY_POLICY = (
    "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; "
    "connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)


class SecurityHeaders:
    """Headers on every response: a strict CSP (everything from this server), no framing,
    no referrer to other sites (with "no-referrer" browsers send `Origin: null` on forms,
    which the CSRF check rejects), and no caching of pages (they may hold customer values)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        static = scope["path"].startswith("/static/")

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers", []))
                headers += [
                    (b"content-security-policy", CONTENT_SECURITY_POLICY.encode()),
                    (b"x-frame-options", b"DENY"),
                    (b"x-content-type-options", b"nosniff"),
                    (b"referrer-policy", b"same-origin"),
                ]
                if not static:
                    headers.append((b"cache-control", b"no-store"))
                message["headers"] = headers
            await send(message)

        await self.app(scope, receive, send_with_headers)


def _users_loader(path: Path) -> Callable[[], dict[str, User]]:
    """The users file, read again when it changes (a new user needs no restart). A file
    broken by an edit keeps the users read before, and the error is logged once."""
    cache: dict[str, object] = {"mtime": None, "users": {}}

    def users() -> dict[str, User]:
        mtime = path.stat().st_mtime_ns if path.exists() else None
        if mtime != cache["mtime"]:
            cache["mtime"] = mtime
            try:
                cache["users"] = load_users(path)
            except ConfigError as exc:
                log.error("%s — the workbench keeps the users it read before; fix the file", exc)
        return cache["users"]  # type: ignore[return-value]

    return users


async def _http_error(request: Request, exc: HTTPException) -> Response:
    headings = {403: "Not allowed", 404: "Not found", 400: "Cannot do that", 405: "Not allowed"}
    return render(
        request,
        "error.html",
        exc.status_code,
        heading=headings.get(exc.status_code, "Error"),
        message=exc.detail,
    )


async def _busy(request: Request, exc: WarehouseBusy) -> Response:
    response = render(
        request,
        "error.html",
        503,
        heading="The nightly run is writing the warehouse",
        message="This page is back when the current step finishes (usually within a minute). "
        "Decisions you already made are kept.",
    )
    response.headers["Retry-After"] = "30"
    return response


async def _no_warehouse(request: Request, exc: NoWarehouse) -> Response:
    return render(
        request,
        "error.html",
        503,
        heading="No nightly run yet",
        message="The warehouse does not exist yet: run the nightly job (`make demo` or "
        "`custpipe run`) and come back.",
    )


async def _home(request: Request) -> Response:
    return RedirectResponse("/inbox", status_code=303)


def build_app(
    settings: Settings,
    steward_config: StewardConfig | None = None,
    clock: Callable[[], float] = time.time,
    https: bool = False,
) -> Starlette:
    """The workbench for a deployment; `https` marks the session cookie Secure."""
    from custpipe.steward.views import routes as view_routes

    cfg = steward_config or load_steward_config(settings)
    secret, _ = session_secret()
    secure = cfg.secure_cookies if cfg.secure_cookies is not None else https
    app = Starlette(
        routes=[
            Route("/", _home),
            *auth.routes,
            *view_routes(),
            Mount("/static", StaticFiles(directory=STATIC), name="static"),
        ],
        middleware=[
            Middleware(SecurityHeaders),
            Middleware(
                SessionMiddleware,
                secret_key=secret,
                session_cookie=COOKIE,
                max_age=int(cfg.session_hours * 3600),
                same_site="strict",
                https_only=secure,
            ),
            Middleware(auth.Authentication),
        ],
        exception_handlers={
            HTTPException: _http_error,
            WarehouseBusy: _busy,
            NoWarehouse: _no_warehouse,
        },
    )
    app.state.settings = settings
    app.state.steward_config = cfg
    app.state.users = _users_loader(users_path(settings, cfg))
    app.state.store_path = store.store_path(settings)
    app.state.clock = clock
    app.state.review_cache = {}  # the review queue per warehouse version (views.shared)
    return app
