"""Exclusions: two records with different valid strong identifiers are different customers.

In a customer master two different valid tax IDs mean two legal entities, and two different
valid national ID numbers two people, whatever else the records share (an e-mail address, a
phone, a name). Such pairs are kept apart like a steward's cannot-link
(`decisions.apply_cannot_links`) and the links that would have joined them go to the review
queue instead. A steward's must-link on the pair overrides the exclusion.
"""

from __future__ import annotations

import pandas as pd

from custpipe import warehouse
from custpipe.matching.workspace import MatchWorkspace
from custpipe.standardize.national_ids import national_id_valid

REASONS = {
    "tax_id": "different valid tax IDs",
    "national_id": "different valid national IDs",
}

_CONFLICTING = """
    WITH ids AS (
        SELECT l.label, n.node, {value} AS v
        FROM {labels} l JOIN {nodes} n USING (node)
        WHERE {where}
    ),
    conflicted AS (SELECT label FROM ids GROUP BY label HAVING count(DISTINCT v) > 1)
    SELECT label, node, v FROM ids WHERE label IN (SELECT label FROM conflicted)
"""


def _conflicting_values(ws: MatchWorkspace, identifier: str) -> pd.DataFrame:
    """(label, node, v): the valid values of `identifier` in clusters holding two different."""
    if identifier == "tax_id":
        value, where = "tax_id", "n.tax_id_valid AND n.tax_id IS NOT NULL"
    else:  # national IDs: normalised here, validated in Python by their country's checksum
        value = "upper(regexp_replace(n.national_id, '[^0-9A-Za-z]', '', 'g'))"
        where = "n.national_id IS NOT NULL"
    sql = _CONFLICTING.format(value=value, where=where, labels=ws.labels, nodes=ws.nodes)
    frame = ws.con.execute(sql).df()
    if identifier == "national_id" and len(frame):
        countries = dict(
            ws.con.execute(
                f"SELECT node, country FROM {ws.nodes} WHERE list_contains($n, node)",
                {"n": frame["node"].tolist()},
            ).fetchall()
        )
        valid = [
            national_id_valid(countries.get(n), v)
            for n, v in zip(frame["node"], frame["v"], strict=True)
        ]
        frame = frame[valid]
        frame = frame[frame.groupby("label")["v"].transform("nunique") > 1]
    return frame


def exclusion_pairs(ws: MatchWorkspace, identifiers: tuple[str, ...]) -> pd.DataFrame:
    """Pairs (a, b, reason) of records in one cluster of `ws.labels` whose valid values of
    one of `identifiers` differ, less the pairs a steward must-linked (`ws.decided`)."""
    parts = []
    for identifier in identifiers:
        values = _conflicting_values(ws, identifier)
        if values.empty:
            continue
        pairs = values.merge(values, on="label", suffixes=("_a", "_b"))
        pairs = pairs[(pairs["node_a"] < pairs["node_b"]) & (pairs["v_a"] != pairs["v_b"])]
        parts.append(
            pd.DataFrame(
                {"a": pairs["node_a"], "b": pairs["node_b"], "reason": REASONS[identifier]}
            )
        )
    if not parts:
        return pd.DataFrame({"a": [], "b": [], "reason": []})
    pairs = pd.concat(parts, ignore_index=True).drop_duplicates(["a", "b"])
    with warehouse.registered(ws.con, "excluded_pairs", pairs):
        overridden = ws.con.execute(f"""
            SELECT e.a, e.b FROM excluded_pairs e JOIN {ws.decided} d
              ON least(d.a, d.b) = e.a AND greatest(d.a, d.b) = e.b
            WHERE d.decision = 'must_link'
        """).fetchall()
    if overridden:
        keep = ~pd.Series(list(zip(pairs["a"], pairs["b"], strict=True))).isin(overridden)
        pairs = pairs[keep.values]
    return pairs.reset_index(drop=True)
