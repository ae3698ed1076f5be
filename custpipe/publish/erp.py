"""Compute the delta between the golden customers and what the ERP already holds, and apply it
in one transaction through SQLAlchemy, so a failure leaves the ERP exactly as it was."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

from custpipe import catalogue, warehouse
from custpipe.csv_safe import write_csv
from custpipe.secrets import mask_url, redact

# The published golden columns in the ERP table's order (the row hash joins them in it),
# declared with each field in custpipe/catalogue.py
PUBLISHED_COLUMNS: tuple[str, ...] = catalogue.published_columns()
# The published shape: the most characters each published text column holds. The staged
# suites quarantine a record whose value does not fit (rule value_fits_published_length,
# its columns and lengths filled from the catalogue), so a publish never fails on a length.
PUBLISHED_LENGTHS: dict[str, int] = catalogue.published_lengths()
BATCH_ROWS = int(os.environ.get("CUSTPIPE_PUBLISH_BATCH_ROWS", "5000"))


class PublishRefused(RuntimeError):
    """The delta looks wrong (mass retirement): nothing was written."""


class PublishTargetError(RuntimeError):
    """The target database could not be reached or used: nothing was written."""


class TargetChanged(RuntimeError):
    """The target does not hold what the warehouse remembers writing (an incremental
    publish cannot trust its record): nothing was written; publish in full."""


@dataclass(frozen=True)
class TargetMark:
    """What identifies a target table's content cheaply: its row counts, the newest
    `published_at`, a checksum of the row hashes and the newest row of its publish log.
    Read from the target (:func:`target_mark`) and remembered in the warehouse after each
    publish; an incremental publish trusts its record only while the two are equal."""

    rows: int
    retired: int
    checksum: int  # sum over the rows of the first four hex digits of row_hash
    last_published_at: datetime | None
    log_run_id: str | None
    log_published_at: datetime | None
    log_content_hash: str | None

    def differences(self, other: TargetMark) -> list[str]:
        """The fields in which `other` differs from this mark (names only, no values)."""
        return [k for k, v in self.__dict__.items() if getattr(other, k) != v]


@dataclass(frozen=True)
class PublishResult:
    """What a publish changed (or would change, in a dry run)."""

    inserted: int
    updated: int
    retired: int
    unchanged: int
    dry_run: bool
    active_before: int = 0  # active rows the target held before this publish
    content_hash: str = ""  # of the target's content after this publish
    delta: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # one row per change
    published_at: datetime | None = None  # the stamp of the rows and log row written
    mark: TargetMark | None = None  # the target's mark after a full publish (None: not read)
    after: pd.DataFrame | None = field(default=None, repr=False)  # see Delta.after

    @property
    def changed(self) -> int:
        """Rows written."""
        return self.inserted + self.updated + self.retired


_SA_TYPES = {"TIMESTAMP": sa.DateTime, "INTEGER": sa.Integer}


def sa_table(table: catalogue.Table, name: str, metadata: sa.MetaData) -> sa.Table:
    """The catalogue's `table` as a SQLAlchemy table called `name`."""
    return sa.Table(
        name,
        metadata,
        *(
            sa.Column(
                c.name,
                sa.String(c.length) if c.type == "VARCHAR" else _SA_TYPES[c.type],
                primary_key=c.name in table.primary_key,
                nullable=c.nullable,
            )
            for c in table.columns
        ),
    )


