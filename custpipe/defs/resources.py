"""The one resource every custpipe asset uses: where the deployment's config and data live."""

from functools import cached_property
from pathlib import Path

import dagster as dg

from custpipe.config import PipelineConfig, SourceConfig, load_config
from custpipe.settings import Settings


class CustpipeResource(dg.ConfigurableResource):
    """Locations of the deployment (from `CUSTPIPE_CONFIG`, `CUSTPIPE_DATA` or their defaults)."""

    config_dir: str
    data_dir: str
    expectations_dir: str

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
        """The validated pipeline configuration of this run, loaded once per resource.

        Every decision of a run (thresholds, trust, targets, sources) reads this object; the
        configuration loaded with the definitions only shapes the graph (which assets exist).
        """
        return load_config(self.settings.config_dir)

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
