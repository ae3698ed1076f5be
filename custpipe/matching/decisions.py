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
    """Store a decision about two records given as 'source_system:source_id'."""
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
    forbidden: list[tuple[int, int]] | list[tuple[int, int, str]],
    skipped: list[tuple[int, int, str]] | None = None,
) -> dict[int, int]:
    """Union-find over `edges` (a, b, priority: lower first) that never joins a forbidden pair
    (a, b, optionally the reason). Each edge left out is appended to `skipped` (when given)
    as (a, b, the reason of one forbidden pair it would have joined; '' if none was given).

    Returns node -> label (the smallest node of its component).
    """
    parent = {n: n for n in nodes}
    members = {n: {n} for n in nodes}
    banned: dict[int, dict[int, str]] = {n: {} for n in nodes}
    for a, b, *reason in forbidden:
        banned[a][b] = banned[b][a] = reason[0] if reason else ""

    def root(n: int) -> int:
        while parent[n] != n:
            parent[n] = parent[parent[n]]
            n = parent[n]
        return n

    for a, b, _ in sorted(edges, key=lambda e: (e[2], min(e[0], e[1]), max(e[0], e[1]))):
        ra, rb = root(a), root(b)
        if ra == rb:
            continue
        small, big = sorted((ra, rb), key=lambda r: len(members[r]))
        clash = next(
            (banned[n][m] for n in members[small] for m in banned[n].keys() & members[big]),
            None,
        )
        if clash is not None:  # the edge would join two records known to be different
            if skipped is not None:
                skipped.append((a, b, clash))
            continue
        parent[small] = big
        members[big] |= members.pop(small)
    labels = {}
    for group in members.values():
        label = min(group)
        labels.update(dict.fromkeys(group, label))
    return labels


STEWARD_CANNOT_LINK = "steward cannot-link"


def apply_cannot_links(
    ws: MatchWorkspace, rule_priority: dict[str, int], excluded: pd.DataFrame | None = None
) -> int:
    """Split the clusters of `ws.labels` that hold a cannot-linked pair of `ws.decided` or an
    `excluded` pair (a, b, reason; see `exclusions.exclusion_pairs`), rebuilding them from
    `ws.edges`; make `ws.kept_apart` (a, b, rule, reason): the edges left out for an
    exclusion. Return the number of splits."""
    con = ws.con
    excluded = excluded if excluded is not None else pd.DataFrame({"a": [], "b": [], "reason": []})
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {ws.kept_apart} "
        "(a BIGINT, b BIGINT, rule VARCHAR, reason VARCHAR)"
    )
    forbidden = [
        (a, b, STEWARD_CANNOT_LINK)
        for a, b in con.execute(
            f"SELECT a, b FROM {ws.decided} WHERE decision = 'cannot_link'"
        ).fetchall()
    ] + list(
        zip(excluded["a"].astype(int), excluded["b"].astype(int), excluded["reason"], strict=True)
    )
    if not forbidden:
        return 0
    label_of = pd.DataFrame({"a": [f[0] for f in forbidden], "b": [f[1] for f in forbidden]})
    with warehouse.registered(con, "forbidden_pairs", label_of):
        conflicts = con.execute(f"""
            SELECT DISTINCT la.label FROM forbidden_pairs f
            JOIN {ws.labels} la ON la.node = f.a JOIN {ws.labels} lb ON lb.node = f.b
            WHERE la.label = lb.label
        """).fetchall()
    if not conflicts:
        return 0
    clusters = [c[0] for c in conflicts]
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
    edges = [(a, b, rule_priority.get(rule, len(rule_priority))) for a, b, rule in rows]
    rule_of = {}
    for a, b, rule in rows:  # the strongest rule of each edge names it in the review queue
        key = (min(a, b), max(a, b))
        if key not in rule_of or rule_priority.get(rule, 99) < rule_priority.get(rule_of[key], 99):
            rule_of[key] = rule
    in_scope = set(nodes)
    skipped: list[tuple[int, int, str]] = []
    labels = constrained_components(
        nodes,
        edges,
        [(a, b, why) for a, b, why in forbidden if a in in_scope and b in in_scope],
        skipped,
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
