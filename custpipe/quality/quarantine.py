"""Turn a suite outcome into quarantine rows (one per record and failed rule) and rule counts."""

from __future__ import annotations

from datetime import datetime

import pandas as pd

from custpipe import catalogue
from custpipe.quality.gx_runner import SuiteOutcome

# the columns of quality.quarantine and quality.scorecard (custpipe/catalogue.py)
QUARANTINE_COLUMNS = list(catalogue.table("quality.quarantine").column_names)
SCORECARD_COLUMNS = list(catalogue.table("quality.scorecard").column_names)


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


MAPPING_RULE_TEXT = {
    "crosswalk_covered": "The source code of field '{field}' has no entry in the source's "
    "crosswalk: add the code to the mapping file (or correct it at the source).",
    "required": "The required field '{field}' is empty: fill it in the source system.",
    "party_type_unknown": "The name gives no sign of a person or a company (no letters, or a "
    "formula or SQL text): correct the name in the source system, or map 'party_type'.",
    "duplicate_id": "Another record of this source has the same id apart from spaces or leading "
    "zeros: merge or renumber the records in the source system.",
    "amount_unparseable": "The value of '{field}' is not a number under the dataset's "
    "'number_format' (ambiguous, not finite or too large): correct it at the source, or declare "
    "the export's number format in the mapping file.",
    "number_unparseable": "The value of '{field}' is not a number under the dataset's "
    "'number_format' (ambiguous, not finite or too large): correct it at the source, or declare "
    "the export's number format in the mapping file.",
    "currency_unknown": "The currency is not an ISO 4217 code: correct it at the source or "
    "crosswalk it in the mapping file.",
}


def describe_mapping_rule(rule: str) -> str:
    """What a mapping rule (`kind:field`, as in `mapping_errors`) means and how to fix it."""
    kind, _, field = rule.partition(":")
    return MAPPING_RULE_TEXT.get(kind, "Mapping rule '{field}' failed.").format(field=field)


def mapping_quarantine_rows(
    staged: pd.DataFrame, source: str, run_id: str, at: datetime
) -> pd.DataFrame:
    """One quarantine row per (record, mapping rule) from the staged `mapping_errors` column."""
    flagged = staged.loc[staged["mapping_errors"].notna(), ["source_id", "mapping_errors"]]
    rows = [
        (source, source_id, f"mapping:{rule}", "quarantine", describe_mapping_rule(rule),
         run_id, at)  # fmt: skip
        for source_id, errors in flagged.itertuples(index=False)
        for rule in errors.split(";")
    ]
    return pd.DataFrame(rows, columns=QUARANTINE_COLUMNS)


def mapping_rule_rows(
    held: pd.DataFrame, evaluated: int, source: str, run_id: str, at: datetime
) -> pd.DataFrame:
    """Scorecard rows for the mapping rules that held rows back in this run."""
    counts = held.groupby("rule")["source_id"].nunique()
    rows = [
        (
            run_id,
            at,
            source,
            rule,
            "quarantine",
            evaluated,
            int(n),
            round(1.0 - n / evaluated, 6) if evaluated else 0.0,
        )
        for rule, n in counts.items()
    ]
    return pd.DataFrame(rows, columns=SCORECARD_COLUMNS)


#: The suite's rule type that checks what the mapping rule `crosswalk_covered:<field>` checks.
CROSSWALK_RULE_TYPE = "expect_column_values_to_be_covered_by_crosswalk"


def already_held(outcome: SuiteOutcome) -> dict[str, frozenset[str]]:
    """{mapping rule: ids} a suite rule of the same problem already holds back.

    A code without a crosswalk entry is kept as it was, so the suite's crosswalk rule on the
    field (``expect_column_values_to_be_covered_by_crosswalk``, severity quarantine) fails
    the same record as the mapping rule ``crosswalk_covered:<field>``: one problem, which
    must be held and counted once. Such a record keeps the suite's rule (its reviewed
    description names the fix); the mapping rule still holds the records only it catches (a
    code equal to a canonical one but missing from the crosswalk)."""
    held: dict[str, set[str]] = {}
    for o in outcome.outcomes:
        same = o.expectation_type == CROSSWALK_RULE_TYPE and o.severity == "quarantine"
        if same and o.column and not o.success:
            held.setdefault(f"mapping:crosswalk_covered:{o.column}", set()).update(o.failed_ids)
    return {rule: frozenset(ids) for rule, ids in held.items()}


def without_duplicates(mapped: pd.DataFrame, outcome: SuiteOutcome) -> pd.DataFrame:
    """The mapping rule rows whose record a suite rule of the same problem does not hold."""
    held = already_held(outcome)
    if mapped.empty or not held:
        return mapped
    keep = [
        source_id not in held.get(rule, ())
        for source_id, rule in zip(mapped["source_id"], mapped["rule"], strict=True)
    ]
    return mapped[keep].reset_index(drop=True)


def _concat(frames: list[pd.DataFrame], columns: list[str]) -> pd.DataFrame:
    frames = [f for f in frames if not f.empty]
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def hold_back(
    outcome: SuiteOutcome,
    staged: pd.DataFrame,
    source: str,
    run_id: str,
    at: datetime,
    descriptions: dict[str, str] | None = None,
    rows: int | None = None,
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(quarantine rows, scorecard rows) of one source's validation: GX rules + mapping rules.

    `staged` needs `source_id` and `mapping_errors` of (at least) the rows with a mapping
    error; `rows` is the source's row count (default: the rows of `staged`). A record the
    suite's crosswalk rule holds is not held again by the mapping rule of the same field
    (:func:`already_held`): every problem of a record is held, and scored, once."""
    rows = len(staged) if rows is None else rows
    mapped = without_duplicates(mapping_quarantine_rows(staged, source, run_id, at), outcome)
    held = _concat(
        [quarantine_rows(outcome, source, run_id, at, descriptions), mapped], QUARANTINE_COLUMNS
    )
    rules = _concat(
        [
            rule_rows(outcome, source, run_id, at),
            mapping_rule_rows(mapped, rows, source, run_id, at),
        ],
        SCORECARD_COLUMNS,
    )
    return held, rules
