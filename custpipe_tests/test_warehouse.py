import os
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from custpipe import warehouse


def test_replace_table_swaps_rows_keeps_the_ddl_and_rolls_back_as_a_whole():
    con = duckdb.connect()
    con.execute(warehouse.DDL)
    first = pd.DataFrame(
        {"source_system": ["erp", "crm"], "source_id": ["1", "2"], "golden_id": ["G1", "G1"]}
    )
    warehouse.replace_table(con, "mdm.customer_xref", first)
    warehouse.replace_table(con, "mdm.customer_xref", first.iloc[:1])
    assert con.execute("SELECT source_id FROM mdm.customer_xref").fetchall() == [("1",)]
    before = con.execute(
        "SELECT sql FROM duckdb_tables() WHERE table_name = 'customer_xref'"
    ).fetchone()
    bad = pd.DataFrame({"source_system": [None], "source_id": ["3"], "golden_id": ["G3"]})
    with pytest.raises(duckdb.ConstraintException), warehouse.transaction(con):
        warehouse.replace_table(con, "mdm.golden_customers", pd.DataFrame({"golden_id": ["G9"]}))
        warehouse.replace_table(con, "mdm.customer_xref", bad)  # NOT NULL kept by the DDL
    assert con.execute("SELECT source_id FROM mdm.customer_xref").fetchall() == [("1",)]
    assert con.execute("SELECT count(*) FROM mdm.golden_customers").fetchone()[0] == 0
    after = con.execute("SELECT sql FROM duckdb_tables() WHERE table_name = 'customer_xref'")
    assert after.fetchone() == before


HOLDER = """
import sys, time
import duckdb
con = duckdb.connect(sys.argv[1])
print("holding", flush=True)
time.sleep(float(sys.argv[2]))
con.close()
"""


