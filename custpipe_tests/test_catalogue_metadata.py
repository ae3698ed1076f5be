"""What the Dagster catalogue shows of a night: row counts, table names, the new checks, and a
dry run that is an observation, not a publish."""

from __future__ import annotations

import dagster as dg
import duckdb
import sqlalchemy as sa

from custpipe.config import load_config
from custpipe.incremental import FULL_REFRESH_TAG
from custpipe.publish.verify import erp_content, golden_content
from custpipe.sources.extract import resolve_url
from custpipe_tests.conftest import BUSINESS_DATE, run_nightly

PUBLISHED = dg.AssetKey(["publish", "erp_customers"])


def _materialisations(result) -> dict[str, dict]:
    return {
        m.asset_key.to_user_string(): m.materialization.metadata
        for m in result.get_asset_materialization_events()
    }


def test_every_materialisation_reports_the_standard_row_count(demo_run):
    deployment, _, result = demo_run
    metadata = _materialisations(result)
    assert "publish/erp_customers" in metadata
    for key, meta in metadata.items():
        if key == "quality/retention":  # removes old rows: it owns no table to count
            continue
        assert isinstance(meta["dagster/row_count"].value, int), key
    con = duckdb.connect(str(deployment.settings.warehouse_path), read_only=True)
    try:
        golden = con.execute("SELECT count(*) FROM mdm.golden_customers").fetchone()[0]
        erp_staged = con.execute(
            "SELECT count(*) FROM staging.customers WHERE source_system = 'erp'"
        ).fetchone()[0]
    finally:
        con.close()
    assert metadata["mdm/golden_customers"]["dagster/row_count"].value == golden > 0
    assert metadata["mdm/golden_customers"]["dagster/table_name"].value == "mdm.golden_customers"
    assert metadata["staging/erp"]["dagster/row_count"].value == erp_staged > 0
    published = metadata["publish/erp_customers"]
    assert published["dagster/table_name"].value == "ZCUST_INBOUND"
    assert published["dagster/row_count"].value >= published["active_rows"].value == golden


def test_the_new_checks_ran_and_the_erp_holds_the_golden_records(demo_run):
    _, _, result = demo_run
    checks = {
        f"{c.asset_key.to_user_string()}:{c.check_name}": c
        for c in result.get_asset_check_evaluations()
    }
    erp = checks["publish/erp_customers:erp_matches_golden"]
    assert erp.passed and erp.severity == dg.AssetCheckSeverity.ERROR
    assert erp.metadata["golden_content_hash"] == erp.metadata["erp_content_hash"]
    assert "publish/erp_customers" in {
        m.asset_key.to_user_string() for m in result.get_asset_materialization_events()
    }
    growth = checks["mdm/match_review:review_queue_growth"]
    assert growth.passed and "no earlier run" in growth.description
    for source in ("crm", "erp", "sales", "service"):
        issues = checks[f"staging/{source}:mapping_issues"]
        assert issues.severity == dg.AssetCheckSeverity.WARN
        assert issues.metadata["rows_mapped"].value > 0, source


def test_the_erp_content_read_back_differs_when_a_value_was_changed_behind_custpipe(demo_copy):
    deployment, _, _ = demo_copy
    settings = deployment.settings
    target = load_config(settings.config_dir).publish
    url = resolve_url(target.connection, "publish", settings)
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        golden = golden_content(con)
    finally:
        con.close()
    before = erp_content(url, target.table)
    assert (before.digest, before.rows) == (golden.digest, golden.rows)
    engine = sa.create_engine(url)
    with engine.begin() as conn:  # another writer changes one active row's name
        conn.execute(
            sa.text(
                f"UPDATE {target.table} SET name = name || 'x' WHERE golden_id = "
                f"(SELECT min(golden_id) FROM {target.table} WHERE status <> 'retired')"
            )
        )
    engine.dispose()
    after = erp_content(url, target.table)
    assert after.rows == golden.rows and after.digest != golden.digest


