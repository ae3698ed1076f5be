"""Readers for source systems: SQL through SQLAlchemy, CSV, JSON Lines, Parquet.

Every reader yields chunks of raw rows as strings (None for missing), never the whole
table at once, so large sources stream through bounded memory.
"""

from __future__ import annotations

import codecs
import collections
import csv
import datetime
import decimal
import json
import os
import re
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import charset_normalizer
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import sqlalchemy as sa

from custpipe.config import ReaderConfig
from custpipe.secrets import redact
from custpipe.sources import arrow_csv, arrow_records
from custpipe.sources.sql_guard import dialect_for


class SourceReadError(RuntimeError):
    """A source could not be read; the message names the source and what to do.

    `retryable` is True where trying again later may help (a database that did not answer),
    False where only a fix will (a missing file, a wrong encoding, a broken line).
    """

    def __init__(self, message: str, retryable: bool = False):
        super().__init__(redact(message))  # never a password, whoever built the message
        self.retryable = retryable


def _as_strings(frame: pd.DataFrame) -> pd.DataFrame:
    """Turn every value into its text form, keeping missing values as None."""
    out = frame.astype(object)
    out = out.where(out.notna(), None)
    for col in out.columns:
        if pd.api.types.infer_dtype(out[col], skipna=True) in ("string", "empty"):
            continue  # text already (a CSV read as str): nothing to convert, value by value
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


def _excel_value(value: object) -> object:
    """An Excel cell in a defined text form: dates and times as ISO 8601 (`YYYY-MM-DD`,
    `YYYY-MM-DD HH:MM:SS[.ffffff]`, `HH:MM:SS`), whatever the cell's display format."""
    if isinstance(value, datetime.datetime):
        if value.time() == datetime.time(0) and value.tzinfo is None:
            return value.date().isoformat()
        return value.isoformat(sep=" ")
    if isinstance(value, (datetime.date, datetime.time)):
        return value.isoformat()
    return value


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


_AUTH_FAILURES = (
    "password authentication failed",
    "no pg_hba.conf entry",
    "access denied",
    "authentication failed",
    "login failed",
)
_ROLE_MISSING = re.compile(r'role "[^"]*" does not exist')
_UNREACHABLE = (
    "connection refused",
    "timed out",
    "timeout",
    "could not connect",
    "can't connect",
    "server closed the connection",
    "connection reset",
    "lost connection",
    "gone away",
    "temporary failure in name resolution",
    "too many connections",
    "the database system is starting up",
    "the database system is shutting down",
    "database is locked",
)


def _failure_kind(exc: Exception) -> str:
    """'auth' (credentials refused), 'unreachable' (try again later) or 'statement'."""
    if isinstance(exc, (sa.exc.TimeoutError, sa.exc.DisconnectionError)):
        return "unreachable"
    if not isinstance(exc, sa.exc.DBAPIError):
        return "statement"
    text = str(exc.orig or exc).lower()
    if _ROLE_MISSING.search(text) or any(k in text for k in _AUTH_FAILURES):
        return "auth"
    if exc.connection_invalidated or any(k in text for k in _UNREACHABLE):
        return "unreachable"
    return "statement"


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "orig", None) or exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _checked_engine(url: str, reader: ReaderConfig, source: str, url_setting: str):
    """An engine for `url` after checking the URL and (for a query) that it is one SELECT."""
    from custpipe.secrets import mask_url
    from custpipe.sources.sql_guard import NotOneSelect, Unparseable, check_select, check_url

    try:
        check_url(url)
        engine = sa.create_engine(url, hide_parameters=True)  # no row values in messages
    except (ValueError, sa.exc.ArgumentError, sa.exc.NoSuchModuleError) as exc:
        message = str(exc) if isinstance(exc, ValueError) else _first_line(exc)
        raise SourceReadError(
            f"source '{source}': the connection URL in {url_setting} {message}."
            if isinstance(exc, ValueError)
            else f"source '{source}': the connection URL in {url_setting} ({mask_url(url)}) "
            f"cannot be used: {message}. Check the dialect and driver "
            "(dialect+driver://user:password@host:port/database) and that the driver is installed."
        ) from None
    if reader.query:
        backend = engine.url.get_backend_name()
        try:
            check_select(reader.query, dialect_for(backend))
        except (NotOneSelect, Unparseable) as exc:
            engine.dispose()
            why = (
                f"it is not valid SQL for {backend} ({exc})"
                if isinstance(exc, Unparseable)
                else str(exc)
            )
            raise SourceReadError(
                f"source '{source}': the reader 'query' must be exactly one SELECT that custpipe "
                f"can verify, but {why}. Fix the 'query' setting (or create a view in the source "
                "database and read it with 'table')."
            ) from None
    return engine


