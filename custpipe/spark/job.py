"""The spark-submit side of `spark.launch: submit` (custpipe.spark.runners.Submitted).

Run by spark-submit, launched through Dagster Pipes: the extras name the task (``score``,
``stage``, ``components`` or ``query``) and its request folder (for ``score``, ``components``
and ``query``: the folder the executors write the result to, with the paths of the Parquet
files they read). The job does the task with the functions the in-process session uses,
writes the result, and reports the number of rows and its seconds back to the step (counts
only: no customer value leaves in a message).
"""

from __future__ import annotations

import json
import pickle
import time
from pathlib import Path


def written_rows(folder: Path) -> int:
    """The rows of the Parquet parts in `folder` (from their footers)."""
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(part).metadata.num_rows for part in folder.glob("*.parquet"))


def score(session, out: Path, frame: Path, settings: Path, threshold: float) -> int:
    """The match input `frame` (Parquet) + Splink settings (JSON) -> the pairs' parts in
    `out`; the number of pairs."""
    from custpipe.spark.scoring import score_levels

    settings = json.loads(settings.read_text(encoding="utf-8"))
    score_levels(session, frame, settings, threshold, out)
    return written_rows(out)


def components(session, out: Path, nodes: Path, edges: Path) -> tuple[int, int]:
    """nodes + edges (Parquet) -> the labels' parts in `out`; (nodes, iterations)."""
    from custpipe.spark.clustering import components

    iterations = components(session, nodes, edges, out)
    return written_rows(out), iterations


def query(session, out: Path, spec: Path) -> int:
    """The query of `spec` (query.json: sql, tables by path, params) -> its parts in `out`;
    the result's rows."""
    from custpipe.spark.sql import run_query

    spec = json.loads(spec.read_text(encoding="utf-8"))
    tables = {name: Path(path) for name, path in spec["tables"].items()}
    run_query(session, spec["sql"], tables, out, spec["params"])
    return written_rows(out)


def stage(session, request: Path, batches: int) -> int:
    """stager.pkl + batch-NNNNN.pkl -> mapped-NNNNN.pkl (staged, issues, seconds); rows."""
    from custpipe.spark.staging import stage_on_spark

    with open(request / "stager.pkl", "rb") as fh:
        stager, source, arrow = pickle.load(fh)

    def raw_batches():
        for number in range(batches):
            with open(request / f"batch-{number:05d}.pkl", "rb") as fh:
                yield number, None, pickle.load(fh)

    rows = 0
    for number, _, staged, issues, seconds in stage_on_spark(
        session, stager, raw_batches(), source, arrow
    ):
        rows += len(staged)
        with open(request / f"mapped-{number:05d}.pkl", "wb") as fh:
            pickle.dump((staged, issues, seconds), fh, protocol=pickle.HIGHEST_PROTOCOL)
    return rows


def main() -> None:
    """Do the task the Pipes extras name and report its figures."""
    from dagster_pipes import open_dagster_pipes
    from pyspark.sql import SparkSession

    with open_dagster_pipes() as pipes:
        task, request = pipes.get_extra("task"), Path(pipes.get_extra("request"))
        session = SparkSession.builder.getOrCreate()
        session.sparkContext.setLogLevel("ERROR")
        session.sparkContext.setCheckpointDir(pipes.get_extra("checkpoints"))
        started, figures = time.perf_counter(), {}
        if task == "score":
            frame, settings = Path(pipes.get_extra("frame")), Path(pipes.get_extra("settings"))
            threshold = float(pipes.get_extra("threshold"))
            rows = score(session, request, frame, settings, threshold)
        elif task == "stage":
            rows = stage(session, request, int(pipes.get_extra("batches")))
        elif task == "components":
            nodes, edges = Path(pipes.get_extra("nodes")), Path(pipes.get_extra("edges"))
            rows, figures["iterations"] = components(session, request, nodes, edges)
        elif task == "query":
            rows = query(session, request, Path(pipes.get_extra("spec")))
        else:
            raise ValueError(
                f"unknown task {task!r}: custpipe's Spark job does score, stage, components "
                "or query"
            )
        seconds = round(time.perf_counter() - started, 3)
        master = session.sparkContext.master
        pipes.log.info(f"custpipe Spark {task}: {rows:,} rows in {seconds:.1f} s on {master}")
        pipes.report_custom_message({"task": task, "rows": rows, "seconds": seconds} | figures)
        session.stop()


if __name__ == "__main__":
    main()
