"""Generated files follow the contract and agree with the ground truth."""

from __future__ import annotations

import sqlite3

import pandas as pd

from custpipe.demo.generate import generate_demo, output_paths
from custpipe.demo.systems import ACCOUNT_COLS, KNA1_COLS, SALES_CUSTOMER_COLS, VBAK_COLS

from .conftest import N_CUSTOMERS


def _file_bytes(out) -> dict[str, bytes]:
    return {k: p.read_bytes() for k, p in output_paths(out).items()}


def test_deterministic(tmp_path):
    a = generate_demo(tmp_path / "a", 300, seed=5)
    b = generate_demo(tmp_path / "b", 300, seed=5)
    generate_demo(tmp_path / "c", 300, seed=6)
    assert a["records"] == b["records"]
    fa, fb, fc = (_file_bytes(tmp_path / x) for x in "abc")
    assert fa == fb
    assert all(fa[k] != fc[k] for k in fa)


def test_all_files_exist(demo):
    _, _, paths = demo
    for p in paths.values():
        assert p.is_file() and p.stat().st_size > 0


def _columns(path, table):
    with sqlite3.connect(path) as con:
        return [(r[1], r[2]) for r in con.execute(f"PRAGMA table_info({table})")]


def test_sqlite_schemas(demo):
    _, _, p = demo
    assert _columns(p["erp"], "KNA1") == [(c, "TEXT") for c in KNA1_COLS]
    assert _columns(p["erp"], "VBAK") == list(VBAK_COLS.items())
    assert _columns(p["crm"], "Account") == list(ACCOUNT_COLS.items())


def test_the_watermark_columns_are_indexed(demo):
    # a night's incremental read (the reader's `column >= since`) is a range of an index
    _, _, p = demo
    for path, table, stamp in [
        (p["erp"], "KNA1", "AEDAT"),
        (p["erp"], "VBAK", "AEDAT"),
        (p["erp"], "VBAP", "AEDAT"),
        (p["crm"], "Account", "LastModifiedDate"),
    ]:
        with sqlite3.connect(path) as con:
            plan = con.execute(
                f"EXPLAIN QUERY PLAN SELECT * FROM (SELECT * FROM {table}) AS q "
                f"WHERE {stamp} >= ?",
                ["2026"],
            ).fetchall()
        assert any(f"USING INDEX {table}_{stamp}" in row[-1] for row in plan), (table, plan)


def test_value_formats(sources):
    kna1, vbak, acc = sources["kna1"], sources["vbak"], sources["account"]
    assert kna1["KUNNR"].str.fullmatch(r"\d{10}").all() and kna1["KUNNR"].is_unique
    assert kna1["ERDAT"].str.fullmatch(r"\d{8}").all()
    assert set(kna1["LOEVM"]) <= {"", "X"} and set(kna1["KTOKD"]) <= {"Z001", "Z002"}
    assert set(kna1["LAND1"]) == {"CN", "DE", "US"}
    assert (kna1["NAME1"].str.len() <= 35).all()
    assert vbak["VBELN"].str.fullmatch(r"\d{10}").all() and set(vbak["GBSTK"]) <= set("ABCR")
    assert (vbak["NETWR"] > 0).all()
    assert acc["Id"].str.fullmatch(r"001[0-9A-Za-z]{15}").all() and acc["Id"].is_unique
    assert acc["LastModifiedDate"].str.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000\+0000").all()
    assert set(acc["IsPersonAccount"]) == {0, 1}
    persons = acc[acc["IsPersonAccount"] == 1]
    assert persons["LastName"].notna().all()
    assert acc.loc[acc["IsPersonAccount"] == 0, "LastName"].isna().all()
    assert set(acc["BillingCountry"]) <= {
        "China",
        "中国",
        "PRC",
        "Germany",
        "Deutschland",
        "USA",
        "United States",
        "U.S.A.",
    }
    so = sources["sales_orders"]
    assert so["order_no"].str.fullmatch(r"SO-\d+").all()
    assert so["amount"].str.fullmatch(r"\d+\.\d\d").all()
    assert set(so["status"]) <= {"open", "in_progress", "completed", "cancelled"}


def test_sales_customers_gbk(demo, sources):
    _, _, p = demo
    raw = p["sales_customers"].read_bytes()
    text = raw.decode("gbk")
    assert text.splitlines()[0].split(",") == SALES_CUSTOMER_COLS
    assert "?" not in text
    sales = sources["sales"]
    assert sales["客户编号"].str.fullmatch(r"S-\d{6}").all()
    assert sales["更新时间"].str.fullmatch(r"\d{4}/\d\d/\d\d \d\d:\d\d").all()
    assert (sales["国家"].isin(["中国", "CN"])).mean() > 0.6  # mostly Chinese customers


def test_service_jsonl(sources):
    recs = sources["service"]
    assert all(r["id"].startswith("SV-") for r in recs)
    assert {r["kind"] for r in recs} == {"organisation", "contact"}
    for r in recs:
        assert set(r["address"]) == {"street", "city", "zip", "country"}
        assert "T" in r["updated_at"]
        if r["kind"] == "contact":
            assert r["last_name"]


def test_ground_truth_matches_sources(sources, truth):
    gt = truth["customers"]
    ids = {
        "erp": set(sources["kna1"]["KUNNR"]),
        "crm": set(sources["account"]["Id"]),
        "sales": set(sources["sales"]["客户编号"]),
        "service": {r["id"] for r in sources["service"]},
    }
    for system, source_ids in ids.items():
        gt_ids = gt.loc[gt["source_system"] == system, "source_id"]
        assert len(gt_ids) == len(source_ids)
        assert set(gt_ids) == source_ids
    assert gt["entity_id"].nunique() == N_CUSTOMERS  # every entity in some system


def test_coverage_and_duplicate_rates(truth, demo):
    gt = truth["customers"]
    per_system = gt.groupby("source_system")["entity_id"]
    entities = per_system.nunique() / N_CUSTOMERS
    assert 0.75 < entities["erp"] < 0.88
    assert 0.53 < entities["crm"] < 0.67
    assert 0.33 < entities["sales"] < 0.47
    assert 0.24 < entities["service"] < 0.36
    dup_rate = (per_system.count() - per_system.nunique()) / per_system.nunique()
    for system, rate in dup_rate.items():
        assert 0.025 < rate < 0.08, system
    _, summary, _ = demo
    assert summary["records"] == gt["source_system"].value_counts().to_dict()


def test_orders_in_ground_truth(sources, truth):
    orders = truth["orders"]
    assert orders["order_number"].is_unique
    vbak_numbers = set(sources["vbak"]["VBELN"].str.lstrip("0"))
    sales_numbers = set(sources["sales_orders"]["order_no"].str[3:])
    assert vbak_numbers == set(orders.loc[orders["in_erp"] == "True", "order_number"])
    assert sales_numbers == set(orders.loc[orders["in_sales"] == "True", "order_number"])
    assert len(orders) / N_CUSTOMERS > 1.3  # about two orders per entity (ERP customers)
    assert pd.to_numeric(orders["amount"]).gt(0).all()
