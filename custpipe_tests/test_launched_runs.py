"""Runs as the UI, the schedule and `custpipe run` make them: in process, under the job of
workspace.yaml's code location, and never failing on the DuckDB lock when two run at once."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import dagster as dg
import pytest

from custpipe.settings import REPO_DIR
from custpipe_tests.conftest import BUSINESS_DATE

CUSTPIPE = Path(sys.executable).parent / "custpipe"
# the steps of assets in the `duckdb_warehouse` pool (custpipe.defs.common.WAREHOUSE_POOL)
POOLED_STEPS = ("staging__", "quality__", "consolidated", "recon__", "publish__")


def _home(tmp_path: Path) -> Path:
    """A DAGSTER_HOME as `make run` makes it (the repository's dagster.yaml), its storage
    created once (as the first `make demo` does) before processes share it."""
    home = tmp_path / "dagster_home"
    home.mkdir()
    shutil.copy(REPO_DIR / "dagster.yaml", home / "dagster.yaml")
    with _instance(home):
        pass
    return home


def _instance(home: Path) -> dg.DagsterInstance:
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _env(settings, home: Path | None) -> dict:
    env = os.environ | {
        "CUSTPIPE_DATA": str(settings.data_dir),
        "CUSTPIPE_CONFIG": str(settings.config_dir),
        "CUSTPIPE_EXPECTATIONS": str(settings.expectations_dir),
        "GX_ANALYTICS_ENABLED": "false",
    }
    env.pop("DAGSTER_HOME", None)
    return env | ({"DAGSTER_HOME": str(home)} if home else {})


def _custpipe_run(env: dict) -> subprocess.Popen:
    return subprocess.Popen(
        [str(CUSTPIPE), "run", "--date", BUSINESS_DATE.isoformat()],
        cwd=REPO_DIR,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def test_the_nightly_job_runs_its_steps_in_the_runs_own_process_with_retries():
    from custpipe.definitions import defs

    job = defs.resolve_job_def("nightly")
    assert job.executor_def is dg.in_process_executor
    # its retries are on by default (executor config `retries: enabled`)
    retries = job.executor_def.config_schema.as_field().default_value["retries"]
    assert "enabled" in retries
    graph = defs.resolve_asset_graph()
    for key in (dg.AssetKey(["extract", "erp"]), dg.AssetKey(["publish", "erp_customers"])):
        assert graph.get(key).assets_def.op.retry_policy.max_retries == 2


def _assert_runs_of_the_workspace_job(instance, env: dict, runs: list) -> None:
    """`custpipe run`s are runs of the nightly job of the workspace's code location: the UI
    lists them under the job, and the job the webserver loads is theirs (same origin and
    snapshot, so Re-execute does not warn that the job differs)."""
    from dagster._core.storage.tags import REPOSITORY_LABEL_TAG
    from dagster._core.workspace.load import load_workspace_process_context_from_yaml_paths

    for run in runs:
        assert run.job_name == "nightly"
        assert run.remote_job_origin.location_name == "custpipe"
        assert run.remote_job_origin.job_name == "nightly"
        assert run.tags["dagster/partition"] == BUSINESS_DATE.isoformat()
    under_job = instance.get_runs(
        dg.RunsFilter(job_name="nightly", tags={REPOSITORY_LABEL_TAG: "__repository__@custpipe"})
    )
    assert sorted(r.run_id for r in under_job) == sorted(r.run_id for r in runs)
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with load_workspace_process_context_from_yaml_paths(
            instance, [str(REPO_DIR / "workspace.yaml")]
        ) as context:
            location = context.create_request_context().get_code_location("custpipe")
            remote_job = location.get_repository("__repository__").get_full_job("nightly")
            for run in runs:
                assert remote_job.get_remote_origin() == run.remote_job_origin
                assert remote_job.identifying_job_snapshot_id == run.job_snapshot_id
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


@pytest.mark.parametrize("with_instance", [True, False], ids=["dagster_home", "no_instance"])
def test_two_runs_started_together_both_succeed(demo_copy, tmp_path, with_instance):
    """The second run waits for the first's end (the deployment's run lock), with or without
    a Dagster instance: no warehouse step of one run between two of the other, no staging of
    a landing folder the other run is still writing. With an instance, both are runs of the
    nightly job of the workspace's code location."""
    deployment, _, _ = demo_copy
    home = _home(tmp_path) if with_instance else None
    env = _env(deployment.settings, home)
    runs = [_custpipe_run(env), _custpipe_run(env)]
    outputs = [run.communicate(timeout=1200)[0] for run in runs]
    for run, out in zip(runs, outputs, strict=True):
        assert run.returncode == 0, out
        # waiting for the other's lock is logged; giving up on it would name the timeout
        assert ": succeeded" in out and "was not released within" not in out, out
        assert "nightly run " in out and "custpipe summary" in out
    waited = [out for out in outputs if "is in progress: this run waits for it to end" in out]
    assert len(waited) == 1, outputs
    if not with_instance:
        return
    with _instance(home) as instance:
        records = instance.get_runs()
        assert len(records) == 2
        assert all(r.status == dg.DagsterRunStatus.SUCCESS for r in records)
        _assert_runs_of_the_workspace_job(instance, env, records)
        windows = []
        for record in records:
            steps: dict[str, list[float]] = {}
            for entry in instance.all_logs(record.run_id):
                event = entry.dagster_event
                # no step failed, not even once before a retry
                assert event is None or event.event_type_value not in (
                    "STEP_FAILURE",
                    "STEP_UP_FOR_RETRY",
                ), entry.message
                kind = event.event_type_value if event else None
                if kind in ("STEP_START", "STEP_SUCCESS") and event.step_key.startswith(
                    POOLED_STEPS
                ):
                    steps.setdefault(event.step_key, []).append(entry.timestamp)
            assert len(steps) >= 10, steps  # the run's warehouse steps all ran
            windows += [(min(t), max(t), record.run_id) for t in steps.values()]
    windows.sort()
    for (_, end, run_a), (start, _, run_b) in zip(windows, windows[1:], strict=False):
        assert start >= end, f"warehouse steps of runs {run_a} and {run_b} overlapped"


