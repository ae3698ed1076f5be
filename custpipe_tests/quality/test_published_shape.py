"""The staged suites hold back what the published table must not receive: formula payloads
and values that do not fit the published columns (too long, NUL, invalid text)."""

from __future__ import annotations

from datetime import datetime

import pytest

from custpipe.publish.erp import PUBLISHED_LENGTHS
from custpipe.quality.gx_runner import read_suite, validate_frame
from custpipe.quality.quarantine import hold_back
from custpipe_tests.quality.helpers import EXPECTATIONS_DIR, make_staged_frame, source_id

STAGED = [
    "staged_customers",
    "staged_customers_crm",
    "staged_customers_erp",
    "staged_customers_sales",
    "staged_customers_service",
]
AT = datetime(2026, 11, 28, 2, 0)


def _held(frame, gx_dir, suite="staged_customers_erp"):
    suite_dict = read_suite(EXPECTATIONS_DIR, suite)
    outcome = validate_frame(
        frame.assign(mapping_errors=None),
        suite,
        expectations_dir=EXPECTATIONS_DIR,
        gx_dir=gx_dir,
        build_docs=False,
    )
    descriptions = {e["meta"]["rule"]: e["meta"]["description"] for e in suite_dict["expectations"]}
    held, rules = hold_back(
        outcome, frame.assign(mapping_errors=None), "erp", "run1", AT, descriptions
    )
    return held, rules.set_index("rule")


def test_formula_payloads_in_text_fields_are_quarantined_with_the_rule(gx_dir):
    frame = make_staged_frame(12)
    frame.loc[1, "name"] = '=HYPERLINK("http://evil.example","x")'
    frame.loc[2, "street"] = "@SUM(1+1)*cmd|' /C calc'!A0"
    frame.loc[3, "city"] = "-2+3"
    frame.loc[4, "family_name"] = "\t=1+1"
    frame.loc[5, "name"] = "+cmd|' /C calc'!A0"
    frame.loc[6, "phone"] = "+493012345678"  # an E.164 phone is no formula
    frame.loc[7, "street"] = "Hauptstrasse 1-3"
    held, rules = _held(frame, gx_dir)
    flagged = held[held["rule"] == "no_formula_payload"]
    assert sorted(flagged["source_id"]) == [source_id(i) for i in (1, 2, 3, 4, 5)]
    assert set(held["source_id"]) == set(flagged["source_id"])  # nothing else held back
    assert "spreadsheet formula" in flagged["description"].iloc[0]
    assert rules.loc["no_formula_payload", "failed"] == 5
    assert rules.loc["no_formula_payload", "severity"] == "quarantine"


def test_values_that_do_not_fit_the_published_columns_are_quarantined(gx_dir):
    frame = make_staged_frame(10)
    frame.loc[1, "name"] = "N" * (PUBLISHED_LENGTHS["name"] + 1)
    frame.loc[2, "name"] = "N" * PUBLISHED_LENGTHS["name"]  # exactly fits
    frame.loc[3, "city"] = "Ber\x00lin"
    frame.loc[4, "postal_code"] = "1" * (PUBLISHED_LENGTHS["postal_code"] + 1)
    frame.loc[5, "street"] = "S" * (PUBLISHED_LENGTHS["street"] + 1)
    frame.loc[6, "source_id"] = "E" * (PUBLISHED_LENGTHS["erp_customer_number"] + 1)
    held, rules = _held(frame, gx_dir)
    by_id = held.groupby("source_id")["rule"].apply(set).to_dict()
    long_id = "E" * (PUBLISHED_LENGTHS["erp_customer_number"] + 1)
    rule = {"value_fits_published_length"}
    assert by_id == {source_id(i): rule for i in (1, 3, 4, 5)} | {long_id: rule}
    reason = held.loc[held["source_id"] == source_id(1), "description"].iloc[0]
    assert "published table" in reason and "name 400" in reason and "postal code 32" in reason
    assert rules.loc["value_fits_published_length", "failed"] == 5


def test_fits_published_length_refuses_what_the_databases_refuse():
    from custpipe.quality.expectations import fits_published_length

    assert fits_published_length("x" * 5, 5) and fits_published_length(None, 5)
    assert not fits_published_length("x" * 6, 5)
    assert not fits_published_length("a\x00b", 5)  # PostgreSQL: no NUL in text
    assert not fits_published_length("a\udcdfb", 5)  # a lone surrogate is not UTF-8
    assert fits_published_length("北京市朝阳区", 6)  # characters, not bytes


