"""The custom GX expectations of custpipe.quality.expectations, run through validate_frame."""

from __future__ import annotations

import json
import subprocess
import sys
import uuid

import pandas as pd
import pytest
from stdnum.cn import ric, uscc
from stdnum.gr import vat as gr_vat
from stdnum.iso7064 import mod_11_10

import custpipe.quality.expectations as custom
from custpipe.quality.gx_runner import validate_frame
from custpipe_tests.quality.helpers import EXPECTATIONS_DIR, REPO_ROOT, valid_tax_id

# --- tax IDs built with python-stdnum's check-digit helpers ---------------------------------
USCC_BODY = "91110000MA0012345"
USCC_OK = USCC_BODY + uscc.calc_check_digit(USCC_BODY)
USCC_BAD = USCC_BODY + ("1" if USCC_OK[-1] != "1" else "2")
RIC_BODY = "11010519491231002"
RIC_OK = RIC_BODY + ric.calc_check_digit(RIC_BODY + "0")
DE_BODY = "12345678"
DE_OK = "DE" + DE_BODY + mod_11_10.calc_check_digit(DE_BODY)
DE_BAD = "DE" + DE_BODY + str((int(mod_11_10.calc_check_digit(DE_BODY)) + 1) % 10)
FR_OK = valid_tax_id("FR", 42)
AT_OK = valid_tax_id("AT", 42)


def _check_fixtures():
    assert uscc.is_valid(USCC_OK) and not uscc.is_valid(USCC_BAD)
    assert ric.is_valid(RIC_OK)
    assert custom.tax_id_check(DE_OK, "DE") and not custom.tax_id_check(DE_BAD, "DE")


_check_fixtures()


def _exp(typ: str, kwargs: dict, rule: str, severity: str = "warn") -> dict:
    return {
        "type": typ,
        "kwargs": kwargs,
        "meta": {"severity": severity, "rule": rule, "description": f"test rule {rule}"},
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"custpipe:custom_suite:{rule}")),
    }


SUITE_EXPECTATIONS = [
    _exp("expect_column_values_to_be_valid_e164", {"column": "phone"}, "phone_valid_e164"),
    _exp(
        "expect_column_values_to_have_valid_tax_id",
        {"column_A": "tax_id", "column_B": "country"},
        "tax_id_check_digit",
    ),
    _exp(
        "expect_column_values_to_be_covered_by_crosswalk",
        {"column": "segment", "value_set": ["A", "B", "C"]},
        "segment_crosswalk_covered",
        "quarantine",
    ),
    _exp(
        "expect_company_tax_id_where_required",
        {"column_list": ["party_type", "country", "tax_id"], "countries": ["CN", "DE"]},
        "company_tax_id_required",
        "quarantine",
    ),
    _exp(
        "expect_company_tax_id_where_required",
        {"column_list": ["party_type", "country", "tax_id"], "countries": ["US"]},
        "company_tax_id_required_us",
    ),
    _exp(
        "expect_company_tax_id_where_required",
        {"column_list": ["party_type", "country", "tax_id"]},
        "company_tax_id_required_default",
    ),
]


def _write_suite(directory, expectations=None, name="custom_suite"):
    directory.mkdir(parents=True, exist_ok=True)
    suite = {
        "name": name,
        "id": str(uuid.uuid5(uuid.NAMESPACE_URL, f"custpipe:suite:{name}")),
        "meta": {},
        "notes": None,
        "expectations": expectations if expectations is not None else SUITE_EXPECTATIONS,
    }
    (directory / f"{name}.json").write_text(json.dumps(suite))
    return directory


