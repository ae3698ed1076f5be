import pandas as pd

from custpipe.matching.evaluate import evaluate_matches


def frame(rows, last):
    return pd.DataFrame(rows, columns=["source_system", "source_id", last])


def test_pairwise_and_cluster_metrics():
    truth = frame(
        [
            ("a", "1", "E1"),
            ("b", "1", "E1"),
            ("c", "1", "E1"),
            ("a", "2", "E2"),
            ("b", "2", "E2"),
            ("a", "3", "E3"),
        ],
        "entity_id",
    )
    # E1 found whole; E2 split; E3 wrongly merged into E1's golden record
    xref = frame(
        [
            ("a", "1", "G1"),
            ("b", "1", "G1"),
            ("c", "1", "G1"),
            ("a", "3", "G1"),
            ("a", "2", "G2"),
            ("b", "2", "G3"),
            ("z", "9", "G9"),
        ],
        "golden_id",
    )
    q = evaluate_matches(xref, truth)
    assert (q.records, q.predicted_pairs, q.true_pairs, q.true_positive_pairs) == (6, 6, 4, 3)
    assert (q.precision, q.recall) == (0.5, 0.75)
    assert round(q.f1, 4) == 0.6
    assert q.exact_clusters == 0 and q.entities == 3  # G1 mixes entities; E2 is split


def test_perfect_match():
    truth = frame([("a", "1", "E1"), ("b", "1", "E1"), ("a", "2", "E2")], "entity_id")
    xref = frame([("a", "1", "G1"), ("b", "1", "G1"), ("a", "2", "G2")], "golden_id")
    q = evaluate_matches(xref, truth)
    assert (q.precision, q.recall, q.f1, q.exact_clusters) == (1.0, 1.0, 1.0, 2)


def test_truth_records_not_consolidated_are_missed_not_left_out():
    """c1 was quarantined (not in the xref): its two true pairs count as missed."""
    truth = frame(
        [("a", "1", "E1"), ("b", "1", "E1"), ("c", "1", "E1"), ("a", "2", "E2"), ("b", "2", "E2")],
        "entity_id",
    )
    xref = frame(
        [("a", "1", "G1"), ("b", "1", "G1"), ("a", "2", "G2"), ("b", "2", "G2")], "golden_id"
    )
    q = evaluate_matches(xref, truth)
    assert (q.records, q.unconsolidated) == (4, 1)
    assert (q.predicted_pairs, q.true_pairs, q.true_positive_pairs) == (2, 4, 2)
    assert (q.precision, q.recall, q.recall_consolidated) == (1.0, 0.5, 1.0)
    assert (q.exact_clusters, q.entities) == (1, 2)  # G1 lacks c1: not all of E1's records
    figures = q.as_dict()
    assert (figures["unconsolidated"], figures["recall"], figures["f1"]) == (1, 0.5, 0.6667)
    # a truth record of a source never staged counts the same way
    never = pd.concat([truth, frame([("d", "7", "E2")], "entity_id")], ignore_index=True)
    q = evaluate_matches(xref, never)
    assert (q.unconsolidated, q.true_pairs, q.recall) == (2, 6, 2 / 6)


def test_not_consolidated_lists_the_truth_records_without_a_golden_record():
    from custpipe.matching.evaluate import not_consolidated

    truth = frame([("a", "1", "E1"), ("b", "1", "E1"), ("c", "1", "E2")], "entity_id")
    xref = frame([("a", "1", "G1"), ("z", "9", "G9")], "golden_id")
    missing = not_consolidated(xref, truth)
    assert missing.values.tolist() == [["b", "1"], ["c", "1"]]
    assert evaluate_matches(xref, truth).unconsolidated == len(missing)
