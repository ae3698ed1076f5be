"""Apply a dataset's declarative field map to raw source rows.

Problems are never silently nulled: every unmapped code, unparseable date or missing
value that the rules meet is returned as a `MappingIssue` with source, column, count.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import pandas as pd

from custpipe.config import DatasetConfig, FieldRule

_LEGAL_FORM_HINT = re.compile(
    r"(有限|公司|集团|GmbH|G\.m\.b\.H|AG$|KG$|Inc|LLC|L\.L\.C|Ltd|Limited|Corp|Company|PLC)",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class MappingIssue:
    """A problem found while mapping: which rule, which source column, how many rows."""

    source: str
    field: str
    column: str
    problem: str
    rows: int
    examples: tuple[str, ...] = ()  # only non-personal values (codes), never customer data

    def __str__(self) -> str:
        ex = f" (values: {', '.join(self.examples)})" if self.examples else ""
        return (
            f"{self.source}.{self.field} <- {self.column}: {self.problem} in {self.rows} row(s){ex}"
        )


def _blank_to_none(s: pd.Series) -> pd.Series:
    s = s.astype(object)
    stripped = s.map(lambda v: v.strip() if isinstance(v, str) else v)
    return stripped.where(stripped.notna() & (stripped != ""), None)


def _input(raw: pd.DataFrame, rule: FieldRule) -> pd.Series:
    if rule.const is not None:
        return pd.Series([rule.const] * len(raw), index=raw.index, dtype=object)
    if rule.concat:
        parts = [_blank_to_none(raw[c]) for c in rule.concat]
        joined = parts[0].copy()
        for part in parts[1:]:
            both = joined.notna() & part.notna()
            joined = joined.where(~both, joined.astype(str) + rule.sep + part.astype(str))
            joined = joined.where(joined.notna(), part)
        return joined
    return _blank_to_none(raw[rule.column])


def _crosswalk(
    values: pd.Series, rule: FieldRule, source: str, field: str, issues: list[MappingIssue]
) -> pd.Series:
    table = {str(k): v for k, v in rule.crosswalk.items()}
    present = values.notna()
    mapped = values.map(lambda v: table.get(str(v), v) if v is not None else None)
    unmapped = present & ~values.astype(str).isin(table.keys())
    if unmapped.any():
        counts = values[unmapped].astype(str).value_counts()
        issues.append(
            MappingIssue(
                source,
                field,
                rule.column or "+".join(rule.concat or []),
                "code without a crosswalk entry (kept as-is, will be quarantined)",
                int(unmapped.sum()),
                tuple(counts.index[:5]),
            )
        )
    if "" in table:
        mapped = mapped.where(present, table[""])
    return mapped


def _dates(
    values: pd.Series, rule: FieldRule, source: str, field: str, issues: list[MappingIssue]
) -> pd.Series:
    if rule.date_format:
        parsed = pd.to_datetime(values, format=rule.date_format, errors="coerce", utc=True)
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    bad = values.notna() & parsed.isna()
    if bad.any():
        issues.append(
            MappingIssue(
                source,
                field,
                rule.column or "?",
                f"value not a date in format {rule.date_format or 'ISO 8601'} (set to null)",
                int(bad.sum()),
            )
        )
    return parsed.dt.tz_localize(None)


def _transform(values: pd.Series, name: str) -> pd.Series:
    if name == "strip_leading_zeros":
        return values.map(lambda v: (v.lstrip("0") or "0") if isinstance(v, str) else v)
    if name == "digits_only":
        return values.map(lambda v: re.sub(r"\D", "", v) or None if isinstance(v, str) else v)
    if name == "upper":
        return values.map(lambda v: v.upper() if isinstance(v, str) else v)
    if name == "lower":
        return values.map(lambda v: v.lower() if isinstance(v, str) else v)
    if name == "infer_party_type":
        return values.map(
            lambda v: (
                None if v is None else ("company" if _LEGAL_FORM_HINT.search(str(v)) else "person")
            )
        )
    raise ValueError(f"unknown transform {name!r}")


def map_fields(
    raw: pd.DataFrame, dataset: DatasetConfig, source: str
) -> tuple[pd.DataFrame, list[MappingIssue]]:
    """Return one column per mapped canonical field (plus `source_id`), and the issues met."""
    issues: list[MappingIssue] = []
    out = pd.DataFrame(index=raw.index)
    out["source_id"] = _blank_to_none(raw[dataset.id])
    missing_ids = int(out["source_id"].isna().sum())
    if missing_ids:
        issues.append(
            MappingIssue(source, "source_id", dataset.id, "missing record id", missing_ids)
        )
    for field, rule in dataset.fields.items():
        values = _input(raw, rule)
        if rule.transform:
            values = _transform(values, rule.transform)
        if rule.crosswalk is not None:
            values = _crosswalk(values, rule, source, field, issues)
        if rule.date_format or field in ("source_updated_at", "order_date", "birth_date"):
            values = _dates(values, rule, source, field, issues)
        if rule.default is not None:
            values = values.where(values.notna(), rule.default)
        out[field] = values
    return out, issues
