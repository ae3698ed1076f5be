"""Publish asset: the reconciled customer table into the ERP's inbound table, as a delta
(incremental by custpipe.publish.state: only golden records rebuilt since their publish are
hashed; a full publish reads the target as before)."""

from datetime import timedelta

import dagster as dg

from custpipe import warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import (
    WAREHOUSE_POOL,
    plan_metadata,
    schedule_of,
)
from custpipe.defs.consolidate import GOLDEN, XREF
from custpipe.defs.resources import CustpipeResource
from custpipe.incremental import describe_differences
from custpipe.publish.erp import PublishRefused, export_delta
from custpipe.publish.state import plan_publish, publish_night
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
        pool=WAREHOUSE_POOL,  # it records what it wrote in the warehouse
    )
    def erp_customers(
        context: dg.AssetExecutionContext, config: PublishRunConfig, custpipe: CustpipeResource
    ):
        target = custpipe.pipeline.publish  # this run's configuration
        url = resolve_url(target.connection, f"publish.{target.table}", custpipe.settings)
        limit = None if config.allow_mass_retire else target.max_retire_share
        schedule = schedule_of(context, custpipe.pipeline)
        business_date = schedule.business_date
        with warehouse.connect(custpipe.settings.warehouse_path) as con:
            plan = plan_publish(con, target.table, url, schedule)
            try:
                night = publish_night(
                    con,
                    url,
                    target.table,
                    context.run_id,
                    plan,
                    dry_run=config.dry_run,
                    max_retire_share=limit,
                    business_date=business_date,
                )
            except PublishRefused as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from exc
        result = night.result
        if night.plan.mode != plan.mode:  # the target was not what custpipe wrote
            context.log.warning(f"publish reads the target in full: {night.plan.reason}")
        elif plan.reason:
            context.log.info(f"publish reads the target in full: {plan.reason}")
        plan = night.plan
        if night.differences:
            context.log.error(
                "the full publish differs from what the incremental publish would have "
                f"written: {describe_differences(night.differences)} (the full result is "
                "published; report this as a bug of incremental publishing)"
            )
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
                **plan_metadata(plan),
                "golden_hashed": night.hashed,
                "consistency": "not compared"
                if night.differences is None
                else describe_differences(night.differences).replace("none", "identical"),
                "seconds_publish": round(night.seconds, 2),
                "golden_customers": night.golden,
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
