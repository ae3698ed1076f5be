"""The workbench's queries on hand-made warehouse rows: grouping, impact, waterfalls, search."""

from __future__ import annotations

import json
import math

import pandas as pd
import pytest

from custpipe.steward import queries
from custpipe.warehouse import append_rows


def _review(con, pairs):
    rows = [
        {"left_source_system": a.split(":")[0], "left_source_id": a.split(":")[1],
         "right_source_system": r.split(":")[0], "right_source_id": r.split(":")[1],
         "score": score, "explanation": json.dumps(expl), "run_id": "r1"}
        for a, r, score, expl in pairs
    ]  # fmt: skip
    append_rows(con, "mdm.match_review", pd.DataFrame(rows))


def _xref(con, mapping):
    rows = [
        {"source_system": k.split(":")[0], "source_id": k.split(":")[1], "golden_id": g,
         "match_rule": "model", "run_id": "r1"}
        for k, g in mapping.items()
    ]  # fmt: skip
    append_rows(con, "mdm.customer_xref", pd.DataFrame(rows))


def _golden(con, counts):
    rows = [
        {"golden_id": g, "member_count": n, "name": f"name of {g}", "run_id": "r1"}
        for g, n in counts.items()
    ]
    append_rows(con, "mdm.golden_customers", pd.DataFrame(rows))


@pytest.fixture
def review_warehouse(empty_warehouse):
    con = empty_warehouse
    # one record (crm:1, golden GA) against a cluster of three (GB): three pairs, one decision
    _xref(
        con,
        {
            "crm:1": "GA",
            "erp:1": "GB",
            "erp:2": "GB",
            "sales:1": "GB",
            "crm:7": "GC",
            "erp:7": "GD",
        },
    )
    _golden(con, {"GA": 1, "GB": 3, "GC": 1, "GD": 1})
    weight = {
        "name_key": {"level": "Exact match", "weight": 10.0},
        "postal_code": {"level": "All other", "weight": -4.0},
    }
    _review(
        con,
        [
            ("crm:1", "erp:1", 0.95, weight),
            ("crm:1", "erp:2", 0.9, weight),
            ("sales:1", "crm:1", 0.85, weight),
            (
                "crm:7",
                "erp:7",
                None,
                {"kept_apart": "different valid tax IDs", "linked_by": "same_email"},
            ),
        ],
    )
    orders = pd.DataFrame(
        {
            "source_system": ["erp"] * 3,
            "source_id": ["o1", "o2", "o3"],
            "customer_ref": ["7", "7", "1"],
            "status": ["open", "in_progress", "completed"],
        }
    )
    append_rows(con, "staging.orders", orders)
    return con


def test_the_inbox_groups_pairs_into_decisions_ordered_by_impact(review_warehouse):
    groups, total = queries.inbox(queries.review_state(review_warehouse), decided=set())
    assert total == 2
    assert [(g.golden_a, g.golden_b, g.pairs) for g in groups] == [("GC", "GD", 1), ("GA", "GB", 3)]
    first, second = groups
    assert first.open_orders == 2 and first.kept_apart and first.best_score is None
    assert second.open_orders == 0  # erp:1's order is completed
    assert (second.members_a, second.members_b, second.best_score) == (1, 3, 0.95)


def test_decided_pairs_leave_the_inbox_at_once(review_warehouse):
    decided = {queries.pair_key("erp:7", "crm:7")}
    groups, total = queries.inbox(queries.review_state(review_warehouse), decided)
    assert total == 1 and groups[0].golden_b == "GB"
    some = {queries.pair_key("crm:1", "erp:1")}
    groups, _ = queries.inbox(queries.review_state(review_warehouse), some)
    assert next(g for g in groups if g.golden_b == "GB").pairs == 2  # the rest stay


