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
# key=value credentials in a query string, a driver's DSN or an encoded `options=-c password%3D`
# (password=, sslpassword=, passwd=, pwd=, secret=, token=, also percent-encoded '=')
_SECRET_PARAM = re.compile(
    r"(?i)(\w*(?:password|passwd|pwd|secret|token))(=|%3D|%253D)([^&\s'\"]+)"
)
# what follows the '@' that ends the credentials: a host (name, IPv4, [IPv6], or empty for a
# socket), an optional port, then the end or the path/query/fragment
_HOST_AFTER_AT = re.compile(r"(?:\[[0-9A-Fa-f:.]*\]|[^\s@/?#:\[\]]*)(?::\d*)?(?:[/?#]|$)")
# a piece of a password shorter than this is only masked where a misparse shows it
MIN_PIECE = 4


def _split(url: str) -> tuple[str, str | None, str | None, str]:
    """(scheme prefix, user, password, rest after the '@') of a URL; user/password None if absent.

    The credentials run from ``://`` to the *last* '@' that is followed by a host, whatever
    they hold (unescaped '@', ':', '/', '?', '#'), so a password is recognised whole.
    """
    match = _SCHEME.match(url)
    prefix = match.group(0) if match else ""
    rest = url[len(prefix) :]
    ats = [i for i, c in enumerate(rest) if c == "@" and _HOST_AFTER_AT.match(rest, i + 1)]
    at = ats[-1] if ats and not (prefix and rest.startswith("/")) else -1  # '///': no authority
    userinfo = rest[:at] if at >= 0 else ""
    if at < 0 or (prefix and ":" not in userinfo and re.search(r"[/?#]", userinfo)):
        return prefix, None, None, rest  # an '@' in the path or query, no credentials
    after = rest[at + 1 :]
    user, sep, password = userinfo.partition(":")
    return prefix, user, (password if sep else None), after


def _password(url: str) -> str | None:
    return _split(url)[2]


def _mask_params(text: str) -> str:
    return _SECRET_PARAM.sub(lambda m: f"{m.group(1)}{m.group(2)}{MASK}", text)


def mask_url(url: str) -> str:
    """The URL with its password replaced by `***` (all between `user:` and the last '@'
    before the host, whatever it holds) and so the values of `password=`, `sslpassword=`,
    `pwd=` parameters, also inside an encoded `options=-c password%3D...`."""
    try:
        prefix, user, password, after = _split(str(url))
    except Exception:  # noqa: BLE001 - a mask must never fail; show nothing of the URL then
        return MASK
    if user is not None and (not prefix or re.search(r"[/?#]", user)):
        masked = f"{prefix}{MASK}@{after}"  # not a plain user name: show nothing before '@'
    elif password is not None:
        masked = f"{prefix}{user}:{MASK}@{after}"
    elif user is not None:
        masked = f"{prefix}{user}@{after}"
    else:
        masked = f"{prefix}{after}"
    return _mask_params(masked)


def _secret_forms(url: str) -> tuple[list[str], list[str]]:
    """(strings to mask anywhere, strings to mask only before an '@') for a URL's password.

    Anywhere: the password as written, decoded and encoded, the values of its secret
    parameters, and its '@'/':'/'/'-separated pieces of :data:`MIN_PIECE` or more characters.
    Before an '@', whatever their length (what a driver that split the host at a wrong '@'
    echoes as host name, or a URL's `:password@`): the password and each tail of it after
    one of its '@', and `:` plus each head of it before one of its '@'.
    """
    password = _password(url)
    anywhere = [m.group(3) for m in _SECRET_PARAM.finditer(url)]
    before_at: list[str] = []
    if password:
        for form in dict.fromkeys([password, unquote(password), quote(password, safe="")]):
            anywhere.append(form)
            anywhere += [p for p in re.split(r"[@:/]", form) if len(p) >= MIN_PIECE]
            parts = form.split("@")
            before_at += ["@".join(parts[i:]) for i in range(len(parts))]
            before_at += [":" + "@".join(parts[:i]) for i in range(1, len(parts))]
    anywhere = [f for f in anywhere if len(f) >= MIN_PIECE]
    by_length = lambda forms: sorted(set(forms) - {"", ":"}, key=len, reverse=True)  # noqa: E731
    return by_length(anywhere), by_length(before_at)


def redact(text: str, *urls: str) -> str:
    """`text` without the passwords of `urls` (nor of any URL with credentials inside it).

    The password of a given URL is masked anywhere in `text` as written, decoded or encoded,
    and so are its '@'/':'/'/'-separated pieces of 4 or more characters (a misparse shows
    them). Shorter pieces (``123`` of ``abc@123``) are masked only where they stand before an
    '@' as a driver echoes them (``host '123@db'``): masking them everywhere would hide every
    ``123`` in the message and tell nothing an attacker could not guess.
    """
    text = str(text)
    for url in urls:
        if not url:
            continue
        text = text.replace(str(url), mask_url(str(url)))
    text = _CREDENTIALS_IN_TEXT.sub(lambda m: f"{m.group(1)}{MASK}@", text)
    text = _mask_params(text)
    for url in urls:
        if not url:
            continue
        anywhere, before_at = _secret_forms(str(url))
        for secret in before_at:
            lead = ":" if secret.startswith(":") else ""
            text = text.replace(secret + "@", f"{lead}{MASK}@")
        for secret in anywhere:
            text = text.replace(secret, MASK)
    return text
