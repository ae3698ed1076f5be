"""The kill helper itself: it kills only once a batch is written inside the open transaction."""

import sqlite3

import pandas as pd
import pytest

from custpipe.publish.erp import PUBLISHED_COLUMNS, publish
from custpipe_tests.publish.kill import KillTooEarly, count_rows, publish_and_kill


def golden(ids: list[str]) -> pd.DataFrame:
    return pd.DataFrame(
        [dict.fromkeys(PUBLISHED_COLUMNS) | {"golden_id": i, "status": "active"} for i in ids]
    )


def test_a_kill_lands_after_the_first_batch_inside_the_open_transaction(tmp_path):
    url = f"sqlite:///{tmp_path / 'erp.sqlite'}"
    publish(golden(["G1", "G2"]), url, "ZCUST_INBOUND", "run1")
    assert publish_and_kill(url, "ZCUST_INBOUND") == 3  # 2 committed + 1 uncommitted row
    assert count_rows(url, "ZCUST_INBOUND") == 2


def test_the_kill_helper_refuses_a_kill_before_the_transaction_wrote_anything(tmp_path):
    path = tmp_path / "erp.sqlite"
    url = f"sqlite:///{path}"
    publish(golden(["G1"]), url, "ZCUST_INBOUND", "run1")
    blocker = sqlite3.connect(path, isolation_level=None)
    blocker.execute("BEGIN IMMEDIATE")  # readers may read, the child cannot write its batch
    try:
        with pytest.raises(KillTooEarly):
            publish_and_kill(url, "ZCUST_INBOUND")
    finally:
        blocker.execute("ROLLBACK")
        blocker.close()
    assert count_rows(url, "ZCUST_INBOUND") == 1
