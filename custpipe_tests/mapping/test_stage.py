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


def test_unchanged_rows_are_kept_not_mapped_again(crm, monkeypatch):
    from custpipe.mapping import canonical, stage

    settings, source, engine = crm
    full = source.model_copy(  # a full extraction every run (no watermark)
        update={
            "customers": source.customers.model_copy(
                update={"reader": source.customers.reader.model_copy(update={"watermark": None})}
            )
        }
    )
    day = date(2026, 11, 27)
    con = duckdb.connect()
    con.execute(warehouse.DDL)
    seen: list[list[str]] = []

    def spy(raw, src, arrow=False):
        seen.append(sorted(raw["Id"]))
        return canonical.stage_customers(raw, src, arrow)

    monkeypatch.setattr(stage, "DATASETS", (("customers", spy, "staging.customers"),))
    extract_dataset(full, "customers", settings, day)
    stage_source(con, settings, full, day, "r1", AT)
    first = con.execute("SELECT source_id, run_id, raw_hash FROM staging.customers").fetchall()
    with engine.begin() as conn:
        conn.execute(sa.text("UPDATE Account SET Name = 'Alpha AG' WHERE Id = 'a'"))
        conn.execute(sa.text("DELETE FROM Account WHERE Id = 'b'"))
        conn.execute(sa.text("INSERT INTO Account VALUES ('c', 'Gamma Inc.', 4)"))
    extract_dataset(full, "customers", settings, day)
    report = stage_source(con, settings, full, day, "r2", AT)
    assert seen == [["a", "b"], ["a", "c"]]  # only the changed and the new row were mapped
    assert (report[0].rows, report[0].unchanged) == (2, 0)
    assert names(con) == {"a": "Alpha AG", "c": "Gamma Inc."}  # 'b' left the source: gone
    # nothing changed at the source (read again on a full refresh; a plain extraction that
    # reads the same rows lands nothing: test_unchanged_files)
    extract_dataset(full, "customers", settings, day, full_refresh=True)
    report = stage_source(con, settings, full, day, "r3", AT)
    assert len(seen) == 2 and (report[0].rows, report[0].unchanged) == (2, 2)  # nothing mapped
    runs = dict(con.execute("SELECT source_id, run_id FROM staging.customers").fetchall())
    assert runs == {"a": "r2", "c": "r2"}  # kept as staged by r2 ...
    newest = report[0].landing_path  # ... and known to be in the newest landing folder
    paths = {r[0] for r in con.execute("SELECT landing_path FROM staging.customers").fetchall()}
    assert paths == {newest}
    # a changed mapping stages every row again, even though the raw rows are the same
    data = full.model_dump()
    data["customers"]["fields"]["country"] = {"const": "AT"}
    remapped = type(full).model_validate(data)
    extract_dataset(remapped, "customers", settings, day)
    stage_source(con, settings, remapped, day, "r4", AT)
    assert seen[-1] == ["a", "c"]
    assert {r[0] for r in con.execute("SELECT country FROM staging.customers").fetchall()} == {"AT"}
    assert (
        first[0][2] != con.execute("SELECT raw_hash FROM staging.customers LIMIT 1").fetchone()[0]
    )


def test_a_changed_mapping_restages_what_the_landing_zone_holds(crm):
    settings, source, engine = crm
    day = date(2026, 11, 27)
    con = duckdb.connect()
    con.execute(warehouse.DDL)
    extract_dataset(source, "customers", settings, day)  # full: rows a, b
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO Account VALUES ('c', 'Gamma Inc.', 3)"))
    extract_dataset(source, "customers", settings, day)  # incremental: b (at the mark), c
    stage_source(con, settings, source, day, "r1", AT)
    countries = "SELECT source_id, country FROM staging.customers ORDER BY 1"
    assert con.execute(countries).fetchall() == [("a", "DE"), ("b", "DE"), ("c", "DE")]
    data = source.model_dump()
    data["customers"]["fields"]["country"] = {"const": "AT"}  # the mapping is corrected
    fixed = SourceConfig.model_validate(data)
    report = stage_source(con, settings, fixed, day, "r2", AT)  # nothing new was extracted
    assert [d.mode for d in report] == ["full", "incremental"]  # both folders again, in order
    assert con.execute(countries).fetchall() == [("a", "AT"), ("b", "AT"), ("c", "AT")]
    assert [d.mode for d in stage_source(con, settings, fixed, day, "r3", AT)] == ["unchanged"]
    # a backfill of an older date never restages over newer data, even with a new mapping
    data["customers"]["fields"]["country"] = {"const": "CH"}
    other = SourceConfig.model_validate(data)
    extract_dataset(other, "customers", settings, date(2026, 11, 1))
    assert stage_source(con, settings, other, date(2026, 11, 1), "r4", AT)[0].mode == "unchanged"
    assert {c for _, c in con.execute(countries).fetchall()} == {"AT"}


