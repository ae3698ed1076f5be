"""The DuckDB warehouse: connection, contract DDL, and small write helpers."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import pandas as pd

DDL = (Path(__file__).parent / "warehouse.sql").read_text(encoding="utf-8")

CONTRACT_TABLES: tuple[str, ...] = (
    "staging.customers",
    "quality.quarantine",
    "mdm.golden_customers",
    "mdm.customer_xref",
    "mdm.match_review",
    "recon.order_discrepancies",
    "quality.scorecard",
)


@contextmanager
def connect(path: Path, read_only: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating the contract tables when writable) and close it after use."""
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist yet: run the nightly job first")
    path.parent.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(path), read_only=read_only)
    try:
        if not read_only:
            con.execute(DDL)
        yield con
    finally:
        con.close()


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction: committed on success, rolled back on any error."""
    con.execute("BEGIN TRANSACTION")
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    where: str = "TRUE",
    params: list | None = None,
) -> int:
    """Delete rows matching `where` and insert `frame` (by column name), in one transaction."""
    with transaction(con):
        con.execute(f"DELETE FROM {table} WHERE {where}", params or [])
        return append_rows(con, table, frame)


def upsert_rows(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, keys: list[str]
) -> int:
    """Replace the rows of `table` that share `keys` with a row of `frame`, in one transaction."""
    if frame.empty:
        return 0
    con.register("_keys", frame[keys].drop_duplicates())
    try:
        with transaction(con):
            match = " AND ".join(f"t.{k} = k.{k}" for k in keys)
            con.execute(f"DELETE FROM {table} t WHERE EXISTS (SELECT 1 FROM _keys k WHERE {match})")
            return append_rows(con, table, frame)
    finally:
        con.unregister("_keys")


def append_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Insert `frame` into `table` matching columns by name."""
    if frame.empty:
        return 0
    con.register("_incoming", frame)
    try:
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM _incoming")
    finally:
        con.unregister("_incoming")
    return len(frame)


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts of the contract tables."""
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in CONTRACT_TABLES}
