"""`on_failure: hold | block`: one source's failed new data does not stop everyone's night.

The decision is a pure function (custpipe.holding); the nights below are real runs of the
nightly job on the demo deployment: a held source lets the others publish and is reported
(checks, metadata, run tag, ops.held_sources, `custpipe run` output and summary), the next
good night catches up with no change lost and a full recompute finds no difference; a
`block` source fails the night as before; every source held blocks.
"""

from __future__ import annotations

import json
import re

import dagster as dg
import duckdb
import pandas as pd
import pytest

from custpipe import holding, warehouse
from custpipe.config import ConfigError, load_config
from custpipe.demo.changes import change_sources
from custpipe.mapping.issues import MappingError
from custpipe.sources.extract import SchemaDriftError
from custpipe.sources.readers import SourceReadError
from custpipe_tests.conftest import BUSINESS_DATE, edit, run_nightly

# --- the decision ---------------------------------------------------------------------------


def test_a_failure_of_one_sources_data_holds_it_and_anything_else_blocks():
    drift = SchemaDriftError("source 'service', dataset 'customers': column(s) 'vat_id' missing")
    reason = holding.hold_reason(drift, "hold", has_good_state=True)
    assert reason == "source 'service', dataset 'customers': column(s) 'vat_id' missing"
    for exc in (
        SourceReadError("source 'sales': customers_20261128.csv not found"),
        MappingError("source 'sales' is in strict mode (on_unmapped_code: fail)"),
    ):
        assert holding.hold_reason(exc, "hold", has_good_state=True)
    # block, or nothing to fall back on (the source's first night): the night stops
    assert holding.hold_reason(drift, "block", has_good_state=True) is None
    assert holding.hold_reason(drift, "hold", has_good_state=False) is None
    # systemic: the warehouse, a defect, memory — whatever on_failure says
    for exc in (
        warehouse.WarehouseLockedError("warehouse locked"),
        duckdb.IOException("disk I/O error"),
        RuntimeError("a defect"),
        MemoryError(),
    ):
        assert holding.hold_reason(exc, "hold", has_good_state=True) is None, exc
    # a database that did not answer is retried first; held only on the last attempt
    unreachable = SourceReadError("source 'crm': the database did not answer", retryable=True)
    assert (
        holding.hold_reason(unreachable, "hold", has_good_state=True, final_attempt=False) is None
    )
    assert holding.hold_reason(unreachable, "hold", has_good_state=True, final_attempt=True)


def test_a_held_reason_never_shows_a_password():
    exc = SourceReadError("source 'crm': cannot read from postgresql://crm:s3cr3t@db/crm: refused")
    reason = holding.hold_reason(exc, "hold", has_good_state=True)
    assert "s3cr3t" not in reason and "source 'crm'" in reason


def test_the_source_held_check_warns_with_the_step_and_reason():
    from custpipe import gates

    ok = gates.source_held("sales", None, None)
    assert ok.passed and ok.severity == "warn" and ok.metadata == {"held": False}
    held = gates.source_held("sales", "staging", "a code without a crosswalk entry")
    assert not held.passed and not held.blocks  # warns: the night goes on
    assert held.description == (
        "held back at staging (on_failure: hold): a code without a crosswalk entry"
    )
    assert held.metadata == {"held": True, "held_at_step": "staging"}


def test_every_source_held_is_systemic_and_the_tag_lists_the_held():
    assert holding.every_source_held({"crm", "erp"}, ["erp", "crm"])
    assert not holding.every_source_held({"crm"}, ["erp", "crm"])
    assert not holding.every_source_held(set(), [])
    assert holding.tag_value(["sales", "crm", "sales"]) == "crm,sales"
    assert holding.parse_tag("crm,sales") == ["crm", "sales"] and holding.parse_tag(None) == []