def test_staging_in_batches_gives_the_same_rows_as_at_once(crm, monkeypatch):
    from custpipe.mapping import stage

    settings, source, engine = crm
    day = date(2026, 11, 27)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO Account VALUES ('c', 'Gamma Inc.', 3), ('d', '', 4)"))
    extract_dataset(source, "customers", settings, day)  # full
    with engine.begin() as conn:  # a source that sends one id twice in a delta
        conn.execute(sa.text("INSERT INTO Account VALUES ('c', 'v1', 5), ('c', 'v2', 6)"))
    extract_dataset(source, "customers", settings, day)  # incremental
    staged = []
    for batch in (1, 3, 1000):
        monkeypatch.setattr(stage, "BATCH_ROWS", batch)
        con = duckdb.connect()
        con.execute(warehouse.DDL)
        report = stage_source(con, settings, source, day, "r1", AT)
        staged.append(
            con.execute(
                "SELECT * EXCLUDE (staged_at) FROM staging.customers ORDER BY source_id"
            ).fetchall()
        )
        assert [(d.mode, d.rows) for d in report] == [("full", 4), ("incremental", 3)]
    assert staged[0] == staged[1] == staged[2]
    assert [r[1] for r in staged[0]] == ["a", "b", "c", "c", "d"]  # both rows of the delta


def _without_watermark(source: SourceConfig) -> SourceConfig:
    reader = source.customers.reader.model_copy(update={"watermark": None})
    return source.model_copy(
        update={"customers": source.customers.model_copy(update={"reader": reader})}
    )


def test_staging_reuses_the_row_hashes_extraction_stored(crm, monkeypatch):
    import json

    from custpipe.mapping import stage

    settings, source, engine = crm
    day = date(2026, 11, 27)
    result = extract_dataset(_without_watermark(source), "customers", settings, day)
    calls = []
    computed = stage.hash_rows
    monkeypatch.setattr(stage, "hash_rows", lambda *a: calls.append(1) or computed(*a))
    tables = []
    for stored in (True, False):
        if not stored:  # a landing written before the hashes were kept in row order
            manifest = json.loads((result.path / "manifest.json").read_text())
            del manifest["row_hashes"]
            (result.path / "manifest.json").write_text(json.dumps(manifest))
        con = duckdb.connect()
        con.execute(warehouse.DDL)
        stage_source(con, settings, source, day, "r1", AT)
        tables.append(
            con.execute("SELECT * EXCLUDE (staged_at) FROM staging.customers ORDER BY 1, 2").df()
        )
        assert bool(calls) is not stored  # hashed again only without the stored hashes
    assert tables[0].equals(tables[1])  # the same raw_hash either way


def test_duplicate_id_flags_follow_the_ids_a_landing_staged_or_removed(crm):
    settings, source, engine = crm
    full = _without_watermark(source)
    day = date(2026, 11, 27)
    con = duckdb.connect()
    con.execute(warehouse.DDL)

    def night(sql: str, run: str) -> set[str]:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))
        extract_dataset(full, "customers", settings, day)
        stage_source(con, settings, full, day, run, AT)
        return {
            r[0]
            for r in con.execute(
                "SELECT source_id FROM staging.customers WHERE mapping_errors LIKE '%duplicate_id%'"
            ).fetchall()
        }

    assert night("INSERT INTO Account VALUES ('7', 'Seven', 3)", "r1") == set()
    assert night("INSERT INTO Account VALUES ('007', 'Seven again', 4)", "r2") == {"7", "007"}
    assert night("UPDATE Account SET Name = 'Alpha AG' WHERE Id = 'a'", "r3") == {"7", "007"}
    assert night("DELETE FROM Account WHERE Id = '7'", "r4") == set()  # the twin left
    from custpipe.mapping.stage import flag_duplicate_ids

    errors = "SELECT source_id, mapping_errors FROM staging.customers ORDER BY 1"
    before = con.execute(errors).fetchall()
    flag_duplicate_ids(con, "staging.customers", "crm")  # every row of the source
    assert con.execute(errors).fetchall() == before  # the full check changes nothing
