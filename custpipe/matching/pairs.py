"""The scored pairs kept from night to night, so a night scores only the pairs of what changed.

`mdm.match_pairs` holds every candidate pair the model scored at or above the review
threshold, named by its two records' keys, with its match weight *without the prior* (the
sum of the compared fields' weights), and per field its comparison level and weight.
`mdm.match_records` holds, per record matched, the hash of its match input (the canonical
match columns and derived blocking keys) and its staged `raw_hash`.

An incremental night (:func:`refresh_pairs` with ``incremental=True``):

1. finds the records whose match input is new or changed since the last night, and those
   gone (deleted at the source, quarantined now, or changed);
2. removes every stored pair of a gone or changed record;
3. has Splink score only the candidate pairs with a changed record on at least one side
   (each blocking rule gets ``AND (l.changed OR r.changed)``: the same candidate pairs as a
   full night, restricted), given only the changed records and those a blocking rule joins
   to one (found by DuckDB with the rules themselves), and stores the pairs at or above the
   review threshold.

A pair of two unchanged records scores the same as last night: the model compares only the
two records (the deployment's model uses no term-frequency adjustment; with one, a changed
record count changes every adjusted weight, so such a model scores every pair each night).
The prior is what changes with the number of records (`MatchModel.settings_for`), so the
stored weight leaves it out, the pairs are kept down to the review threshold under the
*largest* prior (the model's own: a run at or below the training size), and
:func:`load_scored` adds tonight's prior. A full night runs the same code over every
record, so full and incremental nights give the same pairs and the same probabilities.
"""

from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from custpipe import warehouse
from custpipe.matching.model import (
    MatchModel,
    _splink_linker,
    compared_fields,
    match_input,
    tf_fields,
)
from custpipe.matching.settings import derived_in_rules
from custpipe.matching.workspace import MatchWorkspace
from custpipe.spark.exchange import parts

if TYPE_CHECKING:
    from custpipe.spark.scoring import SparkScoring


@dataclass(frozen=True)
class PairRefresh:
    """What one refresh of the stored pairs did."""

    changed_records: int  # records scored again (new or changed match input)
    removed_records: int  # records whose stored pairs were removed (gone or changed)
    scored_pairs: int  # pairs scored tonight at or above the review threshold (max prior)
    stored_pairs: int  # pairs stored after the refresh


def prior_weight(probability: float) -> float:
    """The prior as a match weight: log2 of its odds."""
    return math.log2(probability / (1 - probability))


def needs_full_scoring(model: MatchModel) -> str | None:
    """Why every pair must be scored every night with this model (None: it need not)."""
    if tf_fields(model):
        return (
            "the model adjusts agreement for term frequency, which every record changes, so "
            "every pair is scored every night"
        )
    return None


