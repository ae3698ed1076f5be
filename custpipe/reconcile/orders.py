"""Find orders whose systems disagree, against the golden customers."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from custpipe import warehouse

FINDINGS_SQL = (Path(__file__).parent / "orders.sql").read_text(encoding="utf-8")


def find_discrepancies(
    con: duckdb.DuckDBPyConnection,
    system_of_record: str | None,
    erp_source: str | None,
    tolerance: float,
    date_window_days: int = 3,
) -> pd.DataFrame:
    """Every finding of the staged orders: duplicates, mismatches, missing, unknown customers.

    Orders pair across systems by number; unpaired ones by (golden customer, order date
    within `date_window_days`, amount within `tolerance`) as a fallback. Without a
    `system_of_record` (None) no order is compared across systems (no status_mismatch,
    amount_mismatch, order_number_mismatch, missing_in_<system>, duplicate_customer);
    every system's own findings (duplicate or numberless orders, unknown or quarantined
    customers, lines, codes, values) are still made. Without an `erp_source` there are no
    ERP customer numbers, so no duplicate_customer finding.
    """
    params = {
        "sor": system_of_record,
        "tol": tolerance,
        "erp_source": erp_source,
        "window": date_window_days,
    }
    return con.execute(FINDINGS_SQL, params).df()


def reconcile_orders(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    system_of_record: str | None,
    erp_source: str | None,
    tolerance: float,
    date_window_days: int = 3,
) -> dict[str, int]:
    """Replace recon.order_discrepancies with this run's findings; return counts by kind."""
    findings = find_discrepancies(con, system_of_record, erp_source, tolerance, date_window_days)
    findings["run_id"] = run_id
    warehouse.replace_rows(con, "recon.order_discrepancies", findings)
    return {str(k): int(v) for k, v in findings["kind"].value_counts().sort_index().items()}
