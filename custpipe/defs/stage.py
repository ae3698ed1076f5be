"""Staging assets: map and standardise each source's latest landing data into the warehouse."""

import time
from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from custpipe import warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import WAREHOUSE_POOL, md_table, run_business_date
from custpipe.defs.resources import CustpipeResource
from custpipe.mapping.canonical import stage_customers, stage_orders
from custpipe.sources.extract import latest_landing, read_landing


def build_stage_asset(source_name: str, cfg: PipelineConfig) -> dg.AssetsDefinition:
    """The staging asset of one source: `staging.customers` (and `staging.orders`) rows."""
    source = cfg.sources[source_name]

    @dg.asset(
        key=["staging", source_name],
        deps=[dg.AssetKey(["extract", source_name])],
        group_name="stage",
        pool=WAREHOUSE_POOL,
        description=f"'{source_name}' records mapped to the canonical model and standardised "
        "(rows of staging.customers / staging.orders for this source).",
        kinds={"duckdb", "pandas"},
        tags={"source": source_name},
    )
    def _stage(
        context: dg.AssetExecutionContext, custpipe: CustpipeResource
    ) -> dg.MaterializeResult:
        settings = custpipe.settings
        business_date = run_business_date(context)
        started = time.perf_counter()
        meta: dict = {}
        issues_rows = []
        now = datetime.now(UTC).replace(tzinfo=None)
        with warehouse.connect(settings.warehouse_path) as con:
            for name, stager, table in (
                ("customers", stage_customers, "staging.customers"),
                ("orders", stage_orders, "staging.orders"),
            ):
                if name not in source.datasets():
                    continue
                path = latest_landing(settings, source_name, name, business_date)
                staged, issues = stager(read_landing(path), source)
                staged = staged.assign(
                    business_date=pd.Timestamp(path.parent.parent.parent.name),
                    landing_path=str(path),
                    run_id=context.run_id,
                    staged_at=now,
                )
                warehouse.replace_rows(con, table, staged, "source_system = ?", [source_name])
                meta[f"{name}_rows"] = len(staged)
                meta[f"{name}_landing_path"] = str(path)
                for issue in issues:
                    context.log.warning(str(issue))
                    issues_rows.append(
                        {
                            "run_id": context.run_id,
                            "source_system": source_name,
                            "dataset": name,
                            "field": issue.field,
                            "source_column": issue.column,
                            "problem": issue.problem,
                            "rows": issue.rows,
                            "examples": ", ".join(issue.examples),
                            "found_at": now,
                        }
                    )
            warehouse.append_rows(con, "staging.mapping_issues", pd.DataFrame(issues_rows))
            if "customers_rows" in meta:
                stats = con.execute(
                    """
                    SELECT count(*) FILTER (WHERE phone_valid) AS phones_valid,
                           count(*) FILTER (WHERE NOT phone_valid) AS phones_invalid,
                           count(*) FILTER (WHERE NOT email_valid) AS emails_invalid,
                           count(*) FILTER (WHERE NOT tax_id_valid) AS tax_ids_invalid,
                           count(*) FILTER (WHERE country IS NULL) AS country_unknown
                    FROM staging.customers WHERE source_system = ?""",
                    [source_name],
                ).df()
                meta.update({k: int(v) for k, v in stats.iloc[0].items()})
        meta["mapping_issues"] = md_table(
            [
                {
                    k: r[k]
                    for k in ("dataset", "field", "source_column", "problem", "rows", "examples")
                }
                for r in issues_rows
            ],
            ["dataset", "field", "source_column", "problem", "rows", "examples"],
        )
        meta["seconds"] = round(time.perf_counter() - started, 2)
        return dg.MaterializeResult(metadata=meta)

    return _stage
