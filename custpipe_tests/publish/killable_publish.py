"""Run by tests as a subprocess: publish three rows, one per batch, pausing between batches."""

import sys

import pandas as pd

from custpipe.publish.erp import PUBLISHED_COLUMNS, publish

url, table, run_id = sys.argv[1:4]
rows = [
    dict.fromkeys(PUBLISHED_COLUMNS)
    | {"golden_id": f"K{i}", "status": "active", "name": f"killed {i}"}
    for i in range(3)
]
print("publishing", flush=True)
publish(pd.DataFrame(rows), url, table, run_id)
print("done", flush=True)
