"""Where custpipe's Spark work runs (`spark.launch` in pipeline.yaml).

- ``session`` (the default): in this process's Spark session (custpipe.spark.session), the
  executors on the master the deployment names. One JVM for the whole night.
- ``submit``: every piece of Spark work (one landing's batches to map, one night's pairs to
  score, its clusters to label, its golden records to build) is a `spark-submit` of
  :mod:`custpipe.spark.job`, launched through Dagster Pipes: the job's log lines and figures
  reach the step's event log. The rows travel as files in a request folder under
  ``<data>/spark/requests/`` (removed afterwards); the driver runs in the submitted process
  (client mode), so a cluster manager can place it elsewhere once the request folder is on
  storage both sides reach.

Both runners do the same work with the same functions (:func:`stage_on_spark`,
:func:`score_levels`, :func:`components`, :func:`run_query`), so their results are equal;
only where the driver lives differs. Pair scoring, clustering and the queries read and write
their tables as Parquet in an exchange folder under ``spark.tables`` (custpipe.spark.exchange),
which a submitted job is handed by path.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import sys
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import AbstractContextManager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from custpipe.config import SparkConfig
from custpipe.spark.exchange import Exchange, exchange
from custpipe.spark.session import describe, master, settings_for, spark_session

#: Runs `command` (spark-submit) with `extras` handed to the job; returns the job's reported
#: messages. The Dagster shell's launcher goes through Dagster Pipes (custpipe.defs.resources).
Launch = Callable[[list[str], dict[str, Any]], list[dict[str, Any]]]

SUBMIT_ENV = "CUSTPIPE_SPARK_SUBMIT"


@dataclass(frozen=True)
class InSession:
    """Spark work in this process's session (started at the first piece of work)."""

    cfg: SparkConfig
    work_dir: Path
    tables: Path | None = None  # spark.tables (default: <work_dir>/tables)

    def exchange(self) -> AbstractContextManager[Exchange]:
        """A folder for one piece of work's tables (custpipe.spark.exchange)."""
        return exchange(self.tables or self.work_dir / "tables")

    def session(self):
        """The process's Spark session (custpipe.spark.session.spark_session)."""
        return spark_session(self.cfg, self.work_dir)

    def describe(self) -> str:
        """Where the work runs, for a run's metadata."""
        return describe(self.cfg)

    def map_batches(
        self, stager: Callable, batches: Iterable[tuple], source, arrow: bool
    ) -> Iterator[tuple]:
        """Map staging's batches on the executors (custpipe.spark.staging.stage_on_spark)."""
        from custpipe.spark.staging import stage_on_spark

        return stage_on_spark(self.session(), stager, batches, source, arrow)

    def score(self, frame: Path, settings: dict[str, Any], threshold: float, out: Path) -> None:
        """Score `frame`'s pairs into `out` (custpipe.spark.scoring.score_levels)."""
        from custpipe.spark.scoring import score_levels

        score_levels(self.session(), frame, settings, threshold, out)

    def components(self, nodes: Path, edges: Path, out: Path) -> int:
        """Label the components of `nodes` over `edges` into `out`; the iterations
        (custpipe.spark.clustering)."""
        from custpipe.spark.clustering import components

        return components(self.session(), nodes, edges, out)

    def query(
        self, sql: str, tables: dict[str, Path], out: Path, params: dict[str, Any] | None = None
    ) -> None:
        """Run DuckDB's `sql` over `tables` on Spark into `out` (custpipe.spark.sql.run_query)."""
        from custpipe.spark.sql import run_query

        run_query(self.session(), sql, tables, out, params)


def spark_submit() -> str:
    """The spark-submit to launch: CUSTPIPE_SPARK_SUBMIT, else $SPARK_HOME/bin/spark-submit
    (a cluster's own Spark), else the one pyspark ships."""
    if os.environ.get(SUBMIT_ENV):
        return os.environ[SUBMIT_ENV]
    if os.environ.get("SPARK_HOME"):
        return str(Path(os.environ["SPARK_HOME"]) / "bin" / "spark-submit")
    import pyspark

    return str(Path(pyspark.__file__).parent / "bin" / "spark-submit")


def submit_command(cfg: SparkConfig, work_dir: Path) -> list[str]:
    """spark-submit of custpipe.spark.job with the settings a session would start with."""
    from custpipe.spark import job

    settings = settings_for(cfg, work_dir)
    command = [spark_submit(), "--master", settings.pop("spark.master")]
    for key, value in settings.items():
        command += ["--conf", f"{key}={value}"]
    return [*command, str(Path(job.__file__).resolve())]


