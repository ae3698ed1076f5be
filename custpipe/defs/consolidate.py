"""Consolidation assets: golden customers, cross-reference, review queue; conservation check."""

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg

from custpipe import gates, holding, warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import (
    WAREHOUSE_POOL,
    check_spec,
    md_table,
    plan_metadata,
    report_checks,
    row_count,
    schedule_of,
    table_definition_metadata,
)
from custpipe.defs.resources import CustpipeResource, RunOptions, gx_on_spark, spark_runner
from custpipe.incremental import describe_differences, record_stage
from custpipe.matching.consolidate import (
    Matcher,
    consolidate,
    fingerprint_parts,
    load_matcher,
    plan_consolidation,
)
from custpipe.matching.review import export_review, review_with_golden_ids
from custpipe.quality.conservation import conservation_report
from custpipe.quality.validate import plan_golden, validate_golden
from custpipe.steward.store import import_decisions, store_path

GOLDEN = dg.AssetKey(["mdm", "golden_customers"])
XREF = dg.AssetKey(["mdm", "customer_xref"])
REVIEW = dg.AssetKey(["mdm", "match_review"])
TABLES = {GOLDEN: "mdm.golden_customers", XREF: "mdm.customer_xref", REVIEW: "mdm.match_review"}
# a night's run rebuilds them (or confirms them unchanged): more than a day and two hours
# without one is a missed night, as for the publish
NIGHTLY_FRESHNESS = dg.FreshnessPolicy.time_window(fail_window=timedelta(hours=26))


def matcher(cfg: PipelineConfig, settings, engine: str = "duckdb", runner=None) -> Matcher:
    """The configured match model and thresholds, scoring on `engine` (spark: Splink's
    Spark backend, custpipe.spark.scoring, on `runner`: custpipe.spark.runners)."""
    m = cfg.matching
    try:
        chosen = load_matcher(
            Path(settings.expand(m.model)), m.auto_merge, m.review, cfg.match_settings()
        )
    except (FileNotFoundError, ValueError) as exc:  # only a trained model file can fix it
        raise dg.Failure(description=str(exc), allow_retries=False) from exc
    if engine != "spark":
        return chosen
    from custpipe.spark.runners import InSession
    from custpipe.spark.scoring import SparkScoring

    runner = runner or InSession(
        cfg.spark, settings.data_dir / "spark", Path(settings.expand(cfg.spark.tables))
    )
    spark = SparkScoring(cfg.match_settings(), runner)
    try:  # the model written for Spark, before any work: a refused model fails at once
        spark.settings_for(chosen.model.splink)
    except ValueError as exc:
        raise dg.Failure(
            description=f"{settings.expand(m.model)}: {exc}", allow_retries=False
        ) from exc
    return replace(chosen, spark=spark)


def check_held(context, held: dict[str, holding.Hold], sources: list[str]) -> None:
    """Tag the run with the sources held back tonight and say so; fail when every source
    was held (a systemic cause, such as the export share or the network: nothing new would
    be published, and on-call must see a failed night, not a quiet one)."""
    if not held:
        return
    context.instance.add_run_tags(context.run_id, {holding.HELD_TAG: holding.tag_value(held)})
    if holding.every_source_held(held, sources):
        raise dg.Failure(
            description="every source was held back tonight ("
            + "; ".join(f"{h.source}: {h.reason}" for h in held.values())
            + "): a systemic failure (export share, network, credentials), not one source's "
            "data, so the night stops. Fix the cause, then rerun.",
            allow_retries=False,
        )
    context.log.warning(
        "consolidating with the last good staged state of the source(s) held back tonight: "
        + ", ".join(sorted(held))
        + " (on_failure: hold); the other sources' changes are consolidated and published"
    )


