"""The data-quality scorecard over time: reconciliation rows, the trend by business date, the
nightly's static trend page (``data/reports/scorecard.html``).

The trend has one column per **business date** (``ops.stage_runs`` gives each run its date;
a date run twice shows its last run and says so), one row per source and problem (a rule of
the suite, a mapping rule or an order finding, each counted once: see
:func:`custpipe.quality.quarantine.already_held`), and marks the nights a source was
**blocked** (a failed block rule, the volume check, or a quarantine rate above the limit).
Counts only: no customer value is read.
"""

from __future__ import annotations

import html
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb

#: business dates the trend shows unless told otherwise
DEFAULT_DATES = 10


def add_reconciliation_rows(con: duckdb.DuckDBPyConnection, run_id: str) -> int:
    """Record this run's order findings by kind as scorecard rows of the pseudo-source 'orders'."""
    con.execute(
        "DELETE FROM quality.scorecard WHERE run_id = ? AND source_system = 'orders' "
        "AND rule LIKE 'recon:%'",
        [run_id],
    )
    con.execute(
        """
        INSERT INTO quality.scorecard
        WITH total AS (SELECT count(DISTINCT order_number) AS n FROM staging.orders)
        SELECT ?, timezone('UTC', now()), 'orders', 'recon:' || d.kind, 'warn', t.n, count(*),
               CASE WHEN t.n = 0 THEN 1.0 ELSE 1.0 - count(*) / t.n END
        FROM recon.order_discrepancies d, total t GROUP BY d.kind, t.n
    """,
        [run_id],
    )
    return con.execute(
        "SELECT count(*) FROM quality.scorecard WHERE run_id = ? AND source_system = 'orders'",
        [run_id],
    ).fetchone()[0]


@dataclass(frozen=True)
class Night:
    """One source on one business date: its last run there, and whether any run was blocked."""

    rows: int | None  # records validated (None: the pseudo-source 'orders')
    quarantined: int | None
    pass_rate: float | None  # mean pass rate of the source's rules in the last run
    runs: int  # runs of this business date (a rerun after a blocked night makes two)
    blocked_by: tuple[str, ...]  # what blocked the last run (empty: not blocked)
    blocked_before: int  # earlier runs of the date that were blocked

    @property
    def blocked(self) -> bool:
        """The last run of the date was blocked: nothing of the source was published."""
        return bool(self.blocked_by)

    @property
    def state(self) -> str:
        """'blocked', 'rerun' (blocked, then a rerun passed) or 'ok'."""
        if self.blocked:
            return "blocked"
        return "rerun" if self.blocked_before else "ok"


@dataclass(frozen=True)
class Problem:
    """One rule of one source over the business dates: failed rows per date (None: no run)."""

    source: str
    rule: str
    severity: str
    failed: tuple[int | None, ...]
    evaluated: tuple[int | None, ...]

    @property
    def latest(self) -> int | None:
        """Failed rows on the last business date with a run."""
        return next((f for f in reversed(self.failed) if f is not None), None)


@dataclass(frozen=True)
class Trend:
    """The scorecard by business date, oldest first."""

    dates: tuple[date, ...]
    sources: tuple[str, ...]
    nights: dict[tuple[str, date], Night]
    problems: tuple[Problem, ...]  # rules that failed on at least one of the dates

    def night(self, source: str, day: date) -> Night | None:
        """The source's night on `day` (None: no run of the source that date)."""
        return self.nights.get((source, day))

    def blocked_nights(self) -> list[tuple[str, date]]:
        """(source, date) of every night whose last run was blocked."""
        return [k for k, n in self.nights.items() if n.blocked]


_RUN_DATES = """
    run_dates AS (SELECT run_id, max(business_date) AS business_date
                  FROM ops.stage_runs WHERE business_date IS NOT NULL GROUP BY run_id)"""


