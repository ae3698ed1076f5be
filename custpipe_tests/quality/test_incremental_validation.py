"""Incremental validation (issue 16): after every night, the outputs equal a full validation
of the same staged rows — quarantine, scorecard, validation run, asset checks."""

from __future__ import annotations

import json
import shutil
from datetime import date, datetime, timedelta
from pathlib import Path

import duckdb
import pandas as pd
import pytest

from custpipe import gates, warehouse
from custpipe.incremental import Schedule
from custpipe.mapping.stage import flag_duplicate_ids
from custpipe.quality import incremental as inc
from custpipe.quality import validate as validate_mod
from custpipe.quality.validate import plan_orders, plan_source, validate_orders, validate_source
from custpipe.settings import DEFAULT_CONFIG_DIR, Settings
from custpipe_tests.quality.helpers import EXPECTATIONS_DIR, make_staged_frame, source_id

DAY0 = date(2026, 11, 2)


def _settings(root: Path, expectations: Path = EXPECTATIONS_DIR) -> Settings:
    return Settings(config_dir=DEFAULT_CONFIG_DIR, data_dir=root, expectations_dir=expectations)


def _outputs(con, run_id: str, scope: str = "erp") -> dict[str, pd.DataFrame]:
    """What a validation wrote for `run_id`, without bookkeeping columns, in a stable order."""
    queries = {
        "quarantine": "SELECT source_system, source_id, rule, severity, description "
        "FROM quality.quarantine WHERE run_id = ? AND source_system = ?",
        "scorecard": "SELECT source_system, rule, severity, evaluated, failed, pass_rate "
        "FROM quality.scorecard WHERE run_id = ? AND source_system = ?",
        "runs": "SELECT source_system, suite, rows, quarantined, success, volume_ok "
        "FROM quality.validation_runs WHERE run_id = ? AND source_system = ?",
    }
    out = {}
    for name, sql in queries.items():
        frame = con.execute(sql, [run_id, scope]).df()
        out[name] = frame.sort_values(list(frame.columns)).reset_index(drop=True)
    return out


def _checks(v, quality_rate: float = 0.05, warn_rate: float = 0.01) -> list[tuple]:
    return [
        (r.check, r.passed)
        for r in (
            gates.suite_passes(v, quality_rate),
            gates.volume_stable(v),
            gates.rows_quarantined(v, warn_rate),
        )
    ]


class Night:
    """A warehouse validated night after night; every night is checked against a full
    validation of the same staged rows on a copy of the warehouse file."""

    def __init__(self, root: Path, expectations: Path = EXPECTATIONS_DIR):
        self.root = root
        self.settings = _settings(root / "inc", expectations)
        self.day = DAY0
        self.n = 0

    def connect(self):
        return warehouse.connect(self.settings.warehouse_path)

    def run(
        self,
        expect_mode: str | None = "incremental",
        full_refresh: bool = False,
        full_every_days: int | None = None,
        **extra,
    ):
        """Validate source 'erp' tonight incrementally (as planned) and in full on a copy;
        assert both wrote the same; return (validation, plan). `extra`: fingerprint parts."""
        self.n += 1
        self.day += timedelta(days=1)
        run_id, at = f"run-{self.n}", datetime(2026, 11, 2, 3) + timedelta(days=self.n)
        copy_root = self.root / f"full-{self.n}"
        copy_root.mkdir()
        shutil.copy(self.settings.warehouse_path, copy_root / "warehouse.duckdb")
        full_settings = _settings(copy_root, self.settings.expectations_dir)
        with self.connect() as con:
            schedule = Schedule(
                full_every_days=full_every_days, full_refresh=full_refresh, business_date=self.day
            )
            plan = plan_source(con, self.settings, "erp", schedule, **extra)
            v = validate_source(
                con, self.settings, "erp", run_id, at, plan=plan, business_date=self.day
            )
            got = _outputs(con, run_id)
        if expect_mode is not None:
            assert v.mode == expect_mode, plan.reason
        with warehouse.connect(full_settings.warehouse_path) as con:
            full = validate_source(con, full_settings, "erp", run_id, at)
            want = _outputs(con, run_id)
        for name in want:
            pd.testing.assert_frame_equal(got[name], want[name], check_dtype=False, obj=name)
        assert _checks(v) == _checks(full)
        assert [(o.rule, o.success, o.evaluated, o.failed) for o in v.outcome.outcomes] == [
            (o.rule, o.success, o.evaluated, o.failed) for o in full.outcome.outcomes
        ]
        assert {o.rule: set(o.failed_ids) for o in v.outcome.outcomes} == {
            o.rule: set(o.failed_ids) for o in full.outcome.outcomes
        }
        return v, plan


