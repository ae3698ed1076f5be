"""Helpers the views share: decided pairs from the store, stripping values for viewers."""

from __future__ import annotations

import threading
from pathlib import Path

import duckdb

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


_review_lock = threading.Lock()


def warehouse_version(path: Path) -> tuple:
    """What changes whenever a run writes the warehouse: size and time of its files."""
    out = []
    for file in (Path(path), Path(f"{path}.wal")):
        try:
            stat = file.stat()
        except FileNotFoundError:
            out.append(None)
        else:
            out.append((stat.st_mtime_ns, stat.st_size))
    return tuple(out)


def review_state(request, con: duckdb.DuckDBPyConnection) -> queries.ReviewState:
    """The review queue and its ranking, read once per version of the warehouse (the inbox
    and a group's page need no scan of the xref or the orders until a run writes again)."""
    cache: dict = request.app.state.review_cache
    version = warehouse_version(request.app.state.settings.warehouse_path)
    with _review_lock:
        state = cache.get(version)
    if state is None:
        state = queries.review_state(con)
        with _review_lock:
            cache.clear()
            cache[version] = state
    return state


def imported_ids(con: duckdb.DuckDBPyConnection) -> set[str]:
    """The store's decisions the nightly run has imported; none while the warehouse predates
    the store (the next nightly run adds its tables: pages only read)."""
    try:
        return store.imported_decision_ids(con)
    except (duckdb.CatalogException, duckdb.BinderException):
        return set()


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
