"""Apply a dataset's declarative field map to raw source rows.

Problems are never silently nulled: every unmapped code, unparseable date or missing
required value is returned as a `MappingIssue` (source, field, column, count), and the rows
it concerns are flagged in the `mapping_errors` column so the quality stage can quarantine
them with their reasons. A dataset in strict mode (`on_unmapped_code: fail`) raises instead.

This module orchestrates; the rules live beside it: numbers (amounts, quantities), dates
(time zones), checks (currencies, duplicate ids, party-type names), sql_expr (expressions).
"""

from __future__ import annotations

import re

import duckdb
import pandas as pd

from custpipe.config import DatasetConfig, FieldRule
from custpipe.mapping.checks import currencies, duplicate_ids, infer_party_type
from custpipe.mapping.dates import CALENDAR_DATE_FIELDS, DATE_FIELDS, parse_dates
from custpipe.mapping.issues import MappingError, MappingIssue, flag
from custpipe.mapping.numbers import NUMBER_FIELDS, number_rule, number_value, parse_numbers
from custpipe.mapping.sql_expr import check_expression, sandbox, wrap

__all__ = [
    "DATE_FIELDS",
    "NUMBER_FIELDS",
    "MappingError",
    "MappingIssue",
    "map_fields",
    "number_value",
]

DUPLICATE_ID_RULE = "duplicate_id:source_id"
DUPLICATE_ID_PROBLEM = (
    "record id given more than once (ids equal once spaces and leading zeros are "
    "trimmed; every copy kept, rows quarantined): correct the ids at the source"
)


def _blank_to_none(s: pd.Series) -> pd.Series:
    s = s.astype(object)
    if s.dropna().map(type).eq(str).all():  # the usual case (landing data is text): vectorised
        stripped = s.str.strip()
    else:
        stripped = s.map(lambda v: v.strip() if isinstance(v, str) else v)
    return stripped.where(stripped.notna() & (stripped != ""), None).astype(object)


def _expression(raw: pd.DataFrame, expr: str, source: str, field: str) -> pd.Series:
    try:  # checked when the config was loaded; again here, for a config built in code
        check_expression(expr)
    except ValueError as exc:
        raise MappingError(f"source '{source}', field '{field}': {exc}") from None
    con = sandbox()  # no file, network or extension access
    try:
        con.register("raw", raw)
        values = con.execute(wrap(expr)).df()["v"]
    except duckdb.Error as exc:
        reason = re.sub(r"'[^']*'", "'…'", str(exc).splitlines()[0])  # no row values
        raise MappingError(
            f"source '{source}', field '{field}': expression {expr!r} cannot be evaluated: "
            f"{reason}. Quote column names with double quotes; use TRY_CAST for conversions "
            "that may fail on some rows."
        ) from None
    finally:
        con.close()
    return _blank_to_none(pd.Series(values.values, index=raw.index, dtype=object))


def _input(raw: pd.DataFrame, rule: FieldRule, source: str, field: str) -> pd.Series:
    if rule.const is not None:
        return pd.Series([rule.const] * len(raw), index=raw.index, dtype=object)
    if rule.expr is not None:
        return _expression(raw, rule.expr, source, field)
    if rule.concat:
        parts = [_blank_to_none(raw[c]) for c in rule.concat]
        joined = parts[0].copy()
        for part in parts[1:]:
            both = joined.notna() & part.notna()
            joined = joined.where(~both, joined.astype(str) + rule.sep + part.astype(str))
            joined = joined.where(joined.notna(), part)
        return joined
    return _blank_to_none(raw[rule.column])


def _split(values: pd.Series, sep: str, part: int) -> pd.Series:
    def pick(value):
        if not isinstance(value, str):
            return value
        pieces = [p.strip() for p in value.split(sep)]
        try:
            return pieces[part] or None
        except IndexError:
            return None

    return values.map(pick)


def _crosswalk(
    values: pd.Series, rule: FieldRule, source: str, field: str, issues: list[MappingIssue]
) -> tuple[pd.Series, pd.Series]:
    """Mapped values, and the mask of rows whose code has no crosswalk entry."""
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
                rule.column or "+".join(rule.concat or []) or "expr",
                "code without a crosswalk entry (kept as-is, row quarantined)",
                int(unmapped.sum()),
                tuple(counts.index[:5]),
                rule=f"crosswalk_covered:{field}",
            )
        )
    if "" in table:
        mapped = mapped.where(present, table[""])
    return mapped, unmapped


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
        return infer_party_type(values)
    raise ValueError(f"unknown transform {name!r}")


