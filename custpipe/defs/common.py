"""Small helpers shared by the Dagster assets (no business rules here)."""

from datetime import date

import dagster as dg

WAREHOUSE_POOL = "duckdb_warehouse"  # one writer of the DuckDB file at a time (dagster.yaml)
PARTITION_TAG = "dagster/partition"


def run_business_date(context: dg.AssetExecutionContext) -> date | None:
    """The business date of the run (its partition), or None for an unpartitioned run."""
    if context.has_partition_key:
        return date.fromisoformat(context.partition_key)
    tag = context.run.tags.get(PARTITION_TAG)
    return date.fromisoformat(tag) if tag else None


def md_table(rows: list[dict], columns: list[str]) -> dg.MetadataValue:
    """A small Markdown table for the Dagster UI (counts and codes only, never customer values)."""
    if not rows:
        return dg.MetadataValue.md("_none_")
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    return dg.MetadataValue.md(head + body)
