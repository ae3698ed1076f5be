"""Staging applies every landing folder not staged yet, in order, in one transaction."""

from datetime import date, datetime

import duckdb
import pytest
import sqlalchemy as sa

from custpipe import warehouse
from custpipe.config import SourceConfig
from custpipe.mapping.stage import stage_source
from custpipe.settings import Settings
from custpipe.sources.extract import extract_dataset

AT = datetime(2026, 11, 28, 2, 0)


@pytest.fixture
def crm(tmp_path):
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE Account (Id TEXT, Name TEXT, Modified INTEGER)"))
        conn.execute(
            sa.text("INSERT INTO Account VALUES ('a', 'Alpha GmbH', 1), ('b', 'Beta AG', 2)")
        )
    source = SourceConfig.model_validate(
        {
            "name": "crm",
            "connection": {"url": url},
            "customers": {
                "reader": {"kind": "sql", "table": "Account", "watermark": "Modified"},
                "id": "Id",
                "fields": {"name": "Name", "country": {"const": "DE"}},
            },
        }
    )
    yield Settings(tmp_path, tmp_path / "data", tmp_path), source, engine
    engine.dispose()


def names(con) -> dict[str, str]:
    return dict(con.execute("SELECT source_id, name FROM staging.customers").fetchall())


def test_increments_extracted_while_staging_failed_are_all_applied(crm):
    settings, source, engine = crm
    day = date(2026, 11, 27)
    con = duckdb.connect()
    con.execute(warehouse.DDL)
    extract_dataset(source, "customers", settings, day)
    stage_source(con, settings, source, day, "r1", AT)
    with engine.begin() as conn:  # two changes, extracted by two runs whose staging failed
        conn.execute(sa.text("UPDATE Account SET Name = 'Alpha AG', Modified = 3 WHERE Id = 'a'"))
    extract_dataset(source, "customers", settings, day)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO Account VALUES ('c', 'Gamma Inc.', 4)"))
    extract_dataset(source, "customers", settings, day)
    report = stage_source(con, settings, source, day, "r4", AT)
    assert [d.mode for d in report] == ["incremental", "incremental"]
    assert names(con) == {"a": "Alpha AG", "b": "Beta AG", "c": "Gamma Inc."}
    assert [d.mode for d in stage_source(con, settings, source, day, "r5", AT)] == ["unchanged"]
    assert con.execute("SELECT count(*) FROM staging.landing_log").fetchone()[0] == 3


def test_a_failure_while_staging_leaves_nothing_half_applied(crm, monkeypatch):
    settings, source, engine = crm
    day = date(2026, 11, 27)
    con = duckdb.connect()
    con.execute(warehouse.DDL)
    extract_dataset(source, "customers", settings, day)
    stage_source(con, settings, source, day, "r1", AT)
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE Account SET Name = 'Alpha AG', Modified = 3 WHERE Id = 'a'"))
    extract_dataset(source, "customers", settings, day)
    import custpipe.mapping.stage as stage

    monkeypatch.setattr(stage, "issue_rows", lambda *a: (_ for _ in ()).throw(OSError("disk")))
    with pytest.raises(OSError):
        stage_source(con, settings, source, day, "r2", AT)
    assert names(con)["a"] == "Alpha GmbH"
    assert con.execute("SELECT count(*) FROM staging.landing_log").fetchone()[0] == 1
    monkeypatch.undo()
    stage_source(con, settings, source, day, "r3", AT)
    assert names(con)["a"] == "Alpha AG"
