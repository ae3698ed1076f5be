"""Shared set-up of the browser tests: Debian's Chromium driven by Playwright, offline.

Without Chromium the tests skip, except where CUSTPIPE_REQUIRE_BROWSER=1 (CI) turns the
skip into a failure. Screenshots go under `CUSTPIPE_ARTIFACTS` (default `artifacts/`).
"""

from __future__ import annotations

import os
import shutil
from pathlib import Path
from urllib.parse import urlsplit

import pytest

CHROMIUM = os.environ.get("CUSTPIPE_CHROMIUM", "/usr/bin/chromium")


def artifacts_dir(name: str) -> Path:
    """The folder of one browser test's screenshots (created)."""
    path = Path(os.environ.get("CUSTPIPE_ARTIFACTS", "artifacts")) / name
    path.mkdir(parents=True, exist_ok=True)
    return path


def chromium_or_skip() -> str:
    """The Chromium executable, or skip (fail under CUSTPIPE_REQUIRE_BROWSER=1)."""
    found = CHROMIUM if Path(CHROMIUM).exists() else shutil.which("chromium")
    if found:
        return found
    message = f"no Chromium at {CHROMIUM}: `make browser` installs Debian's package"
    if os.environ.get("CUSTPIPE_REQUIRE_BROWSER") == "1":
        pytest.fail(message + " (CUSTPIPE_REQUIRE_BROWSER=1: it must run here)")
    pytest.skip(message)


def refuse_outside(context, outside: list[str]) -> None:
    """Route every request of `context`: loopback goes through, anything else is recorded in
    `outside` and refused (the pages must work without internet)."""

    def offline(route) -> None:
        host = urlsplit(route.request.url).hostname
        if host in ("127.0.0.1", "localhost") or route.request.url.startswith("data:"):
            route.continue_()
        else:
            outside.append(route.request.url)
            route.abort()

    context.route("**/*", offline)
