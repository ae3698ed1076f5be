"""Shared fixtures: a generated demo deployment in a temp dir, and the nightly run on it."""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")

from custpipe.settings import DEFAULT_CONFIG_DIR, DEFAULT_EXPECTATIONS_DIR, Settings  # noqa: E402

BUSINESS_DATE = date(2026, 11, 27)
DEMO_CUSTOMERS = 400


@dataclass
class Deployment:
    settings: Settings
    ground_truth: Path


def make_deployment(
    root: Path,
    customers: int = DEMO_CUSTOMERS,
    seed: int = 7,
    config_dir: Path = DEFAULT_CONFIG_DIR,
    business_date: date = BUSINESS_DATE,
) -> Deployment:
    """Generate demo sources under `root` and return settings pointing at them."""
    from custpipe.demo.generate import generate_demo

    data = root / "data"
    generate_demo(data / "sources", customers=customers, seed=seed, business_date=business_date)
    settings = Settings(
        config_dir=config_dir, data_dir=data, expectations_dir=DEFAULT_EXPECTATIONS_DIR
    )
    return Deployment(settings, data / "sources" / "ground_truth")


def run_nightly(
    settings: Settings, instance=None, raise_on_error: bool = False, day: date = BUSINESS_DATE
):
    """Execute the nightly job in process for a business date (default BUSINESS_DATE)."""
    import dagster as dg

    from custpipe.definitions import build_definitions

    job = build_definitions(settings).resolve_job_def("nightly")
    return job.execute_in_process(
        partition_key=day.isoformat(),
        instance=instance or dg.DagsterInstance.ephemeral(),
        raise_on_error=raise_on_error,
    )


@pytest.fixture(scope="session")
def _demo_pristine(tmp_path_factory):
    """One deployment after one nightly run, and a snapshot of it to restore it from."""
    import shutil

    import dagster as dg

    root = tmp_path_factory.mktemp("demo")
    # At 400 customers the model is sure of nearly every pair (all above 0.999); a stricter
    # auto-merge threshold gives the steward tests a queue to work on.
    config = root / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    pipeline = config / "pipeline.yaml"
    text = pipeline.read_text(encoding="utf-8")
    assert "auto_merge: 0.99 " in text
    pipeline.write_text(text.replace("auto_merge: 0.99 ", "auto_merge: 0.99999 "), encoding="utf-8")
    deployment = make_deployment(root, config_dir=config)
    instance = dg.DagsterInstance.ephemeral()
    first = run_nightly(deployment.settings, instance)
    snapshot = tmp_path_factory.mktemp("demo-snapshot") / "root"
    shutil.copytree(root, snapshot, symlinks=True)
    return deployment, instance, first, root, snapshot


@pytest.fixture(scope="session")
def demo_run(_demo_pristine):
    """The shared deployment after its first nightly run, for tests that only READ it.

    A test that changes it (another nightly, a decision, a model) takes `demo_copy` instead.
    """
    deployment, instance, first, _, _ = _demo_pristine
    return deployment, instance, first


@pytest.fixture
def demo_copy(_demo_pristine):
    """The same deployment for a test that changes it, with a fresh Dagster instance.

    It is the shared deployment's own folder (the warehouse keeps absolute landing paths, so
    it must stay where it is), put back from the pristine snapshot after the test, so that the
    test owns every change it makes and no other test sees them.
    """
    import shutil

    import dagster as dg

    deployment, _, first, root, snapshot = _demo_pristine
    instance = dg.DagsterInstance.ephemeral()
    try:
        yield deployment, instance, first
    finally:
        instance.dispose()
        shutil.rmtree(root)
        shutil.copytree(snapshot, root, symlinks=True)


def send_failure_alert(settings: Settings, instance, result) -> None:
    """What the failure sensor does for a failed run (it runs under the daemon otherwise)."""
    import dagster as dg

    from custpipe.defs.alerts import nightly_failure_alert
    from custpipe.defs.resources import CustpipeResource

    failure = next(e for e in result.all_events if e.event_type_value == "PIPELINE_FAILURE")
    context = dg.build_run_status_sensor_context(
        sensor_name="nightly_failure_alert",
        dagster_event=failure,
        dagster_instance=instance,
        dagster_run=result.dagster_run,
        resources={"custpipe": CustpipeResource.from_settings(settings)},
    ).for_run_failure()
    nightly_failure_alert(context)


def require_services() -> bool:
    """In CI (CUSTPIPE_REQUIRE_SERVICES=1) a missing database server fails instead of skipping."""
    return os.environ.get("CUSTPIPE_REQUIRE_SERVICES") == "1"


def require_server(url: str, name: str) -> None:
    """Skip the test when the database server at `url` cannot be reached; fail it in CI."""
    import sqlalchemy as sa

    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
    except sa.exc.OperationalError as exc:
        message = f"{name} server not reachable at {engine.url.render_as_string()}: {exc}"
        if require_services():
            pytest.fail(message + " (CUSTPIPE_REQUIRE_SERVICES=1: it must run here)")
        pytest.skip(message)
    finally:
        engine.dispose()


@pytest.fixture
def empty_warehouse():
    """An in-memory DuckDB holding the warehouse's tables, empty."""
    import duckdb

    from custpipe.warehouse import DDL

    con = duckdb.connect()
    con.execute(DDL)
    yield con
    con.close()


def stage_landed(con, tmp_path: Path, ids: list[str], source: str = "erp") -> Path:
    """Staged customer records `ids` of `source`, each in one landing folder that counts them."""
    import json

    import pandas as pd

    from custpipe.warehouse import append_rows

    landing = tmp_path / "landing" / "2026-11-27" / source / "20261128T000000Z" / "customers"
    landing.mkdir(parents=True)
    (landing / "manifest.json").write_text(json.dumps({"rows": len(ids)}))
    staged = {"source_system": source, "source_id": ids, "landing_path": str(landing)}
    append_rows(con, "staging.customers", pd.DataFrame(staged))
    return landing


@pytest.fixture
def config_dir(tmp_path) -> Path:
    """A copy of the demo configuration folder, to edit."""
    target = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, target)
    return target


def edit(path: Path, old: str, new: str) -> None:
    """Replace the first `old` in a configuration file by `new`; `old` must be there."""
    text = path.read_text(encoding="utf-8")
    assert old in text, f"fixture text {old!r} not in {path.name}"
    path.write_text(text.replace(old, new, 1), encoding="utf-8")


@dataclass
class Webhook:
    """A loopback HTTP server that records the JSON bodies POSTed to it."""

    url: str
    received: list
    status: int = 200
    delay: float = 0.0


@pytest.fixture
def webhook():
    """An alert webhook on 127.0.0.1 (http.server in a thread); set `status`/`delay` to fail."""
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    hook = Webhook("", [])

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self):  # noqa: N802 - http.server's name
            body = self.rfile.read(int(self.headers["Content-Length"]))
            time.sleep(hook.delay)
            hook.received.append((self.path, self.headers["Content-Type"], json.loads(body)))
            self.send_response(hook.status)
            self.end_headers()

        def log_message(self, *args):  # keep the test output quiet
            return None

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    hook.url = f"http://127.0.0.1:{server.server_address[1]}/hooks/T0KEN-secret"
    try:
        yield hook
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=10)
