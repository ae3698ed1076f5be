"""The end-of-run summary: counts from the warehouse and the ERP, and where to look."""

from __future__ import annotations

from dataclasses import dataclass, field

import sqlalchemy as sa

from custpipe import holding, warehouse
from custpipe.config import load_config
from custpipe.settings import Settings
from custpipe.sources.extract import resolve_url


@dataclass
class Summary:
    """Counts of one run (or of the current state)."""

    staged_by_source: dict[str, int] = field(default_factory=dict)
    quarantined_by_source: dict[str, int] = field(default_factory=dict)
    golden: int = 0
    xref: int = 0
    discrepancies_by_kind: dict[str, int] = field(default_factory=dict)
    published_this_run: int | None = None
    published_total: int = 0
    held: dict[str, str] = field(default_factory=dict)  # source -> why it was held
    held_run: str | None = None  # the run whose holds `held` lists


def collect_summary(settings: Settings, run_id: str | None) -> Summary:
    """Read the counts (never customer values) from the warehouse and the ERP target table."""
    cfg = load_config(settings.config_dir)
    s = Summary()
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        s.staged_by_source = dict(
            con.execute(
                "SELECT source_system, count(*) FROM staging.customers GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
        s.quarantined_by_source = dict(
            con.execute(f"""
            SELECT source_system, count(DISTINCT source_id)
            FROM ({warehouse.CURRENT_QUARANTINE}) GROUP BY 1 ORDER BY 1""").fetchall()
        )
        s.golden = con.execute("SELECT count(*) FROM mdm.golden_customers").fetchone()[0]
        if _has_table(con, "ops", "held_sources"):  # absent: an older warehouse
            # this run's holds; without a run, those of the latest run that validated
            latest = (
                run_id
                or con.execute(
                    "SELECT arg_max(run_id, validated_at) FROM quality.validation_runs"
                ).fetchone()[0]
            )
            s.held_run = latest
            s.held = {
                h.source: f"at {h.step}: {h.reason}"
                for h in holding.held_in_run(con, latest or "").values()
            }
        s.xref = con.execute("SELECT count(*) FROM mdm.customer_xref").fetchone()[0]
        s.discrepancies_by_kind = dict(
            con.execute(
                "SELECT kind, count(*) FROM recon.order_discrepancies GROUP BY 1 ORDER BY 1"
            ).fetchall()
        )
    engine = sa.create_engine(resolve_url(cfg.publish.connection, "publish", settings))
    try:
        with engine.connect() as conn:
            if sa.inspect(conn).has_table(cfg.publish.table):
                table = sa.table(cfg.publish.table, sa.column("run_id"))
                s.published_total = conn.execute(
                    sa.select(sa.func.count()).select_from(table)
                ).scalar()
                if run_id:
                    s.published_this_run = conn.execute(
                        sa.select(sa.func.count())
                        .select_from(table)
                        .where(table.c.run_id == run_id)
                    ).scalar()
    finally:
        engine.dispose()
    return s


def _has_table(con, schema: str, table: str) -> bool:
    (n,) = con.execute(
        "SELECT count(*) FROM information_schema.tables WHERE table_schema = ? AND table_name = ?",
        [schema, table],
    ).fetchone()
    return bool(n)


def format_summary(s: Summary, settings: Settings) -> str:
    """The summary as text for the terminal."""
    staged = sum(s.staged_by_source.values())
    quarantined = sum(s.quarantined_by_source.values())
    lines = [
        "",
        "custpipe summary",
        "================",
        "records per source (staged -> quarantined):",
    ]
    for source, n in s.staged_by_source.items():
        lines.append(f"  {source:<10} {n:>9,} -> {s.quarantined_by_source.get(source, 0):>7,}")
    lines += [
        f"  {'total':<10} {staged:>9,} -> {quarantined:>7,}",
        f"golden customers:        {s.golden:,}",
        f"duplicates merged:       {s.xref - s.golden:,} (source records consolidated: {s.xref:,})",
        f"order discrepancies:     {sum(s.discrepancies_by_kind.values()):,}",
    ]
    lines += [f"  {k:<22} {v:>7,}" for k, v in s.discrepancies_by_kind.items()]
    if s.published_this_run is not None:
        lines.append(
            f"rows published this run: {s.published_this_run:,} "
            f"(ERP table holds {s.published_total:,})"
        )
    else:
        lines.append(f"rows in the ERP table:   {s.published_total:,}")
    if s.held:
        lines += [
            "",
            f"HELD BACK in run {s.held_run} (on_failure: hold): {len(s.held)} source(s); "
            "their last good staged state was consolidated and published, their new data "
            "was not:",
        ]
        lines += [f"  {source:<10} {why}" for source, why in sorted(s.held.items())]
        lines.append("  (ops.held_sources; fix the export or mapping: the next night catches up)")
    docs = settings.gx_dir / "data_docs" / "index.html"
    lines += [
        "",
        "where to look:",
        f"  warehouse (DuckDB):   {settings.warehouse_path}",
        "    tables: staging.customers, quality.quarantine, mdm.golden_customers,",
        "    mdm.customer_xref, mdm.match_review, recon.order_discrepancies, quality.scorecard",
        f"  Data Docs:            {docs}",
        f"  scorecard trend page: {settings.reports_dir / 'scorecard.html'}",
        f"  landing zone:         {settings.landing_dir}",
        "  stewards' workbench:  make steward-user NAME=ann, then make steward",
        "                        (then open http://127.0.0.1:8080; review, search, rules)",
        "  Dagster UI:           make dev   (then open http://127.0.0.1:3000)",
    ]
    return "\n".join(lines)
