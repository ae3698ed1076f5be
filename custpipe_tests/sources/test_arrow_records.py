"""JSON Lines records go to Arrow without pandas (custpipe.sources.arrow_records) only where
pandas would make exactly the same strings; the landing is the same either way."""

from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pyarrow as pa
import pytest
from pandas.io.json._normalize import _simple_json_normalize

from custpipe.config import SourceConfig
from custpipe.settings import Settings
from custpipe.sources import arrow_records, readers
from custpipe.sources.extract import extract_dataset, read_landing_table, read_manifest

RECORDS = {
    "flat": [{"id": "1", "name": "Ann"}, {"id": "2", "name": None}],
    "nested": [{"id": "1", "address": {"city": "Bern", "geo": {"lat": "46.9"}}, "name": "A"}],
    "keys appearing later": [{"id": "1"}, {"id": "2", "first": "Bo", "address": {"zip": "3"}}],
    "an empty object and an empty record": [{"id": "1", "extra": {}}, {}, {"id": "3"}],
    "dotted and empty keys": [{"a.b": "1", "a": {"b": "2"}, "": {"c": "3"}, "d": {"": "4"}}],
    "a top key equal to a flattened one": [{"a.b": "top", "a": {"b": "nested"}}],
}

NOT_STRINGS = {
    "a number": [{"id": 1}],
    "a boolean": [{"id": "1", "vip": True}],
    "a list": [{"id": "1", "tags": ["a"]}],
    "a nested number": [{"id": "1", "address": {"zip": 3000}}],
    "no key at all": [{}, {}],
}


def pandas_strings(records: list[dict]) -> pd.DataFrame:
    return readers._as_strings(pd.json_normalize(records, sep="."))


def as_frame(table: pa.Table) -> pd.DataFrame:
    frame = table.to_pandas()
    return frame.astype(object).where(frame.notna(), None)


@pytest.mark.parametrize("name", RECORDS)
def test_flattening_is_pandas_flattening(name):
    for record in RECORDS[name]:
        assert list(arrow_records.flatten(record).items()) == list(
            _simple_json_normalize(record, sep=".").items()
        )


@pytest.mark.parametrize("name", RECORDS)
def test_string_records_make_the_table_pandas_makes(name):
    table = arrow_records.strings_table(RECORDS[name])
    assert table is not None and all(f.type == pa.string() for f in table.schema)
    expected = pandas_strings(RECORDS[name])
    assert table.column_names == list(expected.columns)
    assert as_frame(table).to_numpy().tolist() == expected.to_numpy().tolist()


@pytest.mark.parametrize("name", NOT_STRINGS)
def test_records_with_other_values_are_left_to_pandas(name):
    assert arrow_records.strings_table(NOT_STRINGS[name]) is None


def test_a_jsonl_extraction_lands_the_same_by_either_path(tmp_path, monkeypatch):
    config = SourceConfig.model_validate(
        {
            "name": "files",
            "customers": {
                "reader": {"kind": "jsonl", "path": "{sources}/c.jsonl", "chunk_size": 2},
                "id": "id",
                "fields": {"name": "name", "city": "address.city"},
            },
        }
    )
    records = [
        {"id": "1", "name": "Ann", "address": {"city": "Bern"}},
        {"id": "2", "name": None, "address": {"city": "Chur", "zip": "7000"}},
        {"id": "3", "name": "Cy", "first": "C", "address": {}},  # a key of a later chunk
        {"id": 4, "name": "Dee", "address": {"city": "Zug"}},  # a number: pandas' chunk
        {"id": "5", "name": "Eve"},
    ]
    landed = []
    for by_arrow in (True, False):
        s = Settings(tmp_path / "config", tmp_path / f"data{by_arrow}", tmp_path / "exp")
        s.sources_dir.mkdir(parents=True)
        lines = "\n".join(json.dumps(r) for r in records) + "\n"
        (s.sources_dir / "c.jsonl").write_text(lines, encoding="utf-8")
        if not by_arrow:
            monkeypatch.setattr(arrow_records, "strings_table", lambda *args, **kwargs: None)
        result = extract_dataset(config, "customers", s, date(2026, 11, 27))
        manifest = read_manifest(result.path)
        table = read_landing_table(result.path)
        landed.append((result.rows, manifest["content_sha256"], manifest["columns"], table))
    assert landed[0][:3] == landed[1][:3] and landed[0][3].equals(landed[1][3])
    assert landed[0][0] == 5 and "first" in landed[0][3].column_names


# -- whole files parsed by Arrow's JSON reader (jsonl_chunks) -----------------------------

WHOLE_FILES = {
    "flat, keys appearing later": [
        {"id": "1", "name": "Ann"},
        {"id": "2", "name": None, "first": "Bo"},
        {"id": "3", "first": "Cy", "name": "C"},
        {"id": "4"},
        {"first": "Dee", "id": "5", "name": "D"},
    ],
    "nested, a date-like string, an empty object": [
        {"id": "1", "address": {"city": "Bern", "geo": {"lat": "4"}}, "at": "2024-03-31T18:28:39Z"},
        {"name": None, "id": "2", "address": {"zip": "3000"}, "at": "2024-04-01"},
        {"at": None, "id": "3", "address": {"geo": {"lat": "1"}, "zip": "3000"}, "name": "X"},
        {"id": "4", "name": "Y"},  # no address at all: no column of it, as pandas
        {"id": "5", "address": {}, "name": "Z"},
    ],
}

