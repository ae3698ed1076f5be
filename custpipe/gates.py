"""Every check of the nightly run, decided here: what blocks the publish, and what only warns.

Each gate is a function that returns one :class:`GateResult` (passed, severity, description,
metadata of plain JSON-able values: counts, rule names, codes — never customer values). The
Dagster layer (`custpipe/defs/`) only turns results into asset check results, and builds its
check specs from :data:`CHECKS`, the registry below: name, asset, blocking or not, what a
failure means for on-call, what to do and whether the ERP got that night's data. README.md's
"What blocks the publish" lists the same checks (a test compares them with the built
definitions and this registry): it is the per-check part of the on-call runbook.

No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from custpipe.quality.conservation import ConservationReport
    from custpipe.quality.gx_runner import SuiteOutcome
    from custpipe.quality.validate import SourceValidation

Severity = Literal["block", "warn"]

#: Metadata keys whose value is a local file (the Dagster layer shows them as a link).
FILE_KEYS = frozenset({"data_docs"})
NOT_BUILT = "not built"


@dataclass(frozen=True)
class Check:
    """One asset check of the graph: where it runs, whether it blocks, what to do about it."""

    name: str
    asset: str  # "extract/<source>": one check per configured source; else one asset
    blocking: bool
    description: str  # the check's description in Dagster
    on_call: str  # what a failure means for the on-call engineer
    action: str  # what to do about it
    erp: str | None = None  # did the ERP get that night's data, where the default is wrong
    # a blocking check of the publish itself, after the write: when it fails the ERP got
    # that night's data (and it may be wrong)
    after_publish: bool = False

    @property
    def severity(self) -> Severity:
        """'block' for a blocking check, else 'warn'."""
        return "block" if self.blocking else "warn"

    @property
    def erp_tonight(self) -> str:
        """Did the ERP get that night's data when this check failed (the runbook's answer)."""
        if self.erp is not None:
            return self.erp
        if self.after_publish:
            return (
                "Yes, and it may be wrong: the publish wrote the table before this check read "
                "it back."
            )
        if self.blocking:
            return "No: the publish did not run; the ERP keeps the last published customers."
        return "Yes: the publish ran."

    @property
    def per_source(self) -> bool:
        """True when every configured source has this check on its own asset."""
        return "<source>" in self.asset

    def asset_path(self, source: str | None = None) -> list[str]:
        """The asset key path of the check (for one source, when it runs per source)."""
        if self.per_source:
            if source is None:
                raise ValueError(f"check {self.name!r} runs per source: name the source")
            return self.asset.replace("<source>", source).split("/")
        return self.asset.split("/")


RAW_SHAPE = "raw_shape"
SUITE_PASSES = "suite_passes"
VOLUME_STABLE = "volume_stable"
ROWS_QUARANTINED = "rows_quarantined"
CONSERVATION = "conservation"
GOLDEN_SUITE_PASSES = "golden_suite_passes"
NO_DISCREPANCIES = "no_discrepancies"
ORDERS_SUITE_PASSES = "orders_suite_passes"
INCREMENTAL_CONSISTENT = "incremental_consistent"
SOURCE_HELD = "source_held"
MAPPING_ISSUES = "mapping_issues"
REVIEW_QUEUE_GROWTH = "review_queue_growth"
ERP_MATCHES_GOLDEN = "erp_matches_golden"

CHECKS: dict[str, Check] = {
    c.name: c
    for c in (
        Check(
            RAW_SHAPE,
            "extract/<source>",
            True,
            "The raw customer extract passes expectations/raw_<source>.json (mapped columns "
            "present, record ids present and unique): a broken export stops here, before it "
            "is mapped.",
            "The source delivered a broken export (a mapped column is gone, record ids are "
            "missing or duplicated). Its landing folder is marked rejected and never staged. "
            "With `on_failure: block` (or on the source's first night) nothing of that night "
            "reaches the golden records or the ERP; with `on_failure: hold` (the default) the "
            "check fails at WARN severity and the night publishes with the source's last good "
            "state (see `source_held`).",
            "Read the failed rule in the check's `rules`; have the source system's owner "
            "deliver the export again, then rerun the night, or let the next night catch up "
            "(the next extraction starts from the watermark before the rejected folder).",
            "`on_failure: block`: no, the publish did not run and the ERP keeps the last "
            "published customers. `on_failure: hold`: yes, for every source; this source's "
            "changes of that night are not in it.",
        ),
        Check(
            SOURCE_HELD,
            "staging/<source>",
            False,
            "The source's new data was accepted tonight; fails (warns) when it was held back "
            "by `on_failure: hold` and the night used its last good staged state.",
            "The source's new data failed (an export missing or unreadable, a column renamed "
            "or retyped, a mapping error, a raw suite that rejected it): it was held back. "
            "The night consolidated and published with the source's last good staged state; "
            "the other sources' changes reached the ERP, this source's did not.",
            "Read the reason in the check's description (also ops.held_sources and the run "
            "tag custpipe/held_sources); have the export or the mapping fixed. The next night "
            "lands and stages the held data; nothing is lost.",
            "Yes, for every source; the held source's changes of that night are not in it.",
        ),
        Check(
            SUITE_PASSES,
            "quality/<source>",
            True,
            "No 'block' expectation failed and no more than quality.max_quarantine_rate of the "
            "rows were quarantined (systemic problem).",
            "The source's staged customers failed a 'block' rule of its suite, or more than "
            "quality.max_quarantine_rate (20 %) of its rows were quarantined: a systemic "
            "problem, so consolidation and the publish stop.",
            "Open the check's `rules` and `data_docs`; fix the mapping or the export (or the "
            "suite, by a reviewed change), then rerun the night.",
        ),
        Check(
            VOLUME_STABLE,
            "quality/<source>",
            True,
            "The source did not lose more than quality.max_volume_drop of its rows since its "
            "last non-empty validation that passed its suite and this check (an empty or "
            "truncated export blocks; a second such night blocks too).",
            "The source lost more than quality.max_volume_drop (20 %) of its rows since its "
            "baseline: an empty or truncated export, which would retire customers in the ERP.",
            "Check the export with the source system's owner. Broken: deliver it again and "
            "rerun. A genuine drop (a clean-up at the source): `custpipe accept-volume SOURCE "
            "--by NAME --why TEXT`, then rerun.",
        ),
        Check(
            ROWS_QUARANTINED,
            "quality/<source>",
            False,
            "Share of rows held back by 'quarantine' rules stays under "
            "quality.quarantine_warn_rate (warns).",
            "More than quality.quarantine_warn_rate (5 %) of the source's rows were "
            "quarantined; the rest were published.",
            "Nothing tonight; the data stewards work through quality.quarantine.",
        ),
        Check(
            CONSERVATION,
            "mdm/customer_xref",
            True,
            "Every staged record is in exactly one of mdm.customer_xref or the latest "
            "quality.quarantine.",
            "A record was lost or doubled between landing, staging, the cross-reference and "
            "the quarantine (a defect, not bad data): the publish stops.",
            "Read the counts in the check's description; rerun the night once (an "
            "interrupted run heals); if it fails again, escalate to the custpipe developers.",
        ),
        Check(
            GOLDEN_SUITE_PASSES,
            "mdm/golden_customers",
            True,
            "The golden_customers GX suite has no failed 'block' rule.",
            "A golden record has no ID, a duplicated ID or no name: the ERP would receive "
            "broken rows, so the publish stops.",
            "A defect of consolidation or survivorship: rerun once; if it fails again, "
            "escalate to the custpipe developers with the run id.",
        ),
        Check(
            INCREMENTAL_CONSISTENT,
            "mdm/golden_customers",
            False,
            "A full consolidation (weekly, or `custpipe run --full-refresh`) gives the tables "
            "the incremental nights built (golden records, xref, review queue).",
            "The full recompute differs from the incremental state it replaced: a defect of "
            "incremental consolidation. Tonight's tables are the full, correct ones.",
            "Nothing tonight; report the tables and counts in the check's description to "
            "the custpipe developers with the run id.",
        ),
        Check(
            NO_DISCREPANCIES,
            "recon/order_discrepancies",
            False,
            "Warns when the share of orders with findings exceeds reconcile.discrepancy_warn_rate.",
            "More orders than reconcile.discrepancy_warn_rate (5 %) disagree across systems.",
            "Nothing tonight; finance works through recon.order_discrepancies.",
        ),
        Check(
            ORDERS_SUITE_PASSES,
            "recon/order_discrepancies",
            False,
            "The staged orders pass the 'orders' GX suite (warns: order data problems are "
            "findings for reconciliation and never hold back the customer master).",
            "Some staged orders fail the 'orders' suite; the customer publish is not affected.",
            "Nothing tonight; the owners of the order systems fix the rules' findings.",
        ),
        Check(
            MAPPING_ISSUES,
            "staging/<source>",
            False,
            "Warns when more than quality.mapping_issue_warn_rate of the rows staged tonight "
            "were flagged while mapping (unknown codes, unparsable dates or numbers, values "
            "cut to length); a row counts once per issue.",
            "Many of the source's rows did not map cleanly (an unknown code, a date or number "
            "that does not parse): the rows were staged, the affected values are empty or "
            "quarantined by the suite, the rest was published.",
            "Nothing tonight; read the check's `issues` table (field, source column, problem, "
            "rows) and have the mapping (config/sources/<source>.yaml) or the export fixed.",
        ),
        Check(
            REVIEW_QUEUE_GROWTH,
            "mdm/match_review",
            False,
            "Warns when the steward review queue (mdm.match_review) grew by more than "
            "quality.review_growth_factor times its size at the last run recorded in the "
            "Dagster instance (an empty queue counts as one pair; no earlier run: passes).",
            "The review queue grew sharply: new data with many uncertain pairs, or a changed "
            "model or threshold. The certain pairs were merged and published as usual; the "
            "uncertain ones wait for the stewards.",
            "Nothing tonight; tell the data stewards, and check whether a source delivered "
            "unusual data or the match model or thresholds changed.",
        ),
        Check(
            ERP_MATCHES_GOLDEN,
            "publish/erp_customers",
            True,
            "After the publish, what the ERP holds is what custpipe meant to publish: on a "
            "full publish, the table's active rows read back and hashed have the golden "
            "records' content hash; on an incremental night, the rows written tonight read "
            "back as meant and the table's mark (count, checksum of the row hashes) is the "
            "one remembered.",
            "The ERP table was written but its content differs from the golden records (a "
            "value changed on the way, a row missing or extra, or another writer touched the "
            "table). The ERP got data tonight, and it may be wrong.",
            "Read the check's counts; rerun the night with a full refresh (`custpipe run "
            "--full-refresh`), which republishes every row; if it fails again, stop the ERP's "
            "import of the table and escalate to the custpipe developers.",
            after_publish=True,
        ),
    )
}


def blocking_checks() -> list[Check]:
    """The checks that stop the publish when they fail."""
    return [c for c in CHECKS.values() if c.blocking]


@dataclass(frozen=True)
class GateResult:
    """The verdict of one check: plain values only (counts, rule names; no customer values).

    `metadata` values are JSON-able; a list of dicts is a table (one dict per row).
    """

    check: str
    passed: bool
    severity: Severity
    description: str
    metadata: dict[str, Any] = field(default_factory=dict)
    # what failed, one dict per rule: {"rule", "evaluated", "failed"} (counts only)
    failed_rules: tuple[dict, ...] = ()

    @property
    def blocks(self) -> bool:
        """True when this result stops the publish."""
        return not self.passed and self.severity == "block"

    def counts(self) -> dict[str, int | float]:
        """The result's plain counts and rates (its int and float metadata)."""
        return {
            k: v
            for k, v in self.metadata.items()
            if isinstance(v, int | float) and not isinstance(v, bool)
        }


