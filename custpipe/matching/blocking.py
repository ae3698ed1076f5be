"""Blocking analysis: what each blocking rule puts up for scoring.

The rules are those of a Splink settings dict, in their order: `custpipe evaluate --blocking`
analyses the configured ones (pipeline.yaml's `matching:` section, `settings.splink_settings`),
so a deployment sees what a new rule costs before it trains a model with it; blocking needs no
trained parameter. The candidate pairs are the ones the nightly run would score: Splink's
blocked pairs for prediction, each tagged with the first rule that makes it (a pair an
earlier rule already made is not counted again). With a ground truth, each rule's true pairs
(both records of one entity) and the cumulative blocking recall: the share of the true pairs
among the matched records that some rule up to this one blocks. Counts only; never a
record's values.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd

from custpipe.matching.model import MatchModel, _splink_linker, match_input
from custpipe.matching.settings import MatchSettings, derived_in_rules, splink_settings
from custpipe.matching.workspace import MatchWorkspace


@dataclass(frozen=True)
class RuleCount:
    """One blocking rule: the pairs it adds to those of the rules before it, and the totals."""

    rule: str  # the rule's SQL, as Splink's settings hold it
    pairs: int  # candidate pairs this rule makes that no earlier rule made
    cumulative_pairs: int  # candidate pairs of this rule and every earlier one
    true_pairs: int | None = None  # of `pairs`, those of one entity (with a truth)
    cumulative_true_pairs: int | None = None


@dataclass(frozen=True)
class BlockingAnalysis:
    """Per blocking rule of a Splink settings dict, in its order, on one set of records."""

    records: int  # records blocked (the accepted records)
    rules: tuple[RuleCount, ...]
    true_pairs: int | None = None  # same-entity pairs among the records (with a truth)

    @property
    def candidate_pairs(self) -> int:
        """Every candidate pair the rules make together."""
        return self.rules[-1].cumulative_pairs if self.rules else 0

    @property
    def true_pairs_blocked(self) -> int | None:
        """True pairs some rule makes (None without a truth)."""
        if self.true_pairs is None:
            return None
        return self.rules[-1].cumulative_true_pairs if self.rules else 0

    @property
    def blocking_recall(self) -> float | None:
        """Share of the true pairs that some rule makes (None without a truth)."""
        if self.true_pairs is None:
            return None
        return self.true_pairs_blocked / self.true_pairs if self.true_pairs else 1.0

    def recall(self, upto: int) -> float | None:
        """Share of the true pairs blocked by rules 0..`upto` (None without a truth)."""
        blocked = self.rules[upto].cumulative_true_pairs
        if self.true_pairs is None or blocked is None:
            return None
        return blocked / self.true_pairs if self.true_pairs else 1.0

    def as_dict(self) -> dict:
        """Figures per rule (recall rounded), for reports and JSON."""
        rules = []
        for i, r in enumerate(self.rules):
            row: dict[str, Any] = {
                "rule": r.rule,
                "pairs": r.pairs,
                "cumulative_pairs": r.cumulative_pairs,
            }
            if self.true_pairs is not None:
                recall = self.recall(i)
                row |= {
                    "true_pairs": r.true_pairs,
                    "cumulative_true_pairs": r.cumulative_true_pairs,
                    "cumulative_recall": None if recall is None else round(recall, 4),
                }
            rules.append(row)
        return {"records": self.records, "true_pairs": self.true_pairs, "rules": rules}


def blocking_rules(splink: dict[str, Any]) -> list[str]:
    """The blocking rules of a Splink settings dict, in order, as SQL text."""
    rules = splink.get("blocking_rules_to_generate_predictions") or []
    return [r["blocking_rule"] if isinstance(r, dict) else str(r) for r in rules]


PER_RULE_SQL = """
WITH pairs AS (  -- a pair once, under the first rule that makes it
    SELECT join_key_l AS a, join_key_r AS b, min(CAST(match_key AS INTEGER)) AS rule
    FROM blocked GROUP BY ALL
)
SELECT p.rule, count(*) AS pairs,
       count(*) FILTER (WHERE ea.entity_id = eb.entity_id) AS true_pairs
