"""The one resource every custpipe asset uses: where the deployment's config and data live."""

from functools import cached_property
from pathlib import Path

import dagster as dg
from pydantic import PrivateAttr

from custpipe.config import PipelineConfig, SourceConfig, load_config, run_config_copy
from custpipe.runlock import RunLock
from custpipe.settings import Settings


class CustpipeResource(dg.ConfigurableResource):
    """Locations of the deployment (from `CUSTPIPE_CONFIG`, `CUSTPIPE_DATA` or their defaults)."""

    config_dir: str
    data_dir: str
    expectations_dir: str
    _run_id: str | None = PrivateAttr(default=None)
    _run_lock: RunLock | None = PrivateAttr(default=None)

    def setup_for_execution(self, context: dg.InitResourceContext) -> None:
        """Remember the run: its steps read one copy of the configuration (see `pipeline`).
        A run (not a sensor) first takes the deployment's run lock: one run at a time."""
        self._run_id = context.run_id
        if context.run_id is not None:
            self._run_lock = RunLock(self.settings.data_dir, context.run_id)
            self._run_lock.acquire(on_wait=context.log.warning if context.log else None)

    def teardown_after_execution(self, context: dg.InitResourceContext) -> None:
        """Give the run lock back at the run's end (also when it failed)."""
        if self._run_lock is not None:
            self._run_lock.release()
            self._run_lock = None

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
