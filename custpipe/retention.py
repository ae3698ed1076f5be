"""Retention: remove what the nightly run keeps beyond its configured age (days per kind).

Kinds (see `RetentionConfig` in custpipe.config): the delta files of each publish
(`data/publish/<run_id>/`, customer values), the quarantine rows, the scorecard rows, the
golden-ID history and the landing zone (raw extracts, customer values). A landing folder
that staging may still need is never removed, whatever its age:

- it is not staged yet (newer than the last folder staged for its source and dataset);
- it is the newest folder of its source and dataset (the next extraction's watermark);
- it is the last full extraction of its source and dataset, or later: staging restages
  those after a mapping change, and the staged rows point at them;
- a staged row still names it (`landing_path` in the staging tables).
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path

import duckdb

from custpipe.config import RetentionConfig
from custpipe.settings import Settings
from custpipe.sources.extract import is_rejected, read_manifest

# table, timestamp column, retention kind
_TABLES = (
    ("quality.quarantine", "quarantined_at", "quarantine"),
    ("quality.scorecard", "run_at", "scorecard"),
    ("mdm.golden_id_history", "recorded_at", "golden_id_history"),
)


@dataclass(frozen=True)
class RetentionResult:
    """What one application of the retention settings removed, per kind."""

    removed: dict[str, int]  # kind -> rows (tables) or folders (files, landing)
    kept_landing_needed: int  # landing folders past their age kept because staging needs them


def cutoff(days: int | None, now: datetime) -> datetime | None:
    """The oldest moment kept for a retention of `days` (None: keep forever)."""
    return None if not days else now - timedelta(days=days)


def prune_tables(con: duckdb.DuckDBPyConnection, retention: RetentionConfig, now: datetime):
    """Delete the rows of the quarantine, scorecard and golden-ID history past their age."""
    removed = {}
    for table, column, kind in _TABLES:
        limit = cutoff(getattr(retention, kind), now)
        if limit is None:
            removed[kind] = 0
            continue
        (count,) = con.execute(
            f"SELECT count(*) FROM {table} WHERE {column} < ?", [limit]
        ).fetchone()
        if count:
            con.execute(f"DELETE FROM {table} WHERE {column} < ?", [limit])
        removed[kind] = int(count)
    return removed


def _age(folder: Path) -> datetime:
    """When a folder was last written (its newest file), in UTC like the rest of custpipe."""
    stamps = [p.stat().st_mtime for p in folder.rglob("*") if p.is_file()]
    newest = max(stamps, default=folder.stat().st_mtime)
    return datetime.fromtimestamp(newest, UTC).replace(tzinfo=None)


def prune_publish_files(folder: Path, days: int | None, now: datetime) -> int:
    """Remove the per-run delta folders under `folder` (data/publish) older than `days`."""
    limit = cutoff(days, now)
    if limit is None or not folder.is_dir():
        return 0
    old = [d for d in folder.iterdir() if d.is_dir() and _age(d) < limit]
    for d in old:
        shutil.rmtree(d)
    return len(old)


def _key(folder: Path) -> tuple[str, str]:
    return folder.parts[-4], folder.parts[-2]  # business date, extracted at


def needed_landings(con: duckdb.DuckDBPyConnection, settings: Settings) -> set[Path]:
    """The landing folders staging may still need (see the module docstring)."""
    root = settings.landing_dir
    groups: dict[tuple[str, str], list[Path]] = {}
    for manifest in root.glob("*/*/*/*/manifest.json"):
        folder = manifest.parent
        groups.setdefault((folder.parts[-3], folder.parts[-1]), []).append(folder)
    logged = con.execute(
        "SELECT source_system, dataset, max(landing_path) FROM staging.landing_log GROUP BY ALL"
    ).fetchall()
    last_staged = {(s, d): Path(p) for s, d, p in logged}
    referenced = {
        Path(p)
        for table in ("staging.customers", "staging.orders", "staging.order_lines")
        for (p,) in con.execute(
            f"SELECT DISTINCT landing_path FROM {table} WHERE landing_path IS NOT NULL"
        ).fetchall()
    }
    needed = {p for p in referenced if p.is_relative_to(root)}
    for group, folders in groups.items():
        folders.sort(key=_key)
        accepted = [f for f in folders if not is_rejected(f)]
        needed.add(folders[-1])
        if accepted:
            needed.add(accepted[-1])
        last = last_staged.get(group)
        staged_key = _key(last) if last else None
        needed.update(f for f in accepted if staged_key is None or _key(f) > staged_key)
        fulls = [
            i
            for i, f in enumerate(accepted)
            if (staged_key is None or _key(f) <= staged_key)
            and read_manifest(f).get("mode", "full") == "full"
        ]
        if fulls:
            needed.update(accepted[fulls[-1] :])
    return needed


def prune_landing(
    con: duckdb.DuckDBPyConnection, settings: Settings, days: int | None, now: datetime
) -> tuple[int, int]:
    """Remove landing folders older than `days` (by business date) that staging does not
    need; return (removed, kept because needed)."""
    limit = cutoff(days, now)
    if limit is None:
        return 0, 0
    needed = needed_landings(con, settings)
    removed = kept = 0
    for manifest in sorted(settings.landing_dir.glob("*/*/*/*/manifest.json")):
        folder = manifest.parent
        if folder.parts[-4] >= limit.date().isoformat():
            continue
        if folder in needed:
            kept += 1
            continue
        shutil.rmtree(folder)
        removed += 1
        for parent in folder.parents:  # extracted-at, source and date folders left empty
            if parent == settings.landing_dir or any(parent.iterdir()):
                break
            parent.rmdir()
    return removed, kept


def apply_retention(
    con: duckdb.DuckDBPyConnection, settings: Settings, retention: RetentionConfig, now: datetime
) -> RetentionResult:
    """Apply every retention setting once; return what was removed per kind."""
    removed = prune_tables(con, retention, now)
    removed["publish_files"] = prune_publish_files(
        settings.data_dir / "publish", retention.publish_files, now
    )
    removed["landing"], kept = prune_landing(con, settings, retention.landing, now)
    return RetentionResult(removed, kept)
