"""Consolidation assets: golden customers, cross-reference, review queue; conservation check."""

from pathlib import Path

import dagster as dg

from custpipe import warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import WAREHOUSE_POOL, md_table
from custpipe.defs.resources import CustpipeResource
from custpipe.matching.consolidate import Matcher, consolidate, load_matcher
from custpipe.matching.review import export_review
from custpipe.quality.conservation import conservation_report
from custpipe.quality.gx_runner import validate_frame

GOLDEN = dg.AssetKey(["mdm", "golden_customers"])
XREF = dg.AssetKey(["mdm", "customer_xref"])
REVIEW = dg.AssetKey(["mdm", "match_review"])


def matcher(cfg: PipelineConfig, settings) -> Matcher:
    """The configured match model and thresholds."""
    m = cfg.matching
    try:
        return load_matcher(Path(settings.expand(m.model)), m.auto_merge, m.review)
    except (FileNotFoundError, ValueError) as exc:  # only a trained model file can fix it
        raise dg.Failure(description=str(exc), allow_retries=False) from exc


def build_consolidate_asset(cfg: PipelineConfig) -> dg.AssetsDefinition:
    """Match accepted records, cluster them, keep golden IDs stable, build golden records."""

    validated = [dg.AssetKey(["quality", s]) for s in cfg.sources]

    @dg.multi_asset(
        specs=[
            dg.AssetSpec(
                key, group_name="consolidate", kinds={"duckdb"}, deps=validated, description=text
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
            dg.AssetCheckSpec(
                "conservation",
                asset=XREF,
                blocking=True,
                description="Every staged record is in exactly one of "
                "mdm.customer_xref or the latest quality.quarantine.",
            ),
            dg.AssetCheckSpec(
                "golden_suite_passes",
                asset=GOLDEN,
                blocking=True,
                description="The golden_customers GX suite has no failed 'block' rule.",
            ),
        ],
        pool=WAREHOUSE_POOL,
    )
    def consolidated(context: dg.AssetExecutionContext, custpipe: CustpipeResource):
        settings = custpipe.settings
        trust = {name: s.trust for name, s in cfg.sources.items()}
        with warehouse.connect(settings.warehouse_path) as con:
            result = consolidate(
                con,
                context.run_id,
                trust,
                cfg.publish.erp_source,
                matcher(cfg, settings),
                survivorship=cfg.survivorship.build(),
            )
            report = conservation_report(con, list(cfg.sources))
            golden = con.execute("SELECT * FROM mdm.golden_customers").df()
            review = con.execute("SELECT * FROM mdm.match_review ORDER BY score DESC").df()
            by_source = con.execute("""SELECT source_system, count(*) AS records,
                count(DISTINCT golden_id) AS golden FROM mdm.customer_xref
                GROUP BY 1 ORDER BY 1""").df()
        suite = validate_frame(
            golden,
            "golden_customers",
            expectations_dir=settings.expectations_dir,
            gx_dir=settings.gx_dir,
            id_column="golden_id",
            results_limit=custpipe.pipeline.quality.results_limit,
        )
        yield dg.MaterializeResult(
            asset_key=GOLDEN,
            metadata={
                "golden_customers": result.golden,
                "records_consolidated": result.records,
                "duplicates_merged": result.merged_records,
                "link_edges": result.edges,
                "clustering_rounds": result.rounds,
                "seconds_matching": result.seconds["matching"],
                "seconds_survivorship": result.seconds["survivorship"],
                "id_events": md_table(
                    [{"event": k, "count": v} for k, v in sorted(result.events.items())],
                    ["event", "count"],
                ),
            },
        )
        yield dg.MaterializeResult(
            asset_key=XREF,
            metadata={
                "rows": result.records,
                "by_source": md_table(
                    by_source.to_dict("records"), ["source_system", "records", "golden"]
                ),
            },
        )
        sheet = export_review(review, custpipe.settings.reports_dir / "match_review.csv")
        yield dg.MaterializeResult(
            asset_key=REVIEW,
            metadata={
                "pairs": result.review_pairs,
                "steward_sheet": dg.MetadataValue.path(str(sheet)),
                "note": f"match probability from {cfg.matching.review} up to "
                f"{cfg.matching.auto_merge} (auto-merge), records in different clusters, not "
                "decided by a steward; per-field comparison level and weight in `explanation`",
            },
        )
        yield dg.AssetCheckResult(
            check_name="conservation",
            asset_key=XREF,
            passed=report.ok,
            description=report.summary(),
            metadata={
                "staged": report.staged,
                "in_xref": report.in_xref,
                "quarantined": report.quarantined,
                "in_both": report.in_both,
                "in_neither": report.in_neither,
                "landing_rows": report.landing_rows,
                "landing_staged": report.landing_staged,
                "orphan_xref_rows": report.orphans,
            },
        )
        blocked = [o.rule for o in suite.failures("block")]
        yield dg.AssetCheckResult(
            check_name="golden_suite_passes",
            asset_key=GOLDEN,
            passed=not blocked,
            description=("blocked by: " + ", ".join(blocked))
            if blocked
            else "no blocking rule failed",
            metadata={"rows_evaluated": len(golden), "blocking_rules_failed": len(blocked)},
        )

    return consolidated
