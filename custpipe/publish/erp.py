"""Compute the delta between the golden customers and what the ERP already holds, and apply it
in one transaction through SQLAlchemy, so a failure leaves the ERP exactly as it was."""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pandas as pd
import sqlalchemy as sa
from sqlalchemy.dialects import mysql, postgresql, sqlite

PUBLISHED_COLUMNS: tuple[str, ...] = (
    "erp_customer_number",
    "party_type",
    "name",
    "street",
    "city",
    "region",
    "postal_code",
    "country",
    "phone",
    "email",
    "tax_id",
    "segment",
    "status",
)
BATCH_ROWS = int(os.environ.get("CUSTPIPE_PUBLISH_BATCH_ROWS", "5000"))


class PublishRefused(RuntimeError):
    """The delta looks wrong (mass retirement): nothing was written."""


class PublishTargetError(RuntimeError):
    """The target database could not be reached or used: nothing was written."""


@dataclass(frozen=True)
class PublishResult:
    """What a publish changed (or would change, in a dry run)."""

    inserted: int
    updated: int
    retired: int
    unchanged: int
    dry_run: bool
    active_before: int = 0  # active rows the target held before this publish
    content_hash: str = ""  # of the target's content after this publish
    delta: pd.DataFrame = field(default_factory=pd.DataFrame, repr=False)  # one row per change

    @property
    def changed(self) -> int:
        """Rows written."""
        return self.inserted + self.updated + self.retired


def target_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The ERP inbound table: one row per golden customer."""
    cols = [sa.Column("golden_id", sa.String(32), primary_key=True)]
    cols += [sa.Column(c, sa.String(400)) for c in PUBLISHED_COLUMNS]
    cols += [
        sa.Column("merged_into", sa.String(32)),  # for retired rows: the golden ID that absorbed it
        sa.Column("row_hash", sa.String(64), nullable=False),
        sa.Column("published_at", sa.DateTime, nullable=False),
        sa.Column("run_id", sa.String(64)),
    ]
    return sa.Table(name, metadata, *cols)


def log_table(name: str, metadata: sa.MetaData) -> sa.Table:
    """The publish log beside the target: one row per publish (counts, content hash)."""
    return sa.Table(
        f"{name}_LOG",
        metadata,
        sa.Column("run_id", sa.String(64), primary_key=True),
        sa.Column("published_at", sa.DateTime, primary_key=True),  # a run may publish twice
        sa.Column("inserted", sa.Integer, nullable=False),
        sa.Column("updated", sa.Integer, nullable=False),
        sa.Column("retired", sa.Integer, nullable=False),
        sa.Column("unchanged", sa.Integer, nullable=False),
        sa.Column("content_hash", sa.String(64), nullable=False),
    )


def _add_missing_columns(conn: sa.Connection, target: sa.Table) -> None:
    """Bring a target table created by an older custpipe up to the current columns."""
    have = {c["name"].lower() for c in sa.inspect(conn).get_columns(target.name)}
    for column in target.columns:
        if column.name.lower() not in have:
            kind = column.type.compile(dialect=conn.dialect)
            name = conn.dialect.identifier_preparer.quote(column.name)
            table = conn.dialect.identifier_preparer.quote(target.name)
            conn.execute(sa.text(f"ALTER TABLE {table} ADD COLUMN {name} {kind}"))


def row_hashes(frame: pd.DataFrame) -> pd.Series:
    """A stable content hash per row over the published columns."""
    text = frame[list(PUBLISHED_COLUMNS)].astype(object).where(frame.notna(), "\x00")
    joined = text.astype(str).agg("\x1f".join, axis=1)
    return joined.map(lambda s: hashlib.sha256(s.encode("utf-8")).hexdigest())


def content_hash(golden_ids: pd.Series, hashes: pd.Series) -> str:
    """One hash of a whole table state (order-independent)."""
    pairs = sorted(zip(golden_ids, hashes, strict=True))
    digest = hashlib.sha256()
    for gid, h in pairs:
        digest.update(f"{gid}:{h}\n".encode())
    return digest.hexdigest()


def compute_delta(
    current: pd.DataFrame, existing: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame, int]:
    """(inserts, updates, retirements, unchanged count) of `current` against `existing`.

    `current`: golden_id + PUBLISHED_COLUMNS + row_hash. `existing`: golden_id, row_hash, status.
    """
    old = existing.set_index("golden_id")
    known = current["golden_id"].isin(old.index)
    inserts = current[~known]
    same = known & (
        current["row_hash"].values == old["row_hash"].reindex(current["golden_id"]).values
    )
    updates = current[known & ~same]
    gone = old[~old.index.isin(current["golden_id"]) & (old["status"] != "retired")]
    retire = pd.DataFrame({"golden_id": gone.index})
    return inserts, updates, retire, int(same.sum())


def _upsert(conn: sa.Connection, target: sa.Table, rows: list[dict]) -> None:
    """Insert or update `rows` with the dialect's native upsert, in batches."""
    dialect = conn.dialect.name
    columns = [c.name for c in target.columns if c.name != "golden_id"]
    for start in range(0, len(rows), BATCH_ROWS):
        batch = rows[start : start + BATCH_ROWS]
        if dialect == "postgresql":
            stmt = postgresql.insert(target)
            stmt = stmt.on_conflict_do_update(
                index_elements=["golden_id"], set_={c: stmt.excluded[c] for c in columns}
            )
        elif dialect in ("mysql", "mariadb"):
            stmt = mysql.insert(target)
            stmt = stmt.on_duplicate_key_update({c: stmt.inserted[c] for c in columns})
        elif dialect == "sqlite":
            stmt = sqlite.insert(target)
            stmt = stmt.on_conflict_do_update(
                index_elements=["golden_id"], set_={c: stmt.excluded[c] for c in columns}
            )
        else:
            raise ValueError(
                f"publishing to {dialect} is not supported (postgresql, mysql, sqlite)"
            )
        conn.execute(stmt, batch)
        _test_pause()


