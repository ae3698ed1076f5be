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


def test_blocking_recall_counts_true_pairs_among_the_candidates():
    from custpipe.matching.evaluate import evaluate_blocking

    nodes = pd.DataFrame(
        {"node": [1, 2, 3, 4, 5], "source_system": "s", "source_id": ["a", "b", "c", "d", "e"]}
    )
    truth = pd.DataFrame(  # entities: {a, b, c} (3 pairs) and {d, e} (1 pair)
        {"source_system": "s", "source_id": list("abcde"), "entity_id": list("XXXYY")}
    )
    candidates = pd.DataFrame({"a": [1, 1, 3, 2], "b": [2, 4, 5, 3]})  # a-b, a-d, c-e, b-c
    quality = evaluate_blocking(candidates, nodes, truth)
    assert (quality.candidate_pairs, quality.true_pairs, quality.true_pairs_blocked) == (4, 4, 2)
    assert quality.recall == 0.5
