"""Apply a dataset's declarative field map to raw source rows.

Problems are never silently nulled: every unmapped code, unparseable date or missing
required value is returned as a `MappingIssue` (source, field, column, count), and the rows
it concerns are flagged in the `mapping_errors` column so the quality stage can quarantine
them with their reasons. A dataset in strict mode (`on_unmapped_code: fail`) raises instead.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from custpipe.config import DatasetConfig, FieldRule, NumberFormat
from custpipe.mapping.sql_expr import check_expression, sandbox, wrap
from custpipe.standardize import legal_form
from custpipe.standardize.currencies import ISO_4217

DATE_FIELDS = ("source_updated_at", "created_at", "order_date", "birth_date")
NUMBER_FIELDS = ("amount", "line_amount", "quantity")
# Larger amounts or quantities are not business values but broken exports (or overflow bait).
MAX_ABS_NUMBER = 1e15


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


_TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%f", "%X", "%c", "%T", "%p")
_ISO_OFFSET_RE = r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)\s*$"
_CLOCK_RE = r"\d{1,2}:\d{2}"


def _naive_clock_times(values: pd.Series, rule: FieldRule) -> pd.Series:
    """Rows holding a time of day without a UTC offset (dates alone are calendar dates)."""
    fmt = rule.date_format
    if fmt and ("%z" in fmt or "%Z" in fmt):
        return pd.Series(False, index=values.index)
    text = values.map(lambda v: v if isinstance(v, str) else None)
    is_str = text.notna()
    if fmt:
        timed = is_str & any(d in fmt for d in _TIME_DIRECTIVES)
    else:
        timed = is_str & text.str.contains(_CLOCK_RE, na=False)
        timed &= ~text.str.contains(_ISO_OFFSET_RE, na=False)
    others = values.map(  # datetime objects from a SQL or Parquet reader: naive ones
        lambda v: isinstance(v, datetime) and v.tzinfo is None
    )
    return timed | (~is_str & others.astype(bool))


def _localise(parsed: pd.Series, values: pd.Series, rule: FieldRule, timezone: str) -> pd.Series:
    """Read naive clock times as wall-clock time in `timezone`; everything ends in UTC."""
    if timezone == "UTC":
        return parsed
    naive = _naive_clock_times(values, rule) & parsed.notna()
    if not naive.any():
        return parsed
    wall = parsed[naive].dt.tz_localize(None)
    # a wall-clock time that occurs twice (DST ends) is read as the first, one that does not
    # occur (DST starts) is moved forward
    local = wall.dt.tz_localize(
        timezone, ambiguous=np.ones(len(wall), dtype=bool), nonexistent="shift_forward"
    )
    out = parsed.copy()
    out[naive] = local.dt.tz_convert("UTC")
    return out


@lru_cache(maxsize=4096)
def _date_kind(value: str, fmt: str | None) -> str:
    """Why an unparsed date failed: 'placeholder', 'range' (real but beyond pandas) or 'bad'."""
    digits = re.sub(r"\D", "", value)
    if digits and set(digits) == {"0"}:
        return "placeholder"  # SAP's 00000000, 00.00.0000
    try:
        parsed = datetime.strptime(value, fmt) if fmt else datetime.fromisoformat(value)
    except ValueError:
        return "bad"
    return "placeholder" if parsed.year in (1, 9999) else "range"


_DATE_PROBLEMS = {
    "placeholder": "placeholder date meaning 'no date' (00000000, 0001-01-01, 9999-12-31; "
    "set to null)",
    "range": "date outside the supported range 1677-09-22 .. 2262-04-11 (set to null)",
}


def _dates(
    values: pd.Series,
    rule: FieldRule,
    source: str,
    field: str,
    issues: list[MappingIssue],
    timezone: str = "UTC",
) -> pd.Series:
    if rule.date_format:
        parsed = pd.to_datetime(values, format=rule.date_format, errors="coerce", utc=True)
    else:
        parsed = pd.to_datetime(values, errors="coerce", utc=True, format="ISO8601")
    parsed = _localise(parsed, values, rule, timezone)
    bad = values.notna() & parsed.isna()
    if bad.any():
        kinds = values[bad].map(
            lambda v: _date_kind(v.strip(), rule.date_format) if isinstance(v, str) else "bad"
        )
        for kind, count in kinds.value_counts().items():
            default = f"value not a date in format {rule.date_format or 'ISO 8601'} (set to null)"
            issues.append(
                MappingIssue(
                    source, field, rule.column or "?", _DATE_PROBLEMS.get(kind, default), int(count)
                )
            )
    return parsed.dt.tz_localize(None)


def _number_pattern(fmt: NumberFormat) -> re.Pattern:
    dec, grp = re.escape(fmt.decimal), re.escape(fmt.group)
    whole = rf"(?:[0-9]{{1,3}}(?:{grp}[0-9]{{3}})+|[0-9]+)" if fmt.group else r"[0-9]+"
    return re.compile(
        rf"(?P<sign>[+-])?(?P<int>{whole})?(?:{dec}(?P<frac>[0-9]+))?"
        r"(?:[eE](?P<exp>[+-]?[0-9]+))?(?P<trail>-)?"
    )


@lru_cache(maxsize=16)
def _pattern(fmt: NumberFormat) -> re.Pattern:
    return _number_pattern(fmt)


def number_value(value, fmt: NumberFormat) -> float | None:
    """One amount or quantity under `fmt`: a finite float, None if missing; ValueError if the
    value is not a number under the format, not finite, or beyond ±1e15. Negative numbers
    (credit notes, returns) are kept; a trailing minus (SAP: '12.50-') is a sign."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, bool):
        raise ValueError("a boolean is not a number")
    if isinstance(value, str):
        text = value.strip()
        if fmt.group == " ":
            text = text.replace("\u00a0", " ").replace("\u202f", " ")
        if not text:
            return None
        match = _pattern(fmt).fullmatch(text)
        if not match or not (match["int"] or match["frac"]) or (match["sign"] and match["trail"]):
            raise ValueError("not a number under the format")
        whole = (match["int"] or "0").replace(fmt.group, "") if fmt.group else match["int"] or "0"
        literal = f"{whole}.{match['frac'] or '0'}e{match['exp'] or '0'}"
        number = float(literal)
        if match["sign"] == "-" or match["trail"]:
            number = -number
    else:
        try:
            number = float(value)
        except (TypeError, ValueError, OverflowError) as exc:
            raise ValueError("not a number") from exc
    if not math.isfinite(number) or abs(number) > MAX_ABS_NUMBER:
        raise ValueError("not finite or beyond the bound")
    return number


