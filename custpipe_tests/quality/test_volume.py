"""The volume check's baseline: an empty night never becomes the next night's baseline."""

from __future__ import annotations

from datetime import datetime, timedelta

import duckdb
import pandas as pd

from custpipe.quality.validate import validate_source
from custpipe.settings import DEFAULT_CONFIG_DIR, Settings
from custpipe.warehouse import DDL, append_rows
from custpipe_tests.quality.helpers import EXPECTATIONS_DIR, make_staged_frame

START = datetime(2026, 11, 28, 2, 0)


def _night(con, settings, staged: pd.DataFrame, n: int):
    con.execute("DELETE FROM staging.customers WHERE source_system = 'erp'")
    append_rows(con, "staging.customers", staged)
    return validate_source(con, settings, "erp", f"run{n}", START + timedelta(days=n))


def test_a_second_header_only_night_still_blocks(tmp_path):
    settings = Settings(
        config_dir=DEFAULT_CONFIG_DIR, data_dir=tmp_path / "data", expectations_dir=EXPECTATIONS_DIR
    )
    con = duckdb.connect()
    con.execute(DDL)
    full, empty = make_staged_frame(20), make_staged_frame(20).iloc[0:0]
    first = _night(con, settings, full, 1)
    assert (first.rows, first.baseline_rows, first.volume_drop) == (20, None, 0.0)
    second = _night(con, settings, empty, 2)
    assert (second.rows, second.baseline_rows, second.volume_drop) == (0, 20, 1.0)
    third = _night(con, settings, empty, 3)  # the empty night is no baseline
    assert (third.rows, third.baseline_rows, third.volume_drop) == (0, 20, 1.0)
    back = _night(con, settings, full.iloc[:18], 4)  # 10 % fewer than the last good night
    assert (back.baseline_rows, round(back.volume_drop, 2)) == (20, 0.1)
    con.close()


def test_a_truncated_night_whose_volume_check_failed_is_no_baseline(tmp_path):
    settings = Settings(
        config_dir=DEFAULT_CONFIG_DIR, data_dir=tmp_path / "data", expectations_dir=EXPECTATIONS_DIR
    )
    con = duckdb.connect()
    con.execute(DDL)
    full = make_staged_frame(20)
    first = _night(con, settings, full, 1)
    assert first.volume_ok and first.baseline_rows is None
    truncated = _night(con, settings, full.iloc[:10], 2)  # half lost: the volume check blocks
    assert (truncated.baseline_rows, truncated.volume_drop, truncated.volume_ok) == (20, 0.5, False)
    again = _night(con, settings, full.iloc[:10], 3)  # still half of the last good night
    assert (again.baseline_rows, again.volume_drop, again.volume_ok) == (20, 0.5, False)
    back = _night(con, settings, full, 4)
    assert (back.baseline_rows, back.volume_drop, back.volume_ok) == (20, 0.0, True)
    stored = con.execute(
        "SELECT run_id, volume_ok FROM quality.validation_runs ORDER BY validated_at"
    ).fetchall()
    assert stored == [("run1", True), ("run2", False), ("run3", False), ("run4", True)]
    con.close()


def test_migrate_adds_the_volume_outcome_to_an_older_warehouse():
    from custpipe.warehouse import migrate

    con = duckdb.connect()
    con.execute(DDL)
    con.execute("ALTER TABLE quality.validation_runs DROP COLUMN volume_ok")
    con.execute("INSERT INTO quality.validation_runs (source_system, rows) VALUES ('erp', 20)")
    assert "quality.validation_runs.volume_ok" in migrate(con)
    from custpipe.quality.validate import volume_baseline

    assert volume_baseline(con, "erp") == 20  # a night before the column stays a baseline
    con.close()


def test_a_genuine_drop_accepted_by_a_person_becomes_the_baseline(tmp_path, monkeypatch, capsys):
    from custpipe import warehouse
    from custpipe.cli import main

    settings = Settings(
        config_dir=DEFAULT_CONFIG_DIR, data_dir=tmp_path / "data", expectations_dir=EXPECTATIONS_DIR
    )
    monkeypatch.setenv("CUSTPIPE_DATA", str(settings.data_dir))
    full = make_staged_frame(20)
    with warehouse.connect(settings.warehouse_path) as con:
        assert _night(con, settings, full, 1).volume_ok
    assert main(["accept-volume", "erp", "--by", "ann", "--why", "x"]) == 2  # nothing to accept
    assert "did not fail the volume check" in capsys.readouterr().err
    with warehouse.connect(settings.warehouse_path) as con:
        assert not _night(con, settings, full.iloc[:10], 2).volume_ok  # a clean-up at the source
    assert main(["accept-volume", "erp", "--by", "ann"]) == 2  # why is required
    assert main(["accept-volume", "erp", "--by", "ann", "--why", "archived 10 dormant"]) == 0
    assert "10 rows of run run2 accepted" in capsys.readouterr().out
    with warehouse.connect(settings.warehouse_path) as con:
        again = _night(con, settings, full.iloc[:10], 3)
        assert (again.baseline_rows, again.volume_ok) == (10, True)
        audit = con.execute(
            "SELECT source_system, run_id, rows, accepted_by, reason "
            "FROM quality.volume_acceptances"
        ).fetchall()
    assert audit == [("erp", "run2", 10, "ann", "archived 10 dormant")]
