"""The night as on-call sees it: `dagster dev` on loopback, a run launched the way the UI
launches it, and the Dagster UI in a real browser (Debian's Chromium, offline).

A crm mapping that loses every name makes the night a blocked one. The run is submitted
through the webserver's GraphQL API (what the Launchpad's button does), executed by the
daemon's run queue, and reported by the failure sensor under the daemon. The browser then
opens the asset graph, the blocked run and the Launchpad; screenshots go to
`CUSTPIPE_ARTIFACTS` (default `artifacts/dagster/`).
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

from custpipe.settings import DEFAULT_CONFIG_DIR
from custpipe_tests.browser import artifacts_dir, chromium_or_skip, refuse_outside
from custpipe_tests.conftest import BUSINESS_DATE, make_deployment

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class DagsterDev:
    """`dagster dev` (webserver and daemon) on a free loopback port, in its own process
    group: it ignores SIGTERM for a long while, so the group is killed when done."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        self.port = _free_port()
        self.env, self.log = env, log

    def __enter__(self) -> str:
        dagster = Path(sys.executable).with_name("dagster")
        argv = [str(dagster), "dev", "-w", str(REPO / "workspace.yaml")]
        argv += ["-h", "127.0.0.1", "-p", str(self.port)]
        self.out = self.log.open("w")
        self.proc = subprocess.Popen(
            argv, cwd=REPO, env=self.env, stdout=self.out, stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 180

        while True:
            assert self.proc.poll() is None, f"dagster dev exited: {self.log.read_text()[-3000:]}"
            assert time.monotonic() < deadline, "dagster dev did not answer within 180 s"
            try:
                with urllib.request.urlopen(f"{url}/server_info", timeout=2) as reply:
                    if reply.status == 200:
                        return url
            except OSError:
                time.sleep(1)

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=30)
        self.out.close()


def _wait_for_run(client, run_id: str, timeout: float) -> str:
    from dagster import DagsterRunStatus

    ended = {DagsterRunStatus.SUCCESS, DagsterRunStatus.FAILURE, DagsterRunStatus.CANCELED}
    deadline = time.monotonic() + timeout
    while True:
        status = client.get_run_status(run_id)
        if status in ended:
            return status.value
        assert time.monotonic() < deadline, f"run {run_id} still {status.value} after {timeout} s"
        time.sleep(2)


def _wait_for_alert(path: Path, run_id: str, timeout: float) -> dict:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if path.exists():
            for line in path.read_text(encoding="utf-8").splitlines():
                alert = json.loads(line)
                if alert["run_id"] == run_id:
                    return alert
        time.sleep(2)
    raise AssertionError(f"no alert for run {run_id} in {path} after {timeout} s")


def test_on_call_opens_a_blocked_night_in_the_dagster_ui(tmp_path):
    executable = chromium_or_skip()
    from dagster_graphql import DagsterGraphQLClient
    from playwright.sync_api import expect, sync_playwright

    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    crm = config / "sources" / "crm.yaml"  # a mapping that loses every crm name: blocked
    crm.write_text(crm.read_text().replace("    name: Name\n", "    name: FirstName\n"))
    settings = make_deployment(tmp_path, customers=150, config_dir=config).settings
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO / "dagster.yaml", home / "dagster.yaml")
    env = os.environ | {
        "DAGSTER_HOME": str(home),
        "CUSTPIPE_CONFIG": str(settings.config_dir),
        "CUSTPIPE_DATA": str(settings.data_dir),
        "GX_ANALYTICS_ENABLED": "false",
    }
    artifacts = artifacts_dir("dagster")
    outside: list[str] = []

    with DagsterDev(env, tmp_path / "dagster-dev.log") as base:
        client = DagsterGraphQLClient("127.0.0.1", port_number=int(base.rsplit(":", 1)[1]))
        run_id = client.submit_job_execution(
            "nightly", tags={"dagster/partition": BUSINESS_DATE.isoformat()}
        )
        status = _wait_for_run(client, run_id, timeout=600)
        assert status == "FAILURE", (tmp_path / "dagster-dev.log").read_text()[-3000:]
        alert = _wait_for_alert(settings.data_dir / "alerts" / "alerts.jsonl", run_id, 180)
        # the failure sensor, under the daemon: a blocked night, the rule named, no publish
        assert alert["kind"] == "blocked" and alert["published"] is False
        assert "name_mostly_present" in json.dumps(alert["blocked_by"])
        assert alert["url"].endswith(f"/runs/{run_id}")

        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=executable, headless=True)
            context = browser.new_context(viewport={"width": 1600, "height": 1000})
            refuse_outside(context, outside)
            page = context.new_page()

            page.goto(f"{base}/locations/custpipe/jobs/nightly")
            skip = page.get_by_role("button", name="Skip")  # the first visit's newsletter box
            skip.click(timeout=60_000)
            graph = page.get_by_text("View as Asset Graph")
            expect(graph).to_be_visible(timeout=60_000)
            for group in ("extract", "quality"):
                expect(page.get_by_text(group, exact=True).first).to_be_visible()
            page.wait_for_timeout(2_000)  # the graph's status counts arrive after the layout
            page.screenshot(path=str(artifacts / "01-asset-graph.png"))

            page.goto(f"{base}/runs/{run_id}")
            expect(page.get_by_text("Failure").first).to_be_visible(timeout=60_000)
            expect(page.get_by_text("quality__crm").first).to_be_visible()
            # the blocked step's own message names the rule, not only the check
            expect(page.get_by_text("blocked by quality/crm").first).to_be_visible()
            page.screenshot(path=str(artifacts / "02-blocked-run.png"))

            page.goto(f"{base}/locations/custpipe/jobs/nightly/playground")
            expect(page.get_by_text("Launch Run").first).to_be_visible(timeout=60_000)
            expect(page.locator(".CodeMirror, .cm-editor").first).to_be_visible()
            # run configuration is the run options, not the resource's paths
            expect(page.get_by_text("run_options").first).to_be_visible()
            assert str(settings.data_dir) not in page.locator("body").inner_text()
            page.screenshot(path=str(artifacts / "03-launchpad.png"))
            browser.close()

    assert outside == [], f"the Dagster UI asked for resources outside the machine: {outside}"
