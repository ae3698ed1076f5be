"""The raw suite reads only the columns it names from a landing folder, with the same verdicts."""

from __future__ import annotations

import pyarrow as pa
import pyarrow.parquet as pq

from custpipe.config import load_config
from custpipe.quality.gx_runner import columns_named, read_suite
from custpipe.quality.validate import read_landing_columns, validate_landing
from custpipe.settings import DEFAULT_CONFIG_DIR, Settings
from custpipe.sources.extract import read_landing_table
from custpipe_tests.quality.helpers import EXPECTATIONS_DIR

CRM = load_config(DEFAULT_CONFIG_DIR).sources["crm"]


def landing(tmp_path, drop: str | None = None, duplicate: bool = False):
    folder = tmp_path / "landing" / "2026-11-27" / "crm" / "20261128T000000Z" / "customers"
    folder.mkdir(parents=True)
    columns = [c for c in CRM.customers.source_columns() if c != drop]
    ids = ["001", "002", "002" if duplicate else "003"]
    for n, part in enumerate((ids[:2], ids[2:])):
        data = {c: [f"v{c}"] * len(part) for c in columns}
        data["Id"] = part
        data["Notes"] = ["a wide column no rule reads " * 50] * len(part)
        pq.write_table(pa.table(data), folder / f"part-{n:05d}.parquet")
    return folder


def settings(tmp_path) -> Settings:
    return Settings(DEFAULT_CONFIG_DIR, tmp_path / "data", EXPECTATIONS_DIR)


def test_the_raw_suite_names_the_mapped_columns_and_not_the_others():
    named = columns_named(read_suite(EXPECTATIONS_DIR, "raw_crm"))
    assert named is not None and "Id" in named and "Phone" in named and "Notes" not in named
    whole = {"expectations": [{"type": "expect_table_column_count_to_equal", "kwargs": {}}]}
    assert columns_named(whole) is None  # a rule on the whole column list: read everything


def test_only_the_named_columns_are_read(tmp_path):
    folder = landing(tmp_path)
    named = columns_named(read_suite(EXPECTATIONS_DIR, "raw_crm"))
    read = read_landing_columns(folder, named)
    assert "Notes" not in read.columns and len(read) == 3
    landed = read_landing_table(folder).column_names
    assert set(read.columns) == set(landed) - {"Notes"}
    assert read_landing_columns(folder, None).columns.tolist() == landed


def test_a_clean_extract_passes_and_a_broken_one_fails_as_before(tmp_path):
    outcome, rows = validate_landing(settings(tmp_path / "a"), CRM, landing(tmp_path / "a"))
    assert rows == 3 and not outcome.failures("block")
    broken = landing(tmp_path / "b", drop="Phone", duplicate=True)
    outcome, rows = validate_landing(settings(tmp_path / "b"), CRM, broken)
    failed = {o.rule: o.failed for o in outcome.failures("block")}
    assert rows == 3 and failed == {"mapped_columns_present": 1, "record_id_unique": 2}
    assert (broken / "rejected.json").exists()


def test_columns_not_in_values_come_all_null_in_their_place(tmp_path):
    folder = landing(tmp_path)
    named = columns_named(read_suite(EXPECTATIONS_DIR, "raw_crm"))
    full = read_landing_columns(folder, named)
    names_only = read_landing_columns(folder, named, values=["Id"])
    assert names_only.columns.tolist() == full.columns.tolist()
    assert names_only["Id"].tolist() == full["Id"].tolist() == ["001", "002", "003"]
    others = names_only.drop(columns=["Id"])
    assert others.isna().all().all() and len(others) == 3


def test_reading_names_only_gives_the_full_reads_verdicts(tmp_path):
    from custpipe.quality.gx_runner import validate_frame

    broken = landing(tmp_path, drop="Phone", duplicate=True)
    rules = read_suite(EXPECTATIONS_DIR, "raw_crm")
    outcomes = [
        validate_frame(
            read_landing_columns(broken, columns_named(rules), values),
            "raw_crm",
            expectations_dir=EXPECTATIONS_DIR,
            gx_dir=tmp_path / f"gx{n}",
            id_column="Id",
            build_docs=False,
        ).outcomes
        for n, values in enumerate((None, ["Id"]))
    ]
    assert outcomes[0] == outcomes[1]
    assert {o.rule for o in outcomes[0] if not o.success} >= {"mapped_columns_present"}
