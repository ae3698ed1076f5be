"""Turn a suite outcome into quarantine rows (one per record and failed rule) and rule counts."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from custpipe.quality.gx_runner import SuiteOutcome

QUARANTINE_COLUMNS = [
    "source_system",
    "source_id",
    "rule",
    "severity",
    "description",
    "run_id",
    "quarantined_at",
]
SCORECARD_COLUMNS = [
    "run_id",
    "run_at",
    "source_system",
    "rule",
    "severity",
    "evaluated",
    "failed",
    "pass_rate",
]


def quarantine_rows(
    outcome: SuiteOutcome,
    source: str,
    run_id: str,
    at: datetime,
    descriptions: dict[str, str] | None = None,
) -> pd.DataFrame:
    """Every (record, rule) pair that failed a `quarantine` expectation."""
    descriptions = descriptions or {}
    rows = [
        (source, source_id, o.rule, o.severity, descriptions.get(o.rule, ""), run_id, at)
        for o in outcome.outcomes
        if o.severity == "quarantine" and not o.success
        for source_id in o.failed_ids
    ]
    return pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)


def rule_rows(outcome: SuiteOutcome, source: str, run_id: str, at: datetime) -> pd.DataFrame:
    """One scorecard row per expectation: rows evaluated, failed, pass rate."""
    rows = []
    for o in outcome.outcomes:
        rate = 1.0 - (o.failed / o.evaluated) if o.evaluated else (1.0 if o.success else 0.0)
        rows.append((run_id, at, source, o.rule, o.severity, o.evaluated, o.failed, round(rate, 6)))
    return pd.DataFrame(rows, columns=SCORECARD_COLUMNS)
