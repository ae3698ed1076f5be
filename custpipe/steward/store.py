"""The steward store: decisions, unmerges, the audit log and login failures, in SQLite.

DuckDB allows one writing process, and even a reader from another process blocks the nightly
run's write open, so the workbench and `custpipe decide` never open the warehouse to record a
decision. They write this small SQLite database (`data/steward/steward.sqlite`; WAL mode, so
readers never wait for a writer, and a busy timeout, so several web workers append in turn),
and the nightly run imports what is new at the start of consolidation
(:func:`import_decisions`) — reading the file, never writing it.

Each decision is written with its audit row in one SQLite transaction. Times are UTC, stored
as fixed-width ISO 8601 text (``2026-12-02T19:46:14.123456Z``), so they sort as text.
The audit log holds ids (source records, golden ids, decision ids), never customer values.
"""

from __future__ import annotations

import json
import logging
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pandas as pd

from custpipe import warehouse

DECISIONS = ("must_link", "cannot_link")
KINDS = (*DECISIONS, "split_out")
ORIGINS = ("workbench", "cli", "sheet")
BUSY_TIMEOUT_MS = 5000
#: Customer fields whose values identify a person or firm: an audit detail never names them.
PERSONAL_FIELDS = frozenset(
    {
        "name", "given_name", "family_name", "birth_date", "national_id", "tax_id", "email",
        "phone", "street", "postal_code", "city",
    }
)  # fmt: skip
#: The counts :func:`import_decisions` returns.
IMPORT_COUNTS = ("decisions", "must_link", "cannot_link", "split_out", "stale_split_out", "pairs")

_log = logging.getLogger(__name__)

#: The schema, one script per version (PRAGMA user_version); a later version appends one.
MIGRATIONS: tuple[str, ...] = (
    """
    CREATE TABLE decisions (
        decision_id TEXT PRIMARY KEY,
        kind TEXT NOT NULL CHECK (kind IN ('must_link', 'cannot_link', 'split_out')),
        left_record TEXT NOT NULL,           -- source_system:source_id
        right_record TEXT,                   -- NULL for a split_out
        golden_id TEXT,                      -- the golden record a split_out leaves
        decided_by TEXT NOT NULL,
        decided_at TEXT NOT NULL,            -- UTC, ISO 8601
        reason TEXT NOT NULL,
        origin TEXT NOT NULL CHECK (origin IN ('workbench', 'cli', 'sheet')),
        CHECK ((kind = 'split_out') = (right_record IS NULL)),
        CHECK ((kind = 'split_out') = (golden_id IS NOT NULL))
    );
    CREATE INDEX decisions_decided_at ON decisions (decided_at);
    CREATE INDEX decisions_left ON decisions (left_record);
    CREATE INDEX decisions_right ON decisions (right_record);
    CREATE TABLE audit (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        at TEXT NOT NULL,
        actor TEXT NOT NULL,
        action TEXT NOT NULL,
        target TEXT,
        detail TEXT NOT NULL DEFAULT '{}'    -- JSON: ids and counts, never customer values
    );
    CREATE INDEX audit_actor ON audit (actor, id);
    CREATE INDEX audit_action ON audit (action, id);
    CREATE TABLE login_failures (
        user TEXT NOT NULL,
        client TEXT NOT NULL,
        at TEXT NOT NULL
    );
    CREATE INDEX login_failures_user ON login_failures (user, at);
    CREATE INDEX login_failures_client ON login_failures (client, at);
    """,
)
SCHEMA_VERSION = len(MIGRATIONS)


class InvalidDecision(ValueError):
    """A decision of a batch is invalid: `number` (1 = the first) and what is wrong."""

    def __init__(self, number: int, problem: str):
        super().__init__(f"decision {number}: {problem}")
        self.number, self.problem = number, problem


def store_path(settings) -> Path:
    """Where the steward store of a deployment lives: `<data>/steward/steward.sqlite`."""
    return Path(settings.data_dir) / "steward" / "steward.sqlite"


