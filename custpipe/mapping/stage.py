"""Stage a source: read its latest landing data, map and standardise it, store it."""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date, datetime
from functools import cache
from itertools import chain
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import pyarrow as pa

from custpipe import warehouse
from custpipe.config import SourceConfig
from custpipe.mapping.apply import DUPLICATE_ID_PROBLEM, DUPLICATE_ID_RULE, MappingIssue
from custpipe.mapping.canonical import (
    merge_issues,
    stage_customers,
    stage_order_lines,
    stage_orders,
)
from custpipe.settings import Settings
from custpipe.sources.extract import (
    hash_rows,
    is_rejected,
    landed_row_hashes,
    landing_folders,
    latest_landing,
    read_landing_table,
    read_manifest,
)

DATASETS = (
    ("customers", stage_customers, "staging.customers"),
    ("orders", stage_orders, "staging.orders"),
    ("order_lines", stage_order_lines, "staging.order_lines"),
)


@dataclass
class StagedDataset:
    """What staging one dataset did."""

    dataset: str
    rows: int
    mode: str  # "full": the source's rows were replaced; "incremental": upserted by source_id
    landing_path: str
    issues: list[MappingIssue] = field(default_factory=list)
    unchanged: int = 0  # rows identical to what was staged before: kept, not mapped again
    seconds_standardise: float = 0.0  # mapping + standardising only (no reading, no writing)


_CODE = ("standardize", "mapping")  # packages whose code decides what a raw row stages to


@cache
def _code_fingerprint() -> str:
    package = Path(__file__).resolve().parent.parent
    digest = hashlib.sha1()
    for folder in _CODE:
        for path in sorted((package / folder).glob("*.py")):
            digest.update(path.read_bytes())
    return digest.hexdigest()


# Bump when a staging change must be applied to data already staged (it restages every
# source from its last full extraction on the next run). Code changes alone do not restage.
STAGING_VERSION = 4  # 2: number formats, time zones, escapes; 3, 4: issue-13 review fixes


# Reader settings that act when a source is extracted, not when a landing folder is staged
# (the landing holds the header as it was read): a change of them restages nothing.
_EXTRACT_ONLY = {"reader": {"strip_header", "full_every_days"}}


def _mapping_json(source: SourceConfig, dataset: str) -> str:
    return source.datasets()[dataset].model_dump_json(exclude=_EXTRACT_ONLY)


def restage_fingerprint(source: SourceConfig, dataset: str) -> str:
    """Changes when the dataset's mapping file (its fields or the source's timezone) changes,
    or STAGING_VERSION is bumped."""
    config = _mapping_json(source, dataset)
    zone = source.timezone or "UTC"
    return hashlib.sha1(f"{config}\x1f{zone}\x1f{STAGING_VERSION}".encode()).hexdigest()


def mapping_fingerprint(source: SourceConfig, dataset: str) -> str:
    """Changes whenever the dataset's mapping or the staging code changes."""
    config = _mapping_json(source, dataset) + (source.timezone or "UTC")
    return hashlib.sha1((config + _code_fingerprint()).encode()).hexdigest()


def salted(hashes: np.ndarray, columns, fingerprint: str) -> np.ndarray:
    """Row hashes (:func:`custpipe.sources.extract.hash_rows`) salted with the column names
    and the mapping fingerprint (so a changed mapping changes every hash), as int64: the
    `raw_hash` staging keeps for each row."""
    salt_text = fingerprint + "\x1f".join(map(str, columns))
    salt = np.uint64(int(hashlib.sha1(salt_text.encode()).hexdigest()[:16], 16))
    return (hashes ^ salt).view(np.int64)


def _landing_hashes(path: Path, landing: pa.Table, fingerprint: str) -> pd.Series:
    """The `raw_hash` of every row of a landing, in its order: from the hashes extraction
    stored beside it when they cover this table, else computed."""
    hashes = landed_row_hashes(path, landing.column_names, landing.num_rows)
    if hashes is None:
        hashes = hash_rows(landing)
    return pd.Series(salted(hashes, landing.column_names, fingerprint))


def _split_unchanged(
    con: duckdb.DuckDBPyConnection, table: str, source: str, hashes: pd.Series
) -> pd.Series:
    """True for raw rows staged before exactly as they are (same hash, once in the landing)."""
    known = con.execute(  # a hash staged twice (an exact duplicate row) is restaged
        f"SELECT raw_hash FROM {table} WHERE source_system = ? AND raw_hash IS NOT NULL "
        "GROUP BY raw_hash HAVING count(*) = 1",
        [source],
    ).df()["raw_hash"]
    return hashes.isin(known) & ~hashes.duplicated(keep=False)