def _stage(con, frame: pd.DataFrame) -> None:
    warehouse.append_rows(con, "staging.customers", frame)


@pytest.fixture
def night(tmp_path):
    """Night 1 (full, the first): 60 staged erp customers, three of them bad."""
    n = Night(tmp_path)
    frame = make_staged_frame(60)
    frame.loc[3, "country"] = "XX"  # quarantine: country_known
    frame.loc[5, "phone"] = "+1"  # warn: phone_valid_e164
    frame.loc[7, "name"] = None  # quarantine: name_required, counts for name_mostly_present
    with n.connect() as con:
        _stage(con, frame)
    v, plan = n.run(expect_mode="full")
    assert plan.reason == "no earlier state of this stage (its first run)"
    assert v.quarantined == 2
    return n


def test_a_night_without_change_runs_no_gx_and_carries_everything(night):
    v, plan = night.run()
    assert plan.incremental and v.changed == 0
    assert v.outcome.docs_index is None  # no GX run, no Data Docs page
    assert v.quarantined == 2


def test_inserts_updates_deletions_and_thresholds_equal_a_full_validation(night):
    with night.connect() as con:  # inserts: one clean, one with a formula payload
        new = make_staged_frame(64).iloc[60:].copy()
        new.loc[61, "street"] = "=HYPERLINK(1)"
        _stage(con, new)
    v, _ = night.run()
    assert v.changed == 4 and v.rows == 64

    with night.connect() as con:  # updates that start and stop failing rules
        con.execute(
            "UPDATE staging.customers SET country = 'DE' WHERE source_id = ?", [source_id(3)]
        )
        con.execute(
            "UPDATE staging.customers SET country = 'QQ' WHERE source_id = ?", [source_id(10)]
        )
        con.execute(
            "UPDATE staging.customers SET phone = '+4930123' WHERE source_id = ?", [source_id(5)]
        )
        con.execute(
            "UPDATE staging.customers SET segment = 'Z' WHERE source_id = ?", [source_id(11)]
        )
    v, _ = night.run()
    assert v.changed == 4
    held = {o.rule: set(o.failed_ids) for o in v.outcome.outcomes}
    assert held["country_known"] == {source_id(10)}
    assert held["segment_crosswalk_covered"] == {source_id(11)}

    with night.connect() as con:  # deletions: a failing row and a clean one
        con.execute(
            "DELETE FROM staging.customers WHERE source_id IN (?, ?)",
            [source_id(10), source_id(20)],
        )
    v, _ = night.run()
    assert v.changed == 0 and v.rows == 62
    assert "country_known" not in {o.rule for o in v.outcome.failures()}

    with night.connect() as con:  # names missing on > 10 %: a `mostly` block rule fails
        con.execute(
            "UPDATE staging.customers SET name = NULL WHERE source_id IN "
            "(SELECT source_id FROM staging.customers ORDER BY source_id LIMIT 7)"
        )
    v, _ = night.run()
    assert "name_mostly_present" in {o.rule for o in v.outcome.failures("block")}

    with night.connect() as con:  # and back under the threshold
        con.execute(
            "UPDATE staging.customers SET name = 'Firma X' WHERE name IS NULL AND source_id <> ?",
            [source_id(7)],
        )
    v, _ = night.run()
    assert v.outcome.outcome("name_mostly_present").success


