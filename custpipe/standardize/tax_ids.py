"""Tax / registration identifiers (VAT, USCC, EIN, ...), validated by check digit."""

from __future__ import annotations

import re
import unicodedata
from typing import Any

import pandas as pd
from stdnum.cn import ric, uscc
from stdnum.de import vat as de_vat
from stdnum.eu import vat as eu_vat
from stdnum.exceptions import ValidationError
from stdnum.us import ein
from stdnum.util import get_cc_module

from custpipe.standardize._util import as_text, is_missing, map_unique, map_unique_pairs
from custpipe.standardize.countries import iso2_value

_SEPARATORS_RE = re.compile(r"[\s\-./:,_()]+")
# EU VAT prefixes that differ from the ISO country code.
_VAT_PREFIX = {"GR": "EL"}
_EU = frozenset(
    {"AT", "BE", "BG", "CY", "CZ", "DE", "DK", "EE", "ES", "FI", "FR", "GR", "HR", "HU"}
    | {"IE", "IT", "LT", "LU", "LV", "MT", "NL", "PL", "PT", "RO", "SE", "SI", "SK"}
)


def _compact(text: str) -> str:
    return _SEPARATORS_RE.sub("", text).upper()


def _cn(text: str) -> tuple[str, bool]:
    for module in (uscc, ric):
        try:
            return module.validate(text), True
        except ValidationError:
            continue
    return _compact(text), False


def _de(text: str) -> tuple[str, bool]:
    compact = _compact(text)
    digits = compact[2:] if compact.startswith("DE") else compact
    if len(digits) == 9:  # USt-IdNr.
        try:
            return "DE" + de_vat.validate(digits), True
        except ValidationError:
            return "DE" + digits, False
    # a Steuernummer has no check digit: it cannot be verified, so it is not valid (no
    # definite link, no survivorship preference); kept in its compact form
    return compact, False


def _us(text: str) -> tuple[str, bool]:
    try:
        return ein.validate(text), True
    except ValidationError:
        return _compact(text), False


def _eu(text: str, iso2: str) -> tuple[str, bool]:
    compact = _compact(text)
    prefix = _VAT_PREFIX.get(iso2, iso2)
    if not compact[:2].isalpha():
        compact = prefix + compact
    elif compact[:2] != prefix:  # another member state's VAT number is not valid here
        return compact, False
    try:
        return eu_vat.validate(compact), True
    except ValidationError:
        return compact, False


def _other(text: str, iso2: str | None) -> tuple[str, bool | None]:
    compact = _compact(text)
    if iso2 is None:  # maybe it carries its own EU prefix
        if compact[:2].isalpha():
            try:
                return eu_vat.validate(compact), True
            except ValidationError:
                pass
        return compact, None
    module = get_cc_module(iso2.lower(), "vat")
    if module is None:
        return compact, None
    try:
        return module.validate(text), True
    except ValidationError:
        return compact, False


def tax_id_value(value: Any, country: Any) -> tuple[str | None, bool | None]:
    """(compact tax id, valid) for one value and an ISO-2 country code (or None).

    The one tax-ID verdict of custpipe: the staged flag `tax_id_valid` and the GX rule
    `tax_id_check_digit` (:func:`custpipe.quality.expectations.tax_id_check`) both use it.
    Valid = passes the country's check digit; None = no validator known for the country.
    """
    if is_missing(value):
        return None, None
    text = unicodedata.normalize("NFKC", as_text(value)).strip()
    if not _compact(text):
        return None, None
    iso2 = None if is_missing(country) else str(country)
    # each validator catches only python-stdnum's ValidationError family: anything else is a
    # bug, and must fail loudly rather than mark the ID invalid
    if iso2 == "CN":
        return _cn(text)
    if iso2 == "DE":
        return _de(text)
    if iso2 == "US":
        return _us(text)
    if iso2 in _EU:
        return _eu(text, iso2)
    return _other(text, iso2)


def normalize_tax_id(
    tax: pd.Series, country: pd.Series | str | None
) -> tuple[pd.Series, pd.Series]:
    """(compact canonical tax id, valid) per row, by the row's country.

    CN: USCC (统一社会信用代码) or resident ID; DE: USt-IdNr. (output 'DE' + 9 digits; a
    Steuernummer cannot be verified: no check digit, so not valid); US: EIN; other EU: VAT
    with country prefix; other countries: their python-stdnum VAT module if any. Unknown country: EU
    VAT if the value carries a prefix, else (compacted, None). Missing -> (None, None).
    """
    if isinstance(country, pd.Series):
        if not country.index.equals(tax.index):
            country = country.reindex(tax.index)
        country = map_unique(country, iso2_value)
    else:
        country = None if country is None else iso2_value(country)
    return map_unique_pairs(tax, country, tax_id_value)