def target_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The ERP inbound table: one row per golden customer (shape: the catalogue's)."""
    return sa_table(catalogue.published_table(), name, metadata)


def log_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The publish log beside the target: one row per publish (counts, content hash)."""
    return sa_table(catalogue.publish_log_table(), f"{name}_LOG", metadata)


# columns a target table created by an older custpipe may lack: added when publishing
# (declared in the catalogue: `added_later` on the published table's column)
_ADDED_LATER: tuple[str, ...] = catalogue.columns_added_later()


def _compatible(expected: sa.types.TypeEngine, found: sa.types.TypeEngine) -> bool:
    """Whether a found column type holds every value of the expected one."""
    if isinstance(expected, sa.String):
        length = getattr(found, "length", None)
        return isinstance(found, sa.String) and (length is None or length >= expected.length)
    if isinstance(expected, sa.DateTime):
        return isinstance(found, sa.DateTime)
    if isinstance(expected, sa.Integer):
        return isinstance(found, sa.Integer)
    return True


def shape_problems(conn: sa.Connection, table: sa.Table) -> list[str]:
    """How an existing table differs from the published shape `table` (empty: it fits).

    A text column may be wider than declared (or unbounded); a column custpipe added in a
    later version (`merged_into`) may be missing: publishing adds it.
    """
    found = {c["name"].lower(): c["type"] for c in sa.inspect(conn).get_columns(table.name)}
    problems = []
    for column in table.columns:
        expected = column.type.compile(dialect=conn.dialect)
        have = found.get(column.name.lower())
        if have is None:
            if column.name not in _ADDED_LATER:
                problems.append(f"column {column.name} is missing (expected {expected})")
        elif not _compatible(column.type, have):
            shown = have.compile(dialect=conn.dialect)
            problems.append(f"column {column.name} is {shown}, expected {expected}")
    return problems


def _driver_message(exc: sa.exc.DBAPIError, url: str) -> str:
    """The first line of a driver's error, without the URL's password (drivers echo it)."""
    return redact(str(exc.orig or exc).splitlines()[0], url)


def _check_shape(conn: sa.Connection, tables: list[sa.Table], url: str) -> None:
    """Raise PublishTargetError when an existing table differs from the published shape."""
    inspector = sa.inspect(conn)
    for table in tables:
        if not inspector.has_table(table.name):
            continue
        problems = shape_problems(conn, table)
        if problems:
            raise PublishTargetError(
                f"publish target {table.name} at {mask_url(url)} does not have the "
                f"published shape: {'; '.join(problems)}. Nothing was written. Alter the "
                f"column(s) to the expected type (or rename the table and let custpipe create "
                "it afresh), then rerun."
            )


def _add_missing_columns(conn: sa.Connection, target: sa.Table) -> None:
    """Bring a target table created by an older custpipe up to the current columns."""
    have = {c["name"].lower() for c in sa.inspect(conn).get_columns(target.name)}
    for column in target.columns:
        if column.name.lower() not in have:
            kind = column.type.compile(dialect=conn.dialect)
            name = conn.dialect.identifier_preparer.quote(column.name)
            table = conn.dialect.identifier_preparer.quote(target.name)
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))


def _duckdb() -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB for the delta arithmetic (hashing and joining a million rows in
    a second or two), capped like the warehouse."""
    limit = os.environ.get("CUSTPIPE_DUCKDB_MEMORY_LIMIT", "2GB")
    return duckdb.connect(config={"memory_limit": limit})


# SHA-256 of the published values joined by the unit separator, a missing value as empty
# (the hash custpipe has always stored in the target, so stored hashes stay valid)
_ROW_HASH_SQL = (
    "sha256(concat_ws(chr(31), "
    + ", ".join(f"coalesce(\"{c}\"::VARCHAR, '')" for c in PUBLISHED_COLUMNS)
    + "))"
)
#: the checksum of a target's row hashes: per row the first four hex digits as a number
#: (a row rewritten with another hash changes it with a probability of 1 - 1/65,536), summed
#: by the target database or DuckDB alike (substr and CASE are portable SQL)
CHECKSUM_SQL = " + ".join(
    f"(CASE substr(row_hash, {k}, 1) "
    + " ".join(f"WHEN '{c}' THEN {i}" for i, c in enumerate("0123456789abcdef"))
    + f" ELSE 0 END) * {16 ** (4 - k)}"
    for k in range(1, 5)
)
CONTENT_HASH_SQL = (
    "SELECT sha256(coalesce(string_agg(golden_id || ':' || row_hash || chr(10), '' "
    "ORDER BY golden_id, row_hash), '')) FROM {rows}"
)


def row_hashes(frame: pd.DataFrame) -> pd.Series:
    """A stable content hash per row over the published columns."""
    con = _duckdb()
    try:
        rows = frame[list(PUBLISHED_COLUMNS)].astype(object)
        with warehouse.registered(con, "rows", rows):
            hashed = con.execute(f"SELECT {_ROW_HASH_SQL} AS h FROM rows").fetchnumpy()["h"]
    finally:
        con.close()
    return pd.Series(np.asarray(hashed, dtype=object), index=frame.index, dtype=object)


def content_hash(golden_ids: pd.Series, hashes: pd.Series) -> str:
    """One hash of a whole table state (order-independent: rows sorted by golden ID)."""
    rows = pd.DataFrame(
        {"golden_id": golden_ids.to_numpy(dtype=object), "row_hash": hashes.to_numpy(dtype=object)}
    )
    con = _duckdb()
    try:
        with warehouse.registered(con, "rows", rows):
            return con.execute(CONTENT_HASH_SQL.format(rows="rows")).fetchone()[0]
    finally:
        con.close()


def _value(value: object) -> object:
    """A published value as compared for changes: missing and empty are the same."""
    return None if _missing(value) or value == "" else value


def _missing(value: object) -> bool:
    return value is None or value is pd.NA or (isinstance(value, float) and value != value)


@dataclass(frozen=True)
class Delta:
    """What publishing the golden customers over the target's rows changes."""

    inserts: pd.DataFrame
    updates: pd.DataFrame
    retire: pd.DataFrame  # golden_id of the rows to retire, by golden_id
    unchanged: int
    content_hash: str  # of the target's content afterwards
    active_before: int = 0  # rows of the target not retired before the publish
    # golden_id, row_hash, status of every row of the target after the publish (retired rows
    # with row_hash and status 'retired'); computed by a full delta only
    after: pd.DataFrame | None = None


def compute_delta(golden: pd.DataFrame, existing: pd.DataFrame) -> Delta:
    """The delta of `golden` (golden_id + PUBLISHED_COLUMNS) against `existing` (the
    target's golden_id, row_hash, status). Rows that left `golden` are retired, never
    deleted. Inserts and updates carry their new `row_hash`."""
    current = golden[["golden_id", *PUBLISHED_COLUMNS]].astype(object)
    old = existing[["golden_id", "row_hash", "status"]]
    con = _duckdb()
    try:
        with warehouse.registered(con, "cur", current):
            hashed = con.execute(f"SELECT {_ROW_HASH_SQL} AS h FROM cur").fetchnumpy()["h"]
        keys = pd.DataFrame(
            {
                "pos": np.arange(len(current)),
                "golden_id": current["golden_id"].to_numpy(),
                "row_hash": np.asarray(hashed, dtype=object),
            }
        )
        with warehouse.registered(con, "old", old), warehouse.registered(con, "keys", keys):
            kind = con.execute(
                "SELECT CASE WHEN o.golden_id IS NULL THEN 'i' WHEN o.row_hash = k.row_hash "
                "THEN 's' ELSE 'u' END AS kind FROM keys k LEFT JOIN old o USING (golden_id) "
                "ORDER BY k.pos"
            ).fetchnumpy()["kind"]
            con.execute(
                "CREATE TEMP TABLE gone AS SELECT golden_id, status FROM old "
                "ANTI JOIN keys USING (golden_id)"
            )
            retire = con.execute(
                "SELECT golden_id FROM gone WHERE status IS DISTINCT FROM 'retired' "
                "ORDER BY golden_id"
            ).df()
            gone = con.execute("SELECT golden_id FROM gone ORDER BY golden_id").df()
            after = (
                "(SELECT golden_id, row_hash FROM keys "
                "UNION ALL SELECT golden_id, 'retired' FROM gone)"
            )
            digest = con.execute(CONTENT_HASH_SQL.format(rows=after)).fetchone()[0]
    finally:
        con.close()
    current = current.assign(row_hash=keys["row_hash"].to_numpy())
    kind = np.asarray(kind, dtype=object)
    after = pd.concat(
        [
            current[["golden_id", "row_hash", "status"]],
            gone.assign(row_hash="retired", status="retired"),
        ],
        ignore_index=True,
    )
    return Delta(
        current[kind == "i"],
        current[kind == "u"],
        retire,
        int((kind == "s").sum()),
        digest,
        int((old["status"] != "retired").sum()),
        after,
    )


def target_mark(conn: sa.Connection, target: sa.Table, log: sa.Table) -> TargetMark | None:
    """The target's mark as it is now (one aggregate scan of the table, the newest log row);
    None when the table or its log does not exist."""
    inspector = sa.inspect(conn)
    if not inspector.has_table(target.name) or not inspector.has_table(log.name):
        return None
    rows, retired, checksum, last = conn.execute(
        sa.select(
            sa.func.count(),
            sa.func.coalesce(sa.func.sum(sa.case((target.c.status == "retired", 1), else_=0)), 0),
            sa.func.coalesce(sa.func.sum(sa.literal_column(CHECKSUM_SQL)), 0),
            sa.func.max(target.c.published_at),
        )
    ).one()
    newest = conn.execute(
        sa.select(log.c.run_id, log.c.published_at, log.c.content_hash)
        .order_by(log.c.published_at.desc(), log.c.run_id.desc())
        .limit(1)
    ).one_or_none()
    return TargetMark(int(rows), int(retired), int(checksum), last, *(newest or (None,) * 3))


def _upsert(conn: sa.Connection, target: sa.Table, rows: list[dict]) -> None:
    """Insert or update `rows` with the dialect's native upsert, in batches."""
    dialect = conn.dialect.name
    columns = [c.name for c in target.columns if c.name != "golden_id"]
    for start in range(0, len(rows), BATCH_ROWS):
        batch = rows[start : start + BATCH_ROWS]
        if dialect == "postgresql":
            stmt = postgresql.insert(target)
            stmt = stmt.on_conflict_do_update(
                index_elements=["golden_id"], set_={c: stmt.excluded[c] for c in columns}
            )
        elif dialect in ("mysql", "mariadb"):
            stmt = mysql.insert(target)
            stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in columns})
        elif dialect == "sqlite":
            stmt = sqlite.insert(target)
            stmt = stmt.on_conflict_do_update(
                index_elements=["golden_id"], set_={c: stmt.excluded[c] for c in columns}
            )
        else:
            raise ValueError(
                f"publishing to {dialect} is not supported (postgresql, mysql, sqlite)"
            )
        conn.execute(stmt, batch)
        _test_pause()


