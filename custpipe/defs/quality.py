"""Quality assets: one GX suite per source as blocking asset checks, quarantine, scorecard."""

from datetime import UTC, datetime

import dagster as dg

from custpipe import gates, warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import (
    WAREHOUSE_POOL,
    check_spec,
    md_table,
    plan_metadata,
    report_checks,
    row_count,
    schedule_of,
    table_definition_metadata,
)
from custpipe.defs.resources import CustpipeResource, RunOptions, gx_engine, gx_on_spark
from custpipe.incremental import describe_differences
from custpipe.mapping.stage import restage_fingerprint
from custpipe.quality import scorecard as scorecard_core
from custpipe.quality.validate import plan_source, validate_source
from custpipe.retention import apply_retention

QUARANTINE_TABLE = "quality.quarantine"
SCORECARD_TABLE = "quality.scorecard"


def build_quality_asset(source_name: str, cfg: PipelineConfig) -> dg.AssetsDefinition:
    """Validate one source's staged customers; quarantine failing rows; report as asset checks."""
    key = dg.AssetKey(["quality", source_name])

    @dg.asset(
        key=key,
        deps=[dg.AssetKey(["staging", source_name])],
        group_name="quality",
        pool=WAREHOUSE_POOL,
        description=f"Great Expectations validation of '{source_name}' staged customers: rows "
        "failing a quarantine rule go to quality.quarantine with every rule they failed. "
        "Incremental nights validate the changed rows and carry the others forward "
        "(custpipe.quality.incremental).",
        check_specs=[
            check_spec(name, source_name)
            for name in (gates.SUITE_PASSES, gates.VOLUME_STABLE, gates.ROWS_QUARANTINED)
        ],
        kinds={"great_expectations", "duckdb"},
        tags={"source": source_name},
        owners=cfg.owners,
        metadata=table_definition_metadata(QUARANTINE_TABLE),
    )
    def _validate(
        context: dg.AssetExecutionContext, custpipe: CustpipeResource, run_options: RunOptions
    ):
        settings, pipeline = custpipe.settings, custpipe.pipeline
        schedule = schedule_of(context, pipeline, run_options)
        # the configured thresholds, with tonight's overrides from the run configuration
        quality, day = run_options.quality(pipeline.quality), schedule.business_date
        now = datetime.now(UTC).replace(tzinfo=None)
        on_spark = gx_on_spark(custpipe, run_options)
        with warehouse.connect(settings.warehouse_path, vacuum=False) as con:
            plan = plan_source(
                con,
                settings,
                source_name,
                schedule,
                mapping=restage_fingerprint(pipeline.sources[source_name], "customers"),
            )
            v = validate_source(
                con,
                settings,
                source_name,
                context.run_id,
                now,
                quality.results_limit,
                quality.include_values_in_docs,
                max_volume_drop=quality.max_volume_drop,
                plan=plan,
                business_date=day,
                spark=on_spark,
            )
            (held_rows,) = con.execute(  # this source's current quarantine: (record, rule) rows
                f"SELECT count(*) FROM ({warehouse.CURRENT_QUARANTINE}) q WHERE source_system = ?",
                [source_name],
            ).fetchone()
        # the trend page also on a night this source blocks (the scorecard asset then does
        # not run): the stewards see the blocked night the morning after
        write_trend(settings, quality.max_quarantine_rate)
        if v.differences:
            context.log.error(
                f"validation of '{source_name}': the full recompute differs from the "
                f"incremental state: {describe_differences(v.differences)}"
            )
        table = md_table(
            v.rules.to_dict("records"), ["rule", "severity", "evaluated", "failed", "pass_rate"]
        )
        outcome = v.outcome
        docs = dg.MetadataValue.path(str(outcome.docs_index)) if outcome.docs_index else "not built"
        if v.mode == "incremental" and not outcome.docs_index:
            docs = "no changed rows: GX validated nothing tonight"
        consistency = "not compared"
        if v.differences is not None:
            consistency = describe_differences(v.differences) if v.differences else "identical"
        yield dg.MaterializeResult(
            metadata={
                # the source's current rows of quality.quarantine (one per record and rule)
                **row_count(held_rows, QUARANTINE_TABLE),
                "suite": v.suite,
                "rows_evaluated": v.rows,
                "rows_quarantined": v.quarantined,
                "quarantine_rate": gates.rate(v.quarantined, v.rows),
                "rules": table,
                "data_docs": docs,
                "rows_validated_by_gx": v.changed,
                "gx_engine": gx_engine(on_spark),
                "consistency": consistency,
            }
            | plan_metadata(plan)
        )
        yield from report_checks(
            context,
            (
                gates.suite_passes(v, quality.max_quarantine_rate),
                gates.volume_stable(v),
                gates.rows_quarantined(v, quality.quarantine_warn_rate),
            ),
            source_name,
        )

    return _validate


