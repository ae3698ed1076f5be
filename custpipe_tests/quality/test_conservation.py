import json

import duckdb
import pandas as pd
import pytest

from custpipe.quality.conservation import conservation_report
from custpipe.warehouse import append_rows
from custpipe_tests.conftest import stage_landed


@pytest.fixture
def con(empty_warehouse, tmp_path):
    c = empty_warehouse
    landing = stage_landed(c, tmp_path, ["1", "2", "3"])
    append_rows(
        c,
        "quality.validation_runs",
        pd.DataFrame(
            [{"run_id": "r", "source_system": "erp", "validated_at": pd.Timestamp("2026-11-28")}]
        ),
    )
    append_rows(
        c,
        "quality.quarantine",
        pd.DataFrame([{"source_system": "erp", "source_id": "3", "rule": "x", "run_id": "r"}]),
    )
    append_rows(c, "mdm.golden_customers", pd.DataFrame({"golden_id": ["G1"]}))
    return c, landing


def xref(con, ids):
    con.execute("DELETE FROM mdm.customer_xref")
    append_rows(
        con,
        "mdm.customer_xref",
        pd.DataFrame([{"source_system": s, "source_id": i, "golden_id": g} for s, i, g in ids]),
    )


def test_holds_when_every_record_is_in_exactly_one_place(con):
    c, _ = con
    xref(c, [("erp", "1", "G1"), ("erp", "2", "G1")])
    report = conservation_report(c, ["erp"])
    assert report.ok, report.summary()
    assert (report.staged, report.in_xref, report.quarantined) == (3, 2, 1)


def test_a_lost_record_violates(con):
    c, _ = con
    xref(c, [("erp", "1", "G1")])
    report = conservation_report(c, ["erp"])
    assert not report.ok and report.in_neither == 1
    assert "VIOLATED" in report.summary()


def test_a_record_in_both_places_violates(con):
    c, _ = con
    xref(c, [("erp", "1", "G1"), ("erp", "2", "G1"), ("erp", "3", "G1")])
    assert conservation_report(c, ["erp"]).in_both == 1


def test_landed_rows_that_were_not_staged_violate(con):
    c, landing = con
    (landing / "manifest.json").write_text(json.dumps({"rows": 4}))
    xref(c, [("erp", "1", "G1"), ("erp", "2", "G1")])
    report = conservation_report(c, ["erp"])
    assert not report.ok and (report.landing_rows, report.landing_staged) == (4, 3)


def test_orphan_xref_rows_violate(con):
    c, _ = con
    xref(c, [("erp", "1", "G1"), ("erp", "2", "G9"), ("gone", "7", "G1")])
    report = conservation_report(c, ["erp"])
    assert report.orphans == 2 and not report.ok


def test_an_older_warehouse_is_migrated_on_connect(tmp_path):
    from custpipe import warehouse

    path = tmp_path / "w.duckdb"
    old = duckdb.connect(str(path))
    old.execute("CREATE SCHEMA staging; CREATE TABLE staging.customers (source_system VARCHAR)")
    old.close()
    with warehouse.connect(path) as c:
        cols = {
            r[0]
            for r in c.execute(
                "SELECT column_name FROM information_schema.columns WHERE table_name = 'customers'"
            ).fetchall()
        }
    assert {"status", "mapping_errors", "record_hash"} <= cols
