"""Extract a source dataset into the immutable landing zone.

Layout: `landing/<business date>/<source>/<extracted_at>/<dataset>/part-NNNNN.parquet`
plus a `manifest.json`. Nothing in the landing zone is ever overwritten, so the exact
input of every run can be replayed.
"""

from __future__ import annotations

import difflib
import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from custpipe.config import ConnectionConfig, DatasetConfig, SourceConfig
from custpipe.settings import Settings
from custpipe.sources import readers


class SchemaDriftError(RuntimeError):
    """A source's columns no longer match what its mapping reads."""


@dataclass(frozen=True)
class ExtractResult:
    """What one dataset's extraction wrote."""

    dataset: str
    path: Path
    rows: int
    columns: tuple[str, ...]
    extra_columns: tuple[str, ...]


def resolve_url(conn: ConnectionConfig | None, owner: str, settings: Settings) -> str:
    """A SQLAlchemy URL: from the environment variable `url_env` if set, else the default `url`."""
    if conn is None:
        raise ValueError(f"'{owner}' has no connection configured")
    if conn.url_env and os.environ.get(conn.url_env):
        return os.environ[conn.url_env]
    if conn.url:
        return settings.expand(conn.url)
    raise readers.SourceReadError(
        f"'{owner}': environment variable {conn.url_env} is not set and no default 'url' is "
        "configured; export the variable with the database URL."
    )


def iter_raw(
    source: SourceConfig, dataset: DatasetConfig, settings: Settings, business_date: date
) -> Iterator[pd.DataFrame]:
    """Raw rows of one dataset, in chunks, as strings."""
    reader = dataset.reader
    if reader.kind == "sql":
        return readers.read_sql(
            resolve_url(source.connection, source.name, settings), reader, source.name
        )
    path = Path(
        settings.expand(
            reader.path, yyyymmdd=business_date.strftime("%Y%m%d"), date=business_date.isoformat()
        )
    )
    fn = {"csv": readers.read_csv, "jsonl": readers.read_jsonl, "parquet": readers.read_parquet}
    return fn[reader.kind](path, reader, source.name)


def check_columns(source: str, dataset: str, expected: list[str], actual: list[str]) -> list[str]:
    """Fail on columns the mapping needs but the source lacks; return the extra columns."""
    missing = [c for c in expected if c not in actual]
    if missing:
        hints = []
        for col in missing:
            close = difflib.get_close_matches(col, actual, n=3, cutoff=0.5)
            hints.append(
                f"'{col}'" + (f" (did you mean {', '.join(map(repr, close))}?)" if close else "")
            )
        raise SchemaDriftError(
            f"source '{source}', dataset '{dataset}': column(s) {', '.join(hints)} expected by the "
            f"mapping are missing from the source (it has {len(actual)} columns). Update the "
            f"source's mapping file or fix the export."
        )
    return [c for c in actual if c not in expected]


def extract_dataset(
    source: SourceConfig,
    name: str,
    settings: Settings,
    business_date: date,
    extracted_at: datetime | None = None,
) -> ExtractResult:
    """Extract one dataset of a source into a new landing folder and return what was written."""
    dataset = source.datasets()[name]
    stamp = (extracted_at or datetime.now(UTC)).strftime("%Y%m%dT%H%M%S%fZ")
    target = settings.landing_dir / business_date.isoformat() / source.name / stamp / name
    target.mkdir(parents=True, exist_ok=False)
    expected = dataset.source_columns()
    rows, columns, extra = 0, None, []
    for part, chunk in enumerate(iter_raw(source, dataset, settings, business_date)):
        if columns is None:
            columns = list(chunk.columns)
            extra = check_columns(source.name, name, expected, columns)
        chunk = chunk.reindex(
            columns=sorted(set(columns) | set(chunk.columns), key=_order(columns))
        )
        table = pa.Table.from_pandas(
            chunk, preserve_index=False, schema=pa.schema([(c, pa.string()) for c in chunk.columns])
        )
        pq.write_table(table, target / f"part-{part:05d}.parquet")
        rows += len(chunk)
    if columns is None:  # an empty source still leaves an (empty) landing file
        columns = expected
        pq.write_table(
            pa.table({c: pa.array([], pa.string()) for c in columns}), target / "part-00000.parquet"
        )
    manifest = {
        "source": source.name,
        "dataset": name,
        "business_date": business_date.isoformat(),
        "extracted_at": stamp,
        "rows": rows,
        "columns": columns,
        "extra_columns": extra,
    }
    (target / "manifest.json").write_text(json.dumps(manifest, ensure_ascii=False, indent=2))
    return ExtractResult(name, target, rows, tuple(columns), tuple(extra))


def _order(first: list[str]):
    index = {c: i for i, c in enumerate(first)}
    return lambda c: (index.get(c, len(index)), c)


def latest_landing(
    settings: Settings, source: str, dataset: str, business_date: date | None = None
) -> Path:
    """The newest landing folder of a source's dataset (for a business date, or the latest date)."""
    root = settings.landing_dir
    dates = (
        [business_date.isoformat()]
        if business_date
        else sorted((p.name for p in root.glob("*") if p.is_dir()), reverse=True)
    )
    for day in dates:
        runs = sorted((root / day / source).glob(f"*/{dataset}"), reverse=True)
        if runs:
            return runs[0]
    when = f"business date {business_date}" if business_date else "any business date"
    raise FileNotFoundError(
        f"no landing data for source '{source}' dataset '{dataset}' at {when} under {root}: "
        f"materialise the extract asset for '{source}' first."
    )


def read_landing(path: Path) -> pd.DataFrame:
    """Read one landing folder back as a frame of strings (parts may differ in columns)."""
    parts = sorted(path.glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"landing folder {path} holds no part-*.parquet files")
    table = pa.concat_tables([pq.read_table(p) for p in parts], promote_options="default")
    return table.to_pandas()