def rule_text(rule: Mapping) -> str:
    """'name_mostly_present (40 of 150 failed)': a failed rule and its counts (or its note)."""
    if rule.get("note"):
        return f"{rule['rule']} ({rule['note']})"
    return f"{rule['rule']} ({rule['failed']:,} of {rule['evaluated']:,} failed)"


def _result(
    check: str,
    passed: bool,
    description: str,
    failed_rules: Iterable[Mapping] = (),
    **metadata: Any,
) -> GateResult:
    rules = () if passed else tuple({k: _plain(v) for k, v in r.items()} for r in failed_rules)
    return GateResult(check, bool(passed), CHECKS[check].severity, description, metadata, rules)


def _failed(outcome: SuiteOutcome, severity: str | None = "block") -> list[dict]:
    return [
        {"rule": o.rule, "evaluated": o.evaluated, "failed": o.failed}
        for o in outcome.failures(severity)
    ]


def _blocked_text(failed_rules: list[dict]) -> str:
    if not failed_rules:
        return "no blocking rule failed"
    return "blocked by: " + ", ".join(rule_text(r) for r in failed_rules)


def _docs(outcome: SuiteOutcome) -> str:
    return str(outcome.docs_index) if outcome.docs_index else NOT_BUILT


def _rule_table(outcome: SuiteOutcome) -> list[dict]:
    return [
        {"rule": o.rule, "severity": o.severity, "evaluated": o.evaluated, "failed": o.failed}
        for o in outcome.outcomes
    ]


