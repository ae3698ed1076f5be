"""Quality assets: one GX suite per source as blocking asset checks, quarantine, scorecard."""

from datetime import UTC, datetime

import dagster as dg
import pandas as pd

from custpipe import warehouse
from custpipe.config import PipelineConfig
from custpipe.defs.common import WAREHOUSE_POOL, md_table
from custpipe.defs.resources import CustpipeResource
from custpipe.quality import scorecard as scorecard_core
from custpipe.quality.gx_runner import load_suite_names, read_suite, validate_frame
from custpipe.quality.quarantine import hold_back

SUITE_CHECK = "suite_passes"
ROWS_CHECK = "rows_quarantined"


def suite_for(source: str, expectations_dir) -> str:
    """The suite that validates a source's staged customers (source-specific, else the default)."""
    specific = f"staged_customers_{source}"
    return specific if specific in load_suite_names(expectations_dir) else "staged_customers"


def build_quality_asset(source_name: str, cfg: PipelineConfig) -> dg.AssetsDefinition:
    """Validate one source's staged customers; quarantine failing rows; report as asset checks."""
    key = dg.AssetKey(["quality", source_name])

    @dg.asset(
        key=key,
        deps=[dg.AssetKey(["staging", source_name])],
        group_name="quality",
        pool=WAREHOUSE_POOL,
        description=f"Great Expectations validation of '{source_name}' staged customers: rows "
        "failing a quarantine rule go to quality.quarantine with every rule they failed.",
        check_specs=[
            dg.AssetCheckSpec(
                SUITE_CHECK,
                asset=key,
                blocking=True,
                description="No 'block' expectation failed (systemic problem).",
            ),
            dg.AssetCheckSpec(
                ROWS_CHECK,
                asset=key,
                description="Rows held back by 'quarantine' expectations (warns).",
            ),
        ],
        kinds={"great_expectations", "duckdb"},
        tags={"source": source_name},
    )
    def _validate(context: dg.AssetExecutionContext, custpipe: CustpipeResource):
        settings = custpipe.settings
        suite = suite_for(source_name, settings.expectations_dir)
        with warehouse.connect(settings.warehouse_path) as con:
            staged = con.execute(
                "SELECT * FROM staging.customers WHERE source_system = ?", [source_name]
            ).df()
        outcome = validate_frame(
            staged,
            suite,
            expectations_dir=settings.expectations_dir,
            gx_dir=settings.gx_dir,
            results_limit=custpipe.pipeline.quality.results_limit,
            include_values=custpipe.pipeline.quality.include_values_in_docs,
        )
        descriptions = {
            e.get("meta", {}).get("rule"): e.get("meta", {}).get("description", "")
            for e in read_suite(settings.expectations_dir, suite)["expectations"]
        }
        now = datetime.now(UTC).replace(tzinfo=None)
        held, rules = hold_back(outcome, staged, source_name, context.run_id, now, descriptions)
        with warehouse.connect(settings.warehouse_path) as con:
            warehouse.append_rows(con, "quality.quarantine", held)
            warehouse.replace_rows(
                con,
                "quality.scorecard",
                rules,
                "run_id = ? AND source_system = ?",
                [context.run_id, source_name],
            )
            warehouse.append_rows(
                con,
                "quality.validation_runs",
                pd.DataFrame(
                    [
                        {
                            "run_id": context.run_id,
                            "source_system": source_name,
                            "suite": suite,
                            "rows": len(staged),
                            "quarantined": held["source_id"].nunique() if len(held) else 0,
                            "success": not outcome.blocked,
                            "validated_at": now,
                        }
                    ]
                ),
            )
        quarantined = held["source_id"].nunique() if len(held) else 0
        table = md_table(
            rules.to_dict("records"), ["rule", "severity", "evaluated", "failed", "pass_rate"]
        )
        docs = dg.MetadataValue.path(str(outcome.docs_index)) if outcome.docs_index else "not built"
        blocked = [o.rule for o in outcome.failures("block")]
        yield dg.MaterializeResult(
            metadata={
                "suite": suite,
                "rows_evaluated": len(staged),
                "rows_quarantined": int(quarantined),
                "rules": table,
                "data_docs": docs,
            }
        )
        yield dg.AssetCheckResult(
            check_name=SUITE_CHECK,
            passed=not blocked,
            severity=dg.AssetCheckSeverity.ERROR,
            description=("blocked by: " + ", ".join(blocked))
            if blocked
            else "no blocking rule failed",
            metadata={
                "suite": suite,
                "rows_evaluated": len(staged),
                "blocking_rules_failed": len(blocked),
                "rules": table,
                "data_docs": docs,
            },
        )
        yield dg.AssetCheckResult(
            check_name=ROWS_CHECK,
            passed=quarantined == 0,
            severity=dg.AssetCheckSeverity.WARN,
            metadata={
                "rows_quarantined": int(quarantined),
                "quarantine_rate": round(quarantined / len(staged), 4) if len(staged) else 0.0,
            },
        )

    return _validate


def build_scorecard_asset(cfg: PipelineConfig) -> dg.AssetsDefinition:
    """The data-quality scorecard: per run/source/rule rows plus a steward-facing trend page."""

    @dg.asset(
        key=["quality", "scorecard"],
        deps=[dg.AssetKey(["quality", s]) for s in cfg.sources]
        + [dg.AssetKey(["recon", "order_discrepancies"])],
        group_name="quality",
        pool=WAREHOUSE_POOL,
        description="quality.scorecard: one row per (run, source, rule) with counts and pass "
        "rate, and a trend page over the last runs for the data stewards.",
        kinds={"duckdb", "html"},
    )
    def scorecard(context: dg.AssetExecutionContext, custpipe: CustpipeResource):
        settings = custpipe.settings
        with warehouse.connect(settings.warehouse_path) as con:
            scorecard_core.add_reconciliation_rows(con, context.run_id)
            trend = scorecard_core.trend(con, last_runs=10)
        page = scorecard_core.write_trend_page(trend, settings.reports_dir / "scorecard.html")
        this_run = trend[trend["run_id"] == context.run_id]
        return dg.MaterializeResult(
            metadata={
                "rows_this_run": len(this_run),
                "runs_shown": int(trend["run_id"].nunique()),
                "trend": dg.MetadataValue.md(scorecard_core.trend_markdown(trend)),
                "trend_page": dg.MetadataValue.path(str(page)),
            }
        )

    return scorecard
