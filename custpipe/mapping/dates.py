"""Dates and timestamps: parsed, naive clock times read in the source's time zone, all UTC.

A stamp with a UTC offset ('...+08:00', '...Z') is converted once, by its offset; a naive
clock time is wall-clock time in the source's zone; a date alone is a calendar date (not
shifted). Offset-bearing and naive strings are parsed apart: pandas, given both in one
column, applies the first offset it sees to the naive ones too.
"""

from __future__ import annotations

import re
from datetime import datetime
from functools import lru_cache

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from custpipe.config import FieldRule
from custpipe.mapping.issues import MappingIssue

DATE_FIELDS = ("source_updated_at", "created_at", "order_date", "birth_date")

_TIME_DIRECTIVES = ("%H", "%I", "%M", "%S", "%f", "%X", "%c", "%T", "%p")
_ISO_OFFSET_RE = r"(?:[zZ]|[+-]\d{2}(?::?\d{2})?)\s*$"
_CLOCK_RE = r"\d{1,2}:\d{2}"
_DATE_ONLY_RE = r"^\s*\d{4}-?\d{2}-?\d{2}\s*$"
#: Calendar dates: never shifted by the source's time zone, whatever time of day they carry
#: (a birth date sent as a midnight DATETIME is that day, not the evening before in UTC).
CALENDAR_DATE_FIELDS = ("birth_date", "order_date")
_EXCEL_ISO_RE = r"^\d{4}-\d{2}-\d{2}(?: \d{2}:\d{2}:\d{2}(?:\.\d{1,6})?)?$"  # readers._excel_value


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


def _naive_utc(parsed: pd.Series) -> np.ndarray:
    """datetime64[ns] values (naive, UTC) of an aware or naive parsed series."""
    if isinstance(parsed.dtype, pd.DatetimeTZDtype):
        parsed = parsed.dt.tz_convert("UTC").dt.tz_localize(None)
    return parsed.to_numpy(dtype="datetime64[ns]")


def _wall_to_utc(wall: np.ndarray, timezone: str) -> np.ndarray:
    """Naive wall-clock times in `timezone` -> naive UTC. A time that occurs twice (DST ends)
    is read as the first; one that does not occur (DST starts) is moved forward."""
    if timezone == "UTC" or not len(wall):
        return wall
    local = pd.DatetimeIndex(wall).tz_localize(
        timezone, ambiguous=np.ones(len(wall), dtype=bool), nonexistent="shift_forward"
    )
    return local.tz_convert("UTC").tz_localize(None).to_numpy(dtype="datetime64[ns]")


def _matches(arrow: pa.Array, pattern: str) -> np.ndarray:
    found = pc.fill_null(pc.match_substring_regex(arrow, pattern), False)
    return found.to_numpy(zero_copy_only=False).astype(bool)


def _parse_text(text: pd.Series, fmt: str | None, timezone: str, excel: bool) -> np.ndarray:
    """Strings -> naive UTC datetime64 (NaT where they are not dates under `fmt`/ISO 8601;
    with `excel`, the ISO 8601 form of a workbook's date cells is read too)."""
    if fmt and ("%z" in fmt or "%Z" in fmt):  # every value carries its offset
        return _naive_utc(pd.to_datetime(text, format=fmt, errors="coerce", utc=True))
    out = np.full(len(text), np.datetime64("NaT"), dtype="datetime64[ns]")
    if fmt:
        offset = np.zeros(len(text), dtype=bool)
        timed = np.full(len(text), any(d in fmt for d in _TIME_DIRECTIVES))
    else:
        arrow = pa.array(text.to_numpy(dtype=object), type=pa.string())  # RE2: fast
        offset = _matches(arrow, _ISO_OFFSET_RE)
        timed = ~_matches(arrow, _DATE_ONLY_RE) & ~offset  # '…T10', '20240115T103000' too
    if offset.any():
        aware = pd.to_datetime(text[offset], errors="coerce", utc=True, format="ISO8601")
        out[offset] = _naive_utc(aware)
    naive = ~offset
    if naive.any():  # read as UTC only to get the wall-clock value; localised below
        wall = pd.to_datetime(text[naive], errors="coerce", utc=True, format=fmt or "ISO8601")
        out[naive] = _naive_utc(wall)
    if fmt and excel:
        # a workbook's date cell arrives as ISO 8601 whatever the column's declared format
        # (that format is for dates typed as text): read exactly that form where it failed
        arrow = pa.array(text.to_numpy(dtype=object), type=pa.string())
        iso = np.isnat(out) & _matches(arrow, _EXCEL_ISO_RE)
        if iso.any():
            wall = pd.to_datetime(text[iso], errors="coerce", utc=True, format="ISO8601")
            out[iso] = _naive_utc(wall)
            timed[iso] = _matches(pa.array(text[iso].to_numpy(dtype=object)), _CLOCK_RE)
    local = timed & ~np.isnat(out)
    if local.any():
        out[local] = _wall_to_utc(out[local], timezone)
    return out


