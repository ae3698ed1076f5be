"""Validate one source's staged customers and record the outcome (the core of a quality asset)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from custpipe import gates, warehouse
from custpipe.config import SourceConfig
from custpipe.quality.gx_runner import (
    SuiteOutcome,
    columns_named,
    load_suite_names,
    read_suite,
    required_columns,
    table_shape,
    validate_frame,
)
from custpipe.quality.quarantine import hold_back, rule_rows
from custpipe.settings import Settings
from custpipe.sources.extract import mark_rejected

#: The volume check's limit unless the caller passes quality.max_volume_drop.
DEFAULT_MAX_VOLUME_DROP = 0.2


@dataclass(frozen=True)
class SourceValidation:
    """What validating a source found."""

    suite: str
    outcome: SuiteOutcome
    rows: int
    quarantined: int
    rules: pd.DataFrame  # scorecard rows of this run
    baseline_rows: int | None  # rows of the volume baseline (see volume_baseline), None if none
    max_volume_drop: float = DEFAULT_MAX_VOLUME_DROP  # the limit the volume check applied

    @property
    def volume_drop(self) -> float:
        """Share of rows lost since the baseline (0 when it grew or there is none)."""
        return volume_drop(self.rows, self.baseline_rows)

    @property
    def volume_ok(self) -> bool:
        """The volume check's outcome: no more than `max_volume_drop` lost since the baseline."""
        return gates.volume_within(self.volume_drop, self.max_volume_drop)

    @property
    def quarantine_rate(self) -> float:
        """Share of the source's rows held back."""
        return self.quarantined / self.rows if self.rows else 0.0


def volume_drop(rows: int, baseline: int | None) -> float:
    """Share of `baseline` rows lost in `rows` (0 when it grew or there is no baseline)."""
    if not baseline:
        return 0.0
    return max(0.0, (baseline - rows) / baseline)


def volume_baseline(con: duckdb.DuckDBPyConnection, source: str) -> int | None:
    """The rows the volume check compares a source's new validation with: those of its last
    validation that was not empty, not blocked by its suite and passed the volume check
    itself (`volume_ok`; a night stored before that column counts) — None before the first.

    An empty (header-only), blocked or truncated night never becomes the baseline, so a
    second such night blocks like the first instead of passing as "no drop since yesterday".
    """
    row = con.execute(
        "SELECT rows FROM quality.validation_runs WHERE source_system = ? AND rows > 0 "
        "AND success IS NOT FALSE AND volume_ok IS NOT FALSE "
        "ORDER BY validated_at DESC LIMIT 1",
        [source],
    ).fetchone()
    return int(row[0]) if row else None


def accept_volume(
    con: duckdb.DuckDBPyConnection, source: str, by: str, why: str, now: datetime
) -> tuple[str, int]:
    """Accept a genuine drop of a source's volume (a clean-up in the source system): its
    latest validation that failed only the volume check becomes the baseline, and the
    acceptance is recorded with who and why. Returns (run_id, rows) of that validation."""
    if not by.strip() or not why.strip():
        raise ValueError("accepting a volume drop needs who (--by) and why (--why)")
    row = con.execute(
        "SELECT run_id, rows, volume_ok FROM quality.validation_runs WHERE source_system = ? "
        "AND rows > 0 AND success IS NOT FALSE ORDER BY validated_at DESC LIMIT 1",
        [source],
    ).fetchone()
    if row is None or row[2] is not False:
        raise ValueError(
            f"source '{source}': its latest validation did not fail the volume check, so there "
            "is no drop to accept (an empty or suite-blocked night cannot be accepted: fix the "
            "export and run again)"
        )
    run_id, rows = row[0], int(row[1])
    con.execute(
        "UPDATE quality.validation_runs SET volume_ok = TRUE "
        "WHERE source_system = ? AND run_id = ?",
        [source, run_id],
    )
    con.execute(
        "INSERT INTO quality.volume_acceptances VALUES (?, ?, ?, ?, ?, ?)",
        [source, run_id, rows, by.strip(), why.strip(), now],
    )
    return run_id, rows


def suite_columns(
    con: duckdb.DuckDBPyConnection,
    table: str,
    suite: dict,
    keys: list[str],
    where: str = "true",
    params: list | None = None,
) -> pd.DataFrame:
    """The rows of `table` with only the columns `keys` and the suite's rules read.

    Leaving out what no rule reads (the wide `source_values` JSON above all) makes fetching
    and GX's hashing of its batch several times faster. A column the table lacks is left
    for :func:`validate_frame` to name in its error.
    """
    have = set(con.execute(f"SELECT * FROM {table} LIMIT 0").df().columns)
    wanted = dict.fromkeys([*keys, *required_columns(suite)])
    if any(table_shape(e) for e in suite.get("expectations") or []):
        wanted = dict.fromkeys([*keys, *sorted(have)])  # a rule checks the columns as a whole
    listed = ", ".join(f'"{c}"' for c in wanted if c in have)
    return con.execute(f"SELECT {listed} FROM {table} WHERE {where}", params or []).df()


def suite_for(source: str, expectations_dir) -> str:
    """The suite that validates a source's staged customers (source-specific, else the default)."""
    specific = f"staged_customers_{source}"
    return specific if specific in load_suite_names(expectations_dir) else "staged_customers"


