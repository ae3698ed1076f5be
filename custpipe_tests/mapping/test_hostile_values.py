"""Mapping under hostile or ambiguous values: numbers, expressions, time zones, ids, codes."""

from __future__ import annotations

import math
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pytest
import yaml

from custpipe.config import ConfigError, DatasetConfig, SourceConfig, load_config, load_source
from custpipe.mapping.apply import MappingError, map_fields
from custpipe.mapping.canonical import stage_customers, stage_order_lines, stage_orders
from custpipe.mapping.sql_expr import sandbox
from custpipe.mapping.stage import mapping_fingerprint, restage_fingerprint

CONFIG = Path(__file__).resolve().parents[2] / "config"


def dataset(fields: dict, **extra) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {"reader": {"kind": "csv", "path": "x.csv"}, "id": "ID", "fields": fields, **extra}
    )


def orders_source(**orders_extra) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "sales",
            "customers": {
                "reader": {"kind": "csv", "path": "c"},
                "id": "I",
                "fields": {"name": "N"},
            },
            "orders": {
                "reader": {"kind": "csv", "path": "o.csv"},
                "id": "O",
                "fields": {"order_number": "O", "customer_ref": "R", "amount": "A"}
                | {"currency": "CU"},
                **orders_extra,
            },
            "order_lines": {
                "reader": {"kind": "csv", "path": "l.csv"},
                "id": "L",
                "fields": {"order_number": "O", "line_amount": "A", "quantity": "Q"},
                **orders_extra,
            },
        }
    )


def orders(amounts: list, currency: str = "EUR") -> pd.DataFrame:
    n = len(amounts)
    return pd.DataFrame(
        {"O": [str(i) for i in range(n)], "R": ["c"] * n, "A": amounts, "CU": [currency] * n}
    )


# ------------------------------------------------------------------ 1. amounts


def test_decimal_comma_amounts_are_parsed_under_the_declared_format():
    source = orders_source(number_format={"decimal": ",", "group": "."})
    staged, issues = stage_orders(orders(["12,50", "1.234,56", "-3,00", "1.000.000", "7"]), source)
    assert staged["amount"].tolist() == [12.5, 1234.56, -3.0, 1_000_000.0, 7.0]
    assert staged["mapping_errors"].isna().all()
    assert issues == []


def test_an_amount_ambiguous_under_the_default_format_is_flagged_not_guessed():
    staged, issues = stage_orders(
        orders(["12,50", "1.234,56", "1,234.5", "12.50"]), orders_source()
    )
    amounts = staged["amount"].tolist()
    assert math.isnan(amounts[0]) and math.isnan(amounts[1])
    assert amounts[2:] == [1234.5, 12.5]
    assert staged["mapping_errors"].tolist()[:2] == ["amount_unparseable:amount"] * 2
    assert staged["mapping_errors"].tolist()[2:] == [None, None]
    (issue,) = [i for i in issues if i.field == "amount"]
    assert issue.rows == 2 and issue.column == "A"
    assert issue.rule == "amount_unparseable:amount"
    assert "number_format" in issue.problem and "decimal '.'" in issue.problem
    assert "12,50" not in str(issue)  # no row values in the report


@pytest.mark.parametrize("bad", ["NaN", "nan", "inf", "-Inf", "Infinity", "1e300", "2e15", "abc"])
def test_non_finite_and_huge_amounts_are_rejected(bad):
    staged, issues = stage_orders(orders([bad, "5"]), orders_source())
    assert pd.isna(staged["amount"].iloc[0]) and staged["amount"].iloc[1] == 5.0
    assert staged["mapping_errors"].tolist() == ["amount_unparseable:amount", None]
    assert [i.rule for i in issues] == ["amount_unparseable:amount"]


@pytest.mark.parametrize("bad", [float("inf"), float("-inf"), 1e300])
def test_non_finite_numeric_cells_are_rejected_too(bad):
    staged, _ = stage_orders(orders([bad, 5.0]), orders_source())
    assert staged["mapping_errors"].tolist() == ["amount_unparseable:amount", None]


def test_negative_amounts_are_credit_notes_and_kept():
    staged, issues = stage_orders(orders(["-12.50", "12.50-"]), orders_source())
    assert staged["amount"].tolist() == [-12.5, -12.5]  # SAP writes the sign after the number
    assert issues == []


