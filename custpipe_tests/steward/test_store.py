"""The steward store: validation, decisions audited atomically, the login limiter, pending
decisions."""

from __future__ import annotations

import sqlite3
import threading
from datetime import UTC, datetime, timedelta

import pytest

from custpipe.settings import Settings
from custpipe.steward import store


@pytest.fixture
def path(tmp_path):
    return tmp_path / "steward" / "steward.sqlite"


def _count(path, table: str) -> int:
    con = sqlite3.connect(path)
    try:
        return con.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
    finally:
        con.close()


def test_the_store_lives_in_the_data_folder_and_is_created_in_wal_mode(tmp_path, path):
    settings = Settings(tmp_path / "config", tmp_path / "data", tmp_path / "expectations")
    assert store.store_path(settings) == tmp_path / "data" / "steward" / "steward.sqlite"
    con = store.connect(path)  # creates the folder and the schema
    try:
        assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert con.execute("PRAGMA busy_timeout").fetchone()[0] == store.BUSY_TIMEOUT_MS
        assert con.execute("PRAGMA user_version").fetchone()[0] == store.SCHEMA_VERSION >= 1
        tables = {r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        assert {"decisions", "audit", "login_failures"} <= tables
    finally:
        con.close()
    store.connect(path).close()  # opening it again migrates nothing and loses nothing


def test_an_older_store_is_migrated_and_a_newer_one_refused(path):
    path.parent.mkdir(parents=True)
    sqlite3.connect(path).close()  # an empty file: schema version 0
    store.record_decision(path, "erp:1", "crm:2", "must_link", "ann", "x", "cli")
    assert len(store.decisions(path)) == 1
    con = sqlite3.connect(path)
    con.execute(f"PRAGMA user_version = {store.SCHEMA_VERSION + 1}")
    con.close()
    with pytest.raises(RuntimeError, match="newer than this custpipe"):
        store.connect(path)


@pytest.mark.parametrize(
    ("left", "right", "decision", "by", "why", "origin", "message"),
    [
        ("erp:1", "crm:2", "maybe", "ann", "x", "cli", "decision must be one of"),
        ("erp:1", "crm:2", "must-link", "ann", "x", "cli", "decision must be one of"),
        ("1", "crm:2", "must_link", "ann", "x", "cli", "source_system:source_id"),
        ("erp:1", "crm:", "must_link", "ann", "x", "cli", "source_system:source_id"),
        ("erp:1", " erp:1 ", "cannot_link", "ann", "x", "cli", "two different records"),
        ("erp:1", "crm:2", "cannot_link", " ", "x", "cli", "who made it (--by) and why"),
        ("erp:1", "crm:2", "cannot_link", "ann", "", "cli", "who made it (--by) and why"),
        ("erp:1", "crm:2", "cannot_link", "ann", "x", "email", "origin must be one of"),
    ],
)
def test_an_invalid_decision_is_refused_and_nothing_is_written(
    path, left, right, decision, by, why, origin, message
):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        store.record_decision(path, left, right, decision, by, why, origin)
    assert not path.exists() or (_count(path, "decisions"), _count(path, "audit")) == (0, 0)


def test_an_invalid_split_is_refused(path):
    with pytest.raises(ValueError, match="source_system:source_id"):
        store.record_split(path, "erp", "G1", "ann", "x", "workbench")
    with pytest.raises(ValueError, match="golden ID"):
        store.record_split(path, "erp:1", " ", "ann", "x", "workbench")
    with pytest.raises(ValueError, match="who made it"):
        store.record_split(path, "erp:1", "G1", "ann", " ", "workbench")


def test_each_decision_is_written_with_its_audit_row(path):
    pair = store.record_decision(path, "erp:1", "crm:2", "must_link", "ann", "same VAT", "cli")
    split = store.record_split(path, "crm:7", "G1", "bob", "another firm", "workbench")
    decisions = store.decisions(path)
    assert decisions["decision_id"].tolist() == [pair, split]
    assert decisions.iloc[0][["kind", "left_record", "right_record", "origin"]].tolist() == [
        "must_link", "erp:1", "crm:2", "cli",
    ]  # fmt: skip
    row = decisions.iloc[1]
    assert (row["kind"], row["left_record"], row["right_record"], row["golden_id"]) == (
        "split_out", "crm:7", None, "G1",
    )  # fmt: skip
    assert row["decided_at"].endswith("Z") and row["decided_by"] == "bob"
    entries = store.audit_entries(path)
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("bob", "split_out", "crm:7"),
        ("ann", "decide", "erp:1|crm:2"),
    ]
    assert entries[0]["detail"] == {"decision_id": split, "golden_id": "G1", "origin": "workbench"}
    assert entries[1]["detail"]["decision_id"] == pair and entries[1]["reason"] == "same VAT"
    assert entries[0]["at"] == row["decided_at"]


