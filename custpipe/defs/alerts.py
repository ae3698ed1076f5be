"""Alerting: a blocked or failed nightly run leaves an alert (file, and webhook if configured)
and run tags that say which it was; the record is built by custpipe.alerting."""

import os

import dagster as dg

from custpipe import alerting, gates, holding
from custpipe.alerting import Block, Night
from custpipe.config import AlertsConfig, ConfigError, load_config
from custpipe.defs.common import BLOCKED_BY_KEY, PARTITION_TAG
from custpipe.defs.publish import PUBLISHED
from custpipe.defs.resources import CustpipeResource

_EVENTS = {
    dg.DagsterEventType.STEP_FAILURE,
    dg.DagsterEventType.ASSET_CHECK_EVALUATION,
    dg.DagsterEventType.ASSET_MATERIALIZATION,
}


def step_error(event: dg.DagsterEvent) -> str:
    """A failed step's message: its Failure's description, else its error's (one line)."""
    data = event.step_failure_data
    error = data.error.message if data and data.error else event.message
    if data and data.user_failure_data and data.user_failure_data.description:
        error = data.user_failure_data.description
    return alerting.headline(error)


def _block(evaluation) -> Block:
    value = evaluation.metadata.get(BLOCKED_BY_KEY)
    if value is not None:
        return Block.from_dict(value.value)
    # a blocking failure reported without custpipe's metadata: name the check at least
    return Block(evaluation.asset_key.to_user_string(), evaluation.check_name)


def night_of_run(instance: dg.DagsterInstance, run_id: str) -> Night:
    """What the run's event log says: the failed blocking checks, the steps that failed for
    another reason, and whether the ERP was written (publish materialised, not a dry run)."""
    blocks, blocked_steps, failures, published = [], set(), {}, False
    for entry in instance.all_logs(run_id, of_type=_EVENTS):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type == dg.DagsterEventType.STEP_FAILURE:
            failures[event.step_key or "?"] = step_error(event)
        elif event.event_type == dg.DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            failed_blocking = (
                not evaluation.passed
                and evaluation.blocking
                and evaluation.severity == dg.AssetCheckSeverity.ERROR
            )
            if failed_blocking:
                blocks.append(_block(evaluation))
                blocked_steps.add(event.step_key)
        elif event.asset_key == PUBLISHED:
            dry_run = event.step_materialization_data.materialization.metadata.get("dry_run")
            published = published or not (dry_run is not None and dry_run.value)
    kind = alerting.classify(blocks, failures, blocked_steps)
    errors = {step: text for step, text in failures.items() if step not in blocked_steps}
    return Night(kind, tuple(blocks), errors, published)


def held_sources(materializations) -> list[tuple[str, str]]:
    """(source, reason) of every source held back, from a run's staging materialisations
    (metadata `held`, `held_reason`), sorted by source."""
    out = []
    for mat in materializations:
        held = mat.metadata.get("held")
        if mat.asset_key.path[0] == "staging" and held is not None and held.value is True:
            out.append((mat.asset_key.path[-1], str(mat.metadata["held_reason"].value)))
    return sorted(out)


def held_night(instance: dg.DagsterInstance, run_id: str) -> Night | None:
    """The held night of a successful run that held sources back (None: nothing held)."""
    entries = instance.all_logs(run_id, of_type=dg.DagsterEventType.ASSET_MATERIALIZATION)
    mats = [e.dagster_event.step_materialization_data.materialization for e in entries]
    held = held_sources(mats)
    if not held:
        return None
    blocks = tuple(
        Block(
            f"staging/{source}",
            gates.SOURCE_HELD,
            ({"rule": "held back", "note": reason},),
            source=source,
        )
        for source, reason in held
    )
    return Night(alerting.HELD, blocks, {}, night_of_run(instance, run_id).published)


