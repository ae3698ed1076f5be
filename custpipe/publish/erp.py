"""Compute the delta between the golden customers and what the ERP already holds, and apply it
in one transaction through SQLAlchemy, so a failure leaves the ERP exactly as it was."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import UTC, datetime

import pandas as pd
import sqlalchemy as sa

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


class PublishRefused(RuntimeError):
    """The delta looks wrong (mass retirement): nothing was written."""


@dataclass(frozen=True)
class PublishResult:
    """What a publish changed (or would change, in a dry run)."""

    inserted: int
    updated: int
    retired: int
    unchanged: int
    dry_run: bool
    active_before: int = 0  # active rows the target held before this publish

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
    """
    merged_into = merged_into or {}
    engine = sa.create_engine(url, hide_parameters=True)  # errors must not carry customer rows
    metadata = sa.MetaData()
    target = target_table(table, metadata)
    now = datetime.now(UTC).replace(tzinfo=None, microsecond=0)
    current = golden[["golden_id", *PUBLISHED_COLUMNS]].copy()
    current = current.astype(object).where(current.notna(), None)
    current["row_hash"] = row_hashes(current)
    try:
        with engine.begin() as conn:
            metadata.create_all(conn, checkfirst=True)
            _add_missing_columns(conn, target)
            existing = pd.DataFrame(
                conn.execute(
                    sa.select(target.c.golden_id, target.c.row_hash, target.c.status)
                ).all(),
                columns=["golden_id", "row_hash", "status"],
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
            if not dry_run:
                stamp = {"published_at": now, "run_id": run_id}
                if len(inserts):
                    conn.execute(sa.insert(target), [r | stamp for r in inserts.to_dict("records")])
                if len(updates):
                    cols = (*PUBLISHED_COLUMNS, "row_hash")
                    stmt = (
                        sa.update(target)
                        .where(target.c.golden_id == sa.bindparam("_gid"))
                        .values(
                            {c: sa.bindparam(f"v_{c}") for c in cols}
                            | {"published_at": now, "run_id": run_id}
                        )
                    )
                    conn.execute(
                        stmt,
                        [
                            {"_gid": r["golden_id"]} | {f"v_{c}": r[c] for c in cols}
                            for r in updates.to_dict("records")
                        ],
                    )
                if len(retire):
                    stmt = (
                        sa.update(target)
                        .where(target.c.golden_id == sa.bindparam("_gid"))
                        .values(
                            status="retired",
                            merged_into=sa.bindparam("_successor"),
                            row_hash="retired",
                            published_at=now,
                            run_id=run_id,
                        )
                    )
                    conn.execute(
                        stmt,
                        [
                            {"_gid": g, "_successor": merged_into.get(g)}
                            for g in retire["golden_id"]
                        ],
                    )
    finally:
        engine.dispose()
    return PublishResult(len(inserts), len(updates), len(retire), unchanged, dry_run, active_before)