def _parse_number(value, fmt: NumberFormat) -> tuple[float | None, bool]:
    try:
        return number_value(value, fmt), False
    except ValueError:
        return None, True


def _numbers_vectorised(values: pd.Series, fmt: NumberFormat) -> tuple | None:
    """:func:`number_value` over a whole numeric or all-text column (Arrow compute, RE2);
    None for a column of mixed types."""
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        numbers = pd.to_numeric(values, errors="coerce").astype(float).to_numpy()
        given = ~np.isnan(numbers)
    else:
        try:
            arr = pa.array(values.to_numpy(dtype=object), type=pa.string(), from_pandas=True)
        except (pa.ArrowInvalid, pa.ArrowTypeError):
            return None
        text = pc.utf8_trim_whitespace(arr)
        if fmt.group == " ":
            text = pc.replace_substring_regex(text, "[\u00a0\u202f]", " ")
        given = pc.fill_null(pc.greater(pc.utf8_length(text), 0), False)
        shape = pc.match_substring_regex(text, "^" + _pattern(fmt).pattern + "$")
        shape = pc.and_(shape, pc.match_substring_regex(text, "[0-9]"))
        shape = pc.and_not(shape, pc.match_substring_regex(text, "^[+-].*-$"))
        shape = pc.fill_null(shape, False)
        trailing = pc.fill_null(pc.ends_with(text, "-"), False)
        plain = pc.utf8_rtrim(text, "-")
        if fmt.group:
            plain = pc.replace_substring(plain, fmt.group, "")
        if fmt.decimal != ".":
            plain = pc.replace_substring(plain, fmt.decimal, ".")
        plain = pc.if_else(shape, plain, pa.scalar(None, pa.string()))
        numbers = pc.cast(plain, pa.float64()).to_numpy(zero_copy_only=False)
        numbers = np.where(trailing.to_numpy(zero_copy_only=False), -numbers, numbers)
        given = given.to_numpy(zero_copy_only=False)
    finite = np.isfinite(numbers) & (np.abs(numbers) <= MAX_ABS_NUMBER)
    bad = given & ~finite
    out = pd.Series(np.where(bad, np.nan, numbers), index=values.index, dtype=float)
    return out, pd.Series(bad, index=values.index)


def _numbers(
    values: pd.Series, fmt: NumberFormat, source: str, field: str, column: str, issues: list
) -> tuple[pd.Series, pd.Series]:
    """(floats, rows that are not a number under `fmt`): vectorised for numeric columns and
    for columns of text, else once per distinct value (the same rules as :func:`number_value`)."""
    fast = _numbers_vectorised(values, fmt)
    if fast is not None:
        out, bad = fast
    else:
        codes, uniques = pd.factorize(values, use_na_sentinel=True)
        results = [_parse_number(v, fmt) for v in uniques.tolist()]
        numbers = np.array([r[0] for r in results] + [None], dtype=object)[codes]
        flags = np.array([r[1] for r in results] + [False], dtype=bool)[codes]
        out = pd.Series(numbers, index=values.index, dtype=object)
        bad = pd.Series(flags, index=values.index)
    if bad.any():
        rule = f"amount_unparseable:{field}"
        issues.append(
            MappingIssue(
                source,
                field,
                column,
                f"not a number under number_format (decimal {fmt.decimal!r}, group "
                f"{fmt.group!r}), not finite, or beyond ±1e15 (set to null, row flagged): "
                "declare how the source writes numbers in the dataset's or field's "
                "number_format, or correct the value at the source",
                int(bad.sum()),
                rule=rule,
            )
        )
    return pd.to_numeric(out, errors="coerce"), bad


