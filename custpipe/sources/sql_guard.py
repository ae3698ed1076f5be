"""Checks of SQL a source configuration supplies: a reader `query` is exactly one SELECT.

Pure functions (sqlglot, no database), used when the configuration is loaded and again,
in the dialect of the connection URL, before a query is sent to the source system.
"""

from __future__ import annotations

import sqlglot
from sqlglot import exp

# SQLAlchemy backend name -> sqlglot dialect (others are parsed with sqlglot's generic one)
DIALECTS = {
    "postgresql": "postgres",
    "mysql": "mysql",
    "mariadb": "mysql",
    "sqlite": "sqlite",
    "mssql": "tsql",
    "oracle": "oracle",
    "duckdb": "duckdb",
    "snowflake": "snowflake",
    "redshift": "redshift",
    "bigquery": "bigquery",
    "trino": "trino",
    "clickhouse": "clickhouse",
}

_WRITES = (
    exp.Insert,
    exp.Update,
    exp.Delete,
    exp.Merge,
    exp.Create,
    exp.Drop,
    exp.Alter,
    exp.Copy,
    exp.Command,
    exp.Into,
    exp.Lock,
)


class NotOneSelect(ValueError):
    """The SQL is not exactly one read-only SELECT."""


class Unparseable(ValueError):
    """sqlglot cannot read the SQL in the given dialect (so it cannot be verified)."""


def dialect_for(backend: str) -> str | None:
    """The sqlglot dialect of a SQLAlchemy backend name (None: sqlglot's generic dialect)."""
    return DIALECTS.get(backend)


def check_select(query: str, dialect: str | None = None) -> None:
    """Raise NotOneSelect unless `query` is one SELECT (WITH, UNION … allowed) that neither
    writes, locks rows, nor selects INTO a table; Unparseable if sqlglot cannot read it."""
    try:
        statements = [s for s in sqlglot.parse(query, read=dialect) if s is not None]
    except sqlglot.errors.ParseError as exc:
        first = exc.errors[0] if exc.errors else {}
        where = f" at line {first.get('line')}, column {first.get('col')}" if first else ""
        raise Unparseable(f"{first.get('description') or 'syntax error'}{where}") from None
    except sqlglot.errors.SqlglotError as exc:
        raise Unparseable(type(exc).__name__) from None
    if len(statements) != 1:
        raise NotOneSelect(f"it holds {len(statements)} statements")
    (statement,) = statements
    if not isinstance(statement, (exp.Select, exp.SetOperation, exp.Subquery)):
        raise NotOneSelect(f"it is a {statement.key.upper()} statement")
    for node in statement.walk():
        if isinstance(node, _WRITES):
            raise NotOneSelect(f"it contains {node.key.upper()}")


def check_url(url: str) -> None:
    """Raise ValueError (naming the fix, never the password) for a URL SQLAlchemy cannot use:
    unparseable, the `postgres://` scheme, or an unescaped '@' in the password."""
    import sqlalchemy as sa

    from custpipe.secrets import mask_url

    scheme = url.split("://", 1)[0].lower() if "://" in url else ""
    if scheme == "postgres" or scheme.startswith("postgres+"):
        raise ValueError(
            f"uses the scheme 'postgres://', which SQLAlchemy does not know: use 'postgresql://' "
            f"(or 'postgresql+psycopg://') in {mask_url(url)}"
        )
    try:
        parsed = sa.engine.make_url(url)
    except (sa.exc.ArgumentError, ValueError):
        parsed = None
    authority = url.split("://", 1)[-1].split("/", 1)[0]
    if parsed is None:
        raise ValueError(
            "cannot be parsed as a database URL (not shown: it may hold a password); the form is "
            "dialect+driver://user:password@host:port/database, with '@', ':' and '/' in the "
            "password percent-encoded as %40, %3A and %2F"
        )
    if "@" in (parsed.host or "") or authority.count("@") > 1:
        raise ValueError(
            f"has an unescaped '@' in its password ({mask_url(url)}): percent-encode '@' as %40 "
            "(and ':' as %3A, '/' as %2F) in the password"
        )