def _record_state(ws: MatchWorkspace, frame: pa.Table) -> None:
    """Make `ws.record_state` (node, source_system, source_id, input_hash, raw_hash)."""
    columns = [c for c in frame.column_names if c != "unique_id"]
    hashed = ", ".join(f'f."{c}"' for c in columns)
    with warehouse.registered(ws.con, "match_frame", frame):
        ws.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {ws.record_state} AS
            SELECT n.node, n.source_system, n.source_id, hash({hashed}) AS input_hash,
                   n.raw_hash
            FROM match_frame f JOIN {ws.nodes} n ON n.node = f.unique_id
        """)


def _changed_records(ws: MatchWorkspace, incremental: bool) -> tuple[int, int]:
    """Make `ws.record_diff`: the records whose `ws.record_state` differs from last night's
    mdm.match_records, with both states (one join of the two, the rest reads this small
    table); from it `ws.restaged` (node): records whose staged row is new or changed since
    the last night, and `ws.changed` (node): those whose match input is new or changed
    (every record when not `incremental`); in an incremental run, make `ws.gone`
    (source_system, source_id): last night's records gone or changed, and delete their
    stored pairs. A record is one per (source_system, source_id) on either side.
    Returns (changed, removed)."""
    con = ws.con
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ws.record_diff} AS
        SELECT s.node, s.input_hash, s.raw_hash, m.source_system AS last_system,
               m.source_id AS last_id, m.input_hash AS last_input, m.raw_hash AS last_raw
        FROM {ws.record_state} s FULL JOIN mdm.match_records m
            ON m.source_system = s.source_system AND m.source_id = s.source_id
        WHERE s.input_hash IS DISTINCT FROM m.input_hash
           OR NOT coalesce(s.raw_hash = m.raw_hash, false);
        CREATE OR REPLACE TEMP TABLE {ws.restaged} AS
        SELECT node FROM {ws.record_diff}
        WHERE node IS NOT NULL AND NOT coalesce(raw_hash = last_raw, false);
    """)
    if not incremental:
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {ws.changed} AS SELECT node FROM {ws.record_state}"
        )
        (removed,) = con.execute("SELECT count(*) FROM mdm.match_records").fetchone()
        warehouse.clear_table(con, "mdm.match_pairs")
        return ws.records, removed
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ws.changed} AS
        SELECT node FROM {ws.record_diff}
        WHERE node IS NOT NULL AND input_hash IS DISTINCT FROM last_input;
        CREATE OR REPLACE TEMP TABLE {ws.gone} AS
        SELECT last_system AS source_system, last_id AS source_id FROM {ws.record_diff}
        WHERE last_id IS NOT NULL AND input_hash IS DISTINCT FROM last_input;
    """)
    (changed,) = con.execute(f"SELECT count(*) FROM {ws.changed}").fetchone()
    (removed,) = con.execute(f"SELECT count(*) FROM {ws.gone}").fetchone()
    # two semi-joins: one EXISTS with an OR of the two sides is a nested loop (15 s at 1M)
    con.execute(f"""
        DELETE FROM mdm.match_pairs p
        WHERE EXISTS (SELECT 1 FROM {ws.gone} g WHERE g.source_system = p.left_source_system
                                                   AND g.source_id = p.left_source_id)
           OR EXISTS (SELECT 1 FROM {ws.gone} g WHERE g.source_system = p.right_source_system
                                                   AND g.source_id = p.right_source_id);
    """)
    return changed, removed


def restricted_rules(settings: dict, incremental: bool) -> dict:
    """Splink settings whose blocking rules only make pairs with a changed record (their
    dialect kept: the settings' own, DuckDB by default)."""
    if not incremental:
        return settings
    dialect = settings.get("sql_dialect", "duckdb")
    rules = []
    for rule in settings["blocking_rules_to_generate_predictions"]:
        rule = dict(rule) if isinstance(rule, dict) else {"blocking_rule": str(rule)}
        rule["blocking_rule"] = f"({rule['blocking_rule']}) AND (l.changed OR r.changed)"
        rules.append(rule | {"sql_dialect": rule.get("sql_dialect", dialect)})
    return settings | {"blocking_rules_to_generate_predictions": rules}


def _changed_and_partners(ws: MatchWorkspace, frame: pa.Table, settings: dict) -> pa.Table:
    """The records of `frame` that can be in a pair with a changed record: the changed ones
    (flagged `changed`, which the restricted blocking rules read) and every record a
    blocking rule joins to one, on either side. Splink then blocks and compares these few
    rather than every record; the candidate pairs are the same."""
    con = ws.con
    with warehouse.registered(con, "match_frame", frame):
        con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {ws.flagged} AS
            SELECT f.*, f.unique_id IN (SELECT node FROM {ws.changed}) AS changed
            FROM match_frame f""")
    rules = [
        rule if isinstance(rule, dict) else {"blocking_rule": str(rule)}
        for rule in settings["blocking_rules_to_generate_predictions"]
    ]
    joins = [
        f"SELECT {other}.unique_id FROM {ws.flagged} l JOIN {ws.flagged} r "
        f"ON ({rule['blocking_rule']}) AND {side}.changed"
        for rule in rules
        for side, other in (("l", "r"), ("r", "l"))  # a rule need not be symmetric
    ]
    # a rule with more than a join condition (arrays to explode, salting) keeps every record
    plain = all(set(rule) <= {"blocking_rule", "sql_dialect"} for rule in rules)
    partners = f"OR unique_id IN ({' UNION '.join(joins)})" if plain else "OR true"
    try:
        return con.sql(
            f"SELECT * FROM {ws.flagged} WHERE changed {partners} ORDER BY unique_id"
        ).to_arrow_table()
    finally:
        con.execute(f"DROP TABLE {ws.flagged}")


def _score_changed(
    ws: MatchWorkspace,
    model: MatchModel,
    frame: pa.Table,
    review: float,
    incremental: bool,
    spark: SparkScoring | None = None,
) -> int:
    """Score the candidate pairs with a changed record (every pair when not incremental)
    under the model's own prior, on DuckDB or, with `spark`, on Spark (the same pairs and
    weights, see custpipe.spark.scoring); append those at or above `review` to
    mdm.match_pairs."""
    con = ws.con
    (changed,) = con.execute(f"SELECT count(*) FROM {ws.changed}").fetchone()
    if changed == 0:
        return 0
    trained = model.settings_for(0)  # 0 records: the largest prior
    if incremental:
        frame = _changed_and_partners(ws, frame, trained)
    fields, tf = compared_fields(model), tf_fields(model)
    weight = " + ".join([f"mw_{f}" for f in fields] + [f"coalesce(mw_tf_adj_{f}, 0)" for f in tf])
    gammas = ", ".join(f"gamma_{f}" for f in fields)
    weights = ", ".join(f"mw_{f}" for f in fields)
    tf_weights = ", ".join(f"mw_tf_adj_{f}" for f in tf) or "NULL"
    pair_sql = f"""SELECT unique_id_l AS a, unique_id_r AS b, {weight} AS weight,
                   [{gammas}]::INTEGER[] AS gammas, [{weights}]::DOUBLE[] AS weights,
                   [{tf_weights}]::DOUBLE[] AS tf_weights FROM p"""
    if spark is not None:
        from custpipe.spark.scoring import weight_columns_sql

        with spark.runner.exchange() as work:
            path = work.put_arrow("match_input", frame)
            del frame
            spark.predict(path, trained, review, incremental, work.result)
            mw = ", ".join(weight_columns_sql(trained))
            pairs = con.execute(
                f"WITH p AS (SELECT *, {mw} FROM {parts(work.result)}) {pair_sql}"
            ).to_arrow_table()
        return _insert_pairs(ws, pairs)
    linker = _splink_linker(frame, restricted_rules(trained, incremental))
    del frame
    scored = linker.inference.predict(threshold_match_probability=review, warning_mode="never")
    try:
        pairs = scored.as_duckdbpyrelation().query("p", pair_sql)
        return _insert_pairs(ws, pairs.to_arrow_reader(100_000))
    finally:
        scored.drop_table_from_database_and_remove_from_cache()


def _insert_pairs(ws: MatchWorkspace, pairs) -> int:
    """Append scored pairs (a, b: nodes; weight, gammas, weights, tf_weights; Arrow) to
    mdm.match_pairs by their records' keys; return how many."""
    with (
        warnings.catch_warnings(),
        warehouse.registered(ws.con, "splink_pairs", pairs),
    ):
        warnings.filterwarnings("ignore", message="Arrow output on a DB-API result")
        (n,) = ws.con.execute(f"""
            INSERT INTO mdm.match_pairs BY NAME
            SELECT na.source_system AS left_source_system, na.source_id AS left_source_id,
                   nb.source_system AS right_source_system, nb.source_id AS right_source_id,
                   p.weight, p.gammas, p.weights, p.tf_weights
            FROM splink_pairs p JOIN {ws.nodes} na ON na.node = p.a
            JOIN {ws.nodes} nb ON nb.node = p.b
        """).fetchone()
    return n