def _parse_stamps(stamps: pd.Series, timezone: str) -> np.ndarray:
    """datetime values (a SQL or Parquet reader's) -> naive UTC; naive ones are local time."""
    if isinstance(stamps.dtype, pd.DatetimeTZDtype):
        return _naive_utc(stamps)
    if pd.api.types.is_datetime64_dtype(stamps.dtype):
        return _wall_to_utc(stamps.to_numpy(dtype="datetime64[ns]"), timezone)
    # datetime objects (one Python object per row already): naive and aware ones apart
    aware = stamps.map(lambda v: getattr(v, "tzinfo", None) is not None).to_numpy(dtype=bool)
    out = np.full(len(stamps), np.datetime64("NaT"), dtype="datetime64[ns]")
    if aware.any():
        out[aware] = _naive_utc(pd.to_datetime(stamps[aware], errors="coerce", utc=True))
    if (~aware).any():
        naive = pd.to_datetime(stamps[~aware], errors="coerce").to_numpy(dtype="datetime64[ns]")
        out[~aware] = _wall_to_utc(naive, timezone)
    return out


def _kinds(values: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """(rows holding text, rows holding datetime values); the rest (dates, numbers) neither."""
    present = values.notna().to_numpy(dtype=bool)
    if pd.api.types.is_datetime64_any_dtype(values.dtype):
        return np.zeros(len(values), dtype=bool), present
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind in ("string", "empty"):
        return present, np.zeros(len(values), dtype=bool)
    if kind in ("datetime", "datetime64"):
        return np.zeros(len(values), dtype=bool), present
    is_str = values.map(lambda v: isinstance(v, str)).to_numpy(dtype=bool)
    is_stamp = values.map(lambda v: isinstance(v, datetime)).to_numpy(dtype=bool)
    return is_str, is_stamp


def parse_dates(
    values: pd.Series,
    rule: FieldRule,
    source: str,
    field: str,
    issues: list[MappingIssue],
    timezone: str = "UTC",
    excel: bool = False,
) -> pd.Series:
    """Dates of one field as naive UTC timestamps; values that are not dates become null and
    are reported (placeholders such as 00000000 apart from bad values)."""
    is_text, is_stamp = _kinds(values)
    out = np.full(len(values), np.datetime64("NaT"), dtype="datetime64[ns]")
    if is_text.any():
        text = values[is_text].astype(str)
        out[is_text] = _parse_text(text, rule.date_format, timezone, excel)
    if is_stamp.any():
        out[is_stamp] = _parse_stamps(values[is_stamp], timezone)
    rest = values.notna().to_numpy(dtype=bool) & ~is_text & ~is_stamp
    if rest.any():  # date objects and the like: calendar dates, not shifted
        out[rest] = _naive_utc(pd.to_datetime(values[rest], errors="coerce", utc=True))
    parsed = pd.Series(out, index=values.index)
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
    return parsed
