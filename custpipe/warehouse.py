"""The DuckDB warehouse: connection, contract DDL, and small write helpers."""

from __future__ import annotations

import logging
import os
import re
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from pathlib import Path

import duckdb
import pandas as pd
import pyarrow as pa

from custpipe import catalogue

#: The warehouse's schemas and tables, generated from the catalogue (custpipe/catalogue.py).
DDL = catalogue.ddl()

CONTRACT_TABLES: tuple[str, ...] = catalogue.contract_tables()

#: (schema, table, column) of every column the catalogue declares
_DECLARED_COLUMNS = frozenset(
    (t.schema, t.name, c.name) for t in catalogue.tables() for c in t.columns
)

#: The rows of quality.quarantine that hold records back now: those of each source's latest
#: validation (older runs' rows are history). A subquery: `FROM ({CURRENT_QUARANTINE}) q`.
CURRENT_QUARANTINE = """
    SELECT q.* FROM quality.quarantine q
    JOIN (SELECT source_system, arg_max(run_id, validated_at) AS run_id
          FROM quality.validation_runs GROUP BY source_system) latest
      USING (source_system, run_id)"""


log = logging.getLogger(__name__)

#: How long `connect` waits for another process's lock on the warehouse file (seconds),
#: unless CUSTPIPE_WAREHOUSE_LOCK_TIMEOUT says otherwise.
DEFAULT_LOCK_TIMEOUT = 300.0
_LOCK_POLL_SECONDS = 0.25
_LOCK_CONFLICT = re.compile(
    r"Could not set lock on file .*Conflicting lock is held in (.*) \(PID (\d+)\)"
)
_CORRUPT = (
    "not a valid DuckDB database file",
    "Could not read enough bytes",
    "checksum",
    "Corrupt",
    "corrupt",
)
_NOT_PERMITTED = ("Permission denied", "Operation not permitted", "Read-only file system")


class WarehouseError(RuntimeError):
    """The warehouse file cannot be used; the message names the file and what to do."""


class WarehouseLockedError(WarehouseError):
    """Another process held the warehouse's lock for longer than the lock timeout."""


class WarehouseCorruptError(WarehouseError):
    """The warehouse file is not a readable DuckDB database."""


class WarehouseNotWritableError(WarehouseError):
    """The warehouse file, or its folder, cannot be written by this process."""


def seconds_setting(name: str, default: float) -> float:
    """A number of seconds from the environment variable `name` (unset or empty: `default`);
    anything else than a number >= 0 is a ValueError naming the variable and the fix."""
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        value = -1.0
    if not value >= 0:  # also NaN
        raise ValueError(
            f"{name} is {raw!r}: set it to a number of seconds (e.g. {default:.0f}) or unset it"
        )
    return value


def lock_timeout_setting() -> float:
    """Seconds to wait for another process's warehouse lock (CUSTPIPE_WAREHOUSE_LOCK_TIMEOUT)."""
    return seconds_setting("CUSTPIPE_WAREHOUSE_LOCK_TIMEOUT", DEFAULT_LOCK_TIMEOUT)


# an option whose value (the next argument, or after '=') is a password: --password, -p,
# --pass, --passwd, --pwd, --db-password, ...
_PASSWORD_OPTION = re.compile(
    r"(?i)^(-p|--?[\w-]*(?:password|passwd|pass|pwd|secret|token))(=.*)?$"
)
_ATTACHED_PASSWORD = re.compile(r"^-p(.+)$")  # mysql's -pSECRET


def _mask_password_arguments(words: list[str]) -> list[str]:
    """`words` with the values of password options (`--password X`, `-p X`, `--pass=X`)
    replaced by `***`; `NAME=value` secrets are left to :func:`custpipe.secrets.redact`."""
    out: list[str] = []
    mask_next = False
    for word in words:
        option = _PASSWORD_OPTION.match(word)
        if mask_next:
            out.append("***")
        elif option and option.group(2) is not None:
            out.append(f"{option.group(1)}=***")
        elif _ATTACHED_PASSWORD.match(word):
            out.append("-p***")
        else:
            out.append(word)
        mask_next = bool(option) and option.group(2) is None
    return out


