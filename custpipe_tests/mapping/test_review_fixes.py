"""Review findings on mapping (issue 13): time zones of mixed stamps, party-type names,
quantity rule, duplicate ids across batches and landings, aggregate/window expressions."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import pytest

from custpipe.config import DatasetConfig
from custpipe.mapping.apply import map_fields


def dataset(fields: dict, **extra) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {"reader": {"kind": "csv", "path": "x.csv"}, "id": "ID", "fields": fields, **extra}
    )


# ------------------------------------------------------------------ mixed naive / offset stamps


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        (  # offset first: pandas would apply +08:00 to the naive one, then it was shifted again
            ["2024-03-01T10:00:00+08:00", "2024-03-01 00:00:00"],
            ["2024-03-01 02:00:00", "2024-02-29 16:00:00"],
        ),
        (
            ["2024-03-01 00:00:00", "2024-03-01T10:00:00+08:00"],
            ["2024-02-29 16:00:00", "2024-03-01 02:00:00"],
        ),
        (
            ["2024-03-01T10:00:00Z", "2024-03-01T10:00:00", "2024-03-01T10:00:00-05:00"],
            ["2024-03-01 10:00:00", "2024-03-01 02:00:00", "2024-03-01 15:00:00"],
        ),
        (["2024-03-01", "2024-03-01T12:00:00+01:00"], ["2024-03-01", "2024-03-01 11:00:00"]),
    ],
)
def test_mixed_naive_and_offset_stamps_are_each_converted_once(values, expected):
    raw = pd.DataFrame({"ID": [str(i) for i in range(len(values))], "U": values})
    out, issues = map_fields(raw, dataset({"source_updated_at": "U"}), "sales", "Asia/Shanghai")
    assert out["source_updated_at"].tolist() == [pd.Timestamp(e) for e in expected]
    assert issues == []


def test_naive_datetime_objects_are_local_and_aware_ones_keep_their_instant():

    values = [datetime(2024, 3, 1, 8, 0), datetime(2024, 3, 1, 8, 0, tzinfo=UTC)]
    raw = pd.DataFrame({"ID": ["1", "2"], "U": pd.Series(values, dtype=object)})
    out, _ = map_fields(raw, dataset({"source_updated_at": "U"}), "sales", "Asia/Shanghai")
    assert out["source_updated_at"].tolist() == [
        pd.Timestamp("2024-03-01 00:00"),
        pd.Timestamp("2024-03-01 08:00"),
    ]


# ------------------------------------------------------------------ party type of a name

PARTY = {"party_type": {"column": "N", "transform": "infer_party_type"}, "name": "N"}


@pytest.mark.parametrize(
    ("name", "party"),
    [
        ("ACME [Europe] GmbH", "company"),
        ("Smith; Jones & Co.", "company"),
        ("@Home GmbH", "company"),
        ("+Plus Handels GmbH", "company"),
        ("Müller--Schmidt", "person"),
        ("R&D {Labs}", "person"),
        ("1&1 Internet AG", "company"),
        ("<b>Fett</b> GmbH", "company"),
        ("-Minus- Verlag GmbH", "company"),
        ("王小明", "person"),
        ("北京华为技术有限公司", "company"),
        # undecided: no letter, or a formula / SQL payload
        ("12345", None),
        ("1&1", None),  # no letter: no sign of a person or a company
        ("---", None),
        ('=HYPERLINK("http://x","y")', None),
        ("=1+1", None),
        ("@SUM(A1:A9)", None),
        ("+cmd|' /C calc'!A0", None),
        ("-2+3+cmd|' /C calc'!A0", None),
        ("+A1", None),
        ("-$B$2*3", None),
        ("@ sum (1)", None),
        ("'); DROP TABLE x;--", None),
        ("Robert'); DROP TABLE students;", None),
        ("x; -- comment", None),
    ],
)
def test_party_type_of_names_with_punctuation_and_of_payloads(name, party):
    raw = pd.DataFrame({"ID": ["1", "2"], "N": [name, "Vincent Schulz"]})
    out, issues = map_fields(raw, dataset(PARTY), "sales")
    assert out["party_type"].tolist() == [party, "person"]
    flagged = out["mapping_errors"].iloc[0] or ""
    assert ("party_type_unknown:party_type" in flagged) == (party is None)


# ------------------------------------------------------------------ quantities


def test_an_unparseable_quantity_has_its_own_rule_and_amounts_keep_theirs():
    raw = pd.DataFrame(
        {"ID": ["1", "2", "3"], "Q": ["2", "zwei", "3"], "A": ["1.50", "2.00", "drei"]}
    )
    out, issues = map_fields(raw, dataset({"quantity": "Q", "line_amount": "A"}), "sales")
    assert out["mapping_errors"].tolist() == [
        None,
        "number_unparseable:quantity",
        "amount_unparseable:line_amount",
    ]
    assert {i.rule for i in issues} == {
        "number_unparseable:quantity",
        "amount_unparseable:line_amount",
    }


def test_the_quantity_rule_has_its_own_quarantine_text():
    from custpipe.quality.quarantine import describe_mapping_rule

    text = describe_mapping_rule("number_unparseable:quantity")
    assert "'quantity' is not a number under the dataset's 'number_format'" in text


# ------------------------------------------------------------------ expressions over other rows


@pytest.mark.parametrize(
    ("expr", "kind"),
    [
        ("count(*)", "aggregate"),
        ('sum("A")', "aggregate"),
        ('max("A") FILTER (WHERE "A" > 1)', "aggregate"),
        ("string_agg(\"A\", ',')", "aggregate"),
        ('upper("A") || count(*)', "aggregate"),
        ('lag("A") OVER ()', "window"),
        ('row_number() OVER (ORDER BY "A")', "window"),
        ('sum("A") OVER (PARTITION BY "B")', "window"),
    ],
)
def test_an_expression_reading_other_rows_is_rejected_when_loaded(tmp_path, expr, kind):
    import yaml

    from custpipe.config import ConfigError, load_source

    file = tmp_path / "crm.yaml"
    customers = {"reader": {"kind": "csv", "path": "x.csv"}, "id": "ID"}
    customers["fields"] = {"name": "N", "segment": {"expr": expr}}
    file.write_text(yaml.safe_dump({"customers": customers}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_source(file)
    message = str(err.value)
    assert "crm.yaml" in message and "customers.fields.segment" in message
    assert f"{kind} function" in message and "only the row's own columns" in message


@pytest.mark.parametrize(
    "expr", ['upper("A")', 'coalesce("A", "B")', 'TRY_CAST("A" AS INTEGER) + 1', "greatest(1, 2)"]
)
def test_row_level_expressions_still_load_and_map(expr):
    ds = dataset({"segment": {"expr": expr}})
    out, _ = map_fields(
        pd.DataFrame({"ID": ["1", "2"], "A": ["3", "4"], "B": [None, "x"]}), ds, "s"
    )
    assert len(out) == 2 and out["segment"].notna().all()


# ------------------------------------------------------------------ duplicate ids, whole source

DUP = "duplicate_id:source_id"


def _csv_source(tmp_path):
    from custpipe.config import SourceConfig
    from custpipe.settings import Settings

    source = SourceConfig.model_validate(
        {
            "name": "shop",
            "customers": {
                "reader": {"kind": "csv", "path": str(tmp_path / "in" / "c_{yyyymmdd}.csv")},
                "id": "Id",
                "fields": {"name": "Name", "country": {"const": "DE"}},
            },
        }
    )
    (tmp_path / "in").mkdir()
    return Settings(tmp_path, tmp_path / "data", tmp_path), source


def _night(con, tmp_path, settings, source, day, rows: list[tuple[str, str]]):
    import csv

    from custpipe.mapping.stage import stage_source
    from custpipe.sources.extract import extract_dataset

    path = tmp_path / "in" / f"c_{day:%Y%m%d}.csv"
    with path.open("w", newline="", encoding="utf-8") as f:
        csv.writer(f).writerows([("Id", "Name"), *rows])
    extract_dataset(source, "customers", settings, day)
    stage_source(con, settings, source, day, f"r{day:%d}", datetime(2026, 11, 28, 2, 0))
    return dict(con.execute("SELECT source_id, mapping_errors FROM staging.customers").fetchall())


def test_a_duplicate_id_across_two_landings_flags_both_copies_and_clears_with_its_twin(tmp_path):
    from datetime import date

    import duckdb

    from custpipe import warehouse

    settings, source = _csv_source(tmp_path)
    con = duckdb.connect()
    con.execute(warehouse.DDL)
    night1 = _night(con, tmp_path, settings, source, date(2026, 11, 26), [("42", "A"), ("7", "B")])
    assert night1 == {"42": None, "7": None}
    rows2 = [("42", "A"), ("7", "B"), ("0042", "C")]  # '42' unchanged, kept; '0042' new
    night2 = _night(con, tmp_path, settings, source, date(2026, 11, 27), rows2)
    assert night2 == {"42": DUP, "0042": DUP, "7": None}
    reported = con.execute(
        "SELECT sum(rows) FROM staging.mapping_issues WHERE run_id = 'r27' AND field = 'source_id'"
    ).fetchone()[0]
    assert reported == 2  # both copies, in the run that found them
    night3 = _night(con, tmp_path, settings, source, date(2026, 11, 28), [("42", "A"), ("7", "B")])
    assert night3 == {"42": None, "7": None}  # the twin is gone: the flag is cleared


def test_duplicate_ids_in_batches_of_one_are_flagged(tmp_path, monkeypatch):
    from datetime import date

    import duckdb

    from custpipe import warehouse
    from custpipe.mapping import stage

    monkeypatch.setattr(stage, "BATCH_ROWS", 1)
    settings, source = _csv_source(tmp_path)
    con = duckdb.connect()
    con.execute(warehouse.DDL)
    rows = [("7", "A"), (" 007", "B"), ("8", "C"), ("0", "D"), ("000", "E")]
    staged = _night(con, tmp_path, settings, source, date(2026, 11, 26), rows)
    assert staged == {"7": DUP, "007": DUP, "8": None, "0": DUP, "000": DUP}


# ------------------------------------------------------------------ a second review's findings


@pytest.mark.parametrize(
    "value", ["1980-05-01 00:00:00", datetime(1980, 5, 1), "1980-05-01", "1980-05-01T00:00"]
)
@pytest.mark.parametrize("zone", ["Asia/Shanghai", "Europe/Berlin", "America/New_York"])
def test_a_birth_date_is_a_calendar_day_whatever_the_sources_zone(value, zone):
    raw = pd.DataFrame({"ID": ["1"], "B": pd.Series([value], dtype=object)})
    out, issues = map_fields(raw, dataset({"birth_date": "B", "order_date": "B"}), "s", zone)
    assert out["birth_date"].tolist() == [pd.Timestamp("1980-05-01")] and issues == []
    assert out["order_date"].tolist() == [pd.Timestamp("1980-05-01")]


@pytest.mark.parametrize(
    ("value", "utc"),
    [
        ("2024-01-15T10", "2024-01-15 02:00"),
        ("20240115T103000", "2024-01-15 02:30"),
        ("2024-01-15T10:30", "2024-01-15 02:30"),
        ("2024-01-15", "2024-01-15 00:00"),  # a date alone is not shifted
    ],
)
def test_naive_iso_stamps_without_a_colon_are_local_time_too(value, utc):
    raw = pd.DataFrame({"ID": ["1"], "U": [value]})
    out, _ = map_fields(raw, dataset({"source_updated_at": "U"}), "sales", "Asia/Shanghai")
    assert out["source_updated_at"].tolist() == [pd.Timestamp(utc)]


def test_a_missing_id_is_no_twin_of_id_zero(empty_warehouse):
    from custpipe.mapping.stage import flag_duplicate_ids

    con = empty_warehouse
    con.execute(
        "INSERT INTO staging.customers (source_system, source_id) "
        "VALUES ('s', '0'), ('s', NULL), ('s', '7'), ('t', '5'), ('t', NULL), ('t', '005')"
    )
    flag_duplicate_ids(con, "staging.customers", "s")
    flag_duplicate_ids(con, "staging.customers", "t")
    flagged = con.execute(
        "SELECT source_system, source_id FROM staging.customers "
        "WHERE mapping_errors LIKE '%duplicate_id%' ORDER BY ALL"
    ).fetchall()
    assert flagged == [("t", "005"), ("t", "5")]  # a missing id is no twin of '0'


def test_an_exact_duplicate_row_fixed_at_the_source_is_staged_once_and_cleared(tmp_path):
    from datetime import date

    import duckdb

    from custpipe import warehouse

    settings, source = _csv_source(tmp_path)
    con = duckdb.connect()
    con.execute(warehouse.DDL)
    _night(con, tmp_path, settings, source, date(2026, 11, 26), [("42", "A"), ("42", "A")])
    staged = "SELECT source_id, mapping_errors FROM staging.customers ORDER BY ALL"
    assert con.execute(staged).fetchall() == [("42", DUP), ("42", DUP)]
    _night(con, tmp_path, settings, source, date(2026, 11, 27), [("42", "A")])  # fixed
    assert con.execute(staged).fetchall() == [("42", None)]


@pytest.mark.parametrize("name", ["+Plus (Deutschland) GmbH", "@Home (Schweiz) AG"])
def test_a_company_name_with_a_bracket_is_no_formula(name):
    from custpipe.quality.expectations import looks_like_formula

    raw = pd.DataFrame({"ID": ["1"], "N": [name]})
    fields = {"name": "N", "party_type": {"column": "N", "transform": "infer_party_type"}}
    out, _ = map_fields(raw, dataset(fields), "s")
    assert out["party_type"].tolist() == ["company"]
    assert not looks_like_formula(name)
    assert looks_like_formula("+SUM(A1:A2)") and looks_like_formula("@HYPERLINK(1)")
