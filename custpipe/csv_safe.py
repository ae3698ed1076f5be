"""Values a spreadsheet would run as a formula, and escaping them in every CSV custpipe writes.

OWASP "CSV injection": a cell that starts with ``=``, ``+``, ``-``, ``@``, a tab or a
carriage return (or their full-width forms, which some spreadsheet locales accept) is read
as a formula by Excel, LibreOffice and Google Sheets. Such a text cell is written with a
leading apostrophe (``'=HYPERLINK(...)``), which spreadsheets show as text. Plain numbers
(``-12.5``) and E.164 phone numbers (``+4930...``) start the same way but are no formula:
they are left as they are.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

FORMULA_TRIGGERS = ("=", "+", "-", "@", "\t", "\r", "＝", "＋", "－", "＠")
# a signed number (also E.164: '+' and digits) is data, not a formula
_PLAIN_NUMBER = re.compile(r"[+-]?\d+(?:[.,]\d+)?(?:[eE][+-]?\d+)?")


def is_formula_payload(value: object) -> bool:
    """True if `value` is text that a spreadsheet would evaluate as a formula."""
    if not isinstance(value, str) or not value.startswith(FORMULA_TRIGGERS):
        return False
    return _PLAIN_NUMBER.fullmatch(value) is None


def escape_cell(value: object) -> object:
    """The value with a leading apostrophe if it is a formula payload, else unchanged."""
    return "'" + value if is_formula_payload(value) else value  # type: ignore[operator]


def safe_for_spreadsheet(frame: pd.DataFrame) -> pd.DataFrame:
    """A copy of `frame` whose text cells cannot run as spreadsheet formulas."""
    out = frame.copy()
    for column in out.columns:
        if out[column].dtype == object or pd.api.types.is_string_dtype(out[column]):
            out[column] = out[column].map(escape_cell)
    return out


def write_csv(frame: pd.DataFrame, path: Path) -> Path:
    """Write `frame` as UTF-8 CSV (no index) with formula payloads escaped; return `path`.

    Lines end in CRLF (RFC 4180), so a value holding a bare CR or LF is quoted and stays one
    cell instead of breaking the row.
    """
    safe_for_spreadsheet(frame).to_csv(path, index=False, encoding="utf-8", lineterminator="\r\n")
    return Path(path)
