"""The whole nightly graph materialised in process on a small generated dataset."""

from __future__ import annotations

import json
import re
import shutil

import dagster as dg
import duckdb
import pandas as pd
import sqlalchemy as sa

from custpipe import warehouse
from custpipe.settings import DEFAULT_CONFIG_DIR
from custpipe_tests.conftest import (
    BUSINESS_DATE,
    make_deployment,
    run_nightly,
    send_failure_alert,
)


def query(settings, sql: str) -> pd.DataFrame:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(sql).df()
    finally:
        con.close()


def erp_rows(settings) -> pd.DataFrame:
    engine = sa.create_engine(f"sqlite:///{settings.sources_dir / 'erp' / 'erp.sqlite'}")
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text("SELECT * FROM ZCUST_INBOUND"), conn)
    engine.dispose()
    return frame


def test_nightly_succeeds_and_fills_every_contract_table(demo_run):
    deployment, _, result = demo_run
    assert result.success
    counts = query(
        deployment.settings,
        " UNION ALL ".join(
            f"SELECT '{t}' AS t, count(*) AS n FROM {t}" for t in warehouse.CONTRACT_TABLES
        ),
    )
    n = dict(zip(counts["t"], counts["n"], strict=True))
    for table in warehouse.CONTRACT_TABLES:
        assert n[table] > 0, table


def test_every_extracted_record_is_staged(demo_run):
    deployment, _, _ = demo_run
    truth = pd.read_csv(deployment.ground_truth / "customers.csv", dtype=str)
    staged = query(
        deployment.settings, "SELECT source_system, count(*) AS n FROM staging.customers GROUP BY 1"
    )
    assert (
        dict(zip(staged["source_system"], staged["n"], strict=True))
        == truth["source_system"].value_counts().to_dict()
    )


