"""Readers for source systems: SQL through SQLAlchemy, CSV, JSON Lines, Parquet.

Every reader yields chunks of raw rows as strings (None for missing), never the whole
table at once, so large sources stream through bounded memory.
"""

from __future__ import annotations

import codecs
import datetime
import decimal
import json
import zipfile
from collections.abc import Iterator
from pathlib import Path

import charset_normalizer
import openpyxl
import pandas as pd
import pyarrow as pa
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


def type_category(sql_type: object) -> str:
    """A coarse, dialect-independent category of a column type (what a retype would change)."""
    try:
        py = sql_type.python_type  # type: ignore[attr-defined]
    except (NotImplementedError, AttributeError):
        return type(sql_type).__name__.lower()
    if issubclass(py, bool):
        return "boolean"
    if issubclass(py, int):
        return "integer"
    if issubclass(py, (float, decimal.Decimal)):
        return "number"
    if issubclass(py, (datetime.date, datetime.time)):
        return "temporal"
    if issubclass(py, str):
        return "text"
    return py.__name__


def encode_watermark(value: object) -> dict:
    """A JSON-safe watermark that keeps its type (so '10' never sorts before '9')."""
    if isinstance(value, datetime.datetime):
        return {"type": "datetime", "value": value.isoformat()}
    if isinstance(value, datetime.date):
        return {"type": "date", "value": value.isoformat()}
    if isinstance(value, bool) or not isinstance(value, (int, float, decimal.Decimal)):
        return {"type": "str", "value": str(value)}
    kind = "int" if isinstance(value, int) else "decimal"
    return {"type": kind, "value": str(value)}


def decode_watermark(mark: dict) -> object:
    """The value of an encoded watermark, with its type."""
    kind, value = mark["type"], mark["value"]
    return {
        "datetime": datetime.datetime.fromisoformat,
        "date": datetime.date.fromisoformat,
        "int": int,
        "decimal": decimal.Decimal,
    }.get(kind, str)(value)


def read_sql(
    url: str,
    reader: ReaderConfig,
    source: str,
    notes: list[str] | None = None,
    since: object | None = None,
    state: dict | None = None,
) -> Iterator[pd.DataFrame]:
    """Stream a table or query from a SQL database in chunks.

    With `reader.watermark` and `since`, only rows whose watermark column is above `since`.
    `state` receives `column_types` (for a table) and `watermark_max` (raw, typed).
    """
    state = state if state is not None else {}
    engine = sa.create_engine(url, hide_parameters=True)  # no row values in error messages
    base = sa.table(reader.table) if reader.table else sa.text(f"({reader.query}) AS q")
    statement = sa.select(sa.text("*")).select_from(base)
    if reader.watermark and since is not None:
        statement = statement.where(sa.column(reader.watermark) >= sa.bindparam("since", since))
    try:
        with engine.connect() as conn:
            if reader.table:
                state["column_types"] = {
                    c["name"]: type_category(c["type"])
                    for c in sa.inspect(conn).get_columns(reader.table)
                }
            result = conn.execution_options(stream_results=True).execute(statement)
            columns = list(result.keys())
            for rows in result.partitions(reader.chunk_size):
                frame = pd.DataFrame(rows, columns=columns, dtype=object)  # ints stay ints
                if reader.watermark in frame:
                    marks = [v for v in frame[reader.watermark] if v is not None]
                    if marks:
                        top = max(marks)
                        old = state.get("watermark_max")
                        state["watermark_max"] = top if old is None else max(old, top)
                yield _as_strings(frame)
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


def _is_utf8(path: Path, block: int = 1 << 20) -> bool:
    """True when the whole file decodes as UTF-8 (read in blocks, bounded memory)."""
    decoder = codecs.getincrementaldecoder("utf-8")()
    with path.open("rb") as handle:
        while chunk := handle.read(block):
            try:
                decoder.decode(chunk)
            except UnicodeDecodeError:
                return False
    try:
        decoder.decode(b"", final=True)
    except UnicodeDecodeError:
        return False
    return True


def detect_encoding(path: Path, sample: int = 1 << 20) -> str | None:
    """The most likely encoding of a text file, from its first megabyte (None if unknown)."""
    best = charset_normalizer.from_bytes(path.read_bytes()[:sample]).best()
    return best.encoding if best else None


