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


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("postgresql://app:pa?ss@h/db", "postgresql://app:***@h/db"),
        ("postgresql://app:pa#ss@h/db", "postgresql://app:***@h/db"),
        ("postgresql://app:p/a?s#s@w@h:5432/db?x=1", "postgresql://app:***@h:5432/db?x=1"),
        ("postgresql://app:pa?ss@h/db?password=hunter22", "postgresql://app:***@h/db?password=***"),
        ("postgresql://h/db?sslpassword=hunter22&x=1", "postgresql://h/db?sslpassword=***&x=1"),
        ("mssql+pyodbc://h/db?PWD=hunter22&driver=x", "mssql+pyodbc://h/db?PWD=***&driver=x"),
        (
            "postgresql://app@h/db?options=-c%20password%3Dhunter22",
            "postgresql://app@h/db?options=-c%20password%3D***",
        ),
    ],
)
def test_mask_url_hides_passwords_holding_query_or_fragment_characters(url, expected):
    masked = mask_url(url)
    assert masked == expected
    assert "ss@" not in masked and "hunter22" not in masked


def test_redact_masks_url_passwords_holding_query_or_fragment_characters():
    for url in ("postgresql://app:pa?ss@h/db", "postgresql://app:pa#ss@h/db"):
        out = redact(f"could not connect with {url}", url)
        assert "pa?ss" not in out and "pa#ss" not in out, out


def test_redact_removes_pieces_of_four_or_more_characters_and_short_pieces_in_context():
    url = "postgresql://app:abc@123xyz@127.0.0.1/erp"
    # a driver that cut the host at the first '@' echoes the rest of the password as host
    message = "failed to resolve host '123xyz@127.0.0.1'; retried 123 times; code abc"
    out = redact(message, url)
    assert "123xyz" not in out
    assert "retried 123 times; code abc" in out  # short, common pieces elsewhere are kept
    short = "postgresql://app:ab@c1@127.0.0.1/erp"
    out = redact("failed to resolve host 'c1@127.0.0.1' for user app:ab@", short)
    assert "c1@" not in out and ":ab@" not in out
    assert "127.0.0.1" in out


@pytest.mark.parametrize(
    ("url", "hint"),
    [
        ("postgresql://u:Secret99@h/{dbname}", "{dbname}"),
        ("postgresql://u:Secret99@h/{db", "placeholders are"),
        ("postgres://u:Secret99@h/db", "postgresql://"),
    ],
)
def test_config_url_errors_show_the_url_masked(url, hint):
    from pydantic import ValidationError

    from custpipe.config import ConnectionConfig

    with pytest.raises(ValidationError) as caught:
        ConnectionConfig(url=url)
    message = caught.value.errors()[0]["msg"]
    assert hint in message
    assert "Secret99" not in message
    assert "u:***@h" in message


def test_the_lock_holders_command_line_hides_password_arguments():
    """`_holder_program` shows another process's command line: values after --password, -p,
    --pass, --pwd and of PASSWORD=-style arguments are masked."""
    import subprocess
    import sys
    import time

    from custpipe.warehouse import _holder_program

    args = [
        "--password", "Hunter2secret", "-p", "Pw4short", "--pass", "PassW0rdX",
        "--pass=EqPass99", "--pwd", "PwdValue7", "PGPASSWORD=EnvPw123", "-pHunter2x",
        "--secret", "S3cr3tVal", "--token", "tok123456", "--keep", "visible1",
    ]  # fmt: skip
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(30)", *args])
    try:
        for _ in range(100):  # until the child has exec'd
            shown = _holder_program(str(child.pid), "fallback")
            if "visible1" in shown:
                break
            time.sleep(0.05)
    finally:
        child.kill()
        child.wait()
    assert "--keep visible1" in shown and "--password ***" in shown and "-p ***" in shown
    secrets = ("Hunter2secret", "Pw4short", "PassW0rdX", "EqPass99", "PwdValue7", "EnvPw123")
    for secret in (*secrets, "Hunter2x", "S3cr3tVal", "tok123456"):
        assert secret not in shown, shown
