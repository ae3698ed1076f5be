from datetime import datetime

import pandas as pd

from custpipe.quality.gx_runner import ExpectationOutcome, SuiteOutcome
from custpipe.quality.quarantine import hold_back

AT = datetime(2026, 11, 27, 2, 0)


def outcome(*items: ExpectationOutcome) -> SuiteOutcome:
    return SuiteOutcome("s", all(i.success for i in items), tuple(items), None)


def rule(name, severity, failed_ids, evaluated=4):
    return ExpectationOutcome(
        name, "t", "c", severity, not failed_ids, evaluated, len(failed_ids), tuple(failed_ids)
    )


def test_every_failed_rule_of_every_record_is_held_with_its_reason():
    staged = pd.DataFrame(
        {
            "source_id": ["1", "2", "3", "4"],
            "mapping_errors": [None, "crosswalk_covered:segment", None, "required:name;x:y"],
        }
    )
    result = outcome(
        rule("name_required", "quarantine", ["3", "4"]),
        rule("email_valid", "warn", ["1"]),
        rule("source_id_unique", "block", []),
    )
    held, rules = hold_back(result, staged, "crm", "r1", AT, {"name_required": "Fill the name."})
    got = sorted(zip(held["source_id"], held["rule"], held["description"], strict=True))
    assert got == [
        (
            "2",
            "mapping:crosswalk_covered:segment",
            "The source code of field 'segment' has no entry in the source's crosswalk: add the "
            "code to the mapping file (or correct it at the source).",
        ),
        ("3", "name_required", "Fill the name."),
        (
            "4",
            "mapping:required:name",
            "The required field 'name' is empty: fill it in the source system.",
        ),
        ("4", "mapping:x:y", "Mapping rule 'y' failed."),
        ("4", "name_required", "Fill the name."),
    ]
    assert set(held["severity"]) == {"quarantine"} and set(held["run_id"]) == {"r1"}
    by_rule = rules.set_index("rule")
    assert by_rule.loc["name_required", "failed"] == 2
    assert by_rule.loc["name_required", "pass_rate"] == 0.5
    assert by_rule.loc["email_valid", "failed"] == 1  # warned, scored, not held
    assert by_rule.loc["mapping:crosswalk_covered:segment", "failed"] == 1
    assert by_rule.loc["source_id_unique", "pass_rate"] == 1.0


def test_nothing_failed_nothing_held():
    staged = pd.DataFrame({"source_id": ["1"], "mapping_errors": [None]})
    held, rules = hold_back(
        outcome(rule("name_required", "quarantine", [])), staged, "crm", "r", AT
    )
    assert held.empty and list(held.columns)[:3] == ["source_system", "source_id", "rule"]
    assert rules["failed"].tolist() == [0]


def test_validation_fetches_only_the_columns_its_rules_read(empty_warehouse):
    from custpipe.quality.validate import suite_columns

    con = empty_warehouse
    con.execute(
        "INSERT INTO staging.customers (source_system, source_id, email, phone, source_values) "
        "VALUES ('crm', '1', 'a@b.de', '+4930123456', '{\"x\": 1}'), ('erp', '2', NULL, NULL, '{}')"
    )
    suite = {
        "expectations": [
            {"type": "expect_column_values_to_not_be_null", "kwargs": {"column": "email"}},
            {"type": "custom", "kwargs": {"column_A": "phone", "column_B": "no_such_column"}},
        ]
    }
    frame = suite_columns(
        con,
        "staging.customers",
        suite,
        ["source_id", "mapping_errors"],
        "source_system = ?",
        ["crm"],
    )
    # the rules' columns and the keys, nothing else (no source_values); a missing column is
    # left out here so that the GX layer names it in its error
    assert list(frame.columns) == ["source_id", "mapping_errors", "email", "phone"]
    assert frame["source_id"].tolist() == ["1"]


def test_a_code_missing_from_the_crosswalk_is_held_and_scored_once():
    """The suite's crosswalk rule and the mapping rule `crosswalk_covered:segment` flag the
    same record (the unmapped code is kept as it was): one problem, one quarantine row and
    one scorecard count; the mapping rule keeps the records only it catches."""
    staged = pd.DataFrame(
        {
            "source_id": ["1", "2", "3"],
            "mapping_errors": [
                "crosswalk_covered:segment",  # 'Platinum': no entry, not a canonical code
                "crosswalk_covered:segment",  # 'A': no entry, but a canonical code
                "crosswalk_covered:segment;required:name",
            ],
        }
    )
    crosswalk = ExpectationOutcome(
        "segment_crosswalk_covered", "expect_column_values_to_be_covered_by_crosswalk",
        "segment", "quarantine", False, 3, 2, ("1", "3"),
    )  # fmt: skip
    held, rules = hold_back(outcome(crosswalk), staged, "crm", "r1", AT)
    got = sorted(zip(held["source_id"], held["rule"], strict=True))
    assert got == [
        ("1", "segment_crosswalk_covered"),
        ("2", "mapping:crosswalk_covered:segment"),
        ("3", "mapping:required:name"),
        ("3", "segment_crosswalk_covered"),
    ]
    failed = rules.set_index("rule")["failed"]
    assert failed["segment_crosswalk_covered"] + failed["mapping:crosswalk_covered:segment"] == 3
    assert held.groupby("rule")["source_id"].nunique().to_dict() == failed.to_dict()


def test_a_warn_crosswalk_rule_leaves_the_mapping_rule_holding_the_record():
    staged = pd.DataFrame({"source_id": ["1"], "mapping_errors": ["crosswalk_covered:segment"]})
    warn = ExpectationOutcome(
        "segment_crosswalk_covered", "expect_column_values_to_be_covered_by_crosswalk",
        "segment", "warn", False, 1, 1, ("1",),
    )  # fmt: skip
    held, _ = hold_back(outcome(warn), staged, "crm", "r1", AT)
    assert held["rule"].tolist() == ["mapping:crosswalk_covered:segment"]