def business_trend(
    con: duckdb.DuckDBPyConnection,
    last_dates: int = DEFAULT_DATES,
    max_quarantine_rate: float = 0.2,
) -> Trend:
    """The last `last_dates` business dates of the scorecard (a run without an ops.stage_runs
    row counts on the UTC date it ran): per source and date its last run, per problem the
    rows it failed; a night is blocked by a failed block rule (`quality.validation_runs.
    success`), the volume check (`volume_ok`) or a quarantine rate above
    `max_quarantine_rate` — the blocking checks `suite_passes` and `volume_stable`."""
    runs = con.execute(
        f"""
        WITH {_RUN_DATES},
        card AS (SELECT source_system, run_id, min(run_at) AS run_at, avg(pass_rate) AS pass_rate
                 FROM quality.scorecard GROUP BY ALL),
        val AS (SELECT source_system, run_id, max(validated_at) AS run_at, max(rows) AS rows,
                       max(quarantined) AS quarantined, bool_and(success) AS success,
                       bool_and(volume_ok) AS volume_ok
                FROM quality.validation_runs GROUP BY ALL),
        runs AS (SELECT source_system, run_id, coalesce(v.run_at, c.run_at) AS run_at,
                        c.pass_rate, v.rows, v.quarantined, v.success, v.volume_ok
                 FROM card c FULL OUTER JOIN val v USING (source_system, run_id)),
        dated AS (SELECT r.*, coalesce(d.business_date, CAST(r.run_at AS DATE)) AS day
                  FROM runs r LEFT JOIN run_dates d USING (run_id)),
        days AS (SELECT DISTINCT day FROM dated ORDER BY day DESC LIMIT ?)
        SELECT source_system, run_id, run_at, day, pass_rate, rows, quarantined, success,
               volume_ok
        FROM dated JOIN days USING (day)
        ORDER BY day, source_system, run_at
        """,
        [last_dates],
    ).fetchall()
    nights: dict[tuple[str, date], Night] = {}
    last_run: dict[tuple[str, date], str] = {}
    for source, run_id, _, day, pass_rate, rows, quarantined, success, volume_ok in runs:
        key = (source, day)
        before = nights.get(key)
        blocked_before = 0
        if before is not None:
            blocked_before = before.blocked_before + (1 if before.blocked else 0)
        nights[key] = Night(
            rows=rows,
            quarantined=quarantined,
            pass_rate=None if pass_rate is None else float(pass_rate),
            runs=(before.runs + 1) if before else 1,
            blocked_by=blockers(success, volume_ok, quarantined, rows, max_quarantine_rate),
            blocked_before=blocked_before,
        )
        last_run[key] = run_id
    dates = tuple(sorted({day for _, day in nights}))
    sources = tuple(sorted({source for source, _ in nights}))
    return Trend(dates, sources, nights, _problems(con, last_run, dates))


def blockers(
    success: bool | None,
    volume_ok: bool | None,
    quarantined: int | None,
    rows: int | None,
    max_quarantine_rate: float,
) -> tuple[str, ...]:
    """What blocked a source's run, from its quality.validation_runs row (empty: nothing)."""
    found = []
    if success is False:
        found.append("block rule failed")
    if volume_ok is False:
        found.append("volume drop")
    if rows and quarantined is not None and quarantined / rows > max_quarantine_rate:
        found.append(f"quarantine rate above {max_quarantine_rate:.0%}")
    return tuple(found)


def _problems(
    con: duckdb.DuckDBPyConnection, last_run: dict[tuple[str, date], str], dates: tuple[date, ...]
) -> tuple[Problem, ...]:
    """Per (source, rule) that failed on a shown date: failed and evaluated rows per date."""
    if not last_run:
        return ()
    day_of = {(run_id, source): day for (source, day), run_id in last_run.items()}
    rows = con.execute(
        "SELECT run_id, source_system, rule, severity, failed, evaluated FROM quality.scorecard "
        "WHERE list_contains(?, run_id) ORDER BY source_system, rule",
        [sorted({run_id for run_id in last_run.values()})],
    ).fetchall()
    column = {day: i for i, day in enumerate(dates)}
    found: dict[tuple[str, str], tuple[str, list, list]] = {}
    for run_id, source, rule, severity, failed, evaluated in rows:
        day = day_of.get((run_id, source))
        if day is None:
            continue  # a run that is not this source's last of its date
        _, fails, evals = found.setdefault(
            (source, rule), (severity or "", [None] * len(dates), [None] * len(dates))
        )
        fails[column[day]] = int(failed or 0)
        evals[column[day]] = int(evaluated or 0)
    problems = [
        Problem(source, rule, severity, tuple(fails), tuple(evals))
        for (source, rule), (severity, fails, evals) in found.items()
        if any(f for f in fails)
    ]
    order = {"block": 0, "quarantine": 1, "warn": 2}
    return tuple(sorted(problems, key=lambda p: (p.source, order.get(p.severity, 3), p.rule)))


def sparkline_points(values: tuple[int | None, ...], width: int = 120, height: int = 24) -> str:
    """SVG polyline points of `values` (None: a gap, drawn at 0), scaled to the box; one
    value is drawn as a level line."""
    if not values:
        return ""
    if len(values) == 1:
        values = (values[0], values[0])
    top = max((v for v in values if v is not None), default=0) or 1
    step = width / max(1, len(values) - 1)
    points = []
    for i, v in enumerate(values):
        y = height - 2 - ((v or 0) / top) * (height - 4)
        points.append(f"{i * step:.1f},{y:.1f}")
    return " ".join(points)