def _currencies(
    values: pd.Series, source: str, column: str, issues: list[MappingIssue]
) -> tuple[pd.Series, pd.Series]:
    """(upper-cased codes, rows whose code is not an ISO 4217 currency)."""
    codes = values.map(lambda v: str(v).strip().upper() if v is not None else None)
    unknown = codes.notna() & ~codes.isin(ISO_4217)
    if unknown.any():
        counts = codes[unknown].value_counts()
        issues.append(
            MappingIssue(
                source,
                "currency",
                column,
                "currency code not in ISO 4217 (kept, row flagged): map the source's code "
                "to ISO 4217 with a crosswalk",
                int(unknown.sum()),
                tuple(str(c)[:8] for c in counts.index[:5]),
                rule="currency_unknown:currency",
            )
        )
    return codes, unknown


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
        kinds = forms.map(lambda f: "company" if f is not None else "person")
        return kinds.where(values.map(_looks_like_a_name), None)
    raise ValueError(f"unknown transform {name!r}")


# A name starts with no formula trigger and holds no SQL / markup punctuation.
_NOT_A_NAME_RE = re.compile(r"^[=+\-@\t\r]|[;<>{}\[\]|\\`]|--|/\*")


def _looks_like_a_name(value) -> bool:
    """True for text with a letter and without formula, SQL or markup syntax.

    `infer_party_type` returns None (unknown) for anything else — '12345', '---',
    "'); DROP TABLE x;--", '=HYPERLINK(...)' — instead of calling it a person; the row is
    flagged `party_type_unknown:party_type` and quarantined.
    """
    if not isinstance(value, str):
        return False
    return any(ch.isalpha() for ch in value) and not _NOT_A_NAME_RE.search(value.strip())


def _flag(errors: pd.Series, mask: pd.Series, rule: str) -> pd.Series:
    """Append `rule` to the `;`-separated error list of the rows in `mask`."""
    return errors.where(~mask, errors.map(lambda e: f"{e};{rule}" if isinstance(e, str) else rule))


def _duplicate_ids(ids: pd.Series) -> pd.Series:
    """Rows whose id, trimmed of spaces and leading zeros, is another row's too."""
    key = ids.map(lambda v: (str(v).lstrip("0") or "0") if v is not None else None)
    return key.notna() & key.duplicated(keep=False)


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
    duplicated = _duplicate_ids(out["source_id"])
    if duplicated.any():  # every copy is kept (ids as given, trimmed) and held back
        issues.append(
            MappingIssue(
                source,
                "source_id",
                dataset.id,
                "record id given more than once (ids equal once spaces and leading zeros are "
                "trimmed; every copy kept, rows quarantined): correct the ids at the source",
                int(duplicated.sum()),
                rule="duplicate_id:source_id",
            )
        )
        errors = _flag(errors, duplicated, "duplicate_id:source_id")
    for field, rule in dataset.fields.items():
        values = _input(raw, rule, source, field)
        if rule.split is not None:
            values = _split(values, rule.split, rule.part)
        before = values
        if rule.transform:
            values = _transform(values, rule.transform)
        if rule.crosswalk is not None:
            values, unmapped = _crosswalk(values, rule, source, field, issues)
            errors = _flag(errors, unmapped, f"crosswalk_covered:{field}")
        if rule.date_format or field in DATE_FIELDS:
            values = _dates(values, rule, source, field, issues, timezone)
        if rule.default is not None:
            values = values.where(values.notna(), rule.default)
        column = rule.column or "+".join(rule.concat or []) or "expr"
        if field in NUMBER_FIELDS:
            fmt = rule.number_format or dataset.number_format
            values, bad = _numbers(values, fmt, source, field, column, issues)
            errors = _flag(errors, bad, f"amount_unparseable:{field}")
        if field == "currency":
            values, unknown = _currencies(values, source, column, issues)
            errors = _flag(errors, unknown, "currency_unknown:currency")
        if rule.transform == "infer_party_type":
            undecided = values.isna() & before.notna()
            if undecided.any():
                issues.append(
                    MappingIssue(
                        source,
                        field,
                        column,
                        "no party type inferred: the name has no letters or holds formula, "
                        "SQL or markup syntax (row quarantined)",
                        int(undecided.sum()),
                        rule="party_type_unknown:party_type",
                    )
                )
                errors = _flag(errors, undecided, "party_type_unknown:party_type")
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
