"""Run by tests as a subprocess: extract a source and stage it, stopping inside the transaction.

Arguments: config dir, data dir, business date, source. Once staging has written the
source's new rows to staging.customers — inside stage_source's open transaction — it prints
`staged in open transaction: <rows>` and sleeps, so that the parent kills it exactly there.
"""

import sys
import time
from datetime import UTC, date, datetime
from pathlib import Path

from custpipe import warehouse
from custpipe.config import load_config
from custpipe.mapping.stage import stage_source
from custpipe.settings import DEFAULT_EXPECTATIONS_DIR, Settings
from custpipe.sources.extract import extract_dataset

config_dir, data_dir, day, name = sys.argv[1:5]
settings = Settings(Path(config_dir), Path(data_dir), DEFAULT_EXPECTATIONS_DIR)
source = load_config(settings.config_dir).sources[name]
business_date = date.fromisoformat(day)
for dataset in source.datasets():
    extract_dataset(source, dataset, settings, business_date)

append_rows = warehouse.append_rows


def append_then_stop(con, table, frame):
    """warehouse.append_rows, then (the first time staging.customers is written) stop."""
    written = append_rows(con, table, frame)
    if table == "staging.customers" and written:
        assert warehouse._open_transactions.get(id(con)), "staging wrote outside a transaction"
        print(f"staged in open transaction: {written}", flush=True)
        time.sleep(600)
    return written


warehouse.append_rows = append_then_stop
print("staging", flush=True)
with warehouse.connect(settings.warehouse_path) as con:
    now = datetime.now(UTC).replace(tzinfo=None)
    stage_source(con, settings, source, business_date, "killed-staging", now)
print("done", flush=True)
