"""The nightly job over the whole graph and its schedule (stopped by default); model training."""

from pathlib import Path

import dagster as dg

from custpipe.config import PipelineConfig
from custpipe.defs.common import WAREHOUSE_POOL
from custpipe.defs.extract import daily_partitions
from custpipe.defs.resources import CustpipeResource
from custpipe.memory import release_memory

NIGHTLY = "nightly"


@dg.success_hook(name="release_memory_after_step")
def _release_after_success(context: dg.HookContext) -> None:
    release_memory()


@dg.failure_hook(name="release_memory_after_failed_step")
def _release_after_failure(context: dg.HookContext) -> None:
    release_memory()


def build_nightly_job(cfg: PipelineConfig) -> "dg.UnresolvedAssetJobDefinition":
    """Every asset, for one business date (the extract partition)."""
    return dg.define_asset_job(
        NIGHTLY,
        selection=dg.AssetSelection.all(),
        partitions_def=daily_partitions(cfg),
        description="Extract every source for the business date, stage, validate, consolidate, "
        "reconcile orders, publish to the ERP, update the scorecard.",
        tags={"team": "customer-data"},
        # every run (the schedule's, the UI's, `custpipe run`) executes its steps in the run's
        # own process, one at a time: a process per step paid imports and definition loading
        # each time (5-8x the in-process run's time); the DuckDB-bound steps queue on one pool
        # anyway (README: Performance). Retries (RetryPolicy) and pools hold in process.
        executor_def=dg.in_process_executor,
        # steps of an in-process run share one process: each gives back what it freed
        hooks={_release_after_success, _release_after_failure},
    )


def build_nightly_schedule(
    job: "dg.UnresolvedAssetJobDefinition", cfg: PipelineConfig
) -> dg.ScheduleDefinition:
    """Runs `nightly` after each business date ends; stopped until turned on in the UI/CLI."""
    hour, minute = cfg.schedule_time  # validated with the configuration
    return dg.build_schedule_from_partitioned_job(
        job,
        description=f"Runs `nightly` at {hour:02d}:{minute:02d} ({cfg.timezone}) for the "
        "business date that just ended (the previous day's partition), with an empty run "
        "configuration (a normal night: no dry run, incremental). Stopped until turned on.",
        hour_of_day=hour,
        minute_of_hour=minute,
        default_status=dg.DefaultScheduleStatus.STOPPED,
    )


def build_train_model_job(cfg: PipelineConfig) -> dg.JobDefinition:
    """`train_match_model`: retrain the probabilistic match model on the staged records.

    Explicit and manual (no schedule): the new file changes how customers are matched, so
    it is reviewed and committed like code before the nightly run uses it.
    """

    @dg.op(
        description="Train the Splink model on the accepted staged records; write the file.",
        pool=WAREHOUSE_POOL,
    )
    def train_match_model_op(
        context: dg.OpExecutionContext, custpipe: CustpipeResource
    ) -> dg.Output[None]:
        from custpipe.matching.model import train_and_save

        settings, run_cfg = custpipe.settings, custpipe.pipeline  # this run's configuration
        path = Path(settings.expand(run_cfg.matching.model))
        trust = {name: s.trust for name, s in run_cfg.sources.items()}
        model = train_and_save(settings.warehouse_path, path, trust, run_cfg.match_settings())
        context.log.info(f"match model written to {path}; review and commit it")
        return dg.Output(
            None,
            metadata={
                "model_file": str(path),
                "trained_records": model.trained_records,
                "prior": model.splink["probability_two_random_records_match"],
                "comparisons": len(model.splink["comparisons"]),
            },
        )

    @dg.job(
        name="train_match_model",
        description="Retrain the match model on the current staged records (manual).",
        tags={"team": "customer-data"},
    )
    def train_match_model():
        train_match_model_op()

    return train_match_model
