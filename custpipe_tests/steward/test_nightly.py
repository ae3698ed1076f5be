"""Decisions recorded in the steward store are honoured by the next nightly run — also after
a night that failed once it had imported them — and an unmerge splits a golden record."""

from __future__ import annotations

import json

import dagster as dg

from custpipe import warehouse
from custpipe.matching.review import review_with_golden_ids
from custpipe.steward import store
from custpipe_tests.test_incremental_nights import _night, _stages

GOLDEN = dg.AssetKey(["mdm", "golden_customers"])


def _golden_metadata(result) -> dict:
    (event,) = [m for m in result.get_asset_materialization_events() if m.asset_key == GOLDEN]
    return {k: v.value for k, v in event.materialization.metadata.items()}


def _state(settings) -> dict:
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        xref = dict(
            con.execute(
                "SELECT source_system || ':' || source_id, golden_id FROM mdm.customer_xref"
            ).fetchall()
        )
        review = {
            (r.left_source_system + ":" + r.left_source_id,
             r.right_source_system + ":" + r.right_source_id)
            for r in review_with_golden_ids(con).itertuples()
        }  # fmt: skip
        history = con.execute(
            "SELECT event, golden_id, related_golden_id, run_id FROM mdm.golden_id_history"
        ).fetchall()
        decisions = con.execute("SELECT count(*) FROM mdm.steward_decisions").fetchone()[0]
    return {"xref": xref, "review": review, "history": history, "decisions": decisions}


def test_decisions_and_an_unmerge_are_honoured_by_the_next_night(demo_copy, monkeypatch):
    deployment, instance, first = demo_copy
    settings = deployment.settings
    path = store.store_path(settings)
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        review = review_with_golden_ids(con)
        members = con.execute(
            "SELECT golden_id, list(source_system || ':' || source_id ORDER BY source_system, "
            "source_id) FROM mdm.customer_xref GROUP BY 1 HAVING count(*) >= 3 ORDER BY 1"
        ).fetchall()
    before = _state(settings)
    # a must-link of the first pair, a cannot-link of a pair of two other golden records
    pairs = [
        (r.left_source_system + ":" + r.left_source_id,
         r.right_source_system + ":" + r.right_source_id, {r.left_golden_id, r.right_golden_id})
        for r in review.itertuples()
    ]  # fmt: skip
    must = pairs[0]
    cannot = next(p for p in pairs if not p[2] & must[2])
    # an unmerge: the first record of a golden record of 3+ members the pairs do not touch
    golden_id, group = next((g, m) for g, m in members if g not in must[2] | cannot[2])
    record, others = group[0], group[1:]
    store.record_decision(path, must[0], must[1], "must_link", "ann", "same firm", "workbench")
    store.record_decision(path, cannot[0], cannot[1], "cannot_link", "ann", "two firms", "cli")
    store.record_split(path, record, golden_id, "bob", "another customer", "workbench")

    # night 2 fails in consolidation after the import: the import stays committed
    import custpipe.defs.consolidate as consolidate_defs

    def failing(*args, **kwargs):
        raise RuntimeError("consolidation broke")

    monkeypatch.setattr(consolidate_defs, "consolidate", failing)
    failed = _night(settings, instance)
    monkeypatch.undo()
    assert not failed.success
    after_failure = _state(settings)
    assert after_failure["decisions"] == 2 + len(others)  # imported: the split's rows too
    assert after_failure["xref"] == before["xref"] and after_failure["review"] == before["review"]
    assert ("consolidate", "") not in _stages(settings, failed.run_id)

    # night 3 honours them without importing them again
    night = _night(settings, instance)
    assert night.success
    metadata = _golden_metadata(night)
    assert metadata["steward_decisions_imported"] == dict.fromkeys(store.IMPORT_COUNTS, 0)
    assert metadata["inputs_unchanged"] is False  # the decisions changed its inputs
    assert metadata["mode"] == "incremental" and metadata["records_scored_again"] == 0
    state = _state(settings)
    xref = state["xref"]
    assert xref[must[0]] == xref[must[1]]  # joined
    assert xref[cannot[0]] != xref[cannot[1]]  # kept apart
    assert (must[0], must[1]) not in state["review"]
    assert (cannot[0], cannot[1]) not in state["review"]
    # the unmerged record has a new golden ID; the others keep the old one
    assert xref[record] != golden_id and xref[record] not in before["xref"].values()
    assert {xref[o] for o in others} == {golden_id}
    new = [h for h in state["history"] if h[3] == night.run_id]
    assert ("split", xref[record], golden_id, night.run_id) in new
    assert store.pending_pairs(path, _imported(settings)) == []

    # a full recompute of the same inputs finds no difference from the incremental night
    full = _night(settings, instance, full_refresh=True)
    assert full.success
    compared = _stages(settings, full.run_id)[("consolidate", "")]["differences"]
    assert compared is not None and json.loads(compared) == {}
    assert _state(settings)["xref"] == xref


def _imported(settings) -> set[str]:
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        return store.imported_decision_ids(con)


def test_a_new_decision_recomputes_an_otherwise_unchanged_night(demo_copy):
    deployment, instance, _ = demo_copy
    settings = deployment.settings
    quiet = _night(settings, instance)
    assert _golden_metadata(quiet)["inputs_unchanged"] is True  # nothing changed: skipped
    (left, right) = sorted(_state(settings)["review"])[0]
    store.record_decision(store.store_path(settings), left, right, "cannot_link", "ann", "x", "cli")
    night = _night(settings, instance)
    metadata = _golden_metadata(night)
    assert metadata["steward_decisions_imported"]["decisions"] == 1
    assert metadata["inputs_unchanged"] is False
    assert (left, right) not in _state(settings)["review"]