def _night_cell(night: Night | None) -> str:
    if night is None:
        return "–"
    if night.blocked:
        return "**BLOCKED** (" + ", ".join(night.blocked_by) + ")"
    text = "ok" if night.quarantined is None else f"{night.quarantined} quarantined"
    return text + (" (blocked, then rerun)" if night.state == "rerun" else "")


def trend_markdown(trend: Trend) -> str:
    """Per source and business date: quarantined records, blocked nights marked (Markdown)."""
    if not trend.dates:
        return "_no scorecard rows yet_"
    cols = [d.isoformat() for d in trend.dates]
    lines = ["| source | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for source in trend.sources:
        cells = [_night_cell(trend.night(source, d)) for d in trend.dates]
        lines.append(f"| {source} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


_PAGE_STYLE = (
    "body{font-family:sans-serif;margin:2em;color:#222}"
    "td,th{padding:4px 10px;border-bottom:1px solid #ddd;vertical-align:top}"
    "td.n{text-align:right}th{text-align:left}"
    ".blocked{background:#fde2e1}mark.blocked{font-weight:bold}.rerun{background:#fff4d6}"
    "mark{padding:0 4px}polyline{fill:none;stroke:#444;stroke-width:1.5}"
)


def _e(value: object) -> str:
    return html.escape(str(value))


def trend_html(trend: Trend) -> str:
    """The nightly's static trend page: self-contained (no asset from anywhere), counts only."""
    parts = [
        "<!doctype html><html lang='en'><meta charset='utf-8'>",
        "<title>custpipe data-quality scorecard</title>",
        f"<style>{_PAGE_STYLE}</style>",
        "<h1>Data-quality scorecard</h1>",
        "<p>One column per business date (oldest left; a date run more than once shows its "
        "last run). A source is <mark class='blocked'>BLOCKED</mark> on a date when its last "
        "run there failed a block rule, the volume check or the quarantine-rate limit: "
        "nothing of it was published. <mark class='rerun'>rerun</mark>: blocked, then rerun "
        "without a block. Source <em>orders</em> counts the orders suite and reconciliation "
        "findings.</p>",
    ]
    if not trend.dates:
        parts.append("<p>No runs yet.</p>")
        return "\n".join(parts)
    head = "".join(f"<th>{d.isoformat()}</th>" for d in trend.dates)
    parts.append(f"<h2>Sources</h2><table><tr><th>source</th>{head}</tr>")
    for source in trend.sources:
        cells = []
        for day in trend.dates:
            night = trend.night(source, day)
            if night is None:
                cells.append("<td>–</td>")
                continue
            counts = (
                "" if night.pass_rate is None else f"{night.pass_rate * 100:.2f} % mean pass rate"
            )
            if night.quarantined is not None:
                counts = f"{night.quarantined} of {night.rows} quarantined<br>" + counts
            if night.blocked:
                mark = "<mark class='blocked'>BLOCKED</mark> " + _e(", ".join(night.blocked_by))
                cells.append(f"<td class='blocked'>{mark}<br>{counts}</td>")
            elif night.state == "rerun":
                cells.append(f"<td class='rerun'><mark class='rerun'>rerun</mark><br>{counts}</td>")
            else:
                cells.append(f"<td>{counts}</td>")
        parts.append(f"<tr><th>{_e(source)}</th>{''.join(cells)}</tr>")
    parts.append("</table>")
    parts.append(
        "<h2>Problems</h2><p>Rows failing each rule, per business date; each problem is "
        "counted once. Rules that failed on none of these dates are not listed.</p>"
        f"<table><tr><th>source</th><th>rule</th><th>severity</th>{head}<th>trend</th></tr>"
    )
    for p in trend.problems:
        cells = "".join("<td>–</td>" if f is None else f"<td class='n'>{f}</td>" for f in p.failed)
        spark = (
            "<svg width='120' height='24' viewBox='0 0 120 24' role='img' "
            f"aria-label='trend of {_e(p.rule)}'><polyline points='"
            f"{sparkline_points(p.failed)}'/></svg>"
        )
        parts.append(
            f"<tr><td>{_e(p.source)}</td><td>{_e(p.rule)}</td><td>{_e(p.severity)}</td>"
            f"{cells}<td>{spark}</td></tr>"
        )
    parts.append("</table>")
    return "\n".join(parts)


def write_trend_page(trend: Trend, path: Path) -> Path:
    """Write :func:`trend_html` to `path` (the nightly's ``data/reports/scorecard.html``)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(trend_html(trend), encoding="utf-8")
    return path
