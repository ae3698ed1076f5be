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
import pandas as pd
import sqlalchemy as sa

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


def erp_content(url: str, table: str) -> ContentHash:
    """The content hash of the active rows of the ERP table `table` at `url`, read back."""
    engine = _engine(url, table)
    try:
        with engine.connect() as conn:
            if not sa.inspect(conn).has_table(table):
                return frame_content_hash(pd.DataFrame())
            target = target_table(table, sa.MetaData())
            total = conn.execute(sa.select(sa.func.count()).select_from(target)).scalar_one()
            columns = [target.c.golden_id, *(target.c[c] for c in PUBLISHED_COLUMNS)]
            query = sa.select(*columns).where(
                sa.or_(target.c.status.is_(None), target.c.status != "retired")
            )
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
    found = frame_content_hash(frame)
    return ContentHash(found.digest, found.rows, int(total))
