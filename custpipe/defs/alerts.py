"""Alerting: a failed nightly run leaves an alert record the on-call engineer (or a pager) reads."""

import json
from datetime import UTC, datetime

import dagster as dg

from custpipe.defs.resources import CustpipeResource


def _headline(text: str | None) -> str:
    return " ".join((text or "").split())[:500]


def alert_record(run_id: str, job: str, message: str, failures: dict[str, str]) -> dict:
    """What an alert says: which run, which steps failed and why (no customer values)."""
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "job": job,
        "failed_steps": sorted(failures),
        "errors": failures,
        "message": _headline(message),
    }


@dg.run_failure_sensor(
    name="nightly_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Appends an alert to <CUSTPIPE_DATA>/alerts/alerts.jsonl when a run of this "
    "code location (notably `nightly`) fails.",
)
def nightly_failure_alert(context: dg.RunFailureSensorContext, custpipe: CustpipeResource):
    """Write the failure to the alert log (swap for Slack/PagerDuty in a real deployment)."""
    failures = {}
    for event in context.get_step_failure_events():
        data = event.step_failure_data
        error = data.error.message if data and data.error else event.message
        if data and data.user_failure_data and data.user_failure_data.description:
            error = data.user_failure_data.description
        failures[event.step_key or "?"] = _headline(error)
    record = alert_record(
        context.dagster_run.run_id,
        context.dagster_run.job_name,
        context.failure_event.message or "",
        failures,
    )
    path = custpipe.settings.data_dir / "alerts" / "alerts.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    context.log.info(f"alert written to {path} for run {record['run_id']}")
