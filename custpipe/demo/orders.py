"""Orders in ERP (VBAK) and the sales system, with injected discrepancies."""

from __future__ import annotations

import datetime as dt
from collections import Counter

import numpy as np
import pandas as pd

from custpipe.demo.rates import ErrorRates
from custpipe.demo.reference import CURRENCY_OF_COUNTRY, ERP_STATUS, ORDER_STATUSES

FIRST_ORDER_NUMBER = 500_001


def _erp_customer_numbers(erp: pd.DataFrame, n_entities: int) -> tuple[np.ndarray, np.ndarray]:
    """Per entity: (the ERP number its orders belong to, another of its numbers or '').

    The first is the lowest active customer number — the one the golden record carries —
    or the lowest number when every record is deleted (then there is no other: the
    pipeline has no customer number to point the orders to).
    """
    rec = pd.DataFrame(
        {"row": erp["ent_row"].to_numpy(), "id": erp["source_id"].to_numpy(dtype=object)}
    )
    active = rec[~erp["deleted"].to_numpy(dtype=bool)].groupby("row")["id"].min()
    keep = rec.groupby("row")["id"].min()
    keep.update(active)
    others = rec[rec["row"].isin(active.index) & rec["id"].ne(rec["row"].map(keep))]
    keep_ids = np.full(n_entities, "", dtype=object)
    other_ids = np.full(n_entities, "", dtype=object)
    keep_ids[keep.index.to_numpy()] = keep.to_numpy()
    other = others.groupby("row")["id"].min()
    other_ids[other.index.to_numpy()] = other.to_numpy()
    return keep_ids, other_ids


def _primary_ids(rec: pd.DataFrame, n_entities: int) -> np.ndarray:
    """source_id of each entity's primary (non-duplicate) record, '' if none."""
    out = np.full(n_entities, "", dtype=object)
    prim = rec[~rec["is_dup"]]
    out[prim["ent_row"].to_numpy()] = prim["source_id"].to_numpy()
    return out


def _order_lines(
    number: np.ndarray, cents: np.ndarray, rates: ErrorRates, rng: np.random.Generator
) -> tuple[pd.DataFrame, np.ndarray]:
    """ERP order items (VBAP): 1-3 lines per order adding up to the order's amount, except
    for a `line_total_mismatch` share of the orders. Returns (items, numbers of those)."""
    k = rng.integers(1, 4, len(number))
    order = np.repeat(np.arange(len(number)), k)
    weights = rng.random(len(order)) + 0.2
    share = weights / np.bincount(order, weights)[order]
    line_cents = np.floor(share * cents[order]).astype(np.int64)
    last = np.cumsum(k) - 1  # the last line takes the rounding rest
    line_cents[last] += cents - np.bincount(order, line_cents, minlength=len(number)).astype(
        np.int64
    )
    bad = rng.random(len(number)) < rates.line_total_mismatch
    off = np.maximum(100, (cents * rng.uniform(0.05, 0.5, len(number))).astype(np.int64))
    line_cents[last[bad]] += off[bad]
    position = np.arange(len(order)) - np.repeat(np.cumsum(k) - k, k) + 1
    items = pd.DataFrame(
        {
            "VBELN": np.char.zfill(number[order].astype(str), 10).astype(object),
            "POSNR": np.char.zfill((position * 10).astype(str), 6).astype(object),
            "MATNR": np.char.add("M-", rng.integers(100000, 100400, len(order)).astype(str)),
            "KWMENG": rng.integers(1, 21, len(order)).astype(float),
            "NETWR": line_cents / 100.0,
        }
    )
    items["MATNR"] = items["MATNR"].astype(object)
    return items, number[bad]


