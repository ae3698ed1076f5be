"""Customer values never reach logs, Dagster metadata, stored GX results or Data Docs."""

import pytest
import sqlalchemy as sa
from dagster._serdes import serialize_value

from custpipe.settings import DEFAULT_CONFIG_DIR
from custpipe_tests.conftest import make_deployment, run_nightly, send_failure_alert

CANARIES = {
    "name_ok": "Canaryokapi Fiftyfive AG",
    "name_bad": "Canaryzebra Ninetythree GmbH",
    "street": "Canarystrasse 93817",
    "phone": "+49 30 9381 7000",
    "email": "canary93817@canary-mail.de",
    "tax": "DE999938170",
}

CANARY_TOKENS = (
    "Canaryokapi",
    "Canaryzebra",
    "Canarystrasse",
    "+493093817000",
    "9381 7000",
    "canary-mail",
    "DE999938170",
    "Canaryland",
)


def plant(settings) -> None:
    engine = sa.create_engine(f"sqlite:///{settings.sources_dir / 'crm' / 'crm.sqlite'}")
    with engine.begin() as conn:
        ids = [
            r[0]
            for r in conn.execute(
                sa.text("SELECT Id FROM Account WHERE IsPersonAccount = 0 ORDER BY Id LIMIT 2")
            )
        ]
        # one record that flows through to a golden record ...
        conn.execute(
            sa.text(
                "UPDATE Account SET Name = :n, BillingStreet = :s, Phone = :p, Tax_Number__c = :t "
                "WHERE Id = :id"
            ),
            {
                "n": CANARIES["name_ok"],
                "s": CANARIES["street"],
                "p": CANARIES["phone"],
                "t": CANARIES["tax"],
                "id": ids[0],
            },
        )
        # ... and one that fails a quarantine rule (unknown country) and a warn rule (tax id)
        conn.execute(
            sa.text(
                "UPDATE Account SET Name = :n, BillingCountry = 'Canaryland', Tax_Number__c = :t, "
                "Tier__c = 'CanaryTier' WHERE Id = :id"
            ),
            {"n": CANARIES["name_bad"], "t": CANARIES["tax"], "id": ids[1]},
        )
        person = conn.execute(
            sa.text("SELECT Id FROM Account WHERE IsPersonAccount = 1 ORDER BY Id LIMIT 1")
        ).scalar()
        conn.execute(
            sa.text("UPDATE Account SET PersonEmail = :e WHERE Id = :id"),
            {"e": CANARIES["email"], "id": person},
        )
    engine.dispose()


def assert_canaries_went_through(settings) -> None:
    """The planted canaries were staged and one quarantined, so a search for them can fail."""
    import duckdb

    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    staged_names = {r[0] for r in con.execute("SELECT name FROM staging.customers").fetchall()}
    quarantined = con.execute(
        "SELECT count(*) FROM quality.quarantine q JOIN staging.customers s "
        "USING (source_system, source_id) WHERE s.name = ?",
        [CANARIES["name_bad"]],
    ).fetchone()[0]
    con.close()
    assert CANARIES["name_ok"] in staged_names and quarantined >= 1


def test_the_canary_search_finds_values_a_deployment_opted_into_the_docs(tmp_path, capfd):
    """The control of the search below: with `include_values_in_docs: true` the canaries are
    found, and only in what GX wrote. (The default, values kept out of everything, is the good
    night of test_no_canary_or_password_in_any_output_of_a_good_and_a_failing_night.)"""
    import shutil

    import dagster as dg

    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    pipeline = config / "pipeline.yaml"
    pipeline.write_text(
        pipeline.read_text().replace(
            "include_values_in_docs: false", "include_values_in_docs: true"
        )
    )
    deployment = make_deployment(tmp_path, customers=150, config_dir=config)
    settings = deployment.settings
    plant(settings)
    instance = dg.DagsterInstance.ephemeral()
    result = run_nightly(settings, instance)
    assert result.success
    assert_canaries_went_through(settings)
    # the event log (messages and metadata) ...
    haystacks = {
        "event log": "\n".join(serialize_value(e) for e in instance.all_logs(result.run_id))
    }
    out, err = capfd.readouterr()
    haystacks["stdout/stderr"] = out + err
    # ... nor in any file GX wrote (validation results, Data Docs) or the scorecard page
    for folder in (settings.gx_dir, settings.reports_dir):
        for path in folder.rglob("*"):
            if path.is_file():
                haystacks[str(path)] = path.read_text(encoding="utf-8", errors="ignore")
    tokens = CANARY_TOKENS
    leaks = [(where, t) for where, text in haystacks.items() for t in tokens if t in text]
    in_gx = [
        w for w, text in haystacks.items() if str(settings.gx_dir) in w and "CanaryTier" in text
    ]
    assert len(haystacks) > 10  # the GX results and Data Docs were really searched
    # the search finds a leak: the deployment asked for values in the docs
    assert in_gx and leaks and all(str(settings.gx_dir) in where for where, _ in leaks)


# An unescaped '@' in a password: a URL parser takes what follows it for the host name, and a
# driver's "could not translate host name" then printed it (issue 13)
PASSWORD = "Kanarienvogel@Pw-4711"
PASSWORD_TOKENS = ("Kanarienvogel", "Pw-4711")


