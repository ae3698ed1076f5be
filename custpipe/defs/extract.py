"""Extract assets: one per configured source, partitioned by business date."""

import dataclasses
from datetime import date

import dagster as dg

from custpipe import gates, holding
from custpipe.config import PipelineConfig
from custpipe.defs.common import check_result, check_spec, md_table, report_checks, row_count
from custpipe.defs.resources import CustpipeResource, RunOptions
from custpipe.quality.validate import validate_landing
from custpipe.sources.extract import (
    SchemaDriftError,
    extract_dataset,
    is_rejected,
    mark_rejected,
    previous_manifest,
)
from custpipe.sources.readers import SourceReadError


def daily_partitions(cfg: PipelineConfig) -> dg.DailyPartitionsDefinition:
    """Business dates, one partition per night."""
    return dg.DailyPartitionsDefinition(start_date=cfg.partitions_start, timezone=cfg.timezone)


EXTRACT_RETRIES = 2  # the extract's RetryPolicy.max_retries: its last attempt may hold


def build_extract_asset(source_name: str, cfg: PipelineConfig) -> dg.AssetsDefinition:
    """The extract asset of one source: raw rows of each dataset into the landing zone."""
    source = cfg.sources[source_name]  # the graph's shape; the run reads custpipe.source()

    @dg.asset(
        key=["extract", source_name],
        group_name="extract",
        partitions_def=daily_partitions(cfg),
        description=f"Raw extract of '{source_name}' ({source.description}) into the immutable "
        "landing zone, one folder per business date and extraction.",
        retry_policy=dg.RetryPolicy(
            max_retries=EXTRACT_RETRIES, delay=30, backoff=dg.Backoff.EXPONENTIAL
        ),
        kinds={"python", "parquet"},
        tags={"source": source_name},
        owners=cfg.owners,
        check_specs=[check_spec(gates.RAW_SHAPE, source_name)],
    )
    def _extract(
        context: dg.AssetExecutionContext, custpipe: CustpipeResource, run_options: RunOptions
    ):
        business_date = date.fromisoformat(context.partition_key)
        source = custpipe.source(source_name)  # this run's configuration
        unknown = run_options.unknown_sources(custpipe.pipeline.sources)
        if unknown:
            raise dg.Failure(
                description="run_options.full_refresh_sources or hold_sources names "
                f"{', '.join(unknown)}, "
                f"not a configured source ({', '.join(sorted(custpipe.pipeline.sources))}): "
                "correct the run configuration and launch again",
                allow_retries=False,
            )
        in_full = run_options.extract_in_full(source_name)
        fallback = extracted_before(custpipe, source_name)  # a state to hold back to
        if source_name in run_options.hold_sources:  # held by the run's own options
            if not fallback:
                raise dg.Failure(
                    description=f"run_options.hold_sources holds '{source_name}', but it has "
                    "never been extracted and staged: there is no good state to consolidate "
                    "with. Remove it from hold_sources (or fix its data) and launch again",
                    allow_retries=False,
                )
            reason = "held by this run's options (run_options.hold_sources); nothing extracted"
            yield from held_extract(context, source_name, [], reason)
            return
        results = []
        try:
            for name in source.datasets():
                results.append(
                    extract_dataset(
                        source,
                        name,
                        custpipe.settings,
                        business_date,
                        full_refresh=in_full,
                    )
                )
        except (SourceReadError, SchemaDriftError) as exc:
            reason = holding.hold_reason(
                exc,
                source.on_failure,
                has_good_state=fallback,
                final_attempt=context.retry_number >= EXTRACT_RETRIES,
            )
            if reason is not None:
                yield from held_extract(context, source_name, results, reason)
                return
            if getattr(exc, "retryable", False):
                raise
            # retrying cannot fix a missing file or a drifted schema: fail at once, clearly
            raise dg.Failure(description=str(exc), allow_retries=False) from exc
        for r in results:
            if r.extra_columns:
                context.log.warning(
                    f"source '{source_name}' dataset '{r.dataset}': "
                    f"{len(r.extra_columns)} column(s) not used by the mapping: "
                    f"{', '.join(r.extra_columns)}"
                )
            for note in r.notes:
                context.log.warning(note)
        table = [
            {
                "dataset": r.dataset,
                "rows": r.rows,
                "mode": r.mode,
                "why full": r.full_reason or "",
                "unchanged since": r.unchanged_since.parent.name if r.unchanged_since else "",
            }
            for r in results
        ]
        for r in results:
            if r.full_reason:
                context.log.info(f"{source_name}.{r.dataset}: every row read — {r.full_reason}")
            if r.unchanged_since:
                context.log.info(
                    f"{source_name}.{r.dataset}: unchanged since {r.unchanged_since} (a file "
                    "byte-identical to that extraction's, or a read that found only rows it "
                    "landed): nothing new landed"
                )
        unchanged = [r for r in results if r.unchanged_since]
        customers = next((r for r in results if r.dataset == "customers"), None)
        if customers is not None and customers.unchanged_since is not None:
            # the same rows passed the raw suite when they were landed (a rejected landing is
            # never the one compared with): nothing new to check
            gate = unchanged_raw_check(customers.unchanged_since)
        else:
            gate = raw_check(custpipe, source, customers.path if customers else None)
        if gate.blocks and holding.may_hold(source.on_failure, fallback):
            reason = f"the raw suite rejected the extract ({gate.description})"
            yield from held_extract(context, source_name, results, reason, gate)
            return
        yield dg.MaterializeResult(
            metadata={
                **row_count(sum(r.rows for r in results)),  # rows landed tonight
                "held": False,
                "rows_by_dataset": md_table(
                    table, ["dataset", "rows", "mode", "why full", "unchanged since"]
                ),
                "datasets_unchanged": len(unchanged),
                "warnings": len([n for r in results for n in r.notes]),
                "landing_paths": dg.MetadataValue.md(
                    "\n".join(
                        f"- `{r.path}`"
                        + (" (unchanged: not read again)" if r.unchanged_since else "")
                        for r in results
                    )
                ),
                "unused_columns": sum(len(r.extra_columns) for r in results),
            }
        )
        yield from report_checks(context, [gate], source_name)

    return _extract


