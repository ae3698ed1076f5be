"""The alert of a blocked or failed night (custpipe.alerting): its record, the file, the webhook."""

from __future__ import annotations

import json
import logging
import socket
import time

import pytest

from custpipe import alerting
from custpipe.alerting import Block, Night, alert_record, classify, deliver, run_url
from custpipe.config import AlertsConfig

RULE = {"rule": "name_mostly_present", "evaluated": 150, "failed": 40}
BLOCK = Block(
    "quality/crm",
    "suite_passes",
    (RULE,),
    {"rows_evaluated": 150, "rows_quarantined": 12, "quarantine_rate": 0.08},
    "crm",
)


def record(night: Night) -> dict:
    return alert_record(night, "r1", "nightly", "run failed", url=run_url("r1"))


def test_a_blocked_night_names_the_rule_the_counts_and_that_nothing_was_published():
    night = Night(alerting.BLOCKED, (BLOCK,))
    assert BLOCK.text() == "quality/crm: suite_passes: name_mostly_present (40 of 150 failed)"
    assert night.headline() == (
        "BLOCKED by quality/crm: suite_passes: name_mostly_present (40 of 150 failed)"
        " - the ERP did NOT get tonight's data"
    )
    assert night.tags() == {
        "custpipe/night": "blocked",
        "custpipe/blocked_by": "quality/crm: suite_passes: name_mostly_present (40 of 150 failed)",
    }
    alert = record(night)
    assert alert["kind"] == "blocked" and alert["published"] is False
    assert alert["blocked_by"] == [
        {
            "source": "crm",
            "asset": "quality/crm",
            "check": "suite_passes",
            "rules": [RULE],
            "counts": {"rows_evaluated": 150, "rows_quarantined": 12, "quarantine_rate": 0.08},
        }
    ]
    assert Block.from_dict(alert["blocked_by"][0]) == BLOCK
    assert json.loads(json.dumps(alert)) == alert


def test_an_error_makes_the_night_failed_even_when_a_check_also_blocked():
    assert classify([BLOCK], {"quality__crm": "blocked by ..."}, {"quality__crm"}) == "blocked"
    assert classify([BLOCK], {"quality__crm": "x", "extract__erp": "boom"}, {"quality__crm"}) == (
        "failed"
    )
    assert classify([], {"extract__erp": "boom"}, set()) == "failed"
    assert classify([], {}, set()) == "failed"  # the run failed outside any step
    night = Night(alerting.FAILED, (BLOCK,), {"extract__erp": "source 'erp': file not found"})
    assert night.headline().startswith("FAILED (error in extract__erp); also blocked by quality/")
    assert record(night)["errors"] == {"extract__erp": "source 'erp': file not found"}
    assert Night(alerting.FAILED, published=True).headline().endswith("the ERP got tonight's data")


def test_the_run_url_comes_from_the_environment_then_the_configuration(monkeypatch):
    monkeypatch.delenv(alerting.DAGSTER_URL_ENV, raising=False)
    assert run_url("abc") == "http://127.0.0.1:3000/runs/abc"
    assert run_url("abc", "https://dagster.example.com/") == "https://dagster.example.com/runs/abc"
    monkeypatch.setenv(alerting.DAGSTER_URL_ENV, "http://ops:3000")
    assert run_url("abc", "https://dagster.example.com") == "http://ops:3000/runs/abc"


def test_the_configured_dagster_url_must_be_http_without_credentials():
    assert AlertsConfig(dagster_url="https://dagster.example.com/").dagster_url == (
        "https://dagster.example.com"
    )
    for bad in ("dagster.example.com", "http://user:pw@dagster:3000", "ftp://x"):
        with pytest.raises(ValueError, match="not the URL of the Dagster UI"):
            AlertsConfig(dagster_url=bad)


def test_the_alert_goes_to_the_file_and_as_json_to_the_webhook(tmp_path, webhook):
    alert = record(Night(alerting.BLOCKED, (BLOCK,)))
    delivery = deliver(alert, tmp_path / "alerts" / "alerts.jsonl", webhook.url, timeout=5)
    assert delivery.webhook_ok
    assert "T0KEN" not in delivery.webhook  # the path of a webhook URL may be its token
    (line,) = (tmp_path / "alerts" / "alerts.jsonl").read_text().splitlines()
    assert json.loads(line) == alert
    assert webhook.received == [("/hooks/T0KEN-secret", "application/json", alert)]