def _postgres_url() -> str | None:
    """A PostgreSQL URL carrying the canary password (trust auth accepts any), or None."""
    from urllib.parse import quote

    from custpipe_tests.conftest import require_services

    url = f"postgresql+psycopg://postgres:{quote(PASSWORD, safe='')}@127.0.0.1:5432/test"
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        return url
    except sa.exc.OperationalError:
        if require_services():
            pytest.fail("PostgreSQL must run here (CUSTPIPE_REQUIRE_SERVICES=1)")
        return None
    finally:
        engine.dispose()


def test_no_canary_or_password_in_any_output_of_a_good_and_a_failing_night(
    tmp_path, capfd, caplog, monkeypatch
):
    """Customer canaries in the CRM and a password in the publish and CRM URLs: after a good
    night (published to PostgreSQL with the password when the server runs), a night whose
    CRM URL (with the password, '@' unescaped) holds the CRM back and one where it fails the
    night (`on_failure: block`), no output holds any of them."""
    import json
    import logging
    import shutil
    import uuid

    import dagster as dg
    import duckdb

    caplog.set_level(logging.DEBUG)
    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    table = f"zcust_canary_{uuid.uuid4().hex[:8]}"
    pg = _postgres_url()
    if pg is not None:  # publish into a table of its own in the shared test database
        pipeline = config / "pipeline.yaml"
        pipeline.write_text(pipeline.read_text().replace("table: ZCUST_INBOUND", f"table: {table}"))
        monkeypatch.setenv("CUSTPIPE_PUBLISH_URL", pg)
    deployment = make_deployment(tmp_path, customers=150, config_dir=config)
    settings = deployment.settings
    plant(settings)
    instance = dg.DagsterInstance.ephemeral()
    try:
        good = run_nightly(settings, instance)
        assert good.success
        assert_canaries_went_through(settings)
        if pg is not None:  # the password really was used to publish
            engine = sa.create_engine(pg)
            with engine.connect() as conn:
                published = conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
            assert published > 0
            engine.dispose()
        # the second night: the CRM's URL carries the password with an unescaped '@'; the
        # CRM is held back (on_failure: hold, the default): the reason is in the log, the
        # metadata, the checks and ops.held_sources
        monkeypatch.setenv("CUSTPIPE_CRM_URL", f"postgresql://crm:{PASSWORD}@127.0.0.1:1/crm")
        held = run_nightly(settings, instance)
        assert held.success
        (hold,) = [
            e
            for e in held.get_asset_check_evaluations()
            if e.asset_check_key.name == "source_held" and not e.passed
        ]
        assert hold.asset_key.to_user_string() == "staging/crm"
        # the third night, the CRM set to `on_failure: block`: the night fails and alerts
        crm = config / "sources" / "crm.yaml"
        crm.write_text(crm.read_text() + "on_failure: block\n")
        bad = run_nightly(settings, instance)
        assert not bad.success
        failed = {e.step_key for e in bad.all_events if e.is_step_failure}
        assert "extract__crm" in failed
        send_failure_alert(settings, instance, bad)
    finally:
        if pg is not None:
            engine = sa.create_engine(pg)
            with engine.begin() as conn:
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {table}"))
            engine.dispose()
    haystacks: dict[str, str] = {}
    for result in (good, held, bad):
        haystacks[f"event log {result.run_id}"] = "\n".join(
            serialize_value(e) for e in instance.all_logs(result.run_id)
        )
        # every materialisation and check result, with its metadata
        haystacks[f"metadata {result.run_id}"] = "\n".join(
            serialize_value(e.event_specific_data) for e in result.all_events
        )
    haystacks["run storage"] = "\n".join(
        serialize_value(r.dagster_run) + repr(r) for r in instance.get_run_records()
    )
    out, err = capfd.readouterr()
    haystacks["stdout/stderr"] = out + err
    haystacks["python logging"] = "\n".join(
        f"{r.name} {r.getMessage()} {r.exc_text or ''}" for r in caplog.records
    )
    alerts = settings.data_dir / "alerts" / "alerts.jsonl"
    haystacks[str(alerts)] = alerts.read_text(encoding="utf-8")
    assert json.loads(alerts.read_text().splitlines()[-1])["errors"]["extract__crm"]
    for folder in (settings.gx_dir, settings.reports_dir, settings.landing_dir):
        for path in folder.rglob("*"):
            if path.is_file() and path.suffix != ".parquet":  # landing data holds the records
                haystacks[str(path)] = path.read_text(encoding="utf-8", errors="ignore")
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    for name in (
        "quality.scorecard",
        "quality.validation_runs",
        "quality.quarantine",
        "staging.mapping_issues",
        "mdm.match_review",
        "ops.held_sources",
    ):
        haystacks[name] = con.execute(f"SELECT * FROM {name}").df().to_csv()
    con.close()
    assert (settings.reports_dir / "match_review.csv").exists()
    assert (settings.reports_dir / "scorecard.html").exists()
    assert any("validations" in w for w in haystacks) and any("data_docs" in w for w in haystacks)
    tokens = CANARY_TOKENS + PASSWORD_TOKENS
    leaks = sorted({(where, t) for where, text in haystacks.items() for t in tokens if t in text})
    assert leaks == []
    in_gx = [
        w for w, text in haystacks.items() if str(settings.gx_dir) in w and "CanaryTier" in text
    ]
    assert len(haystacks) > 10 and in_gx == []  # the GX results and Data Docs were searched
