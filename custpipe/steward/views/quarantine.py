"""The quarantine work list: held-back records by source and rule, the fix, an export per source."""

from __future__ import annotations

import pandas as pd
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from custpipe.csv_safe import safe_for_spreadsheet
from custpipe.steward import queries, store
from custpipe.steward.web import can_see_values, current_user, page, reading, render


@page("viewer")
def summary_page(request: Request) -> Response:
    with reading(request) as con:
        rows = queries.quarantine_summary(con)
    by_source: dict[str, list[dict]] = {}
    for row in rows:
        by_source.setdefault(row["source_system"], []).append(row)
    return render(request, "quarantine.html", by_source=by_source)


@page("viewer")
def source_page(request: Request) -> Response:
    source = request.path_params["source"]
    with reading(request) as con:
        rules = [r for r in queries.quarantine_summary(con) if r["source_system"] == source]
        records = queries.quarantined_records(con, source)
    if not rules:
        raise HTTPException(404, f"nothing of {source} is held back")
    if not can_see_values(request):
        records = [{k: v for k, v in r.items() if k != "name"} for r in records]
    return render(request, "quarantine_source.html", source=source, rules=rules, records=records)


@page("steward")
def export(request: Request) -> Response:
    source = request.path_params["source"]
    with reading(request) as con:
        rows = queries.quarantine_export(con, source)
    if not rows:
        raise HTTPException(404, f"nothing of {source} is held back")
    text = safe_for_spreadsheet(pd.DataFrame(rows)).to_csv(index=False, lineterminator="\r\n")
    store.audit(
        request.app.state.store_path,
        current_user(request)[0],
        "export",
        f"quarantine:{source}",
        {"rows": len(rows)},
    )
    return Response(
        text,
        media_type="text/csv; charset=utf-8",
        headers={"Content-Disposition": f'attachment; filename="quarantine_{source}.csv"'},
    )


routes = [
    Route("/quarantine", summary_page, methods=["GET"]),
    Route("/quarantine/{source}", source_page, methods=["GET"]),
    Route("/quarantine/{source}/export.csv", export, methods=["GET"]),
]
