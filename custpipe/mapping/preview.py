"""Preview a source's mapping on its first rows, without writing anything anywhere."""

from __future__ import annotations

from datetime import date

import pandas as pd

from custpipe.config import SourceConfig
from custpipe.mapping.apply import MappingIssue
from custpipe.mapping.canonical import stage_customers, stage_order_lines, stage_orders
from custpipe.settings import Settings
from custpipe.sources.extract import check_columns, iter_raw

STAGERS = {
    "customers": stage_customers,
    "orders": stage_orders,
    "order_lines": stage_order_lines,
}


def preview(
    source: SourceConfig, dataset: str, settings: Settings, business_date: date, rows: int = 1000
) -> tuple[pd.DataFrame, list[MappingIssue], list[str]]:
    """(staged rows, mapping issues, reader notes) of the first `rows` rows of a dataset."""
    config = source.datasets()[dataset]
    small = config.model_copy(
        update={"reader": config.reader.model_copy(update={"chunk_size": rows})}
    )
    notes: list[str] = []
    chunks = iter_raw(source, small, settings, business_date, notes)
    raw = next(iter(chunks), pd.DataFrame(columns=config.source_columns()))
    extra = check_columns(source.name, dataset, config.source_columns(), list(raw.columns))
    extra = [c for c in extra if c not in config.mentioned_in_expressions(extra)]
    if extra:
        notes.append(f"{len(extra)} source column(s) not used by the mapping: {', '.join(extra)}")
    staged, issues = STAGERS[dataset](raw, source.model_copy(update={dataset: small}))
    return staged, issues, notes


def profile(staged: pd.DataFrame) -> pd.DataFrame:
    """Per staged column: rows filled, and for `*_valid` flags how many are valid/invalid."""
    out = []
    for col in staged.columns:
        if col.endswith("_valid") or col in ("source_values", "record_hash"):
            continue
        row = {"column": col, "filled": int(staged[col].notna().sum()), "valid": "", "invalid": ""}
        flag = f"{col}_valid"
        if flag in staged:
            row["valid"] = int((staged[flag] == True).sum())  # noqa: E712 (nullable booleans)
            row["invalid"] = int((staged[flag] == False).sum())  # noqa: E712
        out.append(row)
    return pd.DataFrame(out)
