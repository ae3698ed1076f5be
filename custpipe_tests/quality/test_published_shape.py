"""The staged suites hold back what the published table must not receive: formula payloads
and values that do not fit the published columns (too long, NUL, invalid text). The length
rule's columns and lengths come from the table catalogue: no suite keeps a copy."""

from __future__ import annotations

import html
import json
import re
import shutil
from datetime import datetime

import pytest

from custpipe import catalogue
from custpipe.catalogue import Field, Published
from custpipe.mapping.canonical import STAGED_CUSTOMER_COLUMNS
from custpipe.publish.erp import PUBLISHED_LENGTHS
from custpipe.quality import published_length
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


def _length_rule(suite_dict: dict) -> dict:
    (rule,) = [
        e for e in suite_dict["expectations"] if e["type"] == published_length.EXPECTATION_TYPE
    ]
    assert rule["meta"] == rule["meta"] | {"rule": "value_fits_published_length"}
    return rule


def test_the_catalogue_bounds_every_published_free_text_column_by_its_staged_column():
    """Each bound is the length of the published column the staged value reaches unchanged
    (source_id becomes the ERP number); codes and the derived status are no free text."""
    bounds = catalogue.published_text_bounds()
    reaches = {"source_id": "erp_customer_number"}
    assert {reaches.get(c, c): n for c, n in bounds.items()} == {
        c: PUBLISHED_LENGTHS[c] for c, p in catalogue.published_positions().items() if not p.coded
    }
    staged = set(STAGED_CUSTOMER_COLUMNS)
    assert set(bounds) <= staged
    assert list(bounds)[:2] == ["source_id", "name"]  # the ERP table's order


@pytest.mark.parametrize("suite", STAGED)
def test_each_staged_suite_bounds_the_published_text_columns_from_the_catalogue(suite):
    raw = json.loads((EXPECTATIONS_DIR / f"{suite}.json").read_text(encoding="utf-8"))
    assert _length_rule(raw)["kwargs"] == {}  # no hand-kept copy of a length or a column
    kwargs = _length_rule(read_suite(EXPECTATIONS_DIR, suite))["kwargs"]
    bounds = catalogue.published_text_bounds()
    assert dict(zip(kwargs["column_list"], kwargs["max_lengths"], strict=True)) == bounds
    (formula,) = [e for e in raw["expectations"] if e["meta"]["rule"] == "no_formula_payload"]
    assert {"name", "street", "city"} <= set(formula["kwargs"]["column_list"])
    assert formula["meta"]["severity"] == "quarantine"


@pytest.mark.parametrize("suite", STAGED)
def test_a_coded_published_column_is_held_by_an_in_set_rule_of_each_staged_suite(suite):
    """What the catalogue declares `coded` gets no length rule: a quarantine rule holds its
    values to a set of codes, each of which fits the published column."""
    lengths = catalogue.published_lengths()
    coded = [f.name for f in catalogue.CATALOGUE.fields if f.published and f.published.coded]
    assert coded == ["party_type", "country", "segment"]
    in_set = {
        e["kwargs"]["column"]: e["kwargs"]["value_set"]
        for e in read_suite(EXPECTATIONS_DIR, suite)["expectations"]
        if "value_set" in e["kwargs"] and e["meta"]["severity"] == "quarantine"
    }
    for column in coded:
        assert max(len(code) for code in in_set[column]) <= lengths[column], column


WEBSITE = Field(
    "website", "customers", "the customer's web site", golden=True, published=Published(14, 30)
)


