"""SQL sources: the reader query is one SELECT, URLs are checked, and no error ever shows a
password (tested against the real PostgreSQL and MariaDB servers where they run)."""

from __future__ import annotations

import uuid
from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa
from pydantic import ValidationError

from custpipe.config import SourceConfig
from custpipe.settings import Settings
from custpipe.sources.extract import SchemaDriftError, extract_dataset
from custpipe.sources.readers import SourceReadError
from custpipe_tests.conftest import require_server

DAY = date(2026, 11, 27)
PASSWORD = "Pl@nted:S3cr/et@Pw"  # '@', ':' and '/' unescaped, as a careless operator writes it
ENCODED = "Pl%40nted%3AS3cr%2Fet%40Pw"
PG = "127.0.0.1:5432"
MARIA = "127.0.0.1:3306"


def settings(tmp_path) -> Settings:
    return Settings(tmp_path / "config", tmp_path / "data", tmp_path / "expectations")


def sql_source(connection: dict, **reader) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "erp",
            "connection": connection,
            "customers": {
                "reader": {"kind": "sql", **(reader or {"table": "KNA1"})},
                "id": "KUNNR",
                "fields": {"name": "NAME1"},
            },
        }
    )


@pytest.fixture
def sqlite_url(tmp_path) -> str:
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    engine = sa.create_engine(url)
    pd.DataFrame({"KUNNR": ["1", "2"], "NAME1": ["A", "B"]}).to_sql("KNA1", engine, index=False)
    engine.dispose()
    return url


# -- 4. a reader query is exactly one SELECT ----------------------------------------------


@pytest.mark.parametrize(
    "query",
    [
        "SELECT * FROM KNA1; DROP TABLE KNA1",
        "COPY (SELECT 42) TO 'x.csv'",
        "DELETE FROM KNA1",
        "UPDATE KNA1 SET NAME1 = 'x'",
        "INSERT INTO KNA1 VALUES ('3', 'C')",
        "SELECT * INTO stolen FROM KNA1",
        "WITH d AS (DELETE FROM KNA1 RETURNING *) SELECT * FROM d",
        "SELECT * FROM KNA1 FOR UPDATE",
        "VACUUM",
        "DROP TABLE KNA1",
    ],
)
def test_a_reader_query_that_is_not_one_select_is_refused_when_loaded(query):
    with pytest.raises(ValidationError, match=r"'query'.*exactly one SELECT"):
        sql_source({"url": "sqlite:///x.db"}, query=query)


@pytest.mark.parametrize(
    "query",
    [
        "SELECT KUNNR, NAME1 FROM KNA1 WHERE NAME1 <> 'x; DROP TABLE KNA1'",
        "WITH k AS (SELECT * FROM KNA1) SELECT * FROM k",
        "SELECT KUNNR, NAME1 FROM KNA1 UNION ALL SELECT KUNNR, NAME1 FROM KNA1;",
    ],
)
def test_a_select_query_is_read(tmp_path, sqlite_url, query):
    result = extract_dataset(
        sql_source({"url": sqlite_url}, query=query), "customers", settings(tmp_path), DAY
    )
    assert result.rows in (2, 4)


def test_a_write_hidden_from_the_loader_is_refused_before_it_runs(tmp_path, sqlite_url):
    # MySQL-style quoting that the generic parser cannot read is checked again, in the
    # dialect of the URL, before anything is sent to the database
    source = sql_source({"url": sqlite_url}, query="SELECT `KUNNR` FROM KNA1; DELETE FROM KNA1")
    with pytest.raises(SourceReadError, match=r"source 'erp'.*'query'.*exactly one SELECT"):
        extract_dataset(source, "customers", settings(tmp_path), DAY)
    engine = sa.create_engine(sqlite_url)
    with engine.connect() as conn:
        assert conn.execute(sa.text("SELECT COUNT(*) FROM KNA1")).scalar() == 2
    engine.dispose()


def test_a_sql_syntax_error_in_the_query_names_the_setting(tmp_path, sqlite_url):
    source = sql_source({"url": sqlite_url}, query="SELEC KUNNR FROM KNA1")
    with pytest.raises(SourceReadError, match=r"source 'erp'.*reader 'query'") as info:
        extract_dataset(source, "customers", settings(tmp_path), DAY)
    assert not info.value.retryable


