"""Customer values must never reach the stored validation results or the Data Docs HTML."""

from __future__ import annotations

import json
import shutil
import uuid

import pytest

from custpipe.quality.gx_runner import validate_frame
from custpipe.quality.pii import scrub_suite_result
from custpipe_tests.quality.helpers import EXPECTATIONS_DIR, make_staged_frame

CANARY_NAME = "CANARY-ZEBRA-93817"
CANARY_EMAIL = "canary93817@example.com"
CANARY_TAX = "CANARY-TAX-55"
CANARY_ID = "CANARY-ID-20417"
CANARY_COUNTRY = "CANARY-LAND"
CANARIES = (CANARY_NAME, CANARY_EMAIL, CANARY_TAX, CANARY_ID, CANARY_COUNTRY)


def _expectation(typ: str, kwargs: dict, rule: str) -> dict:
    return {
        "type": typ,
        "kwargs": kwargs,
        "meta": {"severity": "warn", "rule": rule, "description": "test"},
        "id": str(uuid.uuid4()),
    }


@pytest.fixture
def canary_expectations(tmp_path):
    """The real ERP suite plus expectations that fail on (and would expose) names, e-mails and
    tax IDs, including an aggregate one whose observed value is a customer name."""
    target = tmp_path / "expectations"
    target.mkdir()
    suite = json.loads((EXPECTATIONS_DIR / "staged_customers_erp.json").read_text())
    suite["name"] = "canary_suite"
    suite["expectations"] += [
        _expectation(
            "expect_column_value_lengths_to_be_between",
            {"column": "name", "max_value": 15},
            "name_short",
        ),
        _expectation(
            "expect_column_values_to_not_match_regex",
            {"column": "email", "regex": "canary"},
            "email_not_canary",
        ),
        _expectation(
            "expect_column_values_to_match_regex", {"column": "tax_id", "regex": "^DE"}, "tax_de"
        ),
        _expectation(
            "expect_column_most_common_value_to_be_in_set",
            {"column": "name", "value_set": ["nobody"]},
            "name_mode",
        ),
    ]
    (target / "canary_suite.json").write_text(json.dumps(suite))
    shutil.copy(EXPECTATIONS_DIR / "orders.json", target / "orders.json")
    return target


def _canary_frame():
    df = make_staged_frame(30)
    df.loc[[3, 4, 5], "name"] = CANARY_NAME  # also the most common name
    df.loc[4, "email"] = CANARY_EMAIL
    df.loc[4, "email_valid"] = False
    df.loc[5, "tax_id"] = CANARY_TAX
    df.loc[5, "tax_id_valid"] = False
    df.loc[6, "source_id"] = CANARY_ID
    df.loc[6, "country"] = CANARY_COUNTRY
    return df


def _files_containing(root, needle: str) -> list[str]:
    hits = []
    for path in root.rglob("*"):
        if path.is_file() and needle.encode() in path.read_bytes():
            hits.append(str(path.relative_to(root)))
    return hits


def test_no_canary_in_results_or_docs(canary_expectations, tmp_path):
    gx_dir = tmp_path / "gx"
    out = validate_frame(
        _canary_frame(),
        "canary_suite",
        expectations_dir=canary_expectations,
        gx_dir=gx_dir,
        build_docs=True,
    )
    # the in-memory outcome still identifies the rows ...
    assert out.outcome("country_known").failed_ids == (CANARY_ID,)
    assert not out.outcome("name_short").success
    assert out.docs_index is not None and out.docs_index.suffix == ".html"
    # ... but nothing under gx_dir does
    assert list(gx_dir.rglob("*.html")) and list((gx_dir / "validations").rglob("*.json"))
    for canary in CANARIES:
        assert _files_containing(gx_dir, canary) == [], canary


def test_include_values_opt_in_keeps_values(canary_expectations, tmp_path):
    """Proves the canary test can fail: with include_values the canaries do land on disk."""
    gx_dir = tmp_path / "gx"
    validate_frame(
        _canary_frame(),
        "canary_suite",
        expectations_dir=canary_expectations,
        gx_dir=gx_dir,
        build_docs=True,
        include_values=True,
    )
    for canary in CANARIES:
        assert _files_containing(gx_dir / "validations", canary), canary
    assert _files_containing(gx_dir / "data_docs", CANARY_COUNTRY)


def test_scrub_suite_result_unit():
    raw = {
        "success": False,
        "meta": {"run_id": "x"},
        "results": [
            {
                "success": False,
                "expectation_config": {"type": "t", "kwargs": {"column": "name"}},
                "result": {
                    "element_count": 3,
                    "unexpected_count": 1,
                    "partial_unexpected_list": ["Alice"],
                    "unexpected_list": ["Alice"],
                    "partial_unexpected_counts": [{"value": "Alice", "count": 1}],
                    "partial_unexpected_index_list": [{"source_id": "S1", "name": "Alice"}],
                    "unexpected_index_list": [{"source_id": "S1", "name": "Alice"}],
                    "unexpected_index_query": "df.filter(items=[0])",
                    "details": {"value_counts": [{"value": "Alice", "count": 1}]},
                    "observed_value": "Alice",
                },
            },
            {"success": True, "result": {"observed_value": 42}},
        ],
    }
    before = json.dumps(raw)
    clean = scrub_suite_result(raw)
    assert json.dumps(raw) == before  # input untouched
    text = json.dumps(clean)
    assert "Alice" not in text and "S1" not in text
    assert clean["results"][0]["result"]["unexpected_count"] == 1
    assert clean["results"][1]["result"]["observed_value"] == 42
    assert clean["meta"]["custpipe_pii_scrubbed"] is True