def _records(frame: pd.DataFrame) -> list[dict]:
    return frame.to_dict("records") if len(frame) else []


def _scalar(value: object) -> object:
    """None for every kind of missing value (NaN, NA), the value otherwise."""
    return None if value is None or (isinstance(value, float) and value != value) else value


def _test_pause() -> None:
    """Tests kill the publishing process mid-transaction at this point."""
    pause = os.environ.get("CUSTPIPE_TEST_PUBLISH_PAUSE")
    if pause:
        time.sleep(float(pause))


def _rows_of(conn: sa.Connection, target: sa.Table, ids: list[str]) -> pd.DataFrame:
    """The target's published columns of the rows `ids` (read in batches)."""
    columns = [target.c.golden_id, *(target.c[c] for c in PUBLISHED_COLUMNS)]
    parts = [
        pd.DataFrame(
            conn.execute(
                sa.select(*columns).where(target.c.golden_id.in_(ids[i : i + BATCH_ROWS]))
            ).all(),
            columns=[c.name for c in columns],
        )
        for i in range(0, len(ids), BATCH_ROWS)
    ]
    if not parts:
        return pd.DataFrame(columns=[c.name for c in columns])
    return pd.concat(parts, ignore_index=True)


def _changed_fields(updates: pd.DataFrame, before: pd.DataFrame) -> list[tuple[str, ...]]:
    """Per updated row, the published columns whose value differs from the target's."""
    old = before.set_index("golden_id").reindex(updates["golden_id"])
    differs = {}
    for c in PUBLISHED_COLUMNS:
        new, prev = updates[c].to_numpy(dtype=object), old[c].to_numpy(dtype=object)
        differs[c] = [_value(a) != _value(b) for a, b in zip(new, prev, strict=True)]
    return [tuple(c for c in PUBLISHED_COLUMNS if differs[c][i]) for i in range(len(updates))]