def test_a_group_page_lists_its_pairs_either_way_round(review_warehouse):
    pairs = queries.review_group(queries.review_state(review_warehouse), "GB", "GA")
    assert {(p.left, p.right) for p in pairs} == {
        ("crm:1", "erp:1"),
        ("crm:1", "erp:2"),
        ("sales:1", "crm:1"),
    }
    kept = queries.review_group(queries.review_state(review_warehouse), "GC", "GD")[0]
    assert kept.kept_apart == "different valid tax IDs" and kept.linked_by == "same_email"
    assert kept.bars == [] and kept.total_weight is None


def test_the_waterfall_adds_up_to_the_score():
    bars, total = queries.waterfall(
        0.9, {"a": {"level": "x", "weight": 3.0}, "b": {"level": "y", "weight": -1.5}}
    )
    assert [b.label for b in bars] == ["prior", "a", "b"]
    assert total == pytest.approx(math.log2(0.9 / 0.1), abs=0.01)
    assert sum(b.weight for b in bars) == pytest.approx(total, abs=0.02)
    assert bars[1].start == pytest.approx(bars[0].weight) and bars[2].start == pytest.approx(
        bars[0].weight + 3.0
    )
    certain, _ = queries.waterfall(1.0, {})  # a probability of 1 is bounded, not infinite
    assert math.isfinite(certain[0].weight)


@pytest.mark.parametrize(
    ("text", "kinds"),
    [
        ("GD355B8D430CF", ("golden_id",)),
        ("gd355b8d430cf", ("golden_id",)),
        ("a@b.cn", ("email",)),
        ("erp:0000102838", ("record",)),
        ("+86 135 8179 8403", ("phone",)),
        ("13581798403", ("phone", "tax_id", "source_id")),
        ("91500103857340765A", ("tax_id", "source_id")),
        ("DE123456789", ("tax_id", "source_id")),
        ("S-001139", ("name", "source_id")),
        ("Müller GmbH", ("name", "source_id")),
        ("唐娟玉", ("name", "source_id")),
    ],
)
def test_search_kinds_guess_what_was_typed(text, kinds):
    assert queries.search_kinds(text) == kinds


def test_search_finds_golden_records_by_id_and_record(review_warehouse):
    assert [r["golden_id"] for r in queries.search(review_warehouse, "gb", "golden_id")] == ["GB"]
    assert [r["golden_id"] for r in queries.search(review_warehouse, "erp:2", "record")] == ["GB"]
    assert [r["golden_id"] for r in queries.search(review_warehouse, "7", "source_id")] == [
        "GC",
        "GD",
    ]
    assert queries.search(review_warehouse, "name of GA", "name")[0]["golden_id"] == "GA"
    assert queries.search(review_warehouse, "  ", "name") == []
    with pytest.raises(ValueError):
        queries.search(review_warehouse, "x", "sql")


def test_search_by_tax_id_and_phone_finds_valid_and_raw_values(review_warehouse):
    staged = pd.DataFrame(
        {
            "source_system": ["erp", "erp", "sales"],
            "source_id": ["1", "2", "1"],
            "tax_id": ["DE123456789", "de 987.654-321", None],
            "tax_id_valid": [True, False, None],
            "phone": ["+493012345678", "030 / 99 88 77 66", "+8613581798403"],
            "phone_valid": [True, False, True],
        }
    )
    append_rows(review_warehouse, "staging.customers", staged)

    def found(text: str, kind: str) -> list[str]:
        return [r["golden_id"] for r in queries.search(review_warehouse, text, kind)]

    assert found("de 123 456 789", "tax_id") == ["GB"]  # compacted, upper case
    assert found("DE987654321", "tax_id") == ["GB"]  # a raw (invalid) value, normalised
    assert found("030 12345678", "phone") == ["GB"]  # a national form: its trunk 0 dropped
    assert found("12345678", "phone") == ["GB"]  # the last digits
    assert found("99887766", "phone") == ["GB"]  # a raw phone, digits only
    assert found("13581798403", "phone") == ["GB"]
    assert found("12345", "phone") == []  # too few digits to search