LEFT_TO_THE_OLD_WAY = {
    "a number": '{"id": "1"}\n{"id": 2}\n',
    "a blank line": '{"id": "1"}\n\n{"id": "2"}\n',
    "an escape": '{"id": "1", "name": "\\u00e9"}\n',
    "a carriage return": '{"id": "1"}\r\n{"id": "2"}\r\n',
    "a byte-order mark": '\ufeff{"id": "1"}\n',
    "an object given as null": '{"id": "1", "a": {"b": "x"}}\n{"id": "2", "a": null}\n',
    "a key twice": '{"id": "1", "id": "2"}\n',
    "a key only in a later chunk": '{"id": "1"}\n{"id": "2"}\n{"id": "3", "late": "x"}\n',
    "not JSON": '{"id": "1"}\n{"id": \n',
    "a list": '{"id": "1", "tags": ["a"]}\n',
    "a null line": '{"id": "1"}\nnull\n',
    "two records on a line": '{"id": "1"}\n{"id": "2"} {"id": "3"}\n',
    "two on a line and one on two lines": '{"id": "1"} {"id": "2"}\n{"id":\n "3"}\n',
    "a blank last line": '{"id": "1"}\n\n',
    "a line with spaces around": '{"id": "1"}\n {"id": "2"} \n',
}


def old_chunks(records: list[dict], chunk_size: int) -> list[pa.Table]:
    """The chunks `strings_table` makes, each as it lands (the first chunk's columns)."""
    from custpipe.sources.extract import _landed_table

    chunks = [
        arrow_records.strings_table(records[at : at + chunk_size])
        for at in range(0, len(records), chunk_size)
    ]
    return [_landed_table(c, chunks[0].column_names) for c in chunks]


@pytest.mark.parametrize("name", WHOLE_FILES)
@pytest.mark.parametrize("chunk_size", [2, 5, 100])
def test_a_whole_file_parsed_by_arrow_is_the_chunks_the_records_make(tmp_path, name, chunk_size):
    records = WHOLE_FILES[name]
    path = tmp_path / "c.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n", encoding="utf-8")
    chunks = arrow_records.jsonl_chunks(path, chunk_size)
    expected = old_chunks(records, chunk_size)
    assert chunks is not None, "the fast path must take a plain file of strings"
    assert [c.num_rows for c in chunks] == [c.num_rows for c in expected]
    for got, want in zip(chunks, expected, strict=True):
        assert got.column_names == want.column_names
        assert got.schema == want.schema and got.equals(want)


@pytest.mark.parametrize("name", LEFT_TO_THE_OLD_WAY)
def test_a_file_arrow_might_read_otherwise_is_left_to_the_old_way(tmp_path, name):
    path = tmp_path / "c.jsonl"
    path.write_bytes(LEFT_TO_THE_OLD_WAY[name].encode("utf-8"))
    assert arrow_records.jsonl_chunks(path, 2) is None


def counted(function, calls: list):
    def wrapper(*args, **kwargs):
        result = function(*args, **kwargs)
        calls.append(result is not None)
        return result

    return wrapper


def test_a_jsonl_extraction_by_arrow_lands_what_the_record_reader_lands(tmp_path, monkeypatch):
    config = SourceConfig.model_validate(
        {
            "name": "files",
            "customers": {
                "reader": {"kind": "jsonl", "path": "{sources}/c.jsonl", "chunk_size": 2},
                "id": "id",
                "fields": {"name": "name", "city": "address.city"},
            },
        }
    )
    records = WHOLE_FILES["nested, a date-like string, an empty object"]
    landed, real = [], arrow_records.jsonl_chunks
    for whole in (True, False):
        s = Settings(tmp_path / "config", tmp_path / f"data{whole}", tmp_path / "exp")
        s.sources_dir.mkdir(parents=True)
        lines = "\n".join(json.dumps(r) for r in records) + "\n"
        (s.sources_dir / "c.jsonl").write_text(lines, encoding="utf-8")
        calls = []
        if whole:
            monkeypatch.setattr(arrow_records, "jsonl_chunks", counted(real, calls))
        else:
            monkeypatch.setattr(arrow_records, "jsonl_chunks", lambda *args, **kwargs: None)
        result = extract_dataset(config, "customers", s, date(2026, 11, 27))
        assert calls == ([True] if whole else [])
        manifest = read_manifest(result.path)
        table = read_landing_table(result.path)
        hashes = (result.path / "row_hashes.npy").read_bytes()
        landed.append((result.rows, manifest["content_sha256"], manifest["columns"], hashes, table))
    assert landed[0][:4] == landed[1][:4] and landed[0][4].equals(landed[1][4])
