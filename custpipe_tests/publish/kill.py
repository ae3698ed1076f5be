"""Kill a publishing process inside its open transaction and check the target is unchanged."""

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import sqlalchemy as sa

SCRIPT = Path(__file__).with_name("killable_publish.py")
SIGNAL = "batch written in open transaction: "


class KillTooEarly(AssertionError):
    """The child never reported a batch written inside its open transaction."""


def count_rows(url: str, table: str) -> int:
    engine = sa.create_engine(url)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return 0
            return conn.execute(sa.text(f"SELECT count(*) FROM {table}")).scalar()
    finally:
        engine.dispose()


def wait_for_line(proc: subprocess.Popen, prefix: str, timeout: float) -> str:
    """The first line of `proc`'s stdout starting with `prefix`; KillTooEarly if none comes
    within `timeout` seconds (or the child ends first). Other lines are collected."""
    lines: queue.Queue = queue.Queue()

    def pump() -> None:
        for line in proc.stdout:
            lines.put(line.rstrip("\n"))
        lines.put(None)

    threading.Thread(target=pump, daemon=True).start()
    seen = []
    while True:
        try:
            line = lines.get(timeout=timeout)
        except queue.Empty:
            raise KillTooEarly(
                f"no '{prefix.strip()}' from the child within {timeout:g} s (saw {seen})"
            ) from None
        if line is None:
            raise KillTooEarly(f"the child ended (exit {proc.wait()}) before '{prefix.strip()}'")
        if line.startswith(prefix):
            return line
        seen.append(line)


def publish_and_kill(url: str, table: str, timeout: float = 60.0) -> int:
    """Start a publish of three one-row batches that pauses 60 s after each; SIGKILL it once it
    reports its first batch written inside the open transaction. Return how many rows the
    transaction saw then (the target's rows plus the uncommitted batch)."""
    before = count_rows(url, table)
    env = os.environ | {"CUSTPIPE_PUBLISH_BATCH_ROWS": "1", "CUSTPIPE_TEST_PUBLISH_PAUSE": "60"}
    proc = subprocess.Popen(
        [sys.executable, str(SCRIPT), url, table, "killed-run"],
        env=env,
        stdout=subprocess.PIPE,
        text=True,
        start_new_session=True,
    )
    try:
        line = wait_for_line(proc, SIGNAL, timeout)
        inside = int(line.removeprefix(SIGNAL))
        assert proc.poll() is None, "the publish finished before it could be killed"
        # the batch is there for the open transaction and for no one else: it is uncommitted
        assert inside == before + 1, (inside, before)
        assert count_rows(url, table) == before
    finally:
        if proc.poll() is None:  # (a child that failed on its own has nothing left to kill)
            os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(timeout=30)
    return inside
