"""Incremental publish (custpipe.publish.state): over a sequence of nights, the target, its
log and the delta files equal those of a full publish of the same golden records."""

import uuid
from datetime import date, timedelta

import duckdb
import pandas as pd
import pytest
import sqlalchemy as sa

from custpipe.incremental import Schedule
from custpipe.publish.erp import PublishRefused, publish
from custpipe.publish.inputs import golden_for_publish, merge_successors
from custpipe.publish.state import plan_publish, publish_night
from custpipe.warehouse import DDL

TABLE = "ZCUST_INBOUND"
FIRST_NIGHT = date(2026, 3, 2)


def _rows(url: str, table: str) -> pd.DataFrame:
    engine = sa.create_engine(url)
    with engine.connect() as conn:
        frame = pd.read_sql(sa.text(f'SELECT * FROM "{table}"'), conn)
    engine.dispose()
    return frame


class Nights:
    """A warehouse whose golden records the test edits, published every night twice: by
    publish_night to the incremental target, by a plain full publish to the reference."""

    def __init__(self, tmp_path, inc_url: str | None = None, table: str = TABLE) -> None:
        self.con = duckdb.connect()
        self.con.execute(DDL)
        self.inc_url = inc_url or f"sqlite:///{tmp_path / 'inc.sqlite'}"
        self.ref_url = f"sqlite:///{tmp_path / 'ref.sqlite'}"
        self.table = table
        self.day = 0

    def set(self, golden_id: str, run: str, **values) -> None:
        """Create or rebuild a golden record (consolidation stamps it with the run)."""
        old = self.con.execute(
            "SELECT * FROM mdm.golden_customers WHERE golden_id = ?", [golden_id]
        ).df()
        row = (old.iloc[0].to_dict() if len(old) else {"name": f"Name {golden_id}"}) | values
        row |= {"golden_id": golden_id, "run_id": run, "status": row.get("status") or "active"}
        self.con.execute("DELETE FROM mdm.golden_customers WHERE golden_id = ?", [golden_id])
        self.con.register("one", pd.DataFrame([row]).astype(object))
        self.con.execute("INSERT INTO mdm.golden_customers BY NAME SELECT * FROM one")
        self.con.unregister("one")

    def drop(self, golden_id: str, run: str, merged_into: str | None = None) -> None:
        """Retire a golden ID (merged into another, or every member deleted)."""
        self.con.execute("DELETE FROM mdm.golden_customers WHERE golden_id = ?", [golden_id])
        event = "merged" if merged_into else "retired"
        self.con.execute(
            "INSERT INTO mdm.golden_id_history VALUES (?, ?, ?, ?, 1, now())",
            [run, golden_id, event, merged_into],
        )

    def night(self, run: str, *, full_refresh: bool = False, **kwargs):
        """Publish incrementally (as planned) and, to the reference, in full; return both."""
        self.day += 1
        day = FIRST_NIGHT + timedelta(days=self.day)
        schedule = Schedule(full_refresh=full_refresh, business_date=day)
        plan = plan_publish(self.con, self.table, self.inc_url, schedule)
        night = publish_night(
            self.con, self.inc_url, self.table, run, plan, business_date=day, **kwargs
        )
        golden = golden_for_publish(self.con)
        ref = publish(golden, self.ref_url, self.table, run, merged_into=merge_successors(self.con))
        return night, ref

    def assert_same(self, night, ref, counts: bool = True) -> None:
        """The incremental target, log and delta equal the full publish's."""
        res = night.result
        if counts:
            got = (res.inserted, res.updated, res.retired, res.unchanged, res.active_before)
            assert got == (ref.inserted, ref.updated, ref.retired, ref.unchanged, ref.active_before)
            pd.testing.assert_frame_equal(_plain(res.delta), _plain(ref.delta))
        assert res.content_hash == ref.content_hash
        target = _rows(self.inc_url, self.table).drop(columns=["published_at", "run_id"])
        expected = _rows(self.ref_url, self.table).drop(columns=["published_at", "run_id"])
        key = ["golden_id"]
        pd.testing.assert_frame_equal(
            target.sort_values(key).reset_index(drop=True),
            expected.sort_values(key).reset_index(drop=True),
        )
        if counts:
            # tonight's log row (earlier ones may differ after a repair of the target)
            log = _rows(self.inc_url, f"{self.table}_LOG").drop(columns=["published_at"])
            ref_log = _rows(self.ref_url, f"{self.table}_LOG").drop(columns=["published_at"])
            assert log.iloc[-1].to_dict() == ref_log.iloc[-1].to_dict()

    def stage_run(self, run: str) -> dict:
        return (
            self.con.execute("SELECT * FROM ops.stage_runs WHERE run_id = ?", [run])
            .df()
            .iloc[0]
            .to_dict()
        )