def _other_status(status: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    idx = pd.Series(status).map({s: i for i, s in enumerate(ORDER_STATUSES)}).to_numpy()
    shifted = (idx + rng.integers(1, 4, len(idx))) % 4
    return np.asarray(ORDER_STATUSES, dtype=object)[shifted]


def _cents(x: np.ndarray) -> np.ndarray:
    """Integer cents -> '1234.50'."""
    return np.array([f"{c // 100}.{c % 100:02d}" for c in x.tolist()], dtype=object)


def generate_orders(
    ent: pd.DataFrame,
    member: dict[str, np.ndarray],
    records: dict[str, pd.DataFrame],
    rates: ErrorRates,
    business_date: dt.date,
    rng: np.random.Generator,
    counts: Counter,
    orders_per_customer: float = 2.0,
) -> dict[str, pd.DataFrame]:
    """Return frames 'truth', 'discrepancies', 'vbak', 'vbap' and 'sales' (source formats).

    Each ERP customer places a Poisson(`orders_per_customer`) number of orders.
    """
    n_ent = len(ent)
    buyers = np.flatnonzero(member["erp"])
    per = rng.poisson(orders_per_customer, len(buyers))
    e = np.repeat(buyers, per)
    n = len(e)
    age = rng.integers(1, 91, n)
    date = np.datetime64(business_date, "D") - age.astype("timedelta64[D]")
    order = np.lexsort((rng.random(n), date))
    e, age, date = e[order], age[order], date[order]
    number = FIRST_ORDER_NUMBER + np.arange(n)
    cents = np.maximum(1000, np.round(np.exp(rng.normal(np.log(2000), 1.0, n)) * 100)).astype(
        np.int64
    )
    currency = pd.Series(ent["country"].to_numpy()[e]).map(CURRENCY_OF_COUNTRY).to_numpy()
    u, v, w = rng.random(n), rng.random(n), rng.random(n)
    status = np.where(
        v < np.minimum(0.95, age / 60.0), "completed", np.where(w < 0.5, "open", "in_progress")
    ).astype(object)
    status[u < 0.05] = "cancelled"

    in_sales_cust = member["sales"][e]
    in_erp = np.ones(n, bool)
    in_sales = in_sales_cust.copy()
    miss_erp = in_sales_cust & (rng.random(n) < rates.missing_in_erp)
    in_erp[miss_erp] = False
    miss_sales = in_sales_cust & ~miss_erp & (rng.random(n) < rates.missing_in_sales)
    in_sales[miss_sales] = False
    both = in_erp & in_sales

    erp_status, sales_status = status.copy(), status.copy()
    st_mis = both & (rng.random(n) < rates.status_mismatch)
    erp_side = rng.random(n) < 0.5
    wrong = _other_status(status, rng)
    erp_status[st_mis & erp_side] = wrong[st_mis & erp_side]
    sales_status[st_mis & ~erp_side] = wrong[st_mis & ~erp_side]

    erp_cents, sales_cents = cents.copy(), cents.copy()
    am_mis = both & (rng.random(n) < rates.amount_mismatch)
    delta = np.maximum(100, (cents * rng.uniform(0.02, 0.3, n)).astype(np.int64))
    delta = np.where(rng.random(n) < 0.5, -np.minimum(delta, cents - 100), delta)
    delta = np.where(delta == 0, 100, delta)
    side = rng.random(n) < 0.5
    erp_cents[am_mis & side] += delta[am_mis & side]
    sales_cents[am_mis & ~side] += delta[am_mis & ~side]

    keep_ids, dup_ids = _erp_customer_numbers(records["erp"], n_ent)
    kunnr = keep_ids[e]
    has_dup = dup_ids[e] != ""
    dup_cust = in_erp & has_dup & (rng.random(n) < rates.duplicate_customer_order)
    primary_kunnr = kunnr.copy()
    kunnr[dup_cust] = dup_ids[e][dup_cust]
    sales_code = _primary_ids(records["sales"], n_ent)[e]

    num_s = number.astype(str).astype(object)
    iso_day = np.datetime_as_string(date, unit="D")
    disc = []
    erp_code = pd.Series(erp_status).map(ERP_STATUS).to_numpy()

    def add(kind: str, mask: np.ndarray, detail) -> None:
        counts[kind] += int(mask.sum())
        disc.append(pd.DataFrame({"order_number": num_s[mask], "kind": kind, "detail": detail}))

    add(
        "status_mismatch",
        st_mis,
        [f"erp={a} sales={b}" for a, b in zip(erp_code[st_mis], sales_status[st_mis], strict=True)],
    )
    add(
        "amount_mismatch",
        am_mis,
        [
            f"erp={a / 100:.2f} sales={b / 100:.2f}"
            for a, b in zip(erp_cents[am_mis], sales_cents[am_mis], strict=True)
        ],
    )
    add("missing_in_erp", miss_erp, "order only in sales")
    add("missing_in_sales", miss_sales, "order only in erp")
    add(
        "duplicate_customer",
        dup_cust,
        [
            f"KUNNR {a} is a duplicate of {b}"
            for a, b in zip(kunnr[dup_cust], primary_kunnr[dup_cust], strict=True)
        ],
    )
    vbap, bad_lines = _order_lines(number[in_erp], erp_cents[in_erp], rates, rng)
    add("line_total_mismatch", np.isin(number, bad_lines), "ERP lines do not add up to NETWR")
    discrepancies = pd.concat(disc, ignore_index=True)
    discrepancies["_n"] = discrepancies["order_number"].astype(np.int64)
    discrepancies = discrepancies.sort_values(["_n", "kind"], kind="stable").drop(columns="_n")

    truth = pd.DataFrame(
        {
            "order_number": num_s,
            "entity_id": ent["entity_id"].to_numpy()[e],
            "in_erp": in_erp,
            "in_sales": in_sales,
            "status": status,
            "amount": _cents(cents),
            "currency": currency,
        }
    )
    vbak = pd.DataFrame(
        {
            "VBELN": np.char.zfill(number.astype(str), 10).astype(object),
            "KUNNR": kunnr,
            "AUDAT": np.char.replace(iso_day, "-", "").astype(object),
            "NETWR": erp_cents / 100.0,
            "WAERK": currency,
            "GBSTK": erp_code,
            "AEDAT": np.char.replace(iso_day, "-", "").astype(object),  # unchanged since entry
        }
    )[in_erp]
    sales = pd.DataFrame(
        {
            "order_no": "SO-" + num_s,
            "customer_code": sales_code,
            "order_date": iso_day.astype(object),
            "amount": _cents(sales_cents),
            "currency": currency,
            "status": sales_status,
        }
    )[in_sales]
    vbap["AEDAT"] = vbak.set_index("VBELN")["AEDAT"].reindex(vbap["VBELN"]).to_numpy()
    return {
        "truth": truth,
        "discrepancies": discrepancies.reset_index(drop=True),
        "vbak": vbak.reset_index(drop=True),
        "vbap": vbap,
        "sales": sales.reset_index(drop=True),
    }
