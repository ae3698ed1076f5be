"""Signing in: argon2 passwords or a trusted proxy's header, sessions, a login rate limit.

The session cookie is signed (not encrypted) and holds only the user name, role, CSRF token,
when it was issued and a fingerprint of the user's configuration entry: a changed role or
password ends every session of that user.
"""

from __future__ import annotations

import hashlib
import ipaddress
from datetime import UTC, datetime

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from custpipe.steward import store
from custpipe.steward.config import StewardConfig, User
from custpipe.steward.web import current_user, form_post, render, safe_next

HASHER = PasswordHasher()
# verified against when the user does not exist, so an unknown name costs the same time
_DUMMY_HASH = HASHER.hash("not a password of anyone")


def hash_password(password: str) -> str:
    """An argon2id hash of `password` for the users file."""
    if len(password) < 12:
        raise ValueError("a password needs at least 12 characters")
    return HASHER.hash(password)


def user_epoch(name: str, user: User) -> str:
    """A fingerprint of a user's entry: it changes when the role or password changes."""
    return hashlib.sha256(f"{name}\0{user.role}\0{user.password_hash}".encode()).hexdigest()[:16]


def verify_password(user: User | None, password: str) -> bool:
    """True when `password` matches the user's hash (the same work for an unknown user)."""
    stored = user.password_hash if user is not None else None
    try:
        matched = HASHER.verify(stored or _DUMMY_HASH, password)
    except (VerificationError, InvalidHashError):
        return False
    return matched and stored is not None


def client_address(request: Request) -> str:
    return request.client.host if request.client else "unknown"


def _trusted(address: str, proxies: tuple[str, ...]) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in ipaddress.ip_network(p, strict=False) for p in proxies)


class Authentication:
    """ASGI middleware: puts (user, role) of a valid session or trusted proxy header on
    `request.state.user`; an expired or outdated session is cleared."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            request = Request(scope)
            request.state.user = resolve_user(request)
        await self.app(scope, receive, send)


def resolve_user(request: Request) -> tuple[str, str] | None:
    """(user, role) for the request, or None."""
    cfg: StewardConfig = request.app.state.steward_config
    users: dict[str, User] = request.app.state.users()
    if cfg.auth == "remote_user":
        name = request.headers.get(cfg.remote_user_header)
        if name and _trusted(client_address(request), cfg.trusted_proxies) and name in users:
            return name, users[name].role
        return None
    session = request.session
    name = session.get("user")
    if not name:
        return None
    user = users.get(name)
    clock = request.app.state.clock
    expired = clock() - float(session.get("issued_at", 0)) > cfg.session_hours * 3600
    if user is None or expired or session.get("epoch") != user_epoch(name, user):
        for key in ("user", "role", "issued_at", "epoch"):
            session.pop(key, None)
        return None
    return name, user.role


async def login_page(request: Request) -> Response:
    if current_user(request):
        return RedirectResponse(safe_next(request.query_params.get("next", "/")), 303)
    cfg: StewardConfig = request.app.state.steward_config
    return render(
        request,
        "login.html",
        next=safe_next(request.query_params.get("next", "/")),
        remote_user=cfg.auth == "remote_user",
    )


@form_post(None)
def login(request: Request, form: dict[str, str]) -> Response:
    app = request.app.state
    cfg: StewardConfig = app.steward_config
    name, password = form.get("username", "").strip(), form.get("password", "")
    client = client_address(request)
    now = app.clock()
    since = datetime.fromtimestamp(now - cfg.login_window_minutes * 60, UTC)
    target = safe_next(form.get("next", "/"))
    if cfg.auth == "remote_user":
        return render(request, "login.html", 400, remote_user=True, next=target)
    if store.login_failures_since(app.store_path, name, client, since) >= cfg.login_attempts:
        store.audit(app.store_path, name or "-", "login_limited", client, {})
        response = render(
            request,
            "login.html",
            429,
            error="Too many failed sign-ins. Wait a few minutes and try again, or ask an "
            "admin to check your account.",
            next=target,
        )
        response.headers["Retry-After"] = str(cfg.login_window_minutes * 60)
        return response
    user = app.users().get(name)
    if not verify_password(user, password):
        store.record_login_failure(app.store_path, name, client, datetime.fromtimestamp(now, UTC))
        store.audit(app.store_path, name or "-", "login_failed", client, {})
        return render(request, "login.html", 401, error="Wrong user or password.", next=target)
    store.clear_login_failures(app.store_path, name)
    store.prune_login_failures(app.store_path, since)  # older ones no longer count
    store.audit(app.store_path, name, "login", client, {"role": user.role})
    request.session.clear()  # a new session (and CSRF token) at every sign-in
    request.session.update({"user": name, "issued_at": now, "epoch": user_epoch(name, user)})
    return RedirectResponse(target, status_code=303)


@form_post("viewer")
def logout(request: Request, form: dict[str, str]) -> Response:
    user = current_user(request)
    store.audit(request.app.state.store_path, user[0], "logout", "", {})
    request.session.clear()
    return RedirectResponse("/login", status_code=303)


routes = [
    Route("/login", login_page, methods=["GET"]),
    Route("/login", login, methods=["POST"]),
    Route("/logout", logout, methods=["POST"]),
]
