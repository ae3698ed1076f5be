import pandas as pd
import pytest

from custpipe.config import DatasetConfig
from custpipe.mapping.apply import MappingError, map_fields


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


def test_expression_split_and_required_fields():
    raw = pd.DataFrame(
        {"ID": ["1", "2", "3"], "N": ["Smith, John", "Doe", None], "A": ["a", None, "c"]}
    )
    ds = DatasetConfig.model_validate(
        {
            "reader": {"kind": "csv", "path": "x.csv"},
            "id": "ID",
            "required": ["family_name"],
            "fields": {
                "family_name": {"column": "N", "split": ",", "part": 0},
                "given_name": {"column": "N", "split": ",", "part": 1},
                "name": {"expr": 'upper(coalesce("A", "N"))'},
            },
        }
    )
    out, issues = map_fields(raw, ds, "crm")
    assert out["family_name"].tolist() == ["Smith", "Doe", None]
    assert out["given_name"].tolist() == ["John", None, None]
    assert out["name"].tolist() == ["A", "DOE", "C"]
    assert out["mapping_errors"].tolist() == [None, None, "required:family_name"]
    assert [(i.field, i.rows, i.rule) for i in issues] == [
        ("family_name", 1, "required:family_name")
    ]


def test_broken_expression_names_source_field_and_expression():
    raw = pd.DataFrame({"ID": ["1"], "N": ["x"]})
    ds = dataset({"name": {"expr": "upper(NO_SUCH_COLUMN)"}})
    with pytest.raises(MappingError, match=r"source 'erp', field 'name': expression .*NO_SUCH"):
        map_fields(raw, ds, "erp")


CROSSWALK = {"segment": {"column": "T", "crosswalk": {"Gold": "A"}}, "name": "N"}


def test_crosswalk_gap_lenient_flags_the_rows():
    raw = pd.DataFrame({"ID": ["1", "2"], "T": ["Gold", "Platinum"], "N": ["a", "b"]})
    out, _ = map_fields(raw, dataset(CROSSWALK), "crm")
    assert out["mapping_errors"].tolist() == [None, "crosswalk_covered:segment"]


def test_crosswalk_gap_strict_fails_with_codes_and_counts():
    raw = pd.DataFrame({"ID": ["1", "2", "3"], "T": ["Gold", "Platinum", "Platinum"], "N": "x"})
    strict = DatasetConfig.model_validate(
        {
            "reader": {"kind": "csv", "path": "x.csv"},
            "id": "ID",
            "on_unmapped_code": "fail",
            "fields": CROSSWALK,
        }
    )
    with pytest.raises(MappingError) as err:
        map_fields(raw, strict, "crm")
    message = str(err.value)
    assert "source 'crm' is in strict mode" in message
    assert "crm.segment <- T: code without a crosswalk entry" in message
    assert "in 2 row(s) (values: Platinum)" in message


def test_required_field_must_be_mapped():
    with pytest.raises(ValueError, match=r"required field\(s\) \['tax_id'\] are not mapped"):
        DatasetConfig.model_validate(
            {
                "reader": {"kind": "csv", "path": "x.csv"},
                "id": "ID",
                "required": ["tax_id"],
                "fields": {"name": "N"},
            }
        )


def test_party_type_is_inferred_from_a_legal_form_not_from_letters_in_a_name():
    raw = pd.DataFrame(
        {
            "ID": list("1234567"),
            "N": [
                "Vincent Schulz",
                "Abraham Lincoln",
                "Marko Ltdovic",
                "Acme Inc.",
                "北京华为有限公司",
                "Müller GmbH",
                "张伟",
            ],
        }
    )
    out, _ = map_fields(
        raw,
        dataset({"party_type": {"column": "N", "transform": "infer_party_type"}, "name": "N"}),
        "sales",
    )
    assert out["party_type"].tolist() == [
        "person",
        "person",
        "person",
        "company",
        "company",
        "company",
        "person",
    ]


def test_expression_errors_carry_no_row_values():
    raw = pd.DataFrame({"ID": ["1"], "N": ["Zhang Wei +49 30 1234"]})
    with pytest.raises(MappingError) as err:
        map_fields(raw, dataset({"name": {"expr": 'CAST("N" AS INTEGER)'}}), "erp")
    assert "Zhang" not in str(err.value) and "TRY_CAST" in str(err.value)
