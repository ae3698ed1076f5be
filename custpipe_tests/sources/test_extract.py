import json
from datetime import date

import numpy as np
import pandas as pd
import pytest
import sqlalchemy as sa

from custpipe.config import SourceConfig
from custpipe.settings import Settings
from custpipe.sources.extract import (
    SchemaDriftError,
    extract_dataset,
    latest_landing,
    read_landing_table,
)
from custpipe.sources.readers import SourceReadError

DAY = date(2026, 11, 27)


def settings(tmp_path) -> Settings:
    return Settings(tmp_path / "config", tmp_path / "data", tmp_path / "expectations")


def csv_source(path: str, encoding: str | None = "utf-8", **fields) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "sales",
            "customers": {
                "reader": {"kind": "csv", "path": path, "encoding": encoding, "chunk_size": 2},
                "id": "客户编号",
                "fields": fields or {"name": "客户名称"},
            },
        }
    )


def test_gbk_csv_with_chinese_headers_lands_as_parquet_parts(tmp_path):
    s = settings(tmp_path)
    (s.sources_dir / "sales").mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "客户编号": ["S-1", "S-2", "S-3"],
            "客户名称": ["北京华为有限公司", "上海", "深圳"],
            "备注": ["", "x", ""],
        }
    )
    frame.to_csv(s.sources_dir / "sales" / "c_20261127.csv", index=False, encoding="gbk")
    result = extract_dataset(
        csv_source("{sources}/sales/c_{yyyymmdd}.csv", "gbk"), "customers", s, DAY
    )
    assert result.rows == 3 and result.extra_columns == ("备注",)
    assert len(list(result.path.glob("part-*.parquet"))) == 2  # chunk_size 2
    back = read_landing_table(latest_landing(s, "sales", "customers", DAY)).to_pandas()
    assert back["客户名称"].tolist() == ["北京华为有限公司", "上海", "深圳"]
    assert back["备注"].tolist() == [None, "x", None]
    manifest = json.loads((result.path / "manifest.json").read_text())
    assert manifest["rows"] == 3 and manifest["business_date"] == "2026-11-27"


def test_each_extraction_gets_its_own_folder(tmp_path):
    s = settings(tmp_path)
    (s.sources_dir).mkdir(parents=True)
    pd.DataFrame({"客户编号": ["S-1"], "客户名称": ["A"]}).to_csv(
        s.sources_dir / "c.csv", index=False
    )
    first = extract_dataset(csv_source("{sources}/c.csv"), "customers", s, DAY)
    # a byte-identical file is read again only on a full refresh (see test_unchanged_files)
    second = extract_dataset(csv_source("{sources}/c.csv"), "customers", s, DAY, full_refresh=True)
    assert first.path != second.path and first.path.exists()
    assert latest_landing(s, "sales", "customers") == second.path


def test_declared_encoding_that_does_not_fit_is_a_clear_error(tmp_path):
    s = settings(tmp_path)
    s.sources_dir.mkdir(parents=True)
    pd.DataFrame(
        {"客户编号": ["S-1"] * 50, "客户名称": ["华为技术有限公司北京分公司"] * 50}
    ).to_csv(s.sources_dir / "c.csv", index=False, encoding="gb18030")
    with pytest.raises(
        SourceReadError,
        match=r"source 'sales'.*not valid utf-8-sig.*looks like 'gb18030'. Set 'encoding'",
    ):
        extract_dataset(csv_source("{sources}/c.csv", "utf-8"), "customers", s, DAY)
    assert not list(s.landing_dir.rglob("*.parquet"))  # nothing half-written is left


def test_undeclared_encoding_is_detected_with_a_warning(tmp_path):
    s = settings(tmp_path)
    s.sources_dir.mkdir(parents=True)
    names = [
        "北京华为技术有限公司",
        "上海浦东发展银行股份有限公司",
        "深圳市腾讯计算机系统有限公司",
    ] * 20
    frame = pd.DataFrame({"客户编号": [f"S-{i}" for i in range(60)], "客户名称": names})
    frame.to_csv(s.sources_dir / "c.csv", index=False, encoding="gb18030")
    result = extract_dataset(csv_source("{sources}/c.csv", None), "customers", s, DAY)
    assert read_landing_table(result.path).to_pandas()["客户名称"].tolist() == names
    assert len(result.notes) == 1 and "not UTF-8 and declares no encoding" in result.notes[0]
    assert json.loads((result.path / "manifest.json").read_text())["notes"] == list(result.notes)


def test_utf8_with_byte_order_mark_needs_no_declaration(tmp_path):
    s = settings(tmp_path)
    s.sources_dir.mkdir(parents=True)
    pd.DataFrame({"客户编号": ["S-1"], "客户名称": ["Müller GmbH"]}).to_csv(
        s.sources_dir / "c.csv", index=False, encoding="utf-8-sig"
    )
    result = extract_dataset(csv_source("{sources}/c.csv", None), "customers", s, DAY)
    assert read_landing_table(result.path).to_pandas().columns.tolist() == ["客户编号", "客户名称"]
    assert result.notes == ()


