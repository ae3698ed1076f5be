"""A file export byte-identical to its last accepted extraction is not read again: the
extraction says since which landing folder it is unchanged and lands nothing new."""

from __future__ import annotations

import json
from datetime import date, datetime, timedelta

import pandas as pd
import pytest

from custpipe import warehouse
from custpipe.config import SourceConfig
from custpipe.mapping.stage import stage_source
from custpipe.settings import Settings
from custpipe.sources import readers
from custpipe.sources.extract import (
    SchemaDriftError,
    extract_dataset,
    landing_folders,
    mark_rejected,
)

DAY = date(2026, 11, 27)
AT = datetime(2026, 11, 28, 2, 0)
FRAME = pd.DataFrame({"cid": ["S-1", "S-2", "S-3"], "cname": ["Alpha", "Beta", "Gamma"]})


def settings(tmp_path) -> Settings:
    return Settings(tmp_path / "config", tmp_path / "data", tmp_path / "expectations")


def write(path, kind: str, frame: pd.DataFrame = FRAME) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "csv":
        frame.to_csv(path, index=False)
    elif kind == "jsonl":
        frame.to_json(path, orient="records", lines=True, force_ascii=False)
    elif kind == "parquet":
        frame.to_parquet(path, index=False)
    else:
        frame.to_excel(path, index=False)


def source(kind: str, reader: dict | None = None, fields: dict | None = None) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "files",
            "customers": {
                "reader": {"kind": kind, "path": f"{{sources}}/export.{kind}"} | (reader or {}),
                "id": "cid",
                "fields": fields or {"name": "cname", "country": {"const": "DE"}},
            },
        }
    )


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet", "xlsx"])
def test_an_identical_file_is_not_read_again_and_lands_nothing(tmp_path, kind, monkeypatch):
    s = settings(tmp_path)
    write(s.sources_dir / f"export.{kind}", kind)
    first = extract_dataset(source(kind), "customers", s, DAY)
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert manifest["file"]["size"] > 0 and len(manifest["file"]["sha256"]) == 64
    assert first.rows == 3 and first.unchanged_since is None

    def no_read(*args, **kwargs):
        raise AssertionError("an unchanged file was read")

    monkeypatch.setattr(readers, f"read_{kind}", no_read)
    again = extract_dataset(source(kind), "customers", s, DAY + timedelta(days=1))
    assert again.mode == "unchanged" and again.unchanged_since == first.path == again.path
    assert again.rows == 0 and again.columns == first.columns
    assert landing_folders(s, "files", "customers") == [first.path]


def test_a_full_refresh_or_a_changed_byte_reads_the_file_again(tmp_path):
    s = settings(tmp_path)
    export = s.sources_dir / "export.csv"
    write(export, "csv")
    first = extract_dataset(source("csv"), "customers", s, DAY)
    refreshed = extract_dataset(source("csv"), "customers", s, DAY, full_refresh=True)
    assert refreshed.unchanged_since is None and refreshed.path != first.path
    assert refreshed.rows == 3
    export.write_text(export.read_text().replace("Beta", "Bete"))  # same size, other bytes
    changed = extract_dataset(source("csv"), "customers", s, DAY)
    assert changed.unchanged_since is None and changed.rows == 3
    assert len(landing_folders(s, "files", "customers")) == 3


def test_a_touched_but_identical_file_is_unchanged(tmp_path):
    s = settings(tmp_path)
    export = s.sources_dir / "export.csv"
    write(export, "csv")
    first = extract_dataset(source("csv"), "customers", s, DAY)
    export.write_bytes(export.read_bytes())  # delivered again: new mtime, same bytes
    assert extract_dataset(source("csv"), "customers", s, DAY).unchanged_since == first.path


def test_new_reader_settings_read_the_same_bytes_again(tmp_path, monkeypatch):
    s = settings(tmp_path)
    write(s.sources_dir / "export.csv", "csv")
    first = extract_dataset(source("csv"), "customers", s, DAY)
    read = []
    real = readers.read_csv
    monkeypatch.setattr(readers, "read_csv", lambda *a, **k: read.append(1) or real(*a, **k))
    other = extract_dataset(source("csv", {"chunk_size": 1}), "customers", s, DAY)
    # read again (the settings could read other values); the same rows: nothing landed
    assert read == [1] and other.unchanged_since == first.path
    assert landing_folders(s, "files", "customers") == [first.path]


def test_a_mapping_that_needs_a_column_the_file_lacks_still_fails_on_an_unchanged_file(
    tmp_path,
):
    s = settings(tmp_path)
    write(s.sources_dir / "export.csv", "csv")
    extract_dataset(source("csv"), "customers", s, DAY)
    wider = source("csv", fields={"name": "cname", "city": "ccity"})
    with pytest.raises(SchemaDriftError, match="'ccity'"):
        extract_dataset(wider, "customers", s, DAY)


def test_a_rejected_extraction_is_never_the_one_compared_with(tmp_path):
    s = settings(tmp_path)
    write(s.sources_dir / "export.csv", "csv")
    first = extract_dataset(source("csv"), "customers", s, DAY)
    mark_rejected(first.path, ["record_id_unique"])  # its raw suite blocked it
    again = extract_dataset(source("csv"), "customers", s, DAY)
    assert again.unchanged_since is None and again.rows == 3 and again.path != first.path


