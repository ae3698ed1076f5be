"""The steward review queue: uncertain pairs, each with a per-field explanation of its score."""

from __future__ import annotations

from pathlib import Path

import duckdb
import pandas as pd

REVIEW_SQL = (Path(__file__).parent / "review.sql").read_text(encoding="utf-8")

# field -> weight of its agreement in the non-name half of the score
REVIEW_FIELDS: dict[str, float] = {
    "postal_code": 1.0,
    "city": 0.5,
    "street": 1.0,
    "phone": 1.5,
    "email": 1.5,
    "tax_id": 2.0,
}


def _comparison(field: str) -> str:
    return (
        f"CASE WHEN a.{field} IS NULL OR b.{field} IS NULL THEN 'missing' "
        f"WHEN a.{field} = b.{field} THEN 'agree' ELSE 'disagree' END AS {field}"
    )


def _agreement() -> str:
    """Share of the weight of the fields both records have that agree (0.5 with no evidence)."""
    compared = " + ".join(
        f"CASE {f} WHEN 'missing' THEN 0 ELSE {w} END" for f, w in REVIEW_FIELDS.items()
    )
    agree = " + ".join(
        f"CASE {f} WHEN 'agree' THEN {w} ELSE 0 END" for f, w in REVIEW_FIELDS.items()
    )
    return f"CASE WHEN ({compared}) = 0 THEN 0.5 ELSE ({agree}) / ({compared}) END"


def review_pairs(
    con: duckdb.DuckDBPyConnection,
    min_score: float = 0.6,
    min_name_similarity: float = 0.85,
    max_block: int = 200,
) -> pd.DataFrame:
    """Pairs to review from temp tables `nodes` and `labels` (built by consolidation)."""
    sql = REVIEW_SQL.format(
        comparisons=", ".join(_comparison(f) for f in REVIEW_FIELDS),
        agreement=_agreement(),
        explanation=", ".join(f"'{f}', {f}" for f in REVIEW_FIELDS),
    )
    params = {
        "min_score": min_score,
        "min_name_similarity": min_name_similarity,
        "max_block": max_block,
    }
    return con.execute(sql, params).df()


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
    sheet.to_csv(path, index=False, encoding="utf-8")
    return path
