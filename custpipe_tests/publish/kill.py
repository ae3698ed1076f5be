"""Kill a publishing process mid-transaction and check the target is unchanged."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import sqlalchemy as sa

SCRIPT = Path(__file__).with_name("killable_publish.py")


def count_rows(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return 0
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    finally:
        engine.dispose()


def publish_and_kill(url: str, table: str, after_seconds: float = 4.0) -> None:
    """Start a publish that pauses 60 s after each one-row batch, and SIGKILL it."""
    env = os.environ | {"CUSTPIPE_PUBLISH_BATCH_ROWS": "1", "CUSTPIPE_TEST_PUBLISH_PAUSE": "60"}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), url, table, "killed-run"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        assert proc.stdout.readline().strip() == "publishing"
        time.sleep(after_seconds)  # the first batch is written by now, the transaction is open
        assert proc.poll() is None, "the publish finished before it could be killed"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