def scorecard_table(rows: Iterable[Mapping]) -> list[dict]:
    """Scorecard rows (rule, severity, evaluated, failed, pass_rate) as plain dicts."""
    columns = ("rule", "severity", "evaluated", "failed", "pass_rate")
    return [{c: _plain(r[c]) for c in columns} for r in rows]


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value


# --- the decisions -------------------------------------------------------------------------


def suite_blockers(
    failed_block_rules: Iterable[str], quarantine_rate: float, max_quarantine_rate: float
) -> list[str]:
    """What blocks a source's suite: its failed `block` rules, plus the quarantine rate when
    more than `max_quarantine_rate` of the rows were held back (a systemic problem)."""
    rules = list(failed_block_rules)
    if quarantine_rate > max_quarantine_rate:
        rules.append(f"quarantine_rate {quarantine_rate:.1%} > {max_quarantine_rate:.0%}")
    return rules


def volume_within(drop: float, max_volume_drop: float) -> bool:
    """The volume rule: a source may lose at most `max_volume_drop` of its baseline's rows."""
    return drop <= max_volume_drop


def rate(part: int, whole: int) -> float:
    """`part / whole` rounded to 4 places; 0.0 for nothing."""
    return round(part / whole, 4) if whole else 0.0


# --- one gate per check --------------------------------------------------------------------


