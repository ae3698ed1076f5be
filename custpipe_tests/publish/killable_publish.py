"""Run by tests as a subprocess: publish three rows, one per batch, pausing between batches.

Once the first batch is written — inside the publish's open transaction — it prints
`batch written in open transaction: <rows the transaction sees>` so that the parent kills
it at exactly that point (see kill.py). The count is read with a second cursor of the same
database connection, so it includes the uncommitted batch.
"""

import re
import sys

import pandas as pd
import sqlalchemy as sa

from custpipe.publish.erp import PUBLISHED_COLUMNS, publish

url, table, run_id = sys.argv[1:4]
rows = [
    dict.fromkeys(PUBLISHED_COLUMNS)
    | {"golden_id": f"K{i}", "status": "active", "name": f"killed {i}"}
    for i in range(3)
]
# the upsert into the target itself, not into <table>_LOG
TARGET_INSERT = re.compile(rf"^\s*INSERT\s+INTO\s+[`\"]?{re.escape(table)}[`\"]?\s*\(", re.I)
reported = False


@sa.event.listens_for(sa.engine.Engine, "after_cursor_execute")
def _first_batch_written(conn, cursor, statement, parameters, context, executemany):
    global reported
    if reported or not TARGET_INSERT.match(statement):
        return
    reported = True
    if not conn.in_transaction():
        print("batch written OUTSIDE a transaction", flush=True)
        return
    quoted = conn.dialect.identifier_preparer.quote(table)
    probe = conn.connection.dbapi_connection.cursor()  # same connection, same transaction
    probe.execute(f"SELECT count(*) FROM {quoted}")
    print(f"batch written in open transaction: {probe.fetchone()[0]}", flush=True)
    probe.close()


print("publishing", flush=True)
publish(pd.DataFrame(rows), url, table, run_id)
print("done", flush=True)
