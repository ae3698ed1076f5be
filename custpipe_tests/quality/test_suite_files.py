"""Every reviewed suite in expectations/ loads in GX with all of its expectations."""

from __future__ import annotations

import json
import uuid
from collections import Counter

import pytest

from custpipe.quality.expectations import register
from custpipe.quality.gx_runner import SEVERITIES, load_suite_names, read_suite
from custpipe_tests.quality.helpers import EXPECTATIONS_DIR

# suite -> (block, quarantine, warn). GX drops expectation types it cannot import, so the
# counts are asserted explicitly rather than derived from the files.
EXPECTED = {
    "staged_customers": (4, 8, 4),
    "staged_customers_erp": (4, 8, 4),
    "staged_customers_crm": (4, 8, 4),
    "staged_customers_sales": (4, 8, 3),
    "staged_customers_service": (4, 8, 4),
    "golden_customers": (3, 0, 0),
    "orders": (1, 2, 0),
    "raw_crm": (3, 0, 1),
    "raw_erp": (3, 0, 2),
    "raw_sales": (3, 0, 1),
    "raw_service": (3, 0, 1),
}


def test_suite_list_is_complete():
    assert set(load_suite_names(EXPECTATIONS_DIR)) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_suite_loads_in_gx_with_all_expectations(name):
    from great_expectations.core import ExpectationSuite

    register()  # custom custpipe expectation types, as gx_runner does before reading suites
    data = read_suite(EXPECTATIONS_DIR, name)
    suite = ExpectationSuite(**json.loads((EXPECTATIONS_DIR / f"{name}.json").read_text()))
    assert suite.name == name
    severities = Counter(e.meta["severity"] for e in suite.expectations)
    assert tuple(severities[s] for s in SEVERITIES) == EXPECTED[name]
    assert len(suite.expectations) == sum(EXPECTED[name]) == len(data["expectations"])
    rules = [e.meta["rule"] for e in suite.expectations]
    assert len(rules) == len(set(rules)), "rule names must be unique within a suite"
    ids = [e.id for e in suite.expectations]
    assert all(ids) and len(set(ids)) == len(ids)
    for e in suite.expectations:
        assert len(e.meta.get("description", "")) > 30, e.meta["rule"]


def test_country_rule_uses_full_iso_list():
    data = read_suite(EXPECTATIONS_DIR, "staged_customers_erp")
    (country,) = [e for e in data["expectations"] if e["meta"]["rule"] == "country_known"]
    codes = country["kwargs"]["value_set"]
    assert len(codes) == len(set(codes)) == 249
    assert {"DE", "FR", "US", "GB", "CN", "AX", "SS"} <= set(codes)
    assert "XX" not in codes and "UK" not in codes


STAGED = [name for name in EXPECTED if name.startswith("staged_customers")]
CUSTOM_RULES = {
    "phone_valid_e164": ("expect_column_values_to_be_valid_e164", "warn"),
    "tax_id_check_digit": ("expect_column_values_to_have_valid_tax_id", "warn"),
    "segment_crosswalk_covered": ("expect_column_values_to_be_covered_by_crosswalk", "quarantine"),
    "company_tax_id_required": ("expect_company_tax_id_where_required", "warn"),
}


@pytest.mark.parametrize("name", STAGED)
def test_staged_suites_use_the_custom_expectations(name):
    data = read_suite(EXPECTATIONS_DIR, name)
    by_rule = {e["meta"]["rule"]: e for e in data["expectations"]}
    for rule, (typ, severity) in CUSTOM_RULES.items():
        assert (by_rule[rule]["type"], by_rule[rule]["meta"]["severity"]) == (typ, severity)
        # deterministic ids for the new rules: uuid5 of "custpipe:<suite>:<rule>"
        if rule != "segment_crosswalk_covered":
            expected_id = str(uuid.uuid5(uuid.NAMESPACE_URL, f"custpipe:{name}:{rule}"))
            assert by_rule[rule]["id"] == expected_id
    assert by_rule["company_tax_id_required"]["kwargs"] == {
        "column_list": ["party_type", "country", "tax_id"],
        "countries": ["CN", "DE"],
    }
    # the flag rules are replaced by the check-digit / E.164 expectations (no double counting)
    assert not {"phone_valid", "tax_id_valid"} & set(by_rule)
    for kept in ("name_required", "name_mostly_present", "country_known", "source_id_unique"):
        assert kept in by_rule


_EXP = {
    "type": "expect_column_values_to_not_be_null",
    "kwargs": {"column": "name"},
    "meta": {"severity": "quarantine", "rule": "name_required"},
    "id": "0b1d3d52-4c3e-5d0e-9a43-2d1e1f7a0001",
}


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{\n  "name": "broken",\n  "expectations": [\n    {"type": }\n  ]\n}', r"line 4, column"),
        ("[1, 2]", r"top level must be a JSON object"),
        ('{"name": "broken", "expectations": {"a": 1}}', r"'expectations' must be a list"),
        ('{"name": "broken", "expectations": ["x"]}', r"expectation #0 must be a JSON object"),
        (
            json.dumps({"name": "broken", "expectations": [{**_EXP, "type": None}]}),
            r"expectation #0 \(rule 'name_required'\) has no 'type'",
        ),
        (
            json.dumps({"name": "broken", "expectations": [{**_EXP, "kwargs": ["name"]}]}),
            r"expectation #0 \(rule 'name_required'\): 'kwargs' must be a JSON object",
        ),
        (
            json.dumps({"name": "broken", "expectations": [{**_EXP, "meta": "x"}]}),
            r"expectation #0 \(expect_column_values_to_not_be_null\): 'meta' must be a JSON",
        ),
        (b"\xff\xfe{}", r"not UTF-8"),
    ],
)
def test_a_malformed_suite_file_is_a_clear_error_naming_the_file(tmp_path, text, expected):
    from custpipe.quality.gx_runner import SuiteDefinitionError

    path = tmp_path / "broken.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    with pytest.raises(SuiteDefinitionError, match=expected) as err:
        read_suite(tmp_path, "broken")
    assert str(path) in str(err.value)
    assert "fix" in str(err.value)  # and says what to do
