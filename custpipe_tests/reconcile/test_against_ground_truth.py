"""Reconciliation on generated data finds exactly the discrepancies the generator injected.

The staged orders and customers come from the nightly job's extract and staging steps on the
demo sources; the golden customers are taken from the generator's ground truth (one golden
record per entity, carrying its lowest active ERP number) so that what is measured here is
the reconciliation alone, not the matching in front of it. The end-to-end figure, with the
pipeline's own matching, is in the README (Reconciliation).
"""

from __future__ import annotations

import shutil

import duckdb
import pandas as pd

from custpipe.demo.generate import ORDER_KINDS
from custpipe.reconcile.orders import find_discrepancies
from custpipe_tests.conftest import BUSINESS_DATE, make_deployment


def truth_golden(con: duckdb.DuckDBPyConnection, customers: pd.DataFrame) -> None:
    """Replace the xref and golden records by the ground truth's entities."""
    xref = customers.rename(columns={"entity_id": "golden_id"})  # noqa: F841
    con.execute("DELETE FROM mdm.customer_xref")
    con.execute(
        "INSERT INTO mdm.customer_xref (source_system, source_id, golden_id) "
        "SELECT source_system, source_id, golden_id FROM xref"
    )
    con.execute("DELETE FROM mdm.golden_customers")
    con.execute("""
        INSERT INTO mdm.golden_customers (golden_id, erp_customer_number)
        SELECT x.golden_id,
               min(s.source_id) FILTER (WHERE s.source_system = 'erp' AND NOT s.is_deleted)
        FROM mdm.customer_xref x LEFT JOIN staging.customers s USING (source_system, source_id)
        GROUP BY x.golden_id""")


def stage_only(settings) -> None:
    """Extract and stage every source (the nightly job's first two steps per source): the
    staged orders and customers, without the matching and publishing this test replaces."""
    import dagster as dg

    from custpipe.definitions import build_definitions

    job = build_definitions(settings).resolve_job_def("nightly")
    steps = [n.name for n in job.nodes if n.name.startswith(("extract__", "staging__"))]
    assert len(steps) == 8
    result = job.execute_in_process(
        partition_key=BUSINESS_DATE.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
        op_selection=steps,
    )
    assert result.success


def test_exactly_the_injected_discrepancies_are_found(tmp_path):
    deployment = make_deployment(tmp_path, customers=1500, seed=11)
    stage_only(deployment.settings)
    copy = tmp_path / "warehouse.duckdb"
    shutil.copy(deployment.settings.warehouse_path, copy)
    truth = deployment.ground_truth
    customers = pd.read_csv(truth / "customers.csv", dtype=str)
    injected = pd.read_csv(truth / "order_discrepancies.csv", dtype=str)
    con = duckdb.connect(str(copy))
    try:
        truth_golden(con, customers)
        staged = con.execute("SELECT count(*) FROM staging.orders").fetchone()[0]
        found = find_discrepancies(con, "erp", "erp", 0.01, date_window_days=3)
    finally:
        con.close()
    expected = set(zip(injected["order_number"], injected["kind"], strict=True))
    got = set(zip(found["order_id"], found["kind"], strict=True))
    assert len(found) == len(got)  # one finding per (order, kind)
    assert got - expected == set()  # no false finding
    assert expected - got == set()  # every injected discrepancy found
    kinds = injected["kind"].value_counts()
    assert set(kinds.index) == set(ORDER_KINDS)  # every kind the generator injects
    assert staged > 2 * len(expected)  # most orders are clean, and none of them is a finding
