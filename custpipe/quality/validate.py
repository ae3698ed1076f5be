"""Validate one source's staged customers and record the outcome (the core of a quality asset)."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from custpipe import gates, incremental, warehouse
from custpipe.config import SourceConfig
from custpipe.incremental import Schedule, StagePlan, record_stage
from custpipe.quality import incremental as inc
from custpipe.quality.gx_runner import (
    SuiteOutcome,
    columns_named,
    load_suite_names,
    read_suite,
    required_columns,
    table_shape,
    validate_frame,
)
from custpipe.quality.quarantine import QUARANTINE_COLUMNS, hold_back, rule_rows
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
    mode: str = incremental.FULL  # how it ran: 'full' or 'incremental'
    changed: int = 0  # distinct value sets GX validated (every row's on a full run)
    differences: dict[str, int] | None = field(default=None)  # a compared full run's

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


@dataclass(frozen=True)
class Validation:
    """What validating one target wrote, and how it ran."""

    suite: str
    outcome: SuiteOutcome
    rows: int
    quarantined: int
    held: pd.DataFrame  # quarantine rows of this run
    rules: pd.DataFrame  # scorecard rows of this run
    mode: str  # 'full' or 'incremental'
    changed: int  # distinct value sets GX validated
    differences: dict[str, int] | None  # a compared full run's differences (None: none)


def _evaluate(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    target: inc.Target,
    suite: str,
    suite_dict: dict,
    run_id: str,
    at: datetime,
    plan: StagePlan | None,
    *,
    results_limit: int,
    include_values: bool,
    build_docs: bool = True,
    spark=None,
) -> inc.Evaluation:
    """The target's outcome: incremental; full with the per-row state rebuilt; or, without a
    plan (a caller that does not plan) or for a suite incremental validation cannot split,
    GX over every row as before, the state left alone (state None)."""
    if plan is not None and plan.incremental:
        return inc.evaluate_incremental(
            con, target, suite, suite_dict, settings.gx_dir, run_id, at,
            build_docs=build_docs, results_limit=results_limit, include_values=include_values,
            spark=spark,
        )  # fmt: skip
    if plan is not None and inc.not_incremental(suite_dict) is None:
        return inc.evaluate_full(
            con, target, suite, suite_dict, settings.expectations_dir, settings.gx_dir, run_id,
            at, results_limit=results_limit, include_values=include_values, spark=spark,
        )  # fmt: skip
    columns = inc.suite_frame_columns(con, target, suite_dict)
    staged = inc.fetch_all(con, target, columns)
    outcome = validate_frame(
        staged,
        suite,
        expectations_dir=settings.expectations_dir,
        gx_dir=settings.gx_dir,
        id_column=target.id_column,
        results_limit=results_limit,
        include_values=include_values,
        spark=spark,
    )
    return inc.Evaluation(outcome, len(staged), len(staged), None)


def _mapping_flags(con: duckdb.DuckDBPyConnection, target: inc.Target) -> pd.DataFrame:
    """`source_id` and `mapping_errors` of the target's rows that failed a mapping rule."""
    have = con.execute(f"SELECT * FROM {target.table} LIMIT 0").df().columns
    if "mapping_errors" not in have:
        return pd.DataFrame({"source_id": [], "mapping_errors": []}, dtype=object)
    return con.execute(
        f"SELECT {target.id_sql} AS source_id, mapping_errors FROM {target.table} "
        f"WHERE {target.where} AND mapping_errors IS NOT NULL",
        list(target.params),
    ).df()


