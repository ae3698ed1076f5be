"""`warehouse.registered`: frames are handed to DuckDB by an explicit name, for one block."""

import duckdb
import pandas as pd
import pytest

from custpipe import warehouse


@pytest.fixture
def con():
    con = duckdb.connect()
    con.execute("CREATE TABLE t (a INTEGER PRIMARY KEY, b VARCHAR)")
    yield con
    con.close()


def _exists(con, name: str) -> bool:
    try:
        con.execute(f"SELECT * FROM {name} LIMIT 0").fetchall()
    except duckdb.CatalogException:
        return False
    return True


def test_the_frame_is_readable_in_the_block_and_gone_after_it(con):
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    with warehouse.registered(con, "rows_in", frame) as name:
        assert name == "rows_in"
        assert con.execute("SELECT sum(a) FROM rows_in").fetchone()[0] == 3
    assert not _exists(con, "rows_in")


def test_the_frame_is_unregistered_when_the_block_fails(con):
    frame = pd.DataFrame({"a": [1]})
    with pytest.raises(ZeroDivisionError), warehouse.registered(con, "rows_in", frame):
        raise ZeroDivisionError
    assert not _exists(con, "rows_in")


def test_a_failed_insert_in_a_transaction_reports_its_own_error(con):
    duplicate = pd.DataFrame({"a": [1, 1], "b": ["x", "y"]})
    with pytest.raises(duckdb.ConstraintException), warehouse.transaction(con):
        warehouse.append_rows(con, "t", duplicate)
    assert con.execute("SELECT count(*) FROM t").fetchone()[0] == 0
    assert not _exists(con, "incoming_rows")
    assert warehouse.append_rows(con, "t", duplicate.head(1)) == 1  # the connection is usable


def test_a_failed_upsert_reports_its_own_error_and_changes_nothing(con):
    warehouse.append_rows(con, "t", pd.DataFrame({"a": [1], "b": ["old"]}))
    with pytest.raises(duckdb.ConstraintException):
        warehouse.upsert_rows(con, "t", pd.DataFrame({"a": [1, 1], "b": ["n", "m"]}), ["a"])
    assert con.execute("SELECT * FROM t").fetchall() == [(1, "old")]
    assert not _exists(con, "incoming_keys")


def test_replace_table_from_a_query_keeps_the_ddl_and_counts_rows(con):
    warehouse.append_rows(con, "t", pd.DataFrame({"a": [1], "b": ["old"]}))
    rows = warehouse.replace_table_from(
        con, "main.t", "SELECT range::INTEGER AS a, $b AS b FROM range(3)", {"b": "new"}
    )
    assert rows == 3
    assert con.execute("SELECT a, b FROM t ORDER BY a").fetchall() == [
        (0, "new"),
        (1, "new"),
        (2, "new"),
    ]
    with pytest.raises(duckdb.ConstraintException):  # the primary key came back with the DDL
        con.execute("INSERT INTO t VALUES (0, 'again')")


def test_a_result_left_partly_fetched_does_not_block_an_append(con):
    con.execute("SELECT * FROM range(10)").fetchone()  # an unfinished result on `con`
    assert warehouse.append_rows(con, "main.t", pd.DataFrame({"a": [1], "b": ["x"]})) == 1
