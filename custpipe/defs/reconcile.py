"""Reconciliation asset: orders across systems against the golden customers."""

from __future__ import annotations

import dagster as dg

from custpipe import warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import WAREHOUSE_POOL, md_table
from custpipe.defs.consolidate import GOLDEN, XREF
from custpipe.defs.resources import CustpipeResource
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
        check_specs=[dg.AssetCheckSpec("no_discrepancies", asset=DISCREPANCIES,
                                       description="Warns while orders disagree across systems.")],
        kinds={"duckdb"},
    )
    def order_discrepancies(context: dg.AssetExecutionContext, custpipe: CustpipeResource):
        rc = cfg.reconcile
        with warehouse.connect(custpipe.settings.warehouse_path) as con:
            counts = reconcile_orders(con, context.run_id, rc.system_of_record,
                                      cfg.publish.erp_source, rc.amount_tolerance)
            orders = con.execute("SELECT count(*) FROM staging.orders").fetchone()[0]
        table = md_table([{"kind": k, "findings": v} for k, v in counts.items()], ["kind", "findings"])
        yield dg.MaterializeResult(metadata={"orders": orders, "findings": sum(counts.values()),
                                             "by_kind": table})
        yield dg.AssetCheckResult(check_name="no_discrepancies", passed=not counts,
                                  severity=dg.AssetCheckSeverity.WARN,
                                  metadata={"findings": sum(counts.values()), "by_kind": table})

    return order_discrepancies
