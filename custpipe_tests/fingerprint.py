"""Content fingerprints of a deployment's outputs, to prove a refactor changes no result.

Each table is read with its run-specific columns (run ids, timestamps) left out, sorted by
every remaining column, and hashed; equal fingerprints mean equal rows.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import pandas as pd
import sqlalchemy as sa

#: columns whose value differs from run to run on identical input
RUN_SPECIFIC = {
    "run_id",
    "updated_at",
    "first_seen_run",
    "published_at",
    "recorded_at",
    "staged_at",
    "quarantined_at",
    "landing_path",  # absolute: differs between two deployment folders
    "raw_hash",  # salted with a hash of the staging code itself
}

WAREHOUSE_TABLES = (
    "staging.customers",
    "mdm.golden_customers",
    "mdm.golden_id_history",
    "mdm.customer_xref",
    "mdm.match_review",
    "recon.order_discrepancies",
    "quality.quarantine",
)


def frame_hash(frame: pd.DataFrame) -> str:
    """sha256 of `frame` without run-specific columns, columns and rows sorted."""
    cols = sorted(c for c in frame.columns if c.lower() not in RUN_SPECIFIC)
    text = frame[cols].astype(str).sort_values(cols).to_csv(index=False)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def fingerprint(warehouse_path: Path, erp_url: str, erp_table: str) -> dict[str, dict]:
    """{table: {"rows": n, "sha256": ...}} for the warehouse outputs and the published table."""
    out: dict[str, dict] = {}
    con = duckdb.connect(str(warehouse_path), read_only=True)
    try:
        for table in WAREHOUSE_TABLES:
            frame = con.execute(f"SELECT * FROM {table}").df()
            out[table] = {"rows": len(frame), "sha256": frame_hash(frame)}
    finally:
        con.close()
    engine = sa.create_engine(erp_url)
    try:
        with engine.connect() as conn:
            frame = pd.read_sql_table(erp_table, conn)
    finally:
        engine.dispose()
    out[f"erp.{erp_table}"] = {"rows": len(frame), "sha256": frame_hash(frame)}
    return out


def dump(fp: dict, path: Path) -> None:
    """Write a fingerprint as JSON."""
    path.write_text(json.dumps(fp, indent=2, sort_keys=True) + "\n", encoding="utf-8")


if __name__ == "__main__":  # record the fingerprint of a deployment: CONFIG_DIR DATA_DIR OUT
    import sys

    from custpipe.config import load_config
    from custpipe.settings import DEFAULT_EXPECTATIONS_DIR, Settings

    config_dir, data_dir, out = (Path(a) for a in sys.argv[1:4])
    settings = Settings(config_dir, data_dir, DEFAULT_EXPECTATIONS_DIR)
    cfg = load_config(config_dir)
    dump(
        fingerprint(
            settings.warehouse_path,
            settings.expand(cfg.publish.connection.url),
            cfg.publish.table,
        ),
        out,
    )