def _store_records(ws: MatchWorkspace, incremental: bool) -> None:
    """Make mdm.match_records what `ws.record_state` holds: rewritten in a full run, in an
    incremental one only the rows of `ws.record_diff` are deleted and inserted."""
    columns = "source_system, source_id, input_hash, raw_hash"
    if not incremental:
        warehouse.replace_table_from(
            ws.con, "mdm.match_records", f"SELECT {columns} FROM {ws.record_state}"
        )
        return
    ws.con.execute(f"""
        DELETE FROM mdm.match_records m
        WHERE EXISTS (SELECT 1 FROM {ws.record_diff} d
                      WHERE d.last_system = m.source_system AND d.last_id = m.source_id);
        INSERT INTO mdm.match_records
        SELECT {columns} FROM {ws.record_state}
        WHERE node IN (SELECT node FROM {ws.record_diff});
    """)


def refresh_pairs(
    ws: MatchWorkspace,
    model: MatchModel,
    review: float,
    incremental: bool,
    spark: SparkScoring | None = None,
) -> PairRefresh:
    """Bring mdm.match_pairs and mdm.match_records up to tonight's accepted records (see the
    module docstring); a full refresh (`incremental` False) scores every candidate pair.
    `spark`: score on Spark (engine: spark) rather than DuckDB."""
    incremental = incremental and not needs_full_scoring(model)
    frame = match_input(ws, derived_in_rules(model.splink))
    _record_state(ws, frame)
    changed, removed = _changed_records(ws, incremental)
    scored = _score_changed(ws, model, frame, review, incremental, spark)
    del frame
    _store_records(ws, incremental)
    (stored,) = ws.con.execute("SELECT count(*) FROM mdm.match_pairs").fetchone()
    return PairRefresh(changed, removed, scored, stored)


