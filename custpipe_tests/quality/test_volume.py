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
    assert (first.rows, first.previous_rows, first.volume_drop) == (20, None, 0.0)
    second = _night(con, settings, empty, 2)
    assert (second.rows, second.previous_rows, second.volume_drop) == (0, 20, 1.0)
    third = _night(con, settings, empty, 3)  # the empty night is no baseline
    assert (third.rows, third.previous_rows, third.volume_drop) == (0, 20, 1.0)
    back = _night(con, settings, full.iloc[:18], 4)  # 10 % fewer than the last good night
    assert (back.previous_rows, round(back.volume_drop, 2)) == (20, 0.1)
    con.close()