def resolve_encoding(path: Path, reader: ReaderConfig, source: str, notes: list[str]) -> str:
    """The declared encoding, else UTF-8 when the file is UTF-8, else a detected one (noted)."""
    if reader.encoding:
        name = reader.encoding
        return "utf-8-sig" if name.lower().replace("-", "") in ("utf8", "utf8sig") else name
    if _is_utf8(path):
        return "utf-8-sig"  # tolerates a byte-order mark
    detected = detect_encoding(path)
    if detected is None:
        raise SourceReadError(
            f"source '{source}': {path} is not UTF-8 and its encoding could not be detected: "
            "declare 'encoding' in the reader (e.g. gb18030, cp1252)."
        )
    notes.append(
        f"source '{source}': {path.name} is not UTF-8 and declares no encoding; read as detected "
        f"'{detected}'. Declare 'encoding: {detected}' in the reader to make this explicit."
    )
    return detected


def read_csv(
    path: Path, reader: ReaderConfig, source: str, notes: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Stream a delimited text file in its declared (or detected) encoding."""
    _require_file(path, source)
    encoding = resolve_encoding(path, reader, source, notes if notes is not None else [])
    try:
        chunks = pd.read_csv(
            path,
            sep=reader.delimiter,
            quotechar=reader.quotechar,
            encoding=encoding,
            dtype=str,
            keep_default_na=False,
            na_values=[""],
            chunksize=reader.chunk_size,
        )
        for chunk in chunks:
            yield _as_strings(chunk)
    except UnicodeDecodeError as exc:
        guess = detect_encoding(path)
        hint = f" It looks like '{guess}'." if guess else ""
        raise SourceReadError(
            f"source '{source}': {path} is not valid {encoding} (byte {exc.start}).{hint} Set "
            "'encoding' in the reader to the file's real encoding (e.g. gb18030, cp1252)."
        ) from exc
    except pd.errors.ParserError as exc:
        raise SourceReadError(
            f"source '{source}': {path} could not be parsed as CSV: {exc}. Check 'delimiter' "
            "and 'quotechar' against the export."
        ) from exc


def read_xlsx(
    path: Path, reader: ReaderConfig, source: str, notes: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Stream an Excel worksheet row by row (read-only mode), first row as the header."""
    _require_file(path, source)
    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        raise SourceReadError(
            f"source '{source}': {path} is not a readable .xlsx workbook ({exc}); export it "
            "again as Excel 2007+ (.xlsx)."
        ) from exc
    try:
        if reader.sheet and reader.sheet not in book.sheetnames:
            raise SourceReadError(
                f"source '{source}': {path} has no sheet '{reader.sheet}' "
                f"(sheets: {', '.join(book.sheetnames)})."
            )
        sheet = book[reader.sheet] if reader.sheet else book.worksheets[0]
        rows = sheet.iter_rows(values_only=True)
        header = next(rows, None)
        if header is None:
            return
        columns = [
            str(c).strip() if c is not None else f"column_{i + 1}" for i, c in enumerate(header)
        ]
        batch: list[tuple] = []
        for row in rows:
            if all(v is None for v in row):
                continue  # Excel's trailing empty rows
            batch.append(row[: len(columns)] + (None,) * (len(columns) - len(row)))
            if len(batch) >= reader.chunk_size:
                yield _as_strings(pd.DataFrame(batch, columns=columns))
                batch = []
        if batch:
            yield _as_strings(pd.DataFrame(batch, columns=columns))
    finally:
        book.close()


def read_jsonl(
    path: Path, reader: ReaderConfig, source: str, notes: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Stream a JSON Lines file; nested objects are flattened to dotted column names."""
    _require_file(path, source)
    batch: list[dict] = []
    encoding = resolve_encoding(path, reader, source, notes if notes is not None else [])
    with path.open(encoding=encoding) as handle:
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


def _text_columns(batch: pa.RecordBatch) -> pa.Table:
    """Cast every column to text inside Arrow, so large integers never pass through floats."""
    table = pa.Table.from_batches([batch])
    columns = []
    for field_ in table.schema:
        column = table[field_.name]
        if pa.types.is_string(field_.type) or pa.types.is_large_string(field_.type):
            columns.append(column)
        elif pa.types.is_nested(field_.type) or pa.types.is_binary(field_.type):
            columns.append(
                pa.array([None if v is None else str(v) for v in column.to_pylist()], pa.string())
            )
        else:
            columns.append(column.cast(pa.string()))
    return pa.table(columns, names=table.column_names)


def read_parquet(
    path: Path, reader: ReaderConfig, source: str, notes: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Stream a Parquet file by record batches."""
    _require_file(path, source)
    for batch in pq.ParquetFile(path).iter_batches(batch_size=reader.chunk_size):
        yield _as_strings(_text_columns(batch).to_pandas())