def tonight_prior(model: MatchModel, records: int) -> float:
    """The prior (a match weight) of a night matching `records` records."""
    return prior_weight(model.settings_for(records)["probability_two_random_records_match"])


def probability_sql(prior: str, weight: str) -> str:
    """SQL of a pair's match probability from the prior and its stored weight (SQL)."""
    return f"1 / (1 + pow(2, -({prior} + {weight})))"


def load_scored(ws: MatchWorkspace, model: MatchModel, review: float) -> int:
    """Make `ws.scored` (a, b, probability, gamma_<field>, mw_<field>, mw_tf_adj_<field>)
    from mdm.match_pairs: tonight's probability (the prior for tonight's number of records
    added to the stored weight) at or above `review`; return how many."""
    prior = tonight_prior(model, ws.records)
    fields, tf = compared_fields(model), tf_fields(model)
    columns = ", ".join(
        [
            f"p.gammas[{i + 1}] AS gamma_{f}, p.weights[{i + 1}] AS mw_{f}"
            for i, f in enumerate(fields)
        ]
        + [f"p.tf_weights[{i + 1}] AS mw_tf_adj_{f}" for i, f in enumerate(tf)]
    )
    ws.con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE {ws.scored} AS
        SELECT * FROM (
            SELECT na.node AS a, nb.node AS b,
                   {probability_sql("$prior", "p.weight")} AS probability, {columns}
            FROM mdm.match_pairs p
            JOIN {ws.nodes} na ON na.source_system = p.left_source_system
                              AND na.source_id = p.left_source_id
            JOIN {ws.nodes} nb ON nb.source_system = p.right_source_system
                              AND nb.source_id = p.right_source_id)
        WHERE probability >= $review  -- in no order: its readers order or group
    """,
        {"prior": prior, "review": review},
    )
    return ws.con.execute(f"SELECT count(*) FROM {ws.scored}").fetchone()[0]
