"""Conservation: every staged record ends in exactly one of the xref or the latest quarantine."""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow.parquet as pq

from custpipe.warehouse import CURRENT_QUARANTINE


@dataclass(frozen=True)
class ConservationReport:
    """Counts proving (or disproving) that no record was lost or duplicated."""

    staged: int
    in_xref: int
    quarantined: int
    in_both: int
    in_neither: int
    landing_rows: int  # rows of each source's newest landing folder ...
    landing_staged: int  # ... and how many staged records came from those folders
    orphans: int = 0  # xref rows of an unconfigured source or pointing at no golden record

    @property
    def ok(self) -> bool:
        """Every staged record in exactly one place; every newest landed row staged."""
        return (
            self.in_both == 0
            and self.in_neither == 0
            and self.staged == self.in_xref + self.quarantined
            and self.landing_rows == self.landing_staged
            and self.orphans == 0
        )

    def summary(self) -> str:
        """One line for the on-call engineer."""
        state = "holds" if self.ok else "VIOLATED"
        return (
            f"conservation {state}: newest landing {self.landing_rows} rows, "
            f"{self.landing_staged} staged from it; staged {self.staged} = xref {self.in_xref} "
            f"+ quarantine {self.quarantined}; in both {self.in_both}, in neither {self.in_neither}"
            f"; orphan xref rows {self.orphans}"
        )


def _landing_rows(con: duckdb.DuckDBPyConnection, sources: list[str]) -> tuple[int, int]:
    """Rows in each source's newest landing folder, and staged records that came from it."""
    newest = con.execute(
        """
        WITH latest AS (SELECT source_system, max(landing_path) AS landing_path
                        FROM staging.customers WHERE list_contains($sources, source_system)
                        GROUP BY 1)
        SELECT l.landing_path, count(*) FROM latest l
        JOIN staging.customers s USING (source_system, landing_path) GROUP BY 1
        """,
        {"sources": sources},
    ).fetchall()
    landed = staged = 0
    for folder, n in newest:
        folder = Path(folder)
        manifest = folder / "manifest.json"
        if manifest.exists():
            landed += json.loads(manifest.read_text(encoding="utf-8"))["rows"]
        else:
            landed += sum(
                pq.ParquetFile(p).metadata.num_rows for p in folder.glob("part-*.parquet")
            )
        staged += n
    return landed, staged


def conservation_report(con: duckdb.DuckDBPyConnection, sources: list[str]) -> ConservationReport:
    """Compare staging.customers with mdm.customer_xref and the latest quarantine per source.

    Only the configured `sources` count; xref rows of any other source are a violation too.
    """
    row = con.execute(
        f"""
        WITH q AS (SELECT DISTINCT source_system, source_id FROM ({CURRENT_QUARANTINE})),
        s AS (SELECT source_system, source_id,
                     EXISTS (SELECT 1 FROM mdm.customer_xref x
                             WHERE x.source_system = c.source_system
                             AND x.source_id = c.source_id) AS in_x,
                     EXISTS (SELECT 1 FROM q WHERE q.source_system = c.source_system
                             AND q.source_id = c.source_id) AS in_q
              FROM staging.customers c WHERE list_contains($sources, c.source_system))
        SELECT count(*), count(*) FILTER (WHERE in_x), count(*) FILTER (WHERE in_q),
               count(*) FILTER (WHERE in_x AND in_q), count(*) FILTER (WHERE NOT in_x AND NOT in_q)
        FROM s
    """,
        {"sources": sources},
    ).fetchone()
    landed, staged = _landing_rows(con, sources)
    orphans = con.execute(
        """
        SELECT count(*) FROM mdm.customer_xref x
        WHERE NOT list_contains($sources, x.source_system)
           OR NOT EXISTS (SELECT 1 FROM mdm.golden_customers g WHERE g.golden_id = x.golden_id)
        """,
        {"sources": sources},
    ).fetchone()[0]
    return ConservationReport(
        *[int(v) for v in row], landing_rows=landed, landing_staged=staged, orphans=int(orphans)
    )