def _update_fields(
    conn: sa.Connection, target: sa.Table, rows: list[dict], fields: list[tuple[str, ...]]
) -> None:
    """UPDATE only the changed fields (plus row_hash and the stamp) of each row, grouped by
    the set of fields that changed, in batches with bound parameters."""
    groups: dict[tuple[str, ...], list[dict]] = {}
    for row, changed in zip(rows, fields, strict=True):
        groups.setdefault(changed, []).append(row)
    for changed, group in groups.items():
        names = [*changed, "row_hash", "merged_into", "published_at", "run_id"]
        stmt = (
            sa.update(target)
            .where(target.c.golden_id == sa.bindparam("key_golden_id"))
            .values({n: sa.bindparam(f"new_{n}") for n in names})
        )
        params = [
            {"key_golden_id": r["golden_id"]} | {f"new_{n}": r.get(n) for n in names} for r in group
        ]
        for start in range(0, len(params), BATCH_ROWS):
            conn.execute(stmt, params[start : start + BATCH_ROWS])
            _test_pause()


def publish(
    golden: pd.DataFrame,
    url: str,
    table: str,
    run_id: str,
    dry_run: bool = False,
    max_retire_share: float | None = None,
    merged_into: dict[str, str] | None = None,
) -> PublishResult:
    """Upsert the golden customers into `table` at `url` as a delta, all-or-nothing.

    With `max_retire_share`, a delta retiring more than that share of the active rows is
    refused (PublishRefused) before anything is written. `merged_into` maps a golden ID that
    was merged away to its successor, written on the retired row so the ERP can follow it.
    The publish and its counts are logged in `<table>_LOG` in the same transaction.
    The full path: it reads (golden_id, row_hash, status) of every row of the target.
    """
    ids = golden["golden_id"]
    if ids.isna().any() or ids.duplicated().any():
        raise ValueError(
            f"publish to {table}: golden_id must be present and unique "
            f"({int(ids.isna().sum())} missing, {int(ids.duplicated().sum())} duplicated); "
            "nothing was written. Check the golden_customers suite."
        )

    def delta_of(conn: sa.Connection, target: sa.Table, exists: bool) -> Delta:
        columns = [target.c.golden_id, target.c.row_hash, target.c.status]
        existing = pd.DataFrame(
            conn.execute(sa.select(*columns)).all() if exists or not dry_run else [],
            columns=[c.name for c in columns],
        )
        return compute_delta(golden, existing)

    return _publish(url, table, run_id, delta_of, dry_run, max_retire_share, merged_into, True)