def test_a_query_the_database_rejects_is_not_retried(tmp_path, sqlite_url):
    source = sql_source({"url": sqlite_url}, query="SELECT KUNNR, NO_SUCH_COLUMN FROM KNA1")
    with pytest.raises(SourceReadError, match=r"source 'erp'.*reader 'query'.*NO_SUCH_COLUMN") as e:
        extract_dataset(source, "customers", settings(tmp_path), DAY)
    assert not e.value.retryable


# -- URLs -------------------------------------------------------------------------------


def test_postgres_scheme_is_refused_when_loaded():
    with pytest.raises(ValidationError, match=r"use 'postgresql://'"):
        sql_source({"url": "postgres://app@db/erp"})


def test_postgres_scheme_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ERP_URL", f"postgres://app:{ENCODED}@db/erp")
    source = sql_source({"url_env": "ERP_URL"})
    with pytest.raises(SourceReadError, match=r"ERP_URL.*use 'postgresql://'") as info:
        extract_dataset(source, "customers", settings(tmp_path), DAY)
    assert_no_secret(info.value)


def test_an_unparseable_url_from_the_environment(tmp_path, monkeypatch):
    monkeypatch.setenv("ERP_URL", f"erp database at db.example with {PASSWORD}")
    source = sql_source({"url_env": "ERP_URL"})
    with pytest.raises(
        SourceReadError, match=r"ERP_URL.*cannot be parsed.*dialect\+driver://"
    ) as e:
        extract_dataset(source, "customers", settings(tmp_path), DAY)
    assert_no_secret(e.value)


def test_an_unparseable_url_is_refused_when_loaded():
    with pytest.raises(ValidationError, match=r"'url' cannot be parsed"):
        sql_source({"url": "just some words"})


# -- 5. passwords never leak --------------------------------------------------------------


def chain(exc: BaseException) -> list[BaseException]:
    """The exception and every one a traceback (Python's, Dagster's) shows with it."""
    seen: list[BaseException] = []
    while exc is not None and exc not in seen:
        seen.append(exc)
        exc = exc.__cause__ or (None if exc.__suppress_context__ else exc.__context__)
    return seen


def assert_no_secret(exc: BaseException) -> None:
    for e in chain(exc):
        text = str(e) + repr(e.args)
        for secret in (PASSWORD, ENCODED, "nted:S3cr", "S3cr/et", "Pl@nted"):
            assert secret not in text, f"{type(e).__name__} shows the password: {text}"


def server(kind: str) -> None:
    url = {
        "postgresql": f"postgresql+psycopg://postgres@{PG}/test",
        "mariadb": f"mysql+pymysql://root:@{MARIA}/test",
    }[kind]
    require_server(url, kind)


def fail_with(tmp_path, monkeypatch, url: str) -> SourceReadError:
    monkeypatch.setenv("ERP_URL", url)
    source = sql_source({"url_env": "ERP_URL"})
    with pytest.raises(SourceReadError, match=r"source 'erp'") as info:
        extract_dataset(source, "customers", settings(tmp_path), DAY)
    assert_no_secret(info.value)
    assert not list((tmp_path / "data").rglob("*.parquet"))
    return info.value


def test_an_unescaped_at_in_the_password_is_named_not_printed(tmp_path, monkeypatch):
    err = fail_with(tmp_path, monkeypatch, f"postgresql+psycopg://postgres:{PASSWORD}@{PG}/test")
    assert "%40" in str(err) and not err.retryable


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_an_unreachable_server_is_retryable_and_shows_no_password(tmp_path, monkeypatch, kind):
    server(kind)
    scheme = {"postgresql": "postgresql+psycopg", "mariadb": "mysql+pymysql"}[kind]
    user = {"postgresql": "postgres", "mariadb": "root"}[kind]
    err = fail_with(tmp_path, monkeypatch, f"{scheme}://{user}:{ENCODED}@127.0.0.1:1/test")
    assert err.retryable
    assert "did not answer" in str(err) and f"{scheme}://{user}:***@127.0.0.1:1/test" in str(err)


