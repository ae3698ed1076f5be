"""Find orders whose systems disagree, against the golden customers: every night, for the
orders whose findings can differ from the last run's (custpipe.reconcile.changes), or in full."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from pathlib import Path
from typing import TYPE_CHECKING

import duckdb
import pandas as pd

from custpipe import incremental, warehouse
from custpipe.incremental import StagePlan
from custpipe.reconcile import changes
from custpipe.spark.exchange import parts

FINDINGS_SQL = (Path(__file__).parent / "orders.sql").read_text(encoding="utf-8")
TABLE = "recon.order_discrepancies"
STAGE = "reconcile"
_SCOPE = "reconcile_scope"  # the relation orders.sql reads the order ids in scope from
#: what orders.sql reads of each table: what goes to Spark (engine: spark)
SPARK_INPUTS = {
    "staging.orders": "source_system, source_id, order_number, customer_ref, order_date, "
    "amount, currency, status, mapping_errors",
    "staging.order_lines": "source_system, order_number, line_amount",
    "staging.customers": "source_system, source_id",
    "mdm.customer_xref": "source_system, source_id, golden_id",
    "mdm.golden_customers": "golden_id, erp_customer_number",
}

if TYPE_CHECKING:
    from custpipe.spark.runners import SparkRunner


@dataclass(frozen=True)
class ReconcileRules:
    """What the findings mean: the system of record, the ERP source, the amount tolerance and
    the fallback pairing's date window (custpipe.config.ReconcileConfig, publish.erp_source)."""

    system_of_record: str | None
    erp_source: str | None
    tolerance: float
    date_window_days: int = 3

    def sql_params(self) -> dict:
        """The parameters of orders.sql (less $all)."""
        return {
            "sor": self.system_of_record,
            "tol": self.tolerance,
            "erp_source": self.erp_source,
            "window": self.date_window_days,
        }


@dataclass(frozen=True)
class Reconciliation:
    """What a reconciliation did: findings by kind (the whole table), how many staged orders
    and order-line groups changed, how many order ids were reconciled again, and a full
    recompute's differences from the incremental state (None: not compared)."""

    counts: dict[str, int]
    changed: int
    reconciled: int  # order ids whose findings were made again (full: every staged order)
    differences: dict[str, int] | None = None
    everything: bool = True  # every finding was made again
    compared_in_full: tuple[str, ...] = ()  # inputs whose aggregate did not prove the rest


def fingerprint_parts(rules: ReconcileRules, order_sources: list[str]) -> dict[str, str]:
    """The reconcile stage's fingerprint: a change of any part forces a full recompute."""
    return incremental.fingerprint(
        orders_sql=FINDINGS_SQL + changes.STATE_SQL_TEXT,
        reconcile=asdict(rules),
        order_sources=sorted(order_sources),
    )


def _findings_select(scope: str | None) -> str:
    """orders.sql over every order (`scope` None) or the order ids of relation `scope`."""
    sql = FINDINGS_SQL.replace("reconcile_scope", scope or "(SELECT NULL::VARCHAR AS order_id)")
    return f"SELECT * FROM ({sql})"


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
    rules = ReconcileRules(system_of_record, erp_source, tolerance, date_window_days)
    return con.execute(_findings_select(None), rules.sql_params() | {"all": True}).df()


def find_scoped(con: duckdb.DuckDBPyConnection, rules: ReconcileRules, scope: str) -> pd.DataFrame:
    """The findings of the order ids in relation `scope` (column order_id): exactly the rows
    of :func:`find_discrepancies` with those ids."""
    return con.execute(_findings_select(scope), rules.sql_params() | {"all": False}).df()


def _on_spark(
    con: duckdb.DuckDBPyConnection, rules: ReconcileRules, scope: str | None, spark: SparkRunner
) -> str:
    """orders.sql run on Spark (written for it by custpipe.spark.sql) over the columns it
    reads of the warehouse's tables; its findings (of the ids in `scope`, if given) are put
    in the temp table returned. Spark makes every finding and the scope is kept here: the
    findings of a scope are exactly those rows of every finding (:func:`find_scoped`), and
    Spark plans the SQL's scope filters slower than no filter (1M records: 88 s for every
    finding, 144 s for a 10 % night's scope)."""
    con.complete()  # a result left partly fetched would refuse the queries below
    kept = "" if scope is None else f"WHERE order_id IN (SELECT order_id FROM {scope})"
    with spark.exchange() as work:
        spark.query(
            _findings_select(None),
            {
                name: work.put(con, name, f"SELECT {columns} FROM {name}")
                for name, columns in SPARK_INPUTS.items()
            },
            work.result,
            rules.sql_params() | {"all": True},
        )
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE spark_findings AS FROM {parts(work.result)} {kept}"
        )
    return "spark_findings"