def test_order_line_amount_and_quantity_follow_the_number_format():
    source = orders_source(number_format={"decimal": ",", "group": "."})
    lines = pd.DataFrame(
        {"L": ["1", "2"], "O": ["1", "1"], "A": ["1.234,5", "x"], "Q": ["2", "1,5"]}
    )
    staged, issues = stage_order_lines(lines, source)
    assert staged["line_amount"].tolist()[0] == 1234.5 and pd.isna(staged["line_amount"].iloc[1])
    assert staged["quantity"].tolist() == [2.0, 1.5]
    assert staged["mapping_errors"].tolist() == [None, "amount_unparseable:line_amount"]
    assert {i.field for i in issues} == {"line_amount"}


def test_a_field_may_declare_its_own_number_format():
    ds = dataset({"amount": {"column": "A", "number_format": {"decimal": ",", "group": ""}}})
    out, issues = map_fields(pd.DataFrame({"ID": ["1"], "A": ["1234,5"]}), ds, "erp")
    assert out["amount"].tolist() == [1234.5] and issues == []


@pytest.mark.parametrize(
    "fmt", [{"decimal": ",", "group": ","}, {"decimal": ";"}, {"decimal": ".", "group": "x"}]
)
def test_an_impossible_number_format_is_a_config_error(fmt):
    with pytest.raises(ValueError, match="number_format"):
        dataset({"amount": "A"}, number_format=fmt)


# ------------------------------------------------------------------ 5. expressions

PAYLOAD = "1)::VARCHAR AS v FROM raw; COPY (SELECT 42) TO '{path}'; SELECT (\"N\""


def test_an_expression_smuggling_statements_is_rejected_when_loaded(tmp_path):
    target = tmp_path / "x.csv"
    file = tmp_path / "crm.yaml"
    customers = {"reader": {"kind": "csv", "path": "x.csv"}, "id": "ID"}
    customers["fields"] = {"name": {"expr": PAYLOAD.format(path=target)}}
    file.write_text(yaml.safe_dump({"customers": customers}), encoding="utf-8")
    with pytest.raises(ConfigError) as err:
        load_source(file)
    message = str(err.value)
    assert "crm.yaml" in message and "customers.fields.name" in message
    assert "one SQL expression" in message
    assert not target.exists()


def test_an_expression_smuggling_statements_is_refused_before_running(tmp_path):
    target = tmp_path / "x.csv"
    ds = dataset({"name": "N"})
    rule = ds.fields["name"].model_copy(
        update={"column": None, "expr": PAYLOAD.format(path=target)}
    )
    ds = ds.model_copy(update={"fields": {"name": rule}})  # bypasses the load-time check
    raw = pd.DataFrame({"ID": ["1"], "N": ["a"]})
    with pytest.raises(MappingError, match=r"source 'crm', field 'name'.*one SQL expression"):
        map_fields(raw, ds, "crm")
    assert not target.exists()


@pytest.mark.parametrize(
    "expr",
    [
        "(SELECT count(*) FROM read_csv('/etc/passwd'))",
        "1) AS v FROM raw UNION ALL SELECT (2",
        '"N") AS v FROM raw WHERE (1=1',
    ],
)
def test_expressions_that_are_not_one_plain_expression_are_refused(expr):
    with pytest.raises(ValueError, match="one SQL expression"):
        dataset({"name": {"expr": expr}})


def test_file_access_inside_an_expression_is_refused_at_run_time():
    ds = dataset({"name": "N"})
    rule = ds.fields["name"].model_copy(
        update={"column": None, "expr": "(SELECT count(*) FROM read_text('/etc/passwd'))"}
    )
    ds = ds.model_copy(update={"fields": {"name": rule}})  # bypasses the load-time check
    with pytest.raises(MappingError, match="source 'crm', field 'name'.*subquery"):
        map_fields(pd.DataFrame({"ID": ["1"], "N": ["a"]}), ds, "crm")


