"""Incremental publish: what the last publish wrote, kept in the warehouse, so a night hashes
only the golden records rebuilt since and never reads the target table row by row.

**What the target holds.** After every publish custpipe wrote (not a dry run),
``mdm.published_rows`` keeps per target and golden ID the target row's ``row_hash`` and
``status`` ('retired', row_hash 'retired', for a retired row) and the ``run_id`` of the golden
record it was published from (``golden_run_id``); ``mdm.publish_marks`` keeps the target's
*mark* (:class:`custpipe.publish.erp.TargetMark`): row count, retired rows, a checksum of the
row hashes, the newest ``published_at`` and the newest row of ``<table>_LOG``. Both are
written after the target's transaction committed, in one warehouse transaction with the
stage's ``ops.stage_runs`` row.

**Which golden records can differ.** Consolidation stamps every golden record it rebuilds
with the night's ``run_id`` and leaves the others alone, so a golden record whose ``run_id``
is the one it was published from has the row hash the target holds. A night hashes (the same
code as the full path, :func:`custpipe.publish.erp.compute_delta`) only the golden records
that are new to the target, were rebuilt since their publish, or are retired there; the
others are unchanged. A night whose publish was blocked or failed leaves the record alone, so
the next night still finds the records rebuilt that night. Retirements are the remembered
rows not yet retired whose golden ID left ``mdm.golden_customers``: an anti-join of two ID
columns inside DuckDB, not a read of every row. The
content hash the log records is that of the remembered rows with tonight's changes (taken
over from the last publish when nothing changed).

**Whether the target is still what custpipe wrote.** Inside the target's transaction, before
writing, the incremental path reads the target's mark (one aggregate query: count, retired
rows, the checksum, the newest ``published_at``, and the newest log row) and compares it
with the remembered one. Rows added or deleted behind custpipe's back, a status or row hash
changed, a row re-stamped, a publish by another custpipe (or one whose warehouse record was
lost because the process died after the target committed) all differ: the night then
publishes in full, reading the target as before (the full path repairs the target) and says
why. An edit that keeps the row hash and the stamp (a name changed in place) is invisible to
the full path too (it compares row hashes). The weekly full consistency run and
``--full-refresh`` publish in full and compare: the delta the incremental path would have
written and the target state it would have remembered must equal those of the full path
(``ops.stage_runs.differences``, names and counts only) — unless the target's mark shows
that it was changed behind custpipe's back: then the run repairs it, is not compared, and
says why.

Any change of meaning — the published columns, the code of the publish, the target table or
database — makes the first publish after it a full one (the stage's fingerprint).
"""

from __future__ import annotations

import hashlib
import time
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import pandas as pd

from custpipe import incremental, warehouse
from custpipe.incremental import FULL, Schedule, StagePlan, plan_stage, record_stage
from custpipe.publish.erp import (
    CHECKSUM_SQL,
    CONTENT_HASH_SQL,
    PUBLISHED_COLUMNS,
    Delta,
    PublishResult,
    TargetChanged,
    TargetMark,
    compute_delta,
    publish,
    publish_delta,
    read_target_mark,
)
from custpipe.publish.inputs import golden_for_publish, merge_successors
from custpipe.secrets import mask_url

STAGE = "publish"
_CODE = ("publish/erp.py", "publish/inputs.py", "publish/state.py")
_MARK_FIELDS = (
    "rows",
    "retired",
    "checksum",
    "last_published_at",
    "log_run_id",
    "log_published_at",
    "log_content_hash",
)


def fingerprint_parts(table: str, url: str) -> dict[str, str]:
    """What gives the remembered rows their meaning: the published columns, the publish's
    code, the target table and database (the URL without its password)."""
    package = Path(__file__).resolve().parent.parent
    code = hashlib.sha1()
    for name in _CODE:
        code.update(name.encode() + b"\x1f" + (package / name).read_bytes())
    return incremental.fingerprint(
        columns=list(PUBLISHED_COLUMNS), code=code.hexdigest(), target=[mask_url(url), table]
    )


