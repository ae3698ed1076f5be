from __future__ import annotations

import pandas as pd
import pytest

from custpipe.standardize import to_iso2
from custpipe_tests.standardize._helpers import one


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("CN", "CN"),
        ("chn", "CN"),
        ("China", "CN"),
        ("PRC", "CN"),
        ("P.R. China", "CN"),
        ("People's Republic of China", "CN"),
        ("中国", "CN"),
        ("中華人民共和國", "CN"),
        ("中华人民共和国", "CN"),
        ("VR China", "CN"),
        ("DE", "DE"),
        ("DEU", "DE"),
        ("Germany", "DE"),
        ("Deutschland", "DE"),
        ("  deutschland ", "DE"),
        ("BRD", "DE"),
        ("Bundesrepublik Deutschland", "DE"),
        ("德国", "DE"),
        ("德國", "DE"),
        ("US", "US"),
        ("USA", "US"),
        ("U.S.A.", "US"),
        ("United States", "US"),
        ("United States of America", "US"),
        ("Vereinigte Staaten", "US"),
        ("美国", "US"),
        ("UK", "GB"),
        ("Great Britain", "GB"),
        ("United Kingdom", "GB"),
        ("Großbritannien", "GB"),
        ("Österreich", "AT"),
        ("Oesterreich", "AT"),
        ("AUT", "AT"),
        ("Schweiz", "CH"),
        ("Switzerland", "CH"),
        ("瑞士", "CH"),
        ("Frankreich", "FR"),
        ("法国", "FR"),
        ("ＪＰ", "JP"),
        ("Hong Kong", "HK"),
        ("Atlantis", None),
        ("N/A", None),
        ("NA", None),
        ("", None),
        (None, None),
    ],
)
def test_to_iso2(raw, expected):
    assert to_iso2(one(raw)).iloc[0] == expected


def test_to_iso2_keeps_index():
    s = pd.Series(["Germany", None, "中国"], index=["a", "b", "c"])
    assert to_iso2(s).to_dict() == {"a": "DE", "b": None, "c": "CN"}
