"""What every page shares: who is signed in, role guards, CSRF on forms, rendering, reading.

Every GET handler is wrapped in `page(role)`, every POST handler in `form_post(role)`: the
only two ways a view reaches a request, so a test can check that every route has one.
"""

from __future__ import annotations

import functools
import hmac
import inspect
import secrets
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import quote, urlsplit

import duckdb
from starlette.concurrency import run_in_threadpool
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.templating import Jinja2Templates

from custpipe import warehouse
from custpipe.steward.config import role_at_least

TEMPLATES = Jinja2Templates(directory=str(Path(__file__).parent / "templates"))
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
#: how long a page waits for the nightly run's lock on the warehouse before answering 503
READ_LOCK_WAIT_SECONDS = 2.0

Handler = Callable[[Request], Awaitable[Response]]
View = Callable[..., Response]


class WarehouseBusy(Exception):
    """The nightly run holds the warehouse: the page cannot be read now."""


class NoWarehouse(Exception):
    """No nightly run has written the warehouse yet."""


def csrf_token(request: Request) -> str:
    """The session's CSRF token (created on first use)."""
    token = request.session.get("csrf")
    if not token:
        token = request.session["csrf"] = secrets.token_urlsafe(32)
    return token


def current_user(request: Request) -> tuple[str, str] | None:
    """(user, role) of the request, set by the authentication middleware; None: anonymous."""
    return getattr(request.state, "user", None)


def can_see_values(request: Request) -> bool:
    """Customer values (names, e-mails, phones, tax IDs) only for stewards and admins."""
    user = current_user(request)
    return user is not None and role_at_least(user[1], "steward")


def render(request: Request, template: str, status_code: int = 200, **context) -> Response:
    """A page from `templates/`, with the user, role and CSRF token every page needs."""
    user = current_user(request)
    context.setdefault("notice", request.session.pop("notice", None))
    context |= {
        "user": user[0] if user else None,
        "role": user[1] if user else None,
        "values": can_see_values(request),
        "csrf_token": csrf_token(request),
        "csrf_field": CSRF_FIELD,
        "path": request.url.path,
    }
    return TEMPLATES.TemplateResponse(request, template, context, status_code=status_code)


def _guard(request: Request, role: str) -> Response | None:
    user = current_user(request)
    if user is None:
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(safe_next(target))}", status_code=303)
    if not role_at_least(user[1], role):
        raise HTTPException(403, f"this needs the {role} role; you are signed in as {user[1]}")
    return None


async def _call(handler: Callable, *args) -> Response:
    """An async view awaited, a plain one run in a worker thread."""
    if inspect.iscoroutinefunction(handler):
        return await handler(*args)
    return await run_in_threadpool(handler, *args)


def page(role: str) -> Callable[[View], Handler]:
    """A GET page for `role` and above; anonymous visitors are sent to the login page.

    A plain view function runs in a worker thread: its warehouse reads and password checks
    never stall the other requests.
    """

    def wrap(handler: View) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            return _guard(request, role) or await _call(handler, request)

        guarded.steward_guard = ("page", role)
        return guarded

    return wrap


def _same_origin(request: Request) -> bool:
    """False when the browser says the form came from another site (Origin, Sec-Fetch-Site)."""
    site = request.headers.get("sec-fetch-site")
    if site is not None and site not in ("same-origin", "none"):
        return False
    origin = request.headers.get("origin")
    if origin is None:  # a client that sends no Origin: the session-bound token decides
        return True
    return urlsplit(origin).netloc == request.headers.get("host", request.url.netloc)


async def check_csrf(request: Request) -> dict[str, str]:
    """The posted form, after checking its CSRF token and origin (403 otherwise)."""
    form = await request.form()
    sent = request.headers.get(CSRF_HEADER) or str(form.get(CSRF_FIELD, ""))
    expected = request.session.get("csrf", "")
    if not expected or not sent or not hmac.compare_digest(sent.encode(), expected.encode()):
        raise HTTPException(403, "the form's security token is missing or stale: reload the page")
    if not _same_origin(request):
        raise HTTPException(403, "the form was sent from another site")
    return {k: str(v) for k, v in form.items() if k != CSRF_FIELD}


def form_post(role: str | None) -> Callable[[View], Handler]:
    """A POST handler for `role` and above (None: anyone, e.g. the login form), CSRF-checked.

    The handler is called as `handler(request, form)` with the checked form fields (a plain
    function in a worker thread).
    """

    def wrap(handler: View) -> Handler:
        @functools.wraps(handler)
        async def guarded(request: Request) -> Response:
            form = await check_csrf(request)
            if role is not None:
                denied = _guard(request, role)
                if denied is not None:
                    return denied
            return await _call(handler, request, form)

        guarded.steward_guard = ("form_post", role)
        return guarded

    return wrap


def flash(request: Request, message: str) -> None:
    """A one-time notice shown on the next page (e.g. after a decision)."""
    request.session["notice"] = message


def safe_next(target: str) -> str:
    """A local path to return to after login (never another site)."""
    if not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    return target


@contextmanager
def reading(request: Request) -> Iterator[duckdb.DuckDBPyConnection]:
    """A read-only connection to the warehouse for one request.

    Held only while the page is built (milliseconds), so the nightly run waits at most that
    long for it; while a nightly step holds the warehouse the page answers 503 instead.
    """
    path = request.app.state.settings.warehouse_path
    if not Path(path).exists():
        raise NoWarehouse()
    try:
        with warehouse.connect(path, read_only=True, lock_timeout=READ_LOCK_WAIT_SECONDS) as con:
            yield con
    except warehouse.WarehouseLockedError as exc:
        raise WarehouseBusy() from exc
