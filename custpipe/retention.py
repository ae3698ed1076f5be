"""Retention: remove what the nightly run keeps beyond its configured age (days per kind).

Kinds (see `RetentionConfig` in custpipe.config): the delta files of each publish
(`data/publish/<run_id>/`, customer values), the quarantine rows, the scorecard rows, the
golden-ID history and the landing zone (raw extracts, customer values). A delta folder is
aged by the publish time recorded in it (`published.json`), never by file times. The
quarantine rows of each source's latest validation run are kept whatever their age
(consolidation holds those records back). A landing folder that staging may still need is
never removed, whatever its age (landing folders are aged by the business date in their
path):

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


# the quarantine rows of each source's latest validation: consolidation holds those records
# back (matching.workspace.accepted_nodes), so they are kept whatever their age
_LATEST_QUARANTINE = """
    NOT EXISTS (
        SELECT 1 FROM (
            SELECT source_system, arg_max(run_id, validated_at) AS run_id
            FROM quality.validation_runs GROUP BY source_system
        ) latest
        WHERE latest.source_system = quality.quarantine.source_system
          AND latest.run_id = quality.quarantine.run_id)
"""


def prune_tables(con: duckdb.DuckDBPyConnection, retention: RetentionConfig, now: datetime):
    """Delete the rows of the quarantine, scorecard and golden-ID history past their age.

    The quarantine rows of a source's latest validation run are never deleted: consolidation
    reads them to hold records back, and without them those records would go through.
    """
    removed = {}
    for table, column, kind in _TABLES:
        limit = cutoff(getattr(retention, kind), now)
        if limit is None:
            removed[kind] = 0
            continue
        where = f"{column} < ?" + (f" AND {_LATEST_QUARANTINE}" if kind == "quarantine" else "")
        (count,) = con.execute(f"SELECT count(*) FROM {table} WHERE {where}", [limit]).fetchone()
        if count:
            con.execute(f"DELETE FROM {table} WHERE {where}", [limit])
        removed[kind] = int(count)
    return removed


def published_at(folder: Path, now: datetime) -> datetime:
    """When the delta folder was published (UTC), from the stamp export_delta wrote in it.

    Not the file times: a restore or copy resets them. A folder without a stamp (written by
    an older custpipe, or copied without it) is stamped now, "first seen", and ages from
    then: it goes `days` after custpipe first saw it, never earlier than it should.
    """
    import json

    from custpipe.publish.erp import PUBLISHED_STAMP

    stamp = folder / PUBLISHED_STAMP
    try:
        at = datetime.fromisoformat(json.loads(stamp.read_text(encoding="utf-8"))["published_at"])
    except (OSError, ValueError, KeyError, TypeError):
        pass
    else:
        return at.astimezone(UTC).replace(tzinfo=None) if at.tzinfo else at
    first_seen = {"run_id": folder.name, "published_at": now.isoformat(timespec="seconds")}
    stamp.write_text(json.dumps(first_seen | {"first_seen": True}), encoding="utf-8")
    return now


def prune_publish_files(folder: Path, days: int | None, now: datetime) -> int:
    """Remove the per-run delta folders under `folder` (data/publish) published more than
    `days` ago (see :func:`published_at`)."""
    limit = cutoff(days, now)
    if limit is None or not folder.is_dir():
        return 0
    old = [d for d in sorted(folder.iterdir()) if d.is_dir() and published_at(d, now) < limit]
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
