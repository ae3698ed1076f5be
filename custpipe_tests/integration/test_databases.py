"""Extraction from and publishing to real PostgreSQL and MariaDB servers."""

from __future__ import annotations

from datetime import date

import pandas as pd
import pytest
import sqlalchemy as sa

from custpipe.config import SourceConfig
from custpipe.mapping.canonical import stage_customers
from custpipe.publish.erp import PUBLISHED_COLUMNS, publish
from custpipe.settings import Settings
from custpipe.sources.extract import extract_dataset, read_landing
from custpipe.standardize import company_name_key

KNA1 = pd.DataFrame(
    {
        "KUNNR": ["0000100001", "0000100002", "0000100003"],
        "NAME1": ["北京華為科技有限責任公司", "Müller G.m.b.H.", "ACME Incorporated"],
        "LAND1": ["CN", "DE", "US"],
        "TELF1": ["010-6554 1234", "030/1234567", "(212) 555-0123"],
        "KDGRP": ["01", "09", "03"],
    }
)


def source_for(url: str, table: str) -> SourceConfig:
    return SourceConfig.model_validate(
        {
            "name": "erp",
            "connection": {"url": url},
            "customers": {
                "reader": {"kind": "sql", "table": table, "chunk_size": 2},
                "id": "KUNNR",
                "fields": {
                    "name": "NAME1",
                    "country": "LAND1",
                    "phone": "TELF1",
                    "segment": {"column": "KDGRP", "crosswalk": {"01": "A", "03": "C"}},
                },
            },
        }
    )


def test_extract_and_stage_a_real_table(server_url, table_name, tmp_path):
    engine = sa.create_engine(server_url)
    KNA1.to_sql(table_name, engine, index=False)
    engine.dispose()
    settings = Settings(tmp_path, tmp_path / "data", tmp_path)
    source = source_for(server_url, table_name)
    result = extract_dataset(source, "customers", settings, date(2026, 11, 27))
    assert result.rows == 3
    raw = read_landing(result.path)
    assert raw.sort_values("KUNNR")["NAME1"].tolist() == KNA1["NAME1"].tolist()
    staged, issues = stage_customers(raw, source)
    staged = staged.set_index("source_id")
    simplified = company_name_key(pd.Series(["北京华为科技有限公司"]))[0]
    assert staged.loc["0000100001", "name_key"] == simplified
    assert staged.loc["0000100002", "name"] == "Müller GmbH"
    assert staged.loc["0000100002", "phone"] == "+49301234567"
    assert staged.loc["0000100003", "phone"] == "+12125550123"
    assert staged["segment"].to_dict() == {"0000100001": "A", "0000100002": "09", "0000100003": "C"}
    assert [(i.field, i.rows, i.examples) for i in issues] == [("segment", 1, ("09",))]


def test_missing_table_is_a_clear_error(server_url, tmp_path):
    from custpipe.sources.readers import SourceReadError

    settings = Settings(tmp_path, tmp_path / "data", tmp_path)
    with pytest.raises(SourceReadError, match=r"source 'erp': cannot read table 'no_such_table'"):
        extract_dataset(
            source_for(server_url, "no_such_table"), "customers", settings, date.today()
        )


def golden(rows: list[dict]) -> pd.DataFrame:
    return pd.DataFrame([dict.fromkeys(PUBLISHED_COLUMNS) | {"status": "active"} | r for r in rows])


def published(url: str, table: str) -> dict[str, dict]:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        rows = conn.execute(sa.text(f"SELECT * FROM {table}")).mappings().all()
    engine.dispose()
    return {r["golden_id"]: dict(r) for r in rows}


def test_publish_delta_is_idempotent_and_transactional(server_url, table_name):
    first = golden(
        [
            {"golden_id": "G1", "name": "北京华为科技有限公司"},
            {"golden_id": "G2", "name": "Müller GmbH"},
        ]
    )
    assert publish(first, server_url, table_name, "run1").inserted == 2
    assert publish(first, server_url, table_name, "run2").changed == 0
    second = golden(
        [{"golden_id": "G1", "name": "北京华为"}, {"golden_id": "G3", "name": "ACME Inc."}]
    )
    result = publish(second, server_url, table_name, "run3")
    assert (result.inserted, result.updated, result.retired) == (1, 1, 1)
    rows = published(server_url, table_name)
    assert rows["G1"]["name"] == "北京华为" and rows["G2"]["status"] == "retired"
    before = rows
    bad = golden([{"golden_id": "G1", "name": "changed"}, {"golden_id": "G9"}, {"golden_id": "G9"}])
    with pytest.raises(sa.exc.IntegrityError):
        publish(bad, server_url, table_name, "run4")
    assert published(server_url, table_name) == before
