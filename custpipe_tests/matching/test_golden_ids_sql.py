"""Golden-ID assignment in DuckDB gives exactly the IDs and events of the pandas rules."""

import random

import duckdb
import pandas as pd
import pytest

from custpipe import warehouse
from custpipe.matching.golden_ids import (
    _assign_fresh_in_order,
    assign_golden_ids,
    assign_golden_ids_sql,
    new_golden_id,
)

NAMES = {"votes": "v", "fresh": "f", "assigned": "a", "id_events": "e"}


def in_sql(members: pd.DataFrame, previous: pd.DataFrame) -> tuple[dict, list]:
    con = duckdb.connect()
    try:
        with (
            warehouse.registered(con, "m", members),
            warehouse.registered(con, "p", previous),
        ):
            assign_golden_ids_sql(con, "m", "p", **NAMES)
        assigned = dict(con.execute("SELECT label, golden_id FROM a").fetchall())
        events = con.execute(
            "SELECT event, golden_id, related_golden_id, members FROM e "
            "ORDER BY ord, label, golden_id"
        ).fetchall()
    finally:
        con.close()
    return assigned, events


def in_pandas(members: pd.DataFrame, previous: pd.DataFrame) -> tuple[dict, list]:
    assigned, history = assign_golden_ids(members, previous)
    events = [
        (
            r.event,
            r.golden_id,
            None if pd.isna(r.related_golden_id) else r.related_golden_id,
            int(r.members),
        )
        for r in history.itertuples()
    ]
    return dict(zip(assigned["label"], assigned["golden_id"], strict=True)), events


def scenario(seed: int) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Last run's clusters, reshuffled: records move, clusters merge and split, records
    come and go; some old IDs are the hash-derived IDs a new cluster would get."""
    rng = random.Random(seed)
    keys = [f"{rng.choice(['erp', 'crm', 'shop'])}:{i}" for i in range(rng.randint(1, 60))]
    old_label = {k: rng.randint(0, 15) for k in keys}
    old_ids = {
        lbl: new_golden_id(min(k for k in keys if old_label[k] == lbl), set())
        if rng.random() < 0.5
        else f"GOLD{lbl:02d}"
        for lbl in set(old_label.values())
    }
    previous = pd.DataFrame(
        [(k, old_ids[old_label[k]]) for k in keys if rng.random() < 0.8],
        columns=["member_key", "golden_id"],
    )
    present = [k for k in keys if rng.random() < 0.9] + [f"new:{i}" for i in range(3)]
    members = pd.DataFrame(
        {
            "label": [rng.choice([old_label.get(k, 99), rng.randint(0, 20)]) for k in present],
            "member_key": present,
            "trust": [rng.randint(1, 3) for _ in present],
        }
    )
    return members, previous


@pytest.mark.parametrize("seed", range(200))
def test_sql_matches_the_pandas_rules(seed):
    members, previous = scenario(seed)
    assert in_sql(members, previous) == in_pandas(members, previous)


def test_a_split_off_part_whose_first_key_made_the_old_id_gets_the_next_digits():
    previous = pd.DataFrame(
        {
            "member_key": ["erp:1", "crm:1", "crm:2"],
            "golden_id": [new_golden_id("crm:1", set())] * 3,
        }
    )
    members = pd.DataFrame(
        {"label": [1, 2, 2], "member_key": ["crm:1", "erp:1", "crm:2"], "trust": [1, 1, 1]}
    )
    assigned, events = in_sql(members, previous)
    assert assigned[2] == new_golden_id("crm:1", set())  # the larger part keeps the ID
    assert assigned[1] == new_golden_id("crm:1", {assigned[2]}) != assigned[2]
    assert events == [("split", assigned[1], assigned[2], 1)]
    assert (assigned, events) == in_pandas(members, previous)


def test_clashing_new_ids_are_given_one_by_one_in_label_order():
    con = duckdb.connect()
    gid = new_golden_id("erp:7", set())
    con.execute("CREATE TABLE p AS SELECT 'erp:0' AS member_key, 'GOLD' AS golden_id")
    con.execute(
        f"CREATE TABLE f AS SELECT * FROM (VALUES (5, 1, 'erp:7', '{gid}'), "
        f"(3, 1, 'erp:7', '{gid}')) t(label, size, first_key, golden_id)"
    )
    _assign_fresh_in_order(con, "p", "f")
    got = dict(con.execute("SELECT label, golden_id FROM f").fetchall())
    assert got == {3: gid, 5: new_golden_id("erp:7", {gid, "GOLD"})}
