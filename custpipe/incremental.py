"""Incremental nights: whether a stage works on what changed or recomputes in full, and why.

Every stage after extraction (validation per source, consolidation, reconciliation) keeps
state from its last run and, by default, works on the records that changed since. It
recomputes in full, and records why in `ops.stage_runs` and its Dagster metadata, when:

- incremental runs are off (`incremental.enabled: false` in pipeline.yaml);
- a full refresh was asked for (`custpipe run --full-refresh`, or the run tag
  ``custpipe/full_refresh=true``);
- the stage has no state yet (its first run, or a warehouse from before incremental runs);
- the meaning of its past results changed: a component of its fingerprint differs (the
  model file, thresholds, matching settings, a mapping, a suite, the set of sources, the
  code that computes it) — the reason names the components;
- the last full recompute is `incremental.full_every_days` days old: a periodic
  consistency run.

A full recompute that is not caused by a change of meaning *compares* its result with the
incremental state it replaces (:func:`differences`): any difference is an error that names
the tables and counts. The comparison leaves out the bookkeeping columns of
:data:`BOOKKEEPING` (which run wrote a row, and when).
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import date, datetime

import duckdb
import pandas as pd
import pyarrow as pa

from custpipe import warehouse

#: The Dagster run tag that asks every stage for a full recompute.
FULL_REFRESH_TAG = "custpipe/full_refresh"

FULL, INCREMENTAL = "full", "incremental"

#: Columns that say which run wrote a row and when; not compared between runs.
BOOKKEEPING = frozenset(
    {"run_id", "updated_at", "recorded_at", "quarantined_at", "run_at", "validated_at"}
)


def fingerprint(**parts: object) -> dict[str, str]:
    """A stage's fingerprint: every named part reduced to a short hash of its JSON (bytes
    and strings as they are), so the reason for a full recompute can name what changed."""
    out = {}
    for name, value in sorted(parts.items()):
        if isinstance(value, bytes):
            raw = value
        elif isinstance(value, str):
            raw = value.encode()
        else:
            raw = json.dumps(value, sort_keys=True, default=str).encode()
        out[name] = hashlib.sha1(raw).hexdigest()[:16]
    return out


@dataclass(frozen=True)
class Schedule:
    """When a stage may run incrementally tonight (see :func:`plan_stage`): `enabled`
    (incremental.enabled), a full recompute every `full_every_days` days counted from
    `business_date` (None: no periodic full run), or a `full_refresh` asked for."""

    enabled: bool = True
    full_every_days: int | None = None
    full_refresh: bool = False
    business_date: date | None = None


@dataclass(frozen=True)
class StagePlan:
    """How a stage runs tonight: `mode` 'full' or 'incremental', why (empty when
    incremental), and whether a full recompute must be compared with the incremental state."""

    stage: str
    scope: str
    mode: str
    reason: str
    compare: bool
    fingerprint: dict[str, str] = field(default_factory=dict)
    last_run_id: str | None = None  # the run whose state this one continues (None: none)
    last_inputs: str | None = None  # that run's digest of its inputs (None: not recorded)

    @property
    def incremental(self) -> bool:
        """True when the stage works on what changed only."""
        return self.mode == INCREMENTAL


def last_state(con: duckdb.DuckDBPyConnection, stage: str, scope: str = "") -> dict | None:
    """The latest recorded run of a stage (for a scope), as a dict, or None."""
    rows = con.execute(
        "SELECT * FROM ops.stage_runs WHERE stage = ? AND scope = ? "
        "ORDER BY recorded_at DESC LIMIT 1",
        [stage, scope],
    ).df()
    return None if rows.empty else rows.iloc[0].to_dict()


def _last_full_date(con: duckdb.DuckDBPyConnection, stage: str, scope: str) -> date | None:
    row = con.execute(
        "SELECT max(business_date) FROM ops.stage_runs WHERE stage = ? AND scope = ? "
        "AND mode = 'full'",
        [stage, scope],
    ).fetchone()
    return row[0] if row and row[0] is not None else None


def plan_stage(
    con: duckdb.DuckDBPyConnection,
    stage: str,
    scope: str,
    parts: dict[str, str],
    schedule: Schedule,
) -> StagePlan:
    """Decide how `stage` (for `scope`, e.g. a source) runs, from its recorded state, its
    fingerprint `parts` (see :func:`fingerprint`) and tonight's `schedule`."""

    def plan(mode: str, reason: str = "", compare: bool = False) -> StagePlan:
        last_run = last["run_id"] if last is not None else None
        inputs = last.get("inputs") if last is not None else None
        inputs = inputs if isinstance(inputs, str) else None  # NULL reads back as NaN/None
        return StagePlan(stage, scope, mode, reason, compare, parts, last_run, inputs)

    last = last_state(con, stage, scope)
    if not schedule.enabled:
        return plan(FULL, "incremental runs are off (incremental.enabled: false)")
    if last is None:
        return plan(FULL, "no earlier state of this stage (its first run)")
    before = json.loads(last["fingerprint"] or "{}")
    changed = sorted(k for k in set(before) | set(parts) if before.get(k) != parts.get(k))
    if changed:
        return plan(FULL, "the meaning of past results changed: " + ", ".join(changed))
    if schedule.full_refresh:
        return plan(FULL, "full refresh requested", compare=True)
    full_every_days, business_date = schedule.full_every_days, schedule.business_date
    if full_every_days and business_date is not None:
        last_full = _last_full_date(con, stage, scope)
        if last_full is None or (business_date - last_full).days >= full_every_days:
            since = (
                f"the last one was for {last_full.isoformat()}" if last_full else "none on record"
            )
            return plan(
                FULL,
                f"periodic full consistency run ({since}; incremental.full_every_days is "
                f"{full_every_days})",
                compare=True,
            )
    return plan(INCREMENTAL)


