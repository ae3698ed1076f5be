"""The resources of every custpipe asset: where the deployment's config and data live
(`custpipe`), and what tonight's run asks for (`run_options`, the one place of run config)."""

from collections.abc import Iterator
from functools import cached_property
from pathlib import Path

import dagster as dg
from pydantic import Field, PrivateAttr

from custpipe.config import (
    PipelineConfig,
    QualityConfig,
    SourceConfig,
    load_config,
    run_config_copy,
)
from custpipe.runlock import RunLock
from custpipe.settings import Settings


class CustpipeResource(dg.ConfigurableResource):
    """Locations of the deployment (from `CUSTPIPE_CONFIG`, `CUSTPIPE_DATA` or their defaults)."""

    config_dir: str
    data_dir: str
    expectations_dir: str
    _run_id: str | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Remember the run: its steps read one copy of the configuration (see `pipeline`)."""
        self._run_id = context.run_id

    @classmethod
    def from_settings(cls, settings: Settings) -> "CustpipeResource":
        """Build the resource from resolved settings."""
        return cls(
            config_dir=str(settings.config_dir),
            data_dir=str(settings.data_dir),
            expectations_dir=str(settings.expectations_dir),
        )

    @cached_property
    def settings(self) -> Settings:
        """The resolved settings."""
        return Settings(Path(self.config_dir), Path(self.data_dir), Path(self.expectations_dir))

    @cached_property
    def pipeline(self) -> PipelineConfig:
        """The validated pipeline configuration of this run.

        Every decision of a run (thresholds, trust, targets, sources) reads it; the
        configuration loaded with the definitions only shapes the graph (which assets exist).
        In a run, it is read from the run's own copy of the configuration folder, made by the
        run's first step (`<data>/runs/<run_id>/config`): a run whose steps run in separate
        processes still decides everything on one configuration, even if `config/` is edited
        during the night.
        """
        if self._run_id is None:  # outside a run (a sensor, a test)
            return load_config(self.settings.config_dir)
        copy = run_config_copy(self.settings.config_dir, self.settings.data_dir, self._run_id)
        return load_config(copy)

    def source(self, name: str) -> SourceConfig:
        """The run's configuration of source `name`; a Failure if it is no longer configured."""
        source = self.pipeline.sources.get(name)
        if source is None:
            raise dg.Failure(
                description=f"source '{name}' is in the loaded definitions but no longer in "
                f"{self.settings.config_dir / 'sources'}: reload the code location (or "
                "restore the source file), then run again",
                allow_retries=False,
            )
        return source


def custpipe_resource(settings: Settings) -> dg.ResourceDefinition:
    """The `custpipe` resource of a deployment, without run configuration: its paths come
    from the settings the definitions were loaded with (the environment), so the Launchpad
    neither shows nor edits them."""

    @dg.resource(
        description="Where the deployment's configuration, data and expectations live (from "
        "CUSTPIPE_CONFIG, CUSTPIPE_DATA and CUSTPIPE_EXPECTATIONS when the code location "
        "loads; not run configuration)."
    )
    def custpipe(context: dg.InitResourceContext) -> Iterator[CustpipeResource]:
        resource = CustpipeResource.from_settings(settings)
        resource._run_id = context.run_id  # its steps read the run's copy of the config
        if context.run_id is None:  # a sensor, a schedule: no run to keep apart
            yield resource
            return
        # one run at a time per deployment (custpipe.runlock): held until the run ends
        lock = RunLock(settings.data_dir, context.run_id)
        lock.acquire(on_wait=context.log.warning if context.log else None)
        try:
            yield resource
        finally:
            lock.release()

    return custpipe


