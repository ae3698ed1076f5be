"""A CSV header written with spaces after the commas ('rec_id, given_name, surname') maps with
plain names: the reader's `strip_header` (default true) removes the spaces around the header's
names, never those of the values; a mapping written for the spaced names keeps working."""

from __future__ import annotations

from datetime import date

import pytest

from custpipe.config import ConfigError, SourceConfig, load_source
from custpipe.mapping.stage import mapping_fingerprint, restage_fingerprint
from custpipe.settings import Settings
from custpipe.sources.extract import extract_dataset, read_landing_table
from custpipe.sources.readers import SourceReadError

DAY = date(2026, 11, 27)
SPACED = "rec_id, given_name, surname, city\nR1, Anna, Berg ,  Köln\nR2, Ben, Roth, Bonn\n"


@pytest.fixture
def s(tmp_path) -> Settings:
    settings = Settings(tmp_path / "config", tmp_path / "data", tmp_path / "expectations")
    settings.sources_dir.mkdir(parents=True)
    (settings.sources_dir / "people.csv").write_text(SPACED, encoding="utf-8")
    return settings


def people(fields: dict | None = None, id_: str = "rec_id", **reader) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "people",
            "customers": {
                "reader": {"kind": "csv", "path": "{sources}/people.csv"} | reader,
                "id": id_,
                "fields": fields
                or {"given_name": "given_name", "family_name": "surname", "city": "city"},
            },
        }
    )


def test_a_spaced_header_maps_with_plain_names_and_values_keep_their_spaces(s):
    source = people()
    assert source.customers.reader.strip_header is True  # the default
    result = extract_dataset(source, "customers", s, DAY)
    assert result.columns == ("rec_id", "given_name", "surname", "city")
    landed = read_landing_table(result.path).to_pandas()
    # only the header is stripped: a value's spaces reach staging, which cleans text itself
    assert landed["surname"].tolist() == [" Berg ", " Roth"]
    assert landed["city"].tolist() == ["  Köln", " Bonn"]


def test_preview_shows_the_stripped_names(s, monkeypatch, capsys):
    from custpipe.cli import main

    config = s.config_dir
    (config / "sources").mkdir(parents=True)
    (config / "pipeline.yaml").write_text(
        "publish: {connection: {url: 'sqlite:///{data}/erp.sqlite'}}\n", encoding="utf-8"
    )
    (config / "sources" / "people.yaml").write_text(
        "customers:\n"
        "  reader: {kind: csv, path: '{sources}/people.csv'}\n"
        "  id: rec_id\n"
        "  fields: {given_name: given_name, family_name: surname}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("CUSTPIPE_CONFIG", str(config))
    monkeypatch.setenv("CUSTPIPE_DATA", str(s.data_dir))
    assert main(["preview", "people", "--date", DAY.isoformat(), "--show-values"]) == 0
    out = capsys.readouterr().out
    assert "2 row(s) previewed" in out
    assert "1 source column(s) not used by the mapping: city" in out  # not ' city'
    assert "Anna Berg" in out and "Ben Roth" in out  # the staged names, derived and cleaned


def test_strip_header_false_reads_the_header_as_the_file_spells_it(s):
    fields = {"given_name": " given_name", "family_name": " surname"}
    result = extract_dataset(people(fields, strip_header=False), "customers", s, DAY)
    assert result.columns == ("rec_id", " given_name", " surname", " city")


def test_a_mapping_written_for_the_spaced_header_keeps_working(s):
    """An existing deployment maps ' given_name' (what it had to before): its header is read
    as it is, unless the file says strip_header."""
    source = people({"given_name": " given_name", "family_name": {"concat": [" surname"]}})
    assert source.customers.reader.strip_header is False
    result = extract_dataset(source, "customers", s, DAY)
    assert result.columns[:3] == ("rec_id", " given_name", " surname")


def test_a_spaced_name_under_an_explicit_strip_header_is_refused_with_the_fix(tmp_path):
    path = tmp_path / "people.yaml"
    path.write_text(
        "customers:\n"
        "  reader: {kind: csv, path: x.csv, strip_header: true}\n"
        "  id: rec_id\n"
        "  fields:\n"
        "    given_name: ' given_name'\n"
        "    family_name: {expr: 'upper(\" surname\")'}\n",
        encoding="utf-8",
    )
    with pytest.raises(ConfigError) as err:
        load_source(path)
    msg = str(err.value)
    assert "people.yaml" in msg and "' given_name', ' surname'" in msg
    assert "write 'given_name', 'surname'" in msg and "strip_header: false" in msg


def test_strip_header_is_for_csv_readers_only():
    with pytest.raises(ValueError, match="'strip_header' is for 'csv' readers"):
        SourceConfig.model_validate(
            {
                "name": "x",
                "customers": {
                    "reader": {"kind": "jsonl", "path": "x.jsonl", "strip_header": False},
                    "id": "id",
                    "fields": {"name": "name"},
                },
            }
        )


def test_names_equal_once_stripped_are_a_duplicate_named_as_written(s):
    (s.sources_dir / "people.csv").write_text(
        "rec_id, surname,given_name,surname\nR1,Berg,Anna,Berg\n", encoding="utf-8"
    )
    with pytest.raises(SourceReadError) as err:
        extract_dataset(people(), "customers", s, DAY)
    msg = str(err.value)
    assert "header names column 'surname' twice (columns 2 and 4" in msg
    assert "written ' surname' and 'surname'" in msg and "Rename or remove" in msg
    assert not list(s.landing_dir.rglob("*.parquet"))


def test_a_header_name_of_spaces_only_gets_the_pandas_name(s):
    (s.sources_dir / "people.csv").write_text(
        "rec_id,given_name,surname,  \nR1,Anna,Berg,x\n", encoding="utf-8"
    )
    result = extract_dataset(people({"given_name": "given_name"}), "customers", s, DAY)
    assert result.columns == ("rec_id", "given_name", "surname", "Unnamed: 3")


def test_strip_header_changes_no_staging_fingerprint():
    """It acts when a file is read, not when a landing folder is staged: turning it on or off
    (or upgrading to a custpipe that has it) restages nothing."""
    on, off = people(), people(strip_header=False)
    assert restage_fingerprint(on, "customers") == restage_fingerprint(off, "customers")
    assert mapping_fingerprint(on, "customers") == mapping_fingerprint(off, "customers")
    dumped = type(off).model_validate(off.model_dump())  # a dumped config loads as it was
    assert dumped.customers.reader.strip_header is False
    other = people({"given_name": "given_name"})
    assert restage_fingerprint(other, "customers") != restage_fingerprint(on, "customers")