def test_a_dry_run_is_an_observation_and_does_not_reset_freshness(demo_copy):
    deployment, instance, _ = demo_copy
    day = BUSINESS_DATE  # a second night on the same exports (a fresh instance)
    published = run_nightly(deployment.settings, instance, day=day)
    assert published.success
    last = instance.get_latest_materialization_event(PUBLISHED)
    assert last.run_id == published.run_id

    from custpipe.definitions import build_definitions

    job = build_definitions(deployment.settings).resolve_job_def("nightly")
    dry = job.execute_in_process(
        partition_key=day.isoformat(),
        instance=instance,
        run_config={
            "resources": {
                "run_options": {"config": {"dry_run": True, "full_refresh_sources": ["crm"]}}
            }
        },
    )
    assert dry.success
    # full_refresh_sources: only that source is extracted in full
    extracted = _materialisations(dry)
    assert "| customers | " in extracted["extract/crm"]["rows_by_dataset"].value
    assert "full refresh requested" in extracted["extract/crm"]["rows_by_dataset"].value
    assert "full refresh requested" not in extracted["extract/erp"]["rows_by_dataset"].value
    # the ERP got nothing: the published asset's last materialisation is still the real one
    assert instance.get_latest_materialization_event(PUBLISHED).run_id == published.run_id
    assert PUBLISHED not in {m.asset_key for m in dry.get_asset_materialization_events()}
    observations = [
        e
        for e in dry.all_events
        if e.event_type_value == "ASSET_OBSERVATION" and e.asset_key == PUBLISHED
    ]
    assert len(observations) == 1
    meta = observations[0].event_specific_data.asset_observation.metadata
    assert meta["dry_run"].value is True and meta["rows_published"].value == 0
    logs = [
        e.message
        for e in instance.all_logs(dry.run_id)
        if e.user_message and "dry run: would insert" in e.user_message
    ]
    assert logs and not [
        e for e in instance.all_logs(dry.run_id) if "published to" in (e.user_message or "")
    ]
    checks = {c.check_name for c in dry.get_asset_check_evaluations()}
    assert "erp_matches_golden" not in checks  # nothing was written to compare


def test_run_options_override_tonights_thresholds_only():
    from custpipe.config import QualityConfig
    from custpipe.defs.resources import RunOptions

    configured = QualityConfig()
    assert RunOptions().quality(configured) is configured
    tonight = RunOptions(max_quarantine_rate=0.5, max_volume_drop=0.9).quality(configured)
    assert (tonight.max_quarantine_rate, tonight.max_volume_drop) == (0.5, 0.9)
    assert tonight.quarantine_warn_rate == configured.quarantine_warn_rate
    assert configured.max_quarantine_rate == 0.2  # the configuration itself is unchanged
    options = RunOptions(full_refresh_sources=["crm", "nope"])
    assert options.extract_in_full("crm") and not options.extract_in_full("erp")
    assert RunOptions(full_refresh=True).extract_in_full("erp")
    assert options.unknown_sources({"crm": 1, "erp": 2}) == ["nope"]


def test_a_full_refresh_of_an_unknown_source_fails_at_once_naming_it(tmp_path):
    from custpipe.definitions import build_definitions
    from custpipe.settings import DEFAULT_CONFIG_DIR, DEFAULT_EXPECTATIONS_DIR, Settings

    settings = Settings(DEFAULT_CONFIG_DIR, tmp_path / "data", DEFAULT_EXPECTATIONS_DIR)
    job = build_definitions(settings).resolve_job_def("nightly")
    result = job.execute_in_process(
        partition_key=BUSINESS_DATE.isoformat(),
        instance=dg.DagsterInstance.ephemeral(),
        raise_on_error=False,
        op_selection=["extract__crm"],
        run_config={"resources": {"run_options": {"config": {"full_refresh_sources": ["crn"]}}}},
    )
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "crn" in message and "not a configured source" in message and "crm" in message
    assert not (tmp_path / "data" / "landing").exists()


