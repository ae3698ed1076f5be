"""Tables between the warehouse and Spark, as Parquet files in `spark.tables`.

A piece of Spark work (pair scoring, clustering, survivorship, the order findings) reads
tables the warehouse holds and makes one table. DuckDB writes each table it reads as a
Parquet file (``COPY ... TO``, from DuckDB's own threads: no row passes through Python; the
match input, made in Python, is written from Arrow), Spark's executors write its result as a
folder of Parquet parts (``DataFrame.write``), and DuckDB reads that folder back. Each piece
of work gets its own folder under the configured location, removed once its result is in the
warehouse. On a cluster the location is storage that this process, the driver and the
executors all reach (README "Spark").
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq


def _literal(path: Path) -> str:
    return "'" + str(path).replace("'", "''") + "'"


@dataclass(frozen=True)
class Exchange:
    """The folder of one piece of Spark work: its input files and its result folder."""

    folder: Path

    def put(self, con: duckdb.DuckDBPyConnection, name: str, select: str) -> Path:
        """Write the rows of `select` (DuckDB SQL, no parameters) as `<name>.parquet`;
        nanosecond timestamps (a pandas frame's) as microseconds, which Spark reads (the
        warehouse's own are microseconds)."""
        path = self.folder / f"{name}.parquet"
        columns = con.execute(f"DESCRIBE ({select})").fetchall()
        nanos = [f'"{c}"::TIMESTAMP AS "{c}"' for c, kind, *_ in columns if kind == "TIMESTAMP_NS"]
        if nanos:
            select = f"SELECT * REPLACE ({', '.join(nanos)}) FROM ({select})"
        con.execute(f"COPY ({select}) TO {_literal(path)} (FORMAT parquet)")
        return path

    def put_arrow(self, name: str, table: pa.Table) -> Path:
        """Write `table` (rows made in Python) as `<name>.parquet`, timestamps in
        microseconds (Spark reads no nanoseconds; a value they would truncate raises)."""
        path = self.folder / f"{name}.parquet"
        pq.write_table(table, path, coerce_timestamps="us")
        return path

    @property
    def result(self) -> Path:
        """The folder Spark writes the work's result to."""
        return self.folder / "result"


def parts(folder: Path) -> str:
    """DuckDB's relation of the Parquet parts Spark wrote to `folder`."""
    if not any(Path(folder).glob("*.parquet")):
        raise RuntimeError(
            f"Spark wrote no Parquet file to {folder}: its result is missing (the step's "
            "stderr holds Spark's output)"
        )
    return f"read_parquet({_literal(Path(folder) / '*.parquet')})"


@contextmanager
def exchange(root: Path) -> Iterator[Exchange]:
    """A new folder under `root` for one piece of Spark work, removed when the block ends."""
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="work-", dir=root))
    try:
        yield Exchange(folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
