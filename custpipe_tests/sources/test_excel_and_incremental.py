from datetime import date

import openpyxl
import pandas as pd
import pytest
import sqlalchemy as sa

from custpipe.config import SourceConfig
from custpipe.settings import Settings
from custpipe.sources.extract import SchemaDriftError, extract_dataset, read_landing_table
from custpipe.sources.readers import SourceReadError

DAY = date(2026, 11, 27)


def settings(tmp_path) -> Settings:
    return Settings(tmp_path / "config", tmp_path / "data", tmp_path / "expectations")


def xlsx_source(**reader) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "dealers",
            "customers": {
                "reader": {"kind": "xlsx", "path": "{sources}/dealers.xlsx", **reader},
                "id": "Kundennr",
                "fields": {"name": "Firma", "postal_code": "PLZ"},
            },
        }
    )


def write_workbook(path, sheets: dict[str, list[tuple]]) -> None:
    book = openpyxl.Workbook()
    book.remove(book.active)
    for title, rows in sheets.items():
        sheet = book.create_sheet(title)
        for row in rows:
            sheet.append(row)
    book.save(path)


def test_excel_sheet_is_read_as_text_in_chunks(tmp_path):
    s = settings(tmp_path)
    s.sources_dir.mkdir(parents=True)
    rows = [("Kundennr", "Firma", "PLZ")] + [
        (1000 + i, f"Händler {i} GmbH", "01067") for i in range(5)
    ]
    write_workbook(
        s.sources_dir / "dealers.xlsx", {"Notes": [("x",)], "Kunden": rows + [(None,) * 3]}
    )
    result = extract_dataset(xlsx_source(sheet="Kunden", chunk_size=2), "customers", s, DAY)
    back = read_landing_table(result.path).to_pandas()
    assert result.rows == 5 and len(list(result.path.glob("part-*"))) == 3
    assert back["Kundennr"].tolist() == ["1000", "1001", "1002", "1003", "1004"]
    assert back["PLZ"].tolist() == ["01067"] * 5  # text cells keep their leading zero
    assert back["Firma"][0] == "Händler 0 GmbH"


def test_missing_sheet_lists_the_sheets(tmp_path):
    s = settings(tmp_path)
    s.sources_dir.mkdir(parents=True)
    write_workbook(s.sources_dir / "dealers.xlsx", {"Kunden": [("Kundennr", "Firma", "PLZ")]})
    with pytest.raises(SourceReadError, match=r"has no sheet 'Customers' \(sheets: Kunden\)"):
        extract_dataset(xlsx_source(sheet="Customers"), "customers", s, DAY)


def test_a_file_that_is_not_a_workbook(tmp_path):
    s = settings(tmp_path)
    s.sources_dir.mkdir(parents=True)
    (s.sources_dir / "dealers.xlsx").write_text("Kundennr,Firma\n1,A\n")
    with pytest.raises(SourceReadError, match=r"not a readable .xlsx workbook"):
        extract_dataset(xlsx_source(), "customers", s, DAY)


def sql_source(url: str, table: str = "Account", watermark: str | None = "Modified"):
    return SourceConfig.model_validate(
        {
            "name": "crm",
            "connection": {"url": url},
            "customers": {
                "reader": {"kind": "sql", "table": table, "watermark": watermark},
                "id": "Id",
                "fields": {"name": "Name"},
            },
        }
    )


def account_table(tmp_path, values: str) -> tuple[str, sa.Engine]:
    """A SQLite CRM with an Account table (Id, Name, Modified: the watermark) of `values`."""
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    engine = sa.create_engine(url)
    with engine.begin() as conn:
        conn.execute(sa.text("CREATE TABLE Account (Id TEXT, Name TEXT, Modified INTEGER)"))
        conn.execute(sa.text(f"INSERT INTO Account VALUES {values}"))
    return url, engine


def test_incremental_extraction_by_watermark_and_full_refresh(tmp_path):
    s = settings(tmp_path)
    url, engine = account_table(tmp_path, "('a', 'A', 9), ('b', 'B', 10)")
    source = sql_source(url)
    first = extract_dataset(source, "customers", s, DAY)
    assert (first.mode, first.rows) == ("full", 2)
    with engine.begin() as conn:
        conn.execute(sa.text("INSERT INTO Account VALUES ('c', 'C', 11)"))
        conn.execute(sa.text("UPDATE Account SET Name = 'A2', Modified = 12 WHERE Id = 'a'"))
    second = extract_dataset(source, "customers", s, DAY)
    assert second.mode == "incremental"
    # rows at the watermark (10) are read again; 9 < 10 is not (an integer watermark, not text)
    assert sorted(read_landing_table(second.path).to_pandas()["Id"]) == ["a", "b", "c"]
    third = extract_dataset(source, "customers", s, DAY)
    # only the newest mark (12) is read: row 'a', landed as it is by the second extraction
    assert (third.rows, third.unchanged_since) == (0, second.path)
    with engine.begin() as conn:  # changed again at the same mark: it is landed
        conn.execute(sa.text("UPDATE Account SET Name = 'A3' WHERE Id = 'a'"))
    fourth = extract_dataset(source, "customers", s, DAY)
    assert fourth.unchanged_since is None and fourth.mode == "incremental"
    assert read_landing_table(fourth.path).to_pandas()[["Id", "Name"]].values.tolist() == [
        ["a", "A3"]
    ]
    full = extract_dataset(source, "customers", s, DAY, full_refresh=True)
    assert (full.mode, full.rows) == ("full", 3)
    engine.dispose()


