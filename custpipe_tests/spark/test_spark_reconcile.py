"""Order findings made on Spark (engine: spark) equal the DuckDB engine's: night after night of
random changes (full and scoped reconciliations), on amounts whose two-decimal text Java and
DuckDB round differently, and without a system of record or an ERP source."""

from __future__ import annotations

import random
from datetime import datetime, timedelta

import pandas as pd
import pytest

from custpipe.config import SparkConfig
from custpipe.reconcile import orders as recon
from custpipe.spark.runners import InSession
from custpipe.warehouse import append_rows
from custpipe_tests.reconcile.test_incremental_reconcile import (  # noqa: F401 (fixture)
    RULES,
    _random_step,
    assert_identical,
    con,
    order,
    plan,
)


@pytest.fixture
def runner(spark, tmp_path):
    return InSession(SparkConfig(), tmp_path)


def _half_cents(db) -> None:
    """Amounts whose %.2f differs between Java (half-up on the decimal text) and DuckDB."""
    rows = [
        order("erp", "H1", "H1", "K4", amount=1.005),
        order("sales", "SH-1", "H1", "S4", amount=2.675),  # amount mismatch: both printed
        order("erp", "H2", "H2", "K4", amount=1.015),
    ]
    append_rows(db, "staging.orders", pd.DataFrame(rows))
    lines = pd.DataFrame(
        [("erp", "H2", 1, 0.125), ("erp", "H2", 2, 0.5)],
        columns=["source_system", "order_number", "line_number", "line_amount"],
    )
    append_rows(db, "staging.order_lines", lines)


def _night(db, runner, run_id: str, serial: int, rules=RULES):
    p = plan(db, rules)
    at = datetime(2026, 12, 1, 2, 0) + timedelta(minutes=serial)
    return p, recon.reconcile(db, rules, p, run_id, None, at, spark=runner)


def test_nights_on_spark_end_each_in_duckdbs_findings(con, runner):  # noqa: F811
    _half_cents(con)
    rng = random.Random(5)
    con.execute("INSERT INTO staging.customers (source_system, source_id) VALUES ('sales', 'SX')")
    first, _ = _night(con, runner, "r0", 0)
    assert first.mode == "full"
    found = assert_identical(con)
    printed = set(found["source_value"].dropna()) | set(found["other_value"].dropna())
    assert {"2.68 EUR", "1.02 EUR"}.isdisjoint(printed)  # Java's half-up text
    assert {"1.00 EUR", "2.67 EUR"} <= printed
    scoped = 0
    for serial in range(1, 4):
        _random_step(con, rng, serial, stamped=True)
        p, done = _night(con, runner, f"r{serial}", serial)
        assert p.mode == "incremental"
        scoped += not done.everything and done.reconciled > 0
        assert_identical(con)
    assert scoped >= 2  # most nights reconciled a scope, not everything


@pytest.mark.parametrize(
    "rules",
    [
        recon.ReconcileRules(None, "erp", 0.01, 3),  # no system of record
        recon.ReconcileRules("erp", None, 0.01, 3),  # no ERP source
        recon.ReconcileRules("sales", "erp", 0.5, 0),  # another system of record
    ],
    ids=["no-sor", "no-erp-source", "sales-sor"],
)
def test_full_findings_on_spark_equal_duckdbs_whatever_the_rules(con, runner, rules):  # noqa: F811
    _half_cents(con)
    p, done = _night(con, runner, "r0", 0, rules)
    assert p.mode == "full" and done.everything
    found = assert_identical(con, rules)
    assert len(found) > 3
