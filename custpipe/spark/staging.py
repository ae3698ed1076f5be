"""Staging's mapping and standardisation on Spark (`engine: spark`).

Staging maps a landing's changed rows batch by batch (custpipe.mapping.stage); on Spark the
same batches go to the executors, several at a time, each mapped by the same stager
function there (the pandas standardisers run in the executors' Python), and come back in
their order. The batches are the DuckDB engine's, row for row, so whatever a stager decides
within a batch (a duplicate id among its rows, the counts of mapping issues) is decided the
same way: the staged tables are equal, not just alike.

The rows travel from the driver and back (the driver reads the landing and writes the
warehouse); reading the landing Parquet in the executors is the way beyond one driver's
memory (README "Spark": the plan for 100M records).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Iterator
from itertools import islice
from typing import Any


def stage_on_spark(
    session, stager: Callable, batches: Iterable[tuple[int, Any, Any]], source, arrow: bool
) -> Iterator[tuple[int, Any, Any, Any, float]]:
    """Per batch (start, mask, raw rows), in order: (start, mask, staged, issues, seconds),
    mapped by `stager(raw, source, arrow=arrow)` on the executors, as many batches at a time
    as the session has task slots; `seconds` is the wall time of the batch's Spark job,
    shared by the batches mapped together."""
    slots = max(1, session.sparkContext.defaultParallelism)
    batches = iter(batches)
    while chunk := list(islice(batches, slots)):
        started = time.perf_counter()
        items = [(i, raw) for i, (_, _, raw) in enumerate(chunk)]
        rdd = session.sparkContext.parallelize(items, len(items))
        mapped = dict(
            rdd.map(lambda item: (item[0], stager(item[1], source, arrow=arrow))).collect()
        )
        seconds = (time.perf_counter() - started) / len(chunk)
        for i, (start, mask, _) in enumerate(chunk):
            staged, issues = mapped[i]
            yield start, mask, staged, issues, seconds
