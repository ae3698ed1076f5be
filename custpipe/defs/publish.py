"""Publish asset: the reconciled customer table into the ERP's inbound table, as a delta
(incremental by custpipe.publish.state: only golden records rebuilt since their publish are
hashed; a full publish reads the target as before).

A dry run (run option `dry_run`) is not a materialisation: nothing reached the ERP, so the
asset records an observation with the delta's counts, and its freshness is not reset."""

from datetime import timedelta

import dagster as dg

from custpipe import catalogue, gates, warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import (
    WAREHOUSE_POOL,
    check_spec,
    plan_metadata,
    report_checks,
    row_count,
    schedule_of,
    table_definition_metadata,
)
from custpipe.defs.consolidate import GOLDEN, XREF
from custpipe.defs.resources import CustpipeResource, RunOptions
from custpipe.incremental import describe_differences
from custpipe.publish.erp import PublishRefused, PublishTargetError, export_delta
from custpipe.publish.state import plan_publish, publish_night
from custpipe.publish.verify import erp_content, golden_content, verify_night
from custpipe.sources.extract import resolve_url

PUBLISHED = dg.AssetKey(["publish", "erp_customers"])


def build_publish_asset(cfg: PipelineConfig) -> dg.AssetsDefinition:
    """Runs only when the blocking checks upstream passed (Dagster skips it otherwise)."""

    @dg.multi_asset(
        name="publish__erp_customers",  # the step key of the asset's key, as before
        specs=[
            dg.AssetSpec(
                PUBLISHED,
                deps=[GOLDEN, XREF],
                group_name="publish",
                description=f"Golden customers published to the ERP table '{cfg.publish.table}' "
                "as a delta (insert, update, retire) in one transaction; idempotent. A dry run "
                "records an observation (the delta's counts) and no materialisation.",
                freshness_policy=dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26)),
                kinds={"sqlalchemy"},
                owners=cfg.owners,
                metadata=table_definition_metadata(cfg.publish.table, catalogue.published_table()),
                skippable=True,  # a dry run materialises nothing
            )
        ],
        check_specs=[check_spec(gates.ERP_MATCHES_GOLDEN)],
        can_subset=True,  # a dry run yields neither the materialisation nor the check
        # safe to retry: the publish is one transaction and idempotent
        retry_policy=dg.RetryPolicy(max_retries=2, delay=60, backoff=dg.Backoff.EXPONENTIAL),
        pool=WAREHOUSE_POOL,  # it records what it wrote in the warehouse
    )
    def erp_customers(
        context: dg.AssetExecutionContext, custpipe: CustpipeResource, run_options: RunOptions
    ):
        target = custpipe.pipeline.publish  # this run's configuration
        url = resolve_url(target.connection, f"publish.{target.table}", custpipe.settings)
        limit = None if run_options.allow_mass_retire else target.max_retire_share
        schedule = schedule_of(context, custpipe.pipeline, run_options)
        business_date = schedule.business_date
        dry_run = run_options.dry_run
        with warehouse.connect(custpipe.settings.warehouse_path, vacuum=False) as con:
            plan = plan_publish(con, target.table, url, schedule)
            try:
                night = publish_night(
                    con,
                    url,
                    target.table,
                    context.run_id,
                    plan,
                    dry_run=dry_run,
                    max_retire_share=limit,
                    business_date=business_date,
                )
            except PublishRefused as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from exc
            verified = golden = None
            if not dry_run and night.plan.incremental:  # the rows it wrote, and the table's mark
                try:
                    verified = verify_night(
                        con, url, target.table, context.run_id, night.result.changed
                    )
                except PublishTargetError as exc:
                    raise dg.Failure(description=str(exc), allow_retries=False) from exc
            elif not dry_run:  # a full publish: the whole table read back and hashed
                golden = golden_content(con)
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
        counts = (
            f"{result.inserted} inserted, {result.updated} updated, {result.retired} retired, "
            f"{result.unchanged} unchanged"
        )
        metadata = {
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
        if dry_run:
            context.log.info(
                f"dry run: would insert {result.inserted}, update {result.updated}, retire "
                f"{result.retired} rows of {target.table} ({result.unchanged} unchanged); "
                "nothing was written to the ERP (the delta files show what would be)"
            )
            metadata["rows_published"] = 0  # nothing reached the ERP
            metadata["rows_that_would_change"] = result.changed
            yield dg.AssetObservation(asset_key=PUBLISHED, metadata=metadata)
            return
        context.log.info(f"published to {target.table}: {counts}")
        if verified is not None:
            yield dg.MaterializeResult(
                asset_key=PUBLISHED,
                metadata=row_count(verified.table_rows, target.table)
                | {"active_rows": verified.table_rows - verified.retired_rows}
                | metadata,
            )
            gate = gates.erp_matches_golden_tonight(verified, target.table)
        else:
            try:
                erp = erp_content(url, target.table)
            except PublishTargetError as exc:
                raise dg.Failure(description=str(exc), allow_retries=False) from exc
            yield dg.MaterializeResult(
                asset_key=PUBLISHED,
                metadata=row_count(erp.table_rows or 0, target.table)
                | {"active_rows": erp.rows}
                | metadata,
            )
            gate = gates.erp_matches_golden(
                golden.digest, golden.rows, erp.digest, erp.rows, target.table
            )
        yield from report_checks(context, [gate])

    return erp_customers