def submit_env() -> dict[str, str]:
    """The job's Python: the executors' and the driver's are this one unless the
    environment names others (PYSPARK_PYTHON, PYSPARK_DRIVER_PYTHON)."""
    return {
        "PYSPARK_PYTHON": os.environ.get("PYSPARK_PYTHON", sys.executable),
        "PYSPARK_DRIVER_PYTHON": os.environ.get("PYSPARK_DRIVER_PYTHON", sys.executable),
    }


@dataclass(frozen=True)
class Submitted:
    """Spark work as spark-submit jobs launched by `launch` (see the module docstring)."""

    cfg: SparkConfig
    work_dir: Path
    launch: Launch
    tables: Path | None = None  # spark.tables (default: <work_dir>/tables)

    def exchange(self) -> AbstractContextManager[Exchange]:
        """A folder for one piece of work's tables (custpipe.spark.exchange)."""
        return exchange(self.tables or self.work_dir / "tables")

    def describe(self) -> str:
        """Where the work runs, for a run's metadata."""
        return f"spark-submit through Dagster Pipes (master {master(self.cfg)})"

    def _run(self, task: str, request: Path, **extras: Any) -> dict[str, Any]:
        """Launch the job for `task` on `request`; its closing message (rows, seconds)."""
        (self.work_dir / "local").mkdir(parents=True, exist_ok=True)
        extras = {
            "task": task,
            "request": str(request),
            "checkpoints": str(self.work_dir / "checkpoints"),
        } | extras
        messages = self.launch(submit_command(self.cfg, self.work_dir), extras)
        done = [m for m in messages if isinstance(m, dict) and m.get("task") == task]
        if not done:
            raise RuntimeError(
                f"spark-submit of custpipe's {task} job ended without reporting its result "
                "(the step's stderr holds the job's output)"
            )
        return done[-1]

    def _request(self) -> Path:
        folder = self.work_dir / "requests"
        folder.mkdir(parents=True, exist_ok=True)
        return Path(tempfile.mkdtemp(prefix="request-", dir=folder))

    def score(self, frame: Path, settings: dict[str, Any], threshold: float, out: Path) -> None:
        """Score `frame`'s pairs into `out` in a submitted job
        (custpipe.spark.scoring.score_levels)."""
        (out.parent / "settings.json").write_text(json.dumps(settings), encoding="utf-8")
        self._run(
            "score",
            out,
            frame=str(frame),
            settings=str(out.parent / "settings.json"),
            threshold=threshold,
        )

    def components(self, nodes: Path, edges: Path, out: Path) -> int:
        """Label the components in a submitted job (custpipe.spark.clustering); the
        iterations."""
        done = self._run("components", out, nodes=str(nodes), edges=str(edges))
        return int(done["iterations"])

    def query(
        self, sql: str, tables: dict[str, Path], out: Path, params: dict[str, Any] | None = None
    ) -> None:
        """Run DuckDB's `sql` over `tables` into `out` in a submitted job
        (custpipe.spark.sql.run_query)."""
        spec = {"sql": sql, "tables": {k: str(v) for k, v in tables.items()}}
        (out.parent / "query.json").write_text(
            json.dumps(spec | {"params": params or {}}), encoding="utf-8"
        )
        self._run("query", out, spec=str(out.parent / "query.json"))

    def map_batches(
        self, stager: Callable, batches: Iterable[tuple], source, arrow: bool
    ) -> Iterator[tuple]:
        """Map staging's batches in one submitted job; yield as
        custpipe.spark.staging.stage_on_spark does, in order."""
        request = self._request()
        try:
            kept = []
            with open(request / "stager.pkl", "wb") as fh:
                pickle.dump((stager, source, arrow), fh)
            for number, (start, mask, raw) in enumerate(batches):
                with open(request / f"batch-{number:05d}.pkl", "wb") as fh:
                    pickle.dump(raw, fh, protocol=pickle.HIGHEST_PROTOCOL)
                kept.append((start, mask))
            if not kept:
                return
            self._run("stage", request, batches=len(kept))
            for number, (start, mask) in enumerate(kept):
                with open(request / f"mapped-{number:05d}.pkl", "rb") as fh:
                    staged, issues, seconds = pickle.load(fh)
                yield start, mask, staged, issues, seconds
        finally:
            shutil.rmtree(request, ignore_errors=True)


SparkRunner = InSession | Submitted


def runner(
    cfg: SparkConfig, work_dir: Path, launch: Launch | None, tables: Path | None = None
) -> SparkRunner:
    """The runner `cfg.launch` asks for; `launch` (a Pipes launcher) is needed for submit;
    `tables`: where tables are exchanged (spark.tables; default <work_dir>/tables)."""
    if cfg.launch == "submit":
        if launch is None:
            raise ValueError("spark.launch: submit needs a launcher (a Dagster step's Pipes)")
        return Submitted(cfg, Path(work_dir), launch, tables)
    return InSession(cfg, Path(work_dir), tables)
