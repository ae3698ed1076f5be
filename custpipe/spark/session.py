"""The Spark session of a custpipe process, set up as Splink's Spark backend needs it.

One session per process (Spark's own rule), built on first use from the deployment's
`spark:` settings: the master (CUSTPIPE_SPARK_MASTER wins over `spark.master`), Splink's
similarity-functions jar on the classpath, a checkpoint folder under the data folder (Splink
checkpoints between its steps), Arrow transfers on, UTC session time, no web UI, and
`spark.conf` last so that a deployment can override any of it. Errors name what to install.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from custpipe.config import SparkConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MASTER_ENV = "CUSTPIPE_SPARK_MASTER"
_INSTALL = "install it with `pip install 'custpipe[spark]'` (make test does)"


def java_problem() -> str | None:
    """Why Spark cannot start a JVM here (None: a Java 17 or later runs)."""
    java = Path(os.environ["JAVA_HOME"]) / "bin" / "java" if os.environ.get("JAVA_HOME") else None
    command = str(java) if java and java.exists() else shutil.which("java")
    if command is None:
        return (
            "no Java runtime: Spark needs Java 17 or later (Debian: apt-get install "
            "openjdk-17-jre-headless; or set JAVA_HOME)"
        )
    done = subprocess.run([command, "-version"], capture_output=True, text=True, timeout=60)
    text = done.stderr + done.stdout
    for token in text.replace('"', " ").split():
        parts = token.split(".")
        if len(parts) > 1 and parts[0].isdigit():
            # "17.0.15", "21.0.2"; Java 8 and older say "1.8.0_392"
            major = int(parts[1]) if parts[0] == "1" and parts[1].isdigit() else int(parts[0])
            return None if major >= 17 else f"{command} is Java {major}; Spark 4 needs 17+"
    return f"{command} -version printed no version ({text.strip()[:200]})"


def spark_problem() -> str | None:
    """Why `engine: spark` cannot run here (pyspark missing, no Java 17+), None if it can."""
    try:
        import pyspark  # noqa: F401
    except ImportError:
        return f"pyspark is not installed: {_INSTALL}"
    problem = java_problem()
    return None if problem is None else problem


def master(cfg: SparkConfig) -> str:
    """The Spark master a session starts on: CUSTPIPE_SPARK_MASTER, else `spark.master`."""
    return os.environ.get(MASTER_ENV) or cfg.master


def describe(cfg: SparkConfig) -> str:
    """Where Spark work runs, for a run's metadata: `spark (master <url>)`."""
    return f"spark (master {master(cfg)})"


def settings_for(cfg: SparkConfig, work_dir: Path) -> dict[str, str]:
    """The Spark settings custpipe starts its session with (`cfg.conf` last)."""
    from splink.backends.spark import similarity_jar_location

    local = work_dir / "local"
    return {
        "spark.master": master(cfg),
        "spark.app.name": "custpipe",
        "spark.jars": similarity_jar_location(),
        "spark.sql.execution.arrow.pyspark.enabled": "true",
        "spark.sql.session.timeZone": "UTC",
        "spark.ui.enabled": "false",
        "spark.ui.showConsoleProgress": "false",
        "spark.sql.shuffle.partitions": "8",
        # local mode runs the executors in the driver's JVM: the rows to map and Splink's
        # pairs pass through it (1g, Spark's default, ran out at 100,000 records)
        "spark.driver.memory": "4g",
        "spark.local.dir": str(local),
        "spark.sql.warehouse.dir": str(work_dir / "spark-warehouse"),  # not the cwd
        # scratch files under the data folder; Spark logs errors only (its default prints
        # every INFO line of its start to the night's stderr)
        "spark.driver.extraJavaOptions": f"-Djava.io.tmpdir={local} "
        f"-Dlog4j2.configurationFile={Path(__file__).with_name('log4j2.properties')}",
    } | dict(cfg.conf)


def spark_session(cfg: SparkConfig, work_dir: Path) -> SparkSession:
    """The process's Spark session (built on first call); its checkpoints and scratch files
    go under `work_dir` (custpipe passes `<data>/spark`)."""
    problem = spark_problem()
    if problem:
        raise RuntimeError(f"engine: spark cannot start: {problem}")
    from pyspark.sql import SparkSession

    active = SparkSession.getActiveSession()
    if active is not None:
        return active
    # the workers run this process's Python (its packages: pandas, DuckDB) unless the
    # environment names another (PYSPARK_PYTHON: a cluster's executors' own)
    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    work_dir = Path(work_dir)
    (work_dir / "local").mkdir(parents=True, exist_ok=True)
    builder = SparkSession.builder
    for key, value in settings_for(cfg, work_dir).items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    session.sparkContext.setCheckpointDir(str(work_dir / "checkpoints"))
    return session
