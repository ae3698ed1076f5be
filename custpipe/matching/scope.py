"""The touched components: what an incremental night clusters again.

A night's clusters are its components over the links (`linking.connected_components`),
split by cannot-links and conflicting identifiers (`decisions.apply_cannot_links`). A
component none of whose records changed keeps last night's links, so its clusters, golden
ID and xref rows are last night's. An incremental night therefore clusters only the
*scope*: the records of tonight's components that hold a seed, where the seeds are

- the records new, changed or restaged tonight, and last night's records gone since;
- both records of every steward decision;
- both records of a stored pair whose link the new prior turns on or off (the prior
  follows the number of records, see `pairs.load_scored`);

closed under tonight's links and last night's components (`mdm.match_components`, kept
per record): a record that left a component, or joined another, can change how the rest
of it is split, so all of last night's component is clustered again. Last night's golden
groups lie inside its components, so every old golden ID a scope cluster can claim belongs
to scope records only. The links an exclusion left out in the other components (for the
review queue) are last night's too.
"""

from __future__ import annotations

from custpipe import warehouse
from custpipe.matching.model import MatchModel
from custpipe.matching.pairs import probability_sql, tonight_prior
from custpipe.matching.workspace import MatchWorkspace

COMPONENTS = "mdm.match_components"

_FLIPPED = """
    SELECT left_source_system AS source_system, left_source_id AS source_id
    FROM flipped_pairs
    UNION SELECT right_source_system, right_source_id FROM flipped_pairs
"""


def touched_scope(ws: MatchWorkspace, model: MatchModel, auto_merge: float) -> bool:
    """Make `ws.scope` (node) and `ws.scope_components` (component: last night's components
    of the scope) after the night's edges, decisions and `refresh_pairs` (incremental).
    False (nothing made) when last night's components are not known for every record of
    last night's xref: then everything is clustered."""
    con = ws.con
    known, xref = con.execute(
        f"SELECT (SELECT count(*) FROM {COMPONENTS}), (SELECT count(*) FROM mdm.customer_xref)"
    ).fetchone()
    if known != xref or known == 0:
        return False
    _seed(ws, model, auto_merge, last_records=known)
    while _grow(ws):
        pass
    con.execute(f"DROP TABLE {ws.frontier}")
    return True


def _seed(ws: MatchWorkspace, model: MatchModel, auto_merge: float, last_records: int) -> None:
    """Make `ws.scope` and `ws.frontier` (the seeds) and `ws.scope_components` (last night's
    components of the records gone)."""
    con = ws.con
    params = {
        "last": tonight_prior(model, last_records),
        "tonight": tonight_prior(model, ws.records),
        "auto_merge": auto_merge,
    }
    flips = params["last"] != params["tonight"]
    last, tonight = probability_sql("$last", "weight"), probability_sql("$tonight", "weight")
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE flipped_pairs AS
        SELECT * FROM mdm.match_pairs
        WHERE {flips} AND ({last} >= $auto_merge) <> ({tonight} >= $auto_merge)
        """,
        params,
    )
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ws.scope} AS
        SELECT node FROM {ws.changed} UNION SELECT node FROM {ws.restaged}
        UNION SELECT a FROM {ws.decided} UNION SELECT b FROM {ws.decided}
        UNION SELECT n.node FROM ({_FLIPPED}) f JOIN {ws.nodes} n USING (source_system, source_id);
        DROP TABLE flipped_pairs;
        CREATE OR REPLACE TEMP TABLE {ws.frontier} AS SELECT node FROM {ws.scope};
        CREATE OR REPLACE TEMP TABLE {ws.scope_components} AS
        SELECT DISTINCT component FROM {COMPONENTS} SEMI JOIN {ws.gone}
            USING (source_system, source_id);
    """)
    _add_members(ws, f"SELECT component FROM {ws.scope_components}")


def _add_members(ws: MatchWorkspace, components: str) -> None:
    """Add to `ws.scope` and `ws.frontier` tonight's records of last night's `components`
    (a query) that the scope lacks."""
    ws.con.execute(f"""
        INSERT INTO {ws.frontier}
        SELECT n.node FROM {ws.nodes} n
        SEMI JOIN (SELECT source_system, source_id FROM {COMPONENTS}
                   WHERE component IN ({components})) c USING (source_system, source_id)
        ANTI JOIN {ws.scope} s ON s.node = n.node;
        INSERT INTO {ws.scope} SELECT node FROM {ws.frontier}
        ANTI JOIN {ws.scope} s USING (node);
    """)


