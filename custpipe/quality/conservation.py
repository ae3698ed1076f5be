"""Conservation: every staged record ends in exactly one of the xref or the latest quarantine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq


@dataclass(frozen=True)
class ConservationReport:
    """Counts proving (or disproving) that no record was lost or duplicated."""

    staged: int
    in_xref: int
    quarantined: int
    in_both: int
    in_neither: int
    landing_rows: int

    @property
    def ok(self) -> bool:
        """True when every staged record is in exactly one place and staging equals landing."""
        return (
            self.in_both == 0
            and self.in_neither == 0
            and self.staged == self.in_xref + self.quarantined
            and self.landing_rows == self.staged
        )

    def summary(self) -> str:
        """One line for the on-call engineer."""
        state = "holds" if self.ok else "VIOLATED"
        return (
            f"conservation {state}: landing {self.landing_rows}, staged {self.staged} = "
            f"xref {self.in_xref} + quarantine {self.quarantined}; in both {self.in_both}, "
            f"in neither {self.in_neither}"
        )


def _landing_rows(con: duckdb.DuckDBPyConnection) -> int:
    """Rows in the landing folders that staging read (manifest, else the Parquet footers)."""
    paths = [
        r[0] for r in con.execute("SELECT DISTINCT landing_path FROM staging.customers").fetchall()
    ]
    total = 0
    for folder in map(Path, paths):
        manifest = folder / "manifest.json"
        if manifest.exists():
            total += json.loads(manifest.read_text(encoding="utf-8"))["rows"]
        else:
            total += sum(pq.ParquetFile(p).metadata.num_rows for p in folder.glob("part-*.parquet"))
    return total


def conservation_report(con: duckdb.DuckDBPyConnection) -> ConservationReport:
    """Compare staging.customers with mdm.customer_xref and the latest quarantine per source."""
    row = con.execute("""
        WITH latest AS (SELECT source_system, arg_max(run_id, validated_at) AS run_id
                        FROM quality.validation_runs GROUP BY source_system),
        q AS (SELECT DISTINCT q.source_system, q.source_id FROM quality.quarantine q
              JOIN latest USING (source_system, run_id)),
        s AS (SELECT source_system, source_id,
                     EXISTS (SELECT 1 FROM mdm.customer_xref x
                             WHERE x.source_system = c.source_system
                             AND x.source_id = c.source_id) AS in_x,
                     EXISTS (SELECT 1 FROM q WHERE q.source_system = c.source_system
                             AND q.source_id = c.source_id) AS in_q
              FROM staging.customers c)
        SELECT count(*), count(*) FILTER (WHERE in_x), count(*) FILTER (WHERE in_q),
               count(*) FILTER (WHERE in_x AND in_q), count(*) FILTER (WHERE NOT in_x AND NOT in_q)
        FROM s
    """).fetchone()
    return ConservationReport(*[int(v) for v in row], landing_rows=_landing_rows(con))