def build_consolidate_asset(cfg: PipelineConfig) -> dg.AssetsDefinition:
    """Match accepted records, cluster them, keep golden IDs stable, build golden records."""

    validated = [dg.AssetKey(["quality", s]) for s in cfg.sources]

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                key,
                group_name="mdm",
                kinds={"duckdb"},
                deps=validated,
                description=text,
                owners=cfg.owners,
                metadata=table_definition_metadata(TABLES[key]),
                # the golden records and the stewards' queue must be rebuilt every night
                freshness_policy=NIGHTLY_FRESHNESS if key in (GOLDEN, REVIEW) else None,
            )
            for key, text in (
                (
                    GOLDEN,
                    "mdm.golden_customers: one row per real-world customer, built "
                    "attribute by attribute by survivorship rules.",
                ),
                (XREF, "mdm.customer_xref: every consolidated source record -> golden_id."),
                (REVIEW, "mdm.match_review: uncertain pairs awaiting a data steward."),
            )
        ],
        check_specs=[
            check_spec(gates.CONSERVATION),
            check_spec(gates.GOLDEN_SUITE_PASSES),
            check_spec(gates.INCREMENTAL_CONSISTENT),
            check_spec(gates.REVIEW_QUEUE_GROWTH),
        ],
        pool=WAREHOUSE_POOL,
    )
    def consolidated(
        context: dg.AssetExecutionContext, custpipe: CustpipeResource, run_options: RunOptions
    ):
        settings, run_cfg = custpipe.settings, custpipe.pipeline  # this run's configuration
        trust = {name: s.trust for name, s in run_cfg.sources.items()}
        runner = spark_runner(custpipe, run_options, context)  # None: engine duckdb
        chosen = matcher(run_cfg, settings, "spark" if runner else "duckdb", runner)
        rules = run_cfg.survivorship.build()
        erp_source = run_cfg.publish.erp_source
        parts = fingerprint_parts(
            chosen, Path(settings.expand(run_cfg.matching.model)), trust, erp_source, rules
        )
        schedule = schedule_of(context, run_cfg, run_options)
        business_date = schedule.business_date
        with warehouse.connect(settings.warehouse_path, vacuum=False) as con:
            held = holding.held_in_run(con, context.run_id)
            check_held(context, held, list(run_cfg.sources))
            # the stewards' new decisions, committed before the consolidation reads them: a
            # failed consolidation leaves them imported, and the next night honours them
            imported = import_decisions(
                con, store_path(settings), context.run_id, log=context.log.warning
            )
            if imported["decisions"]:
                context.log.info(f"steward decisions imported: {imported}")
            plan = plan_consolidation(con, chosen, parts, schedule)
            if plan.reason:
                context.log.info(f"consolidation recomputes in full: {plan.reason}")
            if not plan.incremental or not schedule.full_every_days:
                warehouse.vacuum_at_close(con)  # the night's steps leave it to this one

            def record(result) -> None:  # in the consolidation's transaction
                at = datetime.now(UTC).replace(tzinfo=None)
                changed, diffs = result.changed_records, result.differences
                record_stage(
                    con, plan, context.run_id, business_date, at, changed, diffs, result.inputs
                )

            result = consolidate(
                con,
                context.run_id,
                trust,
                erp_source,
                chosen,
                survivorship=rules,
                incremental=plan.incremental,
                compare=plan.compare,
                record=record,
                last_inputs=plan.last_inputs,
            )
            if result.unchanged:
                context.log.info(
                    "consolidation: no accepted record, quarantine or steward decision changed "
                    f"since run {plan.last_run_id}: the golden records, xref and review queue "
                    "are as that run left them"
                )
            if result.differences:
                context.log.error(
                    "the full consolidation differs from tonight's incremental one: "
                    f"{describe_differences(result.differences)} (the full result is kept; "
                    "report this as a bug of incremental consolidation)"
                )
            report = conservation_report(con, list(run_cfg.sources))
            golden_plan = plan_golden(con, settings, schedule)
            suite, golden_rows, golden_diffs = validate_golden(
                con,
                settings,
                run_cfg.quality.results_limit,
                plan=golden_plan,
                run_id=context.run_id,
                business_date=business_date,
                spark=gx_on_spark(custpipe, run_options),
            )
            if golden_diffs:
                context.log.error(
                    "the full validation of the golden records differs from the incremental "
                    f"state: {describe_differences(golden_diffs)}"
                )
            review = review_with_golden_ids(con)
            by_source = con.execute("""SELECT source_system, count(*) AS records,
                count(DISTINCT golden_id) AS golden FROM mdm.customer_xref
                GROUP BY 1 ORDER BY 1""").df()
            rows = {
                key: con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
                for key, table in TABLES.items()
            }
        previous = previous_review_pairs(context)  # before tonight's is recorded
        yield dg.MaterializeResult(
            asset_key=GOLDEN,
            metadata={
                **row_count(rows[GOLDEN], TABLES[GOLDEN]),
                **plan_metadata(plan),
                "held_sources": dg.MetadataValue.md(
                    "\n".join(f"- {h.source} (at {h.step}): {h.reason}" for h in held.values())
                    or "_none_"
                ),
                "steward_decisions_imported": dg.MetadataValue.json(imported),
                "inputs_unchanged": result.unchanged,
                "records_scored_again": result.changed_records,
                # where pairs are scored, clusters labelled and golden records built
                "pair_scoring": chosen.spark.describe() if chosen.spark else "duckdb",
                "clustering_and_survivorship": chosen.spark.describe()
                if chosen.spark
                else "duckdb",
                "golden_rebuilt": result.golden_rebuilt,
                "golden_removed": result.golden_removed,
                "consistency": "not compared"
                if result.differences is None
                else describe_differences(result.differences).replace("none", "identical"),
                "golden_customers": result.golden,
                "golden_suite_mode": golden_plan.mode,
                "golden_suite_consistency": "not compared"
                if golden_diffs is None
                else describe_differences(golden_diffs).replace("none", "identical"),
                "records_consolidated": result.records,
                "duplicates_merged": result.merged_records,
                **(
                    {}  # nothing was clustered: tonight has no edges or rounds to show
                    if result.unchanged
                    else {
                        "link_edges": result.edges,
                        "clustering_rounds": result.rounds,
                        "seconds_matching": result.seconds["matching"],
                        "seconds_survivorship": result.seconds["survivorship"],
                    }
                ),
                "id_events": md_table(
                    [{"event": k, "count": v} for k, v in sorted(result.events.items())],
                    ["event", "count"],
                ),
            },
        )
        yield dg.MaterializeResult(
            asset_key=XREF,
            metadata={
                **row_count(rows[XREF], TABLES[XREF]),
                "by_source": md_table(
                    by_source.to_dict("records"), ["source_system", "records", "golden"]
                ),
            },
        )
        sheet = export_review(review, custpipe.settings.reports_dir / "match_review.csv")
        yield dg.MaterializeResult(
            asset_key=REVIEW,
            metadata={
                **row_count(rows[REVIEW], TABLES[REVIEW]),
                "pairs": result.review_pairs,
                "steward_sheet": dg.MetadataValue.path(str(sheet)),
                "note": f"match probability from {run_cfg.matching.review} up to "
                f"{run_cfg.matching.auto_merge} (auto-merge), records in different clusters, not "
                "decided by a steward; per-field comparison level and weight in `explanation`",
            },
        )
        growth = run_cfg.quality.review_growth_factor
        yield from report_checks(
            context,
            [
                gates.conservation(report),
                gates.golden_suite_passes(suite, golden_rows),
                gates.incremental_consistent(result.differences, plan.reason),
                gates.review_queue_growth(result.review_pairs, previous, growth),
            ],
        )

    return consolidated


def previous_review_pairs(context: dg.AssetExecutionContext) -> int | None:
    """The review queue's size at its last materialisation (None: never materialised)."""
    event = context.instance.get_latest_materialization_event(REVIEW)
    if event is None or event.asset_materialization is None:
        return None
    value = event.asset_materialization.metadata.get("pairs")
    return None if value is None else int(value.value)
