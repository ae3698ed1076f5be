"""The nightly job over the whole graph and its schedule (stopped by default)."""

from __future__ import annotations

import dagster as dg

from custpipe.config import PipelineConfig
from custpipe.defs.extract import daily_partitions

NIGHTLY = "nightly"


def build_nightly_job(cfg: PipelineConfig) -> dg.UnresolvedAssetJobDefinition:
    """Every asset, for one business date (the extract partition)."""
    return dg.define_asset_job(
        NIGHTLY,
        selection=dg.AssetSelection.all(),
        partitions_def=daily_partitions(cfg),
        description="Extract every source for the business date, stage, validate, consolidate, "
        "reconcile orders, publish to the ERP, update the scorecard.",
        tags={"team": "customer-data"},
    )


def build_nightly_schedule(
    job: dg.UnresolvedAssetJobDefinition, cfg: PipelineConfig
) -> dg.ScheduleDefinition:
    """Runs `nightly` after each business date ends; stopped until turned on in the UI/CLI."""
    hour, minute = _hour_minute(cfg.schedule_cron)
    return dg.build_schedule_from_partitioned_job(
        job,
        hour_of_day=hour,
        minute_of_hour=minute,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )


def _hour_minute(cron: str) -> tuple[int, int]:
    minute, hour, *_ = cron.split()
    if not (minute.isdigit() and hour.isdigit()):
        raise ValueError(f"schedule_cron '{cron}': use a daily cron like '0 2 * * *'")
    return int(hour), int(minute)
