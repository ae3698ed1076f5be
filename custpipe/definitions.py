"""The one Definitions object: assets, checks, jobs, schedules and resources, built from config."""

from __future__ import annotations

import dagster as dg

from custpipe.config import load_config
from custpipe.defs.alerts import nightly_failure_alert, nightly_held_alert
from custpipe.defs.consolidate import build_consolidate_asset
from custpipe.defs.extract import build_extract_asset
from custpipe.defs.jobs import build_nightly_job, build_nightly_schedule, build_train_model_job
from custpipe.defs.publish import build_publish_asset
from custpipe.defs.quality import (
    build_quality_asset,
    build_retention_asset,
    build_scorecard_asset,
)
from custpipe.defs.reconcile import build_reconcile_asset
from custpipe.defs.resources import RunOptions, custpipe_resource
from custpipe.defs.stage import build_stage_asset
from custpipe.settings import Settings


def build_definitions(settings: Settings) -> dg.Definitions:
    """Assemble the Dagster definitions for a deployment (config is validated here)."""
    cfg = load_config(settings.config_dir)
    if settings.partitions_start:  # the environment's (the demo's) start of the partitions
        cfg = cfg.model_validate(cfg.model_dump() | {"partitions_start": settings.partitions_start})
    assets = []
    for source in cfg.sources:
        assets += [
            build_extract_asset(source, cfg),
            build_stage_asset(source, cfg),
            build_quality_asset(source, cfg),
        ]
    assets += [
        build_consolidate_asset(cfg),
        build_reconcile_asset(cfg),
        build_publish_asset(cfg),
        build_scorecard_asset(cfg),
        build_retention_asset(cfg),
    ]
    job = build_nightly_job(cfg)
    return dg.Definitions(
        assets=assets,
        jobs=[job, build_train_model_job(cfg)],
        schedules=[build_nightly_schedule(job, cfg)],
        sensors=[nightly_failure_alert, nightly_held_alert],
        resources={"custpipe": custpipe_resource(settings), "run_options": RunOptions()},
    )


defs = build_definitions(Settings.from_env())