# id, party_type, country, tax_id, phone, segment
ROWS = [
    ("r01", "company", "DE", DE_OK, "+4930123456", "A"),  # all good
    ("r02", "company", "DE", DE_BAD, "+14155552671", "B"),  # bad DE VAT (company)
    ("r03", "company", "DE", None, "+12345", "C"),  # DE company w/o tax id; invalid phone
    ("r04", "person", "DE", None, None, None),  # person w/o tax id: fine; nulls skipped
    ("r05", "person", "DE", DE_BAD, "+49 30 123456", "A"),  # bad VAT (person); not E.164
    ("r06", "company", "US", None, "4930123456", "09"),  # US company w/o tax id; no '+'
    ("r07", "company", "US", "00-1234567", "+8613800138000", "A"),  # invalid EIN prefix
    ("r08", "company", "US", "12-3456789", "+8613800138000", "A"),
    ("r09", "company", "CN", USCC_OK, "+8613800138000", "B"),
    ("r10", "company", "CN", USCC_BAD, "+86138001380000000", "B"),  # bad USCC; too long
    ("r11", "person", "CN", RIC_OK, "+8613800138000", "C"),  # resident ID
    ("r12", "company", "FR", FR_OK, "+33123456789", "a"),  # lower-case: no crosswalk entry
    ("r13", "company", "FR", DE_OK, "+33123456789", "A"),  # valid number, wrong country
    ("r14", "company", "AT", AT_OK[2:], "+4312345678", "A"),  # AT VAT without prefix
    ("r15", "company", "GB", "GB980780684", "+442079460000", "A"),  # GB VAT, valid
    ("r16", "company", None, DE_BAD, "+4930123456", "A"),  # no country: skipped
    ("r17", None, "DE", None, "+4930123456", "A"),  # unknown party type: not a company
    ("r18", "company", "CN", None, "+4930123456", "A"),  # CN company w/o tax id
]


def _frame() -> pd.DataFrame:
    cols = ["source_id", "party_type", "country", "tax_id", "phone", "segment"]
    return pd.DataFrame(ROWS, columns=cols)


@pytest.fixture
def outcome(tmp_path):
    suites = _write_suite(tmp_path / "expectations")
    return validate_frame(
        _frame(), "custom_suite", expectations_dir=suites, gx_dir=tmp_path / "gx", build_docs=False
    )


def test_e164_failing_ids(outcome):
    o = outcome.outcome("phone_valid_e164")
    assert o.failed_ids == ("r03", "r05", "r06", "r10")
    assert (o.failed, o.evaluated, o.success, o.column) == (4, 18, False, "phone")
    assert o.expectation_type == "expect_column_values_to_be_valid_e164"


def test_tax_id_check_digit_failing_ids(outcome):
    o = outcome.outcome("tax_id_check_digit")
    # r03/r04/r06/r17/r18 have no tax ID and r16 no country: skipped, not failed
    assert o.failed_ids == ("r02", "r05", "r07", "r10", "r13")
    assert (o.failed, o.success, o.column, o.severity) == (5, False, "tax_id", "warn")


def test_crosswalk_coverage_failing_ids(outcome):
    o = outcome.outcome("segment_crosswalk_covered")
    assert o.failed_ids == ("r06", "r12")
    assert (o.failed, o.evaluated, o.severity) == (2, 18, "quarantine")
    assert outcome.quarantine_ids >= {"r06", "r12"}


def test_company_tax_id_where_required(outcome):
    o = outcome.outcome("company_tax_id_required")
    # DE/CN companies with a missing or invalid tax ID; persons, US/FR/GB companies, rows
    # without party type pass
    assert o.failed_ids == ("r02", "r03", "r10", "r18")
    assert (o.failed, o.evaluated, o.column) == (4, 18, "party_type,country,tax_id")
    assert outcome.quarantine_ids == {"r02", "r03", "r10", "r18", "r06", "r12"}
    # the country list is configurable ...
    assert outcome.outcome("company_tax_id_required_us").failed_ids == ("r06", "r07")
    # ... and defaults to CN, DE
    default = outcome.outcome("company_tax_id_required_default")
    assert default.failed_ids == o.failed_ids