def _scalar(value: object) -> object:
    """None for every kind of missing value (NaN, NA), the value otherwise."""
    return None if value is None or (isinstance(value, float) and value != value) else value


def _test_pause() -> None:
    """Tests kill the publishing process mid-transaction at this point."""
    pause = os.environ.get("CUSTPIPE_TEST_PUBLISH_PAUSE")
    if pause:
        time.sleep(float(pause))


def _changed_fields(updates: pd.DataFrame, before: pd.DataFrame) -> list[str]:
    old = before.set_index("golden_id")
    out = []
    for row in updates.to_dict("records"):
        prev = old.loc[row["golden_id"]]
        out.append(",".join(c for c in PUBLISHED_COLUMNS if (prev[c] or None) != (row[c] or None)))
    return out


def publish(
    golden: pd.DataFrame,
    url: str,
    table: str,
    run_id: str,
    dry_run: bool = False,
    max_retire_share: float | None = None,
    merged_into: dict[str, str] | None = None,
) -> PublishResult:
    """Upsert the golden customers into `table` at `url` as a delta, all-or-nothing.

    With `max_retire_share`, a delta retiring more than that share of the active rows is
    refused (PublishRefused) before anything is written. `merged_into` maps a golden ID that
    was merged away to its successor, written on the retired row so the ERP can follow it.
    The publish and its counts are logged in `<table>_LOG` in the same transaction.
    """
    merged_into = merged_into or {}
    ids = golden["golden_id"]
    if ids.isna().any() or ids.duplicated().any():
        raise ValueError(
            f"publish to {table}: golden_id must be present and unique "
            f"({int(ids.isna().sum())} missing, {int(ids.duplicated().sum())} duplicated); "
            "nothing was written. Check the golden_customers suite."
        )
    engine = sa.create_engine(url, hide_parameters=True)  # errors must not carry customer rows
    metadata = sa.MetaData()
    target, log = target_table(table, metadata), log_table(table, metadata)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    current = golden[["golden_id", *PUBLISHED_COLUMNS]].copy()
    current = current.astype(object).where(current.notna(), None)
    current["row_hash"] = row_hashes(current)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn, checkfirst=True)
            _add_missing_columns(conn, target)
            columns = [target.c.golden_id, target.c.row_hash, target.c.status]
            columns += [target.c[c] for c in PUBLISHED_COLUMNS if c != "status"]
            existing = pd.DataFrame(
                conn.execute(sa.select(*columns)).all(), columns=[c.name for c in columns]
            )
            inserts, updates, retire, unchanged = compute_delta(current, existing)
            active_before = int((existing["status"] != "retired").sum())
            share = len(retire) / active_before if active_before else 0.0
            if max_retire_share is not None and share > max_retire_share:
                raise PublishRefused(
                    f"publish to {table} refused: it would retire {len(retire)} of "
                    f"{active_before} active customers ({share:.1%} > the limit "
                    f"{max_retire_share:.1%}). Nothing was written. Check the sources' "
                    "volumes and quarantine first; if the retirement is right, rerun the "
                    "publish with allow_mass_retire."
                )
            retired_rows = existing[existing["golden_id"].isin(retire["golden_id"])].assign(
                status="retired",
                merged_into=lambda f: f["golden_id"].map(merged_into),
                row_hash="retired",
            )
            stamp = {"published_at": now, "run_id": run_id}
            names = [c.name for c in target.columns if c.name not in stamp]
            writes = [
                {k: _scalar(r.get(k)) for k in names} | stamp
                for frame in (inserts, updates, retired_rows)
                for r in frame.to_dict("records")
            ]
            after = pd.concat(
                [
                    existing[
                        ~existing["golden_id"].isin(set(updates["golden_id"]))
                        & ~existing["golden_id"].isin(set(retire["golden_id"]))
                    ],
                    inserts,
                    updates,
                    retired_rows,
                ],
                ignore_index=True,
            )
            digest = content_hash(after["golden_id"], after["row_hash"])
            if not dry_run and writes:
                _upsert(conn, target, writes)
            if not dry_run:
                conn.execute(
                    sa.insert(log),
                    [
                        {
                            "run_id": run_id,
                            "published_at": now,
                            "inserted": len(inserts),
                            "updated": len(updates),
                            "retired": len(retire),
                            "unchanged": unchanged,
                            "content_hash": digest,
                        }
                    ],
                )
    except sa.exc.OperationalError as exc:
        raise PublishTargetError(
            f"publish to {table} at {engine.url.render_as_string()} failed: "
            f"{str(exc.orig or exc).splitlines()[0]}. Nothing was written; check that the "
            "database is reachable and the URL (environment variable) is right, then rerun."
        ) from exc
    finally:
        engine.dispose()
    delta = pd.concat(
        [
            inserts.assign(change="insert", changed_fields=""),
            updates.assign(change="update", changed_fields=_changed_fields(updates, existing)),
            retired_rows.assign(change="retire", changed_fields="status"),
        ],
        ignore_index=True,
    )
    delta = delta.reindex(
        columns=["change", "golden_id", *PUBLISHED_COLUMNS, "merged_into", "changed_fields"]
    )
    return PublishResult(
        len(inserts), len(updates), len(retire), unchanged, dry_run, active_before, digest, delta
    )


def export_delta(delta: pd.DataFrame, folder: Path, run_id: str) -> list[Path]:
    """Write the delta as Parquet and CSV for ERPs that import files; return the paths."""
    folder = Path(folder) / run_id
    folder.mkdir(parents=True, exist_ok=True)
    parquet, csv = folder / "delta.parquet", folder / "delta.csv"
    delta.astype(object).where(delta.notna(), None).to_parquet(parquet, index=False)
    delta.to_csv(csv, index=False, encoding="utf-8")
    return [parquet, csv]
