"""Match quality against a ground truth: pairwise precision / recall / F1 and cluster metrics."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import pandas as pd


@dataclass(frozen=True)
class MatchQuality:
    """How well the golden records reproduce the true entities (records present in both)."""

    records: int
    predicted_pairs: int
    true_pairs: int
    true_positive_pairs: int
    exact_clusters: int  # golden records whose members are exactly one entity's records
    entities: int

    @property
    def precision(self) -> float:
        """Share of predicted same-customer pairs that are true."""
        return self.true_positive_pairs / self.predicted_pairs if self.predicted_pairs else 1.0

    @property
    def recall(self) -> float:
        """Share of true same-customer pairs that were found."""
        return self.true_positive_pairs / self.true_pairs if self.true_pairs else 1.0

    @property
    def f1(self) -> float:
        """Harmonic mean of precision and recall."""
        p, r = self.precision, self.recall
        return 2 * p * r / (p + r) if p + r else 0.0

    def as_dict(self) -> dict:
        """Figures and derived metrics, rounded for reports."""
        out = asdict(self)
        out |= {k: round(getattr(self, k), 4) for k in ("precision", "recall", "f1")}
        out["exact_cluster_rate"] = (
            round(self.exact_clusters / self.entities, 4) if self.entities else 1.0
        )
        return out


def _pairs(sizes: pd.Series) -> int:
    return int((sizes * (sizes - 1) // 2).sum())


def evaluate_matches(xref: pd.DataFrame, truth: pd.DataFrame) -> MatchQuality:
    """Compare `xref` (source_system, source_id, golden_id) with `truth` (… , entity_id)."""
    both = xref.merge(truth, on=["source_system", "source_id"], how="inner")
    predicted = _pairs(both.groupby("golden_id").size())
    true = _pairs(both.groupby("entity_id").size())
    joint = _pairs(both.groupby(["golden_id", "entity_id"]).size())
    per_golden = both.groupby("golden_id")["entity_id"].nunique()
    golden_sizes = both.groupby("golden_id").size()
    entity_sizes = both.groupby("entity_id").size()
    single = both[both["golden_id"].isin(per_golden[per_golden == 1].index)]
    first_entity = single.groupby("golden_id")["entity_id"].first()
    exact = int(
        (golden_sizes[first_entity.index].values == entity_sizes[first_entity.values].values).sum()
    )
    return MatchQuality(len(both), predicted, true, joint, exact, int(both["entity_id"].nunique()))


@dataclass(frozen=True)
class BlockingQuality:
    """How many candidate pairs the model's blocking rules make, and how many true pairs."""

    candidate_pairs: int
    true_pairs: int
    true_pairs_blocked: int

    @property
    def recall(self) -> float:
        """Share of true same-customer pairs that some blocking rule puts up for scoring."""
        return self.true_pairs_blocked / self.true_pairs if self.true_pairs else 1.0


def evaluate_blocking(
    candidates: pd.DataFrame, nodes: pd.DataFrame, truth: pd.DataFrame
) -> BlockingQuality:
    """`candidates` (a, b node pairs), `nodes` (node, source_system, source_id) vs `truth`.

    True pairs are counted among the records present in both `nodes` and `truth`.
    """
    entity = nodes.merge(truth, on=["source_system", "source_id"])[["node", "entity_id"]]
    sizes = entity.groupby("entity_id").size()
    by_node = entity.set_index("node")["entity_id"]
    left, right = candidates["a"].map(by_node), candidates["b"].map(by_node)
    blocked = int((left.notna() & (left == right)).sum())
    return BlockingQuality(len(candidates), _pairs(sizes), blocked)
