"""Blocking analysis per rule of the saved model, on a small hand-made warehouse whose answers
are known: candidate pairs new and cumulative, and with a ground truth the true pairs and the
cumulative recall (`custpipe evaluate --blocking`, with or without a truth file)."""

from __future__ import annotations

import json
import shutil

import pandas as pd
import pytest

from custpipe import warehouse
from custpipe.matching.blocking import analyse_blocking, blocking_rules
from custpipe.matching.model import MatchModel
from custpipe.matching.workspace import match_workspace
from custpipe.settings import DEFAULT_CONFIG_DIR

RULES = ['l."email" = r."email"', 'l."phone" = r."phone"', 'l."postal_code" = r."postal_code"']
TRUST = {"erp": 1, "crm": 2}


def model() -> MatchModel:
    """The committed model with three simple rules in its settings (what is analysed)."""
    committed = MatchModel.load(DEFAULT_CONFIG_DIR / "match_model.json")
    rules = [{"blocking_rule": r, "sql_dialect": "duckdb"} for r in RULES]
    splink = committed.splink | {"blocking_rules_to_generate_predictions": rules}
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


def test_rules_are_read_from_the_model_files_settings():
    assert blocking_rules(model().splink) == RULES


def test_counts_per_rule_and_cumulative_without_a_truth(empty_warehouse):
    fill(empty_warehouse)
    with match_workspace(empty_warehouse, TRUST) as ws:
        analysis = analyse_blocking(ws, model())
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
        analysis = analyse_blocking(ws, model(), TRUTH)
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


def test_a_model_without_rules_makes_no_pairs(empty_warehouse):
    fill(empty_warehouse)
    bare = model()
    splink = bare.splink | {"blocking_rules_to_generate_predictions": []}
    with match_workspace(empty_warehouse, TRUST) as ws:
        analysis = analyse_blocking(ws, MatchModel(splink, 1, "x"), TRUTH)
    assert analysis.rules == () and analysis.candidate_pairs == 0
    assert analysis.blocking_recall == 0.0


@pytest.fixture
def deployment(tmp_path, monkeypatch):
    """A configuration whose model file holds RULES, and a warehouse file filled by `fill`."""
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    model().save(config / "match_model.json")
    data = tmp_path / "data"
    with warehouse.connect(data / "warehouse.duckdb") as con:
        fill(con)
    monkeypatch.setenv("CUSTPIPE_CONFIG", str(config))
    monkeypatch.setenv("CUSTPIPE_DATA", str(data))
    return tmp_path


def test_evaluate_blocking_without_a_truth_file_prints_counts_only(deployment, capsys):
    from custpipe.cli import main

    assert main(["evaluate", "--blocking", "--json", str(deployment / "b.json")]) == 0
    out = capsys.readouterr().out
    assert "no ground truth at" in out and "blocking counts only" in out
    assert "on 5 accepted records" in out
    lines = [line.split() for line in out.splitlines() if line.strip()[:1].isdigit()]
    assert [line[:3] for line in lines] == [["1", "1", "1"], ["2", "2", "3"], ["3", "3", "6"]]
    figures = json.loads((deployment / "b.json").read_text())
    assert figures["candidate_pairs"] == 6 and "precision" not in figures
    assert [r["pairs"] for r in figures["blocking_rules"]] == [1, 2, 3]


def test_evaluate_with_a_truth_counts_the_records_not_consolidated(deployment, capsys):
    from custpipe.cli import main

    truth = deployment / "truth.csv"
    TRUTH.to_csv(truth, index=False)
    args = ["evaluate", "--truth", str(truth), "--blocking", "--json", str(deployment / "e.json")]
    assert main(args) == 0
    out = capsys.readouterr().out
    assert "7 truth records, 5 consolidated" in out
    assert "not consolidated: 2 truth record(s) (1 quarantined, 1 never staged)" in out
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
    assert figures["blocking_recall"] == 0.5
    assert [r["cumulative_recall"] for r in figures["blocking_rules"]] == [0.1667, 0.5, 0.5]


def test_evaluate_without_blocking_needs_a_truth_and_says_how(deployment, capsys):
    from custpipe.cli import main

    assert main(["evaluate"]) == 2
    err = capsys.readouterr().err
    assert "no ground truth at" in err and "--truth CSV" in err and "--blocking" in err
