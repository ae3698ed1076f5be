"""Shared fixtures: one demo dataset of 2,000 customers per test session."""

from __future__ import annotations

import json
import sqlite3

import pandas as pd
import pytest

from custpipe.demo.generate import generate_demo, output_paths

N_CUSTOMERS = 2000


@pytest.fixture(scope="session")
def demo(tmp_path_factory):
    """Generate the demo once; return (out_dir, summary, paths)."""
    out = tmp_path_factory.mktemp("demo")
    summary = generate_demo(out, N_CUSTOMERS, seed=42)
    return out, summary, output_paths(out)


@pytest.fixture(scope="session")
def sources(demo):
    """All source tables as DataFrames (strings kept as strings)."""
    _, _, p = demo
    with sqlite3.connect(p["erp"]) as con:
        kna1 = pd.read_sql("SELECT * FROM KNA1", con)
        vbak = pd.read_sql("SELECT * FROM VBAK", con)
        vbap = pd.read_sql("SELECT * FROM VBAP", con)
    with sqlite3.connect(p["crm"]) as con:
        account = pd.read_sql("SELECT * FROM Account", con)
    sales = pd.read_csv(p["sales_customers"], encoding="gbk", dtype=str, keep_default_na=False)
    sales_orders = pd.read_csv(p["sales_orders"], dtype=str, keep_default_na=False)
    with open(p["service"], encoding="utf-8") as fh:
        service = [json.loads(line) for line in fh]
    return {
        "kna1": kna1,
        "vbak": vbak,
        "vbap": vbap,
        "account": account,
        "sales": sales,
        "sales_orders": sales_orders,
        "service": service,
    }


@pytest.fixture(scope="session")
def truth(demo):
    """Ground-truth frames."""
    _, _, p = demo
    read = {"dtype": str, "keep_default_na": False}
    return {
        "customers": pd.read_csv(p["gt_customers"], **read),
        "orders": pd.read_csv(p["gt_orders"], **read),
        "discrepancies": pd.read_csv(p["gt_discrepancies"], **read),
    }