def test_without_a_webhook_only_the_file_is_written(tmp_path):
    delivery = deliver(record(Night(alerting.FAILED)), tmp_path / "a.jsonl", None)
    assert delivery.webhook is None and not delivery.webhook_ok
    assert json.loads((tmp_path / "a.jsonl").read_text())["kind"] == "failed"


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.mark.parametrize("failure", ["http_500", "refused", "timeout", "not_http"])
def test_a_failing_webhook_is_logged_and_never_loses_the_file_alert(
    tmp_path, webhook, caplog, failure
):
    url = webhook.url
    if failure == "http_500":
        webhook.status = 500
    elif failure == "refused":
        url = f"http://127.0.0.1:{_closed_port()}/hooks/T0KEN-secret"
    elif failure == "timeout":
        webhook.delay = 3
    else:
        url = "file:///etc/T0KEN-secret"
    path = tmp_path / "alerts.jsonl"
    alert = record(Night(alerting.BLOCKED, (BLOCK,)))
    started = time.monotonic()
    with caplog.at_level(logging.ERROR, logger="custpipe.alerting"):
        delivery = deliver(alert, path, url, timeout=0.5)
    assert time.monotonic() - started < 2.5  # the timeout holds
    assert json.loads(path.read_text()) == alert  # the file alert is there
    assert delivery.webhook_error and not delivery.webhook_ok
    expected = {"http_500": "500", "refused": "refused", "timeout": "timed out"}
    assert expected.get(failure, "http:// or https://") in delivery.webhook_error.lower()
    (message,) = [r.getMessage() for r in caplog.records]
    assert message.startswith("alert webhook ") and "failed" in message and str(path) in message
    assert "T0KEN" not in message and "T0KEN" not in delivery.webhook_error


def _readme_section(title: str) -> str:
    from pathlib import Path

    text = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    return text.split(f"\n## {title}\n", 1)[1].split("\n## ", 1)[0]


def test_the_runbook_covers_every_kind_of_night_and_shows_the_alert_as_written():
    from typing import get_args

    section = _readme_section("Runbook for on-call")
    kinds = [line.split("`")[1] for line in section.splitlines() if line.startswith("| `")]
    assert sorted(kinds) == sorted(get_args(alerting.Kind))
    example = section.split("```json\n", 1)[1].split("```", 1)[0].replace("…", "")
    shown = json.loads(example)
    assert set(shown) == set(record(Night(alerting.BLOCKED, (BLOCK,))))
    assert set(shown["blocked_by"][0]) == set(BLOCK.as_dict())


def test_the_demo_configuration_names_the_webhook_variable_and_the_dagster_url():
    from custpipe.config import load_config
    from custpipe.settings import DEFAULT_CONFIG_DIR

    alerts = load_config(DEFAULT_CONFIG_DIR).alerts
    assert alerts.webhook_url_env == alerting.WEBHOOK_URL_ENV
    assert alerts.dagster_url == alerting.DEFAULT_DAGSTER_URL
    assert alerts.webhook_timeout_seconds == 10


def test_a_configuration_that_does_not_load_still_gets_its_alert_out(config_dir, tmp_path):
    """The broken configuration may be why the run failed: the sensor falls back to the
    default alert settings and says so, instead of failing without an alert."""
    from custpipe.defs.alerts import alerts_settings
    from custpipe.defs.resources import CustpipeResource
    from custpipe.settings import DEFAULT_EXPECTATIONS_DIR, Settings

    (config_dir / "pipeline.yaml").write_text("alerts: {dagster_url: nowhere}\n")
    resource = CustpipeResource.from_settings(
        Settings(config_dir, tmp_path / "data", DEFAULT_EXPECTATIONS_DIR)
    )
    settings, problem = alerts_settings(resource)
    assert settings == AlertsConfig()
    assert problem.startswith("config not loaded (") and "default alerts" in problem
