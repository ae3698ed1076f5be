"""Staging assets: map and standardise each source's latest landing data into the warehouse."""

import time
from datetime import UTC, datetime

import dagster as dg

from custpipe import gates, holding, warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import (
    WAREHOUSE_POOL,
    check_result,
    check_spec,
    md_table,
    report_checks,
    row_count,
    run_business_date,
    table_definition_metadata,
)
from custpipe.defs.resources import CustpipeResource, RunOptions, spark_runner
from custpipe.mapping.stage import issue_rows, stage_source, standardisation_counts

CUSTOMERS_TABLE = "staging.customers"


def build_stage_asset(source_name: str, cfg: PipelineConfig) -> dg.AssetsDefinition:
    """The staging asset of one source: `staging.customers` (and `staging.orders`) rows."""

    @dg.asset(
        key=["staging", source_name],
        deps=[dg.AssetKey(["extract", source_name])],
        group_name="staging",
        pool=WAREHOUSE_POOL,
        description=f"'{source_name}' records mapped to the canonical model and standardised "
        "(rows of staging.customers / staging.orders for this source; row count: its rows "
        "of staging.customers). A source held back (on_failure: hold) keeps its last good "
        "staged rows.",
        kinds={"duckdb", "pandas"},
        tags={"source": source_name},
        owners=cfg.owners,
        metadata=table_definition_metadata(CUSTOMERS_TABLE),
        check_specs=[
            check_spec(gates.SOURCE_HELD, source_name),
            check_spec(gates.MAPPING_ISSUES, source_name),
        ],
    )
    def _stage(
        context: dg.AssetExecutionContext, custpipe: CustpipeResource, run_options: RunOptions
    ):
        settings, source = custpipe.settings, custpipe.source(source_name)
        spark = spark_runner(custpipe, run_options, context)
        business_date = run_business_date(context)
        started = time.perf_counter()
        meta: dict = {}
        now = datetime.now(UTC).replace(tzinfo=None)
        hold = held_at_extract(context, source_name)
        report: list = []
        with warehouse.connect(settings.warehouse_path, vacuum=False) as con:
            if hold is not None and not holding.staged_before(con, source_name):
                raise dg.Failure(
                    description=f"source '{source_name}' was held back at extract ("
                    f"{hold.reason}) but has never been staged: there is no good state to "
                    "consolidate with, so the night stops. Fix the export, then rerun.",
                    allow_retries=False,
                )
            if hold is None:
                try:
                    report = stage_source(
                        con, settings, source, business_date, context.run_id, now, spark
                    )
                except holding.HOLDABLE as exc:  # rolled back: the last good rows are kept
                    reason = holding.hold_reason(
                        exc,
                        source.on_failure,
                        has_good_state=holding.staged_before(con, source_name),
                    )
                    if reason is None:
                        raise
                    hold = holding.Hold(source_name, holding.STAGING, reason)
                    context.log.error(hold.message())
            if hold is not None:
                with warehouse.transaction(con):
                    holding.record_hold(con, hold, context.run_id, business_date, now)
                tag_held_source(context, source_name)
            for d in report:
                meta[f"{d.dataset}_rows"] = meta.get(f"{d.dataset}_rows", 0) + d.rows
                key = f"{d.dataset}_unchanged"  # kept as staged before, not mapped again
                meta[key] = meta.get(key, 0) + d.unchanged
                meta[f"{d.dataset}_mode"] = d.mode  # of the last folder applied
                key = f"{d.dataset}_standardise_seconds"  # map + standardise, without I/O
                meta[key] = round(meta.get(key, 0.0) + d.seconds_standardise, 2)
                for issue in d.issues:
                    context.log.warning(str(issue))
            meta["landing_folders_applied"] = dg.MetadataValue.md(
                "\n".join(
                    f"- {d.dataset} ({d.mode}): `{d.landing_path}`"
                    for d in report
                    if d.landing_path
                )
                or (
                    "_none: held back; the last good staged rows are kept_"
                    if hold
                    else "_none: nothing new since the last staging (or an older business date)_"
                )
            )
            if "customers" in source.datasets():
                meta.update(standardisation_counts(con, source_name))
            (staged,) = con.execute(
                f"SELECT count(*) FROM {CUSTOMERS_TABLE} WHERE source_system = ?", [source_name]
            ).fetchone()
        issues = issue_rows(report, source_name, context.run_id, now)
        columns = ["dataset", "field", "source_column", "problem", "rows", "examples"]
        meta["mapping_issues"] = md_table(issues.to_dict("records"), columns)
        meta["seconds"] = round(time.perf_counter() - started, 2)
        meta["mapped_on"] = spark.describe() if spark else "this process"
        meta["held"] = hold is not None
        if hold is not None:
            meta["held_reason"] = hold.reason
            meta["held_at_step"] = hold.step
        yield dg.MaterializeResult(metadata=row_count(staged, CUSTOMERS_TABLE) | meta)
        yield check_result(
            gates.source_held(source_name, *((hold.step, hold.reason) if hold else (None, None))),
            source_name,
        )
        mapped = sum(d.rows - d.unchanged for d in report)
        warn_rate = custpipe.pipeline.quality.mapping_issue_warn_rate
        found = issues.to_dict("records")
        yield from report_checks(
            context, [gates.mapping_issues(found, mapped, warn_rate, source_name)], source_name
        )

    return _stage


def held_at_extract(context: dg.AssetExecutionContext, source_name: str) -> holding.Hold | None:
    """The hold of the source's extract in this run (its materialisation says `held`), if any."""
    event = context.instance.get_latest_materialization_event(dg.AssetKey(["extract", source_name]))
    if event is None or event.run_id != context.run_id or event.asset_materialization is None:
        return None
    metadata = event.asset_materialization.metadata
    held = metadata.get("held")
    if held is None or held.value is not True:
        return None
    return holding.Hold(source_name, holding.EXTRACT, str(metadata["held_reason"].value))


def tag_held_source(context: dg.AssetExecutionContext, source_name: str) -> None:
    """Add the source to the run's tag custpipe/held_sources (the steps that write it share
    the warehouse pool, so they do not race; consolidation writes the whole list again)."""
    run = context.instance.get_run_by_id(context.run_id)
    before = holding.parse_tag(run.tags.get(holding.HELD_TAG) if run else None)
    value = holding.tag_value([*before, source_name])
    context.instance.add_run_tags(context.run_id, {holding.HELD_TAG: value})