def test_expressions_run_where_files_cannot_be_read_or_written(tmp_path):
    con = sandbox()
    with pytest.raises(duckdb.PermissionException, match="disabled"):
        con.execute("SELECT count(*) FROM read_text('/etc/passwd')")
    with pytest.raises(duckdb.PermissionException):
        con.execute(f"COPY (SELECT 42) TO '{tmp_path / 'x.csv'}'")
    with pytest.raises(duckdb.Error):  # and the setting cannot be switched back on
        con.execute("SET enable_external_access = true")
    assert not (tmp_path / "x.csv").exists()


def test_a_legitimate_expression_still_maps():
    ds = dataset({"name": {"expr": 'upper(coalesce("A", "N")) || \'-\' || length("N")'}})
    raw = pd.DataFrame({"ID": ["1", "2"], "N": ["abc", "de"], "A": [None, "x"]})
    out, issues = map_fields(raw, ds, "crm")
    assert out["name"].tolist() == ["ABC-3", "X-2"] and issues == []


# ------------------------------------------------------------------ 3. time zones


def test_naive_sales_stamps_are_china_local_time_and_staged_in_utc():
    source = load_config(CONFIG).sources["sales"]
    assert source.timezone == "Asia/Shanghai"
    ds = dataset({"source_updated_at": {"column": "U", "date_format": "%Y/%m/%d %H:%M"}})
    out, issues = map_fields(
        pd.DataFrame({"ID": ["1"], "U": ["2026/11/27 10:00"]}), ds, "sales", "Asia/Shanghai"
    )
    assert out["source_updated_at"].tolist() == [pd.Timestamp("2026-11-27 02:00")]
    assert issues == []


def test_the_demo_sales_source_stages_local_stamps_in_utc():
    source = load_config(CONFIG).sources["sales"]
    cols = ["客户编号", "客户名称", "电话", "邮箱", "地址", "城市", "省份", "邮编", "国家", "税号"]
    raw = pd.DataFrame(
        {c: ["x"] for c in cols} | {"客户等级": ["A类"], "更新时间": ["2026/11/27 10:00"]}
    )
    staged, _ = stage_customers(raw, source)
    assert staged["source_updated_at"].tolist() == [pd.Timestamp("2026-11-27 02:00")]


def test_aware_stamps_keep_their_offset_and_dates_stay_calendar_dates():
    ds = dataset(
        {"source_updated_at": "U", "order_date": {"column": "D", "date_format": "%Y-%m-%d"}}
    )
    raw = pd.DataFrame(
        {
            "ID": ["1", "2", "3"],
            "U": ["2026-11-27T10:00:00+01:00", "2026-11-27T10:00:00Z", "2026-11-27T10:00:00"],
            "D": ["2026-11-27"] * 3,
        }
    )
    out, _ = map_fields(raw, ds, "crm", "Asia/Shanghai")
    assert out["source_updated_at"].tolist() == [
        pd.Timestamp("2026-11-27 09:00"),
        pd.Timestamp("2026-11-27 10:00"),
        pd.Timestamp("2026-11-27 02:00"),
    ]
    assert out["order_date"].tolist() == [pd.Timestamp("2026-11-27")] * 3


def test_an_unknown_time_zone_is_a_config_error_naming_the_setting():
    with pytest.raises(ValueError, match="timezone.*Mars/Olympus"):
        SourceConfig.model_validate(
            {
                "name": "s",
                "timezone": "Mars/Olympus",
                "customers": {
                    "reader": {"kind": "csv", "path": "c"},
                    "id": "I",
                    "fields": {"name": "N"},
                },
            }
        )


def test_a_changed_time_zone_restages_the_source():
    source = load_config(CONFIG).sources["sales"]
    moved = source.model_copy(update={"timezone": "Europe/Berlin"})
    assert restage_fingerprint(source, "customers") != restage_fingerprint(moved, "customers")
    assert mapping_fingerprint(source, "customers") != mapping_fingerprint(moved, "customers")


def test_a_source_without_a_time_zone_takes_the_pipeline_one():
    config = load_config(CONFIG)
    assert config.sources["crm"].timezone == config.timezone


# ------------------------------------------------------------------ 4. party type


