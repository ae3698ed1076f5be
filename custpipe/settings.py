"""Where custpipe finds its configuration and keeps its data (environment, embedded defaults)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

PACKAGE_DIR = Path(__file__).resolve().parent
REPO_DIR = PACKAGE_DIR.parent
DEFAULT_CONFIG_DIR = REPO_DIR / "config"
DEFAULT_EXPECTATIONS_DIR = REPO_DIR / "expectations"


@dataclass(frozen=True)
class Settings:
    """Resolved locations of one custpipe deployment."""

    config_dir: Path
    data_dir: Path
    expectations_dir: Path
    # overrides pipeline.yaml `partitions_start` (YYYY-MM-DD): `make` sets it to the demo
    # data's business date, so a demo's partitions start at its data
    partitions_start: str | None = None

    @classmethod
    def from_env(cls) -> Settings:
        """Read `CUSTPIPE_CONFIG`, `CUSTPIPE_DATA`, `CUSTPIPE_EXPECTATIONS` and
        `CUSTPIPE_PARTITIONS_START` (all optional)."""
        return cls(
            config_dir=Path(os.environ.get("CUSTPIPE_CONFIG") or DEFAULT_CONFIG_DIR).resolve(),
            data_dir=Path(os.environ.get("CUSTPIPE_DATA") or "data").resolve(),
            expectations_dir=Path(
                os.environ.get("CUSTPIPE_EXPECTATIONS") or DEFAULT_EXPECTATIONS_DIR
            ).resolve(),
            partitions_start=os.environ.get("CUSTPIPE_PARTITIONS_START") or None,
        )

    @property
    def sources_dir(self) -> Path:
        """Demo source systems (files and SQLite databases)."""
        return self.data_dir / "sources"

    @property
    def landing_dir(self) -> Path:
        """Immutable landing zone: `landing/<date>/<source>/<extracted_at>/<dataset>.parquet`."""
        return self.data_dir / "landing"

    @property
    def warehouse_path(self) -> Path:
        """The DuckDB warehouse file."""
        return self.data_dir / "warehouse.duckdb"

    @property
    def gx_dir(self) -> Path:
        """Great Expectations working directory (results, Data Docs)."""
        return self.data_dir / "gx"

    @property
    def reports_dir(self) -> Path:
        """Steward-facing exports (scorecard page, review CSV)."""
        return self.data_dir / "reports"

    def expand(self, template: str, **extra: str) -> str:
        """Expand `{data}`, `{sources}`, `{config}` (and `extra`) placeholders in a path or URL."""
        return template.format(
            data=self.data_dir.as_posix(),
            sources=self.sources_dir.as_posix(),
            config=self.config_dir.as_posix(),
            **extra,
        )