def test_every_step_that_opens_the_warehouse_is_in_the_pool():
    """Every asset but the extracts (which write only the landing zone) opens the DuckDB
    file, and so does the model training op: all in `duckdb_warehouse`."""
    from custpipe.definitions import defs

    graph = defs.resolve_asset_graph()
    for key in graph.get_all_asset_keys():
        pools = graph.get(key).pools
        if key.path[0] == "extract":
            assert not pools, key
        else:
            assert pools == {"duckdb_warehouse"}, key
    (node,) = defs.resolve_job_def("train_match_model").nodes
    assert node.definition.pool == "duckdb_warehouse"


def test_the_bench_report_compares_the_launched_run_with_the_in_process_one():
    from custpipe import bench

    first = {
        "label": "first run",
        "seconds": 40.0,
        "peak_mb": 900,
        "rows_published": 10,
        "stages": {},
        "standardise_customers": {},
    }
    phases = {"queued": 1.5, "worker_start": 6.0, "job_setup": 1.0, "steps": 39.0}
    launched = {"seconds": 48.0, "seconds_with_cli": 55.0, "ratio": 1.2, "status": "SUCCESS"}
    res = {
        "scale": 100_000,
        "generation": {"source_records": 100_000, "order_rows": 0, "seconds": 1.0, "cached": True},
        "runs": [first],
        "launched": launched | {"success": True, "phases": phases | {"teardown": 0.5}},
        "matching": {
            "custpipe": {"seconds": 1.0, "f1": 0.99},
            "baseline": {"seconds": 1.0, "peak_mb": 1, "f1": 0.99},
        },
        "records_per_second": 2500,
        "rerun_share": 0.1,
        "change_share": 0.2,
    }
    text = bench.format_report({"machine": {}, "scales": [res]})
    assert "launched through the daemon" in text and "48.0 s" in text and "1.20x" in text
    checked = {what: (measured, ok) for what, measured, ok in bench.targets({"scales": [res]})}
    target = "100,000 records, first run launched through the daemon <= 1.3x the in-process run"
    assert checked[target] == ("48.0 s vs 40.0 s, 1.20x (SUCCESS)", True)
    res["launched"] |= {"seconds": 60.0, "ratio": 1.5}
    assert not dict((w, ok) for w, _, ok in bench.targets({"scales": [res]}))[target]
    res["launched"] |= {"seconds": 30.0, "ratio": 0.75, "success": False, "status": "FAILURE"}
    assert not dict((w, ok) for w, _, ok in bench.targets({"scales": [res]}))[target]


