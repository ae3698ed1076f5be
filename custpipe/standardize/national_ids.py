"""Personal national identity numbers, validated by their country's check digits (stdnum).

Only countries whose personal ID number carries a check digit python-stdnum verifies are
listed (not the US SSN, nor the Danish CPR number, whose check digit was dropped in 2007);
for any other country a national ID is never 'valid', so it never keeps two records apart on
its own (see `custpipe.matching.exclusions`).
"""

from __future__ import annotations

import importlib
from functools import cache

from stdnum.exceptions import ValidationError

# ISO 3166 alpha-2 -> the python-stdnum module of the personal ID number
NATIONAL_ID_MODULES: dict[str, str] = {
    "AU": "au.tfn", "BE": "be.nn", "BG": "bg.egn", "BR": "br.cpf", "CH": "ch.ssn",
    "CL": "cl.rut", "CN": "cn.ric", "CZ": "cz.rc", "DE": "de.idnr",
    "EE": "ee.ik", "ES": "es.dni", "FI": "fi.hetu", "FR": "fr.nir", "GR": "gr.amka",
    "HR": "hr.oib", "IE": "ie.pps", "IN": "in_.aadhaar", "IS": "is_.kennitala",
    "IT": "it.codicefiscale", "KR": "kr.rrn", "LT": "lt.asmens", "MX": "mx.curp",
    "NL": "nl.bsn", "NO": "no.fodselsnummer", "PL": "pl.pesel", "PT": "pt.cc", "RO": "ro.cnp",
    "SE": "se.personnummer", "SK": "sk.rc", "TR": "tr.tckimlik",
    "ZA": "za.idnr",
}  # fmt: skip


@cache
def _module(country: str):
    name = NATIONAL_ID_MODULES.get(country)
    return importlib.import_module(f"stdnum.{name}") if name else None


def national_id_valid(country: str | None, value: str | None) -> bool:
    """Whether `value` is a valid personal ID number of `country` (False when unknown)."""
    module = _module((country or "").upper())
    if module is None or not value:
        return False
    try:
        module.validate(value)
    except (ValidationError, ValueError):
        return False
    return True