def test_a_new_duplicate_id_fails_uniqueness_and_flags_the_unchanged_twin(night):
    with night.connect() as con:
        twin = make_staged_frame(61).iloc[[60]].copy()
        twin["source_id"] = " " + source_id(12)  # the same id but for a space
        exact = make_staged_frame(61).iloc[[13]].copy()  # the very same id as row 13
        exact["city"] = "Hamburg"
        _stage(con, pd.concat([twin, exact]))
        flag_duplicate_ids(con, "staging.customers", "erp")  # what staging does
    v, _ = night.run()
    unique = v.outcome.outcome("source_id_unique")
    assert not unique.success and set(unique.failed_ids) == {source_id(13)}
    assert unique.failed == 2
    with night.connect() as con:
        rules = set(
            con.execute(
                "SELECT rule FROM quality.quarantine WHERE run_id = 'run-2' AND source_id = ?",
                [source_id(13)],
            ).df()["rule"]
        )
    assert "mapping:duplicate_id:source_id" in rules

    with night.connect() as con:  # the duplicate is removed again
        con.execute("DELETE FROM staging.customers WHERE city = 'Hamburg'")
        flag_duplicate_ids(con, "staging.customers", "erp")
    v, _ = night.run()
    assert v.outcome.outcome("source_id_unique").success


def test_a_suite_change_forces_a_full_validation_that_names_it(tmp_path):
    suites = tmp_path / "expectations"
    shutil.copytree(EXPECTATIONS_DIR, suites)
    n = Night(tmp_path / "w", suites)
    (tmp_path / "w").mkdir()
    with n.connect() as con:
        _stage(con, make_staged_frame(30))
    n.run(expect_mode="full")
    path = suites / "staged_customers_erp.json"
    suite = json.loads(path.read_text(encoding="utf-8"))
    rule = next(e for e in suite["expectations"] if e["meta"]["rule"] == "company_tax_id_required")
    rule["meta"]["severity"] = "quarantine"
    path.write_text(json.dumps(suite, indent=2), encoding="utf-8")
    v, plan = n.run(expect_mode="full")
    assert plan.reason == "the meaning of past results changed: suite"
    assert not plan.compare
    v, plan = n.run()  # and incremental again on the new suite
    assert plan.incremental


def test_a_failed_night_leaves_the_last_good_state_and_the_next_one_loses_no_change(
    night, monkeypatch
):
    with night.connect() as con:
        con.execute(
            "UPDATE staging.customers SET country = 'ZZ' WHERE source_id = ?", [source_id(30)]
        )

    def boom(*args, **kwargs):
        raise RuntimeError("the night fails while writing")

    monkeypatch.setattr(validate_mod, "record_stage", boom)
    with night.connect() as con:
        plan = plan_source(con, night.settings, "erp", Schedule(business_date=DAY0))
        with pytest.raises(RuntimeError, match="fails while writing"):
            validate_source(con, night.settings, "erp", "failed", datetime(2026, 11, 3), plan=plan)
        assert con.execute(
            "SELECT count(*) FROM quality.validation_runs WHERE run_id = 'failed'"
        ).fetchone() == (0,)
        assert con.execute(
            "SELECT count(*) FROM quality.validated_rows WHERE run_id = 'failed'"
        ).fetchone() == (0,)
    monkeypatch.undo()
    v, _ = night.run()
    assert v.changed == 1
    assert source_id(30) in v.outcome.outcome("country_known").failed_ids


def test_a_full_refresh_compares_and_names_the_differences(night):
    v, plan = night.run(expect_mode="full", full_refresh=True)
    assert plan.compare and plan.reason == "full refresh requested"
    assert v.differences == {}
    with night.connect() as con:  # corrupt the carried state: one row's failures forgotten
        con.execute("UPDATE quality.validated_rows SET failed = 0 WHERE row_id = ?", [source_id(3)])
    v, _ = night.run(expect_mode="full", full_refresh=True)
    assert set(v.differences) == {
        "quality.validated_rows",
        "quality.quarantine",
        "quality.scorecard",
        "quality.validation_runs",
    }
    with night.connect() as con:
        recorded = con.execute(
            "SELECT differences FROM ops.stage_runs ORDER BY recorded_at DESC LIMIT 1"
        ).fetchone()[0]
    assert json.loads(recorded) == v.differences
    v, plan = night.run()  # the full run rebuilt the state: incremental and right again
    assert plan.incremental


