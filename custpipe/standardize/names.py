"""Company and person names: display cleaning, legal forms, matching keys."""

from __future__ import annotations

import re
from typing import Any

import pandas as pd
import zhconv

from custpipe.standardize._util import map_unique
from custpipe.standardize.text import clean_value, fold_cleaned, fold_value

# Legal forms as data: (canonical code, display spelling, variants). Variants are matched
# at the end of a name, case-insensitively, with any punctuation/spacing between their
# alphanumeric chunks ('G.m.b.H.' == 'GmbH' == 'G m b H'), umlauts also spelt 'ae/oe/ue',
# Chinese variants also in traditional script. Longer suffixes win over shorter ones.
LEGAL_FORMS: tuple[tuple[str, str, tuple[str, ...]], ...] = (
    # German
    ("GmbH & Co. KG", "GmbH & Co. KG", ("GmbH & Co. KG", "GmbH u. Co. KG", "GmbH und Co. KG")),
    ("GmbH", "GmbH", ("GmbH", "G.m.b.H.", "Ges.m.b.H.", "Gesellschaft mit beschränkter Haftung")),
    ("UG", "UG (haftungsbeschränkt)", ("UG (haftungsbeschränkt)", "UG (haftungsbeschr.)", "UG")),
    ("AG", "AG", ("AG", "Aktiengesellschaft")),
    ("KG", "KG", ("KG", "Kommanditgesellschaft")),
    ("OHG", "OHG", ("OHG", "offene Handelsgesellschaft")),
    ("e.K.", "e.K.", ("e.K.", "e.Kfm.", "e.Kfr.", "eingetragener Kaufmann")),
    ("e.V.", "e.V.", ("e.V.", "eingetragener Verein")),
    # English
    ("Co., Ltd.", "Co., Ltd.", ("Co., Ltd.", "Company Limited")),
    ("Inc", "Inc.", ("Inc.", "Incorporated")),
    ("LLC", "LLC", ("LLC", "L.L.C.", "Limited Liability Company")),
    ("LLP", "LLP", ("LLP", "L.L.P.", "Limited Liability Partnership")),
    ("PLC", "PLC", ("PLC", "P.L.C.", "Public Limited Company")),
    ("Ltd", "Ltd.", ("Ltd.", "Limited")),
    ("Corp", "Corp.", ("Corp.", "Corporation")),
    ("Co", "Co.", ("Co.", "Company")),
    # Chinese (simplified; traditional spellings are derived)
    ("股份有限公司", "股份有限公司", ("股份有限公司",)),
    ("有限责任公司", "有限责任公司", ("有限责任公司",)),
    ("有限公司", "有限公司", ("有限公司",)),
    ("股份公司", "股份公司", ("股份公司",)),
    ("公司", "公司", ("公司",)),
)

# Matching runs on the reversed name with an anchored regex (re.match at position 0),
# which is much cheaper than searching for a suffix at every position.
_UMLAUT_ALTS_REV = {"ä": "(?:ä|ea)", "ö": "(?:ö|eo)", "ü": "(?:ü|eu)", "ß": "(?:ß|ss)"}
_MAX_STRIPS = 3


def _latin_pattern_rev(variant: str) -> str:
    chunks = re.findall(r"[^\W_]+", variant.casefold())
    parts = [
        "".join(_UMLAUT_ALTS_REV.get(ch, re.escape(ch)) for ch in reversed(chunk))
        for chunk in reversed(chunks)
    ]
    # must start at a word boundary so that e.g. 'Verlag' does not lose 'ag'
    return r"[\W_]*".join(parts) + r"(?![^\W_])"


def _cjk_pattern_rev(variant: str) -> str:
    spellings = {variant}
    for locale in ("zh-hant", "zh-tw", "zh-hk"):
        spellings.add(zhconv.convert(variant, locale))
    ordered = sorted(spellings, key=len, reverse=True)
    return "(?:" + "|".join(re.escape(v[::-1]) for v in ordered) + ")"


def _build() -> tuple[re.Pattern[str], dict[str, tuple[str, str]]]:
    entries: list[tuple[str, str, str, str, int]] = []  # (group, pattern, code, display, len)
    for code, display, variants in LEGAL_FORMS:
        for variant in variants:
            is_cjk = not re.search(r"[A-Za-z]", variant)
            pattern = _cjk_pattern_rev(variant) if is_cjk else _latin_pattern_rev(variant)
            entries.append((f"v{len(entries)}", pattern, code, display, len(variant)))
    # Longest variants first so 'GmbH & Co. KG' wins over 'KG'.
    entries.sort(key=lambda e: e[4], reverse=True)
    alternation = "|".join(f"(?P<{g}>{p})" for g, p, _, _, _ in entries)
    regex = re.compile(rf"[\W_]*(?:{alternation})", re.IGNORECASE)
    return regex, {g: (code, display) for g, _, code, display, _ in entries}


_SUFFIX_REV_RE, _GROUPS = _build()


def _split_legal_form(text: str) -> tuple[str, str, str] | None:
    """Return (name part, canonical code, display) for a cleaned name ending in a legal form."""
    match = _SUFFIX_REV_RE.match(text[::-1])
    if match is None:
        return None
    head = text[: len(text) - match.end()]
    if not fold_cleaned(head):  # the whole name is a legal form: keep it as the name
        return None
    code, display = _GROUPS[match.lastgroup or ""]
    return head, code, display


def _company_key(value: Any) -> str | None:
    text = clean_value(value)
    if text is None:
        return None
    for _ in range(_MAX_STRIPS):
        split = _split_legal_form(text)
        if split is None:
            break
        text = split[0]
    return fold_cleaned(text) or None


def _legal_form(value: Any) -> str | None:
    text = clean_value(value)
    if text is None:
        return None
    split = _split_legal_form(text)
    return None if split is None else split[1]


def _clean_name(value: Any) -> str | None:
    text = clean_value(value)
    if text is None:
        return None
    split = _split_legal_form(text)
    if split is None:
        return text
    head, _, display = split
    head = head.rstrip()
    if not head:
        return display
    if display[0].isascii():  # Latin legal forms are separated by a space ('Acme, Inc.')
        return f"{head} {display}"
    return f"{head}{display}"


def company_name_key(s: pd.Series) -> pd.Series:
    """Matching key for company names: legal forms at the end removed, then :func:`fold_key`."""
    return map_unique(s, _company_key)


def legal_form(s: pd.Series) -> pd.Series:
    """Canonical legal form ending a company name ('GmbH', 'Inc', '有限公司', ...) or None."""
    return map_unique(s, _legal_form)


def clean_name(s: pd.Series) -> pd.Series:
    """Display form: clean_text with the trailing legal form in its canonical spelling.

    Only the legal form is rewritten ('G.m.b.H.' -> 'GmbH', 'Incorporated' -> 'Inc.',
    '有限責任公司' -> '有限责任公司'); the rest of the name keeps its case and script.
    """
    return map_unique(s, _clean_name)


def person_name_key(given: pd.Series, family: pd.Series) -> pd.Series:
    """Matching key 'family|given' from folded parts; None when both parts are missing."""
    family = family.reindex(given.index) if not family.index.equals(given.index) else family
    fam = map_unique(family, fold_value)
    giv = map_unique(given, fold_value)
    both_missing = fam.isna() & giv.isna()
    key = fam.fillna("") + "|" + giv.fillna("")
    return key.astype(object).where(~both_missing, None)