def test_the_bench_launches_a_run_through_the_daemon(demo_copy, monkeypatch):
    """`make bench`'s launched run on the demo deployment: a temporary instance, the daemon
    on workspace.yaml, `dagster job launch`; its phases add up to its end-to-end time."""
    from custpipe import bench

    deployment, _, _ = demo_copy
    settings = deployment.settings
    monkeypatch.setenv("CUSTPIPE_CONFIG", str(settings.config_dir))
    monkeypatch.setenv("CUSTPIPE_EXPECTATIONS", str(settings.expectations_dir))
    log = settings.data_dir.parent / "launched.log"
    figures = bench.launched_run(settings.data_dir, log)
    assert figures["success"], log.read_text()
    assert figures["rows_published"] == 0  # the demo's first run published everything
    assert abs(sum(figures["phases"].values()) - figures["seconds"]) < 0.1
    assert figures["seconds_with_cli"] >= figures["seconds"] > figures["phases"]["steps"] > 0
    with _instance(settings.data_dir / "dagster_home") as instance:
        (run,) = instance.get_runs()
        assert run.run_id == figures["run_id"]
        assert run.remote_job_origin.location_name == "custpipe"
        assert run.tags["dagster/partition"] == BUSINESS_DATE.isoformat()


def test_a_workspace_file_custpipe_run_cannot_use_is_a_clear_error(tmp_path):
    from custpipe.defs.workspace_run import WorkspaceError, workspace_job

    with dg.DagsterInstance.ephemeral() as instance:
        missing = tmp_path / "workspace.yaml"
        with (
            pytest.raises(WorkspaceError, match="no workspace file .*unset DAGSTER_HOME"),
            workspace_job(instance, "nightly", missing),
        ):
            pass
        two = tmp_path / "two.yaml"
        two.write_text(
            "load_from:\n"
            "  - python_module: {module_name: custpipe.definitions, location_name: a}\n"
            "  - python_module: {module_name: custpipe.definitions, location_name: b}\n"
        )
        with (
            pytest.raises(WorkspaceError, match="exactly one Python code location .*loads 2"),
            workspace_job(instance, "nightly", two),
        ):
            pass


def test_a_second_run_lock_waits_for_the_first_then_names_it_on_timeout(tmp_path):
    import threading
    import time

    from custpipe.runlock import RunLock, RunLockTimeout

    first = RunLock(tmp_path, "run-one")
    first.acquire(timeout=0)
    told: list[str] = []
    with pytest.raises(RunLockTimeout, match=r"\(run run-one, PID \d+\) has held .*run.lock"):
        RunLock(tmp_path, "run-two").acquire(timeout=0.6, on_wait=told.append)
    assert len(told) == 1 and "run run-one" in told[0] and "waits for it to end" in told[0]
    threading.Timer(0.5, first.release).start()
    second = RunLock(tmp_path, "run-two")
    started = time.monotonic()
    second.acquire(timeout=30)  # waits for the first run's end, then holds the lock
    assert time.monotonic() - started >= 0.4
    second.release()