def publish_delta(
    delta: Delta,
    expected: TargetMark,
    url: str,
    table: str,
    run_id: str,
    dry_run: bool = False,
    max_retire_share: float | None = None,
    merged_into: dict[str, str] | None = None,
) -> PublishResult:
    """Apply a `delta` computed without reading the target (custpipe.publish.state), as
    :func:`publish` applies its own, all-or-nothing, when the target still carries the mark
    `expected`; raises TargetChanged, writing nothing, when it does not."""

    def delta_of(conn: sa.Connection, target: sa.Table, exists: bool) -> Delta:
        found = target_mark(conn, target, log_table(table, sa.MetaData())) if exists else None
        if found is None:
            raise TargetChanged(f"the target table {table} or its log does not exist")
        if found != expected:
            raise TargetChanged(
                f"the target table {table} is not what the last publish left "
                f"({', '.join(expected.differences(found))} differ): it was written by "
                "someone else"
            )
        return delta

    return _publish(url, table, run_id, delta_of, dry_run, max_retire_share, merged_into, False)


def read_target_mark(url: str, table: str) -> TargetMark | None:
    """The mark of `table` at `url` as it is now (None: no table or log), read in a
    connection of its own."""
    engine = _engine(url, table)
    try:
        with engine.connect() as conn:
            metadata = sa.MetaData()
            return target_mark(conn, target_table(table, metadata), log_table(table, metadata))
    except sa.exc.DBAPIError as exc:
        raise PublishTargetError(
            f"publish to {table} at {mask_url(url)} failed: {type(exc).__name__}: "
            f"{_driver_message(exc, url)}. Nothing was written; check that the database is "
            "reachable and the URL (environment variable) is right, then rerun."
        ) from None
    finally:
        engine.dispose()


