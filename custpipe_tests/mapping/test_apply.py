from contextlib import contextmanager

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


def _erp_customers(**columns) -> pd.DataFrame:
    """400 raw ERP customer rows (KNA1 columns) of every kind of value; `columns` replace some."""
    return pd.DataFrame(
        {
            "KUNNR": [f"{i:010d}" for i in range(400)],
            "NAME1": [f"Firma {i % 37} GmbH" if i % 5 else "张伟" for i in range(400)],
            "NAME2": [None] * 400,
            "STRAS": ["Hauptstr. 1"] * 400,
            "ORT01": ["Berlin"] * 400,
            "PSTLZ": ["10115", "1067", None, "ABCDE"] * 100,
            "REGIO": ["BE"] * 400,
            "LAND1": ["DE", "CN", "US", "XX"] * 100,
            "TELF1": ["030 1234567", "+86 138 1234 5678", "bad", None] * 100,
            "SMTP_ADDR": ["a@b.de", "bad", None, "X@Y.COM"] * 100,
            "STCD1": ["DE136695976", "DE123", None, "91110000802100433B"] * 100,
            "KTOKD": ["Z001", "Z002", "Z001", "Z009"] * 100,
            "KDGRP": ["01", "02", "09", None] * 100,
            "LOEVM": ["", "X", "", ""] * 100,
            "AEDAT": ["20261101", "2026-11-01", None, "20261102"] * 100,
        }
        | columns
    )


@contextmanager
def _two_forked_workers():
    """Stage every frame of more than 10 rows in a pool of 2 forked workers, whatever the
    machine's cores (on one core `_in_parallel` would silently stage serially); yields the
    (workers, chunks) of each pool that staged, so a test can check the pool really ran."""
    from concurrent.futures import ProcessPoolExecutor

    from custpipe.mapping import canonical

    pools: list[tuple[int, int]] = []

    class CountingPool(ProcessPoolExecutor):
        def __init__(self, workers, *args, **kwargs):
            super().__init__(workers, *args, **kwargs)
            self.workers = workers

        def map(self, fn, chunks, *iterables, **kwargs):
            pools.append((self.workers, len(chunks)))
            return super().map(fn, chunks, *iterables, **kwargs)

    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(canonical.os, "cpu_count", lambda: 2)
        patch.setattr(canonical, "ProcessPoolExecutor", CountingPool)
        patch.setattr(canonical, "PARALLEL_MIN_ROWS", 10)
        yield pools


def test_parallel_staging_gives_the_serial_result():
    from custpipe.config import load_config
    from custpipe.mapping import canonical
    from custpipe.settings import DEFAULT_CONFIG_DIR

    source = load_config(DEFAULT_CONFIG_DIR).sources["erp"]
    raw = _erp_customers()
    serial, serial_issues = canonical.stage_customers(raw, source)
    with _two_forked_workers() as pools:
        parallel, parallel_issues = canonical.stage_customers(raw, source)
    assert pools == [(2, 2)]
    pd.testing.assert_frame_equal(serial, parallel)
    assert sorted(map(str, serial_issues)) == sorted(map(str, parallel_issues))


def test_parallel_order_staging_equals_serial():
    from custpipe.config import load_config
    from custpipe.mapping import canonical
    from custpipe.settings import DEFAULT_CONFIG_DIR

    source = load_config(DEFAULT_CONFIG_DIR).sources["erp"]
    raw = pd.DataFrame(
        {
            "VBELN": ["0000100001", "0000100002", "0000100003", None] * 100,
            "KUNNR": ["K1", "K2", None, "K4"] * 100,
            "AUDAT": ["20261101", "2026-11-01", None, "20261102"] * 100,
            "NETWR": [100.5, None, 0.0, 12.25] * 100,
            "WAERK": ["EUR", "usd", None, "CNY"] * 100,
            "GBSTK": ["A", "C", "Z", None] * 100,
        }
    )
    serial, serial_issues = canonical.stage_orders(raw, source)
    with _two_forked_workers() as pools:
        parallel, parallel_issues = canonical.stage_orders(raw, source)
    assert pools == [(2, 2)]
    pd.testing.assert_frame_equal(serial, parallel)
    assert sorted(map(str, serial_issues)) == sorted(map(str, parallel_issues))
    assert serial_issues  # the unknown status code 'Z' is reported either way


