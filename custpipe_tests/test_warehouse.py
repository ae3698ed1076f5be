import duckdb
import pandas as pd
import pytest

from custpipe import warehouse


def test_replace_table_swaps_rows_keeps_the_ddl_and_rolls_back_as_a_whole():
    con = duckdb.connect()
    con.execute(warehouse.DDL)
    first = pd.DataFrame(
        {"source_system": ["erp", "crm"], "source_id": ["1", "2"], "golden_id": ["G1", "G1"]}
    )
    warehouse.replace_table(con, "mdm.customer_xref", first)
    warehouse.replace_table(con, "mdm.customer_xref", first.iloc[:1])
    assert con.execute("SELECT source_id FROM mdm.customer_xref").fetchall() == [("1",)]
    before = con.execute(
        "SELECT sql FROM duckdb_tables() WHERE table_name = 'customer_xref'"
    ).fetchone()
    bad = pd.DataFrame({"source_system": [None], "source_id": ["3"], "golden_id": ["G3"]})
    with pytest.raises(duckdb.ConstraintException), warehouse.transaction(con):
        warehouse.replace_table(con, "mdm.golden_customers", pd.DataFrame({"golden_id": ["G9"]}))
        warehouse.replace_table(con, "mdm.customer_xref", bad)  # NOT NULL kept by the DDL
    assert con.execute("SELECT source_id FROM mdm.customer_xref").fetchall() == [("1",)]
    assert con.execute("SELECT count(*) FROM mdm.golden_customers").fetchone()[0] == 0
    after = con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'customer_xref'")
    assert after.fetchone() == before
