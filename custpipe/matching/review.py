"""The steward review queue: uncertain pairs, each with a per-field explanation of its score."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from custpipe.csv_safe import write_csv
from custpipe.matching.model import MatchModel, explain
from custpipe.matching.workspace import MatchWorkspace


def review_queue(ws: MatchWorkspace, model: MatchModel, auto_merge: float) -> pd.DataFrame:
    """Model-scored pairs below `auto_merge` whose records ended in different clusters and
    that no steward has decided yet, each with its per-field explanation.

    Reads `ws.scored` (pairs already at or above the review threshold, see
    :func:`score_pairs`), `ws.labels`, `ws.nodes` and `ws.decided`; only the queue's pairs
    leave DuckDB.
    """
    pairs = ws.con.execute(
        f"""
        SELECT s.*,
               na.source_system AS left_source_system, na.source_id AS left_source_id,
               nb.source_system AS right_source_system, nb.source_id AS right_source_id
        FROM {ws.scored} s
        JOIN {ws.labels} la ON la.node = s.a JOIN {ws.labels} lb ON lb.node = s.b
        JOIN {ws.nodes} na ON na.node = s.a JOIN {ws.nodes} nb ON nb.node = s.b
        WHERE s.probability < $auto_merge AND la.label <> lb.label
          AND NOT EXISTS (SELECT 1 FROM {ws.decided} d
                          WHERE least(d.a, d.b) = least(s.a, s.b)
                            AND greatest(d.a, d.b) = greatest(s.a, s.b))
        ORDER BY s.a, s.b
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