def _findings(
    con: duckdb.DuckDBPyConnection,
    rules: ReconcileRules,
    run_id: str,
    scope: str | None,
    spark: SparkRunner | None,
) -> tuple[str, dict]:
    """The query of the findings (of every order, or of the ids in `scope`) with a run_id
    column, and its parameters; with `spark`, made on Spark first (:func:`_on_spark`)."""
    if spark is not None:
        return f"SELECT *, $run_id AS run_id FROM {_on_spark(con, rules, scope, spark)}", {
            "run_id": run_id
        }
    params = rules.sql_params() | {"all": scope is None, "run_id": run_id}
    return f"SELECT *, $run_id AS run_id FROM ({_findings_select(scope)})", params


def _replace_all(
    con: duckdb.DuckDBPyConnection,
    rules: ReconcileRules,
    run_id: str,
    spark: SparkRunner | None = None,
) -> None:
    """Every finding made again (orders.sql over every order), and the state with it."""
    warehouse.replace_table_from(con, TABLE, *_findings(con, rules, run_id, None, spark))
    changes.replace_state(con)
    con.execute("DROP TABLE IF EXISTS temp.main.spark_findings")


def _reconcile_scope(
    con: duckdb.DuckDBPyConnection,
    rules: ReconcileRules,
    run_id: str,
    spark: SparkRunner | None = None,
) -> None:
    """The findings of the order ids in scope made again; the state's changed rows updated."""
    query, params = _findings(con, rules, run_id, _SCOPE, spark)
    con.execute(f"DELETE FROM {TABLE} WHERE order_id IN (SELECT order_id FROM {_SCOPE})")
    con.execute(f"INSERT INTO {TABLE} BY NAME {query}", params)
    changes.update_state(con)
    con.execute("DROP TABLE IF EXISTS temp.main.spark_findings")


def _counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    rows = con.execute(f"SELECT kind, count(*) FROM {TABLE} GROUP BY kind ORDER BY kind")
    return {str(k): int(v) for k, v in rows.fetchall()}


def reconcile(
    con: duckdb.DuckDBPyConnection,
    rules: ReconcileRules,
    plan: StagePlan,
    run_id: str,
    business_date: date | None,
    at: datetime,
    spark: SparkRunner | None = None,
) -> Reconciliation:
    """Bring recon.order_discrepancies up to date as `plan` says, in one transaction with
    the reconciliation's state (recon.order_state, recon.order_line_state) and its
    ops.stage_runs row. `spark` (engine: spark): the findings are made on Spark from the
    same SQL (:func:`_on_spark`); the state and the table stay in the warehouse.

    Incremental: the findings of the order ids whose findings can differ from the last run's
    (:func:`custpipe.reconcile.changes.affected_orders`) are deleted and made again. Full:
    every finding is made again; if `plan.compare`, tonight's incremental run is made first
    and rolled back, and the full findings are compared with its image
    (:func:`custpipe.incremental.hash_differences`).
    """
    expected = None
    if plan.compare:  # tonight's incremental run, undone: an image of its findings is kept
        with warehouse.rolled_back(con):
            _incremental(con, rules, run_id, spark)
            expected = {TABLE: incremental.row_hashes(con, TABLE)}
            changes.drop_temporaries(con, _SCOPE)
    with warehouse.transaction(con):
        if plan.incremental:
            found = _incremental(con, rules, run_id, spark)
        else:
            (staged,) = con.execute("SELECT count(*) FROM staging.orders").fetchone()
            found = changes.Changes(int(staged), int(staged), everything=True)
            _replace_all(con, rules, run_id, spark)
        diffs = None if expected is None else incremental.hash_differences(con, expected)
        incremental.record_stage(con, plan, run_id, business_date, at, found.changed, diffs)
        changes.drop_temporaries(con, _SCOPE)
        counts = _counts(con)
    return Reconciliation(
        counts, found.changed, found.scope, diffs, found.everything, found.compared_in_full
    )


def _incremental(
    con: duckdb.DuckDBPyConnection,
    rules: ReconcileRules,
    run_id: str,
    spark: SparkRunner | None = None,
):
    """Make again the findings of the orders whose findings can differ from the last run's;
    return what changed (in the caller's transaction)."""
    found = changes.affected_orders(con, rules.system_of_record, _SCOPE)
    if found.everything:
        _replace_all(con, rules, run_id, spark)
    elif found.scope:
        _reconcile_scope(con, rules, run_id, spark)
    else:  # nothing a finding reads changed: only the state's runs move on
        changes.update_state(con)
    return found


def reconcile_orders(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    system_of_record: str | None,
    erp_source: str | None,
    tolerance: float,
    date_window_days: int = 3,
) -> dict[str, int]:
    """Replace recon.order_discrepancies with this run's findings (a full recompute, that
    records no stage run); return counts by kind."""
    rules = ReconcileRules(system_of_record, erp_source, tolerance, date_window_days)
    with warehouse.transaction(con):
        _replace_all(con, rules, run_id)
        changes.drop_temporaries(con)
        return _counts(con)