def issue_rows(report: list[StagedDataset], source: str, run_id: str, at: datetime) -> pd.DataFrame:
    """`staging.mapping_issues` rows for a staging report."""
    return pd.DataFrame(
        [
            {
                "run_id": run_id,
                "source_system": source,
                "dataset": d.dataset,
                "field": i.field,
                "source_column": i.column,
                "problem": i.problem,
                "rows": i.rows,
                "examples": ", ".join(i.examples),
                "found_at": at,
            }
            for d in report
            for i in d.issues
        ]
    )


def pending_landings(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    source: str,
    dataset: str,
    business_date: date | None,
    fingerprint: str | None = None,
) -> list[Path]:
    """Landing folders not yet staged, oldest first, starting at the last full extraction.

    Folders of later business dates than `business_date` wait for their own run; folders
    older than what is already staged (a backfill) are never applied over newer data.
    When the dataset's mapping (`fingerprint`) changed since its last staging, the folders
    already staged since the last full extraction are applied again, with the new mapping.
    """
    last, mapping = con.execute(
        "SELECT landing_path, mapping FROM staging.landing_log WHERE source_system = ? "
        "AND dataset = ? ORDER BY landing_path DESC, rowid DESC LIMIT 1",
        [source, dataset],
    ).fetchone() or (None, None)
    remapped = fingerprint is not None and mapping is not None and mapping != fingerprint
    if last and remapped and (business_date is None or Path(last).parts[-4] <= str(business_date)):
        last = None  # restage what the landing zone holds, with the new mapping
    last_key = (Path(last).parts[-4], Path(last).parts[-2]) if last else None
    folders = [
        f
        for f in landing_folders(settings, source, dataset)
        if not is_rejected(f)  # blocked by its raw suite; the next extraction reads it again
        and (last_key is None or (f.parts[-4], f.parts[-2]) > last_key)
        and (business_date is None or f.parts[-4] <= business_date.isoformat())
    ]
    fulls = [i for i, f in enumerate(folders) if read_manifest(f).get("mode", "full") == "full"]
    return folders[fulls[-1] :] if fulls else folders


# Landing data is staged this many rows at a time, so a dataset of millions of rows (order
# lines) never sits in memory as pandas objects all at once.
BATCH_ROWS = int(os.environ.get("CUSTPIPE_STAGE_BATCH_ROWS", "200000"))


def _changed_batches(
    landing: pa.Table, size: int, changed: np.ndarray
) -> Iterator[tuple[int, np.ndarray, pd.DataFrame]]:
    """Per batch of `size` rows with a changed row: (start, the batch's changed mask, its
    changed rows as pandas, indexed by their position in the batch). Only those rows are
    converted from Arrow: a night's unchanged rows never become pandas objects."""
    for start in range(0, landing.num_rows, size):
        mask = changed[start : start + size]
        if mask.any():
            batch = landing.slice(start, size)
            raw = (batch if mask.all() else batch.filter(pa.array(mask))).to_pandas()
            raw.index = np.flatnonzero(mask)
            yield start, mask, raw


def _mapped_batches(
    stager, batches: Iterator, source: SourceConfig, arrow: bool, spark=None
) -> Iterator[tuple[int, np.ndarray, pd.DataFrame | pa.Table, list, float]]:
    """Per batch of :func:`_changed_batches`, in order: (start, mask, staged rows, mapping
    issues, seconds spent mapping it), mapped here or, with `spark` (a Spark runner,
    custpipe.spark.runners, given work only when there is a batch), on Spark."""
    if spark is not None:
        batches = iter(batches)
        first = next(batches, None)
        if first is not None:
            yield from spark.map_batches(stager, chain([first], batches), source, arrow)
        return
    for start, mask, raw in batches:
        started = time.perf_counter()
        staged, found = stager(raw, source, arrow=arrow)
        yield start, mask, staged, found, time.perf_counter() - started


# Tables whose source_id must be unique per source (order lines are keyed by their order).
_UNIQUE_IDS = ("staging.customers", "staging.orders")


_ID_KEY = "coalesce(nullif(ltrim(trim({}), '0'), ''), '0')"  # an id as its twins compare
_TOUCHED = "_staged_or_removed_ids"  # the ids a landing staged or removed (temp)