def validate_target(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    target: inc.Target,
    suite: str,
    run_id: str,
    at: datetime,
    *,
    plan: StagePlan | None = None,
    business_date: date | None = None,
    results_limit: int = 30,
    include_values: bool = False,
    quarantine: bool = True,
    scorecard_where: str = "run_id = ? AND source_system = ?",
    run_row=None,
    spark=None,
) -> Validation:
    """Validate a target with its suite — incrementally when `plan` says so (see
    custpipe.quality.incremental) — and store quarantine (if `quarantine`), scorecard rows,
    the run row (`run_row(outcome, rows, quarantined)` -> frame, if given), the per-row
    state and, with a plan, its ops.stage_runs row, in one transaction. `spark`
    (gx_runner.OnSpark): large frames are validated on Spark.

    A full run whose plan asks for a comparison first computes what the incremental path
    gives for the same rows and records the differences (tables and row counts)."""
    suite_dict = read_suite(settings.expectations_dir, suite)
    descriptions = {
        e.get("meta", {}).get("rule"): e.get("meta", {}).get("description", "")
        for e in suite_dict["expectations"]
    }
    source = target.scope

    def outputs(ev: inc.Evaluation) -> tuple[pd.DataFrame, pd.DataFrame, int]:
        flagged = _mapping_flags(con, target) if quarantine else pd.DataFrame()
        if quarantine:
            held, rules = hold_back(
                ev.outcome, flagged, source, run_id, at, descriptions, rows=ev.rows
            )
        else:
            held, rules = (
                pd.DataFrame(columns=QUARANTINE_COLUMNS),
                rule_rows(ev.outcome, source, run_id, at),
            )
        quarantined = int(held["source_id"].nunique()) if len(held) else 0
        return held, rules, quarantined

    kwargs = {"results_limit": results_limit, "include_values": include_values, "spark": spark}
    before = None
    if plan is not None and plan.compare and inc.not_incremental(suite_dict) is None:
        before = inc.evaluate_incremental(
            con, target, suite, suite_dict, settings.gx_dir, run_id, at, build_docs=False,
            **kwargs,
        )  # fmt: skip
        before_outputs = outputs(before)
    ev = _evaluate(con, settings, target, suite, suite_dict, run_id, at, plan, **kwargs)
    held, rules, quarantined = outputs(ev)
    runs = run_row(ev.outcome, ev.rows, quarantined) if run_row else None
    diffs = None
    if before is not None:
        diffs = inc.state_differences(con, target, ev)
        pairs = {"quality.quarantine": (held, before_outputs[0]),
                 "quality.scorecard": (rules, before_outputs[1])}  # fmt: skip
        if runs is not None:
            pairs["quality.validation_runs"] = (
                runs,
                run_row(before.outcome, before.rows, before_outputs[2]),
            )
        diffs |= _frame_differences(con, pairs)
    with warehouse.transaction(con):
        if quarantine:
            warehouse.append_rows(con, "quality.quarantine", held)
        warehouse.replace_rows(con, "quality.scorecard", rules, scorecard_where, [run_id, source])
        if runs is not None:
            warehouse.append_rows(con, "quality.validation_runs", runs)
        if ev.state is not None:
            inc.store_state(con, target, ev, run_id, at)
        elif plan is not None:  # a suite kept in full: no state to continue from
            con.execute("DELETE FROM quality.validated_rows WHERE scope = ?", [source])
        if plan is not None:
            record_stage(con, plan, run_id, business_date, at, ev.changed, diffs)
    return Validation(
        suite, ev.outcome, ev.rows, quarantined, held, rules, ev.mode, ev.changed, diffs
    )


def _frame_differences(
    con: duckdb.DuckDBPyConnection, pairs: dict[str, tuple[pd.DataFrame, pd.DataFrame]]
) -> dict[str, int]:
    """incremental.differences over pairs of frames (expected, actual) per table name."""
    names = {}
    for i, (table, (expected, actual)) in enumerate(pairs.items()):
        for side, frame in (("e", expected), ("a", actual)):
            name = f"_cv_cmp_{side}{i}"
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM {table} LIMIT 0")
            warehouse.append_rows(con, name, frame)
        names[table] = (f"_cv_cmp_e{i}", f"_cv_cmp_a{i}")
    return incremental.differences(con, names)


def validate_source(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    source: str,
    run_id: str,
    at: datetime,
    results_limit: int = 30,
    include_values: bool = False,
    max_volume_drop: float = DEFAULT_MAX_VOLUME_DROP,
    plan: StagePlan | None = None,
    business_date: date | None = None,
    spark=None,
) -> SourceValidation:
    """Run the source's suite; store quarantine, scorecard and run rows in one transaction.

    The run row records the volume check's outcome against `max_volume_drop` (the share of
    the baseline's rows the source may lose), so a failed night is never a later baseline.
    `plan` (see :func:`plan_source`): incremental, or full (compared when it says so);
    None: full, not recorded in ops.stage_runs.
    """
    suite = suite_for(source, settings.expectations_dir)
    baseline = volume_baseline(con, source)

    def run_row(outcome: SuiteOutcome, rows: int, quarantined: int) -> pd.DataFrame:
        volume_ok = gates.volume_within(volume_drop(rows, baseline), max_volume_drop)
        row = {"run_id": run_id, "source_system": source, "suite": suite, "rows": rows,
               "quarantined": quarantined, "success": not outcome.blocked,
               "validated_at": at, "volume_ok": volume_ok}  # fmt: skip
        return pd.DataFrame([row])

    v = validate_target(
        con, settings, inc.customers_target(source), suite, run_id, at, plan=plan,
        business_date=business_date, results_limit=results_limit,
        include_values=include_values, run_row=run_row, spark=spark,
    )  # fmt: skip
    return SourceValidation(
        suite, v.outcome, v.rows, v.quarantined, v.rules, baseline, max_volume_drop,
        mode=v.mode, changed=v.changed, differences=v.differences,
    )  # fmt: skip


