"""The touched components an incremental night clusters again (`custpipe.matching.scope`)."""

import pandas as pd

import custpipe.matching.scope as scope
from custpipe import warehouse
from custpipe.matching.model import MatchModel
from custpipe.matching.workspace import MatchWorkspace
from custpipe.settings import DEFAULT_CONFIG_DIR

MODEL = MatchModel.load(DEFAULT_CONFIG_DIR / "match_model.json")

# last night: component (first record) of each record; golden groups lie inside components
LAST = {
    "a": "a", "b": "a", "c": "a",  # a-b-c, tonight b changes and c leaves: a split
    "x": "x", "y": "y", "z": "y",  # tonight the changed x links to y: a merge
    "p": "p", "q": "p", "r": "p",  # p, q (different valid tax IDs) linked through r
    "s": "s", "t": "s",  # a steward's cannot-link between s and t, neither changed
    "g": "g", "h": "g", "i": "g",  # g (the star's centre) is deleted tonight
    "d": "d", "e": "d",  # untouched
    "u": "u", "v": "v",  # unchanged, a stored pair between them crosses auto-merge tonight
    "w": "w",  # untouched singleton
}  # fmt: skip


def _workspace(con, edges, changed, decided=(), gone=()):
    """A workspace over tonight's records (every one of LAST but the gone ones, numbered in
    key order) with `edges` and `changed` given by key; returns (workspace, node of key)."""
    keys = sorted(k for k in LAST if k not in gone)
    node = {k: i + 1 for i, k in enumerate(keys)}
    warehouse.append_rows(
        con,
        "mdm.match_components",
        pd.DataFrame({"source_system": "crm", "source_id": list(LAST), "component": [
            f"crm:{c}" for c in LAST.values()]}),
    )  # fmt: skip
    warehouse.append_rows(
        con,
        "mdm.customer_xref",
        pd.DataFrame({"source_system": "crm", "source_id": list(LAST), "golden_id": [
            f"G{c}" for c in LAST.values()], "match_rule": "x", "run_id": "night-1"}),
    )  # fmt: skip
    ws = MatchWorkspace(con, records=len(keys))
    frames = {
        ws.nodes: pd.DataFrame({"node": list(node.values()), "source_system": "crm",
                                "source_id": list(node)}),
        ws.edges: pd.DataFrame([(node[a], node[b], "r") for a, b in edges] or None,
                               columns=["a", "b", "rule"]).astype({"a": "int64", "b": "int64"}),
        ws.changed: pd.DataFrame({"node": [node[k] for k in changed]}, dtype="int64"),
        ws.decided: pd.DataFrame([(node[a], node[b], "cannot_link") for a, b in decided] or None,
                                 columns=["a", "b", "decision"]).astype({"a": "int64",
                                                                         "b": "int64"}),
        ws.gone: pd.DataFrame({"source_system": "crm", "source_id": list(gone)}),
    }  # fmt: skip
    for name, frame in frames.items():
        with warehouse.registered(con, "frame", frame):
            con.execute(f"CREATE TEMP TABLE {name} AS SELECT * FROM frame")
    con.execute(f"CREATE TEMP TABLE {ws.restaged} AS SELECT * FROM {ws.changed}")
    return ws, node


def _scope(ws, node) -> set[str]:
    key = {n: k for k, n in node.items()}
    return {key[n] for (n,) in ws.con.execute(f"SELECT node FROM {ws.scope}").fetchall()}


def test_the_scope_is_closed_over_tonights_links_and_last_nights_components(empty_warehouse):
    edges = [("a", "b"), ("x", "y"), ("y", "z"), ("p", "r"), ("q", "r"), ("s", "t"), ("h", "i")]
    edges += [("d", "e")]
    ws, node = _workspace(
        empty_warehouse, edges, changed=["b", "x", "r"], decided=[("s", "t")], gone=["g"]
    )
    assert scope.touched_scope(ws, MODEL, auto_merge=0.99)
    assert _scope(ws, node) == {"a", "b", "c", "x", "y", "z", "p", "q", "r", "s", "t", "h", "i"}
    rows = empty_warehouse.execute(f"SELECT * FROM {ws.scope_components}").fetchall()
    components = {c for (c,) in rows}
    assert components == {"crm:a", "crm:x", "crm:y", "crm:p", "crm:s", "crm:g"}


def test_a_record_that_left_brings_its_old_component(empty_warehouse):
    # r changed and lost both links: p and q are no longer linked tonight, nor to r
    ws, node = _workspace(empty_warehouse, [("d", "e")], changed=["r"])
    assert scope.touched_scope(ws, MODEL, auto_merge=0.99)
    assert _scope(ws, node) == {"p", "q", "r"}


def test_a_link_the_new_prior_turns_on_touches_both_records(empty_warehouse, monkeypatch):
    ws, node = _workspace(empty_warehouse, [], changed=[], gone=["w"])
    empty_warehouse.execute("""INSERT INTO mdm.match_pairs (left_source_system, left_source_id,
        right_source_system, right_source_id, weight) VALUES ('crm', 'u', 'crm', 'v', -10),
        ('crm', 'd', 'crm', 'e', 30)""")
    # one record fewer tonight: the prior rises from 10 to 20, p(u, v) from 0.5 to 0.999
    monkeypatch.setattr(scope, "tonight_prior", lambda model, records: 10.0 * (20 - records))
    assert scope.touched_scope(ws, MODEL, auto_merge=0.99)
    assert _scope(ws, node) == {"u", "v"}


def test_unknown_components_cluster_everything(empty_warehouse):
    ws, _ = _workspace(empty_warehouse, [], changed=["b"])
    empty_warehouse.execute("DELETE FROM mdm.match_components WHERE source_id = 'a'")
    assert not scope.touched_scope(ws, MODEL, auto_merge=0.99)
