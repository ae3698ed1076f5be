"""The steward review queue: uncertain pairs, each with a per-field explanation of its score."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from custpipe.csv_safe import write_csv
from custpipe.matching.model import MatchModel, explain
from custpipe.matching.workspace import MatchWorkspace


def review_queue(
    ws: MatchWorkspace, model: MatchModel, auto_merge: float, labels: str | None = None
) -> pd.DataFrame:
    """The pairs a steward should decide, each with its per-field explanation: model-scored
    pairs below `auto_merge`, and links an exclusion left out (`ws.kept_apart`, such as two
    records sharing an e-mail address with different valid tax IDs; their explanation names
    the reason and the rule that linked them), whose records ended in different clusters and
    that no steward has decided yet.

    Reads `ws.scored` (pairs already at or above the review threshold, see
    :func:`score_pairs`), `ws.kept_apart`, `labels` (node, label; default `ws.labels`: the
    cluster of every record in a pair), `ws.nodes` and `ws.decided`; only the queue's pairs
    leave DuckDB.
    """
    labels = labels or ws.labels
    pairs = ws.con.execute(
        f"""
        WITH candidates AS (
            SELECT a, b, reason AS kept_apart, rule AS linked_by FROM {ws.kept_apart}
            UNION ALL
            SELECT a, b, NULL, NULL FROM {ws.scored} s
            WHERE s.probability < $auto_merge
              AND NOT EXISTS (SELECT 1 FROM {ws.kept_apart} k WHERE k.a = s.a AND k.b = s.b)
        )
        SELECT c.a, c.b, c.kept_apart, c.linked_by, s.* EXCLUDE (a, b),
               na.source_system AS left_source_system, na.source_id AS left_source_id,
               nb.source_system AS right_source_system, nb.source_id AS right_source_id
        FROM candidates c
        LEFT JOIN {ws.scored} s ON s.a = c.a AND s.b = c.b
        JOIN {labels} la ON la.node = c.a JOIN {labels} lb ON lb.node = c.b
        JOIN {ws.nodes} na ON na.node = c.a JOIN {ws.nodes} nb ON nb.node = c.b
        WHERE la.label <> lb.label
          AND NOT EXISTS (SELECT 1 FROM {ws.decided} d
                          WHERE least(d.a, d.b) = least(c.a, c.b)
                            AND greatest(d.a, d.b) = greatest(c.a, c.b))
        ORDER BY c.a, c.b
        """,
        {"auto_merge": auto_merge},
    ).df()
    queue = pd.DataFrame(
        {
            "left_source_system": pairs["left_source_system"],
            "left_source_id": pairs["left_source_id"],
            "right_source_system": pairs["right_source_system"],
            "right_source_id": pairs["right_source_id"],
            "score": pairs["probability"].round(4),
            "explanation": explain(pairs, model),
        }
    )
    return queue.sort_values(
        ["score", "left_source_system", "left_source_id", "right_source_system"],
        ascending=[False, True, True, True],
        na_position="first",  # links an exclusion kept apart (no score below auto-merge) first
        ignore_index=True,
    )


ALLOWED_DECISIONS = "must_link or cannot_link"


def review_with_golden_ids(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """mdm.match_review (kept-apart links first, then by score) with each record's golden
    record from mdm.customer_xref: `left_golden_id`, `right_golden_id`."""
    # the xref rows of the queue's records first: joining the whole xref twice scanned and
    # hashed every row of it (~0.4 s at 1M records), the id list reads one column once
    return con.execute("""
        WITH x AS (
            SELECT source_system, source_id, golden_id FROM mdm.customer_xref
            WHERE source_id IN (SELECT left_source_id FROM mdm.match_review
                                UNION SELECT right_source_id FROM mdm.match_review)
        )
        SELECT r.*, xl.golden_id AS left_golden_id, xr.golden_id AS right_golden_id
        FROM mdm.match_review r
        LEFT JOIN x xl
          ON xl.source_system = r.left_source_system AND xl.source_id = r.left_source_id
        LEFT JOIN x xr
          ON xr.source_system = r.right_source_system AND xr.source_id = r.right_source_id
        ORDER BY r.score DESC NULLS FIRST, r.left_source_system, r.left_source_id,
                 r.right_source_system, r.right_source_id
    """).df()


def export_review(review: pd.DataFrame, path: Path) -> Path:
    """The review queue as a CSV a steward fills in and imports with `custpipe decide --file`.

    Records are named by id only (look them up in the warehouse or the workbench), with
    their golden records (`left_golden_id`, `right_golden_id`, when `review` has them, see
    :func:`review_with_golden_ids`). `group` names the pair of golden records ("G1|G2",
    sorted): the rows of one group are one decision (a record against a cluster), and stand
    together, groups in the order of their first row. `allowed_decisions` states what
    `decision` may hold; `decision`, `decided_by` and `reason` are left empty for the
    steward.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    left = review["left_source_system"] + ":" + review["left_source_id"]
    right = review["right_source_system"] + ":" + review["right_source_id"]
    empty = pd.Series("", index=review.index, dtype=object)
    left_golden = review.get("left_golden_id", empty).fillna("").astype(str)
    right_golden = review.get("right_golden_id", empty).fillna("").astype(str)
    sides = pd.DataFrame(
        {  # a record without a golden record (none in a consolidated queue) stands for itself
            "a": left_golden.where(left_golden != "", left),
            "b": right_golden.where(right_golden != "", right),
        }
    )
    group = ["|".join(sorted(pair)) for pair in sides.itertuples(index=False)]
    sheet = pd.DataFrame(
        {
            "left": left,
            "right": right,
            "left_golden_id": left_golden,
            "right_golden_id": right_golden,
            "group": group,
            "score": review["score"],
            "explanation": review["explanation"],
            "allowed_decisions": ALLOWED_DECISIONS,
            "decision": "",
            "decided_by": "",
            "reason": "",
        }
    )
    order = sheet.groupby("group", sort=False).ngroup()  # groups by their first row
    sheet = sheet.iloc[order.argsort(kind="stable")].reset_index(drop=True)
    return write_csv(sheet, path)  # formula payloads escaped (OWASP CSV injection)