def _plain(frame: pd.DataFrame) -> pd.DataFrame:
    return frame.astype(object).where(frame.notna(), None).reset_index(drop=True)


def test_a_sequence_of_nights_publishes_what_a_full_publish_does(tmp_path):
    w = Nights(tmp_path)
    for i in range(1, 9):
        w.set(f"G{i}", "r1", city="Berlin", email=f"c{i}@example.com")
    night, ref = w.night("r1")
    assert (night.plan.mode, night.result.inserted) == ("full", 8)
    w.assert_same(night, ref)

    night, ref = w.night("r2")  # nothing changed: nothing hashed, nothing written
    assert (night.plan.mode, night.hashed, night.result.changed) == ("incremental", 0, 0)
    w.assert_same(night, ref)

    w.set("G9", "r3", name="New")  # insert
    w.set("G2", "r3", name="Renamed")  # update
    w.set("G3", "r3")  # rebuilt, same values: hashed, unchanged
    night, ref = w.night("r3")
    assert (night.plan.mode, night.hashed) == ("incremental", 3)
    assert (night.result.inserted, night.result.updated) == (1, 1)
    w.assert_same(night, ref)

    w.drop("G4", "r4", merged_into="G5")  # a merge: G4's members now in G5
    w.set("G5", "r4", phone="+4930123456")
    w.drop("G6", "r4")  # every member deleted
    night, ref = w.night("r4")
    assert (night.result.retired, night.result.updated) == (2, 1)
    merged = night.result.delta.set_index("golden_id")["merged_into"]
    assert merged["G4"] == "G5" and pd.isna(merged["G6"])
    w.assert_same(night, ref)

    w.set("G1", "r5", segment="A")  # a blocked night: consolidated, not published
    w.set("G7", "r6", segment="B")
    night, ref = w.night("r6")  # the next good night publishes both
    assert (night.plan.mode, night.result.updated) == ("incremental", 2)
    w.assert_same(night, ref)

    w.set("G6", "r7", name="Back")  # a retired golden ID comes back
    night, ref = w.night("r7")
    assert (night.plan.mode, night.result.updated) == ("incremental", 1)
    w.assert_same(night, ref)

    night, ref = w.night("r8", full_refresh=True)  # compared: the increments were right
    assert (night.plan.mode, night.plan.compare, night.result.changed) == ("full", True, 0)
    assert night.differences == {}
    assert w.stage_run("r8")["differences"] == "{}"
    w.assert_same(night, ref)
    night, ref = w.night("r9")
    assert (night.plan.mode, night.hashed) == ("incremental", 0)
    w.assert_same(night, ref)


def test_a_target_row_changed_behind_custpipes_back_is_detected_and_repaired(tmp_path):
    w = Nights(tmp_path)
    for i in range(1, 5):
        w.set(f"G{i}", "r1")
    w.assert_same(*w.night("r1"))
    engine = sa.create_engine(w.inc_url)
    with engine.begin() as conn:  # someone rewrites a row, its hash with it
        conn.execute(
            sa.text(f"UPDATE {TABLE} SET name = 'X', row_hash = 'edited' WHERE golden_id = 'G2'")
        )
    engine.dispose()
    night, ref = w.night("r2")
    assert night.plan.mode == "full" and "written by someone else" in night.plan.reason
    assert "checksum" in night.plan.reason
    assert night.result.updated == 1  # repaired
    w.assert_same(night, ref, counts=False)
    assert w.stage_run("r2")["mode"] == "full"
    night, ref = w.night("r3")  # and incremental again
    assert (night.plan.mode, night.result.changed) == ("incremental", 0)
    w.assert_same(night, ref)
    with engine.begin() as conn:  # a row deleted behind custpipe's back
        conn.execute(sa.text(f"DELETE FROM {TABLE} WHERE golden_id = 'G3'"))
    engine.dispose()
    night, ref = w.night("r4")
    assert night.plan.mode == "full" and night.result.inserted == 1
    w.assert_same(night, ref, counts=False)
    with engine.begin() as conn:  # found by a full refresh: repaired, not a difference
        conn.execute(sa.text(f"UPDATE {TABLE} SET row_hash = 'edited' WHERE golden_id = 'G1'"))
    engine.dispose()
    night, ref = w.night("r5", full_refresh=True)
    assert (night.plan.mode, night.plan.compare, night.differences) == ("full", False, None)
    assert "not compared" in night.plan.reason and night.result.updated == 1
    w.assert_same(night, ref, counts=False)