def _read_only(conn: sa.Connection) -> None:
    """Make the reader's transaction read-only where the database supports it, so a SELECT
    that calls a writing function (nextval, a procedure) cannot change the source."""
    backend = conn.engine.url.get_backend_name()
    if backend == "postgresql":
        conn.execute(sa.text("SET TRANSACTION READ ONLY"))
    elif backend in ("mysql", "mariadb"):
        conn.execute(sa.text("SET SESSION TRANSACTION READ ONLY"))


def read_sql(
    url: str,
    reader: ReaderConfig,
    source: str,
    notes: list[str] | None = None,
    since: object | None = None,
    state: dict | None = None,
    url_setting: str = "'url'",
) -> Iterator[pd.DataFrame]:
    """Stream a table or query from a SQL database in chunks.

    With `reader.watermark` and `since`, only rows whose watermark column is above `since`.
    `state` receives `column_types` (for a table) and `watermark_max` (raw, typed).
    `url_setting` names where the URL came from (an environment variable), for the errors,
    which never show the password: retryable when the database did not answer, not when it
    refused the credentials or the statement.
    """
    from custpipe.secrets import mask_url, redact

    state = state if state is not None else {}
    engine = _checked_engine(url, reader, source, url_setting)
    query = reader.query.strip().rstrip(";").strip() if reader.query else None
    base = sa.table(reader.table) if reader.table else sa.text(f"({query}) AS q")
    statement = sa.select(sa.text("*")).select_from(base)
    if reader.watermark and since is not None:
        statement = statement.where(sa.column(reader.watermark) >= sa.bindparam("since", since))
    failure: SourceReadError | None = None
    try:
        with engine.connect() as conn:
            _read_only(conn)
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
        # built here, raised below: the driver's exception (which may echo the URL) is
        # neither the cause nor the context of what custpipe raises
        kind = _failure_kind(exc)
        where = mask_url(url)
        said = redact(_first_line(exc), url)
        what = "the reader 'query'" if reader.query else f"table '{reader.table}'"
        advice = {
            "auth": f"the database refused the credentials ({said}). Check the user and "
            f"password in {url_setting}; custpipe does not retry this.",
            "unreachable": f"the database did not answer ({said}); the extract is retried. "
            f"If it persists, check the host and port in {url_setting} and that the server runs.",
            "statement": f"the database rejected {what} ({said}). "
            + (
                "Fix the 'query' setting."
                if reader.query
                else "Check that the table exists and the user may read it."
            ),
        }[kind]
        failure = SourceReadError(
            f"source '{source}': cannot read {what} from {where}: {advice}",
            retryable=kind == "unreachable",
        )
    finally:
        engine.dispose()
    if failure is not None:
        raise failure


def _require_file(path: Path, source: str, notes: list[str] | None = None) -> None:
    """Fail unless `path` is a file; a symbolic link is followed and its target noted."""
    if path.is_symlink():
        target = Path(os.path.realpath(path))
        if not target.is_file():
            raise SourceReadError(
                f"source '{source}': {path} is a symbolic link to {target}, which does not exist "
                "(or is not a file). Fix the link or point the reader 'path' at the export itself."
            )
        if notes is not None:
            notes.append(f"source '{source}': {path.name} is a symbolic link; read {target}.")
        return
    if not path.is_file():
        raise SourceReadError(
            f"source '{source}': file {path} not found. Check the reader 'path' in the source's "
            "configuration and that the export for this business date was delivered."
        )


def _signature(path: Path) -> tuple[int, int, int] | None:
    try:
        st = path.stat()
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)


