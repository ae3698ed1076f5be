"""The nightly run's import of the steward store into the warehouse."""

from __future__ import annotations

import hashlib
import sqlite3
from datetime import UTC, datetime, timedelta

import duckdb
import pandas as pd
import pytest

from custpipe import warehouse
from custpipe.matching.decisions import decisions_digest
from custpipe.steward import store

T0 = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)


@pytest.fixture
def path(tmp_path):
    return tmp_path / "steward" / "steward.sqlite"


@pytest.fixture
def con(empty_warehouse):
    """A warehouse whose golden record G1 holds erp:1, erp:2 and crm:3; G2 holds sales:4."""
    xref = pd.DataFrame(
        {
            "source_system": ["erp", "erp", "crm", "sales"],
            "source_id": ["1", "2", "3", "4"],
            "golden_id": ["G1", "G1", "G1", "G2"],
        }
    )
    warehouse.append_rows(empty_warehouse, "mdm.customer_xref", xref)
    return empty_warehouse


def _decisions(con) -> list[tuple]:
    return con.execute(
        "SELECT left_source_system || ':' || left_source_id, right_source_system || ':' || "
        "right_source_id, decision, reason, decided_by, origin, decision_id "
        "FROM mdm.steward_decisions ORDER BY 1, 2"
    ).fetchall()


def test_a_missing_store_imports_nothing(con, path):
    counts = store.import_decisions(con, path, "run1")
    assert counts == dict.fromkeys(store.IMPORT_COUNTS, 0)
    assert not path.exists()  # the import never creates the store


def test_pair_decisions_are_imported_as_they_are_and_only_once(con, path):
    must = store.record_decision(path, "erp:1", "sales:4", "must_link", "ann", "same", "cli", T0)
    cannot = store.record_decision(path, "crm:3", "erp:9", "cannot_link", "bob", "no", "sheet")
    counts = store.import_decisions(con, path, "run1")
    assert counts == {"decisions": 2, "must_link": 1, "cannot_link": 1, "split_out": 0,
                      "stale_split_out": 0, "pairs": 2}  # fmt: skip
    assert _decisions(con) == [
        ("crm:3", "erp:9", "cannot_link", "no", "bob", "sheet", cannot),
        ("erp:1", "sales:4", "must_link", "same", "ann", "cli", must),
    ]
    decided_at = con.execute(
        "SELECT decided_at FROM mdm.steward_decisions WHERE decision_id = ?", [must]
    ).fetchone()[0]
    assert decided_at == T0.replace(tzinfo=None)  # naive UTC, like every stored stamp
    digest = decisions_digest(con)
    assert store.import_decisions(con, path, "run2")["decisions"] == 0  # idempotent
    assert decisions_digest(con) == digest and len(_decisions(con)) == 2
    imports = con.execute(
        "SELECT decision_id, outcome, pairs, run_id FROM mdm.steward_imports ORDER BY pairs"
    ).fetchall()
    assert sorted(imports) == sorted(
        [(must, "imported", 1, "run1"), (cannot, "imported", 1, "run1")]
    )
    later = store.record_decision(path, "sales:4", "erp:1", "cannot_link", "ann", "oops", "cli")
    assert store.import_decisions(con, path, "run3")["decisions"] == 1  # only the new one
    assert store.imported_decision_ids(con) == {must, cannot, later}
    assert store.pending_pairs(path, store.imported_decision_ids(con)) == []


def test_a_split_out_becomes_cannot_links_to_every_other_member(con, path):
    split = store.record_split(path, "erp:2", "G1", "ann", "another firm", "workbench")
    counts = store.import_decisions(con, path, "run1")
    assert counts["split_out"] == 1 and counts["pairs"] == 2 and counts["decisions"] == 1
    why = "split out of G1: another firm"
    assert _decisions(con) == [
        ("erp:2", "crm:3", "cannot_link", why, "ann", "workbench", split),
        ("erp:2", "erp:1", "cannot_link", why, "ann", "workbench", split),
    ]
    # its several rows count as one imported decision: a second import adds nothing
    assert store.import_decisions(con, path, "run2") == dict.fromkeys(store.IMPORT_COUNTS, 0)
    assert len(_decisions(con)) == 2


