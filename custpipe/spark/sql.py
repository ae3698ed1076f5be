"""custpipe's SQL on Spark: each query is kept once, in DuckDB's dialect, and written again
for Spark by sqlglot when the night runs on `engine: spark`.

sqlglot translates the dialect (`arg_min` → `min_by`, `string_agg(DISTINCT … ORDER BY …)` →
`listagg … WITHIN GROUP`, `::INT` → `CAST`, the NULLS ordering each engine defaults to).
Where the two engines' functions differ in value rather than in name, :func:`to_spark`
rewrites the expression so that Spark returns DuckDB's value:

- ``json_object(k, v, …)`` → ``to_json(named_struct(k, v, …))``, run with null fields kept
  (``spark.sql.jsonGenerator.ignoreNullFields=false``) as DuckDB writes them: ``{"a":null}``;
- ``epoch(ts)`` → ``unix_micros(CAST(ts AS TIMESTAMP)) / 1e6``: DuckDB's epoch keeps the
  microseconds, Spark's ``unix_timestamp`` drops them (the session's time zone is UTC, as
  every stored stamp is, see custpipe.spark.session);
- ``printf(format, …)`` → ``duckdb_printf(format, named_struct(…))``, a vectorised UDF that
  runs DuckDB's own printf on each Arrow batch: Java's ``format_string`` rounds the decimal
  text of a double half-up (``%.2f`` of 1.005 is ``1.01``), DuckDB the exact binary value
  (``1.00``), and the findings' amounts are doubles;
- ``$name`` parameters stay parameters (``:name``, bound by ``SparkSession.sql(args=…)``).

The tables a query names reach Spark as Parquet files that the executors read (the warehouse
writes them, custpipe.spark.exchange), as uniquely named views for the one query (a session
serves many nights), and the executors write its result as Parquet parts that the warehouse
reads back: no row of either passes through the driver. Not as
``createDataFrame(arrow)``: that holds the rows in the query's plan, and Spark's optimizer
copies them for every reference to a CTE that reads them — orders.sql reads the staged
orders in a dozen places, and a 100,000-customer night ran the driver out of its 4 GB heap.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pandas as pd  # module level: Spark reads the UDF's type hints from its globals
import pyarrow as pa
import sqlglot
from sqlglot import exp

#: what the query runs with, whatever the deployment's spark.conf says (see the docstring);
#: timestamps written as Parquet's microseconds, which DuckDB reads (Spark's default, INT96,
#: is a legacy type)
QUERY_CONF = {
    "spark.sql.jsonGenerator.ignoreNullFields": "false",
    "spark.sql.parquet.outputTimestampType": "TIMESTAMP_MICROS",
}


def _duckdb_printf():
    """A vectorised Spark UDF: DuckDB's printf(format, *args) on each batch, the arguments
    passed as one struct."""
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("string")
    def duckdb_printf(fmt: pd.Series, args: pd.DataFrame) -> pd.Series:
        import duckdb

        batch = pa.Table.from_pandas(args, preserve_index=False)  # a missing double: null
        batch = batch.append_column("custpipe_format", pa.array(fmt, type=pa.string()))
        columns = ", ".join(f'"{name}"' for name in args.columns)
        with duckdb.connect() as con:
            con.register("batch", batch)
            return (
                con.execute(f"SELECT printf(custpipe_format, {columns}) FROM batch").df().iloc[:, 0]
            )

    return duckdb_printf


def _rewrite(node: exp.Expression) -> exp.Expression:
    """DuckDB functions whose Spark namesake returns another value, written as Spark
    expressions that return DuckDB's (see the module docstring)."""
    if isinstance(node, exp.Anonymous) and str(node.this).lower() == "printf":
        fmt, *args = node.expressions
        fields = [part for i, arg in enumerate(args) for part in (exp.Literal.string(f"a{i}"), arg)]
        return exp.func("duckdb_printf", fmt, exp.func("named_struct", *fields))
    if isinstance(node, exp.JSONObject):
        pairs = [part for kv in node.expressions for part in (kv.this, kv.expression)]
        return exp.func("to_json", exp.func("named_struct", *pairs))
    if isinstance(node, exp.TimeToUnix):
        stamp = exp.cast(node.this, exp.DataType.build("TIMESTAMP"))
        return exp.Div(this=exp.func("unix_micros", stamp), expression=exp.Literal.number("1e6"))
    return node


def to_spark(sql: str, views: dict[str, str] | None = None) -> str:
    """`sql` (DuckDB) written in Spark's dialect; `views` renames the tables it reads."""
    tree = sqlglot.parse_one(sql, read="duckdb").transform(_rewrite)
    if views:
        tree = exp.replace_tables(tree, views)
    return tree.sql(dialect="spark")


@contextmanager
def query_conf(session) -> Iterator[None]:
    """Run the block with :data:`QUERY_CONF` set on `session`, then restore its settings."""
    saved = {key: session.conf.get(key, None) for key in QUERY_CONF}
    try:
        for key, value in QUERY_CONF.items():
            session.conf.set(key, value)
        yield
    finally:
        for key, value in saved.items():
            if value is None:
                session.conf.unset(key)
            else:
                session.conf.set(key, value)


def write_result(frame, out: Path) -> None:
    """`frame` (a Spark DataFrame) written by the executors as Parquet parts in the folder
    `out` (replaced), under :data:`QUERY_CONF` (null JSON fields kept, timestamps as micros)."""
    with query_conf(frame.sparkSession):
        frame.write.mode("overwrite").parquet(str(out))


def run_query(
    session,
    sql: str,
    tables: dict[str, Path],
    out: Path,
    params: dict[str, Any] | None = None,
) -> None:
    """Run `sql` (DuckDB's dialect, :func:`to_spark`) on `session` over `tables` (the name
    the query uses -> a Parquet file) with `params` bound to its `$name` parameters; the
    executors write the result as Parquet parts in the folder `out`."""
    suffix = uuid.uuid4().hex
    views = {name: f"custpipe_{name.replace('.', '_')}_{suffix}" for name in tables}
    try:
        session.udf.register("duckdb_printf", _duckdb_printf())
        for name, path in tables.items():
            session.read.parquet(str(path)).createOrReplaceTempView(views[name])
        write_result(session.sql(to_spark(sql, views), args=params or {}), out)
    finally:
        for view in views.values():
            session.catalog.dropTempView(view)
