"""Readers for source systems: SQL through SQLAlchemy, CSV, JSON Lines, Parquet.

Every reader yields chunks of raw rows as strings (None for missing), never the whole
table at once, so large sources stream through bounded memory.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pandas as pd
import pyarrow.parquet as pq
import sqlalchemy as sa

from custpipe.config import ReaderConfig


class SourceReadError(RuntimeError):
    """A source could not be read; the message names the source and what to do.

    `retryable` is True where trying again later may help (a database that did not answer),
    False where only a fix will (a missing file, a wrong encoding, a broken line).
    """

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(message)
        self.retryable = retryable


def _as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn every value into its text form, keeping missing values as None."""
    out = frame.astype(object)
    out = out.where(out.notna(), None)
    for col in out.columns:
        out[col] = [
            None if v is None else (v if isinstance(v, str) else _text(v)) for v in out[col]
        ]
    return out


def _text(value: object) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value)) if abs(value) < 1e15 else repr(value)
    if isinstance(value, (dict, list)):
        return json.dumps(value, ensure_ascii=False, sort_keys=True)
    return str(value)


def read_sql(url: str, reader: ReaderConfig, source: str) -> Iterator[pd.DataFrame]:
    """Stream a table or query from a SQL database in chunks."""
    engine = sa.create_engine(url)
    if reader.query:
        statement = sa.text(reader.query)
    else:
        statement = sa.select(sa.text("*")).select_from(sa.table(reader.table))
    try:
        with engine.connect() as conn:
            result = conn.execution_options(stream_results=True).execute(statement)
            columns = list(result.keys())
            for rows in result.partitions(reader.chunk_size):
                yield _as_strings(pd.DataFrame(rows, columns=columns))
    except sa.exc.SQLAlchemyError as exc:
        what = reader.query and "query" or f"table '{reader.table}'"
        raise SourceReadError(
            f"source '{source}': cannot read {what} from {engine.url.render_as_string()}: "
            f"{exc.__class__.__name__}: {str(exc).splitlines()[0]}. "
            "Check the connection URL (environment variable named in the source file) and "
            "that the table exists.",
            retryable=isinstance(exc, sa.exc.OperationalError),
        ) from exc
    finally:
        engine.dispose()


def _require_file(path: Path, source: str) -> None:
    if not path.is_file():
        raise SourceReadError(
            f"source '{source}': file {path} not found. Check the reader 'path' in the source's "
            "configuration and that the export for this business date was delivered."
        )


def read_csv(path: Path, reader: ReaderConfig, source: str) -> Iterator[pd.DataFrame]:
    """Stream a delimited text file in its declared encoding."""
    _require_file(path, source)
    encoding = reader.encoding
    if encoding.lower().replace("-", "") in ("utf8", "utf8sig"):
        encoding = "utf-8-sig"  # tolerate a byte-order mark
    try:
        chunks = pd.read_csv(
            path,
            sep=reader.delimiter,
            encoding=encoding,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            chunksize=reader.chunk_size,
        )
        for chunk in chunks:
            yield _as_strings(chunk)
    except UnicodeDecodeError as exc:
        raise SourceReadError(
            f"source '{source}': {path} is not valid {reader.encoding} (byte {exc.start}): "
            "set 'encoding' in the reader to the file's real encoding (e.g. gb18030, latin-1)."
        ) from exc
    except pd.errors.ParserError as exc:
        raise SourceReadError(
            f"source '{source}': {path} could not be parsed as CSV: {exc}. Check 'delimiter' "
            "and quoting in the export."
        ) from exc


def read_jsonl(path: Path, reader: ReaderConfig, source: str) -> Iterator[pd.DataFrame]:
    """Stream a JSON Lines file; nested objects are flattened to dotted column names."""
    _require_file(path, source)
    batch: list[dict] = []
    with path.open(encoding=reader.encoding) as handle:
        for line_no, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                batch.append(json.loads(line))
            except json.JSONDecodeError as exc:
                raise SourceReadError(
                    f"source '{source}': {path} line {line_no} is not valid JSON ({exc.msg} at "
                    f"column {exc.colno}); fix or remove the line in the export."
                ) from exc
            if len(batch) >= reader.chunk_size:
                yield _as_strings(pd.json_normalize(batch, sep="."))
                batch = []
    if batch:
        yield _as_strings(pd.json_normalize(batch, sep="."))


def read_parquet(path: Path, reader: ReaderConfig, source: str) -> Iterator[pd.DataFrame]:
    """Stream a Parquet file by record batches."""
    _require_file(path, source)
    for batch in pq.ParquetFile(path).iter_batches(batch_size=reader.chunk_size):
        yield _as_strings(batch.to_pandas())
