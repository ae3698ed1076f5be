"""Injected order discrepancies are exactly the disagreements found in the data."""

from __future__ import annotations

import pandas as pd
import pytest

ERP_TO_STATUS = {"A": "open", "B": "in_progress", "C": "completed", "R": "cancelled"}


@pytest.fixture(scope="module")
def joined(sources, truth):
    """One row per order: truth, ERP side and sales side (NaN when absent)."""
    gt = truth["customers"]
    ent_of = dict(zip(gt["source_system"] + ":" + gt["source_id"], gt["entity_id"], strict=True))
    vbak = sources["vbak"].assign(order_number=lambda d: d["VBELN"].str.lstrip("0"))
    vbak["erp_status"] = vbak["GBSTK"].map(ERP_TO_STATUS)
    vbak["erp_entity"] = ("erp:" + vbak["KUNNR"]).map(ent_of)
    so = sources["sales_orders"].assign(order_number=lambda d: d["order_no"].str[3:])
    so["sales_amount"] = pd.to_numeric(so["amount"])
    so["sales_entity"] = ("sales:" + so["customer_code"]).map(ent_of)
    df = truth["orders"].merge(vbak, on="order_number", how="left")
    so = so.rename(columns={"status": "sales_status", "currency": "sales_currency"})
    df = df.merge(so.drop(columns="amount"), on="order_number", how="left")
    return df


def _listed(truth, kind: str) -> set[str]:
    d = truth["discrepancies"]
    return set(d.loc[d["kind"] == kind, "order_number"])


def test_kinds_present(truth, demo):
    kinds = set(truth["discrepancies"]["kind"])
    assert kinds == {
        "status_mismatch",
        "amount_mismatch",
        "missing_in_erp",
        "missing_in_sales",
        "duplicate_customer",
        "line_total_mismatch",
    }
    _, summary, _ = demo
    assert summary["discrepancies"] == truth["discrepancies"]["kind"].value_counts().to_dict()


def test_orders_reference_the_right_entity(joined):
    erp = joined[joined["VBELN"].notna()]
    assert (erp["erp_entity"] == erp["entity_id"]).all()
    sales = joined[joined["order_no"].notna()]
    assert (sales["sales_entity"] == sales["entity_id"]).all()


def test_status_mismatch(joined, truth):
    both = joined[joined["VBELN"].notna() & joined["order_no"].notna()]
    differs = set(both.loc[both["erp_status"] != both["sales_status"], "order_number"])
    assert differs == _listed(truth, "status_mismatch")
    assert differs


def test_amount_mismatch(joined, truth):
    both = joined[joined["VBELN"].notna() & joined["order_no"].notna()]
    gap = (both["NETWR"] - both["sales_amount"]).abs()
    assert set(both.loc[gap > 0.01, "order_number"]) == _listed(truth, "amount_mismatch")
    assert (gap[gap <= 0.01] < 0.005).all()


def test_missing_orders(joined, truth):
    only_sales = joined[joined["VBELN"].isna()]
    assert set(only_sales["order_number"]) == _listed(truth, "missing_in_erp")
    sales_entities = set(truth["customers"].query("source_system == 'sales'")["entity_id"])
    only_erp = joined[joined["order_no"].isna() & joined["entity_id"].isin(sales_entities)]
    assert set(only_erp["order_number"]) == _listed(truth, "missing_in_sales")


def test_duplicate_customer(joined, truth, sources):
    """An order is on a duplicate when its customer is not the entity's lowest active ERP
    number (the one its golden record carries); an entity without an active record has none."""
    gt = truth["customers"]
    erp_ids = gt[gt["source_system"] == "erp"]
    active = set(sources["kna1"].loc[sources["kna1"]["LOEVM"] != "X", "KUNNR"])
    kept = erp_ids[erp_ids["source_id"].isin(active)].groupby("entity_id")["source_id"].min()
    erp = joined[joined["VBELN"].notna()]
    on_dup = erp["entity_id"].map(kept).notna() & (erp["KUNNR"] != erp["entity_id"].map(kept))
    assert set(erp.loc[on_dup, "order_number"]) == _listed(truth, "duplicate_customer")
    assert on_dup.any()


def test_undisputed_orders_agree_with_truth(joined, truth):
    listed = set(truth["discrepancies"]["order_number"])
    ok = joined[~joined["order_number"].isin(listed)]
    erp = ok[ok["VBELN"].notna()]
    assert (erp["erp_status"] == erp["status"]).all()
    assert ((erp["NETWR"] - pd.to_numeric(erp["amount"])).abs() < 0.005).all()
    sales = ok[ok["order_no"].notna()]
    assert (sales["sales_status"] == sales["status"]).all()
    assert ((sales["sales_amount"] - pd.to_numeric(sales["amount"])).abs() < 0.005).all()
    assert (sales["sales_currency"] == sales["currency"]).all()
    assert (erp["WAERK"] == erp["currency"]).all()


def test_order_lines_add_up_except_where_injected(sources, truth):
    vbap, vbak = sources["vbap"], sources["vbak"]
    totals = vbap.groupby("VBELN")["NETWR"].sum()
    gap = (vbak.set_index("VBELN")["NETWR"] - totals.reindex(vbak["VBELN"]).to_numpy()).abs()
    assert set(vbak["VBELN"]) == set(vbap["VBELN"])  # every ERP order has lines
    off = {v.lstrip("0") for v in gap[gap > 0.005].index}
    assert off == _listed(truth, "line_total_mismatch") and off
    assert vbap.groupby("VBELN").size().between(1, 3).all()