def record_stage(
    con: duckdb.DuckDBPyConnection,
    plan: StagePlan,
    run_id: str,
    business_date: date | None,
    at: datetime,
    changed: int | None = None,
    diffs: dict[str, int] | None = None,
    inputs: str | None = None,
) -> None:
    """Record a stage's run (call it in the transaction that writes the stage's outputs, so a
    failed night leaves the last good state to continue from); `inputs`: a digest of what
    it read, for the next run to see whether anything changed."""
    row = {
        "stage": plan.stage,
        "scope": plan.scope,
        "run_id": run_id,
        "business_date": business_date,
        "mode": plan.mode,
        "reason": plan.reason,
        "fingerprint": json.dumps(plan.fingerprint, sort_keys=True),
        "changed_records": changed,
        "differences": None if diffs is None else json.dumps(diffs, sort_keys=True),
        "recorded_at": at,
        "inputs": inputs,
    }
    warehouse.append_rows(con, "ops.stage_runs", pd.DataFrame([row]))


def compared_columns(con: duckdb.DuckDBPyConnection, relation: str) -> list[str]:
    """The columns of `relation` that a consistency comparison looks at (not bookkeeping)."""
    columns = con.execute(f"SELECT * FROM {relation} LIMIT 0").df().columns
    return [c for c in columns if c not in BOOKKEEPING]


def differences(
    con: duckdb.DuckDBPyConnection, pairs: dict[str, tuple[str, str]]
) -> dict[str, int]:
    """Rows that differ between two relations per table name: `pairs` maps a name to
    (expected, actual) relations; the count is rows only in one plus rows only in the
    other (bookkeeping columns left out). Tables that agree are left out of the result."""
    out = {}
    for name, (expected, actual) in pairs.items():
        cols = ", ".join(f'"{c}"' for c in compared_columns(con, expected))
        (n,) = con.execute(f"""
            SELECT count(*) FROM (
                (SELECT {cols} FROM {expected} EXCEPT ALL SELECT {cols} FROM {actual})
                UNION ALL
                (SELECT {cols} FROM {actual} EXCEPT ALL SELECT {cols} FROM {expected}))
        """).fetchone()
        if n:
            out[name] = int(n)
    return out


def describe_differences(diffs: dict[str, int]) -> str:
    """'mdm.golden_customers: 3 rows, mdm.customer_xref: 1 row' (or 'none')."""
    if not diffs:
        return "none"
    return ", ".join(f"{t}: {n:,} row{'s' if n != 1 else ''}" for t, n in sorted(diffs.items()))


def _row_hash_sql(con: duckdb.DuckDBPyConnection, relation: str) -> str:
    cols = ", ".join(f'"{c}"' for c in compared_columns(con, relation))
    return f"SELECT hash({cols}) AS h, count(*) AS n FROM {relation} GROUP BY h"


def row_hashes(con: duckdb.DuckDBPyConnection, relation: str) -> pa.Table:
    """A compact image of `relation` to compare it with later: (hash of a row's compared
    columns, how many rows have it), 16 bytes per distinct row."""
    return con.sql(_row_hash_sql(con, relation)).to_arrow_table()


def hash_differences(
    con: duckdb.DuckDBPyConnection, expected: dict[str, pa.Table]
) -> dict[str, int]:
    """Rows that differ between each table now and its image taken by :func:`row_hashes`
    (rows only in one plus rows only in the other, as :func:`differences` counts them);
    tables that agree are left out."""
    out = {}
    for name, image in expected.items():
        with warehouse.registered(con, "expected_hashes", image):
            (n,) = con.execute(f"""
                SELECT coalesce(sum(abs(coalesce(e.n, 0) - coalesce(a.n, 0))), 0)
                FROM expected_hashes e FULL JOIN ({_row_hash_sql(con, name)}) a USING (h)
            """).fetchone()
        if n:
            out[name] = int(n)
    return out
