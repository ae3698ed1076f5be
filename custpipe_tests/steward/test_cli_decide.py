"""`custpipe decide` records decisions in the steward store, never in the warehouse."""

from __future__ import annotations

import pandas as pd
import pytest

from custpipe.cli import main
from custpipe.steward import store


@pytest.fixture
def data(tmp_path, monkeypatch):
    data = tmp_path / "data"
    monkeypatch.setenv("CUSTPIPE_DATA", str(data))
    return data


def _store(data) -> pd.DataFrame:
    return store.decisions(data / "steward" / "steward.sqlite")


def test_decide_writes_the_store_and_never_opens_the_warehouse(data, capsys):
    args = ["--by", "ann", "--why", "same contract"]
    assert main(["decide", "must-link", "sales:S-42", "service:SV-913", *args]) == 0
    assert (
        main(["decide", "split-out", "crm:C7", "G0BE92AAC034C", "--by", "bob", "--why", "x"]) == 0
    )
    out = capsys.readouterr().out
    assert "1 decision(s) recorded in" in out and "steward.sqlite" in out
    rows = _store(data)
    assert rows[["kind", "left_record", "right_record", "golden_id", "origin"]].values.tolist() == [
        ["must_link", "sales:S-42", "service:SV-913", None, "cli"],
        ["split_out", "crm:C7", None, "G0BE92AAC034C", "cli"],
    ]
    assert not (data / "warehouse.duckdb").exists()  # no warehouse, no lock to wait for
    assert [e["action"] for e in store.audit_entries(data / "steward" / "steward.sqlite")] == [
        "split_out",
        "decide",
    ]


WHO = ["--by", "a", "--why", "b"]


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["decide", "must-link", "sales:S-42", "sales:S-42", *WHO], "two different"),
        (["decide", "cannot-link", "S-42", "crm:C1", *WHO], "source_system:source_id"),
        (["decide", "cannot-link", "erp:1", "crm:C1", "--by", "a"], "why (--why)"),
        (["decide", "split-out", "erp:1"], "split-out RECORD GOLDEN_ID"),
    ],
)  # fmt: skip
def test_decide_explains_what_is_wrong_and_records_nothing(data, capsys, argv, message):
    assert main(argv) == 2
    assert message in capsys.readouterr().err
    assert not (data / "steward" / "steward.sqlite").exists() or _store(data).empty


def _sheet(rows: list[dict]) -> pd.DataFrame:
    base = {
        "left_golden_id": "G1", "right_golden_id": "G2", "group": "G1|G2", "score": "0.9",
        "explanation": "{}", "allowed_decisions": "must_link or cannot_link",
        "decision": "", "decided_by": "", "reason": "",
    }  # fmt: skip
    return pd.DataFrame([base | r for r in rows])


def test_decide_file_records_the_decided_rows_of_a_sheet(data, tmp_path, capsys):
    sheet = tmp_path / "sheet.csv"
    _sheet(
        [
            {
                "left": "erp:1",
                "right": "crm:2",
                "decision": "must-link",
                "decided_by": "ann",
                "reason": "same VAT",
            },
            {"left": "erp:3", "right": "crm:4"},  # undecided: skipped
            {
                "left": "erp:5",
                "right": "crm:6",
                "decision": " Cannot_Link ",
                "decided_by": "ann",
                "reason": "two firms",
            },
        ]  # fmt: skip
    ).to_csv(sheet, index=False)
    assert main(["decide", "--file", str(sheet)]) == 0
    assert "2 decision(s) recorded" in capsys.readouterr().out
    rows = _store(data)
    assert rows[["kind", "left_record", "right_record", "origin"]].values.tolist() == [
        ["must_link", "erp:1", "crm:2", "sheet"],
        ["cannot_link", "erp:5", "crm:6", "sheet"],
    ]


def test_a_bad_row_of_a_sheet_records_nothing_and_names_its_row(data, tmp_path, capsys):
    sheet = tmp_path / "sheet.csv"
    _sheet(
        [
            {
                "left": "erp:1",
                "right": "crm:2",
                "decision": "must_link",
                "decided_by": "ann",
                "reason": "same VAT",
            },
            {"left": "erp:3", "right": "crm:4"},
            {
                "left": "erp:5",
                "right": "crm:6",
                "decision": "merge",
                "decided_by": "ann",
                "reason": "x",
            },
        ]  # fmt: skip
    ).to_csv(sheet, index=False)
    assert main(["decide", "--file", str(sheet)]) == 2
    err = capsys.readouterr().err
    assert "row 4" in err and "decision must be one of" in err and "nothing recorded" in err
    assert _store(data).empty
    pd.DataFrame({"left": ["erp:1"], "right": ["crm:2"]}).to_csv(sheet, index=False)
    assert main(["decide", "--file", str(sheet)]) == 2
    assert "needs columns" in capsys.readouterr().err