@pytest.mark.parametrize(
    "value", ["'); DROP TABLE x;--", '=HYPERLINK("http://x","y")', "@SUM(1+1)", "12345", "---"]
)
def test_payloads_and_values_without_name_letters_are_not_persons(value):
    raw = pd.DataFrame({"ID": ["1", "2"], "N": [value, "Vincent Schulz"]})
    ds = dataset({"party_type": {"column": "N", "transform": "infer_party_type"}, "name": "N"})
    out, _ = map_fields(raw, ds, "sales")
    assert out["party_type"].tolist() == [None, "person"]


# ------------------------------------------------------------------ 6. dates, ids, codes


def test_placeholder_dates_become_null_and_are_reported_apart_from_bad_ones():
    ds = dataset(
        {
            "created_at": {"column": "D", "date_format": "%Y%m%d"},
            "source_updated_at": "U",
            "birth_date": {"column": "B", "date_format": "%d.%m.%Y"},
        }
    )
    raw = pd.DataFrame(
        {
            "ID": ["1", "2", "3"],
            "D": ["00000000", "99991231", "20261127"],
            "U": ["0001-01-01", "9999-12-31T00:00:00", "2026-11-27T10:00:00"],
            "B": ["31.02.2026", "00.00.0000", "01.01.1990"],
        }
    )
    out, issues = map_fields(raw, ds, "erp")
    assert out["created_at"].isna().tolist() == [True, True, False]
    assert out["source_updated_at"].isna().tolist() == [True, True, False]
    assert out["birth_date"].isna().tolist() == [True, True, False]
    found = {(i.field, i.problem.split(" (")[0], i.rows) for i in issues}
    assert found == {
        ("created_at", "placeholder date meaning 'no date'", 2),
        ("source_updated_at", "placeholder date meaning 'no date'", 2),
        ("birth_date", "value not a date in format %d.%m.%Y", 1),  # 31 February
        ("birth_date", "placeholder date meaning 'no date'", 1),
    }
    assert out["mapping_errors"].isna().all()  # a missing date is allowed: not quarantined


def test_ids_differing_only_by_spaces_or_leading_zeros_are_kept_and_flagged():
    raw = pd.DataFrame({"ID": ["1", " 1", "01", "2", "0002 ", "3"], "N": list("abcdef")})
    out, issues = map_fields(raw, dataset({"name": "N"}), "sales")
    assert out["source_id"].tolist() == ["1", "1", "01", "2", "0002", "3"]  # nothing merged
    assert out["mapping_errors"].tolist() == ["duplicate_id:source_id"] * 5 + [None]
    (issue,) = issues
    assert (issue.field, issue.rows, issue.rule) == ("source_id", 5, "duplicate_id:source_id")


def test_staging_keeps_every_copy_of_a_duplicated_id():
    source = SourceConfig.model_validate(
        {
            "name": "sales",
            "customers": {
                "reader": {"kind": "csv", "path": "c"},
                "id": "I",
                "fields": {"name": "N"},
            },
        }
    )
    staged, _ = stage_customers(pd.DataFrame({"I": ["7", " 7"], "N": ["a", "b"]}), source)
    assert len(staged) == 2 and staged["mapping_errors"].notna().all()


def test_an_unknown_currency_is_flagged():
    staged, issues = stage_orders(
        orders(["1", "2"], "EUR").assign(CU=["eur", "EURO"]), orders_source()
    )
    assert staged["currency"].tolist() == ["EUR", "EURO"]
    assert staged["mapping_errors"].tolist() == [None, "currency_unknown:currency"]
    (issue,) = issues
    assert issue.rule == "currency_unknown:currency" and issue.examples == ("EURO",)


BAD_BITS = ("\x1b[31m", "\x00", "\u202e", "\u200b", "\x07", "\x1b", "[31m")


def test_no_control_or_escape_character_survives_staging_in_any_text_column():
    source = SourceConfig.model_validate(
        {
            "name": "crm",
            "customers": {
                "reader": {"kind": "csv", "path": "c"},
                "id": "I",
                "fields": {c: c.upper() for c in ("name", "street", "city", "region", "email")}
                | {"phone": "PHONE", "tax_id": "TAX", "postal_code": "PC", "country": "CC"}
                | {"given_name": "GN", "family_name": "FN", "national_id": "NI", "status": "ST"},
            },
        }
    )
    dirt = "".join(BAD_BITS)
    cols = ["NAME", "STREET", "CITY", "REGION", "EMAIL", "PHONE", "TAX", "PC", "CC", "GN", "FN"]
    raw = pd.DataFrame({c: [f"{dirt}Val{dirt}ue"] for c in cols + ["NI", "ST"]} | {"I": ["1"]})
    staged, _ = stage_customers(raw, source)
    text = staged.drop(columns=["source_values"]).select_dtypes(include="object")
    for column, value in text.iloc[0].items():
        if isinstance(value, str):
            assert not any(bad in value for bad in BAD_BITS), column