def test_record_hash_is_the_row_hash_in_16_hex_digits():
    from custpipe.mapping.canonical import _record_hash

    frame = pd.DataFrame({"a": ["x", "y", None, "z" * 50], "b": [1, 2, 3, 2**40]})
    hashed = pd.util.hash_pandas_object(frame, index=False).to_numpy()
    assert list(_record_hash(frame, ["a", "b"])) == [format(h, "016x") for h in hashed]


def _stored(frame, table: str) -> pd.DataFrame:
    """What `frame` (pandas or Arrow) becomes in a warehouse table."""
    import duckdb

    from custpipe import warehouse

    con = duckdb.connect()
    con.execute(warehouse.DDL)
    warehouse.append_rows(con, table, frame)
    return con.execute(f"SELECT * FROM {table} ORDER BY source_id, source_values").df()


def test_parallel_staging_in_arrow_stores_what_serial_pandas_stores():
    """Two workers send Arrow tables; a column empty in one chunk and typed in the other (here
    the change date, None in the first half) is typed by the other; the stored rows equal
    those of the serial pandas path."""
    import pyarrow as pa

    from custpipe.config import load_config
    from custpipe.mapping import canonical
    from custpipe.settings import DEFAULT_CONFIG_DIR

    cfg = load_config(DEFAULT_CONFIG_DIR)
    customers = _erp_customers(
        NAME1=["Müller GmbH", None, "  ACME  Ltd ", "李雷"] * 100,
        AEDAT=[None] * 200 + ["20261101", "2026-11-01", None, "20261102"] * 50,
    )
    orders = pd.DataFrame(
        {
            "VBELN": [f"{i:010d}" for i in range(400)],
            "KUNNR": ["K1", "K2", None, "K4"] * 100,
            "AUDAT": [None] * 200 + ["20261101", "2026-11-01", None, "20261102"] * 50,
            "NETWR": [None] * 200 + [100.5, None, 0.0, 12.25] * 50,
            "WAERK": ["EUR", "usd", None, "CNY"] * 100,
            "GBSTK": ["A", "C", "Z", None] * 100,
        }
    )
    for stager, raw, table in (
        (canonical.stage_customers, customers, "staging.customers"),
        (canonical.stage_orders, orders, "staging.orders"),
    ):
        serial, serial_issues = stager(raw, cfg.sources["erp"])
        with _two_forked_workers() as pools:
            parallel, parallel_issues = stager(raw, cfg.sources["erp"], arrow=True)
        assert pools == [(2, 2)]
        assert isinstance(parallel, pa.Table)
        assert parallel.num_rows == 400
        pd.testing.assert_frame_equal(_stored(serial, table), _stored(parallel, table))
        assert sorted(map(str, serial_issues)) == sorted(map(str, parallel_issues))


def test_a_chunk_arrow_cannot_type_keeps_every_chunk_in_pandas():
    import pyarrow as pa

    from custpipe.mapping.canonical import _as_arrow, _concat

    typed, _ = _as_arrow((pd.DataFrame({"v": ["a", None]}), []))
    mixed, _ = _as_arrow((pd.DataFrame({"v": [1, "b"]}), []))  # ints and text in one column
    assert isinstance(typed, pa.Table) and isinstance(mixed, pd.DataFrame)
    both = _concat([typed, mixed])
    assert isinstance(both, pd.DataFrame) and list(both["v"]) == ["a", None, 1, "b"]
    clash = _concat([typed, pa.table({"v": pa.array([1, 2])})])  # text in one, ints in other
    assert isinstance(clash, pd.DataFrame) and list(clash["v"]) == ["a", None, 1, 2]
