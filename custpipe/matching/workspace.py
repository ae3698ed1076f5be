"""The matching stage's DuckDB workspace: its connection and the temp relations it builds.

Every step of matching and consolidation takes the workspace and reads or makes relations
by the names it holds, so a reader sees where each relation is made and read:

- `trust` (source_system, trust; lower = more trusted), `nodes` (node, staged_row,
  source_system, source_id, raw_hash of the accepted records): :func:`accepted_nodes`;
  their staged columns: :func:`staged_rows`
- `edges` (a, b, rule): `linking.build_edges`, then model pairs (`consolidate`) and
  must-links (`decisions.add_must_links`)
- `scored` (a, b, probability, gamma_<field>, mw_<field>): `model.score_pairs`
- `decided` (a, b, decision; the latest steward decision per pair):
  `decisions.load_decisions`
- `scope` (node: the records an incremental night reclusters, its touched components),
  `scope_components` (component: their components last night), `frontier`:
  `scope.touched_scope`; `components` (node, label: the components before any split):
  `scope.keep_components`; `review_labels` (node, label): `scope.review_labels`
- `labels` (node, label: the cluster of each node; in a scoped night only those of
  `scope`): `linking.connected_components`, split by `decisions.apply_cannot_links`
  (steward cannot-links and the exclusions of `exclusions.exclusion_pairs`), which makes
  `kept_apart` (a, b, rule, reason): the links an exclusion left out, for the review queue
- `members`, `previous` (last run's xref; in a scoped night the scope's rows), `assigned`
  (label, golden_id), `id_events`, `first_seen`: `consolidate._assign_golden_ids` (with
  `golden_ids.assign_golden_ids_sql`)
- `record_state` (node, keys, input_hash, raw_hash, match columns), `record_diff` (the
  records whose state differs from last night's, both states; `node_diff`: by staged row
  only), `changed` (node: new or changed match
  input), `restaged` (node: new or changed staged row), `gone` (source_system,
  source_id: last night's records gone or changed): `pairs.refresh_pairs`; `flagged`
  (the match input with its `changed` flag): `pairs._changed_and_partners`; `touched`
  (node, label: the clusters an incremental run rebuilds): `consolidate._write_golden`
- `latest_validation`, `undirected`, `next_labels`, `votes`, `fresh`, `new_xref`: working
  tables of the steps above; `spark_golden`: the golden records survivorship built on Spark

This module imports nothing else from `custpipe.matching`, so every matching module can
import it without a circle.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass

import duckdb
import pandas as pd

from custpipe import warehouse


@dataclass(frozen=True)
class MatchWorkspace:
    """One matching stage: its connection, how many records it matches, and the names of the
    temp relations its steps make and read (see the module docstring)."""

    con: duckdb.DuckDBPyConnection
    records: int
    trust: str = "trust"
    latest_validation: str = "latest_validation"
    nodes: str = "nodes"
    edges: str = "edges"
    scored: str = "scored_pairs"
    decided: str = "decided"
    undirected: str = "undirected"
    next_labels: str = "next_labels"
    labels: str = "labels"
    members: str = "cluster_members"
    previous: str = "previous_xref"
    new_xref: str = "new_xref"
    votes: str = "id_votes"
    fresh: str = "fresh_ids"
    assigned: str = "assigned_ids"
    id_events: str = "id_events"
    first_seen: str = "first_seen"
    kept_apart: str = "kept_apart"
    record_state: str = "record_state"
    record_diff: str = "record_diff"
    node_diff: str = "node_diff"
    changed: str = "changed_records"
    restaged: str = "restaged_records"
    touched: str = "touched_labels"
    flagged: str = "flagged_match_input"
    gone: str = "gone_records"
    scope: str = "scope_nodes"
    scope_components: str = "scope_components"
    frontier: str = "scope_frontier"
    components: str = "components"
    review_labels: str = "review_labels"
    spark_golden: str = "spark_golden"

    def relations(self) -> tuple[str, ...]:
        """The names of every temp relation of the workspace."""
        return (
            self.trust,
            self.latest_validation,
            self.nodes,
            self.edges,
            self.scored,
            self.decided,
            self.undirected,
            self.next_labels,
            self.labels,
            self.members,
            self.previous,
            self.new_xref,
            self.votes,
            self.fresh,
            self.assigned,
            self.id_events,
            self.first_seen,
            self.kept_apart,
            self.record_state,
            self.record_diff,
            self.node_diff,
            self.changed,
            self.restaged,
            self.touched,
            self.flagged,
            self.gone,
            self.scope,
            self.scope_components,
            self.frontier,
            self.components,
            self.review_labels,
            self.spark_golden,
        )

    def drop(self) -> None:
        """Drop the workspace's temp relations (those that exist)."""
        for name in self.relations():
            self.con.execute(f"DROP TABLE IF EXISTS temp.main.{name}")