class RunOptions(dg.ConfigurableResource):
    """What tonight's run asks for beyond the configuration in pipeline.yaml (Launchpad:
    resources.run_options.config). Every field is optional: an empty run config is a
    normal night."""

    dry_run: bool = Field(
        default=False,
        description="Compute the delta to the ERP and report it (an observation of "
        "publish/erp_customers with the insert/update/retire counts), but write nothing to "
        "the ERP: the published asset is not materialised and its freshness is not reset.",
    )
    allow_mass_retire: bool = Field(
        default=False,
        description="Accept a publish that retires more than publish.max_retire_share of "
        "the ERP's active customers (set only after checking the retirements are genuine).",
    )
    full_refresh: bool = Field(
        default=False,
        description="Extract every source in full (ignore the watermarks) and recompute "
        "every stage in full, compared with the incremental state (same as `custpipe run "
        "--full-refresh` and the run tag custpipe/full_refresh=true).",
    )
    full_refresh_sources: list[str] = Field(
        default=[],
        description="Extract only these sources in full (ignore their watermarks), e.g. "
        "[crm]; the other sources and the stages run as usual.",
    )
    hold_sources: list[str] = Field(
        default=[],
        description="Hold back these sources' new data tonight, as on_failure: hold does for "
        "a source whose data failed: nothing is extracted from them, the night consolidates "
        "and publishes with their last good staged state, and the run reports them as held "
        "(check source_held, alert kind held). E.g. [sales] while its owner repairs an "
        "export. A source never staged before cannot be held.",
    )
    engine: str | None = Field(
        default=None,
        description="Tonight only: the engine of staging's mapping and the pair scoring "
        "(duckdb, or spark: the executors map the rows and Splink's Spark backend scores "
        "the pairs; needs custpipe[spark] and Java); empty: pipeline.yaml's engine. Both "
        "give the same tables.",
    )
    max_quarantine_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Tonight only: block a source when more than this share of its rows is "
        "quarantined (check suite_passes); empty: quality.max_quarantine_rate.",
    )
    quarantine_warn_rate: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Tonight only: warn when more than this share of a source's rows is "
        "quarantined (check rows_quarantined); empty: quality.quarantine_warn_rate.",
    )
    max_volume_drop: float | None = Field(
        default=None,
        ge=0,
        le=1,
        description="Tonight only: block a source that lost more than this share of its rows "
        "since its baseline (check volume_stable); empty: quality.max_volume_drop.",
    )

    def quality(self, configured: QualityConfig) -> QualityConfig:
        """The configured quality thresholds with tonight's overrides applied."""
        names = ("max_quarantine_rate", "quarantine_warn_rate", "max_volume_drop")
        update = {n: getattr(self, n) for n in names if getattr(self, n) is not None}
        return configured.model_copy(update=update) if update else configured

    def extract_in_full(self, source: str) -> bool:
        """True when tonight's run asks for every row of `source` again."""
        return self.full_refresh or source in self.full_refresh_sources

    def unknown_sources(self, configured) -> list[str]:
        """Names in `full_refresh_sources` or `hold_sources` that are not configured sources."""
        named = [*self.full_refresh_sources, *self.hold_sources]
        return list(dict.fromkeys(s for s in named if s not in configured))


def engine_of(custpipe: CustpipeResource, run_options: RunOptions) -> str:
    """Tonight's engine: the run option, else pipeline.yaml's `engine`; a Failure naming
    the allowed values for anything else, or what to install when Spark cannot run."""
    engine = run_options.engine or custpipe.pipeline.engine
    if engine not in ("duckdb", "spark"):
        raise dg.Failure(
            description=f"run_options.engine is {engine!r}: write duckdb or spark (or leave "
            "it empty for the configured engine)",
            allow_retries=False,
        )
    if engine == "spark":  # before any work: a retry would not install anything
        from custpipe.spark.session import spark_problem

        problem = spark_problem()
        if problem:
            raise dg.Failure(
                description=f"engine: spark cannot run here: {problem}. Install it (make "
                "spark), or run with engine: duckdb (pipeline.yaml, or the run option "
                "engine)",
                allow_retries=False,
            )
    return engine


def gx_on_spark(custpipe: CustpipeResource, run_options: RunOptions):
    """engine: spark with launch: session and `spark.validate_min_rows` set — tonight's
    frames of that many rows validated on Spark (custpipe.quality.gx_runner.OnSpark); else
    None (GX on pandas)."""
    cfg = custpipe.pipeline.spark
    if cfg.validate_min_rows is None or cfg.launch != "session":
        return None
    if engine_of(custpipe, run_options) != "spark":
        return None
    from custpipe.quality.gx_runner import OnSpark
    from custpipe.spark.session import spark_session

    work_dir = custpipe.settings.data_dir / "spark"
    return OnSpark(lambda: spark_session(cfg, work_dir), cfg.validate_min_rows)


def gx_engine(on_spark) -> str:
    """Where GX validates tonight, for a step's metadata."""
    if on_spark is None:
        return "pandas"
    return f"spark for frames of {on_spark.min_rows:,} rows or more, pandas below"


def pipes_launch(context):
    """A launcher for custpipe.spark.runners.Submitted: spark-submit through Dagster Pipes
    in `context`'s step (the job's log lines and figures reach its event log)."""
    from dagster._core.errors import DagsterPipesExecutionError  # not exported (1.13)

    from custpipe.spark.runners import submit_env

    client = dg.PipesSubprocessClient(env=submit_env())

    def launch(command: list[str], extras: dict) -> list:
        try:
            done = client.run(context=context, command=command, extras=extras)
        except DagsterPipesExecutionError as exc:
            raise RuntimeError(
                f"spark-submit of custpipe's {extras.get('task')} job failed ({exc}); its "
                "output is in this step's stderr (Dagster UI: the step's logs)"
            ) from exc
        return done.get_custom_messages()

    return launch


def spark_runner(custpipe: CustpipeResource, run_options: RunOptions, context):
    """engine: spark — where tonight's Spark work runs (custpipe.spark.runners: this
    process's session, started at the first piece of work, or spark-submit through Pipes
    in `context`'s step, as `spark.launch` says); else None."""
    if engine_of(custpipe, run_options) != "spark":
        return None
    from custpipe.spark.runners import runner

    cfg, settings = custpipe.pipeline.spark, custpipe.settings
    tables = Path(settings.expand(cfg.tables))
    return runner(cfg, settings.data_dir / "spark", pipes_launch(context), tables)