def test_on_failure_defaults_to_hold_and_rejects_anything_else(
    config_dir, tmp_path, monkeypatch, capsys
):
    from custpipe.cli import main

    assert {s.on_failure for s in load_config(config_dir).sources.values()} == {"hold"}
    edit(config_dir / "sources" / "sales.yaml", "trust: 3", "trust: 3\non_failure: block")
    assert load_config(config_dir).sources["sales"].on_failure == "block"
    monkeypatch.setenv("CUSTPIPE_CONFIG", str(config_dir))
    monkeypatch.setenv("CUSTPIPE_DATA", str(tmp_path / "data"))
    assert main(["check"]) == 0  # `custpipe check` lists each source's choice
    out = capsys.readouterr().out
    assert re.search(r"\n  sales .*; on_failure block\n", out)
    assert re.search(r"\n  crm .*; on_failure hold\n", out)
    edit(config_dir / "sources" / "sales.yaml", "on_failure: block", "on_failure: skip")
    expected = r"(?s)sales\.yaml.*on_failure: Input should be 'hold' or 'block'"
    with pytest.raises(ConfigError, match=expected):
        load_config(config_dir)


# --- real nights ----------------------------------------------------------------------------


def _break_service_export(settings) -> str:
    """Rename a mapped key of the service export (schema drift); return the good text."""
    path = settings.sources_dir / "service" / "customers.jsonl"
    good = path.read_text(encoding="utf-8")
    assert '"vat_id"' in good
    path.write_text(good.replace('"vat_id"', '"vat_number"'), encoding="utf-8")
    return good


def _duplicate_sales_ids(settings) -> str:
    """Send two sales records twice (the raw suite's record_id_unique fails); the good text."""
    path = settings.sources_dir / "sales" / f"customers_{BUSINESS_DATE:%Y%m%d}.csv"
    good = path.read_text(encoding="gbk")
    lines = good.splitlines(keepends=True)
    path.write_text("".join(lines + lines[1:3]), encoding="gbk")
    return good


def _staged(settings, sources: tuple[str, ...]) -> pd.DataFrame:
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        names = ", ".join(f"'{s}'" for s in sources)
        return con.execute(
            f"SELECT * FROM staging.customers WHERE source_system IN ({names}) "
            "ORDER BY source_system, source_id"
        ).df()


def _events(instance, run_id: str, kind: str) -> list:
    return [
        e.dagster_event
        for e in instance.all_logs(run_id)
        if e.dagster_event is not None and e.dagster_event.event_type_value == kind
    ]


def _checks(instance, run_id: str) -> dict[tuple[str, str], object]:
    return {
        (ev.asset_key.to_user_string(), ev.check_name): ev
        for ev in (
            e.event_specific_data for e in _events(instance, run_id, "ASSET_CHECK_EVALUATION")
        )
    }


