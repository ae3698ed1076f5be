"""Reusable builders for quality tests (importable as ``custpipe_tests.quality.helpers``)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
from stdnum import luhn
from stdnum.at import uid
from stdnum.ch import uid as ch_uid
from stdnum.cn import uscc
from stdnum.gb import vat as gb_vat
from stdnum.iso7064 import mod_11_10
from stdnum.nl import bsn

from custpipe.mapping.canonical import STAGED_CUSTOMER_COLUMNS

REPO_ROOT = Path(__file__).resolve().parents[2]
EXPECTATIONS_DIR = REPO_ROOT / "expectations"


_COUNTRIES = np.array(["DE", "FR", "AT", "CH", "NL", "US", "GB"], dtype=object)
_SEGMENTS = np.array(["A", "B", "C"], dtype=object)


def valid_tax_id(country: str, n: int) -> str:
    """A tax ID for ``country`` that passes its check digit, distinct per ``n`` (< 10**7).

    Built with python-stdnum's check-digit helpers: DE USt-IdNr., FR/AT/NL EU VAT, US EIN,
    CN USCC, CH UID (with " MWST"), GB VAT. Other countries (no check digit known to the
    suites) get a plain number.
    """
    base = f"{n % 10_000_000:07d}"
    if country == "DE":
        digits = "1" + base
        return "DE" + digits + mod_11_10.calc_check_digit(digits)
    if country == "FR":
        siren = "1" + base
        siren += luhn.calc_check_digit(siren)
        return f"FR{int(siren + '12') % 97:02d}{siren}"
    if country == "AT":
        return "ATU" + base + uid.calc_check_digit("U" + base)
    if country == "NL":
        for lead in "123456789":
            body = lead + base
            check = sum((9 - i) * int(d) for i, d in enumerate(body)) % 11
            if check < 10 and bsn.is_valid(body + str(check)):
                return "NL" + body + str(check) + "B01"
        raise AssertionError(n)  # pragma: no cover
    if country == "US":
        return "12-" + base
    if country == "CN":
        body = "91110000" + "MA" + base
        return body + uscc.calc_check_digit(body)
    if country == "CH":  # UID with the VAT suffix (a body whose check would be 10 is skipped)
        for lead in "123456789":
            check = ch_uid.calc_check_digit(lead + base)
            if len(check) == 1:
                return "CHE" + lead + base + check + " MWST"
        raise AssertionError(n)  # pragma: no cover
    if country == "GB":
        for check in range(100):
            number = "GB" + base + f"{check:02d}"
            if gb_vat.is_valid(number):
                return number
        raise AssertionError(n)  # pragma: no cover
    return country + "9" + base + "0"


def source_id(i: int, source_system: str = "erp") -> str:
    """The ``source_id`` that :func:`make_staged_frame` gives row ``i`` (0-based)."""
    return f"{source_system.upper()}-{i + 1:07d}"


def make_staged_frame(n: int, source_system: str = "erp") -> pd.DataFrame:
    """A clean staged customer frame of ``n`` rows that passes every staged suite rule.

    Row ``i`` has ``source_id == source_id(i)``; even rows are companies, odd rows persons.
    Phones are valid E.164 numbers; tax IDs pass their country's check digit
    (:func:`valid_tax_id`).
    Tests mutate single cells (``df.loc[i, "country"] = "XX"``) to seed known bad rows.
    """
    idx = np.arange(n)
    nums = pd.Series(idx + 1).astype(str).str.zfill(7)
    is_person = idx % 2 == 1
    given = np.where(is_person, "Anna" + nums, None)
    family = np.where(is_person, "Muster" + nums, None)
    name = np.where(is_person, "Anna Muster " + nums, "Firma " + nums + " GmbH")
    name_key = np.where(is_person, "anna muster " + nums, "firma " + nums)
    country = _COUNTRIES[idx % len(_COUNTRIES)]
    segment = _SEGMENTS[idx % len(_SEGMENTS)]
    frame = pd.DataFrame(
        {
            "source_system": source_system,
            "source_id": f"{source_system.upper()}-" + nums,
            "party_type": np.where(is_person, "person", "company"),
            "name": name,
            "name_key": name_key,
            "given_name": given,
            "family_name": family,
            "tax_id": [valid_tax_id(c, i) for i, c in enumerate(country)],
            "tax_id_valid": pd.array([True] * n, dtype="boolean"),
            "email": "customer" + nums + "@example.com",
            "email_valid": pd.array([True] * n, dtype="boolean"),
            "phone": "+4930" + nums,
            "phone_valid": pd.array([True] * n, dtype="boolean"),
            "street": "Hauptstrasse " + pd.Series(idx % 200 + 1).astype(str),
            "city": "Berlin",
            "region": None,
            "postal_code": "10115",
            "country": country,
            "segment": segment,
            "segment_raw": np.char.add("S", segment.astype(str)),
            "is_deleted": False,
            "source_updated_at": pd.Timestamp("2024-01-01", tz="UTC")
            + pd.to_timedelta(idx, unit="min"),
        }
    )
    return frame[[c for c in STAGED_CUSTOMER_COLUMNS if c in frame]]  # in staged order
