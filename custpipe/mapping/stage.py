"""Stage a source: read its latest landing data, map and standardise it, store it."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

import duckdb
import pandas as pd

from custpipe import warehouse
from custpipe.config import SourceConfig
from custpipe.mapping.apply import MappingIssue
from custpipe.mapping.canonical import stage_customers, stage_orders
from custpipe.settings import Settings
from custpipe.sources.extract import latest_landing, read_landing, read_manifest

DATASETS = (
    ("customers", stage_customers, "staging.customers"),
    ("orders", stage_orders, "staging.orders"),
)


@dataclass
class StagedDataset:
    """What staging one dataset did."""

    dataset: str
    rows: int
    mode: str  # "full": the source's rows were replaced; "incremental": upserted by source_id
    landing_path: str
    issues: list[MappingIssue] = field(default_factory=list)


def issue_rows(report: list[StagedDataset], source: str, run_id: str, at: datetime) -> pd.DataFrame:
    """`staging.mapping_issues` rows for a staging report."""
    return pd.DataFrame(
        [
            {
                "run_id": run_id,
                "source_system": source,
                "dataset": d.dataset,
                "field": i.field,
                "source_column": i.column,
                "problem": i.problem,
                "rows": i.rows,
                "examples": ", ".join(i.examples),
                "found_at": at,
            }
            for d in report
            for i in d.issues
        ]
    )


def stage_source(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    source: SourceConfig,
    business_date: date | None,
    run_id: str,
    at: datetime,
) -> list[StagedDataset]:
    """Stage every dataset of `source` from its newest landing folder (for the business date)."""
    report = []
    for name, stager, table in DATASETS:
        if name not in source.datasets():
            continue
        path = latest_landing(settings, source.name, name, business_date)
        manifest = read_manifest(path)
        staged, issues = stager(read_landing(path), source)
        staged = staged.assign(
            business_date=pd.Timestamp(manifest["business_date"]),
            landing_path=str(path),
            run_id=run_id,
            staged_at=at,
        )
        mode = manifest.get("mode", "full")
        if mode == "incremental":
            warehouse.upsert_rows(con, table, staged, ["source_system", "source_id"])
        else:
            warehouse.replace_rows(con, table, staged, "source_system = ?", [source.name])
        report.append(StagedDataset(name, len(staged), mode, str(path), issues))
    warehouse.append_rows(
        con, "staging.mapping_issues", issue_rows(report, source.name, run_id, at)
    )
    return report