def test_an_erp_table_that_differs_after_the_write_fails_the_publish_saying_it_was_written(
    demo_copy, monkeypatch
):
    from custpipe.definitions import build_definitions
    from custpipe.defs import publish as publish_defs
    from custpipe.publish.verify import ContentHash

    deployment, instance, _ = demo_copy
    monkeypatch.setattr(  # as if a value changed on its way into the ERP
        publish_defs, "erp_content", lambda url, table: ContentHash("0" * 64, 3, 3)
    )
    job = build_definitions(deployment.settings).resolve_job_def("nightly")
    result = job.execute_in_process(  # a full publish: the whole table is read back
        partition_key=BUSINESS_DATE.isoformat(),
        instance=instance,
        raise_on_error=False,
        op_selection=["publish__erp_customers"],
        tags={FULL_REFRESH_TAG: "true"},
    )
    assert not result.success
    check = next(
        c for c in result.get_asset_check_evaluations() if c.check_name == "erp_matches_golden"
    )
    assert not check.passed and check.severity == dg.AssetCheckSeverity.ERROR
    assert PUBLISHED in {m.asset_key for m in result.get_asset_materialization_events()}
    failure = next(e for e in result.all_events if e.is_step_failure)
    message = failure.step_failure_data.user_failure_data.description
    assert "erp_matches_golden" in message and "3 active ERP rows" in message
    assert "the ERP table was written tonight" in message


def test_an_incremental_night_reads_back_only_what_it_wrote_and_the_tables_mark(demo_copy):
    """An incremental night checks the rows it wrote value by value and the rest of the
    table by its mark: a value changed in a written row, or a row hash changed anywhere,
    fails the check; nothing is read row by row but tonight's rows."""
    from custpipe import gates
    from custpipe.demo.changes import change_sources
    from custpipe.publish.verify import verify_night

    deployment, instance, _ = demo_copy
    settings = deployment.settings
    change_sources(settings.sources_dir, BUSINESS_DATE, fraction=0.1, seed=5)
    night = run_nightly(settings, instance)
    assert night.success
    check = next(
        c for c in night.get_asset_check_evaluations() if c.check_name == "erp_matches_golden"
    )
    published = _materialisations(night)["publish/erp_customers"]
    assert published["mode"].value == "incremental"
    written = published["rows_published"].value
    assert written > 0 and check.passed
    assert check.metadata["rows_written"].value == written
    assert "rows written tonight read back as meant" in check.description
    assert published["dagster/row_count"].value >= published["active_rows"].value > 0

    target = load_config(settings.config_dir).publish
    url = resolve_url(target.connection, "publish", settings)
    engine = sa.create_engine(url)

    def verify():
        con = duckdb.connect(str(settings.warehouse_path), read_only=True)
        try:
            return verify_night(con, url, target.table, night.run_id, written)
        finally:
            con.close()

    assert verify().ok
    with engine.begin() as conn:  # a value of a row written tonight changed on its way
        conn.execute(
            sa.text(
                f"UPDATE {target.table} SET city = coalesce(city, '') || 'x' WHERE golden_id = "
                f"(SELECT min(golden_id) FROM {target.table} WHERE run_id = :run "
                "AND status <> 'retired')"
            ),
            {"run": night.run_id},
        )
    found = verify()
    assert (found.mismatched, found.mark_differences) == (1, ())
    result = gates.erp_matches_golden_tonight(found, target.table)
    assert not result.passed and "1 differ" in str(result.failed_rules)
    with engine.begin() as conn:  # a row not written tonight re-hashed by another writer
        conn.execute(
            sa.text(
                f"UPDATE {target.table} SET row_hash = 'ffff' || substr(row_hash, 5) "
                f"WHERE golden_id = (SELECT min(golden_id) FROM {target.table} "
                "WHERE run_id <> :run AND status <> 'retired')"
            ),
            {"run": night.run_id},
        )
    engine.dispose()
    assert "checksum" in verify().mark_differences
