"""Masking of credentials: database URLs and any text (driver messages) that may echo one.

`mask_url` hides the password of a URL; `redact` removes the passwords of given URLs (and
of any `scheme://user:password@` it finds) from a text. Both never raise: a URL that
cannot be parsed is masked as a whole rather than shown.
"""

from __future__ import annotations

import re
from urllib.parse import quote, unquote

MASK = "***"
_SCHEME = re.compile(r"^([A-Za-z][A-Za-z0-9+.\-]*)://")
# scheme://user:password@ anywhere in a text; the password runs to the last '@' before a blank
_CREDENTIALS_IN_TEXT = re.compile(r"([A-Za-z][A-Za-z0-9+.\-]*://[^\s:/@]*:)\S*@")
# key=value credentials in a query string or a driver's DSN (password=..., pwd=...)
_SECRET_PARAM = re.compile(r"(?i)\b(password|passwd|pwd|secret|token)=([^&\s'\"]+)")


def _split(url: str) -> tuple[str, str | None, str | None, str]:
    """(scheme prefix, user, password, rest after the '@') of a URL; user/password None if absent.

    The credentials end at the last '@' before the query string, so a password holding '@',
    ':' or '/' unescaped is still recognised whole.
    """
    match = _SCHEME.match(url)
    prefix = match.group(0) if match else ""
    rest = url[len(prefix) :]
    head = rest.split("?", 1)[0].split("#", 1)[0]
    at = head.rfind("@")
    if at < 0:
        return prefix, None, None, rest
    userinfo, after = rest[:at], rest[at + 1 :]
    user, sep, password = userinfo.partition(":")
    return prefix, user, (password if sep else None), after


def _password(url: str) -> str | None:
    return _split(url)[2]


def mask_url(url: str) -> str:
    """The URL with its password (and any `password=` parameter) replaced by `***`."""
    try:
        prefix, user, password, after = _split(str(url))
    except Exception:  # noqa: BLE001 - a mask must never fail; show nothing of the URL then
        return MASK
    if not prefix and user is not None:
        masked = f"{MASK}@{after}"  # not a URL: nothing before the last '@' is shown
    elif password is not None:
        masked = f"{prefix}{user}:{MASK}@{after}"
    elif user is not None:
        masked = f"{prefix}{user}@{after}"
    else:
        masked = f"{prefix}{after}"
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={MASK}", masked)


def _secret_forms(url: str) -> list[str]:
    """The strings of a URL's password a driver may echo: as written, decoded, encoded, and
    its '@'/':'/'/'-separated pieces of 3 or more characters (what a misparse shows)."""
    password = _password(url)
    found = [m.group(2) for m in _SECRET_PARAM.finditer(url)]
    if password:
        found += [password, unquote(password), quote(password, safe="")]
        found += [p for p in re.split(r"[@:/]", password) if len(p) >= 3]
        found += [p for p in re.split(r"[@:/]", unquote(password)) if len(p) >= 3]
    return sorted({f for f in found if f}, key=len, reverse=True)


def redact(text: str, *urls: str) -> str:
    """`text` without the passwords of `urls` (nor of any URL with credentials inside it)."""
    text = str(text)
    for url in urls:
        if not url:
            continue
        text = text.replace(str(url), mask_url(str(url)))
    text = _CREDENTIALS_IN_TEXT.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _SECRET_PARAM.sub(lambda m: f"{m.group(1)}={MASK}", text)
    for url in urls:
        if not url:
            continue
        for secret in _secret_forms(str(url)):
            text = text.replace(secret, MASK)
    return text
