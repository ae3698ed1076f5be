"""The scorecard trend: business-date columns, blocked nights marked, each problem once."""

from __future__ import annotations

import re
from datetime import date, datetime, timedelta

import duckdb
import pytest

from custpipe import warehouse
from custpipe.quality import scorecard
from custpipe_tests.steward.test_rules import local_only

D1, D2, D3 = date(2026, 11, 25), date(2026, 11, 26), date(2026, 11, 27)


def tiny_warehouse() -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    con.execute(warehouse.DDL)
    return con


def night(con, source, run_id, day, *, failed, success=True, volume_ok=True, rows=100, at=None):
    """One run of one source: its validation run, scorecard rows and business date."""
    at = at or datetime.combine(day + timedelta(days=1), datetime.min.time()) + timedelta(hours=2)
    quarantined = failed.get("segment_crosswalk_covered", 0)
    con.execute(
        "INSERT INTO quality.validation_runs VALUES (?, ?, 's', ?, ?, ?, ?, ?)",
        [run_id, source, rows, quarantined, success, at, volume_ok],
    )
    for rule, n in failed.items():
        severity = "block" if rule.endswith("_present") else "quarantine"
        con.execute(
            "INSERT INTO quality.scorecard VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            [run_id, at, source, rule, severity, rows, n, 1 - n / rows],
        )
    con.execute(
        "INSERT INTO ops.stage_runs (stage, scope, run_id, business_date, recorded_at) "
        "VALUES ('validate', ?, ?, ?, ?)",
        [source, run_id, day, at],
    )


def test_columns_are_business_dates_and_a_rerun_shows_its_last_run():
    con = tiny_warehouse()
    night(con, "crm", "a", D1, failed={"segment_crosswalk_covered": 2})
    # D2 was blocked (names lost by a mapping), then fixed and run again the same day
    night(con, "crm", "b1", D2, failed={"name_mostly_present": 60}, success=False)
    night(con, "crm", "b2", D2, failed={"segment_crosswalk_covered": 3},
          at=datetime(2026, 11, 27, 9, 0))  # fmt: skip
    night(con, "crm", "c", D3, failed={"name_mostly_present": 50}, success=False)
    trend = scorecard.business_trend(con)
    assert trend.dates == (D1, D2, D3)
    assert [trend.night("crm", d).state for d in trend.dates] == ["ok", "rerun", "blocked"]
    assert trend.night("crm", D2).runs == 2
    assert trend.night("crm", D3).blocked_by == ("block rule failed",)
    assert trend.blocked_nights() == [("crm", D3)]
    problems = {p.rule: p.failed for p in trend.problems}
    assert problems["segment_crosswalk_covered"] == (2, 3, None)  # the rerun's count on D2
    assert problems["name_mostly_present"] == (None, None, 50)


def test_the_volume_check_and_the_quarantine_limit_block_a_night_too():
    con = tiny_warehouse()
    night(con, "erp", "a", D1, failed={}, volume_ok=False)
    night(con, "sales", "a", D1, failed={"segment_crosswalk_covered": 30})
    trend = scorecard.business_trend(con, max_quarantine_rate=0.2)
    assert trend.night("erp", D1).blocked_by == ("volume drop",)
    assert trend.night("sales", D1).blocked_by == ("quarantine rate above 20%",)


def test_only_the_last_dates_are_shown():
    con = tiny_warehouse()
    for i in range(12):
        night(con, "crm", f"r{i}", D1 + timedelta(days=i), failed={"segment_crosswalk_covered": i})
    trend = scorecard.business_trend(con, last_dates=10)
    assert trend.dates[0] == D1 + timedelta(days=2) and len(trend.dates) == 10
    (problem,) = trend.problems
    assert problem.failed == tuple(range(2, 12)) and problem.latest == 11


