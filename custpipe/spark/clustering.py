"""Clustering on Spark: Splink's connected components over the night's links.

Splink labels each component with its smallest node id, which is the label the DuckDB
engine's label propagation gives (custpipe.matching.linking.connected_components), so the
golden-ID rules that follow see the same clusters. The label is checked, not assumed: the
labels are recomputed as the smallest node of each of Splink's clusters.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

_ITERATION = re.compile(r"Completed iteration (\d+)")


class _Iterations(logging.Handler):
    """Counts the iterations Splink's connected components logs (its only report of them)."""

    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.count = 0

    def emit(self, record: logging.LogRecord) -> None:
        found = _ITERATION.match(record.getMessage())
        if found:
            self.count = max(self.count, int(found.group(1)))


def components(session, nodes: Path, edges: Path, out: Path) -> int:
    """The connected components of `nodes` (node) over `edges` (a, b), both Parquet files,
    on `session`: the executors write (node, label), each node's label the smallest node of
    its component, as Parquet parts in the folder `out`; returns the iterations Splink took."""
    from pyspark.sql import functions as F
    from pyspark.sql.window import Window
    from splink.backends.spark import SparkAPI
    from splink.clustering import cluster_pairwise_predictions_at_threshold

    from custpipe.spark.sql import write_result

    db_api = SparkAPI(spark_session=session)
    splink_logger = logging.getLogger("splink.internals.connected_components")
    iterations, level, propagate = _Iterations(), splink_logger.level, splink_logger.propagate
    splink_logger.addHandler(iterations)
    splink_logger.setLevel(logging.INFO)  # counted here, not printed: the step reports it
    splink_logger.propagate = False
    try:
        clusters = cluster_pairwise_predictions_at_threshold(
            session.read.parquet(str(nodes)).select("node"),
            session.read.parquet(str(edges)).select("a", "b"),
            db_api,
            node_id_column_name="node",
            edge_id_column_name_left="a",
            edge_id_column_name_right="b",
        )
        try:
            frame = clusters.as_spark_dataframe()
            write_result(
                frame.select(
                    "node", F.min("node").over(Window.partitionBy("cluster_id")).alias("label")
                ),
                out,
            )
            return iterations.count
        finally:
            clusters.drop_table_from_database_and_remove_from_cache()
    finally:
        splink_logger.removeHandler(iterations)
        splink_logger.setLevel(level)
        splink_logger.propagate = propagate