def write_trend(settings, max_quarantine_rate: float):
    """(trend, path) of the scorecard page, written from the warehouse's current rows."""
    with warehouse.connect(settings.warehouse_path) as con:
        trend = scorecard_core.business_trend(con, max_quarantine_rate=max_quarantine_rate)
    return trend, scorecard_core.write_trend_page(trend, settings.reports_dir / "scorecard.html")


def build_scorecard_asset(cfg: PipelineConfig) -> dg.AssetsDefinition:
    """The data-quality scorecard: per run/source/rule rows plus a steward-facing trend page."""

    @dg.asset(
        key=["quality", "scorecard"],
        deps=[dg.AssetKey(["quality", s]) for s in cfg.sources]
        + [dg.AssetKey(["recon", "order_discrepancies"])],
        group_name="quality",
        pool=WAREHOUSE_POOL,
        description="quality.scorecard: one row per (run, source, rule) with counts and pass "
        "rate, and a trend page over the last runs for the data stewards.",
        kinds={"duckdb", "html"},
        owners=cfg.owners,
        metadata=table_definition_metadata(SCORECARD_TABLE),
    )
    def scorecard(
        context: dg.AssetExecutionContext, custpipe: CustpipeResource, run_options: RunOptions
    ):
        settings = custpipe.settings
        with warehouse.connect(settings.warehouse_path, vacuum=False) as con:
            scorecard_core.add_reconciliation_rows(con, context.run_id)
            (rows,) = con.execute(
                "SELECT count(*) FROM quality.scorecard WHERE run_id = ?", [context.run_id]
            ).fetchone()
            (total,) = con.execute(f"SELECT count(*) FROM {SCORECARD_TABLE}").fetchone()
        quality = run_options.quality(custpipe.pipeline.quality)
        trend, page = write_trend(settings, quality.max_quarantine_rate)
        return dg.MaterializeResult(
            metadata={
                **row_count(total, SCORECARD_TABLE),
                "rows_this_run": int(rows),
                "business_dates_shown": len(trend.dates),
                "blocked_nights_shown": len(trend.blocked_nights()),
                "trend": dg.MetadataValue.md(scorecard_core.trend_markdown(trend)),
                "trend_page": dg.MetadataValue.path(str(page)),
            }
        )

    return scorecard


def build_retention_asset(cfg: PipelineConfig) -> dg.AssetsDefinition:
    """Retention: removes what is older than the `retention:` days of pipeline.yaml."""

    @dg.asset(
        key=["quality", "retention"],
        group_name="quality",
        pool=WAREHOUSE_POOL,
        description="Removes delta files, quarantine and scorecard rows, golden-ID history and "
        "landing folders older than the days in pipeline.yaml `retention:` (null or 0: kept "
        "forever); a landing folder staging still needs is never removed. No upstream "
        "dependency: it runs every night, also when a blocking check stops publishing.",
        kinds={"duckdb"},
        owners=cfg.owners,
    )
    def retention(context: dg.AssetExecutionContext, custpipe: CustpipeResource):
        settings = custpipe.settings
        now = datetime.now(UTC).replace(tzinfo=None)
        with (
            warehouse.connect(settings.warehouse_path, vacuum=False) as con,
            warehouse.transaction(con),
        ):
            result = apply_retention(con, settings, custpipe.pipeline.retention, now)
        days = custpipe.pipeline.retention.model_dump()
        return dg.MaterializeResult(
            metadata={f"removed_{kind}": n for kind, n in result.removed.items()}
            | {
                "landing_kept_as_needed": result.kept_landing_needed,
                "retention_days": dg.MetadataValue.json(days),
            }
        )

    return retention
