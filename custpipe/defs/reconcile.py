"""Reconciliation asset: orders across systems against the golden customers."""

from datetime import UTC, datetime

import dagster as dg

from custpipe import gates, warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import (
    WAREHOUSE_POOL,
    check_result,
    check_spec,
    md_table,
    plan_metadata,
    row_count,
    schedule_of,
    table_definition_metadata,
)
from custpipe.defs.consolidate import GOLDEN, XREF
from custpipe.defs.resources import CustpipeResource, RunOptions, gx_on_spark, spark_runner
from custpipe.incremental import describe_differences, plan_stage
from custpipe.quality.validate import plan_orders, validate_orders
from custpipe.reconcile.orders import STAGE, ReconcileRules, fingerprint_parts, reconcile

DISCREPANCIES = dg.AssetKey(["recon", "order_discrepancies"])
TABLE = "recon.order_discrepancies"


def build_reconcile_asset(cfg: PipelineConfig) -> dg.AssetsDefinition:
    """recon.order_discrepancies, with two warning checks (custpipe.gates): findings by kind,
    and the orders suite. Neither blocks: order problems never hold back the customer master."""
    order_sources = [name for name, s in cfg.sources.items() if s.orders is not None]

    @dg.asset(
        key=DISCREPANCIES,
        deps=[GOLDEN, XREF] + [dg.AssetKey(["staging", s]) for s in order_sources],
        group_name="recon",
        pool=WAREHOUSE_POOL,
        description="recon.order_discrepancies: one row per order finding (status/amount "
        "mismatch, missing in a system, unknown or duplicate customer, duplicate order).",
        check_specs=[
            check_spec(gates.NO_DISCREPANCIES),
            check_spec(gates.ORDERS_SUITE_PASSES),
        ],
        kinds={"duckdb"},
        owners=cfg.owners,
        metadata=table_definition_metadata(TABLE),
    )
    def order_discrepancies(
        context: dg.AssetExecutionContext, custpipe: CustpipeResource, run_options: RunOptions
    ):
        run_cfg = custpipe.pipeline  # this run's configuration
        rc = run_cfg.reconcile
        rules = ReconcileRules(
            rc.system_of_record,
            run_cfg.publish.erp_source,
            rc.amount_tolerance,
            rc.date_window_days,
        )
        sources = [name for name, s in run_cfg.sources.items() if s.orders is not None]
        schedule = schedule_of(context, run_cfg, run_options)
        business_date = schedule.business_date
        runner = spark_runner(custpipe, run_options, context)  # None: engine duckdb
        with warehouse.connect(custpipe.settings.warehouse_path, vacuum=False) as con:
            plan = plan_stage(con, STAGE, "", fingerprint_parts(rules, sources), schedule)
            if plan.reason:
                context.log.info(f"reconcile: full recompute — {plan.reason}")
            done = reconcile(
                con,
                rules,
                plan,
                context.run_id,
                business_date,
                datetime.now(UTC).replace(tzinfo=None),
                spark=runner,
            )
            # the orders suite validates the changed orders only
            checks = plan_orders(con, custpipe.settings, schedule)
            if checks.reason:
                context.log.info(f"orders suite: full validation — {checks.reason}")
            suite, rules_df, orders = validate_orders(
                con,
                custpipe.settings,
                context.run_id,
                datetime.now(UTC).replace(tzinfo=None),
                run_cfg.quality.results_limit,
                plan=checks,
                business_date=business_date,
                spark=gx_on_spark(custpipe, run_options),
            )
            (rows,) = con.execute(f"SELECT count(*) FROM {TABLE}").fetchone()
        counts = done.counts
        if done.differences:
            context.log.error(
                "reconcile: the full recompute differs from the incremental state: "
                + describe_differences(done.differences)
            )
        table = md_table(
            [{"kind": k, "findings": v} for k, v in counts.items()], ["kind", "findings"]
        )
        metadata = row_count(rows, TABLE) | {
            "orders": orders,
            "findings": sum(counts.values()),
            "by_kind": table,
        }
        metadata |= plan_metadata(plan) | {
            "findings_made_on": runner.describe() if runner else "duckdb",
            "changed_inputs": done.changed,
            "orders_reconciled": "all" if done.everything else done.reconciled,
            "compared_in_full": ", ".join(done.compared_in_full) or "none",
            "orders_validation": checks.mode + (f" ({checks.reason})" if checks.reason else ""),
        }
        if plan.compare:
            metadata["consistency"] = (
                "identical" if not done.differences else describe_differences(done.differences)
            )
        metadata["system_of_record"] = rc.system_of_record or (
            "none configured: orders are not compared across systems, only each system's "
            "own findings are reported"
        )
        yield dg.MaterializeResult(metadata=metadata)
        yield check_result(gates.no_discrepancies(counts, orders, rc.discrepancy_warn_rate))
        yield check_result(gates.orders_suite_passes(suite, rules_df.to_dict("records"), orders))

    return order_discrepancies
