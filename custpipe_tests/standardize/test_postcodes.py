from __future__ import annotations

import pytest

from custpipe.standardize import normalize_postcode
from custpipe_tests.standardize._helpers import one


@pytest.mark.parametrize(
    ("raw", "country", "expected", "valid"),
    [
        # zh_CN
        ("100080", "CN", "100080", True),
        ("１０００８０", "CN", "100080", True),
        (" 200 120 ", "China", "200 120", False),
        ("10008", "CN", "10008", False),
        ("010000", "CN", "010000", True),
        # de_DE
        ("01067", "DE", "01067", True),
        ("1067", "DE", "01067", True),  # lost leading zero
        (1067, "DE", "01067", True),
        (1067.0, "Deutschland", "01067", True),
        ("D-01067", "DE", "01067", True),
        ("10115", "DE", "10115", True),
        ("101155", "DE", "101155", False),
        ("abc", "DE", "ABC", False),
        # en_US
        ("10001", "US", "10001", True),
        ("10001-1234", "US", "10001-1234", True),
        ("100011234", "US", "10001-1234", True),
        ("501", "US", "00501", True),
        ("2134-5678", "US", "02134-5678", True),
        ("1000", "USA", "01000", True),
        ("1000-", "US", "1000-", False),
        # others
        ("1010", "AT", "1010", True),
        ("8001", "CH", "8001", True),
        ("sw1a1aa", "GB", "SW1A 1AA", True),
        ("1012ab", "NL", "1012 AB", True),
        ("12-345", "PL", "12-345", True),
        ("ab 12", None, "AB 12", True),
        ("", "DE", None, None),
        (None, "DE", None, None),
    ],
)
def test_normalize_postcode(raw, country, expected, valid):
    code, ok = normalize_postcode(one(raw), one(country))
    assert (code.iloc[0], ok.iloc[0]) == (expected, valid)
