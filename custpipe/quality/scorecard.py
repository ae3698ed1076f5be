"""The data-quality scorecard over time: reconciliation rows, trend table, steward page."""

from __future__ import annotations

import html
from pathlib import Path

import duckdb
import pandas as pd


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


def trend(con: duckdb.DuckDBPyConnection, last_runs: int = 10) -> pd.DataFrame:
    """Scorecard rows of the last `last_runs` runs, oldest first."""
    return con.execute(
        """
        WITH runs AS (SELECT run_id, min(run_at) AS run_at FROM quality.scorecard GROUP BY run_id
                      ORDER BY run_at DESC LIMIT ?)
        SELECT s.* FROM quality.scorecard s JOIN runs USING (run_id)
        ORDER BY runs.run_at, s.source_system, s.rule
    """,
        [last_runs],
    ).df()


def _pivot(trend_rows: pd.DataFrame) -> pd.DataFrame:
    """Source x run table of the mean pass rate (percent)."""
    if trend_rows.empty:
        return pd.DataFrame()
    order = trend_rows.groupby("run_id")["run_at"].min().sort_values().index
    table = trend_rows.pivot_table(
        index="source_system", columns="run_id", values="pass_rate", aggfunc="mean"
    )
    table = table[[r for r in order if r in table.columns]]
    return (table * 100).round(2)


def trend_markdown(trend_rows: pd.DataFrame) -> str:
    """Mean pass rate per source and run, as Markdown (short run ids as columns)."""
    table = _pivot(trend_rows)
    if table.empty:
        return "_no scorecard rows yet_"
    cols = [str(c)[:8] for c in table.columns]
    lines = ["| source | " + " | ".join(cols) + " |", "|---|" + "---|" * len(cols)]
    for source, row in table.iterrows():
        lines.append(
            f"| {source} | " + " | ".join(f"{v:.2f} %" if pd.notna(v) else "–" for v in row) + " |"
        )
    return "\n".join(lines)


def write_trend_page(trend_rows: pd.DataFrame, path: Path) -> Path:
    """A static HTML page: pass rate per source over runs, and per rule for the latest run."""
    path.parent.mkdir(parents=True, exist_ok=True)
    table = _pivot(trend_rows)
    parts = [
        "<!doctype html><meta charset='utf-8'><title>custpipe data-quality scorecard</title>",
        "<style>body{font-family:sans-serif;margin:2em}"
        "td,th{padding:4px 10px;border-bottom:1px solid #ddd}"
        "td.n{text-align:right}</style>",
        "<h1>Data-quality scorecard</h1>",
        "<p>Mean pass rate of the validation rules per source, over the last runs (oldest left). "
        "Source <em>orders</em> counts reconciliation findings.</p>",
    ]
    if table.empty:
        parts.append("<p>No runs yet.</p>")
    else:
        runs = trend_rows.groupby("run_id")["run_at"].min()
        head = "".join(
            f"<th title='{html.escape(str(r))}'>{html.escape(str(runs[r])[:16])}</th>"
            for r in table.columns
        )
        parts.append(f"<table><tr><th>source</th>{head}</tr>")
        for source, row in table.iterrows():
            cells = "".join(
                f"<td class=n>{v:.2f} %</td>" if pd.notna(v) else "<td>–</td>" for v in row
            )
            parts.append(f"<tr><td>{html.escape(str(source))}</td>{cells}</tr>")
        parts.append("</table>")
        latest = trend_rows[trend_rows["run_id"] == table.columns[-1]]
        parts.append(
            "<h2>Latest run, by rule</h2><table><tr><th>source</th><th>rule</th>"
            "<th>severity</th><th>evaluated</th><th>failed</th><th>pass rate</th></tr>"
        )
        for r in latest.itertuples():
            parts.append(
                f"<tr><td>{html.escape(r.source_system)}</td><td>{html.escape(r.rule)}</td>"
                f"<td>{html.escape(str(r.severity))}</td><td class=n>{r.evaluated}</td>"
                f"<td class=n>{r.failed}</td><td class=n>{r.pass_rate * 100:.2f} %</td></tr>"
            )
        parts.append("</table>")
    path.write_text("\n".join(parts), encoding="utf-8")
    return path
