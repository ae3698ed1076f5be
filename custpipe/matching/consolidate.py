"""Consolidate accepted staged records into golden customers and the cross-reference."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pandas as pd

from custpipe import warehouse
from custpipe.matching.decisions import (
    MUST_LINK_RULE,
    add_must_links,
    apply_cannot_links,
    load_decisions,
)
from custpipe.matching.golden_ids import assign_golden_ids
from custpipe.matching.linking import DEFAULT_RULES, LinkRule, build_edges, connected_components
from custpipe.matching.model import MatchModel, predict_pairs
from custpipe.matching.review import review_queue
from custpipe.matching.survivorship import Survivorship, survivorship_sql

DEFAULT_SURVIVORSHIP = Survivorship()

MODEL_RULE = "model"


@dataclass(frozen=True)
class Matcher:
    """The saved probabilistic model and its two thresholds (match probabilities)."""

    model: MatchModel
    auto_merge: float = 0.99  # at or above: linked
    review: float = 0.80  # between review and auto_merge: to the steward queue

    def __post_init__(self) -> None:
        if not 0 < self.review <= self.auto_merge <= 1:
            raise ValueError(
                f"matching thresholds: need 0 < review ({self.review}) <= auto_merge "
                f"({self.auto_merge}) <= 1"
            )


def load_matcher(path: Path, auto_merge: float, review: float) -> Matcher:
    """The saved model at `path` with the configured thresholds."""
    return Matcher(MatchModel.load(path), auto_merge=auto_merge, review=review)


@dataclass(frozen=True)
class ConsolidationResult:
    """Figures of one consolidation."""

    records: int
    edges: int
    golden: int
    merged_records: int
    rounds: int
    events: dict[str, int]
    review_pairs: int
    must_links: int = 0
    cannot_link_splits: int = 0
    seconds: dict[str, float] = field(default_factory=dict)  # 'matching', 'survivorship'


def accepted_nodes(con: duckdb.DuckDBPyConnection, trust: dict[str, int]) -> int:
    """Temp tables `trust` and `nodes`: the staged records of the sources in `trust`, minus
    those in their source's latest quarantine, numbered by (source_system, source_id).

    Only configured sources take part: a source removed from the configuration leaves its
    old staged rows behind, and they must not link or hold golden records.
    """
    trust_frame = pd.DataFrame(  # noqa: F841 (read by DuckDB below)
        {"source_system": list(trust), "trust": list(trust.values())}
    )
    con.execute("CREATE OR REPLACE TEMP TABLE trust AS SELECT * FROM trust_frame")
    con.execute("""
        CREATE OR REPLACE TEMP TABLE latest_validation AS
        SELECT source_system, arg_max(run_id, validated_at) AS run_id
        FROM quality.validation_runs GROUP BY source_system;
        CREATE OR REPLACE TEMP TABLE nodes AS
        SELECT row_number() OVER (ORDER BY s.source_system, s.source_id) AS node, s.*
        FROM staging.customers s
        WHERE s.source_system IN (SELECT source_system FROM trust)
          AND NOT EXISTS (
            SELECT 1 FROM quality.quarantine q
            JOIN latest_validation v USING (source_system, run_id)
            WHERE q.source_system = s.source_system AND q.source_id = s.source_id);
    """)
    return con.execute("SELECT count(*) FROM nodes").fetchone()[0]


def consolidate(
    con: duckdb.DuckDBPyConnection,
    run_id: str,
    trust: dict[str, int],
    erp_source: str,
    matcher: Matcher,
    rules: tuple[LinkRule, ...] = DEFAULT_RULES,
    survivorship: Survivorship = DEFAULT_SURVIVORSHIP,
) -> ConsolidationResult:
    """Rebuild mdm.golden_customers, mdm.customer_xref and mdm.match_review from accepted records.

    Accepted = staged records not in the latest quarantine of their source. Records link on
    the definite `rules` (same valid tax ID, same personal e-mail) and on model pairs at or
    above `matcher.auto_merge`; model pairs between the thresholds go to the review queue.
    """
    records = accepted_nodes(con, trust)
    started = time.perf_counter()
    build_edges(con, rules)
    scored = predict_pairs(con, matcher.model, matcher.review)
    linked = scored.loc[scored["probability"] >= matcher.auto_merge, ["a", "b"]]  # noqa: F841
    con.execute(f"INSERT INTO edges SELECT a, b, '{MODEL_RULE}' FROM linked")
    edges = con.execute("SELECT count(*) FROM edges").fetchone()[0]
    load_decisions(con)
    must_links = add_must_links(con)
    rounds = connected_components(con)
    priority = {MUST_LINK_RULE: 0} | {r.name: i + 1 for i, r in enumerate(rules)}
    priority[MODEL_RULE] = len(priority)
    splits = apply_cannot_links(con, priority)
    matched = time.perf_counter()

    members = con.execute("""
        SELECT l.label, n.source_system || ':' || n.source_id AS member_key, t.trust
        FROM labels l JOIN nodes n USING (node) JOIN trust t USING (source_system)
    """).df()
    previous = con.execute("""
        SELECT source_system || ':' || source_id AS member_key, golden_id FROM mdm.customer_xref
    """).df()
    assigned, history = assign_golden_ids(members, previous)
    con.register("_assigned", assigned)
    golden = con.execute(survivorship_sql(survivorship), {"erp_source": erp_source}).df()
    golden = golden.merge(assigned, on="label").drop(columns=["label"])
    first_seen = con.execute("SELECT golden_id, first_seen_run FROM mdm.golden_customers").df()
    golden = golden.merge(first_seen, on="golden_id", how="left")
    golden["first_seen_run"] = golden["first_seen_run"].fillna(run_id)
    golden["run_id"] = run_id
    now_utc = pd.Timestamp.now(tz="UTC").tz_localize(None)  # every stored stamp is naive UTC
    golden["updated_at"] = now_utc
    xref = con.execute(
        """
        WITH node_rules AS (  -- the rules that linked each record, either end of an edge
            SELECT node, string_agg(DISTINCT rule, ',' ORDER BY rule) AS match_rule
            FROM (SELECT a AS node, rule FROM edges UNION ALL SELECT b, rule FROM edges)
            GROUP BY node
        )
        SELECT n.source_system, n.source_id, a.golden_id,
               coalesce(r.match_rule, 'singleton') AS match_rule, $run_id AS run_id
        FROM nodes n JOIN labels l USING (node) JOIN _assigned a ON a.label = l.label
        LEFT JOIN node_rules r USING (node)
    """,
        {"run_id": run_id},
    ).df()
    con.unregister("_assigned")
    survived = time.perf_counter()
    review = review_queue(con, scored, matcher.model, matcher.auto_merge).assign(run_id=run_id)
    reviewed = time.perf_counter()
    history["run_id"] = run_id
    history["recorded_at"] = now_utc

    with warehouse.transaction(con):
        warehouse.replace_table(con, "mdm.golden_customers", golden)
        warehouse.replace_table(con, "mdm.customer_xref", xref)
        warehouse.replace_table(con, "mdm.match_review", review)
        warehouse.append_rows(con, "mdm.golden_id_history", history)
    return ConsolidationResult(
        records=records,
        edges=edges,
        golden=len(golden),
        merged_records=records - len(golden),
        rounds=rounds,
        events=history["event"].value_counts().to_dict(),
        review_pairs=len(review),
        must_links=must_links,
        cannot_link_splits=splits,
        seconds={
            "matching": round(matched - started + reviewed - survived, 3),
            "survivorship": round(survived - matched + time.perf_counter() - reviewed, 3),
        },
    )
