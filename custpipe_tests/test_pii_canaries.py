"""Customer values never reach logs, Dagster metadata, stored GX results or Data Docs."""

import pytest
import sqlalchemy as sa
from dagster._serdes import serialize_value

from custpipe.settings import DEFAULT_CONFIG_DIR
from custpipe_tests.conftest import make_deployment, run_nightly

CANARIES = {
    "name_ok": "Canaryokapi Fiftyfive AG",
    "name_bad": "Canaryzebra Ninetythree GmbH",
    "street": "Canarystrasse 93817",
    "phone": "+49 30 9381 7000",
    "email": "canary93817@canary-mail.de",
    "tax": "DE999938170",
}


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


@pytest.mark.parametrize("opt_in", [False, True], ids=["default", "values-opted-in"])
def test_no_canary_in_logs_metadata_results_or_docs(tmp_path, capfd, opt_in):
    import shutil

    import dagster as dg

    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    if opt_in:  # proves the search below can find a leak: the deployment asks for values
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
    # the canaries really went through the pipeline (so the test can fail) ...
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
    # ... and none of them is in the event log (messages and metadata) ...
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
    tokens = [
        "Canaryokapi",
        "Canaryzebra",
        "Canarystrasse",
        "+493093817000",
        "9381 7000",
        "canary-mail",
        "DE999938170",
        "Canaryland",
    ]
    leaks = [(where, t) for where, text in haystacks.items() for t in tokens if t in text]
    in_gx = [
        w for w, text in haystacks.items() if str(settings.gx_dir) in w and "CanaryTier" in text
    ]
    assert len(haystacks) > 10  # the GX results and Data Docs were really searched
    if opt_in:  # proves the search can find a leak: the deployment asked for values in the docs
        assert in_gx and leaks and all(str(settings.gx_dir) in where for where, _ in leaks)
        return
    assert leaks == [] and in_gx == []