@pytest.mark.parametrize(
    ("kind", "url"),
    [
        ("postgresql", f"postgresql+psycopg://cp_no_such_role:{ENCODED}@{PG}/test"),
        ("mariadb", f"mysql+pymysql://root:{ENCODED}@{MARIA}/test"),
    ],
)
def test_wrong_credentials_are_not_retried_and_show_no_password(tmp_path, monkeypatch, kind, url):
    server(kind)
    err = fail_with(tmp_path, monkeypatch, url)
    assert not err.retryable
    assert "refused the credentials" in str(err) and "ERP_URL" in str(err)


@pytest.mark.parametrize("kind", ["postgresql", "mariadb"])
def test_a_query_error_on_a_real_server_shows_no_password(tmp_path, monkeypatch, kind):
    server(kind)
    url = {
        "postgresql": f"postgresql+psycopg://postgres:{ENCODED}@{PG}/test",  # trust: accepted
        "mariadb": f"mysql+pymysql://root:@{MARIA}/test",
    }[kind]
    monkeypatch.setenv("ERP_URL", url)
    source = sql_source({"url_env": "ERP_URL"}, table="cp_no_such_table_xyz")
    with pytest.raises(SourceReadError, match=r"source 'erp'.*cp_no_such_table_xyz") as info:
        extract_dataset(source, "customers", settings(tmp_path), DAY)
    assert_no_secret(info.value)
    assert not info.value.retryable


def test_a_config_error_does_not_show_the_url_through_the_exception_chain(tmp_path):
    from custpipe.config import ConfigError, load_source

    (tmp_path / "erp.yaml").write_text(
        f"connection: {{url: 'postgres://app:{ENCODED}@db/erp'}}\n"
        "customers:\n  reader: {kind: sql, table: KNA1}\n  id: KUNNR\n  fields: {name: NAME1}\n",
        encoding="utf-8",
    )
    with pytest.raises(
        ConfigError, match=r"connection.url: 'url' uses the scheme 'postgres://'"
    ) as e:
        load_source(tmp_path / "erp.yaml")
    assert_no_secret(e.value)


def test_a_select_with_a_side_effect_runs_read_only_on_postgresql(tmp_path, monkeypatch):
    # sqlglot sees one SELECT; the read-only transaction stops the write inside it
    server("postgresql")
    url = f"postgresql+psycopg://postgres@{PG}/test"
    engine = sa.create_engine(url, connect_args={"options": "-c lock_timeout=5000"})
    seq = f"cp_test_seq_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE SEQUENCE {seq}"))
        before = conn.execute(sa.text(f"SELECT last_value FROM {seq}")).scalar()
    monkeypatch.setenv("ERP_URL", url)
    query = f"SELECT CAST(nextval('{seq}') AS TEXT) AS \"KUNNR\", 'A' AS \"NAME1\""
    source = sql_source({"url_env": "ERP_URL"}, query=query)
    try:
        with pytest.raises(SourceReadError, match=r"read-only transaction") as info:
            extract_dataset(source, "customers", settings(tmp_path), DAY)
        assert not info.value.retryable
        with engine.connect() as conn:
            after = conn.execute(sa.text(f"SELECT last_value FROM {seq}")).scalar()
        assert after == before
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP SEQUENCE IF EXISTS {seq}"))
        engine.dispose()


def test_a_failed_extraction_releases_its_database_connection(tmp_path, monkeypatch):
    # the mapping's columns are missing: the extract fails after the first chunk, and the
    # source's table must not stay locked by a forgotten open transaction
    server("postgresql")
    url = f"postgresql+psycopg://postgres@{PG}/test"
    engine = sa.create_engine(url, connect_args={"options": "-c lock_timeout=5000"})
    table = f"cp_test_lock_{uuid.uuid4().hex[:10]}"
    with engine.begin() as conn:
        conn.execute(sa.text(f"CREATE TABLE {table} (a TEXT)"))
        conn.execute(sa.text(f"INSERT INTO {table} VALUES ('1')"))
    monkeypatch.setenv("ERP_URL", url)
    source = sql_source({"url_env": "ERP_URL"}, table=table)
    try:
        extract_dataset(source, "customers", settings(tmp_path), DAY)
    except SchemaDriftError:
        # while the failure is still being handled (as Dagster does: it keeps the exception
        # and its traceback), the table must already be free
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE {table}"))
    else:
        pytest.fail("the extract should fail: the mapped columns are missing")
    finally:
        with engine.begin() as conn:
            conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
        engine.dispose()
