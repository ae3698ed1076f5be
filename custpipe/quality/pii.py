"""Scrub customer values out of serialised GX validation results (pure Python, no GX import).

GX validation results can carry sample values of failing rows (``partial_unexpected_list``,
``unexpected_index_list`` ...). Those are customer data (names, e-mails, tax IDs, ids) and must
not be written to the validation-results store nor rendered into Data Docs. Counts, percentages,
column names and the expectation configuration (which holds no customer data) are kept.
"""

from __future__ import annotations

from typing import Any

#: Keys of an expectation ``result`` dict that hold values or ids of individual rows.
VALUE_KEYS: frozenset[str] = frozenset(
    {
        "partial_unexpected_list",
        "unexpected_list",
        "partial_unexpected_counts",
        "partial_unexpected_index_list",
        "unexpected_index_list",
        "unexpected_index_query",
        "unexpected_rows",
        "details",
    }
)

SCRUB_MARKER = "custpipe_pii_scrubbed"


def _safe_observed_value(value: Any) -> Any:
    """Keep numeric/boolean observed values (counts, means); mask anything else."""
    if value is None or isinstance(value, bool | int | float):
        return value
    return "<masked>"


def scrub_expectation_result(result_dict: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of one serialised ExpectationValidationResult without row values/ids."""
    out = dict(result_dict)
    result = out.get("result")
    if isinstance(result, dict):
        clean = {k: v for k, v in result.items() if k not in VALUE_KEYS}
        if "observed_value" in clean:
            clean["observed_value"] = _safe_observed_value(clean["observed_value"])
        out["result"] = clean
    # rendered content may embed the same samples; GX re-renders from the scrubbed result
    out.pop("rendered_content", None)
    return out


def scrub_suite_result(suite_result_dict: dict[str, Any]) -> dict[str, Any]:
    """Return a copy of a serialised ExpectationSuiteValidationResult without row values/ids."""
    out = dict(suite_result_dict)
    out["results"] = [scrub_expectation_result(r) for r in out.get("results") or []]
    meta = dict(out.get("meta") or {})
    meta[SCRUB_MARKER] = True
    out["meta"] = meta
    return out
