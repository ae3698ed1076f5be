"""Staging assets: map and standardise each source's latest landing data into the warehouse."""

import time
from datetime import UTC, datetime

import dagster as dg

from custpipe import gates, warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import (
    WAREHOUSE_POOL,
    check_spec,
    md_table,
    report_checks,
    row_count,
    run_business_date,
    table_definition_metadata,
)
from custpipe.defs.resources import CustpipeResource
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
        "of staging.customers).",
        kinds={"duckdb", "pandas"},
        tags={"source": source_name},
        owners=cfg.owners,
        metadata=table_definition_metadata(CUSTOMERS_TABLE),
        check_specs=[check_spec(gates.MAPPING_ISSUES, source_name)],
    )
    def _stage(context: dg.AssetExecutionContext, custpipe: CustpipeResource):
        settings, source = custpipe.settings, custpipe.source(source_name)
        business_date = run_business_date(context)
        started = time.perf_counter()
        meta: dict = {}
        now = datetime.now(UTC).replace(tzinfo=None)
        with warehouse.connect(settings.warehouse_path) as con:
            report = stage_source(con, settings, source, business_date, context.run_id, now)
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
                or "_none: nothing new since the last staging (or an older business date)_"
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
        yield dg.MaterializeResult(metadata=row_count(staged, CUSTOMERS_TABLE) | meta)
        mapped = sum(d.rows - d.unchanged for d in report)
        warn_rate = custpipe.pipeline.quality.mapping_issue_warn_rate
        found = issues.to_dict("records")
        yield from report_checks(
            context, [gates.mapping_issues(found, mapped, warn_rate, source_name)], source_name
        )

    return _stage
