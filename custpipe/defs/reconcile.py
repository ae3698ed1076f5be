"""Reconciliation asset: orders across systems against the golden customers."""

from datetime import UTC, datetime

import dagster as dg

from custpipe import warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import WAREHOUSE_POOL, md_table
from custpipe.defs.consolidate import GOLDEN, XREF
from custpipe.defs.resources import CustpipeResource
from custpipe.quality.validate import validate_orders
from custpipe.reconcile.orders import reconcile_orders

DISCREPANCIES = dg.AssetKey(["recon", "order_discrepancies"])


def build_reconcile_asset(cfg: PipelineConfig) -> dg.AssetsDefinition:
    """recon.order_discrepancies, with a non-blocking check reporting counts by kind."""
    order_sources = [name for name, s in cfg.sources.items() if s.orders is not None]

    @dg.asset(
        key=DISCREPANCIES,
        deps=[GOLDEN, XREF] + [dg.AssetKey(["staging", s]) for s in order_sources],
        group_name="reconcile",
        pool=WAREHOUSE_POOL,
        description="recon.order_discrepancies: one row per order finding (status/amount "
        "mismatch, missing in a system, unknown or duplicate customer, duplicate order).",
        check_specs=[
            dg.AssetCheckSpec(
                "no_discrepancies",
                asset=DISCREPANCIES,
                description="Warns when the share of orders with findings exceeds "
                "reconcile.discrepancy_warn_rate.",
            ),
            dg.AssetCheckSpec(
                "orders_suite_passes",
                asset=DISCREPANCIES,
                description="The staged orders pass the 'orders' GX suite.",
            ),
        ],
        kinds={"duckdb"},
    )
    def order_discrepancies(context: dg.AssetExecutionContext, custpipe: CustpipeResource):
        rc = cfg.reconcile
        with warehouse.connect(custpipe.settings.warehouse_path) as con:
            counts = reconcile_orders(
                con,
                context.run_id,
                rc.system_of_record,
                cfg.publish.erp_source,
                rc.amount_tolerance,
                rc.date_window_days,
            )
            suite, rules, orders = validate_orders(
                con,
                custpipe.settings,
                context.run_id,
                datetime.now(UTC).replace(tzinfo=None),
                custpipe.pipeline.quality.results_limit,
            )
        failed_rules = [o for o in suite.outcomes if not o.success]
        table = md_table(
            [{"kind": k, "findings": v} for k, v in counts.items()], ["kind", "findings"]
        )
        yield dg.MaterializeResult(
            metadata={"orders": orders, "findings": sum(counts.values()), "by_kind": table}
        )
        findings = sum(counts.values())
        rate = round(findings / orders, 4) if orders else 0.0
        yield dg.AssetCheckResult(
            check_name="no_discrepancies",
            passed=rate <= rc.discrepancy_warn_rate,
            severity=dg.AssetCheckSeverity.WARN,
            description=f"{findings} findings for {orders} orders ({rate:.1%}; warns above "
            f"{rc.discrepancy_warn_rate:.0%})",
            metadata={"findings": findings, "finding_rate": rate, "by_kind": table},
        )
        yield dg.AssetCheckResult(
            check_name="orders_suite_passes",
            passed=not failed_rules,
            severity=dg.AssetCheckSeverity.ERROR if suite.blocked else dg.AssetCheckSeverity.WARN,
            metadata={
                "orders_evaluated": orders,
                "rules": md_table(
                    rules.to_dict("records"),
                    ["rule", "severity", "evaluated", "failed", "pass_rate"],
                ),
            },
        )

    return order_discrepancies