def test_staging_has_nothing_to_apply_after_an_unchanged_export_next_day(tmp_path):
    s = settings(tmp_path)
    write(s.sources_dir / "export.csv", "csv")
    src = source("csv")
    first = extract_dataset(src, "customers", s, DAY)
    with warehouse.connect(s.warehouse_path) as con:
        (staged,) = stage_source(con, s, src, DAY, "r1", AT)
        assert staged.rows == 3 and staged.landing_path == str(first.path)
        nxt = DAY + timedelta(days=1)
        assert extract_dataset(src, "customers", s, nxt).unchanged_since == first.path
        (report,) = stage_source(con, s, src, nxt, "r2", AT)  # no folder for this date: fine
        assert report.mode == "unchanged" and report.rows == 0
        (n,) = con.execute("SELECT count(*) FROM staging.customers").fetchone()
    assert n == 3


def test_an_export_replaced_while_it_is_read_lands_nothing(tmp_path, monkeypatch):
    s = settings(tmp_path)
    export = s.sources_dir / "export.csv"
    write(export, "csv")
    real = readers.read_csv

    def replaced_after_hashing(path, *args, **kwargs):
        write(export, "csv", FRAME.assign(cname=["A", "B", "C"]))
        yield from real(path, *args, **kwargs)

    monkeypatch.setattr(readers, "read_csv", replaced_after_hashing)
    with pytest.raises(readers.SourceReadError, match="changed between its hashing") as err:
        extract_dataset(source("csv"), "customers", s, DAY)
    assert err.value.retryable
    assert landing_folders(s, "files", "customers") == []


def test_a_link_set_to_another_file_with_the_same_bytes_is_read(tmp_path):
    s = settings(tmp_path)
    export = s.sources_dir / "export.csv"
    write(export, "csv")
    first = extract_dataset(source("csv"), "customers", s, DAY)
    elsewhere = tmp_path / "elsewhere.csv"
    elsewhere.write_bytes(export.read_bytes())
    export.unlink()
    export.symlink_to(elsewhere)
    linked = extract_dataset(source("csv"), "customers", s, DAY)
    assert linked.unchanged_since is None and linked.path != first.path
    assert "elsewhere.csv" in (linked.path / "manifest.json").read_text()
    assert extract_dataset(source("csv"), "customers", s, DAY).unchanged_since == linked.path


def sql_source(url: str, watermark: str | None = None) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "db",
            "connection": {"url": url},
            "customers": {
                "reader": {"kind": "sql", "table": "Account", "watermark": watermark},
                "id": "Id",
                "fields": {"name": "Name", "country": {"const": "DE"}},
            },
        }
    )


@pytest.fixture
def account(tmp_path):
    import sqlalchemy as sa

    engine = sa.create_engine(f"sqlite:///{tmp_path / 'db.sqlite'}")
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE Account (Id TEXT, Name TEXT, Modified INTEGER)"))
        conn.execute(sa.text("INSERT INTO Account VALUES ('a', 'Alpha', 1), ('b', 'Beta', 2)"))

    def run(sql: str) -> None:
        with engine.begin() as conn:
            conn.execute(sa.text(sql))

    yield f"sqlite:///{tmp_path / 'db.sqlite'}", run
    engine.dispose()


def test_a_table_without_a_watermark_read_with_the_same_rows_lands_nothing(tmp_path, account):
    url, run = account
    s = settings(tmp_path)
    first = extract_dataset(sql_source(url), "customers", s, DAY)
    manifest = json.loads((first.path / "manifest.json").read_text())
    assert first.rows == 2 and len(manifest["content_sha256"]) == 64
    again = extract_dataset(sql_source(url), "customers", s, DAY + timedelta(days=1))
    assert again.mode == "unchanged" and again.unchanged_since == first.path
    assert landing_folders(s, "db", "customers") == [first.path]  # the read was not kept
    refreshed = extract_dataset(sql_source(url), "customers", s, DAY, full_refresh=True)
    assert refreshed.unchanged_since is None and refreshed.rows == 2
    run("UPDATE Account SET Name = 'Beta AG' WHERE Id = 'b'")
    changed = extract_dataset(sql_source(url), "customers", s, DAY)
    assert changed.unchanged_since is None and changed.rows == 2
    assert len(landing_folders(s, "db", "customers")) == 3


def test_an_empty_table_is_always_landed_a_watermarked_reread_only_when_new(tmp_path, account):
    url, run = account
    s = settings(tmp_path)
    first = extract_dataset(sql_source(url, "Modified"), "customers", s, DAY)
    again = extract_dataset(sql_source(url, "Modified"), "customers", s, DAY)
    # the rows at the last watermark, read again as they were landed: nothing new
    assert (again.unchanged_since, again.rows) == (first.path, 0)
    run("DELETE FROM Account")
    empties = [extract_dataset(sql_source(url), "customers", s, DAY) for _ in range(2)]
    assert [e.unchanged_since for e in empties] == [None, None]
    assert [e.rows for e in empties] == [0, 0]


def test_row_hashes_follow_the_rows_values_in_row_order():
    import pyarrow as pa

    from custpipe.sources.extract import hash_rows

    table = pa.table({"a": ["x", "y", None, "", "x"], "b": ["y", "x", "", None, "y"]})
    hashes = hash_rows(table)
    assert hashes.dtype.name == "uint64" and len(hashes) == 5
    assert hashes[0] == hashes[4]  # the same values
    assert len(set(hashes[:4].tolist())) == 4  # swapped values, a null and '' all differ
    assert list(hash_rows(table.slice(1, 3))) == list(hashes[1:4])  # a row's own hash
    assert list(hash_rows(pa.table({'a"b': ["x"]}))) == list(hash_rows(pa.table({"c": ["x"]})))
