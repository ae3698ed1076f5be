"""The Rules pages (custpipe's own offline Data Docs) and the scorecard trend, for viewers up.

Thin: the figures come from `custpipe.steward.rules` and `custpipe.quality.scorecard`; no
customer value is read, so every role sees the same page.
"""

from __future__ import annotations

from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from custpipe.config import PipelineConfig, load_config
from custpipe.quality import scorecard
from custpipe.steward import rules
from custpipe.steward.web import NoWarehouse, page, reading, render

#: business dates the scorecard page shows by default, and at most (?dates=N)
SCORECARD_DATES, MAX_DATES = 14, 90


def _pipeline(request: Request) -> PipelineConfig:
    return load_config(request.app.state.settings.config_dir)


def _suites(request: Request, cfg: PipelineConfig) -> list[rules.SuiteStatus]:
    """Every suite with its latest validation (the suites alone before the first night)."""
    settings = request.app.state.settings
    args = (settings.expectations_dir, settings.gx_dir, list(cfg.sources))
    rate = cfg.quality.max_quarantine_rate
    try:
        with reading(request) as con:
            return rules.suites(con, *args, max_quarantine_rate=rate)
    except NoWarehouse:
        return rules.suites(None, *args, max_quarantine_rate=rate)


@page("viewer")
def rules_page(request: Request) -> Response:
    cfg = _pipeline(request)
    return render(
        request,
        "rules.html",
        suites=_suites(request, cfg),
        values_in_docs=cfg.quality.include_values_in_docs,
    )


@page("viewer")
def suite_page(request: Request) -> Response:
    key = request.path_params["suite"]
    cfg = _pipeline(request)
    found = next((s for s in _suites(request, cfg) if s.key == key), None)
    if found is None:
        raise HTTPException(404, f"there is no suite {key!r} in expectations/")
    return render(
        request,
        "rules_suite.html",
        suite=found,
        rules=sorted(found.rules, key=rules.severity_order),
        values_in_docs=cfg.quality.include_values_in_docs,
    )


def _dates(request: Request) -> int:
    try:
        wanted = int(request.query_params.get("dates", SCORECARD_DATES))
    except ValueError:
        return SCORECARD_DATES
    return min(max(wanted, 1), MAX_DATES)


@page("viewer")
def scorecard_page(request: Request) -> Response:
    cfg = _pipeline(request)
    settings = request.app.state.settings
    with reading(request) as con:
        trend = scorecard.business_trend(
            con, _dates(request), max_quarantine_rate=cfg.quality.max_quarantine_rate
        )
    sources = list(cfg.sources)
    links = {s: rules.suite_key_for(s, settings.expectations_dir, sources) for s in trend.sources}
    return render(
        request,
        "scorecard.html",
        trend=trend,
        links=links,
        points=scorecard.sparkline_points,
        max_quarantine_rate=cfg.quality.max_quarantine_rate,
    )


routes = [
    Route("/rules", rules_page, methods=["GET"]),
    Route("/rules/{suite}", suite_page, methods=["GET"]),
    Route("/scorecard", scorecard_page, methods=["GET"]),
]