def test_a_stale_split_out_imports_nothing_is_logged_and_not_retried(con, path):
    gone = store.record_split(path, "erp:9", "G1", "ann", "x", "workbench")  # not a member
    moved = store.record_split(path, "sales:4", "G1", "ann", "x", "workbench")  # member of G2
    alone = store.record_split(path, "sales:4", "G2", "ann", "x", "workbench")  # sole member
    messages: list[str] = []
    counts = store.import_decisions(con, path, "run1", log=messages.append)
    assert counts == {"decisions": 3, "must_link": 0, "cannot_link": 0, "split_out": 0,
                      "stale_split_out": 3, "pairs": 0}  # fmt: skip
    assert _decisions(con) == []
    assert len(messages) == 3 and all("stale" in m for m in messages)
    assert gone in messages[0] and "no longer holds" in messages[0]
    assert "holds nothing else" in messages[2]
    outcomes = dict(con.execute("SELECT decision_id, outcome FROM mdm.steward_imports").fetchall())
    assert outcomes == {gone: "stale", moved: "stale", alone: "stale"}
    # a stale split is not tried again: were the record to join G1 later, it stays there
    con.execute("UPDATE mdm.customer_xref SET golden_id = 'G1' WHERE source_system = 'sales'")
    assert store.import_decisions(con, path, "run2")["decisions"] == 0
    assert _decisions(con) == []


def test_a_later_must_link_overrides_one_cannot_link_of_a_split(con, path):
    store.record_split(path, "erp:2", "G1", "ann", "another firm", "workbench", T0)
    store.record_decision(
        path, "erp:1", "erp:2", "must_link", "bob", "same firm after all", "workbench",
        T0 + timedelta(hours=1),
    )  # fmt: skip
    store.import_decisions(con, path, "run1")
    latest = con.execute("""
        SELECT least(l, r), greatest(l, r), arg_max(decision, decided_at)
        FROM (SELECT left_source_system || ':' || left_source_id AS l,
                     right_source_system || ':' || right_source_id AS r, decision, decided_at
              FROM mdm.steward_decisions) GROUP BY 1, 2 ORDER BY 1, 2""").fetchall()
    assert latest == [("crm:3", "erp:2", "cannot_link"), ("erp:1", "erp:2", "must_link")]


def test_the_import_never_writes_the_store(con, path):
    store.record_decision(path, "erp:1", "sales:4", "must_link", "ann", "same", "cli")
    store.record_split(path, "erp:2", "G1", "ann", "another firm", "workbench")

    def fingerprint() -> dict[str, str]:
        return {
            p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.parent.iterdir())
            # a reader of a WAL database may create the (empty) log and its shared-memory
            # index; it writes no data
            if not p.name.endswith("-shm") and p.stat().st_size
        }

    before = fingerprint()
    store.import_decisions(con, path, "run1")
    assert fingerprint() == before


def test_a_rolled_back_import_is_imported_again(con, path):
    """The import commits on its own; were its transaction rolled back (inside a caller's
    failed transaction), the next import brings the same decisions in again, once."""
    store.record_split(path, "erp:2", "G1", "ann", "another firm", "workbench")
    with pytest.raises(RuntimeError), warehouse.transaction(con):
        store.import_decisions(con, path, "run1")
        assert len(_decisions(con)) == 2
        raise RuntimeError("the consolidation failed")
    assert _decisions(con) == []
    assert store.import_decisions(con, path, "run2")["pairs"] == 2
    assert len(_decisions(con)) == 2


def test_an_older_warehouse_gains_the_new_columns_with_empty_values(tmp_path):
    path = tmp_path / "warehouse.duckdb"
    old = duckdb.connect(str(path))
    old.execute(warehouse.DDL)
    old.execute("DROP TABLE mdm.steward_imports")
    old.execute("ALTER TABLE mdm.steward_decisions DROP COLUMN decision_id")
    old.execute("ALTER TABLE mdm.steward_decisions DROP COLUMN origin")
    old.execute("""INSERT INTO mdm.steward_decisions VALUES
        ('erp', '1', 'crm', '2', 'must_link', 'ann', TIMESTAMP '2026-11-01 10:00:00', 'same')""")
    old.close()
    with warehouse.connect(path) as con:  # connect creates and migrates
        rows = con.execute(
            "SELECT decision, decision_id, origin FROM mdm.steward_decisions"
        ).fetchall()
        assert rows == [("must_link", None, None)]
        assert store.imported_decision_ids(con) == set()
        assert con.execute("SELECT count(*) FROM mdm.steward_imports").fetchone()[0] == 0


def test_a_store_without_its_tables_imports_nothing(con, path):
    path.parent.mkdir(parents=True)
    sqlite3.connect(path).close()
    assert store.import_decisions(con, path, "run1")["decisions"] == 0


def test_a_damaged_store_stops_the_import_with_a_clear_error(con, path):
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not a database" * 100)
    with pytest.raises(RuntimeError, match="steward store .* cannot be read"):
        store.import_decisions(con, path, "run1")