def _configured(con: duckdb.DuckDBPyConnection, trust: dict[str, int]) -> MatchWorkspace:
    """A workspace on `con` with `trust` and `latest_validation` (the latest validation run
    of each source)."""
    ws = MatchWorkspace(con, records=0)
    frame = pd.DataFrame({"source_system": list(trust), "trust": list(trust.values())})
    with warehouse.registered(con, "configured_trust", frame):
        con.execute(f"CREATE OR REPLACE TEMP TABLE {ws.trust} AS SELECT * FROM configured_trust")
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ws.latest_validation} AS
        SELECT source_system, arg_max(run_id, validated_at) AS run_id
        FROM quality.validation_runs GROUP BY source_system""")
    return ws


def _accepted(ws: MatchWorkspace) -> str:
    """FROM and WHERE of the accepted records (alias `s`): the staged records of the sources
    in `ws.trust`, minus those in their source's latest quarantine."""
    return f"""
        FROM staging.customers s
        WHERE s.source_system IN (SELECT source_system FROM {ws.trust})
          AND NOT EXISTS (
            SELECT 1 FROM quality.quarantine q
            JOIN {ws.latest_validation} v USING (source_system, run_id)
            WHERE q.source_system = s.source_system AND q.source_id = s.source_id)"""


def accepted_nodes(con: duckdb.DuckDBPyConnection, trust: dict[str, int]) -> MatchWorkspace:
    """A workspace on `con` with `trust` and `nodes` (node, staged_row, source_system,
    source_id, raw_hash): the staged records of the sources in `trust`, minus those in their
    source's latest quarantine, numbered by (source_system, source_id). Their staged
    columns are read through :func:`staged_rows` (a copy of every column of every record
    took most of an incremental night's consolidation).

    Only configured sources take part: a source removed from the configuration leaves its
    old staged rows behind, and they must not link or hold golden records.
    """
    ws = _configured(con, trust)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ws.nodes} AS
        SELECT row_number() OVER (ORDER BY s.source_system, s.source_id) AS node,
               s.rowid AS staged_row, s.source_system, s.source_id, s.raw_hash
        {_accepted(ws)}
    """)
    (records,) = con.execute(f"SELECT count(*) FROM {ws.nodes}").fetchone()
    return MatchWorkspace(con, records=records)


def staged_rows(ws: MatchWorkspace, nodes: str | None = None) -> str:
    """SQL of the records of `ws.nodes` (or of those in `nodes`, a relation with `node`)
    with their staged columns (node, staged columns but `source_values`, the wide JSON of
    original values). Rows are found by `staged_row`, which holds while staging.customers
    does not change: within the workspace's transaction, or on a read-only connection."""
    some = "" if nodes is None else f"SEMI JOIN {nodes} k USING (node)"
    return f"""(
        SELECT n.node, s.* EXCLUDE (source_values)
        FROM {ws.nodes} n {some}
        JOIN staging.customers s ON s.rowid = n.staged_row)"""


def accepted_digest(con: duckdb.DuckDBPyConnection, trust: dict[str, int]) -> str | None:
    """A digest of the accepted records (see :func:`accepted_nodes`): their count and an
    order-free hash of each one's source, id and `raw_hash` (which covers its staged values
    and the mapping that made them). None if a record has no raw hash (staged by a version
    before raw hashes): then records cannot be compared by digest."""
    ws = _configured(con, trust)
    try:
        count, unhashed, digest = con.execute(f"""
            SELECT count(*), count(*) FILTER (WHERE s.raw_hash IS NULL),
                   bit_xor(hash(s.source_system, s.source_id, s.raw_hash))
            {_accepted(ws)}""").fetchone()
    finally:
        ws.drop()
    return None if unhashed else f"{count}:{digest or 0}"


@contextmanager
def match_workspace(
    con: duckdb.DuckDBPyConnection, trust: dict[str, int]
) -> Iterator[MatchWorkspace]:
    """:func:`accepted_nodes` for the block; its temp relations are dropped when it ends,
    and those made before a failure of `accepted_nodes` itself are dropped too."""
    made = MatchWorkspace(con, records=0)  # the names, to drop whatever exists at the end
    try:
        yield accepted_nodes(con, trust)
    except BaseException:
        with suppress(duckdb.Error):  # the error raised is the one to report
            made.drop()
        raise
    made.drop()
