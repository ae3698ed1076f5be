"""Exclusions: two records with different valid strong identifiers are different customers.

In a customer master two different valid tax IDs mean two legal entities, and two different
valid national ID numbers two people, whatever else the records share (an e-mail address, a
phone, a name). Clusters holding such values are rebuilt like a steward's cannot-link
(`decisions.apply_cannot_links`): no link may join two parts whose values conflict, and each
link left out goes to the review queue instead. A steward's must-link overrides.

Two valid values conflict only when more than one edit or one transposition of neighbours
apart: some schemes carry no check digit (a US EIN), and a one-digit typo of the same number
must not split a customer.
"""

from __future__ import annotations

import jellyfish
import pandas as pd

from custpipe.matching.workspace import MatchWorkspace, staged_rows
from custpipe.standardize.national_ids import national_id_valid

REASONS = {
    "tax_id": "would join different valid tax IDs",
    "national_id": "would join different valid national IDs",
}

_VALUES = """
    WITH ids AS (
        SELECT l.label, n.node, n.country, {value} AS v
        FROM {labels} l JOIN {nodes} n USING (node)
        WHERE {where}
    ),
    several AS (SELECT label FROM ids GROUP BY label HAVING count(DISTINCT v) > 1)
    SELECT label, node, country, v FROM ids WHERE label IN (SELECT label FROM several)
    ORDER BY label, node
"""


def conflict(left: set[str], right: set[str]) -> bool:
    """Whether some value of `left` and some of `right` are more than one edit or one
    transposition of neighbours apart."""
    return any(jellyfish.damerau_levenshtein_distance(x, y) > 1 for x in left for y in right)


def _values(ws: MatchWorkspace, identifier: str) -> pd.DataFrame:
    """(label, node, value): the valid values of `identifier` in clusters holding two or more
    distinct ones."""
    if identifier == "tax_id":
        value, where = "tax_id", "n.tax_id_valid AND n.tax_id IS NOT NULL"
    else:  # national IDs: normalised here, validated in Python by their country's checksum
        value = "upper(regexp_replace(n.national_id, '[^0-9A-Za-z]', '', 'g'))"
        where = "n.national_id IS NOT NULL"
    rows = staged_rows(ws, ws.labels)
    sql = _VALUES.format(value=value, where=where, labels=ws.labels, nodes=rows)
    frame = ws.con.execute(sql).df()
    if identifier == "national_id" and len(frame):
        valid = [national_id_valid(c, v) for c, v in zip(frame["country"], frame["v"], strict=True)]
        frame = frame[valid]
    return frame[["label", "node", "v"]].rename(columns={"v": "value"})


def conflicting_identifiers(ws: MatchWorkspace, identifiers: tuple[str, ...]) -> pd.DataFrame:
    """(label, node, identifier, value): the valid identifier values of the clusters of
    `ws.labels` where two of them conflict (see :func:`conflict`) — the clusters
    `decisions.apply_cannot_links` rebuilds."""
    parts = []
    for identifier in identifiers:
        values = _values(ws, identifier)
        if values.empty:
            continue
        distinct = values.groupby("label")["value"].agg(lambda v: sorted(set(v)))
        conflicted = [
            label
            for label, vals in distinct.items()
            if any(conflict({x}, set(vals[i + 1 :])) for i, x in enumerate(vals))
        ]
        values = values[values["label"].isin(conflicted)]
        parts.append(values.assign(identifier=identifier))
    columns = ["label", "node", "identifier", "value"]
    if not parts:
        return pd.DataFrame(columns=columns)
    return pd.concat(parts, ignore_index=True)[columns]
