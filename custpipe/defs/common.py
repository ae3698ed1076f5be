"""Small helpers shared by the Dagster assets (no business rules here: those are in
custpipe.gates; this only maps its checks and results to Dagster)."""

from collections.abc import Iterable, Iterator
from datetime import date
from pathlib import Path

import dagster as dg

from custpipe import catalogue
from custpipe.alerting import BLOCKED_BY_TAG, MAX_TAG_CHARS, Block, clip
from custpipe.config import PipelineConfig
from custpipe.gates import CHECKS, FILE_KEYS, NOT_BUILT, GateResult
from custpipe.incremental import FULL_REFRESH_TAG, Schedule, StagePlan

WAREHOUSE_POOL = "duckdb_warehouse"  # one writer of the DuckDB file at a time (dagster.yaml)
PARTITION_TAG = "dagster/partition"
BLOCKED_BY_KEY = "blocked_by"  # check and step metadata: what blocked (rules, counts)
_SEVERITY = {"block": dg.AssetCheckSeverity.ERROR, "warn": dg.AssetCheckSeverity.WARN}


def run_business_date(context: dg.AssetExecutionContext) -> date | None:
    """The business date of the run (its partition), or None for an unpartitioned run."""
    if context.has_partition_key:
        return date.fromisoformat(context.partition_key)
    tag = context.run.tags.get(PARTITION_TAG)
    return date.fromisoformat(tag) if tag else None


def full_refresh_requested(context: dg.AssetExecutionContext, options=None) -> bool:
    """True when the run asks every stage for a full recompute: the run tag
    custpipe/full_refresh, or `full_refresh` of the run's options (RunOptions)."""
    tagged = context.run.tags.get(FULL_REFRESH_TAG, "").lower() in ("true", "1", "yes")
    return tagged or bool(options is not None and options.full_refresh)


def schedule_of(
    context: dg.AssetExecutionContext, run_cfg: PipelineConfig, options=None
) -> Schedule:
    """When the run's stages may work incrementally: `run_cfg.incremental`, the run's full
    refresh (tag or run options) and its business date."""
    return Schedule(
        enabled=run_cfg.incremental.enabled,
        full_every_days=run_cfg.incremental.full_every_days,
        full_refresh=full_refresh_requested(context, options),
        business_date=run_business_date(context),
    )


def column_schema(table: catalogue.Table) -> dg.TableSchema:
    """The Dagster column schema of a catalogue table: names, types, descriptions."""
    return dg.TableSchema(
        columns=[
            dg.TableColumn(
                c.name,
                c.type,
                description=c.description or None,
                constraints=dg.TableColumnConstraints(nullable=c.nullable),
            )
            for c in table.columns
        ]
    )


def table_definition_metadata(name: str, table: catalogue.Table | None = None) -> dict:
    """Definition metadata of an asset that owns a table: `dagster/table_name` and
    `dagster/column_schema` (from the catalogue, which the warehouse's DDL is made from)."""
    table = table or catalogue.table(name)
    return {
        "dagster/table_name": name,
        "dagster/column_schema": dg.MetadataValue.table_schema(column_schema(table)),
    }


def row_count(rows: int, table: str | None = None) -> dict:
    """Materialisation metadata: `dagster/row_count` (and the table's name, if it has one)."""
    meta = {"dagster/row_count": dg.MetadataValue.int(int(rows))}
    return meta | ({"dagster/table_name": table} if table else {})


def plan_metadata(plan: StagePlan) -> dict:
    """The Dagster metadata of how an incremental stage ran: its mode and, if full, why."""
    return {"mode": plan.mode, "why_full": plan.reason or "-"}


def md_table(rows: list[dict], columns: list[str]) -> dg.MetadataValue:
    """A small Markdown table for the Dagster UI (counts and codes only, never customer values)."""
    if not rows:
        return dg.MetadataValue.md("_none_")
    head = "| " + " | ".join(columns) + " |\n|" + "---|" * len(columns) + "\n"
    body = "".join("| " + " | ".join(str(r.get(c, "")) for c in columns) + " |\n" for r in rows)
    return dg.MetadataValue.md(head + body)


def check_spec(name: str, source: str | None = None) -> dg.AssetCheckSpec:
    """The Dagster spec of a registered check (custpipe.gates.CHECKS) on its asset."""
    check = CHECKS[name]
    return dg.AssetCheckSpec(
        name,
        asset=dg.AssetKey(check.asset_path(source)),
        blocking=check.blocking,
        description=check.description.replace("<source>", source or "<source>"),
    )


def _metadata_value(key: str, value):
    if isinstance(value, list):
        return md_table(value, list(value[0]) if value else [])
    if key in FILE_KEYS and value != NOT_BUILT:
        return dg.MetadataValue.path(str(Path(value)))
    return value


def block_of(result: GateResult, source: str | None = None) -> Block:
    """What a failed blocking gate result blocked: asset, check, failed rules, counts."""
    asset = "/".join(CHECKS[result.check].asset_path(source))
    return Block(asset, result.check, result.failed_rules, result.counts(), source)


def check_result(result: GateResult, source: str | None = None) -> dg.AssetCheckResult:
    """A gate's result as the Dagster asset check result of its check (a blocking failure
    also carries `blocked_by`: its rules and counts, which the alert reads)."""
    metadata = {k: _metadata_value(k, v) for k, v in result.metadata.items()}
    if result.blocks:
        metadata[BLOCKED_BY_KEY] = dg.MetadataValue.json(block_of(result, source).as_dict())
    return dg.AssetCheckResult(
        check_name=result.check,
        asset_key=dg.AssetKey(CHECKS[result.check].asset_path(source)),
        passed=result.passed,
        severity=_SEVERITY[result.severity],
        description=result.description,
        metadata=metadata,
    )


def report_checks(
    context: dg.AssetExecutionContext, results: Iterable[GateResult], source: str | None = None
) -> Iterator[dg.AssetCheckResult]:
    """Yield the gates' results as check results; when one blocks, tag the run with what
    blocked (`custpipe/blocked_by`) and end the step with a Failure naming the rules and
    counts (instead of Dagster's 'blocking asset check failed' with a stack trace)."""
    blocks = []
    for result in results:
        yield check_result(result, source)
        if result.blocks:
            blocks.append(block_of(result, source))
    if not blocks:
        return
    text = "; ".join(b.text() for b in blocks)
    tag_blocked(context.instance, context.run_id, text)
    what = (
        "the ERP table was written tonight and does not hold the golden records"
        if any(CHECKS[b.check].after_publish for b in blocks)
        else "nothing downstream runs tonight and the ERP does not get this night's data"
    )
    raise dg.Failure(
        description=f"blocked by {text}: a blocking check failed, so {what} (see the README "
        "runbook)",
        metadata={BLOCKED_BY_KEY: dg.MetadataValue.json([b.as_dict() for b in blocks])},
        allow_retries=False,
    )


def tag_blocked(instance: dg.DagsterInstance, run_id: str, text: str) -> None:
    """Add `text` to the run's `custpipe/blocked_by` tag (steps of one run may each block)."""
    run = instance.get_run_by_id(run_id)
    before = run.tags.get(BLOCKED_BY_TAG, "") if run else ""
    parts = [p for p in before.split("; ") if p] + [text]
    merged = "; ".join(dict.fromkeys(parts))
    instance.add_run_tags(run_id, {BLOCKED_BY_TAG: clip(merged, MAX_TAG_CHARS)})
