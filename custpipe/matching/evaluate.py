"""Match quality against a ground truth: pairwise precision / recall / F1 and cluster metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd

from custpipe import warehouse
from custpipe.matching.workspace import MatchWorkspace


@dataclass(frozen=True)
class MatchQuality:
    """How well the golden records reproduce the true entities.

    Every record of the truth counts: one that was not consolidated (quarantined, or never
    staged) is in no golden record, so its true pairs are missed. Records the truth does not
    know are left out.
    """

    records: int  # truth records consolidated (in the cross-reference)
    predicted_pairs: int  # same-golden-record pairs among them
    true_pairs: int  # same-entity pairs among every truth record
    true_positive_pairs: int
    exact_clusters: int  # golden records whose members are exactly one entity's records
    entities: int  # entities of the truth
    unconsolidated: int = 0  # truth records in no golden record (quarantined, never staged)
    true_pairs_consolidated: int = 0  # same-entity pairs among the consolidated records

    @property
    def precision(self) -> float:
        """Share of predicted same-customer pairs that are true."""
        return self.true_positive_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        """Share of the truth's same-customer pairs that were found (a pair with a record
        that was not consolidated is missed)."""
        return self.true_positive_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def recall_consolidated(self) -> float:
        """Recall among the consolidated records only: the matching's own share, apart from
        what quarantine and staging held back."""
        found, true = self.true_positive_pairs, self.true_pairs_consolidated
        return found / true if true else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        """Figures and derived metrics, rounded for reports."""
        out = asdict(self)
        out |= {
            k: round(getattr(self, k), 4)
            for k in ("precision", "recall", "f1", "recall_consolidated")
        }
        out["exact_cluster_rate"] = (
            round(self.exact_clusters / self.entities, 4) if self.entities else 1.0
        )
        return out


def _pairs(sizes: pd.Series) -> int:
    return int((sizes * (sizes - 1) // 2).sum())


KEYS = ["source_system", "source_id"]


def not_consolidated(xref: pd.DataFrame, truth: pd.DataFrame) -> pd.DataFrame:
    """The truth's records (source_system, source_id) that are in no golden record of `xref`:
    quarantined, or never staged."""
    keys = truth[KEYS].drop_duplicates()
    found = keys.merge(xref[KEYS].drop_duplicates(), on=KEYS, how="left", indicator=True)
    return found.loc[found["_merge"] == "left_only", KEYS].reset_index(drop=True)


def evaluate_matches(xref: pd.DataFrame, truth: pd.DataFrame) -> MatchQuality:
    """Compare `xref` (source_system, source_id, golden_id) with `truth` (… , entity_id).

    Recall counts the true pairs of every truth record: a record not in `xref` (quarantined
    or never staged) has all its true pairs missed, and is counted in `unconsolidated`.
    Precision looks at the pairs `xref` makes among the truth's records only.
    """
    truth = truth[[*KEYS, "entity_id"]].drop_duplicates(KEYS)
    both = truth.merge(xref[[*KEYS, "golden_id"]], on=KEYS, how="left")
    found = both[both["golden_id"].notna()]
    entity_sizes = truth.groupby("entity_id").size()
    golden_sizes = found.groupby("golden_id").size()
    per_golden = found.groupby("golden_id")["entity_id"].nunique()
    single = found[found["golden_id"].isin(per_golden[per_golden == 1].index)]
    first_entity = single.groupby("golden_id")["entity_id"].first()
    exact = int(  # one entity's records, all of them (none held back)
        (golden_sizes[first_entity.index].values == entity_sizes[first_entity.values].values).sum()
    )
    return MatchQuality(
        records=len(found),
        predicted_pairs=_pairs(golden_sizes),
        true_pairs=_pairs(entity_sizes),
        true_positive_pairs=_pairs(found.groupby(["golden_id", "entity_id"]).size()),
        exact_clusters=exact,
        entities=len(entity_sizes),
        unconsolidated=len(both) - len(found),
        true_pairs_consolidated=_pairs(found.groupby("entity_id").size()),
    )


def staged_not_consolidated(ws: MatchWorkspace, missing: pd.DataFrame) -> tuple[int, int]:
    """Of the truth records without a golden record (`missing`: source_system, source_id),
    those staged and in their source's latest quarantine (a configured source), and the
    other staged ones (staged after the last consolidation, or of an unconfigured source)."""
    with warehouse.registered(ws.con, "truth_missing", missing):
        quarantined, other = ws.con.execute(f"""
            WITH staged AS (
                SELECT t.source_system IN (SELECT source_system FROM {ws.trust}) AND EXISTS (
                    SELECT 1 FROM quality.quarantine q
                    JOIN {ws.latest_validation} v USING (source_system, run_id)
                    WHERE q.source_system = t.source_system AND q.source_id = t.source_id
                ) AS held
                FROM truth_missing t
                WHERE EXISTS (SELECT 1 FROM staging.customers s
                              WHERE s.source_system = t.source_system
                                AND s.source_id = t.source_id)
            )
            SELECT count(*) FILTER (WHERE held), count(*) FILTER (WHERE NOT held) FROM staged
        """).fetchone()
    return int(quarantined), int(other)