def extracted_before(custpipe: CustpipeResource, source_name: str) -> bool:
    """True when an earlier extraction of the source's customers was accepted (not
    rejected): a state the night can fall back on when this one is held back."""
    return previous_manifest(custpipe.settings, source_name, "customers") is not None


def held_extract(
    context: dg.AssetExecutionContext,
    source_name: str,
    results: list,
    reason: str,
    gate: gates.GateResult | None = None,
):
    """Hold the source's new extraction back (on_failure: hold): every folder it landed is
    marked rejected (never staged; the next extraction reads it again), the hold is logged as
    an error and materialised with `held: true`; the raw check fails at WARN severity (the
    suite's result, or 'did not run'), so it no longer stops the night."""
    landed = [r for r in results if r.unchanged_since is None]
    for r in landed:
        if not is_rejected(r.path):
            mark_rejected(r.path, ["held: on_failure hold"])
    hold = holding.Hold(source_name, holding.EXTRACT, reason)
    context.log.error(hold.message())
    yield dg.MaterializeResult(
        metadata={
            "held": True,
            "held_reason": reason,
            **row_count(0),  # nothing of tonight's extraction is kept
            "landing_paths": dg.MetadataValue.md(
                "\n".join(f"- `{r.path}` (held: marked rejected)" for r in landed) or "_none_"
            ),
        }
    )
    if gate is None:  # the extraction failed before its raw suite could run
        gate = gates.GateResult(
            gates.RAW_SHAPE, False, "block", f"the raw suite did not run: {reason}"
        )
    yield check_result(
        dataclasses.replace(
            gate, severity="warn", description=f"held (on_failure: hold): {gate.description}"
        ),
        source_name,
    )


def raw_check(custpipe: CustpipeResource, source, landing_path) -> gates.GateResult:
    """Run the source's raw suite over its new customer landing folder (counts only)."""
    quality = custpipe.pipeline.quality
    outcome, rows = (None, 0)
    if landing_path is not None:
        outcome, rows = validate_landing(
            custpipe.settings,
            source,
            landing_path,
            quality.results_limit,
            quality.include_values_in_docs,
        )
    return gates.raw_shape(outcome, rows, source.name)


def unchanged_raw_check(landing_path) -> gates.GateResult:
    """The raw check of a customer extraction that found nothing new since its last accepted
    one (the same bytes, or only rows it landed): passed, nothing new was landed to validate."""
    return gates.GateResult(
        gates.RAW_SHAPE,
        True,
        gates.CHECKS[gates.RAW_SHAPE].severity,
        f"unchanged since {landing_path.parent.name}: nothing was read that extraction did not "
        "land, and it passed; nothing new landed",
        {"rows_evaluated": 0},
    )
