"""The audit log (admins): every sign-in, decision, unmerge and export, who and when."""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from custpipe.steward import store
from custpipe.steward.web import page, render


@page("admin")
def audit_page(request: Request) -> Response:
    actor = request.query_params.get("actor") or None
    entries = store.audit_entries(request.app.state.store_path, limit=500, actor=actor)
    return render(request, "audit.html", entries=entries, actor=actor)


routes = [Route("/audit", audit_page, methods=["GET"])]
