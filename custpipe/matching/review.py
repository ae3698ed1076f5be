"""The steward review queue: uncertain pairs, each with a per-field explanation of its score."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

from custpipe.csv_safe import write_csv
from custpipe.matching.model import MatchModel, explain


def review_queue(
    con: duckdb.DuckDBPyConnection, scored: pd.DataFrame, model: MatchModel, auto_merge: float
) -> pd.DataFrame:
    """Model-scored pairs below `auto_merge` whose records ended in different clusters and
    that no steward has decided yet, each with its per-field explanation.

    `scored` comes from :func:`predict_pairs` (already at or above the review threshold);
    temp tables `nodes`, `labels` and `decided` are read from `con`.
    """
    uncertain = scored[scored["probability"] < auto_merge]  # noqa: F841 (read by DuckDB)
    keep = con.execute("""
        SELECT s.a, s.b,
               na.source_system AS left_source_system, na.source_id AS left_source_id,
               nb.source_system AS right_source_system, nb.source_id AS right_source_id
        FROM (SELECT a, b FROM uncertain) s
        JOIN labels la ON la.node = s.a JOIN labels lb ON lb.node = s.b
        JOIN nodes na ON na.node = s.a JOIN nodes nb ON nb.node = s.b
        WHERE la.label <> lb.label
          AND NOT EXISTS (SELECT 1 FROM decided d
                          WHERE least(d.a, d.b) = least(s.a, s.b)
                            AND greatest(d.a, d.b) = greatest(s.a, s.b))
    """).df()
    pairs = keep.merge(uncertain, on=["a", "b"])
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