def test_semicolons_and_quotes(tmp_path):
    s = settings(tmp_path)
    s.sources_dir.mkdir(parents=True)
    (s.sources_dir / "c.csv").write_text(
        "客户编号;客户名称\nS-1;'Acme; Inc.'\nS-2;'It''s'\n", encoding="utf-8"
    )
    source = SourceConfig.model_validate(
        {
            "name": "sales",
            "customers": {
                "reader": {
                    "kind": "csv",
                    "path": "{sources}/c.csv",
                    "delimiter": ";",
                    "quotechar": "'",
                },
                "id": "客户编号",
                "fields": {"name": "客户名称"},
            },
        }
    )
    back = read_landing_table(extract_dataset(source, "customers", s, DAY).path).to_pandas()
    assert back["客户名称"].tolist() == ["Acme; Inc.", "It's"]


def test_missing_export_names_the_file(tmp_path):
    with pytest.raises(SourceReadError, match=r"source 'sales': file .*c_20261127.csv not found"):
        extract_dataset(
            csv_source("{sources}/c_{yyyymmdd}.csv"), "customers", settings(tmp_path), DAY
        )


def test_renamed_column_fails_with_a_suggestion(tmp_path):
    s = settings(tmp_path)
    s.sources_dir.mkdir(parents=True)
    pd.DataFrame({"客户编号": ["S-1"], "客户名称1": ["A"]}).to_csv(
        s.sources_dir / "c.csv", index=False
    )
    with pytest.raises(SchemaDriftError, match=r"'客户名称' \(did you mean '客户名称1'"):
        extract_dataset(csv_source("{sources}/c.csv"), "customers", s, DAY)


def test_sql_source_streams_a_table(tmp_path):
    s = settings(tmp_path)
    db = tmp_path / "erp.sqlite"
    engine = sa.create_engine(f"sqlite:///{db}")
    pd.DataFrame(
        {"KUNNR": ["0001", "0002", "0003"], "NAME1": ["A", "B", None], "NETWR": [1.5, 2.0, 3.25]}
    ).to_sql("KNA1", engine, index=False)
    engine.dispose()
    source = SourceConfig.model_validate(
        {
            "name": "erp",
            "connection": {"url": f"sqlite:///{db}"},
            "customers": {
                "reader": {"kind": "sql", "table": "KNA1", "chunk_size": 2},
                "id": "KUNNR",
                "fields": {"name": "NAME1"},
            },
        }
    )
    result = extract_dataset(source, "customers", s, DAY)
    back = read_landing_table(result.path).to_pandas()
    assert back.to_dict("list") == {
        "KUNNR": ["0001", "0002", "0003"],
        "NAME1": ["A", "B", None],
        "NETWR": ["1.5", "2", "3.25"],
    }


def test_jsonl_nested_objects_are_flattened(tmp_path):
    s = settings(tmp_path)
    s.sources_dir.mkdir(parents=True)
    lines = [{"id": "SV-1", "name": "A", "address": {"city": "Köln"}}, {"id": "SV-2", "name": "B"}]
    (s.sources_dir / "c.jsonl").write_text(
        "\n".join(json.dumps(x) for x in lines), encoding="utf-8"
    )
    source = SourceConfig.model_validate(
        {
            "name": "service",
            "customers": {
                "reader": {"kind": "jsonl", "path": "{sources}/c.jsonl"},
                "id": "id",
                "fields": {"name": "name", "city": "address.city"},
            },
        }
    )
    back = read_landing_table(extract_dataset(source, "customers", s, DAY).path).to_pandas()
    assert back["address.city"].tolist() == ["Köln", None]


def test_broken_json_line_is_named(tmp_path):
    s = settings(tmp_path)
    s.sources_dir.mkdir(parents=True)
    (s.sources_dir / "c.jsonl").write_text(
        '{"id": "1", "name": "A"}\n{"id": 2,\n', encoding="utf-8"
    )
    source = SourceConfig.model_validate(
        {
            "name": "service",
            "customers": {
                "reader": {"kind": "jsonl", "path": "{sources}/c.jsonl"},
                "id": "id",
                "fields": {"name": "name"},
            },
        }
    )
    with pytest.raises(SourceReadError, match=r"line 2 is not valid JSON"):
        extract_dataset(source, "customers", s, DAY)


def test_known_rows_holds_only_when_every_row_read_was_landed(tmp_path):
    from custpipe.sources.extract import ROW_HASHES, known_rows

    landed = np.array([11, 2**63 + 5, 42, 7], dtype=np.uint64)
    np.save(tmp_path / ROW_HASHES, landed)
    before = {"columns": ["id", "name"]}
    read_again = np.array([42, 2**63 + 5], dtype=np.uint64)
    assert known_rows(before, tmp_path, ["id", "name"], read_again)
    changed = np.array([42, 2**63 + 6], dtype=np.uint64)  # a row changed since
    assert not known_rows(before, tmp_path, ["id", "name"], changed)
    assert not known_rows(before, tmp_path, ["id", "email"], read_again)  # other columns
    assert not known_rows(None, tmp_path, ["id", "name"], read_again)  # no last extraction