def flag_duplicate_ids(
    con: duckdb.DuckDBPyConnection, table: str, source: str, touched: str | None = None
) -> int:
    """Flag `duplicate_id:source_id` on every staged row of `source` whose id, trimmed of
    spaces and leading zeros, another staged row of the source has too — whichever batch or
    landing staged them — and clear the flag where the twin is gone. Returns the number of
    rows newly flagged (those the batch-wise check in map_fields could not see).

    `touched` (a relation with `source_id`): the ids a landing staged or removed; only rows
    sharing one's key can change their flag, so only those are looked at (None: all)."""
    key = _ID_KEY.format("source_id")
    only = f"AND {key} IN (SELECT {key} FROM {touched})" if touched else ""
    rows = _duplicate_flags(con, table, source, only)
    if rows.empty:
        return 0
    with warehouse.registered(con, "changes", rows[["rid", "new"]]):
        con.execute(
            f"UPDATE {table} SET mapping_errors = changes.new FROM changes "
            f"WHERE {table}.rowid = changes.rid"
        )
    return int(rows["added"].sum())


def _duplicate_flags(con: duckdb.DuckDBPyConnection, table: str, source: str, only: str):
    return con.execute(
        f"""
        WITH keyed AS (
            SELECT rowid AS rid, mapping_errors AS old,
                   nullif(trim(replace(';' || coalesce(mapping_errors, '') || ';',
                                       ';' || $rule || ';', ';'), ';'), '') AS base,
                   source_id IS NOT NULL AND count(source_id) OVER (
                       PARTITION BY {_ID_KEY.format("source_id")}
                   ) > 1 AS dup
            FROM {table} WHERE source_system = $source {only}
        ), fixed AS (
            SELECT rid, old, CASE WHEN dup THEN concat_ws(';', $rule, base) ELSE base END AS new
            FROM keyed
        )
        SELECT rid, new, coalesce(old, '') NOT LIKE '%' || $rule || '%' AND new IS NOT NULL
               AND new LIKE '%' || $rule || '%' AS added
        FROM fixed WHERE new IS DISTINCT FROM old
        """,
        {"rule": DUPLICATE_ID_RULE, "source": source},
    ).df()


def _with_columns(staged: pd.DataFrame | pa.Table, **columns) -> pd.DataFrame | pa.Table:
    """`staged` (a pandas frame or an Arrow table) with `columns` added: an array per row,
    or one value for every row."""
    if isinstance(staged, pd.DataFrame):
        return staged.assign(**columns)
    rows = staged.num_rows
    for name, value in columns.items():
        values = value if isinstance(value, np.ndarray) else [value] * rows
        staged = staged.append_column(name, pa.array(values))
    return staged


