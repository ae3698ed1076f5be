"""Hostile source files: each ends in clean landing data or a SourceReadError that names the
source, the file (and line) and the setting to change; nothing half-written is left."""

from __future__ import annotations

import datetime as dt
from datetime import date

import openpyxl
import pandas as pd
import pytest

from custpipe.config import SourceConfig
from custpipe.mapping.apply import map_fields
from custpipe.settings import Settings
from custpipe.sources import readers
from custpipe.sources.extract import extract_dataset, read_landing_table
from custpipe.sources.extract import source_path as _source_path
from custpipe.sources.readers import SourceReadError

DAY = date(2026, 11, 27)


@pytest.fixture
def s(tmp_path) -> Settings:
    settings = Settings(tmp_path / "config", tmp_path / "data", tmp_path / "expectations")
    settings.sources_dir.mkdir(parents=True)
    return settings


def source(kind: str, name: str, encoding: str | None = "utf-8", **reader) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "files",
            "customers": {
                "reader": {"kind": kind, "path": "{sources}/" + name, "encoding": encoding}
                | reader,
                "id": "id",
                "fields": {"name": "name", "city": "city"},
            },
        }
    )


def csv(encoding: str | None = "utf-8", **reader) -> SourceConfig:
    return source("csv", "c.csv", encoding, **reader)


def jsonl(encoding: str | None = "utf-8") -> SourceConfig:
    return source("jsonl", "c.jsonl", encoding)


def extract_path(reader, s: Settings):
    return _source_path(reader, s, DAY, "files")


def landed(s: Settings) -> list:
    return list(s.landing_dir.rglob("*.parquet"))


def fails(s: Settings, config: SourceConfig, pattern: str) -> SourceReadError:
    with pytest.raises(SourceReadError, match=pattern) as info:
        extract_dataset(config, "customers", s, DAY)
    assert not landed(s), "a failed extraction must leave nothing to stage"
    assert "source 'files'" in str(info.value)
    return info.value


# -- 1. Excel date cells ------------------------------------------------------------------


def test_xlsx_date_cells_arrive_as_iso_text_and_map_as_dates(s):
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "name", "city", "updated"])
    sheet.append(["1", "A", "X", dt.datetime(2026, 11, 27)])
    sheet.append(["2", "B", "Y", dt.datetime(2026, 11, 27, 8, 30, 5)])
    sheet.append(["3", "C", "Z", dt.date(2026, 1, 2)])
    sheet["D4"].number_format = "yyyy/mm/dd"
    book.save(s.sources_dir / "c.xlsx")
    config = source("xlsx", "c.xlsx", None)
    back = read_landing_table(extract_dataset(config, "customers", s, DAY).path).to_pandas()
    assert back["updated"].tolist() == ["2026-11-27", "2026-11-27 08:30:05", "2026-01-02"]
    mapping = SourceConfig.model_validate(
        {
            "name": "files",
            "customers": {
                "reader": {"kind": "xlsx", "path": "{sources}/c.xlsx"},
                "id": "id",
                "fields": {"name": "name", "source_updated_at": "updated"},
            },
        }
    )
    mapped, issues = map_fields(back, mapping.customers, "files")
    assert not issues
    assert mapped["source_updated_at"].notna().all()
    assert str(mapped["source_updated_at"].iloc[1]) == "2026-11-27 08:30:05"


@pytest.mark.parametrize("declared", ["%Y/%m/%d %H:%M", "%d.%m.%Y", "%Y/%m/%d"])
def test_xlsx_date_cells_map_whatever_date_format_the_mapping_declares(s, declared):
    """The issue's case: every date of a real .xlsx became null under a declared format."""
    book = openpyxl.Workbook()
    sheet = book.active
    sheet.append(["id", "name", "city", "updated"])
    for i in range(1, 361):
        sheet.append([str(i), "A", "X", dt.datetime(2026, 1, 1) + dt.timedelta(days=i % 300)])
    typed = {"%d.%m.%Y": "27.11.2026", "%Y/%m/%d": "2026/11/27"}.get(declared, "2026/11/27 10:00")
    sheet.append(["361", "B", "Y", typed])  # a date typed as text, in the declared format
    book.save(s.sources_dir / "c.xlsx")
    landed = extract_dataset(source("xlsx", "c.xlsx", None), "customers", s, DAY)
    back = read_landing_table(landed.path).to_pandas()
    mapping = SourceConfig.model_validate(
        {
            "name": "files",
            "timezone": "Asia/Shanghai",
            "customers": {
                "reader": {"kind": "xlsx", "path": "{sources}/c.xlsx"},
                "id": "id",
                "fields": {
                    "name": "name",
                    "source_updated_at": {"column": "updated", "date_format": declared},
                    "birth_date": {"column": "updated", "date_format": declared},
                },
            },
        }
    )
    mapped, issues = map_fields(back, mapping.customers, "files")
    assert not issues, [str(i) for i in issues]
    assert mapped["source_updated_at"].notna().all()
    # a date cell is a calendar date, not shifted by the source's time zone
    assert str(mapped["birth_date"].iloc[0]) == "2026-01-02 00:00:00"