def raw_shape(outcome: SuiteOutcome | None, rows: int, source: str) -> GateResult:
    """The raw suite over a source's new customer extract (None: the source has none)."""
    if outcome is None:
        return _result(
            RAW_SHAPE,
            True,
            f"no raw suite: add expectations/raw_{source}.json to check the extract's shape "
            "before mapping",
        )
    blocked = _failed(outcome)
    return _result(
        RAW_SHAPE,
        not blocked,
        _blocked_text(blocked),
        blocked,
        suite=outcome.suite_name,
        rows_evaluated=rows,
        blocking_rules_failed=len(blocked),
        rules=_rule_table(outcome),
        data_docs=_docs(outcome),
    )


def suite_passes(v: SourceValidation, max_quarantine_rate: float) -> GateResult:
    """A source's staged suite: no failed `block` rule, quarantine rate within the limit."""
    blocked = _failed(v.outcome)
    if v.quarantine_rate > max_quarantine_rate:  # the same decision as suite_blockers
        blocked.append(
            {
                "rule": "quarantine_rate",
                "evaluated": v.rows,
                "failed": v.quarantined,
                "note": f"{v.quarantine_rate:.1%} > {max_quarantine_rate:.0%}: "
                f"{v.quarantined:,} of {v.rows:,} rows quarantined",
            }
        )
    return _result(
        SUITE_PASSES,
        not blocked,
        _blocked_text(blocked),
        blocked,
        suite=v.suite,
        rows_evaluated=v.rows,
        rows_quarantined=v.quarantined,
        quarantine_rate=rate(v.quarantined, v.rows),
        blocking_rules_failed=len(blocked),
        rules=scorecard_table(v.rules.to_dict("records")),
        data_docs=_docs(v.outcome),
    )


def volume_stable(v: SourceValidation) -> GateResult:
    """The source kept its volume: at most `v.max_volume_drop` lost since the baseline."""
    baseline = v.baseline_rows or 0
    return _result(
        VOLUME_STABLE,
        volume_within(v.volume_drop, v.max_volume_drop),
        f"{v.rows} rows now, {v.baseline_rows} at the baseline (the last validation that was "
        "not empty, passed its suite and this check) "
        f"(drop {v.volume_drop:.1%}, limit {v.max_volume_drop:.0%})",
        [
            {
                "rule": "volume_drop",
                "evaluated": baseline,
                "failed": max(baseline - v.rows, 0),
                "note": f"{v.volume_drop:.1%} > {v.max_volume_drop:.0%}: {v.rows:,} rows now, "
                f"{baseline:,} at the baseline",
            }
        ],
        rows=v.rows,
        baseline_rows=v.baseline_rows or 0,
        drop=round(v.volume_drop, 4),
    )