def tag_night(instance: dg.DagsterInstance, run_id: str, night: Night) -> None:
    """Tag the run `custpipe/night` (blocked, failed) and `custpipe/blocked_by` (rules, counts)."""
    instance.add_run_tags(run_id, night.tags())


def alerts_settings(custpipe: CustpipeResource) -> tuple[AlertsConfig, str | None]:
    """The deployment's `alerts:` settings; the defaults (and why) if config/ does not load —
    a broken configuration may be why the run failed, and must not stop its alert."""
    try:
        return load_config(custpipe.settings.config_dir).alerts, None
    except (ConfigError, OSError, ValueError) as exc:
        return AlertsConfig(), alerting.headline(f"config not loaded ({exc}): default alerts")


def send_alert(
    instance: dg.DagsterInstance,
    run: dg.DagsterRun,
    message: str,
    custpipe: CustpipeResource,
    night: Night | None = None,
) -> tuple[dict, alerting.Delivery]:
    """Classify the run (unless `night` says what it was), tag it, and deliver its alert to
    the file and the webhook."""
    night = night or night_of_run(instance, run.run_id)
    tag_night(instance, run.run_id, night)
    settings, problem = alerts_settings(custpipe)
    record = alerting.alert_record(
        night,
        run.run_id,
        run.job_name,
        message,
        url=alerting.run_url(run.run_id, settings.dagster_url),
        business_date=run.tags.get(PARTITION_TAG),
    )
    if problem:
        record["note"] = problem
    path = custpipe.settings.data_dir / "alerts" / "alerts.jsonl"
    webhook = os.environ.get(settings.webhook_url_env) or None
    delivery = alerting.deliver(record, path, webhook, settings.webhook_timeout_seconds)
    return record, delivery


@dg.run_failure_sensor(
    name="nightly_failure_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When a run of this code location (notably `nightly`) fails: tags it "
    "custpipe/night = blocked (a blocking check stopped it: nothing published) or failed (an "
    "error), with custpipe/blocked_by naming the rules and counts, and appends an alert to "
    "<CUSTPIPE_DATA>/alerts/alerts.jsonl, also POSTed to the webhook in the environment "
    "variable that pipeline.yaml alerts.webhook_url_env names (CUSTPIPE_ALERT_WEBHOOK).",
)
def nightly_failure_alert(context: dg.RunFailureSensorContext, custpipe: CustpipeResource):
    """Alert on-call: the file always, the webhook when configured (see custpipe.alerting)."""
    record, delivery = send_alert(
        context.instance, context.dagster_run, context.failure_event.message or "", custpipe
    )
    _log_delivery(context, record, delivery)


@dg.run_status_sensor(
    run_status=dg.DagsterRunStatus.SUCCESS,
    name="nightly_held_alert",
    default_status=dg.DefaultSensorStatus.RUNNING,
    description="When a run of this code location succeeds but held a source back "
    "(on_failure: hold, run tag custpipe/held_sources): tags it custpipe/night = held and "
    "sends a `held` alert naming each held source and why, like nightly_failure_alert.",
)
def nightly_held_alert(context: dg.RunStatusSensorContext, custpipe: CustpipeResource):
    """A held night published, but not everything: on-call must hear of it."""
    run = context.dagster_run
    if not run.tags.get(holding.HELD_TAG):
        return
    night = held_night(context.instance, run.run_id)
    if night is None:
        return
    record, delivery = send_alert(context.instance, run, "", custpipe, night=night)
    _log_delivery(context, record, delivery)


def _log_delivery(context, record: dict, delivery: alerting.Delivery) -> None:
    context.log.info(
        f"{record['kind']} night alert written to {delivery.file}: {record['headline']}"
    )
    if delivery.webhook_error:
        context.log.error(
            f"alert webhook {delivery.webhook} failed ({delivery.webhook_error}); "
            f"the alert is in {delivery.file}"
        )
    elif delivery.webhook:
        context.log.info(f"alert posted to {delivery.webhook}")