def test_conservation_every_record_in_exactly_one_of_xref_or_quarantine(demo_run):
    deployment, _, result = demo_run
    places = query(
        deployment.settings,
        f"""
        SELECT s.source_system, s.source_id,
               (x.golden_id IS NOT NULL)::INT + (q.source_id IS NOT NULL)::INT AS places
        FROM staging.customers s
        LEFT JOIN mdm.customer_xref x USING (source_system, source_id)
        LEFT JOIN (SELECT DISTINCT source_system, source_id FROM quality.quarantine
                   WHERE run_id = '{result.run_id}') q USING (source_system, source_id)
    """,
    )
    assert len(places) > 0
    assert (places["places"] == 1).all()
    checks = {e.asset_check_key.name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks["conservation"] is True


def test_quarantined_rows_carry_rule_and_description(demo_run):
    deployment, _, result = demo_run
    q = query(
        deployment.settings, f"SELECT * FROM quality.quarantine WHERE run_id = '{result.run_id}'"
    )
    assert len(q) > 0
    assert set(q["severity"]) == {"quarantine"}
    assert q["rule"].notna().all() and (q["description"].str.len() > 0).all()
    # the demo injects codes outside every crosswalk: they must be held back, not published
    assert "segment_crosswalk_covered" in set(q["rule"])


def test_duplicates_are_merged_and_published(demo_run):
    deployment, _, _ = demo_run
    golden = query(deployment.settings, "SELECT count(*) AS n FROM mdm.golden_customers")["n"][0]
    xref = query(deployment.settings, "SELECT count(*) AS n FROM mdm.customer_xref")["n"][0]
    assert golden < xref
    published = erp_rows(deployment.settings)
    assert len(published) == golden
    assert set(published["status"]) <= {"active", "inactive"}


def test_orders_are_reconciled(demo_run):
    deployment, _, _ = demo_run
    kinds = set(
        query(deployment.settings, "SELECT DISTINCT kind FROM recon.order_discrepancies")["kind"]
    )
    assert {"status_mismatch", "amount_mismatch"} <= kinds


def test_second_run_publishes_nothing_and_keeps_golden_ids(demo_copy):
    deployment, instance, _ = demo_copy
    before = query(deployment.settings, "SELECT golden_id FROM mdm.golden_customers ORDER BY 1")
    second = run_nightly(deployment.settings, instance)
    assert second.success
    after = query(deployment.settings, "SELECT golden_id FROM mdm.golden_customers ORDER BY 1")
    assert before["golden_id"].tolist() == after["golden_id"].tolist()
    mats = [
        m
        for m in second.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey(["publish", "erp_customers"])
    ]
    meta = mats[0].materialization.metadata
    assert meta["rows_published"].value == 0
    assert meta["unchanged"].value == len(after)
    runs = query(deployment.settings, "SELECT count(DISTINCT run_id) AS n FROM quality.scorecard")
    assert runs["n"][0] == 2
    keys = query(
        deployment.settings,
        """
        SELECT run_id, source_system, rule, count(*) AS n FROM quality.scorecard GROUP BY ALL""",
    )
    assert (keys["n"] == 1).all()  # one row per (run, source, rule)
    per_run = keys.groupby("run_id").size()
    assert per_run.iloc[0] == per_run.iloc[1]  # the same rules scored in both runs
    page = (deployment.settings.reports_dir / "scorecard.html").read_text()
    # both runs are of one business date: one column, showing the second run (issue 17: the
    # columns were the runs' timestamps)
    assert re.findall(r"<th>(\d{4}-\d\d-\d\d)</th>", page.split("<h2>Problems")[0]) == [
        BUSINESS_DATE.isoformat()
    ]


def test_a_mapping_that_nulls_names_blocks_the_publish(tmp_path, webhook, monkeypatch, capsys):
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    crm = config / "sources" / "crm.yaml"
    crm.write_text(crm.read_text().replace("    name: Name\n", "    name: FirstName\n"))
    deployment = make_deployment(tmp_path, customers=150, config_dir=config)
    instance = dg.DagsterInstance.ephemeral()
    result = run_nightly(deployment.settings, instance)
    assert not result.success
    assert_blocked_alert(deployment.settings, instance, result, webhook, monkeypatch, capsys)
    checks = {
        (e.asset_key.to_user_string(), e.asset_check_key.name): e.passed
        for e in result.get_asset_check_evaluations()
    }
    assert checks[("quality/crm", "suite_passes")] is False
    assert checks[("quality/erp", "suite_passes")] is True
    # the quality assets write the trend page: the blocked night is on it, crm marked
    page = (deployment.settings.reports_dir / "scorecard.html").read_text()
    assert page.count("<td class='blocked'>") == 1 and "<th>crm</th><td class='blocked'>" in page
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert not any("publish" in step for step in started)
    engine = sa.create_engine(f"sqlite:///{deployment.settings.sources_dir / 'erp' / 'erp.sqlite'}")
    with engine.connect() as conn:
        assert not sa.inspect(conn).has_table("ZCUST_INBOUND")
    engine.dispose()


def assert_blocked_alert(settings, instance, result, webhook, monkeypatch, capsys) -> None:
    """A night blocked by crm's `name_mostly_present`: the step, the run's tags, the alert
    (file and webhook) and `custpipe run`'s output name the rule and its counts, say that
    the ERP got nothing, and the alert links the run."""
    import json

    from custpipe.cli import print_unsuccessful_night

    # the step ends with the rule and its counts, not Dagster's "blocking asset check failed"
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    assert failure.step_key == "quality__crm"
    message = failure.step_failure_data.user_failure_data.description
    match = re.match(
        r"blocked by quality/crm: suite_passes: name_mostly_present \((\d+) of (\d+) failed\)",
        message,
    )
    assert match, message
    failed, evaluated = int(match[1]), int(match[2])
    assert 0 < failed <= evaluated and "ERP does not get" in message
    crm_rows = query(
        settings, "SELECT count(*) AS n FROM staging.customers WHERE source_system = 'crm'"
    )
    assert evaluated == crm_rows["n"][0]
    check = next(e for e in result.get_asset_check_evaluations() if not e.passed)
    assert check.description.startswith(f"blocked by: name_mostly_present ({failed} of {evaluated}")

    monkeypatch.setenv("CUSTPIPE_ALERT_WEBHOOK", webhook.url)
    monkeypatch.setenv("CUSTPIPE_DAGSTER_URL", "http://dagster.test:3000")
    send_failure_alert(settings, instance, result)
    lines = (settings.data_dir / "alerts" / "alerts.jsonl").read_text().splitlines()
    alert = json.loads(lines[-1])
    assert alert["run_id"] == result.run_id and alert["job"] == "nightly"
    assert alert["kind"] == "blocked" and alert["published"] is False
    assert alert["business_date"] == BUSINESS_DATE.isoformat()
    assert alert["url"] == f"http://dagster.test:3000/runs/{result.run_id}"
    (block,) = alert["blocked_by"]
    assert (block["source"], block["asset"], block["check"]) == (
        "crm",
        "quality/crm",
        "suite_passes",
    )
    # the names are missing in most rows: those rows are quarantined too, over the limit
    quarantined = block["counts"]["rows_quarantined"]
    assert block["rules"] == [
        {"rule": "name_mostly_present", "evaluated": evaluated, "failed": failed},
        {
            "rule": "quarantine_rate",
            "evaluated": evaluated,
            "failed": quarantined,
            "note": f"{quarantined / evaluated:.1%} > 20%: {quarantined} of {evaluated} rows "
            "quarantined",
        },
    ]
    what = (
        f"quality/crm: suite_passes: name_mostly_present ({failed} of {evaluated} failed), "
        f"quarantine_rate ({quarantined / evaluated:.1%} > 20%: {quarantined} of {evaluated} "
        "rows quarantined)"
    )
    assert block["counts"]["rows_evaluated"] == evaluated
    assert {"rows_quarantined", "quarantine_rate"} <= set(block["counts"])
    assert alert["errors"] == {} and alert["failed_steps"] == []  # no error: a block
    assert alert["headline"].startswith("BLOCKED by quality/crm: suite_passes: name_mostly_pre")
    assert webhook.received == [("/hooks/T0KEN-secret", "application/json", alert)]

    tags = instance.get_run_by_id(result.run_id).tags
    assert tags["custpipe/night"] == "blocked"
    assert tags["custpipe/blocked_by"] == what
    assert alert["headline"] == f"BLOCKED by {what} - the ERP did NOT get tonight's data"

    capsys.readouterr()
    print_unsuccessful_night(instance, result, BUSINESS_DATE)
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == f"nightly run {result.run_id} for business date {BUSINESS_DATE}: BLOCKED"
    assert printed[1] == f"  blocked by {what}"
    assert "the ERP did NOT get this night's data" in printed[2]
    assert not any("failed step" in line for line in printed)


def test_a_missing_export_fails_its_extract_at_once_with_the_file_named(tmp_path):
    from custpipe.definitions import build_definitions

    deployment = make_deployment(tmp_path, customers=60)
    job = build_definitions(deployment.settings).resolve_job_def("nightly")
    instance = dg.DagsterInstance.ephemeral()
    result = job.execute_in_process(
        partition_key="2026-11-26",  # the demo sales exports exist only for 2026-11-27
        instance=instance,
        raise_on_error=False,
    )
    assert not result.success
    failures = {e.step_key: e for e in result.all_events if e.is_step_failure}
    assert set(failures) == {"extract__sales"}
    message = failures["extract__sales"].step_failure_data.user_failure_data.description
    assert "source 'sales'" in message and "customers_20261126.csv not found" in message
    # an error, not a block: the alert and the run's tag say "failed"
    send_failure_alert(deployment.settings, instance, result)
    path = deployment.settings.data_dir / "alerts" / "alerts.jsonl"
    alert = json.loads(path.read_text().splitlines()[-1])
    assert alert["kind"] == "failed" and alert["published"] is False
    assert alert["blocked_by"] == [] and alert["failed_steps"] == ["extract__sales"]
    assert "customers_20261126.csv not found" in alert["errors"]["extract__sales"]
    assert alert["headline"] == (
        "FAILED (error in extract__sales) - the ERP did NOT get tonight's data"
    )
    assert alert["url"].endswith(f"/runs/{result.run_id}")
    assert instance.get_run_by_id(result.run_id).tags["custpipe/night"] == "failed"
    assert not any(e.event_type_value == "STEP_UP_FOR_RETRY" for e in result.all_events)
    succeeded = {e.step_key for e in result.all_events if e.event_type_value == "STEP_SUCCESS"}
    assert {"extract__erp", "extract__crm", "extract__service"} <= succeeded


def published_rows(result) -> int | None:
    mats = [
        m
        for m in result.get_asset_materialization_events()
        if m.asset_key == dg.AssetKey(["publish", "erp_customers"])
    ]
    return mats[0].materialization.metadata["rows_published"].value if mats else None


def copy_sales_export(settings, day: str, keep_rows: int | None, base: str = "20261127") -> None:
    """Deliver the sales exports for another business date, keeping the first `keep_rows`."""
    folder = settings.sources_dir / "sales"
    for kind in ("customers", "orders"):
        source = folder / f"{kind}_{base}.csv"
        encoding = "gbk" if kind == "customers" else "utf-8"
        lines = source.read_text(encoding=encoding).splitlines(keepends=True)
        kept = lines if keep_rows is None else lines[: 1 + keep_rows]
        (folder / f"{kind}_{day}.csv").write_text("".join(kept), encoding=encoding)


def test_backfill_of_an_older_date_never_rolls_the_erp_back(demo_copy):
    deployment, instance, first = demo_copy  # after its nightly of 2026-11-27
    assert first.success
    before = erp_rows(deployment.settings)
    assert len(before) > 0
    copy_sales_export(deployment.settings, "20261120", keep_rows=10)  # an old, smaller export
    from custpipe.definitions import build_definitions

    job = build_definitions(deployment.settings).resolve_job_def("nightly")
    backfill = job.execute_in_process(partition_key="2026-11-20", instance=instance)
    assert backfill.success
    assert published_rows(backfill) == 0
    pd.testing.assert_frame_equal(erp_rows(deployment.settings), before)
    staged = {
        e.asset_key.to_user_string(): e.materialization.metadata
        for e in backfill.get_asset_materialization_events()
        if e.asset_key.path[0] == "staging"
    }
    assert staged["staging/sales"]["customers_mode"].value == "unchanged"


def test_an_empty_export_blocks_before_anything_is_retired(demo_copy):
    from datetime import date

    deployment, instance, first = demo_copy  # after its nightly of 2026-11-27
    assert first.success
    before = erp_rows(deployment.settings)
    assert len(before) > 0
    copy_sales_export(deployment.settings, "20261128", keep_rows=0)  # header only
    result = run_nightly(deployment.settings, instance, day=date(2026, 11, 28))
    assert not result.success
    checks = {
        (e.asset_key.to_user_string(), e.asset_check_key.name): e
        for e in result.get_asset_check_evaluations()
    }
    volume = checks[("quality/sales", "volume_stable")]
    assert volume.passed is False and volume.metadata["drop"].value == 1.0
    assert checks[("quality/erp", "volume_stable")].passed is True
    assert published_rows(result) is None
    pd.testing.assert_frame_equal(erp_rows(deployment.settings), before)


def test_match_quality_against_the_ground_truth(demo_run):
    from custpipe.matching.evaluate import evaluate_matches

    deployment, _, _ = demo_run
    truth = pd.read_csv(deployment.ground_truth / "customers.csv", dtype=str)
    xref = query(
        deployment.settings, "SELECT source_system, source_id, golden_id FROM mdm.customer_xref"
    )
    quality = evaluate_matches(xref, truth)
    # the saved Splink model + definite links: measured 1.0000 / 0.9984 at 5,000 customers
    assert quality.precision >= 0.99 and quality.recall >= 0.97, quality.as_dict()


def test_steward_sheet_round_trip(demo_copy, monkeypatch, capsys):
    from custpipe.cli import main
    from custpipe.steward import store

    deployment, _, _ = demo_copy
    settings = deployment.settings
    sheet = pd.read_csv(settings.reports_dir / "match_review.csv", dtype=str, keep_default_na=False)
    pairs = query(settings, "SELECT count(*) AS n FROM mdm.match_review")["n"][0]
    assert len(sheet) == pairs > 0
    assert list(sheet.columns) == [
        "left",
        "right",
        "left_golden_id",
        "right_golden_id",
        "group",
        "score",
        "explanation",
        "allowed_decisions",
        "decision",
        "decided_by",
        "reason",
    ]
    xref = query(
        settings,
        "SELECT source_system || ':' || source_id AS record, golden_id FROM mdm.customer_xref",
    ).set_index("record")["golden_id"]
    assert sheet["left_golden_id"].tolist() == xref[sheet["left"]].tolist()
    assert sheet["right_golden_id"].tolist() == xref[sheet["right"]].tolist()
    for row in sheet.itertuples():  # one group: one decision between two golden records
        assert row.group == "|".join(sorted([row.left_golden_id, row.right_golden_id]))
    groups = sheet["group"].tolist()  # a group's rows stand together
    assert groups == sorted(groups, key=groups.index)
    assert set(sheet["allowed_decisions"]) == {"must_link or cannot_link"}
    sheet.loc[0, ["decision", "decided_by", "reason"]] = ["cannot_link", "ann", "two branches"]
    filled = settings.reports_dir / "filled.csv"
    sheet.to_csv(filled, index=False)
    monkeypatch.setenv("CUSTPIPE_DATA", str(settings.data_dir))
    monkeypatch.setenv("CUSTPIPE_CONFIG", str(settings.config_dir))
    assert main(["decide", "--file", str(filled)]) == 0
    assert "1 decision(s) recorded" in capsys.readouterr().out
    decided = store.decisions(store.store_path(settings))
    assert decided[
        ["kind", "left_record", "right_record", "decided_by", "origin"]
    ].values.tolist() == [
        ["cannot_link", sheet.loc[0, "left"], sheet.loc[0, "right"], "ann", "sheet"]
    ]
    # the warehouse is left to the nightly run, which imports the decision
    assert query(settings, "SELECT count(*) AS n FROM mdm.steward_decisions")["n"][0] == 0


def test_the_training_job_writes_a_model_the_next_run_uses(demo_copy):

    from custpipe.config import load_config
    from custpipe.definitions import build_definitions
    from custpipe.matching.model import MatchModel

    deployment, instance, _ = demo_copy
    settings = deployment.settings
    path = settings.config_dir / "match_model.json"  # the test deployment's own copy
    before = path.read_text(encoding="utf-8")
    job = build_definitions(settings).resolve_job_def("train_match_model")
    result = job.execute_in_process(instance=instance)
    assert result.success
    model = MatchModel.load(path)
    trained = path.read_text(encoding="utf-8")
    accepted = query(settings, "SELECT count(*) AS n FROM mdm.customer_xref")["n"][0]
    assert model.trained_records == accepted
    assert trained != before  # trained on other data than the committed model
    compared = [c["output_column_name"] for c in model.splink["comparisons"]]
    # trained under pipeline.yaml's settings, less the columns no demo source maps
    assert compared == list(load_config(settings.config_dir).match_settings().comparisons)
    assert {"name_key", "tax_id", "email", "phone", "postal_code"} <= set(compared)
    assert not {"birth_date", "national_id"} & set(compared)
    model.check_settings(load_config(settings.config_dir).match_settings())  # the run accepts it
    output = next(e for e in result.all_events if e.event_type_value == "STEP_OUTPUT")
    metadata = {k: v.value for k, v in output.event_specific_data.metadata.items()}
    assert metadata["trained_records"] == accepted and metadata["model_file"] == str(path)


def test_without_a_model_file_consolidation_fails_with_what_to_do(tmp_path):
    import shutil

    from custpipe.settings import DEFAULT_CONFIG_DIR
    from custpipe_tests.conftest import make_deployment, run_nightly

    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    (config / "match_model.json").unlink()
    deployment = make_deployment(tmp_path, customers=60, config_dir=config)
    result = run_nightly(deployment.settings)
    assert not result.success
    failure = next(e for e in result.all_events if e.is_step_failure)
    assert failure.step_key == "consolidated"
    message = failure.event_specific_data.error.message
    assert "custpipe train-model" in message and "match_model.json" in message
    staged = query(deployment.settings, "SELECT count(*) AS n FROM staging.customers")["n"][0]
    assert staged > 0  # staging and validation ran: the data to train on is there


def test_raw_suites_pass_on_clean_extracts(demo_run):
    _, _, result = demo_run
    checks = {
        e.asset_key.to_user_string(): e
        for e in result.get_asset_check_evaluations()
        if e.asset_check_key.name == "raw_shape"
    }
    assert set(checks) == {f"extract/{s}" for s in ("crm", "erp", "sales", "service")}
    for check in checks.values():
        assert check.passed
        assert check.metadata["rows_evaluated"].value > 0
        assert check.metadata["blocking_rules_failed"].value == 0


def test_an_export_with_duplicated_ids_stops_at_its_raw_suite(tmp_path):
    deployment = make_deployment(tmp_path, customers=80)
    export = deployment.settings.sources_dir / "sales" / "customers_20261127.csv"
    good = export.read_text(encoding="gbk")
    lines = good.splitlines(keepends=True)
    export.write_text("".join(lines + lines[1:3]), encoding="gbk")  # two records sent twice
    instance = dg.DagsterInstance.ephemeral()
    result = run_nightly(deployment.settings, instance)
    assert not result.success
    (check,) = [
        e
        for e in result.get_asset_check_evaluations()
        if e.asset_key == dg.AssetKey(["extract", "sales"])
    ]
    assert not check.passed
    assert re.fullmatch(r"blocked by: record_id_unique \(4 of \d+ failed\)", check.description)
    rules = check.metadata["rules"].value
    assert "| record_id_unique | block | " in rules and "| 4 |" in rules  # 2 ids, 4 rows
    started = {e.step_key for e in result.all_events if e.event_type_value == "STEP_START"}
    assert "staging__sales" not in started and "staging__erp" in started
    assert not any("publish" in step for step in started)
    (rejected,) = deployment.settings.landing_dir.glob("*/sales/*/customers/rejected.json")
    # the rejected folder is never staged, not even when staging runs on its own later
    from datetime import datetime

    from custpipe.config import load_config
    from custpipe.mapping.stage import stage_source

    sales = load_config(deployment.settings.config_dir).sources["sales"]
    with warehouse.connect(deployment.settings.warehouse_path) as con:
        alone = stage_source(con, deployment.settings, sales, None, "by-hand", datetime.now())
    assert alone[0].dataset == "customers" and alone[0].mode == "unchanged"
    export.write_text(good, encoding="gbk")  # the export is fixed at the source
    assert run_nightly(deployment.settings, instance).success
    staged = query(deployment.settings, "SELECT landing_path FROM staging.landing_log")
    assert str(rejected.parent) not in set(staged["landing_path"])
    counts = query(
        deployment.settings,
        "SELECT count(*) AS n, count(DISTINCT source_id) AS ids FROM staging.customers "
        "WHERE source_system = 'sales'",
    )
    assert counts["n"][0] == counts["ids"][0] == len(lines) - 1


def test_the_shared_demo_run_is_as_its_first_nightly_left_it(demo_run):
    """Tests that change the deployment take `demo_copy`: whatever ran before, the shared
    deployment still holds one run, no steward decision, the committed model, one publish."""
    deployment, _, first = demo_run
    settings = deployment.settings
    runs = query(settings, "SELECT DISTINCT run_id FROM quality.scorecard")["run_id"].tolist()
    assert runs == [first.run_id]
    assert query(settings, "SELECT count(*) AS n FROM mdm.steward_decisions")["n"][0] == 0
    model = (settings.config_dir / "match_model.json").read_text(encoding="utf-8")
    assert model == (DEFAULT_CONFIG_DIR / "match_model.json").read_text(encoding="utf-8")
    engine = sa.create_engine(f"sqlite:///{settings.sources_dir / 'erp' / 'erp.sqlite'}")
    with engine.connect() as conn:
        publishes = conn.execute(sa.text("SELECT run_id FROM ZCUST_INBOUND_LOG")).scalars().all()
    engine.dispose()
    assert publishes == [first.run_id]
    assert not (settings.reports_dir / "filled.csv").exists()


def test_a_process_killed_mid_staging_changes_nothing_and_the_rerun_recovers(demo_copy):
    import os
    import signal
    import subprocess
    import sys
    from datetime import date
    from pathlib import Path

    from custpipe_tests.publish.kill import wait_for_line

    deployment, instance, _ = demo_copy
    settings = deployment.settings
    erp = sa.create_engine(f"sqlite:///{settings.sources_dir / 'erp' / 'erp.sqlite'}")
    with erp.begin() as conn:  # five customers move: staging has rows to replace
        moved = conn.execute(sa.text("SELECT KUNNR FROM KNA1 ORDER BY KUNNR LIMIT 5")).scalars()
        moved = moved.all()
        for i, kunnr in enumerate(moved):
            conn.execute(  # AEDAT: the change date the ERP's incremental extraction reads
                sa.text("UPDATE KNA1 SET STRAS = :s, AEDAT = '20261128' WHERE KUNNR = :k"),
                {"s": f"Neue Strasse {i + 1}", "k": kunnr},
            )
    erp.dispose()
    copy_sales_export(settings, "20261128", keep_rows=None)
    staged = "SELECT * EXCLUDE (source_values) FROM staging.customers ORDER BY ALL"
    before = query(settings, staged)
    log_before = query(settings, "SELECT * FROM staging.landing_log ORDER BY ALL")
    script = Path(__file__).with_name("killable_stage.py")
    argv = [settings.config_dir, settings.data_dir, "2026-11-28", "erp"]
    proc = subprocess.Popen(
        [sys.executable, str(script), *map(str, argv)],
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = wait_for_line(proc, "staged in open transaction: ", timeout=120)
        assert int(line.rsplit(" ", 1)[1]) > 0
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    assert proc.returncode == -signal.SIGKILL
    # nothing of the killed transaction is in the warehouse; its landing folder is kept
    pd.testing.assert_frame_equal(query(settings, staged), before)
    pd.testing.assert_frame_equal(
        query(settings, "SELECT * FROM staging.landing_log ORDER BY ALL"), log_before
    )
    rerun = run_nightly(settings, instance, day=date(2026, 11, 28))
    assert rerun.success
    checks = {e.asset_check_key.name: e.passed for e in rerun.get_asset_check_evaluations()}
    assert checks["conservation"] is True
    ids = ", ".join(f"'{k}'" for k in moved)
    streets = query(
        settings,
        f"SELECT street FROM staging.customers WHERE source_system = 'erp' "
        f"AND source_id IN ({ids})",
    )
    assert sorted(streets["street"]) == [f"Neue Strasse {i}" for i in range(1, 6)]