def connect(path: Path) -> sqlite3.Connection:
    """Open the store (creating its folder and schema, migrating an older one), in WAL mode
    with a 5 s busy timeout. Autocommit: write in ``BEGIN IMMEDIATE`` … ``COMMIT``. The
    caller closes it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    con = sqlite3.connect(path, timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None)
    try:
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if con.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            con.execute("PRAGMA journal_mode = WAL")
        if con.execute("PRAGMA user_version").fetchone()[0] != SCHEMA_VERSION:
            _migrate(con)  # older: migrated; newer: refused
    except BaseException:
        con.close()
        raise
    return con


def _migrate(con: sqlite3.Connection) -> None:
    con.execute("BEGIN IMMEDIATE")  # a second process migrating at once waits, then skips
    try:
        version = con.execute("PRAGMA user_version").fetchone()[0]
        if version > SCHEMA_VERSION:
            raise RuntimeError(
                f"the steward store is of schema version {version}, newer than this custpipe "
                f"({SCHEMA_VERSION}): upgrade custpipe"
            )
        for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
            for statement in script.split(";"):
                if statement.strip():
                    con.execute(statement)
            con.execute(f"PRAGMA user_version = {number}")
    except BaseException:
        con.execute("ROLLBACK")
        raise
    con.execute("COMMIT")


@contextmanager
def _reading(path: Path) -> Iterator[sqlite3.Connection]:
    con = connect(path)
    try:
        yield con
    finally:
        con.close()


@contextmanager
def _writing(path: Path) -> Iterator[sqlite3.Connection]:
    """One write transaction, taken at once (BEGIN IMMEDIATE: no deadlock on upgrade)."""
    con = connect(path)
    try:
        con.execute("BEGIN IMMEDIATE")
        try:
            yield con
        except BaseException:
            con.execute("ROLLBACK")
            raise
        con.execute("COMMIT")
    finally:
        con.close()


def _iso(at: datetime | None = None) -> str:
    """`at` (aware, or naive meaning UTC; default now) as fixed-width ISO 8601 UTC text."""
    at = at or datetime.now(UTC)
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    return at.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _record(value: str, what: str = "records") -> str:
    value = (value or "").strip()
    system, _, source_id = value.partition(":")
    if not (system and source_id):
        raise ValueError(
            f"{what} are written source_system:source_id, e.g. erp:0000100001 (got {value!r})"
        )
    return value


def _who_and_why(decided_by: str, reason: str) -> tuple[str, str]:
    if not (decided_by or "").strip() or not (reason or "").strip():
        raise ValueError("a decision needs who made it (--by) and why (--why)")
    return decided_by.strip(), reason.strip()


def _origin(origin: str) -> str:
    if origin not in ORIGINS:
        raise ValueError(f"origin must be one of {ORIGINS}, not {origin!r}")
    return origin


def _pair_decision(
    left: str, right: str, decision: str, decided_by: str, reason: str, origin: str
) -> dict:
    """A validated must-link / cannot-link row (the rules of
    `custpipe.matching.decisions.record_decision`)."""
    if decision not in DECISIONS:
        raise ValueError(f"decision must be one of {DECISIONS}, not {decision!r}")
    left, right = _record(left), _record(right)
    if left == right:
        raise ValueError("a decision needs two different records")
    by, why = _who_and_why(decided_by, reason)
    return {
        "kind": decision,
        "left_record": left,
        "right_record": right,
        "golden_id": None,
        "decided_by": by,
        "reason": why,
        "origin": _origin(origin),
    }


def _insert(con: sqlite3.Connection, row: dict, at: datetime | None) -> str:
    """Insert one decision and its audit row (in the caller's transaction); its id."""
    decision_id = str(uuid.uuid4())
    stamp = _iso(at)
    con.execute(
        "INSERT INTO decisions (decision_id, kind, left_record, right_record, golden_id, "
        "decided_by, decided_at, reason, origin) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
        [decision_id, row["kind"], row["left_record"], row["right_record"], row["golden_id"],
         row["decided_by"], stamp, row["reason"], row["origin"]],
    )  # fmt: skip
    if row["kind"] == "split_out":
        action, target = "split_out", row["left_record"]
        detail = {"decision_id": decision_id, "golden_id": row["golden_id"]}
    else:
        action, target = "decide", f"{row['left_record']}|{row['right_record']}"
        detail = {"decision_id": decision_id, "decision": row["kind"]}
    detail |= {"origin": row["origin"]}
    _insert_audit(con, row["decided_by"], action, target, detail, stamp)
    return decision_id


def record_decision(
    path: Path,
    left: str,
    right: str,
    decision: str,
    decided_by: str,
    reason: str,
    origin: str,
    at: datetime | None = None,
) -> str:
    """Store a must-link / cannot-link decision about two records 'source_system:source_id'
    with its audit row (one transaction); return its decision_id. ValueError names what is
    wrong: an unknown decision or origin, a record not written system:id, the same record
    twice, no who or why."""
    row = _pair_decision(left, right, decision, decided_by, reason, origin)
    with _writing(path) as con:
        return _insert(con, row, at)


def record_decisions(
    path: Path, items: Iterable[tuple[str, str, str, str, str]], origin: str
) -> list[str]:
    """Store several (left, right, decision, decided_by, reason) decisions — a filled review
    sheet — all or none, in one transaction; return their ids. Every item is checked first;
    InvalidDecision (a ValueError) names the first bad one by its position (1 = the
    first item)."""
    rows = []
    for number, (left, right, decision, by, why) in enumerate(items, start=1):
        try:
            rows.append(_pair_decision(left, right, decision, by, why, origin))
        except ValueError as exc:
            raise InvalidDecision(number, str(exc)) from None
    with _writing(path) as con:
        return [_insert(con, row, None) for row in rows]


def record_split(
    path: Path,
    record: str,
    golden_id: str,
    decided_by: str,
    reason: str,
    origin: str,
    at: datetime | None = None,
) -> str:
    """Store an unmerge: `record` ('source_system:source_id') leaves golden record
    `golden_id` at the next run (cannot-links to each other member); with its audit row, in
    one transaction. Return its decision_id."""
    record = _record(record, "a record")
    golden_id = (golden_id or "").strip()
    if not golden_id:
        raise ValueError("a split-out needs the golden ID the record leaves")
    by, why = _who_and_why(decided_by, reason)
    row = {
        "kind": "split_out",
        "left_record": record,
        "right_record": None,
        "golden_id": golden_id,
        "decided_by": by,
        "reason": why,
        "origin": _origin(origin),
    }
    with _writing(path) as con:
        return _insert(con, row, at)


def _insert_audit(
    con: sqlite3.Connection,
    actor: str,
    action: str,
    target: str | None,
    detail: dict | None,
    stamp: str,
) -> None:
    if not (actor or "").strip() or not (action or "").strip():
        raise ValueError("an audit entry needs an actor and an action")
    detail = detail or {}
    named = PERSONAL_FIELDS & set(detail)
    if named:
        raise ValueError(
            f"an audit detail holds ids and counts, never customer values: {sorted(named)}"
        )
    con.execute(
        "INSERT INTO audit (at, actor, action, target, detail) VALUES (?, ?, ?, ?, ?)",
        [stamp, actor.strip(), action.strip(), target, json.dumps(detail, sort_keys=True)],
    )


def audit(
    path: Path,
    actor: str,
    action: str,
    target: str | None = None,
    detail: dict | None = None,
    at: datetime | None = None,
) -> None:
    """Append an audit entry ('login', 'login_failed', 'logout', 'export', …). `detail` is
    JSON of ids and counts; a key naming a personal field (name, email, tax_id, …) is
    refused (ValueError)."""
    with _writing(path) as con:
        _insert_audit(con, actor, action, target, detail, _iso(at))


def audit_entries(
    path: Path, limit: int = 200, actor: str | None = None, action: str | None = None
) -> list[dict]:
    """The latest `limit` audit entries, newest first, optionally of one actor and/or
    action: dicts of id, at, actor, action, target, detail (a dict) and, for a decision's
    entry, the decision's `reason` (else None)."""
    where, params = [], []
    if actor is not None:
        where.append("a.actor = ?")
        params.append(actor)
    if action is not None:
        where.append("a.action = ?")
        params.append(action)
    sql = (
        "SELECT a.id, a.at, a.actor, a.action, a.target, a.detail, d.reason FROM audit a "
        "LEFT JOIN decisions d ON d.decision_id = json_extract(a.detail, '$.decision_id') "
        + (f"WHERE {' AND '.join(where)} " if where else "")
        + "ORDER BY a.id DESC LIMIT ?"
    )
    with _reading(path) as con:
        rows = con.execute(sql, [*params, int(limit)]).fetchall()
    keys = ("id", "at", "actor", "action", "target", "detail", "reason")
    return [dict(zip(keys, r, strict=True)) | {"detail": json.loads(r[5])} for r in rows]


_DECISION_COLUMNS = (
    "decision_id", "kind", "left_record", "right_record", "golden_id", "decided_by",
    "decided_at", "reason", "origin",
)  # fmt: skip


def decisions(path: Path) -> pd.DataFrame:
    """Every decision of the store, oldest first (the columns of its `decisions` table)."""
    with _reading(path) as con:
        rows = con.execute(
            f"SELECT {', '.join(_DECISION_COLUMNS)} FROM decisions ORDER BY decided_at, rowid"
        ).fetchall()
    return pd.DataFrame(rows, columns=list(_DECISION_COLUMNS))


def pending_pairs(path: Path, imported_ids: set[str]) -> list[tuple[str, str | None, str]]:
    """The decisions not yet imported by a run (their ids not in `imported_ids`, see
    :func:`imported_decision_ids`), oldest first, as (left, right, kind): a pair in either
    order, or (record, None, 'split_out'). The inbox hides these pairs at once; the latest
    decision about a pair is the last."""
    with _reading(path) as con:
        rows = con.execute(
            "SELECT decision_id, left_record, right_record, kind FROM decisions "
            "ORDER BY decided_at, rowid"
        ).fetchall()
    return [(left, right, kind) for did, left, right, kind in rows if did not in imported_ids]


def record_login_failure(path: Path, user: str, client: str, at: datetime | None = None) -> None:
    """Count a failed login of `user` from `client` (an address) at `at` (default now)."""
    with _writing(path) as con:
        con.execute(
            "INSERT INTO login_failures (user, client, at) VALUES (?, ?, ?)",
            [user, client, _iso(at)],
        )


def login_failures_since(path: Path, user: str, client: str, since: datetime) -> int:
    """Failed logins at or after `since` for `user` OR from `client`: the limiter's count."""
    with _reading(path) as con:
        (count,) = con.execute(
            "SELECT count(*) FROM login_failures WHERE at >= ? AND (user = ? OR client = ?)",
            [_iso(since), user, client],
        ).fetchone()
    return count


def clear_login_failures(path: Path, user: str) -> None:
    """Forget the failed logins of `user` (after a successful login)."""
    with _writing(path) as con:
        con.execute("DELETE FROM login_failures WHERE user = ?", [user])


def prune_login_failures(path: Path, before: datetime) -> int:
    """Delete the failed logins older than `before`; return how many."""
    with _writing(path) as con:
        return con.execute("DELETE FROM login_failures WHERE at < ?", [_iso(before)]).rowcount


# --- the nightly run's side: import into the warehouse ------------------------------------


def imported_decision_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The ids of the store's decisions a run has imported into the warehouse (applied or
    found stale)."""
    rows = con.execute(
        "SELECT decision_id FROM mdm.steward_imports UNION "
        "SELECT decision_id FROM mdm.steward_decisions WHERE decision_id IS NOT NULL"
    ).fetchall()
    return {r[0] for r in rows}


def _read_only(path: Path) -> pd.DataFrame:
    """The store's decisions, read without writing the file (no schema, no migration)."""
    uri = f"{Path(path).resolve().as_uri()}?mode=ro"
    con = sqlite3.connect(uri, uri=True, timeout=BUSY_TIMEOUT_MS / 1000)
    try:
        con.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        has = con.execute(
            "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'decisions'"
        ).fetchone()[0]
        if not has:
            return pd.DataFrame(columns=list(_DECISION_COLUMNS))
        rows = con.execute(
            f"SELECT {', '.join(_DECISION_COLUMNS)} FROM decisions ORDER BY decided_at, rowid"
        ).fetchall()
    finally:
        con.close()
    return pd.DataFrame(rows, columns=list(_DECISION_COLUMNS))


