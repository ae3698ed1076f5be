"""Every reviewed suite in expectations/ loads in GX with all of its expectations."""

from __future__ import annotations

import json
from collections import Counter

import pytest

from custpipe.quality.gx_runner import SEVERITIES, load_suite_names, read_suite
from custpipe_tests.quality.helpers import EXPECTATIONS_DIR

# suite -> (block, quarantine, warn). GX drops expectation types it cannot import, so the
# counts are asserted explicitly rather than derived from the files.
EXPECTED = {
    "staged_customers": (4, 6, 3),
    "staged_customers_erp": (4, 6, 3),
    "staged_customers_crm": (4, 6, 3),
    "staged_customers_sales": (4, 6, 2),
    "staged_customers_service": (4, 6, 3),
    "golden_customers": (3, 0, 0),
    "orders": (1, 2, 0),
}


def test_suite_list_is_complete():
    assert set(load_suite_names(EXPECTATIONS_DIR)) == set(EXPECTED)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_suite_loads_in_gx_with_all_expectations(name):
    from great_expectations.core import ExpectationSuite

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
