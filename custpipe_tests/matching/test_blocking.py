"""Blocking analysis per configured blocking rule, on a small hand-made warehouse whose answers
are known: candidate pairs new and cumulative, and with a ground truth the true pairs and the
cumulative recall (`custpipe evaluate --blocking`, with or without a truth file, with a model
file trained under the same rules, under others, from before a rename, or none at all)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest
import yaml

from custpipe import warehouse
from custpipe.matching.blocking import analyse_blocking, blocking_rules
from custpipe.matching.model import MatchModel
from custpipe.matching.settings import MatchSettings, splink_settings
from custpipe.matching.workspace import match_workspace
from custpipe.settings import DEFAULT_CONFIG_DIR

TERMS = [["email"], ["phone"], ["postal_code"]]  # pipeline.yaml's blocking_rules
RULES = ['l."email" = r."email"', 'l."phone" = r."phone"', 'l."postal_code" = r."postal_code"']
TRUST = {"erp": 1, "crm": 2}


def configured(terms: list[list[str]] = TERMS) -> dict:
    """Splink settings (untrained) with the blocking rules `terms`: what is analysed."""
    return splink_settings(MatchSettings(blocking_rules=terms))


def model(rules: list[str] = RULES, old: str | None = None) -> MatchModel:
    """The committed model with `rules` in its settings; `old`: its own rules, with the
    column name_key_prefix4 named `old` (a model file from before a rename)."""
    committed = MatchModel.load(DEFAULT_CONFIG_DIR / "match_model.json")
    if old is None:
        splink = committed.splink | {
            "blocking_rules_to_generate_predictions": [
                {"blocking_rule": r, "sql_dialect": "duckdb"} for r in rules
            ]
        }
    else:
        text = json.dumps(committed.splink["blocking_rules_to_generate_predictions"])
        assert "name_key_prefix4" in text
        renamed = json.loads(text.replace("name_key_prefix4", old))
        splink = committed.splink | {"blocking_rules_to_generate_predictions": renamed}
    return MatchModel(splink, committed.trained_records, committed.trained_on)


def record(source_id: str, **values) -> dict:
    base = {
        "source_system": "erp",
        "source_id": source_id,
        "party_type": "person",
        "name": f"Person {source_id}",
        "name_key": f"person{source_id.lower()}",
        "country": "DE",
        "is_deleted": False,
        "email_valid": "email" in values,
        "phone_valid": "phone" in values,
        "postal_code_valid": True,
    }
    return base | values


# R1, R2 share an e-mail (rule 1), R1-R3 a phone (rule 2: 2 new pairs), R1-R4 (and the
# quarantined R6) a postcode (rule 3: 3 new pairs among the accepted). Entities: R4 is Y,
# every other record X, also R6 (quarantined) and crm:C9 (never staged).
STAGED = [
    record("R1", email="e1@example.de", phone="+4930111111", postal_code="10115"),
    record("R2", email="e1@example.de", phone="+4930111111", postal_code="10115"),
    record("R3", phone="+4930111111", postal_code="10115"),
    record("R4", postal_code="10115"),
    record("R5", postal_code="20095"),
    record("R6", postal_code="10115"),
]
TRUTH = pd.DataFrame(
    {
        "source_system": ["erp"] * 6 + ["crm"],
        "source_id": ["R1", "R2", "R3", "R4", "R5", "R6", "C9"],
        "entity_id": ["X", "X", "X", "Y", "X", "X", "X"],
    }
)


def fill(con) -> None:
    warehouse.append_rows(con, "staging.customers", pd.DataFrame(STAGED))
    runs = {"run_id": "v1", "source_system": list(TRUST), "validated_at": pd.Timestamp(0)}
    warehouse.append_rows(con, "quality.validation_runs", pd.DataFrame(runs))
    held = {"source_system": ["erp"], "source_id": ["R6"], "rule": "r", "run_id": "v1"}
    warehouse.append_rows(con, "quality.quarantine", pd.DataFrame(held))
    xref = {
        "source_system": "erp",
        "source_id": ["R1", "R2", "R3", "R4", "R5"],
        "golden_id": ["G1", "G1", "G1", "G2", "G3"],
    }
    warehouse.append_rows(con, "mdm.customer_xref", pd.DataFrame(xref))


def test_rules_are_read_from_splink_settings_configured_or_trained():
    assert blocking_rules(configured()) == RULES
    assert blocking_rules(model().splink) == RULES


def test_counts_per_rule_and_cumulative_without_a_truth(empty_warehouse):
    fill(empty_warehouse)
    with match_workspace(empty_warehouse, TRUST) as ws:
        analysis = analyse_blocking(ws, configured())
    assert analysis.records == 5  # R6 is quarantined
    assert [(r.rule, r.pairs, r.cumulative_pairs) for r in analysis.rules] == [
        (RULES[0], 1, 1),
        (RULES[1], 2, 3),
        (RULES[2], 3, 6),
    ]
    assert analysis.candidate_pairs == 6 and analysis.true_pairs is None
    assert analysis.recall(2) is None and analysis.rules[0].true_pairs is None


def test_with_a_truth_true_pairs_per_rule_and_cumulative_recall(empty_warehouse):
    fill(empty_warehouse)
    with match_workspace(empty_warehouse, TRUST) as ws:
        analysis = analyse_blocking(ws, configured(), TRUTH)
    # true pairs among the accepted records: X = R1, R2, R3, R5 -> 6 (R6 and C9 not accepted)
    assert analysis.true_pairs == 6
    assert [(r.true_pairs, r.cumulative_true_pairs) for r in analysis.rules] == [
        (1, 1),
        (2, 3),
        (0, 3),  # R1-R4, R2-R4, R3-R4: R4 is another entity
    ]
    assert [analysis.recall(i) for i in range(3)] == [1 / 6, 0.5, 0.5]
    assert analysis.blocking_recall == 0.5 and analysis.true_pairs_blocked == 3
    rows = analysis.as_dict()["rules"]
    assert rows[1] == {
        "rule": RULES[1],
        "pairs": 2,
        "cumulative_pairs": 3,
        "true_pairs": 2,
        "cumulative_true_pairs": 3,
        "cumulative_recall": 0.5,
    }


def test_a_rule_on_a_derived_column_is_analysed_with_that_column(empty_warehouse):
    """prefix(name_key, 4) reads name_key_prefix4, which the match input must carry."""
    fill(empty_warehouse)
    with match_workspace(empty_warehouse, TRUST) as ws:
        analysis = analyse_blocking(ws, configured([["postal_code", "prefix(name_key, 4)"]]))
    assert [r.rule for r in analysis.rules] == [
        '(l."postal_code" = r."postal_code") AND (l."name_key_prefix4" = r."name_key_prefix4")'
    ]
    assert analysis.candidate_pairs == 6  # R1-R4: 10115 and 'pers'; R5 another postcode


def test_settings_without_rules_make_no_pairs(empty_warehouse):
    fill(empty_warehouse)
    splink = configured() | {"blocking_rules_to_generate_predictions": []}
    with match_workspace(empty_warehouse, TRUST) as ws:
        analysis = analyse_blocking(ws, splink, TRUTH)
    assert analysis.rules == () and analysis.candidate_pairs == 0
    assert analysis.blocking_recall == 0.0


def set_blocking_rules(config, terms: list[list[str]]) -> None:
    """Write `terms` as the blocking rules of the configuration folder's pipeline.yaml."""
    data = yaml.safe_load((config / "pipeline.yaml").read_text())
    data["matching"]["blocking_rules"] = terms
    (config / "pipeline.yaml").write_text(yaml.safe_dump(data, sort_keys=False))


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """A configuration whose pipeline.yaml and model file hold RULES, and a warehouse file
    filled by `fill`."""
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    set_blocking_rules(config, TERMS)
    model().save(config / "match_model.json")
    data = tmp_path / "data"
    with warehouse.connect(data / "warehouse.duckdb") as con:
        fill(con)
    monkeypatch.setenv("CUSTPIPE_CONFIG", str(config))
    monkeypatch.setenv("CUSTPIPE_DATA", str(data))
    return tmp_path


