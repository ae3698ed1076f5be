import pandas as pd

from custpipe.config import DatasetConfig
from custpipe.mapping.apply import map_fields


def dataset(fields: dict) -> DatasetConfig:
    return DatasetConfig.model_validate(
        {"reader": {"kind": "csv", "path": "x.csv"}, "id": "ID", "fields": fields}
    )


def test_concat_skips_blanks_and_strips():
    raw = pd.DataFrame(
        {"ID": ["1", "2", "3"], "N1": ["Acme", " Big ", None], "N2": ["Corp", "", "Solo"]}
    )
    out, issues = map_fields(raw, dataset({"name": {"concat": ["N1", "N2"]}}), "erp")
    assert out["name"].tolist() == ["Acme Corp", "Big", "Solo"]
    assert issues == []


def test_crosswalk_reports_unmapped_codes_with_counts_and_keeps_them():
    raw = pd.DataFrame({"ID": list("12345"), "T": ["Gold", "Silver", "Platinum", "Platinum", None]})
    out, issues = map_fields(
        raw, dataset({"segment": {"column": "T", "crosswalk": {"Gold": "A", "Silver": "B"}}}), "crm"
    )
    assert out["segment"].tolist() == ["A", "B", "Platinum", "Platinum", None]
    assert len(issues) == 1
    issue = issues[0]
    assert (issue.source, issue.field, issue.column, issue.rows, issue.examples) == (
        "crm",
        "segment",
        "T",
        2,
        ("Platinum",),
    )
    assert "crm.segment <- T" in str(issue)


def test_bad_dates_are_counted_not_silently_nulled():
    raw = pd.DataFrame({"ID": ["1", "2"], "D": ["20261127", "2026-11-27"]})
    out, issues = map_fields(
        raw, dataset({"source_updated_at": {"column": "D", "date_format": "%Y%m%d"}}), "erp"
    )
    assert out["source_updated_at"].iloc[0] == pd.Timestamp("2026-11-27")
    assert pd.isna(out["source_updated_at"].iloc[1])
    assert [(i.field, i.rows) for i in issues] == [("source_updated_at", 1)]


def test_transforms_and_missing_ids():
    raw = pd.DataFrame({"ID": ["0000500001", None], "C": ["SO-500001", "x"]})
    out, issues = map_fields(
        raw,
        dataset(
            {
                "order_number": {"column": "ID", "transform": "strip_leading_zeros"},
                "customer_ref": {"column": "C", "transform": "digits_only"},
            }
        ),
        "erp",
    )
    assert out["order_number"].tolist()[0] == "500001"
    assert out["customer_ref"].tolist() == ["500001", None]
    assert [(i.field, i.rows) for i in issues] == [("source_id", 1)]
