"""Incremental nights through the whole nightly job: what runs incrementally, what a change
of meaning recomputes, and that a failed night loses no change.

After each incremental night a full-refresh night (`custpipe run --full-refresh`) recomputes
every stage and compares it with the incremental state: ops.stage_runs.differences must be
empty for every stage, and the full night publishes nothing (the ERP already holds it).
"""

import json

from custpipe import warehouse
from custpipe.definitions import build_definitions
from custpipe.demo.changes import change_sources
from custpipe.incremental import FULL_REFRESH_TAG
from custpipe_tests.conftest import BUSINESS_DATE, edit


def _night(settings, instance, full_refresh: bool = False):
    job = build_definitions(settings).resolve_job_def("nightly")
    return job.execute_in_process(
        partition_key=BUSINESS_DATE.isoformat(),
        instance=instance,
        raise_on_error=False,
        tags={FULL_REFRESH_TAG: "true"} if full_refresh else None,
    )


def _stages(settings, run_id: str) -> dict[tuple[str, str], dict]:
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        rows = con.execute(
            "SELECT stage, scope, mode, reason, changed_records, differences "
            "FROM ops.stage_runs WHERE run_id = ?",
            [run_id],
        ).df()
    return {(r["stage"], r["scope"]): r for r in rows.to_dict("records")}


def _published(instance, run) -> int:
    for event in instance.all_logs(run.run_id):
        dagster_event = event.dagster_event
        if dagster_event and dagster_event.event_type_value == "ASSET_MATERIALIZATION":
            mat = dagster_event.event_specific_data.materialization
            if mat.asset_key.to_user_string() == "publish/erp_customers":
                return int(mat.metadata["rows_published"].value)
    raise AssertionError("publish/erp_customers did not materialise")


def test_a_failed_night_loses_no_change_and_a_full_refresh_finds_no_difference(
    demo_copy, monkeypatch
):
    deployment, instance, _ = demo_copy
    settings = deployment.settings
    vacuumed = []  # the runs whose consolidation let its checkpoint vacuum the warehouse
    vacuum = warehouse.vacuum_at_close
    monkeypatch.setattr(
        warehouse, "vacuum_at_close", lambda con: (vacuumed.append(True), vacuum(con))
    )
    model = settings.config_dir / "match_model.json"
    kept = model.read_bytes()
    # night 2: 10 % of the customers change at the source, and consolidation fails
    change_sources(settings.sources_dir, BUSINESS_DATE, fraction=0.1, seed=11)
    model.write_text("{ damaged", encoding="utf-8")
    failed = _night(settings, instance)
    assert not failed.success
    assert ("consolidate", "") not in _stages(settings, failed.run_id)
    # night 3: the model is back; the changes staged by the failed night are consolidated
    model.write_bytes(kept)
    good = _night(settings, instance)
    assert good.success
    stages = _stages(settings, good.run_id)
    consolidated = stages[("consolidate", "")]
    assert consolidated["mode"] == "incremental"
    assert 0 < consolidated["changed_records"] < 200  # what changed, not every record
    assert _published(instance, good) > 0  # the changed streets reach the ERP
    assert vacuumed == []  # an incremental night leaves deleted rows to the full night
    # night 4: a full refresh recomputes every stage and finds what the increments built
    full = _night(settings, instance, full_refresh=True)
    assert full.success
    compared = _stages(settings, full.run_id)
    assert compared[("consolidate", "")]["mode"] == "full"
    assert compared[("consolidate", "")]["reason"] == "full refresh requested"
    for key, row in compared.items():
        assert row["differences"] is not None, f"{key} was not compared"
        assert json.loads(row["differences"]) == {}, f"{key}: {row['differences']}"
    assert _published(instance, full) == 0
    assert vacuumed == [True]  # the full night compacts the warehouse


def test_a_change_of_meaning_recomputes_only_what_it_concerns(demo_copy):
    deployment, instance, _ = demo_copy
    settings = deployment.settings
    config = settings.config_dir
    edit(config / "pipeline.yaml", "review: 0.80 ", "review: 0.81 ")
    sales = config / "sources" / "sales.yaml"
    edit(sales, "customers:", "customers:\n  required: [name]")
    night = _night(settings, instance)
    assert night.success
    stages = _stages(settings, night.run_id)
    assert stages[("consolidate", "")]["mode"] == "full"
    assert "thresholds" in stages[("consolidate", "")]["reason"]
    validated = {scope: row for (stage, scope), row in stages.items() if stage == "validate"}
    assert set(validated) == {"erp", "crm", "sales", "service", "orders"}
    assert validated["sales"]["mode"] == "full" and "mapping" in validated["sales"]["reason"]
    for other in ("erp", "crm", "service", "orders"):
        assert validated[other]["mode"] == "incremental", validated[other]
        assert validated[other]["changed_records"] == 0
