"""Steward decisions: must-link and cannot-link pairs that the next run honours.

A must-link adds an edge between two records. A cannot-link splits a cluster even when a
chain of other links joins the two records: the cluster is rebuilt edge by edge, strongest
rules first, skipping any edge that would put a cannot-linked pair back together.
"""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import pandas as pd

from custpipe import warehouse
from custpipe.matching.exclusions import REASONS, conflict
from custpipe.matching.workspace import MatchWorkspace

DECISIONS = ("must_link", "cannot_link")
MUST_LINK_RULE = "steward_must_link"


def record_decision(
    con: duckdb.DuckDBPyConnection,
    left: str,
    right: str,
    decision: str,
    decided_by: str,
    reason: str,
    decided_at: datetime | None = None,
) -> None:
    """Store a decision about two records given as 'source_system:source_id' directly in
    the warehouse (an open write connection). Stewards' decisions take the steward store
    instead (`custpipe.steward.store`), which the nightly run imports."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
    (ls, _, lid), (rs, _, rid) = left.partition(":"), right.partition(":")
    if not (ls and lid and rs and rid):
        raise ValueError("records are written source_system:source_id, e.g. erp:0000100001")
    if (ls, lid) == (rs, rid):
        raise ValueError("a decision needs two different records")
    if not decided_by.strip() or not reason.strip():
        raise ValueError("a decision needs who made it (--by) and why (--why)")
    row = pd.DataFrame(
        [
            {
                "left_source_system": ls,
                "left_source_id": lid,
                "right_source_system": rs,
                "right_source_id": rid,
                "decision": decision,
                "decided_by": decided_by,
                "decided_at": decided_at or datetime.now(UTC).replace(tzinfo=None),
                "reason": reason,
            }
        ]
    )
    warehouse.append_rows(con, "mdm.steward_decisions", row)


def decisions_digest(con: duckdb.DuckDBPyConnection) -> str:
    """A digest of every stored decision: their count and an order-free hash of the rows."""
    count, digest = con.execute(
        "SELECT count(*), bit_xor(hash(d)) FROM mdm.steward_decisions d"
    ).fetchone()
    return f"{count}:{digest or 0}"


def load_decisions(ws: MatchWorkspace) -> None:
    """Make `ws.decided` (a, b, decision) over `ws.nodes`: the latest decision per pair."""
    ws.con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ws.decided} AS
        WITH latest AS (
            SELECT least(l, r) AS x, greatest(l, r) AS y,
                   arg_max(decision, decided_at) AS decision
            FROM (SELECT left_source_system || ':' || left_source_id AS l,
                         right_source_system || ':' || right_source_id AS r, decision, decided_at
                  FROM mdm.steward_decisions)
            GROUP BY 1, 2
        )
        SELECT a.node AS a, b.node AS b, latest.decision FROM latest
        JOIN {ws.nodes} a ON a.source_system || ':' || a.source_id = latest.x
        JOIN {ws.nodes} b ON b.source_system || ':' || b.source_id = latest.y
    """)


def add_must_links(ws: MatchWorkspace) -> int:
    """Append the must-link pairs of `ws.decided` to `ws.edges`; return how many."""
    ws.con.execute(f"""
        INSERT INTO {ws.edges}
        SELECT a, b, '{MUST_LINK_RULE}' FROM {ws.decided} WHERE decision = 'must_link'
    """)
    return ws.con.execute(
        f"SELECT count(*) FROM {ws.decided} WHERE decision = 'must_link'"
    ).fetchone()[0]


def constrained_components(
    nodes: list[int],
    edges: list[tuple[int, int, int]],
    forbidden: list[tuple[int, int]],
    skipped: list[tuple[int, int, str]] | None = None,
    identifiers: dict[int, dict[str, str]] | None = None,
    overriding: int | None = None,
) -> dict[int, int]:
    """Union-find over `edges` (a, b, priority: lower first) that never joins a forbidden
    (cannot-linked) pair, nor two components holding conflicting `identifiers` (node ->
    {identifier: valid value}; see `exclusions.conflict`) — except by an edge of priority
    `overriding` (a steward's must-link), which only a cannot-link stops. Each edge left out
    is appended to `skipped` (when given) as (a, b, reason): `STEWARD_CANNOT_LINK` or the
    exclusion's reason (`exclusions.REASONS`).

    Each component keeps the set of its identifier values, so the check costs the size of
    the two components, never the square of a cluster.

    Returns node -> label (the smallest node of its component).
    """
    parent = {n: n for n in nodes}
    members = {n: {n} for n in nodes}
    banned: dict[int, set[int]] = {n: set() for n in nodes}
    for a, b in forbidden:
        banned[a].add(b)
        banned[b].add(a)
    values: dict[int, dict[str, set[str]]] = {
        n: {k: {v} for k, v in (identifiers or {}).get(n, {}).items()} for n in nodes
    }

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    def clash(small: int, big: int, priority: int) -> str | None:
        if any(banned[n] & members[big] for n in members[small]):
            return STEWARD_CANNOT_LINK
        if priority == overriding:
            return None
        for key, mine in values[small].items():
            if conflict(mine, values[big].get(key, set())):
                return REASONS[key]
        return None

    for a, b, priority in sorted(edges, key=lambda e: (e[2], min(e[0], e[1]), max(e[0], e[1]))):
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        small, big = sorted((ra, rb), key=lambda r: len(members[r]))
        why = clash(small, big, priority)
        if why is not None:  # the edge would join two records known to be different
            if skipped is not None:
                skipped.append((a, b, why))
            continue
        parent[small] = big
        members[big] |= members.pop(small)
        for key, mine in values.pop(small).items():
            values[big].setdefault(key, set()).update(mine)
    labels = {}
    for group in members.values():
        label = min(group)
        labels.update(dict.fromkeys(group, label))
    return labels