def rule_lines(out: str) -> list[list[str]]:
    """The table rows of `evaluate --blocking` (#, pairs, cumulative, ...), split."""
    return [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]


def test_evaluate_blocking_without_a_truth_file_prints_counts_only(deployment, capsys):
    from custpipe.cli import main

    assert main(["evaluate", "--blocking", "--json", str(deployment / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "no ground truth at" in out and "blocking counts only" in out
    assert "on 5 accepted records" in out and "pipeline.yaml (matching.blocking_rules)" in out
    assert "model file" not in out  # trained under these settings: nothing to say
    assert [line[:3] for line in rule_lines(out)] == [
        ["1", "1", "1"],
        ["2", "2", "3"],
        ["3", "3", "6"],
    ]
    figures = json.loads((deployment / "b.json").read_text())
    assert figures["candidate_pairs"] == 6 and "precision" not in figures
    assert [r["pairs"] for r in figures["blocking_rules"]] == [1, 2, 3]
    assert figures["model_file"]["state"] == "same"
    assert figures["model_file"]["blocking_rules_differ"] is False


def test_evaluate_blocking_analyses_pipeline_yamls_rules_not_the_model_files(deployment, capsys):
    """A new rule's cost shows before train-model overwrites the model file."""
    from custpipe.cli import main

    model(RULES[:1]).save(deployment / "config" / "match_model.json")  # e-mail only
    assert main(["evaluate", "--blocking", "--json", str(deployment / "b.json")]) == 0
    out = capsys.readouterr().out
    assert (
        "pipeline.yaml's blocking rules differ from the model file's: analysing "
        "pipeline.yaml's; retrain before the next run" in out
    )
    assert "1 blocking rules in the model, 3 configured" in out and "train-model" in out
    assert [line[:3] for line in rule_lines(out)] == [
        ["1", "1", "1"],
        ["2", "2", "3"],
        ["3", "3", "6"],
    ]
    figures = json.loads((deployment / "b.json").read_text())
    assert [r["rule"] for r in figures["blocking_rules"]] == RULES
    assert (figures["model_file"]["state"], figures["model_file"]["blocking_rules_differ"]) == (
        "differs",
        True,
    )


def test_evaluate_blocking_needs_no_model_file(deployment, capsys):
    """A new deployment that never trained sees its rules' pairs and recall."""
    from custpipe.cli import main

    (deployment / "config" / "match_model.json").unlink()
    truth = deployment / "truth.csv"
    TRUTH.to_csv(truth, index=False)
    args = ["evaluate", "--truth", str(truth), "--blocking", "--json", str(deployment / "e.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "no usable match model file: analysing pipeline.yaml's blocking rules" in out
    assert "no match model file at" in out and "custpipe train-model" in out
    figures = json.loads((deployment / "e.json").read_text())
    assert figures["model_file"]["state"] == "missing"
    assert figures["candidate_pairs"] == 6 and figures["blocking_recall"] == 0.5
    assert (figures["precision"], figures["recall"]) == (1.0, 0.2)  # the last consolidation


def test_evaluate_with_a_model_file_from_before_a_column_rename_says_retrain(
    tmp_path, monkeypatch, capsys
):
    """A model file whose rule reads `name_prefix` (before it became name_key_prefix4): the
    retrain message, not Splink's error; the configured rules are analysed, derived columns
    included."""
    from custpipe.cli import main

    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)  # the demo's own matching settings
    model(old="name_prefix").save(config / "match_model.json")
    data = tmp_path / "data"
    with warehouse.connect(data / "warehouse.duckdb") as con:
        fill(con)
    monkeypatch.setenv("CUSTPIPE_CONFIG", str(config))
    monkeypatch.setenv("CUSTPIPE_DATA", str(data))
    truth = tmp_path / "truth.csv"
    TRUTH.to_csv(truth, index=False)
    assert main(["evaluate", "--truth", str(truth), "--blocking"]) == 0
    out = capsys.readouterr().out
    assert "was trained under other matching settings" in out
    assert "blocking rule 2 differs" in out and "retrain it with `custpipe train-model`" in out
    lines = rule_lines(out)
    assert len(lines) == len(MatchSettings().blocking_rules)
    assert lines[1][:2] == ["2", "6"] and lines[1][-1].endswith('r."name_key_prefix4")')
    assert main(["evaluate", "--truth", str(truth)]) == 0  # the match quality alone too
    assert "blocking rule 2 differs" in capsys.readouterr().out


def test_evaluate_with_a_truth_counts_the_records_not_consolidated(deployment, capsys):
    from custpipe.cli import main

    truth = deployment / "truth.csv"
    TRUTH.to_csv(truth, index=False)
    args = ["evaluate", "--truth", str(truth), "--blocking", "--json", str(deployment / "e.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "7 truth records, 5 consolidated" in out
    assert (
        "not consolidated: 2 truth record(s) (1 quarantined, 0 staged after the last "
        "consolidation or of an unconfigured source, 1 never staged)" in out
    )
    assert "3 of the 6 true pairs among the accepted records" in out
    figures = json.loads((deployment / "e.json").read_text())
    # X has 6 records (15 true pairs); G1 finds R1-R2-R3 (3); R5, R6, C9's pairs are missed
    assert (figures["true_pairs"], figures["true_positive_pairs"]) == (15, 3)
    assert (figures["precision"], figures["recall"], figures["recall_consolidated"]) == (
        1.0,
        0.2,
        0.5,
    )
    assert figures["unconsolidated"] == 2
    assert (figures["unconsolidated_quarantined"], figures["unconsolidated_never_staged"]) == (1, 1)
    assert figures["unconsolidated_staged_later_or_unconfigured"] == 0
    assert figures["blocking_recall"] == 0.5
    assert [r["cumulative_recall"] for r in figures["blocking_rules"]] == [0.1667, 0.5, 0.5]


def test_evaluate_counts_as_quarantined_only_the_latest_quarantine_of_a_configured_source(
    deployment, capsys
):
    """R7 was quarantined by an older validation of erp only (staged, clean now, not yet
    consolidated); O1 is in the latest quarantine of `old`, a source no longer configured."""
    from custpipe.cli import main

    with warehouse.connect(deployment / "data" / "warehouse.duckdb") as con:
        staged = [record("R7", postal_code="30000"), record("O1") | {"source_system": "old"}]
        warehouse.append_rows(con, "staging.customers", pd.DataFrame(staged))
        runs = {
            "run_id": ["v0", "w1"],
            "source_system": ["erp", "old"],
            "validated_at": [pd.Timestamp("1969-12-31"), pd.Timestamp(0)],
        }
        warehouse.append_rows(con, "quality.validation_runs", pd.DataFrame(runs))
        held = {"source_system": ["erp", "old"], "source_id": ["R7", "O1"], "rule": "r"}
        held["run_id"] = ["v0", "w1"]
        warehouse.append_rows(con, "quality.quarantine", pd.DataFrame(held))
    extra = pd.DataFrame(
        {"source_system": ["erp", "old"], "source_id": ["R7", "O1"], "entity_id": ["Z7", "Z1"]}
    )
    truth = deployment / "truth.csv"
    pd.concat([TRUTH, extra]).to_csv(truth, index=False)
    assert main(["evaluate", "--truth", str(truth), "--json", str(deployment / "e.json")]) == 0
    out = capsys.readouterr().out
    assert (
        "not consolidated: 4 truth record(s) (1 quarantined, 2 staged after the last "
        "consolidation or of an unconfigured source, 1 never staged)" in out
    )
    figures = json.loads((deployment / "e.json").read_text())
    assert (
        figures["unconsolidated_quarantined"],
        figures["unconsolidated_staged_later_or_unconfigured"],
        figures["unconsolidated_never_staged"],
    ) == (1, 2, 1)
    assert figures["accepted_records"] == 6  # R7 is accepted now; O1's source is not configured


def test_evaluate_without_blocking_needs_a_truth_and_says_how(deployment, capsys):
    from custpipe.cli import main

    assert main(["evaluate"]) == 2
    err = capsys.readouterr().err
    assert "no ground truth at" in err and "--truth CSV" in err and "--blocking" in err