def test_a_publish_whose_warehouse_record_was_lost_is_followed_by_a_full_one(tmp_path):
    """The process died after the target committed and before the warehouse recorded it:
    the target's log is newer than the record, so the next night reads the target."""
    w = Nights(tmp_path)
    for i in range(1, 4):
        w.set(f"G{i}", "r1")
    w.assert_same(*w.night("r1"))
    w.set("G2", "r2", name="Changed")
    publish(golden_for_publish(w.con), w.inc_url, TABLE, "r2")  # committed, not recorded
    publish(golden_for_publish(w.con), w.ref_url, TABLE, "r2")
    night, ref = w.night("r3")
    assert night.plan.mode == "full" and "log_run_id" in night.plan.reason
    assert night.result.changed == 0  # the target already had it
    w.assert_same(night, ref)
    assert w.night("r4")[0].plan.mode == "incremental"


def test_a_golden_record_changed_without_its_run_id_is_a_difference_of_the_compared_run(
    tmp_path,
):
    w = Nights(tmp_path)
    for i in range(1, 4):
        w.set(f"G{i}", "r1")
    w.night("r1")
    # a defect: the record changes but keeps the run_id it was published from
    w.con.execute("UPDATE mdm.golden_customers SET name = 'Silent' WHERE golden_id = 'G1'")
    night, _ = w.night("r2")
    assert (night.plan.mode, night.result.changed) == ("incremental", 0)  # it cannot see it
    night, ref = w.night("r3", full_refresh=True)
    assert night.differences == {"mdm.published_rows": 2, "publish delta": 1}
    assert '"publish delta": 1' in w.stage_run("r3")["differences"]
    assert night.result.updated == 1  # the full publish repairs it
    assert w.night("r4")[0].result.changed == 0


def test_a_dry_run_and_a_refused_night_leave_the_record_alone(tmp_path):
    w = Nights(tmp_path)
    for i in range(1, 11):
        w.set(f"G{i}", "r1")
    w.night("r1")
    w.set("G11", "r2")
    night, _ = w.night("r2", dry_run=True)
    assert (night.plan.mode, night.result.inserted, night.result.dry_run) == (
        "incremental",
        1,
        True,
    )
    assert len(_rows(w.inc_url, TABLE)) == 10
    assert (
        w.con.execute("SELECT count(*) FROM ops.stage_runs WHERE run_id = 'r2'").fetchone()[0] == 0
    )
    for i in range(1, 4):
        w.drop(f"G{i}", "r3")
    with pytest.raises(PublishRefused):
        w.night("r3", max_retire_share=0.05)
    assert len(_rows(w.inc_url, f"{TABLE}_LOG")) == 1
    night, ref = w.night("r4")  # the record still says what the target holds
    assert night.plan.mode == "incremental"
    assert (night.result.inserted, night.result.retired) == (1, 3)


def test_incremental_publish_to_postgresql(tmp_path, postgres_url):
    """The target's mark (checksum, counts, log) reads the same on PostgreSQL."""
    table = f"ZCUST_INC_{uuid.uuid4().hex[:12].upper()}"
    w = Nights(tmp_path, inc_url=postgres_url, table=table)
    try:
        for i in range(1, 6):
            w.set(f"G{i}", "r1")
        w.assert_same(*w.night("r1"))
        w.set("G2", "r2", name="Renamed")
        w.drop("G3", "r2", merged_into="G1")
        night, ref = w.night("r2")
        assert (night.plan.mode, night.result.updated, night.result.retired) == (
            "incremental",
            1,
            1,
        )
        w.assert_same(night, ref)
        engine = sa.create_engine(postgres_url)
        with engine.begin() as conn:
            conn.execute(
                sa.text(f"UPDATE \"{table}\" SET row_hash = 'edited' WHERE golden_id = 'G4'")
            )
        night, ref = w.night("r3")
        assert night.plan.mode == "full" and night.result.updated == 1
        w.assert_same(night, ref, counts=False)
        assert w.night("r4")[0].plan.mode == "incremental"
    finally:
        engine = sa.create_engine(postgres_url)
        with engine.begin() as conn:
            for name in (table, f"{table}_LOG"):
                conn.execute(sa.text(f'DROP TABLE IF EXISTS "{name}"'))
        engine.dispose()


@pytest.fixture
def postgres_url():
    """The test PostgreSQL server (skip when absent; fail in CI, see require_services)."""
    from custpipe_tests.conftest import require_server
    from custpipe_tests.integration.conftest import SERVERS

    require_server(SERVERS["postgresql"], "PostgreSQL")
    return SERVERS["postgresql"]