# -- 2. a declared single-byte encoding that is not the file's ------------------------------


@pytest.mark.parametrize(
    "names", [["STRAßE 5"], ["WEIßENFELS"], ["Jürgen Größe", "Über Ärger Öl", "Köln"] * 100]
)
def test_a_real_latin1_file_declared_latin1_is_read_not_refused(s, names):
    """German text in latin-1: a few bytes of ß and umlauts looked like a Hebrew code page
    (iso8859_8) to the detector; the declaration stands unless the file is clearly multi-byte."""
    frame = pd.DataFrame(
        {
            "id": [str(i) for i in range(len(names))],
            "name": names,
            "city": ["WEIßENFELS"] * len(names),
        }
    )
    frame.to_csv(s.sources_dir / "c.csv", index=False, encoding="latin-1")
    back = read_landing_table(extract_dataset(csv("latin-1"), "customers", s, DAY).path).to_pandas()
    assert back["name"].tolist() == names and set(back["city"]) == {"WEIßENFELS"}


def test_gbk_file_declared_latin1_names_the_likely_encoding(s):
    frame = pd.DataFrame(
        {
            "编号": [f"S-{i}" for i in range(20)],
            "客户名称": ["北京华为技术有限公司", "上海浦东发展银行股份有限公司"] * 10,
            "城市": ["北京", "上海"] * 10,
        }
    )
    frame.to_csv(s.sources_dir / "c.csv", index=False, encoding="gbk")
    err = fails(s, csv("latin-1"), r"declared 'latin-1'.*(gb18030|gbk|gb2312).*'encoding'")
    assert "c.csv" in str(err)


def test_utf8_file_declared_cp1252_is_refused(s):
    (s.sources_dir / "c.csv").write_text(
        "id,name,city\n1,Müller GmbH,Köln\n2,Société Générale,Paris\n", encoding="utf-8"
    )
    fails(s, csv("cp1252"), r"declared 'cp1252'.*utf-8.*'encoding'")


def test_real_latin1_file_declared_latin1_still_reads(s):
    (s.sources_dir / "c.csv").write_bytes(
        "id,name,city\n1,Müller & Söhne GmbH,Köln\n2,Société Générale,Paris\n".encode("latin-1")
    )
    back = read_landing_table(extract_dataset(csv("latin-1"), "customers", s, DAY).path).to_pandas()
    assert back["name"].tolist() == ["Müller & Söhne GmbH", "Société Générale"]


# -- 3. raw exceptions that become clear errors -------------------------------------------


def test_empty_csv_is_an_error_not_a_pandas_exception(s):
    (s.sources_dir / "c.csv").write_bytes(b"")
    fails(s, csv(), r"c\.csv is empty — no header.*deliver")


def test_header_only_csv_lands_zero_rows(s):
    (s.sources_dir / "c.csv").write_text("id,name,city\n", encoding="utf-8")
    result = extract_dataset(csv(), "customers", s, DAY)
    assert result.rows == 0
    assert read_landing_table(result.path).column_names == ["id", "name", "city"]


def test_latin1_jsonl_declared_utf8_names_the_line(s):
    lines = ['{"id": "1", "name": "A", "city": "X"}'] * 3 + ['{"id": "4", "name": "Müller"}']
    (s.sources_dir / "c.jsonl").write_bytes("\n".join(lines).encode("latin-1"))
    fails(s, jsonl("utf-8"), r"c\.jsonl line 4 is not valid utf-8.*'encoding'")


@pytest.mark.parametrize("line", ["[1, 2]", "42", '"text"', "null"])
def test_a_json_line_that_is_not_an_object(s, line):
    (s.sources_dir / "c.jsonl").write_text(
        '{"id": "1", "name": "A", "city": "X"}\n' + line + "\n", encoding="utf-8"
    )
    fails(s, jsonl(), r"c\.jsonl line 2 is not a JSON object")