def _stage_landing(
    con: duckdb.DuckDBPyConnection,
    source: SourceConfig,
    name: str,
    stager,
    table: str,
    path: Path,
    fingerprints: tuple[str, str],
    run_id: str,
    at: datetime,
    spark=None,
) -> StagedDataset:
    """Stage one landing folder of a dataset (see :func:`stage_source`), batch by batch.

    `fingerprints`: (mapping + staging code, for the row hashes; mapping file, logged).
    `spark`: the Spark runner to map the batches on (custpipe.spark.runners)."""
    fingerprint, restage = fingerprints
    manifest = read_manifest(path)
    mode = manifest.get("mode", "full")
    business_date = pd.Timestamp(manifest["business_date"])
    landing = read_landing_table(path)
    # an incremental landing (a delta, usually small) is upserted in one piece: upserting it
    # batch by batch would let a later batch replace what an earlier one staged for an id
    size = BATCH_ROWS if mode != "incremental" else max(landing.num_rows, 1)
    hashes = _landing_hashes(path, landing, fingerprint)  # first: what is kept
    unchanged = _split_unchanged(con, table, source.name, hashes).to_numpy()
    kept = pd.DataFrame({"raw_hash": hashes[unchanged].to_numpy()})
    con.execute(f"CREATE OR REPLACE TEMP TABLE {_TOUCHED} (source_id VARCHAR)")
    if mode != "incremental":  # the landing is the whole source: keep what is unchanged
        stale = "source_system = ? AND (raw_hash IS NULL OR raw_hash NOT IN (SELECT * FROM kept))"
        with warehouse.registered(con, "kept", kept):
            con.execute(
                f"INSERT INTO {_TOUCHED} SELECT source_id FROM {table} WHERE {stale}",
                [source.name],
            )
            con.execute(f"DELETE FROM {table} WHERE {stale}", [source.name])
    seconds, issues = 0.0, []
    for start, changed, staged, found, took in _mapped_batches(
        stager, _changed_batches(landing, size, ~unchanged), source, mode != "incremental", spark
    ):
        seconds += took
        issues.append(found)
        staged = _with_columns(
            staged,
            raw_hash=hashes.to_numpy()[start : start + len(changed)][changed],
            business_date=business_date,
            landing_path=str(path),
            run_id=run_id,
            staged_at=at,
        )
        if mode == "incremental":
            warehouse.upsert_rows(con, table, staged, ["source_system", "source_id"])
        else:
            warehouse.append_rows(con, table, staged)
    if table in _UNIQUE_IDS:
        con.execute(
            f"INSERT INTO {_TOUCHED} SELECT source_id FROM {table} WHERE source_system = ? "
            "AND run_id = ? AND landing_path = ?",
            [source.name, run_id, str(path)],
        )
        # a full landing that kept no row (a first load) touched every id: checked whole
        whole = mode != "incremental" and not unchanged.any()
        added = flag_duplicate_ids(con, table, source.name, None if whole else _TOUCHED)
        if added:
            issues.append(
                [
                    MappingIssue(
                        source.name,
                        "source_id",
                        source.datasets()[name].id,
                        DUPLICATE_ID_PROBLEM,
                        added,
                        rule=DUPLICATE_ID_RULE,
                    )
                ]
            )
    con.execute(f"DROP TABLE {_TOUCHED}")
    if len(kept):  # a kept row is in this landing too (conservation counts on it)
        with warehouse.registered(con, "kept", kept):
            con.execute(
                f"UPDATE {table} SET landing_path = ?, business_date = ? "
                "WHERE source_system = ? AND raw_hash IN (SELECT raw_hash FROM kept)",
                [str(path), business_date, source.name],
            )
    log = {
        "source_system": source.name,
        "dataset": name,
        "landing_path": str(path),
        "mode": mode,
        "rows": landing.num_rows,
        "run_id": run_id,
        "staged_at": at,
        "mapping": restage,
    }
    warehouse.append_rows(con, "staging.landing_log", pd.DataFrame([log]))
    return StagedDataset(
        name,
        landing.num_rows,
        mode,
        str(path),
        merge_issues(issues),
        unchanged=int(unchanged.sum()),
        seconds_standardise=round(seconds, 2),
    )


def stage_source(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    source: SourceConfig,
    business_date: date | None,
    run_id: str,
    at: datetime,
    spark=None,
) -> list[StagedDataset]:
    """Stage every dataset of `source` from the landing folders not staged yet, in order
    (mapped on Spark with `spark`, a runner: custpipe.spark.runners).

    A full extraction replaces the source's rows; an incremental one upserts them by
    `source_id`. Rows whose raw values (and the mapping and staging code) are the same as
    when they were last staged are kept as they are, not mapped again; mapping issues are
    therefore reported in the run that stages a row. Everything a call stages is one
    transaction, logged in staging.landing_log.
    """
    report = []
    with warehouse.transaction(con):
        for name, stager, table in DATASETS:
            if name not in source.datasets():
                continue
            fingerprint = mapping_fingerprint(source, name)
            restage = restage_fingerprint(source, name)
            pending = pending_landings(con, settings, source.name, name, business_date, restage)
            if not pending:  # nothing new (an unchanged export lands no folder): keep all
                latest_landing(settings, source.name, name)  # a clear error if none at all
                report.append(StagedDataset(name, 0, "unchanged", ""))
                continue
            for path in pending:
                report.append(
                    _stage_landing(
                        con,
                        source,
                        name,
                        stager,
                        table,
                        path,
                        (fingerprint, restage),
                        run_id,
                        at,
                        spark,
                    )
                )
        issues = issue_rows(report, source.name, run_id, at)
        warehouse.append_rows(con, "staging.mapping_issues", issues)
    return report


def standardisation_counts(con: duckdb.DuckDBPyConnection, source: str) -> dict[str, int]:
    """How many of a source's staged values were valid, invalid or unknown (counts only)."""
    row = con.execute(
        """
        SELECT count(*) FILTER (WHERE phone_valid), count(*) FILTER (WHERE NOT phone_valid),
               count(*) FILTER (WHERE NOT email_valid), count(*) FILTER (WHERE NOT tax_id_valid),
               count(*) FILTER (WHERE country IS NULL)
        FROM staging.customers WHERE source_system = ?""",
        [source],
    ).fetchone()
    names = (
        "phones_valid",
        "phones_invalid",
        "emails_invalid",
        "tax_ids_invalid",
        "country_unknown",
    )
    return {name: int(value) for name, value in zip(names, row, strict=True)}
