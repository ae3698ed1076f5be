"""The scored pairs kept from night to night, so a night scores only the pairs of what changed.

`mdm.match_pairs` holds every candidate pair the model scored at or above the review
threshold, named by its two records' keys, with its match weight *without the prior* (the
sum of the compared fields' weights), and per field its comparison level and weight.
`mdm.match_records` holds, per record matched, its match input (the canonical match
columns), the hash of that input with the derived blocking keys, and its staged `raw_hash`.

An incremental night (:func:`refresh_pairs` with ``incremental=True``):

1. finds the records whose match input is new or changed since the last night, and those
   gone (deleted at the source, quarantined now, or changed): the match input is made only
   for the records whose staged row is new or changed (`raw_hash`), the others keep the
   one stored;
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
import re
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING

import pyarrow as pa

from custpipe import warehouse
from custpipe.matching.model import (
    MATCH_COLUMNS,
    MatchModel,
    _splink_linker,
    compared_fields,
    derived_parts,
    match_input,
    tf_fields,
    with_python_parts,
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
    """Make `ws.record_state` (node, source_system, source_id, input_hash, raw_hash and the
    canonical match columns) of the records in `frame` (the match input of some nodes)."""
    columns = [c for c in frame.column_names if c != "unique_id"]
    hashed = ", ".join(f'f."{c}"' for c in columns)
    kept = ", ".join(f'f."{c}"' for c in MATCH_COLUMNS)
    with warehouse.registered(ws.con, "match_frame", frame):
        ws.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE {ws.record_state} AS
            SELECT n.node, n.source_system, n.source_id, hash({hashed}) AS input_hash,
                   n.raw_hash, {kept}
            FROM match_frame f JOIN {ws.nodes} n ON n.node = f.unique_id
        """)


