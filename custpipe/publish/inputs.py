"""What the publish reads from the warehouse: the published columns and the merge successors.

Only `golden_id` and the published columns of the golden records leave DuckDB, as one Arrow
table turned into a frame: what saves memory is the columns left unread, not batching (the
frame holds every row); the successors of merged-away golden IDs are computed in SQL over
`mdm.golden_id_history`, so the append-only history never leaves the database.
"""

from __future__ import annotations

import duckdb
import pandas as pd

from custpipe.publish.erp import PUBLISHED_COLUMNS

# The last merge of each golden ID is its step (a later merge overrides an earlier one), and
# a chain of steps is followed to its end, stopping before a golden ID already on the path,
# the same answer as custpipe.matching.golden_ids.successors.
SUCCESSORS_SQL = """
WITH RECURSIVE
step AS (
    SELECT golden_id, arg_max(related_golden_id, recorded_at) AS next_id
    FROM mdm.golden_id_history WHERE event = 'merged' GROUP BY golden_id
),
walk(golden_id, current_id, path) AS (
    SELECT golden_id, next_id, [golden_id] FROM step
    UNION ALL
    SELECT w.golden_id, s.next_id, list_append(w.path, w.current_id)
    FROM walk w JOIN step s ON s.golden_id = w.current_id
    WHERE NOT list_contains(w.path, w.current_id)
)
SELECT golden_id, arg_max(current_id, len(path)) AS successor FROM walk GROUP BY golden_id
"""


def golden_for_publish(con: duckdb.DuckDBPyConnection) -> pd.DataFrame:
    """The golden records with only `golden_id` and the published columns, by golden_id."""
    listed = ", ".join(f'"{c}"' for c in ("golden_id", *PUBLISHED_COLUMNS))
    query = f"SELECT {listed} FROM mdm.golden_customers ORDER BY golden_id"
    return con.sql(query).to_arrow_table().to_pandas()


def merge_successors(con: duckdb.DuckDBPyConnection) -> dict[str, str]:
    """For each golden ID merged away, the ID that holds its records now (chains followed)."""
    return dict(con.execute(SUCCESSORS_SQL).fetchall())
