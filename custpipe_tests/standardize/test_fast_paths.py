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


def test_phone_fast_path_agrees_with_the_full_parser_on_demo_data(tmp_path, monkeypatch):
    import json
    from datetime import date

    import sqlalchemy as sa

    from custpipe.demo.generate import generate_demo
    from custpipe.standardize import phones

    generate_demo(tmp_path, customers=1500, seed=11, business_date=date(2026, 11, 27))
    samples = []
    for db, query in (
        ("erp", "SELECT TELF1, LAND1 FROM KNA1"),
        ("crm", "SELECT Phone, BillingCountry FROM Account"),
    ):
        engine = sa.create_engine(f"sqlite:///{tmp_path / db / (db + '.sqlite')}")
        with engine.connect() as conn:
            samples += [tuple(r) for r in conn.execute(sa.text(query))]
        engine.dispose()
    for line in (tmp_path / "service" / "customers.jsonl").read_text().splitlines():
        record = json.loads(line)
        samples.append((record.get("phone"), (record.get("address") or {}).get("country")))
    samples += [
        ("+49 (0)30 1234567", "DE"),
        ("0086 138 1234 5678", "CN"),
        ("1-212-555-0123", "US"),
        ("+39 06 6982 1234", "IT"),
        ("+44 20 7946 0958", None),
        ("030 1234567", None),
    ]
    fast = [phones.e164_value(v, c) for v, c in samples]
    monkeypatch.setattr(phones, "fast_valid_e164", lambda text, region: None)
    slow = [phones.e164_value(v, c) for v, c in samples]
    assert len(samples) > 2000
    assert fast == slow
