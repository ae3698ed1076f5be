"""The steward review queue: uncertain pairs, each with a per-field explanation of its score."""

from __future__ import annotations

from pathlib import Path

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


def export_review(review: pd.DataFrame, path: Path) -> Path:
    """The review queue as a CSV a steward fills in and imports with `custpipe decide --file`.

    Records are named by id only (look them up in the warehouse); the `decision`,
    `decided_by` and `reason` columns are left empty for the steward.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    sheet = pd.DataFrame(
        {
            "left": review["left_source_system"] + ":" + review["left_source_id"],
            "right": review["right_source_system"] + ":" + review["right_source_id"],
            "score": review["score"],
            "explanation": review["explanation"],
            "decision": "",  # must_link or cannot_link
            "decided_by": "",
            "reason": "",
        }
    )
    return write_csv(sheet, path)  # formula payloads escaped (OWASP CSV injection)