def _full_diff(ws: MatchWorkspace) -> None:
    """`ws.record_diff` of a night whose `ws.record_state` holds every record."""
    ws.con.execute(f"""
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


def _restaged_input(ws: MatchWorkspace, derived: list[str]) -> None:
    """In an incremental night: `ws.restaged` (node: records new or whose staged row changed
    since the last night, by `raw_hash`), the match input of those only in
    `ws.record_state`, and `ws.record_diff` from the two. A record whose staged row is the
    one matched last night has last night's match input (it is made from the staged row
    alone; the code and settings that make it are in the consolidation's fingerprint), so
    it is not made again: the same `ws.record_diff` as `_full_diff` over every record."""
    con = ws.con
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ws.node_diff} AS
        SELECT n.node, m.source_system AS last_system, m.source_id AS last_id,
               m.input_hash AS last_input, m.raw_hash AS last_raw
        FROM {ws.nodes} n FULL JOIN mdm.match_records m
            ON m.source_system = n.source_system AND m.source_id = n.source_id
        WHERE NOT coalesce(n.raw_hash = m.raw_hash, false);
        CREATE OR REPLACE TEMP TABLE {ws.restaged} AS
        SELECT node FROM {ws.node_diff} WHERE node IS NOT NULL;
    """)
    _record_state(ws, match_input(ws, derived, nodes=ws.restaged))
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ws.record_diff} AS
        SELECT d.node, s.input_hash, s.raw_hash, d.last_system, d.last_id, d.last_input,
               d.last_raw
        FROM {ws.node_diff} d LEFT JOIN {ws.record_state} s USING (node);
        DROP TABLE {ws.node_diff};
    """)


def _changed_records(ws: MatchWorkspace, incremental: bool) -> tuple[int, int]:
    """From `ws.record_diff` (the records whose state differs from last night's
    mdm.match_records, with both states; the rest reads this small table): `ws.changed`
    (node): the records whose match input is new or changed (every record when not
    `incremental`); in an incremental run, `ws.gone` (source_system, source_id): last
    night's records gone or changed, whose stored pairs are deleted. A record is one per
    (source_system, source_id) on either side. Returns (changed, removed)."""
    con = ws.con
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


_SIDE = re.compile(r"\b([lr])\.")
_EQUALITY = re.compile(r'\b([lr])\.("[^"]+"|\w+)\s*=\s*([lr])\.("[^"]+"|\w+)')


def _canonical(rule: str) -> str:
    """`rule` with both sides of each equality of two columns in one order."""

    def ordered(m: re.Match) -> str:
        return " = ".join(sorted((f"{m[1]}.{m[2]}", f"{m[3]}.{m[4]}")))

    return _EQUALITY.sub(ordered, rule)


def symmetric(rule: str) -> bool:
    """True when the blocking rule reads the same with its sides `l` and `r` swapped (so a
    record pairs with the same records on either side); False when that is not certain."""
    swapped = _SIDE.sub(lambda m: "r." if m[1] == "l" else "l.", rule)
    return _canonical(swapped) == _canonical(rule)


def _changed_and_partners(ws: MatchWorkspace, derived: list[str], settings: dict) -> pa.Table:
    """The records that can be in a pair with a changed record, with their match input as
    mdm.match_records keeps it (tonight's: stored before scoring) and the `derived`
    blocking columns: the changed ones (flagged `changed`, which the restricted blocking
    rules read) and every record a blocking rule joins to one, on either side. Splink then
    blocks and compares these few rather than every record; the candidate pairs are the
    same."""
    con = ws.con
    sql_parts, python_parts = derived_parts(derived)
    columns = ", ".join(f'm."{c}"' for c in MATCH_COLUMNS)
    con.execute(f"""
        CREATE OR REPLACE TEMP TABLE {ws.flagged} AS
        SELECT *{"".join(f", {p}" for p in sql_parts)} FROM (
            SELECT n.node AS unique_id, {columns},
                   n.node IN (SELECT node FROM {ws.changed}) AS changed
            FROM {ws.nodes} n JOIN mdm.match_records m
              ON m.source_system = n.source_system AND m.source_id = n.source_id)""")
    if python_parts:  # phonetic keys: computed here, for every record, as a full night does
        table = with_python_parts(con.sql(f"FROM {ws.flagged}").to_arrow_table(), python_parts)
        with warehouse.registered(con, "flagged_frame", table):
            con.execute(f"CREATE OR REPLACE TEMP TABLE {ws.flagged} AS FROM flagged_frame")
        del table
    rules = [
        rule if isinstance(rule, dict) else {"blocking_rule": str(rule)}
        for rule in settings["blocking_rules_to_generate_predictions"]
    ]
    joins = [
        f"SELECT {other}.unique_id FROM {ws.flagged} l JOIN {ws.flagged} r "
        f"ON ({rule['blocking_rule']}) AND {side}.changed"
        for rule in rules
        # a rule need not be symmetric; one that is finds the same partners on either side
        for side, other in (("l", "r"),)
        + (() if symmetric(rule["blocking_rule"]) else (("r", "l"),))
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
    frame: pa.Table | None,
    review: float,
    incremental: bool,
    spark: SparkScoring | None = None,
) -> int:
    """Score the candidate pairs with a changed record (every pair when not incremental)
    under the model's own prior, on DuckDB or, with `spark`, on Spark (the same pairs and
    weights, see custpipe.spark.scoring); append those at or above `review` to
    mdm.match_pairs. `frame`: every record's match input (None when `incremental`: the
    changed records and their partners are read from mdm.match_records)."""
    con = ws.con
    (changed,) = con.execute(f"SELECT count(*) FROM {ws.changed}").fetchone()
    if changed == 0:
        return 0
    trained = model.settings_for(0)  # 0 records: the largest prior
    if incremental:
        frame = _changed_and_partners(ws, derived_in_rules(model.splink), trained)
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
    columns = ", ".join(("source_system", "source_id", "input_hash", "raw_hash", *MATCH_COLUMNS))
    if not incremental:
        warehouse.replace_table_from(
            ws.con, "mdm.match_records", f"SELECT {columns} FROM {ws.record_state}"
        )
        return
    ws.con.execute(f"""
        DELETE FROM mdm.match_records m
        WHERE EXISTS (SELECT 1 FROM {ws.record_diff} d
                      WHERE d.last_system = m.source_system AND d.last_id = m.source_id);
        INSERT INTO mdm.match_records BY NAME
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
    derived = derived_in_rules(model.splink)
    frame = None
    if incremental:  # the match input of the restaged records only
        _restaged_input(ws, derived)
    else:
        frame = match_input(ws, derived)
        _record_state(ws, frame)
        _full_diff(ws)
    changed, removed = _changed_records(ws, incremental)
    _store_records(ws, incremental)  # first: an incremental night scores from it
    scored = _score_changed(ws, model, frame, review, incremental, spark)
    del frame
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
