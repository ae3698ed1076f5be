"""Stable golden IDs: a cluster keeps its ID from run to run; merges and splits are recorded."""

from __future__ import annotations

import hashlib

import duckdb
import pandas as pd

from custpipe import warehouse


def new_golden_id(member_key: str, taken: set[str]) -> str:
    """A deterministic new ID derived from the cluster's first member key, avoiding `taken`."""
    digest = hashlib.sha1(member_key.encode("utf-8")).hexdigest().upper()
    for start in range(0, len(digest) - 12):
        candidate = f"G{digest[start : start + 12]}"
        if candidate not in taken:
            return candidate
    raise RuntimeError("could not derive a free golden id")  # pragma: no cover


def assign_golden_ids(
    members: pd.DataFrame, previous: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give each cluster a golden ID, reusing previous IDs.

    `members`: one row per record with `label` (cluster), `member_key` (source_system:source_id)
    and optionally `trust` (lower = more trusted source; breaks ties between the parts of a split).
    `previous`: last run's xref with `member_key`, `golden_id`.
    Returns (label -> golden_id frame, history events frame with event/golden_id/related_golden_id).

    The readable statement of the rules: consolidation runs :func:`assign_golden_ids_sql`,
    the same rules in DuckDB, and the tests hold the two equal.
    """
    if "trust" not in members:
        members = members.assign(trust=0)
    old = members.merge(previous[["member_key", "golden_id"]], on="member_key", how="left")
    sizes = members.groupby("label").size().rename("size")
    votes = (
        old.dropna(subset=["golden_id"])
        .groupby(["label", "golden_id"])
        .agg(votes=("member_key", "size"), best_trust=("trust", "min"))
        .reset_index()
        .join(sizes, on="label")
    )
    # Each old ID goes to the cluster holding most of its old members; on a tie, the one with
    # the most trusted of those members (the ERP record keeps its ID), then the larger cluster.
    votes = votes.sort_values(
        ["golden_id", "votes", "best_trust", "size", "label"],
        ascending=[True, False, True, False, True],
    )
    owner_of = votes.drop_duplicates("golden_id")
    # Each cluster keeps the old ID it holds most members of (ties: the smaller ID).
    owner = owner_of.sort_values(["label", "votes", "golden_id"], ascending=[True, False, True])
    kept = owner.drop_duplicates("label")[["label", "golden_id"]]
    taken = set(previous["golden_id"]) | set(kept["golden_id"])
    firsts = (
        members.sort_values("member_key").drop_duplicates("label").set_index("label")["member_key"]
    )
    fresh = []
    for label in sorted(set(sizes.index) - set(kept["label"])):
        gid = new_golden_id(firsts[label], taken)
        taken.add(gid)
        fresh.append((label, gid))
    assigned = pd.concat(
        [kept, pd.DataFrame(fresh, columns=["label", "golden_id"])], ignore_index=True
    )

    events = []
    label_to_gid = assigned.set_index("label")["golden_id"]
    # per label, the old ID most of its members had (stable sort: ties keep the order above)
    top_old = votes.sort_values("votes", ascending=False, kind="stable").drop_duplicates("label")
    top_old = top_old.set_index("label")["golden_id"]
    for label, gid in fresh:
        lost = top_old.get(label)
        if lost is not None:  # its members had IDs that another cluster kept: a split
            events.append(("split", gid, lost, int(sizes[label])))
        else:
            events.append(("created", gid, None, int(sizes[label])))
    kept_ids = set(kept["golden_id"])
    for row in owner_of.itertuples():
        if row.golden_id not in kept_ids:  # its main part joined a cluster that kept another ID
            events.append(("merged", row.golden_id, label_to_gid[row.label], int(row.votes)))
    still_present = set(votes["golden_id"])
    for gid in sorted(set(previous["golden_id"]) - still_present):
        events.append(("retired", gid, None, 0))
    history = pd.DataFrame(events, columns=["event", "golden_id", "related_golden_id", "members"])
    history = history.drop_duplicates(["event", "golden_id"])
    return assigned, history


def successors(history: pd.DataFrame) -> dict[str, str]:
    """For each golden ID merged away, the ID that holds its records now (merge chains followed).

    `history`: rows of mdm.golden_id_history with event, golden_id, related_golden_id, in order.
    """
    merged = history[history["event"] == "merged"]
    step = dict(zip(merged["golden_id"], merged["related_golden_id"], strict=True))
    out = {}
    for gid in step:
        seen, current = {gid}, step[gid]
        while current in step and current not in seen:  # A -> B -> C: A's successor is C
            seen.add(current)
            current = step[current]
        out[gid] = current
    return out


# The rules of assign_golden_ids in SQL, over relations named by the caller (see
# assign_golden_ids_sql). Each old ID goes to the cluster holding most of its old members
# (ties: the most trusted of those members, then the larger cluster, then the smaller
# label); each cluster keeps the old ID it holds most members of (ties: the smaller ID).
_VOTES_SQL = """
CREATE OR REPLACE TEMP TABLE {votes} AS
WITH sizes AS (SELECT label, count(*) AS size FROM {members} GROUP BY label),
voted AS (
    SELECT m.label, p.golden_id, count(*) AS votes, min(m.trust) AS best_trust
    FROM {members} m JOIN {previous} p USING (member_key)
    GROUP BY m.label, p.golden_id
),
owned AS (
    SELECT v.*, s.size,
           row_number() OVER (PARTITION BY v.golden_id
                              ORDER BY v.votes DESC, v.best_trust, s.size DESC, v.label) = 1
               AS owner,
           row_number() OVER (PARTITION BY v.label ORDER BY v.votes DESC, v.golden_id) = 1
               AS top_old
    FROM voted v JOIN sizes s USING (label)
)
SELECT *, owner AND row_number() OVER (PARTITION BY label, owner
                                      ORDER BY votes DESC, golden_id) = 1 AS kept
FROM owned
"""

# A fresh ID for each cluster that kept none: 'G' and 12 hex digits of sha1(first member
# key), the first run of digits that is no old ID (new_golden_id's loop, in SQL).
_FRESH_SQL = """
CREATE OR REPLACE TEMP TABLE {fresh} AS
WITH taken AS (SELECT DISTINCT golden_id FROM {taken}),
fresh AS (
    SELECT label, count(*) AS size, min(member_key) AS first_key
    FROM {members} m
    WHERE NOT EXISTS (SELECT 1 FROM {votes} v WHERE v.kept AND v.label = m.label)
    GROUP BY label
),
hashed AS (SELECT *, upper(sha1(first_key)) AS digest FROM fresh),
retried AS (  -- rare: the first 12 digits are an old ID (e.g. the other part of a split)
    SELECT h.label, arg_min('G' || substr(h.digest, s.start + 1, 12), s.start) AS golden_id
    FROM hashed h CROSS JOIN range(1, 28) s(start)
    WHERE EXISTS (SELECT 1 FROM taken t WHERE t.golden_id = 'G' || substr(h.digest, 1, 12))
      AND NOT EXISTS (
          SELECT 1 FROM taken t WHERE t.golden_id = 'G' || substr(h.digest, s.start + 1, 12))
    GROUP BY h.label
)
SELECT h.label, h.size, h.first_key,
       CASE WHEN t.golden_id IS NULL THEN 'G' || substr(h.digest, 1, 12) ELSE r.golden_id END
           AS golden_id
FROM hashed h
LEFT JOIN taken t ON t.golden_id = 'G' || substr(h.digest, 1, 12)
LEFT JOIN retried r USING (label)
"""

_ASSIGNED_SQL = """
CREATE OR REPLACE TEMP TABLE {assigned} AS
SELECT label, golden_id FROM {votes} WHERE kept
UNION ALL SELECT label, golden_id FROM {fresh}
"""

# History events in assign_golden_ids' order: new IDs by label (a split when the cluster's
# members had IDs another cluster kept), merged IDs by ID, then retired IDs by ID.
_EVENTS_SQL = """
CREATE OR REPLACE TEMP TABLE {id_events} AS
SELECT 0 AS ord, f.label,
       CASE WHEN v.golden_id IS NULL THEN 'created' ELSE 'split' END AS event,
       f.golden_id, v.golden_id AS related_golden_id, f.size AS members
FROM {fresh} f LEFT JOIN {votes} v ON v.label = f.label AND v.top_old
UNION ALL
SELECT 1, NULL, 'merged', v.golden_id, a.golden_id, v.votes
FROM {votes} v JOIN {assigned} a USING (label)
WHERE v.owner AND NOT EXISTS (SELECT 1 FROM {votes} k WHERE k.kept AND k.golden_id = v.golden_id)
UNION ALL
SELECT DISTINCT 2, NULL::BIGINT, 'retired', p.golden_id, NULL, 0
FROM {previous} p WHERE NOT EXISTS (SELECT 1 FROM {votes} v WHERE v.golden_id = p.golden_id)
"""


def assign_golden_ids_sql(
    con: duckdb.DuckDBPyConnection,
    members: str,
    previous: str,
    *,
    taken: str | None = None,
    votes: str,
    fresh: str,
    assigned: str,
    id_events: str,
) -> None:
    """:func:`assign_golden_ids` inside DuckDB, same rules and same IDs, over relations.

    Reads `members` (label, member_key, trust) and `previous` (member_key, golden_id); makes
    `assigned` (label, golden_id) and `id_events` (ord, label, event, golden_id,
    related_golden_id, members: ordered by ord, label, golden_id like the frame), with
    `votes` and `fresh` as its working tables. `taken` (golden_id; default `previous`):
    the IDs a new one must not be, when `previous` holds only some of last run's rows.
    """
    taken = taken or previous
    names = {
        "members": members,
        "previous": previous,
        "taken": taken,
        "votes": votes,
        "fresh": fresh,
        "assigned": assigned,
        "id_events": id_events,
    }
    con.execute(_VOTES_SQL.format(**names))
    con.execute(_FRESH_SQL.format(**names))
    clashes, unset = con.execute(
        f"SELECT count(*) - count(DISTINCT golden_id), count(*) - count(golden_id) FROM {fresh}"
    ).fetchone()
    if unset:
        raise RuntimeError("could not derive a free golden id")  # pragma: no cover
    if clashes:  # two new clusters' first keys share 48 bits of sha1: new_golden_id's loop
        _assign_fresh_in_order(con, taken, fresh)
    con.execute(_ASSIGNED_SQL.format(**names))
    con.execute(_EVENTS_SQL.format(**names))


def _assign_fresh_in_order(con: duckdb.DuckDBPyConnection, old: str, fresh: str) -> None:
    """Re-derive the IDs of `fresh` one cluster at a time in label order, each avoiding the
    old IDs (of `old`) and the IDs given before it (exactly assign_golden_ids' loop)."""
    taken = {r[0] for r in con.execute(f"SELECT DISTINCT golden_id FROM {old}").fetchall()}
    rows = con.execute(f"SELECT label, first_key FROM {fresh} ORDER BY label").fetchall()
    ids = []
    for label, first_key in rows:
        gid = new_golden_id(first_key, taken)
        taken.add(gid)
        ids.append((label, gid))
    frame = pd.DataFrame(ids, columns=["label", "golden_id"])
    with warehouse.registered(con, "fresh_in_order", frame):
        con.execute(
            f"UPDATE {fresh} SET golden_id = o.golden_id FROM fresh_in_order o "
            f"WHERE {fresh}.label = o.label"
        )
