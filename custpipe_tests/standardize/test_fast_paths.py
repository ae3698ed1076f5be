"""The speed-ups give exactly the results of the plain, library-only, serial path."""

import pandas as pd
import pytest
from email_validator import EmailNotValidError, validate_email

from custpipe.standardize import _util, normalize_email, to_e164
from custpipe.standardize.emails import email_value

ADDRESSES = [
    "Anna.Schmidt@Example.DE",
    "max_mustermann+shop@gmx.de",
    "zhang.wei@163.com",
    "a@b.co",
    "x.y.z@sub.domain-name.org",
    "bad..dots@x.com",
    ".lead@x.com",
    "trail.@x.com",
    "no-at.x.com",
    "two@@x.com",
    "a@-bad.com",
    "a@bad-.com",
    "u@host.localhost",
    "u@printer.local",
    "u@service.test",
    "ü@umlaut.de",
    "王伟@例子.中国",
    "a@x.c",
    "o'brien@irish.ie",
    "a b@x.com",
    "x@" + "d" * 64 + ".com",
    "l" * 65 + "@x.com",
    "info@ACME-INC.COM",
    "a@1.2.3.4",
]


def library_only(text: str):
    try:
        return validate_email(text, check_deliverability=False).normalized.lower(), True
    except (EmailNotValidError, ValueError, UnicodeError):
        return text, False


@pytest.mark.parametrize("address", ADDRESSES)
def test_email_fast_path_agrees_with_the_library(address):
    assert email_value(address) == library_only(address)


def test_parallel_evaluation_gives_the_serial_result(monkeypatch):
    phones = pd.Series([f"030 {1000000 + i}" for i in range(300)] + [None, "garbage"] * 10)
    countries = pd.Series(["DE"] * len(phones))
    emails = pd.Series([f"user{i}@example.org" for i in range(300)] + ["bad"] * 20)
    serial = (to_e164(phones, countries), normalize_email(emails))
    monkeypatch.setattr(_util, "PARALLEL_MIN_VALUES", 10)
    parallel = (to_e164(phones, countries), normalize_email(emails))
    for (a1, a2), (b1, b2) in zip(serial, parallel, strict=True):
        pd.testing.assert_series_equal(a1, b1)
        pd.testing.assert_series_equal(a2, b2)
