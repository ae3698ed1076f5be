"""Postal codes."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd

from custpipe.standardize._util import is_missing, map_unique, map_unique_pairs
from custpipe.standardize.countries import iso2_value
from custpipe.standardize.text import clean_value

# Validity patterns per ISO-2 country (applied to the normalised code); others: non-empty.
POSTCODE_PATTERNS: dict[str, str] = {
    "CN": r"\d{6}",
    "DE": r"\d{5}",
    "US": r"\d{5}(?:-\d{4})?",
    "AT": r"\d{4}",
    "CH": r"\d{4}",
    "FR": r"\d{5}",
    "NL": r"\d{4} [A-Z]{2}",
    "GB": r"[A-Z]{1,2}\d[A-Z\d]? \d[A-Z]{2}",
}
# Numeric codes that can start with 0 and lose it when stored as numbers:
# country -> (full width, shortest input that gets padded). DE starts at 01001, US at 00501.
_ZERO_PAD = {"DE": (5, 4), "US": (5, 3), "FR": (5, 4)}
_COMPILED = {cc: re.compile(p) for cc, p in POSTCODE_PATTERNS.items()}
_COUNTRY_PREFIX_RE = re.compile(r"^(?:D|DE|A|AT|CH|F|FR|NL)\s*-\s*(?=\d)")


def postcode_value(value: Any, country: Any) -> tuple[str | None, bool | None]:
    """(normalised postcode, valid) for one value and an ISO-2 country code (or None)."""
    if is_missing(value):
        return None, None
    text = (clean_value(value) or "").upper()  # NFKC, no control/escape characters
    if not text:
        return None, None
    iso2 = None if is_missing(country) else str(country)
    text = _COUNTRY_PREFIX_RE.sub("", text)  # 'D-01067' -> '01067'
    if iso2 == "US":
        digits = re.sub(r"[\s\-]", "", text)
        if digits.isdigit() and len(digits) == 9:
            text = f"{digits[:5]}-{digits[5:]}"
        elif re.fullmatch(r"\d{3,4}-\d{4}", text):  # ZIP+4 that lost leading zeros
            head, tail = text.split("-")
            text = f"{head.zfill(5)}-{tail}"
    elif iso2 == "NL":
        match = re.fullmatch(r"(\d{4}) ?([A-Z]{2})", text)
        if match:
            text = f"{match[1]} {match[2]}"
    elif iso2 == "GB":
        compact = text.replace(" ", "")
        if 5 <= len(compact) <= 7:
            text = f"{compact[:-3]} {compact[-3:]}"
    width, shortest = _ZERO_PAD.get(iso2 or "", (0, 0))
    if width and text.isdigit() and shortest <= len(text) < width:
        text = text.zfill(width)
    pattern = _COMPILED.get(iso2 or "")
    valid = True if pattern is None else bool(pattern.fullmatch(text))
    return text, valid


def normalize_postcode(
    s: pd.Series, country: pd.Series | str | None
) -> tuple[pd.Series, pd.Series]:
    """(normalised postcode, valid) per row.

    NFKC, upper-case, whitespace collapsed, country prefixes like 'D-' dropped, leading
    zeros restored for numeric codes that lost them (DE '1067' -> '01067', US '501' ->
    '00501', FR). Valid by country pattern (CN 6 digits, DE 5, US 5 or 5-4, ...); other or unknown
    countries: any non-empty value. Missing -> (None, None).
    """
    if isinstance(country, pd.Series):
        if not country.index.equals(s.index):
            country = country.reindex(s.index)
        country = map_unique(country, iso2_value)
    else:
        country = None if country is None else iso2_value(country)
    return map_unique_pairs(s, country, postcode_value)
