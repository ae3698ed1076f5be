"""Apply a dataset's declarative field map to raw source rows.

Problems are never silently nulled: every unmapped code, unparseable date or missing
required value is returned as a `MappingIssue` (source, field, column, count), and the rows
it concerns are flagged in the `mapping_errors` column so the quality stage can quarantine
them with their reasons. A dataset in strict mode (`on_unmapped_code: fail`) raises instead.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb
import pandas as pd

from custpipe.config import DatasetConfig, FieldRule
from custpipe.standardize import legal_form

DATE_FIELDS = ("source_updated_at", "created_at", "order_date", "birth_date")


class MappingError(ValueError):
    """The mapping cannot be applied (strict mode, or a broken expression)."""


@dataclass(frozen=True)
class MappingIssue:
    """A problem found while mapping: which rule, which source column, how many rows."""

    source: str
    field: str
    column: str
    problem: str
    rows: int
    examples: tuple[str, ...] = ()  # only non-personal values (codes), never customer data
    rule: str = ""  # the quarantine rule of the rows concerned ("" = not row-level)

    def __str__(self) -> str:
        ex = f" (values: {', '.join(self.examples)})" if self.examples else ""
        return (
            f"{self.source}.{self.field} <- {self.column}: {self.problem} in {self.rows} row(s){ex}"
        )


def _blank_to_none(s: pd.Series) -> pd.Series:
    s = s.astype(object)
    if s.dropna().map(type).eq(str).all():  # the usual case (landing data is text): vectorised
        stripped = s.str.strip()
    else:
        stripped = s.map(lambda v: v.strip() if isinstance(v, str) else v)
    return stripped.where(stripped.notna() & (stripped != ""), None).astype(object)


def _expression(raw: pd.DataFrame, expr: str, source: str, field: str) -> pd.Series:
    con = duckdb.connect()
    try:
        con.register("raw", raw)
        values = con.execute(f"SELECT ({expr})::VARCHAR AS v FROM raw").df()["v"]
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
    if name == "infer_party_type":  # a name with a legal form (GmbH, Inc., 有限公司 …) is a company
        forms = legal_form(values)
        return forms.map(lambda f: "company" if f is not None else "person").where(
            values.notna(), None
        )
    raise ValueError(f"unknown transform {name!r}")


def _flag(errors: pd.Series, mask: pd.Series, rule: str) -> pd.Series:
    """Append `rule` to the `;`-separated error list of the rows in `mask`."""
    return errors.where(~mask, errors.map(lambda e: f"{e};{rule}" if isinstance(e, str) else rule))


def map_fields(
    raw: pd.DataFrame, dataset: DatasetConfig, source: str
) -> tuple[pd.DataFrame, list[MappingIssue]]:
    """One column per mapped canonical field, plus `source_id` and `mapping_errors`.

    `mapping_errors` lists, per row, the mapping rules it broke (None when clean).
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
    for field, rule in dataset.fields.items():
        values = _input(raw, rule, source, field)
        if rule.split is not None:
            values = _split(values, rule.split, rule.part)
        if rule.transform:
            values = _transform(values, rule.transform)
        if rule.crosswalk is not None:
            values, unmapped = _crosswalk(values, rule, source, field, issues)
            errors = _flag(errors, unmapped, f"crosswalk_covered:{field}")
        if rule.date_format or field in DATE_FIELDS:
            values = _dates(values, rule, source, field, issues)
        if rule.default is not None:
            values = values.where(values.notna(), rule.default)
        out[field] = values
    for field in dataset.required:
        absent = out[field].isna()
        if absent.any():
            rule = dataset.fields[field]
            issues.append(
                MappingIssue(
                    source,
                    field,
                    rule.column or "+".join(rule.concat or []) or "expr",
                    "required value missing (row quarantined)",
                    int(absent.sum()),
                    rule=f"required:{field}",
                )
            )
            errors = _flag(errors, absent, f"required:{field}")
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