def validate_source(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    source: str,
    run_id: str,
    at: datetime,
    results_limit: int = 30,
    include_values: bool = False,
    max_volume_drop: float = DEFAULT_MAX_VOLUME_DROP,
) -> SourceValidation:
    """Run the source's suite; store quarantine, scorecard and run rows in one transaction.

    The run row records the volume check's outcome against `max_volume_drop` (the share of
    the baseline's rows the source may lose), so a failed night is never a later baseline.
    """
    suite = suite_for(source, settings.expectations_dir)
    suite_dict = read_suite(settings.expectations_dir, suite)
    # only what the rules read (not the wide source_values JSON): less to fetch and to hash
    staged = suite_columns(
        con,
        "staging.customers",
        suite_dict,
        ["source_id", "mapping_errors"],
        "source_system = ?",
        [source],
    )
    baseline = volume_baseline(con, source)
    outcome = validate_frame(
        staged,
        suite,
        expectations_dir=settings.expectations_dir,
        gx_dir=settings.gx_dir,
        results_limit=results_limit,
        include_values=include_values,
    )
    descriptions = {
        e.get("meta", {}).get("rule"): e.get("meta", {}).get("description", "")
        for e in suite_dict["expectations"]
    }
    held, rules = hold_back(outcome, staged, source, run_id, at, descriptions)
    quarantined = int(held["source_id"].nunique()) if len(held) else 0
    volume_ok = gates.volume_within(volume_drop(len(staged), baseline), max_volume_drop)
    run_row = pd.DataFrame(
        [
            {
                "run_id": run_id,
                "source_system": source,
                "suite": suite,
                "rows": len(staged),
                "quarantined": quarantined,
                "success": not outcome.blocked,
                "validated_at": at,
                "volume_ok": volume_ok,
            }
        ]
    )
    with warehouse.transaction(con):
        warehouse.append_rows(con, "quality.quarantine", held)
        warehouse.replace_rows(
            con, "quality.scorecard", rules, "run_id = ? AND source_system = ?", [run_id, source]
        )
        warehouse.append_rows(con, "quality.validation_runs", run_row)
    return SourceValidation(
        suite, outcome, len(staged), quarantined, rules, baseline, max_volume_drop
    )


def validate_orders(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    run_id: str,
    at: datetime,
    results_limit: int = 30,
) -> tuple[SuiteOutcome, pd.DataFrame, int]:
    """Run the `orders` suite over every staged order; store its scorecard rows.

    Returns (outcome, scorecard rows, orders evaluated). Orders are identified as
    `source_system:source_id`, since order ids are only unique within one system.
    """
    staged = suite_columns(
        con,
        "staging.orders",
        read_suite(settings.expectations_dir, "orders"),
        ["source_system", "source_id"],
    )
    staged["source_id"] = staged["source_system"] + ":" + staged["source_id"].fillna("")
    outcome = validate_frame(
        staged,
        "orders",
        expectations_dir=settings.expectations_dir,
        gx_dir=settings.gx_dir,
        results_limit=results_limit,
    )
    rules = rule_rows(outcome, "orders", run_id, at)
    warehouse.replace_rows(
        con,
        "quality.scorecard",
        rules,
        "run_id = ? AND source_system = 'orders' AND rule NOT LIKE 'recon:%'",
        [run_id],
    )
    return outcome, rules, len(staged)


def validate_golden(
    con: duckdb.DuckDBPyConnection, settings: Settings, results_limit: int = 30
) -> tuple[SuiteOutcome, int]:
    """Run the `golden_customers` suite over the golden records, reading only the columns its
    rules name. Returns (outcome, rows evaluated)."""
    suite = read_suite(settings.expectations_dir, "golden_customers")
    golden = suite_columns(con, "mdm.golden_customers", suite, ["golden_id"])
    outcome = validate_frame(
        golden,
        "golden_customers",
        expectations_dir=settings.expectations_dir,
        gx_dir=settings.gx_dir,
        id_column="golden_id",
        results_limit=results_limit,
    )
    return outcome, len(golden)


def raw_suite_for(source: str, expectations_dir) -> str | None:
    """The suite of a source's raw customer extract (`raw_<source>`), if the folder has one."""
    name = f"raw_{source}"
    return name if name in load_suite_names(expectations_dir) else None


def read_landing_columns(path: Path, columns: list[str] | None) -> pd.DataFrame:
    """One landing folder as a frame of strings, with only `columns` (those a part lacks are
    left out, as a whole read would lack them too; None: every column). Parts may differ in
    columns, as in :func:`custpipe.sources.extract.read_landing_table`."""
    parts = sorted(Path(path).glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"landing folder {path} holds no part-*.parquet files")
    tables = []
    for part in parts:
        have = pq.read_schema(part).names
        wanted = have if columns is None else [c for c in columns if c in have]
        tables.append(pq.read_table(part, columns=wanted))
    return pa.concat_tables(tables, promote_options="default").to_pandas()


def validate_landing(
    settings: Settings,
    source: SourceConfig,
    landing_path,
    results_limit: int = 30,
    include_values: bool = False,
) -> tuple[SuiteOutcome | None, int]:
    """Run the source's raw suite over one landing folder of its customers.

    Returns (outcome, rows); outcome is None when the source has no raw suite. A folder
    that fails a `block` rule is marked rejected: it is never staged, and the next
    extraction starts from the watermark before it.
    """
    suite = raw_suite_for(source.name, settings.expectations_dir)
    if suite is None:
        return None, 0
    raw = read_landing_columns(
        landing_path, columns_named(read_suite(settings.expectations_dir, suite))
    )
    outcome = validate_frame(
        raw,
        suite,
        expectations_dir=settings.expectations_dir,
        gx_dir=settings.gx_dir,
        id_column=source.customers.id,
        results_limit=results_limit,
        include_values=include_values,
    )
    blocked = [o.rule for o in outcome.failures("block")]
    if blocked:
        mark_rejected(landing_path, blocked)
    return outcome, len(raw)