def test_the_page_marks_blocked_nights_and_loads_nothing_from_elsewhere(tmp_path):
    con = tiny_warehouse()
    night(con, "crm", "a", D1, failed={"segment_crosswalk_covered": 2})
    night(con, "crm", "b", D2, failed={"name_mostly_present": 60}, success=False)
    page = scorecard.write_trend_page(scorecard.business_trend(con), tmp_path / "s.html")
    text = page.read_text()
    assert re.findall(r"<th>(\d{4}-\d\d-\d\d)</th>", text)[:2] == [D1.isoformat(), D2.isoformat()]
    assert text.count("<td class='blocked'>") == 1 and "block rule failed" in text
    assert not re.findall(r"(?:src|href)\s*=", text)  # self-contained: works offline
    assert "<svg" in text and "<polyline" in text
    md = scorecard.trend_markdown(scorecard.business_trend(con))
    assert "| crm | 2 quarantined | **BLOCKED** (block rule failed) |" in md


def test_no_runs_yet():
    trend = scorecard.business_trend(tiny_warehouse())
    assert trend.dates == () and "No runs yet" in scorecard.trend_html(trend)


def test_sparkline_points_scale_to_the_box():
    assert (
        scorecard.sparkline_points((0, 5, 10), width=100, height=24)
        == "0.0,22.0 50.0,12.0 100.0,2.0"
    )
    assert scorecard.sparkline_points((None, 0), width=10, height=10) == "0.0,8.0 10.0,8.0"
    assert scorecard.sparkline_points((3,), width=10, height=10) == "0.0,2.0 10.0,2.0"


# --- over a real nightly run -------------------------------------------------------------------


def test_the_demo_nights_segment_problem_is_counted_once(demo_run):
    """The records whose segment code has no crosswalk entry are held once each, and the
    scorecard's counts of the segment problem add up to those records."""
    deployment, _, first = demo_run
    with warehouse.connect(deployment.settings.warehouse_path, read_only=True) as con:
        held = con.execute(
            "SELECT source_system, source_id, count(*) FROM quality.quarantine WHERE run_id = ? "
            "AND rule IN ('segment_crosswalk_covered', 'mapping:crosswalk_covered:segment') "
            "GROUP BY ALL",
            [first.run_id],
        ).fetchall()
        scored = dict(
            con.execute(
                "SELECT source_system, sum(failed) FROM quality.scorecard WHERE run_id = ? "
                "AND rule IN ('segment_crosswalk_covered', 'mapping:crosswalk_covered:segment') "
                "GROUP BY ALL",
                [first.run_id],
            ).fetchall()
        )
        trend = scorecard.business_trend(con)
    assert held and all(n == 1 for _, _, n in held)
    for source in scored:
        assert scored[source] == sum(1 for s, _, _ in held if s == source)
    assert trend.dates == (date(2026, 11, 27),)
    page = (deployment.settings.reports_dir / "scorecard.html").read_text()
    assert "<th>2026-11-27</th>" in page and "BLOCKED" not in page.split("<h2>")[1]


@pytest.fixture
def viewer(demo_run):
    pytest.importorskip("custpipe.steward.store", reason="sign-in lands with the store")
    from custpipe_tests.steward.conftest import client

    deployment, _, _ = demo_run
    return client(deployment.settings, "viewer")


def test_the_scorecard_page_shows_business_dates_and_sparklines(viewer):
    page = viewer.get("/scorecard")
    assert page.status_code == 200, page.text
    assert "2026-11-27" in page.text and "<polyline" in page.text
    assert "segment_crosswalk_covered" in page.text
    local_only(page.text)


def test_the_scorecard_page_marks_a_blocked_night(steward_settings):
    pytest.importorskip("custpipe.steward.store", reason="sign-in lands with the store")
    from custpipe_tests.steward.conftest import client

    steward_settings.data_dir.mkdir(parents=True)
    with warehouse.connect(steward_settings.warehouse_path) as con:
        night(con, "crm", "a", D1, failed={"segment_crosswalk_covered": 2})
        night(con, "crm", "b", D2, failed={"name_mostly_present": 60}, success=False)
    page = client(steward_settings, "viewer").get("/scorecard").text
    assert page.count("state-blocked") == 1 and "block rule failed" in page
