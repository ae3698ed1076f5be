from __future__ import annotations

import pytest

from custpipe.standardize import normalize_email
from custpipe_tests.standardize._helpers import one


@pytest.mark.parametrize(
    ("raw", "expected", "valid"),
    [
        ("John.Doe@Example.COM", "john.doe@example.com", True),
        ("  max.mustermann@GMX.DE ", "max.mustermann@gmx.de", True),
        ("Zhang.Wei@QQ.com", "zhang.wei@qq.com", True),
        ("ｚｈａｎｇ＠ｑｑ．ｃｏｍ", "zhang@qq.com", True),  # full-width
        ("mailto:Info@Firma.de", "info@firma.de", True),
        ("<info@firma.de>", "info@firma.de", True),
        ("jürgen.müller@beispiel.de", "jürgen.müller@beispiel.de", True),
        ("a+tag@sub.example.org", "a+tag@sub.example.org", True),
        ("bad@", "bad@", False),
        ("no at sign", "no at sign", False),
        ("x@localhost", "x@localhost", False),
        ("two@@example.com", "two@@example.com", False),
        ("Dot.@example.com", "Dot.@example.com", False),
        ("", None, None),
        (None, None, None),
    ],
)
def test_normalize_email(raw, expected, valid):
    email, ok = normalize_email(one(raw))
    assert (email.iloc[0], ok.iloc[0]) == (expected, valid)
