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
