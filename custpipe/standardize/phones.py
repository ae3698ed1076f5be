"""Phone numbers -> E.164."""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any

import pandas as pd
import phonenumbers

from custpipe.standardize._util import as_text, is_missing, map_unique, map_unique_pairs
from custpipe.standardize.countries import iso2_value

_E164 = phonenumbers.PhoneNumberFormat.E164
_IDD_RE = re.compile(r"^\s*00\s*(?=[1-9])")  # '0086 138...' -> '+86 138...'
# Extension markers and trailing notes are left to phonenumbers; only trim obvious noise.
_NOISE_RE = re.compile(r"^(?:tel|phone|fon|telefon|mobil|mobile|电话|手机)\s*[.:：]?\s*", re.I)


_INTERNATIONAL_RE = re.compile(r"^\+[\d \-.]+$")  # '+49 30 1234567', '+86-138-1234-5678'
_NATIONAL_RE = re.compile(r"^[\d \-./()]+$")  # '030/1234567', '(212) 555-0123'
_NON_DIGIT_RE = re.compile(r"\D")
_CALLING_CODES = frozenset(phonenumbers.COUNTRY_CODE_TO_REGION_CODE)
# An extension at the end ('ext. 12', 'x12', '#12', '分机12') is the only place letters may be.
_EXTENSION_RE = re.compile(r"\s*(?:ext\.?|extension|x|#|分机|转)\s*\d+\s*$", re.I)


@functools.cache
def _national_prefix(region: str) -> str | None:
    """The region's trunk prefix ('0', '1', '' for none), or None for an unknown region."""
    meta = phonenumbers.PhoneMetadata.metadata_for_region(region)
    if meta is None:
        return None
    return meta.national_prefix or ""


def fast_valid_e164(text: str, region: str | None = None) -> str | None:
    """The E.164 form of a plainly written, valid number, without phonenumbers' parser.

    Only plain digit strings are tried; anything else, and every number that is not valid,
    returns None and takes the full path (tests prove both paths agree).
    """
    if _INTERNATIONAL_RE.match(text):
        digits = _NON_DIGIT_RE.sub("", text)
        code = next((digits[:n] for n in (1, 2, 3) if int(digits[:n] or 0) in _CALLING_CODES), None)
        if code is None:
            return None
        national = digits[len(code) :]
    elif region and _NATIONAL_RE.match(text):
        prefix = _national_prefix(region)
        code = str(phonenumbers.country_code_for_region(region))
        if prefix is None or code == "0":
            return None
        national = _NON_DIGIT_RE.sub("", text)
        if prefix and national.startswith(prefix):
            national = national[len(prefix) :]
    else:
        return None
    if not national or national[0] == "0" or len(national) > 17:
        return None
    number = phonenumbers.PhoneNumber(country_code=int(code), national_number=int(national))
    return f"+{code}{national}" if phonenumbers.is_valid_number(number) else None


def _parse(text: str, region: str | None) -> phonenumbers.PhoneNumber | None:
    try:
        return phonenumbers.parse(text, region)
    except phonenumbers.NumberParseException:
        return None


def e164_value(value: Any, country: Any) -> tuple[str | None, bool | None]:
    """(E.164, valid) for one phone number and a country hint (ISO code or name)."""
    if is_missing(value):
        return None, None
    text = unicodedata.normalize("NFKC", as_text(value)).strip()
    text = _NOISE_RE.sub("", text)
    if not text:
        return None, None
    if any(ch.isalpha() for ch in _EXTENSION_RE.sub("", text)):
        return None, False  # vanity letters ('+49 30 CALL-NOW'): not guessed into digits
    region = None if is_missing(country) else iso2_value(country)
    fast = fast_valid_e164(text, region)
    if fast is not None:
        return fast, True
    candidates = [text]
    if _IDD_RE.match(text):  # international prefix 00 is not the IDD of every region (US: 011)
        candidates.append("+" + _IDD_RE.sub("", text))
    fallback: phonenumbers.PhoneNumber | None = None
    for candidate in candidates:
        number = _parse(candidate, region)
        if number is None:
            continue
        if phonenumbers.is_valid_number(number):
            return phonenumbers.format_number(number, _E164), True
        reason = phonenumbers.is_possible_number_with_reason(number)
        if fallback is None and reason == phonenumbers.ValidationResult.IS_POSSIBLE:
            fallback = number
    if fallback is None:
        return None, False
    return phonenumbers.format_number(fallback, _E164), False


def to_e164(phone: pd.Series, country: pd.Series | str | None) -> tuple[pd.Series, pd.Series]:
    """Parse phone numbers with the row's country as default region.

    Returns (E.164 string, valid flag). Numbers of possible length that fail validation
    keep their E.164 rendering with valid=False; unparseable or impossible -> (None, False);
    missing -> (None, None).
    ``country`` may be ISO codes or names (resolved with :func:`to_iso2`) or a scalar.
    """
    if isinstance(country, pd.Series):
        if not country.index.equals(phone.index):
            country = country.reindex(phone.index)
        country = map_unique(country, iso2_value)
    else:
        country = None if country is None else iso2_value(country)
    return map_unique_pairs(phone, country, e164_value)