FROM pairs p
LEFT JOIN entities ea ON ea.unique_id = p.a
LEFT JOIN entities eb ON eb.unique_id = p.b
GROUP BY p.rule
"""


def count_blocked_pairs(
    frame: Any, splink: dict[str, Any], entities: pd.DataFrame | None = None
) -> BlockingAnalysis:
    """Blocking analysis of `frame` (the match input: `unique_id` and the columns the rules
    read, derived ones included; Arrow or pandas) under the rules of the Splink settings
    `splink` (trained or not).

    `entities` (unique_id, entity_id), if given, is the ground truth of the records: a
    record without an entity is in no true pair.
    """
    rules = blocking_rules(splink)
    records = frame.num_rows if hasattr(frame, "num_rows") else len(frame)
    if entities is None:
        known = pd.DataFrame({"unique_id": pd.Series([], dtype="int64"), "entity_id": ""})
    else:
        known = entities[["unique_id", "entity_id"]].dropna().drop_duplicates("unique_id")
    by_rule: dict[int, tuple[int, int]] = {}
    if rules and records > 1:
        linker = _splink_linker(frame, json.loads(json.dumps(splink)))  # Splink may mutate it
        blocked = linker.inference.compute_blocked_pairs_for_predict()
        reader = blocked.as_duckdbpyrelation().to_arrow_reader(100_000)
        with duckdb.connect() as con:
            con.register("blocked", reader)
            con.register("entities", known)
            rows = con.execute(PER_RULE_SQL).fetchall()
        blocked.drop_table_from_database_and_remove_from_cache()
        by_rule = {int(rule): (int(pairs), int(true)) for rule, pairs, true in rows}
    counted, total, total_true = [], 0, 0
    for i, rule in enumerate(rules):
        pairs, true = by_rule.get(i, (0, 0))
        total, total_true = total + pairs, total_true + true
        if entities is None:
            counted.append(RuleCount(rule, pairs, total))
        else:
            counted.append(RuleCount(rule, pairs, total, true, total_true))
    true_pairs = None
    if entities is not None:
        sizes = known.groupby("entity_id").size()
        true_pairs = int((sizes * (sizes - 1) // 2).sum())
    return BlockingAnalysis(records, tuple(counted), true_pairs)


def analyse_blocking(
    ws: MatchWorkspace, splink: dict[str, Any], truth: pd.DataFrame | None = None
) -> BlockingAnalysis:
    """Blocking analysis of the workspace's accepted records (`ws.nodes`) under the rules of
    the Splink settings `splink` (the configured ones, or a model file's); `truth`
    (source_system, source_id, entity_id) adds the true pairs.

    The derived columns the rules read (such as 'name_key_prefix4') are computed first. A
    truth record that is not among the accepted records (quarantined, never staged) is in
    no candidate pair and is left out here (the match recall of `evaluate` counts it).
    """
    frame = match_input(ws, derived_in_rules(splink))
    entities = None
    if truth is not None:
        nodes = ws.con.execute(f"SELECT node, source_system, source_id FROM {ws.nodes}").df()
        entities = nodes.merge(
            truth[["source_system", "source_id", "entity_id"]],
            on=["source_system", "source_id"],
        ).rename(columns={"node": "unique_id"})
    return count_blocked_pairs(frame, splink, entities)


@dataclass(frozen=True)
class ModelFileCheck:
    """The match model file beside the configured settings: what `evaluate` tells the user."""

    state: str  # "same", "differs" (other settings), "missing", "unreadable"
    rules_differ: bool | None  # its blocking rules are not the configured ones (None: unread)
    message: str | None = None  # the problem and the fix (None when the same)

    def as_dict(self, path: Path | str) -> dict[str, Any]:
        """The check for reports and JSON."""
        return {
            "path": str(path),
            "state": self.state,
            "blocking_rules_differ": self.rules_differ,
            "message": self.message,
        }


def check_model_file(path: Path | str, settings: MatchSettings) -> ModelFileCheck:
    """Compare the model file at `path` with the configured matching `settings` (the
    deployment's `PipelineConfig.match_settings()`), never raising for the file: a blocking
    analysis needs no trained model, so a missing, damaged or outdated file is reported.
    """
    path = Path(path)
    if not path.exists():
        return ModelFileCheck(
            "missing",
            None,
            f"no match model file at {path} yet: run `custpipe train-model` (or the "
            "train_match_model job) before the first run",
        )
    try:
        model = MatchModel.load(path)
    except ValueError as exc:  # reported to the user, with the file and the fix
        return ModelFileCheck("unreadable", None, str(exc))
    configured = splink_settings(settings)
    rules_differ = blocking_rules(model.splink) != blocking_rules(configured)
    try:
        model.check_settings(settings, path)
    except ValueError as exc:  # the retrain message, naming what differs
        return ModelFileCheck("differs", rules_differ, str(exc))
    return ModelFileCheck("same", rules_differ)