@pytest.mark.parametrize("suite", STAGED)
def test_each_staged_suite_bounds_the_published_text_columns_as_the_publish_declares(suite):
    data = read_suite(EXPECTATIONS_DIR, suite)
    (rule,) = [
        e for e in data["expectations"] if e["type"] == "expect_row_values_to_fit_published_columns"
    ]
    assert rule["meta"] == rule["meta"] | {"rule": "value_fits_published_length"}
    fits = dict(zip(rule["kwargs"]["column_list"], rule["kwargs"]["max_lengths"], strict=True))
    published = {"source_id": "erp_customer_number"}
    text = ("name", "street", "city", "region", "postal_code", "phone", "email", "tax_id")
    assert set(fits) == {"source_id", *text}
    for column, limit in fits.items():
        assert limit == PUBLISHED_LENGTHS[published.get(column, column)], column
    (formula,) = [e for e in data["expectations"] if e["meta"]["rule"] == "no_formula_payload"]
    assert {"name", "street", "city"} <= set(formula["kwargs"]["column_list"])
    assert formula["meta"]["severity"] == "quarantine"


def test_staged_suite_validates_60000_distinct_values(gx_dir):
    """Above PARALLEL_MIN_VALUES distinct values the length and formula rules still run (a
    local lambda cannot be sent to the process pool) and find the seeded rows."""
    from custpipe.standardize._util import PARALLEL_MIN_VALUES

    n = 60_000
    assert n > PARALLEL_MIN_VALUES
    frame = make_staged_frame(n)
    frame.loc[7, "name"] = "N" * (PUBLISHED_LENGTHS["name"] + 1)
    frame.loc[11, "street"] = "=1+1"
    outcome = validate_frame(
        frame.assign(mapping_errors=None),
        "staged_customers",
        expectations_dir=EXPECTATIONS_DIR,
        gx_dir=gx_dir,
        build_docs=False,
    )
    assert outcome.outcome("value_fits_published_length").failed == 1
    assert outcome.outcome("no_formula_payload").failed == 1
    assert not outcome.blocked


FORMULAS = [
    ("name", '=HYPERLINK("http://evil.example","x")'),
    ("name", "=1"),
    ("street", "@SUM(A1:A9)"),
    ("street", "+cmd|' /C calc'!A0"),
    ("city", "-2+3"),
    ("city", "+1+1"),
    ("region", "-A1"),
    ("region", "+$A$1"),
    ("postal_code", "@A1"),
    ("family_name", "\t=1+1"),
    ("given_name", "\r+SUM(1)"),
    ("name", "-cmd|' /C calc'!A0"),
    ("name", "＝1+1"),
]
NOT_FORMULAS = [
    ("region", "-"),
    ("region", "--"),
    ("street", "-/-"),
    ("postal_code", "-"),
    ("city", "- Berlin"),
    ("name", "@Home GmbH"),
    ("name", "+Plus Handels GmbH"),
    ("street", "+4930123456"),
    ("street", "-12.5"),
    ("street", "Hauptstrasse 1-3"),
    ("family_name", "\tMüller"),
]


def test_formula_rule_flags_formulas_and_leaves_placeholders_and_names(gx_dir):
    """Only what a spreadsheet would run as a formula is held back; placeholders such as '-',
    '--', '-/-' and names such as '@Home GmbH' pass (the CSV escaping stays strict)."""
    cases = FORMULAS + NOT_FORMULAS
    frame = make_staged_frame(len(cases))
    for i, (column, value) in enumerate(cases):
        frame.loc[i, column] = value
    held, _ = _held(frame, gx_dir)
    flagged = set(held.loc[held["rule"] == "no_formula_payload", "source_id"])
    wrongly = [
        cases[i] for i in range(len(cases)) if (source_id(i) in flagged) != (i < len(FORMULAS))
    ]
    assert wrongly == []


@pytest.mark.parametrize(("column", "value"), FORMULAS + NOT_FORMULAS)
def test_looks_like_formula_agrees_with_the_rule_value_by_value(column, value):
    import pandas as pd

    from custpipe.quality.expectations import formula_mask, looks_like_formula

    expected = (column, value) in FORMULAS
    assert looks_like_formula(value) is expected
    assert formula_mask(pd.Series([value, None, 5], dtype=object)).tolist() == [
        expected,
        False,
        False,
    ]


def test_a_length_list_out_of_step_with_the_columns_is_an_error_not_a_silent_gap(tmp_path):
    import json
    import shutil

    from custpipe.quality.gx_runner import GxRunnerError

    suites = tmp_path / "expectations"
    shutil.copytree(EXPECTATIONS_DIR, suites)
    path = suites / "staged_customers.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    rules = data["expectations"]
    (rule,) = [e for e in rules if e["meta"]["rule"] == "value_fits_published_length"]
    rule["kwargs"]["max_lengths"] = rule["kwargs"]["max_lengths"][:-1]  # tax_id left unchecked
    path.write_text(json.dumps(data), encoding="utf-8")
    with pytest.raises(GxRunnerError, match="max_lengths"):
        validate_frame(
            make_staged_frame(5).assign(mapping_errors=None),
            "staged_customers",
            expectations_dir=suites,
            gx_dir=tmp_path / "gx",
            build_docs=False,
        )
