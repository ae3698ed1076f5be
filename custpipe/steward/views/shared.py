"""Helpers the views share: decided pairs from the store, stripping values for viewers."""

from __future__ import annotations

from pathlib import Path

from custpipe.steward import queries, store

#: what a record or golden record keeps for a viewer: ids, links and flags, no values
ID_COLUMNS = (
    "record",
    "match_rule",
    "is_deleted",
    "golden_id",
    "member_count",
    "sources",
    "status",
    "first_seen_run",
    "run_id",
    "updated_at",
)


def decided_pairs(store_path: Path) -> set[str]:
    """Pair keys (see `queries.pair_key`) of every must-link or cannot-link in the store: a
    decided pair never returns to the review queue, so one still there waits for the next
    nightly run."""
    return {
        queries.pair_key(left, right)
        for left, right, kind in store.pending_pairs(store_path, set())
        if kind in ("must_link", "cannot_link")
    }


def strip_record(row: dict | None) -> dict | None:
    """`row` with only its id columns (for a viewer)."""
    if row is None:
        return None
    kept = {k: v for k, v in row.items() if k in ID_COLUMNS}
    if "attributes" in row:
        kept["attributes"] = [
            {"name": a["name"], "value": None, "source": a["source"]} for a in row["attributes"]
        ]
    return kept


def hide_values(side: dict) -> dict:
    """A review side (golden record and members) without customer values."""
    return {
        **side,
        "golden": strip_record(side["golden"]),
        "members": [strip_record(m) for m in side["members"]],
    }
