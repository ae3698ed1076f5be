"""Publish asset: the reconciled customer table into the ERP's inbound table, as a delta."""

from datetime import timedelta

import dagster as dg

from custpipe import warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.consolidate import GOLDEN, XREF
from custpipe.defs.resources import CustpipeResource
from custpipe.publish.erp import PublishRefused, export_delta, publish
from custpipe.publish.inputs import golden_for_publish, merge_successors
from custpipe.sources.extract import resolve_url

PUBLISHED = dg.AssetKey(["publish", "erp_customers"])


class PublishRunConfig(dg.Config):
    """Run configuration of the publish asset."""

    dry_run: bool = False  # compute and report the delta, write nothing
    allow_mass_retire: bool = False  # accept retiring more than publish.max_retire_share


def build_publish_asset(cfg: PipelineConfig) -> dg.AssetsDefinition:
    """Runs only when the blocking checks upstream passed (Dagster skips it otherwise)."""

    @dg.asset(
        key=PUBLISHED,
        deps=[GOLDEN, XREF],
        group_name="publish",
        description=f"Golden customers published to the ERP table '{cfg.publish.table}' as a "
        "delta (insert, update, retire) in one transaction; idempotent.",
        freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26)),
        # safe to retry: the publish is one transaction and idempotent
        retry_policy=dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL),
        kinds={"sqlalchemy"},
    )
    def erp_customers(
        context: dg.AssetExecutionContext, config: PublishRunConfig, custpipe: CustpipeResource
    ):
        with warehouse.connect(custpipe.settings.warehouse_path, read_only=True) as con:
            golden = golden_for_publish(con)
            merged_into = merge_successors(con)
        target = custpipe.pipeline.publish  # this run's configuration
        url = resolve_url(target.connection, f"publish.{target.table}", custpipe.settings)
        limit = None if config.allow_mass_retire else target.max_retire_share
        try:
            result = publish(
                golden,
                url,
                target.table,
                context.run_id,
                dry_run=config.dry_run,
                max_retire_share=limit,
                merged_into=merged_into,
            )
        except PublishRefused as exc:
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        exported = export_delta(
            result.delta, custpipe.settings.data_dir / "publish", context.run_id
        )
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
                "golden_customers": len(golden),
                "active_before": result.active_before,
                "retired_share": round(result.retired / result.active_before, 4)
                if result.active_before
                else 0.0,
                "dry_run": result.dry_run,
                "content_hash": result.content_hash,
                "delta_files": dg.MetadataValue.md("\n".join(f"- `{p}`" for p in exported)),
                "log_table": f"{target.table}_LOG",
                "target_table": target.table,
            }
        )

    return erp_customers
