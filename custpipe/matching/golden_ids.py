"""Stable golden IDs: a cluster keeps its ID from run to run; merges and splits are recorded."""

from __future__ import annotations

import hashlib

import pandas as pd


def new_golden_id(member_key: str, taken: set[str]) -> str:
    """A deterministic new ID derived from the cluster's first member key, avoiding `taken`."""
    digest = hashlib.sha1(member_key.encode("utf-8")).hexdigest().upper()
    for start in range(0, len(digest) - 12):
        candidate = f"G{digest[start : start + 12]}"
        if candidate not in taken:
            return candidate
    raise RuntimeError("could not derive a free golden id")  # pragma: no cover


def assign_golden_ids(
    members: pd.DataFrame, previous: pd.DataFrame
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Give each cluster a golden ID, reusing previous IDs.

    `members`: one row per record with `label` (cluster), `member_key` (source_system:source_id)
    and optionally `trust` (lower = more trusted source; breaks ties between the parts of a split).
    `previous`: last run's xref with `member_key`, `golden_id`.
    Returns (label -> golden_id frame, history events frame with event/golden_id/related_golden_id).
    """
    if "trust" not in members:
        members = members.assign(trust=0)
    old = members.merge(previous[["member_key", "golden_id"]], on="member_key", how="left")
    sizes = members.groupby("label").size().rename("size")
    votes = (
        old.dropna(subset=["golden_id"])
        .groupby(["label", "golden_id"])
        .agg(votes=("member_key", "size"), best_trust=("trust", "min"))
        .reset_index()
        .join(sizes, on="label")
    )
    # Each old ID goes to the cluster holding most of its old members; on a tie, the one with
    # the most trusted of those members (the ERP record keeps its ID), then the larger cluster.
    votes = votes.sort_values(
        ["golden_id", "votes", "best_trust", "size", "label"],
        ascending=[True, False, True, False, True],
    )
    owner_of = votes.drop_duplicates("golden_id")
    # Each cluster keeps the old ID it holds most members of (ties: the smaller ID).
    owner = owner_of.sort_values(["label", "votes", "golden_id"], ascending=[True, False, True])
    kept = owner.drop_duplicates("label")[["label", "golden_id"]]
    taken = set(previous["golden_id"]) | set(kept["golden_id"])
    firsts = (
        members.sort_values("member_key").drop_duplicates("label").set_index("label")["member_key"]
    )
    fresh = []
    for label in sorted(set(sizes.index) - set(kept["label"])):
        gid = new_golden_id(firsts[label], taken)
        taken.add(gid)
        fresh.append((label, gid))
    assigned = pd.concat(
        [kept, pd.DataFrame(fresh, columns=["label", "golden_id"])], ignore_index=True
    )

    events = []
    label_to_gid = assigned.set_index("label")["golden_id"]
    # per label, the old ID most of its members had (stable sort: ties keep the order above)
    top_old = votes.sort_values("votes", ascending=False, kind="stable").drop_duplicates("label")
    top_old = top_old.set_index("label")["golden_id"]
    for label, gid in fresh:
        lost = top_old.get(label)
        if lost is not None:  # its members had IDs that another cluster kept: a split
            events.append(("split", gid, lost, int(sizes[label])))
        else:
            events.append(("created", gid, None, int(sizes[label])))
    kept_ids = set(kept["golden_id"])
    for row in owner_of.itertuples():
        if row.golden_id not in kept_ids:  # its main part joined a cluster that kept another ID
            events.append(("merged", row.golden_id, label_to_gid[row.label], int(row.votes)))
    still_present = set(votes["golden_id"])
    for gid in sorted(set(previous["golden_id"]) - still_present):
        events.append(("retired", gid, None, 0))
    history = pd.DataFrame(events, columns=["event", "golden_id", "related_golden_id", "members"])
    history = history.drop_duplicates(["event", "golden_id"])
    return assigned, history


def successors(history: pd.DataFrame) -> dict[str, str]:
    """For each golden ID merged away, the ID that holds its records now (merge chains followed).

    `history`: rows of mdm.golden_id_history with event, golden_id, related_golden_id, in order.
    """
    merged = history[history["event"] == "merged"]
    step = dict(zip(merged["golden_id"], merged["related_golden_id"], strict=True))
    out = {}
    for gid in step:
        seen, current = {gid}, step[gid]
        while current in step and current not in seen:  # A -> B -> C: A's successor is C
            seen.add(current)
            current = step[current]
        out[gid] = current
    return out