def test_a_periodic_full_run_and_extra_fingerprint_parts(night):
    v, plan = night.run(expect_mode="full", full_every_days=1)
    assert plan.compare and plan.reason.startswith("periodic full consistency run")
    v, plan = night.run(expect_mode="full", mapping="v1")
    assert plan.reason == "the meaning of past results changed: mapping"


def test_a_suite_with_a_rule_that_needs_the_whole_table_is_validated_in_full(tmp_path):
    suite = {
        "name": "s",
        "expectations": [
            {
                "type": "expect_column_values_to_not_be_null",
                "kwargs": {"column": "name"},
                "meta": {"rule": "name_required"},
                "id": "1",
            },
            {
                "type": "expect_column_values_to_be_increasing",
                "kwargs": {"column": "name"},
                "meta": {"rule": "ordered"},
                "id": "2",
            },
        ],
    }
    assert inc.not_incremental(suite) == (
        "the suite has rules incremental validation cannot split into rows and SQL "
        "aggregates: ordered (expect_column_values_to_be_increasing)"
    )
    suite["expectations"].pop()
    assert inc.not_incremental(suite) is None


def _orders(n: int) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "source_system": ["erp", "sales"] * (n // 2),
            "source_id": [f"O{i // 2}" for i in range(n)],  # ids repeat across systems
            "order_number": [f"N{i}" for i in range(n)],
            "amount": [float(i) for i in range(n)],
            "status": ["open"] * n,
        }
    )


def test_orders_use_the_same_mechanism(tmp_path):
    root = tmp_path / "w"
    settings = _settings(root)
    frame = _orders(40)
    frame.loc[3, "amount"] = -5.0
    frame.loc[4, "order_number"] = None
    with warehouse.connect(settings.warehouse_path) as con:
        warehouse.append_rows(con, "staging.orders", frame)
        plan = plan_orders(con, settings, Schedule(business_date=DAY0))
        validate_orders(con, settings, "o1", datetime(2026, 11, 3), plan=plan)
        con.execute("UPDATE staging.orders SET amount = -1 WHERE order_number = 'N7'")
        con.execute("UPDATE staging.orders SET status = 'weird' WHERE order_number = 'N8'")
        con.execute("DELETE FROM staging.orders WHERE order_number = 'N3'")
    copy = tmp_path / "copy"
    copy.mkdir()
    shutil.copy(settings.warehouse_path, copy / "warehouse.duckdb")
    results = []
    for s, incremental_run in ((settings, True), (_settings(copy), False)):
        with warehouse.connect(s.warehouse_path) as con:
            plan = plan_orders(con, s, Schedule(business_date=DAY0 + timedelta(1)))
            assert plan.incremental
            outcome, rules, n = validate_orders(
                con, s, "o2", datetime(2026, 11, 4), plan=plan if incremental_run else None
            )
            results.append((outcome, rules.drop(columns="run_at"), n))
    (inc_outcome, inc_rules, inc_n), (full_outcome, full_rules, full_n) = results
    assert inc_n == full_n == 39
    pd.testing.assert_frame_equal(inc_rules, full_rules, check_dtype=False)
    assert {o.rule: set(o.failed_ids) for o in inc_outcome.outcomes} == {
        o.rule: set(o.failed_ids) for o in full_outcome.outcomes
    }
    assert set(inc_outcome.outcome("amount_non_negative").failed_ids) == {"sales:O3"}


def test_hash_sees_every_validated_column(empty_warehouse: duckdb.DuckDBPyConnection):
    target = inc.customers_target("erp")
    warehouse.append_rows(empty_warehouse, "staging.customers", make_staged_frame(3))
    cols = ["source_id", "name", "region"]
    inc.hash_rows(empty_warehouse, target, cols)
    before = empty_warehouse.execute("SELECT row_hash FROM _cv_current ORDER BY rid").df()
    empty_warehouse.execute(
        "UPDATE staging.customers SET region = 'x' WHERE source_id = ?", [source_id(1)]
    )
    empty_warehouse.execute("UPDATE staging.customers SET city = 'y'")  # not validated
    inc.hash_rows(empty_warehouse, target, cols)
    after = empty_warehouse.execute("SELECT row_hash FROM _cv_current ORDER BY rid").df()
    assert list(before["row_hash"] != after["row_hash"]) == [False, True, False]
