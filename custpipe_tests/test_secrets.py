"""Masking of database URLs and of texts that may echo one."""

from __future__ import annotations

import pytest

from custpipe.secrets import mask_url, redact

PASSWORD = "Pl@nted:S3cr/et@Pw"


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://u:p@ss@127.0.0.1/x", "postgresql://u:***@127.0.0.1/x"),
        (
            f"postgresql+psycopg://app:{PASSWORD}@db:5432/erp",
            "postgresql+psycopg://app:***@db:5432/erp",
        ),
        (
            "mysql+pymysql://root:@127.0.0.1:3306/test",
            "mysql+pymysql://root:***@127.0.0.1:3306/test",
        ),
        ("sqlite:///data/x.db", "sqlite:///data/x.db"),
        ("postgresql://app@db/erp", "postgresql://app@db/erp"),
        ("postgresql://db/erp?user=a&password=hunter22", "postgresql://db/erp?user=a&password=***"),
        ("mssql://u:a%40b%3Ac@h/db?x=1", "mssql://u:***@h/db?x=1"),
        ("not a url:p@ss@word@host", "***@host"),
    ],
)
def test_mask_url_hides_the_password_whatever_it_holds(url, expected):
    assert mask_url(url) == expected


def test_redact_removes_the_password_and_its_pieces_from_a_driver_message():
    url = f"postgresql://app:{PASSWORD}@127.0.0.1:1/erp"
    # what a driver says when it splits the host at the first '@' of the password
    message = (
        f'connection to server at "nted:S3cr/et@Pw@127.0.0.1" failed; url was {url}; '
        f"password={PASSWORD} rejected; pieces et and Pw are too short to matter"
    )
    out = redact(message, url)
    for piece in (PASSWORD, "nted:S3cr", "S3cr/et", "nted"):
        assert piece not in out
    assert "postgresql://app:***@127.0.0.1:1/erp" in out
    assert "127.0.0.1" in out


def test_redact_masks_credentials_of_urls_it_was_not_given():
    out = redact("failed: mysql://root:topsecret@h:3306/db refused")
    assert "topsecret" not in out
    assert "mysql://root:***@h:3306/db" in out


def test_redact_leaves_a_text_without_secrets_alone():
    text = "source 'erp': table 'customers' not found"
    assert redact(text, "sqlite:///x.db") == text