def test_a_ten_megabyte_name_stages_intact():
    source = SourceConfig.model_validate(
        {
            "name": "crm",
            "customers": {
                "reader": {"kind": "csv", "path": "c"},
                "id": "I",
                "fields": {"name": "N"},
            },
        }
    )
    staged, _ = stage_customers(
        pd.DataFrame({"I": ["1", "2"], "N": ["x" * 10_000_000, "Acme"]}), source
    )
    assert len(staged["name"].iloc[0]) == 10_000_000 and staged["name"].iloc[1] == "Acme"


NUMBER_TEXTS = [
    "12,50",
    "1.234,56",
    "1,234.5",
    "12.50",
    "-3",
    "+3",
    "3-",
    "-3-",
    "+3-",
    "1e3",
    "1.5E-2",
    "1,5e3",
    ".5",
    ",5",
    "5.",
    "1,23",
    "1 234,5",
    "1\u00a0234,5",
    "12'345.5",
    "",
    "  ",
    "NaN",
    "inf",
    "1e16",
    "-1e15",
    "0",
    "007",
    "1..2",
    "1,,234",
    "1,2345",
    "12,345,678.9",
    "٣",
    "１２",
] * 2  # each twice: the per-value path evaluates distinct values once


@pytest.mark.parametrize(
    "fmt", [{}, {"decimal": ",", "group": "."}, {"decimal": ",", "group": " "}, {"group": "'"}]
)
def test_the_vectorised_number_path_equals_the_per_value_rule(fmt):
    from custpipe.config import NumberFormat
    from custpipe.mapping.numbers import number_value
    from custpipe.mapping.numbers import parse_numbers as _numbers

    number_format = NumberFormat(**fmt)
    texts = pd.Series(NUMBER_TEXTS, dtype=object)
    numbers, bad = _numbers(texts, number_format, "s", "amount", "A", [])
    for text, got, flagged in zip(NUMBER_TEXTS, numbers, bad, strict=True):
        try:
            want = number_value(text, number_format)
        except ValueError:
            assert flagged and math.isnan(got), text
        else:
            assert not flagged, text
            assert (want is None and math.isnan(got)) or got == want, text


def test_the_demo_sales_export_stages_to_the_same_instant_as_the_crm(tmp_path):
    from custpipe.demo.systems import fmt_time, write_sales_customers

    instant = pd.Timestamp("2026-11-27 10:00:00")
    text = ["x"]
    rec = pd.DataFrame(
        {"source_id": ["S-1"], "name": ["Acme GmbH"], "contact_family": text}
        | {"contact_given": text, "phone": text, "email": text, "street": text, "city": text}
        | {"region": text, "postcode": text, "country": ["DE"], "tax_id": text}
        | {"rec_updated": [instant]}
    )
    path = tmp_path / "customers.csv"
    write_sales_customers(rec, np.array(["A类"]), path, np.random.default_rng(0))
    raw = pd.read_csv(path, encoding="gbk", dtype=str)
    sales, crm = (load_config(CONFIG).sources[s] for s in ("sales", "crm"))
    staged, _ = stage_customers(raw, sales)
    crm_text = fmt_time(np.array([instant], dtype="datetime64[s]"), "crm")[0]  # as write_crm
    rule = crm.customers.fields["source_updated_at"].model_copy(update={"column": "U"})
    out, _ = map_fields(
        pd.DataFrame({"ID": ["1"], "U": [crm_text]}),
        dataset({"source_updated_at": rule.model_dump()}),
        "crm",
        crm.timezone,
    )
    assert staged["source_updated_at"].iloc[0] == instant == out["source_updated_at"].iloc[0]
