"""Holding a source back: one source's failed new data does not stop everyone's night.

A source's `on_failure` (config/sources/<name>.yaml) says what a failure of its *new data*
does to the night:

- ``hold`` (the default): the source's new landing is held back — nothing of it is staged —
  and the night consolidates with the source's last good staged state and publishes for
  everyone. The hold is loud: an error in the log, a failing WARN check `source_held` on
  `staging/<source>`, `held: true` with the reason in the materialisation metadata, a row of
  ops.held_sources, the run tag ``custpipe/held_sources`` and a line in `custpipe run`'s
  output and summary. The next night lands and stages the source's data again: a held night
  loses no change (a held extraction is marked rejected, so the next extraction reads it
  again from the watermark before it; a landing whose staging failed stays pending).
- ``block``: the failure fails the night as before (consolidation and publish skip).

What is *the source's new data failing* (held): an export missing or unreadable, a database
that rejects the statement or the credentials, one that still does not answer after the
extract's retries (SourceReadError), a renamed, missing or retyped column (SchemaDriftError),
a mapping that cannot be applied to the data (MappingError: strict crosswalks, expressions),
and a raw suite (expectations/raw_<source>.json) that rejects the extract.

What is *systemic* and keeps blocking whatever `on_failure` says: any other error (the
warehouse unavailable or locked, memory, a defect of custpipe), an invalid configuration,
the match model missing, a source that has no good state to fall back on (its first night),
every source held in the same night (a shared cause: the export share, the network), and a
failure of the staged-data suite (`suite_passes`, `volume_stable` on `quality/<source>`):
staging replaces a source's rows in place, so once its suite runs there is no earlier state
left to consolidate with (see README, "When one source fails").

No Dagster import here.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import date, datetime

import duckdb
import pandas as pd

from custpipe import warehouse
from custpipe.mapping.issues import MappingError
from custpipe.secrets import redact
from custpipe.sources.extract import SchemaDriftError
from custpipe.sources.readers import SourceReadError

HOLD, BLOCK = "hold", "block"
EXTRACT, STAGING = "extract", "staging"

#: The run tag that lists the sources held back in a run (comma-separated, sorted).
HELD_TAG = "custpipe/held_sources"

#: Failures of one source's new data: a source with `on_failure: hold` is held back for them.
HOLDABLE: tuple[type[Exception], ...] = (SourceReadError, SchemaDriftError, MappingError)


@dataclass(frozen=True)
class Hold:
    """A source held back tonight: at which step and why (no customer values)."""

    source: str
    step: str  # EXTRACT or STAGING
    reason: str

    def message(self) -> str:
        """The log line of the hold, with what it means and what to do."""
        return (
            f"source '{self.source}' HELD BACK at {self.step} (on_failure: hold): {self.reason} "
            f"— tonight consolidates and publishes with '{self.source}''s last good staged "
            "state; the other sources are published. Fix the export or the mapping: the next "
            "night lands and stages the held data."
        )


def may_hold(on_failure: str, has_good_state: bool) -> bool:
    """True when a failure of a source's new data holds it back rather than blocking:
    `on_failure: hold` and a last good state to consolidate with."""
    return on_failure == HOLD and has_good_state


def hold_reason(
    exc: BaseException, on_failure: str, *, has_good_state: bool, final_attempt: bool = True
) -> str | None:
    """Why the source is held back for the failure `exc`, or None when it must block: not a
    failure of the source's new data (HOLDABLE), `on_failure: block`, no good state to fall
    back on, or a retryable failure that still has retries left (`final_attempt` False)."""
    if not isinstance(exc, HOLDABLE) or not may_hold(on_failure, has_good_state):
        return None
    if getattr(exc, "retryable", False) and not final_attempt:
        return None
    return redact(" ".join(str(exc).split()))


def staged_before(con: duckdb.DuckDBPyConnection, source: str) -> bool:
    """True when the source's customers were staged by an earlier run (a state to keep)."""
    row = con.execute(
        "SELECT count(*) FROM staging.landing_log WHERE source_system = ? AND dataset = ?",
        [source, "customers"],
    ).fetchone()
    return bool(row[0])


def record_hold(
    con: duckdb.DuckDBPyConnection,
    hold: Hold,
    run_id: str,
    business_date: date | None,
    at: datetime,
) -> None:
    """Append the hold to ops.held_sources (what the summary and alerts read)."""
    row = {
        "run_id": run_id,
        "source_system": hold.source,
        "business_date": business_date,
        "step": hold.step,
        "reason": hold.reason,
        "held_at": at,
    }
    warehouse.append_rows(con, "ops.held_sources", pd.DataFrame([row]))


def held_in_run(con: duckdb.DuckDBPyConnection, run_id: str) -> dict[str, Hold]:
    """The sources a run held back, by name (the first hold recorded for each)."""
    rows = con.execute(
        "SELECT source_system, step, reason FROM ops.held_sources WHERE run_id = ? "
        "ORDER BY held_at, source_system",
        [run_id],
    ).fetchall()
    out: dict[str, Hold] = {}
    for source, step, reason in rows:
        out.setdefault(source, Hold(source, step, reason))
    return out


def every_source_held(held: Iterable[str], sources: Iterable[str]) -> bool:
    """True when every configured source was held back: a systemic failure, which blocks."""
    names = set(sources)
    return bool(names) and names <= set(held)


def tag_value(held: Iterable[str]) -> str:
    """The value of the run tag HELD_TAG: the held sources, sorted, comma-separated."""
    return ",".join(sorted(set(held)))


def parse_tag(value: str | None) -> list[str]:
    """The sources named by a HELD_TAG value."""
    return [s for s in (value or "").split(",") if s]