STEWARD_CANNOT_LINK = "steward cannot-link"


def apply_cannot_links(
    ws: MatchWorkspace, rule_priority: dict[str, int], identifiers: pd.DataFrame | None = None
) -> int:
    """Split the clusters of `ws.labels` that hold a cannot-linked pair of `ws.decided` or
    conflicting `identifiers` (label, node, identifier, value; see
    `exclusions.conflicting_identifiers`), rebuilding them from `ws.edges` strongest rule
    first; make `ws.kept_apart` (a, b, rule, reason): the edges an exclusion left out.
    Return the number of splits."""
    con = ws.con
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {ws.kept_apart} "
        "(a BIGINT, b BIGINT, rule VARCHAR, reason VARCHAR)"
    )
    steward = con.execute(f"""
        SELECT DISTINCT la.label FROM {ws.decided} d
        JOIN {ws.labels} la ON la.node = d.a JOIN {ws.labels} lb ON lb.node = d.b
        WHERE d.decision = 'cannot_link' AND la.label = lb.label
    """).fetchall()
    ids = identifiers if identifiers is not None else pd.DataFrame(columns=["label", "node"])
    clusters = sorted({c[0] for c in steward} | {int(x) for x in ids["label"]})
    if not clusters:
        return 0
    nodes = [
        r[0]
        for r in con.execute(
            f"SELECT node FROM {ws.labels} WHERE list_contains($c, label)", {"c": clusters}
        ).fetchall()
    ]
    rows = con.execute(
        f"SELECT e.a, e.b, e.rule FROM {ws.edges} e JOIN {ws.labels} l ON l.node = e.a "
        "WHERE list_contains($c, l.label) ORDER BY e.a, e.b, e.rule",
        {"c": clusters},
    ).fetchall()
    unknown = len(rule_priority)  # a rule without a priority comes last
    edges = [(a, b, rule_priority.get(rule, unknown)) for a, b, rule in rows]
    rule_of: dict[tuple[int, int], str] = {}
    for a, b, rule in rows:  # the strongest rule of each edge names it in the review queue
        key = (min(a, b), max(a, b))
        if key not in rule_of or rule_priority.get(rule, unknown) < rule_priority.get(
            rule_of[key], unknown
        ):
            rule_of[key] = rule
    forbidden = con.execute(
        f"SELECT a, b FROM {ws.decided} WHERE decision = 'cannot_link'"
    ).fetchall()
    in_scope = set(nodes)
    node_ids: dict[int, dict[str, str]] = {}
    for node, key, value in ids[["node", "identifier", "value"]].itertuples(index=False):
        node_ids.setdefault(int(node), {})[key] = value
    skipped: list[tuple[int, int, str]] = []
    labels = constrained_components(
        nodes,
        edges,
        [(a, b) for a, b in forbidden if a in in_scope and b in in_scope],
        skipped,
        node_ids,
        overriding=rule_priority.get(MUST_LINK_RULE),
    )
    kept_apart = pd.DataFrame(
        [
            (min(a, b), max(a, b), rule_of[(min(a, b), max(a, b))], why)
            for a, b, why in skipped
            if why != STEWARD_CANNOT_LINK and labels[a] != labels[b]
        ],
        columns=["a", "b", "rule", "reason"],
    ).drop_duplicates(["a", "b"])
    with warehouse.registered(con, "kept_apart_edges", kept_apart):
        con.execute(
            f"INSERT INTO {ws.kept_apart} SELECT a::BIGINT, b::BIGINT, rule::VARCHAR, "
            "reason::VARCHAR FROM kept_apart_edges"
        )
    relabel = pd.DataFrame({"node": list(labels), "label": list(labels.values())})
    with warehouse.registered(con, "relabel", relabel):
        con.execute(f"""
            UPDATE {ws.labels} SET label = r.label FROM relabel r WHERE {ws.labels}.node = r.node
        """)
    return len(set(labels.values())) - len(clusters)