def _grow(ws: MatchWorkspace) -> bool:
    """One round of closure from `ws.frontier`: its neighbours over tonight's edges and the
    records of its last night's components join the scope; the frontier becomes the records
    added. Whether any was."""
    con = ws.con
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE frontier_components AS
        SELECT DISTINCT c.component FROM {COMPONENTS} c
        SEMI JOIN (SELECT n.source_system, n.source_id FROM {ws.nodes} n
                   SEMI JOIN {ws.frontier} f USING (node)) k USING (source_system, source_id)
        ANTI JOIN {ws.scope_components} s USING (component);
        INSERT INTO {ws.scope_components} SELECT component FROM frontier_components;
        CREATE OR REPLACE TEMP TABLE next_frontier AS
        SELECT DISTINCT node FROM (
            SELECT e.b AS node FROM {ws.edges} e SEMI JOIN {ws.frontier} f ON f.node = e.a
            UNION ALL
            SELECT e.a FROM {ws.edges} e SEMI JOIN {ws.frontier} f ON f.node = e.b)
        ANTI JOIN {ws.scope} s USING (node);
        INSERT INTO {ws.scope} SELECT node FROM next_frontier;
        CREATE OR REPLACE TEMP TABLE {ws.frontier} AS SELECT node FROM next_frontier;
        DROP TABLE next_frontier;
    """)
    _add_members(ws, "SELECT component FROM frontier_components")
    con.execute("DROP TABLE frontier_components")
    (grown,) = con.execute(f"SELECT count(*) FROM {ws.frontier}").fetchone()
    return grown > 0


def keep_components(ws: MatchWorkspace) -> None:
    """Copy `ws.labels` to `ws.components` before cannot-links and exclusions split them."""
    ws.con.execute(f"CREATE OR REPLACE TEMP TABLE {ws.components} AS SELECT * FROM {ws.labels}")


def store_components(ws: MatchWorkspace, scoped: bool) -> None:
    """Bring mdm.match_components up to `ws.components`: rewritten when not `scoped`; in a
    scoped night the rows of last night's touched components are replaced."""
    rows = f"""
        SELECT n.source_system, n.source_id,
               c.source_system || ':' || c.source_id AS component
        FROM {ws.components} k JOIN {ws.nodes} n ON n.node = k.node
        JOIN {ws.nodes} c ON c.node = k.label"""
    if not scoped:
        warehouse.replace_table_from(ws.con, COMPONENTS, rows)
        return
    ws.con.execute(f"""
        DELETE FROM {COMPONENTS}
        WHERE component IN (SELECT component FROM {ws.scope_components});
        INSERT INTO {COMPONENTS} BY NAME {rows};
    """)


def kept_apart_outside(ws: MatchWorkspace) -> None:
    """Add to `ws.kept_apart` the links an exclusion left out in the components outside the
    scope: last night's, read from the review queue it wrote (mdm.match_review), since those
    components' links, clusters and decisions are last night's."""
    ws.con.execute(f"""
        INSERT INTO {ws.kept_apart}
        SELECT least(na.node, nb.node), greatest(na.node, nb.node),
               json_extract_string(r.explanation, '$.linked_by'),
               json_extract_string(r.explanation, '$.kept_apart')
        FROM mdm.match_review r
        JOIN {ws.nodes} na ON na.source_system = r.left_source_system
                          AND na.source_id = r.left_source_id
        JOIN {ws.nodes} nb ON nb.source_system = r.right_source_system
                          AND nb.source_id = r.right_source_id
        WHERE json_extract_string(r.explanation, '$.kept_apart') IS NOT NULL
          AND na.node NOT IN (SELECT node FROM {ws.scope})
    """)


def review_labels(ws: MatchWorkspace, auto_merge: float) -> str:
    """Make `ws.review_labels` (node, label) for the review queue of a scoped night:
    `ws.labels` (the scope's clusters) and, for the other records of the queue's candidate
    pairs, a stand-in per cluster (last night's golden ID, numbered below zero); return
    its name."""
    ws.con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {ws.review_labels} AS
        WITH ends AS (
            SELECT a AS node FROM {ws.scored} WHERE probability < $auto_merge
            UNION SELECT b FROM {ws.scored} WHERE probability < $auto_merge
            UNION SELECT a FROM {ws.kept_apart} UNION SELECT b FROM {ws.kept_apart}
        ),
        outside AS (SELECT node FROM ends ANTI JOIN {ws.labels} l USING (node))
        SELECT node, label FROM {ws.labels}
        UNION ALL
        SELECT n.node, -dense_rank() OVER (ORDER BY x.golden_id) AS label
        FROM {ws.nodes} n SEMI JOIN outside o USING (node)
        JOIN mdm.customer_xref x USING (source_system, source_id)
        """,
        {"auto_merge": auto_merge},
    )
    return ws.review_labels
