"""Golden record search and page: members, who supplied each attribute, ID history, unmerge."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from custpipe.steward import queries, store
from custpipe.steward.views.shared import imported_ids, strip_record
from custpipe.steward.web import (
    can_see_values,
    current_user,
    flash,
    form_post,
    page,
    reading,
    render,
)

SEARCH_LABELS = {
    "auto": "anything",
    "name": "name",
    "tax_id": "tax ID",
    "email": "e-mail",
    "phone": "phone",
    "record": "source record (system:id)",
    "source_id": "source id",
    "golden_id": "golden ID",
}


@page("viewer")
def search_page(request: Request) -> Response:
    query = request.query_params.get("q", "").strip()
    kind = request.query_params.get("by", "auto")
    allowed = (
        SEARCH_LABELS
        if can_see_values(request)
        else {k: v for k, v in SEARCH_LABELS.items() if k in ("auto", *queries.ID_KINDS)}
    )
    if kind not in allowed:
        raise HTTPException(400, f"searching by {kind} is not available to your role")
    results, used, message = [], [], None
    if query:
        wanted = queries.search_kinds(query) if kind == "auto" else (kind,)
        used = [k for k in wanted if k in allowed] or ["source_id"]  # a viewer: ids only
        with reading(request) as con:
            found = {r["golden_id"]: r for k in used for r in queries.search(con, query, k)}
        results = [found[g] for g in sorted(found)][:50]
        if not can_see_values(request):
            results = [strip_record(r) for r in results]
        if not results:
            message = "No golden record found."
    template = "golden_results.html" if request.headers.get("HX-Request") else "golden_search.html"
    return render(
        request,
        template,
        q=query,
        by=kind,
        used=used,
        kinds=allowed,
        results=results,
        message=message,
        labels=SEARCH_LABELS,
    )


@page("viewer")
def golden_page(request: Request) -> Response:
    golden_id = request.path_params["golden_id"]
    with reading(request) as con:
        row = queries.golden(con, golden_id)
        members = queries.members(con, golden_id)
        events = queries.history(con, golden_id)
        imported = imported_ids(con)
    if row is None and not events:
        raise HTTPException(404, f"no golden record {golden_id}")
    if not can_see_values(request):
        row, members = strip_record(row), [strip_record(m) for m in members]
    pending = store.pending_pairs(request.app.state.store_path, imported)
    member_records = {m["record"] for m in members}
    return render(
        request,
        "golden.html",
        golden_id=golden_id,
        golden=row,
        members=members,
        events=events,
        fields=queries.RECORD_FIELDS,
        pending_splits={r for r, _, kind in pending if kind == "split_out"} & member_records,
    )


@form_post("steward")
def split_out(request: Request, form: dict[str, str]) -> Response:
    golden_id = request.path_params["golden_id"]
    record, reason = form.get("record", ""), form.get("reason", "").strip()
    if not reason:
        raise HTTPException(400, "say why the record is a different customer")
    with reading(request) as con:
        members = {m["record"] for m in queries.members(con, golden_id)}
    if record not in members:
        raise HTTPException(404, f"{record} is not a member of {golden_id}")
    if len(members) < 2:
        raise HTTPException(400, f"{golden_id} has one member: nothing to split")
    store.record_split(
        request.app.state.store_path,
        record,
        golden_id,
        current_user(request)[0],
        reason,
        "workbench",
    )
    flash(request, f"{record} will be split out of {golden_id} by the next nightly run.")
    return RedirectResponse(f"/golden/{golden_id}", status_code=303)


routes = [
    Route("/golden", search_page, methods=["GET"]),
    Route("/golden/{golden_id}", golden_page, methods=["GET"]),
    Route("/golden/{golden_id}/split", split_out, methods=["POST"]),
]