def hold_lock(path: Path, seconds: float, *extra: str) -> subprocess.Popen:
    """Another process that opens the warehouse for writing and keeps it `seconds`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", HOLDER, str(path), str(seconds), *extra],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout.readline().strip() == "holding"
    return proc


def test_a_warehouse_locked_by_another_process_waits_then_names_the_holder(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with warehouse.connect(path):
        pass
    # a URL with a password on the holder's command line must not be shown
    holder = hold_lock(path, 60, "postgresql://etl:s3cr3t-pw@db.example/erp")
    try:
        started = time.monotonic()
        with (
            pytest.raises(warehouse.WarehouseLockedError) as caught,
            warehouse.connect(path, lock_timeout=1.5),
        ):
            pass
        waited = time.monotonic() - started
    finally:
        holder.kill()
        holder.wait(timeout=30)
    message = str(caught.value)
    assert 1.5 <= waited < 20
    assert str(path) in message
    assert f"PID {holder.pid}" in message and "python" in message
    assert "s3cr3t-pw" not in message and "etl:***@db.example" in message
    assert "CUSTPIPE_WAREHOUSE_LOCK_TIMEOUT" in message  # what to do


def test_a_read_only_open_of_a_locked_warehouse_is_the_same_clear_error(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with warehouse.connect(path):
        pass
    holder = hold_lock(path, 60)
    try:
        with (
            pytest.raises(warehouse.WarehouseLockedError, match=f"PID {holder.pid}"),
            warehouse.connect(path, read_only=True, lock_timeout=0.5),
        ):
            pass
    finally:
        holder.kill()
        holder.wait(timeout=30)


def test_a_lock_released_within_the_timeout_is_waited_for(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    with warehouse.connect(path) as con:
        con.execute("CREATE TABLE main.probe AS SELECT 1 AS x")
    holder = hold_lock(path, 1.0)
    try:
        with warehouse.connect(path, lock_timeout=60) as con:
            assert con.execute("SELECT x FROM main.probe").fetchall() == [(1,)]
        assert holder.wait(timeout=30) == 0  # it held the lock and ended on its own
    finally:
        holder.kill()


def test_the_lock_timeout_setting_is_read_and_checked(monkeypatch):
    monkeypatch.delenv("CUSTPIPE_WAREHOUSE_LOCK_TIMEOUT", raising=False)
    assert warehouse.lock_timeout_setting() == warehouse.DEFAULT_LOCK_TIMEOUT >= 60
    monkeypatch.setenv("CUSTPIPE_WAREHOUSE_LOCK_TIMEOUT", "2.5")
    assert warehouse.lock_timeout_setting() == 2.5
    monkeypatch.setenv("CUSTPIPE_WAREHOUSE_LOCK_TIMEOUT", "soon")
    with pytest.raises(ValueError, match="CUSTPIPE_WAREHOUSE_LOCK_TIMEOUT.*'soon'.*seconds"):
        warehouse.lock_timeout_setting()


@pytest.mark.parametrize(
    "damage",
    ["random bytes", "truncated", "empty"],
)
def test_a_corrupt_warehouse_file_is_a_clear_error_with_what_to_do(tmp_path, damage):
    path = tmp_path / "warehouse.duckdb"
    with warehouse.connect(path) as con:
        con.execute("CREATE TABLE main.probe AS SELECT range AS x FROM range(50000)")
    good = path.read_bytes()
    if damage == "random bytes":
        path.write_bytes(os.urandom(len(good)))
    elif damage == "truncated":
        path.write_bytes(good[: len(good) // 3])
    else:
        path.write_bytes(b"")
    for read_only in (False, True):
        with (
            pytest.raises(warehouse.WarehouseCorruptError) as caught,
            warehouse.connect(path, read_only=read_only),
        ):
            pass
        message = str(caught.value)
        assert str(path) in message
        assert "backup" in message and "--full-refresh" in message


def _make_immutable(target: Path) -> bool:
    """Make `target` unwritable even for root (chattr +i), or by mode for other users."""
    if os.geteuid() != 0:
        target.chmod(0o555 if target.is_dir() else 0o444)
        return True
    return subprocess.run(["chattr", "+i", str(target)], capture_output=True).returncode == 0


def _make_writable(target: Path) -> None:
    if os.geteuid() == 0:
        subprocess.run(["chattr", "-i", str(target)], capture_output=True, check=True)
    target.chmod(0o755 if target.is_dir() else 0o644)


@pytest.mark.parametrize("what", ["file", "directory"])
def test_a_read_only_warehouse_is_a_clear_error_naming_the_permission_to_fix(tmp_path, what):
    folder = tmp_path / "data"
    path = folder / "warehouse.duckdb"
    with warehouse.connect(path):
        pass
    target = path if what == "file" else folder
    if not _make_immutable(target):
        pytest.skip("cannot make a file read-only here (root without chattr)")
    try:
        with pytest.raises(warehouse.WarehouseNotWritableError) as caught, warehouse.connect(path):
            pass
        with warehouse.connect(path, read_only=True) as con:  # readers still can
            assert con.execute("SELECT count(*) FROM mdm.golden_customers").fetchone() == (0,)
    finally:
        _make_writable(target)
    message = str(caught.value)
    assert str(target) in message and "permission" in message.lower()


def test_a_step_stopped_by_the_lock_reports_the_holder_not_dagsters_wrapper(tmp_path):
    """What `custpipe run` prints for a failed step (outside DAGSTER_HOME there is no pool:
    the file lock is what stops a second run, and the step's headline says who holds it)."""
    import dagster as dg

    from custpipe.cli import failure_headline

    path = tmp_path / "warehouse.duckdb"
    with warehouse.connect(path):
        pass

    @dg.op
    def stage():
        with warehouse.connect(path, lock_timeout=0.5):
            pass

    @dg.job
    def nightly():
        stage()

    holder = hold_lock(path, 60)
    try:
        result = nightly.execute_in_process(
            instance=dg.DagsterInstance.ephemeral(), raise_on_error=False
        )
    finally:
        holder.kill()
        holder.wait(timeout=30)
    (failure,) = [e for e in result.all_events if e.is_step_failure]
    headline = failure_headline(failure)
    assert headline.startswith("custpipe.warehouse.WarehouseLockedError: warehouse ")
    assert f"is locked by another process (PID {holder.pid}" in headline
    assert "Could not set lock" not in headline  # not DuckDB's raw message


def _row_groups(path: Path) -> int:
    with warehouse.connect(path, read_only=True) as con:
        return con.execute(
            "SELECT count(DISTINCT row_group_id) FROM pragma_storage_info('main.t')"
        ).fetchone()[0]


def test_a_connection_without_vacuum_leaves_deleted_rows_until_one_vacuums_at_close(tmp_path):
    """A nightly step's deletes (vacuum=False) are not compacted by its checkpoint; the
    connection that calls vacuum_at_close compacts every table."""
    path = tmp_path / "w.duckdb"
    with warehouse.connect(path) as con:
        con.execute(
            "CREATE TABLE main.t AS SELECT i AS k, 'customer ' || i AS s FROM range(300000) r(i)"
        )
    before = _row_groups(path)
    for night in range(3):  # each night deletes 1 % and appends as many rows
        with warehouse.connect(path, vacuum=False) as con:
            con.execute("DELETE FROM main.t WHERE k < 300000 AND k % 100 = ?", [night])
            con.execute(
                "INSERT INTO main.t SELECT 1000000 * (? + 1) + i, 'new' FROM range(3000) r(i)",
                [night],
            )
    grown = _row_groups(path)
    assert grown > before  # the appends sit in row groups of their own, deleted rows stay
    with warehouse.connect(path, vacuum=False) as con:
        warehouse.vacuum_at_close(con)
        con.execute("INSERT INTO main.t VALUES (-1, 'one more')")
    assert _row_groups(path) < grown
    with warehouse.connect(path, read_only=True) as con:
        assert con.execute("SELECT count(*) FROM main.t").fetchone()[0] == 300000 - 9000 + 9001