def _column(rule: FieldRule) -> str:
    return rule.column or "+".join(rule.concat or []) or "expr"


def map_fields(
    raw: pd.DataFrame, dataset: DatasetConfig, source: str, timezone: str = "UTC"
) -> tuple[pd.DataFrame, list[MappingIssue]]:
    """One column per mapped canonical field, plus `source_id` and `mapping_errors`.

    `mapping_errors` lists, per row, the mapping rules it broke (None when clean). Naive
    clock times are read in `timezone` (the source's) and returned as naive UTC.
    """
    issues: list[MappingIssue] = []
    out = pd.DataFrame(index=raw.index)
    errors = pd.Series([None] * len(raw), index=raw.index, dtype=object)
    out["source_id"] = _blank_to_none(raw[dataset.id])
    missing_ids = out["source_id"].isna()
    if missing_ids.any():
        issues.append(
            MappingIssue(
                source, "source_id", dataset.id, "missing record id", int(missing_ids.sum())
            )
        )
    duplicated = duplicate_ids(out["source_id"])
    if duplicated.any():  # every copy is kept (ids as given, trimmed) and held back
        issues.append(
            MappingIssue(
                source,
                "source_id",
                dataset.id,
                DUPLICATE_ID_PROBLEM,
                int(duplicated.sum()),
                rule=DUPLICATE_ID_RULE,
            )
        )
        errors = flag(errors, duplicated, DUPLICATE_ID_RULE)
    for field, rule in dataset.fields.items():
        values = _input(raw, rule, source, field)
        if rule.split is not None:
            values = _split(values, rule.split, rule.part)
        before = values
        if rule.transform:
            values = _transform(values, rule.transform)
        if rule.crosswalk is not None:
            values, unmapped = _crosswalk(values, rule, source, field, issues)
            errors = flag(errors, unmapped, f"crosswalk_covered:{field}")
        if rule.date_format or field in DATE_FIELDS:
            excel = dataset.reader.kind == "xlsx"  # date cells arrive as ISO 8601 text
            zone = "UTC" if field in CALENDAR_DATE_FIELDS else timezone  # a day is not shifted
            values = parse_dates(values, rule, source, field, issues, zone, excel)
        if rule.default is not None:
            values = values.where(values.notna(), rule.default)
        column = _column(rule)
        if field in NUMBER_FIELDS:
            fmt = rule.number_format or dataset.number_format
            values, bad = parse_numbers(values, fmt, source, field, column, issues)
            errors = flag(errors, bad, number_rule(field))
        if field == "currency":
            values, unknown = currencies(values, source, column, issues)
            errors = flag(errors, unknown, "currency_unknown:currency")
        if rule.transform == "infer_party_type":
            undecided = values.isna() & before.notna()
            if undecided.any():
                issues.append(
                    MappingIssue(
                        source,
                        field,
                        column,
                        "no party type inferred: the name has no letters or is a formula "
                        "or SQL payload (row quarantined)",
                        int(undecided.sum()),
                        rule="party_type_unknown:party_type",
                    )
                )
                errors = flag(errors, undecided, "party_type_unknown:party_type")
        out[field] = values
    for field in dataset.required:
        absent = out[field].isna()
        if absent.any():
            issues.append(
                MappingIssue(
                    source,
                    field,
                    _column(dataset.fields[field]),
                    "required value missing (row quarantined)",
                    int(absent.sum()),
                    rule=f"required:{field}",
                )
            )
            errors = flag(errors, absent, f"required:{field}")
    if dataset.on_unmapped_code == "fail":
        gaps = [i for i in issues if i.rule.startswith("crosswalk_covered:")]
        if gaps:
            raise MappingError(
                f"source '{source}' is in strict mode (on_unmapped_code: fail) and its data has "
                "codes without a crosswalk entry:\n"
                + "\n".join(f"  - {i}" for i in gaps)
                + "\nAdd the codes to the crosswalk in the source's mapping file, or set "
                "on_unmapped_code: quarantine to hold those rows back instead."
            )
    out["mapping_errors"] = errors
    return out, issues
