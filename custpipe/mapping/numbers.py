"""Amounts and quantities under a declared number format (decimal and group separators).

One rule, two implementations: :func:`number_value` for one value, and an Arrow (RE2)
version of the same pattern for whole columns; :func:`parse_numbers` picks the fast one.
"""

from __future__ import annotations

import math
import re
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from custpipe.config import NumberFormat
from custpipe.mapping.issues import MappingIssue

NUMBER_FIELDS = ("amount", "line_amount", "quantity")
# Larger amounts or quantities are not business values but broken exports (or overflow bait).
MAX_ABS_NUMBER = 1e15


def number_rule(field: str) -> str:
    """The quarantine rule of a field's unparseable values (amounts apart from quantities)."""
    kind = "number" if field == "quantity" else "amount"
    return f"{kind}_unparseable:{field}"


@lru_cache(maxsize=16)
def number_pattern(fmt: NumberFormat) -> re.Pattern:
    """The full-match pattern of a number written under `fmt` (also valid RE2)."""
    dec, grp = re.escape(fmt.decimal), re.escape(fmt.group)
    whole = rf"(?:[0-9]{{1,3}}(?:{grp}[0-9]{{3}})+|[0-9]+)" if fmt.group else r"[0-9]+"
    return re.compile(
        rf"(?P<sign>[+-])?(?P<int>{whole})?(?:{dec}(?P<frac>[0-9]+))?"
        r"(?:[eE](?P<exp>[+-]?[0-9]+))?(?P<trail>-)?"
    )


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
        match = number_pattern(fmt).fullmatch(text)
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
        shape = pc.match_substring_regex(text, "^" + number_pattern(fmt).pattern + "$")
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


def parse_numbers(
    values: pd.Series, fmt: NumberFormat, source: str, field: str, column: str, issues: list
) -> tuple[pd.Series, pd.Series]:
    """(floats, rows that are not a number under `fmt`): vectorised for numeric columns and
    for columns of text, else once per distinct value (the same rules as :func:`number_value`).
    The rows are reported under :func:`number_rule`."""
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
                rule=number_rule(field),
            )
        )
    return pd.to_numeric(out, errors="coerce"), bad
