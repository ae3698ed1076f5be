"""Every check of the run is decided in custpipe.gates: each gate on passing and failing input.

No Dagster here: the gates take what the core computed (suite outcomes, validations, the
conservation report, counts) and return plain GateResults.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd
import pytest

from custpipe import gates
from custpipe.gates import (
    CHECKS,
    GateResult,
    conservation,
    golden_suite_passes,
    no_discrepancies,
    orders_suite_passes,
    raw_shape,
    rows_quarantined,
    suite_passes,
    volume_stable,
)
from custpipe.quality.conservation import conservation_report
from custpipe.quality.gx_runner import ExpectationOutcome, SuiteOutcome
from custpipe.quality.quarantine import rule_rows
from custpipe.quality.validate import SourceValidation
from custpipe.warehouse import append_rows
from custpipe_tests.conftest import stage_landed

AT = pd.Timestamp("2026-11-28 02:00")


def outcome(*failed: tuple[str, str], rules=("id_present", "id_unique", "email_valid")):
    """A suite outcome whose rules pass except `failed` (rule, severity) pairs."""
    severities = dict(failed)
    rows = [
        ExpectationOutcome(
            rule=r,
            expectation_type="expect_column_values_to_not_be_null",
            column="source_id",
            severity=severities.get(r, "block"),
            success=r not in severities,
            evaluated=10,
            failed=2 if r in severities else 0,
            failed_ids=("1", "2") if r in severities else (),
        )
        for r in rules
    ]
    return SuiteOutcome("suite", not failed, tuple(rows), None)


def validation(
    suite: SuiteOutcome, rows=10, quarantined=0, baseline=None, max_drop=0.2
) -> SourceValidation:
    rules = rule_rows(suite, "erp", "run", AT)
    return SourceValidation("staged_customers", suite, rows, quarantined, rules, baseline, max_drop)


def assert_plain(result: GateResult) -> None:
    """Metadata is plain JSON (no numpy, no paths, no frames)."""
    assert json.loads(json.dumps(result.metadata)) == result.metadata
    assert result.severity == CHECKS[result.check].severity


def test_raw_shape_blocks_on_a_failed_block_rule_and_passes_without_a_suite():
    good = raw_shape(outcome(), 10, "crm")
    assert good.passed and good.check == "raw_shape" and good.severity == "block"
    assert good.metadata["blocking_rules_failed"] == 0 and good.metadata["rows_evaluated"] == 10
    bad = raw_shape(outcome(("id_unique", "block"), ("email_valid", "warn")), 10, "crm")
    assert not bad.passed and bad.blocks
    assert bad.description == "blocked by: id_unique (2 of 10 failed)"  # a warn rule never blocks
    assert bad.failed_rules == ({"rule": "id_unique", "evaluated": 10, "failed": 2},)
    assert bad.metadata["rules"][1] == {
        "rule": "id_unique",
        "severity": "block",
        "evaluated": 10,
        "failed": 2,
    }
    none = raw_shape(None, 0, "crm")
    assert none.passed and "raw_crm.json" in none.description
    for r in (good, bad, none):
        assert_plain(r)


def test_suite_passes_blocks_on_block_rules_and_on_the_quarantine_rate():
    assert suite_passes(validation(outcome(), quarantined=2), 0.2).passed
    blocked = suite_passes(validation(outcome(("id_present", "block"))), 0.2)
    assert not blocked.passed and blocked.description == "blocked by: id_present (2 of 10 failed)"
    too_many = suite_passes(validation(outcome(("email_valid", "quarantine")), quarantined=3), 0.2)
    assert not too_many.passed and too_many.blocks
    assert too_many.description == (
        "blocked by: quarantine_rate (30.0% > 20%: 3 of 10 rows quarantined)"
    )
    assert too_many.failed_rules[0]["failed"] == 3 and too_many.failed_rules[0]["evaluated"] == 10
    assert too_many.counts() == {
        "rows_evaluated": 10,
        "rows_quarantined": 3,
        "quarantine_rate": 0.3,
        "blocking_rules_failed": 1,
    }
    assert too_many.metadata["blocking_rules_failed"] == 1
    assert [r["rule"] for r in too_many.metadata["rules"]] == [
        "id_present",
        "id_unique",
        "email_valid",
    ]
    assert_plain(too_many)


def test_suite_blockers_lists_the_failed_block_rules_then_a_quarantine_rate_over_the_limit():
    assert gates.suite_blockers(["id_present"], 0.5, 0.2) == [
        "id_present",
        "quarantine_rate 50.0% > 20%",
    ]
    assert gates.suite_blockers([], 0.2, 0.2) == []  # at the limit is not over it
    v = validation(outcome(("id_present", "block")), quarantined=5)
    assert suite_passes(v, 0.2).description == (
        "blocked by: id_present (2 of 10 failed), "
        "quarantine_rate (50.0% > 20%: 5 of 10 rows quarantined)"
    )


def test_volume_stable_blocks_a_drop_beyond_the_limit():
    assert volume_stable(validation(outcome(), rows=9, baseline=10)).passed
    first = volume_stable(validation(outcome(), rows=10, baseline=None))
    assert first.passed and first.metadata["baseline_rows"] == 0
    dropped = volume_stable(validation(outcome(), rows=0, baseline=10))
    assert not dropped.passed and dropped.blocks and dropped.metadata["drop"] == 1.0
    assert "limit 20%" in dropped.description
    assert dropped.failed_rules == (
        {
            "rule": "volume_drop",
            "evaluated": 10,
            "failed": 10,
            "note": "100.0% > 20%: 0 rows now, 10 at the baseline",
        },
    )
    assert volume_stable(validation(outcome(), rows=9, baseline=10)).failed_rules == ()
    assert_plain(dropped)


def test_rows_quarantined_only_warns():
    assert rows_quarantined(validation(outcome(), quarantined=0), 0.05).passed
    warned = rows_quarantined(validation(outcome(), rows=10, quarantined=1), 0.05)
    assert not warned.passed and warned.severity == "warn" and not warned.blocks
    assert warned.metadata == {"rows_quarantined": 1, "quarantine_rate": 0.1}


@pytest.fixture
def warehouse(empty_warehouse, tmp_path):
    con = empty_warehouse
    stage_landed(con, tmp_path, ["1", "2"])
    run = [{"run_id": "r", "source_system": "erp", "validated_at": AT}]
    append_rows(con, "quality.validation_runs", pd.DataFrame(run))
    append_rows(con, "mdm.golden_customers", pd.DataFrame({"golden_id": ["G1"]}))
    return con


def test_conservation_blocks_a_lost_record(warehouse):
    xref = {"source_system": "erp", "source_id": ["1", "2"], "golden_id": "G1"}
    append_rows(warehouse, "mdm.customer_xref", pd.DataFrame(xref))
    held = conservation(conservation_report(warehouse, ["erp"]))
    assert held.passed and held.metadata["in_xref"] == 2, held.description
    warehouse.execute("DELETE FROM mdm.customer_xref WHERE source_id = '2'")
    lost = conservation(conservation_report(warehouse, ["erp"]))
    assert not lost.passed and lost.blocks and lost.metadata["in_neither"] == 1
    assert "VIOLATED" in lost.description
    assert lost.failed_rules[0]["failed"] == 1 and "in neither 1" in lost.failed_rules[0]["note"]
    assert_plain(lost)


def test_golden_suite_passes_blocks_on_a_block_rule_only():
    assert golden_suite_passes(outcome(), 3).passed
    bad = golden_suite_passes(outcome(("id_unique", "block")), 3)
    assert not bad.passed and bad.blocks
    assert bad.description == "blocked by: id_unique (2 of 10 failed)"
    assert bad.metadata == {"rows_evaluated": 3, "blocking_rules_failed": 1}


def test_orders_suite_passes_warns_even_on_a_failed_block_rule():
    suite = outcome()
    good = orders_suite_passes(suite, rule_rows(suite, "orders", "r", AT).to_dict("records"), 10)
    assert good.passed
    suite = outcome(("id_present", "block"), ("email_valid", "quarantine"))
    bad = orders_suite_passes(suite, rule_rows(suite, "orders", "r", AT).to_dict("records"), 10)
    assert not bad.passed and bad.severity == "warn" and not bad.blocks
    assert bad.description == "failed: id_present (2 of 10 failed), email_valid (2 of 10 failed)"
    assert bad.metadata["rules"][0]["pass_rate"] == 0.8
    assert_plain(bad)


def test_no_discrepancies_warns_above_the_rate():
    assert no_discrepancies({"amount_mismatch": 0}, 100, 0.05).passed
    warned = no_discrepancies({"amount_mismatch": 4, "missing": 2}, 100, 0.05)
    assert not warned.passed and not warned.blocks and warned.metadata["finding_rate"] == 0.06
    assert warned.metadata["by_kind"] == [
        {"kind": "amount_mismatch", "findings": 4},
        {"kind": "missing", "findings": 2},
    ]
    assert no_discrepancies({}, 0, 0.05).passed  # no orders: nothing to warn about


def test_every_registered_check_has_a_gate_and_on_call_text():
    for check in CHECKS.values():
        assert callable(getattr(gates, check.name)), check.name
        assert check.on_call and check.action and check.description
    assert {c.name for c in gates.blocking_checks()} == {
        "raw_shape",
        "suite_passes",
        "volume_stable",
        "conservation",
        "golden_suite_passes",
        "erp_matches_golden",
    }
    assert CHECKS["suite_passes"].asset_path("crm") == ["quality", "crm"]
    with pytest.raises(ValueError):
        CHECKS["suite_passes"].asset_path()


def test_the_defs_layer_holds_no_decision():
    """defs/ maps gate results; it computes no pass/fail of its own."""
    defs_dir = Path(gates.__file__).parent / "defs"
    for path in defs_dir.glob("*.py"):
        text = path.read_text(encoding="utf-8")
        assert "passed=" not in text.replace("passed=result.passed", ""), path.name
        assert "blocking=True" not in text, path.name


def test_mapping_issues_warns_above_the_rate_and_carries_no_values():
    issues = [
        {"dataset": "customers", "field": "country", "source_column": "LAND1",
         "problem": "unknown code", "rows": 3, "examples": "XX, YY"},
        {"dataset": "customers", "field": "birth_date", "source_column": "GBDAT",
         "problem": "not a date", "rows": 2, "examples": ""},
    ]  # fmt: skip
    calm = gates.mapping_issues(issues, 100, 0.05, "erp")
    assert calm.passed and calm.severity == "warn" and calm.metadata["rows_flagged"] == 5
    noisy = gates.mapping_issues(issues, 99, 0.05, "erp")
    assert not noisy.passed and not noisy.blocks and noisy.metadata["issue_rate"] == 0.0505
    assert "5 mapping issue(s) in 99 rows" in noisy.description and "'erp'" in noisy.description
    assert all("examples" not in row for row in noisy.metadata["issues"])
    nothing = gates.mapping_issues([], 0, 0.05, "erp")
    assert nothing.passed and nothing.metadata["issue_rate"] == 0.0


def test_review_queue_growth_warns_when_the_queue_grows_beyond_the_factor():
    first = gates.review_queue_growth(40, None, 2.0)
    assert first.passed and "no earlier run" in first.description
    assert gates.review_queue_growth(20, 10, 2.0).passed
    grown = gates.review_queue_growth(21, 10, 2.0)
    assert not grown.passed and not grown.blocks and grown.metadata["growth"] == 2.1
    assert gates.review_queue_growth(2, 0, 2.0).passed  # an empty queue counts as one pair
    assert not gates.review_queue_growth(3, 0, 2.0).passed
    assert gates.review_queue_growth(5, 50, 2.0).passed  # shrinking never warns


def test_erp_matches_golden_blocks_on_a_different_content_hash():
    same = gates.erp_matches_golden("abc", 10, "abc", 10, "ZCUST_INBOUND")
    assert same.passed and same.severity == "block"
    differs = gates.erp_matches_golden("abc", 10, "abd", 9, "ZCUST_INBOUND")
    assert differs.blocks and "9 active rows read back do NOT match the 10" in differs.description
    assert [r["rule"] for r in differs.failed_rules] == ["erp_content_equals_golden"]
    assert CHECKS["erp_matches_golden"].erp_tonight.startswith("Yes, and it may be wrong")
    assert CHECKS["golden_suite_passes"].erp_tonight.startswith("No")