def _materialized(instance, run_id: str) -> dict[str, dict]:
    out = {}
    for e in _events(instance, run_id, "ASSET_MATERIALIZATION"):
        mat = e.event_specific_data.materialization
        out[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    return out


def _run_cli(settings, monkeypatch, capsys, tmp_path, *extra: str) -> tuple[int, str, str]:
    from custpipe.cli import main

    home = tmp_path / "dagster_home"
    home.mkdir(exist_ok=True)
    monkeypatch.setenv("DAGSTER_HOME", str(home))
    monkeypatch.setenv("CUSTPIPE_CONFIG", str(settings.config_dir))
    monkeypatch.setenv("CUSTPIPE_DATA", str(settings.data_dir))
    code = main(["run", "--date", BUSINESS_DATE.isoformat(), *extra])
    out = capsys.readouterr().out
    run_id = re.search(r"nightly run ([0-9a-f-]{36}) for business date", out).group(1)
    return code, out, run_id


def test_held_sources_let_the_others_publish_and_the_next_night_catches_up(
    demo_copy, monkeypatch, capsys, tmp_path
):
    deployment, _, first = demo_copy
    settings = deployment.settings
    assert first.success
    # night 2: every source changes 10 % of its customers (ERP and sales 10 % of their
    # orders too); the service export renames a
    # mapped key (extract fails) and the sales export repeats two ids (its raw suite fails)
    change_sources(settings.sources_dir, BUSINESS_DATE, fraction=0.1, seed=11, orders=0.1)
    good_service = _break_service_export(settings)
    good_sales = _duplicate_sales_ids(settings)
    before = _staged(settings, ("sales", "service"))
    landed_before = set(settings.landing_dir.glob("*/sales/*/*/manifest.json"))
    code, out, run_id = _run_cli(settings, monkeypatch, capsys, tmp_path)

    assert code == 0, out
    assert f"nightly run {run_id} for business date {BUSINESS_DATE}: succeeded" in out
    assert re.search(r"HELD source: service \(on_failure: hold.*'vat_id'", out)
    assert re.search(r"HELD source: sales \(on_failure: hold.*record_id_unique", out)
    assert f"HELD BACK in run {run_id} (on_failure: hold): 2 source(s)" in out  # summary
    instance = dg.DagsterInstance.get()
    assert instance.get_run_by_id(run_id).tags[holding.HELD_TAG] == "sales,service"
    checks = _checks(instance, run_id)
    for source, step in (("service", "extract"), ("sales", "extract")):
        held = checks[(f"staging/{source}", "source_held")]
        assert held.passed is False and held.severity == dg.AssetCheckSeverity.WARN
        assert held.description.startswith(f"held back at {step} (on_failure: hold): ")
        raw = checks[(f"extract/{source}", "raw_shape")]
        assert raw.passed is False and raw.severity == dg.AssetCheckSeverity.WARN
    assert "record_id_unique" in checks[("extract/sales", "raw_shape")].description
    assert "did not run" in checks[("extract/service", "raw_shape")].description
    for source in ("erp", "crm"):
        assert checks[(f"staging/{source}", "source_held")].passed is True
    mats = _materialized(instance, run_id)
    assert (
        mats["extract/service"]["held"] is True
        and "'vat_id'" in (mats["extract/service"]["held_reason"])
    )
    assert mats["staging/sales"]["held"] is True and mats["staging/crm"]["held"] is False
    assert mats["staging/sales"]["held_at_step"] == "extract"
    assert "sales (at extract)" in mats["mdm/golden_customers"]["held_sources"]
    # the others' changes reached the ERP; the held sources kept their last good rows
    assert mats["publish/erp_customers"]["rows_published"] > 0
    pd.testing.assert_frame_equal(_staged(settings, ("sales", "service")), before)
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        assert set(holding.held_in_run(con, run_id)) == {"sales", "service"}
        changed_crm = con.execute(
            "SELECT count(*) FROM staging.customers WHERE source_system = 'crm' AND run_id = ?",
            [run_id],
        ).fetchone()[0]
    assert changed_crm > 0
    from custpipe.summary import collect_summary

    assert set(collect_summary(settings, None).held) == {"sales", "service"}  # the latest run
    # the success sensor's alert: a held night, each held source and why, the ERP written
    alert = _held_alert(settings, instance, run_id)
    assert alert["kind"] == "held" and alert["published"] is True
    assert [b["source"] for b in alert["blocked_by"]] == ["sales", "service"]
    assert "record_id_unique" in alert["headline"] and "'vat_id'" in alert["headline"]
    assert instance.get_run_by_id(run_id).tags["custpipe/night"] == "held"
    # what the held sales extraction landed (customers and changed orders) is rejected:
    # never staged, read again by the next extraction
    landed = set(settings.landing_dir.glob("*/sales/*/*/manifest.json")) - landed_before
    assert {p.parent.name for p in landed} == {"customers", "orders"}
    assert all((p.parent / "rejected.json").is_file() for p in landed)

    # night 3: both exports are good again (with the night-2 changes): they are staged,
    # consolidated and published; nothing is held
    (settings.sources_dir / "service" / "customers.jsonl").write_text(good_service, "utf-8")
    (settings.sources_dir / "sales" / f"customers_{BUSINESS_DATE:%Y%m%d}.csv").write_text(
        good_sales, encoding="gbk"
    )
    caught_up = run_nightly(settings, instance)
    assert caught_up.success
    checks = _checks(instance, caught_up.run_id)
    assert all(checks[(f"staging/{s}", "source_held")].passed for s in ("sales", "service"))
    assert holding.HELD_TAG not in instance.get_run_by_id(caught_up.run_id).tags
    assert collect_summary(settings, caught_up.run_id).held == {}
    assert set(collect_summary(settings, run_id).held) == {"sales", "service"}
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        restaged = dict(
            con.execute(
                "SELECT source_system, count(*) FROM staging.customers WHERE run_id = ? GROUP BY 1",
                [caught_up.run_id],
            ).fetchall()
        )
    assert restaged.get("sales", 0) > 0 and restaged.get("service", 0) > 0
    assert _materialized(instance, caught_up.run_id)["publish/erp_customers"]["rows_published"] > 0

    # night 4: a full recompute finds what the held and caught-up nights built
    from custpipe.definitions import build_definitions
    from custpipe.incremental import FULL_REFRESH_TAG

    job = build_definitions(settings).resolve_job_def("nightly")
    full = job.execute_in_process(
        partition_key=BUSINESS_DATE.isoformat(),
        instance=instance,
        raise_on_error=False,
        tags={FULL_REFRESH_TAG: "true"},
    )
    assert full.success
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        compared = con.execute(
            "SELECT stage, scope, differences FROM ops.stage_runs WHERE run_id = ?",
            [full.run_id],
        ).fetchall()
    assert compared
    for stage, scope, differences in compared:
        assert differences is not None and json.loads(differences) == {}, (stage, scope)
    assert _materialized(instance, full.run_id)["publish/erp_customers"]["rows_published"] == 0


def _held_alert(settings, instance, run_id: str) -> dict:
    """What the success sensor `nightly_held_alert` does for the run (the daemon runs it
    otherwise); the alert it appended."""
    from custpipe.defs.alerts import nightly_held_alert
    from custpipe.defs.resources import CustpipeResource

    run = instance.get_run_by_id(run_id)
    success = next(
        e.dagster_event
        for e in instance.all_logs(run_id, of_type=dg.DagsterEventType.RUN_SUCCESS)
    )
    context = dg.build_run_status_sensor_context(
        sensor_name="nightly_held_alert",
        dagster_event=success,
        dagster_instance=instance,
        dagster_run=run,
        resources={"custpipe": CustpipeResource.from_settings(settings)},
    )
    nightly_held_alert(context)
    lines = (settings.data_dir / "alerts" / "alerts.jsonl").read_text().splitlines()
    return json.loads(lines[-1])


def test_a_mapping_failure_holds_the_source_at_staging_with_its_rows_kept(demo_copy):
    deployment, instance, _ = demo_copy
    settings = deployment.settings
    # strict crosswalk, and a segment code the crosswalk lacks: staging cannot map the export
    edit(
        settings.config_dir / "sources" / "sales.yaml",
        "  id: 客户编号",
        "  id: 客户编号\n  on_unmapped_code: fail",
    )
    export = settings.sources_dir / "sales" / f"customers_{BUSINESS_DATE:%Y%m%d}.csv"
    export.write_text(export.read_text(encoding="gbk").replace(",A类,", ",VIP类,", 1), "gbk")
    before = _staged(settings, ("sales",))
    result = run_nightly(settings, instance)
    assert result.success
    held = _checks(instance, result.run_id)[("staging/sales", "source_held")]
    assert held.passed is False and held.severity == dg.AssetCheckSeverity.WARN
    assert held.description.startswith("held back at staging (on_failure: hold): ")
    assert "crosswalk" in held.description
    pd.testing.assert_frame_equal(_staged(settings, ("sales",)), before)  # rolled back
    assert _materialized(instance, result.run_id)["staging/sales"]["held_at_step"] == "staging"
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "publish__erp_customers" in started


def test_the_run_option_hold_sources_holds_a_healthy_source_for_one_night(demo_copy):
    """On-call holds `sales` from the Launchpad (run_options.hold_sources): nothing of it is
    extracted, its staged rows are kept, the others' changes are published, and the held
    night is reported like any other hold; an unknown name fails at once."""
    from custpipe.definitions import build_definitions

    deployment, instance, _ = demo_copy
    settings = deployment.settings
    change_sources(settings.sources_dir, BUSINESS_DATE, fraction=0.1, seed=3)
    before = _staged(settings, ("sales",))
    job = build_definitions(settings).resolve_job_def("nightly")

    def night(hold: list[str]):
        return job.execute_in_process(
            partition_key=BUSINESS_DATE.isoformat(),
            instance=instance,
            raise_on_error=False,
            run_config={"resources": {"run_options": {"config": {"hold_sources": hold}}}},
        )

    unknown = night(["sals"])
    assert not unknown.success
    (failure,) = [e for e in unknown.all_events if e.is_step_failure][:1]
    message = failure.step_failure_data.user_failure_data.description
    assert "hold_sources" in message and "sals" in message and "not a configured source" in message

    held = night(["sales"])
    assert held.success
    check = _checks(instance, held.run_id)[("staging/sales", "source_held")]
    assert check.passed is False and check.severity == dg.AssetCheckSeverity.WARN
    assert "run_options.hold_sources" in check.description
    assert instance.get_run_by_id(held.run_id).tags[holding.HELD_TAG] == "sales"
    pd.testing.assert_frame_equal(_staged(settings, ("sales",)), before)
    mats = _materialized(instance, held.run_id)
    assert mats["extract/sales"]["held"] is True
    assert mats["publish/erp_customers"]["rows_published"] > 0  # the others' changes
    assert _held_alert(settings, instance, held.run_id)["kind"] == "held"


def test_a_block_source_fails_the_night_as_before(demo_copy):
    deployment, instance, _ = demo_copy
    settings = deployment.settings
    edit(
        settings.config_dir / "sources" / "service.yaml", "trust: 4", "trust: 4\non_failure: block"
    )
    _break_service_export(settings)
    result = run_nightly(settings, instance)
    assert not result.success
    failures = {e.step_key: e for e in result.all_events if e.is_step_failure}
    assert set(failures) == {"extract__service"}
    message = failures["extract__service"].step_failure_data.user_failure_data.description
    assert "'vat_id'" in message and "source 'service'" in message
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "consolidated" not in started and "publish__erp_customers" not in started
    assert holding.HELD_TAG not in instance.get_run_by_id(result.run_id).tags
    with warehouse.connect(settings.warehouse_path, read_only=True) as con:
        assert holding.held_in_run(con, result.run_id) == {}


def test_every_source_held_is_systemic_and_blocks(demo_copy, monkeypatch, tmp_path):
    deployment, instance, _ = demo_copy
    settings = deployment.settings
    _break_service_export(settings)
    sales = settings.sources_dir / "sales" / f"customers_{BUSINESS_DATE:%Y%m%d}.csv"
    sales.write_text(sales.read_text(encoding="gbk").replace("客户名称", "名称", 1), "gbk")
    empty = tmp_path / "empty.sqlite"  # reachable, but without the tables: not retried
    for variable in ("CUSTPIPE_ERP_URL", "CUSTPIPE_CRM_URL"):
        monkeypatch.setenv(variable, f"sqlite:///{empty}")
    result = run_nightly(settings, instance)
    assert not result.success
    failures = {e.step_key: e for e in result.all_events if e.is_step_failure}
    assert set(failures) == {"consolidated"}
    message = failures["consolidated"].step_failure_data.user_failure_data.description
    assert message.startswith("every source was held back tonight (")
    assert "systemic" in message
    tags = instance.get_run_by_id(result.run_id).tags
    assert tags[holding.HELD_TAG] == "crm,erp,sales,service"
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "publish__erp_customers" not in started
