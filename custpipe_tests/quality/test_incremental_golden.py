"""Incremental validation of the golden records (validate_golden with a plan): after every
night its verdicts equal those of GX over every golden record (validate_golden without a
plan) on the same table, and a compared full run finds no difference."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import pandas as pd

from custpipe import gates, warehouse
from custpipe.incremental import Schedule
from custpipe.quality.validate import plan_golden, validate_golden
from custpipe.settings import DEFAULT_CONFIG_DIR, Settings
from custpipe_tests.quality.helpers import EXPECTATIONS_DIR

DAY0 = date(2026, 11, 2)


def _verdicts(outcome) -> list[tuple]:
    return [
        (o.rule, o.success, o.evaluated, o.failed, o.missing, tuple(sorted(o.failed_ids)))
        for o in outcome.outcomes
    ]


class Golden:
    def __init__(self, root: Path) -> None:
        self.settings = Settings(
            config_dir=DEFAULT_CONFIG_DIR, data_dir=root, expectations_dir=EXPECTATIONS_DIR
        )
        self.n = 0

    def edit(self, sql: str) -> None:
        with warehouse.connect(self.settings.warehouse_path) as con:
            con.execute(sql)

    def night(self, expect_mode: str = "incremental", full_refresh: bool = False):
        """Validate tonight as planned and with plain GX over every record; compare."""
        self.n += 1
        run_id, day = f"run-{self.n}", DAY0 + timedelta(days=self.n)
        with warehouse.connect(self.settings.warehouse_path) as con:
            plain, plain_rows, _ = validate_golden(con, self.settings)
            schedule = Schedule(full_refresh=full_refresh, business_date=day)
            plan = plan_golden(con, self.settings, schedule)
            assert plan.mode == expect_mode, plan.reason
            outcome, rows, diffs = validate_golden(
                con, self.settings, plan=plan, run_id=run_id, business_date=day
            )
            stage = con.execute(
                "SELECT mode, changed_records, differences FROM ops.stage_runs "
                "WHERE stage = 'validate_golden' AND run_id = ?",
                [run_id],
            ).fetchall()
        assert rows == plain_rows
        assert _verdicts(outcome) == _verdicts(plain)
        assert outcome.success == plain.success
        check = gates.golden_suite_passes(outcome, rows)
        assert check.passed == gates.golden_suite_passes(plain, plain_rows).passed
        assert stage[0][0] == expect_mode
        return outcome, diffs, stage[0]


def _insert(n0: int, n1: int, run: str) -> str:
    return (
        "INSERT INTO mdm.golden_customers (golden_id, name, status, run_id) "
        f"SELECT 'G' || lpad(i::VARCHAR, 5, '0'), 'Name ' || i, 'active', '{run}' "
        f"FROM range({n0}, {n1}) t(i)"
    )


def test_golden_nights_give_the_verdicts_of_a_full_validation(tmp_path):
    g = Golden(tmp_path)
    g.edit(_insert(0, 200, "c1"))
    g.night(expect_mode="full")  # no state yet
    _, _, (_, changed, _) = g.night()  # nothing changed: GX validates nothing
    assert changed == 0
    g.edit(_insert(200, 230, "c3"))  # inserts
    g.edit("UPDATE mdm.golden_customers SET name = NULL WHERE golden_id IN ('G00003', 'G00207')")
    outcome, _, (_, changed, _) = g.night()
    assert changed == 31  # the 30 new records and G00003 (G00207 is one of the new)
    assert not outcome.success  # golden_name_required blocks
    g.edit("UPDATE mdm.golden_customers SET name = 'Back' WHERE golden_id = 'G00003'")
    g.edit("DELETE FROM mdm.golden_customers WHERE golden_id IN ('G00207', 'G00010')")
    outcome, _, _ = g.night()
    assert outcome.success
    outcome, diffs, (_, _, recorded) = g.night(expect_mode="full", full_refresh=True)
    assert diffs == {} and json.loads(recorded) == {}


def test_a_corrupted_golden_state_is_a_difference_of_the_compared_run(tmp_path):
    g = Golden(tmp_path)
    g.edit(_insert(0, 50, "c1"))
    g.night(expect_mode="full")
    # the state claims one record passes a rule it fails
    g.edit("UPDATE mdm.golden_customers SET name = NULL WHERE golden_id = 'G00001'")
    g.night()
    with warehouse.connect(g.settings.warehouse_path) as con:
        con.execute(
            "UPDATE quality.validated_rows SET failed = 0 "
            "WHERE scope = 'golden_customers' AND failed <> 0"
        )
    _, diffs, (_, _, recorded) = g.night(expect_mode="full", full_refresh=True)
    assert diffs == {"golden verdicts": 2, "quality.validated_rows": 2}
    assert json.loads(recorded) == diffs
    assert pd.notna(recorded)
