import pandas as pd

from custpipe.matching.golden_ids import assign_golden_ids, new_golden_id


def members(clusters: dict[int, list[str]]) -> pd.DataFrame:
    return pd.DataFrame(
        [(label, key) for label, keys in clusters.items() for key in keys],
        columns=["label", "member_key"],
    )


def xref(assignments: dict[str, str]) -> pd.DataFrame:
    return pd.DataFrame(list(assignments.items()), columns=["member_key", "golden_id"])


def ids(assigned: pd.DataFrame) -> dict[int, str]:
    return dict(zip(assigned["label"], assigned["golden_id"], strict=True))


def test_first_run_creates_deterministic_ids():
    m = members({1: ["erp:1", "crm:9"], 2: ["erp:2"]})
    a1, h1 = assign_golden_ids(m, xref({}))
    a2, _ = assign_golden_ids(m, xref({}))
    assert ids(a1) == ids(a2)
    assert ids(a1)[1] == new_golden_id("crm:9", set())
    assert sorted(h1["event"]) == ["created", "created"]


def test_unchanged_clusters_keep_their_ids_even_if_labels_change():
    prev = xref({"erp:1": "GA", "crm:9": "GA", "erp:2": "GB"})
    assigned, history = assign_golden_ids(members({7: ["erp:1", "crm:9"], 3: ["erp:2"]}), prev)
    assert ids(assigned) == {7: "GA", 3: "GB"}
    assert history.empty


def test_merge_keeps_the_id_of_the_larger_part_and_records_merged_into():
    prev = xref({"erp:1": "GA", "crm:1": "GA", "erp:2": "GB"})
    assigned, history = assign_golden_ids(members({1: ["erp:1", "crm:1", "erp:2"]}), prev)
    assert ids(assigned) == {1: "GA"}
    merged = history[history["event"] == "merged"]
    assert merged[["golden_id", "related_golden_id"]].values.tolist() == [["GB", "GA"]]


def test_split_keeps_the_id_on_the_larger_part():
    prev = xref({"erp:1": "GA", "crm:1": "GA", "sales:1": "GA"})
    assigned, history = assign_golden_ids(members({1: ["erp:1", "crm:1"], 2: ["sales:1"]}), prev)
    got = ids(assigned)
    assert got[1] == "GA" and got[2] not in ("GA",)
    split = history[history["event"] == "split"]
    assert split[["golden_id", "related_golden_id"]].values.tolist() == [[got[2], "GA"]]


def test_ids_whose_records_all_disappeared_are_retired():
    prev = xref({"erp:1": "GA", "erp:2": "GB"})
    assigned, history = assign_golden_ids(members({1: ["erp:1"]}), prev)
    assert ids(assigned) == {1: "GA"}
    assert history[["event", "golden_id"]].values.tolist() == [["retired", "GB"]]


def test_new_id_avoids_taken_ids():
    first = new_golden_id("erp:1", set())
    assert new_golden_id("erp:1", {first}) != first


def test_an_even_split_leaves_the_id_with_the_more_trusted_record():
    prev = xref({"erp:1": "GA", "crm:1": "GA"})
    members = pd.DataFrame({"label": [1, 2], "member_key": ["crm:1", "erp:1"], "trust": [2, 1]})
    assigned, history = assign_golden_ids(members, prev)
    assert ids(assigned)[2] == "GA"  # the ERP record's cluster keeps it
    assert history[history["event"] == "split"]["related_golden_id"].tolist() == ["GA"]


def test_successors_follow_merge_chains():
    from custpipe.matching.golden_ids import successors

    history = pd.DataFrame(
        [("merged", "GA", "GB"), ("created", "GC", None), ("merged", "GB", "GD")],
        columns=["event", "golden_id", "related_golden_id"],
    )
    assert successors(history) == {"GA": "GD", "GB": "GD"}
