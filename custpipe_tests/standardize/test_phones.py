from __future__ import annotations

import pandas as pd
import pytest

from custpipe.standardize import to_e164
from custpipe_tests.standardize._helpers import one


@pytest.mark.parametrize(
    ("raw", "country", "expected", "valid"),
    [
        # zh_CN: one mobile number, many spellings
        ("13812345678", "CN", "+8613812345678", True),
        ("138-1234-5678", "CN", "+8613812345678", True),
        ("138 1234 5678", "CN", "+8613812345678", True),
        ("+86 138 1234 5678", "CN", "+8613812345678", True),
        ("0086 138 1234 5678", "CN", "+8613812345678", True),
        ("0086 138 1234 5678", "US", "+8613812345678", True),  # 00 is not the US IDD
        ("１３８１２３４５６７８", "CN", "+8613812345678", True),
        ("+86 138 1234 5678", None, "+8613812345678", True),
        ("138-1234-5678", "中国", "+8613812345678", True),
        ("010-6552 9988", "CN", "+861065529988", True),
        (13812345678.0, "CN", "+8613812345678", True),
        # de_DE: one landline number
        ("030 1234567", "DE", "+49301234567", True),
        ("030/1234567", "DE", "+49301234567", True),
        ("+49 (0)30 1234567", "DE", "+49301234567", True),
        ("+49 (0)30 1234567", "CN", "+49301234567", True),
        ("0049 30 1234567", "DE", "+49301234567", True),
        ("Tel.: 030-1234567", "Deutschland", "+49301234567", True),
        ("０３０／１２３４５６７", "DE", "+49301234567", True),
        # en_US
        ("(212) 555-0123", "US", "+12125550123", True),
        ("212.555.0123", "USA", "+12125550123", True),
        ("+1 212-555-0123", "DE", "+12125550123", True),
        ("1-212-555-0123", "US", "+12125550123", True),
        # invalid / unparseable
        ("12", "DE", None, False),
        ("abc", "DE", None, False),
        ("030 1234567", None, None, False),  # no region, no +
        ("(212) 155-0123", "US", "+12121550123", False),  # exchange cannot start with 1
        (None, "DE", None, None),
        ("", "DE", None, None),
    ],
)
def test_to_e164(raw, country, expected, valid):
    e164, ok = to_e164(one(raw), one(country))
    assert (e164.iloc[0], ok.iloc[0]) == (expected, valid)


def test_to_e164_scalar_country_and_alignment():
    s = pd.Series(["030 1234567", None, "030/1234567"], index=[7, 8, 9])
    e164, ok = to_e164(s, "DE")
    assert e164.to_dict() == {7: "+49301234567", 8: None, 9: "+49301234567"}
    assert ok.to_dict() == {7: True, 8: None, 9: True}