def test_plain_checks():
    assert custom.is_valid_e164("+4930123456")
    assert not custom.is_valid_e164("+49 30 123456")  # parses, but is not E.164
    assert not custom.is_valid_e164(4930123456)
    assert custom.tax_id_check(DE_BODY + DE_OK[-1], "DE")  # prefix optional
    gr = "09425921" + gr_vat.calc_check_digit("09425921")
    assert custom.tax_id_check("el" + gr, "GR") and custom.tax_id_check(gr, "GR")  # EL prefix
    assert custom.tax_id_check("GR" + gr, "GR") is False
    assert custom.tax_id_check(FR_OK, "FR") and not custom.tax_id_check(FR_OK, "AT")
    assert custom.tax_id_check("anything", "GB") is False  # the staged flag's verdict
    assert custom.tax_id_check("anything", "HK") is None  # no validator for the country
    assert custom.tax_id_check(None, "DE") is None and custom.tax_id_check(DE_OK, None) is None


def test_checks_run_once_per_distinct_value(tmp_path, monkeypatch):
    calls: list = []
    real_phone, real_tax = custom.is_valid_e164, custom.tax_id_check
    monkeypatch.setattr(custom, "is_valid_e164", lambda v: calls.append(v) or real_phone(v))
    monkeypatch.setattr(custom, "tax_id_check", lambda t, c: calls.append((t, c)) or real_tax(t, c))
    n = 3000
    df = pd.DataFrame(
        {
            "source_id": [f"id{i}" for i in range(n)],
            "party_type": "company",
            "country": "DE",
            "tax_id": [DE_OK, DE_BAD, None] * (n // 3),
            "phone": ["+4930123456", "+12345", None] * (n // 3),
            "segment": "A",
        }
    )
    rules = ("phone_valid_e164", "tax_id_check_digit", "company_tax_id_required")
    expectations = [e for e in SUITE_EXPECTATIONS if e["meta"]["rule"] in rules]
    suites = _write_suite(tmp_path / "expectations", expectations)
    out = validate_frame(
        df, "custom_suite", expectations_dir=suites, gx_dir=tmp_path / "gx", build_docs=False
    )
    assert out.outcome("phone_valid_e164").failed == n // 3
    assert out.outcome("tax_id_check_digit").failed == n // 3
    assert out.outcome("company_tax_id_required").failed == 2 * n // 3
    # GX may evaluate a condition more than once, but never per row
    assert 0 < len(calls) <= 30


def test_expectations_are_registered_in_gx():
    from great_expectations.execution_engine import PandasExecutionEngine
    from great_expectations.expectations.registry import get_expectation_impl, get_metric_provider

    assert custom.register() == custom.register() == custom.CUSTOM_EXPECTATION_TYPES
    assert set(custom.CUSTOM_EXPECTATION_TYPES) == {
        "expect_column_values_to_be_valid_e164",
        "expect_column_values_to_have_valid_tax_id",
        "expect_column_values_to_be_covered_by_crosswalk",
        "expect_company_tax_id_where_required",
        "expect_row_values_to_fit_published_columns",
        "expect_column_values_to_not_be_formula_payloads",
    }
    for cls in custom._CLASSES:
        assert get_expectation_impl(cls.expectation_type) is cls
        assert get_metric_provider(f"{cls.map_metric}.condition", PandasExecutionEngine())


def test_suite_with_custom_types_loads_only_after_import():
    """In a fresh interpreter GX drops the custom types until this module is imported."""
    code = f"""
import json, os
os.environ["GX_ANALYTICS_ENABLED"] = "false"
from great_expectations.core import ExpectationSuite
from great_expectations.expectations.registry import _registered_expectations
data = json.loads(open({str(EXPECTATIONS_DIR / "staged_customers_erp.json")!r}).read())
types = {{
    "expect_column_values_to_be_valid_e164", "expect_column_values_to_have_valid_tax_id",
    "expect_column_values_to_be_covered_by_crosswalk", "expect_company_tax_id_where_required",
    "expect_row_values_to_fit_published_columns",
    "expect_column_values_to_not_be_formula_payloads",
}}
before = ExpectationSuite(**json.loads(json.dumps(data)))
assert not types & set(_registered_expectations), "registered too early"
assert len(before.expectations) == len(data["expectations"]) - 6, len(before.expectations)
import custpipe.quality.expectations as m
m.register()
after = ExpectationSuite(**json.loads(json.dumps(data)))
assert len(after.expectations) == len(data["expectations"]) == 16
assert types <= {{e.expectation_type for e in after.expectations}}
"""
    subprocess.run([sys.executable, "-c", code], check=True, cwd=REPO_ROOT)


def test_validate_frame_registers_before_reading(tmp_path):
    """Even if the registry lost our types, validate_frame restores them before any suite."""
    from great_expectations.expectations.registry import _registered_expectations

    typ = "expect_column_values_to_be_valid_e164"
    saved = _registered_expectations.pop(typ)
    try:
        suites = _write_suite(tmp_path / "expectations", SUITE_EXPECTATIONS[:1])
        out = validate_frame(
            _frame(), "custom_suite", expectations_dir=suites, gx_dir=tmp_path / "gx"
        )
        assert out.outcome("phone_valid_e164").failed == 4
        assert _registered_expectations[typ] is saved
    finally:
        _registered_expectations[typ] = saved


CANARY_PHONE = "+99911122233344"
CANARY_TAX = "DE-CANARY-77"


def test_no_values_of_custom_expectations_on_disk(tmp_path):
    df = _frame()
    df.loc[2, ["phone", "tax_id"]] = [CANARY_PHONE, CANARY_TAX]  # r03: DE company
    df.loc[5, "segment"] = "CANARYSEG"
    suites = _write_suite(tmp_path / "expectations")
    gx_dir = tmp_path / "gx"
    out = validate_frame(
        df, "custom_suite", expectations_dir=suites, gx_dir=gx_dir, build_docs=True
    )
    assert "r03" in out.outcome("phone_valid_e164").failed_ids
    assert "r03" in out.outcome("tax_id_check_digit").failed_ids
    assert "r03" in out.outcome("company_tax_id_required").failed_ids
    files = [p for p in gx_dir.rglob("*") if p.is_file()]
    assert any(p.suffix == ".html" for p in files)
    for needle in (CANARY_PHONE, CANARY_TAX, "CANARYSEG", "r03", "r06"):
        hits = [str(p) for p in files if needle.encode() in p.read_bytes()]
        assert hits == [], needle
    # Data Docs explain the custom rules in words
    html = "\n".join(
        p.read_text(errors="ignore") for p in (gx_dir / "data_docs" / "validations").rglob("*.html")
    )
    assert "crosswalk entry" in html
    assert "E.164" in html
    assert "check digit" in html or "check-digit" in html


def test_parallel_evaluation_gives_the_same_results(monkeypatch):
    df = _frame()
    phones = pd.concat([df["phone"]] * 3, ignore_index=True)
    taxes = pd.concat([df["tax_id"]] * 3, ignore_index=True)
    countries = pd.concat([df["country"]] * 3, ignore_index=True)
    sequential = (
        custom._map_unique(phones, custom.is_valid_e164),
        custom._tax_id_results(taxes, countries),
    )
    from custpipe.standardize import _util

    monkeypatch.setattr(_util, "PARALLEL_MIN_VALUES", 1)
    monkeypatch.setattr(_util.os, "cpu_count", lambda: 2)
    parallel = (
        custom._map_unique(phones, custom.is_valid_e164),
        custom._tax_id_results(taxes, countries),
    )
    assert sequential[0].tolist() == parallel[0].tolist()
    assert sequential[1].tolist() == parallel[1].tolist()
    assert sequential[0].tolist()[:6] == [True, True, False, False, False, False]
