"""Country names and codes -> ISO 3166-1 alpha-2."""

from __future__ import annotations

from typing import Any

import pandas as pd

from custpipe.standardize._country_data import COUNTRIES
from custpipe.standardize._util import map_unique
from custpipe.standardize.text import fold_value

# Hand-curated variants not in the generated table (matched case/space/punctuation-insensitively,
# traditional Chinese is folded to simplified, umlauts to ae/oe/ue).
ALIASES: dict[str, str] = {
    # China
    "PRC": "CN",
    "P.R.C.": "CN",
    "P.R. China": "CN",
    "PR China": "CN",
    "VR China": "CN",
    "Volksrepublik China": "CN",
    "Mainland China": "CN",
    "China Mainland": "CN",
    "China (Mainland)": "CN",
    "中华人民共和国": "CN",
    "中国大陆": "CN",
    "中國大陸": "CN",
    "Chinese Mainland": "CN",
    # Germany
    "BRD": "DE",
    "Bundesrepublik Deutschland": "DE",
    "Federal Republic of Germany": "DE",
    "FRG": "DE",
    "Deutschland (BRD)": "DE",
    "德意志联邦共和国": "DE",
    "Germany (DE)": "DE",
    # United States
    "U.S.": "US",
    "U.S.A.": "US",
    "United States of America": "US",
    "America": "US",
    "Vereinigte Staaten": "US",
    "Vereinigte Staaten von Amerika": "US",
    "美利坚合众国": "US",
    "US of A": "US",
    # United Kingdom
    "UK": "GB",
    "U.K.": "GB",
    "Great Britain": "GB",
    "Britain": "GB",
    "England": "GB",
    "Scotland": "GB",
    "Wales": "GB",
    "Northern Ireland": "GB",
    "Großbritannien": "GB",
    "England (UK)": "GB",
    "大不列颠": "GB",
    "United Kingdom of Great Britain and Northern Ireland": "GB",
    # German-speaking neighbours and other common ones
    "Österreich": "AT",
    "Republik Österreich": "AT",
    "Schweiz": "CH",
    "Suisse": "CH",
    "Svizzera": "CH",
    "Switzerland": "CH",
    "Swiss Confederation": "CH",
    "Holland": "NL",
    "Niederlande": "NL",
    "The Netherlands": "NL",
    "Frankreich": "FR",
    "Italien": "IT",
    "Spanien": "ES",
    "Polen": "PL",
    "Tschechien": "CZ",
    "Czechia": "CZ",
    "Czech Republic": "CZ",
    "Dänemark": "DK",
    "Belgien": "BE",
    "Luxemburg": "LU",
    "Schweden": "SE",
    "Russland": "RU",
    "Russian Federation": "RU",
    "South Korea": "KR",
    "Korea": "KR",
    "Republic of Korea": "KR",
    "韩国": "KR",
    "North Korea": "KP",
    "Japan": "JP",
    "日本": "JP",
    "Taiwan": "TW",
    "台湾": "TW",
    "中华民国": "TW",
    "Hong Kong SAR": "HK",
    "香港特别行政区": "HK",
    "Macau": "MO",
    "Macao SAR": "MO",
    "澳门": "MO",
    "Vietnam": "VN",
    "Viet Nam": "VN",
    "UAE": "AE",
    "U.A.E.": "AE",
    "Emirates": "AE",
}

# Explicit non-matches: folded words that would otherwise collide with a code.
_NOT_COUNTRIES: frozenset[str] = frozenset({"na", "nan", "none", "null", "nil", "unknown", "n/a"})


def _build_lookup() -> dict[str, str]:
    lookup: dict[str, str] = {}

    def add(name: str, iso2: str, override: bool = False) -> None:
        key = fold_value(name)
        if key and key not in _NOT_COUNTRIES and (override or key not in lookup):
            lookup[key] = iso2

    for iso2, (_, names) in COUNTRIES.items():
        for name in names:
            add(name, iso2)
    for iso2, (iso3, _) in COUNTRIES.items():  # codes take precedence over names
        add(iso3, iso2, override=True)
    for iso2 in COUNTRIES:
        add(iso2, iso2, override=True)
    for alias, iso2 in ALIASES.items():
        add(alias, iso2, override=True)
    for word in _NOT_COUNTRIES:
        lookup.pop(fold_value(word) or "", None)
    return lookup


_LOOKUP = _build_lookup()


def iso2_value(value: Any) -> str | None:
    """ISO 3166-1 alpha-2 for one scalar, or None."""
    key = fold_value(value)
    return None if key is None else _LOOKUP.get(key)


def to_iso2(s: pd.Series) -> pd.Series:
    """ISO 3166-1 alpha-2 code from codes (alpha-2/-3) or English/German/Chinese names.

    Case-, space- and punctuation-insensitive; unknown or missing -> None. Placeholder
    words ('NA', 'N/A', 'none', ...) are not countries, so Namibia must be spelt out.
    """
    return map_unique(s, iso2_value)