def test_a_new_published_text_field_is_bounded_with_no_suite_edit(gx_dir, monkeypatch):
    """One line in the catalogue: the shipped suites bound the new column by its length."""
    monkeypatch.setattr(catalogue, "CATALOGUE", catalogue.CATALOGUE.with_field(WEBSITE))
    kwargs = _length_rule(read_suite(EXPECTATIONS_DIR, "staged_customers_erp"))["kwargs"]
    assert dict(zip(kwargs["column_list"], kwargs["max_lengths"], strict=True))["website"] == 30
    frame = make_staged_frame(6).assign(website=None)
    frame.loc[1, "website"] = "w" * 31
    frame.loc[2, "website"] = "w" * 30  # exactly fits
    frame.loc[3, "website"] = "www.\x00.example"
    held, rules = _held(frame, gx_dir)
    assert set(held["source_id"]) == {source_id(1), source_id(3)}
    assert set(held["rule"]) == {"value_fits_published_length"}
    assert rules.loc["value_fits_published_length", "failed"] == 2


def test_data_docs_show_the_lengths_the_rule_checked(gx_dir):
    outcome = validate_frame(
        make_staged_frame(5).assign(mapping_errors=None),
        "staged_customers",
        expectations_dir=EXPECTATIONS_DIR,
        gx_dir=gx_dir,
        build_docs=True,
    )
    page = re.sub(r"<[^>]+>", " ", outcome.docs_index.read_text(encoding="utf-8"))
    text = re.sub(r"\s+", " ", html.unescape(page))
    bounds = catalogue.published_text_bounds()
    lengths = ", ".join(map(str, bounds.values()))
    assert f"Values of {', '.join(bounds)} must fit their published columns" in text
    assert f"at most {lengths} characters (in that order)" in text


def _suites_with_length_rule(tmp_path, **kwargs):
    suites = tmp_path / "expectations"
    shutil.copytree(EXPECTATIONS_DIR, suites)
    path = suites / "staged_customers.json"
    data = json.loads(path.read_text(encoding="utf-8"))
    _length_rule(data)["kwargs"] = kwargs
    path.write_text(json.dumps(data), encoding="utf-8")
    return suites


def _validate(frame, suites, tmp_path):
    return validate_frame(
        frame.assign(mapping_errors=None),
        "staged_customers",
        expectations_dir=suites,
        gx_dir=tmp_path / "gx",
        build_docs=False,
    )


def test_a_suite_may_bound_a_column_tighter_than_the_catalogue(tmp_path):
    frame = make_staged_frame(4)
    city = int(frame["city"].str.len().max())  # every city of the frame fits
    suites = _suites_with_length_rule(
        tmp_path, column_list=["name", "city"], max_lengths=[20, city]
    )
    frame.loc[1, "name"] = "N" * 21
    frame.loc[2, "city"] = "C" * (city + 1)
    frame.loc[3, "name"] = "N" * 20
    outcome = _validate(frame, suites, tmp_path).outcome("value_fits_published_length")
    assert outcome.failed_ids == (source_id(1), source_id(2))


def test_a_suite_length_wider_than_the_published_column_is_refused(tmp_path):
    from custpipe.quality.gx_runner import SuiteDefinitionError

    wide = PUBLISHED_LENGTHS["city"] + 100
    suites = _suites_with_length_rule(
        tmp_path, column_list=["name", "city"], max_lengths=[20, wide]
    )
    expected = (
        rf"'staged_customers'.*column city: .*{wide} .*holds only {PUBLISHED_LENGTHS['city']}\b"
    )
    with pytest.raises(SuiteDefinitionError, match=expected):
        _validate(make_staged_frame(3), suites, tmp_path)
    with pytest.raises(SuiteDefinitionError, match="value_fits_published_length"):
        read_suite(suites, "staged_customers")


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


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"column_list": ["name", "tax_id"], "max_lengths": [400]}, "1 lengths for 2 columns"),
        ({"max_lengths": [400]}, "max_lengths without column_list"),
        ({"column_list": ["name", "national_id"]}, "national_id, which reach"),
    ],
)
def test_a_length_rule_the_catalogue_cannot_complete_is_an_error_not_a_silent_gap(
    tmp_path, kwargs, message
):
    from custpipe.quality.gx_runner import GxRunnerError

    suites = _suites_with_length_rule(tmp_path, **kwargs)
    with pytest.raises(GxRunnerError, match=message):
        _validate(make_staged_frame(5), suites, tmp_path)