def rows_quarantined(v: SourceValidation, warn_rate: float) -> GateResult:
    """Warns when more than `warn_rate` of the source's rows were quarantined."""
    share = rate(v.quarantined, v.rows)
    return _result(
        ROWS_QUARANTINED,
        share <= warn_rate,
        f"{v.quarantined} of {v.rows} rows quarantined ({share:.1%}; warns above {warn_rate:.0%})",
        rows_quarantined=v.quarantined,
        quarantine_rate=share,
    )


def source_held(source: str, step: str | None, reason: str | None) -> GateResult:
    """Warns when the source was held back tonight (`step`, `reason` None: it was not)."""
    if reason is None:
        return _result(SOURCE_HELD, True, f"'{source}''s new data was accepted", held=False)
    return _result(
        SOURCE_HELD,
        False,
        f"held back at {step} (on_failure: hold): {reason}",
        held=True,
        held_at_step=step,
    )


def conservation(report: ConservationReport) -> GateResult:
    """No record lost or doubled between landing, staging, xref and quarantine."""
    return _result(
        CONSERVATION,
        report.ok,
        report.summary(),
        [
            {
                "rule": "each_record_in_one_place",
                "evaluated": report.staged,
                "failed": report.in_both + report.in_neither + report.orphans,
                "note": f"in both {report.in_both}, in neither {report.in_neither}, "
                f"orphan xref rows {report.orphans}",
            }
        ],
        staged=report.staged,
        in_xref=report.in_xref,
        quarantined=report.quarantined,
        in_both=report.in_both,
        in_neither=report.in_neither,
        landing_rows=report.landing_rows,
        landing_staged=report.landing_staged,
        orphan_xref_rows=report.orphans,
    )


def incremental_consistent(diffs: Mapping[str, int] | None, reason: str) -> GateResult:
    """A compared full consolidation agrees with the incremental state (`diffs` None: this
    run was not compared — incremental, or full because the meaning changed)."""
    if diffs is None:
        return _result(
            INCREMENTAL_CONSISTENT,
            True,
            "not compared tonight" + (f" ({reason})" if reason else ""),
        )
    tables = [{"table": t, "rows_differing": n} for t, n in sorted(diffs.items())]
    text = ", ".join(f"{t}: {n:,} rows" for t, n in sorted(diffs.items()))
    return _result(
        INCREMENTAL_CONSISTENT,
        not diffs,
        f"the full recompute differs from the incremental state: {text}"
        if diffs
        else "the full recompute equals the incremental state",
        differences=tables,
    )


def golden_suite_passes(outcome: SuiteOutcome, rows: int) -> GateResult:
    """The golden records' suite: no failed `block` rule."""
    blocked = _failed(outcome)
    return _result(
        GOLDEN_SUITE_PASSES,
        not blocked,
        _blocked_text(blocked),
        blocked,
        rows_evaluated=rows,
        blocking_rules_failed=len(blocked),
    )


def orders_suite_passes(outcome: SuiteOutcome, rules: Iterable[Mapping], orders: int) -> GateResult:
    """The staged orders' suite: warns on any failed rule, never blocks."""
    failed = _failed(outcome, None)
    return _result(
        ORDERS_SUITE_PASSES,
        not failed,
        ("failed: " + ", ".join(rule_text(r) for r in failed))
        if failed
        else "every orders rule passed",
        failed,
        orders_evaluated=orders,
        rules_failed=len(failed),
        rules=scorecard_table(rules),
    )


def no_discrepancies(counts: Mapping[str, int], orders: int, warn_rate: float) -> GateResult:
    """Warns when more than `warn_rate` of the orders have reconciliation findings."""
    findings = int(sum(counts.values()))
    share = rate(findings, orders)
    return _result(
        NO_DISCREPANCIES,
        share <= warn_rate,
        f"{findings} findings for {orders} orders ({share:.1%}; warns above {warn_rate:.0%})",
        findings=findings,
        finding_rate=share,
        by_kind=[{"kind": k, "findings": int(n)} for k, n in counts.items()],
    )