def _engine(url: str, table: str) -> sa.Engine:
    from custpipe.sources.sql_guard import check_url

    try:  # the sources' check: an unescaped '@' would send the password to DNS as host name
        check_url(url)
    except ValueError as exc:
        raise PublishTargetError(
            f"publish to {table}: the target URL {exc}. Nothing was written; fix it in the "
            "environment variable that publish.connection.url_env names, then rerun."
        ) from None
    try:  # hide_parameters: errors must not carry customer rows
        return sa.create_engine(url, hide_parameters=True)
    except (ValueError, sa.exc.ArgumentError, ImportError) as exc:
        raise PublishTargetError(
            f"publish to {table}: the target URL {mask_url(url)} cannot be used "
            f"({type(exc).__name__}). Nothing was written. Write it as "
            "dialect+driver://user:password@host:port/database, with '@', ':' and '/' in the "
            "password escaped as %40, %3A and %2F, in the environment variable that "
            "publish.connection.url_env names."
        ) from None


def _publish(
    url: str,
    table: str,
    run_id: str,
    delta_of,
    dry_run: bool,
    max_retire_share: float | None,
    merged_into: dict[str, str] | None,
    read_mark: bool,
) -> PublishResult:
    """Compute the delta with `delta_of(conn, target, exists)` inside the target's
    transaction and apply it (see :func:`publish`); with `read_mark`, the result carries the
    target's mark after the publish."""
    merged_into = merged_into or {}
    engine = _engine(url, table)
    metadata = sa.MetaData()
    target, log = target_table(table, metadata), log_table(table, metadata)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    mark = None
    try:
        with engine.begin() as conn:
            exists = sa.inspect(conn).has_table(target.name)
            _check_shape(conn, [target, log], url)  # before anything is written
            if not dry_run:  # a dry run writes nothing, not even the table
                metadata.create_all(conn, checkfirst=True)
                _add_missing_columns(conn, target)
            delta = delta_of(conn, target, exists)
            inserts, updates, retire, unchanged = (
                delta.inserts,
                delta.updates,
                delta.retire,
                delta.unchanged,
            )
            active_before = delta.active_before
            share = len(retire) / active_before if active_before else 0.0
            if max_retire_share is not None and share > max_retire_share:
                raise PublishRefused(
                    f"publish to {table} refused: it would retire {len(retire)} of "
                    f"{active_before} active customers ({share:.1%} > the limit "
                    f"{max_retire_share:.1%}). Nothing was written. Check the sources' "
                    "volumes and quarantine first; if the retirement is right, rerun the "
                    "publish with allow_mass_retire."
                )
            # the target's values of the rows that change: for changed fields and the delta
            before = _rows_of(
                conn, target, [*updates["golden_id"].tolist(), *retire["golden_id"].tolist()]
            )
            retired_rows = (
                before[before["golden_id"].isin(retire["golden_id"])]
                .sort_values("golden_id", kind="stable")
                .assign(
                    status="retired",
                    merged_into=lambda f: f["golden_id"].map(merged_into),
                    row_hash="retired",
                )
            )
            changed = _changed_fields(updates, before)
            digest = delta.content_hash
            if not dry_run:
                stamp = {"published_at": now, "run_id": run_id}
                names = [c.name for c in target.columns if c.name not in stamp]
                rows = [{k: _scalar(r.get(k)) for k in names} | stamp for r in _records(inserts)]
                _upsert(conn, target, rows)
                rows = [{k: _scalar(r.get(k)) for k in names} | stamp for r in _records(updates)]
                _update_fields(conn, target, rows, changed)
                rows = [
                    {k: _scalar(r.get(k)) for k in names} | stamp for r in _records(retired_rows)
                ]
                _update_fields(conn, target, rows, [("status",)] * len(rows))
                conn.execute(
                    sa.insert(log),
                    [
                        {
                            "run_id": run_id,
                            "published_at": now,
                            "inserted": len(inserts),
                            "updated": len(updates),
                            "retired": len(retire),
                            "unchanged": unchanged,
                            "content_hash": digest,
                        }
                    ],
                )
                if read_mark:
                    mark = target_mark(conn, target, log)
    except sa.exc.DataError as exc:  # a value the target's column cannot hold
        raise PublishTargetError(
            f"publish to {table} at {mask_url(url)} failed: a value does not fit the "
            f"target's column ({_driver_message(exc, url)}). Nothing was "
            "written. The staged suites' value_fits_published_length rules should have held the "
            "record back: check that the source's suite has them and that the target's columns "
            "have the published lengths (custpipe.publish.erp.PUBLISHED_LENGTHS)."
        ) from None  # the driver's exception may echo the URL: only the redacted line travels
    except sa.exc.OperationalError as exc:
        raise PublishTargetError(
            f"publish to {table} at {mask_url(url)} failed: "
            f"{_driver_message(exc, url)}. Nothing was written; check that the "
            "database is reachable and the URL (environment variable) is right, then rerun."
        ) from None
    except sa.exc.DBAPIError as exc:  # any other driver error: redacted, never chained
        raise PublishTargetError(
            f"publish to {table} at {mask_url(url)} failed: {type(exc).__name__}: "
            f"{_driver_message(exc, url)}. Nothing was written; check the target database "
            "and its permissions, then rerun."
        ) from None
    finally:
        engine.dispose()
    after = delta.after
    delta = pd.concat(
        [
            inserts.assign(change="insert", changed_fields=""),
            updates.assign(change="update", changed_fields=[",".join(c) for c in changed]),
            retired_rows.assign(change="retire", changed_fields="status"),
        ],
        ignore_index=True,
    )
    delta = delta.reindex(
        columns=["change", "golden_id", *PUBLISHED_COLUMNS, "merged_into", "changed_fields"]
    )
    return PublishResult(
        len(inserts), len(updates), len(retire), unchanged, dry_run, active_before, digest, delta,
        now, mark, after if read_mark else None,
    )  # fmt: skip


