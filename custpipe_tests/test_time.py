"""Time: UTC inside, the configured timezone for the business date (fixed clocks, no patching)."""

from __future__ import annotations

import shutil
from datetime import UTC, date, datetime, timedelta

import duckdb
import pytest

from custpipe import warehouse
from custpipe.settings import DEFAULT_CONFIG_DIR, DEFAULT_EXPECTATIONS_DIR, Settings


@pytest.mark.parametrize(
    ("zone", "now", "expected"),
    [
        # 17:30 UTC on the 27th is already 01:30 on the 28th in Shanghai: yesterday is the 27th
        ("Asia/Shanghai", datetime(2026, 11, 27, 17, 30, tzinfo=UTC), date(2026, 11, 27)),
        ("UTC", datetime(2026, 11, 27, 17, 30, tzinfo=UTC), date(2026, 11, 26)),
        # 05:00 UTC on the 28th is still 21:00 on the 27th in Los Angeles
        ("America/Los_Angeles", datetime(2026, 11, 28, 5, 0, tzinfo=UTC), date(2026, 11, 26)),
    ],
)
def test_yesterday_is_taken_in_the_configured_timezone(zone, now, expected):
    from custpipe.cli import business_yesterday

    assert business_yesterday(zone, now) == expected


def test_a_naive_clock_is_refused():
    from custpipe.cli import business_yesterday

    with pytest.raises(ValueError, match="time zone"):
        business_yesterday("UTC", datetime(2026, 11, 27, 12, 0))


def test_run_without_date_uses_the_pipeline_timezone(tmp_path):
    from custpipe.cli import build_parser, resolve_business_date

    config = tmp_path / "config"
    shutil.copytree(DEFAULT_CONFIG_DIR, config)
    pipeline = config / "pipeline.yaml"
    text = pipeline.read_text(encoding="utf-8")
    assert "timezone: UTC" in text
    pipeline.write_text(text.replace("timezone: UTC", "timezone: Asia/Shanghai"), "utf-8")
    settings = Settings(config, tmp_path / "data", DEFAULT_EXPECTATIONS_DIR)
    now = datetime(2026, 11, 27, 17, 30, tzinfo=UTC)
    for argv in (["run"], ["demo-data"], ["preview", "erp"]):
        args = build_parser().parse_args(argv)
        assert resolve_business_date(args, settings, now) == date(2026, 11, 27), argv
    given = build_parser().parse_args(["run", "--date", "2026-01-05"])
    assert resolve_business_date(given, settings, now) == date(2026, 1, 5)


def test_the_scorecard_stamps_runs_in_utc_whatever_the_hosts_zone():
    from custpipe.quality.scorecard import add_reconciliation_rows

    con = duckdb.connect()
    con.execute(warehouse.DDL)
    con.execute("SET TimeZone = 'Asia/Shanghai'")  # a host eight hours ahead of UTC
    con.execute(
        "INSERT INTO recon.order_discrepancies (order_id, kind) VALUES ('o1', 'status_mismatch')"
    )
    before = datetime.now(UTC).replace(tzinfo=None)
    assert add_reconciliation_rows(con, "run-1") == 1
    (stamp,) = con.execute("SELECT run_at FROM quality.scorecard").fetchone()
    assert abs(stamp - before) < timedelta(minutes=5), (stamp, before)
