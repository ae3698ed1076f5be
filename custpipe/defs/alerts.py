"""Alerting: a failed nightly run leaves an alert record the on-call engineer (or a pager) reads."""

import json
from datetime import UTC, datetime

import dagster as dg

from custpipe.defs.resources import CustpipeResource


def alert_record(run_id: str, job: str, message: str, failed_steps: list[str]) -> dict:
    """What an alert says: which run, which steps, the error headline (no customer values)."""
    return {
        "at": datetime.now(UTC).isoformat(timespec="seconds"),
        "run_id": run_id,
        "job": job,
        "failed_steps": failed_steps,
        "message": message.splitlines()[0][:500] if message else "",
    }


@dg.run_failure_sensor(
    name="nightly_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="Appends an alert to <CUSTPIPE_DATA>/alerts/alerts.jsonl when a run of this "
    "code location (notably `nightly`) fails.",
)
def nightly_failure_alert(context: dg.RunFailureSensorContext, custpipe: CustpipeResource):
    """Write the failure to the alert log (swap for Slack/PagerDuty in a real deployment)."""
    failed = [e.step_key for e in context.get_step_failure_events() if e.step_key]
    record = alert_record(
        context.dagster_run.run_id,
        context.dagster_run.job_name,
        context.failure_event.message or "",
        failed,
    )
    path = custpipe.settings.data_dir / "alerts" / "alerts.jsonl"
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps(record) + "\n")
    context.log.info(f"alert written to {path} for run {record['run_id']}")