#: The file in each `data/publish/<run_id>/` folder that records when it was published (UTC):
#: retention ages the folder by it, not by file times (a restore or copy resets those).
PUBLISHED_STAMP = "published.json"


def export_delta(
    delta: pd.DataFrame, folder: Path, run_id: str, published_at: datetime | None = None
) -> list[Path]:
    """Write the delta as Parquet and CSV for ERPs that import files; return the paths.

    The folder also gets :data:`PUBLISHED_STAMP` with the run id and `published_at` (UTC,
    default now), the age retention goes by.
    """
    import json

    folder = Path(folder) / run_id
    folder.mkdir(parents=True, exist_ok=True)
    parquet, csv = folder / "delta.parquet", folder / "delta.csv"
    delta.astype(object).where(delta.notna(), None).to_parquet(parquet, index=False)
    write_csv(delta, csv)  # formula payloads escaped for spreadsheets; the Parquet keeps them
    at = published_at or datetime.now(UTC).replace(tzinfo=None)
    if at.tzinfo is not None:
        at = at.astimezone(UTC).replace(tzinfo=None)
    stamp = {"run_id": run_id, "published_at": at.isoformat(timespec="seconds")}
    (folder / PUBLISHED_STAMP).write_text(json.dumps(stamp), encoding="utf-8")
    return [parquet, csv]
