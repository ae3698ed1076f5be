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
from custpipe.sources.extract import extract_dataset, read_landing_table
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
    raw = read_landing_table(result.path).to_pandas()
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
    from custpipe.publish import erp

    calls = []

    def fail_after_first_batch():
        calls.append(1)
        if len(calls) == 2:
            raise ConnectionError("network dropped mid-publish")

    erp_batch, erp_pause = erp.BATCH_ROWS, erp._test_pause
    erp.BATCH_ROWS, erp._test_pause = 1, fail_after_first_batch
    try:
        changed = golden([{"golden_id": "G1", "name": "changed"}, {"golden_id": "G9"}])
        with pytest.raises(ConnectionError):
            publish(changed, server_url, table_name, "run4")
    finally:
        erp.BATCH_ROWS, erp._test_pause = erp_batch, erp_pause
    assert published(server_url, table_name) == before


def test_drift_on_a_real_table_renamed_and_retyped_columns(server_url, table_name, tmp_path):
    from custpipe.sources.extract import SchemaDriftError

    engine = sa.create_engine(server_url)
    KNA1.to_sql(table_name, engine, index=False)
    settings = Settings(tmp_path, tmp_path / "data", tmp_path)
    source = source_for(server_url, table_name)
    extract_dataset(source, "customers", settings, date(2026, 11, 27))
    with engine.begin() as conn:  # retype the country column (text -> integer)
        conn.execute(sa.text(f"DELETE FROM {table_name}"))
        conn.execute(
            sa.text(
                f'ALTER TABLE {table_name} DROP COLUMN "LAND1"'
                if engine.dialect.name == "postgresql"
                else f"ALTER TABLE {table_name} DROP COLUMN LAND1"
            )
        )
        conn.execute(
            sa.text(
                f'ALTER TABLE {table_name} ADD COLUMN "LAND1" INTEGER'
                if engine.dialect.name == "postgresql"
                else f"ALTER TABLE {table_name} ADD COLUMN LAND1 INTEGER"
            )
        )
    with pytest.raises(SchemaDriftError, match=r"'LAND1' \(text -> integer\) changed type"):
        extract_dataset(source, "customers", settings, date(2026, 11, 27))
    with engine.begin() as conn:  # rename the phone column
        old, new = (
            ('"TELF1"', '"TEL_NUMBER"')
            if engine.dialect.name == "postgresql"
            else ("TELF1", "TEL_NUMBER")
        )
        conn.execute(sa.text(f"ALTER TABLE {table_name} RENAME COLUMN {old} TO {new}"))
    engine.dispose()
    with pytest.raises(SchemaDriftError, match=r"'TELF1' \(did you mean 'TEL_NUMBER'"):
        extract_dataset(source, "customers", settings, date(2026, 11, 27))


def test_incremental_extraction_on_a_real_table(server_url, table_name, tmp_path):
    import datetime as dt

    engine = sa.create_engine(server_url)
    frame = KNA1.assign(AEDAT=[dt.datetime(2026, 11, d, 12) for d in (1, 2, 3)])
    frame.to_sql(table_name, engine, index=False)
    settings = Settings(tmp_path, tmp_path / "data", tmp_path)
    source = SourceConfig.model_validate(
        {
            "name": "erp",
            "connection": {"url": server_url},
            "customers": {
                "reader": {"kind": "sql", "table": table_name, "watermark": "AEDAT"},
                "id": "KUNNR",
                "fields": {"name": "NAME1"},
            },
        }
    )
    assert extract_dataset(source, "customers", settings, date(2026, 11, 27)).rows == 3
    with engine.begin() as conn:
        conn.execute(
            sa.text(
                f'UPDATE {table_name} SET "NAME1" = :n, "AEDAT" = :d WHERE "KUNNR" = :k'
                if engine.dialect.name == "postgresql"
                else f"UPDATE {table_name} SET NAME1 = :n, AEDAT = :d WHERE KUNNR = :k"
            ),
            {"n": "Müller AG", "d": dt.datetime(2026, 11, 5), "k": "0000100002"},
        )
    engine.dispose()
    second = extract_dataset(source, "customers", settings, date(2026, 11, 28))
    assert second.mode == "incremental"
    # the row at the old watermark (3 Nov) is read again; the rows before it are not
    names = read_landing_table(second.path).to_pandas()["NAME1"]
    assert sorted(names) == ["ACME Incorporated", "Müller AG"]


def test_a_killed_publish_leaves_the_server_table_unchanged(server_url, table_name):
    from custpipe_tests.publish.kill import count_rows, publish_and_kill

    publish(golden([{"golden_id": "G1", "name": "A"}]), server_url, table_name, "run1")
    publish_and_kill(server_url, table_name)
    assert count_rows(server_url, table_name) == 1
    assert published(server_url, table_name)["G1"]["run_id"] == "run1"
    assert publish(golden([{"golden_id": "G2"}]), server_url, table_name, "run2").inserted == 1


def test_a_dry_run_on_the_server_writes_nothing(server_url, table_name):
    result = publish(golden([{"golden_id": "G1"}]), server_url, table_name, "r0", dry_run=True)
    assert result.inserted == 1
    engine = sa.create_engine(server_url)
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table(table_name)
    engine.dispose()
    publish(golden([{"golden_id": "G1", "name": "A"}]), server_url, table_name, "r1")
    again = publish(
        golden([{"golden_id": "G1", "name": "B"}, {"golden_id": "G2"}]),
        server_url,
        table_name,
        "r2",
        dry_run=True,
    )
    assert (again.inserted, again.updated, again.retired) == (1, 1, 0)
    rows = published(server_url, table_name)
    assert set(rows) == {"G1"} and rows["G1"]["name"] == "A"


def test_an_unreachable_server_is_a_clear_failure_and_writes_nothing(server_url):
    from custpipe.publish.erp import PublishTargetError

    url = sa.engine.make_url(server_url).set(port=1)  # nothing listens on port 1
    with pytest.raises(PublishTargetError, match=r"Nothing was written; check that the database"):
        publish(golden([{"golden_id": "G1"}]), url.render_as_string(False), "ZCUST_X", "r")


def test_the_nightly_job_publishes_to_the_server_only_when_its_checks_pass(
    server_url, table_name, tmp_path, monkeypatch
):
    import shutil

    from custpipe.settings import DEFAULT_CONFIG_DIR
    from custpipe_tests.conftest import make_deployment, run_nightly

    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    pipeline = config / "pipeline.yaml"
    pipeline.write_text(
        pipeline.read_text().replace("table: ZCUST_INBOUND", f"table: {table_name}")
    )
    crm = config / "sources" / "crm.yaml"
    good = crm.read_text()
    crm.write_text(good.replace("    name: Name\n", "    name: FirstName\n"))  # nulls names
    monkeypatch.setenv("CUSTPIPE_PUBLISH_URL", server_url)
    deployment = make_deployment(tmp_path, customers=80, config_dir=config)
    blocked = run_nightly(deployment.settings)
    assert not blocked.success
    engine = sa.create_engine(server_url)
    with engine.connect() as conn:  # the gate held: nothing reached the server
        assert not sa.inspect(conn).has_table(table_name)
    engine.dispose()
    crm.write_text(good)
    passed = run_nightly(deployment.settings)
    assert passed.success
    (mat,) = [
        m.materialization.metadata
        for m in passed.get_asset_materialization_events()
        if m.asset_key.to_user_string() == "publish/erp_customers"
    ]
    rows = published(server_url, table_name)
    assert mat["rows_published"].value == len(rows) > 0