def plan_source(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    source: str,
    schedule: Schedule,
    **extra: object,
) -> StagePlan:
    """How a source's validation runs tonight (stage 'validate', scope = the source);
    `extra` fingerprint parts, e.g. the source's mapping."""
    suite = suite_for(source, settings.expectations_dir)
    return inc.plan_validation(
        con, inc.customers_target(source), suite, read_suite(settings.expectations_dir, suite),
        schedule, **extra,
    )  # fmt: skip


def plan_orders(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    schedule: Schedule,
) -> StagePlan:
    """How the orders' validation runs tonight (stage 'validate', scope 'orders')."""
    return inc.plan_validation(
        con, inc.orders_target(), "orders", read_suite(settings.expectations_dir, "orders"),
        schedule,
    )  # fmt: skip


def validate_orders(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    run_id: str,
    at: datetime,
    results_limit: int = 30,
    plan: StagePlan | None = None,
    business_date: date | None = None,
    spark=None,
) -> tuple[SuiteOutcome, pd.DataFrame, int]:
    """Run the `orders` suite over every staged order (or, by `plan`, the changed ones with
    the rest carried forward); store its scorecard rows.

    Returns (outcome, scorecard rows, orders evaluated). Orders are identified as
    `source_system:source_id`, since order ids are only unique within one system.
    """
    v = validate_target(
        con, settings, inc.orders_target(), "orders", run_id, at, plan=plan,
        business_date=business_date, results_limit=results_limit, quarantine=False,
        scorecard_where="run_id = ? AND source_system = ? AND rule NOT LIKE 'recon:%'",
        spark=spark,
    )  # fmt: skip
    return v.outcome, v.rules, v.rows


#: The golden records as custpipe.quality.incremental validates them (scope 'golden_customers').
GOLDEN_TARGET = inc.Target(
    "golden_customers",
    "mdm.golden_customers",
    "TRUE",
    id_sql='"golden_id"',
    id_column="golden_id",
)


def plan_golden(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    schedule: Schedule,
) -> StagePlan:
    """How the golden records' validation runs tonight: stage 'validate_golden' (apart from
    the sources' 'validate'), its per-row state in quality.validated_rows under the scope
    'golden_customers'; the rules of custpipe.quality.incremental.plan_validation."""
    suite = read_suite(settings.expectations_dir, "golden_customers")
    plan = incremental.plan_stage(
        con, "validate_golden", "", inc.fingerprint_parts("golden_customers", suite), schedule
    )
    if not plan.incremental and not plan.compare:
        return plan
    why = inc.not_incremental(suite)
    if why:
        return replace(plan, mode=incremental.FULL, reason=why, compare=False)
    (kept,) = con.execute(
        "SELECT count(*) FROM quality.validated_rows WHERE scope = ?", [GOLDEN_TARGET.scope]
    ).fetchall()[0]
    if kept == 0:  # an empty golden table keeps no state either: a full run costs nothing
        why = "no per-row validation state to continue from"
        return replace(plan, mode=incremental.FULL, reason=why, compare=False)
    return plan


def _verdicts(outcome: SuiteOutcome) -> pd.DataFrame:
    """Per rule what the golden check reads: success, rows evaluated, failed, skipped."""
    return pd.DataFrame(
        [
            {"rule": o.rule, "success": bool(o.success), "evaluated": int(o.evaluated),
             "failed": int(o.failed), "missing": int(o.missing)}
            for o in outcome.outcomes
        ],
        columns=["rule", "success", "evaluated", "failed", "missing"],
    )  # fmt: skip