def remembered_mark(con: duckdb.DuckDBPyConnection, table: str) -> TargetMark | None:
    """The target's mark after the last publish custpipe wrote to it, or None."""
    rows = con.execute(
        f"SELECT {', '.join(_MARK_FIELDS)} FROM mdm.publish_marks WHERE target = ?", [table]
    ).fetchall()
    return TargetMark(*rows[0]) if rows else None


def plan_publish(
    con: duckdb.DuckDBPyConnection,
    table: str,
    url: str,
    schedule: Schedule,
) -> StagePlan:
    """How tonight's publish to `table` runs (stage 'publish', scope = the table)."""
    plan = plan_stage(
        con,
        STAGE,
        table,
        fingerprint_parts(table, url),
        schedule,
    )
    if (plan.incremental or plan.compare) and remembered_mark(con, table) is None:
        why = f"no record of what the last publish wrote to {table}"
        return replace(plan, mode=FULL, reason=why, compare=False)
    return plan


@dataclass(frozen=True)
class Prepared:
    """An incremental delta, computed from the warehouse alone."""

    delta: Delta
    expected: TargetMark  # what the target must still be
    hashed: int  # golden records hashed
    golden: int  # golden records in all


def _fetch_candidates(con: duckdb.DuckDBPyConnection, table: str) -> pd.DataFrame:
    """The golden records that can differ from the target (as golden_for_publish reads them,
    with their run_id) into the temp table `_pub_candidates`; returned as a frame."""
    listed = ", ".join(f'g."{c}"' for c in ("golden_id", *PUBLISHED_COLUMNS))
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _pub_candidates AS
        SELECT {listed}, g.run_id AS golden_run_id, m.row_hash AS old_hash,
               m.status AS old_status, m.golden_id IS NOT NULL AS known
        FROM mdm.golden_customers g
        LEFT JOIN mdm.published_rows m ON m.target = ? AND m.golden_id = g.golden_id
        WHERE m.golden_id IS NULL OR m.golden_run_id IS DISTINCT FROM g.run_id
           OR m.status = 'retired'
        """,
        [table],
    )
    query = f"SELECT {listed.replace('g.', '')} FROM _pub_candidates ORDER BY golden_id"
    return con.sql(query).to_arrow_table().to_pandas()


def incremental_delta(con: duckdb.DuckDBPyConnection, table: str) -> Prepared:
    """The delta of tonight's golden records against the target as remembered (see the
    module doc); leaves temp tables `_pub_candidates` and `_pub_new` (the remembered rows
    tonight's publish replaces) for :func:`remember_incremental`."""
    expected = remembered_mark(con, table)
    if expected is None:
        raise ValueError(f"no record of what the last publish wrote to {table}")
    golden = _fetch_candidates(con, table)
    old = con.execute(
        "SELECT golden_id, old_hash AS row_hash, old_status AS status FROM _pub_candidates "
        "WHERE known"
    ).df()
    found = compute_delta(golden, old)  # the full path's hashing and classification
    retire = con.execute(
        """
        SELECT golden_id FROM mdm.published_rows m
        WHERE target = ? AND status IS DISTINCT FROM 'retired'
          AND NOT EXISTS (SELECT 1 FROM mdm.golden_customers g WHERE g.golden_id = m.golden_id)
        ORDER BY golden_id
        """,
        [table],
    ).df()
    (total,) = con.execute("SELECT count(*) FROM mdm.golden_customers").fetchall()[0]
    hashes = pd.concat(
        [found.inserts[["golden_id", "row_hash"]], found.updates[["golden_id", "row_hash"]]],
        ignore_index=True,
    ).astype(object)
    with (
        warehouse.registered(con, "_pub_hashes", hashes),
        warehouse.registered(con, "_pub_retire", retire.astype(object)),
    ):
        con.execute(
            """
            CREATE OR REPLACE TEMP TABLE _pub_new AS
            SELECT c.golden_id, coalesce(h.row_hash, c.old_hash)::VARCHAR AS row_hash,
                   c.status::VARCHAR AS status, c.golden_run_id::VARCHAR AS golden_run_id
            FROM _pub_candidates c LEFT JOIN _pub_hashes h USING (golden_id)
            UNION ALL
            SELECT golden_id::VARCHAR, 'retired', 'retired', NULL::VARCHAR FROM _pub_retire
            """
        )
    changes = len(found.inserts) + len(found.updates) + len(retire)
    digest = expected.log_content_hash or ""
    if changes:
        (digest,) = con.execute(
            CONTENT_HASH_SQL.format(rows=f"({_after_sql()})"), [table]
        ).fetchall()[0]
    delta = Delta(
        found.inserts,
        found.updates,
        retire,
        int(total) - len(found.inserts) - len(found.updates),
        digest,
        expected.rows - expected.retired,
    )
    return Prepared(delta, expected, len(golden), int(total))


def _after_sql() -> str:
    """The target's rows after tonight's publish as remembered: the remembered rows, those
    in `_pub_new` replaced (one parameter: the target)."""
    return (
        "SELECT golden_id, row_hash, status, golden_run_id FROM mdm.published_rows "
        "WHERE target = ? AND golden_id NOT IN (SELECT golden_id FROM _pub_new) "
        "UNION ALL SELECT golden_id, row_hash, status, golden_run_id FROM _pub_new"
    )


def _store_mark(
    con: duckdb.DuckDBPyConnection, table: str, mark: TargetMark, run_id: str, at: datetime
) -> None:
    con.execute("DELETE FROM mdm.publish_marks WHERE target = ?", [table])
    row = {"target": table, "run_id": run_id, "recorded_at": at} | mark.__dict__
    warehouse.append_rows(con, "mdm.publish_marks", pd.DataFrame([row]))


def remember_incremental(
    con: duckdb.DuckDBPyConnection,
    table: str,
    prepared: Prepared,
    result: PublishResult,
    run_id: str,
    at: datetime,
) -> None:
    """Record what an incremental publish wrote (call in a warehouse transaction)."""
    mark = prepared.expected
    if result.changed:
        rows, retired, checksum = con.execute(
            f"SELECT count(*), count(*) FILTER (WHERE status = 'retired'), "
            f"coalesce(sum({CHECKSUM_SQL}), 0) FROM ({_after_sql()})",
            [table],
        ).fetchall()[0]
        mark = replace(
            mark,
            rows=int(rows),
            retired=int(retired),
            checksum=int(checksum),
            last_published_at=result.published_at,
        )
    mark = replace(
        mark,
        log_run_id=run_id,
        log_published_at=result.published_at,
        log_content_hash=result.content_hash,
    )
    con.execute(
        "DELETE FROM mdm.published_rows WHERE target = ? "
        "AND golden_id IN (SELECT golden_id FROM _pub_new)",
        [table],
    )
    con.execute(
        "INSERT INTO mdm.published_rows BY NAME SELECT ? AS target, * FROM _pub_new", [table]
    )
    _store_mark(con, table, mark, run_id, at)


def remember_full(
    con: duckdb.DuckDBPyConnection, table: str, result: PublishResult, run_id: str, at: datetime
) -> None:
    """Record what a full publish left in the target (call in a warehouse transaction)."""
    con.execute("DELETE FROM mdm.published_rows WHERE target = ?", [table])
    with warehouse.registered(con, "_pub_after", result.after.astype(object)):
        con.execute(
            """
            INSERT INTO mdm.published_rows BY NAME
            SELECT ? AS target, a.golden_id, a.row_hash, a.status, g.run_id AS golden_run_id
            FROM _pub_after a LEFT JOIN mdm.golden_customers g USING (golden_id)
            """,
            [table],
        )
    _store_mark(con, table, result.mark, run_id, at)


def _delta_keys(delta: Delta) -> pd.DataFrame:
    """(change, golden_id) of every row a delta writes."""
    parts = [
        delta.inserts[["golden_id"]].assign(change="insert"),
        delta.updates[["golden_id"]].assign(change="update"),
        delta.retire[["golden_id"]].assign(change="retire"),
    ]
    return pd.concat(parts, ignore_index=True)[["change", "golden_id"]].astype(object)


def compare_with_incremental(
    con: duckdb.DuckDBPyConnection, table: str, prepared: Prepared, full: PublishResult
) -> dict[str, int]:
    """Rows in which the incremental path's delta and remembered target state (`prepared`,
    computed before the full publish) differ from what the full publish `full` wrote and
    left: {'publish delta': n, 'mdm.published_rows': n} (tables that agree left out)."""
    after = con.execute(f"SELECT golden_id, row_hash, status FROM ({_after_sql()})", [table]).df()
    frames = {
        "_pub_e0": full.delta[["change", "golden_id"]].astype(object),
        "_pub_a0": _delta_keys(prepared.delta),
        "_pub_e1": full.after[["golden_id", "row_hash", "status"]].astype(object),
        "_pub_a1": after.astype(object),
    }
    for name, frame in frames.items():
        with warehouse.registered(con, "_pub_frame", frame):
            con.execute(f"CREATE OR REPLACE TEMP TABLE {name} AS SELECT * FROM _pub_frame")
    return incremental.differences(
        con, {"publish delta": ("_pub_e0", "_pub_a0"), "mdm.published_rows": ("_pub_e1", "_pub_a1")}
    )


@dataclass(frozen=True)
class PublishNight:
    """How tonight's publish ran and what it wrote."""

    result: PublishResult
    plan: StagePlan  # as it ran (a fallback to the full path says why in its reason)
    golden: int  # golden records
    hashed: int  # golden records hashed tonight
    differences: dict[str, int] | None  # a compared full publish's (None: not compared)
    seconds: float


def publish_night(
    con: duckdb.DuckDBPyConnection,
    url: str,
    table: str,
    run_id: str,
    plan: StagePlan,
    *,
    dry_run: bool = False,
    max_retire_share: float | None = None,
    business_date: date | None = None,
) -> PublishNight:
    """Publish the golden customers of the warehouse `con` (writable) to `table` at `url`:
    incrementally when `plan` says so and the target is still what custpipe wrote, else in
    full (compared when the plan says so); then, unless a dry run, record what the target
    holds and the stage's ops.stage_runs row in one warehouse transaction."""
    started = time.perf_counter()
    if plan.incremental:
        prepared = incremental_delta(con, table)
        merged = merge_successors(con) if len(prepared.delta.retire) else {}
        try:
            result = publish_delta(
                prepared.delta, prepared.expected, url, table, run_id, dry_run,
                max_retire_share, merged,
            )  # fmt: skip
        except TargetChanged as exc:
            plan = replace(plan, mode=FULL, reason=f"{exc}; published in full", compare=False)
        else:
            if not dry_run:
                at = datetime.now(UTC).replace(tzinfo=None)
                with warehouse.transaction(con):
                    remember_incremental(con, table, prepared, result, run_id, at)
                    record_stage(con, plan, run_id, business_date, at, prepared.hashed)
            return PublishNight(
                result, plan, prepared.golden, prepared.hashed, None,
                time.perf_counter() - started,
            )  # fmt: skip
    if plan.compare:  # a target changed behind custpipe's back is no fault of the increments
        expected, found = remembered_mark(con, table), read_target_mark(url, table)
        if found != expected:
            moved = ", ".join(expected.differences(found)) if found else "the table is gone"
            why = f"{plan.reason}; not compared: the target is not what the last publish left"
            plan = replace(plan, reason=f"{why} ({moved} differ)", compare=False)
    before = incremental_delta(con, table) if plan.compare else None
    golden = golden_for_publish(con)
    result = publish(golden, url, table, run_id, dry_run, max_retire_share, merge_successors(con))
    diffs = None
    if before is not None and result.after is not None:
        diffs = compare_with_incremental(con, table, before, result)
    if not dry_run:
        at = datetime.now(UTC).replace(tzinfo=None)
        with warehouse.transaction(con):
            remember_full(con, table, result, run_id, at)
            record_stage(con, plan, run_id, business_date, at, len(golden), diffs)
    return PublishNight(
        result, plan, len(golden), len(golden), diffs, time.perf_counter() - started
    )
