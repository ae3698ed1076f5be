"""After a publish: does the ERP table hold what the golden records say it should?

Both sides are hashed the same way (custpipe.publish.erp.row_hashes over the published
columns, then one order-independent content hash over `golden_id:row_hash`): the golden
records from the warehouse, and the ERP table's active rows (status other than 'retired')
read back from the target and hashed from their values, not from the `row_hash` column the
publish stored. Only hashes and counts leave this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import duckdb
import numpy as np
import pandas as pd
import sqlalchemy as sa

from custpipe import warehouse
from custpipe.publish.erp import (
    PUBLISHED_COLUMNS,
    PublishTargetError,
    _engine,
    content_hash,
    row_hashes,
    target_table,
)
from custpipe.publish.inputs import golden_for_publish
from custpipe.secrets import mask_url

BATCH = 50_000


@dataclass(frozen=True)
class ContentHash:
    """The content hash of a table state and the rows it covers."""

    digest: str
    rows: int  # the rows hashed (for the ERP table: its active rows)
    table_rows: int | None = None  # for the ERP table: every row, retired ones too


def frame_content_hash(frame: pd.DataFrame) -> ContentHash:
    """The content hash of `frame` (golden_id + the published columns)."""
    if frame.empty:
        return ContentHash(
            content_hash(pd.Series([], dtype=object), pd.Series([], dtype=object)), 0
        )
    return ContentHash(content_hash(frame["golden_id"], row_hashes(frame)), len(frame))


def golden_content(con: duckdb.DuckDBPyConnection) -> ContentHash:
    """The content hash of the warehouse's golden records, as the publish sends them."""
    return frame_content_hash(golden_for_publish(con))


def _read_back(
    url: str, table: str, where, count: bool = True
) -> tuple[pd.DataFrame, int | None] | None:
    """golden_id and the published columns of the rows of `table` that `where(target)`
    selects, and (with `count`) the table's row count; None when the table does not exist."""
    engine = _engine(url, table)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return None
            target = target_table(table, sa.MetaData())
            total = None
            if count:
                total = conn.execute(sa.select(sa.func.count()).select_from(target)).scalar_one()
            columns = [target.c.golden_id, *(target.c[c] for c in PUBLISHED_COLUMNS)]
            query = sa.select(*columns).where(where(target))
            names = [c.name for c in columns]
            result = conn.execution_options(stream_results=True).execute(query)
            parts = [pd.DataFrame(rows, columns=names) for rows in result.partitions(BATCH)]
    except sa.exc.DBAPIError as exc:
        raise PublishTargetError(
            f"reading {table} back at {mask_url(url)} failed: {type(exc).__name__}. The "
            "publish itself is done; check that the database is reachable, then rerun."
        ) from None
    finally:
        engine.dispose()
    frame = pd.concat(parts, ignore_index=True) if parts else pd.DataFrame(columns=names)
    return frame, None if total is None else int(total)


def erp_content(url: str, table: str) -> ContentHash:
    """The content hash of the active rows of the ERP table `table` at `url`, read back."""
    found = _read_back(
        url, table, lambda t: sa.or_(t.c.status.is_(None), t.c.status != "retired")
    )
    if found is None:
        return frame_content_hash(pd.DataFrame())
    frame, total = found
    hashed = frame_content_hash(frame)
    return ContentHash(hashed.digest, hashed.rows, total)


@dataclass(frozen=True)
class NightVerified:
    """An incremental night's read-back: the rows it wrote, checked value by value against
    what custpipe meant to write, and the whole table's mark against the one remembered."""

    written: int  # rows of the ERP table stamped with tonight's run
    expected: int  # rows tonight's publish wrote
    mismatched: int  # written rows whose values or status differ from what was meant
    mark_differences: tuple[str, ...]  # fields of the table's mark that differ (names only)
    table_rows: int = 0  # every row of the table, by its mark read after the write
    retired_rows: int = 0

    @property
    def ok(self) -> bool:
        """True when every written row is as meant and the table's mark is the remembered."""
        return not self.mismatched and not self.mark_differences and self.written == self.expected


def verify_night(
    con: duckdb.DuckDBPyConnection, url: str, table: str, run_id: str, expected: int
) -> NightVerified:
    """Read back the rows run `run_id` wrote to `table` (its stamp) and check them against
    mdm.published_rows (the golden records' hashes the publish remembered): an active row's
    values must hash to the remembered row hash, a retired row must be remembered retired.
    The rest of the table is checked by its mark (count, retired rows, checksum of the row
    hashes, newest stamp and log row: one aggregate query), equal to the remembered mark.
    Costs what the night changed, not the size of the table. A night that wrote no row reads
    nothing back: the publish compared the table's mark with the remembered one inside its
    own transaction, and nothing changed the rows since."""
    from custpipe.publish.erp import read_target_mark
    from custpipe.publish.state import remembered_mark

    if expected == 0:
        mark = remembered_mark(con, table)
        rows, retired = (mark.rows, mark.retired) if mark is not None else (0, 0)
        missing = () if mark is not None else ("the table's record is missing",)
        return NightVerified(0, 0, 0, missing, rows, retired)
    found = _read_back(url, table, lambda t: t.c.run_id == run_id, count=False)
    written = found[0] if found is not None else pd.DataFrame(columns=["golden_id", "status"])
    written = written.astype({"golden_id": object, "status": object})
    retired = written["status"].eq("retired").to_numpy(dtype=bool)
    hashes = row_hashes(written).to_numpy(dtype=object) if len(written) else np.array([], object)
    found = pd.DataFrame(
        {
            "golden_id": written["golden_id"].to_numpy(dtype=object),
            "found": np.where(retired, "retired", hashes).astype(object),
        }
    )
    with warehouse.registered(con, "_verify_found", found):
        (mismatched,) = con.execute(
            """
            SELECT count(*) FROM _verify_found f
            LEFT JOIN (SELECT golden_id, row_hash FROM mdm.published_rows WHERE target = ?) m
              USING (golden_id)
            WHERE m.row_hash IS DISTINCT FROM f.found
            """,
            [table],
        ).fetchone()
    remembered, now = remembered_mark(con, table), read_target_mark(url, table)
    if remembered is None or now is None:
        differences = ("the table or its record is missing",)
    else:
        differences = tuple(remembered.differences(now))
    rows, retired = (now.rows, now.retired) if now is not None else (0, 0)
    return NightVerified(len(written), expected, int(mismatched), differences, rows, retired)
