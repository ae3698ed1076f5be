"""Publish asset: the reconciled customer table into the ERP's inbound table, as a delta."""

from datetime import timedelta

import dagster as dg

from custpipe import warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.consolidate import GOLDEN, XREF
from custpipe.defs.resources import CustpipeResource
from custpipe.publish.erp import publish
from custpipe.sources.extract import resolve_url

PUBLISHED = dg.AssetKey(["publish", "erp_customers"])


def build_publish_asset(cfg: PipelineConfig) -> dg.AssetsDefinition:
    """Runs only when the blocking checks upstream passed (Dagster skips it otherwise)."""

    @dg.asset(
        key=PUBLISHED,
        deps=[GOLDEN, XREF],
        group_name="publish",
        description=f"Golden customers published to the ERP table '{cfg.publish.table}' as a "
        "delta (insert, update, retire) in one transaction; idempotent.",
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26)),
        kinds={"sqlalchemy"},
    )
    def erp_customers(context: dg.AssetExecutionContext, custpipe: CustpipeResource):
        with warehouse.connect(custpipe.settings.warehouse_path, read_only=True) as con:
            golden = con.execute("SELECT * FROM mdm.golden_customers ORDER BY golden_id").df()
        target = cfg.publish
        url = resolve_url(target.connection, f"publish.{target.table}", custpipe.settings)
        result = publish(golden, url, target.table, context.run_id)
        context.log.info(
            f"published to {target.table}: {result.inserted} inserted, "
            f"{result.updated} updated, {result.retired} retired, "
            f"{result.unchanged} unchanged"
        )
        return dg.MaterializeResult(
            metadata={
                "inserted": result.inserted,
                "updated": result.updated,
                "retired": result.retired,
                "unchanged": result.unchanged,
                "rows_published": result.changed,
                "target_table": target.table,
            }
        )

    return erp_customers