def _holder_program(pid: str, fallback: str) -> str:
    """The command line of process `pid` (URLs and password arguments masked), or `fallback`
    if it cannot be read."""
    try:
        raw = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return fallback
    words = [w for w in raw.decode("utf-8", "replace").split("\0") if w]
    if not words:
        return fallback
    from custpipe.secrets import redact

    # every argument masked, then shortened (a `python -c` script is not worth showing whole)
    shown = [" ".join(redact(word).split()) for word in _mask_password_arguments(words)]
    text = " ".join(w if len(w) <= 80 else w[:77] + "..." for w in shown)
    return text if len(text) <= 400 else text[:397] + "..."


def _open(path: Path, read_only: bool, config: dict, lock_timeout: float):
    """duckdb.connect, waiting for another process's lock and translating known failures."""
    deadline = time.monotonic() + lock_timeout
    told = False
    while True:
        try:
            return duckdb.connect(str(path), read_only=read_only, config=config)
        except duckdb.IOException as exc:
            conflict = _LOCK_CONFLICT.search(str(exc))
            if conflict is None:
                raise _translate(path, exc) from exc
            program = _holder_program(conflict.group(2), conflict.group(1))
            holder = f"PID {conflict.group(2)}: {program}"
            if time.monotonic() >= deadline:
                raise WarehouseLockedError(
                    f"warehouse {path} is locked by another process ({holder}) and it was not "
                    f"released within {lock_timeout:g} s. DuckDB allows one process at a time: "
                    "wait for that run to finish (or stop it if it hangs) and start again, or "
                    "raise CUSTPIPE_WAREHOUSE_LOCK_TIMEOUT (seconds)"
                ) from None
            if not told:
                log.warning(
                    "warehouse %s is locked by another process (%s); waiting up to %g s",
                    path,
                    holder,
                    lock_timeout,
                )
                told = True
            time.sleep(min(_LOCK_POLL_SECONDS, max(deadline - time.monotonic(), 0)))


def _translate(path: Path, exc: Exception) -> Exception:
    """A clear error for a corrupt or unwritable warehouse; `exc` itself for anything else."""
    text = str(exc)
    if any(marker in text for marker in _CORRUPT) or isinstance(
        exc, duckdb.SerializationException | duckdb.InternalException
    ):
        return WarehouseCorruptError(
            f"warehouse {path} is damaged or not a DuckDB database ({text}). Restore it from "
            "a backup, or move it aside and rebuild it with `custpipe run --full-refresh` "
            "(staging re-applies the landing zone, the sources are extracted in full)"
        )
    if any(marker in text for marker in _NOT_PERMITTED):
        return _not_writable(path, text)
    return exc


def _not_writable(path: Path, reason: str) -> WarehouseNotWritableError:
    return WarehouseNotWritableError(
        f"warehouse {path} cannot be written ({reason}). Fix the permissions: the nightly run "
        f"must be able to write the file and create files in its folder {path.parent} "
        "(DuckDB keeps its write-ahead log beside it); readers need read permission only"
    )


def _check_folder_writable(path: Path) -> None:
    """DuckDB writes `<file>.wal` beside the file at the first commit: fail now, not then."""
    try:
        with tempfile.TemporaryFile(dir=path.parent, prefix=f".{path.name}.probe-"):
            pass
    except OSError as exc:
        raise _not_writable(path.parent, exc.strerror or str(exc)) from exc


