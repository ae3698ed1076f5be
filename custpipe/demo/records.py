"""System coverage, within-system duplicates, record ids and record timestamps."""

from __future__ import annotations

import datetime as dt

import numpy as np
import pandas as pd

SYSTEMS = ("erp", "crm", "sales", "service")
_SF_ALPHABET = np.array(list("0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"))
_SF_SUFFIX = "ABCDEFGHIJKLMNOPQRSTUVWXYZ012345"


def assign_systems(ent: pd.DataFrame, rng: np.random.Generator) -> dict[str, np.ndarray]:
    """Boolean membership per system; every entity is in at least one system."""
    n = len(ent)
    zh = (ent["country"] == "CN").to_numpy()
    member = {
        "erp": rng.random(n) < 0.8,
        "crm": rng.random(n) < 0.6,
        "sales": rng.random(n) < np.where(zh, 0.8, 0.13),
        "service": rng.random(n) < 0.3,
    }
    nowhere = ~(member["erp"] | member["crm"] | member["sales"] | member["service"])
    member["erp"] = member["erp"] | nowhere
    return member


def salesforce_ids(seq: np.ndarray, offset: int) -> np.ndarray:
    """18-character Salesforce Account ids ('001…') with the case-safe checksum suffix."""
    n = len(seq)
    num = seq.astype(np.int64) + offset
    digits = np.empty((n, 6), dtype=np.int64)
    for j in range(5, -1, -1):
        digits[:, j] = num % 62
        num //= 62
    body = _SF_ALPHABET[digits]
    prefix = np.array(list("0015g0000"))
    chars = np.concatenate([np.broadcast_to(prefix, (n, 9)), body], axis=1)
    upper = (chars >= "A") & (chars <= "Z")
    weights = np.array([1, 2, 4, 8, 16])
    suffix = np.stack(
        [(upper[:, 5 * k : 5 * k + 5] * weights).sum(axis=1) for k in range(3)], axis=1
    )
    full = np.concatenate([chars, np.array(list(_SF_SUFFIX))[suffix]], axis=1)
    return np.array(["".join(row) for row in full], dtype=object)


def make_ids(system: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Source ids in each system's own format, in record creation order."""
    seq = np.arange(1, n + 1)
    if system == "erp":
        return np.char.zfill((100_000 + seq).astype(str), 10).astype(object)
    if system == "crm":
        return salesforce_ids(seq, int(rng.integers(1_000_000, 50_000_000)))
    prefix = "S-" if system == "sales" else "SV-"
    return np.char.add(prefix, np.char.zfill(seq.astype(str), 6)).astype(object)


def build_records(
    ent: pd.DataFrame,
    system: str,
    member: np.ndarray,
    dup_rate: float,
    business_date: dt.date,
    rng: np.random.Generator,
) -> pd.DataFrame:
    """Entity rows of one system plus duplicates, ordered by creation, with ids and dates."""
    rows = np.flatnonzero(member)
    dups = rows[rng.random(len(rows)) < dup_rate]
    ent_row = np.concatenate([rows, dups])
    is_dup = np.concatenate([np.zeros(len(rows), bool), np.ones(len(dups), bool)])
    rec = ent.iloc[ent_row].reset_index(drop=True)
    rec["ent_row"] = ent_row
    rec["is_dup"] = is_dup
    end = np.datetime64(business_date, "D") - np.timedelta64(1, "D")
    created = rec["created"].to_numpy().astype("datetime64[D]")
    span = (end - created).astype(int)
    # duplicates are created later than the primary record
    # primaries within 90 days of the entity's creation, duplicates strictly later
    jitter = (rng.random(len(rec)) * np.minimum(span, 90)).astype(int)
    later = np.minimum(90 + (rng.random(len(rec)) * np.maximum(span - 90, 0)).astype(int), span)
    lag = np.where(is_dup, later, jitter)
    created = np.minimum(created + lag.astype("timedelta64[D]"), end)
    left = (end - created).astype(int)
    upd = created + (rng.random(len(rec)) * (left + 1)).astype(int).astype("timedelta64[D]")
    secs = rng.integers(8 * 3600, 19 * 3600, len(rec)).astype("timedelta64[s]")
    rec["rec_created"] = created
    rec["rec_updated"] = upd.astype("datetime64[s]") + secs
    order = np.lexsort((rng.random(len(rec)), is_dup, created))
    rec = rec.iloc[order].reset_index(drop=True)
    rec["source_id"] = make_ids(system, len(rec), rng)
    return rec