def test_a_decision_and_its_audit_row_are_one_transaction(path, monkeypatch):
    store.connect(path).close()

    def broken(con, *args):  # the audit insert fails after the decision was inserted
        raise sqlite3.OperationalError("disk I/O error")

    monkeypatch.setattr(store, "_insert_audit", broken)
    with pytest.raises(sqlite3.OperationalError):
        store.record_decision(path, "erp:1", "crm:2", "must_link", "ann", "x", "cli")
    assert _count(path, "decisions") == _count(path, "audit") == 0


def test_a_batch_is_recorded_all_or_none_naming_the_bad_item(path):
    good = ("erp:1", "crm:2", "must_link", "ann", "x")
    with pytest.raises(store.InvalidDecision, match="decision 2: .*two different") as caught:
        store.record_decisions(path, [good, ("erp:1", "erp:1", "cannot_link", "a", "b")], "sheet")
    assert caught.value.number == 2
    assert not path.exists() or _count(path, "decisions") == 0
    ids = store.record_decisions(
        path, [good, ("erp:3", "crm:4", "cannot_link", "bob", "y")], "sheet"
    )
    assert len(set(ids)) == 2 and _count(path, "audit") == 2
    assert set(store.decisions(path)["origin"]) == {"sheet"}


def test_the_audit_log_filters_and_refuses_customer_values(path):
    store.audit(path, "ann", "login", None, {"client": "127.0.0.1"})
    store.audit(path, "bob", "login_failed")
    store.audit(path, "ann", "export", "quarantine:erp", {"rows": 12})
    assert [e["action"] for e in store.audit_entries(path, actor="ann")] == ["export", "login"]
    assert [e["actor"] for e in store.audit_entries(path, action="login_failed")] == ["bob"]
    assert len(store.audit_entries(path, limit=2)) == 2
    assert store.audit_entries(path, actor="ann")[0]["detail"] == {"rows": 12}
    with pytest.raises(ValueError, match="never customer values"):
        store.audit(path, "ann", "export", "erp:1", {"email": "x@example.com"})
    with pytest.raises(ValueError, match="actor"):
        store.audit(path, "", "login")
    assert len(store.audit_entries(path)) == 3


def test_login_failures_count_per_user_or_client_within_the_window(path):
    now = datetime(2026, 12, 2, 12, 0, tzinfo=UTC)
    store.record_login_failure(path, "ann", "10.0.0.1", now - timedelta(minutes=20))
    store.record_login_failure(path, "ann", "10.0.0.1", now - timedelta(minutes=5))
    store.record_login_failure(path, "ann", "10.0.0.2", now - timedelta(minutes=1))
    store.record_login_failure(path, "bob", "10.0.0.1", now - timedelta(minutes=2))
    since = now - timedelta(minutes=15)
    assert store.login_failures_since(path, "ann", "10.0.0.9", since) == 2  # by user
    assert store.login_failures_since(path, "eve", "10.0.0.1", since) == 2  # by client
    assert store.login_failures_since(path, "ann", "10.0.0.1", since) == 3  # user or client
    assert store.login_failures_since(path, "ann", "10.0.0.1", now - timedelta(hours=1)) == 4
    naive = (now - timedelta(minutes=15)).replace(tzinfo=None)  # naive means UTC
    assert store.login_failures_since(path, "ann", "10.0.0.9", naive) == 2
    store.clear_login_failures(path, "ann")
    assert store.login_failures_since(path, "ann", "10.0.0.9", since) == 0
    assert store.login_failures_since(path, "eve", "10.0.0.1", since) == 1  # bob's is kept
    assert store.prune_login_failures(path, now) == 1
    assert store.login_failures_since(path, "bob", "x", now - timedelta(days=1)) == 0


def test_pending_pairs_are_the_decisions_not_imported_yet(path):
    early = datetime(2026, 12, 1, 9, 0, tzinfo=UTC)
    first = store.record_decision(path, "erp:1", "crm:2", "must_link", "ann", "x", "cli", early)
    store.record_decision(path, "crm:2", "erp:1", "cannot_link", "bob", "no", "workbench")
    store.record_split(path, "crm:7", "G1", "ann", "another firm", "workbench")
    assert store.pending_pairs(path, set()) == [
        ("erp:1", "crm:2", "must_link"),
        ("crm:2", "erp:1", "cannot_link"),  # the latest decision about a pair is the last
        ("crm:7", None, "split_out"),
    ]
    assert store.pending_pairs(path, {first})[0] == ("crm:2", "erp:1", "cannot_link")


def test_several_writers_append_concurrently(path):
    store.connect(path).close()
    errors = []

    def write(worker: int) -> None:
        try:
            for i in range(10):
                store.record_decision(
                    path, f"erp:{worker}", f"crm:{i}", "cannot_link", "ann", "x", "workbench"
                )
        except Exception as exc:  # noqa: BLE001 - collected and asserted below
            errors.append(exc)

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert _count(path, "decisions") == _count(path, "audit") == 40