@contextmanager
def connect(
    path: Path, read_only: bool = False, lock_timeout: float | None = None, vacuum: bool = True
) -> Iterator[duckdb.DuckDBPyConnection]:
    """Open the warehouse (creating the contract tables when writable) and close it after use.

    A lock held by another process is waited for up to `lock_timeout` seconds (default:
    CUSTPIPE_WAREHOUSE_LOCK_TIMEOUT, else 300), then WarehouseLockedError names the holder;
    a damaged or unwritable file raises WarehouseCorruptError / WarehouseNotWritableError.
    `vacuum` False: DuckDB's checkpoints on this connection leave deleted rows marked and
    row groups as they are, unless :func:`vacuum_at_close` says otherwise (see there).
    """
    path = Path(path)
    if read_only and not path.exists():
        raise FileNotFoundError(f"warehouse {path} does not exist yet: run the nightly job first")
    if path.exists() and not path.is_file():
        raise WarehouseError(
            f"warehouse {path} is not a file (a directory or a device): point CUSTPIPE_DATA at "
            "the data folder (the warehouse is its warehouse.duckdb), or move the folder aside"
        )
    if lock_timeout is None:
        lock_timeout = lock_timeout_setting()
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise _not_writable(path.parent, exc.strerror or str(exc)) from exc
    if not read_only:
        _check_folder_writable(path)
    # DuckDB's buffer pool would take up to 80 % of RAM; the nightly run shares the machine
    # with its own pandas frames, so it is capped (spilling to disk beyond the cap).
    config = {"memory_limit": os.environ.get("CUSTPIPE_DUCKDB_MEMORY_LIMIT", "2GB")}
    if not vacuum:
        config["max_vacuum_tasks"] = 0
    con = _open(path, read_only, config, lock_timeout)
    try:
        if not read_only:
            try:
                ensure_schema(con)
            except duckdb.Error as exc:
                translated = _translate(path, exc)
                if translated is exc:
                    raise
                raise translated from exc
        yield con
    finally:
        con.close()


def vacuum_at_close(con: duckdb.DuckDBPyConnection) -> None:
    """Let the checkpoint at this connection's close vacuum the warehouse (DuckDB's default):
    drop deleted rows and merge the row groups they and small appends left, in every table.

    A nightly step connects with `vacuum=False`: a checkpoint that vacuums rewrites whole
    row groups (~1 s for one of a wide table), and an incremental night deletes ~1 % of a
    few tables' rows in many steps. The consolidation turns it on when it runs in full (the
    periodic consistency night, a full refresh, a change of meaning, the first night) or no
    periodic full night is configured, so a week's deleted rows (~7 % of a table) and small
    row groups are compacted at once."""
    con.execute("RESET max_vacuum_tasks")


_open_transactions: dict[int, int] = {}