def mapping_issues(
    issues: Iterable[Mapping], rows_mapped: int, warn_rate: float, source: str
) -> GateResult:
    """Warns when the rows flagged while mapping exceed `warn_rate` of the rows mapped tonight
    (`issues`: dataset, field, source_column, problem, rows; no values)."""
    table = [
        {k: _plain(i[k]) for k in ("dataset", "field", "source_column", "problem", "rows")}
        for i in issues
    ]
    flagged = int(sum(i["rows"] for i in table))
    share = rate(flagged, rows_mapped)
    return _result(
        MAPPING_ISSUES,
        share <= warn_rate,
        f"{flagged} mapping issue(s) in {rows_mapped} rows mapped tonight for '{source}' "
        f"({share:.1%}; warns above {warn_rate:.0%})",
        rows_mapped=rows_mapped,
        rows_flagged=flagged,
        issue_rate=share,
        issues=table,
    )


def review_queue_growth(pairs: int, previous: int | None, factor: float) -> GateResult:
    """Warns when the review queue holds more than `factor` times the pairs of the last run
    (`previous` None: no earlier run to compare with; an empty queue counts as one pair)."""
    if previous is None:
        return _result(
            REVIEW_QUEUE_GROWTH,
            True,
            f"{pairs} pairs to review; no earlier run to compare with",
            pairs=pairs,
        )
    limit = max(previous, 1) * factor
    return _result(
        REVIEW_QUEUE_GROWTH,
        pairs <= limit,
        f"{pairs} pairs to review, {previous} at the last run (warns above {factor:g} times "
        "the last run's size)",
        pairs=pairs,
        previous_pairs=previous,
        growth=round(pairs / max(previous, 1), 2),
    )


def erp_matches_golden_tonight(verified, table: str) -> GateResult:
    """An incremental night's read-back (custpipe.publish.verify.NightVerified): every row it
    wrote is as meant and the table's mark is the one remembered."""
    rules = []
    if verified.mismatched or verified.written != verified.expected:
        rules.append(
            {
                "rule": "rows_written_tonight_as_meant",
                "note": f"{verified.written:,} rows carry tonight's stamp, {verified.expected:,} "
                f"were written, {verified.mismatched:,} differ from the golden records",
            }
        )
    if verified.mark_differences:
        rules.append(
            {
                "rule": "table_mark_as_remembered",
                "note": "the table's " + ", ".join(verified.mark_differences) + " differ",
            }
        )
    if verified.ok and verified.expected == 0:
        return _result(
            ERP_MATCHES_GOLDEN,
            True,
            f"{table}: nothing was written tonight; the table's mark (count, checksum of its "
            "row hashes) was the one remembered when the publish began, in its transaction",
            rows_written=0,
            rows_expected=0,
            rows_mismatched=0,
            erp_rows=verified.table_rows,
        )
    return _result(
        ERP_MATCHES_GOLDEN,
        verified.ok,
        f"{table}: the {verified.written:,} rows written tonight read back "
        + ("as meant" if verified.ok else "NOT as meant")
        + " and the table's mark (count, checksum of its row hashes) "
        + ("is" if not verified.mark_differences else "is NOT")
        + " the one remembered (incremental night: the whole table is read back on full "
        "publishes)",
        rules,
        rows_written=verified.written,
        rows_expected=verified.expected,
        rows_mismatched=verified.mismatched,
        erp_rows=verified.table_rows,
    )


def erp_matches_golden(
    golden_hash: str, golden_rows: int, erp_hash: str, erp_rows: int, table: str
) -> GateResult:
    """The ERP table's active rows read back hash to the golden records' content hash."""
    same = golden_hash == erp_hash
    return _result(
        ERP_MATCHES_GOLDEN,
        same,
        f"{table}: {erp_rows} active rows read back "
        + ("match" if same else "do NOT match")
        + f" the {golden_rows} golden records",
        [
            {
                "rule": "erp_content_equals_golden",
                "note": f"{erp_rows:,} active ERP rows, {golden_rows:,} golden records, "
                "content hashes differ",
            }
        ],
        golden_rows=golden_rows,
        erp_active_rows=erp_rows,
        golden_content_hash=golden_hash,
        erp_content_hash=erp_hash,
    )
