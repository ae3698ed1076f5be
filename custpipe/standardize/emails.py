"""E-mail addresses."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pandas as pd
from email_validator import SPECIAL_USE_DOMAIN_NAMES, EmailNotValidError, validate_email

from custpipe.standardize._util import as_text, is_missing, map_unique2
from custpipe.standardize.text import clean_value

_MAILTO_RE = re.compile(r"^mailto:", re.IGNORECASE)
_SPACE_RE = re.compile(r"\s+")
# Plain ASCII addresses that email-validator accepts unchanged (apart from case): checked by
# this pattern alone, because the library costs ~0.1 ms an address. Anything else, and any
# special-use domain, still goes through the library.
_SIMPLE_RE = re.compile(
    r"^(?=.{6,254}$)(?=[^@]{1,64}@)[a-z0-9_%+-]+(?:\.[a-z0-9_%+-]+)*"
    r"@(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?\.)+[a-z]{2,63}$"
)
_SPECIAL = tuple(SPECIAL_USE_DOMAIN_NAMES)


def _simple(text: str) -> str | None:
    lowered = text.lower()
    if not _SIMPLE_RE.match(lowered):
        return None
    domain = lowered.rsplit("@", 1)[1]
    if any(domain == d or domain.endswith("." + d) for d in _SPECIAL):
        return None
    return lowered


def email_value(value: Any) -> tuple[str | None, bool | None]:
    """(normalised e-mail, valid) for one scalar."""
    if is_missing(value):
        return None, None
    text = unicodedata.normalize("NFKC", as_text(value)).strip()
    text = _MAILTO_RE.sub("", text).strip().strip("<>").strip()
    if not text:
        return None, None
    cleaned = clean_value(text)
    if cleaned != text:  # control, invisible or escape characters: not an address as written
        return (_SPACE_RE.sub(" ", cleaned) if cleaned else None), False
    simple = _simple(text)
    if simple is not None:
        return simple, True
    try:
        result = validate_email(text, check_deliverability=False)
    except (EmailNotValidError, ValueError, UnicodeError):
        return _SPACE_RE.sub(" ", text), False
    return result.normalized.lower(), True


def normalize_email(s: pd.Series) -> tuple[pd.Series, pd.Series]:
    """(normalised e-mail, valid) per row.

    Valid addresses are NFKC-normalised and lower-cased entirely (local part too: the
    source systems treat addresses case-insensitively). Invalid -> (cleaned original, False);
    missing/blank -> (None, None). No DNS lookups.
    """
    return map_unique2(s, email_value)
