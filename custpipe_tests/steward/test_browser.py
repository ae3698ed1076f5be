"""The workbench in a real browser: Playwright driving Debian's Chromium, offline.

A steward signs in, opens the inbox, decides a pair and sees it leave, searches a golden
record by tax ID, and opens the Rules and the scorecard. Every request that would leave the
machine is recorded and refused: the pages must work without internet. Screenshots of each
step go to `CUSTPIPE_ARTIFACTS` (default `artifacts/steward/`).

Needs Chromium (`make browser` installs Debian's package); without it the test skips, except
where CUSTPIPE_REQUIRE_BROWSER=1 (CI) turns the skip into a failure.
"""

from __future__ import annotations

import re
import socket
import threading
import time

import duckdb

from custpipe_tests.browser import artifacts_dir, chromium_or_skip, refuse_outside
from custpipe_tests.steward.conftest import PASSWORD, add_users


class _Server:
    """The workbench under uvicorn on a free loopback port, in a thread."""

    def __init__(self, settings) -> None:
        import uvicorn

        from custpipe.steward.app import build_app

        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        config = uvicorn.Config(
            build_app(settings), host="127.0.0.1", port=self.port, log_level="warning"
        )
        self.server = uvicorn.Server(config)
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> str:
        self.thread.start()
        deadline = time.monotonic() + 20
        while not self.server.started:
            assert time.monotonic() < deadline, "the workbench did not start"
            time.sleep(0.05)
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


def _a_tax_id(settings) -> str:
    con = duckdb.connect(str(settings.warehouse_path), read_only=True)
    try:
        return con.execute(
            "SELECT tax_id FROM mdm.golden_customers WHERE tax_id IS NOT NULL "
            "ORDER BY golden_id LIMIT 1"
        ).fetchone()[0]
    finally:
        con.close()


def test_a_steward_works_through_the_inbox_in_a_real_browser(demo_copy):
    executable = chromium_or_skip()
    from playwright.sync_api import expect, sync_playwright

    settings = demo_copy[0].settings
    add_users(settings)
    artifacts = artifacts_dir("steward")
    tax_id = _a_tax_id(settings)
    outside: list[str] = []
    problems: list[str] = []

    def shot(page, name: str) -> None:
        page.screenshot(path=str(artifacts / f"{name}.png"), full_page=True)

    with _Server(settings) as base, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=executable, headless=True)
        context = browser.new_context(viewport={"width": 1400, "height": 900})
        refuse_outside(context, outside)  # nothing may leave the machine
        page = context.new_page()
        page.on("console", lambda m: problems.append(m.text) if m.type == "error" else None)
        page.on("pageerror", lambda e: problems.append(str(e)))

        page.goto(f"{base}/inbox")
        expect(page).to_have_url(re.compile(r"/login"))
        page.fill("input[name=username]", "ann")
        page.fill("input[name=password]", PASSWORD)
        shot(page, "01-login")
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/inbox$"))
        expect(page.locator("h2")).to_have_text("Review inbox")
        shot(page, "02-inbox")

        first = page.locator("a[href^='/review/']").first
        group = first.get_attribute("href")
        groups_before = page.locator("a[href^='/review/']").count()
        first.click()
        expect(page.locator("svg.waterfall").first).to_be_visible()
        expect(page.locator("table.records").first).to_be_visible()
        shot(page, "03-review")
        page.check("input[value=cannot_link]")
        page.fill("input[name=reason]", "different tax IDs, checked with the customer")
        page.click("#decide button[type=submit]")
        expect(page).to_have_url(re.compile(r"/inbox$"))
        expect(page.locator(".notice")).to_contain_text("recorded")
        expect(page.locator(f"a[href='{group}']")).to_have_count(0)
        assert page.locator("a[href^='/review/']").count() == groups_before - 1
        shot(page, "04-decided")

        page.click("nav a[href='/golden']")
        page.fill("#q", tax_id)
        page.press("#q", "Enter")
        result = page.locator("#results a[href^='/golden/G']").first
        expect(result).to_be_visible()
        shot(page, "05-search")
        result.click()
        expect(page.locator("h2")).to_contain_text("Golden record")
        expect(page.locator("table.attributes")).to_contain_text(tax_id)
        shot(page, "06-golden")

        page.click("nav a[href='/rules']")
        expect(page.locator("main")).to_contain_text("block")
        shot(page, "07-rules")
        suite = page.locator("main a[href^='/rules/']").first
        if suite.count():
            suite.click()
            shot(page, "08-rule-suite")
        page.click("nav a[href='/scorecard']")
        expect(page.locator("main table").first).to_be_visible()
        shot(page, "09-scorecard")
        page.click("nav a[href='/quarantine']")
        expect(page.locator("main")).to_contain_text("what is wrong")
        shot(page, "10-quarantine")

        styles = page.evaluate(
            "getComputedStyle(document.querySelector('nav a[href=\"/inbox\"]')).color"
        )
        assert styles  # the vendored stylesheet applied
        version = browser.version
        browser.close()

    assert outside == [], f"pages asked for resources outside the machine: {outside}"
    assert problems == [], f"browser errors (Chromium {version}): {problems}"