def test_a_lone_surrogate_in_json_is_rejected_naming_the_line(s):
    (s.sources_dir / "c.jsonl").write_text(
        '{"id": "1", "name": "A", "city": "X"}\n{"id": "2", "name": "B\\ud800", "city": "Y"}\n',
        encoding="utf-8",
    )
    err = fails(s, jsonl(), r"c\.jsonl line 2 .*lone surrogate.*'name'")
    assert "B\\ud800" not in str(err) and "B\ud800" not in str(err)


def test_unknown_placeholder_in_a_path_names_the_placeholders(s):
    pattern = r"unknown placeholder \{yyyymmddd\}.*\{yyyymmdd\}.*\{date\}"
    with pytest.raises(ValueError, match=r"'path'.*" + pattern):  # when the config is loaded
        source("csv", "c_{yyyymmddd}.csv")
    # and a reader built without validation (as a test or a tool may) fails as clearly
    config = source("csv", "c.csv")
    reader = config.customers.reader.model_copy(update={"path": "{sources}/c_{yyyymmddd}.csv"})
    with pytest.raises(SourceReadError, match=pattern):
        extract_path(reader, s)


def test_a_file_that_vanishes_mid_read_is_a_retryable_error(s):
    (s.sources_dir / "c.csv").write_text(
        "id,name,city\n" + "".join(f"{i},N{i},C\n" for i in range(5)), encoding="utf-8"
    )
    path = s.sources_dir / "c.csv"
    chunks = readers.read_csv(path, csv(chunk_size=2).customers.reader, "files", [])
    next(chunks)
    path.unlink()
    with pytest.raises(SourceReadError, match=r"c\.csv vanished or changed while") as e:
        list(chunks)
    assert e.value.retryable


def test_a_file_that_disappears_before_it_is_opened(s, monkeypatch):
    path = s.sources_dir / "c.csv"
    path.write_text("id,name,city\n1,A,X\n", encoding="utf-8")
    real = readers.resolve_encoding

    def resolve_then_lose_the_file(*args, **kwargs):
        encoding = real(*args, **kwargs)
        path.unlink()  # the delivery job moves the file away between the check and the read
        return encoding

    monkeypatch.setattr(readers, "resolve_encoding", resolve_then_lose_the_file)
    err = fails(s, csv(), r"c\.csv vanished or changed while it was read")
    assert err.retryable


def test_a_symlinked_source_is_followed_and_its_target_named(s):
    target = s.sources_dir / "c_20261127.csv"
    target.write_text("id,name,city\n1,A,X\n", encoding="utf-8")
    (s.sources_dir / "c.csv").symlink_to(target)
    result = extract_dataset(csv(), "customers", s, DAY)
    assert result.rows == 1
    assert any("symbolic link" in n and "c_20261127.csv" in n for n in result.notes)


def test_a_dangling_symlink_names_link_and_target(s):
    (s.sources_dir / "c.csv").symlink_to(s.sources_dir / "gone.csv")
    fails(s, csv(), r"c\.csv is a symbolic link to .*gone\.csv, which does not exist")


@pytest.mark.parametrize(
    ("data", "encoding"),
    [
        ("id,name,city\n1,Müller,北京\n".encode("utf-16"), None),
        ("id,name,city\n1,Müller,北京\n".encode("utf-16"), "utf-16"),
        ("id,name,city\n1,Müller,北京\n".encode("utf-8-sig"), None),
        ("id,name,city\n1,Müller,北京\n".encode("utf-8-sig"), "utf-8"),
        ("id,name,city\n1,Müller,北京\n".encode("utf-16-le"), "utf-16-le"),
    ],
    ids=["utf16-bom-detected", "utf16-declared", "utf8-bom", "utf8-bom-declared", "utf16le"],
)
def test_utf16_and_byte_order_marks(s, data, encoding):
    (s.sources_dir / "c.csv").write_bytes(data)
    back = read_landing_table(extract_dataset(csv(encoding), "customers", s, DAY).path).to_pandas()
    assert back.columns.tolist() == ["id", "name", "city"]
    assert back.iloc[0].tolist() == ["1", "Müller", "北京"]


def test_utf16_declared_as_utf8_is_a_clear_error(s):
    (s.sources_dir / "c.csv").write_bytes("id,name,city\n1,Müller,北京\n".encode("utf-16"))
    fails(s, csv("utf-8"), r"not valid utf-8.*utf_16.*'encoding'")


