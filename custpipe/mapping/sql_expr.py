"""Mapping expressions (`expr` rules): one DuckDB expression, run in a sandboxed connection.

An `expr` is spliced into ``SELECT (<expr>)::VARCHAR AS v FROM raw``. Without a check, an
expression such as ``1)::VARCHAR AS v FROM raw; COPY (...) TO 'x.csv'; SELECT ("N"`` would
run three statements. :func:`check_expression` parses the wrapped query with DuckDB's own
parser and accepts it only if it is exactly one plain ``SELECT`` of one column from ``raw``
(no set operation, no ``WHERE``/``GROUP BY``/``ORDER BY``/``LIMIT``, no CTE, no subquery,
no aggregate or window function: an expression reads the row's own columns only).
:func:`sandbox` is the connection expressions run in: no file or network access, no
extension installing or autoloading — so even a function that reads files is refused.
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

import duckdb

_SANDBOX = {
    "enable_external_access": False,
    "autoinstall_known_extensions": False,
    "autoload_known_extensions": False,
}
_CLAUSES = ("where_clause", "having", "qualify", "sample")
_LISTS = ("group_expressions", "group_sets", "modifiers")


def wrap(expr: str) -> str:
    """The query an expression runs in."""
    return f"SELECT ({expr})::VARCHAR AS v FROM raw"


def sandbox() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection without file, network or extension access."""
    con = duckdb.connect(config=dict(_SANDBOX))
    con.execute("SET lock_configuration = true")
    return con


def _has_subquery(node: Any) -> bool:
    if isinstance(node, dict):
        if node.get("class") == "SUBQUERY" or node.get("type") == "SUBQUERY":
            return True
        return any(_has_subquery(v) for v in node.values())
    if isinstance(node, list):
        return any(_has_subquery(v) for v in node)
    return False


@cache
def _aggregate_names() -> frozenset[str]:
    """Names of DuckDB's aggregate functions (parsed, `sum(x)` is just a function call)."""
    con = sandbox()
    try:
        rows = con.execute(
            "SELECT DISTINCT lower(function_name) FROM duckdb_functions() "
            "WHERE function_type = 'aggregate'"
        ).fetchall()
    finally:
        con.close()
    return frozenset(r[0] for r in rows) | {"count_star"}


def _other_rows(node: Any) -> str | None:
    """'aggregate function NAME' or 'window function NAME' found in a parsed expression."""
    if isinstance(node, list):
        return next((found for v in node if (found := _other_rows(v))), None)
    if not isinstance(node, dict):
        return None
    name = str(node.get("function_name", "")).lower()
    if node.get("class") == "WINDOW":
        return f"window function {name}()"
    if node.get("class") == "FUNCTION" and (name in _aggregate_names() or node.get("filter")):
        return f"aggregate function {name.replace('count_star', 'count')}()"
    return next((found for v in node.values() if (found := _other_rows(v))), None)


def _problem(expr: str) -> str | None:
    """Why `expr` is not one plain expression (None if it is)."""
    sql = wrap(expr)
    try:
        statements = duckdb.extract_statements(sql)
    except duckdb.Error as exc:
        return f"it does not parse ({str(exc).splitlines()[0]})"
    if len(statements) != 1 or statements[0].type != duckdb.StatementType.SELECT:
        return f"it makes {len(statements)} statements out of the mapping query"
    con = sandbox()
    try:
        tree = json.loads(con.execute("SELECT json_serialize_sql(?)", [sql]).fetchone()[0])
    finally:
        con.close()
    if tree.get("error") or len(tree.get("statements", [])) != 1:
        return f"it does not parse ({tree.get('error_message', 'not one statement')})"
    node = tree["statements"][0]["node"]
    if node.get("type") != "SELECT_NODE" or len(node.get("select_list", [])) != 1:
        return "it changes the shape of the mapping query (a set operation or more columns)"
    source = node.get("from_table") or {}
    if source.get("type") != "BASE_TABLE" or source.get("table_name") != "raw":
        return "it changes the table the mapping query reads"
    if any(node.get(k) for k in _CLAUSES) or any(node.get(k) for k in _LISTS):
        return "it adds clauses (WHERE, GROUP BY, ORDER BY, LIMIT ...) to the mapping query"
    if (node.get("cte_map") or {}).get("map"):
        return "it adds a WITH clause to the mapping query"
    if _has_subquery(node["select_list"]):
        return "it holds a subquery (an expression may only read the row's own columns)"
    found = _other_rows(node["select_list"])
    if found:
        return (
            f"it holds the {found}, which reads other rows (only the row's own columns may be read)"
        )
    return None


def check_expression(expr: str) -> None:
    """Raise ValueError unless `expr` is exactly one SQL expression over the row's columns."""
    problem = _problem(expr)
    if problem is not None:
        raise ValueError(
            f"expr {expr!r} must be one SQL expression over the source columns (DuckDB "
            f"dialect), but {problem}. Write a single expression such as "
            'upper("COLUMN") or TRY_CAST("COLUMN" AS INTEGER).'
        )