@contextmanager
def transaction(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in one transaction: committed on success, rolled back on any error.

    Nested blocks join the outermost transaction.
    """
    depth = _open_transactions.get(id(con), 0)
    if depth:
        _open_transactions[id(con)] = depth + 1
        try:
            yield
        finally:
            _open_transactions[id(con)] = depth
        return
    con.execute("BEGIN TRANSACTION")
    _open_transactions[id(con)] = 1
    try:
        yield
    except BaseException:
        con.execute("ROLLBACK")
        raise
    else:
        con.execute("COMMIT")
    finally:
        _open_transactions.pop(id(con), None)


@contextmanager
def rolled_back(con: duckdb.DuckDBPyConnection) -> Iterator[None]:
    """Run the block in a transaction that is always rolled back: to compute a result, look
    at it, and keep nothing. Blocks inside join it as they join :func:`transaction`."""
    if _open_transactions.get(id(con)):
        raise RuntimeError("rolled_back() cannot run inside an open transaction")
    con.execute("BEGIN TRANSACTION")
    _open_transactions[id(con)] = 1
    try:
        yield
    finally:
        con.execute("ROLLBACK")
        _open_transactions.pop(id(con), None)


def replace_rows(
    con: duckdb.DuckDBPyConnection,
    table: str,
    frame: pd.DataFrame,
    where: str = "TRUE",
    params: list | None = None,
) -> int:
    """Delete rows matching `where` and insert `frame` (by column name), in one transaction."""
    with transaction(con):
        con.execute(f"DELETE FROM {table} WHERE {where}", params or [])
        return append_rows(con, table, frame)


def replace_table(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame) -> int:
    """Replace every row of `table` with `frame`: drop and re-create it from its own DDL.

    Much cheaper than DELETE + INSERT for a large table (DuckDB commits deleted rows one by
    one: 31 s against 0.6 s for 1.4M rows). Transactional like any DDL in DuckDB.
    """
    with registered(con, "incoming_table", frame):
        return replace_table_from(con, table, "SELECT * FROM incoming_table")


def replace_table_from(
    con: duckdb.DuckDBPyConnection, table: str, select: str, params: dict | list | None = None
) -> int:
    """Replace every row of `table` with the rows of the query `select` (columns by name).

    Like :func:`replace_table`, but the rows never leave DuckDB. `select` must not read
    `table` itself: it is dropped and re-created (from its own DDL) first.
    """
    with transaction(con):
        clear_table(con, table)
        (rows,) = con.execute(f"INSERT INTO {table} BY NAME {select}", params).fetchone()
        return rows


def clear_table(con: duckdb.DuckDBPyConnection, table: str) -> None:
    """Remove every row of `table` by dropping and re-creating it from its own DDL (far
    cheaper than DELETE for a large table; see :func:`replace_table`)."""
    schema, name = table.split(".")
    (ddl,) = con.execute(
        "SELECT sql FROM duckdb_tables() WHERE schema_name = ? AND table_name = ?", [schema, name]
    ).fetchone()
    with transaction(con):
        con.execute(f"DROP TABLE {table}")
        con.execute(ddl)


def upsert_rows(
    con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame, keys: list[str]
) -> int:
    """Replace the rows of `table` that share `keys` with a row of `frame`, in one transaction."""
    if frame.empty:
        return 0
    match = " AND ".join(f"t.{k} = k.{k}" for k in keys)
    with transaction(con), registered(con, "incoming_keys", frame[keys].drop_duplicates()):
        con.execute(
            f"DELETE FROM {table} t WHERE EXISTS (SELECT 1 FROM incoming_keys k WHERE {match})"
        )
        return append_rows(con, table, frame)


def append_rows(con: duckdb.DuckDBPyConnection, table: str, frame: pd.DataFrame | pa.Table) -> int:
    """Insert `frame` (a pandas frame or an Arrow table) into `table` matching columns by name."""
    if len(frame) == 0:
        return 0
    with registered(con, "incoming_rows", frame):
        con.execute(f"INSERT INTO {table} BY NAME SELECT * FROM incoming_rows")
    return len(frame)


@contextmanager
def registered(con: duckdb.DuckDBPyConnection, name: str, frame: object) -> Iterator[str]:
    """`frame` (pandas or Arrow) readable by SQL on `con` as `name` for the block; yields `name`.

    Unregistered when the block ends. A result left partly fetched on `con` (before the block
    or in it) is run to its end first: DuckDB registers and unregisters nothing under an
    unfinished result, where a plain execute() would have replaced it. If the block failed
    inside a transaction, DuckDB has aborted that transaction: unregistering would raise a
    follow-up error ("transaction is aborted") that hides the block's own, so it is skipped
    (the rollback drops a registration made inside the transaction).
    """
    con.complete()
    con.register(name, frame)
    try:
        yield name
    except BaseException:
        with suppress(duckdb.Error):
            con.unregister(name)
        raise
    con.complete()
    con.unregister(name)


def ensure_schema(con: duckdb.DuckDBPyConnection) -> None:
    """Create the catalogue's schemas and tables and add the columns an older warehouse lacks
    (:func:`migrate`); when every declared column is there already (most connections), this
    is one read of DuckDB's catalog (~2 ms, where the DDL and migrate took ~20 ms, 18 times a
    night)."""
    have = con.execute(
        "SELECT schema_name, table_name, column_name FROM duckdb_columns() "
        "WHERE database_name = current_database()"
    ).fetchall()
    if set(have) >= _DECLARED_COLUMNS:
        return
    con.execute(DDL)
    migrate(con)


def migrate(
    con: duckdb.DuckDBPyConnection, tables: tuple[catalogue.Table, ...] | None = None
) -> list[str]:
    """Add the catalogue's columns a warehouse built by an older custpipe lacks (nullable,
    at the end of the table); return them as `schema.table.column`."""
    have = {
        (s, t, c)
        for s, t, c in con.execute(
            "SELECT table_schema, table_name, column_name FROM information_schema.columns"
        ).fetchall()
    }
    added = []
    for table in catalogue.tables() if tables is None else tables:
        for column in table.columns:
            if (table.schema, table.name, column.name) not in have:
                con.execute(
                    f'ALTER TABLE {table.qualified_name} ADD COLUMN "{column.name}" {column.type}'
                )
                added.append(f"{table.qualified_name}.{column.name}")
    return added


def table_counts(con: duckdb.DuckDBPyConnection) -> dict[str, int]:
    """Row counts of the contract tables."""
    return {t: con.execute(f"SELECT count(*) FROM {t}").fetchone()[0] for t in CONTRACT_TABLES}