def test_a_retyped_column_fails_the_extract(tmp_path):
    s = settings(tmp_path)
    url = f"sqlite:///{tmp_path / 'crm.sqlite'}"
    engine = sa.create_engine(url)
    pd.DataFrame({"Id": ["a"], "Name": ["A"]}).to_sql("Account", engine, index=False)
    extract_dataset(sql_source(url, watermark=None), "customers", s, DAY)
    with engine.begin() as conn:
        conn.execute(sa.text("DROP TABLE Account"))
        conn.execute(sa.text("CREATE TABLE Account (Id TEXT, Name INTEGER)"))
        conn.execute(sa.text("INSERT INTO Account VALUES ('a', 1)"))
    engine.dispose()
    with pytest.raises(SchemaDriftError, match=r"'Name' \(text -> integer\) changed type"):
        extract_dataset(sql_source(url, watermark=None), "customers", s, DAY)


def test_a_periodic_full_extraction_catches_rows_deleted_at_the_source(tmp_path):
    s = settings(tmp_path)
    url, engine = account_table(tmp_path, "('a', 'A', 9), ('b', 'B', 10)")
    source = sql_source(url)
    assert source.customers.reader.full_every_days == 7  # the default
    monday = date(2026, 11, 23)
    first = extract_dataset(source, "customers", s, monday)
    assert (first.mode, first.full_reason) == ("full", "first extraction")
    with engine.begin() as conn:
        conn.execute(sa.text("DELETE FROM Account WHERE Id = 'b'"))  # an incremental read
    for day in range(1, 7):  # never sees a deletion: six incremental nights
        night = extract_dataset(source, "customers", s, date(2026, 11, 23 + day))
        assert (night.mode, night.full_reason) == ("incremental", None)
    week = extract_dataset(source, "customers", s, date(2026, 11, 30))
    assert week.mode == "full"
    assert "periodic full extraction" in week.full_reason
    assert "2026-11-23, 7 days" in week.full_reason
    assert sorted(read_landing_table(week.path).to_pandas()["Id"]) == ["a"]  # 'b' is gone
    after = extract_dataset(source, "customers", s, date(2026, 12, 1))
    # the week starts again from the new full extraction (its watermark, its rows)
    assert (after.mode, after.unchanged_since) == ("unchanged", week.path)
    engine.dispose()


def test_full_every_days_null_extracts_incrementally_until_a_full_refresh(tmp_path):
    s = settings(tmp_path)
    url, engine = account_table(tmp_path, "('a', 'A', 9)")
    raw = sql_source(url).model_dump()
    raw["customers"]["reader"]["full_every_days"] = None
    source = SourceConfig.model_validate(raw | {"name": "crm"})
    extract_dataset(source, "customers", s, date(2026, 11, 1))
    later = extract_dataset(source, "customers", s, date(2026, 12, 1))
    assert (later.mode, later.full_reason) == ("unchanged", None)  # not a full read
    forced = extract_dataset(source, "customers", s, date(2026, 12, 1), full_refresh=True)
    assert (forced.mode, forced.full_reason) == ("full", "full refresh requested")
    engine.dispose()


def test_full_every_days_without_a_watermark_is_refused():
    with pytest.raises(ValueError, match="'full_every_days' .* is for incremental readers"):
        SourceConfig.model_validate(
            {
                "name": "crm",
                "connection": {"url": "sqlite://"},
                "customers": {
                    "reader": {"kind": "sql", "table": "Account", "full_every_days": 3},
                    "id": "Id",
                    "fields": {"name": "Name"},
                },
            }
        )


def test_the_demo_erps_orders_and_lines_are_extracted_by_their_change_date(tmp_path):
    from custpipe.config import load_config
    from custpipe.demo.changes import change_sources
    from custpipe_tests.conftest import make_deployment

    deployment = make_deployment(tmp_path, customers=200)
    s = deployment.settings
    erp = load_config(s.config_dir).sources["erp"]
    first = {d: extract_dataset(erp, d, s, DAY) for d in ("orders", "order_lines")}
    assert {r.mode for r in first.values()} == {"full"}
    mark = max(read_landing_table(first["orders"].path).to_pandas()["AEDAT"])
    counts = change_sources(s.sources_dir, DAY, fraction=0.0, seed=4, orders=0.1)
    second = {d: extract_dataset(erp, d, s, DAY) for d in ("orders", "order_lines")}
    # no line changed: the lines at the last change date are read again, and not landed
    assert second["order_lines"].unchanged_since == first["order_lines"].path
    assert second["orders"].mode == "incremental"
    orders = read_landing_table(second["orders"].path).to_pandas()
    changed = orders[orders["AEDAT"] == DAY.strftime("%Y%m%d")]
    # the changed headers, and the rows at the last change date read again: nothing older
    assert len(changed) == counts["erp_orders"] > 0
    assert set(orders["AEDAT"]) == {mark, DAY.strftime("%Y%m%d")}
    assert len(orders) < first["orders"].rows / 5
