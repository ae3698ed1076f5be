import json
import sqlite3

import pandas as pd

from custpipe.demo.changes import change_sources
from custpipe.demo.generate import generate_demo, output_paths
from custpipe_tests.conftest import BUSINESS_DATE


def test_change_sources_touches_the_requested_share_of_every_system(tmp_path):
    out = tmp_path / "sources"
    summary = generate_demo(out, customers=300, seed=3, business_date=BUSINESS_DATE)
    paths = output_paths(out, BUSINESS_DATE)
    before_sales = pd.read_csv(
        paths["sales_customers"], dtype=str, encoding="gbk", keep_default_na=False
    )
    counts = change_sources(out, BUSINESS_DATE, fraction=0.1)
    assert counts == {s: round(n * 0.1) for s, n in summary["records"].items()}

    con = sqlite3.connect(paths["erp"])
    changed = con.execute(
        "SELECT count(*) FROM KNA1 WHERE STRAS LIKE '% 1a' AND AEDAT = '20261127'"
    ).fetchone()[0]
    con.close()
    assert changed == counts["erp"]
    con = sqlite3.connect(paths["crm"])
    changed = con.execute(
        "SELECT count(*) FROM Account WHERE BillingStreet LIKE '% 1a' AND "
        "LastModifiedDate = '2026-11-27T23:30:00.000+0000'"
    ).fetchone()[0]
    con.close()
    assert changed == counts["crm"]
    after_sales = pd.read_csv(
        paths["sales_customers"], dtype=str, encoding="gbk", keep_default_na=False
    )
    diff = (before_sales != after_sales).any(axis=1)
    assert diff.sum() == counts["sales"] and list(after_sales.columns) == list(before_sales.columns)
    assert after_sales.loc[diff, "地址"].str.endswith(" 1a").all()
    # the same moment as the other systems' 23:30 UTC, in the sales system's China local time
    assert set(after_sales.loc[diff, "更新时间"]) == {"2026/11/28 07:30"}
    service = [json.loads(line) for line in paths["service"].read_text("utf-8").splitlines()]
    assert sum(r["address"]["street"].endswith(" 1a") for r in service) == counts["service"]