def validate_golden(
    con: duckdb.DuckDBPyConnection,
    settings: Settings,
    results_limit: int = 30,
    *,
    plan: StagePlan | None = None,
    run_id: str = "",
    at: datetime | None = None,
    business_date: date | None = None,
    spark=None,
) -> tuple[SuiteOutcome, int, dict[str, int] | None]:
    """Run the `golden_customers` suite over the golden records, reading only the columns its
    rules name. Returns (outcome, rows evaluated, a compared full run's differences or None).

    With a `plan` (:func:`plan_golden`) it is custpipe.quality.incremental's validation: an
    incremental night runs GX only on golden records whose validated values changed and
    carries the others' outcomes forward (the verdicts of a full run); a compared full run
    records the differences of state and verdicts; the state and the ops.stage_runs row are
    written in one transaction. Without a plan: GX over every record, nothing recorded."""
    suite = read_suite(settings.expectations_dir, "golden_customers")
    if plan is None or inc.not_incremental(suite) is not None:
        golden = suite_columns(con, "mdm.golden_customers", suite, ["golden_id"])
        outcome = validate_frame(
            golden,
            "golden_customers",
            expectations_dir=settings.expectations_dir,
            gx_dir=settings.gx_dir,
            id_column="golden_id",
            results_limit=results_limit,
            spark=spark,
        )
        return outcome, len(golden), None
    at = at or datetime.now(UTC).replace(tzinfo=None)
    kwargs = {"results_limit": results_limit, "include_values": False, "spark": spark}
    args = (con, GOLDEN_TARGET, "golden_customers", suite)
    before = None
    if plan.compare:
        before = inc.evaluate_incremental(
            *args, settings.gx_dir, run_id, at, build_docs=False, **kwargs
        )
    if plan.incremental:
        ev = inc.evaluate_incremental(*args, settings.gx_dir, run_id, at, **kwargs)
    else:
        ev = inc.evaluate_full(
            *args, settings.expectations_dir, settings.gx_dir, run_id, at, **kwargs
        )
    diffs = None
    if before is not None:
        diffs = inc.state_differences(con, GOLDEN_TARGET, ev)
        diffs |= _frame_pair_differences(
            con, "golden verdicts", _verdicts(ev.outcome), _verdicts(before.outcome)
        )
    with warehouse.transaction(con):
        inc.store_state(con, GOLDEN_TARGET, ev, run_id, at)
        record_stage(con, plan, run_id, business_date, at, ev.changed, diffs)
    return ev.outcome, ev.rows, diffs


def _frame_pair_differences(
    con: duckdb.DuckDBPyConnection, name: str, expected: pd.DataFrame, actual: pd.DataFrame
) -> dict[str, int]:
    """incremental.differences of two frames, reported under `name`."""
    for rel, frame in (("_cv_golden_e", expected), ("_cv_golden_a", actual)):
        with warehouse.registered(con, "_cv_golden_frame", frame):
            con.execute(f"CREATE OR REPLACE TEMP TABLE {rel} AS SELECT * FROM _cv_golden_frame")
    return incremental.differences(con, {name: ("_cv_golden_e", "_cv_golden_a")})


def raw_suite_for(source: str, expectations_dir) -> str | None:
    """The suite of a source's raw customer extract (`raw_<source>`), if the folder has one."""
    name = f"raw_{source}"
    return name if name in load_suite_names(expectations_dir) else None


def read_landing_columns(
    path: Path, columns: list[str] | None, values: list[str] | None = None
) -> pd.DataFrame:
    """One landing folder as a frame of strings, with only `columns` (those a part lacks are
    left out, as a whole read would lack them too; None: every column). Parts may differ in
    columns, as in :func:`custpipe.sources.extract.read_landing_table`. `values`: the
    columns whose values are read (None: all); the others come all null, in their place
    (for rules that read only the column names: reading the values of a 187,000-row extract's
    other columns took ~0.4 s)."""
    parts = sorted(Path(path).glob("part-*.parquet"))
    if not parts:
        raise FileNotFoundError(f"landing folder {path} holds no part-*.parquet files")
    tables = []
    for part in parts:
        have = pq.read_schema(part).names
        wanted = have if columns is None else [c for c in columns if c in have]
        read = wanted if values is None else [c for c in wanted if c in values]
        table = pq.read_table(part, columns=read)
        if read != wanted:
            table = pa.table(
                [table[c] if c in read else pa.nulls(table.num_rows, pa.string()) for c in wanted],
                names=wanted,
            )
        tables.append(table)
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
    rules = read_suite(settings.expectations_dir, suite)
    # a table-shape rule reads the column names only; validate_frame hands GX the values of
    # the columns the other rules read (and of the id), no others
    shape = any(table_shape(e) for e in rules.get("expectations") or [])
    values = [*required_columns(rules), source.customers.id] if shape else None
    raw = read_landing_columns(landing_path, columns_named(rules), values)
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