def test_mixed_newlines_and_quoted_newlines(s):
    (s.sources_dir / "c.csv").write_bytes(
        b'id,name,city\r\n1,A,X\n2,"B\nline two",Y\r3,C,Z\r\n4,"D\r\nE",W'
    )
    back = read_landing_table(extract_dataset(csv(), "customers", s, DAY).path).to_pandas()
    assert back["id"].tolist() == ["1", "2", "3", "4"]
    assert back["name"].tolist()[1] == "B\nline two"
    assert back["city"].tolist() == ["X", "Y", "Z", "W"]


def test_mixed_newlines_in_json_lines(s):
    (s.sources_dir / "c.jsonl").write_bytes(
        b'{"id": "1", "name": "A", "city": "X"}\r\n{"id": "2", "name": "B", "city": "Y"}\n'
        b'{"id": "3", "name": "C\\nD", "city": "Z"}'
    )
    back = read_landing_table(extract_dataset(jsonl(), "customers", s, DAY).path).to_pandas()
    assert back["id"].tolist() == ["1", "2", "3"] and back["name"][2] == "C\nD"


def test_a_truncated_last_row_is_an_error(s):
    (s.sources_dir / "c.csv").write_text("id,name,city\n1,A,X\n2,B", encoding="utf-8")
    fails(s, csv(), r"c\.csv line 3 .*2 of 3 fields.*truncated")


def test_an_unterminated_quote_at_the_end_is_an_error(s):
    (s.sources_dir / "c.csv").write_text('id,name,city\n1,A,X\n2,"B,Y\n', encoding="utf-8")
    fails(s, csv(), r"c\.csv could not be parsed.*'quotechar'")


def test_a_wrong_delimiter_says_check_delimiter(s):
    (s.sources_dir / "c.csv").write_text("id;name;city\n1;A;X\n", encoding="utf-8")
    fails(s, csv(), r"one column.*check 'delimiter'.*';'")


def test_a_10_mb_field_lands_whole(s):
    big = "x" * 10_000_000
    (s.sources_dir / "c.csv").write_text(f"id,name,city\n1,{big},X\n2,B,Y\n", encoding="utf-8")
    back = read_landing_table(extract_dataset(csv(), "customers", s, DAY).path).to_pandas()
    assert len(back["name"][0]) == 10_000_000 and back["id"].tolist() == ["1", "2"]


def test_errors_carry_no_customer_value(s):
    (s.sources_dir / "c.jsonl").write_text(
        '{"id": "1", "name": "Zhang Wei Secret", "city": "X"}\n["Zhang Wei Secret"]\n',
        encoding="utf-8",
    )
    err = fails(s, jsonl(), r"line 2 is not a JSON object")
    assert "Zhang" not in str(err)


def test_a_header_naming_a_column_twice_is_an_error(s):
    (s.sources_dir / "c.csv").write_text("id,name,city,name\n1,A,X,B\n", encoding="utf-8")
    fails(s, csv(), r"c\.csv.*header names column 'name' twice.*[Rr]ename")


def test_a_nul_byte_in_a_field_is_removed_not_a_truncation(s):
    (s.sources_dir / "c.csv").write_bytes(b"id,name,city\n1,Null\x00byte GmbH,X\n2,B,Y\n")
    result = extract_dataset(csv(), "customers", s, DAY)
    assert read_landing_table(result.path).to_pandas()["name"].tolist() == ["Nullbyte GmbH", "B"]
    assert any("NUL" in n for n in result.notes)


def test_an_unknown_encoding_name_is_a_clear_error(s):
    (s.sources_dir / "c.csv").write_text("id,name,city\n1,A,X\n", encoding="utf-8")
    fails(s, csv("utf-9"), r"'utf-9'.*not an encoding Python knows.*'encoding'")


def test_every_value_becomes_text_or_none_whatever_its_column_holds():
    from custpipe.sources.readers import _as_strings

    frame = pd.DataFrame(
        {
            "text": ["a", None, float("nan")],  # text already: kept, missing values as None
            "numbers": [1.0, None, 2.5],
            "mixed": ["x", 7, {"k": 1}],
            "empty": [None, None, None],
        }
    )
    out = _as_strings(frame)
    assert out.to_dict("list") == {
        "text": ["a", None, None],
        "numbers": ["1", None, "2.5"],
        "mixed": ["x", "7", '{"k": 1}'],
        "empty": [None, None, None],
    }
