"""Change a fraction of the demo source records in place, as a day of data entry would.

Used by the benchmark (the "1 % changed" run) and by tests of incremental runs. Each
chosen record gets a new street (house number appended) and a later update stamp, so
watermark extraction picks it up and the change flows through to the published table.
With `orders`, that fraction of the ERP's order headers (VBAK) and of the sales system's
orders change too: an open order moves on (open -> in progress -> completed), any other
gets its amount corrected by 1.00, so reconciliation has changed orders to work on; a
changed VBAK header gets a later change date (AEDAT), so its watermarked reader finds it.
"""

from __future__ import annotations

import datetime as dt
import json
import sqlite3
from pathlib import Path

import numpy as np
import pandas as pd

from custpipe.demo.generate import output_paths


def _chosen(n: int, fraction: float, rng: np.random.Generator) -> np.ndarray:
    k = round(n * fraction)
    return np.sort(rng.choice(n, size=k, replace=False)) if k else np.array([], dtype=int)


def _change_sqlite(
    path: Path,
    table: str,
    id_col: str,
    street: str,
    stamp_col: str,
    stamp: str,
    fraction: float,
    rng: np.random.Generator,
) -> int:
    con = sqlite3.connect(path)
    try:
        rowids = [r[0] for r in con.execute(f'SELECT rowid FROM "{table}" ORDER BY rowid')]
        picked = [(stamp, rowids[i]) for i in _chosen(len(rowids), fraction, rng)]
        with con:  # by rowid: the demo tables have no index on their business key
            con.executemany(
                f'UPDATE "{table}" SET "{street}" = coalesce("{street}", \'\') || \' 1a\', '
                f'"{stamp_col}" = ? WHERE rowid = ?',
                picked,
            )
        return len(picked)
    finally:
        con.close()


def _change_vbak(path: Path, stamp: str, fraction: float, rng: np.random.Generator) -> int:
    con = sqlite3.connect(path)
    try:
        rowids = [r[0] for r in con.execute('SELECT rowid FROM "VBAK" ORDER BY rowid')]
        picked = [(stamp, rowids[i]) for i in _chosen(len(rowids), fraction, rng)]
        with con:  # A open, B in progress, C completed, R cancelled
            con.executemany(
                "UPDATE VBAK SET NETWR = CASE WHEN GBSTK IN ('A', 'B') THEN NETWR "
                "ELSE round(NETWR + 1.0, 2) END, GBSTK = CASE GBSTK WHEN 'A' THEN 'B' "
                "WHEN 'B' THEN 'C' ELSE GBSTK END, AEDAT = ? WHERE rowid = ?",
                picked,
            )
        return len(picked)
    finally:
        con.close()


_NEXT_STATUS = {"open": "in_progress", "in_progress": "completed"}


def _change_sales_orders(path: Path, fraction: float, rng: np.random.Generator) -> int:
    orders = pd.read_csv(path, dtype=str, keep_default_na=False, encoding="utf-8")
    rows = _chosen(len(orders), fraction, rng)
    status = orders.loc[rows, "status"]
    moves = status.isin(list(_NEXT_STATUS))
    orders.loc[rows, "status"] = status.map(_NEXT_STATUS).where(moves, status)
    amount = pd.to_numeric(orders.loc[rows, "amount"], errors="coerce")
    corrected = (amount + 1.0).map(lambda x: f"{x:.2f}")
    keep = moves | amount.isna()
    orders.loc[rows, "amount"] = orders.loc[rows, "amount"].where(keep, corrected)
    orders.to_csv(path, index=False, encoding="utf-8", lineterminator="\n")
    return len(rows)


def change_sources(
    sources_dir: Path,
    business_date: dt.date,
    fraction: float = 0.01,
    seed: int = 7,
    orders: float = 0.0,
) -> dict[str, int]:
    """Change `fraction` of each demo system's customer records (and `orders` of its orders);
    return the count per system (orders as `<system>_orders`).

    The update stamps are set to the end of `business_date`, later than anything the
    generator wrote for that date, so incremental (watermark) extraction sees them.
    """
    rng = np.random.default_rng(seed)
    paths = output_paths(Path(sources_dir), business_date)
    when = dt.datetime.combine(business_date, dt.time(23, 30))
    counts = {
        "erp": _change_sqlite(
            paths["erp"], "KNA1", "KUNNR", "STRAS", "AEDAT", when.strftime("%Y%m%d"), fraction, rng
        ),
        "crm": _change_sqlite(
            paths["crm"],
            "Account",
            "Id",
            "BillingStreet",
            "LastModifiedDate",
            when.strftime("%Y-%m-%dT%H:%M:%S.000+0000"),
            fraction,
            rng,
        ),
    }
    sales = pd.read_csv(paths["sales_customers"], dtype=str, keep_default_na=False, encoding="gbk")
    rows = _chosen(len(sales), fraction, rng)
    sales.loc[rows, "地址"] = sales.loc[rows, "地址"] + " 1a"
    local = when + dt.timedelta(hours=8)  # the sales system writes China local time (UTC+8)
    sales.loc[rows, "更新时间"] = local.strftime("%Y/%m/%d %H:%M")
    sales.to_csv(paths["sales_customers"], index=False, encoding="gbk", lineterminator="\n")
    counts["sales"] = len(rows)

    lines = paths["service"].read_text(encoding="utf-8").splitlines()
    rows = _chosen(len(lines), fraction, rng)
    for i in rows:
        obj = json.loads(lines[i])
        obj["address"]["street"] = (obj["address"].get("street") or "") + " 1a"
        obj["updated_at"] = when.strftime("%Y-%m-%dT%H:%M:%SZ")
        lines[i] = json.dumps(obj, ensure_ascii=False)
    paths["service"].write_text("\n".join(lines) + "\n", encoding="utf-8")
    counts["service"] = len(rows)
    if orders:  # drawn after the customers: the customer changes of a seed stay the same
        counts["erp_orders"] = _change_vbak(paths["erp"], when.strftime("%Y%m%d"), orders, rng)
        counts["sales_orders"] = _change_sales_orders(paths["sales_orders"], orders, rng)
    return counts
