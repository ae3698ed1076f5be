"""One run at a time per deployment: a run holds `<data>/run.lock` from its start to its end.

Two nightly runs of one data folder must not interleave: the second run's staging would read
the first's landing folder while it is still being written or before its raw check ran, and
their warehouse steps would alternate. Dagster's pool serialises the warehouse steps only
within one instance and, on SQLite storage, not strictly across processes (two processes can
claim the same free slot); a run outside an instance has no pool. So every run of the
Dagster shell (the schedule's, the UI's, `custpipe run`'s) takes this file lock first; the
second waits for the first to end (up to CUSTPIPE_RUN_LOCK_TIMEOUT seconds), then starts.
The operating system releases the lock of a process that dies.
"""

from __future__ import annotations

import fcntl
import json
import os
import time
from collections.abc import Callable
from pathlib import Path

DEFAULT_RUN_LOCK_TIMEOUT = 6 * 3600.0  # a night's run at most; then the second run fails
LOCK_FILE = "run.lock"


class RunLockTimeout(Exception):
    """Another run of the deployment held its lock for longer than the timeout."""


def run_lock_timeout() -> float:
    """Seconds a run waits for another run of the deployment (CUSTPIPE_RUN_LOCK_TIMEOUT)."""
    from custpipe.warehouse import seconds_setting

    return seconds_setting("CUSTPIPE_RUN_LOCK_TIMEOUT", DEFAULT_RUN_LOCK_TIMEOUT)


def _holder(handle) -> str:
    handle.seek(0)
    try:
        info = json.loads(handle.read() or "{}")
    except ValueError:
        return "unknown"
    return f"run {info.get('run_id', '?')}, PID {info.get('pid', '?')}"


class RunLock:
    """The deployment's run lock, held by this process from `acquire` to `release`."""

    def __init__(self, data_dir: Path, run_id: str) -> None:
        self.path = Path(data_dir) / LOCK_FILE
        self.run_id = run_id
        self._handle = None

    def acquire(
        self, timeout: float | None = None, on_wait: Callable[[str], None] | None = None
    ) -> None:
        """Take the lock, waiting for another run (`on_wait` is told once whom it waits for)."""
        timeout = run_lock_timeout() if timeout is None else timeout
        self.path.parent.mkdir(parents=True, exist_ok=True)
        handle = open(self.path, "a+", encoding="utf-8")  # noqa: SIM115 (held until release)
        deadline, told = time.monotonic() + timeout, False
        while True:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                holder = _holder(handle)
                if time.monotonic() >= deadline:
                    handle.close()
                    raise RunLockTimeout(
                        f"another run of this deployment ({holder}) has held {self.path} for "
                        f"more than {timeout:g} s: let it finish, or end it, then run again "
                        "(CUSTPIPE_RUN_LOCK_TIMEOUT sets the wait)"
                    ) from None
                if on_wait is not None and not told:
                    on_wait(
                        f"another run of this deployment ({holder}) is in progress: this "
                        f"run waits for it to end (up to {timeout:g} s)"
                    )
                    told = True
                time.sleep(0.5)
        handle.seek(0)
        handle.truncate()
        handle.write(json.dumps({"run_id": self.run_id, "pid": os.getpid()}))
        handle.flush()
        self._handle = handle

    def release(self) -> None:
        """Give the lock back (closing the file releases it)."""
        if self._handle is not None:
            self._handle.truncate(0)
            self._handle.close()
            self._handle = None