def _guarded(path: Path, source: str, chunks: Iterator[pd.DataFrame]) -> Iterator[pd.DataFrame]:
    """Stream `chunks` of a file; a file that vanishes or changes while it is read (a delivery
    still in progress, a file moved away) is a retryable SourceReadError, never partial data."""
    before = _signature(path)
    try:
        yield from chunks
    except OSError as exc:
        raise SourceReadError(
            f"source '{source}': {path} vanished or changed while it was read "
            f"({exc.strerror or type(exc).__name__}); nothing was landed. Rerun the extract once "
            "the delivery of the export is complete.",
            retryable=True,
        ) from None
    after = _signature(path)
    if after != before:
        what = "vanished" if after is None else "changed"
        raise SourceReadError(
            f"source '{source}': {path} {what} while it was read; nothing was landed. Rerun the "
            "extract once the delivery of the export is complete.",
            retryable=True,
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
    with path.open("rb") as handle:
        best = charset_normalizer.from_bytes(handle.read(sample)).best()
    return best.encoding if best else None


def is_single_byte(encoding: str) -> bool:
    """True for an encoding that maps every byte to one character (latin-1, cp1252, koi8-r …):
    it decodes any file without an error, so a wrong declaration goes unnoticed."""
    try:
        text = bytes(range(0x80, 0x100)).decode(encoding, errors="replace")
    except LookupError:
        return False
    return len(text) == 0x80 and text.count("\ufffd") <= 8


#: Encodings that write a character in several bytes: the only ones a file declared in a
#: single-byte encoding is taken to be instead (a Hebrew or Greek code page is single-byte
#: too, and reading latin-1 as one of those is no better than the declaration).
_MULTI_BYTE = frozenset(
    codecs.lookup(name).name
    for name in (
        "utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be",
        "gb2312", "gbk", "gb18030", "hz", "big5", "big5hkscs", "cp950", "shift_jis", "cp932",
        "shift_jis_2004", "shift_jisx0213", "euc_jp", "euc_jis_2004", "euc_jisx0213",
        "iso2022_jp", "euc_kr", "cp949", "johab", "iso2022_kr",
    )
)  # fmt: skip
_MIN_FOREIGN_BYTES = 16


def _is_multi_byte(encoding: str) -> bool:
    try:
        return codecs.lookup(encoding).name in _MULTI_BYTE
    except LookupError:
        return False


def _utf8_prefix(sample: bytes) -> bool:
    try:
        codecs.getincrementaldecoder("utf-8")().decode(sample, final=False)
    except UnicodeDecodeError:
        return False
    return True


def likely_other_encoding(path: Path, declared: str, sample: int = 1 << 20) -> str | None:
    """For a declared single-byte encoding: the file's real encoding when it is clearly another
    one (valid multi-byte UTF-8, or a multi-byte encoding charset_normalizer reads cleanly
    where the declared one reads as chaos); else None."""
    if not is_single_byte(declared):
        return None
    with path.open("rb") as handle:
        data = handle.read(sample)
    if not any(b >= 0x80 for b in data):
        return None  # plain ASCII reads the same in every such encoding
    boms = (codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE, codecs.BOM_UTF8)
    wide = b"\x00" in data or data.startswith(boms)
    if not wide and _utf8_prefix(data):
        return "utf-8"
    if not wide and sum(b >= 0x80 for b in data) < _MIN_FOREIGN_BYTES:
        return None  # a few accented letters say nothing about a multi-byte encoding
    candidates = [
        m
        for m in charset_normalizer.from_bytes(data)
        if _is_multi_byte(m.encoding) and (wide or not m.encoding.startswith("utf_"))
    ]
    if not candidates:
        return None
    best = candidates[0]
    as_declared = charset_normalizer.from_bytes(data, cp_isolation=[declared]).best()
    if as_declared is None or as_declared.chaos - best.chaos >= 0.1:
        return best.encoding
    return None


def resolve_encoding(path: Path, reader: ReaderConfig, source: str, notes: list[str]) -> str:
    """The declared encoding, else UTF-8 when the file is UTF-8, else a detected one (noted).

    A declared single-byte encoding (latin-1, cp1252 …) that the file clearly is not is an
    error: those encodings decode any bytes, so the file would land as mojibake.
    """
    if reader.encoding:
        name = reader.encoding
        try:
            codecs.lookup(name)
        except LookupError:
            raise SourceReadError(
                f"source '{source}': {path} is declared '{name}', which is not an encoding "
                "Python knows. Set the reader's 'encoding' to a real one (e.g. utf-8, gb18030, "
                "cp1252, utf-16)."
            ) from None
        other = likely_other_encoding(path, name)
        if other:
            raise SourceReadError(
                f"source '{source}': {path} is declared '{name}' but is almost certainly "
                f"'{other}' (read as '{name}' its text would be garbled). Set the reader's "
                f"'encoding' to '{other}' "
                "in the reader (or export the file in the declared encoding)."
            )
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


def _ends_with_newline(path: Path, encoding: str) -> bool:
    width = 4 if "32" in encoding else 2 if "16" in encoding else 1
    size = path.stat().st_size
    with path.open("rb") as handle:
        handle.seek(max(0, size - 16 - (size % width)))
        tail = handle.read().decode(encoding.replace("-sig", ""), errors="ignore")
    return tail.endswith(("\n", "\r"))


def _last_record(path: Path, encoding: str, reader: ReaderConfig) -> tuple[int, list[str]]:
    """(line number, fields) of the last record, read with the csv module (quoted newlines)."""
    limit = csv.field_size_limit()
    csv.field_size_limit(sys.maxsize)
    try:
        with path.open(encoding=encoding, newline="") as handle:
            records = csv.reader(handle, delimiter=reader.delimiter, quotechar=reader.quotechar)
            last = collections.deque(records, maxlen=1)
            return records.line_num, (last[0] if last else [])
    finally:
        csv.field_size_limit(limit)


def _check_last_row(path: Path, encoding: str, reader: ReaderConfig, source: str, n: int) -> None:
    """An export cut off mid-row (no final newline, fewer fields than the header) fails:
    pandas would fill the missing fields with nulls without a word."""
    if _ends_with_newline(path, encoding):
        return
    line, fields = _last_record(path, encoding, reader)
    if fields and len(fields) < n:
        raise SourceReadError(
            f"source '{source}': {path} line {line} has {len(fields)} of {n} fields and the "
            "file does not end with a line break: the export looks truncated. Deliver it again "
            "(complete), then rerun the extract."
        )


class _NulFilter:
    """A text stream without NUL characters (pandas' parser ends a field at a NUL), counting
    how many it removed."""

    def __init__(self, handle):
        self.handle = handle
        self.removed = 0

    def read(self, size: int = -1) -> str:
        text = self.handle.read(size)
        if "\x00" in text:
            self.removed += text.count("\x00")
            text = text.replace("\x00", "")
        return text

    def __iter__(self):
        return self

    def __next__(self) -> str:
        line = self.handle.readline()
        if not line:
            raise StopIteration
        return line.replace("\x00", "")


def _check_header(path: Path, encoding: str, reader: ReaderConfig, source: str) -> None:
    """A header that names a column twice fails (pandas would rename one to 'name.1')."""
    with path.open(encoding=encoding, newline="") as handle:
        header = next(
            csv.reader(_NulFilter(handle), delimiter=reader.delimiter, quotechar=reader.quotechar),
            [],
        )
    _check_unique(header, path, source)


def _check_unique(header: list, path: Path, source: str) -> None:
    """Two header names equal once the spaces around them are removed fail (also where the
    header is read as it is: 'name' and ' name' would be told apart by one space)."""
    seen: dict[str, tuple[int, str]] = {}
    for i, name in enumerate(header, start=1):
        key = str(name).strip()
        if key in seen and key:
            first, spelt = seen[key]
            how = (
                f" — written {spelt!r} and {str(name)!r}: the same name once the spaces around "
                "it are removed"
                if spelt != str(name)
                else ""
            )
            raise SourceReadError(
                f"source '{source}': {path}: the header names column '{key}' twice (columns "
                f"{first} and {i}{how}); which one the mapping means is unknown. Rename or "
                "remove one of them in the export."
            )
        seen[key] = (i, str(name))


def _stripped_names(columns: list) -> list[str]:
    """Header names without the spaces around them; a name of spaces only becomes
    'Unnamed: <position>', as pandas names an empty header cell."""
    return [str(c).strip() or f"Unnamed: {i}" for i, c in enumerate(columns)]


def _csv_chunks(
    path: Path, reader: ReaderConfig, source: str, notes: list[str], arrow: bool = False
) -> Iterator[pd.DataFrame | pa.Table]:
    encoding = resolve_encoding(path, reader, source, notes)
    columns = 0
    stream = None
    try:
        _check_header(path, encoding, reader, source)
        tables = arrow_csv.read_whole(path, reader, encoding) if arrow else None
        if tables is not None:  # Arrow reads this file as pandas would
            for table in tables:
                columns = table.num_columns
                if reader.strip_header:
                    table = table.rename_columns(_stripped_names(table.column_names))
                yield table
        else:
            stream = _NulFilter(path.open(encoding=encoding, newline=""))
            chunks = pd.read_csv(
                stream,
                sep=reader.delimiter,
                quotechar=reader.quotechar,
                dtype=str,
                keep_default_na=False,
                na_values=[""],
                chunksize=reader.chunk_size,
            )
            for chunk in chunks:
                columns = len(chunk.columns)
                if reader.strip_header:  # 'id, given_name' names 'given_name' (values kept)
                    chunk.columns = _stripped_names(list(chunk.columns))
                yield _as_strings(chunk)
    except pd.errors.EmptyDataError:
        raise SourceReadError(
            f"source '{source}': {path} is empty — no header (not even the column names). "
            "The export failed or was cut off: deliver it again; a night without records is "
            "a file with just the header line."
        ) from None
    except UnicodeDecodeError as exc:
        guess = detect_encoding(path)
        hint = f" It looks like '{guess}'." if guess else ""
        raise SourceReadError(
            f"source '{source}': {path} is not valid {encoding} ({exc.reason}).{hint} Set "
            "'encoding' in the reader to the file's real encoding (e.g. gb18030, cp1252)."
        ) from None
    except pd.errors.ParserError as exc:
        raise SourceReadError(
            f"source '{source}': {path} could not be parsed as CSV: {exc}. Check 'delimiter' "
            "and 'quotechar' against the export."
        ) from None
    finally:
        if stream is not None:
            stream.handle.close()
    if stream is not None and stream.removed:
        notes.append(
            f"source '{source}': {path.name}: {stream.removed} NUL character(s) removed "
            "(a NUL is never text; the export writes binary zeros into fields)."
        )
    if columns:
        _check_last_row(path, encoding, reader, source, columns)


def read_csv(
    path: Path,
    reader: ReaderConfig,
    source: str,
    notes: list[str] | None = None,
    arrow: bool = False,
) -> Iterator[pd.DataFrame | pa.Table]:
    """Stream a delimited text file in its declared (or detected) encoding; with the
    reader's `strip_header` (the default) the header's names lose the spaces around them.
    `arrow`: chunks are Arrow tables of strings where Arrow's reader reads the file as
    pandas' does (custpipe.sources.arrow_csv), else pandas frames as always."""
    notes = notes if notes is not None else []
    _require_file(path, source, notes)
    yield from _guarded(path, source, _csv_chunks(path, reader, source, notes, arrow))


def _xlsx_chunks(path: Path, reader: ReaderConfig, source: str) -> Iterator[pd.DataFrame]:
    import openpyxl  # here: only an Excel source needs it (~0.1 s to import)

    try:
        book = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (KeyError, ValueError, zipfile.BadZipFile) as exc:
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
        _check_unique(columns, path, source)
        batch: list[tuple] = []
        for row in rows:
            if all(v is None for v in row):
                continue  # Excel's trailing empty rows
            row = tuple(_excel_value(v) for v in row[: len(columns)])
            batch.append(row + (None,) * (len(columns) - len(row)))
            if len(batch) >= reader.chunk_size:
                yield _as_strings(pd.DataFrame(batch, columns=columns))
                batch = []
        if batch:
            yield _as_strings(pd.DataFrame(batch, columns=columns))
    finally:
        book.close()


def read_xlsx(
    path: Path, reader: ReaderConfig, source: str, notes: list[str] | None = None
) -> Iterator[pd.DataFrame]:
    """Stream an Excel worksheet row by row (read-only mode), first row as the header.

    Date and time cells arrive as ISO 8601 text (`YYYY-MM-DD`, `YYYY-MM-DD HH:MM:SS`).
    """
    _require_file(path, source, notes)
    yield from _guarded(path, source, _xlsx_chunks(path, reader, source))


_JSON_KINDS = {list: "an array", str: "a string", int: "a number", float: "a number"}


def _has_surrogate(text: str) -> bool:
    return any("\ud800" <= ch <= "\udfff" for ch in text)


def _surrogate_at(value: object, where: str = "") -> str | None:
    """The dotted key of the first string (or key) holding a lone UTF-16 surrogate, if any."""
    if isinstance(value, str):
        return (where or "?") if _has_surrogate(value) else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{where}.{key}" if where else str(key)
            if _has_surrogate(str(key)):
                return "a key"
            if found := _surrogate_at(item, here):
                return found
    if isinstance(value, list):
        for item in value:
            if found := _surrogate_at(item, where):
                return found
    return None


def _first_undecodable_line(path: Path, encoding: str) -> int | None:
    """The number of the first line that does not decode (ASCII-compatible encodings)."""
    decoder = codecs.getincrementaldecoder(encoding)()
    with path.open("rb") as handle:
        for line_no, raw in enumerate(handle, start=1):
            try:
                decoder.decode(raw)
            except UnicodeDecodeError:
                return line_no
    return None


def _records_chunk(batch: list[dict], arrow: bool) -> pd.DataFrame | pa.Table:
    """A chunk of JSON records flattened, every value as text: Arrow strings where they
    are strings already (`arrow`, custpipe.sources.arrow_records), else a pandas frame."""
    table = arrow_records.strings_table(batch, sep=".") if arrow else None
    return table if table is not None else _as_strings(pd.json_normalize(batch, sep="."))


def _jsonl_records(
    path: Path, reader: ReaderConfig, source: str, notes: list[str], arrow: bool = False
) -> Iterator[pd.DataFrame | pa.Table]:
    batch: list[dict] = []
    encoding = resolve_encoding(path, reader, source, notes)
    if arrow and encoding == "utf-8-sig":  # parsed whole by Arrow where it reads the same
        chunks = arrow_records.jsonl_chunks(path, reader.chunk_size, sep=".")
        if chunks is not None:
            yield from chunks
            return
    line_no = 0
    try:
        with path.open(encoding=encoding) as handle:
            for line_no, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                except json.JSONDecodeError as exc:
                    raise SourceReadError(
                        f"source '{source}': {path} line {line_no} is not valid JSON ({exc.msg} "
                        f"at column {exc.colno}); fix or remove the line in the export."
                    ) from None
                if not isinstance(record, dict):
                    kind = "null" if record is None else _JSON_KINDS.get(type(record), "a value")
                    raise SourceReadError(
                        f"source '{source}': {path} line {line_no} is not a JSON object (it is "
                        f"{kind}); every line of a JSON Lines export must be one record "
                        "{...}. Fix or remove the line in the export."
                    )
                if "\\u" in line.lower() and (key := _surrogate_at(record)):
                    raise SourceReadError(
                        f"source '{source}': {path} line {line_no} holds a lone surrogate (a "
                        f"\\uD800-\\uDFFF escape without its pair) in '{key}': that is no "
                        "character, and cannot be stored. Fix the exporting system's JSON "
                        "escaping, or remove the line."
                    )
                batch.append(record)
                if len(batch) >= reader.chunk_size:
                    yield _records_chunk(batch, arrow)
                    batch = []
    except UnicodeDecodeError:
        ascii_compatible = "16" not in encoding and "32" not in encoding
        bad = _first_undecodable_line(path, encoding) if ascii_compatible else None
        where = f"line {bad}" if bad else f"after line {line_no}"
        guess = detect_encoding(path)
        hint = f" It looks like '{guess}'." if guess else ""
        raise SourceReadError(
            f"source '{source}': {path} {where} is not valid {reader.encoding or encoding}.{hint} "
            "Set 'encoding' in the reader to the file's real encoding (e.g. cp1252, gb18030)."
        ) from None
    if batch:
        yield _records_chunk(batch, arrow)


def read_jsonl(
    path: Path,
    reader: ReaderConfig,
    source: str,
    notes: list[str] | None = None,
    arrow: bool = False,
) -> Iterator[pd.DataFrame | pa.Table]:
    """Stream a JSON Lines file; nested objects are flattened to dotted column names.

    Every non-blank line must be one JSON object; an empty file is an empty extraction.
    `arrow`: a chunk whose values are all strings or null comes as an Arrow table of
    strings (custpipe.sources.arrow_records), any other as a pandas frame.
    """
    notes = notes if notes is not None else []
    _require_file(path, source, notes)
    yield from _guarded(path, source, _jsonl_records(path, reader, source, notes, arrow))


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
    _require_file(path, source, notes)
    yield from _guarded(path, source, _parquet_chunks(path, reader))


def _parquet_chunks(path: Path, reader: ReaderConfig) -> Iterator[pd.DataFrame]:
    for batch in pq.ParquetFile(path).iter_batches(batch_size=reader.chunk_size):
        yield _as_strings(_text_columns(batch).to_pandas())
