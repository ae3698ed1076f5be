"""The review inbox: uncertain pairs grouped into decisions, a group's page, the decision form."""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import RedirectResponse, Response
from starlette.routing import Route

from custpipe.steward import queries, store
from custpipe.steward.views.shared import decided_pairs, hide_values, review_state
from custpipe.steward.web import (
    can_see_values,
    current_user,
    flash,
    form_post,
    page,
    reading,
    render,
)

DECISIONS = {"must_link": "Same customer (must-link)", "cannot_link": "Different (cannot-link)"}
WATERFALL_WIDTH = 560  # px of the chart's drawing area


@page("viewer")
def inbox_page(request: Request) -> Response:
    decided = decided_pairs(request.app.state.store_path)
    with reading(request) as con:
        groups, total = queries.inbox(review_state(request, con), decided)
        run = queries.last_run(con)
    return render(request, "inbox.html", groups=groups, total=total, run=run, pending=len(decided))


def _scale(pairs: list[queries.ReviewPair]) -> dict:
    """Pixels per unit of match weight and the x of weight 0, shared by a group's charts."""
    low, high = 0.0, 0.0
    for p in pairs:
        for bar in p.bars:
            low = min(low, bar.start, bar.start + bar.weight)
            high = max(high, bar.start, bar.start + bar.weight)
    span = (high - low) or 1.0
    return {
        "per_unit": WATERFALL_WIDTH / span,
        "zero": -low * WATERFALL_WIDTH / span,
        "width": WATERFALL_WIDTH,
    }


@page("viewer")
def group_page(request: Request) -> Response:
    a, b = queries.group_key(request.path_params["a"], request.path_params["b"])
    decided = decided_pairs(request.app.state.store_path)
    with reading(request) as con:
        pairs = queries.review_group(review_state(request, con), a, b)
        sides = [
            {"golden_id": g, "golden": queries.golden(con, g), "members": queries.members(con, g)}
            for g in (a, b)
        ]
    if not pairs:
        raise HTTPException(
            404, f"no review pairs between {a} and {b}: decided, or gone since the last nightly run"
        )
    open_pairs = [p for p in pairs if queries.pair_key(p.left, p.right) not in decided]
    if not can_see_values(request):
        sides = [hide_values(side) for side in sides]
    return render(
        request,
        "review.html",
        a=a,
        b=b,
        pairs=pairs,
        open_pairs=len(open_pairs),
        sides=sides,
        fields=queries.RECORD_FIELDS,
        scale=_scale(pairs),
        decisions=DECISIONS,
    )


@form_post("steward")
def decide(request: Request, form: dict[str, str]) -> Response:
    a, b = queries.group_key(request.path_params["a"], request.path_params["b"])
    decision, reason = form.get("decision", ""), form.get("reason", "").strip()
    if decision not in DECISIONS:
        raise HTTPException(400, "choose must-link or cannot-link")
    if not reason:
        raise HTTPException(400, "say why: the reason is kept with the decision")
    path = request.app.state.store_path
    decided = decided_pairs(path)
    with reading(request) as con:
        pairs = queries.review_group(review_state(request, con), a, b)
    todo = [p for p in pairs if queries.pair_key(p.left, p.right) not in decided]
    if not todo:
        raise HTTPException(404, f"nothing left to decide between {a} and {b}")
    who = current_user(request)[0]
    items = [(p.left, p.right, decision, who, reason) for p in todo]
    store.record_decisions(path, items, "workbench")  # all of the group or none
    flash(
        request,
        f"{DECISIONS[decision]} recorded for {len(todo)} pair(s) of {a} and {b}; "
        "the next nightly run applies it.",
    )
    return RedirectResponse("/inbox", status_code=303)


routes = [
    Route("/inbox", inbox_page, methods=["GET"]),
    Route("/review/{a}/{b}", group_page, methods=["GET"]),
    Route("/review/{a}/{b}/decide", decide, methods=["POST"]),
]