def _split(record: str) -> tuple[str, str]:
    system, _, source_id = record.partition(":")
    return system, source_id


def _timestamp(text: str) -> datetime:
    return datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")


def import_decisions(
    con: duckdb.DuckDBPyConnection,
    path: Path,
    run_id: str,
    log: Callable[[str], None] | None = None,
) -> dict[str, int]:
    """Import the store's decisions not imported yet into mdm.steward_decisions, in one
    warehouse transaction (committed when it returns); return counts (`IMPORT_COUNTS`).

    A must-link / cannot-link is appended as it is. A split_out(record, golden_id) becomes
    cannot-links between the record and every other member of that golden record in
    mdm.customer_xref now, reason "split out of <golden_id>: <reason>", all carrying the
    split's decision_id. A split_out whose golden record no longer holds the record (split
    already, or the record is gone) or holds nothing else is stale: it adds nothing and is
    logged (ids only). Every imported decision, stale or not, gets a row in
    mdm.steward_imports, so a second import adds nothing. A missing store: nothing to import;
    an unreadable one: RuntimeError (the night stops rather than drop decisions).
    """
    log = log or _log.info
    counts = dict.fromkeys(IMPORT_COUNTS, 0)
    if not Path(path).exists():
        return counts
    try:
        store = _read_only(path)
    except sqlite3.Error as exc:  # damaged or unreadable: the stewards' decisions would be lost
        raise RuntimeError(
            f"the steward store {path} cannot be read ({exc}): restore it from a backup, or "
            "move it aside to consolidate without the decisions not imported yet"
        ) from exc
    now = datetime.now(UTC).replace(tzinfo=None)
    with warehouse.transaction(con):
        done = imported_decision_ids(con)
        new = store[~store["decision_id"].isin(done)]
        rows, imports = [], []
        for d in new.itertuples(index=False):
            common = {
                "decision_id": d.decision_id,
                "decided_by": d.decided_by,
                "decided_at": _timestamp(d.decided_at),
                "origin": d.origin,
            }
            if d.kind in DECISIONS:
                pairs = [(d.left_record, d.right_record, d.kind, d.reason)]
            else:
                members = _other_members(con, d.left_record, d.golden_id)
                why = f"split out of {d.golden_id}: {d.reason}"
                pairs = [(d.left_record, m, "cannot_link", why) for m in members or ()]
                if not pairs:
                    log(
                        f"steward decision {d.decision_id} (split {d.left_record} out of "
                        f"{d.golden_id}) is stale: "
                        + ("the golden record holds nothing else" if members is not None
                           else "the golden record no longer holds that record")
                        + "; nothing imported"
                    )  # fmt: skip
            for left, right, decision, reason in pairs:
                (ls, lid), (rs, rid) = _split(left), _split(right)
                rows.append(common | {
                    "left_source_system": ls, "left_source_id": lid,
                    "right_source_system": rs, "right_source_id": rid,
                    "decision": decision, "reason": reason,
                })  # fmt: skip
            stale = d.kind == "split_out" and not pairs
            counts["stale_split_out" if stale else d.kind] += 1
            counts["pairs"] += len(pairs)
            imports.append(
                {
                    "decision_id": d.decision_id,
                    "kind": d.kind,
                    "outcome": "stale" if stale else "imported",
                    "pairs": len(pairs),
                    "run_id": run_id,
                    "imported_at": now,
                }
            )
        counts["decisions"] = len(imports)
        if rows:
            warehouse.append_rows(con, "mdm.steward_decisions", pd.DataFrame(rows))
        if imports:
            warehouse.append_rows(con, "mdm.steward_imports", pd.DataFrame(imports))
    return counts


def _other_members(con: duckdb.DuckDBPyConnection, record: str, golden_id: str) -> list[str] | None:
    """The other members of `golden_id` ('system:id', sorted), or None when `record` is not
    one of its members (any more)."""
    members = [
        f"{s}:{i}"
        for s, i in con.execute(
            "SELECT source_system, source_id FROM mdm.customer_xref WHERE golden_id = ? "
            "ORDER BY source_system, source_id",
            [golden_id],
        ).fetchall()
    ]
    if record not in members:
        return None
    return [m for m in members if m != record]
